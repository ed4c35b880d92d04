"""`imgsearch serve`: any subset of the three services in one process on one port.

Services present in the process call each other in-process; a missing embedder is reached at
IMGSEARCH_EMBEDDER. The port opens at once with health NOT_SERVING (calls get UNAVAILABLE, "starting")
while models load and the store opens; then health turns SERVING. SIGTERM/SIGINT: health goes
NOT_SERVING, in-flight calls get `grace_seconds` to finish, the store is flushed and closed.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imgsearch.app.http import listen_socket, start_http, web_url
from imgsearch.config import Settings
from imgsearch.embedder.remote import RemoteEmbedder
from imgsearch.embedder.runtime import EmbedderRuntime
from imgsearch.embedder.service import SERVICE_NAME as EMBEDDER
from imgsearch.embedder.service import EmbedderServicer
from imgsearch.errors import ServiceError, Unavailable
from imgsearch.indexer.ingest import load_vocabulary
from imgsearch.indexer.service import SERVICE_NAME as INDEXER
from imgsearch.indexer.service import IndexerServicer
from imgsearch.protogen.imagesearch.v1 import embedder_pb2_grpc, indexer_pb2_grpc, query_pb2_grpc
from imgsearch.query.service import SERVICE_NAME as QUERY
from imgsearch.query.service import QueryServicer
from imgsearch.rpc.policy import CallPolicy, policy_for
from imgsearch.rpc.server import AGE_OUT_CONNECTIONS, Registration, Served, create_server
from imgsearch.telemetry.logs import configure_logging
from imgsearch.telemetry.metrics import start_metrics_server
from imgsearch.vectorstore import open_store

log = logging.getLogger(__name__)

ROLES = ("embedder", "indexer", "query")


def parse_roles(roles: Sequence[str]) -> tuple[str, ...]:
    """[] or ["all"] -> all three; otherwise the named ones, checked and de-duplicated, in order."""
    wanted = {r.strip().lower() for r in roles if r.strip()}
    if not wanted or "all" in wanted:
        return ROLES
    unknown = wanted - set(ROLES)
    if unknown:
        raise ValueError(f"unknown service(s) {sorted(unknown)}; choose from all, {', '.join(ROLES)}")
    return tuple(r for r in ROLES if r in wanted)


class Deferred:
    """Stands in for a servicer until its models and store are loaded; calls before then are
    refused with UNAVAILABLE, which clients retry."""

    def __init__(self, name: str):
        self._name = name
        self._target: Any = None

    def bind(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, method: str) -> Callable:
        def call(request: Any, context: Any) -> Any:
            target = self._target
            if target is None:
                raise Unavailable(f"the {self._name} service is starting (loading models); retry shortly")
            return getattr(target, method)(request, context)

        return call


# Role -> (full service name, the generated function that registers its servicer).
SERVICES: dict[str, tuple[str, Callable]] = {
    "embedder": (EMBEDDER, embedder_pb2_grpc.add_EmbedderServicer_to_server),
    "indexer": (INDEXER, indexer_pb2_grpc.add_IndexerServicer_to_server),
    "query": (QUERY, query_pb2_grpc.add_QueryServicer_to_server),
}


@dataclass
class Components:
    """What the running services share; closed in reverse order of opening."""

    embedder: Any = None
    store: Any = None
    http: Any = None  # the HTTP/JSON API's server (HttpServer), when --http-port is given
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing the rest matters more
                log.exception("error while closing")


def build(settings: Settings, roles: Sequence[str], stopping: threading.Event | None = None) -> Components:
    """Loads the embedder (or connects to remote ones), opens the store, loads the vocabulary;
    on failure closes whatever it had opened (a store left open would keep its directory locked)."""
    parts = Components()
    try:
        _build(parts, settings, roles, stopping or threading.Event())
    except BaseException:
        parts.close()
        raise
    return parts


def _build(parts: Components, settings: Settings, roles: Sequence[str], stopping: threading.Event) -> None:
    if "indexer" in roles or "query" in roles:  # first: a data directory held by another server
        parts.store = open_store(settings)  # fails now, not after the models load
        parts.closers.append(parts.store.close)
    if "embedder" in roles:
        parts.embedder = EmbedderRuntime.load(settings)
        parts.closers.append(parts.embedder.close)
    elif settings.embedder_addresses():
        parts.embedder = RemoteEmbedder(
            settings.embedder_addresses(), token=settings.token, tls_ca=settings.tls_ca
        )
        parts.closers.append(parts.embedder.close)
    else:
        raise ValueError(
            "serving indexer or query without the embedder needs IMGSEARCH_EMBEDDER (address list)"
        )
    if "indexer" in roles or "query" in roles:
        info = _model_info(parts.embedder, stopping)
        parts.store.ensure_collections(info.visual_dim, info.semantic_dim, info.semantic_dim)
        if "indexer" in roles:

            def progress(done: int, total: int) -> None:
                log.info("loading the words collection: %d/%d words", done, total)

            started = time.perf_counter()
            count, loaded = load_vocabulary(
                parts.embedder, parts.store, settings.vocab_size, progress=progress
            )
            took = time.perf_counter() - started
            log.info(
                "words collection: %d words%s", count, f" (loaded now in {took:.1f} s)" if loaded else ""
            )


def _model_info(embedder: Any, stopping: threading.Event, attempts: int = 60):
    """The embedder's model info, waiting for a remote embedder to come up (about 2 minutes, or
    until the process is asked to stop)."""
    for attempt in range(attempts):
        try:
            return embedder.model_info()
        except Unavailable as exc:
            if attempt == attempts - 1:
                raise
            log.info("waiting for the embedder: %s", exc.message)
            if stopping.wait(2.0):
                raise Unavailable("stopped while waiting for the embedder") from exc
    raise AssertionError("unreachable")


def bind(roles: Sequence[str], deferred: dict[str, Deferred], parts: Components, settings: Settings) -> None:
    if "embedder" in roles:
        deferred["embedder"].bind(EmbedderServicer(parts.embedder))
    if "indexer" in roles:
        deferred["indexer"].bind(IndexerServicer(parts.embedder, parts.store, settings))
    if "query" in roles:
        deferred["query"].bind(QueryServicer(parts.embedder, parts.store, settings))


def start(
    settings: Settings,
    roles: Sequence[str],
    stopping: threading.Event | None = None,
    policy: CallPolicy | None = None,
) -> tuple[Served, Components]:
    """Starts serving `roles` and returns once they are SERVING (for tests and embedding in code);
    `policy`: who may call and the caps (default: from `settings`), shared by gRPC and HTTP."""
    roles = parse_roles(roles)
    deferred = {role: Deferred(role) for role in roles}
    registrations = [
        Registration(SERVICES[role][0], functools.partial(SERVICES[role][1], deferred[role]))
        for role in roles
    ]
    policy = policy or policy_for(settings)  # one for both ports: the tokens and caps are the server's
    served = create_server(
        settings,
        registrations,
        extra_options=AGE_OUT_CONNECTIONS if roles == ("embedder",) else (),
        policy=policy,
    )
    http = None
    try:
        if settings.http_port is not None:  # bound now, so a taken port fails before the models load
            http = start_http(
                settings,
                settings.http_port,
                deferred,
                lambda: served.serving,
                policy,
                lambda: served.draining,
            )
        parts = build(settings, roles, stopping)
    except BaseException:
        served.server.stop(0)
        if http is not None:
            http.stop()
        raise
    bind(roles, deferred, parts, settings)
    if http is not None:
        http.api.store = parts.store
        parts.http = http
        parts.closers.append(http.stop)  # closed first: no HTTP call reaches a closed store
    served.set_serving(True)
    log.info("serving %s on port %d", ", ".join(roles), served.port)
    return served, parts


def stop(served: Served, parts: Components, grace: float) -> None:
    """Drains in-flight calls for up to `grace` seconds, then flushes and closes the store; from
    the start of the drain HTTP health answers 503 and HTTP calls are refused, as gRPC's are."""
    served.draining = True
    served.set_serving(False)
    served.health.enter_graceful_shutdown()
    served.server.stop(grace).wait()
    parts.close()


