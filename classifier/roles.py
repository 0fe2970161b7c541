"""Role labels from measured metrics (section 4 of the design notes).

Each role is a rule over the metric arrays: it passes or not, and has a strength in [0, 1] that
ranks passing roles (the strongest is the primary role, the others are secondary). Rules are
written over numpy arrays with any leading shape, so the same code labels the point estimate
and every bootstrap resample at once; a head's confidence is the share of resamples that give
the point estimate's primary role. Thresholds live in `classifier.thresholds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd

from classifier.scoring import METRICS, OFFSETS
from classifier.thresholds import DEFAULT_THRESHOLDS, Thresholds

RoleName = Literal[
    "current-token",
    "previous-token",
    "positional",
    "start-of-text",
    "delimiter",
    "clause-start",
    "proper-noun",
    "local",
    "word-start",
    "broad",
    "duplicate-token",
    "induction",
    "unclear",
]
ROLES: tuple[RoleName, ...] = get_args(RoleName)
SCORED_ROLES: tuple[RoleName, ...] = ROLES[:-1]  # "unclear" is what is left when none passes

# Roles that mean "attends to this target": the metric that measures the target.
TARGET_METRIC: dict[str, str] = {
    "current-token": "current",
    "previous-token": "previous",
    "start-of-text": "start_of_text",
    "delimiter": "delimiter",
    "clause-start": "clause_start",
    "proper-noun": "proper_noun",
    "local": "local",
    "word-start": "word_start",
    "duplicate-token": "duplicate",
    "induction": "induction",
}
# The metric that carries a role's headline number in tables and descriptions.
HEADLINE_METRIC: dict[str, str] = {**TARGET_METRIC, "positional": "offset2", "broad": "entropy"}


def check_role_names(names) -> None:
    """Raise ValueError listing every unknown role name and the valid ones."""
    unknown = [n for n in names if n not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(unknown)}; valid: {', '.join(ROLES)}")


def _excess(value: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """How far a share sits between uniform attention (0) and all attention on target (1)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (value - expected) / (1.0 - expected)


def role_evidence(
    values: np.ndarray, expected: np.ndarray, offset_shares: np.ndarray, *,
    n_layers: int, induction_repeated: np.ndarray | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass flags and strengths of every scored role, and the dominant positional offset.

    values (..., L, H, M), expected (..., M), offset_shares (..., L, H, O);
    induction_repeated (L, H) or None. Returns passes and strength (..., L, H, len(SCORED_ROLES))
    and offset (..., L, H).
    """
    t = thresholds
    metric = {m: values[..., k] for k, m in enumerate(METRICS)}
    uniform = {m: expected[..., None, None, k] for k, m in enumerate(METRICS)}
    lift_ok = {m: np.nan_to_num(metric[m]) >= t.target_lift * uniform[m] for m in METRICS}

    passes, strength = {}, {}
    for role, name in TARGET_METRIC.items():
        share = np.nan_to_num(metric[name])
        needed = t.sink_share if role == "start-of-text" else t.target_share
        passes[role] = (share >= needed) & lift_ok[name]
        strength[role] = np.nan_to_num(_excess(metric[name], uniform[name]))

    # Offsets >= 2 only; the last bin (offsets beyond the tracked range) is no fixed offset.
    positional_shares = offset_shares[..., 2 : len(OFFSETS)]
    best = positional_shares.argmax(-1)
    best_share = np.nan_to_num(positional_shares.max(-1))
    passes["positional"] = best_share >= t.positional_argmax_share
    strength["positional"] = best_share
    offset = best + 2

    nearest_shares = np.nan_to_num(offset_shares[..., :5]).max(-1)
    passes["local"] = passes["local"] & (np.nan_to_num(metric["local"]) >= t.local_share) & (
        nearest_shares < t.local_max_offset_share
    )

    entropy = np.nan_to_num(metric["entropy"])
    passes["broad"] = (entropy >= t.broad_entropy) & (np.nan_to_num(metric["max_weight"]) <= t.broad_max_weight)
    strength["broad"] = entropy

    confirmed = induction_repeated is not None and n_layers >= 2
    repeated_ok = (np.nan_to_num(induction_repeated) >= t.induction_repeated_share) if confirmed else False
    passes["induction"] = passes["induction"] & repeated_ok

    stacked_pass = np.stack([np.broadcast_to(passes[r], best_share.shape) for r in SCORED_ROLES], -1)
    stacked_strength = np.stack([np.broadcast_to(strength[r], best_share.shape) for r in SCORED_ROLES], -1)
    return stacked_pass, stacked_strength, offset


def primary_roles(passes: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Index into ROLES of the strongest passing role; ROLES.index("unclear") if none passes."""
    ranked = np.where(passes, strength, -np.inf)
    best = ranked.argmax(-1)
    return np.where(passes.any(-1), best, ROLES.index("unclear"))


@dataclass(frozen=True)
class RoleLabels:
    """Role labels of every head (a tidy frame) and the evidence arrays behind them."""

    frame: pd.DataFrame  # layer, head, role, secondary, confidence, strength, offset
    passes: np.ndarray  # (L, H, len(SCORED_ROLES))
    strength: np.ndarray

    def to_records(self) -> list[dict]:
        """roles.json: a list of {layer, head, role, secondary, confidence} (null: no resamples)."""
        return [
            {"layer": int(r.layer), "head": int(r.head), "role": r.role, "secondary": list(r.secondary),
             "confidence": float(r.confidence) if np.isfinite(r.confidence) else None}
            for r in self.frame.itertuples()
        ]


def assign_roles(
    measurement, *, induction_repeated: np.ndarray | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> RoleLabels:
    """Label every head of a `classifier.scorer.Measurement`."""
    n_layers = measurement.values.shape[0]
    options = dict(n_layers=n_layers, induction_repeated=induction_repeated, thresholds=thresholds)
    passes, strength, offset = role_evidence(
        measurement.values, measurement.expected, measurement.offset_shares, **options
    )
    primary = primary_roles(passes, strength)  # (L, H)
    if measurement.boot_values.shape[0] > 0:
        boot_passes, boot_strength, _ = role_evidence(
            measurement.boot_values, measurement.boot_expected, measurement.boot_offset_shares, **options
        )
        confidence = (primary_roles(boot_passes, boot_strength) == primary).mean(0)
    else:
        confidence = np.full(primary.shape, np.nan)

    rows = []
    for layer, head in np.ndindex(primary.shape):  # building the table, once per head
        order = np.argsort(-strength[layer, head])
        passing = [SCORED_ROLES[k] for k in order if passes[layer, head, k]]
        role = ROLES[primary[layer, head]]
        rows.append({
            "layer": layer,
            "head": head,
            "role": role,
            "secondary": tuple(r for r in passing if r != role),
            "confidence": float(confidence[layer, head]),
            "strength": float(strength[layer, head, SCORED_ROLES.index(role)]) if role != "unclear" else np.nan,
            "offset": int(offset[layer, head]),
        })
    return RoleLabels(frame=pd.DataFrame(rows), passes=passes, strength=strength)


def characteristic_pairs(pairs: pd.DataFrame, roles: pd.DataFrame, vocab) -> pd.DataFrame:
    """The (query -> key) token pairs shown as each head's evidence, with token texts."""
    return pairs.assign(
        query=[vocab.texts[k] for k in pairs["query_id"]],
        key=[vocab.texts[k] for k in pairs["key_id"]],
    )
