/*
 * instance.c - the client instance: name servers, routes, connections and
 * the scheduler thread (see internal.h for the invariants).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client/internal.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/log.h"

#define CONNECT_TIMEOUT_MS 3000
#define NS_TIMEOUT_MS 3000
#define HB_TIMEOUT_MS 3000
#define TICK_MS 100

struct conn_slot {
    char addr[64];
    struct cl_conn *c;
};

struct cl_instance {
    char client_id[192];
    char (*ns)[64];
    size_t nns;
    size_t ns_next;
    struct cl_hooks hooks;
    int poll_ns_interval;
    int heartbeat_interval;

    pthread_mutex_t lock; /* everything below */
    struct conn_slot *conns;
    size_t nconns;
    struct cl_conn **grave; /* dead, replaced, freed once unheld */
    size_t ngrave, capgrave;
    struct cl_route **routes;
    size_t nroutes;

    pthread_mutex_t connect_lock; /* one connect at a time per instance */
    pthread_t sched;
    int started;
    int stopping;
    int kicked;
    int hb_soon; /* a route was added: heartbeat its brokers now */
    pthread_cond_t cond;
};

/* Connection reference counts live beside the table, keyed by pointer:
 * conn.c knows nothing of holders. */
struct held {
    struct cl_conn *c;
    int refs;
};
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static struct held *held_tab;
static size_t nheld, capheld;

static void
hold(struct cl_conn *c)
{
    size_t i;

    pthread_mutex_lock(&held_lock);
    for (i = 0; i < nheld; i++) {
        if (held_tab[i].c == c) {
            held_tab[i].refs++;
            pthread_mutex_unlock(&held_lock);
            return;
        }
    }
    if (nheld == capheld) {
        size_t nc = capheld ? capheld * 2 : 16;
        struct held *nt = realloc(held_tab, nc * sizeof(*nt));

        if (!nt)
            abort(); /* a few bytes; nothing sane to do without them */
        held_tab = nt;
        capheld = nc;
    }
    held_tab[nheld].c = c;
    held_tab[nheld].refs = 1;
    nheld++;
    pthread_mutex_unlock(&held_lock);
}

static void
unhold(struct cl_conn *c)
{
    size_t i;

    pthread_mutex_lock(&held_lock);
    for (i = 0; i < nheld; i++) {
        if (held_tab[i].c == c) {
            if (--held_tab[i].refs == 0)
                held_tab[i] = held_tab[--nheld];
            break;
        }
    }
    if (nheld == 0) {
        free(held_tab);
        held_tab = NULL;
        capheld = 0;
    }
    pthread_mutex_unlock(&held_lock);
}

static int
is_held(struct cl_conn *c)
{
    size_t i;
    int r = 0;

    pthread_mutex_lock(&held_lock);
    for (i = 0; i < nheld && !r; i++)
        r = held_tab[i].c == c;
    pthread_mutex_unlock(&held_lock);
    return r;
}

const char *
cl_instance_client_id(const struct cl_instance *in)
{
    return in->client_id;
}

int
cl_instance_create(const struct cl_opts *o, const struct cl_hooks *h, struct cl_instance **out)
{
    struct cl_instance *in;
    const char *p;

    if (!o->namesrv || !*o->namesrv)
        return SPK_ECONFIG;
    in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    for (p = o->namesrv; *p;) {
        const char *e = strchr(p, ';');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char(*nn)[64];

        while (l && (*p == ' ')) {
            p++;
            l--;
        }
        if (l > 0 && l < 64) {
            nn = realloc(in->ns, (in->nns + 1) * sizeof(*nn));
            if (!nn) {
                free(in->ns);
                free(in);
                return -ENOMEM;
            }
            in->ns = nn;
            memcpy(in->ns[in->nns], p, l);
            in->ns[in->nns][l] = 0;
            in->nns++;
        } else if (l >= 64) {
            free(in->ns);
            free(in);
            return SPK_ECONFIG;
        }
        p += l;
        if (*p == ';')
            p++;
    }
    if (in->nns == 0) {
        free(in);
        return SPK_ECONFIG;
    }
    snprintf(in->client_id, sizeof(in->client_id), "%s@%s",
             o->client_ip && *o->client_ip ? o->client_ip : "127.0.0.1",
             o->instance_name && *o->instance_name ? o->instance_name : "DEFAULT");
    in->hooks = *h;
    in->poll_ns_interval = o->poll_ns_interval > 0 ? o->poll_ns_interval : 30000;
    in->heartbeat_interval = o->heartbeat_interval > 0 ? o->heartbeat_interval : 30000;
    in->ns_next = (size_t)getpid() % in->nns;
    pthread_mutex_init(&in->lock, NULL);
    pthread_mutex_init(&in->connect_lock, NULL);
    pthread_cond_init(&in->cond, NULL);
    *out = in;
    return 0;
}

