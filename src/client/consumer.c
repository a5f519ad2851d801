/*
 * consumer.c - spk_consumer: push (concurrent or orderly) and lite pull
 * consumers, clustering with rebalancing or broadcasting.
 *
 * Each queue assigned to this client has a process queue (pq): the next
 * offset to pull, the messages pulled and not yet consumed (a ring in
 * offset order), and the offset to commit, which is the offset of the
 * oldest message not yet consumed (or the next pull offset when none is
 * outstanding). One asynchronous pull per pq and generation is in flight
 * at a time (a seek starts a new generation at once; the old long poll's
 * reply is dropped when it comes); its
 * reply (on a connection's reader thread) adds messages and starts the
 * next pull unless the pq holds pullThresholdForQueue messages, in which
 * case the scheduler's tick resumes it once consumption catches up.
 *
 * Push consumers run the listener on consumeThreadNum threads fed by one
 * task queue. Concurrent: a task is one message. Orderly: a task is a pq,
 * consumed message by message by one thread at a time while the pq holds
 * its broker lock.
 *
 * Invariants:
 *   INV-1  A pq is freed only by the scheduler thread, once it is dropped,
 *          released (offset committed, lock returned) and nothing refers
 *          to it (refs: the pull in flight and every queued or running
 *          task).
 *   INV-2  The committed offset never passes a message that is not done:
 *          it is the offset of the ring's first entry not done, and the
 *          ring only drops entries from its head once they are done.
 *   INV-3  Orderly: a message is handed to the listener only while its pq
 *          is locked on the broker, the lock is younger than LOCK_STALE_MS,
 *          the pq is not dropped, and no other thread consumes the pq. A
 *          dropped pq's offset is committed before its lock is released.
 *   INV-4  Pull replies of an older generation (a seek or offset reset
 *          happened meanwhile) are discarded.
 *   INV-5  c->lock is never held while the listener runs or while a
 *          request waits for its reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "client/internal.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"

#define CALL_TIMEOUT_MS 3000
#define PULL_SUSPEND_MS 15000
#define PULL_TIMEOUT_MS 30000
#define PULL_ERROR_DELAY_MS 1000
#define LOCK_RENEW_MS 20000
#define LOCK_STALE_MS 30000
#define LOCK_RETRY_MS 1000
#define LOCAL_RETRY_MS 5000
#define ORDERLY_BATCH 32

enum ckind { CK_PUSH, CK_LITE };
enum cmode { CM_NONE, CM_CONCURRENT, CM_ORDERLY };
enum estate { E_QUEUED, E_TAKEN, E_DONE };

struct pfilter {
    char *name;
    char *value;
};

struct sub {
    char topic[256];
    char *expr;
    char **tags;
    size_t ntags;
    int64_t version;
    struct pfilter *pf;
    size_t npf;
    int is_retry;
};

struct entry {
    spk_message *m;
    int64_t offset;
    int state;
    int local_retries; /* orderly: times the listener asked for later */
};

struct pq {
    struct pq *next;
    spk_queue q;
    char addr[64];
    int64_t next_offset;
    int64_t committed; /* -1 until known */
    int64_t persisted;
    int gen;
    int dropped;
    int released; /* dropped, offset committed and lock given back */
    int pulling;
    int pull_queued; /* on c->pull_list */
    struct pq *pull_next;
    int64_t pull_after_ms;
    int refs;
    /* ring of pulled messages in offset order */
    struct entry *ring;
    size_t head, count, cap;
    size_t queued; /* entries in state E_QUEUED (lite: not polled yet) */
    /* orderly */
    int locked;
    int64_t lock_ms;
    int consuming;
    int task_queued;
    int64_t suspend_until_ms;
};

struct task {
    struct task *next;
    struct pq *pq;
    spk_message *m; /* concurrent: the message; orderly: NULL */
    int64_t offset;
    int64_t not_before_ms;
};

struct polled {
    struct pq *pq;
    int64_t offset;
};

struct spk_consumer {
    enum ckind kind;
    char *group;
    struct cl_opts o;
    int broadcast;
    int from_where; /* 0 last, 1 first, 2 timestamp */
    int64_t consume_ts_ms;
    int nthreads;
    int pull_batch;
    int threshold;
    int max_reconsume;
    int suspend_ms;
    int persist_interval;
    int rebalance_interval;
    int auto_commit;
    char *offset_dir;

    spk_message_cb cb;
    void *cb_ud;
    enum cmode mode;

    struct sub *subs;
    size_t nsubs;

    struct cl_instance *in;
    int started;
    int stopping;

    pthread_mutex_t lock;
    pthread_cond_t task_cond; /* tasks queued (workers, poll) */
    pthread_cond_t idle_cond; /* a task finished */
    struct pq *pqs;
    struct pq *pull_list; /* pulls to start once c->lock is released */
    struct task *tasks, **tasks_tail;
    struct task *delayed; /* not before not_before_ms */
    size_t ntasks;
    int running_tasks;
    pthread_t *threads;
    int nstarted;
    int rebalance_now;
    int64_t next_rebalance, next_persist, next_lock;
    struct polled *last_poll;
    size_t nlast_poll, caplast_poll;
};

static void pull_start(spk_consumer *c, struct pq *pq);
static void flush_pulls(spk_consumer *c);

/* ----- create and options ---------------------------------------------- */
static int
create(const char *group, enum ckind kind, spk_consumer **out)
{
    spk_consumer *c;

    if (!group || !*group || strlen(group) > 255 || !out)
        return -EINVAL;
    cl_log_default();
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->kind = kind;
    c->group = strdup(group);
    if (!c->group) {
        free(c);
        return -ENOMEM;
    }
    c->consume_ts_ms = spk_wall_ms() - 30 * 60 * 1000;
    c->nthreads = 4;
    c->pull_batch = 32;
    c->threshold = 1000;
    c->max_reconsume = 16;
    c->suspend_ms = 1000;
    c->persist_interval = 5000;
    c->rebalance_interval = 20000;
    c->auto_commit = 1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->task_cond, NULL);
    pthread_cond_init(&c->idle_cond, NULL);
    c->tasks_tail = &c->tasks;
    *out = c;
    return 0;
}

int
spk_push_consumer_create(const char *group, spk_consumer **out)
{
    return create(group, CK_PUSH, out);
}

int
spk_pull_consumer_create(const char *group, spk_consumer **out)
{
    return create(group, CK_LITE, out);
}

