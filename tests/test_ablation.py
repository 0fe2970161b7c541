"""Mean-ablation effects against an independent reference, and attribution patching against the
exact effect on hand-computable cases.

The reference is a plain loop over heads on the Hugging Face model itself (no TransformerLens):
a forward pre-hook on the attention's output projection (o_proj / out_proj) overwrites the head's
slice of its input with the mean of that slice over every position of every story, each story
run alone (no padding), loss from the model's logits.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.measure.ablation import attribution, group_variants, interval, mean_ablation, single_head_variants
from classifier.measure.ablation import story_losses
from classifier.measure.batches import model_stories

ROOT = Path(__file__).resolve().parents[1]
DEV_4L = ROOT / "devmodels" / "tinystories-4L-dev"


def output_projections(model):
    """Each layer's attention output projection (Llama: o_proj, GPT-Neo: out_proj)."""
    modules = [m for name, m in model.named_modules() if name.endswith(("self_attn.o_proj", "attention.out_proj"))]
    if not modules:
        raise AssertionError("no output projection found")
    return modules


def reference_effects(model, sequences: list[list[int]], n_heads: int, blend: float = 1.0) -> np.ndarray:
    """Ablated - clean loss (L*H,) by the plain loop: one forward per story per head. `blend` < 1
    moves z only that far towards its mean (a finite-difference step)."""
    projections = output_projections(model)
    d_head = projections[0].in_features // n_heads

    def loss_sum(ids):
        logits = model(torch.tensor([ids])).logits[0].double()
        return torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="sum").item()

    sums = [torch.zeros(p.in_features, dtype=torch.float64) for p in projections]
    count = 0

    def add(layer):
        def hook(module, args):
            sums[layer] += args[0][0].double().sum(0)
        return hook

    handles = [p.register_forward_pre_hook(add(k)) for k, p in enumerate(projections)]
    with torch.no_grad():
        clean = sum(loss_sum(ids) for ids in sequences)
    for h in handles:
        h.remove()
    count = sum(len(ids) for ids in sequences)
    means = [s / count for s in sums]
    predicted = sum(len(ids) - 1 for ids in sequences)
    effects = []
    for layer, projection in enumerate(projections):
        for head in range(n_heads):
            part = slice(head * d_head, (head + 1) * d_head)

            def overwrite(module, args, part=part, mean=means[layer]):
                x = args[0].clone()
                x[..., part] += blend * (mean[part].to(x.dtype) - x[..., part])
                return (x,)

            handle = projection.register_forward_pre_hook(overwrite)
            with torch.no_grad():
                ablated = sum(loss_sum(ids) for ids in sequences)
            handle.remove()
            effects.append((ablated - clean) / predicted)
    return np.array(effects)


def loaded(source):
    from classifier.load.models import load_model

    return load_model(source, device="cpu")


def plain_hf_model(source):
    """The checkpoint as a plain Hugging Face model, loaded apart from the bridge."""
    from transformers import AutoModelForCausalLM

    from classifier.load.llama2c import is_llama2c_name, load_llama2c

    if is_llama2c_name(source):
        return load_llama2c(source)[0]
    return AutoModelForCausalLM.from_pretrained(source).eval()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["stories260K", str(DEV_4L)])
def test_exact_ablation_equals_the_plain_hf_loop(source, stories):
    model = loaded(source)
    texts = stories[:6]
    result = mean_ablation(model, texts, single_head_variants(model.n_layers, model.n_heads),
                           max_tokens=96, batch_size=4, bootstrap=0, seed=0)
    sequences = [t.tolist() for t in model_stories(model, texts, 96).ids]
    expected = reference_effects(plain_hf_model(source), sequences, model.n_heads)
    assert np.abs(result.effect - expected).max() < 1e-4
    assert np.abs(expected).max() > 1e-3  # the heads matter, so the comparison can fail


@pytest.mark.slow
def test_exact_ablation_on_a_gpt_neo_equals_the_plain_hf_loop(small_neo_dir, stories):
    model = loaded(str(small_neo_dir))
    texts = stories[:3]
    result = mean_ablation(model, texts, single_head_variants(model.n_layers, model.n_heads),
                           max_tokens=40, batch_size=2, bootstrap=0, seed=0)
    sequences = [t.tolist() for t in model_stories(model, texts, 40).ids]
    expected = reference_effects(plain_hf_model(str(small_neo_dir)), sequences, model.n_heads)
    assert np.abs(result.effect - expected).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("rows", [1, 2])
