/*
 * admin.c - queries and administration: VIEW_MESSAGE_BY_ID, QUERY_MESSAGE,
 * topic management, stats, connections, runtime info, broker config,
 * subscription groups and resetting a group's offsets by time.
 *
 * Bodies follow fastjson's forms where Java admin tools parse them
 * (PROTOCOL.md 3.8, 5.1): bean fields in alphabetical order, and
 * Map<MessageQueue, ...> written with JSON objects as keys.
 *
 * Invariants:
 *   INV-1  None of these requests can change a message. Metadata changes
 *          only through UPDATE_AND_CREATE_TOPIC / DELETE_TOPIC_IN_BROKER
 *          (topics), UPDATE_AND_CREATE_SUBSCRIPTIONGROUP /
 *          DELETE_SUBSCRIPTIONGROUP (subscription groups; the latter may
 *          drop the group's offsets), UPDATE_BROKER_CONFIG (CFG_RUNTIME
 *          keys only) and INVOKE_BROKER_TO_RESET_OFFSET (one group's
 *          offsets of one topic).
 *   INV-2  INVOKE_BROKER_TO_RESET_OFFSET commits the new offsets before it
 *          tells the group's consumers (RESET_CONSUMER_CLIENT_OFFSET,
 *          oneway) and before it replies, so a consumer that restarts
 *          instead of obeying the notification still starts from them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/internal.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "net/loop.h"
#include "store/record.h"

static void
body_from_sbuf(struct proto_reply *rep, struct sbuf *sb)
{
    size_t len;
    char *p = sb_detach(sb, &len);

    if (!p) {
        rep->err = -ENOMEM;
        return;
    }
    proto_reply_body(rep, p, len);
}

static void
view_message(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    int bad = 0;
    int64_t off = ext_i64(req, "offset", -1, &bad);
    struct store_msg_view v;
    void *pin;

    if (bad || off < 0) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "VIEW_MESSAGE_BY_ID needs offset");
        return;
    }
    if (store_get_by_offset(b->store, (uint64_t)off, &v, &pin) != 0) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "can not find message by the offset, %lld", (long long)off);
        return;
    }
    proto_reply_body_copy(rep, v.data, v.len);
    store_view_release(pin);
}

static void
query_message(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *topic = proto_ext_get(req, "topic");
    const char *key = proto_ext_get(req, "key");
    const char *uniq = proto_ext_get(req, "_UNIQUE_KEY_QUERY");
    int bad = 0;
    int64_t maxn = ext_i64(req, "maxNum", 32, &bad);
    int64_t begin = ext_i64(req, "beginTimestamp", 0, &bad);
    int64_t end = ext_i64(req, "endTimestamp", INT64_MAX, &bad);
    uint64_t offs[64];
    size_t n = 0;
    struct sbuf sb = SBUF_INIT;

    if (bad || !topic || !key || !*key) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "QUERY_MESSAGE needs topic, key, maxNum, beginTimestamp and "
                                "endTimestamp");
        return;
    }
    if (uniq && strcmp(uniq, "true") == 0)
        maxn = 32;
    if (maxn < 1)
        maxn = 1;
    if (maxn > 64)
        maxn = 64;
    proto_reply_ext_i64(rep, "indexLastUpdateTimestamp", spk_wall_ms());
    proto_reply_ext_i64(rep, "indexLastUpdatePhyoffset", (int64_t)store_dispatched(b->store));
    if (store_query_key(b->store, topic, key, (uint32_t)maxn, begin, end, offs, &n) != 0 ||
        n == 0) {
        rep->code = RS_QUERY_NOT_FOUND;
        proto_reply_remark(rep, "can not find message, maybe time range not correct");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct store_msg_view v;
        void *pin;
        if (store_get_by_offset(b->store, offs[i], &v, &pin) == 0) {
            sb_put(&sb, v.data, v.len);
            store_view_release(pin);
        }
    }
    if (sb.len == 0) {
        sb_free(&sb);
        rep->code = RS_QUERY_NOT_FOUND;
        proto_reply_remark(rep, "can not find message, maybe time range not correct");
        return;
    }
    body_from_sbuf(rep, &sb);
}

static int
ext_int_req(const struct proto_cmd *req, const char *k, int64_t dflt, int64_t *out)
{
    int bad = 0;
    *out = ext_i64(req, k, dflt, &bad);
    return bad ? -1 : 0;
}

static void
update_topic(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *topic = proto_ext_get(req, "topic");
    const char *ftype = proto_ext_get(req, "topicFilterType");
    const char *order = proto_ext_get(req, "order");
    struct topic_config tc;
    int64_t rq, wq, perm, sysflag;
    char why[200];
    int rc;

    if (!topic || ext_int_req(req, "readQueueNums", 16, &rq) ||
        ext_int_req(req, "writeQueueNums", 16, &wq) || ext_int_req(req, "perm", 6, &perm) ||
        ext_int_req(req, "topicSysFlag", 0, &sysflag)) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "UPDATE_AND_CREATE_TOPIC needs topic, readQueueNums, "
                                "writeQueueNums and perm as numbers");
        return;
    }
    if (topics_validate_create(b->topics, topic, why, sizeof(why)) != 0) {
        rep->code = RS_INVALID_PARAMETER;
        proto_reply_remark(rep, "topic '%.255s' cannot be created: %s", topic, why);
        return;
    }
    if (rq < 1 || rq > TOPIC_QUEUES_MAX || wq < 1 || wq > TOPIC_QUEUES_MAX || perm < 0 ||
        perm > 15) {
        rep->code = RS_INVALID_PARAMETER;
        proto_reply_remark(rep, "queue counts must be 1..%d and perm 0..15", TOPIC_QUEUES_MAX);
        return;
    }
    memset(&tc, 0, sizeof(tc));
    snprintf(tc.name, sizeof(tc.name), "%s", topic);
    tc.read_queues = (int)rq;
    tc.write_queues = (int)wq;
    tc.perm = (int)perm;
    tc.sysflag = (int)sysflag;
    tc.order = order && strcmp(order, "true") == 0;
    tc.filter_multi_tag = ftype && strcmp(ftype, "MULTI_TAG") == 0;
    rc = topics_put(b->topics, &tc);
    if (rc) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "saving topics.json failed: %s", spk_strerror(rc));
        return;
    }
    spk_log(SPK_LOG_INFO, "broker", "topic %s set: %d/%d queues, perm %d", tc.name,
            tc.read_queues, tc.write_queues, tc.perm);
    broker_request_register(b);
    rep->ext_present = 1;
}

struct stats_ctx {
    struct broker *b;
    struct sbuf *sb;
    int first;
};

static void
mq_key(struct sbuf *sb, const char *broker, const char *topic, int qid)
{
    sb_puts(sb, "{\"brokerName\":");
    sb_json_cstr(sb, broker);
    sb_printf(sb, ",\"queueId\":%d,\"topic\":", qid);
    sb_json_cstr(sb, topic);
    sb_putc(sb, '}');
}

static void
topic_stats(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *topic = proto_ext_get(req, "topic");
    struct topic_config tc;
    struct sbuf sb = SBUF_INIT;
    int n;

    if (!topic || topics_get(b->topics, topic, &tc) != 0) {
        rep->code = RS_TOPIC_NOT_EXIST;
        proto_reply_remark(rep, "topic[%.255s] not exist", topic ? topic : "");
        return;
    }
    n = tc.read_queues > tc.write_queues ? tc.read_queues : tc.write_queues;
    sb_puts(&sb, "{\"offsetTable\":{");
    for (int q = 0; q < n; q++) {
        uint64_t mn = 0, mx = 0;
        int64_t ts = 0;
        if (store_queue_bounds(b->store, topic, q, &mn, &mx) == 0 && mx > 0 &&
            store_msg_store_time(b->store, topic, q, mx - 1, &ts) != 0)
            ts = 0;
        if (q)
            sb_putc(&sb, ',');
        mq_key(&sb, b->cfg.brokerName, topic, q);
        sb_printf(&sb, ":{\"lastUpdateTimestamp\":%lld,\"maxOffset\":%llu,\"minOffset\":%llu}",
                  (long long)ts, (unsigned long long)mx, (unsigned long long)mn);
    }
    sb_puts(&sb, "},\"topicPutTps\":0.0}");
    body_from_sbuf(rep, &sb);
}

struct cs_ctx {
    struct broker *b;
    struct sbuf *sb;
    const char *topic;
    int n;
};

static void
consume_stats_entry(void *arg, const char *group, const char *topic, int32_t qid, int64_t off)
{
    struct cs_ctx *x = arg;
    uint64_t mn = 0, mx = 0;
    int64_t ts = 0;

    (void)group;
    if (x->topic && strcmp(x->topic, topic) != 0)
        return;
    store_queue_bounds(x->b->store, topic, qid, &mn, &mx);
    if (off < 0)
        off = 0;
    if (off > 0 && store_msg_store_time(x->b->store, topic, qid, (uint64_t)off - 1, &ts) != 0)
        ts = 0;
    if (x->n++)
        sb_putc(x->sb, ',');
    mq_key(x->sb, x->b->cfg.brokerName, topic, qid);
    sb_printf(x->sb,
              ":{\"brokerOffset\":%llu,\"consumerOffset\":%lld,\"lastTimestamp\":%lld,"
              "\"pullOffset\":%lld}",
              (unsigned long long)mx, (long long)off, (long long)ts, (long long)off);
}

static void
consume_stats(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *group = proto_ext_get(req, "consumerGroup");
    struct sbuf sb = SBUF_INIT;
    struct cs_ctx x = {b, &sb, proto_ext_get(req, "topic"), 0};

    if (!group || !*group) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "GET_CONSUME_STATS needs consumerGroup");
        return;
    }
    if (x.topic && !*x.topic)
        x.topic = NULL;
    sb_puts(&sb, "{\"consumeTps\":0.0,\"offsetTable\":{");
    /* Built into a separate buffer: the callbacks run under the table lock
     * and only read the store. */
    offsets_for_each_of_group(b->offsets, group, consume_stats_entry, &x);
    sb_puts(&sb, "}}");
    body_from_sbuf(rep, &sb);
}

