/*
 * indexfile.c - RocketMQ IndexFiles: on-disk hash tables from message key
 * to commit-log offset (STORE.md section 4; the API is in indexfile.h).
 *
 * Format of one file, all integers big-endian, for S = slot_num and
 * N = index_num (RocketMQ: 5 000 000 and 20 000 000, 420 000 040 bytes):
 *
 *   byte 0        header, 40 bytes:
 *                   0 beginTimestamp i64   store ms of the first entry
 *                   8 endTimestamp   i64   store ms of the last entry
 *                  16 beginPhyOffset i64
 *                  24 endPhyOffset   i64   the last record indexed
 *                  32 hashSlotCount  i32   slots in use
 *                  36 indexCount     i32   next entry number; starts at 1
 *   byte 40       S slots, i32: the newest entry of the bucket, 0 = empty
 *   byte 40+4S    N entries, 20 bytes each (entry 0 is never used):
 *                   0 keyHash   i32   abs(javaHash("topic#key")), INT_MIN -> 0
 *                   4 phyOffset i64
 *                  12 timeDiff  i32   seconds after beginTimestamp
 *                  16 prev      i32   the bucket's previous entry, 0 = none
 *
 * A key's bucket is keyHash % S. A file is named by its creation time in
 * local time, yyyyMMddHHmmssSSS, and files are ordered by name.
 *
 * Invariants (INV-1..4 are what ix_check verifies on disk):
 *   INV-1  1 <= indexCount <= N; entries 1..indexCount-1 are in use.
 *   INV-2  Every slot head is below indexCount and every prev is below the
 *          number of the entry holding it, and both name an entry of the
 *          same bucket: chains strictly descend, so a walk always ends even
 *          on a corrupt file (queries rely on "prev < current", which is
 *          stricter than RocketMQ's "prev != current" and equal on any file
 *          a correct writer produced).
 *   INV-3  hashSlotCount equals the number of non-zero slots: a slot goes
 *          from 0 to non-zero once and never back.
 *   INV-4  Entries are appended in commit-log order, so every phyOffset
 *          lies in [beginPhyOffset, endPhyOffset].
 *   INV-5  A record is indexed entirely or not at all: ix_put creates every
 *          file the record needs before it writes a key. Hence the newest
 *          endPhyOffset is a fully indexed record, and re-dispatch from it
 *          skips it (dedupe with "<=", where RocketMQ's "<" indexes the
 *          boundary record twice after every recovery).
 *   INV-6  Names increase in creation order even when the clock steps
 *          back (a name at or before the newest one is bumped past it), so
 *          the sorted listing is the creation order.
 *   INV-7  A file leaves the list only under the write lock. Its mapping
 *          stays alive while an ix_flush that pinned it is still in msync
 *          (if_refs), so deletion never pulls pages from under a sync.
 *
 * Crash rule: within a put the order is entry, slot, header (as RocketMQ),
 * but pages reach disk in any order. A file is trusted after a crash only
 * if nothing touched it since the last successful ix_flush: ix_recover
 * drops the rest and the caller rebuilds them by re-dispatch.
 *
 * Locking: one rwlock, writer-preferring so a steady stream of lookups
 * cannot starve the dispatcher. Writers (put, recover, delete, the flush
 * snapshot) hold it exclusively; lookups, walk and check share it. A
 * separate mutex serialises ix_flush: two overlapping flushes would let
 * the second see clean flags while the first is still syncing and claim
 * durability early.
 */
#include "store/indexfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "common/jhash.h"
#include "store/storeio.h"

#define IX_HEADER_SIZE 40u
#define IX_SLOT_SIZE 4u
#define IX_ENTRY_SIZE 20u
#define IX_NAME_LEN 17
#define IX_KEY_STACK 256 /* "topic#key" up to this size is built on the stack */
#define IX_NAME_TRIES 1000

struct ix_file {
    char if_name[IX_NAME_LEN + 1];
    uint8_t *if_base;        /* shared writable mapping of the whole file */
    unsigned if_refs;        /* the list's reference + pinning flushes (INV-7) */
    int if_dirty;            /* written since the last flush snapshot */
    struct ix_header if_hdr; /* write-through copy of the on-disk header */
};

struct ixsvc {
    pthread_rwlock_t ix_lock;
    pthread_mutex_t ix_flush_lock; /* serialises ix_flush; guards ix_flush_err */
    char *ix_dir;
    uint32_t ix_slot_num;
    uint32_t ix_index_num;
    size_t ix_file_size;
    struct ix_file **ix_files; /* oldest first; capacity ix_cap */
    size_t ix_nfiles;
    size_t ix_cap;
    int ix_flush_err; /* sticky msync failure, 0 if none */
};

/* "topic#" once, then each key copied after it. */
struct ix_keybuf {
    char kb_stack[IX_KEY_STACK];
    char *kb_buf;
    size_t kb_prefix;
};

/* ---- helpers: header, entries, hashing ---------------------------------- */

static void
hdr_decode(const uint8_t *p, struct ix_header *h)
{
    h->begin_ts = (int64_t)be_get64(p);
    h->end_ts = (int64_t)be_get64(p + 8);
    h->begin_phys = be_get64(p + 16);
    h->end_phys = be_get64(p + 24);
    h->slot_count = (int32_t)be_get32(p + 32);
    h->index_count = (int32_t)be_get32(p + 36);
}

