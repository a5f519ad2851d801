/*
 * sprocket.h - libsprocket, the C client for Sprocket and RocketMQ brokers.
 *
 * Link with libsprocket.a and -lz -lcjson -ldeflate -pthread.
 *
 * The library speaks RocketMQ's remoting protocol: it asks the name
 * servers where a topic lives, keeps one connection per broker, and
 * heartbeats, rebalances and commits offsets as RocketMQ's own clients do,
 * so it works with Apache RocketMQ brokers as well as with sprocketd.
 *
 * Objects and lifetime
 *   Every object is an opaque handle made by a *_create function and freed
 *   by its *_destroy function. Producers and consumers are configured
 *   (set_option, subscribe, listeners) between create and start; destroy
 *   shuts a started one down cleanly (unregisters, commits offsets,
 *   releases queue locks) and frees it. A handle must not be used after
 *   destroy, and destroy must not be called from one of its own callbacks.
 *
 * Errors
 *   Functions that can fail return 0 or a negative code: a negative errno
 *   (-EINVAL for a bad argument, -ETIMEDOUT, -ECONNREFUSED, -ENOMEM, ...)
 *   or one of the SPK_E* codes below. spk_strerror() names any of them.
 *   Where a broker refused a request, spk_*_last_error() gives its reply
 *   code and remark.
 *
 * Threads
 *   Each producer and consumer runs its own threads: one reader per broker
 *   connection, a scheduler (route refresh, heartbeats, rebalance, offset
 *   commits), and for push consumers a pool that runs the message
 *   callback. Unless a function says otherwise it is thread-safe once the
 *   handle is started; configuration calls are made before start, from
 *   one thread. Callbacks run on library threads; they may call the send
 *   functions of any producer, but a blocking call made from an
 *   asynchronous send callback fails with -EDEADLK instead of hanging
 *   (the callback runs on the thread that would deliver the reply).
 *
 * Messages
 *   An spk_message is owned by whoever created it. Messages handed to a
 *   callback belong to the library and are valid only during the call;
 *   messages returned by spk_consumer_poll belong to the caller until
 *   spk_messages_free.
 */
#ifndef SPROCKET_H
#define SPROCKET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (besides negative errno values). */
#define SPK_ECORRUPT  (-1001) /* a message failed validation (bad CRC, bad framing) */
#define SPK_ETOOBIG   (-1002) /* a size limit was exceeded (body, batch, properties) */
#define SPK_EFORMAT   (-1004) /* malformed input (a reply, an option value) */
#define SPK_ECONFIG   (-1006) /* invalid configuration */
#define SPK_ESHUTDOWN (-1007) /* the handle is shutting down */
#define SPK_ENOTFOUND (-1009) /* no such message, queue or key */
#define SPK_ENOROUTE  (-1011) /* no name server knows the topic, or no broker serves it */
#define SPK_EBROKER   (-1012) /* the broker refused; see *_last_error */
#define SPK_ESTATE    (-1013) /* wrong state: not started, already started */

/* A static description of <err> (0, a negative errno or SPK_E*); never NULL. */
const char *spk_strerror(int err);

/* Library version, "MAJOR.MINOR.PATCH". */
const char *spk_version(void);

/*
 * Library log lines (connections lost, rebalances, refused requests) go to
 * stderr at level >= <level>: 0 debug, 1 info, 2 warn (default), 3 error.
 * Thread-safe.
 */
void spk_set_log_level(int level);

/* ---------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------- */
typedef struct spk_message spk_message;

/* A message for <topic> with a copy of body[0..len). NULL when out of memory. */
spk_message *spk_message_create(const char *topic, const void *body, size_t len);
void spk_message_destroy(spk_message *m);

/*
 * Setters copy their arguments. They return 0, -EINVAL (a NUL-free
 * name/value is required; names and values may not contain the property
 * separators 0x01 and 0x02) or -ENOMEM.
 */
int spk_message_set_topic(spk_message *m, const char *topic);
int spk_message_set_body(spk_message *m, const void *body, size_t len);
int spk_message_set_tags(spk_message *m, const char *tags);
/* Space-separated keys; the broker indexes each one (queryMsgByKey). */
int spk_message_set_keys(spk_message *m, const char *keys);
int spk_message_set_property(spk_message *m, const char *name, const char *value);
/* Delay level 1..18 (1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h); 0 = none. */
int spk_message_set_delay_level(spk_message *m, int level);
/*
 * Delivery at <epoch_ms> (property TIMER_DELIVER_MS), for brokers with
 * RocketMQ 5's timer wheel. Brokers without it, sprocketd among them,
 * refuse such a message (SPK_EBROKER) rather than deliver it early.
 */
