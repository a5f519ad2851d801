/*
 * qcheck.c - the queue-history checker (RELIABILITY.md section 5).
 *
 *   qcheck [-o FILE] [HISTORY]
 *
 * Reads a JSONL history of send, poll and seek operations against
 * offset-assigning queues (tests/checker/README.md gives the exact input
 * format), derives each queue's version order (offset -> the values seen
 * there, from send acknowledgements and from polls) and runs the checks of
 * RELIABILITY.md section 5. Writes results.json (counts, the first 20
 * examples of every anomaly, "valid"), a summary on stderr ending in
 * "N passed, N failed" (one per check), and exits 0 when the history is
 * valid, 1 when it is not, 2 on a usage or input error.
 *
 * Because the broker assigns offsets, each queue exposes its total order
 * directly; every check is a sort and a linear sweep, O(n log n) overall,
 * with no linearizability search.
 *
 * Invariants:
 *   INV-1  Input is untrusted. Every field is type- and range-checked; a
 *          bad line stops the run with its line number and exit 2, and no
 *          input can make the checker crash or read out of bounds.
 *   INV-2  Integers that name offsets, sequence numbers or attempts are
 *          exact: values above 2^53 (where a JSON number stops being exact
 *          as a double) are rejected rather than silently rounded. Times
 *          may be larger; rounding is monotonic, so it can only turn a
 *          strict "before" into "at the same time" - a missed anomaly,
 *          never an invented one.
 *   INV-3  A value (producer, seq, attempt) is sent at most once. The
 *          client retries under a new attempt, so two sends of one value
 *          are a broken harness, reported as an input error.
 *   INV-4  One outstanding operation per process (Jepsen's rule): an
 *          invoke while another is open, or a completion with none open,
 *          is an input error. Operations still open at the end of the
 *          history are indeterminate (info).
 *   INV-5  Only facts enter the version order: offsets from "ok" sends and
 *          from polled messages. An "info" send's offset, if any, is not
 *          used, since the broker may have lost it and reused the offset.
 *
 * Memory: every allocation goes through qc_alloc/qc_realloc, which end the
 * run with exit 2 when memory runs out - a checker that cannot hold the
 * history has no partial verdict worth giving. Everything is owned by the
 * one struct qc and released by qc_free().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define QC_MAX_EXAMPLES 20
#define QC_EXACT_MAX ((int64_t)1 << 53)
/* The largest double below 2^63, so the cast to int64_t is defined. */
#define QC_TIME_MAX 9223372036854774784.0

enum qc_f { QC_SEND, QC_POLL, QC_SEEK };
enum qc_type { QC_INVOKE, QC_OK, QC_FAIL, QC_INFO };

static const char *const qc_f_name[] = {"send", "poll", "seek"};
static const char *const qc_type_name[] = {"invoke", "ok", "fail", "info"};

/* The checks, in report order. Keep qc_check_name in step. */
enum qc_check {
    CK_INCONSISTENT,
    CK_DUPLICATE,
    CK_RETRY_DUP,
    CK_LOST,
    CK_UNSEEN,
    CK_G1A,
    CK_PHANTOM,
    CK_CORRUPT,
    CK_NONMONO_SEND,
    CK_REALTIME,
    CK_POLL_SKIP,
    CK_NONMONO_POLL,
    CK_STALE,
    CK_DENSE,
    CK_N
};

static const char *const qc_check_name[CK_N] = {
    "inconsistent-offsets",
    "duplicate",
    "retry-duplicate",
    "lost-write",
    "unseen",
    "G1a",
    "phantom",
    "corrupt",
    "nonmonotonic-send",
    "realtime-order",
    "poll-skip",
    "nonmonotonic-poll",
    "stale-read",
    "dense-offsets",
};

/* One operation: an invoke and its completion. */
struct op {
    int f;             /* enum qc_f */
    int type;          /* enum qc_type of the completion; QC_INVOKE while open */
    int proc;          /* index into qc.procs */
    int queue;         /* index into qc.queues, -1 for a send not yet placed */
    int value;         /* send: index into qc.vals; -1 otherwise */
    long inv_line;     /* line of the invoke */
    long line;         /* line of the completion, 0 if it never completed */
    int64_t t_inv;     /* invoke time, ns */
    int64_t t_done;    /* completion time, ns */
    int64_t queue_idx; /* send ok: queue_offset; poll: from; seek: offset or -1 */
    int64_t next;      /* poll ok: where the next poll of this session starts */
    int64_t max_off;   /* poll ok: broker's max offset (exclusive), -1 if absent */
    size_t ent0;       /* poll ok: first entry in qc.ents */
    size_t nent;       /* poll ok: number of entries */
};

/* One polled message. */
struct ent {
    size_t op;
    int64_t queue_idx;
    int value; /* -1: the consumer could not identify the message */
    bool crc_ok;
    bool mismatch; /* the payload's (producer, seq) differs from value */
};

/* One value (producer, seq, attempt). */
struct val {
    int producer; /* index into qc.producers */
    int group;    /* index of (producer, seq) */
    int64_t seq;
    int64_t attempt;
    long send;      /* the op that sent it, -1 if none did */
    long first_ent; /* first poll entry holding it, -1 if never polled */
    long npolled;
};

/* A name (process, producer or queue) as it appeared in the input. */
struct name {
    char *text; /* string form; the decimal digits for a number */
    bool is_num;
    long pending; /* processes only: the open op, -1 if none */
};

/* A string-keyed open-addressing map to indices. */
struct smap {
    char **keys;
    int *vals;
    size_t cap;
    size_t n;
};

/* An observation for the version order: value at (queue, offset). */
struct obs {
    int queue;
    int value; /* -1 for an unidentified polled message */
    int64_t queue_idx;
    long src; /* op index for a send, entry index for a poll */
    bool from_poll;
};

struct qc {
    struct op *ops;
    size_t nops, cap_ops;
    struct ent *ents;
    size_t nents, cap_ents;
    struct val *vals;
    size_t nvals, cap_vals;
    struct name *procs;
    size_t nprocs, cap_procs;
    struct name *producers;
    size_t nproducers, cap_producers;
    struct name *queues;
    size_t nqueues, cap_queues;
    size_t *done; /* op indices in completion (line) order */
    size_t ndone, cap_done;
    size_t ngroups;
    struct smap procmap, producermap, queuemap, valmap, groupmap;
    long line; /* the line being parsed */
    long nlines;

    /* Derived per queue: distinct known offsets, and the largest polled. */
    int64_t *known;
    size_t *known0, *nknown;
    int64_t *max_polled; /* -1 if nothing was polled */
    long *max_polled_ent;

    long counts[CK_N];
    cJSON *examples[CK_N];
};

/* ---- memory ---------------------------------------------------------- */

static void *
qc_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "qcheck: out of memory\n");
        exit(2);
    }
    return p;
}

static void *
qc_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q) {
        fprintf(stderr, "qcheck: out of memory\n");
        exit(2);
    }
    return q;
}

static char *
qc_strdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(qc_alloc(n), s, n);
}

/* Grows the array at *<pp> (capacity *<cap> elements of <elem> bytes) to
 * hold at least <need> elements. */
