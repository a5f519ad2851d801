/*
 * indexfile.h - the RocketMQ IndexFile service: message lookup by key.
 *
 * One service owns every index file of one store directory (<root>/index).
 * Each file is a fixed-size hash table of "topic#key" -> commit-log offset,
 * named by its creation time (yyyyMMddHHmmssSSS) and byte-compatible with
 * RocketMQ's IndexFile (STORE.md section 4; docs/FORMAT.md). The files are
 * derived data: any of them can be deleted and rebuilt by re-dispatching
 * the commit log from ix_end_phys(), which is how corruption is handled.
 *
 * Threads: ix_put, ix_recover and ix_delete_below are meant for one thread
 * at a time (the dispatcher, the scheduler); ix_query, ix_flush, ix_walk,
 * ix_check and ix_end_phys may run on any thread concurrently with them.
 * Nothing here logs: every function returns 0 or a negative code
 * (-errno or SPK_E* from common/errors.h) and the caller logs.
 */
#ifndef SPK_STORE_INDEXFILE_H
#define SPK_STORE_INDEXFILE_H

#include <stddef.h>
#include <stdint.h>

#define IX_DEFAULT_SLOT_NUM 5000000u   /* RocketMQ maxHashSlotNum */
#define IX_DEFAULT_INDEX_NUM 20000000u /* RocketMQ maxIndexNum */
#define IX_MAX_QUERY 64u               /* RocketMQ maxMsgsNumBatch */

struct ixsvc; /* opaque; the layout lives in indexfile.c */

/* The 40-byte file header, decoded (section 4.1). */
struct ix_header {
    int64_t begin_ts, end_ts;
    uint64_t begin_phys, end_phys;
    int32_t slot_count, index_count;
};

/*
 * Opens <dir>, creating it if needed, and maps every file whose name is 17
 * digits, oldest (smallest name) first. <slot_num> (>= 1) and <index_num>
 * (>= 2) must match the sizes the files were written with: a file must be
 * exactly 40 + 4*slot_num + 20*index_num bytes.
 *
 * A file of another size or with an insane header (indexCount 0 or above
 * index_num, hashSlotCount above slot_num, begin after end when it has more
 * than one entry) is corrupt: it and every newer file are deleted, and
 * *dropped says how many files went. The caller then re-dispatches the
 * commit log from ix_end_phys().
 *
 * Returns 0 with a new service in *out (release it with ix_close), or
 * SPK_ECONFIG for impossible sizes, or -errno. <dir> is borrowed.
 */
int ix_open(const char *dir, uint32_t slot_num, uint32_t index_num, struct ixsvc **out,
            unsigned *dropped);

/*
 * Unmaps every file and frees <ix>. Nothing is synced: call ix_flush first
 * when the data should survive a crash. No other call may be in progress.
 */
void ix_close(struct ixsvc *ix);

/*
 * Indexes one commit-log record (section 4.2): the key topic#uniq_key when
 * <uniq_key> is non-NULL and non-empty, then topic#k for every non-empty
 * piece k of <keys> split on single spaces (<keys> may be NULL). Strings
 * are UTF-8, not NUL-terminated, and borrowed.
 *
 * A record at or below the newest file's endPhyOffset is already indexed
 * and is skipped (returns 0), so re-dispatch is idempotent. When the newest
 * file fills up, a new one is created named by the current local time and
 * seeded with the previous file's endPhyOffset/endTimestamp (the quirk of
 * section 4.3); the keys of one record may span two files, as in RocketMQ.
 *
 * All-or-nothing: the files a record needs are created before any key is
 * written, so a failure (-ENOSPC, -ENOMEM, ...) leaves the index exactly as
 * it was, and the same record can be put again later.
 *
 * Thread: the dispatcher (one writer at a time).
 */
int ix_put(struct ixsvc *ix, const char *topic, size_t topic_len, const char *uniq_key,
           size_t uniq_len, const char *keys, size_t keys_len, uint64_t phys_off, int64_t store_ts);

