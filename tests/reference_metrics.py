"""A deliberately plain reference implementation of the attention metrics of the design notes
(/work/shared/design/head-roles.md, section 3), used only by the tests.

It is written independently of `classifier.load.tokens` / `classifier.measure.scoring`: plain Python loops over
positions, queries and keys, numpy only, one rule per loop, clarity over speed. Where the design
text is ambiguous the literal reading is taken; each such choice is marked "LITERAL:" below.
"""

from __future__ import annotations

import math

import numpy as np

METRIC_NAMES = (
    "current", "previous", "offset2", "local", "start_of_text", "delimiter", "last_delimiter",
    "clause_start", "proper_noun", "word_start", "quote_start", "duplicate", "induction", "entropy", "max_weight",
    "distance", "hold",
)
# hold (design notes, sections 7 and 8; docs/metrics.md section 5): a query's top key over keys 1 <= j <= i-2
# counts when it gets at least HOLD_PEAK_LIFT / (i+1), and is held when it is the counted top key
# of a run of at least HOLD_MIN_QUERIES queries (each within HOLD_MAX_GAP + 1 of the previous one
# with the same top key), the key is the counted top key of at most HOLD_RETURN_SHARE x the run's
# queries outside the run, and it gets at least HOLD_POSITION_LIFT times the mean weight of the
# keys 1 <= j <= i-2 of its token (or is the only one).
HOLD_MIN_QUERIES = 4
HOLD_MAX_GAP = 2
HOLD_RETURN_SHARE = 0.5
HOLD_PEAK_LIFT = 2.0
HOLD_POSITION_LIFT = 1.5

DELIMITER_CHARS = set('.,!?;:"“”…')
CONJUNCTIONS = {"and", "but", "or", "so", "because", "yet", "nor"}
# "trailing quote marks": every quote mark, double and single, straight and curly. (A narrower
# reading, only the double quotes the design lists as delimiters, would make " Tom" in GPT-2's
# `said 'stop.' Tom` a name, since `.'` is one GPT-2 token.)
QUOTE_MARKS = "\"“”'‘’"
NO_POSITION = -1
# quote_start (design notes, section 8): the double quote characters that open and close quotations.
DOUBLE_QUOTES = ('"', "“", "”")


# --------------------------------------------------------------------------------------------
# token classes


def is_delimiter_text(text: str) -> bool:
    """Stripped text non-empty and made only of `. , ! ? ; : " “ ” …`, or the text holds a newline."""
    if "\n" in text:
        return True
    stripped = text.strip()
    if stripped == "":
        return False
    for ch in stripped:
        if ch not in DELIMITER_CHARS:
            return False
    return True


def is_glue_text(text: str) -> bool:
    """A piece whose text is only spaces (LITERAL: the space character ' ', at least one)."""
    if text == "":
        return False
    for ch in text:
        if ch != " ":
            return False
    return True


def is_sentence_end_text(text: str) -> bool:
    """Stripped text, with trailing quote marks removed, ends in `.`, `!` or `?`."""
    stripped = text.strip()
    while stripped != "" and stripped[-1] in QUOTE_MARKS:
        stripped = stripped[:-1]
    return stripped != "" and stripped[-1] in ".!?"


