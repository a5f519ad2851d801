/*
 * powercut.c - simulated power loss at the store level (RELIABILITY.md T2),
 * driven by tests/reliability/t2_powercut.sh.
 *
 *   powercut -d DIR [-n CUTS] [-s SEED] [-f sync|async] [-w mmap|pwrite]
 *            [-m strict|ordered|mixed] [-b random|ordered] [-k MS] [-r CUTS_PER_STORE] [-v]
 *   powercut -d DIR -R CASE_DIR      replay a kept failing cut
 *
 * Each cut:
 *   1. A child process turns on the storeio power-cut journal
 *      (sio_crashsim_start: the durable image of every store file, kept
 *      on disk beside the store), opens the store (recovering from the
 *      previous cut) and appends messages from two threads to 3 topics x 4
 *      queues. Bodies carry their id and a CRC; sizes are drawn so that
 *      records straddle 512 B and 4 KiB boundaries and roll segments over.
 *      Through a pipe it reports every acknowledged put: under SYNC_FLUSH
 *      only after store_put_sync returned 0 (durable), under ASYNC_FLUSH
 *      when store_put returned, together with every durable watermark it
 *      saw the flush thread complete (store_durable).
 *   2. The parent SIGKILLs it at a random moment: after a random number of
 *      acknowledgements, or a random time after the fork (which also lands
 *      inside recovery and segment creation).
 *   3. The parent rebuilds the store as a disk would hold it after a power
 *      cut (rebuild()): names and sizes not covered by a directory or file
 *      sync may or may not have happened; bytes covered by a completed sync
 *      keep their content; every other 4 KiB page that differs from the
 *      durable image is persisted (45%), lost (45%), torn at 512-byte
 *      sectors (8%) or garbage (2%).
 *   4. It opens the store (recovery), reads every queue from offset 0 and
 *      checks (verify()):
 *        - the store opens: all damage lies above the durable point, so a
 *          refusal (R7) would be a bug here, with one exception: garbage
 *          (random bytes) in a CommitLog page being written, with intact
 *          records behind it, cannot be told from a flipped bit, and the
 *          store refuses to start; such a refusal, when the damage it
 *          names overlaps a page this cut filled with garbage, is counted
 *          apart ("refusals after garbage"), not as a violation;
 *        - every record read parses with its CRCs, its body is intact, it
 *          sits in the queue its id names, at a dense queue offset, and no
 *          id is stored twice;
 *        - SYNC_FLUSH: every acknowledged message is present at the queue
 *          offset its put returned; ASYNC_FLUSH: the same for every one
 *          whose end lies below the last watermark seen, and losses are a
 *          suffix of each queue (an offset is never reused by another
 *          message);
 *        - everything read after an earlier cut is still there;
 *        - after a clean close, `sprocket store check` (inspect.h: records
 *          and queue units) finds no problem.
 *      Then it closes the store cleanly; the next cut continues on it
 *      until CUTS_PER_STORE cuts (random 1..N), then a new store starts.
 *
 * Metadata models (-m): "strict" (POSIX: a name is durable only after its
 * directory is synced, a size only after the file is synced, and pending
 * operations of one directory or file reach the disk as a prefix) or
 * "ordered" (a journaling file system such as ext4: metadata operations
 * reach the disk in order and any sync forces all earlier ones); "mixed"
 * (default) draws one per cut.
 *
 * Writeback models (-b): "random" (default; the fates above, drawn per
 * page: a flush in flight writes its pages in any order) or "ordered"
 * (the unsynced pages of each file reach the disk in file order: a prefix
 * persisted, one torn page, the rest lost).
 *
 * -k MS: time-based kills land 2 ms to 2+MS ms after the fork (default
 * 150); the others come after 0-399 acknowledgements.
 *
 * A cut that fails keeps its pre-cut files, the journal and the
 * expectations in DIR/fail-N, and prints the command that replays the
 * rebuild and the checks deterministically (-R).
 *
 * Output: progress lines, then "powercut: MODE: N cuts, V violations, ...".
 * Exit 0 when every check held, 1 on violations, 2 on setup errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/crc.h"
#include "common/errors.h"
#include "store/inspect.h"
#include "store/record.h"
#include "store/store.h"
#include "store/storeio.h"

#define NTOPICS 3
#define NQUEUES 4
#define NWRITERS 2
#define BODY_MAX 20000
#define PAGE 4096
#define SECTOR 512

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static uint64_t
mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

struct rng {
    uint64_t s;
};

static uint64_t
rnd(struct rng *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    return mix64(r->s);
}

/* Uniform in [0, n) (n > 0). */
static uint64_t
rnd_below(struct rng *r, uint64_t n)
{
    return n ? rnd(r) % n : 0;
}

static int64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("powercut: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int
rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        if (d == NULL)
            return -errno;
        while ((de = readdir(d)) != NULL) {
            char p[PATH_MAX];
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            rm_rf(p);
        }
        closedir(d);
        return rmdir(path) == 0 ? 0 : -errno;
    }
    return unlink(path) == 0 ? 0 : -errno;
}

/* Reads a whole file; *len gets its length. NULL (and *len 0) if absent. */
static uint8_t *
slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf;
    size_t got = 0;

    *len = 0;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        die("out of memory");
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    *len = got;
    return buf;
}

static void
spew(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t put = 0;

    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    while (put < len) {
        ssize_t n = write(fd, buf + put, len - put);
        if (n <= 0)
            die("%s: %s", path, strerror(errno));
        put += (size_t)n;
    }
    close(fd);
}

