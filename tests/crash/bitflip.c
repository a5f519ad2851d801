/*
 * bitflip.c - RELIABILITY.md T4: single-bit flips at the store level.
 * Driven by tests/reliability/t4_bitflip.sh.
 *
 *   bitflip DIR [--trials N] [--seed S] [--verbose]
 *
 * Builds a golden store in DIR/gold (SYNC_FLUSH, 96 KiB CommitLog
 * segments, ConsumeQueue files of 1000 units, index files of 64 slots and
 * 256 entries, ~600 messages over two topics of two queues, each with a
 * key and a tag, every record carrying the whole-record CRC), abandoned
 * like a crash, with a checkpoint that says the log (and the derived
 * data) is durable up to record n-10: the last ten records are the tail
 * above the checkpoint, everything else lies below it. The store is read
 * into memory once. Each trial writes it into DIR/work with one bit
 * flipped, in one of these regions (in turn):
 *   rec-old   a random byte of a random record below the checkpoint;
 *   rec-tail  a random byte of one of the ten records above it;
 *   cq        a random byte of a random ConsumeQueue unit;
 *   index     a random byte of an index file's header, a used slot or a
 *             used entry;
 *   ckpt      a random byte of the checkpoint's 84 used bytes.
 * Then:
 *   (a) the offline check (src/store/inspect.c, `sprocket store check`)
 *       must report a problem naming the damaged file and the exact byte
 *       offset of the record or unit (for the index: the file; for the
 *       checkpoint the check is not required: recovery must cope);
 *   (b) store_open (recovery from a crash) must
 *         rec-old:  refuse with SPK_ECORRUPT naming file and offset, or
 *                   start and withhold that one record (it lies below the
 *                   part of the log recovery re-reads);
 *         rec-tail: refuse with SPK_ECORRUPT naming file and offset when
 *                   a valid record follows (mid-log corruption, R7), and
 *                   may cut only the flipped record when it is the last;
 *         cq, index, ckpt: start, rebuilding what disagrees with the log
 *                   (R8) or scanning all of it (no valid checkpoint);
 *   (c) when it starts, a read of every queue must never deliver the
 *       flipped record (and store_get_by_offset must refuse it), and every
 *       other message must be delivered, intact, at its queue offset; the
 *       ConsumeQueue files, after a clean close, must equal the golden
 *       ones; after an index flip every key must still be found.
 * Then (a report, not pass/fail) every bit of 16 records of the golden
 * store and of one written with enabledAppendPropCRC=0 (BODYCRC only) is
 * flipped in turn, and the flips after which the record still parses as
 * valid (what recovery and reads would accept) are counted per field.
 *
 * Prints progress lines, per-region figures, the BODYCRC-only table and a
 * last line
 *   bitflip: <trials> trials, <violations> violations
 * Exit 0 when nothing was violated, 1 otherwise, 2 on setup errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/errors.h"
#include "store/checkpoint.h"
#include "store/consumequeue.h"
#include "store/indexfile.h"
#include "store/inspect.h"
#include "store/record.h"
#include "store/store.h"

#define SEG (96 * 1024)
#define MAXR 1024
#define MAXF 96
#define NTOPICS 2
#define NQ 2
#define NMSG 600
#define NTAIL 10
#define SLOTS 64
#define ENTRIES 256

static const char *const topics[NTOPICS] = {"TopicA", "TopicB"};

struct grec {
    uint32_t seq;
    int topic;
    int32_t qid;
    size_t body_len;
    uint64_t phys, end, qoff;
};

struct gfile {
    char rel[256];
    uint8_t *data;
    size_t len;
    int is_dir;
};

struct golden {
    const char *name;
    int crc_prop;
    struct grec r[MAXR];
    size_t n;
    struct gfile f[MAXF];
    size_t nf;
    struct ckpt ck;
    uint64_t ckpt_at; /* the checkpoint's durable offsets (record n-NTAIL) */
};

enum region { R_REC_OLD, R_REC_TAIL, R_CQ, R_INDEX, R_CKPT, R_N };
static const char *const region_names[R_N] = {"rec-old", "rec-tail", "cq", "index", "ckpt"};

struct figures {
    unsigned long trials, detected, detected_file, opened, refused, truncated_last, never_delivered,
        others_lost, violations;
};

static struct {
    char *dir, *work;
    unsigned long trials;
    uint32_t seed, rnd;
    int verbose;
    unsigned long violations, printed;
    struct figures fig[R_N];
} T;

