/*
 * driver.c - the workload driver of the reliability tests: it writes a
 * queue history for tests/checker/qcheck (RELIABILITY.md sections 4 and 5).
 *
 *   driver send  -n NAMESRV -t TOPIC --producers P --duration SEC
 *                --min-size B --max-size B --history FILE [--seed N]
 *                [--big-permille N] [--big-max B] [--timeout MS] [--rate N]
 *   driver drain -n NAMESRV -t TOPIC --history FILE --process NAME
 *                [--idle SEC] [--max-time SEC]
 *
 * It uses only the public client API (include/sprocket.h), as an outside
 * program would, so what it sees is what an application sees.
 *
 * send: P producer threads (one spk_producer each) send synchronously
 * until SEC seconds passed or SIGTERM/SIGINT, and retry a send that did
 * not get SEND_OK (attempt + 1, 50 ms later) until it does. Body sizes are
 * uniform in [min-size, max-size], except N per thousand (--big-permille)
 * in [1 MiB, big-max]; --rate paces each producer to N messages/s.
 * drain: a lite pull consumer in a group of its own reads every queue
 * from offset 0 and stops after --idle seconds (default 5) without a
 * message.
 *
 * Message body (all integers little-endian):
 *
 *   0   4  magic "SPKD"
 *   4   4  producer id
 *   8   8  seq            1, 2, ... per producer
 *   16  4  attempt        0 for the first send of a seq, +1 per retry
 *   20  4  payload length (the body is 28 + this many bytes)
 *   24  4  CRC-32 (zlib) of bytes 0..24 followed by the payload
 *   28  .  payload, pseudo-random bytes
 *
 * The CRC covers the header fields too, so a flipped bit in a seq cannot
 * pass for another message's value.
 *
 * History: one JSON object per line, appended to FILE (the send and drain
 * runs of one test share it). Every operation is an "invoke" line followed
 * by its completion ("ok", "fail" or "info") from the same process:
 *
 *   send:  {"type":"invoke","f":"send","process":P,"time":NS,
 *           "value":{"producer":P,"seq":S,"attempt":A}}
 *          ok:   + "queue":"BROKER:QID","queue_offset":N,"phys_off":N,
 *                  "msg_id":"...","offset_msg_id":"...","status":"SEND_OK"
 *          info: + "status":"FLUSH_DISK_TIMEOUT"... with the queue fields
 *                  (stored, durability unknown), or "error":"..." (and
 *                  "code" for a broker refusal) when the outcome is unknown
 *          fail: + "error":"..." (and "code"): the message was surely not
 *                  stored
 *   poll:  {"type":"invoke","f":"poll","process":"NAME","time":NS,
 *           "queue":"BROKER:QID","from":N}
 *          ok:   + "msgs":[[OFFSET,VALUE,CRC_OK],...] where VALUE is
 *                  {"producer":P,"seq":S,"attempt":A} read from the body,
 *                  or null (with CRC_OK false) when the body is too short
 *                  or its header is inconsistent
 *
 * "time" is CLOCK_MONOTONIC in nanoseconds. Lines are written whole under
 * one mutex and flushed one by one, so a killed driver loses at most the
 * line it was writing.
 *
 * Outcome mapping of a send (retryTimesWhenSendFailed=0: each attempt is
 * one request, and the driver does the retrying itself):
 *   SPK_SEND_OK                                     ok
 *   the other statuses (stored, not known durable)  info
 *   SPK_EBROKER with a validation or admission code
 *     (MESSAGE_ILLEGAL, NO_PERMISSION, TOPIC_NOT_EXIST, INVALID_PARAMETER,
 *     SYSTEM_BUSY), SPK_ETOOBIG, -EINVAL, SPK_ENOROUTE, SPK_ESTATE  fail
 *   everything else (timeouts, lost connections, SYSTEM_ERROR,
 *     SERVICE_NOT_AVAILABLE)                        info
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "sprocket.h"

#define HDR_LEN 28
#define HDR_MAGIC "SPKD"
#define BIG_MIN (1u << 20)

/* Broker reply codes (RocketMQ ResponseCode) the driver tells apart. */
#define RC_SYSTEM_BUSY 2
#define RC_MESSAGE_ILLEGAL 13
#define RC_NO_PERMISSION 16
#define RC_TOPIC_NOT_EXIST 17
#define RC_INVALID_PARAMETER 29

