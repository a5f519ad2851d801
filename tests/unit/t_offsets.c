/*
 * t_offsets.c - unit tests for src/broker/offsets: commit and query,
 * the consumerOffset.json format in both directions (fastjson's bare
 * integer keys), persist-when-dirty, the .bak fallback and iteration.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/offsets.h"
#include "common/errors.h"
#include "storetest.h"
#include "store/storeio.h"

static char *g_dir;

static void
setup(void)
{
    g_dir = st_tmpdir("offsets");
}

static void
teardown(void)
{
    st_rmrf(g_dir);
    free(g_dir);
}

TestSuite(offsets, .init = setup, .fini = teardown);

static struct offsets *
open_o(void)
{
    struct offsets *o = NULL;
    char err[512] = "";
    int rc = offsets_open(g_dir, &o, err, sizeof(err));

    cr_assert_eq(rc, 0, "offsets_open: %d %s", rc, err);
    return o;
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

static int64_t
q(struct offsets *o, const char *g, const char *t, int32_t qid)
{
    int64_t off = 0x7777;
    int rc = offsets_query(o, g, t, qid, &off);

    cr_assert_eq(rc, 0, "%s %s %d: %d", g, t, qid, rc);
    return off;
}

Test(offsets, commit_and_query)
{
    struct offsets *o = open_o();
    int64_t off = 99;

    cr_assert_eq(offsets_query(o, "g", "T", 0, &off), -ENOENT);
    cr_assert_eq(off, 99);
    cr_assert_eq(offsets_commit(o, "g", "T", 0, 12), 0);
    cr_assert_eq(offsets_commit(o, "g", "T", 3, 7), 0);
    cr_assert_eq(offsets_commit(o, "g2", "T", 0, 5), 0);
    cr_assert_eq(q(o, "g", "T", 0), 12);
    cr_assert_eq(q(o, "g", "T", 3), 7);
    cr_assert_eq(q(o, "g2", "T", 0), 5);
    cr_assert_eq(offsets_query(o, "g", "T", 1, &off), -ENOENT);
    /* Going backwards is allowed (a reset), and -1 is stored as is. */
    cr_assert_eq(offsets_commit(o, "g", "T", 0, 2), 0);
    cr_assert_eq(q(o, "g", "T", 0), 2);
    cr_assert_eq(offsets_commit(o, "g", "T", 0, -1), 0);
    cr_assert_eq(q(o, "g", "T", 0), -1);
    offsets_close(o);
}

Test(offsets, input_bounds)
{
    struct offsets *o = open_o();
    char big[300];

    cr_assert_eq(offsets_commit(o, "g", "T", -1, 0), -EINVAL);
    cr_assert_eq(offsets_commit(o, "g", "T", 65536, 0), -EINVAL);
    cr_assert_eq(offsets_commit(o, "g", "T", 65535, 0), 0);
    cr_assert_eq(offsets_commit(o, "g", "T@x", 0, 0), -EINVAL);
    cr_assert_eq(offsets_commit(o, "", "T", 0, 0), -EINVAL);
    cr_assert_eq(offsets_commit(o, "g", "", 0, 0), -EINVAL);
    cr_assert_eq(offsets_commit(o, NULL, "T", 0, 0), -EINVAL);
    memset(big, 'g', sizeof(big));
    big[255] = '\0';
    cr_assert_eq(offsets_commit(o, big, big, 0, 1), 0);
    cr_assert_eq(q(o, big, big, 0), 1);
    big[255] = 'g';
    big[256] = '\0';
    cr_assert_eq(offsets_commit(o, big, "T", 0, 0), -EINVAL);
    cr_assert_eq(offsets_commit(o, "g", big, 0, 0), -EINVAL);
    /* A group may hold '@': the key splits at the first one. */
    cr_assert_eq(offsets_commit(o, "g@h", "T", 1, 4), 0);
    cr_assert_eq(offsets_persist(o), 0);
    offsets_close(o);
    o = open_o();
    cr_assert_eq(q(o, "g@h", "T", 1), 4);
    cr_assert_eq(q(o, "g", "T", 65535), 0);
    offsets_close(o);
}

Test(offsets, persist_writes_fastjson_format_and_reopen_restores)
{
    struct offsets *o = open_o();
    char *text;

    cr_assert_eq(offsets_commit(o, "g", "T", 1, 3), 0);
    cr_assert_eq(offsets_commit(o, "g", "T", 0, 12), 0);
    cr_assert_eq(offsets_commit(o, "%RETRY%g", "%RETRY%g", 0, -1), 0);
    cr_assert_eq(offsets_persist(o), 0);
    text = file_text("consumerOffset.json");
    cr_assert_str_eq(text, "{\"offsetTable\":{\"%RETRY%g@%RETRY%g\":{0:-1},\"T@g\":{0:12,1:3}},"
                           "\"crc32\":\"74f28448\"}");
    free(text);
    offsets_close(o);

    o = open_o();
    cr_assert_eq(q(o, "g", "T", 0), 12);
    cr_assert_eq(q(o, "g", "T", 1), 3);
    cr_assert_eq(q(o, "%RETRY%g", "%RETRY%g", 0), -1);
    offsets_close(o);
}

