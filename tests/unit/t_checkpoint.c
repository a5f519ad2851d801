/*
 * t_checkpoint.c - the checkpoint file (store/checkpoint.h): the exact
 * bytes of the RocketMQ part and of the Sprocket extension, detection of a
 * torn extension, and reading short or missing files.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/errors.h"
#include "store/checkpoint.h"
#include "store/storeio.h"
#include "storetest.h"

/*
 * The reference checkpoint. The CRC-32 (zlib) of bytes [0, 80) below was
 * computed outside this code base: 0x88304B1C.
 */
/* clang-format off */
static const uint8_t ref_ckpt[84] = {
    0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x7B, /*  0 physicMsgTimestamp 1700000000123 */
    0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x64, /*  8 logicsMsgTimestamp 1700000000100 */
    0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x64, 0x18, /* 16 indexMsgTimestamp 1699999999000 */
    0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* 24 masterFlushedOffset */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* 32 confirmPhyOffset 4096 */
    'S',  'P',  'K',  'C',  'K',  'P',  'T',  '1',  /* 40 extension magic */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, /* 48 clog_durable 0x10000 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xF0, /* 56 cq_durable 0xFFF0 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, /* 64 index_durable 0x8000 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, /* 72 crc_prop_from 0x4000 */
    0x88, 0x30, 0x4B, 0x1C,                         /* 80 CRC-32 of [0, 80) */
};
/* clang-format on */

static struct ckpt
ref_value(void)
{
    struct ckpt c;

    memset(&c, 0, sizeof(c));
    c.phys_ts = INT64_C(1700000000123);
    c.logics_ts = INT64_C(1700000000100);
    c.index_ts = INT64_C(1699999999000);
    c.master_flushed = UINT64_C(0x1122334455667788);
    c.confirm = 4096;
    c.ext_valid = 1;
    c.clog_durable = 0x10000;
    c.cq_durable = 0xFFF0;
    c.index_durable = 0x8000;
    c.crc_prop_from = 0x4000;
    return c;
}

static void
expect_ckpt_eq(const struct ckpt *a, const struct ckpt *b)
{
    cr_expect(eq(i64, a->phys_ts, b->phys_ts));
    cr_expect(eq(i64, a->logics_ts, b->logics_ts));
    cr_expect(eq(i64, a->index_ts, b->index_ts));
    cr_expect(eq(u64, a->master_flushed, b->master_flushed));
    cr_expect(eq(u64, a->confirm, b->confirm));
    cr_expect(eq(int, a->ext_valid, b->ext_valid));
    cr_expect(eq(u64, a->clog_durable, b->clog_durable));
    cr_expect(eq(u64, a->cq_durable, b->cq_durable));
    cr_expect(eq(u64, a->index_durable, b->index_durable));
    cr_expect(eq(u64, a->crc_prop_from, b->crc_prop_from));
}

Test(checkpoint, encode_bytes)
{
    static uint8_t buf[CKPT_FILE_SIZE];
    struct ckpt c = ref_value();

    memset(buf, 0xA5, sizeof(buf));
    ckpt_encode(&c, buf);
    for (size_t i = 0; i < sizeof(ref_ckpt); i++)
        cr_expect(eq(u8, buf[i], ref_ckpt[i]), "byte %zu", i);
    /* The rest of the 4096 bytes is zero. */
    size_t nonzero = 0;
    for (size_t i = sizeof(ref_ckpt); i < CKPT_FILE_SIZE; i++)
        nonzero += buf[i] != 0;
    cr_expect(eq(sz, nonzero, 0), "bytes after the extension must be zero");
}

Test(checkpoint, decode_round_trip)
{
    static uint8_t buf[CKPT_FILE_SIZE];
    struct ckpt want = ref_value(), got;

    memset(buf, 0, sizeof(buf));
    memcpy(buf, ref_ckpt, sizeof(ref_ckpt));
    memset(&got, 0x77, sizeof(got));
    ckpt_decode(buf, &got);
    expect_ckpt_eq(&got, &want);

    /* Extremes survive a round trip (timestamps are signed). */
    want.phys_ts = -1;
    want.logics_ts = INT64_MIN;
    want.index_ts = INT64_MAX;
    want.clog_durable = UINT64_MAX;
    want.cq_durable = 0;
    ckpt_encode(&want, buf);
    ckpt_decode(buf, &got);
    expect_ckpt_eq(&got, &want);
}

