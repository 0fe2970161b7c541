"""`hold` and top keys on hand-built patterns whose answers are worked out by hand, and the top
keys' vectorised totals against a plain loop over queries and keys."""

import numpy as np
import pytest
import torch

from classifier.load.tokens import classes_from_texts, sequence_classes
from classifier.measure.accumulators import KeyTotals
from classifier.measure.scoring import METRICS, metric_targets, score_patterns
from classifier.thresholds import HOLD_MAX_GAP, HOLD_MIN_QUERIES, HOLD_RETURN_SHARE

VOCAB = ["<bos>", " Lily", " ran", ",", " and", " Tom", " sat", ".", "ily", " the", " cat", "\n", " "]
CLASSES = classes_from_texts(VOCAB)
HOLD = METRICS.index("hold")
T = 24
TOKENS = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 9]


def targets_of(tokens):
    tokens = torch.tensor(tokens)
    lengths = torch.tensor([tokens.shape[1]] * tokens.shape[0])
    return tokens, metric_targets(tokens, sequence_classes(tokens, lengths, CLASSES))


def hold_of(*patterns):
    """hold (held queries, eligible queries) and KeyView.held of each pattern (T, T) as one head."""
    tokens, targets = targets_of([TOKENS])
    sums, _, view = score_patterns(torch.tensor(np.stack(patterns)[None], dtype=torch.float32), targets,
                                   with_keys=True)
    eligible = targets.eligible[0, HOLD].sum().item()
    return sums[0, :, HOLD].numpy(), eligible, view.held[0].numpy()


def rows(tops, bos=0.0):
    """A[i, tops[i]] = 1 - bos, A[i, 0] += bos (query 0 on BOS)."""
    pattern = np.zeros((T, T))
    for i, j in enumerate(tops):
        pattern[i, j] += 1.0 - bos
        pattern[i, 0] += bos
    pattern[0] = 0
    pattern[0, 0] = 1
    return pattern


def test_previous_token_and_fixed_offset_heads_do_not_hold():
    previous = rows([max(i - 1, 0) for i in range(T)])
    offset2 = rows([max(i - 2, 0) for i in range(T)])
    offset3 = rows([max(i - 3, 0) for i in range(T)])
    # soft previous-token: 60% previous, the rest spread evenly over everything it sees
    soft = np.tril(np.ones((T, T))) * 0.4 / np.arange(1, T + 1)[:, None] + 0.6 * previous
    held, eligible, _ = hold_of(previous, offset2, offset3, soft)
    assert eligible == T - 3  # queries 3..15 have a key other than BOS, itself and the previous token
    assert held.tolist() == [0, 0, 0, 0]  # a new key every query (or no top key above 2x uniform)


# TOKENS by position: 1 " Lily" (again at 16), 5/13/20 " Tom", 8/23 " the", 9 " cat" (only once).
def test_a_position_held_by_four_queries_is_held_when_its_token_copies_are_not():
    assert HOLD_MIN_QUERIES == 4  # the hand-built runs below are sized for it
    # key 13 (" Tom", also at 5 and 20) is the top key of queries 15-18: a subject held through its
    # sentence; the other queries look at themselves
    held_by = [15, 16, 17, 18]
    tops = [13 if i in held_by else i for i in range(T)]
    held, _, view = hold_of(rows(tops))
    assert held.tolist() == [4.0]
    # the copy at 5 gets nothing (the token-shuffle null would give key 13 half the weight); held
    # keys get all the attention of those queries; uniform attention would give key 13 1/(i+1)
    np.testing.assert_allclose(view[0, :2], [4.0, sum(1 / (i + 1) for i in held_by)], rtol=1e-6)


def test_three_queries_on_one_key_or_scattered_returns_are_not_a_hold():
    three = rows([13 if i in (15, 16, 17) else i for i in range(T)])
    # four queries return to " cat" (at 9, seen once), every fourth one: three queries between each
    # (a random head's choice follows the query's token: queries of one token share a top key,
    # and they are scattered)
    scattered = rows([9 if i in (11, 15, 19, 23) else i for i in range(T)])
    held, _, _ = hold_of(three, scattered)
    assert held.tolist() == [0.0, 0.0]


