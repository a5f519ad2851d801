/*
 * inspect.h - offline, read-only inspection of a store directory.
 *
 * `sprocket store dump` and `sprocket store check` read a store that is
 * stopped, or a copy of one, without opening it: nothing is locked,
 * recovered, truncated or rewritten, so what they report is exactly what
 * is on disk, including what recovery would throw away. The formats are
 * those of ../shared/spec/STORE.md sections 1-5 (docs/FORMAT.md).
 *
 * What is checked, and where a finding is reported:
 *   CommitLog  every record of every segment parses with its CRCs and its
 *              PHYSICALOFFSET equals its position (record.h INV-1..3); a
 *              BLANK filler ends a segment and claims exactly the rest of
 *              it; segments are equal-sized and contiguous. The data ends
 *              at the first invalid record of the LAST segment when every
 *              byte from there to the segment end is zero (a preallocated,
 *              unwritten tail). An invalid record anywhere else is a
 *              problem; the walk resumes at the next valid record, so one
 *              damaged record does not hide the rest.
 *   queues     every ConsumeQueue unit names a valid record inside the log
 *              whose size, queue id, topic, queue offset (== unit index)
 *              and tag hash match; units of one queue rise in the log; the
 *              queue's data ends at its first all-zero unit. With the
 *              records walked first, each queue's units must reach the last
 *              queue offset the log holds for it (everything dispatched).
 *   index      the headers are sane, then ix_check() on every file, then
 *              every entry names a valid record one of whose keys
 *              (topic#UNIQ_KEY, topic#KEYS piece) has the entry's hash.
 *   checkpoint the Sprocket extension's durable offsets do not lie beyond
 *              the end of the log data, and clog_durable is a record
 *              boundary (checkpoint.h INV-1, INV-3).
 *
 * Invariants:
 *   INV-1  Nothing here writes to the store directory, with one exception
 *          the caller opts into: insp_walk_index() goes through ix_open(),
 *          which deletes index files it finds corrupt. It is only called
 *          after every index header has passed the same sanity test
 *          ix_open() applies, so in practice it deletes nothing; a file
 *          that fails the test is reported and the index is not opened.
 *   INV-2  Reads never leave the mapped files: every length on disk is
 *          bounded by what is mapped before it is followed.
 *   INV-3  A finding names the file (a path under the root), the byte
 *          offset inside that file, and a reason a person can act on.
 *
 * Not thread-safe: one thread uses a handle at a time.
 */
#ifndef SPK_STORE_INSPECT_H
#define SPK_STORE_INSPECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/checkpoint.h"
#include "store/indexfile.h"
#include "store/record.h"

struct insp; /* opaque; the layout lives in inspect.c */

enum insp_severity {
    INSP_PROBLEM, /* an inconsistency: `store check` fails */
    INSP_NOTE     /* worth saying, but expected (e.g. an undispatched tail after a crash) */
};

/* One finding (INV-3). Every pointer is valid during the callback only. */
struct insp_finding {
    enum insp_severity severity;
    const char *file; /* full path: <root>/commitlog/00000000000000000000 */
    uint64_t pos;     /* byte offset inside <file> */
    const char *what; /* the reason, one sentence without a trailing period */
};

typedef void (*insp_report_fn)(void *arg, const struct insp_finding *f);

/*
 * Lists and maps (read-only) every CommitLog segment under <root>/commitlog
 * and reads <root>/checkpoint if there is one. Findings about the segment
 * files themselves (stray names, unequal sizes, gaps) go to <report> with
 * <arg> (both borrowed for the handle's lifetime; <report> may be NULL).
 *
 * Returns 0 with a new handle in *out (free it with insp_close), or a
 * negative code with a sentence in <err>: -ENOENT/-ENOTDIR when <root> or
 * <root>/commitlog is missing, -errno for I/O errors.
 */
int insp_open(const char *root, insp_report_fn report, void *arg, struct insp **out, char *err,
              size_t errlen);
void insp_close(struct insp *in);

/* Facts gathered by insp_open. */
struct insp_info {
    size_t segments;    /* CommitLog segment files mapped */
    uint64_t seg_size;  /* their size, taken from the files */
    uint64_t clog_min;  /* base offset of the first segment (0 when none) */
    uint64_t files_end; /* end of the last segment */
    int abort_present;  /* <root>/abort exists: the last stop was not clean */
    pid_t lock_holder;  /* a process holding <root>/lock, or 0 */
    int has_checkpoint; /* the checkpoint file was read */
};
void insp_get_info(const struct insp *in, struct insp_info *info);

