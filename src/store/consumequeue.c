/*
 * consumequeue.c - ConsumeQueue files (see consumequeue.h).
 *
 * Units are written with memcpy into the mapping rather than pwrite (the
 * RocketMQ default): the dispatcher writes one unit per message, and a
 * syscall per 20 bytes would cap dispatch near the syscall rate (~1 us
 * each here, PERF.md 2). The bytes on disk are the same either way; the
 * flush is an msync of the written range.
 *
 * Files are created with their full size but their blocks are reserved in
 * 80 KiB steps as units arrive (SEG_RESERVE_LATER): fallocating 6 MB per
 * queue up front would reserve 48 GB for 1000 topics of 8 queues. Every
 * range is reserved before a unit is stored into it, so a full disk is an
 * error from cq_put, never SIGBUS.
 */
#include "store/consumequeue.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "store/segment.h"
#include "store/storeio.h"

struct cq {
    char cq_dir[PATH_MAX];
    char *cq_topic;
    int32_t cq_qid;
    size_t cq_seg_size;

    pthread_mutex_t cq_lock; /* guards the segment array */
    struct segment **cq_segs;
    size_t cq_nsegs, cq_cap;

    _Atomic uint64_t cq_min_idx;
    _Atomic uint64_t cq_max_idx;
    _Atomic uint64_t cq_max_phys_end;
    uint64_t cq_reserved_from, cq_reserved_to; /* dispatcher only: the stream
                                                 * range known to have blocks */
    uint64_t cq_flushed_idx; /* flusher only */
    int cq_dir_made;
};

/* 80 KiB: a multiple of both the page size and the unit size, so a unit
 * never straddles two steps (segments are multiples of 20 bytes too). */
#define CQ_RESERVE_STEP 81920u

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void
cq_decode_unit(const uint8_t *p, struct cq_unit *u)
{
    u->phys = be_get64(p);
    u->size = be_get32(p + 8);
    u->tags_code = (int64_t)be_get64(p + 12);
}

