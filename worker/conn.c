/*
 * conn: connection lifetimes, line splitting and the per-iteration flush.
 * Input is read into the pool's one scratch buffer and split into lines in
 * place; only a partial line is copied into the connection's own buffer, so
 * ten thousand idle clients hold no buffers at all. Every state change goes
 * through this file, and a conn is freed only by conn_pool_reap().
 */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

#define READ_CHUNK ((size_t)64 * 1024)
#define OUT_KEEP   ((size_t)16 * 1024) /* output buffer kept once drained */

struct conn_pool {
    struct ev_loop *loop;
    const struct cfg_herd *cfg;
    struct conn *conns;       /* every conn not closed yet */
    struct conn *dirty;       /* client conns with output or input to process */
    struct conn *dirty_links; /* the same for links, written first */
    struct conn *dead;        /* closed, to free in conn_pool_reap */
    size_t nclients, nlinks;
    uint64_t next_id;
    struct log_limit over_warn; /* conns closed for output over their limit */
    char scratch[READ_CHUNK];
};

static void mark_dirty(struct conn *c)
{
    if (c->dirty || c->state == CONN_CLOSED)
        return;
    c->dirty = 1;
    /* Links are written before clients: a worker killed between the two
     * writes must not have confirmed an update it had not yet flooded. */
    struct conn **list = c->is_link ? &c->pool->dirty_links : &c->pool->dirty;
    c->next_dirty = *list;
    *list = c;
}

