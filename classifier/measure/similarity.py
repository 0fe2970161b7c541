"""Which heads do the same thing: similarity of attention distributions, and groups of heads.

The similarity of heads a and b is one minus the total-variation distance of their attention
distributions over the same queries, averaged (token-weighted) over every query i >= 1 of the
stories: 1 - TV(A_a[i], A_b[i]) = sum_j min(A_a[i, j], A_b[i, j]), since each row sums to one.
Identical heads score 1; heads that never attend to the same key score 0. Heads of different
layers are compared alike (same stories, same query positions). Query 0 is left out: its row is
forced onto BOS for every head.

`head_similarity` runs the stories (forward passes stopped after the last layer's pattern) and
reduces each batch's patterns to the sum over queries of every pair's overlap, so memory does not
grow with the stories; a batch holds every layer's pattern and the float32 copy of their counted
entries (PATTERN_COPIES per layer), within PASS_BUDGET (classifier.measure.batches.attention_batches). `similar_heads` ranks the other heads of each head; `head_groups` groups
heads by average-linkage clustering (scipy) on the distance 1 - similarity.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from classifier.load.models import LoadedModel
from classifier.measure.ablation import advance
from classifier.measure.batches import attention_batches
from classifier.measure.scorer import layer_patterns
from classifier.thresholds import DEFAULT_THRESHOLDS

# (query, key) entries taken to float64 at once: bounds that copy to heads x 2**18 x 8 bytes
# (64 heads: 128 MiB) however long the stories of a batch.
ENTRIES_PER_CHUNK = 2**18
# Copies of a layer's attention weights a similarity pass holds: the patterns, their counted
# (query, key) entries (about half of them) and that part of one layer before it joins the rest.
PATTERN_COPIES = 2
# Other heads listed per head in roles.json's `similar`.
SIMILAR_LISTED = 5


def overlap_sums(layers, queries: torch.Tensor) -> torch.Tensor:
    """Sum over the counted queries of sum_j min(A_a[i, j], A_b[i, j]) for every pair of heads.

    layers: a sequence of (B, H, T, T) attention patterns, N heads in all; queries (B, T) marks
    the queries counted. Returns (N, N), symmetric, float64, on the CPU.
    """
    length = queries.shape[1]
    keys = torch.ones(length, length, dtype=torch.bool, device=queries.device).tril()  # a query sees keys j <= i
    counted = queries[:, :, None] & keys
    # (N, M): every counted (query, key), float32; one layer at a time, never a copy of all patterns.
    entries = torch.cat([pattern.transpose(0, 1)[:, counted].float() for pattern in layers])
    n_heads = len(entries)
    # min(a, b) = (a + b - |a - b|) / 2, so every pair's sum of minima comes from L1 distances
    # (torch.cdist: 7x faster than pairwise minima), which add up over chunks of entries. float64,
    # since each sum runs over ~10^6 entries (float32 is off by ~0.003 in a similarity); mps has
    # no float64, so there: the CPU.
    device = "cpu" if entries.device.type == "mps" else entries.device
    sums = torch.zeros(n_heads, n_heads, dtype=torch.float64, device=device)
    for start in range(0, entries.shape[1], ENTRIES_PER_CHUNK):
        part = entries[:, start : start + ENTRIES_PER_CHUNK].to(device=device, dtype=torch.float64)
        totals = part.sum(1)
        sums += (totals[:, None] + totals[None, :] - torch.cdist(part[None], part[None], p=1)[0]) / 2
    sums = sums.cpu()
    sums.diagonal().fill_(float(queries.sum()))  # a head overlaps itself fully
    return sums


def head_similarity(model: LoadedModel, token_lists: list[np.ndarray], batch_size: int, bar=None) -> np.ndarray:
    """Similarity (L*H, L*H) of every pair of heads, heads in (layer, head) order, over the
    queries i >= 1 of `token_lists` (BOS-first token id arrays); `bar` advances by one per story."""
    total, queries = 0, 0
    for batch in attention_batches(model, token_lists, batch_size, copies=PATTERN_COPIES * model.n_layers):
        valid = batch.valid
        counted = valid.clone()
        counted[:, 0] = False
        total = total + overlap_sums(layer_patterns(model, batch.tokens, valid.long()), counted)
        queries += int(counted.sum())
        advance(bar, len(batch.indices))
    return (total / queries).numpy()


def similar_heads(similarity: np.ndarray, n_heads: int, listed: int = SIMILAR_LISTED) -> list[list[dict]]:
    """Per head (layer, head order): the `listed` other heads most like it, most similar first,
    as [{"layer", "head", "similarity"}]."""
    others = similarity.copy()
    np.fill_diagonal(others, -np.inf)
    order = np.argsort(-others, axis=1, kind="stable")[:, :listed]
    return [[{"layer": int(k // n_heads), "head": int(k % n_heads), "similarity": float(similarity[i, k])}
             for k in row] for i, row in enumerate(order)]


def head_groups(similarity: np.ndarray, *, threshold: float = DEFAULT_THRESHOLDS.group_distance) -> np.ndarray:
    """Group label of every head (-1: in no group): average-linkage clusters of distance
    1 - similarity below `threshold`; clusters of one head are no group. Labels number the groups
    0, 1, ... by their first head."""
    if len(similarity) < 2:
        return np.full(len(similarity), -1)
    distance = np.clip(1.0 - (similarity + similarity.T) / 2, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    # scipy's average linkage, not scikit-learn's AgglomerativeClustering (the same clusters,
    # tested): importing scikit-learn costs half a second of every report. fcluster keeps merges
    # at a distance <= t; just below `threshold` keeps those < threshold, as scikit-learn does.
    merges = linkage(squareform(distance, checks=False), method="average")
    labels = fcluster(merges, t=np.nextafter(threshold, 0.0), criterion="distance") - 1
    sizes = np.bincount(labels)
    by_first_head = labels[np.sort(np.unique(labels, return_index=True)[1])]
    kept = by_first_head[sizes[by_first_head] >= 2]
    number = np.full(len(sizes), -1)
    number[kept] = np.arange(len(kept))
    return number[labels]
