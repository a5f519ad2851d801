/*
 * admin.h - blocking administration calls for operator tools (the calls
 * behind `sprocket updateTopic`, `topicStatus`, `queryMsgById`, ...):
 * name-server lookups (GET_ROUTEINFO_BY_TOPIC 105, GET_BROKER_CLUSTER_INFO
 * 106, GET_ALL_TOPIC_LIST_FROM_NAMESERVER 206, DELETE_TOPIC_IN_NAMESRV
 * 216) and requests to one broker address, each returning parsed results.
 *
 * Every call is one connection, one request, one reply (net_call), bounded
 * by the handle's timeout; nothing runs in the background. A name-server
 * call tries the configured addresses in order until one answers.
 *
 * Errors: a call returns 0, or a negative code and leaves a sentence in
 * adm_error() naming the server and what went wrong:
 *   -ECONNREFUSED, -ETIMEDOUT, ... the server could not be reached
 *   SPK_EBROKER     the server answered with an error code; adm_error()
 *                   holds "<code name> (<code>): <remark>" and
 *                   adm_error_code() the code (TOPIC_NOT_EXIST = 17, ...)
 *   SPK_ENOROUTE    the name server has no route for the topic
 *   SPK_ENOTFOUND   a lookup found nothing (no message with that key)
 *   SPK_EFORMAT     a reply that does not parse, or a bad argument
 *   -ENOMEM
 * Out-parameters are set only on success; results are new objects the
 * caller frees with the matching *_free function. Calls that "append"
 * add to what their out-parameter already holds, so results from several
 * brokers can be merged (start from a zeroed struct).
 *
 * Bodies are read as the Java broker writes them (PROTOCOL.md 3.8, 5.1):
 * fastjson's bare integer keys and MessageQueue objects used as map keys
 * are both accepted.
 *
 * A handle is used by one thread at a time.
 */
#ifndef SPK_CLIENT_ADMIN_H
#define SPK_CLIENT_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/remoting.h"
#include "proto/reply.h"

#define ADM_TIMEOUT_MS 5000

/* Response codes the tools tell apart (PROTOCOL.md 2). */
#define ADM_RS_SUCCESS 0
#define ADM_RS_SYSTEM_ERROR 1
#define ADM_RS_TOPIC_NOT_EXIST 17
#define ADM_RS_PULL_NOT_FOUND 19
#define ADM_RS_PULL_RETRY_IMMEDIATELY 20
#define ADM_RS_PULL_OFFSET_MOVED 21
#define ADM_RS_QUERY_NOT_FOUND 22
#define ADM_RS_SUBSCRIPTION_GROUP_NOT_EXIST 26
#define ADM_RS_CONSUMER_NOT_ONLINE 206

struct adm;

/*
 * A handle for the name servers <namesrv> ("ip:port[;ip:port...]", may be
 * NULL or empty when only broker calls are made) with <timeout_ms> per
 * call (<= 0: ADM_TIMEOUT_MS). Returns 0 and *out (adm_destroy() frees
 * it), SPK_EFORMAT for an address that is not ip:port (err says which),
 * or -ENOMEM.
 */
int adm_create(const char *namesrv, int timeout_ms, struct adm **out, char *err, size_t errlen);
void adm_destroy(struct adm *a);

/* The sentence describing the last failure ("" after a success). */
const char *adm_error(const struct adm *a);
/* The response code behind the last SPK_EBROKER, or -1. */
int32_t adm_error_code(const struct adm *a);
/* The name servers, as given. */
const char *adm_namesrv(const struct adm *a);

/* Generic calls ------------------------------------------------------------------- */

/* A reply: the decoded command and the frame its pointers point into. */
struct adm_reply {
    struct proto_cmd cmd;
    uint8_t *frame;
    size_t len;
};

void adm_reply_free(struct adm_reply *r);

/*
 * Sends <req> (borrowed; r->code is the request code) to the broker at
 * <addr> and waits for the reply. adm_call() returns 0 whatever the
 * reply's code; adm_request() returns SPK_EBROKER unless it is SUCCESS.
 */
