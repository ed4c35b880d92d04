"""The taxonomic channel: ImageNet classes as a sparse vector, for images and for query words.

An image's sparse vector holds its top ImageNet class probabilities (`image_classes`). A query word
becomes a sparse vector over every ImageNet class at or below any of its WordNet noun senses
("dog" -> the 118 dog breeds, "fish" -> goldfish, rock beauty, ..., "bear" -> brown, black, ice
bear): the dot product of the two is the probability the CNN gives to what the word names. WordNet
3.0 comes from Debian's wordnet-base (read by imgsearch.embedder.wordspace.class_words); a word with no such
classes ("ocean", "street") gives an empty vector and the semantic channel alone ranks for it.
All senses of a word count (a trial on 45 photos found that better than the first one or two).

Sky: a word that names no class and is no colour term, whose first noun sense is at or above a
synset the sky channel's entries stand for (imgsearch.embedder.channels.sky.ANCHORS: "night",
"sky", "stars"), asks for those entries.

Colours: a colour term ("red", "black") asks for its entry of imgsearch.embedder.channels.colours, the share
of the picture in that colour.

People: a word whose first noun sense is a person or people ("woman", "astronaut", "people") also
asks for imgsearch.embedder.channels.faces.PERSON, which a face detector puts into an image's vector. Only
the first sense counts there (most nouns have a slang sense for a person: "cat", "dog", "bear"), and
only for a word that names no ImageNet class ("controller" is first an accountant, then a joystick).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from imgsearch.embedder.channels.colours import colour_id
from imgsearch.embedder.channels.faces import PERSON
from imgsearch.embedder.channels.sky import ANCHORS
from imgsearch.embedder.results import ClassScores
from imgsearch.embedder.wordspace.class_words import WORDNET_DIR, WordNet, class_names, wordnet_ids

log = logging.getLogger(__name__)

# Classes an image keeps in its sparse vector, and the smallest probability kept: the top 10 hold
# nearly all of the probability of a photo, and the tail below 0.5 % only adds noise to sums.
IMAGE_TOP_CLASSES = 10
IMAGE_MIN_PROBABILITY = 0.005
# A scene word that names no class by its senses ("ocean", "lake", "shore": its first sense a
# natural object, phenomenon or substance) asks for the classes whose clean name or WordNet
# definition names it ("seashore: the shore of a sea or ocean"; "lakeshore: the shore of a lake").
SCENE_LEXICONS = frozenset({17, 19, 27})

# WordNet's rules for noun plurals (morphy), tried when a word is not a lemma itself.
_NOUN_SUFFIXES = (("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
                  ("men", "man"), ("ies", "y"), ("s", ""))  # fmt: skip


def image_classes(
    probabilities: np.ndarray, top: int = IMAGE_TOP_CLASSES, min_probability: float = IMAGE_MIN_PROBABILITY
) -> list[ClassScores]:
    """Each image's `top` most probable classes above `min_probability`, from (N, 1000) probabilities."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be (N, classes), got {probs.shape}")
    top = min(top, probs.shape[1])
    best = np.argpartition(-probs, top - 1, axis=1)[:, :top]
    out = []
    for row, ids in zip(probs, best, strict=True):
        kept = sorted(int(i) for i in ids if row[i] >= min_probability)
        out.append(ClassScores(tuple(kept), tuple(float(row[i]) for i in kept)))
    return out


def with_person(classes: ClassScores, score: float = 1.0) -> ClassScores:
    """The image's classes with PERSON (a face was found) set to `score`."""
    return with_entries(classes, {PERSON: score})


def with_entries(classes: ClassScores, entries: dict[int, float]) -> ClassScores:
    """The image's classes with more entries (colour shares) set."""
    kept = {i: s for i, s in zip(classes.ids, classes.scores, strict=True)}
    kept.update(entries)
    ids = sorted(kept)
    return ClassScores(tuple(ids), tuple(kept[i] for i in ids))


def merge(parts: list[ClassScores]) -> ClassScores:
    """The sum of sparse vectors."""
    total: dict[int, float] = {}
    for part in parts:
        for i, s in zip(part.ids, part.scores, strict=True):
            total[i] = total.get(i, 0.0) + s
    ids = sorted(i for i, s in total.items() if s != 0)
    return ClassScores(tuple(ids), tuple(total[i] for i in ids))


