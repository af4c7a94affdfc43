#!/usr/bin/env bash
# Benchmark: amped against nginx (one worker) and lighttpd, plus a bare
# epoll responder as a floor for the small-file workloads, all on one
# generated document root, on this machine, over 127.0.0.1 only.
#
# A default run takes about 20 minutes on a 2-CPU machine (3 rounds of
# about 6 minutes; see "Time" below); --quick about 3 minutes.
#
# Every run: one fresh server, pinned to CPU 0 (taskset -c 0; its helpers,
# cgi-runner and CGI scripts inherit that), the load generator pinned to
# CPU 1, every tool bounded in time or count. In each round every workload
# runs on every server in turn, the servers' order rotating from round to
# round; each cell of the report is the median of the rounds. Workloads
# (names for --workloads):
#   1m        wrk -t1 -c50  GET /1m.bin  (1 MiB; req/s and GB/s)
#   10m       wrk -t1 -c10  GET /10m.bin (10 MiB; req/s and GB/s)
#   1k        wrk -t1 -c100 GET /1k.bin                       (+ responder)
#   1k-c1000  wrk -t1 -c1000 GET /1k.bin                      (+ responder)
#   files     wrk -t1 -c100, a Lua script walking 1,000 distinct 1 KiB
#             files /files/f0000.bin .. f0999.bin in rotation (+ responder)
#   newconn   httperf --num-conns 20000 --num-calls 1 --uri / (a new TCP
#             connection per request)
#   cgi       wrk -t1 -c10 GET /cgi-bin/hello.cgi (amped and lighttpd's
#             mod_cgi run the same script; nginx has no CGI; the responder
#             runs it too, once per request, as a floor: --cgi)
#   idle      wrk -t1 -c100 GET /1k.bin alone, then 10,000 idle keep-alive
#             connections (idle_holder.py: each sent one GET and read the
#             reply) and the server's RSS growth per connection, then the
#             same wrk beside them
#   cold      2,000 files of 256 KiB (500 MiB, in the page cache, larger
#             than amped's --cache-size 64M), wrk -t1 -c100 with a Lua
#             script walking them in rotation
# Each wrk run has --latency (p50, p99). Each run also measures the server's
# CPU time per request: utime+stime+cutime+cstime (/proc/PID/stat) summed
# over the server process and all its live descendants, after minus
# before, over the requests completed. Before measuring, each server must
# answer 200 with the right bytes for the workload's paths. The report
# (Markdown, on stdout and --out) has the medians, the amped/nginx and
# amped/lighttpd ratios, CPU per request, latency, the idle table, the
# bars of issue 11 with whether each holds, the machine and the commands;
# --svg draws the ratios with gnuplot. Parsing, the report and the chart
# are done by bench.py beside this script.
#
# Servers, as equal as their options allow: no access log for any (amped
# --access-log off, nginx access_log off, lighttpd without mod_accesslog);
# keep-alive 65 s idle and 1,000,000 requests a connection; a listen
# backlog of 4096; connection limits above the idle workload's. nginx runs
# with `master_process off; daemon off; worker_processes 1` (one process,
# the one this script starts), sendfile on, no open_file_cache (its
# default). amped runs with its defaults otherwise (2 disk helpers,
# --cache-size 64M, files up to 64K kept in memory). The responder
# (responder.c, built with gcc) answers every request head with one fixed
# 200 carrying 1k.bin's bytes, parsing nothing; on the CGI workload it
# runs hello.cgi once per request and answers with its output (--cgi).
#
# httperf runs WITHOUT --hog on purpose. With --hog, httperf 0.9.0 bind()s
# each source port itself, from 1024 up, without SO_REUSEADDR; once an
# earlier run has left ~20000 ports in TIME_WAIT, every new connection
# walks through failing bind() calls again (measured: 1.2 million failed
# binds for 12,000 connections), and the run crawls at tens to hundreds of
# requests a second or times out. Without --hog the kernel picks the port
# and, on loopback with net.ipv4.tcp_tw_reuse=2 (the default) or 1, reuses
# TIME_WAIT ports safely, so back-to-back runs measure the server. With
# tcp_tw_reuse=0 the 28k ephemeral ports run out; the script says so.
#
# Time: a round is about 6 minutes: 29 wrk runs of 10 s (3 servers on 1m,
# 10m and cold; 4 on 1k, 1k-c1000 and files; 2 on cgi; 2 each for the 3
# servers on idle), 3 httperf runs, opening the idle connections 3 times,
# and starting and checking 27 servers (about a minute in all). Writing
# the 500 MiB cold set takes a few seconds more.
#
# Usage: tests/bench/run.sh [--only LIST] [--workloads LIST] [--quick]
#                           [--reps N] [--idle-conns N] [--out FILE]
#                           [--svg FILE] [--keep]
#   --only LIST       servers, comma-separated subset of
#                     amped,nginx,lighttpd,responder (default all)
#   --workloads LIST  comma-separated subset of
#                     1m,10m,1k,1k-c1000,files,newconn,cgi,idle,cold
#   --quick           wrk -d3s, httperf --num-conns 5000, 1 round (unless
#                     --reps)
#   --reps N          rounds (median reported); default 3
#   --idle-conns N    idle connections (default 10000; lowered, and the
#                     report says so, when the descriptor limit does not let
#                     lighttpd hold them)
#   --out FILE        also write the report to FILE
#   --svg FILE        draw the ratio chart into FILE (gnuplot)
#   --keep            keep the temp dir (docroot, configs, raw tool output)
# Installs nginx-light, lighttpd, wrk, httperf, gcc and gnuplot-nox with
# apt-get when missing (needs root); builds amped with
# `cargo build --release --bins`. Exits 1 when a server failed to start,
# answered wrongly or died.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_PY="$SCRIPT_DIR/bench.py"
HOLDER_PY="$SCRIPT_DIR/idle_holder.py"
NGINX_BIN=/usr/sbin/nginx
LIGHTTPD_BIN=/usr/sbin/lighttpd
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
AMPED_BIN="$TARGET_DIR/release/server"
ALL_SERVERS=(amped nginx lighttpd responder)
ALL_WORKLOADS=(1m 10m 1k 1k-c1000 files newconn cgi idle cold)

