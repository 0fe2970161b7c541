"""From words to claims: what one hand-written head description says about the head.

A description becomes a `HeadClaims`: one **primary** claim (the head-level statement, normally
the first role the text names outside a condition), **secondary** claims (further roles, or
ones after "also", "sometimes", "weakly"), **conditions** (statements scoped to a kind of query:
"inside a word, ...", "punctuation attends to itself", "word-initial tokens put 40% on
themselves"), **notes** (token-specific remarks, negations, examples) and phrases no attention
metric can check ("the subject of the sentence"). A condition whose scope is the role's own
definition ("inside a word, attends to the word's first piece" is what word-start means) is a
head-level claim. Numbers are read apart, by the metric their own words name
(`classifier.validate.numbers`). Hedges (`~`, `~~`, `?`, "maybe", "weak") lower a claim's
`weight` instead of dropping it.

The reader's rule order (`extract_claims`): a role named alone before a colon ("Start-of-text
sink: ...") is the primary claim; "same as HEAD" takes that head's; else the first role named
outside a condition; a description made only of scoped statements claims the widest scope's
role. Manner words ("spreads", "across the whole story") claim `broad` only when no target is
named, and uniform attention named as a reference ("13x uniform") claims nothing.

Roles are found with a lexicon of regular expressions (`LEXICON`; an earlier role wins an
overlap); a sentence the lexicon does not cover falls back to `ClaimMatcher`, TF-IDF similarity
to per-role glossaries. This module does not read tables, load measurements or judge claims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Literal

import numpy as np

ClaimKind = Literal["primary", "secondary", "condition", "note", "uncheckable"]
ScopeKind = Literal["continuation", "word_start", "delimiter", "name", "repeated", "speech", "token", "other"]

# A condition whose scope is the query set a role is defined on is that role's head-level claim.
ROLE_SCOPES: dict[str, tuple[ScopeKind, ...]] = {
    "word-start": ("continuation",), "duplicate-token": ("repeated",), "induction": ("repeated",),
    "quote-start": ("speech",),
}
# How many queries a kind of scope usually covers, widest first: a description made only of
# scoped statements claims the widest one's role ("word-initial tokens attend to X; continuation
# pieces to Y" is an X head with a scoped Y), and the narrower ones stay scoped.
SCOPE_BREADTH: tuple[ScopeKind, ...] = ("word_start", "other", "delimiter", "continuation", "speech", "repeated",
                                        "name", "token")


@dataclass(frozen=True)
class Claim:
    """One thing a description says. `role` is None for notes and claims no metric can check."""

    kind: ClaimKind
    role: str | None
    phrase: str  # the words that matched (or the glossary entry), or the note's text
    sentence: str  # the sentence or clause it came from
    hedge: str = ""  # "~", "~~" (roughly), "?" (unsure), "weak", as written
    weight: float = 1.0  # 1 for a plain statement, lower for each hedge
    scope: ScopeKind | None = None  # the kind of query a condition is about
    source: Literal["lexicon", "tf-idf", "text"] = "lexicon"
    similarity: float = float("nan")  # TF-IDF cosine similarity (fallback matches only)


@dataclass(frozen=True)
class HeadClaims:
    """Everything one description claims, sorted by kind."""

    text: str
    claims: tuple[Claim, ...]

    def of_kind(self, kind: ClaimKind) -> tuple[Claim, ...]:
        return tuple(c for c in self.claims if c.kind == kind)

    @property
    def primary(self) -> Claim | None:
        return next(iter(self.of_kind("primary")), None)

    @property
    def claimed_primary(self) -> str | None:
        return self.primary.role if self.primary else None

    @property
    def claimed_secondary(self) -> tuple[str, ...]:
        return tuple(c.role for c in self.of_kind("secondary"))

    @property
    def conditions(self) -> tuple[Claim, ...]:
        return self.of_kind("condition")

    @property
    def weight(self) -> float:
        """The primary claim's weight (0 without one)."""
        return self.primary.weight if self.primary else 0.0


_NOUN = r"(?:tokens?|toks?|words?|positions?|ones?|pieces?)"
_COPY = r"(?:occurrences?|cop(?:y|ies)|instances?|appearances?|mentions?)"
_OF_SAME = r"(?: of (?:the |this |that |its )?(?:same |current |identical )?(?:tokens?|words?|itself))?"
_DET = r"(?:the |its |a |this |each |every |any |their )?"
_FEW = (r"(?:few|several|two|three|four|five|six|(?:a )?couple of|handful of|one or two|two or three|"
        r"\d+\s*(?:-|–|to)\s*\d+|[2-9])")
