/*
 * store: the newest location record of every client this worker knows, keyed
 * by client ID. A record is the AT line as made by the server that received
 * the IAMAT, its parsed client time and its origin instant (when that server
 * got the IAMAT). Records expire client_ttl after their origin instant; a full
 * store (max_clients or max_store_memory) evicts the records that would
 * expire first. Records sit in a dense array with holes (so a resync can walk
 * them with a plain index while records come and go) behind an
 * open-addressing index of 64-bit slots.
 */
#ifndef HERD_STORE_H
#define HERD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct store_rec {
    int64_t origin; /* ns since the epoch: when the origin server got the IAMAT */
    int64_t sec;    /* client time */
    uint32_t nsec;
    uint16_t id_off; /* client ID within line */
    uint16_t id_len;
    uint16_t len; /* of line, without NUL */
    char line[];  /* "AT SERVER DIFF ID LOC TIME", NUL terminated */
};

/* store_put: LINE had expired when it arrived and was dropped. */
#define STORE_EXPIRED (-2)

struct store_stats {
    uint64_t expired;         /* records reaped (active or lazy expiry) */
    uint64_t evicted;         /* live records dropped to make room */
    uint64_t expired_arrival; /* puts dropped: expired on arrival */
};

struct store;

struct store *store_new(void);
void store_free(struct store *st);

/* Bounds, changeable at any time (the next put or expiry step applies them):
 * at most MAX distinct client IDs (0: no limit); at most BYTES of records,
 * index and array, counted as the allocator holds them (0: no limit); a
 * record lives SECONDS after its origin instant (0: forever). */
void store_set_max(struct store *st, size_t max);
void store_set_max_memory(struct store *st, size_t bytes);
void store_set_ttl(struct store *st, double seconds);

/* T as nanoseconds since the epoch, saturated to the int64_t range. */
int64_t store_ns(struct proto_time t);

/*
 * Keeps LINE (an AT line whose client ID is ID, at LINE + (ID.p - LINE);
 * client time T; origin instant ORIGIN in ns) when T is newer than the time
 * held for that client, or the held record has expired. NOW (ns, wall clock)
 * is read once by the caller per request or loop iteration. A new ID in a
 * full store evicts the records closest to expiry first. Returns 1 and the
 * stored record in *out when kept, 0 when not newer (*out: the record held),
 * STORE_EXPIRED when ORIGIN is already past client_ttl (dropped, counted),
 * -1 with errno ENOMEM (out of memory) or EINVAL (LINE too long).
 */
int store_put(struct store *st, struct proto_str id, struct proto_time t, int64_t origin,
              int64_t now, const char *line, size_t len, const struct store_rec **out);

/* The live record of client ID, or NULL; an expired one is reaped here. */
const struct store_rec *store_get(struct store *st, const char *id, size_t len, int64_t now);

/*
 * Records are numbered 0..store_end()-1. A number never changes while its
 * record lives (a newer record for a client takes the old one's number); a
 * removed record leaves a hole that a later new ID may fill. store_at is
 * NULL for a hole or an expired record, so a walk by number with a cursor
 * sees every live record that existed when it started, exactly once.
 */
size_t store_end(const struct store *st);
const struct store_rec *store_at(const struct store *st, size_t i, int64_t now);

/* Records held (expired ones count until a step or lookup reaps them). */
size_t store_count(const struct store *st);

/*
 * Active expiry and bound enforcement in a bounded step: looks at no more
 * than about BUDGET records. Returns 1 when work is left for another step
 * soon, 0 when nothing is due.
 */
int store_expire_step(struct store *st, int64_t now, size_t budget);

void store_get_stats(const struct store *st, struct store_stats *out);

/* Bytes held by the index, the array and the records (as allocated). */
size_t store_bytes(const struct store *st);

#endif
