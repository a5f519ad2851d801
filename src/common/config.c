/*
 * config.c - parsing, formatting and ownership for config.h tables.
 *
 * Every path that changes a field (defaults, files, argv, runtime
 * updates) goes through set_field(), and every path that shows one
 * (cfg_get, cfg_dump) goes through format_field(), so the text a value
 * is shown as is always text set_field() accepts back.
 *
 * Invariants:
 *   INV-1  set_field() parses into locals and stores only on success
 *          (config.h INV-1).
 *   INV-2  A string field is replaced by storing the new copy first and
 *          freeing the old one second, so the field is never left
 *          pointing at freed memory.
 *
 * The second part (at the end) seals and loads the JSON metadata files:
 * config.h gives the seal rule and INV-4/INV-5. Its loader repeats
 * fjson_load_file()'s fallback rules, adding the seal check before the
 * parse, because fjson's decoders see the parsed tree, never the text.
 *
 * Lookups scan the tables linearly: they hold about a hundred keys and
 * are searched at startup and on admin requests, never per message.
 */
#include "common/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/crc.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/log.h"

/* Longest line cfg_load_file() accepts, newline excluded. */
#define CFG_LINE_MAX (64 * 1024)

/*
 * Values are quoted in messages up to this many bytes, so that a huge
 * value cannot push the reason out of a CFG_ERR_MAX buffer.
 */
#define SHOW_MAX 100

#define WHITESPACE " \t\r\n\f\v"

/* A growing text buffer that counts what it could not store (snprintf-style). */
struct sbuf {
    char *buf;
    size_t len;  /* capacity of buf, NUL included */
    size_t need; /* bytes produced so far, stored or not */
};

static void sb_printf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *sb, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    if (sb->need < sb->len)
        n = vsnprintf(sb->buf + sb->need, sb->len - sb->need, fmt, ap);
    else
        n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb->need += (size_t)n;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* <err> may be NULL when the caller does not want the message. */
static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void *
field_ptr(const struct cfg_target *t, const struct cfg_def *d)
{
    return (char *)t->obj + d->offset;
}

/* Finds the first row named key[0..keylen) (config.h INV-3). */
static const struct cfg_def *
lookup(const struct cfg_target *ts, size_t nts, const char *key, size_t keylen,
       const struct cfg_target **owner)
{
    size_t i, j;

    for (i = 0; i < nts; i++) {
        for (j = 0; j < ts[i].n; j++) {
            const struct cfg_def *d = &ts[i].defs[j];

            if (strncmp(d->name, key, keylen) == 0 && d->name[keylen] == '\0') {
                *owner = &ts[i];
                return d;
            }
        }
    }
    return NULL;
}

static void
int_bounds(const struct cfg_def *d, int64_t *lo, int64_t *hi)
{
    int64_t tlo = d->type == CFG_INT ? INT_MIN : INT64_MIN;
    int64_t thi = d->type == CFG_INT ? INT_MAX : INT64_MAX;

    if (d->min == 0 && d->max == 0) {
        *lo = tlo;
        *hi = thi;
        return;
    }
    *lo = d->min > tlo ? d->min : tlo;
    *hi = d->max < thi ? d->max : thi;
}

/* Java's Long.parseLong grammar: [+-]?[0-9]+, nothing before or after. */
static int
parse_int(const struct cfg_def *d, const char *value, int64_t *out, char *err, size_t errlen)
{
    const char *digits = value + (value[0] == '+' || value[0] == '-');
    int64_t lo, hi;
    long long v;
    char *end;

    /* strtoll() would also take leading blanks and "0x"-less junk like "+-1". */
    if (*digits < '0' || *digits > '9')
        goto not_int;
    errno = 0;
    v = strtoll(value, &end, 10);
    if (*end != '\0')
        goto not_int;

    int_bounds(d, &lo, &hi);
    if ((errno == ERANGE && v < 0) || v < lo) {
        set_err(err, errlen, "%s: %.*s is below the minimum %" PRId64, d->name, SHOW_MAX, value,
                lo);
        return SPK_ECONFIG;
    }
    if (errno == ERANGE || v > hi) {
        set_err(err, errlen, "%s: %.*s is above the maximum %" PRId64, d->name, SHOW_MAX, value,
                hi);
        return SPK_ECONFIG;
    }
    *out = v;
    return 0;

not_int:
    set_err(err, errlen, "%s: '%.*s' is not an integer", d->name, SHOW_MAX, value);
    return SPK_ECONFIG;
}

