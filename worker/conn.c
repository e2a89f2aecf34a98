/*
 * conn: connection lifetimes, line splitting, a link's TLS handshake, and
 * one conn's part of the per-iteration flush. Input is read into the pool's
 * one scratch buffer and split into lines in place; only a partial line is
 * copied into the connection's own buffer, so ten thousand idle clients hold
 * no buffers at all. Every state change goes through this file, and a conn
 * is freed only by conn_pool_reap() (conn_pool.c).
 */
#include "conn.h"
#include "conn_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "stream.h"
#include "tls.h"

#define OUT_KEEP ((size_t)16 * 1024) /* output buffer kept once drained */

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
    tls_conn_free(c->tls);
    c->tls = NULL;
    c->tls_hs = 0;
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
        if (paused) {
            ev_io_stop(c->pool->loop, &c->rio);
        } else {
            ev_io_start(c->pool->loop, &c->rio);
            if (c->tls) /* decrypted bytes may wait inside the session */
                ev_feed_event(c->pool->loop, &c->rio, EV_READ);
        }
    }
    /* Lines read before the pause (or the end of input) wait for the flush. */
    if (!paused && (buf_len(&c->in) > 0 || c->state == CONN_HALF_CLOSED)) {
        c->resume = 1;
        mark_dirty(c);
    }
}

static void idle_restart(struct conn *c, double seconds)
{
    c->idle_timeout = seconds;
    ev_timer_stop(c->pool->loop, &c->idle);
    if (seconds > 0 && c->state != CONN_CLOSED) {
        c->idle.repeat = seconds;
        ev_timer_again(c->pool->loop, &c->idle);
    }
}

void conn_set_idle(struct conn *c, double seconds)
{
    if (c->tls_hs) { /* the handshake's bound stays; this applies after it */
        c->idle_after_hs = seconds;
        return;
    }
    idle_restart(c, seconds);
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

static void tls_failed(struct conn *c, const char *why)
{
    char reason[192];
    uint64_t quiet;
    if (log_limit(&c->pool->tls_warn, 1.0, &quiet))
        log_warn("%s %s: TLS handshake failed: %s (and %llu more since the last warning)",
                 c->is_link ? "link to" : "connection from", c->peer, why,
                 (unsigned long long)quiet);
    snprintf(reason, sizeof reason, "TLS handshake failed: %s", why);
    conn_close(c, reason);
}

/* One step of the TLS handshake, from either watcher. Once it is done a
 * dialled conn is connected; bytes queued meanwhile go out. */
static void tls_step(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    char why[160] = "";
    enum tls_rc rc = tls_handshake(c->tls, why, sizeof why);
    if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
        ev_io_start(loop, &c->rio);
        if (rc == TLS_WANT_WRITE)
            ev_io_start(loop, &c->wio);
        else
            ev_io_stop(loop, &c->wio);
        return;
    }
    if (rc != TLS_DONE) {
        tls_failed(c, rc == TLS_CLOSED ? "the peer closed the session" : why);
        return;
    }
    c->tls_hs = 0;
    ev_io_stop(loop, &c->wio);
    idle_restart(c, c->idle_after_hs);
    conn_tls_describe(c, why, sizeof why);
    log_debug("%s %s: %s", c->is_link ? "link to" : "connection from", c->peer, why);
    /* A conn accepted from a neighbour is still a client conn here. */
    if (c->is_link && c->ops->on_connect) {
        c->ops->on_connect(c);
        if (c->state == CONN_CLOSED)
            return;
    }
    if (buf_len(&c->out) > 0)
        mark_dirty(c);
    ev_feed_event(loop, &c->rio, EV_READ); /* the peer's first lines may be decrypted already */
}

static void start_tls(struct conn *c, int server)
{
    c->tls_hs = 1;
    c->idle_after_hs = c->idle_timeout;
    idle_restart(c, c->pool->cfg->link_timeout); /* a handshake is a link's */
    if (server)
        tls_step(c);
}

/* An accepted conn while links use TLS: a first byte that starts a TLS
 * handshake makes it a TLS conn (a neighbour), anything else is plaintext (a
 * client, or a knock). Returns 1 when plaintext reading goes on. */
static int sniff(struct conn *c)
{
    unsigned char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_close(c, strerror(errno));
        return 0;
    }
    c->sniffed = 1;
    if (n == 0 || b != TLS_HANDSHAKE_BYTE)
        return 1;
    if ((c->tls = tls_conn_new(c->pool->tls, c->fd, 1)) == NULL) {
        conn_close(c, "out of memory");
        return 0;
    }
    start_tls(c, 1);
    return 0;
}

