"""Reading notes tables: any head-id column, description columns by name or length, errors."""

import pytest

from classifier.validate.notes import ValidateError, parse_descriptions, parse_head_id, resolve_heads


@pytest.mark.parametrize("label, parsed", [
    ("3", (None, 3)), ("Head 3", (None, 3)), ("**3**", (None, 3)), ("L0H3", (0, 3)), ("0.3", (0, 3)),
    ("0:3", (0, 3)), ("L0.H3", (0, 3)), ("l2 h11", (2, 11)), ("Layer 1, Head 4", (1, 4)), ("`L1H0`", (1, 0)),
    ("head 3", (None, 3)), ("H3", (None, 3)), ("#3", (None, 3)), ("three", None), ("3a", None),
])
def test_head_ids_as_people_write_them(label, parsed):
    assert parse_head_id(label) == parsed


@pytest.mark.parametrize("header", [
    "| Head | Description |", "| Layer.Head | Description |", "| Layer.Head | Notes |", "| Head | Notes |",
    "| L.H | Pattern |", "| Head (L.H) | Behaviour |", "| # | Description |", "| id | what it does |",
])
def test_head_tables_are_found_by_any_head_header(header):
    rows = parse_descriptions(f"{header}\n|---|---|\n| 0.2 | Commas. |\n")
    assert [(r.layer, r.head, r.text) for r in rows] == [(0, 2, "Commas.")]


def test_separate_layer_column_is_read_and_a_blank_layer_repeats_the_row_above():
    text = "| Layer | Head | Description |\n|--|--|--|\n| 1 | 2 | Commas. |\n| | 3 | Itself. |\n"
    assert [(r.layer, r.head) for r in parse_descriptions(text)] == [(1, 2), (1, 3)]


def test_role_and_description_columns_are_both_read_role_first():
    rows = parse_descriptions("| head | role | description |\n|--|--|--|\n| 3 | prev token | Sharp, 0.8. |\n")
    assert rows[0].text == "prev token. Sharp, 0.8."


def test_without_a_named_column_the_longest_text_column_is_the_description_and_extras_are_kept():
    text = "| Head | Conf | Seen |\n|--|--|--|\n| 3 | high | Attends to the previous token on every story |\n"
    row = parse_descriptions(text)[0]
    assert row.text.startswith("Attends to the previous token") and row.extra == {"Conf": "high"}


def test_several_tables_other_tables_and_layer_headings():
    text = ("## Metrics\n\n| metric | value |\n|--|--|\n| entropy | 0.4 |\n\n## Layer 2\n\n"
            "| # | Notes |\n|--|--|\n| 1 | Commas. |\n\n## Layer 3\n\n| Head | Notes |\n|--|--|\n| 3.0 | BOS. |\n")
    assert [(r.layer, r.head) for r in parse_descriptions(text)] == [(2, 1), (3, 0)]


def test_a_bare_index_is_ambiguous_for_a_multi_layer_model():
    rows = parse_descriptions("| Head | Description |\n|---|---|\n| 3 | Commas. |\n", source="t.md")
    assert resolve_heads(rows, 1, 16)[0].layer == 0
    with pytest.raises(ValidateError, match=r"^t\.md:3: head '3' is ambiguous for a 2-layer model"):
        resolve_heads(rows, 2, 4)


def test_the_same_head_written_two_ways_is_a_duplicate():
    rows = parse_descriptions("| Head | Description |\n|---|---|\n| 3 | A. |\n| L0H3 | B. |\n", source="t.md")
    with pytest.raises(ValidateError, match=r"^t\.md:4: head L0H3 is described twice \(first at line 3\)"):
        resolve_heads(rows, 1, 16)


def test_a_row_with_an_unreadable_id_in_a_head_table_names_its_line():
    with pytest.raises(ValidateError, match=r"^t\.md:4: cannot read head id 'two'"):
        parse_descriptions("| Head | Notes |\n|---|---|\n| 1 | A. |\n| two | B. |\n", source="t.md")
