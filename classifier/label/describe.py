"""One sentence per head in the register of a researcher's table, with the numbers behind it.

Shared by report.md and report.html; reads a head's role row, metrics row and budget row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from classifier.formatting import percent, times
from classifier.registry import ROLE_REGISTRY

# An unclear head's description names a target only when it gets this multiple of uniform
# attention (and >= 5% of attention): below that the "preference" is noise.
UNCLEAR_NOTABLE_LIFT = 2.0

# Budget parts named in descriptions (unclear heads, secondary roles).
PART_PHRASES = {
    "self": "itself", "previous": "the previous token", "word_start": "the word's first piece",
    "last_delimiter": "the latest delimiter", "clause_start": "the clause start", "name": "earlier names",
    "other_delimiter": "other delimiters", "duplicate": "earlier copies of the token",
    "induction": "tokens after earlier copies", "local_rest": "two to four tokens back",
}
# The kind of one key, as pairs of (query -> key) name it.
KEY_KINDS = {
    "previous": "previous token", "word_start": "word's first piece", "last_delimiter": "latest delimiter",
    "clause_start": "clause start", "name": "earlier name", "other_delimiter": "earlier delimiter",
    "duplicate": "earlier copy", "induction": "after an earlier copy", "local_rest": "2-4 back",
    "rest": "farther back", "self": "itself", "sink": "BOS",
}


def key_kind(part) -> str:
    """`previous token` for a pair's budget part; empty for runs saved before parts were kept."""
    return KEY_KINDS.get(part, "") if isinstance(part, str) else ""


def _budget_phrase(budget: pd.Series, part: str) -> str:
    lift = budget[part] / budget[f"{part}_uniform"] if budget[f"{part}_uniform"] > 0 else np.nan
    return f"{PART_PHRASES[part]} ({percent(budget[part])}, {times(lift)} uniform)"


def describe_head(label: pd.Series, metrics: pd.Series, budget: pd.Series | None) -> str:
    """One sentence in the register of a researcher's table, with the numbers behind it."""
    role, offset = label["role"], int(label["offset"])
    sink = f"; {percent(label['sink'])} parked on BOS" if label["sink"] >= 0.2 and role != "start-of-text" else ""
    if role == "unclear":
        if budget is None or not len(budget):
            return "No role passes."
        lifts = {p: budget[p] / budget[f"{p}_uniform"] for p in PART_PHRASES if budget[f"{p}_uniform"] > 0}
        best = max(lifts, key=lifts.get, default=None)
        if best is None or lifts[best] < UNCLEAR_NOTABLE_LIFT or budget[best] < 0.05:
            return f"No clear preference: no target gets {UNCLEAR_NOTABLE_LIFT:g}x what uniform attention gives{sink}."
        return f"No role passes; leans towards {_budget_phrase(budget, best)}{sink}."
    entry = ROLE_REGISTRY[role]
    phrase = entry.phrase.format(offset=offset)
    if role == "positional":
        main = f"{phrase} (its argmax for {percent(metrics.get(f'argmax_offset_{offset}', np.nan))} of queries)"
    elif role == "broad":
        main = f"{phrase} (entropy {metrics['entropy']:.2f} of the maximum, largest weight {metrics['max_weight']:.2f} on average)"
    else:
        main = f"{phrase}: {percent(label['explained'])} of attention, {times(label['lift'])} uniform"
    extras = [ROLE_REGISTRY[other].secondary_phrase for other in list(label["secondary"])[:2] if other != "start-of-text"]
    return main + (f"; also {' and '.join(extras)}" if extras else "") + sink + "."
