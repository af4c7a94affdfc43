#!/usr/bin/env python3
# Parsing, measuring and report helper for tests/bench/run.sh (amped against
# nginx with one worker, lighttpd and a bare epoll responder).
"""Helper for tests/bench/run.sh (Python 3, standard library only).

Subcommands:
  freeport                  print a free TCP port on 127.0.0.1
  parse httperf|wrk FILE N  print "VALUE<TAB>ERRORS<TAB>NOTE" for one run
                            (N = the requests httperf must see answered with
                            2xx; ignored for wrk); used by other scripts
  cputicks PID              utime+stime+cutime+cstime in clock ticks, summed
                            over PID and all its live descendants
  rss PID                   "FRONT TREE": VmRSS in KiB of PID, and summed
                            over PID and its live descendants
  files DIR N SIZE          write N distinct files of SIZE random bytes,
                            DIR/f0000.bin ...
  rotation PREFIX N         print a wrk Lua script requesting PREFIXf0000.bin
                            .. in rotation
  record RESULTS ROUND WORKLOAD SERVER TOOL OUTPUT T0 T1 [KEY=VALUE ...]
                            parse one run's tool output (TOOL wrk, httperf
                            or none), add its server CPU (ticks T0 -> T1, or
                            nan) and the extra KEY=VALUE fields (error=TEXT
                            marks a failed run), append it to RESULTS as one
                            JSON line, print a one-line summary
  report RESULTS META       print the Markdown report
  svg RESULTS META OUT.svg  draw the ratio chart with gnuplot
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile

# --- parsing the tools' output ---------------------------------------------


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


# wrk prints sizes with binary prefixes (format_binary) and times with
# us/ms/s/m/h (format_time).
_SIZE = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}
_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def wrk_details(text):
    """Everything run.sh reports from one `wrk --latency` run."""
    rate, errors, note = parse_wrk(text)
    d = {"rate": rate, "errors": errors, "note": note}
    m = re.search(r"(\d+) requests in ([0-9.]+)(\w+), ([0-9.]+)(\w+) read", text)
    d["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Transfer/sec:\s*([0-9.]+)(\w+)", text)
    d["bytes_per_s"] = (float(m.group(1)) * _SIZE[m.group(2)]
                        if m and m.group(2) in _SIZE else None)
    for pct in ("50", "99"):
        m = re.search(r"^\s*%s%%\s+([0-9.]+)(\w+)" % pct, text, re.M)
        d["p" + pct] = (float(m.group(1)) * _TIME_MS[m.group(2)]
                        if m and m.group(2) in _TIME_MS else None)
    if d["requests"] is None:
        d["errors"] += 1
        d["note"] = "; ".join(x for x in (note, "no 'requests in' line") if x)
    return d


def httperf_details(text, expected):
    rate, errors, note = parse_httperf(text, expected)
    d = {"rate": rate, "errors": errors, "note": note, "bytes_per_s": None,
         "p99": None}
    m = re.search(r"Reply status: 1xx=\d+ 2xx=(\d+)", text)
    d["requests"] = int(m.group(1)) if m else None
    # httperf gives no percentiles, and its median connection time is
    # binned to whole milliseconds (0.5 ms for anything under 1 ms): the
    # report shows the mean connection time (connect, request, reply,
    # close) instead.
    d["p50"] = None
    d["conn_avg"] = _num(r"Connection time \[ms\]:.*avg ([0-9.]+)", text)
    return d


# --- processes ------------------------------------------------------------------


def _proc_table():
    """{pid: (ppid, ticks, rss_kib)} for every process, from /proc."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue   # gone meanwhile
        rest = s[s.rindex(")") + 2:].split()   # fields 3 (state) on
        # fields 14-17: utime stime cutime cstime; field 24: rss in pages
        table[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]),
                         int(rest[21]) * os.sysconf("SC_PAGE_SIZE") // 1024)
    return table


def _tree(table, root):
    kids = {}
    for pid, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        if p in table:
            out.append(p)
            stack.extend(kids.get(p, []))
    return out


def cputicks(pid):
    table = _proc_table()
    pid = int(pid)
    if pid not in table:
        sys.exit("cputicks: no process %d" % pid)
    print(sum(table[p][1] for p in _tree(table, pid)))


