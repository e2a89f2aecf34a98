/*
 * link_knock: the start-up knock. An acceptor that starts connects once to
 * each neighbour that dials it and says "HERD/1 KNOCK me you"; a dialler
 * that hears it for a link that is down dials at once instead of waiting out
 * its backoff, so a restarted acceptor is relinked (and resynced) in
 * milliseconds. A knock is not authenticated: it can make a dialler dial
 * sooner (at most once per link_backoff_min), never touch a live link.
 */
#include <stdio.h>

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

static void knock_close(struct conn *c, const char *why)
{
    struct link *l = c->ud;
    if (l && l->knock == c)
        l->knock = NULL;
    log_debug("link %s: knock done: %s", l ? l->peer->name : "?", why);
}

static const struct conn_ops knock_ops = {
    .on_connect = knock_connected,
    .on_line = knock_line,
    .on_overlong = knock_overlong,
    .on_close = knock_close,
};

void link_knock(struct link *l)
{
    char err[128];
    struct links *ls = l->ls;
    l->knock =
        conn_dial(ls->pool, l->peer->host, l->peer->port, &knock_ops, ls, l, err, sizeof err);
    if (l->knock == NULL)
        log_debug("link %s: no knock: %s", l->peer->name, err);
    else
        conn_set_idle(l->knock, ls->cfg->link_timeout);
}
