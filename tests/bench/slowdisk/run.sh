#!/usr/bin/env bash
# Disk-bound benchmark for issue 9: does a slow disk stall cached requests?
#
# A slow FUSE disk (slowfs.py beside this script: sleeps --delay-ms, default
# 10 ms, in every read, direct_io so nothing stays in the page cache) holds
# several 4 MiB files and is mounted at DOCROOT/slow. DOCROOT itself is an
# ordinary directory holding a 30-byte page, small.html, which is in memory.
# For each server in turn (amped, lighttpd, nginx 1 worker, nginx 1 worker
# with `aio threads`), pinned to CPU 0, with all load on CPU 1:
#   1. alone:  wrk -t1 -c10 -d SECS --latency /small.html
#   2. loaded: four curl clients download /slow/fN.bin in rotation (each
#      client starts at a different file), and while they run,
#              wrk -t1 -c10 -d SECS --latency /small.html
# It reports the cached page's req/s (alone and loaded) and its p50/p99
# under load, the cold files' MB/s (all bytes the four clients received
# in the window / the window), and slowfs's own count of bytes read in the
# window beside the bytes served: at least as many bytes read as served
# shows the files stayed cold (nothing came from a page cache).
# Cold means never sent before in this run: slowfs's direct_io keeps read()
# off the page cache, but sendfile from a direct_io FUSE file still leaves
# pages in the cache until the file is next opened (residency.md), so a
# server that keeps the descriptor (amped) or two clients sending the same
# file at once would be served from memory. So client c downloads files c,
# c+4, c+8, ...: no two clients share a file and none repeats unless the
# run gets through all of them (the script warns if it does).
# Every server must first answer 200 with the right bytes for /small.html
# and /slow/f1.bin. One run of each, servers one at a time, bounded in time.
#
# nginx runs with `master_process off; daemon off; worker_processes 1`,
# sendfile on, and for "nginx-aio" `aio threads;` (the default thread_pool:
# 32 threads). lighttpd 1.4 runs with its defaults (one process). amped is
# the release build of this worktree: target/release/server --listen
# 127.0.0.1:PORT --root DOCROOT --access-log off. Every process is started
# here and stopped by its PID; the FUSE mount is unmounted on exit.
#
# Where the p99 comes from: with --sched, `perf sched record` runs beside
# the loaded wrk, and a second table gives each side's wait for a CPU
# (`perf sched latency`: from wakeup to running): wrk's, on CPU 1 with
# slowfs and the downloads, and the server's (every process and thread of
# it: amped's server and helpers, nginx's worker and aio threads). With
# --wrk-first, slowfs and the downloads run at nice 19, so wrk's own wait
# stays out of its latency figures; the slow disk then gets the CPU wrk
# leaves, so the cold MB/s of that run are not comparable.
#
# Usage: tests/bench/slowdisk/run.sh [--quick] [--only LIST] [--secs N]
#                                    [--delay-ms N] [--files N] [--out FILE] [--keep]
#                                    [--sched] [--wrk-first]
#   --quick      SECS=5 (default 10)
#   --only LIST  comma-separated subset of amped,lighttpd,nginx,nginx-aio
#   --secs N     length of each wrk run, seconds
#   --delay-ms N slowfs delay per read (default 10)
#   --files N    number of 4 MiB files on the slow disk (default (SECS+4)*24:
#                enough at ~100 MB/s that no file is sent twice; see below)
#   --out FILE   also write the report to FILE
#   --keep       keep the temp dir (configs, raw wrk and curl output)
#   --sched      record scheduling delays in the loaded run (linux-perf)
#   --wrk-first  slowfs and the downloads at nice 19 (see above)
# Needs root (FUSE mount), /dev/fuse, 2 CPUs. Installs fuse3,
# python3-fusepy, nginx, lighttpd, wrk, curl with apt-get when missing.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../../.." && pwd)
REPORT_PY="$SCRIPT_DIR/report.py"
SLOWFS="$SCRIPT_DIR/slowfs.py"
FREEPORT_PY="$SCRIPT_DIR/../bench.py"
NGINX_BIN=/usr/sbin/nginx
LIGHTTPD_BIN=/usr/sbin/lighttpd
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
AMPED_BIN="$TARGET_DIR/release/server"
PY=/usr/bin/python3     # Debian's python3, which has python3-fusepy

