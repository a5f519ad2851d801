/*
 * commitlog.c - CommitLog segments, appends, flush ranges (commitlog.h).
 *
 * Write mode (writeWithoutMmap), chosen by measurement (`sprocket bench
 * store`, 1 KiB messages, this 2-vCPU VM, same-run baselines):
 *   - mapping: records are encoded straight into the shared mapping and
 *     made durable with msync(MS_SYNC) of the dirty range. No syscall per
 *     record: ASYNC_FLUSH appends ran at 0.84-1.2x a plain write() loop,
 *     against 0.48x with pwrite.
 *   - pwrite: records are encoded into a staging buffer, pwritten, and
 *     made durable with fdatasync; the mappings (used only for reads) are
 *     read-only. Each msync of a writable mapping must write-protect the
 *     flushed pages and shoot down TLB entries on the other core, which
 *     this VM makes expensive (PERF.md 5.3): under SYNC_FLUSH, pwrite
 *     reached 0.67-0.69x the group-commit baseline against 0.60x, with
 *     p50 latency 2.9 ms against 4.5-4.8 ms.
 * So the default, "auto", is pwrite under SYNC_FLUSH and the mapping under
 * ASYNC_FLUSH.
 *
 * Deferred writes (pwrite mode, turned on by the store under SYNC_FLUSH):
 * committed records accumulate in the staging buffer and reach the file
 * with one pwrite when the flush thread takes them (clog_write_staged, just
 * before its fdatasync), when the buffer is full, or before a segment
 * roll. In the broker a pwrite per message was 37% of the event loop's
 * time; staged, the loop only copies. Nothing is lost by it: under
 * SYNC_FLUSH nothing is acknowledged before it is durable, and `written`
 * (what readers and the flusher see) only moves when the bytes are in the
 * file (INV-2 holds for the staged tail: it is simply not written yet).
 *
 * Locking: `segs_lock` (rwlock) guards the segment array; appends touch the
 * array only when rolling, under the write side. `alloc_lock` guards the
 * prepared next segment, shared with the allocation thread.
 */
#include "store/commitlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "store/record.h"
#include "store/segment.h"
#include "store/storeio.h"

struct clog {
    char cl_dir[PATH_MAX];
    size_t cl_seg_size;
    int cl_use_pwrite;
    int cl_prefault;

    pthread_rwlock_t cl_segs_lock;
    struct segment **cl_segs; /* cl_segs[0] is the oldest */
    size_t cl_nsegs, cl_cap;

    _Atomic uint64_t cl_written;
    atomic_int cl_stop_prefault;
    uint64_t cl_prefaulted; /* allocation thread only: prefaulted up to here */

    pthread_mutex_t cl_alloc_lock;
    struct segment *cl_next; /* prepared ahead of need, not yet in cl_segs */

    /* Writer only (append lock): the segment holding `written`, so an
     * append needs no lookup under segs_lock. Truncation and clean-up
     * never remove the last segment, which this always is. */
    struct segment *cl_active;

