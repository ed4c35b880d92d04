"""The HTTP/JSON API against gRPC, the thumbnails' cost, and the web page's load time.

1. Search latency at 100,000 images (the query benchmark's cached store): one client process sends
   SearchText over gRPC and POST /v1/query:searchText over HTTP (one kept-alive connection) to the
   same in-process server, alternating blocks of queries so both see the same machine load.
2. Thumbnail cost per image: the WebP the indexer keeps (bytes, and as stored in the payload:
   base64), and the CPU it takes at ingest, over the sample photos.
3. The page: headless Chromium (Debian's, through chromedriver) opens /?q=... on a server holding
   the sample photos and mirrored copies, and the time from navigation to 50 result thumbnails
   loaded is read from the page's clock (first visit, then warm visits).

Run: `.venv/bin/python -m benchmarks.web_bench [--quick]`.
"""

from __future__ import annotations

import http.client
import io
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import GRPC_OPTIONS, Result, bench_main, bench_settings, percentiles

NAME = "web"
K = 10
PAGE_RESULTS = 50


@dataclass(frozen=True)
class Sizes:
    images: int = 100_000
    blocks: int = 6  # alternating gRPC / HTTP blocks
    per_block: int = 300
    warmup: int = 50
    page_visits: int = 5


FULL = Sizes()
QUICK = Sizes(images=5_000, blocks=2, per_block=100, warmup=20, page_visits=2)


# -- 1. latency ----------------------------------------------------------------------------------