int spk_message_set_deliver_time(spk_message *m, int64_t epoch_ms);
/* The flag field RocketMQ carries untouched from producer to consumer. */
void spk_message_set_flag(spk_message *m, int32_t flag);

const char *spk_message_topic(const spk_message *m);
const void *spk_message_body(const spk_message *m, size_t *len);
const char *spk_message_tags(const spk_message *m);  /* NULL when none */
const char *spk_message_keys(const spk_message *m);  /* NULL when none */
/* A property's value, NULL when absent. */
const char *spk_message_property(const spk_message *m, const char *name);
/* Iterates properties: index 0.. until it returns 0. */
int spk_message_property_at(const spk_message *m, size_t i, const char **name, const char **value);
int32_t spk_message_flag(const spk_message *m);
int spk_message_delay_level(const spk_message *m);

/* Set on received messages (and on a message after a successful send for the ids). */
const char *spk_message_id(const spk_message *m);        /* UNIQ_KEY, the client id */
const char *spk_message_offset_id(const spk_message *m); /* store host + CommitLog offset */
const char *spk_message_broker(const spk_message *m);    /* broker name; NULL if unknown */
int spk_message_queue_id(const spk_message *m);
int64_t spk_message_queue_offset(const spk_message *m);
int64_t spk_message_commitlog_offset(const spk_message *m);
int64_t spk_message_born_timestamp(const spk_message *m);  /* ms since the epoch */
int64_t spk_message_store_timestamp(const spk_message *m); /* ms since the epoch */
int spk_message_reconsume_times(const spk_message *m);

/* ---------------------------------------------------------------------
 * Queues
 * ------------------------------------------------------------------- */
typedef struct spk_queue {
    char topic[256];
    char broker[128];
    int queue_id;
} spk_queue;

/* ---------------------------------------------------------------------
 * Producer
 * ------------------------------------------------------------------- */
typedef struct spk_producer spk_producer;

typedef enum spk_send_status {
    SPK_SEND_OK = 0,
    SPK_SEND_FLUSH_DISK_TIMEOUT = 1,  /* stored, not yet durable when the broker replied */
    SPK_SEND_FLUSH_SLAVE_TIMEOUT = 2, /* stored on the master, not yet on its slave */
    SPK_SEND_SLAVE_NOT_AVAILABLE = 3, /* stored on the master, no slave to copy to */
} spk_send_status;

typedef struct spk_send_result {
    spk_send_status status;
    char msg_id[64];        /* UNIQ_KEY (for a batch: the ids, comma-separated, truncated) */
    char offset_msg_id[64]; /* store host + CommitLog offset of the (first) message */
    spk_queue queue;
    int64_t queue_offset;   /* of the (first) message */
    char transaction_id[64];
} spk_send_result;

/* Makes a producer of <group>. Returns 0, -EINVAL or -ENOMEM. */
int spk_producer_create(const char *group, spk_producer **out);

/*
 * Options, by their RocketMQ names (before start; -EINVAL for an unknown
 * name or a bad value):
 *   namesrvAddr                 "ip:port;ip:port" (required)
 *   instanceName                part of the client id (default: the pid)
 *   clientIP                    reported in the client id (default 127.0.0.1)
 *   sendMsgTimeout              ms per send, retries included (3000)
 *   retryTimesWhenSendFailed    extra attempts of a sync send (2), each on
 *                               another broker when there is one
 *   retryTimesWhenSendAsyncFailed  the same for async sends (2)
 *   compressMsgBodyOverHowmuch  zlib-compress bodies larger than this (4096)
 *   maxMessageSize              refuse bodies larger than this (4194304)
 *   sendLatencyFaultEnable      avoid brokers that failed or were slow (true)
 *   pollNameServerInterval      route refresh, ms (30000)
 *   heartbeatBrokerInterval     ms (30000)
 */
int spk_producer_set_option(spk_producer *p, const char *name, const char *value);

/* Connects to the name servers. -ESTATE if already started. */
int spk_producer_start(spk_producer *p);
/* Shuts down (if started): unregisters from every broker; frees <p>. */
void spk_producer_destroy(spk_producer *p);

/*
 * Sends <m> and waits for the broker's reply. Queues are taken in turn
 * across the topic's brokers; a failed attempt is retried on another
 * broker (retryTimesWhenSendFailed). On success fills *res (may be NULL)
 * and sets the message's ids. <m> stays the caller's.
 * Returns 0, SPK_ENOROUTE, SPK_EBROKER (broker refused: last_error),
 * -ETIMEDOUT, SPK_ETOOBIG, -EINVAL, SPK_ESTATE, -EDEADLK.
 */
