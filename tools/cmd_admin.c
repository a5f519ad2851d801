/*
 * cmd_admin.c - the operator commands of `sprocket`: RocketMQ's mqadmin
 * commands with the same names and, where they make sense here, the same
 * flags (updateTopic, topicList, topicStatus, consumerProgress,
 * queryMsgById, resetOffsetByTime, printMsg, ...), built on client/admin.h.
 *
 * Output contract (scripts and tests rely on it):
 *   - Without --json, tables shaped like mqadmin's: a header row whose
 *     cells start with '#', aligned columns (tools/table.h), and the same
 *     summary lines mqadmin prints ("create topic to ADDR success.").
 *   - With --json, exactly one JSON document on stdout (clusterList -i
 *     prints one per round) and nothing else; every failure still goes to
 *     stderr, and a per-broker failure is also recorded in the document
 *     ("ok": false, "error": "...").
 *   - Every error names what was wrong and what to do next.
 *   - Exit codes as tool.h: 0 done, 1 the servers refused, could not be
 *     reached or nothing was found, 2 the command line was wrong (nothing
 *     was sent).
 *
 * Every command's options live in one table (its optdef array), from
 * which parsing and --help both come, so a flag cannot be accepted
 * without being documented.
 */
#include "tool.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "client/admin.h"
#include "common/clock.h"
#include "common/errors.h"
#include "table.h"

#define DEFAULT_NAMESRV "127.0.0.1:9876"
#define TOOLS_GROUP "TOOLS_CONSUMER" /* Java's MixAll.TOOLS_CONSUMER_GROUP */
#define MAX_OPTS 32
#define PULL_BATCH 32

struct optdef {
    char sh;         /* short letter, or 0 for a long-only option */
    const char *lng; /* long name without "--" */
    const char *arg; /* the value's name in --help; NULL: a flag */
    const char *help;
};

struct ctx;

struct command {
    const char *name;
    const char *summary; /* one line, for `sprocket --help` */
    const char *synopsis;
    const char *about;
    const struct optdef *opts;
    int (*run)(struct ctx *x);
};

struct ctx {
    const struct command *cmd;
    const struct optdef *defs[MAX_OPTS];
    const char *val[MAX_OPTS];
    size_t ndefs;
    int json;
    int timeout_ms;
    const char *namesrv;
    struct adm *adm;
    cJSON *out;
};

static const struct optdef common_opts[] = {
    {'n', "namesrvAddr", "ADDR",
     "name servers ip:port[;ip:port] (default $NAMESRV_ADDR or " DEFAULT_NAMESRV ")"},
    {0, "json", NULL, "print one JSON document instead of tables"},
    {0, "timeout", "MS", "time limit of each request (default 5000)"},
    {'h', "help", NULL, "describe the command"},
    {0, NULL, NULL, NULL},
};

/* Messages and exit codes ----------------------------------------------------------------- */

static int usage_err(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A wrong command line: says what and where the help is; exit 2. */
static int
usage_err(struct ctx *x, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "sprocket %s: ", x->cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see 'sprocket %s --help'\n", x->cmd->name);
    return TOOL_EXIT_USAGE;
}

/* The work failed: one line on stderr; exit 1. */
static int
fail(struct ctx *x, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "sprocket %s: ", x->cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return TOOL_EXIT_FAIL;
}

/* A transport failure (the server could not be reached or did not answer). */
static int
is_transport(int rc)
{
    return rc < 0 && rc >= -999 && rc != -ENOMEM;
}

/* A failed name-server call: the library's sentence and what to do. */
static int
ns_fail(struct ctx *x, int rc)
{
    if (is_transport(rc))
        return fail(x, "%s; is sprocketd running? pass -n ADDR (name servers tried: %s)",
                    adm_error(x->adm), x->namesrv);
    return fail(x, "%s", adm_error(x->adm));
}

/* What to add to a failed broker call's sentence. */
static const char *
broker_hint(struct ctx *x, int rc)
{
    if (is_transport(rc))
        return "; is that broker running? 'sprocket clusterList' shows the broker addresses";
    if (rc == SPK_EBROKER && adm_error_code(x->adm) == ADM_RS_TOPIC_NOT_EXIST)
        return "; 'sprocket topicList' lists the topics";
    if (rc == SPK_EBROKER && adm_error_code(x->adm) == ADM_RS_SUBSCRIPTION_GROUP_NOT_EXIST)
        return "; check -g, or create the group with 'sprocket updateSubGroup'";
    return "";
}

static int
broker_fail(struct ctx *x, int rc)
{
    return fail(x, "%s%s", adm_error(x->adm), broker_hint(x, rc));
}

/* Records a per-broker outcome in the JSON array <arr> and, on failure, on stderr. */
static void
note_result(struct ctx *x, cJSON *arr, const char *addr, int rc)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "broker", addr);
    cJSON_AddBoolToObject(o, "ok", rc == 0);
    if (rc) {
        cJSON_AddStringToObject(o, "error", adm_error(x->adm));
        broker_fail(x, rc);
    }
    cJSON_AddItemToArray(arr, o);
}

static void
emit_json(struct ctx *x)
{
    char *s = cJSON_Print(x->out);

    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    fflush(stdout);
}

/* Options --------------------------------------------------------------------------------- */

static int
find_def(const struct ctx *x, char sh, const char *lng, size_t lng_len)
{
    for (size_t i = 0; i < x->ndefs; i++) {
        const struct optdef *d = x->defs[i];
        if (sh && d->sh == sh)
            return (int)i;
        if (lng && strlen(d->lng) == lng_len && strncmp(d->lng, lng, lng_len) == 0)
            return (int)i;
    }
    return -1;
}

/* The value of option <name> (long name), "" for a given flag, or NULL. */
static const char *
opt(const struct ctx *x, const char *name)
{
    int i = find_def(x, 0, name, strlen(name));

    return i < 0 ? NULL : x->val[i];
}

static void
print_help(const struct command *c, FILE *out)
{
    const struct optdef *sets[2] = {c->opts, common_opts};

    fprintf(out, "usage: sprocket %s %s\n\n%s\n\noptions:\n", c->name, c->synopsis, c->about);
    for (int s = 0; s < 2; s++) {
        for (const struct optdef *d = sets[s]; d->lng; d++) {
            char left[64];
            if (d->sh)
                snprintf(left, sizeof(left), "-%c, --%s%s%s", d->sh, d->lng, d->arg ? " " : "",
                         d->arg ? d->arg : "");
            else
                snprintf(left, sizeof(left), "    --%s%s%s", d->lng, d->arg ? " " : "",
                         d->arg ? d->arg : "");
            fprintf(out, "  %-32s %s\n", left, d->help);
        }
    }
    fputs("\nexit status: 0 done, 1 failed (refused, unreachable or nothing found), 2 usage "
          "error\n",
          out);
}

/* Returns 0, TOOL_EXIT_USAGE after an error, or -1 after printing help. */
static int
parse_args(struct ctx *x, int argc, char **argv)
{
    const struct optdef *sets[2] = {x->cmd->opts, common_opts};

    x->ndefs = 0;
    for (int s = 0; s < 2; s++)
        for (const struct optdef *d = sets[s]; d->lng && x->ndefs < MAX_OPTS; d++)
            x->defs[x->ndefs++] = d;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int k;

        if (strcmp(a, "help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_help(x->cmd, stdout);
            return -1;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            k = find_def(x, 0, a + 2, n);
            if (k < 0)
                return usage_err(x, "unknown option '%.*s'", (int)n + 2, a);
            if (eq)
                v = eq + 1;
        } else if (a[0] == '-' && a[1] && a[1] != '-') {
            k = find_def(x, a[1], NULL, 0);
            if (k < 0)
                return usage_err(x, "unknown option '-%c'", a[1]);
            if (a[2])
                v = a + 2; /* -tTopic, as commons-cli accepts */
        } else {
            return usage_err(x,
                             "unexpected argument '%s' (every value follows its option, "
                             "as in -t TOPIC)",
                             a);
        }
        if (!x->defs[k]->arg) {
            if (v)
                return usage_err(x, "option --%s takes no value", x->defs[k]->lng);
            x->val[k] = "";
            continue;
        }
        if (!v) {
            if (i + 1 >= argc)
                return usage_err(x, "option %s needs a value (%s)", a, x->defs[k]->arg);
            v = argv[++i];
        }
        x->val[k] = v;
    }
    return 0;
}

/* A required option's value; NULL after printing a usage error. */
static const char *
need(struct ctx *x, const char *name, int *rc)
{
    int i = find_def(x, 0, name, strlen(name));
    const char *v = i < 0 ? NULL : x->val[i];

    if (v && *v)
        return v;
    if (i >= 0 && x->defs[i]->sh)
        *rc = usage_err(x, "give -%c %s (--%s)", x->defs[i]->sh, x->defs[i]->arg, name);
    else
        *rc = usage_err(x, "give --%s %s", name, i >= 0 ? x->defs[i]->arg : "VALUE");
    return NULL;
}

/* How an option is named in messages: "-r" or "--beginOffset". */
static const char *
optname(const struct ctx *x, const char *name, char *buf, size_t len)
{
    int i = find_def(x, 0, name, strlen(name));

    if (i >= 0 && x->defs[i]->sh)
        snprintf(buf, len, "-%c", x->defs[i]->sh);
    else
        snprintf(buf, len, "--%s", name);
    return buf;
}

/* Option <name> as an integer in [lo, hi] (<dflt> when absent); TOOL_EXIT_USAGE when bad. */
static int
opt_i64(struct ctx *x, const char *name, int64_t lo, int64_t hi, int64_t dflt, int64_t *out)
{
    const char *v = opt(x, name);
    char *end, nb[32];
    long long n;

    if (!v) {
        *out = dflt;
        return 0;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi)
        return usage_err(x, "%s '%s' is not a number from %lld to %lld",
                         optname(x, name, nb, sizeof(nb)), v, (long long)lo, (long long)hi);
    *out = n;
    return 0;
}

static int
opt_i32(struct ctx *x, const char *name, int32_t lo, int32_t hi, int32_t dflt, int32_t *out)
{
    int64_t v;
    int rc = opt_i64(x, name, lo, hi, dflt, &v);

    if (rc == 0)
        *out = (int32_t)v;
    return rc;
}

/* Option <name> as true/false (<dflt> when absent). */
static int
opt_bool(struct ctx *x, const char *name, int dflt, int *out)
{
    const char *v = opt(x, name);
    char nb[32];

    if (!v) {
        *out = dflt;
        return 0;
    }
    if (strcasecmp(v, "true") == 0) {
        *out = 1;
        return 0;
    }
    if (strcasecmp(v, "false") == 0) {
        *out = 0;
        return 0;
    }
    return usage_err(x, "%s '%s' is not true or false", optname(x, name, nb, sizeof(nb)), v);
}

/* 1 when <a> is an ip:port address. */
static int
addr_ok(const char *a)
{
    const char *colon = strrchr(a, ':');
    unsigned b[4];
    char *end;
    long port;
    int n = 0;

    if (!colon)
        return 0;
    port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port <= 0 || port > 65535)
        return 0;
    if (strncmp(a, "localhost:", 10) == 0)
        return 1;
    return sscanf(a, "%3u.%3u.%3u.%3u:%n", &b[0], &b[1], &b[2], &b[3], &n) == 4 &&
           a + n == colon + 1 && b[0] < 256 && b[1] < 256 && b[2] < 256 && b[3] < 256;
}

/* A broker address option (-b): NULL when absent; usage error when not ip:port. */
static int
opt_addr(struct ctx *x, const char *name, const char **out)
{
    const char *v = opt(x, name);
    char nb[32];

    *out = v;
    if (v && !addr_ok(v))
        return usage_err(x, "%s '%s' is not a broker address ip:port (such as 127.0.0.1:10911)",
                         optname(x, name, nb, sizeof(nb)), v);
    return 0;
}

/* A topic or group name as RocketMQ's validator allows it (<what>: "topic" or "group"). */
static int
check_name(struct ctx *x, const char *what, const char *t, size_t max)
{
    size_t n = strlen(t);

    if (n > max)
        return usage_err(x, "%s '%.40s...' is %zu bytes long; at most %zu are allowed", what, t, n,
                         max);
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '%' || c == '|' || c == '_' || c == '-'))
            return usage_err(x, "%s '%s' contains '%c'; use only letters, digits, %%, |, _ and -",
                             what, t, c);
    }
    return 0;
}

static int
check_topic(struct ctx *x, const char *t)
{
    int retry = strncmp(t, "%RETRY%", 7) == 0 || strncmp(t, "%DLQ%", 5) == 0;

    return check_name(x, "topic", t, retry ? 255 : 127);
}

/*
 * A timestamp as mqadmin takes it: "now", milliseconds since the epoch,
 * or local time "yyyy-MM-dd#HH:mm:ss:SSS". Returns 0 or a usage error.
 */
