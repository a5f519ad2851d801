/*
 * t_admin.c - unit tests for the pure parts of src/client/admin (fastjson
 * bodies with MessageQueue keys, stored-format message decoding, offset
 * message ids, name-server address checks) and for src/broker/groups (the
 * subscriptionGroup.json table).
 *
 * The stored record and its offset id come from PROTOCOL.md 4.1's worked
 * example; the bodies from 3.8.5 (ConsumeStats as fastjson writes it).
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "broker/groups.h"
#include "client/admin.h"
#include "common/errors.h"
#include "store/record.h"
#include "storetest.h"

/* PROTOCOL.md 4.1: topic "T1", body "hi", TAGS=A, WAIT=true, queue offset 5,
 * CommitLog offset 2020, born 10.0.0.1:54321, stored by 192.168.0.10:10911. */
static const uint8_t example[112] = {
    0x00, 0x00, 0x00, 0x70, 0xda, 0xa3, 0x20, 0xa7, 0x58, 0x93, 0x2a, 0xac, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x07, 0xe4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,
    0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0xd4, 0x31, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b,
    0xc0, 0xa8, 0x00, 0x0a, 0x00, 0x00, 0x2a, 0x9f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x68, 0x69, 0x02, 0x54, 0x31, 0x00, 0x11, 0x54,
    0x41, 0x47, 0x53, 0x01, 0x41, 0x02, 0x57, 0x41, 0x49, 0x54, 0x01, 0x74, 0x72, 0x75, 0x65, 0x02,
};

Test(admin, decodes_the_protocol_example)
{
    struct adm_msgs ms = {NULL, 0};

    cr_assert_eq(adm_msgs_decode(example, sizeof(example), &ms), 0);
    cr_assert_eq(ms.n, 1);
    cr_assert_str_eq(ms.v[0].topic, "T1");
    cr_assert_eq(ms.v[0].queue_off, 5);
    cr_assert_eq(ms.v[0].phys_off, 2020);
    cr_assert_eq(ms.v[0].body_len, 2);
    cr_assert_eq(memcmp(ms.v[0].body, "hi", 2), 0);
    cr_assert_str_eq(ms.v[0].born_host, "10.0.0.1:54321");
    cr_assert_str_eq(ms.v[0].store_host, "192.168.0.10:10911");
    cr_assert_str_eq(ms.v[0].offset_id, "C0A8000A00002A9F00000000000007E4");
    cr_assert_str_eq(adm_msg_prop(&ms.v[0], "TAGS"), "A");
    cr_assert_str_eq(adm_msg_prop(&ms.v[0], "WAIT"), "true");
    cr_assert_null(adm_msg_prop(&ms.v[0], "KEYS"));
    /* no UNIQ_KEY: the message id is the offset id */
    cr_assert_str_eq(adm_msg_id(&ms.v[0]), "C0A8000A00002A9F00000000000007E4");
    adm_msgs_free(&ms);
}

Test(admin, a_truncated_record_keeps_the_ones_before)
{
    uint8_t two[2 * sizeof(example)];
    struct adm_msgs ms = {NULL, 0};

    memcpy(two, example, sizeof(example));
    memcpy(two + sizeof(example), example, sizeof(example));
    /* every cut inside the second record is refused, never read past */
    for (size_t cut = sizeof(example) + 1; cut < sizeof(two); cut++) {
        cr_assert_eq(adm_msgs_decode(two, cut, &ms), SPK_EFORMAT, "cut at %zu", cut);
        cr_assert_eq(ms.n, 1);
        adm_msgs_free(&ms);
    }
    cr_assert_eq(adm_msgs_decode(two, sizeof(two), &ms), 0);
    cr_assert_eq(ms.n, 2);
    adm_msgs_free(&ms);
}

Test(admin, inflates_zlib_bodies_and_reads_uniq_key)
{
    const char *text = "a body that compresses, a body that compresses, a body that compresses";
    static const char props[] = "UNIQ_KEY\001ABCDEF\002KEYS\001k1 k2\002";
    uint8_t z[256], rec[512];
    uLongf zlen = sizeof(z);
    struct rec_msg m;
    struct adm_msgs ms = {NULL, 0};
    size_t len;

    cr_assert_eq(compress(z, &zlen, (const Bytef *)text, strlen(text)), Z_OK);
    memset(&m, 0, sizeof(m));
    m.topic = "TZ";
    m.topic_len = 2;
    m.body = z;
    m.body_len = zlen;
    m.props = props;
    m.props_len = sizeof(props) - 1;
    m.sysflag = REC_SYS_COMPRESSED;
    m.born_host_len = m.store_host_len = 4;
    m.store_port = 10911;
    len = rec_length(&m, 0);
    cr_assert(len > 0 && len <= sizeof(rec));
    rec_encode(rec, len, &m, 0, 7, 4096, 1700000000000, 0);
    cr_assert_eq(adm_msgs_decode(rec, len, &ms), 0);
    cr_assert_eq(ms.v[0].body_compressed, 1);
    cr_assert_eq(ms.v[0].body_len, strlen(text));
    cr_assert_eq(memcmp(ms.v[0].body, text, strlen(text)), 0);
    cr_assert_str_eq(adm_msg_id(&ms.v[0]), "ABCDEF");
    cr_assert_str_eq(adm_msg_prop(&ms.v[0], "KEYS"), "k1 k2");
    adm_msgs_free(&ms);
}

