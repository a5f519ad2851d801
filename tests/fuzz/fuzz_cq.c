/*
 * fuzz_cq.c - libFuzzer target for ConsumeQueue validation (RELIABILITY.md
 * T7 `cq_entry_validate`, requirement R8): the ConsumeQueue is derived
 * data, so whatever its files hold, the store must open and every queue
 * must hand out exactly the messages the intact CommitLog holds.
 *
 * Once per process a golden store is written (under $FUZZ_DIR, else
 * /dev/shm when writable, else $TMPDIR or /tmp): three queues of
 * interleaved messages, ConsumeQueue files of 10 units so that queues span
 * several files, closed cleanly. Each input is applied to a fresh copy:
 *
 *   flags   bit 0 abort marker present (recovery after a crash)
 *           bit 1 no checkpoint file
 *           bit 2 CommitLog written with pwrite (else through the mapping)
 *   ops     until the input ends, each op byte's low 3 bits choose:
 *           0 write: file index, 2-byte offset, length byte, bytes
 *           1 truncate: file index, 2-byte length
 *           2 delete: file index
 *           3 unit: file index, unit index byte, then 20 bytes of unit
 *           4 append: file index, length byte, bytes
 *           5 stray file: file index (its queue), 2-byte unit number, a
 *             length byte and bytes, written as a segment file named for
 *             that unit's position in the queue
 *           6 new queue: topic index, queue id byte, length byte, bytes
 *             (units pointing anywhere, for a queue the log never had)
 *           7 unit pointing at another golden record: file index, unit
 *             index byte, record index byte (the most plausible damage:
 *             right size and position, wrong queue or queue offset)
 *   "file index" picks one of the golden ConsumeQueue files (modulo).
 *
 * Checked afterwards:
 *   - store_open succeeds (the log is intact: a queue's damage is repaired,
 *     never a reason to refuse to start);
 *   - every golden message is handed out by its queue at its queue offset
 *     (nothing acknowledged goes missing);
 *   - everything any queue hands out is a valid record of that topic and
 *     queue whose QUEUEOFFSET is the offset it was handed out at (no
 *     message of another queue, no stale or shifted unit);
 *   - store_close returns 0.
 * The first and the last are always enforced. The two R8 checks in the
 * middle abort only with FUZZ_CQ_STRICT=1 in the environment: the store
 * trusts a unit between a queue's first and last without comparing it
 * with its record, so today a unit that points at another valid record
 * hands out the wrong message (corpus/cq/r8_* reproduce it). Without the
 * variable a violation is printed once per process and fuzzing goes on,
 * so that the campaign can still look for crashes, leaks and refusals to
 * open; the corpus replays clean either way except for those inputs.
 * The offline checker (store/inspect.h) also walks the damaged queues
 * first, and must not crash. A violation prints the step and aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/errors.h"
#include "store/inspect.h"
#include "store/record.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEG (72 * 1024)
#define CQ_UNITS 10
#define NMSG 45
#define MAXFILES 64

static const char *const topics[] = {"TopicA", "TopicB", "TopicC"};

struct gmsg {
    const char *topic;
    int32_t qid;
    uint64_t qoff, phys;
    uint32_t size;
};

static char root[512], gold[600], work[600];
static struct gmsg g[NMSG];
static char *files[MAXFILES]; /* golden ConsumeQueue files, relative to the store */
static size_t nfiles;
static struct store_get_result gres;
static int strict;      /* FUZZ_CQ_STRICT: R8 violations abort */
static int r8_reported; /* without it, one line per process */

