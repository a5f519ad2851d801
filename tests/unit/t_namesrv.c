/*
 * t_namesrv.c - unit tests for src/namesrv/namesrv.c.
 *
 * Requests are built as a decoder would leave them (struct proto_cmd with
 * extFields views and a body), bodies copied into exact-size heap buffers
 * so that the sanitizers catch a read past the end. Expected JSON is typed
 * in byte for byte from PROTOCOL.md 3.8, not produced by the code under
 * test. Request and response codes are spelled out here as numbers for
 * the same reason.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "namesrv/namesrv.h"
#include "proto/remoting.h"
#include "proto/reply.h"

enum {
    PUT_KV_CONFIG = 100,
    GET_KV_CONFIG = 101,
    DELETE_KV_CONFIG = 102,
    REGISTER_BROKER = 103,
    UNREGISTER_BROKER = 104,
    GET_ROUTEINFO_BY_TOPIC = 105,
    GET_BROKER_CLUSTER_INFO = 106,
    WIPE_WRITE_PERM_OF_BROKER = 205,
    GET_ALL_TOPIC_LIST = 206,
    DELETE_TOPIC_IN_NAMESRV = 216,
    GET_KVLIST_BY_NAMESPACE = 219,
    GET_TOPICS_BY_CLUSTER = 224,
    QUERY_DATA_VERSION = 322,
    ADD_WRITE_PERM_OF_BROKER = 327,
    BROKER_HEARTBEAT = 904,
};

enum {
    SUCCESS = 0,
    SYSTEM_ERROR = 1,
    NOT_SUPPORTED = 3,
    TOPIC_NOT_EXIST = 17,
    QUERY_NOT_FOUND = 22
};

#define T0 1700000000000LL /* the wall clock of most tests */
#define ADDR_A0 "127.0.0.1:10911"
#define ADDR_A1 "127.0.0.2:10911"
#define ADDR_B0 "127.0.0.3:10911"

static int devnull = -1;

/* Log lines are formatted (so the sanitizers see that code) but go nowhere. */
static void
setup(void)
{
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert(devnull >= 0);
    spk_log_init('N', SPK_LOG_DEBUG, devnull);
}

static void
teardown(void)
{
    close(devnull);
}

TestSuite(namesrv, .init = setup, .fini = teardown, .timeout = 60);

/* A request with its extFields and an exact-size heap copy of its body. */
struct req {
    struct proto_cmd cmd;
    struct proto_ext ext[16];
    uint8_t *body;
};

static void
req_vbuild(struct req *r, int32_t code, int32_t version, const char *body, va_list ap)
{
    const char *k;

    memset(r, 0, sizeof(*r));
    r->cmd.code = code;
    r->cmd.version = version;
    r->cmd.language = PROTO_LANG_JAVA;
    r->cmd.ext = r->ext;
    r->cmd.ext_present = 1;
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);

        cr_assert(r->cmd.next < 16);
        r->ext[r->cmd.next++] = (struct proto_ext){k, strlen(k), v, strlen(v)};
    }
    if (body != NULL && body[0] != '\0') {
        size_t n = strlen(body);

        r->body = malloc(n);
        cr_assert_not_null(r->body);
        memcpy(r->body, body, n);
        r->cmd.body = r->body;
        r->cmd.body_len = n;
    }
}

/* Fills <r>: code, version, body (NULL: none), then key, value pairs up to a NULL key. */
static void
req_build(struct req *r, int32_t code, int32_t version, const char *body, ...)
{
    va_list ap;

    va_start(ap, body);
    req_vbuild(r, code, version, body, ap);
    va_end(ap);
}

static void
req_free(struct req *r)
{
    free(r->body);
}

/* Runs <r> through <ns> and returns the reply, which the caller frees. */
static struct proto_reply
call(struct namesrv *ns, struct req *r, uint64_t conn, int64_t now)
{
    struct proto_reply rep;

    proto_reply_init(&rep, 0);
    namesrv_handle(ns, &r->cmd, conn, now, &rep);
    cr_assert_eq(rep.err, 0);
    return rep;
}

/* The reply's extFields value for <key> as a C string, or NULL. */
static const char *
rep_ext(const struct proto_reply *rep, const char *key)
{
    return proto_reply_ext_get(rep, key);
}

static void
assert_body(const struct proto_reply *rep, const char *want)
{
    cr_assert_not_null(rep->body, "no body, want %s", want);
    cr_assert(rep->body_len == strlen(want) && memcmp(rep->body, want, rep->body_len) == 0,
              "body\n  got  %.*s\n  want %s", (int)rep->body_len, (const char *)rep->body, want);
}

struct tcfg {
    const char *name;
    int read_n, write_n, perm;
};