Test(admin, offset_ids)
{
    char addr[80];
    int64_t off;

    cr_assert_eq(adm_offset_id_decode("C0A8000A00002A9F00000000000007E4", addr, sizeof(addr), &off),
                 0);
    cr_assert_str_eq(addr, "192.168.0.10:10911");
    cr_assert_eq(off, 2020);
    cr_assert_eq(adm_offset_id_decode("c0a8000a00002a9f00000000000007e4", addr, sizeof(addr), &off),
                 0);
    /* a UNIQ_KEY: pid and class-loader hash where the port would be */
    cr_assert_eq(adm_offset_id_decode("7F0000014A3B1C2D3E4F000001020304", addr, sizeof(addr), &off),
                 SPK_EFORMAT);
    cr_assert_eq(adm_offset_id_decode("C0A8000A00002A9F", addr, sizeof(addr), &off), SPK_EFORMAT);
    cr_assert_eq(adm_offset_id_decode("G0A8000A00002A9F00000000000007E4", addr, sizeof(addr), &off),
                 SPK_EFORMAT);
}

Test(admin, message_queue_keys_become_names)
{
    static const char body[] =
        "{\"consumeTps\":1.5,\"offsetTable\":{"
        "{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":\"T\"}:{\"brokerOffset\":100,"
        "\"consumerOffset\":90,\"lastTimestamp\":1700000000123,\"pullOffset\":95},"
        "{\"brokerName\":\"broker-a\",\"queueId\":1,\"topic\":\"T\"}:{\"brokerOffset\":7}},"
        "\"odd\":\"{not:a key}\",\"ints\":{0:\"x\",1:\"y\"}}";
    cJSON *j = adm_json_parse(body, sizeof(body) - 1), *t, *e;
    int n = 0;

    cr_assert_not_null(j);
    t = cJSON_GetObjectItemCaseSensitive(j, "offsetTable");
    cJSON_ArrayForEach(e, t)
    {
        cJSON *k = cJSON_Parse(e->string);
        cr_assert_not_null(k, "key %s", e->string);
        cr_assert_eq(cJSON_GetObjectItemCaseSensitive(k, "queueId")->valueint, n);
        cJSON_Delete(k);
        n++;
    }
    cr_assert_eq(n, 2);
    cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "odd")->valuestring, "{not:a key}");
    cr_assert_str_eq(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "ints"), "1")
            ->valuestring,
        "y");
    cJSON_Delete(j);
    cr_assert_null(adm_json_parse("{{\"a\":1}", 8)); /* unterminated stays broken */
}

Test(admin, name_server_addresses)
{
    struct adm *a = NULL;
    char err[200] = "";

    cr_assert_eq(adm_create("127.0.0.1:9876;10.0.0.2:9876", 0, &a, err, sizeof(err)), 0);
    cr_assert_str_eq(adm_namesrv(a), "127.0.0.1:9876;10.0.0.2:9876");
    adm_destroy(a);
    cr_assert_eq(adm_create("127.0.0.1:9876;nowhere", 0, &a, err, sizeof(err)), SPK_EFORMAT);
    cr_assert(strstr(err, "'nowhere'") != NULL, "%s", err);
    cr_assert_eq(adm_create("127.0.0.1:70000", 0, &a, err, sizeof(err)), SPK_EFORMAT);
}

/* Subscription groups ------------------------------------------------------------------ */

static char *g_dir;

static void
setup(void)
{
    g_dir = st_tmpdir("groups");
}

static void
teardown(void)
{
    st_rmrf(g_dir);
    free(g_dir);
}

static struct groups *
open_g(void)
{
    struct groups *g = NULL;
    char err[512] = "";

    cr_assert_eq(groups_open(g_dir, &g, err, sizeof(err)), 0, "%s", err);
    return g;
}

