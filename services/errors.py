"""Domain errors raised by plain (gRPC-free) code; the serving layer maps each to a gRPC status.

Model and store code raise these; servicers never build status codes by hand.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class; `code_name` is the grpc.StatusCode name the serving layer answers with."""

    code_name = "INTERNAL"
    code_number = 13  # the grpc.StatusCode value, for per-item errors inside a reply

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """Bad input: undecodable image, empty query, k out of range."""

    code_name = "INVALID_ARGUMENT"
    code_number = 3


class NotFound(ServiceError):
    """Unknown id, or a query with no known word."""

    code_name = "NOT_FOUND"
    code_number = 5


class AlreadyExists(ServiceError):
    """An id already holds other content."""

    code_name = "ALREADY_EXISTS"
    code_number = 6


class PermissionDenied(ServiceError):
    """The caller's token may not do this (another namespace, or an administrative call)."""

    code_name = "PERMISSION_DENIED"
    code_number = 7


class ResourceExhausted(ServiceError):
    """Over a size limit (bytes, pixels, images per request)."""

    code_name = "RESOURCE_EXHAUSTED"
    code_number = 8


class FailedPrecondition(ServiceError):
    """The system is not in a state to do this (e.g. a head trained on other word vectors)."""

    code_name = "FAILED_PRECONDITION"
    code_number = 9


class Unavailable(ServiceError):
    """A dependency (embedder, Qdrant server) is down."""

    code_name = "UNAVAILABLE"
    code_number = 14


class DeadlineExceeded(ServiceError):
    """A call ran past its time."""

    code_name = "DEADLINE_EXCEEDED"
    code_number = 4


class StreamIdle(DeadlineExceeded):
    """A client stream sent nothing for too long (the server's idle limit)."""


# The domain error of each status code, for errors that come back from another service (a
# per-item error, a failed call): one explicit table, so the answer never depends on which modules
# happen to be imported (a table built from ServiceError's subclasses grew with each import).
BY_CODE: dict[str, type[ServiceError]] = {
    cls.code_name: cls
    for cls in (
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Unavailable,
    )
}


def error_for_code(code_name: str, message: str) -> ServiceError:
    """The domain error whose status is `code_name` (a grpc.StatusCode name); a plain
    ServiceError (INTERNAL) for a code without one."""
    return BY_CODE.get(code_name, ServiceError)(message)