/* A RegisterBrokerBody as a 5.x Java broker writes it. Returned string is malloc'd. */
static char *
mk_body(long counter, long long ts, const struct tcfg *t, size_t n)
{
    struct sbuf sb = SBUF_INIT;
    char *p;

    sb_printf(&sb,
              "{\"filterServerList\":[],\"topicConfigSerializeWrapper\":{\"dataVersion\":"
              "{\"counter\":%ld,\"stateVersion\":0,\"timestamp\":%lld},\"topicConfigTable\":{",
              counter, ts);
    for (size_t i = 0; i < n; i++)
        sb_printf(&sb,
                  "%s\"%s\":{\"attributes\":{},\"order\":false,\"perm\":%d,\"readQueueNums\":%d,"
                  "\"topicFilterType\":\"SINGLE_TAG\",\"topicName\":\"%s\",\"topicSysFlag\":0,"
                  "\"writeQueueNums\":%d}",
                  i ? "," : "", t[i].name, t[i].perm, t[i].read_n, t[i].name, t[i].write_n);
    sb_puts(&sb, "}}}");
    p = sb_detach(&sb, NULL);
    cr_assert_not_null(p);
    return p;
}

/* Registers broker <name> id <id> at <addr> with <body>; returns the reply code. */
static int32_t
reg_full(struct namesrv *ns, const char *cluster, const char *name, const char *addr,
         const char *id, const char *body, uint64_t conn, int64_t now, struct proto_reply *out)
{
    struct req r;
    struct proto_reply rep;
    int32_t code;

    req_build(&r, REGISTER_BROKER, 479, body, "brokerName", name, "brokerAddr", addr, "clusterName",
              cluster, "haServerAddr", "ha-of-", "brokerId", id, "bodyCrc32", "0", "compressed",
              "false", NULL);
    rep = call(ns, &r, conn, now);
    code = rep.code;
    if (out != NULL)
        *out = rep;
    else
        proto_reply_free(&rep);
    req_free(&r);
    return code;
}

static int32_t
reg(struct namesrv *ns, const char *name, const char *addr, const char *id, const char *body,
    uint64_t conn, int64_t now)
{
    return reg_full(ns, "DefaultCluster", name, addr, id, body, conn, now, NULL);
}

/* Asks for the route of <topic>; the caller frees the reply. */
static struct proto_reply
route(struct namesrv *ns, const char *topic, int32_t version, int64_t now)
{
    struct req r;
    struct proto_reply rep;

    req_build(&r, GET_ROUTEINFO_BY_TOPIC, version, NULL, "topic", topic, NULL);
    rep = call(ns, &r, 99, now);
    req_free(&r);
    return rep;
}

/* Runs request <code> with extFields key, value, ..., NULL; the caller frees the reply. */
static struct proto_reply
simple(struct namesrv *ns, int32_t code, ...)
{
    struct proto_reply rep;
    struct req r;
    va_list ap;

    va_start(ap, code);
    req_vbuild(&r, code, 479, NULL, ap);
    va_end(ap);
    rep = call(ns, &r, 99, T0);
    req_free(&r);
    return rep;
}

static const struct tcfg two_topics[] = {{"TopicA", 4, 4, 6}, {"TopicB", 8, 8, 6}};

static struct namesrv *
ns_new(void)
{
    struct namesrv *ns = NULL;

    cr_assert_eq(namesrv_create(&ns), 0);
    cr_assert_not_null(ns);
    return ns;
}

/* The master of broker-a with TopicA (4/4) and TopicB (8/8), DataVersion 1. */
static struct namesrv *
ns_with_master(void)
{
    struct namesrv *ns = ns_new();
    char *body = mk_body(1, T0, two_topics, 2);

    cr_assert_eq(reg(ns, "broker-a", ADDR_A0, "0", body, 1, T0), SUCCESS);
    free(body);
    return ns;
}

Test(namesrv, route_legacy_form_has_bare_integer_keys)
{
    struct namesrv *ns = ns_with_master();
    struct proto_reply rep = route(ns, "TopicA", 121, T0);

    cr_assert_eq(rep.code, SUCCESS);
    assert_body(&rep, "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"127.0.0.1:10911\"},"
                      "\"brokerName\":\"broker-a\",\"cluster\":\"DefaultCluster\","
                      "\"enableActingMaster\":false}],\"filterServerTable\":{},"
                      "\"queueDatas\":[{\"brokerName\":\"broker-a\",\"perm\":6,"
                      "\"readQueueNums\":4,\"topicSysFlag\":0,\"writeQueueNums\":4}]}");
    proto_reply_free(&rep);
    cr_assert_eq(namesrv_broker_count(ns), 1);
    cr_assert_eq(namesrv_topic_count(ns), 2);
    namesrv_destroy(ns);
}

