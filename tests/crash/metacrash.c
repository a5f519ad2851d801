/*
 * metacrash.c - RELIABILITY.md T14 at the level of the metadata modules:
 * kill -9 while consumerOffset.json, topics.json and subscriptionGroup.json
 * are being rewritten, and a checker for the files a killed broker leaves.
 *
 *   metacrash kill DIR CYCLES [SEED]
 *       CYCLES times: a child opens the three tables in DIR and rewrites
 *       them in a tight loop, each save with a value one higher than the
 *       last (an offset, the topics' data version, a group's
 *       retryMaxTimes), telling the parent over a pipe after every save
 *       that returned 0. One save in eight has a fault armed
 *       (sio_fault_arm: EIO from the 1st-3rd fsync, link/rename, unlink,
 *       directory sync or write), which it must survive. The parent
 *       SIGKILLs the child a random 0-20 ms after its first completed
 *       save (one cycle in eight: 2-42 ms after the fork, whatever it is
 *       doing), then checks, for each file (T14's pass criteria):
 *         - it is complete: sealed (config.h) and loaded from the main
 *           file, not from .bak (the main file exists at every instant);
 *         - its value is >= the last save reported complete (and >= what
 *           it held before), and at most the highest value the child set
 *           out to save (it announces each save before starting it): old
 *           or new, nothing else.
 *   metacrash verify CONFIG_DIR [STORE_DIR]
 *       Checks the files a broker left in CONFIG_DIR: each of
 *       consumerOffset.json, topics.json, subscriptionGroup.json and
 *       delayOffset.json that exists is non-empty, sealed (or unsealed
 *       but whole, as RocketMQ writes it) and loads; with STORE_DIR, the
 *       checkpoint's extension must verify. Prints every committed offset
 *       as "offset TOPIC@GROUP QID VALUE" and the topic and group counts.
 *
 * Output ends with one line "metacrash: ..." and the exit status is 0
 * when every check passed, 1 on a violation, 2 on a usage or setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker/groups.h"
#include "broker/offsets.h"
#include "broker/topics.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/fjson.h"
#include "common/log.h"
#include "store/checkpoint.h"
#include "store/storeio.h"

#define CLUSTER "DefaultCluster"
#define BROKER "broker-a"
#define NQUEUES 4

static uint64_t rng_state;

static uint64_t
rnd(void)
{
    /* xorshift64*: reproducible from the seed printed at the start */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* What a child reports after a save returned 0: which file, which value. */
struct report {
    int32_t what; /* 0 offsets, 1 topics, 2 groups; + 3: about to save */
    int32_t pad;
    int64_t value;
};

static void
say(int fd, int what, int64_t value)
{
    struct report r = {what, 0, value};

    /* 16 bytes < PIPE_BUF: atomic, never torn by the kill */
    if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(3);
}

static void
arm_random_fault(void)
{
    static const enum sio_kind kinds[] = {SIO_PWRITE, SIO_FSYNC, SIO_RENAME, SIO_UNLINK,
                                          SIO_DIRSYNC};

    if (rnd() % 8 == 0)
        sio_fault_arm(kinds[rnd() % 5], 1 + rnd() % 3, SIO_FAULT_ONCE, EIO);
}

