/*
 * places_fetch: one upstream Places request. Builds it (legacy: a GET URL
 * through libcurl's URL API, key percent-encoded; New: a POST with the key
 * and field mask in headers and a json-c body), sets up its easy handle
 * (timeouts, a bounded body, no signals), keeps its waiters, and turns how
 * it ended into the answer and the log line: HTTP status, JSON object or
 * not, Google's status, duration. A New answer is translated here, once per
 * upstream answer. The key is scrubbed from everything logged or sent.
 */
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "places_format.h"
#include "places_int.h"
#include "places_key.h"
#include "places_multi.h"
#include "places_new.h"

#define PLACES_BODY_INITIAL 16384
#define PLACES_MESSAGE_MAX  1024 /* bytes of Google's error message passed on */

/* libcurl's messages may quote the URL, Google's may quote the request:
 * scrub the key, raw and URL-encoded, before logging or sending one. */
static void places_redact(const struct places *pl, char *s, size_t size)
{
    places_key_redact(pl->key, s, size);
    places_key_redact(pl->key_escaped, s, size);
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

void places_req_unlink(struct places_fetch *f, struct places_req *r)
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
struct places_req *places_req_pop(struct places_fetch *f)
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

void places_req_append(struct places_fetch *f, struct places_req *r)
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
void places_fetch_free(struct places_fetch *f)
{
    struct places_req *r;

    while ((r = places_req_pop(f)) != NULL)
        free(r);
    for (struct curl_slist *h = f->headers; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data)); /* the key */
    curl_slist_free_all(f->headers);
    free(f->body);
    free(f->log_url);
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
char *places_build_url(const char *base, const char *lat, const char *lng, const char *radius,
                       const char *key)
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

/* Appends "NAME: VALUE" to F's headers. */
static int places_header(struct places_fetch *f, const char *name, const char *value)
{
    char *line;
    struct curl_slist *l;

    if (asprintf(&line, "%s: %s", name, value) < 0)
        return -1;
    l = curl_slist_append(f->headers, line); /* copies */
    explicit_bzero(line, strlen(line));
    free(line);
    if (!l)
        return -1;
    f->headers = l;
    return 0;
}

/* The New API's request: POST, its headers, and the json-c body for
 * LAT, LNG, RADIUS and F's bound (curl copies the body). */
static int places_new_setup(struct places *pl, struct places_fetch *f, const char *lat,
                            const char *lng, const char *radius)
{
    char *body = places_new_body(lat, lng, radius, f->bound);
    CURL *e = f->easy;
    int rc = -1;

    if (body && places_header(f, "Content-Type", "application/json") == 0 &&
        places_header(f, "X-Goog-Api-Key", pl->key) == 0 &&
        places_header(f, "X-Goog-FieldMask", pl->fields) == 0 &&
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) == CURLE_OK &&
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK) {
        log_debug("places: %s body %s", f->log_url, body);
        rc = 0;
    }
    free(body);
    return rc;
}

/* The request, by API: its easy handle's URL and, for New, its POST. */
static int places_request_setup(struct places *pl, struct places_fetch *f, const char *lat,
                                const char *lng, const char *radius)
{
    char *url;
    int rc;

    if (pl->api == CFG_PLACES_NEW) {
        if (asprintf(&f->log_url, "POST %s", pl->url) < 0)
            f->log_url = NULL;
        return !f->log_url || places_easy_setup(pl, f, pl->url) < 0 ||
                       places_new_setup(pl, f, lat, lng, radius) < 0
                   ? -1
                   : 0;
    }
    url = places_build_url(pl->url, lat, lng, radius, pl->key);
    {
        char *shown = places_build_url(pl->url, lat, lng, radius, "REDACTED");
        if (!shown || asprintf(&f->log_url, "GET %s", shown) < 0)
            f->log_url = NULL;
        curl_free(shown);
    }
    rc = url && f->log_url ? places_easy_setup(pl, f, url) : -1;
    if (url) {
        explicit_bzero(url, strlen(url));
        curl_free(url);
    }
    return rc;
}

/*
 * Starts the one upstream request for question KEY and enters it in
 * pl->fetches. Returns it, or NULL with the reason in WHY.
 */
