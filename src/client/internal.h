/*
 * internal.h - what the files of the client library share.
 *
 * A producer or consumer owns one cl_instance (RocketMQ's MQClientInstance):
 * the name-server list, the routes of the topics it uses, one connection
 * per broker address, and a scheduler thread that refreshes routes, sends
 * heartbeats, fails expired asynchronous requests and calls its owner's
 * tick (rebalance, offset commits, lock renewal).
 *
 * Invariants:
 *   INV-1  Routes are immutable once built: a refresh swaps the pointer
 *          under inst->lock, and readers copy what they need under it.
 *   INV-2  A connection handed out by cl_conn_get is held (refs > 0) until
 *          cl_conn_release; a dead connection is replaced in the table and
 *          freed by the scheduler once nobody holds it, never by a reader
 *          thread (conn.h INV-2).
 *   INV-3  The owner's hooks run on the scheduler thread (tick, heartbeat
 *          body) or on a reader thread (server requests), never under
 *          inst->lock.
 */
#ifndef SPK_CLIENT_INTERNAL_H
#define SPK_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "client/conn.h"
#include "common/sbuf.h"
#include "proto/remoting.h"
#include "proto/reply.h"
#include "sprocket.h"

/* Request and response codes (PROTOCOL.md 2, 3.1). */
#define CL_RC_SUCCESS 0
#define CL_RC_SYSTEM_ERROR 1
#define CL_RC_SYSTEM_BUSY 2
#define CL_RC_FLUSH_DISK_TIMEOUT 10
#define CL_RC_SLAVE_NOT_AVAILABLE 11
#define CL_RC_FLUSH_SLAVE_TIMEOUT 12
#define CL_RC_TOPIC_NOT_EXIST 17
#define CL_RC_PULL_NOT_FOUND 19
#define CL_RC_PULL_RETRY_IMMEDIATELY 20
#define CL_RC_PULL_OFFSET_MOVED 21
#define CL_RC_QUERY_NOT_FOUND 22

#define CL_REQ_SEND_MESSAGE_V2 310
#define CL_REQ_SEND_BATCH_MESSAGE 320
#define CL_REQ_PULL_MESSAGE 11
#define CL_REQ_QUERY_CONSUMER_OFFSET 14
#define CL_REQ_UPDATE_CONSUMER_OFFSET 15
#define CL_REQ_SEARCH_OFFSET_BY_TIMESTAMP 29
#define CL_REQ_GET_MAX_OFFSET 30
#define CL_REQ_GET_MIN_OFFSET 31
#define CL_REQ_HEART_BEAT 34
#define CL_REQ_UNREGISTER_CLIENT 35
#define CL_REQ_CONSUMER_SEND_MSG_BACK 36
#define CL_REQ_END_TRANSACTION 37
#define CL_REQ_GET_CONSUMER_LIST_BY_GROUP 38
#define CL_REQ_CHECK_TRANSACTION_STATE 39
#define CL_REQ_NOTIFY_CONSUMER_IDS_CHANGED 40
#define CL_REQ_LOCK_BATCH_MQ 41
#define CL_REQ_UNLOCK_BATCH_MQ 42
#define CL_REQ_GET_ROUTEINFO_BY_TOPIC 105
#define CL_REQ_RESET_CONSUMER_CLIENT_OFFSET 220
#define CL_REQ_GET_CONSUMER_RUNNING_INFO 307

/* Message sysFlag bits (PROTOCOL.md 4.6). */
#define CL_SYS_COMPRESSED 0x1
#define CL_SYS_TX_PREPARED 0x4
#define CL_SYS_TX_COMMIT 0x8
#define CL_SYS_TX_ROLLBACK 0xC

/* Pull sysFlag bits. */
#define CL_PULL_COMMIT_OFFSET 0x1
#define CL_PULL_SUSPEND 0x2
#define CL_PULL_SUBSCRIPTION 0x4

#define CL_LOG "client"

/* ----- messages (message.c) -------------------------------------------- */
struct cl_prop {
    char *name;
    char *value;
};

struct spk_message {
    char *topic;
    uint8_t *body;
    size_t body_len;
    struct cl_prop *props;
    size_t nprops, cap;
    int32_t flag;
    /* set on received (and sent) messages */
    char msg_id[64];
    char offset_id[64];
    char broker[128];
    int queue_id;
    int64_t queue_offset;
    int64_t commitlog_offset;
    int64_t born_ts;
    int64_t store_ts;
    int reconsume_times;
    int32_t sysflag;
    char born_host[64];
};

/* Encodes the properties string (trailing 0x02 after each pair). */
int cl_props_encode(const spk_message *m, struct sbuf *sb);
/* Sets a property without validating it (library-internal names). */
int cl_message_put(spk_message *m, const char *name, const char *value);
void cl_message_remove(spk_message *m, const char *name);
/*
 * Decodes the stored-format messages of a pull or query reply body into
 * new messages (inflating compressed bodies) appended to *msgs. Returns
 * the count or a negative error (SPK_ECORRUPT: a record fails its checks).
 */
int cl_decode_messages(const uint8_t *body, size_t len, const char *broker, spk_message ***msgs,
                       size_t *n, size_t *cap);
