/*
 * offsets.h - committed consumer offsets (RocketMQ's
 * ConsumerOffsetManager), persisted in <config_dir>/consumerOffset.json.
 *
 * The file is RocketMQ's own format, queue ids written as bare integer
 * keys the way fastjson writes a Map<Integer,Long>:
 *
 *   {"offsetTable":{"TopicTest@group1":{0:12,1:3}}}
 *
 * A Java broker reads what we write, and we read what it writes (quoted
 * or bare keys, through fjson_parse). The offsets are queue indexes
 * (queue_idx in STYLE.md terms), stored exactly as committed, -1 included:
 * some clients (ali-ons) commit -1 to mean "nothing consumed yet".
 *
 * What we write ends with a "crc32" member (config.h, "Sealed metadata
 * files"), which Java ignores; a file whose seal does not verify is
 * treated like one that does not parse.
 *
 * Invariants:
 *   INV-1  Commits only change memory and set a dirty flag; the file is
 *          written by offsets_persist() (a timer, every 5 s in RocketMQ),
 *          atomically, old version kept as .bak. A crash loses at most the
 *          commits since the last persist, which consumers replay:
 *          RocketMQ's at-least-once contract.
 *   INV-2  offsets_persist() writes only when something changed since the
 *          last successful write, and never with the table locked, so a
 *          slow disk does not stall the thread that commits.
 *   INV-3  Keys are "<topic>@<group>"; a topic holds no '@' (commits with
 *          one are refused), so the split at the first '@' is unambiguous.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef SPK_BROKER_OFFSETS_H
#define SPK_BROKER_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#define OFFSETS_NAME_MAX 255 /* longest group or topic name */
#define OFFSETS_QID_MAX 65535

struct offsets;

/*
 * Loads <config_dir>/consumerOffset.json, falling back to its .bak when
 * the main file is missing, empty, not JSON or fails its seal (logged,
 * the damaged file renamed to .corrupt: cfg_json_load()). Entries whose key
 * or queue id is unusable (no '@', a name over 255 bytes, a queue id
 * outside 0..65535, an offset that is not an integer) are skipped with a
 * warning rather than failing the whole file. Returns 0 and a new table
 * in *out (offsets_close() releases it), or a negative errno, or
 * SPK_ECORRUPT when neither file is usable; err names the file.
 */
int offsets_open(const char *config_dir, struct offsets **out, char *err, size_t errlen);

/* Does not persist: call offsets_persist() first to keep recent commits. */
void offsets_close(struct offsets *o);

/*
 * Stores <off> for (<group>, <topic>, <qid>) as is and marks the table
 * dirty. <group> and <topic> are borrowed: 1..255 bytes, and the topic
 * holds no '@'; <qid> is 0..65535. Returns 0, -EINVAL or -ENOMEM.
 */
int offsets_commit(struct offsets *o, const char *group, const char *topic, int32_t qid,
                   int64_t off);

/* Copies the committed offset to *off. Returns 0 or -ENOENT. */
int offsets_query(struct offsets *o, const char *group, const char *topic, int32_t qid,
                  int64_t *off);

/*
 * Writes consumerOffset.json if anything changed since the last
 * successful write (INV-2). Returns 0 (also when there was nothing to
 * do) or a negative errno; after a failure the table stays dirty, so the
 * next call retries.
 */
int offsets_persist(struct offsets *o);

typedef void (*offsets_entry_fn)(void *arg, const char *group, const char *topic, int32_t qid,
                                 int64_t off);

/*
 * Calls <fn> for every stored offset, ordered by topic, then group, then
 * queue id. The callbacks below run with the table locked: they must not
 * call any offsets_* function on <o>.
 */
void offsets_for_each(struct offsets *o, offsets_entry_fn fn, void *arg);

/* The same, for the offsets of one <group> only (Java whichTopicByConsumer). */
void offsets_for_each_of_group(struct offsets *o, const char *group, offsets_entry_fn fn,
                               void *arg);

/* Calls <fn> once per group holding offsets for <topic>, in name order
 * (Java whichGroupByTopic). */
void offsets_groups_of_topic(struct offsets *o, const char *topic,
                             void (*fn)(void *arg, const char *group), void *arg);

/* Drops every offset of <group> (or of <topic>) and marks the table
 * dirty. Returns 0, or -ENOENT when there was none. */
int offsets_delete_group(struct offsets *o, const char *group);
int offsets_delete_topic(struct offsets *o, const char *topic);

#endif /* SPK_BROKER_OFFSETS_H */
