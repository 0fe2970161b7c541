"""Role labels from measured attention (section 4 of the design notes).

Every head has one budget of attention: each query's attention split into disjoint parts by the
most specific target each key is (`classifier.registry.PARTS`), with uniform attention's budget
beside it. A role explains one part (or a group of parts) of that budget. The rules, over numpy
arrays with any leading shape so that the point estimate and every bootstrap resample are labelled
at once:
- a target role (previous token, latest delimiter, ...) passes on a clear preference: its share is
  many times uniform and a real share of the non-sink attention (preference, not size);
- `positional` (one fixed offset is the argmax for nearly every query) wins whenever it passes;
- `local` (the last few tokens) passes only when no single part of that window explains most of
  it, and `broad` only when nothing else passes (specific before general);
- `start-of-text` (the attention sink) is the primary role only when no other target holds a
  real share of all attention; otherwise it stays a secondary role and `sink` is reported as such.
The primary role is the passing role whose share exceeds uniform by the most (one scale: share of
attention above uniform). Thresholds live in `classifier.thresholds`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from classifier.registry import (  # noqa: F401  (ROLES etc. re-exported for callers)
    METRICS,
    OFFSETS,
    PARTS,
    ROLE_REGISTRY,
    ROLES,
    SCORED_ROLES,
    RoleName,
    check_role_names,
)
from classifier.thresholds import DEFAULT_THRESHOLDS, MIN_STORIES_FOR_BOOTSTRAP, Thresholds

# The metric that carries a role's headline number in tables and descriptions.
HEADLINE_METRIC: dict[str, str] = {name: r.headline for name, r in ROLE_REGISTRY.items() if r.headline}
SINK = PARTS.index("sink")
UNCLEAR = ROLES.index("unclear")
HOLD_ROLE = SCORED_ROLES.index("hold")
_KIND = np.array([ROLE_REGISTRY[r].kind for r in SCORED_ROLES])
# Roles that explain disjoint parts of the budget: the runners-up a primary role is measured against.
_DISJOINT = _KIND == "target"
# Targets that are not the local window's own parts (self, previous).
_OUTSIDE_WINDOW = _DISJOINT & ~np.isin(np.array(SCORED_ROLES), ["current-token", "previous-token"])
# Roles that explain a common budget part (the local window and its self and previous parts; the
# delimiter role's delimiters at large and quote-start's opening quote): (R, R). They are no rivals
# for the margin: the attention that makes one makes the other.
_PARTS_OF = [{p for group in ROLE_REGISTRY[r].parts for p in group} for r in SCORED_ROLES]
_SHARE_PARTS = np.array([[bool(a & b) for b in _PARTS_OF] for a in _PARTS_OF])
# Keys that stay the same for every query of a clause (so any head that looks at them holds them):
# the clause's first token, the delimiter before it, the opening quote of the quotation.
CLAUSE_BOUNDARY_PARTS = ("clause_start", "last_delimiter", "quote_start")
# (R, R): role b is built on parts role a must be preferred over (a's `rivals`) and on none of
# a's own: clause-start for quote-start (the delimiter role counts the opening quote itself).
_RIVAL_ROLES = np.array([[_KIND[k] == "target" and bool(set(ROLE_REGISTRY[a].rivals) & _PARTS_OF[k])
                          and not _PARTS_OF[k] & _PARTS_OF[i] for k in range(len(SCORED_ROLES))]
                         for i, a in enumerate(SCORED_ROLES)])


@dataclass(frozen=True)
class Evidence:
    """Per role (last axis, SCORED_ROLES order) of every head: whether it passes, the share of all
    attention it explains, that share under uniform attention, and the dominant argmax offset.
    Shapes (..., L, H, R) and (..., L, H); `sink` (..., L, H) is the start-of-text share;
    `available` (..., L, H, R) the share of queries for which the role's target exists."""

    passes: np.ndarray
    explained: np.ndarray
    uniform: np.ndarray
    available: np.ndarray
    offset: np.ndarray
    sink: np.ndarray
    # (..., L, H): the attention the head's held keys get where the held key is the current
    # clause's start, its delimiter or the quotation's opening quote (CLAUSE_BOUNDARY_PARTS);
    # zeros when the measurement has no split of the held keys by part
    held_on_boundaries: np.ndarray | None = None

    @property
    def excess(self) -> np.ndarray:
        """Share of attention above what uniform attention gives, over the queries for which the
        target exists: the one scale roles rank on (a word-start head is judged on continuation
        pieces, a previous-token head on every token)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nan_to_num((self.explained - self.uniform) / self.available, nan=-np.inf)

    @property
    def lift(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.explained / self.uniform


def _group_share(budget: np.ndarray, uniform: np.ndarray, available: np.ndarray, groups, non_sink: np.ndarray,
                 thresholds: Thresholds):
    """Share, uniform share and availability (the largest of its parts') of the part group that
    makes the head the role: among the groups the head prefers (lift and share as a target role
    needs; all groups when none is), the one with the most attention above uniform. A latest
    delimiter taking 7% of the attention at 5x uniform does not speak for a head whose delimiters
    at large take 58% at 4.4x; a sharp latest-delimiter head (60% at 40x against 62% at 4.4x) is
    read by its latest delimiter. (..., L, H) each."""
    def per_group(array, reduce):
        return np.stack([reduce(array[..., [PARTS.index(p) for p in g]]) for g in groups], -1)

    shares = per_group(budget, lambda a: a.sum(-1))
    expected = np.broadcast_to(per_group(uniform, lambda a: a.sum(-1))[..., None, None, :], shares.shape)
    reach = np.broadcast_to(per_group(available, lambda a: a.max(-1))[..., None, None, :], shares.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = shares / np.clip(reach, 1e-9, None) / non_sink[..., None]
    preferred = (shares >= thresholds.target_lift * expected) & (conditional >= thresholds.target_share)
    candidates = preferred | ~preferred.any(-1, keepdims=True)
    best = np.where(candidates, np.nan_to_num(shares - expected, nan=-np.inf), -np.inf).argmax(-1)[..., None]
    return tuple(np.take_along_axis(x, best, -1)[..., 0] for x in (shares, expected, reach))


def _prefers_over_rivals(lift, rivals, budget, budget_uniform, thresholds: Thresholds) -> np.ndarray:
    """Whether a target's lift is at least `rival_lift` times the lift of each rival part (the
    registry's `Role.rivals`; True without rivals). (..., L, H)."""
    if not rivals:
        return np.ones(lift.shape, dtype=bool)
    index = [PARTS.index(p) for p in rivals]
    with np.errstate(invalid="ignore", divide="ignore"):
        rival = np.nan_to_num(budget[..., index] / budget_uniform[..., None, None, index], nan=0.0).max(-1)
    return lift >= thresholds.rival_lift * rival


def role_evidence(
    budget: np.ndarray, budget_uniform: np.ndarray, budget_available: np.ndarray, values: np.ndarray,
    offset_shares: np.ndarray, *,
    n_layers: int, induction_repeated: np.ndarray | None = None, held: np.ndarray | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Evidence:
    """Evidence for every scored role. budget (..., L, H, P), budget_uniform and budget_available (..., P),
    values (..., L, H, M) (the metrics), offset_shares (..., L, H, O); induction_repeated (L, H);
    held (..., L, H, 2, 4 or 4 + P): the share of all attention on held top keys and uniform
    attention's share on the same keys (without it, `hold` never passes); then the share on a
    delimiter that is the query itself or the previous token, and uniform attention's; then the
    held keys' share split by budget part (PARTS order)."""
    t = thresholds
    budget = np.nan_to_num(budget)
    sink = budget[..., SINK]
    non_sink = np.clip(1.0 - sink, 1e-9, None)
    part = {p: budget[..., k] for k, p in enumerate(PARTS)}
    metric = {m: np.nan_to_num(values[..., k]) for k, m in enumerate(METRICS)}

    # Offsets >= 2 only; the last bin (offsets beyond the tracked range) is no fixed offset.
    positional_shares = np.nan_to_num(offset_shares[..., 2 : len(OFFSETS)])
    offset = positional_shares.argmax(-1) + 2
    best_offset_share = positional_shares.max(-1)
    nearest_offset_share = np.nan_to_num(offset_shares[..., :5]).max(-1)

    passes, explained, expected, reach = {}, {}, {}, {}
    for name in SCORED_ROLES:
        role = ROLE_REGISTRY[name]
        if role.kind == "hold":  # held keys may be of any part: measured apart from the budget
            held_parts = np.nan_to_num(held) if held is not None else np.zeros((*sink.shape, 2))
            share, uniform, available = held_parts[..., 0], held_parts[..., 1], np.ones_like(sink)
        else:
            share, uniform, available = _group_share(budget, budget_uniform, budget_available, role.parts, non_sink, t)
        if role.kind == "positional":  # offsets 2-4 sit in the local rest; farther ones in the rest
            far = _group_share(budget, budget_uniform, budget_available, (("rest",),), non_sink, t)
            share, uniform, available = (np.where(offset <= 4, near, away) for near, away in zip((share, uniform, available), far))
        explained[name], expected[name], reach[name] = share, uniform, available
        with np.errstate(invalid="ignore", divide="ignore"):
            conditional = share / np.clip(available, 1e-9, None) / non_sink  # of the non-sink attention where it exists
            preferred = (share >= t.target_lift * uniform) & (conditional >= t.target_share)
        if role.kind == "target":
            passes[name] = preferred & _prefers_over_rivals(share / np.clip(uniform, 1e-12, None), role.rivals, budget,
                                                            budget_uniform, t)
            if name == "delimiter" and held is not None and held.shape[-1] >= 4:
                # A head that prefers delimiters also explains what it puts on a delimiter that is
                # the query itself or the previous token (the self and previous parts take it in
                # the budget): a latest-delimiter head, adjacent or not, explains all it puts there.
                adjacent = np.nan_to_num(held)
                explained[name] = np.where(preferred, share + adjacent[..., 2], share)
                expected[name] = np.where(preferred, uniform + adjacent[..., 3], uniform)
        elif role.kind == "sink":
            passes[name] = (sink >= t.sink_share) & (sink >= t.target_lift * uniform)
        elif role.kind == "positional":
            passes[name] = best_offset_share >= t.positional_argmax_share
        elif role.kind == "local":
            largest_part = np.maximum(part["self"], part["previous"])
            passes[name] = (
                preferred & (conditional >= t.local_share) & (largest_part <= t.local_max_part * share)
                & (nearest_offset_share < t.local_max_offset_share)
            )
        elif role.kind == "broad":
            passes[name] = (metric["entropy"] >= t.broad_entropy) & (metric["max_weight"] <= t.broad_max_weight)
        elif role.kind == "hold":
            # sharp and soft holders alike: the token-shuffle null and the runs (classifier.measure.
            # scoring.held_keys) already keep random heads' repeating favourite keys out
            passes[name] = (metric["hold"] >= t.hold_queries) & (share / non_sink >= t.hold_attention)

    confirmed = induction_repeated is not None and n_layers >= 2
    repeated_ok = (np.nan_to_num(induction_repeated) >= t.induction_repeated_share) if confirmed else False
    passes["induction"] = passes["induction"] & repeated_ok

    def stack(table):
        return np.stack([np.broadcast_to(table[r], sink.shape) for r in SCORED_ROLES], -1)

    on_boundaries = np.zeros_like(sink)
    if held is not None and held.shape[-1] == 4 + len(PARTS):
        on_boundaries = np.nan_to_num(held[..., [4 + PARTS.index(p) for p in CLAUSE_BOUNDARY_PARTS]]).sum(-1)
    return Evidence(
        passes=stack(passes), explained=stack(explained), uniform=stack(expected), available=stack(reach),
        offset=offset, sink=sink, held_on_boundaries=on_boundaries,
    )


def slivers(evidence: Evidence, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Passing target and hold roles that explain under `primary_share` of ALL the head's
    attention (a word start under GPT-2 BPE, which few queries have) with a soft preference (under
    `sliver_sharp` of those queries' non-sink attention): never primary, only a secondary role scoped
    to the queries that have the target. (..., L, H, R)."""
    kind = np.broadcast_to(_KIND, evidence.passes.shape)
    explained = np.nan_to_num(evidence.explained)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = explained / np.clip(evidence.available, 1e-9, None) / np.clip(1.0 - evidence.sink, 1e-9, None)[..., None]
    return (evidence.passes & np.isin(kind, ["target", "hold"]) & (explained < thresholds.primary_share)
            & (np.nan_to_num(conditional) < thresholds.sliver_sharp))


def primary_roles(evidence: Evidence, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Index into ROLES of each head's primary role. (..., L, H)."""
    kind = np.broadcast_to(_KIND, evidence.passes.shape)
    sliver = slivers(evidence, thresholds)
    specific = evidence.passes & np.isin(kind, ["target", "positional", "local"]) & ~sliver
    # Specific before general: a window holding only a minority of the attention does not name the
    # head when a target outside it (a delimiter, a clause start, ...) is preferred far more strongly.
    local = SCORED_ROLES.index("local")
    lift = np.nan_to_num(evidence.lift)
    window = evidence.explained[..., local] / np.clip(1.0 - evidence.sink, 1e-9, None)
    outside = np.broadcast_to(_OUTSIDE_WINDOW, specific.shape)
    outshone = (specific & outside & (lift >= thresholds.local_outshone_lift * lift[..., local : local + 1])).any(-1)
    specific[..., local] &= ~((window < thresholds.local_majority) & outshone)
    ranked = np.where(specific, evidence.excess, -np.inf)
    best = ranked.argmax(-1)
    # A target its queries alone have (quote-start: the few inside quotations) is ranked on those
    # queries; when a passing rival target also names the head and explains more of ALL its
    # attention, the rival is what the head does and the scoped one a secondary role (the 1L
    # development head whose clause starts take 16% and whose opening quotes take 3%).
    explained = np.nan_to_num(evidence.explained)
    outweighs = _RIVAL_ROLES[best] & specific & (explained > np.take_along_axis(explained, best[..., None], -1))
    best = np.where(outweighs.any(-1), np.where(outweighs, ranked, -np.inf).argmax(-1), best)
    best_share = np.take_along_axis(explained, best[..., None], -1)[..., 0]
    sink_passes = evidence.passes[..., SCORED_ROLES.index("start-of-text")]
    broad_passes = evidence.passes[..., SCORED_ROLES.index("broad")]
    # A fixed offset that is the argmax for nearly every query explains the head outright, even
    # where its key is also a more specific target for some queries (a word start two back).
    positional = evidence.passes[..., SCORED_ROLES.index("positional")]
    best = np.where(positional, ROLES.index("positional"), best)
    specific_wins = specific.any(-1) & (~sink_passes | (best_share >= thresholds.sink_overrule_share) | positional)
    # Holding keys is general (no one target explains it): it names the head when no specific role
    # does, or when the held keys get more of the attention than the winner explains and most of
    # the held attention is on words kept across clauses. The start of the current clause, its
    # opening delimiter and the opening quote of the current quotation are held by definition by
    # any head that looks at them (the same key for every query of the clause): a clause-start
    # head holds its clause starts and says nothing more by it; a holder of the latest name or
    # sentence's first word keeps it across commas and clauses. Not when its attention is spread
    # close to uniform (broad says more); it outranks a sink only when the held keys get a real
    # share. A quote-start head holds the opening mark by definition, and after the quotation the
    # closing one: hold never outranks it.
    held = explained[..., HOLD_ROLE]
    on_boundaries = evidence.held_on_boundaries if evidence.held_on_boundaries is not None else 0.0
    hold_wins = (evidence.passes[..., HOLD_ROLE] & ~sliver[..., HOLD_ROLE] & ~broad_passes
                 & (~sink_passes | (held >= thresholds.sink_overrule_share)))
    held_by_target = best == ROLES.index("quote-start")
    outheld = (held > best_share) & (held - on_boundaries > on_boundaries)
    specific_wins &= ~(hold_wins & ~positional & ~held_by_target & outheld)
    fallback = np.where(
        hold_wins, ROLES.index("hold"),
        np.where(sink_passes, ROLES.index("start-of-text"), np.where(broad_passes, ROLES.index("broad"), UNCLEAR)),
    )
    return np.where(specific_wins, best, fallback)


def margins(evidence: Evidence, primary: np.ndarray) -> np.ndarray:
    """How far the primary role's excess share leads the best other disjoint target. (..., L, H);
    NaN for broad and unclear heads, and for positional ones: their rule is an argmax share that
    overrules the budget (a fixed offset two back is often also a word start), so a lead in
    budget shares says nothing about them and their confidence is their stability."""
    excess = evidence.excess
    index = np.minimum(primary, len(SCORED_ROLES) - 1)[..., None]
    own = np.take_along_axis(excess, index, -1)[..., 0]
    others = np.broadcast_to(_DISJOINT, excess.shape) & ~_SHARE_PARTS[index[..., 0]]  # itself too
    runner_up = np.where(others, excess, -np.inf).max(-1)
    margin = own - np.where(np.isfinite(runner_up), runner_up, 0.0)
    # hold outranks a passing target on the share of all attention each explains (primary_roles):
    # its lead is measured on that scale, over the passing targets
    explained = np.nan_to_num(evidence.explained)
    rivals = np.broadcast_to(_DISJOINT, explained.shape) & evidence.passes
    held_lead = explained[..., HOLD_ROLE] - np.where(rivals, explained, 0.0).max(-1)
    margin = np.where(primary == ROLES.index("hold"), held_lead, margin)
    named = ~np.isin(primary, [UNCLEAR, ROLES.index("broad"), ROLES.index("positional")])
    return np.where(named, margin, np.nan)


@dataclass(frozen=True)
class RoleLabels:
    """Role labels of every head (a tidy frame) and the evidence behind them."""

    frame: pd.DataFrame  # layer, head, role, secondary, confidence, stability, explained, lift, margin, sink, offset
    evidence: Evidence


def assign_roles(
    measurement, *, induction_repeated: np.ndarray | None = None, thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> RoleLabels:
    """Label every head of a `classifier.measure.scorer.Measurement` (which must carry the budget)."""
    if measurement.budget is None:
        raise ValueError("the measurement has no attention budget; score it with classifier.measure.scorer")
    n_layers = measurement.values.shape[0]
    options = dict(n_layers=n_layers, induction_repeated=induction_repeated, thresholds=thresholds)
    evidence = role_evidence(
        measurement.budget, measurement.budget_uniform, measurement.budget_available, measurement.values,
        measurement.offset_shares, held=measurement.held, **options,
    )
    primary = primary_roles(evidence, thresholds)  # (L, H)
    margin = margins(evidence, primary)
    resamples = measurement.boot_budget.shape[0] if measurement.boot_budget is not None else 0
    if resamples > 0:
        boot = role_evidence(
            measurement.boot_budget, measurement.boot_budget_uniform, measurement.boot_budget_available,
            measurement.boot_values, measurement.boot_offset_shares, held=measurement.boot_held, **options,
        )
        stability = (primary_roles(boot, thresholds) == primary).mean(0)
    else:
        stability = np.full(primary.shape, np.nan)
    fit = np.clip(np.nan_to_num(margin, nan=thresholds.margin_full) / thresholds.margin_full, 0.0, 1.0)
    # A sharp role on a sliver stays primary, but a label resting on under primary_share of all the
    # head's attention is not a confident one: its fit is scaled below one half.
    named = primary != UNCLEAR
    primary_explained = np.take_along_axis(np.nan_to_num(evidence.explained, nan=1.0),
                                           np.minimum(primary, len(SCORED_ROLES) - 1)[..., None], -1)[..., 0]
    kinds = _KIND[np.minimum(primary, len(SCORED_ROLES) - 1)]
    on_sliver = named & np.isin(kinds, ["target", "hold"]) & (primary_explained < thresholds.primary_share)
    fit = np.where(on_sliver, np.minimum(fit, primary_explained / (2 * thresholds.primary_share)), fit)
    # Too few stories for the bootstrap: no stability, so no confidence (shown as n/a); an unclear
    # head is no label to be confident in.
    if measurement.n_texts < MIN_STORIES_FOR_BOOTSTRAP:
        stability = np.full(primary.shape, np.nan)
    confidence = np.where(named, stability * fit, np.nan)

    excess = evidence.excess
    sliver = slivers(evidence, thresholds)
    hold_metric = measurement.values[..., METRICS.index("hold")]
    rows = []
    for layer, head in np.ndindex(primary.shape):  # building the table, once per head
        role = ROLES[primary[layer, head]]
        order = np.argsort(-excess[layer, head], kind="stable")
        passing = [SCORED_ROLES[k] for k in order if evidence.passes[layer, head, k] and SCORED_ROLES[k] != role]
        k = SCORED_ROLES.index(role) if role != "unclear" else None
        explained = float(evidence.explained[layer, head, k]) if k is not None else np.nan
        lift = float(evidence.lift[layer, head, k]) if k is not None else np.nan
        rows.append({
            "layer": layer,
            "head": head,
            "role": role,
            "secondary": tuple(passing),
            # secondary roles on a sliver: they hold only on the few queries that have their target
            "scoped": tuple(r for r in passing if sliver[layer, head, SCORED_ROLES.index(r)]),
            "confidence": float(confidence[layer, head]),
            "stability": float(stability[layer, head]),
            "explained": explained,
            # share of queries for which the role's target exists (explained / available: the share
            # of those queries' attention it gets)
            "available": float(evidence.available[layer, head, k]) if k is not None else np.nan,
            "lift": lift,
            "margin": float(margin[layer, head]),
            "sink": float(evidence.sink[layer, head]),
            "offset": int(evidence.offset[layer, head]),
            "hold": float(hold_metric[layer, head]),
            "hold_attention": float(evidence.explained[layer, head, HOLD_ROLE]),
        })
    return RoleLabels(frame=pd.DataFrame(rows), evidence=evidence)


# (query -> key) pairs kept per head as its evidence.
PAIRS_KEPT = 6


def characteristic_pairs(pairs: pd.DataFrame, roles: pd.DataFrame, vocab) -> pd.DataFrame:
    """The (query -> key) token pairs shown as each head's evidence, with token texts: first those
    whose key is of the kind the head's role names (the previous token for a previous-token head,
    the latest delimiter for a delimiter head, ...), then the most frequent others. The scorer
    counts argmax keys other than BOS, which every head has; pairs whose key is the query itself
    are kept only where the head's role names itself (a current-token head's evidence)."""
    pairs = pairs.assign(
        query=[vocab.texts[k] for k in pairs["query_id"]],
        key=[vocab.texts[k] for k in pairs["key_id"]],
    )
    if "part" not in pairs.columns or not len(pairs):
        return pairs
    role_of = roles.set_index(["layer", "head"])["role"]
    role_parts = {name: {p for group in entry.parts for p in group} for name, entry in ROLE_REGISTRY.items()}
    keys = list(zip(pairs["layer"], pairs["head"]))
    pairs["of_role"] = [row_part in role_parts.get(role_of.get(key, "unclear"), set())
                        for key, row_part in zip(keys, pairs["part"])]
    pairs = pairs[(pairs["part"] != "self") | pairs["of_role"]]
    pairs = pairs.sort_values(["layer", "head", "of_role", "count"], ascending=[True, True, False, False], kind="stable")
    return pairs.groupby(["layer", "head"], sort=False).head(PAIRS_KEPT).reset_index(drop=True)


def top_keys_lists(top_keys: pd.DataFrame | None, roles: pd.DataFrame, vocab) -> list[list[dict]]:
    """Each head's top keys (in the row order of `roles`) as roles.json writes them:
    [{"token", "share", "lift"}] ordered by share; empty where none was measured."""
    if top_keys is None or not len(top_keys):
        return [[] for _ in range(len(roles))]
    ordered = top_keys.sort_values(["layer", "head", "rank"], kind="stable")
    by_head = {
        key: [{"token": vocab.texts[int(k)], "share": float(share), "lift": float(lift)}
              for k, share, lift in zip(group["key_id"], group["share"], group["lift"])]
        for key, group in ordered.groupby(["layer", "head"], sort=False)
    }
    return [by_head.get((layer, head), []) for layer, head in zip(roles["layer"], roles["head"])]
