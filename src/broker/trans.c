/*
 * trans.c - transactional messages (STORE.md 11, PROTOCOL.md 3.3): the
 * half-message rewrite of a send, END_TRANSACTION (37), and the check-back
 * rounds that ask producers with CHECK_TRANSACTION_STATE (39).
 *
 * What is stored (nothing but the store and consumerOffset.json):
 *   half     RMQ_SYS_TRANS_HALF_TOPIC queue 0: the prepared message, with
 *            REAL_TOPIC, REAL_QID and __transactionId__ (= UNIQ_KEY), its
 *            transaction bits reset to NOT so that it gets a ConsumeQueue
 *            unit and can be walked by queue offset.
 *   renewed  a half appended again by a check, as Java does: the same
 *            message with TRANSACTION_CHECK_TIMES = checks so far and
 *            TRAN_PREPARED_QUEUE_OFFSET = the queue offset of the first half
 *            of the chain (its "root").
 *   op       RMQ_SYS_TRANS_OP_HALF_TOPIC queue 0, tag "d", body the ASCII
 *            half queue offsets that are finished, each followed by ','
 *            ("17,3,": a renewed copy and its root). One per END, none
 *            batched: an END is one small append either way.
 *   offsets  group CID_RMQ_SYS_TRANS on the half queue (where the next
 *            round starts) and on the op queue (op records still needed by
 *            a walk that starts there), as Java keeps them; they reach
 *            consumerOffset.json with every other consumer offset (the
 *            scheduler thread's periodic write, and the one at stop).
 *
 * Where this differs from Java: a discarded half gets an op record too
 * (so a late commit for it is ignored, not applied); an END for a
 * finished transaction is answered SUCCESS with a remark and changes
 * nothing, where Java would commit again; CHECK_IMMUNITY_TIME_IN_SECONDS
 * is not honoured (every half is first checked after transactionTimeOut).
 *
 * Invariants:
 *   INV-1  A half is finished when its own queue offset or its root is in
 *          the done set. The done set holds every offset an op record
 *          names (rebuilt from the whole op queue at start, pruned only
 *          below the half queue's first offset), and an op record names
 *          both the half an END quoted and its root, so a second END for
 *          the same half, or an END for another copy of the same chain,
 *          changes nothing: a transaction is committed at most once.
 *   INV-2  The op record is appended after the committed message. A crash
 *          in between leaves the half pending and the producer is asked
 *          again: a commit may be repeated after a crash, never lost.
 *   INV-3  The half consume offset passes a pending half only after its
 *          renewed copy has been appended (above it), so every unfinished
 *          transaction keeps a copy at or above the offset, and a restart
 *          resumes from there without re-checking finished halves.
 *   INV-4  A check is counted in the renewed copy before it is sent, even
 *          when no producer of the group is connected, so after
 *          transactionCheckMax checks the half is discarded like a
 *          rollback (op record, plus a copy in TRANS_CHECK_MAX_TIME_TOPIC):
 *          a producer that never answers ends in rollback.
 *   INV-5  A round walks only up to the half queue's end as it was when the
 *          round began: the copies it appends lie beyond and wait for the
 *          next round, so one round checks a transaction at most once.
 *   INV-6  Only the newest copy of a chain is checked: the chain table maps
 *          each root to its newest copy's queue offset (noted at every
 *          renewal, and rebuilt at start from the halves at or above the
 *          consume offset), and older copies count as superseded. So a
 *          consume offset older than the renewals (a crash before it was
 *          persisted) does not check a transaction twice or count down
 *          from an old copy's check count.
 *
 * Threads: all of it runs on the loop thread. A check writes to a
 * producer's connection and reads the producer registry, both the loop's;
 * the store calls (appends, mapped reads) return without waiting for the
 * disk, as the send path's do, and a round does at most TRANS_BUDGET
 * halves before yielding to the loop (the next tick carries on).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/crc.h"
#include "common/errors.h"
#include "common/log.h"

#define TRANS_GROUP "CID_RMQ_SYS_TRANS"
#define TRANS_QID 0
#define TRANS_BUDGET 1024 /* halves looked at per tick */
#define TRANS_GET_BATCH 32

/*
 * uint64 -> uint64, open addressing with linear probing; a key is stored
 * as key + 1 so that 0 marks an empty slot. Nothing is deleted one by
 * one: u64map_rebuild() drops whole ranges (offsets whose halves are gone,
 * chains already walked past), which is all the callers need.
 */
struct u64map {
    uint64_t *key; /* key + 1, 0 = empty */
    uint64_t *val;
    size_t cap, n; /* cap: a power of two, or 0 */
};

/* An op record not yet behind the half consume offset. */
struct op_mark {
    uint64_t op_idx;   /* its queue offset in the op queue */
    uint64_t max_half; /* the highest half offset it names */
};

struct trans {
    struct u64map done;   /* INV-1: finished half offsets (values unused) */
    struct u64map chains; /* INV-6: root -> queue offset of its newest copy */
    uint64_t floor;       /* done pruned below this (the half queue's first offset) */

    struct op_mark *ops; /* FIFO by op_idx: [ops_head, ops_n) */
    size_t ops_head, ops_n, ops_cap;

    int64_t next_round; /* loop clock */
    int more;           /* the last round stopped on its budget */
    uint64_t round_end; /* INV-5 */
    unsigned rr;        /* producer round robin */
    struct spk_log_rl rl_noprod, rl_end, rl_put;
};

