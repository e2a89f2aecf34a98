/*
 * server: listener, connection lifetimes and the per-iteration flush. Input is
 * read into one shared scratch buffer and split into lines in place; only a
 * partial line is copied into the connection's own buffer, so ten thousand
 * idle clients hold no buffers at all.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "worker.h"

#define READ_CHUNK ((size_t)64 * 1024)
#define OUT_KEEP   ((size_t)16 * 1024) /* output buffer kept once drained */
/* The log is written at most every LOG_DELAY seconds, or when LOG_BATCH bytes
 * wait: a write(2) to a file may stall on the disk, and one per loop
 * iteration put those stalls on the flood path (docs/bench.md, S3). */
#define LOG_DELAY 0.02
#define LOG_BATCH ((size_t)32 * 1024)

struct server {
    struct worker *w;
    const struct conn_ops *client_ops;
    int lfd;
    ev_io lio;
    ev_timer accept_pause; /* after EMFILE: retry accepting later */
    ev_prepare prep;
    ev_timer log_timer;       /* writes the log within LOG_DELAY when idle */
    ev_tstamp log_written;    /* when the log was last written */
    struct conn *conns;       /* every open or closing conn */
    struct conn *dirty;       /* client conns with output or input to process */
    struct conn *dirty_links; /* the same for links, written first */
    struct conn *dead;        /* closed, to free in prep */
    size_t nclients;
    size_t nconns;
    uint64_t next_id;
};

static struct server *the_server; /* conns reach their server through this */
static char scratch[READ_CHUNK];

static void mark_dirty(struct conn *c)
{
    if (c->dirty || c->state == CONN_CLOSED)
        return;
    c->dirty = 1;
    /* Links are written before clients: a worker killed between the two
     * writes must not have confirmed an update it had not yet flooded. */
    struct conn **list = c->is_link ? &the_server->dirty_links : &the_server->dirty;
    c->next_dirty = *list;
    *list = c;
}

static void unlink_conn(struct server *srv, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

void conn_close(struct conn *c, const char *why)
{
    struct server *srv = the_server;
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    ev_io_stop(srv->w->loop, &c->rio);
    ev_io_stop(srv->w->loop, &c->wio);
    ev_timer_stop(srv->w->loop, &c->idle);
    close(c->fd);
    c->fd = -1;
    if (!c->is_link)
        srv->nclients--;
    srv->nconns--;
    unlink_conn(srv, c);
    if (c->ops->on_close)
        c->ops->on_close(c, why);
    /* Freed in the prepare watcher: callers up the stack may still hold c. */
    c->next = srv->dead;
    srv->dead = c;
}

void conn_drain(struct conn *c, const char *why)
{
    if (c->state != CONN_OPEN)
        return;
    c->state = CONN_DRAINING;
    ev_io_stop(the_server->w->loop, &c->rio);
    log_debug("conn %s draining: %s", c->peer, why);
    mark_dirty(c);
}

int conn_send(struct conn *c, const void *data, size_t len)
{
    if (c->state == CONN_CLOSED)
        return -1;
    if (buf_append(&c->out, data, len, c->out_max) < 0) {
        log_warn("%s %s: output over limit (%zu bytes queued), closing",
                 c->is_link ? "link" : "client", c->peer, buf_len(&c->out));
        conn_close(c, "output over limit");
        return -1;
    }
    mark_dirty(c);
    return 0;
}

void conn_pause(struct conn *c, int paused)
{
    if (c->state != CONN_OPEN || (unsigned)paused == c->reading_paused)
        return;
    c->reading_paused = paused ? 1 : 0;
    if (paused) {
        ev_io_stop(the_server->w->loop, &c->rio);
        return;
    }
    ev_io_start(the_server->w->loop, &c->rio);
    if (buf_len(&c->in) > 0) { /* lines read before the pause */
        c->resume = 1;
        mark_dirty(c);
    }
}

void conn_set_idle(struct conn *c, double seconds)
{
    c->idle_timeout = seconds;
    ev_timer_stop(the_server->w->loop, &c->idle);
    if (seconds > 0 && c->state != CONN_CLOSED) {
        c->idle.repeat = seconds;
        ev_timer_again(the_server->w->loop, &c->idle);
    }
}

void conn_set_ops(struct conn *c, const struct conn_ops *ops, void *ud)
{
    if (!c->is_link && ops != the_server->client_ops) {
        c->is_link = 1;
        the_server->nclients--;
    }
    c->ops = ops;
    c->ud = ud;
}

/* Hands every complete line of DATA to the conn; returns the bytes used. */
static size_t split_lines(struct conn *c, char *data, size_t len)
{
    size_t used = 0;
    while (used < len && c->state == CONN_OPEN && !c->reading_paused) {
        char *line = data + used;
        char *nl = memchr(line, '\n', len - used);
        size_t n = nl ? (size_t)(nl - line) : len - used;
        if (n > c->max_line) {
            c->ops->on_overlong(c, line, c->max_line);
            return len;
        }
        if (nl == NULL)
            break;
        used += n + 1;
        c->ops->on_line(c, line, n);
    }
    return used;
}

/* Processes the conn's own buffered input (after a pause or a partial line). */
static void process_buffered(struct conn *c)
{
    size_t used = split_lines(c, buf_head(&c->in), buf_len(&c->in));
    if (c->state != CONN_CLOSED)
        buf_consume(&c->in, used, 0);
}

static void process_read(struct conn *c, char *data, size_t len)
{
    if (buf_len(&c->in) == 0) {
        size_t used = split_lines(c, data, len);
        if (used < len && c->state != CONN_CLOSED &&
            buf_append(&c->in, data + used, len - used, c->max_line + 1 + READ_CHUNK) < 0)
            conn_close(c, "out of memory");
        return;
    }
    if (buf_append(&c->in, data, len, c->max_line + 1 + READ_CHUNK) < 0) {
        conn_close(c, "out of memory");
        return;
    }
    process_buffered(c);
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    (void)loop;
    (void)revents;
    ssize_t n = read(c->fd, scratch, sizeof scratch);
    if (n == 0) {
        conn_close(c, "closed by peer");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(c, strerror(errno));
        return;
    }
    if (c->idle_timeout > 0)
        ev_timer_again(the_server->w->loop, &c->idle);
    process_read(c, scratch, (size_t)n);
}

/* Writes queued output; returns -1 when the conn closed. */
static int try_write(struct conn *c)
{
    struct ev_loop *loop = the_server->w->loop;
    while (buf_len(&c->out) > 0) {
        ssize_t n = write(c->fd, buf_head(&c->out), buf_len(&c->out));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                ev_io_start(loop, &c->wio);
                return 0;
            }
            conn_close(c, strerror(errno));
            return -1;
        }
        buf_consume(&c->out, (size_t)n, OUT_KEEP);
    }
    ev_io_stop(loop, &c->wio);
    if (c->state == CONN_DRAINING && c->slot_head == NULL) {
        conn_close(c, "drained");
        return -1;
    }
    return 0;
}

