/*
 * places: the WHATSAT Places proxy. Turns a question into the one upstream
 * request for it (coalescing identical questions in flight, answering from
 * the cache when it can), and each outcome into the answers of its waiters.
 * Every query gets exactly one answer: Places' own, or a Places-shaped
 * error. Guards the operator's bill: past places_max_rate or
 * places_max_per_day a question that needs a request is answered
 * OVER_QUERY_LIMIT without one. One upstream request lives in
 * places_fetch.c, libcurl-on-libev in places_multi.c, the key in
 * places_key.c, JSON in places_format.c and places_new.c (the New API).
 */
#include "places.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "places_cache.h"
#include "places_format.h"
#include "places_int.h"
#include "places_key.h"
#include "places_multi.h"

#define PLACES_CONNECT_MAX 3.0 /* s: a SYN lost twice; the rest is for the answer */

#define PLACES_NO_KEY_MESSAGE                                                                      \
    "No Places API key is configured: set the HERD_PLACES_KEY environment variable "               \
    "or places_key_file in the [herd] section of the configuration file"

/* Whether a warning Q is due at NOW: the first one, then one per
 * PLACES_WARN_INTERVAL, with *QUIET set to how many were not logged since. */
static int places_quiet_due(struct places_quiet *q, double now, uint64_t *quiet)
{
    if (q->seen && now - q->last < PLACES_WARN_INTERVAL) {
        q->quiet++;
        return 0;
    }
    *quiet = q->quiet;
    q->quiet = 0;
    q->last = now;
    q->seen = 1;
    return 1;
}

/* --- answers ---------------------------------------------------------------------- */

/* Formats an error answer once, for the answers that must not fail later. */
static int places_error_text(const char *status, const char *message, char **out, size_t *len)
{
    struct json_object *obj = places_error_json(status, message);
    int rc = obj ? places_format(obj, 0, out, len) : -1;

    json_object_put(obj);
    return rc;
}

/* Answers one query from T cut to BOUND (T NULL: out of memory). */
static void places_answer(struct places *pl, struct places_text *t, unsigned bound, places_cb cb,
                          void *arg)
{
    const char *text;
    char *owned;
    size_t len;

    if (!t || places_text_cut(t, bound, &text, &len, &owned) < 0) {
        cb(arg, pl->oom_text, pl->oom_len);
        return;
    }
    /* TEXT may be T's own: hold T while CB runs, whatever CB makes of the
     * cache (a nested query can expire or replace the entry). */
    places_text_ref(t);
    cb(arg, text, len);
    places_text_unref(t);
    free(owned);
}

/* Answers one query with a Places-shaped UNKNOWN_ERROR. */
static void places_answer_error(struct places *pl, const char *message, places_cb cb, void *arg)
{
    struct json_object *obj = places_error_json("UNKNOWN_ERROR", message);
    char *text;
    size_t len;

    if (!obj || places_format(obj, 0, &text, &len) < 0) {
        json_object_put(obj);
        cb(arg, pl->oom_text, pl->oom_len);
        return;
    }
    json_object_put(obj);
    cb(arg, text, len);
    free(text);
}

/* Answers every waiter of F from T. A callback may cancel waiters still
 * queued (taking from the head copes) or ask a new question. */
static void places_deliver(struct places *pl, struct places_fetch *f, struct places_text *t)
{
    struct places_req *r;

    while ((r = places_req_pop(f)) != NULL) {
        places_answer(pl, t, r->bound, r->cb, r->arg);
        free(r);
    }
}

/* places_multi_done_cb: a transfer finished. */
static void places_fetch_done(void *arg, CURL *easy, CURLcode rc)
{
    struct places *pl = arg;
    char *priv = NULL;
    struct places_fetch *f;
    double secs;
    struct json_object *obj;
    struct places_text *t;
    int cacheable;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    f = (struct places_fetch *)(void *)priv;
    secs = places_clock() - f->started;
    obj = places_fetch_outcome(f, rc, secs);
    cacheable = rc == CURLE_OK && obj && places_cacheable(places_status(obj));
    /* Printed once for every waiter and the cache; the tree goes. */
    t = obj ? places_text_new(obj) : NULL;
    json_object_put(obj);

    HASH_DELETE(hh, pl->fetches, f);
    pl->stats.in_flight--;
    places_multi_remove(pl->multi, f->easy);
    curl_easy_cleanup(f->easy);
    f->easy = NULL;
    /* Out of pl->fetches and into the cache before any callback runs: a
     * callback that asks the same question again must not join a finished
     * fetch, and should find the answer. */
    if (t && cacheable)
        places_cache_put(pl->cache, f->key, f->keylen, t, places_clock());
    places_deliver(pl, f, t);
    places_text_unref(t);
    places_fetch_free(f);
}

