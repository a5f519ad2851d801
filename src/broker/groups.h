/*
 * groups.h - the broker's subscription group table (RocketMQ's
 * SubscriptionGroupManager), persisted in <config_dir>/subscriptionGroup.json.
 *
 * The file is RocketMQ's own SubscriptionGroupWrapper JSON (STORE.md 14),
 * fields in fastjson's alphabetical order, so a Java broker can start
 * from it and we can start from a Java broker's file:
 *
 *   {"dataVersion":{"counter":2,"stateVersion":0,"timestamp":1700000000000},
 *    "forbiddenTable":{},
 *    "subscriptionGroupTable":{"G":{"attributes":{},"brokerId":0,
 *      "consumeBroadcastEnable":true,"consumeEnable":true,
 *      "consumeFromMinEnable":true,"consumeMessageOrderly":false,
 *      "consumeTimeoutMinute":15,"groupName":"G",
 *      "groupRetryPolicy":{"type":"CUSTOMIZED"},"groupSysFlag":0,
 *      "notifyConsumerIdsChangedEnable":true,"retryMaxTimes":16,
 *      "retryQueueNums":1,"whichBrokerWhenConsumeSlowly":1}}}
 *
 * What we write ends with a "crc32" member that Java ignores (config.h,
 * "Sealed metadata files"); a file whose seal does not verify is treated
 * like one that does not parse (.bak, else refuse to start).
 *
 * A group's "groupRetryPolicy" and "attributes" objects are kept as
 * canonical JSON text and written back unchanged: Sprocket does not act on
 * them, but a file or an update from Java tools survives a round trip.
 *
 * What the broker does with a group's settings today: CONSUMER_SEND_MSG_BACK
 * takes retryMaxTimes when the request carries no maxReconsumeTimes
 * (groups_retry_max). The other fields are stored and reported only.
 *
 * Invariants:
 *   INV-1  After groups_put_json() or groups_delete() returns 0, the file
 *          on disk holds exactly the in-memory table (written with
 *          sio_write_file_atomic, the old version kept as .bak). A call
 *          whose write fails undoes its change in memory and returns the
 *          error, so memory never runs ahead of the disk.
 *   INV-2  Every change bumps the data version (counter + 1, timestamp =
 *          now).
 *   INV-3  Iteration and serialisation are in byte order of the name.
 *
 * Threads: every function may be called from any thread; one mutex guards
 * the table, and mutating calls write the file while holding it (like
 * topics.h, and like Java's persist()).
 */
#ifndef SPK_BROKER_GROUPS_H
#define SPK_BROKER_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#define GROUP_NAME_MAX 255
#define GROUP_DEFAULT_RETRY_MAX 16 /* SubscriptionGroupConfig.retryMaxTimes */

struct group_config {
    char name[GROUP_NAME_MAX + 1];
    int consume_enable, consume_from_min, consume_broadcast, consume_orderly;
    int notify_ids_changed;
    int32_t retry_queues, retry_max, group_sysflag, consume_timeout_min;
    int64_t broker_id, which_broker_slowly;
};

struct groups;

/* Java's defaults for a new group called <name> (copied, truncated to 255 bytes). */
void group_config_defaults(struct group_config *gc, const char *name);

/*
 * Loads <config_dir>/subscriptionGroup.json, falling back to its .bak
 * when the main file is missing, empty or corrupt (logged). Groups that
 * cannot be used (no name, a bad name, fields of the wrong type) are
 * skipped with a warning. Returns 0 and a new table in *out (release it
 * with groups_close()), or a negative errno, or SPK_ECORRUPT when neither
 * the file nor its .bak is usable; err names the file.
 */
int groups_open(const char *config_dir, struct groups **out, char *err, size_t errlen);
void groups_close(struct groups *g);

/* Copies the config of <name> into *out. Returns 0 or -ENOENT. */
int groups_get(struct groups *g, const char *name, struct group_config *out);

/*
 * Creates or replaces a group from a SubscriptionGroupConfig JSON body
 * json[0..len) (borrowed): fields that are absent take Java's defaults,
 * as fastjson leaves them when it builds the object. Validates the name
 * ([A-Za-z0-9%|_-], 1..255 bytes) and the numbers (retryQueueNums
 * 0..65535, retryMaxTimes -1..INT32_MAX, brokerId 0..1024), bumps the
 * version and persists (INV-1). On success copies what was stored to
 * *out (if not NULL). Returns 0; SPK_EFORMAT with a reason in err for a
 * body that does not validate; -ENOMEM; or the write's error.
 */
int groups_put_json(struct groups *g, const char *json, size_t len, struct group_config *out,
                    char *err, size_t errlen);

/* Removes <name>, bumps the version, persists. 0, -ENOENT or the write's error. */
int groups_delete(struct groups *g, const char *name);

/*
 * retryMaxTimes of <name>, or GROUP_DEFAULT_RETRY_MAX when the group is
 * not configured (or <name> is NULL).
 */
int32_t groups_retry_max(struct groups *g, const char *name);

/*
 * The whole table as SubscriptionGroupWrapper JSON (the bytes the file
 * holds; GET_ALL_SUBSCRIPTIONGROUP_CONFIG). Returns a new buffer (free())
 * of *len bytes plus a NUL, or NULL when memory runs out.
 */
char *groups_serialize(struct groups *g, size_t *len);

/* One group as SubscriptionGroupConfig JSON; NULL when absent or out of memory. */
char *groups_config_json(struct groups *g, const char *name, size_t *len);

size_t groups_count(struct groups *g);

#endif /* SPK_BROKER_GROUPS_H */
