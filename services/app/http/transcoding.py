"""JSON <-> protobuf messages for the HTTP API: the protobuf JSON mapping, query parameters and
form fields as documents, the unary RPCs as routes, ingest bodies as IngestRequests."""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

from imgsearch.app.http.context import CallError
from imgsearch.protogen.imagesearch.v1 import indexer_pb2, query_pb2


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
    but those filled only when a request asks for them (OMIT_WHEN_EMPTY: a hit's `thumbnail`, a
    stored record's vectors and extra payload), left out when empty.

    What `json_format.MessageToDict(message, always_print_fields_with_no_presence=True)` gives, by a
    plan made once per message type: MessageToDict walks the descriptors on every call, which cost
    0.3 ms for ten hits, as much as the search itself (tests compare the two)."""
    return _plan(message.DESCRIPTOR)(message)


# Message type -> JSON names of the fields a request asks for (with_thumbnails, with_vectors):
# not asked for, they are empty and left out rather than shown as "" or [].
OMIT_WHEN_EMPTY: dict[str, frozenset[str]] = {
    "imagesearch.v1.ImageHit": frozenset({"thumbnail"}),
    "imagesearch.v1.StoredImage": frozenset({"visual", "semantic", "extraJson", "classIds", "classScores"}),
}
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
    omit = OMIT_WHEN_EMPTY.get(descriptor.full_name, frozenset())

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
        for name in omit:
            if out.get(name) in ("", []):
                del out[name]
        return out

    return convert_message


def _float32(value: float) -> Any:
    if math.isfinite(value):
        return type_checkers.ToShortestFloat(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _slow(message: Message) -> dict:
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def from_json(document: Any, cls: type[Message]) -> Message:
    """A request message from its JSON form; INVALID_ARGUMENT naming the field that does not fit
    and what it expects (never Python's wording)."""
    if not isinstance(document, dict):
        raise CallError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"expected a JSON object ({cls.DESCRIPTOR.name}), got {_kind(document)}",
        )
    check_document(document, cls.DESCRIPTOR)
    try:
        return json_format.ParseDict(document, cls())
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"bad {cls.DESCRIPTOR.name}") from exc


MAX_DEPTH = 32  # nesting of a request document; the messages need at most four levels
_INTS = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1, "an integer (int32)"),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1, "an integer (int64)"),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1, "a non-negative integer (uint32)"),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1, "a non-negative integer (uint64)"),
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"[:60]
    if isinstance(value, str):
        return f"the text {value[:40]!r}" + ("..." if len(value) > 40 else "")
    return "a list" if isinstance(value, list) else "an object"


def _wrong(path: str, wants: str, value: Any) -> CallError:
    return CallError(grpc.StatusCode.INVALID_ARGUMENT, f"field `{path}` wants {wants}, got {_kind(value)}")


def check_document(document: dict, descriptor: Any, path: str = "", depth: int = 0) -> None:
    """CallError INVALID_ARGUMENT for the first field of `document` that the message `descriptor`
    does not have or whose value is of the wrong type: the field's path and what it expects."""
    if depth > MAX_DEPTH:
        raise CallError(
            grpc.StatusCode.INVALID_ARGUMENT, f"the document nests deeper than {MAX_DEPTH} levels"
        )
    for name, value in document.items():
        field = _field(descriptor, name) if isinstance(name, str) else None
        where = f"{path}.{name}" if path else str(name)
        if field is None:
            known = ", ".join(f.json_name for f in descriptor.fields)
            raise CallError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown field `{where}` for {descriptor.name} (it has: {known})",
            )
        if value is None:
            continue  # null: the field's default, as the JSON mapping says
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if not isinstance(value, dict):
                raise _wrong(where, "an object of names to values", value)
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                _check_value(value_field, item, f"{where}.{key}", depth)
        elif field.is_repeated:
            if not isinstance(value, list):
                raise _wrong(where, "a list", value)
            for i, item in enumerate(value):
                _check_value(field, item, f"{where}[{i}]", depth)
        else:
            _check_value(field, value, where, depth)


