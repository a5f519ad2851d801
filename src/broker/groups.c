/*
 * groups.c - the subscription group table (see groups.h for the contract
 * and invariants).
 *
 * An array of entry pointers sorted by name, as in topics.c: lookups are
 * a binary search and the file comes out in name order (INV-3). Groups
 * are configured by hand, so there are few, and every change is written
 * at once.
 */
#include "broker/groups.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "store/storeio.h"

#define GROUPS_FILE "subscriptionGroup.json"
#define DEFAULT_RETRY_POLICY "{\"type\":\"CUSTOMIZED\"}"

struct group_entry {
    struct group_config ge_gc;
    char *ge_policy; /* canonical JSON object text, or NULL for the default */
    char *ge_attrs;  /* canonical JSON object text, or NULL for {} */
};

struct groups {
    pthread_mutex_t gr_mu;
    struct group_entry **gr_ents; /* sorted by ge_gc.name (strcmp) */
    size_t gr_n, gr_cap;
    int64_t gr_dv_counter, gr_dv_state, gr_dv_timestamp;
    char gr_path[PATH_MAX];
};

void
group_config_defaults(struct group_config *gc, const char *name)
{
    memset(gc, 0, sizeof(*gc));
    snprintf(gc->name, sizeof(gc->name), "%s", name ? name : "");
    gc->consume_enable = 1;
    gc->consume_from_min = 1;
    gc->consume_broadcast = 1;
    gc->notify_ids_changed = 1;
    gc->retry_queues = 1;
    gc->retry_max = GROUP_DEFAULT_RETRY_MAX;
    gc->consume_timeout_min = 15;
    gc->which_broker_slowly = 1;
}

/* ------------------------------------------------------------------ */
/* The sorted array                                                    */
/* ------------------------------------------------------------------ */

/* 1 and *pos = index of <name>, or 0 and *pos = where it would go. */
static int
find(const struct groups *g, const char *name, size_t *pos)
{
    size_t lo = 0, hi = g->gr_n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->gr_ents[mid]->ge_gc.name, name);
        if (c == 0) {
            *pos = mid;
            return 1;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return 0;
}

static void
entry_free(struct group_entry *e)
{
    if (e) {
        free(e->ge_policy);
        free(e->ge_attrs);
        free(e);
    }
}

