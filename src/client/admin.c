/*
 * admin.c - blocking administration calls (see admin.h for the contract).
 *
 * Invariants:
 *   INV-1  Every call leaves ad_err describing its failure, or empty
 *          after a success, so the caller never prints a stale reason.
 *   INV-2  Parsers read bodies as untrusted input: a member of the wrong
 *          type is skipped or reported as SPK_EFORMAT, never assumed.
 *   INV-3  The stored-format decoder reads no byte outside the buffer it
 *          was given, whatever the length fields say.
 */
#include "client/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/bytes.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/sbuf.h"
#include "net/client.h"
#include "proto/message.h"
#include "store/record.h"

/* Request codes (PROTOCOL.md 3.1). */
enum {
    RQ_PULL_MESSAGE = 11,
    RQ_QUERY_MESSAGE = 12,
    RQ_UPDATE_AND_CREATE_TOPIC = 17,
    RQ_UPDATE_BROKER_CONFIG = 25,
    RQ_GET_BROKER_CONFIG = 26,
    RQ_GET_BROKER_RUNTIME_INFO = 28,
    RQ_SEARCH_OFFSET_BY_TIMESTAMP = 29,
    RQ_GET_MAX_OFFSET = 30,
    RQ_GET_MIN_OFFSET = 31,
    RQ_VIEW_MESSAGE_BY_ID = 33,
    RQ_GET_ROUTEINFO_BY_TOPIC = 105,
    RQ_GET_BROKER_CLUSTER_INFO = 106,
    RQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP = 200,
    RQ_GET_TOPIC_STATS_INFO = 202,
    RQ_GET_CONSUMER_CONNECTION_LIST = 203,
    RQ_GET_PRODUCER_CONNECTION_LIST = 204,
    RQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER = 206,
    RQ_GET_CONSUME_STATS = 208,
    RQ_DELETE_TOPIC_IN_BROKER = 215,
    RQ_DELETE_TOPIC_IN_NAMESRV = 216,
    RQ_INVOKE_BROKER_TO_RESET_OFFSET = 222,
    RQ_QUERY_TOPIC_CONSUME_BY_WHO = 300,
};

#define MSG_SYS_COMPRESSED 0x1
#define BODY_INFLATE_MAX (64u << 20) /* a compressed body may not claim more */
#define PULL_SYS_SUBSCRIPTION 0x4

struct adm {
    char *ad_namesrv; /* as given */
    char **ad_ns;     /* split at ';' */
    size_t ad_nns;
    int ad_timeout_ms;
    int32_t ad_code;   /* response code behind the last SPK_EBROKER, or -1 */
    char ad_err[1024]; /* INV-1 */
};

static int32_t next_opaque;

/* Errors ---------------------------------------------------------------------------------- */

static void seterr(struct adm *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
seterr(struct adm *a, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(a->ad_err, sizeof(a->ad_err), fmt, ap);
    va_end(ap);
}

static void
clearerr_(struct adm *a)
{
    a->ad_err[0] = '\0';
    a->ad_code = -1;
}

const char *
adm_error(const struct adm *a)
{
    return a->ad_err;
}

int32_t
adm_error_code(const struct adm *a)
{
    return a->ad_code;
}

const char *
adm_namesrv(const struct adm *a)
{
    return a->ad_namesrv;
}

const char *
adm_code_name(int32_t code)
{
    static _Thread_local char other[32];

    switch (code) {
    case 0:
        return "SUCCESS";
    case 1:
        return "SYSTEM_ERROR";
    case 2:
        return "SYSTEM_BUSY";
    case 3:
        return "REQUEST_CODE_NOT_SUPPORTED";
    case 13:
        return "MESSAGE_ILLEGAL";
    case 14:
        return "SERVICE_NOT_AVAILABLE";
    case 16:
        return "NO_PERMISSION";
    case 17:
        return "TOPIC_NOT_EXIST";
    case 19:
        return "PULL_NOT_FOUND";
    case 20:
        return "PULL_RETRY_IMMEDIATELY";
    case 21:
        return "PULL_OFFSET_MOVED";
    case 22:
        return "QUERY_NOT_FOUND";
    case 23:
        return "SUBSCRIPTION_PARSE_FAILED";
    case 24:
        return "SUBSCRIPTION_NOT_EXIST";
    case 25:
        return "SUBSCRIPTION_NOT_LATEST";
    case 26:
        return "SUBSCRIPTION_GROUP_NOT_EXIST";
    case 29:
        return "INVALID_PARAMETER";
    case 206:
        return "CONSUMER_NOT_ONLINE";
    default:
        snprintf(other, sizeof(other), "code %d", (int)code);
        return other;
    }
}

/* Addresses ------------------------------------------------------------------------------- */

/* 1 when <s> is "ipv4:port" (or "localhost:port") with a port in 1..65535. */
static int
addr_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    struct in_addr ia;
    char *end;
    long port;

    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
        return 0;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port <= 0 || port > 65535)
        return 0;
    return strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &ia) == 1;
}

int
adm_create(const char *namesrv, int timeout_ms, struct adm **out, char *err, size_t errlen)
{
    struct adm *a = calloc(1, sizeof(*a));
    char *copy = NULL, *save = NULL, *tok;
    int rc = -ENOMEM;

    if (!a)
        return -ENOMEM;
    a->ad_timeout_ms = timeout_ms > 0 ? timeout_ms : ADM_TIMEOUT_MS;
    a->ad_code = -1;
    a->ad_namesrv = strdup(namesrv ? namesrv : "");
    copy = strdup(namesrv ? namesrv : "");
    if (!a->ad_namesrv || !copy)
        goto fail;
    for (tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        char **v;
        while (*tok == ' ')
            tok++;
        tok[strcspn(tok, " ")] = '\0';
        if (!*tok)
            continue;
        if (!addr_ok(tok)) {
            snprintf(err, errlen, "'%s' is not an ip:port address", tok);
            rc = SPK_EFORMAT;
            goto fail;
        }
        v = realloc(a->ad_ns, (a->ad_nns + 1) * sizeof(*v));
        if (!v)
            goto fail;
        a->ad_ns = v;
        if (!(a->ad_ns[a->ad_nns] = strdup(tok)))
            goto fail;
        a->ad_nns++;
    }
    free(copy);
    *out = a;
    return 0;
fail:
    free(copy);
    adm_destroy(a);
    return rc;
}

void
adm_destroy(struct adm *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->ad_nns; i++)
        free(a->ad_ns[i]);
    free(a->ad_ns);
    free(a->ad_namesrv);
    free(a);
}

/* Calls ----------------------------------------------------------------------------------- */

void
adm_reply_free(struct adm_reply *r)
{
    if (!r)
        return;
    proto_cmd_free(&r->cmd);
    free(r->frame);
    memset(r, 0, sizeof(*r));
}

/*
 * One request to <addr> (<what>: "broker" or "name server", for the
 * message). With <must_succeed> a reply code other than SUCCESS is
 * SPK_EBROKER.
 */
