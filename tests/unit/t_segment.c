/*
 * t_segment.c - segments, the CommitLog's segment list and BLANK filler,
 * and ConsumeQueue unit placement, at the byte level.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "store/commitlog.h"
#include "store/consumequeue.h"
#include "store/record.h"
#include "store/segment.h"
#include "store/storeio.h"
#include "storetest.h"

Test(segment, create_reserves_every_block_and_names_by_offset)
{
    char *dir = st_tmpdir("seg");
    struct segment *seg;
    struct stat st;

    cr_assert_eq(seg_create(dir, 1048576, 1048576, SEG_PREFAULT, &seg), 0);
    char *p = st_path(dir, "00000000000001048576");
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_size, 1048576);
    /* posix_fallocate: the blocks are allocated, the file is not sparse. */
    cr_assert_geq((long long)st.st_blocks * 512, 1048576LL);
    cr_assert_eq(seg_base(seg), 1048576);
    seg_data(seg)[10] = 42;
    cr_assert_eq(seg_sync(seg, 0, 4096, 0), 0);
    /* A second create of the same name fails: never reuse a file blindly. */
    struct segment *dup;
    cr_assert_eq(seg_create(dir, 1048576, 1048576, 0, &dup), -EEXIST);
    seg_unref(seg);

    cr_assert_eq(seg_open(p, 1048576, 1048576, 0, &seg), 0);
    cr_assert_eq(seg_data(seg)[10], 42);
    seg_unref(seg);
    cr_assert_eq(seg_open(p, 1048576, 2097152, 0, &seg), -EINVAL, "size mismatch is refused");

    uint64_t b;
    cr_assert_eq(seg_parse_name("00000000001073741824", &b), 0);
    cr_assert_eq(b, 1073741824ULL);
    cr_assert_neq(seg_parse_name("0000000000107374182", &b), 0);
    cr_assert_neq(seg_parse_name("0000000000107374182x", &b), 0);
    cr_assert_neq(seg_parse_name("99999999999999999999", &b), 0, "overflow");
    free(p);
    st_rmrf(dir);
    free(dir);
}

Test(segment, fallocate_failure_leaves_no_file)
{
    char *dir = st_tmpdir("segfail");
    struct segment *seg;

    sio_fault_arm(SIO_FALLOCATE, 1, SIO_FAULT_ONCE, ENOSPC);
    cr_assert_eq(seg_create(dir, 0, 65536, 0, &seg), -ENOSPC);
    sio_fault_clear();
    char *p = st_path(dir, "00000000000000000000");
    cr_assert_not(st_exists(p));
    free(p);
    st_rmrf(dir);
    free(dir);
}

Test(segment, destroy_unlinks_at_once_but_maps_until_the_last_ref)
{
    char *dir = st_tmpdir("segref");
    struct segment *seg;

    cr_assert_eq(seg_create(dir, 0, 65536, 0, &seg), 0);
    memset(seg_data(seg), 7, 100);
    seg_ref(seg); /* a reader */
    cr_assert_eq(seg_destroy(seg), 0);
    char *p = st_path(dir, "00000000000000000000");
    cr_assert_not(st_exists(p));
    cr_assert_eq(seg_data(seg)[99], 7, "the reader's mapping is intact");
    seg_unref(seg);
    free(p);
    st_rmrf(dir);
    free(dir);
}

