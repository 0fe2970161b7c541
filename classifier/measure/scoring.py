"""Per-head attention metrics of section 3 of the design notes, as pure tensor functions.

`score_patterns` reduces one batch of attention patterns (B, H, T, T) to per-text sums over
eligible queries, per-text counts of eligible queries, and per-text sums of what uniform
attention would give. Corpus figures are ratios of sums, so batches, shards and processes merge
exactly by adding (see `TextStats`). Nothing here loops over heads or tokens (one loop goes over
four blocks of query rows).

Most metrics are linear in the pattern: metric_i = sum_j A[i, j] W[i, j] for a per-text target
W. Three shapes of W cover them, each with a cheap contraction: a pointer to one key per query
(a gather), flagged keys such as delimiters (one matrix-vector product, less the current and
previous token), and per-query key sets such as earlier copies of the token (sparse: their
members' weights gathered). The reductions that read every weight (entropy, each query's top
key, the mass on each key) go block by block over the query rows, reading only the causal half
of a pattern (`causal_reductions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Names live in classifier.registry (no torch there); re-exported for the scorer's callers.
from classifier.registry import MAX_TRACKED_OFFSET, METRICS, OFFSETS, PARTS, MetricName, check_metric_names  # noqa: F401
from classifier.load.tokens import SequenceClasses
from classifier.thresholds import HOLD_MAX_GAP, HOLD_MIN_QUERIES, HOLD_PEAK_LIFT, HOLD_POSITION_LIFT, HOLD_RETURN_SHARE


@dataclass(frozen=True)
class BatchStats:
    """One batch reduced per text. Shapes: sums (B, L, H, M), counts (B, M), uniform (B, M),
    offset_counts (B, L, H, len(OFFSETS) + 1), the last bin holding larger offsets."""

    sums: torch.Tensor
    counts: torch.Tensor
    uniform: torch.Tensor
    offset_counts: torch.Tensor
    offset_queries: torch.Tensor  # (B,) queries counted in offset_counts
    budget: torch.Tensor | None = None  # (B, L, H, P) budget part sums over queries i >= 1
    budget_uniform: torch.Tensor | None = None  # (B, P) the same under uniform attention
    budget_queries: torch.Tensor | None = None  # (B,) queries i >= 1
    budget_available: torch.Tensor | None = None  # (B, P) queries for which the part has a key
    held: torch.Tensor | None = None  # (B, L, H, 4) KeyView.held: held keys, uniform's; adjacent delimiters, uniform's


# Metrics that read one key per query (a pointer), and the extra offsets the local window needs.
POINTER_TARGETS = (
    "current", "previous", "offset2", "start_of_text", "last_delimiter", "clause_start", "word_start",
    "quote_start", "offset3", "offset4",
)
# Metrics that sum attention over flagged keys 1 <= j <= i - 2 (BOS is never flagged).
FLAGGED_TARGETS = ("delimiter", "proper_noun")
# Metrics that sum attention over a per-query set of keys given as a (T, T) matrix.
PAIR_TARGETS = ("duplicate", "induction")


@dataclass(frozen=True)
class Targets:
    """What one batch's metrics look at; depends on the tokens only, shared by all layers.

    positions (B, K, T): the key each pointer target of POINTER_TARGETS reads, with
    position_ok (B, K, T) where that key exists; key_vectors (B, T, 3): delimiter flag, name
    flag and key position; pairs (B, T, T, 2 + 2) the key sets of PAIR_TARGETS then BUDGET_PAIRS,
    laid out query by query, and pair_keys (N, 4) their members as (text, query, key, set) rows
    (`pair_sums` reads a pattern's weights there); eligible and uniform (B, M, T)
    in METRICS order (padded queries are never eligible); valid (B, T) marks real tokens;
    key_range (B, T, T) the keys 1 <= j <= i - 2 of real queries i (top keys, hold, budget key sets).
    """

    positions: torch.Tensor
    position_ok: torch.Tensor
    key_vectors: torch.Tensor
    pairs: torch.Tensor
    pair_keys: torch.Tensor
    eligible: torch.Tensor
    uniform: torch.Tensor
    valid: torch.Tensor
    key_uniform: torch.Tensor  # (B, T) what uniform attention gives each key from the queries that may count it
    key_range: torch.Tensor
    budget: "BudgetTargets | None" = None
    same_key_token: torch.Tensor | None = None  # (B, T, T) keys j and j' are the same token (hold's null)


# Budget parts read through a pointer (one key per query), in PARTS order after sink/self/previous.
BUDGET_POINTERS = ("word_start", "quote_start", "last_delimiter", "clause_start")
# Budget parts read through a per-query key set, after PAIR_TARGETS in Targets.pairs.
BUDGET_PAIRS = ("duplicate", "induction")
# Offsets whose keys make up the rest of the local window (i - 4 <= j <= i - 2).
LOCAL_REST_OFFSETS = (2, 3, 4)


@dataclass(frozen=True)
class BudgetTargets:
    """How one batch's keys split into the disjoint budget parts of `classifier.registry.PARTS`.

    pointer_ok (B, 4, T): the BUDGET_POINTERS key exists and is not claimed by an earlier part
    (positions are in Targets.positions); pointer_flags (B, 4, T, 2): whether that key is a
    name / a delimiter (those keys are taken out of the flagged parts); local_free (B, 3, T):
    the key at offset 2, 3, 4 belongs to no earlier part; uniform (B, P, T) each part's share
    under uniform attention; eligible (B, T): real queries i >= 1.
    """

    pointer_ok: torch.Tensor
    pointer_flags: torch.Tensor
    local_free: torch.Tensor
    uniform: torch.Tensor
    eligible: torch.Tensor
    available: torch.Tensor  # (B, P, T) the part has at least one key for this query


def _shift_right(x: torch.Tensor, by: int, fill=0) -> torch.Tensor:
    """x[..., i - by] at position i (fill where i < by)."""
    return torch.cat([torch.full_like(x[..., :by], fill), x[..., :-by]], dim=-1)


def metric_targets(tokens: torch.Tensor, classes: SequenceClasses) -> Targets:
    """Targets, eligibility and uniform-attention values of every metric for right-padded
    `tokens` (B, T) whose position 0 is BOS."""
    batch, length = tokens.shape
    device = tokens.device
    pos = torch.arange(length, device=device).expand(batch, length)
    valid = classes.valid
    queries = (pos + 1).float()  # keys each query can see; uniform attention is 1 / queries

    def at_least(k: int) -> torch.Tensor:
        return valid & (pos >= k)

    p, c, w, q = classes.last_delimiter, classes.clause_start, classes.word_first_piece, classes.quote_start
    pointers = {
        "current": pos, "previous": pos - 1, "offset2": pos - 2, "offset3": pos - 3, "offset4": pos - 4,
        "start_of_text": torch.zeros_like(pos), "last_delimiter": p,
        "clause_start": torch.where(c < length, c, -1), "word_start": w, "quote_start": q,
    }
    positions = torch.stack([pointers[t] for t in POINTER_TARGETS], dim=1)
    position_ok = (positions >= 0) & valid[:, None]

    # Flags of keys 1 <= j <= i - 2: a running count up to i - 2 says whether any exists.
    flags = {"delimiter": classes.delimiter, "proper_noun": classes.name}
    flagged_before = {m: _shift_right(f.float().cumsum(-1), 2) for m, f in flags.items()}

    i, j = pos[:, :, None], pos[:, None, :]
    same = tokens[:, None, :] == tokens[:, :, None]  # (B, T, T), symmetric: also the key-by-key token match
    same_token = same & (j < i) & valid[:, :, None]
    # induction: keys j + 1 whose previous token j equals the current token, with j < i - 1.
    induction_set = _shift_right(same_token, 1, False) & (j < i)
    pairs = {"duplicate": same_token, "induction": induction_set}
    key_range = (j >= 1) & (j <= i - 2) & valid[:, :, None]

    budget, budget_pairs = _budget_targets(pos, valid, pointers, classes, flags, flagged_before, pairs, key_range)

    eligible = {
        "current": at_least(1), "previous": at_least(2), "offset2": at_least(3), "local": at_least(5),
        "start_of_text": at_least(1),
        "last_delimiter": at_least(1) & (p >= 1) & (p <= pos - 2),
        "clause_start": at_least(1) & (c >= 1) & (c <= pos - 2),
        "word_start": classes.continuation & (w >= 0) & (w <= pos - 2),
        "quote_start": at_least(1) & (q >= 1) & (q <= pos - 2),
        "entropy": at_least(1), "max_weight": at_least(1), "distance": at_least(1),
        "hold": at_least(3),  # a key other than BOS, itself and the previous token exists
        **{m: valid & (flagged_before[m] > 0) for m in FLAGGED_TARGETS},
        **{m: pairs[m].any(-1) for m in PAIR_TARGETS},
    }
    uniform = {
        **{m: position_ok[:, POINTER_TARGETS.index(m)] / queries for m in POINTER_TARGETS},
        "local": queries.clamp(max=5) / queries,
        **{m: flagged_before[m] / queries for m in FLAGGED_TARGETS},
        **{m: pairs[m].sum(-1) / queries for m in PAIR_TARGETS},
        "entropy": torch.ones_like(queries), "max_weight": 1 / queries, "distance": pos / 2,
        "hold": torch.zeros_like(queries),  # uniform attention has no top key (HOLD_PEAK_LIFT)
    }
    key_sets = torch.stack([pairs[m] for m in PAIR_TARGETS] + budget_pairs, dim=-1)
    return Targets(
        key_uniform=key_uniform(valid),
        positions=positions.clamp(min=0),
        position_ok=position_ok,
        key_vectors=torch.stack([classes.delimiter.float(), classes.name.float(), pos.float()], dim=-1),
        pairs=key_sets,
        pair_keys=key_sets.nonzero(),
        eligible=torch.stack([eligible[m] for m in METRICS], dim=1),
        uniform=torch.stack([uniform[m].float() for m in METRICS], dim=1),
        valid=valid,
        key_range=key_range,
        budget=budget,
        same_key_token=same,
    )


def _budget_targets(pos, valid, pointers, classes, flags, flagged_before, pairs, key_range):
    """Budget targets of one batch, and the (B, T, T) key sets of its BUDGET_PAIRS parts
    (within key_range, Targets.key_range).

    A key goes to the first part of PARTS it qualifies for. BOS, self and previous are positions;
    the word start, opening quote, latest delimiter and clause start are pointers (`pointers`, by
    metric name), kept only when they are at most i - 2 and not an earlier pointer's key; names and other delimiters are flagged keys less
    those pointers; duplicates and induction targets are key sets less everything before them;
    the local rest is offsets 2-4 less everything before; the rest is what is left.
    """
    batch, length = pos.shape
    queries = (pos + 1).float()
    real = valid & (pos >= 1)
    kept = []  # per BUDGET_POINTERS: its key exists in 1..i-2 and is no earlier pointer's kept key
    for name in BUDGET_POINTERS:
        key = pointers[name]
        ok = (key >= 1) & (key <= pos - 2) & (classes.continuation if name == "word_start" else True)
        for earlier, earlier_ok in zip(BUDGET_POINTERS, kept):
            ok = ok & ~(earlier_ok & (key == pointers[earlier]))
        kept.append(ok)
    pointer_ok = torch.stack(kept, dim=1) & real[:, None]  # (B, 4, T)
    pointers = torch.stack([pointers[name] for name in BUDGET_POINTERS], dim=1).clamp(min=0, max=length - 1)

    flag_stack = torch.stack([flags["proper_noun"], flags["delimiter"]], dim=-1)  # (B, T, 2)
    pointer_flags = flag_stack[torch.arange(batch, device=pos.device)[:, None, None], pointers]  # (B, 4, T, 2)
    pointer_flags = pointer_flags & pointer_ok[..., None]

    # Keys claimed before the key-set parts: pointer keys and flagged keys. (B, T, T)
    j = pos[:, None, :]
    claimed = (flags["proper_noun"] | flags["delimiter"])[:, None, :].expand(batch, length, length).clone()
    for k in range(len(BUDGET_POINTERS)):
        claimed |= (j == pointers[:, k, :, None]) & pointer_ok[:, k, :, None]
    duplicate = pairs["duplicate"] & key_range & ~claimed
    induction = pairs["induction"] & key_range & ~claimed & ~duplicate
    claimed = claimed | duplicate | induction

    offsets = torch.tensor(LOCAL_REST_OFFSETS, device=pos.device)
    keys = (pos[:, None, :] - offsets[None, :, None])  # (B, 3, T)
    taken = claimed.gather(2, keys.clamp(min=0).transpose(1, 2)).transpose(1, 2)  # (B, 3, T)
    local_free = (keys >= 1) & ~taken & real[:, None]

    def count_before(flag_index: int, metric: str) -> torch.Tensor:
        return flagged_before[metric] - pointer_flags[..., flag_index].float().sum(1)

    parts = {
        "sink": torch.ones_like(queries),
        "self": torch.ones_like(queries),
        "previous": (pos >= 2).float(),
        **{name: pointer_ok[:, k].float() for k, name in enumerate(BUDGET_POINTERS)},
        "name": count_before(0, "proper_noun"),
        "other_delimiter": count_before(1, "delimiter"),
        "duplicate": duplicate.sum(-1).float(),
        "induction": induction.sum(-1).float(),
        "local_rest": local_free.sum(1).float(),
    }
    parts["rest"] = queries - sum(parts.values())
    uniform = torch.stack([parts[name] / queries for name in PARTS], dim=1) * real[:, None]
    available = torch.stack([parts[name] > 0.5 for name in PARTS], dim=1) & real[:, None]
    budget = BudgetTargets(
        pointer_ok=pointer_ok, pointer_flags=pointer_flags, local_free=local_free, uniform=uniform, eligible=real,
        available=available,
    )
    return budget, [duplicate, induction]


def key_uniform(valid: torch.Tensor) -> torch.Tensor:
    """What uniform attention gives each key j from the real queries i >= j + 2 (the queries for
    which j is neither itself nor the previous token): sum of 1 / (i + 1). (B, T); BOS gets 0."""
    length = valid.shape[1]
    pos = torch.arange(length, device=valid.device)
    per_query = valid.float() / (pos + 1)
    from_here_on = per_query.flip(-1).cumsum(-1).flip(-1)  # sum over i >= j
    later = torch.cat([from_here_on[:, 2:], torch.zeros_like(from_here_on[:, :2])], dim=1)  # i >= j + 2
    return torch.where(valid & (pos >= 1), later, 0.0)


# The smallest normal float32. The log runs about 9x slower on zeros and subnormals (measured:
# 93 ms against 10 ms over 2 x 16 x 512^2 weights, one CPU thread), and causal patterns are
# full of zeros: weights are raised to it before the log. A weight below it adds under 1e-36 to
# p ln p, far below float32's resolution of a row's entropy.
SMALLEST_NORMAL = torch.finfo(torch.float32).tiny
# Row blocks of the reductions that read every weight of a pattern (entropy, the top key and the
# mass over keys 1 <= j <= i - 2): rows [a, b) of a causal pattern have no weight on keys j >= b,
# so block by block they read 5/8 of the T^2 weights with 4 blocks (1/2 + 1/(2 x blocks)).
CAUSAL_BLOCKS = 4


class Workspace:
    """A float32 buffer that every layer and batch of one scoring run computes its pattern-sized
    temporaries in, grown to the largest asked for. A fresh tensor of that size costs its page
    faults every time (about 15 ms for 32 MiB on one CPU thread when freed memory goes back to
    the system, `batches.return_freed_memory`); this one is faulted in once."""

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None

    def take(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """A float32 tensor of `shape` on `device` backed by the buffer (its values are whatever
        the last user left)."""
        size = int(np.prod(shape))
        if self.buffer is None or self.buffer.numel() < size or self.buffer.device != device:
            self.buffer = None  # the old one goes before the new one is allocated
            self.buffer = torch.empty(size, dtype=torch.float32, device=device)
        return self.buffer[:size].view(shape)


def causal_row_blocks(length: int) -> list[tuple[int, int]]:
    """Query rows [start, stop) of CAUSAL_BLOCKS blocks covering 0..length - 1 (none empty)."""
    edges = [length * k // CAUSAL_BLOCKS for k in range(CAUSAL_BLOCKS + 1)]
    return [(start, stop) for start, stop in zip(edges, edges[1:]) if stop > start]


@dataclass(frozen=True)
class CausalReductions:
    """The reductions of a pattern (B, H, T, T) that read all its weights, each (B, H, T): every
    query's entropy -sum_j p ln p (0 ln 0 = 0); its top key over keys 1 <= j <= i - 2 (BOS, itself
    and the previous token have roles of their own) and that key's weight (0 and key 0 where the
    query has no such key: queries i < 3, padding); and the mass each key j gets from the real
    queries i >= j + 2 (top keys, `KeyView.mass`)."""

    entropy: torch.Tensor
    top_key: torch.Tensor
    top_weight: torch.Tensor
    mass: torch.Tensor


def causal_reductions(patterns: torch.Tensor, key_range: torch.Tensor, workspace: Workspace) -> CausalReductions:
    """`CausalReductions` of float32 `patterns` (B, H, T, T), with Targets.key_range (B, T, T): row
    block by row block (`causal_row_blocks`), each block's temporaries in `workspace`."""
    batch, n_heads, length, _ = patterns.shape
    entropy = patterns.new_empty(batch, n_heads, length)
    top_weight = patterns.new_empty(batch, n_heads, length)
    top_key = torch.empty(batch, n_heads, length, dtype=torch.long, device=patterns.device)
    mass = patterns.new_zeros(batch, n_heads, length)
    zero = patterns.new_zeros(())
    for start, stop in causal_row_blocks(length):
        rows = patterns[:, :, start:stop, :stop]
        work = workspace.take(rows.shape, patterns.device)
        torch.clamp(rows, min=SMALLEST_NORMAL, out=work)
        work.log_()
        work.mul_(rows)
        entropy[:, :, start:stop] = -work.sum(-1)
        torch.where(key_range[:, None, start:stop, :stop], rows, zero, out=work)  # keys 1 <= j <= i - 2 only
        top_weight[:, :, start:stop], top_key[:, :, start:stop] = work.max(-1)
        mass[:, :, :stop] += work.sum(-2)
    return CausalReductions(entropy=entropy, top_key=top_key, top_weight=top_weight, mass=mass)


