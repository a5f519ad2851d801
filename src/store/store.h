/*
 * store.h - the message store: CommitLog, ConsumeQueues, IndexFiles, flush,
 * dispatch, recovery and clean-up behind one handle.
 *
 * Directory layout and formats: ../shared/spec/STORE.md sections 1-9 and
 * docs/FORMAT.md. The store never sees a socket and never logs: functions
 * return 0 or a negative errno / SPK_E* code and fill an error text where
 * one helps a person (store_open).
 *
 * Threads (all started by store_open, stopped by store_close):
 *   flush      makes the CommitLog durable (group commit under SYNC_FLUSH;
 *              interval / least pages / thorough interval under ASYNC_FLUSH)
 *   dispatch   builds ConsumeQueue units and index entries from the log
 *   allocate   prepares the next CommitLog segment ahead of need
 *   clean      deletes expired segments (and does the periodic CQ/index
 *              flush and checkpoint)
 *
 * Watermarks (CommitLog byte offsets, all monotonic while running):
 *   written >= durable, written >= dispatched
 *   visible to readers: under SYNC_FLUSH only what is durable has been
 *   dispatched, so a consumer never reads a message a power cut could erase.
 *
 * Thread safety: every function may be called from any thread unless its
 * comment says otherwise.
 */
#ifndef SPK_STORE_STORE_H
#define SPK_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "store/record.h"

struct store;

enum store_flush_type { STORE_ASYNC_FLUSH = 0, STORE_SYNC_FLUSH = 1 };

/* How the CommitLog is written (writeWithoutMmap). */
enum store_write_mode {
    STORE_WRITE_MMAP = 0,   /* memcpy into the mapping, msync */
    STORE_WRITE_PWRITE = 1, /* pwrite, fdatasync; read-only mappings */
    STORE_WRITE_AUTO = 2,   /* pwrite under SYNC_FLUSH, the mapping otherwise */
};

/* Settings, with RocketMQ's names in store_config_table(). */
struct store_config {
    char *storePathRootDir;
    int flushDiskType; /* enum store_flush_type */
    int64_t mappedFileSizeCommitLog;
    int64_t mappedFileSizeConsumeQueue; /* rounded up to a multiple of 20 */
    int flushIntervalCommitLog;
    int flushCommitLogLeastPages;
    int flushCommitLogThoroughInterval;
    int flushIntervalConsumeQueue;
    int syncFlushTimeout;
    int writeWithoutMmap;     /* enum store_write_mode */
    int warmMapedFileEnable;  /* prefault new CommitLog segments */
    int enabledAppendPropCRC; /* whole-record CRC property (default on here) */
    int checkCRCOnRecover;
    int recoverCutDamagedTail; /* cut at damage above the checkpoint even with valid records
                                  behind it (an operator's choice after a refusal) */
    int maxMessageSize;
    int messageIndexEnable;
    int maxHashSlotNum;
    int maxIndexNum;
    int fileReservedTime;      /* hours */
    char *deleteWhen;          /* "04" or "01;04" */
    int diskMaxUsedSpaceRatio; /* percent */
    int diskSpaceCleanForciblyRatio;
    int diskSpaceWarningLevelRatio;
    int cleanFileForciblyEnable;
    int cleanResourceInterval; /* ms */
    int deleteFileBatchMax;
    int maxTransferBytesOnMessageInMemory;
    int maxTransferCountOnMessageInMemory;
    char *messageDelayLevel;
};

/* The table for common/config.h: defaults, parsing, dumping. */
const struct cfg_def *store_config_table(size_t *n);

enum store_recovery { STORE_RECOVERED_NORMAL = 0, STORE_RECOVERED_ABNORMAL = 1 };

/* What store_open found and did; filled on success. */
struct store_open_info {
    int abnormal;               /* the abort file was present */
    uint64_t clog_min, clog_max;
    uint64_t truncated_from;    /* where a torn tail was cut (== clog_max), or 0 */
    uint64_t truncated_bytes;   /* bytes zeroed above it */
    uint64_t redispatched;      /* bytes of log replayed into queues and index */
    unsigned queues;
    unsigned rebuilt_queues;    /* queues that disagreed with the log (R8) */
    unsigned dropped_index_files;
    int64_t recovery_ms;        /* all of store_open */
    int64_t scan_ms;            /* validating the log tail (CRCs) */
    int64_t truncate_ms;        /* cutting and zeroing a torn tail */
    int64_t dispatch_ms;        /* replaying the tail into queues and index */
};

