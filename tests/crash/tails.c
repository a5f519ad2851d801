/*
 * tails.c - RELIABILITY.md T3: torn and truncated tails, exhaustively, at
 * the store level. Driven by tests/reliability/t3_tails.sh.
 *
 *   tails DIR [--stride N] [--edge E] [--seed S] [--verbose]
 *
 * Builds two golden stores under DIR (SYNC_FLUSH, 96 KiB CommitLog
 * segments, two topics of two queues, keys and tags, every record CRC'd):
 *   A  the last three records (560, 700 and 530 bytes, each crossing a
 *      512-byte boundary, the middle one a 4 KiB boundary) lie in the last
 *      segment;
 *   B  the last three records span a roll-over: the first ends 100 bytes
 *      before its segment's end (a BLANK filler follows), the other two
 *      open the next segment.
 * Each golden store is read into memory once; every variant is that image
 * with one kind of damage, written into DIR/work with a few syscalls, then
 * opened with store_open (recovery after a crash: the abort file is kept).
 *
 * Variants, for every byte offset X inside the last three records (every
 * N-th with --stride N; the first and last E bytes of every record, 12 by
 * default, are always taken):
 *   trunc   the segment holding X ends at X, later segments are gone;
 *   zero    bytes from X to the end of the log become 0x00;
 *   ff      ... become 0xFF;
 *   random  ... become random bytes;
 * plus, for each of the three records, its header cut in half (zeros from
 * byte 44 on) and a TOTALSIZE larger than the rest of the segment. The
 * checkpoint says the log is durable only below the three records, so
 * every one of these is an ordinary tail (in B, one that spans the
 * roll-over: the boundary control). Expected: store_open succeeds and
 *   - the log ends exactly at the first record (or BLANK filler) whose
 *     bytes the damage changed, unless an unchanged record follows it, in
 *     which case the damage is mid-log corruption and the store must
 *     refuse to start (R7);
 *   - every queue holds exactly the surviving records, each readable with
 *     its body, nothing beyond; the index finds no cut record's key and
 *     still finds the last survivor's;
 *   - a new message is appended exactly at the end (or at the next
 *     segment when it does not fit) with the next queue offset, and reads
 *     back.
 *
 * Negative control (R7): the same damage, confined to the segment before
 * the last one of A, with a checkpoint saying the whole log is durable
 * (and derived data only below that segment, so recovery reads it): the
 * store must refuse to start with SPK_ECORRUPT and a message naming the
 * segment file, the offset and a reason, and no CommitLog file may change.
 *
 * Prints progress lines and a last line
 *   tails: <variants> variants, <violations> violations, <exact> exact, <refused> refused
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
#include "store/record.h"
#include "store/store.h"

#define SEG (96 * 1024)
#define MAXR 512
#define MAXF 64
#define NTOPICS 2
#define NQ 2

static const char *const topics[NTOPICS] = {"TopicA", "TopicB"};

/* One record of a golden store. */
struct grec {
    uint32_t seq;
    int topic;
    int32_t qid;
    size_t body_len;
    uint64_t phys, end, qoff;
};

/* One file of a golden store, relative to its root. */
struct gfile {
    char rel[256];
    uint8_t *data;
    size_t len;
    int is_dir;
};

struct golden {
    const char *name;
    struct grec r[MAXR];
    size_t n;
    struct gfile f[MAXF];
    size_t nf;
    uint64_t log_end;   /* end of the last record */
    uint64_t files_end; /* end of the last segment file */
    struct ckpt ck;     /* the golden checkpoint (crc_prop_from) */
    uint8_t *img;       /* the log, [0, files_end), flat */
};

enum kind { K_TRUNC, K_ZERO, K_FF, K_RANDOM, K_HALFHDR, K_BIGSIZE };
static const char *const kind_names[] = {"trunc",  "zero",        "ff",
                                         "random", "half-header", "big-size"};

static struct {
    char *dir, *work;
    unsigned stride, edge;
    uint32_t seed;
    int verbose;
    unsigned long variants, violations, exact, refused, printed;
} T;

