/*
 * places_new: Places API (New) Nearby Search in JSON. The request body is
 * built with json-c; an answer is translated ONCE per upstream answer into
 * the legacy Nearby Search shape (member names and Google's alphabetical
 * member order, as the legacy API printed them), which the cache and the
 * formatter then treat like any legacy answer; Google's errors get their
 * legacy status. The mapping is docs/places.md's table.
 */
#include "places_new.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- small json-c helpers ---------------------------------------------------------- */

/* OBJ's member KEY when it has type TYPE, else NULL (borrowed). */
static struct json_object *pn_get(struct json_object *obj, const char *key, json_type type)
{
    struct json_object *v;

    if (!obj || !json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, type))
        return NULL;
    return v;
}

static int pn_is_number(struct json_object *v)
{
    return v && (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int));
}

/* Adds KEY: VAL to DST, taking VAL's reference even on failure; NULL VAL
 * (nothing to add) is not an error. Returns 0, or -1 when out of memory. */
static int pn_add(struct json_object *dst, const char *key, struct json_object *val)
{
    if (!val)
        return 0;
    if (json_object_object_add(dst, key, val) != 0) {
        json_object_put(val);
        return -1;
    }
    return 0;
}

/* Shares SRC's member SKEY (when it has TYPE) as DST's DKEY. */
static int pn_share(struct json_object *dst, const char *dkey, struct json_object *src,
                    const char *skey, json_type type)
{
    return pn_add(dst, dkey, json_object_get(pn_get(src, skey, type)));
}

/* --- the request ---------------------------------------------------------------- */

/* JSON's number grammar, so a checked decimal can be sent as written. */
static int pn_json_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* A json-c double printed as TEXT when TEXT is a JSON number already. */
static struct json_object *pn_number(const char *text)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0')
        return NULL;
    return pn_json_number(text) ? json_object_new_double_s(d, text) : json_object_new_double(d);
}

char *places_new_body(const char *lat, const char *lng, const char *radius, unsigned max_results)
{
    struct json_object *body = json_object_new_object(), *restr = json_object_new_object();
    struct json_object *circle = json_object_new_object(), *center = json_object_new_object();
    char *out = NULL;
    int bad;

    /* Each add takes its value's reference, so nothing leaks on failure. */
    bad = !body || !restr || !circle || !center;
    if (bad)
        goto out;
    bad = pn_add(center, "latitude", pn_number(lat)) < 0 ||
          pn_add(center, "longitude", pn_number(lng)) < 0 || json_object_object_length(center) != 2;
    bad |= pn_add(circle, "center", json_object_get(center)) < 0;
    bad |=
        pn_add(circle, "radius", pn_number(radius)) < 0 || json_object_object_length(circle) != 2;
    bad |= pn_add(restr, "circle", json_object_get(circle)) < 0;
    bad |= pn_add(body, "locationRestriction", json_object_get(restr)) < 0;
    bad |= pn_add(body, "maxResultCount", json_object_new_int((int)max_results)) < 0;
    if (!bad && body && json_object_object_length(body) == 2) {
        const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
        out = text ? strdup(text) : NULL;
    }
out:
    json_object_put(center);
    json_object_put(circle);
    json_object_put(restr);
    json_object_put(body);
    return out;
}

/* --- the answer ----------------------------------------------------------------- */

/* {"latitude": A, "longitude": B} -> {"lat": A, "lng": B}, or NULL. */
static struct json_object *pn_latlng(struct json_object *src)
{
    struct json_object *lat = pn_get(src, "latitude", json_type_double);
    struct json_object *lng = pn_get(src, "longitude", json_type_double);
    struct json_object *out;

    /* Google prints whole degrees without a fraction: json-c reads an int. */
    if (!lat)
        lat = pn_get(src, "latitude", json_type_int);
    if (!lng)
        lng = pn_get(src, "longitude", json_type_int);
    if (!pn_is_number(lat) || !pn_is_number(lng) || !(out = json_object_new_object()))
        return NULL;
    if (pn_add(out, "lat", json_object_get(lat)) < 0 ||
        pn_add(out, "lng", json_object_get(lng)) < 0) {
        json_object_put(out);
        return NULL;
    }
    return out;
}

