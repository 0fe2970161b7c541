"""report.html: one self-contained page to read every head of a `classifier.run.Run` in a browser.

The page holds everything it shows: the run's numbers and the saved attention patterns (prompt
and a few corpus stories) as JSON, the style and a small plain script (`classifier/assets/`),
inlined; nothing is fetched from the network, so it opens from disk offline. Patterns are
stored compactly: per head only the lower triangle (a query never sees later keys), quantised
to uint8 (weight * 255, a step of 0.4%), base64 (about 2.2 MB for 40 heads on a 52-token
prompt and three 96-token stories).

Static parts (header, lift heatmap, each role's evidence) are written here as HTML; the
interactive parts (head overview, head card, token view, pattern, sortable role table) are drawn
by the script from the JSON. This module only renders: it reads a Run and returns a string.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.formatting import head_label, number, percent, role_counts, times, written_role
from classifier.render.definitions import BUDGET, DEFINITIONS, METRICS_DOC
from classifier.render.figures import SHARE_METRICS, lift_metrics
from classifier.render.importance import ablation_cell, card_extras, importance_html
from classifier.render.view import scored_tokens, shown_run
from classifier.thresholds import HOLD_MIN_QUERIES
from classifier.registry import METRICS, PARTS, ROLE_COLORS, ROLE_REGISTRY, ROLES  # noqa: F401 (ROLE_COLORS re-exported)

ASSETS = Path(__file__).resolve().parent / "assets"
# Role measures the role rule may add to the roles frame (issue 11); shown when present. Titles
# are report.md's, so that a column means one thing on both pages.
ROLE_MEASURES = (("explained", "Explained", "pct"), ("lift", "Lift", "times"),
                 ("margin", "Margin", "pct"), ("sink", "Sink", "pct"), ("stability", "Stability", "pct"))
PAIRS_SHOWN = 5
# Heatmap colour range in log2 lift (as figures.lift_heatmap): 1/16x .. 64x.
HEAT_LOW, HEAT_HIGH = -4.0, 6.0
PART_COLORS = dict(zip(PARTS, (
    "#9aa0aa", "#1f77b4", "#d62728", "#8c564b", "#2ca02c", "#17becf", "#e377c2",
    "#98df8a", "#393b79", "#843c39", "#ff7f0e", "#dadde3",
)))


def _number(value) -> float | None:
    """A JSON-ready number, rounded for size; None for a missing one."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, 4) if math.isfinite(value) else None


def encode_patterns(patterns: np.ndarray) -> str:
    """Every head's lower triangle, heads in (layer, head) order, as base64 of uint8 weight * 255."""
    n_layers, n_heads, T, _ = patterns.shape
    rows, cols = np.tril_indices(T)  # row-major: row i holds A[i, 0..i]
    triangle = patterns.astype(np.float32)[:, :, rows, cols]  # (L, H, T(T+1)/2)
    quantised = np.rint(np.clip(triangle, 0.0, 1.0) * 255).astype(np.uint8)
    return base64.b64encode(quantised.tobytes()).decode("ascii")


def _headline(role: str, metrics: pd.Series) -> tuple[str | None, float, float]:
    """The role's headline metric, its share and its lift (NaN when the role has none)."""
    metric = ROLE_REGISTRY[role].headline if role in ROLE_REGISTRY else None
    if metric is None or metric not in metrics:
        return None, math.nan, math.nan
    return metric, float(metrics[metric]), float(metrics.get(f"{metric}_lift", math.nan))


def _explained(role_row: pd.Series, metrics: pd.Series) -> float:
    """The label's share of attention: `explained` when the rule gives it, else the headline share."""
    if "explained" in role_row and pd.notna(role_row["explained"]):
        return float(role_row["explained"])
    if role_row["role"] in ("broad", "positional", "unclear"):
        return math.nan  # their headline is not a share of attention
    return _headline(role_row["role"], metrics)[1]