static int
call_one(struct adm *a, const char *what, const char *addr, const struct proto_reply *req,
         int must_succeed, struct adm_reply *out)
{
    int32_t opaque = __atomic_add_fetch(&next_opaque, 1, __ATOMIC_RELAXED) & 0x7fffffff;
    uint8_t *frame = NULL, *resp = NULL;
    size_t flen, rlen;
    struct adm_reply r;
    int rc;

    clearerr_(a);
    if (!addr || !addr_ok(addr)) {
        seterr(a, "'%s' is not an ip:port %s address", addr ? addr : "", what);
        return SPK_EFORMAT;
    }
    rc = proto_request_encode(req, opaque, 0, &frame, &flen);
    if (rc) {
        seterr(a, "cannot encode request %d: %s", req->code, spk_strerror(rc));
        return rc;
    }
    rc = net_call(addr, frame, flen, opaque, a->ad_timeout_ms, &resp, &rlen);
    free(frame);
    if (rc) {
        if (rc == -ETIMEDOUT)
            seterr(a, "%s %s did not answer within %d ms", what, addr, a->ad_timeout_ms);
        else if (rc == SPK_EFORMAT)
            seterr(a, "%s %s sent a reply that is not a remoting frame", what, addr);
        else
            seterr(a, "cannot reach %s %s: %s", what, addr, spk_strerror(rc));
        return rc;
    }
    memset(&r, 0, sizeof(r));
    rc = proto_decode(resp, rlen, &r.cmd);
    if (rc) {
        free(resp);
        seterr(a, "%s %s sent a reply that does not decode: %s", what, addr, spk_strerror(rc));
        return SPK_EFORMAT;
    }
    r.frame = resp;
    r.len = rlen;
    if (must_succeed && r.cmd.code != 0) {
        a->ad_code = r.cmd.code;
        seterr(a, "%s %s answered %s (%d): %s", what, addr, adm_code_name(r.cmd.code),
               (int)r.cmd.code, r.cmd.remark && *r.cmd.remark ? r.cmd.remark : "no remark");
        adm_reply_free(&r);
        return SPK_EBROKER;
    }
    *out = r;
    return 0;
}

int
adm_call(struct adm *a, const char *addr, const struct proto_reply *req, struct adm_reply *out)
{
    return call_one(a, "broker", addr, req, 0, out);
}

int
adm_request(struct adm *a, const char *addr, const struct proto_reply *req, struct adm_reply *out)
{
    return call_one(a, "broker", addr, req, 1, out);
}

int
adm_namesrv_request(struct adm *a, const struct proto_reply *req, struct adm_reply *out)
{
    char first[sizeof(a->ad_err)];
    int rc = 0, first_rc = 0;

    if (a->ad_nns == 0) {
        clearerr_(a);
        seterr(a, "no name server address given");
        return SPK_EFORMAT;
    }
    for (size_t i = 0; i < a->ad_nns; i++) {
        rc = call_one(a, "name server", a->ad_ns[i], req, 1, out);
        if (rc == 0 || rc == SPK_EBROKER || rc == -ENOMEM)
            return rc;
        if (i == 0) {
            first_rc = rc;
            memcpy(first, a->ad_err, sizeof(first));
        }
    }
    if (a->ad_nns > 1) {
        /* Report the first failure; the others usually say the same. */
        snprintf(a->ad_err, sizeof(a->ad_err), "%s (and %zu more name server(s) failed)", first,
                 a->ad_nns - 1);
        return first_rc;
    }
    return rc;
}

/* A request with the given extFields (key, value pairs, NULL-terminated). */
static int
simple_request(struct adm *a, const char *addr, int32_t code, struct adm_reply *out, ...)
{
    struct proto_reply req;
    va_list ap;
    const char *k;
    int rc;

    proto_reply_init(&req, code);
    req.ext_present = 1;
    va_start(ap, out);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        if (v)
            proto_reply_ext_str(&req, k, v, strlen(v));
    }
    va_end(ap);
    rc = addr ? adm_request(a, addr, &req, out) : adm_namesrv_request(a, &req, out);
    proto_reply_free(&req);
    return rc;
}

/* JSON ------------------------------------------------------------------------------------ */

/* Index just past the JSON string opening at in[i] (or len). */
static size_t
skip_string(const char *in, size_t len, size_t i)
{
    char q = in[i];

    for (size_t j = i + 1; j < len; j++) {
        if (in[j] == '\\')
            j++;
        else if (in[j] == q)
            return j + 1;
    }
    return len;
}

/* Index just past the object opening at in[i], braces in strings ignored (or len). */
static size_t
skip_object(const char *in, size_t len, size_t i)
{
    size_t depth = 0;

    while (i < len) {
        char c = in[i];
        if (c == '"' || c == '\'') {
            i = skip_string(in, len, i);
            continue;
        }
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return i + 1;
        i++;
    }
    return len;
}

/*
 * Rewrites object keys that are themselves objects (fastjson's
 * Map<MessageQueue, ...>) into string keys holding the object's text;
 * everything else is copied. The result goes through fjson_parse, which
 * deals with bare integer keys.
 */
struct cJSON *
adm_json_parse(const void *body, size_t len)
{
    const char *in = body;
    struct sbuf b = SBUF_INIT;
    unsigned char stack[256];
    size_t depth = 0, i = 0, run = 0;
    int want_key = 0;
    cJSON *root;
    char *text;
    size_t tlen;

    if (!body)
        return NULL;
    while (i < len) {
        char c = in[i];
        if (c == '"' || c == '\'') {
            i = skip_string(in, len, i);
            want_key = 0;
            continue;
        }
        if (c == '{' && want_key) {
            size_t end = skip_object(in, len, i);
            sb_put(&b, in + run, i - run);
            sb_json_str(&b, in + i, end - i);
            i = run = end;
            want_key = 0;
            continue;
        }
        switch (c) {
        case '{':
        case '[':
            if (depth < sizeof(stack))
                stack[depth] = c == '{';
            depth++;
            want_key = c == '{';
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            want_key = 0;
            break;
        case ',':
            want_key = depth > 0 && depth <= sizeof(stack) && stack[depth - 1];
            break;
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            break;
        default:
            want_key = 0;
            break;
        }
        i++;
    }
    sb_put(&b, in + run, len - run);
    text = sb_detach(&b, &tlen);
    if (!text)
        return NULL;
    root = fjson_parse(text, tlen);
    free(text);
    return root;
}

static const char *
jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A number member (also accepted as a numeric string); <dflt> otherwise. */
static int64_t
jnum(const cJSON *o, const char *k, int64_t dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    if (cJSON_IsNumber(v))
        return (int64_t)v->valuedouble;
    if (cJSON_IsString(v) && v->valuestring[0]) {
        char *end;
        long long x = strtoll(v->valuestring, &end, 10);
        if (!*end)
            return x;
    }
    return dflt;
}