static void
hdr_store(struct ix_file *f)
{
    const struct ix_header *h = &f->if_hdr;
    uint8_t *p = f->if_base;

    be_put64(p, (uint64_t)h->begin_ts);
    be_put64(p + 8, (uint64_t)h->end_ts);
    be_put64(p + 16, h->begin_phys);
    be_put64(p + 24, h->end_phys);
    be_put32(p + 32, (uint32_t)h->slot_count);
    be_put32(p + 36, (uint32_t)h->index_count);
}

/* The reason a header cannot be trusted, or NULL when it is sane. */
static const char *
hdr_problem(const struct ixsvc *ix, const struct ix_header *h)
{
    if (h->index_count <= 0 || (uint32_t)h->index_count > ix->ix_index_num)
        return "indexCount out of range";
    if (h->slot_count < 0 || (uint32_t)h->slot_count > ix->ix_slot_num)
        return "hashSlotCount out of range";
    if (h->index_count > 1 && h->begin_phys > h->end_phys)
        return "beginPhyOffset after endPhyOffset";
    if (h->index_count > 1 && h->begin_ts > h->end_ts)
        return "beginTimestamp after endTimestamp";
    return NULL;
}

static size_t
slot_pos(uint32_t slot)
{
    return IX_HEADER_SIZE + (size_t)slot * IX_SLOT_SIZE;
}

static size_t
entry_pos(const struct ixsvc *ix, uint32_t n)
{
    return IX_HEADER_SIZE + (size_t)ix->ix_slot_num * IX_SLOT_SIZE + (size_t)n * IX_ENTRY_SIZE;
}

static uint32_t
bucket_of(const struct ixsvc *ix, int32_t key_hash)
{
    return (uint32_t)key_hash % ix->ix_slot_num;
}

/* RocketMQ's indexKeyHashMethod: abs(hashCode), with INT_MIN mapped to 0. */
static int32_t
key_hash(const char *key, size_t len)
{
    int32_t h = spk_java_hash(key, len);

    if (h == INT32_MIN)
        return 0;
    return h < 0 ? -h : h;
}

/*
 * The timeDiff of an entry stored at <store_ts> in a file that began at
 * <begin_ts> (RocketMQ putKey): whole seconds, truncated toward zero, 0
 * when the file has no begin time yet, clamped to [0, INT32_MAX].
 */
static int32_t
time_diff(int64_t begin_ts, int64_t store_ts)
{
    int64_t d;

    if (begin_ts <= 0)
        return 0;
    if (__builtin_sub_overflow(store_ts, begin_ts, &d))
        return store_ts > begin_ts ? INT32_MAX : 0;
    d /= 1000;
    if (d > INT32_MAX)
        return INT32_MAX;
    return d < 0 ? 0 : (int32_t)d;
}

/* beginTimestamp + timeDiff*1000, saturating instead of overflowing on a
 * corrupt header. */
static int64_t
entry_time(int64_t begin_ts, int32_t diff)
{
    int64_t t;

    if (__builtin_add_overflow(begin_ts, (int64_t)diff * 1000, &t))
        return INT64_MAX;
    return t;
}

static int
keybuf_init(struct ix_keybuf *kb, const char *topic, size_t topic_len, size_t max_key_len)
{
    size_t need;

    if (topic_len > SIZE_MAX - 1 - max_key_len)
        return -ENOMEM;
    need = topic_len + 1 + max_key_len;
    if (need <= sizeof(kb->kb_stack)) {
        kb->kb_buf = kb->kb_stack;
    } else {
        kb->kb_buf = malloc(need);
        if (kb->kb_buf == NULL)
            return -ENOMEM;
    }
    if (topic_len > 0)
        memcpy(kb->kb_buf, topic, topic_len);
    kb->kb_buf[topic_len] = '#';
    kb->kb_prefix = topic_len + 1;
    return 0;
}

/* keyHash of "topic#key"; <key_len> is at most the max_key_len given to
 * keybuf_init. */
static int32_t
keybuf_hash(struct ix_keybuf *kb, const char *key, size_t key_len)
{
    if (key_len > 0)
        memcpy(kb->kb_buf + kb->kb_prefix, key, key_len);
    return key_hash(kb->kb_buf, kb->kb_prefix + key_len);
}

static void
keybuf_free(struct ix_keybuf *kb)
{
    if (kb->kb_buf != kb->kb_stack)
        free(kb->kb_buf);
}

/*
 * The next non-empty piece of <keys>[*pos..len) split on single spaces, as
 * RocketMQ's KEYS.split(" ") followed by its length > 0 test. Returns 1 and
 * the piece, or 0 at the end.
 */
static int
next_key(const char *keys, size_t len, size_t *pos, const char **piece, size_t *piece_len)
{
    size_t i = *pos, start;

    while (i < len && keys[i] == ' ')
        i++;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    start = i;
    while (i < len && keys[i] != ' ')
        i++;
    *piece = keys + start;
    *piece_len = i - start;
    *pos = i;
    return 1;
}

