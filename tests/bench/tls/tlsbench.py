#!/usr/bin/env python3
# The measuring half of tests/bench/tls/run.sh: starts the servers, runs the
# workloads in alternating rounds, checks what was negotiated, and writes
# the Markdown report. Python 3, standard library only.
"""tlsbench.py: HTTPS benchmark of amped against nginx, lighttpd and h2o.

Called by run.sh (which installs the tools and builds hs_client) as

  tlsbench.py --work DIR --bin DIR --hs-client PATH [--reps N] [--quick]
              [--only LIST] [--workloads LIST] [--idle-conns N] [--out FILE]

Everything runs on 127.0.0.1. Servers are pinned to CPU 0, clients to
CPU 1 (taskset). Each run gets a fresh server. Server CPU is the sum of
/proc/PID/task/TID/schedstat run times (ns) over the server process and
its live descendants, after minus before; client CPU is the client
process's own rusage (user+system, from wait4). A run's limit is "client"
when the client used >= 90% of CPU 1 over the run, "server" when the
server used >= 90% of CPU 0, otherwise "neither" (latency-bound, or other
work on the machine took the CPU: the per-run table shows how much of
each CPU other processes used).
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ["amped", "nginx", "lighttpd", "h2o"]
PEERS = ["nginx", "lighttpd", "h2o"]
WORKLOADS = ["handshake", "ka1k", "1m", "idle"]
SUITE = "TLS_AES_128_GCM_SHA256"
GROUP = "X25519"
LIMIT_BUSY = 0.90      # a CPU this busy with one side is that side's limit
NGINX = "/usr/sbin/nginx"
LIGHTTPD = "/usr/sbin/lighttpd"
H2O = "/usr/bin/h2o"
CONN_LIMIT = 16384


def log(msg):
    print("[tls-bench] " + msg, file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root):
    kids = _children()
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        if os.path.exists("/proc/%d" % p):
            out.append(p)
            stack.extend(kids.get(p, []))
    return out


def cpu_ns(root):
    """Run time in ns of every thread of root and its live descendants."""
    total = 0
    for pid in tree(root):
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def rss_kib(root):
    """(front, tree): VmRSS in KiB of root, and summed over its tree."""
    def one(pid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0
    return one(root), sum(one(p) for p in tree(root))


def cpu_busy():
    """{cpu index: busy ns} from /proc/stat (everything but idle and iowait)."""
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                out[int(m.group(1))] = (sum(v[:8]) - v[3] - v[4]) * tick
    return out


def freeport():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# --- servers -----------------------------------------------------------------


class Server:
    """One running server, started by us, pinned to CPU 0."""

    def __init__(self, name, env):
        self.name, self.env = name, env
        self.proc = None
        self.port = None

    def start(self):
        e = self.env
        d = os.path.join(e.work, self.name)
        os.makedirs(d, exist_ok=True)
        out = open(os.path.join(d, "stdout"), "w")
        err = open(os.path.join(d, "stderr"), "w")
        cmd = getattr(self, "_cmd_" + self.name)(d)
        self.cmd = cmd
        self.proc = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=d)
        out.close()
        err.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.name == "amped" and self.port is None:
                with open(os.path.join(d, "stdout")) as f:
                    m = re.search(r"listening on https://127\.0\.0\.1:(\d+)/", f.read())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None and self._answers():
                return True
            time.sleep(0.05)
        log("%s did not come up; stderr: %s" % (self.name, tail(os.path.join(d, "stderr"))))
        for extra in ("error.log",):
            p = os.path.join(d, extra)
            if os.path.exists(p):
                log("%s %s: %s" % (self.name, extra, tail(p)))
        self.stop()
        return False

    def _answers(self):
        try:
            get(self.port, "/1k.bin", timeout=1)
            return True
        except (OSError, ValueError):
            return False

    def stop(self):
        if self.proc is None:
            return
        pids = [p for p in tree(self.proc.pid) if p != self.proc.pid]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Children (amped's helpers, h2o's) go with their parent; make sure.
        deadline = time.monotonic() + 2
        for p in pids:
            while os.path.exists("/proc/%d" % p) and time.monotonic() < deadline:
                time.sleep(0.05)
            if os.path.exists("/proc/%d" % p):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    # The command lines, each writing its configuration first.

    def _cmd_amped(self, d):
        self.port = None
        return amped_cmd(self.env, CONN_LIMIT)

    def _cmd_nginx(self, d):
        self.port = freeport()
        return nginx_cmd(self.env, d, self.port, CONN_LIMIT, "tests/bench/tls/tlsbench.py",
                         num_tickets_0=True)

    def _cmd_lighttpd(self, d):
        self.port = freeport()
        return lighttpd_cmd(self.env, d, self.port, CONN_LIMIT, "tests/bench/tls/tlsbench.py")

    def _cmd_h2o(self, d):
        self.port = freeport()
        return h2o_cmd(self.env, d, self.port, CONN_LIMIT, "tests/bench/tls/tlsbench.py")


# The servers' command lines and configurations, shared with ../h2/h2bench.py:
# e is the Env, d the server's directory, by the script named in the
# configuration's first line.


def amped_cmd(e, conns):
    return [os.path.join(e.bin, "server"), "--root", e.docroot,
            "--listen-tls", "127.0.0.1:0", "--tls-cert", e.cert, "--tls-key", e.key,
            "--access-log", "off", "--keepalive-requests", "1000000",
            "--keepalive-timeout", "65", "--max-connections", str(conns),
            "--helper-bin", os.path.join(e.bin, "helper"),
            "--cgi-runner-bin", os.path.join(e.bin, "cgi-runner")]


def nginx_cmd(e, d, port, conns, by, http2=False, num_tickets_0=False, more=""):
    """nginx.conf in d (listen ... ssl, with http2 when asked; ssl_conf_command
    NumTickets 0 when asked; more: further lines at the end of the server
    block), and the command line that runs it."""
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""# generated by {by}
worker_processes 1;
daemon off;
master_process off;
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {conns}; }}
http {{
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    server {{
        listen 127.0.0.1:{port} ssl{http2} backlog=4096;
        server_name localhost;
        root {root};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        ssl_ecdh_curve X25519;
        ssl_conf_command Ciphersuites {suite};{tickets}
        ssl_session_cache off;
        ssl_session_tickets off;{more}
    }}
}}
""".format(by=by, d=d, nofile=e.nofile, conns=conns, port=port, root=e.docroot,
           cert=e.cert, key=e.key, suite=SUITE, http2=" http2" if http2 else "",
           tickets="\n        ssl_conf_command NumTickets 0;" if num_tickets_0 else "", more=more))
    return [NGINX, "-p", d + "/", "-e", d + "/error.log", "-c", conf]


