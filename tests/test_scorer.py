"""The scorer on real checkpoints: hooks see what a plain forward pass sees, padding and
batching change nothing, and the forward pass stops after the last attention pattern."""

import numpy as np
import pytest
import torch

from classifier.load.models import load_model
from classifier.measure.batches import tokenize
from classifier.measure.scorer import score_texts
from classifier.measure.scoring import METRICS, TextStats, metric_targets, query_stats, score_patterns
from classifier.settings import ScoreSettings
from classifier.load.tokens import sequence_classes, vocab_classes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_model(small_neo_dir):
    return load_model(str(small_neo_dir), device="cpu")


def plain_forward_stats(model_dir, model, texts):
    """Per-text statistics from Hugging Face's own attentions, one unpadded text at a time."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    vocab = vocab_classes(model.tokenizer)
    rows = []
    for ids in tokenize(texts, model.tokenizer, model.bos_token_id, 512).ids:
        ids = ids.tolist()
        tokens = torch.tensor([ids])
        with torch.no_grad():
            attentions = hf(tokens, output_attentions=True).attentions  # L x (1, H, T, T)
        targets = metric_targets(tokens, sequence_classes(tokens, torch.tensor([len(ids)]), vocab))
        sums = torch.stack([score_patterns(a, targets)[0] for a in attentions], dim=1)
        counts, uniform, _ = query_stats(targets)
        rows.append((sums[0].numpy(), counts[0].numpy(), uniform[0].numpy()))
    return rows


def test_hooked_scores_equal_those_of_a_plain_full_forward_pass(small_neo_dir, small_model, stories):
    texts = stories[:6]
    scored = score_texts(small_model, texts, ScoreSettings(stories=None, batch_size=4), progress=False)
    for k, (sums, counts, uniform) in enumerate(plain_forward_stats(small_neo_dir, small_model, texts)):
        np.testing.assert_allclose(scored.stats.sums[k], sums, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(scored.stats.counts[k], counts)
        np.testing.assert_allclose(scored.stats.uniform[k], uniform, rtol=1e-6)


def test_a_story_alone_equals_the_same_story_in_a_padded_batch(small_model, stories):
    texts = stories[:8]
    batched = score_texts(small_model, texts, ScoreSettings(stories=None, batch_size=8), progress=False)
    for k in (0, 5):
        alone = score_texts(small_model, [texts[k]], ScoreSettings(stories=None, batch_size=1), progress=False)
        np.testing.assert_allclose(batched.stats.sums[k], alone.stats.sums[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(batched.stats.counts[k], alone.stats.counts[0])


def test_two_halves_merged_equal_the_whole_corpus(small_model, stories):
    texts = stories[:10]
    settings = ScoreSettings(stories=None, batch_size=3)
    whole = score_texts(small_model, texts, settings, progress=False).stats
    halves = TextStats.merge([
        score_texts(small_model, texts[:5], settings, progress=False).stats,
        score_texts(small_model, texts[5:], settings, progress=False).stats,
    ])
    for a, b in zip(whole.corpus_metrics(), halves.corpus_metrics()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_forward_pass_stops_before_the_unembedding(small_model, stories):
    calls = []
    handle = small_model.bridge.unembed.register_forward_hook(lambda *args: calls.append(1))
    try:
        score_texts(small_model, stories[:2], ScoreSettings(stories=None), progress=False)
        assert calls == []
        small_model.bridge(torch.tensor([[small_model.bos_token_id, 11, 12]]))
        assert calls == [1]  # the hook itself works
    finally:
        handle.remove()


def test_texts_are_truncated_to_max_tokens(small_model, stories):
    scored = score_texts(small_model, stories[:3], ScoreSettings(stories=None, max_tokens=16), progress=False)
    assert scored.n_tokens == 3 * 16
    # current is eligible at queries 1..15 of each text
    assert scored.stats.counts[:, METRICS.index("current")].tolist() == [15, 15, 15]


def save_other_architecture(directory, tokenizer, architecture):
    """A small random GPT-2 or Llama checkpoint (with the GPT-2 tokenizer) saved for loading."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    if architecture == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=512, initializer_range=0.1))
    else:
        model = LlamaForCausalLM(LlamaConfig(
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=64, intermediate_size=128,
            vocab_size=50257, max_position_embeddings=512, bos_token_id=50256, eos_token_id=50256, initializer_range=0.1,
        ))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_gpt2_and_llama_checkpoint_directories_score_like_their_plain_forward_pass(architecture, tmp_path, gpt2_tokenizer, stories):
    directory = save_other_architecture(tmp_path / architecture, gpt2_tokenizer, architecture)
    model = load_model(str(directory), device="cpu")
    assert (model.n_layers, model.n_heads) == (2, 4)
    texts = stories[:3]
    scored = score_texts(model, texts, ScoreSettings(stories=None, batch_size=3), progress=False)
    for k, (sums, counts, _) in enumerate(plain_forward_stats(directory, model, texts)):
        np.testing.assert_allclose(scored.stats.sums[k], sums, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(scored.stats.counts[k], counts)
