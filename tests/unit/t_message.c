/*
 * t_message.c - unit tests for src/proto/message.c.
 *
 * The expected bytes are the worked example of PROTOCOL.md 4.3, typed in
 * here byte for byte rather than produced by the encoder under test.
 * Inputs are copied into exact-size heap buffers so that the sanitizers
 * catch any read past the end.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "proto/message.h"

static const uint8_t ex_entry[40] = {
    0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00, 0x0d, 0x55,
    0x4e, 0x49, 0x51, 0x5f, 0x4b, 0x45, 0x59, 0x01, 0x41, 0x42, 0x43, 0x02,
};

static uint8_t *
dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);

    cr_assert(d != NULL);
    if (n)
        memcpy(d, p, n);
    return d;
}

/* Appends one entry to buf at *off. */
static void
put_entry(uint8_t *buf, size_t *off, int32_t flag, const char *body, const char *props)
{
    size_t bl = strlen(body), pl = strlen(props);
    size_t need = proto_batch_encode(NULL, flag, body, (uint32_t)bl, props, (uint32_t)pl);

    cr_assert_eq(need, 22 + bl + pl);
    cr_assert_eq(proto_batch_encode(buf + *off, flag, body, (uint32_t)bl, props, (uint32_t)pl),
                 need);
    *off += need;
}

static int
split(const uint8_t *p, size_t len, struct proto_batch_msg *out, size_t cap, size_t *n)
{
    uint8_t *d = dup_bytes(p, len);
    int rc = proto_batch_split(d, len, out, cap, n);

    free(d);
    return rc;
}

