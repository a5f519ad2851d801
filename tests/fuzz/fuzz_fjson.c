/*
 * fuzz_fjson.c - libFuzzer target for the fastjson rectifier and parser
 * (src/common/fjson.c) on arbitrary bytes, with no NUL terminator: the
 * input is copied into an exact-size buffer so the sanitizers catch any
 * read past its end (fjson.h INV-2).
 *
 * Checked on every input:
 *   - the output is NUL-terminated at its reported length and at most
 *     6 * len + 2 bytes (a bare key is written as a JSON string, so a
 *     control byte in it becomes a 6-byte \u00XX escape);
 *   - rectifying the output again changes nothing (idempotence);
 *   - JSON text (as RFC 8259 spells white space) that cJSON already
 *     parses whole is copied byte for byte (fjson.h: "leaves everything
 *     else byte for byte alone"). cJSON also skips every other byte below
 *     0x20 as white space and fastjson skips \f and \b, but the rectifier
 *     takes such a byte in key position for a bare key and quotes it, so
 *     {<FF>"a":1} parses in cJSON and fastjson but not after rectifying;
 *     inputs with those bytes are left out of this check;
 *   - fjson_parse() accepts exactly when cJSON accepts the rectified
 *     text, and what it accepts, printed by cJSON, is accepted again.
 *     (Trees are not compared: "\u0000" in keys makes cJSON's C-string
 *     keys collide, so cJSON_Compare misreads equal trees.)
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/fjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* cJSON parses in[0, len) as one value with nothing but white space after it. */
static int
is_whole_json(const char *in, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(in, len, &end, 0);
    int whole = 0;

    if (j == NULL)
        return 0;
    whole = 1;
    for (; end != NULL && end < in + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            whole = 0;
            break;
        }
    }
    cJSON_Delete(j);
    return whole;
}

/* A byte below 0x20 other than JSON's white space (\t \n \r). */
static int
has_odd_control(const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return 1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1), *o1, *o2;
    size_t n1 = 0, n2 = 0;
    cJSON *a, *b;

    if (in == NULL)
        return 0;
    if (size > 0)
        memcpy(in, data, size);
    o1 = fjson_rectify(in, size, &n1);
    if (o1 == NULL) {
        free(in);
        return 0;
    }
    if (o1[n1] != '\0' || n1 > 6 * size + 2)
        abort();
    o2 = fjson_rectify(o1, n1, &n2);
    if (o2 == NULL || n2 != n1 || memcmp(o1, o2, n1) != 0)
        abort(); /* a second pass found something left to change */
    if (!has_odd_control(in, size) && is_whole_json(in, size) &&
        (n1 != size || memcmp(o1, in, size) != 0))
        abort(); /* standard JSON was altered */
    a = fjson_parse(in, size);
    b = cJSON_ParseWithLength(o1, n1);
    if ((a == NULL) != (b == NULL))
        abort();
    if (a != NULL) {
        char *text = cJSON_PrintUnformatted(a);

        if (text != NULL) {
            cJSON *c = fjson_parse(text, strlen(text));

            if (c == NULL)
                abort(); /* printed JSON no longer parses */
            cJSON_Delete(c);
            free(text);
        }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(o2);
    free(o1);
    free(in);
    return 0;
}
