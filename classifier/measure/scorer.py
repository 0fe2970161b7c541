"""Run a model over stories and reduce its attention to per-head metrics.

`score_stories` drives the forward passes over stories tokenized and batched by
`classifier.measure.batches` (BOS first, cut to the context, length-sorted, right-padded); every layer's pattern is reduced to
per-text sums inside its hook (`classifier.measure.scoring`); the forward pass is stopped once the last
layer's pattern has been seen, so the MLP of the last layer and the unembedding never run.
The corpus-wide pair counts and top-key totals accumulate in `classifier.measure.accumulators`.
`measure` adds the bootstrap over stories and `metrics_frame` makes the tidy table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from classifier.load.models import LoadedModel, pattern_hook_name
from classifier.measure.accumulators import KeyTotals, PairCounts
from classifier.measure.batches import Stories, attention_batches, model_stories
from classifier.registry import PARTS
from classifier.measure.scoring import (
    METRICS,
    OFFSETS,
    BatchStats,
    TextStats,
    Workspace,
    argmax_parts,
    metric_targets,
    budget_query_stats,
    query_stats,
    score_patterns,
)
from classifier.settings import ScoreSettings
from classifier.load.tokens import VocabClasses, sequence_classes, vocab_classes


class _PatternsSeen(Exception):
    """Raised in the last layer's hook: nothing after it is needed."""


def hook_layer(hook) -> int:
    """The layer of a `blocks.<layer>....` hook."""
    return int(hook.name.split(".")[1])


def each_layer_pattern(model: LoadedModel, tokens: torch.Tensor, reduce, attention_mask=None) -> None:
    """Run `tokens` (B, T) in inference mode and call reduce(layer, pattern) on every layer's
    detached pattern (B, H, T, T), in layer order; the pass stops after the last layer's."""
    seen = []

    def on_pattern(pattern: torch.Tensor, hook) -> None:
        seen.append(hook_layer(hook))
        reduce(seen[-1], pattern.detach())
        if len(seen) == model.n_layers:
            raise _PatternsSeen

    hooks = [(pattern_hook_name(layer), on_pattern) for layer in range(model.n_layers)]
    with torch.inference_mode():
        try:
            model.bridge.run_with_hooks(tokens, fwd_hooks=hooks, attention_mask=attention_mask)
        except _PatternsSeen:
            pass
    if len(seen) != model.n_layers:
        raise RuntimeError(f"attention patterns of {model.n_layers - len(seen)} layers were never seen")


def layer_patterns(model: LoadedModel, tokens: torch.Tensor, attention_mask=None) -> list[torch.Tensor]:
    """Every layer's pattern (B, H, T, T) on `tokens` (B, T), in layer order (`each_layer_pattern`)."""
    seen = {}
    each_layer_pattern(model, tokens, seen.__setitem__, attention_mask)
    return [seen[layer] for layer in range(model.n_layers)]


@dataclass(frozen=True)
class Scored:
    """Per-text statistics of a corpus, the typical token pairs of each head and its top keys."""

    stats: TextStats
    pairs: pd.DataFrame  # layer, head, query_id, key_id, part, count, share, weight, top_rate
    n_tokens: int
    top_keys: pd.DataFrame | None = None  # layer, head, rank, key_id, share, lift (KeyTotals.top)


def score_batch(
    model: LoadedModel, tokens: torch.Tensor, lengths: torch.Tensor, vocab: VocabClasses,
    pairs: PairCounts | None = None, keys: KeyTotals | None = None, workspace: Workspace | None = None,
) -> BatchStats:
    """Per-text statistics of one right-padded batch (B, T) whose position 0 is BOS; `workspace`
    (`scoring.Workspace`) holds the pattern-sized temporaries, one for the whole run."""
    classes = sequence_classes(tokens, lengths, vocab)
    targets = metric_targets(tokens, classes)
    layer_sums, layer_offsets, layer_budget, layer_held = {}, {}, {}, {}
    if pairs is not None:
        pairs.add_queries(tokens, classes.valid)
    if keys is not None:
        keys.add_batch(tokens, targets)

    def reduce_pattern(layer: int, pattern: torch.Tensor) -> None:
        layer_sums[layer], layer_offsets[layer], layer_budget[layer], view = score_patterns(
            pattern, targets, with_budget=True, with_keys=True, workspace=workspace,
        )
        layer_held[layer] = view.held
        if keys is not None:
            keys.add_layer(layer, view.mass, tokens)
        if pairs is not None:
            pairs.add(layer, view.argmax, tokens, classes.valid, argmax_parts(view.argmax, targets), view.top)

    each_layer_pattern(model, tokens, reduce_pattern, classes.valid.long())
    counts, uniform, offset_queries = query_stats(targets)
    budget_uniform, budget_queries, budget_available = budget_query_stats(targets)
    layers = range(model.n_layers)
    return BatchStats(
        sums=torch.stack([layer_sums[layer] for layer in layers], dim=1),
        counts=counts, uniform=uniform,
        offset_counts=torch.stack([layer_offsets[layer] for layer in layers], dim=1),
        offset_queries=offset_queries,
        budget=torch.stack([layer_budget[layer] for layer in layers], dim=1),
        budget_uniform=budget_uniform, budget_queries=budget_queries, budget_available=budget_available,
        held=torch.stack([layer_held[layer] for layer in layers], dim=1),
    )


