/*
 * t_remoting.c - unit tests for src/proto/remoting.c.
 *
 * The expected bytes are the worked examples of PROTOCOL.md 1.7, typed in
 * here byte for byte rather than produced by the encoder under test.
 * Frames are copied into exact-size heap buffers so that the sanitizers
 * catch any read past the end.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "proto/remoting.h"

static const char ex_a_header[] =
    "{\"code\":105,\"extFields\":{\"topic\":\"TopicTest\"},\"flag\":0,"
    "\"language\":\"JAVA\",\"opaque\":3,\"serializeTypeCurrentRPC\":\"JSON\","
    "\"version\":479}";

static const uint8_t ex_b_frame[] = {
    0x00, 0x00, 0x00, 0x2d,
    0x01, 0x00, 0x00, 0x29,
    0x00, 0x69,
    0x00,
    0x01, 0xdf,
    0x00, 0x00, 0x00, 0x03,
    0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x14,
    0x00, 0x05, 0x74, 0x6f, 0x70, 0x69, 0x63,
    0x00, 0x00, 0x00, 0x09, 0x54, 0x6f, 0x70, 0x69, 0x63, 0x54, 0x65, 0x73, 0x74,
};

/* A new heap frame: prefix (type <type>) + header + body. */
static uint8_t *
mk_frame(int type, const void *hdr, size_t hlen, const void *body,
         size_t blen, size_t *len)
{
    uint8_t *f = malloc(8 + hlen + blen + 1);

    cr_assert_not_null(f);
    be_put32(f, (uint32_t)(4 + hlen + blen));
    be_put32(f + 4, (uint32_t)type << 24 | (uint32_t)hlen);
    memcpy(f + 8, hdr, hlen);
    if (blen > 0)
        memcpy(f + 8 + hlen, body, blen);
    *len = 8 + hlen + blen;
    return f;
}

static uint8_t *
mk_json(const char *hdr, size_t *len)
{
    return mk_frame(0, hdr, strlen(hdr), NULL, 0, len);
}

static uint8_t *
dup_mem(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);

    cr_assert_not_null(q);
    memcpy(q, p, n);
    return q;
}

Test(remoting, example_a_json_request)
{
    size_t len, flen = 0;
    uint8_t *f = mk_json(ex_a_header, &len);
    struct proto_cmd c;

    cr_assert_eq(strlen(ex_a_header), 131);
    cr_assert_eq(len, 139);
    cr_assert_eq(memcmp(f, "\x00\x00\x00\x87\x00\x00\x00\x83{\"code\":105,", 20), 0);
    cr_assert_eq(proto_frame_split(f, len, &flen), 0);
    cr_assert_eq(flen, 139);
    cr_assert_eq(proto_decode(f, len, &c), 0);
    cr_assert_eq(c.code, 105);
    cr_assert_eq(c.language, PROTO_LANG_JAVA);
    cr_assert_eq(c.version, 479);
    cr_assert_eq(c.opaque, 3);
    cr_assert_eq(c.flag, 0);
    cr_assert_eq(c.serialize_type, PROTO_SER_JSON);
    cr_assert_null(c.remark);
    cr_assert_eq(c.next, 1);
    cr_assert_eq(c.ext_present, 1);
    cr_assert_str_eq(proto_ext_get(&c, "topic"), "TopicTest");
    cr_assert_eq(c.ext[0].val_len, 9);
    cr_assert_null(proto_ext_get(&c, "topi"));
    cr_assert_null(c.body);
    cr_assert_eq(c.body_len, 0);
    proto_cmd_free(&c);
    free(f);
}

Test(remoting, example_b_binary_request)
{
    size_t flen = 0, len = sizeof(ex_b_frame);
    uint8_t *f = dup_mem(ex_b_frame, len);
    struct proto_cmd c;

    cr_assert_eq(len, 49);
    cr_assert_eq(proto_frame_split(f, len, &flen), 0);
    cr_assert_eq(flen, 49);
    cr_assert_eq(proto_decode(f, len, &c), 0);
    cr_assert_eq(c.code, 105);
    cr_assert_eq(c.language, PROTO_LANG_JAVA);
    cr_assert_eq(c.version, 479);
    cr_assert_eq(c.opaque, 3);
    cr_assert_eq(c.flag, 0);
    cr_assert_eq(c.serialize_type, PROTO_SER_ROCKETMQ);
    cr_assert_null(c.remark);
    cr_assert_eq(c.next, 1);
    cr_assert_str_eq(c.ext[0].key, "topic");
    cr_assert_str_eq(proto_ext_get(&c, "topic"), "TopicTest");
    cr_assert_eq(c.body_len, 0);
    proto_cmd_free(&c);
    free(f);
}

