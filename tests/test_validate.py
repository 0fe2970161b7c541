"""`validate`: notes -> claims -> typed verdicts with evidence, Markdown and JSON, the command.

Verdict tests use a fake run directory whose roles are set by hand (no model); one test reads
the tracked stories260K run (reports/stories260K) with real-style notes.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.load.corpora import BANANA_PROMPT
from classifier.registry import METRICS, OFFSETS, PARTS, ROLE_REGISTRY
from classifier.validate.check import Verdict, agreement, judge, load_measurements, read_descriptions
from classifier.validate.report import render_json, render_validation, validation_records
from classifier.validate.verdicts import Evidence, Judgement

ROOT = Path(__file__).resolve().parents[1]
NOTES = Path(__file__).parent / "notes"
S, SEC, C, N = Verdict.SUPPORTED, Verdict.SECONDARY, Verdict.CONTRADICTED, Verdict.NOT_CHECKABLE


def head_metrics(layer, head, strong=(), lean=()):
    """Metrics of one head: uniform-looking (lift 1) except `strong` (0.8, 20x) and `lean` (0.2, 4x)."""
    row = {"layer": layer, "head": head}
    for m in METRICS:
        value, lift = (0.8, 20.0) if m in strong else (0.2, 4.0) if m in lean else (0.04, 1.0)
        if m == "entropy":
            value, lift = (0.95, 0.95) if m in strong else (0.3, 0.3)
        row.update({m: value, f"{m}_lo": value - 0.02, f"{m}_hi": value + 0.02, f"{m}_lift": lift})
    row.update({f"argmax_offset_{o}": 1 / (len(OFFSETS) + 1) for o in OFFSETS})
    return row


def write_side(directory, prefix, heads, n_heads):
    """heads: {head: (role, secondary roles, leaning metrics)}; other heads are unclear."""
    metrics, roles = [], []
    for h in range(n_heads):
        role, secondary, lean = heads.get(h, ("unclear", (), ()))
        strong = [ROLE_REGISTRY[r].headline for r in (role, *secondary) if r != "unclear"]
        metrics.append(head_metrics(0, h, strong, lean))
        roles.append({"layer": 0, "head": h, "role": role, "secondary": list(secondary), "confidence": 0.97})
    pd.DataFrame(metrics).to_csv(directory / f"{prefix}metrics.csv", index=False)
    (directory / f"{prefix}roles.json").write_text(json.dumps(roles))


CORPUS_TRUTH = {
    0: ("previous-token", (), ()),
    1: ("current-token", (), ()),
    2: ("start-of-text", ("delimiter",), ()),
    4: ("current-token", ("previous-token",), ()),
    5: ("previous-token", (), ()),
    6: ("clause-start", (), ()),
    7: ("previous-token", ("proper-noun",), ()),
    8: ("broad", (), ()),
    9: ("proper-noun", (), ("start_of_text",)),
    10: ("delimiter", (), ()),
    11: ("word-start", (), ()),
}
PROMPT_TRUTH = {**CORPUS_TRUTH, 10: ("previous-token", (), ())}
TABLE = """# My notes on the model

