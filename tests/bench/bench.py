#!/usr/bin/env python3
# Parsing and report helper for tests/bench/run.sh (the amped vs nginx vs lighttpd benchmark).
"""Helper for tests/bench/run.sh: picks a free loopback port, parses httperf
and wrk output into one TSV line per run, and turns the collected runs into
the Markdown report (median per server and workload, amped/nginx and
amped/lighttpd ratios, flagged runs, machine and tool versions).

Subcommands:
  freeport                      print a free TCP port on 127.0.0.1
  parse httperf|wrk FILE N      print "VALUE<TAB>ERRORS<TAB>NOTE" for one run
                                (N = the number of requests httperf must
                                see answered with 2xx; ignored for wrk)
  report RESULTS.tsv META.txt   print the Markdown report
"""

import re
import socket
import statistics
import sys

SERVERS = [
    ("amped", "amped"),
    ("nginx", "nginx (1 worker)"),
    ("lighttpd", "lighttpd"),
]


def freeport():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    finally:
        s.close()


def _num(pattern, text, default=None):
    m = re.search(pattern, text)
    if not m:
        return default
    return float(m.group(1))


def parse_httperf(text, expected):
    """Request rate, plus every reason to distrust it: httperf errors,
    replies that were not 2xx, fewer 2xx replies than connections."""
    rate = _num(r"Request rate:\s*([0-9.]+)\s*req/s", text)
    notes = []
    errors = 0
    m = re.search(r"Errors: total (\d+) client-timo (\d+) socket-timo (\d+) "
                  r"connrefused (\d+) connreset (\d+)", text)
    if m:
        errors += int(m.group(1))
        if int(m.group(1)):
            notes.append("httperf errors: total %s (client-timo %s, "
                         "socket-timo %s, connrefused %s, connreset %s)"
                         % m.groups())
    m = re.search(r"Reply status: 1xx=(\d+) 2xx=(\d+) 3xx=(\d+) 4xx=(\d+) "
                  r"5xx=(\d+)", text)
    if m:
        ok = int(m.group(2))
        bad = int(m.group(1)) + int(m.group(3)) + int(m.group(4)) + int(m.group(5))
        if bad:
            errors += bad
            notes.append("non-2xx replies: %d" % bad)
        if expected and ok < expected:
            errors += expected - ok
            notes.append("only %d of %d requests got a 2xx reply" % (ok, expected))
    else:
        notes.append("no 'Reply status' line")
        errors += 1
    if rate is None:
        notes.append("no 'Request rate' line")
        errors += 1
    return rate, errors, "; ".join(notes)


def parse_wrk(text):
    """Requests/sec, plus non-2xx/3xx responses and socket errors."""
    rate = _num(r"Requests/sec:\s*([0-9.]+)", text)
    notes = []
    errors = 0
    non2xx = _num(r"Non-2xx or 3xx responses:\s*(\d+)", text, 0)
    if non2xx:
        errors += int(non2xx)
        notes.append("non-2xx/3xx responses: %d" % non2xx)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", text)
    if m:
        n = sum(int(g) for g in m.groups())
        errors += n
        notes.append("socket errors: connect %s, read %s, write %s, timeout %s"
                     % m.groups())
    if rate is None:
        notes.append("no 'Requests/sec' line")
        errors += 1
    return rate, errors, "; ".join(notes)


def parse(kind, path, expected):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if kind == "httperf":
        rate, errors, note = parse_httperf(text, int(expected))
    elif kind == "wrk":
        rate, errors, note = parse_wrk(text)
    else:
        sys.exit("unknown kind %r" % kind)
    value = "nan" if rate is None else "%.1f" % rate
    print("%s\t%d\t%s" % (value, errors, note or "-"))


WORKLOADS = [
    ("httperf", "httperf, new connection per request, `GET /` (req/s)"),
    ("wrk", "wrk -t1 -c100, keep-alive, `GET /1k.bin` (req/s)"),
    ("cgi", "wrk -t1 -c10, `GET /cgi-bin/hello.cgi` (req/s)"),
]