static double
jdouble(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static char *
xstrdup(const char *s)
{
    return strdup(s ? s : "");
}

/* Parses the body of <r>; sets the error when it is not JSON. */
static cJSON *
body_json(struct adm *a, const char *what, const struct adm_reply *r)
{
    cJSON *j = r->cmd.body_len ? adm_json_parse(r->cmd.body, r->cmd.body_len) : NULL;

    if (!j)
        seterr(a, "%s: the reply body is not JSON", what);
    return j;
}

/* A MessageQueue key: its JSON text as the member name. */
static int
mq_from_key(const char *key, char **broker, int32_t *qid, char **topic)
{
    cJSON *k = key ? fjson_parse(key, strlen(key)) : NULL;
    const char *b, *t;

    if (!cJSON_IsObject(k)) {
        cJSON_Delete(k);
        return SPK_EFORMAT;
    }
    b = jstr(k, "brokerName");
    t = jstr(k, "topic");
    *qid = (int32_t)jnum(k, "queueId", -1);
    *broker = xstrdup(b);
    *topic = xstrdup(t);
    cJSON_Delete(k);
    if (!*broker || !*topic) {
        free(*broker);
        free(*topic);
        return -ENOMEM;
    }
    return 0;
}

/* Name server ----------------------------------------------------------------------------- */

static void
broker_free(struct adm_broker *b)
{
    for (size_t i = 0; i < b->naddrs; i++)
        free(b->addrs[i].addr);
    free(b->addrs);
    free(b->cluster);
    free(b->name);
}

static int
cmp_addr(const void *x, const void *y)
{
    const struct adm_addr *p = x, *q = y;

    return p->id < q->id ? -1 : p->id > q->id;
}

static int
cmp_broker(const void *x, const void *y)
{
    const struct adm_broker *p = x, *q = y;
    int c = strcmp(p->cluster, q->cluster);

    return c ? c : strcmp(p->name, q->name);
}

static int
cmp_broker_name(const void *x, const void *y)
{
    const struct adm_broker *p = x, *q = y;

    return strcmp(p->name, q->name);
}

/* A BrokerData object into *b. */
static int
parse_broker(const cJSON *o, struct adm_broker *b)
{
    const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(o, "brokerAddrs"), *e;

    memset(b, 0, sizeof(*b));
    b->cluster = xstrdup(jstr(o, "cluster"));
    b->name = xstrdup(jstr(o, "brokerName"));
    if (!b->cluster || !b->name)
        return -ENOMEM;
    cJSON_ArrayForEach(e, addrs)
    {
        struct adm_addr *v;
        char *end;
        long long id;
        if (!cJSON_IsString(e) || !e->string)
            continue;
        id = strtoll(e->string, &end, 10);
        if (*end)
            continue;
        v = realloc(b->addrs, (b->naddrs + 1) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        b->addrs = v;
        v[b->naddrs].id = id;
        if (!(v[b->naddrs].addr = strdup(e->valuestring)))
            return -ENOMEM;
        b->naddrs++;
    }
    if (b->naddrs > 1)
        qsort(b->addrs, b->naddrs, sizeof(*b->addrs), cmp_addr);
    return 0;
}

void
adm_route_free(struct adm_route *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nbrokers; i++)
        broker_free(&r->brokers[i]);
    free(r->brokers);
    for (size_t i = 0; i < r->nqueues; i++)
        free(r->queues[i].broker);
    free(r->queues);
    free(r);
}

static int
cmp_queue_data(const void *x, const void *y)
{
    const struct adm_queue_data *p = x, *q = y;

    return strcmp(p->broker, q->broker);
}

int
adm_route(struct adm *a, const char *topic, struct adm_route **out)
{
    struct adm_reply r;
    struct adm_route *rt = NULL;
    const cJSON *e;
    cJSON *j = NULL;
    int rc;

    rc = simple_request(a, NULL, RQ_GET_ROUTEINFO_BY_TOPIC, &r, "topic", topic, NULL);
    if (rc == SPK_EBROKER && a->ad_code == ADM_RS_TOPIC_NOT_EXIST) {
        seterr(a, "the name server has no route for topic '%s'", topic);
        return SPK_ENOROUTE;
    }
    if (rc)
        return rc;
    j = body_json(a, "GET_ROUTEINFO_BY_TOPIC", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = -ENOMEM;
    rt = calloc(1, sizeof(*rt));
    if (!rt)
        goto out;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "brokerDatas"))
    {
        struct adm_broker *v = realloc(rt->brokers, (rt->nbrokers + 1) * sizeof(*v));
        if (!v)
            goto out;
        rt->brokers = v;
        rt->nbrokers++;
        if (parse_broker(e, &v[rt->nbrokers - 1]))
            goto out;
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "queueDatas"))
    {
        struct adm_queue_data *v = realloc(rt->queues, (rt->nqueues + 1) * sizeof(*v));
        if (!v)
            goto out;
        rt->queues = v;
        v += rt->nqueues;
        memset(v, 0, sizeof(*v));
        rt->nqueues++;
        if (!(v->broker = xstrdup(jstr(e, "brokerName"))))
            goto out;
        v->read = (int32_t)jnum(e, "readQueueNums", 0);
        v->write = (int32_t)jnum(e, "writeQueueNums", 0);
        v->perm = (int32_t)jnum(e, "perm", 0);
        v->sysflag = (int32_t)jnum(e, "topicSysFlag", 0);
    }
    qsort(rt->brokers, rt->nbrokers, sizeof(*rt->brokers), cmp_broker_name);
    qsort(rt->queues, rt->nqueues, sizeof(*rt->queues), cmp_queue_data);
    *out = rt;
    rt = NULL;
    rc = 0;
out:
    if (rc == -ENOMEM)
        seterr(a, "out of memory");
    adm_route_free(rt);
    cJSON_Delete(j);
    return rc;
}

const char *
adm_broker_master(const struct adm_broker *b)
{
    for (size_t i = 0; i < b->naddrs; i++)
        if (b->addrs[i].id == 0)
            return b->addrs[i].addr;
    return NULL;
}

const struct adm_queue_data *
adm_route_queues(const struct adm_route *r, const char *name)
{
    for (size_t i = 0; i < r->nqueues; i++)
        if (strcmp(r->queues[i].broker, name) == 0)
            return &r->queues[i];
    return NULL;
}

void
adm_cluster_free(struct adm_cluster *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nbrokers; i++)
        broker_free(&c->brokers[i]);
    free(c->brokers);
    free(c);
}

int
adm_cluster_info(struct adm *a, struct adm_cluster **out)
{
    struct adm_reply r;
    struct adm_cluster *c = NULL;
    const cJSON *e;
    cJSON *j;
    int rc;

    rc = simple_request(a, NULL, RQ_GET_BROKER_CLUSTER_INFO, &r, NULL);
    if (rc)
        return rc;
    j = body_json(a, "GET_BROKER_CLUSTER_INFO", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = -ENOMEM;
    if (!(c = calloc(1, sizeof(*c))))
        goto out;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "brokerAddrTable"))
    {
        struct adm_broker *v = realloc(c->brokers, (c->nbrokers + 1) * sizeof(*v));
        if (!v)
            goto out;
        c->brokers = v;
        c->nbrokers++;
        if (parse_broker(e, &v[c->nbrokers - 1]))
            goto out;
    }
    qsort(c->brokers, c->nbrokers, sizeof(*c->brokers), cmp_broker);
    *out = c;
    c = NULL;
    rc = 0;