/* ----- connections ------------------------------------------------------ */
int
cl_conn_get(struct cl_instance *in, const char *addr, struct cl_conn **out)
{
    struct cl_conn *c = NULL;
    size_t i;
    int rc;

    pthread_mutex_lock(&in->lock);
    for (i = 0; i < in->nconns; i++) {
        if (strcmp(in->conns[i].addr, addr) == 0 && !cl_conn_dead(in->conns[i].c)) {
            c = in->conns[i].c;
            hold(c);
            break;
        }
    }
    pthread_mutex_unlock(&in->lock);
    if (c) {
        *out = c;
        return 0;
    }
    if (in->stopping)
        return SPK_ESHUTDOWN;
    pthread_mutex_lock(&in->connect_lock);
    /* Another thread may have connected while this one waited. */
    pthread_mutex_lock(&in->lock);
    for (i = 0; i < in->nconns; i++) {
        if (strcmp(in->conns[i].addr, addr) == 0 && !cl_conn_dead(in->conns[i].c)) {
            c = in->conns[i].c;
            hold(c);
            break;
        }
    }
    pthread_mutex_unlock(&in->lock);
    if (c) {
        pthread_mutex_unlock(&in->connect_lock);
        *out = c;
        return 0;
    }
    rc = cl_conn_open(addr, CONNECT_TIMEOUT_MS, in->hooks.on_request, in->hooks.owner, &c);
    if (rc) {
        pthread_mutex_unlock(&in->connect_lock);
        return rc;
    }
    pthread_mutex_lock(&in->lock);
    for (i = 0; i < in->nconns; i++) {
        if (strcmp(in->conns[i].addr, addr) == 0)
            break;
    }
    if (i == in->nconns) {
        struct conn_slot *ns = realloc(in->conns, (in->nconns + 1) * sizeof(*ns));

        if (!ns) {
            pthread_mutex_unlock(&in->lock);
            pthread_mutex_unlock(&in->connect_lock);
            cl_conn_free(c);
            return -ENOMEM;
        }
        in->conns = ns;
        in->nconns++;
        snprintf(in->conns[i].addr, sizeof(in->conns[i].addr), "%s", addr);
        in->conns[i].c = NULL;
    }
    if (in->conns[i].c) {
        struct cl_conn **ng = in->grave;

        if (in->ngrave == in->capgrave) {
            ng = realloc(in->grave, (in->capgrave * 2 + 4) * sizeof(*ng));
            if (ng) {
                in->grave = ng;
                in->capgrave = in->capgrave * 2 + 4;
            }
        }
        if (ng) /* else the dead connection leaks: better than freeing it held */
            in->grave[in->ngrave++] = in->conns[i].c;
    }
    in->conns[i].c = c;
    hold(c);
    pthread_mutex_unlock(&in->lock);
    pthread_mutex_unlock(&in->connect_lock);
    *out = c;
    return 0;
}

void
cl_conn_release(struct cl_instance *in, struct cl_conn *c)
{
    (void)in;
    unhold(c);
}