static void
conn_list(struct sbuf *sb, const struct client_ref *cl, size_t n)
{
    sb_puts(sb, "\"connectionSet\":[");
    for (size_t i = 0; i < n; i++) {
        static const char *const langs[] = {"JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI",
                                            "ERLANG", "RUBY", "OTHER", "HTTP", "GO",
                                            "PHP", "OMS", "RUST", "NODE_JS"};
        int l = cl[i].language;
        if (i)
            sb_putc(sb, ',');
        sb_puts(sb, "{\"clientAddr\":");
        sb_json_cstr(sb, net_conn_peer(cl[i].conn));
        sb_puts(sb, ",\"clientId\":");
        sb_json_cstr(sb, cl[i].id);
        sb_printf(sb, ",\"language\":\"%s\",\"version\":%d}",
                  l >= 0 && l < 14 ? langs[l] : "OTHER", cl[i].version);
    }
    sb_putc(sb, ']');
}

static void
consumer_connections(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *group = proto_ext_get(req, "consumerGroup");
    struct cgroup *g = group ? cgroup_find(b, group) : NULL;
    struct sbuf sb = SBUF_INIT;

    if (!g || g->nclients == 0) {
        rep->code = RS_CONSUMER_NOT_ONLINE;
        proto_reply_remark(rep, "the consumer group[%.200s] not online", group ? group : "");
        return;
    }
    sb_putc(&sb, '{');
    conn_list(&sb, g->clients, g->nclients);
    sb_puts(&sb, ",\"consumeFromWhere\":");
    sb_json_cstr(&sb, g->cfw);
    sb_puts(&sb, ",\"consumeType\":");
    sb_json_cstr(&sb, g->consume_type);
    sb_printf(&sb, ",\"messageModel\":\"%s\",\"subscriptionTable\":{",
              g->broadcast ? "BROADCASTING" : "CLUSTERING");
    for (size_t i = 0; i < g->nsubs; i++) {
        const struct subscription *s = &g->subs[i];
        if (i)
            sb_putc(&sb, ',');
        sb_json_cstr(&sb, s->topic);
        sb_puts(&sb, ":{\"classFilterMode\":false,\"codeSet\":[");
        for (size_t k = 0; k < s->ntags; k++)
            sb_printf(&sb, "%s%lld", k ? "," : "", (long long)s->codes[k]);
        sb_puts(&sb, "],\"expressionType\":\"TAG\",\"subString\":");
        sb_json_cstr(&sb, s->expr);
        sb_printf(&sb, ",\"subVersion\":%lld,\"tagsSet\":[", (long long)s->version);
        for (size_t k = 0; k < s->ntags; k++) {
            if (k)
                sb_putc(&sb, ',');
            sb_json_cstr(&sb, s->tags[k]);
        }
        sb_puts(&sb, "],\"topic\":");
        sb_json_cstr(&sb, s->topic);
        sb_putc(&sb, '}');
    }
    sb_puts(&sb, "}}");
    body_from_sbuf(rep, &sb);
}

