"""Head similarity (1 - total variation, averaged over queries) and groups, on hand-computable cases."""

import numpy as np
import torch

from classifier.measure.similarity import head_groups, overlap_sums, similar_heads


def patterns_of(*heads) -> torch.Tensor:
    """(1, N, T, T) from N hand-written (T, T) patterns."""
    return torch.tensor([heads], dtype=torch.float32)


def test_identical_heads_score_one_and_disjoint_heads_zero():
    previous = [[1, 0, 0], [1, 0, 0], [0, 1, 0]]  # query 1 -> BOS (its previous token), query 2 -> 1
    current = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    queries = torch.tensor([[False, True, True]])
    sums = overlap_sums([patterns_of(previous, previous, current)], queries) / queries.sum()
    assert sums[0, 1] == 1.0
    assert sums[0, 2] == 0.0 and sums[2, 0] == 0.0
    assert sums.diagonal().tolist() == [1.0, 1.0, 1.0]


def test_overlap_is_one_minus_total_variation_averaged_over_counted_queries():
    a = [[1, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]]
    b = [[1, 0, 0], [1.0, 0.0, 0], [0.2, 0.5, 0.3]]
    # query 1: TV = 0.5 -> 0.5; query 2: TV = 0.2 -> 0.8; query 0 not counted.
    queries = torch.tensor([[False, True, True]])
    sums = overlap_sums([patterns_of(a, b)], queries)
    assert np.isclose(float(sums[0, 1]) / 2, (0.5 + 0.8) / 2)
    padded = torch.tensor([[False, True, False]])  # query 2 is padding
    assert np.isclose(float(overlap_sums([patterns_of(a, b)], padded)[0, 1]), 0.5)


def test_similar_heads_lists_the_others_most_similar_first_with_layer_and_head():
    similarity = np.array([[1, 0.2, 0.9, 0.1], [0.2, 1, 0.3, 0.4], [0.9, 0.3, 1, 0.0], [0.1, 0.4, 0.0, 1]])
    listed = similar_heads(similarity, n_heads=2, listed=3)
    assert listed[0] == [{"layer": 1, "head": 0, "similarity": 0.9}, {"layer": 0, "head": 1, "similarity": 0.2},
                         {"layer": 1, "head": 1, "similarity": 0.1}]
    assert all(len(row) == 3 and all((e["layer"], e["head"]) != divmod(i, 2) for e in row) for i, row in enumerate(listed))


def test_groups_join_close_heads_and_leave_lone_heads_out():
    similarity = np.array([
        [1.0, 0.9, 0.1, 0.1],
        [0.9, 1.0, 0.1, 0.1],
        [0.1, 0.1, 1.0, 0.2],
        [0.1, 0.1, 0.2, 1.0],
    ])
    assert head_groups(similarity, threshold=0.5).tolist() == [0, 0, -1, -1]
    assert head_groups(similarity, threshold=0.95).tolist() == [0, 0, 0, 0]


def test_groups_match_scikit_learn_average_linkage():
    """The scipy clustering gives the groups scikit-learn's AgglomerativeClustering (average
    linkage, precomputed distances, the same threshold) gives, on random similarity matrices."""
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(2, 30))
        points = rng.random((n, 3)) * rng.uniform(0.3, 2.0)  # a few clumps at some sizes
        similarity = np.clip(1.0 - np.abs(points[:, None] - points[None]).mean(-1), 0.0, 1.0)
        distance = np.clip(1.0 - (similarity + similarity.T) / 2, 0.0, None)
        np.fill_diagonal(distance, 0.0)
        labels = AgglomerativeClustering(
            n_clusters=None, metric="precomputed", linkage="average", distance_threshold=0.5
        ).fit(distance).labels_
        ours = head_groups(similarity, threshold=0.5)
        # Same partition into groups of two or more heads; single heads are no group (-1).
        sizes = np.bincount(labels)
        expected = {frozenset(np.flatnonzero(labels == k)) for k in range(len(sizes)) if sizes[k] >= 2}
        found = {frozenset(np.flatnonzero(ours == g)) for g in range(ours.max() + 1)}
        assert found == expected, trial
        assert (ours[[i for i in range(n) if sizes[labels[i]] < 2]] == -1).all()


def test_overlap_sums_in_small_chunks_equal_the_pairwise_minima(monkeypatch):
    """Chunked L1 distances give every pair's sum of minima: checked against numpy's pairwise
    minima over the same (query, key) entries, with chunks far smaller than the entries."""
    import classifier.measure.similarity as similarity

    rng = np.random.default_rng(1)
    batch, n_heads, length = 2, 5, 9
    raw = rng.random((batch, n_heads, length, length)) * np.tril(np.ones((length, length)))
    patterns = torch.tensor(raw / raw.sum(-1, keepdims=True), dtype=torch.float32)
    queries = torch.tensor([[False] + [True] * 8, [False] + [True] * 5 + [False] * 3])
    monkeypatch.setattr(similarity, "ENTRIES_PER_CHUNK", 7)
    sums = similarity.overlap_sums([patterns[:, :2], patterns[:, 2:]], queries).numpy()  # two "layers"
    weights = patterns.double().numpy()
    counted = queries.numpy()
    expected = np.zeros((n_heads, n_heads))
    for a in range(n_heads):
        for b in range(n_heads):
            expected[a, b] = sum(np.minimum(weights[k, a, i], weights[k, b, i]).sum()
                                 for k in range(batch) for i in range(length) if counted[k, i])
    assert np.allclose(sums, expected, atol=1e-5)
