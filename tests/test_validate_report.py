"""validate agrees with the report it checks (issue 28 item 5): notes written from each committed
report's own figures (role, description, Explained, Lift, hold, ablation) validate as "supported"
with every checked number agreeing; out-of-range heads are a Note, the rest still checked."""

import json
import math
from pathlib import Path

import pytest

from classifier.formatting import percent, times
from classifier.validate.check import judge, load_measurements, validate_notes
from classifier.validate.notes import ValidateError, parse_descriptions

REPORTS = sorted(p.parent for p in (Path(__file__).parents[1] / "reports").glob("*/roles.json"))


def notes_from_report(run: Path) -> str:
    """A researcher copying the report: its role and description, then the Explained and Lift
    columns said in words, the hold and the ablation."""
    metrics = {(int(r["layer"]), int(r["head"])): r for r in _metrics(run)}
    described = _descriptions(run)
    lines = ["| Head | Description |", "| --- | --- |"]
    for head in json.loads((run / "roles.json").read_text()):
        key = (head["layer"], head["head"])
        description = described.get(f"{key[0]}.{key[1]}") or described[str(key[1])]  # one layer: "3"
        text = f"{head['role']}: {description}"
        if head["role"] != "unclear" and head.get("explained") is not None:
            text += f" It explains {percent(head['explained'])} of its attention ({times(head['lift'])} uniform)."
        hold = float(metrics[key]["hold"])
        if math.isfinite(hold):
            text += f" Hold around {percent(hold)}."
        ablation = float(metrics[key].get("ablation", "nan"))  # exactly 0.0 where the head changes nothing (demo)
        if math.isfinite(ablation):
            text += f" Ablating it costs about {ablation:.3f} nats."
        lines.append(f"| {head['layer']}.{head['head']} | {text} |")
    return "\n".join(lines) + "\n"


def _descriptions(run: Path) -> dict[str, str]:
    """The Description column of report.md's role table, by head label."""
    lines = (run / "report.md").read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("| Head | Role | Description"))
    header = [c.strip() for c in lines[start].strip("|").split(" | ")]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[cells[0]] = cells[header.index("Description")]
    return rows


def _metrics(run: Path):
    import pandas as pd

    return pd.read_csv(run / "metrics.csv").to_dict("records")


@pytest.mark.parametrize("run", REPORTS, ids=lambda p: p.name)
def test_notes_written_from_a_report_validate_as_agreeing_with_it(run, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text(notes_from_report(run))
    result = validate_notes(notes, run_dir=run)
    verdicts = {(h.description.layer, h.description.head): h.corpus.verdict.value for h in result.heads}
    assert set(verdicts.values()) == {"supported"}, {k: v for k, v in verdicts.items() if v != "supported"}
    checks = [(h.description.label, c) for h in result.heads for c in h.corpus.numbers if c.agrees is not None]
    wrong = [(label, c.number.text, c.metric, c.measured) for label, c in checks if not c.agrees]
    assert not wrong
    checked = {c.metric.split()[-1] if " " in c.metric else c.metric for _, c in checks}
    assert {"explained", "lift", "hold"} <= checked
    if "ablation" in _metrics(run)[0]:
        assert "ablation" in checked


def test_a_head_out_of_range_is_a_note_and_the_rest_is_checked(tmp_path):
    run = next(p for p in REPORTS if p.name == "stories260K")
    text = "| Head | Description |\n| --- | --- |\n| 0.1 | Current token. |\n| 9.9 | Previous token. |\n"
    result = judge(parse_descriptions(text, source="notes.md"), load_measurements(run))
    assert [h.description.label for h in result.heads] == ["0.1"]
    assert len(result.skipped) == 1 and "9.9" in result.skipped[0] and "out of range" in result.skipped[0]
    with pytest.raises(ValidateError, match="out of range"):
        judge(parse_descriptions("| Head | Description |\n| --- | --- |\n| 9.9 | Previous token. |\n",
                                 source="notes.md"), load_measurements(run))


def test_the_measured_side_is_called_confidence(tmp_path):
    from classifier.validate.report import render_validation

    run = next(p for p in REPORTS if p.name == "stories260K")
    text = "| Head | Description |\n| --- | --- |\n| 0.1 | Current token. |\n"
    rendered = render_validation(judge(parse_descriptions(text, source="notes.md"), load_measurements(run)))
    assert "confidence 100%" in rendered and "stable" not in rendered.split("## Heads")[1]
