/*
 * clients.c - HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP:
 * the producer and consumer registries and NOTIFY_CONSUMER_IDS_CHANGED.
 *
 * Invariants:
 *   INV-1  Every client_ref holds a reference on its connection; removing
 *          the ref drops it. A client id appears at most once per group.
 *   INV-2  A consumer group's members are told (oneway 40, never awaited)
 *          whenever a member joins or leaves, so they rebalance at once
 *          instead of at their next periodic check.
 *   INV-3  Groups with no members and no subscriptions are removed; a
 *          group's subscriptions are replaced by each heartbeat of a
 *          member (RocketMQ keeps the latest).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "broker/internal.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/jhash.h"
#include "common/log.h"
#include "common/sbuf.h"

#define MAX_TAGS 64
#define MAX_SUBS 1024
#define MAX_GROUP_CLIENTS 10000

void
sub_free(struct subscription *s)
{
    for (size_t i = 0; i < s->ntags; i++)
        free(s->tags[i]);
    free(s->tags);
    free(s->codes);
    free(s->expr);
    memset(s, 0, sizeof(*s));
}

/* "TagA || TagB" -> tags and their Java hash codes; "*" or "" -> all. */
int
sub_parse(const char *topic, const char *expr, int64_t version, struct subscription *out)
{
    const char *p = expr;

    memset(out, 0, sizeof(*out));
    if (strlen(topic) >= sizeof(out->topic) || strlen(expr) > 4096)
        return SPK_EFORMAT;
    snprintf(out->topic, sizeof(out->topic), "%s", topic);
    out->version = version;
    out->expr = strdup(expr);
    if (!out->expr)
        return -ENOMEM;
    while (*p == ' ')
        p++;
    if (*p == '\0' || strcmp(p, "*") == 0)
        return 0;
    out->tags = calloc(MAX_TAGS, sizeof(char *));
    out->codes = calloc(MAX_TAGS, sizeof(int64_t));
    if (!out->tags || !out->codes)
        goto nomem;
    while (*p) {
        const char *end = strstr(p, "||");
        const char *e = end ? end : p + strlen(p);
        const char *s = p;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            if (out->ntags == MAX_TAGS) {
                sub_free(out);
                return SPK_ETOOBIG;
            }
            out->tags[out->ntags] = strndup(s, (size_t)(e - s));
            if (!out->tags[out->ntags])
                goto nomem;
            out->codes[out->ntags] = spk_java_hash(s, (size_t)(e - s));
            out->ntags++;
        }
        if (!end)
            break;
        p = end + 2;
    }
    return 0;
nomem:
    sub_free(out);
    return -ENOMEM;
}

struct cgroup *
cgroup_find(struct broker *b, const char *name)
{
    for (size_t i = 0; i < b->ncgroups; i++)
        if (strcmp(b->cgroups[i].name, name) == 0)
            return &b->cgroups[i];
    return NULL;
}

const struct subscription *
cgroup_sub(const struct cgroup *g, const char *topic)
{
    for (size_t i = 0; i < g->nsubs; i++)
        if (strcmp(g->subs[i].topic, topic) == 0)
            return &g->subs[i];
    return NULL;
}

static void
notify_group(struct broker *b, struct cgroup *g)
{
    for (size_t i = 0; i < g->nclients; i++) {
        struct proto_reply r;
        uint8_t *buf;
        size_t len;

        if (net_conn_is_closed(g->clients[i].conn))
            continue;
        proto_reply_init(&r, RC_NOTIFY_CONSUMER_IDS_CHANGED);
        proto_reply_ext(&r, "consumerGroup", "%s", g->name);
        if (proto_request_encode(&r, b->next_opaque++, 1, &buf, &len) == 0)
            net_conn_send(g->clients[i].conn, buf, len);
        proto_reply_free(&r);
    }
}

