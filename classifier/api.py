"""The library's front door, for a notebook: `classify` a model (held in memory, or named as
`head-roles report --model` takes it) on stories and get a `Result`; `compare` several.

`classify` is `head-roles report` without the folder: the same input checks (one-line
`classifier.errors.InputError`), the same sampling, notices (warned as `InputNotice` and kept on
the result) and numbers (`classifier.pipeline.analyse`); nothing is written until `Result.save`,
which writes what `head-roles report` writes. A model object is wrapped without a copy of its
weights (`classifier.load.models.wrap_model`), run in eval mode and handed back as it was found
(`eval_mode`). Exported from `classifier` (lazily); no stage imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from classifier.errors import InputError
from classifier.run import REPORT_OUTPUTS, Run
from classifier.settings import ABLATION_STORIES, TRAINED_CONTEXT, ScoreSettings

DEFAULT_CORPUS = "tinystories"  # as `head-roles report --corpus`


@dataclass(frozen=True)
class Result:
    """One classified model: tidy frames (one row per head), one head's card, the role table
    (`_repr_html_`, shown by the last line of a notebook cell), the interactive report (`show`),
    the report folder (`save`) and a check of written notes (`validate`)."""

    run: Run

    @property
    def roles(self) -> pd.DataFrame:
        """One row per head: role, secondary, confidence and the evidence (roles.json)."""
        return self.run.roles

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per head: every metric, its 95% interval and lift (metrics.csv)."""
        return self.run.metrics

    @property
    def budget(self) -> pd.DataFrame:
        """One row per head: each budget part's share and its uniform share (budget.csv)."""
        return self.run.budget

    @property
    def notices(self) -> tuple[str, ...]:
        """Remarks about the input (also warned as InputNotice when it was read)."""
        return self.run.notices

    def head(self, layer: int, head: int):
        """One head's card (`classifier.render.notebook.HeadCard`): role, description, top keys,
        evidence, importance, similar heads."""
        from classifier.render.notebook import head_card

        return head_card(self.run, layer, head)

    def _repr_html_(self) -> str:
        from classifier.render.notebook import role_table_html

        return role_table_html(self.run)

    def show(self):
        """report.html of this result, displayable inline (the last line of a cell shows it)."""
        from classifier.render.notebook import report_view

        return report_view(self.run)

    def save(self, out_dir: str | Path, *, figures: bool = True, force: bool = False) -> Path:
        """Write the report folder exactly as `head-roles report --out out_dir` does (files of
        yours there are kept; one under an output's name stops it unless `force`)."""
        from classifier.outputs import check_output_dir
        from classifier.render.report import write_report

        check_output_dir(out_dir, outputs=REPORT_OUTPUTS, force=force)
        return write_report(self.run, out_dir, figures=figures, force=force)

    def validate(self, notes: str | Path) -> pd.DataFrame:
        """Researchers' notes (a file, or the notes themselves as a string) judged against this
        result, one row per described head, as `head-roles validate NOTES --run DIR` judges them."""
        from classifier.validate.check import judge, measurements_from_analysis
        from classifier.validate.notes import parse_descriptions, read_descriptions

        one_line = isinstance(notes, str) and "\n" not in notes
        if isinstance(notes, Path) or (one_line and (Path(notes).is_file() or Path(notes).suffix in (".md", ".txt"))):
            if not Path(notes).is_file():
                raise InputError(f"notes: {notes}: no such file")
            rows = read_descriptions(notes)
        elif isinstance(notes, str):
            rows = parse_descriptions(notes)
        else:
            raise InputError(f"notes: not a file path or the notes as a string ({type(notes).__name__})")
        return judge(rows, measurements_from_analysis(self.run)).frame()

    def __repr__(self) -> str:
        return f"Result({self.run!r})"


