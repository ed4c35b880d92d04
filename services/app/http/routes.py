"""The HTTP application: middlewares (metrics, errors, auth), the calls into the servicers, the
handlers of every route and the readers of request bodies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.message import Message

from imgsearch.app.http.context import CallContext, CallError
from imgsearch.app.http.transcoding import (
    SERVICE_NAMES,
    _ingest_documents,
    document_from_pairs,
    from_json,
    to_json,
    unary_rpcs,
)
from imgsearch.config import Settings
from imgsearch.errors import ServiceError
from imgsearch.protogen.imagesearch.v1 import indexer_pb2
from imgsearch.rpc import scopes
from imgsearch.rpc.interceptors import ADMIN_METHODS
from imgsearch.rpc.server import scoped_tokens
from imgsearch.telemetry.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = logging.getLogger(__name__)

# gRPC code -> HTTP status, as gRPC-JSON transcoding maps them (FAILED_PRECONDITION: 412, the
# precondition a client can fix, e.g. an empty vocabulary).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

TOKEN_COOKIE = "imgsearch_token"
SCOPE = web.RequestKey("scope", scopes.Scope)  # the caller's token scope, set by the auth middleware
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


# -- errors ----------------------------------------------------------------------------------------


def error_response(code: grpc.StatusCode, message: str, status: int | None = None) -> web.Response:
    body = {"code": code.value[0], "message": message, "details": []}
    return web.json_response(body, status=status or HTTP_STATUS.get(code, 500))


def _code_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, ServiceError):
        return getattr(grpc.StatusCode, exc.code_name, grpc.StatusCode.INTERNAL), exc.message
    if isinstance(exc, CallError):
        return exc.code, exc.message
    return grpc.StatusCode.INTERNAL, "internal error (the server log has the details)"


# -- the application -------------------------------------------------------------------------------


class HttpApi:
    """The routes over the servicers of `deferred` (role -> the Deferred the gRPC server calls)."""

    def __init__(
        self,
        settings: Settings,
        deferred: Mapping[str, Any],
        serving: Callable[[], bool],
        workers: int = 16,
    ):
        self.settings = settings
        self.deferred = deferred
        self.serving = serving
        self.store: Any = None  # set once the store is open (thumbnails are read from it)
        self.rpcs = unary_rpcs()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._files = {path: _web_file(name) for path, (name, _) in WEB_FILES.items()}
        self._scopes = scoped_tokens(settings)  # the token file, as the gRPC server reads it
        self._in_flight = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def application(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.limits.max_message_bytes,
            middlewares=[self._observe, self._errors, self._auth],
        )
        app.router.add_get("/v1/health", self.health)
        app.router.add_post("/v1/indexer:ingest", self.ingest)
        app.router.add_route("*", "/v1/{name:(?:query|indexer):[A-Za-z]+}", self.unary)
        app.router.add_get("/v1/images/{id}/thumbnail", self.thumbnail)
        app.router.add_delete("/v1/images/{id}", self.delete_one)
        for path in WEB_FILES:
            app.router.add_get(path, self.web_file)
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
        """Every failure of an API route becomes the JSON error of its gRPC code."""
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
            code = {404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED}.get(
                exc.status, grpc.StatusCode.INVALID_ARGUMENT
            )
            return error_response(code, f"{request.method} {request.path}: {exc.reason}", status=exc.status)
        except (ServiceError, CallError) as exc:
            code, message = _code_of(exc)
            if code != grpc.StatusCode.OK:
                log.info("HTTP %s %s -> %s: %s", request.method, request.path, code.name, message)
            return error_response(code, message)
        except Exception:
            log.exception("internal error in HTTP %s %s", request.method, request.path)
            return error_response(*_code_of(RuntimeError()))

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """The token check of the gRPC interceptor: IMGSEARCH_TOKEN (full access) or a scoped token
        of IMGSEARCH_TOKENS_FILE, whose scope the call then runs with."""
        request[SCOPE] = scopes.FULL
        token = self.settings.token
        if (token or self._scopes) and request.path.startswith("/v1/") and request.path != "/v1/health":
            given = request.headers.get("Authorization", "")
            if not given and request.cookies.get(TOKEN_COOKIE):
                given = f"Bearer {request.cookies[TOKEN_COOKIE]}"
            found = scopes.scope_of(given, token, self._scopes)
            if found is None:
                raise CallError(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "missing or wrong token (header Authorization: Bearer <token>)",
                )
            request[SCOPE] = found
        return await handler(request)

    # -- calling servicers -------------------------------------------------------------------

    async def _call(self, request: web.Request, role: str, method: str, message: Any) -> Message:
        servicer = self.deferred.get(role)
        if servicer is None:
            raise CallError(grpc.StatusCode.UNIMPLEMENTED, f"this server does not run the {role} service")
        metadata = tuple((k.lower(), v) for k, v in request.headers.items() if k.lower() == "authorization")
        context = CallContext(metadata, f"http:{request.remote or ''}")
        scope = request.get(SCOPE, scopes.FULL)
        full_name = f"/{SERVICE_NAMES[role]}/{method}"
        if full_name in ADMIN_METHODS and not scope.admin:
            raise CallError(grpc.StatusCode.PERMISSION_DENIED, f"{method} needs a token with admin rights")

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
        """Runs blocking work in the pool; past max_concurrent_calls in progress, refuses at once
        (RESOURCE_EXHAUSTED, as the gRPC server's cap does) instead of queueing without end."""
        cap = self.settings.limits.max_concurrent_calls
        if self._in_flight >= cap:
            raise CallError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many calls in progress, over the limit max_concurrent_calls={cap}; retry shortly",
            )
        self._in_flight += 1  # only the event loop's thread counts: no lock needed
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        finally:
            self._in_flight -= 1

    async def _request_message(self, request: web.Request, cls: type[Message]) -> Message:
        """The request message from query parameters (GET), a JSON body or a multipart form."""
        pairs: list[tuple[str, Any]] = list(request.query.items())
        if request.method == "GET" or not request.can_read_body:
            return from_json(document_from_pairs(pairs, cls), cls)
        if request.content_type.startswith("multipart/"):
            pairs += await _form_pairs(request)
            return from_json(document_from_pairs(pairs, cls), cls)
        document = await _json_body(request)
        if pairs:
            if not isinstance(document, dict):
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "expected a JSON object")
            document = {**document_from_pairs(pairs, cls), **document}
        return from_json(document, cls)

    # -- handlers ----------------------------------------------------------------------------

    async def unary(self, request: web.Request) -> web.Response:
        rpc = self.rpcs.get(request.match_info["name"])
        if rpc is None:
            known = ", ".join(f"/v1/{n}" for n in sorted(self.rpcs))
            raise CallError(grpc.StatusCode.NOT_FOUND, f"no method {request.path}; the API has {known}")
        if request.method not in ("GET", "POST"):
            raise CallError(grpc.StatusCode.UNIMPLEMENTED, f"use GET or POST for {request.path}")
        message = await self._request_message(request, rpc.request)
        return web.json_response(to_json(await self._call(request, rpc.role, rpc.method, message)))

    async def ingest(self, request: web.Request) -> web.Response:
        if request.content_type.startswith("multipart/"):
            messages = await _ingest_form(request)
        else:
            messages = _ingest_documents(await request.read())
        limit = self.settings.limits.max_images_per_request
        if not messages:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "no images in the request")
        if len(messages) > limit:
            raise CallError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(messages)} images in one request, over the limit max_images_per_request={limit}",
            )
        response = await self._call(request, "indexer", "Ingest", iter(messages))
        return web.json_response(to_json(response))

    async def delete_one(self, request: web.Request) -> web.Response:
        message = indexer_pb2.DeleteRequest(ids=[request.match_info["id"]])
        return web.json_response(to_json(await self._call(request, "indexer", "Delete", message)))

    async def thumbnail(self, request: web.Request) -> web.StreamResponse:
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

        found = await self._run(read)
        data = next(iter(found.values()), None)  # ids come back normalised (lower case)
        if data is None:
            raise CallError(grpc.StatusCode.NOT_FOUND, f"no thumbnail for image {image_id}")
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=data, content_type=_image_type(data), headers=headers)

    async def health(self, request: web.Request) -> web.Response:
        serving = self.serving()
        return web.json_response(
            {"status": "SERVING" if serving else "NOT_SERVING"}, status=200 if serving else 503
        )

    async def web_file(self, request: web.Request) -> web.Response:
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