    uint8_t *cl_stage; /* pwrite mode: the record being encoded (deferred: the staged tail) */
    size_t cl_stage_cap;
    int cl_defer;              /* deferred writes on (writer lock) */
    size_t cl_stage_len;       /* deferred: committed bytes staged at written.. (writer lock) */
    _Atomic size_t cl_staged;  /* the same, readable without the lock */
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * In pwrite mode the mappings are read-only: with no writable mapping of
 * the file, a flush does not have to write-protect mapped pages (and
 * shoot down TLB entries on the other core) before writing them back.
 */
static int
seg_flags(const struct clog *c)
{
    return c->cl_use_pwrite ? SEG_READONLY : 0;
}

static int
segs_push(struct clog *c, struct segment *seg)
{
    if (c->cl_nsegs == c->cl_cap) {
        size_t cap = c->cl_cap ? c->cl_cap * 2 : 16;
        struct segment **n = realloc(c->cl_segs, cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        c->cl_segs = n;
        c->cl_cap = cap;
    }
    c->cl_segs[c->cl_nsegs++] = seg;
    return 0;
}

/*
 * Gives the short file <path> its full <seg_size> bytes, the new ones
 * zero and reserved on disk (a sparse end would turn a full disk into
 * SIGBUS on the first append there), and makes the new size durable.
 */
static int
extend_short_segment(const char *path, size_t seg_size)
{
    int fd = sio_open(path, O_RDWR | O_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return fd;
    rc = sio_fallocate(fd, seg_size);
    if (rc == 0)
        rc = sio_fsync(fd);
    int crc = sio_close(fd);
    return rc != 0 ? rc : crc;
}

int
clog_open(const char *dir, size_t seg_size, int use_pwrite, int prefault, struct clog **out,
          char *err, size_t errlen)
{
    struct clog *c = calloc(1, sizeof(*c));
    uint64_t *bases = NULL;
    size_t nb = 0, cap = 0;
    DIR *d = NULL;
    struct dirent *de;
    int rc;

    if (c == NULL)
        return -ENOMEM;
    snprintf(c->cl_dir, sizeof(c->cl_dir), "%s", dir);
    c->cl_seg_size = seg_size;
    c->cl_use_pwrite = use_pwrite;
    c->cl_prefault = prefault;
    pthread_rwlock_init(&c->cl_segs_lock, NULL);
    pthread_mutex_init(&c->cl_alloc_lock, NULL);

    rc = sio_mkdirs(dir);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, spk_strerror(rc));
        goto fail;
    }
    d = opendir(dir);
    if (d == NULL) {
        rc = -errno;
        snprintf(err, errlen, "cannot read %s: %s", dir, spk_strerror(rc));
        goto fail;
    }
    while ((de = readdir(d)) != NULL) {
        uint64_t b;
        if (seg_parse_name(de->d_name, &b) != 0)
            continue;
        if (nb == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *n = realloc(bases, cap * sizeof(*n));
            if (n == NULL) {
                rc = -ENOMEM;
                goto fail;
            }
            bases = n;
        }
        bases[nb++] = b;
    }
    closedir(d);
    d = NULL;
    if (nb > 1)
        qsort(bases, nb, sizeof(*bases), cmp_u64);

    for (size_t i = 0; i < nb; i++) {
        char path[PATH_MAX];
        struct stat st;
        struct segment *seg;

        snprintf(path, sizeof(path), "%s/%020" PRIu64, dir, bases[i]);
        if (stat(path, &st) != 0) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", path, spk_strerror(rc));
            goto fail;
        }
        if (st.st_size == 0 && i == nb - 1) {
            /* A crash between create and fallocate leaves an empty last
             * file; it never held data. */
            rc = sio_unlink(path);
            if (rc == 0)
                rc = sio_dirsync(dir);
            if (rc != 0) {
                snprintf(err, errlen, "%s: cannot remove empty file: %s", path, spk_strerror(rc));
                goto fail;
            }
            break;
        }
        if (i == nb - 1 && st.st_size > 0 && (uint64_t)st.st_size < seg_size) {
            /* A last file cut short (a file system that lost the end of
             * it): its bytes are kept and the missing end reads as zeros,
             * i.e. an unwritten tail. Recovery then decides, as for any
             * tail, whether the cut lies above the checkpoint (truncate
             * there) or below it (refuse to start). */
            rc = extend_short_segment(path, seg_size);
            if (rc != 0) {
                snprintf(err, errlen, "%s: cannot extend the short last segment to %zu bytes: %s",
                         path, seg_size, spk_strerror(rc));
                goto fail;
            }
            st.st_size = (off_t)seg_size;
        }
        if ((uint64_t)st.st_size != seg_size) {
            rc = SPK_ECORRUPT;
            snprintf(err, errlen,
                     "%s: size %" PRIu64 " differs from mappedFileSizeCommitLog %zu "
                     "(was the store written with another segment size?)",
                     path, (uint64_t)st.st_size, seg_size);
            goto fail;
        }
        if (bases[i] % seg_size != 0 || (i > 0 && bases[i] != bases[i - 1] + seg_size)) {
            rc = SPK_ECORRUPT;
            snprintf(err, errlen, "%s: name is not %s segment after the previous one", path,
                     bases[i] % seg_size ? "aligned to the segment size as a" : "the next");
            goto fail;
        }
        rc = seg_open(path, bases[i], seg_size, use_pwrite ? SEG_READONLY : 0, &seg);
        if (rc == 0)
            rc = segs_push(c, seg);
        if (rc != 0) {
            snprintf(err, errlen, "%s: cannot map: %s", path, spk_strerror(rc));
            goto fail;
        }
    }
    free(bases);
    /* Until recovery says otherwise the log ends where the files end. */
    atomic_store(&c->cl_written, c->cl_nsegs ? seg_base(c->cl_segs[0]) +
                                                   c->cl_nsegs * seg_size
                                             : 0);
    *out = c;
    return 0;

fail:
    if (d)
        closedir(d);
    free(bases);
    clog_close(c);
    return rc;
}

