/*
 * broadcast_consumer.c - every member of the group gets every message.
 *
 *   broadcast_consumer NAMESRV TOPIC [INSTANCE] [OFFSET_DIR] [COUNT] [SECONDS]
 *
 * A BROADCASTING consumer of group example_broadcast_consumer: instead of
 * sharing the queues with the other members, each member reads all of
 * them. Its progress is therefore its own and is kept in a local file
 * (OFFSET_DIR/<client id>/<group>/offsets.json; by default under
 * $HOME/.sprocket_offsets), not on the broker. The client id is
 * "ip@INSTANCE" (INSTANCE defaults to "DEFAULT"): members on one host
 * need distinct instance names, and a member restarted with the same
 * instance name and OFFSET_DIR resumes where it stopped.
 *
 * A member with no offsets yet starts from the first message. Prints
 * each message and stops after COUNT messages (default 10) or SECONDS
 * (default 30); exits 0 when COUNT messages arrived.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sprocket.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int received;

static spk_consume_result
on_message(const spk_message *m, void *ud)
{
    const char *client = ud;
    const void *body;
    size_t len;

    body = spk_message_body(m, &len);
    pthread_mutex_lock(&lock);
    received++;
    printf("%s received %s queue %d offset %lld: %.*s\n", client, spk_message_id(m),
           spk_message_queue_id(m), (long long)spk_message_queue_offset(m), (int)len,
           (const char *)body);
    fflush(stdout);
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    return SPK_CONSUME_SUCCESS;
}

int
main(int argc, char **argv)
{
    const char *instance, *offset_dir;
    spk_consumer *c = NULL;
    struct timespec until;
    int count, seconds, rc, got;

    if (argc < 3) {
        fprintf(stderr, "usage: broadcast_consumer NAMESRV TOPIC [INSTANCE] [OFFSET_DIR] "
                        "[COUNT] [SECONDS]\n");
        return 2;
    }
    instance = argc > 3 ? argv[3] : "DEFAULT";
    offset_dir = argc > 4 ? argv[4] : NULL;
    count = argc > 5 ? atoi(argv[5]) : 10;
    seconds = argc > 6 ? atoi(argv[6]) : 30;
    rc = spk_push_consumer_create("example_broadcast_consumer", &c);
    if (!rc)
        rc = spk_consumer_set_option(c, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_consumer_set_option(c, "messageModel", "BROADCASTING");
    if (!rc)
        rc = spk_consumer_set_option(c, "instanceName", instance);
    if (!rc && offset_dir)
        rc = spk_consumer_set_option(c, "offsetStoreDir", offset_dir);
    if (!rc)
        rc = spk_consumer_set_option(c, "consumeFromWhere", "CONSUME_FROM_FIRST_OFFSET");
    if (!rc)
        rc = spk_consumer_subscribe(c, argv[2], "*");
    if (!rc)
        rc = spk_consumer_set_listener(c, on_message, (void *)instance);
    if (!rc)
        rc = spk_consumer_start(c);
    if (rc) {
        fprintf(stderr, "broadcast_consumer: %s\n", spk_strerror(rc));
        spk_consumer_destroy(c);
        return 1;
    }
    printf("%s consuming every message of %s (client id %s)\n", instance, argv[2],
           spk_consumer_client_id(c));
    fflush(stdout);

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    while (received < count)
        if (pthread_cond_timedwait(&cond, &lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&lock);

    /* Writes the offsets file one last time. */
    spk_consumer_destroy(c);
    pthread_mutex_lock(&lock);
    got = received;
    pthread_mutex_unlock(&lock);
    printf("%s: %d messages received\n", instance, got);
    return got >= count ? 0 : 1;
}
