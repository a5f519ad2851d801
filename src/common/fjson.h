/*
 * fjson.h - reading the JSON that Java RocketMQ writes with fastjson.
 *
 * fastjson writes a Map<Integer,...> with bare integer keys
 * ({"T@G":{0:12,1:3}} in consumerOffset.json) and its parser also accepts
 * bare identifier keys and 'single-quoted' strings. None of that is JSON,
 * so cJSON rejects it. fjson_rectify() rewrites those forms into standard
 * JSON and leaves everything else byte for byte alone; fjson_parse() is
 * rectify plus cJSON.
 *
 * Invariants:
 *   INV-1  Text inside a string literal is never treated as structure: a
 *          '{', ':' or quote inside "..." or '...' is copied as text.
 *   INV-2  Rectifying reads no byte outside in[0, len), whatever the input
 *          (unterminated strings, a trailing backslash, deep nesting).
 *   INV-3  Input that is not JSON-like is copied, not repaired: a missing
 *          closing quote or brace stays missing, so cJSON still rejects it.
 *
 * fjson_load_file() is the loader behind every replaced config file
 * (topics.json, consumerOffset.json, ...): it reads <path>, falls back to
 * <path>.bak as RocketMQ's ConfigManager does, and hands the parsed tree
 * to a caller-supplied decoder.
 */
#ifndef SPK_COMMON_FJSON_H
#define SPK_COMMON_FJSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Largest config file fjson_load_file() reads; anything bigger is corrupt. */
#define FJSON_FILE_MAX (256u << 20)

/*
 * Returns a new NUL-terminated copy of in[0, len) in which bare object
 * keys ({0:1}, {abc:1}) are quoted and single-quoted strings are
 * double-quoted; its length (without the NUL) goes to *out_len when
 * <out_len> is not NULL. <in> is borrowed and need not be NUL-terminated.
 * The caller frees the result with free(). Returns NULL only when memory
 * runs out; malformed input is copied through (INV-3).
 */
char *fjson_rectify(const char *in, size_t len, size_t *out_len);

/*
 * fjson_rectify() then cJSON_ParseWithLength(). Returns a new tree that
 * the caller frees with cJSON_Delete(), or NULL when the text is not
 * JSON even after rectifying, or when memory runs out.
 */
cJSON *fjson_parse(const char *in, size_t len);

/*
 * Decodes a parsed config file into <arg>. Returns 0, or a negative code
 * with a reason in err[errlen] (SPK_ECORRUPT for content that does not
 * validate). On failure it must leave <arg> as it found it, because the
 * loader may call it again with the .bak file.
 */
typedef int (*fjson_decode_fn)(void *arg, const cJSON *root, char *err, size_t errlen);

enum fjson_source {
    FJSON_SRC_NONE, /* neither <path> nor <path>.bak held anything */
    FJSON_SRC_MAIN, /* decoded from <path> */
    FJSON_SRC_BAK   /* <path> was missing, empty or bad; decoded from <path>.bak */
};

/*
 * Loads <path> with <decode>, falling back to <path>.bak when <path> is
 * missing, empty, unreadable as JSON or rejected by <decode>; a fallback
 * is logged at WARN with the reason. When neither file exists (or both
 * are empty) <decode> is not called and 0 is returned with
 * FJSON_SRC_NONE: a fresh directory. Returns 0 and stores the source in
 * *src (if not NULL), or a negative code with err[errlen] naming the
 * file: SPK_ECORRUPT when <path> is bad and no usable .bak exists
 * (unlike Java, which would then start with an empty table and lose it
 * at the next write), -errno when a file cannot be read.
 */
int fjson_load_file(const char *path, fjson_decode_fn decode, void *arg, enum fjson_source *src,
                    char *err, size_t errlen);

#endif /* SPK_COMMON_FJSON_H */
