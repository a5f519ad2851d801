/*
 * t_modes.c - both CommitLog write paths (writeWithoutMmap=false: the
 * mapping + msync; true: pwrite + fdatasync) under SYNC_FLUSH: a put is
 * acknowledged only once durable, everything acknowledged survives a crash,
 * and a failed flush is sticky in either mode.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "store/storeio.h"
#include "storetest.h"

#define NMSG 300

static void
acked_survive_crash(const char *mode)
{
    char *dir = st_tmpdir("modes");
    struct st_cfg c;
    struct store *s;
    uint8_t body[900];
    uint64_t phys[NMSG];

    st_cfg_init(&c, dir, ST_MAX_MESSAGE + 65536 + 8, STORE_SYNC_FLUSH);
    cr_assert_eq(cfg_set(&c.t, 1, "writeWithoutMmap", mode, NULL, 0), 0);
    s = st_open(&c, NULL);
    for (uint32_t i = 0; i < NMSG; i++) {
        struct store_put_result r;
        size_t len = st_body_len(i, 100, 800);
        st_body_fill(i, body, len);
        struct rec_msg m = st_msg("ModeT", (int32_t)(i % 3), body, len, NULL, 0);
        cr_assert_eq(store_put_sync(s, &m, &r), 0, "put %u", i);
        cr_assert_geq(store_durable(s), r.end, "acknowledged before durable (put %u)", i);
        phys[i] = r.phys_off;
    }
    store_abandon(s); /* a crash: no final flush, abort file stays */

    struct store_open_info info;
    s = st_open(&c, &info);
    cr_assert_eq(info.abnormal, 1);
    for (uint32_t i = 0; i < NMSG; i++) {
        struct store_msg_view v;
        void *pin;
        struct rec_view rv;
        cr_assert_eq(store_get_by_offset(s, phys[i], &v, &pin), 0, "message %u lost", i);
        cr_assert_gt(rec_parse(v.data, v.len, phys[i], REC_CHECK_CRC_PROP, &rv, NULL), 0);
        cr_assert(st_body_ok(i, rv.body, rv.body_len), "message %u damaged", i);
        store_view_release(pin);
    }
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(modes, mapping_acked_messages_survive_a_crash)
{
    acked_survive_crash("false");
}

Test(modes, pwrite_acked_messages_survive_a_crash)
{
    acked_survive_crash("true");
}

static void
failed_flush_is_sticky(const char *mode, enum sio_kind kind)
{
    char *dir = st_tmpdir("modesfail");
    struct st_cfg c;
    struct store *s;
    struct store_put_result r;
    uint8_t body[100] = {1};

    st_cfg_init(&c, dir, ST_MAX_MESSAGE + 65536 + 8, STORE_SYNC_FLUSH);
    cr_assert_eq(cfg_set(&c.t, 1, "writeWithoutMmap", mode, NULL, 0), 0);
    s = st_open(&c, NULL);
    struct rec_msg m = st_msg("ModeT", 0, body, sizeof(body), NULL, 0);
    cr_assert_eq(store_put_sync(s, &m, &r), 0);
    uint64_t durable = store_durable(s);

    /* Persistent while this put waits (a queue flush on the clean thread may
     * take the first failing call), cleared before the next one. */
    sio_fault_arm(kind, 1, SIO_FAULT_PERSISTENT, EIO);
    cr_assert_eq(store_put_sync(s, &m, &r), SPK_ESTORE_FAILED);
    sio_fault_clear();
    cr_assert_neq(store_failed(s), 0);
    /* Sticky: no retry of the flush, no later put, durable never moves. */
    cr_assert_eq(store_put_sync(s, &m, &r), SPK_ESTORE_FAILED);
    cr_assert_eq(store_durable(s), durable);
    cr_assert_neq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(modes, mapping_failed_msync_is_sticky)
{
    failed_flush_is_sticky("false", SIO_MSYNC);
}

Test(modes, pwrite_failed_fdatasync_is_sticky)
{
    failed_flush_is_sticky("true", SIO_FSYNC);
}

/*
 * Deferred writes (pwrite mode under SYNC_FLUSH): many puts in flight reach
 * the file in far fewer pwrites than puts, nothing is durable or readable
 * before it is written, every put is acknowledged durable, and a crash
 * after the acknowledgements loses none of them.
 */
Test(modes, pwrite_defers_and_batches_writes)
{
    enum { N = 2000 };
    char *dir = st_tmpdir("modes");
    struct st_cfg c;
    struct store *s;
    uint8_t body[600];
    static uint64_t phys[N], ends[N];
    unsigned pw0, pw;

    st_cfg_init(&c, dir, ST_MAX_MESSAGE + 65536 + 8, STORE_SYNC_FLUSH);
    cr_assert_eq(cfg_set(&c.t, 1, "writeWithoutMmap", "true", NULL, 0), 0);
    s = st_open(&c, NULL);
    pw0 = sio_calls(SIO_PWRITE);
    for (uint32_t i = 0; i < N; i++) {
        struct store_put_result r;
        size_t len = st_body_len(i, 100, 500);
        st_body_fill(i, body, len);
        struct rec_msg m = st_msg("DeferT", (int32_t)(i % 4), body, len, NULL, 0);
        cr_assert_eq(store_put(s, &m, &r), 0, "put %u", i);
        /* staged bytes are not counted as written, so never as durable */
        cr_assert_leq(store_durable(s), store_written(s));
        phys[i] = r.phys_off;
        ends[i] = r.end;
    }
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(store_wait_durable(s, ends[i], 10000), 0, "put %u not made durable", i);
    pw = sio_calls(SIO_PWRITE) - pw0;
    cr_assert_lt(pw, N / 4, "%u pwrites for %d puts: writes were not batched", pw, N);
    store_abandon(s); /* a crash right after the acknowledgements */

    s = st_open(&c, NULL);
    for (uint32_t i = 0; i < N; i++) {
        struct store_msg_view v;
        void *pin;
        struct rec_view rv;
        cr_assert_eq(store_get_by_offset(s, phys[i], &v, &pin), 0, "message %u lost", i);
        cr_assert_gt(rec_parse(v.data, v.len, phys[i], REC_CHECK_CRC_PROP, &rv, NULL), 0);
        cr_assert(st_body_ok(i, rv.body, rv.body_len), "message %u damaged", i);
        store_view_release(pin);
    }
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}
