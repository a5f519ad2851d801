/*
 * remoting.c - RocketMQ remoting frame splitter, decoder and JSON encoder.
 *
 * Frame and header layouts are in remoting.h and PROTOCOL.md 1.1-1.4.
 *
 * Invariants:
 *   INV-1  No byte of the input is read before the length that covers it
 *          has been checked against the bytes actually present.
 *   INV-2  Every length taken from the input is checked against the
 *          enclosing length (frame, headerLen, extLen) before anything is
 *          allocated from it, so a hostile length cannot cause a large
 *          allocation or an out-of-bounds read.
 *   INV-3  Malformed input returns SPK_EFORMAT (or SPK_ETOOBIG for a
 *          length over PROTO_FRAME_MAX); nothing asserts on input bytes.
 *   INV-4  Out-parameters are written only on success.
 *   INV-5  The encoder always writes serialize type 0 (JSON) with keys in
 *          fastjson's sorted order and extFields values as JSON strings,
 *          the one form every client decodes (PROTOCOL.md 1.1, 1.3).
 *
 * No I/O and no global mutable state: every function can be fuzzed.
 */
#include "proto/remoting.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/errors.h"

#define PREFIX_LEN     8u
#define BIN_FIXED_LEN  21u
#define HEADER_LEN_MAX 0x00FFFFFFu

static const char *const lang_names[] = {
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY",
    "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST", "NODE_JS",
};
#define LANG_COUNT ((int)(sizeof(lang_names) / sizeof(lang_names[0])))

int
proto_frame_split(const uint8_t *buf, size_t len, size_t *frame_len)
{
    uint32_t length;

    if (len < 4)
        return -EAGAIN;
    length = be_get32(buf);
    /* A negative int32 reads as a huge uint32 and is rejected here too. */
    if (length > PROTO_FRAME_MAX - 4)
        return SPK_ETOOBIG;
    if (length < 4)
        return SPK_EFORMAT;
    if (len - 4 < length)
        return -EAGAIN;
    *frame_len = (size_t)length + 4;
    return 0;
}

void
proto_cmd_free(struct proto_cmd *cmd)
{
    if (cmd == NULL)
        return;
    free(cmd->mem);
    free(cmd->ext);
    memset(cmd, 0, sizeof(*cmd));
}

const char *
proto_ext_get(const struct proto_cmd *cmd, const char *key)
{
    size_t i, key_len;

    if (cmd == NULL || key == NULL || cmd->ext == NULL)
        return NULL;
    key_len = strlen(key);
    for (i = 0; i < cmd->next; i++) {
        const struct proto_ext *e = &cmd->ext[i];

        if (e->key != NULL && e->key_len == key_len &&
            memcmp(e->key, key, key_len) == 0)
            return e->val;
    }
    return NULL;
}

/*
 * Decoded strings live in one block (cmd->mem) sized from the header
 * length before decoding starts (INV-2: one allocation, from a length
 * already checked against the frame); arena_put refuses to overrun it.
 */
struct arena {
    char *p;
    size_t len, cap;
};

static char *
arena_put(struct arena *a, const void *s, size_t n)
{
    char *d;

    if (n + 1 > a->cap - a->len)
        return NULL;
    d = a->p + a->len;
    memcpy(d, s, n);
    d[n] = '\0';
    a->len += n + 1;
    return d;
}