ONLY="amped,lighttpd,nginx,nginx-aio"
SECS=10
DELAY_MS=10
NFILES=""          # default: (SECS + 4) * 24, about 100 MB/s for the window
FILE_SIZE=$((4 * 1024 * 1024))
COLD_CLIENTS=4
OUT=""
KEEP=0
SCHED=0
LOAD_NICE=""       # --wrk-first: "nice -n 19" for slowfs and the downloads

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "slowdisk/run.sh: $*" >&2; exit 2; }
log() { echo "[slowdisk] $*" >&2; }
# Shared with the other benchmarks: alive, start_time, stop_server,
# wait_http, verify, first_line.
. "$SCRIPT_DIR/../lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) SECS=5; shift ;;
        --only) [ $# -ge 2 ] || die "--only needs a list"; ONLY=$2; shift 2 ;;
        --secs) [ $# -ge 2 ] || die "--secs needs a number"; SECS=$2; shift 2 ;;
        --delay-ms) [ $# -ge 2 ] || die "--delay-ms needs a number"; DELAY_MS=$2; shift 2 ;;
        --files) [ $# -ge 2 ] || die "--files needs a number"; NFILES=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --sched) SCHED=1; shift ;;
        --wrk-first) LOAD_NICE="nice -n 19"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done
case "$SECS" in ''|*[!0-9]*|0) die "--secs must be a positive integer" ;; esac
NFILES=${NFILES:-$(( (SECS + 4) * 24 ))}
case "$NFILES" in ''|*[!0-9]*|0) die "--files must be a positive integer" ;; esac

SERVERS=()
IFS=',' read -r -a _only <<<"$ONLY"
for s in "${_only[@]}"; do
    case "$s" in
        amped|lighttpd|nginx|nginx-aio) SERVERS+=("$s") ;;
        '') ;;
        *) die "--only: unknown server '$s' (amped, lighttpd, nginx, nginx-aio)" ;;
    esac
