#!/usr/bin/env bash
# Benchmark: amped with --workers 1 against --workers 2, keep-alive GET of
# a 1 KiB file, on this machine over loopback.
#
# Nothing is pinned: the server's workers and the load generator (wrk, two
# threads) share every CPU, as they would on a real host, so the figure
# says what a second worker buys when the load generator competes for the
# same cores. The two settings take turns, ROUNDS rounds of SECS seconds
# each (default 2 rounds of 8 s: 32 s of load). Before each run the
# server must answer 200 with the file's exact bytes; a run with errors or
# non-2xx replies is flagged.
#
# Usage: tests/bench/workers.sh [--secs N] [--rounds N] [--connections N]
# Needs wrk and curl (installed with apt-get when missing); builds amped with
# `cargo build --release --bins`.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_PY="$SCRIPT_DIR/bench.py"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
AMPED_BIN="$TARGET_DIR/release/server"
SECS=8
ROUNDS=2
CONNECTIONS=100

log() { echo "[workers] $*" >&2; }
die() { log "$*"; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --connections) CONNECTIONS=$2; shift 2 ;;
        *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done

# shellcheck source=tests/bench/lib.sh
. "$SCRIPT_DIR/lib.sh"

WORK=""
SERVER_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    remove_work
    exit "$rc"
}
trap_cleanup

missing_pkgs=()
for tool in wrk curl; do command -v "$tool" >/dev/null 2>&1 || missing_pkgs+=("$tool"); done
install_packages "${missing_pkgs[@]}"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
build_amped

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-workers.XXXXXX")
DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
head -c 1024 /dev/urandom >"$DOCROOT/1k.bin"

# start_amped WORKERS: starts amped on a port of the OS's choosing and
# sets PORT once it answers.
start_amped() {
    start_printing_port amped "$AMPED_BIN" --listen 127.0.0.1:0 --root "$DOCROOT" \
        --workers "$1" --event-handler epoll --access-log off
}

declare -A RUNS=()
FLAGGED=0
for ((round = 1; round <= ROUNDS; round++)); do
    for workers in 1 2; do
        start_amped "$workers" || die "amped --workers $workers did not start"
        verify "$PORT" /1k.bin "$DOCROOT/1k.bin" || die "amped --workers $workers: wrong answer"
        out="$WORK/wrk-$workers-$round.txt"
        log "round $round: --workers $workers: wrk -t2 -c$CONNECTIONS -d${SECS}s GET /1k.bin"
        timeout $((SECS + 30)) wrk -t2 -c"$CONNECTIONS" -d"${SECS}s" \
            "http://127.0.0.1:$PORT/1k.bin" >"$out" 2>&1 || true
        IFS=$'\t' read -r rate errors notes < <(python3 "$BENCH_PY" parse wrk "$out" 0)
        if [ "$errors" != 0 ]; then
            FLAGGED=1
            rate="$rate (⚠ $notes)"
        fi
        RUNS[$workers]+="${RUNS[$workers]:+, }$rate"
        stop_server
    done
done

echo "| workers | req/s, each run (rounds alternate) |"
echo "|---:|---|"
for workers in 1 2; do
    echo "| $workers | ${RUNS[$workers]} |"
done
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); nproc $(nproc); load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg); amped $(git -C "$REPO_ROOT" rev-parse --short HEAD); wrk -t2 -c$CONNECTIONS -d${SECS}s, unpinned"
[ "$FLAGGED" = 0 ] || { log "a run had errors or non-2xx replies"; exit 1; }