void
clog_close(struct clog *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->cl_nsegs; i++)
        seg_unref(c->cl_segs[i]);
    if (c->cl_next) {
        /* Never handed out: remove it so the directory holds only what
         * the log uses (RocketMQ deletes unused preallocations too). */
        seg_destroy(c->cl_next);
    }
    free(c->cl_segs);
    free(c->cl_stage);
    pthread_rwlock_destroy(&c->cl_segs_lock);
    pthread_mutex_destroy(&c->cl_alloc_lock);
    free(c);
}

size_t
clog_seg_size(const struct clog *c)
{
    return c->cl_seg_size;
}

const char *
clog_dir(const struct clog *c)
{
    return c->cl_dir;
}

uint64_t
clog_min(struct clog *c)
{
    uint64_t m;

    pthread_rwlock_rdlock(&c->cl_segs_lock);
    m = c->cl_nsegs ? seg_base(c->cl_segs[0]) : atomic_load(&c->cl_written);
    pthread_rwlock_unlock(&c->cl_segs_lock);
    return m;
}

uint64_t
clog_written(const struct clog *c)
{
    return atomic_load_explicit(&((struct clog *)c)->cl_written, memory_order_acquire);
}

uint64_t
clog_end_of_files(struct clog *c)
{
    uint64_t e;

    pthread_rwlock_rdlock(&c->cl_segs_lock);
    e = c->cl_nsegs ? seg_base(c->cl_segs[c->cl_nsegs - 1]) + c->cl_seg_size : 0;
    pthread_rwlock_unlock(&c->cl_segs_lock);
    return e;
}

size_t
clog_nsegs(struct clog *c)
{
    size_t n;

    pthread_rwlock_rdlock(&c->cl_segs_lock);
    n = c->cl_nsegs;
    pthread_rwlock_unlock(&c->cl_segs_lock);
    return n;
}

void
clog_set_written(struct clog *c, uint64_t off)
{
    atomic_store_explicit(&c->cl_written, off, memory_order_release);
}

/* Caller holds segs_lock (either side). */
static struct segment *
seg_at_locked(struct clog *c, uint64_t phys)
{
    uint64_t first;
    size_t i;

    if (c->cl_nsegs == 0)
        return NULL;
    first = seg_base(c->cl_segs[0]);
    if (phys < first)
        return NULL;
    i = (size_t)((phys - first) / c->cl_seg_size);
    return i < c->cl_nsegs ? c->cl_segs[i] : NULL;
}

struct segment *
clog_seg_at(struct clog *c, uint64_t phys)
{
    struct segment *seg;

    pthread_rwlock_rdlock(&c->cl_segs_lock);
    seg = seg_at_locked(c, phys);
    if (seg)
        seg_ref(seg);
    pthread_rwlock_unlock(&c->cl_segs_lock);
    return seg;
}

/* Gets the segment for <base>: the prepared one if it matches, else a new
 * one created now. Appends it to the array. */
static int
add_segment(struct clog *c, uint64_t base)
{
    struct segment *seg = NULL;
    int rc = 0;

    pthread_mutex_lock(&c->cl_alloc_lock);
    if (c->cl_next && seg_base(c->cl_next) == base) {
        seg = c->cl_next;
        c->cl_next = NULL;
    } else {
        /* Needed now: no prefault here, the writer is waiting. */
        rc = seg_create(c->cl_dir, base, c->cl_seg_size, seg_flags(c), &seg);
    }
    pthread_mutex_unlock(&c->cl_alloc_lock);
    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&c->cl_segs_lock);
    rc = segs_push(c, seg);
    pthread_rwlock_unlock(&c->cl_segs_lock);
    if (rc != 0)
        seg_destroy(seg);
    return rc;
}

void
clog_stop_prefault(struct clog *c)
{
    atomic_store(&c->cl_stop_prefault, 1);
}

