/*
 * checkpoint.h - the 4096-byte `checkpoint` file (STORE.md 5.1).
 *
 *   0 physicMsgTimestamp 8 | 8 logicsMsgTimestamp 8 | 16 indexMsgTimestamp 8
 *  24 masterFlushedOffset 8 | 32 confirmPhyOffset 8          (RocketMQ, 40 B)
 *  40 "SPKCKPT1" 8 | 48 clog_durable 8 | 56 cq_durable 8 | 64 index_durable 8
 *  72 crc_prop_from 8 | 80 CRC-32 of bytes [0, 80) 4         (Sprocket extension)
 *
 * Java brokers read only the first 40 bytes, so the extension keeps the
 * file byte-compatible. The extension records exact offsets instead of
 * timestamps, so recovery knows where durable data ends without the
 * "minus 3 seconds" guess:
 *   INV-1  clog_durable: every CommitLog byte below it had been made durable
 *          (a completed flush) when the checkpoint was written;
 *   INV-2  cq_durable / index_durable: every ConsumeQueue unit / index
 *          entry for records below it had been made durable;
 *   INV-3  all three are record boundaries (or segment starts);
 *   INV-4  crc_prop_from: every record at or above it carries the
 *          whole-record CRC property (CKPT_NO_CRC_PROP: no such promise), so
 *          a record there whose property is damaged cannot pass as one
 *          that never had it.
 * The file is rewritten in place; a torn write fails the CRC and recovery
 * falls back to the RocketMQ timestamps (ext_valid = 0).
 */
#ifndef SPK_STORE_CHECKPOINT_H
#define SPK_STORE_CHECKPOINT_H

#include <stdint.h>

#define CKPT_FILE_SIZE 4096
#define CKPT_MAGIC "SPKCKPT1"
#define CKPT_EXT_END 84 /* bytes used by the RocketMQ fields and the extension */
#define CKPT_NO_CRC_PROP UINT64_MAX

struct ckpt {
    int64_t phys_ts;
    int64_t logics_ts;
    int64_t index_ts;
    uint64_t master_flushed;
    uint64_t confirm;
    int ext_valid;
    uint64_t clog_durable;
    uint64_t cq_durable;
    uint64_t index_durable;
    uint64_t crc_prop_from;
};

void ckpt_encode(const struct ckpt *c, uint8_t buf[CKPT_FILE_SIZE]);
void ckpt_decode(const uint8_t buf[CKPT_FILE_SIZE], struct ckpt *c);

/* Reads <path>; -ENOENT when missing, SPK_ECORRUPT when shorter than 40 B. */
int ckpt_read(const char *path, struct ckpt *c);

/* Writes and fdatasyncs <c> into <fd> (opened by the caller) at offset 0. */
int ckpt_write(int fd, const struct ckpt *c);

#endif /* SPK_STORE_CHECKPOINT_H */