def _facts(role_row: pd.Series, metrics: pd.Series) -> list[tuple[str, str]]:
    """The head card's headline numbers: (value, what it is)."""
    facts = []
    if "explained" in role_row and pd.notna(role_row.get("explained")):
        facts.append((percent(role_row["explained"]), "of attention the label explains"))
        if "lift" in role_row and pd.notna(role_row["lift"]):
            facts.append((times(role_row["lift"]), "over uniform attention"))
        if "margin" in role_row and pd.notna(role_row["margin"]):
            facts.append((percent(role_row["margin"]), "lead over the next role"))
    else:
        metric, share, lift = _headline(role_row["role"], metrics)
        if metric is not None and role_row["role"] not in ("broad", "positional"):
            facts.append((percent(share), f"{metric} share of attention"))
            facts.append((times(lift), "over uniform attention"))
    stability = role_row.get("stability", role_row.get("confidence"))
    facts.append((percent(stability), "same role in bootstrap resamples"))
    facts.append((percent(metrics["start_of_text"]), "on BOS (attention sink)"))
    if "hold" in metrics and pd.notna(metrics["hold"]):
        facts.append((percent(metrics["hold"]), f"of its queries hold a key through a run of {HOLD_MIN_QUERIES} or more (hold)"))
    facts.append((f"{metrics['entropy']:.2f}", "entropy (of its maximum)"))
    return facts


def table_columns(run) -> list[tuple[str, str, str]]:
    """The role table's columns: (key, title, kind); kind picks the script's formatting."""
    columns = [("head", "Head", "text"), ("layer", "Layer", "int"), ("role", "Role", "text"),
               ("secondary", "Also", "text"), ("confidence", "Confidence", "pct")]
    columns += [c for c in ROLE_MEASURES if c[0] in run.roles.columns]
    # Exact ablation only: attribution is shown in "Which heads matter", beside its rank agreement.
    columns += [("ablation", "Ablation (nats)", "nats")] if "ablation" in run.metrics.columns else []
    columns += [("top_keys", "Top keys", "text")]
    columns += [(m, m, "pct" if m in SHARE_METRICS else "num") for m in METRICS if m in run.metrics.columns]
    return columns


def cell_text(key: str, kind: str, value, role_row: pd.Series, metrics: pd.Series) -> str:
    """A role-table cell as report.md writes it (rounded once, by classifier.formatting)."""
    from classifier.label.describe import confidence_text

    if key == "confidence":
        return confidence_text(role_row)
    if key == "ablation":
        return next(iter(ablation_cell(metrics).values()), "n/a")
    if kind == "text" or kind == "int":
        return str(value)
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    return {"pct": percent, "times": times, "num": number}[kind](float(value))


