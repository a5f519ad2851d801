/*
 * crc.h - CRC-32 as RocketMQ computes it.
 *
 * RocketMQ uses CRC-32/IEEE (zlib's crc32: reflected 0xEDB88320, init and
 * xorout 0xFFFFFFFF) and then clears the top bit, so that the value fits
 * a non-negative Java int. libdeflate and zlib do the arithmetic (crc.c
 * says why two); this file only names the masking once.
 */
#ifndef SPK_COMMON_CRC_H
#define SPK_COMMON_CRC_H

#include <stddef.h>
#include <stdint.h>

#define SPK_CRC_MASK 0x7FFFFFFFu

/* Plain CRC-32/IEEE of <buf>; spk_crc32(NULL, 0) is 0. */
uint32_t spk_crc32(const void *buf, size_t len);

/* Continues a plain CRC-32 over more bytes. Start with <crc> = 0. */
uint32_t spk_crc32_update(uint32_t crc, const void *buf, size_t len);

/*
 * CRC-32 of A||B from crc(A), crc(B) and the length of B (zlib's
 * crc32_combine). The operator for a length is cached per thread, because
 * the record encoder combines with the same few lengths over and over.
 */
uint32_t spk_crc32_combine(uint32_t crc_a, uint32_t crc_b, size_t len_b);

/* CRC-32 & 0x7FFFFFFF: the value RocketMQ stores (BODYCRC, __CRC32#). */
uint32_t spk_crc32_masked(const void *buf, size_t len);

#endif /* SPK_COMMON_CRC_H */
