/*
 * t_flush.c - the flush policies: the SYNC_FLUSH deadline (a put whose
 * flush does not finish in syncFlushTimeout is reported as
 * FLUSH_DISK_TIMEOUT: stored, durability unknown), the ASYNC_FLUSH rules
 * (least pages, thorough interval), and the delay-level tagsCode of
 * SCHEDULE_TOPIC_XXXX units.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "store/storeio.h"
#include "storetest.h"

#define SEG (ST_MAX_MESSAGE + 65536 + 8)

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
deadline_case(const char *mode, enum sio_kind slow)
{
    char *dir = st_tmpdir("flushdl");
    struct st_cfg c;
    struct store *s;
    struct store_put_result r;
    uint8_t body[200];

    st_cfg_init(&c, dir, SEG, STORE_SYNC_FLUSH);
    cr_assert_eq(cfg_set(&c.t, 1, "writeWithoutMmap", mode, NULL, 0), 0);
    cr_assert_eq(cfg_set(&c.t, 1, "syncFlushTimeout", "100", NULL, 0), 0);
    s = st_open(&c, NULL);
    st_body_fill(1, body, sizeof(body));
    struct rec_msg m = st_msg("FlushT", 0, body, sizeof(body), NULL, 0);
    cr_assert_eq(store_put_sync(s, &m, &r), 0);

    /* A disk that takes 700 ms per flush: the put is stored, but its
     * acknowledgement cannot wait that long. */
    sio_delay_arm(slow, 700);
    st_body_fill(2, body, sizeof(body));
    m = st_msg("FlushT", 0, body, sizeof(body), NULL, 0);
    cr_assert_eq(store_put_sync(s, &m, &r), SPK_ETIMEOUT);
    cr_assert_lt(store_durable(s), r.end, "reported a timeout for a durable message");
    sio_delay_arm(slow, 0);

    /* Not a failure: the flush completes later and the message is there. */
    cr_assert_eq(store_wait_durable(s, r.end, 5000), 0);
    cr_assert_eq(store_failed(s), 0);
    st_wait_dispatched(s);
    uint8_t buf[1024];
    struct rec_view v;
    uint64_t phys;
    cr_assert(st_get_one(s, "FlushT", 0, 1, buf, sizeof(buf), &v, &phys));
    cr_assert(st_body_ok(2, v.body, v.body_len));
    cr_assert_eq(phys, r.phys_off);
    cr_assert_eq(store_close(s), 0);
    sio_fault_clear();
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(flush, sync_deadline_is_flush_disk_timeout_pwrite)
{
    deadline_case("true", SIO_FSYNC);
}

Test(flush, sync_deadline_is_flush_disk_timeout_mapping)
{
    deadline_case("false", SIO_MSYNC);
}

static struct store *
async_store(struct st_cfg *c, const char *dir, const char *thorough)
{
    st_cfg_init(c, dir, SEG, STORE_ASYNC_FLUSH);
    cr_assert_eq(cfg_set(&c->t, 1, "flushIntervalCommitLog", "20", NULL, 0), 0);
    cr_assert_eq(cfg_set(&c->t, 1, "flushCommitLogLeastPages", "4", NULL, 0), 0);
    cr_assert_eq(cfg_set(&c->t, 1, "flushCommitLogThoroughInterval", thorough, NULL, 0), 0);
    return st_open(c, NULL);
}

static void
put_bytes(struct store *s, size_t total)
{
    uint8_t body[1000];
    struct store_put_result r;

    memset(body, 'x', sizeof(body));
    for (size_t done = 0; done < total; done += sizeof(body)) {
        struct rec_msg m = st_msg("FlushA", 0, body, sizeof(body), NULL, 0);
        cr_assert_eq(store_put(s, &m, &r), 0);
    }
}

Test(flush, async_waits_for_least_pages)
{
    char *dir = st_tmpdir("flushlp");
    struct st_cfg c;
    struct store *s = async_store(&c, dir, "3600000");
    uint64_t d0 = store_durable(s);

    put_bytes(s, 1000); /* one record: less than 4 dirty pages */
    sleep_ms(300);      /* 15 flush intervals */
    cr_assert_eq(store_durable(s), d0, "flushed with fewer than flushCommitLogLeastPages");

    put_bytes(s, 6 * 4096); /* now more than 4 pages are dirty */
    for (int i = 0; i < 200 && store_durable(s) < store_written(s); i++)
        sleep_ms(10);
    cr_assert_eq(store_durable(s), store_written(s), "4 dirty pages were not flushed");
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(flush, async_thorough_interval_flushes_everything)
{
    char *dir = st_tmpdir("flushth");
    struct st_cfg c;
    struct store *s = async_store(&c, dir, "150");

    put_bytes(s, 1000); /* below least pages: only the thorough rule flushes it */
    for (int i = 0; i < 200 && store_durable(s) < store_written(s); i++)
        sleep_ms(10);
    cr_assert_eq(store_durable(s), store_written(s), "the thorough interval did not flush");
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(flush, schedule_topic_units_carry_the_delivery_time)
{
    char *dir = st_tmpdir("sched");
    struct st_cfg c;
    struct store *s;
    struct store_put_result r3, r99;
    static struct store_get_result g;
    static const char p3[] = "DELAY\0013\002REAL_TOPIC\001T\002";
    static const char p99[] = "DELAY\00199\002REAL_TOPIC\001T\002";
    uint8_t body[10] = "scheduled";

    st_cfg_init(&c, dir, SEG, STORE_ASYNC_FLUSH);
    s = st_open(&c, NULL);
    struct rec_msg m = st_msg("SCHEDULE_TOPIC_XXXX", 2, body, sizeof(body), p3, sizeof(p3) - 1);
    cr_assert_eq(store_put(s, &m, &r3), 0);
    m = st_msg("SCHEDULE_TOPIC_XXXX", 2, body, sizeof(body), p99, sizeof(p99) - 1);
    cr_assert_eq(store_put(s, &m, &r99), 0);
    st_wait_dispatched(s);

    /* Level 3 is 10 s in the default messageDelayLevel; level 99 is
     * clamped to the last level, 18 (2 h). */
    int64_t want3 = r3.store_ts + 10000, want99 = r99.store_ts + 7200000;
    struct store_filter f = {.codes = &want3, .ncodes = 1};
    cr_assert_eq(store_get(s, "SCHEDULE_TOPIC_XXXX", 2, 0, 32, 0, &f, &g), 0);
    cr_assert_eq(g.status, STORE_FOUND);
    cr_assert_eq(g.count, 1);
    cr_assert_eq(g.msgs[0].queue_off, 0);
    store_get_release(&g);
    f.codes = &want99;
    cr_assert_eq(store_get(s, "SCHEDULE_TOPIC_XXXX", 2, 0, 32, 0, &f, &g), 0);
    cr_assert_eq(g.count, 1);
    cr_assert_eq(g.msgs[0].queue_off, 1);
    store_get_release(&g);
    int64_t off_by_one = want3 - 1;
    f.codes = &off_by_one;
    cr_assert_eq(store_get(s, "SCHEDULE_TOPIC_XXXX", 2, 0, 32, 0, &f, &g), 0);
    cr_assert_eq(g.count, 0);
    cr_assert_eq(g.status, STORE_NO_MATCHED_MESSAGE);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}
