/*
 * link_sync: the traffic of a live link. Received AT lines are stored and,
 * when newer, flooded to every other live link; heartbeats answer; and when
 * a link comes up the whole store is dumped to the neighbour in SYNC
 * batches, refilled from on_drain so the dump never outgrows the output
 * queue and costs no write(2) per record.
 */
#include <stdio.h>
#include <string.h>

#include <errno.h>

#include "link_int.h"
#include "links.h"
#include "log.h"
#include "mono.h"
#include "protocol.h"
#include "store.h"

/* Room for one AT line and its '\n'. */
#define AT_BUF LINK_AT_BUF
/* A resync keeps at most this much queued (and at most a quarter of the
 * link's queue, leaving the rest to live floods). */
#define RESYNC_CHUNK ((size_t)256 * 1024)

static size_t resync_chunk(const struct conn *c)
{
    size_t q = c->out_max / 4;
    return q < RESYNC_CHUNK ? q : RESYNC_CHUNK;
}

/* Counts a batch record; logs the summary when a RELAY batch is complete. */
static void batch_count(struct lconn *lc, size_t len, int rc)
{
    if (!lc->batch_relay) {
        lc->in_recs++;
        lc->in_bytes += len + 1;
        lc->in_new += rc > 0;
        return;
    }
    lc->rl_recs++;
    lc->rl_bytes += len + 1;
    lc->rl_new += rc > 0;
    if (lc->batch_left == 0)
        log_debug("relay from %s: %zu records (%zu new), %zu bytes", lc->l->peer->name, lc->rl_recs,
                  lc->rl_new, lc->rl_bytes);
}

/* The loop's wall-clock time in ns: record expiry is wall-clock by definition. */
static int64_t wall_ns(const struct links *ls)
{
    return (int64_t)(ev_now(ls->loop) * 1e9);
}

/* An update the store could not keep (errno says why). */
static void store_failed(struct links *ls, struct proto_str id)
{
    char what[128];
    snprintf(what, sizeof what, "store: flooded update not kept: %s; client", strerror(errno));
    log_line_limited(&ls->store_warn, LOG_WARN, what, id.p, id.len);
}

/* A line a neighbour should not send: the first one and then a count per
 * second, so a confused or hostile neighbour cannot flood the log. */
static void odd_line(struct lconn *lc, const char *what, const char *line, size_t len)
{
    uint64_t quiet;
    link_log_io(LOG_DEBUG, lc->label, "in", line, len);
    if (log_limit(&lc->l->ls->odd_warn, 1.0, &quiet))
        log_warn("%s: ignoring %s (and %llu more such lines since the last warning)", lc->label,
                 what, (unsigned long long)quiet);
}

/* An AT line from the neighbour: store it, and pass it on when newer. */
static void got_at(struct lconn *lc, const char *line, size_t len)
{
    struct links *ls = lc->l->ls;
    int quiet = lc->batch_left > 0; /* batch records are logged as a summary */
    lc->sum.at_in++;
    if (quiet)
        lc->batch_left--;
    else
        link_log_io(LOG_DEBUG, lc->label, "in", line, len);
    struct proto_msg m;
    char at[AT_BUF];
    struct proto_str id;
    struct proto_time origin;
    const struct store_rec *rec = NULL;
    int rc = proto_parse(line, len, &m) == PROTO_AT && proto_at_origin(&m, &origin) == 0
                 ? link_at_canon(&m, at, sizeof at, &id)
                 : -1;
    if (rc < 0) {
        odd_line(lc, "a line that is not an AT line", line, len);
    } else {
        ls->stats.floods_in++;
        rc = store_put(ls->store, id, m.t, store_ns(origin), wall_ns(ls), at, (size_t)rc, &rec);
        if (rc < 0 && rc != STORE_EXPIRED) /* expired on arrival: counted by the store */
            store_failed(ls, id);
    }
    if (quiet)
        batch_count(lc, len, rc);
    /* What a resync taught us goes on in batches too, so a restarted worker
     * does not log its whole store once per neighbour. */
    if (rc > 0 && quiet)
        link_relay(ls, rec, lc->c);
    else if (rc > 0)
        links_flood(ls, rec, lc->c);
}

/* Any line but an AT line ends the batch in progress: an honest neighbour
 * sends exactly the AT lines it announced, right after the header. */
static void end_batch(struct lconn *lc)
{
    if (lc->batch_left == 0)
        return;
    log_warn("%s: batch ended %llu AT lines short of the %llu announced", lc->label,
             (unsigned long long)lc->batch_left, (unsigned long long)lc->batch_count);
    lc->batch_left = 0;
}

