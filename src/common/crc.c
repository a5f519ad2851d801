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