/*
 * Section 4.4, one pass: stores in offs[0..*n) up to min(max_num, 64)
 * commit-log offsets indexed under topic#key whose time (at the index's
 * one-second resolution) lies in [begin_ms, end_ms], newest files first and
 * newest entries first within a file. <offs> must hold min(max_num, 64)
 * values. Hash collisions are not filtered: the caller checks the keys of
 * the records it reads. Returns 0, or -ENOMEM for a huge key.
 *
 * Thread: any, concurrently with every other call except ix_close.
 */
int ix_query(struct ixsvc *ix, const char *topic, size_t topic_len, const char *key, size_t key_len,
             uint32_t max_num, int64_t begin_ms, int64_t end_ms, uint64_t *offs, size_t *n);

/*
 * Makes every change made before the call durable (msync of each file
 * written since the last flush) and stores in *durable_end the newest
 * file's endPhyOffset as of the call (0 when there is no file): every
 * record below or at it is indexed on disk. The caller records that value
 * (the checkpoint) and hands it to ix_recover after a crash.
 *
 * A failed msync is returned and is sticky: every later ix_flush returns
 * the same error, because after a failed msync the kernel may have marked
 * the lost pages clean, and a retry would claim durability it cannot give.
 * Puts and queries keep working; only a restart clears the error.
 *
 * Thread: any. Puts are not blocked while the msync runs.
 */
int ix_flush(struct ixsvc *ix, uint64_t *durable_end);

/*
 * Recovery after an unclean stop. Deletes, newest first, every file whose
 * header endPhyOffset is above <durable_phys> (it changed after the last
 * successful ix_flush, so its slot chains may be torn) and also a newest
 * file whose slot table shows a torn write (a head at or past indexCount).
 * Stores in *replay_from the newest remaining file's endPhyOffset (0 when
 * none is left): the caller re-dispatches the commit log from there.
 * Returns 0 or -errno.
 *
 * Thread: startup, before the dispatcher runs.
 */
int ix_recover(struct ixsvc *ix, uint64_t durable_phys, uint64_t *replay_from);

/*
 * Section 9.3: deletes files from the oldest while their endPhyOffset is
 * below <clog_min> (the commit log's minimum offset), never the newest.
 * Returns the number of files deleted, or -errno (files deleted before the
 * failure stay deleted).
 *
 * Thread: the clean-up scheduler.
 */
int ix_delete_below(struct ixsvc *ix, uint64_t clog_min);

/* The newest file's endPhyOffset, 0 when there is no file. Thread: any. */
uint64_t ix_end_phys(struct ixsvc *ix);

/*
 * For `sprocket store dump`: calls <file_cb> for every file, oldest first,
 * with its name and header, then <entry_cb> for each used entry n >= 1 of
 * that file (keyHash, phyOffset, timeDiff, prev). Either callback may be
 * NULL. The callbacks run under the service's read lock and must not call
 * back into <ix>: the lock prefers writers, so a nested read lock can
 * deadlock behind a waiting ix_put. Returns 0.
 */
int ix_walk(struct ixsvc *ix,
            void (*file_cb)(void *arg, const char *name, const struct ix_header *h),
            void (*entry_cb)(void *arg, uint32_t n, int32_t key_hash, uint64_t phys,
                             int32_t time_diff, int32_t prev),
            void *arg);

/*
 * Offline check for `sprocket store check`. For every file: the header
 * counts are in range and hashSlotCount equals the number of used slots;
 * every slot head is below indexCount and names an entry of its own
 * bucket; every entry has a non-negative keyHash and timeDiff, a phyOffset
 * within [beginPhyOffset, endPhyOffset] and a prev below its own number in
 * the same bucket. Returns 0, or SPK_ECORRUPT with the first problem in
 * <msg> as "index/<name>: entry N at byte B: <reason>" (or "slot S at
 * byte B", or "header"). <msg> is truncated to <msglen> bytes, NUL
 * included; it may be NULL when <msglen> is 0. Thread: any.
 */
int ix_check(struct ixsvc *ix, char *msg, size_t msglen);

#endif /* SPK_STORE_INDEXFILE_H */