/* Offset maps ------------------------------------------------------------------- */

static size_t
u64map_home(const struct u64map *m, uint64_t k)
{
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) & (m->cap - 1);
}

/* The slot of <k>, or -1 when absent. */
static long
u64map_find(const struct u64map *m, uint64_t k)
{
    if (m->cap == 0)
        return -1;
    for (size_t i = u64map_home(m, k);; i = (i + 1) & (m->cap - 1)) {
        if (m->key[i] == 0)
            return -1;
        if (m->key[i] == k + 1)
            return (long)i;
    }
}

static void
u64map_put_nogrow(struct u64map *m, uint64_t k, uint64_t v)
{
    size_t i = u64map_home(m, k);

    while (m->key[i] != 0 && m->key[i] != k + 1)
        i = (i + 1) & (m->cap - 1);
    if (m->key[i] == 0)
        m->n++;
    m->key[i] = k + 1;
    m->val[i] = v;
}

/*
 * Rebuilds <m> with room for <want> entries at load 1/2, keeping only
 * entries with key >= <key_floor> and value >= <val_floor>. On -ENOMEM
 * <m> is unchanged.
 */
static int
u64map_rebuild(struct u64map *m, size_t want, uint64_t key_floor, uint64_t val_floor)
{
    struct u64map o = *m;
    size_t cap = 1024;

    while (cap < want * 2)
        cap *= 2;
    m->key = calloc(cap, sizeof(*m->key));
    m->val = calloc(cap, sizeof(*m->val));
    if (!m->key || !m->val) {
        free(m->key);
        free(m->val);
        *m = o;
        return -ENOMEM;
    }
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < o.cap; i++)
        if (o.key[i] != 0 && o.key[i] - 1 >= key_floor && o.val[i] >= val_floor)
            u64map_put_nogrow(m, o.key[i] - 1, o.val[i]);
    free(o.key);
    free(o.val);
    return 0;
}

static int
u64map_put(struct u64map *m, uint64_t k, uint64_t v)
{
    if ((m->n + 1) * 2 > m->cap && u64map_rebuild(m, m->n + 1, 0, 0) != 0)
        return -ENOMEM;
    u64map_put_nogrow(m, k, v);
    return 0;
}

static void
u64map_free(struct u64map *m)
{
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof(*m));
}

static int
done_has(const struct trans *t, uint64_t v)
{
    return u64map_find(&t->done, v) >= 0;
}

static int
done_add(struct trans *t, uint64_t v)
{
    return u64map_put(&t->done, v, 0);
}

/* The queue offset of the newest copy of chain <root> (0 when unknown). */
static uint64_t
chain_latest(const struct trans *t, uint64_t root)
{
    long i = u64map_find(&t->chains, root);

    return i >= 0 && t->chains.val ? t->chains.val[i] : 0;
}

static void
chain_note(struct trans *t, uint64_t root, uint64_t qoff)
{
    if (chain_latest(t, root) < qoff)
        u64map_put(&t->chains, root, qoff); /* on -ENOMEM a copy may be checked twice: harmless */
}

/* The op FIFO ----------------------------------------------------------------- */

static void
ops_note(struct trans *t, uint64_t op_idx, uint64_t max_half)
{
    if (t->ops_n == t->ops_cap) {
        size_t live = t->ops_n - t->ops_head;
        if (t->ops_head > 0 && t->ops_head >= live) {
            memmove(t->ops, t->ops + t->ops_head, live * sizeof(*t->ops));
            t->ops_n = live;
            t->ops_head = 0;
        } else {
            size_t cap = t->ops_cap ? t->ops_cap * 2 : 64;
            struct op_mark *n = realloc(t->ops, cap * sizeof(*n));
            if (!n)
                return; /* the op offset then moves on a little early: informational */
            t->ops = n;
            t->ops_cap = cap;
        }
    }
    t->ops[t->ops_n].op_idx = op_idx;
    t->ops[t->ops_n].max_half = max_half;
    t->ops_n++;
}

/*
 * Adds the offsets named by an op body ("17,3,") to the done set and
 * returns the highest (0 when none). Pieces that are not decimal numbers
 * are skipped, as Java skips what Long.parseLong refuses.
 */
static uint64_t
op_body_apply(struct trans *t, const uint8_t *p, size_t len)
{
    uint64_t v = 0, max = 0;
    int digits = 0, junk = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == ',') {
            if (digits && !junk) {
                if (done_add(t, v) != 0)
                    break;
                if (v > max)
                    max = v;
            }
            v = 0;
            digits = junk = 0;
        } else if (p[i] >= '0' && p[i] <= '9' && v <= (UINT64_MAX - 9) / 10) {
            v = v * 10 + (uint64_t)(p[i] - '0');
            digits = 1;
        } else {
            junk = 1;
        }
    }
    return max;
}

/* Helpers ----------------------------------------------------------------------- */

static int
prop_eq(const char *props, size_t len, const char *name, const char *want)
{
    const char *v;
    size_t vl;

    return rec_prop_get(props, len, name, &v, &vl) && vl == strlen(want) &&
           memcmp(v, want, vl) == 0;
}

static int
has_prop(const char *props, size_t len, const char *name)
{
    const char *v;
    size_t vl;

    return rec_prop_get(props, len, name, &v, &vl);
}