int
clog_prepare_next(struct clog *c)
{
    uint64_t base;
    int rc = 0;

    pthread_rwlock_rdlock(&c->cl_segs_lock);
    base = c->cl_nsegs ? seg_base(c->cl_segs[c->cl_nsegs - 1]) + c->cl_seg_size
                       : atomic_load(&c->cl_written) / c->cl_seg_size * c->cl_seg_size;
    pthread_rwlock_unlock(&c->cl_segs_lock);

    /* Created under alloc_lock: a writer that needs this very segment waits
     * for the fallocate (milliseconds), never for a prefault. */
    pthread_mutex_lock(&c->cl_alloc_lock);
    if (c->cl_next != NULL && seg_base(c->cl_next) != base) {
        seg_destroy(c->cl_next); /* stale after a truncation */
        c->cl_next = NULL;
    }
    if (c->cl_next == NULL) {
        rc = seg_create(c->cl_dir, base, c->cl_seg_size, seg_flags(c), &c->cl_next);
        if (rc == -EEXIST)
            rc = 0; /* the writer made it already and it is in the list */
    }
    pthread_mutex_unlock(&c->cl_alloc_lock);
    return rc;
}

void
clog_prefault_ahead(struct clog *c, size_t ahead)
{
    const size_t step = 4u << 20;
    size_t ss = c->cl_seg_size;

    if (!c->cl_prefault)
        return;
    for (;;) {
        uint64_t w = atomic_load(&c->cl_written);
        uint64_t from = c->cl_prefaulted > w ? c->cl_prefaulted : w;
        struct segment *seg = NULL;

        if (from >= w + ahead || atomic_load(&c->cl_stop_prefault))
            break;
        from &= ~(uint64_t)4095;
        seg = clog_seg_at(c, from);
        if (seg == NULL) {
            /* Beyond the last segment: the prepared one, if it is next. */
            pthread_mutex_lock(&c->cl_alloc_lock);
            if (c->cl_next != NULL && seg_base(c->cl_next) == from - from % ss) {
                seg = c->cl_next;
                seg_ref(seg);
            }
            pthread_mutex_unlock(&c->cl_alloc_lock);
            if (seg == NULL)
                break;
        }
        size_t pos = (size_t)(from - seg_base(seg));
        size_t end = pos + step < ss ? pos + step : ss;
        /* With pwrite the pages only need to be in the page cache (zero
         * filled for the fallocated extents), so that the writer's pwrite
         * copies into them instead of zeroing new ones on the hot path. */
        if (c->cl_use_pwrite)
            seg_prefault_cache(seg, pos, end);
        else
            seg_prefault(seg, pos, end);
        c->cl_prefaulted = seg_base(seg) + end;
        seg_unref(seg);
    }
}

int
clog_reserve(struct clog *c, size_t len, uint64_t *phys, uint8_t **dst)
{
    uint64_t w;
    size_t ss = c->cl_seg_size;
    struct segment *seg;
    int rc;

    if (len + REC_BLANK_MIN > ss)
        return SPK_ETOOBIG;
    if (c->cl_defer && c->cl_stage_len > 0) {
        uint64_t end = atomic_load_explicit(&c->cl_written, memory_order_relaxed) +
                       c->cl_stage_len;
        /* The staged tail is written first when the new record would not
         * follow it in the same segment or the buffer would pass its cap. */
        if ((end % ss) + len + REC_BLANK_MIN > ss || c->cl_stage_len + len > CLOG_STAGE_MAX) {
            rc = clog_write_staged(c);
            if (rc != 0)
                return rc;
        }
    }
    w = atomic_load_explicit(&c->cl_written, memory_order_relaxed) + c->cl_stage_len;
    seg = c->cl_active;
    if (seg == NULL || w < seg_base(seg) || w >= seg_base(seg) + ss) {
        pthread_rwlock_rdlock(&c->cl_segs_lock);
        seg = seg_at_locked(c, w);
        pthread_rwlock_unlock(&c->cl_segs_lock);
    }

    if (seg != NULL && (w % ss) + len + REC_BLANK_MIN > ss) {
        /* INV-3: close the segment with a BLANK filler and move on. */
        size_t pos = (size_t)(w % ss);
        uint8_t blank[8];
        rec_encode_blank(blank, (uint32_t)(ss - pos));
        if (c->cl_use_pwrite) {
            rc = seg_pwrite(seg, blank, sizeof(blank), pos);
            if (rc != 0)
                return rc;
        } else {
            memcpy(seg_data(seg) + pos, blank, sizeof(blank));
        }
        w += ss - pos;
        atomic_store_explicit(&c->cl_written, w, memory_order_release);
        pthread_rwlock_rdlock(&c->cl_segs_lock);
        seg = seg_at_locked(c, w);
        pthread_rwlock_unlock(&c->cl_segs_lock);
    }
    if (seg == NULL) {
        rc = add_segment(c, w - w % ss);
        if (rc != 0)
            return rc;
        pthread_rwlock_rdlock(&c->cl_segs_lock);
        seg = seg_at_locked(c, w);
        pthread_rwlock_unlock(&c->cl_segs_lock);
        if (seg == NULL)
            return -EIO;
    }
    c->cl_active = seg;
    *phys = w;
    if (c->cl_use_pwrite) {
        size_t need = c->cl_stage_len + len;
        if (c->cl_stage_cap < need) {
            size_t cap = c->cl_defer && need < CLOG_STAGE_MAX ? CLOG_STAGE_MAX : need;
            uint8_t *n = realloc(c->cl_stage, cap);
            if (n == NULL)
                return -ENOMEM;
            c->cl_stage = n;
            c->cl_stage_cap = cap;
        }
        *dst = c->cl_stage + c->cl_stage_len;
    } else {
        *dst = seg_data(seg) + (w % ss);
    }
    return 0;
}

