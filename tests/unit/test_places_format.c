/*
 * Unit tests for the pure parts of the Places proxy: worker/places_format.c
 * (parsing a Places body, printing it in Google's layout with "results" cut
 * to a bound, cutting a printed answer by slicing, the error answers) and
 * worker/places_cache.c (expiry, bounded entries, reference counts). No
 * network, no event loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "places_cache.h"
#include "places_format.h"

/* A Nearby Search answer exactly as Google prints it (JsonCpp StyledWriter),
 * without its final newline. */
static const char GOOGLE[] =
    "{\n"
    "   \"html_attributions\" : [],\n"
    "   \"results\" : [\n"
    "      {\n"
    "         \"business_status\" : \"OPERATIONAL\",\n"
    "         \"geometry\" : {\n"
    "            \"location\" : {\n"
    "               \"lat\" : 34.0709533,\n"
    "               \"lng\" : -118.4436537\n"
    "            },\n"
    "            \"viewport\" : {\n"
    "               \"northeast\" : {\n"
    "                  \"lat\" : 34.07230312989272,\n"
    "                  \"lng\" : -118.4422983701073\n"
    "               },\n"
    "               \"southwest\" : {\n"
    "                  \"lat\" : 34.06960347010727,\n"
    "                  \"lng\" : -118.4449980298927\n"
    "               }\n"
    "            }\n"
    "         },\n"
    "         \"name\" : \"Caf\xc3\xa9 \\u0026 Bakery\",\n"
    "         \"opening_hours\" : {\n"
    "            \"open_now\" : true\n"
    "         },\n"
    "         \"photos\" : [\n"
    "            {\n"
    "               \"height\" : 3024,\n"
    "               \"html_attributions\" : [\n"
    "                  \"\\u003ca href=\\\"https://maps.google.com/maps/contrib/1\\\"\\u003eA "
    "User\\u003c/a\\u003e\"\n"
    "               ],\n"
    "               \"width\" : 4032\n"
    "            }\n"
    "         ],\n"
    "         \"rating\" : 4.5,\n"
    "         \"types\" : [ \"restaurant\", \"food\", \"point_of_interest\", \"store\", "
    "\"establishment\" ],\n"
    "         \"user_ratings_total\" : 27\n"
    "      },\n"
    "      {\n"
    "         \"name\" : \"Second\",\n"
    "         \"types\" : [\n"
    "            \"tourist_attraction\",\n"
    "            \"church\",\n"
    "            \"place_of_worship\",\n"
    "            \"point_of_interest\",\n"
    "            \"establishment\"\n"
    "         ]\n"
    "      },\n"
    "      {\n"
    "         \"name\" : \"Third\",\n"
    "         \"permanently_closed\" : false,\n"
    "         \"price_level\" : null\n"
    "      }\n"
    "   ],\n"
    "   \"status\" : \"OK\"\n"
    "}";

static struct json_object *parse_ok(const char *text)
{
    struct json_object *obj = NULL;
    char why[128];

    assert_int_equal(places_parse(text, strlen(text), &obj, why, sizeof why), 0);
    assert_non_null(obj);
    return obj;
}

/* Formats TEXT with BOUND and compares with WANT. */
static void assert_formats(const char *text, unsigned bound, const char *want)
{
    struct json_object *obj = parse_ok(text);
    char *out = NULL;
    size_t len = 0;

    assert_int_equal(places_format(obj, bound, &out, &len), 0);
    assert_int_equal(len, strlen(out));
    assert_string_equal(out, want);
    free(out);
    json_object_put(obj);
}

static void parse_why(const char *text, size_t len, const char *want_prefix)
{
    struct json_object *obj = NULL;
    char why[128] = "";

    assert_int_equal(places_parse(text, len, &obj, why, sizeof why), -1);
    assert_null(obj);
    if (strncmp(why, want_prefix, strlen(want_prefix)) != 0)
        fail_msg("why \"%s\" does not start with \"%s\"", why, want_prefix);
}

static void test_google_body_round_trips_byte_for_byte(void **state)
{
    char body[sizeof GOOGLE + 1];

    (void)state;
    snprintf(body, sizeof body, "%s\n", GOOGLE); /* Google ends with a newline */
    assert_formats(body, 20, GOOGLE);
    assert_formats(body, 3, GOOGLE);
}