/* link_tls = off here: a ClientHello is a neighbour that wants TLS. */
static int refuse_tls(struct conn *c, const char *data, size_t len)
{
    c->sniffed = 1;
    if (c->is_link || !stream_looks_like_tls(data, len))
        return 0;
    uint64_t quiet;
    if (log_limit(&c->pool->tls_warn, 1.0, &quiet))
        log_warn("connection from %s: a TLS handshake, but link_tls = off here; closing (and "
                 "%llu more since the last warning)",
                 c->peer, (unsigned long long)quiet);
    conn_close(c, "TLS handshake, but link_tls = off");
    return 1;
}

static void on_eof(struct conn *c)
{
    c->peer_eof = 1;
    c->state = CONN_HALF_CLOSED;
    ev_io_stop(c->pool->loop, &c->rio);
    log_debug("%s %s: end of input", c->is_link ? "link" : "client", c->peer);
    finish_input(c);
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    (void)revents;
    if (c->state == CONN_LINGER) {
        linger_read(c);
        return;
    }
    if (c->state != CONN_OPEN || c->reading_paused) /* a fed event after a change */
        return;
    if (c->tls_hs) {
        tls_step(c);
        return;
    }
    if (!c->sniffed && c->pool->tls && !c->is_link && !sniff(c))
        return;
    char why[160] = "";
    size_t n = 0;
    char *data = c->pool->scratch;
    switch (stream_read(c->fd, c->tls, data, sizeof c->pool->scratch, &n, why, sizeof why)) {
    case STREAM_OK: break;
    case STREAM_AGAIN: return;
    case STREAM_AGAIN_WRITE:
        c->tls_rwant_w = 1;
        ev_io_start(loop, &c->wio);
        return;
    case STREAM_EOF: on_eof(c); return; /* the peer is done sending; it may still read */
    case STREAM_ERROR: conn_close(c, why); return;
    }
    if (!c->sniffed && refuse_tls(c, data, n))
        return;
    if (c->idle_timeout > 0)
        ev_timer_again(loop, &c->idle);
    process_read(c, data, n);
    /* A full scratch may have left records inside the TLS session. */
    if (c->tls && n == sizeof c->pool->scratch && c->state == CONN_OPEN)
        ev_feed_event(loop, &c->rio, EV_READ);
}

/* Everything owed is written: shut our side and wait for the peer's EOF,
 * unless it has sent it already. */
static void drained(struct conn *c)
{
    struct ev_loop *loop = c->pool->loop;
    if (c->tls)
        tls_shutdown(c->tls); /* close_notify: the peer tells our end from a cut */
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
    if (buf_len(&c->out) > 0) {
        char why[160] = "";
        size_t n = 0;
        enum stream_rc rc =
            stream_write(c->fd, c->tls, buf_head(&c->out), buf_len(&c->out), &n, why, sizeof why);
        buf_consume(&c->out, n, OUT_KEEP);
        if (rc == STREAM_AGAIN) {
            ev_io_start(loop, &c->wio);
            return 0;
        }
        if (rc != STREAM_OK) {
            conn_close(c, rc == STREAM_EOF ? "the peer closed the session" : why);
            return -1;
        }
    }
    if (!c->tls_rwant_w) /* else a TLS read still waits for writable */
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
        if (c->tls_hs) {
            tls_step(c); /* on_connect once the handshake is done */
            return;
        }
        if (c->ops->on_connect)
            c->ops->on_connect(c);
        if (c->state == CONN_CLOSED)
            return;
    }
    if (c->tls_hs) {
        tls_step(c);
        return;
    }
    if (c->tls_rwant_w) { /* the read can go on; try_write stops wio if nothing is queued */
        c->tls_rwant_w = 0;
        ev_feed_event(loop, &c->rio, EV_READ);
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
    if (c->tls_hs) {
        tls_failed(c, "timed out");
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

int conn_start_tls(struct conn *c)
{
    if (c->pool->tls == NULL || (c->tls = tls_conn_new(c->pool->tls, c->fd, 0)) == NULL) {
        conn_close(c, c->pool->tls ? "out of memory" : "link_tls is off");
        return -1;
    }
    start_tls(c, 0); /* the handshake starts once the dial connects */
    return 0;
}

int conn_is_tls(const struct conn *c)
{
    return c->tls != NULL && !c->tls_hs;
}

int conn_tls_peer_names(const struct conn *c, const char *name, const char *host)
{
    return conn_is_tls(c) && tls_peer_names(c->tls, name, host);
}

void conn_tls_describe(const struct conn *c, char *out, size_t outlen)
{
    if (conn_is_tls(c))
        tls_describe(c->tls, out, outlen);
    else
        snprintf(out, outlen, "plaintext");
}

/* Input that waited for a resume, then output. */
void conn_flush_one(struct conn *c)
{
    struct conn_pool *pool = c->pool;
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
    if (!c->dialing && !c->tls_hs && try_write(c) == 0)
        after_write(c);
}
