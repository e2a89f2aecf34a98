/*
 * libFuzzer target for worker/places_format.c, the JSON half of the Places
 * proxy: a Places body is the one input a worker takes from a server it does
 * not run. The first byte picks the bound, the rest is the body. Beyond "no
 * crash", it checks what SPEC §4 promises of the text a client gets: valid
 * JSON, "results" cut to the bound, every other member kept, no blank line,
 * no trailing newline, and printing is stable (print, parse, print again
 * gives the same text). The error answer is checked with the body as its
 * message, and the newline squeezer on the raw bytes. The same body is also
 * taken as a Places API (New) answer (worker/places_new.c): its translation
 * must be a legacy-shaped object with only legacy members, status OK exactly
 * when it has results, and print like any answer; its error mapping must
 * give one of the four legacy statuses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "places_format.h"
#include "places_new.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t len)
{
    if (s[len] != '\0' || strlen(s) != len)
        abort(); /* NUL-terminated, no NUL inside: it goes out as text */
    if (len > 0 && s[len - 1] == '\n')
        abort();
    if (memmem(s, len, "\n\n", 2) != NULL)
        abort();
}

static size_t results_len(struct json_object *obj, int *is_array)
{
    struct json_object *r;

    *is_array = 0;
    if (!json_object_object_get_ex(obj, "results", &r) ||
        json_object_get_type(r) != json_type_array)
        return 0;
    *is_array = 1;
    return json_object_array_length(r);
}

static void check_format(struct json_object *obj, unsigned bound)
{
    char  *out = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    char   why[160];
    struct json_object *back = NULL, *back2 = NULL;
    int    was_array, is_array;
    size_t n, m;

    if (places_format(obj, bound, &out, &len) < 0)
        return; /* out of memory: nothing to check */
    check_text(out, len);

    /* What a client gets must itself be one JSON object. */
    if (places_parse(out, len, &back, why, sizeof why) < 0)
        abort();
    n = results_len(obj, &was_array);
    m = results_len(back, &is_array);
    if (was_array != is_array)
        abort();
    if (is_array && m != (n < bound ? n : bound))
        abort();
    if (json_object_object_length(back) != json_object_object_length(obj))
        abort();

    /* Printing what was printed changes nothing: no drift between hops. */
    if (places_format(back, bound, &again, &len2) == 0) {
        if (len2 != len || memcmp(again, out, len) != 0)
            abort();
        if (places_parse(again, len2, &back2, why, sizeof why) < 0)
            abort();
    }
    json_object_put(back2);
    json_object_put(back);
    free(again);
    free(out);
}

static int is_member(const char *key, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(key, *set) == 0)
            return 1;
    return 0;
}

static void check_result(struct json_object *r)
{
    static const char *const legacy[] = {
        "business_status", "geometry", "icon_background_color", "icon_mask_base_uri", "name",
        "opening_hours", "place_id", "plus_code", "price_level", "rating", "types",
        "user_ratings_total", "vicinity", NULL};
    struct json_object *pl;

    if (!json_object_is_type(r, json_type_object))
        abort();
    json_object_object_foreach(r, key, val)
    {
        (void)val;
        if (!is_member(key, legacy))
            abort();
    }
    if (json_object_object_get_ex(r, "price_level", &pl) &&
        (json_object_get_int(pl) < 0 || json_object_get_int(pl) > 4))
        abort();
}

static void check_new(struct json_object *obj, unsigned bound)
{
    static const char *const statuses[] = {"REQUEST_DENIED", "OVER_QUERY_LIMIT",
                                           "INVALID_REQUEST", "UNKNOWN_ERROR", NULL};
    static const long codes[] = {200, 400, 403, 429, 500};
    char why[160] = "";
    struct json_object *out = places_new_translate(obj, why, sizeof why), *res, *ha;
    const char *msg;
    size_t n;

    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (!is_member(places_new_error_status(codes[i], obj, &msg), statuses))
            abort();
    if (!out) {
        if (why[0] == '\0')
            abort();
        return;
    }
    if (json_object_object_length(out) != 3 ||
        !json_object_object_get_ex(out, "html_attributions", &ha) ||
        json_object_array_length(ha) != 0 || !json_object_object_get_ex(out, "results", &res) ||
        !json_object_is_type(res, json_type_array))
        abort();
    n = json_object_array_length(res);
    if (strcmp(places_status(out), n > 0 ? "OK" : "ZERO_RESULTS") != 0)
        abort();
    for (size_t i = 0; i < n; i++)
        check_result(json_object_array_get_idx(res, i));
    check_format(out, bound);
    json_object_put(out);
}

static void check_body(const uint8_t *data, size_t size)
{
    char num[32], *body;
    struct json_object *back = NULL;
    char why[160];
    size_t n = size < sizeof num - 1 ? size : sizeof num - 1;

    memcpy(num, data, n);
    num[n] = '\0';
    body = places_new_body(num, "0", num, 20);
    /* A number it takes must make a body that is JSON. */
    if (body && places_parse(body, strlen(body), &back, why, sizeof why) < 0)
        abort();
    json_object_put(back);
    free(body);
}

static void check_error(const uint8_t *data, size_t size)
{
    char *msg = malloc(size + 1);
    char *out = NULL;
    size_t len;
    char why[160];
    struct json_object *obj, *back = NULL, *em;

    if (!msg)
        return;
    memcpy(msg, data, size);
    msg[size] = '\0';
    obj = places_error_json("UNKNOWN_ERROR", msg);
    if (obj && places_format(obj, 20, &out, &len) == 0) {
        check_text(out, len);
        /* A message with invalid UTF-8 may be refused on the way back in
         * (VALIDATE_UTF8); any other must come back as it went out. */
        if (places_parse(out, len, &back, why, sizeof why) == 0) {
            if (!json_object_object_get_ex(back, "error_message", &em) ||
                strcmp(json_object_get_string(em), msg) != 0)
                abort();
            if (strcmp(places_status(back), "UNKNOWN_ERROR") != 0)
                abort();
        }
    }
    json_object_put(back);
    json_object_put(obj);
    free(out);
    free(msg);
}

static void check_squeeze(const uint8_t *data, size_t size)
{
    char  *s = malloc(size + 1);
    size_t n;

    if (!s)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    n = places_squeeze_newlines(s, size);
    if (n > size || s[n] != '\0')
        abort();
    if ((n > 0 && s[n - 1] == '\n') || memmem(s, n, "\n\n", 2) != NULL)
        abort();
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *obj = NULL;
    char                why[160] = "";
    unsigned            bound;

    if (size == 0)
        return 0;
    bound = data[0] % 22; /* 0..20 as clients may ask, and 21 */
    data++;
    size--;
    if (places_parse((const char *)data, size, &obj, why, sizeof why) == 0) {
        if (json_object_get_type(obj) != json_type_object)
            abort();
        (void)places_status(obj);
        check_format(obj, bound);
        check_new(obj, bound);
        json_object_put(obj);
    } else if (why[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    if (size < 4096) {
        check_error(data, size);
        check_squeeze(data, size);
        check_body(data, size);
    }
    return 0;
}
