/*
 * crashwriter.c - the store-level kill -9 test (RELIABILITY.md T1), driven
 * by tests/crash/kill9.sh.
 *
 *   crashwriter write DIR START
 *       Opens (recovering) the store at DIR in SYNC_FLUSH mode and appends
 *       messages seq = START, START+1, ... with store_put_sync until it is
 *       killed. Message seq goes to queue seq % 4 of topic "Crash"; its body
 *       is seq (8 bytes, big-endian), the CRC-32 of the payload (4 bytes)
 *       and a payload of 16-1000 bytes derived from seq. Only after a put
 *       is acknowledged is the line "seq phys_off queue_off\n" written to
 *       stdout, with one write(2): every line is an acked message.
 *
 *   crashwriter verify DIR ACKFILE [close|abandon]
 *       Opens the store (recovery after the kill), reads every queue of
 *       "Crash" with store_get from its min to its max offset and checks:
 *         - queue offsets have no holes: message i of the read has queue
 *           offset min + i;
 *         - every stored body is intact (its own CRC) and sits in the
 *           queue its seq names; no seq is stored twice;
 *         - every acked seq (ACKFILE) is stored exactly once, at the
 *           physical and queue offsets its ack reported.
 *       Then closes the store cleanly, or abandons it (so the next writer
 *       recovers from a crash state again). Exit 0 when all holds, 1 with
 *       a message on the first violation, 2 on usage or setup errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/config.h"
#include "common/crc.h"
#include "common/errors.h"
#include "store/record.h"
#include "store/store.h"

#define TOPIC "Crash"
#define NQUEUES 4
#define SEG_SIZE (128 * 1024)
#define BODY_MAX (12 + 1000)

static struct store_get_result gres;

static int
config_init(struct store_config *cfg, struct cfg_target *t, const char *dir)
{
    size_t n;
    char err[CFG_ERR_MAX];

    memset(cfg, 0, sizeof(*cfg));
    t->defs = store_config_table(&n);
    t->n = n;
    t->obj = cfg;
    if (cfg_set_defaults(t) != 0 || cfg_set(t, 1, "storePathRootDir", dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "crashwriter: configuration failed\n");
        return -1;
    }
    cfg->flushDiskType = STORE_SYNC_FLUSH;
    cfg->maxMessageSize = 8192;
    cfg->mappedFileSizeCommitLog = SEG_SIZE; /* frequent roll-overs */
    cfg->mappedFileSizeConsumeQueue = 1000 * 20;
    cfg->maxHashSlotNum = 64;
    cfg->maxIndexNum = 256;
    cfg->syncFlushTimeout = 10000;
    cfg->maxTransferCountOnMessageInMemory = STORE_MAX_BATCH;
    cfg->maxTransferBytesOnMessageInMemory = 4 << 20;
    cfg->fileReservedTime = 100000;
    cfg->cleanFileForciblyEnable = 0;
    /* CRASH_WRITE_MODE=true|false|auto picks how the CommitLog is written
     * (writeWithoutMmap), so the loop covers both write paths. */
    const char *mode = getenv("CRASH_WRITE_MODE");
    if (mode != NULL && cfg_set(t, 1, "writeWithoutMmap", mode, err, sizeof(err)) != 0) {
        fprintf(stderr, "crashwriter: %s\n", err);
        return -1;
    }
    return 0;
}

static size_t
body_len(uint64_t seq)
{
    return 12 + 16 + (size_t)((seq * 2654435761u) % 985);
}

static void
body_fill(uint64_t seq, uint8_t *buf, size_t len)
{
    uint32_t x = (uint32_t)seq * 747796405u + 2891336453u;

    be_put64(buf, seq);
    for (size_t i = 12; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    be_put32(buf + 8, spk_crc32(buf + 12, len - 12));
}

/* 1 when the body is intact (its CRC and its deterministic content). */
static int
body_ok(const uint8_t *body, size_t len, uint64_t *seq)
{
    uint8_t want[BODY_MAX];

    if (len < 12 + 16 || len > BODY_MAX)
        return 0;
    *seq = be_get64(body);
    if (be_get32(body + 8) != spk_crc32(body + 12, len - 12))
        return 0;
    if (len != body_len(*seq))
        return 0;
    body_fill(*seq, want, len);
    return memcmp(want, body, len) == 0;
}

static int
open_store(const char *dir, struct store **s, struct store_config *cfg, struct cfg_target *t)
{
    struct store_open_info info;
    char err[512] = "";
    int rc;

    if (config_init(cfg, t, dir) != 0)
        return 2;
    rc = store_open(cfg, s, &info, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "crashwriter: store_open %s: %s: %s\n", dir, spk_strerror(rc), err);
        cfg_free(t);
        return 1;
    }
    return 0;
}

