/*
 * t_net.c - unit tests for src/net/loop.c and src/net/client.c.
 *
 * A net_loop runs on its own thread (net_loop_run, stopped with
 * net_loop_stop from the test thread) and the test drives it with plain
 * blocking sockets, so every byte crosses a real loopback connection.
 *
 * The server's on_frame callback obeys the first payload byte of each
 * frame (after the 4-byte length field):
 *
 *   'E'  echo the frame
 *   'D'  echo it after <arg> ms, from a one-shot timer
 *   'A'  reply with a frame of <arg> bytes (length field included)
 *   'R'  reply with the shared big buffer, sent as a borrowed chunk
 *   'H'  hold the connection (net_conn_hold) and echo
 *   'P'  push 64 KiB to this connection every 5 ms until it closes
 *   'N'  no reply at all
 *   'S'  sleep <arg> ms inside the callback (the loop is busy), then echo
 *   'X'  close every other open connection, then echo
 *
 * followed by a big-endian uint32 <arg> and a uint32 sequence number.
 * State shared with the test thread is read and written with __atomic
 * builtins. Waits poll with generous deadlines and short sleeps; nothing
 * asserts an upper bound on latency tighter than seconds, so the tests
 * hold on a loaded two-core machine.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "net/client.h"
#include "net/loop.h"
#include "proto/remoting.h"
#include "proto/reply.h"

#define HDR 13 /* length field, op, arg, seq */
#define MAX_ORDER 4096
#define WAIT_MS 10000

static int devnull = -1;

