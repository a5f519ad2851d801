/*
 * inspect.c - offline reading and checking of a store directory
 * (inspect.h).
 *
 * Everything is mapped read-only (MAP_SHARED, PROT_READ) and nothing is
 * written (inspect.h INV-1). Three walks share what they learn through the
 * handle:
 *
 *   insp_walk_records  -> log_end, record boundaries (for the checkpoint),
 *                         per-queue record tallies (struct qtally)
 *   insp_walk_units    -> compares units with records and with the tallies
 *   insp_walk_index    -> compares entries with records
 *
 * so `store check` runs them in that order; `store dump` may run any one
 * alone, and then checks what it can without the others.
 *
 * Finding the end of the log (STORE.md 5.5): the unwritten tail of the
 * last, preallocated segment reads as zeros, so the first invalid record
 * there is the normal end when every byte after it is zero. Proving that
 * reads the whole tail; SEEK_DATA/SEEK_HOLE skip the parts the file
 * system knows to be unwritten, which for a fresh 1 GiB segment is almost
 * all of it, and which mapped reads would otherwise fault in page by page.
 *
 * Resynchronising after a bad record: record.h INV-3 (PHYSICALOFFSET equals
 * the position) makes a false match of a stale or random byte pattern
 * practically impossible, so scanning forward for the next position where
 * a record with the right magic parses and validates is a safe way to go
 * on reporting after one damaged record.
 *
 * System calls: files are opened, mapped and read through storeio.h like
 * the rest of the store; directory listings and SEEK_DATA/SEEK_HOLE have
 * no wrapper there and are read-only, so they are called directly.
 */
#include "store/inspect.h"

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
#include <unistd.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "common/jhash.h"
#include "store/storeio.h"

#define CQ_UNIT 20
#define CQ_BLANK_SIZE 0x7FFFFFFFu
#define SCHEDULE_TOPIC "SCHEDULE_TOPIC_XXXX"
#define SYS_INNER_BATCH 0x80 /* STORE.md 2.3; record.h has no name for it */
#define IX_HEADER_LEN 40
#define SEG_NAME_LEN 20
#define IX_NAME_LEN 17

/* One mapped file: a CommitLog or ConsumeQueue segment. */
struct mfile {
    char *path;
    uint64_t base; /* offset of its first byte in its stream (from the name) */
    uint64_t size;
    const uint8_t *map; /* NULL when size is 0 */
    int fd;
};

/*
 * What the log holds for one topic-queue, gathered by the records walk:
 * the range of queue offsets, to be compared with the queue's units.
 */
struct qtally {
    struct qtally *next; /* hash chain */
    char *topic;
    size_t topic_len;
    int32_t qid;
    uint64_t records;
    uint64_t first_qoff, next_qoff;
    uint64_t last_phys;
    uint64_t gen;      /* resync generation of the last record seen */
    int inner_batch;   /* offsets advance by INNER_NUM: not compared */
    int has_queue;     /* a queue directory was walked */
    uint64_t unit_end; /* index after its last unit */
};

/* A range [from, to) of log offsets. */
struct span {
    uint64_t from, to;
};

struct insp {
    char in_root[PATH_MAX];
    insp_report_fn in_report;
    void *in_arg;
    uint64_t in_problems;

    struct mfile *in_segs;
    size_t in_nsegs;
    uint64_t in_seg_size;
    int in_abort;
    pid_t in_lock_holder;
    int in_has_ckpt;
    struct ckpt in_ckpt;

    /* filled by insp_walk_records */
    int in_walked;
    struct insp_log_stats in_ls;
    uint64_t in_gen;      /* bumped at each resync: continuity is unknown across one */
    int in_ckpt_boundary; /* clog_durable fell on a record boundary */
    struct qtally **in_qtab;
    size_t in_qcap, in_qn;
    struct span *in_bad; /* damaged log ranges already reported, ascending */
    size_t in_nbad, in_badcap;

    struct insp_queue_stats in_qs;
    struct insp_index_stats in_is;
};