/*
 * Java's Boolean.parseBoolean reads anything but "true" as false, and
 * RocketMQ relies on it, so a broker.conf that a RocketMQ broker accepts
 * must load here too. A value that is neither word is still worth a
 * warning: "enabled" or "1" reading as false is almost always a mistake.
 */
static int
parse_bool(const struct cfg_def *d, const char *value, int64_t *out, char *err, size_t errlen)
{
    if (value[0] == '\0') {
        set_err(err, errlen, "%s: '' is not a boolean (true or false)", d->name);
        return SPK_ECONFIG;
    }
    *out = strcasecmp(value, "true") == 0;
    if (!*out && strcasecmp(value, "false") != 0)
        spk_log(SPK_LOG_WARN, "config", "%s: '%.*s' is not true or false; read as false", d->name,
                SHOW_MAX, value);
    return 0;
}

static int
parse_enum(const struct cfg_def *d, const char *value, int64_t *out, char *err, size_t errlen)
{
    struct sbuf names;
    char list[CFG_ERR_MAX];
    size_t i;

    for (i = 0; d->enum_names != NULL && d->enum_names[i] != NULL; i++) {
        if (strcmp(value, d->enum_names[i]) == 0) {
            *out = (int64_t)i;
            return 0;
        }
    }
    names = (struct sbuf){list, sizeof(list), 0};
    list[0] = '\0';
    for (i = 0; d->enum_names != NULL && d->enum_names[i] != NULL; i++)
        sb_printf(&names, "%s%s", i > 0 ? ", " : "", d->enum_names[i]);
    set_err(err, errlen, "%s: '%.*s' is not one of %s", d->name, SHOW_MAX, value, list);
    return SPK_ECONFIG;
}

/*
 * Parses <value> (borrowed; NULL only from a table default) for row <d>
 * and stores it in t->obj. Returns 0, SPK_ECONFIG with <err> set, or
 * -ENOMEM.
 */
static int
set_field(const struct cfg_target *t, const struct cfg_def *d, const char *value, char *err,
          size_t errlen)
{
    void *f = field_ptr(t, d);
    char *copy = NULL, *old;
    int64_t v = 0;
    int rc;

    if (value == NULL && d->type != CFG_STRING) {
        set_err(err, errlen, "%s: no value", d->name);
        return SPK_ECONFIG;
    }
    switch (d->type) {
    case CFG_BOOL:
        rc = parse_bool(d, value, &v, err, errlen);
        break;
    case CFG_INT:
    case CFG_INT64:
        rc = parse_int(d, value, &v, err, errlen);
        break;
    case CFG_ENUM:
        rc = parse_enum(d, value, &v, err, errlen);
        break;
    case CFG_STRING:
        if (value != NULL && (copy = strdup(value)) == NULL) {
            set_err(err, errlen, "%s: out of memory", d->name);
            return -ENOMEM;
        }
        old = *(char **)f;
        *(char **)f = copy; /* INV-2: store, then free */
        free(old);
        return 0;
    default:
        set_err(err, errlen, "%s: unknown type %d in the table", d->name, (int)d->type);
        return SPK_ECONFIG;
    }
    if (rc != 0)
        return rc;

    if (d->type == CFG_INT64)
        *(int64_t *)f = v;
    else
        *(int *)f = (int)v; /* parse_* kept v inside int */
    return 0;
}

static void
format_field(struct sbuf *sb, const struct cfg_target *t, const struct cfg_def *d)
{
    const void *f = field_ptr(t, d);
    const char *s;
    size_t i;
    int idx;

    switch (d->type) {
    case CFG_BOOL:
        sb_printf(sb, "%s", *(const int *)f ? "true" : "false");
        break;
    case CFG_INT:
        sb_printf(sb, "%d", *(const int *)f);
        break;
    case CFG_INT64:
        sb_printf(sb, "%" PRId64, *(const int64_t *)f);
        break;
    case CFG_STRING:
        s = *(char *const *)f;
        sb_printf(sb, "%s", s != NULL ? s : "");
        break;
    case CFG_ENUM:
        /* Only a direct write to the field can leave it out of range. */
        idx = *(const int *)f;
        for (i = 0; d->enum_names != NULL && d->enum_names[i] != NULL; i++) {
            if ((int)i == idx) {
                sb_printf(sb, "%s", d->enum_names[i]);
                return;
            }
        }
        sb_printf(sb, "%d", idx);
        break;
    }
}

int
cfg_set_defaults(const struct cfg_target *t)
{
    char err[CFG_ERR_MAX];
    size_t i;
    int rc;

    for (i = 0; i < t->n; i++) {
        rc = set_field(t, &t->defs[i], t->defs[i].defval, err, sizeof(err));
        if (rc != 0) {
            spk_log(SPK_LOG_ERROR, "config", "bad default: %s", err);
            return rc;
        }
    }
    return 0;
}

