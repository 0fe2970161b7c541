"""Reading researchers' notes: every table, list item and paragraph of a file that is about heads.

- **Tables** whose rows are heads, with or without a header row: a head column (`0.3`, `L0H3`,
  `L0.H3`, `0:3`, `head 3`, or a bare `3` for one-layer models), optionally a separate `Layer`
  column (a blank layer cell repeats the row above) or a `## Layer 2` heading above the table. The
  description is the column headed Description, Notes, Role, Behaviour, Pattern, ... (several are
  joined, a short Role cell first) or else the longest text column; columns of numbers are kept as
  `measures` ("previous 23%"), read for numbers but never for claims; other columns are `extra`.
- **Summary tables** that list heads per kind (`| previous token | 4 | 0.6, 1.3, 1.6, 3.6 |`):
  each listed head gets the kind as a `listing` (judged beside the head's own row, if it has one).
- **List items and paragraphs** that open with heads: `- L1H5: attends to names`, `Head 3: ...`,
  `**0.6** — ...`, `Heads 1 and 2: ...`; and `- previous token: 0.6, 1.3` lists heads per kind.
A table, list item or row that is about no head is skipped and said in one `Note:`; a file with
nothing about heads is an error.

This module only reads text; it does not know roles or models. Every input error is a
`ValidateError` with one line, "FILE:LINE: what is wrong".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from classifier.errors import InputError, notify


class ValidateError(InputError):
    """Bad descriptions input; the message is one line, "FILE:LINE: message"."""


@dataclass(frozen=True)
class HeadDescription:
    """What one table row, list item or paragraph says of one head. `layer` is None for a bare
    index ("3", "Head 3"); `listing` marks a summary table's kind ("previous token")."""

    label: str  # the head id as written
    layer: int | None
    head: int
    text: str  # the description as written (Role cell, then Description cell), hedges included
    line: int
    source: str
    extra: dict = field(default_factory=dict, compare=False)  # other columns, by header
    measures: str = ""  # number columns as "header value" sentences, read for numbers only
    listing: bool = False  # a summary table's (or list's) kind, not the head's own row
    block: int = field(default=0, compare=False)  # which table or list item it came from
    in_table: bool = field(default=True, compare=False)  # a table row, not a list item or paragraph
    listings: tuple["HeadDescription", ...] = ()  # after `resolve_heads`: the summary kinds of this head


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
LAYER_HEADING = re.compile(r"^\s*(?:#+\s*.*?\blayer\s*(\d+)\b|(?:[-*+]\s+)?[*_]*layer\s*(\d+)[*_]*\s*:?[*_]*\s*$)",
                           re.IGNORECASE)
LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
# Where a list item's or paragraph's head ids end: "L1H5: ...", "Head 3 — ...", "0.6 - ...".
ITEM_SEPARATOR = re.compile(r"\s*(?::|—|–|\s-\s|\)\s)\s*")
# Prose that opens with heads named as such: "Head 0.6 mostly looks at ...", "L1H3 attends to ...".
_NAMED_HEAD = r"(?:l\d+\s*[.:]?\s*h\d+|heads?\s+\d+(?:[.:]\d+)?|layer\s*\d+\s*,?\s*head\s*\d+)"
PROSE_HEADS = re.compile(rf"(?:in\s+)?[*_`]*(?P<label>{_NAMED_HEAD}(?:\s*(?:,|and|&)\s*(?:{_NAMED_HEAD}|\d+(?:[.:]\d+)?))*)[*_`]*"
                         r"\s+(?P<rest>[A-Za-z(~].*)", re.IGNORECASE)
SENTENCE_ON_HEADS = re.compile(rf"(?<=[.!?])\s+(?=(?:in\s+)?[*_`]*{_NAMED_HEAD}\b)", re.IGNORECASE)
# A cell of numbers only ("23%", "0.45", "13x"): a measurement column.
NUMBER_CELL = re.compile(r"\s*[~≈]?\s*\d*\.?\d+\s*(?:%|x|×)?\s*(?:\(\s*\d*\.?\d+\s*(?:%|x|×)?\s*\))?\s*")


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


