"""Hand-built attention patterns with answers worked out by hand, for every metric."""

import numpy as np
import pytest
import torch

from classifier.measure.scoring import METRICS, TextStats, BatchStats, metric_targets, query_stats, score_patterns, check_metric_names
from classifier.load.tokens import classes_from_texts, sequence_classes

# A toy vocabulary: id -> token text (leading space = word start).
VOCAB = ["<bos>", " Lily", " ran", ",", " and", " Tom", " sat", ".", "ily", " the", " cat", "\n", " "]
IDS = {t: k for k, t in enumerate(VOCAB)}
CLASSES = classes_from_texts(VOCAB)


def encode(*texts):
    return [IDS[t] for t in texts]


def score_one(tokens, pattern):
    """Metrics of one text: pattern (H, T, T). Returns sums (H, M), counts (M,), uniform (M,)."""
    tokens = torch.tensor([tokens])
    lengths = torch.tensor([tokens.shape[1]])
    classes = sequence_classes(tokens, lengths, CLASSES)
    targets = metric_targets(tokens, classes)
    sums, _ = score_patterns(torch.as_tensor(pattern, dtype=torch.float32)[None], targets)
    counts, uniform, _ = query_stats(targets)
    return sums[0].numpy(), counts[0].numpy(), uniform[0].numpy()


def shifted_identity(length, offset):
    """A[i, max(i - offset, 0)] = 1."""
    pattern = np.zeros((length, length))
    for i in range(length):
        pattern[i, max(i - offset, 0)] = 1.0
    return pattern


def uniform_pattern(length):
    return np.tril(np.ones((length, length))) / np.arange(1, length + 1)[:, None]


TEXT = encode("<bos>", " Lily", " ran", ",", " and", " Tom", " sat", ".", " the", " cat", " sat")  # T = 11


def test_current_token_mass_is_one_on_identity_and_counts_queries_from_one():
    sums, counts, _ = score_one(TEXT, shifted_identity(11, 0)[None])
    k = METRICS.index("current")
    assert counts[k] == 10  # queries 1..10
    assert sums[0, k] == pytest.approx(10.0)


def test_previous_token_mass_is_one_on_shifted_identity_from_query_two():
    sums, counts, _ = score_one(TEXT, shifted_identity(11, 1)[None])
    k = METRICS.index("previous")
    assert counts[k] == 9  # queries 2..10: at i = 1 the previous token is BOS
    assert sums[0, k] == pytest.approx(9.0)
    assert sums[0, METRICS.index("current")] == pytest.approx(0.0)


def test_offset2_and_local_eligibility():
    sums, counts, _ = score_one(TEXT, shifted_identity(11, 2)[None])
    assert counts[METRICS.index("offset2")] == 8  # queries 3..10
    assert sums[0, METRICS.index("offset2")] == pytest.approx(8.0)
    assert counts[METRICS.index("local")] == 6  # queries 5..10
    assert sums[0, METRICS.index("local")] == pytest.approx(6.0)  # offset 2 lies inside the window


def test_start_of_text_and_distance_on_bos_sink():
    sums, counts, _ = score_one(TEXT, shifted_identity(11, 100)[None])
    assert sums[0, METRICS.index("start_of_text")] == pytest.approx(10.0)
    # distance: sum over i = 1..10 of i = 55
    assert sums[0, METRICS.index("distance")] == pytest.approx(55.0)
    assert sums[0, METRICS.index("max_weight")] == pytest.approx(10.0)
    assert sums[0, METRICS.index("entropy")] == pytest.approx(0.0)


def test_delimiter_targets_stay_away_from_current_and_previous_token():
    # Delimiters: "," at 3 and "." at 7. Query 4 (" and") may count "," only if 3 <= 4 - 2: no.
    # Eligible queries: 5..10 (j = 3 in range), i.e. 6 queries.
    pattern = np.zeros((11, 11))
    pattern[:, 0] = 1.0
    for i in range(11):
        if i >= 4:
            pattern[i] = 0
            pattern[i, 3] = 1.0  # everything on the comma
    sums, counts, _ = score_one(TEXT, pattern[None])
    k = METRICS.index("delimiter")
    assert counts[k] == 6
    assert sums[0, k] == pytest.approx(6.0)  # queries 5..10 put all on the comma; 4 is not eligible
    # last_delimiter: p(i) = 3 for i = 4..7, 7 for i = 8..10; eligible where p(i) <= i - 2:
    # i = 5, 6, 7 (p = 3) and i = 9, 10 (p = 7): 5 queries; the comma gets 1 at i = 5, 6, 7.
    k = METRICS.index("last_delimiter")
    assert counts[k] == 5
    assert sums[0, k] == pytest.approx(3.0)


def test_clause_start_follows_latest_boundary():
    # Boundaries: BOS 0, "," 3, " and" 4, "." 7. c(i): i=1..3 -> 1; i=4 -> 4 (after ","); i=5..7 -> 5;
    # i=8..10 -> 8. Eligible where 1 <= c(i) <= i - 2: i=3 (c=1), i=7 (c=5), i=10 (c=8): 3 queries.
    pattern = uniform_pattern(11)
    sums, counts, uniform = score_one(TEXT, pattern[None])
    k = METRICS.index("clause_start")
    assert counts[k] == 3
    assert sums[0, k] == pytest.approx(1 / 4 + 1 / 8 + 1 / 11)
    assert uniform[k] == pytest.approx(sums[0, k])  # the uniform pattern is the uniform baseline


