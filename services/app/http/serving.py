"""Listening sockets, TLS and the aiohttp application on its own event-loop thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from imgsearch.app.http.routes import HttpApi
from imgsearch.config import Settings
from imgsearch.rpc.policy import CallPolicy

log = logging.getLogger(__name__)

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
            api.application(),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            # a connection that takes longer to send a request's headers (or sits idle) is closed
            keepalive_timeout=api.header_timeout,
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
    settings: Settings,
    port: int,
    deferred: Mapping[str, Any],
    serving: Callable[[], bool],
    policy: CallPolicy | None = None,
    draining: Callable[[], bool] | None = None,
) -> HttpServer:
    """Binds `port` on settings.host (OSError when taken, before any model loads) and serves;
    `policy`: the gRPC server's, so both ports share the tokens and the caps."""
    sock = listen_socket(settings.host, port)
    try:
        server = HttpServer(HttpApi(settings, deferred, serving, policy, draining), sock)
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
