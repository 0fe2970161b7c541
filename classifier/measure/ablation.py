"""Does a head matter: exact mean-ablation effects and their attribution-patching estimate.

Definition (docs/importance.md): stories are fed as `report` feeds them (BOS + tokens, truncated
alike); the loss is the mean next-token cross-entropy over every position that predicts a next
story token (0..T-2 predicting 1..T-1), token-weighted over the stories. Mean-ablating head
(l, h) replaces its output z (TransformerLens `hook_z`: the attention-weighted sum of values,
before W_O) at every position by the mean of z over every position of every story used, BOS
included. The effect is ablated loss - clean loss, in nats, with a bootstrap interval over stories.

`mean_ablation` is exact: one clean pass (loss and the mean z), then every ablation runs as a
full forward pass. Ablations are batched: a forward pass holds the stories of one length batch
once per ablation ("variant"), and the z hook of each layer overwrites, row by row, the heads
that variant ablates (a boolean mask (variants, L, H): single heads, or a group at once). It is
the (heads + 1)-forward-passes method; each pass reruns the whole model because a later layer
sees the change (for a one-layer model only the embedding and attention are rerun needlessly).

`attribution` is the linear estimate: with g = dLoss/dz from one forward and one backward pass,
the effect of head (l, h) is about sum over positions of (mean_z - z) . g. That is linear in
mean_z, so per story only sum_t g and sum_t z . g are kept and mean_z enters at the end: one
pass over the stories gives every head's estimate. Nothing here loops over heads or tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from classifier.load.models import LoadedModel
from classifier.measure.batches import model_stories, padded_batches, valid_positions
from classifier.measure.scorer import bootstrap_weights, hook_layer

# Logit elements one forward pass may hold (float32: 512 MiB). The unembedding dominates the
# memory of a full forward pass at a 50,257-token vocabulary (16 stories of 512 tokens: 1.6 GB
# of logits, twice that inside the cross-entropy), so rows per pass are capped by this budget.
LOGIT_BUDGET = 2**27


# A forward and backward pass costs about three forward passes: what attribution counts on a bar.
ATTRIBUTION_PASSES = 3


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


def padded_passes(model: LoadedModel, token_lists: list[np.ndarray], batch_size: int, copies: int = 1):
    """Padded batches (`classifier.measure.batches.Batch`) on the model's device, cut so that
    `copies` copies of a batch keep their logits within LOGIT_BUDGET."""
    vocab = model.bridge.cfg.d_vocab
    return padded_batches(token_lists, batch_size, pad_id=model.bos_token_id, device=model.device,
                          row_cost=lambda longest: copies * longest * vocab, budget=LOGIT_BUDGET)


def story_losses(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy of each row over positions 0..T-2 predicting 1..T-1 of its
    own length (padding excluded). logits (R, T, V), tokens (R, T) -> (R,)."""
    rows, length, vocab = logits.shape
    losses = F.cross_entropy(logits[:, :-1].reshape(-1, vocab).float(), tokens[:, 1:].reshape(-1), reduction="none")
    predicted = torch.arange(1, length, device=tokens.device) < lengths[:, None]  # (R, T-1)
    return (losses.view(rows, length - 1) * predicted).sum(1)


def forward_logits(model: LoadedModel, tokens: torch.Tensor, lengths: torch.Tensor, hooks) -> torch.Tensor:
    mask = valid_positions(tokens, lengths).long()
    return model.bridge.run_with_hooks(tokens, fwd_hooks=hooks, attention_mask=mask)


def clean_pass(model: LoadedModel, token_lists: list[np.ndarray], batch_size: int, bar=None):
    """Per-story clean loss sums (N,) and the mean z of every head over every position of every
    story, BOS included, (L, H, d_head) float64."""
    losses = np.zeros(len(token_lists))
    z_sums: dict[int, torch.Tensor] = {}
    positions = 0
    for batch in padded_passes(model, token_lists, batch_size):
        indices, tokens, lengths, valid = batch.indices, batch.tokens, batch.lengths, batch.valid

        def add_z(z: torch.Tensor, hook) -> None:
            layer = hook_layer(hook)
            total = (z.float() * valid[:, :, None, None]).sum((0, 1))  # (H, d_head)
            z_sums[layer] = z_sums.get(layer, 0) + total.cpu().double()  # float64 on the CPU: mps has none

        hooks = [(z_hook_name(layer), add_z) for layer in range(model.n_layers)]
        with torch.inference_mode():
            logits = forward_logits(model, tokens, lengths, hooks)
            losses[indices] = story_losses(logits, tokens, lengths).cpu().numpy()
        positions += int(lengths.sum())
        advance(bar, len(indices))
    mean_z = torch.stack([z_sums[layer] for layer in range(model.n_layers)]) / positions
    return losses, mean_z


