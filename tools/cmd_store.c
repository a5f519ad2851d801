/*
 * cmd_store.c - `sprocket store dump` and `sprocket store check`: offline
 * views of a store directory, built on store/inspect.h.
 *
 * Both read a stopped store (or a copy) without opening it, so they show
 * what is on disk, including what recovery would cut or rebuild. A running
 * store changes under them: they say so when <root>/lock is held, and go
 * on, because looking cannot hurt it.
 *
 * Output contract (scripts and the integration test rely on it):
 *   check  one line per finding, "<file>: byte <n>: <reason>" (notes are
 *          prefixed "note: "), at most CHECK_MAX_LINES of them, then
 *          exactly one summary line
 *            checked N records, M queue units, K index entries: OK
 *            checked N records, M queue units, K index entries: 1 problem
 *            checked N records, M queue units, K index entries: P problems
 *          and exit 1 when there is a problem (notes alone do not fail).
 *   dump   one line per record, unit, index file, index entry and
 *          checkpoint field; findings met on the way are printed inline
 *          prefixed "!! " (problems) or "note: ".
 */
#include "tool.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "store/inspect.h"
#include "store/record.h"

#define CHECK_MAX_LINES 100

static void
store_usage(FILE *out)
{
    fputs("usage: sprocket store dump DIR [--records] [--queues] [--index] [--checkpoint]\n"
          "       sprocket store check DIR\n"
          "\n"
          "DIR is a store's storePathRootDir. Both commands read the files directly and\n"
          "change nothing; run them on a stopped store or on a copy.\n"
          "'sprocket store dump --help' and 'sprocket store check --help' say more.\n",
          out);
}

static void
dump_usage(FILE *out)
{
    fputs("usage: sprocket store dump DIR [--records] [--queues] [--index] [--checkpoint]\n"
          "                              [--maxHashSlotNum=N --maxIndexNum=M]\n"
          "\n"
          "Prints the store under DIR in readable form, reading the files directly (nothing\n"
          "is opened, locked, recovered or changed). With no section option, all sections:\n"
          "  --checkpoint  the checkpoint: RocketMQ timestamps and Sprocket's durable offsets\n"
          "  --records     every CommitLog record: log offset, segment file and position,\n"
          "                size, topic, queue id, queue offset, store and born times, tags,\n"
          "                keys, body length, msgId and all properties as [name=value]\n"
          "  --queues      every ConsumeQueue unit: topic/queue, unit index, file position,\n"
          "                log offset, size, tagsCode\n"
          "  --index       every IndexFile header and entry\n"
          "Problems met on the way are printed inline, prefixed '!! '; use\n"
          "'sprocket store check' for a verdict.\n"
          "--maxHashSlotNum/--maxIndexNum: the index geometry, when the store did not use\n"
          "RocketMQ's defaults (5000000/20000000) or their 1:4 ratio.\n",
          out);
}

static void
check_usage(FILE *out)
{
    fputs("usage: sprocket store check DIR [--maxHashSlotNum=N --maxIndexNum=M]\n"
          "\n"
          "Verifies the stopped store under DIR without opening it:\n"
          "  - every CommitLog record parses, its CRCs match and its PHYSICALOFFSET is its\n"
          "    position; segments are equal-sized and contiguous; the data ends in the last\n"
          "    segment followed only by zeros;\n"
          "  - every ConsumeQueue unit names a valid record with the unit's size, queue id,\n"
          "    topic, queue offset and tag hash, and every message of the log has its unit;\n"
          "  - every index file passes its own checks and every entry names a record one of\n"
          "    whose keys has the entry's hash;\n"
          "  - the checkpoint's durable offsets lie within the data.\n"
          "Prints one line per problem, '<file>: byte <offset>: <reason>' (at most 100),\n"
          "then 'checked N records, M queue units, K index entries: OK' or ': P problems'.\n"
          "Exit status: 0 consistent, 1 problems found, 2 usage error or unreadable DIR.\n",
          out);
}

/* Options of dump and check. */
struct store_opts {
    const char *dir;
    int records, queues, index, checkpoint; /* dump sections */
    uint32_t slot_num, index_num;
};