Test(namesrv, route_standard_form_from_401_or_on_request)
{
    struct namesrv *ns = ns_with_master();
    static const char want[] = "{\"brokerDatas\":[{\"brokerAddrs\":{\"0\":\"127.0.0.1:10911\"},"
                               "\"brokerName\":\"broker-a\",\"cluster\":\"DefaultCluster\","
                               "\"enableActingMaster\":false}],\"filterServerTable\":{},"
                               "\"queueDatas\":[{\"brokerName\":\"broker-a\",\"perm\":6,"
                               "\"readQueueNums\":8,\"topicSysFlag\":0,\"writeQueueNums\":8}]}";
    struct proto_reply rep = route(ns, "TopicB", 401, T0);
    struct req r;

    cr_assert_eq(rep.code, SUCCESS);
    assert_body(&rep, want);
    proto_reply_free(&rep);

    /* acceptStandardJsonOnly from an older client, case-insensitive like Boolean.parseBoolean. */
    req_build(&r, GET_ROUTEINFO_BY_TOPIC, 317, NULL, "topic", "TopicB", "acceptStandardJsonOnly",
              "TRUE", NULL);
    rep = call(ns, &r, 7, T0);
    req_free(&r);
    assert_body(&rep, want);
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, unknown_topic_is_17)
{
    struct namesrv *ns = ns_with_master();
    struct proto_reply rep = route(ns, "NoSuchTopic", 479, T0);

    cr_assert_eq(rep.code, TOPIC_NOT_EXIST);
    cr_assert_str_eq(rep.remark, "No topic route info in name server for the topic: NoSuchTopic");
    cr_assert_eq(rep.body_len, 0);
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, slave_gets_master_address_and_is_routed)
{
    struct namesrv *ns = ns_with_master();
    char *slave_body = mk_body(1, T0, (const struct tcfg[]){{"SlaveOnly", 2, 2, 6}}, 1);
    struct proto_reply rep;

    /* A master's reply has extFields but no master address. */
    cr_assert_eq(reg_full(ns, "DefaultCluster", "broker-a", ADDR_A0, "0", NULL, 1, T0, &rep),
                 SUCCESS);
    cr_assert(rep.ext_present);
    cr_assert_null(rep_ext(&rep, "masterAddr"));
    proto_reply_free(&rep);

    cr_assert_eq(reg_full(ns, "DefaultCluster", "broker-a", ADDR_A1, "1", slave_body, 2, T0, &rep),
                 SUCCESS);
    cr_assert_str_eq(rep_ext(&rep, "masterAddr"), ADDR_A0);
    cr_assert_str_eq(rep_ext(&rep, "haServerAddr"), "ha-of-");
    proto_reply_free(&rep);
    free(slave_body);

    cr_assert_eq(namesrv_broker_count(ns), 2);
    /* Only masters carry queue data. */
    cr_assert_eq(namesrv_topic_count(ns), 2);
    rep = route(ns, "SlaveOnly", 479, T0);
    cr_assert_eq(rep.code, TOPIC_NOT_EXIST);
    proto_reply_free(&rep);

    rep = route(ns, "TopicA", 121, T0);
    assert_body(&rep, "{\"brokerDatas\":[{\"brokerAddrs\":{0:\"127.0.0.1:10911\","
                      "1:\"127.0.0.2:10911\"},\"brokerName\":\"broker-a\","
                      "\"cluster\":\"DefaultCluster\",\"enableActingMaster\":false}],"
                      "\"filterServerTable\":{},\"queueDatas\":[{\"brokerName\":\"broker-a\","
                      "\"perm\":6,\"readQueueNums\":4,\"topicSysFlag\":0,\"writeQueueNums\":4}]}");
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, same_data_version_does_not_reapply_queue_counts)
{
    struct namesrv *ns = ns_with_master();
    static const struct tcfg more[] = {{"TopicA", 16, 16, 6}, {"TopicB", 8, 8, 6}};
    char *same = mk_body(1, T0, more, 2);
    char *next = mk_body(2, T0 + 5, more, 2);
    struct proto_reply rep;

    cr_assert_eq(reg(ns, "broker-a", ADDR_A0, "0", same, 1, T0 + 30000), SUCCESS);
    rep = route(ns, "TopicA", 479, T0 + 30000);
    cr_assert(strstr((const char *)rep.body, "\"readQueueNums\":4,") != NULL);
    proto_reply_free(&rep);

    cr_assert_eq(reg(ns, "broker-a", ADDR_A0, "0", next, 1, T0 + 60000), SUCCESS);
    rep = route(ns, "TopicA", 479, T0 + 60000);
    cr_assert(strstr((const char *)rep.body, "\"readQueueNums\":16,") != NULL);
    cr_assert(strstr((const char *)rep.body, "\"writeQueueNums\":16}") != NULL);
    proto_reply_free(&rep);
    free(same);
    free(next);
    namesrv_destroy(ns);
}