static int
ext_push(struct proto_cmd *cmd, size_t *cap, const char *key, size_t key_len, const char *val,
         size_t val_len)
{
    struct proto_ext *e;

    if (cmd->next == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        e = realloc(cmd->ext, ncap * sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        cmd->ext = e;
        *cap = ncap;
    }
    e = &cmd->ext[cmd->next++];
    e->key = key;
    e->key_len = key_len;
    e->val = val;
    e->val_len = val_len;
    return 0;
}

/* ---- ROCKETMQ binary header (PROTOCOL.md 1.4) ---- */

static int
decode_binary(const uint8_t *h, size_t hlen, struct proto_cmd *cmd)
{
    size_t pos, ext_end, n, i;
    uint32_t remark_len, ext_len;
    int rc;

    if (hlen < BIN_FIXED_LEN)
        return SPK_EFORMAT;
    /* Java writes code and version as short: sign-extend, keep as int. */
    cmd->code = (int16_t)be_get16(h);
    cmd->language = h[2];
    cmd->version = (int16_t)be_get16(h + 3);
    cmd->opaque = (int32_t)be_get32(h + 5);
    cmd->flag = (int32_t)be_get32(h + 9);
    remark_len = be_get32(h + 13);
    pos = 17;
    /* Negative int32 lengths are huge as uint32 and fail the same check. */
    if (remark_len > hlen - pos - 4)
        return SPK_EFORMAT;
    pos += remark_len;
    ext_len = be_get32(h + pos);
    pos += 4;
    if (ext_len > hlen - pos)
        return SPK_EFORMAT;
    ext_end = pos + ext_len;

    /* First pass: validate every entry and count them, allocating nothing. */
    n = 0;
    for (i = pos; i < ext_end;) {
        uint16_t kl;
        uint32_t vl;

        if (ext_end - i < 2)
            return SPK_EFORMAT;
        kl = be_get16(h + i);
        i += 2;
        if (kl > 0x7FFF || kl > ext_end - i)
            return SPK_EFORMAT;
        i += kl;
        if (ext_end - i < 4)
            return SPK_EFORMAT;
        vl = be_get32(h + i);
        i += 4;
        if (vl > ext_end - i)
            return SPK_EFORMAT;
        i += vl;
        n++;
    }

    {
        /* Each string's terminator fits in the bytes of its length field. */
        struct arena a = {NULL, 0, hlen + 1};
        size_t cap = 0;

        a.p = cmd->mem = malloc(a.cap);
        if (a.p == NULL)
            return -ENOMEM;
        if (remark_len > 0) {
            cmd->remark = arena_put(&a, h + 17, remark_len);
            if (cmd->remark == NULL)
                return SPK_EFORMAT;
        }
        cmd->ext_present = ext_len > 0;
        for (i = pos; cmd->next < n;) {
            size_t kl = be_get16(h + i), vl;
            const uint8_t *k = h + i + 2;
            char *kd, *vd;

            i += 2 + kl;
            vl = be_get32(h + i);
            i += 4;
            kd = arena_put(&a, k, kl);
            vd = kd ? arena_put(&a, h + i, vl) : NULL;
            if (vd == NULL)
                return SPK_EFORMAT;
            rc = ext_push(cmd, &cap, kd, kl, vd, vl);
            if (rc != 0)
                return rc;
            i += vl;
        }
    }
    return 0;
}

/* ---- JSON header (PROTOCOL.md 1.3) ---- */

/*
 * A purpose-built JSON reader for the header: every request of every
 * client goes through it, and a general parser's tree (cJSON allocates
 * each node and string) cost the broker more than the rest of a send.
 * It walks the text once, validates all of it (unknown keys and nested
 * extFields values included), and copies only the strings it keeps into
 * the command's block. It accepts what cJSON accepted: whitespace is any
 * byte <= 0x20, numbers are what strtod takes from a run of [0-9+-.eE],
 * a lone UTF-16 surrogate in an escape is an error, and nesting deeper
 * than JSON_DEPTH_MAX is refused (no recursion on hostile depth).
 */
#define JSON_DEPTH_MAX 64

struct jp {
    const char *p, *end;
    struct arena *a;
};

static void
jp_ws(struct jp *j)
{
    while (j->p < j->end && (unsigned char)*j->p <= 0x20)
        j->p++;
}

static int
jp_lit(struct jp *j, const char *lit, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return SPK_EFORMAT;
    j->p += n;
    return 0;
}

static int
hex4(const char *s, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return SPK_EFORMAT;
    }
    *out = v;
    return 0;
}

/*
 * Reads a string at j->p (which must be '"'). With <keep>, its unescaped
 * bytes go to the arena (*out, *len; truncated at an escaped NUL, as a C
 * string would be); without, it is only validated.
 */
