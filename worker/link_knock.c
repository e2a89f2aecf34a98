/*
 * link_knock: the start-up knock. An acceptor that starts connects once to
 * each neighbour that dials it and says "HERD/1 KNOCK me you"; a dialler
 * that hears it for a link that is down dials at once instead of waiting out
 * its backoff, so a restarted acceptor is relinked (and resynced) in
 * milliseconds. A knock is not authenticated: it can make a dialler dial
 * sooner (at most once per link_backoff_min), never touch a live link.
 */
#include <stdio.h>
#include <string.h>

#include "link_int.h"
#include "log.h"
#include "mono.h"

/* A neighbour we dial says it just started: dial it now rather than after
 * the backoff, at most once per link_backoff_min (a knock is not
 * authenticated, so it can only make us dial sooner, never drop a link). */
void link_got_knock(struct links *ls, struct conn *c, const struct link_msg *m)
{
    struct link *l = link_find(ls, m->name);
    if (l == NULL || !l->we_dial || !link_str_is(m->target, link_self_name(ls))) {
        uint64_t quiet;
        if (log_limit(&ls->odd_warn, 1.0, &quiet))
            log_warn("knock from %s ignored: not a neighbour this server dials (and %llu more "
                     "since the last warning)",
                     c->peer, (unsigned long long)quiet);
        conn_close(c, "knock ignored");
        return;
    }
    conn_close(c, "knock");
    if (l->up || l->hs) {
        log_info("link %s: knock ignored, link %s", l->peer->name, l->up ? "up" : "being set up");
        return;
    }
    double min = ls->cfg->link_backoff_min;
    double wait = l->last_dial + min - mono_now();
    log_info("link %s: knocked (neighbour started), dialling now", l->peer->name);
    l->backoff = min;
    link_schedule_redial(l, wait);
}

static void knock_connected(struct conn *c)
{
    struct link *l = c->ud;
    l->addr_i = l->naddr; /* connected: no other address to try */
    char line[2 * LINK_NAME_MAX + 32];
    int n = snprintf(line, sizeof line, "%s KNOCK %s %s\n", LINK_VERSION, link_self_name(l->ls),
                     l->peer->name);
    if (n < 0 || (size_t)n >= sizeof line) {
        conn_close(c, "knock too long");
        return;
    }
    char label[LINK_LABEL_MAX];
    snprintf(label, sizeof label, "link %s knock", l->peer->name);
    link_log_io(LOG_INFO, label, "out", line, (size_t)n);
    if (conn_send(c, line, (size_t)n) == 0)
        conn_drain(c, "knocked");
}

static void knock_line(struct conn *c, char *line, size_t len)
{
    (void)c;
    (void)line;
    (void)len;
}

static void knock_overlong(struct conn *c, const char *first, size_t limit)
{
    (void)first;
    (void)limit;
    conn_close(c, "line too long");
}

static void knock_dial(struct link *l);

static void knock_close(struct conn *c, const char *why)
{
    struct link *l = c->ud;
    if (l && l->knock == c)
        l->knock = NULL;
    log_debug("link %s: knock done: %s", l ? l->peer->name : "?", why);
    if (l && !l->ls->stopping && l->addr_i + 1 < l->naddr) {
        l->addr_i++; /* the connect failed: the name's next address */
        knock_dial(l);
    }
}

static const struct conn_ops knock_ops = {
    .on_connect = knock_connected,
    .on_line = knock_line,
    .on_overlong = knock_overlong,
    .on_close = knock_close,
};

/* Knocks at the address l->addr[l->addr_i] (the host itself when it is
 * numeric: naddr 0), then at the next ones while a connect fails. */
static void knock_dial(struct link *l)
{
    char err[128];
    struct links *ls = l->ls;
    for (;;) {
        const char *addr = l->naddr ? l->addr[l->addr_i] : l->peer->host;
        l->knock = conn_dial(ls->pool, addr, l->peer->port, &knock_ops, ls, l, err, sizeof err);
        if (l->knock != NULL) {
            conn_set_idle(l->knock, ls->cfg->link_timeout);
            return;
        }
        log_debug("link %s: no knock at %s: %s", l->peer->name, addr, err);
        if (l->addr_i + 1 >= l->naddr)
            return;
        l->addr_i++;
    }
}

static void knock_resolved(void *arg, const struct res_result *r)
{
    struct link *l = arg;
    if (r->gone || l->ls->stopping)
        return;
    l->resolving = 0;
    if (!r->ok) {
        /* Only a hint: the neighbour dials us with its backoff anyway. */
        log_info("link %s: no knock: cannot resolve %s: %s", l->peer->name, l->peer->host, r->err);
        return;
    }
    link_take_addrs(l, r, "knocking");
    knock_dial(l);
}

void link_knock(struct link *l)
{
    struct links *ls = l->ls;
    l->naddr = l->addr_i = 0;
    if (ls->res == NULL || res_host_is_numeric(l->peer->host)) {
        knock_dial(l);
        return;
    }
    l->resolving = 1;
    res_lookup(ls->res, l->peer->host, knock_resolved, l);
}
