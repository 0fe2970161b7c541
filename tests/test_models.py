"""Model loading through the same code path users hit, without the hub."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from classifier.load.models import ModelLoadError, known_models, load_model

pytestmark = pytest.mark.slow


def test_local_directory_with_the_tinystories_1l_architecture_loads(tinystories_1l_dir):
    model = load_model(str(tinystories_1l_dir), device="cpu")
    assert (model.n_layers, model.n_heads) == (1, 16)
    assert model.bos_token_id == 50256
    assert model.tokenizer.encode("Once upon a time", add_special_tokens=False) == [7454, 2402, 257, 640]


def test_official_name_loads_from_a_seeded_local_hugging_face_cache(tinystories_1l_dir, tmp_path):
    """`tiny-stories-1L-21M` resolves to roneneldan/TinyStories-1Layer-21M, found in the cache."""
    snapshot = tmp_path / "hub" / "models--roneneldan--TinyStories-1Layer-21M" / "snapshots" / "0123abc"
    shutil.copytree(tinystories_1l_dir, snapshot)
    (tmp_path / "hub" / "models--roneneldan--TinyStories-1Layer-21M" / "refs").mkdir()
    (tmp_path / "hub" / "models--roneneldan--TinyStories-1Layer-21M" / "refs" / "main").write_text("0123abc")
    corpus = tmp_path / "stories.txt"
    corpus.write_text('Lily saw a cat. "Hi!" she said, and the cat ran.\n<|endoftext|>\nTom had a ball.\n<|endoftext|>\n')
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "classifier.cli", "report", "--model", "tiny-stories-1L-21M", "--corpus", str(corpus),
         "--bootstrap", "10", "--no-figures", "--out", str(out), "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "metrics.csv").exists()
    assert '"resolved": "roneneldan/TinyStories-1Layer-21M"' in (out / "run.json").read_text()


def test_unknown_name_fails_fast_with_one_line_and_suggestions():
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        load_model("tiny-stories-1L-21", device="cpu")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message
    assert "tiny-stories-1L-21M" in message and "head-roles models" in message


def test_uncached_hub_id_offline_fails_fast_naming_the_model():
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="roneneldan/TinyStories-33M.*not in the local Hugging Face cache"):
        load_model("roneneldan/TinyStories-33M", device="cpu")
    assert time.perf_counter() - start < 5


def test_directory_without_config_and_broken_checkpoint_are_one_line_errors(tmp_path, small_neo_dir):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(str(tmp_path), device="cpu")
    broken = tmp_path / "broken"
    shutil.copytree(small_neo_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError) as err:
        load_model(str(broken), device="cpu")
    assert "\n" not in str(err.value) and str(broken) in str(err.value)


def test_known_models_include_the_fourteen_tinystories_checkpoints():
    names = known_models()
    tinystories = [n for n in names if n.startswith("roneneldan/")]
    assert len(tinystories) == 14
    assert "roneneldan/TinyStories-Instuct-1Layer-21M" in tinystories  # the official misspelling
    assert "tiny-stories-1L-21M" in names["roneneldan/TinyStories-1Layer-21M"]


def test_bad_device_is_rejected():
    with pytest.raises(ModelLoadError, match="--device"):
        load_model("whatever", device="gpu0")


def test_a_model_argument_is_parsed_once_into_a_typed_reference(tmp_path, monkeypatch):
    from classifier.load import models
    from classifier.load.packaged import EMBEDDED_CHECKPOINTS

    embedded = models.parse_model("stories260K")
    assert (embedded.kind, embedded.argument, embedded.revision, embedded.option) == ("embedded", "stories260K", None, "--model")
    weights, tokenizer = EMBEDDED_CHECKPOINTS["stories260K"]
    copy = shutil.copy(weights, tmp_path / "copy.bin")
    assert models.parse_model(str(copy), tokenizer=str(tokenizer)).kind == "llama2c"
    with pytest.raises(models.ModelLoadError, match="--revision v1: applies to Hugging Face hub models"):
        models.parse_model("stories260K", revision="v1")
    with pytest.raises(models.ModelLoadError, match="^model nowhere/at/all: no such file"):
        models.parse_model("nowhere/at/all", option="model")

    calls = []
    checked = models.check_model_argument
    monkeypatch.setattr(models, "check_model_argument", lambda *a, **k: calls.append(a) or checked(*a, **k))
    loaded = models.load_model(embedded, device="cpu")  # a parsed reference is not checked again
    assert calls == [] and loaded.n_layers == 5 and loaded.name == "stories260K"


def test_a_folder_of_training_checkpoints_points_to_track_in_one_line(tmp_path):
    from click.testing import CliRunner

    from classifier.cli import main

    run = tmp_path / "run"
    for step in ("checkpoint-100", "checkpoint-200"):
        (run / step).mkdir(parents=True)
        (run / step / "config.json").write_text('{"model_type": "gpt_neo"}')
    result = CliRunner().invoke(main, ["report", "--model", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: --model {run}: a folder of training checkpoints: use `head-roles track {run}`"]
