"""PNG figures of a run: the lift heatmap and every head on the prompt. Matplotlib only here."""

from __future__ import annotations

import io

import numpy as np

from classifier.formatting import head_label, written_role
from classifier.registry import METRICS

# Metrics that are shares of attention (shown as percentages); the others are plain numbers.
SHARE_METRICS = tuple(m for m in METRICS if m not in ("entropy", "max_weight", "distance"))
FIGURE_TITLES = {"lift-heatmap.png": "Lift over uniform, heads x metrics", "prompt-patterns.png": "Each head on the prompt"}


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    plt.close(fig)
    return buffer.getvalue()


def _short(name: str, limit: int = 48) -> str:
    """A model name that fits a title: long paths keep their last parts."""
    return name if len(name) <= limit else "..." + name[-(limit - 3):]


def lift_metrics(run) -> list[str]:
    """The heatmaps' columns: share metrics the run has a lift of (hold has none)."""
    return [m for m in SHARE_METRICS if f"{m}_lift" in run.metrics.columns and run.metrics[f"{m}_lift"].notna().any()]


def lift_heatmap(run) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_layers = run.model.n_layers
    labels = [head_label(r.layer, r.head, n_layers) for r in run.metrics.itertuples()]
    metrics = lift_metrics(run)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.log2(run.metrics[[f"{m}_lift" for m in metrics]].to_numpy(dtype=float))
    fig, ax = plt.subplots(figsize=(1 + 0.55 * len(metrics), 1.5 + 0.28 * len(labels)), dpi=110)
    image = ax.imshow(np.clip(lift, -4, 6), cmap="RdBu_r", vmin=-6, vmax=6, aspect="auto")
    ax.set_xticks(range(len(metrics)), metrics, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylabel("head")
    ax.set_title(f"{_short(run.model.name)}\nlift over uniform attention (log2)", fontsize=9)
    fig.colorbar(image, ax=ax, label="log2 lift")
    fig.tight_layout()
    return _png(fig)


def prompt_grid(run) -> bytes:
    """Every head's pattern on the prompt, layer by layer. One image on one set of axes: a grid of
    matplotlib axes (one per head) and its layout cost about a second for 40 heads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    view, n_layers = run.prompt, run.model.n_layers
    n_heads, size = view.patterns.shape[1], view.patterns.shape[-1]
    columns = min(n_heads, 8 if n_layers > 1 else 4)
    rows_per_layer = int(np.ceil(n_heads / columns))
    rows = n_layers * rows_per_layer
    gap = max(2, size // 4)  # blank above each pattern (its title) and to its right
    cell = size + gap
    canvas = np.full((rows * cell, columns * cell - gap), np.nan, dtype=np.float32)  # NaN: background
    roles = {(r.layer, r.head): written_role(r.role, getattr(r, "confidence", np.nan)) for r in run.roles.itertuples()}
    fig = plt.figure(figsize=(2.2 * columns, 2.3 * rows), dpi=90)
    ax = fig.add_axes((0.005, 0.005, 0.99, 0.94))
    ax.axis("off")
    for layer, head in np.ndindex(view.patterns.shape[:2]):
        top, left = (layer * rows_per_layer + head // columns) * cell + gap, (head % columns) * cell
        canvas[top : top + size, left : left + size] = view.patterns[layer, head]
        ax.text(left + size / 2, top - 0.6, f"{head_label(layer, head, n_layers)}: {roles[(layer, head)]}",
                ha="center", va="bottom", fontsize=8)
    ax.imshow(np.ma.masked_invalid(canvas), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(f"Attention on the prompt ({len(view.tokens)} tokens, rows = queries)")
    return _png(fig)


def draw_figures(run) -> dict[str, bytes]:
    """Every figure of a run, by file name."""
    figures = {"lift-heatmap.png": lift_heatmap(run)}
    if run.prompt.patterns.size:
        figures["prompt-patterns.png"] = prompt_grid(run)
    return figures
