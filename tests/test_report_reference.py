"""`head-roles report` end to end against the independent reference of section 3.

A GPT-Neo with large random weights (so its heads attend sharply, not near-uniformly) is scored
by the CLI on real stories; metrics.csv must equal the reference computed from Hugging Face's own
attentions, story by story, to within 1e-4.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from classifier.cli import main
from classifier.load.corpora import load_corpus
from classifier.measure.scoring import METRICS
from conftest import REAL_STORIES, save_gpt_neo
from reference_metrics import corpus_reference, reference_metrics, reference_uniform

pytestmark = pytest.mark.slow
MAX_TOKENS = 64


@pytest.fixture(scope="module")
def sharp_model_dir(tmp_path_factory, gpt2_tokenizer):
    return save_gpt_neo(tmp_path_factory.mktemp("sharp"), gpt2_tokenizer, layers=2, heads=4, width=64, mlp=128,
                        initializer_range=0.15, seed=3)


def test_report_metrics_equal_the_independent_reference(sharp_model_dir, gpt2_tokenizer, tmp_path):
    from transformers import GPTNeoForCausalLM

    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "report", "--model", str(sharp_model_dir), "--corpus", str(REAL_STORIES), "--stories", "12",
        "--max-tokens", str(MAX_TOKENS), "--seed", "5", "--bootstrap", "10", "--no-figures", "--out", str(out),
        "--device", "cpu",
    ])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    everything = load_corpus(str(REAL_STORIES), stories=None, seed=0).texts
    texts = [everything[k] for k in run["corpus"]["sample_indices"]]

    hf = GPTNeoForCausalLM.from_pretrained(sharp_model_dir, attn_implementation="eager").eval()
    per_layer = {0: [], 1: []}
    uniform = []
    for text in texts:
        ids = [50256] + gpt2_tokenizer.encode(text.strip(), add_special_tokens=False)[: MAX_TOKENS - 1]
        token_texts = [gpt2_tokenizer.decode([k]) for k in ids]
        with torch.no_grad():
            attentions = hf(torch.tensor([ids]), output_attentions=True).attentions
        for layer in per_layer:
            per_layer[layer].append(reference_metrics(attentions[layer][0].double().numpy(), ids, token_texts,
                                                      glue_is_continuation=False))
        uniform.append(reference_uniform(ids, token_texts, glue_is_continuation=False))

    metrics = pd.read_csv(out / "metrics.csv")
    for layer, results in per_layer.items():
        expected = corpus_reference(results)
        rows = metrics[metrics["layer"] == layer].sort_values("head")
        for metric in METRICS:
            np.testing.assert_allclose(rows[metric], expected[metric], atol=1e-4, rtol=0, err_msg=f"layer {layer} {metric}")
            counts = sum(r[metric][1] for r in results)
            uniform_mean = sum(u[metric] for u in uniform) / counts
            # no lift over a zero uniform expectation (hold: uniform attention has no top key)
            lift = expected[metric] / uniform_mean if uniform_mean > 0 else np.full_like(expected[metric], np.nan)
            np.testing.assert_allclose(rows[f"{metric}_lift"], lift, rtol=1e-3, atol=1e-4, err_msg=f"lift of {metric}")
