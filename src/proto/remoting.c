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

#include <cjson/cJSON.h>

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
    size_t i;

    if (cmd == NULL)
        return;
    free(cmd->remark);
    if (cmd->ext != NULL) {
        for (i = 0; i < cmd->next; i++)
            free((void *)cmd->ext[i].key);
        free(cmd->ext);
    }
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

/* Copies key and value into one block "key\0val\0" owned by <e>. */
static int
ext_set(struct proto_ext *e, const char *key, size_t key_len,
        const char *val, size_t val_len)
{
    char *blk;

    blk = malloc(key_len + val_len + 2);
    if (blk == NULL)
        return -ENOMEM;
    memcpy(blk, key, key_len);
    blk[key_len] = '\0';
    memcpy(blk + key_len + 1, val, val_len);
    blk[key_len + 1 + val_len] = '\0';
    e->key = blk;
    e->key_len = key_len;
    e->val = blk + key_len + 1;
    e->val_len = val_len;
    return 0;
}

static char *
dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);

    if (s == NULL)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
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

    if (remark_len > 0) {
        cmd->remark = dup_bytes(h + 17, remark_len);
        if (cmd->remark == NULL)
            return -ENOMEM;
    }
    cmd->ext_present = ext_len > 0;
    if (n == 0)
        return 0;
    cmd->ext = calloc(n, sizeof(*cmd->ext));
    if (cmd->ext == NULL)
        return -ENOMEM;
    for (i = pos; cmd->next < n;) {
        size_t kl = be_get16(h + i), vl;
        const uint8_t *k = h + i + 2;

        i += 2 + kl;
        vl = be_get32(h + i);
        i += 4;
        rc = ext_set(&cmd->ext[cmd->next], (const char *)k, kl,
                     (const char *)h + i, vl);
        if (rc != 0)
            return rc;
        cmd->next++;
        i += vl;
    }
    return 0;
}

/* ---- JSON header (PROTOCOL.md 1.3) ---- */

/*
 * fastjson converts numbers and numeric strings to int; null means the
 * field's default. Fractions, out-of-range values and other types are
 * rejected rather than silently truncated.
 */
static int
json_int32(const cJSON *it, int32_t *out)
{
    if (it == NULL || cJSON_IsNull(it)) {
        *out = 0;
        return 0;
    }
    if (cJSON_IsNumber(it)) {
        double d = it->valuedouble;

        /* The range test also rejects NaN; the cast test rejects fractions. */
        if (!(d >= INT32_MIN && d <= INT32_MAX) || (double)(int32_t)d != d)
            return SPK_EFORMAT;
        *out = (int32_t)d;
        return 0;
    }
    if (cJSON_IsString(it) && it->valuestring != NULL) {
        const char *s = it->valuestring;
        char *end;
        long long v;

        if (*s == '\0')
            return SPK_EFORMAT;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0' || v < INT32_MIN || v > INT32_MAX)
            return SPK_EFORMAT;
        *out = (int32_t)v;
        return 0;
    }
    return SPK_EFORMAT;
}

static int
json_language(const cJSON *it, int *out)
{
    int32_t v;
    int i, rc;

    if (cJSON_IsString(it) && it->valuestring != NULL) {
        for (i = 0; i < LANG_COUNT; i++) {
            if (strcmp(it->valuestring, lang_names[i]) == 0) {
                *out = i;
                return 0;
            }
        }
        /* Older Java maps unknown names to null; only numeric strings remain. */
        if (json_int32(it, &v) == 0) {
            *out = v;
            return 0;
        }
        *out = PROTO_LANG_UNKNOWN;
        return 0;
    }
    rc = json_int32(it, &v);
    if (rc != 0)
        return rc;
    *out = v;
    return 0;
}

/*
 * The text of one extFields value. cJSON keeps numbers only as doubles, so
 * integers are printed back exactly while |v| < 2^53; other numbers use
 * cJSON's shortest round-trip form.
 */
static int
json_ext_text(const cJSON *v, char **text, bool *skip)
{
    char num[32];

    *skip = false;
    *text = NULL;
    if (cJSON_IsString(v) && v->valuestring != NULL) {
        *text = dup_bytes(v->valuestring, strlen(v->valuestring));
    } else if (cJSON_IsTrue(v)) {
        *text = dup_bytes("true", 4);
    } else if (cJSON_IsFalse(v)) {
        *text = dup_bytes("false", 5);
    } else if (cJSON_IsNull(v)) {
        *skip = true;
        return 0;
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;

        if (d > -9007199254740992.0 && d < 9007199254740992.0 &&
            (double)(long long)d == d) {
            snprintf(num, sizeof(num), "%lld", (long long)d);
            *text = dup_bytes(num, strlen(num));
        } else {
            *text = cJSON_PrintUnformatted(v);
        }
    } else if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        /* fastjson casts a nested value to String as its JSON text. */
        *text = cJSON_PrintUnformatted(v);
    } else {
        return SPK_EFORMAT;
    }
    return *text == NULL ? -ENOMEM : 0;
}

