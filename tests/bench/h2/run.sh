#!/usr/bin/env bash
# HTTP/2 benchmark: amped (h2 by ALPN over rustls 0.23, aws-lc-rs) against
# nginx (http2 on, one worker), lighttpd (mod_openssl, its HTTP/2 on) and
# h2o (one thread), all three on Debian's OpenSSL 3, on one self-signed
# ECDSA P-256 certificate, over 127.0.0.1 only, TLS 1.3 with X25519 and
# TLS_AES_128_GCM_SHA256. The load generator is h2load (nghttp2-client);
# amped's own HTTP/1.1 keep-alive figure over TLS is measured in the same
# run with wrk, as the bar for its HTTP/2 CPU per request.
#
# A default run takes about 6 minutes on a 2-CPU machine (5 rounds of
# about 70 s); --quick about 1 minute (1 round, 2 s runs).
#
# Every run: one fresh server pinned to CPU 0 (taskset -c 0), the client
# pinned to CPU 1, every tool bounded in time. In each round every
# workload runs on every server in turn, the servers' order rotating from
# round to round; each cell of the report is the median of the rounds.
# Workloads (names for --workloads):
#   small  h2load -c10 -m100 -i uris.txt: 100 different files of 1 KiB
#          (/s/f00.bin .. f99.bin), 10 connections with 100 streams each
#          (at most what the server's SETTINGS_MAX_CONCURRENT_STREAMS
#          lets h2load open): req/s and the server's CPU µs per request.
#   1m     h2load -c10 -m10 /1m.bin: MB/s (10^6 bytes of body a second)
#          and the server's CPU µs per MB.
#   cgi    h2load -c2 -m5 /cgi-bin/hello.cgi (10 scripts at once): req/s
#          and CPU µs per request. amped runs *.cgi itself; lighttpd with
#          mod_cgi; h2o with file.custom-handler + fastcgi.spawn of its
#          bundled fastcgi-cgi; nginx through fcgiwrap (started as the
#          nginx process's child), or 'n/a' without fcgiwrap.
#   h1ka   amped only: wrk -t1 -c100 https://.../1k.bin (HTTP/1.1
#          keep-alive over TLS, as tests/bench/tls/run.sh's ka1k): the
#          CPU per request that amped's h2 small-file figure must not pass.
# Before each run curl --http2 checks that the server answers over h2 with
# the right bytes; every h2load run must print 'Application protocol: h2'
# and have every request done succeed with a 2xx (no failed, errored or
# timed-out request), else the run is reported as failed and left out of
# the medians. Before the rounds nghttp -nv records each server's ALPN and
# HTTP/2 SETTINGS.
#
# Server CPU: /proc/PID/task/TID/schedstat run time summed over the server
# and its live descendants, plus their cutime + cstime (the reaped CGI
# scripts), after minus before; cross-checked against a cgroup of its own
# (cgroup v1 cpuacct or v2 cpu.stat) holding the server's tree, whose
# figure is used where the two differ by more than 5% (fcgiwrap's workers
# ignore SIGCHLD, so the scripts they run are reaped by no one and show in
# no cutime). Client CPU: the client's own rusage. Each
# run is labelled with the limit it hit: "client" when the client used
# >= 90% of CPU 1, "server" when the server used >= 90% of CPU 0, else
# "neither" (the report also shows how much of each CPU other processes
# took during the run, and labels runs that were full only with that
# noise "+other").
#
# The bars (issue): each rate (small, 1m, cgi) at least 1.0x the best of
# nginx, lighttpd and h2o; where amped's runs were client-bound (h2load on
# CPU 1 the limit), amped's server CPU per request / MB at most the best
# peer's instead; and amped's h2 small-file CPU per request at most its
# own HTTP/1.1 keep-alive CPU per request (h1ka). The report says which
# decided and whether each holds.
#
# Usage: tests/bench/h2/run.sh [--quick] [--reps N] [--secs N]
#                              [--only LIST] [--workloads LIST]
#                              [--out FILE] [--keep] [--bin DIR] [--no-cgroup]
#   --only LIST       servers, comma-separated subset of amped,nginx,lighttpd,h2o
#   --workloads LIST  comma-separated subset of small,1m,cgi,h1ka
#   --quick           1 round (unless --reps), 2 s runs (unless --secs)
#   --reps N          rounds (median reported); default 5
#   --secs N          seconds a run (h2load -D, wrk -d); default 4
#   --out FILE        also write the report to FILE
#   --keep            keep the temp dir (configs, certificate, raw outputs)
#   --bin DIR         amped's binaries (server, helper, cgi-runner); default
#                     the release build, made with cargo build --release
#   --no-cgroup       no cgroup cross-check: server CPU from the process tree only
# Installs nginx, lighttpd, lighttpd-mod-openssl, h2o, nghttp2-client,
# fcgiwrap, wrk, curl and openssl with apt-get when missing (needs root).
# Exits 1 when a server failed to start, answered wrongly, died, or a run
# had errors (failed requests, no h2).
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
die() { echo "h2/run.sh: $*" >&2; exit 2; }
log() { echo "[h2-bench] $*" >&2; }
# install_packages, raise_nofile, build_amped, trap_cleanup, missing_peers,
# run_python_half, stop_python_half.
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$BENCH_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --quick|--no-cgroup) PY_ARGS+=("$1"); shift ;;
        --reps|--secs|--only|--workloads)
            [ $# -ge 2 ] || die "$1 needs a value"; PY_ARGS+=("$1" "$2"); shift 2 ;;
        --reps=*|--secs=*|--only=*|--workloads=*) PY_ARGS+=("$1"); shift ;;
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
[ -x /usr/sbin/fcgiwrap ] || missing+=(fcgiwrap)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v nghttp >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v perl >/dev/null 2>&1 || missing+=(perl)   # h2o's fastcgi-cgi
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# shellcheck disable=SC2207  # package names have no spaces
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
install_packages "${missing[@]}"
curl -V | grep -qw HTTP2 || die "this curl has no HTTP/2"

[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, clients on CPU 1)"
raise_nofile

if [ -z "$BIN_DIR" ]; then
    build_amped
    BIN_DIR=$(dirname "$AMPED_BIN")
    BUILT="built here from $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    [ -z "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] ||
        BUILT="$BUILT + uncommitted edits"
else
    BUILT="from --bin $BIN_DIR (the tree here is at $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
fi
[ -x "$BIN_DIR/server" ] || die "no amped server in $BIN_DIR"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-h2-bench.XXXXXX")
chmod 755 "$WORK"

run_python_half python3 "$SCRIPT_DIR/h2bench.py" --work "$WORK" --bin "$BIN_DIR" --built "$BUILT" \
    --command "tests/bench/h2/run.sh${ARGS_GIVEN:+ $ARGS_GIVEN}" "${PY_ARGS[@]}"
