/*
 * t_indexfile.c - the IndexFile service (src/store/indexfile.h) against
 * spec STORE.md section 4: exact bytes on disk, RocketMQ's query rules and
 * quirks, rolling, reopen/drop of corrupt files, recovery, deletion, the
 * offline check and injected I/O faults.
 *
 * Every test runs in its own temporary directory with tiny files (a few
 * slots and entries) so that rolling and chains are easy to provoke.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/jhash.h"
#include "store/indexfile.h"
#include "store/storeio.h"

#define T0 INT64_C(1700000000000) /* a store time on a whole second */

static char g_root[64];
static char g_dir[128]; /* <root>/index: ix_open must create it */

static size_t
fsize(uint32_t slots, uint32_t entries)
{
    return 40 + 4 * (size_t)slots + 20 * (size_t)entries;
}

static void
setup(void)
{
    strcpy(g_root, "/tmp/t_ix.XXXXXX");
    cr_assert_not_null(mkdtemp(g_root));
    snprintf(g_dir, sizeof(g_dir), "%s/index", g_root);
    sio_fault_clear();
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
teardown(void)
{
    sio_fault_clear();
    if (g_root[0] != '\0')
        nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(indexfile, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------- */

/* The keyHash stored on disk: abs(Java hashCode), INT_MIN as 0. */
static int32_t
ix_hash(const char *key)
{
    int32_t h = spk_java_hash(key, strlen(key));

    return h == INT32_MIN ? 0 : (h < 0 ? -h : h);
}

static struct ixsvc *
open_ix(const char *dir, uint32_t slots, uint32_t entries, unsigned *dropped)
{
    struct ixsvc *ix = NULL;
    unsigned d = 12345;
    int rc = ix_open(dir, slots, entries, &ix, &d);

    cr_assert_eq(rc, 0, "ix_open(%s): %d", dir, rc);
    cr_assert_not_null(ix);
    if (dropped != NULL)
        *dropped = d;
    else
        cr_assert_eq(d, 0u, "unexpected drop of %u files", d);
    return ix;
}

/* Indexes one record whose KEYS property is <keys> (no uniq key). */
static int
put(struct ixsvc *ix, const char *keys, uint64_t phys, int64_t ts)
{
    return ix_put(ix, "T", 1, NULL, 0, keys, strlen(keys), phys, ts);
}

/* Looks up T#<key>; returns the count. */
static size_t
query(struct ixsvc *ix, const char *key, uint32_t max, int64_t begin, int64_t end, uint64_t *offs)
{
    size_t n = 999;
    int rc = ix_query(ix, "T", 1, key, strlen(key), max, begin, end, offs, &n);

    cr_assert_eq(rc, 0, "ix_query: %d", rc);
    return n;
}

static size_t
query_all(struct ixsvc *ix, const char *key, uint64_t *offs)
{
    return query(ix, key, 64, 0, INT64_MAX, offs);
}

struct walk {
    int nfiles;
    char names[64][18];
    struct ix_header hdr[64];
    int nent;
    int file_of[512];
    uint32_t n[512];
    int32_t hash[512];
    uint64_t phys[512];
    int32_t diff[512];
    int32_t prev[512];
};

static void
walk_file(void *arg, const char *name, const struct ix_header *h)
{
    struct walk *w = arg;

    cr_assert_lt(w->nfiles, 64);
    snprintf(w->names[w->nfiles], sizeof(w->names[0]), "%s", name);
    w->hdr[w->nfiles++] = *h;
}

static void
walk_entry(void *arg, uint32_t n, int32_t key_hash, uint64_t phys, int32_t time_diff, int32_t prev)
{
    struct walk *w = arg;
    int i = w->nent++;

    cr_assert_lt(i, 512);
    w->file_of[i] = w->nfiles - 1;
    w->n[i] = n;
    w->hash[i] = key_hash;
    w->phys[i] = phys;
    w->diff[i] = time_diff;
    w->prev[i] = prev;
}

static void
walk(struct ixsvc *ix, struct walk *w)
{
    memset(w, 0, sizeof(*w));
    cr_assert_eq(ix_walk(ix, walk_file, walk_entry, w), 0);
}

/* Number of entries in <dir> that are not "." or "..". */
static int
count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    cr_assert_not_null(d, "opendir(%s)", dir);
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void
file_path(char *out, size_t len, const char *dir, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static void
read_all(const char *path, uint8_t *buf, size_t len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);

    cr_assert_geq(fd, 0, "open(%s)", path);
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq((size_t)st.st_size, len, "size of %s: %lld", path, (long long)st.st_size);
    cr_assert_eq(pread(fd, buf, len, 0), (ssize_t)len);
    close(fd);
}

static void
poke(const char *path, uint64_t off, const void *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0644);

    cr_assert_geq(fd, 0, "open(%s)", path);
    cr_assert_eq(pwrite(fd, bytes, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void
poke_be32(const char *path, uint64_t off, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    poke(path, off, b, 4);
}

static void
poke_be64(const char *path, uint64_t off, uint64_t v)
{
    poke_be32(path, off, (uint32_t)(v >> 32));
    poke_be32(path, off + 4, (uint32_t)v);
}

/*
 * 3 files of 3 entries each (index_num 4): records 100..900 step 100 with
 * key "k<phys>" at T0 + phys*10 ms. Flushed and closed; the names go to
 * names[3].
 */
static void
build3(const char *dir, char names[3][18])
{
    struct ixsvc *ix = open_ix(dir, 64, 4, NULL);
    struct walk w;
    uint64_t durable;
    char key[32];
    int i;

    for (i = 1; i <= 9; i++) {
        snprintf(key, sizeof(key), "k%d", i * 100);
        cr_assert_eq(put(ix, key, (uint64_t)i * 100, T0 + i * 1000), 0);
    }
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 3);
    for (i = 0; i < 3; i++)
        memcpy(names[i], w.names[i], 18);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(durable, 900u);
    ix_close(ix);
}

/* ---- exact bytes --------------------------------------------------------- */

Test(indexfile, byte_layout_matches_rocketmq)
{
    /*
     * Java "T#k1".hashCode(): 'T'=84 -> 84; '#'=35 -> 84*31+35 = 2639;
     * 'k'=107 -> 2639*31+107 = 81916; '1'=49 -> 81916*31+49 = 2539445
     * = 0x0026BFB5, slot 2539445 % 64 = 53. "T#k2" is one more: 2539446
     * = 0x0026BFB6, slot 54.
     */
    static const uint8_t header[40] = {
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b, /* begin ts 1700000000123 */
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x7d, 0xf7, /* end ts 1700000005623 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, /* begin phys 1000 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0xd0, /* end phys 2000 */
        0x00, 0x00, 0x00, 0x02,                         /* hashSlotCount 2 */
        0x00, 0x00, 0x00, 0x03,                         /* indexCount 3 */
    };
    static const uint8_t entry1[20] = {
        0x00, 0x26, 0xbf, 0xb5,                         /* keyHash */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, /* phys 1000 */
        0x00, 0x00, 0x00, 0x00,                         /* timeDiff: begin was 0 */
        0x00, 0x00, 0x00, 0x00,                         /* prev: none */
    };
    static const uint8_t entry2[20] = {
        0x00, 0x26, 0xbf, 0xb6,                         /* keyHash */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0xd0, /* phys 2000 */
        0x00, 0x00, 0x00, 0x05,                         /* 5500 ms after begin: 5 s */
        0x00, 0x00, 0x00, 0x00,                         /* prev: another slot */
    };
    const size_t size = fsize(64, 32); /* 936 */
    uint8_t expect[936], got[936];
    struct ixsvc *ix = open_ix(g_dir, 64, 32, NULL);
    char path[256];
    uint64_t durable, offs[64];
    struct walk w;

    cr_assert_eq(size, sizeof(expect));
    cr_assert_eq(spk_java_hash("T#k1", 4), 2539445);
    cr_assert_eq(put(ix, "k1", 1000, INT64_C(1700000000123)), 0);
    cr_assert_eq(put(ix, "k2", 2000, INT64_C(1700000005623)), 0);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(durable, 2000u);

    walk(ix, &w);
    cr_assert_eq(w.nfiles, 1);
    cr_assert_eq(strlen(w.names[0]), 17u);
    cr_assert_eq(strspn(w.names[0], "0123456789"), 17u, "name %s", w.names[0]);
    file_path(path, sizeof(path), g_dir, w.names[0]);
    read_all(path, got, size);

    memset(expect, 0, sizeof(expect));
    memcpy(expect, header, 40);
    expect[40 + 4 * 53 + 3] = 1; /* slot 53 -> entry 1 */
    expect[40 + 4 * 54 + 3] = 2; /* slot 54 -> entry 2 */
    memcpy(expect + 40 + 4 * 64 + 20 * 1, entry1, 20);
    memcpy(expect + 40 + 4 * 64 + 20 * 2, entry2, 20);
    for (size_t i = 0; i < size; i++)
        cr_assert_eq(got[i], expect[i], "byte %zu: got 0x%02x, want 0x%02x", i, got[i], expect[i]);

    cr_assert_eq(query_all(ix, "k1", offs), 1u);
    cr_assert_eq(offs[0], 1000u);
    cr_assert_eq(query_all(ix, "k2", offs), 1u);
    cr_assert_eq(offs[0], 2000u);
    ix_close(ix);
}

/* ---- queries ------------------------------------------------------------- */

Test(indexfile, query_time_range)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 32, NULL);
    uint64_t offs[64];

    cr_assert_eq(put(ix, "k", 100, T0), 0);
    cr_assert_eq(put(ix, "k", 200, T0 + 10000), 0);
    cr_assert_eq(put(ix, "k", 300, T0 + 20000), 0);

    cr_assert_eq(query(ix, "k", 8, T0 + 5000, T0 + 15000, offs), 1u);
    cr_assert_eq(offs[0], 200u);
    /* Bounds are inclusive. */
    cr_assert_eq(query(ix, "k", 8, T0 + 10000, T0 + 20000, offs), 2u);
    cr_assert_eq(offs[0], 300u);
    cr_assert_eq(offs[1], 200u);
    /* Outside the file's [begin, end]: not even looked at. */
    cr_assert_eq(query(ix, "k", 8, T0 + 30000, T0 + 40000, offs), 0u);
    cr_assert_eq(query(ix, "k", 8, T0 - 9000, T0 - 1, offs), 0u);
    /* Unknown key. */
    cr_assert_eq(query_all(ix, "nope", offs), 0u);
    /* max 0 returns nothing. */
    cr_assert_eq(query(ix, "k", 0, 0, INT64_MAX, offs), 0u);
    ix_close(ix);
}

Test(indexfile, collision_chain_in_one_slot)
{
    struct ixsvc *ix = open_ix(g_dir, 1, 32, NULL);
    uint64_t offs[64];
    struct walk w;

    cr_assert_eq(put(ix, "x", 10, T0), 0);
    cr_assert_eq(put(ix, "y", 20, T0 + 1000), 0);
    cr_assert_eq(put(ix, "x", 30, T0 + 2000), 0);

    /* One slot: every entry chains to the one before it. */
    walk(ix, &w);
    cr_assert_eq(w.nent, 3);
    cr_assert_eq(w.prev[0], 0);
    cr_assert_eq(w.prev[1], 1);
    cr_assert_eq(w.prev[2], 2);
    cr_assert_eq(w.hdr[0].slot_count, 1);
    cr_assert_eq(w.hdr[0].index_count, 4);

    cr_assert_eq(query_all(ix, "x", offs), 2u);
    cr_assert_eq(offs[0], 30u);
    cr_assert_eq(offs[1], 10u);
    cr_assert_eq(query_all(ix, "y", offs), 1u);
    cr_assert_eq(offs[0], 20u);
    cr_assert_eq(ix_check(ix, NULL, 0), 0);
    ix_close(ix);
}

Test(indexfile, query_stops_at_a_file_that_began_before_the_range)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 2, NULL);
    uint64_t offs[64];

    /* One entry per file, and the clock stepped back between them. */
    cr_assert_eq(put(ix, "k", 100, T0 + 10000), 0);
    cr_assert_eq(put(ix, "k", 200, T0), 0);
    /* RocketMQ stops at the newest file (it began before the range) and
     * never looks at the older one, although its entry is in range. */
    cr_assert_eq(query(ix, "k", 8, T0 + 5000, T0 + 20000, offs), 0u);
    cr_assert_eq(query(ix, "k", 8, T0, T0 + 20000, offs), 2u);
    ix_close(ix);
}

