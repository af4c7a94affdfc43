/* hs_client: full TLS handshakes per second for tests/bench/tls/run.sh.
 *
 * Keeps CONC connections to 127.0.0.1:PORT going at once (one epoll loop,
 * one thread). Each connection: TCP connect, a full TLS 1.3 handshake
 * (X25519, TLS_AES_128_GCM_SHA256, SNI "localhost"), one
 * `GET PATH HTTP/1.1` with `Connection: close`, the whole 200 response
 * (Content-Length) read, close_notify sent, the socket closed; then a new
 * connection takes its place. Runs for SECONDS (or until COUNT
 * connections have completed, with -n).
 *
 * Never resumes: every connection gets a new SSL object from a context
 * with the client session cache off and no session ever set on it, so it
 * offers no PSK; each completed connection is checked with
 * SSL_session_reused() and the count of reused ones is printed (it must
 * be 0). The certificate chain is not verified (SSL_VERIFY_NONE), but the
 * server's CertificateVerify signature is, as in any TLS 1.3 handshake.
 *
 * Prints one line:
 *   done N errors E reused R secs S rate X version V cipher C group G [first_error ...]
 *
 * Usage: hs_client PORT PATH CONC SECONDS [-n COUNT]
 * Build: gcc -O2 -o hs_client hs_client.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECT, ST_HANDSHAKE, ST_WRITE, ST_READ };

struct conn {
    int fd;
    SSL *ssl;
    int state;
    char head[8192];
    size_t head_len;
    long body_left;   /* -1 until the head is complete */
    size_t req_off;
};

static SSL_CTX *ctx;
static int ep, port;
static char req[512];
static size_t req_len;
static long done, errors, reused, limit_count;
static char first_error[256];
static char version[32] = "?", cipher[64] = "?", group[32] = "?";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void note_error(const char *what) {
    errors++;
    if (!first_error[0]) {
        unsigned long e = ERR_peek_error();
        char buf[160] = "";
        if (e) ERR_error_string_n(e, buf, sizeof buf);
        snprintf(first_error, sizeof first_error, "%s%s%s%s", what,
                 errno ? ": " : "", errno ? strerror(errno) : "", buf[0] ? buf : "");
    }
    ERR_clear_error();
}

static void arm(struct conn *c, unsigned ev) {
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0) epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

static void start(struct conn *c) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) { perror("socket"); exit(2); }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set_connect_state(c->ssl);
    c->head_len = 0;
    c->body_left = -1;
    c->req_off = 0;
    c->state = ST_CONNECT;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        note_error("connect");
        close(c->fd);
        SSL_free(c->ssl);
        c->fd = -1;
        return;
    }
    arm(c, EPOLLOUT);
}

