# shellcheck shell=bash
# Shell functions shared by the benchmark scripts (run.sh, ab.sh, idle.sh,
# workers.sh, haproxy.sh, slowdisk/run.sh, tls/run.sh, h2/run.sh), sourced
# by them: installing what a script needs, raising the descriptor limit,
# building amped, the exit traps and the scratch directory's removal,
# telling whether a process lives, starting a server that prints its port
# and stopping it (and its children) by PID, waiting for a server to
# answer, and checking that it answers with the right bytes; for tls/run.sh
# and h2/run.sh, whose Python half starts the servers, the peers' packages,
# running that half and the cleanup that stops it. The caller defines log,
# die, WORK (a scratch directory, or empty), SERVER_PID and a cleanup
# function.

READY_DEADLINE=${READY_DEADLINE:-15}   # seconds a server gets to start answering
KEEP=${KEEP:-0}                        # 1: keep WORK (--keep)

# install_packages PKG...: installs Debian's packages with apt-get (as
# root); nothing when none is named.
install_packages() {
    [ $# -gt 0 ] || return 0
    [ "$(id -u)" -eq 0 ] || die "missing $*; run as root to install them with apt-get"
    log "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y "$@" >&2
}

# raise_nofile: the soft descriptor limit up to the hard one, at most
# 65536, for the servers and the load generators; the result in NOFILE.
raise_nofile() {
    local hard
    hard=$(ulimit -Hn)
    if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then
        NOFILE=65536
    else
        NOFILE=$hard
    fi
    ulimit -n "$NOFILE"
}

# build_amped: the release binaries of REPO_ROOT, at low priority so that
# the build does not slow whatever else the machine runs; AMPED_BIN must
# be there afterwards.
build_amped() {
    log "building amped (cargo build --release --bins)"
    (cd "$REPO_ROOT" && nice -n 19 cargo build --release --bins --quiet) >&2
    [ -x "$AMPED_BIN" ] || die "no $AMPED_BIN after the build"
}

# trap_cleanup: the caller's cleanup runs on every exit, and INT and TERM
# exit with their usual statuses.
trap_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# remove_work [MOUNT]: removes WORK, unless KEEP=1 or MOUNT (inside it)
# is still mounted.
# shellcheck disable=SC2120  # MOUNT is optional
remove_work() {
    [ -n "$WORK" ] && [ -d "$WORK" ] || return 0
    if [ "$KEEP" = 1 ]; then
        log "kept $WORK"
    elif [ -n "${1:-}" ] && mountpoint -q "$1"; then
        log "not removing $WORK: $1 still mounted"
    else
        rm -rf "$WORK"
    fi
}

# alive PID: the process exists and is not a zombie (kill -0 succeeds on
# a zombie, so it cannot tell an exited child that is not yet reaped).
alive() {
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case "$st" in ''|Z*) return 1 ;; esac
}

# start_time PID: the process's start time in clock ticks (/proc/PID/stat
# field 22), to make sure a PID has not been reused before signalling it.
start_time() {
    local stat f
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    read -r -a f <<<"${stat##*) }"   # fields from the 3rd on
    echo "${f[19]:-}"
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid=$SERVER_PID i k kids=()
    # Children of the server we started (helpers, cgi-runner), as PID:start.
    for k in $(pgrep -P "$pid" 2>/dev/null || true); do
        kids+=("$k:$(start_time "$k")")
    done
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do   # up to 5 s for a clean exit
        alive "$pid" || break
        sleep 0.05
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
    SERVER_PID=""
    # The children exit on their own when the server goes (pdeathsig,
    # EOF); give them a moment, then make sure.
    for k in "${kids[@]}"; do
        for ((i = 0; i < 40; i++)); do
            alive "${k%%:*}" || break
            sleep 0.05
        done
        if alive "${k%%:*}" && [ "$(start_time "${k%%:*}")" = "${k#*:}" ]; then
            log "killing leftover child ${k%%:*} of the server"
            kill -KILL "${k%%:*}" 2>/dev/null || true
        fi
    done
}