/* Adds or refreshes a client in a list; returns 1 if it is new. */
static int
client_touch(struct client_ref **list, size_t *n, const char *id, struct net_conn *c,
             int64_t now, const struct proto_cmd *req)
{
    struct client_ref *cr;

    for (size_t i = 0; i < *n; i++) {
        cr = &(*list)[i];
        if (strcmp(cr->id, id) == 0) {
            cr->last_hb = now;
            if (cr->conn != c) {
                net_conn_put(cr->conn);
                net_conn_hold(c);
                cr->conn = c;
            }
            return 0;
        }
    }
    if (*n >= MAX_GROUP_CLIENTS)
        return -1;
    cr = realloc(*list, (*n + 1) * sizeof(**list));
    if (!cr)
        return -1;
    *list = cr;
    cr = &(*list)[(*n)++];
    memset(cr, 0, sizeof(*cr));
    snprintf(cr->id, sizeof(cr->id), "%s", id);
    net_conn_hold(c);
    cr->conn = c;
    cr->last_hb = now;
    cr->language = req->language;
    cr->version = req->version;
    return 1;
}

static void
client_remove_at(struct client_ref *list, size_t *n, size_t i)
{
    net_conn_put(list[i].conn);
    list[i] = list[*n - 1];
    (*n)--;
}

static struct cgroup *
cgroup_get(struct broker *b, const char *name)
{
    struct cgroup *g = cgroup_find(b, name), *ng;

    if (g)
        return g;
    ng = realloc(b->cgroups, (b->ncgroups + 1) * sizeof(*ng));
    if (!ng)
        return NULL;
    b->cgroups = ng;
    g = &b->cgroups[b->ncgroups++];
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    return g;
}

static struct pgroup *
pgroup_get(struct broker *b, const char *name)
{
    struct pgroup *ng;

    for (size_t i = 0; i < b->npgroups; i++)
        if (strcmp(b->pgroups[i].name, name) == 0)
            return &b->pgroups[i];
    ng = realloc(b->pgroups, (b->npgroups + 1) * sizeof(*ng));
    if (!ng)
        return NULL;
    b->pgroups = ng;
    memset(&b->pgroups[b->npgroups], 0, sizeof(*ng));
    snprintf(b->pgroups[b->npgroups].name, sizeof(ng->name), "%s", name);
    return &b->pgroups[b->npgroups++];
}

static void
cgroup_free_subs(struct cgroup *g)
{
    for (size_t i = 0; i < g->nsubs; i++)
        sub_free(&g->subs[i]);
    free(g->subs);
    g->subs = NULL;
    g->nsubs = 0;
}