spk_message *cl_message_clone(const spk_message *m);
/* A new UNIQ_KEY (32 upper-case hex digits) into out[33]. */
void cl_uniq_id(char out[33]);
/* Java's String.hashCode over the bytes (ASCII tags). */
int32_t cl_java_hash(const char *s);

/* ----- common options --------------------------------------------------- */
struct cl_opts {
    char *namesrv;
    char *instance_name;
    char *client_ip;
    int poll_ns_interval;
    int heartbeat_interval;
};

/* ----- routes ----------------------------------------------------------- */
struct cl_broker_data {
    char name[128];
    char master[64]; /* address of brokerId 0, "" when none */
    char any[64];    /* some address (master preferred) */
};

struct cl_route {
    char topic[256];
    struct cl_broker_data *brokers;
    size_t nbrokers;
    spk_queue *wq; /* writable queues of masters, sorted (broker, id) */
    size_t nwq;
    spk_queue *rq; /* readable queues, sorted */
    size_t nrq;
};

void cl_route_free(struct cl_route *r);
/*
 * Parses a TopicRouteData body (fastjson or standard JSON) into a new
 * route for <topic>. Returns 0, SPK_EFORMAT (hostile or malformed body)
 * or -ENOMEM.
 */
int cl_route_parse(const char *topic, const uint8_t *body, size_t len, struct cl_route **out);

/* ----- the instance (instance.c) ---------------------------------------- */
struct cl_instance;

struct cl_hooks {
    void *owner;
    /* Appends the heartbeat body's producerDataSet/consumerDataSet members
     * (without the enclosing braces), e.g. "\"producerDataSet\":[...]". */
    void (*heartbeat)(void *owner, struct sbuf *sb);
    /* About every 100 ms on the scheduler thread. */
    void (*tick)(void *owner, int64_t now_ms);
    /* A request from a broker (39, 40, 220, 307). */
    cl_request_fn on_request;
};

int cl_instance_create(const struct cl_opts *o, const struct cl_hooks *h,
                       struct cl_instance **out);
/* Starts the scheduler. */
int cl_instance_start(struct cl_instance *in);
/* Stops the scheduler, closes every connection, frees. */
void cl_instance_destroy(struct cl_instance *in);
const char *cl_instance_client_id(const struct cl_instance *in);
/* Wakes the scheduler at once (its tick runs). */
void cl_instance_kick(struct cl_instance *in);

/*
 * The route of <topic>: fetched from the name servers when unknown or when
 * <refresh> is set. Copies the requested parts (each may be NULL; caller
 * frees the arrays). Returns 0, SPK_ENOROUTE, or a transport error.
 */
int cl_route_get(struct cl_instance *in, const char *topic, int refresh, spk_queue **wq,
                 size_t *nwq, spk_queue **rq, size_t *nrq);
/* Address of <broker>'s master (or any address with <any>). -ENOENT when unknown. */
int cl_broker_addr(struct cl_instance *in, const char *broker, int any, char out[64]);
/* Every distinct broker address known from routes, into a new array. */
int cl_all_broker_addrs(struct cl_instance *in, char (**addrs)[64], size_t *n);

/* A held connection to <addr> (opened if needed; INV-2). */
int cl_conn_get(struct cl_instance *in, const char *addr, struct cl_conn **out);
void cl_conn_release(struct cl_instance *in, struct cl_conn *c);

/* Request helpers. <cmd> and <frame> as cl_conn_call. */
int cl_call(struct cl_instance *in, const char *addr, const struct proto_reply *req,
            int timeout_ms, struct proto_cmd *cmd, uint8_t **frame);
int cl_call_async(struct cl_instance *in, const char *addr, const struct proto_reply *req,
                  int timeout_ms, cl_reply_fn fn, void *ud);
int cl_oneway(struct cl_instance *in, const char *addr, const struct proto_reply *req);
/* A call to the name servers, trying each in turn. */
int cl_ns_call(struct cl_instance *in, const struct proto_reply *req, int timeout_ms,
               struct proto_cmd *cmd, uint8_t **frame);
/* Sends a heartbeat to every broker of every known route now. */
void cl_heartbeat_all(struct cl_instance *in);
/* UNREGISTER_CLIENT to every broker (shutdown). */
void cl_unregister_all(struct cl_instance *in, const char *producer_group,
                       const char *consumer_group);

/* Applies the library's default log level (warn) once, unless chosen. */
void cl_log_default(void);

/* Remembers a broker refusal for spk_last_broker_error (this thread). */
void cl_set_broker_error(int code, const char *remark);

/*
 * RocketMQ's average allocation: member <idx> of <nc> (ids sorted) gets
 * queues [start, start + count) of the <nq> sorted queues.
 */
void cl_allocate(size_t nq, size_t nc, size_t idx, size_t *start, size_t *count);

/* Option parsing shared by producers and consumers. */
int cl_parse_int(const char *v, int64_t min, int64_t max, int64_t *out);
int cl_parse_bool(const char *v, int *out);

#endif /* SPK_CLIENT_INTERNAL_H */
