/*
 * reply.c - building and encoding responses (see reply.h).
 *
 * Invariants:
 *   INV-1  ext[0..next) are valid entries whose key points at an owned
 *          block; cap >= next.
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

void
proto_reply_init(struct proto_reply *r, int32_t code)
{
    memset(r, 0, sizeof(*r));
    r->code = code;
}

void
proto_reply_clear_ext(struct proto_reply *r)
{
    for (size_t i = 0; i < r->next; i++)
        free((void *)r->ext[i].key);
    r->next = 0;
}

void
proto_reply_free(struct proto_reply *r)
{
    proto_reply_clear_ext(r);
    free(r->ext);
    free(r->remark);
    if (r->body_owned)
        free(r->body);
    memset(r, 0, sizeof(*r));
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

void
proto_reply_ext(struct proto_reply *r, const char *key, const char *fmt, ...)
{
    va_list ap;
    char *val = NULL, *blk;
    size_t klen = strlen(key), vlen;
    int n;

    r->ext_present = 1;
    va_start(ap, fmt);
    n = vasprintf(&val, fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->err = -ENOMEM;
        return;
    }
    vlen = (size_t)n;
    if (r->next == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct proto_ext *e = realloc(r->ext, cap * sizeof(*e));
        if (!e) {
            free(val);
            r->err = -ENOMEM;
            return;
        }
        r->ext = e;
        r->cap = cap;
    }
    blk = malloc(klen + vlen + 2);
    if (!blk) {
        free(val);
        r->err = -ENOMEM;
        return;
    }
    memcpy(blk, key, klen + 1);
    memcpy(blk + klen + 1, val, vlen + 1);
    free(val);
    r->ext[r->next].key = blk;
    r->ext[r->next].key_len = klen;
    r->ext[r->next].val = blk + klen + 1;
    r->ext[r->next].val_len = vlen;
    r->next++;
}

void
proto_reply_ext_i64(struct proto_reply *r, const char *key, int64_t v)
{
    proto_reply_ext(r, key, "%lld", (long long)v);
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
    uint8_t *hdr, *buf;
    size_t hlen;
    int rc;

    if (r->err)
        return r->err;
    memset(&c, 0, sizeof(c));
    c.code = r->code;
    c.language = PROTO_LANG_JAVA;
    c.version = 479; /* V5_3_3: clients treat the reply's version as the broker's */
    c.opaque = opaque;
    c.flag = flag;
    c.remark = r->remark;
    c.ext = r->ext;
    c.next = r->next;
    c.ext_present = r->ext_present;
    c.body = NULL;
    if (r->body_len + extra_body > PROTO_FRAME_MAX)
        return SPK_ETOOBIG;
    c.body_len = r->body_len + extra_body;
    rc = proto_encode_header(&c, &hdr, &hlen);
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
