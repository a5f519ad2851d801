/*
 * t_record.c - the CommitLog record codec (store/record.h) against bytes
 * worked out by hand from STORE.md section 2.
 *
 * The reference record used throughout:
 *   topic "TopicTest" (9), queue 3, flag 7, body "Hello Sprocket!" (15),
 *   properties "KEYS\1order-1\2TAGS\1TagA\2" (23), sysflag 0,
 *   born 1700000000000 ms from 192.168.0.10:54321,
 *   stored 1700000000123 ms at 10.0.0.1:10911, reconsumed 2 times,
 *   queue offset 42, physical offset 0x12345, whole-record CRC on.
 *   TOTALSIZE = 91 + 15 + 9 + (23 + 20) = 158.
 * The two CRCs were computed outside this code base (zlib crc32):
 *   BODYCRC   crc32("Hello Sprocket!") & 0x7FFFFFFF = 0x71F63E0D
 *   __CRC32#  crc32(record[0..138)) & 0x7FFFFFFF   = 483384617,
 *             written least significant digit first: "7164833840".
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "common/errors.h"
#include "store/record.h"

#define REF_TOPIC "TopicTest"
#define REF_BODY "Hello Sprocket!"
#define REF_PROPS "KEYS\001order-1\002TAGS\001TagA\002"
#define REF_QOFF 42u
#define REF_PHYS 0x12345u
#define REF_STORE_TS INT64_C(1700000000123)
#define REF_BODY_CRC 0x71F63E0Du

/* clang-format off */
static const uint8_t ref_bytes[158] = {
    0x00, 0x00, 0x00, 0x9E,                         /*   0 TOTALSIZE 158 */
    0xDA, 0xA3, 0x20, 0xA7,                         /*   4 MAGICCODE V1 */
    0x71, 0xF6, 0x3E, 0x0D,                         /*   8 BODYCRC */
    0x00, 0x00, 0x00, 0x03,                         /*  12 QUEUEID 3 */
    0x00, 0x00, 0x00, 0x07,                         /*  16 FLAG 7 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A, /*  20 QUEUEOFFSET 42 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x23, 0x45, /*  28 PHYSICALOFFSET 0x12345 */
    0x00, 0x00, 0x00, 0x00,                         /*  36 SYSFLAG 0 */
    0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x00, /*  40 BORNTIMESTAMP 1700000000000 */
    0xC0, 0xA8, 0x00, 0x0A,                         /*  48 BORNHOST 192.168.0.10 */
    0x00, 0x00, 0xD4, 0x31,                         /*  52   port 54321 */
    0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x7B, /*  56 STORETIMESTAMP 1700000000123 */
    0x0A, 0x00, 0x00, 0x01,                         /*  64 STOREHOST 10.0.0.1 */
    0x00, 0x00, 0x2A, 0x9F,                         /*  68   port 10911 */
    0x00, 0x00, 0x00, 0x02,                         /*  72 RECONSUMETIMES 2 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /*  76 PREPARED TX OFFSET 0 */
    0x00, 0x00, 0x00, 0x0F,                         /*  84 BODY length 15 */
    'H', 'e', 'l', 'l', 'o', ' ', 'S', 'p', 'r', 'o', 'c', 'k', 'e', 't', '!', /* 88 body */
    0x09,                                           /* 103 TOPIC length 9 */
    'T', 'o', 'p', 'i', 'c', 'T', 'e', 's', 't',    /* 104 topic */
    0x00, 0x2B,                                     /* 113 PROPERTIES length 43 */
    'K', 'E', 'Y', 'S', 0x01, 'o', 'r', 'd', 'e', 'r', '-', '1', 0x02, /* 115 */
    'T', 'A', 'G', 'S', 0x01, 'T', 'a', 'g', 'A', 0x02,                /* 128 */
    '_', '_', 'C', 'R', 'C', '3', '2', '#', 0x01,                      /* 138 CRC name */
    '7', '1', '6', '4', '8', '3', '3', '8', '4', '0',                  /* 147 digits, LSD first */
    0x02,                                                              /* 157 */
};
/* clang-format on */

/* Field boundaries of the reference record, for reporting which field a
 * byte belongs to. */
static const char *
ref_field(size_t off)
{
    static const struct {
        size_t start;
        const char *name;
    } f[] = {
        {0, "TOTALSIZE"},       {4, "MAGICCODE"},      {8, "BODYCRC"},         {12, "QUEUEID"},
        {16, "FLAG"},           {20, "QUEUEOFFSET"},   {28, "PHYSICALOFFSET"}, {36, "SYSFLAG"},
        {40, "BORNTIMESTAMP"},  {48, "BORNHOST"},      {56, "STORETIMESTAMP"}, {64, "STOREHOST"},
        {72, "RECONSUMETIMES"}, {76, "PREPAREDTXOFF"}, {84, "BODYLEN"},        {88, "BODY"},
        {103, "TOPICLEN"},      {104, "TOPIC"},        {113, "PROPLEN"},       {115, "PROPS"},
        {138, "CRC32 name"},    {147, "CRC32 digits"}, {157, "CRC32 end"},
    };
    const char *name = "?";

    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (off >= f[i].start)
            name = f[i].name;
    return name;
}