| Head | Description |
| --- | --- |
| 0 | Attends to the previous token (0.8). |
| 1 | prev tok |
| 2 | The start-of-text token, commas and full stops. |
| 3 | ~~The subject of the sentence? |
| 4 | Attends to the current token, sometimes also the previous token. |
| 5 | Attends to the current token, sometimes also to the previous token. |
| 6 | The start of the clause? Punctuation attends to itself. |
| 7 | Earlier proper nouns. |
| 8 | Spreads attention over all the tokens. |
| 9 | Attends to the start-of-text token. |
| 10 | ~The previous token (unigram / bigram). |
| 11 | Inside a word, attends to the word's first piece: 30% of a continuation piece's attention. |
"""
EXPECTED = {  # head: (corpus verdict, prompt verdict)
    0: (S, S), 1: (C, C),  # "prev tok" on a current-token head
    2: (S, S), 3: (N, N), 4: (S, S),
    5: (C, C),  # primary claim false (its secondary claim is the primary role)
    6: (S, S),  # the scoped "punctuation attends to itself" is no head-level claim
    7: (SEC, SEC),  # proper-noun passes its own test as a secondary role
    8: (S, S),
    9: (C, C),  # it leans to BOS (0.2, 4x uniform), but start-of-text is none of its roles

    10: (C, S),  # true on the prompt only
    11: (S, S),
}


@pytest.fixture
def run_dir(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    write_side(directory, "", CORPUS_TRUTH, 12)
    write_side(directory, "prompt-", PROMPT_TRUTH, 12)
    run = {"model": {"name": "fake-1L", "n_layers": 1, "n_heads": 12}, "prompt": BANANA_PROMPT,
           "corpus": {"name": "bundled", "stories": 40}}
    (directory / "run.json").write_text(json.dumps(run))
    return directory


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(TABLE)
    return path


def test_primary_claims_get_discriminating_verdicts(run_dir, table):
    result = judge(read_descriptions(table), load_measurements(run_dir))
    got = {h.description.head: (h.corpus.verdict, h.prompt.verdict) for h in result.heads}
    assert got == EXPECTED
    assert result.any_contradicted


def test_summary_counts_agreement_and_kappa(run_dir, table):
    result = judge(read_descriptions(table), load_measurements(run_dir))
    corpus = result.summary["corpus"]
    assert corpus["counts"] == {"supported": 6, "secondary": 1, "contradicted": 4, "not checkable": 1}
    assert corpus["checkable"] == 11 and corpus["agreement"] == pytest.approx(6 / 11)
    assert result.summary["prompt"]["agreement"] == pytest.approx(7 / 11)
    assert -1 <= corpus["kappa"] < result.summary["prompt"]["kappa"] <= 1


def judgement(claimed, measured):
    e = Evidence(measured, 1.0, 1.0)
    return Judgement(S, claimed, measured, (), 1.0, e, e)


def test_kappa_is_one_for_full_agreement_and_zero_for_chance():
    assert agreement([judgement("a", "a"), judgement("b", "b")])["kappa"] == pytest.approx(1.0)
    pairs = [judgement("a", "a"), judgement("b", "b"), judgement("a", "b"), judgement("b", "a")]
    assert agreement(pairs)["kappa"] == pytest.approx(0.0)
    assert np.isnan(agreement([judgement("a", "a")])["kappa"])


def test_report_shows_evidence_numbers_conditions_and_where_the_prompt_misleads(run_dir, table):
    text = render_validation(judge(read_descriptions(table), load_measurements(run_dir)))
    assert "| Head | Primary claim (as written) | Claimed | Measured (corpus) |" in text
    assert "measured previous-token: previous 80% [78%, 82%], 20x uniform" in text
    assert "“0.8” vs previous 0.800 [0.780, 0.820]: agrees" in text
    assert "- 6: condition on delimiter queries → current-token: “itself”" in text
    assert "**contradicted** (prompt: supported)" in text
    assert "- 10: supported on the prompt (measured previous-token), contradicted over the corpus" in text
    assert "Cohen's kappa" in text


def test_budget_and_role_evidence_columns_are_used_when_the_run_has_them(run_dir, table):
    roles = json.loads((run_dir / "roles.json").read_text())
    for r in roles:
        r.update(explained=0.5, lift=12.5, margin=0.3, stability=0.9)
    (run_dir / "roles.json").write_text(json.dumps(roles))
    budget = [{"layer": 0, "head": h, **{p: 1 / len(PARTS) for p in PARTS},
               **{f"{p}_uniform": 1 / len(PARTS) for p in PARTS}} for h in range(12)]
    budget[1].update(previous=0.3)  # head 1 ("prev tok") puts 30% on the previous token: 3.6x uniform
    pd.DataFrame(budget).to_csv(run_dir / "budget.csv", index=False)
    result = judge(read_descriptions(table), load_measurements(run_dir))
    head_1 = result.heads[1].corpus
    assert head_1.measured_evidence.share == 0.5 and head_1.measured_evidence.lift == 12.5
    assert head_1.claimed_evidence.measure == "budget part previous"
    assert head_1.claimed_evidence.share == pytest.approx(0.3)
    assert head_1.verdict == C  # 30% on the previous token, 3.6x uniform: a lean, but none of its roles
    assert "measured current-token: explains 50%, 12x uniform" in render_validation(result)


def test_json_has_one_object_per_head_with_the_claim_structure(run_dir, table):
    result = judge(read_descriptions(table), load_measurements(run_dir))
    records = json.loads(render_json(result))
    assert len(records) == 12
    keys = {"layer", "head", "claim", "claimed_primary", "claimed_secondary", "conditions", "verdict",
            "measured_role", "evidence"}
    assert all(keys <= set(r) for r in records)
    assert records[4]["claimed_primary"] == "current-token" and records[4]["claimed_secondary"] == ["previous-token"]
    assert records[6]["conditions"] == [{"scope": "delimiter", "role": "current-token", "text": "itself",
                                         "sentence": "Punctuation attends to itself."}]
    assert records[3]["claimed_primary"] is None and records[3]["verdict"] == "not checkable"
    assert records[10]["weight"] == 0.75 and records[10]["prompt"]["verdict"] == "supported"
    assert validation_records(result) == records


def test_a_run_without_prompt_files_is_judged_on_the_corpus_only(run_dir, table):
    (run_dir / "prompt-metrics.csv").unlink()
    result = judge(read_descriptions(table), load_measurements(run_dir))
    assert all(h.prompt is None for h in result.heads) and "prompt" not in result.summary
    assert "- Prompt: not measured" in render_validation(result)


def test_real_style_notes_on_the_stories260k_run_split_into_supported_and_contradicted():
    run = ROOT / "reports" / "stories260K"
    if not (run / "run.json").is_file():
        pytest.skip("reports/stories260K is not in this checkout")
    result = judge(read_descriptions(NOTES / "stories260k-prose.md"), load_measurements(run))
    counts = result.summary["corpus"]["counts"]
    assert counts["supported"] >= 20 and counts["contradicted"] >= 3 and counts["not checkable"] == 0
    assert counts["secondary"] < counts["supported"]
    numbers = {n.number.text: n for h in result.heads if (h.description.layer, h.description.head) == (0, 6)
               for n in h.corpus.numbers}
    assert numbers["0.45"].metric == "previous"
    verdict = {(h.description.layer, h.description.head): h.corpus.verdict for h in result.heads}
    assert verdict[(0, 0)] == S and verdict[(1, 3)] == S  # word-start and previous-token heads
    assert verdict[(0, 6)] == S  # "mostly looks at the previous token (0.45)": a previous-token head
    assert verdict[(1, 4)] == C  # a "local" claim on a previous-token head: local passes no test of its own


def test_importing_validate_does_not_import_torch():
    code = "import sys, classifier.validate.check, classifier.validate.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# --- the command ---------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def test_cli_writes_markdown_and_json_and_strict_fails_on_a_contradiction(run_dir, table, tmp_path):
    plain = invoke(table, "--run", run_dir)
    assert plain.exit_code == 0, plain.output
    assert plain.output.startswith("# Validation:")
    assert invoke(table, "--run", run_dir, "--strict").exit_code == 1
    out, js = tmp_path / "out" / "validation.md", tmp_path / "out" / "verdicts.json"
    written = invoke(table, "--run", run_dir, "--out", out, "--json", js)
    assert written.exit_code == 0 and out.read_text() == plain.output
    assert len(json.loads(js.read_text())) == 12
    assert sorted(p.name for p in out.parent.iterdir()) == ["validation.md", "verdicts.json"]


def test_json_where_no_file_can_be_written_is_refused_before_any_work(run_dir, table, tmp_path):
    result = invoke(table, "--run", run_dir, "--json", table / "verdicts.json")
    assert result.exit_code == 2 and "--json" in result.output and "is not a folder" in result.output
    assert not (tmp_path / "verdicts.json").exists()


def test_strict_passes_without_contradictions(run_dir, tmp_path):
    path = tmp_path / "good.md"
    path.write_text("| Head | Description |\n|---|---|\n| 0 | Previous token. |\n| L0H1 | Itself. |\n")
    assert invoke(path, "--run", run_dir, "--strict").exit_code == 0


def write(tmp_path, content, name="bad.md"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("content, line, message", [
    ("# Notes\n\nNo table here.\n", 1, "no heads found"),
    ("| Head | Description |\n|---|---|\n| 1 | Commas. |\n| 1 | Itself. |\n", 4, "head 1 is described twice"),
    ("| Head | Description |\n|---|---|\n| 12 | Commas. |\n", 3, "head 12 is out of range"),
    ("| Head | Description |\n|---|---|\n| L1H0 | Commas. |\n", 3, "head L1H0 is out of range"),
    ("| Head | Description |\n|---|---|\n| 2 |  |\n", 3, "head 2 has an empty description"),
    ("| Head | Description |\n|---|---|\n| two | Commas. |\n", 3, "cannot read head id 'two'"),
    (b"| Head | Description |\n\x89PNG\x00\x00", 2, "not a text file"),
    ("| Head | Description |\n|---|---|\n".encode() + b"| 1 | caf\xe9 |\n", 3, "not UTF-8 text"),
])
def test_bad_input_exits_2_with_one_line_naming_file_and_line(run_dir, tmp_path, content, line, message):
    path = write(tmp_path, content)
    result = invoke(path, "--run", run_dir)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"Error: {path}:{line}: ") and message in lines[0]


def test_a_run_missing_a_head_is_bad_input(run_dir, table):
    roles = json.loads((run_dir / "roles.json").read_text())
    (run_dir / "roles.json").write_text(json.dumps(roles[:-1]))
    result = invoke(table, "--run", run_dir)
    assert result.exit_code == 2 and "roles.json: no row for head L0H11" in result.output


def test_run_and_model_are_exclusive_and_a_new_prompt_needs_the_model(run_dir, table):
    neither = invoke(table)
    assert neither.exit_code == 2 and "exactly one of --run DIR or --model M" in neither.output
    other = invoke(table, "--run", run_dir, "--prompt", "Once upon a time")
    assert other.exit_code == 2 and "pass --model" in other.output


def test_validate_has_help_with_an_example():
    result = CliRunner().invoke(main, ["validate", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--json" in result.output


# --- keyed numbers: every number against the metric its own words name ------------------------------

KEYED_NOTES = NOTES / "tinystories-4L-numbers.md"
KEY = json.loads((NOTES / "tinystories-4L-numbers.numbers.json").read_text())


def check_against_the_key(records: list[dict]) -> None:
    got = {f"{r['layer']}.{r['head']}": r for r in records}
    for head, numbers in KEY["numbers"].items():
        read = [(n["written"], n["metric"], n["agrees"]) for n in got[head]["numbers"]]
        assert read == [(written, metric, agrees) for written, metric, agrees, _ in numbers], head
    for head, (claimed, verdict, secondary, _) in KEY["verdicts"].items():
        record = got[head]
        assert (record["claimed_primary"], record["verdict"], record["secondary_verdicts"]) == (
            claimed, verdict, secondary), head
    for head, listed in KEY["listed"].items():
        assert [[item["claimed"], item["verdict"]] for item in got[head]["listed"]] == listed, head


def test_every_keyed_number_is_read_against_the_metric_its_words_name_and_judged_right():
    result = judge(read_descriptions(KEYED_NOTES), load_measurements(NOTES / KEY["run"]))
    check_against_the_key(validation_records(result))


def test_a_number_check_is_in_the_json_and_the_markdown(tmp_path):
    js = tmp_path / "v.json"
    result = invoke(KEYED_NOTES, "--run", NOTES / KEY["run"], "--json", js)
    assert result.exit_code == 0, result.output
    head = next(r for r in json.loads(js.read_text()) if (r["layer"], r["head"]) == (1, 0))
    assert {"written", "metric", "measured", "low", "high", "agrees"} <= set(head["numbers"][0])
    assert "“10%” vs word_start 14.0% [13.0%, 15.0%]: disagrees" in result.output
    assert "“17x” vs previous_lift 17.3x [16.9x, 17.7x]: agrees" in result.output
    assert "“43%”: not checked (an argmax share" in result.output


@pytest.mark.slow
def test_keyed_numbers_hold_when_validate_runs_the_development_model(tmp_path):
    js = tmp_path / "v.json"
    result = invoke(KEYED_NOTES, "--model", ROOT / "devmodels" / "tinystories-4L-dev", "--corpus", "tinystories-sample",
                    "--stories", 50, "--json", js)
    assert result.exit_code == 0, result.output
    check_against_the_key(json.loads(js.read_text()))


SEVERAL_SHAPES = """# Notes in several shapes