static int
set_str(char **dst, const char *v)
{
    char *d;

    if (!*v)
        return -EINVAL;
    d = strdup(v);
    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

/* yyyyMMddHHmmss, local time, into ms since the epoch. */
static int
parse_stamp(const char *v, int64_t *ms)
{
    struct tm tm;
    const char *end;
    time_t t;

    if (strlen(v) != 14)
        return -EINVAL;
    memset(&tm, 0, sizeof(tm));
    end = strptime(v, "%Y%m%d%H%M%S", &tm);
    if (!end || *end)
        return -EINVAL;
    tm.tm_isdst = -1;
    t = mktime(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ms = (int64_t)t * 1000;
    return 0;
}

int
spk_consumer_set_option(spk_consumer *c, const char *name, const char *value)
{
    int64_t v = 0;
    int b;

    if (!c || !name || !value)
        return -EINVAL;
    if (c->started)
        return SPK_ESTATE;
    if (strcmp(name, "namesrvAddr") == 0)
        return set_str(&c->o.namesrv, value);
    if (strcmp(name, "instanceName") == 0)
        return set_str(&c->o.instance_name, value);
    if (strcmp(name, "clientIP") == 0)
        return set_str(&c->o.client_ip, value);
    if (strcmp(name, "offsetStoreDir") == 0)
        return set_str(&c->offset_dir, value);
    if (strcmp(name, "messageModel") == 0) {
        if (strcmp(value, "CLUSTERING") == 0)
            c->broadcast = 0;
        else if (strcmp(value, "BROADCASTING") == 0)
            c->broadcast = 1;
        else
            return -EINVAL;
        return 0;
    }
    if (strcmp(name, "consumeFromWhere") == 0) {
        if (strcmp(value, "CONSUME_FROM_LAST_OFFSET") == 0)
            c->from_where = 0;
        else if (strcmp(value, "CONSUME_FROM_FIRST_OFFSET") == 0)
            c->from_where = 1;
        else if (strcmp(value, "CONSUME_FROM_TIMESTAMP") == 0)
            c->from_where = 2;
        else
            return -EINVAL;
        return 0;
    }
    if (strcmp(name, "consumeTimestamp") == 0)
        return parse_stamp(value, &c->consume_ts_ms);
    if (strcmp(name, "autoCommit") == 0) {
        if (cl_parse_bool(value, &b))
            return -EINVAL;
        c->auto_commit = b;
        return 0;
    }
#define INTOPT(key, field, lo, hi)                                                                 \
    if (strcmp(name, key) == 0) {                                                                  \
        if (cl_parse_int(value, lo, hi, &v))                                                       \
            return -EINVAL;                                                                        \
        c->field = (int)v;                                                                         \
        return 0;                                                                                  \
    }
    INTOPT("consumeThreadNum", nthreads, 1, 256)
    INTOPT("consumeThreadMin", nthreads, 1, 256)
    INTOPT("pullBatchSize", pull_batch, 1, 1024)
    INTOPT("pullThresholdForQueue", threshold, 1, 65535)
    INTOPT("pollBufferSize", threshold, 1, 65535)
    INTOPT("maxReconsumeTimes", max_reconsume, -1, 10000)
    INTOPT("suspendCurrentQueueTimeMillis", suspend_ms, 10, 30000)
    INTOPT("persistConsumerOffsetInterval", persist_interval, 10, 86400000)
    INTOPT("rebalanceInterval", rebalance_interval, 100, 86400000)
    INTOPT("pollNameServerInterval", o.poll_ns_interval, 10, 86400000)
    INTOPT("heartbeatBrokerInterval", o.heartbeat_interval, 10, 86400000)
#undef INTOPT
    return -EINVAL;
}

/* ----- subscriptions ---------------------------------------------------- */
static void
sub_clear(struct sub *s)
{
    size_t i;

    for (i = 0; i < s->ntags; i++)
        free(s->tags[i]);
    free(s->tags);
    free(s->expr);
    for (i = 0; i < s->npf; i++) {
        free(s->pf[i].name);
        free(s->pf[i].value);
    }
    free(s->pf);
    memset(s, 0, sizeof(*s));
}

static struct sub *
find_sub(spk_consumer *c, const char *topic)
{
    size_t i;

    for (i = 0; i < c->nsubs; i++)
        if (strcmp(c->subs[i].topic, topic) == 0)
            return &c->subs[i];
    return NULL;
}

/* Parses "*" or "a || b" into <s>'s tag list. */
static int
parse_tags(struct sub *s, const char *expr)
{
    const char *p = expr;

    s->expr = strdup(*expr ? expr : "*");
    if (!s->expr)
        return -ENOMEM;
    if (strcmp(s->expr, "*") == 0)
        return 0;
    while (*p) {
        const char *e = strstr(p, "||");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char **nt;

        while (l && (*p == ' ' || *p == '\t')) {
            p++;
            l--;
        }
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if (l) {
            nt = realloc(s->tags, (s->ntags + 1) * sizeof(*nt));
            if (!nt)
                return -ENOMEM;
            s->tags = nt;
            s->tags[s->ntags] = strndup(p, l);
            if (!s->tags[s->ntags])
                return -ENOMEM;
            s->ntags++;
        }
        if (!e)
            break;
        p = e + 2;
    }
    if (s->ntags == 0)
        return -EINVAL;
    return 0;
}

static int
add_sub(spk_consumer *c, const char *topic, const char *expr, int is_retry)
{
    struct sub s, *old, *ns;
    int rc;

    memset(&s, 0, sizeof(s));
    snprintf(s.topic, sizeof(s.topic), "%s", topic);
    s.is_retry = is_retry;
    s.version = spk_wall_ms();
    rc = parse_tags(&s, expr);
    if (rc) {
        sub_clear(&s);
        return rc;
    }
    old = find_sub(c, topic);
    if (old) { /* keep the property filters */
        s.pf = old->pf;
        s.npf = old->npf;
        old->pf = NULL;
        old->npf = 0;
        sub_clear(old);
        *old = s;
        return 0;
    }
    ns = realloc(c->subs, (c->nsubs + 1) * sizeof(*ns));
    if (!ns) {
        sub_clear(&s);
        return -ENOMEM;
    }
    c->subs = ns;
    c->subs[c->nsubs++] = s;
    return 0;
}

int
spk_consumer_subscribe(spk_consumer *c, const char *topic, const char *tags)
{
    if (!c || !topic || !*topic || strlen(topic) > 255 || !tags)
        return -EINVAL;
    if (c->started)
        return SPK_ESTATE;
    return add_sub(c, topic, tags, 0);
}

int
spk_consumer_filter_property(spk_consumer *c, const char *topic, const char *name,
                             const char *value)
{
    struct sub *s;
    struct pfilter *np;

    if (!c || !topic || !name || !value || !*name)
        return -EINVAL;
    if (c->started)
        return SPK_ESTATE;
    s = find_sub(c, topic);
    if (!s)
        return SPK_ENOTFOUND; /* subscribe first */
    np = realloc(s->pf, (s->npf + 1) * sizeof(*np));
    if (!np)
        return -ENOMEM;
    s->pf = np;
    s->pf[s->npf].name = strdup(name);
    s->pf[s->npf].value = strdup(value);
    if (!s->pf[s->npf].name || !s->pf[s->npf].value) {
        free(s->pf[s->npf].name);
        free(s->pf[s->npf].value);
        return -ENOMEM;
    }
    s->npf++;
    return 0;
}

int
spk_consumer_set_listener(spk_consumer *c, spk_message_cb cb, void *ud)
{
    if (!c || !cb || c->kind != CK_PUSH)
        return -EINVAL;
    if (c->started)
        return SPK_ESTATE;
    c->cb = cb;
    c->cb_ud = ud;
    c->mode = CM_CONCURRENT;
    return 0;
}

int
spk_consumer_set_orderly_listener(spk_consumer *c, spk_message_cb cb, void *ud)
{
    int rc = spk_consumer_set_listener(c, cb, ud);

    if (!rc)
        c->mode = CM_ORDERLY;
    return rc;
}

const char *
spk_consumer_client_id(const spk_consumer *c)
{
    return c->in ? cl_instance_client_id(c->in) : NULL;
}

/* Does <m> pass the subscription's tag set and property filters? */
static int
matches(const struct sub *s, const spk_message *m)
{
    const char *tag = spk_message_tags(m);
    size_t i;
    int ok = s->ntags == 0;

    for (i = 0; i < s->ntags && !ok && tag; i++)
        ok = strcmp(s->tags[i], tag) == 0;
    for (i = 0; i < s->npf && ok; i++) {
        const char *v = spk_message_property(m, s->pf[i].name);

        ok = v && strcmp(v, s->pf[i].value) == 0;
    }
    return ok;
}

/* ----- process queues --------------------------------------------------- */
static struct entry *
ring_at(struct pq *pq, size_t i)
{
    return &pq->ring[(pq->head + i) % pq->cap];
}

static int
ring_push(struct pq *pq, spk_message *m)
{
    if (pq->count == pq->cap) {
        size_t nc = pq->cap ? pq->cap * 2 : 64, i;
        struct entry *nr = malloc(nc * sizeof(*nr));

        if (!nr)
            return -ENOMEM;
        for (i = 0; i < pq->count; i++)
            nr[i] = *ring_at(pq, i);
        free(pq->ring);
        pq->ring = nr;
        pq->cap = nc;
        pq->head = 0;
    }
    {
        struct entry *e = &pq->ring[(pq->head + pq->count) % pq->cap];

        e->m = m;
        e->offset = m->queue_offset;
        e->state = E_QUEUED;
        e->local_retries = 0;
        pq->count++;
        pq->queued++;
    }
    return 0;
}

/*
 * Is the pq's buffer full (no pull until consumption catches up)? A push
 * consumer counts every message not yet consumed (pullThresholdForQueue);
 * a lite pull consumer counts what the application has not polled yet
 * (pollBufferSize): polled messages wait only for a commit, and a program
 * that commits rarely must not stall its own polls.
 */
static int
pq_full(const spk_consumer *c, const struct pq *pq)
{
    return (c->kind == CK_LITE ? pq->queued : pq->count) >= (size_t)c->threshold;
}

/* The entry holding <offset>, by binary search (offsets ascend). */
static struct entry *
ring_find(struct pq *pq, int64_t offset)
{
    size_t lo = 0, hi = pq->count;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        struct entry *e = ring_at(pq, mid);

        if (e->offset == offset)
            return e;
        if (e->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* After a reset or a moved offset, an entry still held by a listener
     * may sit before newer, lower offsets: look everywhere. */
    for (lo = 0; lo < pq->count; lo++)
        if (ring_at(pq, lo)->offset == offset)
            return ring_at(pq, lo);
    return NULL;
}

/* Drops done entries from the head and moves the committed offset (INV-2). */
static void
ring_advance(struct pq *pq)
{
    while (pq->count > 0 && pq->ring[pq->head].state == E_DONE) {
        spk_message_destroy(pq->ring[pq->head].m);
        pq->ring[pq->head].m = NULL;
        pq->head = (pq->head + 1) % pq->cap;
        pq->count--;
    }
    if (pq->count > 0)
        pq->committed = pq->ring[pq->head].offset;
    else if (pq->next_offset >= 0)
        pq->committed = pq->next_offset;
}

static void
ring_clear(struct pq *pq)
{
    size_t i;

    for (i = 0; i < pq->count; i++) {
        struct entry *e = ring_at(pq, i);

        /* An entry a task or poller holds is left to it (it checks gen). */
        if (e->state == E_TAKEN)
            continue;
        if (e->state == E_QUEUED)
            pq->queued--;
        spk_message_destroy(e->m);
        e->m = NULL;
        e->state = E_DONE;
    }
}

static void
pq_free(struct pq *pq)
{
    size_t i;

    for (i = 0; i < pq->count; i++)
        spk_message_destroy(ring_at(pq, i)->m);
    free(pq->ring);
    free(pq);
}

static struct pq *
find_pq(spk_consumer *c, const spk_queue *q)
{
    struct pq *pq;

    for (pq = c->pqs; pq; pq = pq->next)
        if (!pq->dropped && pq->q.queue_id == q->queue_id && strcmp(pq->q.topic, q->topic) == 0 &&
            strcmp(pq->q.broker, q->broker) == 0)
            return pq;
    return NULL;
}

/* ----- tasks ------------------------------------------------------------ */
static void
task_push(spk_consumer *c, struct pq *pq, spk_message *m, int64_t offset, int64_t not_before)
{
    struct task *t = calloc(1, sizeof(*t));

    if (!t)
        return; /* the message stays queued; the tick re-dispatches (orderly) */
    t->pq = pq;
    t->m = m;
    t->offset = offset;
    t->not_before_ms = not_before;
    pq->refs++;
    if (not_before) {
        t->next = c->delayed;
        c->delayed = t;
        return;
    }
    *c->tasks_tail = t;
    c->tasks_tail = &t->next;
    c->ntasks++;
    pthread_cond_signal(&c->task_cond);
}

static struct task *
task_pop(spk_consumer *c)
{
    struct task *t = c->tasks;

    if (t) {
        c->tasks = t->next;
        if (!c->tasks)
            c->tasks_tail = &c->tasks;
        c->ntasks--;
    }
    return t;
}

/* Hands new messages of <pq> out: tasks (push) or the poll queue (lite). */
static void
dispatch(spk_consumer *c, struct pq *pq, size_t first)
{
    size_t i;

    if (c->kind == CK_LITE || c->mode == CM_CONCURRENT) {
        for (i = first; i < pq->count; i++) {
            struct entry *e = ring_at(pq, i);

            if (e->state == E_QUEUED) {
                if (c->kind == CK_PUSH) {
                    e->state = E_TAKEN;
                    pq->queued--;
                }
                task_push(c, pq, c->kind == CK_PUSH ? e->m : NULL, e->offset, 0);
            }
        }
        return;
    }
    if (!pq->task_queued && !pq->consuming) {
        pq->task_queued = 1;
        task_push(c, pq, NULL, 0, 0);
    }
}

/* ----- offsets ---------------------------------------------------------- */
static int
offset_call(spk_consumer *c, const char *addr, int code, const spk_queue *q, int64_t extra,
            int64_t *out)
{
    struct proto_reply req;
    struct proto_cmd cmd;
    uint8_t *frame = NULL;
    const char *v;
    int rc;

    proto_reply_init(&req, code);
    if (code == CL_REQ_QUERY_CONSUMER_OFFSET)
        proto_reply_ext(&req, "consumerGroup", "%s", c->group);
    proto_reply_ext(&req, "topic", "%s", q->topic);
    proto_reply_ext(&req, "queueId", "%d", q->queue_id);
    if (code == CL_REQ_SEARCH_OFFSET_BY_TIMESTAMP)
        proto_reply_ext_i64(&req, "timestamp", extra);
    rc = cl_call(c->in, addr, &req, CALL_TIMEOUT_MS, &cmd, &frame);
    proto_reply_free(&req);
    if (rc)
        return rc;
    if (cmd.code == CL_RC_QUERY_NOT_FOUND) {
        rc = SPK_ENOTFOUND;
    } else if (cmd.code != CL_RC_SUCCESS) {
        cl_set_broker_error(cmd.code, cmd.remark);
        rc = SPK_EBROKER;
    } else {
        v = proto_ext_get(&cmd, "offset");
        if (!v || cl_parse_int(v, INT64_MIN, INT64_MAX, out))
            rc = SPK_EFORMAT;
    }
    proto_cmd_free(&cmd);
    free(frame);
    return rc;
}

static void
local_path(spk_consumer *c, char *buf, size_t n, int tmp)
{
    const char *home = getenv("HOME");

    if (c->offset_dir)
        snprintf(buf, n, "%s/%s/%s/offsets.json%s", c->offset_dir, cl_instance_client_id(c->in),
                 c->group, tmp ? ".tmp" : "");
    else
        snprintf(buf, n, "%s/.sprocket_offsets/%s/%s/offsets.json%s", home ? home : "/tmp",
                 cl_instance_client_id(c->in), c->group, tmp ? ".tmp" : "");
}

/* Broadcasting: the stored offset of <q>, or SPK_ENOTFOUND. */
static int
local_read(spk_consumer *c, const spk_queue *q, int64_t *out)
{
    char path[1024];
    cJSON *root, *arr, *e;
    char *text = NULL;
    FILE *f;
    long len;
    int rc = SPK_ENOTFOUND;

    local_path(c, path, sizeof(path), 0);
    f = fopen(path, "r");
    if (!f)
        return SPK_ENOTFOUND;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && len < (16 << 20) &&
        fseek(f, 0, SEEK_SET) == 0) {
        text = malloc((size_t)len);
        if (text && fread(text, 1, (size_t)len, f) == (size_t)len) {
            root = cJSON_ParseWithLength(text, (size_t)len);
            arr = cJSON_GetObjectItemCaseSensitive(root, "offsetTable");
            cJSON_ArrayForEach(e, arr)
            {
                cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "topic");
                cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "brokerName");
                cJSON *qi = cJSON_GetObjectItemCaseSensitive(e, "queueId");
                cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "offset");

                if (cJSON_IsString(t) && cJSON_IsString(b) && cJSON_IsNumber(qi) &&
                    cJSON_IsNumber(o) && strcmp(t->valuestring, q->topic) == 0 &&
                    strcmp(b->valuestring, q->broker) == 0 && qi->valueint == q->queue_id) {
                    *out = (int64_t)o->valuedouble;
                    rc = 0;
                }
            }
            cJSON_Delete(root);
        }
    }
    free(text);
    fclose(f);
    return rc;
}

