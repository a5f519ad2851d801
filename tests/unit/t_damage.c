/*
 * t_damage.c - single faults that the store-level reliability tests
 * (tests/crash/tails.c for T3, tests/crash/bitflip.c for T4) found
 * mishandled, each pinned by one small case:
 *
 *   short_last_segment      a last CommitLog file cut short above the
 *                           checkpoint is a torn tail, not a reason to
 *                           refuse to start;
 *   cq_unit_flip            a flipped bit in an old ConsumeQueue unit is
 *                           found after a crash and the queue rebuilt (R8);
 *   index_entry_flip        likewise for an index entry's key hash and
 *                           time difference;
 *   old_queue_offset_flip   a record below the checkpoint whose QUEUEOFFSET
 *                           is flipped never displaces another message of
 *                           its queue (the rebuild trusted it);
 *   check_index_header      `store check` names an index header whose end
 *                           offset disagrees with its last entry;
 *   unit_names_another_record  a queue unit pointing at an intact record of
 *                           another queue (after a clean shutdown, when
 *                           units are not all checked) never hands it out.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "store/checkpoint.h"
#include "store/inspect.h"
#include "store/record.h"
#include "store/store.h"
#include "storetest.h"

#define DSEG (96 * 1024)
#define DN 200

static char *base;
static struct st_cfg cfg;
static struct {
    uint64_t phys, end, qoff;
    int32_t qid;
    size_t len;
} rec[DN];

/* DN messages over queues 0..1 of "Dmg", each with key k<i>, then a crash. */
static void
build(void)
{
    struct store *s;

    base = st_tmpdir_fast("damage");
    st_cfg_init(&cfg, base, DSEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < DN; i++) {
        uint8_t body[1600];
        char props[64];
        struct store_put_result res;
        rec[i].len = st_body_len(i, 20, 1500);
        rec[i].qid = (int32_t)(i % 2);
        st_body_fill(i, body, rec[i].len);
        snprintf(props, sizeof(props), "KEYS\001k%u\002TAGS\001T%u\002", i, i % 3);
        struct rec_msg m = st_msg("Dmg", rec[i].qid, body, rec[i].len, props, strlen(props));
        cr_assert(eq(int, store_put_sync(s, &m, &res), 0));
        rec[i].phys = res.phys_off;
        rec[i].end = res.end;
        rec[i].qoff = res.queue_off;
    }
    st_wait_dispatched(s);
    store_abandon(s);
}

static void
teardown(void)
{
    st_cfg_free(&cfg);
    st_rmrf(base);
    free(base);
}

TestSuite(damage, .init = build, .fini = teardown, .timeout = 120);

static void
set_ckpt(uint64_t off)
{
    char *p = st_path(base, "checkpoint");
    static uint8_t buf[CKPT_FILE_SIZE];
    struct ckpt c;

    cr_assert(eq(int, ckpt_read(p, &c), 0));
    c.ext_valid = 1;
    c.clog_durable = c.cq_durable = c.index_durable = off;
    ckpt_encode(&c, buf);
    st_write_file(p, buf, sizeof(buf));
    free(p);
}

static void
flip(const char *rel, uint64_t pos, unsigned bit)
{
    char *p = st_path(base, rel);
    uint8_t b;
    int fd = open(p, O_RDWR | O_CLOEXEC);

    cr_assert(ne(int, fd, -1), "%s", p);
    cr_assert(eq(int, (int)pread(fd, &b, 1, (off_t)pos), 1));
    b ^= (uint8_t)(1u << bit);
    cr_assert(eq(int, (int)pwrite(fd, &b, 1, (off_t)pos), 1));
    close(fd);
    free(p);
}

/* Every message but <skip> (or -1) reads back at its queue offset. */
static void
all_readable(struct store *s, long skip)
{
    uint8_t buf[4096];
    struct rec_view v;
    uint64_t phys;

    st_wait_dispatched(s);
    for (long i = 0; i < DN; i++) {
        if (i == skip)
            continue;
        cr_assert(st_get_one(s, "Dmg", rec[i].qid, rec[i].qoff, buf, sizeof(buf), &v, &phys),
                  "message %ld (queue %d offset %" PRIu64 ") is not readable", i, rec[i].qid,
                  rec[i].qoff);
        cr_assert(eq(u64, phys, rec[i].phys), "message %ld read from the wrong record", i);
        cr_assert(st_body_ok((uint32_t)i, v.body, v.body_len));
    }
}

static char *
first_file(const char *rel_dir)
{
    char *dir = st_path(base, rel_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    char *out = NULL;

    cr_assert(not(eq(ptr, d, NULL)), "%s", dir);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char rel[512];
        snprintf(rel, sizeof(rel), "%s/%s", rel_dir, e->d_name);
        if (out == NULL || strcmp(rel, out) < 0) {
            free(out);
            out = strdup(rel);
        }
    }
    closedir(d);
    free(dir);
    return out;
}

Test(damage, short_last_segment)
{
    size_t k = DN - 2;
    uint64_t cut = rec[k].phys + 30;
    char name[64];
    struct store_open_info info;

    snprintf(name, sizeof(name), "commitlog/%020" PRIu64, cut - cut % DSEG);
    char *p = st_path(base, name);
    cr_assert(eq(int, truncate(p, (off_t)(cut % DSEG)), 0));
    free(p);
    set_ckpt(rec[DN - 3].phys);
    struct store *s = st_open(&cfg, &info);
    cr_expect(eq(u64, info.clog_max, rec[k].phys));
    store_close(s);
}

