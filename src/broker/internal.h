/*
 * internal.h - the broker's state shared by its processor files.
 *
 * Everything here is touched by the loop thread only, except where a
 * field says otherwise (sched_*: the scheduler thread, under sched_mu).
 */
#ifndef SPK_BROKER_INTERNAL_H
#define SPK_BROKER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"
#include "broker/groups.h"
#include "broker/offsets.h"
#include "broker/topics.h"
#include "common/config.h"
#include "net/client.h"
#include "net/loop.h"
#include "proto/message.h"
#include "proto/remoting.h"
#include "proto/reply.h"
#include "store/store.h"

/* Request codes (PROTOCOL.md 3.1) */
enum {
    RC_SEND_MESSAGE = 10,
    RC_PULL_MESSAGE = 11,
    RC_QUERY_MESSAGE = 12,
    RC_QUERY_CONSUMER_OFFSET = 14,
    RC_UPDATE_CONSUMER_OFFSET = 15,
    RC_UPDATE_AND_CREATE_TOPIC = 17,
    RC_GET_ALL_TOPIC_CONFIG = 21,
    RC_UPDATE_BROKER_CONFIG = 25,
    RC_GET_BROKER_CONFIG = 26,
    RC_GET_BROKER_RUNTIME_INFO = 28,
    RC_SEARCH_OFFSET_BY_TIMESTAMP = 29,
    RC_GET_MAX_OFFSET = 30,
    RC_GET_MIN_OFFSET = 31,
    RC_GET_EARLIEST_MSG_STORETIME = 32,
    RC_VIEW_MESSAGE_BY_ID = 33,
    RC_HEART_BEAT = 34,
    RC_UNREGISTER_CLIENT = 35,
    RC_CONSUMER_SEND_MSG_BACK = 36,
    RC_END_TRANSACTION = 37,
    RC_GET_CONSUMER_LIST_BY_GROUP = 38,
    RC_CHECK_TRANSACTION_STATE = 39,
    RC_NOTIFY_CONSUMER_IDS_CHANGED = 40,
    RC_LOCK_BATCH_MQ = 41,
    RC_UNLOCK_BATCH_MQ = 42,
    RC_REGISTER_BROKER = 103,
    RC_UNREGISTER_BROKER = 104,
    RC_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200,
    RC_GET_ALL_SUBSCRIPTIONGROUP_CONFIG = 201,
    RC_GET_TOPIC_STATS_INFO = 202,
    RC_GET_CONSUMER_CONNECTION_LIST = 203,
    RC_GET_PRODUCER_CONNECTION_LIST = 204,
    RC_DELETE_SUBSCRIPTIONGROUP = 207,
    RC_GET_CONSUME_STATS = 208,
    RC_DELETE_TOPIC_IN_BROKER = 215,
    RC_RESET_CONSUMER_CLIENT_OFFSET = 220,
    RC_INVOKE_BROKER_TO_RESET_OFFSET = 222,
    RC_QUERY_TOPIC_CONSUME_BY_WHO = 300,
    RC_SEND_MESSAGE_V2 = 310,
    RC_SEND_BATCH_MESSAGE = 320,
    RC_GET_TOPIC_CONFIG = 351,
    RC_LITE_PULL_MESSAGE = 361,
};

/* Response codes (PROTOCOL.md 2) */
enum {
    RS_SUCCESS = 0,
    RS_SYSTEM_ERROR = 1,
    RS_SYSTEM_BUSY = 2,
    RS_NOT_SUPPORTED = 3,
    RS_FLUSH_DISK_TIMEOUT = 10,
    RS_MESSAGE_ILLEGAL = 13,
    RS_SERVICE_NOT_AVAILABLE = 14,
    RS_NO_PERMISSION = 16,
    RS_TOPIC_NOT_EXIST = 17,
    RS_PULL_NOT_FOUND = 19,
    RS_PULL_RETRY_IMMEDIATELY = 20,
    RS_PULL_OFFSET_MOVED = 21,
    RS_QUERY_NOT_FOUND = 22,
    RS_SUBSCRIPTION_PARSE_FAILED = 23,
    RS_SUBSCRIPTION_NOT_EXIST = 24,
    RS_SUBSCRIPTION_NOT_LATEST = 25,
    RS_SUBSCRIPTION_GROUP_NOT_EXIST = 26,
    RS_INVALID_PARAMETER = 29,
    RS_CONSUMER_NOT_ONLINE = 206,
};

#define SCHEDULE_TOPIC "SCHEDULE_TOPIC_XXXX"
#define MAX_DELAY_LEVELS 32
#define RETRY_PREFIX "%RETRY%"
#define DLQ_PREFIX "%DLQ%"

/* A SYNC_FLUSH send waiting for the disk (FIFO by end offset). */
struct parked_send {
    struct parked_send *next;
    struct net_conn *conn; /* held */
    int32_t opaque;
    uint64_t end;
    int64_t deadline;
    struct proto_reply rep;
};

/* A long-polling pull waiting for its queue to grow. */
struct parked_pull {
    struct parked_pull *next;
    struct net_conn *conn; /* held */
    uint8_t *frame;        /* a copy of the request, re-executed on wake */
    size_t frame_len;
    char topic[256];
    int32_t qid;
    uint64_t offset;
    int64_t deadline;
};

struct subscription {
    char topic[256];
    char *expr;      /* subString */
    int64_t *codes;
    char **tags;
    size_t ntags;
    int64_t version;
};

struct client_ref {
    char id[256];
    struct net_conn *conn; /* held */
    int64_t last_hb;
    int language, version;
};

