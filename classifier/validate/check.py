"""Check hand-written head descriptions against measured roles: the library side of `validate`.

The steps live in their own modules: `classifier.validate.notes` reads what a notes file says of heads
(tables, summary tables, list items, paragraphs),
`classifier.validate.claims` turns each description into a primary claim, secondary claims and scoped
conditions, `classifier.validate.numbers` ties each written number to the metric its words name,
`classifier.validate.verdicts` judges them against a run, `classifier.validate.results` holds the
outcome as plain data and `classifier.validate.report` renders Markdown and JSON. This module joins
them: it loads the measurements (a run directory, or a model run through the pipeline by
`measure_model`, which imports torch only when called), returns a `Validation` and, in
`validate_notes` (everything the `validate` command does), checks the arguments first and writes
the outputs.

Every input error is a `ValidateError` (an `InputError`) whose message is one line, "FILE:LINE: ...".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from classifier.validate.claims import (  # noqa: F401 (re-exported)
    Claim, ClaimMatcher, HeadClaims, extract_claims, referenced_head,
)
from classifier.errors import InputError
from classifier.validate.notes import (  # noqa: F401 (re-exported)
    HeadDescription, ValidateError, parse_descriptions, parse_head_id, read_descriptions, resolve_heads,
)
from classifier.validate.numbers import read_numbers
from classifier.validate.results import HeadResult, Listed, Measurements, Validation  # noqa: F401 (re-exported)
from classifier.validate.verdicts import (  # noqa: F401
    VERDICTS, Judgement, Measured, Verdict, agreement, judge_head, role_verdict,
)

if TYPE_CHECKING:  # loading models is only needed when `measure_model` is called
    from classifier.load.models import ModelRef


def _indexed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index(["layer", "head"], drop=False)


def _measured(metrics: pd.DataFrame, roles: pd.DataFrame, budget: pd.DataFrame | None = None) -> Measured:
    roles = roles.assign(secondary=[tuple(s) for s in roles["secondary"]])
    has_budget = budget is not None and not budget.empty and {"layer", "head"} <= set(budget.columns)
    return Measured(_indexed(metrics), _indexed(roles), _indexed(budget) if has_budget else None)


def _check_covered(side: Measured, where: Path, names: tuple[str, str], n_layers: int, n_heads: int) -> Measured:
    from classifier.run import check_every_head

    for name, frame in zip(names, (side.metrics, side.roles)):
        check_every_head(where / name, frame.index, n_layers, n_heads)
    return side


def load_measurements(path: str | Path) -> Measurements:
    """A run directory written by `head-roles report` (classifier.run.load_run); the prompt
    files are optional."""
    from classifier.run import load_run

    run, path = load_run(path), Path(path)
    n_layers, n_heads = run.model.n_layers, run.model.n_heads
    corpus = _measured(run.metrics, run.roles, run.budget)  # load_run checked these cover every head
    prompt = None
    if not run.prompt_metrics.empty and not run.prompt_roles.empty:
        prompt = _check_covered(_measured(run.prompt_metrics, run.prompt_roles), path,
                                ("prompt-metrics.csv", "prompt-roles.json"), n_layers, n_heads)
    sample = f" ({run.corpus.get('name')}, {run.corpus.get('stories')} stories)" if run.corpus else ""
    return Measurements(
        model=run.model.name, n_layers=n_layers, n_heads=n_heads, corpus=corpus, prompt=prompt,
        prompt_text=(run.prompt.text or None) if prompt is not None else None,
        source=f"run directory `{path}`{sample}",
    )


def measurements_from_analysis(analysis) -> Measurements:
    """Measurements of a `classifier.run.Run`."""
    has_prompt = not analysis.prompt_metrics.empty and not analysis.prompt_roles.empty
    return Measurements(
        model=analysis.model.name, n_layers=analysis.model.n_layers, n_heads=analysis.model.n_heads,
        corpus=_measured(analysis.metrics, analysis.roles, analysis.budget),
        prompt=_measured(analysis.prompt_metrics, analysis.prompt_roles) if has_prompt else None,
        prompt_text=analysis.prompt.text if has_prompt else None,
        source=f"{analysis.corpus.get('name')} ({analysis.corpus.get('stories')} stories, {analysis.n_tokens:,} tokens)",
    )


def measure_model(model: ModelRef, corpus: str, settings, *, prompt: str) -> Measurements:
    """Run `model` over `corpus` and `prompt` (as `report` does) and return the measurements."""
    from classifier.load.corpora import load_corpus
    from classifier.load.models import load_model
    from classifier.pipeline import analyse

    loaded = load_model(model, device=settings.device)
    sample = load_corpus(corpus, stories=settings.stories, seed=settings.seed)
    # Whether heads matter is no claim validate checks: no ablation or similarity passes.
    return measurements_from_analysis(analyse(loaded, sample, settings, prompt=prompt, importance=False))


def judge(descriptions: list[HeadDescription], measurements: Measurements, *,
          matcher: ClaimMatcher | None = None) -> Validation:
    """Judge every description on the corpus and on the prompt."""
    skipped: list[str] = []
    resolved = resolve_heads(descriptions, measurements.n_layers, measurements.n_heads, skipped)
    by_head = {(d.layer, d.head): d.text for d in resolved}

    def same_as(label: str) -> HeadClaims | None:  # "Same as 2.3": that head's claims, never a loop
        found = parse_head_id(label)
        text = by_head.get((found[0] if found[0] is not None else 0, found[1])) if found else None
        return extract_claims(text, matcher) if text is not None and referenced_head(text) is None else None

    heads = []
    prompt, roles = measurements.prompt, measurements.corpus.roles
    for d in resolved:
        claims = extract_claims(d.text, matcher, same_as=same_as)
        numbers = read_numbers(claims.text) + read_numbers(d.measures)  # read once, checked on each side
        measured = roles.loc[(d.layer, d.head)]
        listed = []
        for listing in d.listings:
            claimed = extract_claims(listing.text, matcher).claimed_primary
            listed.append(Listed(listing.line, listing.text, claimed, role_verdict(claimed, measured)))
        heads.append(HeadResult(
            d, claims, judge_head(claims, d.layer, d.head, measurements.corpus, numbers=numbers),
            judge_head(claims, d.layer, d.head, prompt, numbers=numbers) if prompt is not None else None,
            tuple(listed),
        ))
    summary = {"corpus": agreement([h.corpus for h in heads])}
    if measurements.prompt is not None:
        summary["prompt"] = agreement([h.prompt for h in heads])
    source = descriptions[0].source if descriptions else "<text>"
    return Validation(source=source, measurements=measurements, heads=tuple(heads), summary=summary,
                      skipped=tuple(skipped))


def _check_outputs(descriptions: str | Path, out: str | Path | None, json_file: str | Path | None) -> None:
    """Every output file checked before any model is loaded: writable, not the notes file, not each other."""
    from classifier.outputs import check_output_file

    for path, option in ((out, "--out"), (json_file, "--json")):
        if path:
            check_output_file(path, option=option)
            if Path(path).resolve() == Path(descriptions).resolve():
                raise InputError(f"{option} {path}: is the notes file being validated; write elsewhere")
    if out and json_file and Path(out).resolve() == Path(json_file).resolve():
        raise InputError(f"--json {json_file}: the same file as --out")


def validate_notes(descriptions: str | Path, *, run_dir: str | Path | None = None, model=None, corpus: str = "tinystories",
                   settings=None, prompt: str | None = None, revision: str | None = None, tokenizer: str | None = None,
                   out: str | Path | None = None, json_file: str | Path | None = None) -> Validation:
    """Judge a notes file against a finished run directory, or against `model` (a name, parsed with
    `revision` and `tokenizer`, or a `classifier.load.models.ModelRef`) measured over `corpus` with
    `settings` and on `prompt`; write the Markdown to `out` and the JSON to `json_file` when given.
    Every argument is checked before the notes are read or a model is loaded."""
    from classifier.load.corpora import BANANA_PROMPT

    if (run_dir is None) == (model is None):
        raise InputError("pass exactly one of --run DIR or --model M")
    _check_outputs(descriptions, out, json_file)
    if isinstance(model, str):  # a bad model argument is said before the notes are read
        from classifier.load.models import parse_model

        model = parse_model(model, revision=revision, tokenizer=tokenizer)
    if model is not None and settings is None:
        from classifier.settings import ScoreSettings

        settings = ScoreSettings(ablation_stories=0)
    rows = read_descriptions(descriptions)
    if model is not None:  # a bad device is said before the corpus is read
        from classifier.load.models import resolve_device

        resolve_device(settings.device)
    if run_dir is not None:
        measured = load_measurements(run_dir)
        if prompt is not None and prompt != measured.prompt_text:
            raise InputError(f"--prompt: {run_dir} has no measurements on this prompt; pass --model to measure it")
    else:
        measured = measure_model(model, corpus, settings, prompt=prompt or BANANA_PROMPT)
    validation = judge(rows, measured)
    if out or json_file:
        from classifier.outputs import write_file
        from classifier.validate.report import render_json, render_validation

        if json_file:
            write_file(json_file, render_json(validation))
        if out:
            write_file(out, render_validation(validation))
    return validation