static int
mkdirs(char *path)
{
    char *p;

    for (p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            *p = '/';
            return -errno;
        }
        *p = '/';
    }
    return 0;
}

/* Broadcasting: writes every pq's offset (tmp file, fsync, rename). */
static int
local_write(spk_consumer *c)
{
    struct sbuf sb = SBUF_INIT;
    char path[1024], tmp[1024];
    struct pq *pq;
    int fd, rc = 0, first = 1;

    sb_puts(&sb, "{\"offsetTable\":[");
    pthread_mutex_lock(&c->lock);
    for (pq = c->pqs; pq; pq = pq->next) {
        if (pq->committed < 0)
            continue;
        if (!first)
            sb_putc(&sb, ',');
        first = 0;
        sb_puts(&sb, "{\"topic\":");
        sb_json_cstr(&sb, pq->q.topic);
        sb_puts(&sb, ",\"brokerName\":");
        sb_json_cstr(&sb, pq->q.broker);
        sb_printf(&sb, ",\"queueId\":%d,\"offset\":%lld}", pq->q.queue_id,
                  (long long)pq->committed);
        pq->persisted = pq->committed;
    }
    pthread_mutex_unlock(&c->lock);
    sb_puts(&sb, "]}\n");
    if (sb.err) {
        sb_free(&sb);
        return sb.err;
    }
    local_path(c, path, sizeof(path), 0);
    local_path(c, tmp, sizeof(tmp), 1);
    rc = mkdirs(path);
    if (!rc) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            rc = -errno;
        } else {
            if (write(fd, sb.p, sb.len) != (ssize_t)sb.len || fsync(fd) != 0)
                rc = -EIO;
            close(fd);
            if (!rc && rename(tmp, path) != 0)
                rc = -errno;
        }
    }
    if (rc)
        spk_log(SPK_LOG_WARN, CL_LOG, "cannot write offsets to %s: %s", path, spk_strerror(rc));
    sb_free(&sb);
    return rc;
}

/* Commits one pq's offset to its broker (sync or oneway). */
static int
remote_commit(spk_consumer *c, const spk_queue *q, const char *addr, int64_t offset, int sync)
{
    struct proto_reply req;
    int rc;

    proto_reply_init(&req, CL_REQ_UPDATE_CONSUMER_OFFSET);
    proto_reply_ext(&req, "consumerGroup", "%s", c->group);
    proto_reply_ext(&req, "topic", "%s", q->topic);
    proto_reply_ext(&req, "queueId", "%d", q->queue_id);
    proto_reply_ext_i64(&req, "commitOffset", offset);
    if (sync) {
        struct proto_cmd cmd;
        uint8_t *frame = NULL;

        rc = cl_call(c->in, addr, &req, CALL_TIMEOUT_MS, &cmd, &frame);
        if (!rc) {
            if (cmd.code != CL_RC_SUCCESS)
                rc = SPK_EBROKER;
            proto_cmd_free(&cmd);
            free(frame);
        }
    } else {
        rc = cl_oneway(c->in, addr, &req);
    }
    proto_reply_free(&req);
    return rc;
}

