#!/usr/bin/env bash
# The client-only install, tried for real: `pip install .` without extras into a fresh virtualenv
# (TensorFlow must not be importable there), then the Python client and that virtualenv's own
# `imgsearch` client commands against an all-in-one server started from the project's virtualenv.
#
# A unit test can only pretend packages are missing; this is what a user who runs `pip install
# imgsearch` on a laptop gets. Run after `make setup` (the server needs .venv and its cached models);
# CI runs it after `make test`. Exits non-zero on any failure; the server is stopped in every case.
#
# Environment: PYTHON (the interpreter for the fresh virtualenv, default python3), SERVER_START_SECONDS
# (how long the server may take to become SERVING, default 300), KEEP=1 (keep the work folder).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
SERVER_BIN="$ROOT/.venv/bin"
START_SECONDS="${SERVER_START_SECONDS:-300}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Settings of the caller's shell must not leak into the server or the clients.
unset IMGSEARCH_ADDR IMGSEARCH_INDEXER_ADDR IMGSEARCH_TOKEN IMGSEARCH_TLS_CA IMGSEARCH_TLS_CERT \
    IMGSEARCH_TLS_KEY IMGSEARCH_EMBEDDER QDRANT_URL IMGSEARCH_PORT IMGSEARCH_METRICS_PORT

WORK="$(mktemp -d "${TMPDIR:-/tmp}/imgsearch-client-only.XXXXXX")"
SERVER_PID=""
SERVER_LOG="$WORK/server.log"
STARTED=$SECONDS

say() { printf 'client-only-check: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 60); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            say "server $SERVER_PID ignored SIGTERM for 30 s; killing it"
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

cleanup() {
    local status=$?
    stop_server
    if [[ $status -ne 0 && -s "$SERVER_LOG" ]]; then
        say "last lines of the server log:"
        tail -n 30 "$SERVER_LOG" >&2 || true
    fi
    if [[ "${KEEP:-0}" == 1 ]]; then
        say "work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ -x "$SERVER_BIN/imgsearch" ]] || fail "$SERVER_BIN/imgsearch missing: run \`make setup\` first"

# -- 1. a copy of the checkout, as the Docker build context has it (no stubs, no caches) -----------
# pip builds a local folder in place; a copy keeps build/ and *.egg-info out of the working tree.
say "copying the sources"
mkdir -p "$WORK/src"
tar -C "$ROOT" --exclude=__pycache__ --exclude='*.pyc' --exclude=services/protogen/imagesearch \
    -cf - pyproject.toml setup.py protos services | tar -C "$WORK/src" -xf -

# -- 2. a fresh virtualenv with the plain install ---------------------------------------------------
say "pip install . (no extras) into a fresh virtualenv"
"$PYTHON" -m venv "$WORK/client"
CLIENT="$WORK/client/bin"
"$CLIENT/python" -m pip install -q "$WORK/src" || fail "pip install . without extras"
"$CLIENT/python" -m pip check || fail "pip check in the client virtualenv"

if "$CLIENT/python" -c "import tensorflow" 2>/dev/null; then
    fail "import tensorflow works in the client-only virtualenv"
fi
"$CLIENT/python" - <<'EOF' || fail "the client-only virtualenv holds server packages"
import importlib.util
server_only = ["tensorflow", "keras", "qdrant_client", "qdrant_edge", "pyarrow", "PIL",
               "prometheus_client", "grpc_reflection"]
present = [m for m in server_only if importlib.util.find_spec(m) is not None]
assert not present, f"installed without [server]: {present}"
EOF
"$CLIENT/imgsearch" --help > /dev/null || fail "imgsearch --help in the client-only virtualenv"

# -- 3. the all-in-one server from the project's virtualenv -----------------------------------------
PORT="$("$SERVER_BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ADDR="localhost:$PORT"
say "starting \`imgsearch serve\` on $ADDR (log: $SERVER_LOG)"
IMGSEARCH_DATA="$WORK/data" IMGSEARCH_GRACE_SECONDS=1 \
    "$SERVER_BIN/imgsearch" serve --port "$PORT" > "$SERVER_LOG" 2>&1 &
SERVER_PID=$!

deadline=$((SECONDS + START_SECONDS))
until "$SERVER_BIN/imgsearch" health --addr "$ADDR" --timeout 2 > /dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited before it was SERVING"
    ((SECONDS < deadline)) || fail "the server was not SERVING after ${START_SECONDS}s"
    sleep 1
done
say "server SERVING after $((SECONDS - STARTED))s in all"

# -- 4. the client, from the client-only virtualenv -------------------------------------------------
# A small photo to ingest (Pillow lives in the server's virtualenv, not the client's).
"$SERVER_BIN/python" - "$WORK/red.png" <<'EOF'
import sys
from PIL import Image
Image.new("RGB", (64, 64), (200, 30, 30)).save(sys.argv[1])
EOF

say "Python client"
"$CLIENT/python" - "$ADDR" <<'EOF' || fail "the Python client in the client-only virtualenv"
import sys
from imgsearch.client import ImageSearchClient

c = ImageSearchClient(sys.argv[1])
stats = c.stats()
print(stats)
assert c.health(), "health: not SERVING"
heavy = sorted({"tensorflow", "keras", "qdrant_client", "pyarrow", "PIL"} & set(sys.modules))
assert not heavy, f"the client imported {heavy}"
c.close()
EOF

json_ok() { "$CLIENT/python" -c 'import json, sys; json.load(sys.stdin)'; }

say "CLI client commands"
"$CLIENT/imgsearch" health --addr "$ADDR" || fail "imgsearch health"
"$CLIENT/imgsearch" ingest --addr "$ADDR" --label red --json "$WORK/red.png" | json_ok \
    || fail "imgsearch ingest --json"
"$CLIENT/imgsearch" stats --addr "$ADDR" --json | tee "$WORK/stats.json" | json_ok \
    || fail "imgsearch stats --json"
cat "$WORK/stats.json"
"$CLIENT/imgsearch" search dog --addr "$ADDR" --json | tee "$WORK/search.json" | json_ok \
    || fail "imgsearch search dog --json"
"$CLIENT/python" - "$WORK/search.json" <<'EOF' || fail "imgsearch search dog found nothing"
import json, sys
text = open(sys.argv[1]).read()
assert "red" in text, f"the ingested image is not among the results: {text[:500]}"
EOF
"$CLIENT/imgsearch" words dog --addr "$ADDR" --json | json_ok || fail "imgsearch words dog --json"

stop_server
say "passed in $((SECONDS - STARTED))s"
