"""`track`: model arguments, checkpoint folders, the run store, head matching, when roles settle,
the rendered track, and whole tracks over calibration models.

Unit tests use synthetic metric frames and fake runs; the slow tests run three calibration
checkpoints (two one-layer with different head shuffles, one two-layer) plus one that fails to load
on bundled stories once, then re-run from the store; and a "training run" of calibration
checkpoints under step-N names, once in one process and once with --jobs 2.
"""

import dataclasses
import json
import re
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.registry import METRICS
from classifier.settings import ScoreSettings
from classifier.track.tracking import (
    MATCH_METRICS,
    SIMILARITY_FLOOR,
    TrackedModel,
    Tracking,
    comparison_pairs,
    match_heads,
    pairs,
    profile_similarity,
)
from classifier.track.store import (
    ModelSpec,
    corpus_identity,
    model_identity,
    model_labels,
    model_spec,
    run_path,
    store_key,
)
from classifier.track.report import role_code, track_files, track_table
from classifier.track.series import Checkpoint, expand_arguments, settling, settling_sentence

# --- model arguments ------------------------------------------------------------------------


def test_revision_is_split_on_the_last_at():
    assert model_spec("roneneldan/TinyStories-33M@v1@abc") == ModelSpec(
        "roneneldan/TinyStories-33M@v1@abc", "roneneldan/TinyStories-33M@v1", "abc"
    )
    assert model_spec("tiny-stories-1M").revision is None


def test_an_existing_path_with_an_at_is_not_split(tmp_path):
    checkpoint = tmp_path / "run@3"
    checkpoint.mkdir()
    assert model_spec(str(checkpoint)) == ModelSpec(str(checkpoint), str(checkpoint), None)


@pytest.mark.parametrize("argument", ["", "model@", "@main"])
def test_malformed_model_arguments_are_rejected(argument):
    with pytest.raises(ValueError):
        model_spec(argument)


def test_labels_are_short_unless_they_clash():
    specs = [model_spec(a) for a in ["runs/a/final", "runs/b/final", "roneneldan/TinyStories-1M@v2"]]
    assert model_labels(specs) == ["runs/a/final", "runs/b/final", "TinyStories-1M@v2"]


def test_a_model_given_twice_is_rejected():
    with pytest.raises(ValueError, match="more than once: x"):
        model_labels([model_spec("x"), model_spec("x")])


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
    spec = model_spec(str(directory))
    return run_path(Path("store"), spec, store_key(model_identity(spec), FakeCorpus(texts), settings))


# A value other than the default for every ScoreSettings field: a new field fails here until it
# is given one (and so decided: does it change a number?).
OTHER_VALUES = {"stories": 400, "max_tokens": 256, "seed": 1, "batch_size": 3, "bootstrap": 10, "device": "cpu",
                "ablation_stories": 5}
SPEED_ONLY = {"batch_size", "device"}  # change how fast a run is made, never a number