/* --- the interface ---------------------------------------------------------------- */

/* Copies a signed decimal coordinate without its '+' (Google wants "34.1"). */
static int places_coord(struct proto_str s, char *out, size_t size)
{
    const char *p = s.p;
    size_t n = s.len;

    if (n > 0 && *p == '+') {
        p++;
        n--;
    }
    if (n == 0 || n >= size)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || p[i] == '.' || (p[i] == '-' && i == 0)))
            return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/*
 * Past places_max_pending: each waiting fetch holds ~13 KiB inside libcurl,
 * and thousands timing out together stall the loop, so a new question is
 * answered at once with a preformatted UNKNOWN_ERROR.
 */
static void places_busy(struct places *pl, const char *key, double now, places_cb cb, void *arg)
{
    uint64_t quiet;

    pl->stats.errors++;
    if (places_quiet_due(&pl->busy_q, now, &quiet))
        log_warn("places: %s: %zu requests in flight (places_max_pending), answered at once "
                 "(and %llu more since the last warning)",
                 key, pl->max_pending, (unsigned long long)quiet);
    cb(arg, pl->busy_text, pl->busy_len);
}

/*
 * The operator's caps on requests sent: a token bucket of places_max_rate
 * tokens refilled at that rate, and places_max_per_day per UTC day. Returns
 * 0 when a request may go (places_cap_take then counts it), or answers
 * OVER_QUERY_LIMIT at once and returns -1.
 */
static int places_cap_check(struct places *pl, double now, places_cb cb, void *arg)
{
    long long day = (long long)(time(NULL) / 86400);
    int by_rate, by_day;
    uint64_t quiet;

    if (pl->max_rate > 0) {
        pl->tokens += (now - pl->tokens_at) * pl->max_rate;
        if (pl->tokens > pl->max_rate)
            pl->tokens = pl->max_rate;
        pl->tokens_at = now;
    }
    if (day != pl->day) {
        pl->day = day;
        pl->today = 0;
    }
    by_day = pl->max_per_day > 0 && pl->today >= pl->max_per_day;
    by_rate = !by_day && pl->max_rate > 0 && pl->tokens < 1.0;
    if (!by_day && !by_rate)
        return 0;
    pl->stats.capped++;
    if (places_quiet_due(by_day ? &pl->day_q : &pl->rate_q, now, &quiet))
        log_warn("places: %s reached: answered OVER_QUERY_LIMIT without a request (and %llu more "
                 "since the last warning)",
                 by_day ? "places_max_per_day" : "places_max_rate", (unsigned long long)quiet);
    if (by_day)
        cb(arg, pl->day_text, pl->day_len);
    else
        cb(arg, pl->rate_text, pl->rate_len);
    return -1;
}

static void places_cap_take(struct places *pl)
{
    if (pl->max_rate > 0)
        pl->tokens -= 1.0;
    pl->today++;
}

