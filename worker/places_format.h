/*
 * places_format: the pure JSON half of the Places proxy. Parses a Places
 * body (json-c, the whole body one JSON object), prints an answer in Google's
 * own layout with "results" cut to a bound, and builds the error answers.
 * No I/O, no libcurl, no event loop: unit-tested on its own.
 */
#ifndef HERD_PLACES_FORMAT_H
#define HERD_PLACES_FORMAT_H

#include <stddef.h>

struct json_object;

/*
 * Parses BODY (LEN bytes; trailing white space allowed). On success returns
 * 0 and *out owns a new reference to a JSON object. Otherwise returns -1 and
 * writes why into WHY ("not JSON: unexpected character at byte 17", "not a
 * JSON object").
 */
int places_parse(const char *body, size_t len, struct json_object **out, char *why, size_t whylen);

/*
 * Prints OBJ the way Google prints Places answers (JsonCpp's StyledWriter:
 * 3-space indent, "key" : value, short arrays of scalars on one line, <, >
 * and & escaped as \u003c, \u003e, \u0026), with the top-level "results"
 * array cut to its first BOUND entries and every other member kept. Runs of
 * newlines are squeezed and no newline ends the text. OBJ is not modified.
 * Returns 0 with *out (malloc'd, NUL-terminated, the caller frees) and *len,
 * or -1 when out of memory.
 */
int places_format(struct json_object *obj, unsigned bound, char **out, size_t *len);

/*
 * A new Places-shaped error answer: {"error_message": MESSAGE,
 * "html_attributions": [], "results": [], "status": STATUS}. NULL when out of
 * memory. The caller owns the reference.
 */
struct json_object *places_error_json(const char *status, const char *message);

/* OBJ's top-level "status" string, or NULL when it has none. */
const char *places_status(struct json_object *obj);

/*
 * Squeezes every run of '\n' in S[0..LEN) to one and drops trailing ones,
 * in place; returns the new length (S stays NUL-terminated when it was).
 */
size_t places_squeeze_newlines(char *s, size_t len);

#endif
