"""Render whether heads matter and which heads are alike (report.md and report.html sections).

Reads the columns `classifier.measure.importance` adds to a run (metrics: ablation, its interval,
attribution, group_ablation; roles: group, similar). A run without them (older run directories,
or `--ablation-stories 0` for the ablation figures) renders without those parts. Only renders.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from classifier.formatting import head_label, markdown_table
from classifier.run import IMPORTANCE_COLUMNS

# Heads listed in the ranking by default (all of them when the model has at most this many).
RANKED_SHOWN = 20
# Similar heads named beside each head.
SIMILAR_SHOWN = 3


def nats(value) -> str:
    return "–" if value is None or not math.isfinite(float(value)) else f"{float(value):.3f}"


def effect_text(value, low=np.nan, high=np.nan) -> str:
    """`0.021 (0.014 to 0.030)`; the interval only when it was measured."""
    if not math.isfinite(float(value)):
        return "–"
    if math.isfinite(float(low)) and math.isfinite(float(high)):
        return f"{nats(value)} ({nats(low)} to {nats(high)})"
    return nats(value)


def has_ablation(run) -> bool:
    return "ablation" in run.metrics.columns and bool(run.metrics["ablation"].notna().any())


def has_similar(run) -> bool:
    return "similar" in run.roles.columns and run.roles["similar"].map(lambda s: isinstance(s, list) and bool(s)).all()


def ablation_cell(metrics: pd.Series) -> dict[str, str]:
    """The role table's importance column for one head (empty when not measured)."""
    if "ablation" not in metrics.index or not math.isfinite(float(metrics["ablation"])):
        return {}
    return {"Ablation (nats)": effect_text(metrics["ablation"], metrics.get("ablation_lo", np.nan),
                                           metrics.get("ablation_hi", np.nan))}


def _heads(run) -> pd.DataFrame:
    """One row per head: layer, head, label, role, group, similar, ablation figures."""
    metric_columns = [c for c in IMPORTANCE_COLUMNS if c in run.metrics.columns]
    role_columns = [c for c in ("group", "similar") if c in run.roles.columns]
    heads = run.roles[["layer", "head", "role", *role_columns]].merge(
        run.metrics[["layer", "head", *metric_columns]], on=["layer", "head"])
    heads["label"] = [head_label(l, h, run.model.n_layers) for l, h in zip(heads["layer"], heads["head"])]
    return heads


def _similar_text(similar, n_layers: int) -> str:
    return ", ".join(f"{head_label(s['layer'], s['head'], n_layers)} ({s['similarity']:.2f})" for s in similar[:SIMILAR_SHOWN])


def ranking(run) -> pd.DataFrame:
    """The RANKED_SHOWN heads of largest ablation effect, largest first: display strings."""
    heads = _heads(run).sort_values("ablation", ascending=False, kind="stable")
    similar = has_similar(run)
    rows = []
    for rank, r in enumerate(heads.head(RANKED_SHOWN).itertuples(), start=1):
        row = {"Rank": str(rank), "Head": r.label, "Role": r.role,
               "Ablation (nats)": effect_text(r.ablation, getattr(r, "ablation_lo", np.nan), getattr(r, "ablation_hi", np.nan)),
               "Attribution": nats(getattr(r, "attribution", np.nan))}
        if similar:
            row["Most similar heads"] = _similar_text(r.similar, run.model.n_layers)
        rows.append(row)
    return pd.DataFrame(rows)


def groups(run) -> list[dict]:
    """Each group of similar heads: its heads (label, role), combined and summed single ablation."""
    if "group" not in run.roles.columns:
        return []
    heads = _heads(run)
    out = []
    for number, members in heads.dropna(subset=["group"]).groupby("group"):
        first = members.iloc[0]
        out.append({
            "group": int(number) + 1,
            "heads": list(zip(members["layer"].astype(int), members["head"].astype(int), members["label"], members["role"])),
            "combined": (first.get("group_ablation", np.nan), first.get("group_ablation_lo", np.nan),
                         first.get("group_ablation_hi", np.nan)),
            "summed": float(members["ablation"].sum()) if "ablation" in members and members["ablation"].notna().all() else np.nan,
        })
    return out


def ablated_stories(run) -> str:
    """The stories the ablation ran on, as a report says it: "the first 20 stories" of a larger
    sample, or "the 2 stories" where the sample has no more than --ablation-stories."""
    asked, stories = run.settings.ablation_stories, run.corpus.get("stories")
    if isinstance(stories, int) and stories <= asked:
        return f"the {stories} stor{'y' if stories == 1 else 'ies'}"
    return f"the first {asked} stories"