_BACK = r"(?:back|before|earlier|behind|ago|to the left)"
# Phrases (regular expressions, matched case-insensitively on whole words) per role. Ordered: an
# earlier role wins where two matches overlap ("nothing I can name" is unclear; "earlier pieces of the same word" is word-start,
# not duplicate-token; "the previous 1-4 tokens" is local, not previous-token).
LEXICON: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unclear", (
        r"no (?:obvious |clear |consistent |single |discernible |interpretable )?(?:pattern|role|preference|structure)",
        r"unclear", r"nothing (?:obvious|clear|in particular|stands out)", r"nothing (?:i|we) can (?:name|tell|see)", r"(?:not|un)interpretable",
    )),
    ("word-start", (
        r"(?:first|initial|earlier|starting|leading) (?:piece|part|token|sub-?word|sub-?token)s? of "
        r"(?:the|its|this|a|that|each) (?:same |current |own )?word",
        r"(?:start|beginning) of (?:the|its|this|a) (?:current |same )?word", r"word[- ]starts?(?: pieces?| tokens?)?",
        r"word'?s (?:own )?(?:first |earlier |initial |previous )?(?:pieces?|sub-?words?|tokens?)",
        r"word-initial (?:piece|token|sub-?word)s?", r"(?:first|initial) sub-?(?:word|token|piece)s?",
        r"(?:earlier|previous|other) pieces of (?:the )?same word", r"(?:the )?head of the word",
    )),
    ("quote-start", (
        r"(?:opening|first|starting|initial|open|left) (?:double[- ])?(?:speech|quotation|quote|inverted[- ]comma)"
        r"(?:[- ]marks?)?s?",
        r"(?:start|beginning|opening|first (?:token|mark))s? of (?:the |its |this |a |each |that )?(?:current |enclosing "
        r"|same )?(?:quotation|quote|speech|dialogue|direct speech|utterance)",
        r"quote[- ]starts?", r"quotation'?s (?:first|opening) (?:mark|quote|token)",
        r"(?:(?:speech|quote|quotation) )?(?:mark|quote) that (?:opened|opens|began|begins|started|starts)"
        r"(?: (?:it|the quotation|the speech|the quote|this quotation))?",
    )),
    ("induction", (
        r"induction(?:[- ]like)?(?: heads?)?",
        r"(?:tokens?|words?|ones?) (?:right |just |that came |that comes )?(?:after|following) (?:an? |the |its )?"
        r"(?:earlier|previous|prior|last|past) " + _COPY + _OF_SAME,
        r"what (?:came|followed|comes) (?:next|after)[\w ]*(?:before|last time|previously)",
        r"prefix[- ]match\w*",
    )),
    ("duplicate-token", (
        r"(?:earlier|previous|prior|past|other|older) " + _COPY + _OF_SAME,
        r"same (?:token|word)s? (?:earlier|before|elsewhere|previously)",
        r"(?:repeated|duplicated?) " + _NOUN, r"duplicates?(?:[- ]token)?", r"dup(?:licate)?[- ]tok(?:en)?s?",
    )),
    ("clause-start", (
        r"(?:start|beginning|opening|first (?:word|token))s? of " + _DET
        + r"(?:current |same |enclosing |present )?(?:clause|sentence|phrase)s?",
        r"clause[- ]starts?", r"sentence[- ]starts?", r"(?:coordinating )?conjunctions?",
        r"(?:token|word) (?:right |just )?after (?:the )?(?:last |latest |most recent |previous )?"
        r"(?:comma|full stop|boundary|break|delimiter|punctuation)",
    )),
    ("start-of-text", (
        r"start[- ]of[- ](?:text|sequence|story)(?: token)?", r"bos(?: token)?", r"<\|?endoftext\|?>", r"<s>",
        r"(?:start|beginning) of (?:the )?(?:text|story|sequence|document|context|prompt)",
        r"(?:very )?first (?:token|position)", r"start token", r"(?:position|token|pos) (?:0|zero)(?![.,]?\d)",
        r"(?:attention )?sinks?", r"sot", r"eot(?: token)?",
    )),
    ("positional", (
        r"positional(?: heads?)?",
        r"(?:two|three|four|2|3|4) (?:tokens? |toks? |positions? |words? |steps? |pieces? )?" + _BACK,
        r"fixed (?:offset|distance|position)", r"(?:constant |fixed )?offset(?: of)?[- ]?[2-9]", r"skip[- ]?(?:1|one|2|two)",
        r"(?:token|word) before the (?:previous|preceding|last) (?:one|token|word)", r"[itn] ?- ?[2-9]",
        r"previous[- ]but[- ]one",
    )),
    ("local", (
        r"(?:last|previous|preceding|recent|prior|nearest|next) " + _FEW + r" (?:\w+ )?" + _NOUN,
        r"(?:nearby|neighbou?ring|recent|surrounding|nearest|adjacent) " + _NOUN,
        r"local(?:ly)?(?: window| context| attention| mixing| head)?", r"sliding window", r"short[- ]range",
        r"window of (?:the )?(?:last )?\w+ " + _NOUN, r"(?:few|several) " + _NOUN + r" " + _BACK,
        r"recent (?:context|past|history)",
    )),
    ("broad", (
        r"all (?:the )?(?:other |previous |earlier |preceding |prior )?(?:tokens|words|positions)",
        r"spreads?(?: out)?(?: its)?(?: attention)?(?: (?:widely|broadly|evenly|thinly))?(?= (?:over|across|on|widely|evenly|out))"
        r"(?! (?:over|across|on) (?:the |its )?(?:last|previous|preceding|recent|nearby|few|\d))",
        r"spread (?:out|evenly|thin)", r"broad(?:ly)?", r"diffuse(?:ly)?", r"high[- ]entropy",
        r"(?:near(?:ly)?[- ]|roughly |almost )?uniform(?:ly)?", r"evenly",
        r"everything(?! (?:else )?(?:goes|went|lands|is|sits|ends up|falls)\b)", r"averag(?:e|es|ing) over",
        r"whole (?:sentence|clause|context|story|text|prefix)", r"bag[- ]of[- ]words", r"long[- ]range",
    )),
    ("delimiter", (
        r"commas?", r"full[- ]stops?", r"periods?", r"punct(?:uation)?(?: marks?| tokens?)?", r"dots?",
        r"(?:opening |closing )?(?:speech|quotation|quote) marks?", r"quotes", r"(?:structural |line )?breaks?",
        r"pivots?", r"delim(?:iter)?s?", r"separators?", r"(?:sentence )?boundar(?:y|ies)", r"newlines?",
        r"(?:exclamation|question) marks?", r"semi-?colons?", r"colons?", r"end of (?:the )?(?:last |previous )?sentence",
        r"sentence ends?",
    )),
    ("proper-noun", (
        r"proper[- ]nouns?", r"(?:character |people's |characters' |person )?names?", r"named entit(?:y|ies)",
        r"capitali[sz]ed (?:words?|tokens?)",
    )),
    ("previous-token", (
        r"(?:previous|preceding|prior|last|prev\.?)[- ](?:token|tok|word|position|pos|one|piece|sub-?word)s?",
        r"(?:token|word|piece|one) (?:right |just |immediately |directly )?before(?: it| itself| the query)?",
        r"one (?:token |tok |step |position )?(?:back|behind|to the left)", r"sub-?diagonal", r"bigrams?",
        r"left neighbou?r", r"[itn] ?- ?1", r"offset[- ]?(?:of )?1", r"prev(?:ious)?(?=\s*(?:[.,;:?!)/]|$))",
        r"immediately (?:preceding|prior|previous)", r"(?:previous|preceding)(?=\s*(?:[.,;:?!)/]|$))",
    )),
    ("current-token", (
        r"(?:current|same|present|own|query|cur)[- ](?:token|tok|word|position|piece)s?",
        r"current(?! (?:clause|sentence|story|word's|(?:and|or|&) (?:earlier|previous|past|prior|other)\b))", r"itself", r"themselves", r"self(?:[- ]attention)?",
        r"(?:main )?diagonal", r"(?:its|their) own position",
    )),
    ("hold", (
        r"hold(?:s|ing)?(?: on(?:to)?| onto| to)?(?: (?:one|an?|the|a single|some) (?:earlier |salient |single |recent "
        r"|particular |previous )?(?:word|token|key|position|noun|name|subject)s?)?(?:[- ]heads?)?",
        r"held (?:earlier )?(?:word|key|token|position)s?", r"locks? (?:on)?to", r"latch(?:es)? onto",
        r"keeps? (?:returning|going back|coming back) to",
    )),
)
# Broad words that say how a head attends, not where: "spreads its attention over full stops
# across the whole story" is a delimiter claim. They claim `broad` only when no target is named.
MANNER = (r"spreads?|spread|evenly|broad(?:ly)?|diffuse(?:ly)?|thin(?:ly)?|widely|long[- ]range"
          r"|whole (?:sentence|clause|context|story|text|prefix)|averag(?:e|es|ing) over")
