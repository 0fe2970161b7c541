"""Every committed report folder is what the code renders from its own run data, byte for byte.

A change to the rendering (a description, a column, the page) without regenerating the committed
reports fails here; so does a committed report.md or report.html edited by hand. Rendering needs
no model: this reads run.json, roles.json and the CSVs beside them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from classifier.cli import main

REPORTS = Path(__file__).resolve().parents[1] / "reports"
COMMITTED = sorted(path.parent.name for path in REPORTS.glob("*/run.json"))


def test_the_committed_report_folders_are_found():
    assert {"demo", "stories260K", "stories260K-embedded"} <= set(COMMITTED)


@pytest.mark.parametrize("name", COMMITTED)
def test_a_committed_report_renders_again_byte_for_byte(name, tmp_path):
    rendered = tmp_path / name
    # With figures (report.md links them); the PNG bytes themselves depend on matplotlib's version
    # and fonts, so only the pages are compared.
    result = CliRunner().invoke(main, ["render", str(REPORTS / name), "--out", str(rendered)])
    assert result.exit_code == 0, result.output
    for page in ("report.md", "report.html"):
        assert (rendered / page).read_bytes() == (REPORTS / name / page).read_bytes(), f"reports/{name}/{page}"
