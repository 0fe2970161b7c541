"""Nothing of the user's is lost, the output is checked before any model loads, input notices are
said early, and commands that do not score start without torch."""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.errors import InputNotice

ROOT = Path(__file__).resolve().parents[1]
CORPUS = "".join(f"Story {k}: Lily saw a big dog. \"Hi!\" she said, and the dog ran to Tom.\n<|endoftext|>\n"
                 for k in range(12))
TABLE = "| Head | Description |\n| --- | --- |\n| 0.0 | attends to the previous token |\n"


def plant_user_files(folder: Path) -> dict:
    """The user's own files (with unusual permissions) in `folder`; returns what to compare."""
    folder.mkdir(exist_ok=True)
    (folder / "notes.md").write_text("my notes\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    os.chmod(folder / "notes.md", 0o640)
    os.chmod(folder / "sub" / "data.csv", 0o604)
    os.chmod(folder / "sub", 0o751)
    os.chmod(folder, 0o755)
    return snapshot(folder)


def snapshot(folder: Path) -> dict:
    paths = [folder, folder / "notes.md", folder / "sub", folder / "sub" / "data.csv"]
    # A folder's mtime changes when our files are added; its mode and the files must not.
    return {
        str(p): (p.stat().st_mode, p.stat().st_mtime_ns, p.read_bytes()) if p.is_file() else (p.stat().st_mode,)
        for p in paths
    }


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "stories.txt"
    path.write_text(CORPUS)
    return path


@pytest.mark.slow
def test_report_validate_and_track_keep_the_users_files(small_neo_dir, corpus_file, tmp_path):
    out = tmp_path / "project"
    before = plant_user_files(out)
    common = ["--corpus", str(corpus_file), "--bootstrap", "5", "--device", "cpu"]
    runner = CliRunner()

    result = runner.invoke(main, ["report", "--model", str(small_neo_dir), *common, "--no-figures", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.md").exists() and snapshot(out) == before
    result = runner.invoke(main, ["report", "--model", str(small_neo_dir), *common, "--no-figures", "--out", str(out)])
    assert result.exit_code == 0, result.output  # a second run replaces only its own files
    assert snapshot(out) == before

    table = tmp_path / "table.md"
    table.write_text(TABLE)
    result = runner.invoke(main, ["validate", str(table), "--run", str(out), "--out", str(out / "validation.md")])
    assert result.exit_code == 0, result.output
    assert (out / "validation.md").exists() and snapshot(out) == before

    copy = shutil.copytree(small_neo_dir, tmp_path / "copy")
    result = runner.invoke(main, ["track", str(small_neo_dir), str(copy), *common, "--stories", "3",
                                  "--store", str(out / "runs"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "track.md").exists() and snapshot(out) == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".tmp")) == []


@pytest.mark.slow
def test_out_dot_writes_into_the_current_folder(small_neo_dir, corpus_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["report", "--model", str(small_neo_dir), "--corpus", str(corpus_file),
                                       "--bootstrap", "5", "--no-figures", "--device", "cpu", "--out", "."])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.md").exists() and (tmp_path / "stories.txt").read_text() == CORPUS
    assert result.stdout.startswith("report.md:")


@pytest.mark.parametrize("args", [
    ["report", "--out", "{file}/run"],
    ["demo", "--out", "{file}/run"],
    ["render", "{run}", "--out", "{file}/run"],
    ["validate", "{table}", "--model", "m", "--out", "{file}/v.md"],
    ["validate", "{table}", "--model", "m", "--out", "{folder}"],
    ["track", "m1", "--out", "{file}/t"],
    ["track", "m1", "--out", "{folder}", "--store", "{file}/runs"],
])
def test_a_bad_output_location_is_one_line_before_any_model_loads(args, tmp_path, monkeypatch):
    import classifier.load.models

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the output location was checked")

    monkeypatch.setattr(classifier.load.models, "load_model", no_loading)
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "table.md").write_text(TABLE)
    (tmp_path / "run").mkdir()
    values = {"file": tmp_path / "file", "run": tmp_path / "run", "table": tmp_path / "table.md", "folder": tmp_path}
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert "--out" in result.output or "--store" in result.output
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.parametrize("args", [
    ["report", "--model", "stories260K", "--out", "{folder}"],
    ["demo", "--out", "{folder}"],
    ["render", "{run}", "--out", "{folder}"],
    ["track", "m1", "--out", "{folder}", "--store", "{store}"],
])
def test_a_users_file_with_an_outputs_name_is_refused_before_any_work(args, tmp_path, monkeypatch):
    import classifier.load.models

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded before the output folder was checked")

    monkeypatch.setattr(classifier.load.models, "load_model", no_loading)
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("report.md", "track.md"):  # the user's own files, named like outputs
        (folder / name).write_text("my own notes\n")
    (tmp_path / "run").mkdir()
    values = {"folder": folder, "run": tmp_path / "run", "store": tmp_path / "store"}
    result = CliRunner().invoke(main, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "--force" in result.output
    assert "not written by head-roles" in result.output
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"report.md": "my own notes\n", "track.md": "my own notes\n"}


def test_force_replaces_a_users_file_and_a_manifest_makes_the_files_ours(tmp_path):
    from classifier.errors import InputError
    from classifier.outputs import write_files

    (tmp_path / "report.md").write_text("mine\n")
    with pytest.raises(InputError, match="report.md is already there and not written by head-roles"):
        write_files(tmp_path, {"report.md": "ours\n", "run.json": "{}"})
    assert (tmp_path / "report.md").read_text() == "mine\n" and not (tmp_path / "run.json").exists()
    write_files(tmp_path, {"report.md": "ours\n", "run.json": "{}"}, force=True)
    assert (tmp_path / "report.md").read_text() == "ours\n"
    write_files(tmp_path, {"report.md": "ours again\n"})  # now listed in our manifest: replaced freely
    assert (tmp_path / "report.md").read_text() == "ours again\n" and not (tmp_path / "run.json").exists()


@pytest.mark.parametrize("args, message", [
    (["report", "--model", "{noweights}", "--corpus", "bundled"], "no weights in this directory"),
    (["report", "--model", "stories260K", "--revision", "main"], "--revision main: applies to Hugging Face hub models"),
    (["report", "--model", "stories260K", "--corpus", "{empty}"], "empty file, no stories found"),
    (["report", "--model", "stories260K", "--seed", "-1"], "--seed must be between 0"),
    (["render", "{broken}"], "metrics.csv: not a head-roles table"),
    (["validate", "{table}", "--run", "{broken}"], "metrics.csv: not a head-roles table"),
])
def test_more_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text('{"model_type": "gpt_neo"}')
    (tmp_path / "empty.jsonl").write_text("")
    import shutil

    shutil.copytree(ROOT / "reports" / "demo", tmp_path / "broken")  # a real run, then one file damaged
    (tmp_path / "broken" / "metrics.csv").write_text("garbage,,,\n")
    (tmp_path / "table.md").write_text(TABLE)
    values = {"noweights": tmp_path / "noweights", "empty": tmp_path / "empty.jsonl", "broken": tmp_path / "broken",
              "table": tmp_path / "table.md"}
    result = CliRunner().invoke(main, [a.format(**values) for a in args] + (["--out", str(tmp_path / "out")]
                                                                           if args[0] == "report" else []))
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


def test_a_failed_check_creates_no_folder(tmp_path):
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "new" / "run"), "--stories", "-5"])
    assert result.exit_code == 2 and "--stories must be 0 (all) or more, got -5" in result.output
    assert not (tmp_path / "new").exists()


