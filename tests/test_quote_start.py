"""`quote_start` (docs/metrics.md section 3) on hand-checked texts, GPT-2 BPE and llama2.c's tok512.

Each case lists the tokens the tokenizer gives and q(i) for every position, worked out by hand:
the quote marks (`"`, `“`, `”`) in the tokens before i, counted from i's paragraph start, are odd
in number -> q(i) is the latest earlier token holding one; -1 elsewhere. Both the scorer's
`sequence_classes` and the loop reference must give them.
"""

import numpy as np
import pytest
import torch

from conftest import TOK512
from tests.reference_metrics import token_classes

GPT2_BOS = 50256
SP_BOS = 1
N = -1  # no quote start: outside every quotation

# (text, tokens after BOS, q for positions 0.. (BOS first)), GPT-2 BPE
GPT2_CASES = [
    # balanced speech; the closing token ('!"', ',"', '."') is itself inside: its quote is not yet counted
    ('Tom said, "Lily, come here!" Lily ran. "Yes," she said.',
     ["Tom", " said", ",", ' "', "L", "ily", ",", " come", " here", '!"', " Lily", " ran", ".", ' "', "Yes", ',"',
      " she", " said", "."],
     [N, N, N, N, N, 4, 4, 4, 4, 4, 4, N, N, N, N, 14, 14, N, N, N]),
    # unbalanced: a quotation left open runs to the end of its paragraph (the newline token included);
    # the next paragraph counts afresh
    ('"Let\'s go to the park.\n"OK," said Mom.',
     ['"', "Let", "'s", " go", " to", " the", " park", ".", "\n", '"', "OK", ',"', " said", " Mom", "."],
     [N, N, 1, 1, 1, 1, 1, 1, 1, 1, N, 10, 10, N, N, N]),
    # unbalanced the other way: a stray closing mark (a story cut mid-speech) flips the count, so
    # the words after it read as inside and the real quotation after them as outside
    ('Hi," Tom said. "Go!" Ben ran.',
     ["Hi", ',"', " Tom", " said", ".", ' "', "Go", '!"', " Ben", " ran", "."],
     [N, N, N, 2, 2, 2, 2, N, N, 8, 8, 8]),
    # a token with two quote marks counts twice: '""' closes one quotation and opens the next, and
    # is the next one's opening mark
    ('"Hi"" he said.',
     ['"', "Hi", '""', " he", " said", "."],
     [N, N, 1, 1, 3, 3, 3]),
    # curly quotes: GPT-2 BPE splits “ and ” into byte pieces that hold no whole character, so no
    # token holds them and they open nothing (as they are no delimiter either)
    ("Then “Stop,” she said.",
     ["Then", " \ufffd", "\ufffd", "Stop", ",", "\ufffd", "\ufffd", " she", " said", "."],
     [N] * 11),
]

# tok512 (llama2.c's 512-piece SentencePiece): `"` stands alone, and “ ” are pieces of their own
SP_CASES = [
    ('Tom said, "Lily, come!" Lily ran.',
     [" T", "om", " said", ",", ' "', "L", "ily", ",", " c", "om", "e", "!", '"', " Lily", " r", "an", "."],
     [N, N, N, N, N, N, 5, 5, 5, 5, 5, 5, 5, 5, N, N, N, N]),
    ('"Go.\n"OK," she said.',
     [' "', "G", "o", ".", "\n", '"', "O", "K", ",", '"', " she", " said", "."],
     [N, N, 1, 1, 1, 1, N, 6, 6, 6, 6, N, N, N]),
    ("Then “Stop,” she said.",
     [" The", "n", " ", "“", "S", "t", "o", "p", ",", "”", " she", " said", "."],
     [N, N, N, N, N, 4, 4, 4, 4, 4, 4, N, N, N]),
]


@pytest.fixture(scope="module")
def sp():
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(TOK512))


