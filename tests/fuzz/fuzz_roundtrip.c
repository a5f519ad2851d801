/*
 * fuzz_roundtrip.c - libFuzzer target for the three encoders whose
 * decoders the other targets fuzz one way only: decode(encode(m)) must
 * give back m (RELIABILITY.md T7, round-trip invariants).
 *
 * The first input byte picks the codec (low two bits), the rest drives it:
 *
 *   0  CommitLog record (store/record.h). A rec_msg is built from the
 *      input: IPv4 or IPv6 born and store hosts, sysflag, every fixed
 *      field, topic, properties and body. Checked:
 *        - rec_encode and rec_encode_fast write the same bytes;
 *        - rec_parse at the encoded position, CRCs checked (the CRC
 *          property required when one was written), accepts exactly the
 *          encoded length and returns every field as given; the
 *          properties come back as given followed by the CRC property;
 *        - rec_patch_queue_off keeps the record valid with the new offset;
 *        - one flipped bit anywhere in a record that carries the CRC
 *          property makes it fail validation (R6: CRC-32 catches every
 *          single-bit error), and the parser at another position refuses
 *          it (INV-3);
 *        - rec_msg_id / rec_msg_id_decode give the physical offset back.
 *   1  MessageBatch body (proto/message.h): up to 16 entries encoded with
 *      proto_batch_encode and concatenated; proto_batch_split returns
 *      exactly those flags, bodies and properties.
 *   2  Properties builder: pairs taken from the input go through
 *      proto_props_put (which refuses separators and empty pieces);
 *      proto_props_next returns exactly the accepted pairs in order, and
 *      proto_props_get finds each name's last value, as does
 *      rec_prop_get on the same string.
 *   3  the record path again with the input's tail as a second message,
 *      both encoded back to back as a batch would be: the first parse
 *      must stop exactly at the second record.
 * Any violated invariant is an abort(), so libFuzzer reports it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "proto/message.h"
#include "store/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A cursor over the input: reads past the end return zeros. */
struct in {
    const uint8_t *p;
    size_t n, at;
};

static uint8_t
get8(struct in *in)
{
    return in->at < in->n ? in->p[in->at++] : 0;
}

static uint64_t
getn(struct in *in, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v = (v << 8) | get8(in);
    return v;
}

/* Takes up to <want> bytes of the input as a view. */
static const uint8_t *
take(struct in *in, size_t want, size_t *got)
{
    size_t left = in->n - in->at;
    const uint8_t *p = in->p + in->at;

    *got = want < left ? want : left;
    in->at += *got;
    return p;
}

/* A violated invariant: say which one, then abort for libFuzzer. */
static void
fail_at(int line)
{
    fprintf(stderr, "fuzz_roundtrip: invariant at line %d violated\n", line);
    abort();
}
#define check(cond) ((cond) ? (void)0 : fail_at(__LINE__))

/* Builds a message from the input; the views point into the input. */
static void
build_msg(struct in *in, struct rec_msg *m, uint64_t *qoff, uint64_t *phys, int64_t *ts)
{
    uint8_t f = get8(in);
    size_t got;

    memset(m, 0, sizeof(*m));
    m->born_host_len = f & 1 ? 16 : 4;
    m->store_host_len = f & 2 ? 16 : 4;
    /* Host bits of the given sysflag must be ignored by the encoder. */
    m->sysflag = (int32_t)getn(in, 4);
    m->queue_id = (int32_t)getn(in, 4);
    m->flag = (int32_t)getn(in, 4);
    m->born_ts = (int64_t)getn(in, 8);
    for (int i = 0; i < m->born_host_len; i++)
        m->born_host[i] = get8(in);
    m->born_port = (int32_t)getn(in, 4);
    for (int i = 0; i < m->store_host_len; i++)
        m->store_host[i] = get8(in);
    m->store_port = (int32_t)getn(in, 4);
    m->reconsume_times = (int32_t)getn(in, 4);
    m->prepared_tx_offset = (int64_t)getn(in, 8);
    *qoff = getn(in, 8);
    *phys = getn(in, 8) >> (f & 0x40 ? 0 : 20); /* mostly small offsets */
    *ts = (int64_t)getn(in, 8);
    /* Topic: short or (bit 2) long, to reach the V2 two-byte length. */
    size_t tl = get8(in);
    if (f & 4)
        tl = tl * 64 + get8(in);
    m->topic = (const char *)take(in, tl, &got);
    m->topic_len = got;
    size_t pl = (size_t)getn(in, 2) & 0x7FFF;
    m->props = (const char *)take(in, pl, &got);
    m->props_len = got;
    if (got == 0)
        m->props = NULL;
    m->body = take(in, (size_t)getn(in, 2) + ((f & 8) ? in->n : 0), &got);
    m->body_len = got;
}