/* Persists every changed offset (clustering: to brokers; broadcasting: file). */
static int
persist_all(spk_consumer *c, int sync)
{
    struct {
        spk_queue q;
        char addr[64];
        int64_t off;
    } *todo = NULL;
    size_t n = 0, cap = 0, i;
    struct pq *pq;
    int rc = 0;

    if (c->broadcast)
        return local_write(c);
    pthread_mutex_lock(&c->lock);
    for (pq = c->pqs; pq; pq = pq->next) {
        if (pq->committed < 0 || pq->committed == pq->persisted)
            continue;
        if (n == cap) {
            void *nt;

            cap = cap ? cap * 2 : 16;
            nt = realloc(todo, cap * sizeof(*todo));
            if (!nt)
                break;
            todo = nt;
        }
        todo[n].q = pq->q;
        memcpy(todo[n].addr, pq->addr, 64);
        todo[n].off = pq->committed;
        pq->persisted = pq->committed;
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    for (i = 0; i < n; i++) {
        int r = remote_commit(c, &todo[i].q, todo[i].addr, todo[i].off, sync);

        if (r && !rc)
            rc = r;
    }
    free(todo);
    return rc;
}

/* The offset a newly assigned queue starts from. */
static int
start_offset(spk_consumer *c, const spk_queue *q, const char *addr, int64_t *out)
{
    int rc;

    if (c->broadcast)
        rc = local_read(c, q, out);
    else
        rc = offset_call(c, addr, CL_REQ_QUERY_CONSUMER_OFFSET, q, 0, out);
    if (rc != SPK_ENOTFOUND)
        return rc;
    if (strncmp(q->topic, "%RETRY%", 7) == 0 || c->from_where == 1) {
        *out = 0;
        return 0;
    }
    if (c->from_where == 2)
        return offset_call(c, addr, CL_REQ_SEARCH_OFFSET_BY_TIMESTAMP, q, c->consume_ts_ms, out);
    return offset_call(c, addr, CL_REQ_GET_MAX_OFFSET, q, 0, out);
}

/* ----- queue locks (orderly) ------------------------------------------- */
/*
 * LOCK_BATCH_MQ (or UNLOCK) for queues of one broker. With <locked>,
 * locked[i] says whether qs[i] is now held. Returns 0 or an error.
 */
static int
lock_call(spk_consumer *c, const char *addr, const spk_queue *qs, size_t n, int unlock,
          int *locked)
{
    struct sbuf sb = SBUF_INIT;
    struct proto_reply req;
    struct proto_cmd cmd;
    uint8_t *frame = NULL;
    size_t i;
    int rc;

    sb_puts(&sb, "{\"clientId\":");
    sb_json_cstr(&sb, cl_instance_client_id(c->in));
    sb_puts(&sb, ",\"consumerGroup\":");
    sb_json_cstr(&sb, c->group);
    sb_puts(&sb, ",\"mqSet\":[");
    for (i = 0; i < n; i++) {
        sb_puts(&sb, i ? ",{\"brokerName\":" : "{\"brokerName\":");
        sb_json_cstr(&sb, qs[i].broker);
        sb_printf(&sb, ",\"queueId\":%d,\"topic\":", qs[i].queue_id);
        sb_json_cstr(&sb, qs[i].topic);
        sb_putc(&sb, '}');
    }
    sb_puts(&sb, "],\"onlyThisBroker\":false}");
    if (sb.err) {
        sb_free(&sb);
        return -ENOMEM;
    }
    proto_reply_init(&req, unlock ? CL_REQ_UNLOCK_BATCH_MQ : CL_REQ_LOCK_BATCH_MQ);
    req.ext_present = 1;
    proto_reply_body(&req, sb.p, sb.len);
    rc = cl_call(c->in, addr, &req, CALL_TIMEOUT_MS, &cmd, &frame);
    proto_reply_free(&req);
    if (rc)
        return rc;
    if (cmd.code != CL_RC_SUCCESS) {
        cl_set_broker_error(cmd.code, cmd.remark);
        rc = SPK_EBROKER;
    } else if (!unlock && locked) {
        cJSON *root = cJSON_ParseWithLength((const char *)cmd.body, cmd.body_len);
        cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "lockOKMQSet"), *e;

        for (i = 0; i < n; i++)
            locked[i] = 0;
        cJSON_ArrayForEach(e, set)
        {
            cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "topic");
            cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "brokerName");
            cJSON *qi = cJSON_GetObjectItemCaseSensitive(e, "queueId");

            if (!cJSON_IsString(t) || !cJSON_IsString(b) || !cJSON_IsNumber(qi))
                continue;
            for (i = 0; i < n; i++)
                if (qs[i].queue_id == qi->valueint && strcmp(qs[i].topic, t->valuestring) == 0 &&
                    strcmp(qs[i].broker, b->valuestring) == 0)
                    locked[i] = 1;
        }
        if (!root)
            rc = SPK_EFORMAT;
        cJSON_Delete(root);
    }
    proto_cmd_free(&cmd);
    free(frame);
    return rc;
}