static struct rec_msg
ref_msg(void)
{
    struct rec_msg m;

    memset(&m, 0, sizeof(m));
    m.topic = REF_TOPIC;
    m.topic_len = strlen(REF_TOPIC);
    m.queue_id = 3;
    m.flag = 7;
    m.body = REF_BODY;
    m.body_len = strlen(REF_BODY);
    m.props = REF_PROPS;
    m.props_len = sizeof(REF_PROPS) - 1;
    m.sysflag = 0;
    m.born_ts = INT64_C(1700000000000);
    memcpy(m.born_host, (const uint8_t[]){192, 168, 0, 10}, 4);
    m.born_host_len = 4;
    m.born_port = 54321;
    memcpy(m.store_host, (const uint8_t[]){10, 0, 0, 1}, 4);
    m.store_host_len = 4;
    m.store_port = 10911;
    m.reconsume_times = 2;
    m.prepared_tx_offset = 0;
    return m;
}

/* Encodes <m> into a new malloc'd buffer of exactly rec_length() bytes. */
static uint8_t *
encode(const struct rec_msg *m, uint64_t qoff, uint64_t phys, int crc_prop, size_t *len)
{
    size_t n = rec_length(m, crc_prop);
    uint8_t *buf;

    cr_assert(lt(sz, 0, n), "rec_length refused a valid message");
    buf = malloc(n);
    cr_assert(ne(ptr, buf, NULL));
    memset(buf, 0xEE, n);
    rec_encode(buf, n, m, spk_crc32_masked(m->body, m->body_len), qoff, phys, REF_STORE_TS,
               crc_prop);
    *len = n;
    return buf;
}

/* The 10 CRC digits (least significant first) must hold the masked CRC of
 * everything before the last 20 bytes. */
static void
expect_crc_prop(const uint8_t *rec, size_t len)
{
    char want[11];
    uint32_t crc = spk_crc32_masked(rec, len - REC_CRC_PROP_LEN);

    cr_assert(ge(sz, len, (size_t)REC_CRC_PROP_LEN));
    cr_expect(eq(int, memcmp(rec + len - 20, "__CRC32#\001", 9), 0), "CRC property name");
    cr_expect(eq(u8, rec[len - 1], 0x02), "CRC property must end with 0x02");
    for (int i = 0; i < 10; i++) {
        want[i] = (char)('0' + crc % 10);
        crc /= 10;
    }
    want[10] = '\0';
    cr_expect(eq(int, memcmp(rec + len - 11, want, 10), 0), "CRC digits: have %.10s want %s",
              (const char *)rec + len - 11, want);
}

Test(record, body_crc_is_masked_zlib_crc32)
{
    /* Pins the constant used in ref_bytes to zlib, and the mask. */
    cr_expect(eq(u32, spk_crc32_masked(REF_BODY, strlen(REF_BODY)), REF_BODY_CRC));
    cr_expect(eq(u32, spk_crc32("123456789", 9), 0xCBF43926u)); /* the CRC-32 check value */
    cr_expect(eq(u32, spk_crc32_masked("123456789", 9), 0x4BF43926u));
    cr_expect(eq(u32, spk_crc32_masked(NULL, 0), 0u));
}

Test(record, encode_matches_hand_computed_bytes)
{
    struct rec_msg m = ref_msg();
    size_t len;
    uint8_t *rec;

    cr_assert(eq(sz, rec_length(&m, 1), sizeof(ref_bytes)));
    cr_assert(eq(sz, rec_length(&m, 1), (size_t)(91 + 15 + 9 + 23 + 20)));
    rec = encode(&m, REF_QOFF, REF_PHYS, 1, &len);
    for (size_t i = 0; i < len; i++)
        cr_expect(eq(u8, rec[i], ref_bytes[i]), "byte %zu (%s) differs", i, ref_field(i));
    free(rec);
}

Test(record, encode_without_crc_property)
{
    struct rec_msg m = ref_msg();
    size_t len;
    uint8_t *rec;

    /* TOTALSIZE = 91 + body + topic + props: the reference minus the 20
     * CRC bytes, with PROPLEN 23 and nothing appended. */
    cr_assert(eq(sz, rec_length(&m, 0), (size_t)(91 + 15 + 9 + 23)));
    rec = encode(&m, REF_QOFF, REF_PHYS, 0, &len);
    cr_assert(eq(sz, len, (size_t)138));
    cr_expect(eq(u32, be_get32(rec), 138u));
    cr_expect(eq(int, memcmp(rec + 4, ref_bytes + 4, 113 - 4), 0), "fixed part and body differ");
    cr_expect(eq(u16, be_get16(rec + 113), 23));
    cr_expect(eq(int, memcmp(rec + 115, REF_PROPS, 23), 0));
    free(rec);
}

