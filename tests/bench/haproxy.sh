#!/usr/bin/env bash
# Scale-out check: two amped instances behind HAProxy on loopback, one
# killed (SIGKILL) in the middle of the load, and not one failed request.
#
# Runs dist/haproxy/haproxy.cfg as it is, its three ports replaced by free
# ones (HAProxy's health check is amped's status page; a failed request is
# retried on the other instance). Starts both instances (each prints the
# port the OS gave it), HAProxy in the foreground (-db), checks that an
# answer through HAProxy is 200 with the file's bytes, then runs
# `wrk -t2 -c20 -dSECS` (keep-alive, GET of a 1 KiB file) through HAProxy
# and SIGKILLs the first instance once it has answered KILL_AFTER
# requests (its status page says when). Exits 1 if wrk saw any socket
# error or non-2xx answer, or if HAProxy never marked the instance down.
#
# Usage: tests/bench/haproxy.sh [--secs N]   (default 10)
# Needs haproxy (2.x), wrk, curl and python3 (installed with apt-get when
# missing); builds amped with
# `cargo build --release --bins`.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_PY="$SCRIPT_DIR/bench.py"
CONFIG="$REPO_ROOT/dist/haproxy/haproxy.cfg"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
AMPED_BIN="$TARGET_DIR/release/server"
SECS=10
KILL_AFTER=5000     # requests the first instance answers before its kill

log() { echo "[haproxy] $*" >&2; }
die() { log "$*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

# shellcheck source=tests/bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

WORK=""
SERVER_PID=""
PIDS=()   # every process this script started, stopped on exit
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        SERVER_PID=$pid
        stop_server
    done
    remove_work
    exit "$rc"
}
trap_cleanup

missing_pkgs=()
for tool in haproxy wrk curl python3; do
    command -v "$tool" >/dev/null 2>&1 || missing_pkgs+=("$tool")
done
install_packages "${missing_pkgs[@]}"
build_amped

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-haproxy.XXXXXX")
DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
head -c 1024 /dev/urandom >"$DOCROOT/1k.bin"

# start_amped NAME: starts an instance on a port of the OS's choosing;
# sets PORT and SERVER_PID once it has printed its listening line.
start_amped() {
    local started=0
    start_printing_port "$1" "$AMPED_BIN" --listen 127.0.0.1:0 --root "$DOCROOT" \
        --status-path /server-status --access-log off && started=1
    PIDS+=("$SERVER_PID")
    [ "$started" = 1 ] || die "$1 did not start"
}

# requests_answered PORT: the instance's request count, from its status page.
requests_answered() {
    curl -sS --max-time 2 "http://127.0.0.1:$1/server-status?json" 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])' 2>/dev/null ||
        echo 0
}

start_amped amped1
PORT1=$PORT PID1=$SERVER_PID
start_amped amped2
PORT2=$PORT
FRONT=$(python3 "$BENCH_PY" freeport)
sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$FRONT/" -e "s/127\.0\.0\.1:8001/127.0.0.1:$PORT1/" \
    -e "s/127\.0\.0\.1:8002/127.0.0.1:$PORT2/" "$CONFIG" >"$WORK/haproxy.cfg"
for port in "$FRONT" "$PORT1" "$PORT2"; do
    grep -q "127.0.0.1:$port\$" "$WORK/haproxy.cfg" || die "port $port is not in the generated configuration"
done
haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy refuses the configuration"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_http "$FRONT" || { cat "$WORK/haproxy.log" >&2; die "haproxy did not answer"; }
verify "$FRONT" /1k.bin "$DOCROOT/1k.bin" || die "a wrong answer through haproxy"
# Both instances pass the health check (rise 2, every 500 ms).
deadline=$((SECONDS + READY_DEADLINE))
until [ "$(requests_answered "$PORT1")" -ge 2 ] && [ "$(requests_answered "$PORT2")" -ge 2 ]; do
    [ "$SECONDS" -lt "$deadline" ] || die "haproxy does not check both instances"
    sleep 0.1
done

log "wrk -t2 -c20 -d${SECS}s through haproxy; amped1 (pid $PID1) is killed after $KILL_AFTER requests"
timeout $((SECS + 30)) wrk -t2 -c20 -d"${SECS}s" --timeout 5s \
    "http://127.0.0.1:$FRONT/1k.bin" >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!
PIDS+=("$WRK_PID")
until [ "$(requests_answered "$PORT1")" -ge "$KILL_AFTER" ]; do
    alive "$WRK_PID" || die "wrk ended before amped1 had answered $KILL_AFTER requests"
    sleep 0.05
done
kill -KILL "$PID1"
log "killed amped1 at $(date -u +%T.%N | cut -c1-12)"
wait "$WRK_PID" || true
verify "$FRONT" /1k.bin "$DOCROOT/1k.bin" || die "a wrong answer through haproxy after the kill"

cat "$WORK/wrk.txt"
IFS=$'\t' read -r rate errors notes < <(python3 "$BENCH_PY" parse wrk "$WORK/wrk.txt" 0)
[ "$notes" != - ] || notes=""
grep -i 'is DOWN' "$WORK/haproxy.log" >&2 || true
total=$(grep -o '[0-9]* requests in' "$WORK/wrk.txt" | cut -d' ' -f1)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(haproxy -v | head -n1 | cut -d' ' -f1-3); amped $(git -C "$REPO_ROOT" rev-parse --short HEAD); ${total:-?} requests, ${rate} req/s, failed: $errors${notes:+ ($notes)}"
grep -q 'amped1 is DOWN' "$WORK/haproxy.log" || die "haproxy never marked amped1 down"
[ "$errors" = 0 ] || die "$errors failed requests"
log "zero failed requests"
