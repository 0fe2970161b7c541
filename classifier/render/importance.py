"""Render whether heads matter and which heads are alike (report.md and report.html sections).

Reads the columns `classifier.measure.importance` adds to a run (metrics: ablation, its interval,
attribution, group_ablation, clean_loss; roles: group, similar). A run without them (older run
directories, or `--ablation-stories 0` for the ablation figures) renders without those parts; a run
without the clean loss says so and draws the "matters" line at zero. The ranking is split by that
line (MATTERS_SHARE_OF_LOSS); attribution is shown only beside its rank agreement with the exact
values. Only renders.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from classifier.formatting import head_label, markdown_table, percent, written_role
from classifier.run import IMPORTANCE_COLUMNS
from classifier.thresholds import MATTERS_SHARE_OF_LOSS

# Heads listed in the ranking by default (all of them when the model has at most this many),
# and at least this many of those below the "matters" line.
RANKED_SHOWN = 20
BELOW_SHOWN = 5
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


def clean_loss(run) -> float:
    """The clean loss (nats per predicted token) on the ablation stories; NaN where the run did not record it."""
    if "clean_loss" not in run.metrics.columns or not run.metrics["clean_loss"].notna().any():
        return math.nan
    return float(run.metrics["clean_loss"].dropna().iloc[0])


def matters_line(run) -> float:
    """The effect a head's interval must clear to matter: MATTERS_SHARE_OF_LOSS of the clean loss
    (zero where the run has no clean loss)."""
    loss = clean_loss(run)
    return MATTERS_SHARE_OF_LOSS * loss if math.isfinite(loss) else 0.0


def rank_agreement(run) -> float:
    """Spearman correlation of attribution with the exact ablation over the heads that have both."""
    if "attribution" not in run.metrics.columns:
        return math.nan
    both = run.metrics[["ablation", "attribution"]].dropna()
    if len(both) < 3 or both["ablation"].nunique() < 2 or both["attribution"].nunique() < 2:
        return math.nan
    return float(both["ablation"].rank().corr(both["attribution"].rank()))


def _heads(run) -> pd.DataFrame:
    """One row per head: layer, head, label, role (as written), group, similar, ablation figures,
    share of the clean loss and whether it matters."""
    metric_columns = [c for c in IMPORTANCE_COLUMNS if c in run.metrics.columns]
    role_columns = [c for c in ("group", "similar") if c in run.roles.columns]
    heads = run.roles[["layer", "head", "role", "confidence", *role_columns]].merge(
        run.metrics[["layer", "head", *metric_columns]], on=["layer", "head"])
    heads["label"] = [head_label(l, h, run.model.n_layers) for l, h in zip(heads["layer"], heads["head"])]
    heads["written"] = [written_role(r, c) for r, c in zip(heads["role"], heads["confidence"])]
    if "ablation" in heads:
        low = heads["ablation_lo"] if "ablation_lo" in heads else pd.Series(np.nan, index=heads.index)
        heads["share"] = heads["ablation"] / clean_loss(run)
        heads["matters"] = (low > 0) & (low > matters_line(run))
    return heads


def ranked_heads(run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The heads that matter (largest ablation first), and the RANKED_SHOWN - that many (at least
    a few) of the others below the line."""
    heads = _heads(run).sort_values("ablation", ascending=False, kind="stable")
    above = heads[heads["matters"]]
    below = heads[~heads["matters"]]
    return above, below.head(max(RANKED_SHOWN - len(above), BELOW_SHOWN))


def _similar_text(similar, n_layers: int) -> str:
    return ", ".join(f"{head_label(s['layer'], s['head'], n_layers)} ({s['similarity']:.2f})" for s in similar[:SIMILAR_SHOWN])


def share_text(value) -> str:
    """An ablation as a share of the clean loss: '1.2%'; '–' where there is no clean loss."""
    return "–" if not math.isfinite(float(value)) else percent(float(value), 1)


def ranking_rows(run, heads: pd.DataFrame, first_rank: int = 1) -> list[dict[str, str]]:
    """Display strings of ranked heads (report.md and report.html write the same cells)."""
    similar = has_similar(run)
    attribution = math.isfinite(rank_agreement(run))
    shares = math.isfinite(clean_loss(run))
    rows = []
    for rank, r in enumerate(heads.itertuples(), start=first_rank):
        row = {"Rank": str(rank), "Head": r.label, "Role": r.written,
               "Ablation (nats)": effect_text(r.ablation, getattr(r, "ablation_lo", np.nan), getattr(r, "ablation_hi", np.nan))}
        if shares:
            row["Share of loss"] = share_text(r.share)
        if attribution:
            row["Attribution"] = nats(getattr(r, "attribution", np.nan))
        if similar:
            row["Most similar heads"] = _similar_text(r.similar, run.model.n_layers)
        rows.append(row)
    return rows


