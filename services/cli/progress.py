"""A plain-text progress bar on stderr (no extra dependency), redrawn in place with \\r."""

from __future__ import annotations

import threading
import time
from typing import TextIO


class ProgressBar:
    """`update()` may be called from any thread; redraws at most ten times a second.

    On a terminal the bar is redrawn in place; elsewhere (logs, pipes, tests) only the final line
    is written, so logs do not fill with carriage returns.
    """

    def __init__(self, stream: TextIO, total: int, label: str = "", width: int = 30, unit: str = "img"):
        self.stream = stream
        self.total = max(0, total)
        self.label = label
        self.width = width
        self.unit = unit
        self.count = 0
        isatty = getattr(stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._lock = threading.Lock()
        self._closed = False

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.count += n
            now = time.monotonic()
            if self.live and (now - self._last_draw >= 0.1 or self.count >= self.total):
                self._last_draw = now
                self.stream.write("\r" + self.render())
                self.stream.flush()

    def render(self) -> str:
        """`label [#########.........]  45/120  37%  12.3 img/s`."""
        total = self.total or 1
        done = min(self.count, total)
        filled = int(self.width * done / total)
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = self.count / elapsed
        bar = "#" * filled + "." * (self.width - filled)
        prefix = f"{self.label} " if self.label else ""
        count = f"{self.count:>{len(str(self.total))}}/{self.total}"
        return f"{prefix}[{bar}] {count} {100 * done // total:3d}% {rate:6.1f} {self.unit}/s"

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.stream.write(("\r" if self.live else "") + self.render() + "\n")
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
