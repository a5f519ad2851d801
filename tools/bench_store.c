/*
 * bench_store.c - `sprocket bench store`: the store's throughput, latency
 * and recovery time, each next to a baseline measured in the same run
 * (PERF.md: the machine is too noisy for absolute figures, so every target
 * is a ratio or a side-by-side figure).
 *
 * Phases, in one process and one run:
 *   a  baseline: write() of S-byte buffers into a page-cache file, no sync
 *   b  store_put under ASYNC_FLUSH, K writer threads
 *   e  read everything back through the ConsumeQueues (store_get x 32),
 *      from the store of b (or of d when b is not run)
 *   c  baseline: pipelined group commit (PERF.md 2.6): one writer thread
 *      write()s, one flusher thread fdatasyncs whenever the written offset
 *      moved; at most W*K messages not yet durable
 *   d  store_put under SYNC_FLUSH, K threads with W puts in flight each,
 *      retired in order as store_durable() passes them
 *   f  abnormal recovery: fill a store with R bytes, store_abandon() it (a
 *      crash), zero the checkpoint's offsets and timestamps, time store_open
 * The report prints in the order a..f, then one line of JSON, always last.
 *
 * Measuring without distorting: latencies go into per-thread log-linear
 * histograms (64 sub-buckets per power of two: <= 1.6% error, 30 KiB, no
 * allocation while running), and the put loops read the clock once per
 * put. For a store_put the latency is the time from the previous put's
 * return to this one's, which is call to return plus the few ns it takes
 * to set up the next message (a counter written as hex).
 *
 * Each store runs in its own directory under --dir, which is deleted as
 * soon as its phases are done, so the disk holds at most one store plus
 * one baseline file at a time.
 */
#include "tool.h"
#include "hist.h"
#include "common/clock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/errors.h"
#include "store/checkpoint.h"
#include "store/record.h"
#include "store/store.h"
#include "store/storeio.h"

#define BENCH_TOPIC "BenchTopic"
#define BENCH_QUEUES 8
#define BENCH_MARKER ".sprocket-bench"
#define READ_BATCH 32
#define GIB (1024ull * 1024 * 1024)

/* Targets (PERF.md, table at the top). */
#define TARGET_ASYNC_MSGS_S 2000000.0
#define TARGET_SYNC_RATIO 0.80
#define TARGET_SYNC_INFLIGHT 1000
#define TARGET_RECOVERY_MS 2000.0

struct bench_opts {
    const char *dir;
    uint64_t messages;
    uint32_t size;
    int async_threads, sync_threads;
    int inflight;
    int64_t segment;
    int run_async, run_sync;
    uint64_t recovery;
};

static void
bench_usage(FILE *out)
{
    fputs("usage: sprocket bench store [options] [--storeKey=value ...]\n"
          "\n"
          "Measures the message store next to baselines run in the same process:\n"
          "  a  write() of S-byte buffers into the page cache (no sync)\n"
          "  b  store_put under ASYNC_FLUSH                       ratio to a\n"
          "  c  pipelined group commit: write() + an fdatasync thread (W*K in flight)\n"
          "  d  store_put under SYNC_FLUSH, K threads x W in flight ratio to c\n"
          "  e  reading every message back through the ConsumeQueues (32 per get)\n"
          "  f  abnormal recovery of an R-byte log tail (crash, checkpoint zeroed)\n"
          "then prints a table, the targets and whether they were met, and one line of JSON.\n"
          "\n"
          "options:\n"
          "  --dir=DIR          work directory, wiped and recreated (default ./data/bench);\n"
          "                     a non-empty DIR must hold a " BENCH_MARKER " file from an\n"
          "                     earlier run, so nothing else is ever deleted\n"
          "  --messages=N       messages per phase (default 1000000)\n"
          "  --size=S           message body bytes (default 1024)\n"
          "  --threads=K        writer threads for b and d (default: 1 for b, 4 for d)\n"
          "  --async-threads=K  writer threads for b only\n"
          "  --sync-threads=K   writer threads for d only\n"
          "  --inflight=W       puts in flight per thread in d; c uses W*K (default 256)\n"
          "  --segment=BYTES    mappedFileSizeCommitLog for the run (default 1073741824)\n"
          "  --mode=MODE        async (a, b, e), sync (c, d, e) or both (default)\n"
          "  --recovery=BYTES   log tail for f (default 1073741824; 0 skips f)\n"
          "  --storeKey=value   any store setting (see the store's table, e.g.\n"
          "                     --writeWithoutMmap=true --warmMapedFileEnable=false);\n"
          "                     storePathRootDir and flushDiskType are set per phase\n"
          "\n"
          "targets: async >= 2,000,000 msgs/s (1 writer, 1 KiB); sync >= 80% of the group-\n"
          "commit baseline with >= 1000 in flight; abnormal recovery of 1 GiB <= 2 s.\n",
          out);
}


/* Latency histograms (hist.h) ----------------------------------------- */

static struct hist *
hist_new(void)
{
    return calloc(1, sizeof(struct hist));
}

/* Results ------------------------------------------------------------ */

struct lat {
    double p50, p90, p99, p999, max; /* microseconds */
};

struct result {
    int ran;
    uint64_t msgs;
    double secs;
    double msgs_s, mb_s;
    int has_lat;
    struct lat lat;
};

struct results {
    struct result write_base, async, gc_base, sync, read;
    uint64_t gc_fsyncs;
    uint64_t read_count;
    double async_close_ms;
    int recovery_ran;
    uint64_t recovery_bytes, recovery_records, recovery_redispatched;
    int64_t recovery_ms, recovery_scan_ms, recovery_truncate_ms, recovery_dispatch_ms;
    double recovery_wall_ms;
    int recovery_abnormal, recovery_complete;
};

static void
result_set(struct result *r, uint64_t msgs, uint64_t ns, uint32_t size, const struct hist *h)
{
    r->ran = 1;
    r->msgs = msgs;
    r->secs = (double)ns / 1e9;
    r->msgs_s = r->secs > 0 ? (double)msgs / r->secs : 0;
    r->mb_s = r->msgs_s * size / 1e6;
    if (h != NULL && h->n > 0) {
        r->has_lat = 1;
        r->lat.p50 = (double)hist_pct(h, 0.50) / 1e3;
        r->lat.p90 = (double)hist_pct(h, 0.90) / 1e3;
        r->lat.p99 = (double)hist_pct(h, 0.99) / 1e3;
        r->lat.p999 = (double)hist_pct(h, 0.999) / 1e3;
        r->lat.max = (double)h->max / 1e3;
    }
}