# "13x uniform", "against 0.005 under uniform attention": uniform attention as the reference a
# number is compared with, never a claim that the head is uniform.
REFERENCE_UNIFORM = (
    r"(?:\d[\d.]*\s*[x×]|times|fold|over|than|vs\.?|versus|under|against|to|of|from|for|with|above|below"
    r"|relative to|compared (?:with|to)|lift)\s+(?:the\s+|a\s+)?uniform(?:'s)?(?:\s+(?:attention|baseline"
    r"|expectation|share|level|distribution|value))?"
    r"|\buniform(?:'s)?(?:\s+attention)?\s+(?:gives?|would give|baseline|expectation|level)"
)
# Claims about things no attention-position metric measures: reported, never forced into a role.
UNCHECKABLE = (
    r"subject", r"object", r"verbs?", r"adjectives?", r"pronouns?", r"skip[- ]?n-?grams?", r"summar(?:y|ies|ise|ize)",
    r"narrative", r"structure", r"who is speaking", r"speaker", r"related (?:parts|words|tokens)", r"syntax",
    r"syntactic", r"grammar", r"grammatical", r"semantic\w*", r"meaning", r"topic", r"sentiment", r"coreferen\w*",
    r"plot", r"story so far", r"theme", r"emotion\w*", r"tense", r"unknown", r"no idea", r"polysemantic",
)
# A qualifier makes the rest of its sentence a secondary claim; a note trigger makes the rest of
# it (within its brackets) a token-specific note, shown, not judged; a quoted word makes just its
# list item a note. Negations are notes too: "never attends to BOS" claims no role.
SECONDARY = (
    r"\b(?:sometimes|also|occasionally|partly|partially|somewhat|a bit|a little|weakly|slightly|less often"
    r"|to a lesser extent|secondarily|some attention|at times|plus|as well|some|rest|remainder)\b"
)
NOTE = (
    r"^(?:except|apart from|other than|but not|unless|for example|for instance|like head|e\.g\.|i\.e\.|see)\b"
    r"|\b(?:not|never|doesn't|does not|don't|isn't|no longer|rarely|hardly|barely|scarcely)\b|(?<!\ba )\blittle\b"
)
QUOTED_WORD = r"[\"“'‘`][A-Za-z][\w']*[\"”'’`]"
UNSURE = r"\?\)?\.?\s*$|\(\?\)|\?\s*(?=[,;)])|\b(?:perhaps|maybe|possibly|probably|might|seems?|likely|i think|guess)\b"
WEAK = r"\b(?:weak(?:ly)?|faint(?:ly)?|slight(?:ly)?|soft)\b"
HEDGE_WEIGHT = {"~": 0.75, "~~": 0.5, "?": 0.5, "weak": 0.5}