class Taxonomy:
    """Word -> the ImageNet classes at or below its WordNet noun senses."""

    def __init__(self, root: Path | None = None):
        root = Path(root or WORDNET_DIR)
        self.wordnet = WordNet(root)
        self._lemmas = _read_index(root / "index.noun")
        self._exceptions = _read_exceptions(root / "noun.exc")
        # synset offset -> classes at or below it
        self._below: dict[int, set[int]] = {}
        for c, wnid in enumerate(wordnet_ids()):
            offset = int(wnid[1:])
            self._below.setdefault(offset, set()).add(c)
            for ancestor, _ in self.wordnet.ancestors(offset, depth=30):
                self._below.setdefault(ancestor, set()).add(c)
        # word -> classes whose definition names it ("lakeshore: the shore of a lake")
        self._glossed: dict[str, set[int]] = {}
        for c, (wnid, name) in enumerate(zip(wordnet_ids(), class_names("clean"), strict=True)):
            definition = self.wordnet.gloss(int(wnid[1:])).split(";")[0].lower()
            for token in {name.lower(), *re.findall(r"[a-z]+", definition)}:
                self._glossed.setdefault(token, set()).add(c)
        # the first senses of "person" and "people": what a face stands for
        self._people = {self._lemmas[w][0] for w in ("person", "people") if w in self._lemmas}
        # synset -> the sky channel's entries at or below it (a sky entry's anchors and their ancestors)
        self._sky: dict[int, set[int]] = {}
        for entry, anchors in ANCHORS.items():
            for lemma, sense in anchors:
                offsets = self._lemmas.get(lemma, ())
                if len(offsets) < sense:
                    continue
                anchor = offsets[sense - 1]
                for offset in (anchor, *(a for a, _ in self.wordnet.ancestors(anchor, depth=30))):
                    self._sky.setdefault(offset, set()).add(entry)

    @classmethod
    def load(cls, root: Path | None = None) -> Taxonomy | None:
        """The taxonomy, or None (with a warning) where WordNet is not installed."""
        try:
            return cls(root)
        except FileNotFoundError as exc:
            log.warning("%s; the taxonomic channel is off", exc)
            return None

    def senses(self, word: str) -> list[int]:
        """The noun synsets of a word or of its singular ('puppies' -> puppy's)."""
        word = word.lower()
        found = list(self._lemmas.get(word, ()))
        for base in self._bases(word):
            found += [o for o in self._lemmas.get(base, ()) if o not in found]
        return found

    def classes(self, word: str) -> frozenset[int]:
        """Every ImageNet class at or below any sense of the word (empty: the word names none)."""
        out: set[int] = set()
        senses = self.senses(word)
        for offset in senses:
            out |= self._below.get(offset, set())
        if senses and not out and self._is_people(senses[0]):  # objects win: "controller"
            out.add(PERSON)
        if senses and not out and colour_id(word) is None:  # "night", "sky", "stars" (not "blue")
            out |= self._sky.get(senses[0], set())
        if senses and not out and self._is_scene(senses[0]):
            for base in (word.lower(), *self._bases(word.lower())):
                out |= self._glossed.get(base, set())
        return frozenset(out)

    def _is_scene(self, offset: int) -> bool:
        """Whether a synset is a natural object, phenomenon or substance (WordNet's lexicographer
        files noun.object, noun.phenomenon, noun.substance: ocean, lake, sky, snow, sand), the
        words of scenes that no ImageNet class is."""
        return self.wordnet.synset_kind(offset)[1] in SCENE_LEXICONS

    def _is_people(self, offset: int) -> bool:
        """Whether a synset is a person or people, or below one."""
        return offset in self._people or any(a in self._people for a, _ in self.wordnet.ancestors(offset, 30))

    def query(self, words: list[tuple[str, float]]) -> ClassScores:
        """The sparse query vector of weighted words: each word adds its weight on each of its
        classes. Two adjacent words that form a WordNet lemma ("sea turtle") count as that lemma."""
        parts = []
        i = 0
        while i < len(words):
            word, weight = words[i]
            if i + 1 < len(words):
                pair = f"{word}_{words[i + 1][0]}"
                classes = self.classes(pair)
                if classes:
                    parts.append(_indicator(classes, weight))
                    i += 2
                    continue
            classes = self.classes(word)
            colour = colour_id(word)
            if colour is not None:
                classes = classes | {colour}
            if classes:
                parts.append(_indicator(classes, weight))
            i += 1
        return merge(parts)

    def _bases(self, word: str) -> list[str]:
        bases = list(self._exceptions.get(word, ()))
        for suffix, repl in _NOUN_SUFFIXES:
            if word.endswith(suffix) and len(word) > len(suffix) + 1 and not word.endswith("ss"):
                base = word[: len(word) - len(suffix)] + repl
                if base in self._lemmas and base not in bases:
                    bases.append(base)
        return bases


def _indicator(classes: frozenset[int], weight: float) -> ClassScores:
    ids = tuple(sorted(classes))
    return ClassScores(ids, tuple(weight for _ in ids))


def _read_index(path: Path) -> dict[str, tuple[int, ...]]:
    """lemma -> synset offsets, from WordNet's index.noun."""
    if not path.is_file():
        raise FileNotFoundError(f"WordNet index not found: {path} (Debian package wordnet-base)")
    out: dict[str, tuple[int, ...]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):
                continue  # the licence header
            fields = line.split()
            n_synsets = int(fields[2])
            out[fields[0]] = tuple(int(x) for x in fields[-n_synsets:])
    return out


def _read_exceptions(path: Path) -> dict[str, tuple[str, ...]]:
    """Irregular plural -> base forms ('mice' -> 'mouse'), from WordNet's noun.exc."""
    if not path.is_file():
        return {}
    out: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2:
                out[fields[0]] = tuple(fields[1:])
    return out