out:
    if (rc)
        seterr(a, "out of memory");
    adm_cluster_free(c);
    cJSON_Delete(j);
    return rc;
}

int
adm_cluster_has(const struct adm_cluster *c, const char *cluster)
{
    for (size_t i = 0; i < c->nbrokers; i++)
        if (strcmp(c->brokers[i].cluster, cluster) == 0)
            return 1;
    return 0;
}

void
adm_strv_free(struct adm_strv *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static int
strv_has(const struct adm_strv *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], x) == 0)
            return 1;
    return 0;
}

static int
strv_add(struct adm_strv *s, const char *x)
{
    char **v = realloc(s->v, (s->n + 1) * sizeof(*v));

    if (!v)
        return -ENOMEM;
    s->v = v;
    if (!(v[s->n] = strdup(x)))
        return -ENOMEM;
    s->n++;
    return 0;
}

static int
cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Appends the strings of array member <key> of <j> to *out; -ENOMEM or 0. */
static int
strv_from_array(const cJSON *j, const char *key, struct adm_strv *out)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, key))
    {
        if (cJSON_IsString(e) && !strv_has(out, e->valuestring) &&
            strv_add(out, e->valuestring) != 0)
            return -ENOMEM;
    }
    return 0;
}

int
adm_topic_list(struct adm *a, struct adm_strv *out)
{
    struct adm_reply r;
    struct adm_strv s = {NULL, 0};
    cJSON *j;
    int rc;

    rc = simple_request(a, NULL, RQ_GET_ALL_TOPIC_LIST_FROM_NAMESERVER, &r, NULL);
    if (rc)
        return rc;
    j = body_json(a, "GET_ALL_TOPIC_LIST_FROM_NAMESERVER", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = strv_from_array(j, "topicList", &s);
    cJSON_Delete(j);
    if (rc) {
        adm_strv_free(&s);
        seterr(a, "out of memory");
        return rc;
    }
    if (s.n > 1)
        qsort(s.v, s.n, sizeof(*s.v), cmp_str);
    *out = s;
    return 0;
}

int
adm_namesrv_delete_topic(struct adm *a, const char *topic, const char *cluster)
{
    struct proto_reply req;
    int rc = 0;

    proto_reply_init(&req, RQ_DELETE_TOPIC_IN_NAMESRV);
    proto_reply_ext(&req, "topic", "%s", topic);
    if (cluster)
        proto_reply_ext(&req, "clusterName", "%s", cluster);
    /* Every name server keeps its own copy of the routes. */
    for (size_t i = 0; i < a->ad_nns && rc == 0; i++) {
        struct adm_reply r;
        rc = call_one(a, "name server", a->ad_ns[i], &req, 1, &r);
        if (rc == 0)
            adm_reply_free(&r);
    }
    proto_reply_free(&req);
    return rc;
}

/* Broker: topics and groups --------------------------------------------------------------- */

int
adm_update_topic(struct adm *a, const char *addr, const struct adm_topic_conf *tc)
{
    struct proto_reply req;
    struct adm_reply r;
    int rc;

    proto_reply_init(&req, RQ_UPDATE_AND_CREATE_TOPIC);
    proto_reply_ext(&req, "topic", "%s", tc->topic);
    proto_reply_ext(&req, "defaultTopic", "TBW102");
    proto_reply_ext(&req, "readQueueNums", "%d", (int)tc->read);
    proto_reply_ext(&req, "writeQueueNums", "%d", (int)tc->write);
    proto_reply_ext(&req, "perm", "%d", (int)tc->perm);
    proto_reply_ext(&req, "topicFilterType", "SINGLE_TAG");
    proto_reply_ext(&req, "topicSysFlag", "%d", (int)tc->sysflag);
    proto_reply_ext(&req, "order", "%s", tc->order ? "true" : "false");
    rc = adm_request(a, addr, &req, &r);
    proto_reply_free(&req);
    if (rc == 0)
        adm_reply_free(&r);
    return rc;
}

int
adm_delete_topic(struct adm *a, const char *addr, const char *topic)
{
    struct adm_reply r;
    int rc = simple_request(a, addr, RQ_DELETE_TOPIC_IN_BROKER, &r, "topic", topic, NULL);

    if (rc == 0)
        adm_reply_free(&r);
    return rc;
}

int
adm_topic_groups(struct adm *a, const char *addr, const char *topic, struct adm_strv *out)
{
    struct adm_reply r;
    cJSON *j;
    int rc = simple_request(a, addr, RQ_QUERY_TOPIC_CONSUME_BY_WHO, &r, "topic", topic, NULL);

    if (rc)
        return rc;
    j = body_json(a, "QUERY_TOPIC_CONSUME_BY_WHO", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = strv_from_array(j, "groupList", out);
    cJSON_Delete(j);
    return rc;
}

void
adm_group_conf_defaults(struct adm_group_conf *g, const char *name)
{
    memset(g, 0, sizeof(*g));
    g->name = name;
    g->consume_enable = 1;
    g->notify_ids_changed = 1;
    g->retry_queues = 1;
    g->retry_max = 16;
    g->which_broker_slowly = 1;
}

int
adm_update_group(struct adm *a, const char *addr, const struct adm_group_conf *g)
{
    struct proto_reply req;
    struct adm_reply r;
    struct sbuf b = SBUF_INIT;
    size_t len;
    char *body;
    int rc;

    /* SubscriptionGroupConfig as fastjson writes it (fields in order). */
    sb_printf(&b,
              "{\"brokerId\":%lld,\"consumeBroadcastEnable\":%s,\"consumeEnable\":%s,"
              "\"consumeFromMinEnable\":%s,\"consumeMessageOrderly\":%s,"
              "\"consumeTimeoutMinute\":15,\"groupName\":",
              (long long)g->broker_id, g->consume_broadcast ? "true" : "false",
              g->consume_enable ? "true" : "false", g->consume_from_min ? "true" : "false",
              g->consume_orderly ? "true" : "false");
    sb_json_cstr(&b, g->name);
    sb_printf(&b,
              ",\"groupRetryPolicy\":{\"type\":\"CUSTOMIZED\"},\"groupSysFlag\":0,"
              "\"notifyConsumerIdsChangedEnable\":%s,\"retryMaxTimes\":%d,"
              "\"retryQueueNums\":%d,\"whichBrokerWhenConsumeSlowly\":%lld}",
              g->notify_ids_changed ? "true" : "false", (int)g->retry_max, (int)g->retry_queues,
              (long long)g->which_broker_slowly);
    body = sb_detach(&b, &len);
    if (!body) {
        seterr(a, "out of memory");
        return -ENOMEM;
    }
    proto_reply_init(&req, RQ_UPDATE_AND_CREATE_SUBSCRIPTIONGROUP);
    req.ext_present = 1;
    proto_reply_body(&req, body, len);
    rc = adm_request(a, addr, &req, &r);
    proto_reply_free(&req);
    if (rc == 0)
        adm_reply_free(&r);
    return rc;
}

/* Broker: status and configuration -------------------------------------------------------- */

void
adm_kvs_free(struct adm_kvs *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++) {
        free(k->v[i].key);
        free(k->v[i].val);
    }
    free(k->v);
    k->v = NULL;
    k->n = 0;
}

const char *
adm_kvs_get(const struct adm_kvs *k, const char *key)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->v[i].key, key) == 0)
            return k->v[i].val;
    return NULL;
}

