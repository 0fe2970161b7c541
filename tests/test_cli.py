"""The command line as users run it: help, report outputs, one-line errors with exit status 2."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.scoring import METRICS

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
    assert list(metrics.columns[:17]) == ["layer", "head", *METRICS]
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
    assert "| Head | Role | Description | Explained | Lift | Margin | Sink | Stability | Confidence |" in report
    assert re.search(r"\| 1\.3 \|", report)  # L.H labels for a two-layer model
    assert (out / "lift-heatmap.png").stat().st_size > 1000 and (out / "prompt-patterns.png").exists()


@pytest.mark.slow
def test_a_failed_report_leaves_nothing_half_written(small_neo_dir, corpus_file, tmp_path, monkeypatch):
    import classifier.figures

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(classifier.figures, "draw_figures", broken)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["report", "--model", str(small_neo_dir), "--corpus", str(corpus_file),
                                       "--bootstrap", "5", "--out", str(out), "--device", "cpu"])
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == [corpus_file]


@pytest.mark.parametrize("args, message", [
    (["--model", "no-such-model"], "--model no-such-model: unknown model name"),
    (["--model", "./missing-dir"], "--model ./missing-dir: no such file or directory"),
    (["--corpus", "stories.csv"], "--corpus 'stories.csv'"),
    (["--stories", "-3"], "--stories must be at least 1"),
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