# wait_port_line FILE: the port from a "listening on http://127.0.0.1:PORT/"
# line the server (amped, the responder) prints, into PORT.
wait_port_line() {
    local out=$1 deadline=$((SECONDS + READY_DEADLINE)) line
    PORT=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        line=$(grep -m1 -o 'listening on http://127\.0\.0\.1:[0-9]*/' "$out" || true)
        if [ -n "$line" ]; then
            PORT=${line##*:}
            PORT=${PORT%/}
            return 0
        fi
        alive "$SERVER_PID" || return 1
        sleep 0.05
    done
    return 1
}

# start_printing_port NAME CMD...: starts CMD, a server that prints its
# "listening on" line with the port it picked (--listen 127.0.0.1:0), its
# output in WORK/NAME.stdout and .stderr; PORT and SERVER_PID once it
# answers HTTP.
start_printing_port() {
    local name=$1 out="$WORK/$1.stdout"
    shift
    : >"$out"
    "$@" >"$out" 2>"$WORK/$name.stderr" &
    SERVER_PID=$!
    if ! wait_port_line "$out"; then
        log "$name did not print its port; stderr:"
        tail -n 20 "$WORK/$name.stderr" >&2 || true
        return 1
    fi
    wait_http "$PORT"
}

# wait_http PORT: poll until anything answers HTTP on 127.0.0.1:PORT, while
# the server process is alive, up to READY_DEADLINE seconds.
wait_http() {
    local port=$1 deadline=$((SECONDS + READY_DEADLINE))
    while [ "$SECONDS" -lt "$deadline" ]; do
        alive "$SERVER_PID" || return 1
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# verify PORT PATH FILE: 200 and exactly FILE's bytes.
verify() {
    local port=$1 path=$2 file=$3 got want body="$WORK/verify.body"
    want="200 $(stat -c %s "$file")"
    got=$(curl -sS --max-time 10 -o "$body" -w '%{http_code} %{size_download}' \
        "http://127.0.0.1:$port$path" 2>&1) || true
    if [ "$got" != "$want" ]; then
        log "GET $path: got '$got', want '$want'"
        return 1
    fi
    if ! cmp -s "$body" "$file"; then
        log "GET $path: body differs from $file"
        return 1
    fi
}

# verify_cgi PORT: hello.cgi answers 200 with its greeting.
verify_cgi() {
    local got
    got=$(curl -sS --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$1/cgi-bin/hello.cgi" 2>&1) || true
    case "$got" in
        "Hello from a CGI script"*" 200") return 0 ;;
        *) log "GET /cgi-bin/hello.cgi: got '$got'"; return 1 ;;
    esac
}

# first_line CMD...: the first line CMD prints (on stdout or stderr).
first_line() { "$@" 2>&1 | head -n 1 || true; }

# --- tls/run.sh and h2/run.sh: the Python half starts the servers ----------

# missing_peers: adds to the array missing the packages of the peer servers
# (nginx, lighttpd with mod_openssl, h2o) that are not installed.
missing_peers() {
    [ -x /usr/sbin/nginx ] || missing+=(nginx)
    [ -x /usr/sbin/lighttpd ] || missing+=(lighttpd)
    [ -f /usr/lib/lighttpd/mod_openssl.so ] || missing+=(lighttpd-mod-openssl)
    [ -x /usr/bin/h2o ] || missing+=(h2o)
}

# run_python_half CMD...: runs CMD (the Python half) in the background, its
# PID in PY_PID for stop_python_half, and exits with its status, naming
# WORK when it is kept.
run_python_half() {
    "$@" &
    PY_PID=$!
    local status=0
    wait "$PY_PID" || status=$?
    PY_PID=""
    [ "$KEEP" = 0 ] || log "work dir (configs, raw outputs, logs/results.jsonl): $WORK"
    exit "$status"
}

# stop_python_half: the caller's cleanup (the EXIT trap) for these two:
# stops the Python half, which stops its servers, removes WORK and exits
# with the status the script was exiting with.
stop_python_half() {
    local rc=$?
    trap - EXIT INT TERM
    [ -z "${PY_PID:-}" ] || kill -TERM "$PY_PID" 2>/dev/null || true
    [ -z "${PY_PID:-}" ] || wait "$PY_PID" 2>/dev/null || true
    remove_work
    exit "$rc"
}