static struct store_get_result gres;
#define MAXSEG 16
static uint8_t *vimg; /* the variant's log, flat: MAXSEG segments */
#define seg_buf(i) (vimg + (size_t)(i)*SEG)

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "tails: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void
violation(const char *fmt, ...)
{
    va_list ap;

    T.violations++;
    if (T.printed++ >= 20)
        return;
    va_start(ap, fmt);
    fprintf(stderr, "tails: VIOLATION: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
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

/* Is <rel> a CommitLog segment? Sets its base offset. */
static int
seg_of(const char *rel, uint64_t *base)
{
    if (strncmp(rel, "commitlog/", 10) != 0 || strlen(rel) != 30)
        return 0;
    *base = strtoull(rel + 10, NULL, 10);
    return 1;
}

/* ------------------------------------------------------------------ */
/* The golden stores                                                  */

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

/* Record length of message <seq> with a body of <body_len> bytes. */
static size_t
rec_len_of(uint32_t seq, size_t body_len)
{
    char props[64];
    struct rec_msg m = make_msg(seq, (int)(seq % NTOPICS), 0, NULL, body_len, props, 64);
    return rec_length(&m, 1);
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

/* Puts the next message with a record of exactly <len> bytes. */
static void
gput_len(struct golden *g, struct store *s, size_t len)
{
    size_t ovh = rec_len_of((uint32_t)g->n, 0);

    if (len < ovh)
        die("record of %zu bytes is below the overhead %zu", len, ovh);
    gput(g, s, len - ovh);
    if (g->r[g->n - 1].end - g->r[g->n - 1].phys != len)
        die("record length mismatch");
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

/*
 * Builds golden store <g> in DIR/<g->name>: ~220 messages of 20-1520 byte
 * bodies (so two roll-overs), then the three tail records of the layout
 * (A: in one segment; B: across a roll-over). Abandoned like a crash.
 */
static void
golden_build(struct golden *g, int across)
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
    if (store_open(&cfg, &s, &info, err, sizeof(err)) != 0)
        die("golden open: %s", err);
    for (uint32_t i = 0; i < 220; i++)
        gput(g, s, 20 + (size_t)((i * 7919u) % 1500));
    uint64_t e = g->r[g->n - 1].end;
    if (!across) {
        /* Room for the tail in this segment, and for later appends. */
        while (SEG - e % SEG < 12 * 1024) {
            gput(g, s, 3000);
            e = g->r[g->n - 1].end;
        }
        /* The middle tail record starts 300 bytes before a 4 KiB boundary. */
        uint64_t b = (e + 4095) / 4096 * 4096;
        while (b - 300 - 560 < e + 200)
            b += 4096;
        gput_len(g, s, (size_t)(b - 300 - 560 - e));
        gput_len(g, s, 560);
        gput_len(g, s, 700);
        gput_len(g, s, 530);
    } else {
        /* The first tail record ends 100 bytes before the segment end. */
        uint64_t seg_end = (e / SEG + 1) * SEG;
        if (seg_end - e < 560 + 100 + 300)
            seg_end += SEG;
        /* Each 3000-byte put fits (more than 4000 bytes are left), and
         * afterwards 850-4000 bytes remain: room for a pad record. */
        while (seg_end - g->r[g->n - 1].end > 4000)
            gput(g, s, 3000);
        e = g->r[g->n - 1].end;
        gput_len(g, s, (size_t)(seg_end - 100 - 560 - e));
        gput_len(g, s, 560);
        gput_len(g, s, 700);
        gput_len(g, s, 530);
        if (g->r[g->n - 2].phys != seg_end)
            die("golden B: no roll-over before the last two records");
    }
    wait_dispatched(s);
    store_abandon(s);
    cfg_free(&t);

    g->log_end = g->r[g->n - 1].end;
    load_tree(g, root, "");
    g->files_end = 0;
    for (size_t i = 0; i < g->nf; i++) {
        uint64_t b;
        if (seg_of(g->f[i].rel, &b) && b + SEG > g->files_end)
            g->files_end = b + SEG;
        if (strcmp(g->f[i].rel, "checkpoint") == 0)
            ckpt_decode(g->f[i].data, &g->ck);
    }
    if (g->files_end / SEG > MAXSEG)
        die("too many segments");
    g->img = calloc(1, (size_t)g->files_end);
    if (g->img == NULL)
        die("out of memory");
    for (size_t i = 0; i < g->nf; i++) {
        uint64_t b;
        if (seg_of(g->f[i].rel, &b) && g->f[i].len == SEG)
            memcpy(g->img + b, g->f[i].data, SEG);
    }
}

/* ------------------------------------------------------------------ */
/* Variants                                                           */

/* A unit of the log: a record or a BLANK filler header. */
struct unit {
    uint64_t phys, end;
    int rec; /* index in g->r, or -1 for a filler */
};

static size_t
units_of(const struct golden *g, struct unit *u, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < g->n && n + 2 <= cap; i++) {
        u[n++] = (struct unit){g->r[i].phys, g->r[i].end, (int)i};
        uint64_t next = i + 1 < g->n ? g->r[i + 1].phys : g->r[i].end;
        if (next / SEG != g->r[i].end / SEG && g->r[i].end % SEG != 0)
            u[n++] = (struct unit){g->r[i].end, g->r[i].end + 8, -1};
    }
    return n;
}

struct variant {
    enum kind kind;
    uint64_t x;             /* first damaged byte */
    uint64_t limit;         /* fills stop here (end of the log, or of one segment) */
    int rec;                /* half-header / big-size: the record */
    uint32_t big;           /* big-size: the TOTALSIZE written */
    size_t seg_len[MAXSEG]; /* bytes of each segment file written (0: file absent) */
};

static uint32_t
xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/*
 * Builds the variant's log image in vimg from golden <g>. Bytes a cut
 * removes read as zeros there: what the store sees once it has extended
 * a short last file, and what makes an absent segment's records count as
 * changed.
 */
static void
make_variant(const struct golden *g, struct variant *v)
{
    size_t nseg = (size_t)(g->files_end / SEG);
    uint32_t rnd = T.seed ^ (uint32_t)(v->x * 2654435761u) ^ (uint32_t)v->kind;

    if (rnd == 0)
        rnd = 1;
    memcpy(vimg, g->img, (size_t)g->files_end);
    for (size_t i = 0; i < nseg; i++)
        v->seg_len[i] = SEG;
    switch (v->kind) {
    case K_TRUNC:
        v->seg_len[v->x / SEG] = (size_t)(v->x % SEG);
        for (size_t i = (size_t)(v->x / SEG) + 1; i < nseg; i++)
            v->seg_len[i] = 0;
        memset(vimg + v->x, 0, (size_t)(g->files_end - v->x));
        break;
    case K_ZERO:
    case K_FF:
    case K_RANDOM:
    case K_HALFHDR:
        for (uint64_t o = v->x; o < v->limit; o++) {
            uint8_t b = 0;
            if (v->kind == K_FF)
                b = 0xFF;
            else if (v->kind == K_RANDOM)
                b = (uint8_t)xorshift(&rnd);
            vimg[o] = b;
        }
        break;
    case K_BIGSIZE:
        be_put32(vimg + v->x, v->big);
        break;
    }
}

static int
unit_changed(const struct golden *g, const struct unit *u)
{
    return memcmp(vimg + u->phys, g->img + u->phys, (size_t)(u->end - u->phys)) != 0;
}

/* Writes the checkpoint with the three durable offsets. */
static void
ckpt_bytes(const struct golden *g, uint64_t clog, uint64_t derived, uint8_t *buf)
{
    struct ckpt c = g->ck;

    c.ext_valid = 1;
    c.clog_durable = clog;
    c.cq_durable = derived;
    c.index_durable = derived;
    ckpt_encode(&c, buf);
}

/* Writes the whole variant store into T.work. */
static void
write_variant(const struct golden *g, const struct variant *v, const uint8_t *ckpt)
{
    char path[PATH_MAX];

    rmrf(T.work);
    if (mkdir(T.work, 0755) != 0)
        die("%s: %s", T.work, strerror(errno));
    for (size_t i = 0; i < g->nf; i++) {
        const struct gfile *f = &g->f[i];
        uint64_t b;
        snprintf(path, sizeof(path), "%s/%s", T.work, f->rel);
        if (f->is_dir) {
            if (mkdir(path, 0755) != 0)
                die("%s: %s", path, strerror(errno));
        } else if (seg_of(f->rel, &b)) {
            size_t si = (size_t)(b / SEG);
            if (v->seg_len[si] > 0 || (v->kind == K_TRUNC && si == v->x / SEG))
                write_file(path, seg_buf(si), v->seg_len[si]);
        } else if (strcmp(f->rel, "checkpoint") == 0) {
            write_file(path, ckpt, CKPT_FILE_SIZE);
        } else {
            write_file(path, f->data, f->len);
        }
    }
}

/* Does <err> name the segment file and the offset <phys> (absolute or
 * inside the file) as a number of its own, and a reason after it? */
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

/* Reads queue topic/qid from 0 and compares with golden records [0, k). */
static int
check_queue(struct store *s, const struct golden *g, size_t k, int topic, int32_t q, char *why,
            size_t whylen)
{
    size_t idx[MAXR], ni = 0;
    uint64_t min, max, qoff = 0;
    uint8_t want[4096];

    for (size_t i = 0; i < k; i++)
        if (g->r[i].topic == topic && g->r[i].qid == q)
            idx[ni++] = i;
    if (store_queue_bounds(s, topics[topic], q, &min, &max) != 0 || max != ni) {
        snprintf(why, whylen, "%s-%d: max offset %" PRIu64 ", want %zu", topics[topic], q, max, ni);
        return -1;
    }
    while (qoff < max) {
        memset(&gres, 0, sizeof(gres));
        if (store_get(s, topics[topic], q, qoff, STORE_MAX_BATCH, 4 << 20, NULL, &gres) != 0 ||
            gres.status != STORE_FOUND || gres.count == 0) {
            snprintf(why, whylen, "%s-%d@%" PRIu64 ": %s", topics[topic], q, qoff,
                     store_get_status_name(gres.status));
            store_get_release(&gres);
            return -1;
        }
        for (size_t j = 0; j < gres.count; j++) {
            const struct grec *r = &g->r[idx[qoff + j]];
            const struct store_msg_view *mv = &gres.msgs[j];
            struct rec_view rv;
            body_fill(r->seq, want, r->body_len);
            if (mv->phys_off != r->phys || mv->queue_off != qoff + j ||
                rec_parse(mv->data, mv->len, mv->phys_off, REC_CHECK_CRC, &rv, NULL) <= 0 ||
                rv.body_len != r->body_len || memcmp(rv.body, want, r->body_len) != 0) {
                snprintf(why, whylen, "%s-%d@%" PRIu64 ": wrong or damaged message (seq %u)",
                         topics[topic], q, qoff + j, r->seq);
                store_get_release(&gres);
                return -1;
            }
        }
        qoff += gres.count;
        store_get_release(&gres);
    }
    memset(&gres, 0, sizeof(gres));
    store_get(s, topics[topic], q, max, 1, 1 << 20, NULL, &gres);
    if (gres.count != 0) {
        snprintf(why, whylen, "%s-%d: a message beyond the max offset", topics[topic], q);
        store_get_release(&gres);
        return -1;
    }
    return 0;
}

static int
key_found(struct store *s, const struct grec *r)
{
    char key[32];
    uint64_t offs[64];
    size_t n = 0;

    snprintf(key, sizeof(key), "key-%u", r->seq);
    if (store_query_key(s, topics[r->topic], key, 64, 0, INT64_MAX, offs, &n) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (offs[i] == r->phys)
            return 1;
    return 0;
}

/*
 * Checks an opened store against golden records [0, k) with the log
 * ending at <end>: queues, index, and one new append read back.
 */
static int
check_prefix(struct store *s, const struct golden *g, size_t k, uint64_t end, char *why,
             size_t whylen)
{
    if (store_written(s) != end) {
        snprintf(why, whylen, "written %" PRIu64 ", want %" PRIu64, store_written(s), end);
        return -1;
    }
    wait_dispatched(s);
    for (int t = 0; t < NTOPICS; t++)
        for (int32_t q = 0; q < NQ; q++)
            if (check_queue(s, g, k, t, q, why, whylen) != 0)
                return -1;
    for (size_t i = k; i < g->n; i++) {
        if (key_found(s, &g->r[i])) {
            snprintf(why, whylen, "the index still finds key-%u of cut record %zu", g->r[i].seq, i);
            return -1;
        }
    }
    if (k > 0 && !key_found(s, &g->r[k - 1])) {
        snprintf(why, whylen, "the index lost key-%u of surviving record %zu", g->r[k - 1].seq,
                 k - 1);
        return -1;
    }

    /* The next append continues at the end, with the next queue offset. */
    const struct grec *nr = &g->r[k < g->n ? k : g->n - 1];
    uint32_t seq = 90000 + (uint32_t)k;
    size_t blen = 40, len = rec_len_of(seq, blen);
    uint64_t want_phys = end, want_qoff = 0;
    struct store_put_result res;
    if ((end % SEG) + len + REC_BLANK_MIN > SEG)
        want_phys = (end / SEG + 1) * SEG;
    for (size_t i = 0; i < k; i++)
        if (g->r[i].topic == nr->topic && g->r[i].qid == nr->qid)
            want_qoff++;
    int rc = put_one(s, seq, nr->topic, nr->qid, blen, &res);
    if (rc != 0 || res.phys_off != want_phys || res.queue_off != want_qoff) {
        snprintf(why, whylen,
                 "next put: rc %d at %" PRIu64 " qoff %" PRIu64 ", want %" PRIu64 " qoff %" PRIu64,
                 rc, res.phys_off, res.queue_off, want_phys, want_qoff);
        return -1;
    }
    wait_dispatched(s);
    memset(&gres, 0, sizeof(gres));
    uint8_t want[64];
    struct rec_view rv;
    body_fill(seq, want, blen);
    if (store_get(s, topics[nr->topic], nr->qid, want_qoff, 1, 1 << 20, NULL, &gres) != 0 ||
        gres.count != 1 || gres.msgs[0].phys_off != want_phys ||
        rec_parse(gres.msgs[0].data, gres.msgs[0].len, want_phys, REC_CHECK_CRC, &rv, NULL) <= 0 ||
        rv.body_len != blen || memcmp(rv.body, want, blen) != 0) {
        snprintf(why, whylen, "the appended message does not read back at %" PRIu64, want_phys);
        store_get_release(&gres);
        return -1;
    }
    store_get_release(&gres);
    return 0;
}

static void
describe(char *buf, size_t len, const struct golden *g, const struct variant *v)
{
    snprintf(buf, len, "%s %s at %" PRIu64 " (segment %020" PRIu64 " byte %" PRIu64 ")", g->name,
             kind_names[v->kind], v->x, v->x - v->x % SEG, v->x % SEG);
}

/*
 * Runs one tail variant: the checkpoint lies at <ck>, below the damage.
 * Works out the expected outcome from the bytes, opens, and checks.
 */
static void
run_tail(const struct golden *g, struct variant *v, uint64_t ck)
{
    static struct unit u[MAXR * 2];
    size_t nu = units_of(g, u, MAXR * 2), first = nu;
    int valid_after = 0;
    uint8_t ckb[CKPT_FILE_SIZE];
    char desc[160], err[512] = "", why[400] = "";
    struct store_config cfg;
    struct cfg_target t;
    struct store *s = NULL;
    struct store_open_info info;

    make_variant(g, v);
    for (size_t i = 0; i < nu; i++) {
        if (first == nu) {
            if (unit_changed(g, &u[i]))
                first = i;
        } else if (u[i].rec >= 0 && !unit_changed(g, &u[i])) {
            valid_after = 1;
        }
    }
    if (first == nu)
        return; /* the damage changed nothing the log holds */
    uint64_t end = u[first].phys;
    size_t k = 0;
    while (k < g->n && g->r[k].end <= end)
        k++;

    ckpt_bytes(g, ck, ck, ckb);
    write_variant(g, v, ckb);
    describe(desc, sizeof(desc), g, v);
    T.variants++;
    config_init(&cfg, &t, T.work);
    int rc = store_open(&cfg, &s, &info, err, sizeof(err));
    if (valid_after) {
        if (rc == 0) {
            violation("%s: mid-log damage (a valid record follows %" PRIu64
                      ") but the store opened, log end %" PRIu64,
                      desc, end, info.clog_max);
            store_abandon(s);
        } else if (rc != SPK_ECORRUPT || !err_names_place(err, end)) {
            violation("%s: refused with rc %d but not naming file and offset %" PRIu64 ": %s", desc,
                      rc, end, err);
        } else {
            T.refused++;
        }
    } else if (rc != 0) {
        violation("%s: store_open failed: %s: %s", desc, spk_strerror(rc), err);
    } else {
        if (info.clog_max != end)
            snprintf(why, sizeof(why), "recovered to %" PRIu64 ", want %" PRIu64, info.clog_max,
                     end);
        else
            check_prefix(s, g, k, end, why, sizeof(why));
        if (why[0] != '\0')
            violation("%s: %s", desc, why);
        else
            T.exact++;
        store_abandon(s);
    }
    cfg_free(&t);
    if (T.verbose)
        printf("tails: %s: %s\n", desc, why[0] ? why : "ok");
}

/*
 * Negative control: damage confined to segment <si> below the checkpoint
 * (which says everything is durable); the store must refuse, name the
 * place, and change no CommitLog file.
 */
static void
run_below(const struct golden *g, struct variant *v, uint64_t derived)
{
    static struct unit u[MAXR * 2];
    size_t nu = units_of(g, u, MAXR * 2), first = nu;
    uint8_t ckb[CKPT_FILE_SIZE];
    char desc[160], err[512] = "";
    struct store_config cfg;
    struct cfg_target t;
    struct store *s = NULL;
    struct store_open_info info;

    make_variant(g, v);
    for (size_t i = 0; i < nu && first == nu; i++)
        if (unit_changed(g, &u[i]))
            first = i;
    if (first == nu)
        return;
    ckpt_bytes(g, g->log_end, derived, ckb);
    write_variant(g, v, ckb);
    describe(desc, sizeof(desc), g, v);
    T.variants++;
    config_init(&cfg, &t, T.work);
    int rc = store_open(&cfg, &s, &info, err, sizeof(err));
    if (rc == 0) {
        violation("%s (below the checkpoint): the store opened, log end %" PRIu64, desc,
                  info.clog_max);
        store_abandon(s);
    } else if (rc != SPK_ECORRUPT) {
        violation("%s (below the checkpoint): rc %d (%s), want SPK_ECORRUPT: %s", desc, rc,
                  spk_strerror(rc), err);
    } else if (!err_names_place(err, u[first].phys)) {
        violation("%s (below the checkpoint): the message does not name the file and offset "
                  "%" PRIu64 ": %s",
                  desc, u[first].phys, err);
    } else {
        /* Nothing may have been cut or rewritten. */
        int same = 1;
        for (size_t i = 0; i < g->nf && same; i++) {
            uint64_t b;
            char path[PATH_MAX];
            size_t len;
            if (!seg_of(g->f[i].rel, &b))
                continue;
            snprintf(path, sizeof(path), "%s/%s", T.work, g->f[i].rel);
            uint8_t *now = read_file(path, &len);
            size_t si = (size_t)(b / SEG);
            same = len == v->seg_len[si] && memcmp(now, seg_buf(si), len) == 0;
            if (!same)
                violation("%s (below the checkpoint): %s changed although the store refused", desc,
                          g->f[i].rel);
            free(now);
        }
        if (same)
            T.refused++;
    }
    cfg_free(&t);
    if (T.verbose)
        printf("tails: below: %s: rc %d: %s\n", desc, rc, err);
}

/* Is byte <x> one the stride takes? The edges of every record always. */
static int
taken(const struct golden *g, size_t first_rec, uint64_t x)
{
    for (size_t i = first_rec; i < g->n; i++)
        if ((x >= g->r[i].phys && x < g->r[i].phys + T.edge) ||
            (x < g->r[i].end && x + T.edge >= g->r[i].end))
            return 1;
    return T.stride <= 1 || (x + T.seed) % T.stride == 0;
}

static void
sweep_tail(const struct golden *g)
{
    const struct grec *t3 = &g->r[g->n - 3];
    uint64_t ck = t3->phys, from = t3->phys, to = g->r[g->n - 1].end;
    unsigned long v0 = T.variants, x0 = T.violations;
    time_t t0 = time(NULL);
    static struct variant v;

    for (uint64_t x = from; x < to; x++) {
        if (!taken(g, g->n - 3, x))
            continue;
        for (int k = K_TRUNC; k <= K_RANDOM; k++) {
            memset(&v, 0, sizeof(v));
            v.kind = (enum kind)k;
            v.x = x;
            v.limit = g->files_end;
            run_tail(g, &v, ck);
        }
    }
    for (size_t i = g->n - 3; i < g->n; i++) {
        const struct grec *r = &g->r[i];
        memset(&v, 0, sizeof(v));
        v.kind = K_HALFHDR;
        v.x = r->phys + 44;
        v.limit = g->files_end;
        run_tail(g, &v, ck);
        /* TOTALSIZE past the rest of the segment, and absurdly large; the
         * records behind it stay intact (a refusal unless it is the last). */
        uint32_t bigs[2] = {(uint32_t)(SEG - r->phys % SEG + 1), 0x7FFFFFF0u};
        for (int b = 0; b < 2; b++) {
            memset(&v, 0, sizeof(v));
            v.kind = K_BIGSIZE;
            v.x = r->phys;
            v.rec = (int)i;
            v.big = bigs[b];
            run_tail(g, &v, ck);
        }
    }
    printf("tails: %s: %lu tail variants, %lu violations, %ld s\n", g->name, T.variants - v0,
           T.violations - x0, (long)(time(NULL) - t0));
    fflush(stdout);
}

/* The negative control on golden A: the segment before the last one. */
static void
sweep_below(const struct golden *g)
{
    uint64_t last_base = g->log_end - g->log_end % SEG, prev_base = last_base - SEG;
    size_t last_in_prev = 0;
    unsigned long v0 = T.variants, x0 = T.violations;
    time_t t0 = time(NULL);
    static struct variant v;

    for (size_t i = 0; i < g->n; i++)
        if (g->r[i].phys >= prev_base && g->r[i].phys < last_base)
            last_in_prev = i;
    if (last_in_prev < 3)
        die("golden %s: too few records before the last segment", g->name);
    uint64_t from = g->r[last_in_prev - 2].phys, to = g->r[last_in_prev].end;
    for (uint64_t x = from; x < to; x++) {
        if ((x + T.seed) % (T.stride * 4) != 0 && x >= from + T.edge && x + T.edge < to)
            continue;
        for (int k = K_ZERO; k <= K_RANDOM; k++) {
            memset(&v, 0, sizeof(v));
            v.kind = (enum kind)k;
            v.x = x;
            v.limit = last_base; /* only this segment: later ones stay intact */
            run_below(g, &v, prev_base);
        }
    }
    printf("tails: %s below the checkpoint: %lu variants, %lu violations, %ld s\n", g->name,
           T.variants - v0, T.violations - x0, (long)(time(NULL) - t0));
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    static struct golden ga = {.name = "goldA"}, gb = {.name = "goldB"};
    char work[PATH_MAX];

    if (argc < 2) {
        fprintf(stderr, "usage: tails DIR [--stride N] [--edge E] [--seed S] [--verbose]\n");
        return 2;
    }
    T.dir = argv[1];
    T.stride = 1;
    T.edge = 12;
    T.seed = 1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--stride") == 0 && i + 1 < argc)
            T.stride = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--edge") == 0 && i + 1 < argc)
            T.edge = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            T.seed = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--verbose") == 0)
            T.verbose = 1;
        else
            die("unknown argument %s", argv[i]);
    }
    if (T.stride == 0)
        T.stride = 1;
    if (mkdir(T.dir, 0755) != 0 && errno != EEXIST)
        die("%s: %s", T.dir, strerror(errno));
    snprintf(work, sizeof(work), "%s/work", T.dir);
    T.work = work;
    if ((vimg = malloc((size_t)MAXSEG * SEG)) == NULL)
        die("out of memory");

    golden_build(&ga, 0);
    golden_build(&gb, 1);
    printf("tails: golden A: %zu records, log end %" PRIu64 "; golden B: %zu records, log end "
           "%" PRIu64 " (roll-over at %" PRIu64 "); stride %u\n",
           ga.n, ga.log_end, gb.n, gb.log_end, gb.r[gb.n - 2].phys, T.stride);
    fflush(stdout);
    sweep_tail(&ga);
    sweep_tail(&gb);
    sweep_below(&ga);

    printf("tails: %lu variants, %lu violations, %lu exact, %lu refused\n", T.variants,
           T.violations, T.exact, T.refused);
    rmrf(T.work);
    free(vimg);
    for (struct golden *g = &ga;; g = &gb) {
        for (size_t i = 0; i < g->nf; i++)
            free(g->f[i].data);
        free(g->img);
        if (g == &gb)
            break;
    }
    return T.violations == 0 ? 0 : 1;
}