/* A decimal property as a number; <dflt> when absent or not a number. */
static int64_t
prop_num(const char *props, size_t len, const char *name, int64_t dflt)
{
    const char *v;
    size_t vl;
    char tmp[24];
    char *end;
    long long x;

    if (!rec_prop_get(props, len, name, &v, &vl) || vl == 0 || vl >= sizeof(tmp))
        return dflt;
    memcpy(tmp, v, vl);
    tmp[vl] = '\0';
    errno = 0;
    x = strtoll(tmp, &end, 10);
    if (errno || *end)
        return dflt;
    return x;
}

/* The queue offset of the first half of <rv>'s chain (INV-1). */
static uint64_t
half_root(const struct rec_view *rv)
{
    int64_t r = prop_num(rv->props, rv->props_len, "TRAN_PREPARED_QUEUE_OFFSET", -1);

    return r >= 0 ? (uint64_t)r : rv->queue_off;
}

static int
half_done(const struct trans *t, const struct rec_view *rv)
{
    return done_has(t, rv->queue_off) || done_has(t, half_root(rv));
}

/* The message of record <rv> as a rec_msg to append again (topic etc. unset). */
static void
msg_from_record(struct broker *b, const struct rec_view *rv, struct rec_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->queue_id = rv->queue_id;
    m->flag = rv->flag;
    m->body = rv->body;
    m->body_len = rv->body_len;
    m->sysflag = rv->sysflag & ~(REC_SYS_BORN_V6 | REC_SYS_STORE_V6);
    m->born_ts = rv->born_ts;
    m->born_host_len = rv->born_host_len == 16 ? 16 : 4;
    memcpy(m->born_host, rv->born_host, (size_t)m->born_host_len);
    m->born_port = rv->born_port;
    memcpy(m->store_host, b->store_ip, 4);
    m->store_host_len = 4;
    m->store_port = b->store_port;
    m->reconsume_times = rv->reconsume_times;
}

/* REAL_TOPIC / REAL_QID of a half; 0, or SPK_EFORMAT when unusable. */
static int
half_real(const struct rec_view *rv, char topic[256], int32_t *qid)
{
    const char *v;
    size_t vl;
    int64_t q = prop_num(rv->props, rv->props_len, "REAL_QID", -1);

    if (!rec_prop_get(rv->props, rv->props_len, "REAL_TOPIC", &v, &vl) || vl == 0 || vl > 255 ||
        memchr(v, '\0', vl) || q < 0 || q > 65535)
        return SPK_EFORMAT;
    memcpy(topic, v, vl);
    topic[vl] = '\0';
    *qid = (int32_t)q;
    return 0;
}

/*
 * Appends the op record finishing <qoff> (and <root> when it differs) and
 * marks both done. *end gets the end of the record for a durable reply.
 */
static int
op_write(struct broker *b, uint64_t qoff, uint64_t root, uint64_t *end)
{
    static const char props[] = "TAGS\001d\002WAIT\001false\002";
    struct trans *t = b->trans;
    struct store_put_result res;
    struct rec_msg m;
    char body[48];
    int len, rc;

    if (root != qoff)
        len = snprintf(body, sizeof(body), "%llu,%llu,", (unsigned long long)qoff,
                       (unsigned long long)root);
    else
        len = snprintf(body, sizeof(body), "%llu,", (unsigned long long)qoff);
    memset(&m, 0, sizeof(m));
    m.topic = TOPIC_TRANS_OP_HALF;
    m.topic_len = strlen(TOPIC_TRANS_OP_HALF);
    m.queue_id = TRANS_QID;
    m.body = body;
    m.body_len = (size_t)len;
    m.props = props;
    m.props_len = sizeof(props) - 1;
    m.born_ts = spk_wall_ms();
    memcpy(m.born_host, b->store_ip, 4);
    m.born_host_len = 4;
    m.born_port = b->store_port;
    memcpy(m.store_host, b->store_ip, 4);
    m.store_host_len = 4;
    m.store_port = b->store_port;
    /* Done in memory even if the append fails: no second commit while this
     * process lives; after a restart the producer is asked again (INV-2). */
    done_add(t, qoff);
    done_add(t, root);
    rc = store_put(b->store, &m, &res);
    if (rc)
        return rc;
    ops_note(t, res.queue_off, qoff > root ? qoff : root);
    if (end)
        *end = res.end;
    return 0;
}

/* The half message ------------------------------------------------------------- */

/*
 * Whether a send's properties make it a transaction's half message: Java
 * decides on TRAN_MSG alone (Boolean.parseBoolean), except for the retry
 * resends of clients before 4.6.1, which carry the original TRAN_MSG with
 * a reconsume count and a delay level. Pure; any thread.
 */
int
trans_is_prepared(const char *props, size_t len, int64_t reconsume_times)
{
    const char *v;
    size_t vl;

    if (!rec_prop_get(props, len, "TRAN_MSG", &v, &vl) || vl != 4 || strncasecmp(v, "true", 4))
        return 0;
    return !(reconsume_times > 0 && prop_num(props, len, "DELAY", 0) > 0);
}

/*
 * Rewrites the send <m> into its half message (STORE.md 11): properties
 * REAL_TOPIC, REAL_QID and __transactionId__ added to <pb> (the client's
 * own values of those, and of the broker's check bookkeeping, dropped),
 * topic RMQ_SYS_TRANS_HALF_TOPIC, queue 0, transaction bits NOT. <m> then
 * points into <pb>, which stays the caller's. Returns 0, SPK_ETOOBIG or
 * -ENOMEM; <m> and <pb> are unchanged on failure.
 */