Test(remoting, example_c_response_encoded)
{
    static const char want[] =
        "{\"code\":0,\"flag\":1,\"language\":\"JAVA\",\"opaque\":3,"
        "\"serializeTypeCurrentRPC\":\"JSON\",\"version\":479}";
    struct proto_cmd c;
    uint8_t *out = NULL;
    size_t out_len = 0;

    memset(&c, 0, sizeof(c));
    c.flag = PROTO_FLAG_RESPONSE;
    c.opaque = 3;
    c.version = 479;
    c.body_len = 1000;
    cr_assert_eq(strlen(want), 95);
    cr_assert_eq(proto_encode_header(&c, &out, &out_len), 0);
    cr_assert_eq(out_len, 8 + 95);
    cr_assert_eq(be_get32(out), 4 + 95 + 1000);
    cr_assert_eq(be_get32(out + 4), 0x0000005F);
    cr_assert_eq(memcmp(out + 8, want, 95), 0);
    free(out);
}

Test(remoting, encode_ext_remark_escapes)
{
    static const char want[] =
        "{\"code\":17,\"extFields\":{\"a\":\"1\",\"q\\\"\":\"x\\\\y\\n\\u0001\"},"
        "\"flag\":3,\"language\":\"GO\",\"opaque\":-5,\"remark\":\"r\\tok\","
        "\"serializeTypeCurrentRPC\":\"JSON\",\"version\":-1}";
    struct proto_ext ext[3] = {
        { "a", 1, "1", 1 },
        { "skipped", 7, NULL, 0 },
        { "q\"", 2, "x\\y\n\x01", 5 },
    };
    struct proto_cmd c;
    uint8_t *out = NULL;
    size_t out_len = 0;

    memset(&c, 0, sizeof(c));
    c.code = 17;
    c.flag = 3;
    c.language = PROTO_LANG_GO;
    c.opaque = -5;
    c.version = -1;
    c.remark = (char *)"r\tok";
    c.ext = ext;
    c.next = 3;
    cr_assert_eq(proto_encode_header(&c, &out, &out_len), 0);
    cr_assert_eq(out_len, 8 + strlen(want));
    cr_assert_eq(memcmp(out + 8, want, strlen(want)), 0, "%.*s",
                 (int)(out_len - 8), out + 8);
    free(out);
}

Test(remoting, encode_empty_ext_present)
{
    struct proto_cmd c;
    uint8_t *out = NULL;
    size_t out_len = 0;
    const char *want = "{\"code\":0,\"extFields\":{},\"flag\":1,\"language\":\"OTHER\","
                       "\"opaque\":0,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":0}";

    memset(&c, 0, sizeof(c));
    c.flag = 1;
    c.language = 99;
    c.ext_present = 1;
    cr_assert_eq(proto_encode_header(&c, &out, &out_len), 0);
    cr_assert_eq(out_len - 8, strlen(want));
    cr_assert_eq(memcmp(out + 8, want, strlen(want)), 0);
    free(out);
}

Test(remoting, encode_too_big)
{
    struct proto_cmd c;
    uint8_t *out = NULL;
    size_t out_len = 0;

    memset(&c, 0, sizeof(c));
    c.body_len = PROTO_FRAME_MAX;
    cr_assert_eq(proto_encode_header(&c, &out, &out_len), SPK_ETOOBIG);
    c.body_len = SIZE_MAX;
    cr_assert_eq(proto_encode_header(&c, &out, &out_len), SPK_ETOOBIG);
    cr_assert_null(out);
}