Test(indexfile, max_num_is_capped_at_64)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 128, NULL);
    uint64_t offs[64];
    int i;

    for (i = 1; i <= 70; i++)
        cr_assert_eq(put(ix, "k", (uint64_t)i * 10, T0 + i), 0);
    cr_assert_eq(query(ix, "k", 1000, 0, INT64_MAX, offs), 64u);
    cr_assert_eq(offs[0], 700u);
    cr_assert_eq(offs[63], 70u);
    cr_assert_eq(query(ix, "k", 5, 0, INT64_MAX, offs), 5u);
    for (i = 0; i < 5; i++)
        cr_assert_eq(offs[i], (uint64_t)(70 - i) * 10);
    ix_close(ix);
}

Test(indexfile, uniq_key_and_space_separated_keys)
{
    static const char keys[] = " a  b c ";
    struct ixsvc *ix = open_ix(g_dir, 64, 32, NULL);
    const char *want[] = {"U1", "a", "b", "c"};
    uint64_t offs[64];
    struct walk w;
    size_t i;

    cr_assert_eq(ix_put(ix, "TopicA", 6, "U1", 2, keys, strlen(keys), 77, T0), 0);
    walk(ix, &w);
    cr_assert_eq(w.nent, 4, "empty pieces must not be indexed: %d entries", w.nent);
    cr_assert_eq(w.hdr[0].index_count, 5);
    /* The uniq key comes first, then KEYS in order. */
    cr_assert_eq(w.hash[0], ix_hash("TopicA#U1"));
    cr_assert_eq(w.hash[3], ix_hash("TopicA#c"));
    cr_assert_lt(spk_java_hash("TopicA#U1", 9), 0, "the abs() must matter here");

    for (i = 0; i < 4; i++) {
        size_t n = 9;

        cr_assert_eq(ix_query(ix, "TopicA", 6, want[i], strlen(want[i]), 4, 0, INT64_MAX, offs, &n),
                     0);
        cr_assert_eq(n, 1u, "key %s", want[i]);
        cr_assert_eq(offs[0], 77u);
    }
    /* Another topic does not see them. */
    cr_assert_eq(query_all(ix, "a", offs), 0u);

    /* An empty uniq key and NULL keys index nothing. */
    cr_assert_eq(ix_put(ix, "TopicA", 6, "", 0, NULL, 0, 88, T0), 0);
    cr_assert_eq(ix_put(ix, "TopicA", 6, NULL, 0, "   ", 3, 99, T0), 0);
    cr_assert_eq(ix_end_phys(ix), 77u);
    ix_close(ix);
}

