/*
 * store.c - the message store facade: configuration, the writer, the flush,
 * dispatch, allocation and clean threads, recovery and the read path.
 *
 * Formats: STORE.md 1-9 (docs/FORMAT.md). Design: DESIGN.md (watermarks).
 *
 * Invariants:
 *   INV-1  Appends happen under put_lock only; queue offsets are assigned
 *          there, so a queue's records are in queue-offset order in the log.
 *   INV-2  durable <= written, dispatched <= written; under SYNC_FLUSH
 *          dispatched <= durable, so readers (who see only dispatched
 *          records) never see a record a power cut could erase (R2).
 *   INV-3  A failed flush of the CommitLog is sticky (R3): `failed` is set,
 *          every waiter is woken with SPK_ESTORE_FAILED, no later put is
 *          accepted and durable never moves again. The sync is not retried:
 *          Linux may already have marked the dirty pages clean.
 *   INV-4  The checkpoint only ever records offsets captured *before* the
 *          flush that made them durable (checkpoint.h INV-1/2).
 *   INV-5  Recovery cuts the log only above the checkpoint's durable offset
 *          and only where nothing valid follows the damage (R7); derived
 *          data (queues, index) is re-dispatched from the log and checked
 *          against it (R8).
 *
 * Store state:
 *
 *     store_open --recover ok--> RUNNING --flush error--> FAILED
 *         |                        |                        |
 *         +--recover error--> (not opened)     store_close / store_abandon
 *
 * Locks (never held together except as listed): put_lock > clog internals;
 * qt_lock (queue table) may be taken under put_lock; wait_lock guards the
 * condition variables only.
 */
#include "store/store.h"

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
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/crc.h"
#include "common/errors.h"
#include "common/jhash.h"
#include "store/checkpoint.h"
#include "store/commitlog.h"
#include "store/consumequeue.h"
#include "store/indexfile.h"
#include "store/segment.h"
#include "store/storeio.h"

#define SCHEDULE_TOPIC "SCHEDULE_TOPIC_XXXX"
#define MAX_DELAY_LEVELS 64
#define QT_BUCKETS 4096

/* ---------------------------------------------------------------------- */
/* Configuration                                                          */

static const char *const flush_types[] = {"ASYNC_FLUSH", "SYNC_FLUSH", NULL};
/* RocketMQ's boolean, plus "auto" (the default): pwrite under SYNC_FLUSH,
 * the mapping under ASYNC_FLUSH, the faster of the two for each in
 * `sprocket bench store` (see commitlog.c). */
static const char *const write_modes[] = {"false", "true", "auto", NULL};

#define F(field) offsetof(struct store_config, field)
static const struct cfg_def store_defs[] = {
    {"storePathRootDir", CFG_STRING, F(storePathRootDir), 0, 0, "./store", NULL, 0,
     "root directory of the store"},
    {"flushDiskType", CFG_ENUM, F(flushDiskType), 0, 0, "ASYNC_FLUSH", flush_types, 0,
     "SYNC_FLUSH acknowledges a message only after it is on disk"},
    {"mappedFileSizeCommitLog", CFG_INT64, F(mappedFileSizeCommitLog), 4096, 1LL << 40,
     "1073741824", NULL, 0, "CommitLog segment size in bytes"},
    {"mappedFileSizeConsumeQueue", CFG_INT64, F(mappedFileSizeConsumeQueue), 20, 1LL << 32,
     "6000000", NULL, 0, "ConsumeQueue segment size (rounded up to 20-byte units)"},
    {"flushIntervalCommitLog", CFG_INT, F(flushIntervalCommitLog), 1, 60000, "500", NULL,
     CFG_RUNTIME, "ASYNC_FLUSH: ms between flushes"},
    {"flushCommitLogLeastPages", CFG_INT, F(flushCommitLogLeastPages), 0, 1 << 20, "4", NULL,
     CFG_RUNTIME, "ASYNC_FLUSH: flush only when this many 4 KiB pages are dirty"},
    {"flushCommitLogThoroughInterval", CFG_INT, F(flushCommitLogThoroughInterval), 0, 3600000,
     "10000", NULL, CFG_RUNTIME, "ASYNC_FLUSH: flush everything at least this often (ms)"},
    {"flushIntervalConsumeQueue", CFG_INT, F(flushIntervalConsumeQueue), 1, 60000, "1000", NULL,
     CFG_RUNTIME, "ms between ConsumeQueue/index flushes and checkpoints"},
    {"syncFlushTimeout", CFG_INT, F(syncFlushTimeout), 1, 600000, "5000", NULL, CFG_RUNTIME,
     "SYNC_FLUSH: ms before FLUSH_DISK_TIMEOUT"},
    {"writeWithoutMmap", CFG_ENUM, F(writeWithoutMmap), 0, 0, "auto", write_modes, 0,
     "true: write the CommitLog with pwrite+fdatasync; false: through the mapping+msync; "
     "auto: pwrite under SYNC_FLUSH, the mapping under ASYNC_FLUSH"},
    {"warmMapedFileEnable", CFG_BOOL, F(warmMapedFileEnable), 0, 1, "true", NULL, 0,
     "prefault new CommitLog segments ahead of need"},
    {"enabledAppendPropCRC", CFG_BOOL, F(enabledAppendPropCRC), 0, 1, "true", NULL, 0,
     "append the whole-record CRC property __CRC32# to every record"},
    {"checkCRCOnRecover", CFG_BOOL, F(checkCRCOnRecover), 0, 1, "true", NULL, 0,
     "verify CRCs while recovering"},
    {"recoverCutDamagedTail", CFG_BOOL, F(recoverCutDamagedTail), 0, 1, "false", NULL, 0,
     "after a refusal to start: cut the log at damage above the checkpoint even though "
     "whole records follow it (they are dropped; set for one start, then remove)"},
    {"maxMessageSize", CFG_INT, F(maxMessageSize), 1, 1 << 30, "4194304", NULL, CFG_RUNTIME,
     "largest message body in bytes"},
    {"messageIndexEnable", CFG_BOOL, F(messageIndexEnable), 0, 1, "true", NULL, 0,
     "build the key index"},
    {"maxHashSlotNum", CFG_INT, F(maxHashSlotNum), 1, 100000000, "5000000", NULL, 0,
     "index hash slots per file"},
    {"maxIndexNum", CFG_INT, F(maxIndexNum), 2, 400000000, "20000000", NULL, 0,
     "index entries per file"},
    {"fileReservedTime", CFG_INT, F(fileReservedTime), 0, 100000, "72", NULL, CFG_RUNTIME,
     "hours a CommitLog segment is kept"},
    {"deleteWhen", CFG_STRING, F(deleteWhen), 0, 0, "04", NULL, CFG_RUNTIME,
     "hours of the day (';'-separated) when expired segments are deleted"},
    {"diskMaxUsedSpaceRatio", CFG_INT, F(diskMaxUsedSpaceRatio), 10, 95, "75", NULL,
     CFG_RUNTIME, "disk use (%) above which expired segments are deleted at any hour"},
    {"diskSpaceCleanForciblyRatio", CFG_INT, F(diskSpaceCleanForciblyRatio), 30, 85, "85",
     NULL, CFG_RUNTIME, "disk use (%) above which segments are deleted before they expire"},
    {"diskSpaceWarningLevelRatio", CFG_INT, F(diskSpaceWarningLevelRatio), 35, 90, "90", NULL,
     CFG_RUNTIME, "disk use (%) above which puts are refused"},
    {"cleanFileForciblyEnable", CFG_BOOL, F(cleanFileForciblyEnable), 0, 1, "true", NULL,
     CFG_RUNTIME, "allow deleting unexpired segments when the disk is nearly full"},
    {"cleanResourceInterval", CFG_INT, F(cleanResourceInterval), 100, 3600000, "10000", NULL,
     CFG_RUNTIME, "ms between clean-up rounds"},
    {"deleteFileBatchMax", CFG_INT, F(deleteFileBatchMax), 1, 1000, "10", NULL, CFG_RUNTIME,
     "CommitLog segments deleted per round at most"},
    {"maxTransferBytesOnMessageInMemory", CFG_INT, F(maxTransferBytesOnMessageInMemory), 1024,
     1 << 30, "262144", NULL, CFG_RUNTIME, "bytes returned per pull at most"},
    {"maxTransferCountOnMessageInMemory", CFG_INT, F(maxTransferCountOnMessageInMemory), 1,
     STORE_MAX_BATCH, "32", NULL, CFG_RUNTIME, "messages returned per pull at most"},
    {"messageDelayLevel", CFG_STRING, F(messageDelayLevel), 0, 0,
     "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h", NULL, 0,
     "delay of each level, 1-based"},
};
#undef F

const struct cfg_def *
store_config_table(size_t *n)
{
    *n = sizeof(store_defs) / sizeof(store_defs[0]);
    return store_defs;
}

/* ---------------------------------------------------------------------- */
/* State                                                                  */

struct queue {
    struct queue *next;
    char *topic;
    size_t topic_len;
    int32_t qid;
    uint32_t hash;
    uint64_t next_qoff;          /* put_lock */
    struct cq *_Atomic cq;       /* created by the dispatcher or at load */
    int rebuild;                 /* recovery only */
};

struct store {
    struct store_config cfg;
    char root[PATH_MAX];
    char cq_root[PATH_MAX];
    char abort_path[PATH_MAX];
    int lock_fd;
    int ckpt_fd;
    struct clog *clog;
    struct ixsvc *ix;
    size_t cq_seg_size;
    int sync_flush;
    uint64_t crc_prop_from; /* checkpoint.h INV-4 */
    uint64_t recov_crc_below; /* recovery only: replayed records below it get CRC checks */
    int64_t delay_ms[MAX_DELAY_LEVELS + 1];
    int max_delay_level;

    pthread_mutex_t put_lock;
    _Atomic int64_t last_store_ts;
    struct queue *last_q; /* put_lock: the queue of the previous put */

    pthread_rwlock_t qt_lock;
    struct queue *qt[QT_BUCKETS];
    unsigned nqueues;

    _Atomic uint64_t durable;
    _Atomic uint64_t dispatched;
    _Atomic int failed;
    _Atomic int disk_full;
    _Atomic int disp_error; /* the dispatcher cannot write queues (e.g. ENOSPC) */
    _Atomic int stopping;

    pthread_mutex_t maint_lock; /* one checkpoint or clean-up round at a time */
    pthread_mutex_t wait_lock;
    pthread_cond_t flush_cv;   /* wakes the flusher */
    pthread_cond_t durable_cv; /* wakes put waiters */
    pthread_cond_t disp_cv;    /* wakes the dispatcher */
    atomic_int eager_dispatch; /* readers wait: wake the dispatcher per put */
    pthread_cond_t alloc_cv;   /* wakes the allocator */
    pthread_cond_t clean_cv;   /* wakes the clean thread (shutdown) */
    _Atomic int flusher_idle;
    _Atomic int disp_idle;

    pthread_t flush_thr, disp_thr, alloc_thr, clean_thr;
    struct clog_reader *disp_reader; /* dispatcher, pwrite mode only */
    int threads_started;

    void (*listener)(void *, int);
    void *listener_arg;

    _Atomic int64_t ckpt_phys_ts;
    _Atomic int64_t ckpt_logics_ts;

    /* stats */
    _Atomic uint64_t st_puts, st_put_bytes, st_flushes, st_flush_errors, st_segs_deleted;
    _Atomic uint64_t st_get_calls, st_get_msgs, st_corrupt_reads;
};


static void
deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void
notify(struct store *s, int what)
{
    if (s->listener)
        s->listener(s->listener_arg, what);
}

/* Enters the failed state (INV-3) and wakes everyone who waits. */
static void
set_failed(struct store *s, int rc)
{
    int zero = 0;

    if (atomic_compare_exchange_strong(&s->failed, &zero, rc ? rc : -EIO)) {
        atomic_fetch_add(&s->st_flush_errors, 1);
        pthread_mutex_lock(&s->wait_lock);
        pthread_cond_broadcast(&s->durable_cv);
        pthread_cond_broadcast(&s->disp_cv);
        pthread_mutex_unlock(&s->wait_lock);
        notify(s, STORE_EV_FAILED);
    }
}