Test(offsets, persist_only_when_dirty)
{
    struct offsets *o = open_o();
    unsigned long renames;

    /* Nothing committed yet: nothing written. */
    sio_fault_clear();
    cr_assert_eq(offsets_persist(o), 0);
    cr_assert_eq(sio_calls(SIO_RENAME), 0);
    cr_assert_null(file_text("consumerOffset.json"));

    /* SIO_RENAME counts the .bak link too: compare, do not count. */
    cr_assert_eq(offsets_commit(o, "g", "T", 0, 1), 0);
    cr_assert_eq(offsets_persist(o), 0);
    renames = sio_calls(SIO_RENAME);
    cr_assert_gt(renames, 0);
    cr_assert_eq(offsets_persist(o), 0);
    cr_assert_eq(sio_calls(SIO_RENAME), renames);

    /* Re-committing the same value still counts as a change (Java writes
     * every 5 s regardless; we write when anything was committed). */
    cr_assert_eq(offsets_commit(o, "g", "T", 0, 1), 0);
    cr_assert_eq(offsets_persist(o), 0);
    cr_assert_gt(sio_calls(SIO_RENAME), renames);

    /* A failed write leaves the table dirty; the next call retries. */
    cr_assert_eq(offsets_commit(o, "g", "T", 0, 3), 0);
    sio_fault_arm(SIO_RENAME, 1, SIO_FAULT_ONCE, EIO);
    cr_assert_eq(offsets_persist(o), -EIO);
    cr_assert_eq(offsets_persist(o), 0);
    offsets_close(o);
    o = open_o();
    cr_assert_eq(q(o, "g", "T", 0), 3);
    offsets_close(o);
}

Test(offsets, reads_a_java_written_file)
{
    /* A 4.9 broker's consumerOffset.json (pretty-printed, bare int keys),
     * with 5.x extras that must be ignored, and quoted keys as well. */
    put_file("consumerOffset.json",
             "{\n\t\"dataVersion\":{\"counter\":4,\"stateVersion\":0,\"timestamp\":1},\n"
             "\t\"offsetTable\":{\n"
             "\t\t\"%RETRY%please_rename_unique_group_name_4@please_rename_unique_group_name_4\""
             ":{0:0\n\t\t},\n"
             "\t\t\"TopicTest@please_rename_unique_group_name_4\":{0:250,1:249,2:250,3:251\n"
             "\t\t},\n"
             "\t\t\"Q@quoted\":{\"0\":7,\"12\":-1}\n"
             "\t},\n\t\"pullOffsetTable\":{}\n}\n");
    struct offsets *o = open_o();

    cr_assert_eq(
        q(o, "please_rename_unique_group_name_4", "%RETRY%please_rename_unique_group_name_4", 0),
        0);
    cr_assert_eq(q(o, "please_rename_unique_group_name_4", "TopicTest", 0), 250);
    cr_assert_eq(q(o, "please_rename_unique_group_name_4", "TopicTest", 3), 251);
    cr_assert_eq(q(o, "quoted", "Q", 0), 7);
    cr_assert_eq(q(o, "quoted", "Q", 12), -1);
    offsets_close(o);
}

Test(offsets, unusable_entries_are_skipped)
{
    int64_t off;

    put_file("consumerOffset.json",
             "{\"offsetTable\":{\"noat\":{0:1},\"@g\":{0:1},\"T@\":{0:1},\"S@g\":\"x\","
             "\"T@g\":{0:5,x:1,70000:2,-1:3,1:\"s\",2:1.5,3:9}}}");
    struct offsets *o = open_o();

    cr_assert_eq(q(o, "g", "T", 0), 5);
    cr_assert_eq(q(o, "g", "T", 3), 9);
    cr_assert_eq(offsets_query(o, "g", "T", 1, &off), -ENOENT);
    cr_assert_eq(offsets_query(o, "g", "T", 2, &off), -ENOENT);
    cr_assert_eq(offsets_query(o, "g", "S", 0, &off), -ENOENT);
    offsets_close(o);
}