static int
segs_push(struct cq *q, struct segment *seg)
{
    if (q->cq_nsegs == q->cq_cap) {
        size_t cap = q->cq_cap ? q->cq_cap * 2 : 4;
        struct segment **n = realloc(q->cq_segs, cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        q->cq_segs = n;
        q->cq_cap = cap;
    }
    q->cq_segs[q->cq_nsegs++] = seg;
    return 0;
}

/* Segment holding stream byte <pos>; caller holds cq_lock. */
static struct segment *
seg_for(struct cq *q, uint64_t pos)
{
    uint64_t first;
    size_t i;

    if (q->cq_nsegs == 0)
        return NULL;
    first = seg_base(q->cq_segs[0]);
    if (pos < first)
        return NULL;
    i = (size_t)((pos - first) / q->cq_seg_size);
    return i < q->cq_nsegs ? q->cq_segs[i] : NULL;
}

/* Finds the end of the units by scanning from the third-last segment
 * (STORE.md 5.4): the first unit with a negative offset or zero size. */
static void
scan_end(struct cq *q)
{
    size_t i = q->cq_nsegs > 3 ? q->cq_nsegs - 3 : 0;
    uint64_t end = q->cq_nsegs ? seg_base(q->cq_segs[0]) : 0, phys_end = 0;

    for (; i < q->cq_nsegs; i++) {
        const uint8_t *p = seg_data(q->cq_segs[i]);
        size_t pos = 0, n = q->cq_seg_size / CQ_UNIT_SIZE;
        int whole = 1;

        for (size_t k = 0; k < n; k++, pos += CQ_UNIT_SIZE) {
            struct cq_unit u;
            cq_decode_unit(p + pos, &u);
            if ((int64_t)u.phys < 0 || u.size == 0) {
                whole = 0;
                break;
            }
            if (u.size != CQ_BLANK_SIZE)
                phys_end = u.phys + u.size;
        }
        end = seg_base(q->cq_segs[i]) + pos;
        if (!whole)
            break;
    }
    atomic_store(&q->cq_max_idx, end / CQ_UNIT_SIZE);
    atomic_store(&q->cq_max_phys_end, phys_end);
    q->cq_flushed_idx = end / CQ_UNIT_SIZE;
    uint64_t min = q->cq_nsegs ? seg_base(q->cq_segs[0]) / CQ_UNIT_SIZE : 0;
    atomic_store(&q->cq_min_idx, min);
}

int
cq_open(const char *dir, const char *topic, int32_t queue_id, size_t seg_size,
        struct cq **out, char *err, size_t errlen)
{
    struct cq *q = calloc(1, sizeof(*q));
    uint64_t *bases = NULL;
    size_t nb = 0, cap = 0;
    DIR *d;
    struct dirent *de;
    int rc = 0;

    if (q == NULL || (q->cq_topic = strdup(topic)) == NULL) {
        free(q);
        return -ENOMEM;
    }
    snprintf(q->cq_dir, sizeof(q->cq_dir), "%s", dir);
    q->cq_qid = queue_id;
    q->cq_seg_size = seg_size;
    pthread_mutex_init(&q->cq_lock, NULL);

    d = opendir(dir);
    if (d != NULL) {
        q->cq_dir_made = 1;
        while ((de = readdir(d)) != NULL) {
            uint64_t b;
            if (seg_parse_name(de->d_name, &b) != 0)
                continue;
            if (nb == cap) {
                cap = cap ? cap * 2 : 8;
                uint64_t *n = realloc(bases, cap * sizeof(*n));
                if (n == NULL) {
                    rc = -ENOMEM;
                    break;
                }
                bases = n;
            }
            bases[nb++] = b;
        }
        closedir(d);
        if (rc != 0)
            goto fail;
    } else if (errno != ENOENT) {
        rc = -errno;
        snprintf(err, errlen, "cannot read %s: %s", dir, spk_strerror(rc));
        goto fail;
    }
    if (nb > 1)
        qsort(bases, nb, sizeof(*bases), cmp_u64);
    for (size_t i = 0; i < nb; i++) {
        char path[PATH_MAX];
        struct segment *seg;
        struct stat st;

        snprintf(path, sizeof(path), "%s/%020" PRIu64, dir, bases[i]);
        if (stat(path, &st) == 0 && st.st_size == 0 && i == nb - 1) {
            sio_unlink(path); /* crash during creation: never held units */
            break;
        }
        if (bases[i] % seg_size != 0 || (i > 0 && bases[i] != bases[i - 1] + seg_size)) {
            /* A gap in a derived file: the caller rebuilds the queue. */
            rc = SPK_ECORRUPT;
            snprintf(err, errlen, "%s: segment name out of sequence", path);
            goto fail;
        }
        rc = seg_open(path, bases[i], seg_size, 0, &seg);
        if (rc == 0)
            rc = segs_push(q, seg);
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", path,
                     rc == -EINVAL ? "size differs from mappedFileSizeConsumeQueue"
                                   : spk_strerror(rc));
            goto fail;
        }
    }
    free(bases);
    scan_end(q);
    *out = q;
    return 0;

fail:
    free(bases);
    cq_close(q);
    return rc;
}

void
cq_close(struct cq *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->cq_nsegs; i++)
        seg_unref(q->cq_segs[i]);
    free(q->cq_segs);
    free(q->cq_topic);
    pthread_mutex_destroy(&q->cq_lock);
    free(q);
}

const char *
cq_topic(const struct cq *q)
{
    return q->cq_topic;
}

int32_t
cq_queue_id(const struct cq *q)
{
    return q->cq_qid;
}

uint64_t
cq_min(struct cq *q)
{
    return atomic_load_explicit(&q->cq_min_idx, memory_order_acquire);
}

uint64_t
cq_max(struct cq *q)
{
    return atomic_load_explicit(&q->cq_max_idx, memory_order_acquire);
}

uint64_t
cq_max_phys_end(struct cq *q)
{
    return atomic_load(&q->cq_max_phys_end);
}

/* Creates the segment that starts at <base>; caller holds cq_lock. */
static int
add_segment(struct cq *q, uint64_t base)
{
    struct segment *seg;
    int rc;

    if (!q->cq_dir_made) {
        rc = sio_mkdirs(q->cq_dir);
        if (rc != 0)
            return rc;
        q->cq_dir_made = 1;
    }
    rc = seg_create(q->cq_dir, base, q->cq_seg_size, SEG_RESERVE_LATER, &seg);
    if (rc != 0)
        return rc;
    rc = segs_push(q, seg);
    if (rc != 0)
        seg_destroy(seg);
    return rc;
}

