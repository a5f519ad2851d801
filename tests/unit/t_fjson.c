/*
 * t_fjson.c - unit tests for src/common/fjson: the fastjson rectifier
 * and the config-file loader with its .bak fallback.
 *
 * The fastjson samples are the shapes Java RocketMQ writes:
 * consumerOffset.json's Map<Integer,Long> with bare integer keys, and
 * BrokerData.brokerAddrs ({0:"host:port"}) in route bodies.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/errors.h"
#include "common/fjson.h"
#include "storetest.h"

/* Rectifies a C string and checks the exact result. */
static void
expect_rect(const char *in, const char *want)
{
    size_t n = 12345;
    char *out = fjson_rectify(in, strlen(in), &n);

    cr_assert_not_null(out);
    cr_assert_str_eq(out, want, "rectify(%s)", in);
    cr_assert_eq(n, strlen(want));
    free(out);
}

Test(fjson, bare_int_keys_are_quoted)
{
    expect_rect("{\"offsetTable\":{\"T@G\":{0:12,1:3}}}",
                "{\"offsetTable\":{\"T@G\":{\"0\":12,\"1\":3}}}");
    expect_rect("{0:\"a:10911\",1:\"b:10911\"}", "{\"0\":\"a:10911\",\"1\":\"b:10911\"}");
    expect_rect("{-1:5}", "{\"-1\":5}");
}

Test(fjson, standard_json_is_copied_unchanged)
{
    static const char *const docs[] = {
        "{}",
        "[]",
        "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":\"x\"}",
        " { \"a\" : [ true , false ] , \"b\" : { } } ",
        "[{\"a\":1},{\"b\":2},3,\"s\"]",
        "\"just a string\"",
        "12.5e3",
    };
    size_t i;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
        expect_rect(docs[i], docs[i]);
}

Test(fjson, structure_inside_strings_is_text)
{
    expect_rect("{\"a\":\"{0:1, 'x'}\",\"b\":{1:\"}\"}}",
                "{\"a\":\"{0:1, 'x'}\",\"b\":{\"1\":\"}\"}}");
    /* A key holding an escaped quote and "{0:", a value ending in an
     * escaped backslash: neither may end the string early. */
    expect_rect("{\"a\\\"{0:\":{2:\"x\\\\\"},3:4}", "{\"a\\\"{0:\":{\"2\":\"x\\\\\"},\"3\":4}");
}

Test(fjson, single_quotes_become_double)
{
    cJSON *j;
    const char *in = "{'k':'it\\'s \"q\"'}";

    expect_rect(in, "{\"k\":\"it's \\\"q\\\"\"}");
    j = fjson_parse(in, strlen(in));
    cr_assert_not_null(j);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "k")->valuestring, "it's \"q\"");
    cJSON_Delete(j);
    /* Other escapes keep their meaning. */
    expect_rect("['a\\nb','\\\\']", "[\"a\\nb\",\"\\\\\"]");
}

Test(fjson, bare_identifier_keys_and_whitespace)
{
    const char *in = "{ abc : 1 ,\n -1:2, $x_y:[{0:1}, 7] }";
    cJSON *j = fjson_parse(in, strlen(in)), *arr;

    cr_assert_not_null(j);
    cr_assert_eq(cJSON_GetObjectItem(j, "abc")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(j, "-1")->valueint, 2);
    arr = cJSON_GetObjectItem(j, "$x_y");
    cr_assert(cJSON_IsArray(arr));
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 0), "0")->valueint, 1);
    cJSON_Delete(j);
    /* Commas inside arrays separate values, not keys. */
    expect_rect("[1, 2, {3:4}]", "[1, 2, {\"3\":4}]");
    expect_rect("{\"a\":[1,2],3:[4,{5:6}]}", "{\"a\":[1,2],\"3\":[4,{\"5\":6}]}");
}

Test(fjson, truncated_input_stays_broken)
{
    /* INV-3: nothing is closed or completed on the input's behalf. */
    expect_rect("{\"abc", "{\"abc");
    expect_rect("{'ab", "{\"ab");
    expect_rect("{\"a\\", "{\"a\\");
    expect_rect("{'a\\", "{\"a\\");
    expect_rect("{0", "{\"0\"");
    expect_rect("", "");

    /* Every proper prefix of a fastjson document fails to parse, whole
     * it parses. */
    const char *doc = "{\"offsetTable\":{\"T@G\":{0:12,1:3},'x@y':{7:-1}}}";
    size_t n = strlen(doc), i;
    for (i = 0; i < n; i++) {
        cJSON *j = fjson_parse(doc, i);
        cr_assert_null(j, "prefix of %zu bytes parsed", i);
    }
    cJSON *j = fjson_parse(doc, n);
    cr_assert_not_null(j);
    cJSON_Delete(j);
}

Test(fjson, input_need_not_be_nul_terminated)
{
    /* Exactly 5 bytes, no NUL after them: ASan sees any read past. */
    char *in = malloc(5);
    char *out;
    size_t n;

    memcpy(in, "{0:'a", 5);
    out = fjson_rectify(in, 5, &n);
    cr_assert_str_eq(out, "{\"0\":\"a");
    free(out);
    memcpy(in, "{'\\\\'", 5);
    out = fjson_rectify(in, 5, NULL);
    cr_assert_str_eq(out, "{\"\\\\\"");
    free(out);
    free(in);
}