struct opts {
    const char *mode;
    const char *namesrv;
    const char *topic;
    const char *history;
    const char *process;
    int producers;
    double duration;
    size_t min_size;
    size_t max_size;
    size_t big_max;
    int big_permille;
    uint64_t seed;
    int timeout_ms;
    double rate;
    double idle;
    double max_time;
};

struct history {
    FILE *fp;
    pthread_mutex_t lock;
};

struct producer_stats {
    uint64_t ok, fail, info, invoked;
};

struct producer_arg {
    const struct opts *o;
    struct history *h;
    int id;
    struct producer_stats st;
};

static atomic_int stop_requested;

static void
on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_requested, 1);
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ----- a growable line buffer ------------------------------------------ */
struct line {
    char *s;
    size_t len, cap;
};

static void line_printf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
line_printf(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = l->cap - l->len;

        va_start(ap, fmt);
        n = vsnprintf(l->s ? l->s + l->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < room) {
            l->len += (size_t)n;
            return;
        }
        l->cap = (l->cap + (size_t)n + 1) * 2;
        l->s = realloc(l->s, l->cap);
        if (!l->s)
            abort();
    }
}

/* Appends <s> as a JSON string (quoted, escaped). */
static void
line_json_str(struct line *l, const char *s)
{
    line_printf(l, "\"");
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            line_printf(l, "\\%c", c);
        else if (c < 0x20)
            line_printf(l, "\\u%04x", c);
        else
            line_printf(l, "%c", c);
    }
    line_printf(l, "\"");
}

/* Writes <l> plus a newline as one history line, and flushes it. */
static void
history_put(struct history *h, struct line *l)
{
    pthread_mutex_lock(&h->lock);
    fwrite(l->s, 1, l->len, h->fp);
    fputc('\n', h->fp);
    fflush(h->fp);
    pthread_mutex_unlock(&h->lock);
    l->len = 0;
}