def parse_head_ids(text: str) -> list[tuple[int | None, int]] | None:
    """Every head of `0.6, 1.3 and 3.6`, `Heads 4, 8`, `L0H1 / L1H2` (or one id); None unless all read."""
    plain = re.sub(r"[*`_]", "", text).strip().lower()
    single = parse_head_id(plain)
    listed = _head_list(re.sub(r"^heads?\s*", "", plain))
    if listed and (single is None or len(listed) > 1 and not plain.startswith("(")):
        return listed  # "0, 5" lists heads 0 and 5; "(0, 5)" and "Layer 0, Head 5" name one
    return [single] if single is not None else None


def _head_list(plain: str) -> list[tuple[int | None, int]] | None:
    ids = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;&/]|\band\b", plain))):
        found = parse_head_id(part)
        words = [parse_head_id(w) for w in part.split()] if found is None else [found]
        if not words or None in words:
            return None
        ids += words
    return ids or None


@dataclass(frozen=True)
class _Layout:
    """Which column is what in one table."""

    head: int
    layer: int | None
    text: tuple[int, ...]  # description columns, joined in this order
    names: tuple[str, ...]  # headers as written ("" for a table without a header row)
    measures: tuple[int, ...] = ()  # columns of numbers
    listing: bool = False  # the head column lists several heads per row (a summary table)


def _reads_as_heads(cells: list[str]) -> tuple[bool, bool]:
    """(whether at least 80% of the non-empty cells read as head ids or lists of them, whether a
    cell lists several heads)."""
    cells = [c for c in cells if c.strip()]
    parsed = [parse_head_ids(c) for c in cells]
    enough = bool(cells) and sum(p is not None for p in parsed) >= 0.8 * len(cells)
    return enough, any(p is not None and len(p) > 1 for p in parsed)


def _layout(header: list[str] | None, body: list[list[str]]) -> _Layout | None:
    """Columns of a table whose rows are heads (or list heads per kind), or None for any other table."""
    width = max(len(row) for row in [*(body or [[]]), header or []])
    plain = [_plain(c) for c in header] + [""] * (width - len(header)) if header else [""] * width
    column = [[row[k] if k < len(row) else "" for row in body] for k in range(width)]
    layer = next((k for k, name in enumerate(plain) if LAYER_HEADERS.fullmatch(name)), None)
    named = [k for k, name in enumerate(plain) if k != layer and HEAD_HEADERS.fullmatch(name)]
    reads = [_reads_as_heads(cells) for cells in column]
    lists = [k for k in range(width) if k != layer and all(reads[k])]
    if lists:  # a summary table: a column lists several heads per row
        head = lists[0]
    elif named:  # a named head column: rows that do not read as heads are skipped
        head = named[0]
    else:  # the first column that reads as head ids
        head = next((k for k in range(width) if k != layer and reads[k][0]), None)
        if head is None or (header is not None and head != (0 if layer != 0 else 1)):
            return None
    rest = [k for k in range(width) if k not in (head, layer)]
    measures = [k for k in rest if plain[k] and all(NUMBER_CELL.fullmatch(c) for c in column[k] if c.strip())
                and any(c.strip() for c in column[k])]
    words = [k for k in rest if k not in measures and (plain[k] in DESCRIPTION_HEADERS
                                                       or any(re.search(r"[A-Za-z]", c) for c in column[k]))]
    text = [k for name in DESCRIPTION_HEADERS for k in words if plain[k] == name]
    if not text and words:  # the longest text column
        text = [max(words, key=lambda k: sum(len(c) for c in column[k]))]
    if not text and not measures:
        return None
    names = tuple(header) + ("",) * (width - len(header)) if header else ("",) * width
    listing = bool(lists) or plain[head] == "heads"  # `| kind | n | heads |`, even with one head a row
    return _Layout(head, layer, tuple(text), names, tuple(measures), listing)


def _measure(header: str, cell: str) -> str:
    """A number column's cell as a sentence the number reader ties to the header's metric:
    `| prev (%) |` and `23` read "prev 23%."."""
    percent = "%" if "%" in header and not re.search(r"[%x×]", cell) else ""
    return f"{re.sub(r'[()%]', ' ', header).strip()} {cell.strip()}{percent}."


def _joined(cells: list[str], columns: tuple[int, ...]) -> str:
    """The description cells of a row joined as sentences (a Role cell reads as the first one)."""
    parts = [cells[k].strip() for k in columns if k < len(cells) and re.search(r"\w", cells[k])]
    return " ".join(p if re.search(r"[.!?:;]$", p) or k == len(parts) - 1 else p + "." for k, p in enumerate(parts))