def lighttpd_cmd(e, d, port, conns, by, h2=False, cgi=False):
    """lighttpd.conf in d (server.h2proto when h2; mod_cgi for .cgi when cgi),
    and the command line that runs it."""
    conf = os.path.join(d, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write("""# generated by {by}; no mod_accesslog, so no access log
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
server.max-fds = {nofile}
server.max-connections = {conns}
server.listen-backlog = 4096
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 65
{h2}server.modules = ( "mod_openssl"{mod_cgi} )
{cgi}ssl.engine = "enable"
ssl.pemfile = "{cert}"
ssl.privkey = "{key}"
ssl.openssl.ssl-conf-cmd = (
    "MinProtocol" => "TLSv1.3",
    "MaxProtocol" => "TLSv1.3",
    "Groups" => "X25519",
    "Ciphersuites" => "{suite}",
    "Options" => "-SessionTicket",
    "NumTickets" => "0",
)
mimetype.assign = ( ".bin" => "application/octet-stream", ".html" => "text/html", "" => "application/octet-stream" )
""".format(by=by, d=d, root=e.docroot, port=port, nofile=e.nofile,
           conns=min(conns, e.nofile // 2), cert=e.cert, key=e.key, suite=SUITE,
           h2='server.feature-flags = ( "server.h2proto" => "enable" )\n' if h2 else "",
           mod_cgi=', "mod_cgi"' if cgi else "",
           cgi='cgi.assign = ( ".cgi" => "" )\n' if cgi else ""))
    return [LIGHTTPD, "-D", "-f", conf]


def h2o_cmd(e, d, port, conns, by, fastcgi_cgi=None):
    """h2o.conf in d (*.cgi through fastcgi.spawn of fastcgi_cgi when given),
    and the command line that runs it."""
    conf = os.path.join(d, "h2o.conf")
    cgi = ""
    if fastcgi_cgi:
        cgi = """        file.custom-handler:
          extension: .cgi
          fastcgi.spawn:
            command: "exec {fcgi}"
            user: root
""".format(fcgi=fastcgi_cgi)
    with open(conf, "w") as f:
        f.write("""# generated by {by}; no access-log, so no access log
num-threads: 1
max-connections: {conns}
http1-request-timeout: 65
http2-idle-timeout: 65
error-log: {d}/error.log
pid-file: {d}/h2o.pid
user: root
ssl-session-resumption:
  mode: off
listen:
  host: 127.0.0.1
  port: {port}
  ssl:
    certificate-file: {cert}
    key-file: {key}
    minimum-version: TLSv1.3
    neverbleed: OFF
hosts:
  default:
    paths:
      /:
        file.dir: {root}
""".format(by=by, d=d, conns=conns, port=port, cert=e.cert, key=e.key, root=e.docroot) + cgi)
    return [H2O, "-c", conf]


def tail(path, n=6):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-n:])
    except OSError:
        return "(none)"


_CTX = None


def client_ctx():
    global _CTX
    if _CTX is None:
        _CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _CTX.check_hostname = False
        _CTX.verify_mode = ssl.CERT_NONE
        _CTX.minimum_version = ssl.TLSVersion.TLSv1_3
        _CTX.set_alpn_protocols(["http/1.1"])
    return _CTX


def get(port, path, timeout=10):
    """GET path over TLS; the body of a 200, else ValueError."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with client_ctx().wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                       % path).encode())
            buf = b""
            while True:
                try:
                    chunk = s.recv(1 << 16)
                except ssl.SSLEOFError:
                    break
                if not chunk:
                    break
                buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError("status %r" % head[:40])
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m and int(m.group(1)) != len(body):
        raise ValueError("body %d bytes, Content-Length %s" % (len(body), m.group(1)))
    return body


# --- running the tools -------------------------------------------------------


class Env:
    pass


def run_client(env, srv, cmd, timeout, out_path, stdin=None):
    """Runs cmd on CPU 1 with the client OpenSSL configuration; returns
    (output text, measurements)."""
    busy0 = cpu_busy()
    s0 = cpu_ns(srv.pid)
    t0 = time.monotonic()
    status, ru, killed = wait_client(env, cmd, t0 + timeout, out_path, stdin)
    wall = time.monotonic() - t0
    s1 = cpu_ns(srv.pid) if srv.alive() else float("nan")
    busy1 = cpu_busy()
    m = cpu_shares(wall, s1 - s0, (ru.ru_utime + ru.ru_stime) * 1e9, busy0, busy1)
    with open(out_path, errors="replace") as f:
        return f.read(), m


def wait_client(env, cmd, deadline, out_path, stdin=None):
    """Runs cmd on CPU 1 (env.client_env), its output into out_path, until it
    exits or the monotonic clock passes deadline, when it is killed;
    (wait status, rusage, killed). Shared with ../h2/h2bench.py."""
    with open(out_path, "w") as out:
        p = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=stdin or subprocess.DEVNULL, env=env.client_env)
        killed = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                killed = True
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        p.returncode = status
    return status, ru, killed


def cpu_shares(wall, server, client, busy0, busy1):
    """A run's measurements from its wall time (s), the server's and the
    client's CPU (ns) and cpu_busy() before and after."""
    return {"wall": wall, "server_ns": server, "client_ns": client,
            "server_util": server / (wall * 1e9), "client_util": client / (wall * 1e9),
            "other0": max(0.0, (busy1[0] - busy0[0] - server) / (wall * 1e9)),
            "other1": max(0.0, (busy1[1] - busy0[1] - client) / (wall * 1e9))}


