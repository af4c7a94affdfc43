#!/usr/bin/python3
# slowfs.py: a read-only FUSE passthrough filesystem that makes every read
# slow. It mirrors SOURCE at MOUNTPOINT, sleeps --delay-ms milliseconds
# (default 10) inside every read() call, and opens every file with
# direct_io so the kernel keeps no page cache for it: a second read() of
# the same bytes is exactly as slow as the first. (Not so for sendfile and
# splice: on Linux 6.x they go through the page cache even for direct_io
# FUSE files, and those pages last until the file is next opened; see
# residency.md. run.sh keeps files cold by never sending one file twice.)
# It runs multithreaded, so parallel reads overlap (each sleeps on its
# own), the way a disk with a queue serves several requests at once.
#
# Used by tests/bench/slowdisk/run.sh (the disk-bound benchmark), by
# tests/bench/slowdisk/probe.c (the residency probe) and by the tests'
# slow-disk fixture (tests/src/slow_disk.rs). Needs Debian's fuse3
# and python3-fusepy (run it with Debian's /usr/bin/python3; fusepy loads
# libfuse 2, fuse3 provides fusermount3), /dev/fuse, root for allow_other.
#
# Usage: slowfs.py SOURCE MOUNTPOINT [--delay-ms N] [--allow-other]
#                  [--max-read BYTES] [--page-cache] [--stats FILE]
# Stays in the foreground (the caller holds its PID); on SIGTERM or SIGINT
# libfuse's handler ends the session and unmounts (then, if the mount is
# somehow still there, `fusermount3 -u MOUNTPOINT`), and it exits.
import argparse
import errno
import os
import signal
import subprocess
import sys
import threading
import time

try:
    # Debian's python3-fusepy installs the module as "fusepy"; pip's as "fuse".
    from fusepy import FUSE, FuseOSError, Operations
except ImportError:
    try:
        from fuse import FUSE, FuseOSError, Operations
    except ImportError:
        FUSE = None
if FUSE is None:
    sys.stderr.write("slowfs.py: python3-fusepy missing (apt-get install fuse3 python3-fusepy)\n")
    sys.exit(2)


