/*
 * places_new: the JSON half of Places API (New) Nearby Search. Builds the
 * request body, translates an answer into the legacy Nearby Search shape a
 * client expects (SPEC §4, docs/places.md has the table), and maps Google's
 * {"error": {code, message, status}} to the legacy statuses. Pure json-c: no
 * I/O, no libcurl, no event loop, so it is unit-tested and fuzzed on its own.
 */
#ifndef HERD_PLACES_NEW_H
#define HERD_PLACES_NEW_H

#include <stddef.h>

struct json_object;

/*
 * The searchNearby body for a circle around LAT,LNG (checked decimal
 * strings, sent as written) of RADIUS metres (a checked decimal string) and
 * at most MAX_RESULTS (1..20) places:
 * {"locationRestriction": {"circle": {"center": {"latitude": LAT,
 * "longitude": LNG}, "radius": RADIUS}}, "maxResultCount": MAX_RESULTS}.
 * Returns a malloc'd string, or NULL when out of memory or a value is not a
 * number.
 */
char *places_new_body(const char *lat, const char *lng, const char *radius, unsigned max_results);

/*
 * Translates NATIVE, a Nearby Search (New) answer ({"places": [...]}, or {}
 * when nothing is near), into a new legacy-shaped object {"html_attributions":
 * [], "results": [...], "status": "OK" | "ZERO_RESULTS"}. Fields the answer
 * lacks stay absent; fields legacy has no name for are dropped. NATIVE is not
 * modified (values are shared by reference). Returns NULL with why in WHY
 * when NATIVE is not a Nearby Search answer or memory runs out.
 */
struct json_object *places_new_translate(struct json_object *native, char *why, size_t whylen);

/*
 * Google's error answer for HTTP status HTTP (BODY its parsed JSON, or NULL
 * when it was not JSON): the legacy status it means (REQUEST_DENIED,
 * OVER_QUERY_LIMIT, INVALID_REQUEST or UNKNOWN_ERROR, a static string) and,
 * in *message, Google's own message (borrowed from BODY; NULL when it has
 * none).
 */
const char *places_new_error_status(long http, struct json_object *body, const char **message);

#endif
