"""The HTTP application: middlewares (metrics, errors, the request guard), the calls into the
servicers, the handlers of every route and the readers of request bodies.

Who may call, the caps and the error mapping are the gRPC server's (imgsearch.rpc.policy, one
CallPolicy per process); what is HTTP's own: which methods and bodies a route takes (reads by
GET or POST, changes by POST or DELETE only, bodies as application/json or multipart where files
are uploaded), the Origin/Host check (origins.py), size and time limits on bodies, and the drain.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import grpc
from aiohttp import BodyPartReader, web
from google.protobuf.message import Message

from imgsearch.app.http.context import CallContext, CallError
from imgsearch.app.http.origins import OriginCheck, allowed_hosts
from imgsearch.app.http.transcoding import (
    SERVICE_NAMES,
    IngestItems,
    document_from_pairs,
    from_json,
    ingest_documents,
    merge_failed,
    parse_json,
    to_json,
    unary_rpcs,
)
from imgsearch.config import Settings
from imgsearch.errors import ServiceError
from imgsearch.protogen.imagesearch.v1 import indexer_pb2
from imgsearch.rpc import scopes
from imgsearch.rpc.policy import CallPolicy, Status, policy_for, status_of
from imgsearch.telemetry.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger(__name__)

# gRPC code -> HTTP status, as gRPC-JSON transcoding maps them (FAILED_PRECONDITION: 412, the
# precondition a client can fix, e.g. an empty vocabulary). RESOURCE_EXHAUSTED is 429 (retry
# later) only when the server is busy; a limit of the request itself is 400 (413 for the body).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

SCOPE = web.RequestKey("scope", scopes.Scope)  # the caller's token scope, set by the guard
WEB_FILES = {  # URL path -> (file in imgsearch/app/web, content type); nothing else is served from disk
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# RPCs that change nothing: answered to GET (query parameters) as well as POST. Every other RPC,
# a method added to the protos included, is a change: POST with a JSON body only.
READ_METHODS = frozenset(
    {f"/{SERVICE_NAMES['query']}/{m}" for m in ("SearchText", "SimilarImages", "TagImage", "SimilarWords")}
    | {f"/{SERVICE_NAMES['query']}/{m}" for m in ("Facet", "GetImages", "ListImages")}
    | {f"/{SERVICE_NAMES['indexer']}/GetStats"}
)
UPLOADS = frozenset({"query:similarImages", "query:tagImage"})  # reads that also take a multipart form
INGEST = f"/{SERVICE_NAMES['indexer']}/Ingest"
DELETE = f"/{SERVICE_NAMES['indexer']}/Delete"
JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/json", "application/x-ndjson", "application/jsonl")
FORM_TYPE = "multipart/form-data"
READING = ("GET", "HEAD", "POST")
CHANGING = ("POST",)
BODY_TIMEOUT = 60.0  # seconds a request body may take to arrive, once its headers have
HEADER_TIMEOUT = 15.0  # seconds a connection may take to send a request's headers (or sit idle)


def error_response(
    code: grpc.StatusCode, message: str, status: int | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """google.rpc.Status as JSON, with the HTTP status of its code."""
    body = {"code": code.value[0], "message": message, "details": []}
    return web.json_response(body, status=status or HTTP_STATUS.get(code, 500), headers=headers)


def status_response(status: Status) -> web.Response:
    if status.busy:
        return error_response(status.code, status.message, 429, {"Retry-After": "1"})
    return error_response(status.code, status.message)


class MethodNotAllowed(CallError):
    """A method the route does not take: 405 with the methods it does take (Allow)."""

    def __init__(self, method: str, path: str, allowed: tuple[str, ...]):
        super().__init__(grpc.StatusCode.UNIMPLEMENTED, f"{path} takes {', '.join(allowed)}, not {method}")
        self.allowed = allowed


class BodyError(CallError):
    """A body the route cannot take, answered with its own HTTP status (408, 413, 415)."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int):
        super().__init__(code, message)
        self.http_status = http_status


