/*
 * t_recovery.c - what store_open makes of damaged and failing disks
 * (RELIABILITY.md T3-T6, requirements R3, R4, R6, R7):
 *
 *   torn_*      every truncation point inside the last three records of a
 *               golden store, the rest of the segment filled with zeros,
 *               0xFF or random bytes: recovery lands exactly on the valid
 *               prefix and the next append continues there (T3);
 *   flip_*      single-bit flips in every field of a record below the
 *               checkpoint (refuse to start), in the tail above it
 *               (truncate), and above it with a valid record behind it
 *               (refuse: mid-log corruption) (T4, R7);
 *   enospc_*    a real 2 MiB tmpfs filled up, and ENOSPC injected into
 *               fallocate (T5, R4);
 *   sweep_*     fail the Nth call of each I/O kind, once or for good,
 *               during open + synced puts + close; afterwards a clean
 *               reopen must show every acknowledged message (T6).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/errors.h"
#include "store/checkpoint.h"
#include "store/record.h"
#include "store/store.h"
#include "store/storeio.h"
#include "storetest.h"

#define SEG (96 * 1024)
#define MAXG 400

static const char *const topics[] = {"TopicA", "TopicB"};

/* One record of the golden store. */
struct grec {
    uint32_t seq;
    const char *topic;
    int32_t qid;
    size_t body_len;
    uint64_t phys, end, qoff;
};

struct golden {
    char *base; /* temporary directory holding everything */
    char *gold; /* the pristine store */
    char *work; /* the copy each variant damages */
    struct grec r[MAXG];
    size_t n;
    struct st_cfg cfg; /* root = work */
};

static struct golden G;
static struct store_get_result gres;

static void
fmt_props(uint32_t seq, char *buf, size_t len)
{
    snprintf(buf, len, "KEYS\001key-%u\002TAGS\001T%u\002", seq, seq % 3);
}

/* Puts message <seq> with a body of <body_len> bytes, synchronously. */
static int
put_msg(struct store *s, uint32_t seq, const char *topic, int32_t qid, size_t body_len,
        struct store_put_result *res)
{
    uint8_t *body = malloc(body_len ? body_len : 1);
    char props[64];
    int rc;

    st_body_fill(seq, body, body_len);
    fmt_props(seq, props, sizeof(props));
    struct rec_msg m = st_msg(topic, qid, body, body_len, props, strlen(props));
    rc = store_put_sync(s, &m, res);
    free(body);
    return rc;
}

/* The encoded length of message <seq> with an empty body. */
static size_t
overhead(uint32_t seq, const char *topic)
{
    char props[64];

    fmt_props(seq, props, sizeof(props));
    struct rec_msg m = st_msg(topic, 0, NULL, 0, props, strlen(props));
    return rec_length(&m, 1);
}

static void
golden_put(struct store *s, size_t body_len)
{
    struct grec *g = &G.r[G.n];
    struct store_put_result res;
    uint32_t seq = (uint32_t)G.n;

    cr_assert(lt(sz, G.n, (size_t)MAXG));
    g->seq = seq;
    g->topic = topics[seq % 2];
    g->qid = (int32_t)((seq / 2) % 2);
    g->body_len = body_len;
    cr_assert(eq(int, put_msg(s, seq, g->topic, g->qid, body_len, &res), 0), "golden put %u", seq);
    g->phys = res.phys_off;
    g->end = res.end;
    g->qoff = res.queue_off;
    G.n++;
}

/* Puts the next message with a record of exactly <len> bytes. */
static void
golden_put_len(struct store *s, size_t len)
{
    uint32_t seq = (uint32_t)G.n;
    size_t ovh = overhead(seq, topics[seq % 2]);

    cr_assert(ge(sz, len, ovh));
    golden_put(s, len - ovh);
    cr_assert(eq(u64, G.r[G.n - 1].end - G.r[G.n - 1].phys, (uint64_t)len));
}

/*
 * Builds the golden store: SYNC_FLUSH, 96 KiB segments, ~150 messages of
 * varied sizes over 4 queues (at least one roll-over), then three tail
 * records of 560, 700 and 530 bytes in the last segment, each crossing a
 * 512-byte boundary and the middle one crossing a 4 KiB boundary. The
 * store is abandoned (crash: abort file kept).
 */
static void
golden_build(void)
{
    struct st_cfg gcfg;
    struct store *s;

    memset(&G, 0, sizeof(G));
    G.base = st_tmpdir_fast("recov");
    G.gold = st_path(G.base, "gold");
    G.work = st_path(G.base, "work");
    st_cfg_init(&gcfg, G.gold, SEG, STORE_SYNC_FLUSH);
    s = st_open(&gcfg, NULL);
    for (uint32_t i = 0; i < 150; i++)
        golden_put(s, st_body_len(i, 20, 1500));
    cr_assert(lt(u64, (uint64_t)SEG, G.r[G.n - 1].end), "no roll-over in the golden store");

    /* Room for the tail, the pad, and later appends in this segment. */
    while (SEG - G.r[G.n - 1].end % SEG < 12 * 1024)
        golden_put(s, 3000);
    uint64_t e = G.r[G.n - 1].end;
    /* The middle tail record starts 300 bytes before a 4 KiB boundary. */
    uint64_t b = (e + 4095) / 4096 * 4096;
    while (b - 300 - 560 < e + 200)
        b += 4096;
    golden_put_len(s, (size_t)(b - 300 - 560 - e)); /* pad */
    golden_put_len(s, 560);
    golden_put_len(s, 700);
    golden_put_len(s, 530);
    const struct grec *t = &G.r[G.n - 3];
    cr_assert(eq(u64, t[1].phys, b - 300));
    for (int i = 0; i < 3; i++) {
        cr_assert(eq(u64, t[i].phys / SEG, t[2].phys / SEG), "tail not in one segment");
        cr_assert(ne(u64, t[i].phys / 512, (t[i].end - 1) / 512));
    }
    st_wait_dispatched(s);
    store_abandon(s);
    st_cfg_free(&gcfg);
    st_cfg_init(&G.cfg, G.work, SEG, STORE_SYNC_FLUSH);
}

