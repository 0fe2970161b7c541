"""Per-head attention metrics of section 3 of the design notes, as pure tensor functions.

`score_patterns` reduces one batch of attention patterns (B, H, T, T) to per-text sums over
eligible queries, per-text counts of eligible queries, and per-text sums of what uniform
attention would give. Corpus figures are ratios of sums, so batches, shards and processes merge
exactly by adding (see `TextStats`). Nothing here loops over heads or tokens.

Most metrics are linear in the pattern: metric_i = sum_j A[i, j] W[i, j] for a per-text target
matrix W (a one-hot row for "attention on position p(i)", a set of ones for "attention on all
delimiters"). They are computed together as one batched contraction against stacked targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch

from classifier.tokens import SequenceClasses

MetricName = Literal[
    "current",
    "previous",
    "offset2",
    "local",
    "start_of_text",
    "delimiter",
    "last_delimiter",
    "clause_start",
    "proper_noun",
    "word_start",
    "duplicate",
    "induction",
    "entropy",
    "max_weight",
    "distance",
]
METRICS: tuple[MetricName, ...] = get_args(MetricName)
LINEAR_METRICS: tuple[MetricName, ...] = METRICS[:12] + ("distance",)
# Argmax offsets tracked for the `positional` role (offset i - argmax_j A[i, j]); queries with
# i < MAX_TRACKED_OFFSET are left out so that every tracked offset is possible for each query.
MAX_TRACKED_OFFSET = 8
OFFSETS = tuple(range(MAX_TRACKED_OFFSET + 1))


def check_metric_names(names) -> None:
    """Raise ValueError listing every unknown metric name and the valid ones."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s): {', '.join(unknown)}; valid: {', '.join(METRICS)}")


@dataclass(frozen=True)
class BatchStats:
    """One batch reduced per text. Shapes: sums (B, L, H, M), counts (B, M), uniform (B, M),
    offset_counts (B, L, H, len(OFFSETS) + 1), the last bin holding larger offsets."""

    sums: torch.Tensor
    counts: torch.Tensor
    uniform: torch.Tensor
    offset_counts: torch.Tensor
    offset_queries: torch.Tensor  # (B,) queries counted in offset_counts


@dataclass(frozen=True)
class Targets:
    """What one batch's metrics look at; depends on the tokens only, shared by all layers.

    weights (B, M_lin, T, T) in LINEAR_METRICS order; eligible (B, M, T) in METRICS order
    (padded queries are never eligible); valid (B, T) marks real tokens.
    """

    weights: torch.Tensor
    eligible: torch.Tensor
    valid: torch.Tensor


def metric_targets(tokens: torch.Tensor, classes: SequenceClasses) -> Targets:
    """Target matrices and eligibility of every metric for right-padded `tokens` (B, T)."""
    batch, length = tokens.shape
    device = tokens.device
    pos = torch.arange(length, device=device)
    i = pos.view(1, length, 1)  # query index
    j = pos.view(1, 1, length)  # key index
    valid_query = classes.valid.view(batch, length, 1)
    causal = (j <= i) & valid_query

    def one_hot_at(target: torch.Tensor) -> torch.Tensor:
        """W[b, i, target[b, i]] = 1 where 0 <= target < T."""
        return (j == target.unsqueeze(-1)) & (target.unsqueeze(-1) >= 0) & valid_query

    def query_at_least(k: int) -> torch.Tensor:
        return classes.valid & (pos >= k)

    away_from_recent = (j >= 1) & (j <= i - 2)  # keeps current/previous heads out of these
    delimiter_set = classes.delimiter.view(batch, 1, length) & away_from_recent & valid_query
    name_set = classes.name.view(batch, 1, length) & away_from_recent & valid_query
    same_token = (tokens.view(batch, 1, length) == tokens.view(batch, length, 1)) & (j < i) & valid_query
    # induction: keys j + 1 whose previous token j equals the current token, with j < i - 1.
    shifted_same = torch.cat([torch.zeros_like(same_token[..., :1]), same_token[..., :-1]], dim=-1)
    induction_set = shifted_same & (j < i) & valid_query

    p = classes.last_delimiter
    c = classes.clause_start
    w = classes.word_first_piece
    targets = {
        "current": one_hot_at(pos.expand(batch, length)),
        "previous": one_hot_at((pos - 1).expand(batch, length)),
        "offset2": one_hot_at((pos - 2).expand(batch, length)),
        "local": causal & (j >= i - 4),
        "start_of_text": one_hot_at(torch.zeros_like(tokens)),
        "delimiter": delimiter_set,
        "last_delimiter": one_hot_at(p),
        "clause_start": one_hot_at(torch.where((c >= 1) & (c < length), c, -1)),
        "proper_noun": name_set,
        "word_start": one_hot_at(w),
        "duplicate": same_token,
        "induction": induction_set,
        "distance": causal * (i - j),
    }
    eligible = {
        "current": query_at_least(1),
        "previous": query_at_least(2),
        "offset2": query_at_least(3),
        "local": query_at_least(5),
        "start_of_text": query_at_least(1),
        "delimiter": delimiter_set.any(-1),
        "last_delimiter": query_at_least(1) & (p >= 1) & (p <= pos - 2),
        "clause_start": query_at_least(1) & (c >= 1) & (c <= pos - 2),
        "proper_noun": name_set.any(-1),
        "word_start": classes.continuation & (w >= 0) & (w <= pos - 2),
        "duplicate": same_token.any(-1),
        "induction": induction_set.any(-1),
        "entropy": query_at_least(1),
        "max_weight": query_at_least(1),
        "distance": query_at_least(1),
    }
    return Targets(
        weights=torch.stack([targets[m].float() for m in LINEAR_METRICS], dim=1),
        eligible=torch.stack([eligible[m] for m in METRICS], dim=1),
        valid=classes.valid,
    )


