/*
 * places: the WHATSAT Places proxy. Turns a question into the one upstream
 * request for it (coalescing identical questions in flight, answering from
 * the cache when it can), and each outcome into the answers of its waiters.
 * libcurl-on-libev lives in places_multi.c, the key in places_key.c, JSON in
 * places_format.c. Every query gets exactly one answer: Places' own, or a
 * Places-shaped error.
 */
#include "places.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1 /* see places_cache.c */
#include <uthash.h>

#include "log.h"
#include "places_cache.h"
#include "places_format.h"
#include "places_key.h"
#include "places_multi.h"

#define PLACES_COORD_MAX    32  /* "-118.445127" and friends */
#define PLACES_CONNECT_MAX  3.0 /* s: a SYN lost twice; the rest is for the answer */
#define PLACES_BODY_INITIAL 16384

#define PLACES_NO_KEY_MESSAGE                                                                      \
    "No Places API key is configured: set the HERD_PLACES_KEY environment variable "               \
    "or places_key_file in the [herd] section of the configuration file"

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
    ev_tstamp started;
    char *log_url; /* the URL with key=REDACTED */
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
    char *nokey_text; /* the REQUEST_DENIED answer, formatted once */
    size_t nokey_len;
    char *oom_text; /* the answer when memory runs out */
    size_t oom_len;
    struct places_stats stats;
};

/* libcurl's messages may quote the URL, Google's may quote the request:
 * scrub the key, raw and URL-encoded, before logging or sending one. */
static void places_redact(const struct places *pl, char *s, size_t size)
{
    places_key_redact(pl->key, s, size);
    places_key_redact(pl->key_escaped, s, size);
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

/* Answers one query from OBJ (NULL: out of memory). */
static void places_answer(struct places *pl, struct json_object *obj, unsigned bound, places_cb cb,
                          void *arg)
{
    char *text;
    size_t len;

    if (!obj || places_format(obj, bound, &text, &len) < 0) {
        cb(arg, pl->oom_text, pl->oom_len);
        return;
    }
    cb(arg, text, len);
    free(text);
}

/* Answers one query with a Places-shaped UNKNOWN_ERROR. */
static void places_answer_error(struct places *pl, const char *message, places_cb cb, void *arg)
{
    struct json_object *obj = places_error_json("UNKNOWN_ERROR", message);

    places_answer(pl, obj, 0, cb, arg);
    json_object_put(obj);
}

/* CURLOPT_WRITEFUNCTION: keeps the body, refusing more than max_body. */
static size_t places_write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct places_fetch *f = userp;
    size_t n = size * nmemb, max = f->pl->max_body;

    if (n > max - f->len) {
        f->too_large = 1;
        return 0; /* CURLE_WRITE_ERROR ends the transfer */
    }
    if (f->len + n + 1 > f->cap) {
        size_t cap = f->cap ? f->cap : PLACES_BODY_INITIAL;
        char *p;
        while (cap < f->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        p = realloc(f->body, cap);
        if (!p)
            return 0;
        f->body = p;
        f->cap = cap;
    }
    memcpy(f->body + f->len, data, n);
    f->len += n;
    f->body[f->len] = '\0';
    return n;
}

/* --- fetches ---------------------------------------------------------------------- */

static void places_req_unlink(struct places_fetch *f, struct places_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        f->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        f->tail = r->prev;
    r->prev = r->next = NULL;
    r->fetch = NULL;
    f->waiters--;
}

/* Takes the first waiter off F (NULL when none). */
static struct places_req *places_req_pop(struct places_fetch *f)
{
    struct places_req *r = f->head;

    if (!r)
        return NULL;
    f->head = r->next;
    if (f->head)
        f->head->prev = NULL;
    else
        f->tail = NULL;
    r->next = NULL;
    r->fetch = NULL;
    f->waiters--;
    return r;
}

static void places_req_append(struct places_fetch *f, struct places_req *r)
{
    r->fetch = f;
    r->next = NULL;
    r->prev = f->tail;
    if (f->tail)
        f->tail->next = r;
    else
        f->head = r;
    f->tail = r;
    f->waiters++;
}

/* Frees F and its waiters without answering them (its easy handle is gone). */
static void places_fetch_free(struct places_fetch *f)
{
    struct places_req *r;

    while ((r = places_req_pop(f)) != NULL)
        free(r);
    free(f->body);
    curl_free(f->log_url);
    free(f);
}

/* Appends NAME=VALUE to U's query; only VALUE is percent-encoded when ENCODE. */
static int places_url_param(CURLU *u, const char *name, const char *value, int encode)
{
    char *part;
    CURLUcode rc;

    if (asprintf(&part, "%s=%s", name, value) < 0)
        return -1; /* part is undefined then */
    rc = curl_url_set(u, CURLUPART_QUERY, part, CURLU_APPENDQUERY | (encode ? CURLU_URLENCODE : 0));
    explicit_bzero(part, strlen(part));
    free(part);
    return rc == CURLUE_OK ? 0 : -1;
}

/*
 * BASE?location=LAT,LNG&radius=RADIUS&key=KEY through libcurl's URL API,
 * which keeps any query BASE already has. LAT, LNG and RADIUS are checked
 * decimals and go as they are (Google's own examples write the comma);
 * the key is percent-encoded. Returns a string to curl_free, or NULL.
 */
static char *places_build_url(const char *base, const char *lat, const char *lng,
                              const char *radius, const char *key)
{
    CURLU *u = curl_url();
    char loc[2 * PLACES_COORD_MAX + 2], *url = NULL;

    snprintf(loc, sizeof loc, "%s,%s", lat, lng);
    if (!u || curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        places_url_param(u, "location", loc, 0) < 0 ||
        places_url_param(u, "radius", radius, 0) < 0 || places_url_param(u, "key", key, 1) < 0 ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
        url = NULL;
    curl_url_cleanup(u);
    return url;
}

static int places_easy_setup(struct places *pl, struct places_fetch *f, const char *url)
{
    CURL *e = f->easy;

    /* NOSIGNAL: libcurl must not use alarm() for timeouts in a process
     * whose signals are libev's. Protocols: places_url is http(s), so a
     * redirect-free request can never be turned into file:// or the like. */
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)f) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, places_write_cb) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)f) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, pl->timeout_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, pl->connect_ms) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)pl->max_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_USERAGENT, "herd-worker (libcurl)") != CURLE_OK)
        return -1;
    return 0;
}

