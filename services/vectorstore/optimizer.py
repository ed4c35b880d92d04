"""AutoOptimizer: optimizes a collection once enough points were written to it since the last time.

Qdrant Edge has no background optimizer: points land in an appendable segment searched by brute
force until `optimize()` builds HNSW. This counts points written per collection and, past
`every`, optimizes on a background thread so that the write that crossed the line returns at once
(or inside that write, with `background=False`). The engine holds later writes while it optimizes.

A bulk load must not optimize every `every` points: each optimize indexes the new points and the
engine's merge optimizer then merges them into the previous segment and rebuilds its graph, so
the work grows with the square of the collection (a 100,000-point load optimized 20 times,
writing 5x the data). So a due collection waits in the background until writes pause for
`quiet_seconds`, or until the points waiting reach half of those already indexed (so the work
stays proportional to the data: each point is rebuilt a few times, not once per `every`), at
most `max_pending` (a segment near the engine's largest, indexed once and not merged again).
Searches meanwhile scan the unindexed points.

Locks are taken in the order `lock` (optimize) -> `admin` (the owner's) -> the owner's write locks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

log = logging.getLogger(__name__)

Job = Callable[[], object]


class AutoOptimizer:
    """Counts writes per collection and runs `job_for(name)` when a collection is due.

    job_for: called under the admin lock; the collection's optimize function, or None when the
        collection does not exist (then it is skipped and stays due). The job itself runs outside
        the admin lock, under `lock`, so that the owner can serve reads and take other locks.
    """

    def __init__(
        self,
        job_for: Callable[[str], Job | None],
        names: Iterable[str],
        *,
        every: int,
        background: bool,
        admin: AbstractContextManager[object],
        quiet_seconds: float = 0.0,
        max_pending: int = 0,
    ):
        """quiet_seconds: in the background, a due collection waits until no write came for this
        long (0 = at once), or until its pending points reach half of its indexed ones, at most
        max_pending (0: only the pause counts)."""
        if max_pending < 0:
            raise ValueError(f"IMGSEARCH_OPTIMIZE_MAX_PENDING must not be negative, got {max_pending}")
        self.lock = threading.Lock()  # held while a collection optimizes; the owner's drop and close take it
        self._job_for = job_for
        self._every = every
        self._background = background
        self._admin = admin
        self._pending = dict.fromkeys(names, 0)
        self._indexed = dict.fromkeys(self._pending, 0)  # points covered by the latest optimize
        self._quiet = quiet_seconds
        self._max_pending = max_pending
        self._last_write = 0.0  # time.monotonic() of the latest counted write
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def wrote(self, name: str, n: int) -> None:
        """Counts `n` points written to `name`; optimizes when that makes it due (every=0: never)."""
        if self._every <= 0:
            return
        with self._admin:
            self._pending[name] += n
            self._last_write = time.monotonic()
            due = self._pending[name] >= self._every
        if not due:
            return
        if not self._background:
            self.run(force=False)
            return
        self._wake()

    def request(self, name: str) -> None:
        """Optimizes `name` soon in the background, whatever was written (e.g. to build quantization)."""
        with self._admin:
            self._pending[name] = max(1, self._every)
        self._wake()

    def forget(self, name: str) -> None:
        """Drops the count of a collection that was deleted."""
        with self._admin:
            self._pending[name] = 0
            self._indexed[name] = 0

    def known(self, name: str, points: int) -> None:
        """Tells how many points a collection opened with already holds."""
        with self._admin:
            self._indexed[name] = points

    def run(self, force: bool) -> None:
        """Optimizes every collection that is due (all of them with `force`); blocks until done."""
        with self.lock:
            for name in self._pending:
                with self._admin:
                    if not force and self._pending[name] < self._every:
                        continue
                    job = self._job_for(name)
                    if job is None:
                        continue
                    self._indexed[name] += self._pending[name]
                    self._pending[name] = 0
                changed = job()
                log.info("optimized %s (changed=%s)", name, changed)

    def _wait_for_quiet(self) -> float:
        """Seconds to wait before optimizing: 0 when writes paused for `quiet_seconds` or a due
        collection has enough points pending (see the module docstring)."""
        with self._admin:
            if self._max_pending > 0:
                for name, pending in self._pending.items():
                    if pending >= max(self._every, min(self._max_pending, self._indexed[name] // 2)):
                        return 0.0
            return max(0.0, self._last_write + self._quiet - time.monotonic())

    def stop(self) -> None:
        """Ends the background thread, waiting for an optimize under way; later wakes do nothing.

        Call it without holding the admin lock: the thread may need it to finish.
        """
        with self._admin:
            self._stopped = True
            self._wanted.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _wake(self) -> None:
        """Wakes the background thread (started on first use) for the collections that are due."""
        with self._admin:
            if self._stopped:
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="edge-optimizer", daemon=True)
                self._thread.start()
            self._wanted.set()

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopped:
                return
            wait = self._wait_for_quiet()
            if wait > 0:  # writes are still coming: look again when they may have paused
                self._wanted.wait(wait)
                self._wanted.set()
                continue
            try:
                self.run(force=False)
            except Exception:  # keep serving; the next trigger or close() retries
                log.exception("background optimize failed")