Test(message, batch_example_encode_and_split)
{
    uint8_t buf[40];
    struct proto_batch_msg m[2];
    size_t n = 99;
    uint8_t *d;

    cr_assert_eq(proto_batch_encode(NULL, 0, "hello", 5, "UNIQ_KEY\001ABC\002", 13), 40);
    cr_assert_eq(proto_batch_encode(buf, 0, "hello", 5, "UNIQ_KEY\001ABC\002", 13), 40);
    cr_assert_eq(memcmp(buf, ex_entry, 40), 0);

    d = dup_bytes(ex_entry, 40);
    cr_assert_eq(proto_batch_split(d, 40, m, 2, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(m[0].flag, 0);
    cr_assert_eq(m[0].body_len, 5);
    cr_assert_eq(memcmp(m[0].body, "hello", 5), 0);
    cr_assert_eq(m[0].props_len, 13);
    cr_assert_eq(memcmp(m[0].props, "UNIQ_KEY\001ABC\002", 13), 0);
    cr_assert(m[0].body == d + 20);
    free(d);
}

Test(message, batch_three_with_empty_parts)
{
    uint8_t buf[256];
    size_t off = 0, n = 0;
    struct proto_batch_msg m[3];

    put_entry(buf, &off, 7, "", "A\001b\002");
    put_entry(buf, &off, -1, "xyz", "");
    put_entry(buf, &off, 0, "", "");
    cr_assert_eq(off, 22 + 4 + 22 + 3 + 22);
    cr_assert_eq(split(buf, off, m, 3, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(m[0].flag, 7);
    cr_assert_eq(m[0].body_len, 0);
    cr_assert_eq(m[0].props_len, 4);
    cr_assert_eq(m[1].flag, -1);
    cr_assert_eq(m[1].body_len, 3);
    cr_assert_eq(m[1].props_len, 0);
    cr_assert_eq(m[2].body_len, 0);
    cr_assert_eq(m[2].props_len, 0);
    /* cap too small */
    n = 42;
    cr_assert_eq(split(buf, off, m, 2, &n), SPK_ETOOBIG);
    cr_assert_eq(n, 42);
}

Test(message, batch_empty_is_error)
{
    struct proto_batch_msg m[1];
    size_t n = 0;
    uint8_t one = 0;

    cr_assert_eq(proto_batch_split(&one, 0, m, 1, &n), SPK_EFORMAT);
    cr_assert_eq(proto_batch_split(NULL, 0, m, 1, &n), SPK_EFORMAT);
}

Test(message, batch_every_truncation_fails)
{
    uint8_t buf[128];
    size_t off = 0, n, len, first;
    struct proto_batch_msg m[2];

    put_entry(buf, &off, 1, "hello", "K\001V\002");
    first = off;
    put_entry(buf, &off, 2, "world!", "KEYS\001a b\002");
    cr_assert_eq(split(buf, off, m, 2, &n), 0);
    cr_assert_eq(n, 2);
    for (len = 1; len < off; len++) {
        if (len == first) {
            /* cut exactly between entries: a valid one-message batch */
            cr_assert_eq(split(buf, len, m, 2, &n), 0);
            cr_assert_eq(n, 1);
            continue;
        }
        cr_assert_eq(split(buf, len, m, 2, &n), SPK_EFORMAT, "len %zu", len);
    }
}

Test(message, batch_bad_lengths)
{
    uint8_t buf[64];
    struct proto_batch_msg m[2];
    size_t n;

    /* TOTALSIZE one too big and one too small (buffer enlarged/shrunk to match) */
    memcpy(buf, ex_entry, 40);
    buf[40] = 0;
    be_put32(buf, 41);
    cr_assert_eq(split(buf, 41, m, 2, &n), SPK_EFORMAT);
    be_put32(buf, 39);
    cr_assert_eq(split(buf, 39, m, 2, &n), SPK_EFORMAT);
    /* TOTALSIZE beyond the buffer */
    be_put32(buf, 1000);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);
    /* negative TOTALSIZE */
    be_put32(buf, 0xFFFFFFFFu);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);

    /* negative bodyLen */
    memcpy(buf, ex_entry, 40);
    be_put32(buf + 16, 0xFFFFFFFFu);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);
    /* bodyLen past TOTALSIZE */
    be_put32(buf + 16, 19);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);
    /* bodyLen inconsistent with propLen */
    be_put32(buf + 16, 4);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);

    /* negative propLen (0xFFFF) and propLen > 32767 (0x8000) */
    memcpy(buf, ex_entry, 40);
    be_put16(buf + 25, 0xFFFF);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);
    be_put16(buf + 25, 0x8000);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);
    /* propLen inconsistent */
    be_put16(buf + 25, 12);
    cr_assert_eq(split(buf, 40, m, 2, &n), SPK_EFORMAT);
}

Test(message, batch_big_props)
{
    size_t len = 22 + 32767, n;
    uint8_t *buf = calloc(1, len + 22 + 32768);
    struct proto_batch_msg m[1];

    cr_assert(buf != NULL);
    be_put32(buf, (uint32_t)len);
    be_put16(buf + 20, 32767);
    cr_assert_eq(split(buf, len, m, 1, &n), 0);
    cr_assert_eq(m[0].props_len, 32767);
    /* a consistent entry with propLen 32768 is still refused */
    be_put32(buf, (uint32_t)len + 1);
    be_put16(buf + 20, 32768);
    cr_assert_eq(split(buf, len + 1, m, 1, &n), SPK_EFORMAT);
    /* the encoder refuses what cannot be represented */
    cr_assert_eq(proto_batch_encode(NULL, 0, "", 0, (const char *)buf, 32768), 0);
    free(buf);
}

Test(message, batch_trailing_bytes)
{
    uint8_t buf[64];
    struct proto_batch_msg m[2];
    size_t n, extra;

    memcpy(buf, ex_entry, 40);
    memset(buf + 40, 0, 24);
    for (extra = 1; extra <= 24; extra++)
        cr_assert_eq(split(buf, 40 + extra, m, 2, &n), SPK_EFORMAT, "extra %zu", extra);
}

