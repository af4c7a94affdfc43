#!/usr/bin/python3
"""How much a server grows with clients that read nothing on cold ranges.

Mounts a sparse file through slowfs (1 ms a read, so every window of it is
read by a helper), starts the server on it, opens CLIENTS connections with
64 KiB receive buffers, each asking for a range of the file from a
different 512 KiB offset and reading nothing, waits until the disk has been
idle for 1.5 s, and prints how much the server's VmRSS grew, with its
status page's send counters.

    python3 tests/bench/slowdisk/window_memory.py SERVER CLIENTS [SERVER-ARGS...]

Needs fuse3 and python3-fusepy (what ./test installs); run as root or as a
user who may mount FUSE.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

WINDOW = 512 << 10
SLOWFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slowfs.py")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, clients, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix="window-memory-") as work:
        root, source = os.path.join(work, "root"), os.path.join(work, "source")
        mountpoint = os.path.join(root, "slow")
        os.makedirs(mountpoint)
        os.makedirs(source)
        with open(os.path.join(source, "cold.bin"), "wb") as f:
            f.truncate(clients * WINDOW + (10 << 20))
        fs = subprocess.Popen(
            ["/usr/bin/python3", SLOWFS, source, mountpoint, "--delay-ms", "1"]
        )
        try:
            deadline = time.time() + 10
            while not os.path.ismount(mountpoint):
                if time.time() > deadline or fs.poll() is not None:
                    sys.exit("slowfs did not mount")
                time.sleep(0.05)
            measure(binary, clients, extra, root)
        finally:
            subprocess.run(["fusermount3", "-u", mountpoint], check=False)
            fs.wait()


def measure(binary, clients, extra, root):
    server = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--root", root, "--status-path", "/status"]
        + extra,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(re.search(r":(\d+)", server.stdout.readline()).group(1))

        def rss():
            with open(f"/proc/{server.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS"):
                        return int(line.split()[1]) * 1024
            return 0

        def send_counters():
            url = f"http://127.0.0.1:{port}/status?json"
            with urllib.request.urlopen(url) as page:
                return json.load(page)["send"]

        send_counters()
        baseline = rss()
        sockets = []
        for i in range(clients):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            s.connect(("127.0.0.1", port))
            request = f"GET /slow/cold.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={i * WINDOW}-\r\n\r\n"
            s.sendall(request.encode())
            sockets.append(s)
        last, since = None, time.time()
        while time.time() - since < 1.5:
            read = send_counters()["bytes_by_helpers"]
            if read != last:
                last, since = read, time.time()
            time.sleep(0.1)
        grown = (rss() - baseline) / 1e6
        print(f"{clients} clients, {' '.join(extra) or 'defaults'}: grew {grown:.1f} MB; send {send_counters()}")
        for s in sockets:
            s.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
