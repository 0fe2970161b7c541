"""Whether heads matter, its cost (`python -m tools.bench`, (e)-(g)): exact mean-ablation and
attribution patching against their floors, and what head_importance adds to a default report.

Importing this module does nothing but define functions (torch is imported where it is used).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tools.bench_setup import BATCH_SIZE, load_checkpoint, load_stories, run_child, run_scorer


def importance_child(model_dir: Path, stories: int, max_tokens: int, corpus: str) -> None:
    """Time (e), (f), (g) of the module docstring; print one JSON line (runs in a subprocess)."""
    import torch

    from classifier.measure.ablation import (
        BACKWARD_COPIES, FORWARD_COPIES, attribution, mean_ablation, model_losses, single_head_variants,
    )
    from classifier.measure.batches import attention_batches, model_stories
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
            for batch in attention_batches(model, token_lists, BATCH_SIZE, FORWARD_COPIES):  # ablation's batches
                model_losses(model, batch.tokens, batch.lengths, [])

    def bare_forward_backward():
        for batch in attention_batches(model, token_lists, BATCH_SIZE, copies=BACKWARD_COPIES * model.n_layers):
            model_losses(model, batch.tokens, batch.lengths, []).sum().backward()
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


