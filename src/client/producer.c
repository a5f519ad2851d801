/*
 * producer.c - spk_producer: synchronous, asynchronous, oneway, ordered,
 * batched and transactional sends.
 *
 * A send picks a writable queue of the topic in turn (an atomic counter
 * over the route's sorted queue list), skipping brokers that recently
 * failed or answered slowly, and on a retriable failure tries again on
 * another broker until retryTimesWhenSendFailed or sendMsgTimeout runs
 * out, as RocketMQ's DefaultMQProducer does.
 *
 * Invariants:
 *   INV-1  A message is encoded once per send (properties string, possibly
 *          compressed body); retries reuse the encoding, so every attempt
 *          carries the same UNIQ_KEY and a consumer can tell a retried
 *          duplicate apart.
 *   INV-2  An asynchronous send calls its callback exactly once: from the
 *          reply's reader thread, from the scheduler on timeout, or from
 *          the caller's thread never (a send that cannot start returns an
 *          error instead).
 *   INV-3  Check-back requests are answered on the producer's own check
 *          thread, never on a connection's reader thread, so a slow
 *          check listener does not stall replies.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "client/internal.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "proto/message.h"
#include "store/record.h"

#define MAX_FAULTS 64
#define ISOLATE_MS 30000
#define BATCH_MAX_BYTES (4u << 20)

struct fault {
    char broker[128];
    int64_t until_ms;
};

struct check_job {
    struct check_job *next;
    char addr[64];
    spk_message *msg;
    int64_t tran_offset;
    int64_t clog_offset;
    char msg_id[64];
    char tx_id[64];
};

struct spk_producer {
    char *group;
    struct cl_opts o;
    int send_timeout;
    int retries;
    int retries_async;
    int compress_over;
    int max_size;
    int latency_fault;
    struct cl_instance *in;
    int started;
    atomic_uint rr;

    pthread_mutex_t fault_lock;
    struct fault faults[MAX_FAULTS];
    size_t nfaults;

    spk_tx_execute_cb tx_exec;
    spk_tx_check_cb tx_check;
    void *tx_ud;
    pthread_t check_thread;
    int check_running;
    pthread_mutex_t check_lock;
    pthread_cond_t check_cond;
    struct check_job *checks, **checks_tail;
    int check_stop;
};

/* One encoded send, shared by its attempts (INV-1). */
struct send_ctx {
    spk_producer *p;
    char topic[256];
    char *props;
    uint8_t *body;
    size_t body_len;
    int32_t sysflag;
    int32_t flag;
    int64_t born_ts;
    int batch;
    char uniq[64];      /* UNIQ_KEY(s) for the result */
    int fixed_queue;    /* -1, or the index chosen by a selector */
    spk_queue queue;    /* the queue of the current attempt */
    char last_broker[128];
    int attempts_left;
    int64_t deadline_ms;
    int64_t start_ms;
    /* async */
    spk_send_cb cb;
    void *ud;
};

static void
ctx_free(struct send_ctx *x)
{
    if (!x)
        return;
    free(x->props);
    free(x->body);
    free(x);
}

/* ----- options ---------------------------------------------------------- */
int
spk_producer_create(const char *group, spk_producer **out)
{
    spk_producer *p;
    char inst[32];

    if (!group || !*group || strlen(group) > 255 || !out)
        return -EINVAL;
    cl_log_default();
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->group = strdup(group);
    snprintf(inst, sizeof(inst), "%d", (int)getpid());
    p->o.instance_name = strdup(inst);
    if (!p->group || !p->o.instance_name) {
        free(p->group);
        free(p->o.instance_name);
        free(p);
        return -ENOMEM;
    }
    p->send_timeout = 3000;
    p->retries = 2;
    p->retries_async = 2;
    p->compress_over = 4096;
    p->max_size = 4 * 1024 * 1024;
    p->latency_fault = 1;
    pthread_mutex_init(&p->fault_lock, NULL);
    pthread_mutex_init(&p->check_lock, NULL);
    pthread_cond_init(&p->check_cond, NULL);
    p->checks_tail = &p->checks;
    *out = p;
    return 0;
}

