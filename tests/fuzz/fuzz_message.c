/*
 * fuzz_message.c - libFuzzer target for the SEND_BATCH_MESSAGE body
 * splitter and the properties string codec. Every split message's
 * properties are iterated, looked up, and copied through the builder; the
 * copy must parse back to the same pairs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_props(const char *props, size_t len)
{
    struct proto_props_buf b;
    const char *name, *val, *v2;
    size_t nl, vl, vl2, pos = 0, pairs = 0, again = 0;

    while (proto_props_next(props, len, &pos, &name, &nl, &val, &vl) == 1)
        pairs++;
    (void)proto_props_get(props, len, "TAGS", &val, &vl);
    proto_props_init(&b);
    if (proto_props_copy(&b, props, len, NULL) == 0) {
        pos = 0;
        while (proto_props_next(b.data, b.len, &pos, &name, &nl, &val, &vl) == 1) {
            /* every copied pair reads back with its last value */
            char key[64];
            /* proto_props_get takes a C string: skip names with a NUL. */
            if (nl < sizeof(key) && memchr(name, '\0', nl) == NULL) {
                memcpy(key, name, nl);
                key[nl] = '\0';
                if (proto_props_get(b.data, b.len, key, &v2, &vl2) != 1)
                    abort();
            }
            again++;
        }
        if (again > pairs)
            abort(); /* the copy invented pairs */
    }
    proto_props_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct proto_batch_msg msgs[PROTO_BATCH_MAX_MSGS];
    size_t n;

    if (proto_batch_split(data, size, msgs, PROTO_BATCH_MAX_MSGS, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (msgs[i].body + msgs[i].body_len > data + size ||
                (const uint8_t *)msgs[i].props + msgs[i].props_len > data + size)
                abort(); /* a view outside the input */
            check_props(msgs[i].props, msgs[i].props_len);
        }
    }
    /* The whole input as a properties string too. */
    check_props((const char *)data, size);
    return 0;
}
