/*
 * chan: the worker's end of the supervisor channel. Newline-terminated JSON
 * objects (json-c) go out: one "ready", then a "heartbeat" every
 * heartbeat_interval. Input is read as lines of at most CHAN_IN_MAX bytes:
 * {"type":"save","id":N} asks for a snapshot now (the on_save hook), answered
 * by "saved" and a heartbeat once it ended; anything else is dropped. EOF
 * means the supervisor died or closed us, and the worker stops (the second
 * no-orphan signal after PR_SET_PDEATHSIG).
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
#include "version.h"

/* A heartbeat is ~400 bytes; more than this queued means the supervisor is
 * not reading (stopped, or busy), and a stale heartbeat is worth nothing. */
#define CHAN_OUT_MAX 16384
#define CHAN_IN_MAX  512 /* a longer line from the supervisor is dropped */

struct chan {
    struct ev_loop *loop;
    struct chan_hooks hooks;
    int fd;
    int closed;       /* EOF or a write error seen: the worker stops */
    ev_io rio;        /* input: EOF detection */
    ev_io wio;        /* runs only while out holds unsent bytes */
    ev_timer hb;      /* heartbeat_interval */
    uint64_t dropped; /* messages not queued because out was full */
    size_t outlen;
    char out[CHAN_OUT_MAX];
    size_t inlen;
    int in_skip; /* dropping the rest of an overlong line */
    char in[CHAN_IN_MAX];
};

static void chan_closed(struct chan *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = 1;
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_timer_stop(c->loop, &c->hb);
    log_warn("supervisor channel %s: stopping", why);
    if (c->hooks.on_eof)
        c->hooks.on_eof(c->hooks.arg);
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
        ev_io_start(c->loop, &c->wio);
    else
        ev_io_stop(c->loop, &c->wio);
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

static json_object *places_json(const struct chan_stats *st)
{
    json_object *o = json_object_new_object();

    add_u64(o, "upstream", st->places.upstream);
    add_u64(o, "hits", st->places.hits);
    add_u64(o, "coalesced", st->places.coalesced);
    add_u64(o, "errors", st->places.errors);
    add_u64(o, "in_flight", st->places.in_flight);
    add_u64(o, "cached", st->places.cached);
    return o;
}

static void add_secs(json_object *o, const char *key, double v)
{
    json_object_object_add(o, key, v < 0 ? NULL : json_object_new_double(v));
}

/* The last snapshot, or null without state_dir. */
static json_object *snap_json(const struct chan_stats *st)
{
    json_object *o;

    if (!st->snap.on)
        return NULL;
    o = json_object_new_object();
    add_secs(o, "age", st->snap.age);
    add_u64(o, "bytes", st->snap.bytes);
    add_u64(o, "records", st->snap.records);
    add_secs(o, "duration", st->snap.saves > 0 ? st->snap.duration : -1);
    add_secs(o, "fork_ms", st->snap.saves > 0 ? st->snap.fork_ms : -1);
    add_secs(o, "fork_ms_max", st->snap.fork_ms_max);
    add_u64(o, "saves", st->snap.saves);
    add_u64(o, "failures", st->snap.failures);
    add_u64(o, "save_id", st->snap.save_id);
    json_object_object_add(o, "running", json_object_new_boolean(st->snap.running));
    json_object_object_add(o, "error",
                           st->snap.error ? json_object_new_string(st->snap.error) : NULL);
    return o;
}

static void get_stats(struct chan *c, struct chan_stats *st)
{
    memset(st, 0, sizeof *st);
    if (c->hooks.stats)
        c->hooks.stats(c->hooks.arg, st);
}

static json_object *heartbeat_json(struct chan *c)
{
    struct chan_stats stats;
    const struct chan_stats *st = &stats;
    json_object *o = json_object_new_object();

    get_stats(c, &stats);

    json_object_object_add(o, "type", json_object_new_string("heartbeat"));
    add_u64(o, "pid", (uint64_t)getpid());
    json_object_object_add(o, "version", json_object_new_string(herd_version));
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
    add_u64(o, "expired", st->expired);
    add_u64(o, "evicted", st->evicted);
    add_u64(o, "expired_arrival", st->expired_arrival);
    add_u64(o, "dropped", c->dropped);
    json_object_object_add(o, "places", places_json(st));
    json_object_object_add(o, "snapshot", snap_json(st));
    return o;
}

void chan_heartbeat(struct chan *c)
{
    if (c != NULL && !c->closed)
        chan_send(c, heartbeat_json(c));
}

void chan_ready(struct chan *c, const char *name, unsigned port)
{
    json_object *o;

    if (c == NULL || c->closed)
        return;
    o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("ready"));
    add_u64(o, "pid", (uint64_t)getpid());
    add_u64(o, "port", port);
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "version", json_object_new_string(herd_version));
    chan_send(c, o);
    chan_heartbeat(c);
}

void chan_saved(struct chan *c)
{
    struct chan_stats st;
    json_object *o;

    if (c == NULL || c->closed)
        return;
    get_stats(c, &st);
    o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("saved"));
    json_object_object_add(o, "snapshot", snap_json(&st));
    chan_send(c, o);
    chan_heartbeat(c);
}

static void chan_on_line(struct chan *c, const char *line)
{
    json_object *msg = json_tokener_parse(line), *v;

    if (msg != NULL && json_object_object_get_ex(msg, "type", &v) &&
        strcmp(json_object_get_string(v), "save") == 0 && c->hooks.on_save != NULL) {
        int64_t id = json_object_object_get_ex(msg, "id", &v) ? json_object_get_int64(v) : 0;
        c->hooks.on_save(c->hooks.arg, id > 0 ? (uint64_t)id : 0);
    }
    json_object_put(msg);
}

/* Splits what was read into lines; an overlong one is dropped whole. */
static void chan_take(struct chan *c, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (c->inlen < sizeof(c->in) - 1)
                c->in[c->inlen++] = p[i];
            else
                c->in_skip = 1;
            continue;
        }
        c->in[c->inlen] = '\0';
        if (!c->in_skip)
            chan_on_line(c, c->in);
        c->inlen = 0;
        c->in_skip = 0;
    }
}

static void chan_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct chan *c = io->data;
    char buf[512];

    (void)loop;
    (void)revents;
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n > 0) {
            chan_take(c, buf, (size_t)n);
            continue;
        }
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

struct chan *chan_open(struct ev_loop *loop, int fd, double every, const struct chan_hooks *hooks,
                       char *err, size_t errlen)
{
    struct chan *c;

    if (every <= 0)
        every = 1.0;
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
    c->loop = loop;
    c->hooks = *hooks;
    c->fd = fd;
    ev_io_init(&c->rio, chan_read_cb, fd, EV_READ);
    ev_io_init(&c->wio, chan_write_cb, fd, EV_WRITE);
    ev_timer_init(&c->hb, chan_hb_cb, every, every);
    c->rio.data = c->wio.data = c->hb.data = c;
    ev_io_start(loop, &c->rio);
    ev_timer_start(loop, &c->hb);
    return c;
}

void chan_free(struct chan *c)
{
    if (c == NULL)
        return;
    ev_io_stop(c->loop, &c->rio);
    ev_io_stop(c->loop, &c->wio);
    ev_timer_stop(c->loop, &c->hb);
    close(c->fd);
    free(c);
}
