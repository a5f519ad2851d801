/*
 * fuzz_segment.c - libFuzzer target for the store's recovery over an
 * arbitrary CommitLog image (RELIABILITY.md T7 `store_record_scan`): the
 * disk format treated as untrusted input, as LMDB's fuzzing lesson asks.
 *
 * Each input becomes a store directory (under $FUZZ_DIR, else /dev/shm
 * when writable, else $TMPDIR or /tmp): one or two CommitLog segments of
 * SEG bytes that start with the input's bytes and are zero after them,
 * optionally a checkpoint and an abort marker. Input layout:
 *
 *   flags   bit 0 abort marker present (abnormal recovery)
 *           bit 1 a checkpoint follows (CKPT_EXT_END bytes)
 *           bit 2 two segments: a 3-byte length of the first one's bytes
 *                 follows (the second gets the rest)
 *           bit 3 checkCRCOnRecover off
 *           bit 4 CommitLog written with pwrite (else through the mapping)
 *           bit 5 no key index
 *           bit 6 seal the image: every structurally whole record gets its
 *                 position as PHYSICALOFFSET and correct CRCs, so that
 *                 records with hostile contents but valid checksums reach
 *                 dispatch (queue offsets, queue ids, topics, properties)
 *           bit 7 seal the checkpoint's Sprocket extension (magic + CRC),
 *                 so that its offsets are believed
 *   then the checkpoint bytes, the split length, and the segment bytes.
 *
 * Then, in order:
 *   1. the offline checker (store/inspect.h) walks records, units and the
 *      checkpoint: it may report anything but must not crash or leak;
 *   2. store_open must either succeed or refuse with SPK_ECORRUPT and a
 *      reason (R7), or run out of a resource (-EMFILE, -ENOSPC, -ENOMEM):
 *      every file is well formed at the file-system level, so nothing
 *      else is acceptable. The process may open 256 files: a record with
 *      a valid CRC whose queue offset lies far beyond its queue's end
 *      makes the ConsumeQueue create every segment file in between
 *      (corpus/segment/emfile_*, a finding reported with this target),
 *      which this limit turns into a quick -EMFILE;
 *   3. when it opened: the recovered end lies inside the files; every
 *      record from the log's start to that end reads back through
 *      store_get_by_offset, or is refused as corrupt exactly when it
 *      fails its CRCs (below the checkpoint recovery does not read the
 *      log, so damage there is the read path's to catch, R6); every message a ConsumeQueue hands out is a valid record
 *      of that topic and queue whose QUEUEOFFSET is the offset asked for
 *      (R8); store_close returns 0;
 *   4. a second open without any change succeeds and ends at the same
 *      offset (recovery is idempotent), and closes with 0.
 * A violation prints the step and aborts, so libFuzzer keeps the input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/crc.h"
#include "common/errors.h"
#include "store/checkpoint.h"
#include "store/inspect.h"
#include "store/record.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEG (72 * 1024) /* the smallest segment maxMessageSize 4096 allows */
#define MAXMSG 4096

static char root[512];
static char store_dir[600];
static uint8_t segbuf[SEG];
static struct store_get_result gres;

static void
fail(const char *what, int rc)
{
    fprintf(stderr, "fuzz_segment: %s (%d: %s)\n", what, rc, spk_strerror(rc));
    abort();
}

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
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rmrf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static void
cleanup(void)
{
    rmrf(root);
}

static void
write_file(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    if (fd < 0 || (len > 0 && write(fd, buf, len) != (ssize_t)len))
        fail("cannot write a file of the image", -errno);
    close(fd);
}

/* Removes the work directories of earlier processes that died without
 * their atexit() clean-up (an abort() for libFuzzer, a killed merge job). */