static int
do_write(const char *dir, uint64_t start)
{
    struct store_config cfg;
    struct cfg_target t;
    struct store *s;
    uint8_t body[BODY_MAX];
    int rc = open_store(dir, &s, &cfg, &t);

    if (rc != 0)
        return rc;
    for (uint64_t seq = start; seq < start + 1000000; seq++) {
        struct store_put_result res;
        size_t len = body_len(seq);
        struct rec_msg m;
        char line[96];

        body_fill(seq, body, len);
        memset(&m, 0, sizeof(m));
        m.topic = TOPIC;
        m.topic_len = strlen(TOPIC);
        m.queue_id = (int32_t)(seq % NQUEUES);
        m.body = body;
        m.body_len = len;
        m.born_host_len = m.store_host_len = 4;
        m.born_host[0] = m.store_host[0] = 127;
        m.born_host[3] = m.store_host[3] = 1;
        m.store_port = 10911;
        rc = store_put_sync(s, &m, &res);
        if (rc != 0) {
            fprintf(stderr, "crashwriter: put of seq %" PRIu64 " failed: %s\n", seq,
                    spk_strerror(rc));
            store_close(s);
            cfg_free(&t);
            return 1;
        }
        /* Acked: only now may the line exist. One write(2) per line. */
        int n = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 " %" PRIu64 "\n", seq,
                         res.phys_off, res.queue_off);
        if (write(STDOUT_FILENO, line, (size_t)n) != n) {
            fprintf(stderr, "crashwriter: writing the ack line: %s\n", strerror(errno));
            store_close(s);
            cfg_free(&t);
            return 2;
        }
    }
    store_close(s);
    cfg_free(&t);
    return 0;
}

struct seen {
    uint64_t seq, phys, qoff;
};

static int
cmp_seen(const void *a, const void *b)
{
    uint64_t x = ((const struct seen *)a)->seq, y = ((const struct seen *)b)->seq;
    return x < y ? -1 : x > y;
}