/* The parsed record equals what was encoded. */
static void
check_view(const struct rec_view *v, const struct rec_msg *m, size_t len, uint64_t qoff,
           uint64_t phys, int64_t ts, int crc_prop)
{
    int32_t sys = m->sysflag & ~(REC_SYS_BORN_V6 | REC_SYS_STORE_V6);

    sys |= (m->born_host_len == 16 ? REC_SYS_BORN_V6 : 0) |
           (m->store_host_len == 16 ? REC_SYS_STORE_V6 : 0);
    check(v->total == len && v->queue_id == m->queue_id && v->flag == m->flag);
    check(v->queue_off == qoff && v->phys_off == phys && v->store_ts == ts);
    check(v->sysflag == sys && v->born_ts == m->born_ts);
    check(v->born_host_len == m->born_host_len && v->store_host_len == m->store_host_len);
    check(memcmp(v->born_host, m->born_host, (size_t)m->born_host_len) == 0);
    check(memcmp(v->store_host, m->store_host, (size_t)m->store_host_len) == 0);
    check(v->born_port == m->born_port && v->store_port == m->store_port);
    check(v->reconsume_times == m->reconsume_times);
    check(v->prepared_tx_offset == m->prepared_tx_offset);
    check(v->body_len == m->body_len);
    check(m->body_len == 0 || memcmp(v->body, m->body, m->body_len) == 0);
    check(v->body_crc == (spk_crc32(m->body, m->body_len) & SPK_CRC_MASK));
    check(v->topic_len == m->topic_len);
    check(m->topic_len == 0 || memcmp(v->topic, m->topic, m->topic_len) == 0);
    check(v->has_crc_prop == crc_prop || (!crc_prop && v->has_crc_prop));
    if (!crc_prop) {
        check(v->props_len == m->props_len);
    } else {
        size_t extra = m->props_len > 0 && m->props[m->props_len - 1] != REC_PROP_SEP;
        check(v->props_len == m->props_len + extra + REC_CRC_PROP_LEN);
        check(memcmp(v->props + v->props_len - REC_CRC_PROP_LEN, "__CRC32#\001", 9) == 0);
    }
    check(m->props_len == 0 || memcmp(v->props, m->props, m->props_len) == 0);
}

/* Encodes one message at <at> of <buf> (both encoders), checks it and
 * returns its length, or 0 when the message cannot be encoded. */
static size_t
record_one(struct in *in, uint8_t **buf, size_t *cap, size_t at, int crc_prop, uint64_t *phys_out)
{
    struct rec_msg m;
    uint64_t qoff, phys;
    int64_t ts;
    struct rec_view v;
    const char *why;

    build_msg(in, &m, &qoff, &phys, &ts);
    size_t len = rec_length(&m, crc_prop);
    /* The store never writes an empty topic, and the parser refuses one. */
    if (len == 0 || m.topic_len == 0)
        return 0;
    /* Without our CRC property, properties that end in one of their own
     * would be checked as one (record.h INV-2): not a round trip. */
    if (!crc_prop && m.props_len > 0 && memmem(m.props, m.props_len, "__CRC32#", 8) != NULL)
        return 0;
    check(len >= REC_MIN_LEN);
    if (at + len > *cap) {
        uint8_t *nb = realloc(*buf, at + len);
        if (nb == NULL)
            return 0;
        *buf = nb;
        *cap = at + len;
    }
    uint8_t *dst = *buf + at, *slow = malloc(len);
    if (slow == NULL)
        return 0;
    uint32_t plain = spk_crc32(m.body, m.body_len);
    rec_encode(slow, len, &m, plain & SPK_CRC_MASK, qoff, phys, ts, crc_prop);
    rec_encode_fast(dst, len, &m, plain, qoff, phys, ts, crc_prop);
    check(memcmp(slow, dst, len) == 0);
    free(slow);

    enum rec_check chk = crc_prop ? REC_CHECK_CRC_PROP : REC_CHECK_CRC;
    check(rec_parse(dst, len, phys, chk, &v, &why) == (int)len);
    check_view(&v, &m, len, qoff, phys, ts, crc_prop);
    check(rec_parse(dst, len, REC_ANY_POS, chk, &v, &why) == (int)len);
    /* INV-3: the same bytes at another position are refused. */
    if (phys + 1 != REC_ANY_POS)
        check(rec_parse(dst, len, phys + 1, chk, &v, &why) < 0);
    *phys_out = phys;
    return len;
}