static void test_results_cut_to_bound_keep_other_members(void **state)
{
    struct json_object *obj = parse_ok(GOOGLE), *again;
    char *out = NULL, *out2 = NULL, why[64];
    size_t len, len2;

    (void)state;
    assert_int_equal(places_format(obj, 1, &out, &len), 0);
    assert_non_null(strstr(out, "\"html_attributions\" : [],\n"));
    assert_non_null(strstr(out, "\n   \"status\" : \"OK\"\n}"));
    assert_non_null(strstr(out, "Caf\xc3\xa9"));
    assert_null(strstr(out, "Second"));
    /* The cut answer is itself valid JSON with one result. */
    assert_int_equal(places_parse(out, len, &again, why, sizeof why), 0);
    assert_int_equal(json_object_array_length(json_object_object_get(again, "results")), 1);
    json_object_put(again);
    /* The object is not modified: a later, larger bound sees every result. */
    assert_int_equal(places_format(obj, 2, &out2, &len2), 0);
    assert_non_null(strstr(out2, "Second"));
    assert_null(strstr(out2, "Third"));
    free(out);
    free(out2);
    json_object_put(obj);
}

static void test_bound_zero_gives_empty_results(void **state)
{
    (void)state;
    assert_formats(GOOGLE, 0,
                   "{\n"
                   "   \"html_attributions\" : [],\n"
                   "   \"results\" : [],\n"
                   "   \"status\" : \"OK\"\n"
                   "}");
}

static void test_only_top_level_results_is_cut(void **state)
{
    (void)state;
    assert_formats("{\"a\":{\"results\":[1,2,3]},\"results\":[{\"results\":[4,5]},{}]}", 1,
                   "{\n"
                   "   \"a\" : {\n"
                   "      \"results\" : [ 1, 2, 3 ]\n"
                   "   },\n"
                   "   \"results\" : [\n"
                   "      {\n"
                   "         \"results\" : [ 4, 5 ]\n"
                   "      }\n"
                   "   ]\n"
                   "}");
}

static void test_empty_containers(void **state)
{
    (void)state;
    assert_formats("{}", 5, "{}");
    assert_formats("{\"o\":{},\"a\":[],\"m\":[{},[]]}", 5,
                   "{\n"
                   "   \"o\" : {},\n"
                   "   \"a\" : [],\n"
                   "   \"m\" : [ {}, [] ]\n"
                   "}");
}

/* {"a":["xxx...x"]} with N x's, and what it should print as. */
static void margin_case(size_t n, int inline_expected)
{
    char in[128], want[160], xs[100];

    memset(xs, 'x', n);
    xs[n] = '\0';
    snprintf(in, sizeof in, "{\"a\":[\"%s\"]}", xs);
    if (inline_expected)
        snprintf(want, sizeof want, "{\n   \"a\" : [ \"%s\" ]\n}", xs);
    else
        snprintf(want, sizeof want, "{\n   \"a\" : [\n      \"%s\"\n   ]\n}", xs);
    assert_formats(in, 0, want);
}

static void test_array_layout_follows_the_margin(void **state)
{
    (void)state;
    /* "[ \"x...\" ]" is N + 6 wide: 73 stays on one line, 74 does not. */
    margin_case(67, 1);
    margin_case(68, 0);
    /* 23 one-digit numbers: 71 wide; 24: 74 wide. */
    assert_formats("{\"n\":[1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3]}", 0,
                   "{\n   \"n\" : [ 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, "
                   "2, 3 ]\n}");
    assert_formats("{\"n\":[1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4]}", 0,
                   "{\n   \"n\" : [\n      1,\n      2,\n      3,\n      4,\n      5,\n      6,\n"
                   "      7,\n      8,\n      9,\n      0,\n      1,\n      2,\n      3,\n"
                   "      4,\n      5,\n      6,\n      7,\n      8,\n      9,\n      0,\n"
                   "      1,\n      2,\n      3,\n      4\n   ]\n}");
    /* A filled container inside makes an array multi-line. */
    assert_formats("{\"a\":[[1],[2,[3]]]}", 0,
                   "{\n   \"a\" : [\n      [ 1 ],\n      [\n         2,\n         [ 3 ]\n"
                   "      ]\n   ]\n}");
}

