/*
 * topics.h - the broker's topic configuration table (RocketMQ's
 * TopicConfigManager), persisted in <config_dir>/topics.json.
 *
 * The file is RocketMQ's own TopicConfigSerializeWrapper JSON, so a Java
 * broker can start from it and we can start from a Java broker's file
 * (PROTOCOL.md 3.8.4, 5.8; DESIGN.md "Files that are replaced"):
 *
 *   {"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},
 *    "topicConfigTable":{"T":{"attributes":{},"order":false,"perm":6,
 *      "readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"T",
 *      "topicSysFlag":0,"writeQueueNums":8}}}
 *
 * followed, in what we write, by a "crc32" member that Java ignores
 * (config.h, "Sealed metadata files"); a file whose seal does not verify
 * is treated like one that does not parse (.bak, else refuse to start).
 *
 * Invariants:
 *   INV-1  After any mutating call returns 0, topics.json on disk holds
 *          exactly the in-memory table (written with
 *          sio_write_file_atomic, the old version kept as .bak). A call
 *          that fails to persist undoes its change in memory and returns
 *          the error, so memory never runs ahead of the disk. The one
 *          exception is the system topics topics_open() adds: like Java,
 *          they reach the file with the next change.
 *   INV-2  Every change bumps the data version (counter + 1, timestamp =
 *          now); a name server ignores re-registrations whose version did
 *          not change (PROTOCOL.md 5.9).
 *   INV-3  Iteration and serialisation are in byte order of the name.
 *
 * Threads: every function may be called from any thread; one mutex
 * guards the table. Mutating calls write and fsync the file while holding
 * it, like Java's persist() inside topicConfigTableLock.
 */
#ifndef SPK_BROKER_TOPICS_H
#define SPK_BROKER_TOPICS_H

#include <stddef.h>
#include <stdint.h>

#define PERM_PRIORITY 8
#define PERM_READ 4
#define PERM_WRITE 2
#define PERM_INHERIT 1

#define TOPIC_NAME_MAX 255 /* longest name stored (retry and DLQ topics) */
#define TOPIC_USER_NAME_MAX 127
#define TOPIC_QUEUES_MAX 65535

#define TOPIC_AUTO_CREATE "TBW102"
#define TOPIC_SELF_TEST "SELF_TEST_TOPIC"
#define TOPIC_BENCHMARK "BenchmarkTest"
#define TOPIC_OFFSET_MOVED "OFFSET_MOVED_EVENT"
#define TOPIC_SCHEDULE "SCHEDULE_TOPIC_XXXX"
#define TOPIC_TRANS_HALF "RMQ_SYS_TRANS_HALF_TOPIC"
#define TOPIC_TRANS_OP_HALF "RMQ_SYS_TRANS_OP_HALF_TOPIC"
#define TOPIC_TRANS_CHECK_MAX_TIME "TRANS_CHECK_MAX_TIME_TOPIC"
#define TOPIC_TRACE "RMQ_SYS_TRACE_TOPIC"
#define TOPIC_REPLY_SUFFIX "_REPLY_TOPIC"
#define TOPIC_RETRY_PREFIX "%RETRY%"
#define TOPIC_DLQ_PREFIX "%DLQ%"

struct topic_config {
    char name[TOPIC_NAME_MAX + 1];
    int read_queues, write_queues, perm, sysflag, order;
    int filter_multi_tag; /* topicFilterType MULTI_TAG (else SINGLE_TAG) */
};

struct topics;

/*
 * Loads <config_dir>/topics.json, falling back to topics.json.bak when
 * the main file is missing, empty or corrupt (logged), then adds the
 * system topics that are missing, as Java's constructor does (a topic in
 * the file keeps the file's settings):
 *
 *   TBW102                    7  defaultTopicQueueNums  only if auto-create is on
 *   SELF_TEST_TOPIC           6  1
 *   BenchmarkTest             6  1024
 *   <cluster>                 7  16
 *   <broker_name>             7  1     (Java: 1/1, not the 16/16 default)
 *   OFFSET_MOVED_EVENT        6  1
 *   SCHEDULE_TOPIC_XXXX       6  18
 *   <cluster>_REPLY_TOPIC     6  1
 *   RMQ_SYS_TRANS_HALF_TOPIC  6  1
 *   RMQ_SYS_TRANS_OP_HALF_TOPIC 6 1
 *
 * <cluster> and <broker_name> are borrowed (copied). Returns 0 and a new
 * table in *out (release it with topics_close()), or a negative errno,
 * or SPK_ECORRUPT when neither the file nor its .bak is usable; err
 * names the file. Nothing is written by this call.
 */
int topics_open(const char *config_dir, const char *cluster, const char *broker_name,
                int auto_create_topic_enable, int default_topic_queue_nums, struct topics **out,
                char *err, size_t errlen);
