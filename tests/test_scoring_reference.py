"""The fast scorer against a plain, independent reference of the design's section 3.

1. The reference itself, on hand-built sequences with answers worked out by hand.
2. The reference's token classes on real GPT-2 BPE tokens.
3. Per text, per head, per metric agreement of `classifier.measure.scoring` with the reference (GPT-2 BPE).
4. The same for the llama2.c SentencePiece tokenizer (tok512).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reference_metrics import (
    METRIC_NAMES, corpus_reference, eligible_queries, reference_metrics, reference_uniform, token_classes,
    uniform_pattern,
)

from conftest import GPT2_TOKENIZER_DIR as GPT2_DIR, REAL_STORIES as STORIES, TOK512 as SP_MODEL

GPT2_BOS = 50256
SP_BOS = 1
MAX_TOKENS = 64
TOL = 1e-5


def approx(x):
    return pytest.approx(x, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# 1. the reference itself, by hand


def one_hot_rows(T, targets):
    """A (T, T) pattern whose row i puts all its weight on key targets[i]."""
    A = np.zeros((T, T))
    for i, t in enumerate(targets):
        A[i, t] = 1.0
    return A


SIX_TEXTS = ["<bos>", "Once", " upon", " a", " time", " there"]
SIX_IDS = [GPT2_BOS, 10, 11, 12, 13, 14]


def test_identity_and_shifted_identity():
    T = 6
    identity = one_hot_rows(T, [0, 1, 2, 3, 4, 5])
    shifted = one_hot_rows(T, [0, 0, 1, 2, 3, 4])  # row i on i-1 (row 0 on BOS)
    r = reference_metrics(np.stack([identity, shifted]), SIX_IDS, SIX_TEXTS)

    # current: queries 1..5 (5 of them); identity scores 1 on each, shifted 0
    assert r["current"][1] == 5
    assert r["current"][0].tolist() == approx([5.0, 0.0])
    # previous: queries 2..5 (i = 1's previous token is BOS); shifted scores 1 on each
    assert r["previous"][1] == 4
    assert r["previous"][0].tolist() == approx([0.0, 4.0])
    # offset2: queries 3..5
    assert r["offset2"][1] == 3
    assert r["offset2"][0].tolist() == approx([0.0, 0.0])
    # local: only query 5 (window 1..5); both heads stay inside the window
    assert r["local"][1] == 1
    assert r["local"][0].tolist() == approx([1.0, 1.0])
    # start_of_text: queries 1..5; only the shifted head's query 1 sits on BOS
    assert r["start_of_text"][1] == 5
    assert r["start_of_text"][0].tolist() == approx([0.0, 1.0])
    # one-hot rows: entropy 0, max 1 per query; distance 0 (identity) and 1 per query (shifted)
    assert r["entropy"][0].tolist() == approx([0.0, 0.0])
    assert r["max_weight"][0].tolist() == approx([5.0, 5.0])
    assert r["distance"][0].tolist() == approx([0.0, 5.0])
    # no delimiter, name, repeated token or continuation piece in this text: nothing eligible
    for metric in ("delimiter", "last_delimiter", "proper_noun", "word_start", "quote_start", "duplicate", "induction"):
        assert r[metric][1] == 0, metric
        assert r[metric][0].tolist() == approx([0.0, 0.0])
    # clause_start: c(i) = 1 (the first piece after BOS) for every i; eligible where 1 <= i-2
    # i.e. queries 3, 4, 5; identity and shifted never look at position 1 from there
    assert r["clause_start"][1] == 3
    assert r["clause_start"][0].tolist() == approx([0.0, 0.0])


def test_uniform_by_hand():
    u = reference_uniform(SIX_IDS, SIX_TEXTS)
    # current = sum over i = 1..5 of 1/(i+1)
    assert u["current"] == approx(1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6)
    assert u["start_of_text"] == approx(1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6)
    assert u["max_weight"] == approx(1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6)
    # previous: i = 2..5; offset2: i = 3..5; local: i = 5 only, five keys of 1/6
    assert u["previous"] == approx(1 / 3 + 1 / 4 + 1 / 5 + 1 / 6)
    assert u["offset2"] == approx(1 / 4 + 1 / 5 + 1 / 6)
    assert u["local"] == approx(5 / 6)
    # entropy: ln(i+1) / ln(i+1) = 1 for each of 5 queries
    assert u["entropy"] == approx(5.0)
    # distance: sum_j (i-j)/(i+1) = i/2 -> (1+2+3+4+5)/2
    assert u["distance"] == approx(7.5)
    # clause_start: c = 1 for queries 3, 4, 5
    assert u["clause_start"] == approx(1 / 4 + 1 / 5 + 1 / 6)


# pos:    0       1      2       3     4       5       6      7       8        9       10      11
TWELVE_TEXTS = ["<bos>", "The", " cat", ".", " Tom", " ru", "nn", "ing", " and", " Sam", " cat", "."]
TWELVE_IDS = [GPT2_BOS, 10, 20, 30, 40, 50, 60, 61, 70, 80, 20, 30]


def test_token_classes_by_hand():
    k = token_classes(TWELVE_TEXTS)
    F, T_ = False, True
    assert k["delimiter"] == [F, F, F, T_, F, F, F, F, F, F, F, T_]
    assert k["glue"] == [F] * 12
    # "The" follows BOS; " ..." begin with a space; "." is a delimiter; "nn", "ing" continue " ru"
    assert k["word_start"] == [F, T_, T_, T_, T_, T_, F, F, T_, T_, T_, T_]
    assert k["continuation"] == [F, F, F, F, F, F, T_, T_, F, F, F, F]
    assert k["w"] == [-1, 1, 2, 3, 4, 5, 5, 5, 8, 9, 10, 11]
    # boundaries: BOS, the two full stops, " and"
    assert k["boundary"] == [T_, F, F, T_, F, F, F, F, T_, F, F, T_]
    # names: "The" follows BOS, " Tom" follows a sentence end; " Sam" follows " and" -> a name
    assert k["name"] == [F, F, F, F, F, F, F, F, F, T_, F, F]
    # p(i): no delimiter before 4; then position 3 (position 11 itself is not < 11)
    assert k["p"] == [-1, -1, -1, -1, 3, 3, 3, 3, 3, 3, 3, 3]
    # c(i): b = 0 for i <= 3 -> c = 1; b = 3 for i = 4..8 -> c = 4; b = 8 for i >= 9 -> c = 9
    assert k["c"] == [-1, 1, 1, 1, 4, 4, 4, 4, 4, 9, 9, 9]


def test_reference_metrics_by_hand():
    T = 12
    uniform = uniform_pattern(T)
    bos = one_hot_rows(T, [0] * T)
    # head 2: queries 0..3 on themselves, queries 4..11 on the full stop at 3
    on_stop = one_hot_rows(T, [0, 1, 2, 3] + [3] * 8)
    r = reference_metrics(np.stack([uniform, bos, on_stop]), TWELVE_IDS, TWELVE_TEXTS)

    counts = {m: r[m][1] for m in METRIC_NAMES}
    assert counts == {
        "current": 11, "previous": 10, "offset2": 9, "local": 7, "start_of_text": 11,
        # delimiter keys {3, 11} within 1..i-2: i = 5..11
        "delimiter": 7,
        # p(i) = 3 <= i-2: i = 5..11
        "last_delimiter": 7,
        # 1 <= c(i) <= i-2: i = 3 (c 1), 6, 7, 8 (c 4), 11 (c 9)
        "clause_start": 5,
        # the name at 9 needs 9 <= i-2: i = 11
        "proper_noun": 1,
        # continuation pieces 6 (w 5 > 4: no) and 7 (w 5 <= 5: yes)
        "word_start": 1,
        # no quote mark in the text: no query is inside a quotation
        "quote_start": 0,
        # repeated tokens: " cat" at 10 (first at 2), "." at 11 (first at 3)
        "duplicate": 2, "induction": 2,
        "entropy": 11, "max_weight": 11, "distance": 11,
        # a key other than BOS, itself and the previous token: i = 3..11
        "hold": 9,
    }

    def head(metric, h):
        return float(r[metric][0][h])

    # uniform head: each term is (number of keys) / (i+1)
    assert head("current", 0) == approx(sum(1 / (i + 1) for i in range(1, 12)))
    assert head("local", 0) == approx(5 / 6 + 5 / 7 + 5 / 8 + 5 / 9 + 5 / 10 + 5 / 11 + 5 / 12)
    assert head("delimiter", 0) == approx(1 / 6 + 1 / 7 + 1 / 8 + 1 / 9 + 1 / 10 + 1 / 11 + 1 / 12)
    assert head("last_delimiter", 0) == approx(1 / 6 + 1 / 7 + 1 / 8 + 1 / 9 + 1 / 10 + 1 / 11 + 1 / 12)
    assert head("clause_start", 0) == approx(1 / 4 + 1 / 7 + 1 / 8 + 1 / 9 + 1 / 12)
    assert head("proper_noun", 0) == approx(1 / 12)
    assert head("word_start", 0) == approx(1 / 8)
    assert head("duplicate", 0) == approx(1 / 11 + 1 / 12)
    assert head("induction", 0) == approx(1 / 11 + 1 / 12)
    assert head("entropy", 0) == approx(11.0)
    assert head("distance", 0) == approx(sum(i / 2 for i in range(1, 12)))  # 33

    # hold: uniform attention has no top key (1 / (i+1) < 2 / (i+1)), BOS is not a key; the
    # full stop at 3 is the top key of queries 5..11 (query 4 has it as its previous token): a run
    # of 7 consecutive queries (at least 4), and its copy at 11 is never in range (11 > i - 2), so
    # the token-shuffle null has nothing to compare: 7 held queries
    assert [head("hold", h) for h in range(3)] == [0.0, 0.0, 7.0]

    # BOS head: everything on position 0
    assert head("start_of_text", 1) == approx(11.0)
    assert head("distance", 1) == approx(66.0)  # 1 + 2 + ... + 11
    assert head("max_weight", 1) == approx(11.0)
    for metric in ("current", "previous", "offset2", "local", "delimiter", "last_delimiter", "clause_start",
                   "proper_noun", "word_start", "duplicate", "induction", "entropy"):
        assert head(metric, 1) == approx(0.0), metric

    # full-stop head
    assert head("current", 2) == approx(3.0)  # queries 1, 2, 3
    assert head("previous", 2) == approx(1.0)  # query 4 -> 3
    assert head("offset2", 2) == approx(1.0)  # query 5 -> 3
    assert head("local", 2) == approx(3.0)  # queries 5, 6, 7 keep 3 in their window i-4..i
    assert head("delimiter", 2) == approx(7.0)  # queries 5..11 all on the delimiter at 3
    assert head("last_delimiter", 2) == approx(7.0)
    assert head("clause_start", 2) == approx(0.0)  # targets 1, 4, 4, 4, 9: never 3
    assert head("proper_noun", 2) == approx(0.0)
    assert head("word_start", 2) == approx(0.0)
    assert head("duplicate", 2) == approx(1.0)  # query 11 ("."), key 3 (".")
    assert head("induction", 2) == approx(1.0)  # query 10 (" cat" at 2 earlier) -> key 3
    assert head("entropy", 2) == approx(0.0)
    assert head("max_weight", 2) == approx(11.0)
    assert head("distance", 2) == approx(1 + 2 + 3 + 4 + 5 + 6 + 7 + 8)  # queries 4..11 at distance i-3


def test_glue_and_sentencepiece_style_classes_by_hand():
    texts = ["<s>", " ", "J", "ack", " said", ",", " ", "B", "en", " and", " I", "\n", "Sam", " went", "…", " Max"]
    k = token_classes(texts)
    F, T_ = False, True
    assert k["glue"] == [F, T_, F, F, F, F, T_] + [F] * 9
    assert k["delimiter"] == [F, F, F, F, F, T_, F, F, F, F, F, T_, F, F, T_, F]
    # "J" and "B" follow glue pieces; "Sam" follows a newline; glue is never a word start
    assert k["word_start"] == [F, F, T_, F, T_, T_, F, T_, F, T_, T_, T_, T_, T_, T_, T_]
    # LITERAL: a glue piece is not a word start, so it counts as a continuation piece; the glue at
    # position 1 has no word start before it (w = -1)
    assert k["continuation"] == [F, T_, F, T_, F, F, T_, F, T_, F, F, F, F, F, F, F]
    assert k["w"] == [-1, -1, 2, 2, 4, 5, 5, 7, 7, 9, 10, 11, 12, 13, 14, 15]
    assert k["boundary"] == [T_, F, F, F, F, T_, F, F, F, T_, F, T_, F, F, T_, F]
    # "J": the token before it (glue skipped) is BOS -> no; "B": before it is "," -> a name;
    # " I" is excluded; "Sam" follows a newline; " Max" follows "…", which does not end in . ! ?
    assert k["name"] == [F, F, F, F, F, F, F, T_, F, F, F, F, F, F, F, T_]
    # c(i) skips the glue after the boundary: after "," (5) the first non-glue is 7
    assert k["c"] == [-1, 2, 2, 2, 2, 2, 7, 7, 7, 7, 10, 10, 12, 12, 12, 15]
    assert k["p"] == [-1] * 6 + [5] * 6 + [11] * 3 + [14]


def test_glue_after_a_split_word_by_hand():
    # " im" "p" "or" "t" then a glue piece and "J" "ack" (SentencePiece splits " Jack" this way)
    texts = ["<s>", " im", "p", "or", "t", " ", "J", "ack"]
    ids = [1, 100, 101, 102, 103, 104, 105, 106]
    A = np.stack([uniform_pattern(8)])
    # LITERAL reading: "p" (2), "or" (3), "t" (4) and the glue (5) continue " im" (w = 1); "J" starts
    # a word (it follows glue) and "ack" (7) continues it (w = 6). word_start needs w(i) <= i-2:
    # 2 no (1 > 0), 3 yes, 4 yes, 5 yes (the glue), 7 no (6 > 5) -> queries 3, 4, 5
    literal = token_classes(texts)
    assert literal["continuation"] == [False, False, True, True, True, True, False, True]
    assert literal["w"] == [-1, 1, 1, 1, 1, 1, 6, 6]
    assert eligible_queries("word_start", ids, texts) == [3, 4, 5]
    assert reference_metrics(A, ids, texts)["word_start"][0][0] == approx(1 / 4 + 1 / 5 + 1 / 6)
    # glue as neither word start nor continuation: only 3 and 4
    other = token_classes(texts, glue_is_continuation=False)
    assert other["continuation"] == [False, False, True, True, True, False, False, True]
    assert eligible_queries("word_start", ids, texts, glue_is_continuation=False) == [3, 4]
    got = reference_metrics(A, ids, texts, glue_is_continuation=False)["word_start"][0][0]
    assert got == approx(1 / 4 + 1 / 5)


def test_corpus_reference_is_token_weighted():
    a = {m: (np.array([1.0, 2.0]), 2) for m in METRIC_NAMES}
    b = {m: (np.array([3.0, 0.0]), 6) for m in METRIC_NAMES}
    out = corpus_reference([a, b])
    # (1 + 3) / (2 + 6), (2 + 0) / 8
    assert out["current"].tolist() == approx([0.5, 0.25])


# ----------------------------------------------------------------------------------------------
# shared helpers: tokenizers, texts, batches


@pytest.fixture(scope="module")
def gpt2():
    from transformers import GPT2Tokenizer

    vocab = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8"))
    lines = (GPT2_DIR / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
    return GPT2Tokenizer(vocab=vocab, merges=merges)


def gpt2_sequence(tokenizer, text, max_tokens=None):
    ids = [GPT2_BOS] + tokenizer.encode(text.strip(), add_special_tokens=False)
    if max_tokens:
        ids = ids[:max_tokens]
    texts = ["<bos>"] + [tokenizer.decode([k]) for k in ids[1:]]
    return ids, texts


def positions_of(texts, wanted):
    return [i for i, t in enumerate(texts) if t == wanted]


def read_stories(n):
    stories, current = [], []
    with open(STORIES, encoding="utf-8") as f:
        for line in f:
            if line.strip() == "<|endoftext|>":
                if "".join(current).strip():
                    stories.append("".join(current).strip())
                current = []
                if len(stories) == n:
                    break
            else:
                current.append(line)
    return stories


CRAFTED = [
    'She said, "Lily, come here!" Lily ran to Tom.',
    "Mr. Tom and Lily went out, but it rained.\nThen “Ben” said… Sam was sad, so Max sang.",
    '"Lily is here." Tom and I... Max!" Sue saw Ben, yet Amy or Zed ran because nor Kim.',
    '"Hi", said Tom. Tom saw Lily and  Ben. Ben saw Lily, and Tom saw Lily again.',
    "It was fun!\" Lily said. \"Lily? Yes,\" said Mom; \"come:\" now.\n\nThe end. The end.",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    "“Hello,” Lily said. “Stop.” Tom ran. Jack and Lily smiled… Ben   waved.",
    "He said 'stop.' Tom ran. I said 'no!' Sam ran, or Kim sat; Max: \"Why?\" Ann hid.",
]


# ----------------------------------------------------------------------------------------------
# 2. token classes on real GPT-2 BPE tokens


def test_gpt2_token_classes(gpt2):
    ids, texts = gpt2_sequence(gpt2, 'She said, "Lily, come here!" Lily ran.')
    assert texts[1:] == ["She", " said", ",", ' "', "L", "ily", ",", " come", " here", '!"', " Lily", " ran", "."]
    k = token_classes(texts)
    for wanted in (",", ' "', '!"', "."):
        for i in positions_of(texts, wanted):
            assert k["delimiter"][i] and k["boundary"][i] and k["word_start"][i], (wanted, i)
    lily = positions_of(texts, " Lily")[0]
    assert not k["name"][lily]  # follows '!"', a sentence end
    # LITERAL: "L" right after ' "' has no leading space, so it continues the "word" begun by ' "'
    quote = positions_of(texts, ' "')[0]
    assert k["continuation"][quote + 1] and k["w"][quote + 1] == quote
    assert k["continuation"][quote + 2] and k["w"][quote + 2] == quote

    ids, texts = gpt2_sequence(gpt2, "Mr. Tom and Lily went out, but it rained.\nThen they ran. Tom saw Lily")
    k = token_classes(texts)
    tom, lily = positions_of(texts, " Tom"), positions_of(texts, " Lily")
    assert texts[tom[0] - 1] == "." and not k["name"][tom[0]]  # " Tom" after a full stop: no name
    assert k["name"][lily[0]]  # " Lily" after " and": a name
    assert not k["name"][tom[1]]  # after "." again
    assert k["name"][lily[1]]  # after " saw"
    for word in (" and", " but"):
        i = positions_of(texts, word)[0]
        assert k["boundary"][i] and not k["delimiter"][i]
    newline = positions_of(texts, "\n")[0]
    assert k["delimiter"][newline] and k["boundary"][newline]
    assert texts[newline + 1] == "Then" and k["word_start"][newline + 1] and not k["name"][newline + 1]
    ained = positions_of(texts, "ained")[0]
    assert texts[ained - 1] == " r" and k["continuation"][ained] and k["w"][ained] == ained - 1

    ids, texts = gpt2_sequence(gpt2, '"Hi", said Tom. Tom and  Ben.')
    k = token_classes(texts)
    assert texts[1:4] == ['"', "Hi", '",']
    assert k["delimiter"][1] and k["delimiter"][3]
    assert not k["name"][2]  # "Hi" is not even a word start (it continues the word begun by '"')
    space = positions_of(texts, " ")[0]
    assert k["glue"][space] and not k["word_start"][space] and not k["delimiter"][space]
    assert texts[space + 1] == " Ben" and k["name"][space + 1]  # glue skipped: follows " and"

    ids, texts = gpt2_sequence(gpt2, '"Lily is here." Tom and I... Max!" Sue sat.')
    k = token_classes(texts)
    for wanted in ('."', "...", '!"'):
        i = positions_of(texts, wanted)[0]
        assert k["delimiter"][i]
        assert texts[i + 1].strip() in ("Tom", "Max", "Sue") and not k["name"][i + 1]
    assert not k["name"][positions_of(texts, " I")[0]]

    # GPT-2 BPE splits the curly quotes into two byte-level pieces each (' \xe2' + '\x80\x9c' for
    # “, '\xe2\x80' + '\x9d' for ”); decoded one by one they are '\ufffd' pieces, so no GPT-2
    # token is “ or ” and, read literally, curly quotes are never delimiters there, and " Tom"
    # after ".”" follows a '\ufffd' piece, not a sentence end, so it counts as a name
    ids, texts = gpt2_sequence(gpt2, "“Stop.” Tom ran.")
    k = token_classes(texts)
    assert texts[1:3] == ["\ufffd", "\ufffd"] and not any(k["delimiter"][1:3])
    tom = positions_of(texts, " Tom")[0]
    assert texts[tom - 1] == "\ufffd" and k["name"][tom]

    # ".'" is one GPT-2 token: no delimiter (the apostrophe is not a delimiter character), but a
    # sentence end once its trailing quote mark is removed, so " Tom" after it is no name
    ids, texts = gpt2_sequence(gpt2, "He said 'stop.' Tom ran.")
    k = token_classes(texts)
    stop = positions_of(texts, ".'")[0]
    assert not k["delimiter"][stop] and texts[stop + 1] == " Tom" and not k["name"][stop + 1]

    # "…" is one GPT-2 token and a delimiter; a capital after it is a name ("…" is no sentence end)
    ids, texts = gpt2_sequence(gpt2, "He said… Sam")
    k = token_classes(texts)
    dots = positions_of(texts, "…")[0]
    assert k["delimiter"][dots] and k["name"][dots + 1]


# ----------------------------------------------------------------------------------------------
# 3. agreement with the fast scorer


def close(a, b):
    """Within 1e-5, or 1e-6 relative for large sums (`distance` adds up to ~1000 per text)."""
    return bool(np.all(np.abs(np.asarray(a) - np.asarray(b)) <= TOL + 1e-6 * np.abs(np.asarray(b))))


def random_patterns(rng, H, T, length):
    """(H, T, T) causal patterns for a text of `length` tokens padded to T: softmax of random scores
    on j <= i for real queries (heads of different sharpness, one identity-like and one BOS-heavy);
    padded query rows hold garbage (uniform over ALL keys, above the diagonal too)."""
    P = np.zeros((H, T, T))
    sharpness = [1.0, 4.0, 0.3, 2.0, 8.0][:H] + [1.0] * max(0, H - 5)
    for h in range(H):
        for i in range(T):
            if i >= length:
                P[h, i, :] = 1.0 / T  # garbage for padded queries
                continue
            scores = rng.normal(size=i + 1) * sharpness[h]
            if h == 3:
                scores[i] += 3.0  # identity-like
            if h == 4:
                scores[0] += 5.0  # BOS sink
            e = np.exp(scores - scores.max())
            P[h, i, : i + 1] = e / e.sum()
    return P


def compare_with_scorer(tokenizer, sequences, pad_id, H=5, seed=0, glue_is_continuation=True):
    """sequences: list of (token_ids, token_texts). Returns a list of disagreement strings."""
    import torch

    from classifier.measure.scoring import METRICS, metric_targets, query_stats, score_patterns
    from classifier.load.tokens import sequence_classes, vocab_classes

    assert tuple(METRICS) == METRIC_NAMES
    rng = np.random.default_rng(seed)
    B = len(sequences)
    T = max(len(ids) for ids, _ in sequences)
    tokens = torch.full((B, T), pad_id, dtype=torch.int64)
    lengths = torch.tensor([len(ids) for ids, _ in sequences], dtype=torch.int64)
    patterns = np.zeros((B, H, T, T))
    for b, (ids, _) in enumerate(sequences):
        tokens[b, : len(ids)] = torch.tensor(ids)
        patterns[b] = random_patterns(rng, H, T, len(ids))

    vocab = vocab_classes(tokenizer)
    classes = sequence_classes(tokens, lengths, vocab)
    targets = metric_targets(tokens, classes)
    sums, _offset_counts = score_patterns(torch.tensor(patterns, dtype=torch.float64), targets)
    counts, uniform, _offset_queries = query_stats(targets)
    sums, counts, uniform = sums.double().numpy(), counts.double().numpy(), uniform.double().numpy()

    problems = []
    per_text = []
    for b, (ids, texts) in enumerate(sequences):
        L = len(ids)
        ref = reference_metrics(patterns[b, :, :L, :L], ids, texts, glue_is_continuation=glue_is_continuation)
        ref_uniform = reference_uniform(ids, texts, glue_is_continuation=glue_is_continuation)
        per_text.append(ref)
        for m, metric in enumerate(METRIC_NAMES):
            ref_sums, ref_count = ref[metric]
            if counts[b, m] != ref_count:
                problems.append(f"text {b} {metric}: count scorer {counts[b, m]:g} reference {ref_count}"
                                f"; reference queries {eligible_queries(metric, ids, texts, glue_is_continuation)}")
            if not close(uniform[b, m], ref_uniform[metric]):
                problems.append(f"text {b} {metric}: uniform scorer {uniform[b, m]:.6f} reference {ref_uniform[metric]:.6f}")
            for h in range(H):
                if not close(sums[b, h, m], ref_sums[h]):
                    problems.append(f"text {b} head {h} {metric}: sum scorer {sums[b, h, m]:.6f} reference {ref_sums[h]:.6f}")
    # the comparison is not vacuous: every metric has eligible queries somewhere in the batch
    empty = [metric for m, metric in enumerate(METRIC_NAMES) if counts[:, m].sum() == 0]
    assert not empty, f"no eligible queries for {empty}"
    # corpus means: the same token-weighted means from the scorer's sums and counts
    ref_corpus = corpus_reference(per_text)
    for m, metric in enumerate(METRIC_NAMES):
        total = counts[:, m].sum()
        if total > 0 and not close(sums[:, :, m].sum(0) / total, ref_corpus[metric]):
            problems.append(f"corpus {metric}: mean scorer {sums[:, :, m].sum(0) / total} reference {ref_corpus[metric]}")
    return problems


def sequence_report(sequences, problems):
    return "\n".join(problems[:40])


# Glue pieces (text only spaces: GPT-2's " " in a run of spaces, SentencePiece's bare "▁") are read as
# neither word start nor continuation piece: the design says glue "is never a delimiter, word start,
# name or boundary" and "the piece after it starts a word", so it belongs to no word. (Read literally,
# "any other piece continues the word" would make glue a continuation piece; the reference keeps that
# reading behind `glue_is_continuation=True` and the hand-worked tests above cover it.)
GLUE_READINGS = [pytest.param(False, id="glue-is-neither")]


def check_agreement(sequences, problems, glue_is_continuation):
    assert not problems, sequence_report(sequences, problems)


@pytest.mark.parametrize("glue_is_continuation", GLUE_READINGS)
def test_scorer_agrees_with_reference_gpt2(gpt2, glue_is_continuation):
    texts = read_stories(12) + CRAFTED
    sequences = [gpt2_sequence(gpt2, t, MAX_TOKENS) for t in texts]
    # pad with "." (13), a token the texts hold, so that leaked padding would change duplicate/induction
    problems = compare_with_scorer(gpt2, sequences, pad_id=13, glue_is_continuation=glue_is_continuation)
    check_agreement(sequences, problems, glue_is_continuation)


@pytest.mark.parametrize("glue_is_continuation", GLUE_READINGS)
def test_scorer_agrees_on_crafted_gpt2_texts(gpt2, glue_is_continuation):
    sequences = [gpt2_sequence(gpt2, t) for t in CRAFTED]
    problems = compare_with_scorer(gpt2, sequences, pad_id=GPT2_BOS, seed=1, glue_is_continuation=glue_is_continuation)
    check_agreement(sequences, problems, glue_is_continuation)


def test_nan_in_padded_query_rows_is_excluded(gpt2):
    import torch

    from classifier.measure.scoring import metric_targets, score_patterns
    from classifier.load.tokens import sequence_classes, vocab_classes

    sequences = [gpt2_sequence(gpt2, t) for t in CRAFTED[:2]]
    T = max(len(ids) for ids, _ in sequences)
    tokens = torch.full((2, T), GPT2_BOS, dtype=torch.int64)
    patterns = np.zeros((2, 2, T, T))
    rng = np.random.default_rng(3)
    for b, (ids, _) in enumerate(sequences):
        tokens[b, : len(ids)] = torch.tensor(ids)
        patterns[b] = random_patterns(rng, 2, T, len(ids))
        patterns[b, :, len(ids):, :] = np.nan
    lengths = torch.tensor([len(ids) for ids, _ in sequences])
    targets = metric_targets(tokens, sequence_classes(tokens, lengths, vocab_classes(gpt2)))
    sums, _ = score_patterns(torch.tensor(patterns), targets)
    assert not torch.isnan(sums).any()


# ----------------------------------------------------------------------------------------------
# 4. the SentencePiece tokenizer of llama2.c's stories260K


class SentencePieceAdapter:
    """Just enough of a tokenizer for `vocab_classes`: its length and its raw pieces."""

    def __init__(self, path):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(path))

    def __len__(self):
        return self.sp.get_piece_size()

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self.sp.id_to_piece(ids)
        return [self.sp.id_to_piece(int(i)) for i in ids]


def sp_piece_text(piece):
    """A piece's text with its word-start marker rendered as a space; byte pieces as their byte."""
    if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
        value = int(piece[3:5], 16)
        return chr(value) if value < 0x80 else "\ufffd"
    return piece.replace("▁", " ")