Test(remoting, round_trip_with_body)
{
    struct proto_ext ext[2] = {
        { "queueId", 7, "3", 1 },
        { "k\xc3\xa9", 3, "v\"\\", 3 },
    };
    static const uint8_t body[] = "hello body";
    struct proto_cmd c, d;
    uint8_t *out = NULL, *frame;
    size_t out_len = 0, flen = 0;

    memset(&c, 0, sizeof(c));
    c.code = 200050;
    c.language = PROTO_LANG_RUST;
    c.version = 481;
    c.opaque = INT32_MIN;
    c.flag = PROTO_FLAG_ONEWAY;
    c.remark = (char *)"note";
    c.ext = ext;
    c.next = 2;
    c.body = body;
    c.body_len = 10;
    cr_assert_eq(proto_encode_header(&c, &out, &out_len), 0);
    frame = malloc(out_len + 10);
    memcpy(frame, out, out_len);
    memcpy(frame + out_len, body, 10);
    cr_assert_eq(proto_frame_split(frame, out_len + 10, &flen), 0);
    cr_assert_eq(flen, out_len + 10);
    cr_assert_eq(proto_decode(frame, out_len + 10, &d), 0);
    cr_assert_eq(d.code, 200050);
    cr_assert_eq(d.language, PROTO_LANG_RUST);
    cr_assert_eq(d.version, 481);
    cr_assert_eq(d.opaque, INT32_MIN);
    cr_assert_eq(d.flag, PROTO_FLAG_ONEWAY);
    cr_assert_str_eq(d.remark, "note");
    cr_assert_eq(d.next, 2);
    cr_assert_str_eq(proto_ext_get(&d, "queueId"), "3");
    cr_assert_str_eq(proto_ext_get(&d, "k\xc3\xa9"), "v\"\\");
    cr_assert_eq(d.body, frame + out_len);
    cr_assert_eq(d.body_len, 10);
    cr_assert_eq(memcmp(d.body, "hello body", 10), 0);
    proto_cmd_free(&d);
    cr_assert_null(d.ext);
    proto_cmd_free(&d); /* a freed command frees again harmlessly */
    free(frame);
    free(out);
}

Test(remoting, json_lenient_values)
{
    size_t len;
    uint8_t *f = mk_json(
        "{\"code\":\"310\",\"flag\":\"1\",\"opaque\":\"-7\",\"version\":401.0,"
        "\"language\":9,\"remark\":null,\"unknown\":[1,{\"x\":2}],"
        "\"extFields\":{\"n\":12345,\"neg\":-3,\"big\":4294967296,\"f\":1.5,"
        "\"t\":true,\"fa\":false,\"nul\":null,\"s\":\"str\"}}  \n", &len);
    struct proto_cmd c;

    cr_assert_eq(proto_decode(f, len, &c), 0);
    cr_assert_eq(c.code, 310);
    cr_assert_eq(c.flag, 1);
    cr_assert_eq(c.opaque, -7);
    cr_assert_eq(c.version, 401);
    cr_assert_eq(c.language, PROTO_LANG_GO);
    cr_assert_null(c.remark);
    cr_assert_eq(c.next, 7);
    cr_assert_str_eq(proto_ext_get(&c, "n"), "12345");
    cr_assert_str_eq(proto_ext_get(&c, "neg"), "-3");
    cr_assert_str_eq(proto_ext_get(&c, "big"), "4294967296");
    cr_assert_str_eq(proto_ext_get(&c, "f"), "1.5");
    cr_assert_str_eq(proto_ext_get(&c, "t"), "true");
    cr_assert_str_eq(proto_ext_get(&c, "fa"), "false");
    cr_assert_null(proto_ext_get(&c, "nul"));
    cr_assert_str_eq(proto_ext_get(&c, "s"), "str");
    proto_cmd_free(&c);
    free(f);
}

Test(remoting, json_language_names)
{
    static const char *names[] = { "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI",
        "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST", "NODE_JS" };
    char hdr[64];
    size_t i, len;

    for (i = 0; i < 14; i++) {
        struct proto_cmd c;
        uint8_t *f;

        snprintf(hdr, sizeof(hdr), "{\"language\":\"%s\"}", names[i]);
        f = mk_json(hdr, &len);
        cr_assert_eq(proto_decode(f, len, &c), 0);
        cr_assert_eq(c.language, (int)i);
        proto_cmd_free(&c);
        free(f);
    }
    {
        struct proto_cmd c;
        uint8_t *f = mk_json("{\"language\":\"COBOL\"}", &len);

        cr_assert_eq(proto_decode(f, len, &c), 0);
        cr_assert_eq(c.language, PROTO_LANG_UNKNOWN);
        proto_cmd_free(&c);
        free(f);
    }
}

Test(remoting, json_unicode_escapes)
{
    size_t len;
    /* U+00E9, U+20AC and U+1F600 (surrogate pair D83D DE00). */
    uint8_t *f = mk_json("{\"remark\":\"caf\\u00e9\",\"extFields\":"
                         "{\"e\\u20ac\":\"x\\ud83d\\ude00y\",\"raw\":\"\xc3\xa9\"}}", &len);
    struct proto_cmd c;

    cr_assert_eq(proto_decode(f, len, &c), 0);
    cr_assert_str_eq(c.remark, "caf\xc3\xa9");
    cr_assert_str_eq(proto_ext_get(&c, "e\xe2\x82\xac"), "x\xf0\x9f\x98\x80y");
    cr_assert_str_eq(proto_ext_get(&c, "raw"), "\xc3\xa9");
    proto_cmd_free(&c);
    free(f);
}