Test(namesrv, new_topic_applies_under_the_same_data_version)
{
    struct namesrv *ns = ns_with_master();
    static const struct tcfg three[] = {
        {"TopicA", 4, 4, 6}, {"TopicB", 8, 8, 6}, {"TopicC", 1, 1, 6}};
    char *body = mk_body(1, T0, three, 3);
    struct proto_reply rep;

    cr_assert_eq(reg(ns, "broker-a", ADDR_A0, "0", body, 1, T0 + 1000), SUCCESS);
    rep = route(ns, "TopicC", 479, T0 + 1000);
    cr_assert_eq(rep.code, SUCCESS);
    cr_assert(strstr((const char *)rep.body, "\"readQueueNums\":1,") != NULL);
    proto_reply_free(&rep);
    free(body);
    namesrv_destroy(ns);
}

Test(namesrv, unregister_removes_address_then_broker_and_topics)
{
    struct namesrv *ns = ns_with_master();
    struct proto_reply rep;

    cr_assert_eq(reg(ns, "broker-a", ADDR_A1, "1", NULL, 2, T0), SUCCESS);
    rep = simple(ns, UNREGISTER_BROKER, "brokerName", "broker-a", "brokerAddr", ADDR_A1,
                 "clusterName", "DefaultCluster", "brokerId", "1", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    cr_assert_eq(namesrv_broker_count(ns), 1);
    rep = route(ns, "TopicA", 121, T0);
    cr_assert(strstr((const char *)rep.body, "{0:\"127.0.0.1:10911\"}") != NULL);
    proto_reply_free(&rep);

    rep = simple(ns, UNREGISTER_BROKER, "brokerName", "broker-a", "brokerAddr", ADDR_A0,
                 "clusterName", "DefaultCluster", "brokerId", "0", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    cr_assert_eq(namesrv_broker_count(ns), 0);
    cr_assert_eq(namesrv_topic_count(ns), 0);
    rep = route(ns, "TopicA", 479, T0);
    cr_assert_eq(rep.code, TOPIC_NOT_EXIST);
    proto_reply_free(&rep);
    rep = simple(ns, GET_BROKER_CLUSTER_INFO, NULL);
    assert_body(&rep, "{\"brokerAddrTable\":{},\"clusterAddrTable\":{}}");
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, connection_close_removes_its_brokers_only)
{
    struct namesrv *ns = ns_with_master(); /* master on connection 1 */
    struct proto_reply rep;

    cr_assert_eq(reg(ns, "broker-a", ADDR_A1, "1", NULL, 2, T0), SUCCESS);
    namesrv_conn_closed(ns, 3); /* a client connection: nothing */
    cr_assert_eq(namesrv_broker_count(ns), 2);
    namesrv_conn_closed(ns, 1);
    cr_assert_eq(namesrv_broker_count(ns), 1);
    /* The slave keeps broker-a and its queue data alive (consumers read from it). */
    rep = route(ns, "TopicA", 121, T0);
    cr_assert_eq(rep.code, SUCCESS);
    cr_assert(strstr((const char *)rep.body, "{1:\"127.0.0.2:10911\"}") != NULL);
    proto_reply_free(&rep);
    namesrv_conn_closed(ns, 2);
    cr_assert_eq(namesrv_broker_count(ns), 0);
    cr_assert_eq(namesrv_topic_count(ns), 0);
    namesrv_destroy(ns);
}

Test(namesrv, expiry_after_timeout_and_not_before)
{
    struct namesrv *ns = ns_with_master();
    struct proto_reply rep;

    cr_assert_eq(namesrv_expire(ns, T0 + 120000), 0);
    rep = route(ns, "TopicA", 479, T0 + 120000);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    /* Past the timeout a route no longer lists it, even before the sweep. */
    rep = route(ns, "TopicA", 479, T0 + 120001);
    cr_assert_eq(rep.code, TOPIC_NOT_EXIST);
    proto_reply_free(&rep);
    cr_assert_eq(namesrv_expire(ns, T0 + 120001), 1);
    cr_assert_eq(namesrv_broker_count(ns), 0);
    cr_assert_eq(namesrv_topic_count(ns), 0);
    namesrv_destroy(ns);
}

Test(namesrv, heartbeat_refreshes_and_custom_timeout_applies)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep;
    struct req r;

    req_build(&r, REGISTER_BROKER, 479, NULL, "brokerName", "broker-b", "brokerAddr", ADDR_B0,
              "clusterName", "C2", "haServerAddr", "127.0.0.3:10912", "brokerId", "0",
              "heartbeatTimeoutMillis", "5000", NULL);
    rep = call(ns, &r, 1, T0);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    req_free(&r);

    /* A heartbeat for another cluster's key does not count. */
    rep = simple(ns, BROKER_HEARTBEAT, "clusterName", "DefaultCluster", "brokerAddr", ADDR_B0,
                 "brokerName", "broker-b", NULL);
    proto_reply_free(&rep);
    req_build(&r, BROKER_HEARTBEAT, 479, NULL, "clusterName", "C2", "brokerAddr", ADDR_B0,
              "brokerName", "broker-b", NULL);
    rep = call(ns, &r, 1, T0 + 4000);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    req_free(&r);

    cr_assert_eq(namesrv_expire(ns, T0 + 9000), 0);
    cr_assert_eq(namesrv_expire(ns, T0 + 9001), 1);
    namesrv_destroy(ns);
}

Test(namesrv, cluster_info_groups_brokers_with_bare_keys)
{
    struct namesrv *ns = ns_with_master();
    struct proto_reply rep;

    cr_assert_eq(reg(ns, "broker-a", ADDR_A1, "1", NULL, 2, T0), SUCCESS);
    cr_assert_eq(reg_full(ns, "C2", "broker-b", ADDR_B0, "0", NULL, 3, T0, NULL), SUCCESS);
    rep = simple(ns, GET_BROKER_CLUSTER_INFO, NULL);
    cr_assert_eq(rep.code, SUCCESS);
    assert_body(
        &rep, "{\"brokerAddrTable\":{\"broker-a\":{\"brokerAddrs\":{0:\"127.0.0.1:10911\","
              "1:\"127.0.0.2:10911\"},\"brokerName\":\"broker-a\",\"cluster\":\"DefaultCluster\","
              "\"enableActingMaster\":false},\"broker-b\":{\"brokerAddrs\":{0:\"127.0.0.3:10911\"},"
              "\"brokerName\":\"broker-b\",\"cluster\":\"C2\",\"enableActingMaster\":false}},"
              "\"clusterAddrTable\":{\"C2\":[\"broker-b\"],\"DefaultCluster\":[\"broker-a\"]}}");
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, topic_lists_all_and_by_cluster)
{
    struct namesrv *ns = ns_with_master();
    char *body = mk_body(7, T0, (const struct tcfg[]){{"TopicZ", 1, 1, 6}, {"TopicA", 2, 2, 6}}, 2);
    struct proto_reply rep;

    cr_assert_eq(reg_full(ns, "C2", "broker-b", ADDR_B0, "0", body, 3, T0, NULL), SUCCESS);
    free(body);
    rep = simple(ns, GET_ALL_TOPIC_LIST, NULL);
    assert_body(&rep, "{\"topicList\":[\"TopicA\",\"TopicB\",\"TopicZ\"]}");
    proto_reply_free(&rep);
    rep = simple(ns, GET_TOPICS_BY_CLUSTER, "cluster", "C2", NULL);
    assert_body(&rep, "{\"topicList\":[\"TopicA\",\"TopicZ\"]}");
    proto_reply_free(&rep);
    rep = simple(ns, GET_TOPICS_BY_CLUSTER, "cluster", "Nowhere", NULL);
    assert_body(&rep, "{\"topicList\":[]}");
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, delete_topic_everywhere_or_in_one_cluster)
{
    struct namesrv *ns = ns_with_master();
    char *body = mk_body(7, T0, (const struct tcfg[]){{"TopicA", 2, 2, 6}}, 1);
    struct proto_reply rep;

    cr_assert_eq(reg_full(ns, "C2", "broker-b", ADDR_B0, "0", body, 3, T0, NULL), SUCCESS);
    free(body);
    rep = simple(ns, DELETE_TOPIC_IN_NAMESRV, "topic", "TopicA", "clusterName", "C2", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    rep = route(ns, "TopicA", 479, T0);
    cr_assert_eq(rep.code, SUCCESS);
    cr_assert_null(strstr((const char *)rep.body, "broker-b"));
    proto_reply_free(&rep);

    rep = simple(ns, DELETE_TOPIC_IN_NAMESRV, "topic", "TopicA", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    rep = route(ns, "TopicA", 479, T0);
    cr_assert_eq(rep.code, TOPIC_NOT_EXIST);
    proto_reply_free(&rep);
    cr_assert_eq(namesrv_topic_count(ns), 1);
    namesrv_destroy(ns);
}

Test(namesrv, kv_config_put_get_list_delete)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep;

    rep = simple(ns, GET_KV_CONFIG, "namespace", "ns1", "key", "k1", NULL);
    cr_assert_eq(rep.code, QUERY_NOT_FOUND);
    cr_assert_str_eq(rep.remark, "No config item, Namespace: ns1 Key: k1");
    proto_reply_free(&rep);

    rep = simple(ns, PUT_KV_CONFIG, "namespace", "ns1", "key", "k2", "value", "v2", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    rep = simple(ns, PUT_KV_CONFIG, "namespace", "ns1", "key", "k1", "value", "old", NULL);
    proto_reply_free(&rep);
    rep = simple(ns, PUT_KV_CONFIG, "namespace", "ns1", "key", "k1", "value", "v\"1", NULL);
    proto_reply_free(&rep);
    rep = simple(ns, PUT_KV_CONFIG, "namespace", "ns0", "key", "k", "value", "other", NULL);
    proto_reply_free(&rep);

    rep = simple(ns, GET_KV_CONFIG, "namespace", "ns1", "key", "k1", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    cr_assert_str_eq(rep_ext(&rep, "value"), "v\"1");
    proto_reply_free(&rep);
    rep = simple(ns, GET_KVLIST_BY_NAMESPACE, "namespace", "ns1", NULL);
    assert_body(&rep, "{\"table\":{\"k1\":\"v\\\"1\",\"k2\":\"v2\"}}");
    proto_reply_free(&rep);

    rep = simple(ns, DELETE_KV_CONFIG, "namespace", "ns1", "key", "k1", NULL);
    proto_reply_free(&rep);
    rep = simple(ns, DELETE_KV_CONFIG, "namespace", "ns1", "key", "k2", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    proto_reply_free(&rep);
    rep = simple(ns, GET_KVLIST_BY_NAMESPACE, "namespace", "ns1", NULL);
    cr_assert_eq(rep.code, QUERY_NOT_FOUND);
    proto_reply_free(&rep);
    rep = simple(ns, PUT_KV_CONFIG, "namespace", "ns1", "key", "k1", NULL);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    cr_assert(strstr(rep.remark, "value") != NULL);
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, order_topic_conf_is_the_register_reply_body)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep;

    rep = simple(ns, PUT_KV_CONFIG, "namespace", "ORDER_TOPIC_CONFIG", "key", "TopicO", "value",
                 "broker-a:4", NULL);
    proto_reply_free(&rep);
    cr_assert_eq(reg_full(ns, "DefaultCluster", "broker-a", ADDR_A0, "0", NULL, 1, T0, &rep),
                 SUCCESS);
    assert_body(&rep, "{\"table\":{\"TopicO\":\"broker-a:4\"}}");
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, body_crc32_is_checked)
{
    struct namesrv *ns = ns_new();
    char *body = mk_body(1, T0, two_topics, 2);
    char crc[32];
    struct proto_reply rep;
    struct req r;

    snprintf(crc, sizeof(crc), "%lu",
             crc32(0L, (const Bytef *)body, (uInt)strlen(body)) & 0x7FFFFFFFUL);
    req_build(&r, REGISTER_BROKER, 479, body, "brokerName", "broker-a", "brokerAddr", ADDR_A0,
              "clusterName", "DefaultCluster", "brokerId", "0", "bodyCrc32", "12345", NULL);
    rep = call(ns, &r, 1, T0);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    cr_assert_str_eq(rep.remark, "crc32 not match");
    proto_reply_free(&rep);
    req_free(&r);
    cr_assert_eq(namesrv_broker_count(ns), 0);

    req_build(&r, REGISTER_BROKER, 479, body, "brokerName", "broker-a", "brokerAddr", ADDR_A0,
              "clusterName", "DefaultCluster", "brokerId", "0", "bodyCrc32", crc, NULL);
    rep = call(ns, &r, 1, T0);
    cr_assert_eq(rep.code, SUCCESS, "%s", rep.remark);
    proto_reply_free(&rep);
    req_free(&r);
    cr_assert_eq(namesrv_topic_count(ns), 2);
    free(body);
    namesrv_destroy(ns);
}

Test(namesrv, missing_or_malformed_fields_name_the_field)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep;
    char longname[300];

    rep = simple(ns, REGISTER_BROKER, "brokerAddr", ADDR_A0, "clusterName", "C", "brokerId", "0",
                 NULL);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    cr_assert(strstr(rep.remark, "brokerName") != NULL, "%s", rep.remark);
    proto_reply_free(&rep);

    rep = simple(ns, REGISTER_BROKER, "brokerName", "b", "brokerAddr", ADDR_A0, "clusterName", "C",
                 "brokerId", "0x1", NULL);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    cr_assert(strstr(rep.remark, "brokerId") != NULL, "%s", rep.remark);
    proto_reply_free(&rep);

    rep = simple(ns, REGISTER_BROKER, "brokerName", "b", "brokerAddr", ADDR_A0, "clusterName", "C",
                 "brokerId", "99999999999999999999", NULL);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    proto_reply_free(&rep);

    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    rep = route(ns, longname, 479, T0);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    cr_assert(strstr(rep.remark, "topic") != NULL);
    proto_reply_free(&rep);

    rep = simple(ns, GET_ROUTEINFO_BY_TOPIC, NULL);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    cr_assert_str_eq(rep.remark, "GET_ROUTEINFO_BY_TOPIC: missing or empty extFields topic");
    proto_reply_free(&rep);
    cr_assert_eq(namesrv_broker_count(ns), 0);
    namesrv_destroy(ns);
}

Test(namesrv, malformed_bodies_change_nothing)
{
    static const char *const bad[] = {
        "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"T\":{\"readQueueNums\":4}}",
        "not json at all",
        "[]",
        "{} trailing",
        "{\"topicConfigSerializeWrapper\":7}",
        "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"T\":5}}}",
        "{\"topicConfigSerializeWrapper\":"
        "{\"topicConfigTable\":{\"T\":{\"readQueueNums\":\"x\"}}}}",
        "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"T\":{\"readQueueNums\":4.5}}}}",
        "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"T\":{\"writeQueueNums\":-1}}}}",
        "{\"topicConfigSerializeWrapper\":{\"dataVersion\":{\"counter\":true}}}",
        "{\"topicConfigSerializeWrapper\":{\"topicConfigTable\":{\"\":{}}}}",
        "x\xda\x01\x02",
    };
    struct namesrv *ns = ns_new();

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proto_reply rep;

        cr_assert_eq(reg_full(ns, "DefaultCluster", "broker-a", ADDR_A0, "0", bad[i], 1, T0, &rep),
                     SYSTEM_ERROR, "body %zu accepted: %s", i, bad[i]);
        cr_assert(strstr(rep.remark, "REGISTER_BROKER") != NULL, "%s", rep.remark);
        proto_reply_free(&rep);
        cr_assert_eq(namesrv_broker_count(ns), 0);
        cr_assert_eq(namesrv_topic_count(ns), 0);
    }
    namesrv_destroy(ns);
}

Test(namesrv, compressed_body_is_refused_with_a_hint)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep;

    rep = simple(ns, REGISTER_BROKER, "brokerName", "b", "brokerAddr", ADDR_A0, "clusterName", "C",
                 "brokerId", "0", "compressed", "true", NULL);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    cr_assert(strstr(rep.remark, "compressedRegister=false") != NULL, "%s", rep.remark);
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, bare_wrapper_and_empty_body_register)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep;

    /* A broker older than V3_0_11 sends the TopicConfigSerializeWrapper itself. */
    cr_assert_eq(reg(ns, "broker-a", ADDR_A0, "0",
                     "{\"dataVersion\":{\"counter\":3,\"timestamp\":5},\"topicConfigTable\":"
                     "{\"Old\":{\"topicName\":\"Old\",\"readQueueNums\":2,\"writeQueueNums\":3}}}",
                     1, T0),
                 SUCCESS);
    rep = route(ns, "Old", 121, T0);
    cr_assert(strstr((const char *)rep.body, "\"perm\":6,\"readQueueNums\":2,\"topicSysFlag\":0,"
                                             "\"writeQueueNums\":3") != NULL);
    proto_reply_free(&rep);
    cr_assert_eq(reg(ns, "broker-b", ADDR_B0, "0", NULL, 2, T0), SUCCESS);
    cr_assert_eq(namesrv_broker_count(ns), 2);
    cr_assert_eq(namesrv_topic_count(ns), 1);
    namesrv_destroy(ns);
}