static void
producer_connections(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *group = proto_ext_get(req, "producerGroup");
    struct sbuf sb = SBUF_INIT;

    for (size_t i = 0; group && i < b->npgroups; i++) {
        if (strcmp(b->pgroups[i].name, group) == 0 && b->pgroups[i].nclients) {
            sb_putc(&sb, '{');
            conn_list(&sb, b->pgroups[i].clients, b->pgroups[i].nclients);
            sb_putc(&sb, '}');
            body_from_sbuf(rep, &sb);
            return;
        }
    }
    rep->code = RS_SYSTEM_ERROR;
    proto_reply_remark(rep, "the producer group[%.200s] not exist", group ? group : "");
}

struct who_ctx {
    struct sbuf *sb;
    int n;
};

static void
who_group(void *arg, const char *group)
{
    struct who_ctx *x = arg;

    if (x->n++)
        sb_putc(x->sb, ',');
    sb_json_cstr(x->sb, group);
}

static void
consume_by_who(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *topic = proto_ext_get(req, "topic");
    struct sbuf sb = SBUF_INIT;
    struct who_ctx x = {&sb, 0};

    if (!topic) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "QUERY_TOPIC_CONSUME_BY_WHO needs topic");
        return;
    }
    sb_puts(&sb, "{\"groupList\":[");
    offsets_groups_of_topic(b->offsets, topic, who_group, &x);
    /* online groups subscribed to it but without offsets yet */
    for (size_t i = 0; i < b->ncgroups; i++)
        if (cgroup_sub(&b->cgroups[i], topic)) {
            /* duplicates are harmless to Java's HashSet, but avoid them */
            char q[300];
            snprintf(q, sizeof(q), "\"%s\"", b->cgroups[i].name);
            if (!sb.p || !strstr(sb.p, q))
                who_group(&x, b->cgroups[i].name);
        }
    sb_puts(&sb, "]}");
    body_from_sbuf(rep, &sb);
}

