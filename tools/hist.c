/*
 * hist.c - latency histogram queries (see hist.h).
 */
#include "hist.h"

void
hist_merge(struct hist *into, const struct hist *h)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += h->b[i];
    into->n += h->n;
    if (h->max > into->max)
        into->max = h->max;
}

uint64_t
hist_pct(const struct hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->n == 0)
        return 0;
    rank = (uint64_t)(q * (double)h->n + 0.999999);
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo, width, mid;
            unsigned e;

            if (i < HIST_SUB)
                return i;
            e = i / HIST_SUB + HIST_SUB_BITS - 1;
            width = 1ull << (e - HIST_SUB_BITS);
            lo = (uint64_t)(HIST_SUB + i % HIST_SUB) << (e - HIST_SUB_BITS);
            mid = lo + (width - 1) / 2;
            return mid < h->max ? mid : h->max;
        }
    }
    return h->max;
}