Test(checkpoint, torn_extension_is_detected)
{
    static uint8_t buf[CKPT_FILE_SIZE];
    struct ckpt got;

    /* Any changed byte in [0, 84) invalidates the extension: the CRC covers
     * the RocketMQ fields too, since a torn write may hit either part. */
    for (size_t i = 0; i < sizeof(ref_ckpt); i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memset(buf, 0, sizeof(buf));
            memcpy(buf, ref_ckpt, sizeof(ref_ckpt));
            buf[i] ^= (uint8_t)(1u << bit);
            ckpt_decode(buf, &got);
            cr_expect(eq(int, got.ext_valid, 0), "flip at byte %zu bit %d not detected", i, bit);
            cr_expect(eq(u64, got.clog_durable, 0), "an invalid extension must not be used");
            cr_expect(eq(u64, got.cq_durable, 0));
            cr_expect(eq(u64, got.index_durable, 0));
            cr_expect(eq(u64, got.crc_prop_from, CKPT_NO_CRC_PROP),
                      "without a valid extension nothing is promised");
        }
    }

    /* A write torn after the RocketMQ fields: the extension reads as zeros,
     * the RocketMQ part is still used. */
    memset(buf, 0, sizeof(buf));
    memcpy(buf, ref_ckpt, 40);
    ckpt_decode(buf, &got);
    cr_expect(eq(int, got.ext_valid, 0));
    cr_expect(eq(i64, got.phys_ts, INT64_C(1700000000123)));
    cr_expect(eq(i64, got.index_ts, INT64_C(1699999999000)));
    cr_expect(eq(u64, got.confirm, 4096));

    /* A new extension with an old CRC (the last 4 bytes not yet written). */
    struct ckpt c = ref_value();
    c.clog_durable += 4096;
    ckpt_encode(&c, buf);
    memcpy(buf + 80, ref_ckpt + 80, 4);
    ckpt_decode(buf, &got);
    cr_expect(eq(int, got.ext_valid, 0));

    /* A file written by a Java broker: 40 bytes of fields, then zeros. */
    memset(buf, 0, sizeof(buf));
    memcpy(buf, ref_ckpt, 40);
    ckpt_decode(buf, &got);
    cr_expect(eq(int, got.ext_valid, 0));
}

Test(checkpoint, read_short_and_missing_files)
{
    char *dir = st_tmpdir("ckpt");
    char *path = st_path(dir, "checkpoint");
    struct ckpt got, want = ref_value();

    memset(&got, 0, sizeof(got));
    cr_expect(eq(int, ckpt_read(path, &got), -ENOENT));

    st_write_file(path, "", 0);
    cr_expect(eq(int, ckpt_read(path, &got), SPK_ECORRUPT));
    st_write_file(path, ref_ckpt, 39);
    cr_expect(eq(int, ckpt_read(path, &got), SPK_ECORRUPT), "39 bytes must be refused");

    /* 40 bytes: the RocketMQ part only. */
    st_write_file(path, ref_ckpt, 40);
    memset(&got, 0x55, sizeof(got));
    cr_assert(eq(int, ckpt_read(path, &got), 0));
    cr_expect(eq(i64, got.phys_ts, want.phys_ts));
    cr_expect(eq(i64, got.logics_ts, want.logics_ts));
    cr_expect(eq(u64, got.master_flushed, want.master_flushed));
    cr_expect(eq(u64, got.confirm, want.confirm));
    cr_expect(eq(int, got.ext_valid, 0));
    cr_expect(eq(u64, got.clog_durable, 0));

    /* 84 bytes (the whole extension, no padding) and a full file. */
    st_write_file(path, ref_ckpt, sizeof(ref_ckpt));
    cr_assert(eq(int, ckpt_read(path, &got), 0));
    expect_ckpt_eq(&got, &want);

    /* Cut inside the extension: falls back to the RocketMQ fields. */
    st_write_file(path, ref_ckpt, 60);
    cr_assert(eq(int, ckpt_read(path, &got), 0));
    cr_expect(eq(int, got.ext_valid, 0));
    cr_expect(eq(i64, got.phys_ts, want.phys_ts));

    st_rmrf(dir);
    free(path);
    free(dir);
}

Test(checkpoint, write_and_read_back)
{
    char *dir = st_tmpdir("ckpt");
    char *path = st_path(dir, "checkpoint");
    struct ckpt want = ref_value(), got;
    size_t len;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

    cr_assert(ne(int, fd, -1));
    cr_assert(eq(int, ckpt_write(fd, &want), 0));
    uint8_t *bytes = st_read_file(path, &len);
    cr_expect(eq(sz, len, (size_t)CKPT_FILE_SIZE));
    cr_expect(eq(int, memcmp(bytes, ref_ckpt, sizeof(ref_ckpt)), 0));
    free(bytes);
    cr_assert(eq(int, ckpt_read(path, &got), 0));
    expect_ckpt_eq(&got, &want);

    /* Overwriting in place keeps the file at 4096 bytes. */
    want.clog_durable = 0x20000;
    cr_assert(eq(int, ckpt_write(fd, &want), 0));
    cr_assert(eq(int, ckpt_read(path, &got), 0));
    expect_ckpt_eq(&got, &want);
    free(st_read_file(path, &len));
    cr_expect(eq(sz, len, (size_t)CKPT_FILE_SIZE));

    /* Failures of the write or of the sync are reported. */
    sio_fault_clear();
    sio_fault_arm(SIO_PWRITE, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, ckpt_write(fd, &want), -EIO));
    sio_fault_arm(SIO_FSYNC, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, ckpt_write(fd, &want), -EIO));
    cr_expect(eq(int, ckpt_write(fd, &want), 0));
    sio_fault_clear();

    /* An unreadable checkpoint is an error, not a silent default. */
    sio_fault_arm(SIO_PREAD, 1, SIO_FAULT_ONCE, EIO);
    cr_expect(eq(int, ckpt_read(path, &got), -EIO));
    sio_fault_clear();

    close(fd);
    st_rmrf(dir);
    free(path);
    free(dir);
}