/* Makes room for one more pointer, so that the insert cannot fail. */
static int
reserve_one(struct groups *g)
{
    struct group_entry **p;
    size_t cap;

    if (g->gr_n < g->gr_cap)
        return 0;
    cap = g->gr_cap ? g->gr_cap * 2 : 16;
    p = realloc(g->gr_ents, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    g->gr_ents = p;
    g->gr_cap = cap;
    return 0;
}

static void
insert_at(struct groups *g, size_t pos, struct group_entry *e)
{
    memmove(g->gr_ents + pos + 1, g->gr_ents + pos, (g->gr_n - pos) * sizeof(*g->gr_ents));
    g->gr_ents[pos] = e;
    g->gr_n++;
}

static struct group_entry *
remove_at(struct groups *g, size_t pos)
{
    struct group_entry *e = g->gr_ents[pos];

    memmove(g->gr_ents + pos, g->gr_ents + pos + 1, (g->gr_n - pos - 1) * sizeof(*g->gr_ents));
    g->gr_n--;
    return e;
}

/* ------------------------------------------------------------------ */
/* JSON out                                                            */
/* ------------------------------------------------------------------ */

static const char *
tf(int v)
{
    return v ? "true" : "false";
}

static void
put_group_json(struct sbuf *b, const struct group_entry *e)
{
    const struct group_config *gc = &e->ge_gc;

    sb_printf(b,
              "{\"attributes\":%s,\"brokerId\":%lld,\"consumeBroadcastEnable\":%s,"
              "\"consumeEnable\":%s,\"consumeFromMinEnable\":%s,\"consumeMessageOrderly\":%s,"
              "\"consumeTimeoutMinute\":%d,\"groupName\":",
              e->ge_attrs ? e->ge_attrs : "{}", (long long)gc->broker_id, tf(gc->consume_broadcast),
              tf(gc->consume_enable), tf(gc->consume_from_min), tf(gc->consume_orderly),
              (int)gc->consume_timeout_min);
    sb_json_cstr(b, gc->name);
    sb_printf(b,
              ",\"groupRetryPolicy\":%s,\"groupSysFlag\":%d,"
              "\"notifyConsumerIdsChangedEnable\":%s,\"retryMaxTimes\":%d,"
              "\"retryQueueNums\":%d,\"whichBrokerWhenConsumeSlowly\":%lld}",
              e->ge_policy ? e->ge_policy : DEFAULT_RETRY_POLICY, (int)gc->group_sysflag,
              tf(gc->notify_ids_changed), (int)gc->retry_max, (int)gc->retry_queues,
              (long long)gc->which_broker_slowly);
}

/* The caller holds gr_mu. */
static char *
serialize_locked(const struct groups *g, size_t *len)
{
    struct sbuf b = SBUF_INIT;

    sb_printf(&b,
              "{\"dataVersion\":{\"counter\":%lld,\"stateVersion\":%lld,\"timestamp\":%lld},"
              "\"forbiddenTable\":{},\"subscriptionGroupTable\":{",
              (long long)g->gr_dv_counter, (long long)g->gr_dv_state,
              (long long)g->gr_dv_timestamp);
    for (size_t i = 0; i < g->gr_n; i++) {
        if (i > 0)
            sb_putc(&b, ',');
        sb_json_cstr(&b, g->gr_ents[i]->ge_gc.name);
        sb_putc(&b, ':');
        put_group_json(&b, g->gr_ents[i]);
    }
    sb_puts(&b, "}}");
    return sb_detach(&b, len);
}

/*
 * The caller holds gr_mu and has changed the table: bumps the data
 * version and writes the file. On failure the version is restored and
 * the caller undoes its change (INV-1, INV-2).
 */
static int
commit_locked(struct groups *g)
{
    int64_t counter = g->gr_dv_counter, ts = g->gr_dv_timestamp;
    size_t len;
    char *json;
    int rc;

    g->gr_dv_counter++;
    g->gr_dv_timestamp = spk_wall_ms();
    json = serialize_locked(g, &len);
    /* sealed (config.h): a flipped bit is found at the next load */
    rc = json ? cfg_json_seal(&json, &len) : -ENOMEM;
    if (rc == 0)
        rc = sio_write_file_atomic(g->gr_path, json, len);
    free(json);
    if (rc != 0) {
        spk_log(SPK_LOG_ERROR, "groups", "cannot write %s: %s", g->gr_path, spk_strerror(rc));
        g->gr_dv_counter = counter;
        g->gr_dv_timestamp = ts;
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* JSON in                                                             */
/* ------------------------------------------------------------------ */

static int
name_ok(const char *name, char *err, size_t errlen)
{
    size_t n = strlen(name);

    if (n == 0 || n > GROUP_NAME_MAX) {
        snprintf(err, errlen, "groupName must be 1..%d bytes", GROUP_NAME_MAX);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '%' || c == '|' || c == '_' || c == '-')) {
            snprintf(err, errlen,
                     "groupName '%.255s' contains '%c'; use only letters, digits, %%, |, _ and -",
                     name, c);
            return 0;
        }
    }
    return 1;
}

/* An optional boolean member; fastjson also writes and reads "true"/"false". */
static int
get_bool(const cJSON *obj, const char *key, int *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (!it || cJSON_IsNull(it))
        return 0;
    if (cJSON_IsBool(it)) {
        *out = cJSON_IsTrue(it);
        return 0;
    }
    if (cJSON_IsString(it) &&
        (strcmp(it->valuestring, "true") == 0 || strcmp(it->valuestring, "false") == 0)) {
        *out = strcmp(it->valuestring, "true") == 0;
        return 0;
    }
    snprintf(err, errlen, "%s is not true or false", key);
    return SPK_EFORMAT;
}

/* An optional integral member in [lo, hi]; numbers as strings are accepted too. */
static int
get_i64(const cJSON *obj, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err,
        size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    double d;

    if (!it || cJSON_IsNull(it))
        return 0;
    if (cJSON_IsString(it)) {
        char *end;
        long long v;
        errno = 0;
        v = strtoll(it->valuestring, &end, 10);
        if (errno || end == it->valuestring || *end || v < lo || v > hi)
            goto bad;
        *out = v;
        return 0;
    }
    if (!cJSON_IsNumber(it))
        goto bad;
    d = it->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
        goto bad;
    *out = (int64_t)d;
    return 0;
bad:
    snprintf(err, errlen, "%s must be an integer from %lld to %lld", key, (long long)lo,
             (long long)hi);
    return SPK_EFORMAT;
}

/* An optional object member as canonical JSON text in *out (NULL when absent). */
static int
get_object_text(const cJSON *obj, const char *key, char **out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    *out = NULL;
    if (!it || cJSON_IsNull(it))
        return 0;
    if (!cJSON_IsObject(it)) {
        snprintf(err, errlen, "%s is not a JSON object", key);
        return SPK_EFORMAT;
    }
    *out = cJSON_PrintUnformatted(it);
    return *out ? 0 : -ENOMEM;
}

/*
 * Builds a new entry from one SubscriptionGroupConfig object. <name> is
 * the table key when loading a file (NULL for a request body, where the
 * groupName member is the name). Returns 0, SPK_EFORMAT or -ENOMEM.
 */
static int
entry_from_json(const cJSON *o, const char *name, struct group_entry **out, char *err,
                size_t errlen)
{
    const cJSON *gn = cJSON_GetObjectItemCaseSensitive(o, "groupName");
    struct group_entry *e;
    struct group_config *gc;
    int64_t v;
    int rc;

    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "a subscription group is not a JSON object");
        return SPK_EFORMAT;
    }
    if (cJSON_IsString(gn))
        name = gn->valuestring;
    if (!name) {
        snprintf(err, errlen, "groupName is missing");
        return SPK_EFORMAT;
    }
    if (!name_ok(name, err, errlen))
        return SPK_EFORMAT;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    gc = &e->ge_gc;
    group_config_defaults(gc, name);
