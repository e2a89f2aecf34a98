/*
 * loadgen: the load generator of herd's benchmarks, one libev loop. Closed
 * loop (N connections, D requests in flight on each) or open loop (a fixed
 * total rate) of IAMAT lines with distinct client IDs, WHATSAT for one client
 * (Places cache hits), "hold K idle connections, then time a fresh client",
 * and a probe that plays a herd neighbour and times flooded AT lines. Latency
 * goes into fixed log-linear buckets (bounded memory, ~1.6% resolution);
 * the result is one JSON line on stdout. Targets 127.0.0.1 only.
 * loadgen/opts.c reads the command line, loadgen/wire.c writes and reads the
 * lines' text; this file owns the loop, the connections and the figures.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "buf.h"
#include "hist.h"
#include "net.h"
#include "loadgen/opts.h"
#include "loadgen/wire.h"

#define HOST          "127.0.0.1"
#define READ_CHUNK    (64 * 1024)
#define IN_MAX        (1024 * 1024)
#define OUT_MAX       (64 * 1024 * 1024)
#define OPEN_RING     4096 /* open loop: requests in flight per connection */
#define HOLD_INFLIGHT 256  /* idle mode: connects in progress at once */

enum role { ROLE_LOAD, ROLE_HOLD, ROLE_PROBE };

/* ---- connections and global state ---- */

struct lconn {
    int           fd;
    enum role     role;
    ev_io         rio, wio;
    struct buf    in, out;
    uint64_t     *sent;       /* send times of requests in flight (ring) */
    uint32_t      ring_mask;
    uint32_t      head, tail; /* in flight: tail - head */
    uint64_t      done;       /* replies received */
    uint64_t      connect_ns;
    unsigned      connecting : 1;
    unsigned      closed : 1;
    unsigned      dirty : 1;
    unsigned      in_reply : 1;   /* whatsat: inside a multi-line reply */
    unsigned      setup_reply : 1; /* the next reply answers the setup IAMAT */
    unsigned      linked : 1;     /* probe: handshake finished */
    struct lconn *next_dirty;
};

static struct {
    struct lg_opts  o;
    struct ev_loop *loop;
    struct lconn  **conns;
    size_t          nconns;
    struct lconn   *dirty;
    struct hist     lat;
    struct hist     first; /* idle mode: connect to first reply */
    struct hist     herd;  /* probe: from the first server's receipt to the probe */
    uint64_t        t0, t_measure, t_end;
    uint64_t        next_id;
    uint64_t        sent, replies, measured, errors, conn_errors, skipped;
    uint64_t        held, holding_started;
    size_t          rr;   /* open loop: next connection */
    int             stopping;
    int             sending;
    ev_timer        stop_timer, tick, linger_timer;
    ev_prepare      prep;
    char            rt[LG_TIME_MAX_LEN]; /* realtime "SEC.NSEC" of the current batch */
    size_t          rtlen;
    uint64_t        now;    /* monotonic ns of the current batch */
} g;

static char scratch[READ_CHUNK];

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Reads both clocks once for a batch of requests. */
static void refresh_clock(void)
{
    g.now = mono_ns();
    g.rtlen = lg_fmt_time(g.rt, real_ns());
}

/* ---- connections ---- */

static void on_read(struct ev_loop *loop, ev_io *io, int revents);
static void on_write(struct ev_loop *loop, ev_io *io, int revents);
static void finish(void);
static void hold_next(void);

static void mark_dirty(struct lconn *c)
{
    if (c->dirty || c->closed)
        return;
    c->dirty = 1;
    c->next_dirty = g.dirty;
    g.dirty = c;
}

static void conn_fail(struct lconn *c, const char *why)
{
    if (c->closed)
        return;
    fprintf(stderr, "loadgen: connection %d: %s\n", c->fd, why);
    c->closed = 1;
    ev_io_stop(g.loop, &c->rio);
    ev_io_stop(g.loop, &c->wio);
    close(c->fd);
    g.conn_errors++;
    if (!g.stopping && c->role == ROLE_HOLD)
        hold_next();
    for (size_t i = 0; i < g.nconns; i++)
        if (g.conns[i]->role == ROLE_LOAD && !g.conns[i]->closed)
            return;
    if (!g.stopping && g.o.mode != MODE_IDLE && g.o.mode != MODE_PROBE)
        finish(); /* nothing left to measure */
}

