/*
 * links: the worker's neighbour links (SPEC §5, docs/link-protocol.md). For
 * each pair, the server whose name sorts first dials and redials with
 * jittered exponential backoff, forever; the other accepts on its client
 * port (and knocks, link_knock.c). Owns the links, dialling and the
 * handshake's steps (its checks are link_hs.c's); traffic on live links is
 * link_sync.c's.
 */
#include "links.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "link_auth.h"
#include "link_int.h"
#include "log.h"
#include "mono.h"
#include "net.h"

/* Link lines are control lines and AT lines (canonical ones < LINK_AT_BUF):
 * a fixed limit, independent of the client max_line_length. */
#define LINK_MAX_LINE 4096

static const struct conn_ops link_ops;

/* Uniform in [0, 1) from xorshift64*; jitter needs no more. */
static double rand01(struct links *ls)
{
    ls->rng ^= ls->rng >> 12;
    ls->rng ^= ls->rng << 25;
    ls->rng ^= ls->rng >> 27;
    return (double)((ls->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* Next attempt after the current backoff, jittered to [1/2, 1] of it so
 * neighbours of a dead server do not redial in step; then the backoff doubles. */
static void backoff_redial(struct link *l)
{
    const struct cfg_herd *cfg = l->ls->cfg;
    link_schedule_redial(l, l->backoff * (0.5 + 0.5 * rand01(l->ls)));
    l->backoff *= 2;
    if (l->backoff > cfg->link_backoff_max)
        l->backoff = cfg->link_backoff_max;
}

/* Limits and liveness shared by dialled and accepted link conns. */
static void setup_conn(struct links *ls, struct conn *c)
{
    const struct cfg_herd *cfg = ls->cfg;
    c->out_max = cfg->link_queue_max;
    c->max_line = LINK_MAX_LINE;
    conn_set_idle(c, cfg->link_timeout);
    int idle = cfg->link_timeout >= 2 ? (int)cfg->link_timeout : 1;
    if (c->fd >= 0 && net_set_keepalive(c->fd, idle, 1, 3) < 0)
        log_debug("link %s: keepalive not set", c->peer);
}

static void dial_addr(struct link *l, const char *addr)
{
    struct links *ls = l->ls;
    char err[128];
    struct lconn *lc = calloc(1, sizeof *lc);
    struct conn *c =
        lc ? conn_dial(ls->pool, addr, l->peer->port, &link_ops, ls, lc, err, sizeof err) : NULL;
    if (c == NULL) {
        log_msg(l->attempts == 1 ? LOG_WARN : LOG_DEBUG, "link %s: cannot dial %s:%u: %s",
                l->peer->name, addr, (unsigned)l->peer->port, lc ? err : "out of memory");
        int next = lc != NULL && l->addr_i + 1 < l->naddr; /* "no route": try the next */
        free(lc);
        if (next)
            dial_addr(l, l->addr[++l->addr_i]);
        else
            backoff_redial(l);
        return;
    }
    *lc = (struct lconn){.l = l, .c = c, .state = LC_DIALING, .dialled = 1};
    link_label_unproved(lc);
    l->hs = lc;
    setup_conn(ls, c);
    if (ls->cfg->link_tls != CFG_TLS_OFF && conn_start_tls(c) < 0)
        return; /* closed: on_close redialled */
    if (l->attempts == 1)
        log_info("link %s: dialling %s", l->peer->name, c->peer);
    else
        log_debug("link %s: dialling %s (attempt %u)", l->peer->name, c->peer, l->attempts);
}

static void on_resolved(void *arg, const struct res_result *r)
{
    struct link *l = arg;
    if (r->gone)
        return;
    l->resolving = 0;
    struct links *ls = l->ls;
    if (l->up || l->hs || ls->stopping)
        return;
    if (!r->ok) {
        uint64_t quiet;
        if (log_limit(&ls->res_warn, 10.0, &quiet))
            log_warn("link %s: cannot resolve %s: %s (retrying with backoff; and %llu more "
                     "since the last warning)",
                     l->peer->name, l->peer->host, r->err, (unsigned long long)quiet);
        backoff_redial(l);
        return;
    }
    link_take_addrs(l, r, "dialling");
    dial_addr(l, l->addr[0]);
}

static void dial_now(struct link *l)
{
    struct links *ls = l->ls;
    if (l->up || l->hs || ls->stopping || l->resolving)
        return;
    l->last_dial = mono_now();
    l->attempts++;
    l->naddr = l->addr_i = 0;
    if (res_host_is_numeric(l->peer->host) || ls->res == NULL) {
        dial_addr(l, l->peer->host);
        return;
    }
    l->resolving = 1;
    res_lookup(ls->res, l->peer->host, on_resolved, l); /* again at every redial */
}

static void on_redial(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    dial_now(t->data);
}

static void on_ping(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct link *l = t->data;
    (void)loop;
    (void)revents;
    if (l->up)
        link_send_ctl(l->up, LOG_DEBUG, "%s PING", LINK_VERSION);
}

/* Forgets LC as an accepted handshake in progress; nonzero when it was one. */
static int pend_remove(struct link *l, const struct lconn *lc)
{
    for (size_t k = 0; k < LINK_PENDING_MAX; k++)
        if (l->pend[k] == lc) {
            l->pend[k] = NULL;
            return 1;
        }
    return 0;
}

/* A free slot for an accepted handshake, closing the oldest when all are
 * taken (a flood of HELLOs then costs the flooder its own handshakes). */
static size_t pend_slot(struct link *l)
{
    size_t oldest = 0;
    for (size_t k = 0; k < LINK_PENDING_MAX; k++) {
        if (l->pend[k] == NULL)
            return k;
        if (l->pend[k]->t0 < l->pend[oldest]->t0)
            oldest = k;
    }
    conn_close(l->pend[oldest]->c, "superseded: too many handshakes in progress");
    l->pend[oldest] = NULL; /* on_close cleared it already; make it plain */
    return oldest;
}

static void link_up(struct lconn *lc)
{
    struct link *l = lc->l;
    struct ev_loop *loop = l->ls->loop;
    if (l->up && l->up != lc) /* the neighbour redialled: the old conn is stale */
        conn_close(l->up->c, "replaced by a new connection");
    if (l->hs == lc)
        l->hs = NULL;
    pend_remove(l, lc);
    l->up = lc;
    lc->state = LC_UP;
    link_label_proved(lc); /* from here on its words are the neighbour's */
    l->up_since = mono_now();
    ev_timer_stop(loop, &l->redial);
    ev_timer_set(&l->ping, l->ls->cfg->link_ping_interval, l->ls->cfg->link_ping_interval);
    ev_timer_start(loop, &l->ping);
    char tls[96] = "";
    if (conn_is_tls(lc->c)) {
        memcpy(tls, ", ", 3);
        conn_tls_describe(lc->c, tls + 2, sizeof tls - 2);
    }
    if (lc->dialled && l->attempts > 1)
        log_info("link %s up (dialled %s, attempt %u%s)", l->peer->name, lc->c->peer, l->attempts,
                 tls);
    else
        log_info("link %s up (%s %s%s)", l->peer->name, lc->dialled ? "dialled" : "accepted from",
                 lc->c->peer, tls);
    l->attempts = 0;
    link_resync_start(lc);
    link_report(l->ls);
}

static void on_connect(struct conn *c)
{
    struct lconn *lc = c->ud;
    const struct cfg_server *p = lc->l->peer;
    if (lc->l->ls->cfg->link_tls == CFG_TLS_CERT && !conn_tls_peer_names(c, p->name, p->host)) {
        link_refuse(lc, "the certificate does not name the neighbour dialled"); /* inside TLS */
        return;
    }
    if (link_nonce(lc->nonce_d) < 0) {
        conn_close(c, "no random bytes for a nonce");
        return;
    }
    lc->state = LC_HELLO_SENT;
    link_send_ctl(lc, LOG_INFO, "%s HELLO %s %s %s", LINK_VERSION, link_self_name(lc->l->ls),
                  lc->l->peer->name, lc->nonce_d);
}

/* One line during the handshake; LINE has been logged. */
static void handshake_line(struct lconn *lc, const struct link_msg *m)
{
    switch (lc->state) {
    case LC_HELLO_SENT:
        if (m->kind != LINK_MSG_WELCOME)
            break;
        if (!link_str_is(m->name, lc->l->peer->name)) {
            link_refuse(lc, "wrong neighbour at that address");
            return;
        }
        memcpy(lc->nonce_a, m->nonce.p, LINK_NONCE_HEX);
        lc->nonce_a[LINK_NONCE_HEX] = '\0';
        if (link_send_proof(lc, "AUTH") == 0)
            lc->state = LC_AUTH_SENT;
        return;
    case LC_AUTH_SENT:
        if (m->kind == LINK_MSG_OK && link_check_proof(lc, m) == 0)
            link_up(lc);
        if (m->kind == LINK_MSG_OK)
            return;
        break;
    case LC_WELCOMED:
        if (m->kind == LINK_MSG_AUTH && link_check_proof(lc, m) == 0 &&
            link_send_proof(lc, "OK") == 0)
            link_up(lc);
        if (m->kind == LINK_MSG_AUTH)
            return;
        break;
    default: break;
    }
    link_refuse(lc, m->kind == LINK_MSG_NONE ? "data before the handshake completed"
                                             : "unexpected line in the handshake");
}

static void on_line(struct conn *c, char *line, size_t len)
{
    struct lconn *lc = c->ud;
    if (lc->state == LC_UP) {
        link_up_line(lc, line, len);
        return;
    }
    struct link_msg m;
    link_log_io(LOG_INFO, lc->label, "in", line, len);
    if (link_parse(line, len, &m) == LINK_MSG_REFUSED) {
        link_log_refused(lc, m.reason);
        lc->why = "refused by the neighbour";
        conn_close(c, lc->why);
        return;
    }
    handshake_line(lc, &m);
}

static void on_overlong(struct conn *c, const char *first, size_t limit)
{
    struct lconn *lc = c->ud;
    (void)first;
    log_warn("%s: line longer than %zu bytes, closing", lc->label, limit);
    conn_close(c, "line too long");
}

static void on_drain(struct conn *c)
{
    struct lconn *lc = c->ud;
    if (lc && lc->dumping)
        link_resync_fill(lc);
}

/* The neighbour closed its side: the link is gone (it never half-closes).
 * While we stop, our own conn_pool_stop_reading lands here too: the link
 * stays until links_drain has written what we owe it. */
static void on_eof(struct conn *c)
{
    struct lconn *lc = c->ud;
    if (lc && lc->l->ls->stopping && !c->peer_eof)
        return;
    conn_close(c, "closed by peer");
}

/* The link is down: was it up long enough that the backoff starts over? */
static void link_down(struct link *l, const char *why)
{
    struct links *ls = l->ls;
    double now = mono_now();
    ev_timer_stop(ls->loop, &l->ping);
    if (ls->stopping)
        log_info("link %s closed: %s", l->peer->name, why);
    else
        log_warn("link %s dropped after %.1f s: %s", l->peer->name, now - l->up_since, why);
    /* A link that keeps dropping right after it comes up (a neighbour that
     * never reads, say) backs off like one that cannot connect. */
    if (now - l->up_since >= ls->cfg->link_timeout)
        l->backoff = ls->cfg->link_backoff_min;
    link_report(ls);
}

static void on_close(struct conn *c, const char *why)
{
    struct lconn *lc = c->ud;
    if (lc == NULL)
        return;
    struct link *l = lc->l;
    const char *reason = lc->why ? lc->why : why;
    int dial_failed = 0;
    if (l->up == lc) {
        l->up = NULL;
        if (lc->batch_left > 0)
            log_warn("%s: dropped %llu AT lines short of a batch of %llu", lc->label,
                     (unsigned long long)lc->batch_left, (unsigned long long)lc->batch_count);
        link_summary(lc, "until it dropped");
        link_down(l, reason);
    } else if (pend_remove(l, lc)) {
        log_info("%s: handshake failed: %s", lc->label, reason);
    } else if (l->hs == lc) {
        l->hs = NULL;
        dial_failed = lc->state == LC_DIALING;
        if (lc->state == LC_DIALING && l->attempts > 1)
            log_debug("link %s: dial failed: %s", l->peer->name, reason);
        else if (lc->state == LC_DIALING)
            log_info("link %s: dial failed: %s (redialling with backoff)", l->peer->name, reason);
        else
            log_info("link %s: handshake failed: %s", l->peer->name, reason);
    }
    c->ud = NULL;
    buf_free(&lc->relay);
    free(lc);
    if (l->we_dial && l->up == NULL && l->hs == NULL && !l->ls->stopping) {
        if (dial_failed && l->addr_i + 1 < l->naddr)
            dial_addr(l, l->addr[++l->addr_i]); /* the name's next address */
        else
            backoff_redial(l);
    }
}

static const struct conn_ops link_ops = {
    .on_connect = on_connect,
    .on_line = on_line,
    .on_overlong = on_overlong,
    .on_eof = on_eof,
    .on_close = on_close,
    .on_drain = on_drain,
};

/* A client conn whose first line was a HELLO becomes a link conn. */
static void adopt_hello(struct links *ls, struct conn *c, const struct link_msg *m)
{
    if (!link_str_is(m->target, link_self_name(ls))) {
        link_refuse_conn(ls, c, "wrong server: the HELLO names another target");
        return;
    }
    struct link *l = link_find(ls, m->name);
    if (l == NULL) {
        link_refuse_conn(ls, c, "not a neighbour of this server");
        return;
    }
    if (l->we_dial) {
        link_refuse_conn(ls, c, "wrong direction: the server whose name sorts first dials");
        return;
    }
    if (!link_tls_fits(ls, c, l))
        return;
    struct lconn *lc = calloc(1, sizeof *lc);
    if (lc == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    *lc = (struct lconn){.l = l, .c = c, .state = LC_WELCOMED};
    link_label_unproved(lc);
    memcpy(lc->nonce_d, m->nonce.p, LINK_NONCE_HEX);
    if (link_nonce(lc->nonce_a) < 0) {
        free(lc);
        conn_close(c, "no random bytes for a nonce");
        return;
    }
    /* Several may be in progress: a HELLO is not authenticated, so one from a
     * stranger must not push out the neighbour's. A live link stays until a
     * new one proves itself (link_up replaces it). */
    lc->t0 = mono_now();
    conn_set_ops(c, &link_ops, ls, lc, 1);
    setup_conn(ls, c);
    l->pend[pend_slot(l)] = lc;
    log_info("%s: hello", lc->label);
    link_send_ctl(lc, LOG_INFO, "%s WELCOME %s %s", LINK_VERSION, link_self_name(ls), lc->nonce_a);
}

/* Every log_link_summary: one line per live link that carried traffic. */
static void on_summary(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct links *ls = t->data;
    (void)revents;
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].up)
            link_summary(ls->v[i].up, "traffic");
    t->repeat = ls->cfg->log_link_summary; /* a reload may have changed it */
    ev_timer_again(loop, t);
}

static uint64_t seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    return s ? s : 0x9E3779B97F4A7C15ULL; /* xorshift must not start at 0 */
}

struct links *links_new(struct ev_loop *loop, struct conn_pool *pool, struct store *store,
                        const struct cfg_herd *cfg, size_t self, const struct links_hooks *hooks,
                        char *err, size_t errlen)
{
    const struct cfg_server *me = &cfg->servers[self];
    struct links *ls = calloc(1, sizeof *ls);
    struct link *v = calloc(me->npeers ? me->npeers : 1, sizeof *v);
    if (ls == NULL || v == NULL) {
        free(ls);
        free(v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *ls = (struct links){.loop = loop,
                         .pool = pool,
                         .store = store,
                         .cfg = cfg,
                         .self = me,
                         .hooks = *hooks,
                         .v = v,
                         .n = me->npeers,
                         .rng = seed()};
    for (size_t i = 0; i < me->npeers && ls->res == NULL; i++)
        if (!res_host_is_numeric(cfg->servers[me->peers[i]].host)) {
            ls->res = res_new(loop, err, errlen);
            if (ls->res == NULL) {
                free(ls);
                free(v);
                return NULL;
            }
        }
    ev_init(&ls->relay_timer, link_relay_flush_all);
    ls->relay_timer.data = ls;
    ev_init(&ls->summary_timer, on_summary);
    ls->summary_timer.data = ls;
    for (size_t i = 0; i < ls->n; i++) {
        struct link *l = &v[i];
        l->ls = ls;
        l->peer = &cfg->servers[me->peers[i]];
        l->we_dial = strcmp(me->name, l->peer->name) < 0;
        l->backoff = cfg->link_backoff_min;
        ev_init(&l->redial, on_redial);
        ev_init(&l->ping, on_ping);
        l->redial.data = l->ping.data = l;
    }
    return ls;
}

void links_start(struct links *ls)
{
    ls->summary_timer.repeat = ls->cfg->log_link_summary;
    ev_timer_again(ls->loop, &ls->summary_timer);
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->v[i].we_dial)
            dial_now(&ls->v[i]);
        else
            link_knock(&ls->v[i]);
    }
}

void links_stop(struct links *ls)
{
    if (ls == NULL || ls->stopping)
        return;
    ls->stopping = 1;
    ev_timer_stop(ls->loop, &ls->summary_timer);
    for (size_t i = 0; i < ls->n; i++) {
        struct link *l = &ls->v[i];
        ev_timer_stop(ls->loop, &l->redial);
        ev_timer_stop(ls->loop, &l->ping);
        if (l->knock)
            conn_close(l->knock, "worker stopping");
        if (l->hs)
            conn_close(l->hs->c, "worker stopping");
        for (size_t k = 0; k < LINK_PENDING_MAX; k++)
            if (l->pend[k])
                conn_close(l->pend[k]->c, "worker stopping");
    }
}

void links_drain(struct links *ls)
{
    if (ls == NULL)
        return;
    links_stop(ls);
    link_relay_flush_all(ls->loop, &ls->relay_timer, 0);
    ev_timer_stop(ls->loop, &ls->relay_timer);
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].up)
            conn_drain(ls->v[i].up->c, "worker stopping");
}