# --- input notices -------------------------------------------------------------------------------


def test_an_unsplit_txt_file_is_said_and_kept_in_the_notices(tmp_path):
    from classifier.load.corpora import load_corpus

    path = tmp_path / "one.txt"
    path.write_text("Lily saw a dog. " * 50 + "<|endoftext|> Tom ran.")
    with pytest.warns(InputNotice) as caught:
        corpus = load_corpus(str(path), stories=20, seed=0)
    messages = [str(w.message) for w in caught]
    assert any("no line reads <|endoftext|> (it appears inside lines" in m for m in messages)
    assert any("--stories 20:" in m and "only 1 stories" in m for m in messages)
    assert any("only 1 story:" in m for m in messages)
    assert corpus.notices == tuple(messages)
    assert corpus.describe()["notices"] == messages


def test_more_stories_asked_than_there_are_is_said(tmp_path):
    from classifier.load.corpora import load_corpus

    path = tmp_path / "s.txt"
    path.write_text(CORPUS)
    with pytest.warns(InputNotice, match="--stories 5000: .* has only 12 stories; using all 12"):
        corpus = load_corpus(str(path), stories=5000, seed=0)
    assert len(corpus.texts) == 12 and len(corpus.notices) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # enough stories, split: nothing to say
        assert load_corpus(str(path), stories=12, seed=0).notices == ()