static void after_write(struct conn *c)
{
    if (c->state == CONN_OPEN && c->low_water > 0 && buf_len(&c->out) < c->low_water &&
        c->ops->on_drain)
        c->ops->on_drain(c);
}

static void on_writable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    (void)loop;
    (void)revents;
    if (c->dialing) {
        char err[128];
        c->dialing = 0;
        ev_io_stop(loop, &c->wio);
        if (net_connect_result(c->fd, err, sizeof err) < 0) {
            conn_close(c, err);
            return;
        }
        ev_io_start(loop, &c->rio);
        if (c->ops->on_connect)
            c->ops->on_connect(c);
        if (c->state == CONN_CLOSED)
            return;
    }
    if (try_write(c) == 0)
        after_write(c);
}

static void on_idle(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn *c = t->data;
    (void)loop;
    (void)revents;
    log_info("%s %s: idle for %.0f s, closing", c->is_link ? "link" : "client", c->peer,
             c->idle_timeout);
    conn_close(c, "idle timeout");
}

static struct conn *conn_new(struct server *srv, int fd, const struct conn_ops *ops)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    const struct cfg_herd *cfg = srv->w->cfg;
    c->fd = fd;
    c->ops = ops;
    c->max_line = cfg->max_line;
    c->out_max = cfg->client_output_max;
    c->id = ++srv->next_id;
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->idle, on_idle);
    c->rio.data = c->wio.data = c->idle.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    return c;
}

static void accept_one(struct server *srv, int fd, const char *peer)
{
    struct conn *c = conn_new(srv, fd, srv->client_ops);
    if (c == NULL) {
        log_error("client %s: out of memory, dropped", peer);
        close(fd);
        return;
    }
    srv->nclients++;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    ev_io_start(srv->w->loop, &c->rio);
    conn_set_idle(c, srv->w->cfg->idle_timeout);
    log_debug("client %s: connected", c->peer);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    struct server *srv = io->data;
    (void)revents;
    for (int i = 0; i < 64; i++) { /* bounded: other watchers get their turn */
        char peer[64];
        int fd = net_accept(srv->lfd, peer, sizeof peer);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The queued connection would wake us forever: back off. */
                log_warn("accept: %s; pausing accepts for 100 ms", strerror(errno));
                ev_io_stop(loop, &srv->lio);
                ev_timer_start(loop, &srv->accept_pause);
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        /* Links do not count: a herd full of clients must still link up. */
        if (srv->nclients >= srv->w->cfg->max_connections) {
            log_warn("client %s: refused, %zu clients connected (max_connections)", peer,
                     srv->nclients);
            close(fd);
            continue;
        }
        accept_one(srv, fd, peer);
    }
}

