/*
 * message.c - MessageBatch splitter/encoder and properties string codec.
 *
 * Formats are in message.h and PROTOCOL.md 4.3-4.4.
 *
 * Invariants:
 *   INV-1  No byte of the input is read before the length that covers it
 *          has been checked against the bytes actually present.
 *   INV-2  Lengths from the input are summed in 64 bits and compared with
 *          TOTALSIZE and with the bytes left, so a hostile length can
 *          neither wrap around nor point outside the buffer. Nothing is
 *          allocated from an input length.
 *   INV-3  Malformed input returns SPK_EFORMAT, a limit SPK_ETOOBIG;
 *          nothing asserts on input bytes.
 *   INV-4  Out-parameters and builders are changed only on success.
 *   INV-5  The builder only ever holds canonical pairs "name\1value\2"
 *          that Java's parser reads back unchanged, at most 32767 bytes.
 *
 * No I/O and no global mutable state: every function can be fuzzed.
 */
#include "proto/message.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/errors.h"

/*
 * Validates the entry at buf[0..left) and returns its TOTALSIZE in *size,
 * filling *m if it is non-NULL.
 */
static int
batch_entry(const uint8_t *buf, size_t left, struct proto_batch_msg *m, size_t *size)
{
    int32_t total, body_len;
    int16_t prop_len;

    if (left < PROTO_BATCH_ENTRY_FIXED)
        return SPK_EFORMAT;
    total = (int32_t)be_get32(buf);
    if (total < (int32_t)PROTO_BATCH_ENTRY_FIXED || (uint64_t)total > left)
        return SPK_EFORMAT;
    body_len = (int32_t)be_get32(buf + 16);
    /* bodyLen must leave room for the int16 PROPERTIESLEN inside TOTALSIZE (INV-1). */
    if (body_len < 0 || (uint64_t)body_len > (uint64_t)total - PROTO_BATCH_ENTRY_FIXED)
        return SPK_EFORMAT;
    /* Java reads PROPERTIESLEN as a signed short: >= 0x8000 is negative. */
    prop_len = (int16_t)be_get16(buf + 20 + body_len);
    if (prop_len < 0)
        return SPK_EFORMAT;
    if ((uint64_t)PROTO_BATCH_ENTRY_FIXED + (uint64_t)body_len + (uint64_t)prop_len !=
        (uint64_t)total)
        return SPK_EFORMAT;
    if (m != NULL) {
        m->flag = (int32_t)be_get32(buf + 12);
        m->body = buf + 20;
        m->body_len = (uint32_t)body_len;
        m->props = (const char *)(buf + 22 + body_len);
        m->props_len = (uint32_t)prop_len;
    }
    *size = (size_t)total;
    return 0;
}

int
proto_batch_split(const uint8_t *buf, size_t len, struct proto_batch_msg *out, size_t cap,
                  size_t *n)
{
    size_t off, size, count = 0;
    int rc;

    if (buf == NULL || len == 0)
        return SPK_EFORMAT;
    /*
     * First pass validates and counts, so that out[] is written only when
     * the whole body is good and fits (INV-4).
     */
    for (off = 0; off < len; off += size) {
        rc = batch_entry(buf + off, len - off, NULL, &size);
        if (rc < 0)
            return rc;
        if (++count > PROTO_BATCH_MAX_MSGS)
            return SPK_ETOOBIG;
    }
    if (count > cap)
        return SPK_ETOOBIG;
    count = 0;
    for (off = 0; off < len; off += size) {
        rc = batch_entry(buf + off, len - off, &out[count++], &size);
        if (rc < 0)
            return rc; /* cannot happen: the first pass accepted it */
    }
    *n = count;
    return 0;
}

size_t
proto_batch_encode(uint8_t *dst, int32_t flag, const void *body, uint32_t body_len,
                   const char *props, uint32_t props_len)
{
    uint64_t total = (uint64_t)PROTO_BATCH_ENTRY_FIXED + body_len + props_len;

    if (props_len > PROTO_PROPS_MAX || total > INT32_MAX)
        return 0;
    if (dst == NULL)
        return (size_t)total;
    be_put32(dst, (uint32_t)total);
    be_put32(dst + 4, 0);  /* MAGICCODE, unused */
    be_put32(dst + 8, 0);  /* BODYCRC, the broker computes it */
    be_put32(dst + 12, (uint32_t)flag);
    be_put32(dst + 16, body_len);
    if (body_len > 0)
        memcpy(dst + 20, body, body_len);
    be_put16(dst + 20 + body_len, (uint16_t)props_len);
    if (props_len > 0)
        memcpy(dst + 22 + body_len, props, props_len);
    return (size_t)total;
}

