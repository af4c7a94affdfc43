/* probe.c: what can a server trust about page-cache residency, per
 * filesystem? For each FILE given, this prints (one "key: value" line each):
 *
 *   statfs f_type (to recognise ext4, tmpfs, FUSE, NFS...)
 *   (a) mincore() over a MAP_SHARED mapping of the file: just after open,
 *       after posix_fadvise(DONTNEED), after reading the whole file
 *   (b) preadv2(..., RWF_NOWAIT) of one 64 KiB window: after DONTNEED (cold)
 *       and after the read (warm): bytes returned or errno, and how long
 *   (c) sendfile() of 1 MiB to /dev/null after DONTNEED (cold) and again
 *       (warm): how long it took (a blocked event loop would wait that long)
 *   (d) posix_fadvise(WILLNEED) and readahead() after DONTNEED: how long the
 *       call itself took and what mincore says straight after and 300 ms on
 *
 * Used by tests/bench/slowdisk/residency.md. Build and run:
 *   gcc -O2 -Wall -o /tmp/probe tests/bench/slowdisk/probe.c
 *   /tmp/probe FILE...
 * Only reads the files. Each file should be a few MiB; the probe reads at
 * most 16 MiB of it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

#define WINDOW (64 * 1024)
#define CAP (16L * 1024 * 1024)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *fs_name(long t)
{
    switch ((unsigned long)t) {
    case 0xEF53: return "ext2/3/4";
    case 0x01021994: return "tmpfs";
    case 0x65735546: return "fuse";
    case 0x6969: return "nfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    case 0xFF534D42: return "cifs";
    case 0x01021997: return "9p (v9fs)";
    default: return "other";
    }
}

/* mincore over the whole mapping: "R/N pages resident" or the error. */
static void residency(const char *label, int fd, off_t size)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t n = (size + pg - 1) / pg, r = 0;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        printf("  %s: mmap(MAP_SHARED) failed: %s\n", label, strerror(errno));
        m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            printf("  %s: mmap(MAP_PRIVATE) failed too: %s\n", label, strerror(errno));
            return;
        }
        printf("  %s: (using MAP_PRIVATE)\n", label);
    }
    unsigned char *vec = malloc(n);
    if (mincore(m, size, vec) != 0) {
        printf("  %s: mincore failed: %s\n", label, strerror(errno));
    } else {
        for (size_t i = 0; i < n; i++)
            r += vec[i] & 1;
        printf("  %s: mincore %zu/%zu pages resident\n", label, r, n);
    }
    free(vec);
    munmap(m, size);
}

static void drop(const char *label, int fd)
{
    int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    if (e)
        printf("  %s: fadvise(DONTNEED) = %s\n", label, strerror(e));
}

static void nowait(const char *label, int fd, off_t off)
{
    static char buf[WINDOW];
    struct iovec iov = { buf, sizeof buf };
    double t = now_ms();
    ssize_t r = preadv2(fd, &iov, 1, off, RWF_NOWAIT);
    int e = errno;
    t = now_ms() - t;
    if (r < 0)
        printf("  %s: preadv2(RWF_NOWAIT, 64 KiB @%lld) = -1 %s in %.2f ms\n",
               label, (long long)off, e == EAGAIN ? "EAGAIN" : e == EOPNOTSUPP ? "EOPNOTSUPP" : strerror(e), t);
    else
        printf("  %s: preadv2(RWF_NOWAIT, 64 KiB @%lld) = %zd bytes in %.2f ms\n",
               label, (long long)off, r, t);
}

static void send_timed(const char *label, int fd, off_t size)
{
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    off_t off = 0, want = size < 1024 * 1024 ? size : 1024 * 1024;
    double t = now_ms();
    ssize_t total = 0;
    while (total < want) {
        ssize_t r = sendfile(out, fd, &off, want - total);
        if (r <= 0) {
            if (r < 0)
                printf("  %s: sendfile error %s\n", label, strerror(errno));
            break;
        }
        total += r;
    }
    t = now_ms() - t;
    printf("  %s: sendfile %zd bytes to /dev/null in %.1f ms\n", label, total, t);
    close(out);
}

static void read_all(int fd, off_t size)
{
    static char buf[1 << 20];
    off_t off = 0;
    while (off < size) {
        ssize_t r = pread(fd, buf, sizeof buf, off);
        if (r <= 0)
            break;
        off += r;
    }
}

static void probe(const char *path)
{
    struct statfs sf;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || fstatfs(fd, &sf) != 0) {
        printf("%s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    off_t size = st.st_size < CAP ? st.st_size : CAP;
    printf("%s\n  statfs f_type: 0x%lx (%s), size %lld\n", path,
           (unsigned long)sf.f_type, fs_name(sf.f_type), (long long)st.st_size);

    /* (a) */
    residency("a1 just after open", fd, size);
    drop("a2", fd);
    residency("a2 after fadvise(DONTNEED)", fd, size);
    /* (b) cold */
    nowait("b1 cold", fd, 0);
    /* (c) cold */
    drop("c1", fd);
    send_timed("c1 cold", fd, size);
    /* (a3) warm */
    drop("a3", fd);
    double t = now_ms();
    read_all(fd, size);
    printf("  a3: read of %lld bytes took %.1f ms\n", (long long)size, now_ms() - t);
    residency("a3 after reading it", fd, size);
    /* (b) warm */
    nowait("b2 warm", fd, 0);
    nowait("b3 warm, last window", fd, size > WINDOW ? size - WINDOW : 0);
    /* (c) warm */
    send_timed("c2 just after a full read", fd, size);
    send_timed("c3 again, same descriptor", fd, size);
    residency("c3 after two sendfiles", fd, size);

    /* (d) WILLNEED */
    drop("d1", fd);
    t = now_ms();
    int e = posix_fadvise(fd, 0, size, POSIX_FADV_WILLNEED);
    printf("  d1: fadvise(WILLNEED) = %s in %.2f ms\n", e ? strerror(e) : "0", now_ms() - t);
    residency("d1 straight after", fd, size);
    usleep(300 * 1000);
    residency("d1 300 ms later", fd, size);
    nowait("d1 300 ms later", fd, 0);
    /* (d) readahead() */
    drop("d2", fd);
    t = now_ms();
    ssize_t r = readahead(fd, 0, size);
    e = errno;
    printf("  d2: readahead() = %zd%s%s in %.2f ms\n", r, r < 0 ? " " : "",
           r < 0 ? strerror(e) : "", now_ms() - t);
    residency("d2 straight after", fd, size);
    usleep(300 * 1000);
    residency("d2 300 ms later", fd, size);
    nowait("d2 300 ms later", fd, 0);
    close(fd);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++)
        probe(argv[i]);
    return 0;
}