static int queue(struct lconn *c, const char *p, size_t len)
{
    if (buf_append(&c->out, p, len, OUT_MAX) < 0) {
        conn_fail(c, "output buffer full");
        return -1;
    }
    mark_dirty(c);
    return 0;
}

/* Queues one request and remembers when it left. SETUP: the IAMAT that
 * makes the WHATSAT client known. */
static int queue_line(struct lconn *c, int setup)
{
    char line[LG_LINE_MAX], id[LG_U64_MAX_LEN];
    size_t n;
    if (c->tail - c->head > c->ring_mask)
        return -1;
    if (g.o.mode == MODE_WHATSAT && !setup) {
        n = (size_t)snprintf(line, sizeof line, "WHATSAT %sw 10 5\n", g.o.prefix);
    } else {
        size_t idlen = g.o.mode == MODE_WHATSAT ? (id[0] = 'w', 1) : lg_fmt_u64(id, g.next_id++);
        n = lg_fmt_iamat(line, g.o.prefix, id, idlen, g.rt, g.rtlen);
    }
    c->sent[c->tail++ & c->ring_mask] = g.now;
    if (c->role == ROLE_LOAD && !setup)
        g.sent++;
    return queue(c, line, n);
}

static int queue_request(struct lconn *c) { return queue_line(c, 0); }

static int may_send(void)
{
    return g.sending && !g.stopping && (g.o.requests == 0 || g.sent < g.o.requests);
}

/* Closed loop: keeps DEPTH requests in flight. */
static void fill(struct lconn *c)
{
    while (!c->closed && c->tail - c->head < g.o.depth && may_send())
        if (queue_request(c) < 0)
            return;
}

static void got_reply(struct lconn *c, int ok)
{
    if (c->head == c->tail) {
        g.errors++; /* a reply nobody asked for */
        return;
    }
    uint64_t lat = g.now - c->sent[c->head++ & c->ring_mask];
    if (c->setup_reply) {
        c->setup_reply = 0;
        if (!ok)
            g.errors++;
        return;
    }
    if (c->done++ == 0 && g.o.mode == MODE_IDLE)
        hist_add(&g.first, g.now - c->connect_ns);
    g.replies++;
    if (!ok)
        g.errors++;
    if (g.now >= g.t_measure) {
        g.measured++;
        hist_add(&g.lat, lat);
    }
    if (g.o.requests > 0 && g.replies >= g.o.requests && !g.stopping)
        finish();
}

static void start_fresh_client(void);
static void probe_line(struct lconn *c, const char *line, size_t len);

static void hold_line(struct lconn *c)
{
    if (c->head == c->tail)
        return;
    c->head++;
    if (++g.held == g.o.idle) {
        fprintf(stderr, "loadgen: holding %u connections\n", g.o.idle);
        start_fresh_client();
    } else {
        hold_next();
    }
}

/* One line from a worker; a reply is one line, or for WHATSAT an AT line and
 * JSON up to an empty line. */
static void handle_line(struct lconn *c, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (c->role == ROLE_PROBE) {
        probe_line(c, line, len);
        return;
    }
    if (c->role == ROLE_HOLD) {
        hold_line(c);
        return;
    }
    if (g.o.mode == MODE_WHATSAT && !c->setup_reply) {
        if (c->in_reply) {
            if (len == 0) {
                c->in_reply = 0;
                got_reply(c, 1);
            }
            return;
        }
        if (len > 0 && line[0] == '?') {
            got_reply(c, 0);
            return;
        }
        c->in_reply = 1;
        return;
    }
    if (len == 0)
        return;
    got_reply(c, len > 3 && memcmp(line, "AT ", 3) == 0);
}

/* Hands every complete line to handle_line; keeps a partial one in c->in. */
static void process_input(struct lconn *c, const char *data, size_t len)
{
    if (buf_len(&c->in) > 0) {
        if (buf_append(&c->in, data, len, IN_MAX) < 0) {
            conn_fail(c, "line too long");
            return;
        }
        data = buf_head(&c->in);
        len = buf_len(&c->in);
    }
    size_t used = 0;
    while (used < len && !c->closed) {
        const char *nl = memchr(data + used, '\n', len - used);
        if (nl == NULL)
            break;
        handle_line(c, data + used, (size_t)(nl - (data + used)));
        used = (size_t)(nl - data) + 1;
    }
    if (c->closed)
        return;
    if (buf_len(&c->in) > 0) {
        buf_consume(&c->in, used, 64 * 1024);
    } else if (used < len && buf_append(&c->in, data + used, len - used, IN_MAX) < 0) {
        conn_fail(c, "out of memory");
    }
}