static int
set_str(char **dst, const char *v)
{
    char *d = strdup(v);

    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

int
spk_producer_set_option(spk_producer *p, const char *name, const char *value)
{
    int64_t v = 0;
    int b = 0;

    if (!p || !name || !value)
        return -EINVAL;
    if (p->started)
        return SPK_ESTATE;
    if (strcmp(name, "namesrvAddr") == 0)
        return *value ? set_str(&p->o.namesrv, value) : -EINVAL;
    if (strcmp(name, "instanceName") == 0)
        return *value ? set_str(&p->o.instance_name, value) : -EINVAL;
    if (strcmp(name, "clientIP") == 0)
        return *value ? set_str(&p->o.client_ip, value) : -EINVAL;
    if (strcmp(name, "sendLatencyFaultEnable") == 0) {
        if (cl_parse_bool(value, &b))
            return -EINVAL;
        p->latency_fault = b;
        return 0;
    }
    if (strcmp(name, "sendMsgTimeout") == 0) {
        if (cl_parse_int(value, 1, 3600000, &v))
            return -EINVAL;
        p->send_timeout = (int)v;
    } else if (strcmp(name, "retryTimesWhenSendFailed") == 0) {
        if (cl_parse_int(value, 0, 100, &v))
            return -EINVAL;
        p->retries = (int)v;
    } else if (strcmp(name, "retryTimesWhenSendAsyncFailed") == 0) {
        if (cl_parse_int(value, 0, 100, &v))
            return -EINVAL;
        p->retries_async = (int)v;
    } else if (strcmp(name, "compressMsgBodyOverHowmuch") == 0) {
        if (cl_parse_int(value, 0, INT32_MAX, &v))
            return -EINVAL;
        p->compress_over = (int)v;
    } else if (strcmp(name, "maxMessageSize") == 0) {
        if (cl_parse_int(value, 1, 16 * 1024 * 1024, &v))
            return -EINVAL;
        p->max_size = (int)v;
    } else if (strcmp(name, "pollNameServerInterval") == 0) {
        if (cl_parse_int(value, 10, 86400000, &v))
            return -EINVAL;
        p->o.poll_ns_interval = (int)v;
    } else if (strcmp(name, "heartbeatBrokerInterval") == 0) {
        if (cl_parse_int(value, 10, 86400000, &v))
            return -EINVAL;
        p->o.heartbeat_interval = (int)v;
    } else {
        return -EINVAL;
    }
    return 0;
}

/* ----- lifecycle -------------------------------------------------------- */
static void
producer_heartbeat(void *owner, struct sbuf *sb)
{
    spk_producer *p = owner;

    sb_puts(sb, "\"consumerDataSet\":[],\"producerDataSet\":[{\"groupName\":");
    sb_json_cstr(sb, p->group);
    sb_puts(sb, "},{\"groupName\":\"CLIENT_INNER_PRODUCER\"}]");
}

static void on_server_request(void *owner, struct cl_conn *c, const struct proto_cmd *cmd,
                              const uint8_t *frame, size_t len);
static void *check_main(void *arg);

int
spk_producer_start(spk_producer *p)
{
    struct cl_hooks h;
    int rc;

    if (!p)
        return -EINVAL;
    if (p->started)
        return SPK_ESTATE;
    if (!p->o.namesrv)
        return SPK_ECONFIG;
    memset(&h, 0, sizeof(h));
    h.owner = p;
    h.heartbeat = producer_heartbeat;
    h.on_request = on_server_request;
    rc = cl_instance_create(&p->o, &h, &p->in);
    if (rc)
        return rc;
    if (p->tx_check) {
        rc = pthread_create(&p->check_thread, NULL, check_main, p);
        if (rc) {
            cl_instance_destroy(p->in);
            p->in = NULL;
            return -rc;
        }
        p->check_running = 1;
    }
    rc = cl_instance_start(p->in);
    if (rc) {
        cl_instance_destroy(p->in);
        p->in = NULL;
        return rc;
    }
    p->started = 1;
    return 0;
}

void
spk_producer_destroy(spk_producer *p)
{
    struct check_job *j;

    if (!p)
        return;
    if (p->started)
        cl_unregister_all(p->in, p->group, NULL);
    if (p->check_running) {
        pthread_mutex_lock(&p->check_lock);
        p->check_stop = 1;
        pthread_cond_signal(&p->check_cond);
        pthread_mutex_unlock(&p->check_lock);
        pthread_join(p->check_thread, NULL);
    }
    cl_instance_destroy(p->in);
    while ((j = p->checks)) {
        p->checks = j->next;
        spk_message_destroy(j->msg);
        free(j);
    }
    pthread_mutex_destroy(&p->fault_lock);
    pthread_mutex_destroy(&p->check_lock);
    pthread_cond_destroy(&p->check_cond);
    free(p->o.namesrv);
    free(p->o.instance_name);
    free(p->o.client_ip);
    free(p->group);
    free(p);
}

/* ----- broker avoidance ------------------------------------------------- */
static int
broker_available(spk_producer *p, const char *broker, int64_t now)
{
    size_t i;
    int ok = 1;

    if (!p->latency_fault)
        return 1;
    pthread_mutex_lock(&p->fault_lock);
    for (i = 0; i < p->nfaults; i++)
        if (strcmp(p->faults[i].broker, broker) == 0)
            ok = p->faults[i].until_ms <= now;
    pthread_mutex_unlock(&p->fault_lock);
    return ok;
}

/*
 * Records an attempt's latency (or a failure): RocketMQ's table of how
 * long to avoid a broker after a reply that took this long.
 */
static void
note_latency(spk_producer *p, const char *broker, int64_t latency_ms, int failed)
{
    static const int64_t lat[] = {50, 100, 550, 1000, 2000, 3000, 15000};
    static const int64_t avoid[] = {0, 0, 30000, 60000, 120000, 180000, 600000};
    int64_t d = 0, now = spk_mono_ms();
    size_t i;
    int k;

    if (!p->latency_fault)
        return;
    if (failed) {
        d = ISOLATE_MS;
    } else {
        for (k = 6; k >= 0; k--) {
            if (latency_ms >= lat[k]) {
                d = avoid[k];
                break;
            }
        }
    }
    pthread_mutex_lock(&p->fault_lock);
    for (i = 0; i < p->nfaults; i++)
        if (strcmp(p->faults[i].broker, broker) == 0)
            break;
    if (i == p->nfaults) {
        if (d == 0 || p->nfaults == MAX_FAULTS) {
            pthread_mutex_unlock(&p->fault_lock);
            return;
        }
        p->nfaults++;
        snprintf(p->faults[i].broker, sizeof(p->faults[i].broker), "%s", broker);
    }
    p->faults[i].until_ms = now + d;
    pthread_mutex_unlock(&p->fault_lock);
}

/*
 * A topic no name server knows yet: send to the brokers that serve the
 * auto-create template TBW102, up to 4 queues each (defaultTopicQueueNums),
 * and let the broker create it, as Java producers do.
 */
static int
default_route(spk_producer *p, const char *topic, spk_queue **wq, size_t *n)
{
    spk_queue *tq = NULL;
    size_t tn = 0, i, k = 0;
    int rc = cl_route_get(p->in, "TBW102", 0, &tq, &tn, NULL, NULL);

    if (rc == SPK_ENOROUTE)
        rc = cl_route_get(p->in, "TBW102", 1, &tq, &tn, NULL, NULL);
    if (rc)
        return rc == SPK_ENOROUTE ? SPK_ENOROUTE : rc;
    for (i = 0; i < tn; i++) {
        if (tq[i].queue_id >= 4)
            continue;
        tq[k] = tq[i];
        snprintf(tq[k].topic, sizeof(tq[k].topic), "%s", topic);
        k++;
    }
    if (k == 0) {
        free(tq);
        return SPK_ENOROUTE;
    }
    *wq = tq;
    *n = k;
    return 0;
}

/* Chooses the queue of the next attempt of <x> into x->queue. */
static int
pick_queue(struct send_ctx *x, int refresh)
{
    spk_producer *p = x->p;
    spk_queue *wq = NULL;
    size_t n = 0, i, best = SIZE_MAX, fallback = SIZE_MAX;
    int64_t now = spk_mono_ms();
    unsigned start;
    int rc;

    rc = cl_route_get(p->in, x->topic, refresh, &wq, &n, NULL, NULL);
    if (rc == SPK_ENOROUTE && !refresh)
        rc = cl_route_get(p->in, x->topic, 1, &wq, &n, NULL, NULL);
    if (rc == SPK_ENOROUTE && x->fixed_queue < 0)
        rc = default_route(p, x->topic, &wq, &n);
    if (rc)
        return rc;
    if (n == 0) {
        free(wq);
        return SPK_ENOROUTE;
    }
    if (x->fixed_queue >= 0) {
        if ((size_t)x->fixed_queue >= n) {
            free(wq);
            return -EINVAL;
        }
        x->queue = wq[x->fixed_queue];
        free(wq);
        return 0;
    }
    start = atomic_fetch_add(&p->rr, 1);
    for (i = 0; i < n && best == SIZE_MAX; i++) {
        size_t k = (start + i) % n;
        int other = !x->last_broker[0] || strcmp(wq[k].broker, x->last_broker) != 0;

        if (other && broker_available(p, wq[k].broker, now))
            best = k;
        else if (other && fallback == SIZE_MAX)
            fallback = k;
    }
    if (best == SIZE_MAX)
        best = fallback != SIZE_MAX ? fallback : start % n;
    x->queue = wq[best];
    free(wq);
    return 0;
}

/* ----- encoding --------------------------------------------------------- */
static int
compress_body(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    uLongf cap = compressBound((uLong)len);
    uint8_t *buf = malloc(cap);

    if (!buf)
        return -ENOMEM;
    if (compress2(buf, &cap, in, (uLong)len, 5) != Z_OK) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    *out_len = cap;
    return 0;
}

static int
check_message(spk_producer *p, const spk_message *m)
{
    if (!m || !m->topic)
        return -EINVAL;
    if ((int64_t)m->body_len > p->max_size)
        return SPK_ETOOBIG;
    return 0;
}

/* Sets UNIQ_KEY on <m> when missing; copies it into out[64]. */
static int
ensure_uniq(spk_message *m, char out[64])
{
    const char *u = spk_message_property(m, "UNIQ_KEY");
    char id[33];
    int rc;

    if (!u) {
        cl_uniq_id(id);
        rc = cl_message_put(m, "UNIQ_KEY", id);
        if (rc)
            return rc;
        u = id;
    }
    snprintf(out, 64, "%s", u);
    return 0;
}

/* Encodes one message into a new context. <m> may gain a UNIQ_KEY. */
static int
encode_single(spk_producer *p, spk_message *m, int32_t sysflag, struct send_ctx **out)
{
    struct send_ctx *x = calloc(1, sizeof(*x));
    struct sbuf sb = SBUF_INIT;
    size_t plen;
    int rc;

    if (!x)
        return -ENOMEM;
    x->p = p;
    x->fixed_queue = -1;
    snprintf(x->topic, sizeof(x->topic), "%s", m->topic);
    rc = ensure_uniq(m, x->uniq);
    if (rc)
        goto fail;
    rc = cl_props_encode(m, &sb);
    if (rc)
        goto fail;
    if (sb.len > PROTO_PROPS_MAX) {
        rc = SPK_ETOOBIG;
        goto fail;
    }
    x->props = sb_detach(&sb, &plen);
    if (!x->props)
        x->props = strdup("");
    x->sysflag = sysflag;
    x->flag = m->flag;
    if (p->compress_over > 0 && m->body_len > (size_t)p->compress_over) {
        rc = compress_body(m->body, m->body_len, &x->body, &x->body_len);
        if (rc)
            goto fail;
        x->sysflag |= CL_SYS_COMPRESSED;
    } else if (m->body_len) {
        x->body = malloc(m->body_len);
        if (!x->body) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(x->body, m->body, m->body_len);
        x->body_len = m->body_len;
    }
    x->born_ts = spk_wall_ms();
    *out = x;
    return 0;
fail:
    sb_free(&sb);
    ctx_free(x);
    return rc;
}

static void
build_request(struct send_ctx *x, struct proto_reply *req)
{
    proto_reply_init(req, x->batch ? CL_REQ_SEND_BATCH_MESSAGE : CL_REQ_SEND_MESSAGE_V2);
    proto_reply_ext(req, "a", "%s", x->p->group);
    proto_reply_ext(req, "b", "%s", x->topic);
    proto_reply_ext(req, "c", "TBW102");
    proto_reply_ext(req, "d", "4");
    proto_reply_ext(req, "e", "%d", x->queue.queue_id);
    proto_reply_ext(req, "f", "%d", (int)x->sysflag);
    proto_reply_ext_i64(req, "g", x->born_ts);
    proto_reply_ext(req, "h", "%d", (int)x->flag);
    proto_reply_ext(req, "i", "%s", x->props);
    proto_reply_ext(req, "j", "0");
    proto_reply_ext(req, "k", "false");
    if (x->batch)
        proto_reply_ext(req, "m", "true");
    proto_reply_ext(req, "n", "%s", x->queue.broker);
    /* The body is borrowed for the encode; the request never frees it. */
    req->body = x->body;
    req->body_len = x->body_len;
    req->body_owned = 0;
}

/*
 * Reads a send reply. Returns 0 (stored: *res filled), 1 when the attempt
 * may be retried on another broker, or a negative error.
 */
static int
read_reply(struct send_ctx *x, const struct proto_cmd *cmd, spk_send_result *res)
{
    const char *v;

    switch (cmd->code) {
    case CL_RC_SUCCESS:
    case CL_RC_FLUSH_DISK_TIMEOUT:
    case CL_RC_FLUSH_SLAVE_TIMEOUT:
    case CL_RC_SLAVE_NOT_AVAILABLE:
        break;
    case CL_RC_TOPIC_NOT_EXIST:
    case 14: /* SERVICE_NOT_AVAILABLE */
    case CL_RC_SYSTEM_ERROR:
    case CL_RC_SYSTEM_BUSY:
    case 16:  /* NO_PERMISSION */
    case 204: /* NOT_IN_CURRENT_UNIT */
    case 205: /* SUBSCRIPTION_NOT_LATEST? kept as Java's retry set */
        cl_set_broker_error(cmd->code, cmd->remark);
        return 1;
    default:
        cl_set_broker_error(cmd->code, cmd->remark);
        return SPK_EBROKER;
    }
    memset(res, 0, sizeof(*res));
    res->status = cmd->code == CL_RC_SUCCESS            ? SPK_SEND_OK
                  : cmd->code == CL_RC_FLUSH_DISK_TIMEOUT ? SPK_SEND_FLUSH_DISK_TIMEOUT
                  : cmd->code == CL_RC_FLUSH_SLAVE_TIMEOUT ? SPK_SEND_FLUSH_SLAVE_TIMEOUT
                                                           : SPK_SEND_SLAVE_NOT_AVAILABLE;
    snprintf(res->msg_id, sizeof(res->msg_id), "%s", x->uniq);
    v = proto_ext_get(cmd, "msgId");
    if (v) { /* a batch lists every id: keep the first */
        size_t l = strcspn(v, ",");

        if (l >= sizeof(res->offset_msg_id))
            l = sizeof(res->offset_msg_id) - 1;
        memcpy(res->offset_msg_id, v, l);
        res->offset_msg_id[l] = 0;
    }
    res->queue = x->queue;
    v = proto_ext_get(cmd, "queueId");
    if (v)
        res->queue.queue_id = atoi(v);
    v = proto_ext_get(cmd, "queueOffset");
    res->queue_offset = v ? strtoll(v, NULL, 10) : -1;
    v = proto_ext_get(cmd, "transactionId");
    snprintf(res->transaction_id, sizeof(res->transaction_id), "%s", v ? v : x->uniq);
    return 0;
}

/* ----- synchronous sends ------------------------------------------------ */
static int
send_sync(struct send_ctx *x, int retries, spk_send_result *res)
{
    spk_producer *p = x->p;
    int rc = SPK_ENOROUTE, refresh = 0, attempt;

    if (!p->started)
        return SPK_ESTATE;
    if (cl_on_reader_thread())
        return -EDEADLK;
    x->start_ms = spk_mono_ms();
    x->deadline_ms = x->start_ms + p->send_timeout;
    for (attempt = 0; attempt <= retries; attempt++) {
        struct proto_reply req;
        struct proto_cmd cmd;
        uint8_t *frame = NULL;
        char addr[64];
        int64_t t0 = spk_mono_ms(), left = x->deadline_ms - t0;
        int r;

        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        rc = pick_queue(x, refresh);
        if (rc)
            break;
        refresh = 0;
        if (cl_broker_addr(p->in, x->queue.broker, 0, addr)) {
            rc = SPK_ENOROUTE;
            snprintf(x->last_broker, sizeof(x->last_broker), "%s", x->queue.broker);
            continue;
        }
        build_request(x, &req);
        rc = cl_call(p->in, addr, &req, (int)left, &cmd, &frame);
        proto_reply_free(&req);
        snprintf(x->last_broker, sizeof(x->last_broker), "%s", x->queue.broker);
        if (rc) {
            note_latency(p, x->queue.broker, 0, 1);
            spk_log(SPK_LOG_INFO, CL_LOG, "send to %s (%s) failed: %s", x->queue.broker, addr,
                    spk_strerror(rc));
            if (rc == -EDEADLK || rc == SPK_ESHUTDOWN)
                break;
            continue;
        }
        note_latency(p, x->queue.broker, spk_mono_ms() - t0, 0);
        r = read_reply(x, &cmd, res);
        if (r == 1 && cmd.code == CL_RC_TOPIC_NOT_EXIST)
            refresh = 1;
        proto_cmd_free(&cmd);
        free(frame);
        if (r <= 0)
            return r;
        rc = SPK_EBROKER;
        if (x->fixed_queue >= 0)
            x->last_broker[0] = 0; /* ordered: the same queue again */
    }
    return rc;
}

static void
set_ids(spk_message *m, const spk_send_result *r)
{
    snprintf(m->msg_id, sizeof(m->msg_id), "%s", r->msg_id);
    snprintf(m->offset_id, sizeof(m->offset_id), "%s", r->offset_msg_id);
    snprintf(m->broker, sizeof(m->broker), "%s", r->queue.broker);
    m->queue_id = r->queue.queue_id;
    m->queue_offset = r->queue_offset;
}

static int
send_one(spk_producer *p, spk_message *m, int32_t sysflag, int fixed, spk_send_result *res)
{
    struct send_ctx *x = NULL;
    spk_send_result local;
    int rc = check_message(p, m);

    if (rc)
        return rc;
    rc = encode_single(p, m, sysflag, &x);
    if (rc)
        return rc;
    x->fixed_queue = fixed;
    if (!res)
        res = &local;
    rc = send_sync(x, p->retries, res);
    if (rc == 0)
        set_ids(m, res);
    ctx_free(x);
    return rc;
}

int
spk_producer_send(spk_producer *p, spk_message *m, spk_send_result *res)
{
    if (!p)
        return -EINVAL;
    return send_one(p, m, 0, -1, res);
}

int
spk_select_by_key(int nqueues, const spk_message *m, void *arg)
{
    const char *key = arg;
    uint32_t h = 2166136261u;

    (void)m;
    if (nqueues <= 0)
        return 0;
    for (; key && *key; key++)
        h = (h ^ (uint8_t)*key) * 16777619u;
    return (int)(h % (uint32_t)nqueues);
}

int
spk_producer_send_to(spk_producer *p, spk_message *m, spk_queue_selector sel, void *arg,
                     spk_send_result *res)
{
    spk_queue *wq = NULL;
    size_t n = 0;
    int rc, idx;

    if (!p || !m || !sel || !m->topic)
        return -EINVAL;
    if (!p->started)
        return SPK_ESTATE;
    rc = cl_route_get(p->in, m->topic, 0, &wq, &n, NULL, NULL);
    if (rc == SPK_ENOROUTE)
        rc = cl_route_get(p->in, m->topic, 1, &wq, &n, NULL, NULL);
    if (rc)
        return rc;
    free(wq);
    if (n == 0)
        return SPK_ENOROUTE;
    idx = sel((int)n, m, arg);
    if (idx < 0 || (size_t)idx >= n)
        return -EINVAL;
    return send_one(p, m, 0, idx, res);
}

int
spk_producer_send_batch(spk_producer *p, spk_message *const *msgs, size_t n,
                        spk_send_result *res)
{
    struct send_ctx *x;
    struct sbuf ids = SBUF_INIT;
    spk_send_result local;
    size_t i, total = 0, pos = 0;
    int rc = 0;

    if (!p || !msgs || n == 0 || n > PROTO_BATCH_MAX_MSGS)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        rc = check_message(p, msgs[i]);
        if (rc)
            return rc;
        if (strcmp(msgs[i]->topic, msgs[0]->topic) != 0 || spk_message_property(msgs[i], "DELAY"))
            return -EINVAL;
    }
    x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->p = p;
    x->fixed_queue = -1;
    x->batch = 1;
    snprintf(x->topic, sizeof(x->topic), "%s", msgs[0]->topic);
    x->props = strdup("WAIT\001true\002");
    if (!x->props) {
        rc = -ENOMEM;
        goto out;
    }
    /* First pass: ids and sizes; second: the entries (PROTOCOL.md 4.3). */
    for (i = 0; i < n; i++) {
        struct sbuf sb = SBUF_INIT;
        char u[64];

        rc = ensure_uniq(msgs[i], u);
        if (!rc)
            rc = cl_props_encode(msgs[i], &sb);
        if (!rc && sb.len > PROTO_PROPS_MAX)
            rc = SPK_ETOOBIG;
        total += PROTO_BATCH_ENTRY_FIXED + msgs[i]->body_len + sb.len;
        sb_free(&sb);
        if (rc)
            goto out;
        if (i)
            sb_putc(&ids, ',');
        sb_puts(&ids, u);
    }
    if (total > BATCH_MAX_BYTES) {
        rc = SPK_ETOOBIG;
        goto out;
    }
    x->body = malloc(total);
    if (!x->body) {
        rc = -ENOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        struct sbuf sb = SBUF_INIT;

        rc = cl_props_encode(msgs[i], &sb);
        if (rc) {
            sb_free(&sb);
            goto out;
        }
        pos += proto_batch_encode(x->body + pos, msgs[i]->flag, msgs[i]->body,
                                  (uint32_t)msgs[i]->body_len, sb.p ? sb.p : "",
                                  (uint32_t)sb.len);
        sb_free(&sb);
    }
    x->body_len = pos;
    x->born_ts = spk_wall_ms();
    snprintf(x->uniq, sizeof(x->uniq), "%s", ids.p ? ids.p : "");
    if (!res)
        res = &local;
    rc = send_sync(x, p->retries, res);
    if (rc == 0) {
        for (i = 0; i < n; i++) {
            set_ids(msgs[i], res);
            msgs[i]->queue_offset = res->queue_offset + (int64_t)i;
            snprintf(msgs[i]->msg_id, sizeof(msgs[i]->msg_id), "%s",
                     spk_message_property(msgs[i], "UNIQ_KEY"));
        }
    }
out:
    sb_free(&ids);
    ctx_free(x);
    return rc;
}

