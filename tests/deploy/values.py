"""Parsers for the values the deployment files share: image references, service addresses, durations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")
# Environment variables that hold the address of another service.
ADDRESS_VARS = ("IMGSEARCH_EMBEDDER", "QDRANT_URL")


def image_tag(image: str) -> str:
    """The tag of an image reference, with ${VAR:-default} resolved to its default."""
    image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def image_name(image: str) -> str:
    """An image reference without its tag or digest, with ${VAR:-default} resolved to its default."""
    image = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", image)
    return image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image


def parse_address(value: str) -> tuple[str, int]:
    """host and port of `host:port`, `dns:///host:port` or `http://host:port`."""
    if value.startswith("dns:///"):
        value = value[len("dns:///") :]
    if "://" in value:
        parts = urlsplit(value)
        assert parts.hostname and parts.port, f"address without host or port: {value}"
        return parts.hostname, parts.port
    host, _, port = value.rpartition(":")
    assert host and port.isdigit(), f"address without host or port: {value}"
    return host, int(port)


def addresses(env: dict[str, str]) -> Iterator[tuple[str, str, int]]:
    """(variable, host, port) for every service address in an environment."""
    for var in ADDRESS_VARS:
        for item in (env.get(var) or "").split(","):
            if item.strip():
                yield (var, *parse_address(item.strip()))


def duration_seconds(value: str | int) -> float:
    """Seconds of a compose duration (`1m30s`, `500ms`) or a plain number."""
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total
