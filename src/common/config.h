/*
 * config.h - declarative configuration tables (Redis static_configs[]).
 *
 * Each component describes its settings in a static table of cfg_def
 * rows that point (by offset) at the fields of its own config struct.
 * Parsing a RocketMQ broker.conf, "--key=value" overrides,
 * GET_BROKER_CONFIG output and documentation all come from that table,
 * so a key cannot be settable without being visible, or the reverse.
 * Keys keep RocketMQ's names ("flushDiskType", "maxMessageSize") so an
 * existing broker.conf can be used unchanged.
 *
 * Field types, by cfg_type:
 *   CFG_BOOL    int, 0 or 1. Parsed like Java's Boolean.parseBoolean:
 *               "true" in any case is 1, any other non-empty text is 0
 *               (logged as a warning); empty text is rejected.
 *   CFG_INT     int, decimal with optional sign, within [min, max].
 *   CFG_INT64   int64_t, likewise.
 *   CFG_STRING  char *, owned: strdup'd on set, freed by cfg_free(). A
 *               NULL defval gives NULL, which reads back as "".
 *   CFG_ENUM    int, index into enum_names; names match case-sensitively
 *               (Java's Enum.valueOf).
 * For CFG_INT and CFG_INT64, min == max == 0 means "any value of the
 * field's type"; otherwise [min, max] is intersected with that range.
 *
 * Invariants:
 *   INV-1  A failed cfg_set() leaves the field unchanged.
 *   INV-2  The objects passed in must start zeroed (string fields NULL).
 *          From then on every string field is NULL or owned by this
 *          module, so replacing a value frees the old one.
 *   INV-3  When several targets define the same key, the first one wins.
 *
 * The second half of this header is about the JSON metadata files the
 * broker rewrites at run time: see "Sealed metadata files" below.
 *
 * None of this is synchronised: the caller sets values from one thread
 * (startup, or the thread that serves UPDATE_BROKER_CONFIG) and decides
 * how other threads see CFG_RUNTIME fields.
 */
#ifndef SPK_COMMON_CONFIG_H
#define SPK_COMMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/fjson.h"

enum cfg_type { CFG_BOOL, CFG_INT, CFG_INT64, CFG_STRING, CFG_ENUM };

#define CFG_RUNTIME 0x1 /* may change while running (UPDATE_BROKER_CONFIG) */

struct cfg_def {
    const char *name; /* RocketMQ's key, e.g. "flushDiskType" */
    enum cfg_type type;
    size_t offset;                 /* offsetof() the field in the target struct */
    int64_t min, max;              /* inclusive bounds for CFG_INT and CFG_INT64 */
    const char *defval;            /* default, as text */
    const char *const *enum_names; /* NULL-terminated, for CFG_ENUM */
    unsigned flags;                /* CFG_RUNTIME */
    const char *help;
};

/* One table and the struct it describes. */
struct cfg_target {
    const struct cfg_def *defs;
    size_t n;
    void *obj;
};

/*
 * Messages written to <err> fit in this size; a smaller buffer gets a
 * truncated message.
 */
#define CFG_ERR_MAX 256

/*
 * Applies every row's defval to t->obj, freeing earlier strings (INV-2).
 * Returns 0, -ENOMEM, or SPK_ECONFIG if a default does not parse or is
 * out of bounds (a bug in the table; the message is logged).
 */
int cfg_set_defaults(const struct cfg_target *t);

/*
 * Sets <key> to <value> (both borrowed) in the first of the <nts> targets
 * that defines it. Returns 0; -ENOENT for an unknown key; SPK_ECONFIG for
 * a bad value, with <err> (may be NULL) saying why, e.g.
 *     flushDiskType: 'X' is not one of ASYNC_FLUSH, SYNC_FLUSH
 *     maxMessageSize: 'abc' is not an integer
 *     maxMessageSize: 5 is below the minimum 1024
 * or -ENOMEM. CFG_RUNTIME is not checked here: the caller decides when
 * a change is allowed (see cfg_find()).
 */
int cfg_set(const struct cfg_target *ts, size_t nts, const char *key, const char *value, char *err,
            size_t errlen);

/* The row for <key> in the first target that defines it, or NULL. */
const struct cfg_def *cfg_find(const struct cfg_target *ts, size_t nts, const char *key);

/*
 * Reads a RocketMQ-style properties file: one key=value per line (split
 * at the first '='), whitespace around key and value trimmed, blank lines
 * and lines starting with '#' or '!' skipped, lines up to 64 KiB, later
 * lines overriding earlier ones. Unknown keys are logged as warnings and
 * ignored, as RocketMQ does. Java escapes and continuation lines are not
 * supported.
 *
 * Returns 0; -errno if the file cannot be read (<err> names the path);
 * SPK_ECONFIG for a bad value or a line without '=' or a line too long
 * (<err> starts with "path:line: "). On failure the lines before the bad
 * one have been applied; callers are expected to stop.
 */
