/*
 * lite_pull_consumer.c - the application asks for messages: poll, commit
 * and seek.
 *
 *   lite_pull_consumer NAMESRV TOPIC [GROUP] [COUNT] [SECONDS]
 *
 * A lite pull consumer of GROUP (default example_lite_pull_consumer) with
 * autoCommit off. The library still pulls in the background and shares
 * the queues with the group's other members; spk_consumer_poll hands out
 * what it has buffered.
 *
 *   1. poll until COUNT messages (default 10) arrived, or SECONDS
 *      (default 30) passed, printing each;
 *   2. spk_consumer_commit: the group's offsets now point past them, so
 *      a later run of the group does not get them again;
 *   3. spk_consumer_seek back to the first message received, in its
 *      queue, and poll again: the same messages of that queue come again
 *      (a seek rewinds what this client reads, whatever was committed);
 *   4. commit once more and leave.
 *
 * Exits 0 when COUNT messages arrived and the seek re-read the first one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sprocket.h"

static long long
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
print_message(const char *what, const spk_message *m)
{
    const void *body;
    size_t len;

    body = spk_message_body(m, &len);
    printf("%s queue %s:%d offset %lld: %.*s\n", what,
           spk_message_broker(m) ? spk_message_broker(m) : "?", spk_message_queue_id(m),
           (long long)spk_message_queue_offset(m), (int)len, (const char *)body);
}

int
main(int argc, char **argv)
{
    const char *group;
    spk_consumer *c = NULL;
    spk_queue first_q;
    int64_t first_off = -1;
    long long deadline, sought = 0;
    int count, seconds, got = 0, reread = 0, rc;

    if (argc < 3) {
        fprintf(stderr, "usage: lite_pull_consumer NAMESRV TOPIC [GROUP] [COUNT] [SECONDS]\n");
        return 2;
    }
    group = argc > 3 ? argv[3] : "example_lite_pull_consumer";
    count = argc > 4 ? atoi(argv[4]) : 10;
    seconds = argc > 5 ? atoi(argv[5]) : 30;
    rc = spk_pull_consumer_create(group, &c);
    if (!rc)
        rc = spk_consumer_set_option(c, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_consumer_set_option(c, "consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET");
    /* Offsets move only when this program commits. */
    if (!rc)
        rc = spk_consumer_set_option(c, "autoCommit", "false");
    if (!rc)
        rc = spk_consumer_subscribe(c, argv[2], "*");
    if (!rc)
        rc = spk_consumer_start(c);
    if (rc) {
        fprintf(stderr, "lite_pull_consumer: %s\n", spk_strerror(rc));
        spk_consumer_destroy(c);
        return 1;
    }
    printf("polling %s as %s in group %s\n", argv[2], spk_consumer_client_id(c), group);

    /* 1. Poll. */
    deadline = mono_ms() + seconds * 1000LL;
    memset(&first_q, 0, sizeof(first_q));
    while (got < count && mono_ms() < deadline) {
        spk_message **msgs;
        size_t n, i;

        rc = spk_consumer_poll(c, 500, (size_t)(count - got), &msgs, &n);
        if (rc) {
            fprintf(stderr, "poll: %s\n", spk_strerror(rc));
            break;
        }
        for (i = 0; i < n; i++) {
            if (first_off < 0) {
                snprintf(first_q.topic, sizeof(first_q.topic), "%s", spk_message_topic(msgs[i]));
                snprintf(first_q.broker, sizeof(first_q.broker), "%s",
                         spk_message_broker(msgs[i]) ? spk_message_broker(msgs[i]) : "");
                first_q.queue_id = spk_message_queue_id(msgs[i]);
                first_off = spk_message_queue_offset(msgs[i]);
            }
            print_message("polled", msgs[i]);
        }
        got += (int)n;
        /* The array and its messages are ours until freed. */
        spk_messages_free(msgs, n);
    }

    /* 2. Commit what was polled. */
    rc = spk_consumer_commit(c);
    printf("%d messages polled; commit: %s\n", got, spk_strerror(rc));

    /* 3. Rewind the first message's queue and read it again. */
    if (first_off >= 0) {
        rc = spk_consumer_seek(c, &first_q, first_off);
        printf("seek %s:%d to offset %lld: %s\n", first_q.broker, first_q.queue_id,
               (long long)first_off, spk_strerror(rc));
        sought = mono_ms();
        deadline = sought + 20000;
        while (!rc && !reread && mono_ms() < deadline) {
            spk_message **msgs;
            size_t n, i;

            if (spk_consumer_poll(c, 500, 32, &msgs, &n) != 0)
                break;
            for (i = 0; i < n; i++) {
                const char *broker = spk_message_broker(msgs[i]);

                if (spk_message_queue_id(msgs[i]) == first_q.queue_id && broker &&
                    strcmp(broker, first_q.broker) == 0 &&
                    spk_message_queue_offset(msgs[i]) == first_off && !reread) {
                    reread = 1;
                    printf("first message read again %lld ms after the seek\n", mono_ms() - sought);
                }
                print_message("after seek", msgs[i]);
            }
            spk_messages_free(msgs, n);
        }
        if (!reread)
            printf("first message NOT read again within 20 s of the seek\n");
        /* 4. Whatever the seek re-read is consumed again: commit it. */
        spk_consumer_commit(c);
    }
    spk_consumer_destroy(c);
    return got >= count && reread ? 0 : 1;
}
