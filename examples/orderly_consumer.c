/*
 * orderly_consumer.c - receive each queue's messages in order, one at a
 * time.
 *
 *   orderly_consumer NAMESRV TOPIC [GROUP] [COUNT] [SECONDS]
 *
 * An orderly listener is called for one message of a queue at a time, in
 * queue order, and only while this client holds the queue's lock on its
 * broker, so even with several members in GROUP (default
 * example_orderly_consumer) no two of them consume one queue at once.
 * Together with ordered_producer.c, which puts every message of a key in
 * one queue, each key's messages arrive in the order they were sent.
 *
 * Prints each message with its queue and offset, checks that the offsets
 * of every queue only grow, and stops after COUNT messages (default 30)
 * or SECONDS (default 30). Exits 0 when COUNT messages arrived in order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sprocket.h"

#define MAX_QUEUES 1024

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int received, out_of_order;
static long long last_offset[MAX_QUEUES]; /* by queue id; one broker assumed */

static spk_consume_result
on_message(const spk_message *m, void *ud)
{
    int qid = spk_message_queue_id(m);
    long long off = (long long)spk_message_queue_offset(m);
    const void *body;
    size_t len;

    (void)ud;
    body = spk_message_body(m, &len);
    pthread_mutex_lock(&lock);
    if (qid >= 0 && qid < MAX_QUEUES) {
        /* Offsets start at 0, so last_offset holds offset + 1. */
        if (off + 1 <= last_offset[qid]) {
            printf("OUT OF ORDER: queue %d offset %lld after %lld\n", qid, off,
                   last_offset[qid] - 1);
            out_of_order++;
        }
        last_offset[qid] = off + 1;
    }
    received++;
    printf("queue %d offset %lld keys=%s: %.*s\n", qid, off,
           spk_message_keys(m) ? spk_message_keys(m) : "", (int)len, (const char *)body);
    fflush(stdout);
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    /* SPK_CONSUME_LATER here would retry this same message after
     * suspendCurrentQueueTimeMillis, holding the queue: nothing behind it
     * overtakes it. */
    return SPK_CONSUME_SUCCESS;
}

int
main(int argc, char **argv)
{
    const char *group;
    spk_consumer *c = NULL;
    struct timespec until;
    int count, seconds, rc, got, bad;

    if (argc < 3) {
        fprintf(stderr, "usage: orderly_consumer NAMESRV TOPIC [GROUP] [COUNT] [SECONDS]\n");
        return 2;
    }
    group = argc > 3 ? argv[3] : "example_orderly_consumer";
    count = argc > 4 ? atoi(argv[4]) : 30;
    seconds = argc > 5 ? atoi(argv[5]) : 30;
    rc = spk_push_consumer_create(group, &c);
    if (!rc)
        rc = spk_consumer_set_option(c, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_consumer_set_option(c, "consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET");
    if (!rc)
        rc = spk_consumer_subscribe(c, argv[2], "*");
    if (!rc)
        rc = spk_consumer_set_orderly_listener(c, on_message, NULL);
    if (!rc)
        rc = spk_consumer_start(c);
    if (rc) {
        fprintf(stderr, "orderly_consumer: %s\n", spk_strerror(rc));
        spk_consumer_destroy(c);
        return 1;
    }
    printf("consuming %s in order as %s in group %s\n", argv[2], spk_consumer_client_id(c), group);
    fflush(stdout);

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    while (received < count)
        if (pthread_cond_timedwait(&cond, &lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&lock);

    /* Commits offsets, then releases the queue locks for the others. */
    spk_consumer_destroy(c);
    pthread_mutex_lock(&lock);
    got = received;
    bad = out_of_order;
    pthread_mutex_unlock(&lock);
    printf("%d messages received, %d out of order\n", got, bad);
    return got >= count && bad == 0 ? 0 : 1;
}
