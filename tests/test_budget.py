"""The attention budget: disjoint parts that sum to 1, checked against a plain loop over keys."""

import numpy as np
import pytest
import torch

from classifier.registry import PARTS
from classifier.measure.scoring import budget_query_stats, metric_targets, score_patterns
from classifier.load.tokens import classes_from_texts, sequence_classes

TEXTS = ["<bos>", " Once", " upon", " a", " time", ",", " Lucy", " saw", " a", " b", "an", "ana", ".",
         " Lucy", " said", " and", " Tom", " ran", ",", "\n", " \"", "Hi", "!\""]
SEQUENCES = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 3, 9, 10, 12, 6, 7, 8],
    [0, 6, 7, 9, 10, 11, 5, 15, 16, 17, 9, 10, 11, 12, 19, 20, 21, 22, 6, 7, 9, 10, 11, 12],
]


def part_of_key(i: int, j: int, toks: list[int], c) -> str:
    """The budget part key j belongs to for query i, by the priority order of PARTS (a loop)."""
    w, p, cl = int(c.word_first_piece[i]), int(c.last_delimiter[i]), int(c.clause_start[i])
    q = int(c.quote_start[i])
    word = bool(c.continuation[i]) and 1 <= w <= i - 2
    quote = 1 <= q <= i - 2 and not (word and q == w)
    delim = 1 <= p <= i - 2 and not (word and p == w) and not (quote and p == q)
    clause = 1 <= cl <= i - 2 and not (word and cl == w) and not (quote and cl == q) and not (delim and cl == p)
    if j == 0:
        return "sink"
    if j == i:
        return "self"
    if j == i - 1:
        return "previous"
    if word and j == w:
        return "word_start"
    if quote and j == q:
        return "quote_start"
    if delim and j == p:
        return "last_delimiter"
    if clause and j == cl:
        return "clause_start"
    if bool(c.name[j]):
        return "name"
    if bool(c.delimiter[j]):
        return "other_delimiter"
    if toks[j] == toks[i]:
        return "duplicate"
    if toks[j - 1] == toks[i] and j - 1 < i - 1 and j - 1 >= 1:
        return "induction"
    if i - 4 <= j:
        return "local_rest"
    return "rest"


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_budget_parts_match_a_plain_loop_and_sum_to_one(sequence):
    vocab = classes_from_texts(TEXTS)
    tokens = torch.tensor([sequence])
    length = tokens.shape[1]
    classes = sequence_classes(tokens, torch.tensor([length]), vocab)
    targets = metric_targets(tokens, classes)
    rng = np.random.default_rng(1)
    patterns = np.tril(rng.random((1, 2, length, length)) ** 4)
    patterns /= patterns.sum(-1, keepdims=True)
    _, _, budget = score_patterns(torch.tensor(patterns), targets, with_budget=True)
    uniform, queries, _ = budget_query_stats(targets)

    one = type("C", (), {k: getattr(classes, k)[0] for k in
                         ("word_first_piece", "last_delimiter", "clause_start", "quote_start", "continuation", "name", "delimiter")})
    expected = np.zeros((2, len(PARTS)))
    expected_uniform = np.zeros(len(PARTS))
    for i in range(1, length):
        for j in range(i + 1):
            k = PARTS.index(part_of_key(i, j, sequence, one))
            expected[:, k] += patterns[0, :, i, j]
            expected_uniform[k] += 1 / (i + 1)
    np.testing.assert_allclose(budget[0].numpy(), expected, atol=1e-5)  # the scorer works in float32
    np.testing.assert_allclose(uniform[0].numpy(), expected_uniform, atol=1e-5)
    assert queries.item() == length - 1
    np.testing.assert_allclose(budget[0].sum(-1).numpy(), length - 1, atol=1e-4)


def test_previous_token_head_spends_its_budget_on_the_previous_part():
    vocab = classes_from_texts(TEXTS)
    tokens = torch.tensor([SEQUENCES[0]])
    length = tokens.shape[1]
    targets = metric_targets(tokens, sequence_classes(tokens, torch.tensor([length]), vocab))
    shifted = np.zeros((1, 1, length, length))
    shifted[0, 0, 0, 0] = 1
    for i in range(1, length):
        shifted[0, 0, i, i - 1] = 1
    _, _, budget = score_patterns(torch.tensor(shifted), targets, with_budget=True)
    shares = dict(zip(PARTS, (budget[0, 0] / (length - 1)).tolist()))
    assert shares["previous"] == pytest.approx((length - 2) / (length - 1))
    assert shares["sink"] == pytest.approx(1 / (length - 1))  # query 1's previous token is BOS


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_the_part_of_each_argmax_key_matches_the_plain_loop(sequence):
    from classifier.measure.scoring import argmax_parts

    vocab = classes_from_texts(TEXTS)
    tokens = torch.tensor([sequence])
    length = tokens.shape[1]
    classes = sequence_classes(tokens, torch.tensor([length]), vocab)
    targets = metric_targets(tokens, classes)
    # many keys of every query: head h of query i looks at key (i * 7 + h) mod (i + 1)
    heads = 8
    argmax = torch.tensor([[[(i * 7 + h) % (i + 1) for i in range(length)] for h in range(heads)]])
    parts = argmax_parts(argmax, targets)
    c = type("C", (), {k: getattr(classes, k)[0] for k in
                       ("word_first_piece", "last_delimiter", "clause_start", "quote_start", "continuation", "name", "delimiter")})
    for h in range(heads):
        for i in range(1, length):
            j = int(argmax[0, h, i])
            assert PARTS[int(parts[0, h, i])] == part_of_key(i, j, sequence, c), (h, i, j)