def test_passes_shrunk_to_a_tiny_budget_give_the_same_effects(stories, monkeypatch, rows):
    """A budget of one or two stories a pass, and logits a few positions at a time: the same
    effects as the default budget's passes (all 6 stories a pass)."""
    import classifier.measure.ablation as ablation
    import classifier.measure.batches as batches

    model = loaded("stories260K")
    texts = stories[:6]
    variants = single_head_variants(model.n_layers, model.n_heads)[:16]
    settings = dict(max_tokens=48, batch_size=6, bootstrap=0, seed=0)
    wide = mean_ablation(model, texts, variants, **settings)
    tiny = ablation.FORWARD_COPIES * rows * model.n_heads * 48**2
    monkeypatch.setattr(ablation, "PASS_BUDGET", tiny)
    monkeypatch.setattr(batches, "PASS_BUDGET", tiny)
    ids = model_stories(model, texts, 48).ids
    assert max(len(b.indices) for b in batches.attention_batches(model, ids, 6, ablation.FORWARD_COPIES)) == rows
    narrow = mean_ablation(model, texts, variants, **settings)
    assert np.abs(narrow.effect - wide.effect).max() < 1e-5 and np.abs(wide.effect).max() > 1e-3
    assert narrow.clean_loss == pytest.approx(wide.clean_loss, abs=1e-6)


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_story_losses_skip_padding_and_the_last_position_in_chunks_of_any_size(chunk):
    """The identity as unembedding: residuals are the logits. Row 0's first prediction is sure
    (loss ~0); every other predicted token is uniform over 3 tokens and costs ln 3."""
    residual = torch.zeros(2, 4, 3)
    residual[0, 0, 1] = 50.0  # position 0 of row 0 predicts token 1, nearly surely: loss ~0
    tokens = torch.tensor([[0, 1, 2, 1], [0, 2, 0, 0]])
    losses = story_losses(lambda x: x, residual, tokens, torch.tensor([4, 2]), chunk)
    assert torch.allclose(losses, torch.tensor([2 * np.log(3), 1 * np.log(3)], dtype=torch.float32), atol=1e-6)


def test_group_masks_ablate_all_their_heads_and_single_masks_one():
    singles = single_head_variants(2, 3)
    assert singles.shape == (6, 2, 3) and singles.sum((1, 2)).tolist() == [1] * 6
    assert singles[4, 1, 1]
    groups = group_variants([[(0, 1), (1, 2)], [(0, 0)]], 2, 3)
    assert [list(a) for a in groups[0].nonzero()] == [[0, 1], [1, 2]]
    assert groups[1].sum() == 1


def test_interval_is_token_weighted_and_brackets_the_effect():
    differences = np.array([[2.0], [0.0]])  # story 0: 2 nats over 1 token; story 1: 0 over 3 tokens
    counts = np.array([1.0, 3.0])
    effect, low, high = interval(differences, counts, bootstrap=500, seed=0)
    assert effect[0] == pytest.approx(0.5)
    assert low[0] == pytest.approx(0.0) and high[0] == pytest.approx(2.0)  # resamples of one story alone
    _, low, _ = interval(differences, counts, bootstrap=0, seed=0)
    assert np.isnan(low).all()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["llama2c", "gpt-neo"])
def test_attribution_is_the_derivative_towards_the_mean_by_finite_differences(kind, stories, request):
    """Attribution is d/de of the loss with z moved e of the way to its mean, at e = 0: the
    reference's step e = 1e-3, divided by e, agrees to its second-order error."""
    source = "stories260K" if kind == "llama2c" else str(request.getfixturevalue("small_neo_dir"))
    model = loaded(source)
    texts = stories[:4]
    estimate = attribution(model, texts, max_tokens=64, batch_size=3).ravel()
    sequences = [t.tolist() for t in model_stories(model, texts, 64).ids]
    step = 1e-3
    expected = reference_effects(plain_hf_model(source), sequences, model.n_heads, blend=step) / step
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(estimate, expected, rtol=0.02, atol=0.02 * np.abs(expected).max())


def test_track_carries_ablation_and_attribution_into_track_csv_and_the_page():
    from test_track_html import fake_model

    from classifier.track.html import page_data
    from classifier.track.report import model_rows

    model = fake_model("lone", None, ["previous-token", "broad", "unclear"], n_layers=1)
    model.run.metrics["ablation"], model.run.metrics["attribution"] = [0.25, 0.0, 0.125], [0.5, -0.25, 0.0]
    rows = model_rows(model)
    assert rows["ablation"].tolist() == [0.25, 0.0, 0.125] and rows["attribution"].tolist() == [0.5, -0.25, 0.0]
    assert rows["ablation_lo"].isna().all()  # not in that run: NaN, not made up
    cells = page_data(rows.assign(compared_with=None, match=None))["models"][0]["cells"][0]
    assert [cell[5:7] for cell in cells] == [[0.25, 0.5], [0.0, -0.25], [0.125, 0.0]]  # then the written role


