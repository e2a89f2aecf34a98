/*
 * chan: the worker's end of the supervisor channel. Newline-terminated JSON
 * objects (json-c) go out: one "ready", then a "heartbeat" every
 * heartbeat_interval. Nothing the supervisor sends is needed yet, so input is
 * read and dropped; EOF means the supervisor died or closed us, and the worker
 * stops (the second no-orphan signal after PR_SET_PDEATHSIG).
 */
#include "chan.h"

#include <errno.h>
#include <json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "places.h"
#include "worker.h"

/* A heartbeat is ~400 bytes; more than this queued means the supervisor is
 * not reading (stopped, or busy), and a stale heartbeat is worth nothing. */
#define CHAN_OUT_MAX 16384

struct chan {
    struct worker *w;
    int fd;
    int closed;       /* EOF or a write error seen: the worker stops */
    ev_io rio;        /* input: EOF detection */
    ev_io wio;        /* runs only while out holds unsent bytes */
    ev_timer hb;      /* heartbeat_interval */
    uint64_t dropped; /* messages not queued because out was full */
    size_t outlen;
    char out[CHAN_OUT_MAX];
};

static void chan_closed(struct chan *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = 1;
    ev_io_stop(c->w->loop, &c->rio);
    ev_io_stop(c->w->loop, &c->wio);
    ev_timer_stop(c->w->loop, &c->hb);
    log_warn("supervisor channel %s: stopping", why);
    worker_stop(c->w, "supervisor channel closed");
}

static void chan_flush(struct chan *c)
{
    while (c->outlen > 0) {
        ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            chan_closed(c, strerror(errno));
            return;
        }
        memmove(c->out, c->out + n, c->outlen - (size_t)n);
        c->outlen -= (size_t)n;
    }
    if (c->outlen > 0)
        ev_io_start(c->w->loop, &c->wio);
    else
        ev_io_stop(c->w->loop, &c->wio);
}

/* Queues OBJ as one line and takes ownership of it. */
static void chan_send(struct chan *c, json_object *obj)
{
    size_t len;
    const char *s;

    if (c->closed || obj == NULL) {
        json_object_put(obj);
        return;
    }
    s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
    if (s == NULL || c->outlen + len + 1 > sizeof(c->out)) {
        if (c->dropped++ == 0)
            log_warn("supervisor channel full: dropping messages");
    } else {
        memcpy(c->out + c->outlen, s, len);
        c->out[c->outlen + len] = '\n';
        c->outlen += len + 1;
    }
    json_object_put(obj);
    chan_flush(c);
}

static void add_u64(json_object *obj, const char *key, uint64_t v)
{
    json_object_object_add(obj, key, json_object_new_int64((int64_t)v));
}

static json_object *places_json(const struct places *pl)
{
    struct places_stats ps;
    json_object *o = json_object_new_object();

    memset(&ps, 0, sizeof(ps));
    if (pl != NULL)
        places_get_stats(pl, &ps);
    add_u64(o, "upstream", ps.upstream);
    add_u64(o, "hits", ps.hits);
    add_u64(o, "coalesced", ps.coalesced);
    add_u64(o, "errors", ps.errors);
    add_u64(o, "capped", ps.capped);
    add_u64(o, "in_flight", ps.in_flight);
    add_u64(o, "cached", ps.cached);
    return o;
}

static json_object *heartbeat_json(struct chan *c)
{
    const struct worker_stats *st = worker_stats(c->w);
    json_object *o = json_object_new_object();

    json_object_object_add(o, "type", json_object_new_string("heartbeat"));
    add_u64(o, "pid", (uint64_t)getpid());
    add_u64(o, "clients", st->clients);
    add_u64(o, "connections", st->connections);
    add_u64(o, "links_up", st->links_up);
    add_u64(o, "links_total", st->links_total);
    add_u64(o, "links_syncing", st->links_syncing);
    add_u64(o, "requests", st->requests);
    add_u64(o, "iamat", st->iamat);
    add_u64(o, "whatsat", st->whatsat);
    add_u64(o, "invalid", st->invalid);
    add_u64(o, "floods_in", st->floods_in);
    add_u64(o, "floods_out", st->floods_out);
    add_u64(o, "dropped", c->dropped);
    json_object_object_add(o, "places", places_json(c->w->places));
    return o;
}

void chan_heartbeat(struct chan *c)
{
    if (c != NULL && !c->closed)
        chan_send(c, heartbeat_json(c));
}

void chan_ready(struct chan *c)
{
    json_object *o;

    if (c == NULL || c->closed)
        return;
    o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("ready"));
    add_u64(o, "pid", (uint64_t)getpid());
    add_u64(o, "port", c->w->self->port);
    json_object_object_add(o, "name", json_object_new_string(c->w->self->name));
    chan_send(c, o);
    chan_heartbeat(c);
}

static void chan_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct chan *c = io->data;
    char buf[512];

    (void)loop;
    (void)revents;
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n > 0)
            continue;
        if (n == 0) {
            chan_closed(c, "reached EOF (supervisor gone)");
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            chan_closed(c, strerror(errno));
        }
        return;
    }
}

static void chan_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    chan_flush(io->data);
}

static void chan_hb_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    chan_heartbeat(t->data);
}

struct chan *chan_open(struct worker *w, int fd, char *err, size_t errlen)
{
    struct chan *c;
    double every = w->cfg->heartbeat_interval > 0 ? w->cfg->heartbeat_interval : 1.0;

    /* A bad fd number fails here (EBADF); a non-socket fails the first send. */
    if (net_set_nonblock(fd) != 0 || net_set_cloexec(fd, 1) != 0) {
        snprintf(err, errlen, "channel fd %d: %s", fd, strerror(errno));
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "channel: out of memory");
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    ev_io_init(&c->rio, chan_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, chan_write_cb, fd, EV_WRITE);
    ev_timer_init(&c->hb, chan_hb_cb, every, every);
    c->rio.data = c->wio.data = c->hb.data = c;
    ev_io_start(w->loop, &c->rio);
    ev_timer_start(w->loop, &c->hb);
    return c;
}

void chan_free(struct chan *c)
{
    if (c == NULL)
        return;
    ev_io_stop(c->w->loop, &c->rio);
    ev_io_stop(c->w->loop, &c->wio);
    ev_timer_stop(c->w->loop, &c->hb);
    close(c->fd);
    free(c);
}
