/*
 * send.c - SEND_MESSAGE (10, long names), SEND_MESSAGE_V2 (310) and
 * SEND_BATCH_MESSAGE (320, short names), CONSUMER_SEND_MSG_BACK (36),
 * the SYNC_FLUSH parking of replies and the delay-level scheduler.
 *
 * Invariants:
 *   INV-1  Under SYNC_FLUSH a success reply leaves only when the store's
 *          dispatched watermark covers the end of the message: dispatched
 *          never passes durable under SYNC_FLUSH, so the message is on disk
 *          (R1 of RELIABILITY.md) and already readable, so a producer that
 *          pulls right after its ack finds it. Parked replies are answered
 *          in end order as the watermark advances, with FLUSH_DISK_TIMEOUT at their deadline
 *          (stored, durability unknown, as RocketMQ answers), or with
 *          SERVICE_NOT_AVAILABLE when the store has failed.
 *   INV-2  A message stored for a delay level carries REAL_TOPIC and
 *          REAL_QID; its level's offset in delay_off only moves past it
 *          after it has been re-put to the real topic.
 *   INV-3  Properties written by the broker never include the store's own
 *          __CRC32# (the store appends a fresh one to every record).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "proto/message.h"
#include "store/record.h"
#include "store/storeio.h"

static const char *const drop_internal[] = {"__CRC32#", NULL};

/*
 * Appends <src> plus CLUSTER=<cluster> to <arena> in canonical form,
 * without the store's own __CRC32# (INV-3). Returns 0, SPK_ETOOBIG (over
 * the 32767-byte properties limit), SPK_EFORMAT or -ENOMEM.
 */
static int
props_with_cluster(struct sbuf *arena, const char *src, size_t len, const char *cluster)
{
    size_t start = arena->len;

    if (len == 0 || (src[len - 1] == PROTO_PROP_SEP && !memmem(src, len, "__CRC32#", 8))) {
        /* the common case: already canonical, nothing to drop */
        sb_put(arena, src, len);
    } else {
        struct proto_props_buf pb;
        int rc;

        proto_props_init(&pb);
        rc = proto_props_copy(&pb, src, len, drop_internal);
        if (rc) {
            proto_props_free(&pb);
            return rc;
        }
        sb_put(arena, pb.data ? pb.data : "", pb.len);
        proto_props_free(&pb);
    }
    sb_puts(arena, "CLUSTER\001");
    sb_puts(arena, cluster);
    sb_putc(arena, PROTO_PROP_SEP);
    if (arena->err)
        return arena->err;
    return arena->len - start > PROTO_PROPS_MAX ? SPK_ETOOBIG : 0;
}

/* Parks or sends a success reply for data ending at <end>. */
void
reply_when_durable(struct broker *b, struct net_conn *c, const struct proto_cmd *req,
                   struct proto_reply *rep, uint64_t end)
{
    struct parked_send *p;

    if (b->scfg.flushDiskType != STORE_SYNC_FLUSH || store_dispatched(b->store) >= end ||
        (req->flag & PROTO_FLAG_ONEWAY)) {
        broker_reply(b, c, req, rep);
        return;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        /* Cannot wait: say the flush outcome is unknown rather than lie. */
        rep->code = RS_FLUSH_DISK_TIMEOUT;
        broker_reply(b, c, req, rep);
        return;
    }
    net_conn_hold(c);
    p->conn = c;
    p->opaque = req->opaque;
    p->end = end;
    p->deadline = net_loop_now(b->loop) + b->scfg.syncFlushTimeout;
    p->rep = *rep; /* takes over the reply's allocations */
    proto_reply_init(rep, 0);
    if (b->sends_tail)
        b->sends_tail->next = p;
    else
        b->sends_head = p;
    b->sends_tail = p;
    b->nsends++;
}

static void
parked_answer(struct broker *b, struct parked_send *p, int32_t code, const char *remark)
{
    struct proto_cmd req;

    memset(&req, 0, sizeof(req));
    req.opaque = p->opaque;
    if (code != RS_SUCCESS) {
        p->rep.code = code;
        if (remark)
            proto_reply_remark(&p->rep, "%s", remark);
    }
    if (!net_conn_is_closed(p->conn))
        broker_reply(b, p->conn, &req, &p->rep);
    else
        proto_reply_free(&p->rep);
    net_conn_put(p->conn);
    free(p);
    b->nsends--;
}

void
sends_on_durable(struct broker *b, int failed)
{
    uint64_t durable = store_dispatched(b->store); /* <= durable under SYNC_FLUSH (INV-1) */
    struct parked_send *p;

    while ((p = b->sends_head) != NULL && (p->end <= durable || failed)) {
        b->sends_head = p->next;
        if (!b->sends_head)
            b->sends_tail = NULL;
        if (p->end <= durable)
            parked_answer(b, p, RS_SUCCESS, NULL);
        else
            parked_answer(b, p, RS_SERVICE_NOT_AVAILABLE,
                          "the store failed to flush to disk and refuses writes until restarted; "
                          "this message may not be durable");
    }
}

