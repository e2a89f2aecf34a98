/*
 * live: applies a new generation's live settings to a running worker (see
 * live.h). Takes effect at once: log_level, max_clients (store limit),
 * secret_previous, and every value modules read from w->cfg when they use
 * it (client limits for new connections, link timings at the next dial or
 * timer, heartbeat_interval via chan). Values a module copied at start (the
 * Places settings, per-connection limits of connections already open) need
 * that module's hook; see the report in docs/operating.md.
 */
#include "live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "store.h"
#include "worker.h"

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* A rotation in progress: accept NEXT's secret alongside ours until we restart. */
static int accept_next_secret(struct worker *w, const struct cfg_herd *next)
{
    struct cfg_herd *cur = w->cfg;
    if (!next->secret || !cur->secret || str_eq(next->secret, cur->secret) ||
        !str_eq(next->secret_previous, cur->secret))
        return 0;
    char *s = strdup(next->secret);
    if (!s)
        return 0;
    free(cur->secret_previous);
    cur->secret_previous = s;
    return 1;
}

enum live_result live_apply(struct worker *w, const char *text, size_t len, char *err,
                            size_t errlen)
{
    struct cfg_herd *next = NULL;
    if (strlen(text) != len) {
        snprintf(err, errlen, "NUL byte in the configuration");
        return LIVE_FAILED;
    }
    if (cfg_load_string(text, w->cfg->path, &next, err, errlen) != 0)
        return LIVE_FAILED;
    const struct cfg_server *ns = cfg_find(next, w->self->name);
    if (!ns) {
        snprintf(err, errlen, "no [server %s] in it", w->self->name);
        cfg_free(next);
        return LIVE_FAILED;
    }
    if (cfg_server_changed(w->cfg, w->self, next, ns)) {
        int rotating = accept_next_secret(w, next);
        snprintf(err, errlen,
                 "a restart-class setting of %s changed: nothing applied until it "
                 "restarts%s",
                 w->self->name,
                 rotating ? " (the new secret is accepted from neighbours already)" : "");
        cfg_free(next);
        log_info("live configuration: %s", err);
        return LIVE_IGNORED;
    }
    if (cfg_apply_live(w->cfg, next) != 0) {
        snprintf(err, errlen, "out of memory");
        cfg_free(next);
        return LIVE_FAILED;
    }
    cfg_free(next);
    log_set_level(w->cfg->log_level);
    if (w->store)
        store_set_max(w->store, w->cfg->max_clients);
    log_info("live configuration applied (log_level %s)", cfg_level_name(w->cfg->log_level));
    return LIVE_APPLIED;
}
