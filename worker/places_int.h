/*
 * places_int: what places.c and places_fetch.c share inside the Places
 * module: the proxy's state, one upstream request (a fetch) with the queries
 * waiting for it, and the fetch's operations. Not for other modules.
 */
#ifndef HERD_PLACES_INT_H
#define HERD_PLACES_INT_H

#include <curl/curl.h>
#include <ev.h>
#include <stddef.h>

#define HASH_NONFATAL_OOM 1 /* an allocation failure must not exit: see places_cache.c */
#include <uthash.h>

#include "mono.h"
#include "places.h"

#define PLACES_BUSY_MESSAGE "too many Places requests in flight (places_max_pending); try again"
#define PLACES_COORD_MAX    32                         /* "-118.445127" and friends, with room */
#define PLACES_KEY_MAX      (3 * PLACES_COORD_MAX + 8) /* "LAT,LNG,RADIUS[,BOUND]" */

struct curl_slist;
struct json_object;
struct places_cache;
struct places_multi;

#define PLACES_WARN_INTERVAL 10.0 /* s */

/* A warning a client can trigger on every request, kept to one per interval. */
struct places_quiet {
    double last;    /* places_clock() of the last one logged */
    uint64_t quiet; /* not logged since */
    int seen;
};

/* CLOCK_MONOTONIC in seconds: durations and the cache's TTL, never ev_now(). */
static inline double places_clock(void)
{
    return mono_now();
}

/* One upstream request, shared by every query for the same question. */
struct places_fetch {
    UT_hash_handle hh; /* in pl->fetches, by key */
    struct places *pl;
    CURL *easy;
    struct places_req *head, *tail; /* waiters, in arrival order */
    size_t waiters;
    char *body; /* bounded by pl->max_body */
    size_t len, cap;
    int too_large;
    double started;             /* places_clock() */
    unsigned bound;             /* New: maxResultCount; legacy: unused */
    struct curl_slist *headers; /* New: the key and field mask; wiped when freed */
    char *log_url;              /* "GET URL" with key=REDACTED, or "POST URL" */
    char errbuf[CURL_ERROR_SIZE];
    size_t keylen;
    char key[]; /* "LAT,LNG,RADIUS" */
};

/* One query waiting for a fetch. fetch is NULL while its answer is being
 * delivered, which tells places_cancel that the deliverer frees it. */
struct places_req {
    struct places_req *prev, *next;
    struct places_fetch *fetch;
    unsigned bound;
    places_cb cb;
    void *arg;
};

struct places {
    struct ev_loop *loop;
    struct places_multi *multi;
    struct places_fetch *fetches; /* uthash, in flight */
    struct places_cache *cache;
    char *url;
    char *key;         /* NULL: no key, answer REQUEST_DENIED */
    char *key_escaped; /* as it appears URL-encoded, for redaction */
    long timeout_ms;
    long connect_ms;
    size_t max_body;
    size_t max_pending; /* fetches in flight before new questions fail fast */
    char *nokey_text;   /* the REQUEST_DENIED answer, formatted once */
    size_t nokey_len;
    char *oom_text; /* the answer when memory runs out */
    size_t oom_len;
    char *busy_text; /* the answer past places_max_pending */
    size_t busy_len;
    char *rate_text; /* the OVER_QUERY_LIMIT answers past places_max_rate */
    size_t rate_len;
    char *day_text; /* ... and past places_max_per_day */
    size_t day_len;
    char *empty_text; /* New, bound 0: no request needed */
    size_t empty_len;
    enum cfg_places_api api;
    char *fields;         /* X-Goog-FieldMask */
    size_t cache_entries; /* what the cache was made with */
    double cache_ttl;
    /* places_max_rate: a token bucket of one second's worth; max_per_day:
     * requests sent in UTC day DAY. */
    double max_rate, tokens, tokens_at;
    size_t max_per_day, today;
    long long day;
    int hinted; /* the "enable the API" hint is logged once */
    /* What a client can trigger per request is warned of once, then as a
     * count once per PLACES_WARN_INTERVAL. */
    struct places_quiet nokey_q, busy_q, rate_q, day_q;
    struct places_stats stats;
};

/*
 * BASE?location=LAT,LNG&radius=RADIUS&key=KEY, keeping any query BASE has.
 * Returns a string to curl_free, or NULL (out of memory, or BASE is not a
 * URL libcurl accepts).
 */
char *places_build_url(const char *base, const char *lat, const char *lng, const char *radius,
                       const char *key);

/*
 * Starts the one upstream request for question KEY (LAT, LNG and RADIUS as
 * they go in the URL or the body; BOUND the New API's maxResultCount) and enters it in pl->fetches.
 * Returns it, or NULL with the reason in WHY.
 */
struct places_fetch *places_fetch_new(struct places *pl, const char *key, size_t keylen,
                                      const char *lat, const char *lng, const char *radius,
                                      unsigned bound, char *why, size_t whylen);

/* Frees F and its waiters without answering them; F's easy handle must
 * already be gone (removed from the multi handle and cleaned up). */
void places_fetch_free(struct places_fetch *f);

/*
 * What F's transfer, which ended with RC after SECS seconds, means for its
 * waiters: Places' own JSON object, or a Places-shaped UNKNOWN_ERROR (a new
 * reference; NULL when out of memory). Logs the request either way.
 */
struct json_object *places_fetch_outcome(struct places_fetch *f, CURLcode rc, double secs);

/* Google statuses worth caching: OK and ZERO_RESULTS. */
int places_cacheable(const char *status);

void places_req_append(struct places_fetch *f, struct places_req *r);
void places_req_unlink(struct places_fetch *f, struct places_req *r);
struct places_req *places_req_pop(struct places_fetch *f); /* NULL when none */

#endif
