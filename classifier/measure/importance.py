"""Whether each head matters and which heads are alike, as per-head tables for a run.

Combines `classifier.measure.ablation` (exact mean-ablation and attribution patching, both on the
first `ablation_stories` stories) and `classifier.measure.similarity` (similarity on the first
SIMILARITY_STORIES stories, groups by clustering). Attribution could run on every scored story,
but with a 50,257-token unembedding its forward and backward pass cost about two forward passes
to the logits per story, about seven times what scoring a story costs (scoring stops before the
unembedding), so it runs on the ablation stories: beside the exact value, on the same sample. A group's combined
ablation (all its heads at once) is one more ablated forward pass per group over the ablation
stories, so it is measured whenever ablation is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from classifier.load.models import LoadedModel
from classifier.measure.ablation import (
    ATTRIBUTION_PASSES, group_variants, single_head_variants, token_attribution, token_mean_ablation,
)
from classifier.measure.batches import Stories
from classifier.measure.similarity import head_groups, head_similarity, similar_heads
from classifier.settings import ScoreSettings

# Stories the similarity is measured on (the first ones of the sample): every pair of heads is
# compared on every (query, key) entry, (L*H)^2 / 2 pairs times ~T^2 / 2 entries per story (40
# heads on 300-token stories: 3.5e7 minima per story). 32 stories give ~8,000 queries, so a mean
# overlap in [0, 1] has a standard error of a few thousandths, far below the group threshold's scale.
SIMILARITY_STORIES = 32


@dataclass(frozen=True)
class Importance:
    """Per head (layer, head order): `metrics` (classifier.run.IMPORTANCE_COLUMNS, and `clean_loss`:
    the clean loss in nats per predicted token on the ablation stories, the same on every row) and `roles`
    (ablation, attribution, group, similar) frames, each with layer and head; NaN where a figure
    was not measured; `group` is NaN for a head in no group."""

    metrics: pd.DataFrame
    roles: pd.DataFrame


def head_importance(model: LoadedModel, stories: Stories, settings: ScoreSettings, *, progress: bool = False) -> Importance:
    """Ablation (with intervals), attribution, similar heads and groups of every head, on the first
    stories of `stories` (tokenized as scored); with `progress`, one bar counting story passes (a
    forward pass over one story)."""
    n_layers, n_heads = model.n_layers, model.n_heads
    layer, head = np.divmod(np.arange(n_layers * n_heads), n_heads)
    token_lists = stories.ids[: max(SIMILARITY_STORIES, settings.ablation_stories)]
    compared = token_lists[:SIMILARITY_STORIES]
    ablated = token_lists[: settings.ablation_stories]
    # Passes the groups add are known after the similarity: the total grows then.
    passes = len(compared) + len(ablated) * (1 + n_layers * n_heads + ATTRIBUTION_PASSES)
    bar = tqdm(total=passes, unit="pass", desc=f"importance {Path(model.name).name}", disable=not progress, leave=False)
    similarity = head_similarity(model, compared, settings.batch_size, bar)
    groups = head_groups(similarity)
    in_group = groups >= 0
    members = [list(zip(layer[groups == g], head[groups == g])) for g in range(groups.max() + 1)]
    nan = np.full(n_layers * n_heads, np.nan)
    single, single_lo, single_hi = nan, nan, nan
    group, group_lo, group_hi = nan, nan, nan
    estimate, clean_loss = nan, nan
    if settings.ablation_stories:
        bar.total += len(ablated) * len(members)
        bar.refresh()
        variants = np.concatenate([single_head_variants(n_layers, n_heads), group_variants(members, n_layers, n_heads)])
        result = token_mean_ablation(model, ablated, variants, batch_size=settings.batch_size,
                                     bootstrap=settings.bootstrap, seed=settings.seed, bar=bar)
        count = n_layers * n_heads
        clean_loss = np.full(count, result.clean_loss)  # the same for every head: the report's baseline
        single, single_lo, single_hi = result.effect[:count], result.low[:count], result.high[:count]
        group, group_lo, group_hi = (np.where(in_group, values[count:][groups], np.nan) if len(members) else nan
                                     for values in (result.effect, result.low, result.high))
        estimate = token_attribution(model, ablated, batch_size=settings.batch_size, bar=bar).ravel()
    bar.close()
    ids = {"layer": layer, "head": head}
    metrics = pd.DataFrame({**ids, "ablation": single, "ablation_lo": single_lo, "ablation_hi": single_hi,
                            "attribution": estimate, "group_ablation": group, "group_ablation_lo": group_lo,
                            "group_ablation_hi": group_hi, "clean_loss": clean_loss})
    roles = pd.DataFrame({**ids, "ablation": single, "attribution": estimate,
                          "group": np.where(in_group, groups, np.nan), "similar": similar_heads(similarity, n_heads)})
    return Importance(metrics, roles)
