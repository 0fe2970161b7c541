"""The `report` command's library side: check every argument, choose the default model, then
load -> measure -> label (`classifier.pipeline`) -> render (`classifier.render.report`).

Every bad argument (output folder, corpus, model, device) is an InputError before any notice is
said, any corpus read or any model loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from classifier.errors import notify
from classifier.load.models import DEFAULT_MODEL, choose_default_model, parse_model, resolve_device
from classifier.outputs import check_output_dir
from classifier.run import REPORT_OUTPUTS, Run
from classifier.settings import ScoreSettings


@dataclass(frozen=True)
class Report:
    """A written report: its run and where it went."""

    run: Run
    out_dir: Path


def default_out_dir(model: str) -> Path:
    """reports/<model's last name part>; `.` or `/` as a model still gives a named folder."""
    name = Path(model.rstrip("/")).name or Path(model).resolve().name or "model"
    return Path("reports") / name.removesuffix(".bin")


def report(
    model: str | None, corpus: str, settings: ScoreSettings, *, revision: str | None = None,
    tokenizer: str | None = None, out_dir: str | Path | None = None, figures: bool = True, force: bool = False,
    command: str | None = None,
) -> Report:
    """Score `model` (None: DEFAULT_MODEL, or the embedded model where the hub cannot be reached)
    on `corpus` and write its report into `out_dir` (default: reports/<model name>)."""
    from classifier.load.corpora import check_corpus_spec

    def checked(folder):
        return check_output_dir(folder, outputs=REPORT_OUTPUTS, force=force)

    out_dir = checked(out_dir) if out_dir else None
    check_corpus_spec(corpus)
    notices = ()
    if model is None:  # the hub default, or the embedded model where the hub cannot be reached
        choice = choose_default_model(DEFAULT_MODEL, corpus)
        model, corpus, notices = choice.model, choice.corpus, choice.notices
        out_dir = out_dir or checked(choice.out_dir)
    ref = parse_model(model, revision=revision, tokenizer=tokenizer)
    resolve_device(settings.device)
    out_dir = out_dir or checked(default_out_dir(model))
    for notice in notices:
        notify(notice)
    from classifier.pipeline import analyse_model
    from classifier.render.report import write_report

    run = analyse_model(ref, corpus, settings, command=command, notices=notices)
    write_report(run, out_dir, figures=figures, force=force)
    return Report(run, Path(out_dir))
