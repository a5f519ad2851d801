/*
 * broker.c - broker lifecycle, request dispatch, the scheduler thread.
 *
 * Invariants:
 *   INV-1  Every request that is not oneway gets exactly one reply: now,
 *          or later from a parked send/pull, or never only because its
 *          connection closed first.
 *   INV-2  A request that cannot be decoded closes its connection: with
 *          no trustworthy opaque there is nothing to reply to, and the
 *          stream may be out of step.
 *   INV-3  The scheduler thread touches only the thread-safe modules
 *          (topics, offsets, store, net_call) and the sched_* fields.
 */
#include "broker/broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "net/client.h"

#define F(field) offsetof(struct broker_config, field)
static const struct cfg_def broker_defs[] = {
    {"listenPort", CFG_INT, F(listenPort), 1, 65535, "10911", NULL, 0, "broker port"},
    {"fastListenPort", CFG_INT, F(fastListenPort), -1, 65535, "-1", NULL, 0,
     "the \"VIP channel\" Java clients up to 4.5 send to by default: -1 = listenPort - 2, "
     "0 = none; every request is served there too"},
    {"brokerName", CFG_STRING, F(brokerName), 0, 0, "broker-a", NULL, 0, "broker group name"},
    {"brokerClusterName", CFG_STRING, F(brokerClusterName), 0, 0, "DefaultCluster", NULL, 0,
     "cluster name"},
    {"brokerId", CFG_INT64, F(brokerId), 0, 1024, "0", NULL, 0, "0 = master, >0 = slave"},
    {"brokerIP1", CFG_STRING, F(brokerIP1), 0, 0, "127.0.0.1", NULL, 0,
     "IPv4 address clients reach the broker at (written into message ids)"},
    {"namesrvAddr", CFG_STRING, F(namesrvAddr), 0, 0, "127.0.0.1:9876", NULL, 0,
     "name servers, host:port separated by ';'"},
    {"autoCreateTopicEnable", CFG_BOOL, F(autoCreateTopicEnable), 0, 1, "true", NULL,
     CFG_RUNTIME, "create unknown topics on first send (through TBW102)"},
    {"autoCreateSubscriptionGroup", CFG_BOOL, F(autoCreateSubscriptionGroup), 0, 1, "true",
     NULL, CFG_RUNTIME, "accept consumer groups not configured in advance"},
    {"defaultTopicQueueNums", CFG_INT, F(defaultTopicQueueNums), 1, 1024, "8", NULL, 0,
     "queues of TBW102, the template for auto-created topics"},
    {"brokerPermission", CFG_INT, F(brokerPermission), 0, 7, "6", NULL, CFG_RUNTIME,
     "2 = write, 4 = read, 6 = both"},
    {"longPollingEnable", CFG_BOOL, F(longPollingEnable), 0, 1, "true", NULL, CFG_RUNTIME,
     "hold pulls until a message arrives (else shortPollingTimeMills)"},
    {"shortPollingTimeMills", CFG_INT, F(shortPollingTimeMills), 0, 60000, "1000", NULL,
     CFG_RUNTIME, "hold time of a pull when long polling is off"},
    {"registerNameServerPeriod", CFG_INT, F(registerNameServerPeriod), 1000, 60000, "30000",
     NULL, 0, "ms between registrations with the name servers"},
    {"registerBrokerTimeoutMills", CFG_INT, F(registerBrokerTimeoutMills), 100, 60000, "24000",
     NULL, 0, "timeout of one registration"},
    {"flushConsumerOffsetInterval", CFG_INT, F(flushConsumerOffsetInterval), 100, 600000,
     "5000", NULL, 0, "ms between writes of consumerOffset.json"},
    {"serverChannelMaxIdleTimeSeconds", CFG_INT, F(serverChannelMaxIdleTimeSeconds), 0, 86400,
     "120", NULL, 0, "close connections idle this long (0 = never)"},
    {"channelExpiredTimeout", CFG_INT, F(channelExpiredTimeout), 1000, 3600000, "120000", NULL,
     0, "ms without a heartbeat before a client is dropped"},
    {"maxPulledBytes", CFG_INT, F(maxPulledBytes), 1024, 64 << 20, "262144", NULL, CFG_RUNTIME,
     "bytes per pull response at most (the first message always goes)"},
    {"transferMsgByHeap", CFG_BOOL, F(transferMsgByHeap), 0, 1, "false", NULL, CFG_RUNTIME,
     "true: copy pulled records into one reply buffer; false: write them straight from the "
     "mapped CommitLog (zero copy)"},
    {"zeroCopyMinBytes", CFG_INT, F(zeroCopyMinBytes), 0, 64 << 20, "65536", NULL, CFG_RUNTIME,
     "pull replies with fewer bytes of records than this are copied: measured with make bench, "
     "copying 32 x 1 KiB replies is faster, writing 256 KiB straight from the mapping is"},
    {"maxParkedSends", CFG_INT, F(maxParkedSends), 1, 10000000, "200000", NULL, CFG_RUNTIME,
     "SYNC_FLUSH sends waiting for the disk before new ones get SYSTEM_BUSY"},
    {"regionId", CFG_STRING, F(regionId), 0, 0, "DefaultRegion", NULL, 0,
     "MSG_REGION of send replies"},
    {"traceOn", CFG_BOOL, F(traceOn), 0, 1, "true", NULL, 0, "TRACE_ON of send replies"},
    {"transactionCheckInterval", CFG_INT64, F(transactionCheckInterval), 10, 86400000, "30000",
     NULL, CFG_RUNTIME, "ms between rounds of transaction checks (CHECK_TRANSACTION_STATE)"},
    {"transactionTimeOut", CFG_INT64, F(transactionTimeOut), 0, 86400000, "6000", NULL,
     CFG_RUNTIME, "ms after its birth before an unfinished transaction is first checked"},
    {"transactionCheckMax", CFG_INT, F(transactionCheckMax), 1, 1000000, "15", NULL, CFG_RUNTIME,
     "checks of a transaction before it is discarded (rolled back)"},
    {"rejectTransactionMessage", CFG_BOOL, F(rejectTransactionMessage), 0, 1, "false", NULL,
     CFG_RUNTIME, "refuse transactional (half) messages"},
    {"rebalanceLockMaxLiveTime", CFG_INT64, F(rebalanceLockMaxLiveTime), 1, 86400000, "60000",
     NULL, CFG_RUNTIME,
     "ms a queue lock of an orderly consumer lives without renewal (Java's system property "
     "rocketmq.broker.rebalance.lockMaxLiveTime)"},
};
#undef F

