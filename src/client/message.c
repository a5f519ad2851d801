/*
 * message.c - spk_message: the public message object, its properties, the
 * decoding of stored-format messages from pull replies, and message ids.
 *
 * Invariants:
 *   INV-1  A property name or value never contains 0x01 or 0x02 (the
 *          separators), so the encoded properties string always parses
 *          back to the same pairs.
 *   INV-2  A message decoded from a reply owns copies of everything; the
 *          reply frame may be freed at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "client/internal.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "proto/message.h"
#include "store/record.h"

#define BODY_INFLATE_MAX (64u << 20) /* a compressed body may not claim more */

static char *
dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

spk_message *
spk_message_create(const char *topic, const void *body, size_t len)
{
    spk_message *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->queue_id = -1;
    m->queue_offset = -1;
    m->commitlog_offset = -1;
    if ((topic && spk_message_set_topic(m, topic)) || spk_message_set_body(m, body, len)) {
        spk_message_destroy(m);
        return NULL;
    }
    return m;
}

void
spk_message_destroy(spk_message *m)
{
    size_t i;

    if (!m)
        return;
    for (i = 0; i < m->nprops; i++) {
        free(m->props[i].name);
        free(m->props[i].value);
    }
    free(m->props);
    free(m->topic);
    free(m->body);
    free(m);
}

void
spk_messages_free(spk_message **msgs, size_t n)
{
    size_t i;

    if (!msgs)
        return;
    for (i = 0; i < n; i++)
        spk_message_destroy(msgs[i]);
    free(msgs);
}

int
spk_message_set_topic(spk_message *m, const char *topic)
{
    char *t;

    if (!m || !topic || !*topic || strlen(topic) > 255)
        return -EINVAL;
    t = strdup(topic);
    if (!t)
        return -ENOMEM;
    free(m->topic);
    m->topic = t;
    return 0;
}

int
spk_message_set_body(spk_message *m, const void *body, size_t len)
{
    uint8_t *b = NULL;

    if (!m || (len && !body))
        return -EINVAL;
    if (len) {
        b = malloc(len);
        if (!b)
            return -ENOMEM;
        memcpy(b, body, len);
    }
    free(m->body);
    m->body = b;
    m->body_len = len;
    return 0;
}

static int
has_sep(const char *s)
{
    return strchr(s, 1) != NULL || strchr(s, 2) != NULL;
}

int
cl_message_put(spk_message *m, const char *name, const char *value)
{
    char *v;
    size_t i;

    v = strdup(value);
    if (!v)
        return -ENOMEM;
    for (i = 0; i < m->nprops; i++) {
        if (strcmp(m->props[i].name, name) == 0) {
            free(m->props[i].value);
            m->props[i].value = v;
            return 0;
        }
    }
    if (m->nprops == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 8;
        struct cl_prop *np = realloc(m->props, nc * sizeof(*np));

        if (!np) {
            free(v);
            return -ENOMEM;
        }
        m->props = np;
        m->cap = nc;
    }
    m->props[m->nprops].name = strdup(name);
    if (!m->props[m->nprops].name) {
        free(v);
        return -ENOMEM;
    }
    m->props[m->nprops++].value = v;
    return 0;
}

void
cl_message_remove(spk_message *m, const char *name)
{
    size_t i;

    for (i = 0; i < m->nprops; i++) {
        if (strcmp(m->props[i].name, name) == 0) {
            free(m->props[i].name);
            free(m->props[i].value);
            memmove(&m->props[i], &m->props[i + 1], (m->nprops - i - 1) * sizeof(*m->props));
            m->nprops--;
            return;
        }
    }
}

int
spk_message_set_property(spk_message *m, const char *name, const char *value)
{
    if (!m || !name || !value || !*name || has_sep(name) || has_sep(value))
        return -EINVAL;
    if (!*value) { /* RocketMQ drops empty values; so does removing it */
        cl_message_remove(m, name);
        return 0;
    }
    return cl_message_put(m, name, value);
}

int
spk_message_set_tags(spk_message *m, const char *tags)
{
    return spk_message_set_property(m, "TAGS", tags);
}

int
spk_message_set_keys(spk_message *m, const char *keys)
{
    return spk_message_set_property(m, "KEYS", keys);
}

