/*
 * fjson.c - fastjson text to standard JSON, and the config-file loader
 * (see fjson.h for the invariants).
 *
 * The rectifier is a single forward scan that knows just enough JSON to
 * tell a key position from everything else: a stack of open containers
 * (object or array) and a flag saying the next token is an object key.
 * Bytes that need no change are copied in runs, so a file that is already
 * JSON costs one pass and a handful of memcpy calls.
 */
#include "common/fjson.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/log.h"
#include "common/sbuf.h"

/*
 * Containers deeper than this are not tracked: keys inside them are
 * copied as they are. cJSON refuses nesting beyond CJSON_NESTING_LIMIT
 * (1000) anyway, so nothing parseable is lost, and the stack stays a
 * fixed array that hostile input cannot grow.
 */
#define RECT_MAX_DEPTH 1024

enum { CTX_ARRAY, CTX_OBJECT };

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Ends a bare key: JSON structure, a quote or white space. */
static int
is_key_delim(char c)
{
    return is_space(c) || c == ':' || c == ',' || c == '{' || c == '}' || c == '[' || c == ']' ||
           c == '"' || c == '\'';
}

/* Index just past the double-quoted string opening at in[i], or <len>. */
static size_t
skip_dq_string(const char *in, size_t len, size_t i)
{
    size_t j = i + 1;

    while (j < len) {
        if (in[j] == '\\')
            j += 2; /* the escaped byte can be a quote; may step past len */
        else if (in[j++] == '"')
            return j;
    }
    return len;
}

/*
 * Writes the single-quoted string opening at in[i] as a double-quoted
 * one and returns the index just past it (or <len> if it never closes,
 * in which case no closing quote is written: INV-3). Inside, \' becomes
 * a plain ' (JSON has no \' escape) and a bare " gets escaped; other
 * escapes are the same in both forms and are copied.
 */
static size_t
put_sq_string(struct sbuf *b, const char *in, size_t len, size_t i)
{
    size_t j = i + 1, run;

    sb_putc(b, '"');
    run = j;
    while (j < len) {
        char c = in[j];
        if (c == '\\') {
            if (j + 1 < len && in[j + 1] == '\'') {
                sb_put(b, in + run, j - run);
                sb_putc(b, '\'');
                j += 2;
                run = j;
            } else {
                j += 2;
            }
        } else if (c == '"') {
            sb_put(b, in + run, j - run);
            sb_put(b, "\\\"", 2);
            run = ++j;
        } else if (c == '\'') {
            sb_put(b, in + run, j - run);
            sb_putc(b, '"');
            return j + 1;
        } else {
            j++;
        }
    }
    if (j > len)
        j = len;
    sb_put(b, in + run, j - run);
    return len;
}

char *
fjson_rectify(const char *in, size_t len, size_t *out_len)
{
    unsigned char ctx[RECT_MAX_DEPTH];
    struct sbuf b = SBUF_INIT;
    size_t depth = 0, i = 0, run = 0, j;
    int want_key = 0;

    while (i < len) {
        char c = in[i];
        switch (c) {
        case '"':
            i = skip_dq_string(in, len, i);
            want_key = 0;
            continue;
        case '\'':
            sb_put(&b, in + run, i - run);
            i = run = put_sq_string(&b, in, len, i);
            want_key = 0;
            continue;
        case '{':
        case '[':
            if (depth < RECT_MAX_DEPTH)
                ctx[depth] = c == '{' ? CTX_OBJECT : CTX_ARRAY;
            depth++;
            want_key = c == '{';
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            want_key = 0;
            break;
        case ',':
            want_key = depth > 0 && depth <= RECT_MAX_DEPTH && ctx[depth - 1] == CTX_OBJECT;
            break;
        case ':':
            want_key = 0;
            break;
        default:
            if (want_key && !is_space(c)) {
                /* A bare key: 0, -1, abc. Quote it (escaping anything odd). */
                sb_put(&b, in + run, i - run);
                for (j = i; j < len && !is_key_delim(in[j]); j++)
                    ;
                sb_json_str(&b, in + i, j - i);
                i = run = j;
                want_key = 0;
                continue;
            }
            break;
        }
        i++;
    }
    sb_put(&b, in + run, len - run);
    return sb_detach(&b, out_len);
}

