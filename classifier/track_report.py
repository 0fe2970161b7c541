"""Render a track: track.md and the tidy track.csv. The report side of `track`.

Takes the `Tracking` that classifier.track.track returns and only renders it: the per-head table
behind track.csv, role counts, the layer x head grids of role codes, and the Markdown sections for
same-head changes and head matching. It scores nothing and compares nothing (classifier.track does
both), and it is the only place that rounds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from classifier.outputs import write_file
from classifier.roles import ROLES
from classifier.scoring import METRICS
from classifier.track import STD_FLOOR, TrackedModel, Tracking

ROLE_CODES: dict[str, str] = {
    "current-token": "CUR", "previous-token": "PREV", "positional": "POS", "start-of-text": "SOT",
    "delimiter": "DELIM", "clause-start": "CLAUSE", "proper-noun": "NAME", "local": "LOCAL",
    "word-start": "WORD", "broad": "BROAD", "duplicate-token": "DUP", "induction": "IND", "unclear": "?",
}
# A grid cell is starred when fewer than this share of bootstrap resamples agree on its role.
LOW_CONFIDENCE = 0.5


def track_table(tracking: Tracking) -> pd.DataFrame:
    """track.csv: one row per (model, layer, head): role, code, confidence, the metric values and
    lifts, and the head it was compared with in the model before it (or the reference)."""
    partner = {c.b: c for c in tracking.comparisons}
    frames = []
    for model in tracking.succeeded:
        heads = model.heads()
        n_layers, n_heads = model.shape
        frame = pd.DataFrame({
            "model": model.label, "argument": model.spec.argument, "n_layers": n_layers, "n_heads": n_heads,
            "layer": heads["layer"], "head": heads["head"], "role": heads["role"],
            "code": heads["role"].map(ROLE_CODES), "secondary": heads["secondary"].map(lambda s: ";".join(s)),
            "confidence": heads["confidence"],
        })
        for m in METRICS:
            frame[m] = heads[m]
        for m in METRICS:
            frame[f"{m}_lift"] = heads[f"{m}_lift"]
        comparison = partner.get(model.label)
        frame["compared_with"] = comparison.a if comparison else None
        if comparison is not None:
            matches = comparison.matches.set_index(["layer", "head"])
            index = pd.MultiIndex.from_frame(heads[["layer", "head"]])
            for column in ("matched_layer", "matched_head", "matched_role", "similarity"):
                frame[column] = matches[column].reindex(index).to_numpy()
            if comparison.same_head is not None:
                before = comparison.same_head.set_index(["layer", "head"])["role_a"]
                frame["same_head_role_before"] = before.reindex(index).to_numpy()
        frames.append(frame)
    columns = ["matched_layer", "matched_head", "matched_role", "similarity", "same_head_role_before"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "layer", "head"])
    for column in columns:
        if column not in table:
            table[column] = np.nan
    return table


def role_counts(tracking: Tracking) -> pd.DataFrame:
    """Tidy: model, role, count, share."""
    rows = []
    for model in tracking.succeeded:
        counts = model.run.roles["role"].value_counts()
        total = int(counts.sum())
        rows += [
            {"model": model.label, "role": role, "count": int(counts.get(role, 0)), "share": counts.get(role, 0) / total}
            for role in ROLES
        ]
    return pd.DataFrame(rows, columns=["model", "role", "count", "share"])


def _head(layer, head, n_layers: int) -> str:
    from classifier.report import head_label

    return head_label(int(layer), int(head), n_layers)


def role_grid(model: TrackedModel) -> pd.DataFrame:
    """Layer x head grid of role codes; a star marks confidence below LOW_CONFIDENCE."""
    heads = model.heads()
    cells = [
        ROLE_CODES[r.role] + ("*" if r.role != "unclear" and np.isfinite(r.confidence) and r.confidence < LOW_CONFIDENCE else "")
        for r in heads.itertuples()
    ]
    grid = heads.assign(cell=cells).pivot(index="layer", columns="head", values="cell")
    grid.columns = [str(c) for c in grid.columns]
    return grid.reset_index().rename(columns={"layer": "Layer"})


def _percent(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:.0f}%"


def render_track(tracking: Tracking, command: str | None = None) -> str:
    """track.md."""
    from classifier.report import markdown_table

    s = tracking.settings
    corpus = tracking.corpus
    lines = [
        "# Head roles across checkpoints",
        "",
        f"- Corpus: {corpus['name']} ({corpus['source']}), {corpus['stories']} stories, the same sample for every model",
        f"- Settings: max {s.max_tokens} tokens per story, seed {s.seed}, {s.bootstrap} bootstrap resamples",
        f"- Store: `{tracking.store}`",
    ]
    if command:
        lines.append(f"- Command: `{command}`")
    if corpus.get("notice"):
        lines.append(f"- Note: {corpus['notice']}")
    lines += ["", "## Models", ""]
    lines.append(markdown_table(pd.DataFrame([
        {
            "Model": m.label, "Argument": f"`{m.spec.argument}`",
            "Layout": f"{m.shape[0]} x {m.shape[1]}" if m.run is not None else "",
            "Status": m.status, "Run": f"`{m.path}`" if m.run is not None else "",
        }
        for m in tracking.models
    ])))
    if tracking.failed:
        lines += ["", "## Failed", ""] + [f"- `{m.spec.argument}`: {m.error}" for m in tracking.failed]
    done = tracking.succeeded
    if not done:
        return "\n".join(lines + [""])
    legend = ", ".join(f"`{code}` {role}" for role, code in ROLE_CODES.items())
    counts = role_counts(tracking)
    shown = [r for r in ROLES if counts.loc[counts["role"] == r, "count"].sum() > 0]
    table = pd.DataFrame({"Role": [f"{r} ({ROLE_CODES[r]})" for r in shown]})
    for model in done:
        mine = counts[counts["model"] == model.label].set_index("role")
        table[model.label] = [f"{mine.loc[r, 'count']} ({_percent(mine.loc[r, 'share'])})" for r in shown]
    lines += [
        "", "## Role counts", "",
        "Heads per primary role, and their share of the model's heads.", "",
        markdown_table(table),
        "", "## Role grids", "",
        f"Primary role of every head (rows: layers, columns: heads). Codes: {legend}. "
        f"`*`: fewer than {LOW_CONFIDENCE:.0%} of bootstrap resamples give this role.",
    ]
    for model in done:
        lines += ["", f"### {model.label}", "", markdown_table(role_grid(model))]
    if tracking.comparisons:
        lines += ["", *comparison_lines(tracking)]
    return "\n".join(lines + [""])


def comparison_lines(tracking: Tracking) -> list[str]:
    from classifier.report import markdown_table

    how = ("each model against the one listed before it" if tracking.compare == "consecutive"
           else f"each model against the first ({tracking.succeeded[0].label})")
    lines = [
        "## Comparisons",
        "",
        f"Pairs: {how}. **Same head**: for two models of the same layout, the heads whose primary role "
        "differs (head indices correspond only when one model descends from the other, as checkpoints "
        "of one training run do; independently trained models are compared by matching). **Matching**: "
        "heads paired one-to-one (scipy `linear_sum_assignment`) to maximise the total cosine similarity "
        "of their metric profiles: the metric values of section 3 except `distance`, each standardised "
        f"over the heads of both models (std floored at {STD_FLOOR}), so similarity 1 means the same "
        "pattern of above- and below-average attention on every target. `Nearest` is the most similar "
        "head regardless of the one-to-one constraint.",
    ]
    shapes = {m.label: m for m in tracking.succeeded}
    for c in tracking.comparisons:
        n_a, n_b = shapes[c.a].shape[0], shapes[c.b].shape[0]
        lines += ["", f"### {c.b} vs {c.a}", ""]
        if c.same_head is not None:
            changed = c.same_head[c.same_head["role_a"] != c.same_head["role_b"]]
            lines.append(f"Same head: {len(c.same_head) - len(changed)} of {len(c.same_head)} heads keep their primary role.")
            if len(changed):
                lines += ["", markdown_table(pd.DataFrame({
                    "Head": [_head(r.layer, r.head, n_a) for r in changed.itertuples()],
                    f"Role in {c.a} (confidence)": [f"{r.role_a} ({_percent(r.confidence_a)})" for r in changed.itertuples()],
                    f"Role in {c.b} (confidence)": [f"{r.role_b} ({_percent(r.confidence_b)})" for r in changed.itertuples()],
                })), ""]
            else:
                lines.append("")
        matched = c.matches.dropna(subset=["matched_layer"])
        agree = int((matched["role"] == matched["matched_role"]).sum())
        lines.append(
            f"Matching: mean similarity {matched['similarity'].mean():.2f}; {agree} of {len(matched)} "
            f"matched pairs share their primary role."
        )
        lines += ["", markdown_table(pd.DataFrame({
            f"Head of {c.b}": [_head(r.layer, r.head, n_b) for r in c.matches.itertuples()],
            "Role": list(c.matches["role"]),
            f"Matched head of {c.a}": [
                _head(r.matched_layer, r.matched_head, n_a) if np.isfinite(r.matched_layer) else "none"
                for r in c.matches.itertuples()
            ],
            "Its role": [r if isinstance(r, str) else "" for r in c.matches["matched_role"]],
            "Similarity": [f"{x:.2f}" if np.isfinite(x) else "" for x in c.matches["similarity"]],
            "Nearest": [
                f"{_head(r.nearest_layer, r.nearest_head, n_a)} ({r.nearest_similarity:.2f})" for r in c.matches.itertuples()
            ],
        }))]
    return lines


def write_track(tracking: Tracking, out_dir: str | Path, *, command: str | None = None) -> Path:
    """Write out_dir/track.md and out_dir/track.csv (each replaced whole); returns out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_file(out_dir / "track.md", render_track(tracking, command))
    write_file(out_dir / "track.csv", track_table(tracking).to_csv(index=False))
    return out_dir


def _write_text(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w") as f:
        f.write(text)
    os.replace(temporary, path)