/* The child: rewrite the three files forever, reporting completed saves. */
static void
writer(const char *dir, int fd, int64_t start)
{
    struct offsets *o = NULL;
    struct topics *t = NULL;
    struct groups *g = NULL;
    char err[512], body[128];
    int64_t v = start, dv;
    int q;

    if (offsets_open(dir, &o, err, sizeof(err)) != 0 ||
        topics_open(dir, CLUSTER, BROKER, 1, 8, &t, err, sizeof(err)) != 0 ||
        groups_open(dir, &g, err, sizeof(err)) != 0) {
        fprintf(stderr, "metacrash: child: %s\n", err);
        _exit(2);
    }
    /* Each save is announced before it starts (what + 3): a save that
     * fails after its rename leaves the new value on disk unreported, so
     * the parent needs the highest value ever attempted as well. */
    for (;; v++) {
        int64_t stamp;
        for (q = 0; q < NQUEUES; q++)
            offsets_commit(o, "G1", "Topic1", q, v);
        say(fd, 3, v);
        arm_random_fault();
        if (offsets_persist(o) == 0)
            say(fd, 0, v);
        sio_fault_clear();

        {
            struct topic_config tc;
            memset(&tc, 0, sizeof(tc));
            snprintf(tc.name, sizeof(tc.name), "Topic%d", (int)(v % 7));
            tc.read_queues = tc.write_queues = 1 + (int)(v % 16);
            tc.perm = 6;
            topics_data_version(t, &dv, &stamp);
            say(fd, 4, dv + 1);
            arm_random_fault();
            if (topics_put(t, &tc) == 0) {
                topics_data_version(t, &dv, &stamp);
                say(fd, 1, dv);
            }
            sio_fault_clear();
        }

        snprintf(body, sizeof(body), "{\"groupName\":\"G1\",\"retryMaxTimes\":%lld}",
                 (long long)(v % 1000000000));
        say(fd, 5, v % 1000000000);
        arm_random_fault();
        if (groups_put_json(g, body, strlen(body), NULL, err, sizeof(err)) == 0)
            say(fd, 2, v % 1000000000);
        sio_fault_clear();
    }
}

/* Reads a whole file; NULL if missing. */
static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}

/* A file a kill left: present, non-empty, sealed (we wrote it), parses. */
static int
check_file(const char *dir, const char *name, int must_exist, int must_seal)
{
    char path[4200], why[256] = "";
    size_t len = 0;
    char *text;
    cJSON *root;
    int rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    text = slurp(path, &len);
    if (!text) {
        if (!must_exist)
            return 0;
        printf("metacrash: VIOLATION: %s is missing\n", path);
        return 1;
    }
    if (len == 0) {
        printf("metacrash: VIOLATION: %s is empty\n", path);
        free(text);
        return 1;
    }
    rc = cfg_json_check_seal(text, len, why, sizeof(why));
    if (rc < 0 || (must_seal && rc != 1)) {
        printf("metacrash: VIOLATION: %s: %s\n", path, rc < 0 ? why : "not sealed (torn?)");
        free(text);
        return 1;
    }
    root = fjson_parse(text, len);
    free(text);
    if (!root) {
        printf("metacrash: VIOLATION: %s does not parse\n", path);
        return 1;
    }
    cJSON_Delete(root);
    return 0;
}

/* The values the files hold now, loaded the way the broker loads them. */
struct seen {
    int64_t off[NQUEUES];
    int64_t dv;
    int64_t retry;
};

static int
load_all(const char *dir, struct seen *s, char *err, size_t errlen)
{
    struct offsets *o = NULL;
    struct topics *t = NULL;
    struct groups *g = NULL;
    struct group_config gc;
    int q, rc;

    memset(s, 0xff, sizeof(*s)); /* -1: absent */
    rc = offsets_open(dir, &o, err, errlen);
    if (rc == 0) {
        for (q = 0; q < NQUEUES; q++)
            if (offsets_query(o, "G1", "Topic1", q, &s->off[q]) != 0)
                s->off[q] = -1;
        offsets_close(o);
        rc = topics_open(dir, CLUSTER, BROKER, 1, 8, &t, err, errlen);
    }
    if (rc == 0) {
        int64_t stamp;
        topics_data_version(t, &s->dv, &stamp);
        topics_close(t);
        rc = groups_open(dir, &g, err, errlen);
    }
    if (rc == 0) {
        s->retry = groups_get(g, "G1", &gc) == 0 ? gc.retry_max : -1;
        groups_close(g);
    }
    return rc;
}

static int
file_has_bak_only(const char *dir, const char *name)
{
    char path[4200];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s.corrupt", dir, name);
    return stat(path, &st) == 0;
}

/*
 * One value after a kill. <lo>: at least this (the last save reported
 * complete, or what the file held before this cycle); <hi>: at most this
 * (the save the writer may have had in flight when it died).
 */
