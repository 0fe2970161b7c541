"""Shared by the benchmark's jobs (`python -m tools.bench`): the TinyStories-1Layer-21M-shaped
checkpoint with random weights, the stories, the scorer's batches, and fresh child processes.

Importing this module does nothing but define functions (torch is imported where it is used).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

BATCH_SIZE = 16


def write_checkpoint(directory: Path, tokenizer) -> None:
    """TinyStories-1Layer-21M's architecture with random weights, saved with `tokenizer`."""
    import transformers

    config = transformers.GPTNeoConfig(
        vocab_size=50257, max_position_embeddings=2048, hidden_size=1024, num_layers=1, num_heads=16,
        attention_types=[[["global"], 1]], window_size=256, intermediate_size=4096,
        bos_token_id=50256, eos_token_id=50256,
    )
    transformers.utils.logging.disable_progress_bar()
    import torch

    torch.manual_seed(0)
    model = transformers.GPTNeoForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def load_checkpoint(directory: Path):
    """The project's LoadedModel of `directory`, on the CPU."""
    logging.getLogger("transformers").setLevel(logging.ERROR)
    from classifier.load import models

    return models.load_model(str(directory), device="cpu")


def load_stories(stories: int, corpus_spec: str = "bundled") -> tuple[list[str], str]:
    import warnings

    from classifier.load.corpora import load_corpus

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer stories than asked" is said in the output anyway
        corpus = load_corpus(corpus_spec, stories=stories, seed=0)
    return list(corpus.texts), f"{corpus.source} ({len(corpus.texts)} of {corpus.total} stories, seed 0)"


def padded_batches(model, texts, max_tokens: int, batch_size: int):
    """The scorer's own batches: token lists, then (tokens (B, T), lengths (B,)) right-padded."""
    from classifier.measure.batches import model_stories, padded_batches as batches

    token_lists = model_stories(model, texts, max_tokens).ids
    return token_lists, [(b.tokens, b.lengths) for b in batches(token_lists, batch_size, pad_id=model.bos_token_id)]


def attention_mask(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    from classifier.measure.batches import valid_positions

    return valid_positions(tokens, lengths).long()


def run_scorer(model, texts, max_tokens: int) -> tuple[int, float]:
    from classifier.measure.scorer import score_texts
    from classifier.settings import ScoreSettings

    settings = ScoreSettings(stories=None, batch_size=BATCH_SIZE, bootstrap=0, max_tokens=max_tokens)
    start = time.perf_counter()
    scored = score_texts(model, texts, settings, progress=False)
    return scored.n_tokens, time.perf_counter() - start


# Linux carries ru_maxrss across fork and execve: a child forked straight from a process that
# has grown would start from that process's peak. A small launcher process forks the measured
# one instead, so its counter starts from the launcher's few MiB.
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


def run_child(*arguments: str) -> dict:
    """Run `python -m tools.bench ARGUMENTS` in a fresh process; its last JSON line."""
    command = [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "tools.bench", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"subprocess exit {done.returncode}: {tail}"}
    return json.loads(lines[-1])



def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def mib(kb: int) -> str:
    return f"{kb / 1024:.0f}"
