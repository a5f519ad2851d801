/*
 * sbuf.c - growable byte string (see sbuf.h for the invariants).
 */
#include "common/sbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
sb_reserve(struct sbuf *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (b->err)
        return b->err;
    if (extra > SIZE_MAX / 2 - b->len - 1) {
        b->err = -ENOMEM;
        return b->err;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->err = -ENOMEM;
        return b->err;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void
sb_put(struct sbuf *b, const void *s, size_t n)
{
    if (sb_reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

void
sb_putc(struct sbuf *b, char c)
{
    sb_put(b, &c, 1);
}

void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sb_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void
sb_json_str(struct sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    sb_putc(b, '"');
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sb_put(b, e, 6);
        } else {
            sb_putc(b, (char)c);
        }
    }
    sb_putc(b, '"');
}

void
sb_json_cstr(struct sbuf *b, const char *s)
{
    sb_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

void
sb_unput(struct sbuf *b, char c)
{
    if (!b->err && b->len > 0 && b->p[b->len - 1] == c)
        b->p[--b->len] = '\0';
}

char *
sb_detach(struct sbuf *b, size_t *len)
{
    char *p;

    if (b->err || sb_reserve(b, 0)) {
        sb_free(b);
        return NULL;
    }
    p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void
sb_free(struct sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}
