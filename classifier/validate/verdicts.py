"""Judging claims against measurements: one typed verdict per head, with its evidence.

The verdict is about the **primary** claim (`classifier.validate.claims`): `supported` when the claimed
role is the head's measured primary role, `secondary` when the role's own test passes as one of
the head's secondary roles (the run's `secondary` column, as `classifier.label.roles` decides it),
`contradicted` otherwise, and `not checkable` when no role could be read. The evidence is the
share of attention the role explains and its lift over uniform attention: from the role
evidence columns (`explained`, `lift`) and the budget parts when the run has them, else from the
role's headline metric and its `_lift` column. Every number of the description is compared with
the metrics.csv column its own words name (`classifier.validate.numbers`) by the rule in
`classifier.thresholds.NumberAgreement`; secondary claims and conditions are reported, not voted.

This module neither reads files nor renders.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from classifier.registry import OFFSETS, ROLE_REGISTRY
from classifier.thresholds import DEFAULT_THRESHOLDS, NUMBER_AGREEMENT
from classifier.validate.claims import Claim, HeadClaims
from classifier.validate.numbers import EXPLAINED, EXPLAINED_WHERE_AVAILABLE, WrittenNumber


class Verdict(StrEnum):
    SUPPORTED = "supported"
    SECONDARY = "secondary"
    CONTRADICTED = "contradicted"
    NOT_CHECKABLE = "not checkable"


VERDICTS = tuple(Verdict)


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
    measure: str = ""  # what `share` is, e.g. "previous" or "budget part self+previous+local_rest"


@dataclass(frozen=True)
class NumberCheck:
    """A written number beside the measured value of the column its words name."""

    number: WrittenNumber
    metric: str  # the metrics.csv column ("" when not checked)
    measured: float
    low: float  # the measured 95% interval
    high: float
    agrees: bool | None  # None: not checked (`reason` says why)
    reason: str = ""


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
        groups = []  # (evidence, attention above uniform)
        for group in spec.parts:
            share = sum(_get(budget, p) for p in group)
            uniform = sum(_get(budget, f"{p}_uniform") for p in group)
            lift = share / uniform if uniform > 0 else float("nan")
            low = _get(budget, f"{group[0]}_lo") if len(group) == 1 else float("nan")
            high = _get(budget, f"{group[0]}_hi") if len(group) == 1 else float("nan")
            evidence = Evidence(role, share, lift, low, high, measure="budget part " + "+".join(group))
            groups.append((evidence, np.nan_to_num(share - uniform, nan=-np.inf)))
        # as the role rule reads it (classifier.label.roles._group_share): among the groups the head
        # prefers (target_lift), else all, the one with the most attention above uniform
        preferred = [g for g in groups if np.nan_to_num(g[0].lift) >= DEFAULT_THRESHOLDS.target_lift] or groups
        best = max(preferred, key=lambda g: g[1])[0]
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


def role_verdict(role: str | None, roles: pd.Series) -> Verdict:
    if role is None:
        return Verdict.NOT_CHECKABLE
    if role == roles["role"]:
        return Verdict.SUPPORTED
    return Verdict.SECONDARY if role in tuple(roles["secondary"]) else Verdict.CONTRADICTED


def number_agrees(number: WrittenNumber, low: float, high: float) -> bool:
    """Whether the interval a number's writing stands for, widened by NUMBER_AGREEMENT's tolerance,
    overlaps the measured interval [low, high] (a bound only needs its own side)."""
    tolerance = NUMBER_AGREEMENT.hedged_tolerance if number.hedged else NUMBER_AGREEMENT.tolerance
    written_low, written_high = number.low * (1 - tolerance), number.high * (1 + tolerance)
    if number.bound == "at least":
        return high >= written_low
    if number.bound == "at most":
        return low <= written_high
    return high >= written_low and low <= written_high


def _explained_check(number: WrittenNumber, metrics: pd.Series, roles: pd.Series | None,
                     budget: pd.Series | None, claimed: str | None) -> NumberCheck:
    """A share said of a role ("20% of its attention", "66% of a continuation piece's attention")
    or its multiplier, against the role's Explained share or Lift: the run's own (roles.json) for
    the measured role, the budget's for another."""
    role = number.role or claimed
    nan = float("nan")
    if role is None:
        return NumberCheck(number, "", nan, nan, nan, None, "no role named to say whose share it is")
    measured = roles is not None and role == roles["role"] and math.isfinite(_get(roles, "explained"))
    if measured:
        share, lift, low, high = _get(roles, "explained"), _get(roles, "lift"), nan, nan
    else:
        evidence = role_evidence(role, metrics, budget)
        share, lift, low, high = evidence.share, evidence.lift, evidence.low, evidence.high
    if number.metric == EXPLAINED_WHERE_AVAILABLE and number.kind != "lift":
        if not measured:
            return NumberCheck(number, "", nan, nan, nan, None, f"{role} is not the measured role: no share "
                               "over its queries")
        share, low, high = share / _get(roles, "available"), nan, nan
    value = lift if number.kind == "lift" else share
    label = f"{role} {'lift' if number.kind == 'lift' else 'explained'}"
    if not math.isfinite(value):
        return NumberCheck(number, label, value, nan, nan, None, f"{label} is not measured")
    if number.kind == "lift" or not (math.isfinite(low) and math.isfinite(high)):
        low = high = value
    return NumberCheck(number, label, value, low, high, number_agrees(number, low, high))