def client(grpc_addr: str, http_port: int, texts: list[str], sizes: Sizes) -> dict[str, Any]:
    """One client process: warms both up, then alternates blocks of gRPC and HTTP searches."""
    import grpc

    from imgsearch.protogen.imagesearch.v1 import query_pb2, query_pb2_grpc

    with grpc.insecure_channel(grpc_addr, options=GRPC_OPTIONS) as channel:
        search = query_pb2_grpc.QueryStub(channel).SearchText
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)

        def via_grpc(text: str) -> list[str]:
            return [h.id for h in search(query_pb2.SearchTextRequest(text=text, k=K), timeout=30).results]

        def via_http(text: str) -> list[str]:
            body = json.dumps({"text": text, "k": K})
            conn.request("POST", "/v1/query:searchText", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            doc = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {doc}")
            return [h["id"] for h in doc["results"]]

        for text in texts[: sizes.warmup]:
            via_grpc(text)
            via_http(text)
        latencies: dict[str, list[float]] = {"grpc": [], "http": []}
        same = 0
        for block in range(sizes.blocks):
            chunk = texts[block * sizes.per_block : (block + 1) * sizes.per_block]
            for name, call in (("grpc", via_grpc), ("http", via_http))[:: 1 if block % 2 == 0 else -1]:
                for text in chunk:
                    t0 = time.perf_counter()
                    call(text)
                    latencies[name].append(time.perf_counter() - t0)
            same += sum(via_grpc(t) == via_http(t) for t in chunk[:20])
        conn.close()
    return {"latencies": latencies, "same_answers": same, "compared": 20 * sizes.blocks}


def latency(sizes: Sizes) -> dict[str, Any]:
    from benchmarks.query_bench import VOCAB_SIZE, cached_store, query_words
    from imgsearch.app.serve import start, stop
    from imgsearch.embedder.wordspace.wordvectors import load_word_vectors

    settings0 = bench_settings(Path(tempfile.gettempdir()))
    words = load_word_vectors(settings0.glove, settings0.cache_dir)
    cached, _, _ = cached_store(words, sizes.images, None)
    wanted = sizes.warmup + sizes.blocks * sizes.per_block
    texts = query_words(words, 2 * wanted)[:wanted]  # no stop words: both transports refuse those
    copy = Path(tempfile.mkdtemp(prefix="web-bench-"))  # the cache may be open in another benchmark
    shutil.copytree(cached / "qdrant", copy / "qdrant", ignore=shutil.ignore_patterns(".lock"))
    served, parts = start(bench_settings(copy, vocab_size=VOCAB_SIZE, http_port=0), ["all"])
    try:
        images = parts.store.count_images()
        with get_context("spawn").Pool(1) as pool:
            out = pool.apply(client, (f"127.0.0.1:{served.port}", parts.http.port, texts, sizes))
    finally:
        stop(served, parts, 1.0)
        shutil.rmtree(copy, ignore_errors=True)
    return {"images": images, **out}


# -- 2. thumbnails -------------------------------------------------------------------------------


def thumbnail_cost() -> dict[str, Any]:
    from benchmarks.common import photo_bytes
    from imgsearch.indexer.thumbnails import make_thumbnail

    photos = photo_bytes()
    sizes, cpu = [], []
    for data in photos:
        t0 = time.process_time()
        thumb = make_thumbnail(data)
        cpu.append(time.process_time() - t0)
        sizes.append(len(thumb or b""))
    mean = statistics.fmean(sizes)
    return {
        "photos": len(photos),
        "mean_bytes": mean,
        "max_bytes": max(sizes),
        "stored_bytes": mean * 4 / 3,  # base64 in the JSON payload
        "cpu_ms": 1000 * statistics.fmean(cpu),
    }


# -- 3. the page ---------------------------------------------------------------------------------

PAGE_READY = """
const done = arguments[arguments.length - 1], want = arguments[0];
(function poll() {
  const n = [...document.querySelectorAll('#results .card img')]
    .filter(i => i.complete && i.naturalWidth > 0).length;
  if (n >= want) done(performance.now()); else setTimeout(poll, 5);
})();
"""


def page_load(sizes: Sizes) -> dict[str, Any]:
    import base64

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from benchmarks.common import photo_bytes
    from imgsearch.app.serve import start, stop

    with tempfile.TemporaryDirectory() as tmp:
        served, parts = start(bench_settings(Path(tmp), vocab_size=20_000, http_port=0), ["all"])
        base = f"http://127.0.0.1:{parts.http.port}"
        try:
            items = []
            for data in photo_bytes():  # the photos and their mirror images: more than 50
                for flip in (False, True):
                    img = Image.open(io.BytesIO(data)).convert("RGB")
                    out = io.BytesIO()
                    (img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img).save(out, "JPEG")
                    items.append({"image": base64.b64encode(out.getvalue()).decode()})
            conn = http.client.HTTPConnection("127.0.0.1", parts.http.port, timeout=300)
            conn.request(
                "POST", "/v1/indexer:ingest", json.dumps(items), {"Content-Type": "application/json"}
            )
            ingested = json.loads(conn.getresponse().read())["ingested"]
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
                options.add_argument(arg)
            driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
            try:
                driver.set_script_timeout(60)
                times = []
                for _ in range(sizes.page_visits):
                    driver.get(base + "/?q=animal")
                    times.append(driver.execute_async_script(PAGE_READY, min(PAGE_RESULTS, ingested)))
            finally:
                driver.quit()
        finally:
            stop(served, parts, 1.0)
    return {"images": ingested, "first_ms": times[0], "warm_ms": statistics.median(times[1:] or times)}


def run(sizes: Sizes = FULL, *, quick: bool = False) -> Result:
    began = time.perf_counter()
    result = Result(NAME, quick)
    lat = latency(sizes)
    g, h = percentiles(lat["latencies"]["grpc"]), percentiles(lat["latencies"]["http"])
    ratio = h["p50"] / g["p50"]
    result.add("images in the store", lat["images"])
    result.add("gRPC SearchText p50 / p99", f"{g['p50']:.2f} / {g['p99']:.2f}", "ms")
    result.add("HTTP POST /v1/query:searchText p50 / p99", f"{h['p50']:.2f} / {h['p99']:.2f}", "ms")
    result.add("HTTP p50 / gRPC p50", ratio, "x", "<= 1.5", ratio <= 1.5)
    result.add("same ids over both", f"{lat['same_answers']}/{lat['compared']}")
    thumbs = thumbnail_cost()
    result.add("thumbnail (WebP, <= 256 px), mean over the sample photos", thumbs["mean_bytes"] / 1024, "KB")
    result.add("thumbnail as stored in the payload (base64)", thumbs["stored_bytes"] / 1024, "KB/image")
    result.add("thumbnail CPU at ingest", thumbs["cpu_ms"], "ms/image")
    page = page_load(sizes)
    result.add(f"page: navigation to {PAGE_RESULTS} thumbnails loaded, first visit", page["first_ms"], "ms")
    result.add(f"page: the same, warm (median of {sizes.page_visits - 1})", page["warm_ms"], "ms")
    result.details.update({"latency_ms": {"grpc": g, "http": h}, "thumbnails": thumbs, "page": page})
    result.notes.append(
        "One client process, one connection each way, sequential calls; gRPC and HTTP blocks alternate. "
        "The server runs in the benchmark's process on the same 2 cores."
    )
    return result.finish(began)


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, lambda quick: run(QUICK if quick else FULL, quick=quick), argv)


if __name__ == "__main__":
    raise SystemExit(main())