def head_records(run) -> list[dict]:
    """One record per head, in (layer, head) order: what the card, overview and table show."""
    from classifier.label.describe import (
        describe_head, key_kind, role_label, secondary_label, small_percent, top_keys_list, top_keys_text,
    )

    n_layers = run.model.n_layers
    metrics = run.metrics.set_index(["layer", "head"])
    roles = run.roles.set_index(["layer", "head"])
    prompt_roles = run.prompt_roles.set_index(["layer", "head"])["role"] if len(run.prompt_roles) else {}
    has_budget = all(c in run.budget.columns for p in PARTS for c in (p, f"{p}_uniform"))
    budget = run.budget.set_index(["layer", "head"]) if has_budget else None
    pairs = {key: group for key, group in run.pairs.groupby(["layer", "head"])} if len(run.pairs) else {}
    # Pairs come ordered (the role's key kind first); older runs without parts are ordered by share.
    sort_key = "share" if "share" in run.pairs.columns and "part" not in run.pairs.columns else None
    columns = table_columns(run)
    records = []
    for layer, head in sorted(roles.index):
        m, r = metrics.loc[(layer, head)], roles.loc[(layer, head)]
        label = head_label(layer, head, n_layers)
        group = pairs.get((layer, head))
        if group is not None and sort_key:
            group = group.sort_values(sort_key, ascending=False, kind="stable")
        values = {**r.to_dict(), **m.to_dict(), "head": layer * run.model.n_heads + head, "layer": layer,
                  "role": r["role"], "secondary": secondary_label(r), "top_keys": top_keys_text(r),
                  # unclear is no label to be confident in: no confidence shown
                  "confidence": None if r["role"] == "unclear" else r.get("confidence")}
        shown = {"head": label, "role": role_label(r), "layer": str(layer), "secondary": values["secondary"],
                 "top_keys": values["top_keys"]}
        explained = _explained(r, m)
        records.append({
            "layer": int(layer), "head": int(head), "label": label, "role": r["role"], "role_label": role_label(r),
            "code": written_role(r["role"], r.get("confidence"), code=True),
            "secondary": list(r["secondary"]), "explained": _number(explained),
            "explained_text": percent(explained) if math.isfinite(explained) else "",
            "facts": [list(f) for f in _facts(r, m)],
            "description": describe_head(r, m, budget.loc[(layer, head)] if budget is not None else None),
            "prompt_role": prompt_roles.get((layer, head)) if len(prompt_roles) else None,
            "budget": [[p, _number(budget.loc[(layer, head), p]) or 0.0] for p in PARTS] if budget is not None else None,
            "pairs": [[str(p.query), str(p.key), _number(p.share), key_kind(getattr(p, "part", None)),
                       _number(getattr(p, "top_rate", None)), _number(getattr(p, "weight", None))]
                      for p in group.head(PAIRS_SHOWN).itertuples()]
            if group is not None else [],
            # The head's one top-keys list (the table shows its first entries), rounded here once.
            "top_keys": [[str(k["token"]), small_percent(k["share"]), times(k["lift"])] for k in top_keys_list(r)],
            "row": [values[key] if kind == "text" and key != "head" else _number(values.get(key))
                    for key, _, kind in columns],
            "cells": [shown[key] if key in shown else cell_text(key, kind, values.get(key), r, m)
                      for key, _, kind in columns],
            **card_extras(run, m, r),
        })
    return records


def text_records(run) -> list[dict]:
    """The prompt and the saved corpus stories: tokens and encoded patterns."""
    texts = []
    views = [("prompt", run.prompt, f"The prompt hand-written tables are based on ({len(run.prompt.tokens)} tokens).")]
    indices = run.corpus.get("sample_indices") or []
    for k, view in enumerate(run.stories):
        where = f"story #{indices[k]} of {run.corpus.get('name')}" if k < len(indices) else f"story {k + 1} of the corpus"
        views.append((f"story {k + 1}", view, f"The first {len(view.tokens)} tokens of {where}."))
    for name, view, note in views:
        if view.patterns.size == 0 or len(view.tokens) == 0:
            continue
        texts.append({"name": name, "note": note, "tokens": list(view.tokens), "patterns": encode_patterns(view.patterns)})
    return texts


def _token(text: str) -> str:
    """A token in running text, as the page's script shows it: brackets show its spaces."""
    return html.escape("⟨" + text.replace("\n", "↵") + "⟩")


def _heat_color(lift: float) -> str:
    """Red above uniform, blue below, white at 1x (log2 scale clipped to HEAT_LOW..HEAT_HIGH)."""
    if not math.isfinite(lift) or lift <= 0:
        return "#ffffff"
    x = math.log2(lift)
    a = min(1.0, x / HEAT_HIGH) if x > 0 else min(1.0, x / HEAT_LOW)
    target = (178, 24, 43) if x > 0 else (33, 102, 172)
    r, g, b = (round(255 + a * (t - 255)) for t in target)
    ink = "#fff" if a > 0.6 else "#1d2330"
    return f"#{r:02x}{g:02x}{b:02x};color:{ink}"