def limit_of(m):
    """client / server: that side alone kept its CPU >= 90% busy;
    client+other / server+other: its CPU was >= 90% busy only with other
    processes' work added (the machine's noise); neither: no CPU was full
    (latency-bound)."""
    if m["client_util"] >= LIMIT_BUSY:
        return "client"
    if m["server_util"] >= LIMIT_BUSY:
        return "server"
    c1 = m["client_util"] + m["other1"] >= LIMIT_BUSY
    c0 = m["server_util"] + m["other0"] >= LIMIT_BUSY
    if c1 and not c0:
        return "client+other"
    if c0 and not c1:
        return "server+other"
    if c0 and c1:
        return "both+other"
    if m.get("client_cpu_per") and m.get("cpu_per") and m["client_cpu_per"] > m["cpu_per"]:
        # No CPU was full (other work came and went), but the client
        # needs more CPU per unit than the server: on one CPU each, the
        # client runs out first.
        return "client-cost"
    return "neither"


def limit_legend():
    """The report's explanation of limit_of's labels."""
    return ("Limit: client = the client alone used >= %d%% of CPU 1; server = the server alone "
            "used >= %d%% of CPU 0; client+other / server+other = that CPU was >= %d%% busy only "
            "counting other processes' work (noise from the rest of the machine, 'other work' above); "
            "both+other = both CPUs were; client-cost = no CPU was full but the client spent more CPU "
            "per unit than the server, so on one CPU each it runs out first; neither = no CPU was "
            "full and the server spent more per unit (latency-bound)."
            % (LIMIT_BUSY * 100, LIMIT_BUSY * 100, LIMIT_BUSY * 100))


_SIZE = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def parse_wrk(text):
    d = {"errors": 0, "notes": []}
    m = re.search(r"(\d+) requests in ([0-9.]+)(\w+), ([0-9.]+)(\w+) read", text)
    if not m:
        d["errors"] += 1
        d["notes"].append("no 'requests in' line")
        return d
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    d["requests"] = int(m.group(1))
    d["secs"] = float(m.group(2)) * unit
    d["bytes"] = float(m.group(4)) * _SIZE[m.group(5)]
    d["rate"] = d["requests"] / d["secs"]
    non = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if non:
        d["errors"] += int(non.group(1))
        d["notes"].append("non-2xx/3xx: %s" % non.group(1))
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if se:
        n = sum(int(g) for g in se.groups())
        d["errors"] += n
        d["notes"].append("socket errors: connect %s, read %s, write %s, timeout %s" % se.groups())
    return d


def measure(env, srv, wl, rnd):
    """One run of wl on srv (started, verified); a result dict."""
    tag = os.path.join(env.logs, "%d.%s.%s" % (rnd, wl, srv.name))
    r = {"round": rnd, "workload": wl, "server": srv.name, "errors": 0, "notes": []}
    if wl == "handshake":
        cmd = [env.hs_client, str(srv.port), "/1k.bin", str(env.hs_conc), str(env.secs)]
        text, m = run_client(env, srv, cmd, env.secs + 30, tag + ".txt")
        mm = re.search(r"done (\d+) errors (\d+) reused (\d+) secs ([0-9.]+) rate ([0-9.]+) "
                       r"version (\S+) cipher (\S+) group (\S+)(?: first_error (.*))?", text)
        if not mm:
            r["errors"] += 1
            r["notes"].append("no hs_client line: " + text.strip()[-200:])
        else:
            n = int(mm.group(1))
            r["value"] = n / float(mm.group(4))
            r["count"] = n
            r["errors"] += int(mm.group(2)) + int(mm.group(3))
            r["reused"] = int(mm.group(3))
            r["negotiated"] = "%s %s %s" % (mm.group(6), mm.group(7), mm.group(8))
            if int(mm.group(2)):
                r["notes"].append("%s errors, first: %s" % (mm.group(2), mm.group(9)))
            if int(mm.group(3)):
                r["notes"].append("%s resumed" % mm.group(3))
            if n:
                r["cpu_per"] = m["server_ns"] / n / 1e3     # us per handshake
                r["client_cpu_per"] = m["client_ns"] / n / 1e3
    elif wl in ("ka1k", "1m"):
        conns, path = (100, "/1k.bin") if wl == "ka1k" else (10, "/1m.bin")
        cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % env.secs, "--latency",
               "https://127.0.0.1:%d%s" % (srv.port, path)]
        text, m = run_client(env, srv, cmd, env.secs + 60, tag + ".txt")
        d = parse_wrk(text)
        r["errors"] += d["errors"]
        r["notes"] += d["notes"]
        if "rate" in d:
            if wl == "ka1k":
                r["value"] = d["rate"]
                r["cpu_per"] = m["server_ns"] / d["requests"]   # ns per request
                r["client_cpu_per"] = m["client_ns"] / d["requests"]
            else:
                mb = d["requests"] * 1048576 / 1e6              # body bytes, in MB
                r["value"] = mb / d["secs"]                     # MB/s
                r["cpu_per"] = m["server_ns"] / mb / 1e3        # us per MB
                r["client_cpu_per"] = m["client_ns"] / mb / 1e3
            r["count"] = d["requests"]
    elif wl == "idle":
        return measure_idle(env, srv, rnd, tag, r)
    r.update(m)
    r["limit"] = limit_of(dict(m, cpu_per=r.get("cpu_per"), client_cpu_per=r.get("client_cpu_per")))
    if not srv.alive():
        r["errors"] += 1
        r["notes"].append("server died during the run")
    return r