Test(record, parse_reference_record)
{
    struct rec_view v;
    const char *why = NULL;
    int rc = rec_parse(ref_bytes, sizeof(ref_bytes), REF_PHYS, REC_CHECK_CRC, &v, &why);

    cr_assert(eq(int, rc, 158), "rec_parse: %s", why ? why : "");
    cr_expect(eq(u32, v.total, 158u));
    cr_expect(eq(u32, v.magic, REC_MAGIC_V1));
    cr_expect(eq(u32, v.body_crc, REF_BODY_CRC));
    cr_expect(eq(i32, v.queue_id, 3));
    cr_expect(eq(i32, v.flag, 7));
    cr_expect(eq(u64, v.queue_off, (uint64_t)REF_QOFF));
    cr_expect(eq(u64, v.phys_off, (uint64_t)REF_PHYS));
    cr_expect(eq(i32, v.sysflag, 0));
    cr_expect(eq(i64, v.born_ts, INT64_C(1700000000000)));
    cr_expect(eq(int, v.born_host_len, 4));
    cr_expect(eq(ptr, (void *)v.born_host, (void *)(ref_bytes + 48)));
    cr_expect(eq(i32, v.born_port, 54321));
    cr_expect(eq(i64, v.store_ts, REF_STORE_TS));
    cr_expect(eq(int, v.store_host_len, 4));
    cr_expect(eq(ptr, (void *)v.store_host, (void *)(ref_bytes + 64)));
    cr_expect(eq(i32, v.store_port, 10911));
    cr_expect(eq(i32, v.reconsume_times, 2));
    cr_expect(eq(i64, v.prepared_tx_offset, 0));
    cr_expect(eq(u32, v.body_len, 15u));
    cr_expect(eq(ptr, (void *)v.body, (void *)(ref_bytes + 88)));
    cr_expect(eq(u32, v.topic_len, 9u));
    cr_expect(eq(ptr, (void *)v.topic, (void *)(ref_bytes + 104)));
    cr_expect(eq(u32, v.props_len, 43u));
    cr_expect(eq(ptr, (void *)v.props, (void *)(ref_bytes + 115)));
    cr_expect(eq(int, v.has_crc_prop, 1));

    /* Structure-only parsing accepts it as well, and so does any position. */
    cr_expect(eq(int, rec_parse(ref_bytes, 158, REC_ANY_POS, REC_CHECK_NONE, &v, &why), 158));
    /* Extra bytes after the record do not matter. */
    uint8_t big[300];
    memset(big, 0xAB, sizeof(big));
    memcpy(big, ref_bytes, sizeof(ref_bytes));
    cr_expect(eq(int, rec_parse(big, sizeof(big), REF_PHYS, REC_CHECK_CRC, &v, &why), 158));
}

Test(record, round_trip_of_varied_messages)
{
    static const size_t body_lens[] = {0, 1, 127, 128, 4096, 70000};
    static const char *const props[] = {NULL, "", "A\001b\002", "UNIQ_KEY\001abc", "X\001y"};
    char topic[200];

    for (size_t i = 0; i < sizeof(topic); i++)
        topic[i] = (char)('a' + i % 26);
    for (size_t b = 0; b < sizeof(body_lens) / sizeof(body_lens[0]); b++) {
        for (size_t p = 0; p < sizeof(props) / sizeof(props[0]); p++) {
            for (int crc = 0; crc <= 1; crc++) {
                struct rec_msg m = ref_msg();
                uint8_t *body = malloc(body_lens[b] + 1);
                struct rec_view v;
                const char *why = NULL;
                size_t len;

                for (size_t k = 0; k < body_lens[b]; k++)
                    body[k] = (uint8_t)(k * 7 + b);
                m.body = body;
                m.body_len = body_lens[b];
                m.props = props[p];
                m.props_len = props[p] ? strlen(props[p]) : 0;
                m.topic = topic;
                m.topic_len = 1 + (b * 37 + p * 11) % 140; /* some V1, some V2 */
                uint8_t *rec = encode(&m, b * 10 + p, 1000 + b, crc, &len);
                int rc = rec_parse(rec, len, 1000 + b, REC_CHECK_CRC, &v, &why);
                cr_assert(eq(int, rc, (int)len), "body %zu props %zu crc %d: %s", body_lens[b], p,
                          crc, why ? why : "");
                cr_expect(eq(u32, v.body_len, (uint32_t)body_lens[b]));
                if (body_lens[b] > 0)
                    cr_expect(eq(int, memcmp(v.body, body, body_lens[b]), 0));
                cr_expect(eq(u32, v.topic_len, (uint32_t)m.topic_len));
                cr_expect(eq(int, memcmp(v.topic, topic, m.topic_len), 0));
                cr_expect(eq(u32, v.magic, m.topic_len > 127 ? REC_MAGIC_V2 : REC_MAGIC_V1));
                cr_expect(eq(u64, v.queue_off, (uint64_t)(b * 10 + p)));
                cr_expect(eq(int, v.has_crc_prop, crc));
                if (m.props_len > 0)
                    cr_expect(eq(int, memcmp(v.props, m.props, m.props_len), 0));
                if (crc)
                    expect_crc_prop(rec, len);
                free(rec);
                free(body);
            }
        }
    }
}

