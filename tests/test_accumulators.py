"""PairCounts.top against a plain loop over the counted pairs: the k most frequent pairs of each
head and key part, rows by head then count (ties in code order), shares over the head's pairs."""

from collections import Counter, defaultdict

import numpy as np
import pytest
import torch

from classifier.measure.accumulators import PairCounts
from classifier.registry import PARTS


def plain_top(events, query_counts, n_heads, k):
    """events: (head_index, query, key, part, weight) per counted query. The same table by loops."""
    counts, weights = Counter(), defaultdict(float)
    for head_index, query, key, part, weight in events:
        counts[(head_index, query, key, part)] += 1
        weights[(head_index, query, key, part)] += weight
    per_head = Counter()
    for (head_index, *_), count in counts.items():
        per_head[head_index] += count
    code = lambda item: ((item[0] * 50 + item[1]) * 50 + item[2]) * len(PARTS) + item[3]  # noqa: E731
    rows, taken = [], Counter()
    for item in sorted(counts, key=lambda item: (item[0], -counts[item], code(item))):
        head_index, query, key, part = item
        if taken[(head_index, part)] == k:
            continue
        taken[(head_index, part)] += 1
        count = counts[item]
        rows.append((head_index // n_heads, head_index % n_heads, query, key, PARTS[part], count,
                     count / per_head[head_index], weights[item] / count, count / query_counts[query]))
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_pairs_are_the_plain_loops_top_pairs(seed, monkeypatch):
    import classifier.measure.accumulators as accumulators

    monkeypatch.setattr(accumulators, "PAIR_BUFFER", 100)  # several merges into the sorted codes
    rng = np.random.default_rng(seed)
    n_layers, n_heads, vocab, length, k = 2, 3, 50, 40, 2
    pairs = PairCounts.empty(vocab, n_heads)
    events = []
    query_counts = Counter()
    for _ in range(4):  # batches, merged as they come
        tokens = torch.as_tensor(rng.integers(0, 6, size=(2, length)))  # few tokens: many ties
        valid = torch.ones_like(tokens, dtype=torch.bool)
        valid[1, 30:] = False
        pairs.add_queries(tokens, valid)
        for row in range(2):
            for i in range(1, length):
                if valid[row, i]:
                    query_counts[int(tokens[row, i])] += 1
        for layer in range(n_layers):
            argmax = torch.as_tensor(rng.integers(0, length, size=(2, n_heads, length)))
            argmax = torch.minimum(argmax, torch.arange(length))  # causal
            parts = torch.as_tensor(rng.integers(0, 3, size=(2, n_heads, length)))
            top = torch.as_tensor(rng.random((2, n_heads, length)))
            pairs.add(layer, argmax, tokens, valid, parts, top)
            for row in range(2):
                for head in range(n_heads):
                    for i in range(1, length):
                        j = int(argmax[row, head, i])
                        if valid[row, i] and j != 0:
                            events.append((layer * n_heads + head, int(tokens[row, i]), int(tokens[row, j]),
                                           int(parts[row, head, i]), float(top[row, head, i])))
    frame = pairs.top(k)
    expected = plain_top(events, query_counts, n_heads, k)
    assert len(frame) == len(expected) > 0
    for got, want in zip(frame.itertuples(index=False), expected):
        assert tuple(got[:6]) == want[:6]
        assert got[6:] == pytest.approx(want[6:])
