/*
 * hist: loadgen's latency histogram, HDR-like: exact below 128, then 64
 * log-linear sub-buckets per power of two (~1.6 % resolution), a fixed 30 KB
 * whatever the run length, so a long benchmark never grows its memory.
 */
#ifndef HERD_BENCH_HIST_H
#define HERD_BENCH_HIST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS + 2) * HIST_HALF)

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t total;
    uint64_t max;
    double sum;
};

static inline size_t hist_index(uint64_t v)
{
    if (v < (1u << HIST_SUB_BITS))
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - (HIST_SUB_BITS - 1);
    return (size_t)e * HIST_HALF + (size_t)(v >> e);
}

/* The middle of bucket IDX. */
static inline uint64_t hist_value(size_t idx)
{
    if (idx < (1u << HIST_SUB_BITS))
        return idx;
    size_t e = idx / HIST_HALF - 1;
    uint64_t low = (uint64_t)(idx - e * HIST_HALF) << e;
    return low + ((1ULL << e) >> 1);
}

static inline void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v > h->max)
        h->max = v;
}

static inline uint64_t hist_quantile(const struct hist *h, double q)
{
    if (h->total == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->total);
    uint64_t seen = 0;
    if (want == 0)
        want = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want)
            return hist_value(i) < h->max ? hist_value(i) : h->max;
    }
    return h->max;
}

#endif
