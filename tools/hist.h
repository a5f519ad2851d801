/*
 * hist.h - latency histograms for the benchmarks: log-linear buckets (HDR
 * style: 64 linear sub-buckets per power of two, so every recorded value is
 * within 1/64 of its bucket's bounds), fixed size, no allocation per value.
 *
 * Invariants:
 *   INV-1  n is the sum of the buckets and max is the largest value added
 *          (for a histogram that no thread is adding to; see INV-2);
 *   INV-2  one thread adds to a histogram (hist_add); any other thread may
 *          read it meanwhile with hist_snapshot_add() only. hist_add writes
 *          every field with a relaxed atomic load and store: on x86-64 and
 *          arm64 those are the same plain moves as an ordinary increment
 *          (no locked instruction), yet the concurrent read is not a data
 *          race. The GCC/Clang __atomic builtins are used rather than
 *          _Atomic fields so that the struct stays plain for everything
 *          else (calloc, memset, hist_merge, hist_pct).
 * Values are nanoseconds wherever a function prints them.
 */
#ifndef SPK_TOOLS_HIST_H
#define SPK_TOOLS_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t n, max;
    uint64_t b[HIST_BUCKETS];
};

/* Adds <v>. Only one thread may add to <h> (INV-2). */
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
    __atomic_store_n(&h->b[i], __atomic_load_n(&h->b[i], __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->n, __atomic_load_n(&h->n, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    if (v > __atomic_load_n(&h->max, __ATOMIC_RELAXED))
        __atomic_store_n(&h->max, v, __ATOMIC_RELAXED);
}

/* Adds every bucket of <h> to <into>; neither may be in use by another thread. */
void hist_merge(struct hist *into, const struct hist *h);

/*
 * Adds a snapshot of <live>, which another thread may be adding to, to
 * <into> (INV-2). The snapshot is not atomic as a whole: values added while
 * it is taken may or may not be in it, so <into>->n is recomputed as the
 * sum of its buckets to keep INV-1.
 */
void hist_snapshot_add(struct hist *into, const struct hist *live);

/*
 * <out> = <cur> - <prev>, bucket by bucket, where <prev> is an earlier
 * snapshot of the same values (every bucket of <prev> <= that of <cur>):
 * what was added in between. The largest value of that interval is not
 * known; out->max is cur->max, an upper bound.
 */
void hist_delta(struct hist *out, const struct hist *cur, const struct hist *prev);

/* The value at quantile <q> (0..1): the middle of its bucket, capped at max. */
uint64_t hist_pct(const struct hist *h, double q);

/*
 * Prints the distribution of <h> (nanoseconds) to <out>, one line per
 * decade third (1-2-5 series: ... 100 us, 200 us, 500 us, 1 ms ...) from
 * the first non-empty one to the last, each line prefixed with <indent>:
 * its range, a bar of '#' proportional to its count (at least one '#' when
 * the count is not 0), the count and the cumulative percentage. A bucket
 * counts in the line that holds its lower bound, so a line may be off by
 * the bucket width (1/64 of the value) at its edges. Prints nothing for an
 * empty histogram.
 */
void hist_print(FILE *out, const struct hist *h, const char *indent);

#endif /* SPK_TOOLS_HIST_H */