static void
qc_grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    size_t n = *cap ? *cap : 64;
    void **p = pp;

    if (need <= *cap)
        return;
    while (n < need)
        n *= 2;
    *p = qc_realloc(*p, n * elem);
    *cap = n;
}

/* ---- string map ------------------------------------------------------ */

static uint64_t
smap_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Returns the index stored under <key>, or -1. Borrows <key>. */
static int
smap_get(const struct smap *m, const char *key)
{
    size_t i;

    if (!m->cap)
        return -1;
    for (i = smap_hash(key) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1))
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    return -1;
}

/* Stores <val> under <key> (absent before); copies <key>. */
static void
smap_put(struct smap *m, const char *key, int val)
{
    size_t i;

    /* Keep the load under one half so probe chains stay short. */
    if ((m->n + 1) * 2 > m->cap) {
        struct smap old = *m;
        size_t j;

        m->cap = old.cap ? old.cap * 2 : 64;
        m->keys = calloc(m->cap, sizeof(*m->keys));
        m->vals = calloc(m->cap, sizeof(*m->vals));
        if (!m->keys || !m->vals) {
            fprintf(stderr, "qcheck: out of memory\n");
            exit(2);
        }
        m->n = 0;
        for (j = 0; j < old.cap; j++)
            if (old.keys[j]) {
                for (i = smap_hash(old.keys[j]) & (m->cap - 1); m->keys[i];
                     i = (i + 1) & (m->cap - 1))
                    ;
                m->keys[i] = old.keys[j];
                m->vals[i] = old.vals[j];
                m->n++;
            }
        free(old.keys);
        free(old.vals);
    }
    for (i = smap_hash(key) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1))
        ;
    m->keys[i] = qc_strdup(key);
    m->vals[i] = val;
    m->n++;
}