int
clog_commit(struct clog *c, uint64_t phys, size_t len)
{
    if (c->cl_use_pwrite) {
        struct segment *seg;
        int rc;

        seg = c->cl_active; /* set by clog_reserve for this very record */
        if (seg == NULL || phys < seg_base(seg) || phys >= seg_base(seg) + c->cl_seg_size)
            return -EIO;
        if (c->cl_defer) {
            c->cl_stage_len += len;
            atomic_store_explicit(&c->cl_staged, c->cl_stage_len, memory_order_release);
            return 0;
        }
        rc = seg_pwrite(seg, c->cl_stage, len, (size_t)(phys % c->cl_seg_size));
        if (rc != 0)
            return rc;
    }
    atomic_store_explicit(&c->cl_written, phys + len, memory_order_release);
    return 0;
}

int
clog_write_staged(struct clog *c)
{
    uint64_t w = atomic_load_explicit(&c->cl_written, memory_order_relaxed);
    struct segment *seg = c->cl_active;
    int rc;

    if (c->cl_stage_len == 0)
        return 0;
    /* Staged bytes never cross a segment (clog_reserve writes them out
     * before a roll), so they all belong to the active segment. */
    if (seg == NULL || w < seg_base(seg) || w + c->cl_stage_len > seg_base(seg) + c->cl_seg_size)
        return -EIO;
    rc = seg_pwrite(seg, c->cl_stage, c->cl_stage_len, (size_t)(w % c->cl_seg_size));
    if (rc != 0)
        return rc;
    atomic_store_explicit(&c->cl_written, w + c->cl_stage_len, memory_order_release);
    c->cl_stage_len = 0;
    atomic_store_explicit(&c->cl_staged, 0, memory_order_release);
    return 0;
}

void
clog_set_defer(struct clog *c, int on)
{
    c->cl_defer = on && c->cl_use_pwrite;
}

size_t
clog_staged(const struct clog *c)
{
    return atomic_load_explicit(&c->cl_staged, memory_order_acquire);
}

int
clog_sync(struct clog *c, uint64_t from, uint64_t to)
{
    size_t ss = c->cl_seg_size;

    while (from < to) {
        struct segment *seg = clog_seg_at(c, from);
        uint64_t seg_end;
        int rc;

        if (seg == NULL)
            return -EIO;
        seg_end = seg_base(seg) + ss;
        size_t a = (size_t)(from - seg_base(seg));
        size_t b = (size_t)((to < seg_end ? to : seg_end) - seg_base(seg));
        rc = seg_sync(seg, a, b, c->cl_use_pwrite);
        seg_unref(seg);
        if (rc != 0)
            return rc;
        from = seg_base(seg) + b;
    }
    return 0;
}