# Kinds of query a statement can be scoped to, from the words that name them.
SCOPE_WORDS: tuple[tuple[ScopeKind, str], ...] = (
    ("continuation", r"continuation|non[- ]?initial|later (?:pieces|sub-?words|sub-?tokens|parts)|second pieces?"
                     r"|mid[- ]word|(?:inside|within|in the middle of) (?:a |the |each )?word|word[- ]internal"
                     r"|inner pieces|rest of (?:a |the )?word|split words?"),
    ("word_start", r"word[- ]initial|word[- ]start(?:ing)? (?:tokens|pieces)|first pieces|(?:tokens|pieces) that "
                   r"(?:start|begin) (?:a )?words?|(?:at|on) (?:the )?start of (?:a )?word|whole[- ]word tokens"),
    ("speech", r"(?:inside|within|in) (?:a |the |each )?(?:speech|quotations?|quotes|dialogue|quotation marks"
               r"|speech marks)|(?:enclosed by|between|within) (?:the )?(?:speech|quotation|quote) marks"
               r"|quoted (?:tokens|words|text|pieces)|(?:direct )?speech|dialogue"),
    ("delimiter", r"punctuation|full[- ]stops?|periods?|commas?|delimiters?|speech marks?|quot(?:e|ation) marks?"
                  r"|newlines?|dots?|closing|sentence ends?|exclamation marks?|question marks?"),
    ("name", r"names?|proper nouns?|capitali[sz]ed"),
    ("repeated", r"repeated (?:tokens?|words?)|repeats?|(?:has |have )?appeared (?:before|earlier)|seen before"
                 r"|second (?:occurrence|copy|time)|recurring"),
    ("other", r"nouns?|verbs?|adjectives?|pronouns?|articles?|spaces?|the word|the token|bos|conjunctions?"
              r"|quotes?|tokens? after|tokens? before|first token"),
)
VERB = (r"(?:attends?|attend(?:ing)?|puts?|sends?|spreads?|looks?|goes|go|gives?|places?|focus(?:es)?|points?"
        r"|prefers?|parks?|dumps?|splits?|keeps?|mostly|tend|tends|has|have|get|gets|is|are)")
