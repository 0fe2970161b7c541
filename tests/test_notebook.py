"""docs/notebook.ipynb runs top to bottom (offline, in a fresh kernel), so it cannot go stale."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"

pytestmark = pytest.mark.slow


def test_the_notebook_runs_top_to_bottom(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed bare
    # The kernel inherits these: nothing is looked up on the hub, and this checkout's package is imported.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "docs")}}).execute()
    outputs = {k: cell.outputs for k, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    html = {k: "".join(o.get("data", {}).get("text/html", "") for o in out) for k, out in outputs.items()}
    table, card, saved, view = html[3], html[8], outputs[12], html[13]
    assert table.count("<tr>") == 1 + 32 and 'class="role"' in table  # the role table of 32 heads
    assert card.startswith('<div class="head-card"><h4>Head ') and "previous-token" in card
    assert "<th>token</th>" in card and "<th>lift</th>" in card  # its top keys, as numbers
    assert "report.html" in saved[0]["data"]["text/plain"] and "metrics.csv" in saved[0]["data"]["text/plain"]
    assert view.startswith('<iframe class="head-roles-report" srcdoc=')
