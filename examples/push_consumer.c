/*
 * push_consumer.c - receive messages through a listener (clustering).
 *
 *   push_consumer NAMESRV TOPIC [GROUP] [COUNT] [SECONDS]
 *
 * Joins consumer group GROUP (default example_push_consumer), subscribes
 * to every tag of TOPIC, and prints each message the library hands to the
 * listener: id, queue, offset, tags, keys, how long after its birth it
 * arrived, and the body. Members of one group share the topic's queues,
 * so each message goes to one of them. A group that has never consumed
 * the topic starts from the first message (CONSUME_FROM_FIRST_OFFSET).
 *
 * Stops after COUNT messages (default 10) or SECONDS (default 30),
 * whichever comes first; exits 0 when COUNT messages arrived.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "sprocket.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int received;

static long long
now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/*
 * The listener. It runs on the library's consume threads (several at
 * once), and <m> is valid only during the call. Returning
 * SPK_CONSUME_SUCCESS marks the message consumed; SPK_CONSUME_LATER would
 * ask for it again later through the group's retry topic.
 */
static spk_consume_result
on_message(const spk_message *m, void *ud)
{
    const void *body;
    size_t len;

    (void)ud;
    body = spk_message_body(m, &len);
    pthread_mutex_lock(&lock);
    received++;
    printf("received %s queue %s:%d offset %lld tags=%s keys=%s reconsume=%d after=%lldms: "
           "%.*s\n",
           spk_message_id(m), spk_message_broker(m) ? spk_message_broker(m) : "?",
           spk_message_queue_id(m), (long long)spk_message_queue_offset(m),
           spk_message_tags(m) ? spk_message_tags(m) : "",
           spk_message_keys(m) ? spk_message_keys(m) : "", spk_message_reconsume_times(m),
           now_ms() - (long long)spk_message_born_timestamp(m), (int)len, (const char *)body);
    fflush(stdout);
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    return SPK_CONSUME_SUCCESS;
}

int
main(int argc, char **argv)
{
    const char *group;
    spk_consumer *c = NULL;
    struct timespec until;
    int count, seconds, rc, got;

    if (argc < 3) {
        fprintf(stderr, "usage: push_consumer NAMESRV TOPIC [GROUP] [COUNT] [SECONDS]\n");
        return 2;
    }
    group = argc > 3 ? argv[3] : "example_push_consumer";
    count = argc > 4 ? atoi(argv[4]) : 10;
    seconds = argc > 5 ? atoi(argv[5]) : 30;
    rc = spk_push_consumer_create(group, &c);
    if (!rc)
        rc = spk_consumer_set_option(c, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_consumer_set_option(c, "consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET");
    if (!rc)
        rc = spk_consumer_subscribe(c, argv[2], "*");
    if (!rc)
        rc = spk_consumer_set_listener(c, on_message, NULL);
    if (!rc)
        rc = spk_consumer_start(c);
    if (rc) {
        fprintf(stderr, "push_consumer: %s\n", spk_strerror(rc));
        spk_consumer_destroy(c);
        return 1;
    }
    printf("consuming %s as %s in group %s\n", argv[2], spk_consumer_client_id(c), group);
    fflush(stdout);

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    while (received < count)
        if (pthread_cond_timedwait(&cond, &lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&lock);

    /* Waits for listeners still running, commits the offsets of what was
     * consumed and leaves the group, so the others take its queues. */
    spk_consumer_destroy(c);
    pthread_mutex_lock(&lock);
    got = received;
    pthread_mutex_unlock(&lock);
    printf("%d messages received\n", got);
    return got >= count ? 0 : 1;
}
