"""The HTTP/JSON API and the web page, served by the same process as the gRPC services they front.

Every route calls the very servicer the gRPC server calls (through the same `Deferred`, so "still
loading" is the same UNAVAILABLE), with the request and response messages of the protos written
in the protobuf JSON mapping (`json_format`): field names in lowerCamelCase (snake_case accepted),
enums by name, bytes in base64, 64-bit integers as strings. One document describes both.

Routes (gRPC-JSON transcoding style, `POST` with a JSON body or `GET` with query parameters):
  /v1/query:searchText  :similarImages  :tagImage  :similarWords      (every Query RPC)
  /v1/indexer:delete  :getStats  :loadVocabulary  :upsertVectors
  POST /v1/indexer:ingest   JSON (one IngestRequest, a list, or NDJSON) or multipart/form-data
  GET  /v1/images/{id}/thumbnail   the thumbnail the indexer stored at ingest (by id, from the store)
  DELETE /v1/images/{id}
  GET  /v1/health           200 {"status": "SERVING"} or 503
  GET  /                    the web page (static files shipped in imgsearch/app/web)
A failure answers the HTTP status of its gRPC code with `{"code": int, "message": str, "details": []}`
(google.rpc.Status as JSON). With a token configured, /v1/ routes other than health want
`Authorization: Bearer <token>` (or the page's same-site cookie `imgsearch_token`).

aiohttp (asyncio) takes the connections on one thread; the servicer calls, which block on the
model and the store, run in a thread pool, as gRPC's do.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

from imgsearch.config import Settings
from imgsearch.errors import ServiceError
from imgsearch.protogen.imagesearch.v1 import indexer_pb2, query_pb2
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
CALL_TIMEOUT = 600.0  # what a servicer sees as time_remaining(); slow calls are ingests


class CallError(Exception):
    """A call ended with a gRPC status (a servicer's context.abort, a refused token, a bad body)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class CallContext:
    """What a servicer may use of grpc.ServicerContext, for a call that came over HTTP."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], peer: str, timeout: float = CALL_TIMEOUT):
        self._metadata = metadata
        self._peer = peer
        self._deadline = time.monotonic() + timeout
        self._code: grpc.StatusCode | None = None
        self._details = ""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise CallError(code, details)

    def abort_with_status(self, status: Any) -> None:
        raise CallError(status.code, status.details)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def is_active(self) -> bool:
        return self.time_remaining() > 0

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def send_initial_metadata(self, metadata: Any) -> None:
        pass

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass


@dataclass(frozen=True)
class Rpc:
    """One unary RPC as an HTTP route: the role that serves it, the servicer method, its request type."""

    role: str
    method: str
    request: type[Message]


SERVICE_NAMES = {
    "query": query_pb2.DESCRIPTOR.services_by_name["Query"].full_name,
    "indexer": indexer_pb2.DESCRIPTOR.services_by_name["Indexer"].full_name,
}


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def unary_rpcs() -> dict[str, Rpc]:
    """Route name (`query:searchText`) -> Rpc for every unary method of the Query and Indexer
    services, read from the protos (a method added there is served here too)."""
    out: dict[str, Rpc] = {}
    for role, module, service in (("query", query_pb2, "Query"), ("indexer", indexer_pb2, "Indexer")):
        for m in module.DESCRIPTOR.services_by_name[service].methods:
            if m.client_streaming or m.server_streaming:
                continue
            request = _message_class(module, m.input_type.name)
            out[f"{role}:{_camel(m.name)}"] = Rpc(role, m.name, request)
    return out


def _message_class(module: Any, name: str) -> type[Message]:
    return getattr(module, name)


# -- JSON <-> messages -----------------------------------------------------------------------------


def to_json(message: Message) -> dict:
    """A response message in the protobuf JSON mapping, every field present (empty lists included)
    but the hits' `thumbnail` when none was asked for.

    What `json_format.MessageToDict(message, always_print_fields_with_no_presence=True)` gives, by a
    plan made once per message type: MessageToDict walks the descriptors on every call, which cost
    0.3 ms for ten hits, as much as the search itself (tests compare the two)."""
    return _plan(message.DESCRIPTOR)(message)


_PLANS: dict[Any, Callable[[Message], dict]] = {}
_SIMPLE = {FieldDescriptor.CPPTYPE_STRING, FieldDescriptor.CPPTYPE_BOOL, FieldDescriptor.CPPTYPE_INT32}
_SIMPLE |= {FieldDescriptor.CPPTYPE_UINT32, FieldDescriptor.CPPTYPE_DOUBLE}


def _plan(descriptor: Any) -> Callable[[Message], dict]:
    plan = _PLANS.get(descriptor)
    if plan is None:
        plan = _PLANS[descriptor] = _make_plan(descriptor)
    return plan


def _value_converter(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """How one value of `field` becomes JSON; None for the types the plan leaves to json_format."""
    if field.type == FieldDescriptor.TYPE_BYTES:
        return lambda v: base64.b64encode(v).decode("ascii")
    if field.cpp_type in _SIMPLE:
        return lambda v: v
    if field.cpp_type == FieldDescriptor.CPPTYPE_FLOAT:
        return _float32
    if field.cpp_type in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64):
        return str
    if field.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        values = field.enum_type.values_by_number
        return lambda v: values[v].name if v in values else v
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE and field.message_type.full_name.startswith(
        "imagesearch."
    ):
        return lambda v: _plan(v.DESCRIPTOR)(v)
    return None


def _make_plan(descriptor: Any) -> Callable[[Message], dict]:
    steps = []
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            convert = _value_converter(value_field)
            if (
                convert is None
                or field.message_type.fields_by_name["key"].cpp_type != FieldDescriptor.CPPTYPE_STRING
            ):
                return _slow
            steps.append((field, "map", convert))
            continue
        convert = _value_converter(field)
        if convert is None:
            return _slow
        if field.is_repeated:
            kind = "repeated"
        elif field.has_presence:  # sub-messages, oneof members, `optional` scalars: only when set
            kind = "present"
        else:
            kind = "plain"
        steps.append((field, kind, convert))
    thumbnail = descriptor.full_name == "imagesearch.v1.ImageHit"

    def convert_message(message: Message) -> dict:
        out: dict[str, Any] = {}
        for field, kind, convert in steps:
            value = getattr(message, field.name)
            if kind == "plain":
                out[field.json_name] = convert(value)
            elif kind == "repeated":
                out[field.json_name] = [convert(v) for v in value]
            elif kind == "map":
                out[field.json_name] = {k: convert(v) for k, v in value.items()}
            elif message.HasField(field.name):
                out[field.json_name] = convert(value)
        if thumbnail and out.get("thumbnail") == "":
            del out["thumbnail"]
        return out

    return convert_message


def _float32(value: float) -> Any:
    if math.isfinite(value):
        return type_checkers.ToShortestFloat(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _slow(message: Message) -> dict:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def from_json(document: Any, cls: type[Message]) -> Message:
    """A request message from its JSON form; INVALID_ARGUMENT naming what does not fit."""
    if not isinstance(document, dict):
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"expected a JSON object ({cls.DESCRIPTOR.name})")
    try:
        return json_format.ParseDict(document, cls())
    except json_format.ParseError as exc:
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"bad {cls.DESCRIPTOR.name}: {exc}") from exc


def _field(descriptor: Any, name: str) -> FieldDescriptor | None:
    return descriptor.fields_by_name.get(name) or next(
        (f for f in descriptor.fields if f.json_name == name), None
    )


def _scalar(field: FieldDescriptor, text: str) -> Any:
    """A query-parameter or form value as the JSON value its field wants."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        return text.strip().lower() in ("1", "true", "yes", "on")
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        try:
            return float(text)
        except ValueError:
            return text  # ParseDict explains
    return text  # ints are accepted as strings; bytes are base64 text; enums by name


def document_from_pairs(pairs: Iterable[tuple[str, Any]], cls: type[Message]) -> dict:
    """A JSON document from `name=value` pairs (query parameters, form fields): dotted names reach
    into sub-messages (`filter.label`), `map.key` into maps (`filter.metadata.camera=x`), repeated
    names build lists. Values that are bytes (uploaded files) go into bytes fields as base64."""
    document: dict[str, Any] = {}
    for name, value in pairs:
        descriptor, target, parts = cls.DESCRIPTOR, document, name.split(".")
        for i, part in enumerate(parts):
            field = _field(descriptor, part) if descriptor is not None else None
            if field is None:
                raise CallError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unknown field {name!r} for {cls.DESCRIPTOR.name}",
                )
            last = i == len(parts) - 1
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key = ".".join(parts[i + 1 :])
                if not key:
                    raise CallError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"{name}: give a key, as {name}.KEY=VALUE"
                    )
                target.setdefault(field.json_name, {})[key] = _text(value)
                break
            if field.message_type is not None and not last:
                target = target.setdefault(field.json_name, {})
                descriptor = field.message_type
                continue
            if not last:
                raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"{name}: {part} has no fields")
            item = (
                base64.b64encode(value).decode() if isinstance(value, bytes) else _scalar(field, _text(value))
            )
            if field.is_repeated:
                target.setdefault(field.json_name, []).append(item)
            else:
                target[field.json_name] = item
    return document


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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