int
trans_make_half(struct rec_msg *m, struct proto_props_buf *pb)
{
    static const char *const drop[] = {"__CRC32#",
                                       "REAL_TOPIC",
                                       "REAL_QID",
                                       "__transactionId__",
                                       "TRANSACTION_CHECK_TIMES",
                                       "TRAN_PREPARED_QUEUE_OFFSET",
                                       NULL};
    struct proto_props_buf nb;
    char topic[256], qid[16], uniq[256];
    const char *v;
    size_t vl, tl = m->topic_len < 255 ? m->topic_len : 255;
    int rc, has_uniq = 0;

    memcpy(topic, m->topic, tl);
    topic[tl] = '\0';
    snprintf(qid, sizeof(qid), "%d", (int)m->queue_id);
    if (proto_props_get(pb->data ? pb->data : "", pb->len, "UNIQ_KEY", &v, &vl) && vl > 0 &&
        vl < sizeof(uniq)) {
        memcpy(uniq, v, vl);
        uniq[vl] = '\0';
        has_uniq = 1;
    }
    proto_props_init(&nb);
    rc = proto_props_copy(&nb, pb->data ? pb->data : "", pb->len, drop);
    if (!rc && has_uniq)
        rc = proto_props_put(&nb, "__transactionId__", uniq);
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
    m->topic = TOPIC_TRANS_HALF;
    m->topic_len = strlen(TOPIC_TRANS_HALF);
    m->queue_id = TRANS_QID;
    m->sysflag &= ~REC_SYS_TX_MASK;
    m->props = pb->data;
    m->props_len = pb->len;
    return 0;
}

/* END_TRANSACTION ---------------------------------------------------------------- */

/*
 * The committed message (STORE.md 11): the half's message to REAL_TOPIC /
 * REAL_QID, transaction bits COMMIT, PREPARED TX OFFSET = the half's
 * CommitLog offset, REAL_TOPIC, REAL_QID, TRAN_MSG (and the broker's chain
 * bookkeeping) removed, everything else kept.
 */
static int
commit_put(struct broker *b, const struct rec_view *rv, uint64_t half_phys,
           struct store_put_result *res)
{
    static const char *const drop[] = {
        "__CRC32#", "REAL_TOPIC", "REAL_QID", "TRAN_MSG", "TRAN_PREPARED_QUEUE_OFFSET", NULL};
    struct proto_props_buf pb;
    struct rec_msg m;
    char topic[256];
    int32_t qid;
    int rc = half_real(rv, topic, &qid);

    if (rc)
        return rc;
    proto_props_init(&pb);
    rc = proto_props_copy(&pb, rv->props, rv->props_len, drop);
    if (rc)
        goto out;
    msg_from_record(b, rv, &m);
    m.topic = topic;
    m.topic_len = strlen(topic);
    m.queue_id = qid;
    m.sysflag = (m.sysflag & ~REC_SYS_TX_MASK) | REC_SYS_TX_COMMIT;
    m.prepared_tx_offset = (int64_t)half_phys;
    m.props = pb.data;
    m.props_len = pb.len;
    rc = store_put(b->store, &m, res);
out:
    proto_props_free(&pb);
    return rc;
}

static void
end_refused(struct broker *b, struct net_conn *c, const struct proto_cmd *req,
            struct proto_reply *rep)
{
    /* END is oneway from real producers: the log is the only trace */
    spk_log_ratelimited(&b->trans->rl_end, 10000, SPK_LOG_WARN, "broker",
                        "END_TRANSACTION from %s refused: %s", net_conn_peer(c),
                        rep->remark ? rep->remark : "?");
    broker_reply(b, c, req, rep);
}

/*
 * END_TRANSACTION (37), oneway or not (a reply only when not). Commit
 * (8) appends the committed message and then the op record; rollback
 * (12) only the op record; unknown (0) does nothing, the check-back will
 * ask. An END for a finished transaction is answered SUCCESS with a
 * remark and changes nothing (INV-1). Loop thread.
 */