int
spk_message_set_delay_level(spk_message *m, int level)
{
    char buf[16];

    if (!m || level < 0 || level > 18)
        return -EINVAL;
    if (level == 0) {
        cl_message_remove(m, "DELAY");
        return 0;
    }
    snprintf(buf, sizeof(buf), "%d", level);
    return cl_message_put(m, "DELAY", buf);
}

int
spk_message_set_deliver_time(spk_message *m, int64_t epoch_ms)
{
    char buf[32];

    if (!m || epoch_ms <= 0)
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%lld", (long long)epoch_ms);
    return cl_message_put(m, "TIMER_DELIVER_MS", buf);
}

void
spk_message_set_flag(spk_message *m, int32_t flag)
{
    if (m)
        m->flag = flag;
}

const char *
spk_message_topic(const spk_message *m)
{
    return m->topic;
}

const void *
spk_message_body(const spk_message *m, size_t *len)
{
    if (len)
        *len = m->body_len;
    return m->body;
}

const char *
spk_message_property(const spk_message *m, const char *name)
{
    size_t i;

    for (i = 0; i < m->nprops; i++)
        if (strcmp(m->props[i].name, name) == 0)
            return m->props[i].value;
    return NULL;
}

const char *
spk_message_tags(const spk_message *m)
{
    return spk_message_property(m, "TAGS");
}

const char *
spk_message_keys(const spk_message *m)
{
    return spk_message_property(m, "KEYS");
}

int
spk_message_property_at(const spk_message *m, size_t i, const char **name, const char **value)
{
    if (i >= m->nprops)
        return 0;
    *name = m->props[i].name;
    *value = m->props[i].value;
    return 1;
}

int32_t
spk_message_flag(const spk_message *m)
{
    return m->flag;
}

int
spk_message_delay_level(const spk_message *m)
{
    const char *v = spk_message_property(m, "DELAY");

    return v ? atoi(v) : 0;
}

const char *
spk_message_id(const spk_message *m)
{
    const char *u = spk_message_property(m, "UNIQ_KEY");

    if (u)
        return u;
    return m->msg_id[0] ? m->msg_id : m->offset_id;
}

const char *
spk_message_offset_id(const spk_message *m)
{
    return m->offset_id;
}

const char *
spk_message_broker(const spk_message *m)
{
    return m->broker[0] ? m->broker : NULL;
}

int
spk_message_queue_id(const spk_message *m)
{
    return m->queue_id;
}

int64_t
spk_message_queue_offset(const spk_message *m)
{
    return m->queue_offset;
}

int64_t
spk_message_commitlog_offset(const spk_message *m)
{
    return m->commitlog_offset;
}

int64_t
spk_message_born_timestamp(const spk_message *m)
{
    return m->born_ts;
}

int64_t
spk_message_store_timestamp(const spk_message *m)
{
    return m->store_ts;
}

int
spk_message_reconsume_times(const spk_message *m)
{
    return m->reconsume_times;
}

int
cl_props_encode(const spk_message *m, struct sbuf *sb)
{
    size_t i;

    for (i = 0; i < m->nprops; i++) {
        sb_puts(sb, m->props[i].name);
        sb_putc(sb, PROTO_PROP_NAME_SEP);
        sb_puts(sb, m->props[i].value);
        sb_putc(sb, PROTO_PROP_SEP);
    }
    return sb->err;
}

spk_message *
cl_message_clone(const spk_message *m)
{
    spk_message *c = spk_message_create(m->topic, m->body, m->body_len);
    size_t i;

    if (!c)
        return NULL;
    for (i = 0; i < m->nprops; i++) {
        if (cl_message_put(c, m->props[i].name, m->props[i].value)) {
            spk_message_destroy(c);
            return NULL;
        }
    }
    c->flag = m->flag;
    memcpy(c->msg_id, m->msg_id, sizeof(c->msg_id));
    memcpy(c->offset_id, m->offset_id, sizeof(c->offset_id));
    memcpy(c->broker, m->broker, sizeof(c->broker));
    memcpy(c->born_host, m->born_host, sizeof(c->born_host));
    c->queue_id = m->queue_id;
    c->queue_offset = m->queue_offset;
    c->commitlog_offset = m->commitlog_offset;
    c->born_ts = m->born_ts;
    c->store_ts = m->store_ts;
    c->reconsume_times = m->reconsume_times;
    c->sysflag = m->sysflag;
    return c;
}