/* Files and directories ---------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level == 0)
        return 0; /* keep the top directory itself */
    return remove(path) == -1 ? -1 : 0;
}

/* Deletes everything under <dir> (not <dir> itself). */
static int
rm_contents(const char *dir)
{
    return nftw(dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS) == -1 ? -errno : 0;
}

static int
rm_tree(const char *dir)
{
    int rc = rm_contents(dir);
    if (rc == 0 && rmdir(dir) == -1 && errno != ENOENT)
        rc = -errno;
    return rc;
}

static int
dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int empty = 1;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

/*
 * Makes <dir> an empty work directory holding only the marker. An existing
 * directory is wiped only when it holds the marker of an earlier run (or
 * nothing at all), so a mistyped --dir can never delete anyone's data.
 */
static int
prepare_dir(const char *dir, char *err, size_t errlen)
{
    char marker[PATH_MAX];
    struct stat st;
    int rc, fd;

    snprintf(marker, sizeof(marker), "%s/%s", dir, BENCH_MARKER);
    if (stat(dir, &st) == -1) {
        if (errno != ENOENT) {
            rc = -errno;
            snprintf(err, errlen, "%s: %s", dir, spk_strerror(rc));
            return rc;
        }
        rc = sio_mkdirs(dir);
        if (rc != 0) {
            snprintf(err, errlen, "cannot create %s: %s", dir, spk_strerror(rc));
            return rc;
        }
    } else if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory; give a new or empty directory with --dir",
                 dir);
        return -ENOTDIR;
    } else if (access(marker, F_OK) == 0) {
        rc = rm_contents(dir);
        if (rc != 0) {
            snprintf(err, errlen, "cannot wipe %s: %s", dir, spk_strerror(rc));
            return rc;
        }
    } else if (!dir_is_empty(dir)) {
        snprintf(err, errlen,
                 "refusing to wipe %s: it is not empty and holds no %s file from an earlier "
                 "run; give a new or empty directory with --dir",
                 dir, BENCH_MARKER);
        return -EEXIST;
    }
    fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", marker, spk_strerror(rc));
        return rc;
    }
    close(fd);
    return 0;
}

