/*
 * segment.h - one preallocated, memory-mapped file of a log (CommitLog or
 * ConsumeQueue).
 *
 * A segment is named after the byte offset of its first byte in its log
 * (20 zero-padded digits), so the directory listing is the segment index.
 *
 * Invariants:
 *   INV-1  A segment's blocks are reserved on disk (posix_fallocate) before
 *          anything is stored into them through the mapping: running out of
 *          space is -ENOSPC from seg_create or seg_reserve, never SIGBUS on a
 *          store into an unbacked page.
 *   INV-2  The creating directory entry is fsynced before the segment is
 *          handed out.
 *   INV-3  The mapping lives as long as a reference does: seg_destroy()
 *          unlinks the file at once but the munmap waits for the last
 *          seg_unref(), so a reader's view is never pulled from under it.
 *
 * Lifecycle:
 *
 *     seg_create / seg_open --> LIVE --seg_destroy--> UNLINKED --last unref--> freed
 *                                 \----------------last unref (close)--------> freed
 */
#ifndef SPK_STORE_SEGMENT_H
#define SPK_STORE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

struct segment;

#define SEG_PREFAULT 1 /* populate the page tables now (PERF.md 5.1) */
#define SEG_READONLY 2 /* map read-only: the data is written with pwrite */
#define SEG_RESERVE_LATER 4 /* the file gets its size but no blocks yet: the
                             * owner reserves each range with seg_reserve()
                             * before storing into it (INV-1 still holds) */

/* Creates <dir>/<base> of <size> bytes, reserved and mapped (<flags>: SEG_*).
 * The caller owns the one reference returned. */
int seg_create(const char *dir, uint64_t base, size_t size, int flags, struct segment **out);

/* Populates the page tables of [from, to) for writing (MADV_POPULATE_WRITE),
 * so that stores into it do not fault one page at a time. Best effort. */
void seg_prefault(struct segment *seg, size_t from, size_t to);

/* Populates [from, to) for reading (recovery scans). Best effort. */
void seg_prefault_read(struct segment *seg, size_t from, size_t to);
/* Brings [from, to) into the page cache without mapping it (pwrite writers). */
void seg_prefault_cache(struct segment *seg, size_t from, size_t to);

/* Opens an existing <path> whose size must be exactly <size>. */
int seg_open(const char *path, uint64_t base, size_t size, int flags, struct segment **out);

void seg_ref(struct segment *seg);
void seg_unref(struct segment *seg);

/* Reserves blocks for [from, to) of a SEG_RESERVE_LATER segment (INV-1);
 * -ENOSPC when the disk is full. Ranges already reserved cost nothing. */
int seg_reserve(struct segment *seg, size_t from, size_t to);

/* Unlinks the file and fsyncs its directory; the mapping stays until the
 * last reference goes. Drops the caller's reference. */
int seg_destroy(struct segment *seg);

/* The first half of seg_destroy: unlinks the file (then syncs the
 * directory), keeping the caller's reference. A caller that must not
 * forget a segment whose file is still there calls this first. */
int seg_unlink(struct segment *seg);

uint64_t seg_base(const struct segment *seg);
size_t seg_size(const struct segment *seg);
uint8_t *seg_data(const struct segment *seg);
int seg_fd(const struct segment *seg);
const char *seg_path(const struct segment *seg);

/* Makes bytes [from, to) (segment positions) durable: msync of the range,
 * or fdatasync when <use_fdatasync> (data written with pwrite). */
int seg_sync(struct segment *seg, size_t from, size_t to, int use_fdatasync);

/* Writes <len> bytes at segment position <pos> with pwrite. */
int seg_pwrite(struct segment *seg, const void *buf, size_t len, size_t pos);

/*
 * Next region of <seg> at or after <pos> that may hold bytes, as [*a, *b)
 * (SEEK_DATA/SEEK_HOLE): never-written extents of a reserved file that are
 * not in the page cache read as zeros without being stored anywhere, and
 * are skipped. Falls back to the whole rest when the filesystem cannot
 * say. Returns 0 when nothing is left.
 */
int seg_next_data(struct segment *seg, size_t pos, size_t *a, size_t *b);

/*
 * Recovery: zeroes [pos, last non-zero byte] with pwrite and fdatasyncs it,
 * so stale bytes beyond a cut can never be read again. *zeroed gets the
 * length zeroed.
 */
int seg_zero_tail(struct segment *seg, size_t pos, uint64_t *zeroed);

/* Parses a 20-digit segment name; returns 0 and the offset. */
int seg_parse_name(const char *name, uint64_t *base);

#endif /* SPK_STORE_SEGMENT_H */