const struct cfg_def *
cfg_find(const struct cfg_target *ts, size_t nts, const char *key)
{
    const struct cfg_target *owner;

    return lookup(ts, nts, key, strlen(key), &owner);
}

int
cfg_set(const struct cfg_target *ts, size_t nts, const char *key, const char *value, char *err,
        size_t errlen)
{
    const struct cfg_target *owner;
    const struct cfg_def *d = lookup(ts, nts, key, strlen(key), &owner);

    if (d == NULL) {
        set_err(err, errlen, "%.*s: unknown key", SHOW_MAX, key);
        return -ENOENT;
    }
    return set_field(owner, d, value, err, errlen);
}

static char *
trim(char *s)
{
    size_t n;

    s += strspn(s, WHITESPACE);
    n = strlen(s);
    while (n > 0 && strchr(WHITESPACE, s[n - 1]) != NULL)
        s[--n] = '\0';
    return s;
}

int
cfg_load_file(const struct cfg_target *ts, size_t nts, const char *path, char *err, size_t errlen)
{
    const struct cfg_target *owner;
    const struct cfg_def *d;
    char msg[CFG_ERR_MAX];
    char *line = NULL, *key, *value, *eq;
    unsigned long lineno = 0;
    size_t cap = 0, n;
    ssize_t got;
    FILE *fp;
    int rc = 0;

    fp = fopen(path, "re");
    if (fp == NULL) {
        rc = -errno;
        set_err(err, errlen, "%s: %s", path, spk_strerror(rc));
        return rc;
    }
    for (;;) {
        errno = 0;
        got = getline(&line, &cap, fp);
        if (got == -1)
            break;
        lineno++;
        n = (size_t)got;
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (n > CFG_LINE_MAX) {
            set_err(err, errlen, "%s:%lu: line longer than %d bytes", path, lineno, CFG_LINE_MAX);
            rc = SPK_ECONFIG;
            goto out;
        }
        /* A NUL would silently cut the line short in everything below. */
        if (memchr(line, '\0', n) != NULL) {
            set_err(err, errlen, "%s:%lu: line contains a NUL byte", path, lineno);
            rc = SPK_ECONFIG;
            goto out;
        }
        key = line;
        /* Editors on Windows may start the file with a UTF-8 byte order mark. */
        if (lineno == 1 && strncmp(key, "\xEF\xBB\xBF", 3) == 0)
            key += 3;
        key = trim(key);
        /* Java's Properties also treats '!' as a comment. */
        if (*key == '\0' || *key == '#' || *key == '!')
            continue;
        eq = strchr(key, '=');
        if (eq == NULL) {
            set_err(err, errlen, "%s:%lu: expected key=value", path, lineno);
            rc = SPK_ECONFIG;
            goto out;
        }
        *eq = '\0';
        key = trim(key);
        value = trim(eq + 1);
        if (*key == '\0') {
            set_err(err, errlen, "%s:%lu: empty key", path, lineno);
            rc = SPK_ECONFIG;
            goto out;
        }
        d = lookup(ts, nts, key, strlen(key), &owner);
        if (d == NULL) {
            spk_log(SPK_LOG_WARN, "config", "%s:%lu: unknown key '%.*s' ignored", path, lineno,
                    SHOW_MAX, key);
            continue;
        }
        rc = set_field(owner, d, value, msg, sizeof(msg));
        if (rc != 0) {
            set_err(err, errlen, "%s:%lu: %s", path, lineno, msg);
            goto out;
        }
    }
    if (ferror(fp)) {
        rc = errno != 0 ? -errno : -EIO;
        set_err(err, errlen, "%s: %s", path, spk_strerror(rc));
    }

out:
    free(line);
    fclose(fp); /* read-only: nothing to lose if close fails */
    return rc;
}