#define BOOL(key, field)                                                                           \
    do {                                                                                           \
        if ((rc = get_bool(o, key, &gc->field, err, errlen)) != 0)                                 \
            goto fail;                                                                             \
    } while (0)
#define INT(key, lo, hi, field)                                                                    \
    do {                                                                                           \
        v = gc->field;                                                                             \
        if ((rc = get_i64(o, key, lo, hi, &v, err, errlen)) != 0)                                  \
            goto fail;                                                                             \
        gc->field = (__typeof__(gc->field))v;                                                      \
    } while (0)
    BOOL("consumeEnable", consume_enable);
    BOOL("consumeFromMinEnable", consume_from_min);
    BOOL("consumeBroadcastEnable", consume_broadcast);
    BOOL("consumeMessageOrderly", consume_orderly);
    BOOL("notifyConsumerIdsChangedEnable", notify_ids_changed);
    INT("retryQueueNums", 0, 65535, retry_queues);
    INT("retryMaxTimes", -1, INT32_MAX, retry_max);
    INT("groupSysFlag", INT32_MIN, INT32_MAX, group_sysflag);
    INT("consumeTimeoutMinute", 0, INT32_MAX, consume_timeout_min);
    INT("brokerId", 0, 1024, broker_id);
    INT("whichBrokerWhenConsumeSlowly", 0, 1024, which_broker_slowly);
#undef BOOL
#undef INT
    rc = get_object_text(o, "groupRetryPolicy", &e->ge_policy, err, errlen);
    if (rc == 0)
        rc = get_object_text(o, "attributes", &e->ge_attrs, err, errlen);
    if (rc != 0)
        goto fail;
    *out = e;
    return 0;
fail:
    entry_free(e);
    return rc;
}

struct load_ctx {
    struct groups *g;
    const char *path;
};