static void on_read(struct ev_loop *loop, ev_io *io, int revents)
{
    struct lconn *c = io->data;
    (void)loop;
    (void)revents;
    ssize_t n = read(c->fd, scratch, sizeof scratch);
    if (n == 0) {
        if (!g.stopping)
            conn_fail(c, "closed by the server");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_fail(c, strerror(errno));
        return;
    }
    refresh_clock();
    process_input(c, scratch, (size_t)n);
    if (c->role == ROLE_LOAD && g.o.rate == 0)
        fill(c);
}

static void try_write(struct lconn *c)
{
    while (buf_len(&c->out) > 0) {
        ssize_t n = write(c->fd, buf_head(&c->out), buf_len(&c->out));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                ev_io_start(g.loop, &c->wio);
                return;
            }
            conn_fail(c, strerror(errno));
            return;
        }
        buf_consume(&c->out, (size_t)n, 256 * 1024);
    }
    ev_io_stop(g.loop, &c->wio);
}

static void on_connected(struct lconn *c);

static void on_write(struct ev_loop *loop, ev_io *io, int revents)
{
    struct lconn *c = io->data;
    (void)loop;
    (void)revents;
    if (c->connecting) {
        char err[128];
        c->connecting = 0;
        ev_io_stop(g.loop, &c->wio);
        if (net_connect_result(c->fd, err, sizeof err) < 0) {
            conn_fail(c, err);
            return;
        }
        ev_io_start(g.loop, &c->rio);
        refresh_clock();
        on_connected(c);
    }
    if (!c->closed)
        try_write(c);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)loop;
    (void)p;
    (void)revents;
    while (g.dirty) {
        struct lconn *c = g.dirty;
        g.dirty = c->next_dirty;
        c->dirty = 0;
        if (!c->closed && !c->connecting)
            try_write(c);
    }
}

static uint32_t ring_size(enum role role)
{
    uint32_t want = role == ROLE_HOLD ? 1 : g.o.rate > 0 ? OPEN_RING : g.o.depth + 1;
    uint32_t n = 1;
    while (n < want)
        n *= 2;
    return n;
}

