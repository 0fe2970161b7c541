"""Render an `Analysis` as a run directory: report.md, metrics.csv, roles.json, run.json, figures.

This is the only place that rounds numbers or draws. The directory is written under a temporary
name next to the destination and renamed when complete, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.roles import HEADLINE_METRIC
from classifier.scoring import METRICS

PACKAGES = ("head-roles", "torch", "transformer-lens", "transformers", "datasets", "numpy", "pandas", "scikit-learn")
# Columns of the role table, beside role and confidence: the metrics a reader checks first.
KEY_METRICS = ("current", "previous", "start_of_text", "delimiter", "clause_start", "proper_noun", "entropy")
# Evidence pairs shown per head, and the prompt's strongest arrows shown per head.
PAIRS_SHOWN = 3
PROMPT_ARROWS_SHOWN = 3
# An unclear head's description names a target only when it gets this multiple of uniform
# attention (and >= 5% of attention): below that the "preference" is noise.
UNCLEAR_NOTABLE_LIFT = 2.0

ROLE_PHRASES = {
    "current-token": "Attends to the current token",
    "previous-token": "Attends to the previous token",
    "positional": "Attends to the token {offset} back",
    "start-of-text": "Parks its attention on the start-of-text token",
    "delimiter": "Attends to earlier delimiters (commas, full stops, speech marks)",
    "clause-start": "Attends to the start of the current clause",
    "proper-noun": "Attends to earlier names",
    "local": "Spreads attention over the last few tokens",
    "word-start": "From a word's later pieces, attends to its first piece",
    "broad": "Spreads attention broadly",
    "duplicate-token": "Attends to earlier copies of the current token",
    "induction": "Attends to the token after an earlier copy of the current token",
}
SECONDARY_PHRASES = {
    "current-token": "the current token", "previous-token": "the previous token",
    "positional": "a fixed offset", "start-of-text": "the start-of-text token",
    "delimiter": "commas and full stops", "clause-start": "the start of the clause",
    "proper-noun": "names", "local": "the last few tokens", "word-start": "the word's first piece",
    "broad": "everything", "duplicate-token": "earlier copies of the token",
    "induction": "tokens after earlier copies",
}
METRIC_PHRASES = {
    "current": "the current token", "previous": "the previous token", "offset2": "two tokens back",
    "local": "the last five tokens", "start_of_text": "the start-of-text token",
    "delimiter": "earlier delimiters", "last_delimiter": "the latest delimiter",
    "clause_start": "the clause start", "proper_noun": "earlier names", "word_start": "the word's first piece",
    "duplicate": "earlier copies of the token", "induction": "tokens after earlier copies",
}


def head_label(layer: int, head: int, n_layers: int) -> str:
    """`6` for one-layer models, `L.H` otherwise (as researchers' tables write them)."""
    return str(head) if n_layers == 1 else f"{layer}.{head}"


def _percent(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.0f}%"


def describe_head(metrics: pd.Series, role: str, secondary, offset: int) -> str:
    """One sentence in the register of a researcher's table, with the numbers behind it."""
    if role == "unclear":
        shares = {m: metrics[m] for m in METRIC_PHRASES if np.isfinite(metrics[f"{m}_lift"]) and metrics[m] >= 0.05}
        best = max(shares, key=lambda m: metrics[f"{m}_lift"], default=None)
        if best is None or metrics[f"{best}_lift"] < UNCLEAR_NOTABLE_LIFT:
            return f"No role passes, and no target gets {UNCLEAR_NOTABLE_LIFT:g}x what uniform attention would give."
        return (
            f"No role passes; leans towards {METRIC_PHRASES[best]} "
            f"({_percent(metrics[best])} of attention, {metrics[f'{best}_lift']:.1f}x uniform)."
        )
    metric = HEADLINE_METRIC[role]
    phrase = ROLE_PHRASES[role].format(offset=offset)
    if role == "positional":
        share = metrics.get(f"argmax_offset_{offset}", np.nan)
        main = f"{phrase} (its argmax for {_percent(share)} of queries)"
    elif role == "broad":
        main = f"{phrase} (entropy {metrics['entropy']:.2f} of the maximum, largest weight {metrics['max_weight']:.2f} on average)"
    else:
        low, high = metrics[f"{metric}_lo"], metrics[f"{metric}_hi"]
        interval = f", 95% CI {_percent(low)[:-1]}-{_percent(high)}" if np.isfinite(low) else ""
        main = f"{phrase} ({_percent(metrics[metric])} of attention{interval})"
    extras = []
    for other in list(secondary)[:2]:
        other_metric = HEADLINE_METRIC[other]
        lift = metrics.get(f"{other_metric}_lift", np.nan)
        extras.append(f"{SECONDARY_PHRASES[other]} ({lift:.1f}x uniform)" if np.isfinite(lift) else SECONDARY_PHRASES[other])
    return main + (f"; also to {' and '.join(extras)}." if extras else ".")


def role_table(analysis) -> pd.DataFrame:
    """The researcher-style table: one row per head, display strings."""
    n_layers = analysis.model["n_layers"]
    merged = analysis.metrics.merge(analysis.roles.frame, on=["layer", "head"])
    rows = []
    for _, row in merged.iterrows():
        rows.append({
            "Head": head_label(row["layer"], row["head"], n_layers),
            "Role": row["role"] + (f" (+{', '.join(row['secondary'])})" if row["secondary"] else ""),
            "Description": describe_head(row, row["role"], row["secondary"], row["offset"]),
            "Confidence": _percent(row["confidence"]),
            **{m: f"{row[m]:.2f}" for m in KEY_METRICS},
        })
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table; `|` in cells is escaped."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", "\\n") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def _token(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", "\\n") + "`"


def evidence_lines(analysis) -> list[str]:
    """Per head: the most typical (query token -> argmax key token) pairs over the corpus."""
    n_layers = analysis.model["n_layers"]
    lines = []
    for (layer, head), group in analysis.pairs.groupby(["layer", "head"]):
        pairs = ", ".join(
            f"{_token(r.query)} -> {_token(r.key)} ({_percent(r.share)})" for r in group.head(PAIRS_SHOWN).itertuples()
        )
        lines.append(f"- **{head_label(layer, head, n_layers)}**: {pairs}")
    return lines


def prompt_lines(analysis) -> list[str]:
    """Per head: its role on the prompt alone and its strongest non-BOS arrows there."""
    view = analysis.prompt
    n_layers = analysis.model["n_layers"]
    tokens = view.tokens
    roles = view.roles.frame.set_index(["layer", "head"])
    corpus_roles = analysis.roles.frame.set_index(["layer", "head"])
    lines = []
    for layer, head in np.ndindex(view.patterns.shape[:2]):
        pattern = view.patterns[layer, head].copy()
        pattern[:, 0] = 0  # BOS arrows say little; show where the rest of the attention goes
        pattern[0] = 0
        strongest = np.argsort(-pattern.max(1))[:PROMPT_ARROWS_SHOWN]
        arrows = ", ".join(
            f"{_token(tokens[i])} -> {_token(tokens[pattern[i].argmax()])} ({pattern[i].max():.2f})" for i in strongest
        )
        prompt_role = roles.loc[(layer, head), "role"]
        corpus_role = corpus_roles.loc[(layer, head), "role"]
        agree = "" if prompt_role == corpus_role else f" (corpus: {corpus_role})"
        lines.append(f"- **{head_label(layer, head, n_layers)}**: {prompt_role}{agree}; {arrows}")
    return lines


def render_report(
    analysis, command: str | None = None, figures: dict[str, str] | None = None, extra: str | None = None
) -> str:
    """report.md of one analysis; `extra` is Markdown placed after the role table."""
    model, corpus, settings = analysis.model, analysis.corpus, analysis.settings
    counts = analysis.roles.frame["role"].value_counts()
    lines = [
        f"# Head roles: {model['name']}",
        "",
        f"- Model: `{model['resolved']}`" + (f" (revision `{model['revision']}`)" if model["revision"] else "")
        + f", {model['n_layers']} layer(s) x {model['n_heads']} heads",
        f"- Corpus: {corpus.name} ({corpus.source}), {len(corpus.texts)} stories, {analysis.n_tokens:,} tokens",
        f"- Settings: max {settings.max_tokens} tokens per story (BOS included), seed {settings.seed}, "
        f"{settings.bootstrap} bootstrap resamples over stories, batch {settings.batch_size}, device {model['device']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in package_versions().items())}",
    ]
    if command:
        lines.append(f"- Command: `{command}`")
    if corpus.notice:
        lines.append(f"- Note: {corpus.notice}")
    lines += [
        f"- Roles: {', '.join(f'{role} {n}' for role, n in counts.items())}",
        "",
        "## Roles",
        "",
        "Confidence is the share of bootstrap resamples over stories that give the same primary role. "
        "Metric columns are token-weighted shares of attention (entropy: of its maximum); definitions in "
        "section 3 of the design notes, thresholds in `classifier/thresholds.py`.",
        "",
        markdown_table(role_table(analysis)),
        "",
    ]
    if extra:
        lines += [extra, ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{title}]({name})" for name, title in figures.items()] + [""]
    lines += [
        "## Evidence: typical (query -> key) pairs",
        "",
        "The (query token -> token it attends to most) pairs seen most often over the corpus, with their share of the head's queries.",
        "",
        *evidence_lines(analysis),
        "",
        "## On the prompt hand-written tables are based on",
        "",
        f"Prompt: {_token(analysis.prompt.text)}. Role measured on this prompt alone, then its strongest arrows (BOS left out).",
        "",
        *prompt_lines(analysis),
        "",
    ]
    return "\n".join(lines)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_record(analysis, command: str | None) -> dict:
    """run.json: model, revision, corpus, sample, settings, package versions."""
    return {
        "model": analysis.model,
        "corpus": analysis.corpus.describe(),
        "settings": analysis.settings.to_json(),
        "tokens": analysis.n_tokens,
        "prompt": analysis.prompt.text,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
    }


def draw_figures(analysis, directory: Path) -> dict[str, str]:
    """lift-heatmap.png (heads x metrics) and prompt-patterns.png (each head on the prompt)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers = analysis.model["n_layers"]
    labels = [head_label(r.layer, r.head, n_layers) for r in analysis.metrics.itertuples()]
    metrics = [m for m in METRICS if m not in ("entropy", "max_weight", "distance")]
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.log2(analysis.metrics[[f"{m}_lift" for m in metrics]].to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(1 + 0.55 * len(metrics), 1.5 + 0.28 * len(labels)))
    image = ax.imshow(np.clip(lift, -4, 6), cmap="RdBu_r", vmin=-6, vmax=6, aspect="auto")
    ax.set_xticks(range(len(metrics)), metrics, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylabel("head")
    ax.set_title(f"{analysis.model['name']}: lift over uniform attention (log2)")
    fig.colorbar(image, ax=ax, label="log2 lift")
    fig.tight_layout()
    fig.savefig(directory / "lift-heatmap.png", dpi=110)
    plt.close(fig)

    view = analysis.prompt
    n_heads = view.patterns.shape[1]
    columns = min(n_heads, 8 if n_layers > 1 else 4)
    rows = n_layers * int(np.ceil(n_heads / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    roles = analysis.roles.frame.set_index(["layer", "head"])["role"]
    for layer, head in np.ndindex(view.patterns.shape[:2]):
        ax = axes.ravel()[layer * columns * int(np.ceil(n_heads / columns)) + head]
        ax.imshow(view.patterns[layer, head], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{head_label(layer, head, n_layers)}: {roles[(layer, head)]}", fontsize=8)
    fig.suptitle(f"Attention on the prompt ({len(view.tokens)} tokens, rows = queries)")
    fig.tight_layout()
    fig.savefig(directory / "prompt-patterns.png", dpi=90)
    plt.close(fig)
    return {"lift-heatmap.png": "Lift over uniform, heads x metrics", "prompt-patterns.png": "Each head on the prompt"}


def write_run(
    analysis, out_dir: str | Path, *, command: str | None = None, figures: bool = True, extra: str | None = None
) -> Path:
    """Write the run directory atomically (temporary sibling, then rename); returns its path."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
    try:
        drawn = draw_figures(analysis, staging) if figures else {}
        (staging / "report.md").write_text(render_report(analysis, command, drawn, extra))
        analysis.metrics.to_csv(staging / "metrics.csv", index=False)
        (staging / "roles.json").write_text(json.dumps(analysis.roles.to_records(), indent=1) + "\n")
        (staging / "run.json").write_text(json.dumps(run_record(analysis, command), indent=1) + "\n")
        analysis.prompt.metrics.to_csv(staging / "prompt-metrics.csv", index=False)
        (staging / "prompt-roles.json").write_text(json.dumps(analysis.prompt.roles.to_records(), indent=1) + "\n")
        analysis.pairs.to_csv(staging / "pairs.csv", index=False)
        _replace_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def _replace_directory(staging: Path, out_dir: Path) -> None:
    """Move `staging` to `out_dir`, replacing an earlier run there only once the new one is whole."""
    if out_dir.exists():
        old = out_dir.with_name(f".old-{out_dir.name}-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)


def invocation() -> str:
    """The command line as typed, for the report header."""
    return " ".join(["head-roles", *sys.argv[1:]])