void links_free(struct links *ls)
{
    if (ls == NULL)
        return;
    links_stop(ls);
    ev_timer_stop(ls->loop, &ls->relay_timer);
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].up)
            conn_close(ls->v[i].up->c, "worker stopping");
    res_free(ls->res);
    free(ls->v);
    free(ls);
}

void links_reconfigure(struct links *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        struct link *l = &ls->v[i];
        if (l->up == NULL)
            continue;
        setup_conn(ls, l->up->c);
        l->ping.repeat = ls->cfg->link_ping_interval;
        ev_timer_again(ls->loop, &l->ping);
    }
}

void links_get_stats(const struct links *ls, struct links_stats *st)
{
    *st = ls->stats;
}

/* Only lines that open a link take a conn over: anything else from a client
 * ("HERD/1 PING", say) is an invalid line like any other, answered "? ". */
int links_is_hello(const char *line, size_t len)
{
    struct link_msg m;
    switch (link_parse(line, len, &m)) {
    case LINK_MSG_HELLO:
    case LINK_MSG_KNOCK:
    case LINK_MSG_REFUSED: return 1; /* a dialler that did not like our certificate */
    case LINK_MSG_VERSION: return link_str_is(m.verb, "HELLO");
    default: return 0;
    }
}

void links_adopt(struct links *ls, struct conn *c, const char *line, size_t len)
{
    struct link_msg m;
    switch (link_parse(line, len, &m)) {
    case LINK_MSG_HELLO: adopt_hello(ls, c, &m); return;
    case LINK_MSG_KNOCK: link_got_knock(ls, c, &m); return;
    case LINK_MSG_REFUSED: link_refused_by_dialler(ls, c, m.reason); return;
    case LINK_MSG_VERSION:
        link_refuse_conn(ls, c, "unsupported version: this server speaks " LINK_VERSION);
        return;
    default: link_refuse_conn(ls, c, "expected HELLO"); return;
    }
}

uint64_t links_syncing(const struct links *ls)
{
    uint64_t n = 0;
    for (size_t i = 0; i < ls->n; i++)
        n += ls->v[i].up != NULL && !ls->v[i].up->synced;
    return n;
}

void links_count(const struct links *ls, uint64_t *up, uint64_t *total)
{
    uint64_t n = 0;
    for (size_t i = 0; i < ls->n; i++)
        n += ls->v[i].up != NULL;
    *up = n;
    *total = ls->n;
}