static void
golden_free(void)
{
    st_cfg_free(&G.cfg);
    if (G.base)
        st_rmrf(G.base);
    free(G.base);
    free(G.gold);
    free(G.work);
    memset(&G, 0, sizeof(G));
}

static void
recov_init(void)
{
    sio_fault_clear();
    golden_build();
}

static void
recov_fini(void)
{
    sio_fault_clear();
    golden_free();
}

TestSuite(recovery, .init = recov_init, .fini = recov_fini, .timeout = 600);

/* Restores the work copy from the golden store. */
static void
restore(void)
{
    st_rmrf(G.work);
    st_copytree(G.gold, G.work);
}

/* Rewrites <root>/checkpoint with the three durable offsets set. */
static void
set_ckpt(const char *root, uint64_t clog, uint64_t cq, uint64_t ix)
{
    char *p = st_path(root, "checkpoint");
    static uint8_t buf[CKPT_FILE_SIZE];
    struct ckpt c;

    memset(&c, 0, sizeof(c));
    if (ckpt_read(p, &c) != 0)
        memset(&c, 0, sizeof(c));
    c.ext_valid = 1;
    c.clog_durable = clog;
    c.cq_durable = cq;
    c.index_durable = ix;
    ckpt_encode(&c, buf);
    st_write_file(p, buf, sizeof(buf));
    free(p);
}

static char *
seg_file(const char *root, uint64_t off)
{
    char name[64];

    snprintf(name, sizeof(name), "commitlog/%020" PRIu64, off - off % SEG);
    return st_path(root, name);
}

enum fill { FILL_ZERO, FILL_FF, FILL_RANDOM };

/* Overwrites bytes [off, end of its segment) of the work copy. */
static void
damage_from(uint64_t off, enum fill how, uint32_t *rnd)
{
    char *p = seg_file(G.work, off);
    size_t pos = (size_t)(off % SEG), len = SEG - pos;
    size_t flen;
    uint8_t *orig = st_read_file(p, &flen);
    uint8_t *buf = malloc(len);

    cr_assert(eq(sz, flen, (size_t)SEG), "segment files are preallocated: %s", p);
    for (size_t i = 0; i < len; i++) {
        switch (how) {
        case FILL_ZERO:
            buf[i] = 0;
            break;
        case FILL_FF:
            buf[i] = 0xFF;
            break;
        case FILL_RANDOM:
            *rnd = *rnd * 1103515245u + 12345u;
            buf[i] = (uint8_t)(*rnd >> 16);
            break;
        }
    }
    /* The first damaged byte must really change, or the cut is elsewhere. */
    if (buf[0] == orig[pos])
        buf[0] = (uint8_t)~orig[pos];
    st_pwrite_file(p, buf, len, pos);
    free(buf);
    free(orig);
    free(p);
}

static void
flip_bit(uint64_t off, unsigned bit)
{
    char *p = seg_file(G.work, off);
    uint8_t b;
    int fd = open(p, O_RDWR | O_CLOEXEC);

    cr_assert(ne(int, fd, -1));
    cr_assert(eq(int, (int)pread(fd, &b, 1, (off_t)(off % SEG)), 1));
    b ^= (uint8_t)(1u << bit);
    cr_assert(eq(int, (int)pwrite(fd, &b, 1, (off_t)(off % SEG)), 1));
    close(fd);
    free(p);
}

/* Opens the work copy; returns the rc and leaves the text in err. */
static int
try_open(struct store **s, struct store_open_info *info, char *err, size_t errlen)
{
    *s = NULL;
    err[0] = '\0';
    return store_open(&G.cfg.cfg, s, info, err, errlen);
}

/*
 * Checks that the open store holds exactly records [0, k) of the golden
 * store: written ends at r[k].phys, each queue's max is its count of
 * survivors, every survivor reads back with its body, nothing else is
 * readable, and a new put lands at r[k].phys with r[k]'s queue offset.
 * Returns 0 when all holds, else writes the first problem into <why>.
 */