def _web_file(name: str) -> bytes:
    return resources.files("imgsearch.app").joinpath("web", name).read_bytes()


def _image_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "image/jpeg"


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not JSON: {exc}") from exc


async def _form_pairs(request: web.Request) -> list[tuple[str, Any]]:
    """(name, value) of every part of a multipart form: text for fields, bytes for files."""
    pairs: list[tuple[str, Any]] = []
    reader = await request.multipart()
    async for part in reader:
        if part.name is None:
            continue
        data = await part.read()
        pairs.append(
            (part.name, bytes(data) if part.filename is not None else data.decode("utf-8", "replace"))
        )
    return pairs


async def _ingest_form(request: web.Request) -> list[indexer_pb2.IngestRequest]:
    """A multipart upload: every file part is one image (uri = its file name); the text fields
    `label` and `metadata.KEY` apply to all of them."""
    files: list[tuple[str, bytes]] = []
    label = ""
    metadata: dict[str, str] = {}
    reader = await request.multipart()
    async for part in reader:
        data = bytes(await part.read())
        if part.filename is not None:
            files.append((part.filename, data))
        elif part.name == "label":
            label = data.decode("utf-8", "replace")
        elif part.name and part.name.startswith("metadata."):
            metadata[part.name[len("metadata.") :]] = data.decode("utf-8", "replace")
        elif part.name:
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown form field {part.name!r}: send image files, `label` and `metadata.KEY`",
            )
    return [
        indexer_pb2.IngestRequest(image=data, uri=name, label=label, metadata=metadata)
        for name, data in files
    ]