/* ---------------------------------------------------------------------- */
/* Topic names and delay levels                                           */

/* RocketMQ's topic pattern ^[%|a-zA-Z0-9_-]+$. It also keeps topic names
 * safe as directory names under consumequeue/. */
static int
topic_valid(const char *t, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '%' || c == '|' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int
parse_delay_levels(struct store *s, const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    int level = 0;

    while (*p) {
        char *end;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        long long v = strtoll(p, &end, 10);
        int64_t unit;
        switch (*end) {
        case 's': unit = 1000; break;
        case 'm': unit = 60000; break;
        case 'h': unit = 3600000; break;
        case 'd': unit = 86400000; break;
        default: unit = -1; break;
        }
        if (end == p || v <= 0 || unit < 0 || level >= MAX_DELAY_LEVELS) {
            snprintf(err, errlen, "messageDelayLevel: cannot parse '%s' (expected e.g. \"1s 5m 2h\")",
                     spec);
            return SPK_ECONFIG;
        }
        s->delay_ms[++level] = v * unit;
        p = end + 1;
    }
    s->max_delay_level = level;
    return 0;
}

/* ConsumeQueue tagsCode of a record (STORE.md 3.1). */
static int64_t
tags_code(struct store *s, const struct rec_view *v)
{
    const char *val;
    size_t vlen;

    if (v->topic_len == sizeof(SCHEDULE_TOPIC) - 1 &&
        memcmp(v->topic, SCHEDULE_TOPIC, v->topic_len) == 0 &&
        rec_prop_get(v->props, v->props_len, "DELAY", &val, &vlen)) {
        long level = 0;
        for (size_t i = 0; i < vlen && i < 9; i++) {
            if (val[i] < '0' || val[i] > '9') {
                level = -1;
                break;
            }
            level = level * 10 + (val[i] - '0');
        }
        if (level > s->max_delay_level)
            level = s->max_delay_level;
        return v->store_ts + (level >= 1 ? s->delay_ms[level] : 1000);
    }
    if (rec_prop_get(v->props, v->props_len, "TAGS", &val, &vlen))
        return (int64_t)spk_java_hash(val, vlen);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Queue table                                                            */

static uint32_t
qhash(const char *topic, size_t len, int32_t qid)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 16777619u;
    return (h ^ (uint32_t)qid) * 16777619u;
}

static struct queue *
queue_find_locked(struct store *s, const char *topic, size_t len, int32_t qid, uint32_t h)
{
    for (struct queue *q = s->qt[h % QT_BUCKETS]; q; q = q->next)
        if (q->hash == h && q->qid == qid && q->topic_len == len &&
            memcmp(q->topic, topic, len) == 0)
            return q;
    return NULL;
}

static struct queue *
queue_find(struct store *s, const char *topic, size_t len, int32_t qid)
{
    uint32_t h = qhash(topic, len, qid);
    struct queue *q;

    pthread_rwlock_rdlock(&s->qt_lock);
    q = queue_find_locked(s, topic, len, qid, h);
    pthread_rwlock_unlock(&s->qt_lock);
    return q;
}

/* Finds or creates the queue entry (no files yet). NULL only on ENOMEM. */
static struct queue *
queue_get(struct store *s, const char *topic, size_t len, int32_t qid)
{
    uint32_t h = qhash(topic, len, qid);
    struct queue *q = queue_find(s, topic, len, qid);

    if (q)
        return q;
    pthread_rwlock_wrlock(&s->qt_lock);
    q = queue_find_locked(s, topic, len, qid, h);
    if (q == NULL && (q = calloc(1, sizeof(*q))) != NULL) {
        q->topic = malloc(len + 1);
        if (q->topic == NULL) {
            free(q);
            q = NULL;
        } else {
            memcpy(q->topic, topic, len);
            q->topic[len] = '\0';
            q->topic_len = len;
            q->qid = qid;
            q->hash = h;
            q->next = s->qt[h % QT_BUCKETS];
            s->qt[h % QT_BUCKETS] = q;
            s->nqueues++;
        }
    }
    pthread_rwlock_unlock(&s->qt_lock);
    return q;
}

static struct cq *
queue_cq(struct queue *q)
{
    return atomic_load_explicit(&q->cq, memory_order_acquire);
}

/* Opens the ConsumeQueue files of <q> (dispatcher or recovery). */
static int
queue_open_cq(struct store *s, struct queue *q, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    struct cq *c;
    int rc;

    if (queue_cq(q))
        return 0;
    if (snprintf(dir, sizeof(dir), "%s/%s/%d", s->cq_root, q->topic, q->qid) >=
        (int)sizeof(dir))
        return -ENAMETOOLONG;
    rc = cq_open(dir, q->topic, q->qid, s->cq_seg_size, &c, err, errlen);
    if (rc != 0)
        return rc;
    atomic_store_explicit(&q->cq, c, memory_order_release);
    return 0;
}

typedef void (*queue_fn)(struct store *s, struct queue *q, void *arg);

static void
for_each_queue(struct store *s, queue_fn fn, void *arg)
{
    /* Queues are never removed while the store runs, so iterating after
     * dropping the lock is safe; new queues may be missed, which callers
     * accept (they run again later). */
    pthread_rwlock_rdlock(&s->qt_lock);
    for (size_t b = 0; b < QT_BUCKETS; b++)
        for (struct queue *q = s->qt[b]; q; q = q->next)
            fn(s, q, arg);
    pthread_rwlock_unlock(&s->qt_lock);
}

/* ---------------------------------------------------------------------- */
/* Dispatch: one record into its ConsumeQueue and the index               */

static int
dispatch_record(struct store *s, const struct rec_view *v, uint64_t phys, int only_rebuild)
{
    int tx = v->sysflag & REC_SYS_TX_MASK;
    struct queue *q;
    char err[256];
    int rc;

    if (!topic_valid(v->topic, v->topic_len) || v->queue_id < 0)
        return 0; /* not ours to index: put never writes such a record */
    if (tx == REC_SYS_TX_NOT || tx == REC_SYS_TX_COMMIT) {
        q = queue_get(s, v->topic, v->topic_len, v->queue_id);
        if (q == NULL)
            return -ENOMEM;
        if (!only_rebuild || q->rebuild) {
            rc = queue_open_cq(s, q, err, sizeof(err));
            if (rc != 0)
                return rc;
            rc = cq_put(queue_cq(q), v->queue_off, phys, v->total, tags_code(s, v));
            if (rc != 0)
                return rc;
        }
    }
    if (only_rebuild)
        return 0;
    if (s->ix && tx != REC_SYS_TX_ROLLBACK) {
        const char *uk = NULL, *keys = NULL;
        size_t uklen = 0, keyslen = 0;
        rec_prop_get(v->props, v->props_len, "UNIQ_KEY", &uk, &uklen);
        rec_prop_get(v->props, v->props_len, "KEYS", &keys, &keyslen);
        if (uk || keys) {
            rc = ix_put(s->ix, v->topic, v->topic_len, uk, uklen, keys, keyslen, phys,
                        v->store_ts);
            if (rc != 0)
                return rc;
        }
    }
    atomic_store(&s->ckpt_logics_ts, v->store_ts);
    return 0;
}

/*
 * Dispatches records in [from, to) (record boundaries). Returns the offset
 * reached. With <check> the records are CRC-checked (recovery).
 */
static int
dispatch_range(struct store *s, uint64_t from, uint64_t to, int only_rebuild, uint64_t *reached)
{
    size_t ss = clog_seg_size(s->clog);
    int rc = 0;

    while (from < to) {
        struct segment *seg = clog_seg_at(s->clog, from);
        if (seg == NULL) {
            rc = -EIO;
            break;
        }
        const uint8_t *base = seg_data(seg);
        uint64_t seg_end = seg_base(seg) + ss, lim = to < seg_end ? to : seg_end;
        while (from < lim) {
            struct rec_view v;
            size_t pos = (size_t)(from - seg_base(seg));
            int n = rec_parse(base + pos, (size_t)(lim - from), from, REC_CHECK_NONE, &v, NULL);
            if (n == 0) { /* BLANK: on to the next segment */
                from = seg_end;
                break;
            }
            if (n < 0) {
                /* Cannot happen below `written` unless memory or disk
                 * changed under us; stop rather than skip data. */
                rc = SPK_ECORRUPT;
                break;
            }
            rc = dispatch_record(s, &v, from, only_rebuild);
            if (rc != 0)
                break;
            from += (uint64_t)n;
        }
        if (from == lim && lim == seg_end)
            from = seg_end;
        seg_unref(seg);
        if (rc != 0)
            break;
    }
    *reached = from;
    return rc;
}

/* Reader buffer for recovery: big enough for the largest record. */
static size_t
recovery_chunk(struct store *s)
{
    size_t ss = clog_seg_size(s->clog), want = 16u << 20;
    size_t maxrec = (size_t)s->cfg.maxMessageSize + 65536 + 4096;

    if (want < maxrec)
        want = maxrec;
    return want < ss ? want : ss;
}

/* The same as dispatch_range for recovery, reading with pread (see
 * commitlog.h, clog_reader) instead of through the mapping. */
static int
dispatch_range_read(struct store *s, struct clog_reader *own, uint64_t from, uint64_t to,
                    int only_rebuild, uint64_t *reached)
{
    size_t ss = clog_seg_size(s->clog);
    struct clog_reader *rd = own;
    int rc = own != NULL ? 0 : clog_reader_open(s->clog, recovery_chunk(s), &rd);

    if (rc != 0) {
        *reached = from;
        return rc;
    }
    clog_reader_limit(rd, to);
    while (from < to) {
        const uint8_t *p;
        size_t avail, left = ss - (size_t)(from % ss);
        struct rec_view v;

        rc = clog_reader_at(rd, from, 8, &p, &avail);
        if (rc == 0) {
            uint32_t total = be_get32(p);
            if (total <= left && total > avail)
                rc = clog_reader_at(rd, from, total, &p, &avail);
        }
        if (rc != 0)
            break;
        if ((uint64_t)avail > to - from)
            avail = (size_t)(to - from);
        /* Recovery replays records below the part of the log it validated
         * (to rebuild derived data): those get their CRCs checked here, so
         * that a damaged queue offset or topic never lands in a queue. */
        int n = rec_parse(p, avail, from,
                          from < s->recov_crc_below ? REC_CHECK_CRC : REC_CHECK_NONE, &v, NULL);
        if (n == 0) {
            from += left;
            continue;
        }
        if (n < 0) {
            rc = SPK_ECORRUPT;
            break;
        }
        rc = dispatch_record(s, &v, from, only_rebuild);
        if (rc != 0)
            break;
        from += (uint64_t)n;
    }
    if (from > to)
        from = to;
    if (own == NULL)
        clog_reader_close(rd);
    *reached = from;
    return rc;
}

static void *
dispatch_main(void *arg)
{
    struct store *s = arg;

    while (!atomic_load(&s->stopping)) {
        uint64_t from = atomic_load(&s->dispatched), to, reached;
        to = s->sync_flush ? atomic_load(&s->durable) : clog_written(s->clog);
        if (from >= to) {
            pthread_mutex_lock(&s->wait_lock);
            atomic_store(&s->disp_idle, 1);
            to = s->sync_flush ? atomic_load(&s->durable) : clog_written(s->clog);
            if (from >= to && !atomic_load(&s->stopping)) {
                struct timespec ts;
                deadline_after(&ts, s->sync_flush ? 10 : 1);
                pthread_cond_timedwait(&s->disp_cv, &s->wait_lock, &ts);
            }
            atomic_store(&s->disp_idle, 0);
            pthread_mutex_unlock(&s->wait_lock);
            continue;
        }
        /* With pwrite the mappings are only for readers: reading new records
         * through them would fault every page in one at a time, which costs
         * more than copying them out with pread (see clog_reader). */
        int rc = s->disp_reader != NULL
                     ? dispatch_range_read(s, s->disp_reader, from, to, 0, &reached)
                     : dispatch_range(s, from, to, 0, &reached);
        /* While queues cannot be written, new messages could never become
         * visible: refuse puts until dispatch succeeds again (RocketMQ's
         * WRITE_LOGICS_QUEUE_ERROR). */
        atomic_store(&s->disp_error, rc);
        if (reached > from) {
            atomic_store(&s->dispatched, reached);
            notify(s, STORE_EV_VISIBLE);
        }
        if (rc != 0) {
            /* A queue file could not be created or written (disk full):
             * retry later, the log itself is intact. */
            struct timespec ts;
            pthread_mutex_lock(&s->wait_lock);
            deadline_after(&ts, 100);
            pthread_cond_timedwait(&s->disp_cv, &s->wait_lock, &ts);
            pthread_mutex_unlock(&s->wait_lock);
        }
    }
    return NULL;
}

static void
wake_dispatcher(struct store *s)
{
    if (atomic_load_explicit(&s->disp_idle, memory_order_relaxed)) {
        pthread_mutex_lock(&s->wait_lock);
        pthread_cond_signal(&s->disp_cv);
        pthread_mutex_unlock(&s->wait_lock);
    }
}

/* ---------------------------------------------------------------------- */
/* Flush                                                                  */

/* Moves durable forward to <w> (never back) and wakes whoever waits. */
static void
advance_durable(struct store *s, uint64_t w)
{
    uint64_t cur = atomic_load(&s->durable);

    pthread_mutex_lock(&s->wait_lock);
    while (cur < w && !atomic_compare_exchange_weak(&s->durable, &cur, w))
        ;
    pthread_cond_broadcast(&s->durable_cv);
    if (s->sync_flush)
        pthread_cond_signal(&s->disp_cv);
    pthread_mutex_unlock(&s->wait_lock);
}

/* Writes the CommitLog's staged tail (deferred writes) into the file. */
static int
write_staged(struct store *s)
{
    int rc;

    if (clog_staged(s->clog) == 0)
        return 0;
    pthread_mutex_lock(&s->put_lock);
    rc = clog_write_staged(s->clog);
    pthread_mutex_unlock(&s->put_lock);
    if (rc != 0)
        set_failed(s, rc);
    return rc;
}

/* Flushes [durable, written) and advances durable. Flush thread only. */
static int
flush_to_written(struct store *s)
{
    int64_t ts = atomic_load(&s->last_store_ts); /* before written: see INV-4 */
    uint64_t w, d;
    int rc;

    rc = write_staged(s);
    if (rc != 0)
        return rc;
    w = clog_written(s->clog);
    d = atomic_load(&s->durable);
    if (w <= d)
        return 0;
    rc = clog_sync(s->clog, d, w);
    if (rc != 0) {
        set_failed(s, rc);
        return rc;
    }
    atomic_fetch_add(&s->st_flushes, 1);
    atomic_store(&s->ckpt_phys_ts, ts);
    advance_durable(s, w);
    notify(s, STORE_EV_DURABLE);
    return 0;
}

static void *
flush_main(void *arg)
{
    struct store *s = arg;
    int64_t last_thorough = spk_mono_ms();

    while (!atomic_load(&s->failed)) {
        int stop = atomic_load(&s->stopping);
        if (s->sync_flush) {
            /* Group commit: every put that arrives while a flush runs is
             * covered by the next one. */
            pthread_mutex_lock(&s->wait_lock);
            atomic_store(&s->flusher_idle, 1);
            if (!stop && clog_written(s->clog) <= atomic_load(&s->durable) &&
                clog_staged(s->clog) == 0) {
                struct timespec ts;
                deadline_after(&ts, 10);
                pthread_cond_timedwait(&s->flush_cv, &s->wait_lock, &ts);
            }
            atomic_store(&s->flusher_idle, 0);
            pthread_mutex_unlock(&s->wait_lock);
            flush_to_written(s);
        } else {
            struct timespec ts;
            pthread_mutex_lock(&s->wait_lock);
            if (!stop) {
                deadline_after(&ts, s->cfg.flushIntervalCommitLog);
                pthread_cond_timedwait(&s->flush_cv, &s->wait_lock, &ts);
            }
            pthread_mutex_unlock(&s->wait_lock);
            int64_t now = spk_mono_ms();
            uint64_t w = clog_written(s->clog), d = atomic_load(&s->durable);
            int thorough = now - last_thorough >= s->cfg.flushCommitLogThoroughInterval;
            if (thorough || stop ||
                (w / 4096 - d / 4096) >= (uint64_t)s->cfg.flushCommitLogLeastPages) {
                if (thorough)
                    last_thorough = now;
                flush_to_written(s);
            }
        }
        if (stop)
            break;
    }
    return NULL;
}

static void
wake_flusher(struct store *s)
{
    if (atomic_load_explicit(&s->flusher_idle, memory_order_relaxed)) {
        pthread_mutex_lock(&s->wait_lock);
        pthread_cond_signal(&s->flush_cv);
        pthread_mutex_unlock(&s->wait_lock);
    }
}

int
store_wait_durable(struct store *s, uint64_t end, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    if (!s->sync_flush)
        return atomic_load(&s->failed) ? SPK_ESTORE_FAILED : 0;
    if (atomic_load(&s->durable) >= end)
        return 0;
    wake_flusher(s);
    deadline_after(&ts, timeout_ms);
    pthread_mutex_lock(&s->wait_lock);
    while (atomic_load(&s->durable) < end) {
        if (atomic_load(&s->failed)) {
            rc = SPK_ESTORE_FAILED;
            break;
        }
        if (pthread_cond_timedwait(&s->durable_cv, &s->wait_lock, &ts) == ETIMEDOUT &&
            atomic_load(&s->durable) < end) {
            rc = atomic_load(&s->failed) ? SPK_ESTORE_FAILED : SPK_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&s->wait_lock);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Checkpoint, queue and index flush                                      */

/* The queues' ConsumeQueues, collected under qt_lock so that they can be
 * flushed without holding it (no lock is held across an msync). Queues are
 * never freed while the store runs, so the pointers stay valid. */
static struct cq **
snapshot_cqs(struct store *s, size_t *n)
{
    struct cq **v;
    size_t k = 0;

    pthread_rwlock_rdlock(&s->qt_lock);
    v = malloc((s->nqueues + 1) * sizeof(*v));
    if (v != NULL)
        for (size_t b = 0; b < QT_BUCKETS; b++)
            for (struct queue *q = s->qt[b]; q; q = q->next)
                if (queue_cq(q) != NULL)
                    v[k++] = queue_cq(q);
    pthread_rwlock_unlock(&s->qt_lock);
    *n = k;
    return v;
}

static int checkpoint_locked(struct store *s);

/* Flushes queues and index, then writes the checkpoint with offsets
 * captured before those flushes (INV-4). Any thread; one at a time. */
static int
checkpoint_now(struct store *s)
{
    pthread_mutex_lock(&s->maint_lock);
    int rc = checkpoint_locked(s);
    pthread_mutex_unlock(&s->maint_lock);
    return rc;
}

static int
checkpoint_locked(struct store *s)
{
    uint64_t disp = atomic_load(&s->dispatched);
    uint64_t dur = atomic_load(&s->durable);
    int64_t logics_ts = atomic_load(&s->ckpt_logics_ts);
    struct ckpt c;
    uint64_t ix_end;
    size_t n;
    int rc = 0;
    struct cq **cqs = snapshot_cqs(s, &n);

    if (cqs == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cq_flush(cqs[i]);
    free(cqs);
    if (rc != 0)
        return rc;
    if (s->ix) {
        rc = ix_flush(s->ix, &ix_end);
        if (rc != 0)
            return rc;
    }
    memset(&c, 0, sizeof(c));
    c.phys_ts = atomic_load(&s->ckpt_phys_ts);
    c.logics_ts = logics_ts;
    c.index_ts = logics_ts;
    c.confirm = dur;
    c.ext_valid = 1;
    c.clog_durable = dur;
    c.cq_durable = disp;
    c.index_durable = disp;
    c.crc_prop_from = s->crc_prop_from;
    return ckpt_write(s->ckpt_fd, &c);
}

/* ---------------------------------------------------------------------- */
/* Put                                                                    */

static int
check_msg(struct store *s, const struct rec_msg *m)
{
    if (!topic_valid(m->topic, m->topic_len) || m->queue_id < 0)
        return SPK_EFORMAT;
    if ((m->born_host_len != 4 && m->born_host_len != 16) ||
        (m->store_host_len != 4 && m->store_host_len != 16))
        return SPK_EFORMAT;
    if (m->body_len > (size_t)s->cfg.maxMessageSize)
        return SPK_ETOOBIG;
    if (m->props_len > 0 && m->props == NULL)
        return SPK_EFORMAT;
    if (rec_length(m, s->cfg.enabledAppendPropCRC) == 0)
        return SPK_ETOOBIG;
    return 0;
}

static int
put_state_ok(struct store *s)
{
    if (atomic_load(&s->failed))
        return SPK_ESTORE_FAILED;
    if (atomic_load(&s->disk_full))
        return SPK_EDISKFULL;
    int derr = atomic_load(&s->disp_error);
    if (derr != 0)
        return derr;
    if (atomic_load(&s->stopping))
        return SPK_ESHUTDOWN;
    return 0;
}

static void
after_put(struct store *s, const struct store_put_result *res)
{
    atomic_fetch_add_explicit(&s->st_puts, res->count, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->st_put_bytes, res->bytes, memory_order_relaxed);
    /* Under ASYNC_FLUSH the idle dispatcher polls every millisecond; while
     * readers wait (store_set_eager_dispatch) it is woken instead, which
     * takes that millisecond off their end-to-end latency (`sprocket bench
     * e2e`: p50 ~700 us -> ~130 us) and costs the put path a wakeup only
     * then. */
    if (s->sync_flush)
        wake_flusher(s);
    else if (atomic_load_explicit(&s->eager_dispatch, memory_order_relaxed))
        wake_dispatcher(s);
}

void
store_set_eager_dispatch(struct store *s, int on)
{
    atomic_store_explicit(&s->eager_dispatch, on ? 1 : 0, memory_order_relaxed);
}

int
store_put_batch(struct store *s, const struct rec_msg *msgs, size_t n,
                struct store_put_result *res)
{
    uint32_t crcs_small[64], *crcs = crcs_small;
    size_t total = 0;
    int crc_prop = s->cfg.enabledAppendPropCRC, rc;
    uint64_t phys;
    uint8_t *dst;

    if (n == 0)
        return SPK_EFORMAT;
    if (n > 64 && (crcs = malloc(n * sizeof(*crcs))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rc = check_msg(s, &msgs[i]);
        if (rc == 0 && (msgs[i].topic_len != msgs[0].topic_len ||
                        memcmp(msgs[i].topic, msgs[0].topic, msgs[0].topic_len) != 0 ||
                        msgs[i].queue_id != msgs[0].queue_id))
            rc = SPK_EFORMAT;
        if (rc != 0)
            goto out;
        /* CRCs are computed before taking the lock: they are the costly
         * part of encoding and need nothing the lock protects. */
        crcs[i] = spk_crc32(msgs[i].body, msgs[i].body_len);
        total += rec_length(&msgs[i], crc_prop);
    }
    if (total > (size_t)s->cfg.maxMessageSize + 65536u * n || total > INT32_MAX) {
        rc = SPK_ETOOBIG;
        goto out;
    }
    rc = put_state_ok(s);
    if (rc != 0)
        goto out;

    pthread_mutex_lock(&s->put_lock);
    /* Producers often send runs to one queue: skip the table lookup then. */
    struct queue *q = s->last_q;
    if (q == NULL || q->qid != msgs[0].queue_id || q->topic_len != msgs[0].topic_len ||
        memcmp(q->topic, msgs[0].topic, q->topic_len) != 0)
        q = s->last_q = queue_get(s, msgs[0].topic, msgs[0].topic_len, msgs[0].queue_id);
    if (q == NULL) {
        rc = -ENOMEM;
        goto unlock;
    }
    int tx = msgs[0].sysflag & REC_SYS_TX_MASK;
    int counted = tx == REC_SYS_TX_NOT || tx == REC_SYS_TX_COMMIT;
    uint64_t qoff = counted ? q->next_qoff : 0;
    int64_t ts = spk_wall_ms();
    rc = clog_reserve(s->clog, total, &phys, &dst);
    if (rc != 0)
        goto unlock;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = rec_length(&msgs[i], crc_prop);
        rec_encode_fast(dst + at, len, &msgs[i], crcs[i], counted ? qoff + i : 0, phys + at, ts,
                   crc_prop);
        at += len;
    }
    rc = clog_commit(s->clog, phys, total);
    if (rc != 0) {
        if (rc == -EIO)
            set_failed(s, rc);
        goto unlock;
    }
    if (counted)
        q->next_qoff += n;
    atomic_store(&s->last_store_ts, ts);
    res->phys_off = phys;
    res->end = phys + total;
    res->queue_off = qoff;
    res->count = (uint32_t)n;
    res->bytes = (uint32_t)total;
    res->store_ts = ts;
unlock:
    pthread_mutex_unlock(&s->put_lock);
    if (rc == 0)
        after_put(s, res);
out:
    if (crcs != crcs_small)
        free(crcs);
    return rc;
}

int
store_put(struct store *s, const struct rec_msg *m, struct store_put_result *res)
{
    return store_put_batch(s, m, 1, res);
}

int
store_put_sync(struct store *s, const struct rec_msg *m, struct store_put_result *res)
{
    int rc = store_put(s, m, res);

    if (rc == 0 && s->sync_flush)
        rc = store_wait_durable(s, res->end, s->cfg.syncFlushTimeout);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Allocation and clean-up threads                                        */

static void *
alloc_main(void *arg)
{
    struct store *s = arg;

    while (!atomic_load(&s->stopping)) {
        struct timespec ts;
        int rc = clog_prepare_next(s->clog);
        /* 64 MiB is ~0.1-0.2 s of writing at full speed: enough lead for a
         * thread that wakes every 10 ms. */
        clog_prefault_ahead(s->clog, 64u << 20);
        pthread_mutex_lock(&s->wait_lock);
        /* After a failure (disk full) try again later; the writer creates
         * the segment itself if it needs it first and reports the error. */
        deadline_after(&ts, rc == 0 ? 10 : 1000);
        if (!atomic_load(&s->stopping))
            pthread_cond_timedwait(&s->alloc_cv, &s->wait_lock, &ts);
        pthread_mutex_unlock(&s->wait_lock);
    }
    return NULL;
}

static int
hour_listed(const char *spec, int hour)
{
    const char *p = spec;

    while (p && *p) {
        char *end;
        long h = strtol(p, &end, 10);
        if (end != p && h == hour)
            return 1;
        p = strchr(p, ';');
        if (p)
            p++;
    }
    return 0;
}

static int
disk_used_percent(const char *path)
{
    struct statvfs sv;

    if (statvfs(path, &sv) != 0 || sv.f_blocks == 0)
        return -1;
    return (int)(100.0 * (double)(sv.f_blocks - sv.f_bfree) / (double)sv.f_blocks);
}

struct cleanq_arg {
    uint64_t clog_min;
};

static void
clean_one_queue(struct store *s, struct queue *q, void *arg)
{
    struct cleanq_arg *a = arg;
    struct cq *c = queue_cq(q);
    (void)s;
    if (c)
        cq_delete_below(c, a->clog_min);
}

static int
clean_round(struct store *s, int force)
{
    int used = disk_used_percent(clog_dir(s->clog));
    int clean_now = 0, deleted = 0;
    struct tm tm;
    time_t t = time(NULL);

    localtime_r(&t, &tm);
    if (used > s->cfg.diskSpaceWarningLevelRatio) {
        atomic_store(&s->disk_full, 1);
        clean_now = 1;
    } else {
        atomic_store(&s->disk_full, 0);
        if (used > s->cfg.diskSpaceCleanForciblyRatio)
            clean_now = 1;
    }
    if (!(force || clean_now || used > s->cfg.diskMaxUsedSpaceRatio ||
          hour_listed(s->cfg.deleteWhen, tm.tm_hour)))
        return 0;

    int64_t expire = (int64_t)s->cfg.fileReservedTime * 3600 * 1000;
    for (int i = 0; i < s->cfg.deleteFileBatchMax; i++) {
        size_t ss = clog_seg_size(s->clog);
        uint64_t first = clog_min(s->clog);
        uint64_t safe = atomic_load(&s->dispatched);
        if (atomic_load(&s->durable) < safe)
            safe = atomic_load(&s->durable);
        /* Never delete what is not yet durable and dispatched, and never
         * the last segment (clog_delete_first refuses it). */
        if (clog_nsegs(s->clog) < 2 || first + ss > safe)
            break;
        int64_t mtime = clog_first_mtime_ms(s->clog);
        int expired = mtime >= 0 && spk_wall_ms() >= mtime + expire;
        if (!expired && !(clean_now && s->cfg.cleanFileForciblyEnable))
            break;
        if (clog_delete_first(s->clog) != 0)
            break;
        deleted++;
        atomic_fetch_add(&s->st_segs_deleted, 1);
    }
    if (deleted > 0) {
        struct cleanq_arg a = {clog_min(s->clog)};
        for_each_queue(s, clean_one_queue, &a);
        if (s->ix)
            ix_delete_below(s->ix, a.clog_min);
    }
    return deleted;
}

int
store_clean_now(struct store *s, int force)
{
    pthread_mutex_lock(&s->maint_lock);
    int n = clean_round(s, force);
    pthread_mutex_unlock(&s->maint_lock);
    return n;
}

static void *
clean_main(void *arg)
{
    struct store *s = arg;
    int64_t last_clean = spk_mono_ms();

    while (!atomic_load(&s->stopping)) {
        struct timespec ts;
        pthread_mutex_lock(&s->wait_lock);
        deadline_after(&ts, s->cfg.flushIntervalConsumeQueue);
        if (!atomic_load(&s->stopping))
            pthread_cond_timedwait(&s->clean_cv, &s->wait_lock, &ts);
        pthread_mutex_unlock(&s->wait_lock);
        if (atomic_load(&s->stopping))
            break;
        /* Queue/index flushes are not fatal: they are derived data and
         * recovery rebuilds them from the log; the next round retries. */
        (void)checkpoint_now(s);
        if (spk_mono_ms() - last_clean >= s->cfg.cleanResourceInterval) {
            last_clean = spk_mono_ms();
            pthread_mutex_lock(&s->maint_lock);
            clean_round(s, 0);
            pthread_mutex_unlock(&s->maint_lock);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Recovery                                                               */

struct recov {
    struct store *s;
    struct ckpt ck;
    int have_ckpt;
    uint64_t end;
    int clean_end; /* the log ends exactly where a clean shutdown left it */
    char *err;
    size_t errlen;
    struct store_open_info *info;
};

static void
seg_name_of(struct store *s, uint64_t off, char *buf, size_t len)
{
    size_t ss = clog_seg_size(s->clog);
    snprintf(buf, len, "commitlog/%020" PRIu64, off - off % ss);
}

/* First record's store timestamp of the segment holding <base>, 0 if the
 * segment does not start with a valid record. */
static int64_t
first_record_ts(struct store *s, uint64_t base)
{
    struct segment *seg = clog_seg_at(s->clog, base);
    struct rec_view v;
    int64_t ts = 0;

    if (seg == NULL)
        return 0;
    if (rec_parse(seg_data(seg), seg_size(seg), base, REC_CHECK_CRC, &v, NULL) > 0)
        ts = v.store_ts;
    seg_unref(seg);
    return ts;
}

/* Where the validation scan starts: a record boundary at or below every
 * offset the checkpoint says was fully processed. */
static uint64_t
scan_start(struct recov *r)
{
    struct store *s = r->s;
    uint64_t min = clog_min(s->clog), files_end = clog_end_of_files(s->clog);
    size_t ss = clog_seg_size(s->clog);
    uint64_t from;

    if (r->have_ckpt && r->ck.ext_valid) {
        from = r->ck.clog_durable;
        if (r->ck.cq_durable < from)
            from = r->ck.cq_durable;
        if (r->ck.index_durable < from)
            from = r->ck.index_durable;
        return from < min ? min : from;
    }
    /* No Sprocket checkpoint (a RocketMQ store, or none written yet):
     * RocketMQ's rule, the newest segment whose first record is older than
     * the checkpoint's timestamps minus 3 s (abnormal), or the third-last
     * segment (normal). */
    if (files_end == min)
        return min;
    uint64_t last = files_end - ss;
    if (!r->info->abnormal && r->have_ckpt) {
        uint64_t back = 2 * (uint64_t)ss;
        return last - min >= back ? last - back : min;
    }
    int64_t limit = r->ck.phys_ts < r->ck.logics_ts ? r->ck.phys_ts : r->ck.logics_ts;
    /* The timestamps come from a file: no overflow for hostile values. */
    limit = limit < INT64_MIN + 3000 ? INT64_MIN : limit - 3000;
    for (uint64_t b = last;; b -= ss) {
        int64_t ts = first_record_ts(s, b);
        if (r->have_ckpt && ts != 0 && ts <= limit)
            return b;
        if (b == min)
            break;
    }
    return min;
}

/*
 * 1 if the damaged bytes [from, next) look unwritten rather than altered:
 * some 512-byte sector they cover ends in a run of zeros reaching its end
 * boundary, at least 64 bytes long, or starting at <from> itself (at
 * least 8 bytes: no record header there). Segments are created
 * zero-filled and never recycled, and a disk writes whole sectors, so a
 * write that a power cut lost (a whole page, some sectors of a torn one,
 * or the rest of a page synced while a record was being copied into it)
 * leaves zeros up to a sector boundary. A flipped bit never turns a
 * record's start into zeros; a body with 64 zero bytes ending exactly at
 * a sector boundary, damaged by a flip while above the checkpoint, is the
 * case this rule gets wrong (docs/DURABILITY.md). Read errors count as
 * "not unwritten" (the caller then refuses, the safe side).
 */
static int
looks_unwritten(struct store *s, uint64_t from, uint64_t next)
{
    struct clog_reader *rd;
    uint64_t off = from, ss = clog_seg_size(s->clog);
    int found = 0;

    if (clog_reader_open(s->clog, recovery_chunk(s), &rd) != 0)
        return 0;
    while (off < next && !found) {
        uint64_t end = (off | 511) + 1; /* next sector boundary */
        const uint8_t *p;
        size_t avail, n = (size_t)(end - off), z = 0;

        if (end > next)
            break; /* the sector's end is not in the damaged span */
        if (clog_reader_at(rd, off, n, &p, &avail) != 0 || avail < n)
            break;
        while (z < n && p[n - 1 - z] == 0)
            z++;
        /* Zeros up to a segment's end are its unused space after a BLANK
         * filler, not a lost write. */
        found = (z >= 64 && end % ss != 0) || (off == from && z == n && n >= 8);
        off = end;
    }
    clog_reader_close(rd);
    return found;
}

/*
 * Validation pass (STORE.md 5.6/5.7 and R7): walks records from <from>
 * with CRCs checked and finds the end of the valid log. Refuses damage
 * below the checkpoint's durable offset or followed by a valid record.
 */
static int
find_end(struct recov *r, uint64_t from)
{
    struct store *s = r->s;
    size_t ss = clog_seg_size(s->clog);
    uint64_t files_end = clog_end_of_files(s->clog);
    uint64_t durable = r->have_ckpt && r->ck.ext_valid ? r->ck.clog_durable : 0;
    enum rec_check chk = s->cfg.checkCRCOnRecover ? REC_CHECK_CRC : REC_CHECK_NONE;
    uint64_t crc_from = r->have_ckpt && r->ck.ext_valid ? r->ck.crc_prop_from : CKPT_NO_CRC_PROP;
    const char *why = "no record";
    char name[64];

    if (durable > files_end) {
        seg_name_of(s, files_end, name, sizeof(name));
        snprintf(r->err, r->errlen,
                 "commitlog ends at offset %" PRIu64 " but the checkpoint says %" PRIu64
                 " bytes were durable: segment files are missing after %s; refusing to start",
                 files_end, durable, name);
        return SPK_ECORRUPT;
    }
    struct clog_reader *rd;
    int rc = clog_reader_open(s->clog, recovery_chunk(s), &rd);
    if (rc != 0)
        return rc;
    while (from < files_end) {
        const uint8_t *p;
        size_t avail, left = ss - (size_t)(from % ss);
        struct rec_view v;
        int n;

        rc = clog_reader_at(rd, from, 8, &p, &avail);
        if (rc == 0 && avail >= 8) {
            uint32_t total = be_get32(p);
            if (total <= left && total > avail)
                rc = clog_reader_at(rd, from, total, &p, &avail);
        }
        if (rc != 0) {
            clog_reader_close(rd);
            snprintf(r->err, r->errlen, "cannot read the commitlog at offset %" PRIu64 ": %s",
                     from, spk_strerror(rc));
            return rc;
        }
        n = rec_parse(p, avail, from,
                      chk != REC_CHECK_NONE && from >= crc_from ? REC_CHECK_CRC_PROP : chk, &v,
                      &why);
        if (n == 0) {
            if (v.total != left) {
                why = "BLANK filler length does not reach the segment end";
                n = -1;
            } else {
                from += left;
                continue;
            }
        }
        if (n < 0)
            break;
        from += (uint64_t)n;
    }
    clog_reader_close(rd);
    if (from >= files_end) {
        r->end = from > files_end ? files_end : from;
        return 0;
    }

    /* <from> holds the first invalid bytes. After a clean shutdown that is
     * exactly the checkpointed end, and nothing was written past it: skip
     * the search below, which reads the rest of the segment (start-up in
     * milliseconds, not a scan of up to a GiB of zeros). */
    if (!r->info->abnormal && durable == from && r->ck.ext_valid) {
        r->end = from;
        r->clean_end = 1;
        return 0;
    }
    seg_name_of(s, from, name, sizeof(name));
    if (from < durable) {
        snprintf(r->err, r->errlen,
                 "%s: invalid record at offset %" PRIu64 " (byte %" PRIu64
                 " of the file): %s; it lies below the checkpoint's durable offset %" PRIu64
                 ", so it held acknowledged data. Refusing to start: inspect it with "
                 "`sprocket store check`",
                 name, from, from % ss, why, durable);
        return SPK_ECORRUPT;
    }
    uint64_t next;
    /* Above the checkpoint a power cut leaves lost pages (zeros) between
     * pages that reached the disk: every completed flush covers a prefix
     * of the log, so nothing at or after the first lost byte was ever
     * durable (nor, under SYNC_FLUSH, acknowledged), and the valid
     * records beyond it are debris of a flush that never completed. Only
     * damage that does not look like an unwritten sector means the log
     * itself was altered (R7). */
    if (!s->cfg.recoverCutDamagedTail && clog_find_valid_after(s->clog, from, &next) &&
        !looks_unwritten(s, from, next)) {
        char nname[64];
        seg_name_of(s, next, nname, sizeof(nname));
        snprintf(r->err, r->errlen,
                 "%s: invalid record at offset %" PRIu64 " (byte %" PRIu64
                 " of the file): %s; a valid record follows at offset %" PRIu64
                 " (%s), so this is corruption inside the log, not a torn tail. Refusing to "
                 "start: inspect it with `sprocket store check`; to start anyway, dropping "
                 "everything from this offset on, start once with --recoverCutDamagedTail=true",
                 name, from, from % ss, why, next, nname);
        return SPK_ECORRUPT;
    }
    r->end = from;
    return 0;
}

struct trunc_arg {
    uint64_t end;
    int zero_tail; /* 0 after a clean shutdown: nothing stale lies above */
    int rc;
    unsigned rebuild;
    int all_units; /* verify_queue: check every unit, not just the ends */
};

/* Drops units that point at or beyond the new end of the log and zeroes
 * anything stale above the queue's max (consumequeue.h INV-3). */
static void
truncate_queue(struct store *s, struct queue *q, void *arg)
{
    struct trunc_arg *a = arg;
    struct cq *c = queue_cq(q);
    uint64_t lo, hi;
    struct cq_unit u;
    (void)s;

    if (c == NULL || a->rc != 0)
        return;
    lo = cq_min(c);
    hi = cq_max(c);
    /* phys offsets grow with the queue offset: binary search for the first
     * unit at or beyond the end. */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (cq_get_unit(c, mid, &u) != 0)
            break;
        if (u.size != CQ_BLANK_SIZE && u.phys + u.size > a->end)
            hi = mid;
        else
            lo = mid + 1;
    }
    a->rc = cq_truncate_from(c, lo, a->zero_tail);
}

/* R8: checks the last unit of a queue against the record it points at. */
static int
unit_matches(struct store *s, struct cq *c, uint64_t qidx)
{
    struct cq_unit u;
    struct segment *seg;
    struct rec_view v;
    int ok = 0;

    if (cq_get_unit(c, qidx, &u) != 0)
        return 0;
    if (u.size == CQ_BLANK_SIZE)
        return 1;
    seg = clog_seg_at(s->clog, u.phys);
    if (seg == NULL)
        return u.phys < clog_min(s->clog); /* cleaned up: nothing to compare */
    size_t pos = (size_t)(u.phys - seg_base(seg));
    if (rec_parse(seg_data(seg) + pos, seg_size(seg) - pos, u.phys, REC_CHECK_NONE, &v, NULL) > 0 &&
        v.total == u.size && v.queue_off == qidx && v.queue_id == cq_queue_id(c) &&
        v.topic_len == strlen(cq_topic(c)) && memcmp(v.topic, cq_topic(c), v.topic_len) == 0 &&
        tags_code(s, &v) == u.tags_code)
        ok = 1;
    /* A record of exactly the unit's size at exactly its position that
     * fails its CRC: the damage is in the record, not in the unit. Reads
     * withhold that record; rebuilding the queue from it would trust its
     * damaged queue offset. */
    if (!ok &&
        rec_parse(seg_data(seg) + pos, seg_size(seg) - pos, u.phys, REC_CHECK_NONE, &v, NULL) ==
            (int)u.size &&
        rec_parse(seg_data(seg) + pos, seg_size(seg) - pos, u.phys, REC_CHECK_CRC, &v, NULL) < 0)
        ok = 1;
    seg_unref(seg);
    return ok;
}

/*
 * R8: after a crash every unit is checked against the record it names (a
 * header read per unit, from the mapped log); after a clean stop only the
 * first and the last, so that a clean start stays in milliseconds. A unit
 * that disagrees (a flipped bit in a position, size, or tag hash) would
 * hide its message from every reader, or from every tag filter; the
 * queue is then rebuilt from the log.
 */
static void
verify_queue(struct store *s, struct queue *q, void *arg)
{
    struct trunc_arg *a = arg;
    struct cq *c = queue_cq(q);
    int bad;

    if (c == NULL || cq_max(c) == cq_min(c))
        return;
    bad = !unit_matches(s, c, cq_max(c) - 1) || !unit_matches(s, c, cq_min(c));
    for (uint64_t i = cq_min(c) + 1; !bad && a->all_units && i + 1 < cq_max(c); i++)
        bad = !unit_matches(s, c, i);
    if (bad) {
        q->rebuild = 1;
        a->rebuild++;
    }
}

static void
finish_queue(struct store *s, struct queue *q, void *arg)
{
    struct cq *c = queue_cq(q);
    uint64_t *clog_min_p = arg;
    (void)s;

    if (c == NULL)
        return;
    if (q->rebuild) {
        q->rebuild = 0;
        cq_truncate_from(c, cq_max(c), 1);
    }
    cq_correct_min(c, *clog_min_p);
    q->next_qoff = cq_max(c);
}

static void
rebuild_prepare(struct store *s, struct queue *q, void *arg)
{
    struct cq *c = queue_cq(q);
    (void)s;
    (void)arg;
    if (q->rebuild && c)
        cq_destroy_files(c);
}

/* Opens every consumequeue/<topic>/<qid> directory. */
static int
load_queues(struct store *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->cq_root);
    struct dirent *t;
    int rc = 0;

    if (d == NULL)
        return errno == ENOENT ? 0 : -errno;
    while (rc == 0 && (t = readdir(d)) != NULL) {
        char tdir[PATH_MAX];
        DIR *qd;
        struct dirent *qe;
        size_t tlen = strlen(t->d_name);

        if (!topic_valid(t->d_name, tlen))
            continue;
        snprintf(tdir, sizeof(tdir), "%s/%s", s->cq_root, t->d_name);
        qd = opendir(tdir);
        if (qd == NULL)
            continue;
        while (rc == 0 && (qe = readdir(qd)) != NULL) {
            char *end;
            long qid = strtol(qe->d_name, &end, 10);
            if (end == qe->d_name || *end != '\0' || qid < 0 || qid > INT32_MAX)
                continue; /* RocketMQ skips names that are not ints too */
            struct queue *q = queue_get(s, t->d_name, tlen, (int32_t)qid);
            if (q == NULL) {
                rc = -ENOMEM;
                break;
            }
            rc = queue_open_cq(s, q, err, errlen);
            if (rc == SPK_ECORRUPT || rc == -EINVAL) {
                /* Derived data out of shape: rebuild it from the log. */
                char qdir[PATH_MAX];
                snprintf(qdir, sizeof(qdir), "%s/%s", tdir, qe->d_name);
                DIR *fd = opendir(qdir);
                struct dirent *fe;
                while (fd && (fe = readdir(fd)) != NULL) {
                    char fp[PATH_MAX + 32];
                    if (fe->d_name[0] == '.')
                        continue;
                    snprintf(fp, sizeof(fp), "%s/%s", qdir, fe->d_name);
                    sio_unlink(fp);
                }
                if (fd)
                    closedir(fd);
                q->rebuild = 1;
                rc = queue_open_cq(s, q, err, errlen);
            }
        }
        closedir(qd);
    }
    closedir(d);
    return rc;
}

/* The index's key hash (RocketMQ's indexKeyHashMethod over "topic#key"). */
static int32_t
index_key_hash(const char *topic, size_t tlen, const char *key, size_t klen)
{
    char stackbuf[512], *buf = stackbuf;
    size_t len = tlen + 1 + klen;
    int32_t h;

    if (len > sizeof(stackbuf) && (buf = malloc(len)) == NULL)
        return -1; /* matches no entry: the index is rebuilt, never trusted */
    memcpy(buf, topic, tlen);
    buf[tlen] = '#';
    memcpy(buf + tlen + 1, key, klen);
    h = spk_java_hash(buf, len);
    if (buf != stackbuf)
        free(buf);
    return h == INT32_MIN ? 0 : (h < 0 ? -h : h);
}

/* 1 when <hash> is the index hash of one of the record's keys. */
static int
record_has_key_hash(const struct rec_view *v, int32_t hash)
{
    const char *val;
    size_t len;

    if (rec_prop_get(v->props, v->props_len, "UNIQ_KEY", &val, &len) &&
        index_key_hash(v->topic, v->topic_len, val, len) == hash)
        return 1;
    if (rec_prop_get(v->props, v->props_len, "KEYS", &val, &len)) {
        size_t i = 0;
        while (i < len) {
            const char *sp = memchr(val + i, ' ', len - i);
            size_t kl = sp ? (size_t)(sp - (val + i)) : len - i;
            if (kl > 0 && index_key_hash(v->topic, v->topic_len, val + i, kl) == hash)
                return 1;
            i += kl + 1;
        }
    }
    return 0;
}

struct ix_verify {
    struct store *s;
    uint64_t end;     /* end of the recovered log */
    int64_t begin_ts; /* the current file's beginTimestamp */
    struct ix_header hdr;
    int bad;
};

/* The timeDiff ix_put() stores (indexfile.c time_diff). */
static int32_t
index_time_diff(int64_t begin_ts, int64_t store_ts)
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

static void
ix_verify_file(void *arg, const char *name, const struct ix_header *h)
{
    struct ix_verify *iv = arg;
    (void)name;

    iv->begin_ts = h->begin_ts;
    iv->hdr = *h;
}

/* ix_walk callback (under the index's read lock: reads the log only). */
static void
ix_verify_entry(void *arg, uint32_t n, int32_t key_hash, uint64_t phys, int32_t time_diff,
                int32_t prev)
{
    struct ix_verify *iv = arg;
    struct segment *seg;
    struct rec_view v;
    (void)prev;

    if (iv->bad || phys < clog_min(iv->s->clog))
        return; /* the record was cleaned up: nothing to compare */
    seg = phys < iv->end ? clog_seg_at(iv->s->clog, phys) : NULL;
    if (seg == NULL) {
        iv->bad = 1;
        return;
    }
    size_t pos = (size_t)(phys - seg_base(seg));
    if (rec_parse(seg_data(seg) + pos, seg_size(seg) - pos, phys, REC_CHECK_NONE, &v, NULL) <= 0 ||
        !record_has_key_hash(&v, key_hash))
        iv->bad = 1;
    /* Entry 1 may have been written with the previous file's end time. */
    else if (n >= 2 && time_diff != index_time_diff(iv->begin_ts, v.store_ts))
        iv->bad = 1;
    /* The header's bounds select the files a query or recovery reads. */
    else if (n == 1 && (iv->hdr.begin_phys != phys || iv->hdr.begin_ts != v.store_ts))
        iv->bad = 1;
    else if (n + 1 == (uint32_t)iv->hdr.index_count &&
             (iv->hdr.end_phys != phys || iv->hdr.end_ts != v.store_ts))
        iv->bad = 1;
    seg_unref(seg);
}

/*
 * R8 for the index, after a crash: the files must pass ix_check and every
 * entry must name a record holding a key of its hash. Otherwise the index
 * is dropped and rebuilt from the whole log (*from is moved to its start):
 * a flipped bit there would make a key unfindable or answer with the
 * wrong message.
 */
static int
verify_index(struct store *s, uint64_t end, uint64_t *from, int *rebuilt)
{
    struct ix_verify iv = {.s = s, .end = end};
    char path[PATH_MAX], msg[256];
    unsigned dropped = 0;
    DIR *d;
    struct dirent *e;
    int rc = 0;

    *rebuilt = 0;
    if (ix_check(s->ix, msg, sizeof(msg)) != 0)
        iv.bad = 1;
    else
        ix_walk(s->ix, ix_verify_file, ix_verify_entry, &iv);
    if (!iv.bad)
        return 0;
    ix_close(s->ix);
    s->ix = NULL;
    snprintf(path, sizeof(path), "%s/index", s->root);
    d = opendir(path);
    while (d != NULL && rc == 0 && (e = readdir(d)) != NULL) {
        char fp[PATH_MAX + 300];
        if (e->d_name[0] == '.')
            continue;
        snprintf(fp, sizeof(fp), "%s/%s", path, e->d_name);
        rc = sio_unlink(fp);
    }
    if (d != NULL)
        closedir(d);
    if (rc == 0)
        rc = sio_dirsync(path);
    if (rc == 0)
        rc = ix_open(path, (uint32_t)s->cfg.maxHashSlotNum, (uint32_t)s->cfg.maxIndexNum, &s->ix,
                     &dropped);
    *from = clog_min(s->clog);
    *rebuilt = 1;
    return rc;
}

static int
recover(struct store *s, struct store_open_info *info, char *err, size_t errlen)
{
    struct recov r = {.s = s, .err = err, .errlen = errlen, .info = info};
    char ckpt_path[PATH_MAX];
    uint64_t from, ix_from = UINT64_MAX, reached, zeroed;
    int rc;

    snprintf(ckpt_path, sizeof(ckpt_path), "%s/checkpoint", s->root);
    rc = ckpt_read(ckpt_path, &r.ck);
    r.have_ckpt = rc == 0;
    if (rc != 0 && rc != -ENOENT && rc != SPK_ECORRUPT) {
        snprintf(err, errlen, "%s: %s", ckpt_path, spk_strerror(rc));
        return rc;
    }

    int64_t t0 = spk_mono_ms();
    from = scan_start(&r);
    rc = find_end(&r, from);
    info->scan_ms = spk_mono_ms() - t0;
    if (rc != 0)
        return rc;
    /* find_end validated [from, end) with CRCs; replays below it check them. */
    s->recov_crc_below = s->cfg.checkCRCOnRecover ? from : 0;
    if (r.end < from)
        from = r.end;

    t0 = spk_mono_ms();
    rc = clog_truncate(s->clog, r.end, !r.clean_end, &zeroed);
    info->truncate_ms = spk_mono_ms() - t0;
    t0 = spk_mono_ms();
    if (rc != 0) {
        snprintf(err, errlen, "cannot cut the commitlog at offset %" PRIu64 ": %s", r.end,
                 spk_strerror(rc));
        return rc;
    }
    if (zeroed > 0) {
        info->truncated_from = r.end;
        info->truncated_bytes = zeroed;
    }

    if (s->ix) {
        uint64_t dur = r.have_ckpt && r.ck.ext_valid ? r.ck.index_durable : 0;
        if (dur > r.end)
            dur = r.end;
        rc = ix_recover(s->ix, dur > 0 ? dur - 1 : 0, &ix_from);
        if (rc != 0) {
            snprintf(err, errlen, "index recovery failed: %s", spk_strerror(rc));
            return rc;
        }
        if (ix_from < from)
            from = ix_from < clog_min(s->clog) ? clog_min(s->clog) : ix_from;
        if (dur == 0)
            from = clog_min(s->clog);
        if (info->abnormal) {
            int rebuilt;
            rc = verify_index(s, r.end, &from, &rebuilt);
            if (rc != 0) {
                snprintf(err, errlen, "rebuilding the index failed: %s", spk_strerror(rc));
                return rc;
            }
            info->dropped_index_files += rebuilt ? 1 : 0;
        }
    }

    struct trunc_arg ta = {.end = r.end, .zero_tail = !r.clean_end};
    for_each_queue(s, truncate_queue, &ta);
    if (ta.rc != 0) {
        snprintf(err, errlen, "cannot truncate consume queues: %s", spk_strerror(ta.rc));
        return ta.rc;
    }

    /* Replay: CQ writes land at their exact positions and the index skips
     * what it has, so replaying more than needed is harmless. */
    rc = dispatch_range_read(s, NULL, from, r.end, 0, &reached);
    if (rc == SPK_ECORRUPT) {
        /* Below the validated part of the log (re-dispatch reaches back
         * further when derived data must be rebuilt): damage here held
         * acknowledged data (R7). */
        char name[64];
        seg_name_of(s, reached, name, sizeof(name));
        snprintf(err, errlen,
                 "%s: invalid record at offset %" PRIu64 " (byte %" PRIu64
                 " of the file), met while rebuilding consume queues and index from offset "
                 "%" PRIu64 "; it lies below the checkpoint, so it held acknowledged data. "
                 "Refusing to start: inspect it with `sprocket store check`",
                 name, reached, reached % clog_seg_size(s->clog), from);
        return rc;
    }
    if (rc != 0) {
        snprintf(err, errlen, "re-dispatch from offset %" PRIu64 " failed at %" PRIu64 ": %s",
                 from, reached, spk_strerror(rc));
        return rc;
    }
    info->redispatched = r.end - from;

    /* R8: queues that disagree with the log are rebuilt from all of it. */
    ta.rebuild = 0;
    ta.all_units = info->abnormal;
    for_each_queue(s, verify_queue, &ta);
    unsigned marked = 0;
    pthread_rwlock_rdlock(&s->qt_lock);
    for (size_t b = 0; b < QT_BUCKETS; b++)
        for (struct queue *q = s->qt[b]; q; q = q->next)
            marked += q->rebuild != 0;
    pthread_rwlock_unlock(&s->qt_lock);
    if (marked > 0) {
        for_each_queue(s, rebuild_prepare, NULL);
        rc = dispatch_range_read(s, NULL, clog_min(s->clog), r.end, 1, &reached);
        if (rc != 0) {
            char name[64];
            seg_name_of(s, reached, name, sizeof(name));
            snprintf(err, errlen,
                     "%s: rebuilding consume queues failed at offset %" PRIu64 " (byte %" PRIu64
                     " of the file): %s%s",
                     name, reached, reached % clog_seg_size(s->clog), spk_strerror(rc),
                     rc == SPK_ECORRUPT ? "; an invalid record below the checkpoint held "
                                          "acknowledged data. Refusing to start: inspect it "
                                          "with `sprocket store check`"
                                        : "");
            return rc;
        }
        info->rebuilt_queues = marked;
    }
    uint64_t cmin = clog_min(s->clog);
    for_each_queue(s, finish_queue, &cmin);

    s->recov_crc_below = 0; /* the dispatcher reads only records appended from here on */
    atomic_store(&s->durable, r.end);
    atomic_store(&s->dispatched, r.end);
    clog_set_written(s->clog, r.end);
    if (r.have_ckpt) {
        atomic_store(&s->ckpt_phys_ts, r.ck.phys_ts);
        atomic_store(&s->ckpt_logics_ts, r.ck.logics_ts);
    }
    /* From here on every record carries the CRC property (if configured):
     * keep the earlier promise, or start one at the end of the log. */
    if (!s->cfg.enabledAppendPropCRC)
        s->crc_prop_from = CKPT_NO_CRC_PROP;
    else if (r.have_ckpt && r.ck.ext_valid && r.ck.crc_prop_from <= r.end)
        s->crc_prop_from = r.ck.crc_prop_from;
    else
        s->crc_prop_from = r.end;
    info->clog_min = clog_min(s->clog);
    info->clog_max = r.end;
    /* Make the recovered state the new durable baseline. */
    info->dispatch_ms = spk_mono_ms() - t0;
    rc = checkpoint_now(s);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the checkpoint: %s", spk_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Open and close                                                         */

static int
take_lock(struct store *s, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};

    snprintf(path, sizeof(path), "%s/lock", s->root);
    s->lock_fd = sio_open(path, O_RDWR | O_CREAT, 0644);
    if (s->lock_fd < 0) {
        int rc = s->lock_fd;
        snprintf(err, errlen, "%s: %s", path, spk_strerror(rc));
        return rc;
    }
    /* The same fcntl range lock as RocketMQ's FileChannel.tryLock, so a Java
     * broker and Sprocket exclude each other too. */
    if (fcntl(s->lock_fd, F_SETLK, &fl) == -1) {
        snprintf(err, errlen,
                 "%s is locked by another process (is a broker already running on %s?)", path,
                 s->root);
        return SPK_ELOCKED;
    }
    return 0;
}

static void
free_queues(struct store *s)
{
    for (size_t b = 0; b < QT_BUCKETS; b++) {
        struct queue *q = s->qt[b];
        while (q) {
            struct queue *n = q->next;
            cq_close(queue_cq(q));
            free(q->topic);
            free(q);
            q = n;
        }
        s->qt[b] = NULL;
    }
}

static void
stop_threads(struct store *s)
{
    if (!s->threads_started)
        return;
    clog_stop_prefault(s->clog);
    pthread_mutex_lock(&s->wait_lock);
    atomic_store(&s->stopping, 1);
    pthread_cond_broadcast(&s->flush_cv);
    pthread_cond_broadcast(&s->disp_cv);
    pthread_cond_broadcast(&s->alloc_cv);
    pthread_cond_broadcast(&s->clean_cv);
    pthread_cond_broadcast(&s->durable_cv);
    pthread_mutex_unlock(&s->wait_lock);
    pthread_join(s->clean_thr, NULL);
    pthread_join(s->alloc_thr, NULL);
    pthread_join(s->flush_thr, NULL);
    pthread_join(s->disp_thr, NULL);
    s->threads_started = 0;
}

static void
store_free(struct store *s)
{
    size_t n;
    const struct cfg_def *defs = store_config_table(&n);
    struct cfg_target t = {defs, n, &s->cfg};

    free_queues(s);
    clog_reader_close(s->disp_reader);
    if (s->ix)
        ix_close(s->ix);
    clog_close(s->clog);
    if (s->ckpt_fd >= 0)
        sio_close(s->ckpt_fd);
    if (s->lock_fd >= 0)
        sio_close(s->lock_fd);
    cfg_free(&t);
    pthread_mutex_destroy(&s->put_lock);
    pthread_rwlock_destroy(&s->qt_lock);
    pthread_mutex_destroy(&s->wait_lock);
    pthread_mutex_destroy(&s->maint_lock);
    pthread_cond_destroy(&s->flush_cv);
    pthread_cond_destroy(&s->durable_cv);
    pthread_cond_destroy(&s->disp_cv);
    pthread_cond_destroy(&s->alloc_cv);
    pthread_cond_destroy(&s->clean_cv);
    free(s);
}

static char *
dup_or_null(const char *p)
{
    return p ? strdup(p) : NULL;
}

int
store_open(const struct store_config *cfg, struct store **out, struct store_open_info *info,
           char *err, size_t errlen)
{
    struct store_open_info dummy;
    struct store *s;
    struct timespec t0, t1;
    char path[PATH_MAX];
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (info == NULL)
        info = &dummy;
    memset(info, 0, sizeof(*info));
    err[0] = '\0';
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = *cfg;
    s->cfg.storePathRootDir = dup_or_null(cfg->storePathRootDir);
    s->cfg.deleteWhen = dup_or_null(cfg->deleteWhen ? cfg->deleteWhen : "04");
    s->cfg.messageDelayLevel = dup_or_null(cfg->messageDelayLevel ? cfg->messageDelayLevel : "");
    s->lock_fd = s->ckpt_fd = -1;
    pthread_mutex_init(&s->put_lock, NULL);
    pthread_rwlock_init(&s->qt_lock, NULL);
    pthread_mutex_init(&s->wait_lock, NULL);
    pthread_mutex_init(&s->maint_lock, NULL);
    pthread_cond_init(&s->flush_cv, NULL);
    pthread_cond_init(&s->durable_cv, NULL);
    pthread_cond_init(&s->disp_cv, NULL);
    pthread_cond_init(&s->alloc_cv, NULL);
    pthread_cond_init(&s->clean_cv, NULL);

    if (s->cfg.storePathRootDir == NULL || s->cfg.storePathRootDir[0] == '\0') {
        snprintf(err, errlen, "storePathRootDir is not set");
        rc = SPK_ECONFIG;
        goto fail;
    }
    if (s->cfg.mappedFileSizeCommitLog < 4096 ||
        s->cfg.mappedFileSizeCommitLog < (int64_t)s->cfg.maxMessageSize + 65536 + 8) {
        snprintf(err, errlen,
                 "mappedFileSizeCommitLog %" PRId64 " cannot hold a message of maxMessageSize "
                 "%d (needs at least maxMessageSize + 64 KiB)",
                 s->cfg.mappedFileSizeCommitLog, s->cfg.maxMessageSize);
        rc = SPK_ECONFIG;
        goto fail;
    }
    s->cq_seg_size = (size_t)((s->cfg.mappedFileSizeConsumeQueue + CQ_UNIT_SIZE - 1) /
                              CQ_UNIT_SIZE * CQ_UNIT_SIZE);
    s->sync_flush = s->cfg.flushDiskType == STORE_SYNC_FLUSH;
    rc = parse_delay_levels(s, s->cfg.messageDelayLevel, err, errlen);
    if (rc != 0)
        goto fail;
    /* Every path below is the root plus a short suffix; checking the root
     * once keeps them all from being cut short. */
    if (strlen(s->cfg.storePathRootDir) > PATH_MAX - 512) {
        snprintf(err, errlen, "storePathRootDir is too long (%zu bytes, at most %d)",
                 strlen(s->cfg.storePathRootDir), PATH_MAX - 512);
        rc = SPK_ECONFIG;
        goto fail;
    }
    snprintf(s->root, sizeof(s->root), "%s", s->cfg.storePathRootDir);
    snprintf(s->cq_root, sizeof(s->cq_root), "%s/consumequeue", s->root);
    snprintf(s->abort_path, sizeof(s->abort_path), "%s/abort", s->root);

    rc = sio_mkdirs(s->root);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create %s: %s", s->root, spk_strerror(rc));
        goto fail;
    }
    rc = take_lock(s, err, errlen);
    if (rc != 0)
        goto fail;
    info->abnormal = access(s->abort_path, F_OK) == 0;

    snprintf(path, sizeof(path), "%s/commitlog", s->root);
    int use_pwrite = s->cfg.writeWithoutMmap == STORE_WRITE_PWRITE ||
                     (s->cfg.writeWithoutMmap == STORE_WRITE_AUTO && s->sync_flush);
    rc = clog_open(path, (size_t)s->cfg.mappedFileSizeCommitLog, use_pwrite,
                   s->cfg.warmMapedFileEnable, &s->clog, err, errlen);
    if (rc != 0)
        goto fail;
    rc = load_queues(s, err, errlen);
    if (rc != 0)
        goto fail;
    if (s->cfg.messageIndexEnable) {
        unsigned dropped = 0;
        snprintf(path, sizeof(path), "%s/index", s->root);
        rc = ix_open(path, (uint32_t)s->cfg.maxHashSlotNum, (uint32_t)s->cfg.maxIndexNum, &s->ix,
                     &dropped);
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", path, spk_strerror(rc));
            goto fail;
        }
        info->dropped_index_files = dropped;
    }
    snprintf(path, sizeof(path), "%s/checkpoint", s->root);
    {
        int existed = access(path, F_OK) == 0;
        s->ckpt_fd = sio_open(path, O_RDWR | O_CREAT, 0644);
        rc = s->ckpt_fd < 0 ? s->ckpt_fd : 0;
        if (rc == 0 && !existed)
            rc = sio_dirsync(s->root);
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", path, spk_strerror(rc));
            goto fail;
        }
    }
    rc = recover(s, info, err, errlen);
    if (rc != 0)
        goto fail;

    /* The abort marker says "running": its presence at the next start means
     * this run did not end cleanly. It holds the pid, as RocketMQ 5 does. */
    {
        char pid[32];
        int n = snprintf(pid, sizeof(pid), "%d", (int)getpid());
        int fd = sio_open(s->abort_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) {
            rc = fd;
        } else {
            rc = sio_pwrite(fd, pid, (size_t)n, 0);
            if (rc == 0)
                rc = sio_fsync(fd);
            sio_close(fd);
        }
        if (rc == 0)
            rc = sio_dirsync(s->root);
        if (rc != 0) {
            snprintf(err, errlen, "%s: %s", s->abort_path, spk_strerror(rc));
            goto fail;
        }
    }

    /* clog_set_defer (commitlog.c): staged appends, written out by the
     * flush thread; only under SYNC_FLUSH, where nothing is acknowledged
     * before it is durable. */
    clog_set_defer(s->clog, s->sync_flush && use_pwrite);
    if (use_pwrite) {
        rc = clog_reader_open(s->clog, recovery_chunk(s) < (4u << 20) ? recovery_chunk(s)
                                                                       : (4u << 20),
                              &s->disp_reader);
        if (rc == 0 && recovery_chunk(s) > (4u << 20)) {
            /* a record can be larger than 4 MiB: size for the largest */
            clog_reader_close(s->disp_reader);
            rc = clog_reader_open(s->clog, recovery_chunk(s), &s->disp_reader);
        }
        if (rc != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    s->threads_started = 1;
    pthread_create(&s->flush_thr, NULL, flush_main, s);
    pthread_create(&s->disp_thr, NULL, dispatch_main, s);
    pthread_create(&s->alloc_thr, NULL, alloc_main, s);
    pthread_create(&s->clean_thr, NULL, clean_main, s);
    /* Named so that top -H and perf show who is doing what. */
    pthread_setname_np(s->flush_thr, "spk-flush");
    pthread_setname_np(s->disp_thr, "spk-dispatch");
    pthread_setname_np(s->alloc_thr, "spk-alloc");
    pthread_setname_np(s->clean_thr, "spk-clean");

    pthread_rwlock_rdlock(&s->qt_lock);
    info->queues = s->nqueues;
    pthread_rwlock_unlock(&s->qt_lock);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    info->recovery_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    *out = s;
    return 0;

fail:
    store_free(s);
    return rc;
}

int
store_close(struct store *s)
{
    int rc = 0, failed;

    if (s == NULL)
        return 0;
    stop_threads(s);
    failed = atomic_load(&s->failed);
    if (!failed) {
        /* Everything written becomes durable and dispatched before the
         * abort marker goes (STORE.md 5.2). */
        uint64_t w = clog_written(s->clog), d = atomic_load(&s->durable), reached;
        if (w > d) {
            rc = clog_sync(s->clog, d, w);
            if (rc == 0)
                atomic_store(&s->durable, w);
        }
        uint64_t disp = atomic_load(&s->dispatched);
        if (rc == 0 && disp < w) {
            rc = dispatch_range(s, disp, w, 0, &reached);
            atomic_store(&s->dispatched, reached);
        }
        if (rc == 0)
            rc = checkpoint_now(s);
        if (rc == 0) {
            rc = sio_unlink(s->abort_path);
            if (rc == 0)
                rc = sio_dirsync(s->root);
        }
    } else {
        rc = failed;
    }
    store_free(s);
    return rc;
}

void
store_abandon(struct store *s)
{
    if (s == NULL)
        return;
    stop_threads(s);
    store_free(s);
}

void
store_set_listener(struct store *s, void (*fn)(void *arg, int what), void *arg)
{
    s->listener = fn;
    s->listener_arg = arg;
}

uint64_t
store_written(struct store *s)
{
    return clog_written(s->clog);
}

uint64_t
store_durable(struct store *s)
{
    return atomic_load(&s->durable);
}

uint64_t
store_dispatched(struct store *s)
{
    return atomic_load(&s->dispatched);
}

uint64_t
store_min_offset(struct store *s)
{
    return clog_min(s->clog);
}

int
store_failed(struct store *s)
{
    return atomic_load(&s->failed);
}

int
store_flush_all(struct store *s)
{
    int rc;

    if (atomic_load(&s->failed))
        return SPK_ESTORE_FAILED;
    /* Through the flush thread's path so durable only moves in one place
     * and a failure is sticky either way. */
    rc = write_staged(s);
    if (rc != 0)
        return rc;
    uint64_t w = clog_written(s->clog);
    if (s->sync_flush) {
        rc = store_wait_durable(s, w, s->cfg.syncFlushTimeout);
    } else {
        /* No lock: [d, w) holds complete records, a concurrent flush of an
         * overlapping range is harmless, and advance_durable never moves
         * durable backwards. Holding the writer lock here would stop every
         * put for the length of an msync. */
        uint64_t d = atomic_load(&s->durable);
        rc = w > d ? clog_sync(s->clog, d, w) : 0;
        if (rc != 0)
            set_failed(s, rc);
        else if (w > d)
            advance_durable(s, w);
    }
    if (rc != 0)
        return rc;
    /* Wait for the dispatcher, but not forever: it may be stuck on a
     * queue file it cannot create (disk full). */
    int64_t deadline = spk_mono_ms() + s->cfg.syncFlushTimeout;
    while (atomic_load(&s->dispatched) < w) {
        if (atomic_load(&s->failed))
            return SPK_ESTORE_FAILED;
        int derr = atomic_load(&s->disp_error);
        if (derr != 0)
            return derr;
        if (spk_mono_ms() > deadline)
            return SPK_ETIMEOUT;
        wake_dispatcher(s);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return checkpoint_now(s);
}

/* ---------------------------------------------------------------------- */
/* Read path                                                              */

static const char *const status_names[] = {
    "FOUND",
    "NO_MATCHED_MESSAGE",
    "MESSAGE_WAS_REMOVING",
    "OFFSET_FOUND_NULL",
    "OFFSET_OVERFLOW_BADLY",
    "OFFSET_OVERFLOW_ONE",
    "OFFSET_TOO_SMALL",
    "NO_MATCHED_LOGIC_QUEUE",
    "NO_MESSAGE_IN_QUEUE",
};

const char *
store_get_status_name(enum store_get_status st)
{
    if ((unsigned)st < sizeof(status_names) / sizeof(status_names[0]))
        return status_names[st];
    return "UNKNOWN";
}

static int
filter_code_ok(const struct store_filter *f, int64_t code)
{
    if (f == NULL || f->ncodes == 0)
        return 1;
    for (size_t i = 0; i < f->ncodes; i++)
        if (f->codes[i] == code)
            return 1;
    return 0;
}

static int
filter_tag_ok(const struct store_filter *f, const uint8_t *rec, uint32_t len)
{
    struct rec_view v;
    const char *val;
    size_t vlen;

    if (f == NULL || f->ntags == 0)
        return 1;
    if (rec_parse(rec, len, REC_ANY_POS, REC_CHECK_NONE, &v, NULL) <= 0)
        return 0;
    if (!rec_prop_get(v.props, v.props_len, "TAGS", &val, &vlen))
        return 0;
    for (size_t i = 0; i < f->ntags; i++)
        if (strlen(f->tags[i]) == vlen && memcmp(f->tags[i], val, vlen) == 0)
            return 1;
    return 0;
}

/*
 * Checks a record on the read path: structure, position, CRCs (R6), and
 * that it is the message the queue unit names (R8): its topic, queue id
 * and queue offset. A damaged unit can point at another intact record;
 * handing that out would deliver a message of another queue, or twice.
 */
static int
record_ok(struct store *s, const uint8_t *rec, uint32_t len, uint64_t phys, const char *topic,
          size_t topic_len, int32_t queue_id, uint64_t qoff)
{
    struct rec_view v;

    return rec_parse(rec, len, phys,
                     phys >= s->crc_prop_from ? REC_CHECK_CRC_PROP : REC_CHECK_CRC, &v,
                     NULL) == (int)len &&
           v.queue_id == queue_id && v.queue_off == qoff && v.topic_len == topic_len &&
           memcmp(v.topic, topic, topic_len) == 0;
}

void
store_get_release(struct store_get_result *res)
{
    for (size_t i = 0; i < res->npins; i++)
        seg_unref(res->pins[i]);
    res->npins = 0;
    res->count = 0;
}

int
store_get(struct store *s, const char *topic, int32_t queue_id, uint64_t qoff,
          uint32_t max_count, uint32_t max_bytes, const struct store_filter *filter,
          struct store_get_result *res)
{
    size_t topic_len = strlen(topic);
    struct queue *q = queue_find(s, topic, topic_len, queue_id);
    struct cq *c = q ? queue_cq(q) : NULL;
    uint64_t min, max, idx;
    size_t ss = clog_seg_size(s->clog);
    uint32_t limit_count = (uint32_t)s->cfg.maxTransferCountOnMessageInMemory;
    uint64_t limit_bytes = (uint64_t)s->cfg.maxTransferBytesOnMessageInMemory;
    int removing = 0;

    res->count = res->bytes = res->npins = 0;
    atomic_fetch_add_explicit(&s->st_get_calls, 1, memory_order_relaxed);
    if (max_count > limit_count)
        max_count = limit_count;
    if (max_count > STORE_MAX_BATCH)
        max_count = STORE_MAX_BATCH;
    if (max_count == 0)
        max_count = 1;
    if (max_bytes == 0 || max_bytes > limit_bytes)
        max_bytes = (uint32_t)limit_bytes;
    if (c == NULL) {
        res->status = STORE_NO_MATCHED_LOGIC_QUEUE;
        res->next_begin_offset = 0;
        res->min_offset = res->max_offset = 0;
        return 0;
    }
    min = cq_min(c);
    max = cq_max(c);
    res->min_offset = min;
    res->max_offset = max;
    if (max == 0) {
        res->status = STORE_NO_MESSAGE_IN_QUEUE;
        res->next_begin_offset = 0;
        return 0;
    }
    if (qoff < min) {
        res->status = STORE_OFFSET_TOO_SMALL;
        res->next_begin_offset = min;
        return 0;
    }
    if (qoff == max) {
        res->status = STORE_OFFSET_OVERFLOW_ONE;
        res->next_begin_offset = qoff;
        return 0;
    }
    if (qoff > max) {
        res->status = STORE_OFFSET_OVERFLOW_BADLY;
        res->next_begin_offset = max;
        return 0;
    }

    /* Scan at most this many units looking for matches (STORE.md 3.3). */
    uint64_t scan_limit = 16000 / CQ_UNIT_SIZE;
    if (max_count > scan_limit)
        scan_limit = max_count;
    idx = qoff;
    while (idx < max && res->count < max_count && idx - qoff < scan_limit) {
        struct segment *cpin;
        size_t n;
        const uint8_t *u = cq_units_at(c, idx, &n, &cpin);
        if (u == NULL)
            break;
        size_t k;
        for (k = 0; k < n && res->count < max_count && idx - qoff < scan_limit;
             k++, idx++, u += CQ_UNIT_SIZE) {
            struct cq_unit cu;
            cq_decode_unit(u, &cu);
            if (cu.size == CQ_BLANK_SIZE || cu.size == 0)
                continue;
            if (!filter_code_ok(filter, cu.tags_code))
                continue;
            if (res->count > 0 && res->bytes + cu.size > max_bytes)
                goto done_unpin;
            struct segment *seg = clog_seg_at(s->clog, cu.phys);
            if (seg == NULL) {
                /* The log segment is gone (cleaned): skip to what exists. */
                removing = 1;
                continue;
            }
            size_t pos = (size_t)(cu.phys - seg_base(seg));
            if (pos + cu.size > ss) {
                seg_unref(seg);
                continue;
            }
            const uint8_t *rec = seg_data(seg) + pos;
            if (!record_ok(s, rec, cu.size, cu.phys, topic, topic_len, queue_id, idx)) {
                /* Never hand out a damaged record, or one the unit should
                 * not name; count it and move on so one bad record does
                 * not stop the queue. */
                atomic_fetch_add(&s->st_corrupt_reads, 1);
                seg_unref(seg);
                continue;
            }
            if (!filter_tag_ok(filter, rec, cu.size)) {
                seg_unref(seg);
                continue;
            }
            struct store_msg_view *mv = &res->msgs[res->count++];
            mv->data = rec;
            mv->len = cu.size;
            mv->phys_off = cu.phys;
            mv->queue_off = idx;
            res->pins[res->npins++] = seg;
            res->bytes += cu.size;
        }
        seg_unref(cpin);
        continue;
    done_unpin:
        seg_unref(cpin);
        break;
    }
    res->next_begin_offset = idx;
    if (res->count > 0)
        res->status = STORE_FOUND;
    else
        res->status = removing ? STORE_MESSAGE_WAS_REMOVING : STORE_NO_MATCHED_MESSAGE;
    atomic_fetch_add_explicit(&s->st_get_msgs, res->count, memory_order_relaxed);
    return 0;
}

int
store_queue_bounds(struct store *s, const char *topic, int32_t queue_id, uint64_t *min,
                   uint64_t *max)
{
    struct queue *q = queue_find(s, topic, strlen(topic), queue_id);
    struct cq *c = q ? queue_cq(q) : NULL;

    if (c == NULL)
        return -ENOENT;
    *min = cq_min(c);
    *max = cq_max(c);
    return 0;
}

static int
unit_store_ts(struct store *s, struct cq *c, uint64_t qidx, int64_t *ts)
{
    struct cq_unit u;
    struct segment *seg;
    struct rec_view v;
    int rc = -ENOENT;

    if (cq_get_unit(c, qidx, &u) != 0 || u.size == CQ_BLANK_SIZE)
        return -ENOENT;
    seg = clog_seg_at(s->clog, u.phys);
    if (seg == NULL)
        return -ENOENT;
    size_t pos = (size_t)(u.phys - seg_base(seg));
    if (rec_parse(seg_data(seg) + pos, seg_size(seg) - pos, u.phys, REC_CHECK_NONE, &v, NULL) >
        0) {
        *ts = v.store_ts;
        rc = 0;
    }
    seg_unref(seg);
    return rc;
}

int
store_offset_by_time(struct store *s, const char *topic, int32_t queue_id, int64_t ts_ms,
                     uint64_t *qoff)
{
    struct queue *q = queue_find(s, topic, strlen(topic), queue_id);
    struct cq *c = q ? queue_cq(q) : NULL;
    uint64_t lo, hi;

    if (c == NULL)
        return -ENOENT;
    lo = cq_min(c);
    hi = cq_max(c);
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int64_t t;
        if (unit_store_ts(s, c, mid, &t) != 0) {
            lo = mid + 1; /* unreadable (cleaned): treat as older */
            continue;
        }
        if (t < ts_ms)
            lo = mid + 1;
        else
            hi = mid;
    }
    *qoff = lo;
    return 0;
}

int
store_msg_store_time(struct store *s, const char *topic, int32_t queue_id, uint64_t qoff,
                     int64_t *ts)
{
    struct queue *q = queue_find(s, topic, strlen(topic), queue_id);
    struct cq *c = q ? queue_cq(q) : NULL;

    if (c == NULL)
        return -ENOENT;
    return unit_store_ts(s, c, qoff, ts);
}

int
store_get_by_offset(struct store *s, uint64_t phys, struct store_msg_view *v, void **pin)
{
    struct segment *seg;
    struct rec_view rv;
    uint64_t limit = s->sync_flush ? atomic_load(&s->durable) : clog_written(s->clog);
    int n;

    if (phys >= limit)
        return SPK_ENOTFOUND;
    seg = clog_seg_at(s->clog, phys);
    if (seg == NULL)
        return SPK_ENOTFOUND;
    size_t pos = (size_t)(phys - seg_base(seg));
    size_t avail = seg_size(seg) - pos;
    if (seg_base(seg) + seg_size(seg) > limit)
        avail = (size_t)(limit - phys);
    n = rec_parse(seg_data(seg) + pos, avail, phys,
                  phys >= s->crc_prop_from ? REC_CHECK_CRC_PROP : REC_CHECK_CRC, &rv, NULL);
    if (n <= 0) {
        seg_unref(seg);
        return n == 0 ? SPK_ENOTFOUND : SPK_ECORRUPT;
    }
    v->data = seg_data(seg) + pos;
    v->len = (uint32_t)n;
    v->phys_off = phys;
    v->queue_off = rv.queue_off;
    *pin = seg;
    return 0;
}

void
store_view_release(void *pin)
{
    seg_unref(pin);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int
store_query_key(struct store *s, const char *topic, const char *key, uint32_t max,
                int64_t begin_ms, int64_t end_ms, uint64_t *offs, size_t *n)
{
    size_t got = 0, out = 0;
    uint64_t lo = clog_min(s->clog), hi = atomic_load(&s->dispatched);
    int rc;

    *n = 0;
    if (s->ix == NULL)
        return SPK_ENOTFOUND;
    rc = ix_query(s->ix, topic, strlen(topic), key, strlen(key), max, begin_ms, end_ms, offs,
                  &got);
    if (rc != 0)
        return rc;
    qsort(offs, got, sizeof(*offs), cmp_u64);
    for (size_t i = 0; i < got; i++) {
        if (offs[i] < lo || offs[i] >= hi || (out > 0 && offs[out - 1] == offs[i]))
            continue;
        offs[out++] = offs[i];
    }
    *n = out;
    return 0;
}

void
store_get_stats(struct store *s, struct store_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->puts = atomic_load(&s->st_puts);
    st->put_bytes = atomic_load(&s->st_put_bytes);
    st->flushes = atomic_load(&s->st_flushes);
    st->flush_errors = atomic_load(&s->st_flush_errors);
    st->segments_deleted = atomic_load(&s->st_segs_deleted);
    st->get_calls = atomic_load(&s->st_get_calls);
    st->get_msgs = atomic_load(&s->st_get_msgs);
    st->corrupt_reads = atomic_load(&s->st_corrupt_reads);
    pthread_rwlock_rdlock(&s->qt_lock);
    st->queues = s->nqueues;
    pthread_rwlock_unlock(&s->qt_lock);
    st->disk_full = atomic_load(&s->disk_full);
}

struct each_arg {
    void (*fn)(void *, const char *, int32_t, uint64_t, uint64_t);
    void *arg;
};

static void
each_queue_cb(struct store *s, struct queue *q, void *arg)
{
    struct each_arg *a = arg;
    struct cq *c = queue_cq(q);
    (void)s;
    if (c)
        a->fn(a->arg, q->topic, q->qid, cq_min(c), cq_max(c));
}

int
store_for_each_queue(struct store *s,
                     void (*fn)(void *arg, const char *topic, int32_t qid, uint64_t min,
                                uint64_t max),
                     void *arg)
{
    struct each_arg a = {fn, arg};
    for_each_queue(s, each_queue_cb, &a);
    return 0;
}
