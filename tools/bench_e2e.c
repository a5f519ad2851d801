/*
 * bench_e2e.c - `sprocket bench e2e`: end-to-end latency, producer ->
 * broker -> consumer, at a fixed send rate.
 *
 * One thread sends SEND_MESSAGE_V2 requests to queue 0 of a topic at
 * --rate messages a second (each waits for its reply, as a synchronous
 * producer does), writing the monotonic clock into the first 8 bytes of
 * the body just before the write. Another thread keeps one long-polling
 * PULL_MESSAGE on that queue, as a push consumer does, and for every
 * message it receives records now - stamp. Both run on this machine, so
 * one clock serves both ends.
 *
 * The send schedule is absolute (message i is due at start + i/rate); a
 * sender that falls behind sends at once rather than skipping, and its
 * lateness shows up in the latencies, so a stall is not hidden.
 *
 * Prints the latency percentiles and histogram and ends with one line of
 * JSON, like the other benchmarks. Exit status (tool.h): 0 when every
 * message sent was received, 1 otherwise, 2 for a usage error.
 */
#include "tool.h"
#include "hist.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/errors.h"
#include "net/client.h"
#include "proto/remoting.h"
#include "proto/reply.h"
#include "store/record.h"

#define RC_PULL 11
#define RC_UPDATE_AND_CREATE_TOPIC 17
#define RC_GET_MAX_OFFSET 30
#define RC_SEND_V2 310
#define CALL_TIMEOUT_MS 5000
#define PULL_TIMEOUT_MS 30000

struct e2e_opts {
    const char *addr;
    const char *topic;
    int rate;
    double seconds;
    int size;
    int create;
    int sync_wait_ms; /* how long the consumer may lag behind after the last send */
};

struct e2e {
    struct e2e_opts o;
    atomic_int sending_done;
    atomic_uint_fast64_t sent, send_errors;
    uint64_t received, dup_or_old, bad;
    int64_t start_offset;
    struct hist lat;
    struct hist send_lat; /* sender thread only */
};

static void
usage(FILE *f)
{
    fputs("usage: sprocket bench e2e [options]\n"
          "\n"
          "End-to-end latency against a running broker: sends at a fixed rate to\n"
          "queue 0 of a topic and consumes it with a long-polling pull, timing each\n"
          "message from just before its send to its arrival at the consumer.\n"
          "\n"
          "  --addr=HOST:PORT   broker (default 127.0.0.1:10911)\n"
          "  --topic=NAME       topic (default BenchE2E)\n"
          "  --create-topic     create the topic first (1 queue)\n"
          "  --rate=N           messages a second (default 10000, 1..1000000)\n"
          "  --duration=SEC     how long to send (default 5)\n"
          "  --size=BYTES       body size (default 1024, at least 8)\n"
          "  -h, --help         this text\n",
          f);
}

static int
opt(const char *arg, const char *name, const char **val)
{
    size_t n = strlen(name);

    if (strncmp(arg, name, n) == 0 && arg[n] == '=') {
        *val = arg + n + 1;
        return 1;
    }
    return 0;
}

static int
num(const char *v, const char *name, double lo, double hi, double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno || *end || !*v || d < lo || d > hi) {
        fprintf(stderr, "sprocket bench e2e: %s wants a number from %g to %g, not '%s'\n", name,
                lo, hi, v);
        return -1;
    }
    *out = d;
    return 0;
}

/* One blocking request on <cl>; returns 0 and the decoded reply. */
static int
call(struct net_client *cl, struct proto_reply *req, int timeout_ms, struct proto_cmd *rep,
     uint8_t **frame)
{
    static atomic_int opaque = 1;
    int32_t op = atomic_fetch_add(&opaque, 1);
    uint8_t *buf;
    size_t len, rlen;
    int rc = proto_request_encode(req, op, 0, &buf, &len);

    if (rc)
        return rc;
    rc = net_client_call(cl, buf, len, op, timeout_ms, frame, &rlen);
    free(buf);
    if (rc)
        return rc;
    rc = proto_decode(*frame, rlen, rep);
    if (rc) {
        free(*frame);
        *frame = NULL;
    }
    return rc;
}

