/*
 * remoting.h - RocketMQ "remoting" frames: splitting, decoding, encoding.
 *
 * Wire format (PROTOCOL.md 1.1-1.4), all integers big-endian:
 *
 *   int32 length            bytes that follow this field = 4 + headerLen + bodyLen
 *   int32 headerLenAndType  high byte serialize type (0 JSON, 1 ROCKETMQ), low 24 bits headerLen
 *   header[headerLen]       JSON text or ROCKETMQ binary header
 *   body[length-4-headerLen]
 *
 * Everything here is a pure function of its arguments: no I/O, no logging,
 * no global state, so every entry point can be fed hostile bytes by a fuzzer.
 * Decoders return SPK_EFORMAT or SPK_ETOOBIG on bad input, never assert.
 */
#ifndef SPK_PROTO_REMOTING_H
#define SPK_PROTO_REMOTING_H

#include <stddef.h>
#include <stdint.h>

/* RocketMQ's frameMaxLength; the length field must be <= this - 4. */
#define PROTO_FRAME_MAX 16777216u

#define PROTO_SER_JSON     0
#define PROTO_SER_ROCKETMQ 1

#define PROTO_FLAG_RESPONSE 1
#define PROTO_FLAG_ONEWAY   2

/* LanguageCode ordinals (PROTOCOL.md 5.3); the binary header carries them as a byte. */
#define PROTO_LANG_UNKNOWN (-1) /* a JSON name this table does not know */
#define PROTO_LANG_JAVA    0
#define PROTO_LANG_CPP     1
#define PROTO_LANG_DOTNET  2
#define PROTO_LANG_PYTHON  3
#define PROTO_LANG_DELPHI  4
#define PROTO_LANG_ERLANG  5
#define PROTO_LANG_RUBY    6
#define PROTO_LANG_OTHER   7
#define PROTO_LANG_HTTP    8
#define PROTO_LANG_GO      9
#define PROTO_LANG_PHP     10
#define PROTO_LANG_OMS     11
#define PROTO_LANG_RUST    12
#define PROTO_LANG_NODE_JS 13

/*
 * One extFields entry. In a command filled by proto_decode(), <key> and
 * <val> are NUL-terminated strings in the command's <mem> block, freed by
 * proto_cmd_free(). In a command built by a
 * caller for proto_encode_header() they are borrowed views of <key_len> /
 * <val_len> bytes that need no terminator; entries with a NULL key or value
 * are skipped, as Java skips null fields.
 */
struct proto_ext {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
};

struct proto_cmd {
    int32_t code;
    int language;           /* PROTO_LANG_*, the number as sent */
    int32_t version;
    int32_t opaque;
    int32_t flag;           /* PROTO_FLAG_* bits */
    int serialize_type;     /* PROTO_SER_* of the decoded frame */
    char *remark;           /* NUL-terminated, NULL if absent (in <mem> when decoded) */
    struct proto_ext *ext;  /* <next> entries, owned after proto_decode() */
    size_t next;
    int ext_present;        /* extFields was present (or must be emitted), even if empty */
    const uint8_t *body;    /* borrowed view into the frame; NULL when body_len == 0 */
    size_t body_len;
    char *mem;              /* decoded: one block holding remark, keys and values */
};

/*
 * Finds the first complete frame in the stream bytes buf[0..len).
 * Returns 0 and sets *frame_len (including the 4-byte length field);
 * -EAGAIN when more bytes are needed; SPK_ETOOBIG when the length field
 * exceeds PROTO_FRAME_MAX - 4; SPK_EFORMAT when it is < 4.
 */
int proto_frame_split(const uint8_t *buf, size_t len, size_t *frame_len);

/*
 * Decodes one whole frame frame[0..len) starting at its length field; the
 * length field must equal len - 4. Borrows <frame>: cmd->body points into
 * it. On success fills *cmd, which the caller releases with
 * proto_cmd_free(); on failure *cmd is untouched. Returns 0, SPK_EFORMAT,
 * SPK_ETOOBIG or -ENOMEM.
 */
int proto_decode(const uint8_t *frame, size_t len, struct proto_cmd *cmd);

/* Frees what proto_decode() allocated and zeroes *cmd; NULL or zeroed is fine. */
void proto_cmd_free(struct proto_cmd *cmd);

/* The extFields value for NUL-terminated <key> (first match); NULL when absent. */
const char *proto_ext_get(const struct proto_cmd *cmd, const char *key);

/*
 * Encodes the 8-byte prefix and a JSON header for <cmd> (borrowed) into a
 * new malloc'd buffer *out of *out_len bytes, which the caller free()s.
 * Keys are sorted as fastjson sorts them; remark is omitted when NULL;
 * extFields is emitted when next > 0 or ext_present, values always as
 * JSON strings in the caller's order. The body is not copied, but the
 * length field counts body_len. Returns 0, SPK_ETOOBIG (frame or header
 * over the limits) or -ENOMEM.
 */
int proto_encode_header(const struct proto_cmd *cmd, uint8_t **out, size_t *out_len);

#endif /* SPK_PROTO_REMOTING_H */
