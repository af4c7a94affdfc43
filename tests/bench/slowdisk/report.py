#!/usr/bin/env python3
# report.py: the parsing and the Markdown table for tests/bench/slowdisk/run.sh.
#   report.py wrk FILE            -> "req_s<TAB>p50_ms<TAB>p99_ms<TAB>errors"
#   report.py cold FILE... SECS SIZE
#                                 -> "MB_s<TAB>complete<TAB>partial<TAB>bad"
#       FILE: lines "HTTP_CODE SIZE_DOWNLOAD TIME_TOTAL" from curl -w, one a
#       download; MB/s = all bytes received / SECS (10^6 bytes a MB).
#   report.py table RESULTS.tsv   -> the Markdown table on stdout
#   report.py sched FILE SERVER   -> "wrk_avg<TAB>wrk_max<TAB>srv_avg<TAB>srv_max<TAB>srv_switches"
#       FILE: `perf sched latency` output; wrk's task, and SERVER's tasks
#       (amped: server and helper; nginx and nginx-aio: nginx; lighttpd),
#       their waits for a CPU in ms (the average weighted by switches)
#   report.py schedtable SCHED.tsv -> its Markdown table on stdout
import re
import sys


def ms(v, unit):
    v = float(v)
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def parse_wrk(path):
    text = open(path, errors="replace").read()
    m = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    rps = float(m.group(1)) if m else float("nan")
    lat = {}
    for pct, v, unit in re.findall(r"^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m)\s*$", text, re.M):
        lat[pct] = ms(v, unit)
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    return "%.0f\t%.3f\t%.3f\t%d" % (rps, lat.get("50", float("nan")),
                                      lat.get("99", float("nan")), errors)


def parse_cold(files, secs, size):
    total = complete = partial = bad = 0
    for path in files:
        for line in open(path, errors="replace"):
            f = line.split()
            if len(f) < 2:
                continue
            code, got = f[0], int(float(f[1]))
            total += got
            if code == "200" and got == size:
                complete += 1
            elif code in ("200", "000") and got < size:
                partial += 1   # cut off by the time limit at the end of the run
            else:
                bad += 1
    return "%.1f\t%d\t%d\t%d" % (total / secs / 1e6, complete, partial, bad)


def table(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
    print("| server | cached page req/s, alone | cached page req/s, with cold load | its p50 | its p99 "
          "| cold 4 MiB files MB/s | downloads complete (cut at end) | errors | slowfs bytes read / bytes served |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        name, base, rps, p50, p99, mbs, comp, part, errs, fuse = r
        print("| %s | %s | %s | %s ms | %s ms | %s | %s (%s) | %s | %s |"
              % (name, base, rps, p50, p99, mbs, comp, part, errs, fuse))


SERVER_TASKS = {"amped": ("server", "helper"), "nginx": ("nginx",),
                "nginx-aio": ("nginx",), "lighttpd": ("lighttpd",)}


def parse_sched(path, server):
    """Waits for a CPU of wrk and of the server's tasks, from perf sched latency."""
    line_re = re.compile(r"^\s*(\S+?):\S*\s*\|\s*[0-9.]+ ms\s*\|\s*(\d+)\s*\|\s*avg:\s*([0-9.]+) ms"
                         r"\s*\|\s*max:\s*([0-9.]+) ms")
    sums = {"wrk": [0, 0.0, 0.0], "srv": [0, 0.0, 0.0]}   # switches, avg*switches, max
    for line in open(path, errors="replace"):
        m = line_re.match(line)
        if not m:
            continue
        comm, switches, avg, mx = m.group(1), int(m.group(2)), float(m.group(3)), float(m.group(4))
        side = "wrk" if comm == "wrk" else "srv" if comm in SERVER_TASKS.get(server, ()) else None
        if side:
            acc = sums[side]
            acc[0] += switches
            acc[1] += avg * switches
            acc[2] = max(acc[2], mx)
    def avg(side):
        n, total, _ = sums[side]
        return total / n if n else float("nan")
    return "%.3f\t%.3f\t%.3f\t%.3f\t%d" % (avg("wrk"), sums["wrk"][2], avg("srv"), sums["srv"][2],
                                          sums["srv"][0])


def sched_table(path):
    print("| server | wrk: average wait | wrk: longest wait | server: average wait | server: longest wait |")
    print("|---|---|---|---|---|")
    for line in open(path):
        if not line.strip():
            continue
        name, wavg, wmax, savg, smax, _ = line.rstrip("\n").split("\t")
        print("| %s | %s ms | %s ms | %s ms | %s ms |" % (name, wavg, wmax, savg, smax))


def main():
    cmd = sys.argv[1]
    if cmd == "wrk":
        print(parse_wrk(sys.argv[2]))
    elif cmd == "cold":
        print(parse_cold(sys.argv[2:-2], float(sys.argv[-2]), int(sys.argv[-1])))
    elif cmd == "table":
        table(sys.argv[2])
    elif cmd == "sched":
        print(parse_sched(sys.argv[2], sys.argv[3]))
    elif cmd == "schedtable":
        sched_table(sys.argv[2])
    else:
        sys.exit("report.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
