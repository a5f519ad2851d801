/*
 * broker.h - the broker: RocketMQ's request processors over the store.
 *
 * A broker owns its store, its metadata (topics, consumer offsets, delay
 * offsets) and a scheduler thread; it serves requests on an event loop
 * that the caller owns and runs (so a standalone process can put a name
 * server on the same loop).
 *
 * Threads:
 *   loop       every request processor, parked sends and pulls, the
 *              client registries, the delay-level deliveries, the
 *              transaction check-back rounds (trans.c), the queue locks
 *   scheduler  registration with the name servers (every
 *              registerNameServerPeriod and at once after a topic change)
 *              and persistence of offsets (flushConsumerOffsetInterval):
 *              the work that waits on the network or the disk
 *   store      flush, dispatch, allocation, clean-up (store.h)
 */
#ifndef SPK_BROKER_BROKER_H
#define SPK_BROKER_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "net/loop.h"
#include "store/store.h"

struct broker_config {
    int listenPort;
    int fastListenPort;        /* -1: listenPort - 2 (RocketMQ's VIP channel); 0: none */
    char *brokerName;
    char *brokerClusterName;
    int64_t brokerId;
    char *brokerIP1;
    char *namesrvAddr; /* "host:port;host:port" */
    int autoCreateTopicEnable;
    int autoCreateSubscriptionGroup;
    int defaultTopicQueueNums;
    int brokerPermission;
    int longPollingEnable;
    int shortPollingTimeMills;
    int registerNameServerPeriod;
    int registerBrokerTimeoutMills;
    int flushConsumerOffsetInterval;
    int serverChannelMaxIdleTimeSeconds;
    int channelExpiredTimeout; /* ms without heartbeat before a client is dropped */
    int maxPulledBytes;        /* per pull response */
    int transferMsgByHeap;     /* copy pulled records into the reply instead of writev from the mapping */
    int zeroCopyMinBytes;      /* replies with fewer record bytes are copied even so */
    int maxParkedSends;        /* SYNC_FLUSH sends waiting on the disk before SYSTEM_BUSY */
    char *regionId;
    int traceOn;
    int64_t transactionCheckInterval; /* ms between check-back rounds (trans.c) */
    int64_t transactionTimeOut;       /* ms after its birth before a half is first checked */
    int transactionCheckMax;          /* checks before a half is discarded (rolled back) */
    int rejectTransactionMessage;     /* refuse half messages */
    int64_t rebalanceLockMaxLiveTime; /* ms a queue lock lives without renewal (locks.c) */
};

const struct cfg_def *broker_config_table(size_t *n);

struct broker;

/*
 * Opens the store and the metadata under the store's root directory
 * (config files in <root>/config, as RocketMQ keeps them), listens on
 * 0.0.0.0:listenPort and arms the timers on <loop>. On success the broker
 * takes over <cfg> and <scfg> (their strings included): the caller must
 * zero its copies and not cfg_free them. On failure they stay the
 * caller's, and <err> holds a sentence.
 */
int broker_create(const struct broker_config *cfg, const struct store_config *scfg,
                  struct net_loop *loop, struct broker **out, char *err, size_t errlen);

/* Starts the scheduler thread (first registration at once). */
int broker_start(struct broker *b);

/*
 * The rest of a graceful stop, after broker_stop() and after the caller
 * closed every connection of the loop: persists offsets, closes the store
 * (flush, checkpoint, abort file removed), frees <b>. Returns the store's
 * close status.
 */
int broker_destroy(struct broker *b);

/*
 * Starts a graceful stop from the loop thread while the loop still runs:
 * the scheduler thread unregisters from the name servers (a standalone
 * process's own name server is served by this very loop) and then stops
 * the loop.
 */
void broker_begin_stop(struct broker *b);

/* After the loop stopped: answers parked requests (flushing first). */
void broker_stop(struct broker *b);

#endif /* SPK_BROKER_BROKER_H */