static int
check_prefix(struct store *s, size_t k, char *why, size_t whylen)
{
    uint64_t want_end = G.r[k].phys;

    if (store_written(s) != want_end) {
        snprintf(why, whylen, "written %" PRIu64 ", want %" PRIu64, store_written(s), want_end);
        return -1;
    }
    st_wait_dispatched(s);
    for (int t = 0; t < 2; t++) {
        for (int32_t q = 0; q < 2; q++) {
            uint64_t min, max, want = 0;
            size_t idx[MAXG], ni = 0;

            for (size_t i = 0; i < k; i++)
                if (G.r[i].topic == topics[t] && G.r[i].qid == q)
                    idx[ni++] = i;
            want = ni;
            if (store_queue_bounds(s, topics[t], q, &min, &max) != 0 || max != want) {
                snprintf(why, whylen, "%s-%d: max offset %" PRIu64 ", want %" PRIu64, topics[t], q,
                         max, want);
                return -1;
            }
            uint64_t qoff = 0;
            while (qoff < max) {
                memset(&gres, 0, sizeof(gres));
                if (store_get(s, topics[t], q, qoff, STORE_MAX_BATCH, 4 << 20, NULL, &gres) != 0 ||
                    gres.status != STORE_FOUND || gres.count == 0) {
                    snprintf(why, whylen, "%s-%d@%" PRIu64 ": %s", topics[t], q, qoff,
                             store_get_status_name(gres.status));
                    store_get_release(&gres);
                    return -1;
                }
                for (size_t j = 0; j < gres.count; j++) {
                    const struct grec *g = &G.r[idx[qoff + j]];
                    struct rec_view v;
                    const struct store_msg_view *mv = &gres.msgs[j];
                    if (mv->phys_off != g->phys || mv->queue_off != qoff + j ||
                        rec_parse(mv->data, mv->len, mv->phys_off, REC_CHECK_CRC, &v, NULL) <= 0 ||
                        v.body_len != g->body_len || !st_body_ok(g->seq, v.body, v.body_len)) {
                        snprintf(why, whylen,
                                 "%s-%d@%" PRIu64 ": wrong or damaged message (seq %u)", topics[t],
                                 q, qoff + j, g->seq);
                        store_get_release(&gres);
                        return -1;
                    }
                }
                qoff += gres.count;
                store_get_release(&gres);
            }
            memset(&gres, 0, sizeof(gres));
            store_get(s, topics[t], q, max, 1, 1 << 20, NULL, &gres);
            if (gres.count != 0) {
                snprintf(why, whylen, "%s-%d: a message beyond the max offset", topics[t], q);
                store_get_release(&gres);
                return -1;
            }
        }
    }
    /* The cut records are gone from the index too. */
    char key[32];
    uint64_t offs[64];
    size_t n = 0;
    snprintf(key, sizeof(key), "key-%u", G.r[k].seq);
    if (store_query_key(s, G.r[k].topic, key, 64, 0, INT64_MAX, offs, &n) == 0 && n != 0) {
        snprintf(why, whylen, "the index still finds %s of a cut record", key);
        return -1;
    }
    /* The next append continues exactly at the cut. */
    struct store_put_result res;
    int rc = put_msg(s, 9999, G.r[k].topic, G.r[k].qid, 40, &res);
    if (rc != 0 || res.phys_off != want_end || res.queue_off != G.r[k].qoff) {
        snprintf(why, whylen,
                 "next put: rc %d at %" PRIu64 " qoff %" PRIu64 ", want %" PRIu64 " qoff %" PRIu64,
                 rc, res.phys_off, res.queue_off, want_end, G.r[k].qoff);
        return -1;
    }
    return 0;
}

/* Index of the record containing byte <off>. */
static size_t
rec_at(uint64_t off)
{
    for (size_t i = 0; i < G.n; i++)
        if (off >= G.r[i].phys && off < G.r[i].end)
            return i;
    cr_fatal("offset %" PRIu64 " is in no record", off);
    return 0;
}

static void
torn_sweep(enum fill how)
{
    uint64_t from = G.r[G.n - 3].phys, to = G.r[G.n - 1].end;
    uint32_t rnd = 12345u + (uint32_t)how;
    unsigned bad = 0, cases = 0;
    char first[600] = "";

    for (uint64_t cut = from; cut < to; cut++) {
        struct store *s;
        struct store_open_info info;
        char err[512], why[300] = "";
        size_t k = rec_at(cut);
        int rc;

        restore();
        /* The checkpoint's durable point lies below all three records, so
         * each cut is an ordinary torn tail (R7). */
        set_ckpt(G.work, from, from, from);
        damage_from(cut, how, &rnd);
        cases++;
        rc = try_open(&s, &info, err, sizeof(err));
        if (rc != 0) {
            snprintf(why, sizeof(why), "store_open: %s: %s", spk_strerror(rc), err);
        } else {
            if (info.clog_max != G.r[k].phys)
                snprintf(why, sizeof(why), "info.clog_max %" PRIu64 ", want %" PRIu64,
                         info.clog_max, G.r[k].phys);
            else
                check_prefix(s, k, why, sizeof(why));
            store_abandon(s); /* the copy is thrown away: skip the final flush */
        }
        if (why[0] != '\0') {
            if (bad++ == 0)
                snprintf(first, sizeof(first),
                         "cut at %" PRIu64 " (byte %" PRIu64 " of record %zu at %" PRIu64 "): %s",
                         cut, cut - G.r[k].phys, k, G.r[k].phys, why);
        }
    }
    cr_expect(eq(uint, bad, 0), "%u of %u truncation points recovered wrongly; first: %s", bad,
              cases, first);
    cr_expect(eq(u64, (uint64_t)cases, to - from));
}

Test(recovery, torn_tail_zeros)
{
    torn_sweep(FILL_ZERO);
}

Test(recovery, torn_tail_ff)
{
    torn_sweep(FILL_FF);
}

Test(recovery, torn_tail_random)
{
    torn_sweep(FILL_RANDOM);
}

/* The byte offsets (inside a record) to flip: the first, a middle and the
 * last byte of every field, computed from the record's own lengths. */