def rss(pid):
    table = _proc_table()
    pid = int(pid)
    if pid not in table:
        sys.exit("rss: no process %d" % pid)
    print(table[pid][2], sum(table[p][2] for p in _tree(table, pid)))


def files(d, n, size):
    os.makedirs(d, exist_ok=True)
    for i in range(int(n)):
        with open(os.path.join(d, "f%04d.bin" % i), "wb") as f:
            f.write(os.urandom(int(size)))


def rotation(prefix, n):
    print("-- generated by tests/bench/run.sh: %sf0000.bin .. f%04d.bin in rotation\n"
          "-- (wrk -t1: one Lua state, so one counter across all connections)\n"
          "local n = %d\nlocal i = -1\n"
          "request = function()\n"
          "    i = (i + 1) %% n\n"
          "    return wrk.format(\"GET\", string.format(\"%sf%%04d.bin\", i))\n"
          "end" % (prefix, int(n) - 1, int(n), prefix))


# --- one run ---------------------------------------------------------------------


def record(results, rnd, workload, server, tool, output, t0, t1, extras):
    if tool == "wrk":
        with open(output, encoding="utf-8", errors="replace") as f:
            d = wrk_details(f.read())
    elif tool == "httperf":
        with open(output, encoding="utf-8", errors="replace") as f:
            d = httperf_details(f.read(), int(extras.get("expected", 0)))
    else:
        d = {"rate": None, "requests": None, "bytes_per_s": None, "p50": None,
             "p99": None, "errors": 0, "note": ""}
    d.update(round=int(rnd), workload=workload, server=server)
    notes = [d["note"]] if d["note"] else []
    for k, v in extras.items():
        if k == "error":
            d["errors"] += 1
            notes.append(v)
        else:
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
    d["note"] = "; ".join(notes)
    d["ticks"] = None
    d["us_cpu"] = None
    try:
        ticks = int(t1) - int(t0)
        d["ticks"] = ticks
        if d["requests"]:
            d["us_cpu"] = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / d["requests"]
    except ValueError:
        pass   # nan: no CPU figure for this run
    with open(results, "a", encoding="utf-8") as f:
        f.write(json.dumps(d, sort_keys=True) + "\n")
    parts = ["%.0f req/s" % d["rate"] if d["rate"] is not None else "no rate"]
    if d["bytes_per_s"] is not None and workload in BYTES_WORKLOADS:
        parts.append("%.2f GB/s" % (d["bytes_per_s"] / 1e9))
    if d["us_cpu"] is not None:
        parts.append("%.1f µs CPU/req" % d["us_cpu"])
    if d["p50"] is not None:
        parts.append("p50 %s" % _ms(d["p50"]))
    if d["p99"] is not None:
        parts.append("p99 %s" % _ms(d["p99"]))
    if d["errors"]:
        parts.append("errors %d (%s)" % (d["errors"], d["note"]))
    print(", ".join(parts))


# --- the report ---------------------------------------------------------------------

SERVERS = [
    ("amped", "amped"),
    ("nginx", "nginx (1 worker)"),
    ("lighttpd", "lighttpd"),
    ("responder", "epoll responder"),
]
LABEL = dict(SERVERS)

# (key, label in tables, short label in the chart)
WORKLOADS = [
    ("1m", "1 MiB file, wrk -t1 -c50", "1 MiB"),
    ("10m", "10 MiB file, wrk -t1 -c10", "10 MiB"),
    ("1k", "1 KiB file, wrk -t1 -c100", "1 KiB c100"),
    ("1k-c1000", "1 KiB file, wrk -t1 -c1000", "1 KiB c1000"),
    ("files", "1,000 files of 1 KiB in rotation, wrk -t1 -c100", "1,000 files"),
    ("newconn", "new connection per request, httperf `GET /`", "new conn"),
    ("cgi", "`hello.cgi`, wrk -t1 -c10", "hello.cgi"),
    ("idle", "1 KiB, wrk -t1 -c100 beside the idle keep-alive connections",
     "beside idle"),
    ("cold", "2,000 files of 256 KiB in rotation, wrk -t1 -c100", "cold set"),
]
WL_LABEL = {k: v for k, v, _ in WORKLOADS}
BYTES_WORKLOADS = ("1m", "10m")
SMALL_WORKLOADS = ("1k", "1k-c1000", "files")


