/*
 * record.c - CommitLog record encoder and validating parser (record.h).
 *
 * The parser treats its input as hostile: every length is checked against
 * the bytes that remain before it is used, and nothing is asserted on data.
 */
#include "store/record.h"

#include <string.h>

#include "common/bytes.h"
#include "common/crc.h"
#include "common/errors.h"

#define CRC_PROP_NAME "__CRC32#"
#define CRC_PROP_NAME_LEN 8

static int
host_len(int addr_len)
{
    return addr_len == 16 ? 20 : 8;
}

/* Length of the properties area as written: a missing final 0x02 is added
 * when the CRC property follows, so the property list stays well formed. */
static size_t
props_area_len(const struct rec_msg *m, int crc_prop)
{
    size_t n = m->props_len;

    if (crc_prop) {
        if (n > 0 && m->props[n - 1] != REC_PROP_SEP)
            n++;
        n += REC_CRC_PROP_LEN;
    }
    return n;
}

static int
topic_len_size(const struct rec_msg *m)
{
    /* V2 is chosen from the byte length, not Java's char count, so that a
     * long multibyte topic can never overflow V1's signed length byte
     * (STORE.md 16, point 9). */
    return m->topic_len > 127 ? 2 : 1;
}

size_t
rec_length(const struct rec_msg *m, int crc_prop)
{
    size_t props = props_area_len(m, crc_prop);

    if (m->topic_len > 32767 || props > 32767 || m->body_len > 0x7FFFFFFFu - 65536)
        return 0;
    return 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + (size_t)host_len(m->born_host_len) + 8 +
           (size_t)host_len(m->store_host_len) + 4 + 8 + 4 + m->body_len +
           (size_t)topic_len_size(m) + m->topic_len + 2 + props;
}

/* Writes the 10 decimal digits of <v>, least significant first. */
static void
put_crc_digits(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 10; i++) {
        p[i] = (uint8_t)('0' + v % 10);
        v /= 10;
    }
}

static void
seal_crc_prop(uint8_t *dst, size_t len)
{
    uint32_t crc = spk_crc32_masked(dst, len - REC_CRC_PROP_LEN);

    put_crc_digits(dst + len - 11, crc);
}

static void
encode(uint8_t *dst, size_t len, const struct rec_msg *m, uint32_t body_crc, uint64_t queue_off,
       uint64_t phys_off, int64_t store_ts, int crc_prop, const uint32_t *body_plain)
{
    size_t body_at = 0;
    uint8_t *p = dst;
    int32_t sysflag = m->sysflag & ~(REC_SYS_BORN_V6 | REC_SYS_STORE_V6);
    int v2 = topic_len_size(m) == 2;
    size_t props = props_area_len(m, crc_prop);

    if (m->born_host_len == 16)
        sysflag |= REC_SYS_BORN_V6;
    if (m->store_host_len == 16)
        sysflag |= REC_SYS_STORE_V6;

    be_put32(p, (uint32_t)len);
    be_put32(p + 4, v2 ? REC_MAGIC_V2 : REC_MAGIC_V1);
    be_put32(p + 8, body_crc);
    be_put32(p + 12, (uint32_t)m->queue_id);
    be_put32(p + 16, (uint32_t)m->flag);
    be_put64(p + 20, queue_off);
    be_put64(p + 28, phys_off);
    be_put32(p + 36, (uint32_t)sysflag);
    be_put64(p + 40, (uint64_t)m->born_ts);
    p += 48;
    memcpy(p, m->born_host, (size_t)m->born_host_len);
    p += m->born_host_len;
    be_put32(p, (uint32_t)m->born_port);
    p += 4;
    be_put64(p, (uint64_t)store_ts);
    p += 8;
    memcpy(p, m->store_host, (size_t)m->store_host_len);
    p += m->store_host_len;
    be_put32(p, (uint32_t)m->store_port);
    p += 4;
    be_put32(p, (uint32_t)m->reconsume_times);
    be_put64(p + 4, (uint64_t)m->prepared_tx_offset);
    be_put32(p + 12, (uint32_t)m->body_len);
    p += 16;
    body_at = (size_t)(p - dst);
    if (m->body_len > 0)
        memcpy(p, m->body, m->body_len);
    p += m->body_len;
    if (v2) {
        be_put16(p, (uint16_t)m->topic_len);
        p += 2;
    } else {
        *p++ = (uint8_t)m->topic_len;
    }
    memcpy(p, m->topic, m->topic_len);
    p += m->topic_len;
    be_put16(p, (uint16_t)props);
    p += 2;
    if (m->props_len > 0)
        memcpy(p, m->props, m->props_len);
    p += m->props_len;
    if (crc_prop) {
        if (m->props_len > 0 && m->props[m->props_len - 1] != REC_PROP_SEP)
            *p++ = REC_PROP_SEP;
        memcpy(p, CRC_PROP_NAME, CRC_PROP_NAME_LEN);
        p[CRC_PROP_NAME_LEN] = REC_NAME_SEP;
        p[CRC_PROP_NAME_LEN + 11] = REC_PROP_SEP;
        if (body_plain == NULL) {
            seal_crc_prop(dst, len);
        } else {
            size_t tail_at = body_at + m->body_len, tail_len = len - REC_CRC_PROP_LEN - tail_at;
            uint32_t crc = spk_crc32(dst, body_at);
            crc = spk_crc32_combine(crc, *body_plain, m->body_len);
            crc = spk_crc32_combine(crc, spk_crc32(dst + tail_at, tail_len), tail_len);
            put_crc_digits(dst + len - 11, crc & SPK_CRC_MASK);
        }
    }
}