def heatmap_html(run) -> str:
    """Heads x metrics, each cell the lift over uniform attention; a row selects its head."""
    metrics = lift_metrics(run)
    roles = run.roles.set_index(["layer", "head"])
    head = "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    rows = []
    for r in run.metrics.itertuples():
        m = run.metrics.loc[r.Index]
        cells = "".join(
            f'<td style="background:{_heat_color(m[f"{name}_lift"])}" title="{name}: {percent(m[name])} of attention">'
            f"{times(m[f'{name}_lift'])}</td>"
            for name in metrics
        )
        k = int(r.layer) * run.model.n_heads + int(r.head)
        row = roles.loc[(r.layer, r.head)] if (r.layer, r.head) in roles.index else None
        role = row["role"] if row is not None else ""
        written = written_role(role, row.get("confidence")) if row is not None else ""
        rows.append(f'<tr data-head="{k}"><th class="text">{head_label(r.layer, r.head, run.model.n_layers)} '
                    f'<span style="color:{ROLE_COLORS.get(role, "#888")}">{html.escape(written)}</span></th>{cells}</tr>')
    return (f'<table class="heat"><thead><tr><th class="text">head</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def evidence_html(records: list[dict], n_heads: int) -> str:
    """Each role held by some head: what it means, and each head's numbers and pairs."""
    parts = []
    for role in ROLES:
        heads = [r for r in records if r["role"] == role]
        if not heads:
            continue
        entry = ROLE_REGISTRY[role]
        phrase = entry.phrase.format(offset="k")
        parts.append(f'<h3><span class="badge" style="background:{ROLE_COLORS[role]}">{html.escape(role)}</span> '
                     f"{html.escape(phrase)} ({len(heads)} head{'s' if len(heads) != 1 else ''})</h3><ul class=\"evidence\">")
        for r in heads:
            k = r["layer"] * n_heads + r["head"]
            pairs = ", ".join(f"<code>{_token(q)}</code> → <code>{_token(key)}</code> {html.escape(kind) + ' ' if kind else ''}"
                              + (f"top key of {percent(rate)} of its queries, weight {percent(weight)}"
                                 if rate is not None and weight is not None else percent(s))
                              for q, key, s, kind, rate, weight in r["pairs"][:3])
            doubt = f" {html.escape(r['role_label'])}" if r["role_label"] != r["role"] else ""
            parts.append(f'<li data-head="{k}"><b>{html.escape(r["label"])}</b>{doubt}: {html.escape(r["description"])}'
                         + (f" <span class=\"hint\">Pairs: {pairs}</span>" if pairs else "") + "</li>")
        parts.append("</ul>")
    return "".join(parts)


def header_html(run) -> str:
    model, corpus, settings = run.model, run.corpus, run.settings
    lines = [
        f"Model <code>{html.escape(model.resolved)}</code>"
        + (f" (revision <code>{html.escape(model.revision)}</code>)" if model.revision else "")
        + f", {model.n_layers} layer(s) x {model.n_heads} heads",
        f"Corpus {html.escape(str(corpus.get('name')))} ({html.escape(str(corpus.get('source')))}), "
        f"{corpus.get('stories')} stories, {run.n_tokens:,} tokens; {html.escape(scored_tokens(run))}; "
        f"seed {settings.seed}, {settings.bootstrap} bootstrap resamples",
        "Roles: " + html.escape(role_counts(run.roles)),
    ]
    if run.command:
        lines.append(f"Command <code>{html.escape(run.command)}</code>" + (f", {html.escape(run.created)}" if run.created else ""))
    out = [f"<h1>Head roles: {html.escape(model.name)}</h1>"] + [f'<div class="meta">{line}</div>' for line in lines]
    out += [f'<div class="notice">{html.escape(n)}</div>' for n in run.notices]
    return "\n".join(out)


def page_data(run) -> dict:
    records = head_records(run)
    return {
        "model": {"name": run.model.name, "n_layers": run.model.n_layers, "n_heads": run.model.n_heads},
        "columns": table_columns(run),
        "heads": records,
        "texts": text_records(run),
        "role_colors": ROLE_COLORS,
        "part_colors": PART_COLORS,
    }


def page_script(name: str) -> str:
    """A page's script: the shared helpers (assets/common.js), then its own (assets/NAME)."""
    return (ASSETS / "common.js").read_text() + "\n" + (ASSETS / name).read_text()


def _script_json(value) -> str:
    """JSON safe inside <script>: no `</` can close the element early."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


def definitions_html() -> str:
    """The definitions the page uses, inline (the page stays self-contained)."""
    def code(text: str) -> str:
        parts = html.escape(text).split("`")
        return "".join(f"<code>{p}</code>" if k % 2 else p for k, p in enumerate(parts))

    items = "".join(f"<dt>{html.escape(term)}</dt><dd>{code(text)}</dd>" for term, text in DEFINITIONS)
    return (f'<section id="definitions"><h2>Definitions</h2><p>{code(BUDGET)}</p><dl class="definitions">{items}</dl>'
            f'<p class="hint">Formulas for every metric, budget part, role and column: <code>{METRICS_DOC}</code> in the '
            "head-roles project; thresholds with the figures behind them in <code>classifier/thresholds.py</code>.</p></section>")


def render_html(run) -> str:
    """report.html of one run: a single self-contained page."""
    run = shown_run(run)
    data = page_data(run)
    evidence = evidence_html(data["heads"], run.model.n_heads)
    no_texts = "" if data["texts"] else '<p class="hint">This run saved no attention patterns (an older run directory).</p>'
    body = PAGE.format(
        title=html.escape(f"Head roles: {run.model.name}"),
        css=(ASSETS / "report.css").read_text(),
        header=header_html(run),
        no_texts=no_texts,
        heatmap=heatmap_html(run),
        importance=importance_html(run),
        evidence=evidence,
        definitions=definitions_html(),
        appendix_note='<p class="hint">The Markdown report (report.md) has the planted-versus-measured table.</p>'
        if run.appendix else "",
        data=_script_json(data),
        script=page_script("report.js"),
    )
    return body


# Both pages (report.html, track.html) open alike: a title, the inlined style, the header.
PAGE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
{header}
</header>
"""

PAGE = PAGE_HEAD + """<section id="explorer">
<h2>Every head</h2>
<div class="hint">Thumbnails are shaded by the head's ablation (darker: the loss rises more without it). Click a head, or step with <kbd>←</kbd> <kbd>→</kbd> (heads) and <kbd>↑</kbd> <kbd>↓</kbd> (layers).
Hover or click a token; <kbd>[</kbd> <kbd>]</kbd> step the selected token. Darker blue is more attention
(tokens: in proportion to the weight; pattern pictures: to its square root, so that soft heads show).</div>
{no_texts}
<div class="explorer">
  <div class="panel">
    <div class="hint" id="text-note"></div>
    <div class="grid" id="overview"></div>
    <div class="hint" style="margin-top:8px">The selected head on this text: rows are queries, columns keys (click to pick one).</div>
    <div class="view"><canvas id="pattern" width="10" height="10"></canvas></div>
  </div>
  <div class="panel">
    <div id="card"></div>
    <div class="controls">
      <span class="tabs" id="texts"></span>
      <span class="modes" id="modes"><button data-mode="query" class="on" title="Pick a query token: where does it attend?">query → keys</button><button data-mode="key" title="Pick a key token: which queries attend to it?">key ← queries</button></span>
      <label class="hint"><input type="checkbox" id="relative"> scale to the largest non-BOS weight</label>
    </div>
    <div class="tokens" id="tokens"></div>
    <div class="readout" id="readout"></div>
  </div>
</div>
</section>
<section>
<h2>Role table</h2>
<div class="hint">Click a column to sort; click a row to open the head. Shares are token-weighted over the corpus; every column is defined under <a href="#definitions">Definitions</a>.</div>
{appendix_note}
<div class="scroll"><table class="sortable" id="roles"></table></div>
</section>
{importance}
<section>
<h2>Lift over uniform attention</h2>
<div class="hint">Each cell: the metric divided by what uniform attention would give (red: preferred, blue: avoided). Click a row to open the head.</div>
<div class="scroll">{heatmap}</div>
</section>
<section>
<h2>Evidence by role</h2>
{evidence}
</section>
{definitions}
<section class="hint">Written by head-roles; self-contained (no network). Patterns are quantised to steps of 1/255.</section>
<script type="application/json" id="run-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""