const struct cfg_def *
broker_config_table(size_t *n)
{
    *n = sizeof(broker_defs) / sizeof(broker_defs[0]);
    return broker_defs;
}

/* Helpers for processors ------------------------------------------------- */

const char *
ext_str(const struct proto_cmd *req, const char *key)
{
    return proto_ext_get(req, key);
}

/*
 * An integer extField: <dflt> when absent; *bad set when present but not
 * an integer (Java would fail the request: so do the callers).
 */
int64_t
ext_i64(const struct proto_cmd *req, const char *key, int64_t dflt, int *bad)
{
    const char *v = proto_ext_get(req, key);
    char *end;
    long long x;

    if (!v || !*v)
        return dflt;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || *end) {
        if (bad)
            *bad = 1;
        return dflt;
    }
    return x;
}

void
broker_reply(struct broker *b, struct net_conn *c, const struct proto_cmd *req,
             struct proto_reply *rep)
{
    uint8_t *buf;
    size_t len;
    int rc;

    (void)b;
    if (req->flag & PROTO_FLAG_ONEWAY) {
        proto_reply_free(rep);
        return;
    }
    rc = proto_reply_encode(req, rep, 0, &buf, &len);
    if (rc) {
        struct proto_reply e;
        proto_reply_init(&e, RS_SYSTEM_ERROR);
        proto_reply_remark(&e, "reply could not be encoded: %s", spk_strerror(rc));
        if (proto_reply_encode(req, &e, 0, &buf, &len) != 0)
            buf = NULL;
        proto_reply_free(&e);
    }
    proto_reply_free(rep);
    if (buf)
        net_conn_send(c, buf, len);
}