/* Renews the locks of every orderly pq (scheduler). */
static void
renew_locks(spk_consumer *c, int64_t now)
{
    struct {
        spk_queue q;
        char addr[64];
    } *qs = NULL;
    size_t n = 0, i;
    struct pq *pq;

    pthread_mutex_lock(&c->lock);
    for (pq = c->pqs; pq; pq = pq->next)
        n += !pq->dropped;
    if (n)
        qs = malloc(n * sizeof(*qs));
    n = 0;
    for (pq = c->pqs; qs && pq; pq = pq->next) {
        if (pq->dropped)
            continue;
        qs[n].q = pq->q;
        memcpy(qs[n].addr, pq->addr, 64);
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    for (i = 0; i < n; i++) {
        int ok = 0;

        /* One queue per call keeps this simple; groups hold few queues. */
        if (lock_call(c, qs[i].addr, &qs[i].q, 1, 0, &ok) != 0)
            ok = -1; /* unknown: keep the old state until it goes stale */
        pthread_mutex_lock(&c->lock);
        pq = find_pq(c, &qs[i].q);
        if (pq && ok == 1) {
            pq->locked = 1;
            pq->lock_ms = now;
        } else if (pq && ok == 0) {
            pq->locked = 0;
        }
        pthread_mutex_unlock(&c->lock);
    }
    free(qs);
}

/* ----- pulls ------------------------------------------------------------ */
struct pull_ctx {
    spk_consumer *c;
    struct pq *pq;
    int gen;
    int64_t offset;
};

static void
pull_done(void *ud, int err, const struct proto_cmd *cmd, const uint8_t *frame, size_t len)
{
    struct pull_ctx *x = ud;
    spk_consumer *c = x->c;
    struct pq *pq = x->pq;
    spk_message **msgs = NULL;
    size_t n = 0, cap = 0, i, first;
    int64_t next = -1;
    int code = err ? -1 : cmd->code, again = 0, rc = 0;
    const struct sub *s;

    (void)frame;
    (void)len;
    if (!err) {
        const char *v = proto_ext_get(cmd, "nextBeginOffset");

        if (v)
            next = strtoll(v, NULL, 10);
        if (code == CL_RC_SUCCESS && cmd->body_len)
            rc = cl_decode_messages(cmd->body, cmd->body_len, pq->q.broker, &msgs, &n, &cap);
    }
    pthread_mutex_lock(&c->lock);
    if (x->gen == pq->gen) /* else a seek already let a newer pull start */
        pq->pulling = 0;
    pq->refs--;
    if (pq->dropped || x->gen != pq->gen || c->stopping) {
        pthread_mutex_unlock(&c->lock);
        spk_messages_free(msgs, n);
        free(x);
        return;
    }
    s = find_sub(c, pq->q.topic);
    if (err || rc < 0 || next < 0 ||
        (code != CL_RC_SUCCESS && code != CL_RC_PULL_NOT_FOUND &&
         code != CL_RC_PULL_RETRY_IMMEDIATELY && code != CL_RC_PULL_OFFSET_MOVED)) {
        pq->pull_after_ms = spk_mono_ms() + PULL_ERROR_DELAY_MS;
        if (!err && code != -1 && rc >= 0)
            spk_log(SPK_LOG_WARN, CL_LOG, "pull %s:%s:%d refused: %d %s", pq->q.topic,
                    pq->q.broker, pq->q.queue_id, code, cmd->remark ? cmd->remark : "");
    } else if (code == CL_RC_PULL_OFFSET_MOVED) {
        spk_log(SPK_LOG_WARN, CL_LOG, "offset %lld of %s:%s:%d is out of range; moving to %lld",
                (long long)x->offset, pq->q.topic, pq->q.broker, pq->q.queue_id,
                (long long)next);
        ring_clear(pq);
        pq->gen++;
        pq->next_offset = next;
        ring_advance(pq);
        pq->committed = next;
        again = 1;
    } else {
        first = pq->count;
        for (i = 0; i < n; i++) {
            spk_message *m = msgs[i];

            if (m->queue_offset < x->offset)
                continue; /* never before what was asked for */
            if (s && !s->is_retry && !matches(s, m)) {
                spk_message_destroy(m);
                msgs[i] = NULL;
                continue;
            }
            if (strncmp(m->topic, "%RETRY%", 7) == 0) {
                const char *orig = spk_message_property(m, "RETRY_TOPIC");

                if (orig)
                    spk_message_set_topic(m, orig);
            }
            if (ring_push(pq, m) == 0)
                msgs[i] = NULL;
        }
        pq->next_offset = next;
        ring_advance(pq);
        dispatch(c, pq, first);
        again = 1;
    }
    if (again && !pq_full(c, pq))
        pull_start(c, pq);
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
    for (i = 0; i < n; i++)
        spk_message_destroy(msgs[i]);
    free(msgs);
    free(x);
}

static int
pull_eligible(spk_consumer *c, struct pq *pq)
{
    return !pq->pulling && !pq->dropped && !c->stopping && pq->next_offset >= 0 &&
           (c->mode != CM_ORDERLY || pq->locked);
}

/*
 * Asks for the pq's next pull; c->lock held. The request goes out in
 * flush_pulls(), after the lock is released (INV-5: a write may block on
 * a full socket, and the reply that would free it needs the lock).
 */
static void
pull_start(spk_consumer *c, struct pq *pq)
{
    if (pq->pull_queued || !pull_eligible(c, pq))
        return;
    pq->pull_queued = 1;
    pq->refs++;
    pq->pull_next = c->pull_list;
    c->pull_list = pq;
}

/* Sends the pulls pull_start() queued; c->lock not held. */
static void
flush_pulls(spk_consumer *c)
{
    for (;;) {
        struct proto_reply req;
        struct pull_ctx *x = NULL;
        const struct sub *s;
        struct pq *pq;
        char addr[64];
        int sysflag = CL_PULL_SUSPEND | CL_PULL_SUBSCRIPTION;
        int rc;

        pthread_mutex_lock(&c->lock);
        pq = c->pull_list;
        if (!pq) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        c->pull_list = pq->pull_next;
        pq->pull_queued = 0;
        if (!pull_eligible(c, pq) || !(x = calloc(1, sizeof(*x)))) {
            pq->refs--;
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        s = find_sub(c, pq->q.topic);
        x->c = c;
        x->pq = pq;
        x->gen = pq->gen;
        x->offset = pq->next_offset;
        if (!c->broadcast && pq->committed > 0)
            sysflag |= CL_PULL_COMMIT_OFFSET;
        proto_reply_init(&req, CL_REQ_PULL_MESSAGE);
        proto_reply_ext(&req, "consumerGroup", "%s", c->group);
        proto_reply_ext(&req, "topic", "%s", pq->q.topic);
        proto_reply_ext(&req, "queueId", "%d", pq->q.queue_id);
        proto_reply_ext_i64(&req, "queueOffset", pq->next_offset);
        proto_reply_ext(&req, "maxMsgNums", "%d", c->pull_batch);
        proto_reply_ext(&req, "sysFlag", "%d", sysflag);
        proto_reply_ext_i64(&req, "commitOffset", pq->committed > 0 ? pq->committed : 0);
        proto_reply_ext(&req, "suspendTimeoutMillis", "%d", PULL_SUSPEND_MS);
        proto_reply_ext(&req, "subscription", "%s", s ? s->expr : "*");
        proto_reply_ext_i64(&req, "subVersion", s ? s->version : 0);
        proto_reply_ext(&req, "expressionType", "TAG");
        memcpy(addr, pq->addr, sizeof(addr));
        pq->pulling = 1; /* the queued reference now belongs to the pull */
        pthread_mutex_unlock(&c->lock);
        rc = cl_call_async(c->in, addr, &req, PULL_TIMEOUT_MS, pull_done, x);
        proto_reply_free(&req);
        if (rc) {
            pthread_mutex_lock(&c->lock);
            if (x->gen == pq->gen)
                pq->pulling = 0;
            pq->refs--;
            pq->pull_after_ms = spk_mono_ms() + PULL_ERROR_DELAY_MS;
            pthread_mutex_unlock(&c->lock);
            free(x);
        }
    }
}

/* ----- rebalance -------------------------------------------------------- */
static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The group's members, from a broker of <topic>. */
static int
member_list(spk_consumer *c, const spk_queue *rq, size_t nrq, char ***ids, size_t *nids)
{
    struct proto_reply req;
    struct proto_cmd cmd;
    uint8_t *frame = NULL;
    char addr[64];
    cJSON *root, *list, *e;
    char **out = NULL;
    size_t n = 0, i;
    int rc;

    for (i = 0; i < nrq; i++)
        if (cl_broker_addr(c->in, rq[i].broker, 1, addr) == 0)
            break;
    if (i == nrq)
        return SPK_ENOROUTE;
    proto_reply_init(&req, CL_REQ_GET_CONSUMER_LIST_BY_GROUP);
    proto_reply_ext(&req, "consumerGroup", "%s", c->group);
    rc = cl_call(c->in, addr, &req, CALL_TIMEOUT_MS, &cmd, &frame);
    proto_reply_free(&req);
    if (rc)
        return rc;
    if (cmd.code != CL_RC_SUCCESS) {
        proto_cmd_free(&cmd);
        free(frame);
        return SPK_EBROKER;
    }
    root = cJSON_ParseWithLength((const char *)cmd.body, cmd.body_len);
    list = cJSON_GetObjectItemCaseSensitive(root, "consumerIdList");
    if (cJSON_IsArray(list))
        out = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*out));
    cJSON_ArrayForEach(e, list)
    {
        if (out && cJSON_IsString(e))
            out[n++] = strdup(e->valuestring);
    }
    cJSON_Delete(root);
    proto_cmd_free(&cmd);
    free(frame);
    if (!out)
        return SPK_EFORMAT;
    qsort(out, n, sizeof(*out), cmp_str);
    *ids = out;
    *nids = n;
    return 0;
}

/* RocketMQ's AllocateMessageQueueAveragely: [start, start+count) of all. */
void
cl_allocate(size_t nq, size_t nc, size_t idx, size_t *start, size_t *count)
{
    size_t mod = nq % nc, avg;

    if (nq <= nc)
        avg = 1;
    else
        avg = (mod > 0 && idx < mod) ? nq / nc + 1 : nq / nc;
    *start = (mod > 0 && idx < mod) ? idx * avg : idx * avg + mod;
    *count = *start >= nq ? 0 : (avg < nq - *start ? avg : nq - *start);
}

/* Drops the pqs of <topic> not in want[0..n). c->lock held. */
static void
drop_unwanted(spk_consumer *c, const char *topic, const spk_queue *want, size_t n)
{
    struct pq *pq;
    size_t i;

    for (pq = c->pqs; pq; pq = pq->next) {
        int keep = 0;

        if (pq->dropped || strcmp(pq->q.topic, topic) != 0)
            continue;
        for (i = 0; i < n && !keep; i++)
            keep = want[i].queue_id == pq->q.queue_id && strcmp(want[i].broker, pq->q.broker) == 0;
        if (!keep) {
            pq->dropped = 1;
            spk_log(SPK_LOG_INFO, CL_LOG, "queue %s:%s:%d released by rebalance", pq->q.topic,
                    pq->q.broker, pq->q.queue_id);
        }
    }
}

/* Adds a pq for <q> (scheduler; blocking calls, no lock held). */
static int
add_queue(spk_consumer *c, const spk_queue *q)
{
    struct pq *pq;
    char addr[64];
    int64_t off = 0;
    int locked = 1, rc;

    if (cl_broker_addr(c->in, q->broker, 0, addr) != 0 &&
        cl_broker_addr(c->in, q->broker, 1, addr) != 0)
        return SPK_ENOROUTE;
    if (c->mode == CM_ORDERLY) {
        rc = lock_call(c, addr, q, 1, 0, &locked);
        if (rc)
            return rc;
        if (!locked)
            return -EAGAIN; /* another member still holds it */
    }
    rc = start_offset(c, q, addr, &off);
    if (rc) {
        if (c->mode == CM_ORDERLY)
            lock_call(c, addr, q, 1, 1, NULL);
        return rc;
    }
    pq = calloc(1, sizeof(*pq));
    if (!pq)
        return -ENOMEM;
    pq->q = *q;
    memcpy(pq->addr, addr, 64);
    pq->next_offset = off;
    pq->committed = off;
    pq->persisted = off;
    pq->locked = c->mode == CM_ORDERLY;
    pq->lock_ms = spk_mono_ms();
    pthread_mutex_lock(&c->lock);
    if (c->stopping || find_pq(c, q)) {
        pthread_mutex_unlock(&c->lock);
        free(pq);
        return 0;
    }
    pq->next = c->pqs;
    c->pqs = pq;
    spk_log(SPK_LOG_INFO, CL_LOG, "queue %s:%s:%d assigned, from offset %lld", q->topic, q->broker,
            q->queue_id, (long long)off);
    pull_start(c, pq);
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
    return 0;
}