/*
 * The event loop's share of GET_BROKER_RUNTIME_INFO: connection counters
 * and the iteration-time histogram (net/loop.h), since the broker
 * started. eventLoopIterationHistogram lists the non-empty buckets as
 * "high:count" pairs (high = the bucket's upper bound in microseconds),
 * so that a test can subtract two snapshots and compute percentiles over
 * any interval. Runs on the loop thread, which owns both.
 */
static void
loop_info(struct broker *b, struct sbuf *sb)
{
    struct net_stats ns;
    struct net_iter_hist ih;
    bool first = true;

    net_loop_stats(b->loop, &ns, 0);
    net_loop_iter_hist(b->loop, &ih);
    sb_printf(sb, ",\"connectionCount\":\"%u\"", ns.conns);
    sb_printf(sb, ",\"connectionsAccepted\":\"%llu\"", (unsigned long long)ns.accepted);
    sb_printf(sb, ",\"connectionsShed\":\"%llu\"", (unsigned long long)ns.shed);
    sb_printf(sb, ",\"connectionReadBufferBytes\":\"%llu\"", (unsigned long long)ns.rbuf_bytes);
    sb_printf(sb, ",\"connectionsClosedBadFrame\":\"%llu\"", (unsigned long long)ns.bad_frames);
    sb_printf(sb, ",\"connectionsClosedReadTimeout\":\"%llu\"",
              (unsigned long long)ns.read_timeouts);
    sb_printf(sb, ",\"connectionsClosedWriteStall\":\"%llu\"",
              (unsigned long long)ns.stall_closed);
    sb_printf(sb, ",\"connectionsClosedOutputLimit\":\"%llu\"",
              (unsigned long long)ns.limit_closed);
    sb_printf(sb, ",\"connectionsClosedIdle\":\"%llu\"", (unsigned long long)ns.idle_closed);
    sb_printf(sb, ",\"eventLoopIterations\":\"%llu\"", (unsigned long long)ih.n);
    sb_printf(sb, ",\"eventLoopIterationP50Micros\":\"%llu\"",
              (unsigned long long)net_iter_quantile(&ih, 0.50));
    sb_printf(sb, ",\"eventLoopIterationP99Micros\":\"%llu\"",
              (unsigned long long)net_iter_quantile(&ih, 0.99));
    sb_printf(sb, ",\"eventLoopIterationMaxMicros\":\"%llu\"", (unsigned long long)ih.max_us);
    sb_puts(sb, ",\"eventLoopIterationHistogram\":\"");
    for (int i = 0; i < NET_ITER_BUCKETS; i++) {
        if (ih.count[i] == 0)
            continue;
        sb_printf(sb, "%s%llu:%llu", first ? "" : " ", (unsigned long long)net_iter_bucket_high(i),
                  (unsigned long long)ih.count[i]);
        first = false;
    }
    sb_puts(sb, "\"");
}

