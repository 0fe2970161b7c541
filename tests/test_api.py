"""The Python front door (`classifier.classify`, `Result`, `classifier.compare`) against the CLI:
the same numbers as `head-roles report` on the committed 4L dev model, the same files from
`Result.save`, the CLI's one-line errors for bad input, its notices as warnings; and the role
table and report view rendering in headless Chromium."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import classifier
from classifier.errors import InputError, InputNotice
from classifier.registry import ROLE_COLORS

ROOT = Path(__file__).resolve().parents[1]
DEV_4L = ROOT / "devmodels" / "tinystories-4L-dev"
REAL_STORIES = ROOT / "corpora" / "tinystories-train-2316.txt"
# A small run of the dev model, as the CLI takes it and as classify takes it.
RUN_OPTIONS = {"n_stories": 16, "bootstrap": 60, "ablation_stories": 2, "max_tokens": 96, "seed": 3}
CLI_OPTIONS = ["--stories", "16", "--bootstrap", "60", "--ablation-stories", "2", "--max-tokens", "96", "--seed", "3",
               "--device", "cpu"]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "classifier.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def real_stories() -> list[str]:
    """The stories of the committed corpus file as a notebook user has them: a list of strings."""
    from classifier.load.corpora import split_stories

    return split_stories(REAL_STORIES.read_text(encoding="utf-8"))


def same_value(a, b, where: str) -> None:
    """Equal strings, lists and dicts; numbers to 1e-9; None and NaN alike."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            same_value(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            same_value(x, y, f"{where}[{k}]")
    elif isinstance(a, (int, float)) and not isinstance(a, bool) or a is None:
        missing = a is None or (isinstance(a, float) and math.isnan(a))
        other_missing = b is None or (isinstance(b, float) and math.isnan(b))
        assert missing == other_missing, f"{where}: {a} vs {b}"
        if not missing:
            assert abs(float(a) - float(b)) <= 1e-9, f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


# ---- bad input: the CLI's one-line errors, before any model is loaded (no torch needed)


@pytest.mark.parametrize("stories, message", [
    ([], r"^stories: an empty list; give at least one story$"),
    ("Once upon a time there was a cat.", r"^stories: one string that is not a corpus name \(tinystories, bundled, "
                                          r"tinystories-sample\) or a \.txt/\.jsonl/\.parquet file; pass a list of stories"),
    (["A story.", 3], r"^stories\[1\]: not a string \(int\)$"),
    (["A story.", "  \n"], r"^stories\[1\]: a blank story$"),
    (42, r"^stories: not a list of stories, a corpus name or a file \(int\)$"),
])
def test_bad_stories_are_one_line_errors_before_the_model_is_touched(stories, message):
    with pytest.raises(InputError, match=message) as raised:
        classifier.classify(object(), stories)  # the model would be refused too, but later
    assert "\n" not in str(raised.value)


def test_a_missing_corpus_file_and_an_unknown_model_read_as_the_cli_says_them(tmp_path):
    with pytest.raises(InputError) as missing_file:
        classifier.classify("stories260K", str(tmp_path / "none.txt"))
    with pytest.raises(InputError) as unknown_model:
        classifier.classify("tiny-stories-1X", ["A story."])
    said = cli("report", "--model", "stories260K", "--corpus", str(tmp_path / "none.txt"), "--out", str(tmp_path / "a"))
    said_model = cli("report", "--model", "tiny-stories-1X", "--corpus", "bundled", "--out", str(tmp_path / "b"))
    assert said.returncode == said_model.returncode == 2
    assert said.stderr.strip() == f"Error: {missing_file.value}"
    assert said_model.stderr.strip() == f"Error: {unknown_model.value}"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def test_bad_settings_are_the_cli_messages():
    with pytest.raises(InputError, match=r"^--max-tokens must be at least 2, got 1; --bootstrap must be 0 or more, got -1$"):
        classifier.classify("stories260K", ["A story."], max_tokens=1, bootstrap=-1)


