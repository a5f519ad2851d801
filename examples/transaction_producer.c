/*
 * transaction_producer.c - transactional messages: commit, rollback, and
 * a transaction decided later by the broker's check-back.
 *
 *   transaction_producer NAMESRV TOPIC [WAIT_SECONDS]
 *
 * Sends three half messages. The local transaction (execute) answers:
 *   "tx commit"    commit: the message becomes visible to consumers;
 *   "tx rollback"  rollback: the broker drops it;
 *   "tx unknown"   unknown: the broker asks this producer again later
 *                  (CHECK_TRANSACTION_STATE), and the check listener
 *                  answers commit, so it becomes visible then.
 * Then waits up to WAIT_SECONDS (default 30; 0: do not wait) for that
 * check-back, which the broker sends after its transactionTimeOut and
 * transactionCheckInterval. Exits 0 when every send succeeded and the
 * check-back came.
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
static int checked;

/*
 * The local transaction, run right after each half message is stored.
 * <arg> is what spk_producer_send_transaction was given: here the answer
 * itself. A real application would update its database here and answer
 * commit when that succeeded.
 */
static spk_tx_state
execute(const spk_message *m, void *arg, void *ud)
{
    spk_tx_state s = *(const spk_tx_state *)arg;

    (void)ud;
    printf("local transaction for %s: %s\n", spk_message_id(m),
           s == SPK_TX_COMMIT     ? "commit"
           : s == SPK_TX_ROLLBACK ? "rollback"
                                  : "unknown");
    return s;
}

/*
 * The broker's check-back for a transaction left unknown. Runs on a
 * library thread; it must answer from what the application knows (a
 * real one would look the transaction id up in its database).
 */
static spk_tx_state
check(const spk_message *m, void *ud)
{
    const void *body;
    size_t len;

    (void)ud;
    body = spk_message_body(m, &len);
    printf("check-back for %s (\"%.*s\"): commit\n", spk_message_id(m), (int)len,
           (const char *)body);
    fflush(stdout);
    pthread_mutex_lock(&lock);
    checked++;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    return SPK_TX_COMMIT;
}

int
main(int argc, char **argv)
{
    static const struct {
        const char *body;
        spk_tx_state state;
    } txs[] = {
        {"tx commit", SPK_TX_COMMIT},
        {"tx rollback", SPK_TX_ROLLBACK},
        {"tx unknown", SPK_TX_UNKNOWN},
    };
    spk_producer *p = NULL;
    struct timespec until;
    int wait_s, i, rc, failed = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: transaction_producer NAMESRV TOPIC [WAIT_SECONDS]\n");
        return 2;
    }
    wait_s = argc > 3 ? atoi(argv[3]) : 30;
    rc = spk_producer_create("example_tx_producer", &p);
    if (!rc)
        rc = spk_producer_set_option(p, "namesrvAddr", argv[1]);
    /* The check listener is required: the broker may ask about any
     * transaction of this producer group. */
    if (!rc)
        rc = spk_producer_set_transaction_listener(p, execute, check, NULL);
    if (!rc)
        rc = spk_producer_start(p);
    if (rc) {
        fprintf(stderr, "transaction_producer: %s\n", spk_strerror(rc));
        spk_producer_destroy(p);
        return 1;
    }
    for (i = 0; i < 3; i++) {
        spk_message *m = spk_message_create(argv[2], txs[i].body, strlen(txs[i].body));
        spk_tx_state arg = txs[i].state, chosen = SPK_TX_UNKNOWN;
        spk_send_result res;

        if (!m) {
            failed++;
            continue;
        }
        spk_message_set_keys(m, txs[i].body + 3); /* "commit", "rollback", "unknown" */
        /* NULL execute: the listener's, called with &arg. */
        rc = spk_producer_send_transaction(p, m, NULL, &arg, &res, &chosen);
        if (rc) {
            int code = 0;
            const char *remark = "";

            spk_last_broker_error(&code, &remark);
            fprintf(stderr, "half message \"%s\" failed: %s (broker code %d %s)\n", txs[i].body,
                    spk_strerror(rc), code, remark ? remark : "");
            failed++;
        } else {
            printf("\"%s\": half message %s in queue %s:%d, ended with %s\n", txs[i].body,
                   res.msg_id, res.queue.broker, res.queue.queue_id,
                   chosen == SPK_TX_COMMIT     ? "commit"
                   : chosen == SPK_TX_ROLLBACK ? "rollback"
                                               : "unknown (waiting for the check-back)");
        }
        spk_message_destroy(m);
    }
    fflush(stdout);

    /* The producer must stay up for the check-back: the broker asks a
     * connected member of the producer group. */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_s;
    pthread_mutex_lock(&lock);
    while (wait_s > 0 && !failed && checked == 0)
        if (pthread_cond_timedwait(&cond, &lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&lock);
    if (wait_s > 0 && !failed && checked == 0) {
        fprintf(stderr, "no check-back within %d s\n", wait_s);
        failed++;
    }
    spk_producer_destroy(p);
    return failed ? 1 : 0;
}