def _ms(v):
    if v is None:
        return "-"
    return "%.3f ms" % v if v < 10 else "%.1f ms" % v


def _load(results_path, meta_path):
    runs = []
    with open(results_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                runs.append(json.loads(line))
    meta = {}
    with open(meta_path, encoding="utf-8") as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    return runs, meta


class Results:
    def __init__(self, runs):
        self.runs = runs

    def of(self, wl, server):
        return [r for r in self.runs if r["workload"] == wl and r["server"] == server]

    def ran(self, wl, server):
        return bool(self.of(wl, server))

    def med(self, wl, server, key):
        vals = [r[key] for r in self.of(wl, server)
                if r.get(key) is not None and r[key] == r[key]
                and (key != "rate" or r["rate"] is not None)]
        return statistics.median(vals) if vals else None

    def flagged(self, wl, server):
        return any(r["errors"] for r in self.of(wl, server))

    def ratio(self, wl, a, b, key, invert=False):
        x, y = self.med(wl, a, key), self.med(wl, b, key)
        if x is None or y is None or x == 0 or y == 0:
            return None
        return y / x if invert else x / y


def _r(v, digits=2):
    return "-" if v is None else "%.*f" % (digits, v)


def _busy(meta):
    """The 1-minute load average before the runs, if above 1.0 (something
    else was running); after them it includes the benchmark itself (2 to 3
    on an otherwise idle 2-CPU machine), so 'after' is allowed up to 3.5."""
    try:
        before = float(meta.get("load_before", "").split()[0])
        after = float(meta.get("load_after", "").split()[0])
    except (IndexError, ValueError):
        return ""
    if before > 1.0 or after > 3.5:
        return "1-minute load average %.2f before, %.2f after" % (before, after)
    return ""


def bars(res, meta):
    """The bars of issue 11: (text, measured, holds or None)."""
    out = []

    def bar(wl, text, value, ok, fmt="%.3f"):
        if not res.ran(wl, "amped"):
            return   # workload not run: no bar
        out.append((text, "-" if value is None else fmt % value,
                    None if value is None else ok(value)))

    for wl in BYTES_WORKLOADS:
        bar(wl, "%s: amped/lighttpd req/s ≥ 1.0" % WL_LABEL[wl],
            res.ratio(wl, "amped", "lighttpd", "rate"), lambda v: v >= 1.0)
    for wl in SMALL_WORKLOADS:
        bar(wl, "%s: amped/lighttpd CPU per request ≤ 0.9" % WL_LABEL[wl],
            res.ratio(wl, "amped", "lighttpd", "us_cpu"), lambda v: v <= 0.9)
        bar(wl, "%s: amped/responder CPU per request ≤ 1.05" % WL_LABEL[wl],
            res.ratio(wl, "amped", "responder", "us_cpu"), lambda v: v <= 1.05)
        bar(wl, "%s: amped/lighttpd req/s ≥ 1.0" % WL_LABEL[wl],
            res.ratio(wl, "amped", "lighttpd", "rate"), lambda v: v >= 1.0)
    bar("newconn", "%s: amped/lighttpd req/s ≥ 1.05" % WL_LABEL["newconn"],
        res.ratio("newconn", "amped", "lighttpd", "rate"), lambda v: v >= 1.05)
    bar("cgi", "%s: amped/lighttpd req/s ≥ 1.2" % WL_LABEL["cgi"],
        res.ratio("cgi", "amped", "lighttpd", "rate"), lambda v: v >= 1.2)
    bar("idle", "idle: amped's front process grows ≤ 1024 bytes per idle connection",
        res.med("idle", "amped", "bytes_per_conn"), lambda v: v <= 1024, "%.0f bytes")
    bar("idle", "idle: amped's wrk -c100 rate beside the idle connections ≥ 0.9x "
        "its rate alone", res.med("idle", "amped", "beside_alone"),
        lambda v: v >= 0.9)
    bar("cold", "%s: amped/lighttpd req/s ≥ 1.0" % WL_LABEL["cold"],
        res.ratio("cold", "amped", "lighttpd", "rate"), lambda v: v >= 1.0)
    return out


def _derive(runs):
    """Idle runs: bytes per connection and the beside/alone ratio, from the
    'idle' run (wrk beside the idle connections, with the RSS readings) and
    the 'idle-alone' run of the same server in the same round."""
    alone = {(r["round"], r["server"]): r for r in runs if r["workload"] == "idle-alone"}
    for r in runs:
        if r["workload"] != "idle":
            continue
        n = r.get("conns")
        if n and r.get("rss_after") is not None and r.get("rss_before") is not None:
            r["bytes_per_conn"] = (r["rss_after"] - r["rss_before"]) * 1024 / n
        if n and r.get("tree_after") is not None and r.get("tree_before") is not None:
            r["tree_bytes_per_conn"] = (r["tree_after"] - r["tree_before"]) * 1024 / n
        a = alone.get((r["round"], r["server"]))
        if a:
            r["alone_rate"] = a["rate"]
            if a["rate"] and r["rate"] is not None:
                r["beside_alone"] = r["rate"] / a["rate"]


def report(results_path, meta_path):
    runs, meta = _load(results_path, meta_path)
    _derive(runs)
    res = Results(runs)
    wls = [w for w in WORKLOADS if any(r["workload"] == w[0] for r in runs)]
    present = [s for s in SERVERS if any(r["server"] == s[0] for r in runs)]
    main3 = [s for s in present if s[0] != "responder"]
    has_resp = any(s[0] == "responder" for s in present)
    out = []
    reps = meta.get("reps", "?")

    versions = ["amped " + meta.get("amped", "?")] + [
        meta[k] for k in ("nginx", "lighttpd", "wrk", "httperf", "gcc") if k in meta]
    out.append("Machine: %s, %s CPUs (nproc), %s; %s. Load average before %s, "
               "after %s. %s."
               % (meta.get("cpu", "?"), meta.get("nproc", "?"),
                  meta.get("kernel", "?"), meta.get("date", "?"),
                  meta.get("load_before", "?"), meta.get("load_after", "?"),
                  "; ".join(versions)))
    out.append("")
    out.append("Command: `%s`. Each cell is the median of %s round(s); in each "
               "round every workload runs on every server in turn (a fresh "
               "server for each run, the order rotating from round to round), "
               "the server pinned to CPU 0 (`taskset -c 0`, its children "
               "too) and the load generator to CPU 1; wrk -d%ss, httperf "
               "--num-conns %s. ⚠ = a run had errors, non-2xx replies or a "
               "failure (see Flagged runs)."
               % (meta.get("command", "tests/bench/run.sh"), reps,
                  meta.get("wrk_secs", "?"), meta.get("httperf_conns", "?")))
    busy = _busy(meta)
    if busy:
        out.append("")
        out.append("⚠ The machine was busy (%s): other work shared the CPUs, so "
                   "these numbers are noisy. Rerun on an idle machine." % busy)

    def cell(wl, s, key, fmt):
        if not res.ran(wl, s):
            return "-"
        m = res.med(wl, s, key)
        if m is None:
            return "failed"
        return (fmt(m) if callable(fmt) else fmt % m) + (" ⚠" if res.flagged(wl, s) else "")

    # 1. throughput
    out += ["", "### Throughput", "",
            "req/s; for the 1 MiB and 10 MiB files also GB/s (bytes wrk read, "
            "headers included, 10^9 bytes a GB). For the idle workload, the "
            "rate of wrk beside the idle connections.", ""]
    names = [x for x, _ in present]
    others = [o for o in ("nginx", "lighttpd") if o in names and "amped" in names]
    hdr = "| workload | " + " | ".join(l for _, l in present) + "".join(
        " | amped/%s" % o for o in others) + " |"
    out += [hdr, "|---|" + "---:|" * (len(present) + len(others))]
    for wl, label, _ in wls:
        row = [label]
        for s, _ in present:
            if wl in BYTES_WORKLOADS and res.ran(wl, s) and res.med(wl, s, "bytes_per_s") is not None:
                gb = res.med(wl, s, "bytes_per_s") / 1e9
                row.append(cell(wl, s, "rate", lambda m, gb=gb: "%.2f GB/s (%.0f)" % (gb, m)))
            else:
                row.append(cell(wl, s, "rate", "%.0f"))
        row += [_r(res.ratio(wl, "amped", o, "rate")) for o in others]
        out.append("| " + " | ".join(row) + " |")

    # 2. CPU per request
    out += ["", "### Server CPU time per request", "",
            "µs: utime+stime+cutime+cstime of the server process and all its "
            "live descendants (amped: the front process, its disk helpers and "
            "cgi-runner, whose CGI children are reaped into its cutime; "
            "lighttpd: one process, its CGI children reaped into its cutime; "
            "nginx: one process, master_process off), read from /proc before "
            "and after the run, over the requests completed. Lower is better.", ""]
    cpu_others = others + (["responder"] if has_resp and "amped" in names else [])
    cols = ["amped/" + o for o in cpu_others]
    out += ["| workload | " + " | ".join(l for _, l in present) + " | " + " | ".join(cols) + " |",
            "|---|" + "---:|" * (len(present) + len(cols))]
    for wl, label, _ in wls:
        row = [label] + [cell(wl, s, "us_cpu", "%.2f") for s, _ in present]
        row += [_r(res.ratio(wl, "amped", o, "us_cpu")) for o in cpu_others]
        out.append("| " + " | ".join(row) + " |")

    # 3. latency
    out += ["", "### Latency, p50 / p99", "",
            "From `wrk --latency`. httperf has no percentiles (and bins its "
            "median to whole milliseconds): its row gives the mean connection "
            "time, connect to close.", ""]
    out += ["| workload | " + " | ".join(l for _, l in present) + " |",
            "|---|" + "---:|" * len(present)]
    for wl, label, _ in wls:
        row = [label]
        for s, _ in present:
            if not res.ran(wl, s):
                row.append("-")
            elif wl == "newconn":
                row.append("mean %s" % _ms(res.med(wl, s, "conn_avg")))
            else:
                row.append("%s / %s" % (_ms(res.med(wl, s, "p50")), _ms(res.med(wl, s, "p99"))))
        out.append("| " + " | ".join(row) + " |")

    # 4. idle
    if any(r["workload"] == "idle" for r in runs):
        n = next((int(r["conns"]) for r in runs if r["workload"] == "idle"
                  and r.get("conns") and r["server"] == "amped"),
                 next((int(r["conns"]) for r in runs if r["workload"] == "idle"
                       and r.get("conns")), 0))
        out += ["", "### %s idle keep-alive connections" % format(n, ","), "",
                "Each connection sent one `GET /1k.bin` and read the response, "
                "then stayed open and idle (`idle_holder.py`, on CPU 1). RSS "
                "is VmRSS of the processes counted (amped: the front process, "
                "which holds the connections, not its helpers or cgi-runner; "
                "nginx and lighttpd: their one process), read before the "
                "connections open and 2 s after the last one is idle; the "
                "kernel's socket memory is in no process's RSS. Then wrk "
                "-t1 -c100 on `/1k.bin` runs beside them, against the same "
                "server's rate alone just before.", ""]
        if "idle_note" in meta:
            out += [meta["idle_note"] + ".", ""]
        out += ["| server | connections | RSS before (KiB) | RSS with them (KiB) | bytes per connection "
                "| whole tree, bytes per connection | wrk alone (req/s) | beside them (req/s) "
                "| beside/alone |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s, label in main3:
            if not res.ran("idle", s):
                continue
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, cell("idle", s, "conns", "%.0f"),
                cell("idle", s, "rss_before", "%.0f"),
                cell("idle", s, "rss_after", "%.0f"),
                cell("idle", s, "bytes_per_conn", "%.0f"),
                cell("idle", s, "tree_bytes_per_conn", "%.0f"),
                cell("idle", s, "alone_rate", "%.0f"),
                cell("idle", s, "rate", "%.0f"),
                cell("idle", s, "beside_alone", "%.2f")))
        ratios = []
        for other in ("nginx", "lighttpd"):
            v = res.ratio("idle", "amped", other, "bytes_per_conn")
            if v is not None:
                ratios.append("amped/%s %.2f" % (other, v))
        if ratios:
            out += ["", "Bytes per idle connection, " + ", ".join(ratios) + "."]

    # 5. bars
    out += ["", "### The bars of issue 11", "", "| bar | measured | holds |", "|---|---:|---|"]
    for text, value, ok in bars(res, meta):
        out.append("| %s | %s | %s |" % (text, value,
                                          "n/a" if ok is None else ("yes" if ok else "**no**")))

    floor = res.ratio("cgi", "responder", "lighttpd", "rate")
    if floor is not None and res.ran("cgi", "amped"):
        out += ["", "The CGI floor: the responder running `hello.cgi` once per "
                "request, with nothing else (`responder --cgi`), reached %.2fx "
                "lighttpd's req/s and amped %.2fx the floor's; 1.2x lighttpd "
                "is %.2fx the floor." % (floor,
                                         res.ratio("cgi", "amped", "responder", "rate") or float("nan"),
                                         1.2 / floor)]

    # 6. setup and commands
    out += ["", "### Setup", ""]
    for k, label in (("setup_amped", "amped"), ("setup_nginx", "nginx"),
                     ("setup_lighttpd", "lighttpd"), ("setup_responder", "responder"),
                     ("setup_docroot", "document root")):
        if k in meta:
            out.append("- %s: %s" % (label, meta[k]))
    out += ["", "Commands (PORT is the server's, picked free for each run):", ""]
    for wl, label, _ in wls:
        if "cmd_" + wl in meta:
            out.append("- %s: `%s`" % (label, meta["cmd_" + wl]))

    # 7. every run
    out += ["", "### All runs", "",
            "| round | workload | server | req/s | GB/s | requests | µs CPU/req | p50 | p99 | errors |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = {k: i for i, (k, _, _) in enumerate(WORKLOADS)}
    order["idle-alone"] = order["idle"] - 0.5
    for r in sorted(runs, key=lambda r: (order.get(r["workload"], 99), r["round"],
                                         [s for s, _ in SERVERS].index(r["server"])
                                         if r["server"] in LABEL else 9)):
        out.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            r["round"], r["workload"], r["server"],
            "failed" if r["rate"] is None else "%.0f" % r["rate"],
            "%.2f" % (r["bytes_per_s"] / 1e9) if r.get("bytes_per_s") and r["workload"] in BYTES_WORKLOADS else "-",
            "-" if r["requests"] is None else r["requests"],
            "-" if r["us_cpu"] is None else "%.2f" % r["us_cpu"],
            _ms(r["p50"]), _ms(r["p99"]), r["errors"]))
    problems = [r for r in runs if r["errors"]]
    if problems:
        out += ["", "Flagged runs:", ""]
        for r in problems:
            out.append("- round %d, %s, %s: %s" % (r["round"], r["workload"],
                                                 r["server"], r["note"]))
    print("\n".join(out))