struct places_req *places_query(struct places *pl, struct proto_str lat, struct proto_str lng,
                                uint32_t radius_m_milli, unsigned bound, places_cb cb, void *arg)
{
    char slat[PLACES_COORD_MAX], slng[PLACES_COORD_MAX], radius[24];
    char key[PLACES_KEY_MAX], why[256];
    struct places_text *hit;
    struct places_fetch *f = NULL;
    struct places_req *r;
    double now = places_clock();
    uint64_t quiet;
    int klen;

    if (!pl->key) {
        if (places_quiet_due(&pl->nokey_q, now, &quiet))
            log_warn("places: no API key configured: answered REQUEST_DENIED (and %llu more "
                     "since the last warning)",
                     (unsigned long long)quiet);
        cb(arg, pl->nokey_text, pl->nokey_len);
        return NULL;
    }
    if (bound == 0 && pl->api == CFG_PLACES_NEW) {
        cb(arg, pl->empty_text, pl->empty_len); /* maxResultCount 0: nothing to ask */
        return NULL;
    }
    if (places_coord(lat, slat, sizeof slat) < 0 || places_coord(lng, slng, sizeof slng) < 0 ||
        proto_format_radius_m(radius_m_milli, radius, sizeof radius) < 0) {
        places_answer_error(pl, "bad location or radius", cb, arg);
        return NULL;
    }
    /* New: maxResultCount changes the answer, so the bound is part of the
     * question; legacy answers are cut to any bound. */
    if (pl->api == CFG_PLACES_NEW)
        klen = snprintf(key, sizeof key, "%s,%s,%s,%u", slat, slng, radius, bound);
    else
        klen = snprintf(key, sizeof key, "%s,%s,%s", slat, slng, radius);
    places_cache_expire(pl->cache, now);
    hit = places_cache_get(pl->cache, key, (size_t)klen, now);
    if (hit) {
        pl->stats.hits++;
        log_debug("places: cache hit for %s", key);
        places_answer(pl, hit, bound, cb, arg);
        return NULL;
    }
    HASH_FIND(hh, pl->fetches, key, (size_t)klen, f);
    if (f) {
        pl->stats.coalesced++;
    } else if (HASH_COUNT(pl->fetches) >= pl->max_pending) {
        places_busy(pl, key, now, cb, arg);
        return NULL;
    } else if (places_cap_check(pl, now, cb, arg) < 0) {
        return NULL;
    } else {
        f = places_fetch_new(pl, key, (size_t)klen, slat, slng, radius, bound, why, sizeof why);
        if (f)
            places_cap_take(pl);
        if (!f) {
            pl->stats.errors++;
            log_warn("places: %s: %s", key, why);
            places_answer_error(pl, why, cb, arg);
            return NULL;
        }
    }
    r = calloc(1, sizeof *r);
    if (!r) { /* F stays: its answer still fills the cache */
        cb(arg, pl->oom_text, pl->oom_len);
        return NULL;
    }
    *r = (struct places_req){.bound = bound, .cb = cb, .arg = arg};
    places_req_append(f, r);
    return r;
}

void places_cancel(struct places_req *req)
{
    /* No fetch: its answer is being delivered, and the deliverer frees it. */
    if (!req || !req->fetch)
        return;
    places_req_unlink(req->fetch, req);
    free(req);
}

void places_get_stats(const struct places *pl, struct places_stats *st)
{
    *st = pl->stats;
    st->in_flight = HASH_COUNT(pl->fetches);
    st->cached = places_cache_count(pl->cache);
}

/* --- set-up and tear-down --------------------------------------------------------- */

/* The New API's answer to bound 0: no places asked for, none sent. */
static int places_empty_text(struct places *pl)
{
    struct json_object *obj = json_object_new_object();
    int rc = -1;

    if (obj && json_object_object_add(obj, "html_attributions", json_object_new_array()) == 0 &&
        json_object_object_add(obj, "results", json_object_new_array()) == 0 &&
        json_object_object_add(obj, "status", json_object_new_string("OK")) == 0)
        rc = places_format(obj, 0, &pl->empty_text, &pl->empty_len);
    json_object_put(obj);
    return rc;
}

/* The answers that must be at hand when nothing else can be made, and the
 * caps' answers, which name the limit reached. */
static int places_texts_init(struct places *pl)
{
    char rate[256], day[256];

    snprintf(rate, sizeof rate,
             "This server's limit of %.0f Places requests per second (places_max_rate) is "
             "reached: try again in a moment",
             pl->max_rate);
    snprintf(day, sizeof day,
             "This server's limit of %zu Places requests per UTC day (places_max_per_day) is "
             "reached: try again after 00:00 UTC",
             pl->max_per_day);
    if (places_error_text("REQUEST_DENIED", PLACES_NO_KEY_MESSAGE, &pl->nokey_text,
                          &pl->nokey_len) < 0 ||
        places_error_text("UNKNOWN_ERROR", "out of memory", &pl->oom_text, &pl->oom_len) < 0 ||
        places_error_text("UNKNOWN_ERROR", PLACES_BUSY_MESSAGE, &pl->busy_text, &pl->busy_len) <
            0 ||
        places_error_text("OVER_QUERY_LIMIT", rate, &pl->rate_text, &pl->rate_len) < 0 ||
        places_error_text("OVER_QUERY_LIMIT", day, &pl->day_text, &pl->day_len) < 0 ||
        places_empty_text(pl) < 0)
        return -1;
    return 0;
}

