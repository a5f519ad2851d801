/*
 * crc.c - CRC-32 (see crc.h for the masking rule).
 *
 * The bytes are summed by libdeflate, whose CRC-32 uses carry-less
 * multiplication (PCLMULQDQ) where the CPU has it: 1 KiB takes ~0.1 us
 * against zlib's ~0.3-0.4 us here, and the body CRC was the largest single
 * cost of an append and of a recovery scan (`sprocket bench store`). It is
 * the same CRC-32/IEEE as zlib's, which the tests check. zlib still
 * provides crc32_combine, which libdeflate lacks.
 */
#include "common/crc.h"

#include <libdeflate.h>
#include <zlib.h>

uint32_t
spk_crc32_update(uint32_t crc, const void *buf, size_t len)
{
    if (len == 0)
        return crc;
    return libdeflate_crc32(crc, buf, len);
}

uint32_t
spk_crc32(const void *buf, size_t len)
{
    return spk_crc32_update(0, buf, len);
}

uint32_t
spk_crc32_masked(const void *buf, size_t len)
{
    return spk_crc32(buf, len) & SPK_CRC_MASK;
}

uint32_t
spk_crc32_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b)
{
    /* Two slots: the body length and the tail length of a record. */
    static _Thread_local struct {
        size_t len;
        uLong op;
        int valid;
    } cache[2];
    static _Thread_local unsigned next;
    uLong op;

    if (len_b == 0)
        return crc_a;
    if (cache[0].valid && cache[0].len == len_b) {
        op = cache[0].op;
    } else if (cache[1].valid && cache[1].len == len_b) {
        op = cache[1].op;
    } else {
        op = crc32_combine_gen64((z_off64_t)len_b);
        cache[next].len = len_b;
        cache[next].op = op;
        cache[next].valid = 1;
        next ^= 1;
    }
    return (uint32_t)crc32_combine_op(crc_a, crc_b, op);
}