int cfg_load_file(const struct cfg_target *ts, size_t nts, const char *path, char *err,
                  size_t errlen);

/*
 * Applies and removes from argv every "--key=value" argument that names
 * a known key; "--key" alone sets a CFG_BOOL key to true. Other arguments
 * stay, in order; argv[0] is not examined and "--" ends the scan. *argc
 * is updated and argv[*argc] set to NULL.
 *
 * Returns 0, or SPK_ECONFIG/-ENOMEM as cfg_set() does (also for "--key"
 * without a value on a non-boolean key); argv is then partly compacted.
 */
int cfg_parse_args(const struct cfg_target *ts, size_t nts, int *argc, char **argv, char *err,
                   size_t errlen);

/*
 * Formats the current value of <key> into <buf> as cfg_set() would
 * accept it ("true", "1024", "SYNC_FLUSH"). Returns 0, -ENOENT for an
 * unknown key, or -ERANGE if <len> is too small.
 */
int cfg_get(const struct cfg_target *ts, size_t nts, const char *key, char *buf, size_t len);

/*
 * Writes "key=value\n" for every row of every target, in table order
 * (GET_BROKER_CONFIG). Returns the length written (without the NUL), or
 * -ERANGE if it does not fit in <len>. With buf == NULL and len == 0 it
 * returns the length needed.
 */
int cfg_dump(const struct cfg_target *ts, size_t nts, char *buf, size_t len);

/* Frees the strings t->obj owns and sets them to NULL. Idempotent. */
void cfg_free(const struct cfg_target *t);

/*
 * Sealed metadata files.
 *
 * The JSON files the broker rewrites while it runs (consumerOffset.json,
 * topics.json, subscriptionGroup.json, delayOffset.json) carry a checksum,
 * so that a single flipped bit is detected instead of silently changing
 * an offset, a queue count or a name. The rule, exactly:
 *
 *   A sealed file ends with the 20 bytes
 *       ,"crc32":"hhhhhhhh"}
 *   (no white space, nothing after the brace), where hhhhhhhh is the
 *   CRC-32/IEEE (zlib's crc32, not masked) of every byte of the file
 *   before that tail, written as 8 lowercase hexadecimal digits.
 *
 * So the member is the last one of the top-level object, and the text
 * without it (the prefix plus "}") is the file as written before sealing.
 * Apache RocketMQ reads a sealed file unchanged: its fastjson loader skips
 * members it does not know. A file RocketMQ writes has no such tail and
 * is loaded without a check; it is sealed the next time we write it. A
 * file whose last 20 bytes differ from the tail's fixed bytes (all but the
 * hex digits) in one or two bits counts as sealed and damaged, so that a
 * flip inside the tail cannot pass the file off as unsealed. A file edited
 * by hand must lose its "crc32" member (or the whole tail), or it will be
 * refused as damaged.
 *
 * Invariants:
 *   INV-4  Every single-bit change of a sealed file is reported: in the
 *          prefix by the CRC (CRC-32 catches every error burst up to 32
 *          bits), in the hex digits because only lowercase hex is accepted
 *          and each digit maps to one value, in the fixed bytes by the
 *          near-match rule above.
 *   INV-5  cfg_json_load() never lets a damaged main file be kept as the
 *          next .bak: it is renamed to <path>.corrupt before anything new
 *          is written, so the previous good version survives the next save.
 */
#define CFG_SEAL_LEN 20

/*
 * Appends the seal to the JSON object text in *text (a malloc'd buffer of
 * *len bytes, ending with '}' that closes an object holding at least one
 * member): *text is reallocated and *len updated. Returns 0, -EINVAL when
 * the text does not end with a non-empty object, or -ENOMEM (the buffer
 * is then unchanged).
 */
int cfg_json_seal(char **text, size_t *len);

/*
 * Checks the seal of text[0, len). Returns 1 when sealed and intact, 0 when
 * not sealed (a file from RocketMQ or an older writer), or SPK_ECORRUPT
 * with the reason in err[errlen] (may be NULL) when the seal is damaged or
 * does not match.
 */
int cfg_json_check_seal(const char *text, size_t len, char *err, size_t errlen);

/*
 * fjson_load_file() with seals: loads <path> with <decode> (see fjson.h
 * for the decoder contract), refusing a file whose seal does not verify,
 * and falls back to <path>.bak when <path> is missing, empty, damaged or
 * rejected. Each fallback is logged at WARN with the file and the reason.
 * After a fallback caused by damage (SPK_ECORRUPT), the damaged main file
 * is renamed to <path>.corrupt (INV-5, logged). Returns what
 * fjson_load_file() returns: 0 and the source in *src (if not NULL), or
 * SPK_ECORRUPT / -errno with err[errlen] naming both files when no good
 * copy exists; the caller must then refuse to start.
 */
int cfg_json_load(const char *path, fjson_decode_fn decode, void *arg, enum fjson_source *src,
                  char *err, size_t errlen);

#endif /* SPK_COMMON_CONFIG_H */
