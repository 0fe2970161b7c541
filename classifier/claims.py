"""From words to claims: what one hand-written head description says about the head.

`extract_claims` splits a description into sentences and list items, finds role phrases with a
lexicon of regular expressions (`LEXICON`; an earlier role wins an overlap), and sorts what it
finds into main claims, secondary claims (after a qualifier such as "sometimes"), notes
(token-specific remarks, negations, quoted words) and claims no metric can check (`UNCHECKABLE`).
Hedges are kept as written: `~`/`~~` (roughly) and `?` (unsure). A sentence the lexicon does not cover
falls back to `ClaimMatcher`, TF-IDF similarity to per-role glossaries (`GLOSSARY`).

This module does not read tables, load measurements or judge claims: `classifier.validate` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

ClaimKind = Literal["main", "secondary", "note", "uncheckable"]


@dataclass(frozen=True)
class Claim:
    """One thing a description says. `role` is None for notes and claims no metric can check."""

    kind: ClaimKind
    role: str | None
    phrase: str  # the words that matched, the glossary entry that matched, or the note's text
    hedge: str = ""  # "~", "~~" (roughly) and/or "?" (unsure), as written
    source: Literal["lexicon", "tf-idf", "text"] = "lexicon"
    similarity: float = float("nan")  # TF-IDF cosine similarity (fallback matches only)


_NOUN = r"(?:tokens?|words?|positions?|ones?)"
_COPY = r"(?:occurrences?|cop(?:y|ies)|instances?|appearances?|mentions?)"
_OF_SAME = r"(?: of (?:the |this |that |its )?(?:same |current |identical )?(?:tokens?|words?|itself))?"
_DET = r"(?:the |its |a |this |each |every |any )?"
# Phrases (regular expressions, matched case-insensitively on whole words) per role. Ordered: an
# earlier role wins where two matches overlap ("earlier occurrence of the same token" is a
# duplicate-token claim, not a current-token one; "start of the clause" is not start-of-text).
LEXICON: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("induction", (
        r"induction(?: heads?)?",
        r"(?:tokens?|words?|ones?) (?:right |just |that came |that comes )?after (?:an? |the |its )?"
        r"(?:earlier|previous|prior|last|past) " + _COPY + _OF_SAME,
        r"what (?:came|followed|comes) (?:next|after)[\w ]*(?:before|last time|previously)",
        r"prefix[- ]match\w*",
    )),
    ("duplicate-token", (
        r"(?:earlier|previous|prior|past|other|older) " + _COPY + _OF_SAME,
        r"same (?:token|word)s? (?:earlier|before|elsewhere|previously)",
        r"(?:repeated|duplicated?) " + _NOUN, r"duplicates?",
    )),
    ("word-start", (
        r"(?:first|initial) (?:piece|part|token|sub-?word|sub-?token)s? of (?:the|its|this|a) (?:current )?word",
        r"(?:start|beginning) of (?:the|its|this|a) (?:current )?word", r"word[- ]starts?",
        r"word's (?:own )?(?:first |earlier )?pieces?",
    )),
    ("clause-start", (
        r"(?:start|beginning|opening|first (?:word|token))s? of " + _DET
        + r"(?:current |same |enclosing )?(?:clause|sentence|phrase)s?",
        r"clause[- ]starts?", r"(?:coordinating )?conjunctions?",
        r"(?:token|word) (?:right |just )?after (?:the )?(?:last |latest |most recent |previous )?"
        r"(?:comma|full stop|boundary|break|delimiter|punctuation)",
    )),
    ("start-of-text", (
        r"start[- ]of[- ](?:text|sequence|story)(?: token)?", r"bos", r"<\|?endoftext\|?>",
        r"(?:start|beginning) of (?:the )?(?:text|story|sequence|document|context|prompt)",
        r"(?:very )?first (?:token|position)", r"start token", r"position (?:0|zero)", r"(?:attention )?sink",
    )),
    ("positional", (
        r"(?:two|three|four|2|3|4) (?:tokens? |positions? |words? |steps? )?(?:back|before|earlier|behind)",
        r"fixed (?:offset|distance|position)", r"(?:constant |fixed )?offset (?:of )?\d",
        r"(?:token|word) before the (?:previous|preceding|last) (?:one|token|word)", r"i ?- ?[2-9]",
    )),
    ("local", (
        r"(?:last|previous|preceding|recent) (?:few|several|three|four|five|couple of|handful of) " + _NOUN,
        r"(?:nearby|neighbou?ring|recent|surrounding|nearest) " + _NOUN,
        r"local(?:ly)?(?: window| context)?", r"sliding window",
    )),
    ("broad", (
        r"all (?:the )?(?:other |previous |earlier |preceding |prior )?(?:tokens|words|positions)",
        r"spreads?(?: out)?(?: its)? attention", r"spread (?:out|evenly)", r"broad(?:ly)?", r"diffuse(?:ly)?",
        r"uniform(?:ly)?", r"evenly", r"everything", r"whole (?:sentence|clause|context|story|text|prefix)",
        r"bag[- ]of[- ]words",
    )),
    ("delimiter", (
        r"commas?", r"full[- ]stops?", r"periods?", r"punctuation(?: marks?)?",
        r"(?:opening |closing )?(?:speech|quotation|quote) marks?", r"quotes", r"(?:structural |line )?breaks?",
        r"pivots?", r"delimiters?", r"separators?", r"(?:sentence )?boundar(?:y|ies)", r"newlines?",
        r"(?:exclamation|question) marks?", r"semi-?colons?", r"colons?",
    )),
    ("proper-noun", (
        r"proper[- ]nouns?", r"(?:character |people's |characters' |person )?names?", r"named entit(?:y|ies)",
        r"capitali[sz]ed (?:words?|tokens?)",
    )),
    ("previous-token", (
        r"(?:previous|preceding|prior|last) (?:token|word|position|one|piece)s?",
        r"(?:token|word) (?:right |just |immediately |directly )?before(?: it| itself)?",
        r"one (?:token |step |position )?(?:back|behind|to the left)", r"sub-?diagonal", r"bigrams?",
        r"left neighbou?r", r"i ?- ?1", r"(?:previous|preceding)(?=\s*(?:[.,;:?!)/]|$))",
    )),
    ("current-token", (
        r"(?:current|same|present|own) (?:token|word|position|piece)s?",
        r"current(?! (?:clause|sentence|story|word's))", r"itself", r"themselves", r"self", r"(?:main )?diagonal",
    )),
)
# Claims about things no attention-position metric measures: reported, never forced into a role.
UNCHECKABLE = (
    r"subject", r"object", r"verbs?", r"adjectives?", r"pronouns?", r"skip[- ]?n-?grams?", r"summar(?:y|ies|ise|ize)",
    r"narrative", r"structure", r"who is speaking", r"speaker", r"related (?:parts|words|tokens)", r"syntax",
    r"syntactic", r"grammar", r"grammatical", r"semantic\w*", r"meaning", r"topic", r"sentiment", r"coreferen\w*",
    r"plot", r"story so far", r"theme", r"emotion\w*", r"tense", r"unclear", r"no (?:obvious |clear )?(?:pattern|role)",
    r"unknown", r"no idea", r"not sure", r"polysemantic",
)
# A qualifier makes the rest of its sentence a secondary claim; a note trigger makes the rest of
# it (within its brackets) a token-specific note, shown, not judged; a quoted word makes just its
# list item a note. Negations are notes too: "never attends to BOS" claims no role.
SECONDARY = (
    r"\b(?:sometimes|also|occasionally|partly|partially|somewhat|a bit|a little|weakly|slightly|less often"
    r"|to a lesser extent|secondarily|some attention|at times)\b"
)
NOTE = (
    r"^(?:except|apart from|other than|but not|unless|when|whenever|inside|within|in (?:speech|quotes|dialogue)"
    r"|for example|for instance|like head)\b|^e\.g\.|\b(?:not|never|doesn't|does not|don't|isn't)\b"
)
QUOTED_WORD = r"[\"“'‘][A-Za-z][\w']*[\"”'’]"
UNSURE = r"\?\)?\.?\s*$|\(\?\)|\b(?:perhaps|maybe|possibly|probably|might|seems?)\b"

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


@lru_cache(maxsize=1)
def _compiled():
    def whole_words(phrases):
        return re.compile(rf"(?<![\w-])(?:{'|'.join(phrases)})(?![\w-])", re.IGNORECASE)

    return [(role, whole_words(phrases)) for role, phrases in LEXICON], whole_words(UNCHECKABLE)


def _sentences(text: str) -> list[str]:
    """Split at . ! ? ; : followed by a space, outside parentheses and quotes, not after e.g./i.e."""
    parts, start, depth, quoted = [], 0, 0, False
    for k, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        quoted ^= char == '"'
        ends = char in ".!?;:" and depth <= 0 and not quoted and (k + 1 == len(text) or text[k + 1].isspace())
        if ends and not re.search(r"\b(?:e\.g|i\.e|etc|vs)\.$", text[start : k + 1], re.IGNORECASE):
            parts.append(text[start : k + 1].strip())
            start = k + 1
    parts.append(text[start:].strip())
    return [p for p in parts if re.search(r"\w", p)]


def _items(sentence: str) -> list[tuple[int, int, int]]:
    """(start, end, parenthesis depth) of the list items of a sentence: split at , ( ) / and or."""
    items, start, depth = [], 0, 0
    for found in re.finditer(r",|\(|\)|/|\s+(?:and|or|&)\s+", sentence):
        items.append((start, found.start(), depth))
        depth += (found.group() == "(") - (found.group() == ")")
        start = found.end()
    items.append((start, len(sentence), depth))
    return [(a, b, d) for a, b, d in items if sentence[a:b].strip()]


def extract_claims(text: str, matcher: ClaimMatcher | None = None) -> tuple[Claim, ...]:
    """The claims of one description, in the order written (roles deduplicated, first kept)."""
    lexicon, uncheckable = _compiled()
    approx = re.match(r"\s*(~~|~)?", text).group(1) or ""
    claims: list[Claim] = []
    for sentence in _sentences(text.lstrip(" ~")):
        hedge = approx + ("?" if re.search(UNSURE, sentence, re.IGNORECASE) else "")
        matches = []  # (start, end, role), lexicon order decides overlaps
        for role, pattern in lexicon:
            for found in pattern.finditer(sentence):
                if all(found.end() <= s or found.start() >= e for s, e, _ in matches):
                    matches.append((found.start(), found.end(), role))
        matches.sort()
        items = _items(sentence)
        scope: dict[int, str] = {}  # qualifier state per parenthesis depth
        before, k = len(claims), 0
        while k < len(items):
            start, end, depth = items[k]
            for deeper in [d for d in scope if d > depth]:
                del scope[deeper]
            state = scope.setdefault(depth, scope.get(depth - 1, "main"))
            item = sentence[start:end].strip(" .;:?!")
            k += 1
            if re.search(NOTE, item, re.IGNORECASE):  # the note runs to the end of its bracket
                while k < len(items) and items[k][2] >= depth:
                    k += 1
                claims.append(Claim("note", None, sentence[start : items[k - 1][1]].strip(" .;:,"), hedge, "text"))
                continue
            if re.search(SECONDARY, item, re.IGNORECASE):
                state = scope[depth] = "secondary"
            if re.search(QUOTED_WORD, item):
                claims.append(Claim("note", None, item, hedge, "text"))
            elif uncheckable.search(item):
                claims.append(Claim("uncheckable", None, item, hedge, "text"))
            else:
                inside = [(s, e, role) for s, e, role in matches if start <= s < end]
                # "X from Y": Y says which queries attend, not where they attend to.
                source = re.search(r"\bfrom\b", sentence[start:end], re.IGNORECASE)
                if source and any(s < start + source.start() for s, _, _ in inside):
                    inside = [m for m in inside if m[0] < start + source.start()]
                claims.extend(Claim(state, role, sentence[s:e], hedge) for s, e, role in inside)
        if len(claims) == before:
            closest = (matcher or default_matcher()).closest(sentence)
            if closest:
                kind = "secondary" if re.search(SECONDARY, sentence, re.IGNORECASE) else "main"
                claims.append(Claim(kind, closest[0], closest[1], hedge, "tf-idf", closest[2]))
    if not claims:  # nothing recognisable: say so rather than guess
        hedge = approx + ("?" if re.search(UNSURE, text, re.IGNORECASE) else "")
        claims.append(Claim("uncheckable", None, text.strip(" ~?."), hedge, "text"))
    return _deduplicate(claims)


def _deduplicate(claims: list[Claim]) -> tuple[Claim, ...]:
    """Each role once (its first mention decides main or secondary), each note once."""
    kept, seen = [], set()
    for claim in claims:
        key = claim.role if claim.role is not None else (claim.kind, claim.phrase)
        if key not in seen:
            seen.add(key)
            kept.append(claim)
    return tuple(kept)