static int
file_path(const struct ixsvc *ix, const char *name, char *path, size_t size)
{
    int n = snprintf(path, size, "%s/%s", ix->ix_dir, name);

    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* ---- file names ---------------------------------------------------------- */

static int
is_ix_name(const char *name)
{
    int i;

    for (i = 0; i < IX_NAME_LEN; i++)
        if (name[i] < '0' || name[i] > '9')
            return 0;
    return name[IX_NAME_LEN] == '\0';
}

static int
name_format(const struct tm *tm, long ms, char out[IX_NAME_LEN + 1])
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%04d%02d%02d%02d%02d%02d%03ld", tm->tm_year + 1900,
                     tm->tm_mon + 1, tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, ms);

    /* Years past 9999 or before 0 do not fit RocketMQ's pattern. */
    if (n != IX_NAME_LEN)
        return -EOVERFLOW;
    memcpy(out, buf, IX_NAME_LEN + 1);
    return 0;
}

/* The current local time as yyyyMMddHHmmssSSS (RocketMQ's UtilAll.timeMillisToHumanString). */
static int
name_now(char out[IX_NAME_LEN + 1])
{
    struct timespec ts;
    struct tm tm;

    if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
        return -errno;
    if (localtime_r(&ts.tv_sec, &tm) == NULL)
        return -EOVERFLOW;
    return name_format(&tm, ts.tv_nsec / 1000000, out);
}

static int
digits(const char *p, int n)
{
    int v = 0;

    while (n-- > 0)
        v = v * 10 + (*p++ - '0');
    return v;
}

/*
 * <in> plus one millisecond. The fields are only calendar arithmetic here,
 * so they are normalised as UTC: local-time normalisation would skip or
 * repeat an hour at a DST change.
 */
static int
name_bump(const char *in, char out[IX_NAME_LEN + 1])
{
    struct tm tm;
    time_t t;
    long ms;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = digits(in, 4) - 1900;
    tm.tm_mon = digits(in + 4, 2) - 1;
    tm.tm_mday = digits(in + 6, 2);
    tm.tm_hour = digits(in + 8, 2);
    tm.tm_min = digits(in + 10, 2);
    tm.tm_sec = digits(in + 12, 2);
    ms = digits(in + 14, 3) + 1;
    if (ms >= 1000) {
        ms -= 1000;
        tm.tm_sec++;
    }
    t = timegm(&tm);
    if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL)
        return -EOVERFLOW;
    return name_format(&tm, ms, out);
}

/* A name for a file created now that sorts after <after> (INV-6). */
static int
name_next(const char *after, char out[IX_NAME_LEN + 1])
{
    int rc = name_now(out);

    if (rc != 0)
        return rc;
    if (after != NULL && strcmp(out, after) <= 0)
        rc = name_bump(after, out);
    return rc;
}

/* ---- files --------------------------------------------------------------- */

/* Drops one reference; the last one unmaps. Caller holds the write lock
 * (or is ix_close/ix_open with no other user). */
static void
file_unref(struct ixsvc *ix, struct ix_file *f)
{
    if (--f->if_refs > 0)
        return;
    /* munmap fails only for a bad range, which would be our bug. */
    (void)sio_munmap(f->if_base, ix->ix_file_size);
    free(f);
}

/*
 * Creates <dir>/<name> at full size and maps it. The header is left zero:
 * it is written when the file becomes the newest (file_activate), so a
 * file that never got there reads as corrupt (indexCount 0) and is dropped
 * at the next open instead of posing as an empty index. Returns -EEXIST
 * when the name is taken.
 */
static int
file_create(struct ixsvc *ix, const char *name, struct ix_file **out)
{
    char path[PATH_MAX];
    struct ix_file *f;
    void *base = NULL;
    int fd = -1, rc;

    rc = file_path(ix, name, path, sizeof(path));
    if (rc != 0)
        return rc;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    fd = sio_open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        rc = fd;
        goto fail_free;
    }
    /* Reserve every block now: in a sparse file ENOSPC would surface as
     * SIGBUS at the first store into an unbacked page of the mapping. */
    rc = sio_fallocate(fd, ix->ix_file_size);
    if (rc != 0)
        goto fail;
    rc = sio_mmap(fd, ix->ix_file_size, 1, &base);
    if (rc != 0)
        goto fail;
    /* The mapping keeps the file; the descriptor is not needed again. */
    rc = sio_close(fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    /* The name must survive a crash before any header points past it;
     * its size becomes durable with the first msync of the data. */
    rc = sio_dirsync(ix->ix_dir);
    if (rc != 0)
        goto fail;

    memcpy(f->if_name, name, IX_NAME_LEN + 1);
    f->if_base = base;
    f->if_refs = 1;
    *out = f;
    return 0;

fail:
    if (base != NULL)
        (void)sio_munmap(base, ix->ix_file_size);
    if (fd >= 0)
        (void)sio_close(fd);
    /* Best effort: a leftover has a zero header and is dropped on open. */
    (void)sio_unlink(path);
fail_free:
    free(f);
    return rc;
}

/*
 * Makes a created file the newest: indexCount 1 and, when a file came
 * before it, RocketMQ's seeding of begin and end with that file's end
 * (section 4.3 quirk; the constructor copies only positive values).
 */
