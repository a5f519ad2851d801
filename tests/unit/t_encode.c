/*
 * t_encode.c - the append path's encoder (rec_encode_fast, which derives
 * the whole-record CRC with crc32_combine) must write exactly the bytes of
 * the reference encoder (rec_encode), and spk_crc32_combine must agree
 * with a CRC over the concatenation.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/crc.h"
#include "store/record.h"

static void
fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

Test(encode, crc32_equals_zlib_at_every_length_and_alignment)
{
    static uint8_t buf[70000];

    /* spk_crc32 runs on libdeflate's accelerated code; zlib's crc32 is the
     * reference RocketMQ's Java CRC32 agrees with. */
    fill(buf, sizeof(buf), 3);
    for (size_t len = 0; len < 300; len++)
        for (size_t align = 0; align < 16; align++)
            cr_assert_eq(spk_crc32(buf + align, len),
                         (uint32_t)crc32(0, buf + align, (uInt)len), "len %zu align %zu", len,
                         align);
    for (size_t len = 300; len < sizeof(buf) - 16; len = len * 5 / 4 + 7)
        cr_assert_eq(spk_crc32(buf + 1, len), (uint32_t)crc32(0, buf + 1, (uInt)len),
                     "len %zu", len);
    cr_assert_eq(spk_crc32_update(spk_crc32(buf, 1000), buf + 1000, 5000),
                 (uint32_t)crc32(0, buf, 6000));
}

Test(encode, crc32_combine_matches_concatenation)
{
    uint8_t buf[5000];

    fill(buf, sizeof(buf), 7);
    for (size_t split = 0; split <= sizeof(buf); split += 97) {
        uint32_t a = spk_crc32(buf, split);
        uint32_t b = spk_crc32(buf + split, sizeof(buf) - split);
        cr_assert_eq(spk_crc32_combine(a, b, sizeof(buf) - split), spk_crc32(buf, sizeof(buf)),
                     "split %zu", split);
    }
}

Test(encode, fast_encoder_writes_the_reference_bytes)
{
    static const char *props[] = {
        "",
        "TAGS\001TagA\002",
        "KEYS\001k1 k2\002UNIQ_KEY\001ABC\002",
        "TAGS\001no-final-separator",
    };
    uint8_t body[3000];
    uint8_t a[4096], b[4096];

    fill(body, sizeof(body), 99);
    for (size_t pi = 0; pi < sizeof(props) / sizeof(props[0]); pi++) {
        for (size_t blen = 0; blen < sizeof(body); blen += 331) {
            for (int crc_prop = 0; crc_prop <= 1; crc_prop++) {
                struct rec_msg m;
                memset(&m, 0, sizeof(m));
                m.topic = "TopicX";
                m.topic_len = 6;
                m.queue_id = 3;
                m.body = body;
                m.body_len = blen;
                m.props = props[pi];
                m.props_len = strlen(props[pi]);
                m.born_host_len = 4;
                m.store_host_len = pi == 2 ? 16 : 4;
                m.born_host[0] = 10;
                m.store_host[0] = 127;
                m.born_ts = 1700000000000LL;
                size_t len = rec_length(&m, crc_prop);
                cr_assert_gt(len, 0);
                cr_assert_leq(len, sizeof(a));
                uint32_t plain = spk_crc32(body, blen);
                memset(a, 0xAA, sizeof(a));
                memset(b, 0x55, sizeof(b));
                rec_encode(a, len, &m, plain & SPK_CRC_MASK, 17, 4242, 1700000000123LL, crc_prop);
                rec_encode_fast(b, len, &m, plain, 17, 4242, 1700000000123LL, crc_prop);
                cr_assert_eq(memcmp(a, b, len), 0, "props %zu body %zu crc_prop %d", pi, blen,
                             crc_prop);
                struct rec_view v;
                cr_assert_eq(rec_parse(b, len, 4242, REC_CHECK_CRC, &v, NULL), (int)len);
                cr_assert_eq(v.has_crc_prop, crc_prop);
            }
        }
    }
}
