/*
 * t_client.c - unit tests for the client library (src/client): messages,
 * decoding of stored-format messages, ids, queue allocation, option
 * checking, and connections against a scripted server.
 *
 * The scripted server is a net_loop on its own thread. It answers each
 * request by its code:
 *   1000  reply at once (same opaque, code 0, remark "echo")
 *   1001  never reply
 *   1002  close the connection
 *   1003  reply, then send the client a request of code 40
 * so every byte crosses a real loopback connection.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "client/conn.h"
#include "client/internal.h"
#include "common/clock.h"
#include "common/crc.h"
#include "common/errors.h"
#include "common/log.h"
#include "net/loop.h"
#include "proto/reply.h"
#include "sprocket.h"
#include "store/record.h"

/* ----- messages --------------------------------------------------------- */
Test(client, message_properties)
{
    spk_message *m = spk_message_create("T", "body", 4);
    const char *n, *v;
    size_t len;

    cr_assert_not_null(m);
    cr_assert_eq(spk_message_set_tags(m, "TagA"), 0);
    cr_assert_eq(spk_message_set_keys(m, "k1 k2"), 0);
    cr_assert_eq(spk_message_set_property(m, "color", "red"), 0);
    cr_assert_eq(spk_message_set_property(m, "color", "blue"), 0); /* replaces */
    cr_assert_eq(spk_message_set_property(m, "bad\001name", "x"), -EINVAL);
    cr_assert_eq(spk_message_set_property(m, "name", "bad\002value"), -EINVAL);
    cr_assert_eq(spk_message_set_property(m, "", "x"), -EINVAL);
    cr_assert_eq(spk_message_set_delay_level(m, 19), -EINVAL);
    cr_assert_eq(spk_message_set_delay_level(m, -1), -EINVAL);
    cr_assert_eq(spk_message_set_delay_level(m, 3), 0);
    cr_assert_eq(spk_message_delay_level(m), 3);
    cr_assert_str_eq(spk_message_tags(m), "TagA");
    cr_assert_str_eq(spk_message_keys(m), "k1 k2");
    cr_assert_str_eq(spk_message_property(m, "color"), "blue");
    cr_assert_eq(spk_message_property_at(m, 0, &n, &v), 1);
    cr_assert_str_eq(n, "TAGS");
    cr_assert_eq(spk_message_property_at(m, 4, &n, &v), 0);
    cr_assert_eq(spk_message_set_property(m, "color", ""), 0); /* empty removes */
    cr_assert_null(spk_message_property(m, "color"));
    cr_assert_eq(memcmp(spk_message_body(m, &len), "body", 4), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(spk_message_set_topic(m, ""), -EINVAL);
    spk_message_destroy(m);
}

Test(client, properties_encode_with_trailing_separator)
{
    spk_message *m = spk_message_create("T", NULL, 0);
    struct sbuf sb = SBUF_INIT;

    spk_message_set_property(m, "a", "1");
    spk_message_set_property(m, "b", "2");
    cr_assert_eq(cl_props_encode(m, &sb), 0);
    cr_assert_eq(sb.len, 8);
    cr_assert_eq(memcmp(sb.p, "a\0011\002b\0012\002", 8), 0);
    sb_free(&sb);
    spk_message_destroy(m);
}

/* One stored record of <m> at <phys>, as a broker would return it. */
static size_t
record(uint8_t *dst, size_t cap, const char *topic, const void *body, size_t blen, int32_t sysflag,
       const char *props, uint64_t qoff, uint64_t phys)
{
    struct rec_msg m;
    size_t len;

    memset(&m, 0, sizeof(m));
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.queue_id = 2;
    m.flag = 7;
    m.body = body;
    m.body_len = blen;
    m.props = props;
    m.props_len = strlen(props);
    m.sysflag = sysflag;
    m.born_ts = 1000;
    m.born_host[0] = 127;
    m.born_host[3] = 1;
    m.born_host_len = 4;
    m.born_port = 5555;
    m.store_host[0] = 10;
    m.store_host[3] = 9;
    m.store_host_len = 4;
    m.store_port = 10911;
    m.reconsume_times = 1;
    len = rec_length(&m, 1);
    cr_assert(len <= cap);
    rec_encode(dst, len, &m, spk_crc32_masked(body, blen), qoff, phys, 2000, 1);
    return len;
}

Test(client, decode_pulled_messages)
{
    static uint8_t buf[8192];
    uint8_t big[3000], z[4096];
    uLongf zlen = sizeof(z);
    spk_message **msgs = NULL;
    size_t n = 0, cap = 0, len, blen;
    const void *b;

    memset(big, 'x', sizeof(big));
    cr_assert_eq(compress2(z, &zlen, big, sizeof(big), 5), Z_OK);
    len = record(buf, sizeof(buf), "TopicA", "hello", 5, 0,
                 "TAGS\001TagA\002KEYS\001k1\002UNIQ_KEY\001ABC\002", 5, 0);
    len += record(buf + len, sizeof(buf) - len, "TopicA", z, zlen, CL_SYS_COMPRESSED,
                  "TAGS\001TagB\002", 6, len);
    cr_assert_eq(cl_decode_messages(buf, len, "broker-a", &msgs, &n, &cap), 2);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(spk_message_topic(msgs[0]), "TopicA");
    cr_assert_str_eq(spk_message_tags(msgs[0]), "TagA");
    cr_assert_str_eq(spk_message_keys(msgs[0]), "k1");
    cr_assert_str_eq(spk_message_id(msgs[0]), "ABC");
    cr_assert_null(spk_message_property(msgs[0], "__CRC32#"));
    cr_assert_eq(spk_message_queue_id(msgs[0]), 2);
    cr_assert_eq(spk_message_queue_offset(msgs[0]), 5);
    cr_assert_eq(spk_message_commitlog_offset(msgs[0]), 0);
    cr_assert_eq(spk_message_store_timestamp(msgs[0]), 2000);
    cr_assert_eq(spk_message_reconsume_times(msgs[0]), 1);
    cr_assert_eq(spk_message_flag(msgs[0]), 7);
    cr_assert_str_eq(spk_message_broker(msgs[0]), "broker-a");
    cr_assert_str_eq(spk_message_offset_id(msgs[0]), "0A00000900002A9F0000000000000000");
    b = spk_message_body(msgs[1], &blen); /* inflated */
    cr_assert_eq(blen, sizeof(big));
    cr_assert_eq(memcmp(b, big, blen), 0);
    /* no UNIQ_KEY: the id is the offset id */
    cr_assert_str_eq(spk_message_id(msgs[1]), spk_message_offset_id(msgs[1]));
    spk_messages_free(msgs, n);
}

Test(client, decode_rejects_damage)
{
    static uint8_t buf[4096];
    spk_message **msgs = NULL;
    size_t n = 0, cap = 0, len;

    len = record(buf, sizeof(buf), "T", "hello", 5, 0, "", 0, 0);
    buf[len - 25] ^= 0x40; /* inside the body or topic: a CRC no longer matches */
    cr_assert_eq(cl_decode_messages(buf, len, NULL, &msgs, &n, &cap), SPK_ECORRUPT);
    buf[len - 25] ^= 0x40;
    cr_assert_eq(cl_decode_messages(buf, len - 1, NULL, &msgs, &n, &cap), SPK_ECORRUPT);
    /* a "compressed" body that is not zlib */
    len = record(buf, sizeof(buf), "T", "notzlib", 7, CL_SYS_COMPRESSED, "", 0, 0);
    cr_assert_eq(cl_decode_messages(buf, len, NULL, &msgs, &n, &cap), SPK_ECORRUPT);
    cr_assert_eq(n, 0);
    free(msgs);
}

Test(client, uniq_ids_are_unique_hex)
{
    static char ids[5000][33];
    int i, j;

    for (i = 0; i < 5000; i++) {
        cl_uniq_id(ids[i]);
        cr_assert_eq(strlen(ids[i]), 32);
        for (j = 0; j < 32; j++)
            cr_assert(strchr("0123456789ABCDEF", ids[i][j]) != NULL);
    }
    for (i = 1; i < 5000; i++)
        cr_assert_str_neq(ids[i], ids[i - 1]);
}

Test(client, java_hash_of_tags)
{
    cr_assert_eq(cl_java_hash("TagA"), 2598919);
    cr_assert_eq(cl_java_hash("TagB"), 2598920);
    cr_assert_eq(cl_java_hash(""), 0);
}

Test(client, average_allocation_covers_every_queue_once)
{
    size_t nq, nc, i, q;

    for (nq = 1; nq <= 17; nq++) {
        for (nc = 1; nc <= 6; nc++) {
            int seen[17] = {0};

            for (i = 0; i < nc; i++) {
                size_t start, count;

                cl_allocate(nq, nc, i, &start, &count);
                for (q = start; q < start + count; q++) {
                    cr_assert(q < nq);
                    seen[q]++;
                }
            }
            for (q = 0; q < nq; q++)
                cr_assert_eq(seen[q], 1, "nq %zu nc %zu queue %zu seen %d", nq, nc, q, seen[q]);
        }
    }
}

Test(client, select_by_key_is_stable_and_in_range)
{
    int a = spk_select_by_key(8, NULL, "order-17"), b = spk_select_by_key(8, NULL, "order-17");
    int i, hits[8] = {0};

    cr_assert_eq(a, b);
    for (i = 0; i < 800; i++) {
        char k[32];
        int q;

        snprintf(k, sizeof(k), "key-%d", i);
        q = spk_select_by_key(8, NULL, k);
        cr_assert(q >= 0 && q < 8);
        hits[q]++;
    }
    for (i = 0; i < 8; i++)
        cr_assert(hits[i] > 40, "queue %d got %d of 800 keys", i, hits[i]);
}

Test(client, strerror_names_client_codes)
{
    cr_assert_str_neq(spk_strerror(SPK_ENOROUTE), "unknown error");
    cr_assert_str_neq(spk_strerror(SPK_EBROKER), "unknown error");
    cr_assert_str_neq(spk_strerror(SPK_ESTATE), "unknown error");
    cr_assert_str_neq(spk_strerror(-ETIMEDOUT), "unknown error");
}

/* ----- options and states ----------------------------------------------- */
Test(client, producer_options_and_states)
{
    spk_producer *p = NULL;
    spk_message *m = spk_message_create("T", "x", 1);

    cr_assert_eq(spk_producer_create("", &p), -EINVAL);
    cr_assert_eq(spk_producer_create("G", &p), 0);
    cr_assert_eq(spk_producer_set_option(p, "noSuchOption", "1"), -EINVAL);
    cr_assert_eq(spk_producer_set_option(p, "sendMsgTimeout", "soon"), -EINVAL);
    cr_assert_eq(spk_producer_set_option(p, "sendMsgTimeout", "0"), -EINVAL);
    cr_assert_eq(spk_producer_set_option(p, "retryTimesWhenSendFailed", "3"), 0);
    cr_assert_eq(spk_producer_send(p, m, NULL), SPK_ESTATE);
    cr_assert_eq(spk_producer_start(p), SPK_ECONFIG); /* no namesrvAddr */
    cr_assert_eq(spk_producer_send_transaction(p, m, NULL, NULL, NULL, NULL), SPK_ESTATE);
    spk_producer_destroy(p);
    spk_message_destroy(m);
}

Test(client, producer_without_name_server_fails_in_time)
{
    spk_producer *p = NULL;
    spk_message *m = spk_message_create("T", "x", 1);
    int64_t t0;
    int rc;

    spk_log_init('T', SPK_LOG_ERROR, 2);
    cr_assert_eq(spk_producer_create("G", &p), 0);
    cr_assert_eq(spk_producer_set_option(p, "namesrvAddr", "127.0.0.1:1"), 0);
    cr_assert_eq(spk_producer_set_option(p, "sendMsgTimeout", "1000"), 0);
    cr_assert_eq(spk_producer_start(p), 0);
    cr_assert_eq(spk_producer_start(p), SPK_ESTATE);
    t0 = spk_mono_ms();
    rc = spk_producer_send(p, m, NULL);
    cr_assert(rc == -ECONNREFUSED || rc == SPK_ENOROUTE, "rc %d %s", rc, spk_strerror(rc));
    cr_assert(spk_mono_ms() - t0 < 10000);
    spk_producer_destroy(p);
    spk_message_destroy(m);
}

Test(client, consumer_options_and_states)
{
    spk_consumer *c = NULL;
    spk_message **msgs;
    size_t n;

    cr_assert_eq(spk_push_consumer_create("G", &c), 0);
    cr_assert_eq(spk_consumer_set_option(c, "messageModel", "SOMETIMES"), -EINVAL);
    cr_assert_eq(spk_consumer_set_option(c, "consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET"), 0);
    cr_assert_eq(spk_consumer_set_option(c, "consumeTimestamp", "2026-01-01"), -EINVAL);
    cr_assert_eq(spk_consumer_set_option(c, "consumeTimestamp", "20260101120000"), 0);
    cr_assert_eq(spk_consumer_subscribe(c, "T", "||"), -EINVAL);
    cr_assert_eq(spk_consumer_filter_property(c, "T", "a", "b"), SPK_ENOTFOUND);
    cr_assert_eq(spk_consumer_subscribe(c, "T", "TagA || TagB"), 0);
    cr_assert_eq(spk_consumer_filter_property(c, "T", "a", "b"), 0);
    cr_assert_eq(spk_consumer_set_option(c, "namesrvAddr", "127.0.0.1:1"), 0);
    cr_assert_eq(spk_consumer_start(c), SPK_ECONFIG); /* no listener */
    cr_assert_eq(spk_consumer_poll(c, 0, 1, &msgs, &n), -EINVAL); /* not a lite consumer */
    spk_consumer_destroy(c);
}

/* ----- connections against a scripted server --------------------------- */
struct server {
    struct net_loop *loop;
    pthread_t th;
    int port;
};

static void
srv_frame(void *ud, struct net_conn *c, const uint8_t *frame, size_t len)
{
    struct proto_cmd cmd;
    struct proto_reply r;
    uint8_t *out;
    size_t olen;

    (void)ud;
    if (proto_decode(frame, len, &cmd) != 0) {
        net_conn_close(c);
        return;
    }
    if (cmd.code == 1002) {
        net_conn_close(c);
    } else if (cmd.code != 1001) {
        proto_reply_init(&r, 0);
        proto_reply_remark(&r, "echo");
        if (proto_reply_encode(&cmd, &r, 0, &out, &olen) == 0)
            net_conn_send(c, out, olen);
        proto_reply_free(&r);
        if (cmd.code == 1003) {
            proto_reply_init(&r, 40);
            proto_reply_ext(&r, "consumerGroup", "G");
            if (proto_request_encode(&r, 777, 1, &out, &olen) == 0)
                net_conn_send(c, out, olen);
            proto_reply_free(&r);
        }
    }
    proto_cmd_free(&cmd);
}

static void
srv_close(void *ud, struct net_conn *c)
{
    (void)ud;
    (void)c;
}

static void *
srv_main(void *arg)
{
    struct server *s = arg;

    net_loop_run(s->loop);
    return NULL;
}

static void
srv_start(struct server *s)
{
    static const struct net_handler h = {srv_frame, srv_close};
    char err[128];
    int port;

    cr_assert_eq(net_loop_create(&s->loop), 0);
    for (port = 31000 + (getpid() % 2000);; port++) {
        if (net_listen(s->loop, "127.0.0.1", port, &h, s, err, sizeof(err)) == 0)
            break;
        cr_assert(port < 40000);
    }
    s->port = port;
    cr_assert_eq(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void
srv_stop(struct server *s)
{
    net_loop_stop(s->loop);
    pthread_join(s->th, NULL);
    net_loop_destroy(s->loop);
}

static struct cl_conn *
connect_to(struct server *s, cl_request_fn on_req, void *owner)
{
    struct cl_conn *c = NULL;
    char addr[64];

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
    cr_assert_eq(cl_conn_open(addr, 3000, on_req, owner, &c), 0);
    return c;
}

static int
call_code(struct cl_conn *c, int code, int timeout_ms)
{
    struct proto_reply req;
    struct proto_cmd cmd;
    uint8_t *frame = NULL;
    int rc;

    proto_reply_init(&req, code);
    rc = cl_conn_call(c, &req, timeout_ms, &cmd, &frame);
    proto_reply_free(&req);
    if (rc == 0) {
        cr_assert_str_eq(cmd.remark, "echo");
        proto_cmd_free(&cmd);
        free(frame);
    }
    return rc;
}

Test(client, conn_call_and_timeout)
{
    struct server s;
    struct cl_conn *c;
    int64_t t0;

    srv_start(&s);
    c = connect_to(&s, NULL, NULL);
    cr_assert_eq(call_code(c, 1000, 3000), 0);
    t0 = spk_mono_ms();
    cr_assert_eq(call_code(c, 1001, 300), -ETIMEDOUT);
    cr_assert(spk_mono_ms() - t0 >= 250);
    cr_assert_eq(call_code(c, 1000, 3000), 0); /* the connection is still good */
    cr_assert_eq(cl_conn_inflight(c), 0);
    cl_conn_free(c);
    srv_stop(&s);
}

struct async_box {
    pthread_mutex_t lock;
    int calls;
    int err;
    int deadlk;
    struct cl_conn *c;
};

static void
async_cb(void *ud, int err, const struct proto_cmd *cmd, const uint8_t *frame, size_t len)
{
    struct async_box *b = ud;

    (void)cmd;
    (void)frame;
    (void)len;
    pthread_mutex_lock(&b->lock);
    b->calls++;
    b->err = err;
    pthread_mutex_unlock(&b->lock);
    if (b->c && err == 0) /* a blocking call from the reader must not hang */
        b->deadlk = call_code(b->c, 1000, 1000);
}

static int
box_calls(struct async_box *b)
{
    int n;

    pthread_mutex_lock(&b->lock);
    n = b->calls;
    pthread_mutex_unlock(&b->lock);
    return n;
}

static void
wait_calls(struct async_box *b, int n)
{
    int64_t until = spk_mono_ms() + 10000;

    while (box_calls(b) < n && spk_mono_ms() < until)
        usleep(2000);
}

Test(client, conn_async_reply_expiry_and_reader_deadlock)
{
    struct async_box b = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL};
    struct proto_reply req;
    struct server s;
    struct cl_conn *c;

    srv_start(&s);
    c = connect_to(&s, NULL, NULL);
    b.c = c;
    proto_reply_init(&req, 1000);
    cr_assert_eq(cl_conn_call_async(c, &req, 3000, async_cb, &b), 0);
    proto_reply_free(&req);
    wait_calls(&b, 1);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.err, 0);
    cr_assert_eq(b.deadlk, -EDEADLK);
    /* no reply: expired exactly once */
    b.c = NULL;
    proto_reply_init(&req, 1001);
    cr_assert_eq(cl_conn_call_async(c, &req, 100, async_cb, &b), 0);
    proto_reply_free(&req);
    usleep(150000);
    cl_conn_expire(c, spk_mono_ms());
    cl_conn_expire(c, spk_mono_ms());
    cr_assert_eq(box_calls(&b), 2);
    cr_assert_eq(b.err, -ETIMEDOUT);
    cl_conn_free(c);
    srv_stop(&s);
}

Test(client, conn_death_fails_everything_once)
{
    struct async_box b = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL};
    struct proto_reply req;
    struct server s;
    struct cl_conn *c;
    int i;

    srv_start(&s);
    c = connect_to(&s, NULL, NULL);
    for (i = 0; i < 5; i++) {
        proto_reply_init(&req, 1001);
        cr_assert_eq(cl_conn_call_async(c, &req, 30000, async_cb, &b), 0);
        proto_reply_free(&req);
    }
    cr_assert_eq(call_code(c, 1002, 3000), -ECONNRESET); /* the server hangs up */
    wait_calls(&b, 5);
    cr_assert_eq(box_calls(&b), 5);
    cr_assert_eq(b.err, -ECONNRESET);
    cr_assert(cl_conn_dead(c));
    cr_assert_eq(call_code(c, 1000, 1000), -ECONNRESET); /* dead stays dead */
    cl_conn_free(c);
    cr_assert_eq(box_calls(&b), 5);
    srv_stop(&s);
}

