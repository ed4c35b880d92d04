"""The query text grammar: weights, negations, stop words, and the malformed input users type."""

from __future__ import annotations

import pytest

from imgsearch.errors import InvalidArgument
from imgsearch.query.stopwords import STOP_WORDS
from imgsearch.query.syntax import MAX_TERMS, Term, check_weight, parse


def test_stop_words_are_dropped_and_reported_once_in_order():
    q = parse("a photo of a dog on the beach")
    assert q.terms == (Term("dog"), Term("beach"))
    assert q.ignored == ("a", "photo", "of", "on", "the")


def test_weights_and_negations():
    q = parse("dog^2.5 beach -cat NOT snow +sand")
    assert q.positives == (Term("dog", 2.5), Term("beach"), Term("sand"))
    assert q.negatives == (Term("cat", -1.0), Term("snow", -1.0))
    assert parse("-cat^0.5 dog").terms == (Term("cat", -0.5), Term("dog"))


def test_repeated_words_add_up_and_cancel_out():
    assert parse("dog dog^2 cat -cat").terms == (Term("dog", 3.0),)


def test_terms_split_like_the_embedder_and_lower_case():
    assert parse("Dog, T-shirt! O'Neill").terms == (Term("dog"), Term("t-shirt"), Term("o'neill"))
    assert parse("dog !!! ...").terms == (Term("dog"),)  # punctuation alone is skipped


def test_lower_case_not_is_a_stop_word_and_upper_case_not_negates():
    assert parse("dog not cat").terms == (Term("dog"), Term("cat"))
    assert parse("dog NOT cat").terms == (Term("dog"), Term("cat", -1.0))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dog^", "must be followed by a weight"),
        ("dog^-3", "not a positive number"),
        ("dog^inf", "not a positive number"),
        ("dog^nan", "not a positive number"),
        ("dog^0", "above 0"),
        ("dog^1e9", "at most 100"),
        ("dog^two", "not a positive number"),
        ("-", "lone '-'"),
        ("dog - cat", "lone '-'"),
        ("+", r"lone '\+'"),
        ("^2", "must follow a word"),
        ("dog NOT", "NOT at the end"),
        ("NOT NOT dog", "NOT NOT"),
    ],
)
def test_malformed_terms_are_invalid_argument_naming_the_problem(text, message):
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


def test_two_hundred_terms_parse_and_too_many_are_refused():
    words = [f"w{i}" for i in range(200)]
    assert len(parse(" ".join(words)).terms) == 200
    with pytest.raises(InvalidArgument, match=f"at most {MAX_TERMS} terms"):
        parse(" ".join(["dog"] * (MAX_TERMS + 1)))


def test_only_stop_words_leave_no_terms():
    q = parse("the of a")
    assert q.terms == () and q.ignored == ("the", "of", "a")


def test_structured_weights_are_checked():
    assert check_weight(-0.5, "part") == -0.5
    for bad in (0.0, float("inf"), float("nan"), 101.0):
        with pytest.raises(InvalidArgument, match="part"):
            check_weight(bad, "part")


def test_the_list_is_plain_english_function_words():
    assert {"a", "the", "of", "and", "not", "photo"} <= STOP_WORDS
    assert not {"dog", "beach", "night", "red"} & STOP_WORDS