static void report(struct insp *in, enum insp_severity sev, const char *file, uint64_t pos,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
report(struct insp *in, enum insp_severity sev, const char *file, uint64_t pos, const char *fmt,
       ...)
{
    struct insp_finding f;
    char what[1024];
    va_list ap;

    if (sev == INSP_PROBLEM)
        in->in_problems++;
    if (in->in_report == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    f.severity = sev;
    f.file = file;
    f.pos = pos;
    f.what = what;
    in->in_report(in->in_arg, &f);
}

/* Small helpers ------------------------------------------------------ */

static int
all_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int
is_zero(const uint8_t *p, size_t n)
{
    /* p[0] == 0 and every byte equals its predecessor: one memcmp pass. */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Offset of the first non-zero byte of f->map in [from, f->size), or f->size. */
static uint64_t
first_nonzero(const struct mfile *f, uint64_t from)
{
    uint64_t off = from;

    while (off < f->size) {
        off_t d = lseek(f->fd, (off_t)off, SEEK_DATA);
        off_t h;

        if (d == -1) {
            if (errno == ENXIO)
                return f->size; /* only a hole (or unwritten extents) after <off> */
            d = (off_t)off;     /* SEEK_DATA unsupported: read everything */
            h = (off_t)f->size;
        } else {
            if ((uint64_t)d >= f->size)
                return f->size;
            if ((uint64_t)d < off)
                d = (off_t)off;
            h = lseek(f->fd, d, SEEK_HOLE);
            if (h == -1 || (uint64_t)h > f->size)
                h = (off_t)f->size;
        }
        /* Check in 64 KiB steps so a non-zero byte is located, not just seen. */
        for (uint64_t p = (uint64_t)d; p < (uint64_t)h;) {
            size_t n = (size_t)((uint64_t)h - p < 65536 ? (uint64_t)h - p : 65536);
            if (!is_zero(f->map + p, n)) {
                for (size_t i = 0; i < n; i++)
                    if (f->map[p + i] != 0)
                        return p + i;
            }
            p += n;
        }
        off = (uint64_t)h;
    }
    return f->size;
}

static int
cmp_mfile(const void *a, const void *b)
{
    const struct mfile *x = a, *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

static void
mfiles_free(struct mfile *fs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fs[i].map != NULL)
            sio_munmap((void *)fs[i].map, fs[i].size);
        if (fs[i].fd >= 0)
            sio_close(fs[i].fd);
        free(fs[i].path);
    }
    free(fs);
}

static int
mfile_map(struct mfile *f)
{
    void *p;
    int rc;

    rc = sio_open(f->path, O_RDONLY, 0);
    if (rc < 0)
        return rc;
    f->fd = rc;
    if (f->size == 0)
        return 0;
    rc = sio_mmap(f->fd, f->size, 0, &p);
    if (rc != 0)
        return rc;
    f->map = p;
    return 0;
}

/*
 * Lists the files of <dir> named by <namelen> digits as mfiles sorted by
 * the number in the name (not mapped yet). Other entries are reported as
 * notes. Returns 0 and the array (owned by the caller), or -errno.
 */
static int
list_numbered(struct insp *in, const char *dir, size_t namelen, struct mfile **out, size_t *nout)
{
    struct mfile *fs = NULL;
    size_t n = 0, cap = 0;
    struct dirent **ents = NULL;
    int ne, rc = 0;

    ne = scandir(dir, &ents, NULL, alphasort);
    if (ne == -1)
        return -errno;
    for (int i = 0; i < ne; i++) {
        const char *name = ents[i]->d_name;
        char path[PATH_MAX];
        struct stat st;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
            rc = -ENAMETOOLONG;
            goto fail;
        }
        if (!all_digits(name, namelen)) {
            report(in, INSP_NOTE, path, 0, "not a %zu-digit file name: ignored", namelen);
            continue;
        }
        if (stat(path, &st) == -1) {
            rc = -errno;
            goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
            report(in, INSP_NOTE, path, 0, "not a regular file: ignored");
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct mfile *nf = realloc(fs, ncap * sizeof(*nf));
            if (nf == NULL) {
                rc = -ENOMEM;
                goto fail;
            }
            fs = nf;
            cap = ncap;
        }
        fs[n].path = strdup(path);
        if (fs[n].path == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        fs[n].base = strtoull(name, NULL, 10);
        fs[n].size = (uint64_t)st.st_size;
        fs[n].map = NULL;
        fs[n].fd = -1;
        n++;
    }
    for (int i = 0; i < ne; i++)
        free(ents[i]);
    free(ents);
    if (n > 1)
        qsort(fs, n, sizeof(*fs), cmp_mfile);
    *out = fs;
    *nout = n;
    return 0;

fail:
    for (int i = 0; i < ne; i++)
        free(ents[i]);
    free(ents);
    mfiles_free(fs, n);
    return rc;
}

/*
 * Checks that the files of one stream (CommitLog or one ConsumeQueue) are
 * equal-sized, aligned and contiguous, drops an empty last file (a crash
 * while creating it; the store deletes it on open) and returns the common
 * size in *size (0 when there is no non-empty file). <unit> is the size
 * every file and name must be a multiple of (1 for the CommitLog).
 *
 * The common size is the one most files have (the larger on a tie), so a
 * single truncated or extended file is the one reported, whichever it is.
 */
static void
check_stream(struct insp *in, struct mfile *fs, size_t *n, uint64_t unit, uint64_t *size)
{
    uint64_t sz = 0;

    if (*n > 0 && fs[*n - 1].size == 0) {
        report(in, INSP_NOTE, fs[*n - 1].path, 0,
               "empty last file (a crash while creating it): ignored; the store removes it");
        free(fs[*n - 1].path);
        (*n)--;
    }
    for (size_t i = 0, best = 0; i < *n; i++) {
        size_t same = 0;
        for (size_t k = 0; k < *n; k++)
            same += fs[k].size == fs[i].size;
        if (fs[i].size != 0 && (same > best || (same == best && fs[i].size > sz))) {
            sz = fs[i].size;
            best = same;
        }
    }
    if (sz != 0 && sz % unit != 0)
        report(in, INSP_PROBLEM, fs[0].path, 0,
               "file size %" PRIu64 " is not a multiple of the %" PRIu64 "-byte unit", sz, unit);
    for (size_t i = 0; i < *n; i++) {
        if (fs[i].size != sz)
            report(in, INSP_PROBLEM, fs[i].path, 0,
                   "size %" PRIu64 " differs from the %" PRIu64
                   " of the other files (all files of one stream have the same size)",
                   fs[i].size, sz);
        if (sz != 0 && fs[i].base % sz != 0)
            report(in, INSP_PROBLEM, fs[i].path, 0,
                   "name %" PRIu64 " is not a multiple of the file size %" PRIu64, fs[i].base, sz);
        if (i > 0 && fs[i].base != fs[i - 1].base + fs[i - 1].size)
            report(in, INSP_PROBLEM, fs[i].path, 0,
                   "%s: the previous file ends at %" PRIu64 ", this one starts at %" PRIu64,
                   fs[i].base > fs[i - 1].base + fs[i - 1].size ? "gap" : "overlap",
                   fs[i - 1].base + fs[i - 1].size, fs[i].base);
    }
    *size = sz;
}

/* Open, info, close --------------------------------------------------- */

int
insp_open(const char *root, insp_report_fn report_fn, void *arg, struct insp **out, char *err,
          size_t errlen)
{
    struct insp *in = calloc(1, sizeof(*in));
    char path[PATH_MAX + 32];
    struct stat st;
    int rc, fd;

    if (in == NULL)
        return -ENOMEM;
    in->in_report = report_fn;
    in->in_arg = arg;
    if (snprintf(in->in_root, sizeof(in->in_root), "%s", root) >= (int)sizeof(in->in_root)) {
        rc = -ENAMETOOLONG;
        snprintf(err, errlen, "%s: path too long", root);
        goto fail;
    }
    if (stat(root, &st) == -1) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s (give the store's storePathRootDir)", root, spk_strerror(rc));
        goto fail;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = -ENOTDIR;
        snprintf(err, errlen, "%s: not a directory (give the store's storePathRootDir)", root);
        goto fail;
    }

    snprintf(path, sizeof(path), "%s/commitlog", root);
    rc = list_numbered(in, path, SEG_NAME_LEN, &in->in_segs, &in->in_nsegs);
    if (rc != 0) {
        if (rc == -ENOENT)
            snprintf(err, errlen,
                     "%s: no such directory: %s is not a store directory "
                     "(give the store's storePathRootDir)",
                     path, root);
        else
            snprintf(err, errlen, "%s: %s", path, spk_strerror(rc));
        goto fail;
    }
    check_stream(in, in->in_segs, &in->in_nsegs, 1, &in->in_seg_size);
    for (size_t i = 0; i < in->in_nsegs; i++) {
        rc = mfile_map(&in->in_segs[i]);
        if (rc != 0) {
            snprintf(err, errlen, "%s: cannot map: %s", in->in_segs[i].path, spk_strerror(rc));
            goto fail;
        }
    }

    snprintf(path, sizeof(path), "%s/abort", root);
    in->in_abort = access(path, F_OK) == 0;
    if (in->in_abort)
        report(in, INSP_NOTE, path, 0,
               "present: the store was not stopped cleanly (or is running); its next start "
               "recovers the log tail and re-dispatches it");

    /*
     * F_GETLK asks who would block a write lock without taking one, so
     * looking does not disturb a running store (which locks <root>/lock
     * with fcntl, STORE.md 5.2).
     */
    snprintf(path, sizeof(path), "%s/lock", root);
    fd = sio_open(path, O_RDONLY, 0);
    if (fd >= 0) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
        if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
            in->in_lock_holder = fl.l_pid;
        sio_close(fd);
    }

    snprintf(path, sizeof(path), "%s/checkpoint", root);
    rc = ckpt_read(path, &in->in_ckpt);
    if (rc == 0) {
        in->in_has_ckpt = 1;
        if (!in->in_ckpt.ext_valid) {
            /* With its magic in place, an extension that fails its CRC was
             * written and then damaged (a torn rewrite or a flipped bit);
             * without it, the file is a RocketMQ one. */
            char magic[8] = "";
            int cfd = sio_open(path, O_RDONLY, 0);
            int has_magic = cfd >= 0 && sio_pread(cfd, magic, sizeof(magic), 40) == 8 &&
                            memcmp(magic, CKPT_MAGIC, sizeof(magic)) == 0;
            if (cfd >= 0)
                sio_close(cfd);
            if (has_magic)
                report(in, INSP_PROBLEM, path, 80,
                       "the Sprocket extension fails its CRC: the checkpoint is damaged, and "
                       "recovery will ignore it and scan the log from the oldest segment");
            else
                report(in, INSP_NOTE, path, 40,
                       "no valid Sprocket extension (magic or CRC); only the RocketMQ "
                       "timestamps are usable");
        }
    } else if (rc == SPK_ECORRUPT) {
        report(in, INSP_PROBLEM, path, 0, "shorter than the 40 bytes of a checkpoint");
    } else if (rc != -ENOENT) {
        report(in, INSP_PROBLEM, path, 0, "cannot read: %s", spk_strerror(rc));
    }
    *out = in;
    return 0;

fail:
    insp_close(in);
    return rc;
}

static void
qtab_free(struct insp *in)
{
    for (size_t i = 0; i < in->in_qcap; i++) {
        struct qtally *q = in->in_qtab[i];
        while (q != NULL) {
            struct qtally *next = q->next;
            free(q->topic);
            free(q);
            q = next;
        }
    }
    free(in->in_qtab);
    in->in_qtab = NULL;
    in->in_qcap = in->in_qn = 0;
}

void
insp_close(struct insp *in)
{
    if (in == NULL)
        return;
    mfiles_free(in->in_segs, in->in_nsegs);
    qtab_free(in);
    free(in->in_bad);
    free(in);
}

void
insp_get_info(const struct insp *in, struct insp_info *info)
{
    memset(info, 0, sizeof(*info));
    info->segments = in->in_nsegs;
    info->seg_size = in->in_seg_size;
    if (in->in_nsegs > 0) {
        info->clog_min = in->in_segs[0].base;
        info->files_end = in->in_segs[in->in_nsegs - 1].base + in->in_segs[in->in_nsegs - 1].size;
    }
    info->abort_present = in->in_abort;
    info->lock_holder = in->in_lock_holder;
    info->has_checkpoint = in->in_has_ckpt;
}

int
insp_checkpoint(const struct insp *in, struct ckpt *c)
{
    if (!in->in_has_ckpt)
        return -ENOENT;
    *c = in->in_ckpt;
    return 0;
}

uint64_t
insp_problems(const struct insp *in)
{
    return in->in_problems;
}

static uint64_t
clog_min(const struct insp *in)
{
    return in->in_nsegs ? in->in_segs[0].base : 0;
}

/* End of the log data: from the walk when there was one, else of the files. */
static uint64_t
log_end(const struct insp *in)
{
    if (in->in_walked)
        return in->in_ls.log_end;
    return in->in_nsegs ? in->in_segs[in->in_nsegs - 1].base + in->in_segs[in->in_nsegs - 1].size
                        : 0;
}

/* The segment holding log offset <phys>, or NULL. */
static const struct mfile *
seg_at(const struct insp *in, uint64_t phys)
{
    size_t lo = 0, hi = in->in_nsegs;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct mfile *f = &in->in_segs[mid];
        if (phys < f->base)
            hi = mid;
        else if (phys >= f->base + f->size)
            lo = mid + 1;
        else
            return f->map ? f : NULL;
    }
    return NULL;
}