/* Starts a non-blocking connect to PORT; NULL when even that failed. */
static struct lconn *conn_open(uint16_t port, enum role role)
{
    char err[160];
    struct lconn *c = calloc(1, sizeof *c);
    struct lconn **all = realloc(g.conns, (g.nconns + 1) * sizeof *all);
    if (all)
        g.conns = all;
    uint32_t ring = ring_size(role);
    if (c)
        c->sent = calloc(ring, sizeof *c->sent);
    if (c == NULL || all == NULL || c->sent == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(1);
    }
    c->role = role;
    c->ring_mask = ring - 1;
    c->connect_ns = mono_ns();
    c->fd = net_tcp_connect(HOST, port, err, sizeof err);
    if (c->fd < 0) {
        fprintf(stderr, "loadgen: connect to %u: %s\n", (unsigned)port, err);
        free(c->sent);
        free(c);
        g.conn_errors++;
        return NULL;
    }
    ev_io_init(&c->rio, on_read, c->fd, EV_READ);
    ev_io_init(&c->wio, on_write, c->fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    c->connecting = 1;
    ev_io_start(g.loop, &c->wio);
    g.conns[g.nconns++] = c;
    return c;
}

/* ---- phases ---- */

static void on_connected(struct lconn *c)
{
    switch (c->role) {
    case ROLE_HOLD:
        queue_request(c);
        return;
    case ROLE_PROBE:
        probe_line(c, NULL, 0); /* says hello */
        return;
    case ROLE_LOAD:
        break;
    }
    if (g.o.mode == MODE_WHATSAT) {
        c->setup_reply = 1;
        queue_line(c, 1);
    }
    if (g.o.rate == 0)
        fill(c);
}

/* Idle mode: opens the next held connection, a few in flight at once. */
static void hold_next(void)
{
    while (g.holding_started < g.o.idle && g.holding_started - g.held < HOLD_INFLIGHT) {
        g.holding_started++;
        conn_open(g.o.ports[g.holding_started % g.o.nports], ROLE_HOLD);
    }
}

static void start_fresh_client(void)
{
    refresh_clock();
    g.t0 = g.t_measure = g.now;
    g.o.requests = g.o.samples;
    g.sending = 1;
    conn_open(g.o.ports[0], ROLE_LOAD);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    refresh_clock();
    uint64_t due = (uint64_t)((double)(g.now - g.t0) * g.o.rate / 1e9);
    for (size_t tries = 0; g.sent < due && may_send() && tries < 2 * g.nconns + 2;) {
        struct lconn *c = g.conns[g.rr++ % g.nconns];
        if (c->closed || c->connecting || c->role != ROLE_LOAD || c->setup_reply) {
            tries++;
            continue;
        }
        tries = 0;
        if (c->tail - c->head > c->ring_mask) {
            g.skipped++; /* this connection has OPEN_RING requests unanswered */
            g.sent++;
            continue;
        }
        queue_request(c);
    }
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static void report(void)
{
    double secs = (double)(g.t_end - g.t_measure) / 1e9;
    static const char *const names[] = { "iamat", "whatsat", "idle", "probe" };
    printf("{\"mode\": \"%s\", \"label\": \"%s\", \"connections\": %u, \"depth\": %u, "
           "\"rate\": %.0f, \"seconds\": %.3f, \"sent\": %" PRIu64 ", \"replies\": %" PRIu64
           ", \"measured\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"conn_errors\": %" PRIu64
           ", \"skipped\": %" PRIu64 ", \"rps\": %.1f",
           names[g.o.mode], g.o.label, g.o.conns, g.o.depth, g.o.rate, secs, g.sent, g.replies,
           g.measured, g.errors, g.conn_errors, g.skipped,
           secs > 0 ? (double)g.measured / secs : 0.0);
    printf(", \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
           "\"max_us\": %.1f, \"mean_us\": %.1f",
           us(hist_quantile(&g.lat, 0.50)), us(hist_quantile(&g.lat, 0.90)),
           us(hist_quantile(&g.lat, 0.99)), us(hist_quantile(&g.lat, 0.999)), us(g.lat.max),
           g.lat.total ? g.lat.sum / (double)g.lat.total / 1000.0 : 0.0);
    if (g.o.mode == MODE_IDLE)
        printf(", \"held\": %" PRIu64 ", \"first_reply_us\": %.1f", g.held,
               us(hist_quantile(&g.first, 0.5)));
    if (g.o.mode == MODE_PROBE)
        printf(", \"herd_p50_us\": %.1f, \"herd_p99_us\": %.1f, \"herd_max_us\": %.1f",
               us(hist_quantile(&g.herd, 0.5)), us(hist_quantile(&g.herd, 0.99)),
               us(g.herd.max));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(", \"cpu_s\": %.3f",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    printf(", \"complete\": %s}\n",
           g.o.requests == 0 || g.replies >= g.o.requests ? "true" : "false");
    fflush(stdout);
}

static void on_done(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void finish(void)
{
    if (g.stopping)
        return;
    g.stopping = 1;
    g.t_end = mono_ns();
    ev_timer_stop(g.loop, &g.tick);
    ev_timer_stop(g.loop, &g.stop_timer);
    report();
    ev_timer_init(&g.linger_timer, on_done, g.o.linger, 0.);
    ev_timer_start(g.loop, &g.linger_timer);
}

static void on_stop_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    finish();
}

/* ---- probe: a fake neighbour that times flooded AT lines ---- */

/* "SEC[.FRAC]" into nanoseconds; 0 when it is not one. */
/* A flooded AT line: times those whose ID has our prefix. */
static void probe_at(const char *line, size_t len)
{
    uint64_t sent, got;
    if (!lg_at_times(line, len, g.o.prefix, &sent, &got))
        return;
    uint64_t now = real_ns();
    g.replies++;
    if (sent == 0 || g.now < g.t_measure)
        return;
    g.measured++;
    hist_add(&g.lat, now > sent ? now - sent : 0);
    hist_add(&g.herd, now > got ? now - got : 0); /* the part spent inside the herd */
}

static void probe_line(struct lconn *c, const char *line, size_t len)
{
    char out[160];
    int authed = 0;
    if (line == NULL)
        return; /* the probe only accepts: its name sorts after its neighbour's */
    if (len > 3 && memcmp(line, "AT ", 3) == 0) {
        probe_at(line, len);
        return;
    }
    size_t n = lg_link_reply(line, len, g.o.probe_name, out, sizeof out, &authed);
    if (n > 0)
        queue(c, out, n);
    if (authed && !c->linked)
        fprintf(stderr, "loadgen: probe linked\n");
    if (authed)
        c->linked = 1;
}

static void on_probe_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    char peer[64];
    int fd = net_accept(io->fd, peer, sizeof peer);
    if (fd < 0)
        return;
    struct lconn *c = calloc(1, sizeof *c);
    struct lconn **all = realloc(g.conns, (g.nconns + 1) * sizeof *all);
    if (all)
        g.conns = all;
    if (c == NULL || all == NULL) {
        close(fd);
        free(c);
        return;
    }
    c->fd = fd;
    c->role = ROLE_PROBE;
    ev_io_init(&c->rio, on_read, fd, EV_READ);
    ev_io_init(&c->wio, on_write, fd, EV_WRITE);
    c->rio.data = c->wio.data = c;
    ev_io_start(g.loop, &c->rio);
    g.conns[g.nconns++] = c;
}

static int probe_start(void)
{
    static ev_io lio;
    char err[160];
    int fd = net_tcp_listen(HOST, g.o.probe_listen, 64, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "loadgen: probe: %s\n", err);
        return -1;
    }
    ev_io_init(&lio, on_probe_accept, fd, EV_READ);
    ev_io_start(g.loop, &lio);
    printf("LISTENING %u\n", (unsigned)g.o.probe_listen);
    fflush(stdout);
    return 0;
}

/* ---- main ---- */

/* Ten thousand held connections need more than the usual 1024 descriptors. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* SIGUSR1: report what was measured so far and start over (the probe serves
 * several runs); SIGTERM, SIGINT: report and stop. */
static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)revents;
    if (s->signum != SIGUSR1) {
        finish();
        return;
    }
    g.t_end = mono_ns();
    report();
    memset(&g.lat, 0, sizeof g.lat);
    memset(&g.herd, 0, sizeof g.herd);
    g.sent = g.replies = g.measured = g.errors = g.skipped = 0;
    g.t_measure = g.t_end;
}