static void
runtime_info(struct broker *b, struct proto_reply *rep)
{
    struct store_stats st;
    struct sbuf sb = SBUF_INIT;
    int64_t now = spk_wall_ms();
    uint64_t w = store_written(b->store), d = store_durable(b->store);
    int64_t earliest = 0;

    store_get_stats(b->store, &st);
    {
        struct store_msg_view v;
        void *pin;
        struct rec_view rv;
        const char *why;
        if (w > store_min_offset(b->store) &&
            store_get_by_offset(b->store, store_min_offset(b->store), &v, &pin) == 0) {
            if (rec_parse(v.data, v.len, REC_ANY_POS, REC_CHECK_NONE, &rv, &why) > 0)
                earliest = rv.store_ts;
            store_view_release(pin);
        }
    }
#define KV(k, fmt, ...) sb_printf(&sb, "%s\"" k "\":\"" fmt "\"", sb.len > 10 ? "," : "", __VA_ARGS__)
    sb_puts(&sb, "{\"table\":{");
    KV("brokerVersionDesc", "%s", "V5_3_3");
    KV("brokerVersion", "%d", 479);
    KV("brokerActive", "%s", "true");
    KV("bootTimestamp", "%lld", (long long)b->boot_ms);
    KV("runtime", "%lld ms", (long long)(now - b->boot_ms));
    KV("putTps", "%s", "0.00 0.00 0.00");
    KV("getTransferredTps", "%s", "0.00 0.00 0.00");
    KV("getFoundTps", "%s", "0.00 0.00 0.00");
    KV("getMissTps", "%s", "0.00 0.00 0.00");
    KV("getTotalTps", "%s", "0.00 0.00 0.00");
    KV("msgPutTotalYesterdayMorning", "%d", 0);
    KV("msgPutTotalTodayMorning", "%d", 0);
    KV("msgPutTotalTodayNow", "%llu", (unsigned long long)b->put_count);
    KV("msgGetTotalYesterdayMorning", "%d", 0);
    KV("msgGetTotalTodayMorning", "%d", 0);
    KV("msgGetTotalTodayNow", "%llu", (unsigned long long)st.get_msgs);
    KV("putMessageTimesTotal", "%llu", (unsigned long long)st.puts);
    KV("putMessageSizeTotal", "%llu", (unsigned long long)st.put_bytes);
    KV("putMessageAverageSize", "%.2f", st.puts ? (double)st.put_bytes / (double)st.puts : 0.0);
    KV("sendThreadPoolQueueSize", "%zu", b->nsends);
    KV("pullThreadPoolQueueSize", "%zu", b->npulls);
    KV("sendThreadPoolQueueHeadWaitTimeMills", "%d", 0);
    KV("pullThreadPoolQueueHeadWaitTimeMills", "%d", 0);
    KV("pageCacheLockTimeMills", "%d", 0);
    KV("earliestMessageTimeStamp", "%lld", (long long)earliest);
    KV("commitLogDiskRatio", "%.2f", st.disk_full ? 1.0 : 0.0);
    KV("commitLogMinOffset", "%llu", (unsigned long long)store_min_offset(b->store));
    KV("commitLogMaxOffset", "%llu", (unsigned long long)w);
    KV("dispatchBehindBytes", "%llu",
       (unsigned long long)(w - store_dispatched(b->store)));
    KV("remainHowManyDataToFlush", "%llu", (unsigned long long)(w - d));
    KV("timerReadBehind", "%d", 0);
    KV("timerOffsetBehind", "%d", 0);
    KV("timerCongestNum", "%d", 0);
    KV("timerEnqueueTps", "%s", "0.0");
    KV("timerDequeueTps", "%s", "0.0");
    KV("storeFailed", "%s", store_failed(b->store) ? "true" : "false");
    KV("corruptReads", "%llu", (unsigned long long)st.corrupt_reads);
    KV("parkedPulls", "%zu", b->npulls);
    KV("parkedSyncSends", "%zu", b->nsends);
    loop_info(b, &sb);
#undef KV
    sb_puts(&sb, "}}");
    body_from_sbuf(rep, &sb);
}

static void
broker_config(struct broker *b, struct proto_reply *rep)
{
    int n;
    char *buf;
    int64_t counter, ts;

    n = cfg_dump(b->tgt, 2, NULL, 0);
    buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || cfg_dump(b->tgt, 2, buf, (size_t)n + 1) < 0) {
        free(buf);
        rep->err = -ENOMEM;
        return;
    }
    proto_reply_body(rep, buf, (size_t)n);
    topics_data_version(b->topics, &counter, &ts);
    proto_reply_ext(rep, "version", "{\"counter\":%lld,\"stateVersion\":0,\"timestamp\":%lld}",
                    (long long)counter, (long long)ts);
}

/*
 * UPDATE_BROKER_CONFIG: a properties body; only CFG_RUNTIME keys change,
 * all or nothing (every line is checked before any is applied).
 */