def token_classes(token_texts: list[str], glue_is_continuation: bool = True) -> dict[str, list]:
    """Per-position classes of one sequence whose position 0 is BOS (its text is ignored).

    Returns lists of length T: booleans `delimiter`, `glue`, `word_start`, `continuation`,
    `boundary`, `name`, `inside` (inside a quotation), and positions `p` (latest delimiter 1 <= j < i),
    `c` (clause start), `w` (first piece of the word token i belongs to: i itself for a word start),
    `q` (inside a quotation, the latest earlier token holding a quote mark), with -1 where the
    position does not exist.

    `glue_is_continuation`: the design says a glue piece is "never a delimiter, word start, name or
    boundary" and that "any other piece continues the word begun by the latest word start before
    it". LITERAL (the default): a glue piece is therefore a continuation piece of the word before
    it. With False, a glue piece is neither a word start nor a continuation piece.
    """
    T = len(token_texts)

    # delimiter and glue: from the token's own text; BOS is neither
    delimiter = [False] * T
    glue = [False] * T
    for i in range(1, T):
        glue[i] = is_glue_text(token_texts[i])
        delimiter[i] = (not glue[i]) and is_delimiter_text(token_texts[i])

    # "the token before X skips glue pieces": the latest non-glue position before X (BOS counts)
    before = [NO_POSITION] * T
    for i in range(1, T):
        j = i - 1
        while j >= 1 and glue[j]:
            j -= 1
        before[i] = j  # j == 0 is BOS, which is never glue

    # word start: begins with white space, is a delimiter, or follows BOS, a newline or a glue piece.
    # Glue is never a word start.
    word_start = [False] * T
    for i in range(1, T):
        if glue[i]:
            continue
        text = token_texts[i]
        starts = False
        if text != "" and text[0].isspace():
            starts = True
        if delimiter[i]:
            starts = True
        if i - 1 == 0:  # follows BOS
            starts = True
        if i - 1 >= 1 and glue[i - 1]:  # follows a glue piece (the piece right before it)
            starts = True
        if before[i] == 0:  # follows BOS once glue is skipped
            starts = True
        if before[i] >= 1 and "\n" in token_texts[before[i]]:  # follows a newline
            starts = True
        word_start[i] = starts

    # continuation: every other piece (LITERAL: glue pieces too, since they are not word starts);
    # w(i) = latest word start before i, or i itself for a word start
    continuation = [False] * T
    w = [NO_POSITION] * T
    for i in range(1, T):
        if word_start[i]:
            w[i] = i
            continue
        if glue[i] and not glue_is_continuation:
            continue
        continuation[i] = True
        for j in range(i - 1, 0, -1):
            if word_start[j]:
                w[i] = j
                break

    # boundary: a delimiter, a coordinating conjunction (word-start piece), or BOS
    boundary = [False] * T
    boundary[0] = True
    for i in range(1, T):
        if delimiter[i]:
            boundary[i] = True
        elif word_start[i] and token_texts[i].strip().lower() in CONJUNCTIONS:
            boundary[i] = True

    # name: a word-start piece, stripped text starts with an upper-case letter and is not "I",
    # not following BOS, a newline, a lone `"` / `“`, or a sentence end (the token before skips glue)
    name = [False] * T
    for i in range(1, T):
        if not word_start[i] or glue[i]:
            continue
        stripped = token_texts[i].strip()
        if stripped == "" or not (stripped[0].isalpha() and stripped[0].isupper()):
            continue
        if stripped == "I":
            continue
        prev = before[i]
        if prev == 0:
            continue
        prev_text = token_texts[prev]
        if "\n" in prev_text:
            continue
        if prev_text.strip() in ('"', "“"):
            continue
        if is_sentence_end_text(prev_text):
            continue
        name[i] = True

    # p(i): latest delimiter position j with 1 <= j < i
    p = [NO_POSITION] * T
    for i in range(1, T):
        for j in range(i - 1, 0, -1):
            if delimiter[j]:
                p[i] = j
                break

    # c(i): the first non-glue position after b(i), b(i) = latest boundary position < i (BOS at 0)
    c = [NO_POSITION] * T
    for i in range(1, T):
        b = 0
        for j in range(i - 1, -1, -1):
            if boundary[j]:
                b = j
                break
        for k in range(b + 1, T):
            if not glue[k]:
                c[i] = k
                break

    # inside a quotation: the double quote characters in the tokens before i, counted from i's
    # paragraph start (after the latest newline character before i, or BOS), are odd in number.
    # Walk the characters of the text before i backwards, stopping at a newline (LITERAL: a token
    # holding a newline and then a quote mark starts its paragraph with that quote mark).
    inside = [False] * T
    q = [NO_POSITION] * T
    for i in range(1, T):
        count = 0
        stop = False
        for j in range(i - 1, 0, -1):
            for ch in reversed(token_texts[j]):
                if ch == "\n":
                    stop = True
                    break
                if ch in DOUBLE_QUOTES:
                    count += 1
            if stop:
                break
        inside[i] = count % 2 == 1
        if inside[i]:
            for j in range(i - 1, 0, -1):
                if any(mark in token_texts[j] for mark in DOUBLE_QUOTES):
                    q[i] = j
                    break

    return {
        "delimiter": delimiter, "glue": glue, "word_start": word_start,
        "continuation": continuation, "boundary": boundary, "name": name,
        "p": p, "c": c, "w": w, "inside": inside, "q": q,
    }