/* fjson_decode_fn for subscriptionGroup.json: builds the whole table, then swaps it in. */
static int
decode_file(void *arg, const cJSON *root, char *err, size_t errlen)
{
    struct load_ctx *x = arg;
    struct groups *g = x->g;
    const cJSON *tab = cJSON_GetObjectItemCaseSensitive(root, "subscriptionGroupTable");
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(root, "dataVersion");
    const cJSON *it;
    struct groups tmp;
    int rc = 0;

    if (!cJSON_IsObject(root) || (tab && !cJSON_IsNull(tab) && !cJSON_IsObject(tab))) {
        snprintf(err, errlen, "not a SubscriptionGroupWrapper object");
        return SPK_ECORRUPT;
    }
    memset(&tmp, 0, sizeof(tmp));
    cJSON_ArrayForEach(it, tab)
    {
        struct group_entry *e = NULL;
        char why[200];
        size_t pos;
        rc = entry_from_json(it, it->string, &e, why, sizeof(why));
        if (rc == -ENOMEM)
            break;
        if (rc != 0) {
            spk_log(SPK_LOG_WARN, "groups", "%s: group '%.255s' skipped: %s", x->path,
                    it->string ? it->string : "", why);
            rc = 0;
            continue;
        }
        if (find(&tmp, e->ge_gc.name, &pos)) {
            /* a repeated name: the last one wins, as in a Java map */
            entry_free(tmp.gr_ents[pos]);
            tmp.gr_ents[pos] = e;
            continue;
        }
        if (reserve_one(&tmp) != 0) {
            entry_free(e);
            rc = -ENOMEM;
            break;
        }
        insert_at(&tmp, pos, e);
    }
    if (rc != 0) {
        for (size_t i = 0; i < tmp.gr_n; i++)
            entry_free(tmp.gr_ents[i]);
        free(tmp.gr_ents);
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    g->gr_ents = tmp.gr_ents;
    g->gr_n = tmp.gr_n;
    g->gr_cap = tmp.gr_cap;
    if (cJSON_IsObject(dv)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(dv, "counter");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(dv, "stateVersion");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(dv, "timestamp");
        if (cJSON_IsNumber(c))
            g->gr_dv_counter = (int64_t)c->valuedouble;
        if (cJSON_IsNumber(s))
            g->gr_dv_state = (int64_t)s->valuedouble;
        if (cJSON_IsNumber(t))
            g->gr_dv_timestamp = (int64_t)t->valuedouble;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* API                                                                 */
/* ------------------------------------------------------------------ */

int
groups_open(const char *config_dir, struct groups **out, char *err, size_t errlen)
{
    struct groups *g = calloc(1, sizeof(*g));
    struct load_ctx x;
    int rc;

    if (!g)
        return -ENOMEM;
    if (snprintf(g->gr_path, sizeof(g->gr_path), "%s/%s", config_dir, GROUPS_FILE) >=
        (int)sizeof(g->gr_path)) {
        snprintf(err, errlen, "%s/%s: path too long", config_dir, GROUPS_FILE);
        free(g);
        return -ENAMETOOLONG;
    }
    g->gr_dv_timestamp = spk_wall_ms();
    x.g = g;
    x.path = g->gr_path;
    rc = cfg_json_load(g->gr_path, decode_file, &x, NULL, err, errlen);
    if (rc != 0) {
        free(g);
        return rc;
    }
    pthread_mutex_init(&g->gr_mu, NULL);
    *out = g;
    return 0;
}

void
groups_close(struct groups *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->gr_n; i++)
        entry_free(g->gr_ents[i]);
    free(g->gr_ents);
    pthread_mutex_destroy(&g->gr_mu);
    free(g);
}

int
groups_get(struct groups *g, const char *name, struct group_config *out)
{
    size_t pos;
    int rc = -ENOENT;

    pthread_mutex_lock(&g->gr_mu);
    if (find(g, name, &pos)) {
        *out = g->gr_ents[pos]->ge_gc;
        rc = 0;
    }
    pthread_mutex_unlock(&g->gr_mu);
    return rc;
}

int
groups_put_json(struct groups *g, const char *json, size_t len, struct group_config *out, char *err,
                size_t errlen)
{
    struct group_entry *e = NULL, *old = NULL;
    cJSON *root = fjson_parse(json, len);
    size_t pos;
    int rc;

    if (!root) {
        snprintf(err, errlen, "the body is not SubscriptionGroupConfig JSON");
        return SPK_EFORMAT;
    }
    rc = entry_from_json(root, NULL, &e, err, errlen);
    cJSON_Delete(root);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&g->gr_mu);
    if (find(g, e->ge_gc.name, &pos)) {
        old = g->gr_ents[pos];
        g->gr_ents[pos] = e;
    } else if ((rc = reserve_one(g)) == 0) {
        insert_at(g, pos, e);
    }
    if (rc == 0) {
        rc = commit_locked(g);
        if (rc != 0) {
            /* undo (INV-1) */
            if (old)
                g->gr_ents[pos] = old;
            else
                remove_at(g, pos);
            old = e;
        } else if (out) {
            *out = e->ge_gc;
        }
    } else {
        old = e;
    }
    pthread_mutex_unlock(&g->gr_mu);
    entry_free(old);
    if (rc != 0 && rc != -ENOMEM)
        snprintf(err, errlen, "writing %s failed: %s", GROUPS_FILE, spk_strerror(rc));
    return rc;
}

int
groups_delete(struct groups *g, const char *name)
{
    struct group_entry *e = NULL;
    size_t pos;
    int rc = -ENOENT;

    pthread_mutex_lock(&g->gr_mu);
    if (find(g, name, &pos)) {
        e = remove_at(g, pos);
        rc = commit_locked(g);
        if (rc != 0) {
            insert_at(g, pos, e); /* the slot is still allocated */
            e = NULL;
        }
    }
    pthread_mutex_unlock(&g->gr_mu);
    entry_free(e);
    return rc;
}

int32_t
groups_retry_max(struct groups *g, const char *name)
{
    struct group_config gc;

    if (!name || groups_get(g, name, &gc) != 0)
        return GROUP_DEFAULT_RETRY_MAX;
    return gc.retry_max;
}

char *
groups_serialize(struct groups *g, size_t *len)
{
    char *p;

    pthread_mutex_lock(&g->gr_mu);
    p = serialize_locked(g, len);
    pthread_mutex_unlock(&g->gr_mu);
    return p;
}

char *
groups_config_json(struct groups *g, const char *name, size_t *len)
{
    struct sbuf b = SBUF_INIT;
    size_t pos;

    pthread_mutex_lock(&g->gr_mu);
    if (find(g, name, &pos))
        put_group_json(&b, g->gr_ents[pos]);
    pthread_mutex_unlock(&g->gr_mu);
    if (b.len == 0)
        return NULL;
    return sb_detach(&b, len);
}

size_t
groups_count(struct groups *g)
{
    size_t n;

    pthread_mutex_lock(&g->gr_mu);
    n = g->gr_n;
    pthread_mutex_unlock(&g->gr_mu);
    return n;
}