def sp_sequence(adapter, text, max_tokens=None):
    ids = [SP_BOS] + adapter.sp.encode(text.strip())
    if max_tokens:
        ids = ids[:max_tokens]
    texts = ["<s>"] + [sp_piece_text(adapter.sp.id_to_piece(k)) for k in ids[1:]]
    return ids, texts


@pytest.fixture(scope="module")
def sp_adapter():
    return SentencePieceAdapter(SP_MODEL)


def test_sentencepiece_token_classes(sp_adapter):
    ids, texts = sp_sequence(sp_adapter, 'Jack said, "Lily!" Lily ran.\nThen Ben and Sam.')
    assert texts[1:5] == [" ", "J", "a", "ck"]
    k = token_classes(texts)
    assert k["glue"][1] and k["word_start"][2] and not k["name"][2]  # after BOS, glue skipped
    assert k["continuation"][3] and k["w"][3] == 2 and k["w"][4] == 2
    newline = positions_of(texts, "\n")[0]
    assert k["delimiter"][newline] and k["word_start"][newline + 1]
    lily = positions_of(texts, " Lily")[0]
    assert texts[lily - 1] == '"' and not k["name"][lily]  # follows a lone quote
    sam = positions_of(texts, " S")[0]
    assert k["name"][sam]  # after " and"


@pytest.mark.parametrize("glue_is_continuation", GLUE_READINGS)
def test_scorer_agrees_with_reference_sentencepiece(sp_adapter, glue_is_continuation):
    texts = read_stories(12) + CRAFTED
    sequences = [sp_sequence(sp_adapter, t, MAX_TOKENS) for t in texts]
    problems = compare_with_scorer(sp_adapter, sequences, pad_id=sp_adapter.sp.piece_to_id("."), seed=2,
                                   glue_is_continuation=glue_is_continuation)
    check_agreement(sequences, problems, glue_is_continuation)
