/*
 * fuzz_namesrv.c - libFuzzer target for the name server's request
 * processor (src/namesrv): one fresh name server per input, fed a
 * sequence of requests from several connections with a moving clock,
 * connection closes and expiry scans, then torn down.
 *
 * Input: a first byte 0xFF means the rest is a stream of remoting frames
 * (as they arrive on a socket: split, decoded, handled on connection
 * opaque % 4, the clock one second further each frame). Otherwise the
 * input is a sequence of records:
 *
 *   op      low 4 bits: request code index (codes[]), 15 = control
 *   ctl     bits 0-1: connection id; bits 2-7: clock step s (s*s seconds)
 *   flags   bits 0-3: number of extFields; bit 4: add a correct
 *           bodyCrc32; bit 5: a wrong one; bit 6: version 401 (standard
 *           JSON routes) else 317
 *   fields  per field: key index (keys[]), then a length byte whose high
 *           bit picks a value from vals[] by its low bits instead of
 *           that many raw bytes
 *   blen    2 bytes big-endian, then the body
 *
 * Control records close connection <ctl & 3> or run an expiry scan.
 * The only acceptable outcomes are replies; afterwards every reply must
 * encode and decode again, route and cluster bodies must parse as
 * (fast)JSON, and closing every connection must leave no broker and no
 * topic behind (every address was registered over one of them).
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/fjson.h"
#include "common/log.h"
#include "namesrv/namesrv.h"
#include "proto/remoting.h"
#include "proto/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCONN 4
#define MAX_FIELDS 15

static const int32_t codes[] = {103, 104, 105, 106, 206, 216, 224, 322,
                                904, 100, 101, 102, 219, 205, 327};

static const char *const keys[] = {
    "brokerName",
    "brokerAddr",
    "clusterName",
    "haServerAddr",
    "brokerId",
    "heartbeatTimeoutMillis",
    "enableActingMaster",
    "compressed",
    "bodyCrc32",
    "__ZONE_NAME",
    "topic",
    "acceptStandardJsonOnly",
    "namespace",
    "key",
    "value",
    "cluster",
};

static const char *const vals[] = {
    "broker-a",
    "broker-b",
    "127.0.0.1:10911",
    "127.0.0.2:10911",
    "DefaultCluster",
    "OtherCluster",
    "0",
    "1",
    "2",
    "TopicTest",
    "true",
    "false",
    "ORDER_TOPIC_CONFIG",
    "127.0.0.1:10912",
    "-1",
    "9223372036854775807",
    "",
    "zone-a",
    "30000",
    "x",
    "broker-a:4;broker-b:4",
    "%RETRY%g",
    "TBW102",
    "SELF_TEST_TOPIC",
    "1000",
    "9999999999999999999",
    "01",
    " 1",
    "broker-c",
    "127.0.0.3:10911",
    "TopicTest2",
    "ns",
};

struct in {
    const uint8_t *p;
    size_t left;
};

static int
take(struct in *in, uint8_t *b)
{
    if (in->left == 0)
        return 0;
    *b = *in->p++;
    in->left--;
    return 1;
}

static size_t
take_bytes(struct in *in, size_t want, const uint8_t **out)
{
    size_t n = want < in->left ? want : in->left;

    *out = in->p;
    in->p += n;
    in->left -= n;
    return n;
}

/* Encodes <rep> against <req>, decodes it back and checks what must hold. */
static void
check_reply(const struct proto_cmd *req, struct proto_reply *rep)
{
    uint8_t *out;
    size_t len;
    struct proto_cmd back;

    if (rep->err != 0)
        return; /* allocation failed: the caller would answer SYSTEM_ERROR */
    if (proto_reply_encode(req, rep, 0, &out, &len) != 0)
        return;
    if (proto_decode(out, len, &back) != 0)
        abort(); /* our own reply must decode */
    if (back.opaque != req->opaque || back.code != rep->code || !(back.flag & PROTO_FLAG_RESPONSE))
        abort();
    if (rep->code == 0 && back.body_len > 0 &&
        (req->code == 105 || req->code == 106 || req->code == 206 || req->code == 224)) {
        cJSON *j = fjson_parse((const char *)back.body, back.body_len);

        if (j == NULL)
            abort(); /* a route, cluster or topic-list body that no client can parse */
        cJSON_Delete(j);
    }
    proto_cmd_free(&back);
    free(out);
}

static void
handle(struct namesrv *ns, const struct proto_cmd *req, uint64_t conn, int64_t now)
{
    struct proto_reply rep;

    proto_reply_init(&rep, 0);
    namesrv_handle(ns, req, conn, now, &rep);
    check_reply(req, &rep);
    proto_reply_free(&rep);
}

