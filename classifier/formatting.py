"""The one number formatter and head naming for every rendered view (Markdown, HTML, track)."""

from __future__ import annotations

import math


def percent(x: float, digits: int = 0) -> str:
    """0.456 -> '46%'; 'n/a' for a missing value."""
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def number(x: float, digits: int = 2) -> str:
    """A plain number with `digits` decimals; 'n/a' for a missing value."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def times(x: float) -> str:
    """A lift: 36.2 -> '36x', 2.46 -> '2.5x'."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


def head_label(layer: int, head: int, n_layers: int) -> str:
    """`6` for one-layer models, `L.H` otherwise (as researchers' tables write them)."""
    return str(head) if n_layers == 1 else f"{layer}.{head}"


def token(text: str) -> str:
    """A token as inline code: backticks made harmless, newlines shown as \\n."""
    return "`" + text.replace("`", "'").replace("\n", "\\n") + "`"


def markdown_table(frame) -> str:
    """A GitHub Markdown table of a DataFrame; `|` in cells is escaped."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = [
        "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", "\\n") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])
