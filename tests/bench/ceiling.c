/*
 * ceiling: the reference ceiling for herd's benchmarks. The least a libev
 * line server can do: read into one scratch buffer, count lines, queue one
 * AT-sized reply per line, write each connection's output once per loop
 * iteration (ev_prepare), exactly like herd's worker batches. No parsing,
 * no storing, no logging. Listens on 127.0.0.1 only.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "net.h"

#define READ_CHUNK (64 * 1024)
#define OUT_MAX    (64 * 1024 * 1024)
#define OUT_KEEP   (16 * 1024)

/* As long as a typical herd reply to the loadgen's IAMAT lines. */
static const char REPLY[] =
    "AT Riley +0.000123456 c0-1234567 +34.068930-118.445127 1700000000.123456789\n";

struct cconn {
    int           fd;
    ev_io         rio, wio;
    struct buf    out;
    int           dirty;
    int           closed;
    struct cconn *next_dirty;
    struct cconn *next_dead;
};

static struct ev_loop *loop;
static struct cconn   *dirty_list;
static struct cconn   *dead_list;
static char            scratch[READ_CHUNK];

static void cconn_close(struct cconn *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    close(c->fd);
    c->next_dead = dead_list;
    dead_list = c;
}

static void mark_dirty(struct cconn *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->next_dirty = dirty_list;
    dirty_list = c;
}

static size_t count_lines(const char *p, size_t len)
{
    size_t n = 0;
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        n++;
        p = nl + 1;
    }
    return n;
}

static void on_read(struct ev_loop *l, ev_io *io, int revents)
{
    struct cconn *c = io->data;
    (void)l;
    (void)revents;
    ssize_t n = read(c->fd, scratch, sizeof scratch);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        cconn_close(c);
        return;
    }
    if (n < 0)
        return;
    size_t lines = count_lines(scratch, (size_t)n);
    for (size_t i = 0; i < lines; i++) {
        if (buf_append(&c->out, REPLY, sizeof REPLY - 1, OUT_MAX) < 0) {
            cconn_close(c);
            return;
        }
    }
    if (lines > 0)
        mark_dirty(c);
}

static void try_write(struct cconn *c)
{
    while (buf_len(&c->out) > 0) {
        ssize_t n = write(c->fd, buf_head(&c->out), buf_len(&c->out));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                ev_io_start(loop, &c->wio);
                return;
            }
            cconn_close(c);
            return;
        }
        buf_consume(&c->out, (size_t)n, OUT_KEEP);
    }
    ev_io_stop(loop, &c->wio);
}

static void on_write(struct ev_loop *l, ev_io *io, int revents)
{
    (void)l;
    (void)revents;
    try_write(io->data);
}

static void on_prepare(struct ev_loop *l, ev_prepare *p, int revents)
{
    (void)l;
    (void)p;
    (void)revents;
    while (dirty_list) {
        struct cconn *c = dirty_list;
        dirty_list = c->next_dirty;
        c->dirty = 0;
        if (!c->closed)
            try_write(c);
    }
    while (dead_list) {
        struct cconn *c = dead_list;
        dead_list = c->next_dead;
        buf_free(&c->out);
        free(c);
    }
}

static void on_accept(struct ev_loop *l, ev_io *io, int revents)
{
    (void)revents;
    for (int i = 0; i < 64; i++) {
        char peer[64];
        int fd = net_accept(io->fd, peer, sizeof peer);
        if (fd < 0)
            return;
        struct cconn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        ev_io_init(&c->rio, on_read, fd, EV_READ);
        ev_io_init(&c->wio, on_write, fd, EV_WRITE);
        c->rio.data = c->wio.data = c;
        ev_io_start(l, &c->rio);
    }
}

static void on_term(struct ev_loop *l, ev_signal *s, int revents)
{
    (void)s;
    (void)revents;
    ev_break(l, EVBREAK_ALL);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ceiling [--port P]\n"
               "The reference line server: one AT-sized line per line read.\n"
               "Listens on 127.0.0.1:P (0, the default, picks a free port) and\n"
               "prints \"LISTENING <port>\" once it accepts connections.\n");
}

static int parse_port(int argc, char **argv, uint16_t *port)
{
    static const struct option longopts[] = {
        { "port", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int ch;
    *port = 0;
    while ((ch = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
        char *end;
        long v;
        switch (ch) {
        case 'p':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < 0 || v > 65535)
                return -1;
            *port = (uint16_t)v;
            break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static int bound_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if (getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        return -1;
    return ntohs(sin.sin_port);
}

int main(int argc, char **argv)
{
    uint16_t port;
    char err[256];
    if (parse_port(argc, argv, &port) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = net_tcp_listen("127.0.0.1", port, 1024, err, sizeof err);
    if (lfd < 0) {
        fprintf(stderr, "ceiling: %s\n", err);
        return 1;
    }
    loop = ev_default_loop(EVFLAG_AUTO);
    ev_io lio;
    ev_prepare prep;
    ev_signal sterm, sint;
    ev_io_init(&lio, on_accept, lfd, EV_READ);
    ev_io_start(loop, &lio);
    ev_prepare_init(&prep, on_prepare);
    ev_prepare_start(loop, &prep);
    ev_signal_init(&sterm, on_term, SIGTERM);
    ev_signal_start(loop, &sterm);
    ev_signal_init(&sint, on_term, SIGINT);
    ev_signal_start(loop, &sint);
    printf("LISTENING %d\n", bound_port(lfd));
    fflush(stdout);
    ev_run(loop, 0);
    close(lfd);
    return 0;
}
