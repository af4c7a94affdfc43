#!/usr/bin/env bash
# HTTPS benchmark: amped (rustls 0.23, aws-lc-rs) against nginx (one
# worker), lighttpd (mod_openssl) and h2o (one thread), all three on
# Debian's OpenSSL 3, on one self-signed ECDSA P-256 certificate, over
# 127.0.0.1 only, TLS 1.3 with X25519 and TLS_AES_128_GCM_SHA256 for
# every server (the clients offer nothing else; nginx and lighttpd are
# also configured to accept nothing else).
#
# A default run takes about 8 minutes on a 2-CPU machine (3 rounds of
# about 2.5 minutes); --quick about 1.5 minutes (1 round, 3 s runs, 1,000
# idle connections).
#
# Every run: one fresh server pinned to CPU 0 (taskset -c 0), the client
# pinned to CPU 1, every tool bounded in time or count. In each round
# every workload runs on every server in turn, the servers' order
# rotating from round to round; each cell of the report is the median of
# the rounds. Workloads (names for --workloads):
#   handshake  hs_client (hs_client.c, built here with gcc): 10 connections
#              at once, each a new TCP connection, a full TLS 1.3 handshake,
#              one GET /1k.bin with Connection: close, then closed; the
#              client never offers a session (checked per connection with
#              SSL_session_reused: the report counts resumptions, 0). Full
#              handshakes/s and the server's CPU µs per handshake.
#   ka1k       wrk -t1 -c100 https://.../1k.bin (keep-alive): req/s and the
#              server's CPU ns per request.
#   1m         wrk -t1 -c10 https://.../1m.bin: MB/s (10^6 bytes of body a
#              second) and the server's CPU µs per MB.
#   idle       200 handshakes to warm up, then idle_tls_holder.py opens
#              --idle-conns TLS connections (each: full handshake, one GET
#              /1k.bin, then idle); the growth of the server's RSS (summed
#              over its process tree) divided by their number.
# Server CPU: /proc/PID/task/TID/schedstat run time summed over the server
# and its live descendants, after minus before. Client CPU: the client's
# own rusage. Each run is labelled with the limit it hit: "client" when the
# client used >= 90% of CPU 1, "server" when the server used >= 90% of CPU
# 0, else "neither"; the report also shows how much of each CPU other
# processes took during the run (noise). Before the rounds, openssl
# s_client records what each server negotiates with the benchmark's
# client settings and with an unrestricted client, how many session
# tickets it sends, and whether it would resume a session offered to it.
#
# The bars (issue): each rate at least 1.0x the best of nginx, lighttpd
# and h2o; where amped's runs were client-bound, amped's server CPU per
# handshake / request / MB at most the best peer's instead; memory per
# idle TLS connection at most nginx's. The report says which decided and
# whether each holds.
#
# Usage: tests/bench/tls/run.sh [--quick] [--reps N] [--secs N]
#                               [--only LIST] [--workloads LIST]
#                               [--idle-conns N] [--out FILE] [--keep]
#                               [--bin DIR]
#   --only LIST       servers, comma-separated subset of amped,nginx,lighttpd,h2o
#   --workloads LIST  comma-separated subset of handshake,ka1k,1m,idle
#   --quick           1 round (unless --reps), 3 s runs, 1,000 idle connections
#   --reps N          rounds (median reported); default 3
#   --secs N          seconds a run (default 6)
#   --idle-conns N    idle connections (default 4000)
#   --out FILE        also write the report to FILE
#   --keep            keep the temp dir (configs, certificate, raw outputs)
#   --bin DIR         amped's binaries (server, helper, cgi-runner); default
#                     the release build, made with cargo build --release
# Installs nginx, lighttpd, lighttpd-mod-openssl, h2o, wrk, openssl, gcc
# and libssl-dev with apt-get when missing (needs root). Exits 1 when a
# server failed to start, answered wrongly, died, or a run had errors.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
AMPED_BIN="$TARGET_DIR/release/server"
ARGS_GIVEN="$*"
BIN_DIR=""
PY_ARGS=()
KEEP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "tls/run.sh: $*" >&2; exit 2; }
log() { echo "[tls-bench] $*" >&2; }
# install_packages, raise_nofile, build_amped, trap_cleanup, missing_peers,
# run_python_half, stop_python_half.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$BENCH_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) PY_ARGS+=(--quick); shift ;;
        --reps|--secs|--only|--workloads|--idle-conns)
            [ $# -ge 2 ] || die "$1 needs a value"; PY_ARGS+=("$1" "$2"); shift 2 ;;
        --reps=*|--secs=*|--only=*|--workloads=*|--idle-conns=*) PY_ARGS+=("$1"); shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift 2
            case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac; PY_ARGS+=(--out "$OUT") ;;
        --bin) [ $# -ge 2 ] || die "--bin needs a directory"; BIN_DIR=$(cd "$2" && pwd) || die "--bin: no directory $2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done

WORK=""
SERVER_PID=""   # lib.sh's stop_server; the Python half starts and stops the servers
# shellcheck disable=SC2317  # run by the EXIT trap (trap_cleanup)
cleanup() { stop_python_half; }
trap_cleanup

# --- tools -----------------------------------------------------------------

missing=()
missing_peers
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
install_packages "${missing[@]}"

[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, clients on CPU 1)"
raise_nofile

if [ -z "$BIN_DIR" ]; then
    build_amped
    BIN_DIR=$(dirname "$AMPED_BIN")
fi
[ -x "$BIN_DIR/server" ] || die "no amped server in $BIN_DIR"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-tls-bench.XXXXXX")
chmod 755 "$WORK"
log "building hs_client (gcc -O2 hs_client.c -lssl -lcrypto)"
gcc -O2 -Wall -o "$WORK/hs_client" "$SCRIPT_DIR/hs_client.c" -lssl -lcrypto >&2

run_python_half python3 "$SCRIPT_DIR/tlsbench.py" --work "$WORK" --bin "$BIN_DIR" \
    --hs-client "$WORK/hs_client" \
    --command "tests/bench/tls/run.sh${ARGS_GIVEN:+ $ARGS_GIVEN}" "${PY_ARGS[@]}"