/* Returns 1 when some queue could not be taken yet (retry soon). */
static int
rebalance_topic(spk_consumer *c, const char *topic)
{
    spk_queue *rq = NULL, *want;
    size_t nrq = 0, nwant = 0, start = 0, i;
    char **ids = NULL;
    size_t nids = 0;
    int rc, pending = 0;

    rc = cl_route_get(c->in, topic, 0, NULL, NULL, &rq, &nrq);
    if (rc == SPK_ENOROUTE)
        rc = cl_route_get(c->in, topic, 1, NULL, NULL, &rq, &nrq);
    if (rc) {
        spk_log(SPK_LOG_DEBUG, CL_LOG, "no route for %s yet: %s", topic, spk_strerror(rc));
        return 0;
    }
    want = rq;
    nwant = nrq;
    if (!c->broadcast) {
        const char *me = cl_instance_client_id(c->in);

        rc = member_list(c, rq, nrq, &ids, &nids);
        if (rc) {
            free(rq);
            return 1;
        }
        for (i = 0; i < nids; i++)
            if (strcmp(ids[i], me) == 0)
                break;
        if (i == nids) {
            nwant = 0; /* the broker does not know this client yet */
            pending = 1;
        } else {
            cl_allocate(nrq, nids, i, &start, &nwant);
        }
        want = rq + start;
        for (i = 0; i < nids; i++)
            free(ids[i]);
        free(ids);
    }
    pthread_mutex_lock(&c->lock);
    drop_unwanted(c, topic, want, nwant);
    pthread_mutex_unlock(&c->lock);
    for (i = 0; i < nwant; i++) {
        int have;

        pthread_mutex_lock(&c->lock);
        have = find_pq(c, &want[i]) != NULL;
        pthread_mutex_unlock(&c->lock);
        if (have)
            continue;
        rc = add_queue(c, &want[i]);
        if (rc) {
            pending = 1;
            if (rc != -EAGAIN)
                spk_log(SPK_LOG_INFO, CL_LOG, "queue %s:%s:%d not taken yet: %s", want[i].topic,
                        want[i].broker, want[i].queue_id, spk_strerror(rc));
        }
    }
    free(rq);
    return pending;
}

static int
rebalance(spk_consumer *c)
{
    size_t i;
    int pending = 0;

    for (i = 0; i < c->nsubs; i++)
        pending |= rebalance_topic(c, c->subs[i].topic);
    return pending;
}

/* Frees dropped pqs nothing refers to, committing and unlocking first. */
static void
reap(spk_consumer *c)
{
    for (;;) {
        struct pq **pp, *pq = NULL, *gone = NULL;
        spk_queue q;
        char addr[64];
        int64_t off = -1;
        int unlock = 0;

        pthread_mutex_lock(&c->lock);
        for (pp = &c->pqs; *pp; pp = &(*pp)->next) {
            struct pq *x = *pp;

            if (!x->dropped)
                continue;
            if (x->released && x->refs == 0) {
                gone = x;
                *pp = x->next;
                break;
            }
            /* Give the queue up as soon as no listener runs on it; a pull
             * still held by the broker only delays freeing the memory. */
            if (!x->released && !x->consuming) {
                pq = x;
                pq->released = 1;
                q = pq->q;
                memcpy(addr, pq->addr, sizeof(addr));
                off = pq->committed;
                unlock = c->mode == CM_ORDERLY && pq->locked;
                pq->locked = 0;
                break;
            }
        }
        pthread_mutex_unlock(&c->lock);
        if (gone) {
            pq_free(gone);
            continue;
        }
        if (!pq)
            return;
        if (!c->broadcast && off >= 0) /* (broadcasting: the file keeps it) */
            remote_commit(c, &q, addr, off, 1);
        if (unlock)
            lock_call(c, addr, &q, 1, 1, NULL); /* INV-3: after the commit */
    }
}

/* ----- consumption ------------------------------------------------------ */
/* CONSUMER_SEND_MSG_BACK: 0 when the broker took the message. */
static int
send_back(spk_consumer *c, const spk_message *m, int delay_level)
{
    struct proto_reply req;
    struct proto_cmd cmd;
    uint8_t *frame = NULL;
    char addr[64];
    int rc;

    if (cl_broker_addr(c->in, m->broker, 0, addr) != 0)
        return SPK_ENOROUTE;
    proto_reply_init(&req, CL_REQ_CONSUMER_SEND_MSG_BACK);
    proto_reply_ext_i64(&req, "offset", m->commitlog_offset);
    proto_reply_ext(&req, "group", "%s", c->group);
    proto_reply_ext(&req, "delayLevel", "%d", delay_level);
    proto_reply_ext(&req, "originMsgId", "%s", spk_message_id(m));
    proto_reply_ext(&req, "originTopic", "%s", m->topic);
    proto_reply_ext(&req, "unitMode", "false");
    proto_reply_ext(&req, "maxReconsumeTimes", "%d", c->max_reconsume);
    rc = cl_call(c->in, addr, &req, CALL_TIMEOUT_MS, &cmd, &frame);
    proto_reply_free(&req);
    if (rc)
        return rc;
    if (cmd.code != CL_RC_SUCCESS) {
        cl_set_broker_error(cmd.code, cmd.remark);
        rc = SPK_EBROKER;
    }
    proto_cmd_free(&cmd);
    free(frame);
    return rc;
}

static void
mark_done(spk_consumer *c, struct pq *pq, int64_t offset)
{
    struct entry *e = ring_find(pq, offset);

    if (e && e->state == E_QUEUED)
        pq->queued--;
    if (e)
        e->state = E_DONE;
    ring_advance(pq);
    if (!pq->pulling && !pq_full(c, pq))
        pull_start(c, pq);
}

static void
run_concurrent(spk_consumer *c, struct task *t)
{
    spk_consume_result r = SPK_CONSUME_SUCCESS;
    int dropped, requeue = 0;

    pthread_mutex_lock(&c->lock);
    dropped = t->pq->dropped;
    pthread_mutex_unlock(&c->lock);
    /* A queue given away by rebalance is not consumed further here: its
     * committed offset stays at the first message not done, so the new
     * owner starts there (INV-2). */
    if (!dropped) {
        r = c->cb(t->m, c->cb_ud);
        pthread_mutex_lock(&c->lock);
        /* "Later" from a listener that is being shut down means "not
         * consumed": left for the next start, not sent back. */
        dropped = r != SPK_CONSUME_SUCCESS && c->stopping;
        pthread_mutex_unlock(&c->lock);
    }
    if (!dropped) {
        if (r != SPK_CONSUME_SUCCESS && send_back(c, t->m, 0) != 0) {
            spk_log(SPK_LOG_WARN, CL_LOG, "message %s could not go back to the broker; "
                    "consuming it again here in %d ms", spk_message_id(t->m), LOCAL_RETRY_MS);
            requeue = 1;
        }
    }
    pthread_mutex_lock(&c->lock);
    if (dropped) {
        t->pq->refs--;
    } else if (requeue) {
        t->pq->refs--;
        task_push(c, t->pq, t->m, t->offset, spk_mono_ms() + LOCAL_RETRY_MS);
    } else {
        mark_done(c, t->pq, t->offset);
        t->pq->refs--;
    }
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
}

/* Orderly: may this thread hand pq's next message out? c->lock held. */
static int
orderly_ok(struct pq *pq, int64_t now)
{
    return !pq->dropped && pq->locked && now - pq->lock_ms < LOCK_STALE_MS &&
           now >= pq->suspend_until_ms;
}

static void
run_orderly(spk_consumer *c, struct task *t)
{
    struct pq *pq = t->pq;
    int done = 0;

    pthread_mutex_lock(&c->lock);
    pq->task_queued = 0;
    if (pq->consuming) { /* cannot happen: one task per pq; keep INV-3 anyway */
        pq->refs--;
        pthread_mutex_unlock(&c->lock);
        return;
    }
    pq->consuming = 1;
    while (done < ORDERLY_BATCH && !c->stopping && orderly_ok(pq, spk_mono_ms())) {
        struct entry *e = NULL;
        spk_consume_result r;
        size_t i;
        int64_t off;

        for (i = 0; i < pq->count; i++) {
            e = ring_at(pq, i);
            if (e->state == E_QUEUED)
                break;
            e = NULL;
        }
        if (!e)
            break;
        e->state = E_TAKEN;
        pq->queued--;
        off = e->offset;
        pthread_mutex_unlock(&c->lock);
        r = c->cb(e->m, c->cb_ud);
        pthread_mutex_lock(&c->lock);
        e = ring_find(pq, off);
        if (!e)
            break;
        if (r == SPK_CONSUME_SUCCESS) {
            e->state = E_DONE;
            ring_advance(pq);
            done++;
            continue;
        }
        e->local_retries++;
        e->m->reconsume_times++;
        if (c->max_reconsume >= 0 && e->local_retries > c->max_reconsume) {
            spk_message *m = e->m;

            pthread_mutex_unlock(&c->lock);
            /* delayLevel -1: straight to the group's DLQ */
            int rc = send_back(c, m, -1);
            pthread_mutex_lock(&c->lock);
            e = ring_find(pq, off);
            if (!e)
                break;
            if (rc == 0) {
                e->state = E_DONE;
                ring_advance(pq);
                continue;
            }
        }
        e->state = E_QUEUED;
        pq->queued++;
        pq->suspend_until_ms = spk_mono_ms() + c->suspend_ms;
        break;
    }
    pq->consuming = 0;
    pq->refs--;
    if (!pq->dropped && pq->count > 0) {
        int64_t now = spk_mono_ms();

        if (orderly_ok(pq, now) && !pq->task_queued) {
            pq->task_queued = 1;
            task_push(c, pq, NULL, 0, 0);
        }
        /* else the tick re-dispatches once the pause ends or the lock returns */
    }
    if (!pq->pulling && !pq_full(c, pq))
        pull_start(c, pq);
    pthread_cond_broadcast(&c->idle_cond);
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
}