static void
update_config(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    char *text, *save = NULL, *line;
    char err[CFG_ERR_MAX];
    struct broker_config scratch;
    struct cfg_target st;
    int pass;

    if (req->body_len == 0 || req->body_len > 65536) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "UPDATE_BROKER_CONFIG needs a key=value body");
        return;
    }
    /* Pass 0 sets every value on a scratch copy of the broker's settings
     * (defaults), so a bad value on any line refuses the whole update
     * before pass 1 changes anything. */
    memset(&scratch, 0, sizeof(scratch));
    st.defs = b->tgt[0].defs;
    st.n = b->tgt[0].n;
    st.obj = &scratch;
    if (cfg_set_defaults(&st) != 0) {
        cfg_free(&st);
        rep->err = -ENOMEM;
        return;
    }
    for (pass = 0; pass < 2; pass++) {
        text = strndup((const char *)req->body, req->body_len);
        if (!text) {
            cfg_free(&st);
            rep->err = -ENOMEM;
            return;
        }
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char *eq = strchr(line, '='), *k = line, *v;
            const struct cfg_def *d;
            while (*k == ' ' || *k == '\r')
                k++;
            if (!*k || *k == '#')
                continue;
            if (!eq) {
                rep->code = RS_SYSTEM_ERROR;
                proto_reply_remark(rep, "line '%.100s' has no '='", line);
                free(text);
                cfg_free(&st);
                return;
            }
            *eq = '\0';
            v = eq + 1;
            for (char *t = eq - 1; t >= k && (*t == ' '); t--)
                *t = '\0';
            v[strcspn(v, "\r")] = '\0';
            /* Store settings were copied into the running store: only the
             * broker's own runtime settings can change here. */
            d = cfg_find(b->tgt, 2, k);
            if (!d || !(d->flags & CFG_RUNTIME) || !cfg_find(&b->tgt[0], 1, k)) {
                rep->code = RS_SYSTEM_ERROR;
                proto_reply_remark(rep, "%s: %s", k,
                                   d ? "cannot change while running (restart with the new value)"
                                     : "unknown setting");
                free(text);
                cfg_free(&st);
                return;
            }
            if (cfg_set(pass == 0 ? &st : &b->tgt[0], 1, k, v, err, sizeof(err)) != 0) {
                /* pass 1 cannot fail on a value pass 0 accepted (short of
                 * memory); either way nothing after this line is applied */
                rep->code = RS_SYSTEM_ERROR;
                proto_reply_remark(rep, "%s", err);
                free(text);
                cfg_free(&st);
                return;
            }
            if (pass == 1)
                spk_log(SPK_LOG_INFO, "broker", "config %s set to %s", k, v);
        }
        free(text);
    }
    cfg_free(&st);
    rep->ext_present = 1;
}

/* Subscription groups --------------------------------------------------------------------- */

/* UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: the body is a SubscriptionGroupConfig. */
static void
update_group(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    struct group_config gc;
    char why[300] = "";
    int rc;

    if (req->body_len == 0 || req->body_len > 65536) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "UPDATE_AND_CREATE_SUBSCRIPTIONGROUP needs a "
                                "SubscriptionGroupConfig JSON body");
        return;
    }
    rc = groups_put_json(b->groups, (const char *)req->body, req->body_len, &gc, why, sizeof(why));
    if (rc == SPK_EFORMAT) {
        rep->code = RS_INVALID_PARAMETER;
        proto_reply_remark(rep, "%s", why);
        return;
    }
    if (rc) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "%s", why[0] ? why : spk_strerror(rc));
        return;
    }
    spk_log(SPK_LOG_INFO, "broker",
            "subscription group %s set: consumeEnable %d, retryQueueNums %d, retryMaxTimes %d",
            gc.name, gc.consume_enable, (int)gc.retry_queues, (int)gc.retry_max);
    rep->ext_present = 1;
}

/* DELETE_SUBSCRIPTIONGROUP: groupName, cleanOffset (drops the group's offsets too). */
static void
delete_group(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *name = proto_ext_get(req, "groupName");
    const char *clean = proto_ext_get(req, "cleanOffset");
    int rc;

    if (!name || !*name) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "DELETE_SUBSCRIPTIONGROUP needs groupName");
        return;
    }
    rc = groups_delete(b->groups, name);
    if (rc && rc != -ENOENT) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "writing subscriptionGroup.json failed: %s", spk_strerror(rc));
        return;
    }
    if (clean && strcmp(clean, "true") == 0)
        offsets_delete_group(b->offsets, name);
    spk_log(SPK_LOG_INFO, "broker", "subscription group %.255s deleted%s%s", name,
            rc == -ENOENT ? " (it was not configured)" : "",
            clean && strcmp(clean, "true") == 0 ? ", offsets dropped" : "");
    rep->ext_present = 1;
}

/* Reset offsets by time ------------------------------------------------------------------- */

/* 1 when this broker knows <group>: online, configured, or holding offsets of <topic>. */
static int
group_known(struct broker *b, const char *group, const char *topic, int nqueues)
{
    struct cgroup *g = cgroup_find(b, group);
    struct group_config gc;
    int64_t off;

    if ((g && g->nclients > 0) || groups_get(b->groups, group, &gc) == 0)
        return 1;
    for (int q = 0; q < nqueues; q++)
        if (offsets_query(b->offsets, group, topic, q, &off) == 0)
            return 1;
    return 0;
}

