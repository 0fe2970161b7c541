"""The one frozen settings object that travels from the CLI to the scorer and into run.json.

Each field carries its command-line help in its metadata, so the CLI's scoring options are
built from this type (`classifier.cli.settings_options`) and cannot drift from it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from classifier.errors import InputError

# TinyStories models were trained on 512-token contexts although their configs say 2048.
TRAINED_CONTEXT = 512
# Default stories for the exact mean-ablation effects: see docs/importance.md (time on 2 CPU cores
# for the TinyStories-1Layer-21M shape, interval widths on the development models).
ABLATION_STORIES = 20
# Elements (float32: 4 bytes each) the largest tensors of one forward pass may hold: 2**23, 32 MiB
# each. Every pass takes as many stories (and, ablating, copies of them) as keep copies x rows x
# heads x T^2 attention weights within it (classifier.measure.batches.attention_batches), and the
# loss is taken over chunks whose logits (rows x T x vocab) and their copies stay within it. A
# scoring pass holds the pattern and a quarter-pattern workspace (measure.scoring.causal_reductions):
# 2 stories of 512 tokens a pass for the TinyStories-1Layer-21M shape (16 heads), 4 for
# stories260K (8 heads); shorter stories fill the batch (--batch-size). A forward pass to the
# loss counts two copies a row (measure.ablation.FORWARD_COPIES). Measured (`make bench`, freed
# memory given back (batches.return_freed_memory)): the 1L-21M shape's report peaks 0.47 GB over
# the import floor (0.86 two rounds ago), 0.46 of it while loading the weights (0.26 resident
# after: TransformerLens' hook scan builds W_E_pos, a passing 0.2 GB copy); stories260K 0.21 GB.
PASS_BUDGET = 2**23
# Device strings torch accepts for the back-ends this tool can run on; checked here so that a
# typo is said before torch is imported (seconds). Availability is checked when the model loads.
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?")


def _option(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ScoreSettings:
    """How a checkpoint is scored.

    stories: how many stories to sample from the corpus (None or 0: all of it).
    max_tokens: longest sequence scored, BOS included (capped by the model's trained context).
    seed: picks the stories and drives the bootstrap.
    batch_size: stories per forward pass (stories are batched sorted by length).
    bootstrap: resamples over stories for the 95% intervals and role confidence.
    device: "auto", "cpu", "cuda" or any torch device string.
    ablation_stories: the first stories on which every head is mean-ablated and its attribution
        estimated (0: neither).
    """

    stories: int | None = _option(500, "Stories to sample (0: all).")
    max_tokens: int = _option(TRAINED_CONTEXT, "Longest sequence scored, BOS included (capped by the model's context).")
    seed: int = _option(0, "Picks the stories; drives the bootstrap.")
    batch_size: int = _option(16, "Stories per forward pass.")
    bootstrap: int = _option(1000, "Bootstrap resamples over stories (0: no intervals).")
    device: str = _option("auto", "auto, cpu, cuda or cuda:N.")
    # (heads + 1) full forward passes per story; see docs/importance.md for the default's cost.
    ablation_stories: int = _option(
        ABLATION_STORIES, "Stories on which every head is mean-ablated and its attribution estimated (0: neither)."
    )

    def __post_init__(self) -> None:
        if self.stories == 0:  # the command line's "all"
            object.__setattr__(self, "stories", None)
        problems = []
        if self.stories is not None and self.stories < 0:
            problems.append(f"--stories must be 0 (all) or more, got {self.stories}")
        if self.max_tokens < 2:
            problems.append(f"--max-tokens must be at least 2, got {self.max_tokens}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0 <= self.seed < 2**32:  # numpy's seeds
            problems.append(f"--seed must be between 0 and 2**32 - 1, got {self.seed}")
        if self.ablation_stories < 0:
            problems.append(f"--ablation-stories must be 0 (none) or more, got {self.ablation_stories}")
        if self.bootstrap < 0:
            problems.append(f"--bootstrap must be 0 or more, got {self.bootstrap}")
        if not isinstance(self.device, str) or not DEVICE_PATTERN.fullmatch(self.device):
            problems.append(f"--device {self.device!r}: not a torch device (try auto, cpu or cuda)")
        if problems:
            raise InputError("; ".join(problems))

    def to_json(self) -> dict:
        return asdict(self)


def option_fields():
    """The settings fields with their command-line help, in declaration order."""
    return [f for f in fields(ScoreSettings) if "help" in f.metadata]