# ---- results in a browser


def doubtful_run():
    from test_html import synthetic_run

    run = synthetic_run()
    roles = run.roles.copy()
    roles.loc[3, "confidence"] = 0.3  # the delimiter head (1.0): doubtful
    return dataclasses.replace(run, roles=roles)


def test_role_table_html_has_every_head_its_colour_and_the_doubt_mark():
    result = classifier.Result(doubtful_run())
    page = result._repr_html_()
    assert page.count("<tr>") == 1 + 6  # header and one row per head
    assert f'background:{ROLE_COLORS["delimiter"]};color:#fff;border-radius:8px;padding:0 7px">delimiter?</span>' in page
    assert ">previous-token</span> (+local)" in page  # sure: no mark
    assert "Note: a notice &lt;b&gt;" in page and "<b>tiny &lt;model&gt;</b>" in page  # escaped
    from classifier.render.html import render_html

    view = re.fullmatch(r'<iframe class="head-roles-report" srcdoc="([^"]*)" style="[^"]*"></iframe>',
                        result.show()._repr_html_())
    assert view and html.unescape(view.group(1)) == render_html(result.run)  # report.html itself


def test_head_card_reads_as_the_report_card():
    card = classifier.Result(doubtful_run()).head(1, 0)
    assert (card.label, card.role, card.role_label, card.confidence) == ("1.0", "delimiter", "delimiter?", 0.3)
    assert card.secondary == ("proper-noun", "previous-token")
    assert ("100%", "on BOS (attention sink)") not in card.facts and card.facts[0] == ("20%", "of attention the label explains")
    assert str(card).startswith("Head 1.0: delimiter? (+proper-noun, previous-token)\n")
    assert card.top_keys.empty  # the synthetic run measured none; the notebook test reads real ones
    with pytest.raises(InputError, match=r"^head \(2, 0\): the model has 2 layer\(s\) x 3 heads$"):
        classifier.Result(doubtful_run()).head(2, 0)


def test_validate_takes_notes_as_a_string_or_a_file(tmp_path):
    result = classifier.Result(doubtful_run())
    notes = "| Head | Role |\n| --- | --- |\n| 0.0 | previous-token head |\n| 1.0 | induction head |\n"
    verdicts = result.validate(notes)
    assert list(zip(verdicts["label"], verdicts["corpus_role"])) == [("0.0", "previous-token"), ("1.0", "delimiter")]
    assert list(verdicts["corpus_verdict"]) == ["supported", "contradicted"]
    (tmp_path / "notes.md").write_text(notes)
    assert result.validate(tmp_path / "notes.md").equals(verdicts)
    with pytest.raises(InputError, match=r"^notes: missing\.md: no such file$"):
        result.validate("missing.md")


# After HARNESS_HEAD (errors recorded): once the page and its frame have loaded, what they show.
BROWSER_HARNESS = """<script>
window.addEventListener("load", () => {
  const out = {};
  try {
    const table = document.querySelector(".head-roles-table");
    out.rows = table.querySelectorAll("tbody tr").length;
    out.roles = Array.from(table.querySelectorAll("tbody .role"), (s) => [s.textContent, getComputedStyle(s).backgroundColor]);
    const frame = document.querySelector("iframe.head-roles-report").contentDocument;
    out.frameReady = frame.body.dataset.ready || "no";
    out.frameRows = frame.querySelectorAll("#roles tbody tr").length;
    out.frameThumbs = frame.querySelectorAll("#overview .thumb").length;
    out.frameTokens = frame.querySelectorAll("#tokens .tok").length;
    out.frameHeight = frame.defaultView.innerHeight;
  } catch (err) { window.__errors.push("harness: " + err.message); }
"""