# --------------------------------------------------------------------------------------------
# metrics


def _query_value(metric: str, A: np.ndarray, i: int, token_ids: list[int], classes: dict):
    """The metric's value at query i for one head's (T, T) pattern A, or None if i is not eligible."""
    if i < 1:
        return None  # query 0 is never counted
    tok = token_ids
    if metric == "current":
        return A[i, i]
    if metric == "previous":
        return A[i, i - 1] if i >= 2 else None
    if metric == "offset2":
        return A[i, i - 2] if i >= 3 else None
    if metric == "local":
        if i < 5:
            return None
        return sum(A[i, j] for j in range(i - 4, i + 1))
    if metric == "start_of_text":
        return A[i, 0]
    if metric == "delimiter":
        keys = [j for j in range(1, i - 1) if classes["delimiter"][j]]  # 1 <= j <= i-2
        return sum(A[i, j] for j in keys) if keys else None
    if metric == "last_delimiter":
        pi = classes["p"][i]
        if pi == NO_POSITION or pi > i - 2:
            return None
        return A[i, pi]
    if metric == "clause_start":
        ci = classes["c"][i]
        if ci == NO_POSITION or not (1 <= ci <= i - 2):
            return None
        return A[i, ci]
    if metric == "proper_noun":
        keys = [j for j in range(1, i - 1) if classes["name"][j]]  # 1 <= j <= i-2
        return sum(A[i, j] for j in keys) if keys else None
    if metric == "word_start":
        if not classes["continuation"][i]:
            return None
        wi = classes["w"][i]
        if wi == NO_POSITION or wi > i - 2:
            return None
        return A[i, wi]
    if metric == "quote_start":
        qi = classes["q"][i]
        if qi == NO_POSITION or not (1 <= qi <= i - 2):
            return None
        return A[i, qi]
    if metric == "duplicate":
        keys = [j for j in range(0, i) if tok[j] == tok[i]]
        return sum(A[i, j] for j in keys) if keys else None
    if metric == "induction":
        keys = [j for j in range(0, i - 1) if tok[j] == tok[i]]  # j < i-1
        return sum(A[i, j + 1] for j in keys) if keys else None
    if metric == "entropy":
        h = 0.0
        for j in range(0, i + 1):
            a = float(A[i, j])
            if a > 0:
                h -= a * math.log(a)
        return h / math.log(i + 1)
    if metric == "max_weight":
        return max(A[i, j] for j in range(0, i + 1))
    if metric == "distance":
        return sum(A[i, j] * (i - j) for j in range(0, i + 1))
    raise KeyError(metric)


def held_queries(A: np.ndarray, tok: list[int]) -> list[bool]:
    """For one head's (T, T) pattern over tokens `tok`: whether each query holds its top key."""
    T = A.shape[0]
    top = [NO_POSITION] * T
    for i in range(3, T):
        best = NO_POSITION
        for j in range(1, i - 1):  # 1 <= j <= i-2; the first of equal weights wins
            if best == NO_POSITION or A[i, j] > A[i, best]:
                best = j
        if A[i, best] >= HOLD_PEAK_LIFT / (i + 1):
            top[i] = best
    # runs: walk the queries; a query joins the open run of its top key when that run's last query
    # is at most HOLD_MAX_GAP + 1 before it (a query between two of a run's may look elsewhere)
    run_of = [NO_POSITION] * T
    runs: list[list[int]] = []
    last_run: dict[int, int] = {}
    for i in range(3, T):
        if top[i] == NO_POSITION:
            continue
        r = last_run.get(top[i])
        if r is not None and i - runs[r][-1] <= HOLD_MAX_GAP + 1:
            runs[r].append(i)
        else:
            runs.append([i])
            last_run[top[i]] = len(runs) - 1
        run_of[i] = last_run[top[i]]
    held = [False] * T
    for i in range(3, T):
        if top[i] == NO_POSITION:
            continue
        queries = len(runs[run_of[i]])
        elsewhere = sum(1 for q in range(3, T) if top[q] == top[i]) - queries
        twins = [j for j in range(1, i - 1) if tok[j] == tok[top[i]]]
        mean = sum(A[i, j] for j in twins) / len(twins)
        held[i] = (queries >= HOLD_MIN_QUERIES and elsewhere <= HOLD_RETURN_SHARE * queries
                   and (A[i, top[i]] >= HOLD_POSITION_LIFT * mean or len(twins) == 1))
    return held