static size_t
flip_sample(const struct grec *g, size_t *offs, const char **names, size_t cap)
{
    struct field {
        const char *name;
        size_t start, len;
    } f[32];
    size_t nf = 0, n = 0;
    size_t body = g->body_len, tl = strlen(g->topic), total = (size_t)(g->end - g->phys);
    size_t fixed[][2] = {{0, 4},  {4, 4},  {8, 4},  {12, 4}, {16, 4}, {20, 8}, {28, 8}, {36, 4},
                         {40, 8}, {48, 8}, {56, 8}, {64, 8}, {72, 4}, {76, 8}, {84, 4}};
    static const char *const fixed_names[] = {
        "TOTALSIZE",      "MAGICCODE",      "BODYCRC",        "QUEUEID",          "FLAG",
        "QUEUEOFFSET",    "PHYSICALOFFSET", "SYSFLAG",        "BORNTIMESTAMP",    "BORNHOST",
        "STORETIMESTAMP", "STOREHOST",      "RECONSUMETIMES", "PREPAREDTXOFFSET", "BODYLEN"};

    for (size_t i = 0; i < 15; i++)
        f[nf++] = (struct field){fixed_names[i], fixed[i][0], fixed[i][1]};
    f[nf++] = (struct field){"BODY", 88, body};
    f[nf++] = (struct field){"TOPICLEN", 88 + body, 1};
    f[nf++] = (struct field){"TOPIC", 89 + body, tl};
    f[nf++] = (struct field){"PROPLEN", 89 + body + tl, 2};
    f[nf++] = (struct field){"PROPS", 91 + body + tl, total - 20 - (91 + body + tl)};
    f[nf++] = (struct field){"CRC32 property", total - 20, 20};
    for (size_t i = 0; i < nf; i++) {
        size_t cand[3] = {f[i].start, f[i].start + f[i].len / 2, f[i].start + f[i].len - 1};
        if (f[i].len == 0)
            continue;
        for (int c = 0; c < 3 && n < cap; c++) {
            if (c > 0 && cand[c] == cand[c - 1])
                continue;
            offs[n] = cand[c];
            names[n] = f[i].name;
            n++;
        }
    }
    return n;
}

/* Does <err> name the segment file and the record's offset (absolute, or
 * inside the file) as a number of its own? */
static int
err_names_place(const char *err, uint64_t phys)
{
    char file[32], num[32];
    const char *p;

    snprintf(file, sizeof(file), "%020" PRIu64, phys - phys % SEG);
    if (strstr(err, file) == NULL)
        return 0;
    for (int pass = 0; pass < 2; pass++) {
        snprintf(num, sizeof(num), "%" PRIu64, pass == 0 ? phys : phys % SEG);
        for (p = strstr(err, num); p != NULL; p = strstr(p + 1, num)) {
            int before = p == err || p[-1] < '0' || p[-1] > '9';
            char after = p[strlen(num)];
            if (before && (after < '0' || after > '9'))
                return 1;
        }
    }
    return 0;
}

/*
 * Flips one bit at a time in record <ri> (every sampled field, two bits
 * each) with the checkpoint's offsets as given, and checks the outcome:
 * want_refuse: store_open fails with SPK_ECORRUPT naming file and offset;
 * otherwise:   store_open succeeds and holds exactly records [0, ri).
 */
static void
flip_sweep(size_t ri, uint64_t ck_clog, uint64_t ck_derived, int want_refuse)
{
    const struct grec *g = &G.r[ri];
    size_t offs[80];
    const char *names[80];
    size_t n = flip_sample(g, offs, names, 80);
    unsigned bad = 0, cases = 0;
    char first[700] = "";

    cr_assert(lt(sz, 40, n));
    for (size_t i = 0; i < n; i++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            struct store *s;
            struct store_open_info info;
            char err[512], why[400] = "";
            int rc;

            restore();
            set_ckpt(G.work, ck_clog, ck_derived, ck_derived);
            flip_bit(g->phys + offs[i], bit);
            cases++;
            rc = try_open(&s, &info, err, sizeof(err));
            if (want_refuse) {
                if (rc == 0) {
                    snprintf(why, sizeof(why), "store_open succeeded");
                    store_abandon(s);
                } else if (rc != SPK_ECORRUPT) {
                    snprintf(why, sizeof(why), "rc %d (%s), want SPK_ECORRUPT: %s", rc,
                             spk_strerror(rc), err);
                } else if (!err_names_place(err, g->phys)) {
                    snprintf(why, sizeof(why),
                             "the error does not name the file and offset %" PRIu64 ": %s", g->phys,
                             err);
                }
            } else {
                if (rc != 0) {
                    snprintf(why, sizeof(why), "store_open: %s: %s", spk_strerror(rc), err);
                } else {
                    check_prefix(s, ri, why, sizeof(why));
                    store_close(s);
                }
            }
            if (why[0] != '\0' && bad++ < 4) {
                size_t l = strlen(first);
                snprintf(first + l, sizeof(first) - l, "\n  %s byte %zu bit %u: %.200s", names[i],
                         offs[i], bit, why);
            }
        }
    }
    cr_expect(eq(uint, bad, 0), "%u of %u flips in record %zu mishandled:%s", bad, cases, ri,
              first);
}

Test(recovery, flip_below_checkpoint_refuses_to_start)
{
    /* A record in the middle of the last segment; the checkpoint says the
     * whole log is durable, while the derived data is only durable up to
     * the start of that segment, so recovery re-validates the segment. */
    size_t ri = G.n - 8;
    uint64_t seg_start = G.r[ri].phys - G.r[ri].phys % SEG;

    cr_assert(ge(u64, G.r[ri].phys, seg_start));
    flip_sweep(ri, G.r[G.n - 1].end, seg_start, 1);
}

