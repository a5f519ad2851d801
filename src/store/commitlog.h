/*
 * commitlog.h - the CommitLog: an ordered list of equal-sized segments in
 * <root>/commitlog holding every record of every topic (STORE.md 1, 2, 7).
 *
 * Invariants:
 *   INV-1  Segment i starts at base(0) + i * seg_size: the list has no gaps.
 *   INV-2  `written` moves only forward while running, and only after the
 *          bytes below it are complete records (release store), so a reader
 *          that loads it (acquire) sees whole records.
 *   INV-3  A record never ends within 8 bytes of a segment end; the rest of
 *          a segment that cannot hold the next record starts with a BLANK
 *          filler.
 *   INV-4  Appends are serialised by the caller (the store's writer lock);
 *          lookups may run from any thread.
 */
#ifndef SPK_STORE_COMMITLOG_H
#define SPK_STORE_COMMITLOG_H

#include <stddef.h>
#include <stdint.h>

struct clog;
struct segment;

/*
 * Loads <dir> (creating it): every 20-digit file must be exactly <seg_size>
 * bytes and the names contiguous; a zero-length last file is deleted (a
 * crash during creation), and a shorter last file is extended with zeros
 * (a torn tail: recovery then cuts it, or refuses when the checkpoint says
 * the missing bytes were durable). On error returns a code and a sentence in err.
 * <use_pwrite> selects pwrite + fdatasync instead of memcpy + msync.
 */
int clog_open(const char *dir, size_t seg_size, int use_pwrite, int prefault, struct clog **out,
              char *err, size_t errlen);
void clog_close(struct clog *c);

size_t clog_seg_size(const struct clog *c);
const char *clog_dir(const struct clog *c);

/* Offsets: [min, written). min is the base of the first segment. */
uint64_t clog_min(struct clog *c);
uint64_t clog_written(const struct clog *c);
/* End of the last segment on disk (0 when there is none). */
uint64_t clog_end_of_files(struct clog *c);
size_t clog_nsegs(struct clog *c);

/* Sets written (recovery only, before any append). */
void clog_set_written(struct clog *c, uint64_t off);

/* The segment containing <phys>, referenced (seg_unref when done), or NULL. */
struct segment *clog_seg_at(struct clog *c, uint64_t phys);

/*
 * Reserves <len> bytes for one record or batch at the write position,
 * rolling to the next segment first (BLANK filler) when it does not fit.
 * Returns the destination to encode into (the mapping, or a staging
 * buffer in pwrite mode) and the record's physical offset. Writer lock held.
 */
int clog_reserve(struct clog *c, size_t len, uint64_t *phys, uint8_t **dst);

/* Publishes the reserved bytes: pwrites them in pwrite mode, then advances
 * written to phys + len (INV-2). Writer lock held. With deferred writes
 * the bytes stay staged instead (written does not move) until
 * clog_write_staged(). */
int clog_commit(struct clog *c, uint64_t phys, size_t len);

/* Largest staged tail under deferred writes. */
#define CLOG_STAGE_MAX (1u << 20)

/* Deferred writes on or off (pwrite mode only; before any append). */
void clog_set_defer(struct clog *c, int on);
/* Writes the staged tail and advances written. Writer lock held. */
int clog_write_staged(struct clog *c);
/* Bytes staged and not yet written (any thread). */
size_t clog_staged(const struct clog *c);

/* Creates the segment after the last one if it does not exist yet (the
 * allocation thread calls this ahead of need). */
int clog_prepare_next(struct clog *c);

/*
 * With prefault on, populates the page tables of the <ahead> bytes after the
 * write position (into the prepared segment too), 4 MiB at a time. Only as
 * far ahead as needed: populating costs about as much as the writer's own
 * faults (it is the kernel zeroing new page-cache pages), so populating a
 * whole GiB segment up front only moved that cost into a burst that
 * competed with the writer and the flusher for two cores. Allocation
 * thread only.
 */
void clog_prefault_ahead(struct clog *c, size_t ahead);

/* Tells a running clog_prepare_next to stop prefaulting (shutdown). */
void clog_stop_prefault(struct clog *c);

/* Makes [from, to) durable. */
int clog_sync(struct clog *c, uint64_t from, uint64_t to);

/*
 * Recovery: cuts the log at <end>: deletes every later segment, sets
 * written = end and, with <zero_tail>, zeroes bytes [end, last non-zero
 * byte] of the segment holding <end> and syncs them. Returns the number of
 * bytes zeroed in *zeroed.
 */
int clog_truncate(struct clog *c, uint64_t end, int zero_tail, uint64_t *zeroed);

/*
 * Looks for any valid record (CRC checked, PHYSICALOFFSET matching its
 * position) starting after <from> up to the end of the files. Returns 1
 * and its offset, 0 if none.
 */
int clog_find_valid_after(struct clog *c, uint64_t from, uint64_t *found);

/*
 * Sequential reading with pread into a private buffer, for recovery. On this
 * kind of VM every page-table entry costs several microseconds, so mapping
 * a GiB of log to scan it once costs seconds; copying it out of the page
 * cache costs a tenth of that.
 */
struct clog_reader;

int clog_reader_open(struct clog *c, size_t cap, struct clog_reader **out);

/* Refills stop at log offset <limit> (beyond what was asked for, they never
 * read past it); 0 lifts the limit. */
void clog_reader_limit(struct clog_reader *r, uint64_t limit);
void clog_reader_close(struct clog_reader *r);

/*
 * Points *p at the log bytes from <off>: *avail bytes are valid, at least
 * min(need, bytes left in the segment) of them, never past the segment end.
 * The pointer is valid until the next call.
 */
int clog_reader_at(struct clog_reader *r, uint64_t off, size_t need, const uint8_t **p,
                   size_t *avail);

/* Deletes the first segment (clean-up). Never the last one. */
int clog_delete_first(struct clog *c);

/* mtime of the first segment (for fileReservedTime), -1 if none. */
int64_t clog_first_mtime_ms(struct clog *c);

#endif /* SPK_STORE_COMMITLOG_H */
