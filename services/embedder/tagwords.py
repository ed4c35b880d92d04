"""Tags from an image's own evidence: its ImageNet classes named in WordNet's words, their
hypernyms, a face and its colours, then the nearest words of the word space as the tail.

The nearest words to an image's ConSE vector alone made poor tags (issue 21): a mixture of class-word
vectors lands among other animals ("cat, dog, monkey, rabbit") or among function words when no class
is confident ("into, through, creating"). The image's class probabilities say more: the probability
that a photo shows some kind of X is the sum of the probabilities of the classes at or below X in
WordNet, so "tabby 0.5, tiger cat 0.2, Egyptian cat 0.1" gives "cat" about 0.8. A broader word is
discounted per step up the hierarchy (HOP_DECAY), so the basic level ("cat", "dog", "fish") leads
and the taxonomic top ("organism", "whole", "artifact") never does.

Only words a person would read as a tag survive (`TagWords.is_tag_word`): a single word that WordNet
knows as a noun or an adjective, not a stop or function word, and plural/singular twins count as
one word ("dogs" joins "dog"). Every score is in [0, 1]: evidence scores are probabilities (or
shares, for colours) times a weight below 1; word-space neighbours come after every evidence word,
scored below the weakest of them.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from imgsearch.embedder.channels.colours import COLOUR_BASE, COLOURS
from imgsearch.embedder.channels.faces import PERSON
from imgsearch.embedder.results import ClassScores
from imgsearch.embedder.wordspace.class_words import WORDNET_DIR, WordNet, wordnet_ids

log = logging.getLogger(__name__)

# A word one level above a class keeps this share of the class's probability, two levels its
# square, and so on: the basic level ("cat" above "tabby") leads the fine class only when several
# classes below it agree, as a person names a photo by its basic level unless sure. Levels count
# the hypernyms that give a tag word ("tabby -> cat -> mammal -> animal": the rare "feline",
# "carnivore", "placental" in between are no level).
HOP_DECAY = 0.8
MAX_LEVELS = 4
MAX_DEPTH = 16  # WordNet steps searched above a class
# The first word of a class's chain ("tabby", "goldfish"; "retriever" above "golden retriever") is
# a tag when among the CLASS_RANK most frequent words of the word space; the hypernyms' words above
# it only among the ANCESTOR_RANK most frequent
# ("fish", "mammal", "beverage"; never "teleost", "percoid", "habiliment").
VOCABULARY = 100_000
CLASS_RANK = 100_000
ANCESTOR_RANK = 30_000
# WordNet's top levels name nothing a person tags a photo with ("object", "whole", "formation",
# "elevation", "artifact" lie within four steps of the root 'entity'; "mountain", "animal",
# "device" five or more).
MIN_DEPTH = 5
PHYSICAL_ENTITY = 1930  # WordNet 3.0's 'physical entity' (n00001930)
# WordNet's lexicographer files of things one sees (animal, artifact, body, food, object, person,
# phenomenon, plant, substance): a neighbour's first sense must be in one to be a tag.
THING_LEXICONS = frozenset({5, 6, 8, 13, 17, 18, 19, 20, 27})
# A hypernym above so many of the 1000 classes is too broad to tell anything ("organism" covers
# the 398 animals and the plants, fungi and people); "animal" stays under it.
MAX_CLASSES_BELOW = 400
# The concrete nouns of a class's WordNet definition (its gloss) at this share of its probability.
GLOSS_WEIGHT = 0.3
# A face: "person" (and "people", "portrait", "face") at this weight times the face entry (1).
FACE_WORDS = (("person", 0.6), ("portrait", 0.5), ("face", 0.45), ("people", 0.4))
# A colour covering a share s of the picture is tagged at COLOUR_WEIGHT * s, from MIN_COLOUR_SHARE.
COLOUR_WEIGHT = 0.5
MIN_COLOUR_SHARE = 0.25
# Word-space neighbours follow the evidence, scored below its weakest word: that score x
# TAIL_WEIGHT x cosine. Evidence first: on the quality benchmark's photos, mixing neighbours in by
# score (0.3 x cosine) gave hit@1 0.82 and P@5 0.50, evidence first 0.86 and 0.61.
TAIL_WEIGHT = 0.5


class TagWords:
    """Which words are tags, and the words an image's class vector names.

    `words` and `vectors`: the word space's vocabulary, most frequent first (the embedder's
    `vocabulary()`), which says how common a word is and how near in meaning two words are."""

    def __init__(
        self,
        words: list[str],
        vectors: np.ndarray,
        root: Path | None = None,
        stop_words: frozenset[str] = frozenset(),
    ):
        root = Path(root or WORDNET_DIR)
        self.wordnet = WordNet(root)
        self._nouns = _first_senses(root / "index.noun")
        self._adjectives = frozenset(_first_senses(root / "index.adj"))
        self._noun_exceptions = _exceptions(root / "noun.exc")
        self._stop = stop_words
        self._rank = {w: i for i, w in enumerate(words)}
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self._vectors = np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
        self._depths: dict[int, int] = {}
        self._class_words = self._build_class_words()

    @classmethod
    def load(
        cls, embedder, stop_words: frozenset[str] = frozenset(), root: Path | None = None
    ) -> TagWords | None:
        """The tag vocabulary from an embedder's word space and WordNet, or None (with a warning)
        where WordNet or the class list is missing (a server without Debian's wordnet-base)."""
        try:
            if not (Path(root or WORDNET_DIR) / "index.noun").is_file():
                raise FileNotFoundError(f"WordNet not found in {root or WORDNET_DIR} (wordnet-base)")
            chunks = list(embedder.vocabulary(limit=VOCABULARY))
            words = [w for c in chunks for w in c.words]
            vectors = np.concatenate([c.vectors for c in chunks]) if chunks else np.zeros((0, 1), np.float32)
            return cls(words, vectors, root, stop_words)
        except (FileNotFoundError, ImportError) as exc:
            log.warning("%s; tags are the nearest words only", exc)
            return None

    def _common(self, word: str, rank: int) -> bool:
        r = self._rank.get(word)
        return r is not None and r < rank

    def _primary_chain(self, offset: int) -> list[tuple[int, int]]:
        """(synset, steps up) from a class along each synset's first hypernym, WordNet's primary
        one: a second parent is another view of the thing ("wheeled vehicle" is a "vehicle" first
        and a "container" second), which names no photo of a car."""
        chain = [(offset, 0)]
        for step in range(1, MAX_DEPTH + 1):
            parents = self.wordnet.synset(chain[-1][0])[1]
            if not parents:
                break
            chain.append((parents[0], step))
        return chain

    def _concrete(self, word: str) -> bool:
        """A common noun whose first sense is a physical thing (under WordNet's 'physical entity'):
        what a word-space neighbour must be to be a tag ("use", "catch", "bottom" of an image's
        neighbours name no thing in it)."""
        first = self._nouns.get(word)
        if first is None or not self._common(word, ANCESTOR_RANK):
            return False
        lemmas, lexicon = self.wordnet.synset_kind(first)
        if lexicon not in THING_LEXICONS or not any(lemma.lower() == lemma for lemma in lemmas):
            return False  # a place, an act, a time; or a proper name ('Thames', 'Brazil')
        return any(o == PHYSICAL_ENTITY for o, _ in self.wordnet.ancestors(first, depth=MAX_DEPTH + 4))

    def _depth(self, offset: int) -> int:
        """Steps from a synset up to WordNet's root ('entity') by its shortest hypernym path."""
        if offset not in self._depths:
            up = self.wordnet.ancestors(offset, depth=MAX_DEPTH + 4)
            self._depths[offset] = min((d for o, d in up if not self.wordnet.synset(o)[1]), default=0)
        return self._depths[offset]

    def _build_class_words(self) -> list[list[tuple[str, int]]]:
        """Per class, its (word, level) from its own synset up: one word per synset (WordNet's
        first lemma that is a common tag word), levels counting only synsets that gave a word."""
        offsets = [int(w[1:]) for w in wordnet_ids()]
        below: dict[int, int] = {}
        chains = []
        for offset in offsets:
            chain = self._primary_chain(offset)
            chains.append(chain)
            for node, _ in chain:
                below[node] = below.get(node, 0) + 1
        out = []
        for chain in chains:
            words: dict[str, int] = {}
            level = 0
            for node, depth in chain:
                if depth and (below[node] >= MAX_CLASSES_BELOW or self._depth(node) < MIN_DEPTH):
                    continue
                # the class's own name, or its nearest named hypernym when the class has only
                # multi-word names ('golden retriever' -> 'retriever'), may be a rarer word
                rank = CLASS_RANK if level == 0 else ANCESTOR_RANK
                # a class by its first single word; a hypernym by its first lemma only, its name
                # ("instrumentality", not the rarer sense of "instrumentation"; "coffee", not "java")
                lemmas = self.wordnet.synset(node)[0]
                if depth:
                    lemmas = lemmas[:1]
                for lemma in lemmas:
                    word = self.singular(lemma.lower())
                    if not (self.is_tag_word(word) and self._common(word, rank)):
                        continue
                    if word not in words:
                        words[word] = level
                        level += 1
                    break
                if level > MAX_LEVELS:
                    break
            if GLOSS_WEIGHT:
                for word in self._gloss_words(chain[0][0]):
                    words.setdefault(word, -1)
            out.append(list(words.items()))
        return out

    def _gloss_words(self, offset: int) -> list[str]:
        """The concrete common nouns of a synset's definition, before its examples ('lakeshore: the
        shore of a lake' -> shore, lake; 'alp: any high mountain' -> mountain)."""
        found = []
        for token in re.findall(r"[a-z]+", self.wordnet.gloss(offset).split(";")[0].lower()):
            word = self.singular(token)
            if self.is_tag_word(word) and self._concrete(word) and word not in found:
                found.append(word)
        return found

    def singular(self, word: str) -> str:
        """A plural noun's singular ('puppies' -> 'puppy', 'mice' -> 'mouse'); other words as given."""
        word = word.lower()
        if word in self._noun_exceptions:
            return self._noun_exceptions[word]
        if word in self._nouns and not word.endswith("s"):
            return word
        for suffix, repl in (
            ("ies", "y"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("xes", "x"),
            ("ses", "s"),
            ("s", ""),
        ):
            if word.endswith(suffix) and not word.endswith("ss") and len(word) > len(suffix) + 2:
                base = word[: len(word) - len(suffix)] + repl
                if base in self._nouns:
                    return base
        return word

    def is_tag_word(self, word: str) -> bool:
        """A single alphabetic word, no stop word, that WordNet knows as a noun or an adjective."""
        return (
            word.isalpha()
            and len(word) > 1
            and word not in self._stop
            and (word in self._nouns or word in self._adjectives)
        )

    def evidence(self, classes: ClassScores) -> dict[str, float]:
        """Word -> score in [0, 1] from the image's class probabilities, face and colour entries."""
        scores: dict[str, float] = {}
        for i, p in zip(classes.ids, classes.scores, strict=True):
            if i < len(self._class_words):
                for word, hops in self._class_words[i]:
                    weight = GLOSS_WEIGHT if hops < 0 else HOP_DECAY**hops
                    scores[word] = scores.get(word, 0.0) + p * weight
            elif i == PERSON:
                for word, weight in FACE_WORDS:
                    scores[word] = max(scores.get(word, 0.0), weight * p)
            elif COLOUR_BASE <= i < COLOUR_BASE + len(COLOURS) and p >= MIN_COLOUR_SHARE:
                word = COLOURS[i - COLOUR_BASE]
                scores[word] = max(scores.get(word, 0.0), COLOUR_WEIGHT * p)
        return {w: min(1.0, s) for w, s in scores.items()}

    def tags(
        self, classes: ClassScores, neighbours: list[tuple[str, float]], k: int
    ) -> list[tuple[str, float]]:
        """The image's `k` best tags: every evidence word first, by score, then its word-space
        `neighbours` ((word, cosine), nearest first) that are tag words, each scored below the
        weakest evidence word (its score x TAIL_WEIGHT x the cosine)."""
        scores = self.evidence(classes)
        ranked = sorted(scores.items(), key=lambda ws: (-ws[1], ws[0]))[:k]
        floor = min((s for _, s in ranked), default=1.0) * TAIL_WEIGHT
        for word, cosine in neighbours:
            if len(ranked) >= k:
                break
            word = self.singular(word)
            if word not in scores and self.is_tag_word(word) and self._concrete(word):
                scores[word] = floor * max(0.0, min(1.0, cosine))
                ranked.append((word, scores[word]))
        return [(w, float(s)) for w, s in ranked]


def _first_senses(path: Path) -> dict[str, int]:
    """Single-word lemma -> its first (most frequent) synset, from a WordNet index file."""
    if not path.is_file():
        raise FileNotFoundError(f"WordNet index not found: {path} (Debian package wordnet-base)")
    out: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):
                continue  # the licence header
            fields = line.split()
            if "_" not in fields[0]:
                out[fields[0]] = int(fields[-int(fields[2])])
    return out


def _exceptions(path: Path) -> dict[str, str]:
    """Irregular plural -> singular ('mice' -> 'mouse'), from WordNet's noun.exc."""
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2:
                out[fields[0]] = fields[1]
    return out