int
clog_truncate(struct clog *c, uint64_t end, int zero_tail, uint64_t *zeroed)
{
    struct segment *seg;
    int rc = 0;

    *zeroed = 0;
    /* Delete every segment that starts after the end; a segment that
     * starts exactly at the end stays, emptied. */
    pthread_rwlock_wrlock(&c->cl_segs_lock);
    c->cl_active = NULL;
    while (c->cl_nsegs > 0 && seg_base(c->cl_segs[c->cl_nsegs - 1]) > end) {
        struct segment *last = c->cl_segs[--c->cl_nsegs];
        rc = seg_destroy(last);
        if (rc != 0)
            break;
    }
    seg = seg_at_locked(c, end);
    if (seg)
        seg_ref(seg);
    pthread_rwlock_unlock(&c->cl_segs_lock);
    if (rc != 0)
        goto done;

    if (seg != NULL && zero_tail) {
        /* Zero what lies beyond the cut so that no stale bytes can ever be
         * read as records again (STORE.md 16, point 1). */
        rc = seg_zero_tail(seg, (size_t)(end - seg_base(seg)), zeroed);
    }
done:
    if (seg != NULL)
        seg_unref(seg);
    atomic_store(&c->cl_written, end);
    return rc;
}

int
clog_find_valid_after(struct clog *c, uint64_t from, uint64_t *found)
{
    /* Both magics (V1 DA A3 20 A7, V2 DA A3 20 AB) share these 3 bytes. */
    static const uint8_t prefix[3] = {0xDA, 0xA3, 0x20};
    uint64_t end = clog_end_of_files(c), pos = from + 1;
    size_t ss = c->cl_seg_size, chunk = ss < (8u << 20) ? ss : (8u << 20);
    struct clog_reader *scan = NULL, *check = NULL;
    int rc = 0;

    /* Two readers: one streams through the data, the other reads whole
     * candidate records (which may be larger than what the first holds). */
    if (clog_reader_open(c, chunk, &scan) != 0 ||
        clog_reader_open(c, ss < (16u << 20) ? ss : (16u << 20), &check) != 0)
        goto out;
    while (pos < end && rc == 0) {
        struct segment *seg = clog_seg_at(c, pos);
        size_t start, a, b;
        uint64_t base;
        if (seg == NULL)
            break;
        base = seg_base(seg);
        start = (size_t)(pos - base);
        /* No readahead while searching: it would fill the page cache with
         * zero pages of never-written extents beyond each data region,
         * which SEEK_DATA then reports as data, and the search would crawl
         * through the whole segment. Advice only: errors are ignored. */
        (void)posix_fadvise(seg_fd(seg), 0, 0, POSIX_FADV_RANDOM);
        while (rc == 0 && seg_next_data(seg, start, &a, &b)) {
            if (a < start)
                a = start;
            clog_reader_limit(scan, base + b);
            /* A record's magic sits 4 bytes into it. */
            size_t i = a >= 4 ? a - 4 : 0;
            if (i < start)
                i = start;
            /* Stay inside [a, b): touching even one byte of the hole
             * after b makes the kernel read a large zero-filled range into
             * the page cache, which the next SEEK_DATA reports as data. A
             * record cannot run into a hole anyway: its bytes would have
             * made that range data. */
            while (i + 8 <= b) {
                const uint8_t *p;
                size_t avail;
                if (clog_reader_at(scan, base + i, 8, &p, &avail) != 0)
                    break;
                const uint8_t *h = memmem(p + 4, avail - 4, prefix, sizeof(prefix));
                if (h == NULL) {
                    if (avail <= 8)
                        break;
                    i += avail - 7; /* keep an overlap for a magic across chunks */
                    continue;
                }
                size_t at = i + (size_t)(h - p) - 4;
                const uint8_t *q;
                size_t qa;
                struct rec_view v;
                const char *why;
                clog_reader_limit(check, base + at + 8);
                if (clog_reader_at(check, base + at, 8, &q, &qa) == 0) {
                    uint32_t total = be_get32(q);
                    clog_reader_limit(check, base + at + total);
                    if ((q[7] == 0xA7 || q[7] == 0xAB) && total <= ss - at &&
                        clog_reader_at(check, base + at, total, &q, &qa) == 0 &&
                        rec_parse(q, qa, base + at, REC_CHECK_CRC, &v, &why) > 0) {
                        *found = base + at;
                        rc = 1;
                        break;
                    }
                }
                i = at + 1;
            }
            /* Readahead may still have filled the hole after b with zero
             * pages while we read up to it; drop them (they are clean and
             * hold nothing) so that SEEK_DATA sees the hole again. */
            (void)posix_fadvise(seg_fd(seg), (off_t)b, 64 << 20, POSIX_FADV_DONTNEED);
            start = b;
        }
        (void)posix_fadvise(seg_fd(seg), 0, 0, POSIX_FADV_NORMAL);
        pos = base + ss;
        seg_unref(seg);
    }
out:
    clog_reader_close(scan);
    clog_reader_close(check);
    return rc;
}