Test(record, v2_magic_for_topic_longer_than_127_bytes)
{
    struct rec_msg m = ref_msg();
    char topic[300];
    size_t len;
    uint8_t *rec;
    struct rec_view v;

    memset(topic, 'T', sizeof(topic));
    m.topic = topic;

    /* 127 bytes still fits V1's signed length byte. */
    m.topic_len = 127;
    cr_assert(eq(sz, rec_length(&m, 1), (size_t)(91 + 15 + 127 + 43)));
    rec = encode(&m, 0, 0, 1, &len);
    cr_expect(eq(u32, be_get32(rec + 4), REC_MAGIC_V1));
    cr_expect(eq(u8, rec[88 + 15], 127));
    free(rec);

    /* 128 and above: V2, a 2-byte topic length, one byte more in total. */
    m.topic_len = 200;
    cr_assert(eq(sz, rec_length(&m, 1), (size_t)(92 + 15 + 200 + 43)));
    rec = encode(&m, 0, 0, 1, &len);
    cr_expect(eq(u8, rec[4], 0xDA));
    cr_expect(eq(u8, rec[5], 0xA3));
    cr_expect(eq(u8, rec[6], 0x20));
    cr_expect(eq(u8, rec[7], 0xAB));
    cr_expect(eq(u16, be_get16(rec + 88 + 15), 200));
    cr_expect(eq(int, memcmp(rec + 88 + 15 + 2, topic, 200), 0));
    cr_expect(eq(u16, be_get16(rec + 88 + 15 + 2 + 200), 43));
    expect_crc_prop(rec, len);
    cr_expect(eq(int, rec_parse(rec, len, 0, REC_CHECK_CRC, &v, NULL), (int)len));
    cr_expect(eq(u32, v.topic_len, 200u));
    free(rec);

    /* Limits: a topic or properties area that a signed short cannot hold. */
    m.topic_len = 32768;
    char *huge = calloc(1, 40000);
    m.topic = huge;
    cr_expect(eq(sz, rec_length(&m, 1), 0), "topic of 32768 bytes must be refused");
    m.topic_len = 32767;
    cr_expect(lt(sz, 0, rec_length(&m, 0)));
    m = ref_msg();
    memset(huge, 'p', 40000);
    m.props = huge;
    m.props_len = 32768;
    cr_expect(eq(sz, rec_length(&m, 0), 0), "properties of 32768 bytes must be refused");
    huge[32746] = 0x02;
    m.props_len = 32747; /* + 20 CRC bytes = 32767: the largest that fits */
    cr_expect(eq(sz, rec_length(&m, 1), (size_t)(91 + 15 + 9 + 32767)));
    huge[32747] = 0x02;
    m.props_len = 32748; /* + 20 = 32768: PROPLEN would be negative */
    cr_expect(eq(sz, rec_length(&m, 1), 0), "CRC property must not push PROPLEN past 32767");
    free(huge);
}

