"""Soak: mixed ingest, search and delete from 8 clients against one `imgsearch serve` for 10 minutes.

Not a timed test: it reports what a long run does to the server. Each client thread loops as fast
as the server answers, picking at random (weights in MIX): an Ingest stream of 1 to 4 real photos
made unique by trailing bytes, SearchText of a real word, SimilarImages by the id of an image it
stored, Delete of images it stored, GetStats. Reported: calls and errors by RPC and status code
(a RESOURCE_EXHAUSTED from a concurrency cap is expected under overload and counted apart),
latency p50/p99 per RPC, the server's resident memory (RSS) at the start of the measured run
(after a warm-up minute's worth of mixed calls) and at the end, and the load average.

    .venv/bin/python -m benchmarks.soak_bench                 # 600 s, 8 clients
    .venv/bin/python -m benchmarks.soak_bench --seconds 120   # a shorter run

Goal: no unexpected error, RSS growth under 10 %.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import random
import threading
import time
from pathlib import Path

import grpc

from benchmarks.common import (
    GRPC_OPTIONS,
    Result,
    ServerProcess,
    in_scratch,
    percentiles,
    photo_bytes,
    report,
)

log = logging.getLogger(__name__)

NAME = "soak"
WORDS = (
    "dog",
    "cat",
    "fish",
    "car",
    "music",
    "snow",
    "mountain",
    "phone",
    "drink",
    "camera",
    "turtle",
    "tent",
)
MIX = {"ingest": 2, "search": 6, "similar": 3, "delete": 1, "stats": 1}
EXPECTED_CODES = {"OK"}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Client(threading.Thread):
    def __init__(self, addr: str, seed: int, stop: threading.Event, photos: list[bytes]):
        super().__init__(name=f"soak-{seed}", daemon=True)
        from imgsearch.protogen.imagesearch.v1 import indexer_pb2_grpc, query_pb2_grpc

        self.channel = grpc.insecure_channel(
            addr, options=[*GRPC_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
        )
        self.indexer = indexer_pb2_grpc.IndexerStub(self.channel)
        self.query = query_pb2_grpc.QueryStub(self.channel)
        self.rnd = random.Random(seed)
        self.seed = seed
        self.stop = stop
        self.photos = photos
        self.mine: list[str] = []  # ids this client stored and has not deleted
        self.counter = 0
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.codes: collections.Counter = collections.Counter()
        self.recording = False

    def run(self) -> None:
        ops, weights = zip(*MIX.items(), strict=True)
        while not self.stop.is_set():
            op = self.rnd.choices(ops, weights)[0]
            if op in ("similar", "delete") and not self.mine:
                op = "ingest"
            start = time.perf_counter()
            try:
                getattr(self, op)()
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            if self.recording:
                self.latency[op].append(time.perf_counter() - start)
                self.codes[(op, code)] += 1
        self.channel.close()

    def ingest(self) -> None:
        from imgsearch.protogen.imagesearch.v1 import indexer_pb2

        reqs = []
        for _ in range(self.rnd.randint(1, 4)):
            self.counter += 1
            photo = self.photos[self.counter % len(self.photos)]
            data = photo + b"\xff" + self.seed.to_bytes(4, "big") + self.counter.to_bytes(8, "big")
            reqs.append(
                indexer_pb2.IngestRequest(image=data, uri=f"soak/{self.seed}/{self.counter}", label="soak")
            )
        r = self.indexer.Ingest(iter(reqs), timeout=60)
        self.mine.extend(x.id for x in r.results if x.status == indexer_pb2.IngestResult.NEW)
        bad = [x for x in r.results if x.status == indexer_pb2.IngestResult.FAILED]
        if bad:
            self.codes[("ingest-item", str(bad[0].error.code))] += len(bad)

    def search(self) -> None:
        from imgsearch.protogen.imagesearch.v1 import query_pb2

        self.query.SearchText(query_pb2.SearchTextRequest(text=self.rnd.choice(WORDS), k=10), timeout=30)

    def similar(self) -> None:
        from imgsearch.protogen.imagesearch.v1 import query_pb2

        self.query.SimilarImages(
            query_pb2.SimilarImagesRequest(id=self.rnd.choice(self.mine), k=10), timeout=30
        )

    def delete(self) -> None:
        from imgsearch.protogen.imagesearch.v1 import indexer_pb2

        n = self.rnd.randint(1, max(1, len(self.mine) // 2))
        ids, self.mine = self.mine[:n], self.mine[n:]
        self.indexer.Delete(indexer_pb2.DeleteRequest(ids=ids), timeout=30)

    def stats(self) -> None:
        from imgsearch.protogen.imagesearch.v1 import indexer_pb2

        self.indexer.GetStats(indexer_pb2.GetStatsRequest(), timeout=30)


def run(seconds: float, clients: int, warmup: float, work_dir: Path | None = None) -> Result:
    started = time.perf_counter()

    def body(scratch: Path) -> Result:
        env = dict(os.environ, IMGSEARCH_VOCAB_SIZE="20000")
        server = ServerProcess(scratch / "data", env=env)
        try:
            server.wait_serving()
            stop = threading.Event()
            photos = photo_bytes()
            workers = [Client(server.addr, seed, stop, photos) for seed in range(clients)]
            for w in workers:
                w.start()
            time.sleep(warmup)
            result = Result(NAME, quick=seconds < 600)
            rss_start = rss_bytes(server.proc.pid)
            samples = [(0.0, rss_start)]
            for w in workers:
                w.recording = True
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                time.sleep(min(10.0, seconds - (time.perf_counter() - t0)))
                samples.append((round(time.perf_counter() - t0, 1), rss_bytes(server.proc.pid)))
                if not server.running():
                    break
            for w in workers:
                w.recording = False
            stop.set()
            for w in workers:
                w.join(60)
            rss_end = samples[-1][1]
            alive = server.running()
            return _report(result, workers, seconds, clients, rss_start, rss_end, samples, alive).finish(
                started
            )
        finally:
            server.stop()

    return in_scratch("soak-", work_dir, body)


def _report(
    result: Result,
    workers: list[Client],
    seconds: float,
    clients: int,
    rss_start: int,
    rss_end: int,
    samples: list[tuple[float, int]],
    alive: bool,
) -> Result:
    codes: collections.Counter = collections.Counter()
    latency: dict[str, list[float]] = collections.defaultdict(list)
    for w in workers:
        codes.update(w.codes)
        for op, xs in w.latency.items():
            latency[op].extend(xs)
    calls = sum(n for (op, _), n in codes.items() if op != "ingest-item")
    unexpected = {f"{op} {code}": n for (op, code), n in codes.items() if code not in EXPECTED_CODES}
    growth = (rss_end - rss_start) / rss_start if rss_start else float("nan")
    result.add("clients", clients)
    result.add("measured seconds", seconds, "s")
    result.add("calls", calls)
    result.add("calls/s", round(calls / seconds, 1))
    result.add("unexpected errors", sum(unexpected.values()), goal="0", met=not unexpected)
    for op in MIX:
        p = percentiles(latency.get(op, []))
        result.add(f"{op} p50 / p99", f"{p['p50']:.1f} / {p['p99']:.1f}", "ms")
    result.add("server RSS start / end", f"{rss_start / 2**20:.0f} / {rss_end / 2**20:.0f}", "MB")
    result.add("RSS growth", round(100 * growth, 1), "%", "< 10 %", growth < 0.10)
    result.add("server alive at the end", "yes" if alive else "no", met=alive)
    result.details = {
        "codes": {f"{op} {code}": n for (op, code), n in sorted(codes.items())},
        "unexpected": unexpected,
        "latency_ms": {op: percentiles(xs) for op, xs in latency.items()},
        "rss_samples": [{"t": t, "rss_mb": round(r / 2**20, 1)} for t, r in samples],
        "mix": MIX,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="measured time (default 600)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="mixed load before measuring (default 30 s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report(run(args.seconds, args.clients, args.warmup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