static void test_strings_are_escaped_like_google(void **state)
{
    (void)state;
    assert_formats("{\"s\":\"a/b <i> & \\\"q\\\" \\\\ \\n\\t\\r\\b\\f\\u0001 \\u00e9\"}", 0,
                   "{\n   \"s\" : \"a/b \\u003ci\\u003e \\u0026 \\\"q\\\" \\\\ \\n\\t\\r\\b\\f"
                   "\\u0001 \xc3\xa9\"\n}");
    /* An embedded NUL survives as an escape. */
    assert_formats("{\"s\":\"a\\u0000b\"}", 0, "{\n   \"s\" : \"a\\u0000b\"\n}");
    /* Keys are escaped the same way. */
    assert_formats("{\"<k>\":1}", 0, "{\n   \"\\u003ck\\u003e\" : 1\n}");
}

static void test_numbers_keep_their_text(void **state)
{
    (void)state;
    assert_formats("{\"a\":34.0689000,\"b\":-0.0e5,\"c\":-118.44,\"d\":1E3,\"e\":0.1}", 0,
                   "{\n   \"a\" : 34.0689000,\n   \"b\" : -0.0e5,\n   \"c\" : -118.44,\n"
                   "   \"d\" : 1E3,\n   \"e\" : 0.1\n}");
    assert_formats("{\"i\":-9223372036854775808,\"j\":18446744073709551615,\"k\":0}", 0,
                   "{\n   \"i\" : -9223372036854775808,\n   \"j\" : 18446744073709551615,\n"
                   "   \"k\" : 0\n}");
    assert_formats("{\"t\":true,\"f\":false,\"n\":null}", 0,
                   "{\n   \"t\" : true,\n   \"f\" : false,\n   \"n\" : null\n}");
}

static void test_made_objects_print_too(void **state)
{
    struct json_object *obj = json_object_new_object();
    char *out;
    size_t len;

    (void)state;
    json_object_object_add(obj, "d", json_object_new_double(0.5));
    json_object_object_add(obj, "nan", json_object_new_double(0.0 / 0.0));
    json_object_object_add(obj, "i", json_object_new_int64(-7));
    assert_int_equal(places_format(obj, 0, &out, &len), 0);
    assert_string_equal(out, "{\n   \"d\" : 0.5,\n   \"nan\" : null,\n   \"i\" : -7\n}");
    free(out);
    json_object_put(obj);
}

static void test_no_blank_line_no_trailing_newline(void **state)
{
    struct json_object *obj = parse_ok(GOOGLE);
    char *out;
    size_t len;

    (void)state;
    assert_int_equal(places_format(obj, 20, &out, &len), 0);
    assert_null(strstr(out, "\n\n"));
    assert_true(len > 0 && out[len - 1] == '}');
    free(out);
    json_object_put(obj);
}

static void test_error_answer(void **state)
{
    struct json_object *obj = places_error_json("UNKNOWN_ERROR", "Places answered HTTP 500");
    char *out;
    size_t len;

    (void)state;
    assert_non_null(obj);
    assert_string_equal(places_status(obj), "UNKNOWN_ERROR");
    assert_int_equal(places_format(obj, 20, &out, &len), 0);
    assert_string_equal(out, "{\n"
                             "   \"error_message\" : \"Places answered HTTP 500\",\n"
                             "   \"html_attributions\" : [],\n"
                             "   \"results\" : [],\n"
                             "   \"status\" : \"UNKNOWN_ERROR\"\n"
                             "}");
    free(out);
    json_object_put(obj);
}

static void test_parse_accepts_objects_only(void **state)
{
    struct json_object *obj;

    (void)state;
    obj = parse_ok("  {\"status\" : \"ZERO_RESULTS\"}\r\n\n ");
    assert_string_equal(places_status(obj), "ZERO_RESULTS");
    json_object_put(obj);
    obj = parse_ok("{\"status\": 3}");
    assert_null(places_status(obj));
    json_object_put(obj);
    parse_why("", 0, "not JSON");
    parse_why("   ", 3, "not JSON");
    parse_why("<html></html>", 13, "not JSON");
    parse_why("{\"a\":1} {\"b\":2}", 15, "not JSON");
    parse_why("{\"a\":1}x", 8, "not JSON");
    parse_why("{\"a\":1", 6, "not JSON");
    parse_why("{\"a\":1,}", 8, "not JSON");
    parse_why("{\"a\":1}\0{", 9, "not JSON");
    parse_why("{\"a\":\"\xff\"}", 9, "not JSON");
    parse_why("[1,2,3]", 7, "not a JSON object");
    parse_why("123", 3, "not a JSON object");
    parse_why("\"str\"", 5, "not a JSON object");
    parse_why("null", 4, "not a JSON object");
}

