"""Names of every metric, budget part and role, in one place that imports no torch.

`METRICS` are the metrics of section 3 of the design notes, then `hold` (section 7: the share of
queries that hold an earlier key position through a run of queries, docs/metrics.md section 5); the exact definitions live in
`classifier.measure.scoring`. `PARTS` split each query's attention into disjoint parts, each key going
to the most specific target it is, so that a head has one budget of attention summing to 1
(section 4: specific before general). `ROLE_REGISTRY` declares each role once: its short code,
its phrases for tables, its headline metric, the budget parts it explains, and the kind of rule
that decides it (`classifier.label.roles`). Every consumer reads roles from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

MetricName = Literal[
    "current",
    "previous",
    "offset2",
    "local",
    "start_of_text",
    "delimiter",
    "last_delimiter",
    "clause_start",
    "proper_noun",
    "word_start",
    "quote_start",
    "duplicate",
    "induction",
    "entropy",
    "max_weight",
    "distance",
    "hold",
]
METRICS: tuple[MetricName, ...] = get_args(MetricName)
# Argmax offsets tracked for the `positional` role (offset i - argmax_j A[i, j]); queries with
# i < MAX_TRACKED_OFFSET are left out so that every tracked offset is possible for each query.
MAX_TRACKED_OFFSET = 8
OFFSETS = tuple(range(MAX_TRACKED_OFFSET + 1))

# Budget parts, most specific first: a key belongs to the first part it qualifies for.
# Delimiters come before duplicates so that a "." attending to earlier full stops counts as
# delimiter attention, the reading a researcher gives it.
PartName = Literal[
    "sink",  # BOS, position 0
    "self",  # j = i
    "previous",  # j = i - 1 (i >= 2)
    "word_start",  # the first piece of the word a continuation piece continues (j <= i - 2)
    "quote_start",  # inside a quotation, the token holding its opening quote mark (j <= i - 2)
    "last_delimiter",  # the latest delimiter (j <= i - 2)
    "clause_start",  # the first piece of the current clause (j <= i - 2)
    "name",  # name tokens (j <= i - 2)
    "other_delimiter",  # any other delimiter (j <= i - 2)
    "duplicate",  # earlier copies of the current token (j <= i - 2)
    "induction",  # tokens right after an earlier copy of the current token (j <= i - 2)
    "local_rest",  # the rest of the window i - 4 <= j <= i - 2
    "rest",  # everything else
]
PARTS: tuple[PartName, ...] = get_args(PartName)

RoleName = Literal[
    "current-token",
    "previous-token",
    "positional",
    "start-of-text",
    "delimiter",
    "clause-start",
    "proper-noun",
    "local",
    "word-start",
    "quote-start",
    "broad",
    "duplicate-token",
    "induction",
    "hold",
    "unclear",
]
ROLES: tuple[RoleName, ...] = get_args(RoleName)
SCORED_ROLES: tuple[RoleName, ...] = ROLES[:-1]  # "unclear" is what is left when none passes
RuleKind = Literal["target", "sink", "positional", "local", "hold", "broad", "none"]


@dataclass(frozen=True)
class Role:
    """One role: how tables name it and which measurements decide it.

    parts: budget part groups whose share the role explains; the role reads, among the groups the
    head prefers, the one with the most attention above uniform (a delimiter head may prefer the
    latest delimiter, or delimiters at large: classifier.label.roles._group_share).
    """

    name: RoleName
    code: str  # short code for grids
    phrase: str  # the table's sentence; {offset} is filled for positional heads
    secondary_phrase: str  # "also ..." wording
    headline: MetricName | None  # section-3 metric a reader checks first
    parts: tuple[tuple[PartName, ...], ...]
    kind: RuleKind
    color: str  # report.html's and track's colour (hex)
    # Target roles whose target only some queries have: those queries ("continuation pieces", as in
    # "the attention of continuation pieces"), and the scope of the role when it is a secondary role on them ("on multi-piece words").
    queries: str = ""
    scope: str = ""
    # Parts the role's target must be preferred over, key for key (its lift at least
    # Thresholds.rival_lift times each of theirs): a target that sits among them draws their heads'
    # attention too.
    rivals: tuple[PartName, ...] = ()


ROLE_REGISTRY: dict[str, Role] = {r.name: r for r in (
    Role("current-token", "CUR", "Attends to the current token", "the current token", "current",
         (("self",),), "target", "#1f77b4"),
    Role("previous-token", "PREV", "Attends to the previous token", "the previous token", "previous",
         (("previous",),), "target", "#d62728"),
    Role("positional", "POS", "Attends to the token {offset} back", "a fixed offset", "offset2",
         (("local_rest",),), "positional", "#9467bd"),
    Role("start-of-text", "SOT", "Parks its attention on the start-of-text token", "the start-of-text token",
         "start_of_text", (("sink",),), "sink", "#7f7f7f"),
    Role("delimiter", "DELIM", "Attends to earlier delimiters (commas, full stops, speech marks)",
         "commas and full stops", "delimiter",
         # all delimiters at large include an opening quote (its own part inside quotations)
         (("last_delimiter",), ("quote_start", "last_delimiter", "other_delimiter")), "target", "#2ca02c",
         queries="queries that follow a delimiter", scope="after delimiters"),
    Role("clause-start", "CLAUSE", "Attends to the start of the current clause", "the start of the clause",
         "clause_start", (("clause_start",),), "target", "#17becf", queries="queries inside a clause", scope="inside clauses"),
    Role("proper-noun", "NAME", "Attends to earlier names", "names", "proper_noun", (("name",),), "target", "#e377c2",
         queries="queries that follow a name", scope="after names"),
    Role("local", "LOCAL", "Spreads attention over the last few tokens", "the last few tokens", "local",
         (("self", "previous", "local_rest"),), "local", "#ff7f0e"),
    Role("word-start", "WORD", "From a word's later pieces, attends to its first piece", "the word's first piece",
         "word_start", (("word_start",),), "target", "#8c564b", queries="continuation pieces", scope="on multi-piece words"),
    # Its queries are the few inside quotations. The opening mark is also a delimiter, sits just
    # before the quoted clause's start and, for the quotation's first queries, in the last few
    # tokens: delimiter, clause-start and local heads give it many times uniform attention too, so
    # the head must prefer it over those targets.
    Role("quote-start", "QUOTE", "Attends to the opening speech mark of the quotation it is in",
         "the opening speech mark", "quote_start", (("quote_start",),), "target", "#aec7e8",
         queries="queries inside a quotation", scope="inside speech",
         rivals=("last_delimiter", "other_delimiter", "clause_start", "local_rest")),
    Role("broad", "BROAD", "Spreads attention broadly", "everything", "entropy", (("rest",),), "broad", "#bcbd22"),
    Role("duplicate-token", "DUP", "Attends to earlier copies of the current token", "earlier copies of the token",
         "duplicate", (("duplicate",),), "target", "#393b79",
         queries="repeated tokens", scope="on repeated tokens"),
    Role("induction", "IND", "Attends to the token after an earlier copy of the current token",
         "tokens after earlier copies", "induction", (("induction",),), "target", "#843c39",
         queries="repeated tokens", scope="on repeated tokens"),
    # Held keys are measured apart from the budget (`hold` in classifier.measure.scoring): a held key
    # may be of any part, so the role names no part.
    Role("hold", "HOLD", "Holds one earlier word for a run of queries", "one held earlier word", "hold",
         (), "hold", "#6b6ecf"),
    Role("unclear", "?", "No clear preference", "nothing in particular", None, (), "none", "#a0a4ad"),
)}

ROLE_COLORS: dict[str, str] = {name: entry.color for name, entry in ROLE_REGISTRY.items()}


def role_code(name) -> str:
    """The registry's short code; a role the registry does not know is shown by its name."""
    entry = ROLE_REGISTRY.get(name) if isinstance(name, str) else None
    return entry.code if entry else str(name)


def role(name: str) -> Role:
    """The registry entry of a role; ValueError listing the valid names for an unknown one."""
    try:
        return ROLE_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown role {name!r}; valid: {', '.join(ROLES)}") from None


def check_role_names(names) -> None:
    """Raise ValueError listing every unknown role name and the valid ones."""
    unknown = [n for n in names if n not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(unknown)}; valid: {', '.join(ROLES)}")


def check_metric_names(names) -> None:
    """Raise ValueError listing every unknown metric name and the valid ones."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s): {', '.join(unknown)}; valid: {', '.join(METRICS)}")