Test(indexfile, long_key_uses_the_heap)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 32, NULL);
    size_t len = 40000;
    char *key = malloc(len + 1), *full = malloc(len + 3);
    uint64_t offs[64];
    size_t n = 0;
    struct walk w;
    int32_t h;

    cr_assert_not_null(key);
    cr_assert_not_null(full);
    memset(key, 'x', len);
    key[len] = '\0';
    cr_assert_eq(put(ix, key, 5, T0), 0);
    cr_assert_eq(ix_query(ix, "T", 1, key, len, 2, 0, INT64_MAX, offs, &n), 0);
    cr_assert_eq(n, 1u);
    cr_assert_eq(offs[0], 5u);
    memcpy(full, "T#", 2);
    memcpy(full + 2, key, len);
    h = spk_java_hash(full, len + 2);
    walk(ix, &w);
    cr_assert_eq(w.hash[0], h == INT32_MIN ? 0 : (h < 0 ? -h : h));
    free(key);
    free(full);
    ix_close(ix);
}

/* ---- dedupe -------------------------------------------------------------- */

Test(indexfile, redispatch_below_or_at_end_is_skipped)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 32, NULL);
    uint64_t offs[64];
    struct walk w;

    cr_assert_eq(put(ix, "a", 500, T0), 0);
    cr_assert_eq(put(ix, "b", 400, T0), 0); /* below endPhyOffset */
    cr_assert_eq(put(ix, "a", 500, T0), 0); /* the record at endPhyOffset again */
    walk(ix, &w);
    cr_assert_eq(w.nent, 1);
    cr_assert_eq(query_all(ix, "b", offs), 0u);
    cr_assert_eq(query_all(ix, "a", offs), 1u);
    cr_assert_eq(ix_end_phys(ix), 500u);

    cr_assert_eq(put(ix, "b", 501, T0), 0);
    cr_assert_eq(query_all(ix, "b", offs), 1u);
    cr_assert_eq(ix_end_phys(ix), 501u);
    ix_close(ix);
}

