#!/usr/bin/env python3
# The measuring half of tests/bench/h2/run.sh: starts the servers, runs the
# workloads in alternating rounds, checks what was negotiated, and writes
# the Markdown report. Python 3, standard library only; the process, CPU,
# server configuration, client-running and report helpers are the HTTPS
# benchmark's (../tls/tlsbench.py).
"""h2bench.py: HTTP/2 (h2 over TLS) benchmark of amped against nginx,
lighttpd and h2o.

Called by run.sh (which installs the tools and builds amped) as

  h2bench.py --work DIR --bin DIR [--reps N] [--quick] [--secs N]
             [--only LIST] [--workloads LIST] [--out FILE]

Everything runs on 127.0.0.1. Servers are pinned to CPU 0, clients to
CPU 1 (taskset). Each run gets a fresh server. Server CPU is the sum of
/proc/PID/task/TID/schedstat run times (ns) over the server process and
its live descendants, plus the CPU of descendants that exited and were
reaped during the run (the cutime + cstime of their parents in the tree:
the CGI scripts), after minus before; client CPU is the client process's
own rusage (user+system, from wait4). A run's limit is "client" when the
client used >= 90% of CPU 1 over the run, "server" when the server used
>= 90% of CPU 0, otherwise "neither" (or one of the "+other" labels of
tlsbench.limit_of, when other processes' work filled a CPU).
"""

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "tls"))
import tlsbench as tb  # noqa: E402  (the process, CPU, configuration, client and report helpers)

SERVERS = ["amped", "nginx", "lighttpd", "h2o"]
PEERS = ["nginx", "lighttpd", "h2o"]
WORKLOADS = ["small", "1m", "cgi", "h1ka"]
SUITE = tb.SUITE
GROUP = tb.GROUP
NGINX, LIGHTTPD, H2O = tb.NGINX, tb.LIGHTTPD, tb.H2O
FCGIWRAP = "/usr/sbin/fcgiwrap"
FASTCGI_CGI = "/usr/share/h2o/fastcgi-cgi"
CONN_LIMIT = 4096
NFILES = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
CGROUP_SLACK = 0.05          # tree and cgroup CPU further apart than this: the cgroup's counts

# The load of each workload: h2load's clients (-c) and streams per client (-m).
SMALL_C, SMALL_M = 10, 100
BIG_C, BIG_M = 10, 10
CGI_C, CGI_M = 2, 5          # 10 scripts at once, as wrk -c10 in tests/bench/run.sh
H1_CONNS = 100               # wrk -t1 -c100, as the HTTPS benchmark's ka1k


def log(msg):
    print("[h2-bench] " + msg, file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------


def start_time(pid):
    """Start time in clock ticks (/proc/PID/stat field 22), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def cpu_ns(root):
    """CPU in ns of root's process tree: every live thread's schedstat run
    time, plus each live process's cutime + cstime (the CPU of its children
    that exited and were reaped: the CGI scripts, which no schedstat
    shows once they are gone)."""
    total = 0
    tick = 1e9 / CLK_TCK
    for pid in tb.tree(root):
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            with open("/proc/%d/stat" % pid) as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            total += (int(fields[13]) + int(fields[14])) * tick
        except (OSError, ValueError, IndexError):
            pass
    return total


class CpuGroup:
    """A cgroup of our own holding one server's whole process tree, whose
    CPU counter also counts processes that exited unreaped (fcgiwrap
    ignores SIGCHLD, so its scripts' CPU shows in no parent's cutime):
    the cross-check of cpu_ns. cgroup v1 cpuacct (cpuacct.usage, ns) or
    cgroup v2 (cpu.stat usage_usec); None where neither can be made."""

    ROOTS = [("/sys/fs/cgroup/cpuacct", "v1"), ("/sys/fs/cgroup/unified", "v2"),
             ("/sys/fs/cgroup", "v2")]
    _seq = 0

    @classmethod
    def make(cls):
        for root, kind in cls.ROOTS:
            probe = os.path.join(root, "cpuacct.usage" if kind == "v1" else "cpu.stat")
            if not os.path.exists(probe):
                continue
            cls._seq += 1
            path = os.path.join(root, "amped-h2bench.%d.%d" % (os.getpid(), cls._seq))
            try:
                os.mkdir(path)
            except OSError:
                continue
            g = cls()
            g.path, g.kind = path, kind
            if g.usage_ns() is None:
                g.remove()
                continue
            return g
        return None

    def join(self):
        """In the child before exec (preexec_fn): move it into the group."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    def procs(self):
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            return []

    def usage_ns(self):
        try:
            if self.kind == "v1":
                with open(os.path.join(self.path, "cpuacct.usage")) as f:
                    return int(f.read())
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) * 1000
        except (OSError, ValueError):
            pass
        return None

    def remove(self):
        # Only once empty: after the server's tree is gone.
        for _ in range(40):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.05)


# --- servers -----------------------------------------------------------------