Test(damage, cq_unit_flip)
{
    /* Unit 40 of queue 0: a bit of its physical offset and of its size. */
    flip("consumequeue/Dmg/0/00000000000000000000", 40 * 20 + 6, 3);
    flip("consumequeue/Dmg/0/00000000000000000000", 41 * 20 + 11, 0);
    set_ckpt(rec[DN - 3].phys);
    /* Without the index nothing replays the old part of the log, which
     * would rewrite the units as a side effect: only the check finds them. */
    cfg.cfg.messageIndexEnable = 0;
    struct store_open_info info;
    struct store *s = st_open(&cfg, &info);
    cr_expect(eq(uint, info.rebuilt_queues, 1));
    all_readable(s, -1);
    store_close(s);
}

Test(damage, index_entry_flip)
{
    char *f = first_file("index");
    uint64_t entries = 40 + 4ull * (uint64_t)cfg.cfg.maxHashSlotNum;
    uint64_t offs[64];
    size_t n = 0, hits = 0;

    flip(f, entries + 5 * 20 + 1, 2);  /* entry 5: key hash */
    flip(f, entries + 9 * 20 + 15, 6); /* entry 9: time difference */
    free(f);
    /* Everything durable: recovery keeps the index files as they are, so
     * only its check can find the flips. */
    set_ckpt(rec[DN - 1].end);
    struct store *s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < DN; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%u", i);
        n = 0;
        cr_assert(eq(int, store_query_key(s, "Dmg", key, 64, 0, INT64_MAX, offs, &n), 0));
        for (size_t j = 0; j < n; j++)
            hits += offs[j] == rec[i].phys;
    }
    cr_expect(eq(sz, hits, (size_t)DN), "keys found for %zu of %d messages", hits, DN);
    store_close(s);
}

Test(damage, old_queue_offset_flip)
{
    /* Record 30's QUEUEOFFSET (byte 27: its lowest byte) now names the
     * next message of its queue. */
    long r = 30;
    char name[64];

    snprintf(name, sizeof(name), "commitlog/%020" PRIu64, rec[r].phys - rec[r].phys % DSEG);
    flip(name, rec[r].phys % DSEG + 27, 0);
    set_ckpt(rec[DN - 3].phys);
    struct store *s = NULL;
    struct store_open_info info;
    char err[512];
    int rc = store_open(&cfg.cfg, &s, &info, err, sizeof(err));
    if (rc != 0) {
        /* Refusing is allowed (R7), but only loudly and precisely. */
        cr_expect(eq(int, rc, SPK_ECORRUPT), "%s", err);
        return;
    }
    all_readable(s, r);
    store_close(s);
}

static void
count_problem(void *arg, const struct insp_finding *f)
{
    unsigned *n = arg;

    if (f->severity == INSP_PROBLEM && strstr(f->file, "/index/") != NULL)
        (*n)++;
}

Test(damage, check_index_header)
{
    char *f = first_file("index");
    struct insp *in;
    char err[256];
    unsigned problems = 0;

    flip(f, 24 + 5, 1); /* endPhyOffset */
    free(f);
    cr_assert(eq(int, insp_open(base, count_problem, &problems, &in, err, sizeof(err)), 0), "%s",
              err);
    insp_walk_records(in, NULL, NULL);
    insp_walk_index(in, (uint32_t)cfg.cfg.maxHashSlotNum, (uint32_t)cfg.cfg.maxIndexNum, NULL,
                    NULL);
    insp_close(in);
    cr_expect(ge(uint, problems, 1), "the flipped index header went unreported");
}

Test(damage, unit_names_another_record)
{
    struct store *s = st_open(&cfg, NULL);
    uint8_t unit[12], buf[4096];
    struct rec_view v;
    uint64_t phys;

    st_wait_dispatched(s);
    store_close(s); /* a clean shutdown: the next open checks no units */
    /* Queue 0's unit 10 (message 20) now names message 21, of queue 1. */
    be_put64(unit, rec[21].phys);
    be_put32(unit + 8, (uint32_t)(rec[21].end - rec[21].phys));
    char *p = st_path(base, "consumequeue/Dmg/0/00000000000000000000");
    int fd = open(p, O_RDWR | O_CLOEXEC);
    cr_assert(ne(int, fd, -1), "%s", p);
    cr_assert(eq(int, (int)pwrite(fd, unit, sizeof(unit), 10 * 20), (int)sizeof(unit)));
    close(fd);
    free(p);
    s = st_open(&cfg, NULL);
    static struct store_get_result res;
    cr_assert(eq(int, store_get(s, "Dmg", 0, 10, 4, 1 << 20, NULL, &res), 0));
    for (size_t i = 0; i < res.count; i++)
        cr_assert(ne(u64, res.msgs[i].phys_off, rec[21].phys),
                  "queue 0 handed out a message of queue 1 at offset %" PRIu64,
                  res.msgs[i].queue_off);
    cr_assert(gt(u32, res.count, 0), "the intact messages after it are still read");
    cr_assert(eq(u64, res.msgs[0].queue_off, 11));
    store_get_release(&res);
    /* Its neighbours are untouched. */
    cr_assert(st_get_one(s, "Dmg", 0, 11, buf, sizeof(buf), &v, &phys));
    cr_assert(eq(u64, phys, rec[22].phys));
    store_close(s);
}
