"""Does a head matter: exact mean-ablation effects and their attribution-patching estimate.

Definition (docs/importance.md): stories are fed as `report` feeds them (BOS + tokens, truncated
alike); the loss is the mean next-token cross-entropy over every position that predicts a next
story token (0..T-2 predicting 1..T-1), token-weighted over the stories. Mean-ablating head
(l, h) replaces its output z (TransformerLens `hook_z`: the attention-weighted sum of values,
before W_O) at every position by the mean of z over every position of every story used, BOS
included. The effect is ablated loss - clean loss, in nats, with a bootstrap interval over stories.

`mean_ablation` is exact: one clean pass (loss and the mean z), then every ablation runs as a
full forward pass. A forward pass holds the stories of one length batch, and the z hook of each
layer overwrites the heads one ablation ("variant") ablates (a boolean mask (L, H) of the
variants (V, L, H): single heads, or a group at once). Every variant runs over the clean pass's batches (the same
stories in the same padded rows), and its effect is the difference from the clean pass: the two
compute the same operations on the same inputs up to the first ablated layer, so float noise of
differently shaped batches does not enter it. Rows shrink so that a pass keeps FORWARD_COPIES x
rows x heads x T^2 attention weights within PASS_BUDGET. It is the (heads + 1)-forward-passes
method, exactly: each pass reruns the whole model because a later layer sees the change.

Every pass stops where the unembedding starts (its input, the final residual stream), and the
loss is taken over chunks of logits whose copies (LOGIT_COPIES; LOGIT_BACKWARD_COPIES under
autograd) stay within PASS_BUDGET (`story_losses`): a 50,257-token vocabulary never holds
rows x T x vocab logits at once (16 stories of 512 tokens: 1.6 GB).

`attribution` is the linear estimate: with g = dLoss/dz from one forward and one backward pass,
the effect of head (l, h) is about sum over positions of (mean_z - z) . g. That is linear in
mean_z, so per story only sum_t g and sum_t z . g are kept and mean_z enters at the end: one
pass over the stories gives every head's estimate. Nothing here loops over heads or tokens.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from torch.utils.checkpoint import checkpoint

from classifier.load.models import LoadedModel
from classifier.measure.batches import attention_batches, attention_cost, model_stories, valid_positions
from classifier.measure.scorer import bootstrap_weights, hook_layer
from classifier.settings import PASS_BUDGET

# The bridge's hook on the unembedding's input: the final residual stream (R, T, d_model).
UNEMBED_INPUT = "unembed.hook_in"
# Copies of a layer's attention weights a forward and backward pass keeps per layer (scores and
# pattern, saved for the backward pass).
BACKWARD_COPIES = 2
# Attention-sized tensors a forward pass to the loss holds per row at its peak: the block keeps
# its pattern to the end while the MLP's activation makes its temporaries (4 x d_model wide).
# Measured (1L-21M shape, 16 heads, 512 tokens, 2 rows a pass): the pass peaks 0.17-0.20 GB over
# its start, about six 32 MiB tensors, not the two a budget of one copy per row assumes.
FORWARD_COPIES = 2


# A forward and backward pass costs about three forward passes: what attribution counts on a bar.
ATTRIBUTION_PASSES = 3
# Copies of a logits chunk a pass holds at once: the logits and their log-softmax (LOGIT_COPIES),
# and in a backward pass the recomputed two and the gradients of both (LOGIT_BACKWARD_COPIES).
# Chunks are that much smaller, so all of the copies stay within PASS_BUDGET.
LOGIT_COPIES = 2
LOGIT_BACKWARD_COPIES = 4


def advance(bar, passes: int) -> None:
    """Move a progress bar (tqdm, or None for none) on by `passes` story passes."""
    if bar is not None:
        bar.update(passes)


def z_hook_name(layer: int) -> str:
    """The bridge's hook on a layer's z (alias of `attn.o.hook_in`), (B, T, H, d_head)."""
    return f"blocks.{layer}.attn.hook_z"


@dataclass(frozen=True)
class Ablation:
    """Exact mean-ablation effects of `variants` (V, L, H) ablation masks.

    effect (V,) = ablated - clean loss in nats; low, high (V,) its 95% bootstrap interval over
    stories (NaN without resamples); clean_loss the token-weighted clean loss.
    """

    variants: np.ndarray
    effect: np.ndarray
    low: np.ndarray
    high: np.ndarray
    clean_loss: float
    n_stories: int
    n_tokens: int  # predicted tokens


class _ResidualSeen(Exception):
    """Raised at the unembedding's input: the loss is taken from there in chunks."""