Test(commitlog, blank_filler_closes_a_full_segment)
{
    char *dir = st_tmpdir("clog");
    char err[256];
    struct clog *c;
    uint64_t phys;
    uint8_t *dst;
    const size_t ss = 4096;

    cr_assert_eq(clog_open(dir, ss, 0, 0, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clog_reserve(c, 3000, &phys, &dst), 0);
    cr_assert_eq(phys, 0);
    memset(dst, 1, 3000);
    cr_assert_eq(clog_commit(c, phys, 3000), 0);
    /* 3000 + 1200 + 8 > 4096: the record goes to the next segment and a
     * BLANK of the 1096 remaining bytes is written at 3000. */
    cr_assert_eq(clog_reserve(c, 1200, &phys, &dst), 0);
    cr_assert_eq(phys, 4096);
    memset(dst, 2, 1200);
    cr_assert_eq(clog_commit(c, phys, 1200), 0);
    cr_assert_eq(clog_written(c), 4096 + 1200);
    struct segment *s0 = clog_seg_at(c, 0);
    cr_assert_not_null(s0);
    cr_assert_eq(be_get32(seg_data(s0) + 3000), 1096);
    cr_assert_eq(be_get32(seg_data(s0) + 3004), REC_MAGIC_BLANK);
    seg_unref(s0);
    /* A record that leaves exactly 8 bytes still fits (INV-3). */
    cr_assert_eq(clog_reserve(c, 4096 - 1200 - 8, &phys, &dst), 0);
    cr_assert_eq(phys, 4096 + 1200);
    cr_assert_eq(clog_commit(c, phys, 4096 - 1200 - 8), 0);
    cr_assert_eq(clog_reserve(c, 4089, &phys, &dst), SPK_ETOOBIG);

    /* Truncation zeroes the cut region and deletes later segments. */
    uint64_t zeroed;
    cr_assert_eq(clog_truncate(c, 2000, 1, &zeroed), 0);
    cr_assert_eq(zeroed, 3008 - 2000, "up to the end of the BLANK header");
    cr_assert_eq(clog_nsegs(c), 1);
    cr_assert_eq(clog_written(c), 2000);
    s0 = clog_seg_at(c, 0);
    for (size_t i = 2000; i < ss; i++)
        cr_assert_eq(seg_data(s0)[i], 0, "byte %zu", i);
    cr_assert_eq(seg_data(s0)[1999], 1);
    seg_unref(s0);
    clog_close(c);

    /* Reopen: sizes and names are checked. (A last file SHORTER than the
     * setting is a cut-short tail and is extended: see clog_open.) */
    cr_assert_eq(clog_open(dir, ss, 0, 0, &c, err, sizeof(err)), 0, "%s", err);
    clog_close(c);
    cr_assert_eq(clog_open(dir, 2048, 0, 0, &c, err, sizeof(err)), SPK_ECORRUPT);
    cr_assert(strstr(err, "00000000000000000000") != NULL, "%s", err);
    st_rmrf(dir);
    free(dir);
}

Test(commitlog, a_gap_in_segment_names_is_refused)
{
    char *dir = st_tmpdir("clogg");
    char err[256];
    struct clog *c;
    struct segment *s;

    cr_assert_eq(seg_create(dir, 0, 4096, 0, &s), 0);
    seg_unref(s);
    cr_assert_eq(seg_create(dir, 8192, 4096, 0, &s), 0);
    seg_unref(s);
    cr_assert_eq(clog_open(dir, 4096, 0, 0, &c, err, sizeof(err)), SPK_ECORRUPT);
    cr_assert(strstr(err, "00000000000000008192") != NULL, "%s", err);
    st_rmrf(dir);
    free(dir);
}

Test(consumequeue, units_land_at_queue_offset_times_20)
{
    char *dir = st_tmpdir("cq");
    char err[256], qdir[512];
    struct cq *q;
    const size_t ss = 10 * CQ_UNIT_SIZE;

    snprintf(qdir, sizeof(qdir), "%s/T/3", dir);
    cr_assert_eq(cq_open(qdir, "T", 3, ss, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cq_max(q), 0);
    /* The first unit is unit 12: file 00000000000000000200 (byte 240 is in
     * the file starting at 200), units 10 and 11 padded with blanks. */
    cr_assert_eq(cq_put(q, 12, 1000, 150, -5), 0);
    cr_assert_eq(cq_min(q), 12);
    cr_assert_eq(cq_max(q), 13);
    char *p = st_path(qdir, "00000000000000000200");
    size_t len;
    uint8_t *f = st_read_file(p, &len);
    cr_assert_eq(len, ss);
    uint8_t blank[20] = {0, 0, 0, 0, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(memcmp(f, blank, 20), 0);
    cr_assert_eq(memcmp(f + 20, blank, 20), 0);
    uint8_t unit[20] = {0, 0, 0, 0, 0, 0, 0x03, 0xE8, 0, 0, 0, 0x96,
                        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFB};
    cr_assert_eq(memcmp(f + 40, unit, 20), 0);
    free(f);
    free(p);

    for (uint64_t i = 13; i < 25; i++)
        cr_assert_eq(cq_put(q, i, 1000 + 150 * (i - 12), 150, 0), 0);
    cr_assert_eq(cq_max(q), 25);
    struct cq_unit u;
    cr_assert_eq(cq_get_unit(q, 24, &u), 0);
    cr_assert_eq(u.phys, 1000 + 150 * 12);
    cr_assert_eq(cq_get_unit(q, 25, &u), -ENOENT);
    cr_assert_eq(cq_flush(q), 0);

    /* Truncation drops units and zeroes what was above. */
    cr_assert_eq(cq_truncate_from(q, 21, 1), 0);
    cr_assert_eq(cq_max(q), 21);
    cr_assert_eq(cq_max_phys_end(q), 1000 + 150 * 9);
    cq_close(q);
    cr_assert_eq(cq_open(qdir, "T", 3, ss, &q, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cq_max(q), 21, "reopen finds the same end");
    cq_correct_min(q, 1000 + 150 * 3);
    cr_assert_eq(cq_min(q), 15);
    /* Segments whose last unit is below the log minimum go (never the last). */
    cr_assert_eq(cq_delete_below(q, 1000 + 150 * 8), 1);
    cr_assert_eq(cq_min(q), 20);
    cq_close(q);
    st_rmrf(dir);
    free(dir);
}

Test(consumequeue, blocks_are_reserved_as_units_arrive)
{
    char *dir = st_tmpdir("cqres");
    char err[256], qdir[512];
    struct cq *q;
    struct stat st;
    const size_t ss = 300000 * CQ_UNIT_SIZE; /* RocketMQ's 6,000,000 bytes */

    snprintf(qdir, sizeof(qdir), "%s/T/0", dir);
    cr_assert_eq(cq_open(qdir, "T", 0, ss, &q, err, sizeof(err)), 0, "%s", err);
    for (uint64_t i = 0; i < 10; i++)
        cr_assert_eq(cq_put(q, i, 100 * i, 100, 0), 0);
    char *p = st_path(qdir, "00000000000000000000");
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq((size_t)st.st_size, ss, "the file has its full size");
    /* ...but only the first 80 KiB step has blocks, not 6 MB. */
    cr_assert_leq((long long)st.st_blocks * 512, 128 * 1024LL, "%lld bytes allocated",
                  (long long)st.st_blocks * 512);

    /* Past the first step, the next one is reserved before the store. */
    for (uint64_t i = 10; i < 5000; i++)
        cr_assert_eq(cq_put(q, i, 100 * i, 100, 0), 0);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_geq((long long)st.st_blocks * 512, 5000LL * CQ_UNIT_SIZE);

    /* A full disk when the next step is needed: an error, not SIGBUS. */
    sio_fault_arm(SIO_FALLOCATE, 1, SIO_FAULT_PERSISTENT, ENOSPC);
    int rc = 0;
    uint64_t i;
    for (i = 5000; i < 9000 && rc == 0; i++)
        rc = cq_put(q, i, 100 * i, 100, 0);
    sio_fault_clear();
    cr_assert_eq(rc, -ENOSPC, "no step boundary was crossed?");
    cr_assert_eq(cq_max(q), i - 1, "the refused unit must not be published");
    cr_assert_eq(cq_put(q, i - 1, 100 * (i - 1), 100, 0), 0, "space came back");
    free(p);
    cq_close(q);
    st_rmrf(dir);
    free(dir);
}