static void on_accept_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct server *srv = t->data;
    (void)revents;
    if (srv->lfd >= 0)
        ev_io_start(loop, &srv->lio);
}

static void on_log_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct server *srv = t->data;
    (void)revents;
    log_flush();
    srv->log_written = ev_now(loop);
}

/* Writes the log when enough waits or it has waited LOG_DELAY; otherwise
 * makes sure a timer will, so an idle worker's lines still reach the file. */
static void flush_log(struct server *srv)
{
    struct ev_loop *loop = srv->w->loop;
    size_t n = log_buffered();
    if (n == 0)
        return;
    if (n >= LOG_BATCH || ev_now(loop) - srv->log_written >= LOG_DELAY) {
        ev_timer_stop(loop, &srv->log_timer);
        log_flush();
        srv->log_written = ev_now(loop);
    } else if (!ev_is_active(&srv->log_timer)) {
        ev_timer_set(&srv->log_timer, LOG_DELAY, 0.);
        ev_timer_start(loop, &srv->log_timer);
    }
}

/* Once per iteration, before the loop blocks: write out, then free. */
static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct server *srv = p->data;
    (void)loop;
    (void)revents;
    while (srv->dirty_links || srv->dirty) {
        struct conn **list = srv->dirty_links ? &srv->dirty_links : &srv->dirty;
        struct conn *c = *list;
        *list = c->next_dirty;
        c->dirty = 0;
        if (c->state == CONN_CLOSED)
            continue;
        if (c->resume && c->state == CONN_OPEN) {
            c->resume = 0;
            process_buffered(c);
            if (c->state == CONN_CLOSED)
                continue;
            if (srv->dirty_links && !c->is_link) {
                mark_dirty(c); /* its updates go to the links before it hears "AT" */
                continue;
            }
        }
        if (!c->dialing && try_write(c) == 0)
            after_write(c);
    }
    while (srv->dead) {
        struct conn *c = srv->dead;
        srv->dead = c->next;
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
    flush_log(srv);
}

struct server *server_new(struct worker *w, const struct conn_ops *client_ops, char *err,
                          size_t errlen)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->w = w;
    srv->client_ops = client_ops;
    srv->lfd = net_tcp_listen(w->self->host, w->self->port, 1024, err, errlen);
    if (srv->lfd < 0) {
        free(srv);
        return NULL;
    }
    the_server = srv;
    ev_io_init(&srv->lio, on_accept, srv->lfd, EV_READ);
    srv->lio.data = srv;
    ev_io_start(w->loop, &srv->lio);
    ev_timer_init(&srv->accept_pause, on_accept_pause, 0.1, 0.);
    srv->accept_pause.data = srv;
    ev_init(&srv->log_timer, on_log_timer);
    srv->log_timer.data = srv;
    ev_prepare_init(&srv->prep, on_prepare);
    srv->prep.data = srv;
    ev_prepare_start(w->loop, &srv->prep);
    return srv;
}

void server_stop_listening(struct server *srv)
{
    if (srv->lfd < 0)
        return;
    ev_io_stop(srv->w->loop, &srv->lio);
    ev_timer_stop(srv->w->loop, &srv->accept_pause);
    close(srv->lfd);
    srv->lfd = -1;
}

void server_flush(struct server *srv)
{
    for (struct conn *c = srv->conns; c; c = c->next)
        if (c->state != CONN_CLOSED && !c->dialing)
            try_write(c);
}

void server_free(struct server *srv)
{
    if (srv == NULL)
        return;
    server_stop_listening(srv);
    while (srv->conns)
        conn_close(srv->conns, "worker stopping");
    srv->dirty = srv->dirty_links = NULL;
    on_prepare(srv->w->loop, &srv->prep, 0);
    ev_prepare_stop(srv->w->loop, &srv->prep);
    ev_timer_stop(srv->w->loop, &srv->log_timer);
    log_flush();
    the_server = NULL;
    free(srv);
}

size_t server_clients(const struct server *srv)
{
    return srv->nclients;
}

size_t server_queued(const struct server *srv)
{
    size_t n = 0;
    for (const struct conn *c = srv->conns; c; c = c->next)
        n += buf_len(&c->out);
    return n;
}

struct conn *server_dial(struct server *srv, const char *host, uint16_t port,
                         const struct conn_ops *ops, void *ud, char *err, size_t errlen)
{
    int fd = net_tcp_connect(host, port, err, errlen);
    if (fd < 0)
        return NULL;
    struct conn *c = conn_new(srv, fd, ops);
    if (c == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->is_link = 1;
    c->ud = ud;
    c->dialing = 1;
    snprintf(c->peer, sizeof c->peer, "%s:%u", host, (unsigned)port);
    ev_io_start(srv->w->loop, &c->wio);
    return c;
}