Test(indexfile, first_record_at_offset_zero_is_indexed)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 32, NULL);
    uint64_t offs[64];

    cr_assert_eq(put(ix, "a", 0, T0), 0);
    cr_assert_eq(query_all(ix, "a", offs), 1u);
    cr_assert_eq(offs[0], 0u);
    ix_close(ix);
}

/* ---- rolling ------------------------------------------------------------- */

Test(indexfile, roll_seeds_from_previous_end)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 4, NULL);
    uint64_t offs[64];
    struct walk w;
    int i;

    for (i = 1; i <= 4; i++)
        cr_assert_eq(put(ix, "k", (uint64_t)i * 100, T0 + (i - 1) * 1000), 0);

    walk(ix, &w);
    cr_assert_eq(w.nfiles, 2);
    cr_assert_lt(strcmp(w.names[0], w.names[1]), 0);
    cr_assert_eq(w.hdr[0].index_count, 4, "index_num 4 holds 3 entries");
    cr_assert_eq(w.hdr[0].end_phys, 300u);
    cr_assert_eq(w.hdr[0].end_ts, T0 + 2000);
    cr_assert_eq(w.hdr[1].index_count, 2);
    cr_assert_eq(w.hdr[1].begin_phys, 400u);
    cr_assert_eq(w.hdr[1].begin_ts, T0 + 3000);
    /* The quirk: the first entry's timeDiff is against the inherited begin
     * (T0+2000), 1 s, although begin is then overwritten with T0+3000. */
    cr_assert_eq(w.nent, 4);
    cr_assert_eq(w.file_of[3], 1);
    cr_assert_eq(w.n[3], 1u);
    cr_assert_eq(w.diff[3], 1);
    cr_assert_eq(w.prev[3], 0, "chains do not cross files");

    /* Across files, newest first. */
    cr_assert_eq(query_all(ix, "k", offs), 4u);
    for (i = 0; i < 4; i++)
        cr_assert_eq(offs[i], (uint64_t)(4 - i) * 100);
    cr_assert_eq(query(ix, "k", 8, T0 + 1000, T0 + 1000, offs), 1u);
    cr_assert_eq(offs[0], 200u);
    /* ... and the quirk as RocketMQ has it: the entry reads as T0+4000. */
    cr_assert_eq(query(ix, "k", 8, T0 + 3000, T0 + 4000, offs), 1u);
    cr_assert_eq(offs[0], 400u);
    cr_assert_eq(query(ix, "k", 8, T0 + 3000, T0 + 3999, offs), 0u);
    cr_assert_eq(ix_check(ix, NULL, 0), 0);
    ix_close(ix);
}

Test(indexfile, record_keys_span_a_roll)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 4, NULL);
    const char *keys[] = {"a", "b", "c", "d", "e"};
    uint64_t offs[64];
    struct walk w;
    int i;

    cr_assert_eq(put(ix, "a b", 100, T0), 0);
    cr_assert_eq(put(ix, "c d e", 200, T0 + 1000), 0); /* room for one: c | d e */
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 2);
    cr_assert_eq(w.hdr[0].index_count, 4);
    cr_assert_eq(w.hdr[1].index_count, 3);
    cr_assert_eq(w.hdr[1].begin_phys, 200u);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(query_all(ix, keys[i], offs), 1u, "key %s", keys[i]);
        cr_assert_eq(offs[0], i < 2 ? 100u : 200u);
    }
    /* Re-dispatching the spanning record changes nothing. */
    cr_assert_eq(put(ix, "c d e", 200, T0 + 1000), 0);
    walk(ix, &w);
    cr_assert_eq(w.nent, 5);

    /* A record with more keys than a whole file holds. */
    cr_assert_eq(put(ix, "f g h i j k l m", 300, T0 + 2000), 0);
    walk(ix, &w);
    cr_assert_eq(w.nent, 13);
    cr_assert_eq(w.nfiles, 5);
    cr_assert_eq(query_all(ix, "m", offs), 1u);
    cr_assert_eq(offs[0], 300u);
    cr_assert_eq(ix_check(ix, NULL, 0), 0);
    ix_close(ix);
}