static int start(void)
{
    static ev_signal sigs[3];
    static const int signums[3] = { SIGUSR1, SIGTERM, SIGINT };
    for (int i = 0; i < 3; i++) {
        ev_signal_init(&sigs[i], on_signal, signums[i]);
        ev_signal_start(g.loop, &sigs[i]);
    }
    refresh_clock();
    g.t0 = g.now;
    g.t_measure = g.now + (uint64_t)(g.o.warmup * 1e9);
    ev_timer_init(&g.stop_timer, on_stop_timer, g.o.warmup + g.o.duration, 0.);
    ev_timer_start(g.loop, &g.stop_timer);
    if (g.o.mode == MODE_PROBE)
        return probe_start();
    if (g.o.mode == MODE_IDLE) {
        hold_next();
        return 0;
    }
    g.sending = 1;
    for (unsigned i = 0; i < g.o.conns; i++)
        conn_open(g.o.ports[i % g.o.nports], ROLE_LOAD);
    if (g.o.rate > 0) {
        ev_timer_init(&g.tick, on_tick, 0.001, 0.001);
        ev_timer_start(g.loop, &g.tick);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (lg_opts_parse(&g.o, argc, argv) < 0) {
        lg_opts_usage(stderr);
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    g.loop = ev_default_loop(EVFLAG_AUTO);
    ev_prepare_init(&g.prep, on_prepare);
    ev_prepare_start(g.loop, &g.prep);
    if (start() < 0)
        return 1;
    ev_run(g.loop, 0);
    if (!g.stopping) {
        g.t_end = mono_ns();
        report();
    }
    return g.conn_errors > 0 && g.o.mode != MODE_PROBE ? 1 : 0;
}
