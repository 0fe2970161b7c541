"""track.html: one self-contained page to step through a track's checkpoints in a browser.

Reads the tidy table behind track.csv (`track_report.track_table`: one row per model, step, layer
and head) and returns a page in report.html's style: report.css plus a few rules of its own and a
small plain script (`classifier/assets/track.css`, `track.js`), inlined, with the data as JSON in
a `<script type="application/json">`; nothing is fetched, so it opens from disk offline.

Per model (a training run, or a lone model: one checkpoint) the page shows the layer x head grid
of role codes at the chosen checkpoint (colour: role, as report.html and the track figures; shade:
share of attention the role explains), the role counts there, and for a clicked head its history
over every checkpoint and the step from which its final role holds (`track_series.settling`).
This module only renders: it scores and compares nothing, and the numbers are rounded only here
and in the script's formatters.
"""

from __future__ import annotations

import html

import pandas as pd

from classifier.errors import InputError
from classifier.formatting import head_label, written_role
from classifier.render.html import ASSETS, PAGE_HEAD, _number, _script_json, page_script
from classifier.registry import ROLE_COLORS, ROLE_REGISTRY, ROLES, role_code
from classifier.thresholds import DOUBT_CONFIDENCE
from classifier.track.figures import MIN_SHADE, UNKNOWN_COLOUR
from classifier.track.tracking import UNSHARED_METRICS
from classifier.track.series import settling

REQUIRED = ("model", "checkpoint", "step", "n_layers", "n_heads", "layer", "head", "role")
# Per-head numbers a cell carries, in this order (NaN -> null); absent columns are all null.
CELL_NUMBERS = ("explained", "lift", "headline", "confidence", "ablation", "attribution")
UNKNOWN_HEX = "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in UNKNOWN_COLOUR))


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def role_records(table: pd.DataFrame) -> dict[str, dict]:
    """Every registry role and any other role in the table: code, colour, headline metric."""
    roles = list(ROLES) + sorted(set(table["role"].dropna().astype(str)) - set(ROLES))
    records = {}
    for role in roles:
        entry = ROLE_REGISTRY.get(role)
        metric = entry.headline if entry else None
        records[role] = {"code": role_code(role), "color": ROLE_COLORS.get(role, UNKNOWN_HEX),
                         "headline": metric, "share": metric is not None and metric not in UNSHARED_METRICS}
    return records


def _settled(rows: pd.DataFrame, heads: list[tuple[int, int]]) -> list[dict | None]:
    """Per head: final role, the step it holds from, the first step it appears, role changes."""
    if rows["step"].isna().any() or rows["step"].nunique() < 2:
        return [None] * len(heads)
    frame = settling(rows[["step", "layer", "head", "role"]].astype({"step": "int64"}))
    found = frame.set_index(["layer", "head"])
    return [{"final": found.at[key, "final_role"], "settled": int(found.at[key, "settled_step"]),
             "first": int(found.at[key, "first_step"]), "changes": int(found.at[key, "changes"])}
            if key in found.index else None for key in heads]


def model_record(name: str, rows: pd.DataFrame, layers_of: dict[str, int]) -> dict:
    """One model: its checkpoints in step order, heads, and per checkpoint and head a cell
    [role, explained, lift, headline, confidence, ablation, attribution, code as written] and the head of another model it was matched
    with by metric profile ([label, role, similarity]; `layers_of` gives that model's layers)."""
    rows = rows.sort_values(["step", "layer", "head"], kind="stable", na_position="first")
    n_layers, n_heads = int(rows["n_layers"].iloc[0]), int(rows["n_heads"].iloc[0])
    heads = sorted({(int(l), int(h)) for l, h in zip(rows["layer"], rows["head"])})
    position = {key: k for k, key in enumerate(heads)}
    checkpoints, cells, matches = [], [], []
    for checkpoint, group in rows.groupby("checkpoint", sort=False):
        step = group["step"].iloc[0]
        row_cells: list = [None] * len(heads)  # a head missing at this checkpoint stays null
        row_matches: list = [None] * len(heads)
        for r in group.to_dict("records"):
            k = position[(int(r["layer"]), int(r["head"]))]
            row_cells[k] = [str(r["role"]), *(_number(r.get(c)) for c in CELL_NUMBERS),
                            written_role(str(r["role"]), r.get("confidence"), code=True)]
            if r.get("match") == "similarity" and pd.notna(r.get("matched_layer")):
                other = layers_of.get(r.get("compared_with"), 2)  # L.H unless known to be one layer
                row_matches[k] = [head_label(int(r["matched_layer"]), int(r["matched_head"]), other),
                                  _text(r.get("matched_role")), _number(r.get("similarity"))]
        checkpoints.append({"name": str(checkpoint), "step": None if pd.isna(step) else int(step),
                            "compared_with": _text(group["compared_with"].iloc[0]) if "compared_with" in group else None,
                            "match": _text(group["match"].iloc[0]) if "match" in group else None})
        cells.append(row_cells)
        matches.append(row_matches)
    return {
        "name": name, "n_layers": n_layers, "n_heads": n_heads,
        "heads": [{"layer": l, "head": h, "label": head_label(l, h, n_layers)} for l, h in heads],
        "checkpoints": checkpoints, "cells": cells, "matches": matches,
        "settled": _settled(rows, heads),
    }


