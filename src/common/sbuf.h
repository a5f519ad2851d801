/*
 * sbuf.h - a growable byte string for building replies and JSON bodies.
 *
 * Invariants:
 *   INV-1  p is NULL (nothing written yet) or a malloc'd block of cap
 *          bytes holding len bytes followed by a NUL (len < cap).
 *   INV-2  The first allocation failure is sticky: err becomes -ENOMEM,
 *          later appends do nothing, and sb_detach() returns NULL, so a
 *          builder can append freely and check once at the end.
 */
#ifndef SPK_COMMON_SBUF_H
#define SPK_COMMON_SBUF_H

#include <stddef.h>
#include <stdint.h>

struct sbuf {
    char *p;
    size_t len, cap;
    int err; /* 0 or -ENOMEM */
};

#define SBUF_INIT {NULL, 0, 0, 0}

void sb_put(struct sbuf *b, const void *s, size_t n);
void sb_puts(struct sbuf *b, const char *s);
void sb_putc(struct sbuf *b, char c);
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal of s[0..n), quotes included; control bytes escaped. */
void sb_json_str(struct sbuf *b, const char *s, size_t n);
void sb_json_cstr(struct sbuf *b, const char *s);
/* Drops the last byte if it is <c> (a trailing comma in a JSON list). */
void sb_unput(struct sbuf *b, char c);
/* Hands the buffer to the caller (free()), or NULL after an error. */
char *sb_detach(struct sbuf *b, size_t *len);
void sb_free(struct sbuf *b);

#endif /* SPK_COMMON_SBUF_H */
