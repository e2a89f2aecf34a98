/*
 * ctl_dns: check-config's look at the hosts given by name. Each distinct
 * name is looked up with the worker's own resolver (worker/resolve.c: c-ares,
 * the hosts file, the same resolv.conf or $HERD_RESOLV_CONF), all at once on
 * a private libev loop, for CTL_DNS_WAIT seconds at most in all. A name that
 * does not resolve is a warning, never an error: the file may be checked on a
 * machine that does not see the herd's DNS, and workers retry at every dial.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "ctl.h"
#include "resolve.h"

#define CTL_DNS_WAIT 2.0 /* seconds, for every name together */

struct name_check {
    const char *host;   /* borrowed from the config */
    const char *server; /* the first server naming it */
    int done, ok;
    const char *err; /* c-ares' static text, when !ok */
};

struct dns_run {
    struct ev_loop *loop;
    size_t pending;
};

struct name_arg {
    struct dns_run *run;
    struct name_check *nc;
};

static void on_result(void *arg, const struct res_result *r)
{
    struct name_arg *a = arg;
    if (r->gone) /* the wait ran out: nc->done stays 0 */
        return;
    a->nc->done = 1;
    a->nc->ok = r->ok;
    a->nc->err = r->ok ? NULL : r->err;
    if (--a->run->pending == 0)
        ev_break(a->run->loop, EVBREAK_ALL);
}

static void on_wait_over(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* The distinct names of C's servers into V (room for nservers); their count. */
static size_t collect_names(const struct ctl *c, struct name_check *v)
{
    size_t n = 0;
    for (size_t i = 0; i < c->cfg->nservers; i++) {
        const struct cfg_server *s = &c->cfg->servers[i];
        size_t k = 0;
        if (res_host_is_numeric(s->host))
            continue;
        while (k < n && strcasecmp(v[k].host, s->host) != 0)
            k++;
        if (k == n)
            v[n++] = (struct name_check){.host = s->host, .server = s->name};
    }
    return n;
}

int ctl_check_names(const struct ctl *c)
{
    char err[128];
    int warned = 0;
    struct name_check *v = calloc(c->cfg->nservers ? c->cfg->nservers : 1, sizeof *v);
    struct name_arg *args = calloc(c->cfg->nservers ? c->cfg->nservers : 1, sizeof *args);
    struct dns_run run = {0};
    struct res *res = NULL;
    size_t n = 0;

    if (v == NULL || args == NULL) {
        fprintf(stderr, "herdctl: warning: names not checked: out of memory\n");
        warned = 1;
        goto done;
    }
    n = collect_names(c, v);
    if (n == 0)
        goto done;
    run.loop = ev_loop_new(EVFLAG_AUTO);
    if (run.loop == NULL) {
        fprintf(stderr, "herdctl: warning: names not checked: no event loop\n");
        warned = 1;
        goto done;
    }
    res = res_new(run.loop, err, sizeof err);
    if (res == NULL) {
        fprintf(stderr, "herdctl: warning: names not checked: %s\n", err);
        warned = 1;
        goto done;
    }
    run.pending = n;
    for (size_t i = 0; i < n; i++) {
        args[i] = (struct name_arg){.run = &run, .nc = &v[i]};
        res_lookup(res, v[i].host, on_result, &args[i]); /* may answer at once */
    }
    if (run.pending > 0) {
        ev_timer wait;
        ev_timer_init(&wait, on_wait_over, CTL_DNS_WAIT, 0.0);
        ev_timer_start(run.loop, &wait);
        ev_run(run.loop, 0);
        ev_timer_stop(run.loop, &wait);
    }
    res_free(res); /* lookups still out end here (gone) */
    for (size_t i = 0; i < n; i++) {
        if (v[i].ok)
            continue;
        warned = 1;
        if (v[i].done)
            fprintf(stderr,
                    "herdctl: warning: server %s: host %s does not resolve (%s); its "
                    "neighbours retry at every dial\n",
                    v[i].server, v[i].host, v[i].err ? v[i].err : "no address");
        else
            fprintf(stderr,
                    "herdctl: warning: server %s: host %s: no answer within %.0f s; its "
                    "neighbours retry at every dial\n",
                    v[i].server, v[i].host, CTL_DNS_WAIT);
    }
done:
    if (run.loop != NULL)
        ev_loop_destroy(run.loop);
    free(args);
    free(v);
    return warned;
}