int
cq_put(struct cq *q, uint64_t qidx, uint64_t phys, uint32_t size, int64_t tags_code)
{
    uint64_t pos = qidx * CQ_UNIT_SIZE, max = cq_max(q);
    struct segment *seg;
    uint8_t *p;
    int rc = 0;

    pthread_mutex_lock(&q->cq_lock);
    if (q->cq_nsegs == 0) {
        uint64_t base = pos - pos % q->cq_seg_size;
        rc = add_segment(q, base);
        if (rc != 0)
            goto out;
        /* A queue whose first unit is not unit 0 of its file (the log was
         * cleaned, or the queue was rebuilt) is padded with blank units,
         * as RocketMQ does, so every earlier position reads as filler. */
        uint8_t blank[CQ_UNIT_SIZE] = {0};
        be_put32(blank + 8, CQ_BLANK_SIZE);
        rc = seg_reserve(q->cq_segs[0], 0, (size_t)(pos - base));
        if (rc != 0)
            goto out;
        p = seg_data(q->cq_segs[0]);
        for (uint64_t o = 0; o < pos - base; o += CQ_UNIT_SIZE)
            memcpy(p + o, blank, CQ_UNIT_SIZE);
        atomic_store(&q->cq_min_idx, qidx);
        atomic_store(&q->cq_max_idx, qidx);
        q->cq_flushed_idx = (pos - pos % q->cq_seg_size) / CQ_UNIT_SIZE;
    }
    while ((seg = seg_for(q, pos)) == NULL) {
        uint64_t last = seg_base(q->cq_segs[q->cq_nsegs - 1]);
        if (pos < seg_base(q->cq_segs[0]))
            goto out; /* below the first file: its record was cleaned up */
        rc = add_segment(q, last + q->cq_seg_size);
        if (rc != 0)
            goto out;
    }
    if (pos < q->cq_reserved_from || pos + CQ_UNIT_SIZE > q->cq_reserved_to) {
        /* Reserve the step holding this unit (re-reserving a range that
         * already has blocks is free, e.g. after a reopen). */
        size_t at = (size_t)(pos - seg_base(seg)), from = at - at % CQ_RESERVE_STEP;
        size_t to = from + CQ_RESERVE_STEP < q->cq_seg_size ? from + CQ_RESERVE_STEP
                                                             : q->cq_seg_size;
        rc = seg_reserve(seg, from, to);
        if (rc != 0)
            goto out;
        q->cq_reserved_from = seg_base(seg) + from;
        q->cq_reserved_to = seg_base(seg) + to;
    }
    p = seg_data(seg) + (pos - seg_base(seg));
    be_put64(p, phys);
    be_put32(p + 8, size);
    be_put64(p + 12, (uint64_t)tags_code);
    if (qidx + 1 > max)
        atomic_store_explicit(&q->cq_max_idx, qidx + 1, memory_order_release);
    if (phys + size > cq_max_phys_end(q))
        atomic_store(&q->cq_max_phys_end, phys + size);
out:
    pthread_mutex_unlock(&q->cq_lock);
    return rc;
}

int
cq_get_unit(struct cq *q, uint64_t qidx, struct cq_unit *u)
{
    struct segment *pin;
    size_t n;
    const uint8_t *p = cq_units_at(q, qidx, &n, &pin);

    if (p == NULL)
        return -ENOENT;
    cq_decode_unit(p, u);
    seg_unref(pin);
    return 0;
}

const uint8_t *
cq_units_at(struct cq *q, uint64_t qidx, size_t *n, struct segment **pin)
{
    uint64_t max = cq_max(q), pos = qidx * CQ_UNIT_SIZE;
    struct segment *seg;
    size_t in_seg;

    if (qidx < cq_min(q) || qidx >= max)
        return NULL;
    pthread_mutex_lock(&q->cq_lock);
    seg = seg_for(q, pos);
    if (seg)
        seg_ref(seg);
    pthread_mutex_unlock(&q->cq_lock);
    if (seg == NULL)
        return NULL;
    in_seg = (q->cq_seg_size - (size_t)(pos - seg_base(seg))) / CQ_UNIT_SIZE;
    *n = max - qidx < in_seg ? (size_t)(max - qidx) : in_seg;
    *pin = seg;
    return seg_data(seg) + (pos - seg_base(seg));
}

int
cq_flush(struct cq *q)
{
    uint64_t max = cq_max(q), from = q->cq_flushed_idx * CQ_UNIT_SIZE, to = max * CQ_UNIT_SIZE;

    while (from < to) {
        struct segment *seg;
        pthread_mutex_lock(&q->cq_lock);
        seg = seg_for(q, from);
        if (seg)
            seg_ref(seg);
        pthread_mutex_unlock(&q->cq_lock);
        if (seg == NULL)
            break; /* deleted by clean-up meanwhile: nothing left to flush there */
        uint64_t end = seg_base(seg) + q->cq_seg_size;
        size_t a = (size_t)(from - seg_base(seg));
        size_t b = (size_t)((to < end ? to : end) - seg_base(seg));
        int rc = seg_sync(seg, a, b, 0);
        seg_unref(seg);
        if (rc != 0)
            return rc;
        from = seg_base(seg) + b;
    }
    q->cq_flushed_idx = max;
    return 0;
}