def score_texts(
    model: LoadedModel, texts, settings: ScoreSettings, *, vocab: VocabClasses | None = None,
    progress: bool = True, collect_pairs: bool = True,
) -> Scored:
    """Score every text (`score_stories` on `texts` tokenized as `report` feeds them)."""
    return score_stories(model, model_stories(model, texts, settings.max_tokens), settings, vocab=vocab,
                         progress=progress, collect_pairs=collect_pairs)


def score_stories(
    model: LoadedModel, stories: Stories, settings: ScoreSettings, *, vocab: VocabClasses | None = None,
    progress: bool = True, collect_pairs: bool = True,
) -> Scored:
    """Score every tokenized story; statistics come back in the order of `stories`. `collect_pairs`
    also collects the evidence pairs and the top keys (corpus-wide views, not needed for a prompt)."""
    vocab = vocab if vocab is not None else vocab_classes(model.tokenizer)
    if not len(stories):
        raise ValueError("no texts to score")
    pairs = PairCounts.empty(len(vocab.texts), model.n_heads) if collect_pairs else None
    keys = KeyTotals.empty(model.n_layers, model.n_heads, len(vocab.texts)) if collect_pairs else None
    results, order, workspace = [], [], Workspace()
    bar = tqdm(total=stories.n_tokens, unit="tok", desc=f"scoring {Path(model.name).name}", disable=not progress, leave=False)
    for batch in attention_batches(model, stories.ids, settings.batch_size):  # within the one memory budget
        results.append(score_batch(model, batch.tokens, batch.lengths, vocab, pairs, keys, workspace))
        order.append(batch.indices)
        bar.update(int(batch.lengths.sum()))
    bar.close()
    stats = TextStats.from_batches(results, order=np.concatenate(order))
    columns = ["layer", "head", "query_id", "key_id", "part", "count", "share", "weight", "top_rate"]
    top = pairs.top() if pairs is not None else pd.DataFrame(columns=columns)
    return Scored(stats=stats, pairs=top, n_tokens=stories.n_tokens, top_keys=keys.top() if keys is not None else None)


@dataclass(frozen=True)
class Measurement:
    """Corpus metrics of every head, with bootstrap resamples over stories.

    values (L, H, M) and expected (M,) are the token-weighted metrics and their uniform-attention
    expectations; boot_values (R, L, H, M) and boot_expected (R, M) the same per resample;
    offset_shares (L, H, O) the share of queries whose argmax sits at each offset, and
    boot_offset_shares (R, L, H, O) the same per resample.
    """

    values: np.ndarray
    expected: np.ndarray
    boot_values: np.ndarray
    boot_expected: np.ndarray
    offset_shares: np.ndarray
    boot_offset_shares: np.ndarray
    n_texts: int
    budget: np.ndarray | None = None  # (L, H, P) share of attention in each budget part
    budget_uniform: np.ndarray | None = None  # (P,) the same under uniform attention
    boot_budget: np.ndarray | None = None  # (R, L, H, P)
    boot_budget_uniform: np.ndarray | None = None  # (R, P)
    budget_available: np.ndarray | None = None  # (P,) share of queries for which each part has a key
    boot_budget_available: np.ndarray | None = None  # (R, P)
    held: np.ndarray | None = None  # (L, H, 4) share of all attention on held top keys, uniform's; on adjacent delimiters, uniform's
    boot_held: np.ndarray | None = None  # (R, L, H, 4)


def bootstrap_weights(n_texts: int, resamples: int, seed: int) -> np.ndarray:
    """How often each text is drawn in each resample with replacement. (R, N)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_texts, np.full(n_texts, 1.0 / n_texts), size=resamples).astype(np.float64)


def measure(stats: TextStats, *, bootstrap: int, seed: int) -> Measurement:
    """Corpus metrics and their bootstrap resamples (texts are the independent units)."""
    weights = bootstrap_weights(stats.n_texts, bootstrap, seed)
    values, expected = stats.corpus_metrics()
    boot_values, boot_expected = stats.corpus_metrics(weights)
    budget = {}
    if stats.budget is not None:
        budget["budget"], budget["budget_uniform"], budget["budget_available"] = stats.budget_shares()
        boot = stats.budget_shares(weights)
        budget["boot_budget"], budget["boot_budget_uniform"], budget["boot_budget_available"] = boot
    if stats.held is not None and stats.budget_queries is not None:
        budget["held"], budget["boot_held"] = stats.held_shares(), stats.held_shares(weights)
    return Measurement(
        values, expected, boot_values, boot_expected,
        stats.offset_shares(), stats.offset_shares(weights), stats.n_texts, **budget,
    )


def _interval(boot: np.ndarray, like: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 95% interval (2.5th and 97.5th percentiles) over resamples (R, ...) of `boot`, resamples
    that are NaN left out; NaN shaped like `like` without resamples."""
    if boot is None or boot.shape[0] == 0:
        return np.full_like(like, np.nan), np.full_like(like, np.nan)
    with warnings.catch_warnings():  # a figure NaN in every resample (nothing eligible) is NaN: say so, not warn
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return low, high