def measure_idle(env, srv, rnd, tag, r):
    # Warm up: 200 full handshakes with a request each, so one-time
    # allocations are in the baseline; then the RSS before.
    run_client(env, srv, [env.hs_client, str(srv.port), "/1k.bin", "10", "30", "-n", "200"],
               60, tag + ".warm.txt")
    time.sleep(0.5)
    f0, t0 = rss_kib(srv.pid)
    rfd, wfd = os.pipe()
    holder_out = tag + ".holder.txt"
    out = open(holder_out, "w")
    p = subprocess.Popen(["taskset", "-c", "1", sys.executable, os.path.join(HERE, "idle_tls_holder.py"),
                          str(srv.port), str(env.idle_conns), "--timeout", "150", "--hold", "300"],
                         stdin=rfd, stdout=out, stderr=subprocess.STDOUT, env=env.client_env)
    os.close(rfd)
    out.close()
    t_start = time.monotonic()
    line = ""
    while time.monotonic() < t_start + 160:
        with open(holder_out) as f:
            line = f.read()
        if line.startswith(("READY", "FAILED")) or p.poll() is not None:
            break
        time.sleep(0.2)
    open_secs = time.monotonic() - t_start
    ok = line.startswith("READY %d " % env.idle_conns)
    if ok:
        time.sleep(2)
        f1, t1 = rss_kib(srv.pid)
    os.close(wfd)   # let the holder check and close its connections
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    with open(holder_out) as f:
        text = f.read().strip().splitlines()
    r["conns"] = env.idle_conns
    if not ok:
        r["errors"] += 1
        r["notes"].append("idle connections: " + (text[-1] if text else "no answer"))
        r["limit"] = "-"
        return r
    parts = text[0].split()
    r["negotiated"] = "%s %s" % (parts[2], parts[3])
    r["reused"] = int(parts[4])
    if p.returncode != 0:
        r["errors"] += 1
        r["notes"].append("at the end: " + text[-1])
    r["rss_before"], r["rss_after"], r["tree_before"], r["tree_after"] = f0, f1, t0, t1
    r["value"] = (t1 - t0) / env.idle_conns   # KiB per connection, the whole tree
    r["front_per"] = (f1 - f0) / env.idle_conns
    r["open_secs"] = open_secs
    r["limit"] = "-"
    if not srv.alive():
        r["errors"] += 1
        r["notes"].append("server died")
    return r


# --- checks ------------------------------------------------------------------


def s_client(env, port, extra, stdin_data=b"", client_conf=True):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost"] + extra
    e = env.client_env if client_conf else env.plain_env
    p = subprocess.run(cmd, input=stdin_data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=e, timeout=20)
    return p.stdout.decode(errors="replace")


def negotiation(env, srv):
    """What the server negotiates with the benchmark's client settings, what
    it picks for an unrestricted OpenSSL client, how many session tickets it
    sends, and whether it would resume a session offered to it."""
    req = b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    res = {}
    out = s_client(env, srv.port, ["-brief", "-ign_eof", "-msg"], req)
    res["forced"] = brief(out)
    res["tickets"] = out.count("NewSessionTicket")
    out = s_client(env, srv.port, ["-brief"], b"", client_conf=False)
    res["default_client"] = brief(out)
    sess = os.path.join(env.work, "sess.%s.pem" % srv.name)
    if os.path.exists(sess):
        os.unlink(sess)
    # s_client reads the tickets after the response; -sess_out keeps the last.
    s_client(env, srv.port, ["-ign_eof", "-sess_out", sess], req, client_conf=False)
    if os.path.exists(sess):
        out = s_client(env, srv.port, ["-ign_eof", "-sess_in", sess], req, client_conf=False)
        res["resumes_offered_session"] = "yes" if re.search(r"^Reused, TLS", out, re.M) else "no"
    else:
        res["resumes_offered_session"] = "no session saved"
    return res


def client_offers(env):
    """What each benchmark client offers, as openssl s_server (unrestricted)
    sees it: {client: "suites ...; groups ..."}."""
    res = {}
    clients = {
        "wrk": ["wrk", "-t1", "-c1", "-d1s", "https://127.0.0.1:PORT/"],
        "hs_client": [env.hs_client, "PORT", "/", "1", "1"],
        "idle_tls_holder.py": [sys.executable, os.path.join(HERE, "idle_tls_holder.py"), "PORT", "1",
                               "--timeout", "1", "--hold", "0"],
    }
    for name, cmd in clients.items():
        port = freeport()
        srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", env.cert,
                                "-key", env.key, "-naccept", "2"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env.plain_env)
        time.sleep(0.4)
        cmd = [str(port) if x == "PORT" else x.replace("PORT", str(port)) for x in cmd]
        try:
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env.client_env,
                           timeout=5)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.3)
        srv.kill()
        out = srv.communicate()[0].decode(errors="replace")
        c = re.search(r"^Shared ciphers:(.*)$", out, re.M)
        g = re.search(r"^Supported groups: (.*)$", out, re.M)
        res[name] = "suites offered (shared with s_server): %s; groups offered: %s" % (
            c.group(1).strip() if c else "?", g.group(1).strip() if g else "?")
    return res