static void
fail(const char *what, int rc)
{
    fprintf(stderr, "fuzz_cq: %s (%d: %s)\n", what, rc, spk_strerror(rc));
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

/* Copies the tree <src> to <dst>; <rel> collects regular files under
 * consumequeue/ (golden pass only). */
static void
copytree(const char *src, const char *dst, const char *rel, int collect)
{
    DIR *d = opendir(src);
    struct dirent *e;

    if (d == NULL || mkdir(dst, 0755) != 0)
        fail("cannot copy the golden store", -errno);
    while ((e = readdir(d)) != NULL) {
        char s[1024], t[1024], r[1024];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(s, sizeof(s), "%s/%s", src, e->d_name);
        snprintf(t, sizeof(t), "%s/%s", dst, e->d_name);
        snprintf(r, sizeof(r), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (lstat(s, &st) != 0)
            fail("cannot stat a golden file", -errno);
        if (S_ISDIR(st.st_mode)) {
            copytree(s, t, r, collect);
            continue;
        }
        if (strcmp(e->d_name, "lock") == 0)
            continue;
        int in = open(s, O_RDONLY), out = open(t, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        char buf[16384];
        ssize_t n;
        if (in < 0 || out < 0)
            fail("cannot copy a golden file", -errno);
        while ((n = read(in, buf, sizeof(buf))) > 0)
            if (write(out, buf, (size_t)n) != n)
                fail("cannot copy a golden file", -errno);
        close(in);
        close(out);
        if (collect && strncmp(r, "consumequeue/", 13) == 0 && nfiles < MAXFILES)
            files[nfiles++] = strdup(r);
    }
    closedir(d);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
config(struct store_config *cfg, struct cfg_target *t, const char *dir, int pwrite_mode)
{
    size_t n;
    char err[CFG_ERR_MAX];

    memset(cfg, 0, sizeof(*cfg));
    t->defs = store_config_table(&n);
    t->n = n;
    t->obj = cfg;
    if (cfg_set_defaults(t) != 0 || cfg_set(t, 1, "storePathRootDir", dir, err, sizeof(err)) != 0)
        fail("configuration", 0);
    cfg->flushDiskType = STORE_ASYNC_FLUSH;
    cfg->mappedFileSizeCommitLog = SEG;
    cfg->mappedFileSizeConsumeQueue = CQ_UNITS * 20;
    cfg->maxMessageSize = 4096;
    cfg->maxHashSlotNum = 64;
    cfg->maxIndexNum = 256;
    cfg->writeWithoutMmap = pwrite_mode ? STORE_WRITE_PWRITE : STORE_WRITE_MMAP;
    cfg->warmMapedFileEnable = 0;
    cfg->fileReservedTime = 100000;
    cfg->cleanFileForciblyEnable = 0;
    cfg->diskMaxUsedSpaceRatio = 95;
    cfg->diskSpaceCleanForciblyRatio = 85;
    cfg->diskSpaceWarningLevelRatio = 90;
    cfg->maxTransferCountOnMessageInMemory = 64;
    cfg->maxTransferBytesOnMessageInMemory = 1 << 20;
    cfg->flushIntervalConsumeQueue = 60000;
    cfg->cleanResourceInterval = 3600000;
}

static void
cleanup(void)
{
    rmrf(root);
}

/* The golden store: NMSG messages over three queues, closed cleanly. */
/* Removes the work directories of earlier processes that died without
 * their atexit() clean-up (an abort() for libFuzzer, a killed merge job). */
static void
remove_stale(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *e;
    size_t plen = strlen("fuzz_cq.");

    while (d != NULL && (e = readdir(d)) != NULL) {
        char p[1024], *end;
        if (strncmp(e->d_name, "fuzz_cq.", plen) != 0)
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
    struct store_config cfg;
    struct cfg_target t;
    struct store *s;
    struct store_open_info info;
    char err[512];
    uint64_t next[3] = {0, 0, 0};

    if (root[0] != '\0')
        return;
    if (base == NULL)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (base == NULL)
        base = "/tmp";
    remove_stale(base);
    snprintf(root, sizeof(root), "%s/fuzz_cq.%d", base, (int)getpid());
    rmrf(root);
    if (mkdir(root, 0755) != 0)
        fail("cannot create the work directory", -errno);
    atexit(cleanup);
    strict = getenv("FUZZ_CQ_STRICT") != NULL && strcmp(getenv("FUZZ_CQ_STRICT"), "0") != 0;
    snprintf(gold, sizeof(gold), "%s/gold", root);
    snprintf(work, sizeof(work), "%s/work", root);
    config(&cfg, &t, gold, 0);
    if (store_open(&cfg, &s, &info, err, sizeof(err)) != 0)
        fail("cannot create the golden store", 0);
    for (int i = 0; i < NMSG; i++) {
        /* Queues of 25, 12 and 8 messages, interleaved. */
        int q = i % 15 < 8 ? 0 : i % 15 < 12 ? 1 : 2;
        char body[64], props[64];
        struct rec_msg m;
        struct store_put_result r;
        memset(&m, 0, sizeof(m));
        snprintf(body, sizeof(body), "message %d of queue %d", i, q);
        snprintf(props, sizeof(props), "TAGS\001t%d\002KEYS\001k%d\002", i % 3, i);
        m.topic = topics[q == 2 ? 1 : 0];
        m.topic_len = strlen(m.topic);
        m.queue_id = q == 1 ? 1 : 0;
        m.body = body;
        m.body_len = strlen(body);
        m.props = props;
        m.props_len = strlen(props);
        m.born_host_len = m.store_host_len = 4;
        m.born_host[0] = m.store_host[0] = 127;
        m.born_host[3] = m.store_host[3] = 1;
        if (store_put(s, &m, &r) != 0)
            fail("golden put", 0);
        g[i] = (struct gmsg){m.topic, m.queue_id, r.queue_off, r.phys_off, r.bytes};
        if (r.queue_off != next[q]++)
            fail("golden queue offsets are not dense", 0);
    }
    if (store_close(s) != 0)
        fail("golden close", 0);
    cfg_free(&t);
    /* List the ConsumeQueue files by copying once. */
    copytree(gold, work, "", 1);
    rmrf(work);
    qsort(files, nfiles, sizeof(files[0]), cmp_str);
    if (nfiles == 0)
        fail("the golden store has no ConsumeQueue file", 0);
}

/* A cursor over the input: reads past the end return zeros. */
struct in {
    const uint8_t *p;
    size_t n, at;
};

static uint8_t
get8(struct in *in)
{
    return in->at < in->n ? in->p[in->at++] : 0;
}

static unsigned
get16(struct in *in)
{
    unsigned hi = get8(in);
    return hi << 8 | get8(in);
}

static const uint8_t *
take(struct in *in, size_t want, size_t *got)
{
    size_t left = in->n - in->at;
    const uint8_t *p = in->p + in->at;

    *got = want < left ? want : left;
    in->at += *got;
    return p;
}

static void
pwrite_file(const char *path, const void *buf, size_t len, off_t off, int trunc)
{
    int fd = open(path, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0644);

    if (fd < 0)
        return; /* deleted by an earlier op */
    if (len > 0 && pwrite(fd, buf, len, off) != (ssize_t)len)
        fail("cannot damage a file", -errno);
    close(fd);
}

static void
file_path(struct in *in, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", work, files[get8(in) % nfiles]);
}

/* Applies one op of the input to the copy. */
static void
apply_op(struct in *in)
{
    uint8_t op = get8(in);
    char path[1024];
    size_t got;
    const uint8_t *p;
    uint8_t unit[20];

    switch (op & 7) {
    case 0: {
        file_path(in, path, sizeof(path));
        off_t off = (off_t)(get16(in) % (CQ_UNITS * 20 + 20));
        p = take(in, get8(in), &got);
        pwrite_file(path, p, got, off, 0);
        break;
    }
    case 1:
        file_path(in, path, sizeof(path));
        if (truncate(path, (off_t)(get16(in) % (CQ_UNITS * 20 + 40))) != 0 && errno != ENOENT)
            fail("cannot truncate a file", -errno);
        break;
    case 2:
        file_path(in, path, sizeof(path));
        unlink(path);
        break;
    case 3: {
        file_path(in, path, sizeof(path));
        off_t off = (off_t)(get8(in) % CQ_UNITS) * 20;
        p = take(in, 20, &got);
        pwrite_file(path, p, got, off, 0);
        break;
    }
    case 4: {
        struct stat st;
        file_path(in, path, sizeof(path));
        p = take(in, get8(in), &got);
        if (stat(path, &st) == 0)
            pwrite_file(path, p, got, st.st_size, 0);
        break;
    }
    case 5: {
        file_path(in, path, sizeof(path));
        char *slash = strrchr(path, '/');
        unsigned u = get16(in);
        snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path), "%020u",
                 u / CQ_UNITS * CQ_UNITS * 20);
        p = take(in, get8(in), &got);
        pwrite_file(path, p, got, 0, 1);
        break;
    }
    case 6: {
        const char *topic = topics[get8(in) % 3];
        unsigned qid = get8(in) % 4;
        snprintf(path, sizeof(path), "%s/consumequeue/%s", work, topic);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/consumequeue/%s/%u", work, topic, qid);
        mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/consumequeue/%s/%u/%020u", work, topic, qid, 0u);
        p = take(in, get8(in), &got);
        pwrite_file(path, p, got, 0, 0);
        break;
    }
    default: {
        file_path(in, path, sizeof(path));
        off_t off = (off_t)(get8(in) % CQ_UNITS) * 20;
        const struct gmsg *m = &g[get8(in) % NMSG];
        be_put64(unit, m->phys);
        be_put32(unit + 8, m->size);
        be_put64(unit + 12, 0);
        pwrite_file(path, unit, sizeof(unit), off, 0);
        break;
    }
    }
}

/* An R8 violation: fatal with FUZZ_CQ_STRICT, else reported once. */
static void
r8_violation(const char *detail, const char *what)
{
    if (strict) {
        fprintf(stderr, "fuzz_cq: %s\n", detail);
        fail(what, 0);
    }
    if (!r8_reported++)
        fprintf(stderr, "fuzz_cq: R8 (not fatal without FUZZ_CQ_STRICT=1): %s: %s\n", what,
                detail);
}

static void
ignore_finding(void *arg, const struct insp_finding *f)
{
    (void)arg;
    (void)f;
}

struct qcheck {
    struct store *s;
    int bad;
    char what[256];
};

/* Everything a queue hands out is its own record at the offset asked. */
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
        for (size_t i = 0; i < gres.count && !q->bad; i++) {
            const struct store_msg_view *m = &gres.msgs[i];
            struct rec_view v;
            const char *why;
            if (rec_parse(m->data, m->len, m->phys_off, REC_CHECK_CRC, &v, &why) != (int)m->len ||
                v.queue_id != qid || v.topic_len != strlen(topic) ||
                memcmp(v.topic, topic, v.topic_len) != 0 || v.queue_off != m->queue_off) {
                q->bad = 2;
                snprintf(q->what, sizeof(q->what),
                         "%s/%d offset %" PRIu64 " handed out the record at %" PRIu64
                         " (%.*s/%d offset %" PRIu64 ")",
                         topic, qid, m->queue_off, m->phys_off, (int)v.topic_len, v.topic,
                         v.queue_id, v.queue_off);
            }
        }
        uint64_t next = gres.next_begin_offset;
        store_get_release(&gres);
        if (next <= off)
            break;
        off = next;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size, 0};
    struct store_config cfg;
    struct cfg_target t;
    struct store *s;
    struct store_open_info info;
    struct insp *ins;
    char path[1024], err[1024];
    uint8_t flags;
    int rc, ops = 0;

    setup_once();
    flags = get8(&in);
    rmrf(work);
    copytree(gold, work, "", 0);
    while (in.at < in.n && ops++ < 64)
        apply_op(&in);
    if (flags & 1) {
        snprintf(path, sizeof(path), "%s/abort", work);
        pwrite_file(path, "1", 1, 0, 1);
    }
    if (flags & 2) {
        snprintf(path, sizeof(path), "%s/checkpoint", work);
        unlink(path);
    }

    if (insp_open(work, ignore_finding, NULL, &ins, err, sizeof(err)) == 0) {
        (void)insp_walk_records(ins, NULL, NULL);
        (void)insp_walk_units(ins, NULL, NULL);
        insp_close(ins);
    }

    config(&cfg, &t, work, flags & 4);
    rc = store_open(&cfg, &s, &info, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "fuzz_cq: store_open: %s\n", err);
        fail("damaged ConsumeQueue files stopped the store from opening", rc);
    }
    for (int i = 0; i < NMSG; i++) {
        rc = store_get(s, g[i].topic, g[i].qid, g[i].qoff, 1, 0, NULL, &gres);
        if (rc != 0)
            fail("store_get", rc);
        if (gres.count < 1 || gres.msgs[0].phys_off != g[i].phys ||
            gres.msgs[0].queue_off != g[i].qoff) {
            char d[256];
            snprintf(d, sizeof(d),
                     "%s/%d offset %" PRIu64 ": want the record at %" PRIu64
                     ", got %s, %zu message(s), first at %" PRIu64,
                     g[i].topic, g[i].qid, g[i].qoff, g[i].phys, store_get_status_name(gres.status),
                     gres.count, gres.count ? gres.msgs[0].phys_off : 0);
            store_get_release(&gres);
            r8_violation(d, "a message of the intact log is not handed out at its queue offset");
            break;
        }
        store_get_release(&gres);
    }
    struct qcheck q = {s, 0, ""};
    store_for_each_queue(s, check_queue, &q);
    if (q.bad == 1)
        fail("store_get failed", 0);
    if (q.bad)
        r8_violation(q.what, "a queue handed out a record that is not its own");
    rc = store_close(s);
    if (rc != 0)
        fail("store_close", rc);
    cfg_free(&t);
    return 0;
}
