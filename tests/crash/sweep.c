/*
 * sweep.c - the fail-the-Nth-call sweep at the store level (RELIABILITY.md
 * T6, SQLite's do_faultsim_test), driven by tests/reliability/t6_sweep.sh.
 *
 *   sweep [--scope quick|full] [--max-n N] [--op NAME] [--dir DIR] [-v]
 *
 * For every operation below, every I/O kind of the store's seam
 * (store/storeio.h) and the errnos that kind can really return, once and
 * persistent: arm the seam so that the Nth call of that kind fails, run
 * the operation through the public API (store.h), disarm, and check; for
 * N = 1, 2, ... until a run reaches no Nth call.
 *
 * Operations (each starts from a copy of a seed store made at start-up):
 *   open           store_open + recovery of a store with data, no clean
 *                  shutdown (abort marker present), then store_close
 *   append-S-W     open (no fault), then with the fault armed 12 puts (120
 *                  in the full scope: roll-overs of CommitLog, queue and
 *                  index files) and store_close; S = sync|async
 *                  (flushDiskType), W = mmap|pwrite (writeWithoutMmap).
 *                  Under SYNC_FLUSH a put is store_put_sync, under
 *                  ASYNC_FLUSH store_put (acknowledged when it returns 0)
 *   rollover       the same, SYNC_FLUSH, on a store whose last segment is
 *                  nearly full: the puts cross into a new segment
 *   cq-rebuild     store_open of a crashed store whose consumequeue
 *                  directory is gone: every queue is rebuilt from the log
 *   checkpoint     store_flush_all (queues, index, checkpoint) and
 *                  store_close after puts made without faults
 *   clean          store_clean_now(force) on a store of several expired
 *                  segments (segment, queue and index file deletion)
 *
 * Checked after every run:
 *   - every API call returned 0 or a documented error: the injected errno,
 *     -EIO, SPK_ESTORE_FAILED, SPK_EDISKFULL (store.h); anything else is
 *     a violation ("undocumented error");
 *   - R3: once store_failed() is non-zero no put is acknowledged, and
 *     store_close reports the failure; under SYNC_FLUSH no acknowledged
 *     put ends above store_durable() (an ack only after a completed sync),
 *     and (R1) no put started after a persistent failure of the
 *     CommitLog's sync kind (msync, or fdatasync in pwrite mode) had begun
 *     is acknowledged;
 *   - a clean reopen with faults off succeeds, and every acknowledged
 *     message (the seed's and the run's) is handed out by its queue at its
 *     queue offset from its physical offset, with its body byte for byte;
 *     after `clean`, exactly those below the new log start may be gone;
 *   - no crash, no sanitizer report, no leak: with LeakSanitizer linked in
 *     (the ASan build) a leak check runs after every group of runs.
 * The fault is armed after the seed is opened, except for open and
 * cq-rebuild, whose store_open is the operation; the Nth call counts from
 * the arming, whichever thread makes it (flush, dispatch, allocation and
 * clean threads included), so N's reach varies a little between runs.
 * The quick scope (per commit) tries EIO, and ENOSPC on fallocate, for
 * N <= 2 and 12 puts; the full scope every errno of errnos_of(), N up to
 * MAXN_FULL and 120 puts.
 * One line per (operation, kind, errno, mode): runs, injected runs and
 * violations; the first violations are described. The last line is
 *   sweep: R runs, I injected, V violations, S s
 * Exit 0 when there was no violation, 1 otherwise, 2 on a setup error.
 *
 * EINTR is not injected: the seam retries it inside each wrapper
 * (storeio.h INV-1) and an armed fault is returned before that loop, so an
 * injected EINTR would model a result the store can never see.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/crc.h"
#include "common/errors.h"
#include "store/record.h"
#include "store/store.h"
#include "store/storeio.h"

/* LeakSanitizer's entry point, present only in sanitizer builds. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

#define SEG (80 * 1024) /* maxMessageSize 8192 needs 72 KiB + 8 */
#define MAXMSG 8192
#define TOPIC "Sweep"
#define NQ 3
#define W_PUTS_MAX 128
#define MAXACK 2048
#define MAXN_FULL 4000

