/*
 * live: takes a new generation's live settings into a running worker's
 * configuration (see live.h), in place. Every value a module reads from the
 * cfg when it uses it applies at once (client limits for new connections,
 * link timings at the next dial or timer, secret_previous); worker.c tells
 * the modules that copied a value (log level, store bounds, heartbeat,
 * Places).
 */
#include "live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* A rotation in progress: accept NEXT's secret alongside ours until we restart. */
static int accept_next_secret(struct cfg_herd *cur, const struct cfg_herd *next)
{
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

enum live_result live_apply(struct cfg_herd *cur, const struct cfg_server *self, const char *text,
                            size_t len, char *err, size_t errlen)
{
    struct cfg_herd *next = NULL;
    if (strlen(text) != len) {
        snprintf(err, errlen, "NUL byte in the configuration");
        return LIVE_FAILED;
    }
    if (cfg_load_string(text, cur->path, &next, err, errlen) != 0)
        return LIVE_FAILED;
    const struct cfg_server *ns = cfg_find(next, self->name);
    if (!ns) {
        snprintf(err, errlen, "no [server %s] in it", self->name);
        cfg_free(next);
        return LIVE_FAILED;
    }
    if (cfg_server_changed(cur, self, next, ns)) {
        int rotating = accept_next_secret(cur, next);
        snprintf(err, errlen,
                 "a restart-class setting of %s changed: nothing applied until it "
                 "restarts%s",
                 self->name,
                 rotating ? " (the new secret is accepted from neighbours already)" : "");
        cfg_free(next);
        log_info("live configuration: %s", err);
        return LIVE_IGNORED;
    }
    if (cfg_apply_live(cur, next) != 0) {
        snprintf(err, errlen, "out of memory");
        cfg_free(next);
        return LIVE_FAILED;
    }
    cfg_free(next);
    return LIVE_APPLIED;
}
