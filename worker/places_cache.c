/*
 * places_cache: a uthash table of Places answers with expiry.
 *
 * Every entry lives the same TTL, so insertion order is expiry order:
 * uthash keeps entries in insertion order, which makes its head both the
 * oldest and the first to expire. Expiry and eviction therefore only ever
 * look at the head, and a replaced entry is deleted and added again to move
 * it to the tail.
 */
#include "places_cache.h"

#include <stdlib.h>
#include <string.h>

/* An allocation failure inside uthash must not exit the worker: the entry is
 * then simply not added (its hh.tbl stays NULL). */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "places_format.h"

struct places_cache_entry {
    UT_hash_handle hh;
    struct places_text *text; /* one reference owned */
    double expires;
    size_t keylen;
    char key[]; /* "LAT,LNG,RADIUS", NUL-terminated */
};

struct places_cache {
    struct places_cache_entry *head; /* uthash table, oldest first */
    size_t max_entries;
    double ttl;
    size_t count;
};

struct places_cache *places_cache_new(size_t max_entries, double ttl)
{
    struct places_cache *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->max_entries = ttl > 0 ? max_entries : 0;
    c->ttl = ttl;
    return c;
}

/* clang-analyzer cannot follow how uthash's macros move the head when one
 * is deleted, so it reports frees and NULLs that cannot happen: the
 * NOLINTs below are for that, and valgrind and ASan back the code. */
static void places_cache_drop(struct places_cache *c, struct places_cache_entry *e)
{
    HASH_DELETE(hh, c->head, e); // NOLINT(clang-analyzer-core.NullDereference)
    places_text_unref(e->text);
    free(e);
    c->count--;
}

void places_cache_free(struct places_cache *c)
{
    struct places_cache_entry *e, *next;

    if (!c)
        return;
    /* Forget the table, then free the entries along their list. */
    e = c->head;
    HASH_CLEAR(hh, c->head);
    for (; e; e = next) {
        next = e->hh.next;
        places_text_unref(e->text);
        free(e);
    }
    free(c);
}

void places_cache_expire(struct places_cache *c, double now)
{
    while (c->head && c->head->expires <= now) // NOLINT(clang-analyzer-unix.Malloc)
        places_cache_drop(c, c->head);
}

struct places_text *places_cache_get(struct places_cache *c, const char *key, size_t keylen,
                                     double now)
{
    struct places_cache_entry *e = NULL;

    if (c->max_entries == 0)
        return NULL;
    HASH_FIND(hh, c->head, key, keylen, e);
    if (!e)
        return NULL;
    if (e->expires <= now) {
        places_cache_drop(c, e);
        return NULL;
    }
    return e->text;
}

int places_cache_put(struct places_cache *c, const char *key, size_t keylen, struct places_text *t,
                     double now)
{
    struct places_cache_entry *e = NULL;

    if (c->max_entries == 0)
        return -1;
    HASH_FIND(hh, c->head, key, keylen, e);
    if (e)
        places_cache_drop(c, e);
    places_cache_expire(c, now);
    while (c->head && c->count >= c->max_entries)
        places_cache_drop(c, c->head); // NOLINT(clang-analyzer-unix.Malloc)
    e = malloc(sizeof *e + keylen + 1);
    if (!e)
        return -1;
    memcpy(e->key, key, keylen);
    e->key[keylen] = '\0';
    e->keylen = keylen;
    e->expires = now + c->ttl;
    e->text = t;
    HASH_ADD_KEYPTR(hh, c->head, e->key, e->keylen, e); // NOLINT(clang-analyzer-unix.Malloc)
    if (e->hh.tbl == NULL) {
        free(e);
        return -1;
    }
    places_text_ref(t);
    c->count++;
    return 0;
}

size_t places_cache_count(const struct places_cache *c)
{
    return c->count;
}
