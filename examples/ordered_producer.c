/*
 * ordered_producer.c - keep the messages of each key in order.
 *
 *   ordered_producer NAMESRV TOPIC [KEYS] [PER_KEY]
 *
 * Sends PER_KEY (default 10) messages for each of KEYS (default 3)
 * sharding keys "order-0", "order-1", ..., interleaved. Each message goes
 * through spk_producer_send_to with spk_select_by_key, which hashes the
 * key to one queue: all messages of a key land in the same queue, in the
 * order they were sent, and an orderly consumer (orderly_consumer.c)
 * receives them in that order. The body is "order-K seq S".
 *
 * An ordered send is never retried on another queue (that would break the
 * order), so a failure is reported instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprocket.h"

int
main(int argc, char **argv)
{
    spk_producer *p = NULL;
    int nkeys, per_key, seq, k, rc;

    if (argc < 3) {
        fprintf(stderr, "usage: ordered_producer NAMESRV TOPIC [KEYS] [PER_KEY]\n");
        return 2;
    }
    nkeys = argc > 3 ? atoi(argv[3]) : 3;
    per_key = argc > 4 ? atoi(argv[4]) : 10;
    if (nkeys < 1 || per_key < 1) {
        fprintf(stderr, "ordered_producer: KEYS and PER_KEY are at least 1\n");
        return 2;
    }
    rc = spk_producer_create("example_ordered_producer", &p);
    if (!rc)
        rc = spk_producer_set_option(p, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_producer_start(p);
    if (rc) {
        fprintf(stderr, "ordered_producer: %s\n", spk_strerror(rc));
        spk_producer_destroy(p);
        return 1;
    }
    for (seq = 0; seq < per_key && !rc; seq++) {
        for (k = 0; k < nkeys && !rc; k++) {
            char key[32], body[64];
            spk_send_result res;
            spk_message *m;

            snprintf(key, sizeof(key), "order-%d", k);
            snprintf(body, sizeof(body), "%s seq %d", key, seq);
            m = spk_message_create(argv[2], body, strlen(body));
            if (!m || spk_message_set_keys(m, key)) {
                spk_message_destroy(m);
                rc = -1;
                break;
            }
            /* The selector's argument is the sharding key: the same key
             * always picks the same queue while the topic's queues stay
             * the same. */
            rc = spk_producer_send_to(p, m, spk_select_by_key, key, &res);
            if (rc)
                fprintf(stderr, "send of '%s' failed: %s\n", body, spk_strerror(rc));
            else
                printf("%s -> queue %s:%d offset %lld\n", body, res.queue.broker,
                       res.queue.queue_id, (long long)res.queue_offset);
            spk_message_destroy(m);
        }
    }
    spk_producer_destroy(p);
    return rc ? 1 : 0;
}