# Subjects that mean the head as a whole, not a kind of query.
HEAD_SUBJECT = re.compile(
    r"(?:it|this|this head|the head|head|he|that|which|(?:most|all|every|each|any|the)?\s*(?:other )?"
    r"(?:tokens?|queries|query|positions?|query tokens?)|(?:most |much |all |its |the |some )?(?:of )?(?:its )?attention"
    r"|mostly|always|usually|often|strongly|clearly|roughly|almost|nearly|[\d.~%\s]+(?:of )?(?:its |the )?(?:attention|mass)?"
    r"|everything|everyone)",
    re.IGNORECASE,
)
LEAD_IN = re.compile(
    r"^\s*(?P<lead>(?:(?:inside|within|in the middle of) (?:a |the |each )?word"
    r"|(?:from|for|on|at|after|in|inside|within|when|whenever|if|where|once|given) [^,:]{1,60}?))"
    r"(?:,\s*|\s+(?=(?:it |this head |the head )?" + VERB + r"\b))",
    re.IGNORECASE,
)

# Per-role glossaries for the TF-IDF fallback: ways to say each role that the lexicon may miss.
GLOSSARY: dict[str, tuple[str, ...]] = {
    "current-token": ("attends to the token it is on", "looks at its own position", "attention on the diagonal",
                      "each token attends to itself", "the query token itself"),
    "previous-token": ("attends to the token immediately before", "looks one step back", "the token to the left",
                       "the prior word", "attention just behind the query"),
    "positional": ("attends a fixed number of tokens back", "two positions earlier", "the token two before",
                   "a constant offset behind"),
    "start-of-text": ("the beginning of the text", "the first token of the story", "the endoftext token at the start",
                      "dumps attention on the first position"),
    "delimiter": ("punctuation tokens", "the last comma or full stop", "quotation marks and dots",
                  "separators between sentences"),
    "clause-start": ("the first word of the clause", "the beginning of the current sentence",
                     "the word after the last comma", "where the clause or sentence begins"),
    "proper-noun": ("names of characters", "capitalised names like Lucy and Tom", "the proper names mentioned earlier"),
    "local": ("the last few tokens", "a small window of recent tokens", "nearby words"),
    "word-start": ("the first piece of the word", "where the current word begins", "the start of a split word"),
    "broad": ("spreads attention over every token", "roughly uniform attention over the context",
              "attends to everything so far", "all earlier words a little"),
    "duplicate-token": ("earlier copies of the same token", "the same word where it appeared before",
                        "repeated tokens"),
    "induction": ("the token that followed an earlier copy", "copies what came next last time",
                  "induction head pattern"),
}
# Words every description uses ("attends to", "head", "pattern"): left out of the TF-IDF match,
# so that "No obvious pattern" does not match "induction head pattern".
GENERIC_WORDS = re.compile(
    r"\b(?:attends?|attending|attention|looks?|looking|focus(?:es)?|goes|head|heads|pattern|mostly|mainly"
    r"|strongly|always|usually|the|a|an|to|at|on|it|is)\b"
)


def _content_words(text: str) -> str:
    return re.sub(r"\s+", " ", GENERIC_WORDS.sub(" ", text.lower())).strip()


class ClaimMatcher:
    """TF-IDF (character n-grams) similarity of a phrase to the per-role glossaries.

    The fallback for text the lexicon does not cover: a role is claimed when the closest
    glossary entry is at least `threshold` similar and `margin` closer than any other role's.
    """

    def __init__(self, *, threshold: float = 0.4, margin: float = 0.05, ngram_range: tuple[int, int] = (3, 5)):
        self.threshold = threshold
        self.margin = margin
        self.ngram_range = ngram_range

    def fit(self, glossary: dict[str, tuple[str, ...]] = GLOSSARY) -> "ClaimMatcher":
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.entries_ = [(role, entry) for role, entries in glossary.items() for entry in entries]
        self.vectorizer_ = TfidfVectorizer(
            analyzer="char_wb", ngram_range=self.ngram_range, sublinear_tf=True, preprocessor=_content_words
        )
        self.matrix_ = self.vectorizer_.fit_transform([entry for _, entry in self.entries_])
        return self

    def closest(self, text: str) -> tuple[str, str, float] | None:
        """(role, glossary entry, similarity) of the best match, or None below the bar."""
        if not _content_words(text).strip():
            return None
        similarity = (self.matrix_ @ self.vectorizer_.transform([text]).T).toarray().ravel()
        order = np.argsort(-similarity)
        best_role, best_entry = self.entries_[order[0]]
        runner_up = next((similarity[k] for k in order if self.entries_[k][0] != best_role), 0.0)
        score = float(similarity[order[0]])
        if score < self.threshold or score - runner_up < self.margin:
            return None
        return best_role, best_entry, score


@lru_cache(maxsize=1)
def default_matcher() -> ClaimMatcher:
    return ClaimMatcher().fit()


