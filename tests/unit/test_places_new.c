/*
 * Unit tests for worker/places_new.c, the JSON half of Places API (New):
 * the translation of a Nearby Search (New) answer (shaped as Google's
 * reference and migration pages show one) into the legacy shape, printed
 * as a client gets it; absent and unknown fields; ZERO_RESULTS; answers
 * that are none; priceLevel; the request body; and the error mapping.
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

#include "places_format.h"
#include "places_new.h"

/* A searchNearby answer in Google's shape: one place with every field the
 * translation maps plus some it drops (name, formattedAddress,
 * googleMapsUri, periods, utcOffsetMinutes, accessibilityOptions), one with
 * optional fields absent or empty, and an entry that is not a place. */
static const char NATIVE[] =
    "{\n"
    "  \"places\": [\n"
    "    {\n"
    "      \"name\": \"places/ChIJj61dQgK6j4AR4GeTYWZsKWw\",\n"
    "      \"id\": \"ChIJj61dQgK6j4AR4GeTYWZsKWw\",\n"
    "      \"types\": [\n"
    "        \"cafe\",\n"
    "        \"food\",\n"
    "        \"point_of_interest\",\n"
    "        \"establishment\"\n"
    "      ],\n"
    "      \"formattedAddress\": \"308 Westwood Plaza, Los Angeles, CA 90095, USA\",\n"
    "      \"location\": {\n"
    "        \"latitude\": 34.0709533,\n"
    "        \"longitude\": -118.4436537\n"
    "      },\n"
    "      \"viewport\": {\n"
    "        \"low\": {\n"
    "          \"latitude\": 34.069604319708496,\n"
    "          \"longitude\": -118.44500268029151\n"
    "        },\n"
    "        \"high\": {\n"
    "          \"latitude\": 34.0723022802915,\n"
    "          \"longitude\": -118.4423047197085\n"
    "        }\n"
    "      },\n"
    "      \"rating\": 4.3,\n"
    "      \"googleMapsUri\": \"https://maps.google.com/?cid=7793879817120047072\",\n"
    "      \"businessStatus\": \"OPERATIONAL\",\n"
    "      \"priceLevel\": \"PRICE_LEVEL_INEXPENSIVE\",\n"
    "      \"userRatingCount\": 1203,\n"
    "      \"displayName\": {\n"
    "        \"text\": \"Bruin Bean & <Coffee>\",\n"
    "        \"languageCode\": \"en\"\n"
    "      },\n"
    "      \"currentOpeningHours\": {\n"
    "        \"openNow\": true,\n"
    "        \"periods\": [\n"
    "          {\n"
    "            \"open\": {\"day\": 1, \"hour\": 7, \"minute\": 0},\n"
    "            \"close\": {\"day\": 1, \"hour\": 19, \"minute\": 0}\n"
    "          }\n"
    "        ],\n"
    "        \"weekdayDescriptions\": [\"Monday: 7:00 AM – 7:00 PM\"]\n"
    "      },\n"
    "      \"shortFormattedAddress\": \"308 Westwood Plaza, Los Angeles\",\n"
    "      \"plusCode\": {\n"
    "        \"globalCode\": \"8553332V+9G\",\n"
    "        \"compoundCode\": \"332V+9G Los Angeles, California\"\n"
    "      },\n"
    "      \"iconMaskBaseUri\": "
    "\"https://maps.gstatic.com/mapfiles/place_api/icons/v2/cafe_pinlet\",\n"
    "      \"iconBackgroundColor\": \"#FF9E67\",\n"
    "      \"utcOffsetMinutes\": -480,\n"
    "      \"accessibilityOptions\": {\"wheelchairAccessibleEntrance\": true}\n"
    "    },\n"
    "    {\n"
    "      \"id\": \"ChIJ2eUgeAK6j4ARbn5u_wAGqWA\",\n"
    "      \"types\": [\"park\", \"point_of_interest\", \"establishment\"],\n"
    "      \"location\": {\"latitude\": 34, \"longitude\": -118.44},\n"
    "      \"displayName\": {\"languageCode\": \"en\"},\n"
    "      \"priceLevel\": \"PRICE_LEVEL_UNSPECIFIED\",\n"
    "      \"currentOpeningHours\": {\"weekdayDescriptions\": []},\n"
    "      \"shortFormattedAddress\": \"Royce Drive, Los Angeles\"\n"
    "    },\n"
    "    \"not a place\"\n"
    "  ]\n"
    "}";

