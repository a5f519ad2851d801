/*
 * topics.c - the topic configuration table (see topics.h for the
 * contract and invariants).
 *
 * The table is an array of entry pointers sorted by name: lookups are a
 * binary search, iteration and serialisation come out in name order for
 * free (INV-3), and an insert moves pointers, not 300-byte configs. Topic
 * changes are rare next to lookups, so that trade is the right one even
 * with tens of thousands of topics.
 *
 * Each entry also keeps the topic's "attributes" map (5.x, e.g.
 * message.type) as canonical JSON text, so that a file written by a Java
 * broker survives a round trip through us.
 */
#include "broker/topics.h"

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

#define TOPICS_FILE "topics.json"
#define DEFAULT_QUEUES 16 /* Java TopicConfig defaults */
#define DEFAULT_PERM (PERM_READ | PERM_WRITE)

struct topic_entry {
    struct topic_config te_tc;
    char *te_attrs; /* canonical JSON object text, or NULL for {} */
    size_t te_seq;  /* position in the file while loading (last wins) */
};

struct topics {
    pthread_mutex_t tp_mu;
    /*
     * Creations the broker makes on its own (auto-create, %RETRY% and
     * %DLQ% topics) are written later by topics_persist(): they happen on
     * the event loop, where an fsync per new topic would stall every
     * client. tp_gen counts changes; tp_saved_gen (under tp_file_mu, which
     * serialises writers) is the change the file holds, so an older
     * snapshot never overwrites a newer file.
     */
    pthread_mutex_t tp_file_mu;
    uint64_t tp_gen, tp_saved_gen;
    int tp_dirty;
    struct topic_entry **tp_ents; /* sorted by te_tc.name (strcmp) */
    size_t tp_n, tp_cap;
    int64_t tp_dv_counter, tp_dv_state, tp_dv_timestamp;
    int tp_auto_create;
    char tp_path[PATH_MAX];
    char tp_cluster[TOPIC_NAME_MAX + 1];
    char tp_broker[TOPIC_NAME_MAX + 1];
};

/* ------------------------------------------------------------------ */
/* The sorted array                                                    */
/* ------------------------------------------------------------------ */

/* 1 and *pos = index of <name>, or 0 and *pos = where it would go. */
static int
find(const struct topics *t, const char *name, size_t *pos)
{
    size_t lo = 0, hi = t->tp_n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->tp_ents[mid]->te_tc.name, name);
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

