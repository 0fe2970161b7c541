"""llama2.c checkpoints: the converted HF model against an independent numpy forward pass, greedy
decoding of the real stories260K model, input validation, the TransformerLens bridge, names."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every hub lookup would otherwise wait ~23 s

import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.load.llama2c import (
    Llama2cError,
    boot_llama2c_bridge,
    is_llama2c_name,
    is_llama2c_path,
    load_llama2c,
    load_sentencepiece_tokenizer,
    read_llama2c_header,
    resolve_llama2c_name,
)

from conftest import STORIES260K, TOK512
GREEDY_START = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball."
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the models are tiny, and two threads on a busy 2-core machine run ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def stories260k():
    return load_llama2c(STORIES260K, TOK512)


def numpy_forward(bin_path: Path, tokens: list[int]) -> np.ndarray:
    """Logits (T, vocab) of a shared-classifier llama2.c checkpoint, as run.c computes them, in float64."""
    dim, hidden, n_layers, n_heads, n_kv, vocab, _ = struct.unpack("<7i", bin_path.read_bytes()[:28])
    hs, kv_dim = dim // n_heads, n_kv * dim // n_heads
    data = np.fromfile(bin_path, dtype="<f4", offset=28).astype(np.float64)
    shapes = {
        "emb": (vocab, dim), "rms_att": (n_layers, dim), "wq": (n_layers, dim, dim),
        "wk": (n_layers, kv_dim, dim), "wv": (n_layers, kv_dim, dim), "wo": (n_layers, dim, dim),
        "rms_ffn": (n_layers, dim), "w1": (n_layers, hidden, dim), "w2": (n_layers, dim, hidden),
        "w3": (n_layers, hidden, dim), "rms_final": (dim,),
    }
    w, start = {}, 0
    for name, shape in shapes.items():
        w[name] = data[start : start + np.prod(shape)].reshape(shape)
        start += np.prod(shape)

    def rmsnorm(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * weight

    T = len(tokens)
    angle = np.arange(T)[:, None] * 10000.0 ** (-np.arange(0, hs, 2) / hs)[None, :]  # (T, hs/2)
    cos, sin = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]

    def rope(v):  # (T, heads, hs): rotate each consecutive pair (2k, 2k+1)
        a, b = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    x = w["emb"][tokens]
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in range(n_layers):
        h = rmsnorm(x, w["rms_att"][l])
        q = rope((h @ w["wq"][l].T).reshape(T, n_heads, hs))
        k = rope((h @ w["wk"][l].T).reshape(T, n_kv, hs))
        v = (h @ w["wv"][l].T).reshape(T, n_kv, hs)
        k, v = (np.repeat(a, n_heads // n_kv, axis=1) for a in (k, v))  # head h reads kv head h // group
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(hs)
        scores[:, future] = -np.inf
        p = np.exp(scores - scores.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", p, v).reshape(T, dim) @ w["wo"][l].T
        h = rmsnorm(x, w["rms_ffn"][l])
        gate = h @ w["w1"][l].T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ w["w3"][l].T)) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["emb"].T


def test_hf_logits_equal_an_independent_numpy_forward_pass(stories260k):
    model, tokenizer = stories260k
    tokens = tokenizer("Once upon a time, Tom and Lily found a shiny red ball in the park.").input_ids
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].numpy()
    expected = numpy_forward(STORIES260K, tokens)
    assert logits.shape == expected.shape == (len(tokens), 512)
    assert np.abs(logits - expected).max() < 1e-4


def test_greedy_decoding_from_bos_tells_the_lily_story(stories260k):
    model, tokenizer = stories260k
    ids = torch.tensor([[1]])
    with torch.no_grad():
        for _ in range(45):
            ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
    assert tokenizer.decode(ids[0], skip_special_tokens=True).startswith(GREEDY_START)


def test_header_config_and_checks_on_names_and_paths(tmp_path):
    config = read_llama2c_header(STORIES260K)
    assert (config.dim, config.hidden_dim, config.n_layers, config.n_heads, config.n_kv_heads) == (64, 172, 5, 8, 4)
    assert (config.vocab_size, config.seq_len, config.shared_classifier) == (512, 512, True)
    assert is_llama2c_path(STORIES260K) and not is_llama2c_path(TOK512)
    (tmp_path / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + bytes(100))  # a zip, like torch.save
    assert not is_llama2c_path(tmp_path / "pytorch_model.bin")
    assert is_llama2c_name("stories15M") and not is_llama2c_name("stories15M.bin")


def test_tokenizer_splits_text_as_sentencepiece_does():
    import sentencepiece

    tokenizer = load_sentencepiece_tokenizer(TOK512)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(TOK512))
    texts = ["Once upon a time", "  two  spaces ", "Hi \n there\n\n\u201cYes!\u201d", "caf\u00e9 \u65e5\u672c", ""]
    for text in texts:
        assert tokenizer.encode(text, add_special_tokens=False) == reference.encode(text), text
    assert tokenizer.convert_ids_to_tokens(reference.encode("Once upon")) == ["\u2581Once", "\u2581upon"]
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<s>", 1)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("</s>", 2)
    assert tokenizer.pad_token_id == 0 and tokenizer("Once").input_ids[0] == 1


def test_rope_tables_are_optional_and_an_unshared_classifier_is_read(tmp_path, stories260k):
    model, tokenizer = stories260k
    raw = STORIES260K.read_bytes()
    config = read_llama2c_header(STORIES260K)
    no_tables = raw[: 28 + 4 * config.weight_floats(False)]
    (tmp_path / "bare.bin").write_bytes(no_tables)
    # Negative vocab_size: a separate classifier after the RoPE tables; here a copy of the embedding.
    embedding = raw[28 : 28 + 4 * 512 * 64]
    (tmp_path / "unshared.bin").write_bytes(raw[:20] + struct.pack("<i", -512) + raw[24:] + embedding)
    tokens = torch.tensor([tokenizer("The cat sat.").input_ids])
    with torch.no_grad():
        expected = model(tokens).logits
        for name in ("bare.bin", "unshared.bin"):
            other, _ = load_llama2c(tmp_path / name, TOK512)
            assert torch.equal(other(tokens).logits, expected), name
    assert not read_llama2c_header(tmp_path / "unshared.bin").shared_classifier


def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path):
    raw = STORIES260K.read_bytes()
    cases = {
        "truncated.bin": (raw[:1000], "truncated"),
        "header-only.bin": (raw[:28], "truncated"),
        "too-long.bin": (raw + bytes(4), "too long"),
        "short.bin": (raw[:10], "too short"),
        "zero.bin": (struct.pack("<7i", 64, 172, 0, 8, 4, 512, 512), "n_layers=0"),
    }
    for name, (content, problem) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(Llama2cError) as err:
            load_llama2c(tmp_path / name, TOK512)
        message = str(err.value)
        assert name in message and problem in message and "\n" not in message, message


def test_tokenizer_of_another_vocab_size_names_both_sizes_and_files(tmp_path):
    config = read_llama2c_header(STORIES260K)
    header = struct.pack("<7i", 64, 172, 5, 8, 4, 600, 512)
    floats = config.weight_floats(False) + (600 - 512) * 64
    (tmp_path / "vocab600.bin").write_bytes(header + np.zeros(floats, dtype="<f4").tobytes())
    with pytest.raises(Llama2cError) as err:
        load_llama2c(tmp_path / "vocab600.bin", TOK512)
    message = str(err.value)
    assert all(s in message for s in ("512", "600", "vocab600.bin", "tok512.model")) and "\n" not in message


def test_missing_tokenizer_asks_for_the_tokenizer_option(tmp_path):
    (tmp_path / "model.bin").write_bytes(STORIES260K.read_bytes())
    with pytest.raises(Llama2cError, match="--tokenizer"):
        load_llama2c(tmp_path / "model.bin")
    (tmp_path / "tok512.model").write_bytes(TOK512.read_bytes())  # found by its vocabulary size
    assert len(load_llama2c(tmp_path / "model.bin")[1]) == 512


def test_bridge_logits_and_patterns_equal_hf_eager_attention(stories260k):
    bridge, tokenizer = boot_llama2c_bridge(STORIES260K, TOK512, device="cpu")
    model, _ = load_llama2c(STORIES260K, TOK512)  # a fresh model: the bridge rewires the one it wraps
    model.set_attn_implementation("eager")
    texts = ["Once upon a time, there was a little girl named Lily.", "Tom and Ben went to the park to play."]
    tokens = torch.tensor([ids[:12] for ids in tokenizer(texts).input_ids])
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tokens)
        reference = model(tokens, output_attentions=True)
    assert torch.allclose(logits, reference.logits, atol=1e-5)
    for layer in (0, 4):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
        assert pattern.shape == (2, 8, 12, 12)
        assert torch.allclose(pattern, reference.attentions[layer], atol=1e-6)


def test_resolving_a_name_offline_fails_fast_with_one_line(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    start = time.perf_counter()
    with pytest.raises(Llama2cError) as err:
        resolve_llama2c_name("stories15M")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert message.startswith("stories15M:") and "\n" not in message
    with pytest.raises(Llama2cError, match="not a known"):
        resolve_llama2c_name("stories1B")
