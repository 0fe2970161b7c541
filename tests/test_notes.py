"""Reading notes tables: any head-id column, description columns by name or length, errors."""

import pytest

from classifier.errors import InputNotice
from classifier.validate.notes import (
    ValidateError, parse_descriptions, parse_head_id, parse_notes, read_descriptions, resolve_heads,
)


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


def test_a_head_written_twice_in_a_later_table_is_a_duplicate_after_an_earlier_table_named_it():
    text = ("| Head | Notes |\n|---|---|\n| 1 | A. |\n\n"
            "| Head | Notes |\n|---|---|\n| 1 | B. |\n| L0H1 | C. |\n")
    with pytest.raises(ValidateError, match=r"^t\.md:8: head L0H1 is described twice \(first at line 7\)"):
        resolve_heads(parse_descriptions(text, source="t.md"), 1, 4)


def test_a_row_with_an_unreadable_id_is_skipped_and_named_and_alone_it_is_an_error():
    rows, skipped = parse_notes("| Head | Notes |\n|---|---|\n| 1 | A. |\n| two | B. |\n", source="t.md")
    assert [(r.head, r.text) for r in rows] == [(1, "A.")] and skipped == [(4, "a row with head id 'two'")]
    with pytest.raises(ValidateError, match=r"^t\.md:3: cannot read head id 'two'"):
        parse_descriptions("| Head | Notes |\n|---|---|\n| two | B. |\n", source="t.md")


def test_a_table_without_a_header_row_is_read():
    rows = parse_descriptions("| 0.1 | Broad, close to uniform. |\n| L1H2 | The previous token. |\n")
    assert [(r.layer, r.head, r.text) for r in rows] == [(0, 1, "Broad, close to uniform."), (1, 2, "The previous token.")]


def test_a_summary_table_lists_each_head_under_its_kind():
    text = ("| kind | n | heads |\n|---|---|---|\n| previous token | 4 | 0.6, 1.3, 1.6, 3.6 |\n"
            "| broad | 1 | 2.0 |\n")
    rows = parse_descriptions(text)
    assert [(r.layer, r.head, r.text, r.listing) for r in rows] == [
        (0, 6, "previous token", True), (1, 3, "previous token", True), (1, 6, "previous token", True),
        (3, 6, "previous token", True), (2, 0, "broad", True)]
    single = parse_descriptions("| kind | heads |\n|---|---|\n| broad | 2.0 |\n| delimiter | 2.4 |\n")
    assert [(r.head, r.listing) for r in single] == [(0, True), (4, True)]  # a "heads" column lists heads


def test_a_listed_head_keeps_its_own_row_and_the_listing_beside_it():
    text = ("| Head | Notes |\n|---|---|\n| 0.6 | Local: the last few tokens. |\n\n"
            "| kind | heads |\n|---|---|\n| previous token | 0.6, 1.3 |\n")
    rows = {(r.layer, r.head): r for r in resolve_heads(parse_descriptions(text), 2, 8)}
    assert rows[(0, 6)].text == "Local: the last few tokens." and rows[(0, 6)].line == 3
    assert [(item.text, item.line) for item in rows[(0, 6)].listings] == [("previous token", 7)]
    assert rows[(1, 3)].text == "previous token" and rows[(1, 3)].listings == ()  # listed only: the kind is its text


@pytest.mark.parametrize("line, heads, text", [
    ("- L1H5: attends to names", [(1, 5)], "attends to names"),
    ("* **L0.H3** — the previous token.", [(0, 3)], "the previous token."),
    ("Head 3: commas and full stops.", [(None, 3)], "commas and full stops."),
    ("1. 0:3: itself", [(0, 3)], "itself"),
    ("- Heads 1 and 2: the start of the clause.", [(None, 1), (None, 2)], "the start of the clause."),
    ("- 2.1 - spreads over everything", [(2, 1)], "spreads over everything"),
    ("Head 0.6 mostly looks at the previous token (0.45).", [(0, 6)], "mostly looks at the previous token (0.45)."),
    ("**L1H3** attends to names.", [(1, 3)], "attends to names."),
    ("In layer 2, head 4 attends to the latest delimiter.", [(2, 4)], "attends to the latest delimiter."),
])
def test_list_items_and_paragraphs_that_open_with_heads_are_read(line, heads, text):
    rows = parse_descriptions(line + "\n")
    assert [(r.layer, r.head) for r in rows] == heads and {r.text for r in rows} == {text}