def test_proper_noun_counts_names_not_after_bos_or_sentence_end():
    # " Lily" at 1 follows BOS: not a name. " Tom" at 5 mid-sentence: a name.
    # " the" after "." is lower case anyway. Eligible: i >= 7 (5 <= i - 2): 4 queries.
    text = TEXT
    pattern = np.zeros((11, 11))
    pattern[:, 0] = 1
    pattern[7:, 0] = 0
    pattern[7:, 5] = 1
    sums, counts, _ = score_one(text, pattern[None])
    k = METRICS.index("proper_noun")
    assert counts[k] == 4
    assert sums[0, k] == pytest.approx(4.0)


def test_duplicate_and_induction_on_repeated_token():
    # " sat" at 6 and 10. duplicate: query 10 has j = 6. induction: query 10, j = 6 < 9 -> key 7.
    pattern = np.zeros((11, 11))
    pattern[:, 0] = 1
    pattern[10] = 0
    pattern[10, 6] = 0.25
    pattern[10, 7] = 0.75
    sums, counts, _ = score_one(TEXT, pattern[None])
    assert counts[METRICS.index("duplicate")] == 1
    assert sums[0, METRICS.index("duplicate")] == pytest.approx(0.25)
    assert counts[METRICS.index("induction")] == 1
    assert sums[0, METRICS.index("induction")] == pytest.approx(0.75)


def test_word_start_needs_first_piece_two_back():
    # " L" "ily": "ily" at 2 continues the word begun at 1, but w = 1 > 2 - 2: not eligible.
    # With a glue piece: BOS " " "Lily"... use " the" "ily" "ily": 3 continues the word at 1 -> eligible.
    text = encode("<bos>", " the", "ily", "ily")
    pattern = np.zeros((4, 4))
    pattern[:, 0] = 1
    pattern[3] = [0, 0.5, 0.5, 0]
    sums, counts, _ = score_one(text, pattern[None])
    k = METRICS.index("word_start")
    assert counts[k] == 1
    assert sums[0, k] == pytest.approx(0.5)


def test_entropy_is_one_under_uniform_attention():
    sums, counts, uniform = score_one(TEXT, uniform_pattern(11)[None])
    k = METRICS.index("entropy")
    assert sums[0, k] / counts[k] == pytest.approx(1.0, abs=1e-5)
    assert uniform[k] / counts[k] == pytest.approx(1.0)
    # max_weight under uniform is 1 / (i + 1): the same as its expectation.
    k = METRICS.index("max_weight")
    assert sums[0, k] == pytest.approx(uniform[k], rel=1e-5)


def test_padding_is_excluded_exactly():
    rng = np.random.default_rng(0)
    short = encode("<bos>", " Lily", " ran", ",", " and", " Tom", " sat", ".")
    long = TEXT
    scores = rng.normal(size=(2, 3, 11, 11)) * 3
    mask = np.tril(np.ones((11, 11), dtype=bool))
    patterns = np.where(mask, np.exp(scores), 0)
    patterns /= patterns.sum(-1, keepdims=True)
    alone, counts_alone, uniform_alone = score_one(short, patterns[0, :, :8, :8] / patterns[0, :, :8, :8].sum(-1, keepdims=True))
    # Batch: the short text right-padded with garbage tokens and garbage pattern rows.
    padded = torch.tensor([short + [IDS[","]] * 3, long])
    lengths = torch.tensor([8, 11])
    batch_patterns = torch.as_tensor(patterns, dtype=torch.float32).clone()
    batch_patterns[0, :, :8, :8] /= batch_patterns[0, :, :8, :8].sum(-1, keepdim=True)
    batch_patterns[0, :, :8, 8:] = 0
    classes = sequence_classes(padded, lengths, CLASSES)
    targets = metric_targets(padded, classes)
    sums, _ = score_patterns(batch_patterns, targets)
    counts, uniform, _ = query_stats(targets)
    np.testing.assert_allclose(sums[0].numpy(), alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(counts[0].numpy(), counts_alone)
    np.testing.assert_allclose(uniform[0].numpy(), uniform_alone, rtol=1e-6)


def test_two_halves_merge_to_the_whole():
    rng = np.random.default_rng(1)
    stats = [
        BatchStats(*(torch.as_tensor(rng.random(shape)) for shape in [(3, 1, 2, 15), (3, 15), (3, 15), (3, 1, 2, 10), (3,)]))
        for _ in range(2)
    ]
    whole = TextStats.from_batches(stats)
    halves = TextStats.merge([TextStats.from_batches(stats[:1]), TextStats.from_batches(stats[1:])])
    for a, b in zip(whole.corpus_metrics(), halves.corpus_metrics()):
        np.testing.assert_array_equal(a, b)


def test_unknown_metric_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown metric.*bogus.*valid: current"):
        check_metric_names(["current", "bogus"])