/* Inflates a zlib body; -EMSGSIZE past BODY_INFLATE_MAX. */
static int
inflate_body(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    uint8_t *buf = NULL;
    size_t cap = len * 4 + 64;
    int zr;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK)
        return -ENOMEM;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        uint8_t *nb;

        if (cap > BODY_INFLATE_MAX + 1)
            cap = BODY_INFLATE_MAX + 1;
        nb = realloc(buf, cap);
        if (!nb) {
            zr = Z_MEM_ERROR;
            break;
        }
        buf = nb;
        zs.next_out = buf + zs.total_out;
        zs.avail_out = (uInt)(cap - zs.total_out);
        zr = inflate(&zs, Z_FINISH);
        if (zr == Z_STREAM_END)
            break;
        if ((zr != Z_BUF_ERROR && zr != Z_OK) || zs.avail_out != 0)
            break;
        if (cap > BODY_INFLATE_MAX) {
            zr = Z_MEM_ERROR;
            break;
        }
        cap *= 2;
    }
    *out_len = zs.total_out;
    inflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        free(buf);
        return SPK_ECORRUPT;
    }
    *out = buf;
    return 0;
}

static void
host_text(const uint8_t *h, int hl, int32_t port, char *out, size_t n)
{
    if (hl == 4)
        snprintf(out, n, "%u.%u.%u.%u:%d", h[0], h[1], h[2], h[3], (int)port);
    else
        snprintf(out, n, "[ipv6]:%d", (int)port);
}

/* One record into a new message. */
static int
from_record(const struct rec_view *v, const char *broker, spk_message **out)
{
    spk_message *m = calloc(1, sizeof(*m));
    size_t pos = 0;
    int rc = 0;

    if (!m)
        return -ENOMEM;
    m->topic = dupn(v->topic, v->topic_len);
    if (!m->topic) {
        rc = -ENOMEM;
        goto fail;
    }
    if (v->sysflag & CL_SYS_COMPRESSED) {
        rc = inflate_body(v->body, v->body_len, &m->body, &m->body_len);
        if (rc)
            goto fail;
    } else if (v->body_len) {
        m->body = malloc(v->body_len);
        if (!m->body) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(m->body, v->body, v->body_len);
        m->body_len = v->body_len;
    }
    for (;;) {
        const char *n, *val;
        size_t nl, vl;
        char *ns, *vs;

        rc = proto_props_next(v->props, v->props_len, &pos, &n, &nl, &val, &vl);
        if (rc <= 0)
            break;
        if (nl == 0 || vl == 0)
            continue;
        ns = dupn(n, nl);
        vs = dupn(val, vl);
        rc = (!ns || !vs) ? -ENOMEM : 0;
        if (!rc && strcmp(ns, "__CRC32#") != 0)
            rc = cl_message_put(m, ns, vs);
        free(ns);
        free(vs);
        if (rc)
            goto fail;
    }
    rc = 0;
    m->flag = v->flag;
    m->queue_id = v->queue_id;
    m->queue_offset = (int64_t)v->queue_off;
    m->commitlog_offset = (int64_t)v->phys_off;
    m->born_ts = v->born_ts;
    m->store_ts = v->store_ts;
    m->reconsume_times = v->reconsume_times;
    m->sysflag = v->sysflag;
    rec_msg_id(v->store_host, v->store_host_len, v->store_port, v->phys_off, m->offset_id);
    host_text(v->born_host, v->born_host_len, v->born_port, m->born_host, sizeof(m->born_host));
    if (broker)
        snprintf(m->broker, sizeof(m->broker), "%s", broker);
    *out = m;
    return 0;
fail:
    spk_message_destroy(m);
    return rc;
}

int
cl_decode_messages(const uint8_t *body, size_t len, const char *broker, spk_message ***msgs,
                   size_t *n, size_t *cap)
{
    size_t pos = 0;
    int count = 0;

    while (pos < len) {
        struct rec_view v;
        const char *why = NULL;
        spk_message *m = NULL;
        int rl, rc;

        /* Records of another store arrive with their own offsets: check
         * structure and CRCs, not position. */
        rl = rec_parse(body + pos, len - pos, REC_ANY_POS, REC_CHECK_CRC, &v, &why);
        if (rl <= 0) {
            spk_log(SPK_LOG_WARN, CL_LOG, "message from %s at byte %zu rejected: %s",
                    broker ? broker : "?", pos, why ? why : "blank record");
            return SPK_ECORRUPT;
        }
        rc = from_record(&v, broker, &m);
        if (rc)
            return rc;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 32;
            spk_message **nm = realloc(*msgs, nc * sizeof(*nm));

            if (!nm) {
                spk_message_destroy(m);
                return -ENOMEM;
            }
            *msgs = nm;
            *cap = nc;
        }
        (*msgs)[(*n)++] = m;
        pos += (size_t)rl;
        count++;
    }
    return count;
}