static void
smap_free(struct smap *m)
{
    size_t i;

    for (i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
}

/* ---- input ----------------------------------------------------------- */

/* Reports an input error at the current line; returns -EINVAL. */
static int qc_bad(const struct qc *qc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
qc_bad(const struct qc *qc, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "qcheck: line %ld: ", qc->line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -EINVAL;
}

/*
 * Reads the integer <item> (named <what> in messages) into *<out>: a JSON
 * number that is whole and within [<min>, 2^53] (INV-2). Returns 0 or
 * -EINVAL after reporting.
 */
static int
qc_int(const struct qc *qc, const cJSON *item, const char *what, int64_t min, int64_t *out)
{
    double d;

    if (!cJSON_IsNumber(item))
        return qc_bad(qc, "\"%s\" must be an integer", what);
    d = item->valuedouble;
    /* Range first: the cast below is undefined outside int64_t. */
    if (!(d >= (double)min && d <= (double)QC_EXACT_MAX) || (double)(int64_t)d != d)
        return qc_bad(qc, "\"%s\" must be a whole number in [%" PRId64 ", 2^53]", what, min);
    *out = (int64_t)d;
    return 0;
}

/* Reads the "time" field: a whole number in [0, 2^63) (INV-2). */
static int
qc_time(const struct qc *qc, const cJSON *item, int64_t *out)
{
    double d;

    if (!cJSON_IsNumber(item))
        return qc_bad(qc, "\"time\" must be an integer (ns)");
    d = item->valuedouble;
    if (!(d >= 0 && d <= QC_TIME_MAX) || (double)(int64_t)d != d)
        return qc_bad(qc, "\"time\" must be a whole number of ns in [0, 2^63)");
    *out = (int64_t)d;
    return 0;
}

/*
 * Interns the name <item> (a string, or a whole number in [0, 2^53]) in
 * <arr>/<map> and stores its index in *<out>. <what> names the field.
 */
static int
qc_name(struct qc *qc, const cJSON *item, const char *what, struct name **arr, size_t *n,
        size_t *cap, struct smap *map, int *out)
{
    char key[64];
    char small[128];
    char *k;
    const char *text;
    bool is_num;
    int64_t v = 0;
    int idx;
    int rc;

    if (cJSON_IsString(item)) {
        text = item->valuestring;
        is_num = false;
    } else if (cJSON_IsNumber(item)) {
        rc = qc_int(qc, item, what, 0, &v);
        if (rc)
            return rc;
        snprintf(key, sizeof(key), "%" PRId64, v);
        text = key;
        is_num = true;
    } else {
        return qc_bad(qc, "\"%s\" must be a string or an integer", what);
    }
    /* "s:" and "n:" keep the string "1" apart from the number 1. Short
     * names, the usual case, need no allocation. */
    k = strlen(text) + 3 <= sizeof(small) ? small : qc_alloc(strlen(text) + 3);
    sprintf(k, "%c:%s", is_num ? 'n' : 's', text);
    idx = smap_get(map, k);
    if (idx < 0) {
        qc_grow(arr, cap, *n + 1, sizeof(**arr));
        idx = (int)*n;
        (*arr)[*n].text = qc_strdup(text);
        (*arr)[*n].is_num = is_num;
        (*arr)[*n].pending = -1;
        (*n)++;
        smap_put(map, k, idx);
    }
    if (k != small)
        free(k);
    *out = idx;
    return 0;
}

static int
qc_queue(struct qc *qc, const cJSON *item, int *out)
{
    if (!cJSON_IsString(item) || !item->valuestring[0])
        return qc_bad(qc, "\"queue\" must be a non-empty string");
    return qc_name(qc, item, "queue", &qc->queues, &qc->nqueues, &qc->cap_queues, &qc->queuemap,
                   out);
}

/*
 * Reads {"producer":P,"seq":S,"attempt":A} (<what> names the field). With
 * <create>, an unknown value is added; without it, *<out> is -1 for one.
 */
static int
qc_value(struct qc *qc, const cJSON *item, const char *what, bool create, int *out)
{
    int64_t seq = 0, attempt = 0;
    char key[64];
    int producer;
    int idx;
    int g;
    int rc;

    if (!cJSON_IsObject(item))
        return qc_bad(qc, "\"%s\" must be an object {\"producer\",\"seq\",\"attempt\"}", what);
    rc = qc_name(qc, cJSON_GetObjectItemCaseSensitive(item, "producer"), "producer", &qc->producers,
                 &qc->nproducers, &qc->cap_producers, &qc->producermap, &producer);
    if (rc)
        return rc;
    rc = qc_int(qc, cJSON_GetObjectItemCaseSensitive(item, "seq"), "seq", 0, &seq);
    if (rc)
        return rc;
    rc = qc_int(qc, cJSON_GetObjectItemCaseSensitive(item, "attempt"), "attempt", 0, &attempt);
    if (rc)
        return rc;

    snprintf(key, sizeof(key), "%d:%" PRId64 ":%" PRId64, producer, seq, attempt);
    idx = smap_get(&qc->valmap, key);
    if (idx < 0 && create) {
        char gkey[48];

        snprintf(gkey, sizeof(gkey), "%d:%" PRId64, producer, seq);
        g = smap_get(&qc->groupmap, gkey);
        if (g < 0) {
            g = (int)qc->ngroups++;
            smap_put(&qc->groupmap, gkey, g);
        }
        qc_grow(&qc->vals, &qc->cap_vals, qc->nvals + 1, sizeof(*qc->vals));
        idx = (int)qc->nvals++;
        qc->vals[idx] = (struct val){.producer = producer,
                                     .group = g,
                                     .seq = seq,
                                     .attempt = attempt,
                                     .send = -1,
                                     .first_ent = -1};
        smap_put(&qc->valmap, key, idx);
    }
    *out = idx;
    return 0;
}

/* Reads the optional integer field <name> of <o>: -1 when absent. */
static int
qc_opt_int(const struct qc *qc, const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, name);

    *out = -1;
    if (!item || cJSON_IsNull(item))
        return 0;
    return qc_int(qc, item, name, 0, out);
}

/* Reads the "msgs" list of a poll ok into qc.ents for op <oi>. */
static int
qc_msgs(struct qc *qc, const cJSON *msgs, size_t oi)
{
    const cJSON *m;
    int rc;

    if (!cJSON_IsArray(msgs))
        return qc_bad(qc, "a poll ok needs \"msgs\": a list of [offset, value, crc_ok(, payload)]");
    qc->ops[oi].ent0 = qc->nents;
    cJSON_ArrayForEach(m, msgs)
    {
        struct ent e = {.op = oi, .value = -1};
        const cJSON *value, *crc, *payload;
        int n = cJSON_GetArraySize(m);

        if (!cJSON_IsArray(m) || n < 3 || n > 4)
            return qc_bad(qc, "each \"msgs\" element must be [offset, value, crc_ok] or "
                              "[offset, value, crc_ok, payload]");
        rc = qc_int(qc, cJSON_GetArrayItem(m, 0), "msgs offset", 0, &e.queue_idx);
        if (rc)
            return rc;
        value = cJSON_GetArrayItem(m, 1);
        if (!cJSON_IsNull(value)) {
            rc = qc_value(qc, value, "msgs value", true, &e.value);
            if (rc)
                return rc;
        }
        crc = cJSON_GetArrayItem(m, 2);
        if (!cJSON_IsBool(crc))
            return qc_bad(qc, "msgs crc_ok must be true or false");
        e.crc_ok = cJSON_IsTrue(crc);
        payload = n == 4 ? cJSON_GetArrayItem(m, 3) : NULL;
        if (payload && !cJSON_IsNull(payload)) {
            int producer;
            int64_t seq = 0;

            if (!cJSON_IsObject(payload))
                return qc_bad(qc, "msgs payload must be an object {\"producer\",\"seq\"}");
            rc = qc_name(qc, cJSON_GetObjectItemCaseSensitive(payload, "producer"),
                         "payload producer", &qc->producers, &qc->nproducers, &qc->cap_producers,
                         &qc->producermap, &producer);
            if (rc)
                return rc;
            rc = qc_int(qc, cJSON_GetObjectItemCaseSensitive(payload, "seq"), "payload seq", 0,
                        &seq);
            if (rc)
                return rc;
            e.mismatch = e.value < 0 || qc->vals[e.value].producer != producer ||
                         qc->vals[e.value].seq != seq;
        }
        qc_grow(&qc->ents, &qc->cap_ents, qc->nents + 1, sizeof(*qc->ents));
        qc->ents[qc->nents++] = e;
        qc->ops[oi].nent++;
    }
    return 0;
}

static int
qc_lookup(const char *s, const char *const *names, int n)
{
    int i;

    for (i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Opens an operation for the invoke line <o> of process <p>. */
static int
qc_invoke(struct qc *qc, const cJSON *o, int p, int f, int64_t t)
{
    const cJSON *queue = cJSON_GetObjectItemCaseSensitive(o, "queue");
    struct op op = {.f = f,
                    .type = QC_INVOKE,
                    .proc = p,
                    .queue = -1,
                    .value = -1,
                    .inv_line = qc->line,
                    .t_inv = t,
                    .queue_idx = -1,
                    .next = -1,
                    .max_off = -1};
    int rc;

    if (qc->procs[p].pending >= 0)
        return qc_bad(qc, "process %s invokes while its operation from line %ld is still open",
                      qc->procs[p].text, qc->ops[qc->procs[p].pending].inv_line);
    /* A send's queue is usually chosen by the client's routing, so known
     * only when it completes. */
    if (queue || f != QC_SEND) {
        rc = qc_queue(qc, queue, &op.queue);
        if (rc)
            return rc;
    }
    if (f == QC_SEND) {
        rc = qc_value(qc, cJSON_GetObjectItemCaseSensitive(o, "value"), "value", true, &op.value);
        if (rc)
            return rc;
        if (qc->vals[op.value].send >= 0)
            return qc_bad(qc,
                          "this value was already sent at line %ld (a retry needs a new attempt)",
                          qc->ops[qc->vals[op.value].send].inv_line);
        qc->vals[op.value].send = (long)qc->nops;
    } else if (f == QC_POLL) {
        rc = qc_int(qc, cJSON_GetObjectItemCaseSensitive(o, "from"), "from", 0, &op.queue_idx);
        if (rc)
            return rc;
    } else {
        rc = qc_opt_int(qc, o, "offset", &op.queue_idx);
        if (rc)
            return rc;
    }
    qc_grow(&qc->ops, &qc->cap_ops, qc->nops + 1, sizeof(*qc->ops));
    qc->ops[qc->nops] = op;
    qc->procs[p].pending = (long)qc->nops++;
    return 0;
}

/* Closes the open operation of process <p> with the completion line <o>. */
static int
qc_complete(struct qc *qc, const cJSON *o, int p, int f, int type, int64_t t)
{
    const cJSON *item;
    struct op *op;
    size_t oi;
    int64_t v = 0;
    int idx;
    int rc;

    if (qc->procs[p].pending < 0)
        return qc_bad(qc, "\"%s\" completion for process %s, which has no open invoke",
                      qc_type_name[type], qc->procs[p].text);
    oi = (size_t)qc->procs[p].pending;
    op = &qc->ops[oi];
    if (op->f != f)
        return qc_bad(qc, "completion f \"%s\" does not match the invoke at line %ld (\"%s\")",
                      qc_f_name[f], op->inv_line, qc_f_name[op->f]);
    if (t < op->t_inv)
        return qc_bad(qc, "completion time is before the invoke's (line %ld)", op->inv_line);
    op->type = type;
    op->line = qc->line;
    op->t_done = t;

    /* Fields repeated from the invoke must agree with it. */
    item = cJSON_GetObjectItemCaseSensitive(o, "queue");
    if (item && !(f == QC_SEND && type == QC_INFO)) {
        rc = qc_queue(qc, item, &idx);
        if (rc)
            return rc;
        if (op->queue >= 0 && idx != op->queue)
            return qc_bad(qc, "queue differs from the invoke's (line %ld)", op->inv_line);
        op->queue = idx;
    }
    if (f == QC_SEND) {
        item = cJSON_GetObjectItemCaseSensitive(o, "value");
        if (item) {
            rc = qc_value(qc, item, "value", false, &idx);
            if (rc)
                return rc;
            if (idx != op->value)
                return qc_bad(qc, "value differs from the invoke's (line %ld)", op->inv_line);
        }
        item = cJSON_GetObjectItemCaseSensitive(o, "phys_off");
        if (item && !cJSON_IsNumber(item) && !cJSON_IsNull(item))
            return qc_bad(qc, "\"phys_off\" must be a number");
        item = cJSON_GetObjectItemCaseSensitive(o, "msg_id");
        if (item && !cJSON_IsString(item) && !cJSON_IsNull(item))
            return qc_bad(qc, "\"msg_id\" must be a string");
        if (type == QC_OK) {
            if (op->queue < 0)
                return qc_bad(qc, "a send ok needs \"queue\"");
            rc = qc_int(qc, cJSON_GetObjectItemCaseSensitive(o, "queue_offset"), "queue_offset", 0,
                        &op->queue_idx);
            if (rc)
                return rc;
        }
    } else if (f == QC_POLL) {
        item = cJSON_GetObjectItemCaseSensitive(o, "from");
        if (item) {
            rc = qc_int(qc, item, "from", 0, &v);
            if (rc)
                return rc;
            if (v != op->queue_idx)
                return qc_bad(qc, "\"from\" differs from the invoke's (line %ld)", op->inv_line);
        }
        if (type == QC_OK) {
            rc = qc_msgs(qc, cJSON_GetObjectItemCaseSensitive(o, "msgs"), oi);
            if (rc)
                return rc;
            rc = qc_opt_int(qc, o, "next", &op->next);
            if (rc)
                return rc;
            rc = qc_opt_int(qc, o, "max_offset", &op->max_off);
            if (rc)
                return rc;
            /* Without the broker's next offset, a session resumes right
             * after the last message it was given. */
            if (op->next < 0)
                op->next =
                    op->nent ? qc->ents[op->ent0 + op->nent - 1].queue_idx + 1 : op->queue_idx;
        }
    }
    qc->procs[p].pending = -1;
    qc_grow(&qc->done, &qc->cap_done, qc->ndone + 1, sizeof(*qc->done));
    qc->done[qc->ndone++] = oi;
    return 0;
}

/* Parses one line (<len> bytes at <buf>, no newline) into the history. */
static int
qc_line(struct qc *qc, const char *buf, size_t len)
{
    const char *end = NULL;
    const cJSON *item;
    cJSON *o;
    size_t i;
    int64_t t = 0;
    int type, f, p;
    int rc;

    for (i = 0; i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'); i++)
        ;
    if (i == len || buf[i] == '#')
        return 0;
    /* JSON forbids raw control bytes, but cJSON takes them inside strings,
     * and a NUL would cut a string short unseen. They mark a torn or
     * damaged line (a killed writer, a preallocated file), so refuse. */
    for (i = 0; i < len; i++)
        if ((unsigned char)buf[i] < 0x20 && buf[i] != '\t' && buf[i] != '\r')
            return qc_bad(qc, "control byte 0x%02x at column %zu", (unsigned char)buf[i], i + 1);
    o = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!o)
        return qc_bad(qc, "not valid JSON");
    for (i = (size_t)(end - buf); i < len; i++)
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r') {
            rc = qc_bad(qc, "trailing bytes after the JSON object");
            goto out;
        }
    if (!cJSON_IsObject(o)) {
        rc = qc_bad(qc, "an operation must be a JSON object");
        goto out;
    }
    item = cJSON_GetObjectItemCaseSensitive(o, "type");
    type = cJSON_IsString(item) ? qc_lookup(item->valuestring, qc_type_name, 4) : -1;
    if (type < 0) {
        rc = qc_bad(qc, "\"type\" must be invoke, ok, fail or info");
        goto out;
    }
    item = cJSON_GetObjectItemCaseSensitive(o, "f");
    f = cJSON_IsString(item) ? qc_lookup(item->valuestring, qc_f_name, 3) : -1;
    if (f < 0) {
        rc = qc_bad(qc, "\"f\" must be send, poll or seek");
        goto out;
    }
    rc = qc_time(qc, cJSON_GetObjectItemCaseSensitive(o, "time"), &t);
    if (rc)
        goto out;
    rc = qc_name(qc, cJSON_GetObjectItemCaseSensitive(o, "process"), "process", &qc->procs,
                 &qc->nprocs, &qc->cap_procs, &qc->procmap, &p);
    if (rc)
        goto out;
    if (type == QC_INVOKE)
        rc = qc_invoke(qc, o, p, f, t);
    else
        rc = qc_complete(qc, o, p, f, type, t);
out:
    cJSON_Delete(o);
    return rc;
}

/* Reads the whole history from <in>. */
static int
qc_read(struct qc *qc, FILE *in)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    size_t i;
    int rc = 0;

    while ((n = getline(&buf, &cap, in)) != -1) {
        qc->line++;
        if (n > 0 && buf[n - 1] == '\n')
            n--;
        rc = qc_line(qc, buf, (size_t)n);
        if (rc)
            goto out;
    }
    if (ferror(in)) {
        rc = -errno;
        fprintf(stderr, "qcheck: read error: %s\n", strerror(errno));
        goto out;
    }
    /* INV-4: what never completed is indeterminate. */
    for (i = 0; i < qc->nprocs; i++)
        if (qc->procs[i].pending >= 0) {
            struct op *op = &qc->ops[qc->procs[i].pending];

            op->type = QC_INFO;
            op->t_done = INT64_MAX;
            qc_grow(&qc->done, &qc->cap_done, qc->ndone + 1, sizeof(*qc->done));
            qc->done[qc->ndone++] = (size_t)qc->procs[i].pending;
            qc->procs[i].pending = -1;
        }
out:
    qc->nlines = qc->line;
    free(buf);
    return rc;
}

/* ---- reporting helpers ----------------------------------------------- */

static cJSON *
qc_json_name(const struct name *n)
{
    return n->is_num ? cJSON_CreateNumber(strtod(n->text, NULL)) : cJSON_CreateString(n->text);
}

static cJSON *
qc_json_value(const struct qc *qc, int vi)
{
    const struct val *v;
    cJSON *o;

    if (vi < 0)
        return cJSON_CreateNull();
    v = &qc->vals[vi];
    o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "producer", qc_json_name(&qc->producers[v->producer]));
    cJSON_AddNumberToObject(o, "seq", (double)v->seq);
    cJSON_AddNumberToObject(o, "attempt", (double)v->attempt);
    return o;
}