int
clog_delete_first(struct clog *c)
{
    struct segment *first;

    pthread_rwlock_wrlock(&c->cl_segs_lock);
    if (c->cl_nsegs < 2) {
        pthread_rwlock_unlock(&c->cl_segs_lock);
        return -EBUSY;
    }
    first = c->cl_segs[0];
    pthread_rwlock_unlock(&c->cl_segs_lock);
    /* The file goes first: if the unlink fails the segment stays listed
     * (and clog_min with it), so the clean-up does not go on to delete
     * the queue units of messages whose file is still on disk. Only the
     * clean thread deletes, so segs[0] is still <first> below. */
    int rc = seg_unlink(first);
    if (rc != 0 && access(seg_path(first), F_OK) == 0)
        return rc; /* still there: keep it */
    pthread_rwlock_wrlock(&c->cl_segs_lock);
    memmove(c->cl_segs, c->cl_segs + 1, (c->cl_nsegs - 1) * sizeof(*c->cl_segs));
    c->cl_nsegs--;
    pthread_rwlock_unlock(&c->cl_segs_lock);
    /* INV-3 of segment.h: readers holding views keep the mapping alive. */
    seg_unref(first);
    return rc;
}

int64_t
clog_first_mtime_ms(struct clog *c)
{
    struct stat st;
    int64_t t = -1;

    pthread_rwlock_rdlock(&c->cl_segs_lock);
    if (c->cl_nsegs > 0 && fstat(seg_fd(c->cl_segs[0]), &st) == 0)
        t = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    pthread_rwlock_unlock(&c->cl_segs_lock);
    return t;
}

struct clog_reader {
    struct clog *r_clog;
    uint8_t *r_buf;
    size_t r_cap;
    uint64_t r_off;   /* log offset of r_buf[0] */
    size_t r_len;     /* valid bytes in r_buf */
    uint64_t r_limit; /* refills stop here (0: at the segment end) */
};

void
clog_reader_limit(struct clog_reader *r, uint64_t limit)
{
    r->r_limit = limit;
}

int
clog_reader_open(struct clog *c, size_t cap, struct clog_reader **out)
{
    struct clog_reader *r = calloc(1, sizeof(*r));

    if (r == NULL || (r->r_buf = malloc(cap)) == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->r_clog = c;
    r->r_cap = cap;
    *out = r;
    return 0;
}

void
clog_reader_close(struct clog_reader *r)
{
    if (r == NULL)
        return;
    free(r->r_buf);
    free(r);
}

int
clog_reader_at(struct clog_reader *r, uint64_t off, size_t need, const uint8_t **p,
               size_t *avail)
{
    size_t ss = r->r_clog->cl_seg_size;
    uint64_t seg_end = off - off % ss + ss;
    size_t left = (size_t)(seg_end - off);

    if (need > left)
        need = left;
    if (need > r->r_cap)
        return SPK_ETOOBIG;
    if (!(off >= r->r_off && off + need <= r->r_off + r->r_len)) {
        struct segment *seg = clog_seg_at(r->r_clog, off);
        size_t n = left < r->r_cap ? left : r->r_cap;
        ssize_t got;

        /* Reading ahead past the limit would also fill the page cache with
         * zero pages of never-written extents, which SEEK_DATA then
         * reports as data (clog_find_valid_after). */
        if (r->r_limit != 0 && off + n > r->r_limit) {
            size_t to_limit = r->r_limit > off ? (size_t)(r->r_limit - off) : 0;
            n = to_limit > need ? to_limit : need;
        }

        if (seg == NULL)
            return -ENOENT;
        got = sio_pread(seg_fd(seg), r->r_buf, n, off - seg_base(seg));
        seg_unref(seg);
        if (got < 0)
            return (int)got;
        if ((size_t)got < need)
            return -EIO;
        r->r_off = off;
        r->r_len = (size_t)got;
    }
    *p = r->r_buf + (off - r->r_off);
    *avail = (size_t)(r->r_off + r->r_len - off);
    return 0;
}