/* Removes empty groups (INV-3). */
static void
compact_groups(struct broker *b)
{
    for (size_t i = 0; i < b->ncgroups;) {
        if (b->cgroups[i].nclients == 0) {
            cgroup_free_subs(&b->cgroups[i]);
            free(b->cgroups[i].clients);
            b->cgroups[i] = b->cgroups[--b->ncgroups];
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < b->npgroups;) {
        if (b->pgroups[i].nclients == 0) {
            free(b->pgroups[i].clients);
            b->pgroups[i] = b->pgroups[--b->npgroups];
        } else {
            i++;
        }
    }
}

static const char *
jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int
heartbeat_consumer(struct broker *b, struct net_conn *c, const struct proto_cmd *req,
                   const char *cid, const cJSON *cd, int64_t now, struct proto_reply *rep)
{
    const char *name = jstr(cd, "groupName");
    const char *model = jstr(cd, "messageModel");
    const char *cfw = jstr(cd, "consumeFromWhere");
    const char *ctype = jstr(cd, "consumeType");
    const cJSON *subs = cJSON_GetObjectItemCaseSensitive(cd, "subscriptionDataSet"), *s;
    struct subscription *nsubs = NULL;
    size_t nn = 0;
    struct cgroup *g;
    int changed = 0, isnew;

    if (!name || !*name || strlen(name) > 200) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "heartbeat consumer data without a valid groupName");
        return -1;
    }
    if (cJSON_IsArray(subs)) {
        int cnt = cJSON_GetArraySize(subs);
        if (cnt > MAX_SUBS)
            cnt = MAX_SUBS;
        nsubs = calloc((size_t)cnt + 1, sizeof(*nsubs));
        if (!nsubs)
            return -1;
        cJSON_ArrayForEach(s, subs)
        {
            const char *topic = jstr(s, "topic");
            const char *expr = jstr(s, "subString");
            const char *et = jstr(s, "expressionType");
            const cJSON *ver = cJSON_GetObjectItemCaseSensitive(s, "subVersion");
            if (nn == (size_t)cnt)
                break;
            if (!topic || strlen(topic) > 255)
                continue;
            if (et && strcmp(et, "TAG") != 0)
                spk_log(SPK_LOG_WARN, "broker",
                        "group %s subscribes %s with %s filters, which are not supported; "
                        "treated as '*'",
                        name, topic, et);
            if (sub_parse(topic, (et && strcmp(et, "TAG") != 0) ? "*" : (expr ? expr : "*"),
                          cJSON_IsNumber(ver) ? (int64_t)ver->valuedouble : 0, &nsubs[nn]) == 0)
                nn++;
        }
    }
    g = cgroup_get(b, name);
    if (!g) {
        for (size_t i = 0; i < nn; i++)
            sub_free(&nsubs[i]);
        free(nsubs);
        return -1;
    }
    g->broadcast = model && strcmp(model, "BROADCASTING") == 0;
    snprintf(g->cfw, sizeof(g->cfw), "%s", cfw ? cfw : "");
    snprintf(g->consume_type, sizeof(g->consume_type), "%s", ctype ? ctype : "");
    /* New subscriptions (a new topic or a newer version) count as a change. */
    for (size_t i = 0; i < nn; i++) {
        const struct subscription *old = cgroup_sub(g, nsubs[i].topic);
        if (!old || old->version < nsubs[i].version)
            changed = 1;
    }
    if (nn > 0 || g->nsubs == 0) {
        cgroup_free_subs(g);
        g->subs = nsubs;
        g->nsubs = nn;
    } else {
        free(nsubs);
    }
    isnew = client_touch(&g->clients, &g->nclients, cid, c, now, req);
    if (isnew < 0) {
        rep->code = RS_SYSTEM_ERROR;
        proto_reply_remark(rep, "too many clients in group %s", name);
        return -1;
    }
    if (!g->broadcast) {
        char retry[300];
        struct topic_config tc;
        int created = 0;
        snprintf(retry, sizeof(retry), "%s%s", RETRY_PREFIX, name);
        if (topics_ensure(b->topics, retry, 1, PERM_READ | PERM_WRITE, 0, &tc, &created) == 0 &&
            created) {
            spk_log(SPK_LOG_INFO, "broker", "retry topic %s created for group %s", retry, name);
            broker_request_register(b);
        }
    }
    if (isnew) {
        spk_log(SPK_LOG_INFO, "broker", "consumer %s joined group %s (%s)", cid, name,
                net_conn_peer(c));
        changed = 1;
    }
    if (changed)
        notify_group(b, g);
    return 0;
}

void
proc_heartbeat(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    struct proto_reply rep;
    cJSON *j = NULL, *e;
    const char *cid;
    int64_t now = net_loop_now(b->loop);

    proto_reply_init(&rep, RS_SUCCESS);
    if (req->body_len == 0 || req->body_len > (4u << 20) ||
        !(j = fjson_parse((const char *)req->body, req->body_len)) || !cJSON_IsObject(j)) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "HEART_BEAT body is not HeartbeatData JSON");
        goto out;
    }
    cid = jstr(j, "clientID");
    if (!cid || !*cid || strlen(cid) > 250) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "HEART_BEAT without a clientID");
        goto out;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "producerDataSet"))
    {
        const char *g = jstr(e, "groupName");
        struct pgroup *pg;
        if (!g || !*g || strlen(g) > 200)
            continue;
        pg = pgroup_get(b, g);
        if (pg)
            client_touch(&pg->clients, &pg->nclients, cid, c, now, req);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "consumerDataSet"))
    {
        if (heartbeat_consumer(b, c, req, cid, e, now, &rep))
            goto out;
    }
out:
    cJSON_Delete(j);
    broker_reply(b, c, req, &rep);
}

