/*
 * t_topics.c - unit tests for src/broker/topics: system topics, the
 * topics.json round trip and format, auto-create rules, name rules, the
 * .bak fallback, data versions and rollback on a failed write.
 *
 * Expected JSON comes from PROTOCOL.md 3.8.4 (a TopicConfig as fastjson
 * writes it) and from the shape of a Java 4.9 broker's topics.json.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/topics.h"
#include "common/config.h"
#include "common/errors.h"
#include "storetest.h"
#include "store/storeio.h"

#define CLUSTER "DefaultCluster"
#define BROKER "broker-a"

static char *g_dir;

static void
setup(void)
{
    g_dir = st_tmpdir("topics");
}

static void
teardown(void)
{
    st_rmrf(g_dir);
    free(g_dir);
}

static struct topics *
open_t(int auto_create)
{
    struct topics *t = NULL;
    char err[512] = "";
    int rc = topics_open(g_dir, CLUSTER, BROKER, auto_create, 8, &t, err, sizeof(err));

    cr_assert_eq(rc, 0, "topics_open: %d %s", rc, err);
    return t;
}

static void
put_file(const char *name, const char *text)
{
    char *p = st_path(g_dir, name);

    st_write_file(p, text, strlen(text));
    free(p);
}

static char *
file_text(const char *name)
{
    char *p = st_path(g_dir, name);
    size_t len;
    char *buf = (char *)st_read_file(p, &len), *s;

    free(p);
    if (!buf)
        return NULL;
    s = malloc(len + 1);
    memcpy(s, buf, len);
    s[len] = '\0';
    free(buf);
    return s;
}

static struct topic_config
mk(const char *name, int r, int w, int perm)
{
    struct topic_config tc;

    memset(&tc, 0, sizeof(tc));
    snprintf(tc.name, sizeof(tc.name), "%s", name);
    tc.read_queues = r;
    tc.write_queues = w;
    tc.perm = perm;
    return tc;
}

static void
expect(struct topics *t, const char *name, int r, int w, int perm)
{
    struct topic_config tc;

    cr_assert_eq(topics_get(t, name, &tc), 0, "%s missing", name);
    cr_assert_str_eq(tc.name, name);
    cr_assert_eq(tc.read_queues, r, "%s read %d", name, tc.read_queues);
    cr_assert_eq(tc.write_queues, w, "%s write %d", name, tc.write_queues);
    cr_assert_eq(tc.perm, perm, "%s perm %d", name, tc.perm);
}

TestSuite(topics, .init = setup, .fini = teardown);

Test(topics, system_topics_on_a_fresh_directory)
{
    struct topics *t = open_t(1);
    struct topic_config tc;
    char *p;

    expect(t, "TBW102", 8, 8, 7);
    expect(t, "SELF_TEST_TOPIC", 1, 1, 6);
    expect(t, "BenchmarkTest", 1024, 1024, 6);
    expect(t, CLUSTER, 16, 16, 7);
    expect(t, BROKER, 1, 1, 7);
    expect(t, "OFFSET_MOVED_EVENT", 1, 1, 6);
    expect(t, "SCHEDULE_TOPIC_XXXX", 18, 18, 6);
    expect(t, CLUSTER "_REPLY_TOPIC", 1, 1, 6);
    expect(t, "RMQ_SYS_TRANS_HALF_TOPIC", 1, 1, 6);
    expect(t, "RMQ_SYS_TRANS_OP_HALF_TOPIC", 1, 1, 6);
    cr_assert_eq(topics_count(t), 10);
    cr_assert_eq(topics_get(t, "Nope", &tc), -ENOENT);
    /* Opening writes nothing (as in Java: system topics reach the file
     * with the next change). */
    p = file_text("topics.json");
    cr_assert_null(p);
    topics_close(t);

    /* Without auto-create there is no TBW102 template. */
    t = open_t(0);
    cr_assert_eq(topics_get(t, "TBW102", &tc), -ENOENT);
    cr_assert_eq(topics_count(t), 9);
    topics_close(t);
}