static void finish(struct conn *c, int ok) {
    if (ok) {
        done++;
        if (SSL_session_reused(c->ssl)) reused++;
        if (done == 1) {
            snprintf(version, sizeof version, "%s", SSL_get_version(c->ssl));
            snprintf(cipher, sizeof cipher, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
            int nid = SSL_get_negotiated_group(c->ssl);
            const char *g = OBJ_nid2sn(nid & ~TLSEXT_nid_unknown);
            snprintf(group, sizeof group, "%s", g ? g : "?");
        }
        SSL_shutdown(c->ssl);   /* close_notify; we do not wait for the peer's */
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    SSL_free(c->ssl);
    c->fd = -1;
    c->ssl = NULL;
}

/* The head is complete in c->head[0..n): status 200 and Content-Length. */
static int parse_head(struct conn *c, size_t end) {
    if (c->head_len < 12 || memcmp(c->head, "HTTP/1.1 200", 12) != 0) return -1;
    c->head[end] = 0;
    char *p = strcasestr(c->head, "\r\ncontent-length:");
    if (!p) return -1;
    long len = strtol(p + 17, NULL, 10);
    long have = (long)(c->head_len - (end + 4));
    c->body_left = len - have;
    return 0;
}

/* Moves c along as far as it goes without blocking. */
static void drive(struct conn *c) {
    for (;;) {
        int r = 0, err;
        switch (c->state) {
        case ST_CONNECT: {
            int soerr = 0;
            socklen_t l = sizeof soerr;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
            if (soerr) { errno = soerr; note_error("connect"); finish(c, 0); return; }
            c->state = ST_HANDSHAKE;
            continue;
        }
        case ST_HANDSHAKE:
            r = SSL_do_handshake(c->ssl);
            if (r == 1) { c->state = ST_WRITE; continue; }
            break;
        case ST_WRITE:
            r = SSL_write(c->ssl, req + c->req_off, (int)(req_len - c->req_off));
            if (r > 0) {
                c->req_off += r;
                if (c->req_off == req_len) c->state = ST_READ;
                continue;
            }
            break;
        case ST_READ: {
            char buf[65536];
            r = SSL_read(c->ssl, buf, sizeof buf);
            if (r > 0) {
                if (c->body_left < 0) {
                    size_t take = (size_t)r;
                    if (take > sizeof c->head - 1 - c->head_len) take = sizeof c->head - 1 - c->head_len;
                    memcpy(c->head + c->head_len, buf, take);
                    c->head_len += take;
                    c->head[c->head_len] = 0;
                    char *e = strstr(c->head, "\r\n\r\n");
                    if (!e) {
                        if (c->head_len >= sizeof c->head - 1) { errno = 0; note_error("head too long"); finish(c, 0); return; }
                        continue;
                    }
                    if (parse_head(c, (size_t)(e - c->head)) < 0) {
                        errno = 0;
                        note_error("not a 200 with Content-Length");
                        finish(c, 0);
                        return;
                    }
                    c->body_left -= (long)(r - take);
                } else {
                    c->body_left -= r;
                }
                if (c->body_left == 0) { finish(c, 1); return; }
                if (c->body_left < 0) { errno = 0; note_error("body longer than Content-Length"); finish(c, 0); return; }
                continue;
            }
            break;
        }
        }
        err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ) { arm(c, EPOLLIN); return; }
        if (err == SSL_ERROR_WANT_WRITE) { arm(c, EPOLLOUT); return; }
        if (err == SSL_ERROR_SYSCALL && errno == 0) errno = ECONNRESET;
        note_error(c->state == ST_HANDSHAKE ? "handshake" : c->state == ST_WRITE ? "write" : "read");
        finish(c, 0);
        return;
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: hs_client PORT PATH CONC SECONDS [-n COUNT]\n");
        return 2;
    }
    port = atoi(argv[1]);
    int conc = atoi(argv[3]);
    double secs = atof(argv[4]);
    if (argc >= 7 && strcmp(argv[5], "-n") == 0) limit_count = atol(argv[6]);
    req_len = (size_t)snprintf(req, sizeof req,
                               "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", argv[2]);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1 ||
        SSL_CTX_set1_groups_list(ctx, "X25519") != 1) {
        fprintf(stderr, "hs_client: cannot set the suite or the group\n");
        return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *cs = calloc((size_t)conc, sizeof *cs);
    double t0 = now(), deadline = t0 + secs;
    for (int i = 0; i < conc; i++) start(&cs[i]);
    struct epoll_event evs[256];
    while (now() < deadline && (!limit_count || done < limit_count)) {
        int n = epoll_wait(ep, evs, 256, 50);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd >= 0) drive(c);
        }
        for (int i = 0; i < conc; i++) {
            if (cs[i].fd < 0 && now() < deadline && (!limit_count || done < limit_count))
                start(&cs[i]);
        }
        if (errors > 1000 && done == 0) break;
    }
    double el = now() - t0;
    printf("done %ld errors %ld reused %ld secs %.3f rate %.1f version %s cipher %s group %s%s%s\n",
           done, errors, reused, el, done / el, version, cipher, group,
           first_error[0] ? " first_error " : "", first_error);
    return 0;
}