@dataclass
class _Reading:
    """What has been read of one file so far."""

    source: str
    rows: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (line, what) not about heads
    unreadable: list = field(default_factory=list)  # (line, id as written) in a table of heads
    blocks: int = 0

    def add(self, ids: list[tuple[int | None, int]], label: str, text: str, line: int, *, listing: bool = False,
            heading_layer: int | None = None, layer: int | None = None, extra: dict | None = None,
            measures: str = "", in_table: bool = True) -> None:
        for parsed_layer, head in ids:
            found = parsed_layer if parsed_layer is not None else layer if layer is not None else heading_layer
            shown = label if len(ids) == 1 and (found is None or parsed_layer is not None) else (
                f"{found}.{head}" if found is not None else str(head))
            self.rows.append(HeadDescription(shown, found, head, text, line, self.source, extra or {}, measures,
                                             listing, self.blocks, in_table))


def _read_table(reading: _Reading, lines: list[str], first: int, heading_layer: int | None) -> None:
    """One table (lines[first] is its first line; `first + 1` its line number) into `reading`."""
    has_header = len(lines) > 1 and RULE.fullmatch(lines[1]) and parse_head_ids(_cells(lines[0])[0]) is None
    header = _cells(lines[0]) if has_header else None
    numbered = [(first + k + 1, _cells(line)) for k, line in enumerate(lines)
                if not RULE.fullmatch(line)][1 if has_header else 0:]
    layout = _layout(header, [cells for _, cells in numbered])
    if layout is None:
        reading.skipped.append((first + 1, "a table"))
        return
    reading.blocks += 1
    previous_layer = None
    for number, cells in numbered:
        if not any(re.search(r"\w", c) for c in cells):
            continue  # a blank spacer row
        label = cells[layout.head] if layout.head < len(cells) else ""
        ids = parse_head_ids(label) if layout.listing else (lambda one: one and [one])(parse_head_id(label))
        if not ids:
            reading.unreadable.append((number, label))
            continue
        layer = None
        if layout.layer is not None and ids[0][0] is None:
            cell = _plain(cells[layout.layer]) if layout.layer < len(cells) else ""
            if cell:
                found = re.fullmatch(r"(?:l(?:ayer)?\s*)?(\d+)", cell)
                if not found:
                    raise ValidateError(f"{reading.source}:{number}: cannot read layer {cells[layout.layer]!r}")
                layer = int(found.group(1))
            else:
                layer = previous_layer  # a blank layer cell repeats the row above
        description = _joined(cells, layout.text)
        measures = " ".join(_measure(layout.names[k], cells[k]) for k in layout.measures
                            if k < len(cells) and cells[k].strip())
        if not re.search(r"\w", description + measures):
            raise ValidateError(f"{reading.source}:{number}: head {label} has an empty description")
        extra = {layout.names[k]: cells[k] for k in range(min(len(cells), len(layout.names)))
                 if k not in (layout.head, layout.layer, *layout.text, *layout.measures) and layout.names[k]}
        reading.add(ids, label.strip(), description, number, listing=layout.listing, heading_layer=heading_layer,
                    layer=layer, extra=extra, measures=measures)
        previous_layer = layer if layer is not None else reading.rows[-1].layer


def _read_item(reading: _Reading, text: str, number: int, heading_layer: int | None) -> bool:
    """A list item or paragraph that opens with heads ("L1H5: ...") or lists heads per kind
    ("previous token: 0.6, 1.3"); False when it is about no head."""
    body = LIST_MARKER.sub("", text, count=1).strip()
    cuts = [m for m in ITEM_SEPARATOR.finditer(body) if m.start() > 0]
    for cut in sorted(cuts, key=lambda m: -m.start()):  # "0:3: ..." is head 0:3, not head 0
        label, rest = body[: cut.start()], body[cut.end():]
        ids = parse_head_ids(label)
        if ids and re.search(r"[A-Za-z]", rest):
            reading.blocks += 1
            reading.add(ids, re.sub(r"[*_`]", "", label).strip(), rest.strip(), number, heading_layer=heading_layer,
                        in_table=False)
            return True
    prose = PROSE_HEADS.fullmatch(body)
    ids = parse_head_ids(prose.group("label")) if prose else None
    if ids:
        reading.blocks += 1
        reading.add(ids, prose.group("label").strip(), prose.group("rest").strip(), number, heading_layer=heading_layer,
                    in_table=False)
        return True
    for cut in cuts:  # "- previous token: 0.6, 1.3, 1.6, 3.6"
        kind, listed = body[: cut.start()], body[cut.end():].strip(" .")
        ids = parse_head_ids(listed)
        if ids and (len(ids) > 1 or ids[0][0] is not None) and re.search(r"[A-Za-z]", kind):
            reading.blocks += 1
            reading.add(ids, listed, kind.strip(" *_"), number, listing=True, heading_layer=heading_layer,
                        in_table=False)
            return True
    return False