static int
jp_string(struct jp *j, int keep, char **out, size_t *len)
{
    char *d = NULL, *start = NULL;
    const char *s;
    int nul = 0; /* an escaped NUL was written: the C string ends there */

    if (j->p >= j->end || *j->p != '"')
        return SPK_EFORMAT;
    j->p++;
    if (keep) {
        start = d = j->a->p + j->a->len;
    }
    s = j->p;
    for (;;) {
        const char *q = s;
        /* a run of plain bytes */
        while (q < j->end && *q != '"' && *q != '\\')
            q++;
        if (q >= j->end)
            return SPK_EFORMAT;
        if (keep) {
            memcpy(d, s, (size_t)(q - s));
            d += q - s;
        }
        if (*q == '"') {
            j->p = q + 1;
            break;
        }
        /* an escape */
        if (j->end - q < 2)
            return SPK_EFORMAT;
        switch (q[1]) {
        case '"': case '\\': case '/':
            if (keep)
                *d++ = q[1];
            s = q + 2;
            break;
        case 'b': if (keep) *d++ = '\b'; s = q + 2; break;
        case 'f': if (keep) *d++ = '\f'; s = q + 2; break;
        case 'n': if (keep) *d++ = '\n'; s = q + 2; break;
        case 'r': if (keep) *d++ = '\r'; s = q + 2; break;
        case 't': if (keep) *d++ = '\t'; s = q + 2; break;
        case 'u': {
            unsigned cp, lo;
            if (j->end - q < 6 || hex4(q + 2, &cp) != 0)
                return SPK_EFORMAT;
            s = q + 6;
            nul |= cp == 0;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return SPK_EFORMAT; /* lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) != 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return SPK_EFORMAT;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s += 6;
            }
            if (keep) {
                if (cp < 0x80) {
                    *d++ = (char)cp;
                } else if (cp < 0x800) {
                    *d++ = (char)(0xC0 | (cp >> 6));
                    *d++ = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    *d++ = (char)(0xE0 | (cp >> 12));
                    *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *d++ = (char)(0x80 | (cp & 0x3F));
                } else {
                    *d++ = (char)(0xF0 | (cp >> 18));
                    *d++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                    *d++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *d++ = (char)(0x80 | (cp & 0x3F));
                }
            }
            break;
        }
        default:
            return SPK_EFORMAT;
        }
    }
    if (keep) {
        *d = '\0';
        *len = nul ? strlen(start) : (size_t)(d - start);
        j->a->len += (size_t)(d - start) + 1;
        *out = start;
    }
    return 0;
}

/* A number token: its extent, and its value as strtod reads it. */
static int
jp_number(struct jp *j, const char **tok, size_t *toklen, double *val)
{
    const char *q = j->p;
    char buf[64], *end;

    /* as cJSON: a number starts with '-' or a digit */
    if (q >= j->end || !(*q == '-' || (*q >= '0' && *q <= '9')))
        return SPK_EFORMAT;
    while (q < j->end && ((*q >= '0' && *q <= '9') || *q == '+' || *q == '-' || *q == '.' ||
                          *q == 'e' || *q == 'E'))
        q++;
    if (q == j->p || (size_t)(q - j->p) >= sizeof(buf))
        return SPK_EFORMAT;
    memcpy(buf, j->p, (size_t)(q - j->p));
    buf[q - j->p] = '\0';
    *val = strtod(buf, &end);
    if (end != buf + (q - j->p))
        return SPK_EFORMAT;
    *tok = j->p;
    *toklen = (size_t)(q - j->p);
    j->p = q;
    return 0;
}

static int jp_skip(struct jp *j, int depth);

/* Validates an object or array at j->p (depth already counted). */
static int
jp_skip_container(struct jp *j, int depth)
{
    char close = *j->p == '{' ? '}' : ']';
    int obj = close == '}', rc;

    if (depth > JSON_DEPTH_MAX)
        return SPK_EFORMAT;
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        if (obj) {
            jp_ws(j);
            if ((rc = jp_string(j, 0, NULL, NULL)) != 0)
                return rc;
            jp_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return SPK_EFORMAT;
            j->p++;
        }
        if ((rc = jp_skip(j, depth)) != 0)
            return rc;
        jp_ws(j);
        if (j->p >= j->end)
            return SPK_EFORMAT;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == close) {
            j->p++;
            return 0;
        }
        return SPK_EFORMAT;
    }
}

/* Validates any value. */
static int
jp_skip(struct jp *j, int depth)
{
    const char *tok;
    size_t tl;
    double v;

    jp_ws(j);
    if (j->p >= j->end)
        return SPK_EFORMAT;
    switch (*j->p) {
    case '"': return jp_string(j, 0, NULL, NULL);
    case '{':
    case '[': return jp_skip_container(j, depth + 1);
    case 't': return jp_lit(j, "true", 4);
    case 'f': return jp_lit(j, "false", 5);
    case 'n': return jp_lit(j, "null", 4);
    default: return jp_number(j, &tok, &tl, &v);
    }
}

/*
 * fastjson converts numbers and numeric strings to int; null means the
 * field's default. Fractions, out-of-range values and other types are
 * rejected rather than silently truncated.
 */
static int
jp_int32(struct jp *j, int32_t *out)
{
    const char *tok;
    size_t tl;
    double d;
    int rc;

    jp_ws(j);
    if (j->p >= j->end)
        return SPK_EFORMAT;
    if (*j->p == 'n') {
        *out = 0;
        return jp_lit(j, "null", 4);
    }
    if (*j->p == '"') {
        char *s, *end;
        size_t len;
        long long v;
        size_t mark = j->a->len;

        if ((rc = jp_string(j, 1, &s, &len)) != 0)
            return rc;
        j->a->len = mark; /* scratch only */
        if (*s == '\0')
            return SPK_EFORMAT;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < INT32_MIN || v > INT32_MAX)
            return SPK_EFORMAT;
        *out = (int32_t)v;
        return 0;
    }
    if ((rc = jp_number(j, &tok, &tl, &d)) != 0)
        return rc;
    /* The range test also rejects NaN; the cast test rejects fractions. */
    if (!(d >= INT32_MIN && d <= INT32_MAX) || (double)(int32_t)d != d)
        return SPK_EFORMAT;
    *out = (int32_t)d;
    return 0;
}

static int
jp_language(struct jp *j, int *out)
{
    int32_t v;
    int rc;

    jp_ws(j);
    if (j->p < j->end && *j->p == 'n')
        return jp_lit(j, "null", 4); /* keeps the default */
    if (j->p < j->end && *j->p == '"') {
        const char *save = j->p;
        size_t mark = j->a->len, len;
        char *s;

        if ((rc = jp_string(j, 1, &s, &len)) != 0)
            return rc;
        j->a->len = mark;
        for (int i = 0; i < LANG_COUNT; i++) {
            if (strcmp(s, lang_names[i]) == 0) {
                *out = i;
                return 0;
            }
        }
        /* Older Java maps unknown names to null; only numeric strings remain. */
        j->p = save;
        if (jp_int32(j, &v) == 0) {
            *out = v;
            return 0;
        }
        j->p = save;
        (void)jp_string(j, 0, NULL, NULL);
        *out = PROTO_LANG_UNKNOWN;
        return 0;
    }
    if ((rc = jp_int32(j, &v)) != 0)
        return rc;
    *out = v;
    return 0;
}

/*
 * The text of one extFields value, into the arena. Integers are kept as
 * written (cJSON printed integers below 2^53 back the same way); other
 * numbers are printed as cJSON printed them; true/false as words; nested
 * objects and arrays as their JSON text (fastjson's cast to String);
 * null drops the entry.
 */
static int
jp_ext_value(struct jp *j, char **out, size_t *len, int *skip)
{
    const char *start, *tok;
    size_t tl;
    double d;
    int rc;

    *skip = 0;
    jp_ws(j);
    if (j->p >= j->end)
        return SPK_EFORMAT;
    start = j->p;
    switch (*j->p) {
    case '"':
        return jp_string(j, 1, out, len);
    case 't':
    case 'f':
    case 'n':
        if (*j->p == 'n') {
            *skip = 1;
            return jp_lit(j, "null", 4);
        }
        rc = *j->p == 't' ? jp_lit(j, "true", 4) : jp_lit(j, "false", 5);
        break;
    case '{':
    case '[':
        rc = jp_skip_container(j, 2);
        break;
    default: {
        char num[32];
        int plain = 1;

        if ((rc = jp_number(j, &tok, &tl, &d)) != 0)
            return rc;
        /* -?[1-9][0-9]{0,14} or 0: exactly what "%lld" would print */
        for (size_t i = (tok[0] == '-'); i < tl; i++)
            if (tok[i] < '0' || tok[i] > '9')
                plain = 0;
        if (tl - (tok[0] == '-') == 0 || tl > 16 ||
            (tok[tok[0] == '-'] == '0' && tl - (tok[0] == '-') > 1) ||
            (tl == 2 && tok[0] == '-' && tok[1] == '0'))
            plain = 0;
        if (plain)
            break;
        if (d > -9007199254740992.0 && d < 9007199254740992.0 && (double)(long long)d == d) {
            snprintf(num, sizeof(num), "%lld", (long long)d);
        } else if (d != d || d > 1.7976931348623157e308 || d < -1.7976931348623157e308) {
            snprintf(num, sizeof(num), "null"); /* cJSON printed non-finite numbers so */
        } else {
            /* cJSON's shortest round-trip form */
            snprintf(num, sizeof(num), "%1.15g", d);
            if (strtod(num, NULL) != d)
                snprintf(num, sizeof(num), "%1.17g", d);
        }
        /* never longer than the token except in exotic spellings; check */
        if (strlen(num) + 1 > j->a->cap - j->a->len)
            return SPK_EFORMAT;
        *len = strlen(num);
        *out = arena_put(j->a, num, *len);
        return *out ? 0 : SPK_EFORMAT;
    }
    }
    if (rc != 0)
        return rc;
    *len = (size_t)(j->p - start);
    *out = arena_put(j->a, start, *len);
    return *out ? 0 : SPK_EFORMAT;
}

static int
jp_ext(struct jp *j, struct proto_cmd *cmd)
{
    size_t cap = 0;
    int rc;

    jp_ws(j);
    if (j->p < j->end && *j->p == 'n')
        return jp_lit(j, "null", 4);
    if (j->p >= j->end || *j->p != '{')
        return SPK_EFORMAT;
    cmd->ext_present = 1;
    j->p++;
    jp_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        char *k, *v;
        size_t kl, vl;
        int skip;

        jp_ws(j);
        if ((rc = jp_string(j, 1, &k, &kl)) != 0)
            return rc;
        jp_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return SPK_EFORMAT;
        j->p++;
        if ((rc = jp_ext_value(j, &v, &vl, &skip)) != 0)
            return rc;
        if (!skip && (rc = ext_push(cmd, &cap, k, kl, v, vl)) != 0)
            return rc;
        jp_ws(j);
        if (j->p >= j->end)
            return SPK_EFORMAT;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == '}') {
            j->p++;
            return 0;
        }
        return SPK_EFORMAT;
    }
}