/* Copies a tree (files and directories only). */
static void
copy_tree(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *de;

    if (d == NULL)
        return;
    mkdir(to, 0755);
    while ((de = readdir(d)) != NULL) {
        char a[PATH_MAX], b[PATH_MAX];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
        if (lstat(a, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            copy_tree(a, b);
        } else if (S_ISREG(st.st_mode)) {
            size_t n;
            uint8_t *buf = slurp(a, &n);
            spew(b, buf ? buf : (const uint8_t *)"", n);
            free(buf);
        }
    }
    closedir(d);
}

/* ------------------------------------------------------------------ */
/* Messages: everything about a message follows from its id            */

static size_t
body_len(uint64_t id)
{
    uint64_t h = mix64(id ^ 0x51ull);
    uint64_t r = h % 100, x = h >> 8;

    if (r < 50)
        return 16 + (size_t)(x % 700);
    if (r < 65)
        return 400 + (size_t)(x % 200); /* records around 512 B */
    if (r < 85)
        return 3900 + (size_t)(x % 400); /* records around 4 KiB */
    return 5000 + (size_t)(x % (BODY_MAX - 5000)); /* roll segments over */
}

static void
msg_queue(uint64_t id, int *topic, int *qid)
{
    uint64_t h = mix64(id ^ 0xA5ull);
    *topic = (int)(h % NTOPICS);
    *qid = (int)((h >> 16) % NQUEUES);
}

static void
body_fill(uint64_t id, uint8_t *buf, size_t len)
{
    uint64_t x = mix64(id);

    be_put64(buf, id);
    for (size_t i = 12; i < len; i++) {
        if ((i & 7) == 4)
            x = mix64(x);
        buf[i] = (uint8_t)(x >> ((i & 7) * 8));
    }
    be_put32(buf + 8, spk_crc32(buf + 12, len - 12));
}

static int
body_ok(const uint8_t *body, size_t len, uint64_t *id)
{
    static uint8_t want[BODY_MAX];

    if (len < 16 || len > BODY_MAX)
        return 0;
    *id = be_get64(body);
    if (be_get32(body + 8) != spk_crc32(body + 12, len - 12) || len != body_len(*id))
        return 0;
    body_fill(*id, want, len);
    return memcmp(want, body, len) == 0;
}

static const char *const topics[NTOPICS] = {"PcT0", "PcT1", "PcT2"};

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

struct opts {
    char dir[PATH_MAX];
    char root[PATH_MAX + 16];   /* DIR/store */
    char shadow[PATH_MAX + 16]; /* DIR/shadow */
    long cuts;
    uint64_t seed;
    int sync;       /* SYNC_FLUSH */
    int pwrite;     /* writeWithoutMmap=true */
    int model;      /* 0 strict, 1 ordered, 2 mixed */
    int per_store;  /* cuts per store at most */
    int inorder;    /* -b ordered: unsynced pages reach the disk in file order */
    uint64_t kill_us; /* -k: time-based kills fall within this after the fork */
    int verbose;
    int64_t seg_size;
};

static int
config_init(const struct opts *o, struct store_config *cfg, struct cfg_target *t)
{
    size_t n;
    char err[CFG_ERR_MAX];

    memset(cfg, 0, sizeof(*cfg));
    t->defs = store_config_table(&n);
    t->n = n;
    t->obj = cfg;
    if (cfg_set_defaults(t) != 0 ||
        cfg_set(t, 1, "storePathRootDir", o->root, err, sizeof(err)) != 0 ||
        cfg_set(t, 1, "writeWithoutMmap", o->pwrite ? "true" : "false", err, sizeof(err)) != 0)
        return -1;
    cfg->flushDiskType = o->sync ? STORE_SYNC_FLUSH : STORE_ASYNC_FLUSH;
    cfg->mappedFileSizeCommitLog = o->seg_size;
    cfg->mappedFileSizeConsumeQueue = 300 * 20; /* queue files roll over too */
    cfg->maxMessageSize = BODY_MAX + 1024;
    cfg->maxHashSlotNum = 64; /* small index files that fill up */
    cfg->maxIndexNum = 256;
    cfg->flushIntervalCommitLog = 5;
    cfg->flushCommitLogLeastPages = 1;
    cfg->flushCommitLogThoroughInterval = 50;
    cfg->flushIntervalConsumeQueue = 10; /* queue/index flushes, checkpoints */
    cfg->syncFlushTimeout = 10000;
    cfg->maxTransferCountOnMessageInMemory = STORE_MAX_BATCH;
    cfg->maxTransferBytesOnMessageInMemory = 4 << 20;
    cfg->fileReservedTime = 100000;
    cfg->cleanFileForciblyEnable = 0;
    cfg->diskMaxUsedSpaceRatio = 95;
    cfg->diskSpaceWarningLevelRatio = 90;
    return 0;
}

/* ------------------------------------------------------------------ */
/* The writer child                                                    */

enum { REP_OPENED = 1, REP_ACK, REP_INDET, REP_WATERMARK, REP_ERROR };

struct rep {
    uint32_t type;
    int32_t code;
    uint64_t id;
    uint64_t qoff;
    uint64_t end;
};

struct child {
    struct store *s;
    int wfd;
    int sync;
    uint64_t id_base;
};

static void
report(int wfd, const struct rep *r)
{
    /* One write of less than PIPE_BUF: atomic among the threads. */
    if (write(wfd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
        _exit(5);
}

static uint64_t next_seq; /* ids handed to the writers (atomic) */

static void *
writer(void *arg)
{
    struct child *c = arg;
    static _Thread_local uint8_t body[BODY_MAX];

    for (;;) {
        struct store_put_result res;
        struct rec_msg m;
        char props[64];
        int topic, qid, rc;
        uint64_t id = c->id_base + __atomic_fetch_add(&next_seq, 1, __ATOMIC_RELAXED);
        size_t len = body_len(id);
        body_fill(id, body, len);
        msg_queue(id, &topic, &qid);
        memset(&m, 0, sizeof(m));
        m.topic = topics[topic];
        m.topic_len = strlen(m.topic);
        m.queue_id = qid;
        m.body = body;
        m.body_len = len;
        int pl = snprintf(props, sizeof(props), "KEYS%ck%" PRIx64 "%c", REC_NAME_SEP, id,
                          REC_PROP_SEP);
        m.props = props;
        m.props_len = (size_t)pl;
        m.born_host_len = m.store_host_len = 4;
        m.born_host[0] = m.store_host[0] = 127;
        m.born_host[3] = m.store_host[3] = 1;
        m.store_port = 10911;
        rc = c->sync ? store_put_sync(c->s, &m, &res) : store_put(c->s, &m, &res);
        struct rep r = {REP_ACK, 0, id, res.queue_off, res.end};
        if (rc == SPK_ETIMEOUT) {
            r.type = REP_INDET;
        } else if (rc != 0) {
            r.type = REP_ERROR;
            r.code = rc;
            report(c->wfd, &r);
            return NULL;
        }
        report(c->wfd, &r);
    }
    return NULL;
}

static void *
watcher(void *arg)
{
    struct child *c = arg;
    uint64_t last = 0;

    for (;;) {
        uint64_t d = store_durable(c->s);
        if (d > last) {
            struct rep r = {REP_WATERMARK, 0, 0, 0, d};
            report(c->wfd, &r);
            last = d;
        }
        usleep(200);
    }
    return NULL;
}

static void
child_main(const struct opts *o, int wfd, uint64_t id_base)
{
    struct store_config cfg;
    struct cfg_target t;
    struct store_open_info info;
    struct child c = {NULL, wfd, o->sync, id_base};
    pthread_t th[NWRITERS + 1];
    char err[512] = "";
    int rc;

    rc = sio_crashsim_start(o->root, o->shadow);
    if (rc != 0) {
        fprintf(stderr, "powercut: sio_crashsim_start: %s\n", spk_strerror(rc));
        _exit(3);
    }
    if (config_init(o, &cfg, &t) != 0)
        _exit(3);
    rc = store_open(&cfg, &c.s, &info, err, sizeof(err));
    if (rc != 0) {
        struct rep r = {REP_ERROR, rc, 0, 0, 0};
        fprintf(stderr, "powercut: writer: store_open: %s: %s\n", spk_strerror(rc), err);
        report(wfd, &r);
        _exit(4);
    }
    struct rep r = {REP_OPENED, 0, 0, 0, store_written(c.s)};
    report(wfd, &r);
    for (int i = 0; i < NWRITERS; i++)
        pthread_create(&th[i], NULL, writer, &c);
    pthread_create(&th[NWRITERS], NULL, watcher, &c);
    for (;;)
        pause(); /* until the parent cuts the power */
}

/* ------------------------------------------------------------------ */
/* Rebuild: what the disk holds after the cut                          */

struct op {
    char kind;
    unsigned fid;
    uint64_t n; /* ino (C) or size (Z, S) */
    char *a, *b;
    int applied;
};

struct jrnl {
    struct op *ops;
    size_t nops;
    unsigned maxfid;
    char *text;
};

static void
jrnl_free(struct jrnl *j)
{
    free(j->ops);
    free(j->text);
    memset(j, 0, sizeof(*j));
}

static int
jrnl_read(const char *shadow, struct jrnl *j)
{
    char path[PATH_MAX + 16];
    size_t len, cap = 0;
    char *p, *nl;

    memset(j, 0, sizeof(*j));
    snprintf(path, sizeof(path), "%s/journal", shadow);
    j->text = (char *)slurp(path, &len);
    if (j->text == NULL)
        return -ENOENT;
    for (p = j->text; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        struct op o;
        char *sp;
        *nl = '\0';
        memset(&o, 0, sizeof(o));
        o.kind = p[0];
        if (p[0] == '\0' || p[1] != ' ')
            return -EINVAL;
        char *f = p + 2;
        switch (o.kind) {
        case 'C':
            o.fid = (unsigned)strtoul(f, &sp, 10);
            o.n = strtoull(sp, &sp, 10);
            o.a = sp + 1;
            break;
        case 'Z':
        case 'S':
            o.fid = (unsigned)strtoul(f, &sp, 10);
            o.n = strtoull(sp, &sp, 10);
            break;
        case 'R':
        case 'L':
            sp = strchr(f, ' ');
            if (sp == NULL)
                return -EINVAL;
            *sp = '\0';
            o.a = f;
            o.b = sp + 1;
            break;
        case 'M':
        case 'U':
        case 'D':
            o.a = f;
            break;
        default:
            return -EINVAL;
        }
        if (o.fid > j->maxfid)
            j->maxfid = o.fid;
        if (j->nops == cap) {
            cap = cap ? cap * 2 : 256;
            j->ops = realloc(j->ops, cap * sizeof(*j->ops));
            if (j->ops == NULL)
                die("out of memory");
        }
        j->ops[j->nops++] = o;
    }
    /* Whatever follows the last newline is a line cut by the kill. */
    return 0;
}

/* The directory part of <path> into <out> ("." at the top). */
static void
parent_of(const char *path, char *out, size_t len)
{
    const char *sl = strrchr(path, '/');
    if (sl == NULL)
        snprintf(out, len, ".");
    else
        snprintf(out, len, "%.*s", (int)(sl - path), path);
}

/* The unit whose sync makes op <o> durable under the strict model. */
static void
unit_of(const struct op *o, char *out, size_t len)
{
    switch (o->kind) {
    case 'Z':
    case 'S':
        snprintf(out, len, "#%u", o->fid);
        break;
    case 'D':
        snprintf(out, len, "%s", o->a);
        break;
    case 'R':
    case 'L':
        parent_of(o->b, out, len);
        break;
    default:
        parent_of(o->a, out, len);
        break;
    }
}

#define MAX_GARBAGE 512

struct cut_stats {
    unsigned long pages_diff, persisted, lost, torn, garbage;
    unsigned long names_pending, names_dropped;
    int ordered;
    /* CommitLog pages given garbage: log offsets of their first byte. */
    uint64_t garb[MAX_GARBAGE];
    size_t ngarb;
    int garb_overflow;
};

/* The cut being verified (for telling garbage refusals apart). */
static const struct cut_stats *cur_cut;

/* Decides which journaled operations reached the disk. */
static void
choose_ops(struct jrnl *j, int ordered, struct rng *r, struct cut_stats *st)
{
    size_t n = j->nops;

    st->ordered = ordered;
    if (ordered) {
        size_t last_sync = 0, cut;
        for (size_t i = 0; i < n; i++)
            if (j->ops[i].kind == 'S' || j->ops[i].kind == 'D')
                last_sync = i + 1;
        cut = last_sync + (size_t)rnd_below(r, n - last_sync + 1);
        for (size_t i = 0; i < n; i++) {
            j->ops[i].applied = i < cut || j->ops[i].kind == 'S' || j->ops[i].kind == 'D';
            if (i >= last_sync) {
                st->names_pending++;
                st->names_dropped += !j->ops[i].applied;
            }
        }
        return;
    }
    /* Strict: per unit, the operations after its last sync are pending;
     * a random prefix of them reached the disk. */
    char (*units)[PATH_MAX] = malloc(n * sizeof(*units) + 1);
    if (units == NULL)
        die("out of memory");
    for (size_t i = 0; i < n; i++)
        unit_of(&j->ops[i], units[i], PATH_MAX);
    for (size_t i = 0; i < n; i++)
        j->ops[i].applied = -1; /* undecided */
    for (size_t i = n; i-- > 0;) {
        if (j->ops[i].applied != -1)
            continue;
        /* Walk this unit from the end: pending ops, then its last sync. */
        size_t pend[4096], np = 0, k = i + 1;
        int synced = 0;
        while (k-- > 0) {
            if (j->ops[k].applied != -1 || strcmp(units[k], units[i]) != 0)
                continue;
            char kd = j->ops[k].kind;
            if (kd == 'S' || kd == 'D') {
                synced = 1;
                break;
            }
            if (np < sizeof(pend) / sizeof(pend[0]))
                pend[np++] = k;
            else
                j->ops[k].applied = 1;
        }
        if (synced) /* the sync and everything of the unit before it */
            for (size_t q = 0; q <= k; q++)
                if (j->ops[q].applied == -1 && strcmp(units[q], units[i]) == 0)
                    j->ops[q].applied = 1;
        /* pend[] holds the pending ops newest first: keep the oldest m. */
        size_t m = (size_t)rnd_below(r, np + 1);
        for (size_t q = 0; q < np; q++)
            j->ops[pend[q]].applied = q >= np - m;
        st->names_pending += np;
        st->names_dropped += np - m;
    }
    free(units);
}

struct nsent {
    char *path;
    int isdir;
    unsigned fid;
};

struct ns {
    struct nsent *e;
    size_t n, cap;
};

static struct nsent *
ns_find(struct ns *ns, const char *path)
{
    for (size_t i = 0; i < ns->n; i++)
        if (strcmp(ns->e[i].path, path) == 0)
            return &ns->e[i];
    return NULL;
}

static void
ns_set(struct ns *ns, const char *path, int isdir, unsigned fid)
{
    struct nsent *e = ns_find(ns, path);
    if (e == NULL) {
        if (ns->n == ns->cap) {
            ns->cap = ns->cap ? ns->cap * 2 : 64;
            ns->e = realloc(ns->e, ns->cap * sizeof(*ns->e));
            if (ns->e == NULL)
                die("out of memory");
        }
        e = &ns->e[ns->n++];
        e->path = strdup(path);
    }
    e->isdir = isdir;
    e->fid = fid;
}

static void
ns_del(struct ns *ns, const char *path)
{
    struct nsent *e = ns_find(ns, path);
    if (e != NULL) {
        free(e->path);
        *e = ns->e[--ns->n];
    }
}

static int
cmp_nsent(const void *a, const void *b)
{
    return strcmp(((const struct nsent *)a)->path, ((const struct nsent *)b)->path);
}

/* ino -> current path of every regular file under <abs>. */
struct inomap {
    uint64_t *ino;
    char **path;
    size_t n, cap;
};

static void
scan_inodes(const char *abs, struct inomap *m)
{
    DIR *d = opendir(abs);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char p[PATH_MAX];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", abs, de->d_name);
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            scan_inodes(p, m);
        } else if (S_ISREG(st.st_mode)) {
            if (m->n == m->cap) {
                m->cap = m->cap ? m->cap * 2 : 64;
                m->ino = realloc(m->ino, m->cap * sizeof(*m->ino));
                m->path = realloc(m->path, m->cap * sizeof(*m->path));
                if (m->ino == NULL || m->path == NULL)
                    die("out of memory");
            }
            m->ino[m->n] = st.st_ino;
            m->path[m->n++] = strdup(p);
        }
    }
    closedir(d);
}

/*
 * Saves <m> as "ino relative-path" lines, or loads it back with the paths
 * resolved under <root> (a replay works on a copy, whose inode numbers
 * differ from those the journal names).
 */
static void
inomap_save(const struct inomap *m, const char *root, const char *path)
{
    FILE *f = fopen(path, "w");
    size_t rl = strlen(root);

    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    for (size_t k = 0; k < m->n; k++)
        fprintf(f, "%" PRIu64 " %s\n", m->ino[k], m->path[k] + rl + 1);
    fclose(f);
}

static void
inomap_load(struct inomap *m, const char *root, const char *path)
{
    FILE *f = fopen(path, "r");
    char rel[PATH_MAX], full[2 * PATH_MAX];
    uint64_t ino;

    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    while (fscanf(f, "%" SCNu64 " %4095s", &ino, rel) == 2) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 64;
            m->ino = realloc(m->ino, m->cap * sizeof(*m->ino));
            m->path = realloc(m->path, m->cap * sizeof(*m->path));
            if (m->ino == NULL || m->path == NULL)
                die("out of memory");
        }
        snprintf(full, sizeof(full), "%s/%s", root, rel);
        m->ino[m->n] = ino;
        m->path[m->n++] = strdup(full);
    }
    fclose(f);
}

