"""Render a `classifier.run.Run` as report.md and write a run directory.

Markdown only: numbers are rounded here (through `classifier.formatting`), figures come from
`classifier.figures`, and files are written through `classifier.outputs` (atomic; nothing of the
user's is touched). `render_run` re-renders a saved run directory without the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.formatting import head_label, markdown_table, percent, times, token
from classifier.registry import ROLE_REGISTRY

# Columns of the role table, beside the label and its evidence: the metrics a reader checks first.
KEY_METRICS = ("current", "previous", "start_of_text", "delimiter", "clause_start", "proper_noun", "entropy")
# Evidence pairs shown per head, and the prompt's strongest arrows shown per head.
PAIRS_SHOWN = 3
PROMPT_ARROWS_SHOWN = 3
# An unclear head's description names a target only when it gets this multiple of uniform
# attention (and >= 5% of attention): below that the "preference" is noise.
UNCLEAR_NOTABLE_LIFT = 2.0

METRIC_PHRASES = {
    "current": "the current token", "previous": "the previous token", "offset2": "two tokens back",
    "local": "the last five tokens", "start_of_text": "the start-of-text token",
    "delimiter": "earlier delimiters", "last_delimiter": "the latest delimiter",
    "clause_start": "the clause start", "proper_noun": "earlier names", "word_start": "the word's first piece",
    "duplicate": "earlier copies of the token", "induction": "tokens after earlier copies",
}


def describe_head(metrics: pd.Series, role: str, secondary, offset: int) -> str:
    """One sentence in the register of a researcher's table, with the numbers behind it."""
    if role == "unclear":
        shares = {m: metrics[m] for m in METRIC_PHRASES if np.isfinite(metrics[f"{m}_lift"]) and metrics[m] >= 0.05}
        best = max(shares, key=lambda m: metrics[f"{m}_lift"], default=None)
        if best is None or metrics[f"{best}_lift"] < UNCLEAR_NOTABLE_LIFT:
            return f"No role passes, and no target gets {UNCLEAR_NOTABLE_LIFT:g}x what uniform attention would give."
        return (
            f"No role passes; leans towards {METRIC_PHRASES[best]} "
            f"({percent(metrics[best])} of attention, {metrics[f'{best}_lift']:.1f}x uniform)."
        )
    entry = ROLE_REGISTRY[role]
    metric = entry.headline
    phrase = entry.phrase.format(offset=offset)
    if role == "positional":
        share = metrics.get(f"argmax_offset_{offset}", np.nan)
        main = f"{phrase} (its argmax for {percent(share)} of queries)"
    elif role == "broad":
        main = f"{phrase} (entropy {metrics['entropy']:.2f} of the maximum, largest weight {metrics['max_weight']:.2f} on average)"
    else:
        low, high = metrics[f"{metric}_lo"], metrics[f"{metric}_hi"]
        interval = f", 95% CI {percent(low)[:-1]}-{percent(high)}" if np.isfinite(low) else ""
        main = f"{phrase} ({percent(metrics[metric])} of attention{interval})"
    extras = []
    for other in list(secondary)[:2]:
        lift = metrics.get(f"{ROLE_REGISTRY[other].headline}_lift", np.nan)
        phrase = ROLE_REGISTRY[other].secondary_phrase
        extras.append(f"{phrase} ({lift:.1f}x uniform)" if np.isfinite(lift) else phrase)
    return main + (f"; also to {' and '.join(extras)}." if extras else ".")


def role_table(run) -> pd.DataFrame:
    """The researcher-style table: one row per head, display strings."""
    n_layers = run.model.n_layers
    merged = run.metrics.merge(run.roles, on=["layer", "head"])
    rows = []
    for _, row in merged.iterrows():
        rows.append({
            "Head": head_label(row["layer"], row["head"], n_layers),
            "Role": row["role"] + (f" (+{', '.join(row['secondary'])})" if row["secondary"] else ""),
            "Description": describe_head(row, row["role"], row["secondary"], int(row["offset"])),
            "Confidence": percent(row["confidence"]),
            **{m: f"{row[m]:.2f}" for m in KEY_METRICS},
        })
    return pd.DataFrame(rows)


