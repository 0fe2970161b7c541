"""Render a track: track.md, the tidy track.csv and the training figures. The report side of `track`.

Takes the `Tracking` that classifier.track.tracking.track returns and only renders it: the per-head table
behind track.csv (one row per model, step and head), role counts, for each training run the
roles over steps and the step where each head's final role settles, layer x head grids of role
codes, and the comparisons. It scores nothing and compares nothing (classifier.track.tracking does both),
and it is the only place that rounds (through classifier.formatting).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from classifier.formatting import doubtful, head_label, markdown_table, number, percent, role_counts as counts_text, written_role
from classifier.registry import METRICS, ROLE_REGISTRY, ROLES, role_code
from classifier.run import HEAD_IMPORTANCE_COLUMNS
from classifier.thresholds import DOUBT_CONFIDENCE
from classifier.track.tracking import ROLE_MEASURES, UNSHARED_METRICS, SIMILARITY_FLOOR, STD_FLOOR, TrackedModel, Tracking
from classifier.track.series import settling, settling_sentence


def headline_metric(role) -> str | None:
    entry = ROLE_REGISTRY.get(role) if isinstance(role, str) else None
    return entry.headline if entry else None


def model_rows(model: TrackedModel) -> pd.DataFrame:
    """One model's rows of track.csv."""
    heads = model.heads()
    n_layers, n_heads = model.shape
    frame = pd.DataFrame({
        "model": model.series, "checkpoint": model.label,
        "step": pd.array([model.step] * len(heads), dtype="Int64"), "argument": model.spec.argument,
        "n_layers": n_layers, "n_heads": n_heads, "layer": heads["layer"], "head": heads["head"],
        "role": heads["role"], "code": heads["role"].map(role_code),
    })
    for column in ROLE_MEASURES:  # NaN where the role rule does not give it
        frame[column] = heads[column] if column in heads else np.nan
    frame["confidence"] = heads["confidence"]
    frame["secondary"] = heads["secondary"].map(lambda s: ";".join(s))
    metrics = heads["role"].map(headline_metric)
    frame["headline_metric"] = metrics
    frame["headline"] = [heads.at[k, m] if isinstance(m, str) and m in heads else np.nan for k, m in metrics.items()]
    for m in METRICS:
        frame[m] = heads[m]
    for m in METRICS:
        frame[f"{m}_lift"] = heads[f"{m}_lift"]
    # Whether a head matters (classifier.measure.importance), carried when the runs measured it.
    for column in HEAD_IMPORTANCE_COLUMNS:  # NaN where the run measured no ablation
        frame[column] = heads[column] if column in heads else np.nan
    return frame


