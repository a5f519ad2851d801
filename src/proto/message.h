/*
 * message.h - SEND_BATCH_MESSAGE bodies and message properties strings.
 *
 * MessageBatch body (PROTOCOL.md 4.3), all integers big-endian, one entry
 * per message, entries concatenated with nothing in between:
 *
 *   int32 TOTALSIZE     = 22 + bodyLen + propLen (includes this field)
 *   int32 MAGICCODE     0, unused
 *   int32 BODYCRC       0, unused (the broker computes the CRC itself)
 *   int32 FLAG
 *   int32 BODYLEN       + BODY[bodyLen]
 *   int16 PROPERTIESLEN + PROPERTIES[propLen]
 *
 * Properties string (PROTOCOL.md 4.4):
 *   name 0x01 value 0x02 name 0x01 value 0x02 ...
 *
 * PROTOCOL.md 4.3 writes "20 + bodyLen + propLen" but its own 40-byte
 * example, and Java's MessageDecoder, count the int16 PROPERTIESLEN too:
 * 4+4+4+4+4 + bodyLen + 2 + propLen. The example and Java are followed.
 *
 * Everything here is a pure function of its arguments: no I/O, no logging,
 * no global state, so every entry point can be fed hostile bytes by a fuzzer.
 * Decoders return SPK_EFORMAT or SPK_ETOOBIG on bad input, never assert.
 */
#ifndef SPK_PROTO_MESSAGE_H
#define SPK_PROTO_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

/* Fixed part of one MessageBatch entry: the five int32 fields and the int16. */
#define PROTO_BATCH_ENTRY_FIXED 22u

/* PROPERTIESLEN is a Java short: longer property strings cannot be stored. */
#define PROTO_PROPS_MAX 32767u

#define PROTO_PROP_NAME_SEP '\001' /* NAME_VALUE_SEPARATOR */
#define PROTO_PROP_SEP      '\002' /* PROPERTY_SEPARATOR */

/* One message of a SEND_BATCH_MESSAGE body: views into the body buffer (borrowed). */
struct proto_batch_msg {
    int32_t flag;
    const uint8_t *body;
    uint32_t body_len;
    const char *props;
    uint32_t props_len;
};

#define PROTO_BATCH_MAX_MSGS 1024 /* hard limit per batch; more -> SPK_ETOOBIG */

/*
 * Splits a MessageBatch body (PROTOCOL.md 4.3) into messages. Validates
 * every entry: TOTALSIZE == 22 + bodyLen + propLen exactly (see above),
 * TOTALSIZE within the bytes left, bodyLen/propLen non-negative and inside
 * TOTALSIZE, propLen <= 32767, the entries exactly fill the buffer
 * (trailing garbage is an error). MAGICCODE and BODYCRC are not checked
 * (clients leave them 0 and the broker ignores them).
 *
 * On success returns 0 and writes *n messages to out[0..*n). Returns
 * SPK_EFORMAT for malformed input (including an empty body), SPK_ETOOBIG
 * when there are more than PROTO_BATCH_MAX_MSGS messages or more than
 * <cap>. The whole body is validated before anything is written, so on
 * failure neither out[] nor *n is touched.
 */
int proto_batch_split(const uint8_t *buf, size_t len, struct proto_batch_msg *out, size_t cap,
                      size_t *n);

/*
 * Encodes one batch entry (for clients and tests): returns the bytes
 * needed (22 + body_len + props_len); writes them to <dst> unless it is
 * NULL. Returns 0 and writes nothing when the entry cannot be encoded
 * (props_len > 32767 or a total that does not fit an int32).
 */
size_t proto_batch_encode(uint8_t *dst, int32_t flag, const void *body, uint32_t body_len,
                          const char *props, uint32_t props_len);

/*
 * Properties string (PROTOCOL.md 4.4): iteration with Java's parser rules
 * (split on 0x02, then on the first 0x01; pieces shorter than 3 bytes, or
 * with an empty name or value, are skipped; a value may contain 0x01).
 * Returns 1 and the next pair (views into <props>) advancing *pos, 0 at the
 * end. Start with *pos = 0.
 */
int proto_props_next(const char *props, size_t len, size_t *pos, const char **name,
                     size_t *name_len, const char **val, size_t *val_len);

/* Last value of <name> (a repeated name keeps its last value), 1 if found, else 0. */
int proto_props_get(const char *props, size_t len, const char *name, const char **val,
                    size_t *val_len);

/*
 * A growable properties builder for the broker (it rewrites properties:
 * add CLUSTER, REAL_TOPIC ...). <data> is always in canonical form (every
 * pair ends in 0x02) and, once non-NULL, NUL-terminated; <len> excludes
 * the NUL.
 */
struct proto_props_buf {
    char *data;
    size_t len, cap;
};

void proto_props_init(struct proto_props_buf *b);
void proto_props_free(struct proto_props_buf *b);

/*
 * Appends "name\1value\2". A name or value containing 0x01 or 0x02, or an
 * empty name or value (Java's parser would drop the pair), is refused with
 * SPK_EFORMAT; a total length > 32767 is SPK_ETOOBIG; -ENOMEM if memory
 * runs out. On failure <b> is unchanged.
 */
int proto_props_put(struct proto_props_buf *b, const char *name, const char *val);

/*
 * Appends every pair of <props> (as proto_props_next sees them) except
 * those whose name is in <drop> (NULL-terminated list, may be NULL); the
 * caller may then append more with proto_props_put. A missing trailing 0x02
 * in the source is handled (pairs are re-emitted in canonical form). Same
 * errors as proto_props_put; on failure <b> is unchanged.
 */
int proto_props_copy(struct proto_props_buf *b, const char *props, size_t len,
                     const char *const *drop);

#endif /* SPK_PROTO_MESSAGE_H */
