/*
 * store: open addressing with linear probing over 64-bit slots that hold a
 * record number + 1 (0 = empty) and the low 32 bits of the ID's hash, so a
 * probe only reads a record whose hash matches (with millions of clients
 * each record read is a cache miss) and growing never reads records. No
 * deletion, so probing needs no tombstones. The hash is seeded per process so a client cannot
 * choose IDs that all collide in every worker.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct store {
    uint64_t *slots; /* owned; nslots entries, power of two */
    size_t nslots;
    struct store_rec **recs; /* owned, and every record in it */
    size_t nrecs;
    size_t caprecs;
    uint64_t seed;
    size_t bytes;
    size_t max; /* distinct IDs at most; 0: no limit */
};

static uint64_t hash_id(uint64_t seed, const char *p, size_t len)
{
    uint64_t h = seed ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33; /* murmur3's finaliser spreads FNV's weak low bits */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

struct store *store_new(void)
{
    struct store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    /* A seed nobody can predict, so IDs chosen offline do not collide. */
    if (getrandom(&st->seed, sizeof st->seed, GRND_NONBLOCK) != (ssize_t)sizeof st->seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        st->seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)st;
    }
    return st;
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nrecs; i++)
        free(st->recs[i]);
    free(st->recs);
    free(st->slots);
    free(st);
}

static const char *rec_id(const struct store_rec *r)
{
    return r->line + r->id_off;
}

/* A slot: hash (low 32 bits) << 32 | record number + 1. Indexes use the low
 * bits of the hash too, so a table of up to 2^32 slots regrows from slots. */
static uint32_t slot_rec(uint64_t s)
{
    return (uint32_t)s;
}
static uint32_t slot_hash(uint64_t s)
{
    return (uint32_t)(s >> 32);
}

/* Slot index where ID is, or the empty slot where it would go. */
static size_t probe(const struct store *st, const char *id, size_t len, uint64_t h)
{
    size_t mask = st->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        uint64_t s = st->slots[i];
        if (s == 0)
            return i;
        if (slot_hash(s) != (uint32_t)h)
            continue;
        const struct store_rec *r = st->recs[slot_rec(s) - 1];
        if (r->id_len == len && memcmp(rec_id(r), id, len) == 0)
            return i;
    }
}

static int grow_index(struct store *st)
{
    size_t n = st->nslots ? st->nslots * 2 : 1024;
    if (n - 1 > UINT32_MAX) /* slot hashes hold 32 bits of index */
        return -1;
    uint64_t *slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return -1;
    size_t mask = n - 1;
    for (size_t j = 0; j < st->nslots; j++) {
        uint64_t s = st->slots[j];
        if (s == 0)
            continue;
        size_t i = (size_t)slot_hash(s) & mask;
        while (slots[i] != 0)
            i = (i + 1) & mask;
        slots[i] = s;
    }
    st->bytes += (n - st->nslots) * sizeof *slots;
    free(st->slots);
    st->slots = slots;
    st->nslots = n;
    return 0;
}

static struct store_rec *rec_new(struct proto_str id, struct proto_time t, const char *line,
                                 size_t len)
{
    size_t off = (size_t)(id.p - line);
    if (len > UINT16_MAX || off > UINT16_MAX || id.len > UINT16_MAX || off + id.len > len) {
        errno = EINVAL;
        return NULL;
    }
    struct store_rec *r = malloc(sizeof *r + len + 1);
    if (r == NULL)
        return NULL;
    r->sec = t.sec;
    r->nsec = (uint32_t)t.nsec;
    r->id_off = (uint16_t)off;
    r->id_len = (uint16_t)id.len;
    r->len = (uint16_t)len;
    memcpy(r->line, line, len);
    r->line[len] = '\0';
    return r;
}

static int append_rec(struct store *st, struct store_rec *r)
{
    if (st->nrecs == st->caprecs) {
        size_t n = st->caprecs ? st->caprecs * 2 : 1024;
        struct store_rec **recs = realloc(st->recs, n * sizeof(struct store_rec *));
        if (recs == NULL)
            return -1;
        st->bytes += (n - st->caprecs) * sizeof(struct store_rec *);
        st->recs = recs;
        st->caprecs = n;
    }
    st->recs[st->nrecs++] = r;
    return 0;
}

int store_put(struct store *st, struct proto_str id, struct proto_time t, const char *line,
              size_t len, const struct store_rec **out)
{
    /* Keep the load factor under 1/2 so probes stay short. */
    if ((st->nrecs + 1) * 2 > st->nslots && grow_index(st) < 0)
        return -1; /* errno ENOMEM from calloc */
    uint64_t h = hash_id(st->seed, id.p, id.len);
    size_t i = probe(st, id.p, id.len, h);
    uint32_t s = slot_rec(st->slots[i]);
    if (s != 0) {
        struct store_rec *old = st->recs[s - 1];
        struct proto_time ot = {old->sec, (int32_t)old->nsec};
        if (proto_time_cmp(t, ot) <= 0) {
            *out = old;
            return 0;
        }
    }
    if (s == 0 && st->max > 0 && st->nrecs >= st->max) {
        errno = ENOSPC;
        return -1;
    }
    struct store_rec *r = rec_new(id, t, line, len);
    if (r == NULL)
        return -1;
    if (s != 0) {
        st->bytes -= st->recs[s - 1]->len;
        free(st->recs[s - 1]);
        st->recs[s - 1] = r;
    } else if (append_rec(st, r) < 0) {
        free(r);
        return -1;
    } else {
        st->slots[i] = (uint64_t)(uint32_t)h << 32 | (uint32_t)st->nrecs;
    }
    st->bytes += r->len;
    *out = r;
    return 1;
}

void store_set_max(struct store *st, size_t max)
{
    st->max = max;
}

const struct store_rec *store_get(const struct store *st, const char *id, size_t len)
{
    if (st->nslots == 0)
        return NULL;
    size_t i = probe(st, id, len, hash_id(st->seed, id, len));
    uint32_t s = slot_rec(st->slots[i]);
    return s ? st->recs[s - 1] : NULL;
}

size_t store_count(const struct store *st)
{
    return st->nrecs;
}

const struct store_rec *store_at(const struct store *st, size_t i)
{
    return i < st->nrecs ? st->recs[i] : NULL;
}

size_t store_bytes(const struct store *st)
{
    return st->bytes;
}