Test(fjson, deep_nesting_is_harmless)
{
    size_t depth = 5000, i, n;
    char *in = malloc(depth * 3 + 2);
    char *out;

    for (i = 0; i < depth; i++)
        memcpy(in + 3 * i, "{0:", 3);
    in[3 * depth] = '1';
    n = 3 * depth + 1;
    out = fjson_rectify(in, n, &n);
    cr_assert_not_null(out);
    /* Keys are quoted as deep as the tracked stack goes (1024), then copied. */
    cr_assert_eq(strncmp(out, "{\"0\":{\"0\":", 10), 0);
    cr_assert_null(cJSON_ParseWithLength(out, n)); /* beyond cJSON's limit */
    free(out);
    free(in);
}

Test(fjson, random_garbage_is_safe_and_idempotent)
{
    static const char alphabet[] = "{}[]:,'\"\\ 0a-\n";
    unsigned seed = 12345;
    int round;

    for (round = 0; round < 20000; round++) {
        char in[64];
        size_t len, i, n1, n2;
        char *o1, *o2;

        seed = seed * 1103515245u + 12345u;
        len = (seed >> 16) % sizeof(in);
        for (i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        o1 = fjson_rectify(in, len, &n1);
        cr_assert_not_null(o1);
        cr_assert_eq(o1[n1], '\0');
        cr_assert_leq(n1, 3 * len + 2);
        /* A second pass finds nothing left to change. */
        o2 = fjson_rectify(o1, n1, &n2);
        cr_assert_eq(n2, n1, "round %d: %.*s -> %s -> %s", round, (int)len, in, o1, o2);
        cr_assert_eq(memcmp(o1, o2, n1), 0, "round %d", round);
        cJSON_Delete(fjson_parse(in, len));
        free(o1);
        free(o2);
    }
}

/* ------------------------------------------------------------------ */
/* fjson_load_file                                                     */
/* ------------------------------------------------------------------ */

/* Decoder for the loader tests: wants {"v":<int>} and stores v. */
static int
decode_v(void *arg, const cJSON *root, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItem(root, "v");

    if (!cJSON_IsNumber(v)) {
        snprintf(err, errlen, "no v");
        return SPK_ECORRUPT;
    }
    *(int *)arg = v->valueint;
    return 0;
}

static void
put(const char *dir, const char *name, const char *text)
{
    char *p = st_path(dir, name);

    st_write_file(p, text, strlen(text));
    free(p);
}

Test(fjson, load_file_fallback_rules)
{
    char *dir = st_tmpdir("fjson"), *path = st_path(dir, "c.json");
    enum fjson_source src;
    char err[512];
    int v = -1;

    /* Neither file: a fresh start, decoder not called. */
    cr_assert_eq(fjson_load_file(path, decode_v, &v, &src, err, sizeof(err)), 0);
    cr_assert_eq(src, FJSON_SRC_NONE);
    cr_assert_eq(v, -1);

    put(dir, "c.json", "{v:1}");
    cr_assert_eq(fjson_load_file(path, decode_v, &v, &src, err, sizeof(err)), 0);
    cr_assert_eq(src, FJSON_SRC_MAIN);
    cr_assert_eq(v, 1);

    /* Bad main, no backup: an error naming the file. */
    put(dir, "c.json", "{\"v\":");
    cr_assert_eq(fjson_load_file(path, decode_v, &v, &src, err, sizeof(err)), SPK_ECORRUPT);
    cr_assert_not_null(strstr(err, "c.json"), "%s", err);

    /* Bad main (not JSON, rejected by the decoder, or empty), good backup. */
    put(dir, "c.json.bak", "{\"v\":2}");
    cr_assert_eq(fjson_load_file(path, decode_v, &v, &src, err, sizeof(err)), 0);
    cr_assert_eq(src, FJSON_SRC_BAK);
    cr_assert_eq(v, 2);
    put(dir, "c.json", "{\"w\":3}");
    v = -1;
    cr_assert_eq(fjson_load_file(path, decode_v, &v, &src, err, sizeof(err)), 0);
    cr_assert_eq(src, FJSON_SRC_BAK);
    cr_assert_eq(v, 2);
    put(dir, "c.json", "");
    cr_assert_eq(fjson_load_file(path, decode_v, &v, &src, err, sizeof(err)), 0);
    cr_assert_eq(src, FJSON_SRC_BAK);

    /* Both bad: the main file's error, with both named. */
    put(dir, "c.json", "garbage");
    put(dir, "c.json.bak", "{\"v\"");
    cr_assert_eq(fjson_load_file(path, decode_v, &v, &src, err, sizeof(err)), SPK_ECORRUPT);
    cr_assert_not_null(strstr(err, "c.json.bak"), "%s", err);

    st_rmrf(dir);
    free(path);
    free(dir);
}
