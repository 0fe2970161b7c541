"""Watch head roles form while a model trains: the library side of scoring during training.

`RoleWatcher(out_dir, ...).step(model, step)` scores the model a training loop holds, in memory, and
keeps a track folder up to date: track.csv, track.md and track.html rewritten atomically after every
step (open track.html while training runs), each step's run kept in out_dir/runs/step-N/.
`HeadRolesCallback` does the same for `transformers.Trainer`, at each save or every N steps, and
adds the time it took to the Trainer's log line.

Training is unchanged by watching: the model is wrapped by classifier.load.models.wrap_model (a
copy of its module tree sharing its weights: no weight copied, the model in training untouched),
scored in eval mode and without gradients, and the random number generators (torch, numpy,
Python) are put back as they were. The numbers are those `head-roles track` gives over the
saved checkpoints with the same settings (the same `analyse` on the same stories). A resumed run
finds the steps already in out_dir/runs and appends: a step scored again replaces its earlier run.
"""

from __future__ import annotations

import json
import random
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from classifier.errors import InputError
from classifier.settings import ScoreSettings
from classifier.track.store import KEY_SETTINGS, ModelSpec, default_store
from classifier.track.tracking import Compare, TrackedModel, Tracking, compared

# Light by default: a scored step should cost a small part of the training between two saves.
WATCH_STORIES = 64
WATCH_BOOTSTRAP = 200
RUN_FOLDER = re.compile(r"^step-(\d+)$")
# What of a stored step's corpus description says which stories were scored.
SAMPLE_FIELDS = ("source", "stories", "sample_indices")


@contextmanager
def preserved_rng():
    """Torch (CPU and CUDA), numpy and Python random states as they were, whatever the block draws."""
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _plain(value):
    return json.loads(json.dumps(value, default=str))


class RoleWatcher:
    """Score a model under training at the steps you choose and keep a track folder up to date.

    out_dir: the track folder (created; a file of yours named like an output stops it here).
    stories: the corpus (as `--corpus` takes it); n_stories, max_tokens, seed, batch_size,
    bootstrap, ablation_stories: the report's settings (`ablation_stories` 0: importance off).
    tokenizer: the model's tokenizer (or give it to `step`). device: where to score (None: where
    the model is). name: the run's name in the track (default: out_dir's name). prefix: how a
    checkpoint of step N is named (`step` -> `name/step-N`; the Trainer's are `checkpoint-N`).
    """

    def __init__(
        self, out_dir: str | Path, *, stories: str = "tinystories-sample", n_stories: int | None = WATCH_STORIES,
        max_tokens: int = 512, seed: int = 0, batch_size: int = 16, bootstrap: int = WATCH_BOOTSTRAP,
        ablation_stories: int = 0, tokenizer: Any = None, device: str | None = None, name: str | None = None,
        prefix: str = "step", compare: Compare = "consecutive", figures: bool = True,
    ) -> None:
        from classifier.load.corpora import load_corpus
        from classifier.outputs import check_output_dir
        from classifier.track.report import TRACK_OUTPUTS

        self.settings = ScoreSettings(stories=n_stories, max_tokens=max_tokens, seed=seed, batch_size=batch_size,
                                      bootstrap=bootstrap, device=device or "auto", ablation_stories=ablation_stories)
        self.out_dir = check_output_dir(out_dir, option="out_dir", outputs=TRACK_OUTPUTS)
        self.runs_dir = default_store(self.out_dir)
        self.corpus = load_corpus(stories, stories=self.settings.stories, seed=seed)
        self.tokenizer, self.device = tokenizer, device
        self.name = name or self.out_dir.resolve().name
        self.prefix, self.compare, self.figures = prefix, compare, figures
        self.runs = self.stored_runs()  # step -> Run: a resumed run goes on from these
        self.seconds: float | None = None  # how long the last step took

    def stored_runs(self) -> dict:
        """The steps already in out_dir/runs; InputError when they were scored on other stories or settings."""
        from classifier.run import load_run

        found = {}
        folders = sorted(self.runs_dir.iterdir()) if self.runs_dir.is_dir() else []
        own = self.settings.to_json()
        wanted = {name: own[name] for name in KEY_SETTINGS}
        sample = _plain({k: self.corpus.describe()[k] for k in SAMPLE_FIELDS})
        for folder in folders:
            match = RUN_FOLDER.match(folder.name)
            if match is None or not folder.is_dir():
                continue
            run = load_run(folder)
            stored = run.settings.to_json()
            settings = {name: stored[name] for name in KEY_SETTINGS}
            if settings != wanted or _plain({k: run.corpus.get(k) for k in SAMPLE_FIELDS}) != sample:
                raise InputError(f"{folder}: scored with other stories or settings ({settings}); "
                                 "watch into another folder")
            found[int(match.group(1))] = run
        return found

    def step(self, model, step: int, *, tokenizer: Any = None):
        """Score `model` (a Hugging Face model or a TransformerBridge) as it is at training step
        `step`, store the run and rewrite the track folder; returns the Run. The model, its
        training mode and device, and the random states are left as they were."""
        from classifier.load.models import eval_mode, wrap_model
        from classifier.outputs import write_files
        from classifier.pipeline import analyse
        from classifier.track.report import write_track

        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InputError(f"step={step!r}: give the training step, an integer 0 or more")
        started = time.perf_counter()
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        with preserved_rng():
            # wrap_model boots on a copy of the module tree that shares the weights: no weight is
            # copied and the model in training is not changed
            loaded = wrap_model(model, tokenizer=tokenizer, device=self.device, name=self.label(step))
            with eval_mode(loaded):
                run = analyse(loaded, self.corpus, self.settings, progress=False)
            del loaded
        write_files(self.runs_dir / f"step-{step}", run.files())
        self.runs[step] = run
        write_track(self.tracking(), self.out_dir, figures=self.figures)
        self.seconds = time.perf_counter() - started
        return run

    def label(self, step: int) -> str:
        return f"{self.name}/{self.prefix}-{step}"

    def tracking(self) -> Tracking:
        """Every step scored so far, in step order, compared as `track` compares checkpoints of one run."""
        models = [
            TrackedModel(self.label(step), ModelSpec(f"{self.prefix}-{step} (in memory)", self.name, None), "computed",
                         run=run, series=self.name, step=step, path=str(self.runs_dir / f"step-{step}"))
            for step, run in sorted(self.runs.items())
        ]
        return compared(models, self.corpus.describe(), self.settings, self.compare, self.runs_dir)