def ablated_losses(
    model: LoadedModel, token_lists: list[np.ndarray], variants: np.ndarray, mean_z: torch.Tensor,
    batch_size: int, variants_per_pass: int, bar=None,
) -> np.ndarray:
    """Per-story loss sums with each variant's heads mean-ablated, (N, V)."""
    n_variants = len(variants)
    losses = np.zeros((len(token_lists), n_variants))
    masks = torch.as_tensor(variants, device=model.device)  # (V, L, H)
    replacement = mean_z.float().to(model.device)
    for start in range(0, n_variants, variants_per_pass):
        chosen = masks[start : start + variants_per_pass]  # (v, L, H)
        copies = len(chosen)
        layers = [layer for layer in range(model.n_layers) if bool(chosen[:, layer].any())]
        for batch in padded_passes(model, token_lists, batch_size, copies):
            indices, tokens, lengths = batch.indices, batch.tokens, batch.lengths
            rows = len(indices)

            def overwrite(z: torch.Tensor, hook) -> torch.Tensor:
                layer = hook_layer(hook)
                ablate = chosen[:, layer].repeat_interleave(rows, 0)[:, None, :, None]  # (v*B, 1, H, 1)
                return torch.where(ablate, replacement[layer].to(z.dtype), z)

            hooks = [(z_hook_name(layer), overwrite) for layer in layers]
            repeated, repeated_lengths = tokens.repeat(copies, 1), lengths.repeat(copies)  # variant-major rows
            with torch.inference_mode():
                logits = forward_logits(model, repeated, repeated_lengths, hooks)
                sums = story_losses(logits, repeated, repeated_lengths).view(copies, rows)
            losses[indices, start : start + copies] = sums.T.cpu().numpy()
            advance(bar, copies * rows)
    return losses


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
    ablated = ablated_losses(model, token_lists, variants, mean_z, batch_size, variants_per_pass=model.n_heads, bar=bar)
    counts = np.array([len(t) - 1 for t in token_lists], dtype=np.float64)
    effect, low, high = interval(ablated - clean[:, None], counts, bootstrap=bootstrap, seed=seed)
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
    for batch in padded_passes(model, token_lists, batch_size, copies=3):  # backward holds ~3x logits
        tokens, lengths = batch.tokens, batch.lengths
        valid = batch.valid[:, :, None, None, None]
        seen: dict[int, torch.Tensor] = {}

        def keep(z: torch.Tensor, hook) -> torch.Tensor:
            if not z.requires_grad:  # no parameter before it needs a gradient: z starts the graph
                z = z.detach().requires_grad_(True)
            seen[hook_layer(hook)] = z
            return z

        with torch.enable_grad():
            logits = forward_logits(model, tokens, lengths, [(z_hook_name(layer), keep) for layer in range(n_layers)])
            loss = story_losses(logits, tokens, lengths).sum()
            zs = [seen[layer] for layer in range(n_layers)]
            grads = torch.autograd.grad(loss, zs)
        z = torch.stack([t.detach() for t in zs], 2).float() * valid  # (B, T, L, H, d_head)
        g = torch.stack(grads, 2).float() * valid
        grad_sums.append(g.sum(1).cpu().double())
        z_grads.append((z * g).sum((1, 4)).cpu().double())
        z_total = z_total + z.sum((0, 1)).cpu().double()
        positions += int(lengths.sum())
        advance(bar, ATTRIBUTION_PASSES * len(batch.indices))
        del logits, loss, zs, grads
    mean_z = z_total / positions  # (L, H, d_head)
    per_story = (torch.cat(grad_sums) * mean_z).sum(-1) - torch.cat(z_grads)  # (N, L, H)
    predicted = sum(len(t) - 1 for t in token_lists)
    return (per_story.sum(0) / predicted).numpy()
