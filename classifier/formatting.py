"""The one number formatter, head naming and role writing for every rendered view (Markdown,
HTML, track) and the Python API's summaries."""

from __future__ import annotations

import math

from classifier.registry import role_code
from classifier.thresholds import DOUBT_CONFIDENCE


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


def _known(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def doubtful(role: str, confidence) -> bool:
    """A named role in doubt: its confidence is under DOUBT_CONFIDENCE, or unknown (too few
    stories for the bootstrap, or none run). `unclear` is no claim to doubt."""
    return role != "unclear" and not (_known(confidence) and float(confidence) >= DOUBT_CONFIDENCE)


def written_role(role: str, confidence, *, code: bool = False, star: bool | None = None) -> str:
    """How every table, sentence and count writes a role: `delimiter?` when in doubt, and in
    grids of short codes `DELIM*` (`?` would read as the code of `unclear`); `star` puts the
    grid's `*` on a full name too (track.md's sentences, beside its grids)."""
    mark = "*" if (code if star is None else star) else "?"
    return (role_code(role) if code else role) + (mark if doubtful(role, confidence) else "")


def role_counts(roles, *, code: bool = False) -> str:
    """`40 heads: 28 with a firm role, 8 in doubt (?), 1 broad, 3 unclear; local 15 (2?), ...`
    from a frame with role and confidence columns: every count says how many are in doubt and
    how many are `broad` (near uniform, no target)."""
    rows = list(zip(roles["role"], roles["confidence"] if "confidence" in roles else [math.nan] * len(roles)))
    mark = "*" if code else "?"
    doubt = [doubtful(role, c) for role, c in rows]
    broad = sum(role == "broad" for role, _ in rows)
    unclear = sum(role == "unclear" for role, _ in rows)
    in_doubt = sum(d for (role, _), d in zip(rows, doubt) if role != "broad")
    firm = len(rows) - broad - unclear - in_doubt
    per_role: dict[str, list[int]] = {}
    for (role, _), d in zip(rows, doubt):
        per_role.setdefault(role, [0, 0])
        per_role[role][0] += 1
        per_role[role][1] += int(d)
    order = sorted(per_role, key=lambda r: (-per_role[r][0], r))
    each = ", ".join(f"{role} {n}" + (f" ({d}{mark})" if d else "") for role, (n, d) in ((r, per_role[r]) for r in order))
    return (f"{len(rows)} heads: {firm} with a firm role, {in_doubt} in doubt ({mark}), {broad} broad, {unclear} unclear; "
            + each)