def _chunks(paragraph: str) -> list[tuple[int, str]]:
    """(offset, text) of the paragraph's parts that each open with a named head."""
    cuts = [0, *(m.end() for m in SENTENCE_ON_HEADS.finditer(paragraph)), len(paragraph)]
    return [(a, paragraph[a:b].strip()) for a, b in zip(cuts, cuts[1:]) if paragraph[a:b].strip()]


def parse_notes(text: str, *, source: str = "<text>") -> tuple[list[HeadDescription], list[tuple[int, str]]]:
    """Every head of every table, list item and paragraph of `text` (fenced code is skipped), and
    the (line, what) of the tables, list items and rows skipped as about no head."""
    lines = text.splitlines()
    reading = _Reading(source)
    fenced, heading_layer, heading_heads, k = False, None, None, 0
    while k < len(lines):
        line = lines[k]
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if fenced or not line.strip():
            k += 1
            continue
        layer_heading = LAYER_HEADING.match(line)
        if layer_heading:
            heading_layer = int(layer_heading.group(1) or layer_heading.group(2))
            k += 1
            continue
        if line.lstrip().startswith("#"):  # "## Head 2.4" or "### L1H5: delimiter" opens notes on heads
            heading_layer, title = None, line.lstrip("# ").strip()
            ids = parse_head_ids(title)
            heading_heads = (ids, title) if ids else None
            before = len(reading.rows)
            if ids is None and _read_item(reading, title, k + 1, None):  # every head it names, not only the last
                new = reading.rows[before:]
                heading_heads = ([(r.layer, r.head) for r in new], new[-1].label)
            k += 1
            continue
        if line.lstrip().startswith("|"):
            end = k
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            _read_table(reading, lines[k:end], k, heading_layer)
            k = end
            continue
        # a list item or paragraph: its wrapped lines and deeper list items belong to it
        end, indent = k + 1, len(line) - len(line.lstrip())
        while end < len(lines) and lines[end].strip() and not lines[end].lstrip().startswith(("|", "#")) and (
                not LIST_MARKER.match(lines[end]) or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        parts = [line.strip(), *(LIST_MARKER.sub("", part).strip() for part in lines[k + 1:end])]
        joined = " ".join(parts)
        starts = [sum(len(part) + 1 for part in parts[:n]) for n in range(len(parts))]
        read = False
        for chunk in _chunks(joined):  # "Head 0.6 ... . Head 1.3 ..." in one paragraph: one item each
            line_number = k + 1 + sum(start <= chunk[0] for start in starts) - 1
            read |= _read_item(reading, chunk[1], line_number, heading_layer)
        if not read and heading_heads is not None:  # a paragraph under a heading that names heads
            reading.blocks += 1
            reading.add(heading_heads[0], heading_heads[1], LIST_MARKER.sub("", joined, count=1), k + 1, in_table=False)
        elif not read and LIST_MARKER.match(line):
            reading.skipped.append((k + 1, "a list item"))
        k = end
    skipped = reading.skipped + [(n, f"a row with head id {label!r}") for n, label in reading.unreadable]
    if not reading.rows:
        if reading.unreadable:
            n, label = reading.unreadable[0]
            raise ValidateError(f"{source}:{n}: cannot read head id {label!r} (write 3, Head 3, L0H3, 0.3 or 0:3)")
        raise ValidateError(
            f"{source}:1: no heads found (a Markdown table whose rows are heads such as 3, 0.3 or L0H3, "
            "a list item '- L1H5: ...' or a paragraph 'Head 3: ...')"
        )
    _check_twice_in_a_block(reading.rows)
    return reading.rows, sorted(skipped)


def _check_twice_in_a_block(rows: list[HeadDescription]) -> None:
    seen: dict = {}
    for row in rows:
        key = (row.block, row.layer, row.head)
        if key in seen and not row.listing:
            raise ValidateError(f"{row.source}:{row.line}: head {row.label} is described twice "
                                f"(first at line {seen[key]})")
        seen.setdefault(key, row.line)


def parse_descriptions(text: str, *, source: str = "<text>") -> list[HeadDescription]:
    """Every head of every table, list item and paragraph in `text` (see `parse_notes`)."""
    return parse_notes(text, source=source)[0]


def read_descriptions(path: str | Path) -> list[HeadDescription]:
    """`parse_notes` of a file, with one `Note:` on what was skipped; a binary or non-UTF-8
    file is a ValidateError."""
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
    rows, skipped = parse_notes(text, source=str(path))
    if skipped:
        shown = ", ".join(f"{what} at line {n}" for n, what in skipped[:6])
        more = f" and {len(skipped) - 6} more" if len(skipped) > 6 else ""
        notify(f"{path}: skipped what is about no head: {shown}{more}")
    return rows


def combine(descriptions: list[HeadDescription]) -> list[HeadDescription]:
    """One description per (layer, head): rows of several tables or items joined in file order,
    summary listings attached (a head listed but never described gets its listing as its text)."""
    _check_twice_in_a_block(descriptions)  # heads resolved here may only now read as the same head
    own: dict = {}
    listed: dict = {}
    for d in descriptions:
        key = (d.layer, d.head)
        if d.listing:
            listed.setdefault(key, []).append(d)
        elif key in own:
            first = own[key]
            own[key] = replace(first, text=_joined([first.text, d.text], (0, 1)),
                               measures=" ".join(filter(None, (first.measures, d.measures))),
                               extra={**d.extra, **first.extra})
        else:
            own[key] = d
    for key, listings in listed.items():
        if key not in own:
            own[key] = replace(listings[0], listing=False)
            listings = listings[1:]
        own[key] = replace(own[key], listings=tuple(listings))
    return sorted(own.values(), key=lambda d: (d.layer if d.layer is not None else -1, d.head))


def resolve_heads(descriptions: list[HeadDescription], n_layers: int, n_heads: int,
                  skipped: list[str] | None = None) -> list[HeadDescription]:
    """Give every head its layer, check it exists and combine what is said of it (`combine`);
    a bare index needs a one-layer model (in prose, "Head 3" of a deeper model is skipped with a
    `Note:` when the file says something else about heads). A head the model does not have is a
    `Note:` (and a line in `skipped`), the others are still checked; when no head is left, a
    ValidateError."""
    resolved = []
    ambiguous = [d for d in descriptions if d.layer is None and n_layers != 1 and not d.in_table]
    if ambiguous and len(ambiguous) < len(descriptions):
        lines = ", ".join(str(d.line) for d in ambiguous)
        notify(f"{ambiguous[0].source}: skipped heads named without a layer in prose (line {lines}): "
               f"ambiguous for a {n_layers}-layer model")
        descriptions = [d for d in descriptions if d not in ambiguous]
    for d in descriptions:
        where = f"{d.source}:{d.line}"
        if d.layer is None and n_layers != 1:
            raise ValidateError(
                f"{where}: head {d.label!r} is ambiguous for a {n_layers}-layer model "
                f"(write L0H{d.head} or 0.{d.head}, or add a Layer column)"
            )
        layer = 0 if d.layer is None else d.layer
        if not (0 <= layer < n_layers and 0 <= d.head < n_heads):
            message = f"{where}: head {d.label} is out of range: the model has {n_layers} layer(s) x {n_heads} heads"
            if skipped is None:
                raise ValidateError(message)
            skipped.append(message)
            continue
        resolved.append(replace(d, layer=layer))
    if skipped and not resolved:  # nothing left to check: the first one, as an error
        more = f" (and {len(skipped) - 1} more heads; none is in the model)" if len(skipped) > 1 else ""
        raise ValidateError(skipped[0] + more)
    for message in skipped or ():
        notify(message + "; not checked")
    return combine(resolved)