static int
parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Returns -1 after printing a usage error, 1 when help was printed, else 0. */
static int
parse_store_opts(const char *cmd, int argc, char **argv, int is_dump, struct store_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (tool_is_help(a)) {
            if (is_dump)
                dump_usage(stdout);
            else
                check_usage(stdout);
            return 1;
        }
        if (is_dump && strcmp(a, "--records") == 0) {
            o->records = 1;
        } else if (is_dump && strcmp(a, "--queues") == 0) {
            o->queues = 1;
        } else if (is_dump && strcmp(a, "--index") == 0) {
            o->index = 1;
        } else if (is_dump && strcmp(a, "--checkpoint") == 0) {
            o->checkpoint = 1;
        } else if (strncmp(a, "--maxHashSlotNum=", 17) == 0) {
            if (parse_u32(a + 17, &o->slot_num) != 0) {
                fprintf(stderr, "sprocket store %s: '%s': give a positive number\n", cmd, a);
                return -1;
            }
        } else if (strncmp(a, "--maxIndexNum=", 14) == 0) {
            if (parse_u32(a + 14, &o->index_num) != 0) {
                fprintf(stderr, "sprocket store %s: '%s': give a positive number\n", cmd, a);
                return -1;
            }
        } else if (a[0] == '-') {
            fprintf(stderr,
                    "sprocket store %s: unknown option '%s'; see 'sprocket store %s --help'\n", cmd,
                    a, cmd);
            return -1;
        } else if (o->dir == NULL) {
            o->dir = a;
        } else {
            fprintf(stderr, "sprocket store %s: one store directory only ('%s' and '%s')\n", cmd,
                    o->dir, a);
            return -1;
        }
    }
    if (o->dir == NULL) {
        fprintf(stderr,
                "sprocket store %s: give the store directory (its storePathRootDir); "
                "see 'sprocket store %s --help'\n",
                cmd, cmd);
        return -1;
    }
    if ((o->slot_num == 0) != (o->index_num == 0)) {
        fprintf(stderr,
                "sprocket store %s: give both --maxHashSlotNum and --maxIndexNum, or "
                "neither\n",
                cmd);
        return -1;
    }
    if (!o->records && !o->queues && !o->index && !o->checkpoint)
        o->records = o->queues = o->index = o->checkpoint = 1;
    return 0;
}

/* Formatting helpers ------------------------------------------------- */

/* "2026-11-25T10:00:00.123" in local time, or the raw number when absurd. */
static void
fmt_ms(int64_t ms, char *buf, size_t len)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || localtime_r(&sec, &tm) == NULL) {
        snprintf(buf, len, "%" PRId64, ms);
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/*
 * Writes <p>[0..n) readably: control bytes and backslashes as \xNN,
 * everything else (UTF-8 included) as is.
 */
static void
put_text(FILE *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            fprintf(out, "\\x%02x", c);
        else
            putc(c, out);
    }
}

/*
 * Properties as [name=value][name=value]: 0x01 shown as '=', each 0x02 as
 * the closing bracket. An area that does not end in 0x02 leaves its last
 * bracket open and says so.
 */
static void
put_props(FILE *out, const char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        const char *end = memchr(p + i, REC_PROP_SEP, n - i);
        size_t len = end ? (size_t)(end - (p + i)) : n - i;
        const char *sep = memchr(p + i, REC_NAME_SEP, len);

        putc('[', out);
        if (sep != NULL) {
            put_text(out, p + i, (size_t)(sep - (p + i)));
            putc('=', out);
            put_text(out, sep + 1, len - (size_t)(sep - (p + i)) - 1);
        } else {
            put_text(out, p + i, len);
        }
        if (end != NULL)
            putc(']', out);
        else
            fputs(" (no closing 0x02)", out);
        i += len + 1;
    }
}

static void
put_host(FILE *out, const uint8_t *h, int len, int32_t port)
{
    if (len == 4) {
        fprintf(out, "%u.%u.%u.%u:%" PRId32, h[0], h[1], h[2], h[3], port);
        return;
    }
    putc('[', out);
    for (int i = 0; i < 16; i += 2)
        fprintf(out, "%s%x", i ? ":" : "", (unsigned)(h[i] << 8 | h[i + 1]));
    fprintf(out, "]:%" PRId32, port);
}

static const char *
base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* dump ---------------------------------------------------------------- */

static void
dump_finding(void *arg, const struct insp_finding *f)
{
    (void)arg;
    printf("%s%s: byte %" PRIu64 ": %s\n", f->severity == INSP_PROBLEM ? "!! " : "note: ", f->file,
           f->pos, f->what);
}