int
proto_props_next(const char *props, size_t len, size_t *pos, const char **name,
                 size_t *name_len, const char **val, size_t *val_len)
{
    size_t i = *pos;

    if (props == NULL)
        return 0;
    /* Mirrors MessageDecoder.string2messageProperties piece by piece. */
    while (i < len) {
        const char *piece = props + i;
        const char *end = memchr(piece, PROTO_PROP_SEP, len - i);
        size_t plen = end != NULL ? (size_t)(end - piece) : len - i;
        const char *kv = plen >= 3 ? memchr(piece, PROTO_PROP_NAME_SEP, plen) : NULL;

        i += plen + 1; /* may step one past len when the 0x02 is missing */
        /* Non-empty name and non-empty value, as Java requires. */
        if (kv != NULL && kv > piece && (size_t)(kv - piece) < plen - 1) {
            *pos = i > len ? len : i;
            *name = piece;
            *name_len = (size_t)(kv - piece);
            *val = kv + 1;
            *val_len = plen - *name_len - 1;
            return 1;
        }
    }
    *pos = len;
    return 0;
}

int
proto_props_get(const char *props, size_t len, const char *name, const char **val,
                size_t *val_len)
{
    size_t pos = 0, want = strlen(name), nl, vl;
    const char *n, *v;
    int found = 0;

    /* No early exit: Java's HashMap keeps the last of repeated names. */
    while (proto_props_next(props, len, &pos, &n, &nl, &v, &vl)) {
        if (nl == want && memcmp(n, name, nl) == 0) {
            *val = v;
            *val_len = vl;
            found = 1;
        }
    }
    return found;
}

void
proto_props_init(struct proto_props_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
proto_props_free(struct proto_props_buf *b)
{
    free(b->data);
    proto_props_init(b);
}

/* Appends one pair without checking its bytes; the callers have. */
static int
props_append(struct proto_props_buf *b, const char *name, size_t nl, const char *val,
             size_t vl)
{
    size_t need;

    /* Each term is bounded first so the sum below cannot wrap. */
    if (nl > PROTO_PROPS_MAX || vl > PROTO_PROPS_MAX)
        return SPK_ETOOBIG;
    need = b->len + nl + vl + 2;
    if (need > PROTO_PROPS_MAX)
        return SPK_ETOOBIG;
    if (need + 1 > b->cap) {
        /* Grow geometrically, capped: the list can never exceed 32767 + NUL. */
        size_t cap = b->cap < 64 ? 64 : b->cap * 2;
        char *p;

        if (cap < need + 1)
            cap = need + 1;
        if (cap > PROTO_PROPS_MAX + 1)
            cap = PROTO_PROPS_MAX + 1;
        p = realloc(b->data, cap);
        if (p == NULL)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, name, nl);
    b->data[b->len + nl] = PROTO_PROP_NAME_SEP;
    memcpy(b->data + b->len + nl + 1, val, vl);
    b->data[need - 1] = PROTO_PROP_SEP;
    b->data[need] = '\0';
    b->len = need;
    return 0;
}

static bool
has_separator(const char *s, size_t n)
{
    return memchr(s, PROTO_PROP_NAME_SEP, n) != NULL || memchr(s, PROTO_PROP_SEP, n) != NULL;
}

int
proto_props_put(struct proto_props_buf *b, const char *name, const char *val)
{
    size_t nl, vl;

    if (name == NULL || val == NULL)
        return SPK_EFORMAT;
    nl = strlen(name);
    vl = strlen(val);
    /* An empty name or value would be silently dropped by every reader. */
    if (nl == 0 || vl == 0 || has_separator(name, nl) || has_separator(val, vl))
        return SPK_EFORMAT;
    return props_append(b, name, nl, val, vl);
}

static bool
in_drop_list(const char *name, size_t nl, const char *const *drop)
{
    if (drop == NULL)
        return false;
    for (; *drop != NULL; drop++)
        if (strlen(*drop) == nl && memcmp(*drop, name, nl) == 0)
            return true;
    return false;
}

int
proto_props_copy(struct proto_props_buf *b, const char *props, size_t len,
                 const char *const *drop)
{
    size_t pos = 0, nl, vl, old_len = b->len;
    const char *n, *v;
    int rc;

    /*
     * Pairs come from proto_props_next, so the name holds no separator
     * and the value no 0x02; a 0x01 inside a value is kept because Java
     * splits on the first 0x01 only and reads it back the same.
     */
    while (proto_props_next(props, len, &pos, &n, &nl, &v, &vl)) {
        if (in_drop_list(n, nl, drop))
            continue;
        rc = props_append(b, n, nl, v, vl);
        if (rc < 0)
            goto fail;
    }
    return 0;

fail:
    /* Roll back to the caller's content (INV-4); the memory is kept. */
    b->len = old_len;
    if (b->data != NULL)
        b->data[old_len] = '\0';
    return rc;
}
