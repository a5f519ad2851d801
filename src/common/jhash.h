/*
 * jhash.h - java.lang.String.hashCode() over UTF-8 input.
 *
 * RocketMQ hashes tags (ConsumeQueue tagsCode) and index keys with Java's
 * String.hashCode: h = 31*h + c over UTF-16 code units with int32
 * wrap-around. Our strings arrive as UTF-8, so each code point is turned
 * into its UTF-16 units first (non-BMP code points become surrogate
 * pairs). Malformed UTF-8 is hashed the way Java's decoder reads it: each
 * bad sequence becomes U+FFFD.
 */
#ifndef SPK_COMMON_JHASH_H
#define SPK_COMMON_JHASH_H

#include <stddef.h>
#include <stdint.h>

int32_t spk_java_hash(const char *utf8, size_t len);

/* Number of UTF-16 code units (Java's String.length()) of <utf8>. */
size_t spk_java_length(const char *utf8, size_t len);

#endif /* SPK_COMMON_JHASH_H */