Test(record, ipv6_hosts)
{
    static const uint8_t born6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                      0,    0,    0,    0,    0, 0, 0, 0x01};
    static const uint8_t store6[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0,
                                       0x12, 0x34, 0, 0, 0, 0, 0, 0x02};
    struct rec_msg m = ref_msg();
    struct rec_view v;
    const char *why = NULL;
    size_t len;
    uint8_t *rec;

    /* Born host IPv6 only: +12 bytes, sysflag 0x10, store timestamp at 68. */
    memcpy(m.born_host, born6, 16);
    m.born_host_len = 16;
    cr_assert(eq(sz, rec_length(&m, 1), (size_t)(158 + 12)));
    rec = encode(&m, REF_QOFF, REF_PHYS, 1, &len);
    cr_expect(eq(u32, be_get32(rec), 170u));
    cr_expect(eq(u32, be_get32(rec + 36), (uint32_t)REC_SYS_BORN_V6));
    cr_expect(eq(int, memcmp(rec + 48, born6, 16), 0));
    cr_expect(eq(u32, be_get32(rec + 64), 54321u));
    cr_expect(eq(u64, be_get64(rec + 68), (uint64_t)REF_STORE_TS));
    cr_expect(eq(int, memcmp(rec + 76, (const uint8_t[]){10, 0, 0, 1}, 4), 0));
    cr_expect(eq(u32, be_get32(rec + 80), 10911u));
    cr_expect(eq(u32, be_get32(rec + 96), 15u)); /* BODY length moved by 12 */
    cr_expect(eq(int, memcmp(rec + 100, REF_BODY, 15), 0));
    expect_crc_prop(rec, len);
    cr_assert(eq(int, rec_parse(rec, len, REF_PHYS, REC_CHECK_CRC, &v, &why), (int)len), "%s",
              why ? why : "");
    cr_expect(eq(int, v.born_host_len, 16));
    cr_expect(eq(int, memcmp(v.born_host, born6, 16), 0));
    cr_expect(eq(int, v.store_host_len, 4));
    cr_expect(eq(i64, v.store_ts, REF_STORE_TS));
    free(rec);

    /* Both IPv6: +24 bytes, sysflag 0x30. */
    memcpy(m.store_host, store6, 16);
    m.store_host_len = 16;
    cr_assert(eq(sz, rec_length(&m, 1), (size_t)(158 + 24)));
    rec = encode(&m, REF_QOFF, REF_PHYS, 1, &len);
    cr_expect(eq(u32, be_get32(rec + 36), (uint32_t)(REC_SYS_BORN_V6 | REC_SYS_STORE_V6)));
    cr_expect(eq(u64, be_get64(rec + 68), (uint64_t)REF_STORE_TS));
    cr_expect(eq(int, memcmp(rec + 76, store6, 16), 0));
    cr_expect(eq(u32, be_get32(rec + 92), 10911u));
    cr_expect(eq(u32, be_get32(rec + 96), 2u));   /* RECONSUMETIMES */
    cr_expect(eq(u32, be_get32(rec + 108), 15u)); /* BODY length moved by 24 */
    expect_crc_prop(rec, len);
    cr_assert(eq(int, rec_parse(rec, len, REF_PHYS, REC_CHECK_CRC, &v, &why), (int)len), "%s",
              why ? why : "");
    cr_expect(eq(int, v.store_host_len, 16));
    cr_expect(eq(int, memcmp(v.store_host, store6, 16), 0));
    cr_expect(eq(i32, v.store_port, 10911));
    free(rec);

    /* Store host IPv6 only: sysflag 0x20; a stale 0x10 in the input is
     * ignored because the host bits follow the host lengths. */
    m = ref_msg();
    memcpy(m.store_host, store6, 16);
    m.store_host_len = 16;
    m.sysflag = REC_SYS_BORN_V6;
    rec = encode(&m, REF_QOFF, REF_PHYS, 1, &len);
    cr_expect(eq(sz, len, (size_t)170));
    cr_expect(eq(u32, be_get32(rec + 36), (uint32_t)REC_SYS_STORE_V6));
    cr_expect(eq(u64, be_get64(rec + 56), (uint64_t)REF_STORE_TS));
    cr_expect(eq(int, memcmp(rec + 64, store6, 16), 0));
    cr_expect(eq(int, rec_parse(rec, len, REF_PHYS, REC_CHECK_CRC, &v, &why), (int)len));
    free(rec);
}

Test(record, crc_property_inserts_missing_separator)
{
    struct rec_msg m = ref_msg();
    size_t len;
    uint8_t *rec;
    struct rec_view v;

    /* No trailing 0x02: one is inserted before the CRC property. */
    m.props = "KEYS\001order-1\002TAGS\001TagA";
    m.props_len = strlen(m.props);
    cr_assert(eq(sz, rec_length(&m, 1), (size_t)(91 + 15 + 9 + 22 + 1 + 20)));
    rec = encode(&m, REF_QOFF, REF_PHYS, 1, &len);
    /* Same record as the reference: the inserted 0x02 makes the bytes
     * identical, CRC included. */
    cr_assert(eq(sz, len, sizeof(ref_bytes)));
    cr_expect(eq(int, memcmp(rec, ref_bytes, len), 0), "inserted separator record differs");
    free(rec);

    /* Already ending in 0x02: nothing inserted. */
    m.props = "A\001b\002";
    m.props_len = 4;
    cr_expect(eq(sz, rec_length(&m, 1), (size_t)(91 + 15 + 9 + 4 + 20)));

    /* Empty properties: just the CRC property (RocketMQ adds a separator
     * only to a non-empty area). */
    m.props = NULL;
    m.props_len = 0;
    cr_assert(eq(sz, rec_length(&m, 1), (size_t)(91 + 15 + 9 + 20)));
    rec = encode(&m, 0, 0, 1, &len);
    cr_expect(eq(u16, be_get16(rec + 113), 20));
    cr_expect(eq(int, memcmp(rec + 115, "__CRC32#\001", 9), 0));
    expect_crc_prop(rec, len);
    cr_expect(eq(int, rec_parse(rec, len, 0, REC_CHECK_CRC, &v, NULL), (int)len));
    cr_expect(eq(int, v.has_crc_prop, 1));
    free(rec);
}

Test(record, patch_queue_offset_refreshes_crc)
{
    struct rec_msg m = ref_msg();
    struct rec_view v;
    const char *why = NULL;
    size_t len;
    uint8_t *rec = encode(&m, 0, REF_PHYS, 1, &len);

    rec_patch_queue_off(rec, REF_QOFF);
    /* Patching to 42 must give exactly the reference bytes. */
    cr_expect(eq(int, memcmp(rec, ref_bytes, len), 0), "patched record differs from reference");
    rec_patch_queue_off(rec, UINT64_C(0x0102030405060708));
    cr_assert(eq(int, rec_parse(rec, len, REF_PHYS, REC_CHECK_CRC, &v, &why), (int)len), "%s",
              why ? why : "");
    cr_expect(eq(u64, v.queue_off, UINT64_C(0x0102030405060708)));
    free(rec);
}

