/*
 * links: the worker's neighbour links (SPEC §5, docs/link-protocol.md). For
 * each pair, the server whose name sorts first dials and redials with
 * jittered exponential backoff, forever; the other accepts on its client
 * port (and knocks, link_knock.c). Owns the links, dialling and the
 * handshake; traffic on live links is link_sync.c's.
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
#include "chan.h"
#include "link_int.h"
#include "log.h"
#include "net.h"
#include "server.h"
#include "worker.h"

/* Link lines are control lines and AT lines (canonical ones < LINK_AT_BUF):
 * a fixed limit, independent of the client max_line_length. */
#define LINK_MAX_LINE 4096

static const struct conn_ops link_ops;

const char *link_self_name(const struct links *ls)
{
    return ls->w->self->name;
}

void link_log_io(int level, const struct link *l, const char *dir, const char *line, size_t len)
{
    if (!log_enabled((enum log_level)level))
        return;
    char prefix[LINK_NAME_MAX + 16];
    snprintf(prefix, sizeof prefix, "link %s %s", l->peer->name, dir);
    if (len > 0 && line[len - 1] == '\n')
        len--;
    log_line((enum log_level)level, prefix, line, len);
}

static int vformat(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static int vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, size - 1, fmt, ap);
    if (n < 0 || (size_t)n >= size - 1)
        return -1;
    buf[n] = '\n';
    return n + 1;
}

int link_send_ctl(struct lconn *lc, int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vformat(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) {
        conn_close(lc->c, "control line too long");
        return -1;
    }
    link_log_io(level, lc->l, "out", buf, (size_t)n);
    return conn_send(lc->c, buf, (size_t)n);
}

struct link *link_find(struct links *ls, struct proto_str name)
{
    for (size_t i = 0; i < ls->n; i++)
        if (link_str_is(name, ls->v[i].peer->name))
            return &ls->v[i];
    return NULL;
}