static int server_requests;

static void
on_req(void *owner, struct cl_conn *c, const struct proto_cmd *cmd, const uint8_t *frame,
       size_t len)
{
    (void)owner;
    (void)c;
    (void)frame;
    (void)len;
    if (cmd->code == 40 && strcmp(proto_ext_get(cmd, "consumerGroup"), "G") == 0)
        __atomic_add_fetch(&server_requests, 1, __ATOMIC_SEQ_CST);
}

Test(client, conn_delivers_server_requests)
{
    struct server s;
    struct cl_conn *c;
    int64_t until;

    srv_start(&s);
    c = connect_to(&s, on_req, NULL);
    cr_assert_eq(call_code(c, 1003, 3000), 0);
    until = spk_mono_ms() + 5000;
    while (__atomic_load_n(&server_requests, __ATOMIC_SEQ_CST) < 1 && spk_mono_ms() < until)
        usleep(1000);
    cr_assert_eq(__atomic_load_n(&server_requests, __ATOMIC_SEQ_CST), 1);
    cl_conn_free(c);
    srv_stop(&s);
}

Test(client, conn_refused_and_bad_address)
{
    struct cl_conn *c = NULL;

    cr_assert_eq(cl_conn_open("127.0.0.1", 1000, NULL, NULL, &c), -EINVAL);
    cr_assert_eq(cl_conn_open("nohost:1", 1000, NULL, NULL, &c), -EINVAL);
    cr_assert_eq(cl_conn_open("127.0.0.1:1", 1000, NULL, NULL, &c), -ECONNREFUSED);
}