class Server(tb.Server):
    """One running server, started by us, pinned to CPU 0: tlsbench's, in a
    session and a cgroup of its own, its descendants noted so that stop()
    finds them after they were handed to init."""

    def __init__(self, name, env, tag="check"):
        super().__init__(name, env)
        self.tag = tag
        self.cgroup = None
        self.kids = {}
        self.note = ""

    def start(self):
        e = self.env
        d = os.path.join(e.work, self.name)
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.stdout = os.path.join(d, self.tag + ".stdout")
        self.stderr = os.path.join(d, self.tag + ".stderr")
        out = open(self.stdout, "w")
        err = open(self.stderr, "w")
        cmd = getattr(self, "_cmd_" + self.name)(d)
        self.cmd = cmd
        self.cgroup = CpuGroup.make() if e.use_cgroup else None
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=d, start_new_session=True,
                                     preexec_fn=self.cgroup.join if self.cgroup else None)
        out.close()
        err.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.name == "amped" and self.port is None:
                with open(self.stdout) as f:
                    m = re.search(r"listening on https://127\.0\.0\.1:(\d+)/", f.read())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None and self._answers() and self._helpers_ready():
                self.note_kids()
                return True
            time.sleep(0.05)
        log("%s did not come up; stderr: %s" % (self.name, tb.tail(self.stderr)))
        p = os.path.join(d, "error.log")
        if os.path.exists(p):
            log("%s error.log: %s" % (self.name, tb.tail(p)))
        self.stop()
        return False

    def _helpers_ready(self):
        # nginx's CGI goes through fcgiwrap's socket: wait for it too.
        if self.name == "nginx" and self.env.nginx_cgi:
            return os.path.exists(os.path.join(self.dir, "fcgiwrap.sock"))
        return True

    def note_kids(self):
        """Remembers the server's descendants (its tree, and whatever is in
        its cgroup) with their start times, so that stop() finds them even
        after the server is gone and they were handed to init."""
        if self.proc is None:
            return
        pids = set(tb.tree(self.proc.pid))
        if self.cgroup:
            pids |= set(self.cgroup.procs())
        pids.discard(self.proc.pid)
        for p in pids:
            st = start_time(p)
            if st is not None:
                self.kids.setdefault(p, st)

    def stop(self):
        """SIGTERM to the server, then to whatever of its descendants is
        left (by PID, checked against its start time), SIGKILL after a
        while. Safe to call again, from a signal handler in the middle of
        a first call too: the descendants stay noted until they are gone."""
        if self.proc is None:
            return
        self.note_kids()
        kids = list(self.kids.items())
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

        def ours(p, st):
            return st is not None and start_time(p) == st

        deadline = time.monotonic() + 2
        for p, st in kids:
            while ours(p, st) and time.monotonic() < deadline:
                time.sleep(0.05)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = [(p, st) for p, st in kids if ours(p, st)]
            for p, st in left:
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 2
            for p, st in left:
                while ours(p, st) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.kids = {}
        self.proc = None
        if self.cgroup:
            self.cgroup.remove()
            self.cgroup = None

    # The command lines, each writing its configuration first.

    def _cmd_amped(self, d):
        self.port = None
        return tb.amped_cmd(self.env, CONN_LIMIT)

    def _cmd_nginx(self, d):
        e = self.env
        self.port = freeport_unused()
        sock = os.path.join(d, "fcgiwrap.sock")
        cgi = ""
        if e.nginx_cgi:
            cgi = """
        location ~ \\.cgi$ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{sock};
        }}""".format(sock=sock)
        nginx = tb.nginx_cmd(e, d, self.port, CONN_LIMIT, "tests/bench/h2/h2bench.py", http2=True,
                             more=cgi)
        if not e.nginx_cgi:
            return nginx
        # fcgiwrap as a child of the nginx process (sh starts it, then
        # becomes nginx), so that its CPU and its scripts' is in the tree.
        if os.path.exists(sock):
            os.unlink(sock)
        return ["sh", "-c", '"$1" -c "$2" -s "unix:$3" </dev/null & shift 3; exec "$@"', "sh",
                FCGIWRAP, str(e.cgi_conc), sock] + nginx

    def _cmd_lighttpd(self, d):
        self.port = freeport_unused()
        return tb.lighttpd_cmd(self.env, d, self.port, CONN_LIMIT, "tests/bench/h2/h2bench.py",
                               h2=True, cgi=True)

    def _cmd_h2o(self, d):
        self.port = freeport_unused()
        return tb.h2o_cmd(self.env, d, self.port, CONN_LIMIT, "tests/bench/h2/h2bench.py",
                          fastcgi_cgi=FASTCGI_CGI)


_USED_PORTS = set()


def freeport_unused():
    """A free port not handed out before in this run (a server that has
    just stopped may leave its port in TIME_WAIT)."""
    for _ in range(50):
        p = tb.freeport()
        if p not in _USED_PORTS:
            _USED_PORTS.add(p)
            return p
    return tb.freeport()


# --- checks ------------------------------------------------------------------


