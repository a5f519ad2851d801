/*
 * crc.c - CRC-32 through zlib (see crc.h for the masking rule).
 *
 * zlib's crc32 takes a uInt length; larger buffers are fed in pieces.
 */
#include "common/crc.h"

#include <limits.h>
#include <zlib.h>

uint32_t
spk_crc32_update(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    uLong c = crc;

    while (len > 0) {
        uInt n = len > (size_t)UINT_MAX ? UINT_MAX : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
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