def ranking(run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ranking as two tables of display strings: heads that matter, then the next ones below the line."""
    above, below = ranked_heads(run)
    return (pd.DataFrame(ranking_rows(run, above)), pd.DataFrame(ranking_rows(run, below, len(above) + 1)))


def importance_intro(run, matter: int) -> list[str]:
    """The sentences above the ranking (both pages): clean loss, the line (`matter` heads above
    it, as the caller ranked them), the attribution's agreement."""
    loss, line = clean_loss(run), matters_line(run)
    stories = ablated_stories(run)
    if math.isfinite(loss):
        said = [f"Clean loss (no head ablated) on {stories}: {nats(loss)} nats per predicted token. A head **matters** "
                f"when its ablation's 95% interval lies above zero and above {percent(MATTERS_SHARE_OF_LOSS, 1)} of the "
                f"clean loss ({line:.4f} nats): {matter} of {len(run.roles)} heads do."]
    else:
        said = [f"This run did not record the clean loss on {stories}, so no share of it is shown and a head **matters** "
                f"when its ablation's 95% interval lies above zero: {matter} of {len(run.roles)} heads do."]
    agreement = rank_agreement(run)
    if math.isfinite(agreement):
        said.append(f"**Attribution** (attribution patching, a one-pass linear estimate of the same effect) ranks the heads "
                    f"with a Spearman correlation of {agreement:.2f} against the exact values on the same stories"
                    + ("; read it as a rough guess, not a second opinion." if agreement < 0.8 else "."))
    return said


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
            "heads": list(zip(members["layer"].astype(int), members["head"].astype(int), members["label"], members["written"])),
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
        above, below = ranking(run)
        lines += [
            "## Which heads matter",
            "",
            f"**Ablation**: loss increase (nats per predicted token) when the head's output z is replaced at every position "
            f"by its mean over {ablated_stories(run)} (exact, one forward pass per head; 95% bootstrap interval over "
            "stories); **Share of loss**: the ablation as a share of the clean loss.",
            "",
            "\n\n".join(importance_intro(run, len(above))),
            "",
            f"### Heads that matter ({len(above)})",
            "",
            markdown_table(above) if len(above) else "None: no head's interval clears the line.",
            "",
            f"### Below the line (the first {len(below)})",
            "",
            markdown_table(below) if len(below) else "None.",
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


def markdown_bold(text: str) -> str:
    """`**word**` of the shared sentences as <b>word</b> (the text is already escaped)."""
    parts = text.split("**")
    return "".join(f"<b>{p}</b>" if k % 2 else p for k, p in enumerate(parts))


def _head_link(layer: int, head: int, label: str, n_heads: int) -> str:
    return f'<a href="#explorer" data-head="{layer * n_heads + head}">{html.escape(label)}</a>'


def importance_html(run) -> str:
    """report.html's sections; every head named links to its card."""
    n_heads, n_layers = run.model.n_heads, run.model.n_layers
    parts = []
    if has_ablation(run):
        above, below = ranked_heads(run)
        tables = []
        for title, heads, first in ((f"Heads that matter ({len(above)})", above, 1),
                                    (f"Below the line (the first {len(below)})", below, len(above) + 1)):
            rows = ranking_rows(run, heads, first)
            if not rows:
                tables.append(f"<h3>{html.escape(title)}</h3><p>None.</p>")
                continue
            columns = list(rows[0])
            body = []
            for r, cells in zip(heads.itertuples(), rows):
                tds = []
                for column in columns:
                    text = html.escape(cells[column])
                    if column == "Head":
                        text = _head_link(r.layer, r.head, r.label, n_heads)
                    elif column == "Most similar heads" and isinstance(r.similar, list):
                        text = ", ".join(_head_link(s["layer"], s["head"], f"{head_label(s['layer'], s['head'], n_layers)} "
                                                    f"({s['similarity']:.2f})", n_heads) for s in r.similar[:SIMILAR_SHOWN])
                    kind = "text" if column in ("Head", "Role", "Most similar heads") else ""
                    tds.append(f'<td class="{kind}">{text}</td>' if kind else f"<td>{text}</td>")
                body.append(f"<tr>{''.join(tds)}</tr>")
            head = "".join(f'<th class="text">{html.escape(c)}</th>' if c in ("Head", "Role", "Most similar heads")
                           else f"<th>{html.escape(c)}</th>" for c in columns)
            tables.append(f"<h3>{html.escape(title)}</h3><div class=\"scroll\"><table><thead><tr>{head}</tr></thead>"
                          f"<tbody>{''.join(body)}</tbody></table></div>")
        intro = "".join(f"<p>{markdown_bold(html.escape(sentence))}</p>" for sentence in importance_intro(run, len(above)))
        parts.append(
            "<section id=\"importance\"><h2>Which heads matter</h2>"
            "<div class=\"hint\">Loss increase (nats per predicted token) when the head's output is replaced by its mean "
            f"(exact, over {ablated_stories(run)}, 95% interval over stories), and as a share of the clean loss; "
            "click a head to open its card.</div>" + intro + "".join(tables) + "</section>")
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
    shade, title = 0.0, ""
    if facts:
        loss = clean_loss(run)
        if math.isfinite(loss):
            facts.append([share_text(float(metrics["ablation"]) / loss), "of the clean loss"])
        # The overview grid shades each head by its ablation, relative to the largest one.
        largest = float(run.metrics["ablation"].max())
        value = float(metrics["ablation"])
        shade = round(min(1.0, max(0.0, value / largest)), 3) if largest > 0 and math.isfinite(value) else 0.0
        title = f"ablation {facts[0][0]} nats"
    similar = roles.get("similar") if "similar" in roles.index else None
    listed = [[s["layer"] * run.model.n_heads + s["head"], head_label(s["layer"], s["head"], run.model.n_layers),
               round(float(s["similarity"]), 3)] for s in (similar or [])[:SIMILAR_SHOWN]] if isinstance(similar, list) else []
    return {"importance_facts": facts, "similar": listed, "ablation_shade": shade, "ablation_title": title}