static void
file_activate(struct ix_file *f, const struct ix_file *prev)
{
    struct ix_header *h = &f->if_hdr;

    memset(h, 0, sizeof(*h));
    h->index_count = 1;
    if (prev != NULL && prev->if_hdr.end_phys > 0 && prev->if_hdr.end_phys <= INT64_MAX) {
        h->begin_phys = prev->if_hdr.end_phys;
        h->end_phys = prev->if_hdr.end_phys;
    }
    if (prev != NULL && prev->if_hdr.end_ts > 0) {
        h->begin_ts = prev->if_hdr.end_ts;
        h->end_ts = prev->if_hdr.end_ts;
    }
    hdr_store(f);
    f->if_dirty = 1;
}

/*
 * Maps an existing file. Returns SPK_ECORRUPT for a wrong size or an
 * insane header, which the caller treats as "drop from here on".
 */
static int
file_load(struct ixsvc *ix, const char *name, struct ix_file **out)
{
    char path[PATH_MAX];
    struct ix_file *f;
    struct stat st;
    void *base = NULL;
    int fd = -1, rc;

    rc = file_path(ix, name, path, sizeof(path));
    if (rc != 0)
        return rc;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    fd = sio_open(path, O_RDWR, 0);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
    if (fstat(fd, &st) == -1) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != ix->ix_file_size) {
        rc = SPK_ECORRUPT;
        goto fail;
    }
    rc = sio_mmap(fd, ix->ix_file_size, 1, &base);
    if (rc != 0)
        goto fail;
    rc = sio_close(fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    hdr_decode(base, &f->if_hdr);
    if (hdr_problem(ix, &f->if_hdr) != NULL) {
        rc = SPK_ECORRUPT;
        goto fail;
    }
    memcpy(f->if_name, name, IX_NAME_LEN + 1);
    f->if_base = base;
    f->if_refs = 1;
    *out = f;
    return 0;

fail:
    if (base != NULL)
        (void)sio_munmap(base, ix->ix_file_size);
    if (fd >= 0)
        (void)sio_close(fd);
    free(f);
    return rc;
}

/* Unlinks the file at list index <i> and removes it from the list. The
 * caller holds the write lock and syncs the directory afterwards. */
static int
file_delete(struct ixsvc *ix, size_t i)
{
    char path[PATH_MAX];
    struct ix_file *f = ix->ix_files[i];
    int rc;

    rc = file_path(ix, f->if_name, path, sizeof(path));
    if (rc == 0)
        rc = sio_unlink(path);
    if (rc != 0)
        return rc;
    memmove(ix->ix_files + i, ix->ix_files + i + 1,
            (ix->ix_nfiles - i - 1) * sizeof(*ix->ix_files));
    ix->ix_nfiles--;
    file_unref(ix, f);
    return 0;
}