static int
dump_record(void *arg, const struct insp_record *r)
{
    const struct rec_view *v = r->v;
    char ts[32], born[32], id[64];
    const char *val;
    size_t len;

    (void)arg;
    fmt_ms(v->store_ts, ts, sizeof(ts));
    fmt_ms(v->born_ts, born, sizeof(born));
    rec_msg_id(v->store_host, v->store_host_len, v->store_port, v->phys_off, id);
    printf("record %" PRIu64 " %s+%" PRIu64 " size=%" PRIu32 " topic=", r->phys, base_name(r->file),
           r->seg_pos, v->total);
    put_text(stdout, v->topic, v->topic_len);
    printf(" queue=%" PRId32 " qoff=%" PRIu64 " stored=%s born=%s from=", v->queue_id, v->queue_off,
           ts, born);
    put_host(stdout, v->born_host, v->born_host_len, v->born_port);
    fputs(" tags=", stdout);
    if (rec_prop_get(v->props, v->props_len, "TAGS", &val, &len))
        put_text(stdout, val, len);
    else
        putchar('-');
    fputs(" keys=", stdout);
    if (rec_prop_get(v->props, v->props_len, "KEYS", &val, &len))
        put_text(stdout, val, len);
    else
        putchar('-');
    printf(" body=%" PRIu32 " sysflag=0x%" PRIx32 " flag=%" PRId32 " reconsume=%" PRId32
           " msgId=%s props=",
           v->body_len, (uint32_t)v->sysflag, v->flag, v->reconsume_times, id);
    put_props(stdout, v->props, v->props_len);
    putchar('\n');
    return 0;
}

static int
dump_unit(void *arg, const struct insp_unit *u)
{
    (void)arg;
    printf("unit %s/%" PRId32 " idx=%" PRIu64 " %s+%" PRIu64, u->topic, u->queue_id, u->queue_idx,
           base_name(u->file), u->file_pos);
    if (u->blank) {
        puts(" blank");
        return 0;
    }
    printf(" phys=%" PRIu64 " size=%" PRIu32 " tagsCode=%" PRId64 "%s\n", u->phys_off, u->size,
           u->tags_code, u->expired ? " (expired: below the log's first segment)" : "");
    return 0;
}

static void
dump_ix_file(void *arg, const char *name, const struct ix_header *h)
{
    char b[32], e[32];

    (void)arg;
    fmt_ms(h->begin_ts, b, sizeof(b));
    fmt_ms(h->end_ts, e, sizeof(e));
    printf("index %s begin=%s end=%s beginPhys=%" PRIu64 " endPhys=%" PRIu64
           " hashSlotCount=%" PRId32 " indexCount=%" PRId32 "\n",
           name, b, e, h->begin_phys, h->end_phys, h->slot_count, h->index_count);
}

static void
dump_ix_entry(void *arg, uint32_t n, int32_t key_hash, uint64_t phys, int32_t time_diff,
              int32_t prev)
{
    (void)arg;
    printf("entry %" PRIu32 " hash=%" PRId32 " phys=%" PRIu64 " timeDiff=%" PRId32 "s prev=%" PRId32
           "\n",
           n, key_hash, phys, time_diff, prev);
}

static void
dump_checkpoint(const struct insp *in, const char *dir)
{
    struct ckpt c;
    char t[32];

    if (insp_checkpoint(in, &c) != 0) {
        printf("checkpoint %s/checkpoint: none\n", dir);
        return;
    }
    printf("checkpoint %s/checkpoint\n", dir);
    fmt_ms(c.phys_ts, t, sizeof(t));
    printf("  physicMsgTimestamp   %" PRId64 " (%s)\n", c.phys_ts, t);
    fmt_ms(c.logics_ts, t, sizeof(t));
    printf("  logicsMsgTimestamp   %" PRId64 " (%s)\n", c.logics_ts, t);
    fmt_ms(c.index_ts, t, sizeof(t));
    printf("  indexMsgTimestamp    %" PRId64 " (%s)\n", c.index_ts, t);
    printf("  masterFlushedOffset  %" PRIu64 "\n", c.master_flushed);
    printf("  confirmPhyOffset     %" PRIu64 "\n", c.confirm);
    if (!c.ext_valid) {
        printf("  extension            absent or invalid (magic or CRC)\n");
        return;
    }
    printf("  clog_durable         %" PRIu64 "\n", c.clog_durable);
    printf("  cq_durable           %" PRIu64 "\n", c.cq_durable);
    printf("  index_durable        %" PRIu64 "\n", c.index_durable);
}

static void
print_header(const struct insp *in, const char *dir, FILE *out)
{
    struct insp_info info;

    insp_get_info(in, &info);
    fprintf(out, "store %s: %zu CommitLog segment(s)", dir, info.segments);
    if (info.segments > 0)
        fprintf(out, " of %" PRIu64 " bytes, offsets [%" PRIu64 ", %" PRIu64 ")", info.seg_size,
                info.clog_min, info.files_end);
    fprintf(out, "; abort file %s\n",
            info.abort_present ? "present (the last stop was not clean)" : "absent");
    if (info.lock_holder != 0)
        fprintf(out,
                "warning: process %ld holds %s/lock: the store is running and its files change "
                "while they are read; stop it or inspect a copy\n",
                (long)info.lock_holder, dir);
}