def evidence_lines(run) -> list[str]:
    """Per head: its characteristic (query token -> key token) pairs over the corpus."""
    lines = []
    for (layer, head), group in run.pairs.groupby(["layer", "head"]):
        pairs = ", ".join(
            f"{token(r.query)} -> {token(r.key)} ({percent(r.share)})" for r in group.head(PAIRS_SHOWN).itertuples()
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
        prompt_role = roles.loc[(layer, head), "role"]
        corpus_role = corpus_roles.loc[(layer, head), "role"]
        agree = "" if prompt_role == corpus_role else f" (corpus: {corpus_role})"
        lines.append(f"- **{head_label(layer, head, run.model.n_layers)}**: {prompt_role}{agree}; {arrows}")
    return lines


def header_lines(run) -> list[str]:
    model, corpus, settings = run.model, run.corpus, run.settings
    counts = run.roles["role"].value_counts()
    lines = [
        f"# Head roles: {model.name}",
        "",
        f"- Model: `{model.resolved}`" + (f" (revision `{model.revision}`)" if model.revision else "")
        + (f", tokenizer `{model.tokenizer}`" if model.tokenizer else "")
        + f", {model.n_layers} layer(s) x {model.n_heads} heads",
        f"- Corpus: {corpus.get('name')} ({corpus.get('source')}), {corpus.get('stories')} stories, {run.n_tokens:,} tokens",
        f"- Settings: max {settings.max_tokens} tokens per story (BOS included), seed {settings.seed}, "
        f"{settings.bootstrap} bootstrap resamples over stories, batch {settings.batch_size}, device {model.device}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in run.versions.items())}",
    ]
    if run.command:
        lines.append(f"- Command: `{run.command}`")
    lines += [f"- Note: {notice}" for notice in run.notices]
    lines.append(f"- Roles: {', '.join(f'{role} {n}' for role, n in counts.items())}")
    return lines


def render_report(run, figures: dict[str, str] | None = None) -> str:
    """report.md of one run; `figures` maps figure files to their titles."""
    lines = header_lines(run) + [
        "",
        "## Roles",
        "",
        "Confidence is the share of bootstrap resamples over stories that give the same primary role. "
        "Metric columns are token-weighted shares of attention (entropy: of its maximum); definitions in "
        "section 3 of the design notes, thresholds in `classifier/thresholds.py`.",
        "",
        markdown_table(role_table(run)),
        "",
    ]
    if run.appendix:
        lines += [run.appendix, ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{title}]({name})" for name, title in figures.items()] + [""]
    if len(run.pairs):
        lines += [
            "## Evidence: typical (query -> key) pairs",
            "",
            "The (query token -> token it attends to most) pairs seen most often over the corpus, with their share of the head's queries.",
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
    return "\n".join(lines)


def report_files(run, *, figures: bool = True) -> dict[str, bytes]:
    """Every file of a run directory: the run's data, report.md, report.html and the figures."""
    from classifier.figures import FIGURE_TITLES, draw_figures
    from classifier.html import render_html

    drawn = draw_figures(run) if figures else {}
    files = dict(run.files())
    files.update(drawn)
    files["report.md"] = render_report(run, {name: FIGURE_TITLES[name] for name in drawn}).encode()
    files["report.html"] = render_html(run).encode()
    return files


def write_report(run, out_dir: str | Path, *, figures: bool = True) -> Path:
    """Write the run directory (atomically; other files in `out_dir` are left untouched)."""
    from classifier.outputs import write_files

    return write_files(out_dir, report_files(run, figures=figures))


def render_run(run_dir: str | Path, out_dir: str | Path | None = None, *, figures: bool = True) -> Path:
    """Re-render a saved run directory (report.md, figures) without the model."""
    from classifier.run import load_run

    run = load_run(run_dir)
    return write_report(run, out_dir if out_dir is not None else run_dir, figures=figures)


def invocation() -> str:
    """The command line as typed, for the report header."""
    return " ".join(["head-roles", *sys.argv[1:]])