/* The checkpoint read by insp_open; -ENOENT when there was none. */
int insp_checkpoint(const struct insp *in, struct ckpt *c);

/* One record met by insp_walk_records; valid during the callback only. */
struct insp_record {
    uint64_t phys;            /* position in the log */
    const char *file;         /* the segment holding it */
    uint64_t seg_pos;         /* position inside that file */
    const struct rec_view *v; /* parsed, CRCs checked */
};

/* Returns 0 to go on; any other value stops the walk and is returned. */
typedef int (*insp_record_fn)(void *arg, const struct insp_record *r);

/*
 * Walks every record of every segment in log order, calling <fn> (may be
 * NULL) for each valid one and reporting every inconsistency (see the
 * file comment). Afterwards insp_log_end() is the end of the valid data
 * and the unit and checkpoint checks can compare against it. Returns 0,
 * <fn>'s non-zero value, or -ENOMEM.
 */
int insp_walk_records(struct insp *in, insp_record_fn fn, void *arg);

/* Totals of the last insp_walk_records. */
struct insp_log_stats {
    uint64_t records;     /* valid records */
    uint64_t blanks;      /* BLANK fillers */
    uint64_t bad_regions; /* stretches of invalid bytes skipped */
    uint64_t bad_bytes;   /* their total length */
    uint64_t log_end;     /* end of the valid data */
};
void insp_log_stats(const struct insp *in, struct insp_log_stats *st);

/* One ConsumeQueue unit; valid during the callback only. */
struct insp_unit {
    const char *topic; /* the directory name */
    int32_t queue_id;
    const char *file;   /* the queue segment holding it */
    uint64_t file_pos;  /* byte position inside that file */
    uint64_t queue_idx; /* unit index in the queue (stream byte position / 20) */
    uint64_t phys_off;
    uint32_t size;
    int64_t tags_code;
    int blank;                /* the filler (0, 0x7FFFFFFF, 0) */
    int expired;              /* names a record below the log's first segment */
    const struct rec_view *v; /* the record it names when valid, else NULL */
};

typedef int (*insp_unit_fn)(void *arg, const struct insp_unit *u);

/*
 * Walks <root>/consumequeue/<topic>/<queueId>/ in name order and every unit
 * of every queue up to its end of data, checking each unit against the
 * log (see the file comment) and calling <fn> (may be NULL). Run
 * insp_walk_records first to also compare every queue against the records
 * the log holds for it. A missing consumequeue directory is an empty set
 * of queues. Returns 0, <fn>'s non-zero value, or -ENOMEM.
 */
int insp_walk_units(struct insp *in, insp_unit_fn fn, void *arg);

/* Totals of the last insp_walk_units. */
struct insp_queue_stats {
    uint64_t queues;
    uint64_t units; /* units walked, blanks and expired ones included */
    uint64_t blanks;
    uint64_t expired;
};
void insp_queue_stats(const struct insp *in, struct insp_queue_stats *st);

/* Callbacks of insp_walk_index, as ix_walk() makes them. */
struct insp_index_ops {
    void (*file)(void *arg, const char *name, const struct ix_header *h);
    void (*entry)(void *arg, uint32_t n, int32_t key_hash, uint64_t phys, int32_t time_diff,
                  int32_t prev);
};

/*
 * Walks <root>/index: checks each file's size and header, then (only when
 * all pass, INV-1) opens the index, runs ix_check(), and walks every entry,
 * checking it against the log and calling <ops> (may be NULL).
 * <slot_num>/<index_num> are maxHashSlotNum/maxIndexNum; 0 means: take
 * RocketMQ's defaults when the file sizes match them, else assume the
 * default 1:4 ratio and derive both from the size. A missing index
 * directory is an empty index. Returns 0 or -ENOMEM/-errno.
 */
int insp_walk_index(struct insp *in, uint32_t slot_num, uint32_t index_num,
                    const struct insp_index_ops *ops, void *arg);

/* Totals of the last insp_walk_index. */
struct insp_index_stats {
    uint64_t files;
    uint64_t entries; /* entries walked */
    uint64_t expired; /* entries naming a record below the log's first segment */
};
void insp_index_stats(const struct insp *in, struct insp_index_stats *st);

/*
 * Compares the checkpoint with the log walked by insp_walk_records and
 * reports what disagrees. Does nothing when there is no checkpoint or no
 * walk has been made.
 */
void insp_check_checkpoint(struct insp *in);

/* Number of INSP_PROBLEM findings reported so far. */
uint64_t insp_problems(const struct insp *in);

#endif /* SPK_STORE_INSPECT_H */