/* Registration with the name servers --------------------------------------- */

void
broker_request_register(struct broker *b)
{
    pthread_mutex_lock(&b->sched_mu);
    b->sched_register_now = 1;
    pthread_cond_signal(&b->sched_cv);
    pthread_mutex_unlock(&b->sched_mu);
}

static int32_t sched_opaque;

/* One client per name server address of namesrvAddr. */
static int
ns_clients_init(struct broker *b, char *err, size_t errlen)
{
    char *addrs = strdup(b->cfg.namesrvAddr ? b->cfg.namesrvAddr : "");
    char *save = NULL, *a;
    int rc = 0;

    if (!addrs)
        return -ENOMEM;
    for (a = strtok_r(addrs, ";", &save); a; a = strtok_r(NULL, ";", &save)) {
        struct net_client **nc;
        while (*a == ' ')
            a++;
        if (!*a)
            continue;
        nc = realloc(b->ns_clients, (b->nns + 1) * sizeof(*nc));
        if (!nc) {
            rc = -ENOMEM;
            break;
        }
        b->ns_clients = nc;
        rc = net_client_create(a, &b->ns_clients[b->nns]);
        if (rc) {
            snprintf(err, errlen, "namesrvAddr: '%s' is not an ip:port address", a);
            break;
        }
        b->nns++;
    }
    free(addrs);
    return rc;
}

static void
register_all(struct broker *b, int unregister)
{
    size_t blen = 0;
    char *topics_json = NULL, *body = NULL;

    if (!unregister) {
        topics_json = topics_serialize(b->topics, &blen);
        if (!topics_json)
            return;
        if (asprintf(&body, "{\"filterServerList\":[],\"topicConfigSerializeWrapper\":%s}",
                     topics_json) < 0)
            body = NULL;
        free(topics_json);
        if (!body)
            return;
        blen = strlen(body);
    }
    for (size_t k = 0; k < b->nns; k++) {
        struct proto_reply r;
        uint8_t *frame = NULL, *resp = NULL;
        size_t flen, rlen;
        int32_t op = __atomic_add_fetch(&sched_opaque, 1, __ATOMIC_RELAXED);
        const char *a = net_client_addr(b->ns_clients[k]);
        int rc;
        proto_reply_init(&r, unregister ? RC_UNREGISTER_BROKER : RC_REGISTER_BROKER);
        proto_reply_ext(&r, "brokerAddr", "%s", b->addr);
        proto_reply_ext(&r, "brokerId", "%lld", (long long)b->cfg.brokerId);
        proto_reply_ext(&r, "brokerName", "%s", b->cfg.brokerName);
        proto_reply_ext(&r, "clusterName", "%s", b->cfg.brokerClusterName);
        if (!unregister) {
            proto_reply_ext(&r, "compressed", "false");
            proto_reply_ext(&r, "haServerAddr", "%s:%d", b->cfg.brokerIP1,
                            b->cfg.listenPort + 1);
            proto_reply_body_copy(&r, body, blen);
        }
        rc = proto_request_encode(&r, op, 0, &frame, &flen);
        proto_reply_free(&r);
        if (rc == 0)
            rc = net_client_call(b->ns_clients[k], frame, flen, op,
                                 b->cfg.registerBrokerTimeoutMills, &resp, &rlen);
        free(frame);
        if (rc == 0) {
            struct proto_cmd c;
            if (proto_decode(resp, rlen, &c) == 0) {
                if (c.code != 0)
                    spk_log(SPK_LOG_WARN, "broker", "%s with name server %s refused: code %d %s",
                            unregister ? "unregistration" : "registration", a, c.code,
                            c.remark ? c.remark : "");
                proto_cmd_free(&c);
            }
            free(resp);
        } else {
            spk_log(SPK_LOG_WARN, "broker", "%s with name server %s failed: %s",
                    unregister ? "unregistration" : "registration", a, spk_strerror(rc));
        }
    }
    free(body);
}