def brief(out):
    v = re.search(r"Protocol version: (\S+)", out)
    c = re.search(r"Ciphersuite: (\S+)", out)
    g = re.search(r"(?:Server|Peer) Temp Key: ([^,\n]+)", out)
    a = re.search(r"Peer signature type: (\S+)", out)
    if not v:
        return "handshake failed: " + " | ".join(out.strip().splitlines()[-3:])
    return "%s %s %s%s" % (v.group(1), c.group(1) if c else "?", g.group(1) if g else "?",
                           (" sig " + a.group(1)) if a else "")


# --- report ------------------------------------------------------------------


def med(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{d}f}".format(x, d=digits)


WL_INFO = {
    "handshake": ("full handshakes/s", "server CPU µs per handshake", 0, 1, "higher"),
    "ka1k": ("1 KiB keep-alive req/s", "server CPU ns per request", 0, 0, "higher"),
    "1m": ("1 MiB files, MB/s", "server CPU µs per MB", 0, 0, "higher"),
    "idle": ("KiB per idle TLS connection", None, 1, 0, "lower"),
}


def summarize(results, servers, wls):
    """{(workload, server): medians over the runs without errors}; shared
    with ../h2/h2bench.py (na: a run not measured, with the reason)."""
    summ = {}
    for wl in wls:
        for s in servers:
            rs = [r for r in results if r["workload"] == wl and r["server"] == s]
            good = [r for r in rs if not r["errors"] and r.get("value") is not None]
            limits = [r.get("limit", "-") for r in good]
            summ[(wl, s)] = {
                "runs": len(rs), "n": len(good), "failed": len(rs) - len(good),
                "na": any(r.get("na") for r in rs),
                "value": med([r["value"] for r in good]),
                "cpu_per": med([r.get("cpu_per") for r in good]),
                "client_cpu_per": med([r.get("client_cpu_per") for r in good]),
                "server_util": med([r.get("server_util") for r in good]),
                "client_util": med([r.get("client_util") for r in good]),
                "front_per": med([r.get("front_per") for r in good]),
                "limit": max(set(limits), key=limits.count) if limits else "-",
                "limits": limits,
            }
    return summ


def bars(summ, servers, wls):
    """Per workload: (text of the ratio, which figure decides, holds?)."""
    out = {}
    for wl in wls:
        a = summ.get((wl, "amped"))
        peers = [p for p in PEERS if p in servers and summ[(wl, p)]["value"] is not None]
        if not a or a["value"] is None or not peers:
            out[wl] = ("-", "-", "not measured")
            continue
        if wl == "idle":
            if "nginx" not in peers:
                out[wl] = ("-", "-", "no nginx figure")
                continue
            n = summ[(wl, "nginx")]["value"]
            ratio = a["value"] / n if n > 0 else float("inf")
            out[wl] = ("%.2fx nginx's (%s vs %s KiB)" % (ratio, fmt(a["value"], 1), fmt(n, 1)),
                       "memory per idle connection, at most nginx's",
                       "holds" if a["value"] <= n else "FAILS")
            continue
        best = max(peers, key=lambda p: summ[(wl, p)]["value"])
        rate_ratio = a["value"] / summ[(wl, best)]["value"]
        cpu_best = min(peers, key=lambda p: summ[(wl, p)]["cpu_per"] or float("inf"))
        cpu_ratio = a["cpu_per"] / summ[(wl, cpu_best)]["cpu_per"]
        text = "%.2fx %s (rate); CPU/unit %.2fx %s's" % (rate_ratio, best, cpu_ratio, cpu_best)
        if a["limit"] in ("server", "server+other", "neither"):
            decide = "rate (at least 1.0x the best peer's)"
            ok = rate_ratio >= 1.0
        else:
            decide = ("server CPU per unit (at most the best peer's): amped's runs were limited by "
                      "CPU 1 (the client%s), not by amped" % {
                          "client": "", "client+other": ", with other processes' work",
                          "client-cost": ", which needs more CPU per unit than amped"}[a["limit"]])
            if a["limit"] == "both+other":
                decide = ("server CPU per unit (at most the best peer's): both CPUs were full with "
                          "other processes' work, so the rate says little")
            ok = cpu_ratio <= 1.0
        out[wl] = (text, decide, "holds" if ok else "FAILS")
    return out


