"""Which browser requests the HTTP side answers: the defence against other web pages (cross-site
request forgery) and against DNS rebinding (docs/security.md has the threat model).

A browser lets any page send requests to any address, the server's included; what it adds and
what a page cannot forge are the `Host` header (the name the browser resolved), `Origin` (the page
that sent a request; on every POST/DELETE and every cross-origin fetch), `Referer` and
`Sec-Fetch-Site`. So:
- `Host` must name this server: a loopback name by default (localhost, 127.0.0.1, [::1], and the
  address `--host` binds when that is a specific one), or a host of IMGSEARCH_HTTP_HOSTS /
  `--http-host` (`*`: any). A rebound DNS name (evil.example -> 127.0.0.1) is refused.
- A request from a page (Origin, else Referer) must come from this server's own origin (the same
  host and port as `Host`); `Origin: null` (sandboxed frames, files) is refused, and so is a
  request the browser marks `Sec-Fetch-Site: cross-site` or `same-site` (another port of the host).
- A request with none of them is no page's: a program (curl, the client library) or the address
  bar. Such requests are answered; what they may change is guarded by the token.
Health (/v1/health) is exempt: probes call it by whatever address they use, and it tells nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

import grpc

from imgsearch.rpc.policy import CallError

LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
ANY = "*"
DEFAULT_PORTS = {"http": 80, "https": 443}


def allowed_hosts(setting: str | None, bound: str = "") -> frozenset[str] | None:
    """The host names the server answers for, from IMGSEARCH_HTTP_HOSTS (comma-separated; `*`:
    every host, None is returned) plus the loopback names and `bound` (the --host address) when
    it is a specific address."""
    names = {h.strip().lower().strip("[]") for h in (setting or "").split(",") if h.strip()}
    if ANY in names:
        return None
    plain = bound.strip().strip("[]").lower()
    if plain and plain not in ("::", "0.0.0.0"):
        names.add(plain)
    return frozenset(names | LOOPBACK)


def split_host(value: str) -> tuple[str, int | None] | None:
    """(name, port) of a `Host` value or URL authority ("[::1]:8080", "Example.org"); None when
    it does not parse."""
    try:
        parts = urlsplit("//" + value.strip())
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


class OriginCheck:
    """Refuses (CallError PERMISSION_DENIED) a request for another host or from another origin."""

    def __init__(self, hosts: Iterable[str] | None, scheme: str = "http"):
        """`hosts`: the names answered for (None: any); `scheme`: "https" when serving TLS."""
        self.hosts = None if hosts is None else frozenset(hosts)
        self.scheme = scheme

    def host_allowed(self, host: str) -> bool:
        if self.hosts is None:
            return True
        split = split_host(host)
        if split is None or not split[0]:
            return False
        name = split[0]
        return name in self.hosts or ("localhost" in self.hosts and name.endswith(".localhost"))

    def check(self, path: str, headers: Mapping[str, str]) -> None:
        """Raises CallError unless the request may be answered (see the module docstring)."""
        host = headers.get("Host", "")
        if not self.host_allowed(host):
            raise CallError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this server does not answer for the host {host[:100]!r}; add it to "
                "IMGSEARCH_HTTP_HOSTS (--http-host) to serve it by that name",
            )
        if not path.startswith("/v1/"):
            return  # the page itself may be opened from a link anywhere; its calls are checked
        site = headers.get("Sec-Fetch-Site", "").lower()
        if site in ("cross-site", "same-site"):
            raise CallError(
                grpc.StatusCode.PERMISSION_DENIED, f"a request from another site ({site}) is refused"
            )
        origin = headers.get("Origin")
        if origin is not None:
            if not self._same_origin(origin, host):
                raise CallError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"a request from another origin ({origin[:100]}) is refused: only this server's own page "
                    "may call the API from a browser",
                )
            return
        referer = headers.get("Referer")
        if referer is not None and not self._same_origin(referer, host):
            raise CallError(
                grpc.StatusCode.PERMISSION_DENIED, "a request from another page (Referer) is refused"
            )

    def _same_origin(self, url: str, host: str) -> bool:
        """Whether `url` (an Origin or Referer) is on the host and port of `host`."""
        if url == "null":
            return False
        try:
            parts = urlsplit(url)
            scheme, name, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
        except ValueError:
            return False
        own = split_host(host)
        if scheme not in DEFAULT_PORTS or not name or own is None:
            return False
        own_port = own[1] if own[1] is not None else DEFAULT_PORTS[self.scheme]
        # the scheme may differ behind a TLS-terminating proxy; host and port may not
        return name == own[0] and (port or DEFAULT_PORTS[scheme]) == own_port