Test(recovery, flip_in_tail_above_checkpoint_is_truncated)
{
    size_t ri = G.n - 1;

    flip_sweep(ri, G.r[ri].phys, G.r[ri].phys, 0);
}

Test(recovery, flip_followed_by_valid_record_refuses_to_start)
{
    size_t ri = G.n - 2;
    uint64_t ck = G.r[G.n - 3].phys;

    flip_sweep(ri, ck, ck, 1);
}

/* The operator's way out of that refusal: one start with
 * recoverCutDamagedTail cuts the log at the damaged record. */
Test(recovery, cut_damaged_tail_on_request)
{
    size_t ri = G.n - 2;
    uint64_t ck = G.r[G.n - 3].phys;
    struct store *s;
    struct store_open_info info;
    char err[512], why[400] = "";

    restore();
    set_ckpt(G.work, ck, ck, ck);
    flip_bit(G.r[ri].phys + 88 + G.r[ri].body_len / 2, 3); /* inside the body */
    cr_assert(eq(int, try_open(&s, &info, err, sizeof(err)), SPK_ECORRUPT));
    cr_assert(not(eq(ptr, strstr(err, "recoverCutDamagedTail"), NULL)), "%s", err);
    G.cfg.cfg.recoverCutDamagedTail = 1;
    int rc = try_open(&s, &info, err, sizeof(err));
    G.cfg.cfg.recoverCutDamagedTail = 0;
    cr_assert(eq(int, rc, 0), "%s", err);
    cr_expect(eq(int, check_prefix(s, ri, why, sizeof(why)), 0), "%s", why);
    store_close(s);
}

Test(recovery, corrupt_record_below_scan_is_never_delivered)
{
    /* The checkpoint a clean close writes: everything durable and
     * dispatched, so recovery may not look at old records at all. A
     * damaged body there must still never reach a consumer. */
    size_t ri = G.n - 8;
    const struct grec *g = &G.r[ri];
    struct store *s;
    struct store_open_info info;
    char err[512];
    int rc;

    restore();
    set_ckpt(G.work, G.r[G.n - 1].end, G.r[G.n - 1].end, G.r[G.n - 1].end);
    flip_bit(g->phys + 88 + g->body_len / 2, 2); /* inside the body */
    rc = try_open(&s, &info, err, sizeof(err));
    if (rc != 0) {
        cr_expect(eq(int, rc, SPK_ECORRUPT), "%s", err);
        return;
    }
    st_wait_dispatched(s);
    memset(&gres, 0, sizeof(gres));
    cr_assert(eq(int, store_get(s, g->topic, g->qid, g->qoff, 1, 1 << 20, NULL, &gres), 0));
    for (size_t j = 0; j < gres.count; j++) {
        struct rec_view v;
        const char *why = NULL;
        cr_expect(lt(int, 0,
                     rec_parse(gres.msgs[j].data, gres.msgs[j].len, gres.msgs[j].phys_off,
                               REC_CHECK_CRC, &v, &why)),
                  "store_get delivered a corrupt record at %" PRIu64 " (%s)", gres.msgs[j].phys_off,
                  why ? why : "");
    }
    store_get_release(&gres);
    struct store_msg_view mv;
    void *pin;
    cr_expect(lt(int, store_get_by_offset(s, g->phys, &mv, &pin), 0),
              "store_get_by_offset delivered a corrupt record");
    store_close(s);
}

/* ------------------------------------------------------------------ */
/* ENOSPC                                                             */

/*
 * Runs the disk-full scenario on the store at <root> (on a full-able
 * file system). Plain C, no Criterion calls: it runs in a child process.
 * Returns 0, or 1 with a reason in <msg>.
 */
