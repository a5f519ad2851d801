/*
 * bench_broker.c - `sprocket bench produce` and `sprocket bench consume`:
 * load generators that speak raw remoting to a running broker, so what is
 * measured is the broker and the wire, not a client library.
 *
 * produce  SEND_MESSAGE_V2 (310, one message per request) or
 *          SEND_BATCH_MESSAGE (320, --batch messages per request) over
 *          --conns connections, each keeping --inflight requests pipelined.
 *          Latency is request queued -> reply parsed, per request.
 * consume  PULL_MESSAGE (11) for every queue of a topic, at most one pull in
 *          flight per queue and --inflight per connection, the queues spread
 *          over --conns connections, until the queues are drained (or
 *          --messages are read). Latency is pull queued -> reply parsed.
 *
 * Both split their connections over --threads threads (one epoll loop
 * each) and stop after --duration seconds if given. While they run, a
 * progress line is rewritten once a second on stderr when it is a
 * terminal (see struct progress); at the end they print a report with the
 * latency percentiles and distribution, and end with one line of JSON
 * (tests/bench.sh and the integration tests parse it), as `sprocket bench
 * store` does.
 *
 * Keeping the generator cheap matters more than usual: on the 2-vCPU box
 * of PERF.md the broker and this tool share the CPUs, so every microsecond
 * spent here is taken from the broker. Hence:
 *   - a request is a memcpy of a pre-encoded frame (one per queue id) and a
 *     patch of fixed-width decimal fields (opaque, bornTimestamp, KEYS), not
 *     a JSON encode;
 *   - a send reply is parsed by scanning its JSON header for "code" and
 *     "opaque" (see scan_reply() for why that is exact for JSON); anything
 *     unusual (another serialization, a non-zero code) goes through
 *     proto_decode();
 *   - one epoll loop per thread (--threads), level-triggered, EPOLLOUT only
 *     while a write is pending, one clock read per loop turn;
 *   - the progress line costs the load threads nothing but plain stores:
 *     each thread owns its counters and histogram (struct live), and the
 *     main thread reads them once a second (hist.h INV-2).
 *
 * Exit status (tool.h): 0 when every request succeeded, 1 when the run
 * failed or any request got an error reply, 2 for a usage error.
 */
#include "tool.h"
#include "hist.h"
#include "common/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "proto/message.h"
#include "proto/remoting.h"
#include "proto/reply.h"
#include "store/record.h"

/* Request and response codes used here (PROTOCOL.md 3.1, 3.2). */
#define RC_PULL_MESSAGE 11
#define RC_UPDATE_AND_CREATE_TOPIC 17
#define RC_SEND_MESSAGE_V2 310
#define RC_SEND_BATCH_MESSAGE 320
#define RS_SUCCESS 0
#define RS_FLUSH_DISK_TIMEOUT 10
#define RS_PULL_NOT_FOUND 19
#define RS_PULL_RETRY_IMMEDIATELY 20
#define RS_PULL_OFFSET_MOVED 21

/* PullSysFlag bits (PROTOCOL.md 3.3). */
#define PULL_SYS_COMMIT 1
#define PULL_SYS_SUSPEND 2
#define PULL_SYS_SUBSCRIPTION 4

/*
 * Opaques are fixed-width decimals so a pre-encoded frame can be patched in
 * place: OPQ_BASE + connection * OPQ_SLOTS + slot stays within 10 digits
 * and below INT32_MAX for up to MAX_CONNS connections of MAX_INFLIGHT.
 */
#define OPQ_BASE 1000000000
#define OPQ_SLOTS 65536
#define MAX_CONNS 16000
#define MAX_INFLIGHT 65536

#define BORN_DIGITS 13 /* ms since the epoch, 13 digits until the year 2286 */
#define KEY_DIGITS 10
#define KEY_PLACEHOLDER "k2222222222"
#define BORN_PLACEHOLDER "1111111111111"

#define IN_BUF_MIN (256u * 1024)
#define DRAIN_TIMEOUT_NS (30ull * 1000000000u)
#define MAX_ERR_KINDS 8

/* Latencies in nanoseconds go into hist.h histograms (30 KiB per thread). */

struct lat {
    double p50, p90, p99, p999, p9999, max; /* microseconds */
};

static void
hist_lat(const struct hist *h, struct lat *l)
{
    l->p50 = (double)hist_pct(h, 0.50) / 1e3;
    l->p90 = (double)hist_pct(h, 0.90) / 1e3;
    l->p99 = (double)hist_pct(h, 0.99) / 1e3;
    l->p999 = (double)hist_pct(h, 0.999) / 1e3;
    l->p9999 = (double)hist_pct(h, 0.9999) / 1e3;
    l->max = (double)h->max / 1e3;
}

/* Error replies, kept by code with the first remark (for the report). */
struct err_kinds {
    struct {
        int32_t code;
        uint64_t count;
        char remark[160];
    } k[MAX_ERR_KINDS];
    int n;
    uint64_t other; /* codes beyond MAX_ERR_KINDS kinds */
};

static void
err_add(struct err_kinds *e, int32_t code, const char *remark, uint64_t count)
{
    for (int i = 0; i < e->n; i++) {
        if (e->k[i].code == code) {
            e->k[i].count += count;
            return;
        }
    }
    if (e->n == MAX_ERR_KINDS) {
        e->other += count;
        return;
    }
    e->k[e->n].code = code;
    e->k[e->n].count = count;
    snprintf(e->k[e->n].remark, sizeof(e->k[e->n].remark), "%s", remark ? remark : "");
    e->n++;
}

static void
err_note(struct err_kinds *e, int32_t code, const char *remark)
{
    err_add(e, code, remark, 1);
}

static void
err_merge(struct err_kinds *into, const struct err_kinds *e)
{
    for (int i = 0; i < e->n; i++)
        err_add(into, e->k[i].code, e->k[i].remark, e->k[i].count);
    into->other += e->other;
}

static void
err_print(const struct err_kinds *e)
{
    for (int i = 0; i < e->n; i++)
        printf("  error code %d: %" PRIu64 " replies, e.g. \"%s\"\n", e->k[i].code, e->k[i].count,
               e->k[i].remark);
    if (e->other)
        printf("  other error codes: %" PRIu64 " replies\n", e->other);
}

/* Small helpers ----------------------------------------------------------- */