def metrics_frame(measurement: Measurement) -> pd.DataFrame:
    """One row per head: layer, head, the metrics, then `_lo`/`_hi` (95% interval) and `_lift`."""
    n_layers, n_heads, _ = measurement.values.shape
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    columns = {"layer": layer.ravel(), "head": head.ravel()}
    flat = measurement.values.reshape(n_layers * n_heads, len(METRICS))
    columns.update({m: flat[:, k] for k, m in enumerate(METRICS)})
    low, high = _interval(measurement.boot_values, measurement.values)
    for k, m in enumerate(METRICS):
        columns[f"{m}_lo"] = low.reshape(-1, len(METRICS))[:, k]
        columns[f"{m}_hi"] = high.reshape(-1, len(METRICS))[:, k]
    with np.errstate(invalid="ignore", divide="ignore"):  # no lift over a zero expectation (hold)
        lift = np.where(measurement.expected > 0, flat / measurement.expected, np.nan)
    columns.update({f"{m}_lift": lift[:, k] for k, m in enumerate(METRICS)})
    if measurement.held is not None:
        # the attention held top keys get: the share of all attention the hold role explains
        columns["hold_attention"] = measurement.held[..., 0].ravel()
        low, high = _interval(measurement.boot_held[..., 0], measurement.held[..., 0])
        columns["hold_attention_lo"], columns["hold_attention_hi"] = low.ravel(), high.ravel()
    shares = measurement.offset_shares.reshape(n_layers * n_heads, -1)
    columns.update({f"argmax_offset_{o}": shares[:, o] for o in OFFSETS})
    columns[f"argmax_offset_gt{OFFSETS[-1]}"] = shares[:, len(OFFSETS)]
    return pd.DataFrame(columns)


def prompt_patterns(model: LoadedModel, text: str, max_tokens: int) -> tuple[list[int], np.ndarray]:
    """Token ids (BOS first) and every layer's full pattern (L, H, T, T) on one prompt."""
    ids = model_stories(model, [text], max_tokens).ids[0].tolist()
    patterns = layer_patterns(model, torch.tensor([ids], device=model.device))
    return ids, np.stack([pattern[0].float().cpu().numpy() for pattern in patterns])


# Repeated random-token sequence for induction: long enough that chance matches are rare.
REPEATED_LENGTH = 50


def repeated_sequence_scores(model: LoadedModel, *, seed: int, vocab: VocabClasses, batch: int = 8) -> np.ndarray:
    """Per-head `induction` on BOS + R + R for random token runs R (not special tokens). (L, H)."""
    generator = torch.Generator().manual_seed(seed)
    ordinary = torch.tensor([k for k in range(len(vocab.texts)) if k != model.bos_token_id and vocab.texts[k].strip()])
    run = ordinary[torch.randint(len(ordinary), (batch, REPEATED_LENGTH), generator=generator)]
    bos = torch.full((batch, 1), model.bos_token_id)
    texts = torch.cat([bos, run, run], dim=1)[:, : min(model.n_ctx, 2 * REPEATED_LENGTH + 1)]
    lengths = torch.full((batch,), texts.shape[1], device=model.device)
    stats = TextStats.from_batches([score_batch(model, texts.to(model.device), lengths, vocab)])
    values, _ = stats.corpus_metrics()
    return values[..., METRICS.index("induction")]


def budget_frame(measurement: Measurement) -> pd.DataFrame:
    """One row per head: each budget part's share of attention (`<part>`), what uniform attention
    gives it (`<part>_uniform`) and its 95% interval over stories (`<part>_lo`, `<part>_hi`)."""
    n_layers, n_heads, _ = measurement.values.shape
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    columns = {"layer": layer.ravel(), "head": head.ravel()}
    if measurement.budget is None:
        return pd.DataFrame(columns)
    flat = measurement.budget.reshape(n_layers * n_heads, len(PARTS))
    low, high = _interval(measurement.boot_budget, measurement.budget)
    for k, part in enumerate(PARTS):
        columns[part] = flat[:, k]
        columns[f"{part}_uniform"] = np.full(len(flat), measurement.budget_uniform[k])
        columns[f"{part}_available"] = np.full(len(flat), measurement.budget_available[k])
        columns[f"{part}_lo"] = low.reshape(-1, len(PARTS))[:, k]
        columns[f"{part}_hi"] = high.reshape(-1, len(PARTS))[:, k]
    return pd.DataFrame(columns)
