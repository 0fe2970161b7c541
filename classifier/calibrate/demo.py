"""`head-roles demo`: an offline report of a calibration model, with its planted roles beside
the measured ones."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

from classifier.outputs import check_output_dir
from classifier.run import REPORT_OUTPUTS
from classifier.settings import ScoreSettings


@dataclass(frozen=True)
class Demo:
    """Where the demo report went, and how many planted roles came out as planted."""

    out_dir: Path
    recovered: int
    planted: int


def write_demo(
    out_dir: str | Path, *, layout: str = "one-layer", seed: int = 0, stories: int = 0, force: bool = False,
    command: str | None = None,
) -> Demo:
    """Build a calibration model (layout, seed), score it on `stories` bundled stories (0: all)
    and write its report, with the planted-versus-measured table, into `out_dir`."""
    out_dir = check_output_dir(out_dir, outputs=REPORT_OUTPUTS, force=force)
    settings = ScoreSettings(stories=stories, device="cpu")
    from classifier.calibrate.planted import build_calibration_model
    from classifier.calibrate.selfcheck import compare_with_truth, demo_section
    from classifier.load.corpora import load_corpus
    from classifier.load.models import load_model
    from classifier.pipeline import analyse
    from classifier.render.report import write_report

    sample = load_corpus("bundled", stories=settings.stories, seed=settings.seed)  # notices before scoring
    with tempfile.TemporaryDirectory(prefix="head-roles-demo-") as scratch:
        model_dir = Path(scratch) / f"calibration-{layout}-seed{seed}"
        truth = build_calibration_model(model_dir, layout=layout, seed=seed)
        run = analyse(load_model(str(model_dir), device=settings.device), sample, settings, command=command)
        # The checkpoint lives in a scratch directory: name it by how it was built instead.
        name = f"calibration model ({layout}, seed {seed})"
        run = dataclasses.replace(run, model=dataclasses.replace(run.model, name=name, resolved=name))
        write_report(dataclasses.replace(run, appendix=demo_section(run, truth)), out_dir, force=force)
    heads = compare_with_truth(run, truth)
    return Demo(Path(out_dir), int((heads["planted"] == heads["measured"]).sum()), len(truth.heads))