cJSON *
fjson_parse(const char *in, size_t len)
{
    cJSON *root;
    size_t n;
    char *text;

    text = fjson_rectify(in, len, &n);
    if (!text)
        return NULL;
    root = cJSON_ParseWithLength(text, n);
    free(text);
    return root;
}

/*
 * Reads all of <path> into a new buffer (NUL-terminated, *len bytes).
 * Returns 0, -ENOENT, SPK_ETOOBIG or another -errno.
 */
static int
read_file(const char *path, char **out, size_t *len)
{
    struct stat st;
    size_t cap, n = 0;
    char *buf = NULL, *p;
    ssize_t r;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    if (fstat(fd, &st) == -1) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        goto fail;
    }
    if ((uint64_t)st.st_size > FJSON_FILE_MAX) {
        rc = SPK_ETOOBIG;
        goto fail;
    }
    /* The size is a hint: the file may change while we read it. */
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto fail;
    }
    for (;;) {
        if (n == cap) {
            if (cap > FJSON_FILE_MAX) {
                rc = SPK_ETOOBIG;
                goto fail;
            }
            cap *= 2;
            p = realloc(buf, cap + 1);
            if (!p) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = p;
        }
        r = read(fd, buf + n, cap - n);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd); /* read-only: nothing to lose on a failed close */
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;

fail:
    free(buf);
    close(fd);
    return rc;
}

/* One file: 0 decoded, 1 missing or empty (*empty says which), or < 0. */
static int
load_one(const char *path, fjson_decode_fn decode, void *arg, int *empty, char *err, size_t errlen)
{
    char why[256] = "";
    char *text = NULL;
    size_t len = 0;
    cJSON *root;
    int rc;

    *empty = 0;
    rc = read_file(path, &text, &len);
    if (rc == -ENOENT)
        return 1;
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", path, spk_strerror(rc));
        return rc;
    }
    if (len == 0) {
        free(text);
        *empty = 1;
        return 1;
    }
    root = fjson_parse(text, len);
    free(text);
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON", path);
        return SPK_ECORRUPT;
    }
    rc = decode(arg, root, why, sizeof(why));
    cJSON_Delete(root);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, why[0] ? why : spk_strerror(rc));
    return rc;
}

int
fjson_load_file(const char *path, fjson_decode_fn decode, void *arg, enum fjson_source *src,
                char *err, size_t errlen)
{
    char bak[4096], main_err[512] = "", bak_err[512] = "";
    int main_rc, bak_rc, main_empty, bak_empty;

    if (snprintf(bak, sizeof(bak), "%s.bak", path) >= (int)sizeof(bak)) {
        snprintf(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    main_rc = load_one(path, decode, arg, &main_empty, main_err, sizeof(main_err));
    if (main_rc == 0) {
        if (src)
            *src = FJSON_SRC_MAIN;
        return 0;
    }
    bak_rc = load_one(bak, decode, arg, &bak_empty, bak_err, sizeof(bak_err));
    if (bak_rc == 0) {
        if (main_rc == 1)
            spk_log(SPK_LOG_WARN, "config", "%s is %s; loaded %s instead", path,
                    main_empty ? "empty" : "missing", bak);
        else
            spk_log(SPK_LOG_WARN, "config", "%s; loaded %s instead", main_err, bak);
        if (src)
            *src = FJSON_SRC_BAK;
        return 0;
    }
    if (main_rc == 1 && bak_rc == 1) {
        if (main_empty)
            spk_log(SPK_LOG_WARN, "config", "%s is empty and has no backup; starting empty", path);
        if (src)
            *src = FJSON_SRC_NONE;
        return 0;
    }
    if (main_rc < 0 && bak_rc < 0)
        snprintf(err, errlen, "%s; backup %s", main_err, bak_err);
    else if (main_rc < 0)
        snprintf(err, errlen, "%s (no backup %s to fall back to)", main_err, bak);
    else
        snprintf(err, errlen, "%s is %s and %s", path, main_empty ? "empty" : "missing", bak_err);
    return main_rc < 0 ? main_rc : bak_rc;
}