static void *
sched_main(void *arg)
{
    struct broker *b = arg;
    int64_t next_reg = 0, next_persist = spk_mono_ms() + b->cfg.flushConsumerOffsetInterval;

    pthread_mutex_lock(&b->sched_mu);
    while (!b->sched_stop) {
        int64_t now = spk_mono_ms();
        int reg = b->sched_register_now || now >= next_reg;
        int persist = now >= next_persist;

        if (reg || persist) {
            b->sched_register_now = 0;
            pthread_mutex_unlock(&b->sched_mu);
            if (reg) {
                /* topics the loop created (auto-create, %RETRY%) reach the
                 * file here, off the loop, before the name servers hear */
                int trc = topics_persist(b->topics);
                if (trc)
                    spk_log(SPK_LOG_ERROR, "broker", "writing topics.json failed: %s",
                            spk_strerror(trc));
                register_all(b, 0);
                next_reg = spk_mono_ms() + b->cfg.registerNameServerPeriod;
            }
            if (persist) {
                int rc = offsets_persist(b->offsets);
                if (rc)
                    spk_log(SPK_LOG_ERROR, "broker", "writing consumerOffset.json failed: %s",
                            spk_strerror(rc));
                if (topics_persist(b->topics) != 0)
                    spk_log(SPK_LOG_ERROR, "broker", "writing topics.json failed");
                rc = delay_persist(b);
                if (rc)
                    spk_log(SPK_LOG_ERROR, "broker", "writing delayOffset.json failed: %s",
                            spk_strerror(rc));
                next_persist = spk_mono_ms() + b->cfg.flushConsumerOffsetInterval;
            }
            pthread_mutex_lock(&b->sched_mu);
            continue;
        }
        {
            int64_t wake = next_reg < next_persist ? next_reg : next_persist;
            struct timespec ts;
            int64_t wall = spk_wall_ms() + (wake - now);
            ts.tv_sec = wall / 1000;
            ts.tv_nsec = (wall % 1000) * 1000000;
            pthread_cond_timedwait(&b->sched_cv, &b->sched_mu, &ts);
        }
    }
    if (b->sched_unregister) {
        pthread_mutex_unlock(&b->sched_mu);
        register_all(b, 1);
        net_loop_stop(b->loop);
        return NULL;
    }
    pthread_mutex_unlock(&b->sched_mu);
    return NULL;
}

void
broker_begin_stop(struct broker *b)
{
    if (!b->sched_started) {
        net_loop_stop(b->loop);
        return;
    }
    pthread_mutex_lock(&b->sched_mu);
    b->sched_stop = 1;
    b->sched_unregister = 1;
    pthread_cond_signal(&b->sched_cv);
    pthread_mutex_unlock(&b->sched_mu);
}

/* Frames ---------------------------------------------------------------------- */