Test(indexfile, names_increase_and_survive_reopen)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 2, NULL);
    struct walk w, w2;
    uint64_t durable, offs[64];
    char key[16];
    int i;

    /* One entry per file: ten files within a few ms, so names collide on
     * the clock and must be bumped. */
    for (i = 1; i <= 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        cr_assert_eq(put(ix, key, (uint64_t)i, T0 + i * 1000), 0);
    }
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 10);
    for (i = 0; i < 10; i++) {
        cr_assert_eq(strspn(w.names[i], "0123456789"), 17u, "name %s", w.names[i]);
        if (i > 0)
            cr_assert_lt(strcmp(w.names[i - 1], w.names[i]), 0, "%s !< %s", w.names[i - 1],
                         w.names[i]);
        cr_assert_eq(w.hdr[i].end_phys, (uint64_t)i + 1);
    }
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(durable, 10u);
    ix_close(ix);

    ix = open_ix(g_dir, 64, 2, NULL);
    walk(ix, &w2);
    cr_assert_eq(w2.nfiles, 10);
    for (i = 0; i < 10; i++)
        cr_assert_str_eq(w2.names[i], w.names[i]);
    cr_assert_eq(ix_end_phys(ix), 10u);
    cr_assert_eq(query_all(ix, "k3", offs), 1u);
    cr_assert_eq(offs[0], 3u);
    ix_close(ix);
}

Test(indexfile, names_stay_after_a_newer_existing_name)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 2, NULL);
    char from[256], to[256];
    struct walk w;

    cr_assert_eq(put(ix, "a", 100, T0), 0);
    walk(ix, &w);
    ix_close(ix);
    /* A file from a clock far ahead: later files must still sort after
     * it, carrying the millisecond through every field. */
    file_path(from, sizeof(from), g_dir, w.names[0]);
    file_path(to, sizeof(to), g_dir, "20991231235959999");
    cr_assert_eq(rename(from, to), 0);

    ix = open_ix(g_dir, 64, 2, NULL);
    cr_assert_eq(put(ix, "b", 200, T0), 0);
    cr_assert_eq(put(ix, "c", 300, T0), 0);
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 3);
    cr_assert_str_eq(w.names[1], "21000101000000000");
    cr_assert_str_eq(w.names[2], "21000101000000001");
    ix_close(ix);

    /* Past year 9999 there is no 17-digit name: a clean error. */
    file_path(from, sizeof(from), g_dir, w.names[2]);
    file_path(to, sizeof(to), g_dir, "99991231235959999");
    cr_assert_eq(rename(from, to), 0);
    ix = open_ix(g_dir, 64, 2, NULL);
    cr_assert_eq(put(ix, "d", 400, T0), -EOVERFLOW);
    cr_assert_eq(ix_end_phys(ix), 300u);
    cr_assert_eq(count_dir(g_dir), 3);
    ix_close(ix);
}

/* ---- reopen and corrupt files -------------------------------------------- */

Test(indexfile, reopen_finds_the_same_data)
{
    struct ixsvc *ix;
    char names[3][18], path[256];
    uint64_t offs[64];
    struct walk w;
    int i;

    build3(g_dir, names);
    /* Names that are not 17 digits are none of ours. */
    file_path(path, sizeof(path), g_dir, "2024010100000000");
    poke(path, 0, "x", 1);
    file_path(path, sizeof(path), g_dir, "notanindexfile000");
    poke(path, 0, "x", 1);

    ix = open_ix(g_dir, 64, 4, NULL);
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 3);
    cr_assert_eq(w.nent, 9);
    cr_assert_eq(ix_end_phys(ix), 900u);
    for (i = 1; i <= 9; i++) {
        char key[16];

        snprintf(key, sizeof(key), "k%d", i * 100);
        cr_assert_eq(query_all(ix, key, offs), 1u, "key %s", key);
        cr_assert_eq(offs[0], (uint64_t)i * 100);
    }
    cr_assert_eq(ix_check(ix, NULL, 0), 0);
    ix_close(ix);
    cr_assert_eq(count_dir(g_dir), 5);
}

