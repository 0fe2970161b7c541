"""Scorer throughput (`python -m tools.bench`, paths (a)-(d)): the scorer against TransformerLens'
cache, detect_head and a bare forward pass, each in a fresh process over the same batches.

Importing this module does nothing but define functions (torch is imported where it is used).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from tools.bench_setup import (
    BATCH_SIZE, attention_mask, load_checkpoint, load_stories, mib, padded_batches, run_child, run_scorer, verdict,
)

SCORER_OVER_CACHE_TARGET = 8.0
SCORER_OVER_FORWARD_TARGET = 3.0
# The scorer's time over its floor's: the same forward passes stopped after the last layer's
# pattern with nothing reduced (the hooks alone), on the scorer's own batches.
SCORER_OVER_FLOOR_TARGET = 1.3
# Floor and scorer alternate in one process, best of this many each: one process, one heap, and
# the best of several runs leaves out the slow ones a shared machine gives now and then.
FLOOR_REPEATS = 5


def run_cache_then_metrics(model, batches, vocab) -> tuple[int, float]:
    import torch

    from classifier.measure.accumulators import PairCounts
    from classifier.measure.scoring import BatchStats, TextStats, argmax_parts, metric_targets, query_stats, score_patterns
    from classifier.load.tokens import sequence_classes

    start = time.perf_counter()
    pairs = PairCounts.empty(len(vocab.texts), model.n_heads)
    results, n_tokens = [], 0
    with torch.inference_mode():
        for tokens, lengths in batches:
            _, cache = model.bridge.run_with_cache(tokens, attention_mask=attention_mask(tokens, lengths))
            classes = sequence_classes(tokens, lengths, vocab)
            targets = metric_targets(tokens, classes)
            sums, offsets = [], []
            for layer in range(model.n_layers):
                pattern = cache[f"blocks.{layer}.attn.hook_pattern"]
                top, argmax = pattern.max(-1)
                layer_sums, layer_offsets = score_patterns(pattern, targets, argmax, max_weight=top)
                sums.append(layer_sums)
                offsets.append(layer_offsets)
                pairs.add(layer, argmax, tokens, classes.valid, argmax_parts(argmax, targets), top)
            counts, uniform, offset_queries = query_stats(targets)
            results.append(BatchStats(
                sums=torch.stack(sums, dim=1), counts=counts, uniform=uniform,
                offset_counts=torch.stack(offsets, dim=1), offset_queries=offset_queries,
            ))
            n_tokens += int(lengths.sum())
            del cache
    TextStats.from_batches(results)
    pairs.top()
    return n_tokens, time.perf_counter() - start


def run_detect_head(model, stories: list[str]) -> tuple[int, float]:
    """detect_head on the given stories; tokens counted with the bridge's own to_tokens."""
    import torch
    from transformer_lens.head_detector import detect_head

    n_tokens = sum(int(model.bridge.to_tokens(story).shape[-1]) for story in stories)
    start = time.perf_counter()
    with torch.inference_mode():
        detect_head(model.bridge, stories, "previous_token_head")
    return n_tokens, time.perf_counter() - start


def run_forward(model, batches) -> tuple[int, float]:
    import torch

    start = time.perf_counter()
    n_tokens = 0
    with torch.inference_mode():
        for tokens, lengths in batches:
            model.bridge(tokens, attention_mask=attention_mask(tokens, lengths))
            n_tokens += int(lengths.sum())
    return n_tokens, time.perf_counter() - start


PATHS = {
    "a": "scorer (score_texts)",
    "b": "run_with_cache + metrics",
    "c": "detect_head previous_token",
    "d": "bare forward to logits",
}