static int
kvs_add(struct adm_kvs *k, const char *key, size_t klen, const char *val, size_t vlen)
{
    struct adm_kv *v = realloc(k->v, (k->n + 1) * sizeof(*v));

    if (!v)
        return -ENOMEM;
    k->v = v;
    v += k->n;
    v->key = strndup(key, klen);
    v->val = strndup(val, vlen);
    if (!v->key || !v->val) {
        free(v->key);
        free(v->val);
        return -ENOMEM;
    }
    k->n++;
    return 0;
}

static int
cmp_kv(const void *x, const void *y)
{
    return strcmp(((const struct adm_kv *)x)->key, ((const struct adm_kv *)y)->key);
}

int
adm_broker_runtime(struct adm *a, const char *addr, struct adm_kvs *out)
{
    struct adm_reply r;
    struct adm_kvs k = {NULL, 0};
    const cJSON *e;
    cJSON *j;
    int rc = simple_request(a, addr, RQ_GET_BROKER_RUNTIME_INFO, &r, NULL);

    if (rc)
        return rc;
    j = body_json(a, "GET_BROKER_RUNTIME_INFO", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "table"))
    {
        if (!cJSON_IsString(e) || !e->string)
            continue;
        rc = kvs_add(&k, e->string, strlen(e->string), e->valuestring, strlen(e->valuestring));
        if (rc)
            break;
    }
    cJSON_Delete(j);
    if (rc) {
        adm_kvs_free(&k);
        seterr(a, "out of memory");
        return rc;
    }
    if (k.n > 1)
        qsort(k.v, k.n, sizeof(*k.v), cmp_kv);
    *out = k;
    return 0;
}

int
adm_broker_config(struct adm *a, const char *addr, struct adm_kvs *out)
{
    struct adm_reply r;
    struct adm_kvs k = {NULL, 0};
    const char *p, *end;
    int rc = simple_request(a, addr, RQ_GET_BROKER_CONFIG, &r, NULL);

    if (rc)
        return rc;
    p = (const char *)r.cmd.body;
    end = p ? p + r.cmd.body_len : p;
    /* A Java Properties text: key=value lines. */
    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end, *eq;
        size_t n = (size_t)(le - p);
        while (n > 0 && p[n - 1] == '\r')
            n--;
        eq = memchr(p, '=', n);
        if (n > 0 && p[0] != '#' && eq) {
            rc = kvs_add(&k, p, (size_t)(eq - p), eq + 1, n - (size_t)(eq - p) - 1);
            if (rc)
                break;
        }
        p = le + 1;
    }
    adm_reply_free(&r);
    if (rc) {
        adm_kvs_free(&k);
        seterr(a, "out of memory");
        return rc;
    }
    *out = k;
    return 0;
}

int
adm_update_broker_config(struct adm *a, const char *addr, const char *key, const char *val)
{
    struct proto_reply req;
    struct adm_reply r;
    char *body;
    int n, rc;

    n = asprintf(&body, "%s=%s\n", key, val);
    if (n < 0) {
        seterr(a, "out of memory");
        return -ENOMEM;
    }
    proto_reply_init(&req, RQ_UPDATE_BROKER_CONFIG);
    req.ext_present = 1;
    proto_reply_body(&req, body, (size_t)n);
    rc = adm_request(a, addr, &req, &r);
    proto_reply_free(&req);
    if (rc == 0)
        adm_reply_free(&r);
    return rc;
}

/* Broker: queues and offsets -------------------------------------------------------------- */

void
adm_queue_stats_free(struct adm_queue_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].topic);
        free(s->v[i].broker);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int
cmp_qstat(const void *x, const void *y)
{
    const struct adm_queue_stat *p = x, *q = y;
    int c = strcmp(p->topic, q->topic);

    if (!c)
        c = strcmp(p->broker, q->broker);
    return c ? c : (p->qid > q->qid) - (p->qid < q->qid);
}

void
adm_queue_stats_sort(struct adm_queue_stats *s)
{
    if (s->n > 1)
        qsort(s->v, s->n, sizeof(*s->v), cmp_qstat);
}

/* Appends the entries of the MessageQueue-keyed member offsetTable of <j>. */
static int
queue_stats_from(const cJSON *j, int consume, struct adm_queue_stats *out)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "offsetTable"))
    {
        struct adm_queue_stat *v;
        char *broker, *topic;
        int32_t qid;
        int rc = mq_from_key(e->string, &broker, &qid, &topic);
        if (rc == SPK_EFORMAT || !cJSON_IsObject(e)) {
            if (rc == 0) {
                free(broker);
                free(topic);
            }
            continue;
        }
        if (rc)
            return rc;
        v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v) {
            free(broker);
            free(topic);
            return -ENOMEM;
        }
        out->v = v;
        v += out->n++;
        memset(v, 0, sizeof(*v));
        v->broker = broker;
        v->topic = topic;
        v->qid = qid;
        if (consume) {
            v->broker_off = jnum(e, "brokerOffset", 0);
            v->consumer_off = jnum(e, "consumerOffset", 0);
            v->pull_off = jnum(e, "pullOffset", 0);
            v->last_ts = jnum(e, "lastTimestamp", 0);
        } else {
            v->min_off = jnum(e, "minOffset", 0);
            v->max_off = jnum(e, "maxOffset", 0);
            v->last_ts = jnum(e, "lastUpdateTimestamp", 0);
        }
    }
    return 0;
}

