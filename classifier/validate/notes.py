"""Reading researchers' notes: every Markdown table of a file whose rows describe heads.

A table counts when its first column (or a column headed `Head`, `Layer.Head`, `L.H`, `#`, ...)
identifies heads: `0.3`, `L0H3`, `L0.H3`, `0:3`, `head 3`, or a bare `3` for one-layer models,
optionally with a separate `Layer` column (a blank layer cell repeats the row above) or a
`## Layer 2` heading above the table. The description is the column headed Description, Notes,
Role, Behaviour, Pattern, ... (several are joined, a short Role cell first) or else the longest
text column; other columns are kept as `extra`. Tables that identify no heads are skipped.

This module only reads text; it does not know roles or models. Every input error is a
`ValidateError` with one line, "FILE:LINE: what is wrong".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from classifier.errors import InputError


class ValidateError(InputError):
    """Bad descriptions input; the message is one line, "FILE:LINE: message"."""


@dataclass(frozen=True)
class HeadDescription:
    """One row of a hand-written table. `layer` is None for a bare index ("3", "Head 3")."""

    label: str  # the head id as written
    layer: int | None
    head: int
    text: str  # the description as written (Role cell, then Description cell), hedges included
    line: int
    source: str
    extra: dict = field(default_factory=dict, compare=False)  # other columns, by header


# Headers that name the head column, the layer column and description columns (lower case,
# stripped of ** and backticks).
HEAD_HEADERS = re.compile(r"(?:heads?|layer\s*[./:]\s*head|l\s*[./:]?\s*h|heads?\s*\(.*\)|#|id|head id|no\.?)")
LAYER_HEADERS = re.compile(r"(?:layer|l|layer #|layer no\.?)")
DESCRIPTION_HEADERS = (  # in the order their cells are joined: a short label first
    "role", "roles", "label", "type", "kind", "role (guess)", "guess",
    "description", "descriptions", "notes", "note", "behaviour", "behavior", "pattern", "patterns",
    "what it does", "attends to", "observation", "observations", "comment", "comments", "interpretation",
    "summary", "function", "hypothesis", "details", "remarks",
)
HEAD_ID_FORMS = (  # (pattern, has a layer); matched on the cell stripped of ** and backticks
    (r"(?:head\s*|h|#)?(\d+)", False),
    (r"l(?:ayer)?\s*(\d+)\s*[.:,/_-]?\s*h(?:ead)?\s*(\d+)", True),
    (r"(?:head\s*)?\(?(\d+)\s*[.:,/]\s*(\d+)\)?", True),
)
RULE = re.compile(r"\s*\|?(\s*:?-+:?\s*\|)+\s*(:?-*:?)?\s*\|?\s*")
LAYER_HEADING = re.compile(r"^\s*#+\s*.*?\blayer\s*(\d+)\b", re.IGNORECASE)


def _cells(line: str) -> list[str]:
    """Cells of a Markdown table row; `\\|` is a literal bar."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def _plain(cell: str) -> str:
    return re.sub(r"[*_`]", "", cell).strip().lower()


def parse_head_id(label: str) -> tuple[int | None, int] | None:
    """(layer or None, head) from `3`, `Head 3`, `L0H3`, `0.3`, `0:3`, `L0.H3`; None if unreadable."""
    plain = re.sub(r"[*`]", "", label).strip().lower()
    for pattern, has_layer in HEAD_ID_FORMS:
        found = re.fullmatch(pattern, plain)
        if found:
            numbers = [int(g) for g in found.groups()]
            return (numbers[0], numbers[1]) if has_layer else (None, numbers[0])
    return None


@dataclass(frozen=True)
class _Layout:
    """Which column is what in one table."""

    head: int
    layer: int | None
    text: tuple[int, ...]  # description columns, joined in this order
    names: tuple[str, ...]  # headers as written


def _layout(header: list[str], body: list[list[str]]) -> _Layout | None:
    """Columns of a table whose rows describe heads, or None for any other table."""
    plain = [_plain(c) for c in header]
    layer = next((k for k, name in enumerate(plain) if LAYER_HEADERS.fullmatch(name)), None)
    named = [k for k, name in enumerate(plain) if k != layer and HEAD_HEADERS.fullmatch(name)]
    if named:
        head = named[0]
    else:
        # An unnamed first column identifies heads when its cells read as head ids.
        head = 0 if layer != 0 else 1
        ids = [row[head] for row in body if head < len(row) and row[head].strip()]
        if not ids or sum(parse_head_id(i) is not None for i in ids) < 0.8 * len(ids):
            return None
    rest = [k for k in range(len(header)) if k not in (head, layer)]
    text = [k for name in DESCRIPTION_HEADERS for k in rest if plain[k] == name]
    if not text and rest:  # the longest text column
        text = [max(rest, key=lambda k: sum(len(row[k]) for row in body if k < len(row)))]
    if not text:
        return None
    return _Layout(head, layer, tuple(text), tuple(header))