/*
 * The X-Goog-FieldMask from places_fields: comma-separated Place fields,
 * each with or without its "places." (an INI line is short, and the prefix
 * is the same on all), white space dropped. NULL when out of memory.
 */
static char *places_field_mask(const char *fields)
{
    /* A name of one byte gains 7 ("places."): no byte grows more than 8-fold. */
    size_t cap = 8 * strlen(fields) + 1, len = 0;
    char *mask = malloc(cap);
    const char *p = fields;

    if (!mask)
        return NULL;
    mask[0] = '\0';
    while (*p) {
        const char *end = strchr(p, ',');
        size_t a = 0, b = end ? (size_t)(end - p) : strlen(p);
        while (a < b && (p[a] == ' ' || p[a] == '\t'))
            a++;
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t'))
            b--;
        if (b > a) {
            int bare = strncmp(p + a, "places.", 7) != 0 && !(b - a == 1 && p[a] == '*');
            /* cap covers the worst case: a ',' and "places." per byte of FIELDS. */
            if (len > 0)
                mask[len++] = ',';
            if (bare) {
                memcpy(mask + len, "places.", 7);
                len += 7;
            }
            memcpy(mask + len, p + a, b - a);
            len += b - a;
            mask[len] = '\0';
        }
        p = end ? end + 1 : p + strlen(p);
    }
    return mask;
}

/* Copies places_url and proves that a request URL can be made from it now,
 * so a bad one stops the worker at start-up instead of failing each WHATSAT. */