void
rec_encode(uint8_t *dst, size_t len, const struct rec_msg *m, uint32_t body_crc,
           uint64_t queue_off, uint64_t phys_off, int64_t store_ts, int crc_prop)
{
    encode(dst, len, m, body_crc, queue_off, phys_off, store_ts, crc_prop, NULL);
}

void
rec_encode_fast(uint8_t *dst, size_t len, const struct rec_msg *m, uint32_t body_crc_plain,
                uint64_t queue_off, uint64_t phys_off, int64_t store_ts, int crc_prop)
{
    encode(dst, len, m, body_crc_plain & SPK_CRC_MASK, queue_off, phys_off, store_ts, crc_prop,
           &body_crc_plain);
}

void
rec_patch_queue_off(uint8_t *rec, uint64_t queue_off)
{
    uint32_t len = be_get32(rec);
    struct rec_view v;
    const char *why;

    be_put64(rec + 20, queue_off);
    if (rec_parse(rec, len, REC_ANY_POS, REC_CHECK_NONE, &v, &why) > 0 && v.has_crc_prop)
        seal_crc_prop(rec, len);
}

void
rec_encode_blank(uint8_t *dst, uint32_t len)
{
    be_put32(dst, len);
    be_put32(dst + 4, REC_MAGIC_BLANK);
}

/* Is the record's last property the CRC property? Checks the fixed shape
 * of the final 20 bytes. */
static int
ends_with_crc_prop(const char *props, size_t len)
{
    const char *t;

    if (len < REC_CRC_PROP_LEN)
        return 0;
    t = props + len - REC_CRC_PROP_LEN;
    if (len > REC_CRC_PROP_LEN && t[-1] != REC_PROP_SEP)
        return 0;
    return memcmp(t, CRC_PROP_NAME, CRC_PROP_NAME_LEN) == 0 &&
           t[CRC_PROP_NAME_LEN] == REC_NAME_SEP && t[REC_CRC_PROP_LEN - 1] == REC_PROP_SEP;
}

static int
read_crc_digits(const char *p, uint32_t *out)
{
    uint64_t v = 0;

    for (int i = 9; i >= 0; i--) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > 0x7FFFFFFFu)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

#define FAIL(reason)                                                                         \
    do {                                                                                     \
        *why = (reason);                                                                     \
        return SPK_ECORRUPT;                                                                 \
    } while (0)

int
rec_parse(const uint8_t *p, size_t avail, uint64_t expect_phys, enum rec_check check,
          struct rec_view *v, const char **why)
{
    size_t pos, total;
    uint32_t magic;
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (avail < 8)
        FAIL("fewer than 8 bytes left");
    total = be_get32(p);
    magic = be_get32(p + 4);
    if (magic == REC_MAGIC_BLANK) {
        memset(v, 0, sizeof(*v));
        v->total = (uint32_t)total;
        v->magic = magic;
        return 0;
    }
    if (magic != REC_MAGIC_V1 && magic != REC_MAGIC_V2)
        FAIL(total == 0 && magic == 0 ? "no record (zero bytes)" : "bad magic code");
    if (total < REC_MIN_LEN)
        FAIL("total size below the minimum record");
    if (total > avail)
        FAIL("total size runs past the end of the data");
    if (total > 0x7FFFFFFFu)
        FAIL("total size negative");