def final_residual(model: LoadedModel, tokens: torch.Tensor, lengths: torch.Tensor, hooks) -> torch.Tensor:
    """The residual stream the unembedding reads, (R, T, d_model), of `tokens` run with `hooks`;
    the pass stops there."""
    seen = {}

    def keep(residual: torch.Tensor, hook) -> None:
        seen["residual"] = residual
        raise _ResidualSeen

    mask = valid_positions(tokens, lengths).long()
    try:
        model.bridge.run_with_hooks(tokens, fwd_hooks=[*hooks, (UNEMBED_INPUT, keep)], attention_mask=mask)
    except _ResidualSeen:
        pass
    return seen["residual"]


def _chunk_loss(unembed, residual: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(unembed(residual[None])[0].float(), targets, reduction="none")


def story_losses(unembed, residual: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
                 chunk: int) -> torch.Tensor:
    """Summed next-token cross-entropy of each row over positions 0..T-2 predicting 1..T-1 of its
    own length (padding excluded), the logits `unembed` (a (1, n, d) -> (1, n, V) map) gives of
    `residual` (R, T, d) taken `chunk` positions at a time, (R,). Under autograd each chunk's
    logits are recomputed for the backward pass rather than kept."""
    rows, length = tokens.shape
    predicted = torch.arange(1, length, device=tokens.device) < lengths[:, None]  # (R, T-1)
    inputs, targets = residual[:, :-1][predicted], tokens[:, 1:][predicted]  # (M, d), (M,)
    row = predicted.nonzero()[:, 0]
    losses = torch.zeros(rows, device=residual.device)
    for start in range(0, len(targets), chunk):
        part = slice(start, start + chunk)
        if residual.requires_grad:
            loss = checkpoint(_chunk_loss, unembed, inputs[part], targets[part], use_reentrant=False)
        else:
            loss = _chunk_loss(unembed, inputs[part], targets[part])
        losses = losses.index_add(0, row[part], loss)
    return losses


def model_losses(model: LoadedModel, tokens: torch.Tensor, lengths: torch.Tensor, hooks) -> torch.Tensor:
    """`story_losses` of `tokens` (R, T) run with `hooks`, LOGIT_COPIES of a logits chunk (their
    LOGIT_BACKWARD_COPIES under autograd) within PASS_BUDGET, (R,)."""
    residual = final_residual(model, tokens, lengths, hooks)
    copies = LOGIT_BACKWARD_COPIES if residual.requires_grad else LOGIT_COPIES
    return story_losses(model.bridge.unembed, residual, tokens, lengths,
                        max(1, PASS_BUDGET // (copies * model.bridge.cfg.d_vocab)))


@contextmanager
def frozen(module: torch.nn.Module):
    """`module`'s parameters without gradients inside the block, their flags restored after:
    a backward pass then reaches only the activations asked for, and no graph is kept for the
    weights (a 50,257-token embedding's gradient alone is 0.2 GB)."""
    learning = [parameter for parameter in module.parameters() if parameter.requires_grad]
    for parameter in learning:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in learning:
            parameter.requires_grad_(True)


def clean_pass(model: LoadedModel, token_lists: list[np.ndarray], batch_size: int, bar=None):
    """Per-story clean loss sums (N,) and the mean z of every head over every position of every
    story, BOS included, (L, H, d_head) float64."""
    losses = np.zeros(len(token_lists))
    z_sums: dict[int, torch.Tensor] = {}
    positions = 0
    for batch in attention_batches(model, token_lists, batch_size, FORWARD_COPIES):  # the batches of `ablated_differences`' lone passes
        indices, tokens, lengths, valid = batch.indices, batch.tokens, batch.lengths, batch.valid

        def add_z(z: torch.Tensor, hook) -> None:
            layer = hook_layer(hook)
            total = (z.float() * valid[:, :, None, None]).sum((0, 1))  # (H, d_head)
            z_sums[layer] = z_sums.get(layer, 0) + total.cpu().double()  # float64 on the CPU: mps has none

        hooks = [(z_hook_name(layer), add_z) for layer in range(model.n_layers)]
        with torch.inference_mode():
            losses[indices] = model_losses(model, tokens, lengths, hooks).cpu().numpy()
        positions += int(lengths.sum())
        advance(bar, len(indices))
    mean_z = torch.stack([z_sums[layer] for layer in range(model.n_layers)]) / positions
    return losses, mean_z


def ablated_differences(
    model: LoadedModel, token_lists: list[np.ndarray], variants: np.ndarray, mean_z: torch.Tensor,
    batch_size: int, clean_losses: np.ndarray, bar=None,
) -> np.ndarray:
    """Per-story loss sums with each variant's heads mean-ablated minus the clean sums, (N, V).
    Each variant runs over the batches of `clean_pass` (the same stories in the same padded rows)
    and its difference is taken against that pass's `clean_losses` (N,): both passes compute the
    same operations on the same inputs up to the first ablated layer, so float noise of
    differently shaped batches does not enter the difference."""
    differences = np.zeros((len(token_lists), len(variants)))
    masks = torch.as_tensor(variants, device=model.device)  # (V, L, H)
    replacement = mean_z.float().to(model.device)
    batches = list(attention_batches(model, token_lists, batch_size, FORWARD_COPIES))  # clean_pass's
    for k, mask in enumerate(masks):

        def overwrite(z: torch.Tensor, hook, mask=mask) -> torch.Tensor:
            layer = hook_layer(hook)
            return torch.where(mask[layer][:, None], replacement[layer].to(z.dtype), z)  # z (B, T, H, d_head)

        hooks = [(z_hook_name(layer), overwrite) for layer in range(model.n_layers) if bool(mask[layer].any())]
        for batch in batches:
            with torch.inference_mode():
                sums = model_losses(model, batch.tokens, batch.lengths, hooks)
            differences[batch.indices, k] = sums.cpu().numpy() - clean_losses[batch.indices]
            advance(bar, len(batch.indices))
    return differences


def single_head_variants(n_layers: int, n_heads: int) -> np.ndarray:
    """One ablation mask per head, in (layer, head) order: (L*H, L, H)."""
    return np.eye(n_layers * n_heads, dtype=bool).reshape(n_layers * n_heads, n_layers, n_heads)


def group_variants(groups: list[list[tuple[int, int]]], n_layers: int, n_heads: int) -> np.ndarray:
    """One mask per group of heads, ablating all of its heads at once: (G, L, H)."""
    masks = np.zeros((len(groups), n_layers, n_heads), dtype=bool)
    for k, group in enumerate(groups):
        layer, head = np.array(group).T
        masks[k, layer, head] = True
    return masks


def interval(differences: np.ndarray, counts: np.ndarray, *, bootstrap: int, seed: int):
    """Token-weighted effect (V,) of per-story loss differences (N, V) over predicted-token counts
    (N,), and its 95% bootstrap interval over stories (NaN without resamples)."""
    effect = differences.sum(0) / counts.sum()
    if bootstrap == 0:
        nan = np.full_like(effect, np.nan)
        return effect, nan, nan
    weights = bootstrap_weights(len(counts), bootstrap, seed)  # (R, N)
    resampled = (weights @ differences) / (weights @ counts)[:, None]  # (R, V)
    low, high = np.percentile(resampled, [2.5, 97.5], axis=0)
    return effect, low, high


def mean_ablation(
    model: LoadedModel, texts, variants: np.ndarray, *, max_tokens: int, batch_size: int,
    bootstrap: int, seed: int, bar=None,
) -> Ablation:
    """Exact mean-ablation effect of every variant (V, L, H) on `texts`; `bar` (tqdm) advances by
    one per story pass, (V + 1) per story."""
    return token_mean_ablation(model, model_stories(model, texts, max_tokens).ids, variants, batch_size=batch_size,
                               bootstrap=bootstrap, seed=seed, bar=bar)


def token_mean_ablation(
    model: LoadedModel, token_lists: list[np.ndarray], variants: np.ndarray, *, batch_size: int,
    bootstrap: int, seed: int, bar=None,
) -> Ablation:
    """`mean_ablation` on stories already tokenized (`classifier.measure.batches.model_stories`)."""
    clean, mean_z = clean_pass(model, token_lists, batch_size, bar)
    differences = ablated_differences(model, token_lists, variants, mean_z, batch_size, clean, bar=bar)
    counts = np.array([len(t) - 1 for t in token_lists], dtype=np.float64)
    effect, low, high = interval(differences, counts, bootstrap=bootstrap, seed=seed)
    return Ablation(variants, effect, low, high, float(clean.sum() / counts.sum()), len(token_lists), int(counts.sum()))


def attribution(model: LoadedModel, texts, *, max_tokens: int, batch_size: int, bar=None) -> np.ndarray:
    """Attribution-patching estimate of every head's mean-ablation effect on `texts`, in nats,
    (L, H): sum over positions of (mean_z - z) . dLoss/dz, the loss token-weighted over the texts
    and mean_z taken over every position of them (one forward and one backward pass per batch;
    `bar` advances by ATTRIBUTION_PASSES per story)."""
    return token_attribution(model, model_stories(model, texts, max_tokens).ids, batch_size=batch_size, bar=bar)


def token_attribution(model: LoadedModel, token_lists: list[np.ndarray], *, batch_size: int, bar=None) -> np.ndarray:
    """`attribution` on stories already tokenized (`classifier.measure.batches.model_stories`)."""
    n_layers = model.n_layers
    grad_sums, z_grads = [], []  # per story: sum_t g (L, H, d_head) and sum_t z . g (L, H)
    z_total, positions = 0, 0
    for batch in attention_batches(model, token_lists, batch_size, copies=BACKWARD_COPIES * n_layers):
        tokens, lengths = batch.tokens, batch.lengths
        valid = batch.valid[:, :, None, None, None]
        seen: dict[int, torch.Tensor] = {}

        def keep(z: torch.Tensor, hook) -> torch.Tensor:
            if not z.requires_grad:  # no parameter needs a gradient (frozen): the first z starts the graph
                z = z.detach().requires_grad_(True)
            seen[hook_layer(hook)] = z
            return z

        with torch.enable_grad(), frozen(model.bridge):
            loss = model_losses(model, tokens, lengths, [(z_hook_name(layer), keep) for layer in range(n_layers)]).sum()
            zs = [seen[layer] for layer in range(n_layers)]
            grads = torch.autograd.grad(loss, zs)
        z = torch.stack([t.detach() for t in zs], 2).float() * valid  # (B, T, L, H, d_head)
        g = torch.stack(grads, 2).float() * valid
        grad_sums.append(g.sum(1).cpu().double())
        z_grads.append((z * g).sum((1, 4)).cpu().double())
        z_total = z_total + z.sum((0, 1)).cpu().double()
        positions += int(lengths.sum())
        advance(bar, ATTRIBUTION_PASSES * len(batch.indices))
        del loss, zs, grads
    mean_z = z_total / positions  # (L, H, d_head)
    per_story = (torch.cat(grad_sums) * mean_z).sum(-1) - torch.cat(z_grads)  # (N, L, H)
    predicted = sum(len(t) - 1 for t in token_lists)
    return (per_story.sum(0) / predicted).numpy()
