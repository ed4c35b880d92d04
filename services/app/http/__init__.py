"""The HTTP/JSON API and the web page, served by the same process as the gRPC services they front.

Every route calls the very servicer the gRPC server calls (through the same `Deferred`, so "still
loading" is the same UNAVAILABLE), with the request and response messages of the protos written
in the protobuf JSON mapping (`json_format`): field names in lowerCamelCase (snake_case accepted),
enums by name, bytes in base64, 64-bit integers as strings. One document describes both.

Routes (gRPC-JSON transcoding style; docs/http-api.md has the table): reads (`/v1/query:*`,
`/v1/indexer:getStats`) by `GET` with query parameters or `POST` with a JSON body; changes
(`/v1/indexer:ingest`, `:delete`, `:updateImages`, `:importImages`, `:upsertVectors`,
`:loadVocabulary`, `DELETE /v1/images/{id}`) by `POST` with `application/json` (multipart for
uploads) only; `GET /v1/images/{id}/thumbnail`, `GET /v1/health`, and the page at `/`.
A failure answers the HTTP status of its gRPC code with `{"code": int, "message": str, "details": []}`
(google.rpc.Status as JSON). Who may call and the caps are the gRPC server's CallPolicy
(imgsearch.rpc.policy); the token travels in `Authorization: Bearer <token>` only, never a cookie;
requests from other origins or for other hosts are refused (origins.py, docs/security.md).

Modules: transcoding (JSON <-> messages), context (the ServicerContext stand-in), origins (the
Origin/Host check), routes (the application), serving (sockets, TLS, the server thread).

aiohttp (asyncio) takes the connections on one thread; the servicer calls, which block on the
model and the store, run in a thread pool, as gRPC's do.
"""

from imgsearch.app.http.context import CallContext, CallError
from imgsearch.app.http.routes import HttpApi, error_response
from imgsearch.app.http.serving import HttpServer, listen_socket, start_http, tls_context, web_url
from imgsearch.app.http.transcoding import document_from_pairs, from_json, to_json, unary_rpcs

__all__ = [
    "CallContext",
    "CallError",
    "HttpApi",
    "HttpServer",
    "document_from_pairs",
    "error_response",
    "from_json",
    "listen_socket",
    "start_http",
    "tls_context",
    "to_json",
    "unary_rpcs",
    "web_url",
]