/* Parses a private heap copy of exactly <n> bytes, so that any read
 * outside p[0..n) is caught by AddressSanitizer. */
static int
parse_exact(const uint8_t *src, size_t n, uint64_t expect, enum rec_check check)
{
    uint8_t *copy = malloc(n ? n : 1);
    struct rec_view v;
    const char *why = NULL;
    int rc;

    if (n > 0)
        memcpy(copy, src, n);
    rc = rec_parse(copy, n, expect, check, &v, &why);
    if (rc < 0)
        cr_expect(ne(ptr, (void *)why, NULL), "a failure must give a reason");
    free(copy);
    return rc;
}

Test(record, rejects_every_truncation)
{
    for (size_t n = 0; n < sizeof(ref_bytes); n++) {
        int rc = parse_exact(ref_bytes, n, REF_PHYS, REC_CHECK_NONE);
        cr_expect(eq(int, rc, SPK_ECORRUPT), "truncated to %zu bytes: rc %d", n, rc);
    }
    cr_expect(eq(int, parse_exact(ref_bytes, sizeof(ref_bytes), REF_PHYS, REC_CHECK_CRC), 158));
}

Test(record, rejects_bad_magic_and_sizes)
{
    uint8_t r[sizeof(ref_bytes)];
    static const uint32_t sizes[] = {0,   4,    8,           90,          157,
                                     159, 4096, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu};

    memcpy(r, ref_bytes, sizeof(r));
    be_put32(r + 4, 0xDAA320A8u);
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));
    be_put32(r + 4, 0);
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memcpy(r, ref_bytes, sizeof(r));
        be_put32(r, sizes[i]);
        int rc = parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE);
        cr_expect(eq(int, rc, SPK_ECORRUPT), "TOTALSIZE %u accepted (rc %d)", sizes[i], rc);
    }

    /* A record that claims more than it holds, inside a larger buffer:
     * lengths must add up to TOTALSIZE exactly. */
    uint8_t big[400];
    memset(big, 0, sizeof(big));
    memcpy(big, ref_bytes, sizeof(ref_bytes));
    be_put32(big, 200);
    cr_expect(eq(int, parse_exact(big, sizeof(big), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));

    /* Inner lengths running past the record. */
    memcpy(r, ref_bytes, sizeof(r));
    be_put32(r + 84, 0xFFFFFFF0u); /* BODY length */
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));
    memcpy(r, ref_bytes, sizeof(r));
    r[103] = 0xFF; /* topic length, negative as a signed byte */
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));
    memcpy(r, ref_bytes, sizeof(r));
    be_put16(r + 113, 0xFFFF); /* PROPLEN */
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));
    memcpy(r, ref_bytes, sizeof(r));
    be_put16(r + 113, 42);
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));
    memcpy(r, ref_bytes, sizeof(r));
    be_put32(r + 36, REC_SYS_BORN_V6); /* layout no longer adds up */
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), SPK_ECORRUPT));

    /* The zero region of a preallocated file is never a record (R9). */
    uint8_t zeros[256] = {0};
    cr_expect(eq(int, parse_exact(zeros, sizeof(zeros), 0, REC_CHECK_NONE), SPK_ECORRUPT));
    cr_expect(eq(int, parse_exact(zeros, sizeof(zeros), REC_ANY_POS, REC_CHECK_CRC), SPK_ECORRUPT));
    memset(big, 0xFF, sizeof(big));
    cr_expect(eq(int, parse_exact(big, sizeof(big), REC_ANY_POS, REC_CHECK_CRC), SPK_ECORRUPT));
}

/*
 * Where the store knows every record carries the CRC property (checkpoint.h
 * INV-4) it parses with REC_CHECK_CRC_PROP: a flip in the property's name
 * or separators otherwise makes it look like a record that never had one,
 * and only BODYCRC would be checked.
 */