def track_table(tracking: Tracking) -> pd.DataFrame:
    """track.csv: one row per (model, step, layer, head): role, code, share explained (and the
    role rule's other per-head measures), confidence, the headline measure of the role, every
    metric value and lift, and the head it was compared with in the checkpoint before it (or the
    reference): the same head for checkpoints of one run, the matched head otherwise."""
    partner = {c.b: c for c in tracking.comparisons}
    frames = []
    for model in tracking.succeeded:
        frame = model_rows(model)
        comparison = partner.get(model.label)
        frame["compared_with"] = comparison.a if comparison else None
        frame["match"] = comparison.kind if comparison else None
        if comparison is not None:
            matches = comparison.matches.set_index(["layer", "head"])
            index = pd.MultiIndex.from_frame(frame[["layer", "head"]])
            for column in ("matched_layer", "matched_head", "matched_role", "similarity"):
                frame[column] = matches[column].reindex(index).to_numpy()
        frames.append(frame)
    columns = ["matched_layer", "matched_head", "matched_role", "similarity"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model", "step", "layer", "head"])
    for column in columns:
        if column not in table:
            table[column] = np.nan
    return table


def role_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Tidy: model, checkpoint, step, role, count, share (every registry role, and any other)."""
    roles = list(ROLES) + sorted(set(table["role"]) - set(ROLES))
    rows = []
    for (model, checkpoint), group in table.groupby(["model", "checkpoint"], sort=False):
        counts = group["role"].value_counts()
        doubt = group.loc[[doubtful(r, c) for r, c in zip(group["role"], group["confidence"])], "role"].value_counts()
        rows += [{"model": model, "checkpoint": checkpoint, "step": group["step"].iloc[0], "role": role,
                  "count": int(counts.get(role, 0)), "share": counts.get(role, 0) / len(group),
                  "in_doubt": int(doubt.get(role, 0))} for role in roles]
    return pd.DataFrame(rows, columns=["model", "checkpoint", "step", "role", "count", "share", "in_doubt"])


# What a star means, said under every table of role codes.
DOUBT_NOTE = (f"`*`: a role in doubt, confidence under {percent(DOUBT_CONFIDENCE)} (the role table's `?`: fewer "
              "than half of the bootstrap resamples give it, or it barely leads the next role).")


def role_cells(heads: pd.DataFrame) -> list[str]:
    """Role codes of `heads` (role and confidence columns), starred where the role is in doubt
    (`written_role`: the report writes it with a `?`, which is the code of `unclear` here)."""
    return [written_role(r, c, code=True) for r, c in zip(heads["role"], heads["confidence"])]


def role_grid(model: TrackedModel) -> pd.DataFrame:
    """Layer x head grid of role codes, starred where in doubt."""
    heads = model.heads()
    grid = heads.assign(cell=role_cells(heads)).pivot(index="layer", columns="head", values="cell")
    grid.columns = [str(c) for c in grid.columns]
    return grid.reset_index().rename(columns={"layer": "Layer"})


def _count_table(counts: pd.DataFrame, columns: list[tuple[str, str]]) -> str:
    """Role x (checkpoint) table of 'count (share)', with ', n*' for the n of them in doubt; only
    roles some column has."""
    counts = counts[counts["checkpoint"].isin([c for c, _ in columns])]
    shown = [r for r in counts["role"].unique() if counts.loc[counts["role"] == r, "count"].sum() > 0]
    table = pd.DataFrame({"Role": [f"{r} ({role_code(r)})" for r in shown]})
    for checkpoint, title in columns:
        mine = counts[counts["checkpoint"] == checkpoint].set_index("role")
        table[title] = [f"{mine.loc[r, 'count']} ({percent(mine.loc[r, 'share'])})"
                        + (f", {mine.loc[r, 'in_doubt']}*" if mine.loc[r, "in_doubt"] else "") for r in shown]
    return markdown_table(table)


def figure_names(series: str) -> tuple[str, str]:
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in series)
    return f"roles-{slug}.png", f"headline-{slug}.png"


def training_lines(name: str, rows: pd.DataFrame, counts: pd.DataFrame, drawn: set[str]) -> list[str]:
    """One training run: figures, when roles settle, the roles over steps, the counts per step."""
    n_layers = int(rows["n_layers"].iloc[0])
    steps = sorted(rows["step"].unique())
    settled = settling(rows[["step", "layer", "head", "role"]])
    last = rows[rows["step"] == steps[-1]].set_index(["layer", "head"])
    roles_png, headline_png = figure_names(name)
    lines = [f"## Training run {name}", "",
             f"{len(steps)} checkpoints, steps {', '.join(str(int(s)) for s in steps)}; "
             f"{n_layers} layer(s) x {int(rows['n_heads'].iloc[0])} heads. Checkpoints of one run share "
             "a layout, so each head is followed by identity.", ""]
    if roles_png in drawn:
        lines += [f"![Role of every head at every checkpoint]({roles_png})", ""]
    if headline_png in drawn:
        lines += [f"![Headline measure of the final role over steps]({headline_png})", ""]
    final_written = {key: written_role(r.role, r.confidence, star=True)
                     for key, r in zip(last.index, last.itertuples())}
    firm_keys = {key for key, r in zip(last.index, last.itertuples())
                 if r.role not in ("unclear", "broad") and not doubtful(r.role, r.confidence)}
    ended = settled[[(l, h) in firm_keys for l, h in zip(settled["layer"], settled["head"])]]
    summary = f"At step {int(steps[-1])}, {counts_text(last.reset_index(), code=True)}."
    if len(ended):
        late = ended[ended["settled_step"] == ended["settled_step"].max()]
        summary += (f" Half of the {len(ended)} heads with a firm role have settled by step "
                    f"{int(ended['settled_step'].quantile(0.5, interpolation='higher'))}; "
                    f"the last settle{'s' if len(late) == 1 else ''} at step {int(late['settled_step'].iloc[0])} "
                    f"({', '.join(head_label(r.layer, r.head, n_layers) for r in late.itertuples())}). "
                    f"{int((ended['first_step'] < ended['settled_step']).sum())} of them held their final role "
                    "earlier, lost it and came back.")
    lines += ["### When each head's final role settles", "",
              summary + " A head *settles* at the first checkpoint from which every later checkpoint gives "
              "its final role; `*`: the final role is in doubt (confidence under "
              f"{percent(DOUBT_CONFIDENCE)} or not measured).", ""]
    explained = "explained" in last and last["explained"].notna().any()
    for row in settled.sort_values(["settled_step", "layer", "head"]).itertuples():
        label = head_label(row.layer, row.head, n_layers)
        sentence = settling_sentence(row, label, final_written[(row.layer, row.head)])
        if row.final_role != "unclear":
            final = last.loc[(row.layer, row.head)]
            metric = headline_metric(row.final_role)
            evidence = []
            if metric and metric in final:
                value = final[metric]
                evidence.append(f"{metric} {number(value) if metric in UNSHARED_METRICS else percent(value)}")
            if explained:
                evidence.append(f"explains {percent(final['explained'])}")
            if evidence:
                said = f"at step {int(steps[-1])}: {', '.join(evidence)}"
                sentence = sentence[:-2] + f"; {said})." if sentence.endswith(").") else sentence[:-1] + f" ({said})."
        lines.append(f"- {sentence}")
    cells = rows.assign(cell=role_cells(rows))
    grid = cells.pivot_table(index=["layer", "head"], columns="step", values="cell", aggfunc="first")
    table = pd.DataFrame({"Head": [head_label(l, h, n_layers) for l, h in grid.index]})
    for step in steps:
        table[f"{int(step)}"] = grid[step].to_numpy()
    lines += ["", "### Roles over steps", "", "Primary role code of every head (columns: training steps); " + DOUBT_NOTE, "",
              markdown_table(table), "", "### Role counts per step", ""]
    checkpoints = rows.drop_duplicates("checkpoint")[["checkpoint", "step"]]
    lines.append(_count_table(counts[counts["model"] == name],
                              [(c.checkpoint, f"{int(c.step)}") for c in checkpoints.itertuples()]))
    return lines + [""]


def header_lines(tracking: Tracking, command: str | None) -> list[str]:
    s, corpus = tracking.settings, tracking.corpus
    lines = [
        "# Head roles across checkpoints",
        "",
        f"- Corpus: {corpus['name']} ({corpus['source']}), {corpus['stories']} stories, the same sample for every model",
        f"- Settings: max {s.max_tokens} tokens per story, seed {s.seed}, {s.bootstrap} bootstrap resamples",
        f"- Store: `{tracking.store}`",
        "- Browse: `track.html` beside this file steps through the checkpoints (role grid, each head's history)",
    ]
    if command:
        lines.append(f"- Command: `{command}`")
    for notice in corpus.get("notices") or ([corpus["notice"]] if corpus.get("notice") else []):
        lines.append(f"- Note: {notice}")
    lines += ["", "## Models", "", markdown_table(pd.DataFrame([
        {
            "Model": m.series or m.label, "Step": "" if m.step is None else str(m.step),
            "Argument": f"`{m.spec.argument}`",
            "Layout": f"{m.shape[0]} x {m.shape[1]}" if m.run is not None else "",
            "Status": m.status, "Run": f"`{m.path}`" if m.path else "",
        }
        for m in tracking.models
    ]))]
    if tracking.failed:
        lines += ["", "## Failed", ""] + [f"- `{m.spec.argument}`: {m.error}" for m in tracking.failed]
    return lines


def render_track(tracking: Tracking, command: str | None = None, figures: set[str] = frozenset()) -> str:
    """track.md; `figures` are the PNG names written beside it."""
    lines = header_lines(tracking, command)
    if not tracking.succeeded:
        return "\n".join(lines + [""])
    table = track_table(tracking)
    counts = role_counts(table)
    runs = tracking.series()
    legend = ", ".join(f"`{role_code(r)}` {r}" for r in ROLES)
    lines += ["", f"Role codes: {legend}.", ""]
    for name, models in runs.items():
        if len(models) > 1:
            lines += training_lines(name, table[table["model"] == name], counts, figures)
    finals = [models[-1] for models in runs.values()]
    title = "Final checkpoints" if any(len(m) > 1 for m in runs.values()) else "Models"
    lines += [f"## {title}: role counts", "", "Heads per primary role, and their share of the model's heads.", "",
              _count_table(counts, [(m.label, m.label) for m in finals]),
              "", f"## {title}: role grids", "",
              "Primary role of every head (rows: layers, columns: heads); " + DOUBT_NOTE]
    for model in finals:
        lines += ["", f"### {model.label}", "", markdown_table(role_grid(model))]
    between = [c for c in tracking.comparisons if c.kind == "similarity"]
    if between:
        lines += ["", *comparison_lines(tracking, between)]
    return "\n".join(lines + [""])


def comparison_lines(tracking: Tracking, comparisons) -> list[str]:
    """Heads of different runs or shapes matched by metric profile."""
    how = ("each model against the one listed before it" if tracking.compare == "consecutive"
           else "each model against the first")
    lines = [
        "## Heads matched across models",
        "",
        f"Pairs: {how} (for a training run, its last checkpoint). Head indices of independently "
        "trained models do not correspond, so heads are paired one-to-one (scipy `linear_sum_assignment`) "
        "to maximise the total cosine similarity of their metric profiles: the metric values except "
        f"`distance`, each standardised over the heads of both models (std floored at {STD_FLOOR}), so "
        "similarity 1 means the same pattern of above- and below-average attention on every target. "
        f"A pair less similar than {SIMILARITY_FLOOR} is not called matched (unrelated heads scatter "
        "around 0). `Nearest` is the most similar head regardless of the one-to-one constraint.",
    ]
    shapes = {m.label: m for m in tracking.succeeded}
    for c in comparisons:
        n_a, n_b = shapes[c.a].shape[0], shapes[c.b].shape[0]
        matched = c.matches.dropna(subset=["matched_layer"])
        agree = int((matched["role"] == matched["matched_role"]).sum())
        lines += ["", f"### {c.b} vs {c.a}", "",
                  f"{len(matched)} of {len(c.matches)} heads matched (similarity at least {SIMILARITY_FLOOR}); "
                  f"mean similarity of the matched pairs {number(matched['similarity'].mean())}; "
                  f"{agree} of {len(matched)} matched pairs share their primary role.", ""]
        lines.append(markdown_table(pd.DataFrame({
            f"Head of {c.b}": [head_label(r.layer, r.head, n_b) for r in c.matches.itertuples()],
            "Role": list(c.matches["role"]),
            f"Matched head of {c.a}": [
                head_label(int(r.matched_layer), int(r.matched_head), n_a) if np.isfinite(r.matched_layer)
                else f"none (best {number(r.assigned_similarity)})" if np.isfinite(r.assigned_similarity)
                else "none (no head left)"
                for r in c.matches.itertuples()
            ],
            "Its role": [r if isinstance(r, str) else "" for r in c.matches["matched_role"]],
            "Similarity": [number(x) if np.isfinite(x) else "" for x in c.matches["similarity"]],
            "Nearest": [
                f"{head_label(r.nearest_layer, r.nearest_head, n_a)} ({number(r.nearest_similarity)})"
                for r in c.matches.itertuples()
            ],
        })))
    return lines


def track_files(tracking: Tracking, *, command: str | None = None, figures: bool = True) -> dict[str, bytes]:
    """Every file of a track folder by name: track.md, track.csv, track.html and, per training run, its figures."""
    from classifier.track.figures import headline_steps, role_steps
    from classifier.track.html import render_track_html

    table = track_table(tracking)
    drawn: dict[str, bytes] = {}
    if figures:
        for name, models in tracking.series().items():
            if len(models) < 2:
                continue
            rows = table[table["model"] == name]
            roles_png, headline_png = figure_names(name)
            drawn[roles_png] = role_steps(rows, name)
            final = settling(rows[["step", "layer", "head", "role"]])
            picture = headline_steps(rows, final, name)
            if picture is not None:
                drawn[headline_png] = picture
    return {
        "track.md": render_track(tracking, command, set(drawn)).encode(),
        "track.csv": table.to_csv(index=False).encode(),
        "track.html": render_track_html(table, title="Head roles across checkpoints", command=command).encode(),
        **drawn,
    }


def write_track(tracking: Tracking, out_dir: str | Path, *, command: str | None = None, figures: bool = True,
                force: bool = False) -> Path:
    """Write the track folder (atomically; nothing else in out_dir is touched; a file of the user's
    under an output's name stops it unless `force`); returns out_dir."""
    from classifier.outputs import write_files

    return write_files(out_dir, track_files(tracking, command=command, figures=figures), force=force)



TRACK_OUTPUTS = ("track.md", "track.csv", "track.html")


def track_and_write(models, corpus: str, settings, *, out_dir: str | Path, store: str | Path | None = None,
                    compare="consecutive",
                    tokenizer: str | None = None, jobs: int = 1, run_figures: bool = False, figures: bool = True,
                    force: bool = False, command: str | None = None, log=None, ray: str | None = None) -> Tracking:
    """`head-roles track`: check the output folders, score (or reuse) every model, write the track
    folder. `store`: the run store (None: OUT/runs); `run_figures`: each run's own figures in the
    store; `figures`: the track's; `ray`: a Ray address (or "local") to score the missing runs as Ray tasks."""
    from classifier.outputs import check_output_dir
    from classifier.track.store import default_store
    from classifier.track.tracking import track

    store = default_store(out_dir) if store is None else store

    check_output_dir(out_dir, outputs=TRACK_OUTPUTS, force=force)  # before any model is loaded
    check_output_dir(store, option="--store")
    tracking = track(models, corpus, settings, store=store, compare=compare, tokenizer=tokenizer,
                     figures=run_figures, jobs=jobs, log=log, ray=ray)
    write_track(tracking, out_dir, command=command, figures=figures, force=force)
    return tracking
