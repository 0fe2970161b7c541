"""Numbers in a head description, each tied to the metric its own words name.

A written number (a percentage "14%", a decimal "0.42", a multiplier "13x", "13×", "x13" or
"13 times", a bare number "20", a range "20-30%") is tied to a `metrics.csv` column by the words
next to it, in this order:
1. a metric named right after it through a preposition: "14% on the previous token", "44% on
   BOS", "42% of a continuation piece's attention on its word's first piece";
2. a metric named right before it: "previous token 14%", "entropy 0.42", "mean distance 20",
   "latest delimiter 17%", "two back (12%)", "a BOS lean (6%"; or right after it with nothing
   between ("12% previous, 8% self");
3. a multiplier is the lift (`<column>_lift`) of the target it follows: the number or metric
   just before it ("latest delimiter 17% (14x)", "clause start 3x"), else the metric right after
   it ("a 2.4x induction share").
A share "of its attention" (also "of its attention on delimiters") is the share a role explains,
the report's Explained column (`explained`, the role named with it or else the primary claim's);
"of a continuation piece's attention" is that share over the queries the role's target exists
for; a multiplier after either is the role's Lift. `hold` and `ablation` (nats) are named by
their own words ("hold around 50%", "ablating it costs about 0.03 nats").
A number whose metric the words do not tell, or whose words name something no `metrics.csv`
column holds (argmax shares, shares of the non-BOS attention, other delimiters, three back, a
reference value such as uniform's, raw entropy in nats, a statement scoped to one kind of query,
a remark about the prompt), keeps `metric=None` and a `reason`: it is listed as not checked and
never compared with a guessed metric. Each number keeps the interval its writing stands for
("16%" is [15.5%, 16.5%]), a bound ("above 20%") and a hedge ("~16%").

This module only reads text; `classifier.validate.verdicts` compares the numbers with a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from classifier.registry import ROLE_REGISTRY
from classifier.validate.claims import _role_matches, sentence_scope, sentences

NumberKind = Literal["share", "lift", "value"]  # a percentage; a multiplier; a decimal or bare number
Bound = Literal["", "at least", "at most"]

ARGMAX = "an argmax share (how often a target is the top key), not a share of attention"
# Words that name a metrics.csv column (None: words that name something no column holds, with
# the reason). Matched case-insensitively on whole words; the longest match wins an overlap, so
# "previous full stop" is the latest delimiter and "start of the clause" is no start of text.
METRIC_WORDS: tuple[tuple[str | None, str, str], ...] = (  # (column, reason when None, pattern)
    ("last_delimiter", "", r"(?:latest|last|most recent|nearest|closest|previous|preceding) (?:delimiter|delim"
                           r"|punctuation(?: mark| token)?|comma(?: or full stop)?|full stop(?: or comma)?)s?"),
    ("delimiter", "", r"delim(?:iter)?s?(?: tokens?)?|commas?(?: and full stops?)?|full stops?(?: and commas?)?"
                      r"|punctuation(?: marks?| tokens?)?|(?:speech|quotation|quote) marks?"),
    ("quote_start", "", r"(?:opening|first|starting) (?:speech|quote|quotation) marks?|opening quotes?|first quote"
                        r"|(?:start|beginning) of (?:the |its |this )?quotation|quote[- ]starts?"),
    ("word_start", "", r"word[- ]starts?(?: pieces?)?|word'?s (?:own )?(?:first|initial|starting) (?:piece|token|part"
                       r"|sub-?word)s?|(?:first|initial|starting|leading) (?:piece|part|sub-?word|sub-?token)s?"
                       r"(?: of (?:the|its|this|a|each|their) (?:same |current |own )?words?)?"
                       r"|(?:start|beginning) of (?:the|its|this|a|each) (?:current )?word"
                       r"|(?:earlier|previous|other) pieces of (?:the )?same word"
                       r"|(?:first|initial) tokens? of (?:the|its|this|a|each) (?:same |current )?words?"),
    ("clause_start", "", r"clause[- ]starts?|sentence[- ]starts?|(?:start|beginning|first (?:word|token|piece))s? of "
                         r"(?:the |its |this |a |each )?(?:current )?(?:clause|sentence)s?"),
    ("start_of_text", "", r"bos(?: token)?(?: sink)?|start[- ]of[- ](?:text|sequence|story)(?: token)?"
                          r"|(?:start|beginning) of (?:the )?(?:text|story|sequence)|(?:the )?(?:very )?first token"
                          r"|(?:attention )?sinks?|position (?:0|zero)|<\|?endoftext\|?>"),
    ("offset2", "", r"(?:two|2) (?:tokens? |positions? |pieces? |steps? |words? )?(?:back|before|earlier)"
                    r"|i ?- ?2|offset[- ]?(?:of )?2|previous[- ]but[- ]one|(?:token|word) before the previous(?: one)?"),
    ("previous", "", r"(?:previous|preceding|prior|prev\.?)(?:[- ](?:token|tok|word|piece|position|one)s?"
                     r"|(?!\s+(?:sentences?|clauses?|lines?|paragraphs?|stor(?:y|ies))\b))"
                     r"|(?:token|word|piece|one) (?:right |just |immediately |directly )?before(?: it)?"
                     r"|one (?:token |position )?back|i ?- ?1|offset[- ]?(?:of )?1"),
    ("current", "", r"current(?:[- ](?:token|tok|position|piece)|(?!\s+(?:clause|sentence|story|paragraph)\b))|(?:it|them)sel(?:f|ves)|self(?:[- ]attention)?"
                    r"|(?:its|their) own (?:position|token)|(?:the )?(?:main )?diagonal"),
    ("local", "", r"local(?: window)?|last (?:few|five|5|several)(?: tokens?| positions?| pieces?| words?)?"
                  r"|(?:five|5)[- ](?:token|position) window|window|nearby tokens|recent tokens"),
    ("proper_noun", "", r"(?:proper[- ]nouns?|(?:character |earlier )?names?|named entit(?:y|ies))(?: tokens?| pieces?)?"),
    ("duplicate", "", r"duplicates?(?:[- ]tokens?)?|(?:earlier|previous|prior) (?:copies|copy|occurrences?) of "
                      r"(?:the )?(?:same |current )?(?:token|word)s?"),
    ("induction", "", r"induction(?: share| score| pattern)?|(?:token|one) (?:right |just )?after (?:an? |the )?"
                      r"(?:earlier|previous) (?:copy|occurrence)"),
    ("induction_repeated", "", r"repeated[- ](?:random[- ])?(?:tokens?|sequence)[- ]test"),
    ("entropy", "", r"(?:normali[sz]ed )?entropy"),
    ("max_weight", "", r"max(?:imum|\.)? (?:attention )?weight|max(?:imum|\.)? attention|(?:peak|top|largest) "
                       r"(?:attention )?weight|peak attention"),
    ("distance", "", r"(?:mean |average |median |typical )?(?:attention )?distance"),
    ("hold", "", r"hold(?: share| rate)?"),
    ("explained", "", r"explain(?:s|ed)(?: share)?"),
    ("ablation", "", r"(?:mean[- ])?ablat(?:ion|ing|ed)(?: (?:it|the head|this head|its output))?(?: \(nats\))?"
                     r"(?: (?:costs?|raises?|adds?|increases?|hurts?)(?: the loss)?(?: by)?)?|loss (?:increase|rise)"),
    (None, ARGMAX, r"arg-?max(?:es)?|top key"),
    (None, "a share of the non-BOS attention; metrics.csv holds shares of all attention",
     r"non[- ](?:bos|sink|start[- ]of[- ]text)(?: attention)?"),
    (None, "delimiters other than the latest have no metrics.csv column",
     r"other (?:delim(?:iter)?s?|punctuation|commas?|full stops?)"),
    (None, "no metrics.csv column for this offset",
     r"(?:three|four|five|six|[3-9]) (?:tokens? |positions? |pieces? )?back|i ?- ?[3-9]|offset[- ]?[3-9]"),
    (None, "a share of queries, not of attention", r"(?:the |all )?(?:queries|query positions)"),
)
# Numbers after these words in the same bracket (or sentence) are about something else.
CONTEXTS: tuple[tuple[str, str], ...] = (  # (pattern, reason)
    (r"arg-?max", ARGMAX),
    (r"on (?:the|this|that) prompt", "said of the prompt, not of the corpus"),
)
_NUM = r"(?:\d+(?:\.\d+)?|\.\d+)"
NUMBER = re.compile(
    rf"(?P<range>(?P<a>{_NUM})\s*%?\s*(?:-|–|to)\s*(?P<b>{_NUM})\s*(?P<rp>%)?)(?![\w.])"
    rf"|(?P<pct>{_NUM})\s*(?:%|percent\b|per cent\b)"
    rf"|(?<![\w.])[x×]\s?(?P<xpre>{_NUM})(?![\w.])"
    rf"|(?P<mult>{_NUM})\s*(?:[x×](?![\w])|\s+times\b|-?\s*fold\b)|\blift\s*(?:of|=|:)?\s*(?P<liftword>{_NUM})(?![\d.]|\s*[x×%])"
    rf"|(?<![\w.\-–/])(?P<plain>{_NUM})(?![\w%/]|\.\d)"
    rf"|(?:(?<=[\s(:])|^)(?P<negative>[-−]{_NUM})(?![\w%/.])",
    re.IGNORECASE,
)
# A number that names a head ("like 0.0", "L1H5", "head 3") or a position is no measurement.
NOT_NUMBERS = re.compile(
    r"\bl\d+\s*[.:]?\s*h\d+\b|\b(?:heads?|like|unlike|same as|as in|as with|see|cf\.?|than|position|layer|step|seed)\s+"
    r"\d+(?:[.:]\d+)?"
    r"|[\"“][^\"”]*[\"”]|`[^`]*`",
    re.IGNORECASE,
)
# Words allowed between a metric and the number after it ("BOS lean (6%", "previous token, 23%").
BEFORE_GAP = re.compile(
    r"[\s(,:=~≈?*]*(?:(?:is|are|of|at|about|around|roughly|approx(?:imately|\.)?|nearly|almost|only|just|lean|leans"
    r"|share|preference|attention|mass|gets|takes|holds|has|receives|weight|above|over|below|under|at least"
    r"|at most|up to|more than|less than|some|its|the|a|half|most|much|all|mostly|mainly|weakly|strongly|sharply"
    r"|high|low|sharp|soft|weak|strong|clear|clearly|head|heads)[\s(,:=~≈?*]*){0,5}",
    re.IGNORECASE,
)
# Words allowed between a number and the metric after it: "14% on the previous token",
# "42% of a continuation piece's attention on its word's first piece", "24% of the non-BOS attention".
AFTER_GAP = re.compile(
    r"\s*(?:of (?:[\w'’-]+ ){0,4}?(?:attention|mass|weight)\s+)?(?:(?:goes|going|go|lands?|landing|sits?|is|are"
    r"|placed|put|spent)\s+)?(?:on|to|at|onto|into|towards?|for|of)\s+(?:(?:the|its|their|a|an|each|this|that|all)\s+)*",
    re.IGNORECASE,
)
# Between a multiplier and the number or metric whose lift it is: "17% (14x", "clause start 3x".
LIFT_GAP = re.compile(r"[\s(,:=~≈]*(?:(?:at|about|around|roughly|nearly|lift|i\.e\.|or)[\s(,:=~≈]*){0,2}",
                      re.IGNORECASE)
HEDGE = re.compile(r"(?:~|≈|\babout|\baround|\broughly|\bapprox(?:imately|\.)?|\bnearly|\balmost)\s*$", re.IGNORECASE)
AT_LEAST = re.compile(r"(?:\babove|\bover|\bmore than|\bat least|>=?|≥)\s*$", re.IGNORECASE)
AT_MOST = re.compile(r"(?:\bbelow|\bunder|\bless than|\bat most|\bup to|\bno more than|<=?|≤)\s*$", re.IGNORECASE)
REFERENCE_BEFORE = re.compile(r"(?:\bvs\.?|\bversus|\bagainst|\bcompared (?:with|to)|\buniform(?: is| gives)?:?)\s*$",
                              re.IGNORECASE)
REFERENCE_AFTER = re.compile(r"^\s*(?:for |under |with |in )?uniform\b", re.IGNORECASE)
RAW_ENTROPY = re.compile(r"^\s*(?:nats?|bits?)\b", re.IGNORECASE)
# Metrics that hold a share of attention (0-1); the others hold an entropy (0-1 of its maximum,
# as metrics.csv defines it), a weight (0-1) or a distance in tokens.
UNIT_FREE = ("distance", "ablation")
# "20% of its attention" (or "of all its attention", "of its attention on delimiters") beside a role
# is the share the role explains (roles.json `explained`, the report's Explained column); "66% of a
# continuation piece's attention" is that share over the queries the role's target exists for.
EXPLAINED = "explained"
EXPLAINED_WHERE_AVAILABLE = "explained_where_available"
OF_ITS_ATTENTION = re.compile(r"\s*of (?:all )?(?:its|the head's|this head's) attention\b", re.IGNORECASE)
# A metric's role, for "N% of its attention on <metric's words>".
METRIC_ROLES = {**{r.headline: name for name, r in ROLE_REGISTRY.items() if r.headline}, "last_delimiter": "delimiter"}
# A statement scoped to a kind of query measures the metric only there, unless that kind is the
# metric's own query set (word_start is defined on continuation pieces).
OWN_SCOPES = {"word_start": ("continuation",), "duplicate": ("repeated",), "induction": ("repeated",),
              "quote_start": ("speech",)}


@dataclass(frozen=True)
class WrittenNumber:
    """One number as written, the interval its writing stands for, and the metric it is about."""

    text: str  # as written: "17%", "14x", "entropy 0.42" gives "0.42"
    kind: NumberKind
    value: float  # in the metric's units: "17%" is 0.17
    low: float  # the interval the writing stands for: half a unit of its last digit either side
    high: float
    metric: str | None  # the metrics.csv column it is about; for a multiplier, the column whose lift it is
    reason: str = ""  # why `metric` is None
    bound: Bound = ""
    hedged: bool = False  # "~", "about", "roughly": a looser reading
    role: str | None = None  # for `explained`: the role whose share it is (None: the primary claim's)

    @property
    def column(self) -> str | None:
        """The metrics.csv column compared: `metric`, or `<metric>_lift` for a multiplier."""
        if self.metric is None:
            return None
        if self.metric in (EXPLAINED, EXPLAINED_WHERE_AVAILABLE) and self.kind == "lift":
            return "lift"  # the role's lift: the Lift column
        return f"{self.metric}_lift" if self.kind == "lift" else self.metric


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    metric: str | None
    reason: str


@lru_cache(maxsize=1)
def _metric_patterns() -> list[tuple[str | None, str, re.Pattern]]:
    return [(metric, reason, re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])", re.IGNORECASE))
            for metric, reason, pattern in METRIC_WORDS]


def _mentions(text: str) -> list[_Mention]:
    """Every metric named in `text`, the longest winning an overlap, in text order."""
    found = [_Mention(m.start(), m.end(), metric, reason) for metric, reason, pattern in _metric_patterns()
             for m in pattern.finditer(text)]
    kept: list[_Mention] = []
    for mention in sorted(found, key=lambda m: (m.start - m.end, m.start)):
        if all(mention.end <= k.start or mention.start >= k.end for k in kept):
            kept.append(mention)
    return sorted(kept, key=lambda m: m.start)


def _precision(digits: str) -> float:
    """Half a unit of the last written digit: "16" -> 0.5, "13.8" -> 0.05."""
    return 0.5 * 10 ** -(len(digits.split(".")[1]) if "." in digits else 0)


def _parse(match: re.Match) -> tuple[NumberKind, float, float, float]:
    """(kind, value, low, high) of a number match, shares as fractions."""
    if match.group("range"):
        a, b = match.group("a"), match.group("b")
        scale = 0.01 if match.group("rp") else 1.0
        kind: NumberKind = "share" if match.group("rp") else "value"
        low, high = sorted((float(a), float(b)))
        return kind, scale * (low + high) / 2, scale * (low - _precision(a)), scale * (high + _precision(b))
    for group, kind, scale in (("pct", "share", 0.01), ("xpre", "lift", 1.0), ("mult", "lift", 1.0),
                               ("liftword", "lift", 1.0)):
        if match.group(group):
            digits = match.group(group)
            value, half = float(digits), _precision(digits)
            return kind, scale * value, scale * (value - half), scale * (value + half)
    digits = match.group("plain") or match.group("negative").replace("−", "-")
    value, half = float(digits), _precision(digits)
    return "value", value, value - half, value + half


def _context_reason(sentence: str, at: int) -> str:
    """The reason a number at `at` is about something else: an argmax or prompt remark before it
    in the same bracket (a bracket opened after the remark is still inside it)."""
    for pattern, reason in CONTEXTS:
        for found in re.finditer(pattern, sentence[:at], re.IGNORECASE):
            between = sentence[found.end():at]
            depth = 0
            for char in between:
                depth += (char == "(") - (char == ")")
                if depth < 0:
                    break
            else:
                return reason
    return ""


def _unit_reason(metric: str, kind: NumberKind, value: float) -> str:
    """Why a number cannot be this metric's: a percentage of a distance, 1.5 for a share."""
    if kind == "lift":
        return ""
    if metric in UNIT_FREE:
        unit = "nats" if metric == "ablation" else "tokens"
        return f"a percentage, but {metric} is in {unit}" if kind == "share" else ""
    return f"{value:g} is no share: {metric} lies between 0 and 1" if value > 1 else ""