# --- the chart ------------------------------------------------------------------------


def chart_rows(res):
    """(label, amped vs lighttpd, amped vs nginx), each > 1 when amped is
    better: throughput amped/other; CPU per request and memory other/amped."""
    rows = []
    for wl, _, short in WORKLOADS:
        if res.ran(wl, "amped"):
            rows.append((short + "\nreq/s",
                         res.ratio(wl, "amped", "lighttpd", "rate"),
                         res.ratio(wl, "amped", "nginx", "rate")))
    for wl, _, short in WORKLOADS:
        if res.ran(wl, "amped") and res.med(wl, "amped", "us_cpu") is not None:
            rows.append((short + "\nCPU/req",
                         res.ratio(wl, "amped", "lighttpd", "us_cpu", invert=True),
                         res.ratio(wl, "amped", "nginx", "us_cpu", invert=True)))
    if res.ran("idle", "amped"):
        rows.append(("idle\nbytes/conn",
                     res.ratio("idle", "amped", "lighttpd", "bytes_per_conn", invert=True),
                     res.ratio("idle", "amped", "nginx", "bytes_per_conn", invert=True)))
    return [r for r in rows if r[1] is not None or r[2] is not None]


def svg(results_path, meta_path, out_path):
    runs, meta = _load(results_path, meta_path)
    _derive(runs)
    rows = chart_rows(Results(runs))
    if not rows:
        sys.exit("svg: no ratio to draw (amped and lighttpd or nginx must both have run)")
    tmp = tempfile.mkdtemp(prefix="amped-chart.")
    data = os.path.join(tmp, "ratios.tsv")
    with open(data, "w", encoding="utf-8") as f:
        for label, a, b in rows:
            f.write("%s\t%s\t%s\n" % (label.replace("\n", " "), "-" if a is None else "%.3f" % a,
                                      "-" if b is None else "%.3f" % b))
    top = max(v for _, a, b in rows for v in (a, b) if v is not None)
    n = len(rows)
    # One far-off ratio (lighttpd's memory per idle connection, say) would
    # flatten every other bar: bars above CAP are cut at it and labelled
    # with their value.
    cap = 3.0 if top > 3.5 else max(1.3, top * 1.15)
    cut = " Bars above %.0f are cut at %.0f, labelled with their value." % (cap, cap) if top > 3.5 else ""

    def q(s):   # a gnuplot string literal (newlines as \n)
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    sub = "%s; %s CPUs; %s; median of %s round(s)" % (
        meta.get("cpu", "?"), meta.get("nproc", "?"), meta.get("date", "?"),
        meta.get("reps", "?"))
    script = "\n".join([
        "set terminal svg size %d,600 dynamic font 'sans,11' background rgb 'white'"
        % max(820, 72 * n + 160),
        "set output %s" % q(out_path),
        "set termoption noenhanced",
        "set datafile separator '\\t'",
        "set datafile missing '-'",
        "set title %s" % q("amped against lighttpd and nginx (1 worker): above 1.0, amped is better\n"
                           "req/s: amped / other.  CPU per request and bytes per idle "
                           "connection: other / amped." + cut + "\n" + sub),
        "set ylabel 'ratio (higher = better for amped)'",
        "set style data histograms",
        "set style histogram clustered gap 1",
        "set style fill solid 0.85 border -1",
        "set boxwidth 0.9",
        "set xtics scale 0 nomirror (%s)" % ", ".join(
            "%s %d" % (q(label), i) for i, (label, _, _) in enumerate(rows)),
        "set bmargin 4",
        "set grid ytics",
        "set key outside top center horizontal",
        "set xrange [-0.6:%f]" % (n - 0.4),
        "set yrange [0:%f]" % (cap * 1.08),
        "cap = %f" % cap,
        "clip(v) = v > cap ? cap : v",
        "set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dt 2 lw 2 lc rgb 'black' front",
        "plot %s using (clip($2)) title 'amped vs lighttpd' lc rgb '#1f77b4', \\" % q(data),
        "     '' using (clip($3)) title 'amped vs nginx (1 worker)' lc rgb '#ff7f0e', \\",
        "     '' using ($0-0.17):(clip($2)):(sprintf('%.2f',$2)) with labels offset 0,0.6 font ',8' notitle, \\",
        "     '' using ($0+0.17):(clip($3)):(sprintf('%.2f',$3)) with labels offset 0,0.6 font ',8' notitle, \\",
        "     NaN with lines dt 2 lw 2 lc rgb 'black' title '1.0 = level'",
        ""])
    gp = os.path.join(tmp, "chart.gp")
    with open(gp, "w", encoding="utf-8") as f:
        f.write(script)
    try:
        subprocess.run(["gnuplot", gp], check=True)
    finally:
        for p in (data, gp):
            os.unlink(p)
        os.rmdir(tmp)


def main(argv):
    if len(argv) >= 2 and argv[1] == "freeport":
        freeport()
    elif len(argv) == 5 and argv[1] == "parse":
        parse(argv[2], argv[3], argv[4])
    elif len(argv) == 3 and argv[1] == "cputicks":
        cputicks(argv[2])
    elif len(argv) == 3 and argv[1] == "rss":
        rss(argv[2])
    elif len(argv) == 5 and argv[1] == "files":
        files(argv[2], argv[3], argv[4])
    elif len(argv) == 4 and argv[1] == "rotation":
        rotation(argv[2], argv[3])
    elif len(argv) >= 10 and argv[1] == "record":
        extras = dict(a.split("=", 1) for a in argv[10:])
        record(*argv[2:10], extras)
    elif len(argv) == 4 and argv[1] == "report":
        report(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "svg":
        svg(argv[2], argv[3], argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