def _busy(load):
    """The 1-minute load average before or after the runs, if too high.
    Before the runs it should be near 0 (above 1.0 something else is
    running). After them it includes the benchmark itself, which keeps
    both CPUs and a few short-lived processes busy (measured: 2.1 to 2.8
    on an otherwise idle machine), so 'after' is allowed up to 3.5."""
    m = re.search(r"before ([0-9.]+) .*after ([0-9.]+)", load)
    if not m:
        return ""
    before, after = float(m.group(1)), float(m.group(2))
    if before > 1.0 or after > 3.5:
        return "1-minute load average %.2f before, %.2f after" % (before, after)
    return ""


def report(results_path, meta_path):
    # results: server, workload, rep, value, errors, note
    runs = {}
    with open(results_path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            server, workload, rep, value, errors, note = line.split("\t", 5)
            runs.setdefault((server, workload), []).append(
                (int(rep), float(value), int(errors), note))
    meta = {}
    with open(meta_path, encoding="utf-8") as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v

    def median(server, workload):
        vals = [v for _, v, _, _ in runs.get((server, workload), [])
                if v == v]  # drop NaN
        return statistics.median(vals) if vals else None

    def flagged(server, workload):
        return any(e for _, _, e, _ in runs.get((server, workload), []))

    def cell(server, workload):
        m = median(server, workload)
        if m is None:
            return "—" if (server, workload) not in runs else "failed"
        return "%.0f%s" % (m, " ⚠" if flagged(server, workload) else "")

    def ratio(a, b, workload):
        x, y = median(a, workload), median(b, workload)
        if x is None or y is None or y == 0:
            return "—"
        return "%.2f" % (x / y)

    out = []
    out.append("| workload | " + " | ".join(label for _, label in SERVERS)
               + " | amped/nginx | amped/lighttpd |")
    out.append("|---|" + "---:|" * (len(SERVERS) + 2))
    for wl, label in WORKLOADS:
        row = [label] + [cell(s, wl) for s, _ in SERVERS]
        row += [ratio("amped", "nginx", wl), ratio("amped", "lighttpd", wl)]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    reps = meta.get("reps", "?")
    out.append("Each cell is the median of %s run(s), servers alternating; "
               "server pinned to CPU 0, load generator to CPU 1; "
               "httperf --num-conns %s --num-calls 1 (no --hog), wrk -d%ss. "
               "⚠ = a run had errors or non-2xx replies."
               % (reps, meta.get("httperf_conns", "?"),
                  meta.get("wrk_secs", "?")))
    out.append("")
    out.append("%s; nproc %s; kernel %s; %s; amped %s; %s; %s; %s; %s; %s"
               % (meta.get("date", "?"), meta.get("nproc", "?"),
                  meta.get("kernel", "?"), meta.get("load", "load ?"),
                  meta.get("amped", "?"),
                  meta.get("nginx", "?"), meta.get("nginx_mode", "?"),
                  meta.get("lighttpd", "?"), meta.get("wrk", "?"),
                  meta.get("httperf", "?")))
    busy = _busy(meta.get("load", ""))
    if busy:
        out.append("")
        out.append("⚠ The machine was busy (%s); other work shared the "
                   "CPUs, so these numbers are noisy. Rerun on an idle "
                   "machine." % busy)
    out.append("")
    out.append("All runs (req/s, in run order):")
    out.append("")
    for wl, _ in WORKLOADS:
        for s, label in SERVERS:
            rs = sorted(runs.get((s, wl), []))
            if not rs:
                continue
            vals = ", ".join("%.0f" % v if v == v else "failed"
                             for _, v, _, _ in rs)
            out.append("- %s, %s: %s" % (wl, label, vals))
    problems = [(s, wl, r, n) for (s, wl), rs in sorted(runs.items())
                for r, _, e, n in rs if e]
    if problems:
        out.append("")
        out.append("Flagged runs:")
        out.append("")
        for s, wl, r, n in problems:
            out.append("- %s %s run %d: %s" % (s, wl, r, n))
    print("\n".join(out))


def main(argv):
    if len(argv) >= 2 and argv[1] == "freeport":
        freeport()
    elif len(argv) == 5 and argv[1] == "parse":
        parse(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
