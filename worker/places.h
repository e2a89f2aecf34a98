/*
 * places: answers WHATSAT's question "what is near LAT,LNG within R metres"
 * by asking Google's Nearby Search (Places API (New) by default, or the
 * legacy API: places_api) through libcurl's multi interface on the worker's
 * libev loop, every answer in the legacy shape. A caching proxy: responses are cached by location
 * and radius (TTL, bounded entries) and concurrent identical questions share
 * one upstream request. Never blocks; every query gets exactly one answer.
 */
#ifndef HERD_PLACES_H
#define HERD_PLACES_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "protocol.h"

struct places;
struct places_req;

/*
 * Called exactly once per query (unless cancelled) with the JSON text to send
 * after the AT line: pretty-printed (3-space indent), results cut to the
 * bound, runs of newlines squeezed, no trailing newline. JSON is borrowed for
 * the duration of the call.
 */
typedef void (*places_cb)(void *arg, const char *json, size_t len);

struct places_stats {
    uint64_t upstream;  /* requests sent upstream */
    uint64_t hits;      /* answered from the cache */
    uint64_t coalesced; /* joined a request already in flight */
    uint64_t errors;    /* upstream failures (timeouts, HTTP errors, bad JSON) */
    uint64_t capped;    /* answered OVER_QUERY_LIMIT locally: places_max_rate/_per_day */
    uint64_t in_flight; /* upstream requests in flight now */
    uint64_t cached;    /* entries in the cache now */
};

/* Reads the key (HERD_PLACES_KEY, else places_key_file) and sets up libcurl. */
struct places *places_new(struct ev_loop *loop, const struct cfg_herd *cfg, char *err,
                          size_t errlen);

/* Cancels every pending query (their callbacks are not called) and frees. */
void places_free(struct places *pl);

/*
 * Asks for places around LAT,LNG (signed decimal strings as in the IAMAT
 * location) within radius_m_milli / 1000 metres, results cut to BOUND.
 * When the answer is at hand (cache hit, no key) CB runs before this returns
 * and NULL is returned; otherwise a handle is returned that stays valid until
 * CB runs or places_cancel() is called.
 */
struct places_req *places_query(struct places *pl, struct proto_str lat, struct proto_str lng,
                                uint32_t radius_m_milli, unsigned bound, places_cb cb, void *arg);

/* The client went away: CB will not be called. The upstream request goes on
 * (its answer still fills the cache). */
void places_cancel(struct places_req *req);

void places_get_stats(const struct places *pl, struct places_stats *st);

/*
 * A live reload changed CFG: the API, URL, field mask, timeouts, limits and
 * caps apply to requests from now on (those in flight finish as they
 * began); the cache is kept unless its size, TTL or the API changed. The key
 * and the number of upstream connections are read at start only. -1 with
 * the reason in ERR (nothing changed) when the new settings do not work.
 */
int places_reconfigure(struct places *pl, const struct cfg_herd *cfg, char *err, size_t errlen);

#endif