/*
 * Builds the content of one file after the cut, page by page. <inorder>:
 * the device wrote the unsynced pages of the file in file order (SQLite's
 * SEQUENTIAL device): a prefix of them persisted, the next one is torn,
 * the rest are lost. Otherwise each page's fate is drawn independently.
 */
static uint8_t *
cut_content(const uint8_t *dur, size_t dlen, const uint8_t *cur, size_t clen, size_t size,
            int inorder, struct rng *r, struct cut_stats *st, const char *rel)
{
    uint64_t log_base = UINT64_MAX; /* a CommitLog segment: its first offset */
    if (strncmp(rel, "commitlog/", 10) == 0)
        log_base = strtoull(rel + 10, NULL, 10);
    uint8_t *out = calloc(1, size + 1);
    uint64_t keep = 0, seen = 0;

    if (out == NULL)
        die("out of memory");
    memcpy(out, dur, dlen < size ? dlen : size);
    if (cur == NULL)
        return out;
    if (inorder) {
        uint64_t ndiff = 0;
        for (size_t pg = 0; pg < size; pg += PAGE) {
            size_t end = pg + PAGE < size ? pg + PAGE : size;
            size_t cend = clen < end ? clen : end;
            int differs = 0;
            for (size_t i = pg; i < end && !differs; i++)
                differs = out[i] != (i < cend ? cur[i] : 0);
            ndiff += (uint64_t)differs;
        }
        keep = rnd_below(r, ndiff + 1);
    }
    for (size_t pg = 0; pg < size; pg += PAGE) {
        size_t end = pg + PAGE < size ? pg + PAGE : size, i;
        uint8_t c[PAGE];
        for (i = pg; i < end; i++)
            c[i - pg] = i < clen ? cur[i] : 0;
        if (memcmp(out + pg, c, end - pg) == 0)
            continue;
        st->pages_diff++;
        uint64_t x = rnd_below(r, 100);
        if (inorder) /* persisted, then one torn page, then lost */
            x = seen < keep ? 0 : seen == keep ? 90 : 50;
        seen++;
        if (x < 45) { /* persisted */
            memcpy(out + pg, c, end - pg);
            st->persisted++;
        } else if (x < 90) { /* lost: the durable image stays */
            st->lost++;
        } else if (x < 98) { /* torn: some sectors made it */
            for (size_t s = pg; s < end; s += SECTOR) {
                size_t se = s + SECTOR < end ? s + SECTOR : end;
                if (rnd(r) & 1)
                    memcpy(out + s, c + (s - pg), se - s);
            }
            st->torn++;
        } else { /* garbage where the sector was being written */
            for (size_t s = pg; s < end; s += SECTOR) {
                size_t se = s + SECTOR < end ? s + SECTOR : end, a = se, b = s;
                for (i = s; i < se; i++)
                    if (out[i] != c[i - pg]) {
                        if (a == se)
                            a = i;
                        b = i + 1;
                    }
                for (i = a; i < b; i++)
                    out[i] = (uint8_t)rnd(r);
            }
            st->garbage++;
            if (log_base != UINT64_MAX) {
                if (st->ngarb < MAX_GARBAGE)
                    st->garb[st->ngarb++] = log_base + pg;
                else
                    st->garb_overflow = 1;
            }
        }
    }
    return out;
}

