/*
 * reply.c - building and encoding responses (see reply.h).
 *
 * Invariants:
 *   INV-1  KV(r)[0..kv_len) holds exactly <next> "key\0val\0" pairs; the
 *          storage is kv_inline until it outgrows it, then the malloc'd
 *          kv_heap of kv_cap bytes. No pointer into kv_inline is stored,
 *          so a reply copied by value stays valid.
 *   INV-2  After any allocation failure err is -ENOMEM and the encoders
 *          refuse the reply, so a half-built header never goes out.
 */
#include "proto/reply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"

#define KV(r) ((r)->kv_heap ? (r)->kv_heap : (r)->kv_inline)

void
proto_reply_init(struct proto_reply *r, int32_t code)
{
    r->code = code;
    r->remark = NULL;
    r->kv_heap = NULL;
    r->kv_len = 0;
    r->kv_cap = sizeof(r->kv_inline);
    r->next = 0;
    r->ext_present = 0;
    r->body = NULL;
    r->body_len = 0;
    r->body_owned = 0;
    r->err = 0;
}

void
proto_reply_clear_ext(struct proto_reply *r)
{
    r->kv_len = 0;
    r->next = 0;
}

void
proto_reply_free(struct proto_reply *r)
{
    free(r->kv_heap);
    free(r->remark);
    if (r->body_owned)
        free(r->body);
    proto_reply_init(r, 0);
}

void
proto_reply_remark(struct proto_reply *r, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0) {
        r->err = -ENOMEM;
        s = NULL;
    }
    va_end(ap);
    if (s) {
        free(r->remark);
        r->remark = s;
    }
}

static int
kv_reserve(struct proto_reply *r, size_t n)
{
    size_t cap;
    char *p;

    if (n <= r->kv_cap - r->kv_len)
        return 0;
    cap = r->kv_cap * 2;
    while (cap - r->kv_len < n)
        cap *= 2;
    if (!r->kv_heap) {
        p = malloc(cap);
        if (p)
            memcpy(p, r->kv_inline, r->kv_len);
    } else {
        p = realloc(r->kv_heap, cap);
    }
    if (!p) {
        r->err = -ENOMEM;
        return -ENOMEM;
    }
    r->kv_heap = p;
    r->kv_cap = cap;
    return 0;
}

static void
kv_add(struct proto_reply *r, const char *key, const char *val, size_t vlen)
{
    size_t klen = strlen(key);

    r->ext_present = 1;
    if (kv_reserve(r, klen + vlen + 2))
        return;
    memcpy(KV(r) + r->kv_len, key, klen + 1);
    r->kv_len += klen + 1;
    memcpy(KV(r) + r->kv_len, val, vlen);
    KV(r)[r->kv_len + vlen] = '\0';
    r->kv_len += vlen + 1;
    r->next++;
}

const char *
proto_reply_ext_get(const struct proto_reply *r, const char *key)
{
    const char *p = KV(r);

    for (size_t i = 0; i < r->next; i++) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, key) == 0)
            return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

void
proto_reply_ext(struct proto_reply *r, const char *key, const char *fmt, ...)
{
    va_list ap;
    char small[128], *val = small;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->err = -ENOMEM;
        return;
    }
    if ((size_t)n >= sizeof(small)) {
        va_start(ap, fmt);
        n = vasprintf(&val, fmt, ap);
        va_end(ap);
        if (n < 0) {
            r->err = -ENOMEM;
            return;
        }
    }
    kv_add(r, key, val, (size_t)n);
    if (val != small)
        free(val);
}

void
proto_reply_ext_str(struct proto_reply *r, const char *key, const char *val, size_t len)
{
    kv_add(r, key, val, len);
}

void
proto_reply_ext_i64(struct proto_reply *r, const char *key, int64_t v)
{
    char buf[24], *p = buf + sizeof(buf);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    kv_add(r, key, p, (size_t)(buf + sizeof(buf) - p));
}

void
proto_reply_body(struct proto_reply *r, void *body, size_t len)
{
    if (r->body_owned)
        free(r->body);
    r->body = body;
    r->body_len = body ? len : 0;
    r->body_owned = 1;
}

void
proto_reply_body_copy(struct proto_reply *r, const void *body, size_t len)
{
    void *p = NULL;

    if (len) {
        p = malloc(len);
        if (!p) {
            r->err = -ENOMEM;
            return;
        }
        memcpy(p, body, len);
    }
    proto_reply_body(r, p, len);
}

static int
encode(const struct proto_reply *r, int32_t opaque, int32_t flag, size_t extra_body, uint8_t **out,
       size_t *out_len)
{
    struct proto_cmd c;
    struct proto_ext local[32], *ext = local;
    uint8_t *hdr, *buf;
    size_t hlen, i, pos = 0;
    int rc;

    if (r->err)
        return r->err;
    if (r->next > sizeof(local) / sizeof(local[0])) {
        ext = malloc(r->next * sizeof(*ext));
        if (!ext)
            return -ENOMEM;
    }
    for (i = 0; i < r->next; i++) {
        ext[i].key = KV(r) + pos;
        ext[i].key_len = strlen(ext[i].key);
        pos += ext[i].key_len + 1;
        ext[i].val = KV(r) + pos;
        ext[i].val_len = strlen(ext[i].val);
        pos += ext[i].val_len + 1;
    }
    memset(&c, 0, sizeof(c));
    c.code = r->code;
    c.language = PROTO_LANG_JAVA;
    c.version = 479; /* V5_3_3: clients treat the reply's version as the broker's */
    c.opaque = opaque;
    c.flag = flag;
    c.remark = r->remark;
    c.ext = ext;
    c.next = r->next;
    c.ext_present = r->ext_present;
    c.body = NULL;
    if (r->body_len + extra_body > PROTO_FRAME_MAX) {
        if (ext != local)
            free(ext);
        return SPK_ETOOBIG;
    }
    c.body_len = r->body_len + extra_body;
    rc = proto_encode_header(&c, &hdr, &hlen);
    if (ext != local)
        free(ext);
    if (rc)
        return rc;
    if (r->body_len == 0) {
        *out = hdr;
        *out_len = hlen;
        return 0;
    }
    buf = realloc(hdr, hlen + r->body_len);
    if (!buf) {
        free(hdr);
        return -ENOMEM;
    }
    memcpy(buf + hlen, r->body, r->body_len);
    *out = buf;
    *out_len = hlen + r->body_len;
    return 0;
}

int
proto_reply_encode(const struct proto_cmd *req, const struct proto_reply *r, size_t extra_body,
                   uint8_t **out, size_t *out_len)
{
    return encode(r, req->opaque, PROTO_FLAG_RESPONSE, extra_body, out, out_len);
}

int
proto_request_encode(const struct proto_reply *r, int32_t opaque, int oneway, uint8_t **out,
                     size_t *out_len)
{
    return encode(r, opaque, oneway ? PROTO_FLAG_ONEWAY : 0, 0, out, out_len);
}