def path_child(key: str, model_dir: Path, stories: int, max_tokens: int, corpus: str) -> None:
    """Warm up and time one path; print one JSON line (runs in a fresh subprocess)."""
    import numpy as np
    import torch

    model = load_checkpoint(model_dir)
    texts, source = load_stories(stories, corpus)
    token_lists, batches = padded_batches(model, texts, max_tokens, BATCH_SIZE)
    shortest = np.argsort([len(t) for t in token_lists], kind="stable")
    if key == "a":
        data, warm = texts, [texts[k] for k in shortest[:BATCH_SIZE]]
        run = lambda t: run_scorer(model, t, max_tokens)  # noqa: E731
    elif key == "b":
        from classifier.load.tokens import vocab_classes

        vocab = vocab_classes(model.tokenizer)
        data, warm = batches, batches[-1:]
        run = lambda b: run_cache_then_metrics(model, b, vocab)  # noqa: E731
    elif key == "c":
        # detect_head takes strings: the scorer's (truncated) token ids, BOS dropped, as text.
        data = [model.tokenizer.decode(ids[1:]) for ids in token_lists]
        warm = [data[shortest[0]]]
        run = lambda s: run_detect_head(model, s)  # noqa: E731
    else:
        data, warm = batches, batches[-1:]
        run = lambda b: run_forward(model, b)  # noqa: E731
    row = {
        "key": key, "source": source, "batches": len(batches),
        "scorer_tokens": sum(len(t) for t in token_lists), "threads": torch.get_num_threads(),
    }
    try:
        run(warm)
        row["tokens"], row["seconds"] = run(data)
    except Exception as err:  # report, don't crash: this is a measurement
        first = (str(err).strip().splitlines() or [""])[0]
        row["error"] = f"{type(err).__name__}: {first}"
    row["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(row))




def print_paths(model_dir: Path, keys: str, stories: int, max_tokens: int, corpus: str) -> None:
    """Run each path in `keys` in a fresh process; print the throughput table and the ratios."""
    results = {}
    for key in keys:
        row = run_child("--path-child", key, "--model-dir", str(model_dir), "--corpus", corpus,
                        "--stories", str(stories), "--max-tokens", str(max_tokens))
        if not results and "source" in row:
            print(f"stories: {row['source']}")
            print(f"batches: {row['batches']} of <= {BATCH_SIZE} (the scorer's length-sorted batches, "
                  f"right-padded), max_tokens {max_tokens}, {row['scorer_tokens']} tokens; "
                  f"torch threads {row['threads']}; each path in a fresh process, warmed up on one batch")
        results[key] = row
        state = row.get("error") or f"{row['tokens']} tokens in {row['seconds']:.1f} s"
        print(f"  ({key}) {PATHS[key]}: {state}")
        sys.stdout.flush()

    print()
    print(f"{'path':<32} {'tokens':>8} {'seconds':>9} {'tokens/s':>10} {'peak RSS MiB':>13}")
    rate = {}
    for key, row in results.items():
        if "error" in row:
            peak = mib(row.get("peak_kb", 0))
            print(f"({key}) {PATHS[key]:<28} {'-':>8} {'-':>9} {'failed':>10} {peak:>13}")
            continue
        rate[key] = row["tokens"] / row["seconds"]
        print(f"({key}) {PATHS[key]:<28} {row['tokens']:>8} {row['seconds']:>9.2f} {rate[key]:>10.0f} "
              f"{mib(row['peak_kb']):>13}")
    print()
    targets = {"b": SCORER_OVER_CACHE_TARGET, "d": SCORER_OVER_FORWARD_TARGET, "c": None}
    for key in ("b", "d", "c"):
        if "a" in rate and key in rate:
            ratio = rate["a"] / rate[key]
            target = targets[key]
            mark = f"  target >= {target:g}x  {verdict(ratio >= target)}" if target else "  (no target)"
            print(f"a/{key} = {ratio:6.2f}x{mark}")


def floor_child(model_dir: Path, stories: int, max_tokens: int, corpus: str) -> None:
    """Time the scorer (`score_stories`, bootstrap off) and its floor (`each_layer_pattern` with
    nothing reduced) over the same batches in this process, alternating, best of FLOOR_REPEATS;
    freed memory goes back to the system as in a report. Print one JSON line."""
    import torch

    from classifier.load.tokens import vocab_classes
    from classifier.measure.batches import attention_batches, model_stories, return_freed_memory
    from classifier.measure.scorer import each_layer_pattern, score_stories
    from classifier.settings import ScoreSettings

    return_freed_memory()  # as `pipeline.analyse` does
    model = load_checkpoint(model_dir)
    texts, source = load_stories(stories, corpus)
    tokenized = model_stories(model, texts, max_tokens)
    vocab = vocab_classes(model.tokenizer)
    settings = ScoreSettings(stories=None, batch_size=BATCH_SIZE, bootstrap=0, max_tokens=max_tokens)

    def floor() -> None:
        for batch in attention_batches(model, tokenized.ids, settings.batch_size):
            each_layer_pattern(model, batch.tokens, lambda layer, pattern: None, batch.valid.long())

    def scorer() -> None:
        score_stories(model, tokenized, settings, vocab=vocab, progress=False)

    seconds = {"floor": [], "scorer": []}
    floor(), scorer()  # warm-up
    for _ in range(FLOOR_REPEATS):
        for name, run in (("floor", floor), ("scorer", scorer)):
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    print(json.dumps({"source": source, "tokens": tokenized.n_tokens, "threads": torch.get_num_threads(), **seconds}))


def print_floor_ratio(model_dir: Path, stories: int, max_tokens: int, corpus: str) -> None:
    """The scorer's time over its floor's (`floor_child`, in a fresh process)."""
    row = run_child("--floor-child", "--model-dir", str(model_dir), "--corpus", corpus,
                    "--stories", str(stories), "--max-tokens", str(max_tokens))
    print(f"scorer over its floor (the same forward passes stopped after the last pattern, nothing reduced), "
          f"the scorer's batches, one process, alternating, best of {FLOOR_REPEATS}:")
    if "error" in row:
        print(f"  failed ({row['error']})")
        return
    floor, scorer = min(row["floor"]), min(row["scorer"])
    runs = ", ".join(f"{f:.2f}/{s:.2f}" for f, s in zip(row["floor"], row["scorer"]))
    print(f"  {row['tokens']} tokens, torch threads {row['threads']}: floor {floor:.2f} s, scorer {scorer:.2f} s "
          f"(each run floor/scorer: {runs})")
    ratio = scorer / floor
    print(f"scorer/floor = {ratio:.2f}x time  target <= {SCORER_OVER_FLOOR_TARGET:g}x  "
          f"{verdict(ratio <= SCORER_OVER_FLOOR_TARGET)}")