static void *
worker_main(void *arg)
{
    spk_consumer *c = arg;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        struct task *t;

        while (!c->tasks && !c->stopping)
            pthread_cond_wait(&c->task_cond, &c->lock);
        if (c->stopping)
            break;
        t = task_pop(c);
        c->running_tasks++;
        pthread_mutex_unlock(&c->lock);
        if (t->m)
            run_concurrent(c, t);
        else
            run_orderly(c, t);
        free(t);
        pthread_mutex_lock(&c->lock);
        c->running_tasks--;
        pthread_cond_broadcast(&c->idle_cond);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ----- the scheduler's tick -------------------------------------------- */
static void
consumer_tick(void *owner, int64_t now)
{
    spk_consumer *c = owner;
    struct task **tp;
    struct pq *pq;
    int do_rebalance;

    pthread_mutex_lock(&c->lock);
    do_rebalance = c->rebalance_now || now >= c->next_rebalance;
    c->rebalance_now = 0;
    pthread_mutex_unlock(&c->lock);
    if (do_rebalance) {
        int pending = rebalance(c);

        pthread_mutex_lock(&c->lock);
        c->next_rebalance = now + (pending ? LOCK_RETRY_MS : c->rebalance_interval);
        pthread_mutex_unlock(&c->lock);
    }
    if (c->mode == CM_ORDERLY && now >= c->next_lock) {
        renew_locks(c, now);
        c->next_lock = now + LOCK_RENEW_MS;
    }
    pthread_mutex_lock(&c->lock);
    for (tp = &c->delayed; *tp;) {
        struct task *t = *tp;

        if (t->not_before_ms > now) {
            tp = &t->next;
            continue;
        }
        *tp = t->next;
        t->next = NULL;
        t->not_before_ms = 0;
        *c->tasks_tail = t;
        c->tasks_tail = &t->next;
        c->ntasks++;
        pthread_cond_signal(&c->task_cond);
    }
    for (pq = c->pqs; pq; pq = pq->next) {
        if (pq->dropped)
            continue;
        if (!pq->pulling && now >= pq->pull_after_ms && !pq_full(c, pq))
            pull_start(c, pq);
        if (c->mode == CM_ORDERLY && pq->count > 0 && !pq->task_queued && !pq->consuming &&
            orderly_ok(pq, now)) {
            pq->task_queued = 1;
            task_push(c, pq, NULL, 0, 0);
        }
    }
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
    reap(c);
    if (now >= c->next_persist) {
        if (c->kind == CK_PUSH || c->auto_commit)
            persist_all(c, 0);
        c->next_persist = now + c->persist_interval;
    }
}

static void
consumer_heartbeat(void *owner, struct sbuf *sb)
{
    spk_consumer *c = owner;
    size_t i, j;

    sb_puts(sb, "\"consumerDataSet\":[{\"consumeFromWhere\":");
    sb_puts(sb, c->from_where == 1   ? "\"CONSUME_FROM_FIRST_OFFSET\""
                : c->from_where == 2 ? "\"CONSUME_FROM_TIMESTAMP\""
                                     : "\"CONSUME_FROM_LAST_OFFSET\"");
    sb_printf(sb, ",\"consumeType\":\"%s\",\"groupName\":",
              c->kind == CK_PUSH ? "CONSUME_PASSIVELY" : "CONSUME_ACTIVELY");
    sb_json_cstr(sb, c->group);
    sb_printf(sb, ",\"messageModel\":\"%s\",\"subscriptionDataSet\":[",
              c->broadcast ? "BROADCASTING" : "CLUSTERING");
    for (i = 0; i < c->nsubs; i++) {
        const struct sub *s = &c->subs[i];

        sb_puts(sb, i ? ",{\"classFilterMode\":false,\"codeSet\":["
                      : "{\"classFilterMode\":false,\"codeSet\":[");
        for (j = 0; j < s->ntags; j++)
            sb_printf(sb, "%s%d", j ? "," : "", (int)cl_java_hash(s->tags[j]));
        sb_puts(sb, "],\"expressionType\":\"TAG\",\"subString\":");
        sb_json_cstr(sb, s->expr);
        sb_printf(sb, ",\"subVersion\":%lld,\"tagsSet\":[", (long long)s->version);
        for (j = 0; j < s->ntags; j++) {
            if (j)
                sb_putc(sb, ',');
            sb_json_cstr(sb, s->tags[j]);
        }
        sb_puts(sb, "],\"topic\":");
        sb_json_cstr(sb, s->topic);
        sb_putc(sb, '}');
    }
    sb_puts(sb, "],\"unitMode\":false}],\"producerDataSet\":[]");
}

/* Moves one assigned queue to <offset> (an operator's reset). c->lock held. */
static void
reset_queue(spk_consumer *c, const char *topic, const char *broker, int qid, int64_t offset)
{
    struct pq *pq;

    for (pq = c->pqs; pq; pq = pq->next) {
        if (pq->dropped || pq->q.queue_id != qid || strcmp(pq->q.topic, topic) != 0 ||
            strcmp(pq->q.broker, broker) != 0)
            continue;
        ring_clear(pq);
        pq->gen++; /* INV-4: pulls in flight are from before the reset */
        pq->pulling = 0; /* so the next pull starts now, not when that one returns */
        pq->next_offset = offset;
        ring_advance(pq);
        pq->committed = offset;
        pq->persisted = -1;
        spk_log(SPK_LOG_INFO, CL_LOG, "queue %s:%s:%d reset to offset %lld", topic, broker, qid,
                (long long)offset);
        pull_start(c, pq);
    }
}

/*
 * RESET_CONSUMER_CLIENT_OFFSET (220): body {"offsetTable":{MQ:offset,...}}
 * where each key is a MessageQueue object, as fastjson writes a map keyed
 * by objects (not JSON, so it is scanned here: key object, ':', number).
 */
static void
reset_offsets(spk_consumer *c, const struct proto_cmd *cmd)
{
    const char *p = (const char *)cmd->body, *end = p + cmd->body_len, *g;
    const char *t = memmem(p, cmd->body_len, "\"offsetTable\"", 13);

    g = proto_ext_get(cmd, "group");
    if (!t || (g && strcmp(g, c->group) != 0))
        return;
    p = memchr(t + 13, '{', (size_t)(end - t - 13));
    if (!p)
        return;
    p++;
    pthread_mutex_lock(&c->lock);
    while (p < end) {
        const char *ks = memchr(p, '{', (size_t)(end - p)), *ke;
        cJSON *key, *jt, *jb, *jq;
        char *numend;
        long long off;

        if (!ks)
            break;
        ke = memchr(ks, '}', (size_t)(end - ks));
        if (!ke)
            break;
        key = cJSON_ParseWithLength(ks, (size_t)(ke - ks + 1));
        p = ke + 1;
        while (p < end && (*p == ' ' || *p == ':'))
            p++;
        off = p < end ? strtoll(p, &numend, 10) : -1;
        jt = cJSON_GetObjectItemCaseSensitive(key, "topic");
        jb = cJSON_GetObjectItemCaseSensitive(key, "brokerName");
        jq = cJSON_GetObjectItemCaseSensitive(key, "queueId");
        if (off >= 0 && cJSON_IsString(jt) && cJSON_IsString(jb) && cJSON_IsNumber(jq))
            reset_queue(c, jt->valuestring, jb->valuestring, jq->valueint, off);
        cJSON_Delete(key);
    }
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
}

static void
consumer_request(void *owner, struct cl_conn *conn, const struct proto_cmd *cmd,
                 const uint8_t *frame, size_t len)
{
    spk_consumer *c = owner;

    (void)conn;
    (void)frame;
    (void)len;
    if (cmd->code == CL_REQ_RESET_CONSUMER_CLIENT_OFFSET && cmd->body_len > 0) {
        reset_offsets(c, cmd);
        return;
    }
    if (cmd->code == CL_REQ_NOTIFY_CONSUMER_IDS_CHANGED) {
        pthread_mutex_lock(&c->lock);
        c->rebalance_now = 1;
        pthread_mutex_unlock(&c->lock);
        cl_instance_kick(c->in);
    }
}

/* ----- start and stop --------------------------------------------------- */
int
spk_consumer_start(spk_consumer *c)
{
    struct cl_hooks h;
    char inst[32];
    size_t i;
    int rc;

    if (!c)
        return -EINVAL;
    if (c->started)
        return SPK_ESTATE;
    if (!c->o.namesrv || c->nsubs == 0)
        return SPK_ECONFIG;
    if (c->kind == CK_PUSH && c->mode == CM_NONE)
        return SPK_ECONFIG; /* a push consumer needs a listener */
    if (c->kind == CK_LITE)
        c->mode = CM_NONE;
    if (!c->o.instance_name) {
        /* Clustering members need distinct ids; a broadcasting consumer
         * keeps one across restarts so it finds its offsets file. */
        snprintf(inst, sizeof(inst), "%d", (int)getpid());
        c->o.instance_name = strdup(c->broadcast ? "DEFAULT" : inst);
        if (!c->o.instance_name)
            return -ENOMEM;
    }
    if (c->kind == CK_PUSH && !c->broadcast) {
        char retry[300];

        snprintf(retry, sizeof(retry), "%%RETRY%%%s", c->group);
        if (!find_sub(c, retry)) {
            rc = add_sub(c, retry, "*", 1);
            if (rc)
                return rc;
        }
    }
    memset(&h, 0, sizeof(h));
    h.owner = c;
    h.heartbeat = consumer_heartbeat;
    h.tick = consumer_tick;
    h.on_request = consumer_request;
    rc = cl_instance_create(&c->o, &h, &c->in);
    if (rc)
        return rc;
    for (i = 0; i < c->nsubs; i++) {
        rc = cl_route_get(c->in, c->subs[i].topic, 1, NULL, NULL, NULL, NULL);
        if (rc)
            spk_log(c->subs[i].is_retry ? SPK_LOG_INFO : SPK_LOG_WARN, CL_LOG,
                    "topic %s: %s (will retry)", c->subs[i].topic,
                    spk_strerror(rc));
    }
    cl_heartbeat_all(c->in);
    if (c->kind == CK_PUSH) {
        c->threads = calloc((size_t)c->nthreads, sizeof(*c->threads));
        if (!c->threads) {
            cl_instance_destroy(c->in);
            c->in = NULL;
            return -ENOMEM;
        }
        for (i = 0; i < (size_t)c->nthreads; i++) {
            if (pthread_create(&c->threads[i], NULL, worker_main, c) != 0)
                break;
            c->nstarted++;
        }
    }
    c->rebalance_now = 1;
    c->next_persist = spk_mono_ms() + c->persist_interval;
    c->next_lock = spk_mono_ms() + LOCK_RENEW_MS;
    c->started = 1;
    rc = cl_instance_start(c->in);
    if (rc) {
        c->started = 0;
        pthread_mutex_lock(&c->lock);
        c->stopping = 1;
        pthread_cond_broadcast(&c->task_cond);
        pthread_mutex_unlock(&c->lock);
        for (i = 0; i < (size_t)c->nstarted; i++)
            pthread_join(c->threads[i], NULL);
        cl_instance_destroy(c->in);
        c->in = NULL;
        return rc;
    }
    return 0;
}

void
spk_consumer_shutdown(spk_consumer *c)
{
    struct pq *pq;

    if (!c || !c->started)
        return;
    pthread_mutex_lock(&c->lock);
    if (!c->stopping) {
        /* Stop handing out work; pulls in flight are from before the stop. */
        for (pq = c->pqs; pq; pq = pq->next)
            pq->gen++;
        c->stopping = 1;
        pthread_cond_broadcast(&c->task_cond);
    }
    pthread_mutex_unlock(&c->lock);
}

void
spk_consumer_destroy(spk_consumer *c)
{
    struct task *t;
    struct pq *pq;
    size_t i;

    if (!c)
        return;
    if (c->started) {
        spk_consumer_shutdown(c);
        pthread_mutex_lock(&c->lock);
        /* Let running callbacks finish. */
        while (c->running_tasks > 0)
            pthread_cond_wait(&c->idle_cond, &c->lock);
        pthread_mutex_unlock(&c->lock);
        for (i = 0; i < (size_t)c->nstarted; i++)
            pthread_join(c->threads[i], NULL);
        if (c->kind == CK_PUSH || c->auto_commit) {
            pthread_mutex_lock(&c->lock);
            for (i = 0; i < c->nlast_poll; i++)
                mark_done(c, c->last_poll[i].pq, c->last_poll[i].offset);
            c->nlast_poll = 0;
            pthread_mutex_unlock(&c->lock);
            persist_all(c, 1);
        }
        if (c->mode == CM_ORDERLY) {
            for (pq = c->pqs; pq; pq = pq->next)
                if (pq->locked)
                    lock_call(c, pq->addr, &pq->q, 1, 1, NULL);
        }
        cl_unregister_all(c->in, NULL, c->group);
    }
    cl_instance_destroy(c->in); /* fails pulls still in flight */
    while ((t = task_pop(c))) {
        t->pq->refs--;
        free(t);
    }
    while ((t = c->delayed)) {
        c->delayed = t->next;
        free(t);
    }
    while ((pq = c->pqs)) {
        c->pqs = pq->next;
        pq_free(pq);
    }
    for (i = 0; i < c->nsubs; i++)
        sub_clear(&c->subs[i]);
    free(c->subs);
    free(c->threads);
    free(c->last_poll);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->task_cond);
    pthread_cond_destroy(&c->idle_cond);
    free(c->o.namesrv);
    free(c->o.instance_name);
    free(c->o.client_ip);
    free(c->offset_dir);
    free(c->group);
    free(c);
}