Test(remoting, json_missing_fields_default)
{
    size_t len;
    uint8_t *f = mk_json("{}", &len);
    struct proto_cmd c;

    cr_assert_eq(proto_decode(f, len, &c), 0);
    cr_assert_eq(c.code, 0);
    cr_assert_eq(c.language, 0);
    cr_assert_eq(c.next, 0);
    cr_assert_eq(c.ext_present, 0);
    cr_assert_null(c.ext);
    proto_cmd_free(&c);
    free(f);
}

/* fastjson reads a nested value of a String field as its JSON text. */
Test(remoting, json_ext_nested_values_as_text)
{
    size_t len;
    uint8_t *f = mk_json("{\"code\":9,\"extFields\":{\"o\":{\"x\":[1]},\"a\":[1,\"b\"],\"z\":null}}",
                         &len);
    struct proto_cmd c;

    cr_assert_eq(proto_decode(f, len, &c), 0);
    cr_assert_str_eq(proto_ext_get(&c, "o"), "{\"x\":[1]}");
    cr_assert_str_eq(proto_ext_get(&c, "a"), "[1,\"b\"]");
    cr_assert_null(proto_ext_get(&c, "z"));
    proto_cmd_free(&c);
    free(f);
}

Test(remoting, json_rejects)
{
    static const char *bad[] = {
        "{\"code\":105,\"flag\":0",               /* truncated */
        "",                                        /* empty */
        "[1,2]",                                   /* not an object */
        "{} x",                                    /* trailing garbage */
        "{\"code\":1.5}",                          /* fraction */
        "{\"code\":2147483648}",                   /* over int32 */
        "{\"opaque\":\"12a\"}",                    /* bad numeric string */
        "{\"flag\":true}",                         /* wrong type */
        "{\"remark\":5}",
        "{\"extFields\":[]}",
        "{\"extFields\":{\"a\":\"\\ud83d\"}}",     /* lone surrogate */
    };
    size_t i, len;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proto_cmd c;
        uint8_t *f = mk_json(bad[i], &len);

        memset(&c, 0x5a, sizeof(c));
        cr_assert_eq(proto_decode(f, len, &c), SPK_EFORMAT, "case %zu: %s", i, bad[i]);
        cr_assert_eq(c.code, 0x5a5a5a5a); /* untouched on failure */
        free(f);
    }
}

Test(remoting, frame_split_partial)
{
    size_t len, i, flen;
    uint8_t *f = mk_json(ex_a_header, &len);
    uint8_t *two = malloc(2 * len);

    for (i = 0; i < len; i++) {
        flen = 12345;
        cr_assert_eq(proto_frame_split(f, i, &flen), -EAGAIN, "len %zu", i);
        cr_assert_eq(flen, 12345);
    }
    /* Two frames back to back: only the first is reported. */
    memcpy(two, f, len);
    memcpy(two + len, f, len);
    cr_assert_eq(proto_frame_split(two, 2 * len, &flen), 0);
    cr_assert_eq(flen, len);
    free(two);
    free(f);
}

Test(remoting, frame_split_limits)
{
    uint8_t b[8] = { 0 };
    size_t flen = 0;
    uint32_t l;

    for (l = 0; l < 4; l++) {
        be_put32(b, l);
        cr_assert_eq(proto_frame_split(b, 8, &flen), SPK_EFORMAT);
    }
    be_put32(b, PROTO_FRAME_MAX - 3);
    cr_assert_eq(proto_frame_split(b, 8, &flen), SPK_ETOOBIG);
    be_put32(b, 0xFFFFFFFFu);
    cr_assert_eq(proto_frame_split(b, 4, &flen), SPK_ETOOBIG);
    be_put32(b, PROTO_FRAME_MAX - 4); /* the largest legal frame: just incomplete */
    cr_assert_eq(proto_frame_split(b, 8, &flen), -EAGAIN);
    be_put32(b, 4);
    cr_assert_eq(proto_frame_split(b, 8, &flen), 0);
    cr_assert_eq(flen, 8);
}

Test(remoting, decode_prefix_errors)
{
    uint8_t *f = dup_mem(ex_b_frame, sizeof(ex_b_frame));
    struct proto_cmd c;

    be_put32(f + 4, 0x01000000u | 42); /* headerLen 42 > 45 - 4 */
    cr_assert_eq(proto_decode(f, sizeof(ex_b_frame), &c), SPK_EFORMAT);
    be_put32(f + 4, 0x02000029u);      /* unknown serialize type */
    cr_assert_eq(proto_decode(f, sizeof(ex_b_frame), &c), SPK_EFORMAT);
    be_put32(f + 4, 0x01000029u);
    be_put32(f, 46);                   /* length disagrees with the buffer */
    cr_assert_eq(proto_decode(f, sizeof(ex_b_frame), &c), SPK_EFORMAT);
    be_put32(f, 0x80000000u);
    cr_assert_eq(proto_decode(f, sizeof(ex_b_frame), &c), SPK_ETOOBIG);
    free(f);
}

