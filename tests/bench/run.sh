#!/usr/bin/env bash
# Benchmark: amped against nginx (one worker) and lighttpd on the same
# document root, on this machine, over loopback only.
#
# Each server in turn is pinned to CPU 0 (taskset -c 0) while the load
# generator runs on CPU 1 (taskset -c 1); only one server runs at a time.
# Two workloads, both bounded in count or time:
#   httperf --num-conns 20000 --num-calls 1 --uri /   (a new TCP connection
#       per request, closed loop, as in the Flash paper's report)
#   wrk -t1 -c100 -d10s /1k.bin                        (keep-alive)
#   wrk -t1 -c10 -d10s /cgi-bin/hello.cgi              (CGI: amped and
#       lighttpd's mod_cgi run the same shell script; nginx has no CGI)
# Before measuring, each server must answer 200 with the right bytes for
# / and /1k.bin. Each measurement is repeated (default 3 times, servers
# alternating) and the median is reported in a Markdown table with the
# amped/nginx and amped/lighttpd ratios. Parsing and the report are done
# by bench.py beside this script.
#
# nginx runs with `master_process off; daemon off; worker_processes 1`:
# a single process, the one this script starts, pinned and stopped by PID.
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
# Usage: tests/bench/run.sh [--only amped,nginx,lighttpd] [--quick]
#                           [--reps N] [--out FILE] [--keep]
#   --only LIST  comma-separated subset of amped,nginx,lighttpd
#   --quick      wrk -d3s, httperf --num-conns 5000, 1 run (unless --reps)
#   --reps N     runs of each measurement (median reported); default 3
#   --out FILE   also write the report to FILE
#   --keep       keep the temp dir (docroot, configs, raw tool output)
# Installs nginx-light, wrk, httperf, lighttpd with apt-get when missing
# (needs root), builds amped with `cargo build --release --bins`.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_PY="$SCRIPT_DIR/bench.py"
NGINX_BIN=/usr/sbin/nginx
LIGHTTPD_BIN=/usr/sbin/lighttpd
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
AMPED_BIN="$TARGET_DIR/release/server"

ONLY="amped,nginx,lighttpd"
QUICK=0
REPS=""
OUT=""
KEEP=0
WRK_SECS=10
HTTPERF_CONNS=20000
READY_DEADLINE=15   # seconds a server gets to start answering

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "run.sh: $*" >&2; exit 2; }
log() { echo "[bench] $*" >&2; }
# Shared functions: alive, start_time, stop_server, wait_http, verify,
# verify_cgi, first_line.
. "$SCRIPT_DIR/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --only) [ $# -ge 2 ] || die "--only needs a list"; ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#--only=}; shift ;;
        --quick) QUICK=1; shift ;;
        --reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; shift 2 ;;
        --reps=*) REPS=${1#--reps=}; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
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

SERVERS=()
IFS=',' read -r -a _only <<<"$ONLY"
for s in "${_only[@]}"; do
    case "$s" in
        amped|nginx|lighttpd) SERVERS+=("$s") ;;
        '') ;;
        *) die "--only: unknown server '$s' (amped, nginx, lighttpd)" ;;
    esac