static void
sleep_until_ns(int64_t t)
{
    int64_t now = spk_mono_ns();

    if (t > now) {
        struct timespec ts = {(time_t)((t - now) / 1000000000),
                              (long)((t - now) % 1000000000)};
        nanosleep(&ts, NULL);
    }
}

static void *
sender(void *arg)
{
    struct e2e *e = arg;
    struct net_client *cl = NULL;
    uint8_t *body = calloc(1, (size_t)e->o.size);
    int64_t start = spk_mono_ns(), end = start + (int64_t)(e->o.seconds * 1e9);
    uint64_t i;

    if (!body || net_client_create(e->o.addr, &cl) != 0)
        goto out;
    memset(body + 8, 'e', (size_t)e->o.size - 8);
    for (i = 0;; i++) {
        int64_t due = start + (int64_t)((double)i * 1e9 / e->o.rate), stamp;
        struct proto_reply req;
        struct proto_cmd rep;
        uint8_t *frame = NULL;
        int rc;

        if (due >= end)
            break;
        sleep_until_ns(due);
        proto_reply_init(&req, RC_SEND_V2);
        proto_reply_ext(&req, "a", "bench_e2e");
        proto_reply_ext(&req, "b", "%s", e->o.topic);
        proto_reply_ext(&req, "c", "TBW102");
        proto_reply_ext(&req, "d", "1");
        proto_reply_ext(&req, "e", "0");
        proto_reply_ext(&req, "f", "0");
        proto_reply_ext_i64(&req, "g", spk_wall_ms());
        proto_reply_ext(&req, "h", "0");
        proto_reply_ext(&req, "i", "%s", "");
        stamp = spk_mono_ns();
        memcpy(body, &stamp, sizeof(stamp));
        req.body = body;
        req.body_len = (size_t)e->o.size;
        req.body_owned = 0;
        rc = call(cl, &req, CALL_TIMEOUT_MS, &rep, &frame);
        hist_add(&e->send_lat, (uint64_t)(spk_mono_ns() - stamp));
        proto_reply_free(&req);
        if (rc || rep.code != 0)
            atomic_fetch_add(&e->send_errors, 1);
        else
            atomic_fetch_add(&e->sent, 1);
        if (!rc)
            proto_cmd_free(&rep);
        free(frame);
    }
out:
    atomic_store(&e->sending_done, 1);
    net_client_destroy(cl);
    free(body);
    return NULL;
}

static int
max_offset(struct net_client *cl, const char *topic, int64_t *out)
{
    struct proto_reply req;
    struct proto_cmd rep;
    uint8_t *frame = NULL;
    const char *v;
    int rc;

    proto_reply_init(&req, RC_GET_MAX_OFFSET);
    proto_reply_ext(&req, "topic", "%s", topic);
    proto_reply_ext(&req, "queueId", "0");
    rc = call(cl, &req, CALL_TIMEOUT_MS, &rep, &frame);
    proto_reply_free(&req);
    if (rc)
        return rc;
    v = proto_ext_get(&rep, "offset");
    rc = rep.code == 0 && v ? 0 : SPK_EFORMAT;
    if (!rc)
        *out = strtoll(v, NULL, 10);
    proto_cmd_free(&rep);
    free(frame);
    return rc;
}

