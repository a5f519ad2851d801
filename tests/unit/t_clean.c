/*
 * t_clean.c - clean-up of expired CommitLog segments (STORE.md 9) and the
 * rule that a pinned view outlives the deletion of its segment.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "storetest.h"

#define CLOG_SIZE (ST_MAX_MESSAGE + 65536 + 8) /* the smallest segment allowed */
#define NMSG 400

static struct store *
fill(struct st_cfg *c, const char *dir, uint64_t *phys_of_first)
{
    struct store *s;
    uint8_t body[600];

    st_cfg_init(c, dir, CLOG_SIZE, STORE_ASYNC_FLUSH);
    cr_assert_eq(cfg_set(&c->t, 1, "fileReservedTime", "0", NULL, 0), 0);
    s = st_open(c, NULL);
    for (uint32_t i = 0; i < NMSG; i++) {
        struct store_put_result r;
        st_body_fill(i, body, sizeof(body));
        struct rec_msg m = st_msg("CleanT", 0, body, sizeof(body), NULL, 0);
        cr_assert_eq(store_put(s, &m, &r), 0);
        if (i == 0)
            *phys_of_first = r.phys_off;
    }
    cr_assert_eq(store_flush_all(s), 0);
    st_wait_dispatched(s);
    return s;
}

Test(clean, expired_segments_go_but_never_the_last)
{
    char *dir = st_tmpdir("clean");
    struct st_cfg c;
    uint64_t first;
    struct store *s = fill(&c, dir, &first);
    uint64_t min0, max0, min1, max1;

    cr_assert_eq(store_queue_bounds(s, "CleanT", 0, &min0, &max0), 0);
    cr_assert_eq(min0, 0);
    cr_assert_eq(max0, NMSG);
    uint64_t written = store_written(s);
    int deleted = store_clean_now(s, 1);
    /* 400 records of ~720 B over 73 KiB segments: several segments, all
     * but the last expire with fileReservedTime=0; at most
     * deleteFileBatchMax (10) go per round. */
    cr_assert_gt(deleted, 0, "nothing deleted");
    cr_assert_gt(store_min_offset(s), 0);
    cr_assert_lt(store_min_offset(s), written, "the last segment must stay");
    while (store_clean_now(s, 1) > 0)
        ;
    cr_assert_eq(store_min_offset(s), written - written % CLOG_SIZE,
                 "everything but the last segment is gone");

    /* The queue's min moved to the first message still in the log, and a
     * read below it says so. */
    cr_assert_eq(store_queue_bounds(s, "CleanT", 0, &min1, &max1), 0);
    cr_assert_gt(min1, 0);
    cr_assert_eq(max1, NMSG);
    static struct store_get_result g;
    cr_assert_eq(store_get(s, "CleanT", 0, 0, 32, 0, NULL, &g), 0);
    cr_assert_eq(g.status, STORE_OFFSET_TOO_SMALL);
    cr_assert_eq(g.next_begin_offset, min1);
    cr_assert_eq(store_get(s, "CleanT", 0, min1, 32, 0, NULL, &g), 0);
    cr_assert_eq(g.status, STORE_FOUND);
    cr_assert_geq(g.msgs[0].phys_off, store_min_offset(s));
    struct rec_view v;
    cr_assert_gt(rec_parse(g.msgs[0].data, g.msgs[0].len, g.msgs[0].phys_off, REC_CHECK_CRC,
                           &v, NULL), 0);
    cr_assert(st_body_ok((uint32_t)min1, v.body, v.body_len));
    store_get_release(&g);

    /* Deleted segment files are gone from disk. */
    char name[64];
    snprintf(name, sizeof(name), "commitlog/%020llu", (unsigned long long)first);
    char *p = st_path(dir, name);
    cr_assert_not(st_exists(p), "%s still exists", p);
    free(p);

    cr_assert_eq(store_close(s), 0);
    /* Reopen: the minimum survives and recovery is clean. */
    struct store_open_info info;
    s = st_open(&c, &info);
    cr_assert_eq(store_min_offset(s), written - written % CLOG_SIZE);
    cr_assert_eq(store_queue_bounds(s, "CleanT", 0, &min0, &max0), 0);
    cr_assert_eq(min0, min1);
    cr_assert_eq(max0, NMSG);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(clean, a_pinned_view_outlives_its_deleted_segment)
{
    char *dir = st_tmpdir("cleanpin");
    struct st_cfg c;
    uint64_t first;
    struct store *s = fill(&c, dir, &first);
    struct store_msg_view v;
    void *pin;
    uint8_t copy[2048];

    cr_assert_eq(store_get_by_offset(s, first, &v, &pin), 0);
    cr_assert_leq(v.len, sizeof(copy));
    memcpy(copy, v.data, v.len);
    cr_assert_gt(store_clean_now(s, 1), 0);
    cr_assert_gt(store_min_offset(s), first, "the first segment was deleted");
    /* The mapping is still there (ASan would catch a read of unmapped
     * memory as a SEGV), and the bytes are unchanged. */
    cr_assert_eq(memcmp(copy, v.data, v.len), 0);
    store_view_release(pin);
    cr_assert_eq(store_get_by_offset(s, first, &v, &pin), SPK_ENOTFOUND);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}

Test(clean, nothing_is_deleted_before_it_expires)
{
    char *dir = st_tmpdir("cleankeep");
    struct st_cfg c;
    uint64_t first;
    struct store *s = fill(&c, dir, &first);

    cr_assert_eq(store_close(s), 0);
    cr_assert_eq(cfg_set(&c.t, 1, "fileReservedTime", "72", NULL, 0), 0);
    s = st_open(&c, NULL);
    cr_assert_eq(store_clean_now(s, 1), 0);
    cr_assert_eq(store_min_offset(s), first);
    cr_assert_eq(store_close(s), 0);
    st_cfg_free(&c);
    st_rmrf(dir);
    free(dir);
}