/*
 * Starts the one upstream request for question KEY and enters it in
 * pl->fetches. Returns it, or NULL with the reason in WHY.
 */
static struct places_fetch *places_fetch_new(struct places *pl, const char *key, size_t keylen,
                                             const char *lat, const char *lng, const char *radius,
                                             char *why, size_t whylen)
{
    struct places_fetch *f = calloc(1, sizeof *f + keylen + 1);
    char *url = NULL;
    CURLMcode mrc;

    snprintf(why, whylen, "out of memory");
    if (!f)
        return NULL;
    f->pl = pl;
    memcpy(f->key, key, keylen);
    f->keylen = keylen;
    url = places_build_url(pl->url, lat, lng, radius, pl->key);
    f->log_url = places_build_url(pl->url, lat, lng, radius, "REDACTED");
    f->easy = curl_easy_init();
    if (!url || !f->log_url || !f->easy || places_easy_setup(pl, f, url) < 0)
        goto fail;
    HASH_ADD_KEYPTR(hh, pl->fetches, f->key, f->keylen, f);
    if (f->hh.tbl == NULL)
        goto fail;
    mrc = places_multi_add(pl->multi, f->easy);
    if (mrc != CURLM_OK) {
        HASH_DELETE(hh, pl->fetches, f);
        snprintf(why, whylen, "cannot start the request: %s", curl_multi_strerror(mrc));
        goto fail;
    }
    f->started = ev_time();
    explicit_bzero(url, strlen(url));
    curl_free(url);
    pl->stats.upstream++;
    pl->stats.in_flight++;
    log_debug("places: GET %s", f->log_url);
    return f;
fail:
    if (url) {
        explicit_bzero(url, strlen(url));
        curl_free(url);
    }
    if (f->easy)
        curl_easy_cleanup(f->easy);
    places_fetch_free(f);
    return NULL;
}

/* Why a transfer libcurl ended with RC failed, for the log and the client. */
static void places_curl_why(const struct places_fetch *f, CURLcode rc, double secs, char *why,
                            size_t whylen)
{
    if (f->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(why, whylen, "Places response too large (more than %zu bytes)", f->pl->max_body);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(why, whylen, "Places request timed out after %.1f s", secs);
    else
        snprintf(why, whylen, "Places request failed: %s",
                 f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc));
}

