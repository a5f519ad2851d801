/*
 * netload.c - hostile and numerous clients against a running broker, for
 * the reliability scripts T8-T11 (tests/reliability/t8_frames.sh,
 * t9_slow.sh, t11_conns.sh). Raw sockets and raw remoting frames: what
 * is tested is the broker's network layer, not a client library.
 *
 *   netload malformed ADDR MAXMSG    each malformed case on its own connection
 *   netload conns ADDR N [--request] [--hold-file F] [--within-ms T]
 *                                    N connections (optionally one request on
 *                                    each), held until F disappears
 *   netload slowloris ADDR MAXWAIT_MS   a frame at one byte per second
 *   netload midframe ADDR            half a frame, then SIGSTOP itself
 *   netload noread ADDR TOPIC PULLS  pipelined pulls whose replies are never read
 *   netload longpoll ADDR TOPIC QUEUES PULLS SUSPEND_MS
 *                                    PULLS long-polling pulls on an empty topic
 *   netload abrupt ADDR TOPIC N ROUNDS  requests in flight, then RST
 *   netload send ADDR TOPIC BODY PROPS [BATCH [COUNT]]
 *                                    one SEND_MESSAGE_V2 with a BODY-byte body
 *                                    and a PROPS-byte property string (or a
 *                                    SEND_BATCH_MESSAGE of BATCH such
 *                                    messages, BATCH > 0); COUNT such
 *                                    requests one after the other (default
 *                                    1); prints the last reply code
 *
 * Every subcommand prints "netload: ..." lines, the last one a summary,
 * and exits 0 when every expectation held, 1 when one did not, 2 for a
 * usage or setup error. Expectations:
 *   malformed  each case ends in an error reply or a close within 5 s (an
 *              unknown code must be answered and leave the connection
 *              usable; a body over MAXMSG must be answered MESSAGE_ILLEGAL,
 *              13); 100,000 tiny frames in one write are all answered or
 *              the connection is closed;
 *   conns      every connection is established (and answered, with
 *              --request); with --within-ms, all of that within T ms;
 *   slowloris  the broker closes the connection within MAXWAIT_MS;
 *   midframe   after SIGCONT the connection turns out closed by the broker;
 *   longpoll   no pull is answered in the first second (they are held),
 *              every one is answered within SUSPEND_MS + 5 s;
 *   abrupt     after the rounds, a new connection is answered;
 *   send       exit 0 whatever the reply: the caller judges the code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/clock.h"
#include "net/client.h"
#include "proto/message.h"
#include "proto/remoting.h"
#include "proto/reply.h"

#define CODE_PULL 11
#define CODE_SEND_V2 310
#define CODE_UNKNOWN 77777
#define RS_MESSAGE_ILLEGAL 13

static struct sockaddr_in g_sa;

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* A blocking connection with <timeout_ms> send/receive timeouts, or -1. */
static int
dial(int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd == -1)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&g_sa, sizeof(g_sa)) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes all of p[0..len); 0 or -errno. */
static int
write_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;

    while (len > 0) {
        ssize_t w = write(fd, b, len);

        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            return w == -1 ? -errno : -EIO;
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

/*
 * Reads one frame and returns its response code; -1 when the peer closed
 * (EOF or reset), -2 on timeout, -3 for an undecodable frame. Server-side
 * requests (not responses) are skipped.
 */
static int
read_reply(int fd, int32_t *opaque)
{
    for (;;) {
        uint8_t hdr[4], *f;
        size_t got = 0, n;
        struct proto_cmd cmd;
        int code;

        while (got < 4) {
            ssize_t r = read(fd, hdr + got, 4 - got);
            if (r == -1 && errno == EINTR)
                continue;
            if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return -2;
            if (r <= 0)
                return -1;
            got += (size_t)r;
        }
        n = be_get32(hdr);
        if (n < 4 || n > PROTO_FRAME_MAX)
            return -3;
        f = malloc(n + 4);
        if (!f)
            return -3;
        memcpy(f, hdr, 4);
        for (got = 0; got < n;) {
            ssize_t r = read(fd, f + 4 + got, n - got);
            if (r == -1 && errno == EINTR)
                continue;
            if (r <= 0) {
                free(f);
                return r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : -1;
            }
            got += (size_t)r;
        }
        if (proto_decode(f, n + 4, &cmd) != 0) {
            free(f);
            return -3;
        }
        code = cmd.code;
        if (opaque)
            *opaque = cmd.opaque;
        n = (size_t)(cmd.flag & PROTO_FLAG_RESPONSE);
        proto_cmd_free(&cmd);
        free(f);
        if (n)
            return code;
    }
}

/* A request frame for <r> (malloc'd) or NULL. */
static uint8_t *
encode(struct proto_reply *r, int32_t opaque, size_t *len)
{
    uint8_t *out = NULL;

    if (proto_request_encode(r, opaque, 0, &out, len) != 0)
        return NULL;
    return out;
}

static uint8_t *
unknown_req(int32_t opaque, size_t *len)
{
    struct proto_reply r;
    uint8_t *f;

    proto_reply_init(&r, CODE_UNKNOWN);
    f = encode(&r, opaque, len);
    proto_reply_free(&r);
    return f;
}

/* The SEND_MESSAGE_V2 header fields (short names a..m). */
static void
send_ext(struct proto_reply *r, const char *topic, const char *props, int batch)
{
    proto_reply_ext(r, "a", "NetloadProducer");
    proto_reply_ext(r, "b", "%s", topic);
    proto_reply_ext(r, "c", "TBW102");
    proto_reply_ext(r, "d", "4");
    proto_reply_ext(r, "e", "0");
    proto_reply_ext(r, "f", "0");
    proto_reply_ext(r, "g", "%lld", (long long)spk_wall_ms());
    proto_reply_ext(r, "h", "0");
    proto_reply_ext(r, "i", "%s", props);
    proto_reply_ext(r, "j", "0");
    proto_reply_ext(r, "k", "false");
    if (batch)
        proto_reply_ext(r, "m", "true");
}

static uint8_t *
send_req(const char *topic, const char *props, size_t body_len, int32_t opaque, size_t *len)
{
    struct proto_reply r;
    uint8_t *f, *body = malloc(body_len ? body_len : 1);

    if (!body)
        return NULL;
    memset(body, 'b', body_len);
    proto_reply_init(&r, CODE_SEND_V2);
    send_ext(&r, topic, props, 0);
    proto_reply_body(&r, body, body_len); /* owned by r now */
    f = encode(&r, opaque, len);
    proto_reply_free(&r);
    return f;
}

static uint8_t *
pull_req(const char *topic, int qid, int64_t off, int suspend_ms, int32_t opaque, size_t *len)
{
    struct proto_reply r;
    uint8_t *f;

    proto_reply_init(&r, CODE_PULL);
    proto_reply_ext(&r, "consumerGroup", "NetloadGroup");
    proto_reply_ext(&r, "topic", "%s", topic);
    proto_reply_ext(&r, "queueId", "%d", qid);
    proto_reply_ext(&r, "queueOffset", "%lld", (long long)off);
    proto_reply_ext(&r, "maxMsgNums", "32");
    /* FLAG_SUBSCRIPTION: the subscription travels with the pull, no heartbeat needed */
    proto_reply_ext(&r, "sysFlag", "%d", suspend_ms > 0 ? 2 | 4 : 4);
    proto_reply_ext(&r, "commitOffset", "0");
    proto_reply_ext(&r, "suspendTimeoutMillis", "%d", suspend_ms > 0 ? suspend_ms : 0);
    proto_reply_ext(&r, "subscription", "*");
    proto_reply_ext(&r, "subVersion", "0");
    proto_reply_ext(&r, "expressionType", "TAG");
    f = encode(&r, opaque, len);
    proto_reply_free(&r);
    return f;
}

/* A JSON-header frame with header <hdr> and <body_len> bytes of body. */
static uint8_t *
raw_frame(const char *hdr, size_t body_len, size_t *len)
{
    size_t hl = strlen(hdr);
    uint8_t *f = malloc(8 + hl + body_len);

    if (!f)
        return NULL;
    be_put32(f, (uint32_t)(4 + hl + body_len));
    be_put32(f + 4, (uint32_t)hl);
    memcpy(f + 8, hdr, hl);
    memset(f + 8 + hl, 'z', body_len);
    *len = 8 + hl + body_len;
    return f;
}

/* malformed ---------------------------------------------------------------- */

static int failures;

/* Sends <p> on a fresh connection and reports the reply code or a close. */
static int
one_case(const char *name, const uint8_t *p, size_t len, int want_code)
{
    int fd = dial(5000), code, rc;

    if (fd == -1) {
        printf("netload: case %s: FAIL cannot connect: %s\n", name, strerror(errno));
        failures++;
        return -4;
    }
    rc = write_all(fd, p, len);
    code = read_reply(fd, NULL);
    if (rc != 0 && code == -2)
        code = -1; /* the write failed: the broker closed while we wrote */
    if (code == -2 || code == -3 || (want_code >= 0 && code != want_code)) {
        printf("netload: case %s: FAIL %s (wanted %s %d)\n", name,
               code == -2 ? "neither a reply nor a close within 5 s"
               : code == -3 ? "an undecodable reply"
               : code == -1 ? "a close"
                            : "another reply code",
               want_code >= 0 ? "reply" : "a close or any error reply", want_code);
        if (code >= 0)
            printf("netload: case %s: reply code %d\n", name, code);
        failures++;
    } else if (code == -1) {
        printf("netload: case %s: closed\n", name);
    } else {
        printf("netload: case %s: reply code %d\n", name, code);
    }
    close(fd);
    return code;
}

/* 100,000 tiny valid frames (unknown request code) in one write. */
static void
tiny_burst(void)
{
    enum { N = 100000 };
    size_t one_len, total;
    uint8_t *one = unknown_req(0, &one_len), *all, buf[65536];
    int fd = dial(5000), answered = 0, closed = 0;
    size_t off = 0, rpos = 0;
    int64_t t0 = spk_mono_ms();

    if (!one || fd == -1) {
        printf("netload: case tiny_frames_100k: FAIL setup\n");
        failures++;
        free(one);
        if (fd != -1)
            close(fd);
        return;
    }
    total = one_len * N;
    all = malloc(total);
    if (!all) {
        failures++;
        free(one);
        close(fd);
        return;
    }
    for (int i = 0; i < N; i++)
        memcpy(all + (size_t)i * one_len, one, one_len);
    /* One write call for the lot; then read the replies (nonblocking so
     * that the kernel's buffers cannot deadlock the two directions). */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while ((off < total || answered < N) && !closed && spk_mono_ms() - t0 < 60000) {
        struct pollfd pfd = {fd, (short)(POLLIN | (off < total ? POLLOUT : 0)), 0};

        if (poll(&pfd, 1, 1000) <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && off < total) {
            ssize_t w = write(fd, all + off, total - off);
            if (w > 0)
                off += (size_t)w;
            else if (w == -1 && errno != EAGAIN && errno != EINTR)
                closed = 1;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(fd, buf + rpos, sizeof(buf) - rpos);
            if (r == 0 || (r == -1 && errno != EAGAIN && errno != EINTR)) {
                closed = 1;
                break;
            }
            if (r > 0) {
                size_t have = rpos + (size_t)r, p = 0;
                while (have - p >= 4 && have - p >= 4 + (size_t)be_get32(buf + p)) {
                    p += 4 + be_get32(buf + p);
                    answered++;
                }
                memmove(buf, buf + p, have - p);
                rpos = have - p;
                if (rpos >= sizeof(buf)) {
                    closed = 1; /* a reply bigger than 64 KiB: not ours */
                    break;
                }
            }
        }
    }
    if (answered == N || closed)
        printf("netload: case tiny_frames_100k: %d of %d answered%s in %lld ms (%zu bytes "
               "in one write)\n",
               answered, N, closed ? ", then closed" : "", (long long)(spk_mono_ms() - t0),
               total);
    else {
        printf("netload: case tiny_frames_100k: FAIL %d of %d answered, no close\n", answered, N);
        failures++;
    }
    free(all);
    free(one);
    close(fd);
}

static int
cmd_malformed(int argc, char **argv)
{
    size_t maxmsg, len;
    uint8_t b[64], *f;
    char *deep;
    int fd;

    if (argc < 2)
        return 2;
    maxmsg = strtoul(argv[1], NULL, 10);

    be_put32(b, 0);
    one_case("length_zero", b, 4, -1);
    be_put32(b, 0xfffffff0u); /* -16 */
    memset(b + 4, 0, 12);
    one_case("length_negative", b, 16, -1);
    be_put32(b, PROTO_FRAME_MAX + 1);
    one_case("length_over_16MiB", b, 4, -1);
    be_put32(b, 12);
    be_put32(b + 4, 4096); /* header length beyond the frame */
    memset(b + 8, '{', 8);
    one_case("header_longer_than_frame", b, 16, -1);

    f = raw_frame("{\"code\":10,\"opaque\":]]]", 0, &len);
    if (f)
        one_case("invalid_json_header", f, len, -1);
    free(f);
    deep = malloc(200010);
    if (deep) {
        size_t n = 0;
        n += (size_t)sprintf(deep, "{\"code\":");
        for (int i = 0; i < 50000; i++)
            deep[n++] = '[';
        for (int i = 0; i < 50000; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        deep[n] = '\0';
        f = raw_frame(deep, 0, &len);
        if (f)
            one_case("deeply_nested_json_header", f, len, -1);
        free(f);
        free(deep);
    }

    /* Unknown code: answered, and the connection still serves. */
    f = unknown_req(7, &len);
    fd = dial(5000);
    if (f && fd != -1 && write_all(fd, f, len) == 0) {
        int c1 = read_reply(fd, NULL), c2 = -2;
        if (write_all(fd, f, len) == 0)
            c2 = read_reply(fd, NULL);
        if (c1 > 0 && c2 > 0)
            printf("netload: case unknown_request_code: reply code %d, connection still usable\n",
                   c1);
        else {
            printf("netload: case unknown_request_code: FAIL replies %d then %d\n", c1, c2);
            failures++;
        }
    } else {
        printf("netload: case unknown_request_code: FAIL setup\n");
        failures++;
    }
    if (fd != -1)
        close(fd);
    free(f);

    f = send_req("NetloadTopic", "", maxmsg + 1, 9, &len);
    if (f)
        one_case("body_over_maxMessageSize", f, len, RS_MESSAGE_ILLEGAL);
    free(f);
    f = send_req("NetloadTopic", "KEYSnoseparatorsatallTAGSjunk", 16, 10, &len);
    if (f)
        one_case("properties_without_separators", f, len, -1);
    free(f);
    tiny_burst();
    printf("netload: malformed: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}

/* conns -------------------------------------------------------------------- */

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int
cmd_conns(int argc, char **argv)
{
    int n, request = 0, within = 0, ep, *fds, connected = 0, answered = 0, failed = 0;
    const char *hold = NULL;
    uint8_t *req;
    size_t req_len;
    struct epoll_event *evs;
    char *state; /* 0 connecting, 1 waiting for the reply, 2 done, 3 failed */
    int64_t t0, t_all;

    if (argc < 2)
        return 2;
    n = atoi(argv[1]);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--request") == 0)
            request = 1;
        else if (strcmp(argv[i], "--hold-file") == 0 && i + 1 < argc)
            hold = argv[++i];
        else if (strcmp(argv[i], "--within-ms") == 0 && i + 1 < argc)
            within = atoi(argv[++i]);
        else
            return 2;
    }
    if (n <= 0)
        return 2;
    raise_nofile();
    req = unknown_req(1, &req_len);
    fds = calloc((size_t)n, sizeof(*fds));
    state = calloc((size_t)n, 1);
    evs = calloc(256, sizeof(*evs));
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!req || !fds || !state || !evs || ep == -1)
        return 2;
    t0 = spk_mono_ms();
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {EPOLLOUT, {.u32 = (uint32_t)i}};
        int one = 1;

        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fds[i] == -1) {
            printf("netload: conns: socket %d: %s\n", i, strerror(errno));
            state[i] = 3;
            failed++;
            continue;
        }
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fds[i], (struct sockaddr *)&g_sa, sizeof(g_sa)) == -1 &&
            errno != EINPROGRESS) {
            state[i] = 3;
            failed++;
            continue;
        }
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    while (connected + failed < n || (request && answered + failed < n)) {
        int k = epoll_wait(ep, evs, 256, 1000);

        if (k == 0 && spk_mono_ms() - t0 > 60000)
            break;
        for (int j = 0; j < k; j++) {
            int i = (int)evs[j].data.u32, err = 0;
            socklen_t el = sizeof(err);

            if (state[i] == 0) {
                getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &el);
                if (err || (evs[j].events & (EPOLLERR | EPOLLHUP))) {
                    state[i] = 3;
                    failed++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
                    continue;
                }
                connected++;
                if (request && write(fds[i], req, req_len) == (ssize_t)req_len) {
                    struct epoll_event ev = {EPOLLIN, {.u32 = (uint32_t)i}};
                    state[i] = 1;
                    epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev);
                } else {
                    state[i] = request ? 3 : 2;
                    failed += request;
                    epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
                }
            } else if (state[i] == 1) {
                uint8_t buf[4096];
                ssize_t r = read(fds[i], buf, sizeof(buf));
                if (r > 0) { /* one small reply; a partial one is as good here */
                    state[i] = 2;
                    answered++;
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    state[i] = 3;
                    failed++;
                }
                if (state[i] != 1)
                    epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
            }
        }
    }
    t_all = spk_mono_ms() - t0;
    printf("netload: conns: %d of %d connected, %d answered, %d failed, in %lld ms\n", connected,
           n, answered, failed, (long long)t_all);
    fflush(stdout);
    if (hold) {
        /* Held until the file is removed; a connection the broker closes
         * meanwhile is counted (it should not close idle ones this soon). */
        FILE *fp = fopen(hold, "w");
        if (fp)
            fclose(fp);
        while (access(hold, F_OK) == 0)
            sleep_ms(50);
    }
    for (int i = 0; i < n; i++)
        if (fds[i] != -1)
            close(fds[i]);
    close(ep);
    free(req);
    free(fds);
    free(state);
    free(evs);
    if (failed || connected < n || (request && answered < n) || (within > 0 && t_all > within)) {
        printf("netload: conns: FAIL%s\n", within > 0 && t_all > within ? " (too slow)" : "");
        return 1;
    }
    return 0;
}