/* Pulls queue 0 from <offset> until every sent message arrived (or lag ran out). */
static int
consume(struct e2e *e, struct net_client *cl, int64_t offset)
{
    int64_t idle_deadline = 0;

    for (;;) {
        struct proto_reply req;
        struct proto_cmd rep;
        uint8_t *frame = NULL;
        const char *v;
        int rc;

        if (atomic_load(&e->sending_done)) {
            uint64_t want = atomic_load(&e->sent);

            if (e->received >= want)
                return 0;
            if (!idle_deadline)
                idle_deadline = spk_mono_ms() + e->o.sync_wait_ms;
            else if (spk_mono_ms() > idle_deadline)
                return -ETIMEDOUT;
        }
        proto_reply_init(&req, RC_PULL);
        proto_reply_ext(&req, "consumerGroup", "bench_e2e_%d", (int)getpid());
        proto_reply_ext(&req, "topic", "%s", e->o.topic);
        proto_reply_ext(&req, "queueId", "0");
        proto_reply_ext_i64(&req, "queueOffset", offset);
        proto_reply_ext(&req, "maxMsgNums", "32");
        proto_reply_ext(&req, "sysFlag", "6"); /* long polling, subscription in the request */
        proto_reply_ext(&req, "commitOffset", "0");
        proto_reply_ext(&req, "suspendTimeoutMillis", "%d",
                        atomic_load(&e->sending_done) ? 200 : 1000);
        proto_reply_ext(&req, "subscription", "*");
        proto_reply_ext(&req, "subVersion", "0");
        rc = call(cl, &req, PULL_TIMEOUT_MS, &rep, &frame);
        proto_reply_free(&req);
        if (rc) {
            fprintf(stderr, "sprocket bench e2e: pull failed: %s\n", spk_strerror(rc));
            return rc;
        }
        if (rep.code == 0 && rep.body_len) {
            int64_t now = spk_mono_ns();
            size_t pos = 0;

            while (pos < rep.body_len) {
                struct rec_view rv;
                const char *why;
                int rl = rec_parse(rep.body + pos, rep.body_len - pos, REC_ANY_POS,
                                   REC_CHECK_NONE, &rv, &why);
                int64_t stamp;

                if (rl <= 0) {
                    e->bad++;
                    break;
                }
                pos += (size_t)rl;
                if (rv.body_len < 8 || (int64_t)rv.queue_off < e->start_offset) {
                    e->bad++;
                    continue;
                }
                memcpy(&stamp, rv.body, sizeof(stamp));
                if (stamp <= 0 || stamp > now) {
                    e->bad++;
                    continue;
                }
                hist_add(&e->lat, (uint64_t)(now - stamp));
                e->received++;
            }
        }
        v = proto_ext_get(&rep, "nextBeginOffset");
        if (v && (rep.code == 0 || rep.code == 19 || rep.code == 20 || rep.code == 21))
            offset = strtoll(v, NULL, 10);
        else if (rep.code != 19)
            usleep(10000);
        proto_cmd_free(&rep);
        free(frame);
    }
}

static int
create_topic(struct net_client *cl, const char *topic)
{
    struct proto_reply req;
    struct proto_cmd rep;
    uint8_t *frame = NULL;
    int rc;

    proto_reply_init(&req, RC_UPDATE_AND_CREATE_TOPIC);
    proto_reply_ext(&req, "topic", "%s", topic);
    proto_reply_ext(&req, "defaultTopic", "TBW102");
    proto_reply_ext(&req, "readQueueNums", "1");
    proto_reply_ext(&req, "writeQueueNums", "1");
    proto_reply_ext(&req, "perm", "6");
    proto_reply_ext(&req, "topicFilterType", "SINGLE_TAG");
    rc = call(cl, &req, CALL_TIMEOUT_MS, &rep, &frame);
    proto_reply_free(&req);
    if (rc)
        return rc;
    if (rep.code != 0)
        fprintf(stderr, "sprocket bench e2e: cannot create %s: code %d %s\n", topic, rep.code,
                rep.remark ? rep.remark : "");
    rc = rep.code == 0 ? 0 : SPK_EFORMAT;
    proto_cmd_free(&rep);
    free(frame);
    return rc;
}

