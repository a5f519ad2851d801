/*
 * consumequeue.h - one ConsumeQueue: the index of one topic queue into the
 * CommitLog, 20-byte units in <root>/consumequeue/<topic>/<queueId>/
 * (STORE.md 3).
 *
 *   unit: phys offset 8 | record size 4 | tagsCode 8      (big-endian)
 *
 * Invariants:
 *   INV-1  Unit n lives at byte n*20 of the queue stream (file
 *          floor(n*20/seg_size), position (n*20) % seg_size): units are
 *          written in place, never appended, so re-dispatch is idempotent
 *          and a lost unit cannot shift the ones after it.
 *   INV-2  Units [min, max) are published: max moves only after the unit
 *          below it is written (release), readers load it (acquire).
 *   INV-3  Nothing non-zero lies at or above max in the last segment after
 *          recovery (cq_truncate_from zeroes it), so a later scan cannot
 *          pick up stale units.
 * Only the dispatcher (or recovery) writes; readers may run concurrently.
 */
#ifndef SPK_STORE_CONSUMEQUEUE_H
#define SPK_STORE_CONSUMEQUEUE_H

#include <stddef.h>
#include <stdint.h>

#define CQ_UNIT_SIZE 20
#define CQ_BLANK_SIZE 0x7FFFFFFFu

struct cq;
struct segment;

struct cq_unit {
    uint64_t phys;
    uint32_t size;
    int64_t tags_code;
};

/* Opens the queue directory <dir> (created on the first put), loading any
 * segment files and scanning for the end of the units (STORE.md 5.4). */
int cq_open(const char *dir, const char *topic, int32_t queue_id, size_t seg_size,
            struct cq **out, char *err, size_t errlen);
void cq_close(struct cq *q);

const char *cq_topic(const struct cq *q);
int32_t cq_queue_id(const struct cq *q);

/* Writes unit <qidx> in place (INV-1): writing it again is harmless. */
int cq_put(struct cq *q, uint64_t qidx, uint64_t phys, uint32_t size, int64_t tags_code);

uint64_t cq_min(struct cq *q);
uint64_t cq_max(struct cq *q);
/* End (phys + size) of the last unit, 0 if none. */
uint64_t cq_max_phys_end(struct cq *q);

/* Reads unit <qidx> in [min, max); -ENOENT outside. */
int cq_get_unit(struct cq *q, uint64_t qidx, struct cq_unit *u);

/*
 * Points at the units from <qidx> to the end of its segment or max,
 * whichever is first: *n units at the returned pointer, valid while *pin
 * is held (seg_unref). NULL when qidx is outside [min, max).
 */
const uint8_t *cq_units_at(struct cq *q, uint64_t qidx, size_t *n, struct segment **pin);

void cq_decode_unit(const uint8_t *p, struct cq_unit *u);

/* msyncs the units written since the last flush. */
int cq_flush(struct cq *q);

/* Recovery: deletes segments above unit <qidx>, sets max = qidx and, with
 * <zero_tail>, zeroes every unit from qidx on (INV-3). Without it (after a
 * clean shutdown nothing lies above max) the files are not read at all. */
int cq_truncate_from(struct cq *q, uint64_t qidx, int zero_tail);

/* Sets min to the first unit whose record is at or above <clog_min>. */
void cq_correct_min(struct cq *q, uint64_t clog_min);

/* Deletes segments (never the last) whose last unit points below
 * <clog_min>; returns the number deleted. */
int cq_delete_below(struct cq *q, uint64_t clog_min);

/* Removes every file of the queue (rebuild after disagreement, R8). */
int cq_destroy_files(struct cq *q);

#endif /* SPK_STORE_CONSUMEQUEUE_H */
