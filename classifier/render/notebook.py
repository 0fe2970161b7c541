"""What a notebook displays of a `classifier.run.Run`: the role table as HTML (the last line of a
cell), one head's card, and report.html inline.

Every string comes from the same functions as report.md and report.html (`role_table`,
`head_records`, `render_html`), so the notebook shows what the report says.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from classifier.errors import InputError
from classifier.formatting import role_counts
from classifier.label.describe import role_label, secondary_label, top_keys_list
from classifier.registry import ROLE_COLORS
from classifier.render.html import head_records, render_html
from classifier.render.report import role_table

# Height of report.html shown inline (pixels): the explorer and the top of the role table.
INLINE_REPORT_HEIGHT = 900
# Columns of the role table shown in a notebook, in this order (those a run has).
NOTEBOOK_COLUMNS = ("Head", "Role", "Confidence", "Explained", "Lift", "Top keys", "Ablation (nats)", "Description")
TABLE_STYLE = ("border-collapse:collapse;font-size:12px", "padding:2px 6px;border-bottom:1px solid #d9dde5;text-align:left")


def _header(run) -> str:
    corpus = run.corpus
    counts = role_counts(run.roles)
    lines = [f"<b>{html.escape(run.model.name)}</b>: {run.model.n_layers} layer(s) x {run.model.n_heads} heads, "
             f"{corpus.get('stories')} stories of {html.escape(str(corpus.get('name')))}, {run.n_tokens:,} tokens. "
             f"{html.escape(counts)}"]
    lines += [f'<div style="background:#fff4d6;border-left:4px solid #e0a800;padding:2px 6px">Note: {html.escape(n)}</div>'
              for n in run.notices]
    return "".join(f"<div>{line}</div>" if not line.startswith("<div") else line for line in lines)


def _role_cell(text: str, role: str) -> str:
    colour = ROLE_COLORS.get(role, "#888")
    return (f'<span class="role" style="background:{colour};color:#fff;border-radius:8px;padding:0 7px">'
            f"{html.escape(text)}</span>")


def role_table_html(run) -> str:
    """The role table of report.md as one HTML table: roles in their colours, `?` on doubtful labels."""
    table = role_table(run)
    columns = [c for c in NOTEBOOK_COLUMNS if c in table.columns]
    table_style, cell = TABLE_STYLE
    head = "".join(f'<th style="{cell}">{html.escape(c)}</th>' for c in columns)
    rows = []
    for (_, shown), (_, label) in zip(table.iterrows(), run.roles.iterrows()):
        also = f" (+{html.escape(secondary_label(label))})" if label["secondary"] else ""
        cells = [_role_cell(role_label(label), label["role"]) + also if c == "Role" else html.escape(str(shown[c]))
                 for c in columns]
        rows.append("<tr>" + "".join(f'<td style="{cell}">{value}</td>' for value in cells) + "</tr>")
    return (f'<div class="head-roles">{_header(run)}<table class="head-roles-table" style="{table_style}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


@dataclass(frozen=True, repr=False)
class HeadCard:
    """One head as the report's card shows it: role, description, top keys, evidence, importance,
    similar heads. `facts` and `importance` are (value, what it is) pairs as the card writes them."""

    layer: int
    head: int
    label: str
    role: str
    role_label: str  # `delimiter?` when doubtful
    secondary: tuple[str, ...]
    confidence: float | None  # None for unclear heads
    description: str
    top_keys: pd.DataFrame  # token, share, lift: the keys it prefers first, then the others, by share
    facts: tuple[tuple[str, str], ...]
    pairs: pd.DataFrame  # query, key, share, kind, top_rate, weight: the characteristic pairs
    importance: tuple[tuple[str, str], ...]
    similar: tuple[tuple[str, float], ...]  # (head label, similarity), most similar first

    def __str__(self) -> str:
        lines = [f"Head {self.label}: {self.role_label}" + (f" (+{', '.join(self.secondary)})" if self.secondary else ""),
                 self.description]
        lines += [f"  {value} {what}" for value, what in (*self.facts, *self.importance)]
        if len(self.top_keys):
            lines.append("  top keys: " + ", ".join(f"{t!r} {s:.0%}" for t, s in zip(self.top_keys["token"], self.top_keys["share"])))
        if self.similar:
            lines.append("  similar: " + ", ".join(f"{label} {s:.2f}" for label, s in self.similar))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        facts = "".join(f"<li><b>{html.escape(v)}</b> {html.escape(w)}</li>" for v, w in (*self.facts, *self.importance))
        keys = self.top_keys.to_html(index=False, float_format=lambda x: f"{x:.3g}") if len(self.top_keys) else ""
        pairs = self.pairs.to_html(index=False, float_format=lambda x: f"{x:.3g}") if len(self.pairs) else ""
        similar = ", ".join(f"{html.escape(label)} ({s:.2f})" for label, s in self.similar)
        return (f'<div class="head-card"><h4>Head {html.escape(self.label)} {_role_cell(self.role_label, self.role)}</h4>'
                f"<p>{html.escape(self.description)}</p><ul>{facts}</ul>{keys}{pairs}"
                + (f"<p>Similar heads: {similar}</p>" if similar else "") + "</div>")


def head_card(run, layer: int, head: int) -> HeadCard:
    """The card of head (`layer`, `head`); InputError when the model has no such head."""
    n_layers, n_heads = run.model.n_layers, run.model.n_heads
    if not (0 <= layer < n_layers and 0 <= head < n_heads):
        raise InputError(f"head ({layer}, {head}): the model has {n_layers} layer(s) x {n_heads} heads")
    record = head_records(run)[layer * n_heads + head]
    roles = run.roles.set_index(["layer", "head"])
    return HeadCard(
        layer=layer, head=head, label=record["label"], role=record["role"], role_label=record["role_label"],
        secondary=tuple(record["secondary"]),
        confidence=None if record["role"] == "unclear" else float(roles.loc[(layer, head), "confidence"]),
        description=record["description"],
        top_keys=pd.DataFrame([{"token": k["token"], "share": float(k["share"]), "lift": float(k["lift"])}
                               for k in top_keys_list(roles.loc[(layer, head)])], columns=["token", "share", "lift"]),
        facts=tuple(tuple(f) for f in record["facts"]),
        pairs=pd.DataFrame(record["pairs"], columns=["query", "key", "share", "kind", "top_rate", "weight"]),
        importance=tuple(tuple(f) for f in record["importance_facts"]),
        similar=tuple((label, similarity) for _, label, similarity in record["similar"]),
    )


@dataclass(frozen=True, repr=False)
class ReportView:
    """report.html of a run; a notebook shows it inline (in a frame of its own: the page keeps its
    own style and script)."""

    page: str  # the whole self-contained page, as report.html

    def __repr__(self) -> str:
        return f"ReportView(report.html, {len(self.page):,} characters)"

    def _repr_html_(self) -> str:
        return (f'<iframe class="head-roles-report" srcdoc="{html.escape(self.page, quote=True)}" '
                f'style="width:100%;height:{INLINE_REPORT_HEIGHT}px;border:1px solid #d9dde5"></iframe>')


def report_view(run) -> ReportView:
    return ReportView(render_html(run))