Test(topics, topic_config_json_is_byte_exact)
{
    struct topic_config tc = mk("TopicTest", 8, 8, 6);
    size_t len;
    char *j = topic_config_json(&tc, &len);
    const char *want = "{\"attributes\":{},\"order\":false,\"perm\":6,\"readQueueNums\":8,"
                       "\"topicFilterType\":\"SINGLE_TAG\",\"topicName\":\"TopicTest\","
                       "\"topicSysFlag\":0,\"writeQueueNums\":8}";

    cr_assert_str_eq(j, want);
    cr_assert_eq(len, strlen(want));
    free(j);

    tc = mk("T\"q", 1, 2, 7);
    tc.order = 1;
    tc.filter_multi_tag = 1;
    tc.sysflag = 3;
    j = topic_config_json(&tc, NULL);
    cr_assert_str_eq(j, "{\"attributes\":{},\"order\":true,\"perm\":7,\"readQueueNums\":1,"
                        "\"topicFilterType\":\"MULTI_TAG\",\"topicName\":\"T\\\"q\","
                        "\"topicSysFlag\":3,\"writeQueueNums\":2}");
    free(j);
}

Test(topics, put_persists_and_reopen_restores_the_same_table)
{
    struct topics *t = open_t(1), *t2;
    static const char want_head[] =
        "{\"dataVersion\":{\"counter\":2,\"stateVersion\":0,\"timestamp\":";
    struct topic_config tc = mk("Orders", 4, 8, 6);
    char *a, *b, *file;
    size_t alen, blen;

    tc.order = 1;
    tc.filter_multi_tag = 1;
    tc.sysflag = 1;
    cr_assert_eq(topics_put(t, &tc), 0);
    tc = mk("Billing", 2, 2, 4);
    cr_assert_eq(topics_put(t, &tc), 0);

    a = topics_serialize(t, &alen);
    file = file_text("topics.json");
    cr_assert_not_null(file);
    /* ... sealed with its checksum member (common/config.h). */
    char *sealed = strdup(a);
    size_t slen = alen;
    cr_assert_eq(cfg_json_seal(&sealed, &slen), 0);
    cr_assert_str_eq(file, sealed, "the file holds exactly what we serialise, sealed");
    free(sealed);
    cr_assert_eq(strncmp(a, want_head, strlen(want_head)), 0, "%s", a);
    cr_assert_not_null(strstr(a, "\"Orders\":{\"attributes\":{},\"order\":true,\"perm\":6,"
                                 "\"readQueueNums\":4,\"topicFilterType\":\"MULTI_TAG\","
                                 "\"topicName\":\"Orders\",\"topicSysFlag\":1,"
                                 "\"writeQueueNums\":8}"));
    topics_close(t);

    t2 = open_t(1);
    b = topics_serialize(t2, &blen);
    cr_assert_str_eq(b, a);
    cr_assert_eq(blen, alen);
    tc.order = 0;
    cr_assert_eq(topics_get(t2, "Orders", &tc), 0);
    cr_assert_eq(tc.order, 1);
    cr_assert_eq(tc.filter_multi_tag, 1);
    cr_assert_eq(tc.sysflag, 1);
    topics_close(t2);
    free(a);
    free(b);
    free(file);
}

static void
collect(void *arg, const struct topic_config *tc)
{
    char *buf = arg;

    strcat(buf, tc->name);
    strcat(buf, ",");
}

