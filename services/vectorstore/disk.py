"""Free disk space where the embedded store writes, checked before it writes.

Qdrant Edge keeps its data in memory-mapped files that it creates sparse and fills as it writes.
When the file system has no block left for a page it touches, the kernel kills the process with
SIGBUS: no error, nothing logged, and on a memory-backed file system (tmpfs) even reopening the
store fills its vector and index files, because there reading a page of a mapped file allocates
it. So the store refuses writes while less than `min_free` bytes are free (ResourceExhausted,
reads keep working), the background optimizer waits for space, and opening refuses (cleanly, with
the figures) without OPEN_RESERVE free, or on a memory-backed file system without room for the
unfilled part of the files it maps.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from imgsearch.errors import ResourceExhausted

log = logging.getLogger(__name__)

MB = 1024 * 1024
# Opening needs the unfilled part of the shards' files plus this much (the write-ahead log and
# the files the engine rewrites at open).
OPEN_RESERVE = 16 * MB


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


MEMORY_BACKED = ("tmpfs", "ramfs", "shm")


def filesystem_type(path: Path) -> str:
    """The type of the file system holding `path` ("ext4", "tmpfs", ...), from /proc/mounts; ""
    when unknown."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    real, best, kind = os.path.realpath(path), "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def unfilled_bytes(root: Path) -> int:
    """How much the shards' files under `root` may still take when mapped: their size beyond their
    allocated blocks (sparse regions), summed over the segment files. Left out: the write-ahead log
    and the paged stores (payloads, sparse vectors: `page_N.dat`), whose holes stay holes when a
    store is opened (measured on tmpfs: a reopened store grew only by its dense-vector chunks and
    flags, never by its 32 MB pages)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        if "segments" not in Path(dirpath).parts:
            continue
        for name in files:
            if name.startswith("page_") and name.endswith(".dat"):
                continue
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += max(0, st.st_size - st.st_blocks * 512)
    return total


class DiskGuard:
    """Checks the free space under a store's directory; `min_free` 0 turns every check off."""

    def __init__(self, root: Path, min_free: int):
        self.root = Path(root)
        self.min_free = min_free
        self._short = False  # logged once per shortage

    def check_write(self) -> None:
        """ResourceExhausted while less than `min_free` bytes are free."""
        if not self.min_free:
            return
        free = free_bytes(self._existing())
        if free >= self.min_free:
            self._short = False
            return
        if not self._short:
            self._short = True
            log.warning("disk nearly full under %s: %.1f MB free; writes are refused", self.root, free / MB)
        raise ResourceExhausted(
            f"disk nearly full: {free / MB:.1f} MB free under {self.root}, the embedded store needs "
            f"{self.min_free / MB:.0f} MB (min_free_disk_bytes) to write; free some space (searches "
            "keep working)"
        )

    def has_room(self, extra: int = 0) -> bool:
        """Whether `min_free` plus `extra` bytes are free (the optimizer asks before it rewrites)."""
        return not self.min_free or free_bytes(self._existing()) >= self.min_free + extra

    def check_open(self) -> None:
        """ResourceExhausted when opening the store could run out of space (see module doc)."""
        if not self.min_free or not self.root.exists():
            return
        memory_backed = filesystem_type(self.root) in MEMORY_BACKED
        need = OPEN_RESERVE + (unfilled_bytes(self.root) if memory_backed else 0)
        free = free_bytes(self.root)
        if free < need:
            why = " (on this memory-backed file system its files fill when mapped)" if memory_backed else ""
            raise ResourceExhausted(
                f"not enough free disk space to open the embedded store at {self.root}: {free / MB:.1f} MB "
                f"free, opening needs {need / MB:.0f} MB{why}; free some space and start again"
            )

    def _existing(self) -> Path:
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        return path