def score_patterns(patterns: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Reduce one layer's patterns (B, H, T, T) to per-text sums over eligible queries.

    `targets` come from `metric_targets` (they depend on the tokens only, so one batch computes
    them once for all layers). Returns sums (B, H, M) and argmax-offset counts (B, H, O).
    """
    length = patterns.shape[-1]
    weights, eligible = targets.weights, targets.eligible
    patterns = patterns.float()
    pos = torch.arange(length, device=patterns.device)

    # Linear metrics: contract each query row with its targets. (B, H, M_lin, T)
    per_query = torch.einsum("bhij,bmij->bhmi", patterns, weights)
    by_name = dict(zip(LINEAR_METRICS, per_query.unbind(dim=2)))
    # Entropy normalised by its maximum ln(i + 1); 0 ln 0 = 0. Query 0 is never eligible.
    plogp = torch.where(patterns > 0, patterns * patterns.clamp_min(1e-30).log(), torch.zeros_like(patterns))
    by_name["entropy"] = -plogp.sum(-1) / torch.log1p(pos.clamp(min=1).float())
    by_name["max_weight"] = patterns.amax(-1)
    per_query_all = torch.stack([by_name[m] for m in METRICS], dim=2)  # (B, H, M, T)
    sums = (per_query_all * eligible.float()[:, None]).sum(-1)

    offsets = (pos - patterns.argmax(-1)).clamp(max=MAX_TRACKED_OFFSET + 1)  # (B, H, T)
    counted = offset_queries(targets)
    one_hot = torch.nn.functional.one_hot(offsets, len(OFFSETS) + 1).float()
    offset_counts = (one_hot * counted.float()[:, None, :, None]).sum(-2)
    return sums, offset_counts


def offset_queries(targets: Targets) -> torch.Tensor:
    """Queries counted for argmax offsets: real tokens at i >= MAX_TRACKED_OFFSET. (B, T)."""
    length = targets.valid.shape[1]
    return targets.valid & (torch.arange(length, device=targets.valid.device) >= MAX_TRACKED_OFFSET)


def query_stats(targets: Targets) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-text eligible-query counts (B, M), uniform-attention sums (B, M), offset queries (B,)."""
    weights, eligible = targets.weights, targets.eligible
    batch, _, length = eligible.shape
    pos = torch.arange(length, device=weights.device)
    eligible_f = eligible.float()
    # Uniform attention puts 1 / (i + 1) on every j <= i.
    uniform_linear = weights.sum(-1) / (pos + 1).float()  # (B, M_lin, T)
    uniform_by_name = dict(zip(LINEAR_METRICS, uniform_linear.unbind(dim=1)))
    uniform_by_name["entropy"] = torch.ones(batch, length, device=weights.device)
    uniform_by_name["max_weight"] = (1.0 / (pos + 1).float()).expand(batch, length)
    uniform = torch.stack([uniform_by_name[m] for m in METRICS], dim=1)
    return eligible_f.sum(-1), (uniform * eligible_f).sum(-1), offset_queries(targets).float().sum(-1)


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

    @classmethod
    def from_batches(cls, batches: list[BatchStats], order: np.ndarray | None = None) -> "TextStats":
        """Concatenate batch statistics; `order[k]` is the corpus index of the k-th text seen."""
        fields = {
            name: np.concatenate([getattr(b, name).double().cpu().numpy() for b in batches])
            for name in ("sums", "counts", "uniform", "offset_counts", "offset_queries")
        }
        if order is not None:
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            fields = {name: value[inverse] for name, value in fields.items()}
        return cls(**fields)

    @classmethod
    def merge(cls, parts: list["TextStats"]) -> "TextStats":
        """Texts of several shards, in the order given."""
        return cls(**{
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in ("sums", "counts", "uniform", "offset_counts", "offset_queries")
        })

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

    def offset_shares(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Share of queries (i >= MAX_TRACKED_OFFSET) whose argmax is at each offset: (L, H, O),
        or (R, L, H, O) with text `weights` (R, N)."""
        if weights is None:
            counts, queries = self.offset_counts.sum(0), self.offset_queries.sum()
        else:
            counts = np.einsum("rn,nlho->rlho", weights, self.offset_counts)
            queries = (weights @ self.offset_queries)[:, None, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return counts / queries
