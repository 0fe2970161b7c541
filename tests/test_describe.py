"""Descriptions and table cells that say what every number is a share of, and show doubt."""

import re

import numpy as np
import pandas as pd
import pytest

from classifier.label.describe import confidence_text, describe_head, role_label, secondary_label, top_keys_text


def label(**fields) -> pd.Series:
    row = {"layer": 0, "head": 0, "role": "unclear", "secondary": (), "scoped": (), "confidence": 1.0,
           "explained": np.nan, "available": np.nan, "lift": np.nan, "sink": 0.0, "offset": 2,
           "hold": 0.2, "hold_attention": 0.03, "top_keys": []}
    return pd.Series({**row, **fields})


METRICS_ROW = pd.Series({"entropy": 0.6, "max_weight": 0.3, "argmax_offset_2": 0.2})
TO = {"token": " to", "share": 0.31, "lift": 9.0}
DOT = {"token": ".", "share": 0.05, "lift": 1.1}


def test_a_doubtful_label_gets_a_question_mark_and_unclear_no_confidence():
    assert role_label(label(role="delimiter", confidence=0.07)) == "delimiter?"
    assert role_label(label(role="delimiter", confidence=0.5)) == "delimiter"
    assert role_label(label(role="unclear", confidence=1.0)) == "unclear"
    assert confidence_text(label(role="unclear", confidence=1.0)) == ""
    assert confidence_text(label(role="delimiter", confidence=0.07)) == "7%"


def test_a_head_no_role_names_is_described_by_its_top_keys():
    text = describe_head(label(top_keys=[DOT, TO]), METRICS_ROW, None)
    assert text.startswith("No structural role; prefers ` to` (31% of its attention, 9.0x)")
    assert "20% of its queries hold their top key through a run of at least 4 queries" in text  # its hold
    assert top_keys_text(label(top_keys=[DOT, TO])) == "` to` 31% 9.0x, `.` 5% 1.1x"  # preferred first


def test_a_role_on_some_queries_gives_their_share_and_the_share_of_all_attention():
    row = label(role="word-start", explained=0.2, available=0.3, lift=66.0, confidence=0.9)
    text = describe_head(row, METRICS_ROW, None)
    assert "67% of the attention of continuation pieces, 66x uniform; 20% of all its attention" in text
    whole = describe_head(label(role="previous-token", explained=0.45, available=1.0, lift=35.0), METRICS_ROW, None)
    assert "45% of its attention, 35x uniform" in whole
    # every percentage in a description is followed by what it is a share of
    for sentence in (text, whole):
        for match in re.finditer(r"\d+%", sentence):
            assert sentence[match.end():].startswith(" of "), sentence


def test_a_secondary_role_on_a_sliver_is_scoped():
    row = label(role="previous-token", secondary=("current-token", "word-start"), scoped=("word-start",),
                explained=0.4, available=1.0, lift=30.0)
    assert secondary_label(row) == "current-token, on multi-piece words: word-start"
    assert "on multi-piece words, the word's first piece" in describe_head(row, METRICS_ROW, None)


def test_a_hold_head_names_what_it_holds():
    row = label(role="hold", explained=0.12, lift=12.0, hold=0.55, hold_attention=0.12,
                top_keys=[DOT, {"token": " Lily", "share": 0.04, "lift": 6.0}, {"token": " mom", "share": 0.02, "lift": 3.0}])
    text = describe_head(row, METRICS_ROW, None)
    assert text.startswith("Holds one earlier word for a run of queries (55% of its queries hold their top key through a run")
    assert "mostly ` Lily` (4% of its attention, 6.0x), ` mom`" in text and "`.`" not in text


def test_report_tables_show_doubt_scoped_roles_and_top_keys():
    from classifier.render.report import role_table
    from test_html import synthetic_run

    run = synthetic_run()
    roles = run.roles.assign(scoped=[(), (), (), ("proper-noun",), (), ()], top_keys=[[TO]] * 6)
    run = type(run)(**{**run.__dict__, "roles": roles})
    table = role_table(run).set_index("Head")
    assert table.loc["1.0", "Role"] == "delimiter (+after names: proper-noun, previous-token)"  # confidence 0.7
    assert table.loc["0.2", "Confidence"] == ""  # unclear
    assert table.loc["0.2", "Top keys"] == "` to` 31% 9.0x"
    assert table.loc["0.2", "Description"].startswith("No structural role; prefers ` to`")
    low = run.roles.assign(confidence=[0.3, 0.9, 0.5, 0.7, 0.8, 0.95])
    assert role_table(type(run)(**{**run.__dict__, "roles": low})).loc[0, "Role"] == "previous-token? (+local)"


@pytest.mark.parametrize("confidence, shown", [(0.49, "delimiter?"), (0.51, "delimiter")])
def test_the_html_table_marks_doubt_too(confidence, shown):
    from classifier.render.html import page_data
    from test_html import synthetic_run

    run = synthetic_run()
    run = type(run)(**{**run.__dict__, "roles": run.roles.assign(confidence=[1.0, 0.9, 0.5, confidence, 0.8, 0.95])})
    data = page_data(run)
    role_column = [c[0] for c in data["columns"]].index("role")
    confidence_column = [c[0] for c in data["columns"]].index("confidence")
    assert data["heads"][3]["cells"][role_column] == shown
    assert data["heads"][2]["row"][confidence_column] is None  # unclear: no confidence


def test_a_share_of_the_queries_with_a_target_is_never_over_100_percent():
    # delimiter explains the latest and other delimiters; `available` is the largest group's reach,
    # under the union's, so explained / available can pass 1: then only the share of all is said
    row = label(role="delimiter", explained=0.96, available=0.92, lift=5.9, confidence=1.0)
    text = describe_head(row, METRICS_ROW, None)
    assert "104%" not in text and "96% of its attention" in text
