"""Scoring during training (classifier.track.watch): a tiny Trainer run with the callback writes
the track `head-roles track` writes over its saved checkpoints; training is unchanged by it; a
resumed run appends; a plain loop's watcher leaves the model, its mode and the random states as
they were.

The Trainer runs train a two-layer GPT-Neo (dropout on, so that a disturbed random state or a
model left in eval mode would change the weights) for a few dozen steps on real stories.
"""

import random

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from classifier.cli import main
from tests.conftest import REAL_STORIES

SETTINGS = dict(stories=str(REAL_STORIES), n_stories=12, max_tokens=64, bootstrap=20, seed=0)
CLI_SETTINGS = ["--corpus", str(REAL_STORIES), "--stories", "12", "--max-tokens", "64", "--bootstrap", "20",
                "--seed", "0", "--ablation-stories", "0", "--device", "cpu", "--no-figures"]


@pytest.fixture(scope="module")
def tokenizer():
    """The GPT-2 BPE tokenizer read from its files (TransformerLens wraps a model only with a
    tokenizer that knows where it came from: `name_or_path`)."""
    from devmodels.train import load_tokenizer

    return load_tokenizer("gpt-neo")


def tiny_neo(seed: int = 0):
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    config = GPTNeoConfig(
        vocab_size=50257, max_position_embeddings=128, hidden_size=64, num_layers=2, num_heads=4,
        attention_types=[[["global"], 2]], intermediate_size=128, bos_token_id=50256, eos_token_id=50256,
        embed_dropout=0.1, attention_dropout=0.1, resid_dropout=0.1,
    )
    torch.manual_seed(seed)
    return GPTNeoForCausalLM(config)


def story_dataset(tokenizer, n: int = 48, length: int = 32) -> list[dict]:
    from classifier.load.corpora import load_corpus

    texts = load_corpus(str(REAL_STORIES), stories=n, seed=1).texts
    rows = []
    for text in texts:
        ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]][:length]
        ids += [tokenizer.eos_token_id] * (length - len(ids))
        rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(ids)})
    return rows


def trainer(model, tokenizer, output_dir, steps: int, callbacks=(), save: bool = True):
    from transformers import Trainer, TrainingArguments, default_data_collator

    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=4, learning_rate=3e-3,
        save_strategy="steps" if save else "no", save_steps=10, logging_steps=10, report_to=[], use_cpu=True,
        seed=0, disable_tqdm=True, dataloader_num_workers=0,
    )
    return Trainer(model=model, args=args, train_dataset=story_dataset(tokenizer), processing_class=tokenizer,
                   data_collator=default_data_collator, callbacks=list(callbacks))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizer):
    """30 steps with the callback (saves at 10, 20, 30), `track` over those checkpoints, 30 steps
    without the callback, then a resume from checkpoint-20 to step 40 with a new callback."""
    from classifier.track import HeadRolesCallback

    root = tmp_path_factory.mktemp("watch")
    watched = trainer(tiny_neo(), tokenizer, root / "run", 30, [HeadRolesCallback(root / "watch", **SETTINGS)])
    watched.train()
    logged = [entry for entry in watched.state.log_history if "head_roles_seconds" in entry]
    before_resume = pd.read_csv(root / "watch" / "track.csv")
    offline = CliRunner().invoke(main, ["track", str(root / "run"), *CLI_SETTINGS, "--store", str(root / "store"),
                                        "--out", str(root / "offline")])
    plain = trainer(tiny_neo(), tokenizer, root / "plain", 30, save=False)
    plain.train()
    resumed = trainer(tiny_neo(), tokenizer, root / "run", 40, [HeadRolesCallback(root / "watch", **SETTINGS)])
    resumed.train(resume_from_checkpoint=str(root / "run" / "checkpoint-20"))
    return {"root": root, "watched": watched.model, "plain": plain.model, "offline": offline, "logged": logged,
            "before_resume": before_resume}