/* ----- asynchronous and oneway sends ----------------------------------- */
/*
 * Encodes a message the caller keeps untouched (it is const): the UNIQ_KEY
 * goes on a copy.
 */
static int
encode_const(spk_producer *p, const spk_message *m, struct send_ctx **out)
{
    spk_message *copy;
    int rc = check_message(p, m);

    if (rc)
        return rc;
    copy = cl_message_clone(m);
    if (!copy)
        return -ENOMEM;
    rc = encode_single(p, copy, 0, out);
    spk_message_destroy(copy);
    return rc;
}

static int async_attempt(struct send_ctx *x);

static void
async_done(void *ud, int err, const struct proto_cmd *cmd, const uint8_t *frame, size_t len)
{
    struct send_ctx *x = ud;
    spk_send_result res;
    int r;

    (void)frame;
    (void)len;
    if (err) {
        note_latency(x->p, x->queue.broker, 0, 1);
        r = err;
    } else {
        note_latency(x->p, x->queue.broker, spk_mono_ms() - x->start_ms, 0);
        r = read_reply(x, cmd, &res);
        if (r == 0) {
            x->cb(0, &res, x->ud);
            ctx_free(x);
            return;
        }
        if (r == 1)
            r = SPK_EBROKER;
        else
            x->attempts_left = 0; /* refused outright: no retry */
    }
    while (x->attempts_left > 0 && spk_mono_ms() < x->deadline_ms) {
        x->attempts_left--;
        if (async_attempt(x) == 0)
            return; /* the next attempt owns x now */
    }
    x->cb(r, NULL, x->ud);
    ctx_free(x);
}