/*
 * INVOKE_BROKER_TO_RESET_OFFSET: extFields topic, group, timestamp (ms;
 * -1 = the end of each queue), isForce (false: only move offsets back),
 * and optionally queueId with offset (one queue, to an explicit offset).
 * Commits the new offsets, then sends RESET_CONSUMER_CLIENT_OFFSET to
 * every live consumer of the group (INV-2). Replies with ResetOffsetBody,
 * plus extField notifiedConsumers (how many were told).
 */
static void
reset_offset(struct broker *b, const struct proto_cmd *req, struct proto_reply *rep)
{
    const char *topic = proto_ext_get(req, "topic");
    const char *group = proto_ext_get(req, "group");
    const char *force_s = proto_ext_get(req, "isForce");
    int bad = 0, force = !force_s || strcmp(force_s, "false") != 0, n, first, last;
    int64_t ts = ext_i64(req, "timestamp", INT64_MIN, &bad);
    int64_t qid = ext_i64(req, "queueId", -1, &bad);
    int64_t want = ext_i64(req, "offset", -1, &bad);
    struct topic_config tc;
    struct cgroup *g;
    struct sbuf sb = SBUF_INIT;
    size_t notified = 0, len;
    char *body;

    if (bad || !topic || !*topic || !group || !*group || ts == INT64_MIN || ts < -1) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "INVOKE_BROKER_TO_RESET_OFFSET needs topic, group and "
                                "timestamp (ms, or -1 for the end of each queue)");
        return;
    }
    if (topics_get(b->topics, topic, &tc) != 0) {
        rep->code = RS_TOPIC_NOT_EXIST;
        proto_reply_remark(rep, "[reset-offset] topic %.255s does not exist on broker %s", topic,
                           b->cfg.brokerName);
        return;
    }
    n = tc.read_queues;
    if (qid >= n || qid < -1) {
        rep->code = RS_INVALID_PARAMETER;
        proto_reply_remark(rep, "queueId %lld is not a queue of %.255s (it has %d read queues)",
                           (long long)qid, topic, n);
        return;
    }
    if (!group_known(b, group, topic, n)) {
        rep->code = RS_SUBSCRIPTION_GROUP_NOT_EXIST;
        proto_reply_remark(rep,
                           "group %.255s is unknown on broker %s: no online consumer, no "
                           "subscription group and no committed offset of %.255s",
                           group, b->cfg.brokerName, topic);
        return;
    }
    first = qid >= 0 ? (int)qid : 0;
    last = qid >= 0 ? (int)qid : n - 1;
    if (qid >= 0 && want >= 0) {
        uint64_t mn = 0, mx = 0;
        store_queue_bounds(b->store, topic, (int32_t)qid, &mn, &mx);
        if ((uint64_t)want < mn || (uint64_t)want > mx) {
            rep->code = RS_SYSTEM_ERROR;
            proto_reply_remark(rep, "offset %lld is outside queue %lld of %.255s [%llu, %llu]",
                               (long long)want, (long long)qid, topic, (unsigned long long)mn,
                               (unsigned long long)mx);
            return;
        }
    }
    sb_puts(&sb, "{\"offsetTable\":{");
    for (int q = first; q <= last; q++) {
        uint64_t mn = 0, mx = 0, off = 0;
        int64_t cur;
        int have_q = store_queue_bounds(b->store, topic, q, &mn, &mx) == 0;

        if (qid >= 0 && want >= 0)
            off = (uint64_t)want;
        else if (ts == -1)
            off = mx;
        else if (!have_q || store_offset_by_time(b->store, topic, q, ts, &off) != 0)
            off = mx;
        /* Without force only a move back is made (Java Broker2Client). */
        if (!force && offsets_query(b->offsets, group, topic, q, &cur) == 0 && cur >= 0 &&
            off >= (uint64_t)cur)
            off = (uint64_t)cur;
        if (offsets_commit(b->offsets, group, topic, q, (int64_t)off) != 0) {
            sb_free(&sb);
            rep->code = RS_SYSTEM_ERROR;
            proto_reply_remark(rep, "cannot commit offset of %.255s@%.255s queue %d", topic, group,
                               q);
            return;
        }
        if (q > first)
            sb_putc(&sb, ',');
        mq_key(&sb, b->cfg.brokerName, topic, q);
        sb_printf(&sb, ":%llu", (unsigned long long)off);
    }
    sb_puts(&sb, "}}");
    if (sb.err) {
        sb_free(&sb);
        rep->err = -ENOMEM;
        return;
    }
    g = cgroup_find(b, group);
    for (size_t i = 0; g && i < g->nclients; i++) {
        struct proto_reply r;
        uint8_t *buf;
        size_t blen;

        if (net_conn_is_closed(g->clients[i].conn))
            continue;
        proto_reply_init(&r, RC_RESET_CONSUMER_CLIENT_OFFSET);
        proto_reply_ext(&r, "topic", "%s", topic);
        proto_reply_ext(&r, "group", "%s", group);
        proto_reply_ext_i64(&r, "timestamp", ts);
        proto_reply_ext(&r, "isForce", "%s", force ? "true" : "false");
        proto_reply_body_copy(&r, sb.p, sb.len);
        if (proto_request_encode(&r, b->next_opaque++, 1, &buf, &blen) == 0 &&
            net_conn_send(g->clients[i].conn, buf, blen) == 0)
            notified++;
        proto_reply_free(&r);
    }
    spk_log(SPK_LOG_INFO, "broker",
            "[reset-offset] %s@%s reset to %lld%s (queues %d..%d), %zu consumer(s) notified", topic,
            group, (long long)ts, force ? "" : " (no move forward)", first, last, notified);
    proto_reply_ext(rep, "notifiedConsumers", "%zu", notified);
    body = sb_detach(&sb, &len);
    if (body)
        proto_reply_body(rep, body, len);
    else
        rep->err = -ENOMEM;
}

