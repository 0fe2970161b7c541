"""The scorer's fast paths against the plain computations they replace: the block-by-block causal
reductions, the row maximum read from four numbers a query, the sparse key-set sums, and one
workspace shared by batches of different shapes."""

import numpy as np
import pytest
import torch

from classifier.load.tokens import classes_from_texts, sequence_classes
from classifier.measure.scoring import (
    CAUSAL_BLOCKS, Workspace, causal_reductions, causal_row_blocks, metric_targets, pair_sums, row_max, score_patterns,
)

VOCAB = ["<bos>", " Lily", " ran", ",", " and", " Tom", " sat", ".", "ily", " the", " cat", "\n", " "]
CLASSES = classes_from_texts(VOCAB)


def random_batch(seed: int, lengths: list[int], heads: int = 3, coarse: bool = False):
    """Right-padded tokens (B, T) with BOS first, their lengths, and causal patterns (B, H, T, T)
    whose padded query rows are junk (a model's are not zero). `coarse` rounds the scores so that
    rows have ties."""
    generator = torch.Generator().manual_seed(seed)
    length = max(lengths)
    tokens = torch.randint(1, len(VOCAB), (len(lengths), length), generator=generator)
    tokens[:, 0] = 0
    for row, n in enumerate(lengths):
        tokens[row, n:] = 0
    scores = torch.randn(len(lengths), heads, length, length, generator=generator) * 3
    if coarse:
        scores = scores.round()
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    patterns = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    return tokens, torch.tensor(lengths), patterns


def targets_of(tokens, lengths):
    return metric_targets(tokens, sequence_classes(tokens, lengths, CLASSES))


@pytest.mark.parametrize("length", [1, 2, 3, 4, 5, 7, 13, 64])
def test_row_blocks_cover_every_query_row_once(length):
    blocks = causal_row_blocks(length)
    rows = [row for start, stop in blocks for row in range(start, stop)]
    assert rows == list(range(length))
    assert len(blocks) == min(CAUSAL_BLOCKS, length)


@pytest.mark.parametrize("lengths", [[1], [3, 2], [5, 9, 4], [37, 30, 12]])
def test_causal_reductions_equal_the_whole_pattern_computations(lengths):
    tokens, lengths, patterns = random_batch(len(lengths), lengths)
    targets = targets_of(tokens, lengths)
    reduced = causal_reductions(patterns, targets.key_range, Workspace())

    entropy = -torch.special.xlogy(patterns, patterns).sum(-1)
    restricted = torch.where(targets.key_range[:, None], patterns, 0.0)
    top, key = restricted.max(-1)
    torch.testing.assert_close(reduced.entropy, entropy, rtol=1e-5, atol=1e-6)
    assert torch.equal(reduced.top_weight, top)
    assert torch.equal(reduced.top_key, key)
    torch.testing.assert_close(reduced.mass, restricted.sum(-2), rtol=1e-5, atol=1e-6)


def test_entropy_of_zeros_and_subnormal_weights_is_their_limit():
    """0 ln 0 = 0, and a row with subnormal weights gives the entropy of the rest."""
    patterns = torch.zeros(1, 1, 3, 3)
    patterns[0, 0, 0, 0] = 1.0
    patterns[0, 0, 1, :2] = torch.tensor([0.5, 0.5])
    patterns[0, 0, 2] = torch.tensor([1.0, 1e-40, 0.0])
    valid = torch.ones(1, 3, 3, dtype=torch.bool)
    entropy = causal_reductions(patterns, valid, Workspace()).entropy[0, 0]
    torch.testing.assert_close(entropy, torch.tensor([0.0, np.log(2), 0.0], dtype=torch.float32), rtol=0, atol=1e-7)


@pytest.mark.parametrize("coarse", [False, True])
def test_row_max_gives_what_max_gives_ties_included(coarse):
    lengths = [11, 8, 3]
    tokens, lengths, patterns = random_batch(7, lengths, coarse=coarse)
    targets = targets_of(tokens, lengths)
    reduced = causal_reductions(patterns, targets.key_range, Workspace())
    pos = torch.arange(patterns.shape[-1])
    at = lambda offset: patterns.gather(-1, (pos - offset).clamp(min=0).expand(*patterns.shape[:3])[..., None])[..., 0]  # noqa: E731
    previous = torch.where(pos >= 1, at(1), 0.0)
    top, key = row_max(reduced.top_weight, reduced.top_key, patterns[..., 0], previous, at(0))
    expected_top, expected_key = patterns.max(-1)
    valid = targets.valid[:, None].expand_as(key)
    if coarse:  # the test is only worth its name if ties occur
        ties = (patterns == expected_top[..., None]).sum(-1) > 1
        assert bool((ties & valid).any())
    assert torch.equal(top[valid], expected_top[valid])
    assert torch.equal(key[valid], expected_key[valid])


def test_sparse_key_set_sums_equal_the_dense_product():
    tokens, lengths, patterns = random_batch(3, [40, 33, 20])
    tokens = tokens % 4  # few token kinds: many earlier copies, long key sets
    tokens[:, 0] = 0
    targets = targets_of(tokens, lengths)
    assert len(targets.pair_keys) > 100
    dense = torch.einsum("bhij,bijs->bhsi", patterns, targets.pairs.float())
    sparse = pair_sums(patterns, targets.pair_keys, targets.pairs.shape[-1])
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)


def test_one_workspace_for_batches_of_several_shapes_gives_what_fresh_ones_give():
    """The workspace's leftovers from a larger batch never reach a smaller one's figures."""
    shared = Workspace()
    for seed, lengths in enumerate([[30, 28], [9, 7, 5, 4], [30, 12], [2]]):
        tokens, lengths, patterns = random_batch(seed, lengths)
        targets = targets_of(tokens, lengths)
        with_shared = score_patterns(patterns, targets, with_budget=True, with_keys=True, workspace=shared)
        fresh = score_patterns(patterns, targets, with_budget=True, with_keys=True, workspace=Workspace())
        for a, b in zip(with_shared[:3], fresh[:3]):
            assert torch.equal(a, b)
        for field in ("mass", "held", "argmax", "top"):
            assert torch.equal(getattr(with_shared[3], field), getattr(fresh[3], field))
