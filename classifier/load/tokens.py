"""Token classes of section 3 of the design notes: per vocabulary entry, then per sequence.

`vocab_classes` reads each token's own text once per tokenizer (word-start marker rendered as a
leading space). `sequence_classes` turns a padded batch of token ids into the per-position
classes (delimiter, glue, word start, boundary, name) and the target positions the metrics need
(latest delimiter, clause start, word start, the opening quote of the quotation a query is in). Everything here is vectorised over positions: the
"latest X before i" questions are answered with a running maximum, not a Python loop.

This module knows nothing about models or attention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

DELIMITER_CHARS = frozenset('.,!?;:"“”…')
CONJUNCTIONS = frozenset({"and", "but", "or", "so", "because", "yet", "nor"})
LONE_QUOTES = frozenset({'"', "“"})
# The double quote marks that open and close a quotation (`quote_start`; docs/metrics.md section 3).
QUOTE_CHARS = '"“”'
# Quote marks removed from the end of a token before asking whether it ends a sentence.
TRAILING_QUOTES = "\"“”'’"
SENTENCE_END_CHARS = (".", "!", "?")

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@dataclass(frozen=True)
class VocabClasses:
    """Boolean class of every token id of one tokenizer (numpy arrays of length vocab)."""

    texts: tuple[str, ...]
    delimiter: np.ndarray
    glue: np.ndarray
    leading_space: np.ndarray
    newline: np.ndarray
    conjunction: np.ndarray
    capitalised: np.ndarray  # stripped text starts upper-case and is not "I"
    lone_quote: np.ndarray
    sentence_end: np.ndarray
    quote_marks: np.ndarray  # int: double quote characters in the text
    paragraph_quotes: np.ndarray  # int: those after the text's last newline (all of them without one)


def token_texts(tokenizer) -> list[str]:
    """The text of every token id, its word-start marker rendered as a leading space."""
    vocab_size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    if sum(1 for p in pieces if isinstance(p, str) and p.startswith("▁")) > vocab_size // 20:
        # SentencePiece: decoding one piece alone drops its `▁`, so render the piece itself.
        return [_sentencepiece_text(p) for p in pieces]
    # Byte-level BPE (GPT-2): decoding one id keeps its leading space.
    return tokenizer.batch_decode([[i] for i in range(vocab_size)], clean_up_tokenization_spaces=False)


def _sentencepiece_text(piece: str | None) -> str:
    if piece is None:
        return ""
    byte = _BYTE_PIECE.match(piece)
    if byte:
        return bytes([int(byte.group(1), 16)]).decode("utf-8", errors="replace")
    return piece.replace("▁", " ")


def classify_text(text: str) -> dict[str, bool]:
    """Classes of one token text (the rules of section 3 that need no context)."""
    stripped = text.strip()
    glue = text != "" and set(text) == {" "}
    after_newline = text.rpartition("\n")[2]
    delimiter = (stripped != "" and set(stripped) <= DELIMITER_CHARS) or "\n" in text
    return {
        "delimiter": delimiter,
        "glue": glue,
        "leading_space": text[:1].isspace() and not glue,
        "newline": "\n" in text,
        "conjunction": stripped.lower() in CONJUNCTIONS,
        "capitalised": stripped[:1].isupper() and stripped != "I",
        "lone_quote": stripped in LONE_QUOTES,
        "sentence_end": stripped.rstrip(TRAILING_QUOTES).endswith(SENTENCE_END_CHARS),
        "quote_marks": sum(text.count(q) for q in QUOTE_CHARS),
        "paragraph_quotes": sum(after_newline.count(q) for q in QUOTE_CHARS),
    }


def vocab_classes(tokenizer) -> VocabClasses:
    """Classify every token of `tokenizer` once."""
    return classes_from_texts(token_texts(tokenizer))


def classes_from_texts(texts: list[str]) -> VocabClasses:
    """Classify token texts; the position in `texts` is the token id."""
    rows = [classify_text(t) for t in texts]
    columns = {name: np.array([r[name] for r in rows], dtype=type(rows[0][name])) for name in rows[0]}
    return VocabClasses(texts=tuple(texts), **columns)


@dataclass(frozen=True)
class SequenceClasses:
    """Per-position classes and targets of a right-padded batch; shapes (B, T).

    Target positions are -1 where they do not exist; eligibility is decided by the scorer.
    """

    valid: torch.Tensor  # position holds a real token (BOS included)
    delimiter: torch.Tensor
    glue: torch.Tensor
    word_start: torch.Tensor
    continuation: torch.Tensor
    boundary: torch.Tensor
    name: torch.Tensor
    last_delimiter: torch.Tensor  # p(i): latest delimiter j, 1 <= j < i
    clause_start: torch.Tensor  # c(i): first non-glue position after the latest boundary < i
    word_first_piece: torch.Tensor  # w(i): latest word start before i
    quote_start: torch.Tensor  # q(i): inside a quotation, the latest token before i holding a quote mark


def _latest_before(flags: torch.Tensor, strictly: bool = True) -> torch.Tensor:
    """For each position i, the largest j (< i, or <= i) with flags[j]; -1 if none. (B, T)."""
    positions = torch.arange(flags.shape[1], device=flags.device).expand_as(flags)
    marked = torch.where(flags, positions, torch.full_like(positions, -1))
    latest = marked.cummax(dim=1).values
    if strictly:
        latest = torch.cat([torch.full_like(latest[:, :1], -1), latest[:, :-1]], dim=1)
    return latest


def _first_from(flags: torch.Tensor) -> torch.Tensor:
    """For each position k, the smallest j >= k with flags[j]; T if none. (B, T)."""
    length = flags.shape[1]
    positions = torch.arange(length, device=flags.device).expand_as(flags)
    marked = torch.where(flags, positions, torch.full_like(positions, length))
    return marked.flip(1).cummin(dim=1).values.flip(1)


def _quote_start(tokens: torch.Tensor, real: torch.Tensor, newline: torch.Tensor, vocab: VocabClasses) -> torch.Tensor:
    """q(i) of right-padded `tokens` (B, T): where the quote marks in the tokens before i, counted
    from its paragraph's start (after the latest newline, or BOS), are odd in number, the latest
    token before i holding a quote mark; -1 elsewhere. (B, T)."""
    marks = torch.as_tensor(vocab.quote_marks, device=tokens.device)[tokens] * real  # (B, T)
    running = marks.cumsum(dim=1)  # quote marks up to and including each position
    # The paragraph of query i starts after n(i), its latest newline (BOS, 0, when none); only the
    # quote marks after that newline's own last newline count.
    paragraph = _latest_before(newline).clamp(min=0)
    tail = torch.as_tensor(vocab.paragraph_quotes, device=tokens.device)[tokens] * real
    before = _shift_right(running) - running.gather(1, paragraph) + tail.gather(1, paragraph)
    inside = (before % 2 == 1) & real
    return torch.where(inside, _latest_before(marks > 0), torch.full_like(before, -1))


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """x[:, i - 1] at position i, 0 at position 0. (B, T)."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)