/* Frees retired connections nobody holds; scheduler thread only. */
static void
sweep_grave(struct cl_instance *in)
{
    size_t i = 0;

    pthread_mutex_lock(&in->lock);
    while (i < in->ngrave) {
        struct cl_conn *c = in->grave[i];

        if (!is_held(c)) {
            in->grave[i] = in->grave[--in->ngrave];
            pthread_mutex_unlock(&in->lock);
            cl_conn_free(c);
            pthread_mutex_lock(&in->lock);
            continue;
        }
        i++;
    }
    pthread_mutex_unlock(&in->lock);
}

int
cl_call(struct cl_instance *in, const char *addr, const struct proto_reply *req, int timeout_ms,
        struct proto_cmd *cmd, uint8_t **frame)
{
    struct cl_conn *c;
    int rc = cl_conn_get(in, addr, &c);

    if (rc)
        return rc;
    rc = cl_conn_call(c, req, timeout_ms, cmd, frame);
    cl_conn_release(in, c);
    return rc;
}

int
cl_call_async(struct cl_instance *in, const char *addr, const struct proto_reply *req,
              int timeout_ms, cl_reply_fn fn, void *ud)
{
    struct cl_conn *c;
    int rc = cl_conn_get(in, addr, &c);

    if (rc)
        return rc;
    rc = cl_conn_call_async(c, req, timeout_ms, fn, ud);
    cl_conn_release(in, c);
    return rc;
}

int
cl_oneway(struct cl_instance *in, const char *addr, const struct proto_reply *req)
{
    struct cl_conn *c;
    int rc = cl_conn_get(in, addr, &c);

    if (rc)
        return rc;
    rc = cl_conn_oneway(c, req);
    cl_conn_release(in, c);
    return rc;
}

int
cl_ns_call(struct cl_instance *in, const struct proto_reply *req, int timeout_ms,
           struct proto_cmd *cmd, uint8_t **frame)
{
    int rc = -ECONNREFUSED;
    size_t k;

    for (k = 0; k < in->nns; k++) {
        size_t idx;

        pthread_mutex_lock(&in->lock);
        idx = (in->ns_next + k) % in->nns;
        pthread_mutex_unlock(&in->lock);
        rc = cl_call(in, in->ns[idx], req, timeout_ms, cmd, frame);
        if (rc == 0) {
            pthread_mutex_lock(&in->lock);
            in->ns_next = idx; /* stick to a name server that answers */
            pthread_mutex_unlock(&in->lock);
            return 0;
        }
        if (rc == -EDEADLK || rc == SPK_ESHUTDOWN)
            return rc;
    }
    return rc;
}

/* ----- routes ----------------------------------------------------------- */
void
cl_route_free(struct cl_route *r)
{
    if (!r)
        return;
    free(r->brokers);
    free(r->wq);
    free(r->rq);
    free(r);
}

static int
cmp_queue(const void *a, const void *b)
{
    const spk_queue *x = a, *y = b;
    int c = strcmp(x->broker, y->broker);

    return c ? c : (x->queue_id > y->queue_id) - (x->queue_id < y->queue_id);
}

static int
add_queues(spk_queue **arr, size_t *n, const char *topic, const char *broker, int count)
{
    spk_queue *na;
    int q;

    if (count <= 0)
        return 0;
    /* A route comes from the network: bound what it may make us allocate. */
    if (count > 1024 || *n + (size_t)count > 65536)
        return SPK_EFORMAT;
    na = realloc(*arr, (*n + (size_t)count) * sizeof(*na));
    if (!na)
        return -ENOMEM;
    *arr = na;
    for (q = 0; q < count; q++) {
        spk_queue *e = &na[(*n)++];

        memset(e, 0, sizeof(*e));
        snprintf(e->topic, sizeof(e->topic), "%s", topic);
        snprintf(e->broker, sizeof(e->broker), "%s", broker);
        e->queue_id = q;
    }
    return 0;
}

