/*
 * namesrv.c - route tables and request handling of the name server
 * (see namesrv.h; PROTOCOL.md 3.2, 3.8.1, 3.8.2, 5.1, 5.9).
 *
 * Tables, with the Java RouteInfoManager table each one stands for:
 *
 *   brokers  [brokerAddrTable + brokerLiveTable]  broker name -> BrokerData:
 *            cluster, and per broker id one address with its liveness
 *            (last update, timeout, DataVersion, HA address, connection)
 *   topics   [topicQueueTable]  topic -> one QueueData per broker name
 *   kv       [KVConfigManager]  (namespace, key) -> value, in memory only
 *
 * Java's clusterAddrTable is not stored: it is the brokers grouped by
 * their cluster (INV-2), so the two can never disagree.
 *
 * Invariants:
 *   INV-1  brokers[] is sorted by name without duplicates; every broker
 *          has at least one address; its addrs[] is sorted by id, and no
 *          two of its entries share an id or an address.
 *   INV-2  A broker's cluster never changes. A registration naming
 *          another cluster is refused, so Java's clusterAddrTable (cluster
 *          -> broker names) is exactly the brokers grouped by cluster.
 *   INV-3  An address is registered under at most one broker name per
 *          cluster: (cluster, address) is the key of Java's live table,
 *          and registering it under a new name removes it from the old.
 *   INV-4  Every topic in the map has at least one queue; its q[] is
 *          sorted by broker name, one entry per broker name, and each
 *          entry points at a broker in brokers[]: a broker's queues are
 *          removed before the broker is freed.
 *   INV-5  A registration is validated completely (header, CRC, body,
 *          limits) and everything it can need allocated before the first
 *          change, so a refused one changes nothing. Only the queue data
 *          step can still fail (out of memory); it then leaves the address
 *          with dv_valid = false, so the next registration re-applies.
 *
 * Liveness differs from Java in one way: Java lists a broker in routes
 * until its 5 s scanner notices it is dead; here a route query also skips
 * addresses that are already past their timeout at the query's time.
 */
#include "namesrv/namesrv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "common/log.h"
#include "common/sbuf.h"
#include "proto/remoting.h"
#include "proto/reply.h"

/* Request codes (RocketMQ RequestCode) handled here. */
enum {
    NS_RQ_PUT_KV_CONFIG = 100,
    NS_RQ_GET_KV_CONFIG = 101,
    NS_RQ_DELETE_KV_CONFIG = 102,
    NS_RQ_REGISTER_BROKER = 103,
    NS_RQ_UNREGISTER_BROKER = 104,
    NS_RQ_GET_ROUTEINFO_BY_TOPIC = 105,
    NS_RQ_GET_BROKER_CLUSTER_INFO = 106,
    NS_RQ_WIPE_WRITE_PERM_OF_BROKER = 205,
    NS_RQ_GET_ALL_TOPIC_LIST = 206,
    NS_RQ_DELETE_TOPIC_IN_NAMESRV = 216,
    NS_RQ_GET_KVLIST_BY_NAMESPACE = 219,
    NS_RQ_GET_TOPICS_BY_CLUSTER = 224,
    NS_RQ_QUERY_DATA_VERSION = 322,
    NS_RQ_ADD_WRITE_PERM_OF_BROKER = 327,
    NS_RQ_BROKER_HEARTBEAT = 904,
};

/* Response codes (RocketMQ ResponseCode) used here. */
enum {
    NS_RS_SUCCESS = 0,
    NS_RS_SYSTEM_ERROR = 1,
    NS_RS_NOT_SUPPORTED = 3,
    NS_RS_TOPIC_NOT_EXIST = 17,
    NS_RS_QUERY_NOT_FOUND = 22,
};

#define NS_PERM_READ 4
#define NS_PERM_WRITE 2
#define NS_MASTER_ID 0

/* Clients >= V4_9_4 get route data as standard JSON (PROTOCOL.md 5.4). */
#define NS_VERSION_STD_JSON 401

/* KV namespace whose table REGISTER_BROKER returns as its body. */
#define NS_ORDER_TOPIC_CONFIG "ORDER_TOPIC_CONFIG"

#define NS_BUF (NS_NAME_MAX + 1)

/* Java's DataVersion; equal only when all three fields are. */
struct ns_dv {
    int64_t counter;
    int64_t state;
    int64_t ts;
};

/* One broker address and its liveness (Java's BrokerLiveInfo). */
struct ns_addr {
    int64_t id;
    char *addr;
    char *ha_addr;
    uint64_t conn_id; /* connection of the latest registration */
    int64_t last_ms;  /* wall clock of the latest registration/heartbeat */
    int64_t timeout_ms;
    struct ns_dv dv; /* DataVersion of the latest registration */
    bool dv_valid;   /* false: its queue data did not apply in full (INV-5) */
};

struct ns_broker {
    char *name;
    char *cluster;
    char *zone; /* __ZONE_NAME, NULL when never sent */
    bool acting_master;
    struct ns_addr *addrs;
    size_t naddrs, addrs_cap;
};

struct ns_queue {
    struct ns_broker *broker;
    int32_t read_n;
    int32_t write_n;
    int32_t perm;
    int32_t sys_flag;
};

struct ns_topic {
    char *name;
    uint64_t hash;
    struct ns_queue *q;
    size_t nq, q_cap;
};

struct ns_kv {
    char *space;
    char *key;
    char *val;
};

struct namesrv {
    struct ns_broker **brokers; /* INV-1 */
    size_t nbrokers, brokers_cap;
    struct ns_topic **tslot; /* open addressing, linear probing; tcap a power of 2 */
    size_t tcap, ntopics;
    struct ns_kv *kv; /* sorted by (space, key) */
    size_t nkv, kv_cap;
    size_t naddrs; /* addresses over all brokers */
    struct spk_log_rl warn_rl;
};

/* One topic of a REGISTER_BROKER body; <name> is borrowed from the cJSON tree. */
struct reg_topic {
    const char *name;
    int32_t read_n, write_n, perm, sys_flag;
};

struct reg_body {
    cJSON *root;
    struct ns_dv dv;
    struct reg_topic *t;
    size_t n;
};

/* ---------------------------------------------------------------- helpers */

/*
 * Returns <arr> with room for n + 1 elements of <size> bytes, growing it
 * (and *cap) if needed; NULL when out of memory, <arr> then unchanged.
 */
static void *
grow(void *arr, size_t *cap, size_t n, size_t size)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return arr;
    ncap = *cap ? *cap * 2 : 4;
    p = realloc(arr, ncap * size);
    if (p == NULL)
        return NULL;
    *cap = ncap;
    return p;
}

static bool
addr_stale(const struct ns_addr *e, int64_t now_ms)
{
    int64_t age;

    /* The caller's clock is not ours to trust: no overflow, whatever it says. */
    if (__builtin_sub_overflow(now_ms, e->last_ms, &age))
        return now_ms > e->last_ms;
    return age > e->timeout_ms;
}

static bool
dv_eq(const struct ns_dv *a, const struct ns_dv *b)
{
    return a->counter == b->counter && a->state == b->state && a->ts == b->ts;
}

static const char *
op_name(int32_t code)
{
    switch (code) {
    case NS_RQ_PUT_KV_CONFIG:
        return "PUT_KV_CONFIG";
    case NS_RQ_GET_KV_CONFIG:
        return "GET_KV_CONFIG";
    case NS_RQ_DELETE_KV_CONFIG:
        return "DELETE_KV_CONFIG";
    case NS_RQ_REGISTER_BROKER:
        return "REGISTER_BROKER";
    case NS_RQ_UNREGISTER_BROKER:
        return "UNREGISTER_BROKER";
    case NS_RQ_GET_ROUTEINFO_BY_TOPIC:
        return "GET_ROUTEINFO_BY_TOPIC";
    case NS_RQ_WIPE_WRITE_PERM_OF_BROKER:
        return "WIPE_WRITE_PERM_OF_BROKER";
    case NS_RQ_DELETE_TOPIC_IN_NAMESRV:
        return "DELETE_TOPIC_IN_NAMESRV";
    case NS_RQ_GET_KVLIST_BY_NAMESPACE:
        return "GET_KVLIST_BY_NAMESPACE";
    case NS_RQ_GET_TOPICS_BY_CLUSTER:
        return "GET_TOPICS_BY_CLUSTER";
    case NS_RQ_QUERY_DATA_VERSION:
        return "QUERY_DATA_VERSION";
    case NS_RQ_ADD_WRITE_PERM_OF_BROKER:
        return "ADD_WRITE_PERM_OF_BROKER";
    case NS_RQ_BROKER_HEARTBEAT:
        return "BROKER_HEARTBEAT";
    default:
        return "request";
    }
}