/*
 * Parses the record at log offset <phys>. CRCs are checked only when the
 * records walk has not already checked (and reported) them.
 */
/* The CRC check a record at <phys> must pass: the whole-record CRC
 * property is required where the checkpoint promises it (checkpoint.h
 * INV-4), since a damaged property otherwise looks like none at all. */
static enum rec_check
check_level(const struct insp *in, uint64_t phys)
{
    if (in->in_has_ckpt && in->in_ckpt.ext_valid && phys >= in->in_ckpt.crc_prop_from)
        return REC_CHECK_CRC_PROP;
    return REC_CHECK_CRC;
}

static int
record_at(const struct insp *in, uint64_t phys, struct rec_view *v, const char **why)
{
    const struct mfile *f = seg_at(in, phys);

    if (f == NULL) {
        *why = "no CommitLog segment holds that offset";
        return SPK_ECORRUPT;
    }
    return rec_parse(f->map + (phys - f->base), f->size - (phys - f->base), phys,
                     in->in_walked ? REC_CHECK_NONE : check_level(in, phys), v, why);
}

/*
 * 1 when <phys> lies in a range the records walk reported as damaged. A
 * unit or index entry naming such a record says nothing new (the damage
 * is one problem, reported once), so it is not reported again.
 */
static int
in_damaged(const struct insp *in, uint64_t phys)
{
    size_t lo = 0, hi = in->in_nbad;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (phys < in->in_bad[mid].from)
            hi = mid;
        else if (phys >= in->in_bad[mid].to)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

static int
add_damaged(struct insp *in, uint64_t from, uint64_t to)
{
    if (in->in_nbad == in->in_badcap) {
        size_t ncap = in->in_badcap ? in->in_badcap * 2 : 16;
        struct span *n = realloc(in->in_bad, ncap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        in->in_bad = n;
        in->in_badcap = ncap;
    }
    in->in_bad[in->in_nbad].from = from;
    in->in_bad[in->in_nbad].to = to;
    in->in_nbad++;
    return 0;
}

/* Records ------------------------------------------------------------ */

static uint64_t
qhash(const char *topic, size_t len, int32_t qid)
{
    uint64_t h = 1469598103934665603ull ^ (uint32_t)qid;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)topic[i]) * 1099511628211ull;
    return h;
}