static int
do_verify(const char *dir, const char *ackfile, int abandon)
{
    struct store_config cfg;
    struct cfg_target t;
    struct store *s;
    struct seen *stored = NULL;
    size_t nstored = 0, cap = 0, nacked = 0;
    int rc = open_store(dir, &s, &cfg, &t), bad = 0;
    FILE *f;
    char line[256];

    if (rc != 0)
        return rc;
    /* Readers see only what is dispatched: let the re-dispatch finish. */
    for (int i = 0; i < 10000 && store_dispatched(s) < store_written(s); i++)
        usleep(1000);

    for (int32_t q = 0; q < NQUEUES && !bad; q++) {
        uint64_t min = 0, max = 0, qoff;
        if (store_queue_bounds(s, TOPIC, q, &min, &max) != 0)
            continue; /* nothing was ever dispatched to this queue */
        qoff = min;
        while (qoff < max && !bad) {
            memset(&gres, 0, sizeof(gres));
            rc = store_get(s, TOPIC, q, qoff, STORE_MAX_BATCH, 4 << 20, NULL, &gres);
            if (rc != 0 || gres.status != STORE_FOUND || gres.count == 0) {
                printf("VIOLATION: queue %d offset %" PRIu64 " of [%" PRIu64 ", %" PRIu64 "): %s\n",
                       q, qoff, min, max,
                       rc != 0 ? spk_strerror(rc) : store_get_status_name(gres.status));
                bad = 1;
                break;
            }
            for (size_t j = 0; j < gres.count && !bad; j++) {
                const struct store_msg_view *mv = &gres.msgs[j];
                struct rec_view v;
                const char *why = "";
                uint64_t seq = 0;
                if (mv->queue_off != qoff + j) {
                    printf("VIOLATION: queue %d: hole, offset %" PRIu64 " read where %" PRIu64
                           " was expected\n",
                           q, mv->queue_off, qoff + j);
                    bad = 1;
                } else if (rec_parse(mv->data, mv->len, mv->phys_off, REC_CHECK_CRC, &v, &why) <=
                           0) {
                    printf("VIOLATION: queue %d offset %" PRIu64 ": invalid record at %" PRIu64
                           ": %s\n",
                           q, qoff + j, mv->phys_off, why);
                    bad = 1;
                } else if (!body_ok(v.body, v.body_len, &seq)) {
                    printf("VIOLATION: queue %d offset %" PRIu64 ": corrupt body at %" PRIu64 "\n",
                           q, qoff + j, mv->phys_off);
                    bad = 1;
                } else if ((int32_t)(seq % NQUEUES) != q || v.queue_off != qoff + j) {
                    printf("VIOLATION: seq %" PRIu64 " found in queue %d offset %" PRIu64
                           " (record says offset %" PRIu64 ")\n",
                           seq, q, qoff + j, v.queue_off);
                    bad = 1;
                } else {
                    if (nstored == cap) {
                        cap = cap ? cap * 2 : 4096;
                        stored = realloc(stored, cap * sizeof(*stored));
                        if (stored == NULL) {
                            printf("crashwriter: out of memory\n");
                            bad = 2;
                            break;
                        }
                    }
                    stored[nstored++] = (struct seen){seq, mv->phys_off, qoff + j};
                }
            }
            qoff += gres.count;
            store_get_release(&gres);
        }
    }
    if (!bad) {
        qsort(stored, nstored, sizeof(*stored), cmp_seen);
        for (size_t i = 1; i < nstored && !bad; i++) {
            if (stored[i].seq == stored[i - 1].seq) {
                printf("VIOLATION: seq %" PRIu64 " stored twice (offsets %" PRIu64 " and %" PRIu64
                       ")\n",
                       stored[i].seq, stored[i - 1].phys, stored[i].phys);
                bad = 1;
            }
        }
    }
    f = bad ? NULL : fopen(ackfile, "r");
    if (!bad && f == NULL) {
        printf("crashwriter: %s: %s\n", ackfile, strerror(errno));
        bad = 2;
    }
    while (f && !bad && fgets(line, sizeof(line), f) != NULL) {
        uint64_t seq, phys, qoff;
        char extra;
        if (strchr(line, '\n') == NULL)
            break; /* a line cut by the kill: its ack never completed */
        if (sscanf(line, "%" SCNu64 " %" SCNu64 " %" SCNu64 " %c", &seq, &phys, &qoff, &extra) !=
            3) {
            printf("VIOLATION: malformed ack line: %s", line);
            bad = 1;
            break;
        }
        nacked++;
        struct seen key = {seq, 0, 0};
        struct seen *hit =
            nstored ? bsearch(&key, stored, nstored, sizeof(*stored), cmp_seen) : NULL;
        if (hit == NULL) {
            printf("VIOLATION: acked seq %" PRIu64 " (phys %" PRIu64 ", queue %d offset %" PRIu64
                   ") is lost\n",
                   seq, phys, (int)(seq % NQUEUES), qoff);
            bad = 1;
        } else if (hit->phys != phys || hit->qoff != qoff) {
            printf("VIOLATION: acked seq %" PRIu64 " moved: acked at phys %" PRIu64
                   " offset %" PRIu64 ", stored at phys %" PRIu64 " offset %" PRIu64 "\n",
                   seq, phys, qoff, hit->phys, hit->qoff);
            bad = 1;
        }
    }
    if (f)
        fclose(f);
    if (!bad)
        printf("verify: %zu acked messages present, %zu stored, written %" PRIu64 "\n", nacked,
               nstored, store_written(s));
    free(stored);
    if (abandon) {
        store_abandon(s);
    } else if ((rc = store_close(s)) != 0) {
        printf("crashwriter: store_close: %s\n", spk_strerror(rc));
        bad = bad ? bad : 1;
    }
    cfg_free(&t);
    return bad;
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "write") == 0)
        return do_write(argv[2], strtoull(argv[3], NULL, 10));
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "verify") == 0)
        return do_verify(argv[2], argv[3], argc == 5 && strcmp(argv[4], "abandon") == 0);
    fprintf(stderr, "usage: crashwriter write DIR START\n"
                    "       crashwriter verify DIR ACKFILE [close|abandon]\n");
    return 2;
}