/* write() of exactly <len> bytes; a short write is an error (ENOSPC in practice). */
static int
write_all(int fd, const void *buf, size_t len)
{
    ssize_t n;

    do {
        n = write(fd, buf, len);
    } while (n == -1 && errno == EINTR);
    if (n == -1)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

/* Messages ----------------------------------------------------------- */

/*
 * One writer's message. The properties are those a RocketMQ client sends
 * (TAGS, WAIT, UNIQ_KEY); UNIQ_KEY is 32 hex characters: address, pid and
 * writer index, then a 48-bit sequence that msg_next() rewrites in place.
 */
struct bench_msg {
    struct rec_msg m;
    char props[128];
    char *seq_hex; /* the last 12 hex digits of UNIQ_KEY inside props */
    uint8_t *body;
};

static int
msg_init(struct bench_msg *bm, uint32_t size, unsigned writer)
{
    int n;

    memset(bm, 0, sizeof(*bm));
    n = snprintf(bm->props, sizeof(bm->props),
                 "TAGS\001TagA\002WAIT\001true\002UNIQ_KEY\001%08X%04X%08X000000000000\002",
                 0x7F000001u, (unsigned)getpid() & 0xFFFFu, writer);
    bm->seq_hex = bm->props + n - 13;
    bm->body = malloc(size ? size : 1);
    if (bm->body == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < size; i++)
        bm->body[i] = (uint8_t)('a' + (i + writer) % 26);
    bm->m.topic = BENCH_TOPIC;
    bm->m.topic_len = strlen(BENCH_TOPIC);
    bm->m.body = bm->body;
    bm->m.body_len = size;
    bm->m.props = bm->props;
    bm->m.props_len = (size_t)n;
    bm->m.born_ts = spk_wall_ms();
    memcpy(bm->m.born_host, "\x7f\x00\x00\x01", 4);
    bm->m.born_host_len = 4;
    bm->m.born_port = (int32_t)(40000 + writer);
    memcpy(bm->m.store_host, "\x7f\x00\x00\x01", 4);
    bm->m.store_host_len = 4;
    bm->m.store_port = 10911;
    return 0;
}

static inline void
msg_next(struct bench_msg *bm, uint64_t seq, int32_t queue_id)
{
    static const char hex[] = "0123456789ABCDEF";

    for (int i = 11; i >= 0; i--) {
        bm->seq_hex[i] = hex[seq & 15];
        seq >>= 4;
    }
    bm->m.queue_id = queue_id;
}

static void
msg_free(struct bench_msg *bm)
{
    free(bm->body);
    bm->body = NULL;
}

/* Store writers (phases b, d, f) -------------------------------------- */

struct writer {
    pthread_t tid;
    struct store *s;
    pthread_barrier_t *barrier;
    unsigned index;
    uint64_t count;
    uint32_t size;
    int inflight;
    struct hist *hist;
    uint64_t t_start, t_end;
    uint32_t rec_len; /* encoded length of one message */
    int err;
};

/* b: store_put in a loop; one clock read per put. */
static void *
async_writer(void *arg)
{
    struct writer *w = arg;
    struct bench_msg bm;
    struct store_put_result res;
    uint64_t t, t2;
    int ok = msg_init(&bm, w->size, w->index) == 0;

    pthread_barrier_wait(w->barrier);
    t = w->t_start = spk_mono_ns();
    if (!ok) {
        w->err = -ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < w->count; i++) {
        int rc;

        msg_next(&bm, i, (int32_t)((w->index + i) % BENCH_QUEUES));
        if ((i & 4095) == 0)
            bm.m.born_ts = spk_wall_ms();
        rc = store_put(w->s, &bm.m, &res);
        t2 = spk_mono_ns();
        if (rc != 0) {
            w->err = rc;
            break;
        }
        w->rec_len = res.bytes;
        hist_add(w->hist, t2 - t);
        t = t2;
    }
out:
    w->t_end = t;
    msg_free(&bm);
    return NULL;
}

struct pending {
    uint64_t end; /* wait for durable >= end */
    uint64_t t0;  /* when the put was called */
};

/* Retires, in put order, every pending put the durable offset <d> covers. */
static inline void
retire(struct writer *w, struct pending *ring, uint64_t *head, uint64_t tail, uint64_t d,
       uint64_t t)
{
    uint64_t cap = (uint64_t)w->inflight;

    while (*head < tail && ring[*head % cap].end <= d) {
        hist_add(w->hist, t - ring[*head % cap].t0);
        (*head)++;
    }
}

/*
 * d: keeps up to <inflight> puts outstanding. A put is retired when
 * store_durable() covers its end; with the window full, the writer blocks
 * in store_wait_durable() on the oldest, as a broker parks a request.
 */
static void *
sync_writer(void *arg)
{
    struct writer *w = arg;
    struct bench_msg bm;
    struct store_put_result res;
    uint64_t cap = (uint64_t)w->inflight, head = 0, tail = 0;
    struct pending *ring = calloc(cap, sizeof(*ring));
    int ok = ring != NULL && msg_init(&bm, w->size, w->index) == 0;

    pthread_barrier_wait(w->barrier);
    w->t_start = spk_mono_ns();
    if (!ok) {
        w->err = -ENOMEM;
        goto out;
    }
    for (uint64_t i = 0; i < w->count; i++) {
        int rc;

        if (head < tail) {
            uint64_t d = store_durable(w->s);
            if (ring[head % cap].end <= d)
                retire(w, ring, &head, tail, d, spk_mono_ns());
        }
        if (tail - head == cap) {
            rc = store_wait_durable(w->s, ring[head % cap].end, 10000);
            if (rc != 0) {
                w->err = rc;
                goto out;
            }
            retire(w, ring, &head, tail, store_durable(w->s), spk_mono_ns());
        }
        msg_next(&bm, i, (int32_t)((w->index + i) % BENCH_QUEUES));
        if ((i & 4095) == 0)
            bm.m.born_ts = spk_wall_ms();
        ring[tail % cap].t0 = spk_mono_ns();
        rc = store_put(w->s, &bm.m, &res);
        if (rc != 0) {
            w->err = rc;
            goto out;
        }
        w->rec_len = res.bytes;
        ring[tail % cap].end = res.end;
        tail++;
    }
    while (head < tail) {
        int rc = store_wait_durable(w->s, ring[head % cap].end, 10000);
        if (rc != 0) {
            w->err = rc;
            break;
        }
        retire(w, ring, &head, tail, store_durable(w->s), spk_mono_ns());
    }
out:
    w->t_end = spk_mono_ns();
    if (ok)
        msg_free(&bm);
    free(ring);
    return NULL;
}

/*
 * Runs <nthreads> writers of <fn> over <total> messages on <s>. Returns 0
 * with the merged histogram and the span from the common start to the
 * last writer's end, or the first writer's error.
 */
static int
run_writers(struct store *s, void *(*fn)(void *), int nthreads, uint64_t total, uint32_t size,
            int inflight, struct hist *merged, uint64_t *span_ns, uint32_t *rec_len)
{
    struct writer *ws = calloc((size_t)nthreads, sizeof(*ws));
    pthread_barrier_t barrier;
    uint64_t start = UINT64_MAX, end = 0;
    int rc = 0, started = 0;

    if (ws == NULL)
        return -ENOMEM;
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
        ws[i].s = s;
        ws[i].barrier = &barrier;
        ws[i].index = (unsigned)i;
        ws[i].count = total / (uint64_t)nthreads + ((uint64_t)i < total % (uint64_t)nthreads);
        ws[i].size = size;
        ws[i].inflight = inflight;
        ws[i].hist = hist_new();
        if (ws[i].hist == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        memset(ws[i].hist, 0, sizeof(*ws[i].hist)); /* touch it now, not while timing */
    }
    for (int i = 0; i < nthreads; i++) {
        int e = pthread_create(&ws[i].tid, NULL, fn, &ws[i]);
        if (e != 0) {
            /* The barrier counts every thread: without them all, none starts. */
            fprintf(stderr, "sprocket bench store: cannot start a writer thread: %s\n",
                    strerror(e));
            exit(TOOL_EXIT_FAIL);
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(ws[i].tid, NULL);
    for (int i = 0; i < nthreads; i++) {
        if (ws[i].err != 0 && rc == 0)
            rc = ws[i].err;
        if (ws[i].t_start < start)
            start = ws[i].t_start;
        if (ws[i].t_end > end)
            end = ws[i].t_end;
        hist_merge(merged, ws[i].hist);
        if (ws[i].rec_len != 0)
            *rec_len = ws[i].rec_len;
    }
    *span_ns = end > start ? end - start : 0;
out:
    for (int i = 0; i < nthreads; i++)
        free(ws[i].hist);
    pthread_barrier_destroy(&barrier);
    free(ws);
    return rc;
}

/* Baselines (phases a, c) -------------------------------------------- */

/* a: write() of <size>-byte buffers into a fresh file, no sync. */
static int
baseline_write(const char *dir, uint64_t n, uint32_t size, uint32_t wsize, struct result *r)
{
    char path[PATH_MAX];
    uint8_t *buf = malloc(wsize ? wsize : 1);
    uint64_t t0, t1;
    int fd = -1, rc = 0;

    if (buf == NULL)
        return -ENOMEM;
    memset(buf, 'w', wsize);
    snprintf(path, sizeof(path), "%s/baseline-write.dat", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1) {
        rc = -errno;
        goto fail;
    }
    t0 = spk_mono_ns();
    for (uint64_t i = 0; i < n && rc == 0; i++)
        rc = write_all(fd, buf, wsize);
    t1 = spk_mono_ns();
    if (rc != 0)
        goto fail;
    result_set(r, n, t1 - t0, size, NULL);
fail:
    if (fd != -1)
        close(fd);
    /* Unlinking drops the dirty pages, so they do not compete with the store's writeback. */
    unlink(path);
    free(buf);
    return rc;
}

/*
 * c: the pipelined group commit of PERF.md 2.6. The writer (calling
 * thread) appends and publishes a count; the flusher fdatasyncs whenever
 * the count moved and stamps every message it covered. Each side sleeps
 * on a condition variable only after announcing it in a flag, and the
 * other side signals only when the flag is up, so the hot path takes no
 * lock. (Flag store then counter load on one side, counter store then flag
 * load on the other, all sequentially consistent: one of them must see
 * the other, so a wakeup is never lost.)
 */
struct gc {
    int fd;
    uint64_t n, window;
    _Atomic uint64_t written, durable; /* message counts */
    _Atomic int writer_waiting, flusher_waiting, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_writer, cv_flusher;
    uint64_t *t_write; /* ring of <window> write times */
    struct hist *hist;
    uint64_t fsyncs, t_end;
    int err;
};

static void
gc_wait_change(struct gc *g, _Atomic uint64_t *var, uint64_t old, _Atomic int *flag,
               pthread_cond_t *cv)
{
    pthread_mutex_lock(&g->mu);
    atomic_store(flag, 1);
    while (atomic_load(var) == old && !atomic_load(&g->stop))
        pthread_cond_wait(cv, &g->mu);
    atomic_store(flag, 0);
    pthread_mutex_unlock(&g->mu);
}

static void
gc_wake(struct gc *g, _Atomic int *flag, pthread_cond_t *cv)
{
    if (atomic_load(flag)) {
        pthread_mutex_lock(&g->mu);
        pthread_cond_signal(cv);
        pthread_mutex_unlock(&g->mu);
    }
}

static void
gc_stop(struct gc *g)
{
    pthread_mutex_lock(&g->mu);
    atomic_store(&g->stop, 1);
    pthread_cond_broadcast(&g->cv_writer);
    pthread_cond_broadcast(&g->cv_flusher);
    pthread_mutex_unlock(&g->mu);
}

static void *
gc_flusher(void *arg)
{
    struct gc *g = arg;
    uint64_t d = 0;

    while (d < g->n) {
        uint64_t w = atomic_load(&g->written), t;

        if (w == d) {
            if (atomic_load(&g->stop))
                break;
            gc_wait_change(g, &g->written, d, &g->flusher_waiting, &g->cv_flusher);
            continue;
        }
        if (fdatasync(g->fd) == -1) {
            g->err = -errno;
            gc_stop(g);
            break;
        }
        t = spk_mono_ns();
        g->fsyncs++;
        for (uint64_t j = d; j < w; j++)
            hist_add(g->hist, t - g->t_write[j % g->window]);
        d = w;
        atomic_store(&g->durable, d);
        gc_wake(g, &g->writer_waiting, &g->cv_writer);
    }
    g->t_end = spk_mono_ns();
    return NULL;
}

static int
baseline_gc(const char *dir, uint64_t n, uint32_t size, uint32_t wsize, uint64_t window,
            struct result *r, uint64_t *fsyncs)
{
    char path[PATH_MAX];
    struct gc g;
    pthread_t flusher;
    uint8_t *buf = malloc(wsize ? wsize : 1);
    uint64_t t0;
    int rc = 0, e;

    memset(&g, 0, sizeof(g));
    g.fd = -1;
    g.n = n;
    g.window = window;
    g.t_write = calloc(window, sizeof(*g.t_write));
    g.hist = hist_new();
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv_writer, NULL);
    pthread_cond_init(&g.cv_flusher, NULL);
    if (buf == NULL || g.t_write == NULL || g.hist == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    memset(buf, 'g', wsize);
    memset(g.hist, 0, sizeof(*g.hist));
    snprintf(path, sizeof(path), "%s/baseline-gc.dat", dir);
    g.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (g.fd == -1) {
        rc = -errno;
        goto out;
    }
    e = pthread_create(&flusher, NULL, gc_flusher, &g);
    if (e != 0) {
        rc = -e;
        goto out;
    }
    t0 = spk_mono_ns();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t d;

        while (i - (d = atomic_load(&g.durable)) >= window && !atomic_load(&g.stop))
            gc_wait_change(&g, &g.durable, d, &g.writer_waiting, &g.cv_writer);
        if (atomic_load(&g.stop))
            break;
        rc = write_all(g.fd, buf, wsize);
        if (rc != 0)
            break;
        g.t_write[i % window] = spk_mono_ns();
        atomic_store(&g.written, i + 1);
        gc_wake(&g, &g.flusher_waiting, &g.cv_flusher);
    }
    if (rc != 0)
        gc_stop(&g);
    pthread_join(flusher, NULL);
    if (rc == 0)
        rc = g.err;
    if (rc == 0) {
        result_set(r, n, g.t_end - t0, size, g.hist);
        *fsyncs = g.fsyncs;
    }
out:
    if (g.fd != -1) {
        close(g.fd);
        unlink(path);
    }
    pthread_cond_destroy(&g.cv_writer);
    pthread_cond_destroy(&g.cv_flusher);
    pthread_mutex_destroy(&g.mu);
    free(g.hist);
    free(g.t_write);
    free(buf);
    return rc;
}

/* Store phases -------------------------------------------------------- */

struct bench {
    struct bench_opts o;
    struct store_config sc;
    struct cfg_target t;
    struct results r;
    uint32_t rec_size; /* the store's record size for one benchmark message */
    char err[512];
};

static int
bench_open(struct bench *b, const char *sub, int flush_type, struct store **s,
           struct store_open_info *info)
{
    char root[PATH_MAX], cerr[CFG_ERR_MAX];
    int rc;

    snprintf(root, sizeof(root), "%s/%s", b->o.dir, sub);
    rc = cfg_set(&b->t, 1, "storePathRootDir", root, cerr, sizeof(cerr));
    if (rc != 0) {
        snprintf(b->err, sizeof(b->err), "storePathRootDir: %s", cerr);
        return rc;
    }
    b->sc.flushDiskType = flush_type;
    rc = store_open(&b->sc, s, info, b->err, sizeof(b->err));
    if (rc != 0 && b->err[0] == '\0')
        snprintf(b->err, sizeof(b->err), "cannot open the store in %s: %s", root, spk_strerror(rc));
    return rc;
}

static void
bench_remove(struct bench *b, const char *sub)
{
    char root[PATH_MAX];

    snprintf(root, sizeof(root), "%s/%s", b->o.dir, sub);
    if (rm_tree(root) != 0)
        fprintf(stderr, "sprocket bench store: warning: cannot remove %s\n", root);
}

/* Waits until the dispatcher has caught up with every appended byte. */
static int
wait_dispatched(struct store *s, int timeout_s)
{
    uint64_t deadline = spk_mono_ns() + (uint64_t)timeout_s * 1000000000u;
    struct timespec nap = {0, 1000000};

    while (store_dispatched(s) < store_written(s)) {
        if (store_failed(s) != 0)
            return store_failed(s);
        if (spk_mono_ns() > deadline)
            return SPK_ETIMEOUT;
        nanosleep(&nap, NULL);
    }
    return 0;
}

/* e: every queue from its first offset, READ_BATCH messages per store_get. */
static int
read_back(struct bench *b, struct store *s, uint64_t expect, uint32_t rec_len)
{
    struct store_get_result *res = malloc(sizeof(*res));
    uint64_t t0, count = 0;
    int rc;

    if (res == NULL)
        return -ENOMEM;
    rc = wait_dispatched(s, 120);
    if (rc != 0) {
        snprintf(b->err, sizeof(b->err), "dispatch did not catch up: %s", spk_strerror(rc));
        goto out;
    }
    t0 = spk_mono_ns();
    for (int32_t q = 0; q < BENCH_QUEUES && rc == 0; q++) {
        uint64_t qoff = 0, qmax = 0;

        if (store_queue_bounds(s, BENCH_TOPIC, q, &qoff, &qmax) != 0)
            continue;
        for (;;) {
            rc = store_get(s, BENCH_TOPIC, q, qoff, READ_BATCH, 1u << 20, NULL, res);
            if (rc != 0) {
                snprintf(b->err, sizeof(b->err), "store_get(%s, %d, %" PRIu64 "): %s", BENCH_TOPIC,
                         q, qoff, spk_strerror(rc));
                break;
            }
            if (res->status != STORE_FOUND || res->count == 0) {
                store_get_release(res);
                break;
            }
            for (size_t k = 0; k < res->count; k++) {
                const struct store_msg_view *v = &res->msgs[k];
                if (v->len != rec_len || be_get32(v->data) != v->len) {
                    snprintf(b->err, sizeof(b->err),
                             "message at log offset %" PRIu64 " read back as %" PRIu32
                             " bytes, written as %" PRIu32,
                             v->phys_off, v->len, rec_len);
                    rc = SPK_ECORRUPT;
                }
            }
            count += res->count;
            qoff = res->next_begin_offset;
            store_get_release(res);
            if (rc != 0)
                break;
        }
    }
    if (rc == 0) {
        result_set(&b->r.read, count, spk_mono_ns() - t0, b->o.size, NULL);
        b->r.read_count = count;
        if (count != expect) {
            snprintf(b->err, sizeof(b->err),
                     "read back %" PRIu64 " messages through the queues, %" PRIu64 " were written",
                     count, expect);
            rc = SPK_ECORRUPT;
        }
    }
out:
    free(res);
    return rc;
}

/* b (+ e when <read>): store_put under ASYNC_FLUSH. */
static int
phase_async(struct bench *b, int read)
{
    struct store *s = NULL;
    struct store_open_info info;
    struct hist *h = hist_new();
    uint64_t span = 0, t0;
    uint32_t rec_len = 0;
    int rc;

    if (h == NULL)
        return -ENOMEM;
    rc = bench_open(b, "async", STORE_ASYNC_FLUSH, &s, &info);
    if (rc != 0)
        goto out;
    rc = run_writers(s, async_writer, b->o.async_threads, b->o.messages, b->o.size, 0, h, &span,
                     &rec_len);
    if (rc != 0) {
        snprintf(b->err, sizeof(b->err), "store_put under ASYNC_FLUSH: %s", spk_strerror(rc));
        goto out;
    }
    result_set(&b->r.async, b->o.messages, span, b->o.size, h);
    if (read)
        rc = read_back(b, s, b->o.messages, rec_len);
out:
    if (s != NULL) {
        int crc;
        t0 = spk_mono_ns();
        crc = store_close(s);
        b->r.async_close_ms = (double)(spk_mono_ns() - t0) / 1e6;
        if (crc != 0 && rc == 0) {
            snprintf(b->err, sizeof(b->err), "store_close: %s", spk_strerror(crc));
            rc = crc;
        }
    }
    bench_remove(b, "async");
    free(h);
    return rc;
}

/* d (+ e when <read>): store_put under SYNC_FLUSH with a window of puts in flight. */
static int
phase_sync(struct bench *b, int read)
{
    struct store *s = NULL;
    struct store_open_info info;
    struct hist *h = hist_new();
    uint64_t span = 0;
    uint32_t rec_len = 0;
    int rc;

    if (h == NULL)
        return -ENOMEM;
    rc = bench_open(b, "sync", STORE_SYNC_FLUSH, &s, &info);
    if (rc != 0)
        goto out;
    rc = run_writers(s, sync_writer, b->o.sync_threads, b->o.messages, b->o.size, b->o.inflight, h,
                     &span, &rec_len);
    if (rc != 0) {
        snprintf(b->err, sizeof(b->err), "store_put under SYNC_FLUSH: %s", spk_strerror(rc));
        goto out;
    }
    result_set(&b->r.sync, b->o.messages, span, b->o.size, h);
    if (read)
        rc = read_back(b, s, b->o.messages, rec_len);
out:
    if (s != NULL) {
        int crc = store_close(s);
        if (crc != 0 && rc == 0) {
            snprintf(b->err, sizeof(b->err), "store_close: %s", spk_strerror(crc));
            rc = crc;
        }
    }
    bench_remove(b, "sync");
    free(h);
    return rc;
}

/*
 * f: a crash with an R-byte tail that recovery must re-scan and re-dispatch
 * in full. store_abandon() leaves the abort file and no clean checkpoint;
 * zeroing the checkpoint's offsets and timestamps (with a valid extension,
 * so they are believed) makes the whole log the tail.
 */
static int
phase_recovery(struct bench *b)
{
    struct store *s = NULL;
    struct store_open_info info;
    struct store_put_result res;
    struct bench_msg bm;
    struct ckpt zero;
    uint8_t buf[CKPT_FILE_SIZE];
    char path[PATH_MAX];
    uint64_t written, records = 0, t0, t1;
    int rc, fd;

    if (msg_init(&bm, b->o.size, 0) != 0)
        return -ENOMEM;
    rc = bench_open(b, "recovery", STORE_ASYNC_FLUSH, &s, &info);
    if (rc != 0)
        goto out;
    do {
        msg_next(&bm, records, (int32_t)(records % BENCH_QUEUES));
        rc = store_put(s, &bm.m, &res);
        records++;
    } while (rc == 0 && res.end < info.clog_max + b->o.recovery);
    if (rc != 0) {
        snprintf(b->err, sizeof(b->err), "filling the recovery store: %s", spk_strerror(rc));
        goto out;
    }
    written = store_written(s);
    store_abandon(s);
    s = NULL;

    memset(&zero, 0, sizeof(zero));
    ckpt_encode(&zero, buf);
    snprintf(path, sizeof(path), "%s/recovery/checkpoint", b->o.dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1 || pwrite(fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
        rc = -errno;
        snprintf(b->err, sizeof(b->err), "cannot rewrite %s: %s", path, spk_strerror(rc));
        if (fd != -1)
            close(fd);
        goto out;
    }
    close(fd);

    t0 = spk_mono_ns();
    rc = bench_open(b, "recovery", STORE_ASYNC_FLUSH, &s, &info);
    t1 = spk_mono_ns();
    if (rc != 0)
        goto out;
    b->r.recovery_ran = 1;
    b->r.recovery_bytes = written - info.clog_min;
    b->r.recovery_records = records;
    b->r.recovery_redispatched = info.redispatched;
    b->r.recovery_ms = info.recovery_ms;
    b->r.recovery_scan_ms = info.scan_ms;
    b->r.recovery_truncate_ms = info.truncate_ms;
    b->r.recovery_dispatch_ms = info.dispatch_ms;
    b->r.recovery_wall_ms = (double)(t1 - t0) / 1e6;
    b->r.recovery_abnormal = info.abnormal;
    b->r.recovery_complete = info.clog_max == written;
out:
    if (s != NULL)
        store_close(s);
    bench_remove(b, "recovery");
    msg_free(&bm);
    return rc;
}

/* Report -------------------------------------------------------------- */

/* <v> with thousands separators and no decimals. */
static const char *
fmt_count(double v, char *buf, size_t len)
{
    char raw[32];
    size_t n, o = 0;

    snprintf(raw, sizeof(raw), "%.0f", v);
    n = strlen(raw);
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

static void
print_row(const char *tag, const char *label, const struct result *r, const char *ratio)
{
    char c[32];

    if (!r->ran) {
        printf("%-2s %-38s %12s\n", tag, label, "not run");
        return;
    }
    printf("%-2s %-38s %12s %9.1f %9s", tag, label, fmt_count(r->msgs_s, c, sizeof(c)), r->mb_s,
           ratio);
    if (r->has_lat)
        printf(" %8.1f %8.1f %8.1f %8.1f %9.1f", r->lat.p50, r->lat.p90, r->lat.p99, r->lat.p999,
               r->lat.max);
    putchar('\n');
}

/* A tiny JSON object writer: numbers, booleans and null only. */
struct json {
    char buf[4096];
    size_t len;
};

static void json_add(struct json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
json_add(struct json *j, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (j->len >= sizeof(j->buf))
        return;
    va_start(ap, fmt);
    n = vsnprintf(j->buf + j->len, sizeof(j->buf) - j->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        j->len += (size_t)n;
}

static void
json_num(struct json *j, const char *key, int present, double v, int decimals)
{
    if (present)
        json_add(j, ",\"%s\":%.*f", key, decimals, v);
    else
        json_add(j, ",\"%s\":null", key);
}

/* <state>: -1 not evaluated (null), 0 false, 1 true. */
static void
json_bool(struct json *j, const char *key, int state)
{
    json_add(j, ",\"%s\":%s", key, state < 0 ? "null" : state ? "true" : "false");
}

static void
json_result(struct json *j, const char *prefix, const struct result *r, int with_lat)
{
    char k[64];

    snprintf(k, sizeof(k), "%s_msgs_s", prefix);
    json_num(j, k, r->ran, r->msgs_s, 0);
    snprintf(k, sizeof(k), "%s_mb_s", prefix);
    json_num(j, k, r->ran, r->mb_s, 1);
    if (!with_lat)
        return;
    snprintf(k, sizeof(k), "%s_p50_us", prefix);
    json_num(j, k, r->has_lat, r->lat.p50, 2);
    snprintf(k, sizeof(k), "%s_p90_us", prefix);
    json_num(j, k, r->has_lat, r->lat.p90, 2);
    snprintf(k, sizeof(k), "%s_p99_us", prefix);
    json_num(j, k, r->has_lat, r->lat.p99, 2);
    snprintf(k, sizeof(k), "%s_p999_us", prefix);
    json_num(j, k, r->has_lat, r->lat.p999, 2);
    snprintf(k, sizeof(k), "%s_max_us", prefix);
    json_num(j, k, r->has_lat, r->lat.max, 2);
}

static void
report(const struct bench *b)
{
    const struct results *r = &b->r;
    const struct bench_opts *o = &b->o;
    int async_ok = -1, sync_ok = -1, rec_ok = -1;
    double async_ratio = 0, sync_ratio = 0;
    int has_async_ratio = r->async.ran && r->write_base.ran && r->write_base.msgs_s > 0;
    int has_sync_ratio = r->sync.ran && r->gc_base.ran && r->gc_base.msgs_s > 0;
    uint64_t window = (uint64_t)o->inflight * (uint64_t)o->sync_threads;
    char label[64], ratio[16], c[32];
    struct json j;

    if (has_async_ratio)
        async_ratio = r->async.msgs_s / r->write_base.msgs_s;
    if (has_sync_ratio)
        sync_ratio = r->sync.msgs_s / r->gc_base.msgs_s;

    printf("\nsprocket bench store: %" PRIu64 " messages of %" PRIu32 " bytes, CommitLog segment "
           "%" PRId64 " bytes, %s\n\n",
           o->messages, o->size, o->segment, o->dir);
    printf("%-2s %-38s %12s %9s %9s %8s %8s %8s %8s %9s\n", "", "phase", "msgs/s", "MB/s", "ratio",
           "p50 us", "p90 us", "p99 us", "p99.9 us", "max us");
    print_row("a", "baseline: write() to page cache", &r->write_base, "");
    snprintf(label, sizeof(label), "store ASYNC_FLUSH, %d writer(s)", o->async_threads);
    snprintf(ratio, sizeof(ratio), "%.2fx a", async_ratio);
    print_row("b", label, &r->async, has_async_ratio ? ratio : "");
    snprintf(label, sizeof(label), "baseline: group commit, %" PRIu64 " in flight", window);
    print_row("c", label, &r->gc_base, "");
    snprintf(label, sizeof(label), "store SYNC_FLUSH, %d x %d in flight", o->sync_threads,
             o->inflight);
    snprintf(ratio, sizeof(ratio), "%.2fx c", sync_ratio);
    print_row("d", label, &r->sync, has_sync_ratio ? ratio : "");
    print_row("e", "read back via ConsumeQueue, 32 per get", &r->read, "");
    if (r->recovery_ran)
        printf("f  abnormal recovery of %" PRIu64 " bytes (%" PRIu64 " records): store_open "
               "%.0f ms wall, recovery_ms %" PRId64 ", redispatched %" PRIu64 "%s%s\n",
               r->recovery_bytes, r->recovery_records, r->recovery_wall_ms, r->recovery_ms,
               r->recovery_redispatched, r->recovery_abnormal ? "" : ", NOT seen as abnormal",
               r->recovery_complete ? "" : ", LOG NOT FULLY RECOVERED");
    else
        printf("f  abnormal recovery: not run\n");
    if (r->recovery_ran)
        printf("   recovery phases: scan (CRCs) %" PRId64 " ms, truncate %" PRId64
               " ms, re-dispatch %" PRId64 " ms\n",
               r->recovery_scan_ms, r->recovery_truncate_ms, r->recovery_dispatch_ms);
    printf("\nlatency: b = store_put call to return (one clock read per put); c = write() to\n"
           "the fdatasync that covers it; d = store_put call to store_durable() covering it.\n"
           "MB/s counts message bodies (%" PRIu32 " bytes each), 1 MB = 10^6 bytes.\n"
           "Baselines a and c write %" PRIu32 "-byte buffers, the size of the store's record\n"
           "for such a body, so both sides move the same bytes.\n",
           o->size, b->rec_size);
    if (r->async.ran)
        printf("ASYNC store_close (final flush) took %.0f ms, not counted above.\n",
               r->async_close_ms);

    printf("\ntargets (PERF.md):\n");
    if (r->async.ran && o->async_threads == 1 && o->size == 1024) {
        async_ok = r->async.msgs_s >= TARGET_ASYNC_MSGS_S;
        printf("  async, 1 writer, 1 KiB:   >= 2,000,000 msgs/s    %12s  %s\n",
               fmt_count(r->async.msgs_s, c, sizeof(c)), async_ok ? "met" : "NOT MET");
    } else {
        printf("  async, 1 writer, 1 KiB:   >= 2,000,000 msgs/s    not evaluated (needs phase b "
               "with --async-threads=1 --size=1024)\n");
    }
    if (has_sync_ratio && window >= TARGET_SYNC_INFLIGHT) {
        sync_ok = sync_ratio >= TARGET_SYNC_RATIO;
        printf("  sync, >= 1000 in flight:  >= 80%% of baseline c   %11.0f%%  %s\n",
               sync_ratio * 100, sync_ok ? "met" : "NOT MET");
    } else {
        printf("  sync, >= 1000 in flight:  >= 80%% of baseline c   not evaluated (needs phases c "
               "and d with threads x inflight >= 1000)\n");
    }
    if (r->recovery_ran && o->recovery == GIB) {
        rec_ok = r->recovery_wall_ms <= TARGET_RECOVERY_MS && r->recovery_complete;
        printf("  abnormal recovery, 1 GiB: <= 2,000 ms            %9.0f ms  %s\n",
               r->recovery_wall_ms, rec_ok ? "met" : "NOT MET");
    } else {
        printf("  abnormal recovery, 1 GiB: <= 2,000 ms            not evaluated (needs "
               "--recovery=1073741824)\n");
    }

    memset(&j, 0, sizeof(j));
    json_add(&j,
             "{\"bench\":\"store\",\"messages\":%" PRIu64 ",\"size\":%" PRIu32
             ",\"segment\":%" PRId64 ",\"async_threads\":%d,\"sync_threads\":%d"
             ",\"inflight\":%d",
             o->messages, o->size, o->segment, o->async_threads, o->sync_threads, o->inflight);
    json_result(&j, "baseline_write", &r->write_base, 0);
    json_result(&j, "async", &r->async, 1);
    json_num(&j, "async_ratio", has_async_ratio, async_ratio, 3);
    json_result(&j, "baseline_gc", &r->gc_base, 1);
    json_num(&j, "baseline_gc_fsyncs", r->gc_base.ran, (double)r->gc_fsyncs, 0);
    json_num(&j, "record_size", 1, (double)b->rec_size, 0);
    json_result(&j, "sync", &r->sync, 1);
    json_num(&j, "sync_ratio", has_sync_ratio, sync_ratio, 3);
    json_result(&j, "read", &r->read, 0);
    json_num(&j, "recovery_bytes", r->recovery_ran, (double)r->recovery_bytes, 0);
    json_num(&j, "recovery_ms", r->recovery_ran, (double)r->recovery_ms, 0);
    json_num(&j, "recovery_wall_ms", r->recovery_ran, r->recovery_wall_ms, 1);
    json_num(&j, "recovery_scan_ms", r->recovery_ran, (double)r->recovery_scan_ms, 0);
    json_num(&j, "recovery_dispatch_ms", r->recovery_ran, (double)r->recovery_dispatch_ms, 0);
    json_num(&j, "recovery_redispatched", r->recovery_ran, (double)r->recovery_redispatched, 0);
    json_bool(&j, "async_target_met", async_ok);
    json_bool(&j, "sync_target_met", sync_ok);
    json_bool(&j, "recovery_target_met", rec_ok);
    json_add(&j, "}");
    printf("\n%s\n", j.buf);
}

/* Options ------------------------------------------------------------- */

static int
parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parses what cfg_parse_args left. Returns 1 after --help, -1 after an error. */
static int
parse_opts(int argc, char **argv, struct bench_opts *o, int *segment_set)
{
    struct {
        const char *name;
        uint64_t min, max;
        uint64_t *u64;
        int *i32;
    } nums[] = {
        {"--messages=", 1, UINT64_MAX / 2, &o->messages, NULL},
        {"--threads=", 1, 256, NULL, NULL},
        {"--async-threads=", 1, 256, NULL, &o->async_threads},
        {"--sync-threads=", 1, 256, NULL, &o->sync_threads},
        {"--inflight=", 1, 1u << 20, NULL, &o->inflight},
        {"--recovery=", 0, UINT64_MAX / 4, &o->recovery, NULL},
    };
    int threads_set = 0, async_set = 0, sync_set = 0;
    uint64_t threads = 0, v;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t k;

        if (tool_is_help(a)) {
            bench_usage(stdout);
            return 1;
        }
        if (strncmp(a, "--dir=", 6) == 0 && a[6] != '\0') {
            o->dir = a + 6;
            continue;
        }
        if (strncmp(a, "--size=", 7) == 0) {
            if (parse_u64(a + 7, 1, 64u << 20, &v) != 0)
                goto bad_number;
            o->size = (uint32_t)v;
            continue;
        }
        if (strncmp(a, "--segment=", 10) == 0) {
            if (parse_u64(a + 10, 1u << 16, INT64_MAX, &v) != 0)
                goto bad_number;
            o->segment = (int64_t)v;
            *segment_set = 1;
            continue;
        }
        if (strncmp(a, "--mode=", 7) == 0) {
            if (strcmp(a + 7, "async") == 0) {
                o->run_async = 1;
                o->run_sync = 0;
            } else if (strcmp(a + 7, "sync") == 0) {
                o->run_async = 0;
                o->run_sync = 1;
            } else if (strcmp(a + 7, "both") == 0) {
                o->run_async = o->run_sync = 1;
            } else {
                fprintf(stderr, "sprocket bench store: '%s': the mode is async, sync or both\n", a);
                return -1;
            }
            continue;
        }
        for (k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
            size_t n = strlen(nums[k].name);
            if (strncmp(a, nums[k].name, n) != 0)
                continue;
            if (parse_u64(a + n, nums[k].min, nums[k].max, &v) != 0)
                goto bad_number;
            if (nums[k].u64 != NULL)
                *nums[k].u64 = v;
            else if (nums[k].i32 != NULL)
                *nums[k].i32 = (int)v;
            else
                threads = v;
            threads_set |= k == 1;
            async_set |= k == 2;
            sync_set |= k == 3;
            break;
        }
        if (k < sizeof(nums) / sizeof(nums[0]))
            continue;
        fprintf(stderr,
                "sprocket bench store: unknown option '%s' (neither a bench option nor a store "
                "setting); see 'sprocket bench store --help'\n",
                a);
        return -1;
    bad_number:
        fprintf(stderr,
                "sprocket bench store: '%s': not a number in the allowed range; see "
                "'sprocket bench store --help'\n",
                a);
        return -1;
    }
    if (threads_set) {
        if (!async_set)
            o->async_threads = (int)threads;
        if (!sync_set)
            o->sync_threads = (int)threads;
    }
    return 0;
}

static int
bench_store(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof(*b));
    char cerr[CFG_ERR_MAX], num[32];
    int rc, segment_set = 0, exit_code = TOOL_EXIT_FAIL;
    size_t ndefs;

    if (b == NULL) {
        fprintf(stderr, "sprocket bench store: out of memory\n");
        return TOOL_EXIT_FAIL;
    }
    b->o.dir = "./data/bench";
    b->o.messages = 1000000;
    b->o.size = 1024;
    b->o.async_threads = 1;
    b->o.sync_threads = 4;
    b->o.inflight = 256;
    b->o.segment = (int64_t)GIB;
    b->o.run_async = b->o.run_sync = 1;
    b->o.recovery = GIB;

    b->t.defs = store_config_table(&ndefs);
    b->t.n = ndefs;
    b->t.obj = &b->sc;
    rc = cfg_set_defaults(&b->t);
    if (rc != 0) {
        fprintf(stderr, "sprocket bench store: the store's default settings do not load: %s\n",
                spk_strerror(rc));
        goto out;
    }
    /* Store settings first: what is left must be the bench's own options. */
    rc = cfg_parse_args(&b->t, 1, &argc, argv, cerr, sizeof(cerr));
    if (rc != 0) {
        fprintf(stderr, "sprocket bench store: %s\n", cerr);
        exit_code = TOOL_EXIT_USAGE;
        goto out;
    }
    rc = parse_opts(argc, argv, &b->o, &segment_set);
    if (rc != 0) {
        exit_code = rc > 0 ? TOOL_EXIT_OK : TOOL_EXIT_USAGE;
        goto out;
    }
    snprintf(num, sizeof(num), "%" PRId64, b->o.segment);
    rc = cfg_set(&b->t, 1, "mappedFileSizeCommitLog", num, cerr, sizeof(cerr));
    if (rc != 0) {
        fprintf(stderr, "sprocket bench store: --segment: %s\n", cerr);
        exit_code = TOOL_EXIT_USAGE;
        goto out;
    }
    if (b->o.size > (uint32_t)b->sc.maxMessageSize) {
        fprintf(stderr,
                "sprocket bench store: --size=%" PRIu32 " is above maxMessageSize %d; raise it "
                "with --maxMessageSize=N\n",
                b->o.size, b->sc.maxMessageSize);
        exit_code = TOOL_EXIT_USAGE;
        goto out;
    }
    rc = prepare_dir(b->o.dir, b->err, sizeof(b->err));
    if (rc != 0) {
        fprintf(stderr, "sprocket bench store: %s\n", b->err);
        exit_code = TOOL_EXIT_USAGE;
        goto out;
    }

    {
        /* The baselines write buffers of the store's record size, so both
         * sides move the same bytes and the ratio measures the engine, not
         * the size of RocketMQ's record header. */
        struct bench_msg probe;
        if (msg_init(&probe, b->o.size, 0) != 0) {
            snprintf(b->err, sizeof(b->err), "out of memory");
            goto failed;
        }
        b->rec_size = (uint32_t)rec_length(&probe.m, b->sc.enabledAppendPropCRC);
        msg_free(&probe);
    }
    if (b->o.run_async) {
        fprintf(stderr, "bench: a  baseline write() ...\n");
        rc = baseline_write(b->o.dir, b->o.messages, b->o.size, b->rec_size, &b->r.write_base);
        if (rc != 0) {
            snprintf(b->err, sizeof(b->err), "baseline write(): %s", spk_strerror(rc));
            goto failed;
        }
        fprintf(stderr, "bench: b  store ASYNC_FLUSH, then e  read back ...\n");
        rc = phase_async(b, 1);
        if (rc != 0)
            goto failed;
    }
    if (b->o.run_sync) {
        uint64_t window = (uint64_t)b->o.inflight * (uint64_t)b->o.sync_threads;
        fprintf(stderr, "bench: c  baseline group commit ...\n");
        rc = baseline_gc(b->o.dir, b->o.messages, b->o.size, b->rec_size, window, &b->r.gc_base,
                         &b->r.gc_fsyncs);
        if (rc != 0) {
            snprintf(b->err, sizeof(b->err), "group-commit baseline: %s", spk_strerror(rc));
            goto failed;
        }
        fprintf(stderr, "bench: d  store SYNC_FLUSH%s ...\n",
                b->o.run_async ? "" : ", then e  read back");
        rc = phase_sync(b, !b->o.run_async);
        if (rc != 0)
            goto failed;
    }
    if (b->o.recovery > 0) {
        fprintf(stderr, "bench: f  abnormal recovery ...\n");
        rc = phase_recovery(b);
        if (rc != 0)
            goto failed;
    }
    report(b);
    exit_code = TOOL_EXIT_OK;
    goto out;

failed:
    fprintf(stderr, "sprocket bench store: %s\n", b->err[0] ? b->err : spk_strerror(rc));
out:
    cfg_free(&b->t);
    free(b);
    return exit_code;
}

int
cmd_bench(int argc, char **argv)
{
    if (argc < 2) {
        fputs("usage: sprocket bench store [options]; see 'sprocket bench store --help'\n", stderr);
        return TOOL_EXIT_USAGE;
    }
    if (tool_is_help(argv[1])) {
        fputs("usage: sprocket bench store [options]\n"
              "  store   the message store against same-run baselines (write(), group\n"
              "          commit); 'sprocket bench store --help' lists the options\n",
              stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "store") == 0)
        return bench_store(argc - 1, argv + 1);
    fprintf(stderr, "sprocket bench: unknown benchmark '%s'; 'store' is the one there is\n",
            argv[1]);
    return TOOL_EXIT_USAGE;
}
