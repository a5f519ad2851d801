/*
 * t_store.c - the message store through its public API (store/store.h):
 * put and get across segment roll-overs, filters, queue bounds, lookups by
 * time, offset and key, batches, transactions, reopening, and the
 * SYNC_FLUSH promises (R1: acked only when durable; R2: nothing beyond the
 * durable watermark is visible; R3: a failed flush is sticky).
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/jhash.h"
#include "store/record.h"
#include "store/store.h"
#include "store/storeio.h"
#include "storetest.h"

#define SEG (128 * 1024)

static char *dir;
static struct st_cfg cfg;
/* Big enough for STORE_MAX_BATCH views; static to keep it off the stack. */
static struct store_get_result gres;

static void
setup(void)
{
    sio_fault_clear();
    dir = st_tmpdir("store");
}

static void
teardown(void)
{
    sio_fault_clear();
    st_rmrf(dir);
    free(dir);
    st_cfg_free(&cfg);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

/* What a test put and expects to read back. */
struct sent {
    uint32_t seq;
    const char *topic;
    int32_t qid;
    size_t body_len;
    struct store_put_result res;
};

static const char *const topics[] = {"TopicA", "TopicB"};

/* Puts message <seq> (body from st_body_fill) with <props>; returns the rc. */
static int
put_seq(struct store *s, uint32_t seq, const char *topic, int32_t qid, size_t body_len,
        const char *props, int sync, struct store_put_result *res)
{
    uint8_t *body = malloc(body_len ? body_len : 1);
    struct rec_msg m;
    int rc;

    st_body_fill(seq, body, body_len);
    m = st_msg(topic, qid, body, body_len, props, props ? strlen(props) : 0);
    rc = sync ? store_put_sync(s, &m, res) : store_put(s, &m, res);
    free(body);
    return rc;
}

/* The sequence number a body starts with ("seq=N;"), or UINT32_MAX. */
static uint32_t
body_seq(const uint8_t *body, size_t len)
{
    char tmp[24];
    unsigned v;

    if (len < 5)
        return UINT32_MAX;
    memcpy(tmp, body, len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1);
    tmp[len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1] = '\0';
    return sscanf(tmp, "seq=%u;", &v) == 1 ? v : UINT32_MAX;
}

static unsigned
count_segments(const char *root)
{
    char *p = st_path(root, "commitlog");
    DIR *d = opendir(p);
    struct dirent *e;
    unsigned n = 0;

    cr_assert(ne(ptr, d, NULL), "no commitlog directory in %s", root);
    while ((e = readdir(d)) != NULL)
        n += strlen(e->d_name) == 20 && strspn(e->d_name, "0123456789") == 20;
    closedir(d);
    free(p);
    return n;
}

/*
 * Reads topic/qid from offset 0 in batches and checks that it holds
 * exactly the messages of <sent> for that queue, in order, with their
 * bodies, queue offsets and physical offsets.
 */
static void
check_queue(struct store *s, const struct sent *sent, size_t n, const char *topic, int32_t qid)
{
    size_t want = 0, i = 0;
    uint64_t qoff = 0, min = 0, max = 0;

    for (size_t k = 0; k < n; k++)
        want += strcmp(sent[k].topic, topic) == 0 && sent[k].qid == qid;
    cr_assert(eq(int, store_queue_bounds(s, topic, qid, &min, &max), 0), "%s-%d", topic, qid);
    cr_expect(eq(u64, min, 0));
    cr_assert(eq(u64, max, (uint64_t)want), "%s-%d max offset", topic, qid);
    while (qoff < max) {
        memset(&gres, 0, sizeof(gres));
        cr_assert(eq(int, store_get(s, topic, qid, qoff, 100, 1 << 20, NULL, &gres), 0));
        cr_assert(eq(int, gres.status, STORE_FOUND), "%s-%d@%llu: %s", topic, qid,
                  (unsigned long long)qoff, store_get_status_name(gres.status));
        cr_assert(ge(sz, gres.count, 1));
        for (size_t j = 0; j < gres.count; j++) {
            const struct store_msg_view *mv = &gres.msgs[j];
            struct rec_view v;
            const char *why = NULL;

            while (i < n && !(strcmp(sent[i].topic, topic) == 0 && sent[i].qid == qid))
                i++;
            cr_assert(lt(sz, i, n), "more messages than were put in %s-%d", topic, qid);
            cr_assert(eq(int, rec_parse(mv->data, mv->len, mv->phys_off, REC_CHECK_CRC, &v, &why),
                         (int)mv->len),
                      "%s", why ? why : "");
            cr_expect(eq(u64, mv->queue_off, qoff + j));
            cr_expect(eq(u64, v.queue_off, qoff + j));
            cr_expect(eq(u64, sent[i].res.queue_off, qoff + j));
            cr_expect(eq(u64, mv->phys_off, sent[i].res.phys_off));
            cr_expect(eq(i32, v.queue_id, qid));
            cr_expect(eq(u32, v.body_len, (uint32_t)sent[i].body_len));
            cr_expect(eq(int, st_body_ok(sent[i].seq, v.body, v.body_len), 1),
                      "body of seq %u differs", sent[i].seq);
            i++;
        }
        cr_expect(eq(u64, gres.next_begin_offset, qoff + gres.count));
        qoff += gres.count;
        store_get_release(&gres);
    }
}

Test(store, put_get_1000_messages_with_rollover)
{
    enum { N = 1000 };
    static struct sent sent[N];
    struct store *s;
    char props[64];

    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < N; i++) {
        struct sent *e = &sent[i];
        e->seq = i;
        e->topic = topics[i % 2];
        e->qid = (int32_t)((i / 2) % 3);
        e->body_len = st_body_len(i, 10, 1500);
        snprintf(props, sizeof(props), "TAGS\001T%u\002KEYS\001key-%u\002", i % 5, i);
        cr_assert(eq(int, put_seq(s, i, e->topic, e->qid, e->body_len, props, 0, &e->res), 0),
                  "put %u", i);
        cr_expect(eq(u32, e->res.count, 1));
        cr_expect(eq(u64, e->res.end, e->res.phys_off + e->res.bytes));
        if (i > 0) {
            /* Appends only move forward; a gap is the BLANK filler at a
             * segment end. */
            uint64_t prev = sent[i - 1].res.end;
            cr_expect(ge(u64, e->res.phys_off, prev));
            if (e->res.phys_off != prev)
                cr_expect(eq(u64, e->res.phys_off % SEG, 0), "gap not at a segment start");
            cr_expect(le(u64, e->res.end - e->res.end % SEG, e->res.phys_off),
                      "record %u crosses a segment end", i);
        }
    }
    cr_expect(eq(u64, store_written(s), sent[N - 1].res.end));
    cr_assert(ge(uint, count_segments(dir), 5), "expected several segment roll-overs");
    st_wait_dispatched(s);
    for (int t = 0; t < 2; t++)
        for (int32_t q = 0; q < 3; q++)
            check_queue(s, sent, N, topics[t], q);

    struct store_stats st;
    store_get_stats(s, &st);
    cr_expect(eq(u64, st.puts, N));
    cr_expect(eq(uint, st.queues, 6));
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, tag_filter)
{
    static const char *const tags[] = {"TagA", "TagB", "Aa", "BB", NULL};
    struct store *s;
    struct store_put_result res;
    char props[64];
    enum { N = 50 };

    /* "Aa" and "BB" have the same Java hash (2112): the ConsumeQueue code
     * lets both through and the record's TAGS must decide. */
    cr_assert(eq(i32, spk_java_hash("Aa", 2), spk_java_hash("BB", 2)));
    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < N; i++) {
        const char *tag = tags[i % 5];
        if (tag)
            snprintf(props, sizeof(props), "TAGS\001%s\002", tag);
        cr_assert(eq(int, put_seq(s, i, "Tagged", 0, 20, tag ? props : NULL, 0, &res), 0));
    }
    st_wait_dispatched(s);

    struct {
        const char *tag;
        unsigned rem;
    } cases[] = {{"TagA", 0}, {"TagB", 1}, {"Aa", 2}, {"BB", 3}};
    for (size_t c = 0; c < 4; c++) {
        int64_t code = spk_java_hash(cases[c].tag, strlen(cases[c].tag));
        const char *tl[1] = {cases[c].tag};
        struct store_filter f = {&code, 1, tl, 1};
        unsigned got = 0;
        uint64_t qoff = 0;

        while (qoff < N) {
            memset(&gres, 0, sizeof(gres));
            cr_assert(eq(int, store_get(s, "Tagged", 0, qoff, 1000, 1 << 20, &f, &gres), 0));
            for (size_t j = 0; j < gres.count; j++) {
                struct rec_view v;
                cr_assert(lt(int, 0,
                             rec_parse(gres.msgs[j].data, gres.msgs[j].len, REC_ANY_POS,
                                       REC_CHECK_CRC, &v, NULL)));
                cr_expect(eq(u32, body_seq(v.body, v.body_len) % 5, cases[c].rem),
                          "tag %s let through seq %u", cases[c].tag, body_seq(v.body, v.body_len));
                cr_expect(eq(u64, gres.msgs[j].queue_off % 5, (uint64_t)cases[c].rem));
                got++;
            }
            cr_assert(lt(u64, qoff, gres.next_begin_offset), "no progress");
            qoff = gres.next_begin_offset;
            store_get_release(&gres);
        }
        cr_expect(eq(uint, got, N / 5), "tag %s", cases[c].tag);
    }

    /* No filter: everything, untagged messages included. */
    memset(&gres, 0, sizeof(gres));
    cr_assert(eq(int, store_get(s, "Tagged", 0, 0, 1000, 1 << 20, NULL, &gres), 0));
    cr_expect(eq(sz, gres.count, N));
    store_get_release(&gres);
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, queue_bounds_and_statuses)
{
    struct store *s;
    struct store_put_result res;
    uint64_t min = 7, max = 7;

    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, NULL);
    cr_expect(eq(int, store_queue_bounds(s, "Nope", 0, &min, &max), -ENOENT));
    memset(&gres, 0, sizeof(gres));
    cr_assert(eq(int, store_get(s, "Nope", 0, 0, 10, 1 << 20, NULL, &gres), 0));
    cr_expect(eq(int, gres.status, STORE_NO_MATCHED_LOGIC_QUEUE));
    cr_expect(eq(sz, gres.count, 0));

    for (uint32_t i = 0; i < 10; i++)
        cr_assert(eq(int, put_seq(s, i, "Bounds", 2, 100, NULL, 0, &res), 0));
    st_wait_dispatched(s);
    cr_assert(eq(int, store_queue_bounds(s, "Bounds", 2, &min, &max), 0));
    cr_expect(eq(u64, min, 0));
    cr_expect(eq(u64, max, 10));
    cr_expect(eq(int, store_queue_bounds(s, "Bounds", 1, &min, &max), -ENOENT));

    memset(&gres, 0, sizeof(gres));
    cr_assert(eq(int, store_get(s, "Bounds", 2, 10, 10, 1 << 20, NULL, &gres), 0));
    cr_expect(eq(int, gres.status, STORE_OFFSET_OVERFLOW_ONE));
    cr_expect(eq(u64, gres.next_begin_offset, 10));
    cr_expect(eq(u64, gres.max_offset, 10));
    cr_expect(eq(sz, gres.count, 0));
    cr_assert(eq(int, store_get(s, "Bounds", 2, 11, 10, 1 << 20, NULL, &gres), 0));
    cr_expect(eq(int, gres.status, STORE_OFFSET_OVERFLOW_BADLY));
    cr_expect(eq(u64, gres.next_begin_offset, 10));

    /* max_count and max_bytes limit a batch; the first message always comes. */
    cr_assert(eq(int, store_get(s, "Bounds", 2, 3, 4, 1 << 20, NULL, &gres), 0));
    cr_expect(eq(int, gres.status, STORE_FOUND));
    cr_expect(eq(sz, gres.count, 4));
    cr_expect(eq(u64, gres.next_begin_offset, 7));
    for (size_t j = 0; j < gres.count; j++)
        cr_expect(eq(u64, gres.msgs[j].queue_off, 3 + j));
    store_get_release(&gres);
    cr_assert(eq(int, store_get(s, "Bounds", 2, 0, 10, 1, NULL, &gres), 0));
    cr_expect(eq(sz, gres.count, 1), "max_bytes below one message still returns one");
    store_get_release(&gres);

    /* A queue of another topic with the same id is separate. */
    cr_assert(eq(int, put_seq(s, 99, "Other", 2, 100, NULL, 0, &res), 0));
    cr_expect(eq(u64, res.queue_off, 0));
    cr_expect(eq(int, store_close(s), 0));
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(store, offset_by_time)
{
    struct store *s;
    struct store_put_result res[30];
    uint64_t qoff = 99;
    int64_t ts;

    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < 30; i++) {
        if (i % 10 == 0)
            sleep_ms(15); /* three groups with distinct store times */
        cr_assert(eq(int, put_seq(s, i, "Timed", 0, 64, NULL, 0, &res[i]), 0));
    }
    st_wait_dispatched(s);
    cr_assert(lt(i64, res[9].store_ts, res[10].store_ts));
    cr_assert(lt(i64, res[19].store_ts, res[20].store_ts));

    for (uint32_t i = 0; i < 30; i++) {
        cr_assert(eq(int, store_msg_store_time(s, "Timed", 0, i, &ts), 0));
        cr_expect(eq(i64, ts, res[i].store_ts));
    }
    /* The first message stored at or after the time. */
    cr_assert(eq(int, store_offset_by_time(s, "Timed", 0, res[10].store_ts, &qoff), 0));
    cr_expect(le(u64, qoff, 10));
    cr_expect(eq(i64, res[qoff].store_ts, res[10].store_ts));
    cr_expect(qoff == 0 || res[qoff - 1].store_ts < res[10].store_ts);
    cr_assert(eq(int, store_offset_by_time(s, "Timed", 0, res[19].store_ts + 1, &qoff), 0));
    cr_expect(eq(u64, qoff, 20));
    cr_assert(eq(int, store_offset_by_time(s, "Timed", 0, 0, &qoff), 0));
    cr_expect(eq(u64, qoff, 0));
    cr_assert(eq(int, store_offset_by_time(s, "Timed", 0, res[29].store_ts + 1000, &qoff), 0));
    cr_expect(eq(u64, qoff, 30), "after the last message: the max offset");
    cr_expect(eq(int, store_offset_by_time(s, "Untimed", 0, 0, &qoff), -ENOENT));
    cr_expect(ne(int, store_msg_store_time(s, "Timed", 0, 30, &ts), 0));
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, get_by_offset)
{
    struct store *s;
    struct store_put_result res[40];
    struct store_msg_view v;
    void *pin = NULL;

    st_cfg_init(&cfg, dir, SEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < 40; i++)
        cr_assert(eq(
            int,
            put_seq(s, i, "ByOff", (int32_t)(i % 4), st_body_len(i, 100, 3000), NULL, 1, &res[i]),
            0));
    for (uint32_t i = 0; i < 40; i++) {
        struct rec_view rv;
        cr_assert(eq(int, store_get_by_offset(s, res[i].phys_off, &v, &pin), 0), "seq %u", i);
        cr_expect(eq(u64, v.phys_off, res[i].phys_off));
        cr_expect(eq(u32, v.len, res[i].bytes));
        cr_expect(eq(u64, v.queue_off, res[i].queue_off));
        cr_assert(
            eq(int, rec_parse(v.data, v.len, v.phys_off, REC_CHECK_CRC, &rv, NULL), (int)v.len));
        cr_expect(eq(int, st_body_ok(i, rv.body, rv.body_len), 1));
        /* The offset message id decodes back to the same offset. */
        char id[64];
        uint64_t phys = 0;
        size_t idlen = rec_msg_id(rv.store_host, rv.store_host_len, rv.store_port, v.phys_off, id);
        cr_expect(eq(int, rec_msg_id_decode(id, idlen, &phys), 0));
        cr_expect(eq(u64, phys, res[i].phys_off));
        store_view_release(pin);
    }
    /* Not a record boundary, past the end, far past the end. */
    cr_expect(lt(int, store_get_by_offset(s, res[5].phys_off + 1, &v, &pin), 0));
    cr_expect(lt(int, store_get_by_offset(s, res[5].phys_off + 4, &v, &pin), 0));
    cr_expect(lt(int, store_get_by_offset(s, store_written(s), &v, &pin), 0));
    cr_expect(lt(int, store_get_by_offset(s, UINT64_C(1) << 50, &v, &pin), 0));
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, query_by_key)
{
    struct store *s;
    struct store_put_result res[30];
    uint64_t offs[64];
    size_t n = 0;
    char props[128];

    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < 30; i++) {
        /* KEYS holds two space-separated keys; every third message shares
         * "group-<i%3>"; UNIQ_KEY is unique. */
        snprintf(props, sizeof(props), "KEYS\001k%u group-%u\002UNIQ_KEY\001U%04u\002", i, i % 3,
                 i);
        cr_assert(eq(int, put_seq(s, i, i < 20 ? "Keyed" : "Other", 0, 50, props, 0, &res[i]), 0));
    }
    st_wait_dispatched(s);

    cr_assert(eq(int, store_query_key(s, "Keyed", "k7", 64, 0, INT64_MAX, offs, &n), 0));
    cr_assert(eq(sz, n, 1));
    cr_expect(eq(u64, offs[0], res[7].phys_off));
    cr_assert(eq(int, store_query_key(s, "Keyed", "U0013", 64, 0, INT64_MAX, offs, &n), 0));
    cr_assert(eq(sz, n, 1));
    cr_expect(eq(u64, offs[0], res[13].phys_off));

    /* A shared key: every message of the topic that carries it, no other. */
    cr_assert(eq(int, store_query_key(s, "Keyed", "group-1", 64, 0, INT64_MAX, offs, &n), 0));
    size_t want = 0;
    for (uint32_t i = 1; i < 20; i += 3)
        want++;
    cr_expect(eq(sz, n, want));
    for (size_t k = 0; k < n; k++) {
        int ok = 0;
        for (uint32_t i = 1; i < 20; i += 3)
            ok |= offs[k] == res[i].phys_off;
        cr_expect(eq(int, ok, 1), "offset %llu is not a group-1 message of Keyed",
                  (unsigned long long)offs[k]);
    }
    /* At most <max>. */
    cr_assert(eq(int, store_query_key(s, "Keyed", "group-1", 2, 0, INT64_MAX, offs, &n), 0));
    cr_expect(le(sz, n, 2));

    /* Keys are per topic, and partial keys do not match. */
    cr_assert(eq(int, store_query_key(s, "Keyed", "k25", 64, 0, INT64_MAX, offs, &n), 0));
    cr_expect(eq(sz, n, 0));
    cr_assert(eq(int, store_query_key(s, "Other", "k25", 64, 0, INT64_MAX, offs, &n), 0));
    cr_assert(eq(sz, n, 1));
    cr_expect(eq(u64, offs[0], res[25].phys_off));
    cr_assert(eq(int, store_query_key(s, "Keyed", "group", 64, 0, INT64_MAX, offs, &n), 0));
    cr_expect(eq(sz, n, 0));

    /* The time window applies. */
    cr_assert(
        eq(int, store_query_key(s, "Keyed", "k7", 64, res[7].store_ts + 60000, INT64_MAX, offs, &n),
           0));
    cr_expect(eq(sz, n, 0));
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, batch_put)
{
    enum { B = 10 };
    struct store *s;
    struct rec_msg msgs[B];
    uint8_t bodies[B][300];
    struct store_put_result res, one;

    st_cfg_init(&cfg, dir, SEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    cr_assert(eq(int, put_seq(s, 1000, "Batch", 1, 40, NULL, 1, &one), 0));
    for (uint32_t i = 0; i < B; i++) {
        size_t len = 100 + i * 17;
        st_body_fill(i, bodies[i], len);
        msgs[i] = st_msg("Batch", 1, bodies[i], len, NULL, 0);
    }
    cr_assert(eq(int, store_put_batch(s, msgs, B, &res), 0));
    cr_expect(eq(u32, res.count, B));
    cr_expect(eq(u64, res.queue_off, 1));
    cr_expect(eq(u64, res.phys_off, one.end));
    cr_expect(eq(u64, res.end, res.phys_off + res.bytes));
    cr_assert(eq(int, store_wait_durable(s, res.end, 5000), 0));
    cr_expect(ge(u64, store_durable(s), res.end));
    st_wait_dispatched(s);

    memset(&gres, 0, sizeof(gres));
    cr_assert(eq(int, store_get(s, "Batch", 1, 1, 100, 1 << 20, NULL, &gres), 0));
    cr_assert(eq(sz, gres.count, B));
    uint64_t at = res.phys_off;
    for (uint32_t i = 0; i < B; i++) {
        struct rec_view v;
        cr_assert(lt(int, 0,
                     rec_parse(gres.msgs[i].data, gres.msgs[i].len, gres.msgs[i].phys_off,
                               REC_CHECK_CRC, &v, NULL)));
        cr_expect(eq(u64, gres.msgs[i].phys_off, at), "batch records are contiguous");
        cr_expect(eq(u64, v.queue_off, 1 + i));
        cr_expect(eq(i64, v.store_ts, res.store_ts), "one store timestamp per batch");
        cr_expect(eq(int, st_body_ok(i, v.body, v.body_len), 1));
        at += gres.msgs[i].len;
    }
    cr_expect(eq(u64, at, res.end));
    store_get_release(&gres);

    /* Mixed queues or topics in one batch are refused, and nothing is written. */
    uint64_t w = store_written(s);
    msgs[3].queue_id = 2;
    cr_expect(eq(int, store_put_batch(s, msgs, B, &res), SPK_EFORMAT));
    msgs[3].queue_id = 1;
    msgs[4].topic = "Batch2";
    msgs[4].topic_len = 6;
    cr_expect(eq(int, store_put_batch(s, msgs, B, &res), SPK_EFORMAT));
    cr_expect(eq(int, store_put_batch(s, msgs, 0, &res), SPK_EFORMAT));
    cr_expect(eq(u64, store_written(s), w));
    msgs[4].topic = "Batch";
    msgs[4].topic_len = 5;

    /* A batch is never split across segments: fill up to just below a
     * segment end, then put a batch that does not fit in the rest. */
    for (uint32_t i = 0; (store_written(s) % SEG) < SEG - 2500; i++)
        cr_assert(eq(int, put_seq(s, 2000 + i, "Filler", 0, 500, NULL, 0, &one), 0));
    cr_assert(eq(int, store_put_batch(s, msgs, B, &res), 0));
    cr_expect(eq(u64, res.phys_off % SEG, 0), "the batch must start the next segment");
    cr_expect(eq(u64, res.phys_off / SEG, (res.end - 1) / SEG));
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, transactions_prepared_gets_no_unit)
{
    struct store *s;
    struct store_put_result r0, rp, rr, rc_, r1;
    uint8_t body[64];
    uint64_t min, max;
    struct store_msg_view v;
    void *pin;

    st_cfg_init(&cfg, dir, SEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    cr_assert(eq(int, put_seq(s, 0, "Tx", 0, 30, NULL, 1, &r0), 0));
    cr_expect(eq(u64, r0.queue_off, 0));

    st_body_fill(1, body, sizeof(body));
    struct rec_msg m = st_msg("Tx", 0, body, sizeof(body), NULL, 0);
    m.sysflag = REC_SYS_TX_PREPARED;
    cr_assert(eq(int, store_put_sync(s, &m, &rp), 0));
    cr_expect(eq(u64, rp.queue_off, 0), "PREPARED records carry queue offset 0");
    m.sysflag = REC_SYS_TX_ROLLBACK;
    m.prepared_tx_offset = (int64_t)rp.phys_off;
    cr_assert(eq(int, store_put_sync(s, &m, &rr), 0));
    cr_expect(eq(u64, rr.queue_off, 0));
    m.sysflag = REC_SYS_TX_COMMIT;
    cr_assert(eq(int, store_put_sync(s, &m, &rc_), 0));
    cr_expect(eq(u64, rc_.queue_off, 1), "COMMIT takes the next queue offset");
    cr_assert(eq(int, put_seq(s, 2, "Tx", 0, 30, NULL, 1, &r1), 0));
    cr_expect(eq(u64, r1.queue_off, 2));
    st_wait_dispatched(s);

    cr_assert(eq(int, store_queue_bounds(s, "Tx", 0, &min, &max), 0));
    cr_expect(eq(u64, max, 3), "only NOT and COMMIT records get units");
    memset(&gres, 0, sizeof(gres));
    cr_assert(eq(int, store_get(s, "Tx", 0, 0, 10, 1 << 20, NULL, &gres), 0));
    cr_assert(eq(sz, gres.count, 3));
    cr_expect(eq(u64, gres.msgs[0].phys_off, r0.phys_off));
    cr_expect(eq(u64, gres.msgs[1].phys_off, rc_.phys_off));
    cr_expect(eq(u64, gres.msgs[2].phys_off, r1.phys_off));
    store_get_release(&gres);

    /* The half message is still in the log. */
    cr_assert(eq(int, store_get_by_offset(s, rp.phys_off, &v, &pin), 0));
    struct rec_view rv;
    cr_assert(lt(int, 0, rec_parse(v.data, v.len, v.phys_off, REC_CHECK_CRC, &rv, NULL)));
    cr_expect(eq(i32, rv.sysflag & REC_SYS_TX_MASK, REC_SYS_TX_PREPARED));
    store_view_release(pin);

    /* The same after a recovery re-dispatches everything. */
    cr_expect(eq(int, store_close(s), 0));
    char *ck = st_path(dir, "checkpoint");
    unlink(ck);
    free(ck);
    s = st_open(&cfg, NULL);
    st_wait_dispatched(s);
    cr_assert(eq(int, store_queue_bounds(s, "Tx", 0, &min, &max), 0));
    cr_expect(eq(u64, max, 3));
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, reopen_after_clean_close)
{
    enum { N = 300 };
    static struct sent sent[N + 10];
    struct store *s;
    struct store_open_info info;

    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, &info);
    cr_expect(eq(int, info.abnormal, 0));
    char *abort_path = st_path(dir, "abort");
    cr_expect(eq(int, st_exists(abort_path), 1), "abort marker missing while running");
    for (uint32_t i = 0; i < N; i++) {
        sent[i] =
            (struct sent){i, topics[i % 2], (int32_t)((i / 2) % 4), st_body_len(i, 1, 2000), {0}};
        cr_assert(eq(
            int, put_seq(s, i, sent[i].topic, sent[i].qid, sent[i].body_len, NULL, 0, &sent[i].res),
            0));
    }
    uint64_t written = store_written(s);
    cr_assert(eq(int, store_close(s), 0));
    cr_expect(eq(int, st_exists(abort_path), 0), "a clean close removes the abort marker");

    s = st_open(&cfg, &info);
    cr_expect(eq(int, info.abnormal, 0));
    cr_expect(eq(u64, info.clog_max, written));
    cr_expect(eq(u64, info.truncated_bytes, 0));
    cr_expect(eq(u64, store_written(s), written));
    cr_expect(ge(u64, store_durable(s), written));
    cr_expect(eq(uint, info.queues, 8));
    st_wait_dispatched(s);
    for (int t = 0; t < 2; t++)
        for (int32_t q = 0; q < 4; q++)
            check_queue(s, sent, N, topics[t], q);

    /* Appends continue where they stopped, queue offsets included. */
    for (uint32_t i = N; i < N + 10; i++) {
        sent[i] = (struct sent){i, topics[i % 2], (int32_t)((i / 2) % 4), 77, {0}};
        cr_assert(eq(int, put_seq(s, i, sent[i].topic, sent[i].qid, 77, NULL, 0, &sent[i].res), 0));
    }
    cr_expect(eq(u64, sent[N].res.phys_off, written));
    st_wait_dispatched(s);
    for (int t = 0; t < 2; t++)
        for (int32_t q = 0; q < 4; q++)
            check_queue(s, sent, N + 10, topics[t], q);
    cr_expect(eq(int, store_close(s), 0));

    /* And once more, without the checkpoint: a full scan finds the same. */
    char *ck = st_path(dir, "checkpoint");
    unlink(ck);
    free(ck);
    s = st_open(&cfg, &info);
    st_wait_dispatched(s);
    for (int t = 0; t < 2; t++)
        for (int32_t q = 0; q < 4; q++)
            check_queue(s, sent, N + 10, topics[t], q);
    cr_expect(eq(int, store_close(s), 0));
    free(abort_path);
}

Test(store, put_validation)
{
    struct store *s;
    struct store_put_result res;
    static uint8_t big[ST_MAX_MESSAGE + 1];
    char longtopic[300];
    static char props[40000];

    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, NULL);
    struct rec_msg m = st_msg("Valid", 0, "x", 1, NULL, 0);
    uint64_t w = store_written(s);

    m.topic = "";
    m.topic_len = 0;
    cr_expect(eq(int, store_put(s, &m, &res), SPK_EFORMAT), "empty topic");
    memset(longtopic, 'a', sizeof(longtopic));
    m.topic = longtopic;
    m.topic_len = 256;
    cr_expect(eq(int, store_put(s, &m, &res), SPK_EFORMAT), "topic of 256 bytes");
    m.topic_len = 255;
    cr_expect(eq(int, store_put(s, &m, &res), 0), "topic of 255 bytes (V2 record)");
    w = store_written(s);
    m.topic = "Valid";
    m.topic_len = 5;
    m.queue_id = -1;
    cr_expect(eq(int, store_put(s, &m, &res), SPK_EFORMAT), "negative queue id");
    m.queue_id = 0;
    m.body = big;
    m.body_len = sizeof(big);
    cr_expect(eq(int, store_put(s, &m, &res), SPK_ETOOBIG), "body over maxMessageSize");
    m.body_len = ST_MAX_MESSAGE;
    cr_expect(eq(int, store_put(s, &m, &res), 0), "body of exactly maxMessageSize");
    w = store_written(s);
    memset(props, 'p', sizeof(props));
    m.body_len = 1;
    m.props = props;
    m.props_len = 32768;
    cr_expect(eq(int, store_put(s, &m, &res), SPK_ETOOBIG), "properties over 32767 bytes");
    cr_expect(eq(u64, store_written(s), w), "a refused put wrote something");
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, second_open_is_locked_out)
{
    struct store *s;
    pid_t pid;
    int status;

    st_cfg_init(&cfg, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&cfg, NULL);
    /* fcntl locks belong to the process: the second open must come from
     * another one. */
    pid = fork();
    cr_assert(ne(int, pid, -1));
    if (pid == 0) {
        struct store *s2 = NULL;
        char err[256] = "";
        int rc = store_open(&cfg.cfg, &s2, NULL, err, sizeof(err));
        _exit(rc == SPK_ELOCKED && strstr(err, "lock") != NULL ? 0 : 1);
    }
    cr_assert(eq(int, waitpid(pid, &status, 0), pid));
    cr_expect(eq(int, WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0),
              "a second process opened a locked store");
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, sync_put_returns_only_when_durable)
{
    struct store *s;
    struct store_put_result res;

    st_cfg_init(&cfg, dir, SEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < 200; i++) {
        unsigned long before = sio_calls(SIO_MSYNC) + sio_calls(SIO_FSYNC);
        cr_assert(
            eq(int, put_seq(s, i, "Sync", (int32_t)(i % 2), st_body_len(i, 10, 900), NULL, 1, &res),
               0));
        cr_assert(ge(u64, store_durable(s), res.end), "put %u acked before durable", i);
        cr_expect(lt(ulong, before, sio_calls(SIO_MSYNC) + sio_calls(SIO_FSYNC)),
                  "put %u acked without any sync call", i);
    }
    cr_expect(eq(int, store_close(s), 0));
}

