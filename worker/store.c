/*
 * store: open addressing with linear probing over 64-bit slots that hold a
 * record number + 1 (0 = empty) and the low 32 bits of the ID's hash, so a
 * probe only reads a record whose hash matches (with millions of clients
 * each record read is a cache miss) and growing never reads records.
 * Deleting from the index is a backward shift (Knuth's algorithm R), so
 * probing never meets tombstones. The hash is seeded per process so a client
 * cannot choose IDs that all collide in every worker.
 *
 * Deleting from the record array leaves a hole on a free list (a hole holds
 * the next free number, tagged by its low bit), not a swap-remove: a
 * swap-remove would move the last record behind a resync's cursor, so the
 * walk would skip it. With holes, a live record keeps its number for life,
 * a cursor walk sees every record that existed when it started, and new IDs
 * refill holes (a record put behind a cursor reaches the neighbour by the
 * live flood). The array does not shrink; its slots are 8 bytes each.
 *
 * Expiry (a record lives client_ttl after its origin instant) is lazy on
 * every lookup, plus a sweep by number in bounded steps (like Redis's expire
 * cycle) that starts only when the oldest origin instant seen may have
 * expired. Eviction samples a few random records and drops the one with the
 * oldest origin instant (Redis's approximated LRU), which is the one that
 * expires first since every record lives the same client_ttl.
 */
#include "store.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC 1000000000LL
/* Records a full store samples per eviction, and the candidates it keeps. */
#define EVICT_SAMPLES 5
#define EVICT_POOL    16
/* A store this small is scanned whole: sampling 5 of 2 records would pick
 * the same one every time with probability 1/16. */
#define EVICT_EXACT 64
/* Evictions a single put does at most (the step does the rest when the
 * bounds were lowered a lot at once). */
#define EVICT_PER_PUT 8
/* A deletion weighs this many records looked at in a step's budget. */
#define STEP_DELETE_COST 4

union store_ent {
    struct store_rec *rec;
    uintptr_t free; /* a hole: (next hole + 1) << 1 | 1, 1 at the end */
};

struct store_cand {
    uint32_t n; /* record number */
    int64_t origin;
};

struct store {
    uint64_t *slots; /* owned; nslots entries, power of two */
    size_t nslots;
    union store_ent *recs; /* owned, and every record in it */
    size_t nrecs;          /* entries in use, holes included */
    size_t caprecs;
    size_t nlive;     /* records, holes excluded */
    size_t free_head; /* first hole + 1; 0: none */
    uint64_t seed;
    uint64_t rng;
    size_t bytes;
    size_t max;         /* distinct IDs at most; 0: no limit */
    size_t max_mem;     /* bytes at most; 0: no limit */
    int64_t ttl;        /* ns; 0: never */
    int64_t min_origin; /* no live record has an older origin instant */
    int sweeping;
    size_t sweep;      /* next number the sweep looks at */
    int64_t sweep_min; /* oldest origin instant seen by this sweep */
    struct store_stats stats;
    struct store_cand pool[EVICT_POOL]; /* oldest candidates first */
    size_t npool;
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
    st->rng = st->seed | 1;
    st->min_origin = INT64_MAX;
    return st;
}

static int is_hole(union store_ent e)
{
    return (e.free & 1u) != 0;
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nrecs; i++)
        if (!is_hole(st->recs[i]))
            free(st->recs[i].rec);
    free(st->recs);
    free(st->slots);
    free(st);
}

int64_t store_ns(struct proto_time t)
{
    if (t.sec >= INT64_MAX / NS_PER_SEC)
        return INT64_MAX;
    if (t.sec <= INT64_MIN / NS_PER_SEC)
        return INT64_MIN;
    return t.sec * NS_PER_SEC + t.nsec;
}

void store_set_max(struct store *st, size_t max)
{
    st->max = max;
}

void store_set_max_memory(struct store *st, size_t bytes)
{
    st->max_mem = bytes;
}

void store_set_ttl(struct store *st, double seconds)
{
    double ns = seconds * 1e9;
    st->ttl = !(ns > 0) ? 0 : ns >= 9.2e18 ? INT64_MAX : (int64_t)ns;
}

/* Origin instants at or before this have expired; INT64_MIN: none has. */
static int64_t cutoff(const struct store *st, int64_t now)
{
    if (st->ttl == 0 || now < INT64_MIN + st->ttl)
        return INT64_MIN;
    return now - st->ttl;
}