static struct qtally *
qtally_find(struct insp *in, const char *topic, size_t len, int32_t qid, int create)
{
    struct qtally *q;
    uint64_t h = qhash(topic, len, qid);

    if (in->in_qcap > 0) {
        for (q = in->in_qtab[h & (in->in_qcap - 1)]; q != NULL; q = q->next)
            if (q->qid == qid && q->topic_len == len && memcmp(q->topic, topic, len) == 0)
                return q;
    }
    if (!create)
        return NULL;
    if (in->in_qn >= in->in_qcap / 2) {
        size_t ncap = in->in_qcap ? in->in_qcap * 2 : 64;
        struct qtally **nt = calloc(ncap, sizeof(*nt));
        if (nt == NULL)
            return NULL;
        for (size_t i = 0; i < in->in_qcap; i++) {
            while (in->in_qtab[i] != NULL) {
                q = in->in_qtab[i];
                in->in_qtab[i] = q->next;
                uint64_t b = qhash(q->topic, q->topic_len, q->qid) & (ncap - 1);
                q->next = nt[b];
                nt[b] = q;
            }
        }
        free(in->in_qtab);
        in->in_qtab = nt;
        in->in_qcap = ncap;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->topic = malloc(len + 1);
    if (q->topic == NULL) {
        free(q);
        return NULL;
    }
    memcpy(q->topic, topic, len);
    q->topic[len] = '\0';
    q->topic_len = len;
    q->qid = qid;
    q->next = in->in_qtab[h & (in->in_qcap - 1)];
    in->in_qtab[h & (in->in_qcap - 1)] = q;
    in->in_qn++;
    return q;
}

/*
 * Counts a valid record against its queue and checks that queue offsets
 * of one queue rise by one in log order (the store assigns them under the
 * append lock). PREPARED and ROLLBACK records have offset 0 and no unit.
 */
static int
tally_record(struct insp *in, const struct mfile *f, uint64_t seg_pos, const struct rec_view *v)
{
    int tx = v->sysflag & REC_SYS_TX_MASK;
    struct qtally *q;

    if (tx == REC_SYS_TX_PREPARED || tx == REC_SYS_TX_ROLLBACK)
        return 0;
    q = qtally_find(in, v->topic, v->topic_len, v->queue_id, 1);
    if (q == NULL)
        return -ENOMEM;
    if (v->sysflag & SYS_INNER_BATCH) /* one record, INNER_NUM queue offsets */
        q->inner_batch = 1;
    if (q->records == 0) {
        q->first_qoff = v->queue_off;
        q->next_qoff = v->queue_off + 1;
    } else {
        if (!q->inner_batch && q->gen == in->in_gen && v->queue_off != q->next_qoff)
            report(in, INSP_PROBLEM, f->path, seg_pos,
                   "record of %s/%d has queue offset %" PRIu64 ", but the previous record of "
                   "that queue (log offset %" PRIu64 ") had %" PRIu64
                   ": offsets of one queue must rise by one",
                   q->topic, q->qid, v->queue_off, q->last_phys, q->next_qoff - 1);
        if (v->queue_off + 1 > q->next_qoff)
            q->next_qoff = v->queue_off + 1;
    }
    q->records++;
    q->last_phys = v->phys_off;
    q->gen = in->in_gen;
    return 0;
}

static void
boundary(struct insp *in, uint64_t off)
{
    if (in->in_has_ckpt && in->in_ckpt.ext_valid && off == in->in_ckpt.clog_durable)
        in->in_ckpt_boundary = 1;
}

/*
 * The next position after <from> in <f> where a valid record starts, or
 * where a BLANK filler claims exactly the rest of the segment. Returns 1
 * and sets *at, or 0.
 */
static int
resync(const struct mfile *f, uint64_t from, uint64_t *at)
{
    static const uint8_t v1[4] = {0xDA, 0xA3, 0x20, 0xA7};
    static const uint8_t v2[4] = {0xDA, 0xA3, 0x20, 0xAB};
    static const uint8_t blank[4] = {0xCB, 0xD4, 0x31, 0x94};
    uint64_t q = from + 1;

    /* Candidates are positions whose magic field (at +4) starts 0xDA or 0xCB. */
    while (q + 8 <= f->size) {
        const uint8_t *s = f->map + q + 4;
        size_t left = (size_t)(f->size - q - 4);
        const uint8_t *a = memchr(s, 0xDA, left);
        const uint8_t *b = memchr(s, 0xCB, a ? (size_t)(a - s) : left);
        const uint8_t *m = b ? b : a;
        uint64_t cand;

        if (m == NULL)
            return 0;
        cand = (uint64_t)(m - f->map) - 4;
        if (cand + 8 <= f->size) {
            if (memcmp(m, v1, 4) == 0 || memcmp(m, v2, 4) == 0) {
                struct rec_view v;
                const char *why;
                if (rec_parse(f->map + cand, f->size - cand, f->base + cand, REC_CHECK_CRC, &v,
                              &why) > 0) {
                    *at = cand;
                    return 1;
                }
            } else if (memcmp(m, blank, 4) == 0 && be_get32(f->map + cand) == f->size - cand) {
                *at = cand;
                return 1;
            }
        }
        q = cand + 1;
    }
    return 0;
}

int
insp_walk_records(struct insp *in, insp_record_fn fn, void *arg)
{
    int rc = 0;

    qtab_free(in);
    memset(&in->in_ls, 0, sizeof(in->in_ls));
    in->in_walked = 0;
    in->in_gen = 0;
    in->in_nbad = 0;
    in->in_ckpt_boundary = 0;
    in->in_ls.log_end = clog_min(in);
    boundary(in, clog_min(in));

    for (size_t i = 0; i < in->in_nsegs; i++) {
        const struct mfile *f = &in->in_segs[i];
        int last = i + 1 == in->in_nsegs;
        uint64_t pos = 0;

        if (f->map == NULL)
            continue;
        boundary(in, f->base);
        while (pos < f->size) {
            struct rec_view v;
            const char *why = "";
            int n = rec_parse(f->map + pos, f->size - pos, f->base + pos,
                              check_level(in, f->base + pos), &v, &why);
            uint64_t nz, at;

            if (n > 0) {
                boundary(in, f->base + pos);
                in->in_ls.records++;
                in->in_ls.log_end = f->base + pos + (uint64_t)n;
                rc = tally_record(in, f, pos, &v);
                if (rc == 0 && fn != NULL) {
                    struct insp_record r = {f->base + pos, f->path, pos, &v};
                    rc = fn(arg, &r);
                }
                if (rc != 0)
                    goto out;
                pos += (uint64_t)n;
                continue;
            }
            if (n == 0) {
                boundary(in, f->base + pos);
                in->in_ls.blanks++;
                if (v.total != f->size - pos)
                    report(in, INSP_PROBLEM, f->path, pos,
                           "BLANK filler claims %" PRIu32 " bytes, but %" PRIu64
                           " remain in the segment",
                           v.total, f->size - pos);
                /* A full last segment: the next record would start the next file. */
                in->in_ls.log_end = last ? f->base + pos : f->base + f->size;
                break;
            }

            nz = first_nonzero(f, pos);
            if (nz == f->size) {
                if (!last)
                    report(in, INSP_PROBLEM, f->path, pos,
                           "the data of this segment ends %" PRIu64
                           " bytes before its end without a BLANK filler, and %zu later "
                           "segment(s) exist: the log has a hole here",
                           f->size - pos, in->in_nsegs - i - 1);
                break; /* in the last segment: the normal end of the data */
            }
            if (resync(f, pos, &at)) {
                report(in, INSP_PROBLEM, f->path, pos,
                       "invalid record (%s); %" PRIu64 " bytes skipped to the next valid record "
                       "at byte %" PRIu64,
                       why, at - pos, at);
                in->in_ls.bad_regions++;
                in->in_ls.bad_bytes += at - pos;
                in->in_gen++;
                rc = add_damaged(in, f->base + pos, f->base + at);
                if (rc != 0)
                    goto out;
                pos = at;
                continue;
            }
            if (nz > pos)
                report(in, INSP_PROBLEM, f->path, pos,
                       "the data ends here, but non-zero bytes follow at byte %" PRIu64
                       " with no valid record among them",
                       nz);
            else
                report(in, INSP_PROBLEM, f->path, pos,
                       "invalid record (%s), and no valid record follows in this segment%s", why,
                       last ? " (a torn or damaged tail)" : "");
            in->in_ls.bad_regions++;
            in->in_ls.bad_bytes += f->size - pos;
            in->in_gen++;
            rc = add_damaged(in, f->base + pos, f->base + f->size);
            if (rc != 0)
                goto out;
            break;
        }
    }
    boundary(in, in->in_ls.log_end);
    in->in_walked = 1;
out:
    return rc;
}

void
insp_log_stats(const struct insp *in, struct insp_log_stats *st)
{
    *st = in->in_ls;
}

/* ConsumeQueues ------------------------------------------------------ */

/* Checks one real unit against the record it names. */
static void
check_unit(struct insp *in, const struct mfile *f, uint64_t fpos, struct insp_unit *u,
           struct rec_view *v)
{
    const char *why = "";
    const char *tags;
    size_t tags_len;
    int n;

    if ((int64_t)u->phys_off < 0 || u->size == 0 || u->size > 0x7FFFFFFFu) {
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " is not valid: log offset %" PRId64 ", size %" PRIu32, u->queue_idx,
               (int64_t)u->phys_off, u->size);
        return;
    }
    if (u->phys_off < clog_min(in)) {
        u->expired = 1; /* its segment was cleaned up: nothing left to compare */
        return;
    }
    if (u->phys_off + u->size > log_end(in)) {
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " names log bytes [%" PRIu64 ", %" PRIu64
               ") beyond the end of the log data at %" PRIu64,
               u->queue_idx, u->phys_off, u->phys_off + u->size, log_end(in));
        return;
    }
    if (in_damaged(in, u->phys_off))
        return;
    n = record_at(in, u->phys_off, v, &why);
    if (n <= 0) {
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " names log offset %" PRIu64 ", where no valid record starts (%s)",
               u->queue_idx, u->phys_off, n == 0 ? "a BLANK filler" : why);
        return;
    }
    u->v = v;
    if (v->total != u->size)
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " says size %" PRIu32 ", the record at log offset %" PRIu64
               " is %" PRIu32 " bytes",
               u->queue_idx, u->size, u->phys_off, v->total);
    if (v->queue_id != u->queue_id)
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " names the record at log offset %" PRIu64
               " of queue %d, not of this queue %d",
               u->queue_idx, u->phys_off, v->queue_id, u->queue_id);
    if (v->topic_len != strlen(u->topic) || memcmp(v->topic, u->topic, v->topic_len) != 0)
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " names the record at log offset %" PRIu64
               " of topic '%.*s', not of this directory's topic '%s'",
               u->queue_idx, u->phys_off, (int)v->topic_len, v->topic, u->topic);
    if (v->queue_off != u->queue_idx)
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " names the record at log offset %" PRIu64
               " whose queue offset is %" PRIu64,
               u->queue_idx, u->phys_off, v->queue_off);
    if ((v->sysflag & REC_SYS_TX_MASK) == REC_SYS_TX_PREPARED ||
        (v->sysflag & REC_SYS_TX_MASK) == REC_SYS_TX_ROLLBACK)
        report(in, INSP_PROBLEM, f->path, fpos,
               "unit %" PRIu64 " names a prepared or rolled-back transaction record at log "
               "offset %" PRIu64 ", which never gets a unit",
               u->queue_idx, u->phys_off);
    /* Under SCHEDULE_TOPIC_XXXX the tagsCode field holds the delivery time. */
    if (strcmp(u->topic, SCHEDULE_TOPIC) != 0) {
        int64_t want = 0;
        int has = rec_prop_get(v->props, v->props_len, "TAGS", &tags, &tags_len);
        if (has)
            want = (int64_t)spk_java_hash(tags, tags_len);
        if (u->tags_code != want)
            report(in, INSP_PROBLEM, f->path, fpos,
                   "unit %" PRIu64 " has tagsCode %" PRId64 ", but %s%.*s%s hashes to %" PRId64,
                   u->queue_idx, u->tags_code, has ? "TAGS '" : "a record without TAGS",
                   has ? (int)tags_len : 0, has ? tags : "", has ? "'" : "", want);
    }
}