Test(record, every_single_bit_flip_is_detected, .timeout = 60)
{
    uint8_t r[sizeof(ref_bytes)];
    unsigned escaped = 0, per_byte[sizeof(ref_bytes)] = {0};
    char where[1024] = "";
    size_t wlen = 0;

    for (size_t bit = 0; bit < sizeof(ref_bytes) * 8; bit++) {
        memcpy(r, ref_bytes, sizeof(r));
        r[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int rc = parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_CRC_PROP);
        if (rc >= 0) {
            escaped++;
            per_byte[bit / 8]++;
        }
    }
    for (size_t i = 0; i < sizeof(ref_bytes); i++)
        if (per_byte[i] > 0 && wlen < sizeof(where) - 48)
            wlen += (size_t)snprintf(where + wlen, sizeof(where) - wlen, " byte %zu (%s): %u bits;",
                                     i, ref_field(i), per_byte[i]);
    cr_expect(eq(uint, escaped, 0), "%u single-bit flips parsed as valid:%s", escaped, where);

    /* The same with the record inside a larger buffer (avail > TOTALSIZE). */
    uint8_t big[sizeof(ref_bytes) + 64];
    escaped = 0;
    for (size_t bit = 0; bit < sizeof(ref_bytes) * 8; bit++) {
        memset(big, 0, sizeof(big));
        memcpy(big, ref_bytes, sizeof(ref_bytes));
        big[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (parse_exact(big, sizeof(big), REF_PHYS, REC_CHECK_CRC_PROP) >= 0)
            escaped++;
    }
    cr_expect(eq(uint, escaped, 0), "%u flips escaped with trailing zero bytes", escaped);

    /* Why the flag exists: a flip in the property name passes the optional
     * check (it reads as a record without the property) but not the
     * required one. */
    memcpy(r, ref_bytes, sizeof(r));
    r[sizeof(r) - REC_CRC_PROP_LEN] ^= 1; /* the '_' of "__CRC32#" */
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_CRC), (int)sizeof(r)));
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_CRC_PROP), SPK_ECORRUPT));
}

Test(record, check_none_skips_crcs)
{
    uint8_t r[sizeof(ref_bytes)];

    memcpy(r, ref_bytes, sizeof(r));
    r[90] ^= 0x01; /* inside the body */
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_NONE), 158));
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_CRC), SPK_ECORRUPT));

    /* A record with only BODYCRC (no __CRC32#) is still checked on its body. */
    struct rec_msg m = ref_msg();
    size_t len;
    uint8_t *rec = encode(&m, REF_QOFF, REF_PHYS, 0, &len);
    cr_expect(eq(int, parse_exact(rec, len, REF_PHYS, REC_CHECK_CRC), (int)len));
    rec[88] ^= 0x80;
    cr_expect(eq(int, parse_exact(rec, len, REF_PHYS, REC_CHECK_CRC), SPK_ECORRUPT));
    free(rec);

    /* A CRC property whose digits are not digits is malformed. */
    memcpy(r, ref_bytes, sizeof(r));
    r[150] = 'x';
    cr_expect(eq(int, parse_exact(r, sizeof(r), REF_PHYS, REC_CHECK_CRC), SPK_ECORRUPT));
}

Test(record, wrong_expected_position)
{
    cr_expect(eq(int, parse_exact(ref_bytes, 158, REF_PHYS, REC_CHECK_CRC), 158));
    cr_expect(eq(int, parse_exact(ref_bytes, 158, REF_PHYS + 1, REC_CHECK_CRC), SPK_ECORRUPT));
    cr_expect(eq(int, parse_exact(ref_bytes, 158, REF_PHYS - 158, REC_CHECK_NONE), SPK_ECORRUPT));
    cr_expect(eq(int, parse_exact(ref_bytes, 158, 0, REC_CHECK_NONE), SPK_ECORRUPT));
    cr_expect(eq(int, parse_exact(ref_bytes, 158, REC_ANY_POS, REC_CHECK_CRC), 158));

    /* A record copied to another position still names its old offset. */
    struct rec_msg m = ref_msg();
    size_t len;
    uint8_t *rec = encode(&m, REF_QOFF, 4096, 1, &len);
    cr_expect(eq(int, parse_exact(rec, len, 4096, REC_CHECK_CRC), (int)len));
    cr_expect(eq(int, parse_exact(rec, len, 8192, REC_CHECK_CRC), SPK_ECORRUPT));
    free(rec);
}

Test(record, blank_filler)
{
    uint8_t seg[1000];
    struct rec_view v;
    const char *why = NULL;

    memset(seg, 0x5A, sizeof(seg));
    rec_encode_blank(seg, 1000);
    /* Only TOTALSIZE and the BLANK magic are written. */
    static const uint8_t want[8] = {0x00, 0x00, 0x03, 0xE8, 0xCB, 0xD4, 0x31, 0x94};
    cr_expect(eq(int, memcmp(seg, want, 8), 0));
    cr_expect(eq(u8, seg[8], 0x5A), "byte 8 must be left alone");
    cr_expect(eq(int, rec_parse(seg, sizeof(seg), 0, REC_CHECK_CRC, &v, &why), 0));
    cr_expect(eq(u32, v.total, 1000u));
    cr_expect(eq(u32, v.magic, REC_MAGIC_BLANK));

    /* The smallest filler: 8 bytes at the very end of a segment. */
    uint8_t tail[8];
    rec_encode_blank(tail, 8);
    cr_expect(eq(int, parse_exact(tail, 8, 0, REC_CHECK_CRC), 0));
    cr_expect(eq(int, parse_exact(tail, 7, 0, REC_CHECK_CRC), SPK_ECORRUPT));
}

