/*
 * segment.c - preallocated mapped files (see segment.h for invariants).
 */
#include "store/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/storeio.h"

struct segment {
    uint64_t sg_base;
    size_t sg_size;
    int sg_fd;
    uint8_t *sg_map;
    atomic_int sg_refs;
    char sg_path[PATH_MAX];
};

static int
seg_map(int fd, const char *path, uint64_t base, size_t size, int flags, struct segment **out)
{
    struct segment *seg = calloc(1, sizeof(*seg));
    void *map;
    int rc;

    if (seg == NULL)
        return -ENOMEM;
    rc = sio_mmap(fd, size, !(flags & SEG_READONLY), &map);
    if (rc != 0) {
        free(seg);
        return rc;
    }
    seg->sg_base = base;
    seg->sg_size = size;
    seg->sg_fd = fd;
    seg->sg_map = map;
    atomic_init(&seg->sg_refs, 1);
    snprintf(seg->sg_path, sizeof(seg->sg_path), "%s", path);
    *out = seg;
    return 0;
}

int
seg_create(const char *dir, uint64_t base, size_t size, int flags, struct segment **out)
{
    char path[PATH_MAX];
    int fd, rc;

    if (snprintf(path, sizeof(path), "%s/%020" PRIu64, dir, base) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    fd = sio_open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return fd;
    /* INV-1: reserve every block now; a sparse file turns ENOSPC into
     * SIGBUS at the first store into an unbacked page. With
     * SEG_RESERVE_LATER the owner reserves ranges as it fills them. */
    rc = (flags & SEG_RESERVE_LATER) ? sio_ftruncate(fd, size) : sio_fallocate(fd, size);
    /* The size must be durable too: a file system may keep the name (the
     * directory sync below) but lose a size never synced, and a short
     * segment other than the last is refused at the next open. */
    if (rc == 0)
        rc = sio_fsync(fd);
    if (rc != 0)
        goto fail;
    /* INV-2: the name must survive a crash before anything points into it. */
    rc = sio_dirsync(dir);
    if (rc != 0)
        goto fail;
    rc = seg_map(fd, path, base, size, flags, out);
    if (rc != 0)
        goto fail;
    if (flags & SEG_PREFAULT)
        seg_prefault(*out, 0, size);
    return 0;

fail:
    sio_close(fd);
    unlink(path);
    return rc;
}

int
seg_open(const char *path, uint64_t base, size_t size, int flags, struct segment **out)
{
    struct stat st;
    int fd, rc;

    fd = sio_open(path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    if (fstat(fd, &st) == -1) {
        rc = -errno;
        goto fail;
    }
    if ((uint64_t)st.st_size != size) {
        rc = -EINVAL;
        goto fail;
    }
    rc = seg_map(fd, path, base, size, flags, out);
    if (rc != 0)
        goto fail;
    return 0;

fail:
    sio_close(fd);
    return rc;
}

static void
populate(struct segment *seg, size_t from, size_t to, int advice)
{
    from &= ~(size_t)4095;
    if (to > seg->sg_size)
        to = seg->sg_size;
    if (from < to)
        (void)madvise(seg->sg_map + from, to - from, advice);
}

void
seg_prefault(struct segment *seg, size_t from, size_t to)
{
    /* A first-touch fault costs ~12 us per 4 KiB here (PERF.md 5.1); one
     * madvise populates a whole range for a fraction of that. Best effort:
     * a kernel without MADV_POPULATE_WRITE just faults later. */
    populate(seg, from, to, MADV_POPULATE_WRITE);
}

void
seg_prefault_read(struct segment *seg, size_t from, size_t to)
{
    populate(seg, from, to, MADV_POPULATE_READ);
}

void
seg_prefault_cache(struct segment *seg, size_t from, size_t to)
{
    /* Page cache only, no page-table entries: pages mapped into the
     * process would have to be write-protected (TLB shootdowns) each time
     * writeback cleans them. Advisory: an error only means the writer
     * fills the pages itself. */
    from &= ~(size_t)4095;
    if (to > seg->sg_size)
        to = seg->sg_size;
    if (from < to)
        (void)readahead(seg->sg_fd, (off_t)from, to - from);
}

void
seg_ref(struct segment *seg)
{
    atomic_fetch_add_explicit(&seg->sg_refs, 1, memory_order_relaxed);
}

void
seg_unref(struct segment *seg)
{
    if (seg == NULL)
        return;
    if (atomic_fetch_sub_explicit(&seg->sg_refs, 1, memory_order_acq_rel) != 1)
        return;
    sio_munmap(seg->sg_map, seg->sg_size);
    sio_close(seg->sg_fd);
    free(seg);
}

int
seg_unlink(struct segment *seg)
{
    int rc = sio_unlink(seg->sg_path);

    if (rc == 0)
        rc = sio_dirsync_parent(seg->sg_path);
    return rc;
}

int
seg_destroy(struct segment *seg)
{
    int rc = seg_unlink(seg);

    seg_unref(seg);
    return rc;
}

uint64_t
seg_base(const struct segment *seg)
{
    return seg->sg_base;
}

size_t
seg_size(const struct segment *seg)
{
    return seg->sg_size;
}

uint8_t *
seg_data(const struct segment *seg)
{
    return seg->sg_map;
}

int
seg_fd(const struct segment *seg)
{
    return seg->sg_fd;
}

const char *
seg_path(const struct segment *seg)
{
    return seg->sg_path;
}

int
seg_sync(struct segment *seg, size_t from, size_t to, int use_fdatasync)
{
    if (to <= from)
        return 0;
    if (use_fdatasync)
        return sio_fdatasync(seg->sg_fd);
    return sio_msync(seg->sg_map + from, to - from);
}

int
seg_reserve(struct segment *seg, size_t from, size_t to)
{
    if (to > seg->sg_size)
        to = seg->sg_size;
    if (from >= to)
        return 0;
    return sio_fallocate_range(seg->sg_fd, from, to - from);
}

int
seg_pwrite(struct segment *seg, const void *buf, size_t len, size_t pos)
{
    return sio_pwrite(seg->sg_fd, buf, len, pos);
}

/*
 * Next region of <seg> at or after <pos> that may hold bytes, as [*a, *b).
 * Unwritten extents of a preallocated file that are not in the page cache
 * read as zeros without being stored anywhere; SEEK_DATA skips them, so a
 * search over a mostly empty GiB segment does not allocate a GiB of page
 * cache. Falls back to the whole rest when the filesystem cannot say.
 * Returns 0 when nothing is left.
 */
int
seg_next_data(struct segment *seg, size_t pos, size_t *a, size_t *b)
{
    size_t ss = seg->sg_size;
    off_t d, h;

    if (pos >= ss)
        return 0;
    d = lseek(seg->sg_fd, (off_t)pos, SEEK_DATA);
    if (d == -1) {
        if (errno == ENXIO)
            return 0;
        *a = pos;
        *b = ss;
        return 1;
    }
    h = lseek(seg->sg_fd, d, SEEK_HOLE);
    *a = (size_t)d;
    *b = h == -1 || (size_t)h > ss ? ss : (size_t)h;
    return *a < *b;
}

/* Position just past the last non-zero byte of p[from, to), or <from>. */
static size_t
last_nonzero(const uint8_t *p, size_t from, size_t to)
{
    while (to > from && (to & 7) != 0 && p[to - 1] == 0)
        to--;
    while (to >= from + 8) {
        uint64_t w;
        memcpy(&w, p + to - 8, 8);
        if (w != 0)
            break;
        to -= 8;
    }
    while (to > from && p[to - 1] == 0)
        to--;
    return to;
}

int
seg_zero_tail(struct segment *seg, size_t pos, uint64_t *zeroed)
{
    static const uint8_t zeros[65536];
    size_t last = pos, a, b, at = pos;
    uint8_t *buf = malloc(sizeof(zeros));
    int rc = 0;

    *zeroed = 0;
    if (buf == NULL)
        return -ENOMEM;
    /* Read with pread over the data regions only, not through the mapping:
     * faulting a mostly empty segment in page by page is slow here, and
     * reading holes would fill the page cache with zeros. */
    while (rc == 0 && seg_next_data(seg, at, &a, &b)) {
        if (a < pos)
            a = pos;
        for (size_t o = a; o < b; o += sizeof(zeros)) {
            size_t n = b - o < sizeof(zeros) ? b - o : sizeof(zeros);
            ssize_t got = sio_pread(seg->sg_fd, buf, n, o);
            if (got < 0) {
                rc = (int)got;
                break;
            }
            size_t l = last_nonzero(buf, 0, (size_t)got);
            if (l > 0)
                last = o + l;
        }
        at = b;
    }
    free(buf);
    /* pwrite, not stores into the mapping: a range without blocks then
     * fails with ENOSPC instead of SIGBUS (INV-1). */
    for (size_t o = pos; rc == 0 && o < last; o += sizeof(zeros)) {
        size_t n = last - o < sizeof(zeros) ? last - o : sizeof(zeros);
        rc = sio_pwrite(seg->sg_fd, zeros, n, o);
    }
    if (rc == 0 && last > pos) {
        rc = sio_fdatasync(seg->sg_fd);
        *zeroed = last - pos;
    }
    return rc;
}

int
seg_parse_name(const char *name, uint64_t *base)
{
    uint64_t v = 0;

    if (strlen(name) != 20)
        return -EINVAL;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -EINVAL;
        if (v > (UINT64_MAX - 9) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *base = v;
    return 0;
}