/* Makes room for one more pointer, so that the insert cannot fail. */
static int
reserve_one(struct topics *t)
{
    struct topic_entry **p;
    size_t cap;

    if (t->tp_n < t->tp_cap)
        return 0;
    cap = t->tp_cap ? t->tp_cap * 2 : 64;
    p = realloc(t->tp_ents, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    t->tp_ents = p;
    t->tp_cap = cap;
    return 0;
}

static void
insert_at(struct topics *t, size_t pos, struct topic_entry *e)
{
    memmove(t->tp_ents + pos + 1, t->tp_ents + pos, (t->tp_n - pos) * sizeof(*t->tp_ents));
    t->tp_ents[pos] = e;
    t->tp_n++;
}

static struct topic_entry *
remove_at(struct topics *t, size_t pos)
{
    struct topic_entry *e = t->tp_ents[pos];

    memmove(t->tp_ents + pos, t->tp_ents + pos + 1, (t->tp_n - pos - 1) * sizeof(*t->tp_ents));
    t->tp_n--;
    return e;
}

static void
entry_free(struct topic_entry *e)
{
    if (e) {
        free(e->te_attrs);
        free(e);
    }
}

static void
clear_entries(struct topics *t)
{
    size_t i;

    for (i = 0; i < t->tp_n; i++)
        entry_free(t->tp_ents[i]);
    free(t->tp_ents);
    t->tp_ents = NULL;
    t->tp_n = t->tp_cap = 0;
}

static void
config_init(struct topic_config *tc, const char *name, int queues, int perm)
{
    memset(tc, 0, sizeof(*tc));
    snprintf(tc->name, sizeof(tc->name), "%s", name);
    tc->read_queues = tc->write_queues = queues;
    tc->perm = perm;
}

static int
name_ok(const char *name)
{
    size_t n;

    if (!name)
        return 0;
    n = strnlen(name, TOPIC_NAME_MAX + 1);
    return n > 0 && n <= TOPIC_NAME_MAX;
}

static int
config_ok(const struct topic_config *tc)
{
    return name_ok(tc->name) && tc->read_queues >= 0 && tc->read_queues <= TOPIC_QUEUES_MAX &&
           tc->write_queues >= 0 && tc->write_queues <= TOPIC_QUEUES_MAX && tc->perm >= 0 &&
           tc->perm <= 15 && tc->sysflag >= 0;
}

/* ------------------------------------------------------------------ */
/* JSON out                                                            */
/* ------------------------------------------------------------------ */

static void
put_topic_json(struct sbuf *b, const struct topic_config *tc, const char *attrs)
{
    sb_printf(b, "{\"attributes\":%s,\"order\":%s,\"perm\":%d,\"readQueueNums\":%d,",
              attrs ? attrs : "{}", tc->order ? "true" : "false", tc->perm, tc->read_queues);
    sb_printf(b, "\"topicFilterType\":\"%s\",\"topicName\":",
              tc->filter_multi_tag ? "MULTI_TAG" : "SINGLE_TAG");
    sb_json_cstr(b, tc->name);
    sb_printf(b, ",\"topicSysFlag\":%d,\"writeQueueNums\":%d}", tc->sysflag, tc->write_queues);
}

/* The caller holds tp_mu. */
static char *
serialize_locked(const struct topics *t, size_t *len)
{
    struct sbuf b = SBUF_INIT;
    size_t i;

    sb_printf(&b,
              "{\"dataVersion\":{\"counter\":%lld,\"stateVersion\":%lld,\"timestamp\":%lld},"
              "\"topicConfigTable\":{",
              (long long)t->tp_dv_counter, (long long)t->tp_dv_state,
              (long long)t->tp_dv_timestamp);
    for (i = 0; i < t->tp_n; i++) {
        const struct topic_entry *e = t->tp_ents[i];
        if (i > 0)
            sb_putc(&b, ',');
        sb_json_cstr(&b, e->te_tc.name);
        sb_putc(&b, ':');
        put_topic_json(&b, &e->te_tc, e->te_attrs);
    }
    sb_puts(&b, "}}");
    return sb_detach(&b, len);
}

/* The file's text: the table, sealed (config.h). The caller holds tp_mu. */
static char *
file_text_locked(const struct topics *t, size_t *len)
{
    char *json = serialize_locked(t, len);

    if (json && cfg_json_seal(&json, len) != 0) {
        free(json);
        json = NULL;
    }
    return json;
}

/* Writes <json> (change <gen>) unless the file already holds a newer one. */
static int
write_gen(struct topics *t, const char *json, size_t len, uint64_t gen)
{
    int rc = 0;

    pthread_mutex_lock(&t->tp_file_mu);
    if (gen > t->tp_saved_gen) {
        rc = sio_write_file_atomic(t->tp_path, json, len);
        if (rc == 0)
            t->tp_saved_gen = gen;
        else
            spk_log(SPK_LOG_ERROR, "topics", "cannot write %s: %s", t->tp_path,
                    spk_strerror(rc));
    }
    pthread_mutex_unlock(&t->tp_file_mu);
    return rc;
}

/* The caller holds tp_mu. Writes the whole table (INV-1). */
static int
persist_locked(struct topics *t)
{
    size_t len;
    char *json;
    int rc;

    json = file_text_locked(t, &len);
    if (!json)
        return -ENOMEM;
    rc = write_gen(t, json, len, t->tp_gen);
    free(json);
    if (rc == 0)
        t->tp_dirty = 0;
    return rc;
}

/*
 * Bumps the data version and persists; on failure restores the version,
 * and the caller undoes its change to the table (INV-1, INV-2).
 */
static int
commit_locked(struct topics *t, int defer)
{
    int64_t counter = t->tp_dv_counter, ts = t->tp_dv_timestamp;
    int rc;

    t->tp_dv_counter++;
    t->tp_dv_timestamp = spk_wall_ms();
    t->tp_gen++;
    if (defer) {
        t->tp_dirty = 1;
        return 0;
    }
    rc = persist_locked(t);
    if (rc != 0) {
        t->tp_dv_counter = counter;
        t->tp_dv_timestamp = ts;
        t->tp_gen--;
    }
    return rc;
}

int
topics_persist(struct topics *t)
{
    size_t len;
    char *json;
    uint64_t gen;
    int rc;

    pthread_mutex_lock(&t->tp_mu);
    if (!t->tp_dirty) {
        pthread_mutex_unlock(&t->tp_mu);
        return 0;
    }
    json = file_text_locked(t, &len);
    gen = t->tp_gen;
    pthread_mutex_unlock(&t->tp_mu);
    if (!json)
        return -ENOMEM;
    rc = write_gen(t, json, len, gen);
    free(json);
    if (rc == 0) {
        pthread_mutex_lock(&t->tp_mu);
        if (t->tp_gen == gen)
            t->tp_dirty = 0;
        pthread_mutex_unlock(&t->tp_mu);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* JSON in                                                             */
/* ------------------------------------------------------------------ */

/* An optional integral member in [lo, hi]; <def> when absent. */
static int
get_long(const cJSON *obj, const char *key, long long def, long long lo, long long hi,
         long long *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    double d;

    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(it)) {
        snprintf(err, errlen, "%s is not a number", key);
        return SPK_ECORRUPT;
    }
    d = it->valuedouble;
    /* Doubles hold every integer up to 2^53 exactly; past that we cannot
     * tell what the file said, so we do not guess. */
    if (!(d >= (double)lo && d <= (double)hi && d >= -9007199254740992.0 &&
          d <= 9007199254740992.0) ||
        d != (double)(long long)d) {
        snprintf(err, errlen, "%s out of range", key);
        return SPK_ECORRUPT;
    }
    *out = (long long)d;
    return 0;
}

static int
get_int(const cJSON *obj, const char *key, int def, int lo, int hi, int *out, char *err,
        size_t errlen)
{
    long long v;
    int rc = get_long(obj, key, def, lo, hi, &v, err, errlen);

    if (rc == 0)
        *out = (int)v;
    return rc;
}

/*
 * The attributes map as canonical text: {"k":"v",...}. Java's map is
 * Map<String,String>, and fastjson turns a non-string value into its
 * text, so we do the same rather than reject the file.
 */
static int
attrs_text(const cJSON *attrs, char **out)
{
    struct sbuf b = SBUF_INIT;
    const cJSON *it;
    int n = 0;

    *out = NULL;
    if (!attrs || cJSON_IsNull(attrs))
        return 0;
    if (!cJSON_IsObject(attrs))
        return SPK_ECORRUPT;
    sb_putc(&b, '{');
    cJSON_ArrayForEach(it, attrs)
    {
        if (n++ > 0)
            sb_putc(&b, ',');
        sb_json_cstr(&b, it->string);
        sb_putc(&b, ':');
        if (cJSON_IsString(it)) {
            sb_json_cstr(&b, it->valuestring);
        } else {
            char *s = cJSON_PrintUnformatted(it);
            if (!s) {
                sb_free(&b);
                return -ENOMEM;
            }
            sb_json_cstr(&b, s);
            cJSON_free(s);
        }
    }
    sb_putc(&b, '}');
    if (n == 0) {
        sb_free(&b);
        return 0;
    }
    *out = sb_detach(&b, NULL);
    return *out ? 0 : -ENOMEM;
}

static int
decode_topic(const cJSON *v, struct topic_entry *e, char *err, size_t errlen)
{
    struct topic_config *tc = &e->te_tc;
    const cJSON *ft;
    const cJSON *order;
    char why[128] = "";
    int rc;

    if (!cJSON_IsObject(v)) {
        snprintf(err, errlen, "topic \"%.64s\" is not an object", tc->name);
        return SPK_ECORRUPT;
    }
    /* topicName is ignored: the table key is what Java looks topics up by. */
    rc = get_int(v, "readQueueNums", DEFAULT_QUEUES, 0, TOPIC_QUEUES_MAX, &tc->read_queues, why,
                 sizeof(why));
    if (rc == 0)
        rc = get_int(v, "writeQueueNums", DEFAULT_QUEUES, 0, TOPIC_QUEUES_MAX, &tc->write_queues,
                     why, sizeof(why));
    if (rc == 0)
        rc = get_int(v, "perm", DEFAULT_PERM, 0, 15, &tc->perm, why, sizeof(why));
    if (rc == 0)
        rc = get_int(v, "topicSysFlag", 0, 0, INT_MAX, &tc->sysflag, why, sizeof(why));
    if (rc != 0)
        goto bad;
    order = cJSON_GetObjectItemCaseSensitive(v, "order");
    if (order && !cJSON_IsNull(order) && !cJSON_IsBool(order)) {
        snprintf(why, sizeof(why), "order is not a boolean");
        goto bad;
    }
    tc->order = cJSON_IsTrue(order);
    ft = cJSON_GetObjectItemCaseSensitive(v, "topicFilterType");
    if (ft && !cJSON_IsNull(ft)) {
        if (!cJSON_IsString(ft) || (strcmp(ft->valuestring, "SINGLE_TAG") != 0 &&
                                    strcmp(ft->valuestring, "MULTI_TAG") != 0)) {
            snprintf(why, sizeof(why), "topicFilterType is not SINGLE_TAG or MULTI_TAG");
            goto bad;
        }
        tc->filter_multi_tag = strcmp(ft->valuestring, "MULTI_TAG") == 0;
    }
    rc = attrs_text(cJSON_GetObjectItemCaseSensitive(v, "attributes"), &e->te_attrs);
    if (rc == -ENOMEM)
        return rc;
    if (rc != 0) {
        snprintf(why, sizeof(why), "attributes is not an object");
        goto bad;
    }
    return 0;

bad:
    snprintf(err, errlen, "topic \"%.64s\": %s", tc->name, why);
    return SPK_ECORRUPT;
}

static int
cmp_entry(const void *a, const void *b)
{
    const struct topic_entry *x = *(const struct topic_entry *const *)a;
    const struct topic_entry *y = *(const struct topic_entry *const *)b;
    int c = strcmp(x->te_tc.name, y->te_tc.name);

    if (c != 0)
        return c;
    return x->te_seq < y->te_seq ? -1 : x->te_seq > y->te_seq;
}

/*
 * fjson_decode_fn for topics.json: fills the (empty) table <arg>, or
 * leaves it empty and returns an error. Entries are appended, then sorted
 * once, so a file with many topics loads in n log n.
 */
static int
decode_file(void *arg, const cJSON *root, char *err, size_t errlen)
{
    struct topics *t = arg;
    const cJSON *table, *dv, *it;
    long long counter, state, ts;
    size_t i, w;
    int rc;

    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "not a JSON object");
        return SPK_ECORRUPT;
    }
    table = cJSON_GetObjectItemCaseSensitive(root, "topicConfigTable");
    if (!cJSON_IsObject(table)) {
        snprintf(err, errlen, "no topicConfigTable object");
        return SPK_ECORRUPT;
    }
    counter = state = 0;
    ts = spk_wall_ms();
    dv = cJSON_GetObjectItemCaseSensitive(root, "dataVersion");
    if (dv && !cJSON_IsNull(dv)) {
        if (!cJSON_IsObject(dv)) {
            snprintf(err, errlen, "dataVersion is not an object");
            return SPK_ECORRUPT;
        }
        rc = get_long(dv, "counter", 0, 0, INT64_MAX, &counter, err, errlen);
        if (rc == 0)
            rc = get_long(dv, "stateVersion", 0, INT64_MIN, INT64_MAX, &state, err, errlen);
        if (rc == 0)
            rc = get_long(dv, "timestamp", ts, INT64_MIN, INT64_MAX, &ts, err, errlen);
        if (rc != 0)
            return rc;
    }

    cJSON_ArrayForEach(it, table)
    {
        struct topic_entry *e;

        if (!name_ok(it->string)) {
            snprintf(err, errlen, "a topic name is empty or longer than %d bytes", TOPIC_NAME_MAX);
            rc = SPK_ECORRUPT;
            goto fail;
        }
        e = calloc(1, sizeof(*e));
        if (!e || reserve_one(t) != 0) {
            free(e);
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(e->te_tc.name, it->string, strlen(it->string) + 1);
        e->te_seq = t->tp_n;
        t->tp_ents[t->tp_n++] = e;
        rc = decode_topic(it, e, err, errlen);
        if (rc != 0)
            goto fail;
    }
    if (t->tp_n > 1)
        qsort(t->tp_ents, t->tp_n, sizeof(*t->tp_ents), cmp_entry);
    /* A name repeated in the file: the last one wins, as in Java's putAll. */
    for (i = w = 0; i < t->tp_n; i++) {
        if (i + 1 < t->tp_n &&
            strcmp(t->tp_ents[i]->te_tc.name, t->tp_ents[i + 1]->te_tc.name) == 0) {
            entry_free(t->tp_ents[i]);
            continue;
        }
        t->tp_ents[w++] = t->tp_ents[i];
    }
    t->tp_n = w;
    t->tp_dv_counter = counter;
    t->tp_dv_state = state;
    t->tp_dv_timestamp = ts;
    return 0;

fail:
    clear_entries(t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                      */
/* ------------------------------------------------------------------ */

/* Adds a system topic unless the file already had it (open only). */
static int
ensure_system(struct topics *t, const char *name, int queues, int perm)
{
    struct topic_entry *e;
    size_t pos;

    if (find(t, name, &pos))
        return 0;
    e = calloc(1, sizeof(*e));
    if (!e || reserve_one(t) != 0) {
        free(e);
        return -ENOMEM;
    }
    config_init(&e->te_tc, name, queues, perm);
    insert_at(t, pos, e);
    return 0;
}

static int
add_system_topics(struct topics *t, int default_queues)
{
    char reply[TOPIC_NAME_MAX + 1];
    int rc = 0;

    snprintf(reply, sizeof(reply), "%s%s", t->tp_cluster, TOPIC_REPLY_SUFFIX);
    if (t->tp_auto_create)
        rc = ensure_system(t, TOPIC_AUTO_CREATE, default_queues,
                           PERM_INHERIT | PERM_READ | PERM_WRITE);
    if (rc == 0)
        rc = ensure_system(t, TOPIC_SELF_TEST, 1, DEFAULT_PERM);
    if (rc == 0)
        rc = ensure_system(t, TOPIC_BENCHMARK, 1024, DEFAULT_PERM);
    if (rc == 0)
        rc = ensure_system(t, t->tp_cluster, DEFAULT_QUEUES, PERM_INHERIT | PERM_READ | PERM_WRITE);
    if (rc == 0)
        rc = ensure_system(t, t->tp_broker, 1, PERM_INHERIT | PERM_READ | PERM_WRITE);
    if (rc == 0)
        rc = ensure_system(t, TOPIC_OFFSET_MOVED, 1, DEFAULT_PERM);
    if (rc == 0)
        rc = ensure_system(t, TOPIC_SCHEDULE, 18, DEFAULT_PERM);
    if (rc == 0)
        rc = ensure_system(t, reply, 1, DEFAULT_PERM);
    if (rc == 0)
        rc = ensure_system(t, TOPIC_TRANS_HALF, 1, DEFAULT_PERM);
    if (rc == 0)
        rc = ensure_system(t, TOPIC_TRANS_OP_HALF, 1, DEFAULT_PERM);
    return rc;
}

int
topics_open(const char *config_dir, const char *cluster, const char *broker_name,
            int auto_create_topic_enable, int default_topic_queue_nums, struct topics **out,
            char *err, size_t errlen)
{
    static const size_t reply_len = sizeof(TOPIC_REPLY_SUFFIX) - 1;
    enum fjson_source src;
    struct topics *t;
    int rc;

    if (!name_ok(cluster) || strlen(cluster) + reply_len > TOPIC_NAME_MAX ||
        !name_ok(broker_name)) {
        snprintf(err, errlen, "cluster or broker name is empty or too long");
        return -EINVAL;
    }
    if (auto_create_topic_enable &&
        (default_topic_queue_nums < 1 || default_topic_queue_nums > TOPIC_QUEUES_MAX)) {
        snprintf(err, errlen, "defaultTopicQueueNums must be 1..%d", TOPIC_QUEUES_MAX);
        return -EINVAL;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (snprintf(t->tp_path, sizeof(t->tp_path), "%s/%s", config_dir, TOPICS_FILE) >=
        (int)sizeof(t->tp_path)) {
        snprintf(err, errlen, "%s: path too long", config_dir);
        free(t);
        return -ENAMETOOLONG;
    }
    pthread_mutex_init(&t->tp_file_mu, NULL);
    rc = pthread_mutex_init(&t->tp_mu, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "mutex: %s", spk_strerror(-rc));
        free(t);
        return -rc;
    }
    snprintf(t->tp_cluster, sizeof(t->tp_cluster), "%s", cluster);
    snprintf(t->tp_broker, sizeof(t->tp_broker), "%s", broker_name);
    t->tp_auto_create = auto_create_topic_enable != 0;
    t->tp_dv_timestamp = spk_wall_ms(); /* Java's new DataVersion() */

    rc = cfg_json_load(t->tp_path, decode_file, t, &src, err, errlen);
    if (rc != 0)
        goto fail;
    rc = add_system_topics(t, default_topic_queue_nums);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    spk_log(SPK_LOG_INFO, "topics", "%zu topics (%s), data version %lld", t->tp_n,
            src == FJSON_SRC_MAIN  ? "loaded " TOPICS_FILE
            : src == FJSON_SRC_BAK ? "loaded " TOPICS_FILE ".bak"
                                   : "no " TOPICS_FILE " yet",
            (long long)t->tp_dv_counter);
    *out = t;
    return 0;

fail:
    topics_close(t);
    return rc;
}

void
topics_close(struct topics *t)
{
    if (!t)
        return;
    if (topics_persist(t) != 0)
        spk_log(SPK_LOG_ERROR, "topics", "topics created since the last write are lost: %s "
                                         "could not be written",
                t->tp_path);
    clear_entries(t);
    pthread_mutex_destroy(&t->tp_mu);
    pthread_mutex_destroy(&t->tp_file_mu);
    free(t);
}

/* ------------------------------------------------------------------ */
/* Lookups and changes                                                 */
/* ------------------------------------------------------------------ */

int
topics_get(struct topics *t, const char *name, struct topic_config *out)
{
    size_t pos;
    int rc = -ENOENT;

    if (!name)
        return -ENOENT;
    pthread_mutex_lock(&t->tp_mu);
    if (find(t, name, &pos)) {
        *out = t->tp_ents[pos]->te_tc;
        rc = 0;
    }
    pthread_mutex_unlock(&t->tp_mu);
    return rc;
}

/*
 * Inserts a new topic <tc> at <pos> and commits; on failure nothing
 * changed. The caller holds tp_mu and has checked that the name is free.
 */
static int
create_locked(struct topics *t, size_t pos, const struct topic_config *tc, int defer)
{
    struct topic_entry *e;
    int rc;

    e = calloc(1, sizeof(*e));
    if (!e || reserve_one(t) != 0) {
        free(e);
        return -ENOMEM;
    }
    e->te_tc = *tc;
    insert_at(t, pos, e);
    rc = commit_locked(t, defer);
    if (rc != 0) {
        remove_at(t, pos);
        entry_free(e);
    }
    return rc;
}

int
topics_put(struct topics *t, const struct topic_config *tc)
{
    struct topic_config old;
    struct topic_entry *e;
    size_t pos;
    int rc;

    if (!config_ok(tc))
        return -EINVAL;
    pthread_mutex_lock(&t->tp_mu);
    if (find(t, tc->name, &pos)) {
        e = t->tp_ents[pos];
        old = e->te_tc;
        e->te_tc = *tc;
        rc = commit_locked(t, 0);
        if (rc != 0)
            e->te_tc = old;
    } else {
        rc = create_locked(t, pos, tc, 0);
    }
    pthread_mutex_unlock(&t->tp_mu);
    if (rc == 0)
        spk_log(SPK_LOG_INFO, "topics", "topic %s: read %d write %d perm %d sysflag %d", tc->name,
                tc->read_queues, tc->write_queues, tc->perm, tc->sysflag);
    return rc;
}

int
topics_delete(struct topics *t, const char *name)
{
    struct topic_entry *e;
    size_t pos;
    int rc;

    if (!name_ok(name))
        return -ENOENT;
    pthread_mutex_lock(&t->tp_mu);
    if (!find(t, name, &pos)) {
        rc = -ENOENT;
        goto out;
    }
    e = remove_at(t, pos);
    rc = commit_locked(t, 0);
    if (rc != 0)
        insert_at(t, pos, e); /* the slot is still allocated: cannot fail */
    else
        entry_free(e);
out:
    pthread_mutex_unlock(&t->tp_mu);
    if (rc == 0)
        spk_log(SPK_LOG_INFO, "topics", "topic %s deleted", name);
    return rc;
}

int
topics_auto_create(struct topics *t, const char *name, const char *def_topic, int req_queues,
                   struct topic_config *out, int *created)
{
    const struct topic_config *def;
    struct topic_config tc;
    size_t pos, dpos;
    int rc, perm;

    if (!name_ok(name) || !def_topic)
        return -EINVAL;
    pthread_mutex_lock(&t->tp_mu);
    if (find(t, name, &pos)) {
        *out = t->tp_ents[pos]->te_tc;
        *created = 0;
        rc = 0;
        goto out;
    }
    if (!find(t, def_topic, &dpos)) {
        spk_log(SPK_LOG_WARN, "topics", "cannot create topic %s: default topic %.255s not found",
                name, def_topic);
        rc = -ENOENT;
        goto out;
    }
    def = &t->tp_ents[dpos]->te_tc;
    perm = def->perm;
    if (strcmp(def_topic, TOPIC_AUTO_CREATE) == 0 && !t->tp_auto_create)
        perm = PERM_READ | PERM_WRITE;
    if (!(perm & PERM_INHERIT)) {
        spk_log(SPK_LOG_WARN, "topics",
                "cannot create topic %s: default topic %s has no inherit permission (perm %d)",
                name, def_topic, perm);
        rc = -ENOENT;
        goto out;
    }
    config_init(&tc, name, 0, perm & ~PERM_INHERIT);
    tc.read_queues = tc.write_queues =
        req_queues < def->write_queues ? req_queues : def->write_queues;
    if (tc.read_queues < 0)
        tc.read_queues = tc.write_queues = 0;
    tc.filter_multi_tag = def->filter_multi_tag;
    rc = create_locked(t, pos, &tc, 1);
    if (rc == 0) {
        *out = tc;
        *created = 1;
    }
out:
    pthread_mutex_unlock(&t->tp_mu);
    if (rc == 0 && *created)
        spk_log(SPK_LOG_INFO, "topics", "created topic %s from %s: %d queues, perm %d", name,
                def_topic, tc.write_queues, tc.perm);
    return rc;
}

int
topics_ensure(struct topics *t, const char *name, int queues, int perm, int sysflag,
              struct topic_config *out, int *created)
{
    struct topic_config tc;
    size_t pos;
    int rc;

    if (!name_ok(name))
        return -EINVAL;
    config_init(&tc, name, queues, perm);
    tc.sysflag = sysflag;
    if (!config_ok(&tc))
        return -EINVAL;
    pthread_mutex_lock(&t->tp_mu);
    if (find(t, name, &pos)) {
        *out = t->tp_ents[pos]->te_tc;
        *created = 0;
        rc = 0;
    } else {
        rc = create_locked(t, pos, &tc, 1);
        if (rc == 0) {
            *out = tc;
            *created = 1;
        }
    }
    pthread_mutex_unlock(&t->tp_mu);
    if (rc == 0 && *created)
        spk_log(SPK_LOG_INFO, "topics", "created topic %s: %d queues, perm %d", name, queues, perm);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static int
has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int
topics_validate_name(const char *name, char *err, size_t errlen)
{
    size_t n, max, i;

    if (!name || !name[0]) {
        snprintf(err, errlen, "The specified topic is blank.");
        return SPK_EFORMAT;
    }
    n = strnlen(name, TOPIC_NAME_MAX + 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '%' || c == '|' || c == '_' || c == '-')) {
            snprintf(err, errlen,
                     "The specified topic contains illegal characters, allowing only "
                     "^[%%|a-zA-Z0-9_-]+$");
            return SPK_EFORMAT;
        }
    }
    max = has_prefix(name, TOPIC_RETRY_PREFIX) || has_prefix(name, TOPIC_DLQ_PREFIX)
              ? TOPIC_NAME_MAX
              : TOPIC_USER_NAME_MAX;
    if (n > max) {
        snprintf(err, errlen, "The specified topic is longer than topic max length %zu.", max);
        return SPK_EFORMAT;
    }
    return 0;
}

int
topics_validate_create(struct topics *t, const char *name, char *err, size_t errlen)
{
    static const char *const system[] = {
        TOPIC_AUTO_CREATE, TOPIC_SELF_TEST,  TOPIC_BENCHMARK,     TOPIC_OFFSET_MOVED,
        TOPIC_SCHEDULE,    TOPIC_TRANS_HALF, TOPIC_TRANS_OP_HALF, TOPIC_TRANS_CHECK_MAX_TIME,
        TOPIC_TRACE,
    };
    size_t i, clen;
    int rc;

    rc = topics_validate_name(name, err, errlen);
    if (rc != 0)
        return rc;
    /* <cluster>, <broker>, <cluster>_REPLY_TOPIC: t's names never change. */
    clen = strlen(t->tp_cluster);
    if (strcmp(name, t->tp_cluster) == 0 || strcmp(name, t->tp_broker) == 0 ||
        has_prefix(name, "rmq_sys_") ||
        (strncmp(name, t->tp_cluster, clen) == 0 && strcmp(name + clen, TOPIC_REPLY_SUFFIX) == 0))
        goto reserved;
    for (i = 0; i < sizeof(system) / sizeof(system[0]); i++)
        if (strcmp(name, system[i]) == 0)
            goto reserved;
    return 0;

reserved:
    snprintf(err, errlen, "The topic[%s] is conflict with system topic.", name);
    return SPK_EFORMAT;
}

int
topics_send_forbidden(const char *name)
{
    static const char *const forbidden[] = {
        TOPIC_SCHEDULE,  TOPIC_TRANS_HALF,   TOPIC_TRANS_OP_HALF, TOPIC_TRANS_CHECK_MAX_TIME,
        TOPIC_SELF_TEST, TOPIC_OFFSET_MOVED,
    };
    size_t i;

    for (i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]); i++)
        if (strcmp(name, forbidden[i]) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Export                                                              */
/* ------------------------------------------------------------------ */

char *
topics_serialize(struct topics *t, size_t *len)
{
    char *json;

    pthread_mutex_lock(&t->tp_mu);
    json = serialize_locked(t, len);
    pthread_mutex_unlock(&t->tp_mu);
    return json;
}

char *
topic_config_json(const struct topic_config *tc, size_t *len)
{
    struct sbuf b = SBUF_INIT;

    put_topic_json(&b, tc, NULL);
    return sb_detach(&b, len);
}

void
topics_data_version(struct topics *t, int64_t *counter, int64_t *timestamp)
{
    pthread_mutex_lock(&t->tp_mu);
    *counter = t->tp_dv_counter;
    *timestamp = t->tp_dv_timestamp;
    pthread_mutex_unlock(&t->tp_mu);
}

void
topics_for_each(struct topics *t, void (*fn)(void *arg, const struct topic_config *tc), void *arg)
{
    size_t i;

    pthread_mutex_lock(&t->tp_mu);
    for (i = 0; i < t->tp_n; i++)
        fn(arg, &t->tp_ents[i]->te_tc);
    pthread_mutex_unlock(&t->tp_mu);
}

size_t
topics_count(struct topics *t)
{
    size_t n;

    pthread_mutex_lock(&t->tp_mu);
    n = t->tp_n;
    pthread_mutex_unlock(&t->tp_mu);
    return n;
}
