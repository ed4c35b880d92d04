"""The query text grammar, parsed by the server so every client gets the same meaning.

    query   := term (whitespace term)*
    term    := ["-" | "+" | "NOT" whitespace] words ["^" weight]
    weight  := a finite decimal number > 0 and <= MAX_WEIGHT (default 1)

`word^2.5` weights a word, `-word` (or `NOT word`) pushes results away from it, and English stop
words (stopwords.STOP_WORDS) are dropped and reported. A term's words are split as the embedder
splits text (letters and digits, with inner apostrophes and hyphens: "t-shirt", "o'neill"), so
"dog," is "dog"; a term of punctuation only is skipped. Malformed terms are InvalidArgument with a
message naming the term: `^` without a number, a weight that is not a positive finite number
(`^-3`, `^inf`, `^0`), a lone `-`, more than MAX_TERMS terms.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from imgsearch.errors import InvalidArgument
from imgsearch.query.stopwords import STOP_WORDS

MAX_TERMS = 256
MAX_WEIGHT = 100.0

# The embedder's word pattern (imgsearch.embedder.wordspace.wordvectors._WORD), so a term splits as
# it would there.
_WORD = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2010": "-", "\u2011": "-"})
_NUMBER = re.compile(r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class Term:
    """One word of a query with its weight; `weight < 0` pushes results away from the word."""

    word: str
    weight: float = 1.0

    @property
    def negative(self) -> bool:
        return self.weight < 0


@dataclass(frozen=True)
class ParsedQuery:
    """The weighted words of a query text, merged per word, in first-seen order, and the stop words
    that were dropped (each once, in order)."""

    terms: tuple[Term, ...]
    ignored: tuple[str, ...]

    @property
    def positives(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.weight > 0)

    @property
    def negatives(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.weight < 0)


def parse_weight(text: str, term: str) -> float:
    """The number after `^`: finite, above 0 and at most MAX_WEIGHT."""
    if not text:
        raise InvalidArgument(f"term {term!r}: '^' must be followed by a weight, e.g. dog^2")
    if not _NUMBER.fullmatch(text):
        raise InvalidArgument(
            f"term {term!r}: weight {text!r} is not a positive number (use -word to push away from a word)"
        )
    weight = float(text)
    if not math.isfinite(weight) or weight <= 0 or weight > MAX_WEIGHT:
        raise InvalidArgument(f"term {term!r}: weight must be above 0 and at most {MAX_WEIGHT:g}, got {text}")
    return weight


def check_weight(weight: float, what: str) -> float:
    """A weight of the structured form: finite, non-zero, |weight| <= MAX_WEIGHT (sign = direction)."""
    if not math.isfinite(weight) or weight == 0 or abs(weight) > MAX_WEIGHT:
        raise InvalidArgument(
            f"{what}: weight must be non-zero, finite and within ±{MAX_WEIGHT:g}, got {weight}"
        )
    return weight


def parse(text: str) -> ParsedQuery:
    """Parses query text into weighted words; InvalidArgument for malformed terms.

    An empty result (only stop words, or only punctuation) is the caller's to judge: a query may
    have other parts (images, structured terms)."""
    tokens = text.split()
    if len(tokens) > MAX_TERMS:
        raise InvalidArgument(f"a query has at most {MAX_TERMS} terms, got {len(tokens)}")
    weights: dict[str, float] = {}
    ignored: dict[str, None] = {}
    negate_next = False
    for token in tokens:
        if token == "NOT":
            if negate_next:
                raise InvalidArgument("'NOT NOT': NOT must be followed by a word")
            negate_next = True
            continue
        sign = -1.0 if negate_next else 1.0
        negate_next = False
        body = token
        if body[0] in "-+":
            if len(body) == 1:
                raise InvalidArgument(
                    f"a lone {body!r} must be followed by a word (write {body}word, no space)"
                )
            if body[0] == "-":
                sign = -sign
            body = body[1:]
        weight = 1.0
        if "^" in body:
            body, _, number = body.rpartition("^")
            weight = parse_weight(number, token)
            if not body:
                raise InvalidArgument(f"term {token!r}: '^' must follow a word, e.g. dog^2")
        for word in _WORD.findall(body.lower().translate(_APOSTROPHES)):
            if word in STOP_WORDS:
                ignored.setdefault(word, None)
                continue
            weights[word] = weights.get(word, 0.0) + sign * weight
    if negate_next:
        raise InvalidArgument("NOT at the end of the query must be followed by a word")
    terms = tuple(Term(w, x) for w, x in weights.items() if x != 0)  # "dog -dog" cancels out
    return ParsedQuery(terms=terms, ignored=tuple(ignored))