    memset(v, 0, sizeof(*v));
    v->total = (uint32_t)total;
    v->magic = magic;
    v->body_crc = be_get32(p + 8);
    v->queue_id = (int32_t)be_get32(p + 12);
    v->flag = (int32_t)be_get32(p + 16);
    v->queue_off = be_get64(p + 20);
    v->phys_off = be_get64(p + 28);
    v->sysflag = (int32_t)be_get32(p + 36);
    v->born_ts = (int64_t)be_get64(p + 40);
    pos = 48;
    v->born_host_len = (v->sysflag & REC_SYS_BORN_V6) ? 16 : 4;
    v->store_host_len = (v->sysflag & REC_SYS_STORE_V6) ? 16 : 4;
    /* fixed part with these host sizes: 91 - 16 + both host fields */
    if (total < (size_t)(75 + v->born_host_len + 4 + v->store_host_len + 4))
        FAIL("total size below the fixed fields");
    v->born_host = p + pos;
    pos += (size_t)v->born_host_len;
    v->born_port = (int32_t)be_get32(p + pos);
    pos += 4;
    v->store_ts = (int64_t)be_get64(p + pos);
    pos += 8;
    v->store_host = p + pos;
    pos += (size_t)v->store_host_len;
    v->store_port = (int32_t)be_get32(p + pos);
    pos += 4;
    v->reconsume_times = (int32_t)be_get32(p + pos);
    pos += 4;
    v->prepared_tx_offset = (int64_t)be_get64(p + pos);
    pos += 8;
    v->body_len = be_get32(p + pos);
    pos += 4;
    if (v->body_len > total - pos)
        FAIL("body length runs past the record");
    v->body = p + pos;
    pos += v->body_len;
    if (magic == REC_MAGIC_V2) {
        if (total - pos < 2)
            FAIL("topic length runs past the record");
        v->topic_len = be_get16(p + pos);
        pos += 2;
    } else {
        if (total - pos < 1)
            FAIL("topic length runs past the record");
        v->topic_len = p[pos];
        if (v->topic_len > 127)
            FAIL("V1 topic length negative");
        pos += 1;
    }
    if (v->topic_len == 0 || v->topic_len > total - pos)
        FAIL("topic length invalid");
    v->topic = (const char *)p + pos;
    pos += v->topic_len;
    if (total - pos < 2)
        FAIL("properties length runs past the record");
    v->props_len = be_get16(p + pos);
    pos += 2;
    if (v->props_len > 32767)
        FAIL("properties length negative");
    v->props = (const char *)p + pos;
    pos += v->props_len;
    if (pos != total)
        FAIL("field lengths do not add up to the total size");
    if (expect_phys != REC_ANY_POS && v->phys_off != expect_phys)
        FAIL("physical offset field does not match the record's position");
    v->has_crc_prop = ends_with_crc_prop(v->props, v->props_len);

    if (check == REC_CHECK_CRC_PROP && !v->has_crc_prop)
        FAIL("record CRC property missing or damaged");
    if (check != REC_CHECK_NONE) {
        if (v->has_crc_prop) {
            /* The record CRC covers every byte but its last 20, BODYCRC
             * and the body included: one pass checks them all (reads
             * check every record, so this is the pull path's main cost). */
            uint32_t want;
            if (read_crc_digits((const char *)p + total - 11, &want) != 0)
                FAIL("record CRC property malformed");
            if ((spk_crc32(p, total - REC_CRC_PROP_LEN) & SPK_CRC_MASK) != want)
                FAIL("record CRC mismatch");
        } else if ((spk_crc32(v->body, v->body_len) & SPK_CRC_MASK) != v->body_crc) {
            FAIL("body CRC mismatch");
        }
    }
    return (int)total;
}

int
rec_prop_get(const char *props, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name), i = 0;
    int found = 0;

    while (i < len) {
        const char *seg = props + i;
        const char *end = memchr(seg, REC_PROP_SEP, len - i);
        size_t slen = end ? (size_t)(end - seg) : len - i;
        const char *sep = memchr(seg, REC_NAME_SEP, slen);

        if (slen >= 3 && sep != NULL && sep > seg && (size_t)(sep - seg) < slen - 1 &&
            (size_t)(sep - seg) == nlen && memcmp(seg, name, nlen) == 0) {
            *val = sep + 1;
            *vlen = slen - nlen - 1;
            found = 1; /* keep going: the last occurrence wins */
        }
        i += slen + 1;
    }
    return found;
}

size_t
rec_msg_id(const uint8_t *host, int host_len_, int32_t port, uint64_t phys, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t raw[28];
    size_t n = 0;

    memcpy(raw, host, (size_t)host_len_);
    n = (size_t)host_len_;
    be_put32(raw + n, (uint32_t)port);
    n += 4;
    be_put64(raw + n, phys);
    n += 8;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n] = '\0';
    return 2 * n;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int
rec_msg_id_decode(const char *id, size_t len, uint64_t *phys)
{
    uint64_t v = 0;

    if (len != 32 && len != 56)
        return SPK_EFORMAT;
    for (size_t i = 0; i < len; i++)
        if (hexval(id[i]) < 0)
            return SPK_EFORMAT;
    for (size_t i = len - 16; i < len; i++)
        v = v << 4 | (uint64_t)hexval(id[i]);
    *phys = v;
    return 0;
}