static int
enospc_scenario(struct st_cfg *c, char *msg, size_t msglen)
{
    enum { MAXN = 4000 };
    static struct {
        uint32_t seq;
        int32_t qid;
        size_t len;
        uint64_t phys, qoff;
    } acked[MAXN];
    size_t na = 0;
    struct store *s = NULL;
    struct store_open_info info;
    char err[512];
    int rc, first_err = 0;
    uint32_t seq;

    rc = store_open(&c->cfg, &s, &info, err, sizeof(err));
    if (rc != 0) {
        snprintf(msg, msglen, "first open: %s: %s", spk_strerror(rc), err);
        return 1;
    }
    for (seq = 0; seq < MAXN; seq++) {
        struct store_put_result res;
        size_t len = st_body_len(seq, 1000, 3000);
        rc = put_msg(s, seq, "Full", (int32_t)(seq % 4), len, &res);
        if (rc == 0) {
            if (first_err != 0) {
                snprintf(msg, msglen, "put %u succeeded after a disk-full error", seq);
                return 1;
            }
            acked[na].seq = seq;
            acked[na].qid = (int32_t)(seq % 4);
            acked[na].len = len;
            acked[na].phys = res.phys_off;
            acked[na].qoff = res.queue_off;
            na++;
            continue;
        }
        if (rc != -ENOSPC && rc != SPK_EDISKFULL) {
            snprintf(msg, msglen, "put %u failed with %d (%s), want -ENOSPC or SPK_EDISKFULL", seq,
                     rc, spk_strerror(rc));
            return 1;
        }
        if (first_err == 0)
            first_err = rc;
        if (seq > (uint32_t)na + 20)
            break; /* a few more refusals are enough */
    }
    if (first_err == 0) {
        snprintf(msg, msglen, "%zu puts never filled the 2 MiB disk", na);
        return 1;
    }
    if (na < 50) {
        snprintf(msg, msglen, "only %zu puts before the disk was full", na);
        return 1;
    }

    /* Reads keep working: every acked message is there. */
    for (int pass = 0; pass < 2; pass++) {
        for (int w = 0; w < 5000 && store_dispatched(s) < store_written(s); w++)
            usleep(1000);
        for (size_t i = 0; i < na; i++) {
            static struct store_get_result r;
            struct rec_view v;
            int ok = 0;
            if (store_get(s, "Full", acked[i].qid, acked[i].qoff, 1, 1 << 20, NULL, &r) == 0) {
                ok = r.count == 1 && r.msgs[0].phys_off == acked[i].phys &&
                     rec_parse(r.msgs[0].data, r.msgs[0].len, r.msgs[0].phys_off, REC_CHECK_CRC, &v,
                               NULL) > 0 &&
                     v.body_len == acked[i].len && st_body_ok(acked[i].seq, v.body, v.body_len);
                store_get_release(&r);
            }
            if (!ok) {
                snprintf(msg, msglen, "%s: acked seq %u (queue %d offset %" PRIu64 ") unreadable",
                         pass == 0 ? "disk full" : "after reopen", acked[i].seq, acked[i].qid,
                         acked[i].qoff);
                return 1;
            }
        }
        if (pass == 1)
            break;
        rc = store_close(s);
        s = NULL;
        if (rc != 0 && rc != -ENOSPC) {
            snprintf(msg, msglen, "close on a full disk: %s", spk_strerror(rc));
            return 1;
        }
        rc = store_open(&c->cfg, &s, &info, err, sizeof(err));
        if (rc != 0) {
            snprintf(msg, msglen, "reopen on a full disk: %s: %s", spk_strerror(rc), err);
            return 1;
        }
    }
    rc = store_close(s);
    if (rc != 0 && rc != -ENOSPC) {
        snprintf(msg, msglen, "final close: %s", spk_strerror(rc));
        return 1;
    }
    snprintf(msg, msglen, "%zu acked before the disk filled (first refusal: %s)", na,
             spk_strerror(first_err));
    return 0;
}

/* Exit codes of the child. */
#define CHILD_PASS 0
#define CHILD_FAIL 1
#define CHILD_SKIP 77

