/*
 * recover_twice.c - "recovery is idempotent" (RELIABILITY.md T1): a store
 * recovered twice, with no writes in between, is byte-identical.
 *
 *   recover_twice DIR [key=value ...]
 *
 * DIR is a store left by a crash (a copy: this program modifies it). The
 * key=value pairs are store settings (RocketMQ's names, as sprocketd
 * takes them after "--"), and must be the ones the store was written with.
 *
 * Rounds, each followed by a snapshot (path, size and CRC-32 of every
 * file below DIR, the lock file excepted):
 *   1. open (abnormal recovery), wait for the re-dispatch, abandon
 *      (threads stopped, nothing flushed, the abort file kept: the store
 *      is again in a crashed state);
 *   2. the same again: must equal snapshot 1;
 *   3. open, close cleanly;
 *   4. open (normal recovery now), close cleanly: must equal snapshot 3.
 * A difference names the file and whether its size or content changed.
 *
 * Exit status: 0 identical, 1 a difference or a failed open, 2 usage or
 * setup errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/errors.h"
#include "store/store.h"

#include <zlib.h>

#define MAX_FILES 4096

struct entry {
    char path[512]; /* relative to DIR */
    uint64_t size;
    uint32_t crc;
};

struct snap {
    struct entry *e;
    size_t n;
};

static int
cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* CRC-32 of a whole file, read in 1 MiB pieces. */
static int
file_crc(const char *path, uint64_t *size, uint32_t *crc)
{
    static unsigned char buf[1 << 20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uLong c = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
    ssize_t n;

    if (fd < 0)
        return -errno;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        c = crc32(c, buf, (uInt)n);
        total += (uint64_t)n;
    }
    int err = n < 0 ? -errno : 0;
    close(fd);
    *size = total;
    *crc = (uint32_t)c;
    return err;
}

static int
walk(const char *root, const char *rel, struct snap *sn)
{
    char dirpath[1024];
    DIR *d;
    struct dirent *de;
    int rc = 0;

    snprintf(dirpath, sizeof(dirpath), "%s%s%s", root, rel[0] ? "/" : "", rel);
    d = opendir(dirpath);
    if (d == NULL)
        return -errno;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char relpath[512], full[1536];
        struct stat st;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (rel[0] == '\0' && strcmp(de->d_name, "lock") == 0)
            continue; /* holds the owner's pid */
        if ((size_t)snprintf(relpath, sizeof(relpath), "%s%s%s", rel, rel[0] ? "/" : "",
                             de->d_name) >= sizeof(relpath)) {
            rc = -ENAMETOOLONG;
            break;
        }
        snprintf(full, sizeof(full), "%s/%s", root, relpath);
        if (lstat(full, &st) != 0) {
            rc = -errno;
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = walk(root, relpath, sn);
        } else if (S_ISREG(st.st_mode)) {
            if (sn->n == MAX_FILES) {
                rc = -E2BIG;
                break;
            }
            struct entry *e = &sn->e[sn->n++];
            memcpy(e->path, relpath, strlen(relpath) + 1);
            rc = file_crc(full, &e->size, &e->crc);
        }
    }
    closedir(d);
    return rc;
}

static int
snapshot(const char *root, struct snap *sn)
{
    sn->n = 0;
    int rc = walk(root, "", sn);
    if (rc == 0)
        qsort(sn->e, sn->n, sizeof(sn->e[0]), cmp_entry);
    return rc;
}