/*
 * Rebuilds <o->root> from itself (the page cache's view after the kill)
 * and the journal in <o->shadow>, into DIR/new, then moves the store to
 * DIR/pre and DIR/new into its place.
 */
static int
rebuild(const struct opts *o, int model, uint64_t seed, const char *inomap_in,
        struct cut_stats *st)
{
    struct rng r = {seed};
    struct jrnl j;
    struct ns ns = {0};
    struct inomap im = {0};
    char newdir[PATH_MAX + 16], pre[PATH_MAX + 16];
    uint64_t *size, *ino_of;
    int rc;

    memset(st, 0, sizeof(*st));
    rc = jrnl_read(o->shadow, &j);
    if (rc != 0)
        return rc;
    choose_ops(&j, model == 2 ? (int)rnd_below(&r, 2) : model, &r, st);

    size = calloc(j.maxfid + 1, sizeof(*size));
    ino_of = calloc(j.maxfid + 1, sizeof(*ino_of));
    if (size == NULL || ino_of == NULL)
        die("out of memory");
    for (size_t i = 0; i < j.nops; i++) {
        struct op *p = &j.ops[i];
        struct nsent *e;
        if (p->kind == 'C')
            ino_of[p->fid] = p->n;
        if (!p->applied)
            continue;
        switch (p->kind) {
        case 'C':
            ns_set(&ns, p->a, 0, p->fid);
            size[p->fid] = 0;
            break;
        case 'M':
            ns_set(&ns, p->a, 1, 0);
            break;
        case 'R':
            e = ns_find(&ns, p->a);
            if (e != NULL) {
                int isdir = e->isdir;
                unsigned fid = e->fid;
                ns_set(&ns, p->b, isdir, fid);
                ns_del(&ns, p->a);
            }
            break;
        case 'L':
            e = ns_find(&ns, p->a);
            if (e != NULL)
                ns_set(&ns, p->b, 0, e->fid);
            break;
        case 'U':
            ns_del(&ns, p->a);
            break;
        case 'Z':
        case 'S':
            size[p->fid] = p->n;
            break;
        default:
            break;
        }
    }
    /* The page cache's content of each fid: found by inode, and only for
     * the newest fid of an inode (inode numbers are reused). */
    snprintf(newdir, sizeof(newdir), "%s/inomap", o->dir);
    if (inomap_in != NULL) {
        inomap_load(&im, o->root, inomap_in);
    } else {
        scan_inodes(o->root, &im);
        inomap_save(&im, o->root, newdir);
    }