/* Starts one attempt; on 0 async_done will run (INV-2). */
static int
async_attempt(struct send_ctx *x)
{
    struct proto_reply req;
    char addr[64];
    int64_t left = x->deadline_ms - spk_mono_ms();
    int rc;

    if (left <= 0)
        return -ETIMEDOUT;
    rc = pick_queue(x, 0);
    if (rc)
        return rc;
    snprintf(x->last_broker, sizeof(x->last_broker), "%s", x->queue.broker);
    if (cl_broker_addr(x->p->in, x->queue.broker, 0, addr))
        return SPK_ENOROUTE;
    build_request(x, &req);
    x->start_ms = spk_mono_ms();
    rc = cl_call_async(x->p->in, addr, &req, (int)left, async_done, x);
    proto_reply_free(&req);
    if (rc)
        note_latency(x->p, x->queue.broker, 0, 1);
    return rc;
}

int
spk_producer_send_async(spk_producer *p, const spk_message *m, spk_send_cb cb, void *ud)
{
    struct send_ctx *x = NULL;
    int rc;

    if (!p || !cb)
        return -EINVAL;
    if (!p->started)
        return SPK_ESTATE;
    rc = encode_const(p, m, &x);
    if (rc)
        return rc;
    x->cb = cb;
    x->ud = ud;
    x->deadline_ms = spk_mono_ms() + p->send_timeout;
    x->attempts_left = p->retries_async;
    for (;;) {
        rc = async_attempt(x);
        if (rc == 0)
            return 0;
        if (x->attempts_left-- <= 0 || rc == SPK_ENOROUTE || rc == -ETIMEDOUT)
            break;
    }
    ctx_free(x);
    return rc;
}