int spk_producer_send(spk_producer *p, spk_message *m, spk_send_result *res);

/*
 * Called once per asynchronous send, on a library thread, with err = 0
 * and the result, or err < 0 and res = NULL.
 */
typedef void (*spk_send_cb)(int err, const spk_send_result *res, void *ud);

/*
 * Encodes <m> (the caller may destroy it on return) and sends it without
 * waiting; <cb> reports the outcome. Failed attempts are retried
 * (retryTimesWhenSendAsyncFailed) before cb reports an error. Returns 0
 * when the send was started (cb will be called exactly once) or an error
 * (cb will not be called).
 */
int spk_producer_send_async(spk_producer *p, const spk_message *m, spk_send_cb cb, void *ud);

/* Sends without asking for a reply: no result, no retry. */
int spk_producer_send_oneway(spk_producer *p, const spk_message *m);

/*
 * Picks the queue for an ordered send: returns an index in [0, nqueues)
 * into the topic's writable queues (in a stable order: by broker name,
 * then queue id).
 */
typedef int (*spk_queue_selector)(int nqueues, const spk_message *m, void *arg);

/* A selector hashing the NUL-terminated string <arg> (a sharding key). */
int spk_select_by_key(int nqueues, const spk_message *m, void *arg);

/*
 * Sends <m> to the queue <sel> picks, and only there: messages with the
 * same selection stay in order. No retry on another queue.
 */
int spk_producer_send_to(spk_producer *p, spk_message *m, spk_queue_selector sel, void *arg,
                         spk_send_result *res);

/*
 * Sends msgs[0..n) as one batch (SEND_BATCH_MESSAGE): all to the same
 * topic, none delayed, together at most 4 MiB. They are stored
 * atomically in one queue with consecutive offsets. res describes the
 * first message.
 */
int spk_producer_send_batch(spk_producer *p, spk_message *const *msgs, size_t n,
                            spk_send_result *res);

/* Transactions --------------------------------------------------------- */
typedef enum spk_tx_state {
    SPK_TX_UNKNOWN = 0,  /* decide later: the broker will ask (check-back) */
    SPK_TX_COMMIT = 1,   /* make the message visible */
    SPK_TX_ROLLBACK = 2, /* drop it */
} spk_tx_state;

/* Runs the local transaction for a half message just stored. */
typedef spk_tx_state (*spk_tx_execute_cb)(const spk_message *m, void *arg, void *ud);
/*
 * Answers the broker's check-back for a half message whose outcome it
 * does not know (the message has the original topic, keys, properties and
 * spk_message_id / transaction id). Runs on a library thread.
 */
typedef spk_tx_state (*spk_tx_check_cb)(const spk_message *m, void *ud);

/*
 * Makes <p> a transactional producer (before start). <check> is required;
 * <execute> is the default for spk_producer_send_transaction.
 */
int spk_producer_set_transaction_listener(spk_producer *p, spk_tx_execute_cb execute,
                                          spk_tx_check_cb check, void *ud);

/*
 * Sends <m> as a half message, runs <execute> (or the listener's) with
 * <arg>, and ends the transaction with its answer (END_TRANSACTION). The
 * state chosen is stored in *state (may be NULL). Returns the send's
 * error; an end that cannot be delivered is left to the check-back.
 */
int spk_producer_send_transaction(spk_producer *p, spk_message *m, spk_tx_execute_cb execute,
                                  void *arg, spk_send_result *res, spk_tx_state *state);

/* The last broker refusal seen by this thread: reply code and remark. */
int spk_last_broker_error(int *code, const char **remark);

/* ---------------------------------------------------------------------
 * Consumers
 * ------------------------------------------------------------------- */
typedef struct spk_consumer spk_consumer;

typedef enum spk_consume_result {
    SPK_CONSUME_SUCCESS = 0,
    /* Concurrent: redeliver later through the retry topic (reconsume
     * times + 1, the DLQ after maxReconsumeTimes). Orderly: retry the
     * same message on this queue after suspendCurrentQueueTimeMillis,
     * holding the queue; after maxReconsumeTimes it goes to the DLQ. */
    SPK_CONSUME_LATER = 1,
} spk_consume_result;

typedef spk_consume_result (*spk_message_cb)(const spk_message *m, void *ud);

/* A push consumer: the library pulls and calls a listener. */
int spk_push_consumer_create(const char *group, spk_consumer **out);
/* A lite pull consumer: the application calls spk_consumer_poll. */
int spk_pull_consumer_create(const char *group, spk_consumer **out);

