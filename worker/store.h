/*
 * store: the newest location record of every client this worker knows, keyed
 * by client ID. A record is the AT line as made by the server that received
 * the IAMAT, plus its parsed client time. Records sit in a dense array (so a
 * resync can walk them with a plain index even while new ones arrive) behind
 * an open-addressing index of 32-bit slots.
 */
#ifndef HERD_STORE_H
#define HERD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct store_rec {
    int64_t sec; /* client time */
    uint32_t nsec;
    uint16_t id_off; /* client ID within line */
    uint16_t id_len;
    uint16_t len; /* of line, without NUL */
    char line[];  /* "AT SERVER DIFF ID LOC TIME", NUL terminated */
};

struct store;

struct store *store_new(void);

/* At most MAX distinct client IDs (0: no limit); past it store_put refuses
 * new IDs with -1 and errno ENOSPC, while known IDs still update. */
void store_set_max(struct store *st, size_t max);

void store_free(struct store *st);

/*
 * Keeps LINE (an AT line whose client ID is ID, at LINE + (ID.p - LINE)) when
 * T is newer than the time held for that client. Returns 1 and the stored
 * record in *out when kept, 0 when not newer (*out: the record held), -1
 * with errno ENOMEM (out of memory), ENOSPC (store_set_max reached) or
 * EINVAL (LINE too long).
 */
int store_put(struct store *st, struct proto_str id, struct proto_time t, const char *line,
              size_t len, const struct store_rec **out);

const struct store_rec *store_get(const struct store *st, const char *id, size_t len);

/* Records are numbered 0..store_count()-1; numbers never change, a newer
 * record for a client takes the old one's number. */
size_t store_count(const struct store *st);
const struct store_rec *store_at(const struct store *st, size_t i);

/* Bytes held by the index and records (for the memory benchmark). */
size_t store_bytes(const struct store *st);

#endif