int adm_call(struct adm *a, const char *addr, const struct proto_reply *req, struct adm_reply *out);
int adm_request(struct adm *a, const char *addr, const struct proto_reply *req,
                struct adm_reply *out);

/* As adm_request(), to the first name server that answers. */
int adm_namesrv_request(struct adm *a, const struct proto_reply *req, struct adm_reply *out);

/* Name server ---------------------------------------------------------------------- */

struct adm_addr {
    int64_t id; /* 0 master, > 0 slave */
    char *addr;
};

struct adm_broker {
    char *cluster, *name;
    struct adm_addr *addrs; /* sorted by id */
    size_t naddrs;
};

struct adm_queue_data {
    char *broker;
    int32_t read, write, perm, sysflag;
};

struct adm_route {
    struct adm_broker *brokers; /* sorted by name */
    size_t nbrokers;
    struct adm_queue_data *queues; /* sorted by broker name */
    size_t nqueues;
};

/*
 * GET_ROUTEINFO_BY_TOPIC. Returns 0 and a new route (adm_route_free), or
 * SPK_ENOROUTE when no name server knows <topic>.
 */
int adm_route(struct adm *a, const char *topic, struct adm_route **out);
void adm_route_free(struct adm_route *r);
/* The master address (id 0) of <b>, or NULL. */
const char *adm_broker_master(const struct adm_broker *b);
/* The queue data of broker <name> in <r>, or NULL. */
const struct adm_queue_data *adm_route_queues(const struct adm_route *r, const char *name);

/* GET_BROKER_CLUSTER_INFO: every broker group with its cluster, sorted by cluster, then name. */
struct adm_cluster {
    struct adm_broker *brokers;
    size_t nbrokers;
};

int adm_cluster_info(struct adm *a, struct adm_cluster **out);
void adm_cluster_free(struct adm_cluster *c);
/* 1 when <cluster> has at least one broker group in <c>. */
int adm_cluster_has(const struct adm_cluster *c, const char *cluster);

/* A list of strings. */
struct adm_strv {
    char **v;
    size_t n;
};

void adm_strv_free(struct adm_strv *s);

/* GET_ALL_TOPIC_LIST_FROM_NAMESERVER, sorted. */
int adm_topic_list(struct adm *a, struct adm_strv *out);

/* DELETE_TOPIC_IN_NAMESRV on every name server (<cluster> may be NULL: all of it). */
int adm_namesrv_delete_topic(struct adm *a, const char *topic, const char *cluster);

/* Broker: topics and groups --------------------------------------------------------------- */

struct adm_topic_conf {
    const char *topic;
    int32_t read, write, perm, sysflag;
    int order;
};

/* UPDATE_AND_CREATE_TOPIC (17). */
int adm_update_topic(struct adm *a, const char *addr, const struct adm_topic_conf *tc);
/* DELETE_TOPIC_IN_BROKER (215). */
int adm_delete_topic(struct adm *a, const char *addr, const char *topic);
/* QUERY_TOPIC_CONSUME_BY_WHO (300): appends the groups (no duplicates). */
int adm_topic_groups(struct adm *a, const char *addr, const char *topic, struct adm_strv *out);

struct adm_group_conf {
    const char *name;
    int consume_enable, consume_from_min, consume_broadcast, consume_orderly;
    int notify_ids_changed;
    int32_t retry_queues, retry_max;
    int64_t broker_id, which_broker_slowly;
};

/* Java's defaults for an updateSubGroup request (broadcast and from-min off). */
void adm_group_conf_defaults(struct adm_group_conf *g, const char *name);
/* UPDATE_AND_CREATE_SUBSCRIPTIONGROUP (200). */
int adm_update_group(struct adm *a, const char *addr, const struct adm_group_conf *g);

/* Broker: status and configuration ------------------------------------------------------- */

struct adm_kv {
    char *key, *val;
};

struct adm_kvs {
    struct adm_kv *v;
    size_t n;
};

