#!/usr/bin/env bash
# Before/after benchmark of two amped revisions, to show that a change
# (a refactor, say) left the speed where it was: the same workloads, the
# same document root, the same machine, the two servers taking turns in
# one run of this script.
#
# Each revision is checked out into its own temporary git worktree
# (`git worktree add --detach`) and built there with
# `cargo build --release --bins` and its own CARGO_TARGET_DIR, both under
# one temp dir (the after one starts as a copy of the before one, so the
# unchanged dependencies are not compiled twice); the caller's tree and
# its target/ are not touched. The worktrees are removed at the end, the
# temp dir too unless --keep. The source checkouts are removed even with
# --keep (git would otherwise keep them registered as worktrees).
#
# Three workloads, all bounded in time (wrk -d) and by `timeout`, all
# over 127.0.0.1:
#   keepalive  wrk -t1 -c100 -d10s GET /1k.bin           (keep-alive)
#   files      wrk -t1 -c100 -d10s, a Lua script walking 1,000 distinct
#              1 KiB files /files/f0000.bin .. f0999.bin in rotation
#   cgi        wrk -t1 -c10 -d10s GET /cgi-bin/hello.cgi
# For each round (--reps, default 5) and each workload, the BEFORE server
# runs, then the AFTER server (B, A, B, A, ...): a fresh server for each
# run, one server at a time, pinned to CPU 0 (taskset -c 0; its helpers,
# cgi-runner and CGI scripts inherit that), wrk pinned to CPU 1. The
# server is started as
#   server --listen 127.0.0.1:PORT --root DIR --access-log off
# and is ready when curl gets an answer (polled, no fixed sleep); before
# measuring it must answer 200 with the right bytes for /1k.bin, a few of
# the 1,000 files and hello.cgi.
#
# Besides req/s, each run measures the server's CPU time per request:
# utime+stime+cutime+cstime (from /proc/PID/stat) summed over the server
# and all its live descendants, read just before and just after wrk, the
# difference divided by the requests wrk completed. Live children must be
# summed one by one: the server's cutime/cstime only count children that
# have exited and been reaped (CGI scripts reaped by cgi-runner land in
# cgi-runner's cutime, which is counted). Resolution is the clock tick
# (10 ms), small against a run's seconds of CPU.
#
# The document root is a temp copy of the caller's www/ plus 1k.bin and
# the 1,000 files (random bytes), the same for both revisions. The report
# (Markdown, on stdout) gives the median req/s and µs of server CPU per
# request for each workload, before and after, the after/before ratios,
# the spread of the runs (the noise to judge a ratio against), every
# run's raw numbers, the two revisions, date, nproc and the load average
# (at start, before measuring, after), with a warning when the 1-minute
# load average was above 1 at start (something else was using the CPUs).
# Parsing and the report are done by a small Python helper that this
# script writes into its temp dir and that reuses bench.py's wrk parser.
#
# Usage: tests/bench/ab.sh [--quick] [--reps N] [--out FILE] [--keep]
#                          BEFORE_REV AFTER_REV
#   BEFORE_REV, AFTER_REV  git revisions of this repository (HEAD~1, a
#                          branch, a hash; the same one twice measures
#                          the noise alone)
#   --quick      wrk -d3s and 1 round (unless --reps)
#   --reps N     rounds (each workload, before then after); default 5
#   --out FILE   also write the report to FILE
#   --keep       keep the temp dir (binaries, docroot, raw wrk output)
# Installs wrk, curl, util-linux (taskset) with apt-get when missing
# (needs root). Exits 1 when a server failed to start or answered wrongly.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
BENCH_PY="$SCRIPT_DIR/bench.py"

QUICK=0
REPS=""
OUT=""
KEEP=0
WRK_SECS=10
NFILES=1000

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "ab.sh: $*" >&2; exit 2; }
log() { echo "[ab] $*" >&2; }
# Shared functions: alive, start_time, stop_server, wait_http, verify,
# verify_cgi, first_line.
. "$SCRIPT_DIR/lib.sh"