Test(topics, iteration_is_in_name_order)
{
    struct topics *t = open_t(0);
    struct topic_config tc;
    char names[1024] = "";

    tc = mk("b", 1, 1, 6);
    cr_assert_eq(topics_put(t, &tc), 0);
    tc = mk("a", 1, 1, 6);
    cr_assert_eq(topics_put(t, &tc), 0);
    tc = mk("%RETRY%g", 1, 1, 6);
    cr_assert_eq(topics_put(t, &tc), 0);
    topics_for_each(t, collect, names);
    cr_assert_str_eq(names, "%RETRY%g,BenchmarkTest,DefaultCluster,DefaultCluster_REPLY_TOPIC,"
                            "OFFSET_MOVED_EVENT,RMQ_SYS_TRANS_HALF_TOPIC,"
                            "RMQ_SYS_TRANS_OP_HALF_TOPIC,SCHEDULE_TOPIC_XXXX,SELF_TEST_TOPIC,a,b,"
                            "broker-a,");
    topics_close(t);
}

Test(topics, data_version_bumps_on_every_change_only)
{
    struct topics *t = open_t(1);
    struct topic_config tc = mk("X", 4, 4, 6), out;
    int64_t c0, ts0, c, ts;
    int created;

    topics_data_version(t, &c0, &ts0);
    cr_assert_eq(c0, 0);
    cr_assert_gt(ts0, 1600000000000LL);
    cr_assert_eq(topics_put(t, &tc), 0);
    topics_data_version(t, &c, &ts);
    cr_assert_eq(c, 1);
    cr_assert_geq(ts, ts0);
    tc.perm = 4;
    cr_assert_eq(topics_put(t, &tc), 0); /* a replace counts too */
    cr_assert_eq(topics_auto_create(t, "Y", "TBW102", 4, &out, &created), 0);
    cr_assert_eq(topics_ensure(t, "%RETRY%g", 1, 6, 0, &out, &created), 0);
    cr_assert_eq(topics_delete(t, "X"), 0);
    topics_data_version(t, &c, &ts);
    cr_assert_eq(c, 5);

    /* Look-ups and no-op creations leave it alone. */
    cr_assert_eq(topics_ensure(t, "%RETRY%g", 1, 6, 0, &out, &created), 0);
    cr_assert_eq(created, 0);
    cr_assert_eq(topics_auto_create(t, "Y", "TBW102", 4, &out, &created), 0);
    cr_assert_eq(created, 0);
    cr_assert_eq(topics_delete(t, "X"), -ENOENT);
    topics_data_version(t, &c, &ts);
    cr_assert_eq(c, 5);
    topics_close(t);

    /* The version survives a restart. */
    t = open_t(1);
    topics_data_version(t, &c, &ts);
    cr_assert_eq(c, 5);
    topics_close(t);
}

Test(topics, auto_create_rules)
{
    struct topics *t = open_t(1);
    struct topic_config tc, out;
    int created = -1;

    /* min(requested, template write queues), perm without INHERIT. */
    cr_assert_eq(topics_auto_create(t, "A", "TBW102", 4, &out, &created), 0);
    cr_assert_eq(created, 1);
    cr_assert_eq(out.read_queues, 4);
    cr_assert_eq(out.write_queues, 4);
    cr_assert_eq(out.perm, 6);
    expect(t, "A", 4, 4, 6);
    cr_assert_eq(topics_auto_create(t, "B", "TBW102", 100, &out, &created), 0);
    cr_assert_eq(out.write_queues, 8);
    cr_assert_eq(topics_auto_create(t, "C", "TBW102", -3, &out, &created), 0);
    cr_assert_eq(out.write_queues, 0);

    /* An existing topic is returned as is, whatever the template. */
    cr_assert_eq(topics_auto_create(t, "A", "NoSuchTemplate", 1, &out, &created), 0);
    cr_assert_eq(created, 0);
    cr_assert_eq(out.write_queues, 4);

    /* A template without INHERIT, or none at all: refused. */
    cr_assert_eq(topics_auto_create(t, "D", "A", 4, &out, &created), -ENOENT);
    cr_assert_eq(topics_auto_create(t, "D", "Missing", 4, &out, &created), -ENOENT);
    cr_assert_eq(topics_get(t, "D", &tc), -ENOENT);

    /* Any template with INHERIT works, and passes on its filter type and
     * read-only permission. */
    tc = mk("Tmpl", 2, 3, PERM_INHERIT | PERM_READ);
    tc.filter_multi_tag = 1;
    cr_assert_eq(topics_put(t, &tc), 0);
    cr_assert_eq(topics_auto_create(t, "E", "Tmpl", 8, &out, &created), 0);
    cr_assert_eq(out.write_queues, 3);
    cr_assert_eq(out.read_queues, 3);
    cr_assert_eq(out.perm, PERM_READ);
    cr_assert_eq(out.filter_multi_tag, 1);
    topics_close(t);

    /* Auto-create off: a TBW102 left in the file is no template. */
    t = open_t(0);
    expect(t, "TBW102", 8, 8, 7);
    cr_assert_eq(topics_auto_create(t, "F", "TBW102", 4, &out, &created), -ENOENT);
    expect(t, "TBW102", 8, 8, 7); /* and it is not rewritten */
    cr_assert_eq(topics_auto_create(t, "F", "Tmpl", 4, &out, &created), 0);
    topics_close(t);
}

