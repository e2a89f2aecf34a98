/*
 * places_cache: the Places proxy's answer cache. Maps a question (the string
 * "LAT,LNG,RADIUS") to its printed answer (a places_text, shared by
 * reference count, cut to each asker's bound) until it expires. Bounded:
 * when full, the entry that expires first goes. Time is passed in, so it
 * needs no event loop.
 */
#ifndef HERD_PLACES_CACHE_H
#define HERD_PLACES_CACHE_H

#include <stddef.h>

struct places_cache;
struct places_text;

/*
 * A cache of at most MAX_ENTRIES answers kept TTL seconds. With TTL <= 0 or
 * MAX_ENTRIES == 0 it stores nothing (every lookup misses). NULL when out of
 * memory.
 */
struct places_cache *places_cache_new(size_t max_entries, double ttl);

void places_cache_free(struct places_cache *c);

/* The answer for KEY still fresh at NOW (borrowed: take a reference to keep
 * it past the next put), or NULL. */
struct places_text *places_cache_get(struct places_cache *c, const char *key, size_t keylen,
                                     double now);

/* Stores T (taking a reference of its own) for KEY from NOW on, replacing
 * any older answer. Returns 0, or -1 when out of memory or disabled. */
int places_cache_put(struct places_cache *c, const char *key, size_t keylen, struct places_text *t,
                     double now);

/* Drops every entry expired at NOW. */
void places_cache_expire(struct places_cache *c, double now);

/* Entries held (some may have expired since the last get, put or expire). */
size_t places_cache_count(const struct places_cache *c);

#endif