    snprintf(newdir, sizeof(newdir), "%s/new", o->dir);
    snprintf(pre, sizeof(pre), "%s/pre", o->dir);
    rm_rf(newdir);
    rm_rf(pre);
    if (mkdir(newdir, 0755) != 0)
        die("%s: %s", newdir, strerror(errno));
    if (ns.n > 1)
        qsort(ns.e, ns.n, sizeof(*ns.e), cmp_nsent);
    for (size_t i = 0; i < ns.n; i++) {
        struct nsent *e = &ns.e[i];
        char par[PATH_MAX], out[2 * PATH_MAX + 32];
        parent_of(e->path, par, sizeof(par));
        if (strcmp(par, ".") != 0) {
            struct nsent *pe = ns_find(&ns, par);
            if (pe == NULL || !pe->isdir)
                continue; /* its directory did not survive */
            snprintf(out, sizeof(out), "%s/%s", newdir, par);
            struct stat sst;
            if (stat(out, &sst) != 0)
                continue; /* nor did the directory's own parent */
        }
        snprintf(out, sizeof(out), "%s/%s", newdir, e->path);
        if (e->isdir) {
            mkdir(out, 0755);
            continue;
        }
        char sp[PATH_MAX + 32];
        size_t dlen = 0, clen = 0;
        uint8_t *dur, *cur = NULL;
        snprintf(sp, sizeof(sp), "%s/d/%u", o->shadow, e->fid);
        dur = slurp(sp, &dlen);
        int newest = 1;
        for (unsigned f = e->fid + 1; f <= j.maxfid; f++)
            if (ino_of[f] == ino_of[e->fid])
                newest = 0;
        for (size_t k = 0; newest && k < im.n && cur == NULL; k++)
            if (im.ino[k] == ino_of[e->fid])
                cur = slurp(im.path[k], &clen);
        uint8_t *content = cut_content(dur ? dur : (const uint8_t *)"", dlen, cur, clen,
                                       (size_t)size[e->fid], o->inorder, &r, st, e->path);
        spew(out, content, (size_t)size[e->fid]);
        free(content);
        free(dur);
        free(cur);
    }
    for (size_t i = 0; i < ns.n; i++)
        free(ns.e[i].path);
    free(ns.e);
    for (size_t k = 0; k < im.n; k++)
        free(im.path[k]);
    free(im.ino);
    free(im.path);
    free(size);
    free(ino_of);
    jrnl_free(&j);
    if (rename(o->root, pre) != 0 || rename(newdir, o->root) != 0)
        die("moving the rebuilt store into place: %s", strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------ */
/* Expectations and verification                                       */

struct expect {
    uint64_t id;  /* 0: a put nobody reported (any message may be there) */
    uint64_t end; /* CommitLog end of the record, for ASYNC_FLUSH */
    int required; /* must survive this cut */
};

struct queue_exp {
    struct expect *e;
    size_t n, cap;
};

static struct queue_exp table[NTOPICS][NQUEUES];
static struct store_get_result gres;

static void
qe_put(struct queue_exp *q, size_t at, struct expect x)
{
    while (q->n <= at) {
        if (q->n == q->cap) {
            q->cap = q->cap ? q->cap * 2 : 256;
            q->e = realloc(q->e, q->cap * sizeof(*q->e));
            if (q->e == NULL)
                die("out of memory");
        }
        q->e[q->n++] = (struct expect){0, 0, 0};
    }
    q->e[at] = x;
}

static void
table_reset(void)
{
    for (int t = 0; t < NTOPICS; t++)
        for (int q = 0; q < NQUEUES; q++) {
            free(table[t][q].e);
            memset(&table[t][q], 0, sizeof(table[t][q]));
        }
}

static int
table_save(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -errno;
    for (int t = 0; t < NTOPICS; t++)
        for (int q = 0; q < NQUEUES; q++)
            for (size_t i = 0; i < table[t][q].n; i++) {
                const struct expect *x = &table[t][q].e[i];
                fprintf(f, "%d %d %zu %" PRIu64 " %" PRIu64 " %d\n", t, q, i, x->id, x->end,
                        x->required);
            }
    return fclose(f) == 0 ? 0 : -errno;
}

static int
table_load(const char *path)
{
    FILE *f = fopen(path, "r");
    int t, q, req;
    size_t i;
    uint64_t id, end;

    if (f == NULL)
        return -errno;
    table_reset();
    while (fscanf(f, "%d %d %zu %" SCNu64 " %" SCNu64 " %d", &t, &q, &i, &id, &end, &req) == 6)
        if (t >= 0 && t < NTOPICS && q >= 0 && q < NQUEUES)
            qe_put(&table[t][q], i, (struct expect){id, end, req});
    fclose(f);
    return 0;
}

static long violations;

/* Violations by kind, for the summary line. */
enum vkind { V_REFUSED, V_LOST, V_OFFSET, V_CORRUPT, V_WRITER, V_CHECK, V_NKINDS };
static const char *const vkind_name[V_NKINDS] = {
    "store refused to open", "acked lost",    "offset reused/duplicate/hole",
    "corrupt delivered",     "writer failed", "store check found a problem"};
static long vcount[V_NKINDS];

__attribute__((format(printf, 2, 3))) static void
violation(enum vkind k, const char *fmt, ...)
{
    va_list ap;
    vcount[k]++;
    if (violations++ >= 20)
        return;
    va_start(ap, fmt);
    fputs("VIOLATION: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct verify_stats {
    unsigned long stored, required, lost_allowed;
};

struct check_ctx {
    long cut;
    const char *root;
};

static void
check_finding(void *arg, const struct insp_finding *f)
{
    const struct check_ctx *c = arg;
    if (f->severity == INSP_PROBLEM)
        violation(V_CHECK, "cut %ld: store check after recovery: %s at byte %" PRIu64 ": %s",
                  c->cut, f->file + strlen(c->root), f->pos, f->what);
}

/*
 * `sprocket store check` on the stopped store: the CommitLog records and
 * every ConsumeQueue unit against them (the index is left to the unit
 * tests: its checks need the index sizes). Recovery and a clean close
 * must leave nothing for it to complain about.
 */
static void
store_check(const struct opts *o, long cut)
{
    struct check_ctx c = {cut, o->root};
    struct insp *in;
    char err[512] = "";

    if (insp_open(o->root, check_finding, &c, &in, err, sizeof(err)) != 0) {
        violation(V_CHECK, "cut %ld: store check cannot open the store: %s", cut, err);
        return;
    }
    if (insp_walk_records(in, NULL, NULL) != 0 || insp_walk_units(in, NULL, NULL) != 0)
        violation(V_CHECK, "cut %ld: store check could not walk the store", cut);
    insp_close(in);
}

/*
 * Opens the rebuilt store, reads every queue and checks it against the
 * table; then the table becomes what was read. Returns the violations
 * found in this call.
 */
static unsigned long garbage_refusals;

/*
 * 1 if <err> is recovery's "invalid record at offset A ... a valid record
 * follows at offset B" and this cut put garbage into a CommitLog page
 * that overlaps [A, B): the refusal is then the store's documented answer
 * to damage it cannot tell from corruption.
 */
static int
garbage_refusal(const char *err)
{
    const char *a = strstr(err, "invalid record at offset ");
    const char *b = strstr(err, "a valid record follows at offset ");
    uint64_t from, next;

    if (cur_cut == NULL || a == NULL || b == NULL || cur_cut->garb_overflow)
        return 0;
    from = strtoull(a + strlen("invalid record at offset "), NULL, 10);
    next = strtoull(b + strlen("a valid record follows at offset "), NULL, 10);
    for (size_t i = 0; i < cur_cut->ngarb; i++)
        if (cur_cut->garb[i] < next && cur_cut->garb[i] + PAGE > from)
            return 1;
    return 0;
}

static long
verify(const struct opts *o, long cut, struct verify_stats *vs)
{
    struct store_config cfg;
    struct cfg_target t;
    struct store_open_info info;
    struct store *s;
    char err[512] = "";
    long before = violations;
    uint64_t *ids = NULL;
    size_t nids = 0, idcap = 0;
    int rc;

    memset(vs, 0, sizeof(*vs));
    if (config_init(o, &cfg, &t) != 0)
        die("configuration failed");
    rc = store_open(&cfg, &s, &info, err, sizeof(err));
    if (rc != 0 && garbage_refusal(err)) {
        /* Garbage in a page being written, with intact records behind it,
         * cannot be told from a flipped bit: the store refuses, as R7
         * says (docs/DURABILITY.md). Not a loss; counted apart. */
        garbage_refusals++;
        printf("t2:   cut %ld: refused after garbage in an unsynced CommitLog page (expected): %s\n",
               cut, err);
        cfg_free(&t);
        return violations - before;
    }
    if (rc != 0) {
        violation(V_REFUSED, "cut %ld: the store refused to open after the cut: %s: %s", cut,
                  spk_strerror(rc), err);
        cfg_free(&t);
        return violations - before;
    }
    for (int i = 0; i < 20000 && store_dispatched(s) < store_written(s); i++)
        usleep(500);

    for (int ti = 0; ti < NTOPICS; ti++)
        for (int q = 0; q < NQUEUES; q++) {
            struct queue_exp *qe = &table[ti][q], got = {0};
            uint64_t min = 0, max = 0, qoff;
            if (store_queue_bounds(s, topics[ti], q, &min, &max) != 0)
                min = max = 0;
            if (min != 0)
                violation(V_LOST, "cut %ld: %s/%d starts at offset %" PRIu64 ", not 0", cut,
                          topics[ti], q, min);
            qoff = min;
            while (qoff < max) {
                memset(&gres, 0, sizeof(gres));
                rc = store_get(s, topics[ti], q, qoff, STORE_MAX_BATCH, 4 << 20, NULL, &gres);
                if (rc != 0 || gres.status != STORE_FOUND || gres.count == 0) {
                    violation(V_LOST, "cut %ld: %s/%d offset %" PRIu64 " of [%" PRIu64 ", %" PRIu64
                              "): %s",
                              cut, topics[ti], q, qoff, min, max,
                              rc != 0 ? spk_strerror(rc) : store_get_status_name(gres.status));
                    store_get_release(&gres);
                    break;
                }
                for (size_t k = 0; k < gres.count; k++) {
                    const struct store_msg_view *mv = &gres.msgs[k];
                    struct rec_view v;
                    const char *why = "";
                    uint64_t id = 0, at = qoff + k;
                    int mt, mq;
                    if (mv->queue_off != at) {
                        violation(V_OFFSET, "cut %ld: %s/%d: offset %" PRIu64 " read where %" PRIu64
                                  " was expected (hole)",
                                  cut, topics[ti], q, mv->queue_off, at);
                    } else if (rec_parse(mv->data, mv->len, mv->phys_off, REC_CHECK_CRC, &v,
                                         &why) <= 0) {
                        violation(V_CORRUPT, "cut %ld: %s/%d offset %" PRIu64
                                  ": invalid record delivered at %" PRIu64 ": %s",
                                  cut, topics[ti], q, at, mv->phys_off, why);
                    } else if (!body_ok(v.body, v.body_len, &id)) {
                        violation(V_CORRUPT, "cut %ld: %s/%d offset %" PRIu64
                                  ": corrupt body delivered at %" PRIu64,
                                  cut, topics[ti], q, at, mv->phys_off);
                    } else if (msg_queue(id, &mt, &mq), mt != ti || mq != q ||
                                                            v.queue_off != at) {
                        violation(V_OFFSET, "cut %ld: id %" PRIx64 " found in %s/%d offset %" PRIu64
                                  " (record says %" PRIu64 ")",
                                  cut, id, topics[ti], q, at, v.queue_off);
                    }
                    qe_put(&got, (size_t)at, (struct expect){id, 0, 1});
                    if (id != 0) {
                        if (nids == idcap) {
                            idcap = idcap ? idcap * 2 : 4096;
                            ids = realloc(ids, idcap * sizeof(*ids));
                            if (ids == NULL)
                                die("out of memory");
                        }
                        ids[nids++] = id;
                    }
                }
                qoff += gres.count;
                store_get_release(&gres);
            }
            /* Against what was acknowledged and what was read before. */
            for (size_t i = 0; i < qe->n; i++) {
                const struct expect *x = &qe->e[i];
                if (i < got.n) {
                    if (x->id != 0 && got.e[i].id != x->id)
                        violation(V_OFFSET, "cut %ld: %s/%d offset %zu holds id %" PRIx64
                                  " where id %" PRIx64 " was %s (offset reused)",
                                  cut, topics[ti], q, i, got.e[i].id, x->id,
                                  x->required ? "acknowledged" : "put");
                } else if (x->required) {
                    violation(V_LOST, "cut %ld: %s/%d: acknowledged id %" PRIx64 " at offset %zu "
                              "(end %" PRIu64 ") is lost; the queue ends at %zu",
                              cut, topics[ti], q, x->id, i, x->end, got.n);
                } else if (x->id != 0) {
                    vs->lost_allowed++;
                }
                vs->required += x->required && x->id != 0;
            }
            vs->stored += got.n;
            free(qe->e);
            *qe = got; /* read after a recovery and a clean close: durable */
        }
    if (nids > 1) {
        qsort(ids, nids, sizeof(*ids), cmp_u64);
        for (size_t i = 1; i < nids; i++)
            if (ids[i] == ids[i - 1])
                violation(V_OFFSET, "cut %ld: id %" PRIx64 " stored at two offsets", cut, ids[i]);
    }
    free(ids);
    rc = store_close(s);
    if (rc != 0)
        violation(V_REFUSED, "cut %ld: store_close after recovery: %s", cut, spk_strerror(rc));
    else
        store_check(o, cut);
    cfg_free(&t);
    return violations - before;
}

/* ------------------------------------------------------------------ */
/* One cut                                                             */

struct run_stats {
    unsigned long acked, indet, watermarks, opened, killed_early, required, lost_allowed;
    unsigned long pages_diff, torn, garbage, names_dropped;
};

/* Applies one report of cut <cut> to the table. */
static void
take_report(const struct opts *o, long cut, const struct rep *r, uint64_t *wm,
            struct run_stats *rs)
{
    int t, q;

    switch (r->type) {
    case REP_WATERMARK:
        if (r->end > *wm)
            *wm = r->end;
        rs->watermarks++;
        return;
    case REP_OPENED:
        rs->opened++;
        return;
    case REP_ERROR:
        violation(V_WRITER, "cut %ld: the writer's %s failed: %s", cut, r->id ? "put" : "store_open",
                  spk_strerror(r->code));
        return;
    case REP_ACK:
    case REP_INDET:
        break;
    default:
        violation(V_WRITER, "cut %ld: malformed report", cut);
        return;
    }
    msg_queue(r->id, &t, &q);
    struct queue_exp *qe = &table[t][q];
    if (r->qoff < qe->n && qe->e[r->qoff].id != 0 && qe->e[r->qoff].id != r->id) {
        violation(V_OFFSET, "cut %ld: %s/%d offset %" PRIu64 " given to id %" PRIx64
                  " but it held id %" PRIx64 " (offset reused)",
                  cut, topics[t], q, r->qoff, r->id, qe->e[r->qoff].id);
        return;
    }
    /* Under ASYNC_FLUSH the durable part is settled after the kill, from
     * the last watermark (see run_cut). */
    qe_put(qe, (size_t)r->qoff, (struct expect){r->id, r->end, r->type == REP_ACK && o->sync});
    if (r->type == REP_ACK)
        rs->acked++;
    else
        rs->indet++;
}

static void
keep_case(const struct opts *o, long cut, uint64_t rseed, int model)
{
    char d[PATH_MAX + 32], a[PATH_MAX + 64], b[PATH_MAX + 64];
    static int kept;

    if (kept++ >= 5) { /* a few megabytes each: the first five will do */
        printf("powercut: cut %ld failed (not kept: five cases are)\n", cut);
        return;
    }
    snprintf(d, sizeof(d), "%s/fail-%ld", o->dir, cut);
    rm_rf(d);
    mkdir(d, 0755);
    snprintf(a, sizeof(a), "%s/pre", o->dir);
    snprintf(b, sizeof(b), "%s/pre", d);
    copy_tree(a, b);
    snprintf(b, sizeof(b), "%s/shadow", d);
    copy_tree(o->shadow, b);
    snprintf(b, sizeof(b), "%s/expect", d);
    /* The table was replaced by what verify read: the replay re-derives
     * the expectations from the saved copy written before the rebuild. */
    snprintf(a, sizeof(a), "%s/expect.pre", o->dir);
    rename(a, b);
    snprintf(a, sizeof(a), "%s/inomap", o->dir);
    snprintf(b, sizeof(b), "%s/inomap", d);
    rename(a, b);
    snprintf(b, sizeof(b), "%s/params", d);
    FILE *f = fopen(b, "w");
    if (f) {
        fprintf(f, "%" PRIu64 " %d %d %d %d %" PRId64 "\n", rseed, model, o->sync, o->pwrite,
                o->inorder, o->seg_size);
        fclose(f);
    }
    printf("powercut: cut %ld kept in %s; replay: powercut -d %s -R %s\n", cut, d, o->dir, d);
}

/* One cut; returns the number of violations it found. */
static long
run_cut(const struct opts *o, long cut, struct rng *r, struct run_stats *rs)
{
    int pfd[2], status = 0;
    pid_t pid;
    uint64_t wm = 0, id_base = ((uint64_t)cut + 1) << 32;
    /* The moment of the cut: after a number of acknowledgements (by = 0),
     * some microseconds after the fork (1: lands in the simulation's start,
     * in recovery and in segment creation), or after the store opened (2). */
    int by = (int)rnd_below(r, 3), by_count = by == 0;
    uint64_t target = by == 0 ? rnd_below(r, 400)
                      : by == 1 ? 2000 + rnd_below(r, o->kill_us)
                                : rnd_below(r, 50000);
    uint64_t nack = 0, rseed = rnd(r);
    struct cut_stats cs;
    struct verify_stats vs;
    char path[PATH_MAX + 32];
    long before = violations;
    int rc;

    if (pipe(pfd) != 0)
        die("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    int64_t t0 = now_us();
    pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(pfd[0]);
        child_main(o, pfd[1], id_base);
        _exit(0);
    }
    close(pfd[1]);
    /* Read reports until it is time to cut the power. */
    int exited = 0;
    int64_t t_open = -1, t_kill, t_rebuild, t_verify;
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        struct rep rp[64];
        if (poll(&p, 1, 1) > 0) {
            ssize_t n = read(pfd[0], rp, sizeof(rp));
            if (n <= 0) {
                exited = 1;
                break;
            }
            for (size_t i = 0; i < (size_t)n / sizeof(rp[0]); i++) {
                take_report(o, cut, &rp[i], &wm, rs);
                nack += rp[i].type == REP_ACK;
                if (rp[i].type == REP_OPENED)
                    t_open = now_us() - t0;
            }
            if ((size_t)n % sizeof(rp[0]) != 0)
                die("partial report from the writer");
        }
        int64_t el = now_us() - t0;
        if ((by == 0 && nack >= target) || (by == 1 && (uint64_t)el >= target) ||
            (by == 2 && t_open >= 0 && (uint64_t)(el - t_open) >= target))
            break;
        if (el > 20 * 1000000) {
            violation(V_WRITER, "cut %ld: the writer made no progress for 20 s", cut);
            break;
        }
    }
    t_kill = now_us() - t0;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
        ;
    if (!exited) {
        struct rep rp[64];
        ssize_t n;
        while ((n = read(pfd[0], rp, sizeof(rp))) > 0)
            for (size_t i = 0; i < (size_t)n / sizeof(rp[0]); i++)
                take_report(o, cut, &rp[i], &wm, rs);
    }
    close(pfd[0]);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        violation(V_WRITER, "cut %ld: the writer died by itself (%s %d)", cut,
                  WIFSIGNALED(status) ? "signal" : "exit status",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    /* ASYNC_FLUSH: what lies below the last completed flush must survive. */
    if (!o->sync)
        for (int t = 0; t < NTOPICS; t++)
            for (int q = 0; q < NQUEUES; q++)
                for (size_t i = 0; i < table[t][q].n; i++) {
                    struct expect *x = &table[t][q].e[i];
                    if (x->id != 0 && !x->required && x->end != 0 && x->end <= wm)
                        x->required = 1;
                }
    snprintf(path, sizeof(path), "%s/expect.pre", o->dir);
    if (table_save(path) != 0)
        die("%s: cannot save", path);

    rc = rebuild(o, o->model, rseed, NULL, &cs);
    if (rc == -ENOENT) {
        /* Killed before the simulation started: the store is untouched. */
        snprintf(path, sizeof(path), "%s/pre", o->dir);
        copy_tree(o->root, path);
        rs->killed_early++;
    } else if (rc != 0) {
        die("cut %ld: unreadable journal: %s", cut, strerror(-rc));
    }
    t_rebuild = now_us() - t0;
    rs->pages_diff += cs.pages_diff;
    rs->torn += cs.torn;
    rs->garbage += cs.garbage;
    rs->names_dropped += cs.names_dropped;
    cur_cut = &cs;
    verify(o, cut, &vs);
    cur_cut = NULL;
    t_verify = now_us() - t0;
    rs->required += vs.required;
    rs->lost_allowed += vs.lost_allowed;
    if (o->verbose)
        printf("cut %ld: %s after %" PRIu64 " %s; %s metadata, %lu/%lu pending ops dropped, "
               "%lu pages differed (%lu torn, %lu garbage); %lu stored, %lu required, %lu "
               "lost (allowed); ms: open %.1f kill %.1f rebuilt %.1f verified %.1f\n",
               cut, "killed", target, by_count ? "acks" : by == 1 ? "us" : "us after open",
               rc == -ENOENT ? "no" : cs.ordered ? "ordered" : "strict", cs.names_dropped, cs.names_pending,
               cs.pages_diff, cs.torn, cs.garbage, vs.stored, vs.required, vs.lost_allowed,
               (double)t_open / 1e3, (double)t_kill / 1e3, (double)t_rebuild / 1e3,
               (double)t_verify / 1e3);
    if (violations > before) {
        keep_case(o, cut, rseed, o->model);
    } else {
        snprintf(path, sizeof(path), "%s/pre", o->dir);
        rm_rf(path);
    }
    rm_rf(o->shadow);
    return violations - before;
}

static int
replay(struct opts *o, const char *cdir)
{
    char p[PATH_MAX + 64];
    uint64_t rseed;
    int model, sync, pw, inorder;
    int64_t seg;
    struct cut_stats cs;
    struct verify_stats vs;
    FILE *f;

    snprintf(p, sizeof(p), "%s/params", cdir);
    f = fopen(p, "r");
    if (f == NULL || fscanf(f, "%" SCNu64 " %d %d %d %d %" SCNd64, &rseed, &model, &sync, &pw,
                            &inorder, &seg) != 6)
        die("%s: unreadable", p);
    fclose(f);
    o->sync = sync;
    o->pwrite = pw;
    o->inorder = inorder;
    o->seg_size = seg;
    rm_rf(o->root);
    rm_rf(o->shadow);
    snprintf(p, sizeof(p), "%s/pre", cdir);
    copy_tree(p, o->root);
    snprintf(p, sizeof(p), "%s/shadow", cdir);
    copy_tree(p, o->shadow);
    snprintf(p, sizeof(p), "%s/expect", cdir);
    if (table_load(p) != 0)
        die("%s: unreadable", p);
    snprintf(p, sizeof(p), "%s/inomap", cdir);
    if (rebuild(o, model, rseed, p, &cs) != 0)
        die("replay: no journal");
    printf("replay: %s metadata, %lu/%lu pending ops dropped, %lu pages differed\n",
           cs.ordered ? "ordered" : "strict", cs.names_dropped, cs.names_pending,
           cs.pages_diff);
    cur_cut = &cs;
    verify(o, 0, &vs);
    cur_cut = NULL;
    printf("replay: %lu stored, %lu required, %ld violations\n", vs.stored, vs.required,
           violations);
    return violations ? 1 : 0;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: powercut -d DIR [-n CUTS] [-s SEED] [-f sync|async] [-w mmap|pwrite]\n"
            "                [-m strict|ordered|mixed] [-b random|ordered] [-k MS]\n"
            "                [-r CUTS_PER_STORE] [-v]\n"
            "       powercut -d DIR -R CASE_DIR\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct opts o;
    const char *replay_dir = NULL;
    struct run_stats rs;
    int c;

    memset(&o, 0, sizeof(o));
    memset(&rs, 0, sizeof(rs));
    o.cuts = 20;
    o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    o.sync = 1;
    o.model = 2;
    o.per_store = 8;
    o.kill_us = 150000;
    while ((c = getopt(argc, argv, "d:n:s:f:w:m:b:k:r:R:v")) != -1) {
        switch (c) {
        case 'd':
            snprintf(o.dir, sizeof(o.dir), "%s", optarg);
            break;
        case 'n':
            o.cuts = strtol(optarg, NULL, 10);
            break;
        case 's':
            o.seed = strtoull(optarg, NULL, 0);
            break;
        case 'f':
            if (strcmp(optarg, "sync") != 0 && strcmp(optarg, "async") != 0)
                usage();
            o.sync = strcmp(optarg, "sync") == 0;
            break;
        case 'w':
            if (strcmp(optarg, "mmap") != 0 && strcmp(optarg, "pwrite") != 0)
                usage();
            o.pwrite = strcmp(optarg, "pwrite") == 0;
            break;
        case 'm':
            o.model = strcmp(optarg, "strict") == 0    ? 0
                      : strcmp(optarg, "ordered") == 0 ? 1
                      : strcmp(optarg, "mixed") == 0   ? 2
                                                       : -1;
            if (o.model < 0)
                usage();
            break;
        case 'b':
            if (strcmp(optarg, "random") != 0 && strcmp(optarg, "ordered") != 0)
                usage();
            o.inorder = strcmp(optarg, "ordered") == 0;
            break;
        case 'k':
            o.kill_us = strtoull(optarg, NULL, 10) * 1000;
            break;
        case 'r':
            o.per_store = atoi(optarg);
            break;
        case 'R':
            replay_dir = optarg;
            break;
        case 'v':
            o.verbose = 1;
            break;
        default:
            usage();
        }
    }
    if (o.dir[0] == '\0' || o.cuts < 0 || o.per_store < 1 || o.kill_us == 0)
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (mkdir(o.dir, 0755) != 0 && errno != EEXIST)
        die("%s: %s", o.dir, strerror(errno));
    snprintf(o.root, sizeof(o.root), "%s/store", o.dir);
    snprintf(o.shadow, sizeof(o.shadow), "%s/shadow", o.dir);
    if (replay_dir != NULL)
        return replay(&o, replay_dir);

    const char *mode = o.sync ? (o.pwrite ? "SYNC_FLUSH/pwrite" : "SYNC_FLUSH/mmap")
                              : (o.pwrite ? "ASYNC_FLUSH/pwrite" : "ASYNC_FLUSH/mmap");
    /* store_open wants room for maxMessageSize + 64 KiB in a segment. */
    static const int64_t seg_sizes[] = {96 << 10, 128 << 10, 256 << 10, 1 << 20};
    struct rng r = {o.seed};
    int64_t t0 = now_us();
    long left_in_store = 0, stores = 0;

    printf("powercut: %s: %ld cuts, seed %" PRIu64 "\n", mode, o.cuts, o.seed);
    for (long cut = 0; cut < o.cuts; cut++) {
        if (left_in_store == 0) {
            rm_rf(o.root);
            rm_rf(o.shadow);
            if (mkdir(o.root, 0755) != 0)
                die("%s: %s", o.root, strerror(errno));
            table_reset();
            o.seg_size = seg_sizes[rnd_below(&r, 4)];
            left_in_store = 1 + (long)rnd_below(&r, (uint64_t)o.per_store);
            stores++;
        }
        left_in_store--;
        struct rng cr = {mix64(o.seed ^ ((uint64_t)cut * 0x100000001B3ull))};
        /* A store that failed a check is kept aside; later cuts start a
         * new one rather than repeat the same finding. */
        if (run_cut(&o, cut, &cr, &rs) != 0)
            left_in_store = 0;
        if ((cut + 1) % 50 == 0 || cut + 1 == o.cuts)
            printf("powercut: %s: %ld/%ld cuts, %ld violations, %lu acked, %.1f s\n", mode,
                   cut + 1, o.cuts, violations, rs.acked, (double)(now_us() - t0) / 1e6);
    }
    printf("powercut: %s: %lu stores, %lu acked (%lu indeterminate), %lu acked+stored "
           "checked, %lu unflushed lost as allowed, %lu pages differed (%lu torn, %lu "
           "garbage), %lu pending metadata ops dropped, %lu refusals after garbage\n",
           mode, (unsigned long)stores, rs.acked, rs.indet, rs.required, rs.lost_allowed,
           rs.pages_diff, rs.torn, rs.garbage, rs.names_dropped, garbage_refusals);
    for (int k = 0; k < V_NKINDS; k++)
        if (vcount[k] != 0)
            printf("powercut: %s: %ld violations: %s\n", mode, vcount[k], vkind_name[k]);
    printf("powercut: %s: %ld cuts, %ld violations, %.1f s\n", mode, o.cuts, violations,
           (double)(now_us() - t0) / 1e6);
    table_reset();
    rm_rf(o.root);
    return violations ? 1 : 0;
}