void
sends_expire(struct broker *b)
{
    int64_t now = net_loop_now(b->loop);
    struct parked_send *p;

    sends_on_durable(b, store_failed(b->store) != 0);
    /* FIFO with one timeout for all: the head always expires first. */
    while ((p = b->sends_head) != NULL && p->deadline <= now) {
        b->sends_head = p->next;
        if (!b->sends_head)
            b->sends_tail = NULL;
        parked_answer(b, p, RS_FLUSH_DISK_TIMEOUT, "flush to disk timed out");
    }
}

void
sends_drop_all(struct broker *b)
{
    struct parked_send *p;

    while ((p = b->sends_head) != NULL) {
        b->sends_head = p->next;
        parked_answer(b, p, RS_FLUSH_DISK_TIMEOUT, "broker shutting down before the flush");
    }
    b->sends_tail = NULL;
}

/* Store errors to response codes with a remark a person can act on. */
void
put_error(struct proto_reply *rep, int rc)
{
    proto_reply_clear_ext(rep);
    switch (rc) {
    case SPK_ETOOBIG:
        rep->code = RS_MESSAGE_ILLEGAL;
        proto_reply_remark(rep, "message too large (body over maxMessageSize or properties "
                                "over 32767 bytes)");
        break;
    case SPK_EFORMAT:
        rep->code = RS_MESSAGE_ILLEGAL;
        proto_reply_remark(rep, "message rejected by the store: malformed");
        break;
    case SPK_ESTORE_FAILED:
        rep->code = RS_SERVICE_NOT_AVAILABLE;
        proto_reply_remark(rep, "the store failed to write to disk and refuses messages until "
                                "the broker is restarted (see its log)");
        break;
    /*
     * SERVICE_NOT_AVAILABLE, as a Java broker answers a full disk: Java
     * producers then retry on another broker (it is one of their retry
     * codes) instead of failing the send at once. The remark says which
     * limit was hit, since that decides what the operator must free.
     */
    case SPK_EDISKFULL:
        rep->code = RS_SERVICE_NOT_AVAILABLE;
        proto_reply_remark(rep, "disk full: disk usage is above diskSpaceWarningLevelRatio; the "
                                "broker refuses messages until space is freed");
        break;
    case -ENOSPC:
    case -EDQUOT:
    case -EFBIG:
        rep->code = RS_SERVICE_NOT_AVAILABLE;
        proto_reply_remark(rep, "disk full: no space for the next CommitLog or ConsumeQueue file "
                                "(%s); the broker refuses messages until space is freed",
                           spk_strerror(rc));
        break;
    default:
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "store error: %s", spk_strerror(rc));
        break;
    }
}

/* A put failed for lack of space (SPK_EDISKFULL or an errno that says so). */
static int
is_space_error(int rc)
{
    return rc == SPK_EDISKFULL || rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG;
}

/*
 * put_error() for the puts of this file, which also tells the log: once
 * when the disk fills (then at most every 10 s while it stays full) and
 * once when a put succeeds again. Loop thread.
 */
static void
put_failed(struct broker *b, struct proto_reply *rep, int rc)
{
    int64_t now = spk_mono_ms();

    if (is_space_error(rc)) {
        if (b->diskfull_since == 0 || now - b->diskfull_logged >= 10000) {
            spk_log(SPK_LOG_ERROR, "send",
                    "disk full (%s): sends are refused with SERVICE_NOT_AVAILABLE until space is "
                    "freed (%lld refused so far)",
                    spk_strerror(rc), (long long)b->diskfull_refused + 1);
            b->diskfull_logged = now;
        }
        if (b->diskfull_since == 0)
            b->diskfull_since = now;
        b->diskfull_refused++;
    }
    put_error(rep, rc);
}

/* A put succeeded: ends a disk-full episode, if one was going on. */
static void
put_succeeded(struct broker *b)
{
    if (b->diskfull_since == 0)
        return;
    spk_log(SPK_LOG_INFO, "send", "disk space is back: accepting sends again after %lld ms and "
                                  "%lld refused sends",
            (long long)(spk_mono_ms() - b->diskfull_since), (long long)b->diskfull_refused);
    b->diskfull_since = 0;
    b->diskfull_refused = 0;
}

/* The send header, from long (code 10) or short (310/320) names. */
struct send_hdr {
    const char *group, *topic, *def_topic, *props;
    int64_t def_queues, queue_id, sysflag, born_ts, flag, reconsume, max_reconsume;
    int unit_mode, batch;
    int bad;
    const char *bad_field;
};

/*
 * One pass over the extFields (a lookup per field scanned them a dozen
 * times per message). Code 10 uses Java's field names, 310/320 the
 * one-letter names of SendMessageRequestHeaderV2.
 */
enum {
    SH_GROUP, SH_TOPIC, SH_DEF_TOPIC, SH_DEF_QUEUES, SH_QUEUE_ID, SH_SYSFLAG, SH_BORN_TS,
    SH_FLAG, SH_PROPS, SH_RECONSUME, SH_UNIT_MODE, SH_MAX_RECONSUME, SH_BATCH, SH_N
};

static const char *const send_long_names[SH_N] = {
    "producerGroup", "topic", "defaultTopic", "defaultTopicQueueNums", "queueId", "sysFlag",
    "bornTimestamp", "flag", "properties", "reconsumeTimes", "unitMode", "maxReconsumeTimes",
    "batch",
};