static int
decode_json(const uint8_t *h, size_t hlen, struct proto_cmd *cmd)
{
    struct arena a = {NULL, 0, 0};
    struct jp j = {(const char *)h, (const char *)h + hlen, &a};
    unsigned seen = 0;
    int rc;

    if (hlen == 0)
        return SPK_EFORMAT;
    /* Decoded text is never longer than its encoding plus a terminator
     * per string, and every string costs at least two bytes of encoding;
     * numbers reprinted in another form ("1e15") are bounded by 3x. */
    a.cap = 3 * hlen + 64;
    a.p = cmd->mem = malloc(a.cap);
    if (a.p == NULL)
        return -ENOMEM;
    jp_ws(&j);
    if (j.p >= j.end || *j.p != '{')
        return SPK_EFORMAT;
    j.p++;
    jp_ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            char *k;
            size_t kl, mark;
            unsigned bit = 0;

            jp_ws(&j);
            mark = a.len;
            if ((rc = jp_string(&j, 1, &k, &kl)) != 0)
                return rc;
            a.len = mark; /* the key is only compared */
            jp_ws(&j);
            if (j.p >= j.end || *j.p != ':')
                return SPK_EFORMAT;
            j.p++;
            /* cJSON looked keys up case-sensitively and took the first. */
            if (strcmp(k, "code") == 0) bit = 1;
            else if (strcmp(k, "version") == 0) bit = 2;
            else if (strcmp(k, "opaque") == 0) bit = 4;
            else if (strcmp(k, "flag") == 0) bit = 8;
            else if (strcmp(k, "language") == 0) bit = 16;
            else if (strcmp(k, "remark") == 0) bit = 32;
            else if (strcmp(k, "extFields") == 0) bit = 64;
            if (bit == 0 || (seen & bit)) {
                rc = jp_skip(&j, 1);
            } else {
                seen |= bit;
                switch (bit) {
                case 1: rc = jp_int32(&j, &cmd->code); break;
                case 2: rc = jp_int32(&j, &cmd->version); break;
                case 4: rc = jp_int32(&j, &cmd->opaque); break;
                case 8: rc = jp_int32(&j, &cmd->flag); break;
                case 16: rc = jp_language(&j, &cmd->language); break;
                case 32:
                    jp_ws(&j);
                    if (j.p < j.end && *j.p == 'n') {
                        rc = jp_lit(&j, "null", 4);
                    } else if (j.p < j.end && *j.p == '"') {
                        size_t rl;
                        rc = jp_string(&j, 1, &cmd->remark, &rl);
                    } else {
                        rc = SPK_EFORMAT;
                    }
                    break;
                default: rc = jp_ext(&j, cmd); break;
                }
            }
            if (rc != 0)
                return rc;
            jp_ws(&j);
            if (j.p >= j.end)
                return SPK_EFORMAT;
            if (*j.p == ',') {
                j.p++;
                continue;
            }
            if (*j.p == '}') {
                j.p++;
                break;
            }
            return SPK_EFORMAT;
        }
    }
    /* Only whitespace may follow the object. */
    for (; j.p < j.end; j.p++) {
        if (*j.p != ' ' && *j.p != '\t' && *j.p != '\r' && *j.p != '\n')
            return SPK_EFORMAT;
    }
    return 0;
}