static void got_batch(struct lconn *lc, const struct link_msg *m)
{
    /* No honest batch holds more records than a store may: a huge count
     * must not make everything after it a quiet batch record. */
    uint64_t cap = lc->l->ls->cfg->max_clients;
    lc->batch_count = m->count < cap ? m->count : cap;
    lc->batch_left = lc->batch_count;
    lc->batch_relay = m->kind == LINK_MSG_RELAY;
    if (lc->batch_relay)
        lc->rl_recs = lc->rl_new = lc->rl_bytes = 0;
    else if (!lc->in_sync) {
        lc->in_sync = 1;
        lc->in_t0 = mono_now();
        lc->in_recs = lc->in_new = lc->in_bytes = 0;
    }
}

static void got_synced(struct lconn *lc, const struct link_msg *m)
{
    log_info("resync from %s: %zu records (%zu new), %zu bytes, %.0f ms", lc->l->peer->name,
             lc->in_recs, lc->in_new, lc->in_bytes,
             lc->in_sync ? (mono_now() - lc->in_t0) * 1e3 : 0.0);
    if (m->count != lc->in_recs)
        log_warn("link %s: resync announced %llu records, %zu arrived", lc->l->peer->name,
                 (unsigned long long)m->count, lc->in_recs);
    lc->in_sync = 0;
    lc->synced = 1;
    link_report(lc->l->ls); /* operators wait for this between rolling restarts */
}

void link_up_line(struct lconn *lc, char *line, size_t len)
{
    struct link_msg m;
    lc->sum.lines_in++;
    lc->sum.bytes_in += len + 1;
    enum link_kind k = link_parse(line, len, &m);
    if (k == LINK_MSG_NONE) {
        got_at(lc, line, len);
        return;
    }
    /* Link traffic line by line is for debug; info has the summaries. */
    link_log_io(LOG_DEBUG, lc->label, "in", line, len);
    end_batch(lc);
    switch (k) {
    case LINK_MSG_PING: link_send_ctl(lc, LOG_DEBUG, "%s PONG", LINK_VERSION); return;
    case LINK_MSG_PONG: return;
    case LINK_MSG_SYNC:
    case LINK_MSG_RELAY: got_batch(lc, &m); return;
    case LINK_MSG_SYNCED: got_synced(lc, &m); return;
    case LINK_MSG_REFUSED:
        link_log_refused(lc, m.reason);
        lc->why = "refused by the neighbour";
        conn_close(lc->c, lc->why);
        return;
    default: /* a newer minor version's verb, or garbage: keep the link */
        odd_line(lc, "an unexpected line", line, len);
        return;
    }
}

static void resync_done(struct lconn *lc)
{
    lc->dumping = 0;
    lc->c->low_water = 0;
    log_info("resync to %s: %zu records, %zu bytes, %.0f ms", lc->l->peer->name, lc->out_recs,
             lc->out_bytes, (mono_now() - lc->out_t0) * 1e3);
    link_send_ctl(lc, LOG_INFO, "%s SYNCED %zu", LINK_VERSION, lc->out_recs);
}

/* Queues the N live records of [cursor, end) behind a SYNC header. -1 when
 * the conn closed. */
static int send_batch(struct lconn *lc, size_t end, size_t n, int64_t now)
{
    const struct store *st = lc->l->ls->store;
    if (link_send_ctl(lc, LOG_DEBUG, "%s SYNC %zu", LINK_VERSION, n) < 0)
        return -1;
    for (; lc->cursor < end; lc->cursor++) {
        const struct store_rec *r = store_at(st, lc->cursor, now);
        if (r == NULL) /* a hole, or expired: never sent */
            continue;
        char line[AT_BUF];
        if (r->len + 1u > sizeof line) { /* cannot happen: records are AT lines */
            conn_close(lc->c, "oversized record");
            return -1;
        }
        memcpy(line, r->line, r->len);
        line[r->len] = '\n';
        if (conn_send(lc->c, line, r->len + 1u) < 0)
            return -1;
        lc->out_recs++;
        lc->out_bytes += r->len + 1u;
        lc->sum.lines_out++;
        lc->sum.at_out++;
        lc->sum.bytes_out += r->len + 1u;
        lc->l->ls->stats.floods_out++; /* "AT lines sent on links" */
    }
    return 0;
}