static struct store_get_result gres;

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "bitflip: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void
violation(enum region rg, const char *fmt, ...)
{
    va_list ap;

    T.violations++;
    T.fig[rg].violations++;
    if (T.printed++ >= 30)
        return;
    va_start(ap, fmt);
    fprintf(stderr, "bitflip: VIOLATION: %s: ", region_names[rg]);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static uint32_t
rnd32(void)
{
    T.rnd ^= T.rnd << 13;
    T.rnd ^= T.rnd >> 17;
    T.rnd ^= T.rnd << 5;
    return T.rnd;
}

/* A uniform number in [0, n). */
static uint64_t
rnd_below(uint64_t n)
{
    uint64_t x = ((uint64_t)rnd32() << 32) | rnd32();
    return n ? x % n : 0;
}

/* ------------------------------------------------------------------ */
/* Files                                                              */

static void
rmrf(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char sub[PATH_MAX];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            rmrf(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void
write_file(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t done = 0;

    if (fd == -1)
        die("%s: %s", path, strerror(errno));
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w <= 0)
            die("%s: write: %s", path, strerror(errno));
        done += (size_t)w;
    }
    if (close(fd) != 0)
        die("%s: close: %s", path, strerror(errno));
}

static uint8_t *
read_file(const char *path, size_t *len)
{
    struct stat st;
    uint8_t *buf;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1 || fstat(fd, &st) != 0)
        die("%s: %s", path, strerror(errno));
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL || read(fd, buf, (size_t)st.st_size) != st.st_size)
        die("%s: read failed", path);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