/* Prints every difference; returns their number. */
static int
compare(const char *what, const struct snap *a, const struct snap *b)
{
    size_t i = 0, j = 0;
    int diffs = 0;

    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->e[i].path, b->e[j].path);
        if (c < 0) {
            printf("recover_twice: %s: %s vanished\n", what, a->e[i++].path);
            diffs++;
        } else if (c > 0) {
            printf("recover_twice: %s: %s appeared\n", what, b->e[j++].path);
            diffs++;
        } else {
            if (a->e[i].size != b->e[j].size) {
                printf("recover_twice: %s: %s: size %" PRIu64 " -> %" PRIu64 "\n", what,
                       a->e[i].path, a->e[i].size, b->e[j].size);
                diffs++;
            } else if (a->e[i].crc != b->e[j].crc) {
                printf("recover_twice: %s: %s: content differs\n", what, a->e[i].path);
                diffs++;
            }
            i++;
            j++;
        }
    }
    return diffs;
}

/* Opens the store, lets the re-dispatch finish, then abandons or closes. */
static int
round_trip(const struct store_config *cfg, int clean)
{
    struct store *s;
    struct store_open_info info;
    char err[512] = "";
    int rc = store_open(cfg, &s, &info, err, sizeof(err));

    if (rc != 0) {
        printf("recover_twice: store_open: %s: %s\n", spk_strerror(rc), err);
        return 1;
    }
    for (int i = 0; i < 30000 && store_dispatched(s) < store_written(s); i++)
        usleep(1000);
    if (store_dispatched(s) < store_written(s)) {
        printf("recover_twice: the re-dispatch did not finish in 30 s\n");
        store_abandon(s);
        return 1;
    }
    if (!clean) {
        store_abandon(s);
        return 0;
    }
    rc = store_close(s);
    if (rc != 0) {
        printf("recover_twice: store_close: %s\n", spk_strerror(rc));
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct store_config cfg;
    struct cfg_target t;
    struct snap s1 = {0}, s2 = {0};
    char err[CFG_ERR_MAX];
    size_t n;
    int rc = 2, diffs = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: recover_twice DIR [key=value ...]\n");
        return 2;
    }
    memset(&cfg, 0, sizeof(cfg));
    t.defs = store_config_table(&n);
    t.n = n;
    t.obj = &cfg;
    if (cfg_set_defaults(&t) != 0 || cfg_set(&t, 1, "storePathRootDir", argv[1], err, sizeof(err)) != 0) {
        fprintf(stderr, "recover_twice: configuration failed\n");
        goto out;
    }
    for (int i = 2; i < argc; i++) {
        char key[128];
        const char *eq = strchr(argv[i], '=');
        const char *k = argv[i];
        while (*k == '-')
            k++;
        if (eq == NULL || eq <= k || (size_t)(eq - k) >= sizeof(key)) {
            fprintf(stderr, "recover_twice: expected key=value, got '%s'\n", argv[i]);
            goto out;
        }
        memcpy(key, k, (size_t)(eq - k));
        key[eq - k] = '\0';
        if (cfg_set(&t, 1, key, eq + 1, err, sizeof(err)) != 0) {
            fprintf(stderr, "recover_twice: %s\n", err);
            goto out;
        }
    }
    s1.e = calloc(MAX_FILES, sizeof(*s1.e));
    s2.e = calloc(MAX_FILES, sizeof(*s2.e));
    if (s1.e == NULL || s2.e == NULL) {
        fprintf(stderr, "recover_twice: out of memory\n");
        goto out;
    }

    rc = 1;
    if (round_trip(&cfg, 0) != 0 || snapshot(argv[1], &s1) != 0)
        goto out;
    if (round_trip(&cfg, 0) != 0 || snapshot(argv[1], &s2) != 0)
        goto out;
    diffs += compare("second abnormal recovery", &s1, &s2);
    if (round_trip(&cfg, 1) != 0 || snapshot(argv[1], &s1) != 0)
        goto out;
    if (round_trip(&cfg, 1) != 0 || snapshot(argv[1], &s2) != 0)
        goto out;
    diffs += compare("second normal recovery", &s1, &s2);
    printf("recover_twice: %zu files, %d difference(s)\n", s2.n, diffs);
    rc = diffs == 0 ? 0 : 1;
out:
    free(s1.e);
    free(s2.e);
    cfg_free(&t);
    return rc;
}
