# shellcheck shell=bash
# Shell functions shared by the benchmark scripts (run.sh, ab.sh), sourced
# by them: telling whether a process lives, stopping the one server the
# script started (and its children) by PID, waiting for a server to answer,
# and checking that it answers with the right bytes. The caller defines
# log, WORK (a scratch directory) and SERVER_PID.

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
