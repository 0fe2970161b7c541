"""Shared fixtures: the real GPT-2 tokenizer, small GPT-Neo checkpoints built in code, stories."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every hub lookup would otherwise wait ~23 s

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# Real data committed with the project (licences in each folder's NOTICE.md): every test runs in a clone.
REAL_STORIES = ROOT / "corpora" / "tinystories-train-2316.txt"  # 2,316 TinyStories training stories
GPT2_TOKENIZER_DIR = ROOT / "devmodels" / "gpt2-tokenizer"  # vocab.json, merges.txt
STORIES260K = ROOT / "classifier" / "data" / "stories260K.bin"  # llama2.c's 260K-parameter model
TOK512 = ROOT / "classifier" / "data" / "tok512.model"  # its SentencePiece tokenizer


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    from classifier.load.gpt2 import gpt2_tokenizer

    return gpt2_tokenizer()


def save_gpt_neo(
    directory: Path, tokenizer, *, layers: int, heads: int, width: int, mlp: int, seed: int = 0, **config
) -> Path:
    """A randomly initialised GPT-Neo checkpoint with TinyStories' settings, saved for loading."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    config = GPTNeoConfig(
        vocab_size=50257, max_position_embeddings=2048, hidden_size=width, num_layers=layers,
        num_heads=heads, attention_types=[[["global"], layers]], window_size=256, intermediate_size=mlp,
        bos_token_id=50256, eos_token_id=50256, **config,
    )
    torch.manual_seed(seed)
    GPTNeoForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tinystories_1l_dir(tmp_path_factory, gpt2_tokenizer):
    """The exact TinyStories-1Layer-21M architecture (1 layer, 16 heads, d_model 1024, d_mlp 4096,
    window 256, vocab 50257; GPT-Neo applies no attention scaling) with random weights."""
    return save_gpt_neo(tmp_path_factory.mktemp("tinystories-1l"), gpt2_tokenizer, layers=1, heads=16, width=1024, mlp=4096)


@pytest.fixture(scope="session")
def small_neo_dir(tmp_path_factory, gpt2_tokenizer):
    """A small two-layer GPT-Neo (4 heads, width 64) for fast end-to-end tests."""
    return save_gpt_neo(tmp_path_factory.mktemp("small-neo"), gpt2_tokenizer, layers=2, heads=4, width=64, mlp=128)


@pytest.fixture(scope="session")
def stories():
    """Twenty real stories."""
    from classifier.load.corpora import load_corpus

    return list(load_corpus(str(REAL_STORIES), stories=20, seed=0).texts)
