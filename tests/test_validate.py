"""`validate`: hand-written descriptions -> claims -> verdicts against measured roles.

Unit tests parse phrasings and tables; verdict tests use a fake run directory whose roles are
set by hand (no model); the slow test plants heads in a calibration model and checks the
verdicts end to end.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from classifier.cli import main
from classifier.corpora import BANANA_PROMPT
from classifier.roles import HEADLINE_METRIC
from classifier.scoring import METRICS, OFFSETS
from classifier.validate import (
    CONTRADICTED, NOT_CHECKABLE, PARTLY, SUPPORTED, ClaimMatcher, Judgement, ValidateError, agreement,
    extract_claims, judge, load_measurements, parse_descriptions, parse_head_id, read_descriptions,
    render_validation, resolve_heads,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "design" / "example-hand-descriptions.md"


def roles_of(text, kind="main"):
    return [c.role for c in extract_claims(text) if c.kind == kind]


# --- phrasings -----------------------------------------------------------------------------------

PHRASINGS = [  # (description, main roles, secondary roles), written for this test
    ("Attends to the current token.", ["current-token"], []),
    ("Each token looks at itself.", ["current-token"], []),
    ("Mostly the same token.", ["current-token"], []),
    ("Strong diagonal.", ["current-token"], []),
    ("Current / previous.", ["current-token", "previous-token"], []),
    ("The previous token.", ["previous-token"], []),
    ("Looks at the preceding word.", ["previous-token"], []),
    ("Attends to the token right before it.", ["previous-token"], []),
    ("Sub-diagonal pattern, bigram-like.", ["previous-token"], []),
    ("Parks attention on the BOS token.", ["start-of-text"], []),
    ("Attends to the first token.", ["start-of-text"], []),
    ("An attention sink on <|endoftext|>.", ["start-of-text"], []),
    ("Goes to the beginning of the story.", ["start-of-text"], []),
    ("Commas and full stops.", ["delimiter"], []),
    ("Attends to punctuation.", ["delimiter"], []),
    ("The opening speech mark.", ["delimiter"], []),
    ("The last structural break or pivot.", ["delimiter"], []),
    ("Attends to the start of the clause.", ["clause-start"], []),
    ("The first word of the sentence.", ["clause-start"], []),
    ("The token just after the latest comma.", ["clause-start"], []),
    ("Coordinating conjunctions.", ["clause-start"], []),
    ("Earlier proper nouns.", ["proper-noun"], []),
    ("Character names like Lily.", ["proper-noun"], []),
    ("Spreads attention over all the tokens of the sentence.", ["broad"], []),
    ("Broad, nearly uniform attention.", ["broad"], []),
    ("Earlier occurrences of the same token.", ["duplicate-token"], []),
    ("Repeated words.", ["duplicate-token"], []),
    ("The token after an earlier occurrence of the current token.", ["induction"], []),
    ("Induction head.", ["induction"], []),
    ("Attends to the token two back.", ["positional"], []),
    ("A fixed offset of 3.", ["positional"], []),
    ("The last few tokens.", ["local"], []),
    ("Nearby tokens, no single one.", ["local"], []),
    ("The first piece of the word.", ["word-start"], []),
    ("Attends to the current token, sometimes also to the previous token.", ["current-token"], ["previous-token"]),
    ("Previous token; occasionally commas.", ["previous-token"], ["delimiter"]),
    ("BOS, commas and full stops.", ["start-of-text", "delimiter"], []),
    ("The current and earlier proper nouns?", ["current-token", "proper-noun"], []),
    ("Names from speech marks.", ["proper-noun"], []),  # "from X" names the queries, not the target
    ("Attends to the previous token (except the closing speech mark, which attends to the opening one).",
     ["previous-token"], []),
]


@pytest.mark.parametrize("text, main_roles, secondary", PHRASINGS)
def test_phrasing_parses_to_the_claimed_roles(text, main_roles, secondary):
    assert roles_of(text, "main") == main_roles
    assert roles_of(text, "secondary") == secondary


@pytest.mark.parametrize("text", [
    "~~The subject of the sentence?",
    "The backward parts of skip n-grams?",
    "Keeps a summary of the narrative.",
    "Follows the dialogue structure (who is speaking).",
    "Tracks the sentiment of the story.",
])
def test_claims_no_metric_can_check_are_not_forced_into_a_role(text):
    claims = extract_claims(text)
    assert [c.role for c in claims] == [None] * len(claims)
    assert {c.kind for c in claims} == {"uncheckable"}


@pytest.mark.parametrize("text, note", [
    ('"but" attends only to itself.', '"but" attends only to itself'),
    ('The word "and" attends to the comma before it.', 'The word "and" attends to the comma before it'),
    ("Except the closing speech mark, which attends to the opening speech mark.", "Except the closing speech mark"),
    ("Inside speech, attends to the opening speech mark.", "Inside speech, attends to the opening speech mark"),
])
def test_token_specific_notes_are_shown_not_judged(text, note):
    claims = extract_claims(text)
    assert [c.kind for c in claims] == ["note"]
    assert claims[0].phrase.startswith(note)


def test_matched_phrase_is_the_words_written():
    claims = extract_claims("Looks at the preceding word and at commas.")
    assert [(c.role, c.phrase) for c in claims] == [("previous-token", "preceding word"), ("delimiter", "commas")]


def test_hedges_are_kept_on_the_claims():
    assert [c.hedge for c in extract_claims("~~The start of the clause?")] == ["~~?"]
    assert [c.hedge for c in extract_claims("~Commas.")] == ["~"]
    assert [c.hedge for c in extract_claims("Perhaps the previous token.")] == ["?"]
    assert [c.hedge for c in extract_claims("The current token. The previous token?")] == ["", "?"]
    assert [c.hedge for c in extract_claims("Previous token (?)")] == ["?"]
    assert [(c.kind, c.hedge) for c in extract_claims("~Mysterious?")] == [("uncheckable", "~?")]


@pytest.mark.parametrize("text, role", [
    ("Attends to the token immediately prior.", "previous-token"),
    ("the thing just to the left", "previous-token"),
    ("copies what happened next the last time", "induction"),
    ("focuses on where the sentence begins", "clause-start"),
    ("dumps its attention at the very beginning", "start-of-text"),
])
def test_tfidf_fallback_matches_paraphrases_the_lexicon_misses(text, role):
    claims = extract_claims(text)
    assert [(c.role, c.source) for c in claims] == [(role, "tf-idf")]
    assert claims[0].similarity >= ClaimMatcher().threshold


@pytest.mark.parametrize("text", ["Attends to Tom.", "No obvious pattern.", "Mysterious.", "in varying amounts"])
def test_text_with_no_recognisable_claim_is_not_checkable(text):
    assert [(c.kind, c.role) for c in extract_claims(text)] == [("uncheckable", None)]


# --- tables --------------------------------------------------------------------------------------


def test_example_file_parses_as_16_heads_with_hedges_kept():
    rows = read_descriptions(EXAMPLE)
    assert [r.head for r in rows] == list(range(16))
    assert rows[3].text == "~~The subject of the sentence?"
    by_head = {r.head: extract_claims(r.text) for r in rows}
    assert {c.hedge for c in by_head[3]} == {"~~?"}
    assert {c.hedge for c in by_head[9]} == {"~?"}
    assert by_head[10][0].hedge == "~" and by_head[10][0].role == "broad"
    assert {c.kind for c in by_head[3]} == {"uncheckable"}
    assert [c.role for c in by_head[4] if c.role] == ["current-token", "previous-token"]
    assert [c.kind for c in by_head[4]] == ["main", "secondary"]
    assert "note" in {c.kind for c in by_head[1]}  # "but" attends only to itself


@pytest.mark.parametrize("label, parsed", [
    ("3", (None, 3)), ("Head 3", (None, 3)), ("**3**", (None, 3)), ("L0H3", (0, 3)), ("0.3", (0, 3)),
    ("0:3", (0, 3)), ("L0.H3", (0, 3)), ("l2 h11", (2, 11)), ("Layer 1, Head 4", (1, 4)), ("`L1H0`", (1, 0)),
    ("three", None), ("3a", None),
])
def test_head_ids_as_people_write_them(label, parsed):
    assert parse_head_id(label) == parsed


def test_extra_columns_and_other_text_are_ignored():
    text = "Intro.\n\n| Layer | Head | Notes | Description |\n|--|--|--|--|\n| 0 | 2 | x | Commas. |\nAfter.\n"
    rows = parse_descriptions(text)
    assert [(r.head, r.text, r.line) for r in rows] == [(2, "Commas.", 5)]


def test_a_bare_index_is_ambiguous_for_a_multi_layer_model():
    rows = parse_descriptions("| Head | Description |\n|---|---|\n| 3 | Commas. |\n", source="t.md")
    assert resolve_heads(rows, 1, 16)[0].layer == 0
    with pytest.raises(ValidateError, match=r"^t\.md:3: head '3' is ambiguous for a 2-layer model"):
        resolve_heads(rows, 2, 4)


def test_the_same_head_written_two_ways_is_a_duplicate():
    rows = parse_descriptions("| Head | Description |\n|---|---|\n| 3 | A. |\n| L0H3 | B. |\n", source="t.md")
    with pytest.raises(ValidateError, match=r"^t\.md:4: head L0H3 is described twice \(first at line 3\)"):
        resolve_heads(rows, 1, 16)


# --- a fake run directory ------------------------------------------------------------------------


def head_metrics(layer, head, strong=(), lean=()):
    """Metrics of one head: uniform-looking (lift 1) except `strong` (0.8, 20x) and `lean` (0.2, 2.5x)."""
    row = {"layer": layer, "head": head}
    for m in METRICS:
        value, lift = (0.8, 20.0) if m in strong else (0.2, 2.5) if m in lean else (0.04, 1.0)
        if m == "entropy":
            value, lift = (0.95, 0.95) if m in strong else (0.3, 0.3)
        row.update({m: value, f"{m}_lo": value - 0.02, f"{m}_hi": value + 0.02, f"{m}_lift": lift})
    row.update({f"argmax_offset_{o}": 1 / (len(OFFSETS) + 1) for o in OFFSETS})
    row[f"argmax_offset_gt{OFFSETS[-1]}"] = 1 / (len(OFFSETS) + 1)
    return row


def write_side(directory, prefix, heads, n_heads):
    """heads: {head: (role, secondary roles, leaning metrics)}; other heads are unclear."""
    metrics, roles = [], []
    for h in range(n_heads):
        role, secondary, lean = heads.get(h, ("unclear", (), ()))
        strong = [HEADLINE_METRIC[r] for r in (role, *secondary) if r != "unclear"]
        metrics.append(head_metrics(0, h, strong, lean))
        roles.append({"layer": 0, "head": h, "role": role, "secondary": list(secondary), "confidence": 0.97})
    pd.DataFrame(metrics).to_csv(directory / f"{prefix}metrics.csv", index=False)
    (directory / f"{prefix}roles.json").write_text(json.dumps(roles))


# Truth of the fake one-layer, 12-head model, over the corpus and on the prompt (head 10 differs).
CORPUS_TRUTH = {
    0: ("previous-token", (), ()),
    1: ("current-token", (), ()),
    2: ("start-of-text", ("delimiter",), ()),
    3: ("delimiter", (), ()),
    4: ("current-token", ("previous-token",), ()),
    5: ("previous-token", (), ()),
    6: ("clause-start", (), ()),
    7: ("unclear", (), ("proper_noun",)),
    8: ("broad", (), ()),
    9: ("proper-noun", (), ()),
    10: ("delimiter", (), ()),
}
PROMPT_TRUTH = {**CORPUS_TRUTH, 10: ("previous-token", (), ())}
TABLE = """# My notes on the model