ONLY=$(IFS=,; echo "${ALL_SERVERS[*]}")
WORKLOADS=$(IFS=,; echo "${ALL_WORKLOADS[*]}")
QUICK=0
REPS=""
OUT=""
SVG=""
KEEP=0
WRK_SECS=10
HTTPERF_CONNS=20000
IDLE_CONNS=10000
NFILES=1000          # the 1 KiB files in rotation
NCOLD=2000           # the cold set: NCOLD files of COLD_SIZE bytes
COLD_SIZE=262144
AMPED_CACHE=64M
HOLDER_DEADLINE=150  # seconds the idle connections get to open
ARGS_GIVEN="$*"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "run.sh: $*" >&2; exit 2; }
log() { echo "[bench] $*" >&2; }
# Shared functions: alive, start_time, stop_server, wait_http, verify,
# verify_cgi, first_line.
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --only) [ $# -ge 2 ] || die "--only needs a list"; ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#--only=}; shift ;;
        --workloads) [ $# -ge 2 ] || die "--workloads needs a list"; WORKLOADS=$2; shift 2 ;;
        --workloads=*) WORKLOADS=${1#--workloads=}; shift ;;
        --quick) QUICK=1; shift ;;
        --reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; shift 2 ;;
        --reps=*) REPS=${1#--reps=}; shift ;;
        --idle-conns) [ $# -ge 2 ] || die "--idle-conns needs a number"; IDLE_CONNS=$2; shift 2 ;;
        --idle-conns=*) IDLE_CONNS=${1#--idle-conns=}; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --svg) [ $# -ge 2 ] || die "--svg needs a file"; SVG=$2; shift 2 ;;
        --svg=*) SVG=${1#--svg=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    WRK_SECS=3
    HTTPERF_CONNS=5000
    REPS=${REPS:-1}
fi
REPS=${REPS:-3}
case "$REPS" in ''|*[!0-9]*|0) die "--reps must be a positive integer" ;; esac
case "$IDLE_CONNS" in ''|*[!0-9]*|0) die "--idle-conns must be a positive integer" ;; esac
# Relative paths for --out and --svg are the caller's.
[ -z "$OUT" ] || case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
[ -z "$SVG" ] || case "$SVG" in /*) ;; *) SVG="$PWD/$SVG" ;; esac

SERVERS=()
IFS=',' read -r -a _list <<<"$ONLY"
for s in "${_list[@]}"; do
    case "$s" in
        amped|nginx|lighttpd|responder) SERVERS+=("$s") ;;
        '') ;;
        *) die "--only: unknown server '$s' (${ALL_SERVERS[*]})" ;;
    esac
done
[ ${#SERVERS[@]} -gt 0 ] || die "--only selected no server"
WLS=()
IFS=',' read -r -a _list <<<"$WORKLOADS"
for w in "${_list[@]}"; do
    case " ${ALL_WORKLOADS[*]} " in
        *" $w "*) WLS+=("$w") ;;
        *) [ -z "$w" ] || die "--workloads: unknown workload '$w' (${ALL_WORKLOADS[*]})" ;;
    esac
done
[ ${#WLS[@]} -gt 0 ] || die "--workloads selected no workload"
want() { local x; for x in "${SERVERS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
want_wl() { local x; for x in "${WLS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
small_wl() { case "$1" in 1k|1k-c1000|files) return 0 ;; esac; return 1; }
# serves WORKLOAD SERVER: that server takes part in that workload.
serves() {
    case "$2" in
        responder) small_wl "$1" || [ "$1" = cgi ] ;;
        nginx) [ "$1" != cgi ] ;;
        *) return 0 ;;
    esac
}
want_responder() { want responder && { want_wl 1k || want_wl 1k-c1000 || want_wl files || want_wl cgi; }; }

# --- state and cleanup ------------------------------------------------------

WORK=""
SERVER_PID=""      # the one server running now, started by this script
HOLDER_PID=""      # idle_holder.py, while it runs
FAILED=0

stop_holder() {
    [ -n "$HOLDER_PID" ] || return 0
    exec 3>&- 2>/dev/null || true
    kill -TERM "$HOLDER_PID" 2>/dev/null || true
    wait "$HOLDER_PID" 2>/dev/null || true
    HOLDER_PID=""
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_holder
    stop_server
    remove_work
    exit "$rc"
}
trap_cleanup

# Load before this script adds its own (the build and the runs): other
# work on the machine makes the numbers noisy, and the report says so.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$SECONDS

# --- 1. tools ---------------------------------------------------------------

missing_pkgs=()
command -v wrk >/dev/null 2>&1 || missing_pkgs+=(wrk)
want_wl newconn && ! command -v httperf >/dev/null 2>&1 && missing_pkgs+=(httperf)
command -v curl >/dev/null 2>&1 || missing_pkgs+=(curl)
command -v taskset >/dev/null 2>&1 || missing_pkgs+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing_pkgs+=(python3)
want nginx && ! [ -x "$NGINX_BIN" ] && missing_pkgs+=(nginx-light)
want lighttpd && ! [ -x "$LIGHTTPD_BIN" ] && missing_pkgs+=(lighttpd)
want_responder && ! command -v gcc >/dev/null 2>&1 && missing_pkgs+=(gcc libc6-dev)
[ -n "$SVG" ] && ! command -v gnuplot >/dev/null 2>&1 && missing_pkgs+=(gnuplot-nox)
# nginx-light is a transitional name on newer Debian; fall back.
install_packages "${missing_pkgs[@]}" || install_packages "${missing_pkgs[@]/#nginx-light/nginx}"

[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load generator on CPU 1)"

# Descriptors for the servers, wrk -c1000 and the idle connections: as
# many as the hard limit allows, up to 65536.
raise_nofile
# Connection limits: nginx's worker_connections and amped's
# --max-connections; lighttpd allows at most half its max-fds.
CONN_LIMIT=$((NOFILE - 100 < 16384 ? NOFILE - 100 : 16384))
LIGHTTPD_CONNS=$((NOFILE / 2 < 16384 ? NOFILE / 2 : 16384))
IDLE_NOTE=""
LIGHTTPD_IDLE=$IDLE_CONNS
if want_wl idle; then
    if [ "$IDLE_CONNS" -gt $((CONN_LIMIT - 300)) ]; then
        IDLE_NOTE="$IDLE_CONNS idle connections asked for, $((CONN_LIMIT - 300)) used: the descriptor limit here is $NOFILE (ulimit -Hn)"
        IDLE_CONNS=$((CONN_LIMIT - 300))
        LIGHTTPD_IDLE=$IDLE_CONNS
    fi
    if want lighttpd && [ "$IDLE_CONNS" -gt $((LIGHTTPD_CONNS - 300)) ]; then
        # lighttpd holds at most max-fds/2 connections, and max-fds is at
        # most the hard descriptor limit; wrk's 100 must fit beside them.
        LIGHTTPD_IDLE=$((LIGHTTPD_CONNS - 300))
        IDLE_NOTE="${IDLE_NOTE:+$IDLE_NOTE; }lighttpd holds $LIGHTTPD_IDLE idle connections, not $IDLE_CONNS: it accepts at most max-fds/2 = $LIGHTTPD_CONNS connections, wrk's 100 among them, and max-fds is bounded by the descriptor limit here ($NOFILE, ulimit -Hn)"
    fi
    [ -z "$IDLE_NOTE" ] || log "warning: $IDLE_NOTE"
fi

# --- 2. build ---------------------------------------------------------------

if want amped; then build_amped; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-bench.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/logs"

RESPONDER_BIN="$WORK/responder"
if want_responder; then
    log "building the responder (gcc -O2 responder.c)"
    gcc -O2 -Wall -o "$RESPONDER_BIN" "$SCRIPT_DIR/responder.c" >&2
fi

# --- 3. docroot -------------------------------------------------------------

DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
if [ -d "$REPO_ROOT/www" ]; then
    cp -a "$REPO_ROOT/www/." "$DOCROOT/"
fi
if ! [ -f "$DOCROOT/index.html" ]; then
    # www/ has no index page: give every server the same small one.
    {
        echo '<!DOCTYPE html>'
        echo '<html><head><meta charset="utf-8"><title>amped</title></head>'
        echo '<body><h1>amped</h1><p>Benchmark index page.</p></body></html>'
    } >"$DOCROOT/index.html"
fi
bench() { python3 "$BENCH_PY" "$@"; }
head -c 1024 /dev/urandom >"$DOCROOT/1k.bin"
head -c $((1024 * 1024)) /dev/urandom >"$DOCROOT/1m.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$DOCROOT/10m.bin"
[ "$(stat -c %s "$DOCROOT/1k.bin")" -eq 1024 ] || die "1k.bin is not 1024 bytes"
if want_wl files; then
    bench files "$DOCROOT/files" "$NFILES" 1024
    bench rotation /files/ "$NFILES" >"$WORK/files.lua"
fi
if want_wl cold; then
    log "writing the cold set: $NCOLD files of $COLD_SIZE bytes"
    bench files "$DOCROOT/cold" "$NCOLD" "$COLD_SIZE"
    bench rotation /cold/ "$NCOLD" >"$WORK/cold.lua"
fi
chmod -R a+rX "$DOCROOT"

# --- 4. servers ---------------------------------------------------------------

PORT=""

AMPED_ARGS=(--listen 127.0.0.1:0 --root "$DOCROOT" --event-handler epoll
    --access-log off --cache-size "$AMPED_CACHE" --max-connections "$CONN_LIMIT"
    --keepalive-timeout 65 --keepalive-requests 1000000)

# Servers run on CPU 0 (start_printing_port is lib.sh's).
start_amped() { start_printing_port amped taskset -c 0 "$AMPED_BIN" "${AMPED_ARGS[@]}"; }

start_responder() {
    local what=("$DOCROOT/1k.bin")
    # The CGI workload: the same script, run once per request (--cgi).
    [ "$WL" != cgi ] || what=(--cgi "$DOCROOT/cgi-bin/hello.cgi")
    start_printing_port responder taskset -c 0 "$RESPONDER_BIN" "${what[@]}"
}

start_nginx() {
    local dir="$WORK/nginx"
    mkdir -p "$dir/body"
    PORT=$(bench freeport)
    cat >"$dir/nginx.conf" <<EOF
# generated by tests/bench/run.sh
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $CONN_LIMIT; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path $dir/body;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        root $DOCROOT;
        index index.html;
    }
}
EOF
    taskset -c 0 "$NGINX_BIN" -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" \
        >"$dir/stdout" 2>&1 &
    SERVER_PID=$!
    if ! wait_http "$PORT"; then
        log "nginx did not come up; its log:"
        tail -n 20 "$dir/error.log" "$dir/stdout" >&2 2>/dev/null || true
        return 1
    fi
}

start_lighttpd() {
    local dir="$WORK/lighttpd"
    mkdir -p "$dir"
    PORT=$(bench freeport)
    cat >"$dir/lighttpd.conf" <<EOF
# generated by tests/bench/run.sh; no mod_accesslog, so no access log
server.document-root = "$DOCROOT"
server.bind = "127.0.0.1"
server.port = $PORT
server.errorlog = "$dir/error.log"
server.max-fds = $NOFILE
server.max-connections = $LIGHTTPD_CONNS
server.listen-backlog = 4096
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 65
server.modules = ( "mod_cgi" )
cgi.assign = ( ".cgi" => "" )
index-file.names = ( "index.html" )
mimetype.assign = (
    ".html" => "text/html",
    ".htm"  => "text/html",
    ".txt"  => "text/plain",
    ".css"  => "text/css",
    ".js"   => "text/javascript",
    ".png"  => "image/png",
    ".bin"  => "application/octet-stream",
    ""      => "application/octet-stream",
)
EOF
    taskset -c 0 "$LIGHTTPD_BIN" -D -f "$dir/lighttpd.conf" >"$dir/stdout" 2>&1 &
    SERVER_PID=$!
    if ! wait_http "$PORT"; then
        log "lighttpd did not come up; its log:"
        tail -n 20 "$dir/error.log" "$dir/stdout" >&2 2>/dev/null || true
        return 1
    fi
}

start_server() {
    local name=$1 try
    for try in 1 2 3; do   # a free port can be taken between pick and bind
        if "start_$name"; then
            return 0
        fi
        stop_server
        case "$name" in amped|responder) break ;; esac
        log "$name: start attempt $try failed"
    done
    return 1
}

# verify_workload WL: the running server answers that workload's paths
# with the right bytes.
verify_workload() {
    local f
    case "$1" in
        1m) verify "$PORT" /1m.bin "$DOCROOT/1m.bin" ;;
        10m) verify "$PORT" /10m.bin "$DOCROOT/10m.bin" ;;
        1k|1k-c1000|idle) verify "$PORT" /1k.bin "$DOCROOT/1k.bin" ;;
        files|cold)
            local n=$NFILES
            [ "$1" = files ] || n=$NCOLD
            for f in f0000.bin f0001.bin "f$(printf '%04d' $((n / 2))).bin" \
                     "f$(printf '%04d' $((n - 1))).bin"; do
                if [ "$SERVER" = responder ]; then
                    # Any path gets the same 1 KiB: check it is 1k.bin's.
                    verify "$PORT" "/$1/$f" "$DOCROOT/1k.bin" || return 1
                else
                    verify "$PORT" "/$1/$f" "$DOCROOT/$1/$f" || return 1
                fi
            done ;;
        newconn) verify "$PORT" / "$DOCROOT/index.html" ;;
        cgi) verify_cgi "$PORT" ;;
    esac
}

# --- 5. measure ---------------------------------------------------------------

TW_REUSE=$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo '?')
if [ "$TW_REUSE" = 0 ] && want_wl newconn; then
    log "warning: net.ipv4.tcp_tw_reuse=0: back-to-back httperf runs may run out of ports (addrunavail errors)"
fi

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
T0=nan
T1=nan

# record ROUND WL SERVER TOOL OUTPUT [KEY=VALUE ...]: one run into RESULTS,
# with the CPU ticks T0 -> T1 that run_tool took.
record() {
    local summary
    summary=$(bench record "$RESULTS" "$1" "$2" "$3" "$4" "$5" "$T0" "$T1" "${@:6}")
    log "  -> $summary"
}

# run_tool OUTPUT TIMEOUT CMD...: run CMD on CPU 1, the server's CPU ticks
# before and after into T0 and T1 (T1=nan when the server died).
run_tool() {
    local out=$1 limit=$2
    shift 2
    T0=$(bench cputicks "$SERVER_PID") || T0=nan
    timeout "$limit" taskset -c 1 "$@" >"$out" 2>&1 || true
    if alive "$SERVER_PID"; then
        T1=$(bench cputicks "$SERVER_PID") || T1=nan
    else
        T1=nan
    fi
}

# wrk_run TAG ARGS... URLPATH: wrk -t1 ARGS -dSECS --latency URL.
wrk_run() {
    local out=$1
    shift
    local path=${*: -1}
    run_tool "$out" $((WRK_SECS + 60)) wrk -t1 "${@:1:$#-1}" -d"${WRK_SECS}s" --latency \
        "http://127.0.0.1:$PORT$path"
}

died() { alive "$SERVER_PID" && return 1; FAILED=1; return 0; }

# measure_idle ROUND: wrk alone, then the idle connections and the RSS,
# then wrk beside them.
measure_idle() {
    local rep=$1
    local tag="$WORK/logs/$rep.idle.$SERVER" f0 r0 f1 r1 line status
    local extra=() conns=$IDLE_CONNS
    [ "$SERVER" != lighttpd ] || conns=$LIGHTTPD_IDLE
    log "round $rep, idle, $SERVER: wrk -t1 -c100 alone"
    wrk_run "$tag.alone.txt" -c100 /1k.bin
    if died; then
        record "$rep" idle-alone "$SERVER" wrk "$tag.alone.txt" "error=server died during the run"
        return
    fi
    record "$rep" idle-alone "$SERVER" wrk "$tag.alone.txt"
    read -r f0 r0 <<<"$(bench rss "$SERVER_PID")"
    log "round $rep, idle, $SERVER: opening $conns idle keep-alive connections (RSS $f0 KiB)"
    rm -f "$WORK/holder.in"
    mkfifo "$WORK/holder.in"
    taskset -c 1 python3 "$HOLDER_PY" "$PORT" "$conns" --path /1k.bin \
        --timeout "$HOLDER_DEADLINE" --hold $((WRK_SECS + 180)) \
        <"$WORK/holder.in" >"$tag.holder.txt" 2>&1 &
    HOLDER_PID=$!
    # Holding the fifo's write end keeps the connections idle; closing it
    # lets them go.
    exec 3>"$WORK/holder.in"
    local deadline=$((SECONDS + HOLDER_DEADLINE + 10))
    while [ "$SECONDS" -lt "$deadline" ] && alive "$HOLDER_PID" &&
          ! grep -q '^READY\|^FAILED' "$tag.holder.txt"; do
        sleep 0.2
    done
    if ! grep -q "^READY $conns\$" "$tag.holder.txt"; then
        line=$(tail -n 1 "$tag.holder.txt" 2>/dev/null || true)
        stop_holder
        T0=nan T1=nan
        record "$rep" idle "$SERVER" none - "conns=$conns" "error=idle connections: ${line:-no answer}"
        died || true
        return
    fi
    sleep 2
    if died; then
        stop_holder
        T0=nan T1=nan
        record "$rep" idle "$SERVER" none - "conns=$conns" "error=server died with the idle connections open"
        return
    fi
    read -r f1 r1 <<<"$(bench rss "$SERVER_PID")"
    log "round $rep, idle, $SERVER: RSS $f1 KiB with them; wrk -t1 -c100 beside them"
    wrk_run "$tag.beside.txt" -c100 /1k.bin
    died && extra+=("error=server died during the run")
    exec 3>&-
    status=0
    wait "$HOLDER_PID" || status=$?
    HOLDER_PID=""
    line=$(tail -n 1 "$tag.holder.txt" 2>/dev/null || true)
    [ "$status" = 0 ] || extra+=("error=idle connections at the end: $line")
    record "$rep" idle "$SERVER" wrk "$tag.beside.txt" "conns=$conns" \
        "rss_before=$f0" "rss_after=$f1" "tree_before=$r0" "tree_after=$r1" "${extra[@]}"
}

# not_measured ROUND WL WHY: records a run of SERVER that did not happen.
not_measured() {
    T0=nan T1=nan
    record "$1" "$2" "$SERVER" none - "error=$3"
    FAILED=1
}

# run_one ROUND WL: one measurement of SERVER, a fresh server.
run_one() {
    local rep=$1 wl=$2 out="$WORK/logs/$1.$2.$SERVER.txt" path
    WL=$wl   # for start_responder
    log "round $rep, $wl, $SERVER: starting"
    if ! start_server "$SERVER"; then
        log "$SERVER: failed to start"
        not_measured "$rep" "$wl" "server did not start"
        return
    fi
    if ! verify_workload "$wl"; then
        log "$SERVER: wrong answer before measuring; not measured"
        not_measured "$rep" "$wl" "verification failed"
        stop_server
        return
    fi
    log "round $rep, $wl, $SERVER: ${CMD[$wl]//PORT/$PORT}"
    case "$wl" in
        1m) wrk_run "$out" -c50 /1m.bin ;;
        10m) wrk_run "$out" -c10 /10m.bin ;;
        1k) wrk_run "$out" -c100 /1k.bin ;;
        1k-c1000) wrk_run "$out" -c1000 /1k.bin ;;
        files) wrk_run "$out" -c100 -s "$WORK/files.lua" /files/f0000.bin ;;
        cgi) wrk_run "$out" -c10 /cgi-bin/hello.cgi ;;
        cold)
            # In the page cache before measuring (a no-op when already there).
            cat "$DOCROOT"/cold/* >/dev/null
            wrk_run "$out" -c100 -s "$WORK/cold.lua" /cold/f0000.bin ;;
        newconn)
            run_tool "$out" 300 httperf --server 127.0.0.1 --port "$PORT" \
                --uri / --num-conns "$HTTPERF_CONNS" --num-calls 1 --timeout 5 ;;
        idle) measure_idle "$rep"; stop_server; return ;;
    esac
    path=wrk
    [ "$wl" != newconn ] || path=httperf
    if died; then
        record "$rep" "$wl" "$SERVER" "$path" "$out" "expected=$HTTPERF_CONNS" "error=server died during the run"
    else
        record "$rep" "$wl" "$SERVER" "$path" "$out" "expected=$HTTPERF_CONNS"
    fi
    stop_server
}

# The load generators' command lines, for the log and the report.
declare -A CMD
W="taskset -c 1 wrk -t1"
D="-d${WRK_SECS}s --latency"
CMD[1m]="$W -c50 $D http://127.0.0.1:PORT/1m.bin"
CMD[10m]="$W -c10 $D http://127.0.0.1:PORT/10m.bin"
CMD[1k]="$W -c100 $D http://127.0.0.1:PORT/1k.bin"
CMD[1k-c1000]="$W -c1000 $D http://127.0.0.1:PORT/1k.bin"
CMD[files]="$W -c100 -s files.lua $D http://127.0.0.1:PORT/files/f0000.bin (files.lua: /files/f0000.bin .. f$(printf '%04d' $((NFILES - 1))).bin in rotation)"
CMD[newconn]="taskset -c 1 httperf --server 127.0.0.1 --port PORT --uri / --num-conns $HTTPERF_CONNS --num-calls 1 --timeout 5"
CMD[cgi]="$W -c10 $D http://127.0.0.1:PORT/cgi-bin/hello.cgi"
CMD[idle]="${CMD[1k]}; then taskset -c 1 python3 tests/bench/idle_holder.py PORT $IDLE_CONNS --path /1k.bin (held), RSS read, and ${CMD[1k]} again beside them"
CMD[cold]="$W -c100 -s cold.lua $D http://127.0.0.1:PORT/cold/f0000.bin (cold.lua: /cold/f0000.bin .. f$(printf '%04d' $((NCOLD - 1))).bin in rotation)"

for ((rep = 1; rep <= REPS; rep++)); do
    for wl in "${WLS[@]}"; do
        members=()
        for s in "${SERVERS[@]}"; do
            serves "$wl" "$s" && members+=("$s")
        done
        n=${#members[@]}
        for ((i = 0; i < n; i++)); do
            # Rotate the order each round so no server always goes first.
            SERVER=${members[$(((i + rep - 1) % n))]}
            run_one "$rep" "$wl"
        done
    done
done

# --- 6. report ----------------------------------------------------------------

META="$WORK/meta.txt"
amped_rev=unknown
if git -C "$REPO_ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
    amped_rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD)
    [ -z "$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null)" ] || amped_rev="$amped_rev+changes"
fi
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "kernel=$(uname -sr)"
    echo "cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    echo "load_before=$LOAD_BEFORE"
    echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "command=tests/bench/run.sh${ARGS_GIVEN:+ $ARGS_GIVEN}"
    echo "elapsed=$((SECONDS - STARTED))"
    echo "amped=$amped_rev"
    if [ -x "$NGINX_BIN" ]; then echo "nginx=$(first_line "$NGINX_BIN" -v | sed 's/^nginx version: //')"; fi
    if [ -x "$LIGHTTPD_BIN" ]; then echo "lighttpd=$(first_line "$LIGHTTPD_BIN" -v | sed 's/ - .*//; s/ (ssl)//')"; fi
    echo "wrk=$(first_line wrk --version | sed 's/ \[.*//; s/^wrk debian\//wrk /')"
    # `httperf --version` also runs a test against localhost:80; ask dpkg.
    echo "httperf=httperf $(dpkg-query -W -f='${Version}' httperf 2>/dev/null || echo '?')"
    if want_responder; then echo "gcc=$(first_line gcc --version)"; fi
    echo "reps=$REPS"
    echo "httperf_conns=$HTTPERF_CONNS"
    echo "wrk_secs=$WRK_SECS"
    echo "setup_amped=\`taskset -c 0 target/release/server ${AMPED_ARGS[*]//$DOCROOT/DOCROOT}\` (helpers 2, files up to 64K in memory: its defaults)"
    echo "setup_nginx=\`taskset -c 0 nginx\` with worker_processes 1, master_process off, daemon off, worker_connections $CONN_LIMIT, access_log off, sendfile on, tcp_nopush on, keepalive_timeout 65, keepalive_requests 1000000, listen backlog=4096; no open_file_cache (the default)"
    echo "setup_lighttpd=\`taskset -c 0 lighttpd -D\` with mod_cgi (cgi.assign .cgi), no mod_accesslog (no access log), server.max-fds $NOFILE, server.max-connections $LIGHTTPD_CONNS, server.listen-backlog 4096, max-keep-alive-requests 1000000, max-keep-alive-idle 65; its stat cache at its default"
    if want_responder; then echo "setup_responder=\`taskset -c 0 responder 1k.bin\` (tests/bench/responder.c, gcc -O2): one epoll loop answering every request head with one fixed keep-alive 200 carrying 1k.bin's 1024 bytes; it serves the small-file workloads, every path getting the same bytes; for the CGI workload \`responder --cgi hello.cgi\` runs the script once per request (posix_spawn with a 4-variable CGI environment, stdout on a pipe read to the end, waitpid) and answers 200 with its output: the CPU any server needs to run the script per request"; fi
    echo "setup_docroot=a temp copy of www/ plus 1k.bin, 1m.bin, 10m.bin (random bytes)$(want_wl files && echo ", files/: $NFILES files of 1 KiB")$(want_wl cold && echo ", cold/: $NCOLD files of $((COLD_SIZE / 1024)) KiB ($((NCOLD * COLD_SIZE / 1048576)) MiB), read once into the page cache before each cold run")"
    [ -z "$IDLE_NOTE" ] || echo "idle_note=Idle connections: $IDLE_NOTE"
    for wl in "${WLS[@]}"; do echo "cmd_$wl=${CMD[$wl]}"; done
} >"$META"

REPORT="$WORK/report.md"
bench report "$RESULTS" "$META" >"$REPORT"
cat "$REPORT"
if [ -n "$OUT" ]; then
    cp "$REPORT" "$OUT"
    log "report written to $OUT"
fi
if [ -n "$SVG" ]; then
    if bench svg "$RESULTS" "$META" "$SVG"; then
        log "chart written to $SVG"
    else
        log "no chart drawn"
        FAILED=1
    fi
fi
cp "$RESULTS" "$WORK/logs/" 2>/dev/null || true
log "done in $(((SECONDS - STARTED) / 60)) min $(((SECONDS - STARTED) % 60)) s"
if [ "$FAILED" = 1 ]; then
    log "some server failed to start, answered wrongly or died"
    exit 1
fi