def _asides(sentence: str, upto: int) -> list[tuple[int, int]]:
    """Spans of the bracketed asides without numbers closed before `upto`: "the latest delimiter
    (full stop, comma, quote mark) at about 30%" is about the latest delimiter."""
    spans, opened = [], []
    for k, char in enumerate(sentence[:upto]):
        if char == "(":
            opened.append(k)
        elif char == ")" and opened:
            first = opened.pop()
            if not opened and not re.search(r"\d", sentence[first:k]):
                spans.append((first, k + 1))
    return spans


def _tie(sentence: str, start: int, end: int, kind: NumberKind, mentions: list[_Mention],
         earlier: list[tuple[int, int, WrittenNumber]]) -> tuple[str | None, str]:
    """(metric, reason) of the number at sentence[start:end]."""
    after = [m for m in mentions if m.start >= end]
    asides = _asides(sentence, start)
    before = [m for m in mentions if m.end <= start and not any(a <= m.start < b for a, b in asides)]
    sentence = "".join(" " if any(a <= k < b for a, b in asides) else c for k, c in enumerate(sentence))
    gap = AFTER_GAP.match(sentence, end)
    named = next((m for m in after if m.start <= gap.end() < m.end), None) if gap else None
    if OF_ITS_ATTENTION.match(sentence, end):  # "20% of its attention (on delimiters)": a role's share
        return EXPLAINED, ""
    scoped = _QUERIES_ATTENTION.match(sentence, end)
    if scoped and named is not None and named.start < scoped.end():  # "queries that follow a delimiter" names no metric
        named = None
    if named is not None:  # a metric's name may hold its "the"
        return named.metric, named.reason
    if scoped:
        return EXPLAINED_WHERE_AVAILABLE, ""
    last_number_end = max((e for _, e, _ in earlier), default=-1)
    if kind == "lift":
        items = [(m.end, False, m.metric, m.reason) for m in before]
        items += [(e, True, n.metric, n.reason) for _, e, n in earlier]  # a number wins a tie with its own words
        if items:
            item_end, _, metric, reason = max(items, key=lambda i: i[:2])
            if LIFT_GAP.fullmatch(sentence[item_end:start]):
                return metric, reason
        if re.search(r"\blift\s*[:=]?\s*$", sentence[:start], re.IGNORECASE):  # "Lift 68x": the role's lift
            return EXPLAINED, ""
    elif before and before[-1].end > last_number_end:
        behind = before[-1]
        fits = BEFORE_GAP.fullmatch(sentence[behind.end:start])
        direct = after and re.fullmatch(r"\s+", sentence[end:after[0].start])
        if fits and not (direct and "," in sentence[behind.end:start]):
            return behind.metric, behind.reason
    if after and re.fullmatch(r"\s+", sentence[end:after[0].start]):  # "12% previous", "a 2.4x induction share"
        return after[0].metric, after[0].reason
    return None, "no metric named next to it"