/* What a client gets for it (places_format, Google's legacy layout). */
static const char LEGACY[] =
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
    "                  \"lat\" : 34.0723022802915,\n"
    "                  \"lng\" : -118.4423047197085\n"
    "               },\n"
    "               \"southwest\" : {\n"
    "                  \"lat\" : 34.069604319708496,\n"
    "                  \"lng\" : -118.44500268029151\n"
    "               }\n"
    "            }\n"
    "         },\n"
    "         \"icon_background_color\" : \"#FF9E67\",\n"
    "         \"icon_mask_base_uri\" : "
    "\"https://maps.gstatic.com/mapfiles/place_api/icons/v2/cafe_pinlet\",\n"
    "         \"name\" : \"Bruin Bean \\u0026 \\u003cCoffee\\u003e\",\n"
    "         \"opening_hours\" : {\n"
    "            \"open_now\" : true\n"
    "         },\n"
    "         \"place_id\" : \"ChIJj61dQgK6j4AR4GeTYWZsKWw\",\n"
    "         \"plus_code\" : {\n"
    "            \"compound_code\" : \"332V+9G Los Angeles, California\",\n"
    "            \"global_code\" : \"8553332V+9G\"\n"
    "         },\n"
    "         \"price_level\" : 1,\n"
    "         \"rating\" : 4.3,\n"
    "         \"types\" : [ \"cafe\", \"food\", \"point_of_interest\", \"establishment\" ],\n"
    "         \"user_ratings_total\" : 1203,\n"
    "         \"vicinity\" : \"308 Westwood Plaza, Los Angeles\"\n"
    "      },\n"
    "      {\n"
    "         \"geometry\" : {\n"
    "            \"location\" : {\n"
    "               \"lat\" : 34,\n"
    "               \"lng\" : -118.44\n"
    "            }\n"
    "         },\n"
    "         \"place_id\" : \"ChIJ2eUgeAK6j4ARbn5u_wAGqWA\",\n"
    "         \"types\" : [ \"park\", \"point_of_interest\", \"establishment\" ],\n"
    "         \"vicinity\" : \"Royce Drive, Los Angeles\"\n"
    "      }\n"
    "   ],\n"
    "   \"status\" : \"OK\"\n"
    "}";

static struct json_object *parse(const char *text)
{
    struct json_object *obj = NULL;
    char why[160];

    assert_int_equal(places_parse(text, strlen(text), &obj, why, sizeof why), 0);
    return obj;
}

/* NATIVE translated and printed with every result. */
static char *translate_text(const char *native)
{
    struct json_object *in = parse(native), *out;
    char why[160], *text = NULL;
    size_t len;

    out = places_new_translate(in, why, sizeof why);
    assert_non_null(out);
    assert_int_equal(places_format(out, 20, &text, &len), 0);
    json_object_put(out);
    json_object_put(in);
    return text;
}

static void test_translation_byte_for_byte(void **state)
{
    char *text = translate_text(NATIVE);

    (void)state;
    assert_string_equal(text, LEGACY);
    free(text);
}

static void test_native_not_modified(void **state)
{
    struct json_object *in = parse(NATIVE), *out;
    char why[160];
    const char *before;
    char *copy;

    (void)state;
    before = json_object_to_json_string_ext(in, JSON_C_TO_STRING_PLAIN);
    copy = strdup(before);
    out = places_new_translate(in, why, sizeof why);
    assert_non_null(out);
    json_object_put(out); /* shared values outlive the translation */
    assert_string_equal(json_object_to_json_string_ext(in, JSON_C_TO_STRING_PLAIN), copy);
    free(copy);
    json_object_put(in);
}