/*
 * Walks the units of one queue directory. Returns 0, the callback's value
 * or -errno.
 */
static int
walk_queue(struct insp *in, const char *topic, int32_t qid, const char *dir, insp_unit_fn fn,
           void *arg)
{
    struct mfile *fs = NULL;
    size_t n = 0;
    uint64_t size, prev_end = 0, end_idx = 0;
    int started = 0, ended = 0, rc;
    struct qtally *q;

    rc = list_numbered(in, dir, SEG_NAME_LEN, &fs, &n);
    if (rc != 0) {
        report(in, INSP_PROBLEM, dir, 0, "cannot read: %s", spk_strerror(rc));
        return 0;
    }
    check_stream(in, fs, &n, CQ_UNIT, &size);
    in->in_qs.queues++;
    if (n > 0)
        end_idx = fs[0].base / CQ_UNIT;

    for (size_t i = 0; i < n && rc == 0; i++) {
        struct mfile *f = &fs[i];
        uint64_t pos;

        rc = mfile_map(f);
        if (rc != 0) {
            report(in, INSP_PROBLEM, f->path, 0, "cannot map: %s", spk_strerror(rc));
            rc = 0;
            break;
        }
        if (f->map == NULL)
            continue;
        if (ended) {
            uint64_t nz = first_nonzero(f, 0);
            if (nz < f->size)
                report(in, INSP_PROBLEM, f->path, nz,
                       "non-zero bytes after the end of the queue's data (an all-zero unit "
                       "in an earlier file)");
            continue;
        }
        for (pos = 0; pos + CQ_UNIT <= f->size; pos += CQ_UNIT) {
            const uint8_t *p = f->map + pos;
            struct insp_unit u;
            struct rec_view v;

            if (is_zero(p, CQ_UNIT)) {
                uint64_t nz = first_nonzero(f, pos);
                ended = 1;
                end_idx = (f->base + pos) / CQ_UNIT;
                if (nz < f->size)
                    report(in, INSP_PROBLEM, f->path, nz,
                           "non-zero bytes after the end of the queue's data (the all-zero "
                           "unit at byte %" PRIu64 ")",
                           pos);
                break;
            }
            memset(&u, 0, sizeof(u));
            u.topic = topic;
            u.queue_id = qid;
            u.file = f->path;
            u.file_pos = pos;
            u.queue_idx = (f->base + pos) / CQ_UNIT;
            u.phys_off = be_get64(p);
            u.size = be_get32(p + 8);
            u.tags_code = (int64_t)be_get64(p + 12);
            in->in_qs.units++;
            if (u.phys_off == 0 && u.size == CQ_BLANK_SIZE && u.tags_code == 0) {
                u.blank = 1;
                in->in_qs.blanks++;
                if (started)
                    report(in, INSP_PROBLEM, f->path, pos,
                           "blank filler unit %" PRIu64
                           " after real units (fillers only precede the first unit)",
                           u.queue_idx);
            } else {
                if (started && u.phys_off < prev_end)
                    report(in, INSP_PROBLEM, f->path, pos,
                           "unit %" PRIu64 " names log offset %" PRIu64
                           ", not above the end %" PRIu64 " of the previous unit's record",
                           u.queue_idx, u.phys_off, prev_end);
                started = 1;
                prev_end = u.phys_off + u.size;
                check_unit(in, f, pos, &u, &v);
                if (u.expired)
                    in->in_qs.expired++;
            }
            if (fn != NULL) {
                rc = fn(arg, &u);
                if (rc != 0)
                    break;
            }
        }
        if (!ended)
            end_idx = (f->base + f->size) / CQ_UNIT;
    }

    /* Everything the log holds for this queue must have a unit. */
    q = qtally_find(in, topic, strlen(topic), qid, 0);
    if (q != NULL) {
        q->has_queue = 1;
        q->unit_end = end_idx;
        if (!q->inner_batch && end_idx < q->next_qoff) {
            const char *file = n > 0 ? fs[n - 1].path : dir;
            report(in, in->in_abort ? INSP_NOTE : INSP_PROBLEM, file, 0,
                   "the queue's units end at queue offset %" PRIu64
                   ", but the log holds its messages up to queue offset %" PRIu64 " (%" PRIu64
                   " not dispatched%s)",
                   end_idx, q->next_qoff - 1, q->next_qoff - end_idx,
                   in->in_abort ? "; expected after an unclean stop: recovery re-dispatches them"
                                : " although the store was stopped cleanly");
        }
    }
    mfiles_free(fs, n);
    return rc;
}

