/*
 * client: the client protocol on a conn. Each request takes its turn in the
 * conn's reply queue only while an earlier WHATSAT is still waiting on
 * Places; otherwise replies go straight to the output buffer. A conn with
 * too many replies waiting stops being read until they drain. When its input
 * ends (EOF, an over-long line, a stopping worker) the conn drains once the
 * queue is empty, so every reply owed is written.
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "links.h"
#include "log.h"
#include "places.h"
#include "protocol.h"
#include "store.h"

#define SLOTS_PAUSE  64 /* replies waiting before a conn stops being read */
#define SLOTS_RESUME 16

/* Stands for "asked, not answered yet" until places_query returns a handle. */
static struct places_req *const REQ_ASKING = (struct places_req *)&REQ_ASKING;

/* A reply waiting for its turn behind a WHATSAT that waits on Places. */
struct slot {
    struct slot *next;
    struct conn *conn;
    struct places_req *req; /* non-NULL while Places has not answered */
    char *data;             /* owned; the reply once known */
    size_t len;
};

/* One client conn's state (conn->ud), made when first needed; freed in
 * client_close or when the conn turns out to be a neighbour. */
struct client {
    struct slot *head, *tail;
    unsigned nslots;
    unsigned done : 1; /* input ended: drain once the queue is empty */
};

static struct client_ctx *ctx_of(const struct conn *c)
{
    return c->ctx;
}

static struct client *client_of(struct conn *c)
{
    if (c->ud == NULL)
        c->ud = calloc(1, sizeof(struct client));
    return c->ud;
}

/* Nonzero while a reply waits in C's queue. */
static int queued(const struct conn *c)
{
    const struct client *cl = c->ud;
    return cl != NULL && cl->head != NULL;
}

static void log_io(const struct conn *c, const char *dir, const char *data, size_t len)
{
    if (!log_enabled(LOG_INFO))
        return;
    /* "client PEER DIR" by hand, not snprintf: this runs twice per request. */
    char prefix[7 + sizeof c->peer + 8];
    size_t plen = strnlen(c->peer, sizeof c->peer - 1), dlen = strnlen(dir, 6);
    memcpy(prefix, "client ", 7);
    memcpy(prefix + 7, c->peer, plen);
    prefix[7 + plen] = ' ';
    memcpy(prefix + 8 + plen, dir, dlen);
    prefix[8 + plen + dlen] = '\0';
    while (len > 0 && data[len - 1] == '\n') /* the line, not its terminator */
        len--;
    log_line(LOG_INFO, prefix, data, len);
}

/* Input has ended and nothing is owed any more: write out, then close. */
static void maybe_done(struct conn *c)
{
    const struct client *cl = c->ud;
    if (cl != NULL && cl->done && cl->head == NULL)
        conn_drain(c, "every reply written");
}

/* Sends every finished reply at the head of the queue. */
static void flush_slots(struct conn *c)
{
    struct client *cl = c->ud;
    while (cl->head && cl->head->req == NULL) {
        struct slot *s = cl->head;
        cl->head = s->next;
        if (cl->head == NULL)
            cl->tail = NULL;
        cl->nslots--;
        log_io(c, "out", s->data, s->len);
        conn_send(c, s->data, s->len);
        free(s->data);
        free(s);
        if (c->state == CONN_CLOSED)
            return;
    }
    if (cl->nslots <= SLOTS_RESUME)
        conn_pause(c, 0);
    maybe_done(c);
}

static struct slot *slot_push(struct conn *c)
{
    struct client *cl = client_of(c);
    struct slot *s = cl ? calloc(1, sizeof *s) : NULL;
    if (s == NULL)
        return NULL;
    s->conn = c;
    if (cl->tail)
        cl->tail->next = s;
    else
        cl->head = s;
    cl->tail = s;
    if (++cl->nslots >= SLOTS_PAUSE)
        conn_pause(c, 1);
    return s;
}

/* Queues one reply; REPLY is copied when it must wait its turn. */
static void reply(struct conn *c, const char *data, size_t len)
{
    if (!queued(c)) {
        log_io(c, "out", data, len);
        conn_send(c, data, len);
        return;
    }
    char *copy = malloc(len);
    struct slot *s = copy ? slot_push(c) : NULL;
    if (s == NULL) {
        free(copy);
        conn_close(c, "out of memory");
        return;
    }
    memcpy(copy, data, len);
    s->data = copy;
    s->len = len;
}