static void test_zero_results(void **state)
{
    static const char *const empty[] = {"{}", "{\"places\": []}", "{\"places\": [1, \"x\"]}"};
    static const char want[] = "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n"
                               "   \"status\" : \"ZERO_RESULTS\"\n}";

    (void)state;
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        char *text = translate_text(empty[i]);
        assert_string_equal(text, want);
        free(text);
    }
}

static void test_not_an_answer(void **state)
{
    static const char *const bad[] = {"{\"places\": 3}", "{\"places\": {}}", "{\"places\": \"x\"}"};
    struct json_object *arr = json_object_new_array();
    char why[160];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct json_object *in = parse(bad[i]);
        assert_null(places_new_translate(in, why, sizeof why));
        assert_non_null(strstr(why, "not a Nearby Search (New) answer"));
        json_object_put(in);
    }
    assert_null(places_new_translate(arr, why, sizeof why));
    assert_non_null(strstr(why, "not a JSON object"));
    assert_null(places_new_translate(NULL, why, sizeof why));
    json_object_put(arr);
}

static void test_price_levels(void **state)
{
    static const char *const levels[] = {"PRICE_LEVEL_FREE",           "PRICE_LEVEL_INEXPENSIVE",
                                         "PRICE_LEVEL_MODERATE",       "PRICE_LEVEL_EXPENSIVE",
                                         "PRICE_LEVEL_VERY_EXPENSIVE", "PRICE_LEVEL_UNSPECIFIED",
                                         "PRICE_LEVEL_LUXURY"};
    char native[160], why[160];

    (void)state;
    for (int i = 0; i < 7; i++) {
        struct json_object *in, *out, *res, *pl;
        snprintf(native, sizeof native, "{\"places\": [{\"id\": \"p\", \"priceLevel\": \"%s\"}]}",
                 levels[i]);
        in = parse(native);
        out = places_new_translate(in, why, sizeof why);
        assert_non_null(out);
        res = json_object_array_get_idx(json_object_object_get(out, "results"), 0);
        if (i < 5) {
            assert_true(json_object_object_get_ex(res, "price_level", &pl));
            assert_int_equal(json_object_get_int(pl), i);
        } else {
            assert_false(json_object_object_get_ex(res, "price_level", &pl));
        }
        json_object_put(out);
        json_object_put(in);
    }
}

static void test_wrong_types_dropped(void **state)
{
    char *text = translate_text("{\"places\": [{\"id\": 7, \"displayName\": \"x\", "
                                "\"location\": {\"latitude\": \"1\", \"longitude\": 2}, "
                                "\"viewport\": {\"low\": {\"latitude\": 1, \"longitude\": 2}}, "
                                "\"rating\": 5, \"userRatingCount\": 1.5, "
                                "\"plusCode\": {\"globalCode\": \"8FVC9G8F+6X\"}, "
                                "\"types\": \"cafe\"}]}");

    (void)state;
    /* Only what has the type Google documents is kept; a viewport needs
     * both corners; a plus code may have its global code only. */
    assert_string_equal(text, "{\n   \"html_attributions\" : [],\n   \"results\" : [\n"
                              "      {\n         \"plus_code\" : {\n"
                              "            \"global_code\" : \"8FVC9G8F+6X\"\n         },\n"
                              "         \"rating\" : 5\n      }\n   ],\n"
                              "   \"status\" : \"OK\"\n}");
    free(text);
}

