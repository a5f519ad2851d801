/*
 * hist.c - latency histogram queries and printing (see hist.h).
 */
#include "hist.h"

#include <inttypes.h>
#include <string.h>

/* Lower bound and width of bucket <i> (the inverse of hist_add's index). */
static void
bucket_bounds(unsigned i, uint64_t *lo, uint64_t *width)
{
    unsigned e;

    if (i < HIST_SUB) {
        *lo = i;
        *width = 1;
        return;
    }
    e = i / HIST_SUB + HIST_SUB_BITS - 1;
    *width = 1ull << (e - HIST_SUB_BITS);
    *lo = (uint64_t)(HIST_SUB + i % HIST_SUB) << (e - HIST_SUB_BITS);
}

void
hist_merge(struct hist *into, const struct hist *h)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += h->b[i];
    into->n += h->n;
    if (h->max > into->max)
        into->max = h->max;
}

void
hist_snapshot_add(struct hist *into, const struct hist *live)
{
    uint64_t n = 0, max;

    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        into->b[i] += __atomic_load_n(&live->b[i], __ATOMIC_RELAXED);
        n += into->b[i];
    }
    into->n = n;
    max = __atomic_load_n(&live->max, __ATOMIC_RELAXED);
    if (max > into->max)
        into->max = max;
}

void
hist_delta(struct hist *out, const struct hist *cur, const struct hist *prev)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        /* A snapshot never goes back, but stay sane if the caller mixed them up. */
        out->b[i] = cur->b[i] >= prev->b[i] ? cur->b[i] - prev->b[i] : 0;
        n += out->b[i];
    }
    out->n = n;
    out->max = cur->max;
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

            bucket_bounds(i, &lo, &width);
            mid = lo + (width - 1) / 2;
            return mid < h->max ? mid : h->max;
        }
    }
    return h->max;
}

/* Lines of hist_print: 1-2-5 series from 1 ns to 5e18 ns (beyond UINT64_MAX / 2). */
#define PRINT_ROWS 57
#define PRINT_BAR 40

static uint64_t
row_bound(unsigned r)
{
    static const uint64_t mant[3] = {1, 2, 5};
    uint64_t v = mant[r % 3];

    for (unsigned d = 0; d < r / 3; d++)
        v *= 10;
    return v;
}

/* "500 ns", "20 us", "1 ms", "10 s": every bound of the series is exact. */
static void
fmt_ns(uint64_t ns, char *buf, size_t len)
{
    if (ns < 1000)
        snprintf(buf, len, "%" PRIu64 " ns", ns);
    else if (ns < 1000000)
        snprintf(buf, len, "%" PRIu64 " us", ns / 1000);
    else if (ns < 1000000000)
        snprintf(buf, len, "%" PRIu64 " ms", ns / 1000000);
    else
        snprintf(buf, len, "%" PRIu64 " s", ns / 1000000000);
}

/* <v> with thousands separators. */
static void
fmt_count(uint64_t v, char *buf, size_t len)
{
    char raw[24];
    size_t n, o = 0;

    snprintf(raw, sizeof(raw), "%" PRIu64, v);
    n = strlen(raw);
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
}

void
hist_print(FILE *out, const struct hist *h, const char *indent)
{
    uint64_t rows[PRINT_ROWS], top = 0, seen = 0, total = 0;
    unsigned r = 0, first = PRINT_ROWS, last = 0;
    char bar[PRINT_BAR + 1], lo_s[16], hi_s[16], count_s[32];

    memset(rows, 0, sizeof(rows));
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        uint64_t lo, width;

        if (h->b[i] == 0)
            continue;
        bucket_bounds(i, &lo, &width);
        /* Buckets come in increasing order, so the row only moves up. */
        while (r + 1 < PRINT_ROWS && lo >= row_bound(r + 1))
            r++;
        rows[r] += h->b[i];
        total += h->b[i];
    }
    for (r = 0; r < PRINT_ROWS; r++) {
        if (rows[r] == 0)
            continue;
        if (first == PRINT_ROWS)
            first = r;
        last = r;
        if (rows[r] > top)
            top = rows[r];
    }
    if (total == 0)
        return;
    for (r = first; r <= last; r++) {
        unsigned w = (unsigned)((rows[r] * PRINT_BAR + top / 2) / top);

        if (w == 0 && rows[r] > 0)
            w = 1;
        memset(bar, '#', w);
        bar[w] = '\0';
        seen += rows[r];
        fmt_ns(row_bound(r), lo_s, sizeof(lo_s));
        fmt_ns(row_bound(r + 1), hi_s, sizeof(hi_s));
        fmt_count(rows[r], count_s, sizeof(count_s));
        fprintf(out, "%s%7s .. %-7s |%-*s| %11s %8.3f%%\n", indent, lo_s, hi_s, PRINT_BAR, bar,
                count_s, 100.0 * (double)seen / (double)total);
    }
}