static int places_cacheable(const char *status)
{
    /* Google's other statuses (REQUEST_DENIED, OVER_QUERY_LIMIT,
     * INVALID_REQUEST, ...) are about this moment or this key: ask again. */
    return status && (strcmp(status, "OK") == 0 || strcmp(status, "ZERO_RESULTS") == 0);
}

/* Logs an answer Places gave (HTTP 200, a JSON object). */
static void places_log_answer(const struct places_fetch *f, struct json_object *obj, double secs)
{
    const char *status = places_status(obj);
    struct json_object *res, *msg;
    size_t n = 0;
    char detail[512] = "";

    if (json_object_object_get_ex(obj, "results", &res) &&
        json_object_is_type(res, json_type_array))
        n = json_object_array_length(res);
    if (places_cacheable(status)) {
        log_info("places: GET %s -> HTTP 200 %s, %zu results, %zu bytes, %.3f s, %zu waiting",
                 f->log_url, status, n, f->len, secs, f->waiters);
        return;
    }
    if (json_object_object_get_ex(obj, "error_message", &msg))
        snprintf(detail, sizeof detail, ": %s", json_object_get_string(msg));
    places_redact(f->pl, detail, sizeof detail);
    log_warn("places: GET %s -> HTTP 200 %s%s, %.3f s, %zu waiting", f->log_url,
             status ? status : "without a status", detail, secs, f->waiters);
}

/* Google's error_message goes to the client as sent, unless it quotes the
 * key: then it goes with the key redacted. */
static void places_scrub(const struct places *pl, struct json_object *obj)
{
    struct json_object *msg;
    const char *orig;
    size_t size;
    char *text;

    if (!json_object_object_get_ex(obj, "error_message", &msg) ||
        !json_object_is_type(msg, json_type_string))
        return;
    orig = json_object_get_string(msg);
    if (!(pl->key && strstr(orig, pl->key)) && !(pl->key_escaped && strstr(orig, pl->key_escaped)))
        return;
    size = strlen(orig) * 9 + 1; /* room for a REDACTED for each byte */
    text = malloc(size);
    if (text) {
        snprintf(text, size, "%s", orig);
        places_redact(pl, text, size);
    }
    json_object_set_string(msg, text ? text : "(withheld)");
    free(text);
}

/*
 * Turns a finished transfer into the answer for its waiters (a new
 * reference; NULL when out of memory) and logs what happened.
 */
static struct json_object *places_outcome(struct places_fetch *f, CURLcode rc, double secs)
{
    struct places *pl = f->pl;
    char why[CURL_ERROR_SIZE + 128], detail[128];
    struct json_object *obj = NULL;
    long code = 0;

    if (rc != CURLE_OK) {
        places_curl_why(f, rc, secs, why, sizeof why);
    } else if (curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK ||
               code != 200) {
        snprintf(why, sizeof why, "Places answered HTTP %ld", code);
    } else if (places_parse(f->body ? f->body : "", f->len, &obj, detail, sizeof detail) < 0) {
        snprintf(why, sizeof why, "Places answer is %s", detail);
    } else {
        places_log_answer(f, obj, secs);
        places_scrub(pl, obj);
        return obj;
    }
    places_redact(pl, why, sizeof why);
    pl->stats.errors++;
    log_warn("places: GET %s failed after %.3f s: %s (%zu waiting)", f->log_url, secs, why,
             f->waiters);
    return places_error_json("UNKNOWN_ERROR", why);
}

/* Answers every waiter of F from OBJ. A callback may cancel waiters still
 * queued (taking from the head copes) or ask a new question. */