Test(indexfile, wrong_size_drops_it_and_newer)
{
    struct ixsvc *ix;
    char names[3][18], path[256];
    unsigned dropped;
    uint64_t offs[64];
    struct walk w;
    int i;

    build3(g_dir, names);
    file_path(path, sizeof(path), g_dir, names[1]);
    cr_assert_eq(truncate(path, (off_t)fsize(64, 4) - 1), 0);

    ix = open_ix(g_dir, 64, 4, &dropped);
    cr_assert_eq(dropped, 2u);
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 1);
    cr_assert_str_eq(w.names[0], names[0]);
    cr_assert_eq(count_dir(g_dir), 1);
    cr_assert_eq(ix_end_phys(ix), 300u);

    /* The caller re-dispatches from there and gets everything back. */
    for (i = 3; i <= 9; i++) {
        char key[16];

        snprintf(key, sizeof(key), "k%d", i * 100);
        cr_assert_eq(put(ix, key, (uint64_t)i * 100, T0 + i * 1000), 0);
    }
    walk(ix, &w);
    cr_assert_eq(w.nent, 9, "300 must not be indexed twice");
    cr_assert_eq(query_all(ix, "k900", offs), 1u);
    ix_close(ix);

    /* A zero-length file is the same case. */
    ix = open_ix(g_dir, 64, 4, NULL);
    walk(ix, &w);
    ix_close(ix);
    file_path(path, sizeof(path), g_dir, w.names[w.nfiles - 1]);
    cr_assert_eq(truncate(path, 0), 0);
    ix = open_ix(g_dir, 64, 4, &dropped);
    cr_assert_eq(dropped, 1u);
    cr_assert_eq(ix_end_phys(ix), 600u);
    ix_close(ix);
}

Test(indexfile, insane_header_drops_it_and_newer)
{
    /* Each corruption of the middle file's header, in its own directory. */
    static const struct {
        uint64_t off;
        int wide;
        uint64_t val;
        const char *what;
    } cases[] = {
        {36, 0, 0, "indexCount 0"},
        {36, 0, 5, "indexCount above index_num"},
        {36, 0, 0xFFFFFFFFu, "indexCount negative"},
        {32, 0, 65, "hashSlotCount above slot_num"},
        {16, 1, 601, "beginPhyOffset after endPhyOffset"},
        {0, 1, (uint64_t)T0 + 7000, "beginTimestamp after endTimestamp"},
    };
    size_t c;

    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char dir[256], path[300], names[3][18];
        struct ixsvc *ix;
        unsigned dropped;
        struct walk w;

        snprintf(dir, sizeof(dir), "%s/c%zu", g_root, c);
        build3(dir, names);
        file_path(path, sizeof(path), dir, names[1]);
        if (cases[c].wide)
            poke_be64(path, cases[c].off, cases[c].val);
        else
            poke_be32(path, cases[c].off, (uint32_t)cases[c].val);

        ix = open_ix(dir, 64, 4, &dropped);
        cr_assert_eq(dropped, 2u, "%s: dropped %u", cases[c].what, dropped);
        walk(ix, &w);
        cr_assert_eq(w.nfiles, 1, "%s", cases[c].what);
        cr_assert_str_eq(w.names[0], names[0]);
        cr_assert_eq(count_dir(dir), 1, "%s", cases[c].what);
        ix_close(ix);
    }
}

Test(indexfile, bad_sizes_are_config_errors)
{
    struct ixsvc *ix = NULL;
    unsigned dropped = 7;

    cr_assert_eq(ix_open(g_dir, 0, 32, &ix, &dropped), SPK_ECONFIG);
    cr_assert_eq(ix_open(g_dir, 64, 1, &ix, &dropped), SPK_ECONFIG);
    cr_assert_eq(ix_open(g_dir, 64, 0x80000000u, &ix, &dropped), SPK_ECONFIG);
    cr_assert_null(ix);
    cr_assert_eq(dropped, 7u);
}

/* ---- recovery and deletion ----------------------------------------------- */

Test(indexfile, recover_deletes_files_newer_than_durable)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 4, NULL);
    uint64_t durable, replay = 1, offs[64];
    struct walk w;
    int i;

    for (i = 1; i <= 6; i++)
        cr_assert_eq(put(ix, "k", (uint64_t)i * 100, T0 + i * 1000), 0);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(durable, 600u);
    cr_assert_eq(put(ix, "k", 700, T0 + 7000), 0);
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 3);
    ix_close(ix); /* a crash: the newest file was never flushed */

    ix = open_ix(g_dir, 64, 4, NULL);
    cr_assert_eq(ix_recover(ix, durable, &replay), 0);
    cr_assert_eq(replay, 600u);
    cr_assert_eq(count_dir(g_dir), 2);
    cr_assert_eq(ix_end_phys(ix), 600u);
    /* Re-dispatch from 600: 600 is skipped, 700 indexed once. */
    cr_assert_eq(put(ix, "k", 600, T0 + 6000), 0);
    cr_assert_eq(put(ix, "k", 700, T0 + 7000), 0);
    cr_assert_eq(query_all(ix, "k", offs), 7u);
    cr_assert_eq(offs[0], 700u);
    cr_assert_eq(offs[1], 600u);
    cr_assert_eq(offs[2], 500u);
    walk(ix, &w);
    cr_assert_eq(w.nent, 7);

    /* Nothing durable at all: everything goes. */
    cr_assert_eq(ix_recover(ix, 250, &replay), 0);
    cr_assert_eq(replay, 0u);
    cr_assert_eq(ix_end_phys(ix), 0u);
    cr_assert_eq(count_dir(g_dir), 0);
    cr_assert_eq(query_all(ix, "k", offs), 0u);
    ix_close(ix);
}