def _check_value(field: FieldDescriptor, value: Any, where: str, depth: int) -> None:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        if field.message_type.full_name.startswith("google.protobuf."):
            return  # well-known types: json_format's own rules
        if not isinstance(value, dict):
            raise _wrong(where, f"an object ({field.message_type.name})", value)
        check_document(value, field.message_type, where, depth + 1)
    elif cpp in _INTS:
        low, high, wants = _INTS[cpp]
        number = value
        if isinstance(value, str):
            try:
                number = int(value.strip())
            except ValueError:
                raise _wrong(where, wants, value) from None
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise _wrong(where, wants, value)
    elif cpp in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                raise _wrong(where, "a number", value) from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _wrong(where, "a number", value)
    elif cpp == FieldDescriptor.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            raise _wrong(where, "true or false", value)
    elif cpp == FieldDescriptor.CPPTYPE_ENUM:
        names = [v.name for v in field.enum_type.values]
        if not (isinstance(value, str) and value in names) and not (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value in field.enum_type.values_by_number
        ):
            raise _wrong(where, "one of " + ", ".join(names), value)
    elif field.type == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise _wrong(where, "base64 text", value)
        try:
            base64.b64decode(
                value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True
            )
        except (binascii.Error, ValueError):
            raise _wrong(where, "base64 text", value) from None
    elif not isinstance(value, str):
        raise _wrong(where, "text", value)


def _field(descriptor: Any, name: str) -> FieldDescriptor | None:
    return descriptor.fields_by_name.get(name) or next(
        (f for f in descriptor.fields if f.json_name == name), None
    )


def _scalar(field: FieldDescriptor, text: str) -> Any:
    """A query-parameter or form value as the JSON value its field wants."""
    if field.type == FieldDescriptor.TYPE_BOOL:
        flag = text.strip().lower()
        if flag in ("1", "true", "yes", "on"):
            return True
        if flag in ("", "0", "false", "no", "off"):
            return False
        return text  # the check explains
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        try:
            return float(text)
        except ValueError:
            return text  # the check explains
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


def parse_json(raw: bytes | str) -> Any:
    """A JSON document; CallError INVALID_ARGUMENT when it is not JSON or nests too deep."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise CallError(
            grpc.StatusCode.INVALID_ARGUMENT, "the body is not usable JSON: it nests too deep"
        ) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not JSON: {exc}") from exc


@dataclass(frozen=True)
class IngestItems:
    """The images of an HTTP ingest: the requests that convert, and the position and reason of
    each item that does not (answered as a FAILED item, as an undecodable image is)."""

    requests: list[indexer_pb2.IngestRequest]
    positions: list[int]  # where each of `requests` stood in the body
    failed: list[tuple[int, str]]

    @property
    def total(self) -> int:
        return len(self.requests) + len(self.failed)


def ingest_documents(raw: bytes) -> IngestItems:
    """IngestRequests from JSON: one object, a list of objects, or one object per line (NDJSON).
    A body that is not JSON is refused whole; an item that does not fit IngestRequest (bad
    base64, a field of the wrong type) fails alone."""
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return IngestItems([], [], [])
    try:
        document = parse_json(text)
    except CallError:
        if "\n" not in text:
            raise
        document = [parse_json(line) for line in text.splitlines() if line.strip()]
    if isinstance(document, dict) and isinstance(document.get("requests"), list):
        document = document["requests"]
    documents = document if isinstance(document, list) else [document]
    items = IngestItems([], [], [])
    for position, doc in enumerate(documents):
        try:
            items.requests.append(from_json(doc, indexer_pb2.IngestRequest))
            items.positions.append(position)
        except CallError as exc:
            items.failed.append((position, exc.message))
    return items


def merge_failed(response: indexer_pb2.IngestResponse, items: IngestItems) -> indexer_pb2.IngestResponse:
    """The servicer's answer for `items.requests`, renumbered to the body's positions, with a
    FAILED result (INVALID_ARGUMENT) for each item that did not convert."""
    results = []
    for result in response.results:
        result.index = (
            items.positions[result.index] if 0 <= result.index < len(items.positions) else result.index
        )
        results.append(result)
    for position, message in items.failed:
        failed = indexer_pb2.IngestResult(index=position, status=indexer_pb2.IngestResult.FAILED)
        failed.error.code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
        failed.error.message = message
        results.append(failed)
    results.sort(key=lambda r: r.index)
    del response.results[:]
    response.results.extend(results)
    response.failed += len(items.failed)
    return response