Test(recovery, enospc_real_tmpfs, .timeout = 120)
{
    char *mnt = st_path(G.base, "mnt");
    char *root = st_path(mnt, "store");
    struct st_cfg c;
    int pfd[2];
    pid_t pid;
    int status;
    char msg[600] = "";

    cr_assert(eq(int, mkdir(mnt, 0755), 0));
    st_cfg_init(&c, root, 256 * 1024, STORE_SYNC_FLUSH);
    cr_assert(eq(int, pipe(pfd), 0));
    pid = fork();
    cr_assert(ne(int, pid, -1));
    if (pid == 0) {
        int code;
        close(pfd[0]);
        int rc = st_private_mounts();
        if (rc == 0 && mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0)
            rc = -errno;
        if (rc != 0) {
            snprintf(msg, sizeof(msg), "cannot mount a tmpfs here: %s", strerror(-rc));
            code = CHILD_SKIP;
        } else {
            code = enospc_scenario(&c, msg, sizeof(msg)) == 0 ? CHILD_PASS : CHILD_FAIL;
        }
        (void)!write(pfd[1], msg, strlen(msg));
        close(pfd[1]);
        _exit(code); /* the namespace and its tmpfs die with the child */
    }
    close(pfd[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(pfd[0], msg + got, sizeof(msg) - 1 - got)) > 0)
        got += (size_t)r;
    msg[got] = '\0';
    close(pfd[0]);
    cr_assert(eq(int, waitpid(pid, &status, 0), pid));
    st_cfg_free(&c);
    free(root);
    free(mnt);
    if (WIFSIGNALED(status))
        cr_fatal("the store died with signal %d (%s) on a full disk; %s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), msg);
    cr_assert(ne(int, WIFEXITED(status), 0));
    if (WEXITSTATUS(status) == CHILD_SKIP)
        cr_skip("%s", msg);
    cr_expect(eq(int, WEXITSTATUS(status), CHILD_PASS), "%s", msg);
    cr_log_info("tmpfs: %s", msg);
}

Test(recovery, enospc_injected_fallocate)
{
    struct store *s;
    struct store_put_result res;
    static struct grec acked[2000];
    size_t na = 0;
    int rc = 0;
    uint32_t seq;

    st_rmrf(G.work);
    s = st_open(&G.cfg, NULL);
    /* The first put creates the first segment (and the queue and index
     * files); only after that does the disk fill up. */
    rc = put_msg(s, 0, "Falloc", 0, 100, &res);
    cr_assert(eq(int, rc, 0));
    acked[na++] = (struct grec){0, "Falloc", 0, 100, res.phys_off, res.end, res.queue_off};
    rc = put_msg(s, 1, "Falloc", 1, 100, &res);
    cr_assert(eq(int, rc, 0));
    acked[na++] = (struct grec){1, "Falloc", 1, 100, res.phys_off, res.end, res.queue_off};
    st_wait_dispatched(s);
    /* R4: the next segment is prepared ahead of need. Give the allocator
     * a moment to do so, so that the disk is full only for the segment
     * after it. */
    char *next = seg_file(G.work, SEG);
    for (int i = 0; i < 2000 && !st_exists(next); i++)
        usleep(1000);
    cr_expect(eq(int, st_exists(next), 1), "the next segment was not prepared ahead of need");
    free(next);
    /* No new file can be reserved from now on. */
    sio_fault_arm(SIO_FALLOCATE, 1, SIO_FAULT_PERSISTENT, ENOSPC);
    for (seq = 2; seq < 2000; seq++) {
        size_t len = st_body_len(seq, 500, 2500);
        rc = put_msg(s, seq, "Falloc", (int32_t)(seq % 2), len, &res);
        if (rc != 0)
            break;
        acked[na++] = (struct grec){seq,          "Falloc", (int32_t)(seq % 2), len,
                                    res.phys_off, res.end,  res.queue_off};
    }
    cr_assert(eq(int, rc, -ENOSPC), "put %u: %d (%s), want -ENOSPC", seq, rc, spk_strerror(rc));
    cr_assert(lt(sz, 0, na));
    cr_expect(lt(u64, (uint64_t)SEG, acked[na - 1].end), "the first segment should have filled");
    cr_expect(eq(int, store_failed(s), 0), "ENOSPC at segment creation is not a flush failure");
    /* Refused again while the disk stays full, and nothing half-written. */
    uint64_t w = store_written(s);
    cr_expect(eq(int, put_msg(s, seq + 1, "Falloc", 0, 3000, &res), -ENOSPC));
    cr_expect(eq(u64, store_written(s), w));

    /* Space comes back: writing resumes without a restart (T5). */
    sio_fault_clear();
    seq += 2;
    rc = put_msg(s, seq, "Falloc", (int32_t)(seq % 2), 3000, &res);
    cr_expect(eq(int, rc, 0), "put after space was freed: %s", spk_strerror(rc));
    if (rc == 0)
        acked[na++] = (struct grec){seq,          "Falloc", (int32_t)(seq % 2), 3000,
                                    res.phys_off, res.end,  res.queue_off};
    cr_expect(eq(int, store_close(s), 0));

    s = st_open(&G.cfg, NULL);
    st_wait_dispatched(s);
    for (size_t i = 0; i < na; i++) {
        uint8_t buf[4096];
        struct rec_view v;
        uint64_t phys;
        cr_assert(
            eq(int,
               st_get_one(s, "Falloc", acked[i].qid, acked[i].qoff, buf, sizeof(buf), &v, &phys),
               1),
            "acked seq %u missing", acked[i].seq);
        cr_expect(eq(u64, phys, acked[i].phys));
        cr_expect(eq(int, st_body_ok(acked[i].seq, v.body, v.body_len), 1));
    }
    cr_expect(eq(int, store_close(s), 0));
}

/* ------------------------------------------------------------------ */
/* Fail-the-Nth-call sweep (T6)                                       */

/* Enough for a roll-over even on a fresh store (SEG is 96 KiB). */
#define SWEEP_W 28

struct sweep_stats {
    unsigned runs, injected_runs, open_failed, acked, problems;
    char first[800];
};

static void sweep_problem(struct sweep_stats *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
sweep_problem(struct sweep_stats *st, const char *fmt, ...)
{
    va_list ap;
    size_t l = strlen(st->first);

    if (st->problems++ < 4 && l < sizeof(st->first) - 2) {
        st->first[l++] = '\n';
        st->first[l] = '\0';
        va_start(ap, fmt);
        vsnprintf(st->first + l, sizeof(st->first) - l, fmt, ap);
        va_end(ap);
    }
}

/*
 * One run: (optionally) start from the store at <seed>, open with the Nth
 * call of <kind> failing, put SWEEP_W messages with store_put_sync, close.
 * Then reopen without faults and check every acked message. Returns 1 if
 * the fault was reached (another N is worth trying).
 */
static int
sweep_run(const char *seed, enum sio_kind kind, unsigned long nth, enum sio_fault_mode mode,
          int err_no, struct sweep_stats *st)
{
    struct st_cfg c;
    struct store *s = NULL;
    struct store_open_info info;
    struct {
        uint32_t seq;
        int32_t qid;
        uint64_t phys, qoff;
        size_t len;
    } acked[SWEEP_W];
    size_t na = 0;
    char err[512];
    int rc, injected;

    st_rmrf(G.work);
    if (seed)
        st_copytree(seed, G.work);
    st_cfg_init(&c, G.work, SEG, STORE_SYNC_FLUSH);
    c.cfg.syncFlushTimeout = 2000;

    sio_fault_clear();
    sio_fault_arm(kind, nth, mode, err_no);
    rc = store_open(&c.cfg, &s, &info, err, sizeof(err));
    if (rc == 0) {
        for (uint32_t i = 0; i < SWEEP_W; i++) {
            struct store_put_result res;
            uint32_t seq = 100000 + i;
            size_t len = st_body_len(seq, 2000, 4000);
            if (put_msg(s, seq, "Sweep", (int32_t)(i % 2), len, &res) == 0) {
                acked[na].seq = seq;
                acked[na].qid = (int32_t)(i % 2);
                acked[na].phys = res.phys_off;
                acked[na].qoff = res.queue_off;
                acked[na].len = len;
                na++;
            }
        }
        (void)store_close(s);
    } else {
        st->open_failed++;
    }
    injected = sio_calls(kind) >= nth;
    sio_fault_clear();
    st->runs++;
    st->injected_runs += injected;
    st->acked += (unsigned)na;

    rc = store_open(&c.cfg, &s, &info, err, sizeof(err));
    if (rc != 0) {
        sweep_problem(st, "N=%lu %s: reopen without faults failed: %s: %s", nth,
                      mode == SIO_FAULT_ONCE ? "once" : "persistent", spk_strerror(rc), err);
        st_cfg_free(&c);
        return injected;
    }
    st_wait_dispatched(s);
    for (size_t i = 0; i < na; i++) {
        uint8_t buf[8192];
        struct rec_view v;
        uint64_t phys = 0;
        if (!st_get_one(s, "Sweep", acked[i].qid, acked[i].qoff, buf, sizeof(buf), &v, &phys) ||
            phys != acked[i].phys || v.body_len != acked[i].len ||
            !st_body_ok(acked[i].seq, v.body, v.body_len)) {
            sweep_problem(st,
                          "N=%lu %s: acked seq %u (queue %d offset %" PRIu64
                          ") lost or changed after reopen",
                          nth, mode == SIO_FAULT_ONCE ? "once" : "persistent", acked[i].seq,
                          acked[i].qid, acked[i].qoff);
            break;
        }
    }
    rc = store_close(s);
    if (rc != 0)
        sweep_problem(st, "N=%lu: clean close after reopen failed: %s", nth, spk_strerror(rc));
    st_cfg_free(&c);
    return injected;
}

static const char *
kind_name(enum sio_kind k)
{
    static const char *const names[SIO_NKINDS] = {"open",      "pwrite", "pread",   "fallocate",
                                                  "ftruncate", "fsync",  "msync",   "mmap",
                                                  "rename",    "unlink", "dirsync", "mkdir"};
    return (unsigned)k < SIO_NKINDS ? names[k] : "?";
}

/*
 * The sweep for one kind and errno: N = 1, 2, ... until a run injects
 * nothing, for both modes, on a fresh directory and on an existing store
 * that needs abnormal recovery (the golden store). Returns the number of
 * runs that reached the fault.
 */
static unsigned
sweep_kind(enum sio_kind kind, int err_no)
{
    struct sweep_stats st;

    memset(&st, 0, sizeof(st));
    for (int seeded = 0; seeded <= 1; seeded++) {
        for (int m = 0; m < 2; m++) {
            enum sio_fault_mode mode = m == 0 ? SIO_FAULT_ONCE : SIO_FAULT_PERSISTENT;
            unsigned long nth;
            for (nth = 1; nth <= 3000; nth++)
                if (!sweep_run(seeded ? G.gold : NULL, kind, nth, mode, err_no, &st))
                    break;
            cr_expect(le(ulong, nth, 3000), "%s: the sweep did not end", kind_name(kind));
        }
    }
    cr_log_info("%s/%s sweep: %u runs, %u with a fault, %u opens failed, %u puts acked",
                kind_name(kind), strerrorname_np(err_no), st.runs, st.injected_runs, st.open_failed,
                st.acked);
    cr_expect(eq(uint, st.problems, 0),
              "%s/%s sweep: %u problems in %u runs (%u with a fault, "
              "%u opens failed, %u puts acked):%s",
              kind_name(kind), strerrorname_np(err_no), st.problems, st.runs, st.injected_runs,
              st.open_failed, st.acked, st.first);
    return st.injected_runs;
}

Test(recovery, sweep_pwrite)
{
    /* The checkpoint and the abort marker are written with pwrite (and
     * the CommitLog too with writeWithoutMmap). */
    cr_expect(lt(uint, 0, sweep_kind(SIO_PWRITE, EIO)), "no pwrite was ever failed");
    sweep_kind(SIO_PWRITE, ENOSPC);
}

Test(recovery, sweep_msync)
{
    cr_expect(lt(uint, 0, sweep_kind(SIO_MSYNC, EIO)), "no msync was ever failed");
}

Test(recovery, sweep_fsync)
{
    cr_expect(lt(uint, 0, sweep_kind(SIO_FSYNC, EIO)), "no fsync was ever failed");
    sweep_kind(SIO_FSYNC, ENOSPC);
}

Test(recovery, sweep_fallocate)
{
    cr_expect(lt(uint, 0, sweep_kind(SIO_FALLOCATE, ENOSPC)), "no fallocate was ever failed");
    sweep_kind(SIO_FALLOCATE, EIO);
}

Test(recovery, sweep_open)
{
    cr_expect(lt(uint, 0, sweep_kind(SIO_OPEN, EIO)), "no open was ever failed");
    sweep_kind(SIO_OPEN, EMFILE);
}

Test(recovery, sweep_mmap)
{
    cr_expect(lt(uint, 0, sweep_kind(SIO_MMAP, ENOMEM)), "no mmap was ever failed");
}

Test(recovery, sweep_rename)
{
    /* The store may rename nothing on these paths; then every run reaches
     * no fault and the sweep is trivially clean. */
    sweep_kind(SIO_RENAME, EIO);
}

Test(recovery, sweep_dirsync)
{
    cr_expect(lt(uint, 0, sweep_kind(SIO_DIRSYNC, EIO)), "no directory sync was ever failed");
}

Test(recovery, sweep_other_kinds)
{
    /* Not in the brief's list, but the same contract holds. */
    sweep_kind(SIO_PREAD, EIO);
    sweep_kind(SIO_FTRUNCATE, EIO);
    sweep_kind(SIO_UNLINK, EIO);
    sweep_kind(SIO_MKDIR, EIO);
}