/* Turns <rep> into an error reply: <code>, the formatted remark, no extFields, no body. */
static void reply_err(struct proto_reply *rep, int32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_err(struct proto_reply *rep, int32_t code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    proto_reply_clear_ext(rep);
    proto_reply_body(rep, NULL, 0);
    rep->code = code;
    proto_reply_remark(rep, "%s", msg);
}

static void
reply_oom(const struct proto_cmd *req, struct proto_reply *rep)
{
    reply_err(rep, NS_RS_SYSTEM_ERROR, "%s: name server out of memory", op_name(req->code));
}

/* Sets <rep>'s body to the text of <b> (consumed), or answers out of memory. */
static void
reply_json(const struct proto_cmd *req, struct proto_reply *rep, struct sbuf *b)
{
    size_t len;
    char *p = sb_detach(b, &len);

    if (p == NULL) {
        reply_oom(req, rep);
        return;
    }
    rep->code = NS_RS_SUCCESS;
    proto_reply_body(rep, p, len);
}

/* The value of extFields <key> as a view of *len bytes; NULL when absent. */
static const char *
ext_find(const struct proto_cmd *req, const char *key, size_t *len)
{
    size_t klen = strlen(key);

    for (size_t i = 0; i < req->next; i++) {
        const struct proto_ext *e = &req->ext[i];

        if (e->key != NULL && e->val != NULL && e->key_len == klen &&
            memcmp(e->key, key, klen) == 0) {
            *len = e->val_len;
            return e->val;
        }
    }
    return NULL;
}

/*
 * Copies extFields <key> into <buf> (NS_BUF bytes) as a C string. Returns
 * 1 when present, 0 when absent (<buf> = "", an error if <required>), -1
 * with an error reply when absent but required, empty but required,
 * longer than NS_NAME_MAX or holding a NUL byte.
 */
static int
ext_name(const struct proto_cmd *req, const char *key, bool required, char *buf,
         struct proto_reply *rep)
{
    size_t len;
    const char *v = ext_find(req, key, &len);

    buf[0] = '\0';
    if (v == NULL || (len == 0 && required)) {
        if (!required)
            return 0;
        reply_err(rep, NS_RS_SYSTEM_ERROR, "%s: missing or empty extFields %s", op_name(req->code),
                  key);
        return -1;
    }
    if (len > NS_NAME_MAX || memchr(v, '\0', len) != NULL) {
        reply_err(rep, NS_RS_SYSTEM_ERROR, "%s: extFields %s must be at most %d bytes without NUL",
                  op_name(req->code), key, NS_NAME_MAX);
        return -1;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    return 1;
}

/*
 * Parses s[0..len) as a whole decimal integer in [lo, hi] the way Java's
 * Long.parseLong does (optional sign, digits, nothing else). Returns 0 or -1.
 */
static int
parse_i64(const char *s, size_t len, int64_t lo, int64_t hi, int64_t *out)
{
    char buf[32], *end;
    long long v;

    if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (!(buf[0] == '-' || buf[0] == '+' || (buf[0] >= '0' && buf[0] <= '9')))
        return -1;
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || end != buf + len || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/*
 * Reads extFields <key> as an integer in [lo, hi] into *out; when absent
 * *out = <def>, or an error if <required>. Returns 0, or -1 with an error
 * reply naming the field.
 */
static int
ext_int(const struct proto_cmd *req, const char *key, bool required, int64_t lo, int64_t hi,
        int64_t def, int64_t *out, struct proto_reply *rep)
{
    size_t len;
    const char *v = ext_find(req, key, &len);

    if (v == NULL) {
        if (required) {
            reply_err(rep, NS_RS_SYSTEM_ERROR, "%s: missing extFields %s", op_name(req->code), key);
            return -1;
        }
        *out = def;
        return 0;
    }
    if (parse_i64(v, len, lo, hi, out) != 0) {
        reply_err(rep, NS_RS_SYSTEM_ERROR,
                  "%s: extFields %s must be an integer in [%" PRId64 ", %" PRId64 "], not \"%.*s\"",
                  op_name(req->code), key, lo, hi, (int)(len > 64 ? 64 : len), v);
        return -1;
    }
    return 0;
}

/* extFields <key> as Java's Boolean.parseBoolean reads it: true only for "true", any case. */
static bool
ext_bool(const struct proto_cmd *req, const char *key)
{
    size_t len;
    const char *v = ext_find(req, key, &len);

    return v != NULL && len == 4 && strncasecmp(v, "true", 4) == 0;
}

/* Parses body[0..len) as one JSON value followed by nothing but whitespace; NULL if not. */
static cJSON *
json_parse(const uint8_t *body, size_t len)
{
    const char *end = NULL, *stop = (const char *)body + len;
    cJSON *root;

    if (body == NULL || len == 0)
        return NULL;
    root = cJSON_ParseWithLengthOpts((const char *)body, len, &end, 0);
    if (root == NULL)
        return NULL;
    for (; end != NULL && end < stop; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

/*
 * Reads member <key> of object <obj> as an integer in [lo, hi]: a JSON
 * number with no fraction, or a string of digits (fastjson accepts both).
 * Absent or null leaves *out alone. Returns 0 or -1.
 *
 * cJSON keeps numbers as doubles, so integers beyond 2^53 (no real
 * DataVersion counter or timestamp) lose their low bits.
 */
static int
json_int(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    int64_t v;
    double d;

    if (it == NULL || cJSON_IsNull(it))
        return 0;
    if (cJSON_IsString(it))
        return parse_i64(it->valuestring, strlen(it->valuestring), lo, hi, out);
    if (!cJSON_IsNumber(it))
        return -1;
    d = it->valuedouble;
    if (!(d >= -0x1p63 && d < 0x1p63))
        return -1;
    v = (int64_t)d;
    if ((double)v != d || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/*
 * Reads a DataVersion object <o> into *dv. Missing fields take Java's
 * field defaults: counter 0, stateVersion 0, timestamp = now (the
 * DataVersion constructor's). Returns 0 or -1.
 */
static int
parse_dv(const cJSON *o, int64_t now_ms, struct ns_dv *dv)
{
    dv->counter = 0;
    dv->state = 0;
    dv->ts = now_ms;
    if (o == NULL || cJSON_IsNull(o))
        return 0;
    if (!cJSON_IsObject(o))
        return -1;
    if (json_int(o, "counter", INT64_MIN, INT64_MAX, &dv->counter) != 0 ||
        json_int(o, "stateVersion", INT64_MIN, INT64_MAX, &dv->state) != 0 ||
        json_int(o, "timestamp", INT64_MIN, INT64_MAX, &dv->ts) != 0)
        return -1;
    return 0;
}

static void
json_dv(struct sbuf *b, const struct ns_dv *dv)
{
    sb_printf(b, "{\"counter\":%" PRId64 ",\"stateVersion\":%" PRId64 ",\"timestamp\":%" PRId64 "}",
              dv->counter, dv->state, dv->ts);
}

/* ----------------------------------------------------------------- topics */

static uint64_t
name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* Slot of topic <name> (hash <h>), or the empty slot where it would go; tcap > 0. */
static size_t
topic_slot(const struct namesrv *ns, const char *name, uint64_t h)
{
    size_t mask = ns->tcap - 1, i = (size_t)h & mask;

    while (ns->tslot[i] != NULL &&
           (ns->tslot[i]->hash != h || strcmp(ns->tslot[i]->name, name) != 0))
        i = (i + 1) & mask;
    return i;
}

static struct ns_topic *
topic_find(const struct namesrv *ns, const char *name)
{
    if (ns->tcap == 0)
        return NULL;
    return ns->tslot[topic_slot(ns, name, name_hash(name))];
}

/* Makes room in the map for one more topic (load factor <= 3/4). 0 or -ENOMEM. */
static int
topic_map_reserve(struct namesrv *ns)
{
    struct ns_topic **slots;
    size_t ncap, mask;

    if ((ns->ntopics + 1) * 4 <= ns->tcap * 3)
        return 0;
    ncap = ns->tcap ? ns->tcap * 2 : 64;
    slots = calloc(ncap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    mask = ncap - 1;
    for (size_t i = 0; i < ns->tcap; i++) {
        struct ns_topic *t = ns->tslot[i];
        size_t j;

        if (t == NULL)
            continue;
        for (j = (size_t)t->hash & mask; slots[j] != NULL; j = (j + 1) & mask)
            ;
        slots[j] = t;
    }
    free(ns->tslot);
    ns->tslot = slots;
    ns->tcap = ncap;
    return 0;
}

/* Empties slot <i> by backward shift, so lookups need no tombstones. */
static void
topic_map_del(struct namesrv *ns, size_t i)
{
    size_t mask = ns->tcap - 1, j = i;

    for (;;) {
        size_t home;

        j = (j + 1) & mask;
        if (ns->tslot[j] == NULL)
            break;
        home = (size_t)ns->tslot[j]->hash & mask;
        /* The entry stays when its home lies cyclically in (i, j]: the hole is not on its path. */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        ns->tslot[i] = ns->tslot[j];
        i = j;
    }
    ns->tslot[i] = NULL;
    ns->ntopics--;
}

static void
topic_free(struct ns_topic *t)
{
    if (t == NULL)
        return;
    free(t->name);
    free(t->q);
    free(t);
}

static void
topic_delete(struct namesrv *ns, struct ns_topic *t)
{
    topic_map_del(ns, topic_slot(ns, t->name, t->hash));
    topic_free(t);
}

/* The index of broker <name>'s queue in <t>, or -1 with *pos = where it belongs. */
static ptrdiff_t
queue_index(const struct ns_topic *t, const char *name, size_t *pos)
{
    size_t lo = 0, hi = t->nq;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->q[mid].broker->name, name);

        if (c == 0)
            return (ptrdiff_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos != NULL)
        *pos = lo;
    return -1;
}

static void
queue_remove(struct ns_topic *t, size_t i)
{
    memmove(&t->q[i], &t->q[i + 1], (t->nq - i - 1) * sizeof(t->q[0]));
    t->nq--;
}

/* Java's createAndUpdateQueueData: topic <rt> gets (or updates) a queue of broker <b>. */
static int
queue_upsert(struct namesrv *ns, struct ns_broker *b, const struct reg_topic *rt)
{
    struct ns_queue nq = {b, rt->read_n, rt->write_n, rt->perm, rt->sys_flag};
    struct ns_topic *t = topic_find(ns, rt->name);
    ptrdiff_t qi;
    size_t pos = 0;
    void *p;

    if (t == NULL) {
        if (ns->ntopics >= NS_TOPICS_MAX || topic_map_reserve(ns) != 0)
            return -ENOMEM;
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        t->name = strdup(rt->name);
        t->q = malloc(sizeof(*t->q));
        if (t->name == NULL || t->q == NULL) {
            topic_free(t);
            return -ENOMEM;
        }
        t->hash = name_hash(t->name);
        t->q[0] = nq;
        t->nq = t->q_cap = 1;
        ns->tslot[topic_slot(ns, t->name, t->hash)] = t;
        ns->ntopics++;
        return 0;
    }
    qi = queue_index(t, b->name, &pos);
    if (qi >= 0) {
        t->q[qi] = nq;
        return 0;
    }
    p = grow(t->q, &t->q_cap, t->nq, sizeof(*t->q));
    if (p == NULL)
        return -ENOMEM;
    t->q = p;
    memmove(&t->q[pos + 1], &t->q[pos], (t->nq - pos) * sizeof(t->q[0]));
    t->q[pos] = nq;
    t->nq++;
    return 0;
}

/*
 * Calls <fn> on every topic and deletes the topics it leaves without
 * queues. Allocation-free, so it cannot fail halfway. A deletion shifts
 * later entries back, and one may land in a slot already visited or be
 * visited twice, so <fn> must be idempotent.
 */
static void
topics_sweep(struct namesrv *ns, void (*fn)(struct ns_topic *, const void *), const void *arg)
{
    size_t i = 0;

    while (i < ns->tcap) {
        struct ns_topic *t = ns->tslot[i];

        if (t == NULL) {
            i++;
            continue;
        }
        fn(t, arg);
        if (t->nq == 0) {
            topic_map_del(ns, i);
            topic_free(t);
            continue; /* slot i now holds a shifted entry, or nothing */
        }
        i++;
    }
}

static void
sweep_broker(struct ns_topic *t, const void *arg)
{
    const struct ns_broker *b = arg;
    ptrdiff_t qi = queue_index(t, b->name, NULL);

    if (qi >= 0)
        queue_remove(t, (size_t)qi);
}

static int
cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---------------------------------------------------------------- brokers */

/* Index of broker <name>, or -1 with *pos = where it belongs. */
static ptrdiff_t
broker_index(const struct namesrv *ns, const char *name, size_t *pos)
{
    size_t lo = 0, hi = ns->nbrokers;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ns->brokers[mid]->name, name);

        if (c == 0)
            return (ptrdiff_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos != NULL)
        *pos = lo;
    return -1;
}

static struct ns_broker *
broker_find(const struct namesrv *ns, const char *name)
{
    ptrdiff_t i = broker_index(ns, name, NULL);

    return i < 0 ? NULL : ns->brokers[i];
}

static void
addr_free(struct ns_addr *e)
{
    free(e->addr);
    free(e->ha_addr);
}

static void
broker_free(struct ns_broker *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->naddrs; i++)
        addr_free(&b->addrs[i]);
    free(b->addrs);
    free(b->name);
    free(b->cluster);
    free(b->zone);
    free(b);
}

/* A new broker with room for 4 addresses and none in use; NULL when out of memory. */
static struct ns_broker *
broker_new(const char *name, const char *cluster)
{
    struct ns_broker *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    b->name = strdup(name);
    b->cluster = strdup(cluster);
    b->addrs = malloc(4 * sizeof(*b->addrs));
    if (b->name == NULL || b->cluster == NULL || b->addrs == NULL) {
        broker_free(b);
        return NULL;
    }
    b->addrs_cap = 4;
    return b;
}

/* Index of the entry of <b> with id <id>, or -1 with *pos = where it belongs. */
static ptrdiff_t
addr_index_by_id(const struct ns_broker *b, int64_t id, size_t *pos)
{
    size_t i;

    for (i = 0; i < b->naddrs && b->addrs[i].id < id; i++)
        ;
    if (pos != NULL)
        *pos = i;
    return i < b->naddrs && b->addrs[i].id == id ? (ptrdiff_t)i : -1;
}

static ptrdiff_t
addr_index_by_addr(const struct ns_broker *b, const char *addr)
{
    for (size_t i = 0; i < b->naddrs; i++)
        if (strcmp(b->addrs[i].addr, addr) == 0)
            return (ptrdiff_t)i;
    return -1;
}

/* The broker of <cluster> holding <addr> (INV-3: at most one), its index in *idx; or NULL. */
static struct ns_broker *
addr_locate(const struct namesrv *ns, const char *cluster, const char *addr, size_t *idx)
{
    for (size_t i = 0; i < ns->nbrokers; i++) {
        struct ns_broker *b = ns->brokers[i];
        ptrdiff_t j;

        if (strcmp(b->cluster, cluster) != 0)
            continue;
        j = addr_index_by_addr(b, addr);
        if (j >= 0) {
            *idx = (size_t)j;
            return b;
        }
    }
    return NULL;
}

/*
 * Removes address <j> of broker <b>. When it was the last one the broker
 * goes too, with its queue data (topics left without queues disappear),
 * as Java's unregisterBroker does. Returns true when <b> was freed.
 */
static bool
broker_drop_addr(struct namesrv *ns, struct ns_broker *b, size_t j)
{
    ptrdiff_t bi;

    addr_free(&b->addrs[j]);
    memmove(&b->addrs[j], &b->addrs[j + 1], (b->naddrs - j - 1) * sizeof(b->addrs[0]));
    b->naddrs--;
    ns->naddrs--;
    if (b->naddrs > 0)
        return false;
    topics_sweep(ns, sweep_broker, b); /* INV-4: no queue may outlive its broker */
    bi = broker_index(ns, b->name, NULL);
    if (bi >= 0) {
        memmove(&ns->brokers[bi], &ns->brokers[bi + 1],
                (ns->nbrokers - (size_t)bi - 1) * sizeof(ns->brokers[0]));
        ns->nbrokers--;
    }
    spk_log(SPK_LOG_INFO, "namesrv", "broker %s of cluster %s removed: no address left", b->name,
            b->cluster);
    broker_free(b);
    return true;
}

/*
 * Drops every address for which <pred> is true, with the consequences of
 * broker_drop_addr(). <why> goes to the log. Returns how many.
 */
static int
drop_where(struct namesrv *ns, bool (*pred)(const struct ns_addr *, const void *), const void *arg,
           const char *why)
{
    size_t i = 0;
    int n = 0;

    while (i < ns->nbrokers) {
        struct ns_broker *b = ns->brokers[i];
        bool freed = false;
        size_t j = 0;

        while (j < b->naddrs) {
            if (!pred(&b->addrs[j], arg)) {
                j++;
                continue;
            }
            spk_log(SPK_LOG_WARN, "namesrv", "broker %s id %" PRId64 " at %s removed: %s", b->name,
                    b->addrs[j].id, b->addrs[j].addr, why);
            n++;
            if (broker_drop_addr(ns, b, j)) {
                freed = true;
                break;
            }
        }
        if (!freed)
            i++;
    }
    return n;
}

/* ------------------------------------------------------------------- JSON */

/*
 * Writes BrokerData <b>. brokerAddrs keys are written bare ({0:"a"}) as
 * plain fastjson does, or quoted ({"0":"a"}) when <quoted>; with <now_ms>
 * >= 0 addresses already past their timeout are left out.
 */
static void
json_broker(struct sbuf *sb, const struct ns_broker *b, bool quoted, int64_t now_ms)
{
    sb_puts(sb, "{\"brokerAddrs\":{");
    for (size_t i = 0; i < b->naddrs; i++) {
        const struct ns_addr *e = &b->addrs[i];

        if (now_ms >= 0 && addr_stale(e, now_ms))
            continue;
        sb_printf(sb, quoted ? "\"%" PRId64 "\":" : "%" PRId64 ":", e->id);
        sb_json_cstr(sb, e->addr);
        sb_putc(sb, ',');
    }
    sb_unput(sb, ',');
    sb_puts(sb, "},\"brokerName\":");
    sb_json_cstr(sb, b->name);
    sb_puts(sb, ",\"cluster\":");
    sb_json_cstr(sb, b->cluster);
    sb_puts(sb,
            b->acting_master ? ",\"enableActingMaster\":true" : ",\"enableActingMaster\":false");
    if (b->zone != NULL) {
        sb_puts(sb, ",\"zoneName\":");
        sb_json_cstr(sb, b->zone);
    }
    sb_putc(sb, '}');
}

static bool
broker_has_live_addr(const struct ns_broker *b, int64_t now_ms)
{
    for (size_t i = 0; i < b->naddrs; i++)
        if (!addr_stale(&b->addrs[i], now_ms))
            return true;
    return false;
}

/* {"topicList":[...]} of the topics for which <keep> is true (NULL: all), sorted. */
static void
reply_topic_list(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep,
                 bool (*keep)(const struct ns_topic *, const void *), const void *arg)
{
    struct sbuf sb = SBUF_INIT;
    const char **names = NULL;
    size_t n = 0;

    if (ns->ntopics > 0) {
        names = malloc(ns->ntopics * sizeof(*names));
        if (names == NULL) {
            reply_oom(req, rep);
            return;
        }
    }
    for (size_t i = 0; i < ns->tcap; i++)
        if (ns->tslot[i] != NULL && (keep == NULL || keep(ns->tslot[i], arg)))
            names[n++] = ns->tslot[i]->name;
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str_ptr);
    sb_puts(&sb, "{\"topicList\":[");
    for (size_t i = 0; i < n; i++) {
        sb_json_cstr(&sb, names[i]);
        sb_putc(&sb, ',');
    }
    sb_unput(&sb, ',');
    sb_puts(&sb, "]}");
    free(names);
    reply_json(req, rep, &sb);
}

/* ---------------------------------------------------------------- KV store */

static int
kv_cmp(const char *space_a, const char *key_a, const char *space_b, const char *key_b)
{
    int c = strcmp(space_a, space_b);

    return c != 0 ? c : strcmp(key_a, key_b);
}

/* Index of (space, key), or -1 with *pos = where it belongs. */
static ptrdiff_t
kv_index(const struct namesrv *ns, const char *space, const char *key, size_t *pos)
{
    size_t lo = 0, hi = ns->nkv;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = kv_cmp(ns->kv[mid].space, ns->kv[mid].key, space, key);

        if (c == 0)
            return (ptrdiff_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos != NULL)
        *pos = lo;
    return -1;
}

/* The entries of namespace <space> are kv[*first .. *first + count); returns count. */
static size_t
kv_range(const struct namesrv *ns, const char *space, size_t *first)
{
    size_t i;
    ptrdiff_t k = kv_index(ns, space, "", first); /* "" sorts before every key */

    if (k >= 0)
        *first = (size_t)k;
    for (i = *first; i < ns->nkv && strcmp(ns->kv[i].space, space) == 0; i++)
        ;
    return i - *first;
}

/* KVTable {"table":{...}} of <space> into <sb>; false when the namespace is empty. */
static bool
json_kv_table(const struct namesrv *ns, const char *space, struct sbuf *sb)
{
    size_t first, n = kv_range(ns, space, &first);

    if (n == 0)
        return false;
    sb_puts(sb, "{\"table\":{");
    for (size_t i = first; i < first + n; i++) {
        sb_json_cstr(sb, ns->kv[i].key);
        sb_putc(sb, ':');
        sb_json_cstr(sb, ns->kv[i].val);
        sb_putc(sb, ',');
    }
    sb_unput(sb, ',');
    sb_puts(sb, "}}");
    return true;
}

static void
do_put_kv(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    char space[NS_BUF], key[NS_BUF], *val;
    const char *v;
    size_t vlen, pos;
    ptrdiff_t i;
    void *p;

    if (ext_name(req, "namespace", true, space, rep) < 0 ||
        ext_name(req, "key", true, key, rep) < 0)
        return;
    v = ext_find(req, "value", &vlen);
    if (v == NULL) {
        reply_err(rep, NS_RS_SYSTEM_ERROR, "PUT_KV_CONFIG: missing extFields value");
        return;
    }
    if (vlen > NS_KV_VALUE_MAX || memchr(v, '\0', vlen) != NULL) {
        reply_err(rep, NS_RS_SYSTEM_ERROR,
                  "PUT_KV_CONFIG: extFields value must be at most %d bytes without NUL",
                  NS_KV_VALUE_MAX);
        return;
    }
    val = strndup(v, vlen);
    if (val == NULL) {
        reply_oom(req, rep);
        return;
    }
    i = kv_index(ns, space, key, &pos);
    if (i >= 0) {
        free(ns->kv[i].val);
        ns->kv[i].val = val;
        rep->code = NS_RS_SUCCESS;
        return;
    }
    if (ns->nkv >= NS_KV_MAX) {
        free(val);
        reply_err(rep, NS_RS_SYSTEM_ERROR, "PUT_KV_CONFIG: already %d entries, the limit",
                  NS_KV_MAX);
        return;
    }
    p = grow(ns->kv, &ns->kv_cap, ns->nkv, sizeof(*ns->kv));
    if (p == NULL) {
        free(val);
        reply_oom(req, rep);
        return;
    }
    ns->kv = p;
    {
        struct ns_kv e = {strdup(space), strdup(key), val};

        if (e.space == NULL || e.key == NULL) {
            free(e.space);
            free(e.key);
            free(val);
            reply_oom(req, rep);
            return;
        }
        memmove(&ns->kv[pos + 1], &ns->kv[pos], (ns->nkv - pos) * sizeof(ns->kv[0]));
        ns->kv[pos] = e;
        ns->nkv++;
    }
    rep->code = NS_RS_SUCCESS;
}

static void
do_get_kv(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    char space[NS_BUF], key[NS_BUF];
    ptrdiff_t i;

    if (ext_name(req, "namespace", true, space, rep) < 0 ||
        ext_name(req, "key", true, key, rep) < 0)
        return;
    i = kv_index(ns, space, key, NULL);
    if (i < 0) {
        reply_err(rep, NS_RS_QUERY_NOT_FOUND, "No config item, Namespace: %s Key: %s", space, key);
        return;
    }
    rep->code = NS_RS_SUCCESS;
    proto_reply_ext(rep, "value", "%s", ns->kv[i].val);
}

static void
do_delete_kv(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    char space[NS_BUF], key[NS_BUF];
    ptrdiff_t i;

    if (ext_name(req, "namespace", true, space, rep) < 0 ||
        ext_name(req, "key", true, key, rep) < 0)
        return;
    i = kv_index(ns, space, key, NULL);
    if (i >= 0) {
        free(ns->kv[i].space);
        free(ns->kv[i].key);
        free(ns->kv[i].val);
        memmove(&ns->kv[i], &ns->kv[i + 1], (ns->nkv - (size_t)i - 1) * sizeof(ns->kv[0]));
        ns->nkv--;
    }
    rep->code = NS_RS_SUCCESS;
}

static void
do_kv_list(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    struct sbuf sb = SBUF_INIT;
    char space[NS_BUF];

    if (ext_name(req, "namespace", true, space, rep) < 0)
        return;
    if (!json_kv_table(ns, space, &sb)) {
        sb_free(&sb);
        reply_err(rep, NS_RS_QUERY_NOT_FOUND, "No config item, Namespace: %s", space);
        return;
    }
    reply_json(req, rep, &sb);
}

/* --------------------------------------------------------------- register */

/*
 * Decodes a REGISTER_BROKER body into *rb: a RegisterBrokerBody
 * {"topicConfigSerializeWrapper":{...},"filterServerList":[...]}, a bare
 * TopicConfigSerializeWrapper {"dataVersion":..,"topicConfigTable":..}
 * (brokers older than V3_0_11), or nothing (DataVersion 0/0/0, no topics,
 * as Java does for an absent body). Returns 0, or -1 with a sentence in <err>.
 */
static int
parse_register_body(const uint8_t *body, size_t len, int64_t now_ms, struct reg_body *rb, char *err,
                    size_t errlen)
{
    const cJSON *w, *tct, *it;
    size_t n = 0;

    memset(rb, 0, sizeof(*rb));
    if (body == NULL || len == 0)
        return 0;
    rb->root = json_parse(body, len);
    if (rb->root == NULL || !cJSON_IsObject(rb->root)) {
        /* 5.x brokers with compressedRegister=true deflate the body but still send
         * compressed=false. */
        snprintf(err, errlen, "REGISTER_BROKER: body is not a JSON object%s",
                 body[0] == 0x78 ? " (it looks zlib-compressed: set compressedRegister=false on "
                                   "the broker)"
                                 : "");
        return -1;
    }
    w = cJSON_GetObjectItemCaseSensitive(rb->root, "topicConfigSerializeWrapper");
    if (w == NULL && (cJSON_GetObjectItemCaseSensitive(rb->root, "topicConfigTable") != NULL ||
                      cJSON_GetObjectItemCaseSensitive(rb->root, "dataVersion") != NULL))
        w = rb->root;
    if (w != NULL && cJSON_IsNull(w))
        w = NULL;
    if (w != NULL && !cJSON_IsObject(w)) {
        snprintf(err, errlen, "REGISTER_BROKER: topicConfigSerializeWrapper is not an object");
        return -1;
    }
    if (parse_dv(w ? cJSON_GetObjectItemCaseSensitive(w, "dataVersion") : NULL, now_ms, &rb->dv)) {
        snprintf(err, errlen,
                 "REGISTER_BROKER: dataVersion must be an object of integers "
                 "counter, stateVersion, timestamp");
        return -1;
    }
    tct = w ? cJSON_GetObjectItemCaseSensitive(w, "topicConfigTable") : NULL;
    if (tct == NULL || cJSON_IsNull(tct))
        return 0;
    if (!cJSON_IsObject(tct)) {
        snprintf(err, errlen, "REGISTER_BROKER: topicConfigTable is not an object");
        return -1;
    }
    cJSON_ArrayForEach(it, tct)
    {
        if (++n > NS_REG_TOPICS_MAX) {
            snprintf(err, errlen, "REGISTER_BROKER: more than %d topics in one registration",
                     NS_REG_TOPICS_MAX);
            return -1;
        }
    }
    rb->t = calloc(n ? n : 1, sizeof(*rb->t));
    if (rb->t == NULL) {
        snprintf(err, errlen, "REGISTER_BROKER: name server out of memory");
        return -1;
    }
    cJSON_ArrayForEach(it, tct)
    {
        struct reg_topic *t = &rb->t[rb->n];
        const cJSON *tn = cJSON_GetObjectItemCaseSensitive(it, "topicName");
        /* TopicConfig's field defaults, for fields the broker left out. */
        int64_t r = 16, wq = 16, perm = 6, sys = 0;
        const char *key = it->string ? it->string : "";

        if (!cJSON_IsObject(it)) {
            snprintf(err, errlen, "REGISTER_BROKER: topic config of \"%.64s\" is not an object",
                     key);
            return -1;
        }
        t->name = cJSON_IsString(tn) ? tn->valuestring : key;
        if (t->name[0] == '\0' || strlen(t->name) > NS_NAME_MAX) {
            snprintf(err, errlen, "REGISTER_BROKER: topic name \"%.64s\" must be 1 to %d bytes",
                     t->name, NS_NAME_MAX);
            return -1;
        }
        if (json_int(it, "readQueueNums", 0, NS_QUEUE_NUMS_MAX, &r) != 0 ||
            json_int(it, "writeQueueNums", 0, NS_QUEUE_NUMS_MAX, &wq) != 0 ||
            json_int(it, "perm", INT32_MIN, INT32_MAX, &perm) != 0 ||
            json_int(it, "topicSysFlag", INT32_MIN, INT32_MAX, &sys) != 0) {
            snprintf(err, errlen,
                     "REGISTER_BROKER: topic \"%.64s\": readQueueNums and writeQueueNums must be "
                     "integers in [0, %d], perm and topicSysFlag 32-bit integers",
                     t->name, NS_QUEUE_NUMS_MAX);
            return -1;
        }
        t->read_n = (int32_t)r;
        t->write_n = (int32_t)wq;
        t->perm = (int32_t)perm;
        t->sys_flag = (int32_t)sys;
        rb->n++;
    }
    return 0;
}

static void
reg_body_free(struct reg_body *rb)
{
    cJSON_Delete(rb->root);
    free(rb->t);
}

/*
 * REGISTER_BROKER (Java RouteInfoManager.registerBroker): the broker name
 * joins its cluster, the address takes its id (after leaving any other id
 * or broker name it had, INV-3), its liveness is refreshed, and a master's
 * topic configs become queue data when this is the address's first
 * registration, its DataVersion changed, or the topic has no queue of this
 * broker yet (PROTOCOL.md 5.9). Steps are ordered by INV-5.
 */
static void
do_register(struct namesrv *ns, const struct proto_cmd *req, uint64_t conn_id, int64_t now_ms,
            struct proto_reply *rep)
{
    char name[NS_BUF], addr[NS_BUF], cluster[NS_BUF], ha[NS_BUF], zone[NS_BUF], err[512];
    int64_t id = 0, timeout = NS_BROKER_TIMEOUT_MS, crc = 0;
    int has_zone = 0;
    struct reg_body rb;
    struct ns_broker *b, *nb = NULL, *ob;
    struct ns_addr *e;
    char *addr_s = NULL, *ha_s = NULL, *zone_s = NULL;
    bool first = false, changed;
    size_t oj = 0, pos = 0;
    ptrdiff_t j;

    memset(&rb, 0, sizeof(rb));
    if (ext_name(req, "brokerName", true, name, rep) < 0 ||
        ext_name(req, "brokerAddr", true, addr, rep) < 0 ||
        ext_name(req, "clusterName", true, cluster, rep) < 0 ||
        ext_int(req, "brokerId", true, INT64_MIN, INT64_MAX, 0, &id, rep) < 0 ||
        /* Java only logs a missing haServerAddr (it is unused until a slave asks). */
        ext_name(req, "haServerAddr", false, ha, rep) < 0 ||
        ext_int(req, "heartbeatTimeoutMillis", false, 1, INT64_MAX / 4, NS_BROKER_TIMEOUT_MS,
                &timeout, rep) < 0 ||
        ext_int(req, "bodyCrc32", false, INT32_MIN, INT32_MAX, 0, &crc, rep) < 0 ||
        (has_zone = ext_name(req, "__ZONE_NAME", false, zone, rep)) < 0)
        return;

    if (crc != 0) {
        uLong c = crc32(0L, Z_NULL, 0);

        /* zlib takes uInt lengths: feed it in pieces (bodies are < 16 MiB anyway). */
        for (size_t off = 0; req->body != NULL && off < req->body_len;) {
            size_t piece = req->body_len - off > (1u << 30) ? (1u << 30) : req->body_len - off;

            c = crc32(c, req->body + off, (uInt)piece);
            off += piece;
        }
        if ((int64_t)(c & 0x7FFFFFFF) != crc) {
            spk_log_ratelimited(&ns->warn_rl, 10000, SPK_LOG_WARN, "namesrv",
                                "REGISTER_BROKER from %s: body CRC32 %lu, header says %" PRId64,
                                addr, (unsigned long)(c & 0x7FFFFFFF), crc);
            reply_err(rep, NS_RS_SYSTEM_ERROR, "crc32 not match");
            return;
        }
    }
    /*
     * The compressed form (deflated DataVersion, per-topic text lines,
     * filter servers, 5.x mapping section) is refused: Java brokers send it
     * only with compressedRegister=true, which is off by default.
     */
    if (ext_bool(req, "compressed")) {
        reply_err(rep, NS_RS_SYSTEM_ERROR,
                  "REGISTER_BROKER: compressed bodies are not supported by this name server; set "
                  "compressedRegister=false on the broker");
        return;
    }
    if (parse_register_body(req->body, req->body_len, now_ms, &rb, err, sizeof(err)) != 0) {
        spk_log_ratelimited(&ns->warn_rl, 10000, SPK_LOG_WARN, "namesrv", "%s (from %s)", err,
                            addr);
        reply_err(rep, NS_RS_SYSTEM_ERROR, "%s", err);
        goto done;
    }

    /* Checks against the tables: nothing has changed yet (INV-5). */
    b = broker_find(ns, name);
    if (b != NULL && strcmp(b->cluster, cluster) != 0) {
        reply_err(rep, NS_RS_SYSTEM_ERROR,
                  "REGISTER_BROKER: broker %s is registered in cluster %s, not %s; it can move "
                  "only after all its addresses unregister or expire",
                  name, b->cluster, cluster);
        goto done;
    }
    if (b == NULL && ns->nbrokers >= NS_BROKERS_MAX) {
        reply_err(rep, NS_RS_SYSTEM_ERROR, "REGISTER_BROKER: already %d broker names, the limit",
                  NS_BROKERS_MAX);
        goto done;
    }
    if (b != NULL && b->naddrs >= NS_ADDRS_MAX && addr_index_by_id(b, id, NULL) < 0 &&
        addr_index_by_addr(b, addr) < 0) {
        reply_err(rep, NS_RS_SYSTEM_ERROR, "REGISTER_BROKER: broker %s already has %d addresses",
                  name, NS_ADDRS_MAX);
        goto done;
    }
    if (id == NS_MASTER_ID) {
        size_t fresh = 0;

        for (size_t i = 0; i < rb.n; i++)
            fresh += topic_find(ns, rb.t[i].name) == NULL;
        if (fresh > NS_TOPICS_MAX - ns->ntopics) {
            reply_err(rep, NS_RS_SYSTEM_ERROR,
                      "REGISTER_BROKER: %zu new topics would pass the limit of %d", fresh,
                      NS_TOPICS_MAX);
            goto done;
        }
    }
    ob = addr_locate(ns, cluster, addr, &oj);
    changed = ob == NULL || !ob->addrs[oj].dv_valid || !dv_eq(&ob->addrs[oj].dv, &rb.dv);

    /* Everything the changes below need is allocated here. */
    addr_s = strdup(addr);
    ha_s = strdup(ha);
    if (has_zone)
        zone_s = strdup(zone);
    if (addr_s == NULL || ha_s == NULL || (has_zone && zone_s == NULL))
        goto oom;
    if (b == NULL) {
        void *p = grow(ns->brokers, &ns->brokers_cap, ns->nbrokers, sizeof(*ns->brokers));

        if (p == NULL)
            goto oom;
        ns->brokers = p;
        nb = broker_new(name, cluster);
        if (nb == NULL)
            goto oom;
    } else {
        void *p = grow(b->addrs, &b->addrs_cap, b->naddrs, sizeof(*b->addrs));

        if (p == NULL)
            goto oom;
        b->addrs = p;
    }

    /* From here on nothing fails before the queue data step. */
    if (ob != NULL && ob != b) {
        spk_log(SPK_LOG_WARN, "namesrv", "address %s moves from broker %s to broker %s", addr,
                ob->name, name);
        broker_drop_addr(ns, ob, oj); /* may free ob, never b */
    }
    if (b == NULL) {
        (void)broker_index(ns, name, &pos);
        memmove(&ns->brokers[pos + 1], &ns->brokers[pos],
                (ns->nbrokers - pos) * sizeof(ns->brokers[0]));
        ns->brokers[pos] = b = nb;
        ns->nbrokers++;
        nb = NULL;
        first = true;
    }
    /* The same address under another id is removed first (a slave switched to master). */
    j = addr_index_by_addr(b, addr);
    if (j >= 0 && b->addrs[j].id != id) {
        addr_free(&b->addrs[j]);
        memmove(&b->addrs[j], &b->addrs[j + 1], (b->naddrs - (size_t)j - 1) * sizeof(b->addrs[0]));
        b->naddrs--;
        ns->naddrs--;
    }
    j = addr_index_by_id(b, id, &pos);
    if (j < 0) {
        memmove(&b->addrs[pos + 1], &b->addrs[pos], (b->naddrs - pos) * sizeof(b->addrs[0]));
        e = &b->addrs[pos];
        memset(e, 0, sizeof(*e));
        e->id = id;
        e->addr = addr_s;
        addr_s = NULL;
        b->naddrs++;
        ns->naddrs++;
        first = true;
    } else {
        e = &b->addrs[j];
        if (strcmp(e->addr, addr) != 0) {
            /* Another process took this id: it inherits nothing from the old one. */
            free(e->addr);
            e->addr = addr_s;
            addr_s = NULL;
        }
    }
    free(e->ha_addr);
    e->ha_addr = ha_s;
    ha_s = NULL;
    e->conn_id = conn_id;
    e->last_ms = now_ms;
    e->timeout_ms = timeout;
    e->dv = rb.dv;
    e->dv_valid = false;
    b->acting_master = ext_bool(req, "enableActingMaster");
    if (has_zone) {
        free(b->zone);
        b->zone = zone_s;
        zone_s = NULL;
    }

    if (id == NS_MASTER_ID) {
        for (size_t i = 0; i < rb.n; i++) {
            const struct reg_topic *rt = &rb.t[i];
            const struct ns_topic *t;

            if (!first && !changed && (t = topic_find(ns, rt->name)) != NULL &&
                queue_index(t, b->name, NULL) >= 0)
                continue;
            if (queue_upsert(ns, b, rt) != 0)
                goto oom; /* e->dv_valid stays false: the next registration re-applies */
        }
    }
    e->dv_valid = true;
    if (first)
        spk_log(SPK_LOG_INFO, "namesrv",
                "new broker registered: cluster %s broker %s id %" PRId64
                " at %s, HA %s, %zu topics",
                cluster, name, id, addr, e->ha_addr, rb.n);

    rep->code = NS_RS_SUCCESS;
    rep->ext_present = 1;
    if (id != NS_MASTER_ID) {
        ptrdiff_t m = addr_index_by_id(b, NS_MASTER_ID, NULL);

        if (m >= 0) {
            proto_reply_ext(rep, "haServerAddr", "%s", b->addrs[m].ha_addr);
            proto_reply_ext(rep, "masterAddr", "%s", b->addrs[m].addr);
        }
    }
    {
        struct sbuf sb = SBUF_INIT;

        if (json_kv_table(ns, NS_ORDER_TOPIC_CONFIG, &sb))
            reply_json(req, rep, &sb);
    }
    goto done;

oom:
    reply_oom(req, rep);
done:
    broker_free(nb);
    free(addr_s);
    free(ha_s);
    free(zone_s);
    reg_body_free(&rb);
}

/* UNREGISTER_BROKER: the address leaves, and with its last address the broker name. */
static void
do_unregister(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    char name[NS_BUF], addr[NS_BUF], cluster[NS_BUF];
    struct ns_broker *b;
    int64_t id;
    size_t j;

    if (ext_name(req, "brokerName", true, name, rep) < 0 ||
        ext_name(req, "brokerAddr", true, addr, rep) < 0 ||
        ext_name(req, "clusterName", true, cluster, rep) < 0 ||
        ext_int(req, "brokerId", true, INT64_MIN, INT64_MAX, 0, &id, rep) < 0)
        return;
    /*
     * Java removes the live entry of (cluster, address) and the address
     * from the named broker; with INV-3 both are the one entry found here.
     */
    b = addr_locate(ns, cluster, addr, &j);
    if (b != NULL) {
        spk_log(SPK_LOG_INFO, "namesrv", "broker %s id %" PRId64 " at %s unregistered", b->name,
                b->addrs[j].id, addr);
        broker_drop_addr(ns, b, j);
    }
    rep->code = NS_RS_SUCCESS;
}

/* ------------------------------------------------------------------ routes */

/*
 * GET_ROUTEINFO_BY_TOPIC: TopicRouteData (PROTOCOL.md 3.8.1), keys in
 * fastjson's alphabetical order, both lists sorted by broker name. A queue
 * is listed only with its broker and the broker only with a live address.
 */
static void
do_route(struct namesrv *ns, const struct proto_cmd *req, int64_t now_ms, struct proto_reply *rep)
{
    char topic[NS_BUF];
    struct sbuf sb = SBUF_INIT;
    const struct ns_topic *t;
    bool quoted;
    size_t live = 0;

    if (ext_name(req, "topic", true, topic, rep) < 0)
        return;
    quoted = req->version >= NS_VERSION_STD_JSON || ext_bool(req, "acceptStandardJsonOnly");
    t = topic_find(ns, topic);
    for (size_t i = 0; t != NULL && i < t->nq; i++)
        live += broker_has_live_addr(t->q[i].broker, now_ms);
    if (live == 0) {
        reply_err(rep, NS_RS_TOPIC_NOT_EXIST,
                  "No topic route info in name server for the topic: %s", topic);
        return;
    }
    sb_puts(&sb, "{\"brokerDatas\":[");
    for (size_t i = 0; i < t->nq; i++) {
        if (!broker_has_live_addr(t->q[i].broker, now_ms))
            continue;
        json_broker(&sb, t->q[i].broker, quoted, now_ms);
        sb_putc(&sb, ',');
    }
    sb_unput(&sb, ',');
    sb_puts(&sb, "],\"filterServerTable\":{},\"queueDatas\":[");
    for (size_t i = 0; i < t->nq; i++) {
        const struct ns_queue *q = &t->q[i];

        if (!broker_has_live_addr(q->broker, now_ms))
            continue;
        sb_puts(&sb, "{\"brokerName\":");
        sb_json_cstr(&sb, q->broker->name);
        sb_printf(&sb,
                  ",\"perm\":%" PRId32 ",\"readQueueNums\":%" PRId32 ",\"topicSysFlag\":%" PRId32
                  ",\"writeQueueNums\":%" PRId32 "},",
                  q->perm, q->read_n, q->sys_flag, q->write_n);
    }
    sb_unput(&sb, ',');
    sb_puts(&sb, "]}");
    reply_json(req, rep, &sb);
}

static int
cmp_broker_cluster(const void *a, const void *b)
{
    const struct ns_broker *x = *(struct ns_broker *const *)a, *y = *(struct ns_broker *const *)b;
    int c = strcmp(x->cluster, y->cluster);

    return c != 0 ? c : strcmp(x->name, y->name);
}

/* GET_BROKER_CLUSTER_INFO: ClusterInfo (PROTOCOL.md 3.8.2), always with bare integer keys. */
static void
do_cluster_info(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    struct sbuf sb = SBUF_INIT;
    struct ns_broker **by_cluster = NULL;
    size_t n = ns->nbrokers;

    if (n > 0) {
        by_cluster = malloc(n * sizeof(*by_cluster));
        if (by_cluster == NULL) {
            reply_oom(req, rep);
            return;
        }
        memcpy(by_cluster, ns->brokers, n * sizeof(*by_cluster));
        qsort(by_cluster, n, sizeof(*by_cluster), cmp_broker_cluster);
    }
    sb_puts(&sb, "{\"brokerAddrTable\":{");
    for (size_t i = 0; i < n; i++) {
        sb_json_cstr(&sb, ns->brokers[i]->name);
        sb_putc(&sb, ':');
        json_broker(&sb, ns->brokers[i], false, -1);
        sb_putc(&sb, ',');
    }
    sb_unput(&sb, ',');
    sb_puts(&sb, "},\"clusterAddrTable\":{");
    for (size_t i = 0; i < n; i++) {
        bool opens = i == 0 || strcmp(by_cluster[i - 1]->cluster, by_cluster[i]->cluster) != 0;
        bool closes = i + 1 == n || strcmp(by_cluster[i + 1]->cluster, by_cluster[i]->cluster) != 0;

        if (opens) {
            sb_json_cstr(&sb, by_cluster[i]->cluster);
            sb_puts(&sb, ":[");
        }
        sb_json_cstr(&sb, by_cluster[i]->name);
        sb_puts(&sb, closes ? "]," : ",");
    }
    sb_unput(&sb, ',');
    sb_puts(&sb, "}}");
    free(by_cluster);
    reply_json(req, rep, &sb);
}

static bool
topic_in_cluster(const struct ns_topic *t, const void *arg)
{
    for (size_t i = 0; i < t->nq; i++)
        if (strcmp(t->q[i].broker->cluster, (const char *)arg) == 0)
            return true;
    return false;
}

static void
do_topics_by_cluster(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    char cluster[NS_BUF];

    if (ext_name(req, "cluster", true, cluster, rep) < 0)
        return;
    reply_topic_list(ns, req, rep, topic_in_cluster, cluster);
}

/* DELETE_TOPIC_IN_NAMESRV: all of the topic, or only the queues of one cluster's brokers. */
static void
do_delete_topic(struct namesrv *ns, const struct proto_cmd *req, struct proto_reply *rep)
{
    char topic[NS_BUF], cluster[NS_BUF];
    struct ns_topic *t;

    if (ext_name(req, "topic", true, topic, rep) < 0 ||
        ext_name(req, "clusterName", false, cluster, rep) < 0)
        return;
    t = topic_find(ns, topic);
    if (t != NULL && cluster[0] != '\0') {
        for (size_t i = 0; i < t->nq;) {
            if (strcmp(t->q[i].broker->cluster, cluster) == 0)
                queue_remove(t, i);
            else
                i++;
        }
        if (t->nq > 0)
            t = NULL;
    }
    if (t != NULL)
        topic_delete(ns, t);
    rep->code = NS_RS_SUCCESS;
}

/*
 * WIPE_WRITE_PERM_OF_BROKER / ADD_WRITE_PERM_OF_BROKER (Java 5.x
 * operateWritePermOfBroker): wipe clears the write bit of every queue of
 * the broker; add sets the permission to read+write, as Java does.
 */
static void
do_write_perm(struct namesrv *ns, const struct proto_cmd *req, bool wipe, struct proto_reply *rep)
{
    char name[NS_BUF];
    int64_t count = 0;

    if (ext_name(req, "brokerName", true, name, rep) < 0)
        return;
    for (size_t i = 0; i < ns->tcap; i++) {
        struct ns_topic *t = ns->tslot[i];
        ptrdiff_t qi;

        if (t == NULL || (qi = queue_index(t, name, NULL)) < 0)
            continue;
        if (wipe)
            t->q[qi].perm &= ~NS_PERM_WRITE;
        else
            t->q[qi].perm = NS_PERM_READ | NS_PERM_WRITE;
        count++;
    }
    rep->code = NS_RS_SUCCESS;
    proto_reply_ext_i64(rep, wipe ? "wipeTopicCount" : "addTopicCount", count);
}

/* ---------------------------------------------------------------- liveness */

/*
 * QUERY_DATA_VERSION: "changed" tells the broker whether its DataVersion
 * differs from the one of its last registration (so it must register
 * again); the body is our copy. Also refreshes the address's liveness.
 */
static void
do_query_dv(struct namesrv *ns, const struct proto_cmd *req, int64_t now_ms,
            struct proto_reply *rep)
{
    char addr[NS_BUF], cluster[NS_BUF];
    struct ns_broker *b;
    struct ns_addr *e = NULL;
    struct ns_dv dv;
    bool have_dv = false, changed;
    size_t j;

    if (ext_name(req, "brokerAddr", true, addr, rep) < 0 ||
        ext_name(req, "clusterName", true, cluster, rep) < 0)
        return;
    if (req->body != NULL && req->body_len > 0) {
        cJSON *root = json_parse(req->body, req->body_len);
        int rc = cJSON_IsObject(root) ? parse_dv(root, now_ms, &dv) : -1;

        cJSON_Delete(root);
        if (rc != 0) {
            reply_err(rep, NS_RS_SYSTEM_ERROR,
                      "QUERY_DATA_VERSION: body must be a DataVersion JSON object");
            return;
        }
        have_dv = true;
    }
    b = addr_locate(ns, cluster, addr, &j);
    if (b != NULL)
        e = &b->addrs[j];
    /* Java compares with null when the body is absent: always "changed". */
    changed = e == NULL || !e->dv_valid || !have_dv || !dv_eq(&e->dv, &dv);
    rep->code = NS_RS_SUCCESS;
    proto_reply_ext(rep, "changed", "%s", changed ? "true" : "false");
    if (e != NULL) {
        struct sbuf sb = SBUF_INIT;

        e->last_ms = now_ms;
        json_dv(&sb, &e->dv);
        reply_json(req, rep, &sb);
    }
}

static void
do_heartbeat(struct namesrv *ns, const struct proto_cmd *req, int64_t now_ms,
             struct proto_reply *rep)
{
    char addr[NS_BUF], cluster[NS_BUF];
    struct ns_broker *b;
    size_t j;

    if (ext_name(req, "brokerAddr", true, addr, rep) < 0 ||
        ext_name(req, "clusterName", true, cluster, rep) < 0)
        return;
    b = addr_locate(ns, cluster, addr, &j);
    if (b != NULL)
        b->addrs[j].last_ms = now_ms;
    rep->code = NS_RS_SUCCESS;
}

/* ------------------------------------------------------------------ public */

int
namesrv_create(struct namesrv **out)
{
    struct namesrv *ns = calloc(1, sizeof(*ns));

    if (ns == NULL)
        return -ENOMEM;
    *out = ns;
    return 0;
}

void
namesrv_destroy(struct namesrv *ns)
{
    if (ns == NULL)
        return;
    for (size_t i = 0; i < ns->tcap; i++)
        topic_free(ns->tslot[i]);
    free(ns->tslot);
    for (size_t i = 0; i < ns->nbrokers; i++)
        broker_free(ns->brokers[i]);
    free(ns->brokers);
    for (size_t i = 0; i < ns->nkv; i++) {
        free(ns->kv[i].space);
        free(ns->kv[i].key);
        free(ns->kv[i].val);
    }
    free(ns->kv);
    free(ns);
}

void
namesrv_handle(struct namesrv *ns, const struct proto_cmd *req, uint64_t conn_id, int64_t now_ms,
               struct proto_reply *rep)
{
    switch (req->code) {
    case NS_RQ_PUT_KV_CONFIG:
        do_put_kv(ns, req, rep);
        break;
    case NS_RQ_GET_KV_CONFIG:
        do_get_kv(ns, req, rep);
        break;
    case NS_RQ_DELETE_KV_CONFIG:
        do_delete_kv(ns, req, rep);
        break;
    case NS_RQ_REGISTER_BROKER:
        do_register(ns, req, conn_id, now_ms, rep);
        break;
    case NS_RQ_UNREGISTER_BROKER:
        do_unregister(ns, req, rep);
        break;
    case NS_RQ_GET_ROUTEINFO_BY_TOPIC:
        do_route(ns, req, now_ms, rep);
        break;
    case NS_RQ_GET_BROKER_CLUSTER_INFO:
        do_cluster_info(ns, req, rep);
        break;
    case NS_RQ_WIPE_WRITE_PERM_OF_BROKER:
        do_write_perm(ns, req, true, rep);
        break;
    case NS_RQ_ADD_WRITE_PERM_OF_BROKER:
        do_write_perm(ns, req, false, rep);
        break;
    case NS_RQ_GET_ALL_TOPIC_LIST:
        reply_topic_list(ns, req, rep, NULL, NULL);
        break;
    case NS_RQ_DELETE_TOPIC_IN_NAMESRV:
        do_delete_topic(ns, req, rep);
        break;
    case NS_RQ_GET_KVLIST_BY_NAMESPACE:
        do_kv_list(ns, req, rep);
        break;
    case NS_RQ_GET_TOPICS_BY_CLUSTER:
        do_topics_by_cluster(ns, req, rep);
        break;
    case NS_RQ_QUERY_DATA_VERSION:
        do_query_dv(ns, req, now_ms, rep);
        break;
    case NS_RQ_BROKER_HEARTBEAT:
        do_heartbeat(ns, req, now_ms, rep);
        break;
    default:
        reply_err(rep, NS_RS_NOT_SUPPORTED, " request type %" PRId32 " not supported", req->code);
        break;
    }
}

static bool
pred_conn(const struct ns_addr *e, const void *arg)
{
    return e->conn_id == *(const uint64_t *)arg;
}

void
namesrv_conn_closed(struct namesrv *ns, uint64_t conn_id)
{
    drop_where(ns, pred_conn, &conn_id, "its connection closed");
}

static bool
pred_stale(const struct ns_addr *e, const void *arg)
{
    return addr_stale(e, *(const int64_t *)arg);
}

int
namesrv_expire(struct namesrv *ns, int64_t now_ms)
{
    return drop_where(ns, pred_stale, &now_ms, "no registration or heartbeat within its timeout");
}

size_t
namesrv_broker_count(struct namesrv *ns)
{
    return ns->naddrs;
}

size_t
namesrv_topic_count(struct namesrv *ns)
{
    return ns->ntopics;
}