/* ----- lite pull -------------------------------------------------------- */
static int
remember_poll(spk_consumer *c, struct pq *pq, int64_t offset)
{
    if (c->nlast_poll == c->caplast_poll) {
        size_t nc = c->caplast_poll ? c->caplast_poll * 2 : 64;
        struct polled *np = realloc(c->last_poll, nc * sizeof(*np));

        if (!np)
            return -ENOMEM;
        c->last_poll = np;
        c->caplast_poll = nc;
    }
    c->last_poll[c->nlast_poll].pq = pq;
    c->last_poll[c->nlast_poll].offset = offset;
    c->nlast_poll++;
    pq->refs++;
    return 0;
}

/* Marks everything polled so far as consumed; c->lock held. */
static void
ack_polled(spk_consumer *c)
{
    size_t i;

    for (i = 0; i < c->nlast_poll; i++) {
        mark_done(c, c->last_poll[i].pq, c->last_poll[i].offset);
        c->last_poll[i].pq->refs--;
    }
    c->nlast_poll = 0;
}

int
spk_consumer_poll(spk_consumer *c, int timeout_ms, size_t max, spk_message ***msgs, size_t *n)
{
    spk_message **out = NULL;
    size_t cnt = 0;
    struct timespec ts;
    int rc = 0;

    if (!c || !msgs || !n || max == 0)
        return -EINVAL;
    *msgs = NULL;
    *n = 0;
    if (c->kind != CK_LITE)
        return -EINVAL;
    if (!c->started)
        return SPK_ESTATE;
    out = calloc(max, sizeof(*out));
    if (!out)
        return -ENOMEM;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    if (c->auto_commit)
        ack_polled(c);
    while (!c->tasks && !c->stopping) {
        if (pthread_cond_timedwait(&c->task_cond, &c->lock, &ts) != 0)
            break;
    }
    while (cnt < max && c->tasks) {
        struct task *t = task_pop(c);
        struct entry *e = t->pq->dropped ? NULL : ring_find(t->pq, t->offset);

        if (e && e->state == E_QUEUED && e->m) {
            spk_message *m = cl_message_clone(e->m);

            if (!m) {
                rc = -ENOMEM;
                t->pq->refs--;
                free(t);
                break;
            }
            e->state = E_TAKEN;
            t->pq->queued--;
            /* The application owns a copy now; the entry only keeps its
             * offset until the commit. */
            spk_message_destroy(e->m);
            e->m = NULL;
            out[cnt++] = m;
            if (remember_poll(c, t->pq, t->offset) != 0)
                e->state = E_DONE; /* cannot track it: count it consumed */
        }
        t->pq->refs--;
        free(t);
    }
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
    if (rc || cnt == 0) {
        spk_messages_free(out, cnt);
        return rc;
    }
    *msgs = out;
    *n = cnt;
    return 0;
}

int
spk_consumer_commit(spk_consumer *c)
{
    if (!c || c->kind != CK_LITE)
        return -EINVAL;
    if (!c->started)
        return SPK_ESTATE;
    pthread_mutex_lock(&c->lock);
    ack_polled(c);
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
    return persist_all(c, 1);
}

int
spk_consumer_seek(spk_consumer *c, const spk_queue *q, int64_t offset)
{
    struct pq *pq;
    size_t i;

    if (!c || !q || offset < 0 || c->kind != CK_LITE)
        return -EINVAL;
    if (!c->started)
        return SPK_ESTATE;
    pthread_mutex_lock(&c->lock);
    pq = find_pq(c, q);
    if (!pq) {
        pthread_mutex_unlock(&c->lock);
        return SPK_ENOTFOUND;
    }
    /* Forget what was polled from this queue and what is buffered. */
    for (i = 0; i < c->nlast_poll;) {
        if (c->last_poll[i].pq == pq) {
            pq->refs--;
            c->last_poll[i] = c->last_poll[--c->nlast_poll];
        } else {
            i++;
        }
    }
    for (i = 0; i < pq->count; i++) {
        struct entry *e = ring_at(pq, i);

        spk_message_destroy(e->m);
        e->m = NULL;
        e->state = E_DONE;
    }
    pq->queued = 0;
    pq->gen++; /* INV-4 */
    pq->pulling = 0; /* the long poll in flight is stale: pull again now */
    pq->next_offset = offset;
    ring_advance(pq);
    pq->committed = offset;
    pull_start(c, pq);
    pthread_mutex_unlock(&c->lock);
    flush_pulls(c);
    return 0;
}

int
spk_consumer_assignment(spk_consumer *c, spk_queue *q, size_t cap)
{
    struct pq *pq;
    size_t n = 0;

    if (!c || (cap && !q))
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    for (pq = c->pqs; pq; pq = pq->next) {
        if (pq->dropped)
            continue;
        if (n < cap)
            q[n] = pq->q;
        n++;
    }
    pthread_mutex_unlock(&c->lock);
    return (int)n;
}
