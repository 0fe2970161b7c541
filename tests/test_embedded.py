"""The real model and stories shipped inside the package: offline, by name, as the report default.

Everything here runs without the hub (HF_HUB_OFFLINE=1) and without ../shared/data: the
stories260K checkpoint (1 MB) scores a few short stories in seconds.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from classifier.load import models
from classifier.cli import DEFAULT_MODEL, main
from classifier.load.corpora import SAMPLE_PATH, load_corpus, split_stories
from classifier.load.llama2c import DATA_DIR, embedded_checkpoint, resolve_llama2c_name

STORIES260K_SHA256 = "b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696"
# Small and quick: a few stories, short, few resamples.
QUICK = ["--stories", "3", "--max-tokens", "96", "--bootstrap", "10"]


def test_embedded_files_are_the_published_ones_with_their_licences():
    assert hashlib.sha256((DATA_DIR / "stories260K.bin").read_bytes()).hexdigest() == STORIES260K_SHA256
    notice = (DATA_DIR / "NOTICE.md").read_text()
    assert "karpathy/tinyllamas" in notice and "MIT License" in notice
    assert "CDLA-Sharing-1.0" in notice and "Eldan" in notice and "roneneldan/TinyStories" in notice


def test_sample_corpus_is_three_hundred_real_stories():
    texts = split_stories(SAMPLE_PATH.read_text())
    assert len(texts) == 300 and texts[0].startswith("One day, a little girl named Lily found a needle")
    corpus = load_corpus("tinystories-sample", stories=None, seed=0)
    assert corpus.name == "tinystories-sample" and len(corpus.texts) == 300
    assert "CDLA-Sharing-1.0" in corpus.source and corpus.notice is None


def test_the_name_stories260K_resolves_to_the_embedded_copy_without_the_hub():
    assert resolve_llama2c_name("stories260K") == embedded_checkpoint("stories260K")
    assert embedded_checkpoint("stories15M") is None  # not shipped: still from the hub


def test_models_lists_the_embedded_model():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "stories260K  (embedded in the package: no download)" in result.output


def test_default_falls_back_to_the_embedded_model_only_without_the_hub(monkeypatch):
    monkeypatch.setattr(models, "hub_model_available", lambda model: False)
    choice = models.choose_default_model(DEFAULT_MODEL, "tinystories")
    assert (choice.model, choice.corpus, choice.out_dir) == ("stories260K", "tinystories-sample", "reports/stories260K-embedded")
    (notice,) = choice.notices
    assert "\n" not in notice and "stories260K" in notice and "unreachable" in notice and "--model" in notice
    assert models.choose_default_model(DEFAULT_MODEL, "bundled").corpus == "bundled"  # a chosen corpus stays

    monkeypatch.setattr(models, "hub_model_available", lambda model: True)
    choice = models.choose_default_model(DEFAULT_MODEL, "tinystories")
    assert (choice.model, choice.corpus, choice.out_dir, choice.notices) == (
        DEFAULT_MODEL, "tinystories", "reports/tinystories-1L-21M", ())


def test_an_explicit_model_never_falls_back(tmp_path):
    result = CliRunner().invoke(main, ["report", "--model", DEFAULT_MODEL, *QUICK, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "not in the local Hugging Face cache" in result.output and "embedded" not in result.output
    assert len(result.output.strip().splitlines()) == 1  # said before the corpus is read: no notice first
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_report_without_a_model_offline_writes_a_real_report_of_the_embedded_model(tmp_path):
    out = tmp_path / "default"
    result = CliRunner().invoke(main, ["report", *QUICK, "--out", str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    said = [line for line in result.stderr.splitlines() if "stories260K" in line and "unreachable" in line]
    assert len(said) == 1  # said once, in one line
    record = json.loads((out / "run.json").read_text())
    assert record["model"]["name"] == "stories260K" and "embedded" in record["model"]["resolved"]
    assert record["corpus"]["name"] == "tinystories-sample" and record["corpus"]["stories"] == 3
    assert (record["model"]["n_layers"], record["model"]["n_heads"]) == (5, 8)
    assert "stories260K" in (out / "report.md").read_text() and (out / "report.html").is_file()
    # The embedded tokenizer is named by its hub name, not this install's path: a committed
    # report reads the same from every clone.
    assert record["model"]["tokenizer"] == "karpathy/tinyllamas/stories260K/tok512.model (embedded copy in head-roles)"
    assert str(DATA_DIR) not in (out / "report.md").read_text()


@pytest.mark.slow
def test_embedded_model_works_in_validate_and_track(tmp_path, monkeypatch):
    notes = tmp_path / "notes.md"
    notes.write_text("| Head | Description |\n| --- | --- |\n| 0.0 | attends to the previous token |\n")

    def no_importance(*args, **kwargs):
        raise AssertionError("validate measured whether heads matter, which it never reports")

    import classifier.pipeline

    monkeypatch.setattr(classifier.pipeline, "head_importance", no_importance)
    result = CliRunner().invoke(main, ["validate", str(notes), "--model", "stories260K", "--corpus", "tinystories-sample", *QUICK])
    assert result.exit_code == 0, result.output
    assert "0.0" in result.output
    assert "--ablation-stories" not in CliRunner().invoke(main, ["validate", "--help"]).output
    monkeypatch.undo()  # track measures importance

    # track's own step, scoring or reusing one model (the CLI around it is tested in test_track).
    from classifier.settings import ScoreSettings
    from classifier.track.store import model_spec, score_and_store, stored_run

    sample = load_corpus("tinystories-sample", stories=3, seed=0)
    settings = ScoreSettings(stories=3, max_tokens=96, bootstrap=10, device="cpu")
    spec = model_spec("stories260K")
    assert stored_run(spec, sample, settings, store=tmp_path / "store") is None
    (tmp_path / "store").mkdir()
    path = score_and_store(spec, sample, settings, store=tmp_path / "store", progress=False)
    run, again = stored_run(spec, sample, settings, store=tmp_path / "store")
    assert again == path and run.model.n_heads == 8  # the embedded files key the stored run