static int
cmp_qid(const struct dirent **a, const struct dirent **b)
{
    long x = strtol((*a)->d_name, NULL, 10), y = strtol((*b)->d_name, NULL, 10);
    return x < y ? -1 : x > y;
}

/* A queue directory name: a decimal int32 >= 0, as RocketMQ's loader wants. */
static int
parse_qid(const char *name, int32_t *qid)
{
    char *end;
    long v;

    if (name[0] < '0' || name[0] > '9')
        return -1;
    errno = 0;
    v = strtol(name, &end, 10);
    if (errno != 0 || *end != '\0' || v > INT32_MAX)
        return -1;
    *qid = (int32_t)v;
    return 0;
}

int
insp_walk_units(struct insp *in, insp_unit_fn fn, void *arg)
{
    char cqdir[PATH_MAX + 16];
    struct dirent **topics = NULL;
    int nt, rc = 0;

    memset(&in->in_qs, 0, sizeof(in->in_qs));
    snprintf(cqdir, sizeof(cqdir), "%s/consumequeue", in->in_root);
    nt = scandir(cqdir, &topics, NULL, alphasort);
    if (nt == -1) {
        nt = 0;
        if (errno != ENOENT) {
            rc = -errno;
            report(in, INSP_PROBLEM, cqdir, 0, "cannot read: %s", spk_strerror(rc));
            rc = 0;
        }
    }
    for (int i = 0; i < nt && rc == 0; i++) {
        const char *topic = topics[i]->d_name;
        char tdir[PATH_MAX];
        struct dirent **qs = NULL;
        struct stat st;
        int nq;

        if (strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0)
            continue;
        if (snprintf(tdir, sizeof(tdir), "%s/%s", cqdir, topic) >= (int)sizeof(tdir))
            continue;
        if (stat(tdir, &st) == -1 || !S_ISDIR(st.st_mode)) {
            report(in, INSP_NOTE, tdir, 0, "not a topic directory: ignored");
            continue;
        }
        nq = scandir(tdir, &qs, NULL, cmp_qid);
        if (nq == -1) {
            report(in, INSP_PROBLEM, tdir, 0, "cannot read: %s", spk_strerror(-errno));
            continue;
        }
        for (int j = 0; j < nq; j++) {
            char qdir[PATH_MAX];
            int32_t qid;

            if (rc == 0 && strcmp(qs[j]->d_name, ".") != 0 && strcmp(qs[j]->d_name, "..") != 0) {
                snprintf(qdir, sizeof(qdir), "%s/%s", tdir, qs[j]->d_name);
                if (parse_qid(qs[j]->d_name, &qid) != 0 || stat(qdir, &st) == -1 ||
                    !S_ISDIR(st.st_mode))
                    report(in, INSP_NOTE, qdir, 0,
                           "not a queue directory (a queue id): ignored, as the store does");
                else
                    rc = walk_queue(in, topic, qid, qdir, fn, arg);
            }
            free(qs[j]);
        }
        free(qs);
    }
    for (int i = 0; i < nt; i++)
        free(topics[i]);
    free(topics);

    /* Queues the log holds messages for, but which have no directory at all. */
    for (size_t b = 0; rc == 0 && b < in->in_qcap; b++) {
        for (struct qtally *q = in->in_qtab[b]; q != NULL; q = q->next) {
            char qdir[PATH_MAX + 32];
            if (q->has_queue || q->inner_batch)
                continue;
            snprintf(qdir, sizeof(qdir), "%s/%s/%d", cqdir, q->topic, q->qid);
            report(in, in->in_abort ? INSP_NOTE : INSP_PROBLEM, qdir, 0,
                   "missing, but the log holds %" PRIu64 " message(s) of this queue "
                   "(queue offsets %" PRIu64 "..%" PRIu64 ", %s)",
                   q->records, q->first_qoff, q->next_qoff - 1,
                   in->in_abort ? "expected after an unclean stop: recovery re-dispatches them"
                                : "although the store was stopped cleanly");
        }
    }
    return rc;
}