static void
put(struct groups *g, const char *json)
{
    char err[300] = "";

    cr_assert_eq(groups_put_json(g, json, strlen(json), NULL, err, sizeof(err)), 0, "%s", err);
}

Test(groups, round_trip_and_defaults, .init = setup, .fini = teardown)
{
    struct groups *g = open_g();
    struct group_config gc;
    char *json;
    size_t len;

    cr_assert_eq(groups_count(g), 0);
    cr_assert_eq(groups_retry_max(g, "G1"), 16);
    put(g, "{\"groupName\":\"G1\",\"retryMaxTimes\":3,\"consumeEnable\":false,"
           "\"groupRetryPolicy\":{\"type\":\"EXPONENTIAL\",\"exponentialRetryPolicy\":"
           "{\"initial\":5000}}}");
    put(g, "{\"groupName\":\"G0\"}");
    cr_assert_eq(groups_retry_max(g, "G1"), 3);
    groups_close(g);

    g = open_g();
    cr_assert_eq(groups_count(g), 2);
    cr_assert_eq(groups_get(g, "G1", &gc), 0);
    cr_assert_eq(gc.retry_max, 3);
    cr_assert_eq(gc.consume_enable, 0);
    cr_assert_eq(gc.retry_queues, 1);
    cr_assert_eq(groups_get(g, "G0", &gc), 0);
    cr_assert_eq(gc.consume_enable, 1);
    cr_assert_eq(gc.which_broker_slowly, 1);
    json = groups_serialize(g, &len);
    /* name order, and the retry policy kept as it came */
    cr_assert(strstr(json, "\"G0\":") < strstr(json, "\"G1\":"), "%s", json);
    cr_assert(strstr(json, "\"exponentialRetryPolicy\":{\"initial\":5000}") != NULL, "%s", json);
    cr_assert(strstr(json, "\"forbiddenTable\":{}") != NULL, "%s", json);
    free(json);
    cr_assert_eq(groups_delete(g, "G0"), 0);
    cr_assert_eq(groups_delete(g, "G0"), -ENOENT);
    groups_close(g);
    g = open_g();
    cr_assert_eq(groups_count(g), 1);
    groups_close(g);
}

Test(groups, refuses_bad_configs, .init = setup, .fini = teardown)
{
    static const char *const bad[] = {
        "{}",
        "{\"groupName\":\"\"}",
        "{\"groupName\":\"a b\"}",
        "{\"groupName\":\"G\",\"retryQueueNums\":-1}",
        "{\"groupName\":\"G\",\"retryMaxTimes\":1.5}",
        "{\"groupName\":\"G\",\"consumeEnable\":\"maybe\"}",
        "{\"groupName\":\"G\",\"attributes\":[]}",
        "not json",
    };
    struct groups *g = open_g();
    char err[300];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(groups_put_json(g, bad[i], strlen(bad[i]), NULL, err, sizeof(err)),
                     SPK_EFORMAT, "%s", bad[i]);
        cr_assert(err[0] != '\0', "no reason for %s", bad[i]);
    }
    cr_assert_eq(groups_count(g), 0);
    groups_close(g);
}

Test(groups, reads_a_java_file, .init = setup, .fini = teardown)
{
    /* as a 5.x broker writes it, with a group this table cannot use */
    static const char text[] =
        "{\"dataVersion\":{\"counter\":7,\"stateVersion\":0,\"timestamp\":1700000000000},"
        "\"forbiddenTable\":{},\"subscriptionGroupTable\":{"
        "\"CID_ONSAPI_OWNER\":{\"brokerId\":0,\"consumeBroadcastEnable\":true,"
        "\"consumeEnable\":true,\"consumeFromMinEnable\":true,\"consumeMessageOrderly\":false,"
        "\"consumeTimeoutMinute\":15,\"groupName\":\"CID_ONSAPI_OWNER\","
        "\"groupRetryPolicy\":{\"type\":\"CUSTOMIZED\"},\"groupSysFlag\":0,"
        "\"notifyConsumerIdsChangedEnable\":true,\"retryMaxTimes\":5,\"retryQueueNums\":1,"
        "\"whichBrokerWhenConsumeSlowly\":1},"
        "\"bad\":{\"groupName\":\"has space\"}}}";
    char *p = st_path(g_dir, "subscriptionGroup.json");
    struct groups *g;
    struct group_config gc;

    st_write_file(p, text, strlen(text));
    free(p);
    g = open_g();
    cr_assert_eq(groups_count(g), 1);
    cr_assert_eq(groups_get(g, "CID_ONSAPI_OWNER", &gc), 0);
    cr_assert_eq(gc.retry_max, 5);
    groups_close(g);
}
