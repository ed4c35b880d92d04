"""The fixed English stop-word list the query grammar ignores (and reports in `ignored_terms`).

Function words (articles, pronouns, prepositions, auxiliaries, conjunctions) carry no picture, yet
each one averaged into a query vector pulls it towards the middle of the word space: "a photo of a
dog" returned a snowflake first before they were dropped. The list is the classic English one of
the SMART / NLTK tradition, fixed here so every server ignores the same words.

`QUERY_FILLER` adds the words an image query says about every image ("a photo of ...", "a picture
of ..."): every stored image is a photo, so they rank nothing and only dilute the words that do.
"""

from __future__ import annotations

FUNCTION_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't
    doing don't down during each few for from further had hadn't has hasn't have haven't having he
    he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if
    in into is isn't it it's its itself just let's me more most mustn't my myself no nor not of off
    on once only or other ought our ours ourselves out over own same shan't she she'd she'll she's
    should shouldn't so some such than that that's the their theirs them themselves then there
    there's these they they'd they'll they're they've this those through to too under until up
    very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
    which while who who's whom why why's will with won't would wouldn't you you'd you'll you're
    you've your yours yourself yourselves
    """.split()  # noqa: SIM905 - a word list reads best as text
)

QUERY_FILLER = frozenset(
    {"photo", "photos", "photograph", "photographs", "picture", "pictures", "pic", "pics", "image", "images"}
)

STOP_WORDS = FUNCTION_WORDS | QUERY_FILLER