def _queries_phrases(role) -> tuple[str, ...]:
    """The ways a role's queries are written: the registry's plural ("queries that follow a
    delimiter", "continuation pieces", as the report writes "of the attention of ...") and the
    singular a researcher writes before "'s attention" ("a query after a delimiter's attention")."""
    plural = role.queries.lower()
    singular = re.sub(r"^queries\b", "query", plural)
    singular = re.sub(r"\b(pieces|tokens)$", lambda m: m.group(1)[:-1], singular)
    singulars = {singular, singular.replace(" that follow ", " that follows "), singular.replace(" that follow ", " after ")}
    return (plural, *sorted(singulars))


# "`ed` (5% of its attention, 3.5x)": a quoted key token's own share.
TOKEN_SHARE = re.compile(r"[`\"”']\s*\(\s*$")
# One kind of query may be several roles' ("repeated tokens": duplicate-token and induction).
_QUERIES_ROLES: dict[str, tuple[str, ...]] = {
    phrase: tuple(name for name, other in ROLE_REGISTRY.items() if other.queries == r.queries)
    for r in ROLE_REGISTRY.values() if r.queries for phrase in _queries_phrases(r)
}
_QUERIES_ALTERNATIVES = "|".join(re.escape(p) for p in sorted(_QUERIES_ROLES, key=len, reverse=True))
# "66% of a continuation piece's attention" or, as the report writes it, "65% of the attention of
# continuation pieces".
_QUERIES_ATTENTION = re.compile(
    rf"\s*of (?:(?:a |an )?(?P<queries>{_QUERIES_ALTERNATIVES})(?:'s|’s) attention\b"
    rf"|the attention of (?:the |all )?(?P<plural>{_QUERIES_ALTERNATIVES})\b)", re.IGNORECASE)