| Head | Description |
| --- | --- |
| 0 | Attends to the previous token. |
| 1 | Attends to the previous token. |
| 2 | The start-of-text token, commas and full stops. |
| 3 | ~~The subject of the sentence? |
| 4 | Attends to the current token, sometimes also the previous token. |
| 5 | Attends to the current token, sometimes also to the previous token. |
| 6 | The start of the clause? |
| 7 | Earlier proper nouns. |
| 8 | Spreads attention over all the tokens. |
| 9 | Attends to the start-of-text token. |
| 10 | ~The previous token (unigram / bigram). |
"""
EXPECTED = {  # head: (corpus verdict, prompt verdict)
    0: (SUPPORTED, SUPPORTED),  # true claim
    1: (CONTRADICTED, CONTRADICTED),  # it is a current-token head
    2: (SUPPORTED, SUPPORTED),  # a list of targets: the primary is one of them, the other is secondary
    3: (NOT_CHECKABLE, NOT_CHECKABLE),
    4: (SUPPORTED, SUPPORTED),  # the "sometimes also" claim is its secondary role
    5: (PARTLY, PARTLY),  # main claim false, secondary claim is its primary role
    6: (SUPPORTED, SUPPORTED),
    7: (PARTLY, PARTLY),  # no role passes, but it leans towards names (0.2, 2.5x uniform)
    8: (SUPPORTED, SUPPORTED),
    9: (CONTRADICTED, CONTRADICTED),
    10: (CONTRADICTED, SUPPORTED),  # true on the prompt only
}


@pytest.fixture
def run_dir(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir()
    write_side(directory, "", CORPUS_TRUTH, 12)
    write_side(directory, "prompt-", PROMPT_TRUTH, 12)
    run = {"model": {"name": "fake-1L", "n_layers": 1, "n_heads": 12}, "prompt": BANANA_PROMPT,
           "corpus": {"name": "bundled", "stories": 40}}
    (directory / "run.json").write_text(json.dumps(run))
    return directory


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text(TABLE)
    return path


def test_true_and_false_claims_get_the_right_verdicts(run_dir, table):
    result = judge(read_descriptions(table), load_measurements(run_dir))
    got = {h.description.head: (h.corpus.verdict, h.prompt.verdict) for h in result.heads}
    assert got == EXPECTED
    assert result.any_contradicted


def test_summary_counts_agreement_and_kappa(run_dir, table):
    result = judge(read_descriptions(table), load_measurements(run_dir))
    corpus = result.summary["corpus"]
    assert corpus["counts"] == {SUPPORTED: 5, PARTLY: 2, CONTRADICTED: 3, NOT_CHECKABLE: 1}
    # Claimed primary = measured primary on heads 0, 2, 4, 6, 8 of the 10 with a checkable claim.
    assert corpus["checkable"] == 10 and corpus["agreement"] == pytest.approx(0.5)
    assert result.summary["prompt"]["agreement"] == pytest.approx(0.6)
    assert -1 <= corpus["kappa"] < result.summary["prompt"]["kappa"] <= 1


def judgement(claimed, measured):
    return Judgement(SUPPORTED, measured, (), 1.0, claimed, (), "")


def test_kappa_is_one_for_full_agreement_and_zero_for_chance():
    assert agreement([judgement("a", "a"), judgement("b", "b")])["kappa"] == pytest.approx(1.0)
    # p_o = 1/2 and p_e = 1/2 (each rater says a and b half the time): kappa = 0.
    pairs = [judgement("a", "a"), judgement("b", "b"), judgement("a", "b"), judgement("b", "a")]
    assert agreement(pairs)["kappa"] == pytest.approx(0.0)
    assert np.isnan(agreement([judgement("a", "a")])["kappa"])


def test_report_shows_numbers_hedges_and_where_the_prompt_misleads(run_dir, table):
    text = render_validation(judge(read_descriptions(table), load_measurements(run_dir)))
    header = ("| Head | Claim (as written) | Claimed roles | Matched phrase | Corpus: measured | Prompt: measured "
              "| Verdict | Evidence |")
    assert header in text
    assert "previous 0.80 [0.78, 0.82], 20x uniform" in text
    assert "not checkable: ~~“The subject of the sentence”?" in text and "clause-start?" in text
    assert "**contradicted** (prompt: supported)" in text
    assert "- 10: supported on the prompt (measured previous-token), contradicted over the corpus" in text
    assert "Cohen's kappa" in text


def test_every_lexicon_and_glossary_role_is_a_known_role():
    from classifier.roles import check_role_names
    from classifier.validate import GLOSSARY, LEXICON

    check_role_names([role for role, _ in LEXICON] + list(GLOSSARY))


def test_results_frame_has_one_row_per_described_head(run_dir, table):
    frame = judge(read_descriptions(table), load_measurements(run_dir)).frame()
    assert list(frame["head"]) == list(range(11))
    head_10 = frame.loc[frame["head"] == 10, ["corpus_verdict", "prompt_verdict"]]
    assert head_10.values.tolist() == [[CONTRADICTED, SUPPORTED]]


def test_a_run_without_prompt_files_is_judged_on_the_corpus_only(run_dir, table):
    (run_dir / "prompt-metrics.csv").unlink()
    result = judge(read_descriptions(table), load_measurements(run_dir))
    assert all(h.prompt is None for h in result.heads) and "prompt" not in result.summary
    assert "- Prompt: not measured" in render_validation(result)


def test_multi_layer_heads_are_read_as_layer_and_head(tmp_path):
    directory = tmp_path / "run2"
    directory.mkdir()
    grid = [(layer, head) for layer in range(2) for head in range(4)]
    metrics = [head_metrics(layer, head, strong=["previous"] if (layer, head) == (1, 2) else [])
               for layer, head in grid]
    roles = [{"layer": layer, "head": head, "role": "previous-token" if (layer, head) == (1, 2) else "unclear",
              "secondary": [], "confidence": 1.0} for layer, head in grid]
    pd.DataFrame(metrics).to_csv(directory / "metrics.csv", index=False)
    (directory / "roles.json").write_text(json.dumps(roles))
    (directory / "run.json").write_text(json.dumps({"model": {"name": "fake-2L", "n_layers": 2, "n_heads": 4}}))
    notes = write(tmp_path, "| Head | Description |\n|---|---|\n| 1.2 | Previous token. |\n| L0:H3 | Previous. |\n")
    result = judge(read_descriptions(notes), load_measurements(directory))
    assert [(h.description.layer, h.description.head, h.corpus.verdict) for h in result.heads] == [
        (1, 2, SUPPORTED), (0, 3, CONTRADICTED)]
    assert "| 1.2 | Previous token. |" in render_validation(result)


def test_a_run_missing_a_head_is_bad_input(run_dir, table):
    roles = json.loads((run_dir / "roles.json").read_text())
    (run_dir / "roles.json").write_text(json.dumps(roles[:-1]))
    result = invoke(table, "--run", run_dir)
    assert result.exit_code == 2 and "roles.json: no row for head L0H11" in result.output


# --- the command ---------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def test_cli_writes_markdown_and_strict_fails_on_a_contradiction(run_dir, table, tmp_path):
    plain = invoke(table, "--run", run_dir)
    assert plain.exit_code == 0, plain.output
    assert plain.output.startswith("# Validation:")
    assert invoke(table, "--run", run_dir, "--strict").exit_code == 1
    out = tmp_path / "out" / "validation.md"
    written = invoke(table, "--run", run_dir, "--out", out)
    assert written.exit_code == 0 and out.read_text() == plain.output
    assert [p.name for p in out.parent.iterdir()] == ["validation.md"]  # no temporary left


def test_strict_passes_without_contradictions(run_dir, tmp_path):
    path = tmp_path / "good.md"
    path.write_text("| Head | Description |\n|---|---|\n| 0 | Previous token. |\n| L0H1 | Itself. |\n")
    assert invoke(path, "--run", run_dir, "--strict").exit_code == 0


def write(tmp_path, content, name="bad.md"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize("content, line, message", [
    ("# Notes\n\nNo table here.\n", 1, "no `| Head | Description |` table found"),
    ("| Head | Description |\n|---|---|\n| 1 | Commas. |\n| 1 | Itself. |\n", 4, "head 1 is described twice"),
    ("| Head | Description |\n|---|---|\n| 12 | Commas. |\n", 3, "head 12 is out of range"),
    ("| Head | Description |\n|---|---|\n| L1H0 | Commas. |\n", 3, "head L1H0 is out of range"),
    ("| Head | Description |\n|---|---|\n| 2 |  |\n", 3, "head 2 has an empty description"),
    ("| Head | Description |\n|---|---|\n| two | Commas. |\n", 3, "cannot read head id 'two'"),
    (b"| Head | Description |\n\x89PNG\x00\x00", 2, "not a text file"),
    ("| Head | Description |\n|---|---|\n".encode() + b"| 1 | caf\xe9 |\n", 3, "not UTF-8 text"),
])
def test_bad_input_exits_2_with_one_line_naming_file_and_line(run_dir, tmp_path, content, line, message):
    path = write(tmp_path, content)
    result = invoke(path, "--run", run_dir)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith(f"Error: {path}:{line}: ") and message in lines[0]


def test_run_and_model_are_exclusive_and_a_new_prompt_needs_the_model(run_dir, table):
    neither = invoke(table)
    assert neither.exit_code == 2 and "exactly one of --run DIR or --model M" in neither.output
    other = invoke(table, "--run", run_dir, "--prompt", "Once upon a time")
    assert other.exit_code == 2 and "pass --model" in other.output


def test_validate_has_help_with_an_example():
    result = CliRunner().invoke(main, ["validate", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


# --- end to end on planted heads -----------------------------------------------------------------

TRUE_PHRASES = {
    "current-token": "Attends to the current token.", "previous-token": "Attends to the previous token.",
    "positional": "Attends to the token two back.", "start-of-text": "Parks on the start-of-text token.",
    "delimiter": "Commas and full stops.", "clause-start": "The start of the clause.",
    "proper-noun": "Earlier proper nouns.", "local": "The last few tokens.",
    "word-start": "The first piece of the word.", "broad": "Spreads attention over all the tokens.",
    "duplicate-token": "Earlier occurrences of the same token.",
    "induction": "The token after an earlier occurrence of the current token.",
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A one-layer calibration model (16 heads, roles planted) and its truth."""
    calibration = pytest.importorskip("classifier.calibration")
    from classifier.corpora import BUNDLED_PATH

    if not hasattr(calibration, "build_calibration_model") or not BUNDLED_PATH.is_file():
        pytest.skip("calibration models or the bundled corpus are not there yet")
    directory = tmp_path_factory.mktemp("planted")
    return directory, calibration.build_calibration_model(directory, layout="one-layer", seed=0)