def reference_metrics(patterns: np.ndarray, token_ids: list[int], token_texts: list[str],
                      classes: dict | None = None, glue_is_continuation: bool = True,
                      ) -> dict[str, tuple[np.ndarray, int]]:
    """For one text and one layer's patterns (H, T, T): per metric, (per-head sum over eligible
    queries with shape (H,), number of eligible queries)."""
    patterns = np.asarray(patterns, dtype=np.float64)
    H, T, T2 = patterns.shape
    assert T == T2 == len(token_ids) == len(token_texts)
    if classes is None:
        classes = token_classes(token_texts, glue_is_continuation=glue_is_continuation)
    result = {}
    for metric in METRIC_NAMES:
        if metric == "hold":  # a query's value depends on the other queries of the text
            held = [held_queries(patterns[h], token_ids) for h in range(H)]
            result[metric] = (np.array([float(sum(held[h])) for h in range(H)]), max(T - 3, 0))
            continue
        sums = np.zeros(H, dtype=np.float64)
        count = 0
        for i in range(T):
            if _query_value(metric, patterns[0], i, token_ids, classes) is None:
                continue  # eligibility depends only on tokens, not on the head
            count += 1
            for h in range(H):
                sums[h] += float(_query_value(metric, patterns[h], i, token_ids, classes))
        result[metric] = (sums, count)
    return result


def eligible_queries(metric: str, token_ids: list[int], token_texts: list[str],
                     glue_is_continuation: bool = True) -> list[int]:
    """The query positions eligible for `metric` (for reporting disagreements)."""
    T = len(token_ids)
    classes = token_classes(token_texts, glue_is_continuation=glue_is_continuation)
    if metric == "hold":
        return list(range(3, T))
    probe = uniform_pattern(T)
    return [i for i in range(T) if _query_value(metric, probe, i, token_ids, classes) is not None]


def uniform_pattern(T: int) -> np.ndarray:
    """A[i, j] = 1/(i+1) for j <= i, zero above the diagonal."""
    A = np.zeros((T, T), dtype=np.float64)
    for i in range(T):
        for j in range(i + 1):
            A[i, j] = 1.0 / (i + 1)
    return A


def reference_uniform(token_ids: list[int], token_texts: list[str],
                      glue_is_continuation: bool = True) -> dict[str, float]:
    """Sum over eligible queries of each metric's value under uniform causal attention."""
    T = len(token_ids)
    per_metric = reference_metrics(uniform_pattern(T)[None], token_ids, token_texts,
                                   glue_is_continuation=glue_is_continuation)
    return {metric: float(sums[0]) for metric, (sums, _count) in per_metric.items()}


def corpus_reference(per_text_results: list[dict[str, tuple[np.ndarray, int]]]) -> dict[str, np.ndarray]:
    """Token-weighted means over texts: (sum of per-text sums) / (sum of per-text counts); NaN
    where no text has an eligible query."""
    out = {}
    for metric in METRIC_NAMES:
        total = None
        count = 0
        for result in per_text_results:
            sums, n = result[metric]
            total = np.array(sums, dtype=np.float64) if total is None else total + sums
            count += n
        out[metric] = total / count if count > 0 else np.full_like(total, np.nan)
    return out