static int
opt_time(struct ctx *x, const char *name, int64_t dflt, int64_t *out)
{
    const char *v = opt(x, name);
    struct tm tm;
    int Y, M, D, h, m, s, ms, n = 0;
    char *end, nb[32];
    time_t t;

    if (!v) {
        *out = dflt;
        return 0;
    }
    if (strcmp(v, "now") == 0) {
        *out = spk_wall_ms();
        return 0;
    }
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (*v && !*end && !errno && *out >= 0)
        return 0;
    if (sscanf(v, "%4d-%2d-%2d#%2d:%2d:%2d:%3d%n", &Y, &M, &D, &h, &m, &s, &ms, &n) == 7 && !v[n]) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = Y - 1900;
        tm.tm_mon = M - 1;
        tm.tm_mday = D;
        tm.tm_hour = h;
        tm.tm_min = m;
        tm.tm_sec = s;
        tm.tm_isdst = -1;
        t = mktime(&tm);
        if (t != (time_t)-1) {
            *out = (int64_t)t * 1000 + ms;
            return 0;
        }
    }
    return usage_err(x,
                     "%s '%s' is not a time: give now, milliseconds since 1970, or "
                     "yyyy-MM-dd#HH:mm:ss:SSS",
                     optname(x, name, nb, sizeof(nb)), v);
}

/* Formatting ------------------------------------------------------------------------------ */

/* "2026-11-25 10:00:00,123" in local time (Java's timeMillisToHumanString2); "" for 0. */
static const char *
fmt_time(int64_t ms, char *buf, size_t len, int with_ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !localtime_r(&sec, &tm)) {
        buf[0] = '\0';
        return buf;
    }
    if (with_ms)
        snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d,%03d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    else
        snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

/*
 * MQVersion.getVersionDesc: the name of version ordinal <v>. After 16
 * early 3.0.0 names the enum runs in pairs (x_y_z_SNAPSHOT, x_y_z): 3.0.1
 * to 3.0.15, 3.1.0 to 3.2.9, 3.3.1 to 3.9.9 (no .0), then 4.0.0 to 5.9.9.
 */
static const char *
version_desc(int32_t v, char *buf, size_t len)
{
    static const char *const early[] = {
        "V3_0_0_SNAPSHOT", "V3_0_0_ALPHA1",         "V3_0_0_BETA1", "V3_0_0_BETA2",
        "V3_0_0_BETA3",    "V3_0_0_BETA4",          "V3_0_0_BETA5", "V3_0_0_BETA6_SNAPSHOT",
        "V3_0_0_BETA6",    "V3_0_0_BETA7_SNAPSHOT", "V3_0_0_BETA7", "V3_0_0_BETA8_SNAPSHOT",
        "V3_0_0_BETA8",    "V3_0_0_BETA9_SNAPSHOT", "V3_0_0_BETA9", "V3_0_0_FINAL"};
    int x, y, z, n;

    if (v < 0) {
        snprintf(buf, len, "version %d", (int)v);
        return buf;
    }
    if (v < 16)
        return early[v];
    if (v >= 612) {
        snprintf(buf, len, "HIGHER_VERSION");
        return buf;
    }
    if (v >= 212) {
        n = v - 212;
        x = 4 + n / 200, y = n % 200 / 20, z = n % 20 / 2;
    } else if (v >= 86) {
        n = v - 86;
        x = 3, y = 3 + n / 18, z = 1 + n % 18 / 2;
    } else if (v >= 46) {
        n = v - 46;
        x = 3, y = 1 + n / 20, z = n % 20 / 2;
    } else {
        n = v - 16;
        x = 3, y = 0, z = 1 + n / 2;
    }
    snprintf(buf, len, "V%d_%d_%d%s", x, y, z, n % 2 ? "" : "_SNAPSHOT");
    return buf;
}

static const char *
perm_str(int32_t p)
{
    static char buf[4];

    buf[0] = p & 4 ? 'R' : '-';
    buf[1] = p & 2 ? 'W' : '-';
    buf[2] = p & 1 ? 'X' : '-';
    buf[3] = '\0';
    return buf;
}

static const char *
tf(int v)
{
    return v ? "true" : "false";
}

/* 1 when s[0..n) is valid UTF-8 without NUL bytes. */
static int
utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0 && c >= 0xC2)
            k = 1;
        else if ((c & 0xF0) == 0xE0)
            k = 2;
        else if ((c & 0xF8) == 0xF0 && c <= 0xF4)
            k = 3;
        else
            return 0;
        for (size_t j = 1; j <= k; j++)
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k + 1;
    }
    return 1;
}

static char *
base64(const uint8_t *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *p = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        *p++ = tab[v >> 18 & 63];
        *p++ = tab[v >> 12 & 63];
        *p++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *p++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *p = '\0';
    return out;
}

/* Writes s[0..n) readably: control bytes and backslashes as \xNN, the rest as is. */
static void
put_text(FILE *out, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')
            fprintf(out, "\\x%02x", s[i]);
        else
            fputc(s[i], out);
    }
}

/* Messages -------------------------------------------------------------------------------- */

/* Java's Map.toString of the properties: {A=1, B=2}. */
static void
put_props(FILE *out, const struct adm_msg *m)
{
    fputc('{', out);
    for (size_t i = 0; i < m->nprops; i++) {
        fprintf(out, "%s%s=", i ? ", " : "", m->props[i].name);
        put_text(out, (const uint8_t *)m->props[i].val, strlen(m->props[i].val));
    }
    fputc('}', out);
}

static void
put_body(FILE *out, const struct adm_msg *m)
{
    if (m->body_compressed == 2)
        fprintf(out, "<%zu bytes, compressed with an unsupported algorithm (sysFlag %d)>",
                m->body_len, (int)m->sysflag);
    else
        put_text(out, m->body, m->body_len);
}

static cJSON *
msg_json(const struct adm_msg *m, const char *broker)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateObject();
    const char *tags = adm_msg_prop(m, "TAGS"), *keys = adm_msg_prop(m, "KEYS");

    cJSON_AddStringToObject(o, "msgId", adm_msg_id(m));
    cJSON_AddStringToObject(o, "offsetMsgId", m->offset_id);
    cJSON_AddStringToObject(o, "topic", m->topic);
    if (broker)
        cJSON_AddStringToObject(o, "brokerName", broker);
    cJSON_AddNumberToObject(o, "queueId", m->queue_id);
    cJSON_AddNumberToObject(o, "queueOffset", (double)m->queue_off);
    cJSON_AddNumberToObject(o, "commitLogOffset", (double)m->phys_off);
    cJSON_AddNumberToObject(o, "storeSize", m->store_size);
    cJSON_AddNumberToObject(o, "sysFlag", m->sysflag);
    cJSON_AddNumberToObject(o, "flag", m->flag);
    cJSON_AddNumberToObject(o, "bodyCRC", m->body_crc);
    cJSON_AddNumberToObject(o, "bornTimestamp", (double)m->born_ts);
    cJSON_AddNumberToObject(o, "storeTimestamp", (double)m->store_ts);
    cJSON_AddStringToObject(o, "bornHost", m->born_host);
    cJSON_AddStringToObject(o, "storeHost", m->store_host);
    cJSON_AddNumberToObject(o, "reconsumeTimes", m->reconsume_times);
    cJSON_AddNumberToObject(o, "preparedTransactionOffset", (double)m->prepared_tx_off);
    if (tags)
        cJSON_AddStringToObject(o, "tags", tags);
    if (keys)
        cJSON_AddStringToObject(o, "keys", keys);
    for (size_t i = 0; i < m->nprops; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(p, m->props[i].name); /* the last one wins */
        cJSON_AddStringToObject(p, m->props[i].name, m->props[i].val);
    }
    cJSON_AddItemToObject(o, "properties", p);
    if (m->body_compressed != 2 && utf8_ok(m->body, m->body_len)) {
        char *s = strndup((const char *)m->body, m->body_len);
        cJSON_AddStringToObject(o, "body", s ? s : "");
        free(s);
    } else {
        char *s = base64(m->body, m->body_len);
        cJSON_AddStringToObject(o, "bodyBase64", s ? s : "");
        free(s);
    }
    return o;
}

/* One message as queryMsgById prints it: "Name:  value" lines. */
static void
print_msg_detail(const struct adm_msg *m)
{
    const char *tags = adm_msg_prop(m, "TAGS"), *keys = adm_msg_prop(m, "KEYS");
    char tb[40];

    printf("%-20s %s\n", "OffsetID:", m->offset_id);
    printf("%-20s %s\n", "MsgId:", adm_msg_id(m));
    printf("%-20s %s\n", "Topic:", m->topic);
    printf("%-20s [%s]\n", "Tags:", tags ? tags : "null");
    printf("%-20s [%s]\n", "Keys:", keys ? keys : "null");
    printf("%-20s %d\n", "Queue ID:", (int)m->queue_id);
    printf("%-20s %lld\n", "Queue Offset:", (long long)m->queue_off);
    printf("%-20s %lld\n", "CommitLog Offset:", (long long)m->phys_off);
    printf("%-20s %d\n", "Reconsume Times:", (int)m->reconsume_times);
    printf("%-20s %s\n", "Born Timestamp:", fmt_time(m->born_ts, tb, sizeof(tb), 1));
    printf("%-20s %s\n", "Store Timestamp:", fmt_time(m->store_ts, tb, sizeof(tb), 1));
    printf("%-20s %s\n", "Born Host:", m->born_host);
    printf("%-20s %s\n", "Store Host:", m->store_host);
    printf("%-20s %d\n", "System Flag:", (int)m->sysflag);
    printf("%-20s ", "Properties:");
    put_props(stdout, m);
    printf("\n%-20s ", "Message Body:");
    put_body(stdout, m);
    printf("\n");
}

/* Name-server helpers --------------------------------------------------------------------- */

/* The route of <topic>, or an exit code after printing why (with <what> naming the topic's role).
 */
static int
get_route(struct ctx *x, const char *topic, struct adm_route **rt)
{
    int rc = adm_route(x->adm, topic, rt);

    if (rc == SPK_ENOROUTE)
        return fail(x,
                    "topic '%s' is not known to the name server (%s); 'sprocket topicList' "
                    "lists the topics, 'sprocket updateTopic' creates one",
                    topic, x->namesrv);
    if (rc)
        return ns_fail(x, rc);
    return 0;
}

/* The broker addresses of a cluster: masters only, or every address. */
struct target {
    const char *broker; /* borrowed from the cluster info */
    int64_t id;
    const char *addr;
    const char *master; /* the group's master address, or NULL */
};

static int
cluster_targets(struct ctx *x, const char *cluster, int slaves, struct adm_cluster **ci,
                struct target **out, size_t *n)
{
    struct target *t = NULL;
    size_t k = 0;
    int rc = adm_cluster_info(x->adm, ci);

    if (rc)
        return ns_fail(x, rc);
    if (!adm_cluster_has(*ci, cluster)) {
        adm_cluster_free(*ci);
        *ci = NULL;
        return fail(x,
                    "cluster '%s' is not known to the name server (%s); 'sprocket "
                    "clusterList' lists the clusters",
                    cluster, x->namesrv);
    }
    for (size_t i = 0; i < (*ci)->nbrokers; i++) {
        const struct adm_broker *b = &(*ci)->brokers[i];
        if (strcmp(b->cluster, cluster) != 0)
            continue;
        for (size_t j = 0; j < b->naddrs; j++) {
            struct target *nt;
            if (!slaves && b->addrs[j].id != 0)
                continue;
            nt = realloc(t, (k + 1) * sizeof(*nt));
            if (!nt) {
                free(t);
                adm_cluster_free(*ci);
                *ci = NULL;
                return fail(x, "out of memory");
            }
            t = nt;
            t[k].broker = b->name;
            t[k].id = b->addrs[j].id;
            t[k].addr = b->addrs[j].addr;
            t[k].master = adm_broker_master(b);
            k++;
        }
    }
    if (k == 0) {
        adm_cluster_free(*ci);
        *ci = NULL;
        free(t);
        return fail(x, "cluster '%s' has no %s online; 'sprocket clusterList -c %s' shows it",
                    cluster, slaves ? "broker" : "master broker", cluster);
    }
    *out = t;
    *n = k;
    return 0;
}

/* updateTopic ----------------------------------------------------------------------------- */

static const struct optdef update_topic_opts[] = {
    {'t', "topic", "TOPIC", "the topic to create or change (required)"},
    {'b', "brokerAddr", "ADDR", "on this broker (ip:port)"},
    {'c', "clusterName", "CLUSTER", "on every master broker of this cluster"},
    {'r', "readQueueNums", "N", "read queues, 1..65535 (default 8)"},
    {'w', "writeQueueNums", "N", "write queues, 1..65535 (default 8)"},
    {'p', "perm", "PERM", "permission: 2 write, 4 read, 6 both (default 6)"},
    {'o', "order", "BOOL", "an ordered topic, true or false (default false)"},
    {'u', "unit", "BOOL", "a unit topic (topicSysFlag bit 1), true or false"},
    {'s', "hasUnitSub", "BOOL", "has unit subscriptions (topicSysFlag bit 2), true or false"},
    {0, NULL, NULL, NULL},
};