static int64_t
hdr_num(const char *v, int64_t dflt, int required, const char *name, struct send_hdr *h)
{
    char *end;
    long long x;

    if (!v || !*v) {
        if (required) {
            h->bad = 1;
            h->bad_field = name;
        }
        return dflt;
    }
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || *end) {
        h->bad = 1;
        h->bad_field = name;
        return dflt;
    }
    return x;
}

static void
parse_send_hdr(const struct proto_cmd *req, struct send_hdr *h)
{
    const char *f[SH_N] = {0};
    int v2 = req->code != RC_SEND_MESSAGE;

    memset(h, 0, sizeof(*h));
    for (size_t i = 0; i < req->next; i++) {
        const struct proto_ext *e = &req->ext[i];
        int k = -1;
        if (v2) {
            if (e->key_len == 1 && e->key[0] >= 'a' && e->key[0] <= 'm')
                k = e->key[0] - 'a';
        } else {
            for (int n = 0; n < SH_N; n++)
                if (strcmp(e->key, send_long_names[n]) == 0) {
                    k = n;
                    break;
                }
        }
        if (k >= 0 && !f[k])
            f[k] = e->val; /* the first occurrence, as proto_ext_get answers */
    }
    h->group = f[SH_GROUP];
    h->topic = f[SH_TOPIC];
    h->def_topic = f[SH_DEF_TOPIC];
    h->props = f[SH_PROPS];
    h->def_queues = hdr_num(f[SH_DEF_QUEUES], 4, 0, "defaultTopicQueueNums", h);
    h->queue_id = hdr_num(f[SH_QUEUE_ID], -1, 1, "queueId", h);
    h->sysflag = hdr_num(f[SH_SYSFLAG], 0, 1, "sysFlag", h);
    h->born_ts = hdr_num(f[SH_BORN_TS], 0, 1, "bornTimestamp", h);
    h->flag = hdr_num(f[SH_FLAG], 0, 0, "flag", h);
    h->reconsume = hdr_num(f[SH_RECONSUME], 0, 0, "reconsumeTimes", h);
    h->max_reconsume = hdr_num(f[SH_MAX_RECONSUME], 16, 0, "maxReconsumeTimes", h);
    h->unit_mode = f[SH_UNIT_MODE] && strcasecmp(f[SH_UNIT_MODE], "true") == 0;
    h->batch = (f[SH_BATCH] && strcasecmp(f[SH_BATCH], "true") == 0) ||
               req->code == RC_SEND_BATCH_MESSAGE;
    if (!h->topic || !*h->topic) {
        h->bad = 1;
        h->bad_field = "topic";
    }
}

static void
set_hosts(struct broker *b, struct net_conn *c, struct rec_msg *m)
{
    int port;

    net_conn_peer_addr(c, m->born_host, &port);
    m->born_host_len = 4;
    m->born_port = port;
    memcpy(m->store_host, b->store_ip, 4);
    m->store_host_len = 4;
    m->store_port = b->store_port;
}

static int
is_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/*
 * Resolves (or creates) the topic of a send. Returns 0 with *tc, or fills
 * <rep> with the error and returns -1.
 */
static int
send_topic(struct broker *b, const struct send_hdr *h, struct topic_config *tc,
           struct proto_reply *rep)
{
    char why[160];
    int created = 0, rc;

    if (topics_validate_name(h->topic, why, sizeof(why)) != 0) {
        rep->code = RS_INVALID_PARAMETER;
        proto_reply_remark(rep, "topic '%.255s' is invalid: %s", h->topic, why);
        return -1;
    }
    if (topics_send_forbidden(h->topic)) {
        rep->code = RS_NO_PERMISSION;
        proto_reply_remark(rep, "sending message to topic[%.255s] is forbidden", h->topic);
        return -1;
    }
    if (topics_get(b->topics, h->topic, tc) == 0)
        return 0;
    if (is_prefix(h->topic, RETRY_PREFIX))
        rc = topics_ensure(b->topics, h->topic, 1, PERM_READ | PERM_WRITE, 0, tc, &created);
    else if (b->cfg.autoCreateTopicEnable || h->def_topic)
        rc = topics_auto_create(b->topics, h->topic, h->def_topic ? h->def_topic : "TBW102",
                                (int)(h->def_queues > 0 ? h->def_queues : 4), tc, &created);
    else
        rc = -ENOENT;
    if (rc) {
        rep->code = RS_TOPIC_NOT_EXIST;
        proto_reply_remark(rep,
                           "topic[%.255s] not exist, apply first please! (create it with "
                           "UPDATE_AND_CREATE_TOPIC, or enable autoCreateTopicEnable)",
                           h->topic);
        return -1;
    }
    if (created) {
        spk_log(SPK_LOG_INFO, "broker", "topic %s created on first send (%d queues)", tc->name,
                tc->write_queues);
        broker_request_register(b);
    }
    return 0;
}

int64_t
delay_level_ms(struct broker *b, int level)
{
    if (level < 1)
        return 0;
    if (level > b->ndelay)
        level = b->ndelay;
    return b->delay_ms[level - 1];
}

/*
 * Rewrites a message for a delay level: stored in SCHEDULE_TOPIC queue
 * level-1 with REAL_TOPIC / REAL_QID (the scheduler puts it back).
 */