def test_a_list_of_heads_per_kind_and_wrapped_lines_are_read():
    rows = parse_descriptions("- previous token: 0.6, 1.3\n- L2H0: broad,\n  close to uniform.\n")
    assert [(r.layer, r.head, r.text, r.listing) for r in rows] == [
        (0, 6, "previous token", True), (1, 3, "previous token", True), (2, 0, "broad, close to uniform.", False)]


def test_what_is_about_no_head_is_skipped_and_said_once(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\n- Model: stories260K\n- 10 stories\n\n| metric | value |\n|---|---|\n| entropy | 0.4 |\n\n"
                    "| Head | Notes |\n|---|---|\n| 0.1 | Commas. |\n| total | 1 |\n")
    with pytest.warns(InputNotice) as notices:
        rows = read_descriptions(path)
    assert [(r.layer, r.head) for r in rows] == [(0, 1)]
    assert len(notices) == 1 and str(notices[0].message) == (
        f"{path}: skipped what is about no head: a list item at line 3, a list item at line 4, a table at line 6, "
        "a row with head id 'total' at line 13")


def test_several_tables_and_a_list_of_the_same_heads_are_combined():
    text = ("| Head | Notes |\n|---|---|\n| 0.1 | Commas. |\n\n| Head | previous | BOS (%) |\n|---|---|---|\n"
            "| 0.1 | 12% | 3% |\n\n- L0H1: also the latest delimiter.\n")
    (row,) = resolve_heads(parse_descriptions(text), 1, 4)
    assert row.text == "Commas. also the latest delimiter." and row.measures == "previous 12%. BOS 3%."


def test_a_paragraph_on_several_heads_gives_each_its_sentences():
    text = "Some prose first.\n\nHead 0.6 looks at the previous token. It is sharp.\nL1H3 attends to names.\n"
    rows = parse_descriptions(text)
    assert [(r.layer, r.head, r.text, r.line) for r in rows] == [
        (0, 6, "looks at the previous token. It is sharp.", 3), (1, 3, "attends to names.", 4)]


def test_a_head_named_without_a_layer_in_prose_of_a_deeper_model_is_skipped_with_a_note():
    rows = parse_descriptions("| Head | Notes |\n|---|---|\n| 0.1 | Commas. |\n\nHead 3 is odd.\n", source="t.md")
    with pytest.warns(InputNotice, match=r"t\.md: skipped heads named without a layer in prose \(line 5\)"):
        assert [(r.layer, r.head) for r in resolve_heads(rows, 2, 4)] == [(0, 1)]


def test_paragraphs_under_a_heading_that_names_a_head_describe_that_head():
    text = ("# Notes\n\nIntro.\n\n## Head 2.4\n\nMostly the latest delimiter.\n\n- 17% of its attention.\n\n"
            "### L1H5: names\n\nSharp.\n")
    rows = resolve_heads(parse_descriptions(text), 3, 8)
    assert [(r.layer, r.head, r.text) for r in rows] == [
        (1, 5, "names. Sharp."), (2, 4, "Mostly the latest delimiter. 17% of its attention.")]


def test_paragraphs_under_a_heading_that_names_several_heads_describe_each_of_them():
    text = "### Heads 0.1 and 0.2: delimiter heads\n\nThey attend to commas.\n"
    rows = resolve_heads(parse_descriptions(text), 1, 4)
    assert [(r.layer, r.head, r.text) for r in rows] == [
        (0, 1, "delimiter heads. They attend to commas."), (0, 2, "delimiter heads. They attend to commas.")]