static int
run_update_topic(struct ctx *x)
{
    struct adm_topic_conf tc;
    struct adm_cluster *ci = NULL;
    struct target *tg = NULL;
    const char *b, *c = opt(x, "clusterName");
    int unit, sub, rc = 0, failed = 0;
    size_t n = 0;
    cJSON *res, *conf;

    memset(&tc, 0, sizeof(tc));
    if (!(tc.topic = need(x, "topic", &rc)))
        return rc;
    if ((rc = check_topic(x, tc.topic)) || (rc = opt_addr(x, "brokerAddr", &b)) ||
        (rc = opt_i32(x, "readQueueNums", 1, 65535, 8, &tc.read)) ||
        (rc = opt_i32(x, "writeQueueNums", 1, 65535, 8, &tc.write)) ||
        (rc = opt_i32(x, "perm", 0, 7, 6, &tc.perm)) || (rc = opt_bool(x, "order", 0, &tc.order)) ||
        (rc = opt_bool(x, "unit", 0, &unit)) || (rc = opt_bool(x, "hasUnitSub", 0, &sub)))
        return rc;
    if (tc.perm != 2 && tc.perm != 4 && tc.perm != 6)
        return usage_err(x, "-p %d is not a permission: give 2 (write), 4 (read) or 6 (both)",
                         (int)tc.perm);
    if (!b == !c)
        return usage_err(x, b ? "give -b or -c, not both"
                              : "give the broker with -b ADDR or the cluster with -c CLUSTER");
    tc.sysflag = (unit ? 1 : 0) | (sub ? 2 : 0);
    if (c && (rc = cluster_targets(x, c, 0, &ci, &tg, &n)))
        return rc;
    conf = cJSON_AddObjectToObject(x->out, "topicConfig");
    cJSON_AddStringToObject(conf, "topicName", tc.topic);
    cJSON_AddNumberToObject(conf, "readQueueNums", tc.read);
    cJSON_AddNumberToObject(conf, "writeQueueNums", tc.write);
    cJSON_AddNumberToObject(conf, "perm", tc.perm);
    cJSON_AddStringToObject(conf, "topicFilterType", "SINGLE_TAG");
    cJSON_AddNumberToObject(conf, "topicSysFlag", tc.sysflag);
    cJSON_AddBoolToObject(conf, "order", tc.order);
    res = cJSON_AddArrayToObject(x->out, "results");
    for (size_t i = 0; i < (b ? 1 : n); i++) {
        const char *addr = b ? b : tg[i].addr;
        int r = adm_update_topic(x->adm, addr, &tc);
        note_result(x, res, addr, r);
        if (r)
            failed++;
        else if (!x->json)
            printf("create topic to %s success.\n", addr);
    }
    if (!x->json && failed < (int)(b ? 1 : n))
        printf("TopicConfig [topicName=%s, readQueueNums=%d, writeQueueNums=%d, perm=%s, "
               "topicFilterType=SINGLE_TAG, topicSysFlag=%d, order=%s, attributes={}]\n",
               tc.topic, (int)tc.read, (int)tc.write, perm_str(tc.perm), (int)tc.sysflag,
               tf(tc.order));
    free(tg);
    adm_cluster_free(ci);
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* deleteTopic ----------------------------------------------------------------------------- */

static const struct optdef delete_topic_opts[] = {
    {'t', "topic", "TOPIC", "the topic to delete (required)"},
    {'c', "clusterName", "CLUSTER",
     "delete it from every master of this cluster and from the "
     "name servers (required)"},
    {0, NULL, NULL, NULL},
};

static int
run_delete_topic(struct ctx *x)
{
    struct adm_route *rt = NULL;
    struct adm_cluster *ci = NULL;
    struct target *tg = NULL;
    const char *topic, *cluster;
    size_t n = 0;
    int rc = 0, failed = 0;
    cJSON *res;

    if (!(topic = need(x, "topic", &rc)) || !(cluster = need(x, "clusterName", &rc)))
        return rc;
    if ((rc = check_topic(x, topic)))
        return rc;
    if ((rc = get_route(x, topic, &rt)))
        return rc;
    adm_route_free(rt);
    if ((rc = cluster_targets(x, cluster, 0, &ci, &tg, &n)))
        return rc;
    cJSON_AddStringToObject(x->out, "topic", topic);
    cJSON_AddStringToObject(x->out, "cluster", cluster);
    res = cJSON_AddArrayToObject(x->out, "results");
    for (size_t i = 0; i < n; i++) {
        int r = adm_delete_topic(x->adm, tg[i].addr, topic);
        note_result(x, res, tg[i].addr, r);
        failed += r != 0;
    }
    if (!failed && !x->json)
        printf("delete topic [%s] from cluster [%s] success.\n", topic, cluster);
    rc = adm_namesrv_delete_topic(x->adm, topic, cluster);
    cJSON_AddBoolToObject(x->out, "namesrvDeleted", rc == 0);
    if (rc) {
        ns_fail(x, rc);
        failed++;
    } else if (!x->json) {
        printf("delete topic [%s] from NameServer success.\n", topic);
    }
    free(tg);
    adm_cluster_free(ci);
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* topicList ------------------------------------------------------------------------------- */

static const struct optdef topic_list_opts[] = {
    {'c', "clusterModel", NULL, "also the cluster of each topic and the groups consuming it"},
    {0, NULL, NULL, NULL},
};

static int
run_topic_list(struct ctx *x)
{
    struct adm_strv topics = {NULL, 0};
    struct table *t = NULL;
    cJSON *arr;
    int rc = adm_topic_list(x->adm, &topics);

    if (rc)
        return ns_fail(x, rc);
    arr = cJSON_AddArrayToObject(x->out, "topics");
    if (!opt(x, "clusterModel")) {
        for (size_t i = 0; i < topics.n; i++) {
            cJSON_AddItemToArray(arr, cJSON_CreateString(topics.v[i]));
            if (!x->json)
                printf("%s\n", topics.v[i]);
        }
        adm_strv_free(&topics);
        return 0;
    }
    {
        static const char *const hdr[] = {"#Cluster Name", "#Topic", "#Consumer Group"};
        t = table_new(hdr, 3);
    }
    for (size_t i = 0; i < topics.n; i++) {
        const char *topic = topics.v[i];
        struct adm_route *rt = NULL;
        struct adm_strv groups = {NULL, 0};
        const char *cluster = "";
        cJSON *o, *ga;

        if (strncmp(topic, "%RETRY%", 7) == 0 || strncmp(topic, "%DLQ%", 5) == 0)
            continue;
        if (adm_route(x->adm, topic, &rt) == 0) {
            for (size_t k = 0; k < rt->nbrokers; k++) {
                const char *m = adm_broker_master(&rt->brokers[k]);
                if (!*cluster)
                    cluster = rt->brokers[k].cluster;
                if (m && adm_topic_groups(x->adm, m, topic, &groups) != 0)
                    fprintf(stderr, "sprocket topicList: %s\n", adm_error(x->adm));
            }
        }
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", topic);
        cJSON_AddStringToObject(o, "cluster", cluster);
        ga = cJSON_AddArrayToObject(o, "groups");
        for (size_t k = 0; k < groups.n; k++)
            cJSON_AddItemToArray(ga, cJSON_CreateString(groups.v[k]));
        cJSON_AddItemToArray(arr, o);
        for (size_t k = 0; k < (groups.n ? groups.n : 1); k++) {
            table_cell(t, "%s", cluster);
            table_cell(t, "%s", topic);
            table_cell(t, "%s", groups.n ? groups.v[k] : "");
        }
        adm_strv_free(&groups);
        adm_route_free(rt);
    }
    if (!x->json && t)
        table_print(t, stdout);
    table_free(t);
    adm_strv_free(&topics);
    return 0;
}

/* topicRoute ------------------------------------------------------------------------------ */

static const struct optdef topic_route_opts[] = {
    {'t', "topic", "TOPIC", "the topic (required)"},
    {'l', "list", NULL, "print a table instead of the route's JSON"},
    {0, NULL, NULL, NULL},
};

static int
run_topic_route(struct ctx *x)
{
    struct adm_route *rt;
    const char *topic;
    cJSON *bds, *qds;
    int rc = 0;

    if (!(topic = need(x, "topic", &rc)))
        return rc;
    if ((rc = get_route(x, topic, &rt)))
        return rc;
    bds = cJSON_AddArrayToObject(x->out, "brokerDatas");
    for (size_t i = 0; i < rt->nbrokers; i++) {
        const struct adm_broker *b = &rt->brokers[i];
        cJSON *o = cJSON_CreateObject(), *ad = cJSON_AddObjectToObject(o, "brokerAddrs");
        for (size_t k = 0; k < b->naddrs; k++) {
            char id[24];
            snprintf(id, sizeof(id), "%lld", (long long)b->addrs[k].id);
            cJSON_AddStringToObject(ad, id, b->addrs[k].addr);
        }
        cJSON_AddStringToObject(o, "brokerName", b->name);
        cJSON_AddStringToObject(o, "cluster", b->cluster);
        cJSON_AddItemToArray(bds, o);
    }
    qds = cJSON_AddArrayToObject(x->out, "queueDatas");
    for (size_t i = 0; i < rt->nqueues; i++) {
        const struct adm_queue_data *q = &rt->queues[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "brokerName", q->broker);
        cJSON_AddNumberToObject(o, "perm", q->perm);
        cJSON_AddNumberToObject(o, "readQueueNums", q->read);
        cJSON_AddNumberToObject(o, "topicSysFlag", q->sysflag);
        cJSON_AddNumberToObject(o, "writeQueueNums", q->write);
        cJSON_AddItemToArray(qds, o);
    }
    if (!x->json && !opt(x, "list")) {
        emit_json(x); /* mqadmin prints the route as JSON too */
    } else if (!x->json) {
        static const char *const hdr[] = {"#ClusterName", "#BrokerName", "#BrokerAddrs",
                                          "#ReadQueue",   "#WriteQueue", "#Perm"};
        struct table *t = table_new(hdr, 6);
        int64_t rq = 0, wq = 0;
        for (size_t i = 0; t && i < rt->nbrokers; i++) {
            const struct adm_broker *b = &rt->brokers[i];
            const struct adm_queue_data *q = adm_route_queues(rt, b->name);
            char addrs[512] = "{";
            for (size_t k = 0; k < b->naddrs; k++)
                snprintf(addrs + strlen(addrs), sizeof(addrs) - strlen(addrs), "%s%lld=%s",
                         k ? ", " : "", (long long)b->addrs[k].id, b->addrs[k].addr);
            strncat(addrs, "}", sizeof(addrs) - strlen(addrs) - 1);
            table_cell(t, "%s", b->cluster);
            table_cell(t, "%s", b->name);
            table_cell(t, "%s", addrs);
            table_cell(t, "%d", q ? (int)q->read : 0);
            table_cell(t, "%d", q ? (int)q->write : 0);
            table_cell(t, "%d", q ? (int)q->perm : 0);
            rq += q ? q->read : 0;
            wq += q ? q->write : 0;
        }
        if (t) {
            table_cell(t, "Total:");
            table_cell(t, "%zu", rt->nbrokers);
            table_cell(t, "%s", "");
            table_cell(t, "%lld", (long long)rq);
            table_cell(t, "%lld", (long long)wq);
            table_cell(t, "%s", "");
            table_print(t, stdout);
        }
        table_free(t);
    }
    adm_route_free(rt);
    /* the JSON of the default output was printed above; --json prints it in main */
    return 0;
}

/* topicStatus ----------------------------------------------------------------------------- */

static const struct optdef topic_status_opts[] = {
    {'t', "topic", "TOPIC", "the topic (required)"},
    {'c', "cluster", "CLUSTER", "only the brokers of this cluster"},
    {0, NULL, NULL, NULL},
};

static int
run_topic_status(struct ctx *x)
{
    struct adm_queue_stats st;
    struct adm_route *rt;
    const char *topic, *cluster = opt(x, "cluster");
    int rc = 0, failed = 0, asked = 0;
    cJSON *arr;

    memset(&st, 0, sizeof(st));
    if (!(topic = need(x, "topic", &rc)))
        return rc;
    if ((rc = get_route(x, topic, &rt)))
        return rc;
    for (size_t i = 0; i < rt->nbrokers; i++) {
        const char *m = adm_broker_master(&rt->brokers[i]);
        if (!m || (cluster && strcmp(cluster, rt->brokers[i].cluster) != 0))
            continue;
        asked++;
        if ((rc = adm_topic_stats(x->adm, m, topic, &st)) != 0) {
            broker_fail(x, rc);
            failed++;
        }
    }
    adm_route_free(rt);
    if (!asked) {
        adm_queue_stats_free(&st);
        return fail(x,
                    "no master broker%s%s%s serves topic '%s'; 'sprocket topicRoute -t %s' "
                    "shows where it is",
                    cluster ? " of cluster '" : "", cluster ? cluster : "", cluster ? "'" : "",
                    topic, topic);
    }
    adm_queue_stats_sort(&st);
    cJSON_AddStringToObject(x->out, "topic", topic);
    arr = cJSON_AddArrayToObject(x->out, "queues");
    for (size_t i = 0; i < st.n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "brokerName", st.v[i].broker);
        cJSON_AddNumberToObject(o, "queueId", st.v[i].qid);
        cJSON_AddNumberToObject(o, "minOffset", (double)st.v[i].min_off);
        cJSON_AddNumberToObject(o, "maxOffset", (double)st.v[i].max_off);
        cJSON_AddNumberToObject(o, "lastUpdateTimestamp", (double)st.v[i].last_ts);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(x->out, "topicPutTps", st.tps);
    if (!x->json) {
        static const char *const hdr[] = {"#Broker Name", "#QID", "#Min Offset", "#Max Offset",
                                          "#Last Updated"};
        struct table *t = table_new(hdr, 5);
        char tb[40];
        for (size_t i = 0; t && i < st.n; i++) {
            table_cell(t, "%s", st.v[i].broker);
            table_cell(t, "%d", (int)st.v[i].qid);
            table_cell(t, "%lld", (long long)st.v[i].min_off);
            table_cell(t, "%lld", (long long)st.v[i].max_off);
            table_cell(t, "%s", fmt_time(st.v[i].last_ts, tb, sizeof(tb), 1));
        }
        if (t)
            table_print(t, stdout);
        table_free(t);
        printf("\nTopic Put TPS: %.1f\n", st.tps);
    }
    adm_queue_stats_free(&st);
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* clusterList ----------------------------------------------------------------------------- */

static const struct optdef cluster_list_opts[] = {
    {'m', "moreStats", NULL, "message counts of yesterday and today instead of load"},
    {'i', "interval", "SECONDS", "print again every SECONDS seconds, until interrupted"},
    {'c', "clusterName", "CLUSTER", "only this cluster"},
    {0, NULL, NULL, NULL},
};

static int64_t
kv_i64(const struct adm_kvs *kv, const char *k)
{
    const char *v = adm_kvs_get(kv, k);

    return v ? strtoll(v, NULL, 10) : 0;
}

static int
cluster_list_once(struct ctx *x, const char *only, int more)
{
    static const char *const base_hdr[] = {
        "#Cluster Name", "#Broker Name",     "#BID",        "#Addr", "#Version", "#InTPS(LOAD)",
        "#OutTPS(LOAD)", "#Timer(Progress)", "#PCWait(ms)", "#Hour", "#SPACE",   "#ACTIVATED"};
    static const char *const more_hdr[] = {"#Cluster Name", "#Broker Name",  "#InTotalYest",
                                           "#OutTotalYest", "#InTotalToday", "#OutTotalToday"};
    struct adm_cluster *ci;
    struct table *t;
    int failed = 0, rc = adm_cluster_info(x->adm, &ci);
    cJSON *arr;

    if (rc)
        return ns_fail(x, rc);
    if (only && !adm_cluster_has(ci, only)) {
        adm_cluster_free(ci);
        return fail(x,
                    "cluster '%s' is not known to the name server (%s); run 'sprocket "
                    "clusterList' without -c to see them all",
                    only, x->namesrv);
    }
    t = more ? table_new(more_hdr, 6) : table_new(base_hdr, 12);
    if (t && more)
        for (size_t c = 2; c < 6; c++)
            table_align_right(t, c);
    arr = cJSON_AddArrayToObject(x->out, "brokers");
    for (size_t i = 0; i < ci->nbrokers; i++) {
        const struct adm_broker *b = &ci->brokers[i];
        if (only && strcmp(only, b->cluster) != 0)
            continue;
        for (size_t k = 0; k < b->naddrs; k++) {
            struct adm_kvs kv = {NULL, 0};
            cJSON *o = cJSON_CreateObject();
            int r = adm_broker_runtime(x->adm, b->addrs[k].addr, &kv);
            double in = 0, out = 0, hour = 0, space = 0;
            const char *v;
            int64_t earliest;

            if (r) {
                broker_fail(x, r);
                failed++;
            }
            if ((v = adm_kvs_get(&kv, "putTps")))
                in = strtod(v, NULL);
            if ((v = adm_kvs_get(&kv, "getTransferredTps")))
                out = strtod(v, NULL);
            earliest = kv_i64(&kv, "earliestMessageTimeStamp");
            if (earliest > 0)
                hour = (double)(spk_wall_ms() - earliest) / 3600000.0;
            if ((v = adm_kvs_get(&kv, "commitLogDiskRatio")))
                space = strtod(v, NULL);
            cJSON_AddStringToObject(o, "cluster", b->cluster);
            cJSON_AddStringToObject(o, "brokerName", b->name);
            cJSON_AddNumberToObject(o, "brokerId", (double)b->addrs[k].id);
            cJSON_AddStringToObject(o, "addr", b->addrs[k].addr);
            cJSON_AddBoolToObject(o, "ok", r == 0);
            if (r)
                cJSON_AddStringToObject(o, "error", adm_error(x->adm));
            if (more) {
                int64_t py = kv_i64(&kv, "msgPutTotalYesterdayMorning"),
                        pm = kv_i64(&kv, "msgPutTotalTodayMorning"),
                        pn = kv_i64(&kv, "msgPutTotalTodayNow"),
                        gy = kv_i64(&kv, "msgGetTotalYesterdayMorning"),
                        gm = kv_i64(&kv, "msgGetTotalTodayMorning"),
                        gn = kv_i64(&kv, "msgGetTotalTodayNow");
                cJSON_AddNumberToObject(o, "inTotalYest", (double)(pm - py));
                cJSON_AddNumberToObject(o, "outTotalYest", (double)(gm - gy));
                cJSON_AddNumberToObject(o, "inTotalToday", (double)(pn - pm));
                cJSON_AddNumberToObject(o, "outTotalToday", (double)(gn - gm));
                table_cell(t, "%s", b->cluster);
                table_cell(t, "%s", b->name);
                table_cell(t, "%lld", (long long)(pm - py));
                table_cell(t, "%lld", (long long)(gm - gy));
                table_cell(t, "%lld", (long long)(pn - pm));
                table_cell(t, "%lld", (long long)(gn - gm));
            } else {
                const char *ver = adm_kvs_get(&kv, "brokerVersionDesc");
                const char *active = adm_kvs_get(&kv, "brokerActive");
                const char *ackq = adm_kvs_get(&kv, "ackThreadPoolQueueSize");
                const char *ackw = adm_kvs_get(&kv, "ackThreadPoolQueueHeadWaitTimeMills");
                const char *pcw = adm_kvs_get(&kv, "pageCacheLockTimeMills");
                cJSON_AddStringToObject(o, "version", ver ? ver : "");
                cJSON_AddNumberToObject(o, "inTps", in);
                cJSON_AddNumberToObject(o, "outTps", out);
                cJSON_AddNumberToObject(o, "pageCacheLockTimeMills",
                                        (double)kv_i64(&kv, "pageCacheLockTimeMills"));
                cJSON_AddNumberToObject(o, "hour", hour);
                cJSON_AddNumberToObject(o, "space", space);
                cJSON_AddBoolToObject(o, "activated", active && strcmp(active, "true") == 0);
                table_cell(t, "%s", b->cluster);
                table_cell(t, "%s", b->name);
                table_cell(t, "%lld", (long long)b->addrs[k].id);
                table_cell(t, "%s", b->addrs[k].addr);
                table_cell(t, "%s", ver ? ver : "");
                table_cell(t, "%.2f(%lld,%lldms)", in,
                           (long long)kv_i64(&kv, "sendThreadPoolQueueSize"),
                           (long long)kv_i64(&kv, "sendThreadPoolQueueHeadWaitTimeMills"));
                table_cell(t, "%.2f(%lld,%lldms|%s,%sms)", out,
                           (long long)kv_i64(&kv, "pullThreadPoolQueueSize"),
                           (long long)kv_i64(&kv, "pullThreadPoolQueueHeadWaitTimeMills"),
                           ackq ? ackq : "N", ackw ? ackw : "N");
                table_cell(t, "%lld-%lld(%.1fw, %.1f, %.1f)",
                           (long long)kv_i64(&kv, "timerReadBehind"),
                           (long long)kv_i64(&kv, "timerOffsetBehind"),
                           (double)kv_i64(&kv, "timerCongestNum") / 10000.0,
                           adm_kvs_get(&kv, "timerEnqueueTps")
                               ? strtod(adm_kvs_get(&kv, "timerEnqueueTps"), NULL)
                               : 0.0,
                           adm_kvs_get(&kv, "timerDequeueTps")
                               ? strtod(adm_kvs_get(&kv, "timerDequeueTps"), NULL)
                               : 0.0);
                table_cell(t, "%s", pcw ? pcw : "");
                table_cell(t, "%.2f", hour);
                table_cell(t, "%.4f", space);
                table_cell(t, "%s", tf(active && strcmp(active, "true") == 0));
            }
            cJSON_AddItemToArray(arr, o);
            adm_kvs_free(&kv);
        }
    }
    if (x->json)
        emit_json(x);
    else if (t)
        table_print(t, stdout);
    fflush(stdout);
    table_free(t);
    adm_cluster_free(ci);
    return failed ? TOOL_EXIT_FAIL : 0;
}

static int
run_cluster_list(struct ctx *x)
{
    int64_t every;
    int rc = opt_i64(x, "interval", 1, 86400, 0, &every);

    if (rc)
        return rc;
    for (;;) {
        rc = cluster_list_once(x, opt(x, "clusterName"), opt(x, "moreStats") != NULL);
        if (!every)
            break;
        sleep((unsigned)every);
        cJSON_Delete(x->out);
        x->out = cJSON_CreateObject();
        if (!x->json)
            printf("\n");
    }
    /* printed already (also the JSON: one document per round) */
    cJSON_Delete(x->out);
    x->out = NULL;
    return rc;
}

/* brokerStatus / getBrokerConfig / updateBrokerConfig ------------------------------------- */

static const struct optdef broker_status_opts[] = {
    {'b', "brokerAddr", "ADDR", "this broker (ip:port)"},
    {'c', "clusterName", "CLUSTER", "every broker (masters and slaves) of this cluster"},
    {0, NULL, NULL, NULL},
};

/* The brokers named by -b or -c (one of them required). */
static int
broker_targets(struct ctx *x, int slaves, struct adm_cluster **ci, struct target **tg, size_t *n)
{
    const char *b, *c = opt(x, "clusterName");
    int rc = opt_addr(x, "brokerAddr", &b);

    *ci = NULL;
    if (rc)
        return rc;
    if (!b == !c)
        return usage_err(x, b ? "give -b or -c, not both"
                              : "give the broker with -b ADDR or the cluster with -c CLUSTER");
    if (c)
        return cluster_targets(x, c, slaves, ci, tg, n);
    *tg = calloc(1, sizeof(**tg));
    if (!*tg)
        return fail(x, "out of memory");
    (*tg)->addr = b;
    *n = 1;
    return 0;
}

static int
run_broker_status(struct ctx *x)
{
    struct adm_cluster *ci;
    struct target *tg;
    size_t n;
    int rc = broker_targets(x, 1, &ci, &tg, &n), failed = 0;
    cJSON *arr;

    if (rc)
        return rc;
    arr = cJSON_AddArrayToObject(x->out, "brokers");
    for (size_t i = 0; i < n; i++) {
        struct adm_kvs kv = {NULL, 0};
        cJSON *o = cJSON_CreateObject(), *tab;
        int r = adm_broker_runtime(x->adm, tg[i].addr, &kv);
        size_t w = 32;

        cJSON_AddStringToObject(o, "addr", tg[i].addr);
        cJSON_AddBoolToObject(o, "ok", r == 0);
        cJSON_AddItemToArray(arr, o);
        if (r) {
            cJSON_AddStringToObject(o, "error", adm_error(x->adm));
            broker_fail(x, r);
            failed++;
            continue;
        }
        tab = cJSON_AddObjectToObject(o, "table");
        for (size_t k = 0; k < kv.n; k++) {
            cJSON_AddStringToObject(tab, kv.v[k].key, kv.v[k].val);
            if (strlen(kv.v[k].key) > w)
                w = strlen(kv.v[k].key);
        }
        for (size_t k = 0; !x->json && k < kv.n; k++) {
            if (ci)
                printf("%-24s %-*s: %s\n", tg[i].addr, (int)w, kv.v[k].key, kv.v[k].val);
            else
                printf("%-*s: %s\n", (int)w, kv.v[k].key, kv.v[k].val);
        }
        adm_kvs_free(&kv);
    }
    free(tg);
    adm_cluster_free(ci);
    return failed ? TOOL_EXIT_FAIL : 0;
}

static const struct optdef get_broker_config_opts[] = {
    {'b', "brokerAddr", "ADDR", "this broker (ip:port)"},
    {'c', "clusterName", "CLUSTER", "every broker of this cluster, masters first"},
    {0, NULL, NULL, NULL},
};

static int
run_get_broker_config(struct ctx *x)
{
    struct adm_cluster *ci;
    struct target *tg;
    size_t n;
    int rc = broker_targets(x, 1, &ci, &tg, &n), failed = 0;
    cJSON *arr;

    if (rc)
        return rc;
    arr = cJSON_AddArrayToObject(x->out, "brokers");
    for (size_t i = 0; i < n; i++) {
        struct adm_kvs kv = {NULL, 0};
        cJSON *o = cJSON_CreateObject(), *conf;
        int r;

        if (!x->json) {
            if (!ci)
                printf("============%s============\n", tg[i].addr);
            else if (tg[i].id == 0)
                printf("============Master: %s============\n", tg[i].addr);
            else
                printf("============My Master: %s=====Slave: %s============\n",
                       tg[i].master ? tg[i].master : "", tg[i].addr);
        }
        r = adm_broker_config(x->adm, tg[i].addr, &kv);
        cJSON_AddStringToObject(o, "addr", tg[i].addr);
        if (ci) {
            cJSON_AddStringToObject(o, "brokerName", tg[i].broker);
            cJSON_AddNumberToObject(o, "brokerId", (double)tg[i].id);
        }
        cJSON_AddBoolToObject(o, "ok", r == 0);
        cJSON_AddItemToArray(arr, o);
        if (r) {
            cJSON_AddStringToObject(o, "error", adm_error(x->adm));
            broker_fail(x, r);
            failed++;
            continue;
        }
        conf = cJSON_AddObjectToObject(o, "config");
        for (size_t k = 0; k < kv.n; k++) {
            cJSON_AddStringToObject(conf, kv.v[k].key, kv.v[k].val);
            if (!x->json)
                printf("%-50s=  %s\n", kv.v[k].key, kv.v[k].val);
        }
        if (!x->json)
            printf("\n");
        adm_kvs_free(&kv);
    }
    free(tg);
    adm_cluster_free(ci);
    return failed ? TOOL_EXIT_FAIL : 0;
}

static const struct optdef update_broker_config_opts[] = {
    {'b', "brokerAddr", "ADDR", "this broker (ip:port)"},
    {'c', "clusterName", "CLUSTER", "every master of this cluster"},
    {'a', "updateAllBroker", "BOOL", "with -c: slaves too, true or false (default false)"},
    {'k', "key", "KEY", "the setting, e.g. brokerPermission (required)"},
    {'v', "value", "VALUE", "its new value (required)"},
    {0, NULL, NULL, NULL},
};

static int
run_update_broker_config(struct ctx *x)
{
    struct adm_cluster *ci;
    struct target *tg;
    const char *key, *val;
    size_t n;
    int all, rc = 0, failed = 0;
    cJSON *res;

    if (!(key = need(x, "key", &rc)) || !(val = opt(x, "value")))
        return rc ? rc : usage_err(x, "give -v VALUE (--value)");
    if (strpbrk(key, "=\n\r ") || strpbrk(val, "\n\r"))
        return usage_err(x, "the key may not hold '=', spaces or line breaks, the value no line "
                            "breaks");
    if ((rc = opt_bool(x, "updateAllBroker", 0, &all)) ||
        (rc = broker_targets(x, all, &ci, &tg, &n)))
        return rc;
    cJSON_AddStringToObject(x->out, "key", key);
    cJSON_AddStringToObject(x->out, "value", val);
    res = cJSON_AddArrayToObject(x->out, "results");
    for (size_t i = 0; i < n; i++) {
        int r = adm_update_broker_config(x->adm, tg[i].addr, key, val);
        note_result(x, res, tg[i].addr, r);
        if (r)
            failed++;
        else if (!x->json)
            printf("update broker config success, %s\n", tg[i].addr);
    }
    free(tg);
    adm_cluster_free(ci);
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* updateSubGroup -------------------------------------------------------------------------- */

static const struct optdef update_sub_group_opts[] = {
    {'g', "groupName", "GROUP", "the consumer group (required)"},
    {'b', "brokerAddr", "ADDR", "on this broker (ip:port)"},
    {'c', "clusterName", "CLUSTER", "on every master of this cluster"},
    {'s', "consumeEnable", "BOOL", "the group may consume (default true)"},
    {'m', "consumeFromMinEnable", "BOOL", "start from the minimum offset (default false)"},
    {'d', "consumeBroadcastEnable", "BOOL", "broadcast consumption allowed (default false)"},
    {'o', "consumeMessageOrderly", "BOOL", "orderly consumption (default false)"},
    {'q', "retryQueueNums", "N", "queues of %RETRY%<group>, 0..65535 (default 1)"},
    {'r', "retryMaxTimes", "N",
     "redeliveries before the dead-letter queue, -1..2147483647 "
     "(default 16)"},
    {'i', "brokerId", "ID", "consume from this broker id, 0..1024 (default 0)"},
    {'w', "whichBrokerWhenConsumeSlowly", "ID", "broker id for slow consumers (default 1)"},
    {'a', "notifyConsumerIdsChanged", "BOOL",
     "tell consumers when members change (default "
     "true)"},
    {0, NULL, NULL, NULL},
};

static int
run_update_sub_group(struct ctx *x)
{
    struct adm_group_conf g;
    struct adm_cluster *ci = NULL;
    struct target *tg = NULL;
    const char *name, *b, *c = opt(x, "clusterName");
    size_t n = 0;
    int rc = 0, failed = 0;
    cJSON *conf, *res;

    if (!(name = need(x, "groupName", &rc)))
        return rc;
    adm_group_conf_defaults(&g, name);
    if ((rc = check_name(x, "group", name, 255)) || (rc = opt_addr(x, "brokerAddr", &b)) ||
        (rc = opt_bool(x, "consumeEnable", 1, &g.consume_enable)) ||
        (rc = opt_bool(x, "consumeFromMinEnable", 0, &g.consume_from_min)) ||
        (rc = opt_bool(x, "consumeBroadcastEnable", 0, &g.consume_broadcast)) ||
        (rc = opt_bool(x, "consumeMessageOrderly", 0, &g.consume_orderly)) ||
        (rc = opt_i32(x, "retryQueueNums", 0, 65535, 1, &g.retry_queues)) ||
        (rc = opt_i32(x, "retryMaxTimes", -1, INT32_MAX, 16, &g.retry_max)) ||
        (rc = opt_i64(x, "brokerId", 0, 1024, 0, &g.broker_id)) ||
        (rc = opt_i64(x, "whichBrokerWhenConsumeSlowly", 0, 1024, 1, &g.which_broker_slowly)) ||
        (rc = opt_bool(x, "notifyConsumerIdsChanged", 1, &g.notify_ids_changed)))
        return rc;
    if (!b == !c)
        return usage_err(x, b ? "give -b or -c, not both"
                              : "give the broker with -b ADDR or the cluster with -c CLUSTER");
    if (c && (rc = cluster_targets(x, c, 0, &ci, &tg, &n)))
        return rc;
    conf = cJSON_AddObjectToObject(x->out, "groupConfig");
    cJSON_AddStringToObject(conf, "groupName", g.name);
    cJSON_AddBoolToObject(conf, "consumeEnable", g.consume_enable);
    cJSON_AddBoolToObject(conf, "consumeFromMinEnable", g.consume_from_min);
    cJSON_AddBoolToObject(conf, "consumeBroadcastEnable", g.consume_broadcast);
    cJSON_AddBoolToObject(conf, "consumeMessageOrderly", g.consume_orderly);
    cJSON_AddNumberToObject(conf, "retryQueueNums", g.retry_queues);
    cJSON_AddNumberToObject(conf, "retryMaxTimes", g.retry_max);
    cJSON_AddNumberToObject(conf, "brokerId", (double)g.broker_id);
    cJSON_AddNumberToObject(conf, "whichBrokerWhenConsumeSlowly", (double)g.which_broker_slowly);
    cJSON_AddBoolToObject(conf, "notifyConsumerIdsChangedEnable", g.notify_ids_changed);
    res = cJSON_AddArrayToObject(x->out, "results");
    for (size_t i = 0; i < (b ? 1 : n); i++) {
        const char *addr = b ? b : tg[i].addr;
        int r = adm_update_group(x->adm, addr, &g);
        note_result(x, res, addr, r);
        if (r)
            failed++;
        else if (!x->json)
            printf("create subscription group to %s success.\n", addr);
    }
    if (!x->json && failed < (int)(b ? 1 : n))
        printf("SubscriptionGroupConfig{groupName=%s, consumeEnable=%s, consumeFromMinEnable=%s, "
               "consumeBroadcastEnable=%s, consumeMessageOrderly=%s, retryQueueNums=%d, "
               "retryMaxTimes=%d, brokerId=%lld, whichBrokerWhenConsumeSlowly=%lld, "
               "notifyConsumerIdsChangedEnable=%s}\n",
               g.name, tf(g.consume_enable), tf(g.consume_from_min), tf(g.consume_broadcast),
               tf(g.consume_orderly), (int)g.retry_queues, (int)g.retry_max, (long long)g.broker_id,
               (long long)g.which_broker_slowly, tf(g.notify_ids_changed));
    free(tg);
    adm_cluster_free(ci);
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* consumerProgress / consumerConnection / producerConnection ------------------------------ */

/* The route of a consumer group: its %RETRY% topic (else <topic>, when given). */
static int
group_route(struct ctx *x, const char *group, const char *topic, struct adm_route **rt)
{
    char retry[300];
    int rc;

    snprintf(retry, sizeof(retry), "%%RETRY%%%s", group);
    rc = adm_route(x->adm, retry, rt);
    if (rc == SPK_ENOROUTE && topic)
        rc = adm_route(x->adm, topic, rt);
    if (rc == SPK_ENOROUTE)
        return fail(x,
                    "consumer group '%s' is not known to the name server: there is no route "
                    "for %s (it appears once a consumer of the group has connected); "
                    "'sprocket consumerProgress' lists the groups",
                    group, retry);
    if (rc)
        return ns_fail(x, rc);
    return 0;
}

/* Consumer connections of <group> over the brokers of <rt>; 0 when at least one is online. */
static int
collect_consumers(struct ctx *x, const struct adm_route *rt, const char *group,
                  struct adm_conns *cc, int quiet)
{
    int hard = 0;

    for (size_t i = 0; i < rt->nbrokers; i++) {
        const char *m = adm_broker_master(&rt->brokers[i]);
        int r;
        if (!m)
            continue;
        r = adm_consumer_conns(x->adm, m, group, cc);
        if (r && !(r == SPK_EBROKER && adm_error_code(x->adm) == ADM_RS_CONSUMER_NOT_ONLINE)) {
            if (!quiet)
                broker_fail(x, r);
            hard++;
        }
    }
    return hard;
}

static const struct optdef consumer_progress_opts[] = {
    {'g', "groupName", "GROUP", "the consumer group (default: a summary of every group)"},
    {'t', "topicName", "TOPIC", "with -g: only this topic"},
    {0, NULL, NULL, NULL},
};

static int
progress_all(struct ctx *x)
{
    static const char *const hdr[] = {"#Group", "#Count", "#Version",   "#Type",
                                      "#Model", "#TPS",   "#Diff Total"};
    struct adm_strv topics = {NULL, 0};
    struct table *t = table_new(hdr, 7);
    int rc = adm_topic_list(x->adm, &topics);
    cJSON *arr;

    if (rc) {
        table_free(t);
        return ns_fail(x, rc);
    }
    arr = cJSON_AddArrayToObject(x->out, "groups");
    for (size_t i = 0; i < topics.n; i++) {
        const char *group = topics.v[i] + 7;
        struct adm_queue_stats st;
        struct adm_conns cc;
        struct adm_route *rt;
        int64_t diff = 0;
        int32_t minver = INT32_MAX;
        char vb[40];
        cJSON *o;

        if (strncmp(topics.v[i], "%RETRY%", 7) != 0)
            continue;
        if (adm_route(x->adm, topics.v[i], &rt) != 0)
            continue;
        memset(&st, 0, sizeof(st));
        memset(&cc, 0, sizeof(cc));
        for (size_t k = 0; k < rt->nbrokers; k++) {
            const char *m = adm_broker_master(&rt->brokers[k]);
            if (m)
                adm_consume_stats(x->adm, m, group, NULL, &st);
        }
        collect_consumers(x, rt, group, &cc, 1);
        for (size_t k = 0; k < st.n; k++)
            diff += st.v[k].broker_off - st.v[k].consumer_off;
        for (size_t k = 0; k < cc.n; k++)
            if (cc.v[k].version < minver)
                minver = cc.v[k].version;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "group", group);
        cJSON_AddNumberToObject(o, "count", (double)cc.n);
        cJSON_AddStringToObject(o, "version",
                                cc.n ? version_desc(minver, vb, sizeof(vb)) : "OFFLINE");
        cJSON_AddStringToObject(o, "consumeType", cc.consume_type ? cc.consume_type : "");
        cJSON_AddStringToObject(o, "messageModel", cc.message_model ? cc.message_model : "");
        cJSON_AddNumberToObject(o, "consumeTps", (int)st.tps);
        cJSON_AddNumberToObject(o, "diffTotal", (double)diff);
        cJSON_AddItemToArray(arr, o);
        table_cell(t, "%s", group);
        table_cell(t, "%zu", cc.n);
        table_cell(t, "%s", cc.n ? version_desc(minver, vb, sizeof(vb)) : "OFFLINE");
        table_cell(t, "%s",
                   !cc.n                                                                 ? ""
                   : cc.consume_type && strcmp(cc.consume_type, "CONSUME_ACTIVELY") == 0 ? "PULL"
                                                                                         : "PUSH");
        table_cell(t, "%s", cc.n && cc.message_model ? cc.message_model : "");
        table_cell(t, "%d", (int)st.tps);
        table_cell(t, "%lld", (long long)diff);
        adm_queue_stats_free(&st);
        adm_conns_free(&cc);
        adm_route_free(rt);
    }
    if (!x->json && t)
        table_print(t, stdout);
    table_free(t);
    adm_strv_free(&topics);
    return 0;
}

static int
run_consumer_progress(struct ctx *x)
{
    static const char *const hdr[] = {"#Topic",         "#Broker Name",     "#QID",
                                      "#Broker Offset", "#Consumer Offset", "#Diff",
                                      "#Inflight",      "#LastTime"};
    const char *group = opt(x, "groupName"), *topic = opt(x, "topicName");
    struct adm_queue_stats st;
    struct adm_route *rt;
    struct table *t;
    int64_t diff_total = 0, inflight_total = 0;
    int rc, failed = 0;
    cJSON *arr;

    if (topic && !group)
        return usage_err(x, "-t needs -g GROUP");
    if (!group)
        return progress_all(x);
    if ((rc = group_route(x, group, topic, &rt)))
        return rc;
    memset(&st, 0, sizeof(st));
    for (size_t i = 0; i < rt->nbrokers; i++) {
        const char *m = adm_broker_master(&rt->brokers[i]);
        if (m && (rc = adm_consume_stats(x->adm, m, group, topic, &st))) {
            broker_fail(x, rc);
            failed++;
        }
    }
    adm_route_free(rt);
    if (st.n == 0) {
        adm_queue_stats_free(&st);
        if (failed)
            return TOOL_EXIT_FAIL;
        return fail(x,
                    "consumer group '%s' has no consume progress%s%s: it has committed no "
                    "offset yet",
                    group, topic ? " for topic " : "", topic ? topic : "");
    }
    adm_queue_stats_sort(&st);
    t = table_new(hdr, 8);
    arr = cJSON_AddArrayToObject(x->out, "queues");
    for (size_t i = 0; i < st.n; i++) {
        const struct adm_queue_stat *q = &st.v[i];
        int64_t diff = q->broker_off - q->consumer_off, inflight = q->pull_off - q->consumer_off;
        char tb[40];
        cJSON *o = cJSON_CreateObject();

        diff_total += diff;
        inflight_total += inflight;
        cJSON_AddStringToObject(o, "topic", q->topic);
        cJSON_AddStringToObject(o, "brokerName", q->broker);
        cJSON_AddNumberToObject(o, "queueId", q->qid);
        cJSON_AddNumberToObject(o, "brokerOffset", (double)q->broker_off);
        cJSON_AddNumberToObject(o, "consumerOffset", (double)q->consumer_off);
        cJSON_AddNumberToObject(o, "diff", (double)diff);
        cJSON_AddNumberToObject(o, "inflight", (double)inflight);
        cJSON_AddNumberToObject(o, "lastTimestamp", (double)q->last_ts);
        cJSON_AddItemToArray(arr, o);
        table_cell(t, "%s", q->topic);
        table_cell(t, "%s", q->broker);
        table_cell(t, "%d", (int)q->qid);
        table_cell(t, "%lld", (long long)q->broker_off);
        table_cell(t, "%lld", (long long)q->consumer_off);
        table_cell(t, "%lld", (long long)diff);
        table_cell(t, "%lld", (long long)inflight);
        table_cell(t, "%s", q->last_ts ? fmt_time(q->last_ts, tb, sizeof(tb), 0) : "N/A");
    }
    cJSON_AddStringToObject(x->out, "group", group);
    cJSON_AddNumberToObject(x->out, "consumeTps", st.tps);
    cJSON_AddNumberToObject(x->out, "diffTotal", (double)diff_total);
    cJSON_AddNumberToObject(x->out, "inflightTotal", (double)inflight_total);
    if (!x->json) {
        if (t)
            table_print(t, stdout);
        printf("\nConsume TPS: %.2f\nConsume Diff Total: %lld\nConsume Inflight Total: %lld\n",
               st.tps, (long long)diff_total, (long long)inflight_total);
    }
    table_free(t);
    adm_queue_stats_free(&st);
    return failed ? TOOL_EXIT_FAIL : 0;
}

static const struct optdef consumer_connection_opts[] = {
    {'g', "consumerGroup", "GROUP", "the consumer group (required)"},
    {'b', "brokerAddr", "ADDR", "ask only this broker (default: every broker of the group)"},
    {0, NULL, NULL, NULL},
};

static int
run_consumer_connection(struct ctx *x)
{
    struct adm_conns cc;
    const char *group, *b;
    int rc = 0, hard = 0;
    cJSON *arr, *subs;

    if (!(group = need(x, "consumerGroup", &rc)) || (rc = opt_addr(x, "brokerAddr", &b)))
        return rc;
    memset(&cc, 0, sizeof(cc));
    if (b) {
        rc = adm_consumer_conns(x->adm, b, group, &cc);
        if (rc && !(rc == SPK_EBROKER && adm_error_code(x->adm) == ADM_RS_CONSUMER_NOT_ONLINE))
            return broker_fail(x, rc);
    } else {
        struct adm_route *rt;
        if ((rc = group_route(x, group, NULL, &rt)))
            return rc;
        hard = collect_consumers(x, rt, group, &cc, 0);
        adm_route_free(rt);
    }
    if (cc.n == 0) {
        adm_conns_free(&cc);
        if (hard)
            return TOOL_EXIT_FAIL;
        return fail(x,
                    "consumer group '%s' has no consumer online (CONSUMER_NOT_ONLINE); "
                    "'sprocket consumerProgress -g %s' shows its committed offsets",
                    group, group);
    }
    arr = cJSON_AddArrayToObject(x->out, "connections");
    for (size_t i = 0; i < cc.n; i++) {
        cJSON *o = cJSON_CreateObject();
        char vb[40];
        cJSON_AddStringToObject(o, "clientId", cc.v[i].client_id);
        cJSON_AddStringToObject(o, "clientAddr", cc.v[i].client_addr);
        cJSON_AddStringToObject(o, "language", cc.v[i].language);
        cJSON_AddNumberToObject(o, "version", cc.v[i].version);
        cJSON_AddStringToObject(o, "versionDesc", version_desc(cc.v[i].version, vb, sizeof(vb)));
        cJSON_AddItemToArray(arr, o);
    }
    subs = cJSON_AddObjectToObject(x->out, "subscriptions");
    for (size_t i = 0; i < cc.nsubs; i++)
        cJSON_AddStringToObject(subs, cc.subs[i].topic, cc.subs[i].expr);
    cJSON_AddStringToObject(x->out, "consumeType", cc.consume_type ? cc.consume_type : "");
    cJSON_AddStringToObject(x->out, "messageModel", cc.message_model ? cc.message_model : "");
    cJSON_AddStringToObject(x->out, "consumeFromWhere",
                            cc.consume_from_where ? cc.consume_from_where : "");
    if (!x->json) {
        static const char *const h1[] = {"#ClientId", "#ClientAddr", "#Language", "#Version"};
        static const char *const h2[] = {"#Topic", "#SubExpression"};
        struct table *t = table_new(h1, 4);
        char vb[40];
        for (size_t i = 0; t && i < cc.n; i++) {
            table_cell(t, "%s", cc.v[i].client_id);
            table_cell(t, "%s", cc.v[i].client_addr);
            table_cell(t, "%s", cc.v[i].language);
            table_cell(t, "%s", version_desc(cc.v[i].version, vb, sizeof(vb)));
        }
        if (t)
            table_print(t, stdout);
        table_free(t);
        printf("\nBelow is subscription:\n");
        t = table_new(h2, 2);
        for (size_t i = 0; t && i < cc.nsubs; i++) {
            table_cell(t, "%s", cc.subs[i].topic);
            table_cell(t, "%s", cc.subs[i].expr);
        }
        if (t)
            table_print(t, stdout);
        table_free(t);
        printf("\nConsumeType: %s\nMessageModel: %s\nConsumeFromWhere: %s\n",
               cc.consume_type ? cc.consume_type : "", cc.message_model ? cc.message_model : "",
               cc.consume_from_where ? cc.consume_from_where : "");
    }
    adm_conns_free(&cc);
    return hard ? TOOL_EXIT_FAIL : 0;
}

static const struct optdef producer_connection_opts[] = {
    {'g', "producerGroup", "GROUP", "the producer group (required)"},
    {'t', "topic", "TOPIC", "a topic the group sends to: its brokers are asked (required)"},
    {0, NULL, NULL, NULL},
};

static int
run_producer_connection(struct ctx *x)
{
    struct adm_route *rt;
    struct adm_conns pc;
    const char *group, *topic;
    int rc = 0, hard = 0;
    cJSON *arr;

    if (!(group = need(x, "producerGroup", &rc)) || !(topic = need(x, "topic", &rc)))
        return rc;
    if ((rc = get_route(x, topic, &rt)))
        return rc;
    memset(&pc, 0, sizeof(pc));
    for (size_t i = 0; i < rt->nbrokers; i++) {
        const char *m = adm_broker_master(&rt->brokers[i]);
        int r;
        if (!m)
            continue;
        r = adm_producer_conns(x->adm, m, group, &pc);
        /* A broker without the group answers SYSTEM_ERROR ("not exist"). */
        if (r && !(r == SPK_EBROKER && adm_error_code(x->adm) == ADM_RS_SYSTEM_ERROR)) {
            broker_fail(x, r);
            hard++;
        }
    }
    adm_route_free(rt);
    if (pc.n == 0) {
        adm_conns_free(&pc);
        if (hard)
            return TOOL_EXIT_FAIL;
        return fail(x,
                    "producer group '%s' has no producer connected to the brokers of topic "
                    "'%s' (producers appear while they run and send heartbeats)",
                    group, topic);
    }
    arr = cJSON_AddArrayToObject(x->out, "connections");
    {
        static const char *const hdr[] = {"#No", "#ClientId", "#ClientAddr", "#Language",
                                          "#Version"};
        struct table *t = table_new(hdr, 5);
        char vb[40];
        for (size_t i = 0; i < pc.n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "clientId", pc.v[i].client_id);
            cJSON_AddStringToObject(o, "clientAddr", pc.v[i].client_addr);
            cJSON_AddStringToObject(o, "language", pc.v[i].language);
            cJSON_AddNumberToObject(o, "version", pc.v[i].version);
            cJSON_AddStringToObject(o, "versionDesc",
                                    version_desc(pc.v[i].version, vb, sizeof(vb)));
            cJSON_AddItemToArray(arr, o);
            table_cell(t, "%04zu", i + 1);
            table_cell(t, "%s", pc.v[i].client_id);
            table_cell(t, "%s", pc.v[i].client_addr);
            table_cell(t, "%s", pc.v[i].language);
            table_cell(t, "%s", version_desc(pc.v[i].version, vb, sizeof(vb)));
        }
        if (!x->json && t)
            table_print(t, stdout);
        table_free(t);
    }
    adm_conns_free(&pc);
    return hard ? TOOL_EXIT_FAIL : 0;
}

/* queryMsgById / queryMsgByKey / queryMsgByOffset ----------------------------------------- */

static void
print_msgs_detail(struct ctx *x, const struct adm_msgs *ms, cJSON *arr, const char *broker)
{
    for (size_t i = 0; i < ms->n; i++) {
        cJSON_AddItemToArray(arr, msg_json(&ms->v[i], broker));
        if (!x->json) {
            if (i > 0)
                printf("\n");
            print_msg_detail(&ms->v[i]);
        }
    }
}

static const struct optdef query_by_id_opts[] = {
    {'i', "msgId", "ID[,ID...]",
     "offset message ids, or message ids (UNIQ_KEY) with -t "
     "(required)"},
    {'t', "topic", "TOPIC", "the topic: needed to look a UNIQ_KEY message id up"},
    {0, NULL, NULL, NULL},
};

/* Looks one id up; appends what it finds. Returns 0, 1 (not found: message printed) or an exit
 * code. */
static int
query_one_id(struct ctx *x, const char *id, const char *topic, struct adm_msgs *out)
{
    char addr[80], why[600] = "";
    int64_t off;
    int rc;

    if (adm_offset_id_decode(id, addr, sizeof(addr), &off) == 0) {
        rc = adm_view_message(x->adm, addr, off, out);
        if (rc == 0)
            return 0;
        snprintf(why, sizeof(why), "as an offset id: %s", adm_error(x->adm));
    } else {
        snprintf(why, sizeof(why), "it is not an offset id (store address + CommitLog offset)");
    }
    if (topic) {
        struct adm_route *rt;
        int found = 0, r;
        if ((r = get_route(x, topic, &rt)))
            return r;
        for (size_t i = 0; i < rt->nbrokers; i++) {
            const char *m = adm_broker_master(&rt->brokers[i]);
            size_t before = out->n;
            if (!m)
                continue;
            r = adm_query_message(x->adm, m, topic, id, 1, 32, 0, INT64_MAX, out);
            if (r && r != SPK_ENOTFOUND)
                broker_fail(x, r);
            found += out->n > before;
        }
        adm_route_free(rt);
        if (found)
            return 0;
        fail(x,
             "message '%s' not found: %s; and no broker of topic '%s' has a message with "
             "that id (UNIQ_KEY)",
             id, why, topic);
        return 1;
    }
    fail(x,
         "message '%s' not found: %s; if it is a message id (UNIQ_KEY), give its topic with "
         "-t TOPIC",
         id, why);
    return 1;
}

static int
run_query_by_id(struct ctx *x)
{
    const char *ids, *topic = opt(x, "topic");
    char *copy, *save = NULL, *id;
    int rc = 0, missing = 0, printed = 0;
    cJSON *arr;

    if (!(ids = need(x, "msgId", &rc)))
        return rc;
    if (topic && (rc = check_topic(x, topic)))
        return rc;
    if (!(copy = strdup(ids)))
        return fail(x, "out of memory");
    arr = cJSON_AddArrayToObject(x->out, "messages");
    for (id = strtok_r(copy, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
        struct adm_msgs ms = {NULL, 0};
        while (*id == ' ')
            id++;
        id[strcspn(id, " ")] = '\0';
        if (!*id)
            continue;
        rc = query_one_id(x, id, topic, &ms);
        if (rc == 1)
            missing++;
        else if (rc) {
            adm_msgs_free(&ms);
            free(copy);
            return rc;
        }
        if (!x->json && printed && ms.n)
            printf("\n");
        printed += (int)ms.n;
        print_msgs_detail(x, &ms, arr, NULL);
        adm_msgs_free(&ms);
    }
    free(copy);
    return missing ? TOOL_EXIT_FAIL : 0;
}

static const struct optdef query_by_key_opts[] = {
    {'t', "topic", "TOPIC", "the topic (required)"},
    {'k', "msgKey", "KEY", "a message key, one of the message's KEYS (required)"},
    {'b', "beginTimestamp", "MS", "stored at or after this time, ms since 1970 (default 0)"},
    {'e', "endTimestamp", "MS", "stored at or before this time (default: no limit)"},
    {'m', "maxNum", "N", "at most N messages per broker, 1..64 (default 64)"},
    {0, NULL, NULL, NULL},
};

static int
run_query_by_key(struct ctx *x)
{
    static const char *const hdr[] = {"#Message ID", "#QID", "#Offset"};
    struct adm_msgs all = {NULL, 0};
    struct adm_route *rt;
    const char *topic, *key;
    int64_t begin, end;
    int32_t maxn;
    int rc = 0, failed = 0;
    cJSON *arr;

    if (!(topic = need(x, "topic", &rc)) || !(key = need(x, "msgKey", &rc)))
        return rc;
    if ((rc = check_topic(x, topic)) ||
        (rc = opt_i64(x, "beginTimestamp", 0, INT64_MAX, 0, &begin)) ||
        (rc = opt_i64(x, "endTimestamp", 0, INT64_MAX, INT64_MAX, &end)) ||
        (rc = opt_i32(x, "maxNum", 1, 64, 64, &maxn)))
        return rc;
    if (begin > end)
        return usage_err(x, "-b %lld is after -e %lld", (long long)begin, (long long)end);
    if ((rc = get_route(x, topic, &rt)))
        return rc;
    arr = cJSON_AddArrayToObject(x->out, "messages");
    for (size_t i = 0; i < rt->nbrokers; i++) {
        const char *m = adm_broker_master(&rt->brokers[i]);
        size_t before = all.n;
        if (!m)
            continue;
        rc = adm_query_message(x->adm, m, topic, key, 0, maxn, begin, end, &all);
        if (rc && rc != SPK_ENOTFOUND) {
            broker_fail(x, rc);
            failed++;
        }
        for (size_t k = before; k < all.n; k++)
            cJSON_AddItemToArray(arr, msg_json(&all.v[k], rt->brokers[i].name));
    }
    adm_route_free(rt);
    if (all.n == 0) {
        adm_msgs_free(&all);
        if (failed)
            return TOOL_EXIT_FAIL;
        return fail(x,
                    "no message of topic '%s' has the key '%s'%s (keys are the message's "
                    "KEYS, as indexed when it was stored)",
                    topic, key, begin || end != INT64_MAX ? " in that time range" : "");
    }
    if (!x->json) {
        struct table *t = table_new(hdr, 3);
        for (size_t i = 0; t && i < all.n; i++) {
            table_cell(t, "%s", adm_msg_id(&all.v[i]));
            table_cell(t, "%d", (int)all.v[i].queue_id);
            table_cell(t, "%lld", (long long)all.v[i].queue_off);
        }
        if (t) {
            table_align_right(t, 1);
            table_align_right(t, 2);
            table_print(t, stdout);
        }
        table_free(t);
    }
    adm_msgs_free(&all);
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* The master address of broker <name> in the route of <topic>; exit code on failure. */
static int
broker_of_topic(struct ctx *x, const char *topic, const char *name, struct adm_route **rt,
                const char **addr, const struct adm_queue_data **qd)
{
    int rc = get_route(x, topic, rt);

    if (rc)
        return rc;
    for (size_t i = 0; i < (*rt)->nbrokers; i++) {
        if (strcmp((*rt)->brokers[i].name, name) != 0)
            continue;
        *addr = adm_broker_master(&(*rt)->brokers[i]);
        *qd = adm_route_queues(*rt, name);
        if (*addr && *qd)
            return 0;
        break;
    }
    adm_route_free(*rt);
    *rt = NULL;
    return fail(x,
                "broker '%s' has no master serving topic '%s'; 'sprocket topicRoute -t %s' "
                "lists its brokers",
                name, topic, topic);
}

static const struct optdef query_by_offset_opts[] = {
    {'t', "topic", "TOPIC", "the topic (required)"},
    {'b', "brokerName", "NAME", "the broker group holding the queue (required)"},
    {'i', "queueId", "QID", "the queue (required)"},
    {'o', "offset", "OFFSET", "the queue offset (required)"},
    {0, NULL, NULL, NULL},
};

static int
run_query_by_offset(struct ctx *x)
{
    const struct adm_queue_data *qd = NULL;
    struct adm_route *rt;
    struct adm_pull p;
    const char *topic, *bname, *addr = NULL;
    int32_t qid;
    int64_t off;
    int rc = 0;

    if (!(topic = need(x, "topic", &rc)) || !(bname = need(x, "brokerName", &rc)) ||
        !need(x, "queueId", &rc) || !need(x, "offset", &rc))
        return rc;
    if ((rc = check_topic(x, topic)) || (rc = opt_i32(x, "queueId", 0, 65535, 0, &qid)) ||
        (rc = opt_i64(x, "offset", 0, INT64_MAX, 0, &off)))
        return rc;
    if ((rc = broker_of_topic(x, topic, bname, &rt, &addr, &qd)))
        return rc;
    if (qid >= (qd->read > qd->write ? qd->read : qd->write)) {
        rc = fail(x, "queue %d does not exist: topic '%s' has %d queues on broker '%s'", (int)qid,
                  topic, (int)qd->read, bname);
        adm_route_free(rt);
        return rc;
    }
    rc = adm_pull(x->adm, addr, TOOLS_GROUP, topic, qid, off, 1, "*", &p);
    adm_route_free(rt);
    if (rc)
        return broker_fail(x, rc);
    if (p.code != ADM_RS_SUCCESS || p.msgs.n == 0 || p.msgs.v[0].queue_off != off) {
        rc = fail(x,
                  "no message at offset %lld of topic '%s' queue %d on broker '%s' (the "
                  "queue holds offsets %lld to %lld)",
                  (long long)off, topic, (int)qid, bname, (long long)p.min_off,
                  (long long)p.max_off - 1);
        adm_pull_free(&p);
        return rc;
    }
    p.msgs.n = 1; /* the first is the one asked for */
    print_msgs_detail(x, &p.msgs, cJSON_AddArrayToObject(x->out, "messages"), bname);
    adm_msgs_free(&p.msgs);
    return 0;
}

/* resetOffsetByTime ----------------------------------------------------------------------- */

static const struct optdef reset_offset_opts[] = {
    {'g', "group", "GROUP", "the consumer group (required)"},
    {'t', "topic", "TOPIC", "the topic (required)"},
    {'s', "timestamp", "TIME", "now, ms since 1970, or yyyy-MM-dd#HH:mm:ss:SSS (required)"},
    {'f', "force", "BOOL", "false: only move offsets back, never forward (default true)"},
    {'b', "broker", "ADDR", "only this broker (default: every master of the topic)"},
    {'q', "queue", "QID", "only this queue"},
    {'o', "offset", "OFFSET", "with -q: to this queue offset instead of by time"},
    {0, NULL, NULL, NULL},
};

static int
run_reset_offset(struct ctx *x)
{
    static const char *const hdr[] = {"#brokerName", "#queueId", "#offset"};
    struct adm_offsets offs;
    struct adm_route *rt = NULL;
    const char *group, *topic, *ts_s, *b;
    int64_t ts, offset;
    int32_t qid;
    int force, rc = 0, failed = 0;
    size_t n;
    cJSON *arr, *res;

    if (!(group = need(x, "group", &rc)) || !(topic = need(x, "topic", &rc)) ||
        !(ts_s = need(x, "timestamp", &rc)))
        return rc;
    if ((rc = check_topic(x, topic)) || (rc = opt_time(x, "timestamp", 0, &ts)) ||
        (rc = opt_bool(x, "force", 1, &force)) || (rc = opt_addr(x, "broker", &b)) ||
        (rc = opt_i32(x, "queue", 0, 65535, -1, &qid)) ||
        (rc = opt_i64(x, "offset", 0, INT64_MAX, -1, &offset)))
        return rc;
    if (offset >= 0 && qid < 0)
        return usage_err(x, "-o OFFSET needs -q QID (an offset belongs to one queue)");
    if (!b && (rc = get_route(x, topic, &rt)))
        return rc;
    memset(&offs, 0, sizeof(offs));
    res = cJSON_AddArrayToObject(x->out, "results");
    n = b ? 1 : rt->nbrokers;
    for (size_t i = 0; i < n; i++) {
        const char *addr = b ? b : adm_broker_master(&rt->brokers[i]);
        int r;
        if (!addr)
            continue;
        r = adm_reset_offset(x->adm, addr, topic, group, ts, force, qid, offset, &offs);
        note_result(x, res, addr, r);
        failed += r != 0;
    }
    adm_route_free(rt);
    cJSON_AddStringToObject(x->out, "group", group);
    cJSON_AddStringToObject(x->out, "topic", topic);
    cJSON_AddBoolToObject(x->out, "force", force);
    cJSON_AddNumberToObject(x->out, "timestamp", (double)ts);
    cJSON_AddNumberToObject(x->out, "notifiedConsumers", (double)offs.notified);
    arr = cJSON_AddArrayToObject(x->out, "offsets");
    for (size_t i = 0; i < offs.n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "brokerName", offs.v[i].broker);
        cJSON_AddNumberToObject(o, "queueId", offs.v[i].qid);
        cJSON_AddNumberToObject(o, "offset", (double)offs.v[i].offset);
        cJSON_AddItemToArray(arr, o);
    }
    if (!x->json && offs.n) {
        struct table *t = table_new(hdr, 3);
        printf("start reset consumer offset by specified, group[%s], topic[%s], force[%s], "
               "timestamp(string)[%s], timestamp(long)[%lld]\n",
               group, topic, tf(force), ts_s, (long long)ts);
        for (size_t i = 0; t && i < offs.n; i++) {
            table_cell(t, "%s", offs.v[i].broker);
            table_cell(t, "%d", (int)offs.v[i].qid);
            table_cell(t, "%lld", (long long)offs.v[i].offset);
        }
        if (t)
            table_print(t, stdout);
        table_free(t);
        printf("online consumers notified: %lld\n", (long long)offs.notified);
    }
    adm_offsets_free(&offs);
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* printMsg -------------------------------------------------------------------------------- */

static const struct optdef print_msg_opts[] = {
    {'t', "topic", "TOPIC", "the topic (required)"},
    {'a', "brokerName", "NAME", "only the queues of this broker group"},
    {'q', "queueId", "QID", "only this queue"},
    {'s', "subExpression", "EXPR", "tags to print, e.g. 'TagA || TagB' (default *)"},
    {'b', "beginTimestamp", "TIME",
     "from the first message stored at or after TIME (now, ms, "
     "or yyyy-MM-dd#HH:mm:ss:SSS)"},
    {'e', "endTimestamp", "TIME", "up to the messages stored before TIME"},
    {0, "beginOffset", "OFFSET", "from this queue offset (default: the queue's minimum)"},
    {0, "endOffset", "OFFSET", "up to this queue offset, exclusive (default: the maximum)"},
    {'d', "printBody", "BOOL", "print the bodies, true or false (default true)"},
    {0, NULL, NULL, NULL},
};

static void
print_msg_line(const struct adm_msg *m, int body)
{
    const char *tags = adm_msg_prop(m, "TAGS"), *keys = adm_msg_prop(m, "KEYS");
    char tb[40];

    printf("MSGID: %s MessageExt [queueId=%d, queueOffset=%lld, storeTimestamp=%s, "
           "bornHost=%s, storeHost=%s, commitLogOffset=%lld, offsetMsgId=%s, reconsumeTimes=%d, "
           "sysFlag=%d, tags=%s, keys=%s, properties=",
           adm_msg_id(m), (int)m->queue_id, (long long)m->queue_off,
           fmt_time(m->store_ts, tb, sizeof(tb), 1), m->born_host, m->store_host,
           (long long)m->phys_off, m->offset_id, (int)m->reconsume_times, (int)m->sysflag,
           tags ? tags : "null", keys ? keys : "null");
    put_props(stdout, m);
    printf("] BODY: ");
    if (body)
        put_body(stdout, m);
    else
        printf("NOT PRINT BODY");
    printf("\n");
}

/* Prints one queue from <begin> to <end> (exclusive). Returns 0 or an exit code. */
static int
print_queue(struct ctx *x, const char *addr, const char *bname, const char *topic, int32_t qid,
            int64_t begin, int64_t end, const char *expr, int body, cJSON *msgs)
{
    int64_t off = begin;

    while (off < end) {
        struct adm_pull p;
        int rc = adm_pull(x->adm, addr, TOOLS_GROUP, topic, qid, off, PULL_BATCH, expr, &p);
        if (rc)
            return broker_fail(x, rc);
        if (p.code == ADM_RS_SUCCESS) {
            for (size_t i = 0; i < p.msgs.n; i++) {
                if (p.msgs.v[i].queue_off >= end)
                    break;
                cJSON_AddItemToArray(msgs, msg_json(&p.msgs.v[i], bname));
                if (!x->json)
                    print_msg_line(&p.msgs.v[i], body);
            }
        } else if (p.code == ADM_RS_PULL_RETRY_IMMEDIATELY) {
            if (!x->json)
                printf("MessageQueue [topic=%s, brokerName=%s, queueId=%d] no matched msg. "
                       "offset=%lld\n",
                       topic, bname, (int)qid, (long long)p.next_begin);
        } else {
            if (!x->json)
                printf("MessageQueue [topic=%s, brokerName=%s, queueId=%d] print msg finished. "
                       "status=%s, offset=%lld\n",
                       topic, bname, (int)qid, adm_code_name(p.code), (long long)p.next_begin);
            adm_pull_free(&p);
            break;
        }
        /* The next offset must move on, or a broker bug would spin us forever. */
        if (p.next_begin <= off) {
            adm_pull_free(&p);
            break;
        }
        off = p.next_begin;
        adm_pull_free(&p);
    }
    return 0;
}

static int
run_print_msg(struct ctx *x)
{
    struct adm_route *rt;
    const char *topic, *only = opt(x, "brokerName"), *expr = opt(x, "subExpression");
    int64_t bts, ets, boff, eoff;
    int32_t qonly;
    int body, rc = 0, failed = 0, queues = 0;
    cJSON *arr;

    if (!(topic = need(x, "topic", &rc)))
        return rc;
    if ((rc = check_topic(x, topic)) || (rc = opt_time(x, "beginTimestamp", -1, &bts)) ||
        (rc = opt_time(x, "endTimestamp", -1, &ets)) ||
        (rc = opt_i64(x, "beginOffset", 0, INT64_MAX, -1, &boff)) ||
        (rc = opt_i64(x, "endOffset", 0, INT64_MAX, -1, &eoff)) ||
        (rc = opt_i32(x, "queueId", 0, 65535, -1, &qonly)) ||
        (rc = opt_bool(x, "printBody", 1, &body)))
        return rc;
    if (bts >= 0 && ets >= 0 && bts > ets)
        return usage_err(x, "-b is after -e");
    if (boff >= 0 && eoff >= 0 && boff > eoff)
        return usage_err(x, "--beginOffset %lld is after --endOffset %lld", (long long)boff,
                         (long long)eoff);
    if (!expr)
        expr = "*";
    if ((rc = get_route(x, topic, &rt)))
        return rc;
    cJSON_AddStringToObject(x->out, "topic", topic);
    arr = cJSON_AddArrayToObject(x->out, "queues");
    for (size_t i = 0; i < rt->nbrokers; i++) {
        const struct adm_broker *b = &rt->brokers[i];
        const struct adm_queue_data *qd = adm_route_queues(rt, b->name);
        const char *addr = adm_broker_master(b);

        if (!addr || !qd || (only && strcmp(only, b->name) != 0))
            continue;
        for (int32_t q = 0; q < qd->read; q++) {
            int64_t mn, mx;
            cJSON *o;
            if (qonly >= 0 && q != qonly)
                continue;
            queues++;
            if ((rc = adm_queue_offset(x->adm, addr, ADM_OFF_MIN, topic, q, 0, &mn)) ||
                (rc = adm_queue_offset(x->adm, addr, ADM_OFF_MAX, topic, q, 0, &mx)) ||
                (bts >= 0 &&
                 (rc = adm_queue_offset(x->adm, addr, ADM_OFF_BY_TIME, topic, q, bts, &mn))) ||
                (ets >= 0 &&
                 (rc = adm_queue_offset(x->adm, addr, ADM_OFF_BY_TIME, topic, q, ets, &mx)))) {
                broker_fail(x, rc);
                failed++;
                continue;
            }
            if (boff >= 0 && boff > mn)
                mn = boff;
            if (eoff >= 0 && eoff < mx)
                mx = eoff;
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "brokerName", b->name);
            cJSON_AddNumberToObject(o, "queueId", q);
            cJSON_AddNumberToObject(o, "minOffset", (double)mn);
            cJSON_AddNumberToObject(o, "maxOffset", (double)mx);
            cJSON_AddItemToArray(arr, o);
            if (!x->json)
                printf("minOffset=%lld, maxOffset=%lld, MessageQueue [topic=%s, brokerName=%s, "
                       "queueId=%d]\n",
                       (long long)mn, (long long)mx, topic, b->name, (int)q);
            if (print_queue(x, addr, b->name, topic, q, mn, mx, expr, body,
                            cJSON_AddArrayToObject(o, "messages")) != 0)
                failed++;
            if (!x->json)
                printf("--------------------------------------------------------\n");
        }
    }
    adm_route_free(rt);
    if (!queues && !failed) {
        char what[300];
        if (only && qonly >= 0)
            snprintf(what, sizeof(what), "broker '%s' has no queue %d of", only, (int)qonly);
        else if (only)
            snprintf(what, sizeof(what), "broker '%s' has no queue of", only);
        else if (qonly >= 0)
            snprintf(what, sizeof(what), "no broker has a queue %d of", (int)qonly);
        else
            snprintf(what, sizeof(what), "no broker has a readable queue of");
        return fail(x,
                    "%s topic '%s'; 'sprocket topicRoute -t %s -l' lists its brokers and queue "
                    "counts",
                    what, topic, topic);
    }
    return failed ? TOOL_EXIT_FAIL : 0;
}

/* The command table ----------------------------------------------------------------------- */

static const struct command commands[] = {
    {"updateTopic", "create or change a topic on a broker or a cluster",
     "-t TOPIC (-b ADDR | -c CLUSTER) [-r N] [-w N] [-p PERM] [options]",
     "Creates a topic, or changes its queue counts and permission, on one broker (-b) or on\n"
     "every master of a cluster (-c), with UPDATE_AND_CREATE_TOPIC. The brokers register the\n"
     "change with the name servers at once.",
     update_topic_opts, run_update_topic},
    {"deleteTopic", "delete a topic from a cluster and the name servers",
     "-t TOPIC -c CLUSTER [options]",
     "Deletes a topic from every master of a cluster (DELETE_TOPIC_IN_BROKER) and from every\n"
     "name server (DELETE_TOPIC_IN_NAMESRV). The topic's consumer offsets go with it; its\n"
     "messages stay in the CommitLog until they expire.",
     delete_topic_opts, run_delete_topic},
    {"topicList", "list the topics the name servers know", "[-c] [options]",
     "Lists every topic of the name server, one per line; with -c, a table of each topic's\n"
     "cluster and the consumer groups that consume it (retry and dead-letter topics left out).",
     topic_list_opts, run_topic_list},
    {"topicRoute", "show a topic's brokers and queues", "-t TOPIC [-l] [options]",
     "Prints the route of a topic (GET_ROUTEINFO_BY_TOPIC) as JSON, or with -l as a table of\n"
     "its brokers, addresses, queue counts and permissions.",
     topic_route_opts, run_topic_route},
    {"topicStatus", "show the offsets of every queue of a topic", "-t TOPIC [-c CLUSTER] [options]",
     "Prints each queue's minimum and maximum offset and the store time of its last message\n"
     "(GET_TOPIC_STATS_INFO on every master of the topic).",
     topic_status_opts, run_topic_status},
    {"clusterList", "list the clusters, their brokers and load",
     "[-m] [-i SECONDS] [-c CLUSTER] [options]",
     "Prints every broker the name server knows, with its version, load and disk use\n"
     "(GET_BROKER_CLUSTER_INFO, then GET_BROKER_RUNTIME_INFO on each broker).",
     cluster_list_opts, run_cluster_list},
    {"brokerStatus", "show a broker's runtime statistics", "(-b ADDR | -c CLUSTER) [options]",
     "Prints a broker's runtime statistics (GET_BROKER_RUNTIME_INFO), sorted by name.",
     broker_status_opts, run_broker_status},
    {"getBrokerConfig", "show a broker's settings", "(-b ADDR | -c CLUSTER) [options]",
     "Prints every setting of a broker with its current value (GET_BROKER_CONFIG).",
     get_broker_config_opts, run_get_broker_config},
    {"updateBrokerConfig", "change a broker setting at runtime",
     "(-b ADDR | -c CLUSTER) -k KEY -v VALUE [options]",
     "Changes one setting of running brokers (UPDATE_BROKER_CONFIG). Only settings that can\n"
     "change at runtime are accepted; 'sprocket getBrokerConfig' shows them all.",
     update_broker_config_opts, run_update_broker_config},
    {"updateSubGroup", "create or change a subscription group",
     "-g GROUP (-b ADDR | -c CLUSTER) [-r N] [-q N] [options]",
     "Creates or changes a consumer group's configuration (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP),\n"
     "kept by the broker in subscriptionGroup.json. The broker uses retryMaxTimes for\n"
     "redeliveries of clients that do not send their own maximum.",
     update_sub_group_opts, run_update_sub_group},
    {"consumerProgress", "show a consumer group's progress and lag",
     "[-g GROUP [-t TOPIC]] [options]",
     "With -g, prints each queue's broker offset, the group's committed offset and the\n"
     "difference (GET_CONSUME_STATS on every broker of the group); without it, one line per\n"
     "consumer group with its consumers online and total lag.",
     consumer_progress_opts, run_consumer_progress},
    {"consumerConnection", "list a consumer group's online consumers",
     "-g GROUP [-b ADDR] [options]",
     "Prints the consumers of a group that are connected to the brokers, and what they\n"
     "subscribe to (GET_CONSUMER_CONNECTION_LIST).",
     consumer_connection_opts, run_consumer_connection},
    {"producerConnection", "list a producer group's connected producers",
     "-g GROUP -t TOPIC [options]",
     "Prints the producers of a group that are connected to the brokers of a topic\n"
     "(GET_PRODUCER_CONNECTION_LIST).",
     producer_connection_opts, run_producer_connection},
    {"queryMsgById", "show messages by offset id or message id",
     "-i ID[,ID...] [-t TOPIC] [options]",
     "Looks messages up by id. An offset id (32 hex digits: store address and CommitLog offset)\n"
     "is read from that broker (VIEW_MESSAGE_BY_ID); otherwise, or when that fails, the id is\n"
     "taken as a message id (UNIQ_KEY) and looked up on every broker of -t TOPIC\n"
     "(QUERY_MESSAGE).",
     query_by_id_opts, run_query_by_id},
    {"queryMsgByKey", "find messages by key", "-t TOPIC -k KEY [-b MS] [-e MS] [-m N] [options]",
     "Lists the messages of a topic whose KEYS hold KEY, from every broker of the topic\n"
     "(QUERY_MESSAGE on the index).",
     query_by_key_opts, run_query_by_key},
    {"queryMsgByOffset", "show the message at a queue offset",
     "-t TOPIC -b BROKERNAME -i QID -o OFFSET [options]",
     "Prints the message at one offset of one queue (PULL_MESSAGE as group TOOLS_CONSUMER, no\n"
     "offset committed).",
     query_by_offset_opts, run_query_by_offset},
    {"resetOffsetByTime", "move a consumer group's offsets to a point in time",
     "-g GROUP -t TOPIC -s TIME [-f BOOL] [-b ADDR] [-q QID [-o OFFSET]] [options]",
     "Sets a group's committed offsets of a topic to the first message stored at or after\n"
     "TIME, on every master of the topic (INVOKE_BROKER_TO_RESET_OFFSET). Each broker commits\n"
     "the new offsets and tells the group's online consumers (RESET_CONSUMER_CLIENT_OFFSET).\n"
     "A consumer that ignores that notification keeps its old position and overwrites the\n"
     "new offsets at its next commit: stop such consumers first, reset, then start them.",
     reset_offset_opts, run_reset_offset},
    {"printMsg", "print the messages of a topic", "-t TOPIC [-q QID] [-b TIME] [-e TIME] [options]",
     "Prints the messages of every queue of a topic (or of -a/-q), between two times or two\n"
     "offsets (PULL_MESSAGE as group TOOLS_CONSUMER; no offset is committed).",
     print_msg_opts, run_print_msg},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *
find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int
cmd_admin_has(const char *name)
{
    return find_command(name) != NULL;
}

void
cmd_admin_list(FILE *out)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-20s %s\n", commands[i].name, commands[i].summary);
}

int
cmd_admin(int argc, char **argv)
{
    struct ctx x;
    char err[256] = "";
    int64_t to;
    int rc;

    memset(&x, 0, sizeof(x));
    x.cmd = find_command(argv[0]);
    if (!x.cmd) {
        fprintf(stderr, "sprocket: unknown command '%s'; 'sprocket --help' lists them\n", argv[0]);
        return TOOL_EXIT_USAGE;
    }
    rc = parse_args(&x, argc, argv);
    if (rc < 0)
        return TOOL_EXIT_OK;
    if (rc)
        return rc;
    x.json = opt(&x, "json") != NULL;
    if ((rc = opt_i64(&x, "timeout", 1, 3600000, ADM_TIMEOUT_MS, &to)))
        return rc;
    x.timeout_ms = (int)to;
    x.namesrv = opt(&x, "namesrvAddr");
    if (!x.namesrv || !*x.namesrv)
        x.namesrv = getenv("NAMESRV_ADDR");
    if (!x.namesrv || !*x.namesrv)
        x.namesrv = DEFAULT_NAMESRV;
    rc = adm_create(x.namesrv, x.timeout_ms, &x.adm, err, sizeof(err));
    if (rc == SPK_EFORMAT)
        return usage_err(&x, "-n '%s': %s (give ip:port[;ip:port])", x.namesrv, err);
    if (rc)
        return fail(&x, "out of memory");
    x.out = cJSON_CreateObject();
    if (!x.out) {
        adm_destroy(x.adm);
        return fail(&x, "out of memory");
    }
    rc = x.cmd->run(&x);
    if (x.out && x.json && rc != TOOL_EXIT_USAGE && (rc == 0 || cJSON_GetArraySize(x.out) > 0))
        emit_json(&x);
    cJSON_Delete(x.out);
    adm_destroy(x.adm);
    return rc;
}