static void test_request_body(void **state)
{
    char *b;

    (void)state;
    b = places_new_body("34.068930", "-118.445127", "10000", 5);
    assert_string_equal(b,
                        "{\"locationRestriction\":{\"circle\":{\"center\":{\"latitude\":34.068930,"
                        "\"longitude\":-118.445127},\"radius\":10000}},\"maxResultCount\":5}");
    free(b);
    b = places_new_body("-33.8523", "151.2108", "1.5", 20);
    assert_non_null(strstr(b, "\"latitude\":-33.8523,\"longitude\":151.2108},\"radius\":1.5}"));
    assert_non_null(strstr(b, "\"maxResultCount\":20}"));
    free(b);
    /* Not JSON's grammar as written: sent as the number it is. */
    b = places_new_body("0034.5", ".5", "10", 1);
    assert_non_null(strstr(b, "\"latitude\":34.5,\"longitude\":0.5}"));
    free(b);
    assert_null(places_new_body("north", "1", "1", 1));
    assert_null(places_new_body("1", "1", "", 1));
}

static const char *status_of(long http, const char *body, const char **msg)
{
    struct json_object *obj = body ? parse(body) : NULL;
    static char keep[256];
    const char *st = places_new_error_status(http, obj, msg);

    if (*msg) {
        snprintf(keep, sizeof keep, "%s", *msg);
        *msg = keep;
    }
    json_object_put(obj);
    return st;
}

static void test_error_mapping(void **state)
{
    const char *msg;

    (void)state;
    assert_string_equal(status_of(403,
                                  "{\"error\": {\"code\": 403, \"message\": \"denied\", "
                                  "\"status\": \"PERMISSION_DENIED\"}}",
                                  &msg),
                        "REQUEST_DENIED");
    assert_string_equal(msg, "denied");
    assert_string_equal(status_of(429,
                                  "{\"error\": {\"code\": 429, \"message\": \"quota\", "
                                  "\"status\": \"RESOURCE_EXHAUSTED\"}}",
                                  &msg),
                        "OVER_QUERY_LIMIT");
    assert_string_equal(status_of(400,
                                  "{\"error\": {\"code\": 400, \"message\": \"bad\", "
                                  "\"status\": \"INVALID_ARGUMENT\"}}",
                                  &msg),
                        "INVALID_REQUEST");
    /* Google's answer to a wrong key is 400 INVALID_ARGUMENT with a reason. */
    assert_string_equal(
        status_of(400,
                  "{\"error\": {\"code\": 400, \"message\": \"API key not valid.\", "
                  "\"status\": \"INVALID_ARGUMENT\", \"details\": [{\"@type\": "
                  "\"type.googleapis.com/google.rpc.ErrorInfo\", \"reason\": "
                  "\"API_KEY_INVALID\"}]}}",
                  &msg),
        "REQUEST_DENIED");
    assert_string_equal(msg, "API key not valid.");
    assert_string_equal(status_of(500,
                                  "{\"error\": {\"code\": 500, \"message\": \"oops\", "
                                  "\"status\": \"INTERNAL\"}}",
                                  &msg),
                        "UNKNOWN_ERROR");
    /* No Google error object: the HTTP status decides, with no message. */
    assert_string_equal(status_of(403, NULL, &msg), "REQUEST_DENIED");
    assert_null(msg);
    assert_string_equal(status_of(429, "{}", &msg), "OVER_QUERY_LIMIT");
    assert_string_equal(status_of(400, NULL, &msg), "INVALID_REQUEST");
    assert_string_equal(status_of(502, NULL, &msg), "UNKNOWN_ERROR");
    assert_string_equal(status_of(404, "{\"error\": \"x\"}", &msg), "UNKNOWN_ERROR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_translation_byte_for_byte),
        cmocka_unit_test(test_native_not_modified),
        cmocka_unit_test(test_zero_results),
        cmocka_unit_test(test_not_an_answer),
        cmocka_unit_test(test_price_levels),
        cmocka_unit_test(test_wrong_types_dropped),
        cmocka_unit_test(test_request_body),
        cmocka_unit_test(test_error_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
