"""One sentence per head in the register of a researcher's table, with the numbers behind it.

Shared by report.md and report.html; reads a head's role row (with its top keys), metrics row and
budget row. Every number says what it is a share of: "of its attention" is a share of all the
head's attention; a role whose target only some queries have gives the share of those queries'
attention first ("65% of the attention of continuation pieces"), then the share of all of it.
How a role is written (`delimiter?` in doubt) is decided once, by `classifier.formatting.written_role`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from classifier.formatting import percent, times, token, written_role
from classifier.registry import ROLE_REGISTRY
from classifier.thresholds import (
    ALL_QUERIES, HOLD_MIN_QUERIES, KEYS_NAMED, SINK_MENTIONED, TOP_KEY_NOTABLE_LIFT, UNCLEAR_NOTABLE_LIFT,
    UNCLEAR_NOTABLE_SHARE,
)

# Budget parts named in descriptions (unclear heads, secondary roles).
PART_PHRASES = {
    "self": "itself", "previous": "the previous token", "word_start": "the word's first piece",
    "quote_start": "the opening quote mark", "last_delimiter": "the latest delimiter", "clause_start": "the clause start",
    "name": "earlier names",
    "other_delimiter": "other delimiters", "duplicate": "earlier copies of the token",
    "induction": "tokens after earlier copies", "local_rest": "two to four tokens back",
}
# The kind of one key, as pairs of (query -> key) name it.
KEY_KINDS = {
    "previous": "previous token", "word_start": "word's first piece", "quote_start": "opening quote",
    "last_delimiter": "latest delimiter", "clause_start": "clause start", "name": "earlier name", "other_delimiter": "earlier delimiter",
    "duplicate": "earlier copy", "induction": "after an earlier copy", "local_rest": "2-4 back",
    "rest": "farther back", "self": "itself", "sink": "BOS",
}


def key_kind(part) -> str:
    """`previous token` for a pair's budget part; empty for runs saved before parts were kept."""
    return KEY_KINDS.get(part, "") if isinstance(part, str) else ""


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def role_label(label) -> str:
    """A head's role row as every table writes it (`written_role`): `delimiter?` in doubt."""
    return written_role(label["role"], label.get("confidence", np.nan))


def secondary_label(label) -> str:
    """Secondary roles, those on a sliver of the queries scoped: `previous-token, on multi-piece
    words: word-start`."""
    scoped = set(label.get("scoped", ()) or ())
    return ", ".join(
        f"{ROLE_REGISTRY[r].scope}: {r}" if r in scoped and r in ROLE_REGISTRY and ROLE_REGISTRY[r].scope else r
        for r in label["secondary"]
    )


def confidence_text(label) -> str:
    """The confidence as tables write it: none for unclear heads (no label to be confident in),
    n/a where it was not measured (too few stories for the bootstrap)."""
    return "" if label["role"] == "unclear" else percent(label.get("confidence", np.nan))


def top_keys_of(label) -> list[dict]:
    keys = label.get("top_keys")
    return list(keys) if isinstance(keys, (list, tuple)) else []


def small_percent(x: float) -> str:
    """A share that may be small: 0.004 -> '0.4%' (not '0%'), 0.31 -> '31%'."""
    return percent(x, 1) if _finite(x) and abs(x) < 0.01 else percent(x)


def key_text(key: dict, what: str = "of its attention") -> str:
    """` to` (31% of its attention, 9x)."""
    return f"{token(key['token'])} ({small_percent(key['share'])} {what}, {times(key['lift'])})"


def top_keys_list(label) -> list[dict]:
    """The head's one list of top keys: those it prefers (lift >= TOP_KEY_NOTABLE_LIFT) by share,
    then the others by share. The table shows its first KEYS_NAMED, the head card all of it."""
    preferred = preferred_keys(label, None)
    return preferred + [k for k in top_keys_of(label) if k not in preferred]


def key_cell(key: dict) -> str:
    """One top key as tables and the head card write it: "` to` 31% 9.0x"."""
    return f"{token(key['token'])} {small_percent(key['share'])} {times(key['lift'])}"


def top_keys_text(label, n: int = KEYS_NAMED) -> str:
    """The first `n` of the head's top keys as a table cell: "` to` 31% 9.0x, `.` 5% 1.1x"."""
    return ", ".join(key_cell(k) for k in top_keys_list(label)[:n])


def preferred_keys(label, n: int | None = KEYS_NAMED) -> list[dict]:
    """Top keys the head prefers (lift >= TOP_KEY_NOTABLE_LIFT), by share (all when n is None)."""
    return [k for k in top_keys_of(label) if _finite(k.get("lift")) and k["lift"] >= TOP_KEY_NOTABLE_LIFT][:n]


def _budget_phrase(budget: pd.Series, part: str) -> str:
    lift = budget[part] / budget[f"{part}_uniform"] if budget[f"{part}_uniform"] > 0 else np.nan
    return f"{PART_PHRASES[part]} ({percent(budget[part])} of its attention, {times(lift)} uniform)"


