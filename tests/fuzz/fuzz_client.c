/*
 * fuzz_client.c - libFuzzer target for what the client library reads from
 * brokers and name servers: the stored-format messages of a pull reply
 * (cl_decode_messages, inflating compressed bodies) and a TopicRouteData
 * body (cl_route_parse). The first input byte picks the decoder.
 */
#include <stdint.h>
#include <stdlib.h>

#include "client/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;

    if (!quiet) { /* rejected input is logged at warn: keep the run fast */
        spk_set_log_level(3);
        quiet = 1;
    }
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        struct cl_route *r = NULL;
        size_t i;

        if (cl_route_parse("T", data + 1, size - 1, &r) == 0) {
            for (i = 0; i < r->nwq; i++)
                if (r->wq[i].queue_id < 0 || r->wq[i].queue_id >= 1024)
                    abort(); /* a queue the parser should have refused */
            cl_route_free(r);
        }
    } else {
        spk_message **msgs = NULL;
        size_t n = 0, cap = 0;

        (void)cl_decode_messages(data + 1, size - 1, "b", &msgs, &n, &cap);
        spk_messages_free(msgs, n);
    }
    return 0;
}
