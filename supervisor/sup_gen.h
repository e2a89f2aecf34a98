/*
 * sup_gen: configuration generations. At start and at each reload that
 * validates, the supervisor keeps the exact bytes it validated as a
 * generation: a sealed memfd every worker gets at exec (--config-fd), and
 * the text, which live reloads send over the channel. A worker restarted for
 * any reason runs the supervisor's generation, never the file on disk now.
 */
#ifndef HERD_SUP_GEN_H
#define HERD_SUP_GEN_H

#include <stddef.h>

#include "config.h"

#define SUP_GEN_MAX (1 << 20) /* largest herd file, bytes */

struct sup_gen {
    unsigned no; /* 1 at start, +1 per successful reload */
    int fd;      /* sealed memfd holding text; -1 when none */
    char *text;  /* owned; NUL-terminated */
    size_t len;
};

/*
 * Reads PATH once, validates those bytes and makes the generation: on
 * success returns 0, *cfg the parsed herd (path made absolute) and *g filled
 * (g->no left to the caller). On failure -1 with "FILE:LINE: why" in ERR.
 */
int sup_gen_load(const char *path, struct sup_gen *g, struct cfg_herd **cfg, char *err,
                 size_t errlen);

void sup_gen_free(struct sup_gen *g);

/* 0 when the file PATH holds G's bytes, 1 when it differs, -1 unreadable. */
int sup_gen_disk_differs(const struct sup_gen *g, const char *path);

#endif
