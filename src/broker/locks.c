/*
 * locks.c - LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42): the queue locks
 * of orderly consumers (Java's RebalanceLockManager).
 *
 * A lock is held per (consumer group, topic, queue id) by one client id
 * and lives rebalanceLockMaxLiveTime ms after its last lock request: the
 * holder renews it by locking again (Java clients every 20 s), and once it
 * has expired the next client to ask takes it. The brokerName of a request's
 * MessageQueue is not part of the key (this broker is the only one that
 * serves its queues) but is echoed in the reply, because clients match
 * the reply's queues with equals() on all three fields.
 *
 * Invariants:
 *   INV-1  A queue is reported in lockOKMQSet only if, after the request,
 *          the requesting client holds its lock: it held an unexpired
 *          lock (now renewed), or the queue was free or expired (now
 *          taken). Each queue is reported at most once per reply.
 *   INV-2  UNLOCK_BATCH_MQ releases only locks the requesting client
 *          holds; other clients' locks are left alone, as in Java.
 *   INV-3  A request whose body does not decode, or any of whose queues
 *          is malformed, changes nothing and gets SYSTEM_ERROR.
 *   INV-4  An expired entry and a missing one mean the same (free), so
 *          locks_tick() may drop expired entries at any time; the table
 *          holds at most LOCKS_MAX entries, beyond which new queues are
 *          not locked (and not reported).
 *
 * Unlike Java, UNREGISTER_CLIENT with a consumerGroup releases that
 * client's locks in the group (locks_release_client): the client has
 * said it left, and without this the queues it held stay blocked for
 * rebalanceLockMaxLiveTime. A closed connection releases nothing: clients
 * reconnect under the same id and keep consuming, and a queue handed to
 * another client meanwhile would be consumed twice at once.
 *
 * Threads: the loop thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "broker/internal.h"
#include "common/fjson.h"
#include "common/log.h"
#include "common/sbuf.h"

#define LOCKS_MAX (1u << 20)
#define LOCKS_BODY_MAX (4u << 20)
#define LOCKS_NAME_MAX 255
#define LOCKS_SWEEP_BUCKETS 4096 /* per tick, so a huge table never stalls the loop */

struct lock_entry {
    struct lock_entry *next; /* hash chain */
    uint64_t hash;
    int64_t last_ms; /* loop clock of the last lock or renewal */
    uint64_t stamp;  /* the request that last reported it (INV-1) */
    int32_t qid;
    char client[LOCKS_NAME_MAX + 1];
    const char *topic; /* in key[] */
    char key[];        /* group NUL topic NUL */
};

struct locks {
    struct lock_entry **bucket;
    size_t nbucket, n;
    size_t sweep_pos;
    uint64_t stamp;
    struct spk_log_rl rl_full;
};

/* One queue of a request, validated. */
struct mq_ref {
    const char *topic, *bname;
    int32_t qid;
};