/* Loads every file and directory under <root>/<rel> into g->f. */
static void
load_tree(struct golden *g, const char *root, const char *rel)
{
    char path[PATH_MAX];
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
    d = opendir(path);
    if (d == NULL)
        die("%s: %s", path, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char sub[PATH_MAX], srel[256];
        struct stat st;
        if (e->d_name[0] == '.' || strcmp(e->d_name, "lock") == 0)
            continue;
        snprintf(srel, sizeof(srel), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(sub, sizeof(sub), "%s/%s", root, srel);
        if (lstat(sub, &st) != 0)
            die("%s: %s", sub, strerror(errno));
        if (g->nf == MAXF)
            die("too many files in the golden store");
        struct gfile *f = &g->f[g->nf++];
        snprintf(f->rel, sizeof(f->rel), "%s", srel);
        if (S_ISDIR(st.st_mode)) {
            f->is_dir = 1;
            load_tree(g, root, srel);
        } else {
            f->data = read_file(sub, &f->len);
        }
    }
    closedir(d);
}

/* ------------------------------------------------------------------ */
/* Messages                                                           */

static void
config_init(struct store_config *cfg, struct cfg_target *t, const char *dir)
{
    size_t n;
    char err[CFG_ERR_MAX];

    memset(cfg, 0, sizeof(*cfg));
    t->defs = store_config_table(&n);
    t->n = n;
    t->obj = cfg;
    if (cfg_set_defaults(t) != 0 || cfg_set(t, 1, "storePathRootDir", dir, err, sizeof(err)) != 0)
        die("configuration failed");
    cfg->flushDiskType = STORE_SYNC_FLUSH;
    cfg->maxMessageSize = 8192;
    cfg->mappedFileSizeCommitLog = SEG;
    cfg->mappedFileSizeConsumeQueue = 1000 * 20;
    cfg->maxHashSlotNum = 64;
    cfg->maxIndexNum = 256;
    cfg->syncFlushTimeout = 10000;
    cfg->maxTransferCountOnMessageInMemory = STORE_MAX_BATCH;
    cfg->maxTransferBytesOnMessageInMemory = 4 << 20;
    cfg->fileReservedTime = 100000;
    cfg->cleanFileForciblyEnable = 0;
    cfg->diskMaxUsedSpaceRatio = 95;
    cfg->diskSpaceCleanForciblyRatio = 85;
    cfg->diskSpaceWarningLevelRatio = 90;
    /* Prefaulting the next segment holds the mapping lock while every
     * variant starts its threads: it only costs time here. */
    cfg->warmMapedFileEnable = 0;
}

static void
fmt_props(uint32_t seq, char *buf, size_t len)
{
    snprintf(buf, len, "KEYS\001key-%u\002TAGS\001T%u\002", seq, seq % 3);
}

static void
body_fill(uint32_t seq, uint8_t *buf, size_t len)
{
    uint32_t x = seq * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    if (len >= 4)
        be_put32(buf, seq);
}

static struct rec_msg
make_msg(uint32_t seq, int topic, int32_t qid, const uint8_t *body, size_t len, char *props,
         size_t plen)
{
    struct rec_msg m;

    fmt_props(seq, props, plen);
    memset(&m, 0, sizeof(m));
    m.topic = topics[topic];
    m.topic_len = strlen(m.topic);
    m.queue_id = qid;
    m.body = body;
    m.body_len = len;
    m.props = props;
    m.props_len = strlen(props);
    m.born_ts = 1700000000000;
    m.born_host[0] = m.store_host[0] = 127;
    m.born_host[3] = m.store_host[3] = 1;
    m.born_host_len = m.store_host_len = 4;
    m.born_port = 40000;
    m.store_port = 10911;
    return m;
}

static int
put_one(struct store *s, uint32_t seq, int topic, int32_t qid, size_t body_len,
        struct store_put_result *res)
{
    uint8_t *body = malloc(body_len + 1);
    char props[64];
    int rc;

    body_fill(seq, body, body_len);
    struct rec_msg m = make_msg(seq, topic, qid, body, body_len, props, sizeof(props));
    rc = store_put_sync(s, &m, res);
    free(body);
    return rc;
}

/* ------------------------------------------------------------------ */
/* The golden stores                                                  */

static void
gput(struct golden *g, struct store *s, size_t body_len)
{
    struct grec *r = &g->r[g->n];
    struct store_put_result res;

    if (g->n == MAXR)
        die("too many golden records");
    r->seq = (uint32_t)g->n;
    r->topic = (int)(r->seq % NTOPICS);
    r->qid = (int32_t)((r->seq / NTOPICS) % NQ);
    r->body_len = body_len;
    if (put_one(s, r->seq, r->topic, r->qid, body_len, &res) != 0)
        die("golden put %u (%zu bytes) failed", r->seq, body_len);
    r->phys = res.phys_off;
    r->end = res.end;
    r->qoff = res.queue_off;
    g->n++;
}

static void
wait_dispatched(struct store *s)
{
    struct timespec ts = {0, 500000};

    for (int i = 0; i < 20000; i++) {
        if (store_dispatched(s) >= store_written(s))
            return;
        nanosleep(&ts, NULL);
    }
    die("dispatch did not catch up");
}

static struct gfile *
gfile(struct golden *g, const char *rel)
{
    for (size_t i = 0; i < g->nf; i++)
        if (strcmp(g->f[i].rel, rel) == 0)
            return &g->f[i];
    return NULL;
}

static struct gfile *
seg_file(struct golden *g, uint64_t phys)
{
    char rel[64];

    snprintf(rel, sizeof(rel), "commitlog/%020" PRIu64, phys - phys % SEG);
    return gfile(g, rel);
}

/* Builds golden store <g> of <nmsg> messages, abandoned like a crash, and
 * moves its checkpoint's durable offsets to record n - NTAIL. */
static void
golden_build(struct golden *g, size_t nmsg)
{
    char root[PATH_MAX];
    struct store_config cfg;
    struct cfg_target t;
    struct store *s;
    struct store_open_info info;
    char err[512];

    snprintf(root, sizeof(root), "%s/%s", T.dir, g->name);
    rmrf(root);
    config_init(&cfg, &t, root);
    cfg.enabledAppendPropCRC = g->crc_prop;
    if (store_open(&cfg, &s, &info, err, sizeof(err)) != 0)
        die("golden open: %s", err);
    for (uint32_t i = 0; i < nmsg; i++)
        gput(g, s, 20 + (size_t)((i * 7919u) % 1500));
    wait_dispatched(s);
    store_abandon(s);
    cfg_free(&t);
    load_tree(g, root, "");

    struct gfile *ck = gfile(g, "checkpoint");
    if (ck == NULL || ck->len != CKPT_FILE_SIZE)
        die("golden %s: no checkpoint", g->name);
    ckpt_decode(ck->data, &g->ck);
    g->ckpt_at = g->r[g->n - NTAIL].phys;
    g->ck.ext_valid = 1;
    g->ck.clog_durable = g->ck.cq_durable = g->ck.index_durable = g->ckpt_at;
    ckpt_encode(&g->ck, ck->data);
    if (g->crc_prop && g->r[g->n - NTAIL].phys / SEG != g->r[g->n - 1].phys / SEG)
        die("golden %s: the tail spans a roll-over", g->name);
}

static void
write_store(const struct golden *g)
{
    char path[PATH_MAX];

    rmrf(T.work);
    if (mkdir(T.work, 0755) != 0)
        die("%s: %s", T.work, strerror(errno));
    for (size_t i = 0; i < g->nf; i++) {
        const struct gfile *f = &g->f[i];
        snprintf(path, sizeof(path), "%s/%s", T.work, f->rel);
        if (f->is_dir) {
            if (mkdir(path, 0755) != 0)
                die("%s: %s", path, strerror(errno));
        } else {
            write_file(path, f->data, f->len);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Record fields (IPv4 hosts, V1 topic length: what the golden writes)  */

static const char *
field_of(const struct golden *g, size_t ri, size_t off)
{
    static const struct {
        size_t end;
        const char *name;
    } fixed[] = {
        {4, "TOTALSIZE"},       {8, "MAGICCODE"},         {12, "BODYCRC"},        {16, "QUEUEID"},
        {20, "FLAG"},           {28, "QUEUEOFFSET"},      {36, "PHYSICALOFFSET"}, {40, "SYSFLAG"},
        {48, "BORNTIMESTAMP"},  {56, "BORNHOST"},         {64, "STORETIMESTAMP"}, {72, "STOREHOST"},
        {76, "RECONSUMETIMES"}, {84, "PREPAREDTXOFFSET"}, {88, "BODYLEN"}};
    const struct grec *r = &g->r[ri];
    size_t total = (size_t)(r->end - r->phys), tl = strlen(topics[r->topic]);

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (off < fixed[i].end)
            return fixed[i].name;
    if (off < 88 + r->body_len)
        return "BODY";
    off -= 88 + r->body_len;
    if (off < 1)
        return "TOPICLEN";
    if (off < 1 + tl)
        return "TOPIC";
    if (off < 3 + tl)
        return "PROPLEN";
    if (g->crc_prop && off + 88 + r->body_len >= total - REC_CRC_PROP_LEN)
        return "CRC32 property";
    return "PROPERTIES";
}

#define NFIELDS 24
struct field_tally {
    const char *name[NFIELDS];
    unsigned long flips[NFIELDS], undetected[NFIELDS];
    size_t n;
};

static void
tally(struct field_tally *ft, const char *name, int undetected)
{
    size_t i;

    for (i = 0; i < ft->n; i++)
        if (strcmp(ft->name[i], name) == 0)
            break;
    if (i == ft->n) {
        if (ft->n == NFIELDS)
            return;
        ft->name[ft->n++] = name;
    }
    ft->flips[i]++;
    ft->undetected[i] += undetected != 0;
}

/* Does the record at <phys> of <g>, with bit <bit> of byte <off> flipped,
 * still parse as valid where the store checks it (CRCs, position)? */
static int
flip_passes(struct golden *g, size_t ri, size_t off, unsigned bit)
{
    const struct grec *r = &g->r[ri];
    struct gfile *f = seg_file(g, r->phys);
    size_t pos = (size_t)(r->phys % SEG);
    struct rec_view v;
    int ok;

    /* In place (and back): a copy of the rest of the segment per flip
     * would cost more than the parse. */
    f->data[pos + off] ^= (uint8_t)(1u << bit);
    ok = rec_parse(f->data + pos, SEG - pos, r->phys,
                   g->crc_prop && r->phys >= g->ck.crc_prop_from ? REC_CHECK_CRC_PROP
                                                                 : REC_CHECK_CRC,
                   &v, NULL) > 0;
    f->data[pos + off] ^= (uint8_t)(1u << bit);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Checks                                                             */

struct findings {
    const char *want_file; /* relative path */
    uint64_t want_pos;
    int exact_pos; /* the finding must name want_pos */
    int found, found_file;
};

static void
on_finding(void *arg, const struct insp_finding *f)
{
    struct findings *fd = arg;
    size_t fl = strlen(f->file), wl = strlen(fd->want_file);

    if (T.verbose > 1)
        printf("bitflip:   finding %s byte %" PRIu64 ": %s\n", f->file, f->pos, f->what);
    if (f->severity != INSP_PROBLEM || fl < wl || strcmp(f->file + fl - wl, fd->want_file) != 0)
        return;
    fd->found_file = 1;
    if (!fd->exact_pos || f->pos == fd->want_pos)
        fd->found = 1;
}

/* Runs the offline check on T.work (it may delete index files it finds
 * corrupt, so the caller writes the store again afterwards). */
static void
offline_check(struct findings *fd)
{
    struct insp *in;
    char err[512];

    if (insp_open(T.work, on_finding, fd, &in, err, sizeof(err)) != 0)
        die("insp_open: %s", err);
    insp_walk_records(in, NULL, NULL);
    insp_walk_units(in, NULL, NULL);
    insp_walk_index(in, SLOTS, ENTRIES, NULL, NULL);
    insp_check_checkpoint(in);
    insp_close(in);
}

static int
err_names_place(const char *err, uint64_t phys)
{
    char file[32], num[32];

    snprintf(file, sizeof(file), "%020" PRIu64, phys - phys % SEG);
    if (strstr(err, file) == NULL)
        return 0;
    for (int pass = 0; pass < 2; pass++) {
        snprintf(num, sizeof(num), "%" PRIu64, pass == 0 ? phys : phys % SEG);
        for (const char *p = strstr(err, num); p != NULL; p = strstr(p + 1, num)) {
            int before = p == err || p[-1] < '0' || p[-1] > '9';
            char after = p[strlen(num)];
            if (before && (after < '0' || after > '9'))
                return 1;
        }
    }
    return 0;
}

/*
 * Reads every queue of the open store. Every delivered record must be a
 * golden one, byte for byte, at its queue offset; records <skip1> and
 * <skip2> (or -1) must not be delivered, every other one must. Returns
 * the number of other records not delivered; *bad_delivery counts
 * deliveries of skipped or damaged records.
 */
static unsigned long
drain(struct store *s, struct golden *g, long skip1, long skip2, unsigned long *bad_delivery)
{
    static unsigned char seen[MAXR];
    unsigned long lost = 0;

    memset(seen, 0, sizeof(seen));
    *bad_delivery = 0;
    wait_dispatched(s);
    for (int t = 0; t < NTOPICS; t++) {
        for (int32_t q = 0; q < NQ; q++) {
            size_t idx[MAXR], ni = 0;
            uint64_t min, max, qoff = 0;
            for (size_t i = 0; i < g->n; i++)
                if (g->r[i].topic == t && g->r[i].qid == q)
                    idx[ni++] = i;
            if (store_queue_bounds(s, topics[t], q, &min, &max) != 0)
                continue;
            while (qoff < max) {
                memset(&gres, 0, sizeof(gres));
                if (store_get(s, topics[t], q, qoff, STORE_MAX_BATCH, 4 << 20, NULL, &gres) != 0)
                    break;
                for (size_t j = 0; j < gres.count; j++) {
                    const struct store_msg_view *mv = &gres.msgs[j];
                    uint64_t qo = mv->queue_off;
                    const struct grec *r = qo < ni ? &g->r[idx[qo]] : NULL;
                    const struct gfile *f = r ? seg_file(g, r->phys) : NULL;
                    if (r == NULL || mv->phys_off != r->phys || mv->len != r->end - r->phys ||
                        f == NULL || memcmp(mv->data, f->data + r->phys % SEG, mv->len) != 0 ||
                        (long)idx[qo] == skip1 || (long)idx[qo] == skip2) {
                        (*bad_delivery)++;
                        continue;
                    }
                    seen[idx[qo]] = 1;
                }
                uint64_t next = gres.next_begin_offset;
                store_get_release(&gres);
                if (next <= qoff)
                    break;
                qoff = next;
            }
        }
    }
    for (size_t i = 0; i < g->n; i++)
        if (!seen[i] && (long)i != skip1 && (long)i != skip2)
            lost++;
    return lost;
}

static unsigned long
keys_lost(struct store *s, struct golden *g)
{
    unsigned long lost = 0;

    for (size_t i = 0; i < g->n; i++) {
        char key[32];
        uint64_t offs[64];
        size_t n = 0, k;
        snprintf(key, sizeof(key), "key-%u", g->r[i].seq);
        if (store_query_key(s, topics[g->r[i].topic], key, 64, 0, INT64_MAX, offs, &n) != 0)
            n = 0;
        for (k = 0; k < n && offs[k] != g->r[i].phys; k++)
            ;
        lost += k == n;
    }
    return lost;
}

/* ------------------------------------------------------------------ */
/* Trials                                                             */

struct target {
    enum region rg;
    struct gfile *f;
    size_t pos; /* byte in the file */
    unsigned bit;
    long ri;           /* the record (rec-*), else -1 */
    uint64_t want_pos; /* where the check must point */
    int exact;
};

static void
pick(struct golden *g, enum region rg, struct target *tg)
{
    memset(tg, 0, sizeof(*tg));
    tg->rg = rg;
    tg->ri = -1;
    tg->bit = (unsigned)rnd_below(8);
    tg->exact = 1;
    switch (rg) {
    case R_REC_OLD:
    case R_REC_TAIL: {
        size_t ri = rg == R_REC_OLD ? (size_t)rnd_below(g->n - NTAIL)
                                    : g->n - NTAIL + (size_t)rnd_below(NTAIL);
        const struct grec *r = &g->r[ri];
        uint64_t at = r->phys + rnd_below(r->end - r->phys);
        tg->ri = (long)ri;
        tg->f = seg_file(g, r->phys);
        tg->pos = (size_t)(at % SEG);
        tg->want_pos = r->phys % SEG;
        break;
    }
    case R_CQ: {
        struct gfile *c[16];
        size_t nc = 0;
        for (size_t i = 0; i < g->nf && nc < 16; i++)
            if (!g->f[i].is_dir && strncmp(g->f[i].rel, "consumequeue/", 13) == 0)
                c[nc++] = &g->f[i];
        if (nc == 0)
            die("no consume queue files");
        tg->f = c[rnd_below(nc)];
        /* Units in use: those before the first all-zero one. */
        size_t units = 0;
        while ((units + 1) * CQ_UNIT_SIZE <= tg->f->len) {
            static const uint8_t zero[CQ_UNIT_SIZE];
            if (memcmp(tg->f->data + units * CQ_UNIT_SIZE, zero, CQ_UNIT_SIZE) == 0)
                break;
            units++;
        }
        size_t u = (size_t)rnd_below(units);
        tg->pos = u * CQ_UNIT_SIZE + (size_t)rnd_below(CQ_UNIT_SIZE);
        tg->want_pos = u * CQ_UNIT_SIZE;
        break;
    }
    case R_INDEX: {
        struct gfile *c[16];
        size_t nc = 0;
        for (size_t i = 0; i < g->nf && nc < 16; i++)
            if (!g->f[i].is_dir && strncmp(g->f[i].rel, "index/", 6) == 0)
                c[nc++] = &g->f[i];
        if (nc == 0)
            die("no index files");
        tg->f = c[rnd_below(nc)];
        tg->exact = 0;
        const uint8_t *d = tg->f->data;
        uint32_t count = be_get32(d + 36);
        size_t slot_at = 40, ent_at = 40 + SLOTS * 4;
        uint32_t kind = (uint32_t)rnd_below(8);
        if (kind == 0 || count <= 1) {
            tg->pos = (size_t)rnd_below(40);
        } else if (kind < 4) {
            size_t used[SLOTS], nu = 0;
            for (size_t sl = 0; sl < SLOTS; sl++)
                if (be_get32(d + slot_at + sl * 4) != 0)
                    used[nu++] = sl;
            tg->pos = nu ? slot_at + used[rnd_below(nu)] * 4 + (size_t)rnd_below(4)
                         : (size_t)rnd_below(40);
        } else {
            tg->pos = ent_at + (1 + (size_t)rnd_below(count - 1)) * 20 + (size_t)rnd_below(20);
        }
        tg->want_pos = tg->pos;
        break;
    }
    case R_CKPT:
        tg->f = gfile(g, "checkpoint");
        tg->pos = (size_t)rnd_below(CKPT_EXT_END);
        tg->exact = 0;
        break;
    default:
        break;
    }
}

/* Open file descriptors of this process (a store must close all of its
 * own, whether it opened or refused). */
static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    while (d != NULL && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d != NULL)
        closedir(d);
    return n;
}

static void
trial(struct golden *g, enum region rg)
{
    struct target tg;
    struct findings fd;
    struct figures *fg = &T.fig[rg];
    struct store_config cfg;
    struct cfg_target ct;
    struct store *s = NULL;
    struct store_open_info info;
    char err[512] = "", desc[200];
    int rc;

    pick(g, rg, &tg);
    snprintf(desc, sizeof(desc), "%s byte %zu bit %u", tg.f->rel, tg.pos, tg.bit);
    if (tg.ri >= 0) {
        size_t l = strlen(desc);
        snprintf(desc + l, sizeof(desc) - l, " (record %ld at %" PRIu64 ", %s)", tg.ri,
                 g->r[tg.ri].phys, field_of(g, (size_t)tg.ri, tg.pos - tg.want_pos));
    }
    fg->trials++;

    /* (a) the offline check */
    tg.f->data[tg.pos] ^= (uint8_t)(1u << tg.bit);
    write_store(g);
    memset(&fd, 0, sizeof(fd));
    fd.want_file = tg.f->rel;
    fd.want_pos = tg.want_pos;
    fd.exact_pos = tg.exact;
    offline_check(&fd);
    fg->detected += fd.found;
    fg->detected_file += fd.found_file;
    if (!fd.found && rg != R_CKPT)
        violation(rg, "%s: `store check` did not report %s at byte %" PRIu64, desc, tg.f->rel,
                  tg.want_pos);

    /* (b) recovery, on a fresh copy where the check may have changed
     * something (it deletes index files it finds corrupt, inspect.h INV-1) */
    if (rg == R_INDEX)
        write_store(g);
    tg.f->data[tg.pos] ^= (uint8_t)(1u << tg.bit);
    config_init(&cfg, &ct, T.work);
    rc = store_open(&cfg, &s, &info, err, sizeof(err));
    long skip2 = -1;
    if (rc != 0) {
        int may_refuse = rg == R_REC_OLD || rg == R_REC_TAIL;
        if (!may_refuse)
            violation(rg, "%s: store_open failed: %s: %s", desc, spk_strerror(rc), err);
        else if (rc != SPK_ECORRUPT || !err_names_place(err, g->r[tg.ri].phys))
            violation(rg, "%s: refused (rc %d) without naming file and offset: %s", desc, rc, err);
        else
            fg->refused++;
        if (T.verbose)
            printf("bitflip: %s: %s: refused: %s\n", region_names[rg], desc, err);
        cfg_free(&ct);
        return;
    }
    fg->opened++;
    if (rg == R_REC_TAIL) {
        if ((size_t)tg.ri != g->n - 1) {
            violation(rg,
                      "%s: a valid record follows, yet the store opened (log end %" PRIu64
                      "): mid-log corruption must refuse",
                      desc, info.clog_max);
        } else if (info.clog_max != g->r[tg.ri].phys) {
            violation(
                rg, "%s: the last record is damaged: want the log cut at %" PRIu64 ", got %" PRIu64,
                desc, g->r[tg.ri].phys, info.clog_max);
        } else {
            fg->truncated_last++;
        }
    } else if (info.clog_max != g->r[g->n - 1].end) {
        violation(rg, "%s: the log was cut at %" PRIu64 ", want %" PRIu64, desc, info.clog_max,
                  g->r[g->n - 1].end);
    }

    /* (c) reads */
    unsigned long bad = 0, lost = drain(s, g, tg.ri, skip2, &bad);
    if (bad != 0)
        violation(rg, "%s: %lu damaged or unexpected records delivered", desc, bad);
    if (tg.ri >= 0) {
        struct store_msg_view mv;
        void *pin;
        if (store_get_by_offset(s, g->r[tg.ri].phys, &mv, &pin) == 0) {
            store_view_release(pin);
            violation(rg, "%s: store_get_by_offset delivered the flipped record", desc);
            bad++;
        }
    }
    if (bad == 0 && tg.ri >= 0)
        fg->never_delivered++;
    if (lost != 0) {
        fg->others_lost += lost;
        violation(rg, "%s: %lu other messages not delivered", desc, lost);
    }
    if (rg == R_INDEX || rg == R_CKPT) {
        unsigned long kl = keys_lost(s, g);
        if (kl != 0) {
            fg->others_lost += kl;
            violation(rg, "%s: the index lost %lu keys", desc, kl);
        }
    }
    if (rg == R_CQ) {
        /* Repaired means: equal to what the log says, i.e. the golden. */
        int crc = store_close(s);
        s = NULL;
        char path[PATH_MAX];
        size_t len;
        snprintf(path, sizeof(path), "%s/%s", T.work, tg.f->rel);
        uint8_t *now = read_file(path, &len);
        if (crc != 0 || len != tg.f->len || memcmp(now, tg.f->data, len) != 0)
            violation(rg, "%s: the queue file was not rebuilt from the log", desc);
        free(now);
    }
    if (s != NULL)
        store_abandon(s);
    cfg_free(&ct);
    if (T.verbose)
        printf("bitflip: %s: %s: check %s, opened\n", region_names[rg], desc,
               fd.found ? "found" : "missed");
}

int
main(int argc, char **argv)
{
    static struct golden g = {.name = "gold", .crc_prop = 1}, gn = {.name = "gold-bodycrc"};
    static struct field_tally with_crc, body_only;
    char work[PATH_MAX];
    time_t t0 = time(NULL);

    if (argc < 2) {
        fprintf(stderr, "usage: bitflip DIR [--trials N] [--seed S] [--verbose]\n");
        return 2;
    }
    T.dir = argv[1];
    T.trials = 300;
    T.seed = 1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--trials") == 0 && i + 1 < argc)
            T.trials = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            T.seed = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--verbose") == 0)
            T.verbose++;
        else
            die("unknown argument %s", argv[i]);
    }
    T.rnd = T.seed * 2654435761u + 0x9E3779B9u;
    if (T.rnd == 0)
        T.rnd = 1;
    if (mkdir(T.dir, 0755) != 0 && errno != EEXIST)
        die("%s: %s", T.dir, strerror(errno));
    snprintf(work, sizeof(work), "%s/work", T.dir);
    T.work = work;

    golden_build(&g, NMSG);
    golden_build(&gn, 120);
    printf("bitflip: golden: %zu records in %" PRIu64 " segments, checkpoint at %" PRIu64
           " (%d records above it); %lu trials, seed %u\n",
           g.n, g.r[g.n - 1].end / SEG + 1, g.ckpt_at, NTAIL, T.trials, T.seed);
    fflush(stdout);

    /* Regions in turn: 3 of 8 below the checkpoint, 3 of 8 above it, then
     * a ConsumeQueue unit, then the index or the checkpoint. */
    static const enum region order[16] = {
        R_REC_OLD, R_REC_TAIL, R_REC_OLD, R_REC_TAIL, R_REC_OLD, R_REC_TAIL, R_CQ, R_INDEX,
        R_REC_OLD, R_REC_TAIL, R_REC_OLD, R_REC_TAIL, R_REC_OLD, R_REC_TAIL, R_CQ, R_CKPT};
    int fds = count_fds();
    for (unsigned long i = 0; i < T.trials; i++) {
        enum region rg = order[i % 16];
        trial(&g, rg);
        int now = count_fds();
        if (now > fds) {
            violation(rg, "trial %lu: %d file descriptors leaked", i, now - fds);
            fds = now;
        }
        if ((i + 1) % 500 == 0) {
            printf("bitflip: %lu trials, %lu violations, %ld s\n", i + 1, T.violations,
                   (long)(time(NULL) - t0));
            fflush(stdout);
        }
    }

    /* Report only: which fields escape without the record CRC. Every bit
     * of every byte of 16 records of each golden store is flipped in
     * turn and the record parsed as recovery and reads parse it. */
    for (int pass = 0; pass < 2; pass++) {
        struct golden *h = pass == 0 ? &g : &gn;
        struct field_tally *ft = pass == 0 ? &with_crc : &body_only;
        for (size_t k = 0; k < 16; k++) {
            size_t ri = k * (h->n - 1) / 15;
            size_t len = (size_t)(h->r[ri].end - h->r[ri].phys);
            for (size_t off = 0; off < len; off++)
                for (unsigned bit = 0; bit < 8; bit++)
                    tally(ft, field_of(h, ri, off), flip_passes(h, ri, off, bit));
        }
    }

    printf("bitflip: %-9s %7s %9s %9s %7s %8s %9s %10s %11s %10s\n", "region", "trials", "detected",
           "det.file", "opened", "refused", "cut-last", "withheld", "others-lost", "violations");
    for (int r = 0; r < R_N; r++) {
        const struct figures *f = &T.fig[r];
        printf("bitflip: %-9s %7lu %9lu %9lu %7lu %8lu %9lu %10lu %11lu %10lu\n", region_names[r],
               f->trials, f->detected, f->detected_file, f->opened, f->refused, f->truncated_last,
               f->never_delivered, f->others_lost, f->violations);
    }
    printf("bitflip: record fields: flips / flips that still parse as valid\n");
    printf("bitflip:   %-18s %18s %18s\n", "field", "whole-record CRC", "BODYCRC only");
    for (size_t i = 0; i < body_only.n; i++) {
        size_t j;
        for (j = 0; j < with_crc.n && strcmp(with_crc.name[j], body_only.name[i]) != 0; j++)
            ;
        char a[32] = "-", b[32];
        if (j < with_crc.n)
            snprintf(a, sizeof(a), "%lu / %lu", with_crc.flips[j], with_crc.undetected[j]);
        snprintf(b, sizeof(b), "%lu / %lu", body_only.flips[i], body_only.undetected[i]);
        printf("bitflip:   %-18s %18s %18s\n", body_only.name[i], a, b);
    }
    for (size_t j = 0; j < with_crc.n; j++) {
        if (strcmp(with_crc.name[j], "CRC32 property") == 0)
            printf("bitflip:   %-18s %13lu / %lu %18s\n", with_crc.name[j], with_crc.flips[j],
                   with_crc.undetected[j], "-");
        if (with_crc.undetected[j] != 0)
            violation(R_REC_OLD, "field %s: %lu flips passed the whole-record CRC",
                      with_crc.name[j], with_crc.undetected[j]);
    }
    printf("bitflip: BODYCRC only, undetected fields:");
    for (size_t i = 0; i < body_only.n; i++)
        if (body_only.undetected[i] != 0)
            printf(" %s", body_only.name[i]);
    printf("\n");

    unsigned long total = 0;
    for (int r = 0; r < R_N; r++)
        total += T.fig[r].trials;
    printf("bitflip: %lu trials, %lu violations\n", total, T.violations);
    rmrf(T.work);
    return T.violations == 0 ? 0 : 1;
}