int
cq_truncate_from(struct cq *q, uint64_t qidx, int zero_tail)
{
    uint64_t pos = qidx * CQ_UNIT_SIZE;
    int rc = 0;

    pthread_mutex_lock(&q->cq_lock);
    while (q->cq_nsegs > 0 && seg_base(q->cq_segs[q->cq_nsegs - 1]) > pos) {
        rc = seg_destroy(q->cq_segs[--q->cq_nsegs]);
        if (rc != 0)
            goto out;
    }
    struct segment *seg = seg_for(q, pos);
    if (seg != NULL && zero_tail) {
        uint64_t zeroed;
        rc = seg_zero_tail(seg, (size_t)(pos - seg_base(seg)), &zeroed);
        if (rc != 0)
            goto out;
    }
    if (cq_min(q) > qidx)
        atomic_store(&q->cq_min_idx, qidx);
    atomic_store(&q->cq_max_idx, qidx);
    /* Recompute the end of the last remaining unit. */
    uint64_t phys_end = 0;
    for (uint64_t i = qidx; i > cq_min(q);) {
        i--;
        struct segment *s = seg_for(q, i * CQ_UNIT_SIZE);
        struct cq_unit u;
        if (s == NULL)
            break;
        cq_decode_unit(seg_data(s) + (i * CQ_UNIT_SIZE - seg_base(s)), &u);
        if (u.size != CQ_BLANK_SIZE && u.size != 0) {
            phys_end = u.phys + u.size;
            break;
        }
    }
    atomic_store(&q->cq_max_phys_end, phys_end);
    if (q->cq_flushed_idx > qidx)
        q->cq_flushed_idx = qidx;
out:
    pthread_mutex_unlock(&q->cq_lock);
    return rc;
}

void
cq_correct_min(struct cq *q, uint64_t clog_min)
{
    uint64_t lo = cq_min(q), hi = cq_max(q);
    struct cq_unit u;

    /* Binary search for the first unit at or above clog_min; blanks (only
     * at the very start) count as below. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (cq_get_unit(q, mid, &u) != 0)
            break;
        if (u.size == CQ_BLANK_SIZE || u.phys < clog_min)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_store(&q->cq_min_idx, lo);
}

int
cq_delete_below(struct cq *q, uint64_t clog_min)
{
    int deleted = 0;

    for (;;) {
        struct segment *first;
        struct cq_unit u;
        pthread_mutex_lock(&q->cq_lock);
        if (q->cq_nsegs < 2) {
            pthread_mutex_unlock(&q->cq_lock);
            break;
        }
        first = q->cq_segs[0];
        cq_decode_unit(seg_data(first) + q->cq_seg_size - CQ_UNIT_SIZE, &u);
        if (u.size == 0 || u.phys + u.size > clog_min) {
            pthread_mutex_unlock(&q->cq_lock);
            break;
        }
        memmove(q->cq_segs, q->cq_segs + 1, (q->cq_nsegs - 1) * sizeof(*q->cq_segs));
        q->cq_nsegs--;
        uint64_t new_min = seg_base(q->cq_segs[0]) / CQ_UNIT_SIZE;
        if (cq_min(q) < new_min)
            atomic_store(&q->cq_min_idx, new_min);
        pthread_mutex_unlock(&q->cq_lock);
        int rc = seg_destroy(first);
        if (rc != 0)
            return rc;
        deleted++;
    }
    cq_correct_min(q, clog_min);
    return deleted;
}

int
cq_destroy_files(struct cq *q)
{
    int rc = 0;

    pthread_mutex_lock(&q->cq_lock);
    while (q->cq_nsegs > 0 && rc == 0)
        rc = seg_destroy(q->cq_segs[--q->cq_nsegs]);
    atomic_store(&q->cq_min_idx, 0);
    atomic_store(&q->cq_max_idx, 0);
    atomic_store(&q->cq_max_phys_end, 0);
    q->cq_flushed_idx = 0;
    pthread_mutex_unlock(&q->cq_lock);
    return rc;
}