Test(namesrv, query_data_version_compares_and_refreshes)
{
    struct namesrv *ns = ns_with_master();
    char same[128];
    struct proto_reply rep;
    struct req r;

    snprintf(same, sizeof(same), "{\"counter\":1,\"stateVersion\":0,\"timestamp\":%lld}", T0);
    req_build(&r, QUERY_DATA_VERSION, 479, same, "brokerName", "broker-a", "brokerAddr", ADDR_A0,
              "clusterName", "DefaultCluster", "brokerId", "0", NULL);
    rep = call(ns, &r, 1, T0 + 100000);
    cr_assert_eq(rep.code, SUCCESS);
    cr_assert_str_eq(rep_ext(&rep, "changed"), "false");
    assert_body(&rep, same);
    proto_reply_free(&rep);
    req_free(&r);
    /* The query counted as a sign of life. */
    cr_assert_eq(namesrv_expire(ns, T0 + 200000), 0);

    req_build(&r, QUERY_DATA_VERSION, 479, "{\"counter\":2,\"stateVersion\":0,\"timestamp\":1}",
              "brokerName", "broker-a", "brokerAddr", ADDR_A0, "clusterName", "DefaultCluster",
              "brokerId", "0", NULL);
    rep = call(ns, &r, 1, T0 + 100000);
    cr_assert_str_eq(rep_ext(&rep, "changed"), "true");
    assert_body(&rep, same);
    proto_reply_free(&rep);
    req_free(&r);

    req_build(&r, QUERY_DATA_VERSION, 479, "{\"counter\":", "brokerName", "broker-a", "brokerAddr",
              ADDR_A0, "clusterName", "DefaultCluster", "brokerId", "0", NULL);
    rep = call(ns, &r, 1, T0);
    cr_assert_eq(rep.code, SYSTEM_ERROR);
    proto_reply_free(&rep);
    req_free(&r);
    namesrv_destroy(ns);
}

