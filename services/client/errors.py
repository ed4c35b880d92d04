"""The one exception the client raises, so callers need not catch grpc.RpcError themselves."""

from __future__ import annotations

import grpc

from imgsearch.rpc.status import rpc_status


class ClientError(Exception):
    """A failed call: the gRPC status `code` and the server's `message`."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ClientError:
        """Wraps a grpc.RpcError (which is also a grpc.Call carrying code() and details())."""
        return cls(*rpc_status(error))