/* slow clients --------------------------------------------------------------- */

/* 1: the peer has closed (EOF or reset) as far as a nonblocking peek can tell. */
static int
peer_closed(int fd)
{
    uint8_t b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    return r == 0 || (r == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int
cmd_slowloris(int argc, char **argv)
{
    size_t len, sent = 0;
    uint8_t *f;
    int fd, maxwait;
    int64_t t0;

    if (argc < 2)
        return 2;
    maxwait = atoi(argv[1]);
    f = unknown_req(3, &len);
    fd = dial(5000);
    if (!f || fd == -1)
        return 2;
    t0 = spk_mono_ms();
    while (spk_mono_ms() - t0 < maxwait) {
        if (sent < len - 1) {
            if (send(fd, f + sent, 1, MSG_NOSIGNAL) != 1)
                break;
            sent++;
        }
        for (int i = 0; i < 20; i++) {
            if (peer_closed(fd))
                goto closed;
            sleep_ms(50);
        }
    }
    if (!peer_closed(fd)) {
        printf("netload: slowloris: FAIL still open after %d ms (%zu of %zu bytes sent)\n",
               maxwait, sent, len);
        close(fd);
        free(f);
        return 1;
    }
closed:
    printf("netload: slowloris: closed by the broker after %lld ms, %zu of %zu bytes sent\n",
           (long long)(spk_mono_ms() - t0), sent, len);
    close(fd);
    free(f);
    return 0;
}

static int
cmd_midframe(void)
{
    size_t len;
    uint8_t *f = unknown_req(4, &len);
    int fd = dial(5000);
    int64_t t0;

    if (!f || fd == -1)
        return 2;
    if (write_all(fd, f, len / 2) != 0)
        return 2;
    printf("netload: midframe: sent %zu of %zu bytes, stopping\n", len / 2, len);
    fflush(stdout);
    raise(SIGSTOP);
    t0 = spk_mono_ms();
    while (!peer_closed(fd) && spk_mono_ms() - t0 < 3000)
        sleep_ms(20);
    if (!peer_closed(fd)) {
        printf("netload: midframe: FAIL the connection is still open after SIGCONT\n");
        return 1;
    }
    printf("netload: midframe: the broker had closed the connection\n");
    close(fd);
    free(f);
    return 0;
}

static int
cmd_noread(int argc, char **argv)
{
    int fd, pulls, rcv = 4096;

    if (argc < 3)
        return 2;
    pulls = atoi(argv[2]);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return 2;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    if (connect(fd, (struct sockaddr *)&g_sa, sizeof(g_sa)) == -1)
        return 2;
    for (int i = 0; i < pulls; i++) {
        size_t len;
        uint8_t *f = pull_req(argv[1], i % 4, 0, 0, 100 + i, &len);
        int rc = f ? write_all(fd, f, len) : -ENOMEM;

        free(f);
        if (rc)
            break; /* closed already, or our own send buffer full: enough */
    }
    printf("netload: noread: %d pulls sent, reading nothing\n", pulls);
    fflush(stdout);
    for (;;)
        pause();
}

static int
cmd_longpoll(int argc, char **argv)
{
    int queues, pulls, suspend, nconn, answered = 0, early = 0;
    int *fds;
    int64_t t0;

    if (argc < 5)
        return 2;
    queues = atoi(argv[2]);
    pulls = atoi(argv[3]);
    suspend = atoi(argv[4]);
    if (queues <= 0 || pulls <= 0)
        return 2;
    nconn = (pulls + 99) / 100;
    fds = calloc((size_t)nconn, sizeof(*fds));
    if (!fds)
        return 2;
    t0 = spk_mono_ms();
    for (int c = 0; c < nconn; c++) {
        fds[c] = dial(suspend + 5000);
        if (fds[c] == -1)
            return 2;
        for (int i = c * 100; i < pulls && i < (c + 1) * 100; i++) {
            size_t len;
            uint8_t *f = pull_req(argv[1], i % queues, 0, suspend, 1000 + i, &len);
            if (!f || write_all(fds[c], f, len) != 0)
                return 2;
            free(f);
        }
    }
    printf("netload: longpoll: %d pulls sent over %d connections\n", pulls, nconn);
    fflush(stdout);
    while (answered < pulls && spk_mono_ms() - t0 < suspend + 5000) {
        for (int c = 0; c < nconn; c++) {
            struct pollfd pfd = {fds[c], POLLIN, 0};
            while (poll(&pfd, 1, 0) == 1) {
                int code = read_reply(fds[c], NULL);
                if (code < 0)
                    break;
                answered++;
                if (spk_mono_ms() - t0 < 1000)
                    early++;
            }
        }
        sleep_ms(20);
    }
    printf("netload: longpoll: %d of %d answered after %lld ms (%d within the first second)\n",
           answered, pulls, (long long)(spk_mono_ms() - t0), early);
    for (int c = 0; c < nconn; c++)
        close(fds[c]);
    free(fds);
    if (answered < pulls || early > 0) {
        printf("netload: longpoll: FAIL\n");
        return 1;
    }
    return 0;
}

static int
cmd_abrupt(int argc, char **argv)
{
    int n, rounds, fd, code;
    struct linger lg = {1, 0};

    if (argc < 4)
        return 2;
    n = atoi(argv[2]);
    rounds = atoi(argv[3]);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < n; i++) {
            size_t l1, l2, l3;
            uint8_t *p = pull_req(argv[1], i % 4, 1 << 30, 5000, 1, &l1);
            uint8_t *s = send_req(argv[1], "", 512, 2, &l2);
            uint8_t *u = unknown_req(3, &l3);

            fd = dial(1000);
            if (fd != -1 && p && s && u) {
                (void)write_all(fd, p, l1);
                (void)write_all(fd, s, l2);
                (void)write_all(fd, u, l3 / 2); /* and a half frame */
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            }
            if (fd != -1)
                close(fd); /* RST with requests in flight */
            free(p);
            free(s);
            free(u);
        }
    }
    {
        size_t len;
        uint8_t *f = unknown_req(5, &len);
        fd = dial(5000);
        code = fd != -1 && f && write_all(fd, f, len) == 0 ? read_reply(fd, NULL) : -4;
        free(f);
        if (fd != -1)
            close(fd);
    }
    printf("netload: abrupt: %d rounds of %d resets with requests in flight; a new connection "
           "got reply code %d\n",
           rounds, n, code);
    return code > 0 ? 0 : 1;
}

