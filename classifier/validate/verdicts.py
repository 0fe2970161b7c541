"""Judging claims against measurements: one typed verdict per head, with its evidence.

The verdict is about the **primary** claim (`classifier.validate.claims`): `supported` when the claimed
role is the head's measured primary role, `secondary` when it is one of the measured secondary
roles or the head clearly prefers it (at least LEAN_LIFT x uniform attention and LEAN_SHARE of
it), `contradicted` otherwise, and `not checkable` when no role could be read. The evidence is
the share of attention the role explains and its lift over uniform attention: from the role
evidence columns (`explained`, `lift`) and the budget parts when the run has them, else from the
role's headline metric and its `_lift` column. Numbers written in a claim are compared with the
measured value and its interval; secondary claims and conditions are reported, not voted.

This module neither reads files nor renders.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from classifier.validate.claims import Claim, HeadClaims, Number
from classifier.registry import OFFSETS, ROLE_REGISTRY
from classifier.thresholds import DEFAULT_THRESHOLDS


class Verdict(StrEnum):
    SUPPORTED = "supported"
    SECONDARY = "secondary"
    CONTRADICTED = "contradicted"
    NOT_CHECKABLE = "not checkable"


VERDICTS = tuple(Verdict)
# A claimed role that is not the primary one still counts as "secondary" when the head clearly
# prefers its target: LEAN_LIFT x what uniform attention gives AND at least LEAN_SHARE of all
# attention (lift alone is cheap where uniform is tiny: 3 x 0.5% is no role).
LEAN_LIFT = 3.0
LEAN_SHARE = 0.05
LEAN_ENTROPY = 0.75 * DEFAULT_THRESHOLDS.broad_entropy  # `broad` has no lift
LEAN_ARGMAX = 0.5  # `positional`: share of queries whose argmax is one fixed offset >= 2
# A number written in a claim agrees with the measurement within these tolerances (or inside
# the measured interval): shares and entropies absolutely, lifts and distances relatively.
SHARE_TOLERANCE = 0.1
RELATIVE_TOLERANCE = 0.5


@dataclass(frozen=True)
class Measured:
    """One side of the measurements (the corpus, or the prompt alone), indexed by (layer, head)."""

    metrics: pd.DataFrame  # as metrics.csv
    roles: pd.DataFrame  # role, secondary (tuple), confidence, and evidence columns when present
    budget: pd.DataFrame | None = None  # per-head part shares (<part>, <part>_uniform), when present


@dataclass(frozen=True)
class Evidence:
    """How much one role explains of a head's attention."""

    role: str
    share: float  # share of attention (for `broad`: normalised entropy; `positional`: argmax share)
    lift: float  # share / what uniform attention gives (NaN where undefined)
    low: float = float("nan")
    high: float = float("nan")
    measure: str = ""  # what `share` is, e.g. "previous" or "budget: self+previous+local_rest"


@dataclass(frozen=True)
class NumberCheck:
    """A number written in a claim beside the measured value."""

    number: Number
    metric: str
    measured: float
    low: float
    high: float
    agrees: bool | None  # None when nothing measured compares


@dataclass(frozen=True)
class Judgement:
    """One head judged on one side (corpus or prompt)."""

    verdict: Verdict
    claimed: str | None  # claimed primary role
    measured: str  # measured primary role
    secondary: tuple[str, ...]  # measured secondary roles
    confidence: float
    claimed_evidence: Evidence | None
    measured_evidence: Evidence
    weight: float = 1.0  # the primary claim's weight (hedges lower it)
    also: tuple[tuple[str, Verdict], ...] = ()  # each claimed secondary role: its own verdict
    numbers: tuple[NumberCheck, ...] = ()


def _get(row: pd.Series, name: str) -> float:
    value = row.get(name, np.nan) if row is not None else np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _row(frame: pd.DataFrame | None, layer: int, head: int) -> pd.Series | None:
    if frame is None or frame.empty or (layer, head) not in frame.index:
        return None
    return frame.loc[(layer, head)]


def role_evidence(role: str, metrics: pd.Series, budget: pd.Series | None = None) -> Evidence:
    """The share of attention `role` explains for one head and its lift over uniform."""
    spec = ROLE_REGISTRY.get(role)
    if role == "positional":
        shares = {o: _get(metrics, f"argmax_offset_{o}") for o in OFFSETS[2:]}
        offset = max(shares, key=lambda o: np.nan_to_num(shares[o]))
        return Evidence(role, shares[offset], float("nan"), measure=f"argmax at offset {offset}")
    if role == "broad":
        return Evidence(role, _get(metrics, "entropy"), float("nan"), _get(metrics, "entropy_lo"),
                        _get(metrics, "entropy_hi"), measure="entropy")
    if spec is None or spec.headline is None:
        return Evidence(role, float("nan"), float("nan"), measure="")
    if budget is not None and spec.parts and all(p in budget.index and f"{p}_uniform" in budget.index
                                                  for group in spec.parts for p in group):
        best = None
        for group in spec.parts:  # the group with the largest lift, as the role rule reads it
            share = sum(_get(budget, p) for p in group)
            uniform = sum(_get(budget, f"{p}_uniform") for p in group)
            lift = share / uniform if uniform > 0 else float("nan")
            if best is None or np.nan_to_num(lift) > np.nan_to_num(best.lift):
                low = _get(budget, f"{group[0]}_lo") if len(group) == 1 else float("nan")
                high = _get(budget, f"{group[0]}_hi") if len(group) == 1 else float("nan")
                best = Evidence(role, share, lift, low, high, measure="+".join(group))
        return best
    metric = spec.headline
    return Evidence(role, _get(metrics, metric), _get(metrics, f"{metric}_lift"), _get(metrics, f"{metric}_lo"),
                    _get(metrics, f"{metric}_hi"), measure=metric)