def browser_harness() -> str:
    from test_html import HARNESS_HEAD, HARNESS_RESULT

    return HARNESS_HEAD + BROWSER_HARNESS + HARNESS_RESULT + "\n});\n</script>"


def test_role_table_and_report_view_render_in_headless_chromium(tmp_path):
    from test_html import PROMPT_TOKENS, chromium, run_in_chromium

    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    result = classifier.Result(doubtful_run())
    # As Jupyter places a cell's HTML output: inside its own page, after the notebook's.
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{browser_harness()}</head><body>"
            f"<div class='output'>{result._repr_html_()}</div><div class='output'>{result.show()._repr_html_()}</div>"
            "</body></html>")
    path = tmp_path / "cell-outputs.html"
    path.write_text(page, encoding="utf-8")
    seen, log = run_in_chromium(path, browser)
    assert seen["errors"] == [] and "Uncaught" not in log
    assert seen["rows"] == 6
    colour = ROLE_COLORS["delimiter"].lstrip("#")
    rgb = f"rgb({int(colour[0:2], 16)}, {int(colour[2:4], 16)}, {int(colour[4:6], 16)})"
    assert ["delimiter?", rgb] in seen["roles"]
    assert seen["frameReady"] == "yes"  # report.html's script ran to its end inside the frame
    assert seen["frameRows"] == seen["frameThumbs"] == 6
    assert seen["frameTokens"] == len(PROMPT_TOKENS) and seen["frameHeight"] > 600


# ---- on the committed 4L dev model