def _explained_role(sentence: str, start: int, end: int, metric: str, mentions: list[_Mention]) -> str | None:
    """The role whose share an `explained` number is: the metric named after "of its attention on",
    the queries named in "of a continuation piece's attention", else the last role named before it."""
    before = [role for s, _, role in _role_matches(sentence[:start])]
    if metric == EXPLAINED_WHERE_AVAILABLE:
        found = _QUERIES_ATTENTION.match(sentence, end)
        roles = _QUERIES_ROLES[(found.group("queries") or found.group("plural")).lower()]
        return next((role for role in reversed(before) if role in roles), roles[0])
    of = OF_ITS_ATTENTION.match(sentence, end)
    gap = AFTER_GAP.match(sentence, of.end()) if of else None
    named = next((m for m in mentions if gap and m.start <= gap.end() < m.end and m.start >= of.end()), None)
    if named is not None and named.metric in METRIC_ROLES:
        return METRIC_ROLES[named.metric]
    return before[-1] if before else None


def _share_phrase_end(sentence: str, end: int, mentions: list[_Mention]) -> int:
    """Where an explained share's own words end: "11% of its attention on delimiters" is one phrase,
    so the multiplier after it ("(13x uniform)") is its lift, not the delimiter metric's."""
    of = OF_ITS_ATTENTION.match(sentence, end) or _QUERIES_ATTENTION.match(sentence, end)
    if of is None:
        return end
    gap = AFTER_GAP.match(sentence, of.end())
    named = next((m for m in mentions if gap and m.start >= of.end() and m.start <= gap.end() < m.end), None)
    return named.end if named else of.end()