static void test_squeeze_newlines(void **state)
{
    char a[] = "a\n\n\nb\nc\n\n";
    char b[] = "\n\n";
    char c[] = "x";

    (void)state;
    assert_int_equal(places_squeeze_newlines(a, strlen(a)), 5);
    assert_string_equal(a, "a\nb\nc");
    assert_int_equal(places_squeeze_newlines(b, strlen(b)), 0);
    assert_string_equal(b, "");
    assert_int_equal(places_squeeze_newlines(c, 1), 1);
}

/* --- places_text: cutting by slicing equals printing with the bound --- */

static void assert_cuts_match(const char *body)
{
    struct json_object *obj = parse_ok(body);
    struct places_text *t = places_text_new(obj);

    assert_non_null(t);
    for (unsigned bound = 0; bound <= 25; bound++) {
        char *want, *owned;
        const char *got;
        size_t wlen, glen;

        assert_int_equal(places_format(obj, bound, &want, &wlen), 0);
        assert_int_equal(places_text_cut(t, bound, &got, &glen, &owned), 0);
        if (glen != wlen || memcmp(got, want, wlen) != 0)
            fail_msg("bound %u of %s:\n%s\n--- but printing gives ---\n%s", bound, body, got, want);
        assert_int_equal(got[glen], '\0');
        free(owned);
        free(want);
    }
    json_object_put(obj); /* the text does not need the tree */
    places_text_unref(t);
}

static void test_text_cut_equals_format(void **state)
{
    (void)state;
    assert_cuts_match(GOOGLE);
    assert_cuts_match("{\"results\":[{\"a\":1}],\"status\":\"OK\"}");
    assert_cuts_match("{\"results\":[{\"a\":[1,2]},{\"b\":{}},{}],\"z\":[]}");
    assert_cuts_match("{\"results\":[[1],[2],[3,[4]]]}");
    /* Not sliceable: scalars (one line), empty containers, mixed. */
    assert_cuts_match("{\"results\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22]}");
    assert_cuts_match("{\"results\":[{},{\"a\":1},[]]}");
    assert_cuts_match("{\"results\":[null,{\"a\":1}]}");
    assert_cuts_match("{\"results\":[]}");
    assert_cuts_match("{\"results\":{\"a\":[1,2,3]},\"n\":1}");
    assert_cuts_match("{\"status\":\"ZERO_RESULTS\"}");
    assert_cuts_match("{}");
}

static void test_text_borrowed_when_nothing_is_cut(void **state)
{
    struct json_object *obj = parse_ok(GOOGLE);
    struct places_text *t = places_text_new(obj);
    const char *a, *b;
    char *owned;
    size_t la, lb;

    (void)state;
    json_object_put(obj);
    assert_int_equal(places_text_cut(t, 3, &a, &la, &owned), 0);
    assert_null(owned);
    assert_int_equal(places_text_cut(t, 20, &b, &lb, &owned), 0);
    assert_null(owned);
    assert_ptr_equal(a, b);
    assert_string_equal(a, GOOGLE);
    places_text_ref(t);
    places_text_unref(t);
    assert_int_equal(places_text_cut(t, 1, &a, &la, &owned), 0);
    assert_ptr_equal(a, owned);
    free(owned);
    places_text_unref(t);
}

/* --- places_cache --- */

static struct places_text *text_of(const char *json)
{
    struct json_object *obj = parse_ok(json);
    struct places_text *t = places_text_new(obj);

    json_object_put(obj);
    assert_non_null(t);
    return t;
}

static const char *text_str(struct places_text *t)
{
    const char *s;
    char *owned;
    size_t len;

    assert_int_equal(places_text_cut(t, 100, &s, &len, &owned), 0);
    assert_null(owned);
    return s;
}