void
insp_queue_stats(const struct insp *in, struct insp_queue_stats *st)
{
    *st = in->in_qs;
}

/* Index -------------------------------------------------------------- */

struct ix_ctx {
    struct insp *in;
    const struct insp_index_ops *ops;
    void *arg;
    char file[PATH_MAX + 64];
    uint32_t slot_num;
    int64_t begin_ts;     /* the current file's beginTimestamp */
    struct ix_header hdr; /* the current file's header */
};

/* The timeDiff ix_put() stores for a record stored at <store_ts> in a file
 * that began at <begin_ts> (indexfile.c time_diff: whole seconds, 0 before
 * the file has a begin time, clamped to [0, INT32_MAX]). */
static int32_t
expected_time_diff(int64_t begin_ts, int64_t store_ts)
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

/* RocketMQ's IndexService hash of topic#key: abs(String.hashCode()), INT_MIN -> 0. */
static int32_t
index_hash(const char *topic, size_t tlen, const char *key, size_t klen)
{
    char stackbuf[1024];
    char *buf = stackbuf;
    size_t len = tlen + 1 + klen;
    int32_t h;

    if (len > sizeof(stackbuf)) {
        buf = malloc(len);
        if (buf == NULL)
            return -1; /* never a valid hash: reported as a mismatch */
    }
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
        index_hash(v->topic, v->topic_len, val, len) == hash)
        return 1;
    if (rec_prop_get(v->props, v->props_len, "KEYS", &val, &len)) {
        size_t i = 0;
        while (i < len) {
            const char *sp = memchr(val + i, ' ', len - i);
            size_t kl = sp ? (size_t)(sp - (val + i)) : len - i;
            if (kl > 0 && index_hash(v->topic, v->topic_len, val + i, kl) == hash)
                return 1;
            i += kl + 1;
        }
    }
    return 0;
}

static void
ix_file_cb(void *arg, const char *name, const struct ix_header *h)
{
    struct ix_ctx *c = arg;

    snprintf(c->file, sizeof(c->file), "%s/index/%s", c->in->in_root, name);
    c->begin_ts = h->begin_ts;
    c->hdr = *h;
    c->in->in_is.files++;
    if (c->ops != NULL && c->ops->file != NULL)
        c->ops->file(c->arg, name, h);
}

static void
ix_entry_cb(void *arg, uint32_t n, int32_t key_hash, uint64_t phys, int32_t time_diff, int32_t prev)
{
    struct ix_ctx *c = arg;
    struct insp *in = c->in;
    uint64_t bpos = IX_HEADER_LEN + 4ull * c->slot_num + (uint64_t)CQ_UNIT * n;
    struct rec_view v;
    const char *why = "";
    int rc;

    in->in_is.entries++;
    if (c->ops != NULL && c->ops->entry != NULL)
        c->ops->entry(c->arg, n, key_hash, phys, time_diff, prev);
    if (phys < clog_min(in)) {
        in->in_is.expired++;
        return;
    }
    if (phys >= log_end(in)) {
        report(in, INSP_PROBLEM, c->file, bpos,
               "entry %" PRIu32 " names log offset %" PRIu64
               ", at or beyond the end of the log data at %" PRIu64,
               n, phys, log_end(in));
        return;
    }
    if (in_damaged(in, phys))
        return;
    rc = record_at(in, phys, &v, &why);
    if (rc <= 0) {
        report(in, INSP_PROBLEM, c->file, bpos,
               "entry %" PRIu32 " names log offset %" PRIu64 ", where no valid record starts (%s)",
               n, phys, rc == 0 ? "a BLANK filler" : why);
        return;
    }
    if (!record_has_key_hash(&v, key_hash)) {
        report(in, INSP_PROBLEM, c->file, bpos,
               "entry %" PRIu32 " has key hash %" PRId32 ", which matches none of the keys "
               "(topic#UNIQ_KEY, topic#KEYS) of the record at log offset %" PRIu64,
               n, key_hash, phys);
        return;
    }
    /* The header's bounds are those of its first and last entries
     * (ix_put): a flipped bit there moves the file out of the time or
     * offset range that queries and recovery select files by. */
    if (n == 1 && ((uint64_t)c->hdr.begin_phys != phys || c->hdr.begin_ts != v.store_ts))
        report(in, INSP_PROBLEM, c->file, c->hdr.begin_phys != phys ? 16 : 0,
               "header beginPhyOffset %" PRIu64 " / beginTimestamp %" PRId64
               " differ from entry 1's record (offset %" PRIu64 ", stored at %" PRId64 ")",
               c->hdr.begin_phys, c->hdr.begin_ts, phys, v.store_ts);
    if (n + 1 == (uint32_t)c->hdr.index_count &&
        ((uint64_t)c->hdr.end_phys != phys || c->hdr.end_ts != v.store_ts))
        report(in, INSP_PROBLEM, c->file, c->hdr.end_phys != phys ? 24 : 8,
               "header endPhyOffset %" PRIu64 " / endTimestamp %" PRId64
               " differ from the last entry's record (offset %" PRIu64 ", stored at %" PRId64 ")",
               c->hdr.end_phys, c->hdr.end_ts, phys, v.store_ts);
    /* Entry 1 is written before the file's beginTimestamp is set from it
     * (it may have used the previous file's end time): nothing to compare. */
    if (n >= 2 && time_diff != expected_time_diff(c->begin_ts, v.store_ts))
        report(in, INSP_PROBLEM, c->file, bpos,
               "entry %" PRIu32 " has timeDiff %" PRId32 " s, but the record at log offset "
               "%" PRIu64 " was stored %" PRId32 " s after the file's beginTimestamp: a "
               "time-bounded query would miss it",
               n, time_diff, phys, expected_time_diff(c->begin_ts, v.store_ts));
}

/* Turns ix_check()'s "index/<name>: ... at byte B: reason" into a finding. */
static void
report_ix_check(struct insp *in, const char *msg)
{
    char file[PATH_MAX + 64];
    const char *colon = strstr(msg, ": ");
    const char *at = strstr(msg, "at byte ");
    uint64_t pos = 0;

    if (colon == NULL) {
        report(in, INSP_PROBLEM, in->in_root, 0, "index: %s", msg);
        return;
    }
    snprintf(file, sizeof(file), "%s/%.*s", in->in_root, (int)(colon - msg), msg);
    if (at != NULL)
        pos = strtoull(at + 8, NULL, 10);
    report(in, INSP_PROBLEM, file, pos, "%s", colon + 2);
}

