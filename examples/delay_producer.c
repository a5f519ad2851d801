/*
 * delay_producer.c - a message consumers see only after a delay.
 *
 *   delay_producer NAMESRV TOPIC [LEVEL]
 *
 * Sends one message with delay level LEVEL (default 2). The broker keeps
 * it aside and delivers it to consumers of TOPIC once the level's delay
 * has passed since it was stored. RocketMQ's default levels are
 * "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h" (level 1 is
 * one second, level 2 five); a broker may configure others
 * (messageDelayLevel). The body names the level, so a consumer that
 * prints the time since the message was born (push_consumer.c) shows the
 * delay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sprocket.h"

int
main(int argc, char **argv)
{
    spk_producer *p = NULL;
    spk_send_result res;
    spk_message *m = NULL;
    char body[64];
    int level, rc;

    if (argc < 3) {
        fprintf(stderr, "usage: delay_producer NAMESRV TOPIC [LEVEL]\n");
        return 2;
    }
    level = argc > 3 ? atoi(argv[3]) : 2;
    rc = spk_producer_create("example_delay_producer", &p);
    if (!rc)
        rc = spk_producer_set_option(p, "namesrvAddr", argv[1]);
    if (!rc)
        rc = spk_producer_start(p);
    if (rc) {
        fprintf(stderr, "delay_producer: %s\n", spk_strerror(rc));
        spk_producer_destroy(p);
        return 1;
    }
    snprintf(body, sizeof(body), "delayed by level %d", level);
    m = spk_message_create(argv[2], body, strlen(body));
    if (!m) {
        rc = -1;
    } else {
        /* -EINVAL for a level outside 1..18. */
        rc = spk_message_set_delay_level(m, level);
        if (rc)
            fprintf(stderr, "delay level %d: %s\n", level, spk_strerror(rc));
    }
    if (!rc) {
        spk_message_set_keys(m, "delayed");
        rc = spk_producer_send(p, m, &res);
        if (rc)
            fprintf(stderr, "send failed: %s\n", spk_strerror(rc));
        else
            printf("sent %s with delay level %d (queue %s:%d); consumers get it after the "
                   "delay\n",
                   res.msg_id, level, res.queue.broker, res.queue.queue_id);
    }
    spk_message_destroy(m);
    spk_producer_destroy(p);
    return rc ? 1 : 0;
}