static int
prop(const char *props, const char *name, char *out, size_t outlen)
{
    const char *val = NULL;
    size_t vlen = 0;

    if (!rec_prop_get(props, strlen(props), name, &val, &vlen))
        return 0;
    cr_assert(lt(sz, vlen, outlen));
    memcpy(out, val, vlen);
    out[vlen] = '\0';
    return 1;
}

Test(record, prop_get)
{
    char v[64];

    cr_expect(eq(int, prop(REF_PROPS, "KEYS", v, sizeof(v)), 1));
    cr_expect(eq(str, v, "order-1"));
    cr_expect(eq(int, prop(REF_PROPS, "TAGS", v, sizeof(v)), 1));
    cr_expect(eq(str, v, "TagA"));
    cr_expect(eq(int, prop(REF_PROPS, "TAG", v, sizeof(v)), 0), "prefix of a name matched");
    cr_expect(eq(int, prop(REF_PROPS, "AGS", v, sizeof(v)), 0), "suffix of a name matched");
    cr_expect(eq(int, prop(REF_PROPS, "TAGSX", v, sizeof(v)), 0));
    cr_expect(eq(int, prop(REF_PROPS, "order-1", v, sizeof(v)), 0), "a value matched as a name");

    /* The last occurrence wins. */
    cr_expect(eq(int, prop("A\0011\002B\0012\002A\0013\002", "A", v, sizeof(v)), 1));
    cr_expect(eq(str, v, "3"));
    /* A piece with an empty value or an empty name is ignored, so the
     * earlier value survives. */
    cr_expect(eq(int, prop("A\001x\002A\001\002", "A", v, sizeof(v)), 1));
    cr_expect(eq(str, v, "x"));
    cr_expect(eq(int, prop("\001y\002", "", v, sizeof(v)), 0));
    cr_expect(eq(int, prop("B\001\002", "B", v, sizeof(v)), 0));
    /* The last pair may lack its 0x02. */
    cr_expect(eq(int, prop("A\0011\002C\001last", "C", v, sizeof(v)), 1));
    cr_expect(eq(str, v, "last"));
    /* Malformed pieces around a good one do not hide it. */
    cr_expect(eq(int, prop("\002\002junk\002K\001v\002\001\002", "K", v, sizeof(v)), 1));
    cr_expect(eq(str, v, "v"));
    cr_expect(eq(int, prop("", "K", v, sizeof(v)), 0));

    /* The CRC property reads back like any other. */
    const char *val;
    size_t vlen;
    cr_expect(eq(int, rec_prop_get((const char *)ref_bytes + 115, 43, "__CRC32#", &val, &vlen), 1));
    cr_expect(eq(sz, vlen, 10));
    cr_expect(eq(int, memcmp(val, "7164833840", 10), 0));
}

Test(record, msg_id)
{
    char id[64];
    uint64_t phys = 0;
    static const uint8_t v4[4] = {10, 0, 0, 1};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab};

    /* 0A000001 (10.0.0.1) 00002A9F (port 10911) 000000123456789A (offset) */
    cr_assert(eq(sz, rec_msg_id(v4, 4, 10911, UINT64_C(0x123456789A), id), 32));
    cr_expect(eq(str, id, "0A00000100002A9F000000123456789A"));
    cr_expect(eq(int, rec_msg_id_decode(id, 32, &phys), 0));
    cr_expect(eq(u64, phys, UINT64_C(0x123456789A)));

    cr_assert(eq(sz, rec_msg_id(v4, 4, 10911, UINT64_C(0xFEDCBA9876543210), id), 32));
    cr_expect(eq(str, id, "0A00000100002A9FFEDCBA9876543210"), "hex must be upper case");
    for (size_t i = 0; i < 32; i++)
        cr_expect(eq(int, id[i] >= 'a' && id[i] <= 'f', 0), "lower-case hex at %zu", i);
    cr_expect(eq(int, rec_msg_id_decode(id, 32, &phys), 0));
    cr_expect(eq(u64, phys, UINT64_C(0xFEDCBA9876543210)));

    cr_assert(eq(sz, rec_msg_id(v6, 16, 9876, 77, id), 56));
    cr_expect(eq(str, id, "20010DB80000000000000000000000AB00002694000000000000004D"));
    phys = 0;
    cr_expect(eq(int, rec_msg_id_decode(id, 56, &phys), 0));
    cr_expect(eq(u64, phys, UINT64_C(77)));

    /* Malformed ids are refused and leave the output alone. */
    phys = 5;
    cr_expect(lt(int, rec_msg_id_decode("0A00000100002A9F", 16, &phys), 0));
    cr_expect(lt(int, rec_msg_id_decode("0A00000100002A9F000000123456789", 31, &phys), 0));
    cr_expect(lt(int, rec_msg_id_decode("0A00000100002A9F00000012345678G9", 32, &phys), 0));
    cr_expect(lt(int, rec_msg_id_decode("", 0, &phys), 0));
    cr_expect(eq(u64, phys, 5));
}
