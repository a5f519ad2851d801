/*
 * storetest.h - helpers shared by the store tests (t_checkpoint.c,
 * t_storeio.c, t_store.c, t_recovery.c): temporary directories, file
 * copies, a store configuration with small sizes, and messages whose
 * bodies can be checked byte for byte after a recovery.
 *
 * Every helper fails the calling Criterion test (cr_assert) on an
 * unexpected system error, so callers do not check their results.
 */
#ifndef SPK_TESTS_STORETEST_H
#define SPK_TESTS_STORETEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "store/record.h"
#include "store/store.h"

/* A new empty directory under $TMPDIR (or /tmp); free() the result. */
char *st_tmpdir(const char *tag);

/*
 * Like st_tmpdir, but on a memory file system ($SPK_TEST_FASTDIR, else
 * /dev/shm when writable, else as st_tmpdir): for tests that open and
 * close a store thousands of times, where every fsync to a real disk
 * would cost milliseconds. The durability logic under test is the same.
 */
char *st_tmpdir_fast(const char *tag);

/* Removes <path> and everything below it; a missing path is fine. */
void st_rmrf(const char *path);

/* Copies the tree <src> to <dst> (which must not exist), byte for byte. */
void st_copytree(const char *src, const char *dst);

/* Joins dir and name into a new string; free() it. */
char *st_path(const char *dir, const char *name);

/* Whole-file helpers. st_read_file returns a new buffer (free()), or NULL
 * with *len = 0 when the file does not exist. */
uint8_t *st_read_file(const char *path, size_t *len);
void st_write_file(const char *path, const void *buf, size_t len);
void st_pwrite_file(const char *path, const void *buf, size_t len, uint64_t off);
int st_exists(const char *path);

/* maxMessageSize used by st_cfg_init(): segments may be as small as
 * ST_MAX_MESSAGE + 64 KiB + 8. */
#define ST_MAX_MESSAGE 8192

/* A store configuration that owns its strings. */
struct st_cfg {
    struct store_config cfg;
    struct cfg_target t;
};

/*
 * Defaults from store_config_table(), then test sizes: CommitLog segments
 * of <clog_size> bytes, ConsumeQueue files of 1000 units, a small index,
 * <flush> (STORE_SYNC_FLUSH or STORE_ASYNC_FLUSH), no clean-up by time or
 * by disk usage, and root directory <dir>.
 */
void st_cfg_init(struct st_cfg *c, const char *dir, int64_t clog_size, int flush);
void st_cfg_free(struct st_cfg *c);

/* Opens the store, failing the test with the error text if it fails. */
struct store *st_open(const struct st_cfg *c, struct store_open_info *info);

/* Waits (up to 10 s) until everything written is dispatched to the queues. */
void st_wait_dispatched(struct store *s);

/*
 * Deterministic message bodies: body(seq) is st_body_len(seq) bytes that
 * start with "seq=<seq>;" and continue with a pattern derived from seq.
 * <base> and <spread> choose the length: base + (seq * 7919) % spread.
 */
size_t st_body_len(uint32_t seq, size_t base, size_t spread);
void st_body_fill(uint32_t seq, uint8_t *buf, size_t len);
/* 1 when buf[0..len) is exactly body(seq) of that length. */
int st_body_ok(uint32_t seq, const uint8_t *buf, size_t len);

/* A message with fixed IPv4 hosts; every pointer is borrowed. */
struct rec_msg st_msg(const char *topic, int32_t qid, const void *body, size_t body_len,
                      const char *props, size_t props_len);

/* Reads the one message at <qoff> of topic/qid and parses it; returns 1
 * and fills *v (pointing into a copy in buf, which needs room for the
 * record) if found, 0 otherwise. */
int st_get_one(struct store *s, const char *topic, int32_t qid, uint64_t qoff, uint8_t *buf,
               size_t buflen, struct rec_view *v, uint64_t *phys);

/* In a child process: becomes root of a private mount namespace (or of a
 * user namespace when that is all we may do), so that the child can mount
 * a small tmpfs that dies with it. Returns 0 or -errno. */
int st_private_mounts(void);

#endif /* SPK_TESTS_STORETEST_H */