/* One acknowledged message. */
struct ack {
    uint32_t seq;
    int32_t qid;
    uint64_t phys, qoff, end;
    uint32_t body_len;
};

/* A seed store and the messages it holds. */
struct seed {
    char dir[512];
    struct ack acks[MAXACK];
    size_t n;
};

enum op {
    OP_OPEN,
    OP_APPEND_SYNC_MMAP,
    OP_APPEND_SYNC_PWRITE,
    OP_APPEND_ASYNC_MMAP,
    OP_APPEND_ASYNC_PWRITE,
    OP_ROLLOVER,
    OP_CQ_REBUILD,
    OP_CHECKPOINT,
    OP_CLEAN,
    OP_N
};

static const char *const op_names[OP_N] = {
    "open",          "append-sync-mmap", "append-sync-pwrite", "append-async-mmap",
    "append-async-pwrite", "rollover",   "cq-rebuild",         "checkpoint",
    "clean",
};

static const char *const kind_names[SIO_NKINDS] = {
    "open",  "pwrite", "pread", "fallocate", "ftruncate", "fsync",
    "msync", "mmap",   "rename", "unlink",   "dirsync",   "mkdir",
};

static char base_dir[512], work[600];
static struct seed seed_crash, seed_clean, seed_full, seed_old, seed_nocq;
static struct store_get_result gres;
static uint8_t bodybuf[MAXMSG];
static int verbose;
static unsigned reported; /* violations described so far */
static uint32_t next_seq = 1;
static int w_puts = 12; /* puts per append run: 12 quick, 120 full */

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "sweep: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(2);
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Files                                                              */