static int places_url_init(struct places *pl, const struct cfg_herd *cfg, char *err, size_t errlen)
{
    char *probe;

    pl->url = strdup(cfg->places_url ? cfg->places_url : "");
    pl->fields = places_field_mask(cfg->places_fields ? cfg->places_fields : "");
    if (!pl->url || !pl->fields) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pl->api == CFG_PLACES_NEW && pl->fields[0] == '\0') {
        /* Google refuses every request without a field mask. */
        snprintf(err, errlen, "places_fields is empty: Places API (New) needs a field mask");
        return -1;
    }
    /* The legacy URL with a query made from it; New posts to it as it is. */
    probe = places_build_url(pl->url, "0", "0", "1", "REDACTED");
    if (!probe) {
        snprintf(err, errlen, "places_url %s: not a URL libcurl accepts", pl->url);
        return -1;
    }
    curl_free(probe);
    if (pl->key) {
        pl->key_escaped = curl_easy_escape(NULL, pl->key, 0);
        if (!pl->key_escaped) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Connections upstream: the configured bound, kept sane for libcurl. */
static long places_connections(const struct cfg_herd *cfg)
{
    if (cfg->places_max_connections == 0)
        return 8;
    return cfg->places_max_connections > 1024 ? 1024 : (long)cfg->places_max_connections;
}

struct places *places_new(struct ev_loop *loop, const struct cfg_herd *cfg, char *err,
                          size_t errlen)
{
    struct places *pl = calloc(1, sizeof *pl);

    if (!pl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pl->loop = loop;
    pl->timeout_ms = cfg->places_timeout > 0.001 ? (long)(cfg->places_timeout * 1000.0 + 0.5) : 1;
    pl->connect_ms = cfg->places_timeout < PLACES_CONNECT_MAX ? pl->timeout_ms
                                                              : (long)(PLACES_CONNECT_MAX * 1000);
    pl->max_body = cfg->places_max_body;
    pl->max_pending = cfg->places_max_pending;
    pl->api = cfg->places_api;
    pl->max_rate = (double)cfg->places_max_rate;
    pl->tokens = pl->max_rate;
    pl->tokens_at = places_clock();
    pl->max_per_day = cfg->places_max_per_day;
    /* libcurl first: everything after uses it. */
    pl->multi = places_multi_new(loop, places_connections(cfg), places_fetch_done, pl, err, errlen);
    if (!pl->multi || places_key_load(cfg, &pl->key, err, errlen) < 0 ||
        places_url_init(pl, cfg, err, errlen) < 0)
        goto fail;
    pl->cache = places_cache_new(cfg->places_cache_entries, cfg->places_cache_ttl);
    pl->cache_entries = cfg->places_cache_entries;
    pl->cache_ttl = cfg->places_cache_ttl;
    if (!pl->cache || places_texts_init(pl) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    log_info("places: %s %s, timeout %.1f s, cache of %zu answers for %.0f s, %ld connections, "
             "at most %zu requests/s and %zu/day (0: no cap)",
             pl->api == CFG_PLACES_NEW ? "Places API (New)" : "Places API (Legacy)", pl->url,
             (double)pl->timeout_ms / 1000.0,
             cfg->places_cache_ttl > 0 ? cfg->places_cache_entries : 0,
             cfg->places_cache_ttl > 0 ? cfg->places_cache_ttl : 0.0, places_connections(cfg),
             cfg->places_max_rate, cfg->places_max_per_day);
    if (pl->api == CFG_PLACES_NEW)
        log_info("places: field mask %s", pl->fields);
    return pl;
fail:
    places_free(pl);
    return NULL;
}

static void places_texts_free(struct places *pl)
{
    free(pl->nokey_text);
    free(pl->oom_text);
    free(pl->busy_text);
    free(pl->rate_text);
    free(pl->day_text);
    free(pl->empty_text);
    pl->nokey_text = pl->oom_text = pl->busy_text = NULL;
    pl->rate_text = pl->day_text = pl->empty_text = NULL;
}

/* The cache for CFG, made anew only when what it holds would change. */
static int places_cache_reconfigure(struct places *pl, const struct cfg_herd *cfg, int api_changed)
{
    if (!api_changed && pl->cache_entries == cfg->places_cache_entries &&
        pl->cache_ttl == cfg->places_cache_ttl)
        return 0;
    struct places_cache *c = places_cache_new(cfg->places_cache_entries, cfg->places_cache_ttl);
    if (!c)
        return -1;
    places_cache_free(pl->cache);
    pl->cache = c;
    pl->cache_entries = cfg->places_cache_entries;
    pl->cache_ttl = cfg->places_cache_ttl;
    return 0;
}

int places_reconfigure(struct places *pl, const struct cfg_herd *cfg, char *err, size_t errlen)
{
    char *url = strdup(cfg->places_url ? cfg->places_url : "");
    char *fields = places_field_mask(cfg->places_fields ? cfg->places_fields : "");
    char *probe = url ? places_build_url(url, "0", "0", "1", "REDACTED") : NULL;
    const char *bad = !url || !fields ? "out of memory"
                      : !probe        ? "places_url: not a URL libcurl accepts"
                      : cfg->places_api == CFG_PLACES_NEW && fields[0] == '\0'
                          ? "places_fields is empty: Places API (New) needs a field mask"
                          : NULL;
    curl_free(probe);
    if (bad || places_cache_reconfigure(pl, cfg, cfg->places_api != pl->api) < 0) {
        snprintf(err, errlen, "%s", bad ? bad : "out of memory");
        free(url);
        free(fields);
        return -1;
    }
    free(pl->url);
    free(pl->fields);
    pl->url = url;
    pl->fields = fields;
    pl->api = cfg->places_api;
    pl->timeout_ms = cfg->places_timeout > 0.001 ? (long)(cfg->places_timeout * 1000.0 + 0.5) : 1;
    pl->connect_ms = cfg->places_timeout < PLACES_CONNECT_MAX ? pl->timeout_ms
                                                              : (long)(PLACES_CONNECT_MAX * 1000);
    pl->max_body = cfg->places_max_body;
    pl->max_pending = cfg->places_max_pending;
    pl->max_rate = (double)cfg->places_max_rate;
    if (pl->tokens > pl->max_rate)
        pl->tokens = pl->max_rate;
    pl->max_per_day = cfg->places_max_per_day;
    places_texts_free(pl); /* they name the caps */
    if (places_texts_init(pl) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void places_free(struct places *pl)
{
    struct places_fetch *f, *next;

    if (!pl)
        return;
    /* Forget the table first, then free what it held (it holds no memory
     * of the fetches themselves). */
    f = pl->fetches;
    HASH_CLEAR(hh, pl->fetches);
    for (; f; f = next) {
        next = f->hh.next;
        places_multi_remove(pl->multi, f->easy);
        curl_easy_cleanup(f->easy);
        places_fetch_free(f); /* waiters go unanswered, as promised */
    }
    places_cache_free(pl->cache);
    places_texts_free(pl);
    free(pl->url);
    free(pl->fields);
    places_key_free(pl->key);
    if (pl->key_escaped) {
        explicit_bzero(pl->key_escaped, strlen(pl->key_escaped));
        curl_free(pl->key_escaped);
    }
    /* Last: it may undo curl_global_init. */
    places_multi_free(pl->multi);
    free(pl);
}