def _masked(text: str) -> str:
    """`text` with head ids, positions and quoted words blanked (same length)."""
    return NOT_NUMBERS.sub(lambda m: " " * len(m.group()), text)


def _scopes(sentence: str) -> list[tuple[int, int, str | None, int]]:
    """(start, end, scope, where the scope's words end) of each statement of a sentence: a number
    said after "Word-initial tokens put ..." is about word-initial queries only."""
    found, at = [], 0
    for part in sentences(sentence):
        start = sentence.find(part, at)
        scope, scope_end = sentence_scope(part)
        found.append((start, start + len(part), scope, start + scope_end))
        at = start + len(part)
    return found


def _scope_reason(sentence: str, start: int, metric: str, scopes) -> str:
    for first, last, scope, scope_end in scopes:
        if (first <= start < last and scope is not None and scope_end <= start
                and scope not in OWN_SCOPES.get(metric, ())
                and not re.search(r",\s*(?:and|but|while|whereas)\b", sentence[scope_end:start])):
            return f"said of {scope.replace('_', '-')} queries only; the metric is over all queries"
    return ""


def read_numbers(text: str) -> tuple[WrittenNumber, ...]:
    """Every number of a description, each with the metric its words name (or why none)."""
    numbers: list[WrittenNumber] = []
    for sentence in sentences(text, ends=".!;"):  # "Word-start? 12%" and "Local: 76%" stay whole
        scopes = _scopes(sentence)
        masked = _masked(sentence)
        mentions = _mentions(masked)
        earlier: list[tuple[int, int, WrittenNumber]] = []
        for match in NUMBER.finditer(masked):
            start, end = match.span()
            if any(m.start < end and start < m.end for m in mentions):
                continue  # a number inside a metric's own name: "two back", "i-1", "last 5 tokens"
            kind, value, low, high = _parse(match)
            metric, reason = _tie(masked, start, end, kind, mentions, earlier)
            prefix = masked[max(0, start - 20):start]
            if kind == "value" and "." not in match.group() and metric not in UNIT_FREE:
                continue  # a bare count ("10 stories", "the previous 4 tokens") is no measurement
            context = _context_reason(masked, start) or (
                ARGMAX if re.match(r"\s*(?:as|is) (?:the )?arg-?max", masked[end:], re.IGNORECASE) else "")
            if kind != "lift" and (REFERENCE_BEFORE.search(prefix) or REFERENCE_AFTER.match(masked[end:])):
                context = "a reference value (uniform's, or another head's), not this head's measurement"
            if metric == "entropy" and RAW_ENTROPY.match(masked[end:]):
                context = "raw entropy; metrics.csv holds entropy as a share of its maximum"
            if metric is not None and not context:
                context = _scope_reason(masked, start, metric, scopes) or _unit_reason(metric, kind, value)
            if context:
                metric, reason = None, context
            bound: Bound = "at least" if AT_LEAST.search(prefix) else "at most" if AT_MOST.search(prefix) else ""
            if metric in (EXPLAINED, EXPLAINED_WHERE_AVAILABLE) and TOKEN_SHARE.search(sentence[:start]):
                metric, reason = None, "a share on one key token (a top key), not a role's share"
            explained = metric in (EXPLAINED, EXPLAINED_WHERE_AVAILABLE)
            role = _explained_role(masked, start, end, metric, mentions) if explained and kind != "lift" else None
            if kind == "lift" and explained:
                role = next((n.role for _, _, n in reversed(earlier) if n.metric == metric), None)
            written = WrittenNumber(
                text=sentence[start:end].strip(), kind=kind, value=value, low=low, high=high, metric=metric,
                reason="" if metric else reason, bound=bound, hedged=bool(HEDGE.search(prefix)), role=role,
            )
            earlier.append((start, _share_phrase_end(masked, end, mentions) if explained else end, written))
            numbers.append(written)
    return tuple(numbers)