/* Uniform in [0, 1) from xorshift64*; jitter needs no more. */
static double rand01(struct links *ls)
{
    ls->rng ^= ls->rng >> 12;
    ls->rng ^= ls->rng << 25;
    ls->rng ^= ls->rng >> 27;
    return (double)((ls->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

void link_schedule_redial(struct link *l, double delay)
{
    struct ev_loop *loop = l->ls->w->loop;
    ev_timer_stop(loop, &l->redial);
    ev_timer_set(&l->redial, delay > 0 ? delay : 0, 0.);
    ev_timer_start(loop, &l->redial);
}

/* Next attempt after the current backoff, jittered to [1/2, 1] of it so
 * neighbours of a dead server do not redial in step; then the backoff doubles. */
static void backoff_redial(struct link *l)
{
    const struct cfg_herd *cfg = l->ls->w->cfg;
    link_schedule_redial(l, l->backoff * (0.5 + 0.5 * rand01(l->ls)));
    l->backoff *= 2;
    if (l->backoff > cfg->link_backoff_max)
        l->backoff = cfg->link_backoff_max;
}

/* Limits and liveness shared by dialled and accepted link conns. */
static void setup_conn(struct links *ls, struct conn *c)
{
    const struct cfg_herd *cfg = ls->w->cfg;
    c->out_max = cfg->link_queue_max;
    c->max_line = LINK_MAX_LINE;
    conn_set_idle(c, cfg->link_timeout);
    int idle = cfg->link_timeout >= 2 ? (int)cfg->link_timeout : 1;
    if (c->fd >= 0 && net_set_keepalive(c->fd, idle, 1, 3) < 0)
        log_debug("link %s: keepalive not set", c->peer);
}

static void dial_now(struct link *l)
{
    struct links *ls = l->ls;
    if (l->up || l->hs || ls->stopping)
        return;
    char err[128];
    struct lconn *lc = calloc(1, sizeof *lc);
    l->last_dial = ev_now(ls->w->loop);
    l->attempts++;
    struct conn *c = lc ? server_dial(ls->w->server, l->peer->host, l->peer->port, &link_ops, lc,
                                      err, sizeof err)
                        : NULL;
    if (c == NULL) {
        log_msg(l->attempts == 1 ? LOG_WARN : LOG_DEBUG, "link %s: cannot dial %s:%u: %s",
                l->peer->name, l->peer->host, (unsigned)l->peer->port, lc ? err : "out of memory");
        free(lc);
        backoff_redial(l);
        return;
    }
    *lc = (struct lconn){.l = l, .c = c, .state = LC_DIALING, .dialled = 1};
    l->hs = lc;
    setup_conn(ls, c);
    if (l->attempts == 1)
        log_info("link %s: dialling %s", l->peer->name, c->peer);
    else
        log_debug("link %s: dialling %s (attempt %u)", l->peer->name, c->peer, l->attempts);
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

/* Refuses the handshake on LC: logged at warn, REFUSED sent, then closed. */
static void refuse(struct lconn *lc, const char *reason)
{
    log_warn("link %s: handshake refused: %s", lc->l->peer->name, reason);
    lc->why = reason;
    if (link_send_ctl(lc, LOG_INFO, "%s REFUSED %s", LINK_VERSION, reason) == 0)
        conn_drain(lc->c, reason);
}

/* The same for a conn not adopted yet (a bad HELLO on the client port). */
static void refuse_conn(struct conn *c, const char *reason)
{
    char line[256];
    log_warn("link from %s: handshake refused: %s", c->peer, reason);
    int n = snprintf(line, sizeof line, "%s REFUSED %s\n", LINK_VERSION, reason);
    if (n > 0 && (size_t)n < sizeof line) {
        char prefix[96];
        snprintf(prefix, sizeof prefix, "link from %s out", c->peer);
        log_line(LOG_INFO, prefix, line, (size_t)n - 1);
        if (conn_send(c, line, (size_t)n) < 0)
            return;
    }
    conn_drain(c, reason);
}

static void fill_transcript(const struct lconn *lc, struct link_transcript *t)
{
    const char *self = link_self_name(lc->l->ls);
    t->dialer = lc->dialled ? self : lc->l->peer->name;
    t->acceptor = lc->dialled ? lc->l->peer->name : self;
    t->nonce_d = lc->nonce_d;
    t->nonce_a = lc->nonce_a;
}

/* Checks the neighbour's proof; refuses and returns -1 when it is wrong. */
static int check_proof(struct lconn *lc, const struct link_msg *m)
{
    const char *secret = lc->l->ls->w->cfg->secret;
    struct link_transcript t;
    fill_transcript(lc, &t);
    if (secret && link_str_is(m->proof, "-")) {
        refuse(lc, "no proof: the neighbour has no secret");
        return -1;
    }
    /* During a secret rotation the one being replaced is accepted too. */
    const char *prev = lc->l->ls->w->cfg->secret_previous;
    if (!link_proof_ok(secret, lc->dialled ? 'A' : 'D', &t, m->proof.p, m->proof.len) &&
        !(prev && link_proof_ok(prev, lc->dialled ? 'A' : 'D', &t, m->proof.p, m->proof.len))) {
        refuse(lc, "wrong secret");
        return -1;
    }
    return 0;
}

/* Sends our proof in a "HERD/1 VERB proof" line. */
static int send_proof(struct lconn *lc, const char *verb)
{
    char proof[LINK_PROOF_HEX + 1];
    struct link_transcript t;
    fill_transcript(lc, &t);
    if (link_proof(lc->l->ls->w->cfg->secret, lc->dialled ? 'D' : 'A', &t, proof) < 0) {
        log_error("link %s: cannot compute the HMAC proof", lc->l->peer->name);
        conn_close(lc->c, "HMAC failed");
        return -1;
    }
    return link_send_ctl(lc, LOG_INFO, "%s %s %s", LINK_VERSION, verb, proof);
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

/* A link came up or went down: tell the supervisor now, not at the next
 * heartbeat, so `herdctl status` shows the herd as it is. */
static void report_links(struct links *ls)
{
    if (ls->w->chan && !ls->stopping)
        chan_heartbeat(ls->w->chan);
}

static void link_up(struct lconn *lc)
{
    struct link *l = lc->l;
    struct ev_loop *loop = l->ls->w->loop;
    if (l->up && l->up != lc) /* the neighbour redialled: the old conn is stale */
        conn_close(l->up->c, "replaced by a new connection");
    if (l->hs == lc)
        l->hs = NULL;
    pend_remove(l, lc);
    l->up = lc;
    lc->state = LC_UP;
    l->up_since = ev_now(loop);
    ev_timer_stop(loop, &l->redial);
    ev_timer_set(&l->ping, l->ls->w->cfg->link_ping_interval, l->ls->w->cfg->link_ping_interval);
    ev_timer_start(loop, &l->ping);
    if (lc->dialled && l->attempts > 1)
        log_info("link %s up (dialled %s, attempt %u)", l->peer->name, lc->c->peer, l->attempts);
    else
        log_info("link %s up (%s %s)", l->peer->name, lc->dialled ? "dialled" : "accepted from",
                 lc->c->peer);
    l->attempts = 0;
    link_resync_start(lc);
    report_links(l->ls);
}

static void on_connect(struct conn *c)
{
    struct lconn *lc = c->ud;
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
            refuse(lc, "wrong neighbour at that address");
            return;
        }
        memcpy(lc->nonce_a, m->nonce.p, LINK_NONCE_HEX);
        lc->nonce_a[LINK_NONCE_HEX] = '\0';
        if (send_proof(lc, "AUTH") == 0)
            lc->state = LC_AUTH_SENT;
        return;
    case LC_AUTH_SENT:
        if (m->kind == LINK_MSG_OK && check_proof(lc, m) == 0)
            link_up(lc);
        if (m->kind == LINK_MSG_OK)
            return;
        break;
    case LC_WELCOMED:
        if (m->kind == LINK_MSG_AUTH && check_proof(lc, m) == 0 && send_proof(lc, "OK") == 0)
            link_up(lc);
        if (m->kind == LINK_MSG_AUTH)
            return;
        break;
    default: break;
    }
    refuse(lc, m->kind == LINK_MSG_NONE ? "data before the handshake completed"
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
    link_log_io(LOG_INFO, lc->l, "in", line, len);
    if (link_parse(line, len, &m) == LINK_MSG_REFUSED) {
        log_warn("link %s: refused by the neighbour: %.*s", lc->l->peer->name, (int)m.reason.len,
                 m.reason.p);
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
    log_warn("link %s: line longer than %zu bytes, closing", lc->l->peer->name, limit);
    conn_close(c, "line too long");
}

static void on_drain(struct conn *c)
{
    struct lconn *lc = c->ud;
    if (lc && lc->dumping)
        link_resync_fill(lc);
}

/* The link is down: was it up long enough that the backoff starts over? */
static void link_down(struct link *l, const char *why)
{
    struct links *ls = l->ls;
    double now = ev_now(ls->w->loop);
    ev_timer_stop(ls->w->loop, &l->ping);
    if (ls->stopping)
        log_info("link %s closed: %s", l->peer->name, why);
    else
        log_warn("link %s dropped after %.1f s: %s", l->peer->name, now - l->up_since, why);
    /* A link that keeps dropping right after it comes up (a neighbour that
     * never reads, say) backs off like one that cannot connect. */
    if (now - l->up_since >= ls->w->cfg->link_timeout)
        l->backoff = ls->w->cfg->link_backoff_min;
    report_links(ls);
}

static void on_close(struct conn *c, const char *why)
{
    struct lconn *lc = c->ud;
    if (lc == NULL)
        return;
    struct link *l = lc->l;
    const char *reason = lc->why ? lc->why : why;
    if (l->up == lc) {
        l->up = NULL;
        link_down(l, reason);
    } else if (pend_remove(l, lc)) {
        log_info("link %s: handshake failed: %s", l->peer->name, reason);
    } else if (l->hs == lc) {
        l->hs = NULL;
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
    if (l->we_dial && l->up == NULL && l->hs == NULL && !l->ls->stopping)
        backoff_redial(l);
}

static const struct conn_ops link_ops = {
    .on_connect = on_connect,
    .on_line = on_line,
    .on_overlong = on_overlong,
    .on_close = on_close,
    .on_drain = on_drain,
};

/* A client conn whose first line was a HELLO becomes a link conn. */
static void adopt_hello(struct links *ls, struct conn *c, const struct link_msg *m)
{
    if (!link_str_is(m->target, link_self_name(ls))) {
        refuse_conn(c, "wrong server: the HELLO names another target");
        return;
    }
    struct link *l = link_find(ls, m->name);
    if (l == NULL) {
        refuse_conn(c, "not a neighbour of this server");
        return;
    }
    if (l->we_dial) {
        refuse_conn(c, "wrong direction: the server whose name sorts first dials");
        return;
    }
    struct lconn *lc = calloc(1, sizeof *lc);
    if (lc == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    *lc = (struct lconn){.l = l, .c = c, .state = LC_WELCOMED};
    memcpy(lc->nonce_d, m->nonce.p, LINK_NONCE_HEX);
    if (link_nonce(lc->nonce_a) < 0) {
        free(lc);
        conn_close(c, "no random bytes for a nonce");
        return;
    }
    /* Several may be in progress: a HELLO is not authenticated, so one from a
     * stranger must not push out the neighbour's. A live link stays until a
     * new one proves itself (link_up replaces it). */
    lc->t0 = ev_now(ls->w->loop);
    conn_set_ops(c, &link_ops, lc);
    setup_conn(ls, c);
    l->pend[pend_slot(l)] = lc;
    log_info("link %s: hello from %s", l->peer->name, c->peer);
    link_send_ctl(lc, LOG_INFO, "%s WELCOME %s %s", LINK_VERSION, link_self_name(ls), lc->nonce_a);
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

struct links *links_new(struct worker *w, char *err, size_t errlen)
{
    const struct cfg_server *self = w->self;
    struct links *ls = calloc(1, sizeof *ls);
    struct link *v = calloc(self->npeers ? self->npeers : 1, sizeof *v);
    if (ls == NULL || v == NULL) {
        free(ls);
        free(v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *ls = (struct links){.w = w, .v = v, .n = self->npeers, .rng = seed()};
    ev_init(&ls->relay_timer, link_relay_flush_all);
    ls->relay_timer.data = ls;
    for (size_t i = 0; i < ls->n; i++) {
        struct link *l = &v[i];
        l->ls = ls;
        l->peer = &w->cfg->servers[self->peers[i]];
        l->we_dial = strcmp(self->name, l->peer->name) < 0;
        l->backoff = w->cfg->link_backoff_min;
        ev_init(&l->redial, on_redial);
        ev_init(&l->ping, on_ping);
        l->redial.data = l->ping.data = l;
    }
    return ls;
}

void links_start(struct links *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        if (ls->v[i].we_dial)
            dial_now(&ls->v[i]);
        else
            link_knock(&ls->v[i]);
    }
}

void links_free(struct links *ls)
{
    if (ls == NULL)
        return;
    ls->stopping = 1;
    ev_timer_stop(ls->w->loop, &ls->relay_timer);
    for (size_t i = 0; i < ls->n; i++) {
        struct link *l = &ls->v[i];
        ev_timer_stop(ls->w->loop, &l->redial);
        ev_timer_stop(ls->w->loop, &l->ping);
        if (l->knock)
            conn_close(l->knock, "worker stopping");
        if (l->hs)
            conn_close(l->hs->c, "worker stopping");
        for (size_t k = 0; k < LINK_PENDING_MAX; k++)
            if (l->pend[k])
                conn_close(l->pend[k]->c, "worker stopping");
        if (l->up)
            conn_close(l->up->c, "worker stopping");
    }
    free(ls->v);
    free(ls);
}

/* Only lines that open a link take a conn over: anything else from a client
 * ("HERD/1 PING", say) is an invalid line like any other, answered "? ". */
int links_is_hello(const char *line, size_t len)
{
    struct link_msg m;
    switch (link_parse(line, len, &m)) {
    case LINK_MSG_HELLO:
    case LINK_MSG_KNOCK: return 1;
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
    case LINK_MSG_VERSION:
        refuse_conn(c, "unsupported version: this server speaks " LINK_VERSION);
        return;
    default: refuse_conn(c, "expected HELLO"); return;
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
