"""`imgsearch`: the command table, settings from the environment with flags over them, and the
one place where failures become exit statuses.

Tests call `main(argv, env=Environment(stdout=io.StringIO(), stderr=..., environ={...}))`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, TextIO

import grpc

from imgsearch.cli import commands, data, train_eval
from imgsearch.cli.environment import Environment, command_name
from imgsearch.cli.status import CommandError, ExitStatus, exit_status_for
from imgsearch.cli.waiting import is_starting, run_command
from imgsearch.client import ClientError
from imgsearch.config import Settings

__all__ = ["Environment", "ExitStatus", "build_parser", "main"]

# Flag dest -> Settings field (and how to convert it); a flag left unset keeps the environment's value.
SETTINGS_FLAGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "addr": ("addr", str),
    "indexer_addr": ("indexer_addr", str),
    "token": ("token", str),
    "tls_ca": ("tls_ca", str),
    "tls_cert": ("tls_cert", str),
    "tls_key": ("tls_key", str),
    "data": ("data_dir", Path),
    "cache_dir": ("cache_dir", Path),
    "port": ("port", int),
    "host": ("host", str),
    "qdrant_url": ("qdrant_url", str),
    "embedder": ("embedder", str),
    "head": ("head", str),
    "glove": ("glove", str),
    "vocab_size": ("vocab_size", int),
    "metrics_port": ("metrics_port", int),
    "http_port": ("http_port", int),
    "http_host": ("http_hosts", str),
    "log_format": ("log_format", str),
}

# A command: (args, settings, stdout, stderr) -> exit status.
Command = Callable[[argparse.Namespace, Settings, TextIO, TextIO], int]

EPILOG = "exit status: " + ", ".join(f"{s.value} {s.name.lower()}" for s in ExitStatus)


def package_version() -> str:
    """The installed distribution's version; "unknown" when run from a tree that was never installed."""
    try:
        return importlib.metadata.version("imgsearch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def port_number(text: str) -> int:
    """A port flag: 0 to 65535 (0: the OS picks one); anything else is a usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port (0 to 65535)")
    return value


def count_of(low: int, high: int) -> Callable[[str], int]:
    """An integer flag between low and high (inclusive), as the help text says."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range ({low} to {high})")
        return value

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with every flag the user gave replacing the environment's value."""
    changes: dict[str, Any] = {}
    for dest, (name, convert) in SETTINGS_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            changes[name] = convert(value)
    return dataclasses.replace(settings, **changes) if changes else settings


# -- the command table -----------------------------------------------------------------------------


def _connection_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument("--addr", help="server address host:port (env IMGSEARCH_ADDR, default localhost:50051)")
    g.add_argument("--indexer-addr", help="indexer address when separate (env IMGSEARCH_INDEXER_ADDR)")
    g.add_argument("--token", help="shared secret (env IMGSEARCH_TOKEN)")
    g.add_argument("--tls-ca", help="CA certificate (PEM) to trust for TLS (env IMGSEARCH_TLS_CA)")
    g.add_argument(
        "--timeout", type=float, help="seconds per call, and to wait for a server still starting (default 30)"
    )
    return p


def _json_flag() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    return p


def _namespace_flag() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--namespace", metavar="NAME", help="work in this namespace (default: the default namespace)"
    )
    return p