def held_keys(patterns: torch.Tensor, key: torch.Tensor, top: torch.Tensor, targets: Targets) -> torch.Tensor:
    """Which queries hold a key position (B, H, T) bool, from patterns (B, H, T, T) and each
    query's top key over keys 1 <= j <= i - 2 and its weight (B, H, T; `causal_reductions`).

    A query's top key is its argmax over keys 1 <= j <= i - 2, counted when it gets at least
    HOLD_PEAK_LIFT times uniform attention's 1 / (i + 1). The query holds it when
    - a run: the same key position is the counted top key of at least HOLD_MIN_QUERIES queries
      linked one to the next with at most HOLD_MAX_GAP queries between them (a soft holder's
      excursion to another key, or a query that sends its attention to BOS or itself);
    - released: the key is the counted top key of at most HOLD_RETURN_SHARE times the run's
      queries outside the run. A holder moves on (the next sentence's subject, the next
      paragraph's first word) and does not come back; a head that prefers a key token (a random
      head's favourite word) returns to it from all over the story;
    - a position, not a token: the key gets at least HOLD_POSITION_LIFT times the mean weight of
      the keys in range with the same token (itself included), what the key would get if the
      head's attention on each token were shuffled among that token's positions (a token seen
      once in range passes: the release decides there).
    """
    batch, n_heads, length, _ = patterns.shape
    pos = torch.arange(length, device=patterns.device)
    counted = targets.valid[:, None, :] & (pos >= 3) & (top >= HOLD_PEAK_LIFT / (pos + 1))
    # Links: a counted query continues the nearest counted query at most HOLD_MAX_GAP + 1 back with
    # the same top key; each run is the chain of links to its first query (found by pointer doubling).
    link = pos.expand(batch, n_heads, length).clone()
    for back in range(HOLD_MAX_GAP + 1, 0, -1):
        earlier = torch.cat([torch.zeros_like(counted[..., :back]), counted[..., :-back]], -1)
        same = torch.cat([torch.full_like(key[..., :back], -1), key[..., :-back]], -1) == key
        link = torch.where(counted & earlier & same, pos - back, link)
    first = link
    for _ in range(max(length - 1, 1).bit_length()):
        first = first.gather(-1, first)
    run_length = torch.zeros_like(key).scatter_add_(-1, first, counted.long()).gather(-1, first)
    key_count = torch.zeros_like(key).scatter_add_(-1, key, counted.long()).gather(-1, key)
    released = key_count - run_length <= HOLD_RETURN_SHARE * run_length
    candidate = counted & (run_length >= HOLD_MIN_QUERIES) & released
    # The null, on the candidate queries only (N of them): the mean weight of the keys in range
    # that are the top key's token, from the key-by-key token match at the top key's row. (N, T)
    b, h, i = candidate.nonzero(as_tuple=True)
    twins = targets.same_key_token[b, key[b, h, i]] & targets.key_range[b, i]
    copies = twins.sum(-1)  # the top key is its own twin: >= 1
    mean = (patterns[b, h, i] * twins).sum(-1) / copies  # twins are keys 1 <= j <= i - 2
    held = torch.zeros_like(counted)
    held[b, h, i] = (top[b, h, i] >= HOLD_POSITION_LIFT * mean) | (copies == 1)
    return held