Test(topics, ensure_creates_retry_topics_once)
{
    struct topics *t = open_t(1);
    struct topic_config out;
    int created = -1;

    cr_assert_eq(topics_ensure(t, "%RETRY%cg", 1, 6, 0, &out, &created), 0);
    cr_assert_eq(created, 1);
    expect(t, "%RETRY%cg", 1, 1, 6);
    cr_assert_eq(topics_ensure(t, "%RETRY%cg", 3, 2, 0, &out, &created), 0);
    cr_assert_eq(created, 0);
    cr_assert_eq(out.write_queues, 1);
    cr_assert_eq(topics_ensure(t, "%DLQ%cg", 1, PERM_WRITE, 0, &out, &created), 0);
    expect(t, "%DLQ%cg", 1, 1, 2);
    cr_assert_eq(topics_ensure(t, "", 1, 6, 0, &out, &created), -EINVAL);
    cr_assert_eq(topics_ensure(t, "Z", 70000, 6, 0, &out, &created), -EINVAL);
    topics_close(t);
}

Test(topics, put_and_delete_argument_checks)
{
    struct topics *t = open_t(1);
    struct topic_config tc = mk("", 1, 1, 6);

    cr_assert_eq(topics_put(t, &tc), -EINVAL);
    tc = mk("X", -1, 1, 6);
    cr_assert_eq(topics_put(t, &tc), -EINVAL);
    tc = mk("X", 1, 65536, 6);
    cr_assert_eq(topics_put(t, &tc), -EINVAL);
    tc = mk("X", 1, 1, 16);
    cr_assert_eq(topics_put(t, &tc), -EINVAL);
    memset(tc.name, 'a', sizeof(tc.name)); /* no NUL inside the array */
    tc.perm = 6;
    cr_assert_eq(topics_put(t, &tc), -EINVAL);
    cr_assert_eq(topics_delete(t, "nope"), -ENOENT);
    topics_close(t);
}