def test_a_run_directory_without_importance_columns_loads_and_renders_without_those_sections(tmp_path):
    import dataclasses

    from classifier.outputs import write_files
    from classifier.render.html import render_html
    from classifier.render.report import render_report
    from classifier.run import load_run

    new = load_run(ROOT / "reports" / "stories260K-embedded")
    importance = ("ablation", "ablation_lo", "ablation_hi", "attribution", "group_ablation", "group_ablation_lo",
                  "group_ablation_hi", "group", "similar")
    old = dataclasses.replace(new, metrics=new.metrics.drop(columns=list(importance), errors="ignore"),
                              roles=new.roles.drop(columns=list(importance), errors="ignore"))
    write_files(tmp_path, old.files())  # a run folder written before importance existed
    run = load_run(tmp_path)
    assert "ablation" not in run.metrics.columns and "similar" not in run.roles.columns
    text = render_report(run)
    assert "## Roles" in text and "Which heads matter" not in text and "Heads that do the same thing" not in text
    assert "Which heads matter" not in render_html(run)


def test_importance_survives_the_run_directory_and_shows_in_both_reports(tmp_path):
    from classifier.render.html import render_html
    from classifier.render.report import render_report
    from classifier.run import load_run

    run = load_run(ROOT / "reports" / "stories260K-embedded")
    heads = len(run.metrics)
    n_heads = run.model.n_heads
    ablation = np.linspace(0.3, 0.0, heads)  # head 0.0 matters most
    metrics = run.metrics.assign(ablation=ablation, ablation_lo=ablation - 0.01, ablation_hi=ablation + 0.01,
                                 attribution=ablation / 2, group_ablation=np.where(np.arange(heads) < 2, 0.5, np.nan))
    similar = [[{"layer": (k + 1) % heads // n_heads, "head": (k + 1) % heads % n_heads, "similarity": 0.75}] for k in range(heads)]
    roles = run.roles.assign(ablation=ablation, group=np.where(np.arange(heads) < 2, 0.0, np.nan), similar=similar)
    import dataclasses

    run = dataclasses.replace(run, metrics=metrics, roles=roles)
    from classifier.outputs import write_files

    write_files(tmp_path, run.files())
    again = load_run(tmp_path)
    assert again.roles["similar"].tolist() == similar
    text = render_report(again)
    assert "| 1 | 0.0 |" in text and "0.300 (0.290 to 0.310)" in text  # ranked first, with its interval
    assert "0.0 (" in text.split("## Heads that do the same thing")[1]  # group 1 holds heads 0.0 and 0.1
    page = render_html(again)
    assert 'data-head="1"' in page.split('id="importance"')[1]  # a similar head links to its card


@pytest.mark.slow
def test_the_importance_bar_counts_every_story_pass_against_its_total(stories, monkeypatch):
    """One bar for the whole importance step: its total (similarity + clean + one pass per head
    and per group + attribution, per story) is what it counts, so it ends full, not short or over."""
    import classifier.measure.importance as importance
    from classifier.settings import ScoreSettings

    bars = []

    class Recorded(importance.tqdm):
        def close(self):
            if not self.disable:  # tqdm closes again when collected: count the first
                bars.append((self.n, self.total))
            super().close()

    monkeypatch.setattr(importance, "tqdm", Recorded)
    model = loaded("stories260K")
    settings = ScoreSettings(stories=5, max_tokens=48, batch_size=2, bootstrap=0, ablation_stories=3, device="cpu")
    measured = importance.head_importance(model, model_stories(model, stories[:5], 48), settings, progress=True)
    groups = int(measured.roles["group"].nunique())
    assert bars == [(5 + 3 * (1 + 40 + groups + 3), 5 + 3 * (1 + 40 + groups + 3))]


def test_the_report_names_the_stories_the_ablation_ran_on_not_the_option():
    """--ablation-stories 50 on a 2-story sample ablates over those 2: the pages say so."""
    import dataclasses

    from classifier.render.html import render_html
    from classifier.render.report import render_report
    from classifier.run import load_run

    run = load_run(ROOT / "reports" / "stories260K-embedded")  # 300 stories, ablation on the first 20
    assert "over the first 20 stories" in render_report(run)
    small = dataclasses.replace(run, corpus={**run.corpus, "stories": 2},
                                settings=dataclasses.replace(run.settings, ablation_stories=50))
    text, page = render_report(small), render_html(small)
    assert "over the 2 stories" in text and "first 50" not in text
    assert "over the 2 stories" in page and "first 50" not in page


def test_frozen_parameters_get_no_gradient_inside_and_keep_their_flags_after():
    from classifier.measure.ablation import frozen

    module = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    module[0].bias.requires_grad_(False)  # a flag set by the caller stays as it was
    x = torch.ones(2, 3, requires_grad=True)
    with frozen(module):
        assert not any(p.requires_grad for p in module.parameters())
        (grad,) = torch.autograd.grad(module(x).sum(), [x])
    assert grad.shape == (2, 3) and all(p.grad is None for p in module.parameters())
    assert [p.requires_grad for p in module.parameters()] == [True, False, True, True]
