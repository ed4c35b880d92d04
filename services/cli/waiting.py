"""Waiting for a server that is still starting: a command that reaches a server while it loads its
models says so, waits with a spinner until the server reports SERVING (up to a limit), and runs
again, instead of failing with "is starting" and "cannot reach" in one line."""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable
from typing import TextIO

import grpc

from imgsearch.cli.extras import require_server_extra
from imgsearch.client import ClientError, from_settings
from imgsearch.config import Settings

# How long a command waits for a starting server unless --timeout says otherwise: the per-call
# default, so a script that polls with the CLI (and its own timeout) is never held for minutes.
STARTUP_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.25
# How long a command waits for a server on this machine to start listening (without --timeout).
PORT_WAIT_SECONDS = 10.0
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
# Commands that never wait: probes, and those that start or wait for servers themselves.
NO_WAIT = frozenset({"health", "serve", "demo", "warmup", "train", "eval"})


def is_starting(error: ClientError) -> bool:
    """The UNAVAILABLE a server answers while its models load (imgsearch.app.serve.Deferred)."""
    return error.code == grpc.StatusCode.UNAVAILABLE and "is starting" in error.message


def wait_until_serving(
    settings: Settings,
    err: TextIO,
    timeout: float = STARTUP_WAIT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Polls the server's health until SERVING, showing that it waits; False after `timeout`."""
    live = err.isatty()
    what = f"the server at {settings.addr} is starting (loading models)"
    if not live:
        err.write(f"{what}; waiting up to {timeout:.0f} s...\n")
        err.flush()
    start = clock()
    frames = itertools.cycle(SPINNER)
    with from_settings(settings, timeout=5.0, wait_for_ready=False) as client:
        while True:
            waited = clock() - start
            try:
                serving = client.health()
            except ClientError:
                serving = False
            if serving or waited > timeout:
                break
            if live:
                err.write(f"\r{next(frames)} {what}... {waited:3.0f} s")
                err.flush()
            time.sleep(POLL_SECONDS)
    if live:
        err.write("\r\033[K")
    if serving:
        err.write(f"the server is ready ({clock() - start:.0f} s)\n")
    else:
        err.write(f"the server was still starting after {timeout:.0f} s\n")
    err.flush()
    return serving


def is_not_listening(error: ClientError) -> bool:
    """The client's own UNAVAILABLE when nothing listens at the address (yet)."""
    return error.code == grpc.StatusCode.UNAVAILABLE and error.message.startswith("cannot connect to")


def is_local(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0].strip("[]").lower()
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "")


def wait_for_port(settings: Settings, err: TextIO, timeout: float) -> bool:
    """Waits up to `timeout` for something to listen at the server's address (a `serve` started a
    moment ago is still importing); True once it answers."""
    err.write(f"nothing listens at {settings.addr} yet; waiting up to {timeout:.0f} s for a server...\n")
    err.flush()
    deadline = time.monotonic() + timeout
    with from_settings(settings, timeout=2.0, wait_for_ready=False) as client:
        while time.monotonic() < deadline:
            try:
                client.connect()
                return True
            except ClientError:
                time.sleep(POLL_SECONDS)
    return False


def run_command(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Runs the command; when the server answers that it is starting, waits for it (up to
    `--timeout`, 30 s by default) and runs it once more (a starting server has done nothing yet, so
    the second run is the first to count). When nothing listens yet, waits for the port first: up
    to `--timeout`, or PORT_WAIT_SECONDS for an address on this machine (`imgsearch serve &` then a
    command); a remote address without `--timeout` fails at once."""
    command = getattr(args, "command", None)
    timeout = getattr(args, "timeout", None)
    require_server_extra(command or "")
    try:
        return int(args.func(args, settings, out, err))
    except ClientError as e:
        if command in NO_WAIT:
            raise
        if is_not_listening(e):
            wait = timeout or (PORT_WAIT_SECONDS if is_local(settings.addr) else 0.0)
            if not wait or not wait_for_port(settings, err, wait):
                raise
            try:
                return int(args.func(args, settings, out, err))
            except ClientError as again:
                if not is_starting(again):
                    raise
        elif not is_starting(e):
            raise
    waited = timeout or STARTUP_WAIT_SECONDS
    if not wait_until_serving(settings, err, waited):
        raise ClientError(
            grpc.StatusCode.UNAVAILABLE, f"the server is starting (still, after {waited:.0f} s)"
        )
    return int(args.func(args, settings, out, err))