/* Describes operation <oi>: its lines, process, kind and what it carried. */
static cJSON *
qc_json_op(const struct qc *qc, size_t oi)
{
    const struct op *op = &qc->ops[oi];
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "invoke_line", (double)op->inv_line);
    cJSON_AddNumberToObject(o, "line", (double)op->line);
    cJSON_AddItemToObject(o, "process", qc_json_name(&qc->procs[op->proc]));
    cJSON_AddStringToObject(o, "f", qc_f_name[op->f]);
    cJSON_AddStringToObject(o, "type", qc_type_name[op->type]);
    if (op->queue >= 0)
        cJSON_AddStringToObject(o, "queue", qc->queues[op->queue].text);
    if (op->f == QC_SEND) {
        cJSON_AddItemToObject(o, "value", qc_json_value(qc, op->value));
        if (op->type == QC_OK)
            cJSON_AddNumberToObject(o, "offset", (double)op->queue_idx);
    } else if (op->f == QC_POLL) {
        cJSON_AddNumberToObject(o, "from", (double)op->queue_idx);
    }
    return o;
}

/* Describes poll entry <ei>: the poll that returned it and what it held. */
static cJSON *
qc_json_ent(const struct qc *qc, size_t ei)
{
    const struct ent *e = &qc->ents[ei];
    cJSON *o = qc_json_op(qc, e->op);

    cJSON_AddNumberToObject(o, "offset", (double)e->queue_idx);
    cJSON_AddItemToObject(o, "value", qc_json_value(qc, e->value));
    cJSON_AddBoolToObject(o, "crc_ok", e->crc_ok);
    return o;
}