/* Grows the list so that it can hold <want> files. */
static int
list_reserve(struct ixsvc *ix, size_t want)
{
    struct ix_file **p;
    size_t cap = ix->ix_cap ? ix->ix_cap : 8;

    if (want <= ix->ix_cap)
        return 0;
    while (cap < want) {
        if (cap > SIZE_MAX / 2 / sizeof(*p))
            return -ENOMEM;
        cap *= 2;
    }
    p = realloc(ix->ix_files, cap * sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    ix->ix_files = p;
    ix->ix_cap = cap;
    return 0;
}

/*
 * Writes one key into <f>, which has room (RocketMQ putKey, section 4.3).
 * Caller holds the write lock.
 */
static void
file_put_key(struct ixsvc *ix, struct ix_file *f, int32_t h, uint64_t phys_off, int64_t store_ts)
{
    struct ix_header *hd = &f->if_hdr;
    uint8_t *slot = f->if_base + slot_pos(bucket_of(ix, h));
    uint8_t *e = f->if_base + entry_pos(ix, (uint32_t)hd->index_count);
    int32_t head = (int32_t)be_get32(slot);

    /* A head at or past indexCount is a torn write from before a crash;
     * chaining to it would make a loop (INV-2). */
    if (head <= 0 || head >= hd->index_count)
        head = 0;
    be_put32(e, (uint32_t)h);
    be_put64(e + 4, phys_off);
    be_put32(e + 12, (uint32_t)time_diff(hd->begin_ts, store_ts));
    be_put32(e + 16, (uint32_t)head);
    be_put32(slot, (uint32_t)hd->index_count);
    if (hd->index_count <= 1) {
        hd->begin_phys = phys_off;
        hd->begin_ts = store_ts;
    }
    if (head == 0)
        hd->slot_count++;
    hd->index_count++;
    hd->end_phys = phys_off;
    hd->end_ts = store_ts;
    hdr_store(f);
    f->if_dirty = 1;
}

/*
 * RocketMQ selectPhyOffset: appends to offs[n..max) the matches for <h> in
 * <f> and returns the new count. Caller holds the lock (either mode).
 */
static size_t
file_select(const struct ixsvc *ix, const struct ix_file *f, int32_t h, size_t max,
            int64_t begin_ms, int64_t end_ms, uint64_t *offs, size_t n)
{
    const struct ix_header *hd = &f->if_hdr;
    int32_t cur = (int32_t)be_get32(f->if_base + slot_pos(bucket_of(ix, h)));

    if (cur <= 0 || cur >= hd->index_count || hd->index_count <= 1)
        return n;
    while (n < max) {
        const uint8_t *e = f->if_base + entry_pos(ix, (uint32_t)cur);
        int32_t e_hash = (int32_t)be_get32(e);
        int32_t diff = (int32_t)be_get32(e + 12);
        int32_t prev = (int32_t)be_get32(e + 16);
        int64_t t;

        if (diff < 0)
            break;
        t = entry_time(hd->begin_ts, diff);
        if (e_hash == h && t >= begin_ms && t <= end_ms)
            offs[n++] = be_get64(e + 4);
        /* prev >= cur covers RocketMQ's prev == cur and prev > indexCount,
         * and guarantees the walk ends (INV-2). */
        if (prev <= 0 || prev >= cur || t < begin_ms)
            break;
        cur = prev;
    }
    return n;
}

/* RocketMQ isTimeMatched, kept literally (it differs from a plain overlap
 * test only for begin > end). */
static int
time_matched(const struct ix_header *h, int64_t begin_ms, int64_t end_ms)
{
    return (begin_ms < h->begin_ts && end_ms > h->end_ts) ||
           (begin_ms >= h->begin_ts && begin_ms <= h->end_ts) ||
           (end_ms >= h->begin_ts && end_ms <= h->end_ts);
}

/*
 * Whether the newest file has already indexed the record at its
 * endPhyOffset: yes once it holds an entry, or when it was seeded from a
 * previous file (whose last record that was).
 */
static int
end_is_indexed(const struct ix_file *f)
{
    return f->if_hdr.index_count > 1 || f->if_hdr.end_phys > 0 || f->if_hdr.end_ts > 0;
}

/* A slot table that shows a write the header does not (a head at or past
 * indexCount, or more used slots than hashSlotCount): the file was torn. */
static int
slots_torn(const struct ixsvc *ix, const struct ix_file *f)
{
    uint32_t s, used = 0;

    for (s = 0; s < ix->ix_slot_num; s++) {
        int32_t head = (int32_t)be_get32(f->if_base + slot_pos(s));

        if (head < 0 || head >= f->if_hdr.index_count)
            return 1;
        used += head != 0;
    }
    return used != (uint32_t)f->if_hdr.slot_count;
}

static void
svc_free(struct ixsvc *ix)
{
    size_t i;

    for (i = 0; i < ix->ix_nfiles; i++)
        file_unref(ix, ix->ix_files[i]);
    free(ix->ix_files);
    free(ix->ix_dir);
    pthread_mutex_destroy(&ix->ix_flush_lock);
    pthread_rwlock_destroy(&ix->ix_lock);
    free(ix);
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/*
 * Lists the file names of <dir> that look like index files, sorted. On
 * success *names is a new array of *n names the caller frees.
 */
static int
list_names(const char *dir, char (**names)[IX_NAME_LEN + 1], size_t *n)
{
    char(*v)[IX_NAME_LEN + 1] = NULL, (*p)[IX_NAME_LEN + 1];
    size_t count = 0, cap = 0;
    struct dirent *de;
    DIR *d;
    int rc = 0;

    d = opendir(dir);
    if (d == NULL)
        return -errno;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            rc = -errno;
            break;
        }
        if (strlen(de->d_name) != IX_NAME_LEN || !is_ix_name(de->d_name))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            p = realloc(v, cap * sizeof(*v));
            if (p == NULL) {
                rc = -ENOMEM;
                break;
            }
            v = p;
        }
        memcpy(v[count++], de->d_name, IX_NAME_LEN + 1);
    }
    (void)closedir(d);
    if (rc != 0)
        goto fail;
    if (count > 0)
        qsort(v, count, sizeof(*v), name_cmp);
    *names = v;
    *n = count;
    return 0;

fail:
    free(v);
    return rc;
}

/* ---- API ----------------------------------------------------------------- */