/* Builds a route from a TopicRouteData body (PROTOCOL.md 3.8.1). */
int
cl_route_parse(const char *topic, const uint8_t *body, size_t len, struct cl_route **out)
{
    cJSON *root = fjson_parse((const char *)body, len), *bd, *qd, *e;
    struct cl_route *r;
    int rc = 0;

    if (!root)
        return SPK_EFORMAT;
    bd = cJSON_GetObjectItemCaseSensitive(root, "brokerDatas");
    qd = cJSON_GetObjectItemCaseSensitive(root, "queueDatas");
    r = calloc(1, sizeof(*r));
    if (!r) {
        cJSON_Delete(root);
        return -ENOMEM;
    }
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    if (!cJSON_IsArray(bd) || !cJSON_IsArray(qd)) {
        rc = SPK_EFORMAT;
        goto out;
    }
    r->brokers = calloc((size_t)cJSON_GetArraySize(bd) + 1, sizeof(*r->brokers));
    if (!r->brokers) {
        rc = -ENOMEM;
        goto out;
    }
    cJSON_ArrayForEach(e, bd)
    {
        cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "brokerName");
        cJSON *addrs = cJSON_GetObjectItemCaseSensitive(e, "brokerAddrs"), *a;
        struct cl_broker_data *b;

        if (!cJSON_IsString(name) || !cJSON_IsObject(addrs))
            continue;
        b = &r->brokers[r->nbrokers++];
        snprintf(b->name, sizeof(b->name), "%s", name->valuestring);
        cJSON_ArrayForEach(a, addrs)
        {
            if (!cJSON_IsString(a) || !a->string)
                continue;
            if (strcmp(a->string, "0") == 0)
                snprintf(b->master, sizeof(b->master), "%s", a->valuestring);
            if (!b->any[0])
                snprintf(b->any, sizeof(b->any), "%s", a->valuestring);
        }
        if (b->master[0])
            snprintf(b->any, sizeof(b->any), "%s", b->master);
    }
    cJSON_ArrayForEach(e, qd)
    {
        cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "brokerName");
        cJSON *perm = cJSON_GetObjectItemCaseSensitive(e, "perm");
        cJSON *rn = cJSON_GetObjectItemCaseSensitive(e, "readQueueNums");
        cJSON *wn = cJSON_GetObjectItemCaseSensitive(e, "writeQueueNums");
        int p, has_master = 0;
        size_t i;

        if (!cJSON_IsString(name) || !cJSON_IsNumber(perm))
            continue;
        p = perm->valueint;
        for (i = 0; i < r->nbrokers; i++)
            if (strcmp(r->brokers[i].name, name->valuestring) == 0 && r->brokers[i].master[0])
                has_master = 1;
        if ((p & 2) && has_master && cJSON_IsNumber(wn))
            rc = add_queues(&r->wq, &r->nwq, topic, name->valuestring, wn->valueint);
        if (!rc && (p & 4) && cJSON_IsNumber(rn))
            rc = add_queues(&r->rq, &r->nrq, topic, name->valuestring, rn->valueint);
        if (rc)
            goto out;
    }
    if (r->nwq)
        qsort(r->wq, r->nwq, sizeof(*r->wq), cmp_queue);
    if (r->nrq)
        qsort(r->rq, r->nrq, sizeof(*r->rq), cmp_queue);
