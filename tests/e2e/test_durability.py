"""What `imgsearch serve` keeps and refuses as a process: every acknowledged image survives
`kill -9` (after an ingest, and in the middle of one), a full disk refuses writes but keeps
serving and never kills the server, and a partial TLS configuration never serves plaintext."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from imgsearch.app.process import ServerProcess
from imgsearch.protogen.imagesearch.v1 import indexer_pb2, query_pb2
from tests.e2e.conftest import stubs_for

pytestmark = pytest.mark.slow

NEW, DUPLICATE, FAILED = (
    indexer_pb2.IngestResult.NEW,
    indexer_pb2.IngestResult.DUPLICATE,
    indexer_pb2.IngestResult.FAILED,
)


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMGSEARCH_", "QDRANT_")) or k == "IMGSEARCH_CACHE"
    }
    env.update(IMGSEARCH_VOCAB_SIZE="5000", **extra)
    return env


def _requests(photos: dict[str, Path], names: list[str]) -> list[indexer_pb2.IngestRequest]:
    return [
        indexer_pb2.IngestRequest(image=photos[n].read_bytes(), uri=str(photos[n]), label=n) for n in names
    ]


def _findable(stubs, photos: dict[str, Path], acknowledged: dict[str, str]) -> None:
    """Every acknowledged image is stored under its id and found by its own bytes with score ~1."""
    for name, pid in acknowledged.items():
        hits = stubs.query.SimilarImages(
            query_pb2.SimilarImagesRequest(image=photos[name].read_bytes(), k=1), timeout=30
        ).results
        assert hits and hits[0].id == pid and hits[0].score > 0.99, name


def test_partial_tls_refuses_to_start(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not used: the key is missing")
    server = ServerProcess(
        tmp_path / "data", env=_env(IMGSEARCH_TLS_CERT=str(cert)), log_path=tmp_path / "log"
    )
    try:
        server.proc.wait(60)
    finally:
        server.kill()
    assert server.proc.returncode == 2
    assert "IMGSEARCH_TLS_KEY is not" in (tmp_path / "log").read_text()
    assert not server.serving(timeout=1)


def test_kill_9_keeps_every_acknowledged_image(tmp_path, photos):
    names = sorted(photos)
    first, second = names[:8], names[8:16]
    server = ServerProcess(tmp_path / "data", env=_env(), log_path=tmp_path / "serve.log").wait_serving()
    try:
        assert "TLS off (plaintext), token off" in server.tail(40)  # the start-up log says what is on
        stubs = stubs_for(server.addr)
        acked = stubs.indexer.Ingest(iter(_requests(photos, first)), timeout=120)
        assert acked.ingested == len(first)
        acknowledged = {n: r.id for n, r in zip(first, acked.results, strict=True)}
        server.kill()  # kill -9 right after the acknowledgement
        stubs.channel.close()

        server = server.restarted().wait_serving()
        stubs = stubs_for(server.addr)
        _findable(stubs, photos, acknowledged)

        # kill -9 in the middle of a stream: half the images sent, the call never answered
        sent = threading.Event()

        def half_then_wait() -> Iterator[indexer_pb2.IngestRequest]:
            yield from _requests(photos, second[:4])
            sent.set()
            time.sleep(60)

        future = stubs.indexer.Ingest.future(half_then_wait(), timeout=120)
        assert sent.wait(30)
        time.sleep(2.0)  # let the server take them in
        server.kill()
        with pytest.raises(grpc.RpcError):
            future.result(timeout=30)
        stubs.channel.close()

        server = server.restarted().wait_serving()
        stubs = stubs_for(server.addr)
        _findable(stubs, photos, acknowledged)
        # re-ingesting everything is exact: the acknowledged ones are duplicates with their ids, the
        # rest new or duplicate (whatever the killed stream had stored), and nothing is stored twice
        again = stubs.indexer.Ingest(iter(_requests(photos, first + second)), timeout=120)
        assert again.failed == 0
        by_name = dict(zip(first + second, again.results, strict=True))
        assert all(by_name[n].status == DUPLICATE and by_name[n].id == acknowledged[n] for n in first)
        stats = stubs.indexer.GetStats(indexer_pb2.GetStatsRequest(), timeout=10)
        assert stats.images == len(first) + len(second)
        _findable(stubs, photos, {n: r.id for n, r in by_name.items()})
        stubs.channel.close()
    finally:
        server.terminate()


def _mount_tmpfs(path: Path, mb: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (a small disk to fill)")
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(path)], capture_output=True, text=True
    )
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


def _mount_ext4(image: Path, path: Path, mb: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a loop device (a small disk to fill)")
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("no mkfs.ext4 to make a small disk")
    with open(image, "wb") as f:
        f.truncate(mb << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    r = subprocess.run(["mount", "-o", "loop", str(image), str(path)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a loop device here: {r.stderr.strip()}")


def _unmount(path: Path) -> None:
    for _ in range(5):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        time.sleep(1)


def _fill(path: Path, leave_mb: int) -> Path:
    st = os.statvfs(path)
    filler = path / "filler.bin"
    with open(filler, "wb") as f:
        for _ in range((st.f_bavail * st.f_frsize) // (1 << 20) - leave_mb):
            f.write(b"\0" * (1 << 20))
    return filler


def test_full_disk_refuses_writes_keeps_serving_and_restarts_with_what_was_acknowledged(tmp_path, photos):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount_tmpfs(disk, 256)
    names = sorted(photos)[:6]
    server = None
    try:
        server = ServerProcess(disk, env=_env(), log_path=tmp_path / "serve1.log").wait_serving()
        stubs = stubs_for(server.addr)
        acked = stubs.indexer.Ingest(iter(_requests(photos, names)), timeout=120)
        assert acked.ingested == len(names)
        filler = _fill(disk, leave_mb=6)

        refused = stubs.indexer.Ingest(iter(_requests(photos, sorted(photos)[6:9])), timeout=120)
        assert refused.failed == 3 and refused.ingested == 0
        assert {r.error.code for r in refused.results} == {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
        assert "disk nearly full" in refused.results[0].error.message
        upsert = indexer_pb2.UpsertVectorsRequest(
            points=[
                indexer_pb2.PointVectors(
                    id="6f1c1f2e-8d5a-5b7e-9a43-2c0d6e1b7a91", visual=[1.0] * 1280, semantic=[1.0] * 50
                )
            ]
        )
        with pytest.raises(grpc.RpcError) as err:
            stubs.indexer.UpsertVectors(upsert, timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # reads keep working, and the server is up
        assert server.serving()
        _findable(stubs, photos, {n: r.id for n, r in zip(names, acked.results, strict=True)})
        assert stubs.indexer.GetStats(indexer_pb2.GetStatsRequest(), timeout=10).images == len(names)
        stubs.channel.close()
        server.terminate()

        # on the still-full disk a restart refuses to open the store, cleanly: never a signal
        full = ServerProcess(disk, env=_env(), log_path=tmp_path / "serve2.log")
        full.proc.wait(120)
        assert full.proc.returncode == 2
        assert "not enough free disk space" in full.tail()
        full.kill()

        filler.unlink()
        server = ServerProcess(disk, env=_env(), log_path=tmp_path / "serve3.log").wait_serving()
        stubs = stubs_for(server.addr)
        assert stubs.indexer.GetStats(indexer_pb2.GetStatsRequest(), timeout=10).images == len(names)
        _findable(stubs, photos, {n: r.id for n, r in zip(names, acked.results, strict=True)})
        stubs.channel.close()
    finally:
        if server is not None:
            server.terminate()
        _unmount(disk)


def test_on_a_nearly_full_disk_a_restart_serves_what_was_stored(tmp_path, photos):
    """On a disk file system (a loop-mounted ext4) opening the store needs no more than a small
    reserve: restarted with 24 MB free, the server serves every acknowledged image and still
    refuses writes."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount_ext4(tmp_path / "ext4.img", disk, 300)
    names = sorted(photos)[:5]
    server = None
    try:
        server = ServerProcess(disk / "data", env=_env(), log_path=tmp_path / "serve1.log").wait_serving()
        stubs = stubs_for(server.addr)
        acked = stubs.indexer.Ingest(iter(_requests(photos, names)), timeout=120)
        assert acked.ingested == len(names)
        acknowledged = {n: r.id for n, r in zip(names, acked.results, strict=True)}
        stubs.channel.close()
        server.terminate()
        _fill(disk, leave_mb=24)

        server = ServerProcess(disk / "data", env=_env(), log_path=tmp_path / "serve2.log").wait_serving()
        stubs = stubs_for(server.addr)
        assert stubs.indexer.GetStats(indexer_pb2.GetStatsRequest(), timeout=10).images == len(names)
        _findable(stubs, photos, acknowledged)
        refused = stubs.indexer.Ingest(iter(_requests(photos, sorted(photos)[5:7])), timeout=120)
        assert refused.failed == 2
        assert {r.error.code for r in refused.results} == {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
        stubs.channel.close()
    finally:
        if server is not None:
            server.terminate()
        _unmount(disk)