static int
apply_delay(struct broker *b, struct rec_msg *m, struct proto_props_buf *pb, int level)
{
    char qid[16];
    int rc;

    if (level > b->ndelay)
        level = b->ndelay;
    snprintf(qid, sizeof(qid), "%d", m->queue_id);
    {
        char lv[16];
        static const char *const drop[] = {"__CRC32#", "DELAY", "REAL_TOPIC", "REAL_QID", NULL};
        struct proto_props_buf nb;
        char topic[256];
        size_t tl = m->topic_len < 255 ? m->topic_len : 255;

        memcpy(topic, m->topic, tl);
        topic[tl] = '\0';
        proto_props_init(&nb);
        snprintf(lv, sizeof(lv), "%d", level);
        rc = proto_props_copy(&nb, pb->data ? pb->data : "", pb->len, drop);
        if (!rc)
            rc = proto_props_put(&nb, "DELAY", lv);
        if (!rc)
            rc = proto_props_put(&nb, "REAL_TOPIC", topic);
        if (!rc)
            rc = proto_props_put(&nb, "REAL_QID", qid);
        if (rc) {
            proto_props_free(&nb);
            return rc;
        }
        proto_props_free(pb);
        *pb = nb;
    }
    m->topic = SCHEDULE_TOPIC;
    m->topic_len = strlen(SCHEDULE_TOPIC);
    m->queue_id = level - 1;
    m->props = pb->data;
    m->props_len = pb->len;
    return 0;
}

static void
add_ids(struct broker *b, struct proto_reply *rep, const struct store_put_result *res,
        const struct rec_msg *msgs, size_t n)
{
    struct sbuf ids = SBUF_INIT;
    uint64_t off = res->phys_off;
    char id[64];

    if (n == 1) {
        size_t l = rec_msg_id(b->store_ip, 4, b->store_port, off, id);
        proto_reply_ext_str(rep, "msgId", id, l);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = rec_msg_id(b->store_ip, 4, b->store_port, off, id);
        if (i)
            sb_putc(&ids, ',');
        sb_put(&ids, id, l);
        off += rec_length(&msgs[i], b->scfg.enabledAppendPropCRC);
    }
    if (ids.err)
        rep->err = ids.err;
    else
        proto_reply_ext_str(rep, "msgId", ids.p, ids.len);
    sb_free(&ids);
}

/* The fields every successful send reply ends with. */
static void
add_tail(struct broker *b, struct proto_reply *rep, int32_t qid, uint64_t qoff)
{
    proto_reply_ext_i64(rep, "queueId", qid);
    proto_reply_ext_i64(rep, "queueOffset", (int64_t)qoff);
    proto_reply_ext_str(rep, "MSG_REGION", b->cfg.regionId, strlen(b->cfg.regionId));
    proto_reply_ext_str(rep, "TRACE_ON", b->cfg.traceOn ? "true" : "false",
                        b->cfg.traceOn ? 4 : 5);
}