Test(namesrv, write_perm_wipe_and_add)
{
    struct namesrv *ns = ns_with_master();
    struct proto_reply rep;

    rep = simple(ns, WIPE_WRITE_PERM_OF_BROKER, "brokerName", "broker-a", NULL);
    cr_assert_eq(rep.code, SUCCESS);
    cr_assert_str_eq(rep_ext(&rep, "wipeTopicCount"), "2");
    proto_reply_free(&rep);
    rep = route(ns, "TopicA", 479, T0);
    cr_assert(strstr((const char *)rep.body, "\"perm\":4,") != NULL);
    proto_reply_free(&rep);

    rep = simple(ns, ADD_WRITE_PERM_OF_BROKER, "brokerName", "broker-a", NULL);
    cr_assert_str_eq(rep_ext(&rep, "addTopicCount"), "2");
    proto_reply_free(&rep);
    rep = route(ns, "TopicA", 479, T0);
    cr_assert(strstr((const char *)rep.body, "\"perm\":6,") != NULL);
    proto_reply_free(&rep);

    rep = simple(ns, WIPE_WRITE_PERM_OF_BROKER, "brokerName", "nobody", NULL);
    cr_assert_str_eq(rep_ext(&rep, "wipeTopicCount"), "0");
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}

Test(namesrv, address_moves_between_ids_and_names_but_not_clusters)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep;

    cr_assert_eq(reg(ns, "broker-a", ADDR_A1, "1", NULL, 1, T0), SUCCESS);
    /* The slave is promoted: same address, id 0. Only one entry remains. */
    cr_assert_eq(reg(ns, "broker-a", ADDR_A1, "0", NULL, 1, T0), SUCCESS);
    cr_assert_eq(namesrv_broker_count(ns), 1);
    rep = simple(ns, GET_BROKER_CLUSTER_INFO, NULL);
    cr_assert(strstr((const char *)rep.body, "{0:\"127.0.0.2:10911\"}") != NULL);
    proto_reply_free(&rep);

    /* The address re-registers under another name: broker-a loses it and goes. */
    cr_assert_eq(reg(ns, "broker-z", ADDR_A1, "0", NULL, 1, T0), SUCCESS);
    cr_assert_eq(namesrv_broker_count(ns), 1);
    rep = simple(ns, GET_BROKER_CLUSTER_INFO, NULL);
    cr_assert_null(strstr((const char *)rep.body, "broker-a"));
    proto_reply_free(&rep);

    /* A broker name is bound to its cluster while it has addresses. */
    cr_assert_eq(reg_full(ns, "Other", "broker-z", ADDR_B0, "1", NULL, 2, T0, &rep), SYSTEM_ERROR);
    cr_assert(strstr(rep.remark, "cluster") != NULL);
    proto_reply_free(&rep);
    cr_assert_eq(namesrv_broker_count(ns), 1);
    namesrv_destroy(ns);
}

