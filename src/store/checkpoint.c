/*
 * checkpoint.c - read and write the checkpoint file (see checkpoint.h).
 */
#include "store/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "common/errors.h"
#include "store/storeio.h"

void
ckpt_encode(const struct ckpt *c, uint8_t buf[CKPT_FILE_SIZE])
{
    memset(buf, 0, CKPT_FILE_SIZE);
    be_put64(buf + 0, (uint64_t)c->phys_ts);
    be_put64(buf + 8, (uint64_t)c->logics_ts);
    be_put64(buf + 16, (uint64_t)c->index_ts);
    be_put64(buf + 24, c->master_flushed);
    be_put64(buf + 32, c->confirm);
    memcpy(buf + 40, CKPT_MAGIC, 8);
    be_put64(buf + 48, c->clog_durable);
    be_put64(buf + 56, c->cq_durable);
    be_put64(buf + 64, c->index_durable);
    be_put64(buf + 72, c->crc_prop_from);
    be_put32(buf + 80, spk_crc32(buf, 80));
}

void
ckpt_decode(const uint8_t buf[CKPT_FILE_SIZE], struct ckpt *c)
{
    memset(c, 0, sizeof(*c));
    c->phys_ts = (int64_t)be_get64(buf + 0);
    c->logics_ts = (int64_t)be_get64(buf + 8);
    c->index_ts = (int64_t)be_get64(buf + 16);
    c->master_flushed = be_get64(buf + 24);
    c->confirm = be_get64(buf + 32);
    c->crc_prop_from = CKPT_NO_CRC_PROP;
    if (memcmp(buf + 40, CKPT_MAGIC, 8) == 0 && be_get32(buf + 80) == spk_crc32(buf, 80)) {
        c->ext_valid = 1;
        c->clog_durable = be_get64(buf + 48);
        c->cq_durable = be_get64(buf + 56);
        c->index_durable = be_get64(buf + 64);
        c->crc_prop_from = be_get64(buf + 72);
    }
}

int
ckpt_read(const char *path, struct ckpt *c)
{
    uint8_t buf[CKPT_FILE_SIZE];
    int fd = sio_open(path, O_RDONLY, 0);
    ssize_t n;

    if (fd < 0)
        return fd;
    memset(buf, 0, sizeof(buf));
    n = sio_pread(fd, buf, sizeof(buf), 0);
    sio_close(fd);
    if (n < 0)
        return (int)n;
    if (n < 40)
        return SPK_ECORRUPT;
    ckpt_decode(buf, c);
    return 0;
}

int
ckpt_write(int fd, const struct ckpt *c)
{
    uint8_t buf[CKPT_FILE_SIZE];
    int rc;

    ckpt_encode(c, buf);
    rc = sio_pwrite(fd, buf, sizeof(buf), 0);
    if (rc == 0)
        rc = sio_fdatasync(fd);
    return rc;
}