Test(indexfile, recover_drops_a_torn_slot_table)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 8, NULL);
    uint64_t durable, replay = 1;
    char path[256];
    struct walk w;

    cr_assert_eq(put(ix, "a", 100, T0), 0);
    cr_assert_eq(put(ix, "b", 200, T0), 0);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    walk(ix, &w);
    ix_close(ix);

    /* A later put's slot page reached the disk, its header page did not:
     * a slot now names entry 3 while indexCount is still 3. */
    file_path(path, sizeof(path), g_dir, w.names[0]);
    poke_be32(path, 40 + 4 * 7, 3);
    ix = open_ix(g_dir, 64, 8, NULL);
    cr_assert_eq(ix_end_phys(ix), 200u);
    cr_assert_eq(ix_recover(ix, durable, &replay), 0);
    cr_assert_eq(replay, 0u);
    cr_assert_eq(count_dir(g_dir), 0);
    ix_close(ix);
}

Test(indexfile, recover_keeps_clean_files)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 8, NULL);
    uint64_t durable, replay = 1;

    cr_assert_eq(put(ix, "a", 100, T0), 0);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(ix_recover(ix, durable, &replay), 0);
    cr_assert_eq(replay, 100u);
    cr_assert_eq(count_dir(g_dir), 1);
    ix_close(ix);
}

Test(indexfile, delete_below_never_deletes_the_newest)
{
    struct ixsvc *ix;
    char names[3][18];
    uint64_t offs[64];
    struct walk w;

    build3(g_dir, names); /* ends 300, 600, 900 */
    ix = open_ix(g_dir, 64, 4, NULL);
    cr_assert_eq(ix_delete_below(ix, 300), 0, "300 is not below 300");
    cr_assert_eq(ix_delete_below(ix, 600), 1);
    cr_assert_eq(query_all(ix, "k100", offs), 0u);
    cr_assert_eq(query_all(ix, "k400", offs), 1u);
    cr_assert_eq(ix_delete_below(ix, UINT64_MAX), 1);
    cr_assert_eq(ix_delete_below(ix, UINT64_MAX), 0);
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 1);
    cr_assert_str_eq(w.names[0], names[2]);
    cr_assert_eq(count_dir(g_dir), 1);
    cr_assert_eq(query_all(ix, "k900", offs), 1u);
    cr_assert_eq(offs[0], 900u);
    ix_close(ix);
}

/* ---- offline check ------------------------------------------------------- */

Test(indexfile, check_detects_a_corrupt_prev)
{
    struct ixsvc *ix = open_ix(g_dir, 1, 8, NULL);
    char msg[256], want[64], path[256];
    uint64_t durable;
    struct walk w;

    cr_assert_eq(put(ix, "x", 10, T0), 0);
    cr_assert_eq(put(ix, "y", 20, T0), 0);
    cr_assert_eq(put(ix, "z", 30, T0), 0);
    cr_assert_eq(ix_check(ix, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    walk(ix, &w);
    ix_close(ix);

    /* Entry 2 is at 40 + 4*1 + 20*2 = 84; its prev (1) at 84 + 16. */
    file_path(path, sizeof(path), g_dir, w.names[0]);
    poke_be32(path, 84 + 16, 5);
    ix = open_ix(g_dir, 1, 8, NULL);
    cr_assert_eq(ix_check(ix, msg, sizeof(msg)), SPK_ECORRUPT);
    snprintf(want, sizeof(want), "index/%s: entry 2 at byte 84: ", w.names[0]);
    cr_assert_eq(strncmp(msg, want, strlen(want)), 0, "message: %s", msg);
    /* A query walking the bad chain still ends (prev must descend). */
    {
        uint64_t offs[64];

        cr_assert_eq(query_all(ix, "z", offs), 1u);
    }
    /* A truncated message buffer stays terminated. */
    cr_assert_eq(ix_check(ix, msg, 8), SPK_ECORRUPT);
    cr_assert_eq(strlen(msg), 7u);
    ix_close(ix);
}

Test(indexfile, check_detects_a_bad_slot_count)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 8, NULL);
    char msg[256], path[256];
    uint64_t durable;
    struct walk w;

    cr_assert_eq(put(ix, "x", 10, T0), 0);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    walk(ix, &w);
    ix_close(ix);
    file_path(path, sizeof(path), g_dir, w.names[0]);
    poke_be32(path, 32, 2);
    ix = open_ix(g_dir, 64, 8, NULL);
    cr_assert_eq(ix_check(ix, msg, sizeof(msg)), SPK_ECORRUPT);
    cr_assert_not_null(strstr(msg, "hashSlotCount 2 but 1 slots"), "message: %s", msg);
    ix_close(ix);
}

/* ---- faults -------------------------------------------------------------- */

