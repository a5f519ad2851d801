/*
 * fuzz_record.c - libFuzzer target for the CommitLog record parser that
 * recovery and every read trust (rec_parse) and the properties lookup.
 * The input is a segment's bytes; records are walked as recovery does.
 */
#include <stdint.h>
#include <stdlib.h>

#include "store/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;

    while (pos < size) {
        struct rec_view v;
        const char *why, *val;
        size_t vlen;
        int n = rec_parse(data + pos, size - pos, REC_ANY_POS, REC_CHECK_CRC_PROP, &v, &why);
        if (n <= 0) {
            /* Structure only, at the same place: must not crash either. */
            n = rec_parse(data + pos, size - pos, REC_ANY_POS, REC_CHECK_NONE, &v, &why);
            if (n <= 0)
                break;
        }
        if ((size_t)n > size - pos || v.body + v.body_len > data + size ||
            (const uint8_t *)v.props + v.props_len > data + size)
            abort(); /* a view outside the input */
        (void)rec_prop_get(v.props, v.props_len, "TAGS", &val, &vlen);
        (void)rec_prop_get(v.props, v.props_len, "KEYS", &val, &vlen);
        pos += (size_t)n;
    }
    return 0;
}
