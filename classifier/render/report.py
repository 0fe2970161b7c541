"""Render a `classifier.run.Run` as report.md and write a run directory.

Markdown only: numbers are rounded here (through `classifier.formatting`), figures come from
`classifier.render.figures`, and files are written through `classifier.outputs` (atomic; nothing of the
user's is touched). `render_run` re-renders a saved run directory without the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.label.describe import (
    confidence_text, describe_head, key_kind, role_label, secondary_label, top_keys_text,
)
from classifier.formatting import head_label, markdown_table, percent, role_counts, times, token
from classifier.render.definitions import BUDGET, DEFINITIONS, METRICS_DOC
from classifier.render.importance import ablation_cell, importance_lines
from classifier.render.view import scored_tokens, shown_run

# Evidence pairs shown per head, and the prompt's strongest arrows shown per head.
PAIRS_SHOWN = 3
PROMPT_ARROWS_SHOWN = 3
def definitions_lines() -> list[str]:
    """report.md's Definitions section (the same text report.html carries)."""
    return (["## Definitions", "", BUDGET, ""] + [f"- **{term}**: {text}" for term, text in DEFINITIONS]
            + ["", f"Formulas for every metric, budget part, role and column: `{METRICS_DOC}` in the head-roles "
               "project; rules in `classifier/label/roles.py`, thresholds (with the figures behind them) in "
               "`classifier/thresholds.py`.", ""])


def role_table(run) -> pd.DataFrame:
    """The researcher-style table: one row per head, display strings."""
    n_layers = run.model.n_layers
    metrics = run.metrics.set_index(["layer", "head"])
    budget = run.budget.set_index(["layer", "head"]) if len(run.budget.columns) > 2 else None
    rows = []
    for _, label in run.roles.iterrows():
        key = (label["layer"], label["head"])
        rows.append({
            "Head": head_label(label["layer"], label["head"], n_layers),
            "Role": role_label(label) + (f" (+{secondary_label(label)})" if label["secondary"] else ""),
            "Description": describe_head(label, metrics.loc[key], budget.loc[key] if budget is not None else None),
            "Explained": percent(label.get("explained", np.nan)),
            "Lift": times(label.get("lift", np.nan)),
            "Margin": percent(label.get("margin", np.nan)),
            "Sink": percent(label.get("sink", np.nan)),
            "Hold": percent(metrics.loc[key].get("hold", np.nan)),
            "Top keys": top_keys_text(label),
            "Stability": percent(label.get("stability", np.nan)),
            "Confidence": confidence_text(label),
            **ablation_cell(metrics.loc[key]),
        })
    return pd.DataFrame(rows)


def pair_numbers(pair) -> str:
    """What a reader can use about one pair: how often the key is the query token's top key and
    its mean weight there (runs saved before those were kept: the pair's share of the head's queries)."""
    rate, weight = getattr(pair, "top_rate", np.nan), getattr(pair, "weight", np.nan)
    if pd.notna(rate) and pd.notna(weight):
        return f"top key of {percent(rate)} of {token(pair.query)} queries, weight {percent(weight)} there"
    return percent(pair.share)


def evidence_lines(run) -> list[str]:
    """Per head: its characteristic (query token -> key token) pairs over the corpus."""
    lines = []
    for (layer, head), group in run.pairs.groupby(["layer", "head"]):
        pairs = ", ".join(
            f"{token(r.query)} -> {token(r.key)} ({'; '.join(filter(None, [key_kind(getattr(r, 'part', None)), pair_numbers(r)]))})"
            for r in group.head(PAIRS_SHOWN).itertuples()
        )
        lines.append(f"- **{head_label(layer, head, run.model.n_layers)}**: {pairs}")
    return lines


def prompt_lines(run) -> list[str]:
    """Per head: its role on the prompt alone and its strongest non-BOS arrows there."""
    view = run.prompt
    tokens = view.tokens
    roles = run.prompt_roles.set_index(["layer", "head"])
    corpus_roles = run.roles.set_index(["layer", "head"])
    lines = []
    for layer, head in np.ndindex(view.patterns.shape[:2]):
        pattern = view.patterns[layer, head].astype(np.float32)
        pattern[:, 0] = 0  # BOS arrows say little; show where the rest of the attention goes
        pattern[0] = 0
        strongest = np.argsort(-pattern.max(1), kind="stable")[:PROMPT_ARROWS_SHOWN]
        arrows = ", ".join(
            f"{token(tokens[i])} -> {token(tokens[pattern[i].argmax()])} ({pattern[i].max():.2f})" for i in strongest
        )
        prompt = roles.loc[(layer, head)]
        corpus = corpus_roles.loc[(layer, head)]
        prompt_role = role_label(prompt)
        agree = "" if prompt["role"] == corpus["role"] else f" (corpus: {role_label(corpus)})"
        lines.append(f"- **{head_label(layer, head, run.model.n_layers)}**: {prompt_role}{agree}; {arrows}")
    return lines