REVS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --reps) [ $# -ge 2 ] || die "--reps needs a number"; REPS=$2; shift 2 ;;
        --reps=*) REPS=${1#--reps=}; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a file"; OUT=$2; shift 2 ;;
        --out=*) OUT=${1#--out=}; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; REVS+=("$@"); break ;;
        -*) die "unknown option: $1 (try --help)" ;;
        *) REVS+=("$1"); shift ;;
    esac
done
[ ${#REVS[@]} -eq 2 ] || die "need exactly two revisions, BEFORE_REV AFTER_REV (try --help)"

if [ "$QUICK" = 1 ]; then
    WRK_SECS=3
    REPS=${REPS:-1}
fi
REPS=${REPS:-5}
case "$REPS" in ''|*[!0-9]*|0) die "--reps must be a positive integer" ;; esac

# SIDE_* arrays are indexed 0 = before, 1 = after.
SIDE_NAME=(before after)
SIDE_REV=()     # the revision as given
SIDE_HASH=()    # full commit hash
SIDE_SHORT=()   # short hash
for i in 0 1; do
    rev=${REVS[$i]}
    hash=$(git -C "$REPO_ROOT" rev-parse --verify --quiet "$rev^{commit}") ||
        die "${SIDE_NAME[$i]}: '$rev' is not a commit of $REPO_ROOT"
    SIDE_REV+=("$rev")
    SIDE_HASH+=("$hash")
    SIDE_SHORT+=("$(git -C "$REPO_ROOT" rev-parse --short "$hash")")
done

# Load before this script adds its own (the builds and the runs).
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- state and cleanup ------------------------------------------------------

WORK=""
SERVER_PID=""      # the one server running now, started by this script
WORKTREES=()       # worktrees this script added
FAILED=0




cleanup() {
    local rc=$? wt
    trap - EXIT INT TERM
    stop_server
    for wt in "${WORKTREES[@]}"; do
        git -C "$REPO_ROOT" worktree remove --force "$wt" >/dev/null 2>&1 ||
            { rm -rf "$wt"; git -C "$REPO_ROOT" worktree prune >/dev/null 2>&1 || true; }
    done
    remove_work
    exit "$rc"
}
trap_cleanup

# --- 1. tools ---------------------------------------------------------------

missing_pkgs=()
command -v wrk >/dev/null 2>&1 || missing_pkgs+=(wrk)
command -v curl >/dev/null 2>&1 || missing_pkgs+=(curl)
command -v taskset >/dev/null 2>&1 || missing_pkgs+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing_pkgs+=(python3)
install_packages "${missing_pkgs[@]}"
command -v cargo >/dev/null 2>&1 || die "cargo not found"

[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load generator on CPU 1)"

# More descriptors than the default 1024 for the servers and wrk.
raise_nofile

WORK=$(mktemp -d "${TMPDIR:-/tmp}/amped-ab.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/logs"

# --- 2. the helper (parse, CPU snapshot, report) ------------------------------

AB_PY="$WORK/ab.py"
cat >"$AB_PY" <<'PYEOF'
"""Helper for tests/bench/ab.sh (written by it into its temp dir).

  files DIR N               write N distinct 1 KiB files DIR/f0000.bin ...
  cputicks PID              utime+stime+cutime+cstime, in clock ticks,
                            summed over PID and all its live descendants
  parse WRK_OUTPUT          "REQ_PER_S<TAB>REQUESTS<TAB>ERRORS<TAB>NOTE"
  report RESULTS.tsv META   the Markdown report
"""
import os
import re
import statistics
import sys

sys.path.insert(0, os.environ["AB_BENCH_DIR"])
import bench  # noqa: E402  (bench.py beside ab.sh: the wrk parser)

WORKLOADS = [
    ("keepalive", "1 KiB keep-alive: wrk -t1 -c100 `GET /1k.bin`"),
    ("files", "1,000 files of 1 KiB in rotation: wrk -t1 -c100 "
     "`GET /files/f0000.bin` .. `f0999.bin`"),
    ("cgi", "CGI: wrk -t1 -c10 `GET /cgi-bin/hello.cgi`"),
]
SIDES = ["before", "after"]


def files(d, n):
    os.makedirs(d, exist_ok=True)
    for i in range(int(n)):
        with open(os.path.join(d, "f%04d.bin" % i), "wb") as f:
            f.write(os.urandom(1024))


def cputicks(root):
    root = int(root)
    kids, ticks = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue  # gone meanwhile
        rest = s[s.rindex(")") + 2:].split()   # fields 3 (state) on
        pid, ppid = int(d), int(rest[1])
        kids.setdefault(ppid, []).append(pid)
        # fields 14-17: utime stime cutime cstime
        ticks[pid] = sum(int(x) for x in rest[11:15])
    if root not in ticks:
        sys.exit("cputicks: no process %d" % root)
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        total += ticks.get(p, 0)
        stack.extend(kids.get(p, []))
    print(total)


def parse(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    rate, errors, note = bench.parse_wrk(text)
    m = re.search(r"(\d+) requests in ", text)
    requests = int(m.group(1)) if m else 0
    if not m:
        errors += 1
        note = "; ".join(x for x in (note, "no 'requests in' line") if x)
    print("%s\t%d\t%d\t%s" % ("nan" if rate is None else "%.1f" % rate,
                              requests, errors, note or "-"))


def report(results_path, meta_path):
    meta = {}
    with open(meta_path, encoding="utf-8") as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    hz = os.sysconf("SC_CLK_TCK")
    # rep, workload, side, rate, requests, ticks, errors, note
    runs = []
    with open(results_path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            rep, wl, side, rate, reqs, ticks, errors, note = line.split("\t", 7)
            reqs = int(reqs)
            ticks = float(ticks)
            us = ticks / hz * 1e6 / reqs if reqs and ticks == ticks else float("nan")
            runs.append(dict(rep=int(rep), wl=wl, side=side, rate=float(rate),
                             reqs=reqs, ticks=ticks, us=us,
                             errors=int(errors), note=note))

    def vals(wl, side, key):
        return [r[key] for r in runs
                if r["wl"] == wl and r["side"] == side and r[key] == r[key]]

    def med(wl, side, key):
        v = vals(wl, side, key)
        return statistics.median(v) if v else None

    def flagged(wl, side):
        return any(r["errors"] for r in runs if r["wl"] == wl and r["side"] == side)

    def cell(wl, side, key, fmt):
        m = med(wl, side, key)
        if m is None:
            return "failed" if any(r["wl"] == wl and r["side"] == side
                                   for r in runs) else "—"
        return (fmt % m) + (" ⚠" if flagged(wl, side) else "")

    def ratio(wl, key):
        b, a = med(wl, "before", key), med(wl, "after", key)
        if a is None or b is None or b == 0:
            return "—"
        return "%.3f" % (a / b)

    def spread(wl, side, key):
        v = vals(wl, side, key)
        if len(v) < 2:
            return "—"
        return "%.1f%%" % (100.0 * (max(v) - min(v)) / statistics.median(v))

    b, a = meta.get("before", "?"), meta.get("after", "?")
    out = ["## amped before/after: %s → %s" % (b, a), ""]
    out.append("| workload | before req/s | after req/s | after/before "
               "| before µs CPU/req | after µs CPU/req | after/before |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for wl, label in WORKLOADS:
        out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            label,
            cell(wl, "before", "rate", "%.0f"), cell(wl, "after", "rate", "%.0f"),
            ratio(wl, "rate"),
            cell(wl, "before", "us", "%.1f"), cell(wl, "after", "us", "%.1f"),
            ratio(wl, "us")))
    out.append("")
    out.append("Each cell is the median of %s run(s); before and after "
               "alternate (B, A, B, A, ...), a fresh server for each run, "
               "one at a time, pinned to CPU 0 with its children; wrk "
               "-d%ss on CPU 1. µs CPU/req: utime+stime of the server and "
               "all its descendants (live ones summed from /proc, exited "
               "ones through cutime/cstime) over the requests wrk "
               "completed. ⚠ = a run failed or had socket errors or non-2xx "
               "replies (see Flagged runs)."
               % (meta.get("reps", "?"), meta.get("wrk_secs", "?")))
    out.append("")
    out.append("Noise, (max − min)/median of the runs, before / after:")
    out.append("")
    if len(set(r["rep"] for r in runs)) < 2:
        out.append("- one round only: no spread to judge a ratio against; "
                   "run with --reps 5 (the default) or more.")
    for wl, _ in WORKLOADS:
        out.append("- %s: req/s %s / %s; µs CPU/req %s / %s" % (
            wl, spread(wl, "before", "rate"), spread(wl, "after", "rate"),
            spread(wl, "before", "us"), spread(wl, "after", "us")))
    out.append("")
    out.append("- before: %s" % meta.get("before_desc", "?"))
    out.append("- after: %s" % meta.get("after_desc", "?"))
    out.append("- %s; nproc %s; kernel %s; %s; %s" % (
        meta.get("date", "?"), meta.get("nproc", "?"), meta.get("kernel", "?"),
        meta.get("wrk", "?"), meta.get("cargo", "?")))
    out.append("- load average (1, 5, 15 min): at start %s; before measuring "
               "(after the builds) %s; after %s" % (
                   meta.get("load_start", "?"), meta.get("load_measure", "?"),
                   meta.get("load_end", "?")))
    try:
        busy = float(meta.get("load_start", "0").split()[0]) > 1.0
    except ValueError:
        busy = False
    if busy:
        out.append("")
        out.append("⚠ The machine was busy: the 1-minute load average was "
                   "%s at start (above 1), so other work shared the CPUs and "
                   "these numbers are noisy. Rerun on an idle machine before "
                   "trusting a small difference."
                   % meta.get("load_start", "?").split()[0])
    out.append("")
    out.append("### All runs (in run order)")
    out.append("")
    out.append("| round | workload | revision | req/s | requests "
               "| server CPU s | µs CPU/req | errors |")
    out.append("|---:|---|---|---:|---:|---:|---:|---:|")
    for r in runs:
        out.append("| %d | %s | %s %s | %s | %d | %s | %s | %d |" % (
            r["rep"], r["wl"], r["side"], meta.get(r["side"], "?"),
            "failed" if r["rate"] != r["rate"] else "%.0f" % r["rate"],
            r["reqs"],
            "—" if r["ticks"] != r["ticks"] else "%.2f" % (r["ticks"] / hz),
            "—" if r["us"] != r["us"] else "%.1f" % r["us"],
            r["errors"]))
    problems = [r for r in runs if r["errors"]]
    if problems:
        out.append("")
        out.append("Flagged runs:")
        out.append("")
        for r in problems:
            out.append("- round %d, %s, %s: %s" % (r["rep"], r["wl"], r["side"], r["note"]))
    print("\n".join(out))


def main(argv):
    if len(argv) == 4 and argv[1] == "files":
        files(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "cputicks":
        cputicks(argv[2])
    elif len(argv) == 3 and argv[1] == "parse":
        parse(argv[2])
    elif len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
PYEOF
export AB_BENCH_DIR="$SCRIPT_DIR"
ab_py() { python3 "$AB_PY" "$@"; }

# --- 3. build both revisions ----------------------------------------------------

SIDE_BIN=()
for i in 0 1; do
    side=${SIDE_NAME[$i]}
    src="$WORK/src-$side"
    log "$side: ${SIDE_REV[$i]} = ${SIDE_SHORT[$i]}: worktree $src"
    git -C "$REPO_ROOT" worktree add --detach "$src" "${SIDE_HASH[$i]}" >"$WORK/logs/worktree-$side.txt" 2>&1 ||
        { cat "$WORK/logs/worktree-$side.txt" >&2; die "git worktree add failed"; }
    WORKTREES+=("$src")
    if [ "$i" = 1 ]; then
        # Start the after build from a copy of the before one: cargo
        # reuses the compiled dependencies that did not change and
        # rebuilds the workspace crates (their path differs), so this
        # halves the build time and the binaries are still after's own.
        cp -a "$WORK/target-before" "$WORK/target-after"
    fi
    log "$side: cargo build --release --bins (CARGO_TARGET_DIR=$WORK/target-$side)"
    (cd "$src" && CARGO_TARGET_DIR="$WORK/target-$side" cargo build --release --bins) >&2 ||
        die "$side: the build of ${SIDE_SHORT[$i]} failed"
    bin="$WORK/target-$side/release/server"
    [ -x "$bin" ] || die "$side: no $bin after the build"
    SIDE_BIN+=("$bin")
done

# --- 4. docroot -------------------------------------------------------------

DOCROOT="$WORK/www"
mkdir -p "$DOCROOT"
if [ -d "$REPO_ROOT/www" ]; then
    cp -a "$REPO_ROOT/www/." "$DOCROOT/"
fi
[ -x "$DOCROOT/cgi-bin/hello.cgi" ] || die "no executable www/cgi-bin/hello.cgi in $REPO_ROOT"
head -c 1024 /dev/urandom >"$DOCROOT/1k.bin"
[ "$(stat -c %s "$DOCROOT/1k.bin")" -eq 1024 ] || die "1k.bin is not 1024 bytes"
ab_py files "$DOCROOT/files" "$NFILES"
[ "$(find "$DOCROOT/files" -name 'f*.bin' -size 1024c | wc -l)" -eq "$NFILES" ] ||
    die "did not get $NFILES files of 1024 bytes in $DOCROOT/files"
chmod -R a+rX "$DOCROOT"

# wrk's request() for the files workload: one thread (-t1), so one Lua
# state and one counter walking all the files in turn, across connections.
FILES_LUA="$WORK/files.lua"
cat >"$FILES_LUA" <<EOF
-- generated by tests/bench/ab.sh: GET /files/f0000.bin .. f$(printf '%04d' $((NFILES - 1))).bin in rotation
local n = $NFILES
local i = -1
request = function()
    i = (i + 1) % n
    return wrk.format("GET", string.format("/files/f%04d.bin", i))
end
EOF

# --- 5. servers ---------------------------------------------------------------

PORT=""


# start_server SIDE_INDEX TAG: start that revision's server on a free port.
start_server() {
    local i=$1 tag=$2 try
    for try in 1 2 3; do   # a free port can be taken between pick and bind
        PORT=$(python3 "$BENCH_PY" freeport)
        taskset -c 0 "${SIDE_BIN[$i]}" --listen "127.0.0.1:$PORT" --root "$DOCROOT" \
            --access-log off >"$WORK/logs/$tag.server.stdout" 2>"$WORK/logs/$tag.server.stderr" &
        SERVER_PID=$!
        if wait_http "$PORT"; then
            return 0
        fi
        log "${SIDE_NAME[$i]}: start attempt $try failed; stderr:"
        tail -n 5 "$WORK/logs/$tag.server.stderr" >&2 || true
        stop_server
    done
    return 1
}



verify_all() {
    local f
    verify "$PORT" /1k.bin "$DOCROOT/1k.bin" || return 1
    for f in f0000.bin f0001.bin "f$(printf '%04d' $((NFILES / 2))).bin" \
             "f$(printf '%04d' $((NFILES - 1))).bin"; do
        verify "$PORT" "/files/$f" "$DOCROOT/files/$f" || return 1
    done
    verify_cgi "$PORT"
}

# --- 6. measure ---------------------------------------------------------------

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

record() {  # rep workload side "rate<TAB>requests<TAB>ticks<TAB>errors<TAB>note"
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

# run_wrk REP WORKLOAD SIDE_INDEX: one measurement against a fresh server.
run_wrk() {
    local rep=$1 wl=$2 i=$3 side=${SIDE_NAME[$3]} args=() url tag out
    local t0 t1 ticks parsed rate reqs errors note
    tag="$rep.$wl.$side"
    out="$WORK/logs/$tag.wrk.txt"
    case "$wl" in
        keepalive) args=(-c100); url=/1k.bin ;;
        files) args=(-c100 -s "$FILES_LUA"); url=/files/f0000.bin ;;
        cgi) args=(-c10); url=/cgi-bin/hello.cgi ;;
    esac
    if ! start_server "$i" "$tag"; then
        log "$side: server did not start"
        record "$rep" "$wl" "$side" $'nan\t0\tnan\t1\tserver did not start'
        FAILED=1
        return
    fi
    if ! verify_all; then
        log "$side: wrong answer before measuring; not measured"
        record "$rep" "$wl" "$side" $'nan\t0\tnan\t1\tverification failed'
        FAILED=1
        stop_server
        return
    fi
    log "round $rep, $wl, $side (${SIDE_SHORT[$i]}): wrk -t1 ${args[*]} -d${WRK_SECS}s $url"
    t0=$(ab_py cputicks "$SERVER_PID") || t0=""
    timeout $((WRK_SECS + 60)) taskset -c 1 wrk -t1 "${args[@]}" -d"${WRK_SECS}s" \
        "http://127.0.0.1:$PORT$url" >"$out" 2>&1 || true
    t1=$(ab_py cputicks "$SERVER_PID") || t1=""
    parsed=$(ab_py parse "$out")
    IFS=$'\t' read -r rate reqs errors note <<<"$parsed"
    [ "$note" != - ] || note=""
    if [ -n "$t0" ] && [ -n "$t1" ] && alive "$SERVER_PID"; then
        ticks=$((t1 - t0))
    else
        # Died under load: its CPU time is lost, and that is a failure.
        ticks=nan
        errors=$((errors + 1))
        note="server died during the run${note:+; $note}"
        FAILED=1
    fi
    record "$rep" "$wl" "$side" "$rate"$'\t'"$reqs"$'\t'"$ticks"$'\t'"$errors"$'\t'"$note"
    log "  -> $rate req/s, $reqs requests, $ticks ticks of server CPU, errors $errors${note:+ ($note)}"
    stop_server
}

LOAD_MEASURE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((rep = 1; rep <= REPS; rep++)); do
    for wl in keepalive files cgi; do
        run_wrk "$rep" "$wl" 0
        run_wrk "$rep" "$wl" 1
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 7. report ----------------------------------------------------------------

describe() {  # side index: "abc1234 (HEAD~1): subject"
    local i=$1 what=${SIDE_SHORT[$1]}
    [ "${SIDE_REV[$i]}" = "${SIDE_SHORT[$i]}" ] || what="$what (${SIDE_REV[$i]})"
    echo "$what: $(git -C "$REPO_ROOT" log -1 --format=%s "${SIDE_HASH[$i]}")"
}
META="$WORK/meta.txt"
{
    echo "before=${SIDE_SHORT[0]}"
    echo "after=${SIDE_SHORT[1]}"
    echo "before_desc=$(describe 0)"
    echo "after_desc=$(describe 1)"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "nproc=$(nproc)"
    echo "kernel=$(uname -sr)"
    echo "load_start=$LOAD_START"
    echo "load_measure=$LOAD_MEASURE"
    echo "load_end=$LOAD_END"
    echo "wrk=$(first_line wrk --version | sed 's/ \[.*//; s/^wrk debian\//wrk /')"
    echo "cargo=$(first_line cargo --version | sed 's/ (.*//')"
    echo "reps=$REPS"
    echo "wrk_secs=$WRK_SECS"
} >"$META"

REPORT="$WORK/report.md"
ab_py report "$RESULTS" "$META" >"$REPORT"
cat "$REPORT"
if [ -n "$OUT" ]; then
    cp "$REPORT" "$OUT"
    log "report written to $OUT"
fi
if [ "$FAILED" = 1 ]; then
    log "some server failed to start, answered wrongly or died"
    exit 1
fi