int
insp_walk_index(struct insp *in, uint32_t slot_num, uint32_t index_num,
                const struct insp_index_ops *ops, void *arg)
{
    char dir[PATH_MAX + 16];
    struct mfile *fs = NULL;
    size_t n = 0;
    struct ixsvc *ix = NULL;
    struct ix_ctx *ctx = NULL;
    unsigned dropped = 0;
    uint64_t want;
    int rc, bad = 0;
    char msg[512];

    memset(&in->in_is, 0, sizeof(in->in_is));
    snprintf(dir, sizeof(dir), "%s/index", in->in_root);
    rc = list_numbered(in, dir, IX_NAME_LEN, &fs, &n);
    if (rc == -ENOENT)
        return 0;
    if (rc != 0) {
        report(in, INSP_PROBLEM, dir, 0, "cannot read: %s", spk_strerror(rc));
        return 0;
    }
    if (n == 0)
        goto out;

    if (slot_num == 0 || index_num == 0) {
        uint64_t sz = fs[0].size;
        if (sz == IX_HEADER_LEN + 4ull * IX_DEFAULT_SLOT_NUM + 20ull * IX_DEFAULT_INDEX_NUM) {
            slot_num = IX_DEFAULT_SLOT_NUM;
            index_num = IX_DEFAULT_INDEX_NUM;
        } else if (sz > IX_HEADER_LEN && (sz - IX_HEADER_LEN) % 84 == 0 &&
                   (sz - IX_HEADER_LEN) / 84 <= UINT32_MAX / 4) {
            slot_num = (uint32_t)((sz - IX_HEADER_LEN) / 84);
            index_num = 4 * slot_num;
        } else {
            report(in, INSP_PROBLEM, fs[0].path, 0,
                   "size %" PRIu64 " fits neither the default maxHashSlotNum/maxIndexNum nor "
                   "their 1:4 ratio; give both (--maxHashSlotNum=N --maxIndexNum=M) to read "
                   "the index",
                   sz);
            goto out;
        }
    }
    want = IX_HEADER_LEN + 4ull * slot_num + 20ull * index_num;

    /*
     * ix_open() deletes a file (and every newer one) that fails these
     * tests. Apply them first, so that inspecting never deletes anything
     * (inspect.h INV-1).
     */
    for (size_t i = 0; i < n; i++) {
        uint8_t h[IX_HEADER_LEN];
        int fd;
        int64_t bts, ets;
        uint64_t bph, eph;
        int32_t slots, count;

        if (fs[i].size != want) {
            report(in, INSP_PROBLEM, fs[i].path, 0,
                   "size %" PRIu64 ", but maxHashSlotNum=%" PRIu32 " and maxIndexNum=%" PRIu32
                   " make %" PRIu64 "; if the store used other values give them "
                   "(--maxHashSlotNum=N --maxIndexNum=M)",
                   fs[i].size, slot_num, index_num, want);
            bad = 1;
            continue;
        }
        fd = sio_open(fs[i].path, O_RDONLY, 0);
        if (fd < 0 || sio_pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
            report(in, INSP_PROBLEM, fs[i].path, 0, "cannot read the header");
            if (fd >= 0)
                sio_close(fd);
            bad = 1;
            continue;
        }
        sio_close(fd);
        bts = (int64_t)be_get64(h);
        ets = (int64_t)be_get64(h + 8);
        bph = be_get64(h + 16);
        eph = be_get64(h + 24);
        slots = (int32_t)be_get32(h + 32);
        count = (int32_t)be_get32(h + 36);
        if (count <= 0 || (uint32_t)count > index_num) {
            report(in, INSP_PROBLEM, fs[i].path, 36,
                   "header indexCount %" PRId32 " is outside [1, %" PRIu32 "]", count, index_num);
            bad = 1;
        }
        if (slots < 0 || (uint32_t)slots > slot_num) {
            report(in, INSP_PROBLEM, fs[i].path, 32,
                   "header hashSlotCount %" PRId32 " is outside [0, %" PRIu32 "]", slots, slot_num);
            bad = 1;
        }
        if (count > 2 && (bts > ets || bph > eph)) {
            report(in, INSP_PROBLEM, fs[i].path, 0,
                   "header begins after it ends (timestamps %" PRId64 " > %" PRId64
                   " or offsets %" PRIu64 " > %" PRIu64 ")",
                   bts, ets, bph, eph);
            bad = 1;
        }
    }
    if (bad) {
        report(in, INSP_NOTE, dir, 0,
               "entries not read: opening the index would delete the files named above");
        goto out;
    }

    rc = ix_open(dir, slot_num, index_num, &ix, &dropped);
    if (rc != 0) {
        report(in, INSP_PROBLEM, dir, 0, "cannot open the index: %s", spk_strerror(rc));
        rc = 0;
        goto out;
    }
    if (dropped > 0)
        report(in, INSP_PROBLEM, dir, 0, "opening the index deleted %u file(s) it found corrupt",
               dropped);
    if (ix_check(ix, msg, sizeof(msg)) != 0)
        report_ix_check(in, msg);

    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    ctx->in = in;
    ctx->ops = ops;
    ctx->arg = arg;
    ctx->slot_num = slot_num;
    rc = ix_walk(ix, ix_file_cb, ix_entry_cb, ctx);

out:
    free(ctx);
    if (ix != NULL)
        ix_close(ix);
    mfiles_free(fs, n);
    return rc;
}

void
insp_index_stats(const struct insp *in, struct insp_index_stats *st)
{
    *st = in->in_is;
}

/* Checkpoint --------------------------------------------------------- */

void
insp_check_checkpoint(struct insp *in)
{
    char path[PATH_MAX + 16];
    const struct ckpt *c = &in->in_ckpt;
    uint64_t end = in->in_ls.log_end;

    if (!in->in_has_ckpt || !in->in_walked || !c->ext_valid)
        return;
    snprintf(path, sizeof(path), "%s/checkpoint", in->in_root);
    if (c->clog_durable > end)
        report(in, INSP_PROBLEM, path, 48,
               "clog_durable %" PRIu64 " lies beyond the end of the log data at %" PRIu64
               ": bytes the checkpoint calls durable are missing",
               c->clog_durable, end);
    else if (c->clog_durable >= clog_min(in) && !in->in_ckpt_boundary)
        report(in, INSP_PROBLEM, path, 48,
               "clog_durable %" PRIu64 " is not a record boundary of the log", c->clog_durable);
    if (c->cq_durable > end)
        report(in, INSP_PROBLEM, path, 56,
               "cq_durable %" PRIu64 " lies beyond the end of the log data at %" PRIu64,
               c->cq_durable, end);
    if (c->index_durable > end)
        report(in, INSP_PROBLEM, path, 64,
               "index_durable %" PRIu64 " lies beyond the end of the log data at %" PRIu64,
               c->index_durable, end);
}