Test(offsets, corrupt_file_falls_back_to_bak)
{
    struct offsets *o = open_o();
    char err[512];
    int rc;

    cr_assert_eq(offsets_commit(o, "g", "T", 0, 10), 0);
    cr_assert_eq(offsets_persist(o), 0);
    cr_assert_eq(offsets_commit(o, "g", "T", 0, 20), 0);
    cr_assert_eq(offsets_persist(o), 0); /* .bak holds 10 */
    offsets_close(o);

    put_file("consumerOffset.json", "{\"offsetTable\":{\"T@g\":{0:2");
    o = open_o();
    cr_assert_eq(q(o, "g", "T", 0), 10);
    offsets_close(o);

    put_file("consumerOffset.json", "\x01\x02garbage");
    o = open_o();
    cr_assert_eq(q(o, "g", "T", 0), 10);
    offsets_close(o);

    put_file("consumerOffset.json.bak", "{\"nothing\":1}");
    o = NULL;
    rc = offsets_open(g_dir, &o, err, sizeof(err));
    cr_assert_eq(rc, SPK_ECORRUPT);
    cr_assert_null(o);
    cr_assert_not_null(strstr(err, "consumerOffset.json"), "%s", err);
}

struct seen {
    char buf[2048];
};

static void
on_entry(void *arg, const char *group, const char *topic, int32_t qid, int64_t off)
{
    struct seen *s = arg;
    char line[600];

    snprintf(line, sizeof(line), "%s/%s/%d=%lld;", topic, group, (int)qid, (long long)off);
    strcat(s->buf, line);
}

static void
on_group(void *arg, const char *group)
{
    struct seen *s = arg;

    strcat(s->buf, group);
    strcat(s->buf, ";");
}

Test(offsets, iteration_and_deletion)
{
    struct offsets *o = open_o();
    struct seen s;

    /* "a" and "a-b" are the trap: in "topic@group" byte order "a-b@..."
     * sorts before "a@...", so ordering must be by topic, then group. */
    cr_assert_eq(offsets_commit(o, "g2", "a", 1, 11), 0);
    cr_assert_eq(offsets_commit(o, "g1", "a", 0, 10), 0);
    cr_assert_eq(offsets_commit(o, "g1", "a-b", 0, 20), 0);
    cr_assert_eq(offsets_commit(o, "g2", "b", 0, 30), 0);
    cr_assert_eq(offsets_commit(o, "g1", "a", 5, 15), 0);

    memset(&s, 0, sizeof(s));
    offsets_for_each(o, on_entry, &s);
    cr_assert_str_eq(s.buf, "a/g1/0=10;a/g1/5=15;a/g2/1=11;a-b/g1/0=20;b/g2/0=30;");

    memset(&s, 0, sizeof(s));
    offsets_for_each_of_group(o, "g1", on_entry, &s);
    cr_assert_str_eq(s.buf, "a/g1/0=10;a/g1/5=15;a-b/g1/0=20;");

    memset(&s, 0, sizeof(s));
    offsets_groups_of_topic(o, "a", on_group, &s);
    cr_assert_str_eq(s.buf, "g1;g2;");
    memset(&s, 0, sizeof(s));
    offsets_groups_of_topic(o, "zzz", on_group, &s);
    cr_assert_str_eq(s.buf, "");

    cr_assert_eq(offsets_delete_group(o, "g2"), 0);
    cr_assert_eq(offsets_delete_group(o, "g2"), -ENOENT);
    memset(&s, 0, sizeof(s));
    offsets_for_each(o, on_entry, &s);
    cr_assert_str_eq(s.buf, "a/g1/0=10;a/g1/5=15;a-b/g1/0=20;");

    cr_assert_eq(offsets_delete_topic(o, "a"), 0);
    cr_assert_eq(offsets_delete_topic(o, "a"), -ENOENT);
    memset(&s, 0, sizeof(s));
    offsets_for_each(o, on_entry, &s);
    cr_assert_str_eq(s.buf, "a-b/g1/0=20;");

    /* Deletions are changes: they reach the file. */
    cr_assert_eq(offsets_persist(o), 0);
    offsets_close(o);
    o = open_o();
    memset(&s, 0, sizeof(s));
    offsets_for_each(o, on_entry, &s);
    cr_assert_str_eq(s.buf, "a-b/g1/0=20;");
    offsets_close(o);
}

Test(offsets, many_groups_round_trip)
{
    struct offsets *o = open_o();
    int i;

    for (i = 0; i < 5000; i++) {
        char g[32], t[32];
        snprintf(g, sizeof(g), "G%d", (i * 31) % 5000);
        snprintf(t, sizeof(t), "T%d", i % 50);
        cr_assert_eq(offsets_commit(o, g, t, i % 16, (int64_t)i * 1000000007LL), 0);
    }
    cr_assert_eq(offsets_persist(o), 0);
    offsets_close(o);
    o = open_o();
    for (i = 0; i < 5000; i++) {
        char g[32], t[32];
        snprintf(g, sizeof(g), "G%d", (i * 31) % 5000);
        snprintf(t, sizeof(t), "T%d", i % 50);
        cr_assert_eq(q(o, g, t, i % 16), (int64_t)i * 1000000007LL);
    }
    offsets_close(o);
}