void
proc_end_transaction(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    struct proto_reply rep;
    struct store_msg_view v;
    struct store_put_result res;
    struct rec_view rv;
    void *pin = NULL;
    const char *group = ext_str(req, "producerGroup");
    const char *why = NULL;
    int bad = 0, rc;
    int64_t qoff = ext_i64(req, "tranStateTableOffset", -1, &bad);
    int64_t phys = ext_i64(req, "commitLogOffset", -1, &bad);
    int64_t kind = ext_i64(req, "commitOrRollback", -1, &bad);
    uint64_t root, end = 0;

    proto_reply_init(&rep, RS_SUCCESS);
    rep.ext_present = 1;
    if (bad || !group || !*group || qoff < 0 || phys < 0 || kind < 0) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "END_TRANSACTION needs producerGroup, tranStateTableOffset, "
                                 "commitLogOffset and commitOrRollback");
        end_refused(b, c, req, &rep);
        return;
    }
    if (kind == REC_SYS_TX_NOT) {
        /* the producer does not know yet: the check-back will ask it */
        broker_reply(b, c, req, &rep);
        return;
    }
    if (kind != REC_SYS_TX_COMMIT && kind != REC_SYS_TX_ROLLBACK) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "commitOrRollback %lld is not 0, 8 (commit) or 12 (rollback)",
                           (long long)kind);
        end_refused(b, c, req, &rep);
        return;
    }
    rc = store_get_by_offset(b->store, (uint64_t)phys, &v, &pin);
    if (rc) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep,
                           "Find prepared transaction message failed: no message at "
                           "commitLogOffset %lld (%s)",
                           (long long)phys, spk_strerror(rc));
        end_refused(b, c, req, &rep);
        return;
    }
    if (rec_parse(v.data, v.len, REC_ANY_POS, REC_CHECK_NONE, &rv, &why) <= 0) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "the message at commitLogOffset %lld is damaged: %s",
                           (long long)phys, why ? why : "?");
        goto refused;
    }
    if (rv.topic_len != strlen(TOPIC_TRANS_HALF) ||
        memcmp(rv.topic, TOPIC_TRANS_HALF, rv.topic_len) != 0) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "the message at commitLogOffset %lld is not a half message",
                           (long long)phys);
        goto refused;
    }
    if (!prop_eq(rv.props, rv.props_len, "PGROUP", group)) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "The producer group wrong");
        goto refused;
    }
    if (rv.queue_off != (uint64_t)qoff) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "The transaction state table offset wrong");
        goto refused;
    }
    root = half_root(&rv);
    if (half_done(b->trans, &rv)) {
        proto_reply_remark(&rep, "the transaction was already committed or rolled back; "
                                 "nothing changed");
        spk_log(SPK_LOG_DEBUG, "broker", "END_TRANSACTION for finished half %lld ignored",
                (long long)qoff);
        goto answered;
    }
    if (kind == REC_SYS_TX_COMMIT) {
        rc = commit_put(b, &rv, (uint64_t)phys, &res);
        if (rc) {
            put_error(&rep, rc);
            goto refused;
        }
        b->put_count++;
        b->put_bytes += res.bytes;
        end = res.end;
    }
    store_view_release(pin);
    pin = NULL;
    rc = op_write(b, (uint64_t)qoff, root, &end);
    if (rc)
        spk_log_ratelimited(&b->trans->rl_put, 10000, SPK_LOG_WARN, "broker",
                            "the op record of transaction half %lld could not be stored (%s): "
                            "after a restart its producer will be asked again",
                            (long long)qoff, spk_strerror(rc));
    reply_when_durable(b, c, req, &rep, end);
    return;
answered:
    store_view_release(pin);
    broker_reply(b, c, req, &rep);
    return;
refused:
    store_view_release(pin);
    end_refused(b, c, req, &rep);
}

/* Check-back --------------------------------------------------------------------- */

/* One live connection of producer group <name>, round robin; NULL if none. */
static struct net_conn *
pick_producer(struct broker *b, const char *name, size_t len)
{
    for (size_t i = 0; i < b->npgroups; i++) {
        struct pgroup *g = &b->pgroups[i];
        if (strlen(g->name) != len || memcmp(g->name, name, len) != 0)
            continue;
        for (size_t k = 0; k < g->nclients; k++) {
            struct client_ref *cr = &g->clients[(b->trans->rr + k) % g->nclients];
            if (!net_conn_is_closed(cr->conn)) {
                b->trans->rr++;
                return cr->conn;
            }
        }
        return NULL;
    }
    return NULL;
}

/*
 * Sends CHECK_TRANSACTION_STATE (oneway) for the renewed half <m> stored
 * at <res>, to a producer of its PGROUP. The body is the message in stored
 * format with topic REAL_TOPIC and queue REAL_QID; the header names the
 * renewed half, which the producer's END quotes back.
 */
static void
send_check(struct broker *b, const struct rec_msg *m, const struct store_put_result *res,
           const char *real_topic, int32_t real_qid, long times)
{
    struct proto_reply r;
    struct rec_msg mm = *m;
    struct net_conn *c;
    const char *g, *u;
    size_t gl = 0, ul = 0, len;
    uint8_t *body, *frame;
    size_t flen;
    char id[64];
    size_t idl;

    if (!rec_prop_get(m->props, m->props_len, "PGROUP", &g, &gl))
        gl = 0;
    c = gl ? pick_producer(b, g, gl) : NULL;
    if (!c) {
        spk_log_ratelimited(&b->trans->rl_noprod, 10000, SPK_LOG_WARN, "broker",
                            "no producer of group '%.*s' is connected to check transaction "
                            "half %llu (check %ld of %d counted)",
                            (int)gl, gl ? g : "", (unsigned long long)res->queue_off, times,
                            b->cfg.transactionCheckMax);
        return;
    }
    mm.topic = real_topic;
    mm.topic_len = strlen(real_topic);
    mm.queue_id = real_qid;
    len = rec_length(&mm, 0);
    if (len == 0 || !(body = malloc(len)))
        return;
    rec_encode(body, len, &mm, spk_crc32_masked(mm.body, mm.body_len), res->queue_off,
               res->phys_off, res->store_ts, 0);
    proto_reply_init(&r, RC_CHECK_TRANSACTION_STATE);
    proto_reply_ext_i64(&r, "tranStateTableOffset", (int64_t)res->queue_off);
    proto_reply_ext_i64(&r, "commitLogOffset", (int64_t)res->phys_off);
    if (rec_prop_get(m->props, m->props_len, "UNIQ_KEY", &u, &ul)) {
        proto_reply_ext_str(&r, "msgId", u, ul);
        proto_reply_ext_str(&r, "transactionId", u, ul);
    }
    idl = rec_msg_id(b->store_ip, 4, b->store_port, res->phys_off, id);
    proto_reply_ext_str(&r, "offsetMsgId", id, idl);
    /* Java names the half topic here (the body carries the real one) */
    proto_reply_ext_str(&r, "topic", TOPIC_TRANS_HALF, strlen(TOPIC_TRANS_HALF));
    proto_reply_ext_str(&r, "bname", b->cfg.brokerName, strlen(b->cfg.brokerName));
    proto_reply_body(&r, body, len);
    if (proto_request_encode(&r, b->next_opaque++, 1, &frame, &flen) == 0)
        net_conn_send(c, frame, flen);
    proto_reply_free(&r);
    spk_log(SPK_LOG_DEBUG, "broker", "transaction half %llu: check %ld sent to %s",
            (unsigned long long)res->queue_off, times, net_conn_peer(c));
}