Test(namesrv, many_topics_survive_growth_and_removal)
{
    enum { N = 5000 };
    struct namesrv *ns = ns_new();
    struct tcfg *t = calloc(N, sizeof(*t));
    char(*names)[16] = calloc(N, sizeof(*names));
    struct proto_reply rep;
    char *body;

    cr_assert(t != NULL && names != NULL);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "T%05d", i);
        t[i] = (struct tcfg){names[i], 1, 1, 6};
    }
    /* broker-a serves T00000..T02999, broker-b T02000..T04999. */
    body = mk_body(1, T0, t, 3000);
    cr_assert_eq(reg(ns, "broker-a", ADDR_A0, "0", body, 1, T0), SUCCESS);
    free(body);
    body = mk_body(1, T0, t + 2000, 3000);
    cr_assert_eq(reg(ns, "broker-b", ADDR_B0, "0", body, 2, T0), SUCCESS);
    free(body);
    cr_assert_eq(namesrv_topic_count(ns), N);

    namesrv_conn_closed(ns, 1);
    cr_assert_eq(namesrv_topic_count(ns), 3000);
    for (int i = 0; i < N; i += 97) {
        rep = route(ns, names[i], 479, T0);
        cr_assert_eq(rep.code, i < 2000 ? TOPIC_NOT_EXIST : SUCCESS, "%s", names[i]);
        proto_reply_free(&rep);
    }
    namesrv_conn_closed(ns, 2);
    cr_assert_eq(namesrv_topic_count(ns), 0);
    free(t);
    free(names);
    namesrv_destroy(ns);
}

Test(namesrv, unknown_code_is_not_supported)
{
    struct namesrv *ns = ns_new();
    struct proto_reply rep = simple(ns, 12345, NULL);

    cr_assert_eq(rep.code, NOT_SUPPORTED);
    cr_assert_str_eq(rep.remark, " request type 12345 not supported");
    proto_reply_free(&rep);
    namesrv_destroy(ns);
}