static int
decode_json_ext(const cJSON *obj, struct proto_cmd *cmd)
{
    const cJSON *it;
    size_t n = 0;
    char *text = NULL;
    bool skip;
    int rc;

    if (obj == NULL || cJSON_IsNull(obj))
        return 0;
    if (!cJSON_IsObject(obj))
        return SPK_EFORMAT;
    cmd->ext_present = 1;
    for (it = obj->child; it != NULL; it = it->next)
        n++;
    if (n == 0)
        return 0;
    cmd->ext = calloc(n, sizeof(*cmd->ext));
    if (cmd->ext == NULL)
        return -ENOMEM;
    for (it = obj->child; it != NULL; it = it->next) {
        if (it->string == NULL)
            return SPK_EFORMAT;
        rc = json_ext_text(it, &text, &skip);
        if (rc != 0)
            goto fail;
        if (skip)
            continue;
        rc = ext_set(&cmd->ext[cmd->next], it->string, strlen(it->string),
                     text, strlen(text));
        if (rc != 0)
            goto fail;
        cmd->next++;
        /* cJSON_PrintUnformatted uses cJSON's allocator, which is malloc here. */
        free(text);
        text = NULL;
    }
    return 0;
fail:
    free(text);
    return rc;
}

static int
decode_json(const uint8_t *h, size_t hlen, struct proto_cmd *cmd)
{
    cJSON *root;
    const cJSON *it;
    const char *end = NULL;
    size_t i;
    int rc;

    if (hlen == 0)
        return SPK_EFORMAT;
    root = cJSON_ParseWithLengthOpts((const char *)h, hlen, &end, 0);
    if (root == NULL)
        return SPK_EFORMAT;
    rc = SPK_EFORMAT;
    if (!cJSON_IsObject(root))
        goto fail;
    /* Only whitespace may follow the object (a stray NUL ends the text too). */
    for (i = (size_t)(end - (const char *)h); i < hlen; i++) {
        if (h[i] != ' ' && h[i] != '\t' && h[i] != '\r' && h[i] != '\n')
            goto fail;
    }
    if ((rc = json_int32(cJSON_GetObjectItemCaseSensitive(root, "code"),
                         &cmd->code)) != 0 ||
        (rc = json_int32(cJSON_GetObjectItemCaseSensitive(root, "version"),
                         &cmd->version)) != 0 ||
        (rc = json_int32(cJSON_GetObjectItemCaseSensitive(root, "opaque"),
                         &cmd->opaque)) != 0 ||
        (rc = json_int32(cJSON_GetObjectItemCaseSensitive(root, "flag"),
                         &cmd->flag)) != 0)
        goto fail;
    it = cJSON_GetObjectItemCaseSensitive(root, "language");
    if (it != NULL && !cJSON_IsNull(it)) {
        rc = json_language(it, &cmd->language);
        if (rc != 0)
            goto fail;
    }
    it = cJSON_GetObjectItemCaseSensitive(root, "remark");
    if (it != NULL && !cJSON_IsNull(it)) {
        rc = SPK_EFORMAT;
        if (!cJSON_IsString(it) || it->valuestring == NULL)
            goto fail;
        rc = -ENOMEM;
        cmd->remark = dup_bytes(it->valuestring, strlen(it->valuestring));
        if (cmd->remark == NULL)
            goto fail;
    }
    rc = decode_json_ext(cJSON_GetObjectItemCaseSensitive(root, "extFields"), cmd);
    if (rc != 0)
        goto fail;
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    return rc;
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
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", v);

    jw_bytes(w, num, (size_t)n);
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
    size_t hlen;
    uint8_t *buf;

    if (cmd == NULL || out == NULL || out_len == NULL)
        return SPK_EFORMAT;
    jw_header(&w, cmd);
    hlen = w.len;
    /* Checked piecewise so that a huge body_len cannot wrap the sum. */
    if (hlen > HEADER_LEN_MAX || cmd->body_len > PROTO_FRAME_MAX ||
        4 + hlen + cmd->body_len > PROTO_FRAME_MAX - 4)
        return SPK_ETOOBIG;
    buf = malloc(PREFIX_LEN + hlen);
    if (buf == NULL)
        return -ENOMEM;
    be_put32(buf, (uint32_t)(4 + hlen + cmd->body_len));
    be_put32(buf + 4, (uint32_t)hlen); /* type byte 0: JSON */
    w.buf = buf + PREFIX_LEN;
    w.len = 0;
    jw_header(&w, cmd);
    *out = buf;
    *out_len = PREFIX_LEN + hlen;
    return 0;
}