def test_a_soft_holder_may_look_elsewhere_for_up_to_two_queries_at_a_time():
    assert HOLD_MAX_GAP == 2  # the hand-built runs below are sized for it
    # " cat" (9) held by 11, 12, 15, 16, 19, 20: queries 13-14 and 17-18 look at themselves (an
    # excursion of two queries each): one run of six
    soft = rows([9 if i in (11, 12, 15, 16, 19, 20) else i for i in range(T)])
    # three queries out (17-19) end the run: 11, 12, 15, 16 is a run of four, 20-22 a second run of
    # three that comes back to it (more than HOLD_RETURN_SHARE x 4 = 2 returns): nothing held
    broken = rows([9 if i in (11, 12, 15, 16, 20, 21, 22) else i for i in range(T)])
    held, _, _ = hold_of(soft, broken)
    assert held.tolist() == [6.0, 0.0]


def test_a_key_the_head_keeps_coming_back_to_is_not_held():
    assert HOLD_RETURN_SHARE == 0.5
    # " Lily" (1) held by 3-6 (a run of four), then the head comes back to it from 10, 14, 18 and
    # 22 (three queries between each: no run): four returns for a run of four (allowed: 4 x 0.5
    # = 2), a favourite word, not a held one
    returns = rows([1 if i in (3, 4, 5, 6, 10, 14, 18, 22) else i for i in range(T)])
    # two returns (14, 22) are allowed: the run of four is held, the returns are not (no run of their own)
    twice = rows([1 if i in (3, 4, 5, 6, 14, 22) else i for i in range(T)])
    held, _, _ = hold_of(returns, twice)
    assert held.tolist() == [0.0, 4.0]


def test_a_preferred_token_is_not_a_held_position_and_a_word_seen_once_is_judged_by_its_run():
    # queries 15-22 split 0.55 / 0.45 between the two earlier " Tom" (13 and 5): top key 13 for
    # eight queries, but 0.55 is 1.1x the mean of the token's keys (0.5), under HOLD_POSITION_LIFT
    split = rows(list(range(T)))
    for i in range(15, 22):
        split[i] = 0.0
        split[i, 13], split[i, 5] = 0.55, 0.45
    # a token seen once (" cat" at 9) held by queries 11-23: the null has no copy to compare, so the
    # run decides (13 queries); " the" at 8 held by queries 10-22 likewise (its copy at 23 comes
    # after every one of them, out of range)
    once = rows([9 if i >= 11 else i for i in range(T)])
    first = rows([8 if 10 <= i <= 22 else i for i in range(T)])
    held, _, _ = hold_of(split, once, first)
    assert held.tolist() == [0.0, 13.0, 13.0]


def test_holding_the_latest_copy_of_a_name_counts_after_the_name_comes_again():
    # queries 3-15 hold " Lily" at 1 (seen once so far: the run decides, 13 queries); queries 18-23
    # hold " Lily" at 16, whose copy at 1 they no longer look at (6 queries); a head that keeps
    # the first " Lily" through 23 and splits evenly once the copy arrives holds only 3-17 (15)
    tops = [1 if 3 <= i <= 15 else (16 if i >= 18 else i) for i in range(T)]
    split = rows([1 if i >= 3 else i for i in range(T)])
    for i in range(18, T):
        split[i] = 0.0
        split[i, 1], split[i, 16] = 0.55, 0.45
    held, _, _ = hold_of(rows(tops), split)
    assert held.tolist() == [19.0, 15.0]


def test_weak_top_keys_do_not_count():
    # every query from 5 on puts `lift` times what uniform gives one key on " Lily" at 1, the rest
    # spread evenly; " Lily" comes again at 16, so queries 18-23 see a copy of it
    def favourite(lift):
        pattern = np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]
        for i in range(5, T):
            pattern[i, : i + 1] = (1 - lift / (i + 1)) / i
            pattern[i, 1] = lift / (i + 1)
        return pattern
    held, _, _ = hold_of(favourite(1.5), favourite(4.0))
    # 1.5x uniform is no top key; at 4x, key 1 tops queries 5-23, a run: 5-17 see no copy of it (the
    # run decides) and 18-23 give it 1.65-1.7x the mean of the two copies (at i = 18,
    # 2 * 4/19 / (4/19 + (15/19)/18) = 1.65)
    assert held.tolist() == [0.0, 19.0]