void adm_kvs_free(struct adm_kvs *k);
/* The value of <key>, or NULL. */
const char *adm_kvs_get(const struct adm_kvs *k, const char *key);

/* GET_BROKER_RUNTIME_INFO (28), sorted by key. */
int adm_broker_runtime(struct adm *a, const char *addr, struct adm_kvs *out);
/* GET_BROKER_CONFIG (26), in the broker's order. */
int adm_broker_config(struct adm *a, const char *addr, struct adm_kvs *out);
/* UPDATE_BROKER_CONFIG (25) of one key. */
int adm_update_broker_config(struct adm *a, const char *addr, const char *key, const char *val);

/* Broker: queues and offsets ------------------------------------------------------------- */

struct adm_queue_stat {
    char *topic, *broker;
    int32_t qid;
    int64_t min_off, max_off, last_ts;          /* GET_TOPIC_STATS_INFO */
    int64_t broker_off, consumer_off, pull_off; /* GET_CONSUME_STATS (last_ts too) */
};

struct adm_queue_stats {
    struct adm_queue_stat *v;
    size_t n;
    double tps; /* topicPutTps or consumeTps (summed over appends) */
};

void adm_queue_stats_free(struct adm_queue_stats *s);
/* Sorts by topic, broker name, queue id (Java's MessageQueue order). */
void adm_queue_stats_sort(struct adm_queue_stats *s);

/* GET_TOPIC_STATS_INFO (202): appends one entry per queue. */
int adm_topic_stats(struct adm *a, const char *addr, const char *topic,
                    struct adm_queue_stats *out);
/* GET_CONSUME_STATS (208) of <group> (<topic> may be NULL: every topic): appends. */
int adm_consume_stats(struct adm *a, const char *addr, const char *group, const char *topic,
                      struct adm_queue_stats *out);

enum adm_offset_kind { ADM_OFF_MIN, ADM_OFF_MAX, ADM_OFF_BY_TIME };

/* GET_MIN_OFFSET (31), GET_MAX_OFFSET (30), SEARCH_OFFSET_BY_TIMESTAMP (29, <ts> in ms). */
int adm_queue_offset(struct adm *a, const char *addr, enum adm_offset_kind kind, const char *topic,
                     int32_t qid, int64_t ts, int64_t *out);

struct adm_queue_offset {
    char *broker;
    int32_t qid;
    int64_t offset;
};

struct adm_offsets {
    struct adm_queue_offset *v;
    size_t n;
    int64_t notified; /* consumers the broker told (summed over appends) */
};

void adm_offsets_free(struct adm_offsets *o);

/*
 * INVOKE_BROKER_TO_RESET_OFFSET (222): the broker moves <group>'s offsets
 * of <topic> to the first message stored at or after <ts> (-1: the end of
 * each queue), or only back when !<force>; with <qid> >= 0 only that
 * queue, and with <offset> >= 0 to that offset. Appends the new offsets.
 */
int adm_reset_offset(struct adm *a, const char *addr, const char *topic, const char *group,
                     int64_t ts, int force, int32_t qid, int64_t offset, struct adm_offsets *out);

/* Broker: connections --------------------------------------------------------------------- */

struct adm_conn {
    char *client_id, *client_addr, *language;
    int32_t version;
};

struct adm_sub {
    char *topic, *expr;
};

struct adm_conns {
    struct adm_conn *v;
    size_t n;
    struct adm_sub *subs; /* consumers only */
    size_t nsubs;
    char *consume_type, *message_model, *consume_from_where; /* consumers only; may be NULL */
};

void adm_conns_free(struct adm_conns *c);

/* GET_CONSUMER_CONNECTION_LIST (203): appends (subscriptions without duplicates). */
int adm_consumer_conns(struct adm *a, const char *addr, const char *group, struct adm_conns *out);
/* GET_PRODUCER_CONNECTION_LIST (204): appends. */
int adm_producer_conns(struct adm *a, const char *addr, const char *group, struct adm_conns *out);

/* Messages ------------------------------------------------------------------------------------ */

struct adm_prop {
    char *name, *val;
};