static void
on_frame(void *ud, struct net_conn *c, const uint8_t *frame, size_t len)
{
    struct broker *b = ud;
    struct proto_cmd req;
    struct proto_reply rep;
    int rc = proto_decode(frame, len, &req);

    if (rc) {
        char why[128];
        /* Rate-limited by the loop: a hostile peer must not flood the log. */
        snprintf(why, sizeof(why), "undecodable request: %s", spk_strerror(rc));
        net_conn_close_bad(c, why);
        return;
    }
    if (req.flag & PROTO_FLAG_RESPONSE) {
        /* Replies to our oneway notifications never come; others are dropped. */
        proto_cmd_free(&req);
        return;
    }
    switch (req.code) {
    case RC_SEND_MESSAGE:
    case RC_SEND_MESSAGE_V2:
    case RC_SEND_BATCH_MESSAGE:
        proc_send(b, c, &req);
        break;
    case RC_CONSUMER_SEND_MSG_BACK:
        proc_send_back(b, c, &req);
        break;
    case RC_END_TRANSACTION:
        proc_end_transaction(b, c, &req);
        break;
    case RC_LOCK_BATCH_MQ:
    case RC_UNLOCK_BATCH_MQ:
        proc_lock_batch(b, c, &req);
        break;
    case RC_PULL_MESSAGE:
    case RC_LITE_PULL_MESSAGE:
        proc_pull(b, c, &req, frame, len, 0);
        break;
    case RC_QUERY_CONSUMER_OFFSET:
    case RC_UPDATE_CONSUMER_OFFSET:
    case RC_GET_MAX_OFFSET:
    case RC_GET_MIN_OFFSET:
    case RC_GET_EARLIEST_MSG_STORETIME:
    case RC_SEARCH_OFFSET_BY_TIMESTAMP:
        proc_offsets(b, c, &req);
        break;
    case RC_HEART_BEAT:
        proc_heartbeat(b, c, &req);
        break;
    case RC_UNREGISTER_CLIENT:
        proc_unregister_client(b, c, &req);
        break;
    case RC_GET_CONSUMER_LIST_BY_GROUP:
        proc_consumer_list(b, c, &req);
        break;
    case RC_QUERY_MESSAGE:
    case RC_VIEW_MESSAGE_BY_ID:
    case RC_UPDATE_AND_CREATE_TOPIC:
    case RC_GET_ALL_TOPIC_CONFIG:
    case RC_GET_TOPIC_CONFIG:
    case RC_DELETE_TOPIC_IN_BROKER:
    case RC_GET_TOPIC_STATS_INFO:
    case RC_GET_CONSUME_STATS:
    case RC_GET_CONSUMER_CONNECTION_LIST:
    case RC_GET_PRODUCER_CONNECTION_LIST:
    case RC_QUERY_TOPIC_CONSUME_BY_WHO:
    case RC_GET_BROKER_RUNTIME_INFO:
    case RC_GET_BROKER_CONFIG:
    case RC_UPDATE_BROKER_CONFIG:
    case RC_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP:
    case RC_GET_ALL_SUBSCRIPTIONGROUP_CONFIG:
    case RC_DELETE_SUBSCRIPTIONGROUP:
    case RC_INVOKE_BROKER_TO_RESET_OFFSET:
        proc_admin(b, c, &req);
        break;
    default:
        proto_reply_init(&rep, RS_NOT_SUPPORTED);
        proto_reply_remark(&rep, " request type %d not supported", req.code);
        broker_reply(b, c, &req, &rep);
        break;
    }
    proto_cmd_free(&req);
}

static void
on_close(void *ud, struct net_conn *c)
{
    clients_conn_closed(ud, c);
}

/* Store events arrive on store threads; the loop handles them here. */
static void
store_listener(void *arg, int what)
{
    struct broker *b = arg;

    __atomic_or_fetch(&b->store_events, what, __ATOMIC_ACQ_REL);
    net_wakeup_signal(b->store_wake);
}

static void
deferred_pull_scan(void *arg)
{
    struct broker *b = arg;

    b->pull_scan_pending = 0;
    b->last_pull_scan = net_loop_now(b->loop);
    pulls_wake(b, 0);
}

static void
on_store_wake(void *arg)
{
    struct broker *b = arg;
    int ev = __atomic_exchange_n(&b->store_events, 0, __ATOMIC_ACQ_REL);

    /* Parked sends wait for their message to be visible (send.c INV-1). */
    if (ev & (STORE_EV_VISIBLE | STORE_EV_FAILED))
        sends_on_durable(b, (ev & STORE_EV_FAILED) != 0);
    if ((ev & STORE_EV_VISIBLE) && b->pulls) {
        /*
         * Each scan looks up every parked pull's queue. With a few parked
         * pulls that is cheap and a held pull is answered at once; with
         * many, scans are spaced 1 ms apart so a stream of appends cannot
         * turn into (parked pulls x appends) lookups.
         */
        int64_t now = net_loop_now(b->loop);
        if (b->npulls <= 64 || now - b->last_pull_scan >= 1) {
            b->last_pull_scan = now;
            pulls_wake(b, 0);
        } else if (!b->pull_scan_pending) {
            b->pull_scan_pending = 1;
            net_timer_add(b->loop, 1, 0, deferred_pull_scan, b);
        }
    }
}

static void
tick_fast(void *arg)
{
    struct broker *b = arg;

    sends_expire(b);
    pulls_wake(b, 1);
}