/*
 * UNIQ_KEY layout (PROTOCOL.md 4.7): ip(4) pid(2) random(4) ms since the
 * start of the month(4) counter(2). The pid, the random salt and the
 * month's start are computed once (getpid and the time-zone lookup behind
 * mktime cost a system call each, per message otherwise) and again in a
 * forked child, which must not repeat its parent's ids.
 */
static pthread_mutex_t uniq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t uniq_once = PTHREAD_ONCE_INIT;
static int uniq_ready;
static uint32_t uniq_pid, uniq_salt;
static int64_t uniq_month_start, uniq_month_end;

static void
uniq_after_fork(void)
{
    uniq_ready = 0; /* the child is single-threaded here */
}

static void
uniq_register(void)
{
    pthread_atfork(NULL, NULL, uniq_after_fork);
}

/* The month containing <wall_ms>, local time, as RocketMQ's ids count. */
static void
uniq_month(int64_t wall_ms)
{
    time_t now = (time_t)(wall_ms / 1000);
    struct tm tm;

    localtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    uniq_month_start = (int64_t)mktime(&tm) * 1000;
    tm.tm_mon++;
    tm.tm_isdst = -1;
    uniq_month_end = (int64_t)mktime(&tm) * 1000;
}

void
cl_uniq_id(char out[33])
{
    static const char hex[] = "0123456789ABCDEF";
    static uint16_t counter;
    int64_t wall = spk_wall_ms();
    uint32_t ms, pid, salt;
    uint16_t cnt;
    uint8_t b[16];
    int i;

    pthread_once(&uniq_once, uniq_register);
    pthread_mutex_lock(&uniq_lock);
    if (!uniq_ready) {
        uniq_pid = (uint32_t)getpid();
        uniq_salt = (uint32_t)spk_mono_ns() ^ (uniq_pid << 16) ^ (uint32_t)wall;
        uniq_month(wall);
        uniq_ready = 1;
    }
    if (wall >= uniq_month_end || wall < uniq_month_start)
        uniq_month(wall);
    ms = (uint32_t)(wall - uniq_month_start);
    pid = uniq_pid;
    salt = uniq_salt;
    cnt = counter++;
    pthread_mutex_unlock(&uniq_lock);
    b[0] = 127;
    b[1] = 0;
    b[2] = 0;
    b[3] = 1;
    b[4] = (uint8_t)(pid >> 8);
    b[5] = (uint8_t)pid;
    b[6] = (uint8_t)(salt >> 24);
    b[7] = (uint8_t)(salt >> 16);
    b[8] = (uint8_t)(salt >> 8);
    b[9] = (uint8_t)salt;
    b[10] = (uint8_t)(ms >> 24);
    b[11] = (uint8_t)(ms >> 16);
    b[12] = (uint8_t)(ms >> 8);
    b[13] = (uint8_t)ms;
    b[14] = (uint8_t)(cnt >> 8);
    b[15] = (uint8_t)cnt;
    for (i = 0; i < 16; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = 0;
}

int32_t
cl_java_hash(const char *s)
{
    uint32_t h = 0;

    for (; *s; s++)
        h = h * 31u + (uint8_t)*s;
    return (int32_t)h;
}

const char *
spk_version(void)
{
    return "0.4.0";
}

static atomic_int log_level_chosen;

/*
 * The library's default log level is warn (sprocket.h), while the
 * project's logger starts at info: the first producer or consumer applies
 * the default, unless the program chose a level first.
 */
void
cl_log_default(void)
{
    int no = 0;

    if (atomic_compare_exchange_strong(&log_level_chosen, &no, 1))
        spk_log_set_level(SPK_LOG_WARN);
}

void
spk_set_log_level(int level)
{
    atomic_store(&log_level_chosen, 1);
    if (level < SPK_LOG_DEBUG)
        level = SPK_LOG_DEBUG;
    if (level > SPK_LOG_ERROR)
        level = SPK_LOG_ERROR;
    spk_log_set_level((enum spk_log_level)level);
}