Test(message, batch_too_many)
{
    size_t cnt = PROTO_BATCH_MAX_MSGS + 1, off = 0, n = 0, i;
    uint8_t *buf = malloc(cnt * 22);
    struct proto_batch_msg *m = malloc(cnt * sizeof *m);

    cr_assert(buf != NULL && m != NULL);
    for (i = 0; i < cnt; i++)
        put_entry(buf, &off, (int32_t)i, "", "");
    /* exactly the limit is fine */
    cr_assert_eq(split(buf, off - 22, m, cnt, &n), 0);
    cr_assert_eq(n, PROTO_BATCH_MAX_MSGS);
    cr_assert_eq(m[PROTO_BATCH_MAX_MSGS - 1].flag, PROTO_BATCH_MAX_MSGS - 1);
    /* one more is too big even with room in out[] */
    cr_assert_eq(split(buf, off, m, cnt, &n), SPK_ETOOBIG);
    /* and the caller's cap is honoured */
    cr_assert_eq(split(buf, 10 * 22, m, 9, &n), SPK_ETOOBIG);
    free(buf);
    free(m);
}

/* Collects all pairs as "name=value;" for compact comparisons. */
static void
dump_props(const char *props, size_t len, char *out, size_t cap)
{
    size_t pos = 0, nl, vl, o = 0;
    const char *n, *v;

    out[0] = '\0';
    while (proto_props_next(props, len, &pos, &n, &nl, &v, &vl)) {
        cr_assert(o + nl + vl + 3 <= cap);
        memcpy(out + o, n, nl);
        o += nl;
        out[o++] = '=';
        memcpy(out + o, v, vl);
        o += vl;
        out[o++] = ';';
        out[o] = '\0';
    }
    cr_assert_eq(pos, len);
}

static void
check_props(const char *in, size_t len, const char *want)
{
    char got[256];
    char *d = (char *)dup_bytes(in, len);

    dump_props(d, len, got, sizeof got);
    cr_assert_str_eq(got, want, "input len %zu", len);
    free(d);
}

#define CHECK_PROPS(lit, want) check_props(lit, sizeof(lit) - 1, want)

Test(message, props_java_rules)
{
    CHECK_PROPS("", "");
    CHECK_PROPS("A\001B\002", "A=B;");
    /* missing trailing 0x02 */
    CHECK_PROPS("A\001B\002CC\001DD", "A=B;CC=DD;");
    /* short pieces, empty name, empty value, no separator: dropped */
    CHECK_PROPS("\002\002A\001\002\001BC\002AB\001\002X\001Y\002noval\002", "X=Y;");
    /* value keeps a second 0x01; only the first splits */
    CHECK_PROPS("K\001a\001b\002", "K=a\001b;");
    /* first 0x01 after the piece's end does not count */
    CHECK_PROPS("abc\002d\001e\002", "d=e;");
}

Test(message, props_get_last_wins)
{
    const char p[] = "TAGS\001a\002KEYS\001k1\002TAGS\001b\002TAG\001c";
    const char *v;
    size_t vl;

    cr_assert_eq(proto_props_get(p, sizeof p - 1, "TAGS", &v, &vl), 1);
    cr_assert_eq(vl, 1);
    cr_assert_eq(v[0], 'b');
    cr_assert_eq(proto_props_get(p, sizeof p - 1, "TAG", &v, &vl), 1);
    cr_assert_eq(v[0], 'c');
    cr_assert_eq(proto_props_get(p, sizeof p - 1, "KEYS", &v, &vl), 1);
    cr_assert_eq(vl, 2);
    cr_assert_eq(proto_props_get(p, sizeof p - 1, "tags", &v, &vl), 0);
    cr_assert_eq(proto_props_get(p, sizeof p - 1, "WAIT", &v, &vl), 0);
}