int
proto_decode(const uint8_t *frame, size_t len, struct proto_cmd *cmd)
{
    struct proto_cmd c;
    uint32_t length, word, hlen;
    int type, rc;

    if (frame == NULL || cmd == NULL || len < PREFIX_LEN)
        return SPK_EFORMAT;
    length = be_get32(frame);
    if (length > PROTO_FRAME_MAX - 4)
        return SPK_ETOOBIG;
    if ((size_t)length != len - 4)
        return SPK_EFORMAT;
    word = be_get32(frame + 4);
    type = (int)(word >> 24);
    hlen = word & HEADER_LEN_MAX;
    if (hlen > length - 4)
        return SPK_EFORMAT;

    memset(&c, 0, sizeof(c));
    c.serialize_type = type;
    if (type == PROTO_SER_JSON)
        rc = decode_json(frame + PREFIX_LEN, hlen, &c);
    else if (type == PROTO_SER_ROCKETMQ)
        rc = decode_binary(frame + PREFIX_LEN, hlen, &c);
    else
        rc = SPK_EFORMAT;
    if (rc != 0)
        goto fail;
    c.body_len = length - 4 - hlen;
    c.body = c.body_len > 0 ? frame + PREFIX_LEN + hlen : NULL;
    *cmd = c;
    return 0;
fail:
    proto_cmd_free(&c);
    return rc;
}