/* Replies "? " + DATA + "\n" (SPEC §4's answer to anything not understood). */
static void reply_question(struct conn *c, const char *data, size_t len)
{
    char stack[2 + 4096 + 1];
    char *buf = len <= sizeof stack - 3 ? stack : malloc(len + 3);
    if (buf == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    memcpy(buf, "? ", 2);
    memcpy(buf + 2, data, len);
    buf[len + 2] = '\n';
    reply(c, buf, len + 3);
    if (buf != stack)
        free(buf);
}

static void reply_invalid(struct conn *c, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r') /* the copy is "without its \r\n" */
        len--;
    ctx_of(c)->stats.invalid++;
    reply_question(c, line, len);
}

/* An update the store could not keep (errno says why; the client hears "? "). */
static void store_failed(struct client_ctx *x, struct proto_str id)
{
    char what[128];
    snprintf(what, sizeof what, "store: update not kept: %s; client", strerror(errno));
    log_line_limited(&x->store_warn, LOG_WARN, what, id.p, id.len);
}

static struct proto_time now_exact(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (struct proto_time){ts.tv_sec, (int32_t)ts.tv_nsec};
}

static void handle_iamat(struct conn *c, const struct proto_msg *m, struct proto_time now,
                         const char *line, size_t len)
{
    struct client_ctx *x = ctx_of(c);
    char at[PROTO_AT_MAX + 1];
    int n = proto_format_at(x->self, m, now, at, sizeof at - 1);
    if (n < 0) {
        conn_close(c, "AT line too long");
        return;
    }
    x->stats.iamat++;
    /* The client ID sits just before " LOC TIME" at the end of the AT line. */
    size_t tail = m->id.len + 1 + m->loc.len + 1 + m->time.len;
    struct proto_str id = {at + (size_t)n - tail, m->id.len};
    const struct store_rec *rec;
    int64_t origin = store_ns(now); /* this server got it: the record's origin */
    int rc = store_put(x->store, id, m->t, origin, origin, at, (size_t)n, &rec);
    if (rc < 0 && rc != STORE_EXPIRED) { /* not kept: the client must not believe it was */
        store_failed(x, m->id);
        reply_invalid(c, line, len);
        return;
    }
    if (rc > 0)
        links_flood(x->links, rec, NULL);
    at[n] = '\n';
    reply(c, at, (size_t)n + 1);
}

static void on_places(void *arg, const char *json, size_t len)
{
    struct slot *s = arg;
    struct conn *c = s->conn;
    char *data = realloc(s->data, s->len + len + 2);
    s->req = NULL;
    if (data == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    memcpy(data + s->len, json, len);
    memcpy(data + s->len + len, "\n\n", 2);
    s->data = data;
    s->len += len + 2;
    flush_slots(c);
}

static void handle_whatsat(struct conn *c, const struct proto_msg *m, struct proto_time now,
                           const char *line, size_t len)
{
    struct client_ctx *x = ctx_of(c);
    const struct store_rec *rec = store_get(x->store, m->id.p, m->id.len, store_ns(now));
    struct proto_msg at;
    struct proto_str lat, lng;
    if (rec == NULL || proto_parse(rec->line, rec->len, &at) != PROTO_AT ||
        proto_parse_location(at.loc.p, at.loc.len, &lat, &lng) < 0) {
        reply_invalid(c, line, len);
        return;
    }
    x->stats.whatsat++;
    /* Copy the AT line now: a newer update may replace the record before
     * Places answers, and the reply must be the one this request saw. */
    char *data = malloc(rec->len + 1u);
    struct slot *s = data ? slot_push(c) : NULL;
    if (s == NULL) {
        free(data);
        conn_close(c, "out of memory");
        return;
    }
    memcpy(data, rec->line, rec->len);
    data[rec->len] = '\n';
    s->data = data;
    s->len = rec->len + 1u;
    s->req = REQ_ASKING;
    struct places_req *req =
        places_query(x->places, lat, lng, m->radius_m_milli, m->bound, on_places, s);
    if (req != NULL)
        s->req = req; /* otherwise on_places already ran and may have freed s */
}

static void client_line(struct conn *c, char *line, size_t len)
{
    struct client_ctx *x = ctx_of(c);
    struct proto_time now = now_exact(); /* receive time, before any work */
    log_io(c, "in", line, len);
    struct proto_msg m;
    switch (proto_parse(line, len, &m)) {
    case PROTO_EMPTY: return;
    case PROTO_IAMAT:
        x->stats.requests++;
        handle_iamat(c, &m, now, line, len);
        return;
    case PROTO_WHATSAT:
        x->stats.requests++;
        handle_whatsat(c, &m, now, line, len);
        return;
    case PROTO_INVALID:
        if (!queued(c) && links_is_hello(line, len)) {
            free(c->ud); /* an empty queue: the conn is the links' now */
            c->ud = NULL;
            links_adopt(x->links, c, line, len);
            return;
        }
        break;
    case PROTO_AT: /* only an authenticated neighbour may send AT */ break;
    }
    x->stats.requests++;
    reply_invalid(c, line, len);
}

static void client_overlong(struct conn *c, const char *first, size_t limit)
{
    uint64_t quiet;
    if (log_limit(&ctx_of(c)->overlong_warn, 1.0, &quiet))
        log_warn("client %s: line longer than %zu bytes, closing (and %llu more clients since "
                 "the last warning)",
                 c->peer, limit, (unsigned long long)quiet);
    ctx_of(c)->stats.invalid++;
    reply_question(c, first, limit);
    /* The replies owed before it still go out, in order; then close. */
    conn_stop_reading(c);
}

/* No more input: close once every reply owed is written. */
static void client_eof(struct conn *c)
{
    struct client *cl = client_of(c);
    if (cl == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    cl->done = 1;
    maybe_done(c);
}

static void client_close(struct conn *c, const char *why)
{
    struct client *cl = c->ud;
    log_debug("client %s: closed: %s", c->peer, why);
    c->ud = NULL;
    if (cl == NULL)
        return;
    while (cl->head) {
        struct slot *s = cl->head;
        cl->head = s->next;
        if (s->req != NULL && s->req != REQ_ASKING)
            places_cancel(s->req);
        free(s->data);
        free(s);
    }
    free(cl);
}

const struct conn_ops client_ops = {
    .on_line = client_line,
    .on_overlong = client_overlong,
    .on_eof = client_eof,
    .on_close = client_close,
};
