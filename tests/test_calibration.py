"""Calibration models: every planted head shows its role on real stories, noise heads show none."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every hub lookup would otherwise wait ~23 s

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.calibrate.planted import (
    LAYOUTS,
    ROLE_NAMES,
    CalibrationTruth,
    build_calibration_model,
    load_truth,
)
from classifier.measure.scoring import METRICS
from conftest import REAL_STORIES
from planted_measure import measure_heads, measure_planted

ROOT = Path(__file__).resolve().parents[1]
N_STORIES = 40
SEEDS = (0, 1)
PLANTED_MIN = 0.85
M = {name: k for k, name in enumerate(METRICS)}


def read_stories(path: Path, n: int) -> list[str]:
    """The first `n` stories of a file whose stories are separated by `<|endoftext|>` lines."""
    stories, current = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip() == "<|endoftext|>":
            stories.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    stories.append("\n".join(current).strip())
    return [s for s in stories if s][:n]


@pytest.fixture(scope="module")
def texts():
    return read_stories(REAL_STORIES, N_STORIES)


@pytest.fixture(scope="module")
def models(tmp_path_factory, texts):
    """(layout, seed) -> (directory, returned truth, measured metrics (L, H, M))."""
    built = {}
    for layout in LAYOUTS:
        for seed in SEEDS:
            directory = tmp_path_factory.mktemp(f"calibration-{layout}-{seed}")
            truth = build_calibration_model(directory, layout=layout, seed=seed)
            built[layout, seed] = (directory, truth, measure_heads(directory, texts))
    return built


CASES = [(layout, seed) for layout in LAYOUTS for seed in SEEDS]


@pytest.mark.slow
@pytest.mark.parametrize("layout, seed", CASES)
def test_planted_heads_reach_their_metric(models, layout, seed):
    _, truth, values = models[layout, seed]
    low = {}
    for head in truth.heads:
        row = values[head.layer, head.head]
        if head.role == "broad":
            if not (row[M["entropy"]] >= 0.9 and row[M["max_weight"]] <= 0.1):
                low[head] = (row[M["entropy"]], row[M["max_weight"]])
        elif head.gap is not None:  # soft: checked below
            continue
        elif head.metric is not None and not row[M[head.metric]] >= PLANTED_MIN:
            low[head] = row[M[head.metric]]
    assert not low, f"planted heads below {PLANTED_MIN}: {low}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_soft_heads_hold_a_clear_minority_to_most_growing_with_their_gap(models, seed):
    _, truth, values = models["soft", seed]
    soft = [h for h in truth.heads if h.gap is not None]
    share = {h: values[h.layer, h.head, M[h.metric]] for h in soft}
    assert all(0.1 <= v < 0.98 for v in share.values()), share
    assert min(share.values()) < 0.3 and sum(v < 0.6 for v in share.values()) >= 4  # soft heads, not sharp ones
    for role in {h.role for h in soft}:
        pure = sorted((h.gap, share[h]) for h in soft if h.role == role and h.minor is None)
        assert [v for _, v in pure] == sorted(v for _, v in pure), (role, pure)  # a larger gap, a larger share
    for h in (h for h in soft if h.minor == "start-of-text"):  # mixtures: the sink is the minor part
        assert 0.05 < values[h.layer, h.head, M["start_of_text"]] < share[h], h


@pytest.mark.slow
@pytest.mark.parametrize("layout, seed", CASES)
def test_noise_heads_have_no_role(models, layout, seed):
    _, truth, values = models[layout, seed]
    noise = [h for h in truth.heads if h.role == "unclear"]
    assert len(noise) >= 3 and all(h.metric is None for h in noise)
    for head in noise:
        row = values[head.layer, head.head]
        assert max(row[M["current"]], row[M["previous"]], row[M["start_of_text"]]) < 0.5, head
        assert row[M["hold"]] < 0.05, head  # a random head's favourite keys are no held position
        if head.score_std is None or head.score_std >= 1.5:
            assert row[M["entropy"]] < 0.8, head  # peaked, so not a near-uniform (broad) head either


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_holders_hold_and_random_heads_of_every_spread_do_not(models, seed):
    _, truth, values = models["hold", seed]
    holders = [h for h in truth.heads if h.role == "hold"]
    stds = sorted(h.score_std for h in truth.heads if h.score_std is not None)
    assert len(holders) == 6 and stds[0] == 0.5 and stds[-1] == 4.0
    assert sum(h.minor == "noise" for h in holders) == 2  # two with random-QK scores on top
    for head in holders:  # the latest capitalised word, held until the next one
        assert values[head.layer, head.head, M["hold"]] >= 0.2, head


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_roles_are_shuffled_by_seed(models, layout):
    first, second = (models[layout, seed][1] for seed in SEEDS)
    assert {(h.layer, h.head): h.role for h in first.heads} != {(h.layer, h.head): h.role for h in second.heads}
    assert sorted(h.role for h in first.heads) == sorted(h.role for h in second.heads)
    assert {h.role for h in first.heads} <= set(ROLE_NAMES)
    assert len(first.heads) == first.n_layers * first.n_heads


@pytest.mark.slow
def test_layouts_plant_the_expected_roles(models):
    one = {h.role for h in models["one-layer", 0][1].heads}
    assert {"current-token", "previous-token", "positional", "start-of-text", "delimiter", "broad", "quote-start"} <= one
    two = models["two-layer", 0][1]
    layer_one = {h.role for h in two.heads if h.layer == 1}
    assert {"clause-start", "induction", "proper-noun"} <= layer_one
    assert "previous-token" in {h.role for h in two.heads if h.layer == 0}


@pytest.mark.slow
def test_truth_round_trips(models):
    directory, truth, _ = models["two-layer", 1]
    assert load_truth(directory) == truth
    assert CalibrationTruth.from_json(json.loads(json.dumps(truth.to_json()))) == truth
    record = json.loads((directory / "truth.json").read_text())
    assert (record["layout"], record["seed"], record["n_layers"], record["n_heads"]) == ("two-layer", 1, 2, 8)


@pytest.mark.slow
def test_measure_planted_reports_each_planted_head(models, texts):
    directory, truth, _ = models["one-layer", 0]
    measured = measure_planted(directory, texts[:5])
    assert set(measured) == {(h.layer, h.head) for h in truth.heads if h.metric is not None}
    # NaN only where five stories hold no eligible query (word-start needs 3-piece words).
    assert all(0.0 <= v <= 1.0 or (np.isnan(v) and truth.role_of(*k) == "word-start") for k, v in measured.items())


@pytest.mark.slow
def test_checkpoint_loads_in_transformer_lens_with_the_same_patterns(models, texts):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM

    directory, truth, _ = models["two-layer", 0]
    bridge = TransformerBridge.boot_transformers(str(directory), device="cpu")
    ids = bridge.tokenizer(texts[1], add_special_tokens=False)["input_ids"][:60]
    tokens = torch.tensor([[bridge.tokenizer.bos_token_id] + ids])
    _, cache = bridge.run_with_cache(tokens)
    hf = AutoModelForCausalLM.from_pretrained(str(directory), attn_implementation="eager")
    with torch.inference_mode():
        attentions = hf(tokens, output_attentions=True).attentions
    assert bridge.cfg.n_layers == truth.n_layers and bridge.cfg.n_heads == truth.n_heads
    for layer in range(truth.n_layers):
        torch.testing.assert_close(cache[f"blocks.{layer}.attn.hook_pattern"], attentions[layer], atol=1e-4, rtol=0)


def test_gpt2_tokenizer(gpt2_tokenizer):
    assert gpt2_tokenizer("Hello world", add_special_tokens=False)["input_ids"] == [15496, 995]
    assert gpt2_tokenizer.bos_token_id == gpt2_tokenizer.eos_token_id == gpt2_tokenizer.pad_token_id == 50256


def test_unknown_layout_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="one-layer"):
        build_calibration_model(tmp_path, layout="three-layer")