static int
check_value(const char *what, int64_t got, int64_t lo, int64_t hi, int cycle)
{
    if (got < lo || got > hi) {
        printf("metacrash: VIOLATION (cycle %d): %s is %" PRId64 ", outside [%" PRId64
               ", %" PRId64 "]: %s\n",
               cycle, what, got, lo, hi,
               got < lo ? "behind a completed save" : "a value never written");
        return 1;
    }
    return 0;
}

static int64_t
max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int
cmd_kill(const char *dir, int cycles, uint64_t seed)
{
    static const char *const files[] = {"consumerOffset.json", "topics.json",
                                        "subscriptionGroup.json"};
    /* base: what each file held after the previous cycle (-1: nothing) */
    int64_t base[3] = {-1, -1, -1}, start = 1;
    int cycle, violations = 0, i;
    long reports = 0;
    time_t t0 = time(NULL);

    rng_state = seed ? seed : 88172645463325252ull;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "metacrash: %s: %s\n", dir, strerror(errno));
        return 2;
    }
    printf("metacrash: kill: %d cycles in %s, seed %llu\n", cycles, dir,
           (unsigned long long)rng_state);
    for (cycle = 1; cycle <= cycles; cycle++) {
        struct report r;
        struct timespec ts;
        struct seen s;
        char err[1024] = "";
        int64_t rep[3] = {-1, -1, -1}, att[3] = {-1, -1, -1}, hi[3];
        int pfd[2], st;
        pid_t pid;
        long us = 2000 + (long)(rnd() % 40000);

        if (pipe(pfd) != 0)
            return 2;
        fflush(stdout);
        pid = fork();
        if (pid == -1)
            return 2;
        if (pid == 0) {
            close(pfd[0]);
            writer(dir, pfd[1], start);
        }
        close(pfd[1]);
        /* Mostly: wait for the first completed save, so the kill lands
         * among saves however slow the start is (sanitizers, a loaded
         * machine); one cycle in eight kills at a blind moment instead,
         * which may fall into the opening of the tables. */
        if (rnd() % 8 != 0) {
            struct pollfd p = {pfd[0], POLLIN, 0};
            /* the first "done", after the announcements before it */
            while (poll(&p, 1, 10000) == 1 && read(pfd[0], &r, sizeof(r)) == (ssize_t)sizeof(r) &&
                   r.what >= 0 && r.what < 6) {
                if (r.what >= 3) {
                    att[r.what - 3] = max64(att[r.what - 3], r.value);
                    continue;
                }
                rep[r.what] = max64(rep[r.what], r.value);
                reports++;
                break;
            }
            us = (long)(rnd() % 20000);
        }
        ts.tv_sec = 0;
        ts.tv_nsec = us * 1000;
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        while (read(pfd[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
            if (r.what >= 3 && r.what < 6) {
                att[r.what - 3] = max64(att[r.what - 3], r.value);
            } else if (r.what >= 0 && r.what < 3) {
                rep[r.what] = max64(rep[r.what], r.value);
                reports++;
            }
        }
        close(pfd[0]);
        if (waitpid(pid, &st, 0) != pid || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
            printf("metacrash: VIOLATION (cycle %d): the writer ended by itself (status %d)\n",
                   cycle, st);
            violations++;
            break;
        }
        for (i = 0; i < 3; i++)
            violations += check_file(dir, files[i], base[i] >= 0 || rep[i] >= 0, 1);
        if (load_all(dir, &s, err, sizeof(err)) != 0) {
            printf("metacrash: VIOLATION (cycle %d): the tables do not load: %s\n", cycle, err);
            violations++;
            break;
        }
        for (i = 0; i < 3; i++) {
            if (file_has_bak_only(dir, files[i])) {
                printf("metacrash: VIOLATION (cycle %d): %s was loaded from its .bak\n", cycle,
                       files[i]);
                violations++;
            }
        }
        /* At most the highest value this cycle's writer set out to save. */
        for (i = 0; i < 3; i++)
            hi[i] = max64(base[i], att[i]);
        for (i = 0; i < NQUEUES; i++)
            violations += check_value("the offset of Topic1@G1", s.off[i],
                                      max64(base[0], rep[0]), hi[0], cycle);
        violations += check_value("the topics' data version", s.dv, max64(base[1], rep[1]),
                                  hi[1], cycle);
        violations += check_value("G1's retryMaxTimes", s.retry, max64(base[2], rep[2]), hi[2],
                                  cycle);
        base[0] = s.off[0];
        base[1] = s.dv;
        base[2] = s.retry;
        for (i = 0; i < 3; i++) {
            char path[4200];
            struct stat sb;
            snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
            if (stat(path, &sb) != 0)
                base[i] = -1; /* never written: a fresh table's values */
        }
        if (violations)
            break;
        /* The next child continues from what is on disk. */
        start = (s.off[0] > 0 ? s.off[0] : 0) + 1;
        if (cycle % 50 == 0)
            printf("metacrash: kill: %d/%d cycles, %ld saves reported, offset %" PRId64 "\n",
                   cycle, cycles, reports, s.off[0]);
    }
    printf("metacrash: kill: %d cycles, %ld completed saves, %d violations, %lld s\n",
           cycle > cycles ? cycles : cycle, reports, violations, (long long)(time(NULL) - t0));
    return violations ? 1 : 0;
}

static void
print_offset(void *arg, const char *group, const char *topic, int32_t qid, int64_t off)
{
    (void)arg;
    printf("offset %s@%s %d %" PRId64 "\n", topic, group, (int)qid, off);
}

static int
cmd_verify(const char *cdir, const char *sdir)
{
    static const char *const files[] = {"consumerOffset.json", "topics.json",
                                        "subscriptionGroup.json", "delayOffset.json"};
    struct offsets *o = NULL;
    struct topics *t = NULL;
    struct groups *g = NULL;
    char err[1024] = "";
    int violations = 0, i;

    for (i = 0; i < 4; i++)
        violations += check_file(cdir, files[i], 0, 0);
    if (offsets_open(cdir, &o, err, sizeof(err)) != 0 ||
        topics_open(cdir, CLUSTER, BROKER, 1, 8, &t, err, sizeof(err)) != 0 ||
        groups_open(cdir, &g, err, sizeof(err)) != 0) {
        printf("metacrash: VIOLATION: %s\n", err);
        violations++;
    } else {
        offsets_for_each(o, print_offset, NULL);
        printf("groups %zu\n", groups_count(g));
    }
    for (i = 0; i < 4; i++) {
        if (file_has_bak_only(cdir, files[i])) {
            printf("metacrash: VIOLATION: %s/%s was damaged and loaded from its .bak\n", cdir,
                   files[i]);
            violations++;
        }
    }
    if (sdir) {
        char path[4200];
        struct ckpt c;
        int rc;

        snprintf(path, sizeof(path), "%s/checkpoint", sdir);
        rc = ckpt_read(path, &c);
        if (rc != 0 && rc != -ENOENT) {
            printf("metacrash: VIOLATION: %s: %s\n", path, spk_strerror(rc));
            violations++;
        } else if (rc == 0 && !c.ext_valid) {
            printf("metacrash: VIOLATION: %s: the extension does not verify (torn write)\n",
                   path);
            violations++;
        }
    }
    if (o)
        offsets_close(o);
    /* Nothing changed: topics_close() writes only when dirty. */
    if (t)
        topics_close(t);
    if (g)
        groups_close(g);
    printf("metacrash: verify %s: %d violations\n", cdir, violations);
    return violations ? 1 : 0;
}

int
main(int argc, char **argv)
{
    /* Warnings from the loaders are expected noise; errors are kept. */
    spk_log_init('-', SPK_LOG_ERROR, 2);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "kill") == 0)
        return cmd_kill(argv[2], atoi(argv[3]),
                        argc > 4 ? strtoull(argv[4], NULL, 10) : (uint64_t)time(NULL));
    if (argc >= 3 && strcmp(argv[1], "verify") == 0)
        return cmd_verify(argv[2], argc > 3 ? argv[3] : NULL);
    fprintf(stderr, "usage: metacrash kill DIR CYCLES [SEED]\n"
                    "       metacrash verify CONFIG_DIR [STORE_DIR]\n");
    return 2;
}