void
proc_send(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    struct send_hdr h;
    struct proto_reply rep;
    struct topic_config tc;
    struct store_put_result res;
    struct proto_props_buf pb;
    struct rec_msg m, *msgs = NULL;
    struct proto_batch_msg *parts = NULL;
    struct sbuf arena = SBUF_INIT;
    size_t *offs = NULL;
    size_t n = 1, i;
    const char *v;
    size_t vl;
    int rc, qn;

    proto_reply_init(&rep, RS_SUCCESS);
    proto_props_init(&pb);
    parse_send_hdr(req, &h);
    if (h.bad) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "the request has no valid '%s' field", h.bad_field);
        goto out;
    }
    if (!(b->cfg.brokerPermission & PERM_WRITE)) {
        rep.code = RS_NO_PERMISSION;
        proto_reply_remark(&rep, "the broker[%s] sending message is forbidden", b->addr);
        goto out;
    }
    if (b->scfg.flushDiskType == STORE_SYNC_FLUSH &&
        b->nsends >= (size_t)b->cfg.maxParkedSends) {
        rep.code = RS_SYSTEM_BUSY;
        proto_reply_remark(&rep, "[OVERLOAD]system busy, start flow control for a while "
                                 "(the disk is behind)");
        goto out;
    }
    if (send_topic(b, &h, &tc, &rep))
        goto out;
    if (!(tc.perm & PERM_WRITE)) {
        rep.code = RS_NO_PERMISSION;
        proto_reply_remark(&rep, "the topic[%s] sending message is forbidden", tc.name);
        goto out;
    }
    qn = tc.write_queues > tc.read_queues ? tc.write_queues : tc.read_queues;
    if (h.queue_id < 0)
        h.queue_id = tc.write_queues > 0 ? rand() % tc.write_queues : 0;
    if (h.queue_id >= qn) {
        rep.code = RS_INVALID_PARAMETER;
        proto_reply_remark(&rep, "queueId[%lld] is illegal, topic:[%s] topicConfig.writeQueueNums:"
                                 "[%d] consumerQueueNums:[%d]",
                           (long long)h.queue_id, tc.name, tc.write_queues, tc.read_queues);
        goto out;
    }
    if (req->body_len > (size_t)b->scfg.maxMessageSize && !h.batch) {
        rep.code = RS_MESSAGE_ILLEGAL;
        proto_reply_remark(&rep, "message body size %zu exceeds maxMessageSize %d",
                           req->body_len, b->scfg.maxMessageSize);
        goto out;
    }
    memset(&m, 0, sizeof(m));
    m.topic = tc.name;
    m.topic_len = strlen(tc.name);
    m.queue_id = (int32_t)h.queue_id;
    m.flag = (int32_t)h.flag;
    m.body = req->body;
    m.body_len = req->body_len;
    m.sysflag = (int32_t)h.sysflag & ~(REC_SYS_BORN_V6 | REC_SYS_STORE_V6);
    if (tc.filter_multi_tag)
        m.sysflag |= REC_SYS_MULTI_TAGS;
    m.born_ts = h.born_ts;
    m.reconsume_times = (int32_t)h.reconsume;
    set_hosts(b, c, &m);

    if (!h.batch) {
        int level = 0, half;

        rc = proto_props_copy(&pb, h.props ? h.props : "", h.props ? strlen(h.props) : 0,
                              drop_internal);
        if (!rc)
            rc = proto_props_put(&pb, "CLUSTER", b->cfg.brokerClusterName);
        if (rc) {
            put_error(&rep, rc);
            goto out;
        }
        m.props = pb.data;
        m.props_len = pb.len;
        if (proto_props_get(pb.data, pb.len, "TIMER_DELIVER_MS", &v, &vl) ||
            proto_props_get(pb.data, pb.len, "TIMER_DELAY_SEC", &v, &vl) ||
            proto_props_get(pb.data, pb.len, "TIMER_DELAY_MS", &v, &vl)) {
            /* Delivery at an arbitrary time needs RocketMQ 5's timer wheel,
             * which this broker does not have. Storing the message as a
             * plain one would deliver it at once: refuse it instead, as a
             * Java broker with timerWheelEnable=false does. */
            rep.code = RS_MESSAGE_ILLEGAL;
            proto_reply_remark(&rep, "delivery-time (timer) messages are not supported by this "
                                     "broker; use a delay level (property DELAY) instead");
            goto out;
        }
        half = trans_is_prepared(pb.data, pb.len, h.reconsume);
        if (half) {
            /* a transaction's first phase: stored aside until it ends (trans.c) */
            if (b->cfg.rejectTransactionMessage) {
                rep.code = RS_NO_PERMISSION;
                proto_reply_remark(&rep,
                                   "the broker[%s] sending transaction message is forbidden "
                                   "(rejectTransactionMessage=true)",
                                   b->cfg.brokerIP1);
                goto out;
            }
            rc = trans_make_half(&m, &pb);
            if (rc) {
                put_error(&rep, rc);
                goto out;
            }
        } else if (is_prefix(tc.name, RETRY_PREFIX) && h.reconsume > h.max_reconsume) {
            /* A retry that used up its attempts goes to the dead-letter queue. */
            char dlq[300];
            int created = 0;
            snprintf(dlq, sizeof(dlq), "%s%s", DLQ_PREFIX, tc.name + strlen(RETRY_PREFIX));
            if (topics_ensure(b->topics, dlq, 1, PERM_READ | PERM_WRITE, 0, &tc, &created)) {
                rep.code = RS_SYSTEM_ERROR;
                proto_reply_remark(&rep, "cannot create the dead-letter topic %s", dlq);
                goto out;
            }
            if (created)
                broker_request_register(b);
            m.topic = tc.name;
            m.topic_len = strlen(tc.name);
            m.queue_id = 0;
        } else if (proto_props_get(pb.data, pb.len, "DELAY", &v, &vl) && vl < 10) {
            char tmp[16];
            memcpy(tmp, v, vl);
            tmp[vl] = '\0';
            level = atoi(tmp);
            if (level > 0 && (m.sysflag & REC_SYS_TX_MASK) == 0) {
                rc = apply_delay(b, &m, &pb, level);
                if (rc) {
                    put_error(&rep, rc);
                    goto out;
                }
            }
        }
        rc = store_put(b->store, &m, &res);
        if (rc) {
            put_failed(b, &rep, rc);
            goto out;
        }
        put_succeeded(b);
        b->put_count++;
        b->put_bytes += res.bytes;
        add_ids(b, &rep, &res, &m, 1);
        if (proto_props_get(pb.data, pb.len, "UNIQ_KEY", &v, &vl))
            proto_reply_ext(&rep, "transactionId", "%.*s", (int)vl, v);
        /* a delayed or half message's reply names the queue the producer chose, as Java's
         * does; for a half, queueOffset and msgId are the half's, which END_TRANSACTION
         * quotes back */
        add_tail(b, &rep, level > 0 || half ? (int32_t)h.queue_id : m.queue_id, res.queue_off);
        reply_when_durable(b, c, req, &rep, res.end);
        goto out_noreply;
    }

    /* Batch */
    if ((h.sysflag & REC_SYS_TX_MASK) != 0 ||
        (h.props && trans_is_prepared(h.props, strlen(h.props), 0))) {
        rep.code = RS_MESSAGE_ILLEGAL;
        proto_reply_remark(&rep, "batch message does not support transaction");
        goto out;
    }
    if (is_prefix(tc.name, RETRY_PREFIX)) {
        rep.code = RS_MESSAGE_ILLEGAL;
        proto_reply_remark(&rep, "batch request does not support retry group %s", tc.name);
        goto out;
    }
    parts = calloc(PROTO_BATCH_MAX_MSGS, sizeof(*parts));
    if (!parts) {
        put_error(&rep, -ENOMEM);
        goto out;
    }
    rc = proto_batch_split(req->body, req->body_len, parts, PROTO_BATCH_MAX_MSGS, &n);
    if (rc) {
        rep.code = RS_MESSAGE_ILLEGAL;
        proto_reply_remark(&rep, rc == SPK_ETOOBIG ? "batch has more than %d messages"
                                                   : "malformed batch body (%d)",
                           rc == SPK_ETOOBIG ? PROTO_BATCH_MAX_MSGS : rc);
        goto out;
    }
    msgs = calloc(n, sizeof(*msgs));
    offs = calloc(n, sizeof(*offs));
    if (!msgs || !offs) {
        put_error(&rep, -ENOMEM);
        goto out;
    }
    for (i = 0; i < n; i++) {
        if (parts[i].body_len > (uint32_t)b->scfg.maxMessageSize) {
            rep.code = RS_MESSAGE_ILLEGAL;
            proto_reply_remark(&rep, "message %zu of the batch exceeds maxMessageSize %d", i,
                               b->scfg.maxMessageSize);
            goto out;
        }
        msgs[i] = m;
        msgs[i].flag = parts[i].flag;
        msgs[i].body = parts[i].body;
        msgs[i].body_len = parts[i].body_len;
        offs[i] = arena.len;
        rc = props_with_cluster(&arena, parts[i].props ? parts[i].props : "", parts[i].props_len,
                                b->cfg.brokerClusterName);
        if (rc) {
            put_error(&rep, rc);
            goto out;
        }
    }
    /* the arena is complete: point each message at its properties */
    for (i = 0; i < n; i++) {
        msgs[i].props = arena.p + offs[i];
        msgs[i].props_len = (i + 1 < n ? offs[i + 1] : arena.len) - offs[i];
    }
    rc = store_put_batch(b->store, msgs, n, &res);
    if (rc) {
        put_failed(b, &rep, rc);
        goto out;
    }
    put_succeeded(b);
    b->put_count += n;
    b->put_bytes += res.bytes;
    add_ids(b, &rep, &res, msgs, n);
    add_tail(b, &rep, m.queue_id, res.queue_off);
    reply_when_durable(b, c, req, &rep, res.end);
    goto out_noreply;

