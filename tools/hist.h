/*
 * hist.h - latency histograms for the benchmarks: log-linear buckets (HDR
 * style: 64 linear sub-buckets per power of two, so every recorded value is
 * within 1/64 of its bucket's bounds), fixed size, no allocation per value.
 *
 * Invariant: n is the sum of the buckets; max is the largest value added.
 */
#ifndef SPK_TOOLS_HIST_H
#define SPK_TOOLS_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t n, max;
    uint64_t b[HIST_BUCKETS];
};

static inline void
hist_add(struct hist *h, uint64_t v)
{
    unsigned i;

    if (v < HIST_SUB) {
        i = (unsigned)v;
    } else {
        unsigned e = 63u - (unsigned)__builtin_clzll(v);
        i = (e - HIST_SUB_BITS + 1) * HIST_SUB +
            (unsigned)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
    }
    h->b[i]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

void hist_merge(struct hist *into, const struct hist *h);
/* The value at quantile <q> (0..1): the middle of its bucket, capped at max. */
uint64_t hist_pct(const struct hist *h, double q);

#endif /* SPK_TOOLS_HIST_H */