/*
 * Appends <rv> again with TRANSACTION_CHECK_TIMES = <times> and its root
 * (INV-3, INV-4), then asks a producer. Returns 0 or a store error (then
 * nothing was sent and the round stops here).
 */
static int
check_half(struct broker *b, const struct rec_view *rv, long times)
{
    static const char *const drop[] = {"__CRC32#", "TRANSACTION_CHECK_TIMES",
                                       "TRAN_PREPARED_QUEUE_OFFSET", NULL};
    struct proto_props_buf pb;
    struct store_put_result res;
    struct rec_msg m;
    char topic[256], num[24];
    int32_t qid;
    int rc = half_real(rv, topic, &qid);

    if (rc)
        return rc;
    proto_props_init(&pb);
    rc = proto_props_copy(&pb, rv->props, rv->props_len, drop);
    snprintf(num, sizeof(num), "%ld", times);
    if (!rc)
        rc = proto_props_put(&pb, "TRANSACTION_CHECK_TIMES", num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)half_root(rv));
    if (!rc)
        rc = proto_props_put(&pb, "TRAN_PREPARED_QUEUE_OFFSET", num);
    if (rc)
        goto out;
    msg_from_record(b, rv, &m);
    m.topic = TOPIC_TRANS_HALF;
    m.topic_len = strlen(TOPIC_TRANS_HALF);
    m.props = pb.data;
    m.props_len = pb.len;
    rc = store_put(b->store, &m, &res);
    if (rc == 0) {
        chain_note(b->trans, half_root(rv), res.queue_off);
        send_check(b, &m, &res, topic, qid, times);
    }
out:
    proto_props_free(&pb);
    return rc;
}

/*
 * Gives up on a half (INV-4): a copy to TRANS_CHECK_MAX_TIME_TOPIC for a
 * person to look at (best effort), then the op record, as a rollback.
 */
static int
discard_half(struct broker *b, const struct rec_view *rv, const char *reason)
{
    static const char *const drop[] = {"__CRC32#", NULL};
    struct proto_props_buf pb;
    struct store_put_result res;
    struct topic_config tc;
    struct rec_msg m;
    const char *u;
    size_t ul = 0;
    int created = 0, rc;

    if (!rec_prop_get(rv->props, rv->props_len, "UNIQ_KEY", &u, &ul))
        ul = 0;
    spk_log(SPK_LOG_INFO, "broker", "transaction %.*s (half %llu) rolled back: %s", (int)ul,
            ul ? u : "-", (unsigned long long)rv->queue_off, reason);
    proto_props_init(&pb);
    rc = topics_ensure(b->topics, TOPIC_TRANS_CHECK_MAX_TIME, 1, PERM_READ | PERM_WRITE, 0, &tc,
                       &created);
    if (rc == 0 && created)
        broker_request_register(b);
    if (rc == 0)
        rc = proto_props_copy(&pb, rv->props, rv->props_len, drop);
    if (rc == 0) {
        msg_from_record(b, rv, &m);
        m.topic = TOPIC_TRANS_CHECK_MAX_TIME;
        m.topic_len = strlen(TOPIC_TRANS_CHECK_MAX_TIME);
        m.queue_id = 0;
        m.props = pb.data;
        m.props_len = pb.len;
        rc = store_put(b->store, &m, &res);
    }
    proto_props_free(&pb);
    if (rc)
        spk_log_ratelimited(&b->trans->rl_put, 10000, SPK_LOG_WARN, "broker",
                            "discarded transaction half %llu not copied to %s: %s",
                            (unsigned long long)rv->queue_off, TOPIC_TRANS_CHECK_MAX_TIME,
                            spk_strerror(rc));
    return op_write(b, rv->queue_off, half_root(rv), NULL);
}

/*
 * Decides about one half of a round (STORE.md 11 check-back): 0 to go on
 * to the next, 1 to end the round here (a half too young to check), or a
 * store error (the round ends; the next one tries again).
 */
static int
walk_one(struct broker *b, const struct rec_view *rv, int64_t now)
{
    long times;
    int64_t age;
    char topic[256];
    int32_t qid;

    if (half_done(b->trans, rv) || chain_latest(b->trans, half_root(rv)) > rv->queue_off)
        return 0; /* finished, or superseded by a newer copy (INV-6) */
    if (half_real(rv, topic, &qid) != 0 || !has_prop(rv->props, rv->props_len, "PGROUP"))
        return discard_half(b, rv, "no usable REAL_TOPIC, REAL_QID or PGROUP");
    times = (long)prop_num(rv->props, rv->props_len, "TRANSACTION_CHECK_TIMES", 0);
    if (times < 0)
        times = 0;
    if (times >= b->cfg.transactionCheckMax)
        return discard_half(b, rv, "its producer did not answer transactionCheckMax checks");
    age = now - rv->born_ts;
    if (age > (int64_t)b->scfg.fileReservedTime * 3600000)
        return discard_half(b, rv, "older than fileReservedTime");
    /* Halves are in (roughly) birth order: a young one means the rest are
     * too. A negative age is a producer clock ahead of ours: check, as Java. */
    if (age >= 0 && age <= b->cfg.transactionTimeOut)
        return 1;
    return check_half(b, rv, times + 1);
}

