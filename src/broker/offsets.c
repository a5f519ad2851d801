/*
 * offsets.c - committed consumer offsets (see offsets.h for the contract
 * and invariants).
 *
 * One entry per (topic, group) key, in an array of pointers sorted by
 * topic, then group: a commit is a binary search, and the groups of one
 * topic are a contiguous run. Each entry keeps its queues as a small
 * array sorted by queue id (a topic rarely has more than a few dozen).
 */
#include "broker/offsets.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/config.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "store/storeio.h"

#define OFFSETS_FILE "consumerOffset.json"

struct qoff {
    int32_t qid;
    int64_t queue_idx;
};

struct off_entry {
    struct qoff *oe_q; /* sorted by qid */
    size_t oe_nq, oe_capq;
    size_t oe_seq;  /* position in the file while loading (last wins) */
    size_t oe_tlen; /* oe_key[oe_tlen] == '@' */
    size_t oe_glen;
    char oe_key[]; /* "<topic>@<group>", NUL-terminated */
};

struct offsets {
    pthread_mutex_t of_mu;         /* the table */
    pthread_mutex_t of_persist_mu; /* one writer of the file at a time */
    struct off_entry **of_ents;    /* sorted by (topic, group) */
    size_t of_n, of_cap;
    int of_dirty;
    char of_path[PATH_MAX];
};

#define E_TOPIC(e) ((e)->oe_key)
#define E_GROUP(e) ((e)->oe_key + (e)->oe_tlen + 1)

/* ------------------------------------------------------------------ */
/* The sorted array                                                    */
/* ------------------------------------------------------------------ */

static int
cmp_str(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);

    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

static int
cmp_key(const struct off_entry *e, const char *topic, size_t tlen, const char *group, size_t glen)
{
    int c = cmp_str(E_TOPIC(e), e->oe_tlen, topic, tlen);

    return c != 0 ? c : cmp_str(E_GROUP(e), e->oe_glen, group, glen);
}