/* Counts one anomaly of <ck>. Returns a new object to describe it while
 * fewer than QC_MAX_EXAMPLES are kept, else NULL (counted only). */
static cJSON *
qc_anomaly(struct qc *qc, int ck)
{
    cJSON *o;

    if (qc->counts[ck]++ >= QC_MAX_EXAMPLES)
        return NULL;
    o = cJSON_CreateObject();
    cJSON_AddItemToArray(qc->examples[ck], o);
    return o;
}

/* ---- derived state and checks ---------------------------------------- */

static int
cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int
cmp_obs_queue(const void *pa, const void *pb)
{
    const struct obs *a = pa, *b = pb;

    if (a->queue != b->queue)
        return a->queue < b->queue ? -1 : 1;
    if (a->queue_idx != b->queue_idx)
        return cmp_i64(a->queue_idx, b->queue_idx);
    return a->value < b->value ? -1 : a->value > b->value;
}

static int
cmp_obs_value(const void *pa, const void *pb)
{
    const struct obs *a = pa, *b = pb;

    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    if (a->queue != b->queue)
        return a->queue < b->queue ? -1 : 1;
    return cmp_i64(a->queue_idx, b->queue_idx);
}

/* Describes observation <ob> as the operation it came from. */
static cJSON *
qc_json_obs(const struct qc *qc, const struct obs *ob)
{
    cJSON *o = ob->from_poll ? qc_json_ent(qc, (size_t)ob->src) : qc_json_op(qc, (size_t)ob->src);

    cJSON_AddStringToObject(o, "source", ob->from_poll ? "poll" : "send");
    return o;
}

/*
 * The version order. Builds the observations (ok sends and polled
 * messages), sorts them by (queue, offset) and derives per queue the
 * distinct known offsets and the largest polled offset; then checks
 * inconsistent-offsets (an offset with two values) and, sorted by value,
 * duplicate and retry-duplicate.
 */
static void
qc_version_order(struct qc *qc)
{
    struct obs *obs = qc_alloc((qc->nops + qc->nents) * sizeof(*obs));
    long *stored = qc_alloc((qc->ngroups + 1) * sizeof(*stored));
    size_t *first = qc_alloc((qc->ngroups + 1) * sizeof(*first));
    cJSON **group_ex = qc_alloc((qc->ngroups + 1) * sizeof(*group_ex));
    size_t n = 0, i, j, k;

    for (i = 0; i < qc->nops; i++)
        if (qc->ops[i].f == QC_SEND && qc->ops[i].type == QC_OK)
            obs[n++] = (struct obs){.queue = qc->ops[i].queue,
                                    .value = qc->ops[i].value,
                                    .queue_idx = qc->ops[i].queue_idx,
                                    .src = (long)i};
    for (i = 0; i < qc->nents; i++)
        obs[n++] = (struct obs){.queue = qc->ops[qc->ents[i].op].queue,
                                .value = qc->ents[i].value,
                                .queue_idx = qc->ents[i].queue_idx,
                                .src = (long)i,
                                .from_poll = true};
    qsort(obs, n, sizeof(*obs), cmp_obs_queue);

    qc->known = qc_alloc((n + 1) * sizeof(*qc->known));
    qc->known0 = calloc(qc->nqueues + 1, sizeof(*qc->known0));
    qc->nknown = calloc(qc->nqueues + 1, sizeof(*qc->nknown));
    qc->max_polled = qc_alloc((qc->nqueues + 1) * sizeof(*qc->max_polled));
    qc->max_polled_ent = qc_alloc((qc->nqueues + 1) * sizeof(*qc->max_polled_ent));
    if (!qc->known0 || !qc->nknown) {
        fprintf(stderr, "qcheck: out of memory\n");
        exit(2);
    }
    for (i = 0; i < qc->nqueues; i++) {
        qc->max_polled[i] = -1;
        qc->max_polled_ent[i] = -1;
    }

    k = 0;
    for (i = 0; i < n; i = j) {
        size_t nvals = 0;
        const struct obs *a = &obs[i];

        for (j = i; j < n && obs[j].queue == a->queue && obs[j].queue_idx == a->queue_idx; j++) {
            if (obs[j].value >= 0 && (nvals == 0 || obs[j].value != obs[j - 1].value))
                nvals++;
            if (obs[j].from_poll && obs[j].queue_idx > qc->max_polled[a->queue]) {
                qc->max_polled[a->queue] = obs[j].queue_idx;
                qc->max_polled_ent[a->queue] = obs[j].src;
            }
        }
        if (qc->nknown[a->queue] == 0)
            qc->known0[a->queue] = k;
        qc->known[k++] = a->queue_idx;
        qc->nknown[a->queue]++;
        if (nvals > 1) {
            cJSON *ex = qc_anomaly(qc, CK_INCONSISTENT);
            cJSON *vals;
            size_t m;

            if (!ex)
                continue;
            cJSON_AddStringToObject(ex, "queue", qc->queues[a->queue].text);
            cJSON_AddNumberToObject(ex, "offset", (double)a->queue_idx);
            vals = cJSON_AddArrayToObject(ex, "ops");
            /* One witness per distinct value. */
            for (m = i; m < j; m++)
                if (obs[m].value >= 0 && (m == i || obs[m].value != obs[m - 1].value))
                    cJSON_AddItemToArray(vals, qc_json_obs(qc, &obs[m]));
        }
    }

    /* Per value: the distinct places it was stored. */
    qsort(obs, n, sizeof(*obs), cmp_obs_value);
    for (i = 0; i <= qc->ngroups; i++) {
        stored[i] = 0;
        group_ex[i] = NULL;
    }
    for (i = 0; i < n; i = j) {
        size_t nplaces = 0;
        const struct obs *a = &obs[i];
        int g;

        for (j = i; j < n && obs[j].value == a->value; j++)
            if (j == i || obs[j].queue != obs[j - 1].queue ||
                obs[j].queue_idx != obs[j - 1].queue_idx)
                nplaces++;
        if (a->value < 0)
            continue;
        if (nplaces > 1) {
            cJSON *ex = qc_anomaly(qc, CK_DUPLICATE);

            if (ex) {
                cJSON *ops;
                size_t m;

                cJSON_AddItemToObject(ex, "value", qc_json_value(qc, a->value));
                ops = cJSON_AddArrayToObject(ex, "ops");
                for (m = i; m < j; m++)
                    if (m == i || obs[m].queue != obs[m - 1].queue ||
                        obs[m].queue_idx != obs[m - 1].queue_idx)
                        cJSON_AddItemToArray(ops, qc_json_obs(qc, &obs[m]));
            }
        }
        /*
         * retry-duplicate: two attempts of one (producer, seq) stored. The
         * first stored attempt is remembered by position and described
         * only when a second one turns up, which is rare.
         */
        g = qc->vals[a->value].group;
        if (++stored[g] == 1) {
            first[g] = i;
        } else if (stored[g] == 2) {
            cJSON *ex = qc_anomaly(qc, CK_RETRY_DUP);

            if (ex) {
                cJSON_AddItemToObject(ex, "producer",
                                      qc_json_name(&qc->producers[qc->vals[a->value].producer]));
                cJSON_AddNumberToObject(ex, "seq", (double)qc->vals[a->value].seq);
                group_ex[g] = cJSON_AddArrayToObject(ex, "ops");
                cJSON_AddItemToArray(group_ex[g], qc_json_obs(qc, &obs[first[g]]));
            }
        }
        if (stored[g] > 1 && group_ex[g])
            cJSON_AddItemToArray(group_ex[g], qc_json_obs(qc, a));
    }
    free(group_ex);
    free(first);
    free(stored);
    free(obs);
}

