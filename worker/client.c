/*
 * client: the client protocol on a conn. Each request takes its turn in the
 * conn's reply queue only while an earlier WHATSAT is still waiting on
 * Places; otherwise replies go straight to the output buffer. A conn with
 * too many replies waiting stops being read until they drain.
 */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "links.h"
#include "log.h"
#include "places.h"
#include "protocol.h"
#include "store.h"
#include "worker.h"

#define SLOTS_PAUSE  64 /* replies waiting before a conn stops being read */
#define SLOTS_RESUME 16

/* Stands for "asked, not answered yet" until places_query returns a handle. */
static struct places_req *const REQ_ASKING = (struct places_req *)&REQ_ASKING;

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

/* Sends every finished reply at the head of the queue. */
static void flush_slots(struct conn *c)
{
    while (c->slot_head && c->slot_head->req == NULL) {
        struct conn_slot *s = c->slot_head;
        c->slot_head = s->next;
        if (c->slot_head == NULL)
            c->slot_tail = NULL;
        c->nslots--;
        log_io(c, "out", s->data, s->len);
        conn_send(c, s->data, s->len);
        free(s->data);
        free(s);
        if (c->state == CONN_CLOSED)
            return;
    }
    if (c->nslots <= SLOTS_RESUME)
        conn_pause(c, 0);
}

static struct conn_slot *slot_push(struct conn *c)
{
    struct conn_slot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->conn = c;
    if (c->slot_tail)
        c->slot_tail->next = s;
    else
        c->slot_head = s;
    c->slot_tail = s;
    if (++c->nslots >= SLOTS_PAUSE)
        conn_pause(c, 1);
    return s;
}

/* Queues one reply; REPLY is copied when it must wait its turn. */
static void reply(struct conn *c, const char *data, size_t len)
{
    if (c->slot_head == NULL) {
        log_io(c, "out", data, len);
        conn_send(c, data, len);
        return;
    }
    char *copy = malloc(len);
    struct conn_slot *s = copy ? slot_push(c) : NULL;
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
    worker_self->stats.invalid++;
    reply_question(c, line, len);
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
    struct worker *w = worker_self;
    char at[PROTO_AT_MAX + 1];
    int n = proto_format_at(w->self->name, m, now, at, sizeof at - 1);
    if (n < 0) {
        conn_close(c, "AT line too long");
        return;
    }
    w->stats.iamat++;
    /* The client ID sits just before " LOC TIME" at the end of the AT line. */
    size_t tail = m->id.len + 1 + m->loc.len + 1 + m->time.len;
    struct proto_str id = {at + (size_t)n - tail, m->id.len};
    const struct store_rec *rec;
    int64_t origin = store_ns(now); /* this server got it: the record's origin */
    int rc = store_put(w->store, id, m->t, origin, origin, at, (size_t)n, &rec);
    if (rc < 0 && rc != STORE_EXPIRED) { /* not kept: the client must not believe it was */
        worker_store_failed(w, m->id.p, m->id.len);
        reply_invalid(c, line, len);
        return;
    }
    if (rc > 0)
        links_flood(w->links, rec, NULL);
    at[n] = '\n';
    reply(c, at, (size_t)n + 1);
}

static void on_places(void *arg, const char *json, size_t len)
{
    struct conn_slot *s = arg;
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
    struct worker *w = worker_self;
    const struct store_rec *rec = store_get(w->store, m->id.p, m->id.len, store_ns(now));
    struct proto_msg at;
    struct proto_str lat, lng;
    if (rec == NULL || proto_parse(rec->line, rec->len, &at) != PROTO_AT ||
        proto_parse_location(at.loc.p, at.loc.len, &lat, &lng) < 0) {
        reply_invalid(c, line, len);
        return;
    }
    w->stats.whatsat++;
    /* Copy the AT line now: a newer update may replace the record before
     * Places answers, and the reply must be the one this request saw. */
    char *data = malloc(rec->len + 1u);
    struct conn_slot *s = data ? slot_push(c) : NULL;
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
        places_query(w->places, lat, lng, m->radius_m_milli, m->bound, on_places, s);
    if (req != NULL)
        s->req = req; /* otherwise on_places already ran and may have freed s */
}

static void client_line(struct conn *c, char *line, size_t len)
{
    struct worker *w = worker_self;
    struct proto_time now = now_exact(); /* receive time, before any work */
    log_io(c, "in", line, len);
    struct proto_msg m;
    switch (proto_parse(line, len, &m)) {
    case PROTO_EMPTY: return;
    case PROTO_IAMAT:
        w->stats.requests++;
        handle_iamat(c, &m, now, line, len);
        return;
    case PROTO_WHATSAT:
        w->stats.requests++;
        handle_whatsat(c, &m, now, line, len);
        return;
    case PROTO_INVALID:
        if (c->slot_head == NULL && links_is_hello(line, len)) {
            links_adopt(w->links, c, line, len);
            return;
        }
        break;
    case PROTO_AT: /* only an authenticated neighbour may send AT */ break;
    }
    w->stats.requests++;
    reply_invalid(c, line, len);
}

static void client_overlong(struct conn *c, const char *first, size_t limit)
{
    log_warn("client %s: line longer than %zu bytes, closing", c->peer, limit);
    worker_self->stats.invalid++;
    reply_question(c, first, limit);
    conn_drain(c, "line too long");
}

static void client_close(struct conn *c, const char *why)
{
    log_debug("client %s: closed: %s", c->peer, why);
    while (c->slot_head) {
        struct conn_slot *s = c->slot_head;
        c->slot_head = s->next;
        if (s->req != NULL && s->req != REQ_ASKING)
            places_cancel(s->req);
        free(s->data);
        free(s);
    }
    c->slot_tail = NULL;
    c->nslots = 0;
}

const struct conn_ops client_ops = {
    .on_line = client_line,
    .on_overlong = client_overlong,
    .on_close = client_close,
};