int
spk_producer_send_oneway(spk_producer *p, const spk_message *m)
{
    struct send_ctx *x = NULL;
    struct proto_reply req;
    char addr[64];
    int rc;

    if (!p)
        return -EINVAL;
    if (!p->started)
        return SPK_ESTATE;
    rc = encode_const(p, m, &x);
    if (rc)
        return rc;
    rc = pick_queue(x, 0);
    if (!rc && cl_broker_addr(p->in, x->queue.broker, 0, addr))
        rc = SPK_ENOROUTE;
    if (!rc) {
        build_request(x, &req);
        rc = cl_oneway(p->in, addr, &req);
        proto_reply_free(&req);
    }
    ctx_free(x);
    return rc;
}

/* ----- transactions ----------------------------------------------------- */
int
spk_producer_set_transaction_listener(spk_producer *p, spk_tx_execute_cb execute,
                                      spk_tx_check_cb check, void *ud)
{
    if (!p || !check)
        return -EINVAL;
    if (p->started)
        return SPK_ESTATE;
    p->tx_exec = execute;
    p->tx_check = check;
    p->tx_ud = ud;
    return 0;
}

static int
tx_code(spk_tx_state s)
{
    return s == SPK_TX_COMMIT ? CL_SYS_TX_COMMIT : s == SPK_TX_ROLLBACK ? CL_SYS_TX_ROLLBACK : 0;
}