/* One round (or the next part of one) over the half queue. */
static void
trans_round(struct broker *b, int64_t now)
{
    struct trans *t = b->trans;
    struct store_get_result *res = NULL;
    uint64_t mn, mx, cur, stop_at, op_mn, op_mx, op_off;
    int64_t stored = -1, op_stored = -1;
    int budget = TRANS_BUDGET, stop = 0, rc;

    if (store_queue_bounds(b->store, TOPIC_TRANS_HALF, TRANS_QID, &mn, &mx) != 0) {
        t->more = 0;
        return;
    }
    if (!t->more)
        t->round_end = mx; /* INV-5 */
    stop_at = mx < t->round_end ? mx : t->round_end;
    if (mn > t->floor) {
        t->floor = mn;
        /* on failure the stale offsets stay: harmless */
        u64map_rebuild(&t->done, t->done.n, mn, 0);
    }
    cur = mn;
    if (offsets_query(b->offsets, TRANS_GROUP, TOPIC_TRANS_HALF, TRANS_QID, &stored) == 0 &&
        stored >= 0)
        cur = (uint64_t)stored < mn ? mn : (uint64_t)stored > mx ? mx : (uint64_t)stored;
    while (!stop && cur < stop_at && budget > 0) {
        if (!res && !(res = malloc(sizeof(*res))))
            break;
        if (store_get(b->store, TOPIC_TRANS_HALF, TRANS_QID, cur, TRANS_GET_BATCH, 1 << 20, NULL,
                      res) != 0)
            break;
        if (res->status != STORE_FOUND || res->count == 0) {
            /* a hole (expired or damaged): go on from where the store says */
            if (res->next_begin_offset > cur && res->status != STORE_OFFSET_OVERFLOW_ONE)
                cur = res->next_begin_offset;
            else
                stop = 1;
            store_get_release(res);
            continue;
        }
        for (size_t i = 0; i < res->count && budget > 0; i++) {
            struct rec_view rv;
            const char *why;
            if (res->msgs[i].queue_off >= stop_at) {
                stop = 1;
                break;
            }
            if (rec_parse(res->msgs[i].data, res->msgs[i].len, REC_ANY_POS, REC_CHECK_NONE, &rv,
                          &why) > 0 &&
                (rc = walk_one(b, &rv, now)) != 0) {
                if (rc < 0)
                    spk_log_ratelimited(&t->rl_put, 10000, SPK_LOG_WARN, "broker",
                                        "transaction check of half %llu stopped: %s; the next "
                                        "round tries again",
                                        (unsigned long long)rv.queue_off, spk_strerror(rc));
                stop = 1;
                break;
            }
            cur = res->msgs[i].queue_off + 1;
            budget--;
        }
        store_get_release(res);
    }
    free(res);
    t->more = budget == 0 && !stop && cur < stop_at;
    /* A chain whose newest copy the walk has passed is finished (INV-6). */
    if (!t->more && t->chains.n > 0)
        u64map_rebuild(&t->chains, t->chains.n, 0, cur);
    if (stored < 0 || (uint64_t)stored != cur)
        offsets_commit(b->offsets, TRANS_GROUP, TOPIC_TRANS_HALF, TRANS_QID, (int64_t)cur);
    /* The op records a walk from <cur> still needs start at the first one
     * naming a half at or above it (Java's op consume offset). */
    while (t->ops_head < t->ops_n && t->ops[t->ops_head].max_half < cur)
        t->ops_head++;
    if (store_queue_bounds(b->store, TOPIC_TRANS_OP_HALF, TRANS_QID, &op_mn, &op_mx) != 0)
        return;
    op_off = t->ops_head < t->ops_n ? t->ops[t->ops_head].op_idx : op_mx;
    if (offsets_query(b->offsets, TRANS_GROUP, TOPIC_TRANS_OP_HALF, TRANS_QID, &op_stored) != 0 ||
        op_stored != (int64_t)op_off)
        offsets_commit(b->offsets, TRANS_GROUP, TOPIC_TRANS_OP_HALF, TRANS_QID, (int64_t)op_off);
}

/*
 * Loop timer (every 100 ms): a round every transactionCheckInterval, and
 * the rest of a round that ran out of budget on the next tick.
 */
void
trans_tick(void *arg)
{
    struct broker *b = arg;
    struct trans *t = b->trans;
    int64_t now = net_loop_now(b->loop);

    if (!t->more) {
        if (now < t->next_round)
            return;
        t->next_round = now + b->cfg.transactionCheckInterval;
    }
    trans_round(b, spk_wall_ms());
}

/* Start and stop -------------------------------------------------------------- */

/*
 * Rebuilds the done set from the whole op queue (INV-1), and the op FIFO
 * from the records still needed by a walk from the half consume offset.
 * Before the loop runs.
 */
