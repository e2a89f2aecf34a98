/*
 * places_key: the Places API key. Reads it (HERD_PLACES_KEY wins over
 * places_key_file), keeps it out of every message (redaction), and wipes
 * it when done. Internal to the places module.
 */
#ifndef HERD_PLACES_KEY_H
#define HERD_PLACES_KEY_H

#include <stddef.h>

#include "config.h"

/*
 * Sets *key to a new copy of the key, or to NULL when none is configured
 * (not an error: WHATSAT then answers REQUEST_DENIED). Returns 0, or -1 with
 * the reason in ERR when a configured key cannot be read or is malformed.
 * Warns when the key file is accessible by group or others.
 */
int places_key_load(const struct cfg_herd *cfg, char **key, char *err, size_t errlen);

/* Replaces every copy of KEY in the string S (SIZE bytes of room) with
 * "REDACTED". A NULL or empty KEY changes nothing. */
void places_key_redact(const char *key, char *s, size_t size);

/* Wipes and frees a key from places_key_load (NULL is fine). */
void places_key_free(char *key);

#endif