struct cgroup {
    char name[256];
    int broadcast;
    char cfw[64];
    char consume_type[32];
    struct client_ref *clients;
    size_t nclients;
    struct subscription *subs;
    size_t nsubs;
};

struct pgroup {
    char name[256];
    struct client_ref *clients;
    size_t nclients;
};

struct broker {
    struct broker_config cfg;
    struct store_config scfg;
    struct net_loop *loop;
    struct store *store;
    struct topics *topics;
    struct offsets *offsets;
    struct groups *groups; /* subscription groups (groups.h) */
    char config_dir[4096];
    struct cfg_target tgt[2]; /* broker settings (over cfg), store settings (over scfg) */

    uint8_t store_ip[4];
    int32_t store_port;
    char addr[64]; /* brokerIP1:listenPort */

    struct net_wakeup *store_wake;
    int store_events; /* atomic: STORE_EV_* bits since the last wake */
    struct parked_send *sends_head, *sends_tail;
    size_t nsends;
    struct parked_pull *pulls;
    size_t npulls;
    int64_t last_pull_scan;
    int pull_scan_pending;

    struct cgroup *cgroups;
    size_t ncgroups;
    struct pgroup *pgroups;
    size_t npgroups;
    int32_t next_opaque;

    struct trans *trans; /* transactional messages (trans.c) */
    struct locks *locks; /* queue locks of orderly consumers (locks.c), NULL until the first */

    /* delay levels */
    int64_t delay_ms[MAX_DELAY_LEVELS];
    int ndelay;
    uint64_t delay_off[MAX_DELAY_LEVELS];
    int delay_dirty;
    /* the loop publishes delay_off here; the scheduler thread writes it */
    pthread_mutex_t delay_mu;
    uint64_t delay_snap[MAX_DELAY_LEVELS];
    int delay_snap_dirty;

    /* scheduler thread */
    struct net_client **ns_clients; /* one per name server; scheduler thread only */
    size_t nns;
    pthread_t sched;
    int sched_started;
    pthread_mutex_t sched_mu;
    pthread_cond_t sched_cv;
    int sched_stop, sched_register_now, sched_unregister;

    /* a disk-full episode (send.c): when it began (monotonic ms, 0 =
     * none), when it was last logged, how many sends it refused */
    int64_t diskfull_since, diskfull_logged, diskfull_refused;

    /* counters */
    int64_t boot_ms;
    uint64_t put_count, get_count, get_msgs, put_bytes;
    uint64_t put_today_morning, get_today_morning;
};

/* broker.c */
void broker_request_register(struct broker *b);
void broker_reply(struct broker *b, struct net_conn *c, const struct proto_cmd *req,
                  struct proto_reply *rep);
int64_t ext_i64(const struct proto_cmd *req, const char *key, int64_t dflt, int *bad);
const char *ext_str(const struct proto_cmd *req, const char *key);

/* send.c */
void proc_send(struct broker *b, struct net_conn *c, const struct proto_cmd *req);
void proc_send_back(struct broker *b, struct net_conn *c, const struct proto_cmd *req);
void sends_on_durable(struct broker *b, int failed);
void sends_expire(struct broker *b);
void sends_drop_all(struct broker *b);
int delay_init(struct broker *b, char *err, size_t errlen);
void delay_tick(void *arg);
int delay_persist(struct broker *b);
void delay_publish(struct broker *b);
int64_t delay_level_ms(struct broker *b, int level);

/* pull.c */
void proc_pull(struct broker *b, struct net_conn *c, const struct proto_cmd *req,
               const uint8_t *frame, size_t frame_len, int resumed);
void pulls_wake(struct broker *b, int timeout_only);
void pulls_drop_all(struct broker *b);
void proc_offsets(struct broker *b, struct net_conn *c, const struct proto_cmd *req);

/* clients.c */
void proc_heartbeat(struct broker *b, struct net_conn *c, const struct proto_cmd *req);
void proc_unregister_client(struct broker *b, struct net_conn *c, const struct proto_cmd *req);
void proc_consumer_list(struct broker *b, struct net_conn *c, const struct proto_cmd *req);
void clients_conn_closed(struct broker *b, struct net_conn *c);
void clients_expire(struct broker *b);
void clients_free(struct broker *b);
struct cgroup *cgroup_find(struct broker *b, const char *name);
const struct subscription *cgroup_sub(const struct cgroup *g, const char *topic);
int sub_parse(const char *topic, const char *expr, int64_t version, struct subscription *out);
void sub_free(struct subscription *s);

/* admin.c */
void proc_admin(struct broker *b, struct net_conn *c, const struct proto_cmd *req);

/* send.c, for the other processors that store messages */
void reply_when_durable(struct broker *b, struct net_conn *c, const struct proto_cmd *req,
                        struct proto_reply *rep, uint64_t end);
void put_error(struct proto_reply *rep, int rc);

/* trans.c */
int trans_init(struct broker *b, char *err, size_t errlen);
void trans_free(struct broker *b);
void trans_tick(void *arg);
int trans_is_prepared(const char *props, size_t len, int64_t reconsume_times);
int trans_make_half(struct rec_msg *m, struct proto_props_buf *pb);
void proc_end_transaction(struct broker *b, struct net_conn *c, const struct proto_cmd *req);

/* locks.c */
void proc_lock_batch(struct broker *b, struct net_conn *c, const struct proto_cmd *req);
void locks_release_client(struct broker *b, const char *group, const char *client_id);
void locks_tick(void *arg);
void locks_free(struct broker *b);

#endif /* SPK_BROKER_INTERNAL_H */