/* Removes <cid> (any conn when cid != NULL, else every client on <c>). */
static void
remove_clients(struct broker *b, const char *cid, struct net_conn *c, const char *pgroup,
               const char *cgroup_name, int64_t older_than)
{
    for (size_t i = 0; i < b->ncgroups; i++) {
        struct cgroup *g = &b->cgroups[i];
        int removed = 0;
        if (cgroup_name && strcmp(cgroup_name, g->name) != 0)
            continue;
        for (size_t k = 0; k < g->nclients;) {
            struct client_ref *cr = &g->clients[k];
            int match = cid ? strcmp(cr->id, cid) == 0
                            : (c ? cr->conn == c : cr->last_hb < older_than);
            if (match) {
                spk_log(SPK_LOG_INFO, "broker", "consumer %s left group %s", cr->id, g->name);
                client_remove_at(g->clients, &g->nclients, k);
                removed = 1;
            } else {
                k++;
            }
        }
        if (removed)
            notify_group(b, g);
    }
    for (size_t i = 0; i < b->npgroups; i++) {
        struct pgroup *g = &b->pgroups[i];
        if (pgroup && strcmp(pgroup, g->name) != 0)
            continue;
        for (size_t k = 0; k < g->nclients;) {
            struct client_ref *cr = &g->clients[k];
            int match = cid ? strcmp(cr->id, cid) == 0
                            : (c ? cr->conn == c : cr->last_hb < older_than);
            if (match)
                client_remove_at(g->clients, &g->nclients, k);
            else
                k++;
        }
    }
    compact_groups(b);
}

void
proc_unregister_client(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    struct proto_reply rep;
    const char *cid = proto_ext_get(req, "clientID");
    const char *pg = proto_ext_get(req, "producerGroup");
    const char *cg = proto_ext_get(req, "consumerGroup");

    proto_reply_init(&rep, RS_SUCCESS);
    if (!cid || !*cid) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "UNREGISTER_CLIENT needs clientID");
    } else {
        if (pg && *pg)
            remove_clients(b, cid, NULL, pg, "\x01", 0); /* producers only */
        if (cg && *cg) {
            remove_clients(b, cid, NULL, "\x01", cg, 0); /* consumers only */
            locks_release_client(b, cg, cid);            /* why: locks.c */
        }
        rep.ext_present = 1;
    }
    broker_reply(b, c, req, &rep);
}

void
proc_consumer_list(struct broker *b, struct net_conn *c, const struct proto_cmd *req)
{
    struct proto_reply rep;
    const char *name = proto_ext_get(req, "consumerGroup");
    struct cgroup *g = name ? cgroup_find(b, name) : NULL;
    struct sbuf sb = SBUF_INIT;
    char *body;
    size_t len;

    proto_reply_init(&rep, RS_SUCCESS);
    if (!g || g->nclients == 0) {
        rep.code = RS_SYSTEM_ERROR;
        proto_reply_remark(&rep, "no consumer for this group, %.200s", name ? name : "");
        broker_reply(b, c, req, &rep);
        return;
    }
    sb_puts(&sb, "{\"consumerIdList\":[");
    for (size_t i = 0; i < g->nclients; i++) {
        if (i)
            sb_putc(&sb, ',');
        sb_json_cstr(&sb, g->clients[i].id);
    }
    sb_puts(&sb, "]}");
    body = sb_detach(&sb, &len);
    if (body)
        proto_reply_body(&rep, body, len);
    else
        rep.err = -ENOMEM;
    broker_reply(b, c, req, &rep);
}

void
clients_conn_closed(struct broker *b, struct net_conn *c)
{
    remove_clients(b, NULL, c, NULL, NULL, 0);
}

void
clients_expire(struct broker *b)
{
    int64_t now = net_loop_now(b->loop);

    /* c == NULL, cid == NULL: match by age */
    remove_clients(b, NULL, NULL, NULL, NULL, now - b->cfg.channelExpiredTimeout);
}

void
clients_free(struct broker *b)
{
    for (size_t i = 0; i < b->ncgroups; i++) {
        struct cgroup *g = &b->cgroups[i];
        for (size_t k = 0; k < g->nclients; k++)
            net_conn_put(g->clients[k].conn);
        free(g->clients);
        cgroup_free_subs(g);
    }
    free(b->cgroups);
    b->cgroups = NULL;
    b->ncgroups = 0;
    for (size_t i = 0; i < b->npgroups; i++) {
        for (size_t k = 0; k < b->pgroups[i].nclients; k++)
            net_conn_put(b->pgroups[i].clients[k].conn);
        free(b->pgroups[i].clients);
    }
    free(b->pgroups);
    b->pgroups = NULL;
    b->npgroups = 0;
}