void link_resync_fill(struct lconn *lc)
{
    const struct store *st = lc->l->ls->store;
    struct conn *c = lc->c;
    size_t chunk = resync_chunk(c);
    int64_t now = wall_ns(lc->l->ls); /* one instant for count and send */
    while (lc->dumping && buf_len(&c->out) < chunk) {
        if (lc->cursor >= lc->dump_end) {
            resync_done(lc);
            return;
        }
        size_t end = lc->cursor, bytes = 0, n = 0;
        for (; end < lc->dump_end && bytes < chunk; end++) {
            const struct store_rec *r = store_at(st, end, now);
            if (r != NULL) {
                bytes += r->len + 1u;
                n++;
            }
        }
        if (n == 0)
            lc->cursor = end;
        else if (send_batch(lc, end, n, now) < 0)
            return;
    }
}

/* The dump covers the records held now. A record stored after this point,
 * or a newer one replacing a record already sent, reaches the neighbour by
 * the live flood (the link is up), so a worker that is itself learning
 * everything does not echo it all back. */
void link_resync_start(struct lconn *lc)
{
    lc->dumping = 1;
    lc->cursor = 0;
    lc->dump_end = store_end(lc->l->ls->store);
    lc->out_recs = lc->out_bytes = 0;
    lc->out_t0 = mono_now();
    lc->c->low_water = resync_chunk(lc->c);
    link_resync_fill(lc);
}

/* REC as a line with its '\n' in LINE; 0, or -1 when it is not an AT line. */
static int rec_line(const struct store_rec *rec, char line[AT_BUF])
{
    if (rec->len + 1u > AT_BUF) {
        log_error("flood: record of %u bytes is not an AT line, not sent", (unsigned)rec->len);
        return -1;
    }
    memcpy(line, rec->line, rec->len);
    line[rec->len] = '\n';
    return 0;
}

static void flood_one(struct lconn *lc, const char *line, size_t len)
{
    if (link_send_line(lc, line, len, 1) == 0)
        lc->l->ls->stats.floods_out++;
}

void links_flood(struct links *ls, const struct store_rec *rec, const struct conn *from)
{
    char line[AT_BUF];
    if (ls == NULL || rec == NULL || rec_line(rec, line) < 0)
        return;
    for (size_t i = 0; i < ls->n; i++) {
        struct lconn *lc = ls->v[i].up;
        if (lc != NULL && lc->c != from)
            flood_one(lc, line, rec->len + 1u);
    }
}

/* Sends LC's staged relays as one RELAY batch. -1 when the conn closed. */
static int relay_flush(struct lconn *lc)
{
    size_t n = lc->relay_n, bytes = buf_len(&lc->relay);
    if (n == 0)
        return 0;
    lc->relay_n = 0;
    if (link_send_ctl(lc, LOG_DEBUG, "%s RELAY %zu", LINK_VERSION, n) < 0)
        return -1;
    log_debug("relay to %s: %zu records, %zu bytes", lc->l->peer->name, n, bytes);
    lc->sum.lines_out += n;
    lc->sum.at_out += n;
    lc->sum.bytes_out += bytes;
    if (conn_send(lc->c, buf_head(&lc->relay), bytes) < 0)
        return -1;
    lc->l->ls->stats.floods_out += n;
    buf_consume(&lc->relay, bytes, 0);
    return 0;
}

void link_relay_flush_all(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct links *ls = t->data;
    (void)loop;
    (void)revents;
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].up)
            relay_flush(ls->v[i].up);
}

void link_relay(struct links *ls, const struct store_rec *rec, const struct conn *from)
{
    char line[AT_BUF];
    size_t len = rec->len + 1u;
    if (rec_line(rec, line) < 0)
        return;
    for (size_t i = 0; i < ls->n; i++) {
        struct lconn *lc = ls->v[i].up;
        if (lc == NULL || lc->c == from)
            continue;
        size_t chunk = resync_chunk(lc->c);
        if (buf_len(&lc->relay) + len > chunk && relay_flush(lc) < 0)
            continue;
        if (buf_append(&lc->relay, line, len, chunk) < 0) {
            flood_one(lc, line, len); /* out of memory: the plain way */
            continue;
        }
        lc->relay_n++;
    }
    /* Sent next iteration: one batch holds everything read in this one. */
    if (!ev_is_active(&ls->relay_timer)) {
        ev_timer_set(&ls->relay_timer, 0., 0.);
        ev_timer_start(ls->loop, &ls->relay_timer);
    }
}