static void places_deliver(struct places *pl, struct places_fetch *f, struct json_object *obj)
{
    struct places_req *r;

    while ((r = places_req_pop(f)) != NULL) {
        places_answer(pl, obj, r->bound, r->cb, r->arg);
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

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    f = (struct places_fetch *)(void *)priv;
    secs = ev_time() - f->started;
    obj = places_outcome(f, rc, secs);

    HASH_DELETE(hh, pl->fetches, f);
    pl->stats.in_flight--;
    places_multi_remove(pl->multi, f->easy);
    curl_easy_cleanup(f->easy);
    f->easy = NULL;
    /* Out of pl->fetches and into the cache before any callback runs: a
     * callback that asks the same question again must not join a finished
     * fetch, and should find the answer. */
    if (obj && places_cacheable(places_status(obj)) && rc == CURLE_OK)
        places_cache_put(pl->cache, f->key, f->keylen, obj, ev_now(pl->loop));
    places_deliver(pl, f, obj);
    json_object_put(obj);
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

struct places_req *places_query(struct places *pl, struct proto_str lat, struct proto_str lng,
                                uint32_t radius_m_milli, unsigned bound, places_cb cb, void *arg)
{
    char slat[PLACES_COORD_MAX], slng[PLACES_COORD_MAX], radius[24];
    char key[3 * PLACES_COORD_MAX], why[256];
    struct json_object *hit;
    struct places_fetch *f = NULL;
    struct places_req *r;
    ev_tstamp now = ev_now(pl->loop);
    int klen;

    if (!pl->key) {
        log_warn("places: no API key configured: answered REQUEST_DENIED");
        cb(arg, pl->nokey_text, pl->nokey_len);
        return NULL;
    }
    if (places_coord(lat, slat, sizeof slat) < 0 || places_coord(lng, slng, sizeof slng) < 0 ||
        proto_format_radius_m(radius_m_milli, radius, sizeof radius) < 0) {
        places_answer_error(pl, "bad location or radius", cb, arg);
        return NULL;
    }
    klen = snprintf(key, sizeof key, "%s,%s,%s", slat, slng, radius);
    places_cache_expire(pl->cache, now);
    hit = places_cache_get(pl->cache, key, (size_t)klen, now);
    if (hit) {
        pl->stats.hits++;
        log_debug("places: cache hit for %s", key);
        places_answer(pl, hit, bound, cb, arg);
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        cb(arg, pl->oom_text, pl->oom_len);
        return NULL;
    }
    r->bound = bound;
    r->cb = cb;
    r->arg = arg;
    HASH_FIND(hh, pl->fetches, key, (size_t)klen, f);
    if (f) {
        pl->stats.coalesced++;
    } else {
        f = places_fetch_new(pl, key, (size_t)klen, slat, slng, radius, why, sizeof why);
        if (!f) {
            free(r);
            pl->stats.errors++;
            log_warn("places: %s: %s", key, why);
            places_answer_error(pl, why, cb, arg);
            return NULL;
        }
    }
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

/* The answers that must be at hand when nothing else can be made. */
static int places_texts_init(struct places *pl)
{
    if (places_error_text("REQUEST_DENIED", PLACES_NO_KEY_MESSAGE, &pl->nokey_text,
                          &pl->nokey_len) < 0 ||
        places_error_text("UNKNOWN_ERROR", "out of memory", &pl->oom_text, &pl->oom_len) < 0)
        return -1;
    return 0;
}

/* Copies places_url and proves that a request URL can be made from it now,
 * so a bad one stops the worker at start-up instead of failing each WHATSAT. */
static int places_url_init(struct places *pl, const struct cfg_herd *cfg, char *err, size_t errlen)
{
    char *probe;

    pl->url = strdup(cfg->places_url ? cfg->places_url : "");
    if (!pl->url) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
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
    /* libcurl first: everything after uses it. */
    pl->multi = places_multi_new(loop, places_connections(cfg), places_fetch_done, pl, err, errlen);
    if (!pl->multi || places_key_load(cfg, &pl->key, err, errlen) < 0 ||
        places_url_init(pl, cfg, err, errlen) < 0)
        goto fail;
    pl->cache = places_cache_new(cfg->places_cache_entries, cfg->places_cache_ttl);
    if (!pl->cache || places_texts_init(pl) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    log_info("places: %s, timeout %.1f s, cache of %zu answers for %.0f s, %ld connections",
             pl->url, (double)pl->timeout_ms / 1000.0,
             cfg->places_cache_ttl > 0 ? cfg->places_cache_entries : 0,
             cfg->places_cache_ttl > 0 ? cfg->places_cache_ttl : 0.0, places_connections(cfg));
    return pl;
fail:
    places_free(pl);
    return NULL;
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
    free(pl->nokey_text);
    free(pl->oom_text);
    free(pl->url);
    places_key_free(pl->key);
    if (pl->key_escaped) {
        explicit_bzero(pl->key_escaped, strlen(pl->key_escaped));
        curl_free(pl->key_escaped);
    }
    /* Last: it may undo curl_global_init. */
    places_multi_free(pl->multi);
    free(pl);
}