static int
end_transaction(spk_producer *p, const char *addr, int64_t tran_offset, int64_t clog_offset,
                const char *msg_id, const char *tx_id, spk_tx_state state, int from_check)
{
    struct proto_reply req;
    int rc;

    proto_reply_init(&req, CL_REQ_END_TRANSACTION);
    proto_reply_ext(&req, "producerGroup", "%s", p->group);
    proto_reply_ext_i64(&req, "tranStateTableOffset", tran_offset);
    proto_reply_ext_i64(&req, "commitLogOffset", clog_offset);
    proto_reply_ext(&req, "commitOrRollback", "%d", tx_code(state));
    proto_reply_ext(&req, "fromTransactionCheck", "%s", from_check ? "true" : "false");
    proto_reply_ext(&req, "msgId", "%s", msg_id);
    if (tx_id && *tx_id)
        proto_reply_ext(&req, "transactionId", "%s", tx_id);
    rc = cl_oneway(p->in, addr, &req);
    proto_reply_free(&req);
    return rc;
}

int
spk_producer_send_transaction(spk_producer *p, spk_message *m, spk_tx_execute_cb execute,
                              void *arg, spk_send_result *res, spk_tx_state *state)
{
    spk_send_result local;
    spk_tx_state st = SPK_TX_UNKNOWN;
    uint64_t clog = 0;
    char addr[64];
    int rc;

    if (!p || !m)
        return -EINVAL;
    if (!p->tx_check)
        return SPK_ESTATE; /* a transactional producer needs its listener */
    if (!execute)
        execute = p->tx_exec;
    if (!execute)
        return -EINVAL;
    if (!res)
        res = &local;
    cl_message_remove(m, "DELAY"); /* half messages cannot be delayed */
    rc = cl_message_put(m, "TRAN_MSG", "true");
    if (!rc)
        rc = cl_message_put(m, "PGROUP", p->group);
    if (rc)
        return rc;
    rc = send_one(p, m, CL_SYS_TX_PREPARED, -1, res);
    if (rc)
        return rc;
    if (res->status == SPK_SEND_OK)
        st = execute(m, arg, p->tx_ud);
    else
        st = SPK_TX_ROLLBACK; /* not durable: Java rolls back too */
    if (state)
        *state = st;
    if (rec_msg_id_decode(res->offset_msg_id, strlen(res->offset_msg_id), &clog) != 0 ||
        cl_broker_addr(p->in, res->queue.broker, 0, addr) != 0) {
        spk_log(SPK_LOG_WARN, CL_LOG, "cannot end transaction %s: no broker address; the "
                "broker's check-back will resolve it", res->msg_id);
        return 0;
    }
    if (end_transaction(p, addr, res->queue_offset, (int64_t)clog, res->msg_id,
                        res->transaction_id, st, 0) != 0)
        spk_log(SPK_LOG_WARN, CL_LOG, "END_TRANSACTION for %s not delivered; the broker's "
                "check-back will resolve it", res->msg_id);
    return 0;
}