def _hold_text(label) -> str:
    """"45% of its queries hold their top key through a run of at least 4 queries"; empty for runs
    saved before hold."""
    hold = label.get("hold", np.nan)
    return (f"{percent(hold)} of its queries hold their top key through a run of at least {HOLD_MIN_QUERIES} queries"
            if _finite(hold) else "")


def _keys_description(label, lead: str) -> str:
    """A head described by what it looks at: its preferred key tokens, or failing that its
    most attended ones, and its hold."""
    preferred = preferred_keys(label)
    keys = preferred or top_keys_of(label)[:KEYS_NAMED]
    hold = _hold_text(label)
    if not keys:
        return lead + (f"; {hold}" if hold else "")
    verb = "prefers" if preferred else f"no key token gets {TOP_KEY_NOTABLE_LIFT:g}x uniform; most of its attention off BOS, itself and the previous token goes to"
    return f"{lead}; {verb} {', '.join(key_text(k) for k in keys)}" + (f"; {hold}" if hold else "")


def _share_phrase(label, role: str) -> str:
    """"20% of its attention, 68x uniform", or for a role whose target only some queries have
    "65% of the attention of continuation pieces, 66x uniform; 20% of all its attention"."""
    explained, lift, available = label.get("explained", np.nan), label.get("lift", np.nan), label.get("available", np.nan)
    queries = ROLE_REGISTRY[role].queries
    # A role of several part groups (delimiter: the latest or any) has no exact share of queries
    # with a target (`available` is the largest group's); where the ratio passes 1 it is not said.
    if queries and _finite(available) and 0 < available < ALL_QUERIES and explained <= available:
        return (f"{percent(explained / available)} of the attention of {queries}, {times(lift)} uniform; "
                f"{percent(explained)} of all its attention")
    return f"{percent(explained)} of its attention, {times(lift)} uniform"


def _hold_description(label) -> str:
    preferred = preferred_keys(label)
    attention = percent(label.get("hold_attention", label.get("explained")))
    held = f" ({_hold_text(label)}; those keys get {attention} of its attention)"
    if preferred:
        what = f": mostly {', '.join(key_text(k) for k in preferred)}"
    elif top_keys_of(label):
        what = (f": no key token it prefers ({TOP_KEY_NOTABLE_LIFT:g}x uniform); its most attended are "
                f"{', '.join(key_text(k) for k in top_keys_of(label)[:KEYS_NAMED])}")
    else:
        what = ""
    return f"{ROLE_REGISTRY['hold'].phrase}{held}{what}"


def describe_head(label: pd.Series, metrics: pd.Series, budget: pd.Series | None) -> str:
    """One sentence in the register of a researcher's table, with the numbers behind it."""
    role, offset = label["role"], int(label["offset"])
    sink = (f"; {percent(label['sink'])} of its attention parked on BOS"
            if label["sink"] >= SINK_MENTIONED and role != "start-of-text" else "")
    if role == "unclear":
        if top_keys_of(label):
            return _keys_description(label, "No structural role") + sink + "."
        if budget is None or not len(budget):
            return "No role passes."
        lifts = {p: budget[p] / budget[f"{p}_uniform"] for p in PART_PHRASES if budget[f"{p}_uniform"] > 0}
        best = max(lifts, key=lifts.get, default=None)
        if best is None or lifts[best] < UNCLEAR_NOTABLE_LIFT or budget[best] < UNCLEAR_NOTABLE_SHARE:
            return f"No clear preference: no target gets {UNCLEAR_NOTABLE_LIFT:g}x what uniform attention gives{sink}."
        return f"No role passes; leans towards {_budget_phrase(budget, best)}{sink}."
    entry = ROLE_REGISTRY[role]
    phrase = entry.phrase.format(offset=offset)
    if role == "positional":
        main = f"{phrase} (its argmax for {percent(metrics.get(f'argmax_offset_{offset}', np.nan))} of queries)"
    elif role == "broad":
        main = (f"{phrase} (entropy {metrics['entropy']:.2f} of the maximum; its largest weight is "
                f"{percent(metrics['max_weight'])} of a query's attention on average)")
    elif role == "hold" and _finite(label.get("hold", np.nan)):
        main = _hold_description(label)
    else:
        main = f"{phrase}: {_share_phrase(label, role)}"
    scoped = set(label.get("scoped", ()) or ())
    secondary = [other for other in list(label["secondary"]) if other != "start-of-text"]
    extras = [ROLE_REGISTRY[other].secondary_phrase for other in secondary if other not in scoped][:2]
    scoped_text = [f"{ROLE_REGISTRY[other].scope}, {ROLE_REGISTRY[other].secondary_phrase}" for other in secondary
                   if other in scoped and ROLE_REGISTRY[other].scope][:1]
    also = extras + scoped_text
    return main + (f"; also {' and '.join(also)}" if also else "") + sink + "."