static int
load_ops(struct broker *b, struct trans *t, char *err, size_t errlen)
{
    struct store_get_result *res;
    uint64_t mn, mx, q, half_mn, half_mx, half_off = 0;
    int64_t stored;
    size_t nrec = 0;

    if (store_queue_bounds(b->store, TOPIC_TRANS_HALF, TRANS_QID, &half_mn, &half_mx) == 0) {
        t->floor = half_mn;
        half_off = half_mn;
    }
    if (offsets_query(b->offsets, TRANS_GROUP, TOPIC_TRANS_HALF, TRANS_QID, &stored) == 0 &&
        stored > 0 && (uint64_t)stored > half_off)
        half_off = (uint64_t)stored;
    if (store_queue_bounds(b->store, TOPIC_TRANS_OP_HALF, TRANS_QID, &mn, &mx) != 0)
        return 0;
    res = malloc(sizeof(*res));
    if (!res)
        return -ENOMEM;
    for (q = mn; q < mx;) {
        int rc = store_get(b->store, TOPIC_TRANS_OP_HALF, TRANS_QID, q, 256, 4 << 20, NULL, res);
        if (rc) {
            snprintf(err, errlen, "reading %s at %llu: %s", TOPIC_TRANS_OP_HALF,
                     (unsigned long long)q, spk_strerror(rc));
            free(res);
            return rc;
        }
        if (res->status != STORE_FOUND || res->count == 0) {
            uint64_t next = res->next_begin_offset;
            store_get_release(res);
            if (next <= q)
                break;
            q = next;
            continue;
        }
        for (size_t i = 0; i < res->count; i++) {
            struct rec_view rv;
            const char *why;
            if (rec_parse(res->msgs[i].data, res->msgs[i].len, REC_ANY_POS, REC_CHECK_NONE, &rv,
                          &why) > 0 &&
                prop_eq(rv.props, rv.props_len, "TAGS", "d")) {
                uint64_t max = op_body_apply(t, rv.body, rv.body_len);
                if (max >= half_off)
                    ops_note(t, res->msgs[i].queue_off, max);
            }
            q = res->msgs[i].queue_off + 1;
            nrec++;
        }
        store_get_release(res);
    }
    free(res);
    if (nrec)
        spk_log(SPK_LOG_INFO, "broker",
                "transactions: %zu op records read, %zu finished halves, next check from "
                "half %llu",
                nrec, t->done.n, (unsigned long long)half_off);
    return 0;
}

/*
 * Rebuilds the chain table (INV-6) from the halves a walk will see: from
 * the half consume offset to the end of the queue.
 */
static int
load_chains(struct broker *b, struct trans *t, char *err, size_t errlen)
{
    struct store_get_result *res;
    uint64_t mn, mx, q;
    int64_t stored;

    if (store_queue_bounds(b->store, TOPIC_TRANS_HALF, TRANS_QID, &mn, &mx) != 0)
        return 0;
    q = mn;
    if (offsets_query(b->offsets, TRANS_GROUP, TOPIC_TRANS_HALF, TRANS_QID, &stored) == 0 &&
        stored >= 0 && (uint64_t)stored > mn)
        q = (uint64_t)stored;
    res = malloc(sizeof(*res));
    if (!res)
        return -ENOMEM;
    while (q < mx) {
        int rc = store_get(b->store, TOPIC_TRANS_HALF, TRANS_QID, q, 256, 4 << 20, NULL, res);
        if (rc) {
            snprintf(err, errlen, "reading %s at %llu: %s", TOPIC_TRANS_HALF, (unsigned long long)q,
                     spk_strerror(rc));
            free(res);
            return rc;
        }
        if (res->status != STORE_FOUND || res->count == 0) {
            uint64_t next = res->next_begin_offset;
            store_get_release(res);
            if (next <= q)
                break;
            q = next;
            continue;
        }
        for (size_t i = 0; i < res->count; i++) {
            struct rec_view rv;
            const char *why;
            if (rec_parse(res->msgs[i].data, res->msgs[i].len, REC_ANY_POS, REC_CHECK_NONE, &rv,
                          &why) > 0 &&
                !half_done(t, &rv))
                chain_note(t, half_root(&rv), rv.queue_off);
            q = res->msgs[i].queue_off + 1;
        }
        store_get_release(res);
    }
    free(res);
    return 0;
}

/*
 * Creates the transaction state of <b> (b->trans) from the store: the op
 * queue read, the first round due transactionCheckInterval from now, as
 * Java's service waits before its first. Call after the store and the
 * offsets are open, before the loop runs. Returns 0, -ENOMEM, or a store
 * error with <err> set.
 */
int
trans_init(struct broker *b, char *err, size_t errlen)
{
    struct trans *t = calloc(1, sizeof(*t));
    int rc;

    if (!t)
        return -ENOMEM;
    rc = load_ops(b, t, err, errlen);
    if (rc == 0)
        rc = load_chains(b, t, err, errlen);
    if (rc) {
        u64map_free(&t->done);
        u64map_free(&t->chains);
        free(t->ops);
        free(t);
        return rc;
    }
    t->next_round = spk_mono_ms() + b->cfg.transactionCheckInterval;
    b->trans = t;
    return 0;
}

void
trans_free(struct broker *b)
{
    if (!b->trans)
        return;
    u64map_free(&b->trans->done);
    u64map_free(&b->trans->chains);
    free(b->trans->ops);
    free(b->trans);
    b->trans = NULL;
}