def _whole_words(phrases) -> re.Pattern:
    return re.compile(rf"(?<![\w-])(?:{'|'.join(phrases)})(?![\w-])", re.IGNORECASE)


@lru_cache(maxsize=1)
def _compiled():
    scopes = [(kind, _whole_words([words])) for kind, words in SCOPE_WORDS]
    return [(role, _whole_words(phrases)) for role, phrases in LEXICON], _whole_words(UNCHECKABLE), scopes


@lru_cache(maxsize=1)
def _manner_and_reference() -> tuple[re.Pattern, re.Pattern]:
    return re.compile(rf"^(?:{MANNER})", re.IGNORECASE), re.compile(REFERENCE_UNIFORM, re.IGNORECASE)


# --- sentences and scopes ------------------------------------------------------------------


def sentences(text: str, ends: str = ".!?;:") -> list[str]:
    """Split at `ends` followed by a space, outside parentheses, quotes and `code` spans (a key
    token written `"` or `(` opens nothing), not after e.g./i.e."""
    in_code = {k for span in re.finditer(r"`[^`\n]*`", text) for k in range(*span.span())}
    parts, start, depth, quoted = [], 0, 0, False
    for k, char in enumerate(text):
        if k in in_code:
            continue
        depth += (char == "(") - (char == ")")
        quoted ^= char in '"“”'
        end = char in ends and depth <= 0 and not quoted and (k + 1 == len(text) or text[k + 1].isspace())
        if end and not re.search(r"\b(?:e\.g|i\.e|etc|vs|cf|approx|ca)\.$", text[start : k + 1], re.IGNORECASE):
            parts.append(text[start : k + 1].strip())
            start = k + 1
    parts.append(text[start:].strip())
    return [p for p in parts if re.search(r"\w", p)]


def _items(sentence: str) -> list[tuple[int, int, int]]:
    """(start, end, parenthesis depth) of the list items of a sentence: split at , ( ) / and or."""
    items, start, depth = [], 0, 0
    for found in re.finditer(r",|\(|\)|/|\s+(?:and|or|&|but|with|plus|then)\s+|\s+[-–—]\s+", sentence):
        items.append((start, found.start(), depth))
        depth += (found.group() == "(") - (found.group() == ")")
        start = found.end()
    items.append((start, len(sentence), depth))
    return [(a, b, d) for a, b, d in items if sentence[a:b].strip()]


def _scope_kind(words: str) -> ScopeKind | None:
    """The kind of query some words name ("punctuation", "inside a word"), or None."""
    if re.search(r"^\W*(?:the (?:word|token) )?" + QUOTED_WORD, words.strip(), re.IGNORECASE):
        return "token"
    for kind, pattern in _compiled()[2]:
        if pattern.search(words):
            return kind
    return None


def sentence_scope(sentence: str) -> tuple[ScopeKind | None, int]:
    """The kind of query a sentence is scoped to, and where the rest of the sentence starts.

    "Inside a word, ..." and "From full stops ..." are lead-ins; "Punctuation attends to
    itself" and "Word-initial tokens put 40% on themselves" scope by their subject. A subject
    that means the head or every query ("it", "most tokens", "45% of attention") is no scope.
    """
    lead = LEAD_IN.match(sentence)
    if lead:
        kind = _scope_kind(lead.group("lead"))
        if kind is None and re.match(r"\s*(?:when|whenever|if|where|once)\b", lead.group("lead"), re.IGNORECASE):
            kind = "other"
        if kind is not None:
            return kind, lead.end()
    subject = re.match(r"^\s*(?P<subject>[^,;:()]{1,70}?)\s+" + VERB + r"\b", sentence, re.IGNORECASE)
    if subject and not HEAD_SUBJECT.fullmatch(subject.group("subject").strip(" ~*")):
        words = subject.group("subject")
        kind = _scope_kind(words)
        if kind is not None and not re.search(r"\b(?:mostly|attends?)\b", words, re.IGNORECASE):
            return kind, subject.end("subject")
    return None, 0


def _hedge(sentence: str, lead: str) -> tuple[str, float]:
    marks = lead + ("?" if re.search(UNSURE, sentence, re.IGNORECASE) else "")
    weak = bool(re.search(WEAK, sentence, re.IGNORECASE))
    weight = HEDGE_WEIGHT.get(lead, 1.0) * (HEDGE_WEIGHT["?"] if "?" in marks else 1.0)
    weight *= HEDGE_WEIGHT["weak"] if weak else 1.0
    return marks + (" weak" if weak else ""), weight


# --- extraction ----------------------------------------------------------------------------------