static int
store_dump(int argc, char **argv)
{
    struct store_opts o;
    struct insp *in = NULL;
    char err[512];
    int rc;

    rc = parse_store_opts("dump", argc, argv, 1, &o);
    if (rc != 0)
        return rc > 0 ? TOOL_EXIT_OK : TOOL_EXIT_USAGE;
    rc = insp_open(o.dir, dump_finding, NULL, &in, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sprocket store dump: %s\n", err);
        return TOOL_EXIT_USAGE;
    }
    print_header(in, o.dir, stdout);
    if (o.checkpoint)
        dump_checkpoint(in, o.dir);
    /* The records walk also tells the unit and index checks where the log ends. */
    rc = insp_walk_records(in, o.records ? dump_record : NULL, NULL);
    if (rc == 0 && o.queues)
        rc = insp_walk_units(in, dump_unit, NULL);
    if (rc == 0 && o.index) {
        struct insp_index_ops ops = {dump_ix_file, dump_ix_entry};
        rc = insp_walk_index(in, o.slot_num, o.index_num, &ops, NULL);
    }
    if (rc != 0)
        fprintf(stderr, "sprocket store dump: %s\n", spk_strerror(rc));
    insp_close(in);
    return rc != 0 ? TOOL_EXIT_FAIL : TOOL_EXIT_OK;
}

/* check --------------------------------------------------------------- */

struct check_out {
    unsigned long lines;   /* finding lines printed */
    unsigned long dropped; /* beyond CHECK_MAX_LINES */
};

static void
check_finding(void *arg, const struct insp_finding *f)
{
    struct check_out *co = arg;

    if (co->lines >= CHECK_MAX_LINES) {
        co->dropped++;
        return;
    }
    co->lines++;
    printf("%s%s: byte %" PRIu64 ": %s\n", f->severity == INSP_NOTE ? "note: " : "", f->file,
           f->pos, f->what);
}

static int
store_check(int argc, char **argv)
{
    struct store_opts o;
    struct check_out co = {0, 0};
    struct insp *in = NULL;
    struct insp_log_stats ls;
    struct insp_queue_stats qs;
    struct insp_index_stats is;
    uint64_t problems;
    char err[512];
    int rc;

    rc = parse_store_opts("check", argc, argv, 0, &o);
    if (rc != 0)
        return rc > 0 ? TOOL_EXIT_OK : TOOL_EXIT_USAGE;
    rc = insp_open(o.dir, check_finding, &co, &in, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sprocket store check: %s\n", err);
        return TOOL_EXIT_USAGE;
    }
    {
        struct insp_info info;
        insp_get_info(in, &info);
        if (info.lock_holder != 0)
            print_header(in, o.dir, stdout);
    }
    rc = insp_walk_records(in, NULL, NULL);
    if (rc == 0)
        rc = insp_walk_units(in, NULL, NULL);
    if (rc == 0)
        rc = insp_walk_index(in, o.slot_num, o.index_num, NULL, NULL);
    if (rc == 0)
        insp_check_checkpoint(in);
    if (rc != 0) {
        fprintf(stderr, "sprocket store check: stopped: %s\n", spk_strerror(rc));
        insp_close(in);
        return TOOL_EXIT_FAIL;
    }
    if (co.dropped > 0)
        printf("... %lu more line(s) not shown\n", co.dropped);
    insp_log_stats(in, &ls);
    insp_queue_stats(in, &qs);
    insp_index_stats(in, &is);
    problems = insp_problems(in);
    printf("checked %" PRIu64 " records, %" PRIu64 " queue units, %" PRIu64 " index entries: ",
           ls.records, qs.units, is.entries);
    if (problems == 0)
        printf("OK\n");
    else
        printf("%" PRIu64 " problem%s\n", problems, problems == 1 ? "" : "s");
    insp_close(in);
    return problems == 0 ? TOOL_EXIT_OK : TOOL_EXIT_FAIL;
}

int
cmd_store(int argc, char **argv)
{
    if (argc < 2) {
        store_usage(stderr);
        return TOOL_EXIT_USAGE;
    }
    if (tool_is_help(argv[1])) {
        store_usage(stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "dump") == 0)
        return store_dump(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
        return store_check(argc - 1, argv + 1);
    fprintf(stderr,
            "sprocket store: unknown subcommand '%s'; use 'dump' or 'check' "
            "(see 'sprocket store --help')\n",
            argv[1]);
    return TOOL_EXIT_USAGE;
}
