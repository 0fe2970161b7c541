"""`track`: model arguments, the run store, head matching, and whole tracks over calibration models.

Unit tests use synthetic metric frames; the slow tests run three calibration checkpoints (two
one-layer with different head shuffles, one two-layer) plus two broken models on bundled stories
once, then re-run from the store.
"""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.scoring import METRICS
from classifier.settings import ScoreSettings
from classifier.track import (
    MATCH_METRICS,
    ModelSpec,
    corpus_identity,
    match_heads,
    model_identity,
    model_labels,
    pairs,
    parse_model,
    profile_similarity,
    run_path,
    store_key,
)

# --- model arguments ------------------------------------------------------------------------


def test_revision_is_split_on_the_last_at():
    assert parse_model("roneneldan/TinyStories-33M@v1@abc") == ModelSpec(
        "roneneldan/TinyStories-33M@v1@abc", "roneneldan/TinyStories-33M@v1", "abc"
    )
    assert parse_model("tiny-stories-1M").revision is None


def test_an_existing_path_with_an_at_is_not_split(tmp_path):
    checkpoint = tmp_path / "run@3"
    checkpoint.mkdir()
    assert parse_model(str(checkpoint)) == ModelSpec(str(checkpoint), str(checkpoint), None)


@pytest.mark.parametrize("argument", ["", "model@", "@main"])
def test_malformed_model_arguments_are_rejected(argument):
    with pytest.raises(ValueError):
        parse_model(argument)


def test_labels_are_short_unless_they_clash():
    specs = [parse_model(a) for a in ["runs/a/final", "runs/b/final", "roneneldan/TinyStories-1M@v2"]]
    assert model_labels(specs) == ["runs/a/final", "runs/b/final", "TinyStories-1M@v2"]


def test_a_model_given_twice_is_rejected():
    with pytest.raises(ValueError, match="more than once: x"):
        model_labels([parse_model("x"), parse_model("x")])


def test_pairs_are_consecutive_or_against_the_reference():
    assert pairs(4, "consecutive") == [(0, 1), (1, 2), (2, 3)]
    assert pairs(4, "reference") == [(0, 1), (0, 2), (0, 3)]
    with pytest.raises(ValueError, match="consecutive, reference"):
        pairs(3, "sideways")


# --- store keys -------------------------------------------------------------------------------


class FakeCorpus:
    def __init__(self, texts):
        self.texts = tuple(texts)


def _key(directory, settings=ScoreSettings(), texts=("a story",)):
    spec = parse_model(str(directory))
    return run_path(Path("store"), spec, store_key(model_identity(spec), FakeCorpus(texts), settings))


