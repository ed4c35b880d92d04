"""Reading a failed call: the one place that takes the status code and details out of a
grpc.RpcError (which is also a grpc.Call, except for a few errors raised before a call starts)."""

from __future__ import annotations

import grpc


def rpc_status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """(code, details) of a failed call; UNKNOWN and the error's text where it carries neither."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else None
    return code or grpc.StatusCode.UNKNOWN, details or str(error) or ""