static void *
check_main(void *arg)
{
    spk_producer *p = arg;

    pthread_mutex_lock(&p->check_lock);
    for (;;) {
        struct check_job *j;
        spk_tx_state st;

        while (!p->checks && !p->check_stop)
            pthread_cond_wait(&p->check_cond, &p->check_lock);
        if (p->check_stop)
            break;
        j = p->checks;
        p->checks = j->next;
        if (!p->checks)
            p->checks_tail = &p->checks;
        pthread_mutex_unlock(&p->check_lock);
        st = p->tx_check(j->msg, p->tx_ud);
        end_transaction(p, j->addr, j->tran_offset, j->clog_offset, j->msg_id, j->tx_id, st, 1);
        spk_message_destroy(j->msg);
        free(j);
        pthread_mutex_lock(&p->check_lock);
    }
    pthread_mutex_unlock(&p->check_lock);
    return NULL;
}

static void
queue_check(spk_producer *p, struct cl_conn *c, const struct proto_cmd *cmd)
{
    spk_message **msgs = NULL;
    size_t n = 0, cap = 0;
    struct check_job *j;
    const char *v;

    if (!p->check_running)
        return;
    if (cl_decode_messages(cmd->body, cmd->body_len, NULL, &msgs, &n, &cap) <= 0 || n != 1) {
        spk_log(SPK_LOG_WARN, CL_LOG, "malformed CHECK_TRANSACTION_STATE from %s ignored",
                cl_conn_addr(c));
        spk_messages_free(msgs, n);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        spk_messages_free(msgs, n);
        return;
    }
    j->msg = msgs[0];
    free(msgs);
    snprintf(j->addr, sizeof(j->addr), "%s", cl_conn_addr(c));
    v = proto_ext_get(cmd, "tranStateTableOffset");
    j->tran_offset = v ? strtoll(v, NULL, 10) : 0;
    v = proto_ext_get(cmd, "commitLogOffset");
    j->clog_offset = v ? strtoll(v, NULL, 10) : 0;
    v = proto_ext_get(cmd, "msgId");
    if (!v)
        v = spk_message_property(j->msg, "UNIQ_KEY");
    snprintf(j->msg_id, sizeof(j->msg_id), "%s", v ? v : "");
    v = proto_ext_get(cmd, "transactionId");
    snprintf(j->tx_id, sizeof(j->tx_id), "%s", v ? v : j->msg_id);
    pthread_mutex_lock(&p->check_lock);
    *p->checks_tail = j;
    p->checks_tail = &j->next;
    pthread_cond_signal(&p->check_cond);
    pthread_mutex_unlock(&p->check_lock);
}

static void
on_server_request(void *owner, struct cl_conn *c, const struct proto_cmd *cmd,
                  const uint8_t *frame, size_t len)
{
    (void)frame;
    (void)len;
    if (cmd->code == CL_REQ_CHECK_TRANSACTION_STATE)
        queue_check(owner, c, cmd);
}