def check_number(number: WrittenNumber, metrics: pd.Series, roles: pd.Series | None = None,
                 budget: pd.Series | None = None, claimed: str | None = None) -> NumberCheck:
    """Compare a written number with the metrics.csv column its words name (a role's share or
    lift with the run's Explained and Lift; `claimed`: the primary claim's role)."""
    column = number.column
    if column is None:
        return NumberCheck(number, "", float("nan"), float("nan"), float("nan"), None, number.reason)
    if number.metric in (EXPLAINED, EXPLAINED_WHERE_AVAILABLE):
        return _explained_check(number, metrics, roles, budget, claimed)
    value = _get(metrics, column)
    if not math.isfinite(value):
        return NumberCheck(number, column, value, float("nan"), float("nan"), None, f"{column} is not measured")
    low, high = _get(metrics, f"{number.metric}_lo"), _get(metrics, f"{number.metric}_hi")
    if number.kind == "lift":  # the metric's interval over the same uniform expectation
        scale = value / _get(metrics, number.metric)
        low, high = low * scale, high * scale
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = value  # no bootstrap: the point estimate alone
    return NumberCheck(number, column, value, low, high, number_agrees(number, low, high))


def judge_head(claims: HeadClaims, layer: int, head: int, side: Measured, *,
               numbers: tuple[WrittenNumber, ...] = ()) -> Judgement:
    """The verdict on one head's primary claim, with evidence, on one side of the measurements;
    every written number (`read_numbers` of its text and of a table's number columns) checked."""
    metrics, roles = side.metrics.loc[(layer, head)], side.roles.loc[(layer, head)]
    budget = _row(side.budget, layer, head)
    primary: Claim | None = claims.primary
    claimed = primary.role if primary else None
    claimed_evidence = role_evidence(claimed, metrics, budget) if claimed else None
    also = tuple((role, role_verdict(role, roles)) for role in claims.claimed_secondary)
    confidence = _get(roles, "confidence")  # null in roles.json (no resamples, as on the prompt): NaN
    return Judgement(
        verdict=role_verdict(claimed, roles), claimed=claimed, measured=roles["role"],
        secondary=tuple(roles["secondary"]), confidence=confidence, claimed_evidence=claimed_evidence,
        measured_evidence=measured_evidence(roles, metrics, budget), weight=claims.weight, also=also,
        numbers=tuple(check_number(n, metrics, roles, budget, claimed) for n in numbers),
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