/* location and viewport {low, high} -> geometry {location, viewport
 * {northeast, southwest}}; NULL when the place has neither. */
static int pn_geometry(struct json_object *dst, struct json_object *p)
{
    struct json_object *geo = json_object_new_object(), *vp = json_object_new_object();
    struct json_object *view = pn_get(p, "viewport", json_type_object);
    int rc = -1;

    if (!geo || !vp ||
        pn_add(geo, "location", pn_latlng(pn_get(p, "location", json_type_object))) < 0 ||
        pn_add(vp, "northeast", pn_latlng(pn_get(view, "high", json_type_object))) < 0 ||
        pn_add(vp, "southwest", pn_latlng(pn_get(view, "low", json_type_object))) < 0)
        goto out;
    if (json_object_object_length(vp) == 2 && pn_add(geo, "viewport", json_object_get(vp)) < 0)
        goto out;
    rc = 0;
    if (json_object_object_length(geo) > 0)
        rc = pn_add(dst, "geometry", json_object_get(geo));
out:
    json_object_put(vp);
    json_object_put(geo);
    return rc;
}

/* priceLevel's enum -> legacy price_level 0..4 (UNSPECIFIED: absent). */
static struct json_object *pn_price(struct json_object *p)
{
    static const char *const levels[] = {"PRICE_LEVEL_FREE", "PRICE_LEVEL_INEXPENSIVE",
                                         "PRICE_LEVEL_MODERATE", "PRICE_LEVEL_EXPENSIVE",
                                         "PRICE_LEVEL_VERY_EXPENSIVE"};
    struct json_object *v = pn_get(p, "priceLevel", json_type_string);

    for (size_t i = 0; v && i < sizeof levels / sizeof levels[0]; i++)
        if (strcmp(json_object_get_string(v), levels[i]) == 0)
            return json_object_new_int((int)i);
    return NULL;
}

