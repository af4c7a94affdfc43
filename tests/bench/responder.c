/* A bare epoll HTTP responder: the floor that tests/bench/run.sh compares
 * the servers' CPU time per request against on the small-file workloads.
 *
 * Usage: responder BODY_FILE   (listens on 127.0.0.1, a free port, and
 *                               prints "listening on http://127.0.0.1:PORT/")
 *
 * One process, one epoll set, level-triggered. It accepts, reads, and for
 * every request head it sees (bytes ending in \r\n\r\n, counted across
 * reads, so pipelined heads are each answered) writes one fixed keep-alive
 * response: 200, Content-Length, the body read from BODY_FILE at start (at
 * most 64 KiB). It parses nothing else: any method, any path, no bodies.
 * Built by run.sh with gcc -O2. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAXFD 65536
static char resp[70000];
static size_t resp_len;
static struct { unsigned char match, out; unsigned long owed; size_t off; } c[MAXFD];

static int again(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }
static void want(int ep, int fd, int out) {   /* EPOLLOUT only while a write is stuck */
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.fd = fd };
    if (c[fd].out != out) { c[fd].out = (unsigned char)out; epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev); }
}

static void drop(int ep, int fd) { epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); close(fd); memset(&c[fd], 0, sizeof c[fd]); }

/* Write the responses owed; 0 while the connection lives, -1 when it is gone. */
static int flush(int ep, int fd) {
    while (c[fd].owed) {
        ssize_t n = write(fd, resp + c[fd].off, resp_len - c[fd].off);
        if (n < 0) {
            if (!again()) return -1;
            want(ep, fd, 1);
            return 0;
        }
        c[fd].off += (size_t)n;
        if (c[fd].off == resp_len) { c[fd].off = 0; c[fd].owed--; }
    }
    want(ep, fd, 0);
    return 0;
}

int main(int argc, char **argv) {
    static char body[65536], buf[65536];
    FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
    if (!f) { fprintf(stderr, "usage: responder BODY_FILE\n"); return 2; }
    size_t blen = fread(body, 1, sizeof body, f);
    fclose(f);
    resp_len = (size_t)snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nServer: responder\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n", blen);
    memcpy(resp + resp_len, body, blen);
    resp_len += blen;

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096) ||
        getsockname(ls, (struct sockaddr *)&a, &alen)) { perror("responder: listen"); return 1; }
    printf("listening on http://127.0.0.1:%d/\n", ntohs(a.sin_port));
    fflush(stdout);

    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int s;
                while ((s = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (s >= MAXFD) { close(s); continue; }
                    struct epoll_event e = { .events = EPOLLIN, .data.fd = s };
                    epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
                }
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r == 0 || (r < 0 && !again())) { drop(ep, fd); continue; }
                for (ssize_t j = 0; j < r; j++) {   /* count \r\n\r\n across reads */
                    unsigned char m = c[fd].match, ch = (unsigned char)buf[j];
                    if (ch == (m % 2 ? '\n' : '\r')) m++; else m = ch == '\r';
                    if (m == 4) { c[fd].owed++; m = 0; }
                    c[fd].match = m;
                }
            }
            if (flush(ep, fd) < 0) drop(ep, fd);
        }
    }
}