Test(store, sync_flush_never_shows_undurable_messages)
{
    struct store *s;
    struct store_put_result res;
    unsigned seen = 0;

    st_cfg_init(&cfg, dir, SEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < 300; i++) {
        cr_assert(eq(int, put_seq(s, i, "Vis", 0, 200, NULL, 0, &res), 0));
        /* Read the message right away: if it is visible, it must already
         * be durable. durable only grows, so reading it after the get
         * cannot hide a violation that the get saw. */
        memset(&gres, 0, sizeof(gres));
        cr_assert(eq(int, store_get(s, "Vis", 0, res.queue_off, 1, 1 << 20, NULL, &gres), 0));
        if (gres.status == STORE_FOUND) {
            seen++;
            cr_expect(eq(u64, gres.msgs[0].phys_off, res.phys_off));
            cr_assert(ge(u64, store_durable(s), gres.msgs[0].phys_off + gres.msgs[0].len),
                      "R2: message %u readable before it was durable", i);
        }
        store_get_release(&gres);
        cr_expect(le(u64, store_dispatched(s), store_durable(s)));
    }
    cr_expect(eq(int, store_close(s), 0));
    (void)seen;
}

Test(store, failed_flush_is_sticky)
{
    struct store *s;
    struct store_put_result acked[20], res;
    struct store_msg_view v;
    void *pin;

    st_cfg_init(&cfg, dir, SEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    for (uint32_t i = 0; i < 20; i++)
        cr_assert(eq(int, put_seq(s, i, "Fail", 0, 300, NULL, 1, &acked[i]), 0));
    st_wait_dispatched(s);
    cr_assert(eq(int, store_failed(s), 0));

    /* Every sync of data fails from now on. */
    sio_fault_arm(SIO_MSYNC, 1, SIO_FAULT_PERSISTENT, EIO);
    sio_fault_arm(SIO_FSYNC, 1, SIO_FAULT_PERSISTENT, EIO);
    int rc = put_seq(s, 20, "Fail", 0, 300, NULL, 1, &res);
    cr_expect(ne(int, rc, 0), "a put was acknowledged although no flush could succeed");
    cr_expect(eq(int, rc, SPK_ESTORE_FAILED));
    cr_expect(ne(int, store_failed(s), 0), "the store must enter the failed state");
    cr_expect(lt(u64, store_durable(s), res.end), "durable covers the failed put");
    uint64_t dur = store_durable(s);

    /* Sticky: even with the disk healthy again nothing is accepted. */
    sio_fault_clear();
    for (uint32_t i = 21; i < 25; i++) {
        int r = put_seq(s, i, "Fail", 0, 300, NULL, 0, &res);
        cr_expect(eq(int, r, SPK_ESTORE_FAILED), "put %u after failure: %d", i, r);
    }
    cr_expect(eq(int, put_seq(s, 26, "Fail", 0, 300, NULL, 1, &res), SPK_ESTORE_FAILED));
    cr_expect(eq(int, store_wait_durable(s, store_written(s), 100), SPK_ESTORE_FAILED));
    cr_expect(eq(int, store_flush_all(s), SPK_ESTORE_FAILED));
    cr_expect(ne(int, store_failed(s), 0));
    sleep_ms(50);
    cr_expect(eq(u64, store_durable(s), dur), "durable moved after the failure");

    /* R2: the message that never became durable is never visible. */
    uint64_t min, max;
    cr_assert(eq(int, store_queue_bounds(s, "Fail", 0, &min, &max), 0));
    cr_expect(eq(u64, max, 20), "a unit exists for an undurable message");
    memset(&gres, 0, sizeof(gres));
    cr_assert(eq(int, store_get(s, "Fail", 0, 20, 10, 1 << 20, NULL, &gres), 0));
    cr_expect(eq(sz, gres.count, 0), "an unflushed message was returned");
    store_get_release(&gres);
    cr_expect(lt(int, store_get_by_offset(s, acked[19].end, &v, &pin), 0),
              "store_get_by_offset returned an unflushed record");

    /* What was acked before the failure is still readable. */
    for (uint32_t i = 0; i < 20; i++) {
        cr_assert(eq(int, store_get_by_offset(s, acked[i].phys_off, &v, &pin), 0));
        store_view_release(pin);
    }
    cr_expect(ne(int, store_close(s), 0), "close of a failed store reports the failure");

    /* A restart recovers from disk: everything acked is there. */
    char *abort_path = st_path(dir, "abort");
    cr_expect(eq(int, st_exists(abort_path), 1), "the abort marker must stay after a failure");
    free(abort_path);
    struct store_open_info info;
    s = st_open(&cfg, &info);
    cr_expect(eq(int, info.abnormal, 1));
    cr_expect(eq(int, store_failed(s), 0));
    st_wait_dispatched(s);
    for (uint32_t i = 0; i < 20; i++) {
        uint8_t buf[1024];
        struct rec_view rv;
        uint64_t phys;
        cr_assert(eq(int, st_get_one(s, "Fail", 0, i, buf, sizeof(buf), &rv, &phys), 1));
        cr_expect(eq(u64, phys, acked[i].phys_off));
        cr_expect(eq(int, st_body_ok(i, rv.body, rv.body_len), 1));
    }
    cr_assert(eq(int, put_seq(s, 30, "Fail", 0, 300, NULL, 1, &res), 0), "writes resume");
    cr_expect(eq(int, store_close(s), 0));
}

struct reader_arg {
    struct store *s;
    _Atomic int stop;
    _Atomic unsigned violations;
    _Atomic unsigned reads;
};

/* Polls the head of the queue while the writer appends: any message it
 * sees must already be below the durable watermark. */
static void *
reader_main(void *p)
{
    struct reader_arg *a = p;
    static struct store_get_result r;
    uint64_t next = 0;

    while (!atomic_load(&a->stop)) {
        if (store_get(a->s, "Race", 0, next, 64, 1 << 20, NULL, &r) != 0)
            continue;
        uint64_t dur = store_durable(a->s);
        for (size_t j = 0; j < r.count; j++)
            if (r.msgs[j].phys_off + r.msgs[j].len > dur)
                atomic_fetch_add(&a->violations, 1);
        if (r.count > 0)
            next = r.msgs[r.count - 1].queue_off + 1;
        atomic_fetch_add(&a->reads, (unsigned)r.count);
        store_get_release(&r);
    }
    return NULL;
}

Test(store, sync_flush_visibility_under_concurrent_reads)
{
    struct store *s;
    struct store_put_result res;
    struct reader_arg a = {0};
    pthread_t t;

    st_cfg_init(&cfg, dir, SEG, STORE_SYNC_FLUSH);
    s = st_open(&cfg, NULL);
    a.s = s;
    cr_assert(eq(int, pthread_create(&t, NULL, reader_main, &a), 0));
    for (uint32_t i = 0; i < 500; i++)
        cr_assert(eq(int, put_seq(s, i, "Race", 0, 100 + i % 700, NULL, i % 10 == 0, &res), 0));
    cr_assert(eq(int, store_wait_durable(s, res.end, 5000), 0));
    st_wait_dispatched(s);
    for (int i = 0; i < 5000 && atomic_load(&a.reads) < 500; i++)
        sleep_ms(1);
    atomic_store(&a.stop, 1);
    pthread_join(t, NULL);
    cr_expect(eq(uint, atomic_load(&a.violations), 0), "R2 violated");
    cr_expect(eq(uint, atomic_load(&a.reads), 500), "the reader did not see every message");
    cr_expect(eq(int, store_close(s), 0));
}