Test(indexfile, enospc_on_roll_changes_nothing)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 4, NULL);
    uint64_t offs[64];
    struct walk w;
    char msg[256];
    int i;

    for (i = 1; i <= 3; i++)
        cr_assert_eq(put(ix, "k", (uint64_t)i * 100, T0 + i * 1000), 0);
    sio_fault_arm(SIO_FALLOCATE, 1, SIO_FAULT_ONCE, ENOSPC);
    cr_assert_eq(put(ix, "k", 400, T0 + 4000), -ENOSPC);
    sio_fault_clear();

    walk(ix, &w);
    cr_assert_eq(w.nfiles, 1);
    cr_assert_eq(w.hdr[0].index_count, 4);
    cr_assert_eq(count_dir(g_dir), 1, "the failed file must be gone");
    cr_assert_eq(ix_end_phys(ix), 300u);
    cr_assert_eq(ix_check(ix, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(query_all(ix, "k", offs), 3u);

    /* The same record goes in once space is back. */
    cr_assert_eq(put(ix, "k", 400, T0 + 4000), 0);
    cr_assert_eq(query_all(ix, "k", offs), 4u);
    cr_assert_eq(offs[0], 400u);
    cr_assert_eq(ix_check(ix, msg, sizeof(msg)), 0, "%s", msg);
    ix_close(ix);
}

Test(indexfile, failed_roll_mid_record_is_all_or_nothing)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 4, NULL);
    uint64_t offs[64];
    struct walk w;

    cr_assert_eq(put(ix, "a b", 100, T0), 0); /* one entry of room left */
    sio_fault_arm(SIO_MMAP, 1, SIO_FAULT_ONCE, ENOMEM);
    cr_assert_eq(put(ix, "c d", 200, T0 + 1000), -ENOMEM);
    sio_fault_clear();
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 1);
    cr_assert_eq(w.hdr[0].index_count, 3, "c must not have been written");
    cr_assert_eq(ix_end_phys(ix), 100u);
    cr_assert_eq(query_all(ix, "c", offs), 0u);
    cr_assert_eq(count_dir(g_dir), 1);

    cr_assert_eq(put(ix, "c d", 200, T0 + 1000), 0);
    cr_assert_eq(query_all(ix, "c", offs), 1u);
    cr_assert_eq(query_all(ix, "d", offs), 1u);
    walk(ix, &w);
    cr_assert_eq(w.nfiles, 2);
    cr_assert_eq(w.nent, 4);
    ix_close(ix);
}

Test(indexfile, flush_reports_durable_end_and_syncs_only_changes)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 4, NULL);
    uint64_t durable = 1;
    unsigned long calls;

    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(durable, 0u);
    cr_assert_eq(sio_calls(SIO_MSYNC), 0u);

    cr_assert_eq(put(ix, "a", 100, T0), 0);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(durable, 100u);
    calls = sio_calls(SIO_MSYNC);
    cr_assert_eq(calls, 1u);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(sio_calls(SIO_MSYNC), calls, "nothing changed, nothing to sync");
    cr_assert_eq(durable, 100u);

    /* A roll leaves two changed files. */
    cr_assert_eq(put(ix, "b c d", 200, T0), 0);
    cr_assert_eq(ix_flush(ix, &durable), 0);
    cr_assert_eq(durable, 200u);
    cr_assert_eq(sio_calls(SIO_MSYNC), calls + 2);
    ix_close(ix);
}

Test(indexfile, flush_failure_is_sticky)
{
    struct ixsvc *ix = open_ix(g_dir, 64, 4, NULL);
    uint64_t durable = 42, offs[64];
    unsigned long calls;

    cr_assert_eq(put(ix, "a", 100, T0), 0);
    sio_fault_arm(SIO_MSYNC, 1, SIO_FAULT_ONCE, EIO);
    cr_assert_eq(ix_flush(ix, &durable), -EIO);
    cr_assert_eq(durable, 42u, "not set on failure");
    calls = sio_calls(SIO_MSYNC);
    /* The fault was a one-off, but a retry must not claim durability. */
    cr_assert_eq(ix_flush(ix, &durable), -EIO);
    cr_assert_eq(sio_calls(SIO_MSYNC), calls);
    /* The index itself keeps working. */
    cr_assert_eq(put(ix, "b", 200, T0), 0);
    cr_assert_eq(query_all(ix, "b", offs), 1u);
    ix_close(ix);
}

/* ---- threads ------------------------------------------------------------- */

struct writer {
    struct ixsvc *ix;
    int count;
    int rc;
};

static void *
writer_main(void *arg)
{
    struct writer *wr = arg;
    char key[16];
    int i;

    for (i = 1; i <= wr->count && wr->rc == 0; i++) {
        snprintf(key, sizeof(key), "k%d", i % 7);
        wr->rc = put(wr->ix, key, (uint64_t)i, T0 + i);
    }
    return NULL;
}

Test(indexfile, queries_run_alongside_puts)
{
    struct ixsvc *ix = open_ix(g_dir, 16, 512, NULL);
    struct writer wr = {ix, 3000, 0};
    uint64_t offs[64], durable;
    pthread_t t;
    size_t n, j;
    int i;

    cr_assert_eq(pthread_create(&t, NULL, writer_main, &wr), 0);
    for (i = 0; i < 2000; i++) {
        cr_assert_eq(ix_query(ix, "T", 1, "k3", 2, 64, 0, INT64_MAX, offs, &n), 0);
        /* Newest first and every hit really is a k3 record. */
        for (j = 0; j < n; j++) {
            cr_assert_eq(offs[j] % 7, 3u);
            if (j > 0)
                cr_assert_gt(offs[j - 1], offs[j]);
        }
        if (i % 200 == 0)
            cr_assert_eq(ix_flush(ix, &durable), 0);
    }
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(wr.rc, 0);
    cr_assert_eq(ix_end_phys(ix), 3000u);
    cr_assert_eq(query_all(ix, "k3", offs), 64u);
    cr_assert_eq(offs[0], 2999u); /* 2999 = 7*428 + 3 */
    cr_assert_eq(ix_check(ix, NULL, 0), 0);
    ix_close(ix);
}
