"""Peak resident memory (`python -m tools.bench`): the scorer alone at two corpus sizes (flat in
the stories), and a report's peak over the import floor on stories260K and the 1L-21M shape.

Importing this module does nothing but define functions (torch is imported where it is used).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from tools.bench_setup import load_checkpoint, load_stories, mib, run_child, run_scorer, verdict

RSS_TOLERANCE = 0.10


def rss_child(model_dir: Path, stories: int, max_tokens: int, corpus: str, start_kb: int) -> None:
    """Score `stories` stories and print one JSON line with the peak RSS (runs in a subprocess);
    freed memory goes back to the system as in a report (`batches.return_freed_memory`)."""
    from classifier.measure.batches import return_freed_memory

    return_freed_memory()
    model = load_checkpoint(model_dir)
    texts, _ = load_stories(stories, corpus)
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_tokens, seconds = run_scorer(model, texts, max_tokens)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "stories": len(texts), "tokens": n_tokens, "seconds": seconds,
        "peak_at_start_kb": start_kb, "peak_before_scoring_kb": before_kb, "peak_kb": peak_kb,
    }))




def print_rss(model_dir: Path, sizes: list[int], max_tokens: int, corpus: str) -> None:
    """The scorer alone, one fresh process per size: peak RSS at the largest within RSS_TOLERANCE of the smallest."""
    print(f"peak RSS (ru_maxrss), scorer only, one fresh process per size, freed memory given back as in a report, "
          f"max_tokens {max_tokens}:")
    rss = []
    for size in sizes:
        row = run_child("--rss-child", str(size), "--model-dir", str(model_dir), "--corpus", corpus,
                        "--max-tokens", str(max_tokens))
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


# Peak memory of a report: default settings (batch size, bootstrap, similarity stories), on
# MEMORY_STORIES stories each made of STORIES_JOINED corpus stories (over 512 tokens, so every
# batch is as long as --max-tokens allows: the worst case), importance on MEMORY_ABLATION_STORIES.
# A report's peak is flat in the number of stories (a pass's tensors are bounded per batch), so
# fewer than the default 500 stories give the default report's peak in a fraction of its time.
MEMORY_STORIES = 48
MEMORY_ABLATION_STORIES = 2
STORIES_JOINED = 4
MEMORY_GOAL_GB = 0.5
# The floor: what any report imports before its model (classifier.pipeline imports the rest).
FLOOR_IMPORT = "from transformer_lens.model_bridge import TransformerBridge"
# pipeline functions after which the peak is read, in the order a report calls them.
MEMORY_STAGES = ("score_stories", "head_importance")


def memory_child(model: str, max_tokens: int, corpus: str) -> None:
    """A report's analysis of `model` (a name or a checkpoint folder) in this fresh process; print
    one JSON line: peak RSS after the import floor, after loading, after each of MEMORY_STAGES and
    at the end (runs in a subprocess)."""
    import dataclasses
    import time
    import warnings

    from transformer_lens.model_bridge import TransformerBridge  # noqa: F401  (FLOOR_IMPORT)

    row = {"floor_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    import classifier.pipeline as pipeline
    from classifier.load.corpora import load_corpus
    from classifier.settings import ScoreSettings

    for stage in MEMORY_STAGES:
        function = getattr(pipeline, stage)

        def measured(*args, _function=function, _stage=stage, **kwargs):
            result = _function(*args, **kwargs)
            row[f"{_stage}_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return result

        setattr(pipeline, stage, measured)
    settings = ScoreSettings(stories=MEMORY_STORIES * STORIES_JOINED, max_tokens=max_tokens, device="cpu",
                             ablation_stories=MEMORY_ABLATION_STORIES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stories cut at --max-tokens: meant here
        sample = load_corpus(corpus, stories=settings.stories, seed=0)
        texts = [" ".join(sample.texts[k : k + STORIES_JOINED]) for k in range(0, len(sample.texts), STORIES_JOINED)]
        sample = dataclasses.replace(sample, texts=tuple(texts))
        loaded = load_checkpoint(model) if Path(model).is_dir() else pipeline.load_model(model, device="cpu")
        row["loaded_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        run = pipeline.analyse(loaded, sample, settings, progress=False)
    row.update(seconds=time.perf_counter() - start, stories=len(texts), heads=int(loaded.n_layers * loaded.n_heads),
               vocab=int(loaded.bridge.cfg.d_vocab), tokens=int(run.n_tokens), batch_size=settings.batch_size,
               max_tokens=max_tokens, peak_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    print(json.dumps(row))


def print_memory(model_dir: Path, max_tokens: int, corpus: str) -> None:
    """Peak RSS of a report over the import floor, stories260K and the 1L-21M shape, each in a fresh process."""
    print(f"peak memory of a report over the import floor ({FLOOR_IMPORT}), default settings, "
          f"{MEMORY_STORIES} stories of {STORIES_JOINED} joined (cut at --max-tokens {max_tokens}), "
          f"importance on {MEMORY_ABLATION_STORIES}; one fresh process each:")
    for label, model in (("stories260K", "stories260K"), ("1L-21M shape", str(model_dir))):
        row = run_child("--memory-child", model, "--max-tokens", str(max_tokens), "--corpus", corpus)
        if "error" in row:
            print(f"  {label}: failed ({row['error']})")
            continue
        floor = row["floor_kb"]
        over = {stage: (row[f"{stage}_kb"] - floor) / 2**20 for stage in ("loaded", *MEMORY_STAGES, "peak")
                if f"{stage}_kb" in row}
        stages = ", ".join(f"after {stage} {gb:.2f}" for stage, gb in over.items() if stage != "peak")
        print(f"  {label:<13} {row['heads']} heads, vocabulary {row['vocab']}, batch {row['batch_size']}, "
              f"{row['tokens']} tokens, {row['seconds']:.0f} s: floor {mib(floor)} MiB; over it (GB): {stages}; "
              f"peak {over['peak']:.2f}  goal < {MEMORY_GOAL_GB:g}  {verdict(over['peak'] < MEMORY_GOAL_GB)}")
        sys.stdout.flush()
