/*
 * chan: the worker's end of the supervisor channel. Newline-terminated JSON
 * objects (json-c) go out: one "ready", then a "heartbeat" every
 * heartbeat_interval. Input is read as lines of at most CTLPROTO_CHAN_MAX
 * bytes: {"type":"config"} carries a new generation, handed to the on_config
 * hook and answered with {"type":"applied"}; {"type":"save","id":N} asks for
 * a snapshot now (the on_save hook), answered by "saved" and a heartbeat once
 * it ended; anything else is dropped. EOF means the supervisor died or closed
 * us, and the worker stops (the second no-orphan signal after
 * PR_SET_PDEATHSIG).
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

#include "ctlproto.h"
#include "log.h"
#include "net.h"
#include "version.h"

/* A heartbeat is ~400 bytes; more than this queued means the supervisor is
 * not reading (stopped, or busy), and a stale heartbeat is worth nothing. */
#define CHAN_OUT_MAX 16384

struct chan {
    struct ev_loop *loop;
    struct chan_hooks hooks;
    int fd;
    int closed;       /* EOF or a write error seen: the worker stops */
    ev_io rio;        /* input: EOF detection */
    ev_io wio;        /* runs only while out holds unsent bytes */
    ev_timer hb;      /* heartbeat_interval */
    uint64_t dropped; /* messages not queued because out was full */
    char *in;         /* owned; a partial input line, at most CTLPROTO_CHAN_MAX */
    size_t inlen, incap;
    int skipping; /* dropping the rest of an over-long line */
    size_t outlen;
    char out[CHAN_OUT_MAX];
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
    add_u64(o, "capped", st->places.capped);
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

void chan_set_interval(struct chan *c, double every)
{
    if (c == NULL)
        return;
    c->hb.repeat = every > 0 ? every : 1.0;
    ev_timer_again(c->loop, &c->hb);
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

/* {"type":"config","gen":N,"text":"..."}: apply it and say how it went. */
static void on_config(struct chan *c, json_object *msg)
{
    json_object *gen = NULL, *text = NULL, *o;
    char err[512] = "";
    int r = -1;

    json_object_object_get_ex(msg, "gen", &gen);
    if (json_object_object_get_ex(msg, "text", &text) &&
        json_object_is_type(text, json_type_string))
        r = c->hooks.on_config
                ? c->hooks.on_config(c->hooks.arg, json_object_get_string(text),
                                     (size_t)json_object_get_string_len(text), err, sizeof(err))
                : -1;
    else
        snprintf(err, sizeof(err), "no text");
    o = json_object_new_object();
    json_object_object_add(o, "type", json_object_new_string("applied"));
    json_object_object_add(o, "gen", json_object_new_int64(gen ? json_object_get_int64(gen) : 0));
    json_object_object_add(o, "status",
                           json_object_new_string(r == 0   ? "applied"
                                                  : r == 1 ? "ignored"
                                                           : "failed"));
    if (r != 0)
        json_object_object_add(o, "error", json_object_new_string(err));
    chan_send(c, o);
}

/* {"type":"save","id":N}: a snapshot now; "saved" follows once it ended. */
static void on_save(struct chan *c, json_object *msg)
{
    json_object *v;
    int64_t id = json_object_object_get_ex(msg, "id", &v) ? json_object_get_int64(v) : 0;

    if (c->hooks.on_save != NULL)
        c->hooks.on_save(c->hooks.arg, id > 0 ? (uint64_t)id : 0);
}

static void on_line(struct chan *c, const char *line, size_t len)
{
    json_object *msg = json_tokener_parse(line), *type;

    if (strlen(line) != len || msg == NULL || !json_object_object_get_ex(msg, "type", &type))
        log_warn("supervisor channel: bad message ignored");
    else if (strcmp(json_object_get_string(type), "config") == 0)
        on_config(c, msg);
    else if (strcmp(json_object_get_string(type), "save") == 0)
        on_save(c, msg);
    json_object_put(msg);
}

/* Appends N bytes of input and hands over each complete line. */
static void take_input(struct chan *c, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (!c->skipping && c->in) {
                c->in[c->inlen] = '\0';
                on_line(c, c->in, c->inlen);
            }
            c->inlen = 0;
            c->skipping = 0;
            continue;
        }
        if (c->skipping)
            continue;
        if (c->inlen + 1 >= c->incap) {
            size_t cap = c->incap ? c->incap * 2 : 4096;
            char *bigger = cap <= CTLPROTO_CHAN_MAX ? realloc(c->in, cap) : NULL;
            if (!bigger) {
                log_warn("supervisor channel: line over %d bytes dropped", CTLPROTO_CHAN_MAX);
                c->skipping = 1;
                c->inlen = 0;
                continue;
            }
            c->in = bigger;
            c->incap = cap;
        }
        if (c->in)
            c->in[c->inlen++] = buf[i];
    }
}

static void chan_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct chan *c = io->data;
    char buf[16384];

    (void)loop;
    (void)revents;
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof(buf));

        if (n > 0) {
            take_input(c, buf, (size_t)n);
            if (c->closed)
                return;
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
    free(c->in);
    free(c);
}