/* A property string of exactly <n> bytes: KEYS=kkk...; "" for n == 0. */
static char *
props_of(size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    if (n < 7) {
        memset(p, 'x', n); /* too short for a pair: carried as is */
    } else {
        memcpy(p, "KEYS\001", 5);
        memset(p + 5, 'k', n - 6);
        p[n - 1] = '\002';
    }
    p[n] = '\0';
    return p;
}

static int
cmd_send(int argc, char **argv)
{
    size_t body_len, props_len, len;
    int batch = 0, fd, code = -1, count = 1;
    char *props;
    uint8_t *f = NULL;

    if (argc < 4)
        return 2;
    body_len = strtoul(argv[2], NULL, 10);
    props_len = strtoul(argv[3], NULL, 10);
    if (argc > 4)
        batch = atoi(argv[4]);
    if (argc > 5)
        count = atoi(argv[5]);
    props = props_of(props_len);
    if (!props)
        return 2;
    if (batch > 0) {
        struct proto_reply r;
        uint8_t *msg = calloc(1, body_len ? body_len : 1), *body;
        size_t one = proto_batch_encode(NULL, 0, msg, (uint32_t)body_len, props,
                                        (uint32_t)props_len);

        body = msg && one ? malloc(one * (size_t)batch) : NULL;
        if (!body) {
            free(msg);
            free(props);
            return 2;
        }
        for (int i = 0; i < batch; i++)
            proto_batch_encode(body + one * (size_t)i, 0, msg, (uint32_t)body_len, props,
                               (uint32_t)props_len);
        proto_reply_init(&r, 320);
        send_ext(&r, argv[1], "", 1);
        proto_reply_body(&r, body, one * (size_t)batch);
        f = encode(&r, 11, &len);
        proto_reply_free(&r);
        free(msg);
    } else {
        f = send_req(argv[1], props, body_len, 11, &len);
    }
    free(props);
    fd = dial(30000);
    if (!f || fd == -1) {
        free(f);
        return 2;
    }
    for (int i = 0; i < count; i++)
        code = write_all(fd, f, len) == 0 ? read_reply(fd, NULL) : -1;
    printf("netload: send: topic %s, body %zu, properties %zu, batch %d: %s %d\n", argv[1],
           body_len, props_len, batch, code >= 0 ? "reply code" : "no reply", code);
    close(fd);
    free(f);
    return 0;
}

