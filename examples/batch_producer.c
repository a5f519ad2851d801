/*
 * batch_producer.c - send several messages in one request.
 *
 *   batch_producer NAMESRV TOPIC [COUNT]
 *
 * Builds COUNT (default 16) messages, each with its own key, a tag and a
 * user property, and sends them with spk_producer_send_batch: one
 * SEND_BATCH_MESSAGE request, stored atomically in one queue with
 * consecutive queue offsets. Prints the queue and the offset of every
 * message of the batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprocket.h"

#define MAX_BATCH 256

int
main(int argc, char **argv)
{
    spk_message *msgs[MAX_BATCH];
    spk_producer *p = NULL;
    spk_send_result res;
    int i, n, made = 0, rc;

    if (argc < 3) {
        fprintf(stderr, "usage: batch_producer NAMESRV TOPIC [COUNT]\n");
        return 2;
    }
    n = argc > 3 ? atoi(argv[3]) : 16;
    if (n < 1 || n > MAX_BATCH) {
        fprintf(stderr, "batch_producer: COUNT is 1..%d\n", MAX_BATCH);
        return 2;
    }
    rc = spk_producer_create("example_batch_producer", &p);
    if (!rc)
        rc = spk_producer_set_option(p, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_producer_start(p);
    if (rc) {
        fprintf(stderr, "batch_producer: %s\n", spk_strerror(rc));
        spk_producer_destroy(p);
        return 1;
    }

    /* Every message of a batch goes to the same topic, and none may be
     * delayed; keys, tags and properties are per message. */
    for (made = 0; made < n; made++) {
        char body[64], key[32], seq[16];

        snprintf(body, sizeof(body), "batch message %d", made);
        snprintf(key, sizeof(key), "batch-%d", made);
        snprintf(seq, sizeof(seq), "%d", made);
        msgs[made] = spk_message_create(argv[2], body, strlen(body));
        if (!msgs[made] || spk_message_set_keys(msgs[made], key) ||
            spk_message_set_tags(msgs[made], made % 2 ? "TagOdd" : "TagEven") ||
            spk_message_set_property(msgs[made], "seq", seq)) {
            fprintf(stderr, "batch_producer: out of memory\n");
            spk_message_destroy(msgs[made]);
            rc = -1;
            break;
        }
    }
    if (!rc) {
        rc = spk_producer_send_batch(p, msgs, (size_t)n, &res);
        if (rc) {
            int code = 0;
            const char *remark = "";

            spk_last_broker_error(&code, &remark);
            fprintf(stderr, "batch send failed: %s (broker code %d %s)\n", spk_strerror(rc), code,
                    remark ? remark : "");
        } else {
            /* res describes the first message; the others follow it in
             * the same queue. */
            printf("batch of %d stored in queue %s:%d, offsets %lld..%lld\n", n, res.queue.broker,
                   res.queue.queue_id, (long long)res.queue_offset,
                   (long long)(res.queue_offset + n - 1));
            for (i = 0; i < n; i++)
                printf("  %s key %s offset %lld\n", spk_message_id(msgs[i]),
                       spk_message_keys(msgs[i]), (long long)(res.queue_offset + i));
        }
    }
    for (i = 0; i < made; i++)
        spk_message_destroy(msgs[i]);
    spk_producer_destroy(p);
    return rc ? 1 : 0;
}