out:
    broker_reply(b, c, req, &rep);
out_noreply:
    sb_free(&arena);
    free(offs);
    free(msgs);
    free(parts);
    proto_props_free(&pb);
}

/* CONSUMER_SEND_MSG_BACK ------------------------------------------------------ */

void
proc_send_back(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    struct proto_reply rep;
    struct store_msg_view v;
    struct rec_view rv;
    struct rec_msg m;
    struct topic_config tc;
    struct store_put_result res;
    struct proto_props_buf pb;
    void *pin = NULL;
    const char *group = proto_ext_get(req, "group");
    const char *origin_id = proto_ext_get(req, "originMsgId");
    const char *why = NULL, *pv;
    size_t pvl;
    char topic[300], origin_topic[256], idbuf[64];
    int bad = 0, created = 0, rc, level, to_dlq;
    int64_t off = ext_i64(req, "offset", -1, &bad);
    int64_t delay = ext_i64(req, "delayLevel", 0, &bad);
    int64_t maxr = ext_i64(req, "maxReconsumeTimes", groups_retry_max(b->groups, group), &bad);

    proto_reply_init(&rep, RS_SUCCESS);
    proto_props_init(&pb);
    if (bad || off < 0 || !group || !*group || strlen(group) > 200) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "CONSUMER_SEND_MSG_BACK needs offset, group and delayLevel");
        goto out;
    }
    rc = store_get_by_offset(b->store, (uint64_t)off, &v, &pin);
    if (rc) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "look message by offset failed, %lld", (long long)off);
        goto out;
    }
    if (rec_parse(v.data, v.len, REC_ANY_POS, REC_CHECK_NONE, &rv, &why) <= 0) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "message at offset %lld is damaged: %s", (long long)off,
                           why ? why : "?");
        goto out;
    }
    snprintf(origin_topic, sizeof(origin_topic), "%.*s", (int)rv.topic_len, rv.topic);
    to_dlq = delay < 0 || rv.reconsume_times >= maxr;
    snprintf(topic, sizeof(topic), "%s%s", to_dlq ? DLQ_PREFIX : RETRY_PREFIX, group);
    if (topics_ensure(b->topics, topic, 1, PERM_READ | PERM_WRITE, 0, &tc, &created)) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "topic[%s] not exist and cannot be created", topic);
        goto out;
    }
    if (created)
        broker_request_register(b);
    {
        static const char *const drop[] = {"__CRC32#", "DELAY", "REAL_TOPIC", "REAL_QID",
                                           NULL};
        rc = proto_props_copy(&pb, rv.props, rv.props_len, drop);
    }
    if (!rc && !rec_prop_get(rv.props, rv.props_len, "RETRY_TOPIC", &pv, &pvl))
        rc = proto_props_put(&pb, "RETRY_TOPIC", origin_topic);
    if (!rc && !rec_prop_get(rv.props, rv.props_len, "ORIGIN_MESSAGE_ID", &pv, &pvl)) {
        if (!origin_id || !*origin_id) {
            rec_msg_id(rv.store_host, rv.store_host_len, rv.store_port, (uint64_t)off, idbuf);
            origin_id = idbuf;
        }
        rc = proto_props_put(&pb, "ORIGIN_MESSAGE_ID", origin_id);
    }
    if (rc) {
        put_error(&rep, rc);
        goto out;
    }
    memset(&m, 0, sizeof(m));
    m.topic = tc.name;
    m.topic_len = strlen(tc.name);
    m.queue_id = 0;
    m.flag = rv.flag;
    m.body = rv.body;
    m.body_len = rv.body_len;
    m.props = pb.data;
    m.props_len = pb.len;
    m.sysflag = rv.sysflag & ~(REC_SYS_TX_MASK | REC_SYS_BORN_V6 | REC_SYS_STORE_V6);
    m.born_ts = rv.born_ts;
    set_hosts(b, c, &m);
    if (rv.born_host_len == 4) {
        memcpy(m.born_host, rv.born_host, 4);
        m.born_port = rv.born_port;
    }
    m.reconsume_times = rv.reconsume_times + 1;
    if (!to_dlq) {
        level = delay > 0 ? (int)delay : 3 + rv.reconsume_times;
        rc = apply_delay(b, &m, &pb, level);
        if (rc) {
            put_error(&rep, rc);
            goto out;
        }
    }
    rc = store_put(b->store, &m, &res);
    store_view_release(pin);
    pin = NULL;
    if (rc) {
        put_failed(b, &rep, rc);
        goto out;
    }
    put_succeeded(b);
    b->put_count++;
    rep.ext_present = 1;
    reply_when_durable(b, c, req, &rep, res.end);
    proto_props_free(&pb);
    return;