/* 1 and *pos = index of the key, or 0 and *pos = where it would go. */
static int
find(const struct offsets *o, const char *topic, size_t tlen, const char *group, size_t glen,
     size_t *pos)
{
    size_t lo = 0, hi = o->of_n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(o->of_ents[mid], topic, tlen, group, glen);
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

static int
reserve_one(struct offsets *o)
{
    struct off_entry **p;
    size_t cap;

    if (o->of_n < o->of_cap)
        return 0;
    cap = o->of_cap ? o->of_cap * 2 : 64;
    p = realloc(o->of_ents, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    o->of_ents = p;
    o->of_cap = cap;
    return 0;
}

static struct off_entry *
entry_new(const char *topic, size_t tlen, const char *group, size_t glen)
{
    struct off_entry *e = calloc(1, sizeof(*e) + tlen + 1 + glen + 1);

    if (!e)
        return NULL;
    memcpy(e->oe_key, topic, tlen);
    e->oe_key[tlen] = '@';
    memcpy(e->oe_key + tlen + 1, group, glen);
    e->oe_key[tlen + 1 + glen] = '\0';
    e->oe_tlen = tlen;
    e->oe_glen = glen;
    return e;
}

static void
entry_free(struct off_entry *e)
{
    if (e) {
        free(e->oe_q);
        free(e);
    }
}

static void
remove_at(struct offsets *o, size_t pos)
{
    entry_free(o->of_ents[pos]);
    memmove(o->of_ents + pos, o->of_ents + pos + 1, (o->of_n - pos - 1) * sizeof(*o->of_ents));
    o->of_n--;
}

static void
clear_entries(struct offsets *o)
{
    size_t i;

    for (i = 0; i < o->of_n; i++)
        entry_free(o->of_ents[i]);
    free(o->of_ents);
    o->of_ents = NULL;
    o->of_n = o->of_cap = 0;
}

/* 1 and *pos = index of <qid>, or 0 and *pos = where it would go. */
static int
find_q(const struct off_entry *e, int32_t qid, size_t *pos)
{
    size_t lo = 0, hi = e->oe_nq;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->oe_q[mid].qid == qid) {
            *pos = mid;
            return 1;
        }
        if (e->oe_q[mid].qid < qid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return 0;
}

static int
set_q(struct off_entry *e, int32_t qid, int64_t queue_idx)
{
    struct qoff *p;
    size_t pos, cap;

    if (find_q(e, qid, &pos)) {
        e->oe_q[pos].queue_idx = queue_idx;
        return 0;
    }
    if (e->oe_nq == e->oe_capq) {
        cap = e->oe_capq ? e->oe_capq * 2 : 8;
        p = realloc(e->oe_q, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        e->oe_q = p;
        e->oe_capq = cap;
    }
    memmove(e->oe_q + pos + 1, e->oe_q + pos, (e->oe_nq - pos) * sizeof(*e->oe_q));
    e->oe_q[pos].qid = qid;
    e->oe_q[pos].queue_idx = queue_idx;
    e->oe_nq++;
    return 0;
}

/* Length of <s> if it is a usable name (1..OFFSETS_NAME_MAX bytes), else 0. */
static size_t
name_len(const char *s)
{
    size_t n;

    if (!s)
        return 0;
    n = strnlen(s, OFFSETS_NAME_MAX + 1);
    return n <= OFFSETS_NAME_MAX ? n : 0;
}

/* ------------------------------------------------------------------ */
/* JSON in                                                             */
/* ------------------------------------------------------------------ */

/* A queue id key: decimal digits only, 0..OFFSETS_QID_MAX. */
static int
parse_qid(const char *s, int32_t *out)
{
    long v = 0;
    size_t i;

    if (!s || !s[0] || strlen(s) > 5)
        return -1;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > OFFSETS_QID_MAX)
        return -1;
    *out = (int32_t)v;
    return 0;
}

/* An integral JSON number a double holds exactly (|v| <= 2^53). */
static int
get_queue_idx(const cJSON *it, int64_t *out)
{
    double d;

    if (!cJSON_IsNumber(it))
        return -1;
    d = it->valuedouble;
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

static int
cmp_entry(const void *a, const void *b)
{
    const struct off_entry *x = *(const struct off_entry *const *)a;
    const struct off_entry *y = *(const struct off_entry *const *)b;
    int c = cmp_key(x, E_TOPIC(y), y->oe_tlen, E_GROUP(y), y->oe_glen);

    if (c != 0)
        return c;
    return x->oe_seq < y->oe_seq ? -1 : x->oe_seq > y->oe_seq;
}

/* Decodes one "topic@group" member; 1 = skipped (unusable), 0, or -ENOMEM. */
static int
decode_entry(struct offsets *o, const cJSON *it)
{
    const char *key = it->string, *at;
    struct off_entry *e;
    const cJSON *q;
    size_t tlen, glen;
    int32_t qid;
    int64_t queue_idx;

    at = key ? strchr(key, '@') : NULL;
    if (!at || !cJSON_IsObject(it))
        return 1;
    tlen = (size_t)(at - key);
    glen = strlen(at + 1);
    if (tlen == 0 || tlen > OFFSETS_NAME_MAX || glen == 0 || glen > OFFSETS_NAME_MAX)
        return 1;
    if (reserve_one(o) != 0)
        return -ENOMEM;
    e = entry_new(key, tlen, at + 1, glen);
    if (!e)
        return -ENOMEM;
    e->oe_seq = o->of_n;
    o->of_ents[o->of_n++] = e;
    cJSON_ArrayForEach(q, it)
    {
        if (parse_qid(q->string, &qid) != 0 || get_queue_idx(q, &queue_idx) != 0) {
            spk_log(SPK_LOG_WARN, "offsets", "%.300s: skipping queue %.16s (bad id or offset)", key,
                    q->string ? q->string : "?");
            continue;
        }
        if (set_q(e, qid, queue_idx) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* fjson_decode_fn for consumerOffset.json, into the empty table <arg>. */
static int
decode_file(void *arg, const cJSON *root, char *err, size_t errlen)
{
    struct offsets *o = arg;
    const cJSON *table, *it;
    size_t i, w, skipped = 0;
    int rc;

    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "not a JSON object");
        return SPK_ECORRUPT;
    }
    table = cJSON_GetObjectItemCaseSensitive(root, "offsetTable");
    if (!cJSON_IsObject(table)) {
        snprintf(err, errlen, "no offsetTable object");
        return SPK_ECORRUPT;
    }
    cJSON_ArrayForEach(it, table)
    {
        rc = decode_entry(o, it);
        if (rc < 0) {
            snprintf(err, errlen, "out of memory");
            clear_entries(o);
            return rc;
        }
        if (rc == 1) {
            spk_log(SPK_LOG_WARN, "offsets", "skipping unusable key \"%.300s\"",
                    it->string ? it->string : "");
            skipped++;
        }
    }
    if (o->of_n > 1)
        qsort(o->of_ents, o->of_n, sizeof(*o->of_ents), cmp_entry);
    /* A key repeated in the file: the last one wins, as in Java's map.
     * A key left with no queues carries nothing: drop it. */
    for (i = w = 0; i < o->of_n; i++) {
        struct off_entry *e = o->of_ents[i];
        struct off_entry *next = i + 1 < o->of_n ? o->of_ents[i + 1] : NULL;
        if ((next && cmp_key(e, E_TOPIC(next), next->oe_tlen, E_GROUP(next), next->oe_glen) == 0) ||
            e->oe_nq == 0) {
            entry_free(e);
            continue;
        }
        o->of_ents[w++] = e;
    }
    o->of_n = w;
    if (skipped)
        spk_log(SPK_LOG_WARN, "offsets", "%zu unusable entries skipped", skipped);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Open, close, persist                                                */
/* ------------------------------------------------------------------ */

int
offsets_open(const char *config_dir, struct offsets **out, char *err, size_t errlen)
{
    enum fjson_source src;
    struct offsets *o;
    int rc;

    o = calloc(1, sizeof(*o));
    if (!o) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (snprintf(o->of_path, sizeof(o->of_path), "%s/%s", config_dir, OFFSETS_FILE) >=
        (int)sizeof(o->of_path)) {
        snprintf(err, errlen, "%s: path too long", config_dir);
        free(o);
        return -ENAMETOOLONG;
    }
    rc = pthread_mutex_init(&o->of_mu, NULL);
    if (rc != 0) {
        free(o);
        snprintf(err, errlen, "mutex: %s", spk_strerror(-rc));
        return -rc;
    }
    rc = pthread_mutex_init(&o->of_persist_mu, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&o->of_mu);
        free(o);
        snprintf(err, errlen, "mutex: %s", spk_strerror(-rc));
        return -rc;
    }
    rc = cfg_json_load(o->of_path, decode_file, o, &src, err, errlen);
    if (rc != 0) {
        offsets_close(o);
        return rc;
    }
    spk_log(SPK_LOG_INFO, "offsets", "%zu topic@group entries (%s)", o->of_n,
            src == FJSON_SRC_MAIN  ? "loaded " OFFSETS_FILE
            : src == FJSON_SRC_BAK ? "loaded " OFFSETS_FILE ".bak"
                                   : "no " OFFSETS_FILE " yet");
    *out = o;
    return 0;
}

void
offsets_close(struct offsets *o)
{
    if (!o)
        return;
    clear_entries(o);
    pthread_mutex_destroy(&o->of_persist_mu);
    pthread_mutex_destroy(&o->of_mu);
    free(o);
}

/* The caller holds of_mu. Queue ids are bare keys, as fastjson writes them. */
static char *
serialize_locked(const struct offsets *o, size_t *len)
{
    struct sbuf b = SBUF_INIT;
    size_t i, k;
    int first = 1;

    sb_puts(&b, "{\"offsetTable\":{");
    for (i = 0; i < o->of_n; i++) {
        const struct off_entry *e = o->of_ents[i];
        if (e->oe_nq == 0)
            continue;
        if (!first)
            sb_putc(&b, ',');
        first = 0;
        sb_json_str(&b, e->oe_key, e->oe_tlen + 1 + e->oe_glen);
        sb_putc(&b, ':');
        sb_putc(&b, '{');
        for (k = 0; k < e->oe_nq; k++)
            sb_printf(&b, "%s%d:%lld", k ? "," : "", (int)e->oe_q[k].qid,
                      (long long)e->oe_q[k].queue_idx);
        sb_putc(&b, '}');
    }
    sb_puts(&b, "}}");
    return sb_detach(&b, len);
}

/* The file's text: the table, sealed (config.h). */
static char *
file_text_locked(const struct offsets *o, size_t *len)
{
    char *json = serialize_locked(o, len);

    if (json && cfg_json_seal(&json, len) != 0) {
        free(json);
        json = NULL;
    }
    return json;
}

int
offsets_persist(struct offsets *o)
{
    char *json = NULL;
    size_t len = 0;
    int rc = 0;

    pthread_mutex_lock(&o->of_persist_mu);
    pthread_mutex_lock(&o->of_mu);
    if (o->of_dirty) {
        json = file_text_locked(o, &len);
        if (json)
            o->of_dirty = 0; /* commits from now on set it again (INV-2) */
        else
            rc = -ENOMEM;
    }
    pthread_mutex_unlock(&o->of_mu);
    if (json) {
        rc = sio_write_file_atomic(o->of_path, json, len);
        free(json);
        if (rc != 0) {
            pthread_mutex_lock(&o->of_mu);
            o->of_dirty = 1;
            pthread_mutex_unlock(&o->of_mu);
            spk_log(SPK_LOG_ERROR, "offsets", "cannot write %s: %s", o->of_path, spk_strerror(rc));
        }
    }
    pthread_mutex_unlock(&o->of_persist_mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Commit and query                                                    */
/* ------------------------------------------------------------------ */

int
offsets_commit(struct offsets *o, const char *group, const char *topic, int32_t qid, int64_t off)
{
    size_t tlen = name_len(topic), glen = name_len(group), pos;
    struct off_entry *e;
    int rc, fresh = 0;

    if (tlen == 0 || glen == 0 || memchr(topic, '@', tlen) || qid < 0 || qid > OFFSETS_QID_MAX)
        return -EINVAL;
    pthread_mutex_lock(&o->of_mu);
    if (find(o, topic, tlen, group, glen, &pos)) {
        e = o->of_ents[pos];
    } else {
        e = entry_new(topic, tlen, group, glen);
        if (!e || reserve_one(o) != 0) {
            entry_free(e);
            rc = -ENOMEM;
            goto out;
        }
        memmove(o->of_ents + pos + 1, o->of_ents + pos, (o->of_n - pos) * sizeof(*o->of_ents));
        o->of_ents[pos] = e;
        o->of_n++;
        fresh = 1;
    }
    rc = set_q(e, qid, off);
    if (rc != 0) {
        if (fresh)
            remove_at(o, pos);
        goto out;
    }
    o->of_dirty = 1;
out:
    pthread_mutex_unlock(&o->of_mu);
    return rc;
}

int
offsets_query(struct offsets *o, const char *group, const char *topic, int32_t qid, int64_t *off)
{
    size_t tlen = name_len(topic), glen = name_len(group), pos, qpos;
    int rc = -ENOENT;

    if (tlen == 0 || glen == 0)
        return -ENOENT;
    pthread_mutex_lock(&o->of_mu);
    if (find(o, topic, tlen, group, glen, &pos) && find_q(o->of_ents[pos], qid, &qpos)) {
        *off = o->of_ents[pos]->oe_q[qpos].queue_idx;
        rc = 0;
    }
    pthread_mutex_unlock(&o->of_mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Iteration and deletion                                              */
/* ------------------------------------------------------------------ */

/*
 * <fn> wants NUL-terminated topic and group: copy them out of the key
 * (which holds "topic@group") into <topic> and <group>.
 */
static void
emit_entry(const struct off_entry *e, offsets_entry_fn fn, void *arg)
{
    char topic[OFFSETS_NAME_MAX + 1];
    size_t k;

    memcpy(topic, E_TOPIC(e), e->oe_tlen);
    topic[e->oe_tlen] = '\0';
    for (k = 0; k < e->oe_nq; k++)
        fn(arg, E_GROUP(e), topic, e->oe_q[k].qid, e->oe_q[k].queue_idx);
}

void
offsets_for_each(struct offsets *o, offsets_entry_fn fn, void *arg)
{
    size_t i;

    pthread_mutex_lock(&o->of_mu);
    for (i = 0; i < o->of_n; i++)
        emit_entry(o->of_ents[i], fn, arg);
    pthread_mutex_unlock(&o->of_mu);
}

void
offsets_for_each_of_group(struct offsets *o, const char *group, offsets_entry_fn fn, void *arg)
{
    size_t glen = name_len(group), i;

    if (glen == 0)
        return;
    pthread_mutex_lock(&o->of_mu);
    for (i = 0; i < o->of_n; i++) {
        const struct off_entry *e = o->of_ents[i];
        if (e->oe_glen == glen && memcmp(E_GROUP(e), group, glen) == 0)
            emit_entry(e, fn, arg);
    }
    pthread_mutex_unlock(&o->of_mu);
}

void
offsets_groups_of_topic(struct offsets *o, const char *topic,
                        void (*fn)(void *arg, const char *group), void *arg)
{
    size_t tlen = name_len(topic), i;

    if (tlen == 0)
        return;
    pthread_mutex_lock(&o->of_mu);
    /* The empty group sorts before every real one: the run starts here. */
    find(o, topic, tlen, "", 0, &i);
    for (; i < o->of_n; i++) {
        const struct off_entry *e = o->of_ents[i];
        if (cmp_str(E_TOPIC(e), e->oe_tlen, topic, tlen) != 0)
            break;
        if (e->oe_nq > 0)
            fn(arg, E_GROUP(e));
    }
    pthread_mutex_unlock(&o->of_mu);
}

int
offsets_delete_group(struct offsets *o, const char *group)
{
    size_t glen = name_len(group), i, w, n0;

    if (glen == 0)
        return -ENOENT;
    pthread_mutex_lock(&o->of_mu);
    n0 = o->of_n;
    for (i = w = 0; i < o->of_n; i++) {
        struct off_entry *e = o->of_ents[i];
        if (e->oe_glen == glen && memcmp(E_GROUP(e), group, glen) == 0)
            entry_free(e);
        else
            o->of_ents[w++] = e;
    }
    o->of_n = w;
    if (w != n0)
        o->of_dirty = 1;
    pthread_mutex_unlock(&o->of_mu);
    return w != n0 ? 0 : -ENOENT;
}

int
offsets_delete_topic(struct offsets *o, const char *topic)
{
    size_t tlen = name_len(topic), start, end;

    if (tlen == 0)
        return -ENOENT;
    pthread_mutex_lock(&o->of_mu);
    find(o, topic, tlen, "", 0, &start);
    for (end = start; end < o->of_n; end++) {
        const struct off_entry *e = o->of_ents[end];
        if (cmp_str(E_TOPIC(e), e->oe_tlen, topic, tlen) != 0)
            break;
    }
    if (end > start) {
        size_t i;
        for (i = start; i < end; i++)
            entry_free(o->of_ents[i]);
        memmove(o->of_ents + start, o->of_ents + end, (o->of_n - end) * sizeof(*o->of_ents));
        o->of_n -= end - start;
        o->of_dirty = 1;
    }
    pthread_mutex_unlock(&o->of_mu);
    return end > start ? 0 : -ENOENT;
}