def classify(
    model: Any, stories: Any = DEFAULT_CORPUS, *, n_stories: int | None = None, max_tokens: int = TRAINED_CONTEXT,
    seed: int = 0, bootstrap: int = 1000, ablation_stories: int = ABLATION_STORIES, batch_size: int = 16,
    tokenizer: Any = None, device: str | None = None, name: str | None = None, progress: bool = True,
) -> Result:
    """Classify every attention head of `model` on `stories`; nothing is written.

    model: a booted TransformerBridge, a Hugging Face PreTrainedModel (with `tokenizer`), or
    anything `head-roles report --model` takes (name, hub id, folder, llama2.c .bin; then
    `tokenizer` is a llama2.c tokenizer file). A model object is scored in eval mode on `device`
    (None: where its weights are) and left as it was found.
    stories: a list of story strings (`n_stories` of them sampled, all when None), or a corpus
    name or file as `--corpus` takes it (`n_stories`, or the CLI's 500, sampled).
    The other options are `head-roles report`'s; `name` is how the report names a model object.
    """
    from classifier.load.corpora import check_stories, stories_corpus
    from classifier.load.models import eval_mode, load_model, parse_model, resolve_device, wrap_model
    from classifier.pipeline import analyse

    named = isinstance(model, (str, Path))
    texts = check_stories(stories)  # cheap input errors first, as the CLI says them (an iterator is read once)
    listed = texts is not None
    default_stories = ScoreSettings.stories  # the CLI's --stories
    settings = ScoreSettings(stories=n_stories if n_stories is not None else (None if listed else default_stories),
                             max_tokens=max_tokens, seed=seed, batch_size=batch_size, bootstrap=bootstrap,
                             device=device or "auto", ablation_stories=ablation_stories)
    if named:
        if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
            raise InputError("tokenizer: with a model named by a string, a llama2.c tokenizer file (tok512.model)")
        ref = parse_model(str(model), tokenizer=None if tokenizer is None else str(tokenizer))
        resolve_device(settings.device)
    sample = stories_corpus(texts, stories, n_stories=n_stories, seed=seed, default_stories=default_stories)
    if named:
        loaded = load_model(ref, device=settings.device)
        loaded = replace(loaded, name=name) if name is not None else loaded
    else:
        loaded = wrap_model(model, tokenizer=tokenizer, device=device, name=name)
        settings = replace(settings, device=loaded.device)
    with eval_mode(loaded):
        return Result(analyse(loaded, sample, settings, progress=progress))


def compare(
    models_or_results: Sequence[Any], stories: Any = DEFAULT_CORPUS, *, labels: Sequence[str] | None = None,
    steps: Sequence[int] | None = None, compare: str = "consecutive", **options,
) -> pd.DataFrame:
    """The track table (`head-roles track`'s track.csv: one row per model, step and head) of
    several models scored on the same stories. Each item is a finished `Result` or a model as
    `classify` takes it (scored on `stories` with `options`, classify's keywords). `steps`: the
    items are checkpoints of one training run at these steps, compared head by head; otherwise
    heads are matched by metric profile. `compare`: each against the one before, or "reference"
    (the first)."""
    from classifier.track.report import track_table
    from classifier.track.store import ModelSpec
    from classifier.track.tracking import COMPARE_MODES, TrackedModel, Tracking, compare_models, comparison_pairs

    items = list(models_or_results)
    if not items:
        raise InputError("models_or_results: give at least one model or Result")
    if compare not in COMPARE_MODES:
        raise InputError(f"compare {compare!r}: valid: {', '.join(COMPARE_MODES)}")
    for given, what in ((labels, "labels"), (steps, "steps")):
        if given is not None and len(given) != len(items):
            raise InputError(f"{what}: {len(given)} given for {len(items)} models")
    results = [item if isinstance(item, Result) else classify(item, stories, **options) for item in items]
    _check_same_stories(results)
    names = list(labels) if labels is not None else _labels([r.run.model.name for r in results])
    series = "training" if steps is not None else None
    tracked = [
        TrackedModel(label, ModelSpec(label, label, None), "computed", run=r.run, series=series or label,
                     step=None if steps is None else int(steps[k]))
        for k, (label, r) in enumerate(zip(names, results))
    ]
    comparisons = [compare_models(tracked[i], tracked[j]) for i, j in comparison_pairs(tracked, compare)]
    first = results[0].run
    return track_table(Tracking(tracked, first.corpus, first.settings, compare, Path(), comparisons))


def _check_same_stories(results: list[Result]) -> None:
    """Compared runs must have read the same stories with the same settings."""
    def key(run: Run):
        corpus = run.corpus
        settings = run.settings
        return (corpus.get("source"), corpus.get("stories"), tuple(corpus.get("sample_indices") or ()),
                settings.max_tokens, settings.seed, settings.bootstrap)

    for k, result in enumerate(results[1:], 1):
        if key(result.run) != key(results[0].run):
            raise InputError(f"models_or_results[{k}]: scored on other stories or settings than the first; "
                             "compare results of the same stories")


def _labels(names: list[str]) -> list[str]:
    """Model names as labels; a name given twice is numbered (`name #2`)."""
    return [name if names.count(name) == 1 else f"{name} #{names[:k + 1].count(name)}" for k, name in enumerate(names)]