/* Whether some offset in [<lo>, <hi>) of queue <q> is known to exist. */
static bool
qc_known_in(const struct qc *qc, int q, int64_t lo, int64_t hi)
{
    const int64_t *k = qc->known + qc->known0[q];
    size_t a = 0, b = qc->nknown[q];

    while (a < b) {
        size_t mid = a + (b - a) / 2;

        if (k[mid] < lo)
            a = mid + 1;
        else
            b = mid;
    }
    return a < qc->nknown[q] && k[a] < hi;
}

/*
 * Per value and per message: lost-write and unseen (an ok send whose value
 * was never polled, split by whether the queue was polled past its offset),
 * G1a (a failed send's value polled), phantom (a polled value nobody sent)
 * and corrupt (a polled message whose checksum failed, whose payload names
 * another (producer, seq), or which could not be identified).
 */
static void
qc_reads(struct qc *qc)
{
    size_t i;

    for (i = 0; i < qc->nents; i++) {
        struct ent *e = &qc->ents[i];

        if (e->value >= 0) {
            struct val *v = &qc->vals[e->value];

            if (v->npolled++ == 0)
                v->first_ent = (long)i;
        }
        if (!e->crc_ok || e->mismatch || e->value < 0) {
            cJSON *ex = qc_anomaly(qc, CK_CORRUPT);

            if (ex) {
                cJSON_AddStringToObject(ex, "reason",
                                        !e->crc_ok     ? "checksum"
                                        : e->value < 0 ? "unidentified"
                                                       : "payload mismatch");
                cJSON_AddItemToObject(ex, "poll", qc_json_ent(qc, i));
            }
        }
    }
    for (i = 0; i < qc->nvals; i++) {
        const struct val *v = &qc->vals[i];
        const struct op *s = v->send >= 0 ? &qc->ops[v->send] : NULL;
        cJSON *ex;

        if (v->npolled > 0 && !s) {
            ex = qc_anomaly(qc, CK_PHANTOM);
            if (ex)
                cJSON_AddItemToObject(ex, "poll", qc_json_ent(qc, (size_t)v->first_ent));
        } else if (v->npolled > 0 && s->type == QC_FAIL) {
            ex = qc_anomaly(qc, CK_G1A);
            if (ex) {
                cJSON_AddItemToObject(ex, "send", qc_json_op(qc, (size_t)v->send));
                cJSON_AddItemToObject(ex, "poll", qc_json_ent(qc, (size_t)v->first_ent));
            }
        } else if (v->npolled == 0 && s && s->type == QC_OK) {
            bool past = qc->max_polled[s->queue] > s->queue_idx;

            ex = qc_anomaly(qc, past ? CK_LOST : CK_UNSEEN);
            if (ex) {
                cJSON_AddItemToObject(ex, "send", qc_json_op(qc, (size_t)v->send));
                if (past)
                    cJSON_AddItemToObject(ex, "polled_past",
                                          qc_json_ent(qc, (size_t)qc->max_polled_ent[s->queue]));
            }
        }
    }
}

/* An ok send reduced to what the ordering checks sort by. */
struct sk {
    int queue;
    int producer;
    int64_t seq;
    int64_t queue_idx;
    int64_t t; /* the time sorted by: ack or invoke */
    size_t op;
};

static int
cmp_sk_producer(const void *pa, const void *pb)
{
    const struct sk *a = pa, *b = pb;

    if (a->producer != b->producer)
        return a->producer < b->producer ? -1 : 1;
    if (a->queue != b->queue)
        return a->queue < b->queue ? -1 : 1;
    if (a->seq != b->seq)
        return cmp_i64(a->seq, b->seq);
    return cmp_i64(a->queue_idx, b->queue_idx);
}

static int
cmp_sk_time(const void *pa, const void *pb)
{
    const struct sk *a = pa, *b = pb;

    if (a->queue != b->queue)
        return a->queue < b->queue ? -1 : 1;
    return cmp_i64(a->t, b->t);
}

/*
 * nonmonotonic-send: per (producer, queue), sorted by seq, an ok send whose
 * offset is not above every offset acked for a smaller seq. Retries share
 * a seq, so the running maximum only takes in a seq once it is complete.
 */
static void
qc_nonmono_send(struct qc *qc, struct sk *s, size_t n)
{
    size_t i, j, m;

    qsort(s, n, sizeof(*s), cmp_sk_producer);
    for (i = 0; i < n; i = j) {
        int64_t max = -1;
        size_t max_op = 0;

        for (j = i; j < n && s[j].producer == s[i].producer && s[j].queue == s[i].queue;) {
            size_t g = j;

            for (; j < n && s[j].producer == s[g].producer && s[j].queue == s[g].queue &&
                   s[j].seq == s[g].seq;
                 j++) {
                if (max >= 0 && s[j].queue_idx <= max) {
                    cJSON *ex = qc_anomaly(qc, CK_NONMONO_SEND);

                    if (ex) {
                        cJSON_AddItemToObject(ex, "earlier", qc_json_op(qc, max_op));
                        cJSON_AddItemToObject(ex, "later", qc_json_op(qc, s[j].op));
                    }
                }
            }
            for (m = g; m < j; m++)
                if (s[m].queue_idx > max) {
                    max = s[m].queue_idx;
                    max_op = s[m].op;
                }
        }
    }
}

/*
 * realtime-order and stale-read, per queue, by one sweep each: acks sorted
 * by ack time, with a running maximum of acked offsets; operations sorted
 * by invoke time see the maximum over every ack strictly before them.
 *   realtime-order: a send invoked after another was acked got an offset
 *                   not above it.
 *   stale-read:     a poll invoked after a send was acked was told the
 *                   queue ends at or below that offset (max_offset), or
 *                   came back empty from at or below it.
 */
