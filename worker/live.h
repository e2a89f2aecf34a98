/*
 * live: a running worker takes a new configuration generation without
 * restarting (docs/control-protocol.md, "config" on the channel). Only the
 * CFG_K_LIVE keys change, copied into the worker's own cfg so that every
 * module's pointer into it stays valid.
 */
#ifndef HERD_LIVE_H
#define HERD_LIVE_H

#include <stddef.h>

#include "config.h"

enum live_result {
    LIVE_APPLIED = 0, /* every live key of TEXT now in force */
    LIVE_IGNORED = 1, /* a restart-class setting of this server changed: nothing applied */
    LIVE_FAILED = -1, /* TEXT does not load, or out of memory: nothing applied */
};

/*
 * Parses TEXT (LEN bytes, NUL-terminated, the herd file's bytes; relative
 * paths anchor at the running file's folder), checks that nothing
 * restart-class changed for server SELF of CUR, then copies the live values
 * into CUR in place (modules keep pointers into it). The caller then tells
 * the modules that copied a value (log level, store bounds, ...). ERR says
 * why when not applied. On LIVE_IGNORED during a secret rotation (the new
 * file's secret_previous is our secret) the new secret is accepted from
 * neighbours already, so that the roll never cuts a link.
 */
enum live_result live_apply(struct cfg_herd *cur, const struct cfg_server *self, const char *text,
                            size_t len, char *err, size_t errlen);

#endif
