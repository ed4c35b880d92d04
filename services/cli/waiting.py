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

from imgsearch.client import ClientError, from_settings
from imgsearch.config import Settings

# How long a command waits for a starting server unless --timeout says otherwise: the per-call
# default, so a script that polls with the CLI (and its own timeout) is never held for minutes.
STARTUP_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.25
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


def run_command(args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO) -> int:
    """Runs the command; when the server answers that it is starting, waits for it (up to
    `--timeout`, 30 s by default) and runs it once more (a starting server has done nothing yet, so
    the second run is the first to count)."""
    try:
        return int(args.func(args, settings, out, err))
    except ClientError as e:
        if getattr(args, "command", None) in NO_WAIT or not is_starting(e):
            raise
        if not wait_until_serving(settings, err, getattr(args, "timeout", None) or STARTUP_WAIT_SECONDS):
            raise
    return int(args.func(args, settings, out, err))