done
[ ${#SERVERS[@]} -gt 0 ] || die "--only selected no server"
want() { local x; for x in "${SERVERS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }

# --- state and cleanup ------------------------------------------------------

WORK=""
SERVER_PID=""      # the one server running now, started by this script
FAILED=0




cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then
            log "kept $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Load before this script adds its own (the build and the runs): other
# work on the machine makes the numbers noisy, and the report says so.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. tools ---------------------------------------------------------------

missing_pkgs=()
command -v wrk >/dev/null 2>&1 || missing_pkgs+=(wrk)
command -v httperf >/dev/null 2>&1 || missing_pkgs+=(httperf)
command -v curl >/dev/null 2>&1 || missing_pkgs+=(curl)
command -v taskset >/dev/null 2>&1 || missing_pkgs+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing_pkgs+=(python3)
want nginx && ! [ -x "$NGINX_BIN" ] && missing_pkgs+=(nginx-light)
want lighttpd && ! [ -x "$LIGHTTPD_BIN" ] && missing_pkgs+=(lighttpd)
if [ ${#missing_pkgs[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing_pkgs[*]}; run as root to install them with apt-get"
    log "installing ${missing_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    if ! apt-get install -y "${missing_pkgs[@]}" >&2; then
        # nginx-light is a transitional name on newer Debian; fall back.
        apt-get install -y "${missing_pkgs[@]/#nginx-light/nginx}" >&2
    fi
fi

[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load generator on CPU 1)"

# More descriptors than the default 1024 for the servers and wrk.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then
    ulimit -n 65536 2>/dev/null || true
else
    ulimit -n "$hard" 2>/dev/null || true
fi

# --- 2. build ---------------------------------------------------------------

if want amped; then
    log "building amped (cargo build --release --bins)"
    (cd "$REPO_ROOT" && cargo build --release --bins) >&2
    [ -x "$AMPED_BIN" ] || die "no $AMPED_BIN after the build"
fi

# --- 3. docroot -------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-bench.XXXXXX")
chmod 755 "$WORK"
DOCROOT="$WORK/www"
mkdir -p "$DOCROOT" "$WORK/logs"
if [ -d "$REPO_ROOT/www" ]; then
    cp -a "$REPO_ROOT/www/." "$DOCROOT/"
fi
if ! [ -f "$DOCROOT/index.html" ]; then
    # www/ has no index page yet: give every server the same small one.
    {
        echo '<!DOCTYPE html>'
        echo '<html><head><meta charset="utf-8"><title>amped</title></head>'
        echo '<body><h1>amped</h1><p>Benchmark index page.</p></body></html>'
    } >"$DOCROOT/index.html"
fi
head -c 1024 /dev/urandom >"$DOCROOT/1k.bin"
[ "$(stat -c %s "$DOCROOT/1k.bin")" -eq 1024 ] || die "1k.bin is not 1024 bytes"
chmod -R a+rX "$DOCROOT"

# --- 4. servers ---------------------------------------------------------------

PORT=""


start_amped() {
    local out="$WORK/amped.stdout" deadline line
    : >"$out"
    taskset -c 0 "$AMPED_BIN" --listen 127.0.0.1:0 --root "$DOCROOT" \
        --event-handler epoll --access-log off >"$out" 2>"$WORK/amped.stderr" &
    SERVER_PID=$!
    deadline=$((SECONDS + READY_DEADLINE))
    PORT=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        line=$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*/' "$out" || true)
        if [ -n "$line" ]; then
            PORT=${line##*:}
            PORT=${PORT%/}
            break
        fi
        alive "$SERVER_PID" || break
        sleep 0.05
    done
    if [ -z "$PORT" ]; then
        log "amped did not print its port; stderr:"
        tail -n 20 "$WORK/amped.stderr" >&2 || true
        return 1
    fi
    wait_http "$PORT"
}

start_nginx() {
    local dir="$WORK/nginx"
    mkdir -p "$dir/body"
    PORT=$(python3 "$BENCH_PY" freeport)
    cat >"$dir/nginx.conf" <<EOF
# generated by tests/bench/run.sh
worker_processes 1;
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
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
        listen 127.0.0.1:$PORT;
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
    PORT=$(python3 "$BENCH_PY" freeport)
    cat >"$dir/lighttpd.conf" <<EOF
# generated by tests/bench/run.sh; no mod_accesslog, so no access log
server.document-root = "$DOCROOT"
server.bind = "127.0.0.1"
server.port = $PORT
server.errorlog = "$dir/error.log"
server.max-fds = 4096
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
        [ "$name" = amped ] && break
        log "$name: start attempt $try failed"
    done
    return 1
}


# --- 5. measure ---------------------------------------------------------------

TW_REUSE=$(cat /proc/sys/net/ipv4/tcp_tw_reuse 2>/dev/null || echo '?')
if [ "$TW_REUSE" = 0 ]; then
    log "warning: net.ipv4.tcp_tw_reuse=0: back-to-back httperf runs may run out of ports (addrunavail errors)"
fi

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

record() {  # server workload rep "value<TAB>errors<TAB>note"
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

run_httperf() {
    local name=$1 rep=$2 out="$WORK/logs/$1.httperf.$2.txt" parsed
    log "$name run $rep: httperf --num-conns $HTTPERF_CONNS --num-calls 1 GET /"
    timeout 300 taskset -c 1 httperf --server 127.0.0.1 --port "$PORT" \
        --uri / --num-conns "$HTTPERF_CONNS" --num-calls 1 --timeout 5 \
        >"$out" 2>&1 || true
    parsed=$(python3 "$BENCH_PY" parse httperf "$out" "$HTTPERF_CONNS")
    log "  -> ${parsed//$'\t'/ | }"
    record "$name" httperf "$rep" "$parsed"
}

run_cgi() {
    local name=$1 rep=$2 out="$WORK/logs/$1.cgi.$2.txt" parsed
    log "$name run $rep: wrk -t1 -c10 -d${WRK_SECS}s GET /cgi-bin/hello.cgi"
    timeout $((WRK_SECS + 60)) taskset -c 1 wrk -t1 -c10 -d"${WRK_SECS}s" \
        "http://127.0.0.1:$PORT/cgi-bin/hello.cgi" >"$out" 2>&1 || true
    parsed=$(python3 "$BENCH_PY" parse wrk "$out" 0)
    log "  -> ${parsed//$'\t'/ | }"
    record "$name" cgi "$rep" "$parsed"
}


run_wrk() {
    local name=$1 rep=$2 out="$WORK/logs/$1.wrk.$2.txt" parsed
    log "$name run $rep: wrk -t1 -c100 -d${WRK_SECS}s GET /1k.bin"
    timeout $((WRK_SECS + 60)) taskset -c 1 wrk -t1 -c100 -d"${WRK_SECS}s" \
        "http://127.0.0.1:$PORT/1k.bin" >"$out" 2>&1 || true
    parsed=$(python3 "$BENCH_PY" parse wrk "$out" 0)
    log "  -> ${parsed//$'\t'/ | }"
    record "$name" wrk "$rep" "$parsed"
}

n=${#SERVERS[@]}
for ((rep = 1; rep <= REPS; rep++)); do
    for ((i = 0; i < n; i++)); do
        # Rotate the order each run so no server always goes first.
        name=${SERVERS[$(((i + rep - 1) % n))]}
        log "$name run $rep: starting"
        if ! start_server "$name"; then
            log "$name: failed to start"
            record "$name" httperf "$rep" $'nan\t1\tserver did not start'
            record "$name" wrk "$rep" $'nan\t1\tserver did not start'
            FAILED=1
            continue
        fi
        if ! verify "$PORT" / "$DOCROOT/index.html" ||
           ! verify "$PORT" /1k.bin "$DOCROOT/1k.bin"; then
            log "$name: wrong answer before measuring; not measured"
            record "$name" httperf "$rep" $'nan\t1\tverification failed'
            record "$name" wrk "$rep" $'nan\t1\tverification failed'
            FAILED=1
            stop_server
            continue
        fi
        run_httperf "$name" "$rep"
        run_wrk "$name" "$rep"
        if [ "$name" != nginx ]; then
            if verify_cgi "$PORT"; then
                run_cgi "$name" "$rep"
            else
                record "$name" cgi "$rep" $'nan\t1\tverification failed'
                FAILED=1
            fi
        fi
        stop_server
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
    echo "load=load average before ${LOAD_BEFORE}, after $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "amped=$amped_rev"
    if [ -x "$NGINX_BIN" ]; then echo "nginx=$(first_line "$NGINX_BIN" -v | sed 's/^nginx version: //')"; fi
    echo "nginx_mode=nginx worker_processes 1, master_process off"
    if [ -x "$LIGHTTPD_BIN" ]; then echo "lighttpd=$(first_line "$LIGHTTPD_BIN" -v | sed 's/ - .*//; s/ (ssl)//')"; fi
    echo "wrk=$(first_line wrk --version | sed 's/ \[.*//; s/^wrk debian\//wrk /')"
    # `httperf --version` also runs a test against localhost:80; ask dpkg.
    echo "httperf=httperf $(dpkg-query -W -f='${Version}' httperf 2>/dev/null || echo '?')"
    echo "reps=$REPS"
    echo "httperf_conns=$HTTPERF_CONNS"
    echo "wrk_secs=$WRK_SECS"
} >"$META"

REPORT="$WORK/report.md"
python3 "$BENCH_PY" report "$RESULTS" "$META" >"$REPORT"
cat "$REPORT"
if [ -n "$OUT" ]; then
    cp "$REPORT" "$OUT"
    log "report written to $OUT"
fi
if [ "$FAILED" = 1 ]; then
    log "some server failed to start or answered wrongly"
    exit 1
fi