def curl_h2(env, port, path, want=None, prefix=None):
    """GET path with curl over h2 (ALPN); None when it is a 200 over HTTP/2
    with the right body, else what was wrong."""
    body = os.path.join(env.work, "verify.body")
    try:
        p = subprocess.run(["curl", "-sSk", "--http2", "--max-time", "10", "-o", body, "-w",
                            "%{http_code} %{http_version}",
                            "https://127.0.0.1:%d%s" % (port, path)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20,
                           env=env.client_env)
    except subprocess.TimeoutExpired:
        return "curl timed out"
    got = p.stdout.decode(errors="replace").strip()
    if got != "200 2":
        return "GET %s: curl says '%s' (want '200 2': status 200 over HTTP/2)" % (path, got)
    with open(body, "rb") as f:
        data = f.read()
    if want is not None and data != want:
        return "GET %s: body of %d bytes differs from the file's %d" % (path, len(data), len(want))
    if prefix is not None and not data.startswith(prefix):
        return "GET %s: body %r, want %r..." % (path, data[:60], prefix)
    return None


def h2_settings(env, port):
    """ALPN and the server's first SETTINGS, as nghttp -nv sees them."""
    try:
        p = subprocess.run(["nghttp", "-nv", "-t", "10", "https://127.0.0.1:%d/1k.bin" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20,
                           env=env.client_env)
    except subprocess.TimeoutExpired:
        return {"alpn": "nghttp timed out"}
    out = p.stdout.decode(errors="replace")
    res = {}
    m = re.search(r"The negotiated protocol: (\S+)", out)
    res["alpn"] = m.group(1) if m else "none (no ALPN h2)"
    m = re.search(r"recv SETTINGS frame <[^>]*flags=0x00[^>]*>\n\s*\(niv=\d+\)\n((?:\s*\[SETTINGS_[^\n]*\n)*)", out)
    if m:
        res["settings"] = ", ".join(
            "%s %s" % (k.lower(), v) for k, v in re.findall(r"\[SETTINGS_(\w+)\(0x[0-9a-f]+\):(\d+)\]", m.group(1)))
    else:
        res["settings"] = "?"
    m = re.search(r"recv WINDOW_UPDATE frame <[^>]*stream_id=0>\n\s*\(window_size_increment=(\d+)\)", out)
    res["conn_window_update"] = m.group(1) if m else "none"
    return res


# --- running the tools -------------------------------------------------------


Env = tb.Env


def run_client(env, srv, cmd, timeout, out_path):
    """Runs cmd on CPU 1 (OPENSSL_CONF=client.cnf); returns (output, measurements)."""
    busy0 = tb.cpu_busy()
    g0 = srv.cgroup.usage_ns() if srv.cgroup else None
    s0 = cpu_ns(srv.pid)
    t0 = time.monotonic()
    status, ru, killed = tb.wait_client(env, cmd, t0 + timeout, out_path)
    wall = time.monotonic() - t0
    srv.note_kids()
    s1 = cpu_ns(srv.pid) if srv.alive() else float("nan")
    g1 = srv.cgroup.usage_ns() if srv.cgroup else None
    busy1 = tb.cpu_busy()
    client = (ru.ru_utime + ru.ru_stime) * 1e9
    server = tree = s1 - s0
    group = g1 - g0 if g0 is not None and g1 is not None else None
    source = "tree"
    if group is not None and group > 0 and abs(tree - group) > CGROUP_SLACK * group:
        # The tree missed (or double-counted) CPU: the cgroup saw every
        # process of the server, reaped or not.
        server, source = group, "cgroup"
    m = tb.cpu_shares(wall, server, client, busy0, busy1)
    m.update(killed=killed, exit=status, tree_ns=tree, cgroup_ns=group, cpu_source=source)
    with open(out_path, errors="replace") as f:
        return f.read(), m


def parse_h2load(text):
    """h2load's summary: counts, rate, what TLS and ALPN gave; errors when a
    request failed, errored, timed out or got no 2xx, or the protocol was
    not h2."""
    d = {"errors": 0, "notes": []}
    m = re.search(r"Application protocol: (\S+)", text)
    d["alpn"] = m.group(1) if m else None
    if d["alpn"] != "h2":
        d["errors"] += 1
        d["notes"].append("application protocol %s, not h2" % (d["alpn"] or "none"))
    tls = [re.search(p, text) for p in (r"TLS Protocol: (\S+)", r"Cipher: (\S+)",
                                        r"Server Temp Key: (\S+)")]
    d["negotiated"] = " ".join(x.group(1) if x else "?" for x in tls)
    m = re.search(r"finished in ([0-9.]+)(s|ms|us), ([0-9.]+) req/s", text)
    r = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not (m and r and s):
        d["errors"] += 1
        d["notes"].append("no h2load summary: " + " | ".join(text.strip().splitlines()[-3:]))
        return d
    d["secs"] = float(m.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[m.group(2)]
    total, started, done, ok, failed, errored, tout = (int(x) for x in r.groups())
    c2, c3, c4, c5 = (int(x) for x in s.groups())
    d.update(total=total, started=started, done=done, succeeded=ok, failed=failed,
             errored=errored, timeout=tout, s2xx=c2)
    d["requests"] = ok
    bad = failed + errored + tout
    if bad:
        d["errors"] += bad
        d["notes"].append("h2load: %d failed, %d errored, %d timeout" % (failed, errored, tout))
    if c3 + c4 + c5:
        d["errors"] += c3 + c4 + c5
        d["notes"].append("status codes: %d 3xx, %d 4xx, %d 5xx" % (c3, c4, c5))
    # A status is counted when its HEADERS arrive, so a -D run that stops
    # with responses half-sent has more 2xx than succeeded.
    if ok != done or c2 < ok:
        d["errors"] += 1
        d["notes"].append("%d done, %d succeeded, %d 2xx" % (done, ok, c2))
    if ok == 0:
        d["errors"] += 1
        d["notes"].append("no request succeeded")
    if d["secs"] > 0:
        d["rate"] = ok / d["secs"]
    return d


def h2load_cmd(env, srv, wl):
    tls = ["--tls13-ciphers=" + SUITE, "--groups=" + GROUP]
    dur = ["-D", str(env.secs)]
    base = "https://127.0.0.1:%d" % srv.port
    if wl == "small":
        uris = os.path.join(env.work, "uris.%d.txt" % srv.port)
        with open(uris, "w") as f:
            for i in range(NFILES):
                f.write("%s/s/f%02d.bin\n" % (base, i))
        return ["h2load", "-t1", "-c%d" % SMALL_C, "-m%d" % SMALL_M] + dur + tls + ["-i", uris]
    if wl == "1m":
        return ["h2load", "-t1", "-c%d" % BIG_C, "-m%d" % BIG_M] + dur + tls + [base + "/1m.bin"]
    if wl == "cgi":
        return ["h2load", "-t1", "-c%d" % CGI_C, "-m%d" % CGI_M] + dur + tls + [base + "/cgi-bin/hello.cgi"]
    raise ValueError(wl)


def measure(env, srv, wl, rnd):
    """One run of wl on srv (started, verified); a result dict."""
    tag = os.path.join(env.logs, "%d.%s.%s" % (rnd, wl, srv.name))
    r = {"round": rnd, "workload": wl, "server": srv.name, "errors": 0, "notes": []}
    if wl == "h1ka":
        cmd = ["wrk", "-t1", "-c%d" % H1_CONNS, "-d%ds" % env.secs, "--latency",
               "https://127.0.0.1:%d/1k.bin" % srv.port]
        text, m = run_client(env, srv, cmd, env.secs + 60, tag + ".txt")
        d = tb.parse_wrk(text)
        d["negotiated"] = "HTTP/1.1 (wrk)"
    else:
        cmd = h2load_cmd(env, srv, wl)
        text, m = run_client(env, srv, cmd, env.secs + 60, tag + ".txt")
        d = parse_h2load(text)
        if m["killed"]:
            d["errors"] += 1
            d["notes"].append("h2load killed after %d s" % (env.secs + 60))
        elif m["exit"] != 0:
            d["notes"].append("h2load exit status %d" % (m["exit"] >> 8))
    r["errors"] += d["errors"]
    r["notes"] += d["notes"]
    for k in ("negotiated", "alpn", "total", "started", "done", "succeeded", "failed", "errored",
              "timeout"):
        if k in d:
            r[k] = d[k]
    if "rate" in d and d["requests"]:
        n = d["requests"]
        r["count"] = n
        if wl == "1m":
            mb = n * 1048576 / 1e6                   # body bytes, in MB (10^6)
            r["value"] = mb / d["secs"]               # MB/s
            r["cpu_per"] = m["server_ns"] / mb / 1e3  # µs per MB
            r["client_cpu_per"] = m["client_ns"] / mb / 1e3
        else:
            r["value"] = d["rate"]                    # req/s
            r["cpu_per"] = m["server_ns"] / n / 1e3   # µs per request
            r["client_cpu_per"] = m["client_ns"] / n / 1e3
    r.update(m)
    if m["cpu_source"] == "cgroup":
        r["notes"].append("server CPU from its cgroup: the process tree showed %.0f%% of it"
                          % (100.0 * m["tree_ns"] / m["cgroup_ns"]))
    r["limit"] = tb.limit_of(dict(m, cpu_per=r.get("cpu_per"), client_cpu_per=r.get("client_cpu_per")))
    if not srv.alive():
        r["errors"] += 1
        r["notes"].append("server died during the run")
    errlog = os.path.join(srv.dir, "error.log")
    r["stderr_tail"] = tb.tail(srv.stderr, 3)
    if os.path.exists(errlog):
        r["errorlog_tail"] = tb.tail(errlog, 3)
    return r


# --- report ------------------------------------------------------------------


WL_INFO = {
    # title, CPU title, value digits, CPU digits
    "small": ("%d files of 1 KiB, req/s (`h2load -c%d -m%d`)" % (NFILES, SMALL_C, SMALL_M),
              "server CPU µs per request", 0, 2),
    "1m": ("1 MiB file, MB/s (`h2load -c%d -m%d`)" % (BIG_C, BIG_M), "server CPU µs per MB", 0, 0),
    "cgi": ("`hello.cgi`, req/s (`h2load -c%d -m%d`)" % (CGI_C, CGI_M), "server CPU µs per request", 0, 0),
    "h1ka": ("HTTP/1.1 keep-alive 1 KiB, req/s (`wrk -t1 -c%d`, amped only)" % H1_CONNS,
             "server CPU µs per request", 0, 2),
}

fmt, summarize = tb.fmt, tb.summarize


CLIENT_LIMITS = {"client": "", "client+other": ", with other processes' work",
                 "client-cost": ", which needs more CPU per unit than amped",
                 "both+other": "; both CPUs were full with other processes' work"}


def bars(summ, servers, wls):
    """Per workload: (ratio text, what decides, verdict)."""
    out = {}
    for wl in wls:
        if wl == "h1ka":
            continue
        a = summ.get((wl, "amped"))
        peers = [p for p in PEERS if p in servers and summ[(wl, p)]["value"] is not None]
        if not a or a["value"] is None:
            out[wl] = ("-", "-", "not measured (amped has no good run)" if a and a["runs"] else "not measured")
            continue
        if not peers:
            out[wl] = ("-", "-", "no peer figure")
            continue
        best = max(peers, key=lambda p: summ[(wl, p)]["value"])
        rate_ratio = a["value"] / summ[(wl, best)]["value"]
        cpu_best = min(peers, key=lambda p: summ[(wl, p)]["cpu_per"] or float("inf"))
        cpu_ratio = a["cpu_per"] / summ[(wl, cpu_best)]["cpu_per"]
        text = "%.2fx %s's rate; CPU per unit %.2fx %s's" % (rate_ratio, best, cpu_ratio, cpu_best)
        if a["limit"] in ("server", "server+other", "neither"):
            decide = "rate (at least 1.0x the best peer's): amped's runs were limited by %s" % (
                "amped's CPU" if a["limit"] != "neither" else "neither CPU")
            ok = rate_ratio >= 1.0
        else:
            decide = ("server CPU per unit (at most the best peer's): amped's runs were limited by "
                      "CPU 1 (h2load%s), not by amped" % CLIENT_LIMITS[a["limit"]])
            ok = cpu_ratio <= 1.0
        out[wl] = (text, decide, "holds" if ok else "FAILS")
    return out


def h1_bar(summ, servers, wls):
    """amped's h2 small-file CPU per request against its own HTTP/1.1
    keep-alive CPU per request."""
    if "amped" not in servers or "small" not in wls or "h1ka" not in wls:
        return None
    h2 = summ[("small", "amped")]["cpu_per"]
    h1 = summ[("h1ka", "amped")]["cpu_per"]
    if h2 is None or h1 is None:
        return ("-", "not measured")
    return ("%.2f µs (h2, %d files, -m%d) vs %.2f µs (HTTP/1.1 keep-alive, wrk -c%d): %.2fx"
            % (h2, NFILES, SMALL_M, h1, H1_CONNS, h2 / h1), "holds" if h2 <= h1 else "FAILS")


def server_log_lines(env, name):
    d = os.path.join(env.work, name)
    lines = []
    if not os.path.isdir(d):
        return lines
    for f in sorted(os.listdir(d)):
        if f.endswith(".stderr") or f == "error.log":
            with open(os.path.join(d, f), errors="replace") as fh:
                lines += [x.rstrip() for x in fh if x.strip()]
    return lines


def report(env, results, checks, meta):
    servers, wls = env.servers, env.workloads
    summ = summarize(results, servers, wls)
    b = bars(summ, servers, wls)
    h1b = h1_bar(summ, servers, wls)
    L = []
    L.append("# amped HTTP/2 benchmark (tests/bench/h2/run.sh)")
    L.append("")
    L.append("%s; %s; %d round%s (medians), %s s a run; load average before %s, after %s."
             % (meta["date"], meta["machine"], env.reps, "" if env.reps == 1 else "s", env.secs,
                meta["load_before"], meta["load_after"]))
    L.append("")
    L.append("h2 over TLS (ALPN) on one self-signed ECDSA P-256 certificate, TLS 1.3, %s, %s; "
             "every server fresh for each run on CPU 0, the client on CPU 1." % (SUITE, GROUP))
    L.append("")
    L.append("## Results (medians of %d alternating round%s)" % (env.reps, "" if env.reps == 1 else "s"))
    L.append("")
    L.append("| workload | " + " | ".join(servers) + " | amped vs best peer | limit hit (majority of rounds) | decided by | bar |")
    L.append("|---|" + "---:|" * len(servers) + "---|---|---|---|")

    def cell(wl, s, key, dig):
        v = summ[(wl, s)]
        if v["na"]:
            return "n/a"
        if wl == "h1ka" and s != "amped":
            return ""
        if v["value"] is None:
            return "FAILED" if v["runs"] else "-"
        return fmt(v[key], dig)

    for wl in wls:
        title, cpu_title, dig, cdig = WL_INFO[wl]
        cells = [cell(wl, s, "value", dig) for s in servers]
        lim = ", ".join("%s %s" % (s, summ[(wl, s)]["limit"]) for s in servers
                        if summ[(wl, s)]["n"])
        if wl == "h1ka":
            bb = ("baseline for the small-file CPU bar", "-", "-")
        else:
            bb = b[wl]
        L.append("| %s | %s | %s | %s | %s | **%s** |" % (title, " | ".join(cells), bb[0], lim or "-",
                                                         bb[1], bb[2]))
        L.append("| %s | %s | | | | |" % (cpu_title, " | ".join(cell(wl, s, "cpu_per", cdig) for s in servers)))
        L.append("| client CPU, same unit | %s | | | | |" % " | ".join(
            cell(wl, s, "client_cpu_per", cdig) for s in servers))
        cells = []
        for s in servers:
            v = summ[(wl, s)]
            if v["value"] is None or v["na"]:
                cells.append(cell(wl, s, "value", 0))
            else:
                cells.append("%s / %s" % (fmt(100 * (v["server_util"] or 0)), fmt(100 * (v["client_util"] or 0))))
        L.append("| server %% of CPU 0 / client %% of CPU 1 | %s | | | | |" % " | ".join(cells))
    L.append("")
    L.append("## The bars")
    L.append("")
    L.append("| bar | measured | decided by | holds |")
    L.append("|---|---|---|---|")
    for wl in wls:
        if wl in b:
            L.append("| %s: amped at least the best of %s | %s | %s | **%s** |" % (
                WL_INFO[wl][0], ", ".join(p for p in PEERS if p in servers) or "(no peer run)",
                b[wl][0], b[wl][1], b[wl][2]))
    if h1b:
        L.append("| small files: amped's h2 server CPU per request at most its own HTTP/1.1 keep-alive "
                 "CPU per request | %s | server CPU per request | **%s** |" % h1b)
    L.append("")
    fails = [r for r in results if r["errors"] and not r.get("na")]
    if fails:
        L.append("**Failed runs** (left out of the medians):")
        L.append("")
        for r in fails:
            L.append("- round %d, %s, %s: %s" % (r["round"], r["workload"], r["server"], "; ".join(r["notes"])))
        L.append("")
    nas = sorted({(r["workload"], r["server"], r["na"]) for r in results if r.get("na")})
    if nas:
        L.append("Not measured: " + "; ".join("%s on %s: %s" % x for x in nas) + ".")
        L.append("")
    L.append("## Negotiated")
    L.append("")
    L.append("ALPN and the server's SETTINGS as `nghttp -nv` saw them, before the rounds; TLS as h2load "
             "printed it in the runs (h2load offers only %s and %s)." % (SUITE, GROUP))
    L.append("")
    L.append("| server | ALPN | server SETTINGS | connection WINDOW_UPDATE | TLS in the h2load runs | ALPN in the h2load runs |")
    L.append("|---|---|---|---|---|---|")
    for s in servers:
        c = checks.get(s, {})
        neg = sorted({r["negotiated"] for r in results if r["server"] == s and r.get("negotiated")
                      and r["workload"] != "h1ka"})
        alpn = sorted({r.get("alpn") or "none" for r in results if r["server"] == s
                       and r["workload"] != "h1ka" and "alpn" in r})
        L.append("| %s | %s | %s | %s | %s | %s |" % (s, c.get("alpn", "-"), c.get("settings", "-"),
                                                     c.get("conn_window_update", "-"),
                                                     ", ".join(neg) or "-", ", ".join(alpn) or "-"))
    L.append("")
    streams = {s: re.search(r"max_concurrent_streams (\d+)", checks.get(s, {}).get("settings", ""))
               for s in servers}
    capped = ["%s (%s)" % (s, m.group(1)) for s, m in streams.items() if m and int(m.group(1)) < SMALL_M]
    if capped:
        L.append("Streams: h2load keeps at most the server's SETTINGS_MAX_CONCURRENT_STREAMS open per "
                 "connection, so the small-file workload's -m%d is capped for %s." % (SMALL_M, ", ".join(capped)))
        L.append("")
    L.append("## What the servers logged")
    L.append("")
    L.append("Every line the servers wrote to stderr or their error log over all the runs "
             "(amped: stderr; nginx, lighttpd, h2o: error.log and stderr), by server; the "
             "start-up lines that every start prints are counted too.")
    L.append("")
    L.append("| server | lines | distinct lines (up to 5, with counts) |")
    L.append("|---|---:|---|")
    for s in servers:
        lines = server_log_lines(env, s)
        counts = {}
        for x in lines:
            key = re.sub(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d|\d+", "N", x)[:160]
            counts[key] = counts.get(key, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
        L.append("| %s | %d | %s |" % (s, len(lines), "<br>".join(
            "%d × `%s`" % (n, k.replace("|", "\\|").replace("`", "'")) for k, n in top) or "-"))
    L.append("")
    L.append("## Every run")
    L.append("")
    L.append("| round | workload | server | value | server CPU per unit | client CPU per unit | server % CPU 0 | client % CPU 1 | other work % CPU 0 / CPU 1 | requests (h2load: succeeded of done) | limit | notes |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        _, _, dig, cdig = WL_INFO[r["workload"]]
        if r.get("na"):
            continue
        req = ""
        if "succeeded" in r:
            req = "%s of %s" % (fmt(r["succeeded"]), fmt(r["done"]))
        elif r.get("count"):
            req = fmt(r["count"])
        L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s |" % (
            r["round"], r["workload"], r["server"], fmt(r.get("value"), dig), fmt(r.get("cpu_per"), cdig),
            fmt(r.get("client_cpu_per"), cdig), fmt(100 * r.get("server_util", 0)),
            fmt(100 * r.get("client_util", 0)), fmt(100 * r.get("other0", 0)),
            fmt(100 * r.get("other1", 0)), req, r.get("limit", "-"), "; ".join(r["notes"]) or ""))
    L.append("")
    L.append("Units: small, cgi and h1ka CPU in µs per request; 1m in µs per MB (MB = 10^6 bytes of "
             "body). " + tb.limit_legend())
    L.append("")
    L.append("Server CPU: schedstat run time of every live thread of the server's process tree plus "
             "the cutime + cstime of each of its processes (children that exited and were reaped "
             "during the run: the CGI scripts, and h2o's per-connection fastcgi-cgi processes), after "
             "minus before. %s A request counts when h2load saw it succeed (2xx, stream complete); "
             "h2load's -D runs stop with streams in flight (started - done), which are not counted "
             "and not errors." % meta["cgroup_note"])
    L.append("")
    L += tb.setup_lines(meta, ("machine", "kernel", "versions", "cert", "docroot", "client_conf"),
                        servers, wls)
    return "\n".join(L) + "\n"


# --- main ----------------------------------------------------------------------


first_line = tb.first_line


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--secs", type=int)
    ap.add_argument("--only", default=",".join(SERVERS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--out")
    ap.add_argument("--no-cgroup", action="store_true")
    ap.add_argument("--built", default="?")
    ap.add_argument("--command", default="tests/bench/h2/run.sh")
    a = ap.parse_args(argv)

    env = Env()
    env.work = a.work
    env.bin = a.bin
    env.reps = a.reps or (1 if a.quick else 5)
    env.secs = a.secs or (2 if a.quick else 4)
    env.servers = tb.names(a.only, SERVERS, "h2bench: unknown server %r")
    env.workloads = tb.names(a.workloads, WORKLOADS, "h2bench: unknown workload %r")
    env.cgi_conc = CGI_C * CGI_M
    if env.reps < 1 or env.secs < 1:
        sys.exit("h2bench: --reps and --secs must be at least 1")
    env.nginx_cgi = os.access(FCGIWRAP, os.X_OK)
    env.h2o_cgi = os.access(FASTCGI_CGI, os.X_OK) or os.path.exists(FASTCGI_CGI)
    env.use_cgroup = not a.no_cgroup
    if env.use_cgroup:
        g = CpuGroup.make()
        if g is None:
            env.use_cgroup = False
            log("no cgroup can be made here: server CPU from the process tree alone "
                "(nginx's CGI through fcgiwrap is then undercounted)")
        else:
            env.cgroup_kind = "%s (%s)" % (g.kind, os.path.dirname(g.path))
            g.remove()
    env.nofile = tb.raise_nofile()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": tb.loadavg()}
    started = time.monotonic()

    # Certificate, document root, client configuration.
    env.cert, env.key = tb.make_cert(a.work)
    os.chmod(env.key, 0o600)   # every server reads it as root
    env.docroot = os.path.join(a.work, "www")
    os.makedirs(os.path.join(env.docroot, "s"), exist_ok=True)
    os.makedirs(os.path.join(env.docroot, "cgi-bin"), exist_ok=True)
    want = {}
    for i in range(NFILES):
        data = os.urandom(1024)
        with open(os.path.join(env.docroot, "s", "f%02d.bin" % i), "wb") as f:
            f.write(data)
        want["/s/f%02d.bin" % i] = data
    for name, size in (("1k.bin", 1024), ("1m.bin", 1048576)):
        data = os.urandom(size)
        with open(os.path.join(env.docroot, name), "wb") as f:
            f.write(data)
        want["/" + name] = data
    with open(os.path.join(env.docroot, "index.html"), "w") as f:
        f.write("<!DOCTYPE html><title>amped</title><p>HTTP/2 benchmark index page.</p>\n")
    cgi = os.path.join(env.docroot, "cgi-bin", "hello.cgi")
    with open(os.path.join(HERE, "hello.cgi"), "rb") as src, open(cgi, "wb") as dst:
        dst.write(src.read())
    os.chmod(cgi, 0o755)
    tb.open_dirs(a.work)
    client_conf = tb.write_client_conf(
        a.work, "# The benchmark's clients (wrk, curl, nghttp; h2load is also given\n"
                "# --tls13-ciphers and --groups): TLS 1.3 only, one suite, one group.\n")
    env.client_env = dict(os.environ, OPENSSL_CONF=client_conf)
    env.logs = os.path.join(a.work, "logs")
    os.makedirs(env.logs, exist_ok=True)
    cgi_greeting = b"Hello from a CGI script"

    def na_reason(wl, name):
        if wl == "h1ka" and name != "amped":
            return "skip"
        if wl == "cgi" and name == "nginx" and not env.nginx_cgi:
            return "nginx has no CGI and fcgiwrap is not installed"
        if wl == "cgi" and name == "h2o" and not env.h2o_cgi:
            return "no %s" % FASTCGI_CGI
        return None

    results, checks, failed = [], {}, False
    srv_cmds = {}
    live = []

    def stop_all(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # once is enough
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for s in live:
            s.stop()
        sys.exit(130)
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)

    def verify(srv, wl):
        paths = ["/1k.bin"]
        if wl == "small":
            paths += ["/s/f00.bin", "/s/f%02d.bin" % (NFILES - 1)]
        elif wl == "1m":
            paths += ["/1m.bin"]
        for p in paths:
            err = curl_h2(env, srv.port, p, want=want[p])
            if err:
                return err
        if wl == "cgi":
            return curl_h2(env, srv.port, "/cgi-bin/hello.cgi", prefix=cgi_greeting)
        return None

    try:
        # What each server negotiates, once, before the rounds.
        for name in env.servers:
            srv = Server(name, env)
            live.append(srv)
            if not srv.start():
                checks[name] = {"alpn": "did not start"}
                failed = True
                live.remove(srv)
                continue
            srv_cmds[name] = shlex.join(srv.cmd).replace(a.work, "WORK")
            checks[name] = h2_settings(env, srv.port)
            log("%s: ALPN %s, SETTINGS %s" % (name, checks[name]["alpn"], checks[name]["settings"]))
            srv.stop()
            live.remove(srv)

        for rnd in range(1, env.reps + 1):
            for wl in env.workloads:
                n = len(env.servers)
                for i in range(n):
                    name = env.servers[(i + rnd - 1) % n]
                    na = na_reason(wl, name)
                    if na == "skip":
                        continue
                    if na:
                        results.append({"round": rnd, "workload": wl, "server": name, "errors": 0,
                                        "na": na, "notes": [na]})
                        continue
                    srv = Server(name, env, "%d.%s" % (rnd, wl))
                    live.append(srv)
                    log("round %d, %s, %s" % (rnd, wl, name))
                    if not srv.start():
                        results.append({"round": rnd, "workload": wl, "server": name, "errors": 1,
                                        "notes": ["did not start"]})
                        failed = True
                        live.remove(srv)
                        continue
                    err = verify(srv, wl)
                    if err:
                        log("%s: %s" % (name, err))
                        results.append({"round": rnd, "workload": wl, "server": name, "errors": 1,
                                        "notes": ["wrong answer before measuring: " + err]})
                        failed = True
                    else:
                        r = measure(env, srv, wl, rnd)
                        results.append(r)
                        log("  -> %s %s cpu/unit %s limit %s (server %.0f%%, client %.0f%%)%s" % (
                            wl, fmt(r.get("value"), 1), fmt(r.get("cpu_per"), 2), r.get("limit"),
                            100 * r.get("server_util", 0), 100 * r.get("client_util", 0),
                            (" ERRORS: " + "; ".join(r["notes"])) if r["errors"] else ""))
                        if r["errors"]:
                            failed = True
                            log("     %s stderr: %s%s" % (name, r.get("stderr_tail"),
                                                          ("; error.log: " + r["errorlog_tail"])
                                                          if r.get("errorlog_tail") else ""))
                    srv.stop()
                    live.remove(srv)
    finally:
        for s in live:
            s.stop()

    tb.save_results(env, results, meta)
    versions = ["amped %s (%s)" % (first_line([os.path.join(env.bin, "server"), "--version"]), a.built),
                "rustls 0.23 + aws-lc-rs (amped's build)",
                first_line([NGINX, "-v"]).replace("nginx version: ", ""),
                first_line([LIGHTTPD, "-v"]).split(" - ")[0],
                "h2o " + first_line([H2O, "--version"]).split()[-1],
                "the peers, h2load, wrk and curl on " + first_line(["openssl", "version"]),
                first_line(["h2load", "--version"]),
                first_line(["wrk", "--version"]).split(" [")[0]]
    if env.nginx_cgi:
        versions.append("fcgiwrap (Debian %s)" % first_line(
            ["dpkg-query", "-W", "-f", "${Version}", "fcgiwrap"]))
    meta["versions"] = "; ".join(versions)
    meta["cert"] = tb.CERT_NOTE
    meta["docroot"] = ("www/s/f00.bin .. f%02d.bin (%d files of 1 KiB, random bytes), www/1k.bin, "
                       "www/1m.bin (1 MiB), www/cgi-bin/hello.cgi (tests/bench/h2/hello.cgi: /bin/sh, "
                       "two printf)" % (NFILES - 1, NFILES))
    meta["client_conf"] = ("client.cnf (OPENSSL_CONF) system_default: MinProtocol/MaxProtocol TLSv1.3, "
                           "Ciphersuites %s, Groups %s; h2load gets --tls13-ciphers=%s --groups=%s"
                           % (SUITE, GROUP, SUITE, GROUP))
    for s in env.servers:
        meta["cmd_" + s] = "taskset -c 0 " + srv_cmds.get(s, s)
    meta["note_amped"] = (" (one front process with its 2 disk helpers and cgi-runner; HTTP/2 on by "
                          "ALPN; its own limits: 128 concurrent streams per connection)")
    meta["note_nginx"] = (" (worker_processes 1, master_process off, `listen ... ssl http2`, "
                          "ssl_protocols TLSv1.3, ssl_ecdh_curve X25519, ssl_conf_command Ciphersuites %s, "
                          "access_log off, sendfile on, keepalive_requests 1000000 (which also bounds "
                          "h2 streams per connection in 1.22)%s)" % (
                              SUITE, "; CGI through fcgiwrap -c %d (%d preforked children, each forking "
                              "the script), started beside nginx as its child so that its CPU is counted"
                              % (env.cgi_conc, env.cgi_conc) if env.nginx_cgi else "; no CGI"))
    meta["note_lighttpd"] = (" (mod_openssl, HTTP/2 on (server.h2proto), mod_cgi with cgi.assign .cgi, "
                             "ssl.openssl.ssl-conf-cmd TLSv1.3, X25519, %s; no mod_accesslog)" % SUITE)
    meta["note_h2o"] = (" (num-threads 1, listen ssl minimum-version TLSv1.3, neverbleed OFF, "
                        "no access-log; CGI by file.custom-handler .cgi with fastcgi.spawn of h2o's "
                        "bundled fastcgi-cgi (perl: a process per FastCGI connection, which forks the "
                        "script); h2o 2.2.5 has no TLS 1.3 suite directive, the client offers one)")
    tls = "--tls13-ciphers=%s --groups=%s" % (SUITE, GROUP)
    meta["wl_small"] = ("taskset -c 1 h2load -t1 -c%d -m%d -D %d %s -i uris.txt  (uris.txt: the %d URIs "
                        "https://127.0.0.1:PORT/s/f00.bin .. f%02d.bin, each client going through them in turn)"
                        % (SMALL_C, SMALL_M, env.secs, tls, NFILES, NFILES - 1))
    meta["wl_1m"] = "taskset -c 1 h2load -t1 -c%d -m%d -D %d %s https://127.0.0.1:PORT/1m.bin" % (
        BIG_C, BIG_M, env.secs, tls)
    meta["wl_cgi"] = ("taskset -c 1 h2load -t1 -c%d -m%d -D %d %s https://127.0.0.1:PORT/cgi-bin/hello.cgi"
                      " (%d scripts at once)" % (CGI_C, CGI_M, env.secs, tls, env.cgi_conc))
    meta["wl_h1ka"] = ("taskset -c 1 wrk -t1 -c%d -d%ds --latency https://127.0.0.1:PORT/1k.bin "
                       "(HTTP/1.1 keep-alive over TLS, amped only, as tests/bench/tls/run.sh's ka1k)"
                       % (H1_CONNS, env.secs))
    if env.use_cgroup:
        used = sorted({"%s %s" % (r["workload"], r["server"]) for r in results
                       if r.get("cpu_source") == "cgroup"})
        meta["cgroup_note"] = (
            "Cross-check: each server ran in a cgroup of its own (%s), whose CPU counter also "
            "counts processes nobody reaped; where the two figures differ by more than %d%%, the "
            "cgroup's is used and the run says so (%s)." % (
                env.cgroup_kind, CGROUP_SLACK * 100,
                "here: " + ", ".join(used) if used else "no run needed it"))
    else:
        meta["cgroup_note"] = ("No cgroup cross-check (%s): a server whose processes ignore SIGCHLD "
                               "(fcgiwrap's workers do) leaves its scripts' CPU uncounted." % (
                                   "--no-cgroup" if a.no_cgroup else "none could be made here"))
    meta["command"] = a.command
    meta["elapsed"] = "%d min %d s" % divmod(int(time.monotonic() - started), 60)
    tb.publish(env, meta, checks, lambda: report(env, results, checks, meta), a.out, log)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
