"""What watching head roles during training costs (`python -m tools.bench_training`; `make bench`
runs it as one section of tools.bench).

A small model (devmodels' tinystories-4L-dev configuration: a Llama with 4 layers of 8 heads,
d_model 64, llama2.c's 512-piece tokenizer, 256-token context, seeded initialisation) trains with
`transformers.Trainer` on real stories (16 sequences of 256 tokens a step, as devmodels/train.py
trains it; saving every `--save-every` steps), once with `classifier.track.HeadRolesCallback` at its defaults (64
stories, importance off) and once without. Printed: for each save, the training seconds since the
previous one and the callback's seconds (both as the callback logs them: `head_roles_seconds`,
`head_roles_ratio`), their mean ratio, and the wall time of the whole run with and without the
callback (the difference is what it added, loading the stories and the first wrap included).
Threads: torch's default. A measurement, not a test: the exit status is 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT / "corpora" / "tinystories-train-2316.txt"
MODEL = "tinystories-4L-dev"


def training_data(tokenizer, corpus: str, n_ctx: int, sequences: int) -> list[dict]:
    """Up to `sequences` windows of n_ctx tokens from the corpus stories (BOS before each story);
    the Trainer goes round them again when a run needs more."""
    import torch

    from classifier.load.corpora import load_corpus

    texts = load_corpus(corpus, stories=None, seed=0).texts
    stream: list[int] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        stream += [tokenizer.bos_token_id, *ids]
        if len(stream) >= sequences * n_ctx:
            break
    usable = min(len(stream) // n_ctx, sequences) * n_ctx
    windows = torch.tensor(stream[:usable]).view(-1, n_ctx)  # (N, T)
    return [{"input_ids": row, "labels": row} for row in windows]


def small_model(tokenizer):
    import torch

    from devmodels.train import MODELS, build_model

    torch.manual_seed(0)
    return build_model(MODELS[MODEL], len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)


def timed_training(steps: int, save_every: int, corpus: str, out: Path, watch: bool) -> tuple[float, list[dict]]:
    """Wall seconds of one Trainer run (model built and Trainer made inside), and its log history."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    from classifier.track import HeadRolesCallback
    from devmodels.train import MODELS, load_tokenizer

    tokenizer = load_tokenizer(MODELS[MODEL].arch)
    data = training_data(tokenizer, corpus, 256, 16 * steps)
    began = time.perf_counter()
    callbacks = [HeadRolesCallback(out / "track", stories=corpus)] if watch else []
    args = TrainingArguments(
        output_dir=str(out / "run"), max_steps=steps, per_device_train_batch_size=16, learning_rate=3e-3,
        save_strategy="steps", save_steps=save_every, save_only_model=True, logging_steps=save_every,
        report_to=[], use_cpu=True, seed=0, disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=small_model(tokenizer), args=args, train_dataset=data, processing_class=tokenizer,
                      data_collator=default_data_collator, callbacks=callbacks)
    trainer.train()
    return time.perf_counter() - began, trainer.state.log_history


def print_training_cost(*, steps: int = 150, save_every: int = 50, corpus: str = str(DEFAULT_CORPUS)) -> None:
    """The section itself: both runs, then the table."""
    import torch

    from classifier import console
    from classifier.track.tracking import notices_once

    print(f"watching during training: {MODEL}'s configuration (Llama, 4 layers x 8 heads, d_model 64, 512-piece "
          f"vocabulary); Trainer, "
          f"{steps} steps of 16 x 256 tokens, a save every {save_every}; HeadRolesCallback defaults "
          f"(64 stories, importance off); torch threads {torch.get_num_threads()}; stories: {corpus}")
    sys.stdout.flush()
    # The callback's note about the stories as one Note line, once, not at every save with its source line.
    with tempfile.TemporaryDirectory(prefix="head-roles-bench-training-") as tmp, console.configured(), notices_once():
        watched_seconds, history = timed_training(steps, save_every, corpus, Path(tmp) / "watched", watch=True)
        plain_seconds, _ = timed_training(steps, save_every, corpus, Path(tmp) / "plain", watch=False)
    scored = [entry for entry in history if "head_roles_seconds" in entry]
    print(f"{'save at step':>12} {'training s':>11} {'callback s':>11} {'ratio':>7}")
    for entry in scored:
        training = entry["head_roles_seconds"] / entry["head_roles_ratio"]
        print(f"{entry['step']:>12} {training:>11.1f} {entry['head_roles_seconds']:>11.1f} {entry['head_roles_ratio']:>7.2f}")
    if scored:
        mean = sum(e["head_roles_ratio"] for e in scored) / len(scored)
        print(f"mean ratio of the callback's time per scored step to the training time between saves: {mean:.2f}")
    print(f"whole run: {watched_seconds:.0f} s with the callback, {plain_seconds:.0f} s without "
          f"(+{watched_seconds / plain_seconds - 1:.0%})")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="python -m tools.bench_training", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[1:]))
    parser.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    parser.add_argument("--save-every", type=int, default=50, help="steps between saves (default 50)")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="stories (default: corpora/'s 2,316)")
    args = parser.parse_args(argv)
    print_training_cost(steps=args.steps, save_every=args.save_every, corpus=args.corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
