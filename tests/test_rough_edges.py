"""Rough edges a new user met: each test here failed before the fix it names."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.settings import ScoreSettings

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_RUN = ROOT / "reports" / "stories260K-embedded"


def test_render_of_a_run_whose_metrics_lack_heads_is_one_line_and_exit_2(tmp_path):
    run = shutil.copytree(COMMITTED_RUN, tmp_path / "run")
    metrics = pd.read_csv(run / "metrics.csv")
    metrics[metrics["layer"] < metrics["layer"].max()].to_csv(run / "metrics.csv", index=False)
    result = CliRunner().invoke(main, ["render", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "metrics.csv: no row for head L4H0 (8 heads missing)" in result.output


def test_one_story_ended_by_its_separator_line_is_not_called_unsplit(tmp_path):
    from classifier.load.corpora import load_corpus

    ended = tmp_path / "one.txt"
    ended.write_text("Once upon a time there was a cat.\n<|endoftext|>\n")
    assert "<|endoftext|>" not in (load_corpus(str(ended), stories=None, seed=0).notice or "")
    bare = tmp_path / "bare.txt"
    bare.write_text("Once upon a time there was a cat.\n")
    assert "no line reads <|endoftext|>" in load_corpus(str(bare), stories=None, seed=0).notice


@pytest.mark.slow
def test_stories_cut_at_max_tokens_are_counted_in_a_notice(tmp_path):
    from classifier.errors import InputNotice
    from classifier.pipeline import analyse_model

    corpus = tmp_path / "stories.txt"
    corpus.write_text("The cat sat.\n<|endoftext|>\n" + "The dog ran and ran and ran far away. " * 20
                      + "\n<|endoftext|>\n")
    with pytest.warns(InputNotice, match="1 of 2 stories is longer than 12 tokens"):
        run = analyse_model("stories260K", str(corpus), ScoreSettings(stories=0, max_tokens=12, bootstrap=0,
                                                                      device="cpu"), progress=False)
    assert [n for n in run.notices if "longer than 12 tokens" in n]
    roomy = analyse_model("stories260K", str(corpus), ScoreSettings(stories=0, bootstrap=0, device="cpu"), progress=False)
    assert not [n for n in roomy.notices if "longer than" in n]


def test_ctrl_c_exits_130_without_aborted(monkeypatch):
    import classifier.load.models

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(classifier.load.models, "known_models", interrupted)
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 130 and "Aborted" not in result.output


@pytest.mark.slow
def test_building_and_loading_a_model_does_not_print_kernel_trust_lines(tmp_path):
    """transformers probes hub kernels when GPT-Neo is first imported; offline, `kernels` logs one
    line per kernel. A fresh process, since the probe happens once per process."""
    code = ("from classifier.calibrate.planted import build_calibration_model; "
            "from classifier.load.models import load_model; "
            f"build_calibration_model({str(tmp_path / 'm')!r}); load_model({str(tmp_path / 'm')!r}, device='cpu')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "publisher trust check" not in done.stderr


def _damaged_and_empty_checkpoints(root: Path, good: Path) -> Path:
    folder = root / "checkpoints"
    shutil.copytree(good, folder / "step-0")
    damaged = shutil.copytree(good, folder / "step-5")
    (damaged / "model.safetensors").write_bytes(b"not a safetensors file")
    (folder / "checkpoint-9").mkdir()
    return folder


@pytest.mark.slow
def test_track_goes_on_past_an_empty_and_a_damaged_checkpoint(tmp_path, small_neo_dir):
    folder = _damaged_and_empty_checkpoints(tmp_path, small_neo_dir)
    result = CliRunner().invoke(main, [
        "track", str(folder), "--corpus", "bundled", "--stories", "3", "--bootstrap", "0", "--device", "cpu",
        "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--no-figures",
    ])
    assert result.exit_code == 1, result.output
    assert "1 model(s) compared, 2 failed" in result.output
    failures = [line for line in result.output.splitlines() if "failed:" in line]
    assert len(failures) == 2 and {"checkpoint-9", "step-5"} == {f.split(":")[0].rsplit("/", 1)[1] for f in failures}
    assert not [line for line in failures if "--model" in line]  # track has no --model option


@pytest.mark.slow
def test_a_damaged_checkpoint_in_track_is_not_told_to_pass_model(tmp_path, small_neo_dir):
    damaged = shutil.copytree(small_neo_dir, tmp_path / "damaged")
    (damaged / "model.safetensors").write_bytes(b"not a safetensors file")
    result = CliRunner().invoke(main, [
        "track", str(small_neo_dir), str(damaged), "--corpus", "bundled", "--stories", "3", "--bootstrap", "0", "--device", "cpu",
        "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--no-figures",
    ])
    failure = [line for line in result.output.splitlines() if "failed:" in line]
    assert result.exit_code == 1 and len(failure) == 1, result.output
    assert "cannot load" in failure[0] and "--model" not in failure[0]
