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
 * An answer printed once (as places_format prints it with every result) and
 * then cut to any bound without printing again: what the cache holds and
 * what the waiters of one request share. Reference counted.
 */
struct places_text;

/* Prints OBJ (not modified, and not needed afterwards). NULL when out of
 * memory. The new text has one reference. */
struct places_text *places_text_new(struct json_object *obj);

struct places_text *places_text_ref(struct places_text *t);
void places_text_unref(struct places_text *t); /* NULL is fine */

/*
 * The text of T cut to BOUND, byte for byte what places_format(obj, BOUND)
 * gives. *out is borrowed from T when nothing is cut (*owned is NULL then),
 * else it is *owned, a new string the caller frees. Returns 0, or -1 when
 * out of memory.
 */
int places_text_cut(const struct places_text *t, unsigned bound, const char **out, size_t *len,
                    char **owned);

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