@pytest.fixture(scope="module")
def dev_bridge():
    from transformer_lens.model_bridge import TransformerBridge

    return TransformerBridge.boot_transformers(str(DEV_4L), device="cpu")


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """`head-roles report` on the dev model's folder and the committed corpus file."""
    out = tmp_path_factory.mktemp("cli") / "report"
    done = cli("report", "--model", str(DEV_4L), "--corpus", str(REAL_STORIES), *CLI_OPTIONS, "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def classified(dev_bridge, tmp_path_factory):
    """classify on the dev model booted in Python (in training mode) and the stories as a list,
    run from an empty working folder: the result, whether the model came back in training mode,
    and what the folder held afterwards."""
    here, folder = Path.cwd(), tmp_path_factory.mktemp("cwd")
    dev_bridge.train()
    os.chdir(folder)
    try:
        result = classifier.classify(dev_bridge, real_stories(), progress=False, **RUN_OPTIONS)
    finally:
        os.chdir(here)
    training = dev_bridge.training and all(m.training for m in dev_bridge.modules())
    dev_bridge.eval()
    return SimpleNamespace(result=result, training=training, written=sorted(folder.iterdir()))


@pytest.mark.slow
def test_classify_on_a_booted_model_equals_head_roles_report(classified, reported):
    """Every metrics.csv and roles.json value of `head-roles report` on the checkpoint folder and
    the corpus file, to 1e-9; nothing written; the model handed back in training mode as given."""
    result = classified.result
    assert classified.training and classified.written == []
    record = json.loads((reported / "run.json").read_text())
    assert result.run.corpus["sample_indices"] == record["corpus"]["sample_indices"]
    assert result.run.n_tokens == record["tokens"]
    cli_metrics = pd.read_csv(reported / "metrics.csv")
    assert list(result.metrics.columns) == list(cli_metrics.columns)
    for column in cli_metrics.columns:
        np.testing.assert_allclose(result.metrics[column].to_numpy(float), cli_metrics[column].to_numpy(float),
                                   rtol=0, atol=1e-9, equal_nan=True, err_msg=column)
    from classifier.run import roles_records

    same_value(roles_records(result.roles), json.loads((reported / "roles.json").read_text()), "roles.json")
    assert len(result.roles) == len(result.budget) == 32


@pytest.mark.slow
def test_save_writes_what_head_roles_writes_for_the_run(classified, reported, tmp_path):
    """`Result.save` against the CLI on the same run: `head-roles render` of the saved folder
    writes every file again byte for byte; the folder holds the files `head-roles report` writes."""
    result = classified.result
    saved = result.save(tmp_path / "saved")
    rendered = cli("render", str(saved), "--out", str(tmp_path / "rendered"))
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    names = sorted(p.name for p in saved.iterdir())
    assert names == sorted(p.name for p in reported.iterdir())
    assert "report.html" in names and "lift-heatmap.png" in names
    for name in names:
        if name != ".head-roles-files.json":
            assert (saved / name).read_bytes() == (tmp_path / "rendered" / name).read_bytes(), name
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.md").write_text("my notes")
    with pytest.raises(InputError, match="report.md"):  # a file of the user's under an output's name
        result.save(tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["report.md"]
    assert (tmp_path / "mine" / "report.md").read_text() == "my notes"


@pytest.mark.slow
def test_notices_are_warnings_and_on_the_result(dev_bridge):
    stories = ["Tom had a red ball. He threw it to Sue, and she laughed.", "Lily saw a cat. The cat ran away."]
    with pytest.warns(InputNotice) as warned:
        result = classifier.classify(dev_bridge, stories, max_tokens=8, bootstrap=10, ablation_stories=0, progress=False)
    said = [str(w.message) for w in warned if issubclass(w.category, InputNotice)]
    assert said[0].startswith("only 2 stories: the 95% intervals")
    assert said[1] == ("--max-tokens 8: 2 of 2 stories are longer than 8 tokens (BOS included) and cut there; "
                       "their later tokens are not scored.")
    assert list(result.notices) == said
    assert result.run.n_tokens == 16


@pytest.mark.slow
def test_validate_judges_notes_as_validate_run_does(classified, tmp_path):
    result = classified.result
    saved = result.save(tmp_path / "run", figures=False)
    notes = "| Head | Role |\n| --- | --- |\n| 0.1 | previous-token head |\n| 1.2 | delimiter head |\n| 3.5 | broad |\n"
    (tmp_path / "notes.md").write_text(notes)
    from_text, from_file = result.validate(notes), result.validate(tmp_path / "notes.md")
    done = cli("validate", str(tmp_path / "notes.md"), "--run", str(saved), "--json", str(tmp_path / "v.json"))
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads((tmp_path / "v.json").read_text())
    assert [(r["layer"], r["head"]) for r in records] == list(zip(from_text["layer"], from_text["head"])) == [(0, 1), (1, 2), (3, 5)]
    assert from_text.drop(columns="description").equals(from_file.drop(columns="description"))
    assert list(from_text["corpus_verdict"]) == [r["verdict"] for r in records]
    assert list(from_text["prompt_verdict"]) == [r["prompt"]["verdict"] for r in records]
    assert list(from_text["corpus_role"]) == [r["measured_role"] for r in records]


@pytest.mark.slow
def test_compare_in_memory_checkpoints_gives_the_track_table(classified):
    first = classified.result
    table = classifier.compare([first, first], labels=["a", "b"], steps=[10, 20])
    assert len(table) == 64 and list(table["checkpoint"].unique()) == ["a", "b"]
    later = table[table["checkpoint"] == "b"]
    assert (later["match"] == "identity").all() and (later["matched_role"].to_numpy() == later["role"].to_numpy()).all()
    assert np.allclose(later["similarity"], 1.0)
    matched = classifier.compare([first, first])  # two models: heads matched by profile, each to itself
    assert (matched["match"].iloc[32:] == "similarity").all()
    assert (matched["matched_head"].iloc[32:].to_numpy() == matched["head"].iloc[32:].to_numpy()).all()
    other_stories = dataclasses.replace(first.run, corpus={**first.run.corpus, "sample_indices": [0, 1]})
    with pytest.raises(InputError, match=r"^models_or_results\[1\]: scored on other stories"):
        classifier.compare([first, classifier.Result(other_stories)])