Test(topics, name_validation)
{
    struct topics *t = open_t(1);
    char err[256], name[300];

    cr_assert_eq(topics_validate_name("TopicTest", err, sizeof(err)), 0);
    cr_assert_eq(topics_validate_name("a|b%c_d-E9", err, sizeof(err)), 0);
    cr_assert_eq(topics_validate_name("", err, sizeof(err)), SPK_EFORMAT);
    cr_assert_str_eq(err, "The specified topic is blank.");
    cr_assert_eq(topics_validate_name("a b", err, sizeof(err)), SPK_EFORMAT);
    cr_assert_not_null(strstr(err, "illegal characters"));
    cr_assert_eq(topics_validate_name("a@b", err, sizeof(err)), SPK_EFORMAT);
    cr_assert_eq(topics_validate_name("caf\xc3\xa9", err, sizeof(err)), SPK_EFORMAT);

    memset(name, 'x', sizeof(name));
    name[127] = '\0';
    cr_assert_eq(topics_validate_name(name, err, sizeof(err)), 0);
    name[127] = 'x';
    name[128] = '\0';
    cr_assert_eq(topics_validate_name(name, err, sizeof(err)), SPK_EFORMAT);
    cr_assert_not_null(strstr(err, "longer"));
    /* Retry and DLQ names may reach 255 bytes. */
    memcpy(name, "%RETRY%", 7);
    name[128] = 'x';
    name[255] = '\0';
    cr_assert_eq(topics_validate_name(name, err, sizeof(err)), 0);
    name[255] = 'x';
    name[256] = '\0';
    cr_assert_eq(topics_validate_name(name, err, sizeof(err)), SPK_EFORMAT);
    memcpy(name, "%DLQ%xx", 7);
    name[255] = '\0';
    cr_assert_eq(topics_validate_name(name, err, sizeof(err)), 0);

    /* Sending to system topics passes the syntax check... */
    cr_assert_eq(topics_validate_name("TBW102", err, sizeof(err)), 0);
    /* ...but user creation refuses every reserved name. */
    cr_assert_eq(topics_validate_create(t, "MyTopic", err, sizeof(err)), 0);
    cr_assert_eq(topics_validate_create(t, "%RETRY%g", err, sizeof(err)), 0);
    cr_assert_eq(topics_validate_create(t, "TBW102", err, sizeof(err)), SPK_EFORMAT);
    cr_assert_str_eq(err, "The topic[TBW102] is conflict with system topic.");
    cr_assert_eq(topics_validate_create(t, "SCHEDULE_TOPIC_XXXX", err, sizeof(err)), SPK_EFORMAT);
    cr_assert_eq(topics_validate_create(t, CLUSTER, err, sizeof(err)), SPK_EFORMAT);
    cr_assert_eq(topics_validate_create(t, BROKER, err, sizeof(err)), SPK_EFORMAT);
    cr_assert_eq(topics_validate_create(t, CLUSTER "_REPLY_TOPIC", err, sizeof(err)), SPK_EFORMAT);
    cr_assert_eq(topics_validate_create(t, "rmq_sys_wheel_timer", err, sizeof(err)), SPK_EFORMAT);
    cr_assert_eq(topics_validate_create(t, "a b", err, sizeof(err)), SPK_EFORMAT);

    cr_assert_eq(topics_send_forbidden("SCHEDULE_TOPIC_XXXX"), 1);
    cr_assert_eq(topics_send_forbidden("RMQ_SYS_TRANS_HALF_TOPIC"), 1);
    cr_assert_eq(topics_send_forbidden("SELF_TEST_TOPIC"), 1);
    cr_assert_eq(topics_send_forbidden("BenchmarkTest"), 0);
    cr_assert_eq(topics_send_forbidden("TopicTest"), 0);
    topics_close(t);
}

Test(topics, corrupt_file_falls_back_to_bak)
{
    struct topics *t = open_t(1);
    struct topic_config tc = mk("First", 2, 2, 6);
    char err[512];
    int rc;

    cr_assert_eq(topics_put(t, &tc), 0);
    tc = mk("Second", 2, 2, 6);
    cr_assert_eq(topics_put(t, &tc), 0); /* .bak now holds the table with First only */
    topics_close(t);

    put_file("topics.json", "{\"dataVersion\":{\"counter\":2},\"topicConfigTable\":{\"Fi");
    t = open_t(1);
    expect(t, "First", 2, 2, 6);
    cr_assert_eq(topics_get(t, "Second", &tc), -ENOENT);
    topics_close(t);

    /* Empty main file: the same. */
    put_file("topics.json", "");
    t = open_t(1);
    expect(t, "First", 2, 2, 6);
    topics_close(t);

    /* Valid JSON with an impossible value is corrupt too. */
    put_file("topics.json", "{\"topicConfigTable\":{\"X\":{\"readQueueNums\":-5}}}");
    t = open_t(1);
    cr_assert_eq(topics_get(t, "X", &tc), -ENOENT);
    expect(t, "First", 2, 2, 6);
    topics_close(t);

    /* Both unusable: refuse to start, naming the file. */
    put_file("topics.json.bak", "[]");
    t = NULL;
    rc = topics_open(g_dir, CLUSTER, BROKER, 1, 8, &t, err, sizeof(err));
    cr_assert_eq(rc, SPK_ECORRUPT);
    cr_assert_null(t);
    cr_assert_not_null(strstr(err, "topics.json"), "%s", err);
}