def importance_lines(run) -> list[str]:
    """report.md: which heads matter most, then the heads that do the same thing."""
    lines = []
    if has_ablation(run):
        shown = min(len(run.roles), RANKED_SHOWN)
        lines += [
            "## Which heads matter",
            "",
            f"**Ablation**: loss increase (nats per predicted token) when the head's output z is replaced at every position "
            f"by its mean over {ablated_stories(run)} (exact, one forward pass per head; 95% "
            "bootstrap interval over stories); **Attribution**: the one-pass linear estimate of the same (attribution "
            f"patching) on the same stories. Definitions in docs/importance.md. The {shown} heads that matter most:",
            "",
            markdown_table(ranking(run)),
            "",
        ]
    if has_similar(run):
        lines += [
            "## Heads that do the same thing",
            "",
            "Similarity of two heads: 1 - total-variation distance of their attention over the same queries, averaged "
            "over the queries; groups: average-linkage clusters (threshold in classifier/thresholds.py). **Together**: "
            "the loss increase when the whole group is ablated at once; **Apart**: the sum of its heads' own ablations "
            "(together well above apart: the heads back each other up).",
            "",
        ]
        rows = [{"Group": str(g["group"]),
                 "Heads": ", ".join(f"{label} ({role})" for _, _, label, role in g["heads"]),
                 "Together (nats)": effect_text(*g["combined"]), "Apart (nats)": nats(g["summed"])} for g in groups(run)]
        lines += [markdown_table(pd.DataFrame(rows)) if rows else "No group: every head attends unlike the others.", ""]
    return lines


# --- report.html --------------------------------------------------------------------------------


def _head_link(layer: int, head: int, label: str, n_heads: int) -> str:
    return f'<a href="#explorer" data-head="{layer * n_heads + head}">{html.escape(label)}</a>'


def importance_html(run) -> str:
    """report.html's sections; every head named links to its card."""
    n_heads, n_layers = run.model.n_heads, run.model.n_layers
    parts = []
    if has_ablation(run):
        heads = _heads(run).sort_values("ablation", ascending=False, kind="stable")
        shown_similar = has_similar(run)
        rows = []
        for rank, r in enumerate(heads.itertuples(), start=1):
            similar = (", ".join(_head_link(s["layer"], s["head"], f"{head_label(s['layer'], s['head'], n_layers)} "
                                            f"({s['similarity']:.2f})", n_heads) for s in r.similar[:SIMILAR_SHOWN])
                       if shown_similar else "")
            rows.append(f"<tr><td>{rank}</td><td class=\"text\">{_head_link(r.layer, r.head, r.label, n_heads)}</td>"
                        f"<td class=\"text\">{html.escape(r.role)}</td>"
                        f"<td>{effect_text(r.ablation, getattr(r, 'ablation_lo', np.nan), getattr(r, 'ablation_hi', np.nan))}</td>"
                        f"<td>{nats(getattr(r, 'attribution', np.nan))}</td><td class=\"text\">{similar}</td></tr>")
        parts.append(
            "<section id=\"importance\"><h2>Which heads matter</h2>"
            "<div class=\"hint\">Loss increase (nats per predicted token) when the head's output is replaced by its mean "
            f"(exact, over {ablated_stories(run)}, 95% interval over stories) and its one-pass "
            "attribution-patching estimate; click a head to open its card.</div>"
            "<div class=\"scroll\"><table><thead><tr><th>rank</th><th class=\"text\">head</th><th class=\"text\">role</th>"
            "<th>ablation (nats)</th><th>attribution</th><th class=\"text\">most similar heads</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div></section>")
    if has_similar(run):
        found = groups(run)
        items = "".join(
            f"<li><b>Group {g['group']}</b>: "
            + ", ".join(f"{_head_link(l, h, label, n_heads)} ({html.escape(role)})" for l, h, label, role in g["heads"])
            + f"; together {effect_text(*g['combined'])} nats, apart {nats(g['summed'])}</li>"
            for g in found)
        parts.append(
            "<section id=\"same-thing\"><h2>Heads that do the same thing</h2>"
            "<div class=\"hint\">Groups of heads whose attention over the same queries overlaps most (1 - total-variation "
            "distance); together: the whole group ablated at once; apart: the sum of its heads' own ablations.</div>"
            + (f"<ul>{items}</ul>" if items else "<p>No group: every head attends unlike the others.</p>")
            + "</section>")
    return "\n".join(parts)


def card_extras(run, metrics: pd.Series, roles: pd.Series) -> dict:
    """What a head card adds: an ablation fact, and its most similar heads ([index, label, similarity])."""
    facts = [[text, "nats of loss when mean-ablated"] for text in ablation_cell(metrics).values()]
    similar = roles.get("similar") if "similar" in roles.index else None
    listed = [[s["layer"] * run.model.n_heads + s["head"], head_label(s["layer"], s["head"], run.model.n_layers),
               round(float(s["similarity"]), 3)] for s in (similar or [])[:SIMILAR_SHOWN]] if isinstance(similar, list) else []
    return {"importance_facts": facts, "similar": listed}