def test_a_bos_sink_is_not_a_key_to_hold():
    held, _, _ = hold_of(rows([0] * T))
    assert held.tolist() == [0.0]


def plain_key_totals(patterns, tokens, vocab_size):
    """mass (H, V), uniform (V,), occurrences (V,) with loops: keys 1 <= j <= i - 2 only."""
    n_heads = patterns.shape[1]
    mass, uniform, occurrences = np.zeros((n_heads, vocab_size)), np.zeros(vocab_size), np.zeros(vocab_size)
    for b, text in enumerate(tokens):
        length = len(text)
        for j in range(1, length - 2):
            occurrences[text[j]] += 1
        for i in range(3, length):
            for j in range(1, i - 1):
                uniform[text[j]] += 1 / (i + 1)
                for h in range(n_heads):
                    mass[h, text[j]] += patterns[b, h, i, j]
    return mass, uniform, occurrences


def test_key_totals_match_a_plain_loop_and_leave_out_bos_self_and_previous():
    texts = [TOKENS, [0, 5, 6, 7, 5, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6]]
    tokens, targets = targets_of(texts)
    rng = np.random.default_rng(0)
    patterns = np.tril(rng.random((2, 3, T, T)) ** 3)
    patterns /= patterns.sum(-1, keepdims=True)
    totals = KeyTotals.empty(1, 3, len(VOCAB))
    totals.add_batch(tokens, targets)
    _, _, view = score_patterns(torch.tensor(patterns, dtype=torch.float32), targets, with_keys=True)
    totals.add_layer(0, view.mass, tokens)
    mass, uniform, occurrences = plain_key_totals(patterns, texts, len(VOCAB))
    np.testing.assert_allclose(totals.mass[0].numpy(), mass, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(totals.uniform.numpy(), uniform, rtol=1e-6)
    np.testing.assert_array_equal(totals.occurrences.numpy(), occurrences)
    assert totals.queries == 2 * (T - 1)
    assert totals.stories[5] == 2 and totals.stories[9] == 1 and totals.mass[0, :, 0].sum() == 0  # BOS never a key


def test_top_keys_rank_by_share_give_the_lift_and_keep_only_supported_tokens(monkeypatch):
    import classifier.measure.accumulators as accumulators

    totals = KeyTotals.empty(1, 1, 4)
    totals.mass[0, 0] = torch.tensor([0.0, 30.0, 10.0, 50.0], dtype=torch.float64)
    totals.uniform[:] = torch.tensor([0.0, 60.0, 1.0, 10.0], dtype=torch.float64)
    totals.occurrences[:] = torch.tensor([0.0, 100.0, 100.0, 3.0], dtype=torch.float64)  # token 3: too rare
    totals.stories[:] = torch.tensor([0.0, 50.0, 50.0, 3.0], dtype=torch.float64)
    totals.queries = 100.0
    monkeypatch.setattr(accumulators, "TOP_KEY_MIN_OCCURRENCES", 20)
    top = totals.top(k=8)
    assert top["key_id"].tolist() == [1, 2]  # token 3 has the largest share but 3 occurrences
    assert top["share"].tolist() == pytest.approx([0.3, 0.1])
    assert top["lift"].tolist() == pytest.approx([0.5, 10.0])
    assert top["rank"].tolist() == [0, 1]


def test_pairs_carry_the_top_key_rate_and_mean_weight_and_self_pairs_only_for_heads_that_look_at_themselves():
    import pandas as pd

    from classifier.label.roles import characteristic_pairs
    from classifier.measure.accumulators import PairCounts
    from classifier.registry import PARTS

    tokens = torch.tensor([[0, 5, 2, 5, 2, 5, 2]])  # " Tom" " ran" three times
    valid = torch.ones_like(tokens, dtype=torch.bool)
    # head 0: every query on itself (weights 0.5 and 0.7 alternating); head 1: " ran" on the " Tom" before it
    argmax = torch.tensor([[[0, 1, 2, 3, 4, 5, 6], [0, 0, 1, 0, 3, 0, 5]]])
    top = torch.tensor([[[1.0, 0.5, 0.7, 0.5, 0.7, 0.5, 0.7], [1.0, 0.9, 0.2, 0.9, 0.4, 0.9, 0.6]]])
    parts = torch.tensor([[[PARTS.index("sink")] + [PARTS.index("self")] * 6,
                           [PARTS.index("sink")] * 2 + [PARTS.index("previous"), PARTS.index("sink")] * 2
                           + [PARTS.index("previous")]]])
    counts = PairCounts.empty(len(VOCAB), 2)
    counts.add_queries(tokens, valid)
    counts.add(0, argmax, tokens, valid, parts, top)
    frame = counts.top().set_index(["head", "query_id", "key_id"])
    assert frame.loc[(0, 5, 5), "count"] == 3 and frame.loc[(0, 5, 5), "weight"] == pytest.approx(0.5)
    assert frame.loc[(1, 2, 5), "weight"] == pytest.approx(0.4)  # mean of 0.2, 0.4, 0.6
    assert frame.loc[(1, 2, 5), "top_rate"] == pytest.approx(1.0)  # every " ran" query (3 of 3)
    assert frame.loc[(0, 2, 2), "top_rate"] == pytest.approx(1.0)
    roles = pd.DataFrame({"layer": [0, 0], "head": [0, 1], "role": ["current-token", "unclear"]})
    vocab = type("V", (), {"texts": VOCAB})
    shown = characteristic_pairs(counts.top(), roles, vocab)
    assert set(shown[shown["head"] == 0]["part"]) == {"self"}  # a current-token head shows its self pairs
    assert "self" not in set(shown[shown["head"] == 1]["part"])


def test_hold_matches_the_plain_reference_on_heads_with_favourite_keys():
    from reference_metrics import held_queries

    rng = np.random.default_rng(5)
    texts = [TOKENS, [0, 5, 6, 7, 5, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6]]
    tokens, targets = targets_of(texts)
    # each head favours a few random key positions (logit bonus) over noise: runs of held keys
    logits = rng.normal(size=(2, 6, T, T)) + 4.0 * (rng.random((2, 6, 1, T)) < 0.15)
    logits = np.where(np.tril(np.ones((T, T))) > 0, logits, -np.inf)
    patterns = np.exp(logits - logits.max(-1, keepdims=True))
    patterns /= patterns.sum(-1, keepdims=True)
    sums, _ = score_patterns(torch.tensor(patterns), targets)
    expected = np.array([[sum(held_queries(patterns[b, h], texts[b])) for h in range(6)] for b in range(2)])
    np.testing.assert_array_equal(sums[..., HOLD].numpy(), expected)
    assert expected.sum() > 0 and (expected < T - 3).any()  # not vacuous: some hold, some do not


def test_a_key_token_the_head_hardly_looks_at_is_no_top_key():
    totals = KeyTotals.empty(1, 1, 3)
    # a head whose attention off BOS, itself and the previous token is almost nothing
    totals.mass[0, 0] = torch.tensor([0.0, 0.01, 5.0], dtype=torch.float64)
    totals.uniform[:] = torch.tensor([0.0, 10.0, 10.0], dtype=torch.float64)
    totals.occurrences[:] = 100.0
    totals.stories[:] = 50.0
    totals.queries = 1000.0
    top = totals.top(k=8)
    assert top["key_id"].tolist() == [2]  # token 1: 0.001% of its attention, shown as 0.0% before


def test_attention_on_a_delimiter_that_is_the_query_or_the_previous_token_is_counted_apart():
    # TOKENS has delimiters at 3, 7, 11, 15, 18, 22. A current-token head puts everything on the
    # query itself: six delimiter queries; a previous-token head: the six queries after them
    _, _, view = hold_of(rows(list(range(T))), rows([max(i - 1, 0) for i in range(T)]))
    delimiters = [3, 7, 11, 15, 18, 22]
    uniform = sum(1 / (d + 1) + 1 / (d + 2) for d in delimiters)  # the query itself, then the next query
    np.testing.assert_allclose(view[:, 2:4], [[6.0, uniform], [6.0, uniform]], rtol=1e-6)