static int expired(const struct store_rec *r, int64_t cut)
{
    return cut != INT64_MIN && r->origin <= cut;
}

static const char *rec_id(const struct store_rec *r)
{
    return r->line + r->id_off;
}

static size_t rec_bytes(struct store_rec *r)
{
    return malloc_usable_size(r) + sizeof(size_t); /* the allocator's header */
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
        const struct store_rec *r = st->recs[slot_rec(s) - 1].rec;
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

/* Empties slot I, shifting back the entries of its cluster that would no
 * longer be found past the gap. */
static void slot_delete(struct store *st, size_t i)
{
    size_t mask = st->nslots - 1;
    for (size_t j = (i + 1) & mask; st->slots[j] != 0; j = (j + 1) & mask) {
        size_t home = (size_t)slot_hash(st->slots[j]) & mask;
        /* The entry at j stays when its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        st->slots[i] = st->slots[j];
        i = j;
    }
    st->slots[i] = 0;
}

/* Removes record number N (not a hole) from the index and the array. */
static void rec_delete(struct store *st, size_t n)
{
    struct store_rec *r = st->recs[n].rec;
    uint64_t h = hash_id(st->seed, rec_id(r), r->id_len);
    size_t mask = st->nslots - 1;
    size_t i = (size_t)h & mask;
    while (slot_rec(st->slots[i]) != n + 1)
        i = (i + 1) & mask; /* the record is indexed: this ends */
    slot_delete(st, i);
    st->bytes -= rec_bytes(r);
    free(r);
    st->recs[n].free = (uintptr_t)st->free_head << 1 | 1u;
    st->free_head = n + 1;
    st->nlive--;
}

static struct store_rec *rec_new(struct proto_str id, struct proto_time t, int64_t origin,
                                 const char *line, size_t len)
{
    size_t off = (size_t)(id.p - line);
    if (len > UINT16_MAX || off > UINT16_MAX || id.len > UINT16_MAX || off + id.len > len) {
        errno = EINVAL;
        return NULL;
    }
    struct store_rec *r = malloc(offsetof(struct store_rec, line) + len + 1);
    if (r == NULL)
        return NULL;
    r->origin = origin;
    r->sec = t.sec;
    r->nsec = (uint32_t)t.nsec;
    r->id_off = (uint16_t)off;
    r->id_len = (uint16_t)id.len;
    r->len = (uint16_t)len;
    memcpy(r->line, line, len);
    r->line[len] = '\0';
    return r;
}

/* Puts R in a hole or at the end; its number in *n. */
static int place_rec(struct store *st, struct store_rec *r, size_t *n)
{
    if (st->free_head != 0) {
        *n = st->free_head - 1;
        st->free_head = st->recs[*n].free >> 1;
    } else {
        if (st->nrecs == st->caprecs) {
            size_t cap = st->caprecs ? st->caprecs * 2 : 1024;
            if (cap - 1 > UINT32_MAX - 1) /* slots hold 32-bit numbers + 1 */
                return -1;
            union store_ent *recs = realloc(st->recs, cap * sizeof *recs);
            if (recs == NULL)
                return -1;
            st->bytes += (cap - st->caprecs) * sizeof *recs;
            st->recs = recs;
            st->caprecs = cap;
        }
        *n = st->nrecs++;
    }
    st->recs[*n].rec = r;
    st->nlive++;
    return 0;
}

static uint64_t rng_next(struct store *st)
{
    uint64_t x = st->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    st->rng = x;
    return x;
}

/* A random number in [0, n), n < 2^32 (no division on the hot path). */
static size_t rng_below(struct store *st, size_t n)
{
    return (size_t)(((rng_next(st) >> 32) * (uint64_t)n) >> 32);
}

/* Adds record N to the eviction pool, kept sorted oldest origin first. */
static void pool_add(struct store *st, uint32_t n, int64_t origin)
{
    size_t k = st->npool;
    for (size_t j = 0; j < k; j++)
        if (st->pool[j].n == n)
            return;
    if (k == EVICT_POOL) {
        if (origin >= st->pool[k - 1].origin)
            return;
        k--; /* the youngest candidate makes way */
    } else {
        st->npool++;
    }
    while (k > 0 && st->pool[k - 1].origin > origin) {
        st->pool[k] = st->pool[k - 1];
        k--;
    }
    st->pool[k].n = n;
    st->pool[k].origin = origin;
}

/*
 * The number of the record to evict (Redis's eviction pool): a few random
 * records join a pool of the oldest candidates seen so far, and the oldest
 * one still as it was goes. An expired record met on the way goes first
 * (*was_expired set).
 */
/* The exact choice for a small store: an expired record, else the oldest. */
static size_t evict_scan(const struct store *st, int64_t cut, int *was_expired)
{
    size_t best = st->nrecs;
    for (size_t n = 0; n < st->nrecs; n++) {
        if (is_hole(st->recs[n]))
            continue;
        const struct store_rec *r = st->recs[n].rec;
        if (expired(r, cut)) {
            *was_expired = 1;
            return n;
        }
        if (best == st->nrecs || r->origin < st->recs[best].rec->origin)
            best = n;
    }
    return best;
}

static size_t evict_pick(struct store *st, int64_t cut, int *was_expired)
{
    size_t idx[EVICT_SAMPLES];
    *was_expired = 0;
    if (st->nrecs <= EVICT_EXACT)
        return evict_scan(st, cut, was_expired);
    /* Draw, then prefetch, then read: the cache misses overlap. */
    for (int j = 0; j < EVICT_SAMPLES; j++) {
        idx[j] = rng_below(st, st->nrecs);
        __builtin_prefetch(&st->recs[idx[j]]);
    }
    for (int j = 0; j < EVICT_SAMPLES; j++)
        if (!is_hole(st->recs[idx[j]]))
            __builtin_prefetch(st->recs[idx[j]].rec);
    for (int j = 0; j < EVICT_SAMPLES; j++) {
        size_t n = idx[j];
        if (is_hole(st->recs[n]))
            continue;
        const struct store_rec *r = st->recs[n].rec;
        if (expired(r, cut)) {
            *was_expired = 1;
            return n;
        }
        pool_add(st, (uint32_t)n, r->origin);
    }
    while (st->npool > 0) {
        struct store_cand c = st->pool[0];
        memmove(st->pool, st->pool + 1, --st->npool * sizeof *st->pool);
        /* Still there and not replaced by a newer update since sampled? */
        if (c.n < st->nrecs && !is_hole(st->recs[c.n]) && st->recs[c.n].rec->origin == c.origin)
            return c.n;
    }
    /* Mostly holes: the first live record from a random point. */
    size_t n = rng_below(st, st->nrecs);
    while (is_hole(st->recs[n]))
        n = (n + 1) % st->nrecs;
    return n;
}

static void evict_one(struct store *st, int64_t cut)
{
    int was_expired;
    if (st->nlive == 0) /* only the index and array are left: nothing to drop */
        return;
    rec_delete(st, evict_pick(st, cut, &was_expired));
    if (was_expired)
        st->stats.expired++;
    else
        st->stats.evicted++;
}

/* True while ADDING more records of NEED bytes in all would break a bound. */
static int over_bounds(const struct store *st, size_t adding, size_t need)
{
    if (st->nlive == 0)
        return 0;
    return (st->max > 0 && st->nlive + adding > st->max) ||
           (st->max_mem > 0 && st->bytes + need > st->max_mem);
}

static void note_origin(struct store *st, int64_t origin)
{
    if (origin < st->min_origin)
        st->min_origin = origin;
    if (st->sweeping && origin < st->sweep_min)
        st->sweep_min = origin;
}

/* Bytes one more record of RB bytes adds, with the growth it causes. */
static size_t put_cost(const struct store *st, size_t rb)
{
    size_t need = rb;
    if ((st->nlive + 1) * 2 > st->nslots)
        need += (st->nslots ? st->nslots : 1024) * sizeof *st->slots;
    if (st->free_head == 0 && st->nrecs == st->caprecs)
        need += (st->caprecs ? st->caprecs : 1024) * sizeof *st->recs;
    return need;
}

/* Stores R for a new ID; evicts first when the store is full. */
static int put_new(struct store *st, struct store_rec *r, uint64_t h, int64_t cut)
{
    size_t need = rec_bytes(r);
    for (int k = 0; k < EVICT_PER_PUT && over_bounds(st, 1, put_cost(st, need)); k++)
        evict_one(st, cut);
    /* Keep the load factor under 1/2 so probes stay short. */
    if ((st->nlive + 1) * 2 > st->nslots && grow_index(st) < 0)
        return -1;                                 /* errno ENOMEM from calloc */
    size_t i = probe(st, rec_id(r), r->id_len, h); /* evictions moved slots */
    size_t n;
    if (place_rec(st, r, &n) < 0)
        return -1;
    st->slots[i] = (uint64_t)(uint32_t)h << 32 | (uint32_t)(n + 1);
    st->bytes += need;
    return 0;
}

int store_put(struct store *st, struct proto_str id, struct proto_time t, int64_t origin,
              int64_t now, const char *line, size_t len, const struct store_rec **out)
{
    int64_t cut = cutoff(st, now);
    if (cut != INT64_MIN && origin <= cut) {
        st->stats.expired_arrival++;
        return STORE_EXPIRED;
    }
    uint64_t h = hash_id(st->seed, id.p, id.len);
    uint32_t s = 0;
    size_t i = 0;
    if (st->nslots > 0) {
        i = probe(st, id.p, id.len, h);
        s = slot_rec(st->slots[i]);
    }
    if (s != 0) {
        struct store_rec *old = st->recs[s - 1].rec;
        struct proto_time ot = {old->sec, (int32_t)old->nsec};
        if (!expired(old, cut) && proto_time_cmp(t, ot) <= 0) {
            *out = old;
            return 0;
        }
    }
    struct store_rec *r = rec_new(id, t, origin, line, len);
    if (r == NULL)
        return -1;
    if (s != 0) { /* same number, same slot */
        struct store_rec *old = st->recs[s - 1].rec;
        if (expired(old, cut))
            st->stats.expired++;
        st->bytes -= rec_bytes(old);
        st->bytes += rec_bytes(r);
        free(old);
        st->recs[s - 1].rec = r;
    } else if (put_new(st, r, h, cut) < 0) {
        free(r);
        return -1;
    }
    note_origin(st, origin);
    *out = r;
    return 1;
}

const struct store_rec *store_get(struct store *st, const char *id, size_t len, int64_t now)
{
    if (st->nslots == 0)
        return NULL;
    size_t i = probe(st, id, len, hash_id(st->seed, id, len));
    uint32_t s = slot_rec(st->slots[i]);
    if (s == 0)
        return NULL;
    const struct store_rec *r = st->recs[s - 1].rec;
    if (expired(r, cutoff(st, now))) {
        rec_delete(st, s - 1);
        st->stats.expired++;
        return NULL;
    }
    return r;
}

size_t store_end(const struct store *st)
{
    return st->nrecs;
}

const struct store_rec *store_at(const struct store *st, size_t i, int64_t now)
{
    if (i >= st->nrecs || is_hole(st->recs[i]))
        return NULL;
    const struct store_rec *r = st->recs[i].rec;
    return expired(r, cutoff(st, now)) ? NULL : r;
}

size_t store_count(const struct store *st)
{
    return st->nlive;
}

/* One bounded stretch of the sweep; 1 when it stopped on its budget. */
static int sweep_some(struct store *st, int64_t cut, size_t budget)
{
    size_t work = 0;
    while (work < budget && st->sweep < st->nrecs) {
        size_t n = st->sweep++;
        work++;
        if (is_hole(st->recs[n]))
            continue;
        const struct store_rec *r = st->recs[n].rec;
        if (expired(r, cut)) {
            rec_delete(st, n);
            st->stats.expired++;
            work += STEP_DELETE_COST - 1;
        } else if (r->origin < st->sweep_min) {
            st->sweep_min = r->origin;
        }
    }
    if (st->sweep < st->nrecs)
        return 1;
    st->sweeping = 0;
    st->min_origin = st->sweep_min;
    return 0;
}

int store_expire_step(struct store *st, int64_t now, size_t budget)
{
    int64_t cut = cutoff(st, now);
    /* Bounds lowered at run time: trim a little at a time. */
    size_t k = 0;
    for (; k < budget / STEP_DELETE_COST && over_bounds(st, 0, 0); k++)
        evict_one(st, cut);
    int more = over_bounds(st, 0, 0);
    if (cut == INT64_MIN)
        return more;
    if (!st->sweeping) {
        if (st->min_origin > cut)
            return more; /* nothing can have expired yet */
        st->sweeping = 1;
        st->sweep = 0;
        st->sweep_min = INT64_MAX;
    }
    size_t used = k * STEP_DELETE_COST;
    return sweep_some(st, cut, budget > used ? budget - used : 1) || more;
}

void store_get_stats(const struct store *st, struct store_stats *out)
{
    *out = st->stats;
}

size_t store_bytes(const struct store *st)
{
    return st->bytes;
}