out:
    if (pin)
        store_view_release(pin);
    proto_props_free(&pb);
    broker_reply(b, c, req, &rep);
}

/* Delay levels ------------------------------------------------------------------ */

/* Reads {"offsetTable":{level:offset,...}}; anything else is corrupt. */
static int
delay_decode(void *arg, const cJSON *j, char *err, size_t errlen)
{
    struct broker *b = arg;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "offsetTable"), *e;

    if (!cJSON_IsObject(t)) {
        snprintf(err, errlen, "no offsetTable object");
        return SPK_ECORRUPT;
    }
    cJSON_ArrayForEach(e, t)
    {
        char *end;
        long lv = e->string ? strtol(e->string, &end, 10) : 0;
        if (!e->string || *end || lv < 1 || lv > MAX_DELAY_LEVELS || !cJSON_IsNumber(e) ||
            e->valuedouble < 0 || e->valuedouble > 9007199254740992.0) {
            snprintf(err, errlen, "bad entry '%s'", e->string ? e->string : "?");
            return SPK_ECORRUPT;
        }
        b->delay_off[lv - 1] = (uint64_t)e->valuedouble;
    }
    return 0;
}

int
delay_init(struct broker *b, char *err, size_t errlen)
{
    const char *s = b->scfg.messageDelayLevel ? b->scfg.messageDelayLevel : "";
    char path[4200];

    b->ndelay = 0;
    while (*s) {
        char *end;
        long long v;
        int64_t unit;

        while (*s == ' ')
            s++;
        if (!*s)
            break;
        v = strtoll(s, &end, 10);
        if (end == s || v < 0) {
            snprintf(err, errlen, "messageDelayLevel: '%s' is not a list like '1s 5s 1m 2h'",
                     b->scfg.messageDelayLevel);
            return SPK_ECONFIG;
        }
        switch (*end) {
        case 's': unit = 1000; break;
        case 'm': unit = 60000; break;
        case 'h': unit = 3600000; break;
        case 'd': unit = 86400000; break;
        default:
            snprintf(err, errlen, "messageDelayLevel: unit of '%s' must be s, m, h or d", s);
            return SPK_ECONFIG;
        }
        if (b->ndelay == MAX_DELAY_LEVELS) {
            snprintf(err, errlen, "messageDelayLevel: more than %d levels", MAX_DELAY_LEVELS);
            return SPK_ECONFIG;
        }
        b->delay_ms[b->ndelay++] = v * unit;
        s = end + 1;
    }
    if (b->ndelay == 0) {
        snprintf(err, errlen, "messageDelayLevel is empty");
        return SPK_ECONFIG;
    }
    /* delayOffset.json: {"offsetTable":{1:5,2:0}} (level -> next queue offset). */
    snprintf(path, sizeof(path), "%s/config/delayOffset.json", b->scfg.storePathRootDir);
    return cfg_json_load(path, delay_decode, b, NULL, err, errlen);
}

/*
 * Writes delayOffset.json from the published snapshot if it changed.
 * Scheduler thread (or the loop thread once the scheduler has stopped).
 */
