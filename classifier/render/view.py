"""A run as both pages show it: what the bootstrap could not measure blanked, the tokens scored
said as they were. report.md (classifier.render.report) and report.html (classifier.render.html)
both read a run through `shown_run`, so a figure is n/a on both or on neither."""

from __future__ import annotations

import dataclasses

import numpy as np

from classifier.thresholds import MIN_STORIES_FOR_BOOTSTRAP


def bootstrapped(stories) -> bool:
    """Whether a bootstrap over this many stories gives intervals, stability and confidence."""
    return isinstance(stories, (int, np.integer)) and stories >= MIN_STORIES_FOR_BOOTSTRAP


def shown_run(run):
    """The run as both pages show it: intervals, stability and confidence are n/a (NaN) where
    too few stories were bootstrapped (the scored sample; for the ablation, the stories it ran
    on), and `unclear` heads carry no confidence. Run directories saved before these rules render
    like new ones."""
    stories = run.corpus.get("stories")
    ablated = min(run.settings.ablation_stories, stories) if isinstance(stories, (int, np.integer)) else None
    roles, metrics, budget = run.roles.copy(), run.metrics.copy(), run.budget.copy()
    roles.loc[roles["role"] == "unclear", "confidence"] = np.nan
    if not bootstrapped(stories):
        roles[[c for c in ("stability", "confidence") if c in roles]] = np.nan
        importance = ("ablation", "group_ablation")
        scored = [c for c in metrics.columns if c.endswith(("_lo", "_hi")) and not c.startswith(importance)]
        metrics[scored] = np.nan
        budget[[c for c in budget.columns if c.endswith(("_lo", "_hi"))]] = np.nan
    if not bootstrapped(ablated):
        metrics[[c for c in metrics.columns if c.startswith(("ablation_", "group_ablation_"))]] = np.nan
    return dataclasses.replace(run, roles=roles, metrics=metrics, budget=budget)


def scored_tokens(run) -> str:
    """The tokens actually scored per story: min(--max-tokens, the model's context), said with both."""
    limit, context = run.settings.max_tokens, run.model.n_ctx
    if context and context < limit:
        return f"up to {context} tokens per story (BOS included): the model's context, under --max-tokens {limit}"
    return f"up to {limit} tokens per story (BOS included): --max-tokens {limit}" + (
        f", within the model's context of {context}" if context else "")
