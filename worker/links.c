/*
 * links: placeholder until neighbour links land; a worker without links
 * serves its own clients only.
 */
#include "links.h"

#include <stdlib.h>
#include <string.h>

#include "worker.h"

struct links {
    struct worker *w;
};

struct links *links_new(struct worker *w, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct links *ls = calloc(1, sizeof *ls);
    if (ls)
        ls->w = w;
    return ls;
}

void links_free(struct links *ls) { free(ls); }
void links_start(struct links *ls) { (void)ls; }

int links_is_hello(const char *line, size_t len)
{
    return len >= 7 && memcmp(line, "HERD/1 ", 7) == 0;
}

void links_adopt(struct links *ls, struct conn *c, const char *line, size_t len)
{
    (void)ls;
    (void)c;
    (void)line;
    (void)len;
}

void links_flood(struct links *ls, const struct store_rec *rec, const struct conn *from)
{
    (void)ls;
    (void)rec;
    (void)from;
}

void links_count(const struct links *ls, uint64_t *up, uint64_t *total)
{
    *up = 0;
    *total = ls->w->self->npeers;
}
