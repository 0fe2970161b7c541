"""report.md and report.html say the same thing about every head: the same rounded figures, a `?`
on every role in doubt wherever a head's role is named, and no measured-looking confidence from
fewer stories than the bootstrap needs. Checked on every committed report folder (they must be
regenerated after a rendering change) and on a fresh rendering of each committed run."""

from __future__ import annotations

import dataclasses
import html as html_lib
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier.formatting import doubtful, role_counts, written_role
from classifier.render.report import render_report, write_report
from classifier.run import load_run

REPORTS = Path(__file__).resolve().parents[1] / "reports"
COMMITTED = sorted(p.parent.name for p in REPORTS.glob("*/report.md") if (p.parent / "run.json").exists())
MIN_STORIES = 10  # the bootstrap's minimum, as thresholds.py states it (an independent copy)


def md_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of a page as rows of {column: cell}."""
    tables, lines = [], text.split("\n")
    k = 0
    while k < len(lines):
        if lines[k].startswith("| ") and k + 1 < len(lines) and lines[k + 1].startswith("| ---"):
            header = [c.strip() for c in lines[k].strip("|").split(" | ")]
            rows, k = [], k + 2
            while k < len(lines) and lines[k].startswith("|"):
                cells = [c.strip() for c in re.split(r"(?<!\\) \| ", lines[k][2:-2])]
                rows.append(dict(zip(header, cells)))
                k += 1
            tables.append(rows)
        else:
            k += 1
    return tables


def page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', page, re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def check_pages(folder: Path) -> None:
    md = (folder / "report.md").read_text()
    page = (folder / "report.html").read_text()
    roles = json.loads((folder / "roles.json").read_text())
    stories = json.loads((folder / "run.json").read_text())["corpus"]["stories"]
    data = page_data(page)
    n_layers = data["model"]["n_layers"]
    label = {(r["layer"], r["head"]): (str(r["head"]) if n_layers == 1 else f"{r['layer']}.{r['head']}") for r in roles}
    few = stories < MIN_STORIES

    def in_doubt(r) -> bool:  # worked out here, not by the renderer: NaN or < 0.5, unclear never
        c = r.get("confidence")
        return r["role"] != "unclear" and (few or c is None or not math.isfinite(c) or c < 0.5)

    # 1. The same rounded figures for every head in report.md's role table and report.html's.
    role_table = next(t for t in md_tables(md) if t and {"Head", "Role", "Confidence"} <= set(t[0]))
    md_rows = {row["Head"]: row for row in role_table}
    titles = [title for _, title, _ in data["columns"]]
    shared = [t for t in titles if t in role_table[0] and t not in ("Head", "Role")]
    assert {"Explained", "Stability", "Confidence", "Top keys"} <= set(shared), shared
    for head in data["heads"]:
        md_row = md_rows[head["label"]]
        cells = dict(zip(titles, head["cells"]))
        for title in shared:
            assert cells[title] == md_row[title], f"{folder.name} head {head['label']} {title}"
    # 2. `?` on every doubtful role wherever a head's role is named.
    doubt = {label[(r["layer"], r["head"])]: r["role"] for r in roles if in_doubt(r)}
    for table in md_tables(md):
        for row in table:
            if row.get("Head") in doubt and "Role" in row:
                assert row["Role"].startswith(doubt[row["Head"]] + "?"), f"{folder.name}: {row['Head']} {row['Role']}"
    for head in data["heads"]:
        if head["label"] in doubt:
            assert head["role_label"] == doubt[head["label"]] + "?"
    for k, written in re.findall(r'data-head="(\d+)">[^<]*</a></td><td class="text">([^<]*)</td>', page):
        head = data["heads"][int(k)]
        if head["label"] in doubt:
            assert html_lib.unescape(written) == doubt[head["label"]] + "?", f"{folder.name}: html ranking {head['label']}"
    # 3. No measured-looking stability or confidence from too few stories.
    if few:
        for row in role_table:
            assert not row["Confidence"].endswith("%") and not row["Stability"].endswith("%")
        for head in data["heads"]:
            cells = dict(zip(titles, head["cells"]))
            assert not cells["Confidence"].endswith("%") and not cells["Stability"].endswith("%")
            assert not any(value.endswith("%") for value, what in head["facts"] if "bootstrap" in what)


@pytest.mark.parametrize("name", COMMITTED)
def test_a_committed_report_says_the_same_about_every_head_on_both_pages(name):
    check_pages(REPORTS / name)


@pytest.mark.parametrize("name", COMMITTED)
def test_a_fresh_rendering_says_the_same_about_every_head_on_both_pages(name, tmp_path):
    write_report(load_run(REPORTS / name), tmp_path / name, figures=False)
    check_pages(tmp_path / name)


def test_a_one_story_run_shows_no_confidence_no_interval_and_every_named_role_in_doubt(tmp_path):
    run = load_run(REPORTS / "demo")
    one = dataclasses.replace(run, corpus={**run.corpus, "stories": 1})
    write_report(one, tmp_path / "one", figures=False)
    check_pages(tmp_path / "one")
    md = (tmp_path / "one" / "report.md").read_text()
    table = next(t for t in md_tables(md) if t and "Confidence" in t[0])
    assert {row["Confidence"] for row in table} <= {"n/a", ""} and {row["Stability"] for row in table} == {"n/a"}
    named = [row for row in table if not row["Role"].startswith("unclear")]
    assert named and all(row["Role"].split(" (+")[0].endswith("?") for row in named)
    if "Ablation (nats)" in table[0]:
        assert not any(" to " in row["Ablation (nats)"] for row in table)  # no interval from one story


def test_the_matters_line_splits_the_ranking_at_half_a_percent_of_the_clean_loss():
    run = load_run(REPORTS / "stories260K")
    metrics = run.metrics.assign(clean_loss=1.2729)
    md = render_report(dataclasses.replace(run, metrics=metrics))
    # By hand from metrics.csv: 0.5% of 1.2729 = 0.00636 nats; 15 heads have ablation_lo above it.
    low = pd.read_csv(REPORTS / "stories260K" / "metrics.csv")["ablation_lo"]
    assert int((low > 0.0063645).sum()) == 15
    assert "Clean loss (no head ablated) on the first 20 stories: 1.273 nats per predicted token" in md
    assert "above 0.5% of the clean loss (0.0064 nats): 15 of 40 heads do." in md
    assert "### Heads that matter (15)" in md
    above = next(t for t in md_tables(md) if t and "Share of loss" in t[0])
    assert len(above) == 15
    # 4.0: 0.044032 / 1.2729 = 3.46% of the clean loss
    assert above[0]["Head"] == "4.0" and above[0]["Share of loss"] == "3.5%"
    assert "Spearman correlation" in md
    # the overview grid shades heads by ablation, relative to the largest (4.0: 0.044); a negative one is blank
    from classifier.render.html import page_data as html_data

    shades = {h["label"]: h["ablation_shade"] for h in html_data(dataclasses.replace(run, metrics=metrics))["heads"]}
    assert shades["4.0"] == 1.0 and shades["1.0"] == 0.0 and shades["4.3"] == pytest.approx(0.040 / 0.044, abs=0.01)
    role_table = next(t for t in md_tables(md) if t and "Confidence" in t[0])
    assert "Attribution" not in role_table[0]  # exact values exist: attribution is no column of the main table


def test_a_role_is_written_by_one_rule_and_counted_with_its_doubt():
    assert written_role("delimiter", 0.07) == "delimiter?" and written_role("delimiter", 0.5) == "delimiter"
    assert written_role("delimiter", np.nan) == "delimiter?"  # not measured is doubt too
    assert written_role("unclear", np.nan) == "unclear" and not doubtful("unclear", 0.1)
    assert written_role("previous-token", 0.2, code=True) == "PREV*"
    assert written_role("previous-token", 0.2, star=True) == "previous-token*"
    frame = pd.DataFrame({"role": ["delimiter", "delimiter", "broad", "unclear", "local"],
                          "confidence": [0.9, 0.2, 0.3, np.nan, 0.8]})
    assert role_counts(frame) == ("5 heads: 2 with a firm role, 1 in doubt (?), 1 broad, 1 unclear; "
                                  "delimiter 2 (1?), broad 1 (1?), local 1, unclear 1")


def test_every_term_a_page_defines_is_in_docs_metrics_and_no_page_points_outside_the_project(tmp_path):
    from classifier.render.definitions import DEFINITIONS

    root = Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "metrics.md").read_text()
    for term, _ in DEFINITIONS:
        word = {"n/a": "`n/a`", "Ablation (nats)": "**Ablation**"}.get(term, f"**{term}**")
        assert word in doc or f"`{term}`" in doc, term
    write_report(load_run(REPORTS / "demo"), tmp_path / "demo", figures=False)
    for text in ((root / "README.md").read_text(), *(p.read_text() for p in (tmp_path / "demo").glob("report.*"))):
        assert "shared/design/head-roles.md" not in text and "design notes" not in text  # definitions stay in the project
        assert "docs/metrics.md" in text