done
[ ${#SERVERS[@]} -gt 0 ] || die "--only selected no server"
want() { local x; for x in "${SERVERS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (FUSE mount with allow_other, apt-get)"
[ -e /dev/fuse ] || die "no /dev/fuse"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load on CPU 1)"

# --- state and cleanup ------------------------------------------------------

WORK=""
MNT=""
FS_PID=""
SERVER_PID=""
COLD_PIDS=()

# stop_pid PID [SECS]: TERM, wait up to SECS (default 5), then KILL.
stop_pid() {
    local pid=$1 n=$(( ${2:-5} * 20 )) i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < n; i++)); do alive "$pid" || break; sleep 0.05; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

stop_cold() {
    local p
    for p in "${COLD_PIDS[@]}"; do stop_pid "$p" 2; done
    COLD_PIDS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_cold
    stop_server
    if [ -n "$FS_PID" ]; then
        stop_pid "$FS_PID" 10     # slowfs unmounts on SIGTERM
        FS_PID=""
    fi
    if [ -n "$MNT" ] && mountpoint -q "$MNT"; then
        log "slowfs left $MNT mounted; fusermount3 -u"
        fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT" || true
    fi
    remove_work "$MNT"
    exit "$rc"
}
trap_cleanup

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. tools ---------------------------------------------------------------

pkgs=()
command -v fusermount3 >/dev/null 2>&1 || pkgs+=(fuse3)
"$PY" -c 'import fusepy' 2>/dev/null || pkgs+=(python3-fusepy)
command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
command -v curl >/dev/null 2>&1 || pkgs+=(curl)
command -v taskset >/dev/null 2>&1 || pkgs+=(util-linux)
[ "$SCHED" = 1 ] && ! command -v perf >/dev/null 2>&1 && pkgs+=(linux-perf)
{ want nginx || want nginx-aio; } && ! [ -x "$NGINX_BIN" ] && pkgs+=(nginx)
want lighttpd && ! [ -x "$LIGHTTPD_BIN" ] && pkgs+=(lighttpd)
install_packages "${pkgs[@]}"
raise_nofile

# --- 2. build ---------------------------------------------------------------

if want amped; then build_amped; fi

# --- 3. the slow disk and the docroot ------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-slowdisk.XXXXXX")
chmod 755 "$WORK"
DOCROOT="$WORK/www"
SRC="$WORK/slow-src"          # the files slowfs mirrors (ordinary disk)
MNT="$DOCROOT/slow"           # the slow mount, inside the docroot
mkdir -p "$DOCROOT" "$SRC" "$MNT" "$WORK/logs"
printf 'small cached page for amped.\n\n' >"$DOCROOT/small.html"   # 30 bytes
[ "$(stat -c %s "$DOCROOT/small.html")" -eq 30 ] || die "small.html is not 30 bytes"
printf '<!DOCTYPE html><title>slowdisk</title>\n' >"$DOCROOT/index.html"
head -c "$FILE_SIZE" /dev/urandom >"$SRC/verify.bin"
for ((i = 1; i <= NFILES; i++)); do
    head -c "$FILE_SIZE" /dev/urandom >"$SRC/f$i.bin"
done
chmod -R a+rX "$DOCROOT" "$SRC"

log "mounting slowfs ($DELAY_MS ms a read, direct_io) at $MNT"
taskset -c 1 $LOAD_NICE "$PY" "$SLOWFS" "$SRC" "$MNT" --delay-ms "$DELAY_MS" --allow-other \
    --stats "$WORK/slowfs.stats" >"$WORK/slowfs.log" 2>&1 &
FS_PID=$!
for ((i = 0; i < 100; i++)); do
    mountpoint -q "$MNT" && [ -s "$WORK/slowfs.stats" ] && break
    alive "$FS_PID" || { cat "$WORK/slowfs.log" >&2; die "slowfs exited"; }
    sleep 0.1
done
mountpoint -q "$MNT" || die "slowfs did not mount $MNT"

fs_bytes() { sleep 0.3; awk '{print $4}' "$WORK/slowfs.stats"; }

# The disk really is slow, and stays slow on a second read (no page cache).
for try in 1 2; do
    t0=$(date +%s%N)
    dd if="$MNT/verify.bin" bs=1M status=none | cmp -s - "$SRC/verify.bin" ||
        die "slowfs returned wrong bytes for verify.bin"
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    log "reading verify.bin through slowfs (dd bs=1M), read $try: $ms ms"
    [ "$ms" -ge $(( FILE_SIZE / 131072 * DELAY_MS / 2 )) ] || die "read $try of verify.bin took only $ms ms: is it cached?"
done

# --- 4. servers ---------------------------------------------------------------

PORT=""

start_amped() {
    CMD="taskset -c 0 $AMPED_BIN --listen 127.0.0.1:0 --root $DOCROOT --access-log off"
    start_printing_port amped taskset -c 0 "$AMPED_BIN" --listen 127.0.0.1:0 \
        --root "$DOCROOT" --access-log off
}

start_nginx_common() {  # DIR AIO_LINE
    local dir=$1 aio=$2
    mkdir -p "$dir/body"
    PORT=$("$PY" "$FREEPORT_PY" freeport)
    cat >"$dir/nginx.conf" <<EOF
# generated by tests/bench/slowdisk/run.sh
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
    $aio
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
    CMD="taskset -c 0 $NGINX_BIN -p $dir/ -e $dir/error.log -c $dir/nginx.conf"
    $CMD >"$dir/stdout" 2>&1 &
    SERVER_PID=$!
    wait_http "$PORT" || { tail -n 20 "$dir/error.log" "$dir/stdout" >&2 2>/dev/null; return 1; }
}
start_nginx() { start_nginx_common "$WORK/nginx" ""; }
start_nginx-aio() { start_nginx_common "$WORK/nginx-aio" "aio threads;"; }

start_lighttpd() {
    local dir="$WORK/lighttpd"
    mkdir -p "$dir"
    PORT=$("$PY" "$FREEPORT_PY" freeport)
    cat >"$dir/lighttpd.conf" <<EOF
# generated by tests/bench/slowdisk/run.sh; no mod_accesslog, so no access log
server.document-root = "$DOCROOT"
server.bind = "127.0.0.1"
server.port = $PORT
server.errorlog = "$dir/error.log"
server.max-fds = 4096
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 65
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html", ".bin" => "application/octet-stream", "" => "application/octet-stream" )
EOF
    CMD="taskset -c 0 $LIGHTTPD_BIN -D -f $dir/lighttpd.conf"
    $CMD >"$dir/stdout" 2>&1 &
    SERVER_PID=$!
    wait_http "$PORT" || { tail -n 20 "$dir/error.log" "$dir/stdout" >&2 2>/dev/null; return 1; }
}

# cold_client N PORT DEADLINE_EPOCH OUT: download files N, N+4, N+8, ...
# (wrapping at NFILES) until the deadline; one curl -w line per download.
cold_client() {
    local n=$1 port=$2 deadline=$3 out=$4 i=$1 rem
    while :; do
        rem=$(( deadline - $(date +%s) ))
        [ "$rem" -gt 0 ] || break
        curl -s -o /dev/null --max-time "$rem" -w '%{http_code} %{size_download} %{time_total}\n' \
            "http://127.0.0.1:$port/slow/f$i.bin" >>"$out" 2>/dev/null || true
        i=$(( (i - 1 + COLD_CLIENTS) % NFILES + 1 ))
    done
}

RESULTS="$WORK/results.tsv"
SCHED_RESULTS="$WORK/sched.tsv"
COMMANDS="$WORK/commands.txt"
: >"$RESULTS"; : >"$COMMANDS"
WRK="wrk -t1 -c10 -d${SECS}s --timeout 10s --latency"

for name in "${SERVERS[@]}"; do
    log "$name: starting"
    CMD=""
    if ! "start_$name"; then
        log "$name: did not start"
        printf '%s\tnan\tnan\tnan\tnan\tnan\t0\t0\tnot started\t-\n' "$name" >>"$RESULTS"
        stop_server; continue
    fi
    echo "$name: $CMD" >>"$COMMANDS"
    if ! verify "$PORT" /small.html "$DOCROOT/small.html" ||
       ! verify "$PORT" /slow/verify.bin "$SRC/verify.bin"; then
        printf '%s\tnan\tnan\tnan\tnan\tnan\t0\t0\twrong answer\t-\n' "$name" >>"$RESULTS"
        stop_server; continue
    fi
    # 1. the cached page alone
    log "$name: taskset -c 1 $WRK http://127.0.0.1:$PORT/small.html (alone)"
    timeout $((SECS + 30)) taskset -c 1 $WRK "http://127.0.0.1:$PORT/small.html" \
        >"$WORK/logs/$name.alone.txt" 2>&1 || true
    base=$("$PY" "$REPORT_PY" wrk "$WORK/logs/$name.alone.txt" | cut -f1)
    # 2. the cached page while four clients download cold files
    fs0=$(fs_bytes)
    t_start=$(date +%s%N)
    deadline=$(( $(date +%s) + SECS + 2 ))
    for ((c = 1; c <= COLD_CLIENTS; c++)); do
        : >"$WORK/logs/$name.cold.$c.txt"
        taskset -c 1 $LOAD_NICE bash -c "$(declare -f cold_client); NFILES=$NFILES COLD_CLIENTS=$COLD_CLIENTS; \
            cold_client $c $PORT $deadline $WORK/logs/$name.cold.$c.txt" &
        COLD_PIDS+=($!)
    done
    sleep 1
    log "$name: taskset -c 1 $WRK http://127.0.0.1:$PORT/small.html (with $COLD_CLIENTS cold downloads)"
    SCHED_REC=()
    [ "$SCHED" = 1 ] && SCHED_REC=(perf sched record -a -o "$WORK/logs/$name.sched.data" --)
    "${SCHED_REC[@]}" timeout $((SECS + 30)) taskset -c 1 $WRK "http://127.0.0.1:$PORT/small.html" \
        >"$WORK/logs/$name.loaded.txt" 2>"$WORK/logs/$name.loaded.err" || true
    for p in "${COLD_PIDS[@]}"; do   # they stop at the deadline by themselves
        for ((i = 0; i < 200; i++)); do alive "$p" || break; sleep 0.05; done
    done
    stop_cold
    t_end=$(date +%s%N)
    fs1=$(fs_bytes)
    window=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    loaded=$("$PY" "$REPORT_PY" wrk "$WORK/logs/$name.loaded.txt")
    cold=$("$PY" "$REPORT_PY" cold "$WORK"/logs/"$name".cold.*.txt "$window" "$FILE_SIZE")
    served=$(awk '{ s += $2 } END { print s + 0 }' "$WORK"/logs/"$name".cold.*.txt)
    IFS=$'\t' read -r rps p50 p99 werr <<<"$loaded"
    IFS=$'\t' read -r mbs comp part bad <<<"$cold"
    fsread=$(( fs1 - fs0 ))
    ndl=$(cat "$WORK"/logs/"$name".cold.*.txt | wc -l)
    [ "$ndl" -le "$NFILES" ] || log "warning: $ndl downloads from $NFILES files: some files were sent twice and may have been warm (raise --files)"
    log "  -> alone $base req/s; loaded $rps req/s, p50 $p50 ms, p99 $p99 ms; cold $mbs MB/s ($comp complete, $part cut, $bad bad; slowfs read $fsread bytes for $served served)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$base" "$rps" "$p50" "$p99" "$mbs" \
        "$comp" "$part" "$((werr + bad))" "$((fsread / 1048576)) / $((served / 1048576)) MiB" >>"$RESULTS"
    if [ "$SCHED" = 1 ]; then
        perf sched latency -i "$WORK/logs/$name.sched.data" >"$WORK/logs/$name.sched.txt" 2>/dev/null || true
        printf '%s\t%s\n' "$name" "$("$PY" "$REPORT_PY" sched "$WORK/logs/$name.sched.txt" "$name")" >>"$SCHED_RESULTS"
    fi
    stop_server
done

# --- 5. report ------------------------------------------------------------------

{
    echo "## Disk-bound benchmark: cached page under cold large downloads"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs; load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "slowfs: $DELAY_MS ms per read, direct_io, max_read 128 KiB; $NFILES files of 4 MiB; $COLD_CLIENTS download clients (curl, in rotation); wrk runs of ${SECS} s"
    echo
    "$PY" "$REPORT_PY" table "$RESULTS"
    echo
    if [ "$SCHED" = 1 ]; then
        echo "Wait for a CPU in the loaded run (perf sched latency: wakeup to running), wrk beside the server:"
        echo
        "$PY" "$REPORT_PY" schedtable "$SCHED_RESULTS"
        echo
    fi
    [ -n "$LOAD_NICE" ] && { echo "slowfs and the downloads ran at nice 19 (--wrk-first)."; echo; }
    echo "Commands (servers on CPU 0, load on CPU 1):"
    echo
    echo '```'
    cat "$COMMANDS"
    echo "cached page: taskset -c 1 $WRK http://127.0.0.1:PORT/small.html"
    echo "cold files:  $COLD_CLIENTS x taskset -c 1 curl -s -o /dev/null --max-time REMAINING http://127.0.0.1:PORT/slow/fN.bin  (client c: N = c, c+$COLD_CLIENTS, c+$((2 * COLD_CLIENTS)), ...)"
    echo "slow disk:   taskset -c 1 $PY slowfs.py SRC DOCROOT/slow --delay-ms $DELAY_MS --allow-other --stats FILE"
    echo '```'
    echo
    echo "slowfs at exit:"
} >"$WORK/report.md"
stop_pid "$FS_PID" 10; FS_PID=""
tail -n 1 "$WORK/slowfs.log" >>"$WORK/report.md"
mountpoint -q "$MNT" && log "warning: $MNT still mounted after slowfs exited"
cat "$WORK/report.md"
[ -z "$OUT" ] || cp "$WORK/report.md" "$OUT"