int
adm_topic_stats(struct adm *a, const char *addr, const char *topic, struct adm_queue_stats *out)
{
    struct adm_reply r;
    cJSON *j;
    int rc = simple_request(a, addr, RQ_GET_TOPIC_STATS_INFO, &r, "topic", topic, NULL);

    if (rc)
        return rc;
    j = body_json(a, "GET_TOPIC_STATS_INFO", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = queue_stats_from(j, 0, out);
    out->tps += jdouble(j, "topicPutTps");
    cJSON_Delete(j);
    if (rc)
        seterr(a, "out of memory");
    return rc;
}

int
adm_consume_stats(struct adm *a, const char *addr, const char *group, const char *topic,
                  struct adm_queue_stats *out)
{
    struct adm_reply r;
    cJSON *j;
    int rc = simple_request(a, addr, RQ_GET_CONSUME_STATS, &r, "consumerGroup", group, "topic",
                            topic, NULL);

    if (rc)
        return rc;
    j = body_json(a, "GET_CONSUME_STATS", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = queue_stats_from(j, 1, out);
    out->tps += jdouble(j, "consumeTps");
    cJSON_Delete(j);
    if (rc)
        seterr(a, "out of memory");
    return rc;
}

int
adm_queue_offset(struct adm *a, const char *addr, enum adm_offset_kind kind, const char *topic,
                 int32_t qid, int64_t ts, int64_t *out)
{
    static const int32_t codes[] = {RQ_GET_MIN_OFFSET, RQ_GET_MAX_OFFSET,
                                    RQ_SEARCH_OFFSET_BY_TIMESTAMP};
    struct adm_reply r;
    char q[16], t[24];
    const char *v;
    char *end;
    long long off;
    int rc;

    snprintf(q, sizeof(q), "%d", (int)qid);
    snprintf(t, sizeof(t), "%lld", (long long)ts);
    rc = simple_request(a, addr, codes[kind], &r, "topic", topic, "queueId", q, "timestamp",
                        kind == ADM_OFF_BY_TIME ? t : NULL, NULL);
    if (rc)
        return rc;
    v = proto_ext_get(&r.cmd, "offset");
    off = v ? strtoll(v, &end, 10) : 0;
    if (!v || *end) {
        seterr(a, "broker %s: offset reply without a numeric offset", addr);
        adm_reply_free(&r);
        return SPK_EFORMAT;
    }
    adm_reply_free(&r);
    *out = off;
    return 0;
}

void
adm_offsets_free(struct adm_offsets *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].broker);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

int
adm_reset_offset(struct adm *a, const char *addr, const char *topic, const char *group, int64_t ts,
                 int force, int32_t qid, int64_t offset, struct adm_offsets *out)
{
    struct adm_reply r;
    const cJSON *e;
    const char *n;
    cJSON *j;
    char tsb[24], qb[16], ob[24];
    int rc;

    snprintf(tsb, sizeof(tsb), "%lld", (long long)ts);
    snprintf(qb, sizeof(qb), "%d", (int)qid);
    snprintf(ob, sizeof(ob), "%lld", (long long)offset);
    rc = simple_request(a, addr, RQ_INVOKE_BROKER_TO_RESET_OFFSET, &r, "topic", topic, "group",
                        group, "timestamp", tsb, "isForce", force ? "true" : "false", "queueId", qb,
                        "offset", offset >= 0 ? ob : NULL, NULL);
    if (rc)
        return rc;
    n = proto_ext_get(&r.cmd, "notifiedConsumers");
    if (n)
        out->notified += strtoll(n, NULL, 10);
    j = body_json(a, "INVOKE_BROKER_TO_RESET_OFFSET", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "offsetTable"))
    {
        struct adm_queue_offset *v;
        char *broker, *t;
        int32_t q;
        if (!cJSON_IsNumber(e) || (rc = mq_from_key(e->string, &broker, &q, &t)) == SPK_EFORMAT) {
            rc = 0;
            continue;
        }
        if (rc)
            break;
        free(t);
        v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v) {
            free(broker);
            rc = -ENOMEM;
            break;
        }
        out->v = v;
        v[out->n].broker = broker;
        v[out->n].qid = q;
        v[out->n].offset = (int64_t)e->valuedouble;
        out->n++;
    }
    cJSON_Delete(j);
    if (rc)
        seterr(a, "out of memory");
    return rc;
}

/* Broker: connections --------------------------------------------------------------------- */

void
adm_conns_free(struct adm_conns *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].client_id);
        free(c->v[i].client_addr);
        free(c->v[i].language);
    }
    free(c->v);
    for (size_t i = 0; i < c->nsubs; i++) {
        free(c->subs[i].topic);
        free(c->subs[i].expr);
    }
    free(c->subs);
    free(c->consume_type);
    free(c->message_model);
    free(c->consume_from_where);
    memset(c, 0, sizeof(*c));
}

static int
conns_from(const cJSON *j, struct adm_conns *out)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "connectionSet"))
    {
        struct adm_conn *v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        out->v = v;
        v += out->n;
        v->client_id = xstrdup(jstr(e, "clientId"));
        v->client_addr = xstrdup(jstr(e, "clientAddr"));
        v->language = xstrdup(jstr(e, "language"));
        v->version = (int32_t)jnum(e, "version", 0);
        out->n++;
        if (!v->client_id || !v->client_addr || !v->language)
            return -ENOMEM;
    }
    return 0;
}

/* Replaces *dst with a copy of <s> when <s> is not NULL. */
static int
set_str(char **dst, const char *s)
{
    char *c;

    if (!s)
        return 0;
    if (!(c = strdup(s)))
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

int
adm_consumer_conns(struct adm *a, const char *addr, const char *group, struct adm_conns *out)
{
    struct adm_reply r;
    const cJSON *e;
    cJSON *j;
    int rc =
        simple_request(a, addr, RQ_GET_CONSUMER_CONNECTION_LIST, &r, "consumerGroup", group, NULL);

    if (rc)
        return rc;
    j = body_json(a, "GET_CONSUMER_CONNECTION_LIST", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = conns_from(j, out);
    if (!rc)
        rc = set_str(&out->consume_type, jstr(j, "consumeType"));
    if (!rc)
        rc = set_str(&out->message_model, jstr(j, "messageModel"));
    if (!rc)
        rc = set_str(&out->consume_from_where, jstr(j, "consumeFromWhere"));
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "subscriptionTable"))
    {
        const char *topic = jstr(e, "topic");
        struct adm_sub *v;
        size_t k;
        if (rc)
            break;
        if (!topic)
            topic = e->string;
        if (!topic)
            continue;
        for (k = 0; k < out->nsubs && strcmp(out->subs[k].topic, topic) != 0; k++)
            ;
        if (k < out->nsubs)
            continue;
        v = realloc(out->subs, (out->nsubs + 1) * sizeof(*v));
        if (!v) {
            rc = -ENOMEM;
            break;
        }
        out->subs = v;
        v += out->nsubs++;
        v->topic = xstrdup(topic);
        v->expr = xstrdup(jstr(e, "subString"));
        if (!v->topic || !v->expr)
            rc = -ENOMEM;
    }
    cJSON_Delete(j);
    if (rc)
        seterr(a, "out of memory");
    return rc;
}

int
adm_producer_conns(struct adm *a, const char *addr, const char *group, struct adm_conns *out)
{
    struct adm_reply r;
    cJSON *j;
    int rc =
        simple_request(a, addr, RQ_GET_PRODUCER_CONNECTION_LIST, &r, "producerGroup", group, NULL);

    if (rc)
        return rc;
    j = body_json(a, "GET_PRODUCER_CONNECTION_LIST", &r);
    adm_reply_free(&r);
    if (!j)
        return SPK_EFORMAT;
    rc = conns_from(j, out);
    cJSON_Delete(j);
    if (rc)
        seterr(a, "out of memory");
    return rc;
}

/* Messages -------------------------------------------------------------------------------- */

static void
msg_free(struct adm_msg *m)
{
    free(m->topic);
    free(m->body);
    for (size_t i = 0; i < m->nprops; i++) {
        free(m->props[i].name);
        free(m->props[i].val);
    }
    free(m->props);
}

void
adm_msgs_free(struct adm_msgs *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        msg_free(&m->v[i]);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

const char *
adm_msg_prop(const struct adm_msg *m, const char *name)
{
    for (size_t i = m->nprops; i-- > 0;)
        if (strcmp(m->props[i].name, name) == 0)
            return m->props[i].val;
    return NULL;
}

const char *
adm_msg_id(const struct adm_msg *m)
{
    const char *u = adm_msg_prop(m, "UNIQ_KEY");

    return u ? u : m->offset_id;
}

/* "ip:port" of a host field of <len> bytes (4 or 16). */
static void
fmt_host(const uint8_t *ip, int len, int32_t port, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];

    if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, ip, buf, sizeof(buf)))
        snprintf(buf, sizeof(buf), "?");
    snprintf(out, outlen, len == 4 ? "%s:%d" : "[%s]:%d", buf, (int)port);
}