static void
setup(void)
{
    struct sigaction sa;

    /* The daemon ignores SIGPIPE; a write to a reset peer must be an error here too. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert(devnull >= 0);
    spk_log_init('T', SPK_LOG_DEBUG, devnull);
}

static void
teardown(void)
{
    close(devnull);
}

TestSuite(net, .init = setup, .fini = teardown, .timeout = 60);

/* ------------------------------------------------------------ helpers */

static int
ld(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void
inc(int *p)
{
    __atomic_add_fetch(p, 1, __ATOMIC_ACQ_REL);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Polls until *p >= want or <timeout_ms> passes; returns the last value seen. */
static int
wait_for(const int *p, int want, int timeout_ms)
{
    int64_t deadline = spk_mono_ms() + timeout_ms;
    int v;

    while ((v = ld(p)) < want && spk_mono_ms() < deadline)
        sleep_ms(1);
    return v;
}

/* A port that was free a moment ago (the kernel's choice for port 0). */
static int
probe_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

    cr_assert(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* net_listen on 127.0.0.1 at a free port, retrying when another process took it. */
static int
listen_free(struct net_loop *l, const struct net_handler *h, void *ud)
{
    char err[256];

    for (int attempt = 0; attempt < 50; attempt++) {
        int port = probe_port(), rc = net_listen(l, "127.0.0.1", port, h, ud, err, sizeof(err));

        if (rc == 0)
            return port;
        cr_assert_eq(rc, -EADDRINUSE, "net_listen: %s", err);
    }
    cr_assert_fail("no free port after 50 attempts");
    return -1;
}

/* The test server: a loop on its own thread and what its callbacks saw. */
struct srv {
    struct net_loop *loop;
    pthread_t th;
    int running;
    int port;
    /* counters (atomic) */
    int frames, closes, conns, released, amp_frames, queued, timer_fires;
    /* order in which replies were queued, by sequence number (loop thread) */
    uint32_t order[MAX_ORDER];
    int norder;
    struct net_conn *held;
    struct net_conn *open[16]; /* connections seen and not yet closed (loop thread) */
    int nopen;
    const uint8_t *big; /* borrowed by 'R' replies */
    size_t big_len;
    int loop_rc;
    /* srv_snapshot(): copies taken on the loop thread */
    struct net_wakeup *snap_w;
    struct net_stats snap_st;
    struct net_iter_hist snap_ih;
    int snap_done;
};

static void
record_order(struct srv *s, uint32_t seq)
{
    int n = ld(&s->norder);

    if (n < MAX_ORDER) {
        s->order[n] = seq;
        __atomic_store_n(&s->norder, n + 1, __ATOMIC_RELEASE);
    }
}

static void
send_copy(struct net_conn *c, const uint8_t *p, size_t len)
{
    uint8_t *b = malloc(len);

    cr_assert_not_null(b);
    memcpy(b, p, len);
    (void)net_conn_send(c, b, len);
}

/* A frame of <len> bytes (length field included) carrying <seq>, filled with a pattern. */
static uint8_t *
pattern_frame(size_t len, uint32_t seq)
{
    uint8_t *f = malloc(len);

    cr_assert_not_null(f);
    cr_assert(len >= HDR);
    be_put32(f, (uint32_t)(len - 4));
    f[4] = 'a';
    be_put32(f + 5, (uint32_t)len);
    be_put32(f + 9, seq);
    for (size_t i = HDR; i < len; i++)
        f[i] = (uint8_t)(i * 7 + seq);
    return f;
}

struct deferred {
    struct srv *s;
    struct net_conn *c;
    uint8_t *frame;
    size_t len;
};

static void
deferred_fire(void *arg)
{
    struct deferred *d = arg;

    record_order(d->s, be_get32(d->frame + 9));
    (void)net_conn_send(d->c, d->frame, d->len);
    net_conn_put(d->c);
    free(d);
}

struct pusher {
    struct srv *s;
    struct net_conn *c;
    struct net_timer *t;
};

static void
push_fire(void *arg)
{
    struct pusher *p = arg;

    if (net_conn_is_closed(p->c)) {
        net_timer_cancel(p->s->loop, p->t);
        net_conn_put(p->c);
        free(p);
        return;
    }
    (void)net_conn_send(p->c, pattern_frame(65536, 0), 65536);
}

static void
release_big(void *arg)
{
    inc(&((struct srv *)arg)->released);
}

static void
srv_on_frame(void *ud, struct net_conn *c, const uint8_t *f, size_t len)
{
    struct srv *s = ud;
    uint32_t arg = len >= HDR ? be_get32(f + 5) : 0, seq = len >= HDR ? be_get32(f + 9) : 0;
    uint8_t op = len > 4 ? f[4] : 'E';

    if (net_conn_udata(c) == NULL) {
        net_conn_set_udata(c, s);
        inc(&s->conns);
        if (s->nopen < 16)
            s->open[s->nopen++] = c;
    }
    inc(&s->frames);
    switch (op) {
    case 'S':
        sleep_ms((int)arg);
        send_copy(c, f, len);
        break;
    case 'X':
        for (int i = 0; i < s->nopen;) {
            if (s->open[i] != c)
                net_conn_close(s->open[i]); /* on_close removes it from open[] */
            else
                i++;
        }
        send_copy(c, f, len);
        break;
    case 'D': {
        struct deferred *d = calloc(1, sizeof(*d));

        cr_assert_not_null(d);
        d->s = s;
        d->c = c;
        d->len = len;
        d->frame = malloc(len);
        cr_assert_not_null(d->frame);
        memcpy(d->frame, f, len);
        net_conn_hold(c);
        cr_assert_not_null(net_timer_add(s->loop, arg, 0, deferred_fire, d));
        break;
    }
    case 'A':
        inc(&s->amp_frames);
        record_order(s, seq);
        (void)net_conn_send(c, pattern_frame(arg, seq), arg);
        inc(&s->queued);
        break;
    case 'R': {
        uint8_t *h = malloc(4);

        cr_assert_not_null(h);
        be_put32(h, (uint32_t)s->big_len);
        (void)net_conn_send(c, h, 4);
        (void)net_conn_send_ref(c, s->big, s->big_len, release_big, s);
        inc(&s->queued);
        break;
    }
    case 'H':
        net_conn_hold(c);
        __atomic_store_n(&s->held, c, __ATOMIC_RELEASE);
        send_copy(c, f, len);
        break;
    case 'P': {
        struct pusher *p = calloc(1, sizeof(*p));

        cr_assert_not_null(p);
        p->s = s;
        p->c = c;
        net_conn_hold(c);
        p->t = net_timer_add(s->loop, 0, 5, push_fire, p);
        cr_assert_not_null(p->t);
        break;
    }
    case 'N':
        break;
    default:
        record_order(s, seq);
        send_copy(c, f, len);
        break;
    }
}

static void
srv_on_close(void *ud, struct net_conn *c)
{
    struct srv *s = ud;

    for (int i = 0; i < s->nopen; i++) {
        if (s->open[i] == c) {
            s->open[i] = s->open[--s->nopen];
            break;
        }
    }
    inc(&s->closes);
}

static const struct net_handler srv_handler = {srv_on_frame, srv_on_close};

static void
snap_fire(void *arg)
{
    struct srv *s = arg;

    net_loop_stats(s->loop, &s->snap_st, 0);
    net_loop_iter_hist(s->loop, &s->snap_ih);
    __atomic_store_n(&s->snap_done, 1, __ATOMIC_RELEASE);
}

/* The loop's counters and histogram, copied on the loop thread while it runs. */
static void
srv_snapshot(struct srv *s, struct net_stats *st, struct net_iter_hist *ih)
{
    __atomic_store_n(&s->snap_done, 0, __ATOMIC_RELEASE);
    net_wakeup_signal(s->snap_w);
    cr_assert_eq(wait_for(&s->snap_done, 1, WAIT_MS), 1);
    if (st)
        *st = s->snap_st;
    if (ih)
        *ih = s->snap_ih;
}

static void *
loop_thread(void *arg)
{
    struct srv *s = arg;

    s->loop_rc = net_loop_run(s->loop);
    return NULL;
}

/* Creates the loop and its listener (with <lim> if not NULL); not running yet. */
static void
srv_init(struct srv *s, const struct net_limits *lim)
{
    memset(s, 0, sizeof(*s));
    cr_assert_eq(net_loop_create(&s->loop), 0);
    if (lim)
        net_loop_set_limits(s->loop, lim);
    s->port = listen_free(s->loop, &srv_handler, s);
    s->snap_w = net_wakeup_add(s->loop, snap_fire, s);
    cr_assert_not_null(s->snap_w);
}

static void
srv_run(struct srv *s)
{
    cr_assert_eq(pthread_create(&s->th, NULL, loop_thread, s), 0);
    s->running = 1;
}

static void
srv_start(struct srv *s, const struct net_limits *lim)
{
    srv_init(s, lim);
    srv_run(s);
}

/* Stops the loop thread and joins it; the loop stays for inspection. */
static void
srv_halt(struct srv *s)
{
    if (!s->running)
        return;
    net_loop_stop(s->loop);
    cr_assert_eq(pthread_join(s->th, NULL), 0);
    s->running = 0;
    cr_assert_eq(s->loop_rc, 0);
}

static void
srv_stop(struct srv *s)
{
    srv_halt(s);
    net_loop_destroy(s->loop);
    s->loop = NULL;
}

/* A blocking client socket to 127.0.0.1:<port>; <rcvbuf> > 0 shrinks its receive buffer. */
static int
cli_connect(int port, int rcvbuf)
{
    struct sockaddr_in sa;
    struct timeval tv = {WAIT_MS / 1000, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    cr_assert(fd >= 0);
    if (rcvbuf > 0) /* before connect, so the window starts small */
        cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

static void
cli_write(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;

    while (len > 0) {
        ssize_t w = write(fd, b, len);

        if (w == -1 && errno == EINTR)
            continue;
        cr_assert(w > 0, "write: %s", w == -1 ? strerror(errno) : "0");
        b += w;
        len -= (size_t)w;
    }
}

/* Reads exactly <len> bytes; returns 0, or -1 on EOF, reset or timeout. */
static int
read_full(int fd, void *p, size_t len)
{
    uint8_t *b = p;

    while (len > 0) {
        ssize_t r = read(fd, b, len);

        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        len -= (size_t)r;
    }
    return 0;
}

/* Reads one frame; returns it (malloc'd, length field included) or NULL. */
static uint8_t *
cli_read_frame(int fd, size_t *len)
{
    uint8_t hdr[4], *f;
    uint32_t n;

    if (read_full(fd, hdr, 4) != 0)
        return NULL;
    n = be_get32(hdr);
    f = malloc((size_t)n + 4);
    cr_assert_not_null(f);
    memcpy(f, hdr, 4);
    if (read_full(fd, f + 4, n) != 0) {
        free(f);
        return NULL;
    }
    *len = (size_t)n + 4;
    return f;
}

/*
 * Reads and discards until the peer closes (EOF or reset) or <timeout_ms>
 * passes. Returns 1 when the connection was closed by the peer.
 */
static int
cli_wait_closed(int fd, int timeout_ms)
{
    int64_t deadline = spk_mono_ms() + timeout_ms;
    struct timeval tv = {0, 50000};
    static uint8_t sink[65536];

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (spk_mono_ms() < deadline) {
        ssize_t r = read(fd, sink, sizeof(sink));

        if (r == 0 || (r == -1 && (errno == ECONNRESET || errno == EPIPE)))
            return 1;
        if (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return 1;
    }
    return 0;
}

/* A request frame: op, arg, seq, then <extra> filler bytes. */
static size_t
mk_req(uint8_t *buf, uint8_t op, uint32_t arg, uint32_t seq, size_t extra)
{
    be_put32(buf, (uint32_t)(HDR - 4 + extra));
    buf[4] = op;
    be_put32(buf + 5, arg);
    be_put32(buf + 9, seq);
    for (size_t i = 0; i < extra; i++)
        buf[HDR + i] = (uint8_t)(seq + i);
    return HDR + extra;
}

/* Sends one echo request and checks the echo comes back. */
static void
echo_once(int fd, uint32_t seq)
{
    uint8_t req[64], *resp;
    size_t n = mk_req(req, 'E', 0, seq, 20), rlen = 0;

    cli_write(fd, req, n);
    resp = cli_read_frame(fd, &rlen);
    cr_assert_not_null(resp, "no echo for seq %u", seq);
    cr_assert_eq(rlen, n);
    cr_assert_eq(memcmp(resp, req, n), 0);
    free(resp);
}

/* -------------------------------------------------------------- framing */

/* Frames dribbled in 1..13-byte writes are each delivered once, in order. */
Test(net, frames_split_across_small_writes)
{
    struct srv s;
    enum { N = 200 };
    uint8_t *stream = malloc(N * (HDR + 300));
    size_t off = 0, pos = 0, lens[N];
    int fd, piece = 0;

    cr_assert_not_null(stream);
    srv_start(&s, NULL);
    fd = cli_connect(s.port, 0);
    for (uint32_t i = 0; i < N; i++) {
        lens[i] = mk_req(stream + off, 'E', 0, i, (i * 37) % 300);
        off += lens[i];
    }
    while (pos < off) {
        size_t n = 1 + (size_t)(piece * 7 % 13);

        if (n > off - pos)
            n = off - pos;
        cli_write(fd, stream + pos, n);
        pos += n;
        /* Let the loop see a partial frame now and then. */
        if (++piece % 64 == 0)
            sleep_ms(1);
    }
    pos = 0;
    for (uint32_t i = 0; i < N; i++) {
        size_t rlen = 0;
        uint8_t *f = cli_read_frame(fd, &rlen);

        cr_assert_not_null(f, "echo %u missing", i);
        cr_assert_eq(rlen, lens[i]);
        cr_assert_eq(memcmp(f, stream + pos, rlen), 0, "echo %u differs", i);
        pos += rlen;
        free(f);
    }
    cr_assert_eq(wait_for(&s.frames, N, WAIT_MS), N);
    close(fd);
    srv_stop(&s);
    cr_assert_eq(s.frames, N);
    free(stream);
}

/* Thousands of frames in one write, one bigger than the read chunk, all echoed in order. */
Test(net, many_frames_in_one_write)
{
    struct srv s;
    enum { N = 3000, BIG_AT = 1500, BIG = 1 << 20 };
    size_t cap = (size_t)N * (HDR + 64) + BIG, off = 0, pos = 0;
    uint8_t *stream = malloc(cap);
    int fd;

    cr_assert_not_null(stream);
    srv_start(&s, NULL);
    fd = cli_connect(s.port, 0);
    for (uint32_t i = 0; i < N; i++)
        off += mk_req(stream + off, 'E', 0, i, i == BIG_AT ? BIG : i % 64);
    cli_write(fd, stream, off);
    for (uint32_t i = 0; i < N; i++) {
        size_t rlen = 0;
        uint8_t *f = cli_read_frame(fd, &rlen);

        cr_assert_not_null(f, "echo %u missing", i);
        cr_assert_eq(be_get32(f + 9), i);
        cr_assert_eq(memcmp(f, stream + pos, rlen), 0, "echo %u differs", i);
        pos += rlen;
        free(f);
    }
    cr_assert_eq(pos, off);
    close(fd);
    srv_stop(&s);
    cr_assert_eq(s.frames, N);
    free(stream);
}

/* The largest legal frame (length field 16 MiB - 4) is delivered whole. */
Test(net, largest_frame_is_accepted)
{
    struct srv s;
    size_t len = PROTO_FRAME_MAX, rlen = 0;
    uint8_t *f = malloc(len), *r;
    int fd;

    cr_assert_not_null(f);
    mk_req(f, 'E', 0, 7, len - HDR);
    srv_start(&s, NULL);
    fd = cli_connect(s.port, 0);
    cli_write(fd, f, len);
    r = cli_read_frame(fd, &rlen);
    cr_assert_not_null(r);
    cr_assert_eq(rlen, len);
    cr_assert_eq(memcmp(r, f, len), 0);
    free(r);
    close(fd);
    srv_stop(&s);
    free(f);
}

/* A length field over 16 MiB - 4 or under 4 closes that connection only. */
Test(net, bad_length_closes_only_that_connection)
{
    static const uint32_t bad[] = {PROTO_FRAME_MAX - 3, PROTO_FRAME_MAX, 0xFFFFFFFFu, 0, 3};
    struct srv s;
    int good;

    srv_start(&s, NULL);
    good = cli_connect(s.port, 0);
    echo_once(good, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[16] = {0};
        int fd = cli_connect(s.port, 0);

        echo_once(fd, 100 + (uint32_t)i); /* a good frame first, on the same connection */
        be_put32(b, bad[i]);
        cli_write(fd, b, sizeof(b));
        cr_assert(cli_wait_closed(fd, WAIT_MS), "length %u did not close", bad[i]);
        close(fd);
        echo_once(good, 2 + (uint32_t)i);
    }
    cr_assert_eq(wait_for(&s.closes, 5, WAIT_MS), 5);
    {
        int fresh = cli_connect(s.port, 0);

        echo_once(fresh, 50);
        close(fresh);
    }
    close(good);
    srv_stop(&s);
}

/* net_limits.frame_max lowers the limit. */
Test(net, frame_max_limit)
{
    struct net_limits lim = {32u << 20, 512u << 20, 0, 1024, 0, 0};
    struct srv s;
    uint8_t buf[2048];
    int fd;

    srv_start(&s, &lim);
    fd = cli_connect(s.port, 0);
    cli_write(fd, buf, mk_req(buf, 'E', 0, 1, 1024 - HDR)); /* exactly 1024: fine */
    {
        size_t rlen = 0;
        uint8_t *r = cli_read_frame(fd, &rlen);

        cr_assert_not_null(r);
        cr_assert_eq(rlen, 1024);
        free(r);
    }
    cli_write(fd, buf, mk_req(buf, 'E', 0, 2, 1025 - HDR));
    cr_assert(cli_wait_closed(fd, WAIT_MS));
    close(fd);
    srv_stop(&s);
}

/* ------------------------------------------------------------- ordering */

/* Replies deferred by timers arrive in the order they were queued, not requested. */
Test(net, replies_arrive_in_queue_order)
{
    static const uint32_t delay[] = {300, 0, 200, 0, 100, 0, 50, 250};
    enum { N = sizeof(delay) / sizeof(delay[0]) };
    struct srv s;
    uint8_t buf[N * 64];
    size_t off = 0;
    uint32_t got[N];
    int fd, immediate = 0;

    srv_start(&s, NULL);
    fd = cli_connect(s.port, 0);
    for (uint32_t i = 0; i < N; i++)
        off += mk_req(buf + off, delay[i] ? 'D' : 'E', delay[i], i, 3);
    cli_write(fd, buf, off);
    for (int i = 0; i < N; i++) {
        size_t rlen = 0;
        uint8_t *f = cli_read_frame(fd, &rlen);

        cr_assert_not_null(f);
        got[i] = be_get32(f + 9);
        free(f);
    }
    cr_assert_eq(ld(&s.norder), N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(got[i], s.order[i], "reply %d: got seq %u, queued %u", i, got[i], s.order[i]);
        if (i < 3 && delay[got[i]] == 0)
            immediate++;
    }
    /* The three immediate replies were queued before any timer fired. */
    cr_assert_eq(immediate, 3);
    close(fd);
    srv_stop(&s);
}

/* -------------------------------------------------------- borrowed chunks */

#define BIG_LEN (12u << 20)

static uint8_t *
big_buffer(void)
{
    uint8_t *b = malloc(BIG_LEN);

    cr_assert_not_null(b);
    for (size_t i = 0; i < BIG_LEN; i++)
        b[i] = (uint8_t)(i * 13 + (i >> 12));
    return b;
}

/* release runs once, and only after the peer has taken every byte. */
Test(net, borrowed_chunk_released_once_after_written)
{
    struct srv s;
    uint8_t req[64], *big = big_buffer(), *f;
    size_t rlen = 0;
    int fd;

    srv_start(&s, NULL);
    s.big = big;
    s.big_len = BIG_LEN;
    fd = cli_connect(s.port, 4096);
    cli_write(fd, req, mk_req(req, 'R', 0, 1, 0));
    cr_assert_eq(wait_for(&s.queued, 1, WAIT_MS), 1);
    /* 12 MiB cannot fit in the socket buffers of a peer that is not reading. */
    sleep_ms(200);
    cr_assert_eq(ld(&s.released), 0, "released before the bytes were written");
    f = cli_read_frame(fd, &rlen);
    cr_assert_not_null(f);
    cr_assert_eq(rlen, BIG_LEN + 4);
    cr_assert_eq(memcmp(f + 4, big, BIG_LEN), 0);
    free(f);
    cr_assert_eq(wait_for(&s.released, 1, WAIT_MS), 1);
    echo_once(fd, 2);
    close(fd);
    cr_assert_eq(wait_for(&s.closes, 1, WAIT_MS), 1);
    srv_stop(&s);
    cr_assert_eq(s.released, 1);
    free(big);
}

/*
 * A peer that resets with a borrowed chunk still queued: release runs once.
 * (The EPOLLOUT branch of net_loop_run holds the connection around
 * conn_flush; when the write fails and closes it, the put frees it and
 * the following `c->closed` test reads freed memory.)
 */
Test(net, borrowed_chunk_released_when_connection_dies)
{
    struct srv s;
    uint8_t req[64], *big = big_buffer();
    struct linger lg = {1, 0};
    int fd;

    srv_start(&s, NULL);
    s.big = big;
    s.big_len = BIG_LEN;
    fd = cli_connect(s.port, 4096);
    cli_write(fd, req, mk_req(req, 'R', 0, 1, 0));
    cr_assert_eq(wait_for(&s.queued, 1, WAIT_MS), 1);
    sleep_ms(50);
    cr_assert_eq(ld(&s.released), 0);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* close sends RST */
    close(fd);
    cr_assert_eq(wait_for(&s.closes, 1, WAIT_MS), 1);
    cr_assert_eq(wait_for(&s.released, 1, WAIT_MS), 1);
    sleep_ms(50);
    srv_stop(&s);
    cr_assert_eq(s.released, 1);
    free(big);
}

/* Destroying the loop with a borrowed chunk queued releases it once. */
Test(net, borrowed_chunk_released_by_destroy)
{
    struct srv s;
    uint8_t req[64], *big = big_buffer();
    int fd;

    srv_start(&s, NULL);
    s.big = big;
    s.big_len = BIG_LEN;
    fd = cli_connect(s.port, 4096);
    cli_write(fd, req, mk_req(req, 'R', 0, 1, 0));
    cr_assert_eq(wait_for(&s.queued, 1, WAIT_MS), 1);
    sleep_ms(50);
    srv_halt(&s);
    cr_assert_eq(s.released, 0);
    net_loop_destroy(s.loop);
    cr_assert_eq(s.released, 1);
    cr_assert_eq(s.closes, 1);
    close(fd);
    free(big);
}

/* --------------------------------------------------------- output limits */

/*
 * A peer that sends requests but does not read: once its queued output
 * passes out_soft the loop stops reading it (INV-2), so its requests pile
 * up unread while another connection is served; when it reads again the
 * loop resumes and every reply arrives in order.
 */
Test(net, slow_reader_is_paused_then_resumed)
{
    struct net_limits lim = {64u << 10, 256u << 20, 0, 0, 0, 0};
    enum { N = 200, REPLY = 64 << 10 };
    struct srv s;
    uint8_t req[64];
    int slow, other, seen;

    srv_start(&s, &lim);
    slow = cli_connect(s.port, 4096);
    other = cli_connect(s.port, 0);
    for (uint32_t i = 0; i < N; i++) {
        cli_write(slow, req, mk_req(req, 'A', REPLY, i, 0));
        if (i % 10 == 9)
            sleep_ms(2);
    }
    /* The kernel's socket buffer takes some replies before the loop's own
     * queue grows: wait until reading has stopped (stable for 500 ms). */
    seen = -1;
    for (int t = 0; t < 20 && seen != ld(&s.amp_frames); t++) {
        seen = ld(&s.amp_frames);
        sleep_ms(500);
    }
    cr_assert_eq(seen, ld(&s.amp_frames), "reading from the slow peer never stopped");
    cr_assert_lt(seen, N, "all %d requests were read although nothing was read back", N);
    for (uint32_t i = 0; i < 20; i++)
        echo_once(other, i);
    cr_assert_eq(ld(&s.amp_frames), seen, "read more while paused (%d -> %d)", seen,
                 ld(&s.amp_frames));
    for (uint32_t i = 0; i < N; i++) {
        size_t rlen = 0;
        uint8_t *f = cli_read_frame(slow, &rlen);

        cr_assert_not_null(f, "reply %u missing", i);
        cr_assert_eq(rlen, REPLY);
        cr_assert_eq(be_get32(f + 9), i);
        free(f);
    }
    cr_assert_eq(ld(&s.amp_frames), N);
    cr_assert_eq(ld(&s.closes), 0);
    close(slow);
    close(other);
    srv_stop(&s);
}

/*
 * Output the server pushes on its own (not in reply to reads) to a peer
 * that does not read crosses out_hard: that connection is closed and the
 * others are untouched.
 */
Test(net, hard_limit_closes_non_reader)
{
    struct net_limits lim = {64u << 10, 1u << 20, 0, 0, 0, 0};
    struct srv s;
    uint8_t req[64];
    int victim, other;

    srv_start(&s, &lim);
    victim = cli_connect(s.port, 4096);
    other = cli_connect(s.port, 0);
    echo_once(other, 1);
    cli_write(victim, req, mk_req(req, 'P', 0, 1, 0));
    cr_assert_eq(wait_for(&s.closes, 1, WAIT_MS), 1, "the non-reader was not closed");
    echo_once(other, 2);
    cr_assert(cli_wait_closed(victim, WAIT_MS));
    echo_once(other, 3);
    close(victim);
    close(other);
    srv_halt(&s);
    {
        struct net_stats st;

        net_loop_stats(s.loop, &st, 0);
        cr_assert_eq(st.limit_closed, 1);
    }
    srv_stop(&s);
}

/*
 * Pipelined requests that arrive in one read, each with a reply bigger
 * than out_soft: the loop should stop delivering them once the queue is
 * over out_soft (INV-2), so a client that does read its replies is never
 * pushed over out_hard. 64 requests of 13 bytes ask for 64 x 256 KiB.
 * (conn_frames() checks only c->paused, which conn_flush() sets once per
 * iteration, so every frame already in the read buffer is delivered.)
 */
Test(net, soft_limit_holds_for_pipelined_burst)
{
    struct net_limits lim = {64u << 10, 4u << 20, 0, 0, 0, 0};
    enum { N = 64, REPLY = 256 << 10 };
    struct srv s;
    uint8_t buf[N * HDR];
    size_t off = 0;
    int fd;

    srv_start(&s, &lim);
    fd = cli_connect(s.port, 0);
    for (uint32_t i = 0; i < N; i++)
        off += mk_req(buf + off, 'A', REPLY, i, 0);
    cli_write(fd, buf, off);
    for (uint32_t i = 0; i < N; i++) {
        size_t rlen = 0;
        uint8_t *f = cli_read_frame(fd, &rlen);

        cr_assert_not_null(f,
                           "reply %u missing: the connection was closed after %d requests had "
                           "been delivered in one burst (%d closes)",
                           i, ld(&s.amp_frames), ld(&s.closes));
        cr_assert_eq(be_get32(f + 9), i);
        free(f);
    }
    close(fd);
    srv_stop(&s);
}

/*
 * A callback closes another connection that has an event waiting in the
 * same epoll batch (as a broker does when a notification to another
 * client crosses its hard limit). The loop is kept busy by an 'S' frame
 * while both peers write, so both are ready in the next epoll_wait. The
 * closed connection is freed at once (nothing holds it), so its entry
 * later in the same epoll batch must not be dereferenced.
 */
Test(net, callback_closes_another_ready_connection)
{
    struct srv s;
    uint8_t req[64];
    int busy, a, b, other;

    srv_start(&s, NULL);
    busy = cli_connect(s.port, 0);
    a = cli_connect(s.port, 0);
    b = cli_connect(s.port, 0);
    echo_once(busy, 0);
    echo_once(a, 1);
    echo_once(b, 2);
    cli_write(busy, req, mk_req(req, 'S', 200, 3, 0));
    sleep_ms(50); /* the loop is now asleep in the callback */
    cli_write(a, req, mk_req(req, 'X', 0, 4, 0));
    cli_write(b, req, mk_req(req, 'X', 0, 5, 0));
    cr_assert_geq(wait_for(&s.closes, 2, WAIT_MS), 2);
    other = cli_connect(s.port, 0);
    echo_once(other, 6);
    close(busy);
    close(a);
    close(b);
    close(other);
    srv_stop(&s);
}

/* ------------------------------------------------------------------ idle */

Test(net, idle_timeout_closes_only_idle_connections)
{
    struct net_limits lim = {32u << 20, 512u << 20, 400, 0, 0, 0};
    struct srv s;
    int idle, busy, closed = 0;
    int64_t start, closed_at = 0;
    uint32_t seq = 0;

    srv_start(&s, &lim);
    idle = cli_connect(s.port, 0);
    busy = cli_connect(s.port, 0);
    echo_once(idle, seq++);
    start = spk_mono_ms();
    /* Keep <busy> talking every 50 ms until <idle> is gone and 2 s have passed. */
    while (spk_mono_ms() - start < 2000 || !closed) {
        struct timeval tv = {0, 0};
        fd_set rs;

        cr_assert_lt(spk_mono_ms() - start, WAIT_MS, "the idle connection was never closed");
        echo_once(busy, seq++);
        if (!closed) {
            FD_ZERO(&rs);
            FD_SET(idle, &rs);
            if (select(idle + 1, &rs, NULL, NULL, &tv) == 1) {
                uint8_t b[16];

                cr_assert_leq(read(idle, b, sizeof(b)), 0, "unexpected data on the idle one");
                closed = 1;
                closed_at = spk_mono_ms();
            }
        }
        sleep_ms(50);
    }
    cr_assert_geq(closed_at - start, 350, "closed after %lld ms, before the idle timeout",
                  (long long)(closed_at - start));
    cr_assert_eq(ld(&s.closes), 1);
    close(idle);
    close(busy);
    srv_halt(&s);
    {
        struct net_stats st;

        net_loop_stats(s.loop, &st, 0);
        cr_assert_eq(st.idle_closed, 1);
    }
    srv_stop(&s);
}

/* ---------------------------------------------------------------- timers */

struct tstate {
    struct srv *s;
    int fires;
    int limit;                /* periodic: cancel self after this many */
    struct net_timer *self;   /* set before the loop runs */
    struct net_timer *victim; /* cancelled by this one */
    int chain;                /* one-shots left to add from the callback */
    int on_loop;              /* fired on the loop thread */
};

static void
t_fire(void *arg)
{
    struct tstate *t = arg;

    if (pthread_equal(pthread_self(), t->s->th))
        inc(&t->on_loop);
    inc(&t->fires);
    if (t->limit > 0 && ld(&t->fires) == t->limit)
        net_timer_cancel(t->s->loop, t->self);
    if (t->victim) {
        net_timer_cancel(t->s->loop, t->victim);
        t->victim = NULL;
    }
    if (t->chain > 0) {
        t->chain--;
        cr_assert_not_null(net_timer_add(t->s->loop, 10, 0, t_fire, t));
    }
}

Test(net, timers_one_shot_periodic_cancel)
{
    struct srv s;
    struct tstate once = {0}, per = {0}, killer = {0}, victim = {0};

    srv_init(&s, NULL);
    once.s = per.s = killer.s = victim.s = &s;
    cr_assert_not_null(net_timer_add(s.loop, 20, 0, t_fire, &once));
    per.limit = 5;
    per.self = net_timer_add(s.loop, 10, 10, t_fire, &per);
    cr_assert_not_null(per.self);
    victim.self = net_timer_add(s.loop, 400, 0, t_fire, &victim);
    killer.victim = victim.self;
    cr_assert_not_null(net_timer_add(s.loop, 10, 0, t_fire, &killer));
    srv_run(&s);
    cr_assert_eq(wait_for(&once.fires, 1, WAIT_MS), 1);
    cr_assert_eq(wait_for(&per.fires, 5, WAIT_MS), 5);
    cr_assert_eq(wait_for(&killer.fires, 1, WAIT_MS), 1);
    sleep_ms(600); /* past the victim's due time, and many periods */
    cr_assert_eq(ld(&once.fires), 1);
    cr_assert_eq(ld(&per.fires), 5, "periodic timer fired after cancelling itself");
    cr_assert_eq(ld(&victim.fires), 0, "a cancelled timer fired");
    cr_assert_eq(ld(&once.on_loop) + ld(&per.on_loop) + ld(&killer.on_loop), 7);
    srv_stop(&s);
}

/*
 * A one-shot timer that schedules the next one-shot from its callback (a
 * retry chain). run_timers() unlinks a fired one-shot with *pp = t->next;
 * when it was the list head, net_timer_add() has meanwhile made the new
 * timer the head, so that store drops the new timer (never run, leaked).
 */
Test(net, timer_added_from_timer_callback_fires)
{
    struct srv s;
    struct tstate chain = {0};

    srv_init(&s, NULL);
    chain.s = &s;
    chain.chain = 2;
    cr_assert_not_null(net_timer_add(s.loop, 10, 0, t_fire, &chain));
    srv_run(&s);
    cr_assert_eq(wait_for(&chain.fires, 3, 3000), 3, "only %d of 3 chained one-shot timers fired",
                 ld(&chain.fires));
    srv_stop(&s);
}

/* --------------------------------------------------------------- wakeups */

struct wstate {
    struct srv *s;
    int runs, on_loop, entered, release;
};

static void
w_fire(void *arg)
{
    struct wstate *w = arg;

    if (pthread_equal(pthread_self(), w->s->th))
        inc(&w->on_loop);
    inc(&w->entered);
    while (ld(&w->release) == 0)
        sleep_ms(1);
    inc(&w->runs);
}

static void
w_count(void *arg)
{
    struct wstate *w = arg;

    if (pthread_equal(pthread_self(), w->s->th))
        inc(&w->on_loop);
    inc(&w->runs);
}

Test(net, wakeups_coalesce_and_run_on_loop)
{
    struct srv s;
    struct wstate blocker = {0}, counter = {0};
    struct net_wakeup *wb, *wc;

    srv_init(&s, NULL);
    blocker.s = counter.s = &s;
    wb = net_wakeup_add(s.loop, w_fire, &blocker);
    wc = net_wakeup_add(s.loop, w_count, &counter);
    cr_assert(wb && wc);
    srv_run(&s);
    /* Hold the loop inside <blocker> while <counter> is signalled 100 times. */
    net_wakeup_signal(wb);
    cr_assert_eq(wait_for(&blocker.entered, 1, WAIT_MS), 1);
    for (int i = 0; i < 100; i++)
        net_wakeup_signal(wc);
    __atomic_store_n(&blocker.release, 1, __ATOMIC_RELEASE);
    cr_assert_eq(wait_for(&counter.runs, 1, WAIT_MS), 1);
    sleep_ms(100);
    cr_assert_eq(ld(&counter.runs), 1, "100 coalesced signals ran %d times", ld(&counter.runs));
    /* No signal is lost: each one after the last run brings another run. */
    for (int i = 0; i < 50; i++) {
        int before = ld(&counter.runs);

        net_wakeup_signal(wc);
        cr_assert_eq(wait_for(&counter.runs, before + 1, WAIT_MS), before + 1);
    }
    cr_assert_eq(ld(&counter.on_loop), ld(&counter.runs));
    cr_assert_eq(ld(&blocker.on_loop), 1);
    srv_stop(&s);
}

/* Many threads signalling at once: runs never exceed signals, the last is never lost. */
struct sigarg {
    struct net_wakeup *w;
    int n;
};

static void *
signaller(void *arg)
{
    struct sigarg *a = arg;

    for (int i = 0; i < a->n; i++)
        net_wakeup_signal(a->w);
    return NULL;
}

Test(net, wakeups_from_many_threads)
{
    struct srv s;
    struct wstate counter = {0};
    struct net_wakeup *wc;
    pthread_t th[4];
    struct sigarg a;
    int before;

    srv_init(&s, NULL);
    counter.s = &s;
    wc = net_wakeup_add(s.loop, w_count, &counter);
    cr_assert_not_null(wc);
    srv_run(&s);
    a.w = wc;
    a.n = 5000;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, signaller, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_geq(wait_for(&counter.runs, 1, WAIT_MS), 1);
    sleep_ms(50);
    before = ld(&counter.runs);
    cr_assert_leq(before, 4 * 5000);
    net_wakeup_signal(wc);
    cr_assert_eq(wait_for(&counter.runs, before + 1, WAIT_MS), before + 1);
    cr_assert_eq(ld(&counter.on_loop), ld(&counter.runs));
    srv_stop(&s);
}

/* ----------------------------------------------------------- hold / put */

struct held_result {
    struct srv *s;
    int done, send_rc, send_ref_rc, closed, closes_seen;
    size_t outq;
};

static void
use_held(void *arg)
{
    struct held_result *h = arg;
    struct net_conn *c = __atomic_load_n(&h->s->held, __ATOMIC_ACQUIRE);
    static const uint8_t bytes[10];

    h->closed = net_conn_is_closed(c);
    h->send_rc = net_conn_send(c, malloc(100), 100); /* freed by the refusal */
    h->send_ref_rc = net_conn_send_ref(c, bytes, sizeof(bytes), release_big, h->s);
    net_conn_close(c); /* idempotent: no second on_close */
    h->outq = net_conn_outq(c);
    (void)net_conn_id(c);
    (void)net_conn_peer(c);
    net_conn_put(c);
    h->closes_seen = ld(&h->s->closes);
    inc(&h->done);
}

Test(net, held_connection_outlives_close)
{
    struct srv s;
    struct held_result h = {0};
    struct net_wakeup *w;
    uint8_t req[64], *f;
    size_t rlen;
    int fd;

    srv_init(&s, NULL);
    h.s = &s;
    w = net_wakeup_add(s.loop, use_held, &h);
    cr_assert_not_null(w);
    srv_run(&s);
    fd = cli_connect(s.port, 0);
    cli_write(fd, req, mk_req(req, 'H', 0, 1, 5));
    f = cli_read_frame(fd, &rlen);
    cr_assert_not_null(f);
    free(f);
    close(fd);
    cr_assert_eq(wait_for(&s.closes, 1, WAIT_MS), 1);
    net_wakeup_signal(w);
    cr_assert_eq(wait_for(&h.done, 1, WAIT_MS), 1);
    cr_assert_eq(h.closed, 1);
    cr_assert_eq(h.send_rc, SPK_ESHUTDOWN);
    cr_assert_eq(h.send_ref_rc, SPK_ESHUTDOWN);
    cr_assert_eq(ld(&s.released), 1, "the refused borrowed chunk was not released");
    cr_assert_eq(h.closes_seen, 1);
    cr_assert_eq(h.outq, 0);
    srv_stop(&s);
    cr_assert_eq(s.closes, 1);
}

/* --------------------------------------------------------- drain / close */

struct reader {
    int fd;
    size_t got;
    uint8_t *frame;
    size_t frame_len;
    int eof;
};

static void *
reader_thread(void *arg)
{
    struct reader *r = arg;

    r->frame = cli_read_frame(r->fd, &r->frame_len);
    if (r->frame) {
        uint8_t b;

        r->got = r->frame_len;
        r->eof = read(r->fd, &b, 1) == 0;
    }
    return NULL;
}

/* A stopped loop still holding output sends it all with net_loop_drain. */
Test(net, drain_writes_pending_output)
{
    enum { REPLY = 8 << 20 };
    struct srv s;
    struct reader r = {0};
    pthread_t th;
    uint8_t req[64], *want;
    int fd;

    srv_start(&s, NULL);
    fd = cli_connect(s.port, 4096);
    cli_write(fd, req, mk_req(req, 'A', REPLY, 9, 0));
    cr_assert_eq(wait_for(&s.queued, 1, WAIT_MS), 1);
    sleep_ms(50);
    srv_halt(&s);
    {
        struct net_stats st;

        net_loop_stats(s.loop, &st, 0);
        cr_assert_lt(st.bytes_out, REPLY, "nothing left to drain: the test proves nothing");
    }
    r.fd = fd;
    cr_assert_eq(pthread_create(&th, NULL, reader_thread, &r), 0);
    net_loop_drain(s.loop, WAIT_MS);
    net_loop_close_all(s.loop);
    cr_assert_eq(s.closes, 1);
    pthread_join(th, NULL);
    cr_assert_not_null(r.frame, "the drained reply did not arrive whole");
    cr_assert_eq(r.got, REPLY);
    want = pattern_frame(REPLY, 9);
    cr_assert_eq(memcmp(r.frame, want, REPLY), 0);
    cr_assert(r.eof, "no EOF after close_all");
    free(want);
    free(r.frame);
    close(fd);
    net_loop_destroy(s.loop);
}

/* close_all runs on_close for every connection and the loop keeps accepting. */
Test(net, close_all_from_the_loop)
{
    struct srv s;
    struct net_wakeup *w;
    int a, b, c;

    srv_init(&s, NULL);
    w = net_wakeup_add(s.loop, (void (*)(void *))net_loop_close_all, s.loop);
    cr_assert_not_null(w);
    srv_run(&s);
    a = cli_connect(s.port, 0);
    b = cli_connect(s.port, 0);
    echo_once(a, 1);
    echo_once(b, 2);
    net_wakeup_signal(w);
    cr_assert(cli_wait_closed(a, WAIT_MS));
    cr_assert(cli_wait_closed(b, WAIT_MS));
    cr_assert_eq(wait_for(&s.closes, 2, WAIT_MS), 2);
    c = cli_connect(s.port, 0);
    echo_once(c, 3);
    close(a);
    close(b);
    close(c);
    srv_stop(&s);
}

/* ------------------------------------------------------ net_call / client */

/*
 * A remoting server: decodes each request and answers with its opaque, a
 * remark and the request body. Code 1 first sends an unrelated response
 * (another opaque), which the caller must skip; code 2 is never answered.
 */
struct rsrv {
    struct net_loop *loop;
    pthread_t th;
    int port, conns, frames, closes, rc;
};

static void
rsrv_on_frame(void *ud, struct net_conn *c, const uint8_t *f, size_t len)
{
    struct rsrv *s = ud;
    struct proto_cmd cmd;
    struct proto_reply rep;
    uint8_t *out;
    size_t out_len;

    if (net_conn_udata(c) == NULL) {
        net_conn_set_udata(c, s);
        inc(&s->conns);
    }
    inc(&s->frames);
    if (proto_decode(f, len, &cmd) != 0) {
        net_conn_close(c);
        return;
    }
    if (cmd.code != 2) {
        if (cmd.code == 1) {
            struct proto_cmd other = cmd;

            other.opaque = cmd.opaque + 1000;
            proto_reply_init(&rep, 0);
            proto_reply_remark(&rep, "noise");
            cr_assert_eq(proto_reply_encode(&other, &rep, 0, &out, &out_len), 0);
            (void)net_conn_send(c, out, out_len);
            proto_reply_free(&rep);
        }
        proto_reply_init(&rep, 0);
        proto_reply_remark(&rep, "conn %d", ld(&s->conns));
        proto_reply_ext(&rep, "conn", "%llu", (unsigned long long)net_conn_id(c));
        if (cmd.body_len)
            proto_reply_body_copy(&rep, cmd.body, cmd.body_len);
        cr_assert_eq(proto_reply_encode(&cmd, &rep, 0, &out, &out_len), 0);
        (void)net_conn_send(c, out, out_len);
        proto_reply_free(&rep);
    }
    proto_cmd_free(&cmd);
}

static void
rsrv_on_close(void *ud, struct net_conn *c)
{
    (void)c;
    inc(&((struct rsrv *)ud)->closes);
}

static const struct net_handler rsrv_handler = {rsrv_on_frame, rsrv_on_close};

static void *
rsrv_thread(void *arg)
{
    struct rsrv *s = arg;

    s->rc = net_loop_run(s->loop);
    return NULL;
}

static void
rsrv_init(struct rsrv *s)
{
    memset(s, 0, sizeof(*s));
    cr_assert_eq(net_loop_create(&s->loop), 0);
    s->port = listen_free(s->loop, &rsrv_handler, s);
}

static void
rsrv_run(struct rsrv *s)
{
    cr_assert_eq(pthread_create(&s->th, NULL, rsrv_thread, s), 0);
}

static void
rsrv_stop(struct rsrv *s)
{
    net_loop_stop(s->loop);
    pthread_join(s->th, NULL);
    cr_assert_eq(s->rc, 0);
    net_loop_destroy(s->loop);
}

/* A request frame with <code>, <opaque> and <body>; malloc'd. */
static uint8_t *
mk_cmd(int32_t code, int32_t opaque, const char *body, size_t *len)
{
    struct proto_ext ext = {"topic", 5, "TopicTest", 9};
    struct proto_cmd cmd;
    size_t blen = body ? strlen(body) : 0, hlen;
    uint8_t *hdr, *f;

    memset(&cmd, 0, sizeof(cmd));
    cmd.code = code;
    cmd.opaque = opaque;
    cmd.version = 479;
    cmd.language = PROTO_LANG_JAVA;
    cmd.ext = &ext;
    cmd.next = 1;
    cmd.body = (const uint8_t *)body;
    cmd.body_len = blen;
    cr_assert_eq(proto_encode_header(&cmd, &hdr, &hlen), 0);
    f = malloc(hlen + blen + 1);
    cr_assert_not_null(f);
    memcpy(f, hdr, hlen);
    if (blen)
        memcpy(f + hlen, body, blen);
    free(hdr);
    *len = hlen + blen;
    return f;
}

static void
addr_of(int port, char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", port);
}

/* Decodes <resp> and checks it answers <opaque> with <body>. */
static void
check_resp(uint8_t *resp, size_t len, int32_t opaque, const char *body)
{
    struct proto_cmd c;

    cr_assert_eq(proto_decode(resp, len, &c), 0);
    cr_assert_eq(c.opaque, opaque);
    cr_assert(c.flag & PROTO_FLAG_RESPONSE);
    cr_assert_eq(c.code, 0);
    cr_assert_eq(c.body_len, strlen(body));
    cr_assert_eq(memcmp(c.body, body, c.body_len), 0);
    proto_cmd_free(&c);
    free(resp);
}

Test(net, call_gets_its_reply)
{
    struct rsrv s;
    char addr[64];
    uint8_t *req, *resp = NULL;
    size_t len, rlen = 0;

    rsrv_init(&s);
    rsrv_run(&s);
    addr_of(s.port, addr, sizeof(addr));
    req = mk_cmd(105, 77, "hello", &len);
    cr_assert_eq(net_call(addr, req, len, 77, 5000, &resp, &rlen), 0);
    check_resp(resp, rlen, 77, "hello");
    free(req);
    /* An unrelated response first (another opaque) is skipped. */
    req = mk_cmd(1, 78, "second", &len);
    cr_assert_eq(net_call(addr, req, len, 78, 5000, &resp, &rlen), 0);
    check_resp(resp, rlen, 78, "second");
    free(req);
    cr_assert_eq(wait_for(&s.conns, 2, WAIT_MS), 2); /* net_call connects each time */
    rsrv_stop(&s);
}

Test(net, call_times_out_when_never_answered)
{
    struct rsrv s;
    char addr[64];
    uint8_t *req, *resp = NULL;
    size_t len, rlen = 0;
    int64_t t0, took;
    int rc;

    rsrv_init(&s);
    rsrv_run(&s);
    addr_of(s.port, addr, sizeof(addr));
    req = mk_cmd(2, 5, NULL, &len);
    t0 = spk_mono_ms();
    rc = net_call(addr, req, len, 5, 300, &resp, &rlen);
    took = spk_mono_ms() - t0;
    cr_assert_eq(rc, -ETIMEDOUT, "rc %d", rc);
    cr_assert_geq(took, 290);
    cr_assert_lt(took, 5000);
    cr_assert_eq(wait_for(&s.frames, 1, WAIT_MS), 1); /* the request did arrive */
    free(req);
    rsrv_stop(&s);
}

/* A listener that is never accepted from (a plain socket, backlog only). */
Test(net, call_times_out_against_silent_listener)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    char addr[64];
    uint8_t *req, *resp = NULL;
    size_t len, rlen = 0;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert(lfd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
    addr_of(ntohs(sa.sin_port), addr, sizeof(addr));
    req = mk_cmd(105, 1, NULL, &len);
    cr_assert_eq(net_call(addr, req, len, 1, 300, &resp, &rlen), -ETIMEDOUT);
    free(req);
    close(lfd);
}

Test(net, call_errors)
{
    char addr[64];
    uint8_t *req, *resp = NULL;
    size_t len, rlen = 0;
    int rc;

    req = mk_cmd(105, 1, NULL, &len);
    addr_of(probe_port(), addr, sizeof(addr)); /* nobody listens there */
    rc = net_call(addr, req, len, 1, 2000, &resp, &rlen);
    cr_assert_eq(rc, -ECONNREFUSED, "rc %d", rc);
    cr_assert_eq(net_call("127.0.0.1", req, len, 1, 100, &resp, &rlen), SPK_EFORMAT);
    cr_assert_eq(net_call("127.0.0.1:0", req, len, 1, 100, &resp, &rlen), SPK_EFORMAT);
    cr_assert_eq(net_call("nohost:10911", req, len, 1, 100, &resp, &rlen), SPK_EFORMAT);
    cr_assert_eq(net_call("127.0.0.1:70000", req, len, 1, 100, &resp, &rlen), SPK_EFORMAT);
    free(req);
}

Test(net, client_reuses_and_reconnects)
{
    struct rsrv s;
    struct net_client *cl;
    struct net_wakeup *w;
    char addr[64], body[32];
    uint8_t *req, *resp = NULL;
    size_t len, rlen = 0;
    int rc;

    rsrv_init(&s);
    w = net_wakeup_add(s.loop, (void (*)(void *))net_loop_close_all, s.loop);
    cr_assert_not_null(w);
    rsrv_run(&s);
    addr_of(s.port, addr, sizeof(addr));
    cr_assert_eq(net_client_create(addr, &cl), 0);
    cr_assert_str_eq(net_client_addr(cl), addr);
    for (int i = 0; i < 5; i++) {
        snprintf(body, sizeof(body), "call %d", i);
        req = mk_cmd(i == 2 ? 1 : 105, 100 + i, body, &len);
        cr_assert_eq(net_client_call(cl, req, len, 100 + i, 5000, &resp, &rlen), 0);
        check_resp(resp, rlen, 100 + i, body);
        free(req);
    }
    cr_assert_eq(ld(&s.conns), 1, "the client made %d connections for 5 calls", ld(&s.conns));
    /* The server drops the connection; the client must get through again. */
    net_wakeup_signal(w);
    cr_assert_eq(wait_for(&s.closes, 1, WAIT_MS), 1);
    req = mk_cmd(105, 200, "after", &len);
    rc = net_client_call(cl, req, len, 200, 5000, &resp, &rlen);
    cr_log_info("first call after the server closed the connection: %d", rc);
    if (rc != 0) {
        /* The stale connection may cost one failed call (header: "any error
         * closes it and the next call reconnects"). */
        cr_assert(rc == -ECONNRESET || rc == -EPIPE, "rc %d", rc);
        rc = net_client_call(cl, req, len, 200, 5000, &resp, &rlen);
    }
    cr_assert_eq(rc, 0);
    check_resp(resp, rlen, 200, "after");
    free(req);
    cr_assert_eq(ld(&s.conns), 2);
    net_client_destroy(cl);
    rsrv_stop(&s);
}

/* A server that vanishes: the client reports an error, then reconnects to a new one. */
Test(net, client_survives_server_restart)
{
    struct rsrv s;
    struct net_client *cl;
    char addr[64], err[128];
    uint8_t *req, *resp = NULL;
    size_t len, rlen = 0;
    int port, rc;

    rsrv_init(&s);
    rsrv_run(&s);
    port = s.port;
    addr_of(port, addr, sizeof(addr));
    cr_assert_eq(net_client_create(addr, &cl), 0);
    req = mk_cmd(105, 1, "x", &len);
    cr_assert_eq(net_client_call(cl, req, len, 1, 5000, &resp, &rlen), 0);
    check_resp(resp, rlen, 1, "x");
    rsrv_stop(&s);
    rc = net_client_call(cl, req, len, 1, 1000, &resp, &rlen);
    cr_assert_neq(rc, 0);
    /* Same port again (SO_REUSEADDR); another process may have taken it. */
    memset(&s, 0, sizeof(s));
    cr_assert_eq(net_loop_create(&s.loop), 0);
    if (net_listen(s.loop, "127.0.0.1", port, &rsrv_handler, &s, err, sizeof(err)) != 0) {
        net_loop_destroy(s.loop);
        net_client_destroy(cl);
        free(req);
        cr_skip_test("port %d was taken: %s", port, err);
    }
    rsrv_run(&s);
    rc = net_client_call(cl, req, len, 1, 5000, &resp, &rlen);
    cr_assert_eq(rc, 0, "rc %d", rc);
    check_resp(resp, rlen, 1, "x");
    free(req);
    net_client_destroy(cl);
    rsrv_stop(&s);
}

/* ------------------------------------------- slow peers, buffers, descriptors */

/*
 * Read buffers exist only while a partial frame is buffered (loop.h
 * INV-5): after complete frames the connection holds none, a half frame
 * holds one, and completing it gives it back.
 */
Test(net, read_buffer_held_only_for_partial_frames)
{
    struct srv s;
    struct net_stats st;
    uint8_t req[64];
    size_t n;
    int fds[8];

    srv_start(&s, NULL);
    for (int i = 0; i < 8; i++) {
        fds[i] = cli_connect(s.port, 0);
        echo_once(fds[i], (uint32_t)i);
    }
    srv_snapshot(&s, &st, NULL);
    cr_assert_eq(st.rbuf_bytes, 0, "idle connections hold %llu read-buffer bytes",
                 (unsigned long long)st.rbuf_bytes);
    n = mk_req(req, 'E', 0, 99, 20);
    cli_write(fds[0], req, n / 2);
    sleep_ms(200);
    srv_snapshot(&s, &st, NULL);
    cr_assert_gt(st.rbuf_bytes, 0);
    cli_write(fds[0], req + n / 2, n - n / 2);
    {
        size_t rlen = 0;
        uint8_t *r = cli_read_frame(fds[0], &rlen);

        cr_assert_not_null(r);
        cr_assert_eq(rlen, n);
        free(r);
    }
    srv_snapshot(&s, &st, NULL);
    cr_assert_eq(st.rbuf_bytes, 0);
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    srv_stop(&s);
}

/*
 * A frame trickled in slower than the read timeout closes its connection;
 * a connection that sends whole frames with long pauses between them is
 * not touched (the timeout runs from a frame's first byte to its last).
 */
Test(net, read_timeout_closes_a_trickled_frame_only)
{
    struct net_limits lim = {32u << 20, 512u << 20, 0, 0, 300, 0};
    struct srv s;
    struct net_stats st;
    uint8_t req[64];
    size_t n = mk_req(req, 'E', 0, 1, 20), sent = 0;
    int slow, calm;
    int64_t t0;

    srv_start(&s, &lim);
    slow = cli_connect(s.port, 0);
    calm = cli_connect(s.port, 0);
    t0 = spk_mono_ms();
    while (!cli_wait_closed(slow, 100) && spk_mono_ms() - t0 < WAIT_MS) {
        if (sent < n - 1 && send(slow, req + sent, 1, MSG_NOSIGNAL) == 1)
            sent++;
        if ((spk_mono_ms() - t0) / 400 % 2 == 0)
            echo_once(calm, (uint32_t)sent);
    }
    cr_assert_lt(spk_mono_ms() - t0, WAIT_MS, "the trickling connection was never closed");
    cr_assert_lt(sent, n - 1, "the frame was completed before the timeout");
    sleep_ms(1500); /* longer than the timeout, between whole frames */
    echo_once(calm, 1000);
    srv_halt(&s);
    net_loop_stats(s.loop, &st, 0);
    cr_assert_eq(st.read_timeouts, 1);
    close(slow);
    close(calm);
    srv_stop(&s);
}

/* Queued output that does not move for stall_ms closes the connection. */
Test(net, write_stall_closes_a_peer_that_stopped_reading)
{
    struct net_limits lim = {64u << 10, 256u << 20, 0, 0, 0, 300};
    struct srv s;
    struct net_stats st;
    uint8_t req[64];
    int victim, other;

    srv_start(&s, &lim);
    victim = cli_connect(s.port, 4096);
    other = cli_connect(s.port, 0);
    cli_write(victim, req, mk_req(req, 'P', 0, 1, 0)); /* 64 KiB every 5 ms, never read */
    sleep_ms(2500);
    echo_once(other, 2);
    cr_assert(cli_wait_closed(victim, WAIT_MS));
    srv_halt(&s);
    net_loop_stats(s.loop, &st, 0);
    cr_assert_eq(st.stall_closed, 1);
    cr_assert_eq(st.limit_closed, 0);
    close(victim);
    close(other);
    srv_stop(&s);
}

/* Connects from a child process (its own descriptor table) <n> times;
 * returns how many of them were served an echo and how many closed. */
static void
child_connects(int port, int n, int *served, int *closed, int pfd[2])
{
    int st;
    pid_t pid;

    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int res[2] = {0, 0}, *fds = calloc((size_t)n, sizeof(int));
        struct sockaddr_in sa;
        struct timeval tv = {2, 0};
        struct rlimit rl;

        /* the parent lowered its own limit: the child needs room */
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
        }

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (int i = 0; i < n && fds; i++) {
            uint8_t req[64], resp[64];
            size_t len = mk_req(req, 'E', 0, (uint32_t)i, 0);

            fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            if (connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
                write(fds[i], req, len) != (ssize_t)len) {
                res[1]++;
                continue;
            }
            if (read_full(fds[i], resp, len) == 0)
                res[0]++;
            else
                res[1]++;
        }
        if (write(pfd[1], res, sizeof(res)) != (ssize_t)sizeof(res))
            _exit(1);
        _exit(0);
    }
    {
        int res[2];

        /* pfd[1] stays open until the result is in: closing it earlier
         * would hand the server a free descriptor in the EMFILE test. */
        cr_assert_eq(read_full(pfd[0], res, sizeof(res)), 0);
        *served = res[0];
        *closed = res[1];
    }
    close(pfd[1]);
    close(pfd[0]);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
}

/*
 * With the descriptor table full, connections are accepted and closed
 * with the reserve descriptor (the peer sees a close, not a hang), the
 * loop does not spin on the ready listener, and once descriptors are free
 * again connections are served.
 */
Test(net, emfile_sheds_connections_without_spinning)
{
    struct srv s;
    struct net_stats st;
    struct net_iter_hist h0, h1;
    int hog[4096], nhog = 0, served, closed, pfd[2];

    srv_start(&s, NULL);
    {
        int fd = cli_connect(s.port, 0);
        echo_once(fd, 1);
        close(fd);
    }
    /* The server closes its side of that connection on its own thread:
     * wait for it, or the descriptor it frees would let one of the
     * connections below be served. */
    for (int i = 0; i < 200; i++) {
        srv_snapshot(&s, &st, NULL);
        if (st.conns == 0)
            break;
        sleep_ms(10);
    }
    cr_assert_eq(st.conns, 0);
    {
        struct rlimit rl;
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = 512;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    while (nhog < 4096) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd == -1)
            break;
        hog[nhog++] = fd;
    }
    cr_assert_eq(errno, EMFILE);
    /* the two descriptors of the child's result pipe, and none to spare */
    close(hog[--nhog]);
    close(hog[--nhog]);
    cr_assert_eq(pipe(pfd), 0);
    srv_snapshot(&s, NULL, &h0);
    child_connects(s.port, 20, &served, &closed, pfd);
    sleep_ms(1000);
    srv_snapshot(&s, &st, &h1);
    cr_assert_eq(served, 0);
    cr_assert_eq(closed, 20);
    cr_assert_geq(st.shed, 20, "shed %llu", (unsigned long long)st.shed);
    /* About one iteration per connection and per timer, not a spin. */
    cr_assert_lt(h1.n - h0.n, 2000, "%llu loop iterations in about 1 s",
                 (unsigned long long)(h1.n - h0.n));
    for (int i = 0; i < nhog; i++)
        close(hog[i]);
    sleep_ms(200); /* the reserve descriptor is taken back on the next shed */
    cr_assert_eq(pipe(pfd), 0);
    child_connects(s.port, 5, &served, &closed, pfd);
    cr_assert_eq(served, 5);
    srv_stop(&s);
}

/* Accepted descriptors stop NET_FD_HEADROOM short of the limit. */
Test(net, fd_headroom_is_kept_for_the_process)
{
    struct srv s;
    struct net_stats st;
    struct rlimit rl;
    int served, closed, top, pfd[2];

    /* The loop reads the limit when it listens: lower it first, so that
     * only about 20 descriptors are left below the loop's ceiling (a
     * small limit keeps a quarter: loop.c update_fd_ceiling). */
    top = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(top >= 0);
    close(top);
    if (top > 150)
        cr_skip_test("%d descriptors open already", top);
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = (rlim_t)((top + 20) * 4 / 3 + 1);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    srv_start(&s, NULL);
    cr_assert_eq(pipe(pfd), 0);
    child_connects(s.port, 60, &served, &closed, pfd);
    srv_snapshot(&s, &st, NULL);
    cr_assert_eq(served + closed, 60);
    cr_assert_gt(closed, 0);
    cr_assert_eq(st.shed, (uint64_t)closed);
    srv_stop(&s);
}

/* The iteration histogram's buckets tile the line and quantiles read it. */
Test(net, iteration_histogram_buckets)
{
    struct net_iter_hist h;

    for (int i = 0; i < NET_ITER_BUCKETS - 1; i++) {
        cr_assert_eq(net_iter_bucket(net_iter_bucket_low(i)), i, "bucket %d", i);
        cr_assert_eq(net_iter_bucket(net_iter_bucket_high(i)), i, "bucket %d", i);
        cr_assert_eq(net_iter_bucket_high(i) + 1, net_iter_bucket_low(i + 1));
    }
    memset(&h, 0, sizeof(h));
    cr_assert_eq(net_iter_quantile(&h, 0.99), 0);
    for (uint64_t us = 1; us <= 100; us++) {
        h.count[net_iter_bucket(us)]++;
        h.n++;
        h.max_us = us;
    }
    h.count[net_iter_bucket(40000)]++;
    h.n++;
    h.max_us = 40000;
    cr_assert_geq(net_iter_quantile(&h, 0.5), 50);
    cr_assert_leq(net_iter_quantile(&h, 0.5), 63);
    cr_assert_eq(net_iter_quantile(&h, 1.0), 40000);
}