/*
 * Opens (creating if needed) the store under cfg->storePathRootDir, takes
 * the lock file, recovers (normal or abnormal, STORE.md section 5) and
 * starts the threads. <cfg> is copied. On failure returns a negative code
 * and writes a sentence naming the file and offset into err: mid-log
 * corruption (SPK_ECORRUPT), store locked by another process
 * (SPK_ELOCKED), bad sizes, I/O errors.
 */
int store_open(const struct store_config *cfg, struct store **out, struct store_open_info *info,
               char *err, size_t errlen);

/*
 * Stops the threads, flushes everything, writes the checkpoint and removes
 * the abort file (only if the store is not in the failed state), unlocks.
 * Returns the first error met; the handle is freed either way.
 */
int store_close(struct store *s);

/*
 * Simulates a crash for tests: stops the threads without flushing or
 * removing the abort file, then frees the handle.
 */
void store_abandon(struct store *s);

struct store_put_result {
    uint64_t phys_off;   /* first record */
    uint64_t end;        /* end of the last record: wait for durable >= end */
    uint64_t queue_off;  /* first record's queue offset */
    uint32_t count;      /* records appended */
    uint32_t bytes;      /* bytes appended */
    int64_t store_ts;
};

/*
 * Appends one message (STORE.md 6.2) and returns at once, without waiting
 * for a flush. The topic-queue offset is assigned here. PREPARED and
 * ROLLBACK records get queue offset 0 and no ConsumeQueue unit.
 * Errors: SPK_ETOOBIG (body > maxMessageSize, properties > 32767),
 * SPK_EFORMAT (topic empty or > 255 bytes, queue id < 0),
 * SPK_ESTORE_FAILED (sticky flush failure), SPK_EDISKFULL, -ENOSPC and
 * other -errno from segment creation. <m> is borrowed.
 */
int store_put(struct store *s, const struct rec_msg *m, struct store_put_result *res);

/*
 * Appends <n> messages as one batch: same topic and queue, consecutive
 * queue offsets, one store timestamp, never split across segments.
 */
int store_put_batch(struct store *s, const struct rec_msg *msgs, size_t n,
                    struct store_put_result *res);

/*
 * Blocks until durable >= <end> (0), the store fails (SPK_ESTORE_FAILED)
 * or <timeout_ms> passes (SPK_ETIMEOUT: stored, durability unknown,
 * RocketMQ's FLUSH_DISK_TIMEOUT). Under ASYNC_FLUSH it returns 0 at once.
 */
int store_wait_durable(struct store *s, uint64_t end, int timeout_ms);

/* store_put, then under SYNC_FLUSH store_wait_durable(syncFlushTimeout). */
int store_put_sync(struct store *s, const struct rec_msg *m, struct store_put_result *res);

/*
 * Called from the flush thread when durable advances and from the
 * dispatcher when new messages become visible (what = STORE_EV_*). Must
 * not block: the broker writes to an eventfd here. Set before traffic.
 */
#define STORE_EV_DURABLE 1
#define STORE_EV_VISIBLE 2
#define STORE_EV_FAILED 4
void store_set_listener(struct store *s, void (*fn)(void *arg, int what), void *arg);

/*
 * Under ASYNC_FLUSH the dispatcher, when idle, looks for new records
 * every millisecond rather than being woken by each put (a wakeup per put
 * costs a quarter of the broker's throughput on 2 vCPUs). While a reader
 * waits for new messages (a long-polling pull), that millisecond is its
 * latency: with <on> set, puts wake a sleeping dispatcher at once. Any
 * thread.
 */
void store_set_eager_dispatch(struct store *s, int on);

uint64_t store_written(struct store *s);
uint64_t store_durable(struct store *s);
uint64_t store_dispatched(struct store *s);
uint64_t store_min_offset(struct store *s);
int store_failed(struct store *s); /* 0 or the sticky error */

/* Read path ---------------------------------------------------------- */

enum store_get_status {
    STORE_FOUND = 0,
    STORE_NO_MATCHED_MESSAGE,
    STORE_MESSAGE_WAS_REMOVING,
    STORE_OFFSET_FOUND_NULL,
    STORE_OFFSET_OVERFLOW_BADLY,
    STORE_OFFSET_OVERFLOW_ONE,
    STORE_OFFSET_TOO_SMALL,
    STORE_NO_MATCHED_LOGIC_QUEUE,
    STORE_NO_MESSAGE_IN_QUEUE,
};