static void
qc_realtime(struct qc *qc, const struct sk *acks, size_t n)
{
    struct sk *invs = qc_alloc((n + 1) * sizeof(*invs));
    struct sk *polls;
    size_t npolls = 0, i, a;
    int64_t max = -1;
    size_t max_op = 0;
    int q = -1;

    for (i = 0; i < n; i++) {
        invs[i] = acks[i];
        invs[i].t = qc->ops[acks[i].op].t_inv;
    }
    qsort(invs, n, sizeof(*invs), cmp_sk_time);
    for (i = 0, a = 0; i < n; i++) {
        if (invs[i].queue != q) {
            q = invs[i].queue;
            max = -1;
            while (a < n && acks[a].queue < q)
                a++;
        }
        for (; a < n && acks[a].queue == q && acks[a].t < invs[i].t; a++)
            if (acks[a].queue_idx > max) {
                max = acks[a].queue_idx;
                max_op = acks[a].op;
            }
        if (max >= 0 && invs[i].queue_idx <= max) {
            cJSON *ex = qc_anomaly(qc, CK_REALTIME);

            if (ex) {
                cJSON_AddStringToObject(ex, "queue", qc->queues[q].text);
                cJSON_AddItemToObject(ex, "acked_first", qc_json_op(qc, max_op));
                cJSON_AddItemToObject(ex, "invoked_after", qc_json_op(qc, invs[i].op));
            }
        }
    }

    polls = qc_alloc((qc->nops + 1) * sizeof(*polls));
    for (i = 0; i < qc->nops; i++)
        if (qc->ops[i].f == QC_POLL && qc->ops[i].type == QC_OK)
            polls[npolls++] =
                (struct sk){.queue = qc->ops[i].queue, .t = qc->ops[i].t_inv, .op = i};
    qsort(polls, npolls, sizeof(*polls), cmp_sk_time);
    q = -1;
    for (i = 0, a = 0; i < npolls; i++) {
        const struct op *p = &qc->ops[polls[i].op];
        const char *why = NULL;

        if (polls[i].queue != q) {
            q = polls[i].queue;
            max = -1;
            while (a < n && acks[a].queue < q)
                a++;
        }
        for (; a < n && acks[a].queue == q && acks[a].t < polls[i].t; a++)
            if (acks[a].queue_idx > max) {
                max = acks[a].queue_idx;
                max_op = acks[a].op;
            }
        if (max < 0)
            continue;
        if (p->max_off >= 0 && p->max_off <= max)
            why = "max_offset below an acked offset";
        else if (p->nent == 0 && p->queue_idx <= max)
            why = "empty poll at or below an acked offset";
        if (why) {
            cJSON *ex = qc_anomaly(qc, CK_STALE);

            if (ex) {
                cJSON_AddStringToObject(ex, "reason", why);
                cJSON_AddItemToObject(ex, "send", qc_json_op(qc, max_op));
                cJSON_AddItemToObject(ex, "poll", qc_json_op(qc, polls[i].op));
                if (p->max_off >= 0)
                    cJSON_AddNumberToObject(ex, "max_offset", (double)p->max_off);
            }
        }
    }
    free(polls);
    free(invs);
}

static void
qc_order_checks(struct qc *qc)
{
    struct sk *s = qc_alloc((qc->nops + 1) * sizeof(*s));
    size_t n = 0, i;

    for (i = 0; i < qc->nops; i++) {
        const struct op *op = &qc->ops[i];

        if (op->f == QC_SEND && op->type == QC_OK)
            s[n++] = (struct sk){.queue = op->queue,
                                 .producer = qc->vals[op->value].producer,
                                 .seq = qc->vals[op->value].seq,
                                 .queue_idx = op->queue_idx,
                                 .t = op->t_done,
                                 .op = i};
    }
    qsort(s, n, sizeof(*s), cmp_sk_time);
    qc_realtime(qc, s, n);
    qc_nonmono_send(qc, s, n);
    free(s);
}

/* A consumer session: the polls of one process on one queue, each starting
 * where the previous one said to continue. */
struct session {
    bool active;
    int64_t expect; /* the offset the next message should have */
    int64_t next_from;
    size_t start_op;
};

/*
 * poll-skip and nonmonotonic-poll, walking the history in completion
 * order. A seek, or a poll whose "from" is not the session's next offset,
 * starts a new session. Within one, each message should sit at the
 * expected offset: below it is nonmonotonic-poll; above it, with an offset
 * known to exist in between, is poll-skip. Each discontinuity is reported
 * once, since the expectation then follows the stream.
 */
static void
qc_sessions(struct qc *qc)
{
    struct smap map = {0};
    struct session *ss = NULL;
    size_t nss = 0, cap = 0, i, k;
    char key[48];

    for (i = 0; i < qc->ndone; i++) {
        const struct op *op = &qc->ops[qc->done[i]];
        struct session *s;
        int si;

        if (op->f == QC_SEND || (op->f == QC_POLL && op->type != QC_OK))
            continue;
        snprintf(key, sizeof(key), "%d:%d", op->proc, op->queue);
        si = smap_get(&map, key);
        if (si < 0) {
            qc_grow(&ss, &cap, nss + 1, sizeof(*ss));
            si = (int)nss++;
            ss[si].active = false;
            smap_put(&map, key, si);
        }
        s = &ss[si];
        if (op->f == QC_SEEK) {
            s->active = false;
            continue;
        }
        if (!s->active || op->queue_idx != s->next_from) {
            s->active = true;
            s->expect = op->queue_idx;
            s->start_op = qc->done[i];
        }
        for (k = 0; k < op->nent; k++) {
            size_t ei = op->ent0 + k;
            int64_t o = qc->ents[ei].queue_idx;
            int ck = -1;

            if (o < s->expect)
                ck = CK_NONMONO_POLL;
            else if (o > s->expect && qc_known_in(qc, op->queue, s->expect, o))
                ck = CK_POLL_SKIP;
            if (ck >= 0) {
                cJSON *ex = qc_anomaly(qc, ck);

                if (ex) {
                    cJSON_AddNumberToObject(ex, "expected", (double)s->expect);
                    cJSON_AddNumberToObject(ex, "got", (double)o);
                    cJSON_AddNumberToObject(ex, "session_start_line",
                                            (double)qc->ops[s->start_op].inv_line);
                    cJSON_AddItemToObject(ex, "poll", qc_json_ent(qc, ei));
                }
            }
            s->expect = o + 1;
        }
        s->next_from = op->next;
    }
    free(ss);
    smap_free(&map);
}

/*
 * dense-offsets: RocketMQ consume-queue offsets are dense, so every offset
 * from 0 to the largest one polled must be known (acked or polled). Each
 * maximal run of missing offsets is one anomaly. Offsets above the last
 * polled one are left alone: polls have not covered them.
 */
static void
qc_dense(struct qc *qc)
{
    size_t q, i;

    for (q = 0; q < qc->nqueues; q++) {
        const int64_t *k = qc->known + qc->known0[q];
        int64_t expect = 0;

        if (qc->max_polled[q] < 0)
            continue;
        for (i = 0; i < qc->nknown[q] && k[i] <= qc->max_polled[q]; i++) {
            if (k[i] > expect) {
                cJSON *ex = qc_anomaly(qc, CK_DENSE);

                if (ex) {
                    cJSON_AddStringToObject(ex, "queue", qc->queues[q].text);
                    cJSON_AddNumberToObject(ex, "missing_from", (double)expect);
                    cJSON_AddNumberToObject(ex, "missing_to", (double)(k[i] - 1));
                    cJSON_AddNumberToObject(ex, "max_polled", (double)qc->max_polled[q]);
                }
            }
            expect = k[i] + 1;
        }
    }
}

/* ---- output ---------------------------------------------------------- */

/* Writes results to <path> ("-" for stdout) and the summary to stderr.
 * Returns 1 when some check other than retry-duplicate failed, else 0;
 * -errno when the results could not be written. */