def _sp_text(piece: str) -> str:
    """A piece's text, its `▁` as a space and a byte piece as its byte (the newline)."""
    if piece.startswith("<0x") and piece.endswith(">"):
        return bytes([int(piece[3:5], 16)]).decode("utf-8", errors="replace")
    return piece.replace("▁", " ")


def _scorer_q(ids, vocab) -> list[int]:
    from classifier.load.tokens import sequence_classes

    tokens = torch.tensor([ids])
    return sequence_classes(tokens, torch.tensor([len(ids)]), vocab).quote_start[0].tolist()


@pytest.mark.parametrize("case", range(len(GPT2_CASES)))
def test_quote_start_on_gpt2_tokens(gpt2_tokenizer, case):
    from classifier.load.tokens import vocab_classes

    text, pieces, expected = GPT2_CASES[case]
    ids = [GPT2_BOS] + gpt2_tokenizer.encode(text, add_special_tokens=False)
    texts = ["<bos>"] + [gpt2_tokenizer.decode([k]) for k in ids[1:]]
    assert texts[1:] == pieces
    assert token_classes(texts)["q"] == expected
    assert _scorer_q(ids, vocab_classes(gpt2_tokenizer)) == expected


@pytest.mark.parametrize("case", range(len(SP_CASES)))
def test_quote_start_on_tok512_pieces(sp, case):
    from classifier.load.tokens import classes_from_texts

    text, pieces, expected = SP_CASES[case]
    ids = [SP_BOS] + sp.encode(text)
    texts = ["<s>"] + [_sp_text(sp.id_to_piece(k)) for k in ids[1:]]
    assert texts[1:] == pieces
    assert token_classes(texts)["q"] == expected
    vocab = classes_from_texts([_sp_text(sp.id_to_piece(k)) for k in range(sp.get_piece_size())])
    assert _scorer_q(ids, vocab) == expected


def test_quote_start_metric_reads_the_opening_mark_from_two_tokens_on():
    from tests.reference_metrics import reference_metrics

    # '"' 'Hi' ',' ' Tom' '."': queries 2-5 are inside (q = 1); q <= i - 2 leaves query 2 out
    texts = ["<bos>", '"', "Hi", ",", " Tom", '."', " Yes"]
    ids = [0, 1, 2, 3, 4, 5, 6]
    on_quote = np.zeros((7, 7))
    on_quote[:, 0] = 1.0
    on_quote[3:6, 0], on_quote[3:6, 1] = 0.0, 1.0  # queries 3, 4, 5 on the opening mark
    on_quote[6, 0], on_quote[6, 1] = 0.0, 1.0  # query 6 is outside: not counted
    sums, count = reference_metrics(on_quote[None], ids, texts)["quote_start"]
    assert count == 3 and sums[0] == pytest.approx(3.0)


@pytest.mark.slow
def test_a_planted_quote_start_head_is_recovered_and_delimiter_clause_and_local_heads_are_not_taken_for_one(tmp_path):
    from classifier.calibrate.planted import build_calibration_model
    from classifier.load.corpora import load_corpus
    from classifier.load.models import load_model
    from classifier.pipeline import analyse
    from classifier.settings import ScoreSettings

    settings = ScoreSettings(stories=40, bootstrap=20, device="cpu")
    sample = load_corpus("bundled", stories=40, seed=0)
    seen = set()
    for layout in ("one-layer", "two-layer"):
        truth = build_calibration_model(tmp_path / layout, layout=layout, seed=0)
        roles = analyse(load_model(str(tmp_path / layout), device="cpu"), sample, settings, progress=False,
                        importance=False).roles
        for head in truth.heads:
            row = roles[(roles["layer"] == head.layer) & (roles["head"] == head.head)].iloc[0]
            seen.add(head.role)
            if head.role == "quote-start":
                assert row["role"] == "quote-start", row
            else:  # the delimiter, clause-start, local, positional, word-start and noise heads
                assert row["role"] != "quote-start" and "quote-start" not in row["secondary"], (head, row)
    assert {"quote-start", "delimiter", "clause-start", "local"} <= seen