/* ---- JSON encoder ---- */

/*
 * A writer that only counts when <buf> is NULL, so the encoder runs twice:
 * once to size the header exactly, once to fill it.
 */
struct jw {
    uint8_t *buf;
    size_t len;
};

static void
jw_bytes(struct jw *w, const void *p, size_t n)
{
    if (w->buf != NULL)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void
jw_str(struct jw *w, const char *s)
{
    jw_bytes(w, s, strlen(s));
}

static void
jw_int(struct jw *w, long long v)
{
    char num[24], *p = num + sizeof(num);
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    jw_bytes(w, p, (size_t)(num + sizeof(num) - p));
}

/* A JSON string; UTF-8 passes through, control bytes are escaped. */
static void
jw_quoted(struct jw *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    jw_bytes(w, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6];
        size_t elen = 2;

        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        jw_bytes(w, s + run, i - run);
        run = i + 1;
        esc[0] = '\\';
        switch (ch) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            elen = 6;
            break;
        }
        jw_bytes(w, esc, elen);
    }
    jw_bytes(w, s + run, n - run);
    jw_bytes(w, "\"", 1);
}

/* Keys in fastjson's alphabetical order (PROTOCOL.md 1.3). */
static void
jw_header(struct jw *w, const struct proto_cmd *cmd)
{
    size_t i;
    bool first = true;
    const char *lang;

    jw_str(w, "{\"code\":");
    jw_int(w, cmd->code);
    if (cmd->next > 0 || cmd->ext_present) {
        jw_str(w, ",\"extFields\":{");
        for (i = 0; cmd->ext != NULL && i < cmd->next; i++) {
            const struct proto_ext *e = &cmd->ext[i];

            if (e->key == NULL || e->val == NULL)
                continue;
            if (!first)
                jw_bytes(w, ",", 1);
            first = false;
            jw_quoted(w, e->key, e->key_len);
            jw_bytes(w, ":", 1);
            jw_quoted(w, e->val, e->val_len);
        }
        jw_bytes(w, "}", 1);
    }
    jw_str(w, ",\"flag\":");
    jw_int(w, cmd->flag);
    lang = cmd->language >= 0 && cmd->language < LANG_COUNT
           ? lang_names[cmd->language] : "OTHER";
    jw_str(w, ",\"language\":\"");
    jw_str(w, lang);
    jw_str(w, "\",\"opaque\":");
    jw_int(w, cmd->opaque);
    if (cmd->remark != NULL) {
        jw_str(w, ",\"remark\":");
        jw_quoted(w, cmd->remark, strlen(cmd->remark));
    }
    jw_str(w, ",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    jw_int(w, cmd->version);
    jw_bytes(w, "}", 1);
}

int
proto_encode_header(const struct proto_cmd *cmd, uint8_t **out, size_t *out_len)
{
    struct jw w = { NULL, 0 };
    size_t hlen, bound, i;
    uint8_t *buf;

    if (cmd == NULL || out == NULL || out_len == NULL)
        return SPK_EFORMAT;
    /*
     * One pass into a buffer sized for the worst case (every string byte
     * escaped as \u00XX, six bytes); headers are small, so the slack costs
     * less than measuring the text in a first pass.
     */
    bound = 192;
    if (cmd->remark != NULL)
        bound += 6 * strlen(cmd->remark) + 16;
    for (i = 0; cmd->ext != NULL && i < cmd->next; i++) {
        if (cmd->ext[i].key_len > HEADER_LEN_MAX || cmd->ext[i].val_len > HEADER_LEN_MAX)
            return SPK_ETOOBIG;
        bound += 6 * (cmd->ext[i].key_len + cmd->ext[i].val_len) + 8;
        if (bound > (size_t)6 * PROTO_FRAME_MAX)
            return SPK_ETOOBIG;
    }
    if (cmd->body_len > PROTO_FRAME_MAX)
        return SPK_ETOOBIG;
    buf = malloc(PREFIX_LEN + bound);
    if (buf == NULL)
        return -ENOMEM;
    w.buf = buf + PREFIX_LEN;
    jw_header(&w, cmd);
    hlen = w.len;
    /* Checked piecewise so that a huge body_len cannot wrap the sum. */
    if (hlen > HEADER_LEN_MAX || 4 + hlen + cmd->body_len > PROTO_FRAME_MAX - 4) {
        free(buf);
        return SPK_ETOOBIG;
    }
    be_put32(buf, (uint32_t)(4 + hlen + cmd->body_len));
    be_put32(buf + 4, (uint32_t)hlen); /* type byte 0: JSON */
    *out = buf;
    *out_len = PREFIX_LEN + hlen;
    return 0;
}