def header_lines(run) -> list[str]:
    model, corpus, settings = run.model, run.corpus, run.settings
    lines = [
        f"# Head roles: {model.name}",
        "",
        f"- Model: `{model.resolved}`" + (f" (revision `{model.revision}`)" if model.revision else "")
        + (f", tokenizer `{model.tokenizer}`" if model.tokenizer else "")
        + f", {model.n_layers} layer(s) x {model.n_heads} heads",
        f"- Corpus: {corpus.get('name')} ({corpus.get('source')}), {corpus.get('stories')} stories, {run.n_tokens:,} tokens",
        f"- Settings: {scored_tokens(run)}; seed {settings.seed}, "
        f"{settings.bootstrap} bootstrap resamples over stories, batch {settings.batch_size}, device {model.device}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in run.versions.items())}",
    ]
    if run.command:
        lines.append(f"- Command: `{run.command}`")
    lines += [f"- Note: {notice}" for notice in run.notices]
    lines.append(f"- Roles: {role_counts(run.roles)}")
    return lines


def render_report(run, figures: dict[str, str] | None = None) -> str:
    """report.md of one run; `figures` maps figure files to their titles."""
    run = shown_run(run)
    lines = header_lines(run) + [
        "",
        "## Roles",
        "",
        f"{BUDGET} Every column is defined under Definitions at the end of this page; formulas in `{METRICS_DOC}`.",
        "",
        markdown_table(role_table(run)),
        "",
    ]
    if run.appendix:
        lines += [run.appendix, ""]
    lines += importance_lines(run)
    if figures:
        lines += ["## Figures", ""] + [f"![{title}]({name})" for name, title in figures.items()] + [""]
    if len(run.pairs):
        lines += [
            "## Evidence: characteristic (query -> key) pairs",
            "",
            "The (query token -> token it attends to most) pairs seen most often over the corpus, leaving out queries "
            "whose argmax is BOS (every head has those) and, except for heads whose role names it, the token itself: "
            "first those whose key is of the kind the head's role names, with the key's kind, the share of the query "
            "token's occurrences for which this key is its top key, and the key's mean weight (share of the query's "
            "attention) there.",
            "",
            *evidence_lines(run),
            "",
        ]
    if run.prompt.patterns.size and len(run.prompt_roles):
        lines += [
            "## On the prompt hand-written tables are based on",
            "",
            f"Prompt: {token(run.prompt.text)}. Role measured on this prompt alone, then its strongest arrows (BOS left out).",
            "",
            *prompt_lines(run),
            "",
        ]
    lines += definitions_lines()
    return "\n".join(lines)


def report_files(run, *, figures: bool = True) -> dict[str, bytes]:
    """Every file of a run directory: the run's data, report.md, report.html and the figures."""
    from classifier.render.figures import FIGURE_TITLES, draw_figures
    from classifier.render.html import render_html

    drawn = draw_figures(run) if figures else {}
    files = dict(run.files())
    files.update(drawn)
    files["report.md"] = render_report(run, {name: FIGURE_TITLES[name] for name in drawn}).encode()
    files["report.html"] = render_html(run).encode()
    return files


def write_report(run, out_dir: str | Path, *, figures: bool = True, force: bool = False) -> Path:
    """Write the run directory (atomically; other files in `out_dir` are left untouched; a file of
    the user's under an output's name stops it unless `force`)."""
    from classifier.outputs import write_files

    return write_files(out_dir, report_files(run, figures=figures), force=force)


def render_run(run_dir: str | Path, out_dir: str | Path | None = None, *, figures: bool = True,
               force: bool = False) -> Path:
    """Re-render a saved run directory (report.md, report.html, figures) without the model."""
    from classifier.run import load_run

    run = load_run(run_dir)
    target = out_dir if out_dir is not None else run_dir
    # The run's own data files are rewritten unchanged; in place they are ours even without a manifest.
    return write_report(run, target, figures=figures, force=force or out_dir is None)


def invocation() -> str:
    """The command line as typed, for the report header."""
    return " ".join(["head-roles", *sys.argv[1:]])