@pytest.mark.slow
def test_calibration_model_true_claims_supported_false_claims_contradicted(planted):
    from classifier.pipeline import analyse_model
    from classifier.settings import ScoreSettings
    from classifier.validate import measurements_from_analysis

    directory, truth = planted
    settings = ScoreSettings(stories=40, bootstrap=50, device="cpu")
    analysis = analyse_model(str(directory), "bundled", settings, progress=False)
    heads = [h for h in truth.heads if h.role in TRUE_PHRASES]
    rows, expected = [], {}
    for k, h in enumerate(heads):  # every other head gets a false claim
        false_role = "broad" if h.role != "broad" else "previous-token"
        claim_role = h.role if k % 2 == 0 else false_role
        rows.append(f"| L{h.layer}H{h.head} | {TRUE_PHRASES[claim_role]} |")
        expected[(h.layer, h.head)] = SUPPORTED if k % 2 == 0 else CONTRADICTED
    text = "| Head | Description |\n|---|---|\n" + "\n".join(rows) + "\n"
    result = judge(parse_descriptions(text, source="planted.md"), measurements_from_analysis(analysis))
    got = {(h.description.layer, h.description.head): h.corpus.verdict for h in result.heads}
    assert len(got) >= 8 and got == expected


@pytest.mark.slow
def test_cli_validates_the_example_table_on_a_model_and_strict_fails(planted, tmp_path):
    directory, truth = planted
    out = tmp_path / "validation.md"
    result = invoke(EXAMPLE, "--model", directory, "--corpus", "bundled", "--stories", 20, "--bootstrap", 20,
                    "--device", "cpu", "--out", out, "--strict")
    assert result.exit_code == 1, result.output  # the table was written for another model
    text = out.read_text()
    heads = [line for line in text.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:].isdigit()]
    assert len(heads) == 16
    assert "not checkable: ~~“The subject of the sentence”?" in text
    row_10 = next(line for line in heads if line.startswith("| 10 |"))
    assert "| ~broad |" in row_10 and "“Spreads attention” → broad" in row_10