| Head | Notes |
| --- | --- |
| 0 | Attends to the previous token (80%). |
| 1 | Itself, 0.8. |

| 4 | The current token. |
| 5 | Attends to the current token. |

- 9: names, 80% (20x).
- Model: fake-1L.

Head 10: commas and full stops.

| kind | n | heads |
| --- | --- | --- |
| previous token | 2 | 0, 5 |
| clause start | 1 | 6 |
"""


def test_several_tables_a_list_and_a_summary_table_are_judged_and_strict_still_fails(run_dir, tmp_path):
    path = tmp_path / "shapes.md"
    path.write_text(SEVERAL_SHAPES)
    js = tmp_path / "v.json"
    result = invoke(path, "--run", run_dir, "--json", js)
    assert result.exit_code == 0, result.output
    records = {r["head"]: r for r in json.loads(js.read_text())}
    assert sorted(records) == [0, 1, 4, 5, 6, 9, 10]
    assert {h: records[h]["verdict"] for h in records} == {
        0: "supported", 1: "supported", 4: "supported", 5: "contradicted", 6: "supported", 9: "supported",
        10: "supported"}
    # head 5's own row says current token, the summary table says previous token: both are shown
    assert records[5]["listed"] == [{"line": 18, "text": "previous token", "claimed": "previous-token",
                                     "verdict": "supported", "same_as_own_row": False}]
    assert "summary line 18 lists it as previous-token (supported), its own row claims current-token" in result.output
    assert [(n["written"], n["metric"], n["agrees"]) for n in records[9]["numbers"]] == [
        ("80%", "proper_noun", True), ("20x", "proper_noun_lift", True)]
    assert invoke(path, "--run", run_dir, "--strict").exit_code == 1


def test_a_table_of_numbers_is_read_against_the_metrics_its_headers_name(run_dir, tmp_path):
    path = tmp_path / "numbers.md"
    path.write_text("| Head | previous (%) | entropy | BOS lift |\n|---|---|---|---|\n| 0 | 80 | 0.9 | 3x |\n")
    (head,) = judge(read_descriptions(path), load_measurements(run_dir)).heads
    assert [(c.number.text, c.metric, c.agrees) for c in head.corpus.numbers] == [
        ("80%", "previous", True), ("0.9", "entropy", False), ("3x", "start_of_text_lift", False)]
