"""Exit statuses of `imgsearch`, and the one place gRPC status codes become exit codes."""

from __future__ import annotations

from enum import IntEnum

import grpc


class ExitStatus(IntEnum):
    """What a script sees in `$?`; stable, documented in `imgsearch --help`."""

    SUCCESS = 0
    ERROR = 1  # unexpected failure (INTERNAL, UNKNOWN, a local I/O error)
    USAGE = 2  # bad command line, or the server refused the input (INVALID_ARGUMENT, OUT_OF_RANGE)
    NOT_FOUND = 3  # unknown id, no known word in the query, missing file
    UNAVAILABLE = 4  # server not reachable or not SERVING
    TIMEOUT = 5  # no answer before the deadline
    UNAUTHENTICATED = 6  # missing or wrong token
    RESOURCE_EXHAUSTED = 7  # over a size limit
    FAILED_PRECONDITION = 8  # the server is not in a state to do this (e.g. no vocabulary loaded)
    PARTIAL = 9  # ingest finished but some images failed
    CTRL_C = 130


_BY_CODE: dict[grpc.StatusCode, ExitStatus] = {
    grpc.StatusCode.OK: ExitStatus.SUCCESS,
    grpc.StatusCode.INVALID_ARGUMENT: ExitStatus.USAGE,
    grpc.StatusCode.OUT_OF_RANGE: ExitStatus.USAGE,
    grpc.StatusCode.NOT_FOUND: ExitStatus.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: ExitStatus.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ExitStatus.TIMEOUT,
    grpc.StatusCode.UNAUTHENTICATED: ExitStatus.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: ExitStatus.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ExitStatus.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION: ExitStatus.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: ExitStatus.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS: ExitStatus.FAILED_PRECONDITION,
    grpc.StatusCode.CANCELLED: ExitStatus.CTRL_C,
}


def exit_status_for(code: grpc.StatusCode) -> ExitStatus:
    """The exit status for a failed call's gRPC code; anything unlisted is a plain ERROR."""
    return _BY_CODE.get(code, ExitStatus.ERROR)


class CommandError(Exception):
    """A failure a command reports in one line, with the exit status it implies."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.ERROR):
        super().__init__(message)
        self.message = message
        self.status = status
