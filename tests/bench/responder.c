/* A bare epoll HTTP responder: the floor that tests/bench/run.sh compares
 * the servers' CPU time per request against on the small-file workloads,
 * and, with --cgi, on the CGI workload.
 *
 * Usage: responder BODY_FILE   (listens on 127.0.0.1, a free port, and
 *                               prints "listening on http://127.0.0.1:PORT/")
 *        responder --cgi SCRIPT
 *
 * One process, one epoll set, level-triggered. It accepts, reads, and for
 * every request head it sees (bytes ending in \r\n\r\n, counted across
 * reads, so pipelined heads are each answered) writes one fixed keep-alive
 * response: 200, Content-Length, the body read from BODY_FILE at start (at
 * most 64 KiB). It parses nothing else: any method, any path, no bodies.
 *
 * With --cgi, each response is made by running SCRIPT once: posix_spawn
 * with a minimal CGI environment and its stdout on a pipe, read to the
 * end, waitpid, then 200 with Content-Length, the script's header lines
 * and its body (at most 64 KiB of output). The script runs while the loop
 * waits for it: on one CPU that costs nothing, the script being the work.
 * What this leaves out (the request's meta-variables, a status line from
 * the script, time limits, streaming) makes it a floor for the CPU a
 * server needs to run a script per request, not a CGI server.
 * Built by run.sh with gcc -O2. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
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
static const char *cgi_script;   /* --cgi: the script run for each response */

static int again(void) { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }
static void want(int ep, int fd, int out) {   /* EPOLLOUT only while a write is stuck */
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.fd = fd };
    if (c[fd].out != out) { c[fd].out = (unsigned char)out; epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev); }
}

static void drop(int ep, int fd) { epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL); close(fd); memset(&c[fd], 0, sizeof c[fd]); }

/* --cgi: runs the script once and makes resp from its output; -1 on failure. */
static int run_script(void) {
    static char out[65536];
    char *argv[] = { (char *)cgi_script, NULL };
    char *env[] = { "GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=GET",
                    "SERVER_PROTOCOL=HTTP/1.1", "PATH=/usr/local/bin:/usr/bin:/bin", NULL };
    int p[2];
    if (pipe2(p, O_CLOEXEC)) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    pid_t pid;
    int err = posix_spawn(&pid, cgi_script, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (!err && len < sizeof out && (n = read(p[0], out + len, sizeof out - len)) != 0) {
        if (n < 0) { if (errno == EINTR) continue; break; }
        len += (size_t)n;
    }
    close(p[0]);
    int status = 0;
    if (!err) while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (err || !WIFEXITED(status) || WEXITSTATUS(status)) return -1;
    /* The script's header block ends at its first blank line. */
    size_t h = 0, skip = 0;
    for (; h + 1 < len; h++) {
        if (out[h] == '\n' && out[h + 1] == '\n') { skip = 2; break; }
        if (h + 3 < len && !memcmp(out + h, "\r\n\r\n", 4)) { skip = 4; break; }
    }
    if (!skip) return -1;
    size_t body = h + skip;
    resp_len = (size_t)snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nServer: responder\r\n"
        "Content-Length: %zu\r\n%.*s\r\n\r\n", len - body, (int)h, out);
    memcpy(resp + resp_len, out + body, len - body);
    resp_len += len - body;
    return 0;
}

/* Write the responses owed; 0 while the connection lives, -1 when it is gone.
 * With --cgi, a response is made (the script run) as it starts, so one
 * buffer serves: a response cut short by a full socket is finished
 * (waiting for room with poll, at most 10 s) before the loop moves on. */
static int flush(int ep, int fd) {
    while (c[fd].owed) {
        if (cgi_script && c[fd].off == 0 && run_script()) return -1;
        ssize_t n = write(fd, resp + c[fd].off, resp_len - c[fd].off);
        if (n < 0) {
            if (!again()) return -1;
            if (cgi_script) {   /* finish this response first */
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                if (poll(&p, 1, 10000) <= 0) return -1;   /* a client that stopped reading */
                continue;
            }
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
    if (argc == 3 && !strcmp(argv[1], "--cgi")) {
        cgi_script = argv[2];
        if (run_script()) { fprintf(stderr, "responder: %s did not run or printed no header block\n", argv[2]); return 1; }
    }
    FILE *f = argc == 2 ? fopen(argv[1], "rb") : NULL;
    if (!f && !cgi_script) { fprintf(stderr, "usage: responder BODY_FILE | responder --cgi SCRIPT\n"); return 2; }
    size_t blen = f ? fread(body, 1, sizeof body, f) : 0;
    if (f) fclose(f);
    if (!cgi_script) resp_len = (size_t)snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nServer: responder\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n", blen);
    if (!cgi_script) { memcpy(resp + resp_len, body, blen); resp_len += blen; }

    signal(SIGPIPE, SIG_IGN);   /* a client gone is an error from write */
    /* Close-on-exec everywhere: a script gets its stdout pipe, nothing else. */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4096) ||
        getsockname(ls, (struct sockaddr *)&a, &alen)) { perror("responder: listen"); return 1; }
    printf("listening on http://127.0.0.1:%d/\n", ntohs(a.sin_port));
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = ls }, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int s;
                while ((s = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
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