Test(message, props_builder)
{
    struct proto_props_buf b;

    proto_props_init(&b);
    cr_assert_eq(proto_props_put(&b, "TAGS", "A"), 0);
    cr_assert_eq(proto_props_put(&b, "WAIT", "true"), 0);
    cr_assert_eq(b.len, 17);
    cr_assert_eq(memcmp(b.data, "TAGS\001A\002WAIT\001true\002", 17), 0);
    cr_assert_eq(b.data[17], '\0');

    cr_assert_eq(proto_props_put(&b, "A\001B", "v"), SPK_EFORMAT);
    cr_assert_eq(proto_props_put(&b, "A\002B", "v"), SPK_EFORMAT);
    cr_assert_eq(proto_props_put(&b, "n", "x\001y"), SPK_EFORMAT);
    cr_assert_eq(proto_props_put(&b, "n", "x\002y"), SPK_EFORMAT);
    cr_assert_eq(proto_props_put(&b, "", "v"), SPK_EFORMAT);
    cr_assert_eq(proto_props_put(&b, "n", ""), SPK_EFORMAT);
    cr_assert_eq(b.len, 17);
    proto_props_free(&b);
    cr_assert(b.data == NULL);
}

Test(message, props_builder_limit)
{
    struct proto_props_buf b;
    size_t vl = 32767 - 17 - 3; /* fills the list to exactly 32767 with name "X" */
    char *big = malloc(40000);

    cr_assert(big != NULL);
    proto_props_init(&b);
    cr_assert_eq(proto_props_put(&b, "TAGS", "A"), 0);
    cr_assert_eq(proto_props_put(&b, "WAIT", "true"), 0);
    memset(big, 'v', vl);
    big[vl] = '\0';
    cr_assert_eq(proto_props_put(&b, "X", big), 0);
    cr_assert_eq(b.len, 32767);
    cr_assert_eq(proto_props_put(&b, "Y", "z"), SPK_ETOOBIG);
    cr_assert_eq(b.len, 32767);
    proto_props_free(&b);

    proto_props_init(&b);
    memset(big, 'v', 39999);
    big[39999] = '\0';
    cr_assert_eq(proto_props_put(&b, "X", big), SPK_ETOOBIG);
    cr_assert_eq(proto_props_put(&b, big, "v"), SPK_ETOOBIG);
    cr_assert_eq(b.len, 0);
    proto_props_free(&b);
    free(big);
}

Test(message, props_copy_with_drop)
{
    static const char *const drop[] = {"POP_CK", "KEYS", NULL};
    const char src[] = "TAGS\001a\002POP_CK\001x\002\002KEYS\001k\002UNIQ_KEY\001U1";
    struct proto_props_buf b;

    proto_props_init(&b);
    cr_assert_eq(proto_props_copy(&b, src, sizeof src - 1, drop), 0);
    cr_assert_eq(proto_props_put(&b, "CLUSTER", "c1"), 0);
    cr_assert_str_eq(b.data, "TAGS\001a\002UNIQ_KEY\001U1\002CLUSTER\001c1\002");
    proto_props_free(&b);

    /* NULL drop list copies everything, canonically */
    proto_props_init(&b);
    cr_assert_eq(proto_props_copy(&b, "A\001B", 3, NULL), 0);
    cr_assert_str_eq(b.data, "A\001B\002");
    /* an empty source leaves the buffer as it was */
    cr_assert_eq(proto_props_copy(&b, "", 0, drop), 0);
    cr_assert_eq(b.len, 4);
    proto_props_free(&b);
}

Test(message, props_copy_too_long_rolls_back)
{
    struct proto_props_buf b;
    size_t vl = 20000;
    char *src = malloc(2 * (vl + 3));
    size_t i, o = 0;

    cr_assert(src != NULL);
    for (i = 0; i < 2; i++) {
        src[o++] = (char)('A' + i);
        src[o++] = '\001';
        memset(src + o, 'v', vl);
        o += vl;
        src[o++] = '\002';
    }
    proto_props_init(&b);
    cr_assert_eq(proto_props_put(&b, "T", "1"), 0);
    cr_assert_eq(proto_props_copy(&b, src, o, NULL), SPK_ETOOBIG);
    cr_assert_eq(b.len, 4);
    cr_assert_str_eq(b.data, "T\0011\002");
    proto_props_free(&b);
    free(src);
}
