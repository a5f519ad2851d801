/*
 * bytes.h - big-endian load and store helpers.
 *
 * Every multi-byte integer RocketMQ puts on disk or on the wire is
 * big-endian (Java ByteBuffer's default). These helpers take unaligned
 * pointers: records start at any byte offset in a segment.
 */
#ifndef SPK_COMMON_BYTES_H
#define SPK_COMMON_BYTES_H

#include <stdint.h>
#include <string.h>

static inline void
be_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
be_put32(uint8_t *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

static inline void
be_put64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

static inline uint16_t
be_get16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t
be_get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

static inline uint64_t
be_get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

#endif /* SPK_COMMON_BYTES_H */