/* {OUTER: {INNER: v}} with SRC's member SKEY (of TYPE) as v; NULL without. */
static struct json_object *pn_wrap(struct json_object *src, const char *skey, json_type type,
                                   const char *inner)
{
    struct json_object *v = pn_get(src, skey, type), *o;

    if (!v || !(o = json_object_new_object()))
        return NULL;
    if (pn_add(o, inner, json_object_get(v)) < 0) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* plusCode {globalCode, compoundCode} -> plus_code {compound_code, global_code}. */
static int pn_plus_code(struct json_object *dst, struct json_object *p)
{
    struct json_object *pc = pn_get(p, "plusCode", json_type_object), *o;

    if (!pc)
        return 0;
    o = json_object_new_object();
    if (!o || pn_share(o, "compound_code", pc, "compoundCode", json_type_string) < 0 ||
        pn_share(o, "global_code", pc, "globalCode", json_type_string) < 0) {
        json_object_put(o);
        return -1;
    }
    if (json_object_object_length(o) == 0) {
        json_object_put(o);
        return 0;
    }
    return pn_add(dst, "plus_code", o);
}

/* One place, in the legacy member order (alphabetical, as Google printed). */
static struct json_object *pn_place(struct json_object *p)
{
    struct json_object *r = json_object_new_object();
    struct json_object *hours = pn_get(p, "currentOpeningHours", json_type_object);
    struct json_object *rating = pn_get(p, "rating", json_type_double);
    int bad;

    if (!r)
        return NULL;
    if (!rating)
        rating = pn_get(p, "rating", json_type_int);
    bad =
        pn_share(r, "business_status", p, "businessStatus", json_type_string) < 0 ||
        pn_geometry(r, p) < 0 ||
        pn_share(r, "icon_background_color", p, "iconBackgroundColor", json_type_string) < 0 ||
        pn_share(r, "icon_mask_base_uri", p, "iconMaskBaseUri", json_type_string) < 0 ||
        pn_add(r, "name",
               json_object_get(pn_get(pn_get(p, "displayName", json_type_object), "text",
                                      json_type_string))) < 0 ||
        pn_add(r, "opening_hours", pn_wrap(hours, "openNow", json_type_boolean, "open_now")) < 0 ||
        pn_share(r, "place_id", p, "id", json_type_string) < 0 || pn_plus_code(r, p) < 0 ||
        pn_add(r, "price_level", pn_price(p)) < 0 ||
        pn_add(r, "rating", json_object_get(rating)) < 0 ||
        pn_share(r, "types", p, "types", json_type_array) < 0 ||
        pn_share(r, "user_ratings_total", p, "userRatingCount", json_type_int) < 0 ||
        pn_share(r, "vicinity", p, "shortFormattedAddress", json_type_string) < 0;
    if (bad) {
        json_object_put(r);
        return NULL;
    }
    return r;
}

static struct json_object *pn_results(struct json_object *places)
{
    size_t n = places ? json_object_array_length(places) : 0;
    struct json_object *res = json_object_new_array_ext(n > 0 ? (int)n : 1);

    for (size_t i = 0; res && i < n; i++) {
        struct json_object *p = json_object_array_get_idx(places, i), *r;
        if (!json_object_is_type(p, json_type_object))
            continue; /* not a place: nothing a client could use */
        r = pn_place(p);
        if (!r || json_object_array_add(res, r) != 0) {
            json_object_put(r);
            json_object_put(res);
            return NULL;
        }
    }
    return res;
}

struct json_object *places_new_translate(struct json_object *native, char *why, size_t whylen)
{
    struct json_object *places = NULL, *out, *res;
    int zero;

    if (!json_object_is_type(native, json_type_object)) {
        snprintf(why, whylen, "not a Nearby Search (New) answer: not a JSON object");
        return NULL;
    }
    /* {} is Google's answer when nothing is near. */
    if (json_object_object_get_ex(native, "places", &places) &&
        !json_object_is_type(places, json_type_array)) {
        snprintf(why, whylen, "not a Nearby Search (New) answer: \"places\" is not an array");
        return NULL;
    }
    snprintf(why, whylen, "out of memory");
    res = pn_results(places);
    if (!res)
        return NULL;
    zero = json_object_array_length(res) == 0;
    /* Google's member order: alphabetical. */
    out = json_object_new_object();
    if (!out || pn_add(out, "html_attributions", json_object_new_array()) < 0 ||
        pn_add(out, "results", json_object_get(res)) < 0 ||
        pn_add(out, "status", json_object_new_string(zero ? "ZERO_RESULTS" : "OK")) < 0 ||
        json_object_object_length(out) != 3) {
        json_object_put(out);
        out = NULL;
    }
    json_object_put(res); /* OUT holds its own reference */
    return out;
}

/* --- errors --------------------------------------------------------------------- */

/* Google says API_KEY_INVALID in error.details[].reason (HTTP 400
 * INVALID_ARGUMENT): to a client that is a refused key, as in legacy. */
static int pn_key_invalid(struct json_object *err)
{
    struct json_object *details = pn_get(err, "details", json_type_array);
    size_t n = details ? json_object_array_length(details) : 0;

    for (size_t i = 0; i < n; i++) {
        struct json_object *reason =
            pn_get(json_object_array_get_idx(details, i), "reason", json_type_string);
        if (reason && strcmp(json_object_get_string(reason), "API_KEY_INVALID") == 0)
            return 1;
    }
    return 0;
}

const char *places_new_error_status(long http, struct json_object *body, const char **message)
{
    struct json_object *err = pn_get(body, "error", json_type_object);
    struct json_object *st = pn_get(err, "status", json_type_string);
    struct json_object *msg = pn_get(err, "message", json_type_string);
    const char *s = st ? json_object_get_string(st) : "";

    *message = msg ? json_object_get_string(msg) : NULL;
    if (pn_key_invalid(err) || strcmp(s, "PERMISSION_DENIED") == 0 ||
        strcmp(s, "UNAUTHENTICATED") == 0)
        return "REQUEST_DENIED";
    if (strcmp(s, "RESOURCE_EXHAUSTED") == 0)
        return "OVER_QUERY_LIMIT";
    if (strcmp(s, "INVALID_ARGUMENT") == 0)
        return "INVALID_REQUEST";
    if (st) /* a status of Google's own that says something else */
        return "UNKNOWN_ERROR";
    if (http == 401 || http == 403)
        return "REQUEST_DENIED";
    if (http == 429)
        return "OVER_QUERY_LIMIT";
    if (http == 400)
        return "INVALID_REQUEST";
    return "UNKNOWN_ERROR";
}