def test_corpus_repr_is_short():
    from classifier.load.corpora import load_corpus

    with pytest.warns(InputNotice, match="unreachable"):
        corpus = load_corpus("tinystories", stories=50, seed=0)  # HF_HUB_OFFLINE=1 in tests
    text = repr(corpus)
    assert len(text) < 300 and "50 of" in text and "unreachable" in text


@pytest.mark.slow
def test_notices_come_before_scoring_and_land_in_run_json_and_the_report(small_neo_dir, tmp_path, monkeypatch):
    import classifier.pipeline

    path = tmp_path / "one.txt"
    path.write_text("Lily saw a dog. She was happy. " * 20)
    order = []
    real_analyse = classifier.pipeline.analyse

    def analyse(*args, **kwargs):
        order.append("scoring")
        return real_analyse(*args, **kwargs)

    monkeypatch.setattr(classifier.pipeline, "analyse", analyse)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["report", "--model", str(small_neo_dir), "--corpus", str(path), "--stories", "20",
                                       "--bootstrap", "5", "--no-figures", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note: ")]
    assert len(notes) == 3 and "\r" not in result.stderr  # no progress frames when not a terminal
    record = json.loads((out / "run.json").read_text())
    assert [f"Note: {n}" for n in record["notices"]] == notes
    header = (out / "report.md").read_text().split("## Roles")[0]
    assert all(n in header for n in record["notices"])


# --- start-up ------------------------------------------------------------------------------------

HEAVY = ("torch", "transformers", "transformer_lens", "datasets", "matplotlib")


@pytest.mark.parametrize("args", [["models"], ["--help"], ["report", "--help"], ["report", "--bogus"],
                                  ["report", "--stories", "-5"], ["track", "--compare", "x", "m"]])
def test_commands_that_do_not_score_import_no_heavy_library(args):
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom classifier.cli import main\n"
        f"result = CliRunner().invoke(main, {args!r})\n"
        f"print(result.exit_code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    exit_code, modules = done.stdout.split(" ", 1)
    assert int(exit_code) in (0, 2) and modules.strip() == "[]", done.stdout + done.stderr


def test_models_lists_the_names_without_transformer_lens():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "roneneldan/TinyStories-1Layer-21M  (alias: tiny-stories-1L-21M)" in result.output
    assert "stories260K" in result.output


def test_written_out_model_names_match_transformer_lens_and_llama2c():
    from classifier.load import models

    pytest.importorskip("transformer_lens")
    assert models.registry_tinystories_models() == models.tinystories_models()
    from classifier.load.llama2c import LLAMA2C_CHECKPOINTS

    assert set(models.LLAMA2C_NAMES) == set(LLAMA2C_CHECKPOINTS)
    assert models.resolve_name("tiny-stories-instruct-1L-21M") == "roneneldan/TinyStories-Instuct-1Layer-21M"