void
proc_admin(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    struct proto_reply rep;

    proto_reply_init(&rep, RS_SUCCESS);
    switch (req->code) {
    case RC_VIEW_MESSAGE_BY_ID:
        view_message(b, req, &rep);
        break;
    case RC_QUERY_MESSAGE:
        query_message(b, req, &rep);
        break;
    case RC_UPDATE_AND_CREATE_TOPIC:
        update_topic(b, req, &rep);
        break;
    case RC_GET_ALL_TOPIC_CONFIG: {
        size_t len;
        char *p = topics_serialize(b->topics, &len);
        if (p)
            proto_reply_body(&rep, p, len);
        else
            rep.err = -ENOMEM;
        break;
    }
    case RC_GET_TOPIC_CONFIG: {
        const char *t = proto_ext_get(req, "topic");
        struct topic_config tc;
        size_t len;
        char *p;
        if (!t || topics_get(b->topics, t, &tc) != 0) {
            rep.code = RS_TOPIC_NOT_EXIST;
            proto_reply_remark(&rep, "No topic in this broker. topic: %.255s", t ? t : "");
            break;
        }
        p = topic_config_json(&tc, &len);
        if (p)
            proto_reply_body(&rep, p, len);
        else
            rep.err = -ENOMEM;
        break;
    }
    case RC_DELETE_TOPIC_IN_BROKER: {
        const char *t = proto_ext_get(req, "topic");
        if (!t || topics_send_forbidden(t)) {
            rep.code = RS_INVALID_PARAMETER;
            proto_reply_remark(&rep, "topic %.255s cannot be deleted", t ? t : "");
            break;
        }
        topics_delete(b->topics, t);
        offsets_delete_topic(b->offsets, t);
        broker_request_register(b);
        rep.ext_present = 1;
        break;
    }
    case RC_GET_TOPIC_STATS_INFO:
        topic_stats(b, req, &rep);
        break;
    case RC_GET_CONSUME_STATS:
        consume_stats(b, req, &rep);
        break;
    case RC_GET_CONSUMER_CONNECTION_LIST:
        consumer_connections(b, req, &rep);
        break;
    case RC_GET_PRODUCER_CONNECTION_LIST:
        producer_connections(b, req, &rep);
        break;
    case RC_QUERY_TOPIC_CONSUME_BY_WHO:
        consume_by_who(b, req, &rep);
        break;
    case RC_GET_BROKER_RUNTIME_INFO:
        runtime_info(b, &rep);
        break;
    case RC_GET_BROKER_CONFIG:
        broker_config(b, &rep);
        break;
    case RC_UPDATE_BROKER_CONFIG:
        update_config(b, req, &rep);
        break;
    case RC_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP:
        update_group(b, req, &rep);
        break;
    case RC_GET_ALL_SUBSCRIPTIONGROUP_CONFIG: {
        size_t len;
        char *p = groups_serialize(b->groups, &len);
        if (p)
            proto_reply_body(&rep, p, len);
        else
            rep.err = -ENOMEM;
        break;
    }
    case RC_DELETE_SUBSCRIPTIONGROUP:
        delete_group(b, req, &rep);
        break;
    case RC_INVOKE_BROKER_TO_RESET_OFFSET:
        reset_offset(b, req, &rep);
        break;
    default:
        rep.code = RS_NOT_SUPPORTED;
        proto_reply_remark(&rep, " request type %d not supported", req->code);
        break;
    }
    broker_reply(b, c, req, &rep);
}