static void unlink_conn(struct conn_pool *pool, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        pool->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

void conn_close(struct conn *c, const char *why)
{
    struct conn_pool *pool = c->pool;
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    ev_io_stop(pool->loop, &c->rio);
    ev_io_stop(pool->loop, &c->wio);
    ev_timer_stop(pool->loop, &c->idle);
    close(c->fd);
    c->fd = -1;
    if (c->is_link)
        pool->nlinks--;
    else
        pool->nclients--;
    unlink_conn(pool, c);
    if (c->ops->on_close)
        c->ops->on_close(c, why);
    /* Freed in conn_pool_reap: callers up the stack may still hold c. */
    c->next = pool->dead;
    pool->dead = c;
}

void conn_drain(struct conn *c, const char *why)
{
    if (c->state != CONN_OPEN && c->state != CONN_HALF_CLOSED)
        return;
    c->state = CONN_DRAINING;
    ev_io_stop(c->pool->loop, &c->rio);
    log_debug("conn %s draining: %s", c->peer, why);
    mark_dirty(c);
}

int conn_send(struct conn *c, const void *data, size_t len)
{
    if (c->state == CONN_CLOSED || c->state == CONN_LINGER)
        return -1;
    if (buf_append(&c->out, data, len, c->out_max) < 0) {
        uint64_t quiet;
        if (log_limit(&c->pool->over_warn, 1.0, &quiet))
            log_warn("%s %s: output over limit (%zu bytes queued), closing (and %llu more "
                     "since the last warning)",
                     c->is_link ? "link" : "client", c->peer, buf_len(&c->out),
                     (unsigned long long)quiet);
        conn_close(c, "output over limit");
        return -1;
    }
    mark_dirty(c);
    return 0;
}

void conn_pause(struct conn *c, int paused)
{
    if ((unsigned)paused == c->reading_paused || c->state == CONN_CLOSED)
        return;
    c->reading_paused = paused ? 1 : 0;
    if (c->state != CONN_OPEN && c->state != CONN_HALF_CLOSED)
        return;
    if (c->state == CONN_OPEN) {
        if (paused)
            ev_io_stop(c->pool->loop, &c->rio);
        else
            ev_io_start(c->pool->loop, &c->rio);
    }
    /* Lines read before the pause (or the end of input) wait for the flush. */
    if (!paused && (buf_len(&c->in) > 0 || c->state == CONN_HALF_CLOSED)) {
        c->resume = 1;
        mark_dirty(c);
    }
}

void conn_set_idle(struct conn *c, double seconds)
{
    c->idle_timeout = seconds;
    ev_timer_stop(c->pool->loop, &c->idle);
    if (seconds > 0 && c->state != CONN_CLOSED) {
        c->idle.repeat = seconds;
        ev_timer_again(c->pool->loop, &c->idle);
    }
}

void conn_set_ops(struct conn *c, const struct conn_ops *ops, void *ctx, void *ud, int as_link)
{
    if (c->state != CONN_CLOSED && !c->is_link != !as_link) {
        if (as_link) {
            c->pool->nclients--;
            c->pool->nlinks++;
        } else {
            c->pool->nlinks--;
            c->pool->nclients++;
        }
    }
    c->is_link = as_link ? 1 : 0;
    c->ops = ops;
    c->ctx = ctx;
    c->ud = ud;
}

static int reading(const struct conn *c)
{
    return (c->state == CONN_OPEN || c->state == CONN_HALF_CLOSED) && !c->reading_paused;
}

/* Hands every complete line of DATA to the conn; returns the bytes used. */
static size_t split_lines(struct conn *c, char *data, size_t len)
{
    size_t used = 0;
    while (used < len && reading(c)) {
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

/* No more input: hand over what is buffered (after EOF a last line without
 * '\n' counts), then tell the owner, once. Waits while reading is paused. */
static void finish_input(struct conn *c)
{
    process_buffered(c);
    if (c->state != CONN_HALF_CLOSED || c->reading_paused || c->eof_told)
        return;
    size_t n = buf_len(&c->in);
    if (n > 0) {
        if (c->peer_eof)
            c->ops->on_line(c, buf_head(&c->in), n);
        if (c->state == CONN_CLOSED)
            return;
        buf_consume(&c->in, n, 0);
        if (c->state != CONN_HALF_CLOSED || c->reading_paused)
            return; /* finish_input runs again on resume; eof_told is still 0 */
    }
    c->eof_told = 1;
    buf_free(&c->in);
    if (c->ops->on_eof)
        c->ops->on_eof(c);
    else
        conn_drain(c, "end of input");
}

void conn_stop_reading(struct conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    c->state = CONN_HALF_CLOSED;
    ev_io_stop(c->pool->loop, &c->rio);
    c->resume = 1; /* finish_input from the flush, not inside a callback */
    mark_dirty(c);
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

/* Lingering: the replies are out and our side is shut; drop what comes. */
static void linger_read(struct conn *c)
{
    ssize_t n = read(c->fd, c->pool->scratch, sizeof c->pool->scratch);
    if (n == 0)
        conn_close(c, "closed after the replies");
    else if (n < 0 && errno != EAGAIN && errno != EINTR)
        conn_close(c, strerror(errno));
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    (void)revents;
    if (c->state == CONN_LINGER) {
        linger_read(c);
        return;
    }
    ssize_t n = read(c->fd, c->pool->scratch, sizeof c->pool->scratch);
    if (n == 0) { /* the peer is done sending; it may still read */
        c->peer_eof = 1;
        c->state = CONN_HALF_CLOSED;
        ev_io_stop(loop, &c->rio);
        log_debug("%s %s: end of input", c->is_link ? "link" : "client", c->peer);
        finish_input(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(c, strerror(errno));
        return;
    }
    if (c->idle_timeout > 0)
        ev_timer_again(loop, &c->idle);
    process_read(c, c->pool->scratch, (size_t)n);
}

/* Everything owed is written: shut our side and wait for the peer's EOF,
 * unless it has sent it already. */
static void drained(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    if (c->peer_eof || shutdown(c->fd, SHUT_WR) < 0) {
        conn_close(c, "drained");
        return;
    }
    c->state = CONN_LINGER;
    buf_free(&c->in);
    buf_free(&c->out);
    ev_io_start(loop, &c->rio);
    conn_set_idle(c, CONN_LINGER_S);
}

/* Writes queued output; returns -1 when the conn closed. */
static int try_write(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
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
    if (c->state == CONN_DRAINING) {
        drained(c);
        return c->state == CONN_CLOSED ? -1 : 0;
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
    if (c->state == CONN_LINGER) {
        conn_close(c, "linger timeout");
        return;
    }
    log_info("%s %s: idle for %.0f s, closing", c->is_link ? "link" : "client", c->peer,
             c->idle_timeout);
    conn_close(c, "idle timeout");
}

static struct conn *conn_new(struct conn_pool *pool, int fd, const struct conn_ops *ops, void *ctx,
                             int as_link)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->ops = ops;
    c->ctx = ctx;
    c->pool = pool;
    c->max_line = pool->cfg->max_line;
    c->out_max = pool->cfg->client_output_max;
    c->id = ++pool->next_id;
    c->is_link = as_link ? 1 : 0;
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->idle, on_idle);
    c->rio.data = c->wio.data = c->idle.data = c;
    c->next = pool->conns;
    if (pool->conns)
        pool->conns->prev = c;
    pool->conns = c;
    if (as_link)
        pool->nlinks++;
    else
        pool->nclients++;
    return c;
}

struct conn *conn_accept(struct conn_pool *pool, int fd, const char *peer,
                         const struct conn_ops *ops, void *ctx)
{
    struct conn *c = conn_new(pool, fd, ops, ctx, 0);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    ev_io_start(pool->loop, &c->rio);
    return c;
}

struct conn *conn_dial(struct conn_pool *pool, const char *host, uint16_t port,
                       const struct conn_ops *ops, void *ctx, void *ud, char *err, size_t errlen)
{
    int fd = net_tcp_connect(host, port, err, errlen);
    if (fd < 0)
        return NULL;
    struct conn *c = conn_new(pool, fd, ops, ctx, 1);
    if (c == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->ud = ud;
    c->dialing = 1;
    snprintf(c->peer, sizeof c->peer, "%s:%u", host, (unsigned)port);
    ev_io_start(pool->loop, &c->wio);
    return c;
}

struct conn_pool *conn_pool_new(struct ev_loop *loop, const struct cfg_herd *cfg)
{
    struct conn_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->loop = loop;
    pool->cfg = cfg;
    return pool;
}

/* One conn off a dirty list: input that waited, then output. */
static void flush_one(struct conn_pool *pool, struct conn *c)
{
    if (c->resume && (c->state == CONN_OPEN || c->state == CONN_HALF_CLOSED)) {
        c->resume = 0;
        if (c->state == CONN_OPEN)
            process_buffered(c);
        else
            finish_input(c);
        if (c->state == CONN_CLOSED)
            return;
        if (pool->dirty_links && !c->is_link) {
            mark_dirty(c); /* its updates go to the links before it hears "AT" */
            return;
        }
    }
    if (!c->dialing && try_write(c) == 0)
        after_write(c);
}

void conn_pool_flush(struct conn_pool *pool)
{
    while (pool->dirty_links || pool->dirty) {
        struct conn **list = pool->dirty_links ? &pool->dirty_links : &pool->dirty;
        struct conn *c = *list;
        *list = c->next_dirty;
        c->dirty = 0;
        if (c->state != CONN_CLOSED)
            flush_one(pool, c);
    }
}

void conn_pool_reap(struct conn_pool *pool)
{
    while (pool->dead) {
        struct conn *c = pool->dead;
        pool->dead = c->next;
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
}

void conn_pool_stop_reading(struct conn_pool *pool)
{
    for (struct conn *c = pool->conns; c; c = c->next)
        conn_stop_reading(c); /* never closes c: the list stays intact */
}

void conn_pool_free(struct conn_pool *pool)
{
    if (pool == NULL)
        return;
    while (pool->conns)
        conn_close(pool->conns, "worker stopping");
    pool->dirty = pool->dirty_links = NULL;
    conn_pool_reap(pool);
    free(pool);
}

void conn_pool_reconfigure(struct conn_pool *pool)
{
    for (struct conn *c = pool->conns; c; c = c->next) {
        if (c->is_link || c->state != CONN_OPEN)
            continue;
        c->max_line = pool->cfg->max_line;
        c->out_max = pool->cfg->client_output_max;
        if (c->idle_timeout != pool->cfg->idle_timeout)
            conn_set_idle(c, pool->cfg->idle_timeout);
    }
}

size_t conn_pool_clients(const struct conn_pool *pool)
{
    return pool->nclients;
}

size_t conn_pool_links(const struct conn_pool *pool)
{
    return pool->nlinks;
}

size_t conn_pool_queued(const struct conn_pool *pool)
{
    size_t n = 0;
    for (const struct conn *c = pool->conns; c; c = c->next)
        n += buf_len(&c->out);
    return n;
}
