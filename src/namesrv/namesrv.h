/*
 * namesrv.h - the RocketMQ name server as a pure request processor.
 *
 * A name server keeps in memory which brokers exist, which topics each
 * master serves with how many queues, and a small key-value store, and
 * answers clients' route queries from that (PROTOCOL.md 3.2, Java's
 * RouteInfoManager and DefaultRequestProcessor). This module is that state
 * machine and nothing more: no sockets, no threads, no clock. The caller
 * owns the event loop: it hands in each decoded request with the id of the
 * connection it came on and the wall-clock time, sends the reply unless
 * the request was oneway, reports closed connections, and calls
 * namesrv_expire() periodically (Java scans every 5 s).
 *
 * Not thread-safe: one thread (the loop) makes every call.
 */
#ifndef SPK_NAMESRV_NAMESRV_H
#define SPK_NAMESRV_NAMESRV_H

#include <stddef.h>
#include <stdint.h>

struct proto_cmd;
struct proto_reply;

/* A broker that says nothing for this long is dropped (Java's default). */
#define NS_BROKER_TIMEOUT_MS 120000

/*
 * Limits on what the wire can make us hold. A request over a limit gets a
 * SYSTEM_ERROR reply naming the limit and changes nothing.
 */
#define NS_NAME_MAX 255          /* bytes in a topic, broker, cluster, address, KV key */
#define NS_KV_VALUE_MAX 65536    /* bytes in a KV value */
#define NS_KV_MAX 65536          /* KV entries over all namespaces */
#define NS_REG_TOPICS_MAX 100000 /* topics in one REGISTER_BROKER */
#define NS_TOPICS_MAX 1000000    /* topics in the route table */
#define NS_BROKERS_MAX 4096      /* broker names */
#define NS_ADDRS_MAX 256         /* addresses (broker ids) under one broker name */
#define NS_QUEUE_NUMS_MAX 65535  /* read/write queue count of a registered topic */

struct namesrv;

/* Returns 0 and a new, empty name server in *out (free with namesrv_destroy), or -ENOMEM. */
int namesrv_create(struct namesrv **out);

/* Frees <ns> and everything it holds; NULL is fine. */
void namesrv_destroy(struct namesrv *ns);

/*
 * Handles one decoded request <req> (borrowed) that arrived on connection
 * <conn_id> at wall-clock time <now_ms>. <rep> was initialised by the
 * caller with proto_reply_init(rep, 0); this fills its code, remark,
 * extFields and body, and the caller frees it. Bad input never crashes:
 * it becomes SYSTEM_ERROR (1) with a remark naming the field or limit, and
 * an unknown code becomes REQUEST_CODE_NOT_SUPPORTED (3) with the remark
 * " request type <code> not supported", as Java answers. The caller
 * decides not to send replies to oneway requests.
 */
void namesrv_handle(struct namesrv *ns, const struct proto_cmd *req, uint64_t conn_id,
                    int64_t now_ms, struct proto_reply *rep);

/*
 * Connection <conn_id> closed: every broker address whose latest
 * registration came over it is removed at once, as Java does when a broker
 * channel closes. A broker name left without addresses disappears with its
 * queue data.
 */
void namesrv_conn_closed(struct namesrv *ns, uint64_t conn_id);

/*
 * Drops every broker address whose last registration, heartbeat or data
 * version query is more than its timeout before <now_ms> (default
 * NS_BROKER_TIMEOUT_MS, or heartbeatTimeoutMillis from its registration).
 * Returns how many addresses were dropped.
 */
int namesrv_expire(struct namesrv *ns, int64_t now_ms);

/* Registered broker addresses (Java's brokerLiveTable size). */
size_t namesrv_broker_count(struct namesrv *ns);

/* Topics with queue data (Java's topicQueueTable size). */
size_t namesrv_topic_count(struct namesrv *ns);

#endif /* SPK_NAMESRV_NAMESRV_H */
