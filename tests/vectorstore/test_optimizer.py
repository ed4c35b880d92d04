"""AutoOptimizer on its own: when it optimizes, on which thread, and that stop() ends it."""

from __future__ import annotations

import threading
import time

from imgsearch.vectorstore.optimizer import AutoOptimizer


class Jobs:
    """Optimize functions for collections "a" and "b" that record where they ran."""

    def __init__(self) -> None:
        self.exists = {"a": True, "b": True}
        self.ran: list[tuple[str, str]] = []
        self.done = threading.Event()

    def job_for(self, name: str):
        if not self.exists[name]:
            return None

        def job() -> bool:
            self.ran.append((name, threading.current_thread().name))
            self.done.set()
            return True

        return job


def _optimizer(jobs: Jobs, every: int, background: bool) -> AutoOptimizer:
    return AutoOptimizer(
        jobs.job_for, ("a", "b"), every=every, background=background, admin=threading.RLock()
    )


def test_inline_optimize_runs_in_the_write_that_crosses_the_line():
    jobs = Jobs()
    opt = _optimizer(jobs, every=10, background=False)
    opt.wrote("a", 6)
    assert jobs.ran == []
    opt.wrote("a", 4)
    assert jobs.ran == [("a", threading.current_thread().name)]
    opt.wrote("a", 9)  # the count started over
    assert len(jobs.ran) == 1
    opt.run(force=True)  # an explicit optimize covers every collection
    assert [name for name, _ in jobs.ran] == ["a", "a", "b"]


def test_zero_never_optimizes_and_a_missing_collection_stays_due():
    jobs = Jobs()
    never = _optimizer(jobs, every=0, background=False)
    never.wrote("a", 1_000_000)
    assert jobs.ran == []

    opt = _optimizer(jobs, every=5, background=False)
    jobs.exists["b"] = False
    opt.wrote("b", 5)
    assert jobs.ran == []
    jobs.exists["b"] = True
    opt.run(force=False)
    assert [name for name, _ in jobs.ran] == ["b"]
    opt.forget("b")
    opt.run(force=False)
    assert len(jobs.ran) == 1


def test_background_optimize_runs_on_its_thread_and_stop_ends_it():
    jobs = Jobs()
    opt = _optimizer(jobs, every=5, background=True)
    opt.wrote("a", 5)
    assert jobs.done.wait(10)
    assert jobs.ran == [("a", "edge-optimizer")]
    thread = opt._thread
    opt.stop()
    assert thread is not None and not thread.is_alive()
    opt.request("b")  # after stop: nothing starts
    opt.wrote("a", 5)
    assert opt._thread is thread and len(jobs.ran) == 1


def test_a_bulk_load_is_optimized_once_writes_pause_or_enough_points_wait():
    """Optimizing every `every` points of a bulk load rebuilds ever larger merged segments; in the
    background a due collection waits for a pause in the writes, or for `max_pending` points."""
    jobs = Jobs()
    opt = AutoOptimizer(
        jobs.job_for, ("a", "b"), every=5, background=True, admin=threading.RLock(), quiet_seconds=0.5,
        max_pending=1000,
    )  # fmt: skip
    opt.known("a", 10_000)  # 5,000 points may wait, at most 1,000
    for _ in range(8):  # a steady stream of writes, each due: none optimizes meanwhile
        opt.wrote("a", 10)
        time.sleep(0.1)
    assert jobs.ran == []
    assert jobs.done.wait(10)  # the writes paused
    assert [name for name, _ in jobs.ran] == ["a"]

    jobs.done.clear()
    opt.wrote("b", 1000)  # enough points wait (b was empty): at once, although writes keep coming
    opt.wrote("a", 1)
    assert jobs.done.wait(0.4)
    assert ("b", "edge-optimizer") in jobs.ran
    opt.stop()
