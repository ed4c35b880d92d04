"""`imgsearch ingest`: which files a list of paths, folders and globs names, and sending them."""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from imgsearch.client import ImageSearchClient, IngestItem, IngestSummary

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
_GLOB_CHARS = frozenset("*?[")
# Images per ingest stream from the CLI: the server answers per stream, so this is how often the
# progress bar moves (two batches of the embedder's 32; the client keeps two streams in flight).
PROGRESS_CHUNK = 64


# The first bytes of the formats the server decodes: a file found in a folder is read by content
# when its name says nothing (no extension, or a wrong one).
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def looks_like_image(path: Path) -> bool:
    """Whether the file starts like a JPEG, PNG, GIF, BMP, TIFF or WebP (unreadable: no)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def kind_of(path: Path) -> str:
    """How a skipped file is counted: its extension, or "no extension"."""
    return path.suffix.lower() or "no extension"


@dataclass
class Expansion:
    """The image files found, in a stable order, and the arguments that named nothing."""

    files: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # files in folders that are no image, per kind

    def skipped_note(self) -> str:
        """ "skipped 3 files (.heic: 2, no extension: 1)", or "" when none was skipped."""
        if not self.skipped:
            return ""
        total = sum(self.skipped.values())
        kinds = ", ".join(
            f"{kind}: {n}" for kind, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        return f"skipped {total} file{'s' if total != 1 else ''} that are no image the server reads ({kinds})"


def expand_paths(args: Sequence[str]) -> Expansion:
    """Files as named; folders walked recursively (hidden entries skipped); globs (with `**`).

    A file named explicitly is taken whatever its extension (the server judges it); files found
    in folders or by globs are taken when their extension or, failing that, their first bytes say
    image, and the others are counted in `skipped`. Duplicates are dropped, first kept.
    """
    found = Expansion()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        path = path.absolute()
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    for arg in args:
        path = Path(arg).expanduser()
        if path.is_file():
            add(path)
        elif path.is_dir():
            for f in _walk(path, found.skipped):
                add(f)
        elif _GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
            hits = 0
            for m in map(Path, matches):
                if m.is_dir():
                    for f in _walk(m, found.skipped):
                        add(f)
                        hits += 1
                elif m.is_file() and (is_image_file(m) or looks_like_image(m)):
                    add(m)
                    hits += 1
                elif m.is_file():
                    found.skipped[kind_of(m)] = found.skipped.get(kind_of(m), 0) + 1
            if not hits:
                found.missing.append(arg)
        else:
            found.missing.append(arg)
    return found


def _walk(folder: Path, skipped: dict[str, int]) -> list[Path]:
    """Image files under `folder` sorted by path, so runs are reproducible; the other files are
    counted in `skipped` by kind."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            if is_image_file(path) or looks_like_image(path):
                found.append(path)
            else:
                skipped[kind_of(path)] = skipped.get(kind_of(path), 0) + 1
    return sorted(found)


def label_for(path: Path, label: str | None, label_from_dir: bool) -> str:
    """The label of one file: the given one, or its folder's name with `--label-from-dir`."""
    if label_from_dir:
        return path.parent.name
    return label or ""


@dataclass
class IngestOutcome:
    """The server's summary plus the files that never left this machine (unreadable, too big)."""

    summary: IngestSummary
    local_failures: list[tuple[str, str]]

    @property
    def failed(self) -> list[tuple[str, str]]:
        """(path, error) for every failed file, local ones first."""
        return self.local_failures + [(r.uri, r.error) for r in self.summary.failed]


def ingest_files(
    client: ImageSearchClient,
    files: Sequence[Path],
    *,
    progress: tqdm,
    labels: Mapping[Path, str] | None = None,
    label: str | None = None,
    label_from_dir: bool = False,
    metadata: Mapping[str, str] | None = None,
    max_image_bytes: int = 20 * 1024 * 1024,
) -> IngestOutcome:
    """Reads each file lazily and streams it; uri is the absolute path. `progress` counts the images
    the server has answered for (stored, duplicate or failed), so its rate and ETA are the server's."""
    local_failures: list[tuple[str, str]] = []
    lock = threading.Lock()  # files are counted from this thread and from the client's gRPC threads

    def count(_result: object = None) -> None:
        with lock:
            progress.update()

    def items() -> Iterator[IngestItem]:
        for path in files:
            try:
                size = path.stat().st_size
                if size > max_image_bytes:
                    raise ValueError(f"{size} bytes is over the limit of {max_image_bytes}")
                data = path.read_bytes()
            except (OSError, ValueError) as e:
                local_failures.append((str(path), str(e)))
                count()
                continue
            file_label = labels[path] if labels and path in labels else label_for(path, label, label_from_dir)
            yield IngestItem(image=data, uri=str(path), label=file_label, metadata=dict(metadata or {}))

    summary = client.ingest(items(), on_result=count, chunk_items=PROGRESS_CHUNK)
    return IngestOutcome(summary, local_failures)