Test(topics, reads_a_java_written_file)
{
    /* The shape of a 4.9 broker's file: pretty-printed with tabs, no
     * attributes; plus a 5.x entry with attributes and stateVersion. */
    put_file("topics.json",
             "{\n\t\"dataVersion\":{\n\t\t\"counter\":42,\n\t\t\"stateVersion\":3,\n"
             "\t\t\"timestamp\":1700000000123\n\t},\n\t\"topicConfigTable\":{\n"
             "\t\t\"TopicTest\":{\n\t\t\t\"order\":false,\n\t\t\t\"perm\":6,\n"
             "\t\t\t\"readQueueNums\":4,\n\t\t\t\"topicFilterType\":\"SINGLE_TAG\",\n"
             "\t\t\t\"topicName\":\"TopicTest\",\n\t\t\t\"topicSysFlag\":0,\n"
             "\t\t\t\"writeQueueNums\":4\n\t\t},\n"
             "\t\t\"Tagged\":{\"attributes\":{\"+message.type\":\"FIFO\"},\"order\":true,"
             "\"perm\":2,\"topicFilterType\":\"MULTI_TAG\",\"topicName\":\"Tagged\"}\n"
             "\t}\n}\n");
    struct topics *t = open_t(1);
    struct topic_config tc;
    int64_t c, ts;
    char *j;

    expect(t, "TopicTest", 4, 4, 6);
    expect(t, "Tagged", 16, 16, 2); /* absent queue counts: Java's default 16 */
    cr_assert_eq(topics_get(t, "Tagged", &tc), 0);
    cr_assert_eq(tc.order, 1);
    cr_assert_eq(tc.filter_multi_tag, 1);
    topics_data_version(t, &c, &ts);
    cr_assert_eq(c, 42);
    cr_assert_eq(ts, 1700000000123LL);
    expect(t, "TBW102", 8, 8, 7); /* added: the file did not have it */

    /* The attributes survive, and a put keeps them. */
    tc.perm = 6;
    cr_assert_eq(topics_put(t, &tc), 0);
    j = topics_serialize(t, NULL);
    cr_assert_not_null(strstr(j, "\"Tagged\":{\"attributes\":{\"+message.type\":\"FIFO\"},"
                                 "\"order\":true,\"perm\":6,"),
                       "%s", j);
    cr_assert_not_null(strstr(j, "\"counter\":43,\"stateVersion\":3,"), "%s", j);
    free(j);
    topics_close(t);
}