/* Upper-case hex of the store host, port and CommitLog offset (PROTOCOL.md 4.7). */
static void
fmt_offset_id(const uint8_t *ip, int len, int32_t port, int64_t phys, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t raw[28];
    size_t n = 0;

    memcpy(raw, ip, (size_t)len);
    n = (size_t)len;
    be_put32(raw + n, (uint32_t)port);
    n += 4;
    be_put64(raw + n, (uint64_t)phys);
    n += 8;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Inflates a zlib body; 0 with a new buffer, or -1 (kept compressed). */
static int
inflate_body(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    size_t cap = len * 4 + 256;
    uint8_t *buf = NULL;
    z_stream zs;
    int zrc;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        uint8_t *nb;
        if (cap > BODY_INFLATE_MAX)
            cap = BODY_INFLATE_MAX;
        nb = realloc(buf, cap);
        if (!nb)
            break;
        buf = nb;
        zs.next_out = buf + zs.total_out;
        zs.avail_out = (uInt)(cap - zs.total_out);
        zrc = inflate(&zs, Z_NO_FLUSH);
        if (zrc == Z_STREAM_END) {
            *out = buf;
            *out_len = zs.total_out;
            inflateEnd(&zs);
            return 0;
        }
        if ((zrc != Z_OK && zrc != Z_BUF_ERROR) || cap == BODY_INFLATE_MAX ||
            (zrc == Z_BUF_ERROR && zs.avail_in == 0))
            break;
        cap *= 2;
    }
    inflateEnd(&zs);
    free(buf);
    return -1;
}

/* Parses properties with Java's rules into m->props. */
static int
parse_props(struct adm_msg *m, const char *props, size_t len)
{
    const char *name, *val;
    size_t pos = 0, nl, vl;

    while (proto_props_next(props, len, &pos, &name, &nl, &val, &vl)) {
        struct adm_prop *v = realloc(m->props, (m->nprops + 1) * sizeof(*v));
        if (!v)
            return -ENOMEM;
        m->props = v;
        v += m->nprops;
        v->name = strndup(name, nl);
        v->val = strndup(val, vl);
        if (!v->name || !v->val) {
            free(v->name);
            free(v->val);
            return -ENOMEM;
        }
        m->nprops++;
    }
    return 0;
}

/*
 * Decodes the record at p[0..avail); *used = its size. The structure is
 * checked by the store's record parser (INV-3: it reads nothing outside
 * the buffer); CRCs are not, so a damaged record can still be shown.
 */
static int
decode_one(const uint8_t *p, size_t avail, struct adm_msg *m, size_t *used)
{
    struct rec_view v;
    const char *why = NULL;
    int rl;

    memset(m, 0, sizeof(*m));
    rl = rec_parse(p, avail, REC_ANY_POS, REC_CHECK_NONE, &v, &why);
    if (rl <= 0)
        return SPK_EFORMAT;
    m->store_size = (int32_t)v.total;
    m->body_crc = v.body_crc;
    m->queue_id = v.queue_id;
    m->flag = v.flag;
    m->queue_off = (int64_t)v.queue_off;
    m->phys_off = (int64_t)v.phys_off;
    m->sysflag = v.sysflag;
    m->born_ts = v.born_ts;
    m->store_ts = v.store_ts;
    m->reconsume_times = v.reconsume_times;
    m->prepared_tx_off = v.prepared_tx_offset;
    m->topic = strndup(v.topic, v.topic_len);
    if (!m->topic || parse_props(m, v.props, v.props_len) != 0)
        return -ENOMEM;
    if ((m->sysflag & MSG_SYS_COMPRESSED) && v.body_len > 0) {
        int ctype = (m->sysflag >> 8) & 0x7;
        if ((ctype == 0 || ctype == 3) &&
            inflate_body(v.body, v.body_len, &m->body, &m->body_len) == 0)
            m->body_compressed = 1;
        else
            m->body_compressed = 2;
    }
    if (m->body_compressed != 1) {
        m->body = malloc(v.body_len ? v.body_len : 1);
        if (!m->body)
            return -ENOMEM;
        memcpy(m->body, v.body, v.body_len);
        m->body_len = v.body_len;
    }
    fmt_host(v.born_host, v.born_host_len, v.born_port, m->born_host, sizeof(m->born_host));
    fmt_host(v.store_host, v.store_host_len, v.store_port, m->store_host, sizeof(m->store_host));
    fmt_offset_id(v.store_host, v.store_host_len, v.store_port, m->phys_off, m->offset_id);
    *used = (size_t)rl;
    return 0;
}

int
adm_msgs_decode(const uint8_t *buf, size_t len, struct adm_msgs *out)
{
    size_t pos = 0;

    while (pos < len) {
        struct adm_msg m, *v;
        size_t used = 0;
        int rc = decode_one(buf + pos, len - pos, &m, &used);
        if (rc) {
            msg_free(&m);
            return rc;
        }
        v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v) {
            msg_free(&m);
            return -ENOMEM;
        }
        out->v = v;
        v[out->n++] = m;
        pos += used;
    }
    return 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