def _joined(cells: list[str], columns: tuple[int, ...]) -> str:
    """The description cells of a row joined as sentences (a Role cell reads as the first one)."""
    parts = [cells[k].strip() for k in columns if k < len(cells) and re.search(r"\w", cells[k])]
    return " ".join(p if re.search(r"[.!?:;]$", p) or k == len(parts) - 1 else p + "." for k, p in enumerate(parts))


def parse_descriptions(text: str, *, source: str = "<text>") -> list[HeadDescription]:
    """Every head row of every table in `text` (fenced code is skipped)."""
    lines = text.splitlines()
    rows: list[HeadDescription] = []
    seen: dict[tuple[int | None, int], int] = {}
    fenced, heading_layer, k = False, None, 0
    while k < len(lines):
        line = lines[k]
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced:
            k += 1
            continue
        if LAYER_HEADING.match(line):
            heading_layer = int(LAYER_HEADING.match(line).group(1))
        elif line.lstrip().startswith("#"):
            heading_layer = None
        is_table = line.lstrip().startswith("|") and k + 1 < len(lines) and RULE.fullmatch(lines[k + 1])
        if not is_table:
            k += 1
            continue
        header, start = _cells(line), k + 2
        end = start
        while end < len(lines) and lines[end].lstrip().startswith("|"):
            end += 1
        body = [_cells(lines[n]) for n in range(start, end)]
        layout = _layout(header, body)
        if layout is not None:
            previous_layer = None
            for n, cells in zip(range(start, end), body):
                row = _table_row(cells, n + 1, layout, source, seen, previous_layer, heading_layer)
                if row is not None:
                    rows.append(row)
                    previous_layer = row.layer
        k = end
    if not rows:
        raise ValidateError(
            f"{source}:1: no table of heads found (a Markdown table whose first column holds head ids "
            "such as 3, 0.3 or L0H3, with a description column)"
        )
    return rows


def _table_row(cells: list[str], number: int, layout: _Layout, source: str, seen: dict,
               previous_layer: int | None, heading_layer: int | None) -> HeadDescription | None:
    if not any(re.search(r"\w", c) for c in cells):
        return None  # a blank spacer row
    label = cells[layout.head] if layout.head < len(cells) else ""
    parsed = parse_head_id(label)
    if parsed is None:
        raise ValidateError(f"{source}:{number}: cannot read head id {label!r} (write 3, Head 3, L0H3, 0.3 or 0:3)")
    layer, head = parsed
    if layout.layer is not None and layer is None:
        cell = _plain(cells[layout.layer]) if layout.layer < len(cells) else ""
        if cell:
            found = re.fullmatch(r"(?:l(?:ayer)?\s*)?(\d+)", cell)
            if not found:
                raise ValidateError(f"{source}:{number}: cannot read layer {cells[layout.layer]!r}")
            layer = int(found.group(1))
        else:
            layer = previous_layer  # a blank layer cell repeats the row above
    if layer is None:
        layer = heading_layer
    description = _joined(cells, layout.text)
    if not re.search(r"\w", description):
        raise ValidateError(f"{source}:{number}: head {label} has an empty description")
    if (layer, head) in seen:
        raise ValidateError(f"{source}:{number}: head {label} is described twice (first at line {seen[(layer, head)]})")
    seen[(layer, head)] = number
    extra = {layout.names[k]: cells[k] for k in range(min(len(cells), len(layout.names)))
             if k not in (layout.head, layout.layer, *layout.text)}
    shown = label if layer is None or parsed[0] is not None else f"{layer}.{head}"
    return HeadDescription(label=shown, layer=layer, head=head, text=description, line=number, source=source,
                           extra=extra)


def read_descriptions(path: str | Path) -> list[HeadDescription]:
    """`parse_descriptions` of a file; a binary or non-UTF-8 file is a ValidateError."""
    path = Path(path)
    data = path.read_bytes()
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ValidateError(f"{path}:{line}: not a text file (binary data)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValidateError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x})") from None
    return parse_descriptions(text, source=str(path))


def resolve_heads(descriptions: list[HeadDescription], n_layers: int, n_heads: int) -> list[HeadDescription]:
    """Give every head its layer and check it exists; a bare index needs a one-layer model."""
    resolved, seen = [], {}
    for d in descriptions:
        where = f"{d.source}:{d.line}"
        if d.layer is None and n_layers != 1:
            raise ValidateError(
                f"{where}: head {d.label!r} is ambiguous for a {n_layers}-layer model "
                f"(write L0H{d.head} or 0.{d.head}, or add a Layer column)"
            )
        layer = 0 if d.layer is None else d.layer
        if not (0 <= layer < n_layers and 0 <= d.head < n_heads):
            raise ValidateError(
                f"{where}: head {d.label} is out of range: the model has {n_layers} layer(s) x {n_heads} heads"
            )
        if (layer, d.head) in seen:
            raise ValidateError(f"{where}: head {d.label} is described twice (first at line {seen[(layer, d.head)]})")
        seen[(layer, d.head)] = d.line
        resolved.append(HeadDescription(d.label, layer, d.head, d.text, d.line, d.source, d.extra))
    return resolved