void topics_close(struct topics *t);

/* Copies the config of <name> into *out. Returns 0 or -ENOENT. */
int topics_get(struct topics *t, const char *name, struct topic_config *out);

/*
 * Creates or replaces the topic tc->name (an existing topic keeps its
 * attributes map), bumps the data version and persists (INV-1). Returns
 * 0, -EINVAL for an empty or over-long name, queue counts outside
 * 0..TOPIC_QUEUES_MAX or a perm outside 0..15, -ENOMEM, or the write's
 * error.
 */
int topics_put(struct topics *t, const struct topic_config *tc);

/* Removes <name>, bumps the version, persists. 0, -ENOENT or the write's error. */
int topics_delete(struct topics *t, const char *name);

/*
 * Send-side auto-create (Java createTopicInSendMessageMethod). If <name>
 * exists, copies it to *out with *created = 0. Otherwise, when the
 * template <def_topic> exists and has PERM_INHERIT, creates <name> with
 * read = write = min(<req_queues>, template write queues) (0 if that is
 * negative), perm = template perm without INHERIT, the template's filter
 * type, sysflag 0; persists and sets *created = 1. When the template is
 * TBW102 and auto-create is off, the template counts as having no
 * INHERIT (Java rewrites its perm to 6; we leave the stored copy alone).
 * Returns 0, -ENOENT when creation is not allowed (logged at WARN),
 * -EINVAL for a bad name, or the write's error.
 */
int topics_auto_create(struct topics *t, const char *name, const char *def_topic, int req_queues,
                       struct topic_config *out, int *created);

/*
 * For %RETRY%<group> and %DLQ%<group> (Java
 * createTopicInSendMessageBackMethod): if <name> is missing, creates it
 * with read = write = <queues>, <perm> and <sysflag> and persists. Copies
 * the (new or existing) config to *out; *created says which. Returns 0,
 * -EINVAL for bad arguments, or the write's error.
 */
int topics_ensure(struct topics *t, const char *name, int queues, int perm, int sysflag,
                  struct topic_config *out, int *created);

/*
 * Syntax of a topic name, as the send path checks it (TopicValidator):
 * non-empty, only [A-Za-z0-9%|_-], at most 127 bytes, or 255 for names
 * starting with %RETRY% or %DLQ%. Returns 0 or SPK_EFORMAT with a reason
 * in err (Java's wording). Reserved names pass: see the two below.
 */
int topics_validate_name(const char *name, char *err, size_t errlen);

/*
 * For topic creation by a user (UPDATE_AND_CREATE_TOPIC): the syntax
 * above, and not a system topic (TBW102, SCHEDULE_TOPIC_XXXX, the
 * transaction, trace, benchmark, self-test and offset-moved topics, any
 * rmq_sys_ name, <cluster>, <broker_name>, <cluster>_REPLY_TOPIC).
 * Returns 0 or SPK_EFORMAT with a reason in err.
 */
int topics_validate_create(struct topics *t, const char *name, char *err, size_t errlen);

/*
 * 1 if clients may not send to <name> (Java's NOT_ALLOWED_SEND_TOPIC_SET:
 * schedule, transaction half/op, trans-check, self-test and offset-moved
 * topics; the broker answers NO_PERMISSION), else 0.
 */
int topics_send_forbidden(const char *name);

/*
 * The whole table as TopicConfigSerializeWrapper JSON (fastjson field
 * order, INV-3), for REGISTER_BROKER and GET_ALL_TOPIC_CONFIG:
 * {"dataVersion":{"counter":N,"stateVersion":S,"timestamp":T},
 *  "topicConfigTable":{...}}. The same bytes are what topics.json holds.
 * Returns a new buffer (free()) of *len bytes plus a NUL, or NULL when
 * memory runs out.
 */
char *topics_serialize(struct topics *t, size_t *len);

/* One TopicConfig object, "attributes":{} (3.8.4). New buffer, free(); NULL on -ENOMEM. */
char *topic_config_json(const struct topic_config *tc, size_t *len);

void topics_data_version(struct topics *t, int64_t *counter, int64_t *timestamp);

/*
 * topics_auto_create() and topics_ensure() change the table at once but
 * leave the file to this call (they run on the event loop; the broker's
 * scheduler thread calls this right after, and topics_close() does too).
 * topics_put() and topics_delete() still write before they return.
 * Returns 0 (also when nothing changed) or the write's error; the changes
 * then stay pending for the next call.
 */
int topics_persist(struct topics *t);

/*
 * Calls <fn> for every topic in name order. <fn> runs with the table
 * locked: it must not call any topics_* function on <t>.
 */
void topics_for_each(struct topics *t, void (*fn)(void *arg, const struct topic_config *tc),
                     void *arg);
size_t topics_count(struct topics *t);

#endif /* SPK_BROKER_TOPICS_H */