def sequence_classes(tokens: torch.Tensor, lengths: torch.Tensor, vocab: VocabClasses) -> SequenceClasses:
    """Classes of every position of right-padded `tokens` (B, T) whose position 0 is BOS."""
    batch, length = tokens.shape
    device = tokens.device
    positions = torch.arange(length, device=device).expand(batch, length)
    valid = positions < lengths[:, None]
    not_bos = positions >= 1

    def lookup(table: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(table, device=device)[tokens] & valid & not_bos

    delimiter = lookup(vocab.delimiter)
    glue = lookup(vocab.glue)
    newline = lookup(vocab.newline)
    leading_space = lookup(vocab.leading_space)

    def shifted(flags: torch.Tensor, fill: bool) -> torch.Tensor:
        """flags[i-1] at position i."""
        return torch.cat([torch.full_like(flags[:, :1], fill), flags[:, :-1]], dim=1)

    # Position 1 follows BOS; "follows" for word starts means the piece right before.
    follows_break = shifted(newline | glue, False) | (positions == 1)
    real = valid & not_bos & ~glue
    word_start = real & (leading_space | delimiter | follows_break)
    continuation = real & ~word_start
    boundary = (delimiter | (word_start & lookup(vocab.conjunction))) | (positions == 0)

    # Names: "the token before X skips glue pieces", so look at the latest non-glue position.
    before = _latest_before(valid & ~glue).clamp(min=0)
    before_tok = tokens.gather(1, before)
    breaks_name = (
        (before == 0)
        | torch.as_tensor(vocab.newline, device=device)[before_tok]
        | torch.as_tensor(vocab.lone_quote, device=device)[before_tok]
        | torch.as_tensor(vocab.sentence_end, device=device)[before_tok]
    )
    name = word_start & lookup(vocab.capitalised) & ~breaks_name

    last_boundary = _latest_before(boundary & valid)  # BOS is a boundary, so >= 0 for i >= 1
    first_non_glue = _first_from(valid & ~glue)
    after_boundary = (last_boundary + 1).clamp(max=length - 1)
    clause_start = torch.where(
        last_boundary >= 0, first_non_glue.gather(1, after_boundary), torch.full_like(last_boundary, -1)
    )
    clause_start = torch.where(last_boundary + 1 >= length, torch.full_like(clause_start, length), clause_start)

    return SequenceClasses(
        quote_start=_quote_start(tokens, valid & not_bos, newline, vocab),
        valid=valid,
        delimiter=delimiter,
        glue=glue,
        word_start=word_start,
        continuation=continuation,
        boundary=boundary & valid,
        name=name,
        last_delimiter=_latest_before(delimiter),
        clause_start=clause_start,
        word_first_piece=_latest_before(word_start),
    )