def _role_matches(text: str) -> list[tuple[int, int, str]]:
    """(start, end, role) of every lexicon phrase, earlier roles winning overlaps, in text order.
    Uniform attention named as a reference ("13x uniform") claims nothing; a manner word
    ("spreads", "across the whole story") claims `broad` only when no other role is named."""
    manner, reference = _manner_and_reference()
    text = reference.sub(lambda m: " " * len(m.group()), text)
    matches: list[tuple[int, int, str]] = []
    for role, pattern in _compiled()[0]:
        for found in pattern.finditer(text):
            if all(found.end() <= s or found.start() >= e for s, e, _ in matches):
                matches.append((found.start(), found.end(), role))
    if any(role not in ("broad", "unclear") for _, _, role in matches):
        matches = [(s, e, role) for s, e, role in matches if role != "broad" or not manner.match(text[s:e])]
    return sorted(matches)


def _sentence_claims(sentence: str, lead_hedge: str, matcher: ClaimMatcher | None) -> list[Claim]:
    """The claims of one sentence: head-level ("main"/"secondary"), conditions and notes."""
    uncheckable = _compiled()[1]
    hedge, weight = _hedge(sentence, lead_hedge)
    scope, rest_start = sentence_scope(sentence)
    matches = [m for m in _role_matches(sentence) if m[0] >= rest_start]
    items = _items(sentence)
    claims: list[Claim] = []
    state_at: dict[int, str] = {}  # qualifier state per parenthesis depth
    k = 0
    while k < len(items):
        start, end, depth = items[k]
        for deeper in [d for d in state_at if d > depth]:
            del state_at[deeper]
        state = state_at.setdefault(depth, state_at.get(depth - 1, "main"))
        item = sentence[start:end].strip(" .;:?!")
        k += 1
        if end <= rest_start:
            continue  # the scope's own words ("Inside a word") claim nothing
        if re.search(NOTE, item, re.IGNORECASE):  # the note runs to the end of its bracket
            while k < len(items) and items[k][2] >= depth:
                k += 1
            claims.append(Claim("note", None, sentence[start : items[k - 1][1]].strip(" .;:,"), sentence, hedge,
                                weight, source="text"))
            continue
        if re.search(SECONDARY, item, re.IGNORECASE) or re.search(WEAK, item, re.IGNORECASE):
            state = state_at[depth] = "secondary"
        inside = [(s, e, role) for s, e, role in matches if start <= s < end]
        # "X from Y": Y says which queries attend, not where they attend to.
        source = re.search(r"\bfrom\b", sentence[start:end], re.IGNORECASE)
        if source and any(s < start + source.start() for s, _, _ in inside):
            inside = [m for m in inside if m[0] < start + source.start()]
        if re.search(QUOTED_WORD, item) and scope is None:
            claims.append(Claim("note", None, item, sentence, hedge, weight, source="text"))
        elif uncheckable.search(item) and not inside:
            claims.append(Claim("uncheckable", None, item, sentence, hedge, weight, source="text"))
        else:
            for s, e, role in inside:
                claims.append(Claim(state, role, sentence[s:e], sentence, hedge, weight))
    if not claims and matcher is not False:
        unreferenced = _manner_and_reference()[1].sub(" ", sentence[rest_start:])
        closest = (matcher or default_matcher()).closest(unreferenced)
        if closest:
            kind = "secondary" if re.search(SECONDARY, sentence, re.IGNORECASE) else "main"
            claims = [Claim(kind, closest[0], closest[1], sentence, hedge, weight, source="tf-idf",
                            similarity=closest[2])]
    main = [c for c in claims if c.kind == "main" and c.role]
    if any(c.role == "local" for c in main) and {c.role for c in main} <= {"local", "current-token", "previous-token"}:
        # "itself and the last one or two tokens": the window, of which self and previous are parts
        claims = sorted(claims, key=lambda c: not (c.kind == "main" and c.role == "local"))
    if scope is not None:  # scoped: conditions, unless the scope is the role's own definition
        claims = [_with(c, scope=scope) if c.role is None or scope in ROLE_SCOPES.get(c.role, ())
                  else _with(c, kind="condition", scope=scope) for c in claims]
        if not claims:
            claims = [Claim("note", None, sentence.strip(" ."), sentence, hedge, weight, scope=scope, source="text")]
    return claims


def _with(claim: Claim, **changes) -> Claim:
    from dataclasses import replace

    return replace(claim, **changes)


# "Same as 2.3: ...", "Identical to L1H5.": the head's claim is the named head's.
SAME_AS = re.compile(
    r"^\s*(?:(?:the )?same(?: pattern| role| thing)? as|identical to|as for|ditto|a copy of|copy of)\s+(?:head\s+)?"
    r"(?P<head>L?\d+(?:\s*[.:]\s*|H)\d+|\d+)\b[\s.,;:)-]*",
    re.IGNORECASE,
)