def test_store_key_changes_with_every_setting_but_batch_size_and_device(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    base = _key(tmp_path)
    assert _key(tmp_path) == base
    assert {f.name for f in dataclasses.fields(ScoreSettings)} == set(OTHER_VALUES)
    for name, value in OTHER_VALUES.items():
        assert getattr(ScoreSettings(), name) != value, name
        changed = _key(tmp_path, ScoreSettings(**{name: value}))
        assert (changed == base) == (name in SPEED_ONLY), name
    assert _key(tmp_path, texts=("another story",)) != base


def test_store_key_changes_with_the_code_that_computes_roles(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    before = _key(tmp_path)
    monkeypatch.setattr("classifier.track.store.code_identity", lambda: "another role rule")
    assert _key(tmp_path) != before


@pytest.mark.parametrize("module", ["measure/ablation.py", "measure/similarity.py", "measure/importance.py",
                                    "measure/batches.py", "label/roles.py", "thresholds.py"])
def test_a_change_to_any_module_the_pipeline_imports_changes_the_code_identity(module, tmp_path, monkeypatch):
    """A copy of the package with one line added to `module`: another code identity."""
    import classifier.sources as sources
    from classifier.track import store

    copy = tmp_path / "classifier"
    shutil.copytree(sources.PACKAGE, copy, ignore=shutil.ignore_patterns("data", "__pycache__", "assets"))
    monkeypatch.setattr(sources, "PACKAGE", copy)
    before = store.code_identity()
    with open(copy / module, "a") as source:
        source.write("# changed\n")
    assert store.code_identity() != before


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


def test_a_pair_below_the_similarity_floor_is_not_called_matched():
    rng = np.random.default_rng(3)
    a = _frame(["previous-token", "start-of-text"], 1, rng)
    b = _frame(["previous-token", "proper-noun"], 1, rng)  # nothing in a looks like a name head
    matches = match_heads(a, b).set_index("head")
    assert matches.loc[0, "matched_head"] == 0 and matches.loc[0, "similarity"] >= SIMILARITY_FLOOR
    assert np.isnan(matches.loc[1, "matched_head"]) and np.isnan(matches.loc[1, "similarity"])
    assert matches.loc[1, "assigned_similarity"] < SIMILARITY_FLOOR  # the assignment's partner, kept for the report
    everything = match_heads(a, b, floor=-1.0)
    assert everything["matched_head"].notna().all()


# --- checkpoint folders and settling ----------------------------------------------------------------


def _folders(root, names, config=False):
    for name in names:
        (root / name).mkdir(parents=True)
        if config:
            (root / name / "config.json").write_text("{}")
    return root


def test_a_folder_of_checkpoints_is_expanded_in_step_order(tmp_path):
    run = _folders(tmp_path / "my-run" / "checkpoints", ["step-1000", "step-200", "step-0", "notes"], config=True)
    (run / "README.md").write_text("not a checkpoint")
    assert expand_arguments([str(run)]) == [
        Checkpoint(str(run / f"step-{n}"), "my-run", n) for n in (0, 200, 1000)
    ]


def test_trainer_checkpoint_names_and_a_named_run_folder(tmp_path):
    run = _folders(tmp_path / "trainer-out", ["checkpoint-500", "checkpoint-1500", "checkpoint-50"], config=True)
    expanded = expand_arguments([str(run)])
    assert [c.step for c in expanded] == [50, 500, 1500] and {c.series for c in expanded} == {"trainer-out"}


def test_a_list_of_step_folders_is_one_run_in_step_order_and_other_models_keep_their_place(tmp_path):
    run = _folders(tmp_path / "run-a", ["step-30", "step-4"], config=True)
    expanded = expand_arguments(["tiny-stories-1M", str(run / "step-30"), "other", str(run / "step-4")])
    assert [(c.series, c.step) for c in expanded] == [(None, None), ("run-a", 4), ("run-a", 30), (None, None)]
    assert [c.argument for c in expanded][0::3] == ["tiny-stories-1M", "other"]


def test_a_checkpoint_folder_itself_is_not_expanded(tmp_path):
    model = _folders(tmp_path, ["model"], config=True) / "model"
    _folders(model, ["step-1"], config=True)
    assert expand_arguments([str(model)]) == [Checkpoint(str(model), None, None)]


def _roles_over_steps(by_head):
    steps = (0, 100, 200, 300)
    return pd.DataFrame([
        {"step": step, "layer": 0, "head": head, "role": role}
        for head, roles in enumerate(by_head) for step, role in zip(steps, roles)
    ])


def test_settling_is_the_first_step_from_which_the_final_role_holds():
    frame = _roles_over_steps([
        ["unclear", "broad", "previous-token", "previous-token"],  # settles at 200
        ["previous-token", "previous-token", "previous-token", "previous-token"],  # from the start
        ["induction", "unclear", "broad", "induction"],  # left and came back: settles at 300
        ["broad", "unclear", "unclear", "unclear"],
    ])
    settled = settling(frame.sample(frac=1, random_state=0)).set_index("head")  # row order does not matter
    assert settled["final_role"].tolist() == ["previous-token", "previous-token", "induction", "unclear"]
    assert settled["settled_step"].tolist() == [200, 0, 300, 100]
    assert settled["first_step"].tolist() == [200, 0, 0, 100]
    assert settled["changes"].tolist() == [2, 0, 3, 1]


def test_settling_sentences_read_as_a_researcher_writes_them():
    rows = settling(_roles_over_steps([
        ["unclear", "broad", "previous-token", "previous-token"],
        ["previous-token"] * 4,
        ["induction", "unclear", "broad", "induction"],
        ["broad", "unclear", "unclear", "unclear"],
        ["unclear"] * 4,
    ]))
    sentences = [settling_sentence(r, f"0.{r.head}") for r in rows.itertuples()]
    assert sentences == [
        "0.0 becomes a previous-token head by step 200 and stays.",
        "0.1 is a previous-token head from step 0 on.",
        # reached again only at the last checkpoint: no claim that it stays
        "0.2 is an induction head at the last checkpoint (step 300) only; no later checkpoint says whether it stays "
        "(also at step 0; 3 role changes in all).",
        "0.3 has no clear role from step 100 on.",
        "0.4 has no clear role at any checkpoint.",
    ]


# --- rendering from fake runs (no model) ---------------------------------------------------------------


def _fake_model(series, step, roles, *, n_layers=1, explained=None, rng=None):
    rng = rng or np.random.default_rng(0)
    n_heads = len(roles) // n_layers
    index = {"layer": [k // n_heads for k in range(len(roles))], "head": [k % n_heads for k in range(len(roles))]}
    frame = pd.DataFrame({**index, "role": roles, "secondary": [()] * len(roles), "confidence": 0.9})
    if explained is not None:
        frame["explained"] = explained
    metrics = pd.DataFrame({**index, **{m: rng.random(len(roles)) for m in METRICS},
                            **{f"{m}_lift": 1 + rng.random(len(roles)) for m in METRICS}})
    run = SimpleNamespace(roles=frame, metrics=metrics, model=SimpleNamespace(n_layers=n_layers, n_heads=n_heads))
    label = f"{series}/step-{step}" if step is not None else series
    return TrackedModel(label, model_spec(label), "reused", run=run, series=series, step=step, path=f"store/{label}")


def _fake_tracking(models, comparisons=()):
    return Tracking(list(models), {"name": "bundled", "source": "x", "stories": 3}, ScoreSettings(),
                    "consecutive", Path("store"), list(comparisons))


def test_track_csv_is_tidy_with_explained_when_the_rule_gives_it_and_nan_otherwise():
    with_share = _fake_model("run", 0, ["previous-token", "broad"], explained=[0.7, 0.2])
    without = _fake_model("other", None, ["previous-token", "unclear"])
    table = track_table(_fake_tracking([with_share, without]))
    for column in ["model", "step", "layer", "head", "role", "explained", "headline", *METRICS]:
        assert column in table.columns, column
    assert len(table) == 4 and not table.duplicated(["model", "step", "layer", "head"]).any()
    assert table["explained"].tolist()[:2] == [0.7, 0.2] and table["explained"].iloc[2:].isna().all()
    assert table["headline_metric"].tolist()[:2] == ["previous", "entropy"]
    assert table.loc[0, "headline"] == with_share.run.metrics.loc[0, "previous"]
    assert pd.isna(table.loc[2, "step"])


def test_an_unknown_role_is_rendered_by_its_name_not_a_key_error():
    assert role_code("previous-token") == "PREV" and role_code("copy-suppression") == "copy-suppression"
    models = [_fake_model("run", s, ["copy-suppression", "broad"], explained=[0.5, 0.5]) for s in (0, 10)]
    files = track_files(_fake_tracking(models, [_identity(models[0], models[1])]))
    assert "copy-suppression" in files["track.md"].decode() and files["roles-run.png"].startswith(b"\x89PNG")


def _identity(a, b):
    from classifier.track.tracking import compare_models

    return compare_models(a, b)


def test_a_training_run_gets_figures_settling_sentences_and_identity_comparisons():
    steps = (0, 50, 100)
    roles = [["unclear", "broad"], ["previous-token", "broad"], ["previous-token", "start-of-text"]]
    models = [_fake_model("dev", s, r, explained=[0.6, 0.4]) for s, r in zip(steps, roles)]
    comparisons = [_identity(models[i], models[j]) for i, j in comparison_pairs(models, "consecutive")]
    assert [c.kind for c in comparisons] == ["identity", "identity"]
    assert (comparisons[0].matches["matched_head"] == comparisons[0].matches["head"]).all()
    files = track_files(_fake_tracking(models, comparisons), command="head-roles track dev")
    text = files["track.md"].decode()
    assert "## Training run dev" in text and "(roles-dev.png)" in text and "(headline-dev.png)" in text
    assert "- 0 becomes a previous-token head by step 50 and stays" in text
    # first reached at the last checkpoint: no claim that it stays
    assert "- 1 is a start-of-text head at the last checkpoint (step 100) only; no later checkpoint says" in text
    assert "At step 100, 2 heads: 2 with a firm role, 0 in doubt (*), 0 broad, 0 unclear" in text
    assert "Command: `head-roles track dev`" in text
    assert {"roles-dev.png", "headline-dev.png", "track.csv"} <= set(files)


def test_runs_of_different_shapes_are_matched_by_profile_between_their_last_checkpoints():
    run = [_fake_model("a", s, ["broad", "broad"]) for s in (0, 1)]
    lone = _fake_model("b", None, ["broad"] * 4, n_layers=2)
    models = [*run, lone]
    assert comparison_pairs(models, "consecutive") == [(0, 1), (1, 2)]
    kinds = [_identity(models[i], models[j]).kind for i, j in comparison_pairs(models, "consecutive")]
    assert kinds == ["identity", "similarity"]
    # two separate runs of the same layout are not the same heads
    other = _fake_model("c", 5, ["broad", "broad"])
    assert _identity(run[1], other).kind == "similarity"


# --- the command line ---------------------------------------------------------------------------


def test_track_help_has_a_summary_and_an_example():
    result = CliRunner().invoke(main, ["track", "--help"])
    assert result.exit_code == 0
    assert "Compare head roles across checkpoints" in result.output and "Example:" in result.output


@pytest.mark.parametrize("arguments, message", [
    (["a", "a"], "more than once"),
    (["model@"], "MODEL@REVISION"),
    (["a", "--corpus", "stories.csv"], "--corpus"),
    (["./no-such-checkpoint"], "model ./no-such-checkpoint: no such file or directory"),
    (["tiny-stories-1L-21M"], "not in the local Hugging Face cache"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, arguments, message):
    result = CliRunner().invoke(main, ["track", *arguments, "--store", str(tmp_path / "s"), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_one_model_is_nothing_to_compare(tmp_path, small_neo_dir):
    result = CliRunner().invoke(main, ["track", str(small_neo_dir), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "one model, nothing to compare" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_store_goes_under_out_and_a_note_about_the_sample_is_said_once(tmp_path, small_neo_dir, monkeypatch):
    """Two checkpoints whose stories are all cut at --max-tokens: one Note, not one per model; the
    run store in OUT/runs, nothing in the current folder."""
    copy = shutil.copytree(small_neo_dir, tmp_path / "copy")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["track", str(small_neo_dir), str(copy), "--corpus", "bundled", "--stories", "3",
                                       "--max-tokens", "8", "--bootstrap", "0", "--ablation-stories", "0",
                                       "--device", "cpu", "--out", "out", "--no-figures"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "longer than 8 tokens" in line]
    assert len(notes) == 1, result.output
    assert len(list((tmp_path / "out" / "runs").iterdir())) == 2
    assert not (tmp_path / "reports").exists()


def test_steps_spanning_decades_are_on_a_log_axis_and_hold_is_a_share_of_queries(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from classifier.track import figures

    for steps, scale in [([0, 25, 50, 100, 400, 2500], "symlog"), ([0, 10, 20, 30], "linear")]:
        ax = plt.figure().add_subplot()
        figures.step_axis(ax, steps)
        assert ax.get_xscale() == scale, steps
        assert list(ax.get_xticks()) == steps  # ticks at the steps' values, not their ranks
        plt.close("all")
    drawn = []
    monkeypatch.setattr(figures, "_png", lambda fig: drawn.append(fig) or b"")
    rows = pd.DataFrame({"layer": 0, "head": [0, 0, 0], "step": [0, 25, 2500], "hold": [0.1, 0.4, 0.6]})
    figures.headline_steps(rows, pd.DataFrame({"layer": [0], "head": [0], "final_role": ["hold"]}), "run")
    ax = drawn[0].axes[0]
    assert ax.get_ylabel() == "share of queries" and ax.get_xscale() == "symlog"
    assert list(ax.lines[0].get_xdata()) == [0, 25, 2500]


# --- whole tracks over calibration models (slow) ---------------------------------------------------

TRACK_OPTIONS = ["--corpus", "bundled", "--stories", "20", "--bootstrap", "30", "--max-tokens", "96", "--device", "cpu",
                 "--ablation-stories", "2"]  # importance measured, cheaply


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """Three calibration checkpoints and one with damaged weights, tracked once."""
    from classifier.calibrate.planted import build_calibration_model

    root = tmp_path_factory.mktemp("track")
    truths = {
        name: build_calibration_model(root / name, layout=layout, seed=seed)
        for name, layout, seed in [("one-s0", "one-layer", 0), ("one-s1", "one-layer", 1), ("two-s0", "two-layer", 0)]
    }
    # A checkpoint that passes the argument checks but fails to load (damaged weights).
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text((root / "one-s0" / "config.json").read_text())
    (root / "broken" / "model.safetensors").write_bytes(b"not safetensors")
    models = [str(root / name) for name in ["one-s0", "broken", "one-s1", "two-s0"]]
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
    assert "broken" in failed and "cannot load" in failed
    table = pd.read_csv(root / "out" / "track.csv")
    assert table.groupby("model").size().to_dict() == {"one-s0": 16, "one-s1": 16, "two-s0": 16}
    stored = {path.name.rsplit("-", 1)[0] for path in (root / "store").iterdir()}
    assert stored == {"one-s0", "one-s1", "two-s0"}


@pytest.mark.slow
def test_track_md_has_counts_grids_legend_and_matched_heads(calibration):
    text = (calibration["root"] / "out" / "track.md").read_text()
    for heading in ["## Models: role counts", "## Models: role grids", "### two-s0", "### one-s1 vs one-s0",
                    "### two-s0 vs one-s0"]:
        assert heading in text
    assert "`PREV` previous-token" in text and "linear_sum_assignment" in text
    assert "Same head" not in text and "## Training run" not in text  # separate models, not one run


@pytest.mark.slow
def test_a_second_run_is_served_from_the_store(calibration, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a stored run was recomputed")

    monkeypatch.setattr("classifier.load.models.load_model", no_loading)
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
    result = CliRunner().invoke(main, ["track", str(root / "one-s1"), str(root / "two-s0"), *options,
                                       "--store", str(store), "--out", str(root / "out-64")])
    assert result.exit_code == 0, result.output
    assert result.output.count(": computed (") == 2
    added = set(store.iterdir()) - before
    assert len(added) == 2 and before <= set(store.iterdir())
    assert {json.loads((path / "key.json").read_text())["settings"]["max_tokens"] for path in added} == {64}


@pytest.mark.slow
def test_ablation_stories_are_part_of_the_key_so_importance_is_never_stale(calibration):
    """The store holds one-s0 with importance on 2 stories; asked with 0, it scores again (no
    ablation figures); asked with 2 again, it serves the run that has them."""
    root = calibration["root"]
    store, model = root / "store", str(root / "one-s0")

    def tracked(ablation_stories):
        options = [*TRACK_OPTIONS[:-2], "--ablation-stories", str(ablation_stories)]
        result = CliRunner().invoke(main, ["track", model, str(root / "one-s1"), *options, "--store", str(store),
                                           "--out", str(root / f"out-ablation-{ablation_stories}")])
        assert result.exit_code == 0, result.output
        line = next(line for line in result.output.splitlines() if f"{model}: computed (" in line
                    or f"{model}: reused (" in line)
        metrics = pd.read_csv(Path(line.rsplit("(", 1)[1].rstrip(")")) / "metrics.csv")
        return line, metrics

    line, metrics = tracked(0)
    assert ": computed (" in line and metrics["ablation"].isna().all()
    line, metrics = tracked(2)
    assert ": reused (" in line and metrics["ablation"].notna().all()


# --- a training run of calibration checkpoints (slow) -----------------------------------------------


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """step-0 and step-50 are the same planted model, step-100 another shuffle of its roles."""
    from classifier.calibrate.planted import build_calibration_model

    root = tmp_path_factory.mktemp("training")
    folder = root / "cal-run" / "checkpoints"
    truths = {step: build_calibration_model(folder / f"step-{step}", layout="one-layer", seed=seed)
              for step, seed in [(100, 1), (0, 0), (50, 0)]}
    arguments = ["track", str(folder), *TRACK_OPTIONS, "--store", str(root / "store"), "--out", str(root / "out")]
    result = CliRunner().invoke(main, arguments)
    return {"root": root, "truths": truths, "arguments": arguments, "result": result}


@pytest.mark.slow
def test_a_training_folder_is_tracked_head_by_head_in_step_order(training):
    assert training["result"].exit_code == 0, training["result"].output
    root, truths = training["root"], training["truths"]
    table = pd.read_csv(root / "out" / "track.csv")
    assert table.groupby("step").size().to_dict() == {0: 16, 50: 16, 100: 16}
    assert set(table["model"]) == {"cal-run"}
    later = table[table["step"] > 0]
    assert set(later["match"]) == {"identity"} and (later["matched_head"] == later["head"]).all()
    text = (root / "out" / "track.md").read_text()
    assert (root / "out" / "roles-cal-run.png").is_file()
    # Where the planted role is measured at every step, the sentence follows the planted history.
    measured = table.set_index(["step", "head"])["role"]
    checked, count = set(), 0
    for head in range(16):
        planted = {step: _planted(truths[step])[(0, head)] for step in (0, 50, 100)}
        if any(measured[(step, head)] != planted[step] for step in planted) or planted[100] == "unclear":
            continue
        role = planted[100]
        article = "an" if role[0] in "aeiou" else "a"
        # step 100 is the last checkpoint: a role first reached there makes no claim that it stays;
        # a role in doubt carries the grids' star
        expected = (rf"- {head} is {article} {re.escape(role)}\*? head from step 0 on" if planted[0] == role
                    else rf"- {head} is {article} {re.escape(role)}\*? head at the last checkpoint \(step 100\) only")
        assert re.search(expected, text), expected
        checked.add("from step 0" if planted[0] == role else "at the last")
        count += 1
    assert count >= 5 and checked == {"from step 0", "at the last"}


@pytest.mark.slow
def test_a_second_training_track_scores_nothing(training, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a stored run was recomputed")

    monkeypatch.setattr("classifier.load.models.load_model", no_loading)
    root = training["root"]
    before = (root / "out" / "track.csv").read_text()
    result = CliRunner().invoke(main, training["arguments"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": reused (") == 3 and ": computed (" not in result.output
    assert (root / "out" / "track.csv").read_text() == before


@pytest.mark.slow
def test_jobs_score_in_parallel_processes_with_the_same_result(training):
    root = training["root"]
    arguments = [*training["arguments"][:-4], "--store", str(root / "store-jobs"), "--out", str(root / "out-jobs"),
                 "--jobs", "2"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert "in 2 processes" in result.output and result.output.count(": computed (") == 3
    one, two = (pd.read_csv(root / name / "track.csv") for name in ("out", "out-jobs"))
    assert one["role"].tolist() == two["role"].tolist()
    assert np.allclose(one["previous"], two["previous"])


def test_a_role_in_doubt_is_starred_in_the_steps_table_and_the_grid():
    """The report writes a role under DOUBT_CONFIDENCE with a `?`; track's code tables star it,
    over steps as in the final grid (`?` is unclear's code there)."""
    models = [_fake_model("dev", s, ["previous-token", "delimiter"], explained=[0.6, 0.2]) for s in (0, 10)]
    models[-1].run.roles.loc[1, "confidence"] = 0.3  # head 1's final delimiter label is in doubt
    files = track_files(_fake_tracking(models, [_identity(models[0], models[1])]))
    text = files["track.md"].decode()
    steps_table = text.split("### Roles over steps")[1].split("###")[0]
    assert "| 1 | DELIM | DELIM* |" in steps_table and "| 0 | PREV | PREV |" in steps_table
    assert "| 0 | PREV | DELIM* |" in text.split("role grids")[1]  # Layer 0: head 0, head 1
