"""The development models: training writes loadable full-vocabulary checkpoints; labels are valid."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from classifier.label.roles import ROLES
from devmodels.evidence import target_masks, token_classes
from devmodels.train import MODELS, SEPARATOR, train

ROOT = Path(__file__).resolve().parents[1]
LABELS = sorted((ROOT / "devmodels" / "labels").glob("*.json"))


def three_step_run(tmp_path):
    """A tiny 1L configuration (3 steps, checkpoints at 0 and 3) on 30 real stories."""
    from devmodels.train import read_stories

    stories = tmp_path / "stories.txt"
    stories.write_text("".join(f"{s}\n{SEPARATOR}\n" for s in read_stories()[:30]))
    config = replace(MODELS["tinystories-1L-dev"], n_heads=4, d_model=16, d_mlp=32, n_ctx=32,
                     batch_size=2, steps=3, held_out=5, checkpoints=(0,), sample_tokens=5)
    return config, stories


@pytest.mark.slow
def test_a_few_training_steps_save_a_full_vocabulary_checkpoint_that_loads(tmp_path):
    from classifier.load.models import load_model

    config, stories = three_step_run(tmp_path)
    result = train(config, tmp_path / "model", stories, verbose=False, watch=False)

    assert result["checkpoints"] == ["checkpoints/step-000000", "checkpoints/step-000003"]
    assert result["data"]["used_token_ids"] < result["data"]["vocab_size"] == 50257
    loaded = load_model(str(tmp_path / "model"), device="cpu")
    assert (loaded.n_layers, loaded.n_heads, len(loaded.tokenizer), loaded.bos_token_id) == (1, 4, 50257, 50256)
    assert loaded.bridge.cfg.d_vocab == 50257


@pytest.mark.slow
def test_training_writes_the_track_of_its_checkpoints_and_is_unchanged_by_it(tmp_path):
    import pandas as pd
    from safetensors.torch import load_file

    config, stories = three_step_run(tmp_path)
    watched = train(config, tmp_path / "watched", stories, verbose=False)
    train(config, tmp_path / "plain", stories, verbose=False, watch=False)

    table = pd.read_csv(tmp_path / "watched" / "track" / "track.csv")
    assert table.groupby("step").size().to_dict() == {0: 4, 3: 4}
    assert set(table["checkpoint"]) == {"tinystories-1L-dev/step-0", "tinystories-1L-dev/step-3"}
    assert (tmp_path / "watched" / "track" / "track.html").is_file() and watched["watch_seconds"] > 0
    assert not (tmp_path / "plain" / "track").exists()
    for checkpoint in ["checkpoints/step-000003", "."]:
        a, b = (load_file(tmp_path / run / checkpoint / "model.safetensors") for run in ("watched", "plain"))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), checkpoint


def test_token_classes_follow_the_design_definitions():
    texts = ["", "Once", " upon", ",", " and", " Lu", "cy", " said", " Tom"]
    cls = token_classes(texts)
    assert cls["delim"].tolist() == [False, False, False, True, False, False, False, False, False]
    assert cls["word_start"].tolist() == [False, True, True, True, True, True, False, True, True]
    assert cls["boundary"][[0, 3, 4]].all() and not cls["boundary"][5]
    assert cls["name"].tolist() == [False] * 5 + [True, False, False, True]


def test_target_masks_find_the_word_start_and_the_token_after_an_earlier_copy():
    import numpy as np

    ids = np.array([0, 5, 6, 7, 5, 6])
    masks = target_masks(ids, ["", " a", "b", "c", " a", "b"])
    assert masks["word_start"][3].nonzero()[0].tolist() == [1]  # "c" continues " a" (two back)
    assert masks["induction"][4].nonzero()[0].tolist() == [2]  # second " a" -> "b" after the first
    assert masks["duplicate"][5].nonzero()[0].tolist() == [2]


@pytest.mark.parametrize("path", LABELS, ids=[p.stem for p in LABELS])
def test_labels_name_valid_roles_of_heads_that_exist(path):
    labels = json.loads(path.read_text())
    table = (path.parent / f"{path.stem}.md").read_text()
    seen = set()
    for entry in labels["heads"]:
        layer, head = entry["layer"], entry["head"]
        assert 0 <= layer < labels["n_layers"] and 0 <= head < labels["n_heads"]
        assert (layer, head) not in seen
        seen.add((layer, head))
        bad = [r for r in entry["acceptable"] + entry.get("forbidden", []) if r not in ROLES]
        assert entry["acceptable"] and not bad, f"{path.name} {layer}.{head}: unknown roles {bad}"
        assert not set(entry["acceptable"]) & set(entry.get("forbidden", []))
    for layer in range(labels["n_layers"]):  # every head has a row in the table
        for head in range(labels["n_heads"]):
            assert f"| {layer}.{head} |" in table


def test_committed_4l_model_matches_its_labels_and_its_tokenizer_check():
    model_dir = ROOT / "devmodels" / "tinystories-4L-dev"
    config = json.loads((model_dir / "config.json").read_text())
    labels = json.loads((ROOT / "devmodels" / "labels" / "tinystories-4L-dev.json").read_text())
    assert (config["num_hidden_layers"], config["num_attention_heads"]) == (labels["n_layers"], labels["n_heads"])
    check = json.loads((model_dir / "training.json").read_text())["tokenizer_check"]
    assert check["identical"] == check["stories"] and check["bos_id"] == 1 and check["bos_prepended"]
    steps = sorted(p.name for p in (model_dir / "checkpoints").glob("step-*"))
    assert len(steps) >= 8 and steps[0] == "step-000000"


def test_agreement_counts_acceptable_and_forbidden_primary_roles():
    import pandas as pd

    from devmodels.agreement import compare, render

    labels = {"model": "m", "n_layers": 2, "heads": [
        {"layer": 0, "head": 0, "acceptable": ["previous-token", "local"], "forbidden": ["start-of-text"]},
        {"layer": 0, "head": 1, "acceptable": ["delimiter"], "forbidden": ["broad"]},
        {"layer": 1, "head": 0, "acceptable": ["start-of-text"], "forbidden": []},
    ]}
    roles = pd.DataFrame({"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1],
                          "role": ["local", "broad", "unclear", "delimiter"]})
    result = compare(labels, roles)
    assert (result.agreed, result.forbidden, len(result.heads)) == (1, 1, 3)
    assert result.heads["agrees"].tolist() == [True, False, False]
    text = render([result], "python -m devmodels.agreement")
    assert "| m | 3 | 1 | 33% | 1 |" in text and "FORBIDDEN" in text and "| 1.0 | unclear |" in text


def test_agreement_without_a_trained_model_stops_with_one_line_naming_make_devmodels(tmp_path, monkeypatch):
    import devmodels.agreement as agreement

    labels = {"model": "m", "checkpoint": "devmodels/build/not-trained-here", "n_layers": 1, "heads": []}
    (tmp_path / "m.json").write_text(json.dumps(labels))
    monkeypatch.setattr(agreement, "LABELS_DIR", tmp_path)
    out = tmp_path / "agreement.md"
    with pytest.raises(SystemExit) as stopped:
        agreement.main(["--out", str(out)])
    message = str(stopped.value.code)
    assert "devmodels/build/not-trained-here is missing" in message and "make devmodels" in message
    assert "\n" not in message and not out.exists()


@pytest.mark.slow
def test_training_from_the_command_line_says_only_its_own_lines(tmp_path):
    """`make devmodels` (and a clone's first `make agreement`, `make track-shapes`) runs this: no
    offline hub-kernel lines, no other library's bars at every save, and the watcher's note about
    the stories once, as one `Note:` line, not once per checkpoint with a source line."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "devmodels.train", "--model", "tinystories-1L-dev", "--steps", "1",
         "--out", str(tmp_path / "1L")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "publisher trust check" not in done.stderr and "Writing model shards" not in done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("Note: --max-tokens 256")]
    assert len(notes) == 1 and len(done.stderr.splitlines()) == 1, done.stderr


def test_interrupted_training_says_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    import devmodels.train as training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", interrupted)
    out = tmp_path / "1L"
    try:
        with pytest.raises(SystemExit) as stopped:
            training.main(["--model", "tinystories-1L-dev", "--out", str(out)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C during training ends in a traceback")
    assert stopped.value.code == 130
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [f"interrupted: {out} is half-written (no training.json); the next `make devmodels` trains it again"]
