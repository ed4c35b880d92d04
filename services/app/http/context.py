"""What a servicer may use of grpc.ServicerContext, for a call that came over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from imgsearch.rpc.policy import CallError

__all__ = ["CALL_TIMEOUT", "CallContext", "CallError"]

CALL_TIMEOUT = 600.0  # what a servicer sees as time_remaining(); slow calls are ingests


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