/* One stored-format message (PROTOCOL.md 4.1), owning copies of everything. */
struct adm_msg {
    char *topic;
    int32_t store_size, queue_id, flag, sysflag, reconsume_times;
    uint32_t body_crc;
    int64_t queue_off, phys_off, born_ts, store_ts, prepared_tx_off;
    char born_host[64], store_host[64]; /* "ip:port" */
    char offset_id[64];                 /* store host + CommitLog offset, upper-case hex */
    uint8_t *body;                      /* inflated when it was stored zlib-compressed */
    size_t body_len;
    int body_compressed; /* 1: stored compressed and inflated here; 2: compressed, left as is */
    struct adm_prop *props;
    size_t nprops;
};

struct adm_msgs {
    struct adm_msg *v;
    size_t n;
};

void adm_msgs_free(struct adm_msgs *m);

/* The last value of property <name>, or NULL. */
const char *adm_msg_prop(const struct adm_msg *m, const char *name);
/* UNIQ_KEY when present, else the offset id (what Java calls msgId). */
const char *adm_msg_id(const struct adm_msg *m);

/*
 * Decodes the stored-format records in buf[0..len) (pull, query and view
 * replies) and appends them. Pure: no I/O. Returns 0 or SPK_EFORMAT for
 * a malformed record (the ones before it are kept), or -ENOMEM.
 */
int adm_msgs_decode(const uint8_t *buf, size_t len, struct adm_msgs *out);

/*
 * Splits an offset message id (32 hex digits for IPv4, 56 for IPv6) into
 * the store address "ip:port" and the CommitLog offset. Returns 0, or
 * SPK_EFORMAT when <id> cannot be one (wrong length, not hex, port 0 or
 * above 65535), as a UNIQ_KEY id usually cannot.
 */
int adm_offset_id_decode(const char *id, char *addr, size_t addrlen, int64_t *phys_off);

/* VIEW_MESSAGE_BY_ID (33): appends the message at CommitLog offset <phys_off>. */
int adm_view_message(struct adm *a, const char *addr, int64_t phys_off, struct adm_msgs *out);

/*
 * QUERY_MESSAGE (12) by <key> on one broker, stored in [<begin>, <end>]
 * ms, at most <max_n>. With <unique> the key is a UNIQ_KEY message id.
 * Appends the messages whose topic is <topic> and whose KEYS (or
 * UNIQ_KEY) hold <key>, as Java's client filters them. Returns 0, or
 * SPK_ENOTFOUND when the broker found nothing.
 */
int adm_query_message(struct adm *a, const char *addr, const char *topic, const char *key,
                      int unique, int32_t max_n, int64_t begin, int64_t end, struct adm_msgs *out);

struct adm_pull {
    int32_t code; /* SUCCESS (found), PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY, PULL_OFFSET_MOVED */
    int64_t next_begin, min_off, max_off;
    struct adm_msgs msgs;
};

/*
 * PULL_MESSAGE (11) of up to <max_n> messages of <topic>/<qid> from queue
 * offset <offset>, as group <group> with subscription <expr> carried in
 * the request; no offset is committed and the pull is not held. The
 * messages are re-filtered by tag as Java's client does. Returns 0 for
 * the four pull outcomes (out->code says which), SPK_EBROKER otherwise.
 */
int adm_pull(struct adm *a, const char *addr, const char *group, const char *topic, int32_t qid,
             int64_t offset, int32_t max_n, const char *expr, struct adm_pull *out);
void adm_pull_free(struct adm_pull *p);

/* Helpers ----------------------------------------------------------------------------------- */

/*
 * Parses a fastjson body into a cJSON tree: bare integer keys and
 * MessageQueue objects used as keys (which become their JSON text as
 * the member name). Returns a new tree (cJSON_Delete) or NULL.
 */
struct cJSON *adm_json_parse(const void *body, size_t len);

/* The name of response code <code> ("TOPIC_NOT_EXIST"), or "code <n>". */
const char *adm_code_name(int32_t code);

#endif /* SPK_CLIENT_ADMIN_H */
