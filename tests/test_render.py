"""A run directory renders again, without the model, into the same files byte for byte."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from classifier.cli import main

QUICK = ["--corpus", "tinystories-sample", "--stories", "12", "--max-tokens", "96", "--bootstrap", "20", "--device", "cpu"]
RENDERED = ("report.md", "report.html", "run.json", "metrics.csv", "budget.csv", "roles.json", "pairs.csv")


@pytest.mark.slow
def test_report_then_render_gives_the_same_files_byte_for_byte(tmp_path):
    scored, rendered = tmp_path / "scored", tmp_path / "rendered"
    result = CliRunner().invoke(main, ["report", "--model", "stories260K", *QUICK, "--out", str(scored), "--no-figures"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["render", str(scored), "--out", str(rendered), "--no-figures"])
    assert result.exit_code == 0, result.output
    for name in RENDERED:
        assert (rendered / name).read_bytes() == (scored / name).read_bytes(), name
    # and rendering in place changes nothing either
    before = {name: (scored / name).read_bytes() for name in RENDERED}
    assert CliRunner().invoke(main, ["render", str(scored), "--no-figures"]).exit_code == 0
    assert {name: (scored / name).read_bytes() for name in RENDERED} == before