static void
fuzz_record(struct in *in)
{
    uint8_t mode = get8(in);
    int crc_prop = !(mode & 1);
    size_t cap = 0;
    uint8_t *buf = NULL;
    uint64_t phys;
    struct rec_view v;
    const char *why;
    size_t len = record_one(in, &buf, &cap, 0, crc_prop, &phys);

    if (len == 0)
        goto out;
    enum rec_check chk = crc_prop ? REC_CHECK_CRC_PROP : REC_CHECK_CRC;

    /* A new queue offset, patched in place, validates. */
    uint64_t nq = be_get64(buf + 20) ^ 0x5A5A;
    rec_patch_queue_off(buf, nq);
    check(rec_parse(buf, len, phys, chk, &v, &why) == (int)len && v.queue_off == nq);

    /* The message id names the record's offset. */
    char id[64];
    uint64_t back = 0;
    size_t idl = rec_msg_id(v.store_host, v.store_host_len, v.store_port, phys, id);
    check(idl == (v.store_host_len == 16 ? 56u : 32u));
    check(rec_msg_id_decode(id, idl, &back) == 0 && back == phys);

    /* One flipped bit anywhere is caught when the CRC property is there. */
    if (crc_prop) {
        size_t bit = (size_t)getn(in, 3) % (len * 8);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        check(rec_parse(buf, len, phys, REC_CHECK_CRC_PROP, &v, &why) < 0);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
out:
    free(buf);
}

static void
fuzz_two_records(struct in *in)
{
    size_t cap = 0;
    uint8_t *buf = NULL;
    uint64_t p1, p2;
    struct rec_view v;
    const char *why;
    size_t l1 = record_one(in, &buf, &cap, 0, 1, &p1);

    if (l1 == 0)
        goto out;
    size_t l2 = record_one(in, &buf, &cap, l1, 1, &p2);
    if (l2 == 0)
        goto out;
    /* The first record stops where the second begins, whatever follows. */
    check(rec_parse(buf, l1 + l2, p1, REC_CHECK_CRC_PROP, &v, &why) == (int)l1);
    check(rec_parse(buf + l1, l2, p2, REC_CHECK_CRC_PROP, &v, &why) == (int)l2);
out:
    free(buf);
}

#define MAXB 16

static void
fuzz_batch(struct in *in)
{
    struct {
        int32_t flag;
        const uint8_t *body;
        size_t body_len;
        const char *props;
        size_t props_len;
    } e[MAXB];
    static struct proto_batch_msg out[PROTO_BATCH_MAX_MSGS];
    size_t ne = get8(in) % MAXB + 1, total = 0, n = 0, got;
    uint8_t *buf;

    for (size_t i = 0; i < ne; i++) {
        e[i].flag = (int32_t)getn(in, 4);
        e[i].body = take(in, (size_t)getn(in, 2), &got);
        e[i].body_len = got;
        e[i].props = (const char *)take(in, (size_t)get8(in), &got);
        e[i].props_len = got;
        total += proto_batch_encode(NULL, e[i].flag, e[i].body, (uint32_t)e[i].body_len,
                                    e[i].props, (uint32_t)e[i].props_len);
    }
    buf = malloc(total ? total : 1);
    if (buf == NULL)
        return;
    size_t at = 0;
    for (size_t i = 0; i < ne; i++)
        at += proto_batch_encode(buf + at, e[i].flag, e[i].body, (uint32_t)e[i].body_len,
                                 e[i].props, (uint32_t)e[i].props_len);
    check(at == total);
    check(proto_batch_split(buf, total, out, PROTO_BATCH_MAX_MSGS, &n) == 0 && n == ne);
    for (size_t i = 0; i < ne; i++) {
        check(out[i].flag == e[i].flag && out[i].body_len == e[i].body_len &&
              out[i].props_len == e[i].props_len);
        check(e[i].body_len == 0 || memcmp(out[i].body, e[i].body, e[i].body_len) == 0);
        check(e[i].props_len == 0 || memcmp(out[i].props, e[i].props, e[i].props_len) == 0);
    }
    /* One byte short: refused (the entries must fill the body exactly). */
    check(proto_batch_split(buf, total - 1, out, PROTO_BATCH_MAX_MSGS, &n) != 0);
    free(buf);
}

#define MAXP 32

static void
fuzz_props(struct in *in)
{
    char names[MAXP][24], vals[MAXP][40];
    size_t np = get8(in) % MAXP, acc = 0, pos = 0, got;
    struct proto_props_buf b;
    const char *name, *val;
    size_t nl, vl;
    int accepted[MAXP];

    proto_props_init(&b);
    for (size_t i = 0; i < np; i++) {
        /* Names come from a small alphabet so that repeats happen. */
        const uint8_t *p = take(in, get8(in) % 4, &got);
        size_t k;
        for (k = 0; k < got; k++)
            names[i][k] = p[k] < 0x08 ? (char)p[k] : (char)('a' + p[k] % 3);
        names[i][k] = '\0';
        p = take(in, get8(in) % sizeof(vals[0]), &got);
        memcpy(vals[i], p, got);
        vals[i][got] = '\0';
        size_t before = b.len;
        int rc = proto_props_put(&b, names[i], vals[i]);
        int legal = names[i][0] != '\0' && vals[i][0] != '\0' &&
                    strpbrk(names[i], "\001\002") == NULL && strpbrk(vals[i], "\001\002") == NULL;
        accepted[i] = rc == 0;
        check(accepted[i] == legal);
        check(accepted[i] || b.len == before);
        acc += (size_t)accepted[i];
    }
    /* Iteration returns exactly the accepted pairs, in order. */
    size_t k = 0;
    for (size_t i = 0; i < np; i++) {
        if (!accepted[i])
            continue;
        check(proto_props_next(b.data, b.len, &pos, &name, &nl, &val, &vl) == 1);
        check(nl == strlen(names[i]) && memcmp(name, names[i], nl) == 0);
        check(vl == strlen(vals[i]) && memcmp(val, vals[i], vl) == 0);
        k++;
    }
    check(k == acc && proto_props_next(b.data, b.len, &pos, &name, &nl, &val, &vl) == 0);
    /* Lookups find the last value of each name, in both parsers. */
    for (size_t i = 0; i < np; i++) {
        size_t last = SIZE_MAX;
        if (!accepted[i])
            continue;
        for (size_t j = 0; j < np; j++)
            if (accepted[j] && strcmp(names[j], names[i]) == 0)
                last = j;
        check(proto_props_get(b.data, b.len, names[i], &val, &vl) == 1);
        check(vl == strlen(vals[last]) && memcmp(val, vals[last], vl) == 0);
        check(rec_prop_get(b.data, b.len, names[i], &val, &vl) == 1);
        check(vl == strlen(vals[last]) && memcmp(val, vals[last], vl) == 0);
    }
    proto_props_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size, 0};

    switch (get8(&in) & 3) {
    case 0:
        fuzz_record(&in);
        break;
    case 1:
        fuzz_batch(&in);
        break;
    case 2:
        fuzz_props(&in);
        break;
    default:
        fuzz_two_records(&in);
        break;
    }
    return 0;
}
