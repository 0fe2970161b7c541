"""The command line as users run it: help, report outputs, one-line errors with exit status 2."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.measure.scoring import METRICS

README = Path(__file__).resolve().parents[1] / "README.md"
CORPUS = 'Lily saw a big dog. "Hi!" she said, and the dog ran to Tom.\n<|endoftext|>\nTom had a red ball, but it rolled away. He was sad.\n<|endoftext|>\nOnce upon a time, Ben and Mia went to the park.\n<|endoftext|>\n'


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_a_summary_an_example_and_a_readme_entry(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0
    assert main.commands[name].get_short_help_str().strip()
    assert "Example:" in result.output
    assert f"head-roles {name}" in README.read_text()


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "stories.txt"
    path.write_text(CORPUS)
    return path


@pytest.mark.slow
def test_report_writes_tidy_metrics_roles_and_run_record(small_neo_dir, corpus_file, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "report", "--model", str(small_neo_dir), "--corpus", str(corpus_file), "--stories", "2",
        "--bootstrap", "20", "--out", str(out), "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns[: 2 + len(METRICS)]) == ["layer", "head", *METRICS]
    for metric in METRICS:
        assert {f"{metric}_lo", f"{metric}_hi", f"{metric}_lift"} <= set(metrics.columns)
    assert len(metrics) == 2 * 4  # one row per head
    assert ((metrics["current_lo"] <= metrics["current"] + 1e-9) & (metrics["current"] <= metrics["current_hi"] + 1e-9)).all()
    roles = json.loads((out / "roles.json").read_text())
    assert all({"layer", "head", "role", "secondary", "confidence"} <= set(r) for r in roles) and len(roles) == 8
    run = json.loads((out / "run.json").read_text())
    assert run["corpus"]["stories"] == 2 and len(run["corpus"]["sample_indices"]) == 2
    assert run["settings"]["bootstrap"] == 20 and "torch" in run["versions"]
    report = (out / "report.md").read_text()
    assert "| Head | Role | Description | Explained | Lift | Margin | Sink | Hold | Top keys | Stability | Confidence |" in report
    assert re.search(r"\| 1\.3 \|", report)  # L.H labels for a two-layer model
    assert (out / "lift-heatmap.png").stat().st_size > 1000 and (out / "prompt-patterns.png").exists()


@pytest.mark.slow
def test_a_failed_report_leaves_nothing_half_written(small_neo_dir, corpus_file, tmp_path, monkeypatch):
    import classifier.render.figures

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(classifier.render.figures, "draw_figures", broken)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["report", "--model", str(small_neo_dir), "--corpus", str(corpus_file),
                                       "--bootstrap", "5", "--out", str(out), "--device", "cpu"])
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == [corpus_file]


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "--model no-such-model: unknown model name"),
    (["--model", "./missing-dir"], "--model ./missing-dir: no such file or directory"),
    (["--corpus", "stories.csv"], "--corpus 'stories.csv'"),
    (["--stories", "-3"], "--stories must be 0 (all) or more, got -3"),
    (["--device", "tpu"], "--device 'tpu'"),
])
def test_bad_arguments_give_one_line_and_exit_status_2(args, message):
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_undecodable_corpus_names_file_and_line(tmp_path, small_neo_dir):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"A story.\n<|endoftext|>\nbad \xfe\n")
    result = CliRunner().invoke(main, ["report", "--model", str(small_neo_dir), "--corpus", str(path)])
    assert result.exit_code == 2
    assert f"{path}: line 3: not UTF-8" in result.output


def test_help_examples_are_whole_commands_one_per_line():
    """Copy-paste works: no example command is wrapped onto a second line."""
    for name in sorted(main.commands):
        text = CliRunner().invoke(main, [name, "--help"], terminal_width=60).output
        example = text.split("Example:")[1].split("Options:")[0]
        lines = [line.strip() for line in example.splitlines() if line.strip()]
        assert lines and all(line.startswith(f"head-roles {name}") for line in lines), (name, lines)


def test_every_score_setting_is_an_option_with_its_help():
    from dataclasses import fields

    from classifier.settings import ScoreSettings

    not_measured = {"validate": {"ablation_stories"}}  # validate measures no importance
    for command in ("report", "validate", "track"):
        params = {p.name: p for p in main.commands[command].params}
        for spec in fields(ScoreSettings):
            if spec.name in not_measured.get(command, ()):
                assert spec.name not in params, (command, spec.name)
                continue
            assert spec.name in params, (command, spec.name)
            assert params[spec.name].help == spec.metadata["help"]


def test_validate_model_help_mentions_llama2c_bin_files():
    assert ".bin" in CliRunner().invoke(main, ["validate", "--help"], terminal_width=200).output


def test_an_input_error_is_one_line_but_any_other_exception_keeps_its_traceback(monkeypatch, tmp_path):
    import classifier.pipeline
    from classifier.errors import InputError

    def bad_input(*args, **kwargs):
        raise InputError("stories.txt: line 3: something the user can fix\nsecond line")

    monkeypatch.setattr(classifier.pipeline, "analyse_model", bad_input)
    result = CliRunner().invoke(main, ["report", "--model", "stories260K", "--out", str(tmp_path / "a")])
    assert result.exit_code == 2 and result.output == "Error: stories.txt: line 3: something the user can fix\n"

    def bug(*args, **kwargs):
        raise KeyError("offset")

    monkeypatch.setattr(classifier.pipeline, "analyse_model", bug)
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