int
cfg_parse_args(const struct cfg_target *ts, size_t nts, int *argc, char **argv, char *err,
               size_t errlen)
{
    const struct cfg_target *owner;
    const struct cfg_def *d;
    const char *name, *eq, *value;
    int i, kept = 1, rc = 0;

    if (*argc < 1)
        return 0;
    for (i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        name = argv[i] + 2;
        eq = NULL;
        d = NULL;
        if (strncmp(argv[i], "--", 2) == 0) {
            eq = strchr(name, '=');
            d = lookup(ts, nts, name, eq != NULL ? (size_t)(eq - name) : strlen(name), &owner);
        }
        if (d == NULL) {
            argv[kept++] = argv[i];
            continue;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (d->type == CFG_BOOL) {
            value = "true";
        } else {
            set_err(err, errlen, "%s: needs a value (--%s=...)", d->name, d->name);
            rc = SPK_ECONFIG;
            break;
        }
        rc = set_field(owner, d, value, err, errlen);
        if (rc != 0)
            break;
    }
    /* Whatever stopped the scan, the rest stays, in order. */
    for (; i < *argc; i++)
        argv[kept++] = argv[i];
    *argc = kept;
    argv[kept] = NULL;
    return rc;
}

int
cfg_get(const struct cfg_target *ts, size_t nts, const char *key, char *buf, size_t len)
{
    const struct cfg_target *owner;
    const struct cfg_def *d = lookup(ts, nts, key, strlen(key), &owner);
    struct sbuf sb = {buf, len, 0};

    if (d == NULL)
        return -ENOENT;
    format_field(&sb, owner, d);
    return sb.need < len ? 0 : -ERANGE;
}

int
cfg_dump(const struct cfg_target *ts, size_t nts, char *buf, size_t len)
{
    struct sbuf sb = {buf, len, 0};
    size_t i, j;

    if (len > 0)
        buf[0] = '\0';
    for (i = 0; i < nts; i++) {
        for (j = 0; j < ts[i].n; j++) {
            sb_printf(&sb, "%s=", ts[i].defs[j].name);
            format_field(&sb, &ts[i], &ts[i].defs[j]);
            sb_printf(&sb, "\n");
        }
    }
    if (sb.need > INT_MAX)
        return -ERANGE;
    if (buf == NULL && len == 0)
        return (int)sb.need;
    return sb.need < len ? (int)sb.need : -ERANGE;
}

void
cfg_free(const struct cfg_target *t)
{
    size_t i;
    char **s;

    for (i = 0; i < t->n; i++) {
        if (t->defs[i].type != CFG_STRING)
            continue;
        s = field_ptr(t, &t->defs[i]);
        free(*s);
        *s = NULL;
    }
}

/* ------------------------------------------------------------------ */
/* Sealed metadata files (config.h INV-4, INV-5)                       */
/* ------------------------------------------------------------------ */

/* The tail with its hex digits as placeholders; positions 10..17 are the
 * digits, every other byte is fixed. */
static const char seal_tmpl[CFG_SEAL_LEN + 1] = ",\"crc32\":\"00000000\"}";
#define SEAL_HEX_AT 10
#define SEAL_HEX_LEN 8

int
cfg_json_seal(char **text, size_t *len)
{
    size_t n = *len, i;
    char *p = *text, *q;
    uint32_t crc;

    if (n < 2 || p[n - 1] != '}')
        return -EINVAL;
    /* An empty object would need no comma before the member: we never
     * write one, so refuse rather than carry a second form of the rule. */
    for (i = n - 1; i > 0 && strchr(WHITESPACE, p[i - 1]) != NULL; i--)
        ;
    if (i == 0 || p[i - 1] == '{')
        return -EINVAL;
    q = realloc(p, n - 1 + CFG_SEAL_LEN + 1);
    if (q == NULL)
        return -ENOMEM;
    crc = spk_crc32(q, n - 1);
    snprintf(q + n - 1, CFG_SEAL_LEN + 1, ",\"crc32\":\"%08" PRIx32 "\"}", crc);
    *text = q;
    *len = n - 1 + CFG_SEAL_LEN;
    return 0;
}

int
cfg_json_check_seal(const char *text, size_t len, char *err, size_t errlen)
{
    const char *tail;
    unsigned bits = 0;
    uint32_t want = 0, got;
    size_t i;

    if (len < CFG_SEAL_LEN + 2)
        return 0;
    tail = text + len - CFG_SEAL_LEN;
    for (i = 0; i < CFG_SEAL_LEN; i++) {
        if (i >= SEAL_HEX_AT && i < SEAL_HEX_AT + SEAL_HEX_LEN)
            continue;
        bits += (unsigned)__builtin_popcount((unsigned char)(tail[i] ^ seal_tmpl[i]));
    }
    /* Two or fewer bits away from the fixed bytes: a seal, maybe damaged.
     * Text RocketMQ writes ends in white space or a closing brace after a
     * value, many bits away. */
    if (bits > 2)
        return 0;
    if (bits != 0) {
        set_err(err, errlen, "the crc32 member at the end is damaged");
        return SPK_ECORRUPT;
    }
    for (i = 0; i < SEAL_HEX_LEN; i++) {
        char c = tail[SEAL_HEX_AT + i];
        unsigned v;
        if (c >= '0' && c <= '9')
            v = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (unsigned)(c - 'a' + 10);
        else {
            /* Uppercase too: 'A' and 'a' differ in one bit and would mean
             * the same value, so a flip between them would go unseen. */
            set_err(err, errlen, "the crc32 member at the end is damaged");
            return SPK_ECORRUPT;
        }
        want = want << 4 | v;
    }
    got = spk_crc32(text, len - CFG_SEAL_LEN);
    if (got != want) {
        set_err(err, errlen, "checksum mismatch (crc32 %08" PRIx32 " recorded, %08" PRIx32
                             " computed): the file was changed after it was written",
                want, got);
        return SPK_ECORRUPT;
    }
    return 1;
}

/*
 * Reads all of <path> into a new NUL-terminated buffer of *len bytes.
 * Returns 0, -ENOENT, SPK_ETOOBIG (over FJSON_FILE_MAX) or another -errno.
 */
static int
read_whole(const char *path, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = NULL, *p;
    ssize_t r;
    int fd, rc;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    buf = malloc(cap + 1);
    if (buf == NULL) {
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
            if (p == NULL) {
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
load_sealed(const char *path, fjson_decode_fn decode, void *arg, int *empty, char *err,
            size_t errlen)
{
    char why[256] = "";
    char *text = NULL;
    size_t len = 0;
    cJSON *root;
    int rc;

    *empty = 0;
    rc = read_whole(path, &text, &len);
    if (rc == -ENOENT)
        return 1;
    if (rc != 0) {
        set_err(err, errlen, "%s: %s", path, spk_strerror(rc));
        return rc;
    }
    if (len == 0) {
        free(text);
        *empty = 1;
        return 1;
    }
    rc = cfg_json_check_seal(text, len, why, sizeof(why));
    if (rc < 0) {
        free(text);
        set_err(err, errlen, "%s: %s", path, why);
        return rc;
    }
    root = fjson_parse(text, len);
    free(text);
    if (root == NULL) {
        set_err(err, errlen, "%s: not valid JSON", path);
        return SPK_ECORRUPT;
    }
    rc = decode(arg, root, why, sizeof(why));
    cJSON_Delete(root);
    if (rc != 0)
        set_err(err, errlen, "%s: %s", path, why[0] ? why : spk_strerror(rc));
    return rc;
}

/* INV-5: move a damaged main file out of the way of the next save, whose
 * hard link would otherwise make it the only backup. */
static void
quarantine(const char *path)
{
    char aside[4096];

    if (snprintf(aside, sizeof(aside), "%s.corrupt", path) >= (int)sizeof(aside))
        return;
    if (rename(path, aside) == 0)
        spk_log(SPK_LOG_WARN, "config", "damaged %s kept as %s for inspection", path, aside);
    else
        spk_log(SPK_LOG_ERROR, "config", "cannot move damaged %s aside: %s; the next save "
                                         "keeps it as the backup",
                path, strerror(errno));
}

int
cfg_json_load(const char *path, fjson_decode_fn decode, void *arg, enum fjson_source *src,
              char *err, size_t errlen)
{
    char bak[4096], main_err[512] = "", bak_err[512] = "";
    int main_rc, bak_rc, main_empty, bak_empty;

    if (snprintf(bak, sizeof(bak), "%s.bak", path) >= (int)sizeof(bak)) {
        set_err(err, errlen, "%s: path too long", path);
        return -ENAMETOOLONG;
    }
    main_rc = load_sealed(path, decode, arg, &main_empty, main_err, sizeof(main_err));
    if (main_rc == 0) {
        if (src)
            *src = FJSON_SRC_MAIN;
        return 0;
    }
    bak_rc = load_sealed(bak, decode, arg, &bak_empty, bak_err, sizeof(bak_err));
    if (bak_rc == 0) {
        if (main_rc == 1)
            spk_log(SPK_LOG_WARN, "config", "%s is %s; loaded %s instead", path,
                    main_empty ? "empty" : "missing", bak);
        else
            spk_log(SPK_LOG_WARN, "config", "%s; loaded the previous version %s instead",
                    main_err, bak);
        if (main_rc == SPK_ECORRUPT)
            quarantine(path);
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
        set_err(err, errlen, "%s; backup %s", main_err, bak_err);
    else if (main_rc < 0)
        set_err(err, errlen, "%s (no backup %s to fall back to)", main_err, bak);
    else
        set_err(err, errlen, "%s is %s and %s", path, main_empty ? "empty" : "missing", bak_err);
    return main_rc < 0 ? main_rc : bak_rc;
}