static inline uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes <v> as exactly <width> decimal digits (zero-padded, high digits cut). */
static inline void
put_digits(uint8_t *dst, uint64_t v, unsigned width)
{
    while (width-- > 0) {
        dst[width] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
}

/* <v> with thousands separators and no decimals. */
static const char *
fmt_count(double v, char *buf, size_t len)
{
    char raw[32];
    size_t n, o = 0;

    snprintf(raw, sizeof(raw), "%.0f", v);
    n = strlen(raw);
    for (size_t i = 0; i < n && o + 2 < len; i++) {
        if (i > 0 && raw[i - 1] != '-' && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

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

/* If <arg> is "--<name>=VALUE" returns VALUE, else NULL. */
static const char *
opt_val(const char *arg, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0 || arg[2 + n] != '=')
        return NULL;
    return arg + 3 + n;
}

/* The latency report: percentiles, then the distribution (hist_print). */
static void
print_lat(const char *what, const struct hist *h)
{
    struct lat l;
    char n[32];

    hist_lat(h, &l);
    printf("  %s, %s samples:\n", what, fmt_count((double)h->n, n, sizeof(n)));
    printf("  %10s %10s %10s %10s %10s %10s\n", "p50 us", "p90 us", "p99 us", "p99.9 us",
           "p99.99 us", "max us");
    printf("  %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", l.p50, l.p90, l.p99, l.p999, l.p9999,
           l.max);
    hist_print(stdout, h, "  ");
}

/* Progress ------------------------------------------------------------------ */

/*
 * What one load thread shares with the progress reporter. The thread is
 * the only writer (live_add, hist_add); the main thread reads with relaxed
 * loads. Nothing orders these reads against each other: a progress line
 * may count a reply in the rate and not yet in the histogram, which is
 * harmless for a once-a-second display and is what keeps the writer free
 * of locked instructions and fences.
 */
struct live {
    _Atomic uint64_t msgs;   /* produce: acknowledged messages; consume: messages read */
    _Atomic uint64_t errors; /* requests (pulls) answered with an error, or lost */
    struct hist *h;          /* latency per request (ns) */
};

/* Adds <n> to a counter only the calling thread writes: a relaxed load and
 * store, plain moves, where atomic_fetch_add would be a locked instruction. */
static inline void
live_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t
live_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/*
 * The run of the load threads, seen from the main thread: it waits for
 * them in progress_wait() and, when stderr is a terminal, rewrites one
 * line there every second with the elapsed time, the message rate and
 * latency p50/p99 over that second, and the totals. The line is erased
 * before the report is printed, and never written when stderr is not a
 * terminal (make bench, tests, pipes).
 *
 *   progress_init()             before the threads start (running = n)
 *   progress_thread_done()      by each thread as it ends (or for a thread
 *                               that could not be started)
 *   progress_wait()             main thread, returns once running == 0
 *   progress_fini()
 */
struct progress {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when running drops */
    int running;
    int tty;
    struct live **lv; /* one per thread, borrowed */
    int nlv;
    uint64_t t0; /* monotonic ns at the start (set by run_threads) */
    struct hist *prev, *cur, *delta;
    size_t shown; /* characters of the line on screen, 0 when none */
};

/* Returns 0, or -1 when the mutex or condition cannot be made (nothing to free). */
static int
progress_init(struct progress *p, struct live **lv, int nlv)
{
    pthread_condattr_t ca;

    memset(p, 0, sizeof(*p));
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&p->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        return -1;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        pthread_cond_destroy(&p->cv);
        return -1;
    }
    p->lv = lv;
    p->nlv = nlv;
    p->running = nlv;
    p->tty = isatty(STDERR_FILENO);
    if (p->tty) {
        p->prev = calloc(1, sizeof(*p->prev));
        p->cur = calloc(1, sizeof(*p->cur));
        p->delta = calloc(1, sizeof(*p->delta));
        if (!p->prev || !p->cur || !p->delta)
            p->tty = 0; /* no progress line; the run itself is unaffected */
    }
    return 0;
}

static void
progress_fini(struct progress *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->prev);
    free(p->cur);
    free(p->delta);
}

static void
progress_thread_done(struct progress *p)
{
    pthread_mutex_lock(&p->mu);
    p->running--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* "412 us", "1.93 ms", "2.10 s" */
static const char *
fmt_us(double us, char *buf, size_t len)
{
    if (us < 1000)
        snprintf(buf, len, "%.0f us", us);
    else if (us < 1e6)
        snprintf(buf, len, "%.2f ms", us / 1e3);
    else
        snprintf(buf, len, "%.2f s", us / 1e6);
    return buf;
}

/* One progress line: the last second from <prev_msgs> at <prev_t>. */
static void
progress_line(struct progress *p, uint64_t now, uint64_t *prev_msgs, uint64_t *prev_t)
{
    uint64_t msgs = 0, errors = 0;
    double dt = (double)(now - *prev_t) / 1e9;
    char line[256], rate[32], total[32], p50[24], p99[24];
    struct hist *swap;
    int len;

    memset(p->cur, 0, sizeof(*p->cur));
    for (int i = 0; i < p->nlv; i++) {
        msgs += live_get(&p->lv[i]->msgs);
        errors += live_get(&p->lv[i]->errors);
        hist_snapshot_add(p->cur, p->lv[i]->h);
    }
    hist_delta(p->delta, p->cur, p->prev);
    swap = p->prev;
    p->prev = p->cur;
    p->cur = swap;
    if (p->delta->n > 0) {
        fmt_us((double)hist_pct(p->delta, 0.50) / 1e3, p50, sizeof(p50));
        fmt_us((double)hist_pct(p->delta, 0.99) / 1e3, p99, sizeof(p99));
    } else {
        snprintf(p50, sizeof(p50), "-");
        snprintf(p99, sizeof(p99), "-");
    }
    len = snprintf(line, sizeof(line),
                   "%6.1f s  %s msgs/s  total %s  errors %" PRIu64 "  p50 %s  p99 %s",
                   (double)(now - p->t0) / 1e9,
                   fmt_count(dt > 0 ? (double)(msgs - *prev_msgs) / dt : 0, rate, sizeof(rate)),
                   fmt_count((double)msgs, total, sizeof(total)), errors, p50, p99);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof(line))
        len = (int)sizeof(line) - 1;
    /* Pad over a longer previous line rather than rely on terminal escapes. */
    fprintf(stderr, "\r%s%*s", line, p->shown > (size_t)len ? (int)(p->shown - (size_t)len) : 0,
            "");
    fflush(stderr);
    p->shown = (size_t)len;
    *prev_msgs = msgs;
    *prev_t = now;
}

/* Waits until every thread is done, drawing the progress line meanwhile. */
static void
progress_wait(struct progress *p)
{
    uint64_t next = p->t0 + 1000000000u, prev_msgs = 0, prev_t = p->t0;

    pthread_mutex_lock(&p->mu);
    while (p->running > 0) {
        struct timespec ts;
        uint64_t now;

        if (!p->tty) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        ts.tv_sec = (time_t)(next / 1000000000u);
        ts.tv_nsec = (long)(next % 1000000000u);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        now = spk_mono_ns();
        if (p->running > 0 && now >= next) {
            /* Draw without the lock: the threads only take it to finish. */
            pthread_mutex_unlock(&p->mu);
            progress_line(p, now, &prev_msgs, &prev_t);
            pthread_mutex_lock(&p->mu);
            /* Lines stay on whole seconds from the start; a late one skips, not bunches. */
            next = now + 1000000000u - (now - next) % 1000000000u;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (p->shown > 0) {
        fprintf(stderr, "\r%*s\r", (int)p->shown, "");
        fflush(stderr);
        p->shown = 0;
    }
}

/*
 * Starts <n> threads, thread i running <fn>(<args> + i * <stride>), each
 * of which calls progress_thread_done(<p>) last; waits for them with the
 * progress line and joins them. <p> is initialised and counts <n> threads.
 * Returns how many were started (< n after a pthread_create failure, with
 * a message printed; those that started still run to their end).
 */
static int
run_threads(struct progress *p, pthread_t *tids, int n, void *(*fn)(void *), void *args,
            size_t stride)
{
    int started;

    p->t0 = spk_mono_ns();
    for (started = 0; started < n; started++) {
        if (pthread_create(&tids[started], NULL, fn, (char *)args + stride * (size_t)started) !=
            0) {
            fprintf(stderr, "sprocket bench: pthread_create failed\n");
            break;
        }
    }
    for (int i = started; i < n; i++)
        progress_thread_done(p);
    progress_wait(p);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return started;
}

/* Sockets ---------------------------------------------------------------- */

/* Resolves "host:port" into *sa. Returns 0 or -1 (message printed). */
static int
resolve(const char *addr, struct sockaddr_storage *sa, socklen_t *salen)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints, *res = NULL;
    size_t hl;
    int rc;

    if (!colon || colon == addr || !colon[1] || (size_t)(colon - addr) >= sizeof(host)) {
        fprintf(stderr, "sprocket bench: --addr wants HOST:PORT, not '%s'\n", addr);
        return -1;
    }
    hl = (size_t)(colon - addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "sprocket bench: cannot resolve '%s': %s\n", addr, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* A connected TCP socket with TCP_NODELAY, non-blocking if asked; -errno on failure. */
static int
dial(const struct sockaddr_storage *sa, socklen_t salen, int nonblock)
{
    int one = 1;
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return -errno;
    if (connect(fd, (const struct sockaddr *)sa, salen) == -1) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* Pipelined small frames: never wait for Nagle. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (nonblock && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int
write_full(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == -1 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * One blocking request/response on <fd> (which has a receive timeout).
 * On success returns 0 with the decoded reply in *rep, borrowing *frame,
 * which the caller frees after proto_cmd_free(rep).
 */
static int
rpc_call(int fd, const struct proto_reply *req, int32_t opaque, struct proto_cmd *rep,
         uint8_t **frame)
{
    uint8_t *out = NULL, *buf = NULL, hdr[4];
    size_t out_len, flen, got;
    int rc;

    rc = proto_request_encode(req, opaque, 0, &out, &out_len);
    if (rc)
        return rc;
    rc = write_full(fd, out, out_len);
    free(out);
    if (rc)
        return rc;
    for (;;) {
        for (got = 0; got < 4;) {
            ssize_t n = read(fd, hdr + got, 4 - got);
            if (n == -1 && errno == EINTR)
                continue;
            if (n <= 0)
                return n == -1 ? -errno : -ECONNRESET;
            got += (size_t)n;
        }
        flen = 4 + (size_t)be32(hdr);
        if (flen < 8 || flen > PROTO_FRAME_MAX)
            return SPK_EFORMAT;
        buf = malloc(flen);
        if (!buf)
            return -ENOMEM;
        memcpy(buf, hdr, 4);
        while (got < flen) {
            ssize_t n = read(fd, buf + got, flen - got);
            if (n == -1 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = n == -1 ? -errno : -ECONNRESET;
                free(buf);
                return rc;
            }
            got += (size_t)n;
        }
        rc = proto_decode(buf, flen, rep);
        if (rc) {
            free(buf);
            return rc;
        }
        /* Skip server-initiated requests; take the response to ours. */
        if ((rep->flag & PROTO_FLAG_RESPONSE) && rep->opaque == opaque)
            break;
        proto_cmd_free(rep);
        free(buf);
        buf = NULL;
    }
    *frame = buf;
    return 0;
}

/* UPDATE_AND_CREATE_TOPIC with <queues> read and write queues. Returns 0 or -1. */
static int
create_topic(const struct sockaddr_storage *sa, socklen_t salen, const char *topic, int queues)
{
    struct proto_reply req;
    struct proto_cmd rep;
    struct timeval tv = {10, 0};
    uint8_t *frame = NULL;
    int fd, rc, ret = -1;

    fd = dial(sa, salen, 0);
    if (fd < 0) {
        fprintf(stderr, "sprocket bench: connect: %s\n", spk_strerror(fd));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    proto_reply_init(&req, RC_UPDATE_AND_CREATE_TOPIC);
    proto_reply_ext(&req, "topic", "%s", topic);
    proto_reply_ext(&req, "defaultTopic", "TBW102");
    proto_reply_ext(&req, "readQueueNums", "%d", queues);
    proto_reply_ext(&req, "writeQueueNums", "%d", queues);
    proto_reply_ext(&req, "perm", "6");
    proto_reply_ext(&req, "topicFilterType", "SINGLE_TAG");
    proto_reply_ext(&req, "topicSysFlag", "0");
    proto_reply_ext(&req, "order", "false");
    rc = rpc_call(fd, &req, 1, &rep, &frame);
    proto_reply_free(&req);
    if (rc) {
        fprintf(stderr, "sprocket bench: UPDATE_AND_CREATE_TOPIC: %s\n", spk_strerror(rc));
        goto out;
    }
    if (rep.code != RS_SUCCESS)
        fprintf(stderr, "sprocket bench: UPDATE_AND_CREATE_TOPIC %s: code %d %s\n", topic, rep.code,
                rep.remark ? rep.remark : "");
    else
        ret = 0;
    proto_cmd_free(&rep);
    free(frame);
out:
    close(fd);
    return ret;
}

/* Reads from <fd> into buf[*len..cap). Returns bytes read, 0 on EAGAIN, -1 on EOF/error. */
static ssize_t
read_some(int fd, uint8_t *buf, size_t *len, size_t cap)
{
    for (;;) {
        ssize_t n = read(fd, buf + *len, cap - *len);
        if (n > 0) {
            *len += (size_t)n;
            return n;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
}

/*
 * Makes room in a receive buffer for the frame that starts at buf[0]:
 * grows *buf to hold it whole when its length field says it is bigger
 * than *cap. Returns 0, or -1 when the length is impossible or memory
 * runs out.
 */
static int
in_reserve(uint8_t **buf, size_t len, size_t *cap)
{
    size_t need;
    uint8_t *nb;

    if (len < 4)
        return 0;
    need = 4 + (size_t)be32(*buf);
    if (need > PROTO_FRAME_MAX)
        return -1;
    if (need <= *cap)
        return 0;
    nb = realloc(*buf, need);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = need;
    return 0;
}

/* Produce ------------------------------------------------------------------ */

struct produce_opts {
    const char *addr, *topic, *group;
    int conns, inflight, threads, queues;
    uint32_t size, batch;
    uint64_t messages;
    double seconds;
    int create_topic;
};

/* A pre-encoded request for one queue id, and where to patch it. */
struct tmpl {
    uint8_t *frame;
    size_t len;
    size_t off_opaque, off_born;
    size_t *off_key; /* one per message: 10 key digits */
    uint32_t nkeys;
};

struct pconn {
    int fd, idx; /* idx: global connection number, part of the opaque */
    int dead;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    int want_out;
    uint8_t *in;
    size_t in_len, in_cap;
    uint64_t *slot_t; /* queue time per slot (ns) */
    uint32_t *free_slots;
    uint32_t nfree;
};

struct pthread_state {
    const struct produce_opts *o;
    const struct tmpl *tm; /* o->queues templates */
    int id, ep;
    struct pconn *c;
    int nc;
    uint64_t req_left; /* requests this thread may still send */
    uint64_t key_seq;  /* next KEYS number (thread id + k * threads) */
    uint32_t rr;       /* round-robin queue id */
    uint64_t stop_at;  /* monotonic ns to stop sending at; 0 = none */
    uint64_t t_start, t_end;
    struct live lv; /* lv.msgs: acknowledged messages; lv.errors: error or lost requests */
    uint64_t sent_req, ok_req, err_msgs, flush_timeouts, lost_req;
    uint64_t scan_fallbacks;
    struct err_kinds errs;
    int failed;
    struct progress *prog;
};

static void
produce_usage(FILE *out)
{
    fputs("usage: sprocket bench produce [options]\n"
          "\n"
          "Sends messages to a running broker over raw remoting: SEND_MESSAGE_V2 (310) with\n"
          "--batch=1, SEND_BATCH_MESSAGE (320) with --batch > 1; --conns connections with\n"
          "--inflight requests pipelined on each; queue ids round robin. Prints msgs/s,\n"
          "MiB/s of message bodies, request latency (queued -> reply parsed: percentiles\n"
          "and distribution) and errors (FLUSH_DISK_TIMEOUT counts as an error), then one\n"
          "line of JSON. While it runs, a progress line is shown on stderr if that is a\n"
          "terminal.\n"
          "\n"
          "options:\n"
          "  --addr=HOST:PORT   broker (default 127.0.0.1:10911)\n"
          "  --topic=T          topic (default BenchTopic)\n"
          "  --group=G          producer group (default BenchProducer)\n"
          "  --threads=N        load threads, connections split between them, 1..64\n"
          "                     (default 1; at most --conns)\n"
          "  --conns=N          connections, 1..16000 (default 64)\n"
          "  --inflight=N       requests in flight per connection (window), 1..65536\n"
          "                     (default 16)\n"
          "  --size=BYTES       message body size, 0..4194304 (default 1024)\n"
          "  --batch=N          messages per request, 1..1024 (default 1)\n"
          "  --messages=N       stop after N messages (default 1000000; unlimited when\n"
          "                     only --duration is given)\n"
          "  --duration=S       stop sending after S seconds, then wait for the replies\n"
          "                     (default: no limit; with --messages, whichever comes\n"
          "                     first); --seconds=S is the same\n"
          "  --queues=N         queue ids to spread over, 1..1024 (default 8)\n"
          "  --create-topic     create the topic first (UPDATE_AND_CREATE_TOPIC, --queues\n"
          "                     read and write queues, perm 6; default: off)\n"
          "exit: 0 all requests succeeded, 1 errors or failure, 2 usage\n",
          out);
}

/* --duration=S or --seconds=S: Returns 0, or -1 when S is not in (0, 86400]. */
static int
parse_seconds(const char *val, double *out)
{
    char *end;
    double v;

    if (*val < '0' || *val > '9')
        return -1;
    v = strtod(val, &end);
    if (*end || !(v > 0) || v > 86400)
        return -1;
    *out = v;
    return 0;
}

/* Returns 0, 1 after --help, -1 after a usage error (message printed). */
static int
produce_parse(int argc, char **argv, struct produce_opts *o)
{
    uint64_t v;
    int messages_set = 0;

    memset(o, 0, sizeof(*o));
    o->addr = "127.0.0.1:10911";
    o->topic = "BenchTopic";
    o->group = "BenchProducer";
    o->conns = 64;
    o->inflight = 16;
    o->threads = 1;
    o->queues = 8;
    o->size = 1024;
    o->batch = 1;
    o->messages = 1000000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;

        if (tool_is_help(a)) {
            produce_usage(stdout);
            return 1;
        }
        if ((val = opt_val(a, "addr"))) {
            o->addr = val;
        } else if ((val = opt_val(a, "topic"))) {
            o->topic = val;
        } else if ((val = opt_val(a, "group"))) {
            o->group = val;
        } else if ((val = opt_val(a, "conns"))) {
            if (parse_u64(val, 1, MAX_CONNS, &v))
                goto bad;
            o->conns = (int)v;
        } else if ((val = opt_val(a, "inflight"))) {
            if (parse_u64(val, 1, MAX_INFLIGHT, &v))
                goto bad;
            o->inflight = (int)v;
        } else if ((val = opt_val(a, "threads"))) {
            if (parse_u64(val, 1, 64, &v))
                goto bad;
            o->threads = (int)v;
        } else if ((val = opt_val(a, "size"))) {
            if (parse_u64(val, 0, 4u << 20, &v))
                goto bad;
            o->size = (uint32_t)v;
        } else if ((val = opt_val(a, "batch"))) {
            if (parse_u64(val, 1, PROTO_BATCH_MAX_MSGS, &v))
                goto bad;
            o->batch = (uint32_t)v;
        } else if ((val = opt_val(a, "messages"))) {
            if (parse_u64(val, 1, UINT64_MAX / 2, &v))
                goto bad;
            o->messages = v;
            messages_set = 1;
        } else if ((val = opt_val(a, "duration")) || (val = opt_val(a, "seconds"))) {
            if (parse_seconds(val, &o->seconds))
                goto bad;
        } else if ((val = opt_val(a, "queues"))) {
            if (parse_u64(val, 1, 1024, &v))
                goto bad;
            o->queues = (int)v;
        } else if (strcmp(a, "--create-topic") == 0) {
            o->create_topic = 1;
        } else {
            goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "sprocket bench produce: bad option '%s'; see --help\n", a);
        return -1;
    }
    /* --duration alone means "for S seconds", not "for S seconds or 1M messages". */
    if (o->seconds > 0 && !messages_set)
        o->messages = UINT64_MAX / 2;
    if (o->threads > o->conns)
        o->threads = o->conns;
    if ((uint64_t)o->batch * ((uint64_t)o->size + 64) + 4096 > PROTO_FRAME_MAX) {
        fprintf(stderr, "sprocket bench produce: --batch x --size exceeds a frame (16 MiB)\n");
        return -1;
    }
    return 0;
}

/* Finds <needle> in buf[from..len); returns its offset or SIZE_MAX. */
static size_t
find(const uint8_t *buf, size_t len, size_t from, const char *needle)
{
    size_t nl = strlen(needle);

    for (size_t i = from; i + nl <= len; i++)
        if (buf[i] == (uint8_t)needle[0] && memcmp(buf + i, needle, nl) == 0)
            return i;
    return SIZE_MAX;
}

static void
tmpl_free(struct tmpl *t)
{
    free(t->frame);
    free(t->off_key);
    memset(t, 0, sizeof(*t));
}

/*
 * Builds the request for queue <qid> with placeholder opaque, born
 * timestamp and keys, then records where they sit. The body filler is 'x'
 * so no placeholder can appear in it by accident. Returns 0 or -1.
 */
static int
tmpl_build(const struct produce_opts *o, int qid, struct tmpl *t)
{
    static const char props[] = "KEYS\001" KEY_PLACEHOLDER "\002";
    const uint32_t props_len = (uint32_t)sizeof(props) - 1;
    struct proto_reply r;
    uint8_t *body = NULL, *msg = NULL;
    size_t body_len = 0, pos;
    int rc, ret = -1;

    memset(t, 0, sizeof(*t));
    proto_reply_init(&r, o->batch > 1 ? RC_SEND_BATCH_MESSAGE : RC_SEND_MESSAGE_V2);
    proto_reply_ext(&r, "a", "%s", o->group);
    proto_reply_ext(&r, "b", "%s", o->topic);
    proto_reply_ext(&r, "c", "TBW102");
    proto_reply_ext(&r, "d", "4");
    proto_reply_ext(&r, "e", "%d", qid);
    proto_reply_ext(&r, "f", "0");
    proto_reply_ext(&r, "g", BORN_PLACEHOLDER);
    proto_reply_ext(&r, "h", "0");
    /* A batch carries each message's KEYS in its entry; the header has none. */
    proto_reply_ext(&r, "i", "%s", o->batch > 1 ? "" : props);
    proto_reply_ext(&r, "j", "0");
    proto_reply_ext(&r, "k", "false");
    if (o->batch > 1)
        proto_reply_ext(&r, "m", "true");

    msg = malloc(o->size ? o->size : 1);
    if (!msg)
        goto out;
    memset(msg, 'x', o->size);
    if (o->batch > 1) {
        size_t one = proto_batch_encode(NULL, 0, msg, o->size, props, props_len);
        if (one == 0)
            goto out;
        body_len = one * o->batch;
        body = malloc(body_len);
        if (!body)
            goto out;
        for (uint32_t i = 0; i < o->batch; i++)
            proto_batch_encode(body + one * i, 0, msg, o->size, props, props_len);
        proto_reply_body(&r, body, body_len); /* the reply owns it now */
        body = NULL;
    } else {
        proto_reply_body_copy(&r, msg, o->size);
    }
    rc = proto_request_encode(&r, OPQ_BASE, 0, &t->frame, &t->len);
    if (rc) {
        fprintf(stderr, "sprocket bench produce: encoding the request: %s\n", spk_strerror(rc));
        goto out;
    }
    t->off_opaque = find(t->frame, t->len, 0, "\"opaque\":1000000000");
    t->off_born = find(t->frame, t->len, 0, "\"g\":\"" BORN_PLACEHOLDER "\"");
    t->off_key = calloc(o->batch, sizeof(*t->off_key));
    if (t->off_opaque == SIZE_MAX || t->off_born == SIZE_MAX || !t->off_key)
        goto out;
    t->off_opaque += strlen("\"opaque\":");
    t->off_born += strlen("\"g\":\"");
    for (pos = 0; t->nkeys < o->batch; t->nkeys++) {
        pos = find(t->frame, t->len, pos, KEY_PLACEHOLDER);
        if (pos == SIZE_MAX)
            goto out;
        pos += 1; /* past the 'k' */
        t->off_key[t->nkeys] = pos;
    }
    ret = 0;
out:
    if (ret)
        fprintf(stderr, "sprocket bench produce: cannot build the request template\n");
    proto_reply_free(&r);
    free(body);
    free(msg);
    if (ret)
        tmpl_free(t);
    return ret;
}

static void
pconn_close(struct pthread_state *t, struct pconn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    /* Requests without a reply are lost: count them as errors. */
    t->lost_req += (uint64_t)t->o->inflight - c->nfree;
    live_add(&t->lv.errors, (uint64_t)t->o->inflight - c->nfree);
    c->nfree = (uint32_t)t->o->inflight;
}

static void
pconn_want_out(struct pthread_state *t, struct pconn *c, int on)
{
    struct epoll_event ev;

    if (c->want_out == on || c->dead)
        return;
    c->want_out = on;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.ptr = c;
    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is pending; EPOLLOUT only while something is left. */
static void
pconn_flush(struct pthread_state *t, struct pconn *c)
{
    while (!c->dead && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pconn_want_out(t, c, 1);
            return;
        }
        fprintf(stderr, "sprocket bench produce: write: %s\n", strerror(errno));
        pconn_close(t, c);
        return;
    }
    c->out_off = c->out_len = 0;
    pconn_want_out(t, c, 0);
}

/* Queues requests into every free slot while the budget and the clock allow. */
static void
pconn_fill(struct pthread_state *t, struct pconn *c, uint64_t now, uint64_t born_ms)
{
    const struct produce_opts *o = t->o;

    if (c->dead || c->nfree == 0 || t->req_left == 0 || (t->stop_at && now >= t->stop_at))
        return;
    if (c->out_off > 0 && c->out_off < c->out_len) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    while (c->nfree > 0 && t->req_left > 0) {
        const struct tmpl *tm = &t->tm[t->rr];
        uint32_t slot = c->free_slots[--c->nfree];
        uint8_t *f;

        /* Capacity: every unsent frame holds a slot, so inflight frames fit. */
        f = c->out + c->out_len;
        memcpy(f, tm->frame, tm->len);
        put_digits(f + tm->off_opaque, (uint64_t)OPQ_BASE + (uint64_t)c->idx * OPQ_SLOTS + slot,
                   10);
        put_digits(f + tm->off_born, born_ms, BORN_DIGITS);
        for (uint32_t k = 0; k < tm->nkeys; k++) {
            put_digits(f + tm->off_key[k], t->key_seq, KEY_DIGITS);
            t->key_seq += (uint64_t)o->threads;
        }
        c->out_len += tm->len;
        c->slot_t[slot] = now;
        t->req_left--;
        t->sent_req++;
        t->rr = (t->rr + 1) % (uint32_t)o->queues;
    }
}

/*
 * Reads "code" and "opaque" from a JSON response header without decoding
 * it. Exact for JSON: inside a JSON string every '"' is escaped, so the
 * byte sequence "code": (quote, name, quote, colon) can only be a key, and
 * the broker's headers hold no nested object with such keys but
 * extFields, whose keys (msgId, queueId, ...) are not these. Returns 0, or
 * -1 when the header is not what this expects (the caller then decodes).
 */
static int
scan_reply(const uint8_t *frame, size_t len, int32_t *code, int32_t *opaque)
{
    uint32_t hlt, hlen;
    const uint8_t *h;
    size_t p;
    int64_t v[2];
    const char *names[2] = {"\"code\":", "\"opaque\":"};

    if (len < 8)
        return -1;
    hlt = be32(frame + 4);
    hlen = hlt & 0xffffffu;
    if ((hlt >> 24) != PROTO_SER_JSON || 8 + (size_t)hlen > len)
        return -1;
    h = frame + 8;
    for (int i = 0; i < 2; i++) {
        int neg = 0, digits = 0;

        p = find(h, hlen, 0, names[i]);
        if (p == SIZE_MAX)
            return -1;
        p += strlen(names[i]);
        while (p < hlen && h[p] == ' ')
            p++;
        if (p < hlen && h[p] == '-') {
            neg = 1;
            p++;
        }
        v[i] = 0;
        while (p < hlen && h[p] >= '0' && h[p] <= '9' && digits < 11) {
            v[i] = v[i] * 10 + (h[p++] - '0');
            digits++;
        }
        if (digits == 0 || digits > 10)
            return -1;
        if (neg)
            v[i] = -v[i];
        if (v[i] < INT32_MIN || v[i] > INT32_MAX)
            return -1;
    }
    *code = (int32_t)v[0];
    *opaque = (int32_t)v[1];
    return 0;
}

/* Handles one whole response frame. */
static void
produce_reply(struct pthread_state *t, struct pconn *c, const uint8_t *frame, size_t len,
              uint64_t now)
{
    struct proto_cmd cmd;
    int32_t code, opaque;
    int64_t slot;
    int decoded = 0;

    memset(&cmd, 0, sizeof(cmd));
    if (scan_reply(frame, len, &code, &opaque) != 0) {
        t->scan_fallbacks++;
        if (proto_decode(frame, len, &cmd) != 0) {
            fprintf(stderr, "sprocket bench produce: undecodable reply; closing connection\n");
            pconn_close(t, c);
            return;
        }
        if (!(cmd.flag & PROTO_FLAG_RESPONSE)) { /* a server request: not ours */
            proto_cmd_free(&cmd);
            return;
        }
        decoded = 1;
        code = cmd.code;
        opaque = cmd.opaque;
    }
    slot = (int64_t)opaque - OPQ_BASE - (int64_t)c->idx * OPQ_SLOTS;
    if (slot < 0 || slot >= t->o->inflight) {
        fprintf(stderr, "sprocket bench produce: reply with unknown opaque %d\n", opaque);
        goto out;
    }
    hist_add(t->lv.h, now - c->slot_t[slot]);
    c->free_slots[c->nfree++] = (uint32_t)slot;
    if (code == RS_SUCCESS) {
        t->ok_req++;
        live_add(&t->lv.msgs, t->o->batch);
    } else {
        if (!decoded && proto_decode(frame, len, &cmd) == 0)
            decoded = 1;
        live_add(&t->lv.errors, 1);
        t->err_msgs += t->o->batch;
        if (code == RS_FLUSH_DISK_TIMEOUT)
            t->flush_timeouts++;
        err_note(&t->errs, code, decoded ? cmd.remark : NULL);
    }
    t->t_end = now;
out:
    if (decoded)
        proto_cmd_free(&cmd);
}

static void
pconn_read(struct pthread_state *t, struct pconn *c, uint64_t now)
{
    for (;;) {
        size_t pos = 0, flen;
        ssize_t n;
        int rc;

        if (in_reserve(&c->in, c->in_len, &c->in_cap) != 0) {
            fprintf(stderr, "sprocket bench produce: bad or huge reply frame\n");
            pconn_close(t, c);
            return;
        }
        n = read_some(c->fd, c->in, &c->in_len, c->in_cap);
        if (n < 0) {
            fprintf(stderr, "sprocket bench produce: connection %d closed by the broker\n", c->idx);
            pconn_close(t, c);
            return;
        }
        while ((rc = proto_frame_split(c->in + pos, c->in_len - pos, &flen)) == 0) {
            produce_reply(t, c, c->in + pos, flen, now);
            if (c->dead)
                return;
            pos += flen;
        }
        if (rc != -EAGAIN) {
            fprintf(stderr, "sprocket bench produce: bad frame: %s\n", spk_strerror(rc));
            pconn_close(t, c);
            return;
        }
        if (pos > 0) {
            memmove(c->in, c->in + pos, c->in_len - pos);
            c->in_len -= pos;
        }
        /* A short read emptied the socket; a full one may have left more. */
        if (n == 0 || c->in_len < c->in_cap)
            return;
    }
}

static uint32_t
pthread_outstanding(const struct pthread_state *t)
{
    uint32_t n = 0;

    for (int i = 0; i < t->nc; i++)
        if (!t->c[i].dead)
            n += (uint32_t)t->o->inflight - t->c[i].nfree;
    return n;
}

static void *
produce_thread(void *arg)
{
    struct pthread_state *t = arg;
    struct epoll_event evs[64];
    uint64_t now = spk_mono_ns(), drain_start = 0;

    t->t_start = t->t_end = now;
    if (t->o->seconds > 0)
        t->stop_at = now + (uint64_t)(t->o->seconds * 1e9);
    for (;;) {
        uint64_t born = spk_wall_ms();
        int n, sending;

        for (int i = 0; i < t->nc; i++) {
            pconn_fill(t, &t->c[i], now, born);
            if (t->c[i].out_len > t->c[i].out_off && !t->c[i].want_out)
                pconn_flush(t, &t->c[i]);
        }
        sending = t->req_left > 0 && !(t->stop_at && now >= t->stop_at);
        if (!sending) {
            if (pthread_outstanding(t) == 0)
                break;
            if (!drain_start)
                drain_start = now;
            if (now - drain_start > DRAIN_TIMEOUT_NS) {
                fprintf(stderr, "sprocket bench produce: %u requests unanswered after 30 s\n",
                        pthread_outstanding(t));
                for (int i = 0; i < t->nc; i++)
                    pconn_close(t, &t->c[i]);
                t->failed = 1;
                break;
            }
        }
        n = epoll_wait(t->ep, evs, 64, 100);
        if (n == -1 && errno != EINTR) {
            fprintf(stderr, "sprocket bench produce: epoll_wait: %s\n", strerror(errno));
            t->failed = 1;
            break;
        }
        now = spk_mono_ns();
        for (int i = 0; i < n; i++) {
            struct pconn *c = evs[i].data.ptr;

            if (c->dead)
                continue;
            if (evs[i].events & EPOLLOUT)
                pconn_flush(t, c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                pconn_read(t, c, now);
        }
        if (t->nc > 0) {
            int alive = 0;
            for (int i = 0; i < t->nc; i++)
                alive += !t->c[i].dead;
            if (!alive) {
                t->failed = 1;
                break;
            }
        }
    }
    progress_thread_done(t->prog);
    return NULL;
}

static int
bench_produce(int argc, char **argv)
{
    struct produce_opts o;
    struct sockaddr_storage sa;
    socklen_t salen;
    struct tmpl *tm = NULL;
    struct pconn *conns = NULL;
    struct pthread_state *th = NULL;
    pthread_t *tids = NULL;
    struct live **lvs = NULL;
    struct progress prog;
    struct hist *total = NULL;
    struct err_kinds errs;
    struct lat lat;
    uint64_t reqs, per, ok_req = 0, ok_msgs = 0, err_req = 0, err_msgs = 0, sent = 0;
    uint64_t flush_to = 0, lost = 0, fallbacks = 0, t0 = UINT64_MAX, t1 = 0;
    double secs, msgs_s, mib_s;
    char cbuf[32], cbuf2[32], cbuf3[32];
    int rc, ret = TOOL_EXIT_FAIL, failed = 0, prog_ok = 0;

    rc = produce_parse(argc, argv, &o);
    if (rc)
        return rc > 0 ? TOOL_EXIT_OK : TOOL_EXIT_USAGE;
    if (resolve(o.addr, &sa, &salen) != 0)
        return TOOL_EXIT_USAGE;
    if (o.create_topic && create_topic(&sa, salen, o.topic, o.queues) != 0)
        return TOOL_EXIT_FAIL;

    memset(&errs, 0, sizeof(errs));
    tm = calloc((size_t)o.queues, sizeof(*tm));
    conns = calloc((size_t)o.conns, sizeof(*conns));
    th = calloc((size_t)o.threads, sizeof(*th));
    tids = calloc((size_t)o.threads, sizeof(*tids));
    lvs = calloc((size_t)o.threads, sizeof(*lvs));
    total = calloc(1, sizeof(*total));
    for (int i = 0; th && i < o.threads; i++)
        th[i].ep = -1;
    for (int i = 0; conns && i < o.conns; i++)
        conns[i].fd = -1;
    if (!tm || !conns || !th || !tids || !lvs || !total)
        goto fail;
    for (int q = 0; q < o.queues; q++)
        if (tmpl_build(&o, q, &tm[q]) != 0)
            goto fail;

    for (int i = 0; i < o.conns; i++) {
        struct pconn *c = &conns[i];

        c->idx = i;
        c->out_cap = (size_t)o.inflight * tm[0].len + 64;
        for (int q = 1; q < o.queues; q++)
            if ((size_t)o.inflight * tm[q].len + 64 > c->out_cap)
                c->out_cap = (size_t)o.inflight * tm[q].len + 64;
        c->out = malloc(c->out_cap);
        c->in_cap = IN_BUF_MIN;
        c->in = malloc(c->in_cap);
        c->slot_t = calloc((size_t)o.inflight, sizeof(*c->slot_t));
        c->free_slots = calloc((size_t)o.inflight, sizeof(*c->free_slots));
        if (!c->out || !c->in || !c->slot_t || !c->free_slots)
            goto fail;
        for (int s = 0; s < o.inflight; s++)
            c->free_slots[c->nfree++] = (uint32_t)(o.inflight - 1 - s);
        c->fd = dial(&sa, salen, 1);
        if (c->fd < 0) {
            fprintf(stderr, "sprocket bench produce: connect %s: %s\n", o.addr,
                    spk_strerror(c->fd));
            c->fd = -1;
            c->dead = 1;
            goto fail;
        }
    }

    reqs = (o.messages + o.batch - 1) / o.batch;
    per = reqs / (uint64_t)o.threads;
    for (int i = 0; i < o.threads; i++) {
        struct pthread_state *t = &th[i];
        int from = o.conns * i / o.threads, to = o.conns * (i + 1) / o.threads;

        t->o = &o;
        t->tm = tm;
        t->id = i;
        t->c = conns + from;
        t->nc = to - from;
        t->req_left = per + (i == 0 ? reqs - per * (uint64_t)o.threads : 0);
        t->key_seq = (uint64_t)i;
        t->rr = (uint32_t)(i % o.queues);
        t->lv.h = calloc(1, sizeof(*t->lv.h));
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!t->lv.h || t->ep == -1)
            goto fail;
        memset(t->lv.h, 0, sizeof(*t->lv.h)); /* fault it in now, not while timing */
        t->prog = &prog;
        lvs[i] = &t->lv;
        for (int k = 0; k < t->nc; k++) {
            struct epoll_event ev;

            memset(&ev, 0, sizeof(ev));
            ev.events = EPOLLIN;
            ev.data.ptr = &t->c[k];
            if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->c[k].fd, &ev) == -1)
                goto fail;
        }
    }

    if (progress_init(&prog, lvs, o.threads) != 0)
        goto fail;
    prog_ok = 1;
    if (run_threads(&prog, tids, o.threads, produce_thread, th, sizeof(*th)) < o.threads)
        goto fail;

    for (int i = 0; i < o.threads; i++) {
        struct pthread_state *t = &th[i];

        hist_merge(total, t->lv.h);
        err_merge(&errs, &t->errs);
        sent += t->sent_req;
        ok_req += t->ok_req;
        ok_msgs += live_get(&t->lv.msgs);
        err_req += live_get(&t->lv.errors);
        err_msgs += t->err_msgs;
        flush_to += t->flush_timeouts;
        lost += t->lost_req;
        fallbacks += t->scan_fallbacks;
        failed |= t->failed;
        if (t->t_start < t0)
            t0 = t->t_start;
        if (t->t_end > t1)
            t1 = t->t_end;
    }
    secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    msgs_s = secs > 0 ? (double)ok_msgs / secs : 0;
    mib_s = msgs_s * (double)o.size / (1024.0 * 1024.0);
    hist_lat(total, &lat);

    printf("sprocket bench produce: %s topic %s, %d connections x %d in flight (%d in flight), "
           "%d thread(s)\n",
           o.addr, o.topic, o.conns, o.inflight, o.conns * o.inflight, o.threads);
    printf("  %u-byte messages, %u per request (%s), %d queues\n", o.size, o.batch,
           o.batch > 1 ? "SEND_BATCH_MESSAGE" : "SEND_MESSAGE_V2", o.queues);
    printf("  %s messages ok in %.2f s: %s msgs/s, %.1f MiB/s of bodies, %s requests/s\n",
           fmt_count((double)ok_msgs, cbuf, sizeof(cbuf)), secs,
           fmt_count(msgs_s, cbuf2, sizeof(cbuf2)), mib_s,
           fmt_count(secs > 0 ? (double)ok_req / secs : 0, cbuf3, sizeof(cbuf3)));
    print_lat("request latency (queued -> reply parsed)", total);
    printf("  errors: %" PRIu64 " requests (%" PRIu64 " messages), of which %" PRIu64
           " FLUSH_DISK_TIMEOUT and %" PRIu64 " lost with a connection\n",
           err_req, err_msgs, flush_to, lost);
    err_print(&errs);
    if (fallbacks)
        printf("  note: %" PRIu64 " replies needed a full decode\n", fallbacks);
    printf("{\"bench\":\"produce\",\"conns\":%d,\"inflight\":%d,\"threads\":%d,\"size\":%u,"
           "\"batch\":%u,\"queues\":%d,\"requests\":%" PRIu64 ",\"messages\":%" PRIu64
           ",\"seconds\":%.3f,\"msgs_s\":%.0f,\"mib_s\":%.1f,\"requests_s\":%.0f,"
           "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"p9999_us\":%.1f,\"max_us\":%.1f,\"errors\":%" PRIu64 ",\"error_messages\":%" PRIu64
           ",\"flush_timeouts\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"failed\":%s}\n",
           o.conns, o.inflight, o.threads, o.size, o.batch, o.queues, sent, ok_msgs, secs, msgs_s,
           mib_s, secs > 0 ? (double)ok_req / secs : 0, lat.p50, lat.p90, lat.p99, lat.p999,
           lat.p9999, lat.max, err_req, err_msgs, flush_to, lost, failed ? "true" : "false");
    ret = (failed || err_req || ok_msgs == 0) ? TOOL_EXIT_FAIL : TOOL_EXIT_OK;
fail:
    if (prog_ok)
        progress_fini(&prog);
    if (th) {
        for (int i = 0; i < o.threads; i++) {
            free(th[i].lv.h);
            if (th[i].ep != -1)
                close(th[i].ep);
        }
    }
    if (conns) {
        for (int i = 0; i < o.conns; i++) {
            if (conns[i].fd >= 0)
                close(conns[i].fd);
            free(conns[i].out);
            free(conns[i].in);
            free(conns[i].slot_t);
            free(conns[i].free_slots);
        }
    }
    if (tm)
        for (int q = 0; q < o.queues; q++)
            tmpl_free(&tm[q]);
    free(total);
    free(lvs);
    free(tids);
    free(th);
    free(conns);
    free(tm);
    return ret;
}

/* Consume ------------------------------------------------------------------ */

struct consume_opts {
    const char *addr, *topic, *group;
    int queues, conns, threads;
    int inflight; /* pulls in flight per connection; 0: one per queue */
    uint32_t batch, max_bytes;
    uint32_t size; /* body size every record must have, when size_check */
    int size_check;
    uint64_t messages, from;
    double seconds;
};

struct cconn;

/* A queue: at most one pull in flight, since the next offset comes from its reply. */
struct cqueue {
    int qid;
    uint64_t off; /* next queue_idx to pull */
    uint64_t t_send;
    int inflight, done;
    struct cconn *c;
};

/*
 * A connection and its queues. A queue ready for its next pull waits in
 * the ring <wait> until the connection has fewer than --inflight pulls
 * out; the ring is first in, first out, so the queues take turns.
 */
struct cconn {
    int fd, dead, want_out;
    uint8_t *out;
    size_t out_len, out_off, out_cap;
    uint8_t *in;
    size_t in_len, in_cap;
    int inflight; /* pulls sent and not answered */
    struct cqueue **wait;
    int wait_head, nwait, wait_cap;
};

/* One consume thread: its connections and the queues spread over them. */
struct cthread {
    const struct consume_opts *o;
    int ep;
    struct cconn *c;
    int nc;
    struct cqueue **q; /* the queues of <c> */
    int nq;
    struct cqueue *all;      /* every queue, by id (replies name theirs by opaque) */
    _Atomic uint64_t *total; /* messages read by every thread, for --messages */
    uint64_t stop_at;        /* monotonic ns to stop at; 0 = none */
    struct live lv;          /* lv.msgs: messages read; lv.errors: failed pulls */
    struct err_kinds errs;
    uint64_t bytes, body_bytes, pulls, found, not_found, retries, moved, bad_size;
    uint64_t t_start, t_end;
    int failed, timed_out;
    struct progress *prog;
};

static void
consume_usage(FILE *out)
{
    fputs("usage: sprocket bench consume [options]\n"
          "\n"
          "Reads a topic back from a running broker with PULL_MESSAGE (11): at most one\n"
          "pull in flight per queue (its reply says where the next one starts) and\n"
          "--inflight per connection, the queues spread over --conns connections, no long\n"
          "polling. A queue is done when the broker says there is nothing more\n"
          "(PULL_NOT_FOUND). Prints msgs/s, MiB/s of stored records and of bodies, pull\n"
          "latency (queued -> reply parsed: percentiles and distribution), then one line\n"
          "of JSON. While it runs, a progress line is shown on stderr if that is a\n"
          "terminal.\n"
          "\n"
          "options:\n"
          "  --addr=HOST:PORT   broker (default 127.0.0.1:10911)\n"
          "  --topic=T          topic (default BenchTopic)\n"
          "  --group=G          consumer group (default BenchConsumer)\n"
          "  --queues=N         queue ids 0..N-1, 1..1024 (default 8)\n"
          "  --threads=N        load threads, connections split between them, 1..64\n"
          "                     (default 1; at most --conns)\n"
          "  --conns=N          connections, 1..1024 (default 2; at most --queues); queue\n"
          "                     i uses connection i mod N\n"
          "  --inflight=N       pulls in flight per connection (window), each for another\n"
          "                     queue, 0..1024 (default 0: one per queue of the\n"
          "                     connection)\n"
          "  --batch=N          maxMsgNums per pull, 1..1024 (default 32)\n"
          "  --max-bytes=BYTES  maxMsgBytes per pull, 1024..67108864 (default 262144; the\n"
          "                     broker caps it at its maxPulledBytes)\n"
          "  --size=BYTES       body size every message must have, 0..4194304: a pull\n"
          "                     with another size counts as an error (default: not\n"
          "                     checked); a compressed body is compared as stored\n"
          "  --messages=N       stop after N messages (default 0: until every queue is\n"
          "                     drained)\n"
          "  --from=IDX         first queue offset of every queue (default 0)\n"
          "  --duration=S       stop after S seconds at most (default: no limit);\n"
          "                     --seconds=S is the same\n"
          "exit: 0 ok, 1 errors or failure, 2 usage\n",
          out);
}

static int
consume_parse(int argc, char **argv, struct consume_opts *o)
{
    uint64_t v;

    memset(o, 0, sizeof(*o));
    o->addr = "127.0.0.1:10911";
    o->topic = "BenchTopic";
    o->group = "BenchConsumer";
    o->queues = 8;
    o->conns = 2;
    o->threads = 1;
    o->batch = 32;
    o->max_bytes = 262144;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;

        if (tool_is_help(a)) {
            consume_usage(stdout);
            return 1;
        }
        if ((val = opt_val(a, "addr"))) {
            o->addr = val;
        } else if ((val = opt_val(a, "topic"))) {
            o->topic = val;
        } else if ((val = opt_val(a, "group"))) {
            o->group = val;
        } else if ((val = opt_val(a, "queues"))) {
            if (parse_u64(val, 1, 1024, &v))
                goto bad;
            o->queues = (int)v;
        } else if ((val = opt_val(a, "threads"))) {
            if (parse_u64(val, 1, 64, &v))
                goto bad;
            o->threads = (int)v;
        } else if ((val = opt_val(a, "conns"))) {
            if (parse_u64(val, 1, 1024, &v))
                goto bad;
            o->conns = (int)v;
        } else if ((val = opt_val(a, "inflight"))) {
            if (parse_u64(val, 0, 1024, &v))
                goto bad;
            o->inflight = (int)v;
        } else if ((val = opt_val(a, "batch"))) {
            if (parse_u64(val, 1, 1024, &v))
                goto bad;
            o->batch = (uint32_t)v;
        } else if ((val = opt_val(a, "max-bytes"))) {
            if (parse_u64(val, 1024, 64u << 20, &v))
                goto bad;
            o->max_bytes = (uint32_t)v;
        } else if ((val = opt_val(a, "size"))) {
            if (parse_u64(val, 0, 4u << 20, &v))
                goto bad;
            o->size = (uint32_t)v;
            o->size_check = 1;
        } else if ((val = opt_val(a, "messages"))) {
            if (parse_u64(val, 0, UINT64_MAX / 2, &v))
                goto bad;
            o->messages = v;
        } else if ((val = opt_val(a, "from"))) {
            if (parse_u64(val, 0, INT64_MAX, &v))
                goto bad;
            o->from = v;
        } else if ((val = opt_val(a, "duration")) || (val = opt_val(a, "seconds"))) {
            if (parse_seconds(val, &o->seconds))
                goto bad;
        } else {
            goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "sprocket bench consume: bad option '%s'; see --help\n", a);
        return -1;
    }
    if (o->conns > o->queues)
        o->conns = o->queues;
    if (o->threads > o->conns)
        o->threads = o->conns;
    return 0;
}

static void
cconn_close(struct cthread *t, struct cconn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    for (int i = 0; i < t->nq; i++) {
        struct cqueue *q = t->q[i];

        if (q->c == c && !q->done) {
            q->done = 1;
            if (q->inflight)
                live_add(&t->lv.errors, 1); /* a pull lost with the connection */
            q->inflight = 0;
        }
    }
    c->inflight = 0;
    c->nwait = 0;
    t->failed = 1;
}

static void
cconn_flush(struct cthread *t, struct cconn *c)
{
    struct epoll_event ev;
    int want;

    while (!c->dead && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        fprintf(stderr, "sprocket bench consume: write: %s\n", strerror(errno));
        cconn_close(t, c);
        return;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    want = c->out_len > c->out_off;
    if (want != c->want_out) {
        c->want_out = want;
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
        ev.data.ptr = c;
        epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

/* Queues a pull for <q> on its connection (sent by the next flush). */
static int
queue_pull(struct cthread *t, struct cqueue *q, uint64_t now)
{
    const struct consume_opts *o = t->o;
    struct cconn *c = q->c;
    struct proto_reply r;
    uint8_t *f = NULL;
    size_t flen;
    int rc;

    proto_reply_init(&r, RC_PULL_MESSAGE);
    proto_reply_ext(&r, "consumerGroup", "%s", o->group);
    proto_reply_ext(&r, "topic", "%s", o->topic);
    proto_reply_ext(&r, "queueId", "%d", q->qid);
    proto_reply_ext(&r, "queueOffset", "%" PRIu64, q->off);
    proto_reply_ext(&r, "maxMsgNums", "%u", o->batch);
    proto_reply_ext(&r, "sysFlag", "%d", PULL_SYS_SUBSCRIPTION);
    proto_reply_ext(&r, "commitOffset", "0");
    proto_reply_ext(&r, "suspendTimeoutMillis", "0");
    proto_reply_ext(&r, "subscription", "*");
    proto_reply_ext(&r, "subVersion", "0");
    proto_reply_ext(&r, "maxMsgBytes", "%u", o->max_bytes);
    rc = proto_request_encode(&r, OPQ_BASE + q->qid, 0, &f, &flen);
    proto_reply_free(&r);
    if (rc)
        return rc;
    if (c->out_len + flen > c->out_cap) {
        size_t ncap = (c->out_len + flen) * 2;
        uint8_t *nb = realloc(c->out, ncap);
        if (!nb) {
            free(f);
            return -ENOMEM;
        }
        c->out = nb;
        c->out_cap = ncap;
    }
    memcpy(c->out + c->out_len, f, flen);
    c->out_len += flen;
    free(f);
    q->inflight = 1;
    q->t_send = now;
    c->inflight++;
    t->pulls++;
    return 0;
}

static int
consume_wanted_more(const struct cthread *t)
{
    return t->o->messages == 0 ||
           atomic_load_explicit(t->total, memory_order_relaxed) < t->o->messages;
}

/* Puts <q> at the end of its connection's ring of queues ready to pull. */
static void
cconn_offer(struct cconn *c, struct cqueue *q)
{
    if (c->nwait == c->wait_cap)
        return; /* cannot happen: the ring holds every queue of the connection */
    c->wait[(c->wait_head + c->nwait) % c->wait_cap] = q;
    c->nwait++;
}

/* Sends pulls for waiting queues while the --inflight window has room. */
static void
cconn_pump(struct cthread *t, struct cconn *c, uint64_t now)
{
    while (!c->dead && c->nwait > 0 && (t->o->inflight == 0 || c->inflight < t->o->inflight) &&
           consume_wanted_more(t)) {
        struct cqueue *q = c->wait[c->wait_head];

        c->wait_head = (c->wait_head + 1) % c->wait_cap;
        c->nwait--;
        if (q->done)
            continue;
        if (queue_pull(t, q, now) != 0) {
            fprintf(stderr, "sprocket bench consume: cannot queue a pull: out of memory\n");
            t->failed = 1;
            q->done = 1;
        }
    }
}

/*
 * Walks the stored records of a FOUND body (docs/FORMAT.md, store/record.h):
 * counts them and their body bytes, and those whose body is not --size
 * bytes long when that is checked. Returns -1 when the body is not whole
 * records. Reads two fields per record, so it stays cheap at millions of
 * messages per second.
 */
static int
scan_records(const struct consume_opts *o, const uint8_t *body, size_t len, uint64_t *n,
             uint64_t *body_bytes, uint64_t *bad)
{
    size_t pos = 0;

    *n = *body_bytes = *bad = 0;
    while (pos < len) {
        uint32_t total, sysflag, blen;
        size_t boff;

        if (len - pos < REC_MIN_LEN)
            return -1;
        total = be32(body + pos);
        if (total < REC_MIN_LEN || total > len - pos)
            return -1;
        /* BODYLEN follows two hosts of 8 (IPv4) or 20 (IPv6) bytes each. */
        sysflag = be32(body + pos + 36);
        boff = 68 + ((sysflag & REC_SYS_BORN_V6) ? 20u : 8u) +
               ((sysflag & REC_SYS_STORE_V6) ? 20u : 8u);
        if (boff + 4 > total)
            return -1;
        blen = be32(body + pos + boff);
        if (blen > total - boff - 4)
            return -1;
        *body_bytes += blen;
        if (o->size_check && blen != o->size)
            (*bad)++;
        pos += total;
        (*n)++;
    }
    return 0;
}

static void
consume_reply(struct cthread *t, struct cconn *c, const uint8_t *frame, size_t len, uint64_t now)
{
    const struct consume_opts *o = t->o;
    struct proto_cmd cmd;
    struct cqueue *q = NULL;
    const char *nbo;
    int64_t qi;
    uint64_t next = 0, n = 0, body_bytes = 0, bad = 0;

    if (proto_decode(frame, len, &cmd) != 0) {
        fprintf(stderr, "sprocket bench consume: undecodable reply; closing connection\n");
        cconn_close(t, c);
        return;
    }
    if (!(cmd.flag & PROTO_FLAG_RESPONSE))
        goto out;
    qi = (int64_t)cmd.opaque - OPQ_BASE;
    if (qi >= 0 && qi < o->queues)
        q = &t->all[qi];
    if (!q || q->c != c || !q->inflight) {
        fprintf(stderr, "sprocket bench consume: reply with unknown opaque %d\n", cmd.opaque);
        goto out;
    }
    q->inflight = 0;
    c->inflight--;
    hist_add(t->lv.h, now - q->t_send);
    t->t_end = now;
    nbo = proto_ext_get(&cmd, "nextBeginOffset");
    if (nbo) {
        char *end;
        errno = 0;
        next = strtoull(nbo, &end, 10);
        if (errno || *end)
            nbo = NULL;
    }
    switch (cmd.code) {
    case RS_SUCCESS:
        if (scan_records(o, cmd.body, cmd.body_len, &n, &body_bytes, &bad) != 0 || !nbo) {
            live_add(&t->lv.errors, 1);
            err_note(&t->errs, cmd.code, "FOUND with a malformed body or no nextBeginOffset");
            q->done = 1;
            break;
        }
        t->found++;
        live_add(&t->lv.msgs, n);
        if (o->messages)
            atomic_fetch_add_explicit(t->total, n, memory_order_relaxed);
        t->bytes += cmd.body_len;
        t->body_bytes += body_bytes;
        if (bad) {
            t->bad_size += bad;
            live_add(&t->lv.errors, 1);
            err_note(&t->errs, cmd.code, "FOUND with messages whose body is not --size bytes");
        }
        q->off = next;
        break;
    case RS_PULL_NOT_FOUND:
        t->not_found++;
        q->done = 1; /* caught up: without long polling nothing more will come */
        break;
    case RS_PULL_RETRY_IMMEDIATELY:
    case RS_PULL_OFFSET_MOVED:
        if (cmd.code == RS_PULL_RETRY_IMMEDIATELY)
            t->retries++;
        else
            t->moved++;
        if (!nbo || (cmd.code == RS_PULL_OFFSET_MOVED && next == q->off)) {
            /* No way forward: stop this queue instead of spinning. */
            live_add(&t->lv.errors, 1);
            err_note(&t->errs, cmd.code, cmd.remark);
            q->done = 1;
            break;
        }
        if (cmd.code == RS_PULL_OFFSET_MOVED || next > q->off)
            q->off = next;
        break;
    default:
        live_add(&t->lv.errors, 1);
        err_note(&t->errs, cmd.code, cmd.remark);
        q->done = 1;
        break;
    }
    if (!q->done)
        cconn_offer(c, q);
    cconn_pump(t, c, now);
out:
    proto_cmd_free(&cmd);
}

static void
cconn_read(struct cthread *t, struct cconn *c, uint64_t now)
{
    for (;;) {
        size_t pos = 0, flen;
        ssize_t n;
        int rc;

        if (in_reserve(&c->in, c->in_len, &c->in_cap) != 0) {
            fprintf(stderr, "sprocket bench consume: bad or huge reply frame\n");
            cconn_close(t, c);
            return;
        }
        n = read_some(c->fd, c->in, &c->in_len, c->in_cap);
        if (n < 0) {
            fprintf(stderr, "sprocket bench consume: connection closed by the broker\n");
            cconn_close(t, c);
            return;
        }
        while ((rc = proto_frame_split(c->in + pos, c->in_len - pos, &flen)) == 0) {
            consume_reply(t, c, c->in + pos, flen, now);
            if (c->dead)
                return;
            pos += flen;
        }
        if (rc != -EAGAIN) {
            fprintf(stderr, "sprocket bench consume: bad frame: %s\n", spk_strerror(rc));
            cconn_close(t, c);
            return;
        }
        if (pos > 0) {
            memmove(c->in, c->in + pos, c->in_len - pos);
            c->in_len -= pos;
        }
        if (n == 0 || c->in_len < c->in_cap)
            return;
    }
}

static void *
consume_thread(void *arg)
{
    struct cthread *t = arg;
    struct epoll_event evs[64];
    uint64_t now = spk_mono_ns();

    t->t_start = t->t_end = now;
    if (t->o->seconds > 0)
        t->stop_at = now + (uint64_t)(t->o->seconds * 1e9);
    for (int i = 0; i < t->nc; i++)
        cconn_pump(t, &t->c[i], now);
    for (;;) {
        int n, busy = 0;

        for (int i = 0; i < t->nc; i++) {
            struct cconn *c = &t->c[i];

            if (!c->dead && c->out_len > c->out_off && !c->want_out)
                cconn_flush(t, c);
            busy += c->inflight;
        }
        if (busy == 0)
            break;
        if (t->stop_at && now >= t->stop_at) {
            t->timed_out = 1;
            break;
        }
        n = epoll_wait(t->ep, evs, 64, 100);
        if (n == -1 && errno != EINTR) {
            fprintf(stderr, "sprocket bench consume: epoll_wait: %s\n", strerror(errno));
            t->failed = 1;
            break;
        }
        now = spk_mono_ns();
        for (int i = 0; i < n; i++) {
            struct cconn *c = evs[i].data.ptr;

            if (c->dead)
                continue;
            if (evs[i].events & EPOLLOUT)
                cconn_flush(t, c);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                cconn_read(t, c, now);
        }
    }
    progress_thread_done(t->prog);
    return NULL;
}

static int
bench_consume(int argc, char **argv)
{
    struct consume_opts o;
    struct sockaddr_storage sa;
    socklen_t salen;
    struct cqueue *queues = NULL, **qrefs = NULL;
    struct cconn *conns = NULL;
    struct cthread *th = NULL;
    pthread_t *tids = NULL;
    struct live **lvs = NULL;
    struct progress prog;
    struct hist *total_h = NULL;
    struct err_kinds errs;
    struct lat lat;
    _Atomic uint64_t total_msgs = 0;
    uint64_t msgs = 0, errors = 0, bytes = 0, body_bytes = 0, pulls = 0, found = 0;
    uint64_t not_found = 0, retries = 0, moved = 0, bad_size = 0, t0 = UINT64_MAX, t1 = 0;
    double secs, msgs_s, mib_s, body_mib_s;
    char cbuf[32], cbuf2[32];
    int rc, ret = TOOL_EXIT_FAIL, failed = 0, timed_out = 0, prog_ok = 0, nq = 0;

    rc = consume_parse(argc, argv, &o);
    if (rc)
        return rc > 0 ? TOOL_EXIT_OK : TOOL_EXIT_USAGE;
    if (resolve(o.addr, &sa, &salen) != 0)
        return TOOL_EXIT_USAGE;
    memset(&errs, 0, sizeof(errs));
    queues = calloc((size_t)o.queues, sizeof(*queues));
    qrefs = calloc((size_t)o.queues, sizeof(*qrefs));
    conns = calloc((size_t)o.conns, sizeof(*conns));
    th = calloc((size_t)o.threads, sizeof(*th));
    tids = calloc((size_t)o.threads, sizeof(*tids));
    lvs = calloc((size_t)o.threads, sizeof(*lvs));
    total_h = calloc(1, sizeof(*total_h));
    for (int i = 0; conns && i < o.conns; i++)
        conns[i].fd = -1;
    for (int i = 0; th && i < o.threads; i++)
        th[i].ep = -1;
    if (!queues || !qrefs || !conns || !th || !tids || !lvs || !total_h)
        goto fail;

    for (int i = 0; i < o.conns; i++) {
        struct cconn *c = &conns[i];

        /* Room for the largest pull: --max-bytes of records plus a header. */
        c->in_cap = (size_t)o.max_bytes + 64 * 1024;
        c->in = malloc(c->in_cap);
        c->wait_cap = (o.queues - i + o.conns - 1) / o.conns; /* queues i, i + conns, ... */
        c->wait = calloc((size_t)c->wait_cap, sizeof(*c->wait));
        if (!c->in || !c->wait)
            goto fail;
        c->fd = dial(&sa, salen, 1);
        if (c->fd < 0) {
            fprintf(stderr, "sprocket bench consume: connect %s: %s\n", o.addr,
                    spk_strerror(c->fd));
            c->fd = -1;
            goto fail;
        }
    }
    for (int i = 0; i < o.queues; i++) {
        queues[i].qid = i;
        queues[i].off = o.from;
        queues[i].c = &conns[i % o.conns];
        cconn_offer(queues[i].c, &queues[i]);
    }

    /* Thread k owns a contiguous range of connections and their queues. */
    for (int k = 0; k < o.threads; k++) {
        struct cthread *t = &th[k];
        int from = o.conns * k / o.threads, to = o.conns * (k + 1) / o.threads;

        t->o = &o;
        t->c = conns + from;
        t->nc = to - from;
        t->q = qrefs + nq;
        for (int i = 0; i < o.queues; i++) {
            int ci = i % o.conns;
            if (ci >= from && ci < to)
                qrefs[nq++] = &queues[i];
        }
        t->nq = (int)(qrefs + nq - t->q);
        t->all = queues;
        t->total = &total_msgs;
        t->prog = &prog;
        t->lv.h = calloc(1, sizeof(*t->lv.h));
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!t->lv.h || t->ep == -1)
            goto fail;
        memset(t->lv.h, 0, sizeof(*t->lv.h)); /* fault it in now, not while timing */
        lvs[k] = &t->lv;
        for (int i = 0; i < t->nc; i++) {
            struct epoll_event ev;

            memset(&ev, 0, sizeof(ev));
            ev.events = EPOLLIN;
            ev.data.ptr = &t->c[i];
            if (epoll_ctl(t->ep, EPOLL_CTL_ADD, t->c[i].fd, &ev) == -1)
                goto fail;
        }
    }

    if (progress_init(&prog, lvs, o.threads) != 0)
        goto fail;
    prog_ok = 1;
    if (run_threads(&prog, tids, o.threads, consume_thread, th, sizeof(*th)) < o.threads)
        goto fail;

    for (int k = 0; k < o.threads; k++) {
        struct cthread *t = &th[k];

        hist_merge(total_h, t->lv.h);
        err_merge(&errs, &t->errs);
        msgs += live_get(&t->lv.msgs);
        errors += live_get(&t->lv.errors);
        bytes += t->bytes;
        body_bytes += t->body_bytes;
        pulls += t->pulls;
        found += t->found;
        not_found += t->not_found;
        retries += t->retries;
        moved += t->moved;
        bad_size += t->bad_size;
        failed |= t->failed;
        timed_out |= t->timed_out;
        if (t->t_start < t0)
            t0 = t->t_start;
        if (t->t_end > t1)
            t1 = t->t_end;
    }
    secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    msgs_s = secs > 0 ? (double)msgs / secs : 0;
    mib_s = secs > 0 ? (double)bytes / secs / (1024.0 * 1024.0) : 0;
    body_mib_s = secs > 0 ? (double)body_bytes / secs / (1024.0 * 1024.0) : 0;
    hist_lat(total_h, &lat);
    printf("sprocket bench consume: %s topic %s, %d queues over %d connection(s), %d thread(s)\n",
           o.addr, o.topic, o.queues, o.conns, o.threads);
    if (o.inflight)
        printf("  up to %d pulls in flight per connection", o.inflight);
    else
        printf("  one pull in flight per queue");
    printf(", maxMsgNums %u, maxMsgBytes %u\n", o.batch, o.max_bytes);
    printf("  %s messages in %.2f s: %s msgs/s, %.1f MiB/s of stored records (%.1f MiB/s of "
           "bodies), %.1f msgs per FOUND pull\n",
           fmt_count((double)msgs, cbuf, sizeof(cbuf)), secs,
           fmt_count(msgs_s, cbuf2, sizeof(cbuf2)), mib_s, body_mib_s,
           found ? (double)msgs / (double)found : 0.0);
    printf("  pulls: %" PRIu64 " (found %" PRIu64 ", not found %" PRIu64 ", retry %" PRIu64
           ", offset moved %" PRIu64 ", errors %" PRIu64 ")%s\n",
           pulls, found, not_found, retries, moved, errors,
           timed_out ? "; stopped by --duration" : "");
    if (o.size_check)
        printf("  body size check (%u bytes): %" PRIu64 " messages of another size\n", o.size,
               bad_size);
    print_lat("pull latency (queued -> reply parsed)", total_h);
    err_print(&errs);
    printf("{\"bench\":\"consume\",\"queues\":%d,\"conns\":%d,\"threads\":%d,\"inflight\":%d,"
           "\"batch\":%u,\"max_bytes\":%u,\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"body_bytes\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_s\":%.0f,\"mib_s\":%.1f,"
           "\"body_mib_s\":%.1f,\"pulls\":%" PRIu64 ",\"found\":%" PRIu64 ",\"not_found\":%" PRIu64
           ",\"retries\":%" PRIu64 ",\"moved\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"bad_size\":%" PRIu64 ",\"p50_us\":%.1f,\"p90_us\":%.1f,"
           "\"p99_us\":%.1f,\"p999_us\":%.1f,\"p9999_us\":%.1f,\"max_us\":%.1f,"
           "\"timed_out\":%s,\"failed\":%s}\n",
           o.queues, o.conns, o.threads, o.inflight, o.batch, o.max_bytes, msgs, bytes, body_bytes,
           secs, msgs_s, mib_s, body_mib_s, pulls, found, not_found, retries, moved, errors,
           bad_size, lat.p50, lat.p90, lat.p99, lat.p999, lat.p9999, lat.max,
           timed_out ? "true" : "false", failed ? "true" : "false");
    ret = (failed || errors || msgs == 0) ? TOOL_EXIT_FAIL : TOOL_EXIT_OK;
fail:
    if (prog_ok)
        progress_fini(&prog);
    if (th) {
        for (int k = 0; k < o.threads; k++) {
            free(th[k].lv.h);
            if (th[k].ep != -1)
                close(th[k].ep);
        }
    }
    if (conns) {
        for (int i = 0; i < o.conns; i++) {
            if (conns[i].fd >= 0)
                close(conns[i].fd);
            free(conns[i].in);
            free(conns[i].out);
            free(conns[i].wait);
        }
    }
    free(total_h);
    free(lvs);
    free(tids);
    free(th);
    free(conns);
    free(qrefs);
    free(queues);
    return ret;
}

/* Entry points (tool.h) ------------------------------------------------------ */

int
cmd_bench_produce(int argc, char **argv)
{
    return bench_produce(argc, argv);
}

int
cmd_bench_consume(int argc, char **argv)
{
    return bench_consume(argc, argv);
}