def test_store_key_changes_with_any_setting_that_changes_a_number(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    base = _key(tmp_path)
    assert _key(tmp_path) == base
    for changed in [dict(seed=1), dict(stories=400), dict(max_tokens=256), dict(bootstrap=10)]:
        assert _key(tmp_path, ScoreSettings(**changed)) != base, changed
    assert _key(tmp_path, texts=("another story",)) != base


def test_store_key_ignores_batch_size_and_device(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert _key(tmp_path, ScoreSettings(batch_size=3, device="cpu")) == _key(tmp_path)


def test_store_key_changes_when_a_checkpoint_file_changes(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 8)
    before = _key(tmp_path)
    os.utime(weights, ns=(1, 1))
    touched = _key(tmp_path)
    assert touched != before
    weights.write_bytes(b"\0" * 9)
    os.utime(weights, ns=(1, 1))
    assert _key(tmp_path) != touched


def test_corpus_identity_depends_on_story_order_and_boundaries():
    assert corpus_identity(FakeCorpus(["a", "b"])) != corpus_identity(FakeCorpus(["b", "a"]))
    assert corpus_identity(FakeCorpus(["ab"])) != corpus_identity(FakeCorpus(["a", "b"]))


# --- matching on synthetic profiles -------------------------------------------------------------

# Each role puts most attention on one target, as planted heads do.
PROFILES = {
    "current-token": {"current": 0.9, "local": 0.95, "max_weight": 0.9, "entropy": 0.1},
    "previous-token": {"previous": 0.9, "local": 0.95, "max_weight": 0.9, "entropy": 0.1},
    "start-of-text": {"start_of_text": 0.9, "max_weight": 0.9, "entropy": 0.1},
    "delimiter": {"delimiter": 0.8, "last_delimiter": 0.6, "max_weight": 0.6, "entropy": 0.3},
    "proper-noun": {"proper_noun": 0.8, "max_weight": 0.7, "entropy": 0.3},
    "broad": {"entropy": 0.97, "max_weight": 0.05},
}


def _frame(roles, n_layers, rng):
    """Metric rows for heads laid out row by row over n_layers; small noise on every metric."""
    n_heads = len(roles) // n_layers
    rows = []
    for k, role in enumerate(roles):
        values = {m: 0.03 + 0.02 * rng.random() for m in METRICS}
        values.update({m: v + 0.03 * rng.standard_normal() for m, v in PROFILES[role].items()})
        rows.append({"layer": k // n_heads, "head": k % n_heads, **values})
    return pd.DataFrame(rows)


def test_matching_recovers_shuffled_roles_across_shapes():
    rng = np.random.default_rng(0)
    roles = list(PROFILES)
    a_roles = [roles[k] for k in rng.permutation(6)]  # one layer of 6 heads
    b_roles = [roles[k] for k in rng.permutation(6)] + ["broad", "broad"]  # two layers of 4
    a, b = _frame(a_roles, 1, rng), _frame(b_roles, 2, rng)
    matches = match_heads(a, b)
    assert len(matches) == 8
    matched = matches.dropna(subset=["matched_head"])
    assert len(matched) == 6  # one-to-one: b has two heads more than a
    for row in matched.itertuples():
        assert a_roles[int(row.matched_head)] == b_roles[row.layer * 4 + row.head]
        assert row.similarity > 0.8
    # every head's nearest head has its role, matched or not
    for row in matches.itertuples():
        assert a_roles[row.nearest_head] == b_roles[row.layer * 4 + row.head]


def test_similarity_is_symmetric_and_one_on_identical_profiles():
    rng = np.random.default_rng(1)
    a = _frame(list(PROFILES), 1, rng)
    similarity = profile_similarity(a, a)
    assert np.allclose(np.diag(similarity), 1.0)
    assert np.allclose(similarity, similarity.T)


def test_missing_and_constant_metrics_do_not_break_similarity():
    rng = np.random.default_rng(2)
    a, b = _frame(list(PROFILES), 1, rng), _frame(list(PROFILES)[::-1], 1, rng)
    a["word_start"] = np.nan  # no continuation pieces in this sample
    b["induction"] = 0.5  # constant over b
    similarity = profile_similarity(a, b)
    assert np.isfinite(similarity).all()
    assert (match_heads(a, b)["matched_head"].to_numpy() == np.arange(6)[::-1]).all()


def test_distance_is_left_out_of_the_profile():
    assert "distance" not in MATCH_METRICS and len(MATCH_METRICS) == len(METRICS) - 1


# --- the command line ---------------------------------------------------------------------------


def test_track_help_has_a_summary_and_an_example():
    result = CliRunner().invoke(main, ["track", "--help"])
    assert result.exit_code == 0
    assert "Compare head roles across checkpoints" in result.output and "Example:" in result.output


@pytest.mark.parametrize("arguments, message", [
    (["a", "a"], "more than once"),
    (["model@"], "MODEL@REVISION"),
    (["a", "--corpus", "stories.csv"], "--corpus"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, arguments, message):
    result = CliRunner().invoke(main, ["track", *arguments, "--store", str(tmp_path / "s"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


# --- whole tracks over calibration models (slow) ---------------------------------------------------

TRACK_OPTIONS = ["--corpus", "bundled", "--stories", "20", "--bootstrap", "30", "--max-tokens", "96", "--device", "cpu"]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """Three calibration checkpoints, a broken directory and a missing path, tracked once."""
    from classifier.calibration import build_calibration_model

    root = tmp_path_factory.mktemp("track")
    truths = {
        name: build_calibration_model(root / name, layout=layout, seed=seed)
        for name, layout, seed in [("one-s0", "one-layer", 0), ("one-s1", "one-layer", 1), ("two-s0", "two-layer", 0)]
    }
    (root / "broken").mkdir()
    models = [str(root / name) for name in ["one-s0", "broken", "one-s1", "two-s0"]] + [str(root / "missing")]
    arguments = ["track", *models, *TRACK_OPTIONS, "--compare", "reference",
                 "--store", str(root / "store"), "--out", str(root / "out")]
    result = CliRunner().invoke(main, arguments)
    return {"root": root, "truths": truths, "arguments": arguments, "result": result}


def _planted(truth):
    return {(h.layer, h.head): h.role for h in truth.heads}


@pytest.mark.slow
def test_matching_recovers_planted_roles_across_shuffles_and_shapes(calibration):
    table = pd.read_csv(calibration["root"] / "out" / "track.csv")
    truths = calibration["truths"]
    reference = _planted(truths["one-s0"])
    unique = {role for role in reference.values() if list(reference.values()).count(role) == 1}
    for name in ["one-s1", "two-s0"]:
        planted = _planted(truths[name])
        rows = table[table["model"] == name]
        assert set(rows["compared_with"]) == {"one-s0"}
        checked = 0
        for row in rows.itertuples():
            role = planted[(row.layer, row.head)]
            if role in unique and list(planted.values()).count(role) == 1:
                assert reference[(int(row.matched_layer), int(row.matched_head))] == role, (name, role)
                checked += 1
        assert checked >= 8  # the one-layer roles the two-layer model shares, at least


@pytest.mark.slow
def test_a_failing_model_is_reported_and_the_others_are_kept(calibration):
    result, root = calibration["result"], calibration["root"]
    assert result.exit_code == 1
    text = (root / "out" / "track.md").read_text()
    failed = text.split("## Failed")[1].split("##")[0]
    assert "broken" in failed and "no config.json" in failed and "missing" in failed
    table = pd.read_csv(root / "out" / "track.csv")
    assert table.groupby("model").size().to_dict() == {"one-s0": 16, "one-s1": 16, "two-s0": 16}
    stored = {path.name.rsplit("-", 1)[0] for path in (root / "store").iterdir()}
    assert stored == {"one-s0", "one-s1", "two-s0"}


@pytest.mark.slow
def test_track_md_has_counts_grids_legend_and_comparisons(calibration):
    text = (calibration["root"] / "out" / "track.md").read_text()
    for heading in ["## Role counts", "## Role grids", "### two-s0", "### one-s1 vs one-s0", "### two-s0 vs one-s0"]:
        assert heading in text
    assert "`PREV` previous-token" in text and "linear_sum_assignment" in text
    same_layout = text.split("### one-s1 vs one-s0")[1].split("###")[0]
    assert "Same head:" in same_layout
    assert "Same head:" not in text.split("### two-s0 vs one-s0")[1]


@pytest.mark.slow
def test_a_second_run_is_served_from_the_store(calibration, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a stored run was recomputed")

    monkeypatch.setattr("classifier.models.load_model", no_loading)
    root = calibration["root"]
    before = (root / "out" / "track.csv").read_text()
    result = CliRunner().invoke(main, calibration["arguments"])
    assert result.exit_code == 1  # the broken models still fail
    assert result.output.count(": reused (") == 3
    assert (root / "out" / "track.csv").read_text() == before


@pytest.mark.slow
def test_a_changed_setting_is_a_store_miss(calibration):
    root = calibration["root"]
    store = root / "store"
    before = set(store.iterdir())
    options = [*TRACK_OPTIONS[:-4], "--max-tokens", "64", "--device", "cpu"]
    result = CliRunner().invoke(main, ["track", str(root / "one-s1"), *options,
                                       "--store", str(store), "--out", str(root / "out-64")])
    assert result.exit_code == 0, result.output
    assert ": computed (" in result.output
    added = set(store.iterdir()) - before
    assert len(added) == 1 and before <= set(store.iterdir())
    key = json.loads((added.pop() / "key.json").read_text())
    assert key["settings"]["max_tokens"] == 64