struct places_fetch *places_fetch_new(struct places *pl, const char *key, size_t keylen,
                                      const char *lat, const char *lng, const char *radius,
                                      unsigned bound, char *why, size_t whylen)
{
    struct places_fetch *f = calloc(1, sizeof *f + keylen + 1);
    CURLMcode mrc;

    snprintf(why, whylen, "out of memory");
    if (!f)
        return NULL;
    f->pl = pl;
    memcpy(f->key, key, keylen);
    f->keylen = keylen;
    f->bound = bound;
    f->easy = curl_easy_init();
    if (!f->easy || places_request_setup(pl, f, lat, lng, radius) < 0)
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
    f->started = places_clock();
    pl->stats.upstream++;
    pl->stats.in_flight++;
    log_debug("places: %s", f->log_url);
    return f;
fail:
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

int places_cacheable(const char *status)
{
    /* Google's other statuses (REQUEST_DENIED, OVER_QUERY_LIMIT,
     * INVALID_REQUEST, ...) are about this moment or this key: ask again. */
    return status && (strcmp(status, "OK") == 0 || strcmp(status, "ZERO_RESULTS") == 0);
}

/* The hint an operator needs when Google refuses the key: once per worker. */
static void places_hint(struct places *pl, const char *status)
{
    if (pl->hinted || !status || strcmp(status, "REQUEST_DENIED") != 0)
        return;
    pl->hinted = 1;
    if (pl->api == CFG_PLACES_NEW)
        log_warn("places: hint: Google refused the key: enable \"Places API (New)\" for this "
                 "key's Google Cloud project (billing on), and let the key's API restrictions "
                 "allow it (README, Places)");
    else
        log_warn("places: hint: Google refused the key: Cloud projects created since October "
                 "2026 cannot enable Places API (Legacy); enable \"Places API (New)\" and set "
                 "places_api = new (README, Places)");
}

/* Logs an answer Places gave (a JSON object, legacy or translated). */
static void places_log_answer(struct places_fetch *f, struct json_object *obj, double secs)
{
    const char *status = places_status(obj);
    struct json_object *res, *msg;
    size_t n = 0;
    char prefix[512], detail[512] = "";

    if (json_object_object_get_ex(obj, "results", &res) &&
        json_object_is_type(res, json_type_array))
        n = json_object_array_length(res);
    if (places_cacheable(status)) {
        log_info("places: %s -> HTTP 200 %s, %zu results, %zu bytes, %.3f s, %zu waiting",
                 f->log_url, status, n, f->len, secs, f->waiters);
        return;
    }
    if (json_object_object_get_ex(obj, "error_message", &msg))
        snprintf(detail, sizeof detail, "%s", json_object_get_string(msg));
    places_redact(f->pl, detail, sizeof detail);
    snprintf(prefix, sizeof prefix, "places: %s -> HTTP 200 %s, %.3f s, %zu waiting:", f->log_url,
             status ? status : "without a status", secs, f->waiters);
    log_line(LOG_WARN, prefix, detail, strlen(detail)); /* Google's bytes, escaped */
    places_hint(f->pl, status);
}

/*
 * Google's error MESSAGE for a client: the key redacted first, then cut to
 * PLACES_MESSAGE_MAX bytes on a character boundary. The text is first cut
 * to that plus a key's length, so no key straddling the cut escapes the
 * redaction. A new string, or NULL when out of memory.
 */
static char *places_message(const struct places *pl, const char *message)
{
    size_t klen = pl->key ? strlen(pl->key) : 0, n;
    size_t elen = pl->key_escaped ? strlen(pl->key_escaped) : 0;
    size_t keep = PLACES_MESSAGE_MAX + (klen > elen ? klen : elen), size;
    char *text;

    n = strlen(message);
    if (n > keep)
        n = keep;
    size = n * 9 + 1; /* room for a REDACTED for each byte */
    text = malloc(size);
    if (!text)
        return NULL;
    memcpy(text, message, n);
    text[n] = '\0';
    places_redact(pl, text, size);
    n = strlen(text);
    if (n > PLACES_MESSAGE_MAX) {
        n = PLACES_MESSAGE_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
        text[n] = '\0';
    }
    return text;
}

/* A New API error answer (HTTP CODE, OBJ Google's JSON or NULL): the legacy
 * status it means, with Google's message redacted; logged, with the hint. */
static struct json_object *places_new_error(struct places_fetch *f, long code,
                                            struct json_object *obj, double secs)
{
    struct places *pl = f->pl;
    const char *gmsg, *status = places_new_error_status(code, obj, &gmsg);
    char fallback[64], prefix[512], *msg;
    struct json_object *ans;

    if (!gmsg) {
        snprintf(fallback, sizeof fallback, "Places answered HTTP %ld", code);
        gmsg = fallback;
    }
    msg = places_message(pl, gmsg);
    pl->stats.errors++;
    snprintf(prefix, sizeof prefix, "places: %s -> HTTP %ld %s, %.3f s, %zu waiting:", f->log_url,
             code, status, secs, f->waiters);
    log_line(LOG_WARN, prefix, msg ? msg : "", msg ? strlen(msg) : 0);
    places_hint(pl, status);
    ans = places_error_json(status, msg ? msg : "out of memory");
    free(msg);
    return ans;
}

/* A finished New transfer (HTTP CODE): translated, or the error it means.
 * Sets WHY and returns NULL when the answer is no Nearby Search answer. */
static struct json_object *places_new_outcome(struct places_fetch *f, long code, double secs,
                                              char *why, size_t whylen)
{
    struct json_object *obj = NULL, *ans;
    char detail[128];
    int parsed = places_parse(f->body ? f->body : "", f->len, &obj, detail, sizeof detail) == 0;

    snprintf(why, whylen, "out of memory");
    if (code != 200) {
        ans = places_new_error(f, code, parsed ? obj : NULL, secs);
    } else if (!parsed) {
        snprintf(why, whylen, "Places answer is %s", detail);
        ans = NULL;
    } else {
        /* Once per upstream answer: the cache and every waiter get this. */
        ans = places_new_translate(obj, why, whylen);
        if (ans)
            places_log_answer(f, ans, secs);
    }
    json_object_put(obj);
    return ans;
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
struct json_object *places_fetch_outcome(struct places_fetch *f, CURLcode rc, double secs)
{
    struct places *pl = f->pl;
    char why[CURL_ERROR_SIZE + 128], detail[128];
    struct json_object *obj = NULL;
    long code = 0;

    if (rc != CURLE_OK) {
        places_curl_why(f, rc, secs, why, sizeof why);
    } else if (pl->api == CFG_PLACES_NEW) {
        if (curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
            code = 0;
        obj = places_new_outcome(f, code, secs, why, sizeof why);
        if (obj)
            return obj;
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
    log_warn("places: %s failed after %.3f s: %s (%zu waiting)", f->log_url, secs, why, f->waiters);
    return places_error_json("UNKNOWN_ERROR", why);
}
