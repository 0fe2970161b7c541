"""The one frozen settings object that travels from the CLI to the scorer and into run.json."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# TinyStories models were trained on 512-token contexts although their configs say 2048.
TRAINED_CONTEXT = 512


@dataclass(frozen=True)
class ScoreSettings:
    """How a checkpoint is scored.

    stories: how many stories to sample from the corpus (None: all of it).
    max_tokens: longest sequence scored, BOS included (capped by the model's trained context).
    seed: picks the stories and drives the bootstrap.
    batch_size: stories per forward pass (stories are batched sorted by length).
    bootstrap: resamples over stories for the 95% intervals and role confidence.
    device: "auto", "cpu", "cuda" or any torch device string.
    """

    stories: int | None = 500
    max_tokens: int = TRAINED_CONTEXT
    seed: int = 0
    batch_size: int = 16
    bootstrap: int = 1000
    device: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if self.stories is not None and self.stories < 1:
            problems.append(f"--stories must be at least 1, got {self.stories}")
        if self.max_tokens < 2:
            problems.append(f"--max-tokens must be at least 2, got {self.max_tokens}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.bootstrap < 0:
            problems.append(f"--bootstrap must be >= 0, got {self.bootstrap}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> dict:
        return asdict(self)