def report(env, results, checks, meta):
    servers, wls = env.servers, env.workloads
    summ = summarize(results, servers, wls)
    b = bars(summ, servers, wls)
    L = []
    L.append("# amped HTTPS benchmark (tests/bench/tls/run.sh)")
    L.append("")
    L.append("%s; %s; %d rounds (medians), %s s a run; load average before %s, after %s."
             % (meta["date"], meta["machine"], env.reps, env.secs, meta["load_before"],
                meta["load_after"]))
    L.append("")
    L.append("## Results (medians of %d alternating rounds)" % env.reps)
    L.append("")
    hdr = "| workload | " + " | ".join(servers) + " | amped vs best peer | limit hit (majority of rounds) | decided by | bar |"
    L.append(hdr)
    L.append("|" + "---|" * (len(servers) + 5))
    for wl in wls:
        title, cpu_title, dig, cdig, _ = WL_INFO[wl]
        cells = [fmt(summ[(wl, s)]["value"], dig) for s in servers]
        lim = ", ".join("%s %s" % (s, summ[(wl, s)]["limit"]) for s in servers) if wl != "idle" else "-"
        L.append("| %s | %s | %s | %s | %s | **%s** |" % (title, " | ".join(cells), b[wl][0], lim,
                                                         b[wl][1], b[wl][2]))
        if cpu_title:
            cells = [fmt(summ[(wl, s)]["cpu_per"], cdig) for s in servers]
            L.append("| %s | %s | | | | |" % (cpu_title, " | ".join(cells)))
            cells = [fmt(summ[(wl, s)]["client_cpu_per"], cdig) for s in servers]
            L.append("| client CPU, same unit | %s | | | | |" % " | ".join(cells))
            cells = ["%s / %s" % (fmt(100 * (summ[(wl, s)]["server_util"] or 0)),
                                  fmt(100 * (summ[(wl, s)]["client_util"] or 0))) for s in servers]
            L.append("| server %% of CPU 0 / client %% of CPU 1 | %s | | | | |" % " | ".join(cells))
        else:
            cells = [fmt(summ[(wl, s)]["front_per"], 1) for s in servers]
            L.append("| KiB per idle connection, front process only | %s | | | | |" % " | ".join(cells))
    L.append("")
    fails = [(k, v) for k, v in summ.items() if v["failed"]]
    if fails:
        L.append("Failed runs (left out of the medians): " + "; ".join(
            "%s %s: %d" % (k[0], k[1], v["failed"]) for k, v in fails))
        L.append("")
    L.append("## Negotiated (openssl s_client)")
    L.append("")
    L.append("| server | with the benchmark's client settings | unrestricted OpenSSL 3 client | NewSessionTicket messages per full handshake | resumes a session offered to it |")
    L.append("|---|---|---|---|---|")
    for s in servers:
        c = checks.get(s, {})
        L.append("| %s | %s | %s | %s | %s |" % (s, c.get("forced", "-"), c.get("default_client", "-"),
                                                c.get("tickets", "-"), c.get("resumes_offered_session", "-")))
    L.append("")
    neg = {}
    for r in results:
        if r.get("negotiated"):
            neg.setdefault((r["workload"], r["server"]), set()).add(r["negotiated"])
    reused = sum(r.get("reused", 0) for r in results)
    L.append("What the clients offer (each run once against an unrestricted `openssl s_server`): " +
             "; ".join("%s: %s" % kv for kv in meta["offers"].items()) + ".")
    L.append("")
    L.append("As the benchmark's clients saw it: " + "; ".join(
        "%s/%s: %s" % (k[0], k[1], ", ".join(sorted(v))) for k, v in sorted(neg.items())) +
        ". Resumed handshakes over all runs: %d (hs_client and the idle holder never offer a session)." % reused)
    L.append("")
    L.append("## Every run")
    L.append("")
    L.append("| round | workload | server | value | server CPU per unit | client CPU per unit | server % CPU 0 | client % CPU 1 | other work % CPU 0 / CPU 1 | limit | notes |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        title, _, dig, cdig, _ = WL_INFO[r["workload"]]
        if r["workload"] == "idle":
            extra = "tree RSS %s -> %s KiB, front %s -> %s KiB, %d conns opened in %.1f s" % (
                r.get("tree_before"), r.get("tree_after"), r.get("rss_before"), r.get("rss_after"),
                r.get("conns", 0), r.get("open_secs", 0)) if r.get("value") is not None else ""
            L.append("| %d | idle | %s | %s | | | | | | - | %s |" % (
                r["round"], r["server"], fmt(r.get("value"), 1), "; ".join(r["notes"] + [extra])))
            continue
        L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |" % (
            r["round"], r["workload"], r["server"], fmt(r.get("value"), dig), fmt(r.get("cpu_per"), cdig),
            fmt(r.get("client_cpu_per"), cdig), fmt(100 * r.get("server_util", 0)),
            fmt(100 * r.get("client_util", 0)), fmt(100 * r.get("other0", 0)),
            fmt(100 * r.get("other1", 0)), r.get("limit", "-"), "; ".join(r["notes"]) or ""))
    L.append("")
    L.append("Units: handshake CPU in µs per handshake; ka1k in ns per request; 1m in µs per MB "
             "(MB = 10^6 bytes of body). " + limit_legend())
    L.append("")
    L += setup_lines(meta, ("machine", "kernel", "versions", "cert", "client_conf", "ktls"),
                     servers, wls)
    return "\n".join(L) + "\n"


def setup_lines(meta, keys, servers, wls):
    """The report's Setup section: meta's keys, then each server's command
    (meta cmd_NAME, note_NAME) and each workload's (wl_NAME)."""
    L = ["## Setup", ""]
    for k in keys:
        L.append("- %s: %s" % (k, meta[k]))
    L.append("- servers (taskset -c 0, fresh for every run; configurations in the work dir):")
    for s in servers:
        L.append("  - %s: `%s`%s" % (s, meta.get("cmd_" + s, s), meta.get("note_" + s, "")))
    L.append("- clients (taskset -c 1, OPENSSL_CONF=client.cnf):")
    for wl in wls:
        L.append("  - %s: `%s`" % (wl, meta["wl_" + wl]))
    L.append("- command: `%s`; elapsed %s" % (meta["command"], meta["elapsed"]))
    return L


# --- main ----------------------------------------------------------------------


