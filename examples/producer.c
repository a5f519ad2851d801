/*
 * producer.c - send messages synchronously, asynchronously and oneway.
 *
 *   producer NAMESRV TOPIC [COUNT]
 *
 * Sends COUNT (default 10) tagged, keyed messages synchronously, then the
 * same number asynchronously (waiting for every callback), then one
 * oneway message, and prints each synchronous result.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprocket.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int pending, failed;

/* Runs on a library thread once per asynchronous send. */
static void
on_sent(int err, const spk_send_result *res, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&lock);
    if (err) {
        fprintf(stderr, "async send failed: %s\n", spk_strerror(err));
        failed++;
    } else {
        printf("async  %s queue %s:%d offset %lld\n", res->msg_id, res->queue.broker,
               res->queue.queue_id, (long long)res->queue_offset);
    }
    pending--;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

int
main(int argc, char **argv)
{
    spk_producer *p = NULL;
    int i, n, rc;

    if (argc < 3) {
        fprintf(stderr, "usage: producer NAMESRV TOPIC [COUNT]\n");
        return 2;
    }
    n = argc > 3 ? atoi(argv[3]) : 10;
    rc = spk_producer_create("example_producer", &p);
    if (!rc)
        rc = spk_producer_set_option(p, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_producer_start(p);
    if (rc) {
        fprintf(stderr, "producer: %s\n", spk_strerror(rc));
        spk_producer_destroy(p);
        return 1;
    }
    for (i = 0; i < n && !rc; i++) {
        char body[64], key[32];
        spk_send_result res;
        spk_message *m;

        snprintf(body, sizeof(body), "hello %d", i);
        snprintf(key, sizeof(key), "key-%d", i);
        m = spk_message_create(argv[2], body, strlen(body));
        if (!m)
            break;
        spk_message_set_tags(m, "TagA");
        spk_message_set_keys(m, key);
        rc = spk_producer_send(p, m, &res);
        if (rc)
            fprintf(stderr, "send failed: %s\n", spk_strerror(rc));
        else
            printf("sync   %s queue %s:%d offset %lld\n", res.msg_id, res.queue.broker,
                   res.queue.queue_id, (long long)res.queue_offset);
        spk_message_destroy(m);
    }
    for (i = 0; i < n && !rc; i++) {
        char body[64];
        spk_message *m;

        snprintf(body, sizeof(body), "async %d", i);
        m = spk_message_create(argv[2], body, strlen(body));
        if (!m)
            break;
        pthread_mutex_lock(&lock);
        pending++;
        pthread_mutex_unlock(&lock);
        rc = spk_producer_send_async(p, m, on_sent, NULL);
        if (rc) {
            pthread_mutex_lock(&lock);
            pending--;
            pthread_mutex_unlock(&lock);
            fprintf(stderr, "async send not started: %s\n", spk_strerror(rc));
        }
        spk_message_destroy(m); /* the library has its own copy */
    }
    pthread_mutex_lock(&lock);
    while (pending > 0)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    if (!rc) {
        spk_message *m = spk_message_create(argv[2], "oneway", 6);

        rc = m ? spk_producer_send_oneway(p, m) : -1;
        spk_message_destroy(m);
    }
    spk_producer_destroy(p);
    return rc || failed ? 1 : 0;
}