def measured_evidence(roles: pd.Series, metrics: pd.Series, budget: pd.Series | None) -> Evidence:
    """The measured primary role's evidence: the run's own `explained`/`lift` when it has them."""
    role = roles["role"]
    explained, lift = _get(roles, "explained"), _get(roles, "lift")
    if math.isfinite(explained):
        return Evidence(role, explained, lift, measure="explained")
    return role_evidence(role, metrics, budget)


def leans(evidence: Evidence) -> bool:
    """Whether a head clearly prefers a role's target without it being the primary role."""
    if evidence.role == "positional":
        return np.nan_to_num(evidence.share) >= LEAN_ARGMAX
    if evidence.role == "broad":
        return np.nan_to_num(evidence.share) >= LEAN_ENTROPY
    return bool(np.nan_to_num(evidence.share) >= LEAN_SHARE and np.nan_to_num(evidence.lift) >= LEAN_LIFT)


def role_verdict(role: str | None, roles: pd.Series, evidence: Evidence | None) -> Verdict:
    if role is None:
        return Verdict.NOT_CHECKABLE
    if role == roles["role"]:
        return Verdict.SUPPORTED
    if role in tuple(roles["secondary"]) or (evidence is not None and role != "unclear" and leans(evidence)):
        return Verdict.SECONDARY
    return Verdict.CONTRADICTED


def check_number(number: Number, role: str | None, metrics: pd.Series) -> NumberCheck:
    """Compare a written number with the measured metric it is about."""
    if number.quantity in ("distance", "entropy"):
        metric = number.quantity
    else:
        spec = ROLE_REGISTRY.get(role) if role else None
        metric = spec.headline if spec is not None and spec.headline and role != "broad" else ""
    if not metric:
        return NumberCheck(number, "", float("nan"), float("nan"), float("nan"), None)
    if number.quantity == "lift":
        value, low, high = _get(metrics, f"{metric}_lift"), float("nan"), float("nan")
    else:
        value, low, high = _get(metrics, metric), _get(metrics, f"{metric}_lo"), _get(metrics, f"{metric}_hi")
    if not math.isfinite(value):
        return NumberCheck(number, metric, value, low, high, None)
    inside = math.isfinite(low) and math.isfinite(high) and low <= number.value <= high
    if number.quantity in ("share", "entropy"):
        close = abs(number.value - value) <= SHARE_TOLERANCE
    else:
        close = abs(number.value - value) <= RELATIVE_TOLERANCE * max(abs(value), 1e-9)
    return NumberCheck(number, metric, value, low, high, bool(inside or close))


def judge_head(claims: HeadClaims, layer: int, head: int, side: Measured) -> Judgement:
    """The verdict on one head's primary claim, with evidence, on one side of the measurements."""
    metrics, roles = side.metrics.loc[(layer, head)], side.roles.loc[(layer, head)]
    budget = _row(side.budget, layer, head)
    primary: Claim | None = claims.primary
    claimed = primary.role if primary else None
    claimed_evidence = role_evidence(claimed, metrics, budget) if claimed else None
    also = tuple((role, role_verdict(role, roles, role_evidence(role, metrics, budget)))
                 for role in claims.claimed_secondary)
    numbers = tuple(check_number(n, c.role, metrics) for c in claims.claims
                    if c.kind in ("primary", "secondary") for n in c.numbers)
    confidence = _get(roles, "confidence")  # null in roles.json (no resamples, as on the prompt): NaN
    return Judgement(
        verdict=role_verdict(claimed, roles, claimed_evidence), claimed=claimed, measured=roles["role"],
        secondary=tuple(roles["secondary"]), confidence=confidence, claimed_evidence=claimed_evidence,
        measured_evidence=measured_evidence(roles, metrics, budget), weight=claims.weight, also=also,
        numbers=numbers,
    )


def agreement(judgements: list[Judgement]) -> dict:
    """Counts per verdict; over heads with a checkable primary claim, the share whose claimed
    primary role is the measured one (plain and weighted by hedges) and Cohen's kappa between
    the two (NaN with fewer than 2 heads)."""
    from sklearn.metrics import cohen_kappa_score

    counts = {v.value: sum(j.verdict == v for j in judgements) for v in VERDICTS}
    checkable = [j for j in judgements if j.claimed is not None]
    hits = [j.claimed == j.measured for j in checkable]
    weights = [j.weight for j in checkable]
    rate = float(np.mean(hits)) if checkable else float("nan")
    weighted = float(np.average(hits, weights=weights)) if checkable and sum(weights) > 0 else float("nan")
    kappa = float("nan")
    if len(checkable) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kappa = float(cohen_kappa_score([j.claimed for j in checkable], [j.measured for j in checkable]))
    return {"counts": counts, "checkable": len(checkable), "agreement": rate, "weighted_agreement": weighted,
            "kappa": kappa}

