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
