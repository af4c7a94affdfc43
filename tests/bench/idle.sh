#!/usr/bin/env bash
# Memory held per idle keep-alive connection by amped's front server.
#
# Starts the release server (one process, epoll unless --event-handler
# says otherwise) on a free loopback port with a document root holding
# 1k.bin, reads the server's VmRSS (/proc/PID/status), opens N keep-alive
# connections (idle_clients.py beside this script), each sending one
# `GET /1k.bin HTTP/1.1` and reading the whole response, then leaves them
# all open and idle, waits a moment and reads VmRSS again. Prints RSS
# before, after, and (after - before) / N in bytes per connection.
#
# Only the front server process is measured: the helpers and the
# cgi-runner it starts are separate processes whose memory does not grow
# with connections. The kernel's socket buffers are not in any process's
# RSS either.
#
# Usage: tests/bench/idle.sh [-n N] [--bin PATH] [--event-handler KIND]
#                            [--keep]
#   -n N                   connections (default 10000)
#   --bin PATH             the server binary to measure (default
#                          target/release/server, built first with
#                          `cargo build --release --bins`; with --bin
#                          nothing is built)
#   --event-handler KIND   epoll (default) or poll
#   --keep                 keep the temp dir (docroot, server output)
# Everything it starts (the server, its children, the clients) is
# stopped by PID when it ends; the whole run is bounded in time.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
AMPED_BIN="$TARGET_DIR/release/server"
CLIENTS_PY="$SCRIPT_DIR/idle_clients.py"

N=10000
BUILD=1
EVENT_HANDLER=epoll
KEEP=0
OPEN_DEADLINE=180    # seconds the clients get to open every connection
SETTLE_SECS=2        # idle time before the second reading

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
log() { echo "idle.sh: $*" >&2; }
die() { log "$*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        -n) N=${2:?-n needs a number}; shift 2 ;;
        --bin) AMPED_BIN=${2:?--bin needs a path}; BUILD=0; shift 2 ;;
        --event-handler) EVENT_HANDLER=${2:?--event-handler needs a kind}; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
case "$N" in ''|*[!0-9]*) die "-n takes a positive number" ;; esac
[ "$N" -gt 0 ] || die "-n takes a positive number"
case "$EVENT_HANDLER" in
    epoll|poll) ;;
    *) die "--event-handler: epoll or poll (select cannot watch this many sockets)" ;;
esac

# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

WORK=""
SERVER_PID=""     # the server this script started
CLIENTS_PID=""    # the clients this script started

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$CLIENTS_PID" ]; then
        kill -TERM "$CLIENTS_PID" 2>/dev/null || true
        wait "$CLIENTS_PID" 2>/dev/null || true
    fi
    stop_server
    remove_work
    exit "$rc"
}
trap_cleanup

# Descriptors: the server and the clients each hold N sockets, plus a few.
need=$((N + 256))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    die "needs $need descriptors per process; the hard limit is $hard"
fi
ulimit -n "$need"

if [ "$BUILD" = 1 ]; then build_amped; fi
[ -x "$AMPED_BIN" ] || die "no server binary at $AMPED_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-idle.XXXXXX")
chmod 755 "$WORK"
DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
head -c 1024 /dev/urandom >"$DOCROOT/1k.bin"
chmod -R a+rX "$DOCROOT"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# --- the server -------------------------------------------------------------

start_printing_port server "$AMPED_BIN" --listen 127.0.0.1:0 --root "$DOCROOT" \
    --access-log off --event-handler "$EVENT_HANDLER" --max-connections "$((N + 100))" \
    --keepalive-timeout 3600 --header-timeout 3600 ||
    die "the server did not start or does not answer"
# One request first, so that the file is in the cache before measuring.
verify "$PORT" /1k.bin "$DOCROOT/1k.bin" || die "wrong answer for /1k.bin"
sleep 0.5

# --- the measurement --------------------------------------------------------

before=$(rss_kib "$SERVER_PID")
log "server PID $SERVER_PID on port $PORT, VmRSS $before KiB; opening $N connections"

mkfifo "$WORK/clients.in"
python3 "$CLIENTS_PY" "$PORT" "$N" --path /1k.bin --timeout "$OPEN_DEADLINE" \
    --hold "$((OPEN_DEADLINE + 60))" <"$WORK/clients.in" >"$WORK/clients.out" &
CLIENTS_PID=$!
# Holding the fifo's write end open keeps the clients idle; closing it
# lets them go.
exec 3>"$WORK/clients.in"
deadline=$((SECONDS + OPEN_DEADLINE + 10))
while [ "$SECONDS" -lt "$deadline" ] && alive "$CLIENTS_PID" \
    && ! grep -q '^READY' "$WORK/clients.out"; do
    sleep 0.2
done
grep -qx "READY $N" "$WORK/clients.out" \
    || die "the clients did not get their responses: $(cat "$WORK/clients.out")"
sleep "$SETTLE_SECS"
alive "$SERVER_PID" || die "the server died"
after=$(rss_kib "$SERVER_PID")

# Let the clients go; they check that every connection was still open.
exec 3>&-
status=0
wait "$CLIENTS_PID" || status=$?
CLIENTS_PID=""
[ "$status" = 0 ] || die "the clients report: $(tail -n 1 "$WORK/clients.out") (exit $status)"

per_conn=$(( (after - before) * 1024 / N ))
echo "server: $AMPED_BIN (--event-handler $EVENT_HANDLER), front process only"
echo "connections: $N idle keep-alive, each after one GET /1k.bin"
echo "VmRSS before: $before KiB"
echo "VmRSS after:  $after KiB"
echo "per connection: $per_conn bytes ((after - before) / $N)"