static void test_cache_hit_expiry_and_refcount(void **state)
{
    struct places_cache *c = places_cache_new(10, 60.0);
    struct places_text *t = text_of("{\"a\":1}");

    (void)state;
    assert_non_null(c);
    assert_null(places_cache_get(c, "k", 1, 0.0));
    assert_int_equal(places_cache_put(c, "k", 1, t, 100.0), 0);
    places_text_unref(t); /* the cache holds its own reference */
    assert_ptr_equal(places_cache_get(c, "k", 1, 159.9), t);
    assert_string_equal(text_str(t), "{\n   \"a\" : 1\n}");
    assert_null(places_cache_get(c, "kk", 2, 159.9));
    assert_int_equal(places_cache_count(c), 1);
    assert_null(places_cache_get(c, "k", 1, 160.0)); /* expired: dropped */
    assert_int_equal(places_cache_count(c), 0);
    places_cache_free(c);
}

static void test_cache_evicts_oldest_when_full(void **state)
{
    struct places_cache *c = places_cache_new(3, 60.0);
    char key[8], json[16];

    (void)state;
    for (int i = 0; i < 5; i++) {
        struct places_text *t;
        snprintf(json, sizeof json, "{\"n\":%d}", i);
        t = text_of(json);
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(places_cache_put(c, key, 2, t, 10.0 + i), 0);
        places_text_unref(t);
    }
    assert_int_equal(places_cache_count(c), 3);
    assert_null(places_cache_get(c, "k0", 2, 20.0));
    assert_null(places_cache_get(c, "k1", 2, 20.0));
    assert_string_equal(text_str(places_cache_get(c, "k2", 2, 20.0)), "{\n   \"n\" : 2\n}");
    assert_string_equal(text_str(places_cache_get(c, "k4", 2, 20.0)), "{\n   \"n\" : 4\n}");
    /* Replacing k2 makes it the newest: k3 is now the oldest. */
    struct places_text *nine = text_of("{\"n\":9}");
    assert_int_equal(places_cache_put(c, "k2", 2, nine, 21.0), 0);
    places_text_unref(nine);
    assert_int_equal(places_cache_count(c), 3);
    assert_string_equal(text_str(places_cache_get(c, "k2", 2, 22.0)), "{\n   \"n\" : 9\n}");
    places_cache_expire(c, 74.5); /* k3 (13 + 60) and k4 (14 + 60) are gone */
    assert_int_equal(places_cache_count(c), 1);
    places_cache_free(c);
}

static void test_cache_disabled(void **state)
{
    struct places_cache *c = places_cache_new(100, 0.0);
    struct places_cache *d = places_cache_new(0, 60.0);
    struct places_text *t = text_of("{}");

    (void)state;
    assert_int_equal(places_cache_put(c, "k", 1, t, 1.0), -1);
    assert_int_equal(places_cache_put(d, "k", 1, t, 1.0), -1);
    assert_null(places_cache_get(c, "k", 1, 1.0));
    assert_null(places_cache_get(d, "k", 1, 1.0));
    assert_int_equal(places_cache_count(c), 0);
    places_text_unref(t);
    places_cache_free(c);
    places_cache_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_google_body_round_trips_byte_for_byte),
        cmocka_unit_test(test_results_cut_to_bound_keep_other_members),
        cmocka_unit_test(test_bound_zero_gives_empty_results),
        cmocka_unit_test(test_only_top_level_results_is_cut),
        cmocka_unit_test(test_empty_containers),
        cmocka_unit_test(test_array_layout_follows_the_margin),
        cmocka_unit_test(test_strings_are_escaped_like_google),
        cmocka_unit_test(test_numbers_keep_their_text),
        cmocka_unit_test(test_made_objects_print_too),
        cmocka_unit_test(test_no_blank_line_no_trailing_newline),
        cmocka_unit_test(test_error_answer),
        cmocka_unit_test(test_parse_accepts_objects_only),
        cmocka_unit_test(test_squeeze_newlines),
        cmocka_unit_test(test_text_cut_equals_format),
        cmocka_unit_test(test_text_borrowed_when_nothing_is_cut),
        cmocka_unit_test(test_cache_hit_expiry_and_refcount),
        cmocka_unit_test(test_cache_evicts_oldest_when_full),
        cmocka_unit_test(test_cache_disabled),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