class HeadRolesCallback(TrainerCallback):
    """`transformers.Trainer` callback: score the model the Trainer holds at each save (`every`
    None) or every `every` steps, into the track folder `out_dir` (see RoleWatcher, whose keywords
    it takes; the run's name defaults to the Trainer's output_dir name, and checkpoints are named
    `checkpoint-N` as the Trainer names its folders). The next log line carries `head_roles_seconds`
    (the last scored step's time) and `head_roles_ratio` (that time over the training time since
    the step scored before it)."""

    def __init__(self, out_dir: str | Path, *, every: int | None = None, name: str | None = None, **options) -> None:
        if every is not None and every < 1:
            raise InputError(f"every={every}: give 1 or more, or None (at each save)")
        self.every, self.name = every, name
        self.watcher = RoleWatcher(out_dir, name=name, prefix="checkpoint", **options)
        self.since = time.perf_counter()
        self.pending: dict[str, float] = {}
        self.scored: set[int] = set()  # steps scored by this training session

    def on_train_begin(self, args, state, control, **kwargs):
        if self.name is None:
            self.watcher.name = Path(args.output_dir).resolve().name
        self.since = time.perf_counter()

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        due = control.should_save if self.every is None else state.global_step % self.every == 0
        if due:
            self.score(state, model, processing_class)

    def on_save(self, args, state, control, model=None, processing_class=None, **kwargs):
        # Saves decided after the step ends (at an epoch's end, say) are scored here.
        if self.every is None and state.global_step not in self.scored:
            self.score(state, model, processing_class)

    def score(self, state, model, tokenizer) -> None:
        if not state.is_world_process_zero:
            return
        training = time.perf_counter() - self.since
        self.watcher.step(model, state.global_step, tokenizer=tokenizer)
        self.scored.add(state.global_step)
        seconds = self.watcher.seconds
        self.pending = {"head_roles_seconds": round(seconds, 2), "head_roles_ratio": round(seconds / training, 4)}
        self.since = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The Trainer prints a log line after the user's callbacks have seen it.
        if self.pending and logs is not None:
            logs.update(self.pending)
            if state.log_history:
                state.log_history[-1].update(self.pending)
            self.pending = {}
