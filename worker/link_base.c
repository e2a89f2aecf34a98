/*
 * link_base: what every file of the links module uses and that uses none of
 * them: finding a link by name, the link log lines, sending a control line,
 * arming the redial timer, reporting a change to the layer above. links.c,
 * link_sync.c and link_knock.c call down into it; it calls none of them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "link_int.h"
#include "log.h"

const char *link_self_name(const struct links *ls)
{
    return ls->self->name;
}

void link_log_io(int level, const char *label, const char *dir, const char *line, size_t len)
{
    if (!log_enabled((enum log_level)level))
        return;
    char prefix[LINK_LABEL_MAX + 16];
    snprintf(prefix, sizeof prefix, "%s %s", label, dir);
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
    link_log_io(level, lc->label, "out", buf, (size_t)n);
    lc->sum.lines_out++;
    lc->sum.bytes_out += (uint64_t)n;
    return conn_send(lc->c, buf, (size_t)n);
}

int link_send_line(struct lconn *lc, const char *line, size_t len, int at)
{
    link_log_io(LOG_DEBUG, lc->label, "out", line, len);
    lc->sum.lines_out++;
    lc->sum.bytes_out += len;
    lc->sum.at_out += at != 0;
    return conn_send(lc->c, line, len);
}

void link_label_proved(struct lconn *lc)
{
    snprintf(lc->label, sizeof lc->label, "link %s", lc->l->peer->name);
}

void link_label_unproved(struct lconn *lc)
{
    if (lc->dialled)
        link_label_proved(lc);
    else
        snprintf(lc->label, sizeof lc->label, "link from %s (claims %s)", lc->c->peer,
                 lc->l->peer->name);
}

void link_log_refused(const struct lconn *lc, struct proto_str reason)
{
    char prefix[LINK_LABEL_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s: refused by the neighbour:", lc->label);
    log_line(LOG_WARN, prefix, reason.p, reason.len);
}

void link_summary(struct lconn *lc, const char *when)
{
    const struct link_traffic *t = &lc->sum;
    if (t->lines_in == 0 && t->lines_out == 0)
        return;
    log_info("%s: %s: in %llu lines (%llu AT, %llu bytes), out %llu lines (%llu AT, %llu bytes)",
             lc->label, when, (unsigned long long)t->lines_in, (unsigned long long)t->at_in,
             (unsigned long long)t->bytes_in, (unsigned long long)t->lines_out,
             (unsigned long long)t->at_out, (unsigned long long)t->bytes_out);
    memset(&lc->sum, 0, sizeof lc->sum);
}

struct link *link_find(struct links *ls, struct proto_str name)
{
    for (size_t i = 0; i < ls->n; i++)
        if (link_str_is(name, ls->v[i].peer->name))
            return &ls->v[i];
    return NULL;
}

void link_take_addrs(struct link *l, const struct res_result *r, const char *next)
{
    l->naddr = r->n;
    l->addr_i = 0;
    memcpy(l->addr, r->addr, sizeof l->addr);
    log_debug("link %s: %s resolved to %s (%zu addresses), %s", l->peer->name, l->peer->host,
              l->addr[0], l->naddr, next);
}

void link_schedule_redial(struct link *l, double delay)
{
    struct ev_loop *loop = l->ls->loop;
    ev_timer_stop(loop, &l->redial);
    ev_timer_set(&l->redial, delay > 0 ? delay : 0, 0.);
    ev_timer_start(loop, &l->redial);
}

/* A link came up, went down or synced: the layer above tells the supervisor
 * now, not at the next heartbeat, so `herdctl status` shows the herd as it is. */
void link_report(struct links *ls)
{
    if (ls->hooks.on_change && !ls->stopping)
        ls->hooks.on_change(ls->hooks.arg);
}