class SlowFS(Operations):
    def __init__(self, root, delay_s, gate=None):
        self.root = os.path.realpath(root)
        self.delay_s = delay_s
        # (file name, gate path): the first read of that file waits until
        # the gate path exists (a test's "stuck read"); None for no gate.
        self.gate = gate
        self.gate_taken = False
        self._mu = threading.Lock()  # not "lock": that name is a FUSE operation
        self.reads = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.bytes = 0

    def _full(self, path):
        # fusepy paths are absolute within the mount; the kernel already
        # resolved '..' before they get here, so joining stays beneath root.
        p = os.path.join(self.root, path.lstrip("/"))
        return p

    # --- metadata -----------------------------------------------------------
    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self._full(path))
        except OSError as e:
            raise FuseOSError(e.errno)
        d = {k: getattr(st, k) for k in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
            "st_atime", "st_mtime", "st_ctime")}
        # Report the writable bits off: it is a read-only mirror.
        d["st_mode"] &= ~0o222
        return d

    def readdir(self, path, fh):
        try:
            return [".", ".."] + os.listdir(self._full(path))
        except OSError as e:
            raise FuseOSError(e.errno)

    def readlink(self, path):
        try:
            return os.readlink(self._full(path))
        except OSError as e:
            raise FuseOSError(e.errno)

    def statfs(self, path):
        st = os.statvfs(self._full(path))
        return {k: getattr(st, k) for k in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
            "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def access(self, path, mode):
        if mode & os.W_OK:
            raise FuseOSError(errno.EROFS)
        if not os.access(self._full(path), mode):
            raise FuseOSError(errno.EACCES)

    # --- files --------------------------------------------------------------
    def open(self, path, flags):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise FuseOSError(errno.EROFS)
        try:
            return os.open(self._full(path), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise FuseOSError(e.errno)

    def read(self, path, size, offset, fh):
        with self._mu:
            self.reads += 1
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight
        try:
            time.sleep(self.delay_s)
            if self.gate is not None and os.path.basename(path) == self.gate[0]:
                with self._mu:
                    first = not self.gate_taken
                    self.gate_taken = True
                while first and not os.path.exists(self.gate[1]):
                    time.sleep(0.01)
            data = os.pread(fh, size, offset)
            with self._mu:
                self.bytes += len(data)
            return data
        except OSError as e:
            raise FuseOSError(e.errno)
        finally:
            with self._mu:
                self.in_flight -= 1

    def release(self, path, fh):
        os.close(fh)
        return 0

    # Everything that writes is refused.
    def _rofs(self, *a, **k):
        raise FuseOSError(errno.EROFS)
    write = create = unlink = mkdir = rmdir = rename = chmod = chown = _rofs
    truncate = symlink = link = utimens = _rofs


def main():
    ap = argparse.ArgumentParser(description="read-only FUSE mirror that sleeps in every read")
    ap.add_argument("source")
    ap.add_argument("mountpoint")
    ap.add_argument("--delay-ms", type=float, default=10.0,
                    help="milliseconds slept in every read (default 10)")
    ap.add_argument("--allow-other", action="store_true",
                    help="let other users (nginx's www-data) read the mount; needs root "
                         "or user_allow_other in /etc/fuse.conf")
    ap.add_argument("--page-cache", action="store_true",
                    help="for the residency probe only: no direct_io, so the kernel "
                         "caches pages as for an ordinary FUSE or network filesystem")
    ap.add_argument("--stats", metavar="FILE",
                    help="rewrite FILE every 0.2 s with 'reads N bytes B max_in_flight M' "
                         "(how run.sh checks that every byte served came through the slow path)")
    ap.add_argument("--gate", metavar="NAME=PATH",
                    help="the first read of the file named NAME waits until PATH exists "
                         "(for the tests: a read stuck in the filesystem)")
    ap.add_argument("--max-read", type=int, default=131072,
                    help="largest read the kernel sends in one request (default 128 KiB)")
    args = ap.parse_args()

    gate = tuple(args.gate.split("=", 1)) if args.gate else None
    fs = SlowFS(args.source, args.delay_ms / 1000.0, gate)
    mnt = os.path.realpath(args.mountpoint)

    # SIGTERM and SIGINT are left at SIG_DFL so that libfuse installs its
    # own handlers: they end the session loop, FUSE() returns and libfuse
    # unmounts. (A Python handler would never run: the main thread sits in
    # fuse_main inside ctypes.) If the mount is still there after that, we
    # unmount it with fusermount3 -u ourselves.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)

    if args.stats:
        def write_stats():
            # Leave SIGTERM and SIGINT to the main thread, where libfuse's
            # handler interrupts the session loop; delivered here, they
            # would end the session only at the next FUSE request.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
            while True:
                with fs._mu:
                    line = "reads %d bytes %d max_in_flight %d\n" % (
                        fs.reads, fs.bytes, fs.max_in_flight)
                tmp = args.stats + ".tmp"
                with open(tmp, "w") as f:
                    f.write(line)
                os.replace(tmp, args.stats)
                time.sleep(0.2)
        threading.Thread(target=write_stats, daemon=True).start()

    t0 = time.time()
    # direct_io: the kernel bypasses its page cache for these files, so
    # each read() reaches us (and sleeps) every time. kernel_cache off.
    FUSE(fs, mnt, foreground=True, nothreads=False, ro=True,
         allow_other=args.allow_other, direct_io=not args.page_cache, max_read=args.max_read,
         fsname="slowfs", subtype="slowfs", default_permissions=True)
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", mnt], check=False, timeout=10)
    sys.stderr.write("slowfs.py: unmounted %s after %.1f s; %d reads, %d bytes, at most %d at once\n"
                     % (mnt, time.time() - t0, fs.reads, fs.bytes, fs.max_in_flight))


if __name__ == "__main__":
    main()