adm_offset_id_decode(const char *id, char *addr, size_t addrlen, int64_t *phys_off)
{
    size_t n = strlen(id), iplen;
    uint8_t raw[28];
    uint32_t port;

    if (n != 32 && n != 56)
        return SPK_EFORMAT;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(id[2 * i]), lo = hexval(id[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return SPK_EFORMAT;
        raw[i] = (uint8_t)(hi << 4 | lo);
    }
    iplen = n == 32 ? 4 : 16;
    port = be_get32(raw + iplen);
    if (port == 0 || port > 65535)
        return SPK_EFORMAT;
    fmt_host(raw, (int)iplen, (int32_t)port, addr, addrlen);
    *phys_off = (int64_t)be_get64(raw + iplen + 4);
    return *phys_off < 0 ? SPK_EFORMAT : 0;
}

int
adm_view_message(struct adm *a, const char *addr, int64_t phys_off, struct adm_msgs *out)
{
    struct adm_reply r;
    char ob[24];
    int rc;

    snprintf(ob, sizeof(ob), "%lld", (long long)phys_off);
    rc = simple_request(a, addr, RQ_VIEW_MESSAGE_BY_ID, &r, "offset", ob, NULL);
    if (rc)
        return rc;
    rc = adm_msgs_decode(r.cmd.body, r.cmd.body_len, out);
    adm_reply_free(&r);
    if (rc)
        seterr(a, "broker %s: the message at offset %lld does not decode", addr,
               (long long)phys_off);
    return rc;
}

/* 1 when the space-separated list <keys> holds <key>. */
static int
keys_have(const char *keys, const char *key)
{
    size_t kl = strlen(key);

    while (keys && *keys) {
        size_t n = strcspn(keys, " ");
        if (n == kl && memcmp(keys, key, n) == 0)
            return 1;
        keys += n;
        keys += strspn(keys, " ");
    }
    return 0;
}

int
adm_query_message(struct adm *a, const char *addr, const char *topic, const char *key, int unique,
                  int32_t max_n, int64_t begin, int64_t end, struct adm_msgs *out)
{
    struct adm_msgs got = {NULL, 0};
    struct proto_reply req;
    struct adm_reply r;
    int rc;

    proto_reply_init(&req, RQ_QUERY_MESSAGE);
    proto_reply_ext(&req, "topic", "%s", topic);
    proto_reply_ext(&req, "key", "%s", key);
    proto_reply_ext(&req, "maxNum", "%d", (int)max_n);
    proto_reply_ext(&req, "beginTimestamp", "%lld", (long long)begin);
    proto_reply_ext(&req, "endTimestamp", "%lld", (long long)end);
    proto_reply_ext(&req, "_UNIQUE_KEY_QUERY", "%s", unique ? "true" : "false");
    rc = adm_call(a, addr, &req, &r);
    proto_reply_free(&req);
    if (rc)
        return rc;
    if (r.cmd.code == ADM_RS_QUERY_NOT_FOUND) {
        adm_reply_free(&r);
        seterr(a, "broker %s has no message with %s '%s' in topic '%s'", addr,
               unique ? "message id" : "key", key, topic);
        return SPK_ENOTFOUND;
    }
    if (r.cmd.code != 0) {
        a->ad_code = r.cmd.code;
        seterr(a, "broker %s answered %s (%d): %s", addr, adm_code_name(r.cmd.code),
               (int)r.cmd.code, r.cmd.remark ? r.cmd.remark : "no remark");
        adm_reply_free(&r);
        return SPK_EBROKER;
    }
    rc = adm_msgs_decode(r.cmd.body, r.cmd.body_len, &got);
    adm_reply_free(&r);
    if (rc) {
        adm_msgs_free(&got);
        seterr(a, "broker %s: a queried message does not decode", addr);
        return rc;
    }
    /* The index matches hashes; keep what really has the key (Java's client does too). */
    for (size_t i = 0; i < got.n; i++) {
        struct adm_msg *m = &got.v[i];
        const char *u = adm_msg_prop(m, "UNIQ_KEY");
        int match = strcmp(m->topic, topic) == 0 &&
                    (unique ? (u && strcmp(u, key) == 0) : keys_have(adm_msg_prop(m, "KEYS"), key));
        struct adm_msg *v;
        if (!match) {
            msg_free(m);
            continue;
        }
        v = realloc(out->v, (out->n + 1) * sizeof(*v));
        if (!v) {
            for (size_t k = i; k < got.n; k++)
                msg_free(&got.v[k]);
            free(got.v);
            seterr(a, "out of memory");
            return -ENOMEM;
        }
        out->v = v;
        v[out->n++] = *m;
    }
    free(got.v);
    return 0;
}

void
adm_pull_free(struct adm_pull *p)
{
    if (p)
        adm_msgs_free(&p->msgs);
}

/* 1 when message <m> passes the tag expression <expr> ("*", "A || B"). */
static int
tags_match(const char *expr, const struct adm_msg *m)
{
    const char *tag = adm_msg_prop(m, "TAGS"), *p = expr;
    size_t tl;

    while (*p == ' ')
        p++;
    if (!*p || strcmp(p, "*") == 0)
        return 1;
    if (!tag)
        return 0;
    tl = strlen(tag);
    while (*p) {
        const char *e = strstr(p, "||"), *s = p, *t;
        t = e ? e : p + strlen(p);
        while (s < t && (*s == ' ' || *s == '\t'))
            s++;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == tl && memcmp(s, tag, tl) == 0)
            return 1;
        if (!e)
            break;
        p = e + 2;
    }
    return 0;
}

int
adm_pull(struct adm *a, const char *addr, const char *group, const char *topic, int32_t qid,
         int64_t offset, int32_t max_n, const char *expr, struct adm_pull *out)
{
    struct proto_reply req;
    struct adm_reply r;
    struct adm_pull p;
    const char *v;
    int rc;

    memset(&p, 0, sizeof(p));
    proto_reply_init(&req, RQ_PULL_MESSAGE);
    proto_reply_ext(&req, "consumerGroup", "%s", group);
    proto_reply_ext(&req, "topic", "%s", topic);
    proto_reply_ext(&req, "queueId", "%d", (int)qid);
    proto_reply_ext(&req, "queueOffset", "%lld", (long long)offset);
    proto_reply_ext(&req, "maxMsgNums", "%d", (int)max_n);
    /* Subscription carried in the request; no commit, no suspension. */
    proto_reply_ext(&req, "sysFlag", "%d", PULL_SYS_SUBSCRIPTION);
    proto_reply_ext(&req, "commitOffset", "0");
    proto_reply_ext(&req, "suspendTimeoutMillis", "0");
    proto_reply_ext(&req, "subscription", "%s", expr ? expr : "*");
    proto_reply_ext(&req, "subVersion", "0");
    proto_reply_ext(&req, "expressionType", "TAG");
    rc = adm_call(a, addr, &req, &r);
    proto_reply_free(&req);
    if (rc)
        return rc;
    p.code = r.cmd.code;
    if (p.code != ADM_RS_SUCCESS && p.code != ADM_RS_PULL_NOT_FOUND &&
        p.code != ADM_RS_PULL_RETRY_IMMEDIATELY && p.code != ADM_RS_PULL_OFFSET_MOVED) {
        a->ad_code = p.code;
        seterr(a, "broker %s answered %s (%d): %s", addr, adm_code_name(p.code), (int)p.code,
               r.cmd.remark ? r.cmd.remark : "no remark");
        adm_reply_free(&r);
        return SPK_EBROKER;
    }
    v = proto_ext_get(&r.cmd, "nextBeginOffset");
    p.next_begin = v ? strtoll(v, NULL, 10) : offset;
    v = proto_ext_get(&r.cmd, "minOffset");
    p.min_off = v ? strtoll(v, NULL, 10) : 0;
    v = proto_ext_get(&r.cmd, "maxOffset");
    p.max_off = v ? strtoll(v, NULL, 10) : 0;
    if (p.code == ADM_RS_SUCCESS) {
        struct adm_msgs all = {NULL, 0};
        rc = adm_msgs_decode(r.cmd.body, r.cmd.body_len, &all);
        if (rc) {
            adm_msgs_free(&all);
            adm_reply_free(&r);
            seterr(a, "broker %s: a pulled message does not decode", addr);
            return rc;
        }
        /* The broker filters by tag hash; equal hashes of different tags are dropped here. */
        for (size_t i = 0; i < all.n; i++) {
            if (tags_match(expr ? expr : "*", &all.v[i]))
                all.v[p.msgs.n++] = all.v[i];
            else
                msg_free(&all.v[i]);
        }
        p.msgs.v = all.v;
        if (p.msgs.n == 0) {
            free(all.v);
            p.msgs.v = NULL;
        }
    }
    adm_reply_free(&r);
    *out = p;
    return 0;
}