int
delay_persist(struct broker *b)
{
    struct sbuf sb = SBUF_INIT;
    uint64_t snap[MAX_DELAY_LEVELS];
    char path[4200];
    char *text;
    size_t len;
    int rc;

    pthread_mutex_lock(&b->delay_mu);
    if (!b->delay_snap_dirty) {
        pthread_mutex_unlock(&b->delay_mu);
        return 0;
    }
    memcpy(snap, b->delay_snap, sizeof(snap));
    b->delay_snap_dirty = 0;
    pthread_mutex_unlock(&b->delay_mu);
    sb_puts(&sb, "{\"offsetTable\":{");
    for (int i = 0; i < b->ndelay; i++)
        sb_printf(&sb, "%s%d:%llu", i ? "," : "", i + 1, (unsigned long long)snap[i]);
    sb_puts(&sb, "}}");
    text = sb_detach(&sb, &len);
    /* sealed (config.h): a flipped digit is found at the next load */
    rc = text ? cfg_json_seal(&text, &len) : -ENOMEM;
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/config/delayOffset.json", b->scfg.storePathRootDir);
        rc = sio_write_file_atomic(path, text, len);
    }
    free(text);
    if (rc) {
        pthread_mutex_lock(&b->delay_mu);
        b->delay_snap_dirty = 1; /* try again next time */
        pthread_mutex_unlock(&b->delay_mu);
    }
    return rc;
}

/* Loop thread: hands the current progress to the scheduler thread. */
void
delay_publish(struct broker *b)
{
    if (!b->delay_dirty)
        return;
    pthread_mutex_lock(&b->delay_mu);
    memcpy(b->delay_snap, b->delay_off, sizeof(b->delay_snap));
    b->delay_snap_dirty = 1;
    pthread_mutex_unlock(&b->delay_mu);
    b->delay_dirty = 0;
}

/* Re-puts one due message to its real topic; 0, or a store error. */
static int
deliver(struct broker *b, const struct rec_view *rv)
{
    static const char *const drop[] = {"__CRC32#", "DELAY", NULL};
    struct proto_props_buf pb;
    struct store_put_result res;
    struct rec_msg m;
    const char *t, *q;
    size_t tl, ql;
    char qbuf[16];
    int rc;

    if (!rec_prop_get(rv->props, rv->props_len, "REAL_TOPIC", &t, &tl) ||
        !rec_prop_get(rv->props, rv->props_len, "REAL_QID", &q, &ql) || ql >= sizeof(qbuf) ||
        tl > 255)
        return 0; /* not ours to deliver: skip it */
    memcpy(qbuf, q, ql);
    qbuf[ql] = '\0';
    proto_props_init(&pb);
    rc = proto_props_copy(&pb, rv->props, rv->props_len, drop);
    if (rc)
        goto out;
    memset(&m, 0, sizeof(m));
    m.topic = t;
    m.topic_len = tl;
    m.queue_id = atoi(qbuf);
    m.flag = rv->flag;
    m.body = rv->body;
    m.body_len = rv->body_len;
    m.props = pb.data;
    m.props_len = pb.len;
    m.sysflag = rv->sysflag & ~(REC_SYS_BORN_V6 | REC_SYS_STORE_V6);
    m.born_ts = rv->born_ts;
    m.born_host_len = 4;
    if (rv->born_host_len == 4)
        memcpy(m.born_host, rv->born_host, 4);
    m.born_port = rv->born_port;
    memcpy(m.store_host, b->store_ip, 4);
    m.store_host_len = 4;
    m.store_port = b->store_port;
    m.reconsume_times = rv->reconsume_times;
    rc = store_put(b->store, &m, &res);
out:
    proto_props_free(&pb);
    return rc;
}

void
delay_tick(void *arg)
{
    struct broker *b = arg;
    int64_t now = spk_wall_ms();
    struct store_get_result *res = NULL;
    int budget = 2000;

    for (int lv = 0; lv < b->ndelay && budget > 0; lv++) {
        uint64_t mn, mx;
        if (store_queue_bounds(b->store, SCHEDULE_TOPIC, lv, &mn, &mx) != 0)
            continue;
        if (b->delay_off[lv] < mn) {
            b->delay_off[lv] = mn;
            b->delay_dirty = 1;
        }
        while (b->delay_off[lv] < mx && budget > 0) {
            size_t i;
            int stop = 0;
            if (!res && !(res = malloc(sizeof(*res))))
                return;
            if (store_get(b->store, SCHEDULE_TOPIC, lv, b->delay_off[lv], 32, 1 << 20, NULL,
                          res) != 0)
                break;
            if (res->status != STORE_FOUND) {
                if (res->next_begin_offset > b->delay_off[lv] &&
                    res->status != STORE_OFFSET_OVERFLOW_ONE) {
                    b->delay_off[lv] = res->next_begin_offset;
                    b->delay_dirty = 1;
                }
                store_get_release(res);
                break;
            }
            for (i = 0; i < res->count; i++) {
                struct rec_view rv;
                const char *why;
                if (rec_parse(res->msgs[i].data, res->msgs[i].len, REC_ANY_POS, REC_CHECK_NONE,
                              &rv, &why) > 0) {
                    if (rv.store_ts + b->delay_ms[lv] > now) {
                        stop = 1;
                        break;
                    }
                    if (deliver(b, &rv) != 0) {
                        stop = 1; /* the store refuses writes: try again next tick */
                        break;
                    }
                }
                b->delay_off[lv] = res->msgs[i].queue_off + 1;
                b->delay_dirty = 1;
                budget--;
            }
            store_get_release(res);
            if (stop)
                break;
        }
    }
    free(res);
    delay_publish(b);
}
