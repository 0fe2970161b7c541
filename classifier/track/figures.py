"""PNG figures of a training track, drawn from track.csv's rows. Matplotlib only here.

`role_steps` shows every head's role at every checkpoint (colour = role, shade = the share of
the head's attention its role explains) above the role counts per checkpoint; `headline_steps`
follows, for each head that ends with a role, that role's headline measure over the steps, on a
step axis (log where the steps span decades); `hold` is a share of queries, and says so.
Both read the tidy frame classifier.track.report.track_table builds; nothing here scores.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from classifier.formatting import head_label
from classifier.registry import ROLE_COLORS, ROLE_REGISTRY, ROLES, role_code

# An unknown role (a rule newer than this file) is drawn in grey rather than failing.
UNKNOWN_COLOUR = (0.55, 0.55, 0.55)
# The lightest shade a role cell gets, so a head whose role explains little stays visible.
MIN_SHADE = 0.15
# Steps spanning this ratio (largest over smallest non-zero step) or more go on a log axis: the
# development models' checkpoints (25, 50, 100, ..., 2500) bunch up at the left of a linear one.
LOG_STEP_SPAN = 100
# The y axis of a headline metric that is not a share of the head's attention.
METRIC_UNITS = {"hold": "share of queries", "entropy": "entropy", "max_weight": "max weight"}


def role_colours() -> dict[str, tuple[float, float, float]]:
    """report.html's colour of every registry role (classifier.registry.ROLE_COLORS), as RGB in 0..1,
    so that the figures, report.html and track.html colour a role alike."""
    from matplotlib.colors import to_rgb


    return {role: to_rgb(ROLE_COLORS[role]) for role in ROLES}


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    plt.close(fig)
    return buffer.getvalue()


def role_steps(rows: pd.DataFrame, title: str) -> bytes:
    """Heads (rows) x checkpoints (columns), colour = role, shade = share explained (full colour
    when the role rule gives no share); below, the role counts at each checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = role_colours()
    steps = sorted(rows["step"].unique())
    heads = rows[["layer", "head"]].drop_duplicates().sort_values(["layer", "head"])
    n_layers = int(rows["layer"].max()) + 1
    grid = rows.pivot_table(index=["layer", "head"], columns="step", values="role", aggfunc="first")
    grid = grid.reindex(pd.MultiIndex.from_frame(heads), columns=steps)
    has_share = "explained" in rows and rows["explained"].notna().any()
    shade = (rows.pivot_table(index=["layer", "head"], columns="step", values="explained", aggfunc="first")
             .reindex(grid.index, columns=steps).to_numpy(dtype=float) if has_share
             else np.ones(grid.shape))
    alpha = np.clip(np.nan_to_num(shade, nan=1.0), MIN_SHADE, 1.0)[..., None]  # (H, S, 1)
    base = np.array([[colours.get(r, UNKNOWN_COLOUR) for r in row] for row in grid.to_numpy()])  # (H, S, 3)
    image = 1.0 - alpha * (1.0 - base)  # blended with white

    n_heads = len(heads)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(2.5 + 0.75 * len(steps), 2.8 + 0.24 * n_heads), dpi=100,
        gridspec_kw={"height_ratios": [max(n_heads, 4), 6]},
    )
    top.imshow(image, aspect="auto", interpolation="nearest")
    light = image @ np.array([0.299, 0.587, 0.114]) > 0.6  # (H, S): dark ink on light cells
    for (i, j), role in np.ndenumerate(grid.to_numpy()):
        top.text(j, i, role_code(role), ha="center", va="center", fontsize=6, color="black" if light[i, j] else "white")
    top.set_xticks(range(len(steps)), [str(s) for s in steps], fontsize=7)
    top.set_yticks(range(n_heads), [head_label(l, h, n_layers) for l, h in grid.index], fontsize=7)
    top.set_ylabel("head")
    top.set_title(f"{title}: role of every head at every checkpoint\n"
                  + ("shade: share of attention the role explains" if has_share else "(no share explained in these runs)"),
                  fontsize=9)

    counts = rows.groupby(["step", "role"]).size().unstack(fill_value=0).reindex(steps, fill_value=0)
    order = [r for r in ROLES if r in counts.columns] + [r for r in counts.columns if r not in ROLES]
    bottom_edge = np.zeros(len(steps))
    for role in order:
        values = counts[role].to_numpy()
        bottom.bar(range(len(steps)), values, bottom=bottom_edge, color=colours.get(role, UNKNOWN_COLOUR),
                   edgecolor="white", linewidth=0.5)
        bottom_edge += values
    bottom.set_xticks(range(len(steps)), [str(s) for s in steps], fontsize=7)
    bottom.set_xlabel("training step")
    bottom.set_ylabel("heads")
    bottom.set_xlim(top.get_xlim())
    present = [r for r in order if counts[r].sum() > 0]
    handles = [Patch(color=colours.get(r, UNKNOWN_COLOUR), label=f"{role_code(r)} {r}") for r in present]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(handles) + 3) // 4), 1, 1))
    return _png(fig)


def step_axis(ax, steps) -> None:
    """Training steps at their values: linear, or where they span LOG_STEP_SPAN or more a log axis
    (symlog: linear below the first non-zero step, so that step 0 keeps its place)."""
    positive = [s for s in steps if s > 0]
    if positive and max(positive) / min(positive) >= LOG_STEP_SPAN:
        ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
    ax.set_xticks(steps, [str(s) for s in steps], fontsize=6, rotation=45)
    ax.minorticks_off()
    ax.set_xlabel("training step" + (" (log scale)" if ax.get_xscale() == "symlog" else ""), fontsize=7)


def headline_steps(rows: pd.DataFrame, final_roles: pd.DataFrame, title: str) -> bytes | None:
    """One panel per final role: that role's headline measure over the steps, one line per head
    ending with the role. None when no head ends with a role that has a headline measure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    palette = matplotlib.colormaps["tab10"].colors
    ends = final_roles[final_roles["final_role"].map(
        lambda r: r in ROLE_REGISTRY and ROLE_REGISTRY[r].headline is not None and ROLE_REGISTRY[r].headline in rows)]
    if ends.empty:
        return None
    roles = [r for r in ROLES if r in set(ends["final_role"])]
    steps = sorted(rows["step"].unique())
    n_layers = int(rows["layer"].max()) + 1
    columns = min(3, len(roles))
    lines = int(np.ceil(len(roles) / columns))
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.0 * lines), squeeze=False, dpi=100)
    for ax in axes.ravel()[len(roles):]:
        ax.axis("off")
    for ax, role in zip(axes.ravel(), roles):
        metric = ROLE_REGISTRY[role].headline
        mine = ends[ends["final_role"] == role]
        for k, head in enumerate(mine.itertuples()):
            series = rows[(rows["layer"] == head.layer) & (rows["head"] == head.head)].sort_values("step")
            colour = palette[k % len(palette)]  # heads told apart within the panel
            ax.plot(series["step"], series[metric], marker="o", markersize=3,
                    color=colour, label=head_label(head.layer, head.head, n_layers))
        unit = METRIC_UNITS.get(metric, "share of attention")
        ax.set_title(f"{len(mine)} head(s) ending {role}: {metric} ({unit})", fontsize=8)
        step_axis(ax, steps)
        ax.set_ylim(0, 1)
        ax.set_ylabel(unit, fontsize=7)
        ax.grid(alpha=0.3)
        if len(mine) <= 8:
            ax.legend(fontsize=6, title="head", title_fontsize=6)
    fig.suptitle(f"{title}: headline measure of the final role over training steps", fontsize=9)
    fig.tight_layout()
    return _png(fig)
