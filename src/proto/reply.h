/*
 * reply.h - a response (or server-initiated request) under construction.
 *
 * Processors fill a proto_reply; the network layer encodes it against the
 * request it answers (opaque echoed, flag bit 0 set, JSON header, language
 * JAVA as Java servers answer). extFields values are text, as Java sends
 * them; numbers are formatted by the caller.
 *
 * Ownership: everything a reply points to (remark, ext strings, body) is
 * owned by it and freed by proto_reply_free(), except a body attached with
 * proto_reply_body_ref(), which stays the caller's.
 * Allocation failures are sticky (err = -ENOMEM) and reported by the
 * encoders, so processors append without checking every call.
 */
#ifndef SPK_PROTO_REPLY_H
#define SPK_PROTO_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "proto/remoting.h"

#define PROTO_REPLY_INLINE 384

struct proto_reply {
    int32_t code;
    char *remark;
    /* extFields as "key\0val\0" pairs, in kv (inline storage first, the
     * heap when it outgrows it): replies are built per request, so the
     * common one costs no allocation. */
    char *kv_heap;         /* NULL while kv_inline suffices (so a copy by value stays valid) */
    size_t kv_len, kv_cap;
    size_t next;
    int ext_present;       /* emit "extFields":{} even when empty */
    char kv_inline[PROTO_REPLY_INLINE];
    uint8_t *body;
    size_t body_len;
    int body_owned;
    int err;
};

void proto_reply_init(struct proto_reply *r, int32_t code);
void proto_reply_free(struct proto_reply *r);
void proto_reply_remark(struct proto_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void proto_reply_ext(struct proto_reply *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void proto_reply_ext_i64(struct proto_reply *r, const char *key, int64_t v);
/* A value of <len> bytes (no NUL inside). */
void proto_reply_ext_str(struct proto_reply *r, const char *key, const char *val, size_t len);
/* The value of extField <key> (first match), or NULL. */
const char *proto_reply_ext_get(const struct proto_reply *r, const char *key);
/* Takes ownership of a malloc'd body (freed by proto_reply_free). */
void proto_reply_body(struct proto_reply *r, void *body, size_t len);
/* Copies len bytes into an owned body. */
void proto_reply_body_copy(struct proto_reply *r, const void *body, size_t len);
/* Drops every ext entry (an error path replacing a success header). */
void proto_reply_clear_ext(struct proto_reply *r);

/*
 * Encodes the whole response frame to <req> (header and body) into a new
 * malloc'd buffer. With <extra_body> > 0 the length field also counts
 * extra bytes the caller sends after this buffer (zero-copy pull bodies).
 * Returns 0, SPK_ETOOBIG or -ENOMEM.
 */
int proto_reply_encode(const struct proto_cmd *req, const struct proto_reply *r, size_t extra_body,
                       uint8_t **out, size_t *out_len);

/*
 * Encodes <r> as a request the server sends (code = r->code, the given
 * opaque, oneway flag if asked).
 */
int proto_request_encode(const struct proto_reply *r, int32_t opaque, int oneway, uint8_t **out,
                         size_t *out_len);

#endif /* SPK_PROTO_REPLY_H */