out:
    cJSON_Delete(root);
    if (rc) {
        cl_route_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Asks the name servers for <topic>'s route and installs it. */
static int
fetch_route(struct cl_instance *in, const char *topic)
{
    struct proto_reply req;
    struct proto_cmd cmd;
    uint8_t *frame = NULL;
    struct cl_route *r = NULL;
    size_t i;
    int rc;

    proto_reply_init(&req, CL_REQ_GET_ROUTEINFO_BY_TOPIC);
    proto_reply_ext(&req, "topic", "%s", topic);
    rc = cl_ns_call(in, &req, NS_TIMEOUT_MS, &cmd, &frame);
    proto_reply_free(&req);
    if (rc)
        return rc;
    if (cmd.code == CL_RC_TOPIC_NOT_EXIST) {
        rc = SPK_ENOROUTE;
    } else if (cmd.code != CL_RC_SUCCESS || cmd.body_len == 0) {
        cl_set_broker_error(cmd.code, cmd.remark);
        rc = SPK_ENOROUTE;
    } else {
        rc = cl_route_parse(topic, cmd.body, cmd.body_len, &r);
    }
    proto_cmd_free(&cmd);
    free(frame);
    if (rc)
        return rc;
    pthread_mutex_lock(&in->lock);
    for (i = 0; i < in->nroutes; i++) {
        if (strcmp(in->routes[i]->topic, topic) == 0) {
            cl_route_free(in->routes[i]);
            in->routes[i] = r;
            r = NULL;
            break;
        }
    }
    if (r) {
        struct cl_route **nr = realloc(in->routes, (in->nroutes + 1) * sizeof(*nr));

        if (!nr) {
            pthread_mutex_unlock(&in->lock);
            cl_route_free(r);
            return -ENOMEM;
        }
        in->routes = nr;
        in->routes[in->nroutes++] = r;
        /* New brokers must learn of this client before they can send it
         * anything (check-backs, consumer-list answers). */
        in->hb_soon = 1;
        in->kicked = 1;
        pthread_cond_signal(&in->cond);
    }
    pthread_mutex_unlock(&in->lock);
    return 0;
}

static int
copy_queues(const spk_queue *src, size_t n, spk_queue **dst, size_t *dn)
{
    if (!dst)
        return 0;
    *dst = NULL;
    *dn = n;
    if (n == 0)
        return 0;
    *dst = malloc(n * sizeof(**dst));
    if (!*dst)
        return -ENOMEM;
    memcpy(*dst, src, n * sizeof(**dst));
    return 0;
}

int
cl_route_get(struct cl_instance *in, const char *topic, int refresh, spk_queue **wq,
             size_t *nwq, spk_queue **rq, size_t *nrq)
{
    size_t i;
    int rc, tries;

    for (tries = 0; tries < 2; tries++) {
        if (tries > 0 || refresh) {
            rc = fetch_route(in, topic);
            if (rc)
                return rc;
        }
        pthread_mutex_lock(&in->lock);
        for (i = 0; i < in->nroutes; i++) {
            struct cl_route *r = in->routes[i];

            if (strcmp(r->topic, topic) == 0) {
                rc = copy_queues(r->wq, r->nwq, wq, nwq);
                if (!rc)
                    rc = copy_queues(r->rq, r->nrq, rq, nrq);
                pthread_mutex_unlock(&in->lock);
                if (rc && wq)
                    free(*wq);
                return rc;
            }
        }
        pthread_mutex_unlock(&in->lock);
        if (refresh)
            break;
    }
    return SPK_ENOROUTE;
}

int
cl_broker_addr(struct cl_instance *in, const char *broker, int any, char out[64])
{
    size_t i, j;
    int rc = -ENOENT;

    pthread_mutex_lock(&in->lock);
    for (i = 0; i < in->nroutes && rc; i++) {
        struct cl_route *r = in->routes[i];

        for (j = 0; j < r->nbrokers; j++) {
            const char *a = any ? r->brokers[j].any : r->brokers[j].master;

            if (strcmp(r->brokers[j].name, broker) == 0 && a[0]) {
                memcpy(out, a, 64);
                rc = 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&in->lock);
    return rc;
}

int
cl_all_broker_addrs(struct cl_instance *in, char (**addrs)[64], size_t *n)
{
    char(*a)[64] = NULL;
    size_t i, j, k, cnt = 0, cap = 0;

    pthread_mutex_lock(&in->lock);
    for (i = 0; i < in->nroutes; i++)
        cap += in->routes[i]->nbrokers;
    if (cap) {
        a = malloc(cap * sizeof(*a));
        if (!a) {
            pthread_mutex_unlock(&in->lock);
            return -ENOMEM;
        }
    }
    for (i = 0; i < in->nroutes; i++) {
        struct cl_route *r = in->routes[i];

        for (j = 0; j < r->nbrokers; j++) {
            const char *ad = r->brokers[j].any;

            if (!ad[0])
                continue;
            for (k = 0; k < cnt; k++)
                if (strcmp(a[k], ad) == 0)
                    break;
            if (k == cnt)
                memcpy(a[cnt++], ad, 64);
        }
    }
    pthread_mutex_unlock(&in->lock);
    *addrs = a;
    *n = cnt;
    return 0;
}

/* ----- heartbeats ------------------------------------------------------- */
void
cl_heartbeat_all(struct cl_instance *in)
{
    struct sbuf sb = SBUF_INIT;
    struct proto_reply req;
    char(*addrs)[64];
    size_t n, i;
    char *body;
    size_t blen;

    if (cl_all_broker_addrs(in, &addrs, &n) || n == 0)
        return;
    sb_puts(&sb, "{\"clientID\":");
    sb_json_cstr(&sb, in->client_id);
    sb_putc(&sb, ',');
    in->hooks.heartbeat(in->hooks.owner, &sb);
    sb_putc(&sb, '}');
    if (sb.err) {
        sb_free(&sb);
        free(addrs);
        return;
    }
    body = sb_detach(&sb, &blen);
    for (i = 0; i < n; i++) {
        struct proto_cmd cmd;
        uint8_t *frame;
        int rc;

        proto_reply_init(&req, CL_REQ_HEART_BEAT);
        req.ext_present = 1;
        proto_reply_body_copy(&req, body, blen);
        rc = cl_call(in, addrs[i], &req, HB_TIMEOUT_MS, &cmd, &frame);
        proto_reply_free(&req);
        if (rc) {
            spk_log(SPK_LOG_WARN, CL_LOG, "heartbeat to %s failed: %s", addrs[i],
                    spk_strerror(rc));
            continue;
        }
        if (cmd.code != CL_RC_SUCCESS)
            spk_log(SPK_LOG_WARN, CL_LOG, "heartbeat to %s refused: %d %s", addrs[i], cmd.code,
                    cmd.remark ? cmd.remark : "");
        proto_cmd_free(&cmd);
        free(frame);
    }
    free(body);
    free(addrs);
}

void
cl_unregister_all(struct cl_instance *in, const char *producer_group, const char *consumer_group)
{
    struct proto_reply req;
    char(*addrs)[64];
    size_t n, i;

    if (cl_all_broker_addrs(in, &addrs, &n))
        return;
    for (i = 0; i < n; i++) {
        struct proto_cmd cmd;
        uint8_t *frame;

        proto_reply_init(&req, CL_REQ_UNREGISTER_CLIENT);
        proto_reply_ext(&req, "clientID", "%s", in->client_id);
        if (producer_group)
            proto_reply_ext(&req, "producerGroup", "%s", producer_group);
        if (consumer_group)
            proto_reply_ext(&req, "consumerGroup", "%s", consumer_group);
        if (cl_call(in, addrs[i], &req, HB_TIMEOUT_MS, &cmd, &frame) == 0) {
            proto_cmd_free(&cmd);
            free(frame);
        }
        proto_reply_free(&req);
    }
    free(addrs);
}

/* ----- the scheduler ---------------------------------------------------- */
static void
refresh_routes(struct cl_instance *in)
{
    char(*topics)[256] = NULL;
    size_t n, i;

    pthread_mutex_lock(&in->lock);
    n = in->nroutes;
    if (n)
        topics = malloc(n * sizeof(*topics));
    for (i = 0; topics && i < n; i++)
        memcpy(topics[i], in->routes[i]->topic, 256);
    pthread_mutex_unlock(&in->lock);
    for (i = 0; topics && i < n; i++) {
        int rc = fetch_route(in, topics[i]);

        if (rc && rc != SPK_ESHUTDOWN)
            spk_log(SPK_LOG_INFO, CL_LOG, "route of %s not refreshed: %s", topics[i],
                    spk_strerror(rc));
    }
    free(topics);
}

static void
expire_all(struct cl_instance *in, int64_t now)
{
    struct cl_conn **cs = NULL;
    size_t n, i;

    pthread_mutex_lock(&in->lock);
    n = in->nconns;
    if (n)
        cs = malloc(n * sizeof(*cs));
    for (i = 0; cs && i < n; i++) {
        cs[i] = in->conns[i].c;
        hold(cs[i]);
    }
    pthread_mutex_unlock(&in->lock);
    for (i = 0; cs && i < n; i++) {
        cl_conn_expire(cs[i], now);
        unhold(cs[i]);
    }
    free(cs);
}

static void *
sched_main(void *arg)
{
    struct cl_instance *in = arg;
    int64_t now = spk_mono_ms();
    int64_t next_route = now + in->poll_ns_interval;
    int64_t next_hb = now + in->heartbeat_interval;

    pthread_mutex_lock(&in->lock);
    while (!in->stopping) {
        struct timespec ts;
        int hb_now;

        if (!in->kicked) {
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += TICK_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&in->cond, &in->lock, &ts);
        }
        in->kicked = 0;
        if (in->stopping)
            break;
        hb_now = in->hb_soon;
        in->hb_soon = 0;
        pthread_mutex_unlock(&in->lock);
        now = spk_mono_ms();
        if (now >= next_route) {
            refresh_routes(in);
            next_route = now + in->poll_ns_interval;
        }
        if (now >= next_hb || hb_now) {
            cl_heartbeat_all(in);
            next_hb = now + in->heartbeat_interval;
        }
        expire_all(in, now);
        if (in->hooks.tick)
            in->hooks.tick(in->hooks.owner, now);
        sweep_grave(in);
        pthread_mutex_lock(&in->lock);
    }
    pthread_mutex_unlock(&in->lock);
    return NULL;
}

int
cl_instance_start(struct cl_instance *in)
{
    int rc = pthread_create(&in->sched, NULL, sched_main, in);

    if (rc)
        return -rc;
    in->started = 1;
    return 0;
}

void
cl_instance_kick(struct cl_instance *in)
{
    pthread_mutex_lock(&in->lock);
    in->kicked = 1;
    pthread_cond_signal(&in->cond);
    pthread_mutex_unlock(&in->lock);
}

void
cl_instance_destroy(struct cl_instance *in)
{
    size_t i;

    if (!in)
        return;
    pthread_mutex_lock(&in->lock);
    in->stopping = 1;
    pthread_cond_signal(&in->cond);
    pthread_mutex_unlock(&in->lock);
    if (in->started)
        pthread_join(in->sched, NULL);
    for (i = 0; i < in->nconns; i++)
        cl_conn_shutdown(in->conns[i].c);
    /* Holders finish their calls once their connection is dead. */
    for (i = 0; i < in->nconns; i++) {
        while (is_held(in->conns[i].c))
            usleep(1000);
        cl_conn_free(in->conns[i].c);
    }
    for (i = 0; i < in->ngrave; i++) {
        while (is_held(in->grave[i]))
            usleep(1000);
        cl_conn_free(in->grave[i]);
    }
    for (i = 0; i < in->nroutes; i++)
        cl_route_free(in->routes[i]);
    free(in->routes);
    free(in->conns);
    free(in->grave);
    free(in->ns);
    pthread_mutex_destroy(&in->lock);
    pthread_mutex_destroy(&in->connect_lock);
    pthread_cond_destroy(&in->cond);
    free(in);
}

/* ----- small shared helpers -------------------------------------------- */
static _Thread_local int tl_err_code;
static _Thread_local char tl_err_remark[256];

void
cl_set_broker_error(int code, const char *remark)
{
    tl_err_code = code;
    snprintf(tl_err_remark, sizeof(tl_err_remark), "%s", remark ? remark : "");
}

int
spk_last_broker_error(int *code, const char **remark)
{
    if (code)
        *code = tl_err_code;
    if (remark)
        *remark = tl_err_remark;
    return tl_err_code;
}

int
cl_parse_int(const char *v, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long x;

    if (!v || !*v)
        return -EINVAL;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || *end || x < min || x > max)
        return -EINVAL;
    *out = x;
    return 0;
}

int
cl_parse_bool(const char *v, int *out)
{
    if (!v)
        return -EINVAL;
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *out = 1;
    else if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *out = 0;
    else
        return -EINVAL;
    return 0;
}