def first_line(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return p.stdout.decode(errors="replace").strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# Shared with ../h2/h2bench.py.


def names(text, known, unknown):
    """The comma-separated names in text; exits with unknown % name for one
    not in known."""
    out = [x for x in text.split(",") if x]
    for x in out:
        if x not in known:
            sys.exit(unknown % x)
    return out


def raise_nofile():
    """The soft descriptor limit up to the hard one, at most 65536; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    return nofile


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[0:3])


CERT_NOTE = ("one self-signed ECDSA P-256 certificate for localhost (openssl req -newkey ec "
             "-pkeyopt ec_paramgen_curve:P-256), the same files for every server")


def make_cert(work):
    """WORK/cert.pem and key.pem, as CERT_NOTE says; (cert, key)."""
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def open_dirs(work):
    """Every directory under work (and work) mode 755, for the servers' users."""
    for root, dirs, files in os.walk(work):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
    os.chmod(work, 0o755)


def write_client_conf(work, about):
    """WORK/client.cnf, the clients' OPENSSL_CONF: TLS 1.3 only, SUITE and
    GROUP; about: its opening comment lines. Returns its path."""
    client_conf = os.path.join(work, "client.cnf")
    with open(client_conf, "w") as f:
        f.write(about + """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
MaxProtocol = TLSv1.3
Ciphersuites = %s
Groups = %s
""" % (SUITE, GROUP))
    return client_conf


def save_results(env, results, meta):
    """logs/results.jsonl, and the machine, kernel and load after into meta."""
    with open(os.path.join(env.logs, "results.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    cpu = first_line(["sh", "-c", "sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1"])
    meta["machine"] = "%s, %d CPUs" % (cpu, os.cpu_count())
    meta["kernel"] = first_line(["uname", "-sr"])
    meta["load_after"] = loadavg()


def publish(env, meta, checks, make_report, out, log):
    """logs/meta.json, then the report (make_report()) on stdout and in out."""
    with open(os.path.join(env.logs, "meta.json"), "w") as f:
        json.dump({"meta": meta, "checks": checks}, f, indent=1)
    text = make_report()
    sys.stdout.write(text)
    if out:
        with open(out, "w") as f:
            f.write(text)
        log("report written to %s" % out)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--hs-client", required=True)
    ap.add_argument("--reps", type=int)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--secs", type=int)
    ap.add_argument("--only", default=",".join(SERVERS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--idle-conns", type=int)
    ap.add_argument("--out")
    ap.add_argument("--command", default="tests/bench/tls/run.sh")
    a = ap.parse_args(argv)

    env = Env()
    env.work = a.work
    env.bin = a.bin
    env.hs_client = a.hs_client
    env.reps = a.reps or (1 if a.quick else 3)
    env.secs = a.secs or (3 if a.quick else 6)
    env.idle_conns = a.idle_conns or (1000 if a.quick else 4000)
    env.hs_conc = 10
    env.servers = names(a.only, SERVERS, "tlsbench: unknown server %r")
    env.workloads = names(a.workloads, WORKLOADS, "tlsbench: unknown workload %r")
    env.nofile = raise_nofile()
    if env.idle_conns > min(CONN_LIMIT, env.nofile // 2) - 200:
        sys.exit("tlsbench: --idle-conns %d is more than the descriptor limit (%d) lets every server hold"
                 % (env.idle_conns, env.nofile))
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_before": loadavg()}
    started = time.monotonic()

    # Certificate, document root, client configuration.
    env.cert, env.key = make_cert(a.work)
    os.chmod(env.key, 0o644)   # h2o and nginx read it as root anyway; lighttpd too
    env.docroot = os.path.join(a.work, "www")
    os.makedirs(env.docroot, exist_ok=True)
    with open(os.path.join(env.docroot, "1k.bin"), "wb") as f:
        f.write(os.urandom(1024))
    with open(os.path.join(env.docroot, "1m.bin"), "wb") as f:
        f.write(os.urandom(1048576))
    with open(os.path.join(env.docroot, "index.html"), "w") as f:
        f.write("<!DOCTYPE html><title>amped</title><p>TLS benchmark index page.</p>\n")
    open_dirs(a.work)
    client_conf = write_client_conf(
        a.work, "# The benchmark's clients (wrk, the idle holder, openssl s_client): TLS 1.3 only,\n"
                "# one suite, one group, no session tickets asked for.\n")
    env.client_env = dict(os.environ, OPENSSL_CONF=client_conf)
    env.plain_env = dict(os.environ)
    env.plain_env.pop("OPENSSL_CONF", None)
    env.logs = os.path.join(a.work, "logs")
    os.makedirs(env.logs, exist_ok=True)
    with open(os.path.join(env.docroot, "1k.bin"), "rb") as f:
        want_1k = f.read()
    with open(os.path.join(env.docroot, "1m.bin"), "rb") as f:
        want_1m = f.read()

    results, checks, failed = [], {}, False
    srv_cmds = {}
    live = []

    def stop_all(*_):
        for s in live:
            s.stop()
        sys.exit(130)
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)

    try:
        offers = client_offers(env)
        log("clients offer: %s" % offers)
        # What each server negotiates, once, before the rounds.
        for name in env.servers:
            srv = Server(name, env)
            live.append(srv)
            if not srv.start():
                checks[name] = {"forced": "did not start"}
                failed = True
                live.remove(srv)
                continue
            srv_cmds[name] = " ".join(srv.cmd).replace(a.work, "WORK")
            try:
                checks[name] = negotiation(env, srv)
            except subprocess.TimeoutExpired:
                checks[name] = {"forced": "s_client timed out"}
            log("%s negotiates: %s" % (name, checks[name]))
            srv.stop()
            live.remove(srv)

        for rnd in range(1, env.reps + 1):
            for wl in env.workloads:
                n = len(env.servers)
                for i in range(n):
                    name = env.servers[(i + rnd - 1) % n]
                    srv = Server(name, env)
                    live.append(srv)
                    log("round %d, %s, %s" % (rnd, wl, name))
                    if not srv.start():
                        results.append({"round": rnd, "workload": wl, "server": name, "errors": 1,
                                        "notes": ["did not start"]})
                        failed = True
                        live.remove(srv)
                        continue
                    try:
                        ok = get(srv.port, "/1k.bin") == want_1k and (
                            wl != "1m" or get(srv.port, "/1m.bin") == want_1m)
                    except (OSError, ValueError) as e:
                        ok = False
                        log("%s: %s" % (name, e))
                    if not ok:
                        results.append({"round": rnd, "workload": wl, "server": name, "errors": 1,
                                        "notes": ["wrong answer before measuring"]})
                        failed = True
                    else:
                        r = measure(env, srv, wl, rnd)
                        results.append(r)
                        log("  -> %s %s cpu/unit %s limit %s (server %.0f%%, client %.0f%%)%s" % (
                            wl, fmt(r.get("value"), 1), fmt(r.get("cpu_per"), 1), r.get("limit"),
                            100 * r.get("server_util", 0), 100 * r.get("client_util", 0),
                            (" ERRORS: " + "; ".join(r["notes"])) if r["errors"] else ""))
                        if r["errors"]:
                            failed = True
                    srv.stop()
                    live.remove(srv)
    finally:
        for s in live:
            s.stop()

    save_results(env, results, meta)
    meta["versions"] = "; ".join([
        "amped %s" % first_line([os.path.join(env.bin, "server"), "--version"]),
        "rustls 0.23 + aws-lc-rs (amped's build)",
        first_line([NGINX, "-v"]).replace("nginx version: ", ""),
        first_line([LIGHTTPD, "-v"]).split(" - ")[0],
        "h2o " + first_line([H2O, "--version"]).split()[-1],
        "all three peers, wrk and s_client on " + first_line(["openssl", "version"]),
        first_line(["wrk", "--version"]).split(" [")[0],
        "python " + sys.version.split()[0] + " (" + ssl.OPENSSL_VERSION + ")"])
    meta["cert"] = CERT_NOTE
    meta["client_conf"] = ("client.cnf (OPENSSL_CONF) system_default: MinProtocol/MaxProtocol TLSv1.3, "
                           "Ciphersuites %s, Groups %s; hs_client sets the same on its SSL_CTX itself" % (SUITE, GROUP))
    ulp = first_line(["cat", "/proc/sys/net/ipv4/tcp_available_ulp"])
    meta["ktls"] = ("kernel TLS: tcp_available_ulp = '%s' (no 'tls': no kTLS, so no server can "
                    "sendfile() over TLS; every server encrypts in user space)" % ulp
                    if "tls" not in ulp.split() else "kernel TLS available (%s), not enabled for any server" % ulp)
    for s in env.servers:
        meta["cmd_" + s] = "taskset -c 0 " + srv_cmds.get(s, s)
    meta["note_amped"] = (" (rustls defaults beyond amped's own: TLS 1.3 and 1.2, the client's suite "
                          "preference, session tickets and a 16K-entry session cache, which amped cannot turn off)")
    meta["note_nginx"] = (" (worker_processes 1, master_process off, ssl_protocols TLSv1.3, ssl_ecdh_curve X25519, "
                          "ssl_conf_command Ciphersuites %s and NumTickets 0, ssl_session_cache off, "
                          "ssl_session_tickets off, access_log off, sendfile on)" % SUITE)
    meta["note_lighttpd"] = (" (mod_openssl, ssl.openssl.ssl-conf-cmd MinProtocol/MaxProtocol TLSv1.3, Groups X25519, "
                             "Ciphersuites %s, Options -SessionTicket, NumTickets 0; no mod_accesslog)" % SUITE)
    meta["note_h2o"] = (" (num-threads 1, listen ssl minimum-version TLSv1.3, neverbleed OFF (the key in-process, "
                        "as the others), ssl-session-resumption mode off, no access-log; h2o 2.2.5 has no "
                        "cipher-suite-tls1.3 directive, so the suite and group come from the client's offer only)")
    meta["wl_handshake"] = ("taskset -c 1 hs_client PORT /1k.bin %d %d  (a new connection, full handshake, "
                            "one GET with Connection: close per request, %d at once)"
                            % (env.hs_conc, env.secs, env.hs_conc))
    meta["wl_ka1k"] = "taskset -c 1 wrk -t1 -c100 -d%ds --latency https://127.0.0.1:PORT/1k.bin" % env.secs
    meta["wl_1m"] = "taskset -c 1 wrk -t1 -c10 -d%ds --latency https://127.0.0.1:PORT/1m.bin" % env.secs
    meta["wl_idle"] = ("taskset -c 1 hs_client PORT /1k.bin 10 30 -n 200 (warm-up), then taskset -c 1 "
                       "idle_tls_holder.py PORT %d (each: handshake, one GET /1k.bin, then idle); "
                       "(RSS with them, 2 s after the last is ready, - RSS before) / %d, summed over "
                       "the server's process tree" % (env.idle_conns, env.idle_conns))
    meta["command"] = a.command
    meta["elapsed"] = "%d min %d s" % divmod(int(time.monotonic() - started), 60)
    meta["offers"] = offers
    publish(env, meta, checks, lambda: report(env, results, checks, meta), a.out, log)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