@pytest.mark.slow
def test_the_callbacks_track_equals_track_over_the_saved_checkpoints(trained):
    assert trained["offline"].exit_code == 0, trained["offline"].output
    watched, offline = trained["before_resume"], pd.read_csv(trained["root"] / "offline" / "track.csv")
    assert watched.groupby("step").size().to_dict() == {10: 8, 20: 8, 30: 8}
    assert watched.shape == offline.shape and list(watched.columns) == list(offline.columns)
    numeric = offline.select_dtypes("number").columns
    assert {"previous", "current", "confidence", "similarity", "explained"} <= set(numeric)
    np.testing.assert_allclose(watched[numeric].to_numpy(float), offline[numeric].to_numpy(float), rtol=0, atol=1e-6)
    # Names too: the run is the Trainer's output folder, its checkpoints `checkpoint-N`.
    words = offline.columns.difference(numeric).drop("argument")
    pd.testing.assert_frame_equal(watched[words].fillna(""), offline[words].fillna(""))


@pytest.mark.slow
def test_weights_are_bit_identical_with_and_without_the_callback(trained):
    watched, plain = trained["watched"].state_dict(), trained["plain"].state_dict()
    assert list(watched) == list(plain)  # the Trainer's model keeps its own modules
    changed = [name for name in plain if not torch.equal(watched[name], plain[name])]
    assert changed == []
    assert not torch.equal(plain["transformer.h.0.attn.attention.q_proj.weight"],
                           tiny_neo().state_dict()["transformer.h.0.attn.attention.q_proj.weight"])  # it trained


@pytest.mark.slow
def test_the_log_line_carries_the_scoring_time_and_its_ratio(trained):
    assert [entry["step"] for entry in trained["logged"]] == [10, 20, 30]
    for entry in trained["logged"]:
        assert entry["head_roles_seconds"] > 0 and entry["head_roles_ratio"] > 0


@pytest.mark.slow
def test_a_resumed_run_appends_without_duplicating_or_losing_a_step(trained):
    root, before = trained["root"], trained["before_resume"]
    after = pd.read_csv(root / "watch" / "track.csv")
    assert after.groupby("step").size().to_dict() == {10: 8, 20: 8, 30: 8, 40: 8}
    assert not after.duplicated(["step", "layer", "head"]).any()
    kept = after[after["step"] <= 20].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before[before["step"] <= 20].reset_index(drop=True))
    assert sorted(p.name for p in (root / "watch" / "runs").iterdir()) == ["step-10", "step-20", "step-30", "step-40"]
    assert "40" in (root / "watch" / "track.md").read_text().split("### Roles over steps")[1]


@pytest.mark.slow
def test_a_track_folder_scored_with_other_settings_is_refused(trained):
    from classifier.errors import InputError
    from classifier.track import RoleWatcher

    for changed in [dict(n_stories=10), dict(bootstrap=30), dict(seed=1)]:
        with pytest.raises(InputError, match="scored with other stories or settings"):
            RoleWatcher(trained["root"] / "watch", **{**SETTINGS, **changed})
    assert sorted(RoleWatcher(trained["root"] / "watch", **SETTINGS).runs) == [10, 20, 30, 40]


@pytest.mark.slow
def test_a_step_leaves_model_mode_weights_and_random_states_as_they_were(tmp_path, tokenizer):
    from classifier.track import RoleWatcher

    model = tiny_neo()
    model.train()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    watcher = RoleWatcher(tmp_path / "w", **SETTINGS, tokenizer=tokenizer, name="loop")
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    watcher.step(model, 0)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]
    assert all(m.training for m in model.modules())
    after = model.state_dict()
    assert list(after) == list(weights) and all(torch.equal(after[k], weights[k]) for k in weights)
    assert {"track.csv", "track.md", "track.html"} <= {p.name for p in (tmp_path / "w").iterdir()}
    table = pd.read_csv(tmp_path / "w" / "track.csv")
    assert set(table["checkpoint"]) == {"loop/step-0"} and len(table) == 8


def test_bad_arguments_and_a_users_file_under_an_output_name_are_refused_before_training(tmp_path):
    from classifier.errors import InputError
    from classifier.track import RoleWatcher
    from classifier.track.watch import RUN_FOLDER

    assert RUN_FOLDER.match("step-12") and not RUN_FOLDER.match("checkpoint-12")
    with pytest.raises(InputError, match="every=0"):
        from classifier.track import HeadRolesCallback

        HeadRolesCallback(tmp_path / "w", every=0, **SETTINGS)
    with pytest.raises(InputError, match="step=-1"):
        RoleWatcher(tmp_path / "v", **SETTINGS).step(object(), -1)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "track.csv").write_text("mine\n")
    with pytest.raises(InputError, match="track.csv"):
        RoleWatcher(tmp_path / "w", **SETTINGS)
