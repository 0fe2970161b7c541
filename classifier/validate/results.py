"""The results of `validate` as plain data: the measurements judged against and every described
head's claims and verdicts. Shared by `classifier.validate.check` (which builds them) and
`classifier.validate.report` (which renders them)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from classifier.validate.claims import HeadClaims
from classifier.validate.notes import HeadDescription
from classifier.validate.verdicts import Judgement, Measured, Verdict


@dataclass(frozen=True)
class Measurements:
    """What the descriptions are judged against."""

    model: str
    n_layers: int
    n_heads: int
    corpus: Measured
    prompt: Measured | None
    prompt_text: str | None
    source: str  # where the numbers come from, for the report header


@dataclass(frozen=True)
class Listed:
    """A summary table's kind for one head ("previous token" in `| previous token | 4 | 0.6, 1.3 |`),
    judged over the corpus beside the head's own row."""

    line: int
    text: str
    claimed: str | None
    verdict: Verdict


@dataclass(frozen=True)
class HeadResult:
    """One described head: what it says, and how it fares over the corpus and on the prompt."""

    description: HeadDescription
    claims: HeadClaims
    corpus: Judgement
    prompt: Judgement | None
    listed: tuple[Listed, ...] = ()


@dataclass(frozen=True)
class Validation:
    """Every described head judged, and the agreement statistics."""

    source: str
    measurements: Measurements
    heads: tuple[HeadResult, ...]
    summary: dict
    skipped: tuple[str, ...] = ()  # a Note per described head the model does not have

    @property
    def any_contradicted(self) -> bool:
        return any(h.corpus.verdict == Verdict.CONTRADICTED for h in self.heads)

    def frame(self) -> pd.DataFrame:
        """One row per described head (tidy): ids, claimed and measured roles, verdicts."""
        return pd.DataFrame([{
            "layer": h.description.layer, "head": h.description.head, "label": h.description.label,
            "description": h.description.text, "claimed": h.claims.claimed_primary,
            "claimed_secondary": h.claims.claimed_secondary, "weight": h.claims.weight,
            "corpus_role": h.corpus.measured, "corpus_verdict": h.corpus.verdict.value,
            "prompt_role": h.prompt.measured if h.prompt else None,
            "prompt_verdict": h.prompt.verdict.value if h.prompt else None,
        } for h in self.heads])
