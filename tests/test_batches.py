"""How stories reach a model: the truncation rule, the cut flags, padded batches and their budget."""

import numpy as np
import torch

from classifier.measure.batches import Stories, padded_batches, token_limit, tokenize, valid_positions

BOS = 50256


def test_bos_first_and_cut_to_the_limit_in_all(gpt2_tokenizer):
    # GPT-2 ids of "Hello world" are 15496, 995 (any GPT-2 tokenizer).
    two = tokenize(["  Hello world \n"], gpt2_tokenizer, BOS, 2)
    assert two.ids[0].tolist() == [BOS, 15496] and two.cut.tolist() == [True]
    three = tokenize(["Hello world"], gpt2_tokenizer, BOS, 3)
    assert three.ids[0].tolist() == [BOS, 15496, 995] and three.cut.tolist() == [False]
    assert three.ids[0].dtype == np.int32 and three.limit == 3


def test_the_limit_is_max_tokens_capped_by_the_context():
    assert token_limit(512, 256) == 256 and token_limit(100, 2048) == 100


def test_stories_count_their_tokens_bos_included():
    stories = Stories([np.array([1, 2]), np.array([1]), np.array([1, 2, 3])], np.array([True, False, True]), 3)
    assert len(stories) == 3 and stories.n_tokens == 6


def test_batches_sort_by_length_pad_with_bos_and_cover_every_story_once():
    lists = [np.arange(n, dtype=np.int32) + 1 for n in (3, 7, 5, 1, 7)]
    batches = list(padded_batches(lists, 2, pad_id=0))
    assert sorted(np.concatenate([b.indices for b in batches]).tolist()) == [0, 1, 2, 3, 4]
    assert [b.indices.tolist() for b in batches] == [[1, 4], [2, 0], [3]]  # longest first, ties stable
    second = batches[1]
    assert second.tokens.tolist() == [[1, 2, 3, 4, 5], [1, 2, 3, 0, 0]]
    assert second.valid.tolist() == [[True] * 5, [True, True, True, False, False]]


def test_a_budget_shrinks_batches_by_the_cost_of_their_longest_row():
    lists = [np.ones(n, dtype=np.int32) for n in (10, 10, 10, 4, 4, 4)]
    sizes = [len(b.indices) for b in padded_batches(lists, 3, pad_id=0, row_cost=lambda longest: 2 * longest, budget=40)]
    assert sizes == [2, 1, 3]  # 40 // 20 = 2 rows of 10 tokens; 40 // 8 = 5, so the batch size (3) holds
    one = [len(b.indices) for b in padded_batches(lists, 3, pad_id=0, row_cost=lambda longest: 1000, budget=40)]
    assert one == [1] * 6  # never fewer than one row


def test_valid_positions_mark_real_tokens():
    mask = valid_positions(torch.zeros(2, 4, dtype=torch.long), torch.tensor([4, 1]))
    assert mask.tolist() == [[True] * 4, [True, False, False, False]]