def _ingest_documents(raw: bytes) -> list[indexer_pb2.IngestRequest]:
    """IngestRequests from JSON: one object, a list of objects, or one object per line (NDJSON)."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return []
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not JSON: {exc}") from exc
    if isinstance(document, dict) and isinstance(document.get("requests"), list):
        document = document["requests"]
    documents = document if isinstance(document, list) else [document]
    try:
        return [from_json(d, indexer_pb2.IngestRequest) for d in documents]
    except binascii.Error as exc:
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"bad base64 in `image`: {exc}") from exc


# -- serving ---------------------------------------------------------------------------------------


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `host` ("[::]", "0.0.0.0" or "" = every interface, both IP families
    where the system has them); OSError (EADDRINUSE) at once when the port is taken."""
    plain = host.strip("[]")
    if plain in ("", "::", "0.0.0.0"):
        if socket.has_dualstack_ipv6():
            return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        return socket.create_server(("0.0.0.0", port))
    family = socket.AF_INET6 if ":" in plain else socket.AF_INET
    if plain == "localhost":
        plain, family = "127.0.0.1", socket.AF_INET
    return socket.create_server((plain, port), family=family)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS with the gRPC port's certificate and key when TLS is configured: the token never
    travels in plain text on one port while the other is encrypted."""
    if not (settings.tls_cert and settings.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


class HttpServer:
    """The aiohttp application on its own event-loop thread."""

    def __init__(self, api: HttpApi, sock: socket.socket):
        self.api = api
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)
        self._thread.start()
        self._runner = web.AppRunner(
            api.application(), access_log=None, handle_signals=False, shutdown_timeout=5.0
        )
        self._submit(self._runner.setup())
        self._submit(web.SockSite(self._runner, sock, ssl_context=tls_context(api.settings)).start())

    def _submit(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        """Stops taking connections, lets in-flight requests finish (a few seconds), ends the thread."""
        try:
            self._submit(self._runner.cleanup())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self.api.close()


def start_http(
    settings: Settings, port: int, deferred: Mapping[str, Any], serving: Callable[[], bool]
) -> HttpServer:
    """Binds `port` on settings.host (OSError when taken, before any model loads) and serves."""
    sock = listen_socket(settings.host, port)
    try:
        server = HttpServer(HttpApi(settings, deferred, serving), sock)
    except BaseException:
        sock.close()
        raise
    log.info("HTTP API and web page on %s", web_url(settings.host, server.port, bool(tls_context(settings))))
    return server


def web_url(host: str, port: int, tls: bool = False) -> str:
    """The URL a person on this machine opens for a server bound to `host`."""
    plain = host.strip("[]")
    shown = "localhost" if plain in ("", "::", "0.0.0.0") else (f"[{plain}]" if ":" in plain else plain)
    return f"{'https' if tls else 'http'}://{shown}:{port}/"