static int
qc_report(struct qc *qc, const char *path, const char *input)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *stats, *counts, *anomalies;
    long nsend[4] = {0}, npoll = 0, npoll_ok = 0, nseek = 0;
    int passed = 0, failed = 0;
    char *text = NULL;
    FILE *out = NULL;
    bool valid = true;
    size_t i;
    int rc = 0;
    int ck;

    for (i = 0; i < qc->nops; i++) {
        if (qc->ops[i].f == QC_SEND)
            nsend[qc->ops[i].type]++;
        else if (qc->ops[i].f == QC_POLL) {
            npoll++;
            npoll_ok += qc->ops[i].type == QC_OK;
        } else
            nseek++;
    }
    for (ck = 0; ck < CK_N; ck++)
        if (ck != CK_RETRY_DUP && qc->counts[ck])
            valid = false;

    cJSON_AddBoolToObject(root, "valid", valid);
    stats = cJSON_AddObjectToObject(root, "stats");
    cJSON_AddNumberToObject(stats, "lines", (double)qc->nlines);
    cJSON_AddNumberToObject(stats, "ops", (double)qc->nops);
    cJSON_AddNumberToObject(stats, "sends_ok", (double)nsend[QC_OK]);
    cJSON_AddNumberToObject(stats, "sends_fail", (double)nsend[QC_FAIL]);
    cJSON_AddNumberToObject(stats, "sends_info", (double)nsend[QC_INFO]);
    cJSON_AddNumberToObject(stats, "polls", (double)npoll);
    cJSON_AddNumberToObject(stats, "polls_ok", (double)npoll_ok);
    cJSON_AddNumberToObject(stats, "polled_msgs", (double)qc->nents);
    cJSON_AddNumberToObject(stats, "seeks", (double)nseek);
    cJSON_AddNumberToObject(stats, "queues", (double)qc->nqueues);
    cJSON_AddNumberToObject(stats, "values", (double)qc->nvals);
    counts = cJSON_AddObjectToObject(root, "counts");
    for (ck = 0; ck < CK_N; ck++)
        cJSON_AddNumberToObject(counts, qc_check_name[ck], (double)qc->counts[ck]);
    anomalies = cJSON_AddObjectToObject(root, "anomalies");
    for (ck = 0; ck < CK_N; ck++) {
        cJSON_AddItemToObject(anomalies, qc_check_name[ck], qc->examples[ck]);
        qc->examples[ck] = NULL; /* now owned by root */
    }

    fprintf(stderr,
            "qcheck: %s: %ld lines, %zu ops (sends: %ld ok, %ld fail, %ld info; "
            "%ld polls, %zu messages polled; %ld seeks) on %zu queues\n",
            input, qc->nlines, qc->nops, nsend[QC_OK], nsend[QC_FAIL], nsend[QC_INFO], npoll,
            qc->nents, nseek, qc->nqueues);
    for (ck = 0; ck < CK_N; ck++) {
        const char *verdict = ck == CK_RETRY_DUP ? "note" : qc->counts[ck] ? "FAIL" : "ok";

        fprintf(stderr, "  %-4s %-22s %ld\n", verdict, qc_check_name[ck], qc->counts[ck]);
        if (qc->counts[ck]) {
            char *first = cJSON_PrintUnformatted(cJSON_GetArrayItem(
                cJSON_GetObjectItemCaseSensitive(anomalies, qc_check_name[ck]), 0));

            fprintf(stderr, "         e.g. %.300s%s\n", first, strlen(first) > 300 ? "..." : "");
            free(first);
        }
        /* retry-duplicate is allowed by at-least-once delivery: a note. */
        if (ck == CK_RETRY_DUP || !qc->counts[ck])
            passed++;
        else
            failed++;
    }
    fprintf(stderr, "qcheck: history is %s\n", valid ? "valid" : "INVALID");

    text = cJSON_Print(root);
    out = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!out) {
        rc = -errno;
        fprintf(stderr, "qcheck: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (fputs(text, out) == EOF || fputc('\n', out) == EOF) {
        rc = -EIO;
        fprintf(stderr, "qcheck: %s: write failed\n", path);
    }
    if (out == stdout ? fflush(out) != 0 : fclose(out) != 0) {
        rc = -EIO;
        fprintf(stderr, "qcheck: %s: write failed\n", path);
    }
    fprintf(stderr, "%d passed, %d failed\n", passed, failed);
    if (!rc)
        rc = valid ? 0 : 1;
out:
    free(text);
    cJSON_Delete(root);
    return rc;
}

static void
qc_free(struct qc *qc)
{
    size_t i;
    int ck;

    for (i = 0; i < qc->nprocs; i++)
        free(qc->procs[i].text);
    for (i = 0; i < qc->nproducers; i++)
        free(qc->producers[i].text);
    for (i = 0; i < qc->nqueues; i++)
        free(qc->queues[i].text);
    for (ck = 0; ck < CK_N; ck++)
        cJSON_Delete(qc->examples[ck]);
    smap_free(&qc->procmap);
    smap_free(&qc->producermap);
    smap_free(&qc->queuemap);
    smap_free(&qc->valmap);
    smap_free(&qc->groupmap);
    free(qc->ops);
    free(qc->ents);
    free(qc->vals);
    free(qc->procs);
    free(qc->producers);
    free(qc->queues);
    free(qc->done);
    free(qc->known);
    free(qc->known0);
    free(qc->nknown);
    free(qc->max_polled);
    free(qc->max_polled_ent);
}

static void
usage(FILE *f)
{
    fputs("usage: qcheck [-o FILE] [HISTORY]\n"
          "\n"
          "Checks a JSONL queue history (HISTORY, or stdin when absent or \"-\") for the\n"
          "anomalies of RELIABILITY.md section 5; tests/checker/README.md gives the input\n"
          "format. Writes results.json (counts, the first 20 examples of each anomaly,\n"
          "\"valid\") and a summary on stderr ending in \"N passed, N failed\".\n"
          "\n"
          "  -o FILE   where to write the results (default results.json; \"-\" is stdout)\n"
          "  -h, --help\n"
          "\n"
          "Exit status: 0 valid, 1 anomalies found, 2 usage or input error.\n",
          f);
}

static void *
qc_cjson_alloc(size_t n)
{
    return qc_alloc(n);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    cJSON_Hooks hooks = {qc_cjson_alloc, free};
    const char *outpath = "results.json";
    const char *input = "-";
    struct qc qc = {0};
    FILE *in = NULL;
    int rc = 2;
    int c, ck;

    while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'o':
            outpath = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        usage(stderr);
        return 2;
    }
    if (optind < argc)
        input = argv[optind];

    /* cJSON then never returns NULL for want of memory. */
    cJSON_InitHooks(&hooks);
    for (ck = 0; ck < CK_N; ck++)
        qc.examples[ck] = cJSON_CreateArray();

    in = strcmp(input, "-") == 0 ? stdin : fopen(input, "r");
    if (!in) {
        fprintf(stderr, "qcheck: %s: %s\n", input, strerror(errno));
        goto out;
    }
    if (qc_read(&qc, in))
        goto out;

    qc_version_order(&qc);
    qc_reads(&qc);
    qc_order_checks(&qc);
    qc_sessions(&qc);
    qc_dense(&qc);
    rc = qc_report(&qc, outpath, input);
    if (rc < 0)
        rc = 2;
out:
    if (in && in != stdin)
        fclose(in);
    qc_free(&qc);
    return rc;
}
