/*
 * record.h - the CommitLog record: encoder, validating parser, properties.
 *
 * Format: ../shared/spec/STORE.md section 2 (also docs/FORMAT.md). All
 * integers big-endian. IPv4/IPv4/V1 layout:
 *
 *    0 TOTALSIZE 4 | 4 MAGICCODE 4 | 8 BODYCRC 4 | 12 QUEUEID 4 | 16 FLAG 4
 *   20 QUEUEOFFSET 8 | 28 PHYSICALOFFSET 8 | 36 SYSFLAG 4 | 40 BORNTIMESTAMP 8
 *   48 BORNHOST 8 | 56 STORETIMESTAMP 8 | 64 STOREHOST 8 | 72 RECONSUMETIMES 4
 *   76 PREPARED TX OFFSET 8 | 84 BODYLEN 4 | body | TOPICLEN 1 (V2: 2) | topic
 *   | PROPLEN 2 | properties (name 0x01 value 0x02 ...)
 *
 * A host is 8 bytes (IPv4 + port) or 20 (IPv6 + port, sysflag 0x10/0x20).
 *
 * Validity rule (what recovery trusts):
 *   INV-1  magic is V1 or V2, TOTALSIZE is at least the fixed part and fits
 *          the bytes available, every length field stays inside TOTALSIZE,
 *          and the sum of the parts equals TOTALSIZE exactly;
 *   INV-2  when CRCs are checked: BODYCRC matches the body, and when the
 *          record carries the whole-record property __CRC32# (written by
 *          Sprocket always), it matches CRC-32 of every byte of the record
 *          except its last 20;
 *   INV-3  PHYSICALOFFSET equals the record's position (the caller passes
 *          the expected position), so a stale record can never validate at
 *          another offset.
 * A BLANK filler (TOTALSIZE, BLANK magic) ends a segment.
 */
#ifndef SPK_STORE_RECORD_H
#define SPK_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define REC_MAGIC_V1 0xDAA320A7u
#define REC_MAGIC_V2 0xDAA320ABu
#define REC_MAGIC_BLANK 0xCBD43194u
#define REC_BLANK_MIN 8      /* a record never ends within 8 bytes of a segment end */
#define REC_CRC_PROP_LEN 20  /* "__CRC32#" 0x01 10 digits 0x02 */
#define REC_MIN_LEN 91       /* IPv4/IPv4/V1 with empty body, topic, properties */

/* SYSFLAG bits */
#define REC_SYS_COMPRESSED 0x1
#define REC_SYS_MULTI_TAGS 0x2
#define REC_SYS_TX_MASK 0xC
#define REC_SYS_TX_NOT 0x0
#define REC_SYS_TX_PREPARED 0x4
#define REC_SYS_TX_COMMIT 0x8
#define REC_SYS_TX_ROLLBACK 0xC
#define REC_SYS_BORN_V6 0x10
#define REC_SYS_STORE_V6 0x20

/* Property separators */
#define REC_NAME_SEP '\001'
#define REC_PROP_SEP '\002'

/* A message to append. Borrowed by the encoder; nothing is kept. */
struct rec_msg {
    const char *topic;
    size_t topic_len;
    int32_t queue_id;
    int32_t flag;
    const void *body;
    size_t body_len;
    const char *props; /* may be NULL */
    size_t props_len;
    int32_t sysflag; /* host bits are derived from the host lengths */
    int64_t born_ts;
    uint8_t born_host[16];
    int born_host_len; /* 4 or 16 */
    int32_t born_port;
    uint8_t store_host[16];
    int store_host_len; /* 4 or 16 */
    int32_t store_port;
    int32_t reconsume_times;
    int64_t prepared_tx_offset;
};

/* A parsed record: pointers into the buffer that was parsed. */
struct rec_view {
    uint32_t total;
    uint32_t magic;
    uint32_t body_crc;
    int32_t queue_id;
    int32_t flag;
    uint64_t queue_off;
    uint64_t phys_off;
    int32_t sysflag;
    int64_t born_ts;
    const uint8_t *born_host;
    int born_host_len;
    int32_t born_port;
    int64_t store_ts;
    const uint8_t *store_host;
    int store_host_len;
    int32_t store_port;
    int32_t reconsume_times;
    int64_t prepared_tx_offset;
    const uint8_t *body;
    uint32_t body_len;
    const char *topic;
    uint32_t topic_len;
    const char *props;
    uint32_t props_len;
    int has_crc_prop;
};

/*
 * Total encoded length of <m>, including the whole-record CRC property
 * when <crc_prop> is set. Returns 0 if a field is too long for the format
 * (topic > 32767 bytes, properties > 32767 bytes).
 */
size_t rec_length(const struct rec_msg *m, int crc_prop);

/*
 * Encodes <m> into dst[0..len) where len == rec_length(m, crc_prop).
 * <body_crc> is the masked CRC of the body (computed by the caller outside
 * any lock). The whole-record CRC, when <crc_prop> is set, is computed last.
 */
void rec_encode(uint8_t *dst, size_t len, const struct rec_msg *m, uint32_t body_crc,
                uint64_t queue_off, uint64_t phys_off, int64_t store_ts, int crc_prop);

/*
 * Same as rec_encode, but takes the plain (unmasked) CRC-32 of the body and
 * derives the whole-record CRC from it with crc32_combine instead of
 * reading the body a second time: the append path's costliest step.
 */
void rec_encode_fast(uint8_t *dst, size_t len, const struct rec_msg *m, uint32_t body_crc_plain,
                     uint64_t queue_off, uint64_t phys_off, int64_t store_ts, int crc_prop);

/* Rewrites QUEUEOFFSET in an encoded record and refreshes its CRC property. */
void rec_patch_queue_off(uint8_t *rec, uint64_t queue_off);

/* Writes a BLANK filler of <len> bytes' claim (only 8 bytes are written). */
void rec_encode_blank(uint8_t *dst, uint32_t len);

enum rec_check {
    REC_CHECK_NONE = 0,     /* structure only */
    REC_CHECK_CRC = 1,      /* plus BODYCRC and the __CRC32# property if present */
    REC_CHECK_CRC_PROP = 2, /* plus: the __CRC32# property must be there. A
                             * damaged property looks like no property, so
                             * where every record is known to carry one
                             * (checkpoint.h INV-4) its absence is damage. */
};

#define REC_ANY_POS UINT64_MAX

/*
 * Parses the record at p[0..avail). Returns its length (> 0) when valid,
 * 0 for a BLANK filler (out->total holds the claimed filler length), or
 * SPK_ECORRUPT with a static reason in *why. <expect_phys> is the record's
 * position (INV-3), or REC_ANY_POS. Never reads outside p[0..avail).
 */
int rec_parse(const uint8_t *p, size_t avail, uint64_t expect_phys, enum rec_check check,
              struct rec_view *out, const char **why);

/*
 * Finds property <name> in a properties area; the last occurrence wins and
 * pieces with an empty name or value are ignored, as RocketMQ's parser
 * does. Returns 1 and sets *val and *vlen when found, else 0.
 */
int rec_prop_get(const char *props, size_t len, const char *name, const char **val,
                 size_t *vlen);

/* Offset message id: upper-case hex of store host, port, phys offset.
 * <out> needs 57 bytes (IPv6); returns the id length (32 or 56). */
size_t rec_msg_id(const uint8_t *host, int host_len, int32_t port, uint64_t phys, char *out);

/* Decodes an offset message id; returns 0 and the physical offset. */
int rec_msg_id_decode(const char *id, size_t len, uint64_t *phys);

#endif /* SPK_STORE_RECORD_H */