static void
rmrf(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    if (d == NULL) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char p[1024];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rmrf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

/* Copies <src> to <dst> (which must not exist), keeping mtimes: the clean
 * operation depends on the segments' age. */
static void
copytree(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    struct dirent *e;

    if (d == NULL || mkdir(dst, 0755) != 0)
        die("cannot copy %s to %s: %s", src, dst, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char s[1024], t[1024], buf[65536];
        struct stat st;
        ssize_t n;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(s, sizeof(s), "%s/%s", src, e->d_name);
        snprintf(t, sizeof(t), "%s/%s", dst, e->d_name);
        if (lstat(s, &st) != 0)
            die("stat %s: %s", s, strerror(errno));
        if (S_ISDIR(st.st_mode)) {
            copytree(s, t);
            continue;
        }
        int in = open(s, O_RDONLY), out = open(t, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0)
            die("copy %s: %s", s, strerror(errno));
        while ((n = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n)
                die("copy %s: %s", s, strerror(errno));
        close(in);
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        futimens(out, times);
        close(out);
    }
    closedir(d);
}

/* ------------------------------------------------------------------ */
/* Store configuration and messages                                   */

struct conf {
    struct store_config cfg;
    struct cfg_target t;
};

static void
conf_init(struct conf *c, const char *dir, int sync, int pwrite_mode)
{
    size_t n;
    char err[CFG_ERR_MAX];

    memset(c, 0, sizeof(*c));
    c->t.defs = store_config_table(&n);
    c->t.n = n;
    c->t.obj = &c->cfg;
    if (cfg_set_defaults(&c->t) != 0 ||
        cfg_set(&c->t, 1, "storePathRootDir", dir, err, sizeof(err)) != 0)
        die("configuration failed");
    c->cfg.flushDiskType = sync ? STORE_SYNC_FLUSH : STORE_ASYNC_FLUSH;
    c->cfg.writeWithoutMmap = pwrite_mode ? STORE_WRITE_PWRITE : STORE_WRITE_MMAP;
    c->cfg.mappedFileSizeCommitLog = SEG;
    c->cfg.mappedFileSizeConsumeQueue = 20 * 20; /* queue files roll over too */
    c->cfg.maxMessageSize = MAXMSG;
    c->cfg.maxHashSlotNum = 64;
    c->cfg.maxIndexNum = 128; /* index files fill up and roll over */
    c->cfg.syncFlushTimeout = 5000;
    c->cfg.flushIntervalCommitLog = 10;
    c->cfg.flushIntervalConsumeQueue = 20;
    c->cfg.warmMapedFileEnable = 0;
    c->cfg.maxTransferCountOnMessageInMemory = STORE_MAX_BATCH;
    c->cfg.maxTransferBytesOnMessageInMemory = 4 << 20;
    /* Nothing is deleted behind the test's back: the clean operation asks
     * for its deletions itself (store_clean_now with force). */
    c->cfg.fileReservedTime = 100000;
    c->cfg.cleanFileForciblyEnable = 0;
    c->cfg.cleanResourceInterval = 3600000;
    c->cfg.diskMaxUsedSpaceRatio = 95;
    c->cfg.diskSpaceCleanForciblyRatio = 85;
    c->cfg.diskSpaceWarningLevelRatio = 90;
}

static void
conf_free(struct conf *c)
{
    cfg_free(&c->t);
}

/* Body of message <seq>: deterministic, its length chosen by <big>. */
static uint32_t
body_len_of(uint32_t seq, int big)
{
    return big ? 1500 + (seq * 7919u) % 2500 : 40 + (seq * 7919u) % 400;
}

static void
body_fill(uint32_t seq, uint8_t *buf, uint32_t len)
{
    uint32_t x = seq * 2654435761u + 1;

    for (uint32_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    if (len >= 4)
        be_put32(buf, seq);
}

/* One put of message <seq> (store_put_sync, or store_put when <async>). */
static int
put_one(struct store *s, uint32_t seq, int big, int async, struct ack *a)
{
    struct rec_msg m;
    struct store_put_result r;
    char props[64];
    uint32_t len = body_len_of(seq, big);
    int rc;

    body_fill(seq, bodybuf, len);
    snprintf(props, sizeof(props), "KEYS\001k%u\002TAGS\001t%u\002", seq, seq % 3);
    memset(&m, 0, sizeof(m));
    m.topic = TOPIC;
    m.topic_len = strlen(TOPIC);
    m.queue_id = (int32_t)(seq % NQ);
    m.body = bodybuf;
    m.body_len = len;
    m.props = props;
    m.props_len = strlen(props);
    m.born_host_len = m.store_host_len = 4;
    m.born_host[0] = m.store_host[0] = 127;
    m.born_host[3] = m.store_host[3] = 1;
    m.born_port = 40000;
    m.store_port = 10911;
    rc = async ? store_put(s, &m, &r) : store_put_sync(s, &m, &r);
    if (rc == 0)
        *a = (struct ack){seq, m.queue_id, r.phys_off, r.queue_off, r.end, len};
    return rc;
}

/* ------------------------------------------------------------------ */
/* Seeds                                                              */

static struct store *
open_or_die(struct conf *c)
{
    struct store *s;
    struct store_open_info info;
    char err[512];
    int rc = store_open(&c->cfg, &s, &info, err, sizeof(err));

    if (rc != 0)
        die("store_open(%s): %s: %s", c->cfg.storePathRootDir, spk_strerror(rc), err);
    return s;
}

/* Writes seed <sd> in <name>: puts until <bytes> of log are written (or
 * <count> messages), then a clean close or (abandon) a crash. */
static void
make_seed(struct seed *sd, const char *name, uint64_t bytes, size_t count, int big, int abandon)
{
    struct conf c;
    struct store *s;

    snprintf(sd->dir, sizeof(sd->dir), "%s/%s", base_dir, name);
    rmrf(sd->dir);
    conf_init(&c, sd->dir, 1, 0);
    s = open_or_die(&c);
    sd->n = 0;
    while (sd->n < count && sd->n < MAXACK && store_written(s) < bytes) {
        if (put_one(s, next_seq++, big, 0, &sd->acks[sd->n]) != 0)
            die("seed %s: put failed", name);
        sd->n++;
    }
    if (abandon)
        store_abandon(s);
    else if (store_close(s) != 0)
        die("seed %s: close failed", name);
    conf_free(&c);
}

/* A store whose last segment has less than two large messages' room. */
static void
make_full_seed(void)
{
    struct conf c;
    struct store *s;
    struct seed *sd = &seed_full;

    snprintf(sd->dir, sizeof(sd->dir), "%s/full", base_dir);
    rmrf(sd->dir);
    conf_init(&c, sd->dir, 1, 0);
    s = open_or_die(&c);
    sd->n = 0;
    while (SEG - store_written(s) % SEG > 2 * 4200 || store_written(s) < SEG) {
        int big = SEG - store_written(s) % SEG > 12000;
        if (put_one(s, next_seq++, big, 0, &sd->acks[sd->n]) != 0)
            die("seed full: put failed");
        sd->n++;
    }
    if (store_close(s) != 0)
        die("seed full: close failed");
    conf_free(&c);
}

static void
make_seeds(void)
{
    make_seed(&seed_clean, "clean", 3000, 50, 0, 0);
    make_seed(&seed_crash, "crash", SEG + SEG / 2, MAXACK, 1, 1);
    make_full_seed();
    /* Four segments and more, aged so that every one has expired under
     * fileReservedTime = 0. */
    make_seed(&seed_old, "old", 4 * SEG + 1000, MAXACK, 1, 0);
    /* The crash seed without its queues: recovery rebuilds them all. */
    seed_nocq = seed_crash;
    snprintf(seed_nocq.dir, sizeof(seed_nocq.dir), "%s/nocq", base_dir);
    rmrf(seed_nocq.dir);
    copytree(seed_crash.dir, seed_nocq.dir);
    char p[700];
    snprintf(p, sizeof(p), "%s/consumequeue", seed_nocq.dir);
    rmrf(p);
    snprintf(p, sizeof(p), "%s/checkpoint", seed_nocq.dir);
    unlink(p);
    /* Age the old seed's files by a day. */
    snprintf(p, sizeof(p), "%s/commitlog", seed_old.dir);
    DIR *d = opendir(p);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char f[1024];
        struct timespec t[2] = {{time(NULL) - 86400, 0}, {time(NULL) - 86400, 0}};
        if (e->d_name[0] == '.')
            continue;
        snprintf(f, sizeof(f), "%s/%s", p, e->d_name);
        utimensat(AT_FDCWD, f, t, 0);
    }
    if (d)
        closedir(d);
}

/* ------------------------------------------------------------------ */
/* One run                                                            */

struct group {
    enum op op;
    enum sio_kind kind;
    int err;
    enum sio_fault_mode mode;
    unsigned runs, injected, violations;
};

static void
violation(struct group *g, unsigned long nth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
violation(struct group *g, unsigned long nth, const char *fmt, ...)
{
    va_list ap;

    g->violations++;
    if (reported++ >= 40 && !verbose)
        return;
    printf("t6: VIOLATION %s %s/%s %s N=%lu: ", op_names[g->op], kind_names[g->kind],
           strerrorname_np(g->err), g->mode == SIO_FAULT_ONCE ? "once" : "persistent", nth);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Is <rc> an error store.h documents for an injected <err>? Not
 * SPK_ETIMEOUT: the seam fails at once, so a flush that misses its
 * deadline here would be a hang, not a slow disk. */
static int
documented(int rc, int err)
{
    return rc == 0 || rc == -err || rc == -EIO || rc == SPK_ESTORE_FAILED || rc == SPK_EDISKFULL;
}

/* Checks, with faults off, that the store at <work> opens and holds every
 * acknowledged message. <may_lose_below_min>: after clean-up. */
static void
verify(struct group *g, unsigned long nth, const struct ack *acks, size_t n,
       int may_lose_below_min)
{
    struct conf c;
    struct store *s;
    struct store_open_info info;
    char err[512];
    int rc;

    conf_init(&c, work, 1, 0);
    rc = store_open(&c.cfg, &s, &info, err, sizeof(err));
    if (rc != 0) {
        violation(g, nth, "clean reopen failed: %s: %s", spk_strerror(rc), err);
        conf_free(&c);
        return;
    }
    /* Recovery dispatches synchronously: every queue is complete now. */
    for (size_t i = 0; i < n; i++) {
        const struct ack *a = &acks[i];
        if (may_lose_below_min && a->phys < info.clog_min)
            continue;
        rc = store_get(s, TOPIC, a->qid, a->qoff, 1, 0, NULL, &gres);
        struct rec_view v;
        const char *why;
        int ok = rc == 0 && gres.count == 1 && gres.msgs[0].phys_off == a->phys &&
                 gres.msgs[0].queue_off == a->qoff &&
                 rec_parse(gres.msgs[0].data, gres.msgs[0].len, a->phys, REC_CHECK_CRC, &v,
                           &why) > 0 &&
                 v.body_len == a->body_len;
        if (ok) {
            body_fill(a->seq, bodybuf, a->body_len);
            ok = memcmp(v.body, bodybuf, a->body_len) == 0;
        }
        if (!ok)
            violation(g, nth,
                      "acknowledged seq %u (queue %d offset %" PRIu64 ", log offset %" PRIu64
                      ") is missing or changed after a clean reopen (%s, %zu message(s))",
                      a->seq, a->qid, a->qoff, a->phys, store_get_status_name(gres.status),
                      gres.count);
        store_get_release(&gres);
        if (!ok)
            break;
    }
    rc = store_close(s);
    if (rc != 0)
        violation(g, nth, "close after the clean reopen failed: %s", spk_strerror(rc));
    conf_free(&c);
}

/* Runs <g>'s operation once with the <nth> call failing. Returns 1 when
 * the Nth call was reached. */
static int
run_once(struct group *g, unsigned long nth)
{
    static struct ack acks[MAXACK + W_PUTS_MAX];
    const struct seed *sd;
    struct conf c;
    struct store *s = NULL;
    struct store_open_info info;
    char err[512];
    size_t n = 0;
    int rc, injected, sync = 1, pw = 0, lose_below_min = 0;

    switch (g->op) {
    case OP_OPEN:
        sd = &seed_crash;
        break;
    case OP_CQ_REBUILD:
        sd = &seed_nocq;
        break;
    case OP_ROLLOVER:
        sd = &seed_full;
        break;
    case OP_CLEAN:
        sd = &seed_old;
        break;
    default:
        sd = &seed_clean;
        break;
    }
    if (g->op == OP_APPEND_ASYNC_MMAP || g->op == OP_APPEND_ASYNC_PWRITE)
        sync = 0;
    if (g->op == OP_APPEND_SYNC_PWRITE || g->op == OP_APPEND_ASYNC_PWRITE)
        pw = 1;
    rmrf(work);
    copytree(sd->dir, work);
    memcpy(acks, sd->acks, sd->n * sizeof(acks[0]));
    n = sd->n;
    conf_init(&c, work, sync, pw);
    if (g->op == OP_CLEAN)
        c.cfg.fileReservedTime = 0;

    sio_fault_clear();
    int armed_before_open = g->op == OP_OPEN || g->op == OP_CQ_REBUILD;
    if (armed_before_open)
        sio_fault_arm(g->kind, nth, g->mode, g->err);
    rc = store_open(&c.cfg, &s, &info, err, sizeof(err));
    if (rc != 0) {
        if (!armed_before_open)
            die("%s: store_open of the seed failed: %s: %s", op_names[g->op], spk_strerror(rc),
                err);
        if (!documented(rc, g->err))
            violation(g, nth, "store_open returned an undocumented error: %s: %s",
                      spk_strerror(rc), err);
        goto done;
    }
    if (!armed_before_open) {
        /* Count the calls from here: sio_calls() restarts at the clear. */
        sio_fault_clear();
        sio_fault_arm(g->kind, nth, g->mode, g->err);
    }

    switch (g->op) {
    case OP_APPEND_SYNC_MMAP:
    case OP_APPEND_SYNC_PWRITE:
    case OP_APPEND_ASYNC_MMAP:
    case OP_APPEND_ASYNC_PWRITE:
    case OP_ROLLOVER: {
        int failed_seen = 0;
        /* The sync that makes the CommitLog durable in this mode. */
        enum sio_kind clog_sync = pw ? SIO_FSYNC : SIO_MSYNC;
        for (int i = 0; i < w_puts; i++) {
            /* R3: once failed, never acknowledge again. */
            int was_failed = store_failed(s) != 0;
            /* R1: with every CommitLog sync failing from here on, nothing
             * put now can become durable, so nothing may be acked. */
            int syncs_dead = sync && g->mode == SIO_FAULT_PERSISTENT && g->kind == clog_sync &&
                             sio_calls(g->kind) >= nth;
            rc = put_one(s, next_seq++, g->op == OP_ROLLOVER || i % 4 == 3, !sync, &acks[n]);
            if (rc == 0) {
                if (was_failed || failed_seen)
                    violation(g, nth, "put %d acknowledged after the store failed", i);
                if (syncs_dead)
                    violation(g, nth,
                              "put %d acknowledged under SYNC_FLUSH although every %s since "
                              "before it failed",
                              i, kind_names[g->kind]);
                if (sync && acks[n].end > store_durable(s))
                    violation(g, nth,
                              "put %d acknowledged under SYNC_FLUSH but ends at %" PRIu64
                              ", above the durable offset %" PRIu64,
                              i, acks[n].end, store_durable(s));
                n++;
            } else {
                if (!documented(rc, g->err))
                    violation(g, nth, "put %d returned an undocumented error: %s", i,
                              spk_strerror(rc));
                if (rc == SPK_ESTORE_FAILED)
                    failed_seen = 1;
            }
        }
        break;
    }
    case OP_CHECKPOINT:
        for (int i = 0; i < w_puts / 2; i++) {
            /* The puts run with the fault armed too; what matters is the
             * flush and checkpoint after them. */
            rc = put_one(s, next_seq++, 0, 0, &acks[n]);
            if (rc == 0)
                n++;
            else if (!documented(rc, g->err))
                violation(g, nth, "put returned an undocumented error: %s", spk_strerror(rc));
        }
        rc = store_flush_all(s);
        if (!documented(rc, g->err))
            violation(g, nth, "store_flush_all returned an undocumented error: %s",
                      spk_strerror(rc));
        break;
    case OP_CLEAN:
        rc = store_clean_now(s, 1);
        if (rc < 0 && !documented(rc, g->err))
            violation(g, nth, "store_clean_now returned an undocumented error: %s",
                      spk_strerror(rc));
        lose_below_min = 1;
        break;
    default:
        break;
    }
    int failed = store_failed(s);
    rc = store_close(s);
    if (!documented(rc, g->err))
        violation(g, nth, "store_close returned an undocumented error: %s", spk_strerror(rc));
    if (failed && rc == 0)
        violation(g, nth, "store_close returned 0 although the store had failed (%s)",
                  spk_strerror(failed));

done:
    injected = sio_calls(g->kind) >= nth;
    sio_fault_clear();
    g->runs++;
    g->injected += (unsigned)injected;
    verify(g, nth, acks, n, lose_below_min);
    conf_free(&c);
    return injected;
}

/* ------------------------------------------------------------------ */
/* The sweep                                                          */

/* Errnos each kind can really return; EIO first. */
static size_t
errnos_of(enum sio_kind k, int full, int *out)
{
    size_t n = 0;

    if (k == SIO_MMAP) {
        /* mmap fails for lack of memory or address space, not with EIO. */
        out[n++] = ENOMEM;
        return n;
    }
    out[n++] = EIO;
    switch (k) {
    case SIO_PWRITE:
    case SIO_FALLOCATE:
    case SIO_FSYNC:
    case SIO_FTRUNCATE:
        out[n++] = ENOSPC;
        break;
    case SIO_OPEN:
        if (full)
            out[n++] = EMFILE;
        break;
    case SIO_MKDIR:
    case SIO_RENAME:
        if (full)
            out[n++] = ENOSPC;
        break;
    default:
        break;
    }
    /* The quick scope keeps EIO, and ENOSPC where space is reserved. */
    if (!full)
        n = n > 1 && k == SIO_FALLOCATE ? 2 : 1;
    return n;
}

static void
usage(void)
{
    fprintf(stderr, "usage: sweep [--scope quick|full] [--max-n N] [--op NAME] [--dir DIR] [-v]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    int full = 1, only = -1;
    unsigned long max_n = 0;
    const char *dir = NULL;
    unsigned total_runs = 0, total_inj = 0, total_viol = 0;
    int64_t t0 = mono_ms();

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "quick") == 0)
                full = 0;
            else if (strcmp(v, "full") != 0)
                usage();
        } else if (strcmp(argv[i], "--max-n") == 0 && i + 1 < argc) {
            max_n = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            for (int k = 0; k < OP_N; k++)
                if (strcmp(v, op_names[k]) == 0)
                    only = k;
            if (only < 0)
                usage();
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else {
            usage();
        }
    }
    if (max_n == 0)
        max_n = full ? MAXN_FULL : 2;
    if (full)
        w_puts = 120; /* two segment roll-overs, queue and index files too */
    if (dir == NULL)
        dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (dir == NULL)
        dir = "/tmp";
    snprintf(base_dir, sizeof(base_dir), "%s/spk-sweep-%d", dir, (int)getpid());
    rmrf(base_dir);
    if (mkdir(base_dir, 0755) != 0)
        die("mkdir %s: %s", base_dir, strerror(errno));
    snprintf(work, sizeof(work), "%s/work", base_dir);
    setvbuf(stdout, NULL, _IOLBF, 0);

    make_seeds();
    printf("t6: seeds ready (%zu, %zu, %zu, %zu messages) in %s, scope %s, N <= %lu\n",
           seed_clean.n, seed_crash.n, seed_full.n, seed_old.n, base_dir, full ? "full" : "quick",
           max_n);

    for (int op = 0; op < OP_N; op++) {
        if (only >= 0 && op != only)
            continue;
        unsigned op_runs = 0, op_inj = 0, op_viol = 0;
        int64_t op_t0 = mono_ms();
        for (int k = 0; k < SIO_NKINDS; k++) {
            int errs[4];
            size_t ne = errnos_of((enum sio_kind)k, full, errs);
            for (size_t e = 0; e < ne; e++) {
                for (int m = 0; m < 2; m++) {
                    struct group g = {(enum op)op, (enum sio_kind)k, errs[e],
                                      m == 0 ? SIO_FAULT_ONCE : SIO_FAULT_PERSISTENT, 0, 0, 0};
                    unsigned long nth;
                    for (nth = 1; nth <= max_n; nth++)
                        if (!run_once(&g, nth))
                            break;
                    if (__lsan_do_recoverable_leak_check != NULL &&
                        __lsan_do_recoverable_leak_check() != 0)
                        violation(&g, nth, "LeakSanitizer found leaks (reported above)");
                    if (g.injected > 0 || g.violations > 0 || verbose)
                        printf("t6: %-19s %-9s %-6s %-10s runs %4u injected %4u violations %u%s\n",
                               op_names[op], kind_names[k], strerrorname_np(errs[e]),
                               m == 0 ? "once" : "persistent", g.runs, g.injected, g.violations,
                               nth > max_n ? " (N limit reached)" : "");
                    op_runs += g.runs;
                    op_inj += g.injected;
                    op_viol += g.violations;
                }
            }
        }
        printf("t6: operation %-19s %5u runs, %5u injected, %u violations, %.1f s\n",
               op_names[op], op_runs, op_inj, op_viol, (double)(mono_ms() - op_t0) / 1000);
        total_runs += op_runs;
        total_inj += op_inj;
        total_viol += op_viol;
    }
    rmrf(base_dir);
    printf("sweep: %u runs, %u injected, %u violations, %" PRId64 " s\n", total_runs, total_inj,
           total_viol, (mono_ms() - t0) / 1000);
    return total_viol == 0 ? 0 : 1;
}