def taken_ports(settings: Settings) -> str:
    """What stops this server from listening, in one line ("" when every port is free): checked
    before anything binds or any model loads."""
    wanted = [("gRPC", settings.port, "--port / IMGSEARCH_PORT")]
    if settings.http_port:
        wanted.append(("HTTP", settings.http_port, "--http-port / IMGSEARCH_HTTP_PORT"))
    if settings.metrics_port:
        wanted.append(("metrics", settings.metrics_port, "--metrics-port / IMGSEARCH_METRICS_PORT"))
    for what, port, flag in wanted:
        if not port:
            continue
        try:
            listen_socket(settings.host, port).close()
        except OSError as exc:
            reason = (
                "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            )
            return (
                f"the {what} port {port} on {settings.host} {reason} (another `imgsearch serve`?); "
                f"stop that process or choose another port with {flag}"
            )
    return ""


def held_store(settings: Settings, roles: Sequence[str]) -> str:
    """What stops this server from opening its embedded store, in one line ("" when nothing does):
    another process holding the data directory's lock, checked before anything binds or logs that
    it listens."""
    if settings.qdrant_url or not ({"indexer", "query"} & set(parse_roles(roles))):
        return ""
    lock = settings.data_dir / "qdrant" / ".lock"
    if not lock.exists():
        return ""
    try:
        with open(lock, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when closed
    except BlockingIOError:
        return (
            f"the data directory {settings.data_dir} is in use by another process (another "
            f"`imgsearch serve`?); stop it or choose another folder with --data / IMGSEARCH_DATA"
        )
    except OSError:
        return ""  # unreadable here: opening the store says why
    return ""


def serve(settings: Settings, roles: Sequence[str]) -> int:
    """Runs until SIGTERM or SIGINT; the exit code for the CLI."""
    configure_logging(settings.log_format)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        taken = taken_ports(settings) or held_store(settings, roles)
    except ValueError as exc:  # an unknown role
        taken = str(exc)
    if taken:
        log.error("cannot start: %s", taken)
        return 2
    start_metrics_server(settings.metrics_port, settings.host)
    try:
        policy = policy_for(settings)  # a token file that cannot be used stops the start here

        def reload(*_: object) -> None:  # SIGHUP: in a thread, a signal handler must not wait on a lock
            threading.Thread(target=policy.tokens.reload, name="token-reload", daemon=True).start()

        signal.signal(signal.SIGHUP, reload)
        served, parts = start(settings, roles, stopping, policy)
    except (ServiceError, ValueError, OSError) as exc:
        log.error("cannot start: %s", getattr(exc, "message", exc))
        return 2
    except RuntimeError as exc:  # grpc's "Failed to bind", should the port be taken meanwhile
        log.error("cannot start: %s", exc)
        return 2
    print(f"imgsearch serving {', '.join(parse_roles(roles))} on port {served.port}", flush=True)
    if parts.http is not None:
        tls = bool(settings.tls_cert and settings.tls_key)
        print(f"web page and HTTP API: {web_url(settings.host, parts.http.port, tls)}", flush=True)
    stopping.wait()
    log.info("stopping: draining calls for up to %.0f s", settings.grace_seconds)
    stop(served, parts, settings.grace_seconds)
    log.info("stopped")
    return 0