static void
run_frames(struct namesrv *ns, const uint8_t *data, size_t size, int64_t *now)
{
    size_t off = 0, flen;

    while (off < size && proto_frame_split(data + off, size - off, &flen) == 0) {
        struct proto_cmd cmd;

        /* An exact-size copy, so a read past the frame is caught. */
        uint8_t *f = malloc(flen);

        if (f == NULL)
            return;
        memcpy(f, data + off, flen);
        if (proto_decode(f, flen, &cmd) == 0) {
            handle(ns, &cmd, (uint64_t)(uint32_t)cmd.opaque % NCONN, *now);
            proto_cmd_free(&cmd);
        }
        free(f);
        *now += 1000;
        off += flen;
    }
}

static void
run_records(struct namesrv *ns, struct in *in, int64_t *now)
{
    uint8_t op, ctl, flags;

    while (take(in, &op) && take(in, &ctl) && take(in, &flags)) {
        struct proto_cmd cmd;
        struct proto_ext ext[MAX_FIELDS + 1];
        char crcbuf[16];
        uint8_t hi = 0, lo = 0;
        const uint8_t *body;
        size_t blen, nf = flags & 15u;
        int64_t step = ctl >> 2;

        *now += step * step * 1000;
        if ((op & 15) == 15) {
            if (flags & 1)
                (void)namesrv_expire(ns, *now);
            else
                namesrv_conn_closed(ns, ctl & 3u);
            continue;
        }
        memset(&cmd, 0, sizeof(cmd));
        cmd.code = codes[op & 15];
        cmd.language = PROTO_LANG_JAVA;
        cmd.version = (flags & 0x40) ? 401 : 317;
        cmd.opaque = (int32_t)(in->left & 0x7fffffff);
        cmd.ext = ext;
        cmd.ext_present = 1;
        for (size_t i = 0; i < nf; i++) {
            uint8_t k, l;
            const uint8_t *v;

            if (!take(in, &k) || !take(in, &l))
                break;
            ext[cmd.next].key = keys[k % (sizeof(keys) / sizeof(keys[0]))];
            ext[cmd.next].key_len = strlen(ext[cmd.next].key);
            if (l & 0x80) {
                const char *s = vals[(l & 0x7f) % (sizeof(vals) / sizeof(vals[0]))];

                ext[cmd.next].val = s;
                ext[cmd.next].val_len = strlen(s);
            } else {
                ext[cmd.next].val_len = take_bytes(in, l, &v);
                ext[cmd.next].val = (const char *)v;
            }
            cmd.next++;
        }
        (void)take(in, &hi);
        (void)take(in, &lo);
        blen = take_bytes(in, (size_t)hi << 8 | lo, &body);
        if (blen > 0) {
            cmd.body = body;
            cmd.body_len = blen;
        }
        if (flags & 0x30) {
            uLong c = crc32(0L, Z_NULL, 0);

            if (blen > 0)
                c = crc32(c, body, (uInt)blen);
            c &= 0x7FFFFFFF;
            if (flags & 0x20)
                c ^= 1;
            ext[cmd.next].key = "bodyCrc32";
            ext[cmd.next].key_len = 9;
            ext[cmd.next].val = crcbuf;
            ext[cmd.next].val_len = (size_t)snprintf(crcbuf, sizeof(crcbuf), "%lu", c);
            cmd.next++;
        }
        handle(ns, &cmd, ctl & 3u, *now);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int log_fd = -2;
    struct namesrv *ns;
    int64_t now = 1700000000000LL;

    if (log_fd == -2) {
        /* Log lines are formatted (the sanitizers see that code) but go nowhere. */
        log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        spk_log_init('N', SPK_LOG_DEBUG, log_fd >= 0 ? log_fd : 2);
    }
    if (namesrv_create(&ns) != 0)
        return 0;
    if (size > 0 && data[0] == 0xFF) {
        run_frames(ns, data + 1, size - 1, &now);
    } else {
        struct in in = {data, size};

        run_records(ns, &in, &now);
    }
    /* Every address came over one of these connections. */
    for (uint64_t c = 0; c < NCONN; c++)
        namesrv_conn_closed(ns, c);
    if (namesrv_broker_count(ns) != 0 || namesrv_topic_count(ns) != 0)
        abort();
    (void)namesrv_expire(ns, now + 1000000000LL);
    namesrv_destroy(ns);
    return 0;
}