@dataclass(frozen=True)
class KeyView:
    """One layer's attention on keys other than BOS, the query itself and the previous token.

    mass (B, H, T): attention key j gets from the real queries i >= j + 2 (summed over them);
    held (B, H, 4 + P): per text, the attention held keys (`held_keys`) get from the queries holding
    them, and what uniform attention would give those same keys; then the attention on the query
    itself or the previous token where that is a delimiter, and uniform attention's; then the
    held keys' attention split by the budget part each held key is for its query (PARTS order:
    a clause-start head holds clause starts). Sums over queries. argmax and top (B, H, T): each
    query's key with the most attention over all its keys, and that weight (`row_max`)."""

    mass: torch.Tensor
    held: torch.Tensor
    argmax: torch.Tensor
    top: torch.Tensor


def row_max(restricted_top: torch.Tensor, restricted_key: torch.Tensor, bos: torch.Tensor, previous: torch.Tensor,
            current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query row's largest weight and its key, as `patterns.max(-1)` gives them (the first
    key of a tie), from the largest over keys 1 <= j <= i - 2 (`held_keys`) and the weights on
    the three keys outside them: BOS, the previous token (0 at query 0) and the query itself
    (B, H, T) each. A pass over the pattern for an index costs as much as the pattern's other
    reductions together (8 ms against 1 ms for the values alone over 2 x 16 x 512^2 weights);
    this reads 4 numbers a query. Padded queries get BOS and 0."""
    pos = torch.arange(bos.shape[-1], device=bos.device).expand_as(restricted_key)
    top, key = bos, torch.zeros_like(restricted_key)
    for weight, at in ((restricted_top, restricted_key), (previous, pos - 1), (current, pos)):  # in key order
        later = weight > top  # a tie keeps the earlier key
        top, key = torch.where(later, weight, top), torch.where(later, at, key)
    return top, key


def score_patterns(
    patterns: torch.Tensor, targets: Targets, argmax: torch.Tensor | None = None, *, with_budget: bool = False,
    with_keys: bool = False, max_weight: torch.Tensor | None = None, workspace: Workspace | None = None,
) -> tuple[torch.Tensor, ...]:
    """Reduce one layer's patterns (B, H, T, T) to per-text sums over eligible queries.

    `targets` come from `metric_targets` (they depend on the tokens only, so one batch computes
    them once for all layers). `argmax` (B, H, T), the key each query attends to most, and
    `max_weight`, its weight, may be passed (both, or they come from `row_max`);
    `workspace` holds the pattern-sized temporaries (a run's passes reuse one). Returns sums (B, H, M) and argmax-offset counts (B, H, O),
    then with `with_budget` the budget part sums (B, H, P), then with `with_keys` a `KeyView`.
    """
    batch, n_heads, length, _ = patterns.shape
    patterns = patterns.float()
    pos = torch.arange(length, device=patterns.device)
    reduced = causal_reductions(patterns, targets.key_range, workspace or Workspace())
    held_key, top = reduced.top_key, reduced.top_weight
    held = held_keys(patterns, held_key, top, targets)

    # Pointer targets: gather one key per query. (B, H, T, K)
    index = targets.positions.transpose(1, 2)[:, None].expand(batch, n_heads, length, -1)
    gathered = patterns.gather(-1, index) * targets.position_ok.transpose(1, 2)[:, None]
    per_query = dict(zip(POINTER_TARGETS, gathered.unbind(-1)))
    per_query["local"] = sum(per_query[t] for t in ("current", "previous", "offset2", "offset3", "offset4"))

    # Flagged keys and key positions in one product, (3, T) x (T, T)^T per head: the same sums as
    # patterns @ key_vectors, about twice as fast on a CPU (a product with 3 rows, not 3 columns). (B, H, 3, T)
    keyed = targets.key_vectors.transpose(1, 2)[:, None] @ patterns.transpose(-1, -2)
    key_flags = targets.key_vectors[..., :2]  # (B, T, 2)
    for k, metric in enumerate(FLAGGED_TARGETS):
        # all flagged keys, less the current and previous token (kept out by definition)
        per_query[metric] = (
            keyed[:, :, k]
            - per_query["current"] * key_flags[:, None, :, k]
            - per_query["previous"] * _shift_right(key_flags[..., k], 1)[:, None]
        )
    per_query["distance"] = pos - keyed[:, :, 2]

    summed = pair_sums(patterns, targets.pair_keys, targets.pairs.shape[-1])  # (B, H, 2 (+2 budget), T)
    per_query.update(zip(PAIR_TARGETS, summed[:, :, : len(PAIR_TARGETS)].unbind(2)))

    # Entropy normalised by its maximum ln(i + 1). Query 0 is never eligible.
    per_query["entropy"] = reduced.entropy / torch.log1p(pos.clamp(min=1).float())
    if argmax is None or max_weight is None:
        max_weight, argmax = row_max(top, held_key, per_query["start_of_text"], per_query["previous"], per_query["current"])
    per_query["max_weight"] = max_weight.float()
    per_query["hold"] = held.float()
    stacked = torch.stack([per_query[m] for m in METRICS], dim=2)  # (B, H, M, T)
    # where, not a product: a NaN in a padded query row must not reach the sums (NaN * 0 = NaN)
    sums = torch.where(targets.eligible[:, None], stacked, 0.0).sum(-1)

    offsets = (pos - argmax).clamp(max=MAX_TRACKED_OFFSET + 1)  # (B, H, T)
    counted = offset_queries(targets).float()[:, None, :].expand(batch, n_heads, length)
    offset_counts = patterns.new_zeros(batch, n_heads, len(OFFSETS) + 1).scatter_add_(-1, offsets, counted)
    result = (sums, offset_counts)
    if with_budget:
        result += (_budget_sums(per_query, gathered, summed[:, :, len(PAIR_TARGETS):], targets.budget),)
    if with_keys:
        held_uniform = held.float() / (pos + 1)
        # A delimiter that is the query itself or the previous token (those parts take it in the
        # budget): a latest-delimiter head's attention on it, and uniform attention's, over real
        # queries i >= 1 (the previous token from i >= 2, as in the budget).
        delimiter = targets.key_vectors[..., 0]
        real = targets.valid & (pos >= 1)
        previous_delimiter = _shift_right(delimiter, 1) * (pos >= 2)  # (B, T)
        adjacent_keys = delimiter + previous_delimiter
        adjacent = per_query["current"] * delimiter[:, None] + per_query["previous"] * previous_delimiter[:, None]
        adjacent = torch.where(real[:, None], adjacent, 0.0)
        adjacent_uniform = torch.where(real, adjacent_keys / (pos + 1), 0.0)[:, None].expand_as(adjacent)
        held_weight = top * held
        held_columns = [held_weight.sum(-1), held_uniform.sum(-1), adjacent.sum(-1), adjacent_uniform.sum(-1)]
        held_parts = torch.zeros(batch, n_heads, len(PARTS), device=patterns.device).scatter_add_(
            -1, argmax_parts(held_key, targets), held_weight)
        result += (KeyView(mass=reduced.mass, held=torch.cat([torch.stack(held_columns, -1), held_parts], -1), argmax=argmax, top=max_weight),)
    return result


def pair_sums(patterns: torch.Tensor, pair_keys: torch.Tensor, n_sets: int) -> torch.Tensor:
    """sum_j A[i, j] W[i, j] for every head and key set: patterns (B, H, T, T), the members of the
    key sets as (text, query, key, set) rows (Targets.pair_keys) -> (B, H, n_sets, T). The sets are
    sparse (earlier copies of the query's token, the tokens after them): gathering their weights
    reads thousands of weights a story where a product with the (T, T) sets reads all of them."""
    batch, n_heads, length, _ = patterns.shape
    text, query, key, key_set = pair_keys.unbind(1)
    sums = patterns.new_zeros(batch * n_sets * length, n_heads)
    # index_add_ adds the members in order (index_put_'s accumulate does not on a CPU: its sums
    # moved in the 7th digit from run to run)
    sums.index_add_(0, (text * n_sets + key_set) * length + query, patterns[text, :, query, key])
    return sums.view(batch, n_sets, length, n_heads).permute(0, 3, 1, 2)


def argmax_parts(argmax: torch.Tensor, targets: Targets) -> torch.Tensor:
    """The budget part (index into PARTS) of each query's argmax key. argmax (B, H, T) -> (B, H, T).

    The same cascade as the budget: a key goes to the first part it qualifies for.
    """
    budget = targets.budget
    batch, n_heads, length = argmax.shape
    i = torch.arange(length, device=argmax.device)
    j = argmax
    part = torch.full_like(j, PARTS.index("rest"))

    def assign(where: torch.Tensor, name: str) -> None:
        nonlocal part
        part = torch.where(where, PARTS.index(name), part)

    assign(((i - j) >= LOCAL_REST_OFFSETS[0]) & ((i - j) <= LOCAL_REST_OFFSETS[-1]) & (j >= 1), "local_rest")
    # (B, H, T, 2): whether each query's argmax is in its duplicate, induction set less claimed keys
    key_sets = targets.pairs[:, None, :, :, len(PAIR_TARGETS):].expand(batch, n_heads, length, length, -1)
    hits = key_sets.gather(3, j[..., None, None].expand(-1, -1, -1, 1, len(BUDGET_PAIRS)))[..., 0, :]
    for k, name in reversed(list(enumerate(BUDGET_PAIRS))):
        assign(hits[..., k], name)
    in_range = (j >= 1) & (j <= i - 2)
    key_flags = targets.key_vectors[..., :2].bool()  # (B, T, 2) in FLAGGED_TARGETS order
    flag_at = key_flags[:, None].expand(batch, n_heads, length, 2).gather(2, j[..., None].expand(-1, -1, -1, 2))
    assign(flag_at[..., FLAGGED_TARGETS.index("delimiter")] & in_range, "other_delimiter")
    assign(flag_at[..., FLAGGED_TARGETS.index("proper_noun")] & in_range, "name")
    for k, name in reversed(list(enumerate(BUDGET_POINTERS))):
        pointer = targets.positions[:, POINTER_TARGETS.index(name)][:, None]  # (B, 1, T)
        assign((j == pointer) & budget.pointer_ok[:, k][:, None], name)
    assign(j == i - 1, "previous")
    assign(j == i, "self")
    assign(j == 0, "sink")
    return part


def _budget_sums(per_query: dict, gathered: torch.Tensor, set_sums: torch.Tensor, budget: BudgetTargets) -> torch.Tensor:
    """Per-text sums (B, H, P) of each budget part over real queries i >= 1.

    Reuses the metric contractions: pointer parts are gathered keys, flagged parts are the
    flagged sums less the pointer keys among them, key-set parts come from `pair_sums`.
    """
    pointer_index = [POINTER_TARGETS.index(name) for name in BUDGET_POINTERS]
    pointers = gathered[..., pointer_index] * budget.pointer_ok.transpose(1, 2)[:, None]  # (B, H, T, 4)
    flags = budget.pointer_flags.transpose(1, 2)[:, None].float()  # (B, 1, T, 4, 2)
    offsets = gathered[..., [POINTER_TARGETS.index(f"offset{k}") for k in LOCAL_REST_OFFSETS]]
    at_previous = per_query["previous"] * (torch.arange(gathered.shape[2], device=gathered.device) >= 2)
    parts = {
        "sink": per_query["start_of_text"],
        "self": per_query["current"],
        "previous": at_previous,
        **dict(zip(BUDGET_POINTERS, pointers.unbind(-1))),
        "name": per_query["proper_noun"] - (pointers * flags[..., 0]).sum(-1),
        "other_delimiter": per_query["delimiter"] - (pointers * flags[..., 1]).sum(-1),
        "duplicate": set_sums[:, :, 0],
        "induction": set_sums[:, :, 1],
        "local_rest": (offsets * budget.local_free.transpose(1, 2)[:, None]).sum(-1),
    }
    parts["rest"] = 1.0 - sum(parts.values())
    stacked = torch.stack([parts[name] for name in PARTS], dim=2)  # (B, H, P, T)
    return torch.where(budget.eligible[:, None, None], stacked, 0.0).sum(-1)


def offset_queries(targets: Targets) -> torch.Tensor:
    """Queries counted for argmax offsets: real tokens at i >= MAX_TRACKED_OFFSET. (B, T)."""
    length = targets.valid.shape[1]
    return targets.valid & (torch.arange(length, device=targets.valid.device) >= MAX_TRACKED_OFFSET)


def query_stats(targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-text eligible-query counts (B, M), uniform-attention sums (B, M), offset queries (B,)."""
    eligible = targets.eligible.float()
    return eligible.sum(-1), (targets.uniform * eligible).sum(-1), offset_queries(targets).float().sum(-1)


def budget_query_stats(targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-text uniform-attention budget sums (B, P), budget query counts (B,), and counts of the
    queries for which each part has a key at all (B, P)."""
    budget = targets.budget
    return budget.uniform.sum(-1), budget.eligible.float().sum(-1), budget.available.float().sum(-1)


_STAT_FIELDS = ("sums", "counts", "uniform", "offset_counts", "offset_queries", "budget", "budget_uniform", "budget_queries",
                "budget_available", "held")


@dataclass(frozen=True)
class TextStats:
    """Per-text statistics of a corpus (numpy, float64), in corpus order.

    sums (N, L, H, M) | counts (N, M) | uniform (N, M) | offset_counts (N, L, H, O) |
    offset_queries (N,). Corpus metric = sums.sum(0) / counts.sum(0).
    """

    sums: np.ndarray
    counts: np.ndarray
    uniform: np.ndarray
    offset_counts: np.ndarray
    offset_queries: np.ndarray
    budget: np.ndarray | None = None  # (N, L, H, P)
    budget_uniform: np.ndarray | None = None  # (N, P)
    budget_queries: np.ndarray | None = None  # (N,)
    budget_available: np.ndarray | None = None  # (N, P)
    held: np.ndarray | None = None  # (N, L, H, 2) attention on held top keys, and uniform attention's on them

    @classmethod
    def from_batches(cls, batches: list[BatchStats], order: np.ndarray | None = None) -> "TextStats":
        """Concatenate batch statistics; `order[k]` is the corpus index of the k-th text seen."""
        names = [n for n in _STAT_FIELDS if all(getattr(b, n) is not None for b in batches)]
        fields = {name: np.concatenate([getattr(b, name).double().cpu().numpy() for b in batches]) for name in names}
        if order is not None:
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            fields = {name: value[inverse] for name, value in fields.items()}
        return cls(**fields)

    @classmethod
    def merge(cls, parts: list["TextStats"]) -> "TextStats":
        """Texts of several shards, in the order given."""
        names = [n for n in _STAT_FIELDS if all(getattr(p, n) is not None for p in parts)]
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})

    @property
    def n_texts(self) -> int:
        return self.counts.shape[0]

    def corpus_metrics(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token-weighted metric values (..., L, H, M) and uniform expectations (..., M).

        `weights` (R, N) reweights texts (bootstrap resamples); NaN where nothing was eligible.
        """
        if weights is None:
            sums, counts, uniform = self.sums.sum(0), self.counts.sum(0), self.uniform.sum(0)
        else:
            sums = np.einsum("rn,nlhm->rlhm", weights, self.sums)
            counts, uniform = weights @ self.counts, weights @ self.uniform
        with np.errstate(invalid="ignore", divide="ignore"):
            values = sums / counts[..., None, None, :]
            expected = uniform / counts
        return values, expected

    def budget_shares(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each budget part's share of attention (..., L, H, P), under uniform attention (..., P),
        and the share of queries for which the part has a key at all (..., P); token-weighted over
        queries i >= 1; `weights` (R, N) reweights texts."""
        if weights is None:
            sums, uniform, queries = self.budget.sum(0), self.budget_uniform.sum(0), self.budget_queries.sum()
            available = self.budget_available.sum(0)
        else:
            sums = np.einsum("rn,nlhp->rlhp", weights, self.budget)
            uniform, queries = weights @ self.budget_uniform, weights @ self.budget_queries
            available = weights @ self.budget_available
        queries = np.asarray(queries)[..., None]  # (..., 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / queries[..., None, None, :], uniform / queries, available / queries

    def held_shares(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Share of all attention (queries i >= 1) that held top keys get from the queries holding
        them, and what uniform attention gives the same keys: (..., L, H, 2); `weights` (R, N)."""
        return _per_head_share(self.held, self.budget_queries, weights)

    def offset_shares(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Share of queries (i >= MAX_TRACKED_OFFSET) whose argmax is at each offset: (L, H, O),
        or (R, L, H, O) with text `weights` (R, N)."""
        return _per_head_share(self.offset_counts, self.offset_queries, weights)


def _per_head_share(sums: np.ndarray, queries: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Per-text sums (N, L, H, K) over per-text query counts (N,), summed over texts: (L, H, K),
    or (R, L, H, K) with text `weights` (R, N)."""
    if weights is None:
        sums, queries = sums.sum(0), queries.sum()
    else:
        sums = np.einsum("rn,nlhk->rlhk", weights, sums)
        queries = (weights @ queries)[:, None, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / queries
