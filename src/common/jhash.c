/*
 * jhash.c - Java String.hashCode over UTF-8 (see jhash.h).
 *
 * The decoder reproduces what `new String(bytes, UTF_8)` produces on the
 * JDK (the decoder in java.lang.String / sun.nio.cs.UTF_8, identical in
 * JDK 8 and 17), because a hash computed over a different sequence of
 * UTF-16 units would not match the tagsCode a RocketMQ broker stores.
 * The JDK's rules for malformed input are not the Unicode "maximal
 * subpart" rules, so they are spelled out here. Each malformed sequence
 * becomes exactly one U+FFFD, and decoding resumes after the bytes that
 * sequence consumed:
 *
 *   lead byte        consumed on error
 *   80..C1, F8..FF   1
 *   C2..DF           1 (second byte not a continuation, or input ends)
 *   E0..EF           1 if b2 is not a continuation, or E0 with b2 80..9F;
 *                    2 if b3 is missing or not a continuation;
 *                    3 if the sequence is well formed but encodes a
 *                      surrogate (ED A0..BF xx): one U+FFFD, not three
 *   F0..F7           1 if the lead is F5..F7, b2 is not a continuation,
 *                      F0 with b2 outside 90..BF, or F4 with b2 outside
 *                      80..8F;
 *                    2 if b3 is not a continuation (or the input ends
 *                      after b2);
 *                    3 otherwise (b4 bad, or the input ends after b3)
 *
 * The table was checked byte for byte against OpenJDK 17.
 */
#include "common/jhash.h"

#include <stdbool.h>

#define REPLACEMENT 0xFFFDu

static bool
is_cont(unsigned char b)
{
    return (b & 0xC0) == 0x80;
}

/* The JDK's malformed3(): how many bytes a bad 3-byte sequence consumes. */
static size_t
bad3_len(const unsigned char *p, size_t n)
{
    if (n < 2 || !is_cont(p[1]) || (p[0] == 0xE0 && p[1] < 0xA0))
        return 1;
    return 2;
}

/* The JDK's malformed4(), extended to inputs that end early. */
static size_t
bad4_len(const unsigned char *p, size_t n)
{
    if (p[0] > 0xF4 || n < 2 || !is_cont(p[1]) || (p[0] == 0xF0 && p[1] < 0x90) ||
        (p[0] == 0xF4 && p[1] > 0x8F))
        return 1;
    if (n < 3 || !is_cont(p[2]))
        return 2;
    return 3;
}

/*
 * Decodes one code point at p[0..n), n >= 1. Stores it (or U+FFFD) in
 * *cp and returns the number of bytes consumed (>= 1).
 */
static size_t
utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char b = p[0];
    uint32_t c;

    *cp = REPLACEMENT;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        if (n < 2 || !is_cont(p[1]))
            return 1;
        *cp = (uint32_t)(b & 0x1F) << 6 | (p[1] & 0x3Fu);
        return 2;
    }
    if (b >= 0xE0 && b <= 0xEF) {
        if (n < 3 || !is_cont(p[2]) || bad3_len(p, n) == 1)
            return bad3_len(p, n);
        c = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3Fu);
        if (c < 0xD800 || c > 0xDFFF)
            *cp = c;
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF7) {
        if (n < 4 || !is_cont(p[3]) || bad4_len(p, n) < 3)
            return bad4_len(p, n);
        *cp = (uint32_t)(b & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
              (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3Fu);
        return 4;
    }
    return 1;
}

int32_t
spk_java_hash(const char *utf8, size_t len)
{
    const unsigned char *p = (const unsigned char *)utf8;
    uint32_t h = 0, cp;
    size_t i = 0;

    while (i < len) {
        i += utf8_next(p + i, len - i, &cp);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31u * h + (0xD800u + (cp >> 10));
            h = 31u * h + (0xDC00u + (cp & 0x3FFu));
        } else {
            h = 31u * h + cp;
        }
    }
    return (int32_t)h;
}

size_t
spk_java_length(const char *utf8, size_t len)
{
    const unsigned char *p = (const unsigned char *)utf8;
    size_t i = 0, units = 0;
    uint32_t cp;

    while (i < len) {
        i += utf8_next(p + i, len - i, &cp);
        units += cp >= 0x10000 ? 2 : 1;
    }
    return units;
}