static void
tick_clients(void *arg)
{
    clients_expire(arg);
}

static int
parse_ip(const char *s, uint8_t ip[4])
{
    struct in_addr a;

    if (inet_pton(AF_INET, s, &a) != 1)
        return -EINVAL;
    memcpy(ip, &a.s_addr, 4);
    return 0;
}

int
broker_create(const struct broker_config *cfg, const struct store_config *scfg,
              struct net_loop *loop, struct broker **out, char *err, size_t errlen)
{
    static const struct net_handler h = {on_frame, on_close};
    struct broker *b = calloc(1, sizeof(*b));
    struct store_open_info info;
    int rc;

    if (!b)
        return -ENOMEM;
    b->cfg = *cfg;
    b->scfg = *scfg;
    b->tgt[0].defs = broker_config_table(&b->tgt[0].n);
    b->tgt[0].obj = &b->cfg;
    b->tgt[1].defs = store_config_table(&b->tgt[1].n);
    b->tgt[1].obj = &b->scfg;
    b->loop = loop;
    b->boot_ms = spk_wall_ms();
    b->next_opaque = 1;
    pthread_mutex_init(&b->sched_mu, NULL);
    pthread_cond_init(&b->sched_cv, NULL);
    pthread_mutex_init(&b->delay_mu, NULL);
    if (parse_ip(cfg->brokerIP1, b->store_ip)) {
        snprintf(err, errlen, "brokerIP1 '%s' is not an IPv4 address", cfg->brokerIP1);
        rc = SPK_ECONFIG;
        goto fail;
    }
    b->store_port = cfg->listenPort;
    snprintf(b->addr, sizeof(b->addr), "%s:%d", cfg->brokerIP1, cfg->listenPort);
    if (!cfg->brokerName || !*cfg->brokerName || !cfg->brokerClusterName ||
        !*cfg->brokerClusterName) {
        snprintf(err, errlen, "brokerName and brokerClusterName must not be empty");
        rc = SPK_ECONFIG;
        goto fail;
    }
    rc = delay_init(b, err, errlen);
    if (rc)
        goto fail;
    rc = ns_clients_init(b, err, errlen);
    if (rc)
        goto fail;
    rc = store_open(scfg, &b->store, &info, err, errlen);
    if (rc)
        goto fail;
    spk_log(SPK_LOG_INFO, "broker",
            "store opened at %s (%s recovery, CommitLog %llu..%llu, %u queues, %lld ms)",
            scfg->storePathRootDir, info.abnormal ? "abnormal" : "normal",
            (unsigned long long)info.clog_min, (unsigned long long)info.clog_max, info.queues,
            (long long)info.recovery_ms);
    snprintf(b->config_dir, sizeof(b->config_dir), "%s/config", scfg->storePathRootDir);
    if (mkdir(b->config_dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", b->config_dir, strerror(errno));
        goto fail;
    }
    rc = topics_open(b->config_dir, cfg->brokerClusterName, cfg->brokerName,
                     cfg->autoCreateTopicEnable, cfg->defaultTopicQueueNums, &b->topics, err,
                     errlen);
    if (rc)
        goto fail;
    rc = offsets_open(b->config_dir, &b->offsets, err, errlen);
    if (rc)
        goto fail;
    rc = groups_open(b->config_dir, &b->groups, err, errlen);
    if (rc)
        goto fail;
    rc = trans_init(b, err, errlen);
    if (rc)
        goto fail;
    b->store_wake = net_wakeup_add(loop, on_store_wake, b);
    if (!b->store_wake) {
        rc = -ENOMEM;
        goto fail;
    }
    store_set_listener(b->store, store_listener, b);
    rc = net_listen(loop, "0.0.0.0", cfg->listenPort, &h, b, err, errlen);
    if (rc)
        goto fail;
    {
        int fast = cfg->fastListenPort < 0 ? cfg->listenPort - 2 : cfg->fastListenPort;
        char ferr[256];
        /* Best effort when defaulted: the main port is what clients are
         * told about; old Java clients derive this one from it. */
        if (fast > 0 && net_listen(loop, "0.0.0.0", fast, &h, b, ferr, sizeof(ferr)) != 0) {
            if (cfg->fastListenPort > 0) {
                snprintf(err, errlen, "fastListenPort: %s", ferr);
                rc = -EADDRINUSE;
                goto fail;
            }
            spk_log(SPK_LOG_WARN, "broker",
                    "the VIP channel (listenPort - 2) is not served: %s; Java clients up to "
                    "4.5 need it unless they set sendMessageWithVIPChannel=false",
                    ferr);
        }
    }
    net_timer_add(loop, 100, 100, tick_fast, b);
    {
        /* Java scans every 10 s; a shorter expiry is scanned more often. */
        int64_t per = cfg->channelExpiredTimeout / 2;
        per = per < 1000 ? 1000 : per > 10000 ? 10000 : per;
        net_timer_add(loop, per, per, tick_clients, b);
    }
    net_timer_add(loop, 100, 100, delay_tick, b);
    net_timer_add(loop, 100, 100, trans_tick, b);
    net_timer_add(loop, 1000, 1000, locks_tick, b);
    *out = b;
    return 0;
fail:
    /* The store listener stays set: store_close() stops the store's
     * threads before <b> (which the listener uses) is freed. */
    trans_free(b);
    groups_close(b->groups);
    if (b->offsets)
        offsets_close(b->offsets);
    if (b->topics)
        topics_close(b->topics);
    if (b->store)
        store_close(b->store);
    for (size_t k = 0; k < b->nns; k++)
        net_client_destroy(b->ns_clients[k]);
    free(b->ns_clients);
    pthread_mutex_destroy(&b->sched_mu);
    pthread_cond_destroy(&b->sched_cv);
    pthread_mutex_destroy(&b->delay_mu);
    free(b);
    return rc;
}

int
broker_start(struct broker *b)
{
    int rc = pthread_create(&b->sched, NULL, sched_main, b);

    if (rc)
        return -rc;
    b->sched_started = 1;
    return 0;
}

void
broker_stop(struct broker *b)
{
    if (b->sched_started) {
        pthread_mutex_lock(&b->sched_mu);
        b->sched_stop = 1;
        pthread_cond_signal(&b->sched_cv);
        pthread_mutex_unlock(&b->sched_mu);
        pthread_join(b->sched, NULL);
        b->sched_started = 0;
        if (!b->sched_unregister)
            register_all(b, 1);
    }
    /* The store listener stays set until store_close() stops the threads
     * that call it (it only signals the loop's wakeup, harmless now). */
    /* Sends parked for the disk: flush now, and give the dispatcher a
     * moment to catch up, so they can be acknowledged. */
    store_flush_all(b->store);
    for (int i = 0; i < 200 && store_dispatched(b->store) < store_written(b->store); i++) {
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    sends_on_durable(b, store_failed(b->store) != 0);
    sends_drop_all(b);
    pulls_drop_all(b);
}

int
broker_destroy(struct broker *b)
{
    int rc;

    if (!b)
        return 0;
    if (b->sched_started)
        broker_stop(b);
    clients_free(b);
    locks_free(b);
    trans_free(b);
    rc = offsets_persist(b->offsets);
    if (rc)
        spk_log(SPK_LOG_ERROR, "broker", "writing consumerOffset.json failed: %s",
                spk_strerror(rc));
    delay_publish(b);
    if (delay_persist(b))
        spk_log(SPK_LOG_ERROR, "broker", "writing delayOffset.json failed");
    offsets_close(b->offsets);
    groups_close(b->groups);
    topics_close(b->topics);
    rc = store_close(b->store);
    pthread_mutex_destroy(&b->sched_mu);
    pthread_cond_destroy(&b->sched_cv);
    pthread_mutex_destroy(&b->delay_mu);
    for (size_t k = 0; k < b->nns; k++)
        net_client_destroy(b->ns_clients[k]);
    free(b->ns_clients);
    cfg_free(&b->tgt[0]);
    cfg_free(&b->tgt[1]);
    free(b);
    return rc;
}