/* ----- message bodies --------------------------------------------------- */
static void
put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t
get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t
xorshift(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static uint32_t
body_crc(const uint8_t *body, size_t payload_len)
{
    uLong c = crc32(0L, Z_NULL, 0);

    c = crc32(c, body, 24);
    /* zlib takes uInt lengths; payloads stay far below 4 GiB. */
    c = crc32(c, body + HDR_LEN, (uInt)payload_len);
    return (uint32_t)c;
}

/* Fills the header of <body> (which holds HDR_LEN + payload_len bytes). */
static void
body_seal(uint8_t *body, uint32_t producer, uint64_t seq, uint32_t attempt, size_t payload_len)
{
    memcpy(body, HDR_MAGIC, 4);
    put_u32(body + 4, producer);
    put_u32(body + 8, (uint32_t)seq);
    put_u32(body + 12, (uint32_t)(seq >> 32));
    put_u32(body + 16, attempt);
    put_u32(body + 20, (uint32_t)payload_len);
    put_u32(body + 24, body_crc(body, payload_len));
}

struct value {
    uint32_t producer;
    uint64_t seq;
    uint32_t attempt;
};

/*
 * Reads a body. Returns 1 when the header is consistent (the value is
 * set) and *crc_ok tells whether the CRC matched; 0 when the body cannot
 * be read as a driver message at all.
 */
static int
body_parse(const uint8_t *body, size_t len, struct value *v, int *crc_ok)
{
    uint32_t plen;

    *crc_ok = 0;
    if (len < HDR_LEN || memcmp(body, HDR_MAGIC, 4) != 0)
        return 0;
    plen = get_u32(body + 20);
    if ((size_t)plen != len - HDR_LEN)
        return 0;
    v->producer = get_u32(body + 4);
    v->seq = (uint64_t)get_u32(body + 8) | (uint64_t)get_u32(body + 12) << 32;
    v->attempt = get_u32(body + 16);
    *crc_ok = get_u32(body + 24) == body_crc(body, plen);
    return 1;
}

/* ----- send ------------------------------------------------------------- */
static const char *
status_name(spk_send_status s)
{
    switch (s) {
    case SPK_SEND_OK:
        return "SEND_OK";
    case SPK_SEND_FLUSH_DISK_TIMEOUT:
        return "FLUSH_DISK_TIMEOUT";
    case SPK_SEND_FLUSH_SLAVE_TIMEOUT:
        return "FLUSH_SLAVE_TIMEOUT";
    case SPK_SEND_SLAVE_NOT_AVAILABLE:
        return "SLAVE_NOT_AVAILABLE";
    }
    return "UNKNOWN";
}

/* Whether error <rc> of a send (broker reply <code>) means "not stored". */
static int
surely_not_stored(int rc, int code)
{
    switch (rc) {
    case SPK_ETOOBIG:
    case -EINVAL:
    case SPK_ESTATE:
        return 1;
    case SPK_ENOROUTE:
        /* With no retries, ENOROUTE means no request went out. */
        return 1;
    case SPK_EBROKER:
        return code == RC_MESSAGE_ILLEGAL || code == RC_NO_PERMISSION ||
               code == RC_TOPIC_NOT_EXIST || code == RC_INVALID_PARAMETER || code == RC_SYSTEM_BUSY;
    default:
        return 0;
    }
}

/* The offset id is 8 hex digits of IPv4, 8 of port, 16 of CommitLog offset. */
static int64_t
phys_off_of(const char *offset_msg_id)
{
    char *end;
    unsigned long long v;

    if (strlen(offset_msg_id) != 32)
        return -1;
    errno = 0;
    v = strtoull(offset_msg_id + 16, &end, 16);
    if (errno || *end)
        return -1;
    return (int64_t)v;
}

static void
value_json(struct line *l, uint32_t producer, uint64_t seq, uint32_t attempt)
{
    line_printf(l, "{\"producer\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"attempt\":%" PRIu32 "}",
                producer, seq, attempt);
}

static void
result_fields(struct line *l, const spk_send_result *res)
{
    line_printf(l, ",\"queue\":");
    {
        char q[160];

        snprintf(q, sizeof(q), "%s:%d", res->queue.broker, res->queue.queue_id);
        line_json_str(l, q);
    }
    line_printf(l, ",\"queue_offset\":%" PRId64 ",\"phys_off\":%" PRId64 ",\"msg_id\":",
                res->queue_offset, phys_off_of(res->offset_msg_id));
    line_json_str(l, res->msg_id);
    line_printf(l, ",\"offset_msg_id\":");
    line_json_str(l, res->offset_msg_id);
    line_printf(l, ",\"status\":");
    line_json_str(l, status_name(res->status));
}

static size_t
pick_size(const struct opts *o, uint64_t *rng)
{
    size_t lo = o->min_size, hi = o->max_size;

    if (o->big_permille > 0 && o->big_max >= BIG_MIN &&
        (int)(xorshift(rng) % 1000) < o->big_permille) {
        lo = BIG_MIN;
        hi = o->big_max;
    }
    return lo + (size_t)(xorshift(rng) % (uint64_t)(hi - lo + 1));
}

static int
producer_make(const struct opts *o, int id, spk_producer **out)
{
    char group[64], inst[64], timeout[32];
    spk_producer *p = NULL;
    int rc;

    snprintf(group, sizeof(group), "driver_p%d", id);
    snprintf(inst, sizeof(inst), "driver-%ld-%d", (long)getpid(), id);
    snprintf(timeout, sizeof(timeout), "%d", o->timeout_ms);
    rc = spk_producer_create(group, &p);
    if (!rc)
        rc = spk_producer_set_option(p, "namesrvAddr", o->namesrv);
    if (!rc)
        rc = spk_producer_set_option(p, "instanceName", inst);
    if (!rc)
        rc = spk_producer_set_option(p, "retryTimesWhenSendFailed", "0");
    if (!rc)
        rc = spk_producer_set_option(p, "sendMsgTimeout", timeout);
    /* Random payloads do not compress: spare the CPU. */
    if (!rc)
        rc = spk_producer_set_option(p, "compressMsgBodyOverHowmuch", "2147483647");
    /* One broker: latency fault avoidance would only delay the retries. */
    if (!rc)
        rc = spk_producer_set_option(p, "sendLatencyFaultEnable", "false");
    if (!rc)
        rc = spk_producer_start(p);
    if (rc) {
        spk_producer_destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void *
producer_main(void *ud)
{
    struct producer_arg *a = ud;
    const struct opts *o = a->o;
    struct line l = {0};
    spk_producer *p = NULL;
    uint64_t rng = o->seed * 0x9e3779b97f4a7c15ull + (uint64_t)a->id * 0x100000001b3ull + 1;
    uint64_t t_start = mono_ns(), end = t_start + (uint64_t)(o->duration * 1e9), seq = 0;
    size_t cap =
        HDR_LEN + (o->big_permille > 0 && o->big_max > o->max_size ? o->big_max : o->max_size);
    uint8_t *body = malloc(cap);
    int rc;

    if (!body) {
        fprintf(stderr, "driver: producer %d: out of memory\n", a->id);
        return NULL;
    }
    /* The name server may still be coming up: keep trying until the end. */
    while ((rc = producer_make(o, a->id, &p)) != 0) {
        fprintf(stderr, "driver: producer %d: start: %s\n", a->id, spk_strerror(rc));
        if (mono_ns() >= end || atomic_load(&stop_requested))
            goto out;
        usleep(200000);
    }
    while (mono_ns() < end && !atomic_load(&stop_requested)) {
        size_t size = pick_size(o, &rng), plen = size > HDR_LEN ? size - HDR_LEN : 0, i;
        uint32_t attempt = 0;
        char keys[96];

        seq++;
        if (o->rate > 0) {
            /* Paced: message <seq> is due seq/rate seconds after the start. */
            uint64_t due = t_start + (uint64_t)((double)(seq - 1) * 1e9 / o->rate), now = mono_ns();

            if (due > now)
                usleep((useconds_t)((due - now) / 1000));
        }
        for (i = 0; i + 8 <= plen; i += 8) {
            uint64_t r = xorshift(&rng);

            memcpy(body + HDR_LEN + i, &r, 8);
        }
        for (; i < plen; i++)
            body[HDR_LEN + i] = (uint8_t)xorshift(&rng);
        for (;;) {
            spk_send_result res;
            spk_message *m;
            int code = 0, outcome;
            const char *remark = NULL;

            body_seal(body, (uint32_t)a->id, seq, attempt, plen);
            m = spk_message_create(o->topic, body, HDR_LEN + plen);
            if (!m) {
                fprintf(stderr, "driver: out of memory\n");
                goto out;
            }
            /* A key per attempt, so every send goes through the index too. */
            snprintf(keys, sizeof(keys), "p%d-s%" PRIu64 "-a%" PRIu32, a->id, seq, attempt);
            spk_message_set_keys(m, keys);

            line_printf(&l,
                        "{\"type\":\"invoke\",\"f\":\"send\",\"process\":%d,\"time\":%" PRIu64
                        ",\"value\":",
                        a->id, mono_ns());
            value_json(&l, (uint32_t)a->id, seq, attempt);
            line_printf(&l, "}");
            history_put(a->h, &l);
            a->st.invoked++;

            memset(&res, 0, sizeof(res));
            rc = spk_producer_send(p, m, &res);
            spk_message_destroy(m);
            if (rc == SPK_EBROKER)
                spk_last_broker_error(&code, &remark);
            if (rc == 0)
                outcome = res.status == SPK_SEND_OK ? 0 : 2;
            else
                outcome = surely_not_stored(rc, code) ? 1 : 2;

            line_printf(&l,
                        "{\"type\":\"%s\",\"f\":\"send\",\"process\":%d,\"time\":%" PRIu64
                        ",\"value\":",
                        outcome == 0   ? "ok"
                        : outcome == 1 ? "fail"
                                       : "info",
                        a->id, mono_ns());
            value_json(&l, (uint32_t)a->id, seq, attempt);
            if (rc == 0) {
                result_fields(&l, &res);
            } else {
                line_printf(&l, ",\"error\":");
                line_json_str(&l, spk_strerror(rc));
                if (rc == SPK_EBROKER) {
                    line_printf(&l, ",\"code\":%d,\"remark\":", code);
                    line_json_str(&l, remark ? remark : "");
                }
            }
            line_printf(&l, "}");
            history_put(a->h, &l);

            if (rc == 0) {
                if (outcome == 0)
                    a->st.ok++;
                else
                    a->st.info++;
                break;
            }
            if (outcome == 1)
                a->st.fail++;
            else
                a->st.info++;
            if (mono_ns() >= end || atomic_load(&stop_requested))
                break;
            /* The broker is likely down or restarting: do not spin. */
            usleep(50000);
            attempt++;
        }
    }
out:
    spk_producer_destroy(p);
    free(body);
    free(l.s);
    return NULL;
}

static int
run_send(const struct opts *o, struct history *h)
{
    struct producer_arg *args;
    pthread_t *th;
    struct producer_stats sum = {0};
    int i, n = 0;

    if (o->producers <= 0 || o->duration <= 0 || o->max_size < o->min_size) {
        fprintf(stderr, "driver: send needs --producers > 0, --duration > 0, "
                        "--min-size <= --max-size\n");
        return 2;
    }
    args = calloc((size_t)o->producers, sizeof(*args));
    th = calloc((size_t)o->producers, sizeof(*th));
    if (!args || !th) {
        free(args);
        free(th);
        return 1;
    }
    for (i = 0; i < o->producers; i++) {
        args[i].o = o;
        args[i].h = h;
        args[i].id = i;
        if (pthread_create(&th[i], NULL, producer_main, &args[i]) != 0) {
            fprintf(stderr, "driver: cannot start producer thread %d\n", i);
            break;
        }
        n++;
    }
    for (i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        sum.invoked += args[i].st.invoked;
        sum.ok += args[i].st.ok;
        sum.fail += args[i].st.fail;
        sum.info += args[i].st.info;
    }
    fprintf(stderr,
            "driver: send: %d producers, %" PRIu64 " attempts: %" PRIu64 " ok, %" PRIu64
            " fail, %" PRIu64 " info\n",
            n, sum.invoked, sum.ok, sum.fail, sum.info);
    free(args);
    free(th);
    return n == o->producers ? 0 : 1;
}

/* ----- drain ------------------------------------------------------------ */
struct qstate {
    char name[160];
    int64_t next; /* the offset this session expects next */
    uint64_t count;
};

static struct qstate *
qstate_find(struct qstate **qs, size_t *nq, const char *name)
{
    size_t i;

    for (i = 0; i < *nq; i++)
        if (strcmp((*qs)[i].name, name) == 0)
            return &(*qs)[i];
    *qs = realloc(*qs, (*nq + 1) * sizeof(**qs));
    if (!*qs)
        abort();
    memset(&(*qs)[*nq], 0, sizeof(**qs));
    snprintf((*qs)[*nq].name, sizeof((*qs)[*nq].name), "%s", name);
    return &(*qs)[(*nq)++];
}

static void
queue_name(const spk_message *m, char *out, size_t cap)
{
    const char *b = spk_message_broker(m);

    snprintf(out, cap, "%s:%d", b ? b : "?", spk_message_queue_id(m));
}

/*
 * Writes the invoke/ok pair of one queue's share of a poll: the messages
 * msgs[i] of <q> (those with qidx[i] == <k>).
 */
static void
poll_events(const struct opts *o, struct history *h, struct line *l, struct qstate *q, size_t k,
            spk_message **msgs, const size_t *qidx, size_t n, uint64_t t0, uint64_t t1)
{
    size_t i;
    int first = 1;

    line_printf(l, "{\"type\":\"invoke\",\"f\":\"poll\",\"process\":");
    line_json_str(l, o->process);
    line_printf(l, ",\"time\":%" PRIu64 ",\"queue\":", t0);
    line_json_str(l, q->name);
    line_printf(l, ",\"from\":%" PRId64 "}", q->next);
    history_put(h, l);

    line_printf(l, "{\"type\":\"ok\",\"f\":\"poll\",\"process\":");
    line_json_str(l, o->process);
    line_printf(l, ",\"time\":%" PRIu64 ",\"queue\":", t1);
    line_json_str(l, q->name);
    line_printf(l, ",\"from\":%" PRId64 ",\"msgs\":[", q->next);
    for (i = 0; i < n; i++) {
        const void *body;
        size_t len;
        struct value v;
        int64_t off;
        int crc_ok;

        if (qidx[i] != k)
            continue;
        body = spk_message_body(msgs[i], &len);
        off = spk_message_queue_offset(msgs[i]);
        line_printf(l, "%s[%" PRId64 ",", first ? "" : ",", off);
        first = 0;
        if (body && body_parse(body, len, &v, &crc_ok))
            value_json(l, v.producer, v.seq, v.attempt);
        else {
            crc_ok = 0;
            line_printf(l, "null");
        }
        line_printf(l, ",%s]", crc_ok ? "true" : "false");
        if (off + 1 > q->next)
            q->next = off + 1;
        q->count++;
    }
    line_printf(l, "]}");
    history_put(h, l);
}

static int
run_drain(const struct opts *o, struct history *h)
{
    char group[96];
    spk_consumer *c = NULL;
    struct qstate *qs = NULL;
    struct line l = {0};
    size_t nq = 0, i, *qidx = NULL, qidx_cap = 0;
    uint64_t start = mono_ns(), last_new = 0, total = 0;
    int rc, assigned = 0;

    /* A group of its own: no committed offsets, so every queue starts at 0. */
    snprintf(group, sizeof(group), "driver_drain_%ld_%" PRIu64, (long)getpid(), start);
    rc = spk_pull_consumer_create(group, &c);
    if (!rc)
        rc = spk_consumer_set_option(c, "namesrvAddr", o->namesrv);
    if (!rc)
        rc = spk_consumer_set_option(c, "consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET");
    /*
     * autoCommit on: libsprocket counts polled but uncommitted messages
     * against pollBufferSize, so without commits the pulls of a queue stop
     * after that many messages. The group is thrown away afterwards, so
     * what it commits does not matter.
     */
    if (!rc)
        rc = spk_consumer_set_option(c, "autoCommit", "true");
    if (!rc)
        rc = spk_consumer_subscribe(c, o->topic, "*");
    if (!rc)
        rc = spk_consumer_start(c);
    if (rc) {
        fprintf(stderr, "driver: drain: %s\n", spk_strerror(rc));
        spk_consumer_destroy(c);
        return 1;
    }
    while (!atomic_load(&stop_requested)) {
        spk_message **msgs = NULL;
        size_t n = 0;
        uint64_t t0 = mono_ns(), t1;

        if ((double)(t0 - start) / 1e9 > o->max_time) {
            fprintf(stderr, "driver: drain: still receiving after %.0f s; giving up\n",
                    o->max_time);
            rc = 1;
            break;
        }
        if (!assigned) {
            spk_queue q[1];

            /* Idle time counts only once the rebalance gave us queues. */
            if (spk_consumer_assignment(c, q, 1) > 0) {
                assigned = 1;
                last_new = mono_ns();
            }
        } else if ((double)(t0 - last_new) / 1e9 >= o->idle) {
            break;
        }
        rc = spk_consumer_poll(c, 500, 256, &msgs, &n);
        t1 = mono_ns();
        if (rc) {
            fprintf(stderr, "driver: drain: poll: %s\n", spk_strerror(rc));
            usleep(100000);
            rc = 0;
            continue;
        }
        if (n == 0)
            continue;
        if (n > qidx_cap) {
            qidx_cap = n;
            qidx = realloc(qidx, qidx_cap * sizeof(*qidx));
            if (!qidx)
                abort();
        }
        {
            /* Indexes into qs of the queues this poll touched, in order. */
            size_t touched[256], nt = 0, k;

            for (i = 0; i < n; i++) {
                char name[160];
                size_t idx;

                queue_name(msgs[i], name, sizeof(name));
                idx = (size_t)(qstate_find(&qs, &nq, name) - qs);
                qidx[i] = idx;
                for (k = 0; k < nt && touched[k] != idx; k++)
                    ;
                if (k == nt && nt < sizeof(touched) / sizeof(touched[0]))
                    touched[nt++] = idx;
            }
            for (k = 0; k < nt; k++)
                poll_events(o, h, &l, &qs[touched[k]], touched[k], msgs, qidx, n, t0, t1);
        }
        total += n;
        last_new = t1;
        spk_messages_free(msgs, n);
    }
    for (i = 0; i < nq; i++)
        fprintf(stderr, "driver: drain: %s: %" PRIu64 " messages, next offset %" PRId64 "\n",
                qs[i].name, qs[i].count, qs[i].next);
    fprintf(stderr, "driver: drain: %" PRIu64 " messages from %zu queues\n", total, nq);
    if (!assigned) {
        fprintf(stderr, "driver: drain: no queue was ever assigned\n");
        rc = 1;
    }
    spk_consumer_destroy(c);
    free(qs);
    free(qidx);
    free(l.s);
    return rc ? 1 : 0;
}

/* ----- main ------------------------------------------------------------- */
static void
usage(void)
{
    fprintf(stderr,
            "usage: driver send -n NAMESRV -t TOPIC --producers P --duration SEC\n"
            "                   --min-size B --max-size B --history FILE [--seed N]\n"
            "                   [--big-permille N] [--big-max B] [--timeout MS] [--rate N]\n"
            "       driver drain -n NAMESRV -t TOPIC --history FILE --process NAME\n"
            "                   [--idle SEC] [--max-time SEC]\n");
}

int
main(int argc, char **argv)
{
    struct opts o = {0};
    struct history h;
    struct sigaction sa;
    int i, rc;

    if (argc < 2) {
        usage();
        return 2;
    }
    o.mode = argv[1];
    o.producers = 4;
    o.min_size = 16;
    o.max_size = 65536;
    o.big_max = 3u << 20;
    o.seed = (uint64_t)time(NULL);
    o.timeout_ms = 10000;
    o.idle = 5;
    o.max_time = 600;
    o.process = "drain";
    for (i = 2; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(k, "-n") == 0)
            o.namesrv = v;
        else if (strcmp(k, "-t") == 0)
            o.topic = v;
        else if (strcmp(k, "--history") == 0)
            o.history = v;
        else if (strcmp(k, "--process") == 0)
            o.process = v;
        else if (strcmp(k, "--producers") == 0)
            o.producers = atoi(v);
        else if (strcmp(k, "--duration") == 0)
            o.duration = atof(v);
        else if (strcmp(k, "--min-size") == 0)
            o.min_size = (size_t)strtoull(v, NULL, 10);
        else if (strcmp(k, "--max-size") == 0)
            o.max_size = (size_t)strtoull(v, NULL, 10);
        else if (strcmp(k, "--big-max") == 0)
            o.big_max = (size_t)strtoull(v, NULL, 10);
        else if (strcmp(k, "--big-permille") == 0)
            o.big_permille = atoi(v);
        else if (strcmp(k, "--seed") == 0)
            o.seed = strtoull(v, NULL, 10);
        else if (strcmp(k, "--timeout") == 0)
            o.timeout_ms = atoi(v);
        else if (strcmp(k, "--rate") == 0)
            o.rate = atof(v);
        else if (strcmp(k, "--idle") == 0)
            o.idle = atof(v);
        else if (strcmp(k, "--max-time") == 0)
            o.max_time = atof(v);
        else {
            usage();
            return 2;
        }
    }
    if (!o.namesrv || !o.topic || !o.history ||
        (strcmp(o.mode, "send") != 0 && strcmp(o.mode, "drain") != 0)) {
        usage();
        return 2;
    }
    if (o.min_size < HDR_LEN)
        o.min_size = HDR_LEN;
    if (o.max_size < o.min_size)
        o.max_size = o.min_size;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    h.fp = fopen(o.history, "a");
    if (!h.fp) {
        fprintf(stderr, "driver: %s: %s\n", o.history, strerror(errno));
        return 1;
    }
    pthread_mutex_init(&h.lock, NULL);
    /* Library warnings (lost connections) are expected by the hundred. */
    spk_set_log_level(3);
    rc = strcmp(o.mode, "send") == 0 ? run_send(&o, &h) : run_drain(&o, &h);
    if (fclose(h.fp) != 0) {
        fprintf(stderr, "driver: %s: %s\n", o.history, strerror(errno));
        rc = 1;
    }
    pthread_mutex_destroy(&h.lock);
    return rc;
}