const char *store_get_status_name(enum store_get_status st);

/* One message handed out by a read: a view into the mapped segment. */
struct store_msg_view {
    const uint8_t *data; /* the whole record, valid until store_release */
    uint32_t len;
    uint64_t phys_off;
    uint64_t queue_off;
};

#define STORE_MAX_BATCH 1024

/*
 * The result of a read. Each view pins its segment (a reference), so
 * clean-up cannot unmap it while the bytes are being sent: call
 * store_get_release() when done. The caller owns the struct (usually on
 * its stack); only the references are released.
 */
struct store_get_result {
    enum store_get_status status;
    uint64_t next_begin_offset;
    uint64_t min_offset;
    uint64_t max_offset;
    size_t count;
    size_t bytes;
    struct store_msg_view msgs[STORE_MAX_BATCH];
    void *pins[STORE_MAX_BATCH]; /* internal: segment references */
    size_t npins;
};

/*
 * Tag filter: <codes> holds the Java hashes of the subscribed tags, <tags>
 * the tags themselves (both NULL/0 for "*"). A unit passes when its
 * tagsCode is in <codes>; then the record's TAGS must equal one of <tags>.
 */
struct store_filter {
    const int64_t *codes;
    size_t ncodes;
    const char *const *tags;
    size_t ntags;
};

/*
 * Reads up to <max_count> messages and about <max_bytes> (the first message
 * is always returned) from topic/queue starting at queue offset <qoff>
 * (STORE.md 3.3 and 8). <filter> may be NULL.
 */
int store_get(struct store *s, const char *topic, int32_t queue_id, uint64_t qoff,
              uint32_t max_count, uint32_t max_bytes, const struct store_filter *filter,
              struct store_get_result *res);
void store_get_release(struct store_get_result *res);

/* Queue bounds: [min, max) of visible queue offsets; -ENOENT if no queue. */
int store_queue_bounds(struct store *s, const char *topic, int32_t queue_id, uint64_t *min,
                       uint64_t *max);

/*
 * Queue offset of the first message stored at or after <ts_ms> (the max
 * offset when none is).
 */
int store_offset_by_time(struct store *s, const char *topic, int32_t queue_id, int64_t ts_ms,
                         uint64_t *qoff);

/* Store timestamp of the message at queue offset <qoff>. */
int store_msg_store_time(struct store *s, const char *topic, int32_t queue_id, uint64_t qoff,
                         int64_t *ts);

/*
 * The record at CommitLog offset <phys>, validated (CRC checked). One view,
 * pinned until store_view_release().
 */
int store_get_by_offset(struct store *s, uint64_t phys, struct store_msg_view *v, void **pin);
void store_view_release(void *pin);

/*
 * Physical offsets of messages with key <key> (UNIQ_KEY or one of KEYS) in
 * <topic>, stored within [begin_ms, end_ms]; at most <max> (<= 64).
 */
int store_query_key(struct store *s, const char *topic, const char *key, uint32_t max,
                    int64_t begin_ms, int64_t end_ms, uint64_t *offs, size_t *n);

/* Maintenance --------------------------------------------------------- */

/* Makes everything written durable now (CommitLog, queues, index, checkpoint). */
int store_flush_all(struct store *s);

/*
 * One clean-up round now (STORE.md 9), as the clean thread does when it is
 * time; <force> deletes expired files whatever the hour. Returns the number
 * of CommitLog segments deleted.
 */
int store_clean_now(struct store *s, int force);

/* Counters for runtime info and tests. */
struct store_stats {
    uint64_t puts, put_bytes, flushes, flush_errors;
    uint64_t segments_created, segments_deleted;
    uint64_t get_calls, get_msgs;
    uint64_t corrupt_reads; /* damaged records found (and withheld) by reads */
    unsigned queues;
    int disk_full;
};
void store_get_stats(struct store *s, struct store_stats *st);

/* Calls <fn> for every queue (topic, queue id, min, max). */
int store_for_each_queue(struct store *s,
                         void (*fn)(void *arg, const char *topic, int32_t qid, uint64_t min,
                                    uint64_t max),
                         void *arg);

#endif /* SPK_STORE_STORE_H */