static uint64_t
key_hash(const char *group, const char *topic, int32_t qid)
{
    uint64_t h = 14695981039346656037ull;
    const char *p;

    for (p = group; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (p = topic; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (h ^ (uint32_t)qid) * 1099511628211ull;
}

static struct lock_entry **
find_slot(struct locks *l, const char *group, const char *topic, int32_t qid, uint64_t h)
{
    struct lock_entry **pp = &l->bucket[h & (l->nbucket - 1)];

    for (; *pp; pp = &(*pp)->next) {
        struct lock_entry *e = *pp;
        if (e->hash == h && e->qid == qid && strcmp(e->key, group) == 0 &&
            strcmp(e->topic, topic) == 0)
            return pp;
    }
    return pp;
}

static int
grow(struct locks *l)
{
    size_t nb = l->nbucket * 2;
    struct lock_entry **nbk = calloc(nb, sizeof(*nbk));

    if (!nbk)
        return -ENOMEM;
    for (size_t i = 0; i < l->nbucket; i++) {
        struct lock_entry *e = l->bucket[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = nbk[e->hash & (nb - 1)];
            nbk[e->hash & (nb - 1)] = e;
        }
    }
    free(l->bucket);
    l->bucket = nbk;
    l->nbucket = nb;
    l->sweep_pos = 0;
    return 0;
}

static struct locks *
locks_get(struct broker *b)
{
    struct locks *l = b->locks;

    if (l)
        return l;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->nbucket = 256;
    l->bucket = calloc(l->nbucket, sizeof(*l->bucket));
    if (!l->bucket) {
        free(l);
        return NULL;
    }
    b->locks = l;
    return l;
}

static void
unlink_at(struct locks *l, struct lock_entry **pp)
{
    struct lock_entry *e = *pp;

    *pp = e->next;
    free(e);
    l->n--;
}

static const char *
jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int
name_ok(const char *s)
{
    return s && *s && strlen(s) <= LOCKS_NAME_MAX;
}

/*
 * Validates every queue of <set> into <mqs> (INV-3). Returns the count, or
 * -1 with the reason in <why>.
 */
static int
parse_mq_set(const cJSON *set, struct mq_ref *mqs, char *why, size_t whylen)
{
    const cJSON *e;
    int n = 0;

    cJSON_ArrayForEach(e, set)
    {
        const cJSON *q;
        const char *topic, *bname;
        if (!cJSON_IsObject(e)) {
            snprintf(why, whylen, "mqSet[%d] is not a MessageQueue object", n);
            return -1;
        }
        q = cJSON_GetObjectItemCaseSensitive(e, "queueId");
        topic = jstr(e, "topic");
        bname = jstr(e, "brokerName");
        if (!name_ok(topic)) {
            snprintf(why, whylen, "mqSet[%d] has no topic of 1..%d bytes", n, LOCKS_NAME_MAX);
            return -1;
        }
        if (!cJSON_IsNumber(q) || q->valuedouble < 0 || q->valuedouble > 2147483647.0 ||
            q->valuedouble != (double)(int32_t)q->valuedouble) {
            snprintf(why, whylen, "mqSet[%d] has no queueId in 0..2147483647", n);
            return -1;
        }
        if (cJSON_GetObjectItemCaseSensitive(e, "brokerName") && !name_ok(bname)) {
            snprintf(why, whylen, "mqSet[%d] has a brokerName that is not a name", n);
            return -1;
        }
        mqs[n].topic = topic;
        mqs[n].bname = bname;
        mqs[n].qid = (int32_t)q->valuedouble;
        n++;
    }
    return n;
}

/* Takes or renews the lock of one queue for <cid>: its entry, or NULL when
 * another client holds it (or the table is full). */
static struct lock_entry *
lock_one(struct broker *b, struct locks *l, const char *group, const char *cid,
         const struct mq_ref *mq, int64_t now)
{
    uint64_t h = key_hash(group, mq->topic, mq->qid);
    struct lock_entry **pp = find_slot(l, group, mq->topic, mq->qid, h), *e = *pp;
    size_t gl, tl;

    if (e) {
        if (strcmp(e->client, cid) != 0) {
            if (now - e->last_ms <= b->cfg.rebalanceLockMaxLiveTime)
                return NULL;
            spk_log(SPK_LOG_INFO, "broker",
                    "queue %s:%d of group %s: expired lock of %s taken by %s", mq->topic, mq->qid,
                    group, e->client, cid);
            snprintf(e->client, sizeof(e->client), "%s", cid);
        }
        e->last_ms = now;
        return e;
    }
    if (l->n >= LOCKS_MAX) {
        spk_log_ratelimited(&l->rl_full, 10000, SPK_LOG_WARN, "broker",
                            "%u queue locks held: queue %s:%d of group %s not locked", LOCKS_MAX,
                            mq->topic, mq->qid, group);
        return NULL;
    }
    if (l->n >= l->nbucket && grow(l) == 0)
        pp = find_slot(l, group, mq->topic, mq->qid, h);
    gl = strlen(group);
    tl = strlen(mq->topic);
    e = malloc(sizeof(*e) + gl + 1 + tl + 1);
    if (!e)
        return NULL;
    memset(e, 0, sizeof(*e));
    memcpy(e->key, group, gl + 1);
    memcpy(e->key + gl + 1, mq->topic, tl + 1);
    e->topic = e->key + gl + 1;
    e->hash = h;
    e->qid = mq->qid;
    e->last_ms = now;
    snprintf(e->client, sizeof(e->client), "%s", cid);
    *pp = e;
    l->n++;
    return e;
}

/*
 * LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42), body LockBatchRequestBody /
 * UnlockBatchRequestBody (PROTOCOL.md 3.4). Lock replies SUCCESS with
 * {"lockOKMQSet":[...]} (INV-1); unlock replies SUCCESS without a body,
 * and nothing when oneway. Loop thread.
 */
void
proc_lock_batch(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    int lock = req->code == RC_LOCK_BATCH_MQ;
    const char *what = lock ? "LOCK_BATCH_MQ" : "UNLOCK_BATCH_MQ";
    struct proto_reply rep;
    struct sbuf sb = SBUF_INIT;
    struct mq_ref *mqs = NULL;
    struct locks *l;
    cJSON *j = NULL;
    const cJSON *set;
    const char *cid, *group;
    char why[160];
    int n, first = 1;
    int64_t now = net_loop_now(b->loop);

    proto_reply_init(&rep, RS_SUCCESS);
    if (req->body_len == 0 || req->body_len > LOCKS_BODY_MAX ||
        !(j = fjson_parse((const char *)req->body, req->body_len)) || !cJSON_IsObject(j)) {
        snprintf(why, sizeof(why), "the body is not a JSON object of at most %u bytes",
                 LOCKS_BODY_MAX);
        goto bad;
    }
    cid = jstr(j, "clientId");
    group = jstr(j, "consumerGroup");
    set = cJSON_GetObjectItemCaseSensitive(j, "mqSet");
    if (!name_ok(cid) || !name_ok(group)) {
        snprintf(why, sizeof(why), "clientId and consumerGroup must be names of 1..%d bytes",
                 LOCKS_NAME_MAX);
        goto bad;
    }
    if (!cJSON_IsArray(set)) {
        snprintf(why, sizeof(why), "mqSet is not an array");
        goto bad;
    }
    n = cJSON_GetArraySize(set);
    if (!(mqs = calloc((size_t)n + 1, sizeof(*mqs)))) {
        snprintf(why, sizeof(why), "out of memory");
        goto bad;
    }
    n = parse_mq_set(set, mqs, why, sizeof(why));
    if (n < 0)
        goto bad;
    if (!(l = locks_get(b))) {
        snprintf(why, sizeof(why), "out of memory");
        goto bad;
    }
    l->stamp++;
    if (lock)
        sb_puts(&sb, "{\"lockOKMQSet\":[");
    for (int i = 0; i < n && !lock; i++) {
        uint64_t h = key_hash(group, mqs[i].topic, mqs[i].qid);
        struct lock_entry **pp = find_slot(l, group, mqs[i].topic, mqs[i].qid, h);
        if (*pp && strcmp((*pp)->client, cid) == 0) /* INV-2 */
            unlink_at(l, pp);
    }
    for (int i = 0; i < n && lock; i++) {
        struct lock_entry *e = lock_one(b, l, group, cid, &mqs[i], now);
        if (!e || e->stamp == l->stamp)
            continue; /* held by another; or listed twice in the request: reported once */
        e->stamp = l->stamp;
        /* the fields in fastjson's (sorted) order */
        sb_puts(&sb, first ? "{\"brokerName\":" : ",{\"brokerName\":");
        sb_json_cstr(&sb, mqs[i].bname ? mqs[i].bname : b->cfg.brokerName);
        sb_printf(&sb, ",\"queueId\":%d,\"topic\":", (int)mqs[i].qid);
        sb_json_cstr(&sb, mqs[i].topic);
        sb_putc(&sb, '}');
        first = 0;
    }
    if (lock) {
        char *body;
        size_t len;
        sb_puts(&sb, "]}");
        body = sb_detach(&sb, &len);
        if (body)
            proto_reply_body(&rep, body, len);
        else
            rep.err = -ENOMEM;
    } else {
        rep.ext_present = 1;
    }
    goto out;
bad:
    rep.code = RS_SYSTEM_ERROR;
    proto_reply_remark(&rep, "%s: %s", what, why);
    spk_log(SPK_LOG_DEBUG, "broker", "%s from %s refused: %s", what, net_conn_peer(c), why);
out:
    sb_free(&sb);
    free(mqs);
    cJSON_Delete(j);
    broker_reply(b, c, req, &rep);
}

/* Releases every lock <client_id> holds in <group> (see the file header). */
void
locks_release_client(struct broker *b, const char *group, const char *client_id)
{
    struct locks *l = b->locks;
    size_t released = 0;

    if (!l)
        return;
    for (size_t i = 0; i < l->nbucket; i++) {
        struct lock_entry **pp = &l->bucket[i];
        while (*pp) {
            if (strcmp((*pp)->client, client_id) == 0 && strcmp((*pp)->key, group) == 0) {
                unlink_at(l, pp);
                released++;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    if (released)
        spk_log(SPK_LOG_INFO, "broker", "%zu queue locks of %s in group %s released", released,
                client_id, group);
}

/* Loop timer: drops expired entries, a slice of the table per tick (INV-4). */
void
locks_tick(void *arg)
{
    struct broker *b = arg;
    struct locks *l = b->locks;
    int64_t now = net_loop_now(b->loop);

    if (!l || l->n == 0)
        return;
    for (size_t k = 0; k < LOCKS_SWEEP_BUCKETS && k < l->nbucket; k++) {
        struct lock_entry **pp = &l->bucket[l->sweep_pos];
        while (*pp) {
            if (now - (*pp)->last_ms > b->cfg.rebalanceLockMaxLiveTime)
                unlink_at(l, pp);
            else
                pp = &(*pp)->next;
        }
        l->sweep_pos = (l->sweep_pos + 1) & (l->nbucket - 1);
    }
}

void
locks_free(struct broker *b)
{
    struct locks *l = b->locks;

    if (!l)
        return;
    for (size_t i = 0; i < l->nbucket; i++) {
        struct lock_entry *e = l->bucket[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(l->bucket);
    free(l);
    b->locks = NULL;
}