static void
remove_stale(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *e;
    size_t plen = strlen("fuzz_segment.");

    while (d != NULL && (e = readdir(d)) != NULL) {
        char p[1024], *end;
        if (strncmp(e->d_name, "fuzz_segment.", plen) != 0)
            continue;
        long pid = strtol(e->d_name + plen, &end, 10);
        if (*end != '\0' || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* not ours, or its process still runs */
        snprintf(p, sizeof(p), "%s/%s", base, e->d_name);
        rmrf(p);
    }
    if (d != NULL)
        closedir(d);
}

static void
setup_once(void)
{
    const char *base = getenv("FUZZ_DIR");

    if (root[0] != '\0')
        return;
    if (base == NULL)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (base == NULL)
        base = "/tmp";
    remove_stale(base);
    snprintf(root, sizeof(root), "%s/fuzz_segment.%d", base, (int)getpid());
    rmrf(root);
    if (mkdir(root, 0755) != 0)
        fail("cannot create the work directory", -errno);
    snprintf(store_dir, sizeof(store_dir), "%s/store", root);
    struct rlimit rl = {256, 256};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 256) {
        rl.rlim_cur = 256;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    atexit(cleanup);
}

/* Gives every structurally whole record its position and right CRCs. */
static void
seal(uint8_t *seg, uint64_t base)
{
    size_t pos = 0;

    while (pos + 8 <= SEG) {
        struct rec_view v;
        const char *why;
        int n = rec_parse(seg + pos, SEG - pos, REC_ANY_POS, REC_CHECK_NONE, &v, &why);
        if (n <= 0)
            break;
        be_put64(seg + pos + 28, base + pos);
        be_put32(seg + pos + 8, spk_crc32(v.body, v.body_len) & SPK_CRC_MASK);
        if (v.has_crc_prop) {
            uint32_t crc = spk_crc32_masked(seg + pos, (size_t)n - REC_CRC_PROP_LEN);
            uint8_t *d = seg + pos + (size_t)n - 11;
            for (int i = 0; i < 10; i++, crc /= 10)
                d[i] = (uint8_t)('0' + crc % 10);
        }
        pos += (size_t)n;
    }
}

static void
config(struct store_config *cfg, struct cfg_target *t, uint8_t flags)
{
    size_t n;
    char err[CFG_ERR_MAX];

    memset(cfg, 0, sizeof(*cfg));
    t->defs = store_config_table(&n);
    t->n = n;
    t->obj = cfg;
    if (cfg_set_defaults(t) != 0 ||
        cfg_set(t, 1, "storePathRootDir", store_dir, err, sizeof(err)) != 0)
        fail("configuration", 0);
    cfg->flushDiskType = STORE_ASYNC_FLUSH;
    cfg->mappedFileSizeCommitLog = SEG;
    cfg->mappedFileSizeConsumeQueue = 100 * 20;
    cfg->maxMessageSize = MAXMSG;
    cfg->maxHashSlotNum = 64;
    cfg->maxIndexNum = 256;
    cfg->checkCRCOnRecover = !(flags & 8);
    cfg->writeWithoutMmap = flags & 16 ? STORE_WRITE_PWRITE : STORE_WRITE_MMAP;
    cfg->messageIndexEnable = !(flags & 32);
    cfg->warmMapedFileEnable = 0;
    cfg->fileReservedTime = 100000;
    cfg->cleanFileForciblyEnable = 0;
    cfg->diskMaxUsedSpaceRatio = 95;
    cfg->diskSpaceCleanForciblyRatio = 85;
    cfg->diskSpaceWarningLevelRatio = 90;
    cfg->maxTransferCountOnMessageInMemory = 64;
    cfg->maxTransferBytesOnMessageInMemory = 1 << 20;
    cfg->flushIntervalConsumeQueue = 60000; /* no background checkpoints */
    cfg->cleanResourceInterval = 3600000;
}

static void
ignore_finding(void *arg, const struct insp_finding *f)
{
    (void)arg;
    (void)f;
}

/* Step 1: the offline checker over the image. */
static void
inspect(void)
{
    struct insp *in;
    char err[256];

    if (insp_open(store_dir, ignore_finding, NULL, &in, err, sizeof(err)) != 0)
        return;
    (void)insp_walk_records(in, NULL, NULL);
    (void)insp_walk_units(in, NULL, NULL);
    insp_check_checkpoint(in);
    insp_close(in);
}

struct qcheck {
    struct store *s;
    int bad;
};

/* Step 3, R8: what each queue hands out is a record of that queue at the
 * queue offset asked for. */
static void
check_queue(void *arg, const char *topic, int32_t qid, uint64_t min, uint64_t max)
{
    struct qcheck *q = arg;
    uint64_t off = min;
    int rounds = 0;

    while (off < max && rounds++ < 64 && !q->bad) {
        if (store_get(q->s, topic, qid, off, 64, 0, NULL, &gres) != 0) {
            q->bad = 1;
            break;
        }
        for (size_t i = 0; i < gres.count; i++) {
            const struct store_msg_view *m = &gres.msgs[i];
            struct rec_view v;
            const char *why;
            if (rec_parse(m->data, m->len, m->phys_off, REC_CHECK_CRC, &v, &why) != (int)m->len ||
                v.queue_id != qid || v.topic_len != strlen(topic) ||
                memcmp(v.topic, topic, v.topic_len) != 0 || v.queue_off != m->queue_off)
                q->bad = 2;
        }
        uint64_t next = gres.next_begin_offset;
        store_get_release(&gres);
        if (next <= off)
            break;
        off = next;
    }
}

/* Reads <len> bytes of the log at <phys> from the segment file. */
static size_t
read_log(uint64_t phys, uint8_t *buf, size_t len)
{
    char path[1024];
    uint64_t base = phys - phys % SEG;
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/commitlog/%020" PRIu64, store_dir, base);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    if (len > SEG - (phys - base))
        len = (size_t)(SEG - (phys - base));
    n = pread(fd, buf, len, (off_t)(phys - base));
    close(fd);
    return n < 0 ? 0 : (size_t)n;
}

/*
 * Step 3: the recovered log reads back to its end. Below the checkpoint's
 * durable offset recovery trusts the log without reading it (RocketMQ's
 * rule), so a record damaged there may survive recovery; the read path
 * must then refuse it (R6), and must refuse exactly the records that fail
 * their CRCs: each refusal is checked against an independent parse of the
 * file's bytes, which also gives the length to step over it.
 */
static void
check_open_store(struct store *s, const struct store_open_info *info, uint64_t files_end)
{
    uint64_t phys = info->clog_min, end = info->clog_max;

    if (end > files_end || end < info->clog_min)
        fail("the recovered end lies outside the files", 0);
    if (store_written(s) != end)
        fail("written differs from the recovered end", 0);
    while (phys < end) {
        struct store_msg_view v;
        void *pin;
        int rc = store_get_by_offset(s, phys, &v, &pin);
        if (rc == 0) {
            phys += v.len;
            store_view_release(pin);
            continue;
        }
        struct rec_view rv;
        const char *why;
        size_t got = read_log(phys, segbuf, SEG);
        int blank = got >= 8 && be_get32(segbuf + 4) == REC_MAGIC_BLANK;
        if (rc == SPK_ENOTFOUND && blank) {
            /* A BLANK filler: the rest of the segment. One in the middle
             * of the last segment's data can only lie below the
             * checkpoint, which recovery does not read: the read path
             * refuses it (no record there), and the walk ends. Dispatch
             * skips the rest of that segment silently (corpus/segment/
             * blank_below_checkpoint, reported with this target). */
            uint64_t next = phys - phys % SEG + SEG;
            if (next > end && end % SEG != 0)
                return;
            phys = next;
            continue;
        }
        if (rc != SPK_ECORRUPT) {
            fprintf(stderr, "fuzz_segment: log [%" PRIu64 ", %" PRIu64 "), offset %" PRIu64 "\n",
                    info->clog_min, end, phys);
            fail("a read below the recovered end failed other than as corrupt", rc);
        }
        if (rec_parse(segbuf, got, phys, REC_CHECK_CRC_PROP, &rv, &why) > 0) {
            fprintf(stderr, "fuzz_segment: offset %" PRIu64 "\n", phys);
            fail("the read path refused a record that passes every check", rc);
        }
        int n = rec_parse(segbuf, got, REC_ANY_POS, REC_CHECK_NONE, &rv, &why);
        if (n <= 0)
            return; /* nothing to step over: the walk ends at the damage */
        phys += (uint64_t)n;
    }
    if (phys != end)
        fail("the record walk does not land on the recovered end", 0);

}

/* Step 3, R8: every queue hands out only its own records. */
static void
check_queues(struct store *s)
{
    struct qcheck q = {s, 0};

    store_for_each_queue(s, check_queue, &q);
    if (q.bad)
        fail("a queue handed out a record that is not its own", q.bad);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct store_config cfg;
    struct cfg_target t;
    struct store *s = NULL;
    struct store_open_info info;
    char path[1024], err[1024];
    uint8_t flags;
    size_t at = 1, len0;
    int nsegs, rc;

    if (size < 1)
        return 0;
    setup_once();
    flags = data[0];
    rmrf(store_dir);
    snprintf(path, sizeof(path), "%s/commitlog", store_dir);
    if (mkdir(store_dir, 0755) != 0 || mkdir(path, 0755) != 0)
        fail("cannot create the store directory", -errno);

    if (flags & 2) {
        uint8_t ck[CKPT_FILE_SIZE];
        size_t n = size - at < CKPT_EXT_END ? size - at : CKPT_EXT_END;
        memset(ck, 0, sizeof(ck));
        memcpy(ck, data + at, n);
        at += n;
        if (flags & 128) {
            struct ckpt c;
            ckpt_decode(ck, &c);
            c.ext_valid = 1;
            c.clog_durable = be_get64(ck + 48);
            c.cq_durable = be_get64(ck + 56);
            c.index_durable = be_get64(ck + 64);
            c.crc_prop_from = be_get64(ck + 72);
            ckpt_encode(&c, ck);
        }
        snprintf(path, sizeof(path), "%s/checkpoint", store_dir);
        write_file(path, ck, sizeof(ck));
    }
    nsegs = flags & 4 ? 2 : 1;
    len0 = size - at;
    if (nsegs == 2) {
        size_t want = at + 3 <= size ? (size_t)data[at] << 16 | be_get16(data + at + 1) : 0;
        at = at + 3 <= size ? at + 3 : size;
        len0 = want < size - at ? want : size - at;
    }
    for (int i = 0; i < nsegs; i++) {
        size_t n = i == 0 ? len0 : size - at;
        if (n > SEG)
            n = SEG;
        memset(segbuf, 0, SEG);
        memcpy(segbuf, data + at, n);
        at += n;
        if (flags & 64)
            seal(segbuf, (uint64_t)i * SEG);
        snprintf(path, sizeof(path), "%s/commitlog/%020" PRIu64, store_dir, (uint64_t)i * SEG);
        write_file(path, segbuf, SEG);
    }
    if (flags & 1) {
        snprintf(path, sizeof(path), "%s/abort", store_dir);
        write_file(path, "1", 1);
    }

    inspect();

    config(&cfg, &t, flags);
    rc = store_open(&cfg, &s, &info, err, sizeof(err));
    if (rc == SPK_ECORRUPT) {
        if (err[0] == '\0')
            fail("refused to start without a reason", rc);
        goto out;
    }
    if (rc == -EMFILE || rc == -ENOSPC || rc == -ENOMEM)
        goto out;
    if (rc != 0) {
        fprintf(stderr, "fuzz_segment: store_open: %s\n", err);
        fail("store_open failed with an error other than SPK_ECORRUPT", rc);
    }
    check_open_store(s, &info, (uint64_t)nsegs * SEG);
    check_queues(s);
    uint64_t end = info.clog_max;
    rc = store_close(s);
    if (rc != 0)
        fail("store_close after recovery", rc);

    /* Step 4: recovery is idempotent. */
    rc = store_open(&cfg, &s, &info, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "fuzz_segment: second store_open: %s\n", err);
        fail("a recovered, cleanly closed store does not open again", rc);
    }
    if (info.clog_max != end)
        fail("the second recovery ended elsewhere", 0);
    rc = store_close(s);
    if (rc != 0)
        fail("store_close after the second open", rc);
out:
    cfg_free(&t);
    return 0;
}