int
main(int argc, char **argv)
{
    int rc = 2;

    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3 || net_parse_addr(argv[2], &g_sa) != 0) {
        fprintf(stderr, "usage: netload malformed|conns|slowloris|midframe|noread|longpoll|abrupt "
                        "ADDR ...\n");
        return 2;
    }
    if (strcmp(argv[1], "malformed") == 0)
        rc = cmd_malformed(argc - 2, argv + 2);
    else if (strcmp(argv[1], "conns") == 0)
        rc = cmd_conns(argc - 2, argv + 2);
    else if (strcmp(argv[1], "slowloris") == 0)
        rc = cmd_slowloris(argc - 2, argv + 2);
    else if (strcmp(argv[1], "midframe") == 0)
        rc = cmd_midframe();
    else if (strcmp(argv[1], "noread") == 0)
        rc = cmd_noread(argc - 2, argv + 2);
    else if (strcmp(argv[1], "longpoll") == 0)
        rc = cmd_longpoll(argc - 2, argv + 2);
    else if (strcmp(argv[1], "abrupt") == 0)
        rc = cmd_abrupt(argc - 2, argv + 2);
    else if (strcmp(argv[1], "send") == 0)
        rc = cmd_send(argc - 2, argv + 2);
    if (rc == 2)
        fprintf(stderr, "netload: usage or setup error\n");
    return rc;
}