def page_data(table: pd.DataFrame) -> dict:
    """Everything the page's script reads: the roles, and one record per model (table order)."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise InputError(f"track table lacks column(s): {', '.join(missing)}")
    layers_of = {str(c): int(n) for c, n in zip(table["checkpoint"], table["n_layers"])}
    return {
        "roles": role_records(table),
        "models": [model_record(str(name), rows, layers_of) for name, rows in table.groupby("model", sort=False)],
        "min_shade": MIN_SHADE,
        "low_confidence": DOUBT_CONFIDENCE,
    }


def header_html(table: pd.DataFrame, title: str, command: str | None) -> str:
    models = table.drop_duplicates("model")
    def checkpoints(name) -> str:
        n = table.loc[table["model"] == name, "checkpoint"].nunique()
        return f"{n} checkpoints" if n > 1 else "one checkpoint"

    shapes = ", ".join(f"{html.escape(str(m.model))} ({int(m.n_layers)} x {int(m.n_heads)} heads, {checkpoints(m.model)})"
                       for m in models.itertuples())
    lines = [f"Models: {shapes}" if len(models) else "No model was tracked."]
    if command:
        lines.append(f"Command <code>{html.escape(command)}</code>")
    return "\n".join([f"<h1>{html.escape(title)}</h1>"] + [f'<div class="meta">{line}</div>' for line in lines])


def render_track_html(table: pd.DataFrame, *, title: str, command: str | None) -> str:
    """track.html of a track table (as `track_report.track_table` returns it): a single self-contained page."""
    return PAGE.format(
        title=html.escape(title),
        css=(ASSETS / "report.css").read_text() + (ASSETS / "track.css").read_text(),
        header=header_html(table, title, command),
        data=_script_json(page_data(table)),
        script=page_script("track.js"),
    )


PAGE = PAGE_HEAD + """<section id="stepper">
<div class="controls">
  <label id="model-choice">Model <select id="model"></select></label>
  <button id="previous" title="Previous checkpoint (←)">◀</button>
  <input type="range" id="step" min="0" max="0" value="0">
  <button id="next" title="Next checkpoint (→)">▶</button>
  <span id="step-label" class="step-label"></span>
</div>
<div class="hint">Step through the checkpoints with <kbd>←</kbd> <kbd>→</kbd> (<kbd>Home</kbd> <kbd>End</kbd>: first and last)
or the slider; click a head for its history. Each cell: the head's primary role code, coloured by role and shaded by the
share of attention the role explains (paler: explains less; full colour where the role rule gives no share; the stripe
on the left is the role's own colour);
<b>*</b>: a role in doubt, confidence under <span id="low-confidence"></span> (the role table's <code>?</code>).</div>
<div class="explorer">
  <div class="panel">
    <div id="grid" class="role-grid"></div>
    <h3>Role counts at this checkpoint</h3>
    <table id="counts" class="counts"></table>
  </div>
  <div class="panel" id="history"></div>
</div>
</section>
<section class="hint">Written by head-roles from track.csv; self-contained (no network).</section>
<script type="application/json" id="track-data">{data}</script>
<script>
{script}
</script>
</body>
</html>
"""