Test(topics, failed_write_changes_nothing)
{
    struct topics *t = open_t(1);
    struct topic_config tc = mk("Keep", 2, 2, 6), out;
    int64_t c0, ts0, c, ts;
    int created;

    cr_assert_eq(topics_put(t, &tc), 0);
    topics_data_version(t, &c0, &ts0);

    sio_fault_arm(SIO_RENAME, 1, SIO_FAULT_PERSISTENT, EIO);
    tc = mk("New", 2, 2, 6);
    cr_assert_eq(topics_put(t, &tc), -EIO);
    cr_assert_eq(topics_get(t, "New", &tc), -ENOENT);
    tc = mk("Keep", 9, 9, 6);
    cr_assert_eq(topics_put(t, &tc), -EIO);
    expect(t, "Keep", 2, 2, 6);
    cr_assert_eq(topics_delete(t, "Keep"), -EIO);
    expect(t, "Keep", 2, 2, 6);
    topics_data_version(t, &c, &ts);
    cr_assert_eq(c, c0);
    cr_assert_eq(ts, ts0);
    /* Creations the broker makes itself are written later (topics_persist):
     * they succeed at once, and a failed write keeps them pending. */
    cr_assert_eq(topics_auto_create(t, "Auto", "TBW102", 4, &out, &created), 0);
    cr_assert_eq(topics_ensure(t, "%RETRY%x", 1, 6, 0, &out, &created), 0);
    cr_assert_eq(topics_persist(t), -EIO);
    cr_assert_eq(topics_persist(t), -EIO, "still pending after a failed write");
    sio_fault_clear();
    cr_assert_eq(topics_persist(t), 0);
    cr_assert_eq(topics_persist(t), 0);
    {
        struct topics *t2 = open_t(1);
        expect(t2, "Auto", 4, 4, 6);
        cr_assert_eq(topics_get(t2, "%RETRY%x", &tc), 0);
        topics_close(t2);
    }
    cr_assert_eq(topics_delete(t, "Auto"), 0);
    cr_assert_eq(topics_delete(t, "%RETRY%x"), 0);

    cr_assert_eq(topics_delete(t, "Keep"), 0);
    topics_close(t);
    t = open_t(1);
    cr_assert_eq(topics_get(t, "Keep", &tc), -ENOENT);
    topics_close(t);
}

Test(topics, loads_twenty_thousand_topics)
{
    struct sbuf_like {
        char *p;
        size_t len, cap;
    } b = {malloc(4 << 20), 0, 4 << 20};
    struct topics *t;
    struct topic_config tc;
    char prev[TOPIC_NAME_MAX + 1] = "";
    int i;

    b.len += (size_t)sprintf(b.p, "{\"topicConfigTable\":{");
    /* Written in a scrambled order; a name repeated later wins. */
    for (i = 0; i < 20000; i++) {
        int k = (int)(((unsigned)i * 7919u) % 20000u);
        b.len += (size_t)sprintf(b.p + b.len, "%s\"T%05d\":{\"readQueueNums\":%d}", i ? "," : "", k,
                                 k % 64);
    }
    b.len += (size_t)sprintf(b.p + b.len, ",\"T00007\":{\"readQueueNums\":63}}}");
    put_file("topics.json", b.p);
    free(b.p);

    t = open_t(1);
    cr_assert_eq(topics_count(t), 20000 + 10);
    cr_assert_eq(topics_get(t, "T12345", &tc), 0);
    cr_assert_eq(tc.read_queues, 12345 % 64);
    cr_assert_eq(topics_get(t, "T00007", &tc), 0);
    cr_assert_eq(tc.read_queues, 63);
    for (i = 0; i < 20000; i += 997) {
        char n[16];
        snprintf(n, sizeof(n), "T%05d", i);
        cr_assert_eq(topics_get(t, n, &tc), 0, "%s", n);
        cr_assert_gt(strcmp(tc.name, prev), 0);
        snprintf(prev, sizeof(prev), "%s", tc.name);
    }
    topics_close(t);
}

struct race {
    struct topics *t;
    int stop;
};

static void *
serializer(void *arg)
{
    struct race *r = arg;

    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        char *j = topics_serialize(r->t, NULL);
        cr_assert_not_null(j);
        free(j);
    }
    return NULL;
}

Test(topics, serialize_from_another_thread_while_changing)
{
    struct race r = {open_t(1), 0};
    struct topic_config tc;
    pthread_t th;
    int i;

    cr_assert_eq(pthread_create(&th, NULL, serializer, &r), 0);
    for (i = 0; i < 30; i++) {
        char n[32];
        snprintf(n, sizeof(n), "R%d", i);
        tc = mk(n, 1, 1, 6);
        cr_assert_eq(topics_put(r.t, &tc), 0);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    cr_assert_eq(topics_count(r.t), 40);
    topics_close(r.t);
}