def referenced_head(text: str) -> str | None:
    """The head a description says it is the same as ("Same as 2.3: ..." gives "2.3"), or None."""
    found = SAME_AS.match(re.sub(r"^\s*~+\s*", "", text))
    return found.group("head") if found else None


def extract_claims(text: str, matcher: ClaimMatcher | None = None, *,
                   same_as: Callable[[str], HeadClaims | None] | None = None) -> HeadClaims:
    """The claims of one description: one primary, then secondary claims, conditions, notes.

    The reader's rule order: a sentence that is only a role's name (with a "head" or "sink" and
    hedges: "Local:", "Start-of-text sink:") is the primary claim; else "same as HEAD" takes that
    head's primary claim (`same_as` looks it up); else the first head-level role named; a
    description made only of statements scoped to kinds of query claims the widest scope's role.
    """
    lead = re.match(r"\s*(~~|~)?(?=\s*[A-Za-z(\"“'])", text)
    lead_hedge = (lead.group(1) or "") if lead else ""
    body = re.sub(r"^\s*~+\s*", "", text)
    reference = SAME_AS.match(body)
    referenced = same_as(reference.group("head")) if reference and same_as else None
    if reference:
        body = body[reference.end():]
    claims: list[Claim] = []
    verdict: list[Claim] = []
    for sentence in sentences(body):
        found = _sentence_claims(sentence, lead_hedge, matcher)
        if not verdict:
            named = [c for c in found
                     if c.role and c.kind in ("main", "secondary") and _is_verdict(sentence, c, found)][:1]
            verdict = [_with(c, kind="main") for c in named]
            found = [c for c in found if not any(c is n for n in named)]
        claims.extend(found)
    if not verdict and referenced is not None and referenced.primary is not None:
        verdict = [_with(referenced.primary, kind="main", phrase=f"same as {reference.group('head')}",
                         sentence=text.strip())]
    head_level = [c for c in claims if c.kind in ("main", "secondary") and c.role]
    scopes = {c.scope for c in claims if c.kind == "condition"}
    if not verdict and not head_level and len(scopes) >= 2:  # only scoped statements: the widest is the claim
        widest = min((c for c in claims if c.kind == "condition"), key=lambda c: SCOPE_BREADTH.index(c.scope))
        verdict = [_with(widest, kind="main")]
        claims = [c for c in claims if c is not widest]
    claims = verdict + claims  # the author's one-word verdict ("Unclear.", "Local:") is the primary claim
    if not claims:  # nothing recognisable: say so rather than guess
        hedge, weight = _hedge(text, lead_hedge)
        claims.append(Claim("uncheckable", None, text.strip(" ~?."), text, hedge, weight, source="text"))
    return HeadClaims(text, _rank(claims))


def _is_verdict(sentence: str, claim: Claim, found: list[Claim]) -> bool:
    """Whether the sentence is nothing but the claim's role name, as authors open or close a cell:
    "Unclear.", "Local:", "Start-of-text?", "Broad? (nearly uniform)"."""
    def words(text: str) -> list[str]:
        return [w for w in re.findall(r"[a-z]+", text.lower()) if w not in VERDICT_FILLER]

    bare = re.sub(r"\([^)]*\)", " ", sentence)
    phrases = " ".join(c.phrase for c in found if c.role == claim.role and c.source == "lexicon")
    return claim.source == "lexicon" and bool(words(bare)) and words(bare) == words(phrases)


# Words a role's name may carry when an author opens a cell with it ("Start-of-text sink:",
# "Clear previous-token head:", "Probably a delimiter head?").
VERDICT_FILLER = frozenset(
    "head heads like pattern role kind type a an the weak weakly strong strongly soft sharp clear clearly "
    "probably maybe mostly mainly mixed classic".split()
)


def _rank(claims: list[Claim]) -> tuple[Claim, ...]:
    """One primary (the first main role claim, else the first secondary one), each role once."""
    head_level = [c for c in claims if c.kind in ("main", "secondary") and c.role]
    primary = next((c for c in head_level if c.kind == "main"), head_level[0] if head_level else None)
    ranked, seen = [], set()
    for claim in claims:
        if claim is primary:
            claim = _with(claim, kind="primary")
        elif claim.kind in ("main", "secondary"):
            claim = _with(claim, kind="secondary")
        key = (claim.kind == "condition", claim.role, claim.scope) if claim.role else (claim.kind, claim.phrase)
        if claim.kind == "secondary" and primary is not None and claim.role == primary.role:
            continue
        if key in seen:
            continue
        seen.add(key)
        ranked.append(claim)
    # the primary claim first, then the rest in the order written
    return tuple(sorted(ranked, key=lambda c: c.kind != "primary"))