/* Patches a 4-byte or 2-byte field of example (b) and expects SPK_EFORMAT. */
static void
bin_reject(size_t off, uint32_t v, int width)
{
    uint8_t *f = dup_mem(ex_b_frame, sizeof(ex_b_frame));
    struct proto_cmd c;

    if (width == 4)
        be_put32(f + off, v);
    else
        be_put16(f + off, (uint16_t)v);
    cr_assert_eq(proto_decode(f, sizeof(ex_b_frame), &c), SPK_EFORMAT,
                 "off %zu v %u", off, v);
    free(f);
}

Test(remoting, binary_lengths_past_header)
{
    bin_reject(21, 1, 4);            /* remarkLen eats the extLen field */
    bin_reject(21, 0x7FFFFFFF, 4);
    bin_reject(21, 0xFFFFFFFF, 4);   /* negative */
    bin_reject(25, 21, 4);           /* extLen past headerLen */
    bin_reject(25, 19, 4);           /* entries do not fill extLen */
    bin_reject(25, 0xFFFFFFF0, 4);
    bin_reject(29, 6, 2);            /* keyLen runs into valLen */
    bin_reject(29, 0x8000, 2);       /* negative short */
    bin_reject(36, 10, 4);           /* valLen past extLen */
    bin_reject(36, 0xFFFFFFFF, 4);
}

Test(remoting, binary_remark_body_and_short_header)
{
    /* code -1 (short), language GO, version 0x8000 (negative short), remark "hi". */
    static const uint8_t hdr[] = {
        0xff, 0xff, 9, 0x80, 0x00, 0, 0, 0, 7, 0, 0, 0, 1,
        0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0,
    };
    size_t len;
    uint8_t *f = mk_frame(1, hdr, sizeof(hdr), "BODY", 4, &len);
    struct proto_cmd c;

    cr_assert_eq(proto_decode(f, len, &c), 0);
    cr_assert_eq(c.code, -1);
    cr_assert_eq(c.language, PROTO_LANG_GO);
    cr_assert_eq(c.version, -32768);
    cr_assert_eq(c.opaque, 7);
    cr_assert_eq(c.flag, PROTO_FLAG_RESPONSE);
    cr_assert_str_eq(c.remark, "hi");
    cr_assert_eq(c.next, 0);
    cr_assert_eq(c.ext_present, 0);
    cr_assert_eq(c.body, f + 8 + sizeof(hdr));
    cr_assert_eq(c.body_len, 4);
    proto_cmd_free(&c);
    free(f);

    f = mk_frame(1, hdr, 20, NULL, 0, &len); /* under the 21-byte fixed part */
    cr_assert_eq(proto_decode(f, len, &c), SPK_EFORMAT);
    free(f);
}

/* Every prefix of a valid frame, with the length field kept or patched. */
static void
truncations(const uint8_t *frame, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        uint8_t *f = dup_mem(frame, i);
        struct proto_cmd c;
        size_t flen;

        cr_assert_neq(proto_decode(f, i, &c), 0, "prefix %zu", i);
        cr_assert_eq(proto_frame_split(f, i, &flen), -EAGAIN);
        /* Now make the length field agree, so the header itself is cut. */
        if (i >= 8) {
            uint32_t hl = be_get32(f + 4) & 0xFFFFFF;

            be_put32(f, (uint32_t)(i - 4));
            if (hl > i - 8)
                cr_assert_neq(proto_decode(f, i, &c), 0, "cut header %zu", i);
            else if (proto_decode(f, i, &c) == 0)
                proto_cmd_free(&c);
            /* Also shrink headerLen to the bytes present: truncated header text. */
            be_put32(f + 4, (be_get32(f + 4) & 0xFF000000u) | (uint32_t)(i - 8));
            if (i - 8 < hl)
                cr_assert_neq(proto_decode(f, i, &c), 0, "short header %zu", i);
        }
        free(f);
    }
}

Test(remoting, every_prefix_is_an_error)
{
    size_t len;
    uint8_t *f = mk_json(ex_a_header, &len);

    truncations(f, len);
    truncations(ex_b_frame, sizeof(ex_b_frame));
    free(f);
}