def _query_flags(filters: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-k", type=count_of(1, 1000), default=10, help="number of results (1 to 1000, default 10)")
    if filters:
        _filter_flags(p)
        p.add_argument(
            "--offset", type=count_of(0, 999), default=0, help="skip this many results (offset + k <= 1000)"
        )
        p.add_argument(
            "--min-score",
            type=float,
            metavar="SCORE",
            help="drop results scoring below SCORE (relevance 0 to 1; 0.5: matches only)",
        )
        p.add_argument(
            "--all",
            action="store_true",
            help="also show the weaker results, below the server's relevance threshold (table only)",
        )
        p.add_argument(
            "--diverse",
            type=float,
            nargs="?",
            const=0.5,
            metavar="LAMBDA",
            help="varied results by maximal marginal relevance; LAMBDA 0..1 weighs relevance (default 0.5)",
        )
    p.add_argument("--html", metavar="FILE", help="also write an HTML gallery of the results")
    p.add_argument(
        "--html-images",
        action="append",
        metavar="DIR",
        help="show the results' own pictures in the gallery when their uri is a file under DIR (repeat)",
    )
    return p


def _filter_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label", action="append", help="only images with this label (repeat: any of them)")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="only images with this metadata")
    p.add_argument("--not-label", action="append", metavar="LABEL", help="leave out images with this label")
    p.add_argument(
        "--not-meta", action="append", metavar="KEY=VALUE", help="leave out images with this metadata"
    )
    p.add_argument("--has-meta", action="append", metavar="KEY", help="only images with this metadata key")
    p.add_argument("--no-meta", action="append", metavar="KEY", help="only images without this metadata key")


def _server_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server settings (flags override the environment)")
    g.add_argument("--port", type=port_number, help="port to listen on (env IMGSEARCH_PORT, default 50051)")
    g.add_argument(
        "--host",
        help="interface to bind (env IMGSEARCH_HOST, default 127.0.0.1; [::] or 0.0.0.0 for every interface)",
    )
    g.add_argument("--data", help="data directory (env IMGSEARCH_DATA, default ./data)")
    g.add_argument("--cache-dir", help="model cache (env IMGSEARCH_CACHE)")
    g.add_argument("--qdrant-url", help="Qdrant server; unset = embedded store (env QDRANT_URL)")
    g.add_argument("--embedder", help="embedder address(es), comma-separated (env IMGSEARCH_EMBEDDER)")
    g.add_argument("--head", help="'conse' or a trained head's path (env IMGSEARCH_HEAD)")
    g.add_argument("--glove", help="a GloVe text file (env IMGSEARCH_GLOVE)")
    g.add_argument("--vocab-size", type=int, help="words in the words collection (env IMGSEARCH_VOCAB_SIZE)")
    g.add_argument("--metrics-port", type=port_number, help="Prometheus metrics port, 0 = off")
    g.add_argument(
        "--http-port",
        type=port_number,
        help="also serve the HTTP/JSON API and the web page on this port (env IMGSEARCH_HTTP_PORT)",
    )
    g.add_argument(
        "--http-host",
        metavar="NAMES",
        help="host names the HTTP side answers for besides the loopback ones, comma-separated; "
        "'*' = any (env IMGSEARCH_HTTP_HOSTS; docs/security.md)",
    )
    g.add_argument("--log-format", choices=["text", "json"], help="log format (env IMGSEARCH_LOG_FORMAT)")
    g.add_argument("--token", help="require this shared secret (env IMGSEARCH_TOKEN)")
    g.add_argument("--tls-cert", help="TLS certificate (PEM)")
    g.add_argument("--tls-key", help="TLS private key (PEM)")


def _model_flags(p: argparse.ArgumentParser) -> None:
    """The settings `warmup` reads: where the models are cached and which ones."""
    g = p.add_argument_group("model settings (flags override the environment)")
    g.add_argument("--cache-dir", help="model cache (env IMGSEARCH_CACHE)")
    g.add_argument("--head", help="'conse' or a trained head's path (env IMGSEARCH_HEAD)")
    g.add_argument("--glove", help="a GloVe text file (env IMGSEARCH_GLOVE)")
    g.add_argument("--vocab-size", type=int, help="words in the words collection (env IMGSEARCH_VOCAB_SIZE)")


def _add_data_commands(add: Callable[..., argparse.ArgumentParser], parents: list) -> None:
    """get, list, update, export, import (cli/data.py)."""
    p = add("get", data.cmd_get, "stored records by id (uri, label, metadata, when ingested)", parents)
    p.add_argument("ids", nargs="*", metavar="ID", help="image ids")
    p.add_argument("--id", action="append", metavar="ID", help="an image id (repeatable)")

    p = add("list", data.cmd_list, "page through the stored records, in id order", parents)
    p.add_argument(
        "-k", "--limit", type=count_of(1, 1000), default=100, help="records per page (1 to 1000, default 100)"
    )
    p.add_argument("--page-token", default="", metavar="TOKEN", help="the page to show (from the last one)")
    p.add_argument("--every-page", action="store_true", help="list every page, not only the first")
    p.add_argument(
        "--all-namespaces", action="store_true", help="records of every namespace (needs read access to all)"
    )
    _filter_flags(p)

    help_ = "change labels and metadata of stored images (no re-embedding)"
    p = add("update", data.cmd_update, help_, parents)
    p.add_argument("ids", nargs="*", metavar="ID", help="image ids")
    p.add_argument("--id", action="append", metavar="ID", help="an image id (repeatable)")
    p.add_argument("--label", help="the new label ('' clears it)")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata to set (repeatable)")
    p.add_argument("--remove-meta", action="append", metavar="KEY", help="a metadata key to remove (repeat)")
    p.add_argument("--where-label", action="append", metavar="LABEL", help="update images with this label")
    p.add_argument("--where-meta", action="append", metavar="KEY=VALUE", help="update images with it")

    help_ = "write the stored records (vectors, payload) to a Parquet file"
    p = add("export", data.cmd_export, help_, parents)
    p.add_argument("file", metavar="FILE", help="the Parquet file to write")
    p.add_argument("--all-namespaces", action="store_true", help="every namespace (needs read access to all)")

    help_ = "load an export file without re-embedding (skips ids already stored)"
    p = add("import", data.cmd_import, help_, parents)
    p.add_argument("file", metavar="FILE", help="a file written by `imgsearch export`")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgsearch",
        description="Semantic image search over gRPC: search images by words or by image, tag images.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    conn, js, ns = _connection_flags(), _json_flag(), _namespace_flag()

    def add(
        name: str, func: Command, help: str, parents: Sequence[argparse.ArgumentParser] = ()
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=list(parents), epilog=EPILOG)
        p.set_defaults(func=func)
        return p

    p = add("serve", commands.cmd_serve, "run services (default: all three in one process, embedded store)")
    # no `choices=`: argparse rejects an empty list with them (nargs="*"); cmd_serve checks names
    p.add_argument("roles", nargs="*", metavar="ROLE", help="all (default), embedder, indexer, query")
    _server_flags(p)

    p = add("health", commands.cmd_health, "exit 0 when the server reports SERVING", [conn, js])
    p.add_argument(
        "--service", default="", help="a service name, e.g. imagesearch.v1.Query (default: server)"
    )

    p = add("warmup", commands.cmd_warmup, "convert and cache the models ahead of the first start")
    _model_flags(p)

    p = add(
        "ingest", commands.cmd_ingest, "ingest image files, folders (recursively) and globs", [conn, js, ns]
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files, folders (walked recursively), globs"
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--label", help="label for every image")
    g.add_argument("--label-from-dir", action="store_true", help="label each image with its folder's name")
    p.add_argument(
        "--meta", action="append", metavar="KEY=VALUE", help="metadata for every image (repeatable)"
    )

    p = add(
        "search",
        commands.cmd_search,
        "text -> images (word^2 weights a word, -word pushes away from it: quote it or put -- first)",
        [conn, js, ns, _query_flags(True)],
    )
    p.add_argument("text", nargs="+", metavar="TEXT", help="words to search for (several are joined)")
    p.add_argument(
        "--mode",
        choices=("hybrid", "semantic", "lexical"),
        help="hybrid: meaning plus the words of the images' label, caption and metadata (BM25; the "
        "default where the collection has that index); semantic: meaning only; lexical: words only",
    )

    for name, func, help_, filters in (
        ("similar", commands.cmd_similar, "image -> similar images", True),
        ("tags", commands.cmd_tags, "image -> tags (its classes' words first)", False),
    ):
        p = add(name, func, help_, [conn, js, ns, _query_flags(filters)])
        p.add_argument("image", nargs="?", metavar="IMAGE", help="an image file")
        p.add_argument("--id", help="the id of a stored image instead of a file")
        if filters:
            p.add_argument(
                "--include-self", action="store_true", help="with --id, keep the image itself in the results"
            )

    p = add("facets", commands.cmd_facets, "count images per label or metadata value", [conn, js, ns])
    p.add_argument("--key", metavar="KEY", help="count per value of this metadata key (default: per label)")
    p.add_argument("--limit", type=int, default=10, help="most values shown (default 10)")
    _filter_flags(p)

    p = add("words", commands.cmd_words, "word -> similar words", [conn, js, _query_flags(False)])
    p.add_argument("word", metavar="WORD", help="a word of the vocabulary")

    p = add("delete", commands.cmd_delete, "delete images by id, by filter, or all", [conn, js, ns])
    p.add_argument("ids", nargs="*", metavar="ID", help="ids to delete")
    p.add_argument(
        "--id", nargs="+", metavar="ID", help="ids to delete (the same as giving them as arguments)"
    )
    p.add_argument("--label", help="delete images with this label")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="delete images with this metadata")
    p.add_argument("--all", action="store_true", help="delete every image (of the namespace)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation on a terminal")

    add("stats", commands.cmd_stats, "counts per collection and the model", [conn, js, ns])

    _add_data_commands(add, [conn, js, ns])

    p = add("vocab", commands.cmd_vocab, "load the word vocabulary into the words collection", [conn, js])
    p.add_argument("--limit", type=int, default=0, help="number of words (default: the configured size)")
    p.add_argument("--force", action="store_true", help="reload even when already loaded")

    add("reindex", commands.cmd_reindex, "re-embed the stored images with the current model", [conn, js])

    p = add("demo", commands.cmd_demo, "start a server, ingest sample photos, show the walk-through")
    p.add_argument("--out", default="demo-output", help="folder for data, log and demo.html")
    p.add_argument(
        "--port", dest="demo_port", type=port_number, default=0, help="server port (default: a free one)"
    )
    p.add_argument("--addr", help="use this running server instead of starting one")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the server to be ready")
    p.add_argument("-k", type=int, default=6, help="results per query (default 6)")

    train_eval.add_train_parser(sub)
    train_eval.add_eval_parser(sub)
    return parser


# -- running a command -----------------------------------------------------------------------------


def describe(error: ClientError, settings: Settings) -> str:
    """The server's message, with a hint for the failures a user can fix themselves."""
    token_hint = (
        "the token given (--token or IMGSEARCH_TOKEN) is not one this server accepts"
        if settings.token
        else "the server wants a token: set IMGSEARCH_TOKEN or pass --token"
    )
    hints = {
        grpc.StatusCode.UNAVAILABLE: f"cannot reach {settings.addr} (is `imgsearch serve` running?)",
        grpc.StatusCode.UNAUTHENTICATED: token_hint,
        grpc.StatusCode.DEADLINE_EXCEEDED: "no answer in time (raise --timeout?)",
    }
    hint = hints.get(error.code)
    if is_starting(error):
        hint = "the server is still starting (loading models); try again in a moment"
    elif error.message.startswith("cannot connect to"):  # the client's own: it names the address
        hint = "is `imgsearch serve` running?"
    text = f"{error.code.name}: {error.message}" if error.message else error.code.name
    return f"{text} -- {hint}" if hint else text


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Parses `argv`, runs the command, returns the exit status (never raises for expected failures)."""
    env = env or Environment()
    parser = build_parser()
    try:
        with redirect_stdout(env.stdout), redirect_stderr(env.stderr):
            args, extra = parser.parse_known_args(None if argv is None else list(argv))
    except SystemExit as e:  # --help, or a usage error argparse already explained
        return ExitStatus.SUCCESS if e.code in (0, None) else ExitStatus.USAGE
    if extra:
        env.stderr.write(f"imgsearch {getattr(args, 'command', '') or ''}: error: unrecognized arguments: ")
        env.stderr.write(" ".join(extra) + "\n")
        if getattr(args, "command", None) == "search" and any(a.startswith("-") for a in extra):
            words = " ".join(args.text + extra)
            env.stderr.write(
                f"a word starting with '-' (pushed away from) must be quoted with the query: "
                f"{command_name()} search '{words}', or come after --: {command_name()} search -- {words}\n"
            )
        return ExitStatus.USAGE
    if getattr(args, "func", None) is None:
        parser.print_help(env.stderr)
        return ExitStatus.USAGE
    try:
        settings = apply_flags(Settings.from_env(env.environ), args)
    except ValueError as e:
        env.stderr.write(f"error: bad setting: {e}\n")
        return ExitStatus.USAGE
    try:
        return run_command(args, settings, env.stdout, env.stderr)
    except ClientError as e:
        env.stderr.write(f"error: {describe(e, settings)}\n")
        return exit_status_for(e.code)
    except CommandError as e:
        env.stderr.write(f"error: {e.message}\n")
        return e.status
    except KeyboardInterrupt:
        env.stderr.write("interrupted\n")
        return ExitStatus.CTRL_C
    except OSError as e:  # a local file problem (--html into a missing folder, a closed pipe)
        env.stderr.write(f"error: {e}\n")
        return ExitStatus.ERROR


if __name__ == "__main__":
    sys.exit(main())