/*
 * Options (before start; -EINVAL for an unknown name or a bad value):
 *   namesrvAddr, instanceName, clientIP, pollNameServerInterval,
 *   heartbeatBrokerInterval     as for producers
 *   messageModel                CLUSTERING (default) | BROADCASTING
 *   consumeFromWhere            CONSUME_FROM_LAST_OFFSET (default) |
 *                               CONSUME_FROM_FIRST_OFFSET | CONSUME_FROM_TIMESTAMP
 *                               (only for queues the group has no offset for)
 *   consumeTimestamp            yyyyMMddHHmmss, local time (default: 30 min ago)
 *   consumeThreadNum            push: callback threads (4)
 *   pullBatchSize               messages per pull (32)
 *   pullThresholdForQueue       push: stop pulling a queue with this many
 *                               messages not yet consumed (1000)
 *   maxReconsumeTimes           before the DLQ (16)
 *   suspendCurrentQueueTimeMillis  orderly retry pause (1000)
 *   persistConsumerOffsetInterval  offset commit period, ms (5000)
 *   rebalanceInterval           ms (20000)
 *   offsetStoreDir              broadcasting: where offsets are kept
 *                               (default $HOME/.sprocket_offsets)
 *   autoCommit                  lite pull: commit polled offsets (true)
 *   pollBufferSize              lite pull: messages buffered per queue (1000)
 */
int spk_consumer_set_option(spk_consumer *c, const char *name, const char *value);

/*
 * Subscribes to <topic> with a tag expression: "*" (everything), or tags
 * separated by "||" ("TagA || TagB"). Filtered on the broker. Repeating
 * a topic replaces its expression.
 */
int spk_consumer_subscribe(spk_consumer *c, const char *topic, const char *tags);

/*
 * Adds a property filter to <topic>'s subscription: only messages whose
 * property <name> equals <value> are delivered (checked in the client,
 * after the broker's tag filter; skipped messages count as consumed).
 * Several filters must all match.
 */
int spk_consumer_filter_property(spk_consumer *c, const char *topic, const char *name,
                                 const char *value);

/* Push consumers: one of the two listeners, before start. */
int spk_consumer_set_listener(spk_consumer *c, spk_message_cb cb, void *ud);
/*
 * Orderly: each queue is consumed by one callback at a time, in queue
 * order, and only while this client holds the queue's lock on its broker
 * (so no two members of the group ever consume one queue at once).
 */
int spk_consumer_set_orderly_listener(spk_consumer *c, spk_message_cb cb, void *ud);

int spk_consumer_start(spk_consumer *c);
/*
 * Begins shutting down without waiting (any thread, a listener too): no
 * new message goes to the listener, and a listener that returns
 * SPK_CONSUME_LATER from now on leaves its message unconsumed (delivered
 * again after a restart) instead of sending it back to the broker.
 * spk_consumer_destroy completes the shutdown. Idempotent.
 */
void spk_consumer_shutdown(spk_consumer *c);
/* Shuts down (if started): finishes callbacks in progress, commits
 * offsets, unlocks queues, unregisters; frees <c>. */
void spk_consumer_destroy(spk_consumer *c);

/*
 * Lite pull: waits up to <timeout_ms> for messages of the queues assigned
 * to this client and returns up to <max> of them in *msgs (an array the
 * caller frees with spk_messages_free). *n is 0 on timeout. With autoCommit
 * the messages of the previous poll count as consumed. Not thread-safe
 * against itself: one polling thread.
 */
int spk_consumer_poll(spk_consumer *c, int timeout_ms, size_t max, spk_message ***msgs,
                      size_t *n);
void spk_messages_free(spk_message **msgs, size_t n);

/* Lite pull: the queue offsets consumed so far are committed now. */
int spk_consumer_commit(spk_consumer *c);

/*
 * Lite pull: the next poll returns <q>'s messages from <offset>. The queue
 * must be assigned to this client (SPK_ENOTFOUND otherwise).
 */
int spk_consumer_seek(spk_consumer *c, const spk_queue *q, int64_t offset);

/*
 * The queues assigned to this client now: fills q[0..min(cap, count)) and
 * returns the count (or a negative error).
 */
int spk_consumer_assignment(spk_consumer *c, spk_queue *q, size_t cap);

/* The client id the group sees ("ip@instance"). */
const char *spk_consumer_client_id(const spk_consumer *c);

#ifdef __cplusplus
}
#endif

#endif /* SPROCKET_H */