int
ix_open(const char *dir, uint32_t slot_num, uint32_t index_num, struct ixsvc **out,
        unsigned *dropped)
{
    char(*names)[IX_NAME_LEN + 1] = NULL;
    char path[PATH_MAX];
    pthread_rwlockattr_t attr;
    struct ixsvc *ix = NULL;
    struct ix_file *f = NULL;
    size_t n = 0, i, j;
    uint64_t size;
    int rc;

    /* indexCount and the slot heads are int32 on disk; a file must hold at
     * least one entry besides the unused entry 0. */
    if (slot_num == 0 || slot_num > INT32_MAX || index_num < 2 || index_num > INT32_MAX)
        return SPK_ECONFIG;
    size = IX_HEADER_SIZE + (uint64_t)slot_num * IX_SLOT_SIZE + (uint64_t)index_num * IX_ENTRY_SIZE;
    if (size > SIZE_MAX || size > INT64_MAX)
        return SPK_ECONFIG;

    ix = calloc(1, sizeof(*ix));
    if (ix == NULL)
        return -ENOMEM;
    ix->ix_slot_num = slot_num;
    ix->ix_index_num = index_num;
    ix->ix_file_size = (size_t)size;
    /* Writer preference: glibc's default lets a steady stream of readers
     * starve the dispatcher's write lock. */
    if (pthread_rwlockattr_init(&attr) != 0) {
        free(ix);
        return -ENOMEM;
    }
    (void)pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = -pthread_rwlock_init(&ix->ix_lock, &attr);
    (void)pthread_rwlockattr_destroy(&attr);
    if (rc != 0) {
        free(ix);
        return rc;
    }
    rc = -pthread_mutex_init(&ix->ix_flush_lock, NULL);
    if (rc != 0) {
        pthread_rwlock_destroy(&ix->ix_lock);
        free(ix);
        return rc;
    }
    /* From here on svc_free releases everything acquired. */
    ix->ix_dir = strdup(dir);
    if (ix->ix_dir == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = sio_mkdirs(dir);
    if (rc != 0)
        goto fail;
    rc = list_names(dir, &names, &n);
    if (rc != 0)
        goto fail;
    rc = list_reserve(ix, n);
    if (rc != 0)
        goto fail;

    for (i = 0; i < n; i++) {
        rc = file_load(ix, names[i], &f);
        if (rc == SPK_ECORRUPT)
            break;
        if (rc != 0)
            goto fail;
        ix->ix_files[ix->ix_nfiles++] = f;
    }
    /* Files after a corrupt one were indexed against a state that no
     * longer exists (their seeds, the dedupe watermark); the caller
     * rebuilds all of them by re-dispatching from ix_end_phys(). */
    for (j = i; j < n; j++) {
        rc = file_path(ix, names[j], path, sizeof(path));
        if (rc == 0)
            rc = sio_unlink(path);
        if (rc != 0)
            goto fail;
    }
    if (i < n) {
        rc = sio_dirsync(dir);
        if (rc != 0)
            goto fail;
    }
    free(names);
    *out = ix;
    if (dropped != NULL)
        *dropped = (unsigned)(n - i);
    return 0;

fail:
    free(names);
    svc_free(ix);
    return rc;
}

void
ix_close(struct ixsvc *ix)
{
    if (ix != NULL)
        svc_free(ix);
}

int
ix_put(struct ixsvc *ix, const char *topic, size_t topic_len, const char *uniq_key, size_t uniq_len,
       const char *keys, size_t keys_len, uint64_t phys_off, int64_t store_ts)
{
    struct ix_keybuf kb;
    struct ix_file *newest, *f = NULL;
    const char *piece = NULL;
    size_t nkeys = 0, room, need = 0, staged = 0, pos, piece_len = 0, i;
    char name[IX_NAME_LEN + 1];
    const char *after;
    int have_uniq = uniq_key != NULL && uniq_len > 0;
    int kb_live = 0, rc = 0, tries;

    if (keys == NULL)
        keys_len = 0;
    pos = 0;
    while (next_key(keys, keys_len, &pos, &piece, &piece_len))
        nkeys++;
    nkeys += (size_t)have_uniq;
    if (nkeys == 0)
        return 0;

    (void)pthread_rwlock_wrlock(&ix->ix_lock);
    newest = ix->ix_nfiles > 0 ? ix->ix_files[ix->ix_nfiles - 1] : NULL;
    if (newest != NULL && (phys_off < newest->if_hdr.end_phys ||
                           (phys_off == newest->if_hdr.end_phys && end_is_indexed(newest))))
        goto out; /* already indexed: re-dispatch after recovery (INV-5) */

    /* INV-5: take every resource the record needs before writing a key. */
    rc = keybuf_init(&kb, topic, topic_len, uniq_len > keys_len ? uniq_len : keys_len);
    if (rc != 0)
        goto out;
    kb_live = 1;
    room = newest != NULL ? ix->ix_index_num - (uint32_t)newest->if_hdr.index_count : 0;
    if (nkeys > room)
        need = (nkeys - room + ix->ix_index_num - 2) / (ix->ix_index_num - 1);
    rc = list_reserve(ix, ix->ix_nfiles + need);
    if (rc != 0)
        goto out;
    after = newest != NULL ? newest->if_name : NULL;
    for (staged = 0; staged < need; staged++) {
        /* A taken name (a leftover, another clock) moves on by 1 ms. */
        rc = name_next(after, name);
        for (tries = 1; rc == 0; tries++) {
            rc = file_create(ix, name, &f);
            if (rc != -EEXIST || tries >= IX_NAME_TRIES)
                break;
            rc = name_bump(name, name);
        }
        if (rc != 0)
            goto fail;
        /* Staged past ix_nfiles: invisible until activated below. */
        ix->ix_files[ix->ix_nfiles + staged] = f;
        after = f->if_name;
    }

    /* From here nothing can fail. */
    pos = 0;
    for (i = 0; i < nkeys; i++) {
        int32_t h;

        if (i == 0 && have_uniq) {
            h = keybuf_hash(&kb, uniq_key, uniq_len);
        } else {
            (void)next_key(keys, keys_len, &pos, &piece, &piece_len);
            h = keybuf_hash(&kb, piece, piece_len);
        }
        if (newest == NULL || (uint32_t)newest->if_hdr.index_count >= ix->ix_index_num) {
            f = ix->ix_files[ix->ix_nfiles];
            file_activate(f, newest);
            ix->ix_nfiles++;
            newest = f;
        }
        file_put_key(ix, newest, h, phys_off, store_ts);
    }
    goto out;

fail:
    /* Undo the staged files; leftovers have a zero header (file_create). */
    while (staged > 0) {
        char path[PATH_MAX];

        f = ix->ix_files[ix->ix_nfiles + --staged];
        if (file_path(ix, f->if_name, path, sizeof(path)) == 0)
            (void)sio_unlink(path);
        file_unref(ix, f);
    }
out:
    (void)pthread_rwlock_unlock(&ix->ix_lock);
    if (kb_live)
        keybuf_free(&kb);
    return rc;
}

int
ix_query(struct ixsvc *ix, const char *topic, size_t topic_len, const char *key, size_t key_len,
         uint32_t max_num, int64_t begin_ms, int64_t end_ms, uint64_t *offs, size_t *n)
{
    struct ix_keybuf kb;
    size_t max = max_num < IX_MAX_QUERY ? max_num : IX_MAX_QUERY, found = 0, i;
    int32_t h;
    int rc;

    rc = keybuf_init(&kb, topic, topic_len, key_len);
    if (rc != 0)
        return rc;
    h = keybuf_hash(&kb, key, key_len);
    keybuf_free(&kb);

    (void)pthread_rwlock_rdlock(&ix->ix_lock);
    for (i = ix->ix_nfiles; i > 0; i--) {
        const struct ix_file *f = ix->ix_files[i - 1];

        if (time_matched(&f->if_hdr, begin_ms, end_ms))
            found = file_select(ix, f, h, max, begin_ms, end_ms, offs, found);
        /* Older files hold only older entries. */
        if (f->if_hdr.begin_ts < begin_ms || found >= max)
            break;
    }
    (void)pthread_rwlock_unlock(&ix->ix_lock);
    *n = found;
    return 0;
}

int
ix_flush(struct ixsvc *ix, uint64_t *durable_end)
{
    struct ix_file **pinned = NULL;
    size_t npinned = 0, i;
    uint64_t end = 0;
    int rc = 0;

    (void)pthread_mutex_lock(&ix->ix_flush_lock);
    if (ix->ix_flush_err != 0) {
        rc = ix->ix_flush_err;
        goto out;
    }

    /* Snapshot under the write lock, so it falls between two records:
     * every change up to <end> is in the page cache before the msyncs. */
    (void)pthread_rwlock_wrlock(&ix->ix_lock);
    if (ix->ix_nfiles > 0) {
        pinned = malloc(ix->ix_nfiles * sizeof(*pinned));
        if (pinned == NULL) {
            (void)pthread_rwlock_unlock(&ix->ix_lock);
            rc = -ENOMEM;
            goto out;
        }
        end = ix->ix_files[ix->ix_nfiles - 1]->if_hdr.end_phys;
    }
    for (i = 0; i < ix->ix_nfiles; i++) {
        struct ix_file *f = ix->ix_files[i];

        if (f->if_dirty) {
            f->if_dirty = 0;
            f->if_refs++;
            pinned[npinned++] = f;
        }
    }
    (void)pthread_rwlock_unlock(&ix->ix_lock);

    /* The syncs run unlocked so that puts and lookups go on meanwhile. */
    for (i = 0; i < npinned && rc == 0; i++)
        rc = sio_msync(pinned[i]->if_base, ix->ix_file_size);
    if (rc != 0)
        ix->ix_flush_err = rc;

    (void)pthread_rwlock_wrlock(&ix->ix_lock);
    for (i = 0; i < npinned; i++)
        file_unref(ix, pinned[i]);
    (void)pthread_rwlock_unlock(&ix->ix_lock);

out:
    (void)pthread_mutex_unlock(&ix->ix_flush_lock);
    free(pinned);
    if (rc == 0)
        *durable_end = end;
    return rc;
}

int
ix_recover(struct ixsvc *ix, uint64_t durable_phys, uint64_t *replay_from)
{
    struct ix_file *f;
    size_t deleted = 0;
    int rc = 0;

    (void)pthread_rwlock_wrlock(&ix->ix_lock);
    while (ix->ix_nfiles > 0) {
        f = ix->ix_files[ix->ix_nfiles - 1];
        if (f->if_hdr.end_phys <= durable_phys && !slots_torn(ix, f))
            break;
        rc = file_delete(ix, ix->ix_nfiles - 1);
        if (rc != 0)
            goto out;
        deleted++;
    }
    if (deleted > 0)
        rc = sio_dirsync(ix->ix_dir);
    if (rc == 0)
        *replay_from = ix->ix_nfiles > 0 ? ix->ix_files[ix->ix_nfiles - 1]->if_hdr.end_phys : 0;
out:
    (void)pthread_rwlock_unlock(&ix->ix_lock);
    return rc;
}

int
ix_delete_below(struct ixsvc *ix, uint64_t clog_min)
{
    int rc = 0, deleted = 0, rc2;

    (void)pthread_rwlock_wrlock(&ix->ix_lock);
    while (ix->ix_nfiles > 1 && ix->ix_files[0]->if_hdr.end_phys < clog_min && deleted < INT_MAX) {
        rc = file_delete(ix, 0);
        if (rc != 0)
            break;
        deleted++;
    }
    if (deleted > 0) {
        rc2 = sio_dirsync(ix->ix_dir);
        if (rc == 0)
            rc = rc2;
    }
    (void)pthread_rwlock_unlock(&ix->ix_lock);
    return rc != 0 ? rc : deleted;
}

uint64_t
ix_end_phys(struct ixsvc *ix)
{
    uint64_t end = 0;

    (void)pthread_rwlock_rdlock(&ix->ix_lock);
    if (ix->ix_nfiles > 0)
        end = ix->ix_files[ix->ix_nfiles - 1]->if_hdr.end_phys;
    (void)pthread_rwlock_unlock(&ix->ix_lock);
    return end;
}

int
ix_walk(struct ixsvc *ix, void (*file_cb)(void *arg, const char *name, const struct ix_header *h),
        void (*entry_cb)(void *arg, uint32_t n, int32_t key_hash, uint64_t phys, int32_t time_diff,
                         int32_t prev),
        void *arg)
{
    size_t i;
    uint32_t n;

    (void)pthread_rwlock_rdlock(&ix->ix_lock);
    for (i = 0; i < ix->ix_nfiles; i++) {
        const struct ix_file *f = ix->ix_files[i];

        if (file_cb != NULL)
            file_cb(arg, f->if_name, &f->if_hdr);
        if (entry_cb == NULL)
            continue;
        /* index_count is within [1, index_num]: checked on load, kept by put. */
        for (n = 1; n < (uint32_t)f->if_hdr.index_count; n++) {
            const uint8_t *e = f->if_base + entry_pos(ix, n);

            entry_cb(arg, n, (int32_t)be_get32(e), be_get64(e + 4), (int32_t)be_get32(e + 12),
                     (int32_t)be_get32(e + 16));
        }
    }
    (void)pthread_rwlock_unlock(&ix->ix_lock);
    return 0;
}

/* Formats "index/<name>: <what>" into <msg> and returns SPK_ECORRUPT. */
static int check_fail(char *msg, size_t msglen, const struct ix_file *f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
check_fail(char *msg, size_t msglen, const struct ix_file *f, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (msglen == 0)
        return SPK_ECORRUPT;
    n = snprintf(msg, msglen, "index/%s: ", f->if_name);
    if (n >= 0 && (size_t)n < msglen) {
        va_start(ap, fmt);
        (void)vsnprintf(msg + n, msglen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return SPK_ECORRUPT;
}

/* Verifies INV-1..4 of one file against its on-disk bytes. */
static int
check_file(const struct ixsvc *ix, const struct ix_file *f, char *msg, size_t msglen)
{
    struct ix_header h;
    const char *why;
    uint32_t s, n, used = 0;

    hdr_decode(f->if_base, &h);
    why = hdr_problem(ix, &h);
    if (why != NULL)
        return check_fail(msg, msglen, f, "header: %s", why);

    for (s = 0; s < ix->ix_slot_num; s++) {
        int32_t head = (int32_t)be_get32(f->if_base + slot_pos(s));

        if (head == 0)
            continue;
        used++;
        if (head < 0 || head >= h.index_count)
            return check_fail(msg, msglen, f,
                              "slot %u at byte %zu: head %d not below indexCount %d", s,
                              slot_pos(s), head, h.index_count);
        if (bucket_of(ix, (int32_t)be_get32(f->if_base + entry_pos(ix, (uint32_t)head))) != s)
            return check_fail(msg, msglen, f, "slot %u at byte %zu: head %d is in another bucket",
                              s, slot_pos(s), head);
    }
    if (used != (uint32_t)h.slot_count)
        return check_fail(msg, msglen, f, "header: hashSlotCount %d but %u slots in use",
                          h.slot_count, used);

    for (n = 1; n < (uint32_t)h.index_count; n++) {
        const uint8_t *e = f->if_base + entry_pos(ix, n);
        int32_t e_hash = (int32_t)be_get32(e), diff = (int32_t)be_get32(e + 12);
        int32_t prev = (int32_t)be_get32(e + 16);
        uint64_t phys = be_get64(e + 4);
        size_t at = entry_pos(ix, n);

        if (e_hash < 0)
            return check_fail(msg, msglen, f, "entry %u at byte %zu: negative keyHash %d", n, at,
                              e_hash);
        if (phys < h.begin_phys || phys > h.end_phys)
            return check_fail(msg, msglen, f,
                              "entry %u at byte %zu: phyOffset %llu outside [%llu, %llu]", n, at,
                              (unsigned long long)phys, (unsigned long long)h.begin_phys,
                              (unsigned long long)h.end_phys);
        if (diff < 0)
            return check_fail(msg, msglen, f, "entry %u at byte %zu: negative timeDiff %d", n, at,
                              diff);
        if (prev < 0 || (uint32_t)prev >= n)
            return check_fail(msg, msglen, f, "entry %u at byte %zu: prev %d not below %u", n, at,
                              prev, n);
        if (prev > 0 &&
            bucket_of(ix, (int32_t)be_get32(f->if_base + entry_pos(ix, (uint32_t)prev))) !=
                bucket_of(ix, e_hash))
            return check_fail(msg, msglen, f, "entry %u at byte %zu: prev %d is in another bucket",
                              n, at, prev);
    }
    return 0;
}

int
ix_check(struct ixsvc *ix, char *msg, size_t msglen)
{
    size_t i;
    int rc = 0;

    if (msglen > 0)
        msg[0] = '\0';
    (void)pthread_rwlock_rdlock(&ix->ix_lock);
    for (i = 0; i < ix->ix_nfiles && rc == 0; i++)
        rc = check_file(ix, ix->ix_files[i], msg, msglen);
    (void)pthread_rwlock_unlock(&ix->ix_lock);
    return rc;
}