class HttpApi:
    """The routes over the servicers of `deferred` (role -> the Deferred the gRPC server calls)."""

    def __init__(
        self,
        settings: Settings,
        deferred: Mapping[str, Any],
        serving: Callable[[], bool],
        policy: CallPolicy | None = None,
        draining: Callable[[], bool] | None = None,
        workers: int | None = None,
    ):
        """`serving`: whether the services are up; `draining`: whether the server is stopping
        (then every API call but health is refused, as gRPC refuses new calls); `policy`: the
        gRPC server's (tokens and caps shared by both ports)."""
        self.settings = settings
        self.deferred = deferred
        self.serving = serving
        self.draining = draining or (lambda: False)
        self.policy = policy or policy_for(settings)
        tls = bool(settings.tls_cert and settings.tls_key)
        self.origins = OriginCheck(
            allowed_hosts(settings.http_hosts, settings.host), "https" if tls else "http"
        )
        self.store: Any = None  # set once the store is open (thumbnails are read from it)
        self.rpcs = unary_rpcs()
        self.body_timeout = BODY_TIMEOUT
        self.header_timeout = HEADER_TIMEOUT
        workers = workers or settings.limits.max_concurrent_calls
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._files = {path: _web_file(name) for path, (name, _) in WEB_FILES.items()}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def application(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.limits.max_message_bytes,
            middlewares=[self._observe, self._errors, self._guard],
        )
        app.router.add_route("*", "/v1/health", self.health)
        app.router.add_route("*", "/v1/indexer:ingest", self.ingest)
        app.router.add_route("*", "/v1/{name:(?:query|indexer):[A-Za-z]+}", self.unary)
        app.router.add_route("*", "/v1/images/{id}/thumbnail", self.thumbnail)
        app.router.add_route("*", "/v1/images/{id}", self.delete_one)
        for path in WEB_FILES:
            app.router.add_route("*", path, self.web_file)
        return app

    # -- middlewares -------------------------------------------------------------------------

    @web.middleware
    async def _observe(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            if request.match_info.get("name") in self.rpcs:  # one series per RPC, never per client's path
                name = request.path
            HTTP_REQUESTS.labels(request.method, name, str(status)).inc()
            HTTP_LATENCY.labels(request.method, name).observe(time.perf_counter() - start)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Every failure becomes the JSON error of its gRPC code (the policy's mapping)."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge as exc:
            return error_response(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request body over the limit max_message_bytes={self.settings.limits.max_message_bytes}"
                f" ({exc.text})",
                status=413,
            )
        except web.HTTPException as exc:
            if not request.path.startswith("/v1/"):
                raise
            code = grpc.StatusCode.NOT_FOUND if exc.status == 404 else grpc.StatusCode.INVALID_ARGUMENT
            return error_response(code, f"{request.method} {request.path}: {exc.reason}", status=exc.status)
        except MethodNotAllowed as exc:
            return error_response(exc.code, exc.message, 405, {"Allow": ", ".join(exc.allowed)})
        except BodyError as exc:
            return error_response(exc.code, exc.message, exc.http_status)
        except (ServiceError, CallError) as exc:
            status = status_of(exc)
            log.info("HTTP %s %s -> %s: %s", request.method, request.path, status.code.name, status.message)
            return status_response(status)
        except Exception as exc:  # noqa: BLE001 - every error must become a status
            log.exception("internal error in HTTP %s %s", request.method, request.path)
            return status_response(status_of(exc))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Before any body is read: the host and origin (origins.py), the drain, and the token
        (the policy's check: IMGSEARCH_TOKEN, or a scoped token whose scope the call runs with).
        The token travels only in the Authorization header, never in a cookie."""
        path = request.path
        if path == "/v1/health":
            return await handler(request)
        self.origins.check(path, request.headers)
        request[SCOPE] = scopes.FULL
        if path.startswith("/v1/"):
            if self.draining():
                raise CallError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down; retry on another")
            request[SCOPE] = self.policy.authorize(
                self._method_of(request), request.headers.get("Authorization", "")
            )
        return await handler(request)

    def _method_of(self, request: web.Request) -> str | None:
        """The full gRPC name of the RPC a route makes (None: thumbnails, no RPC)."""
        rpc = self.rpcs.get(request.match_info.get("name", ""))
        if rpc is not None:
            return f"/{SERVICE_NAMES[rpc.role]}/{rpc.method}"
        if request.path == "/v1/indexer:ingest":
            return INGEST
        if request.match_info.get("id") is not None and not request.path.endswith("/thumbnail"):
            return DELETE
        return None

    # -- calling servicers -------------------------------------------------------------------

    async def _call(self, request: web.Request, role: str, method: str, message: Any) -> Message:
        servicer = self.deferred.get(role)
        if servicer is None:
            raise CallError(grpc.StatusCode.UNIMPLEMENTED, f"this server does not run the {role} service")
        metadata = tuple((k.lower(), v) for k, v in request.headers.items() if k.lower() == "authorization")
        context = CallContext(metadata, f"http:{request.remote or ''}")
        scope = request.get(SCOPE, scopes.FULL)

        def run() -> Message:
            try:
                with scopes.acting_as(scope):
                    response = getattr(servicer, method)(message, context)
            except (ServiceError, CallError):
                raise
            except Exception as exc:  # e.g. the generated base's NotImplementedError after set_code
                if context.code() not in (None, grpc.StatusCode.OK):
                    raise CallError(context.code(), context.details()) from exc
                raise
            code = context.code()
            if code not in (None, grpc.StatusCode.OK):
                raise CallError(code, context.details())
            return response

        return await self._run(run)

    async def _run(self, work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def _admit(self, request: web.Request, method: str | None) -> Callable[[], None]:
        """A slot under the server's caps (shared with gRPC), taken before the body is read: a
        full server refuses at once, without reading what it would not serve."""
        limit = self.settings.limits.max_message_bytes
        if request.content_length is not None and request.content_length > limit:
            raise BodyError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request body of {request.content_length} bytes, over the limit max_message_bytes={limit}",
                413,
            )
        return self.policy.enter(method)

    async def _read(self, reading: Any) -> Any:
        """Awaits a body read, bounded by `body_timeout` (a client that sends slowly is cut off)."""
        try:
            async with asyncio.timeout(self.body_timeout):
                return await reading
        except TimeoutError:
            raise BodyError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the request body did not arrive within {self.body_timeout:g} s",
                408,
            ) from None

    async def _request_message(self, request: web.Request, name: str, cls: type[Message]) -> Message:
        """The request message from query parameters (GET), a JSON body or a multipart form."""
        pairs: list[tuple[str, Any]] = list(request.query.items())
        if request.method in ("GET", "HEAD"):
            return from_json(document_from_pairs(pairs, cls), cls)
        kind = _body_kind(request)
        if kind == FORM_TYPE and name in UPLOADS:
            pairs += await self._read(_form_pairs(request, self.settings.limits.max_message_bytes))
            return from_json(document_from_pairs(pairs, cls), cls)
        if kind == FORM_TYPE:
            raise _unsupported(request, "application/json")
        # a read changes nothing, so its body is read as JSON whatever it is labelled (`curl -d`);
        # a change got here only as application/json (unary)
        raw = await self._read(request.read())
        document = parse_json(raw) if raw.strip() else {}
        if pairs:
            if not isinstance(document, dict):
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "expected a JSON object")
            document = {**document_from_pairs(pairs, cls), **document}
        return from_json(document, cls)

    # -- handlers ----------------------------------------------------------------------------

    async def unary(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        rpc = self.rpcs.get(name)
        if rpc is None:
            known = ", ".join(f"/v1/{n}" for n in sorted(self.rpcs))
            raise CallError(grpc.StatusCode.NOT_FOUND, f"no method {request.path}; the API has {known}")
        full_name = f"/{SERVICE_NAMES[rpc.role]}/{rpc.method}"
        reads = full_name in READ_METHODS
        _allow(request, READING if reads else CHANGING)
        if request.method == "POST" and not reads and _body_kind(request) not in JSON_TYPES:
            raise _unsupported(request, "application/json")
        release = self._admit(request, full_name)
        try:
            message = await self._request_message(request, name, rpc.request)
            return web.json_response(to_json(await self._call(request, rpc.role, rpc.method, message)))
        finally:
            release()

    async def ingest(self, request: web.Request) -> web.Response:
        _allow(request, CHANGING)
        kind = _body_kind(request)
        if kind not in NDJSON_TYPES and kind != FORM_TYPE:
            raise _unsupported(
                request, "application/json (one object, a list, or NDJSON) or multipart/form-data"
            )
        release = self._admit(request, INGEST)
        try:
            if kind == FORM_TYPE:
                requests = await self._read(_ingest_form(request, self.settings.limits.max_message_bytes))
                items = IngestItems(requests, list(range(len(requests))), [])
            else:
                items = ingest_documents(await self._read(request.read()))
            limit = self.settings.limits.max_images_per_request
            if not items.total:
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "no images in the request")
            if items.total > limit:
                raise CallError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{items.total} images in one request, over the limit max_images_per_request={limit}",
                )
            if items.requests:
                response = await self._call(request, "indexer", "Ingest", iter(items.requests))
            else:
                response = indexer_pb2.IngestResponse()
            return web.json_response(to_json(merge_failed(response, items)))
        finally:
            release()

    async def delete_one(self, request: web.Request) -> web.Response:
        _allow(request, ("DELETE",))
        release = self._admit(request, DELETE)
        try:
            message = indexer_pb2.DeleteRequest(ids=[request.match_info["id"]])
            return web.json_response(to_json(await self._call(request, "indexer", "Delete", message)))
        finally:
            release()

    async def thumbnail(self, request: web.Request) -> web.StreamResponse:
        _allow(request, ("GET", "HEAD"))
        store = self.store
        if store is None and self.serving():
            raise CallError(
                grpc.StatusCode.UNIMPLEMENTED, "this server runs neither indexer nor query (no store)"
            )
        if store is None:
            raise CallError(
                grpc.StatusCode.UNAVAILABLE, "the store is not open yet (starting); retry shortly"
            )
        image_id = request.match_info["id"]
        namespace = request.query.get("namespace", "")
        scope = request.get(SCOPE, scopes.FULL)

        def read() -> dict[str, bytes]:
            with scopes.acting_as(scope):
                return store.thumbnails([image_id], scopes.require("read", namespace))

        release = self._admit(request, None)
        try:
            found = await self._run(read)
        finally:
            release()
        data = next(iter(found.values()), None)  # ids come back normalised (lower case)
        if data is None:
            raise CallError(grpc.StatusCode.NOT_FOUND, f"no thumbnail for image {image_id}")
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=3600", "Vary": "Authorization"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=data, content_type=_image_type(data), headers=headers)

    async def health(self, request: web.Request) -> web.Response:
        """200 SERVING, or 503 while starting and during the drain (as gRPC health answers)."""
        _allow(request, ("GET", "HEAD"))
        serving = self.serving() and not self.draining()
        return web.json_response(
            {"status": "SERVING" if serving else "NOT_SERVING"}, status=200 if serving else 503
        )

    async def web_file(self, request: web.Request) -> web.Response:
        _allow(request, ("GET", "HEAD"))
        name, content_type = WEB_FILES[request.path]
        body = self._files[request.path]
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if name.endswith(".html"):
            headers["Content-Security-Policy"] = PAGE_POLICY
            headers["Referrer-Policy"] = "no-referrer"
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, headers={**headers, "Content-Type": content_type})


def _allow(request: web.Request, methods: tuple[str, ...]) -> None:
    if request.method not in methods:
        raise MethodNotAllowed(request.method, request.path, methods)


def _body_kind(request: web.Request) -> str:
    """The body's media type ("" when the request has no Content-Type)."""
    return request.content_type if "Content-Type" in request.headers else ""


def _unsupported(request: web.Request, wanted: str) -> BodyError:
    given = request.headers.get("Content-Type", "none")
    return BodyError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{request.method} {request.path} takes a body of Content-Type {wanted}, not {given[:80]}",
        415,
    )


def _web_file(name: str) -> bytes:
    return resources.files("imgsearch.app").joinpath("web", name).read_bytes()


def _image_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "image/jpeg"


def _malformed(exc: Exception) -> CallError:
    return CallError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed multipart/form-data body: {exc}"[:300])


async def _parts(request: web.Request, limit: int) -> Any:
    """(part, its bytes) of each part of a multipart body, at most `limit` bytes in all; a body
    without a boundary, with a wrong one or never closed is INVALID_ARGUMENT."""
    try:
        reader = await request.multipart()
    except Exception as exc:  # noqa: BLE001 - aiohttp raises several kinds for a bad header
        raise _malformed(exc) from exc
    total = 0
    while True:
        try:
            part = await reader.next()
            if part is None:
                return
            if not isinstance(part, BodyPartReader):
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "nested multipart bodies are not taken")
            chunks = []
            while chunk := await part.read_chunk(1 << 16):
                total += len(chunk)
                if total > limit:
                    raise BodyError(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"request body over the limit max_message_bytes={limit}",
                        413,
                    )
                chunks.append(chunk)
        except CallError:
            raise
        except Exception as exc:  # noqa: BLE001 - a truncated or garbled body
            raise _malformed(exc) from exc
        yield part, b"".join(chunks)


async def _form_pairs(request: web.Request, limit: int) -> list[tuple[str, Any]]:
    """(name, value) of every part of a multipart form: text for fields, bytes for files."""
    pairs: list[tuple[str, Any]] = []
    async for part, data in _parts(request, limit):
        if part.name is None:
            continue
        pairs.append((part.name, data if part.filename is not None else data.decode("utf-8", "replace")))
    if not pairs:
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "the multipart/form-data body has no fields")
    return pairs


async def _ingest_form(request: web.Request, limit: int) -> list[indexer_pb2.IngestRequest]:
    """A multipart upload: every file part is one image (uri = its file name); the text fields
    `label` and `metadata.KEY` apply to all of them."""
    files: list[tuple[str, bytes]] = []
    label = ""
    metadata: dict[str, str] = {}
    async for part, data in _parts(request, limit):
        if part.filename is not None:
            files.append((part.filename, data))
        elif part.name == "label":
            label = data.decode("utf-8", "replace")
        elif part.name and part.name.startswith("metadata."):
            key = part.name[len("metadata.") :]
            if not key.strip():
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "a `metadata.KEY` field needs a key")
            metadata[key] = data.decode("utf-8", "replace")
        elif part.name:
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown form field {part.name!r}: send image files, `label` and `metadata.KEY`",
            )
    return [
        indexer_pb2.IngestRequest(image=data, uri=name, label=label, metadata=metadata)
        for name, data in files
    ]