int
cmd_bench_e2e(int argc, char **argv)
{
    struct e2e *e;
    struct net_client *cl = NULL;
    pthread_t th;
    const char *v;
    double d;
    int i, rc, ret = TOOL_EXIT_OK;
    uint64_t sent, errs;

    e = calloc(1, sizeof(*e));
    if (!e)
        return TOOL_EXIT_FAIL;
    e->o.addr = "127.0.0.1:10911";
    e->o.topic = "BenchE2E";
    e->o.rate = 10000;
    e->o.seconds = 5;
    e->o.size = 1024;
    e->o.sync_wait_ms = 10000;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (tool_is_help(a)) {
            usage(stdout);
            free(e);
            return TOOL_EXIT_OK;
        } else if (opt(a, "--addr", &v)) {
            e->o.addr = v;
        } else if (opt(a, "--topic", &v)) {
            e->o.topic = v;
        } else if (strcmp(a, "--create-topic") == 0) {
            e->o.create = 1;
        } else if (opt(a, "--rate", &v) && num(v, "--rate", 1, 1000000, &d) == 0) {
            e->o.rate = (int)d;
        } else if ((opt(a, "--duration", &v) || opt(a, "--seconds", &v)) &&
                   num(v, "--duration", 0.1, 86400, &d) == 0) {
            e->o.seconds = d;
        } else if (opt(a, "--size", &v) && num(v, "--size", 8, 4 << 20, &d) == 0) {
            e->o.size = (int)d;
        } else {
            fprintf(stderr, "sprocket bench e2e: bad option '%s'; see 'sprocket bench e2e "
                    "--help'\n", a);
            free(e);
            return TOOL_EXIT_USAGE;
        }
    }
    if (net_client_create(e->o.addr, &cl) != 0) {
        fprintf(stderr, "sprocket bench e2e: bad address '%s' (want HOST:PORT)\n", e->o.addr);
        free(e);
        return TOOL_EXIT_USAGE;
    }
    if (e->o.create && create_topic(cl, e->o.topic) != 0) {
        ret = TOOL_EXIT_FAIL;
        goto out;
    }
    rc = max_offset(cl, e->o.topic, &e->start_offset);
    if (rc) {
        fprintf(stderr, "sprocket bench e2e: cannot read %s queue 0 at %s: %s (is the broker "
                "up, does the topic exist? --create-topic makes it)\n", e->o.topic, e->o.addr,
                spk_strerror(rc));
        ret = TOOL_EXIT_FAIL;
        goto out;
    }
    if (pthread_create(&th, NULL, sender, e) != 0) {
        ret = TOOL_EXIT_FAIL;
        goto out;
    }
    rc = consume(e, cl, e->start_offset);
    pthread_join(th, NULL);
    sent = atomic_load(&e->sent);
    errs = atomic_load(&e->send_errors);
    printf("end to end, %d msgs/s of %d bytes for %.1f s to %s:\n", e->o.rate, e->o.size,
           e->o.seconds, e->o.addr);
    printf("  %" PRIu64 " sent, %" PRIu64 " send errors, %" PRIu64 " received, %" PRIu64
           " bad\n", sent, errs, e->received, e->bad);
    if (e->lat.n) {
        printf("  latency (send -> consumer), %" PRIu64 " samples:\n", e->lat.n);
        printf("      p50 us     p90 us     p99 us   p99.9 us  p99.99 us     max us\n");
        printf("  %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", hist_pct(&e->lat, 0.5) / 1e3,
               hist_pct(&e->lat, 0.9) / 1e3, hist_pct(&e->lat, 0.99) / 1e3,
               hist_pct(&e->lat, 0.999) / 1e3, hist_pct(&e->lat, 0.9999) / 1e3,
               (double)e->lat.max / 1e3);
        hist_print(stdout, &e->lat, "  ");
        printf("  send round trip (the producer's view): p50 %.1f us, p99 %.1f us\n",
               hist_pct(&e->send_lat, 0.5) / 1e3, hist_pct(&e->send_lat, 0.99) / 1e3);
    }
    if (rc || errs || e->received < sent || e->bad)
        ret = TOOL_EXIT_FAIL;
    printf("{\"bench\":\"e2e\",\"rate\":%d,\"size\":%d,\"seconds\":%.1f,\"sent\":%" PRIu64
           ",\"received\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"p50_us\":%.1f,\"p90_us\":%.1f,"
           "\"p99_us\":%.1f,\"p999_us\":%.1f,\"p9999_us\":%.1f,\"max_us\":%.1f,\"failed\":%s}\n",
           e->o.rate, e->o.size, e->o.seconds, sent, e->received, errs + e->bad,
           hist_pct(&e->lat, 0.5) / 1e3, hist_pct(&e->lat, 0.9) / 1e3,
           hist_pct(&e->lat, 0.99) / 1e3, hist_pct(&e->lat, 0.999) / 1e3,
           hist_pct(&e->lat, 0.9999) / 1e3, (double)e->lat.max / 1e3,
           ret ? "true" : "false");
out:
    net_client_destroy(cl);
    free(e);
    return ret;
}
