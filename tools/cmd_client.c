/*
 * cmd_client.c - `sprocket produce` and `sprocket consume`: messages in and
 * out of a running cluster through libsprocket.
 *
 * produce  one message per argument, or per line of stdin; prints one line
 *          per message (its id, queue and offset), or JSON with --json.
 * consume  runs a push (or, with --lite, a lite pull) consumer and prints
 *          each message (or only counts them) until --count messages,
 *          --duration seconds, or --idle seconds without a message.
 *
 * Exit status (tool.h): 0 when every message was sent / the run ended as
 * asked, 1 when a send failed or the consumer could not start, 2 for a
 * usage error.
 */
#include "tool.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "client/admin.h"
#include "common/errors.h"
#include "common/sbuf.h"
#include "sprocket.h"

#define MAX_PROPS 32

struct kv {
    const char *name;
    const char *value;
};

static int
parse_kv(const char *arg, struct kv *out, const char *what)
{
    const char *eq = strchr(arg, '=');
    char *name;

    if (!eq || eq == arg || !eq[1]) {
        fprintf(stderr, "sprocket: %s '%s' must be NAME=VALUE\n", what, arg);
        return -1;
    }
    name = strndup(arg, (size_t)(eq - arg));
    if (!name)
        return -1;
    out->name = name;
    out->value = eq + 1;
    return 0;
}

static int
parse_count(const char *arg, const char *opt, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || *end || !*arg || v < min || v > max) {
        fprintf(stderr, "sprocket: %s wants a number from %ld to %ld, not '%s'\n", opt, min, max,
                arg);
        return -1;
    }
    *out = v;
    return 0;
}

static void
json_message(struct sbuf *sb, const spk_message *m)
{
    const char *name, *value;
    const void *body;
    size_t blen, i;

    sb_puts(sb, "{\"topic\":");
    sb_json_cstr(sb, spk_message_topic(m));
    sb_puts(sb, ",\"msgId\":");
    sb_json_cstr(sb, spk_message_id(m));
    sb_puts(sb, ",\"offsetMsgId\":");
    sb_json_cstr(sb, spk_message_offset_id(m));
    sb_puts(sb, ",\"broker\":");
    sb_json_cstr(sb, spk_message_broker(m) ? spk_message_broker(m) : "");
    sb_printf(sb, ",\"queueId\":%d,\"queueOffset\":%" PRId64 ",\"reconsumeTimes\":%d",
              spk_message_queue_id(m), spk_message_queue_offset(m),
              spk_message_reconsume_times(m));
    sb_printf(sb, ",\"bornTimestamp\":%" PRId64 ",\"storeTimestamp\":%" PRId64,
              spk_message_born_timestamp(m), spk_message_store_timestamp(m));
    sb_puts(sb, ",\"tags\":");
    if (spk_message_tags(m))
        sb_json_cstr(sb, spk_message_tags(m));
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"keys\":");
    if (spk_message_keys(m))
        sb_json_cstr(sb, spk_message_keys(m));
    else
        sb_puts(sb, "null");
    sb_puts(sb, ",\"properties\":{");
    for (i = 0; spk_message_property_at(m, i, &name, &value); i++) {
        if (i)
            sb_putc(sb, ',');
        sb_json_cstr(sb, name);
        sb_putc(sb, ':');
        sb_json_cstr(sb, value);
    }
    body = spk_message_body(m, &blen);
    sb_puts(sb, "},\"body\":");
    sb_json_str(sb, body ? body : "", blen);
    sb_puts(sb, "}\n");
}

/*
 * Asks the name servers for <topic>'s route before starting, so that an
 * address with nobody behind it is reported at once, naming it, instead
 * of as retries in the background. 0: the topic has a route; 1: the name
 * server answered but does not know the topic (it may come); -1: no name
 * server answered (message printed).
 */
static int
probe_namesrv(const char *cmd, const char *ns, const char *topic)
{
    struct adm *a = NULL;
    struct adm_route *r = NULL;
    char err[256];
    int rc;

    if (adm_create(ns, 3000, &a, err, sizeof(err)) != 0) {
        fprintf(stderr, "sprocket %s: bad name server address: %s\n", cmd, err);
        return -1;
    }
    rc = adm_route(a, topic, &r);
    if (rc == 0) {
        adm_route_free(r);
    } else if (rc != SPK_ENOROUTE) {
        fprintf(stderr, "sprocket %s: %s; is sprocketd running there? pass the right "
                "-n ip:port\n", cmd, adm_error(a));
        adm_destroy(a);
        return -1;
    }
    adm_destroy(a);
    return rc == 0 ? 0 : 1;
}

/* ----- produce ---------------------------------------------------------- */
static void
produce_usage(FILE *f)
{
    fputs("usage: sprocket produce -n NAMESRV -t TOPIC [options] [BODY...]\n"
          "\n"
          "Sends one message per BODY argument, or one per line of standard input\n"
          "when there is none. Prints each message's id, queue and offset.\n"
          "\n"
          "  -n, --namesrv ADDR      name server(s), ip:port[;ip:port]\n"
          "  -t, --topic TOPIC       topic to send to\n"
          "  -g, --group GROUP       producer group (default sprocket_produce)\n"
          "      --tags TAG          tag of every message\n"
          "  -k, --keys KEYS         keys (space-separated) of every message\n"
          "  -p, --property N=V      a user property (repeatable)\n"
          "  -d, --delay LEVEL       delay level 1..18\n"
          "      --order-key KEY     send every message to the queue KEY hashes to\n"
          "      --batch N           send N messages per request (SEND_BATCH_MESSAGE)\n"
          "      --async             send asynchronously, then wait for every reply\n"
          "      --oneway            send without waiting for replies (no results)\n"
          "      --repeat N          send the messages N times (default 1)\n"
          "      --timeout MS        sendMsgTimeout (default 3000)\n"
          "      --interval-ms MS    pause between sends\n"
          "      --tx STATE          transactional: half message, then the local\n"
          "                          transaction answers commit | rollback | unknown\n"
          "      --check STATE       answer to the broker's check-back (default commit)\n"
          "      --linger SEC        stay up SEC seconds after sending (check-backs)\n"
          "      --json              one JSON object per message on stdout\n"
          "  -h, --help              this text\n",
          f);
}

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int
tx_state(const char *s)
{
    if (strcmp(s, "commit") == 0)
        return SPK_TX_COMMIT;
    if (strcmp(s, "rollback") == 0)
        return SPK_TX_ROLLBACK;
    if (strcmp(s, "unknown") == 0)
        return SPK_TX_UNKNOWN;
    return -1;
}

struct produce_opts;
static spk_tx_state tx_execute(const spk_message *m, void *arg, void *ud);
static spk_tx_state tx_check(const spk_message *m, void *ud);

struct async_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    long pending, failed;
    int json;
};

static void
print_result(const spk_send_result *r, int json, const char *body)
{
    if (json) {
        struct sbuf sb = SBUF_INIT;

        sb_puts(&sb, "{\"msgId\":");
        sb_json_cstr(&sb, r->msg_id);
        sb_puts(&sb, ",\"offsetMsgId\":");
        sb_json_cstr(&sb, r->offset_msg_id);
        sb_puts(&sb, ",\"broker\":");
        sb_json_cstr(&sb, r->queue.broker);
        sb_printf(&sb, ",\"queueId\":%d,\"queueOffset\":%" PRId64 ",\"status\":%d", r->queue.queue_id,
                  r->queue_offset, (int)r->status);
        if (body) {
            sb_puts(&sb, ",\"body\":");
            sb_json_cstr(&sb, body);
        }
        sb_puts(&sb, "}\n");
        if (!sb.err)
            fwrite(sb.p, 1, sb.len, stdout);
        sb_free(&sb);
    } else {
        printf("%s %s %s:%d %" PRId64 "%s\n", r->msg_id, r->offset_msg_id, r->queue.broker,
               r->queue.queue_id, r->queue_offset,
               r->status == SPK_SEND_OK ? "" : " (stored, not yet durable)");
    }
}

static void
on_async(int err, const spk_send_result *res, void *ud)
{
    struct async_state *st = ud;

    pthread_mutex_lock(&st->lock);
    if (err) {
        fprintf(stderr, "sprocket: send failed: %s\n", spk_strerror(err));
        st->failed++;
    } else {
        print_result(res, st->json, NULL);
    }
    st->pending--;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
}

struct produce_opts {
    const char *ns, *topic, *group, *tags, *keys, *order_key, *timeout, *tx, *check;
    long interval_ms, linger;
    struct kv props[MAX_PROPS];
    int nprops;
    long delay, batch, repeat;
    int async, oneway, json;
};

/* The local transaction: answers --tx. */
static spk_tx_state
tx_execute(const spk_message *m, void *arg, void *ud)
{
    const struct produce_opts *o = ud;

    (void)m;
    (void)arg;
    return (spk_tx_state)tx_state(o->tx);
}

/* The check-back: answers --check (commit by default), and says so on stderr. */
static spk_tx_state
tx_check(const spk_message *m, void *ud)
{
    const struct produce_opts *o = ud;
    spk_tx_state s = o->check ? (spk_tx_state)tx_state(o->check) : SPK_TX_COMMIT;

    fprintf(stderr, "sprocket produce: check-back for %s answered %s\n", spk_message_id(m),
            s == SPK_TX_COMMIT ? "commit" : s == SPK_TX_ROLLBACK ? "rollback" : "unknown");
    return s;
}

static spk_message *
make_message(const struct produce_opts *o, const char *body, size_t len)
{
    spk_message *m = spk_message_create(o->topic, body, len);
    int i, rc = 0;

    if (!m)
        return NULL;
    if (o->tags)
        rc = spk_message_set_tags(m, o->tags);
    if (!rc && o->keys)
        rc = spk_message_set_keys(m, o->keys);
    if (!rc && o->delay)
        rc = spk_message_set_delay_level(m, (int)o->delay);
    for (i = 0; !rc && i < o->nprops; i++)
        rc = spk_message_set_property(m, o->props[i].name, o->props[i].value);
    if (rc) {
        fprintf(stderr, "sprocket: bad message option: %s\n", spk_strerror(rc));
        spk_message_destroy(m);
        return NULL;
    }
    return m;
}

int
cmd_produce(int argc, char **argv)
{
    static const struct option lo[] = {
        {"namesrv", required_argument, 0, 'n'}, {"topic", required_argument, 0, 't'},
        {"group", required_argument, 0, 'g'},   {"tags", required_argument, 0, 'T'},
        {"keys", required_argument, 0, 'k'},    {"property", required_argument, 0, 'p'},
        {"delay", required_argument, 0, 'd'},   {"order-key", required_argument, 0, 'O'},
        {"batch", required_argument, 0, 'B'},   {"async", no_argument, 0, 'A'},
        {"oneway", no_argument, 0, 'W'},        {"repeat", required_argument, 0, 'R'},
        {"timeout", required_argument, 0, 'X'}, {"json", no_argument, 0, 'J'},
        {"interval-ms", required_argument, 0, 'Q'}, {"tx", required_argument, 0, 'Y'},
        {"check", required_argument, 0, 'K'},   {"linger", required_argument, 0, 'G'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    struct produce_opts o;
    struct async_state st;
    spk_producer *p = NULL;
    char **bodies = NULL, *line = NULL;
    size_t nbodies = 0, cap = 0, lcap = 0, i;
    long r, sent = 0, failed = 0;
    int c, rc, ret = TOOL_EXIT_OK, k;

    setvbuf(stdout, NULL, _IOLBF, 0); /* a pipe sees each line as it is made */
    memset(&o, 0, sizeof(o));
    o.group = "sprocket_produce";
    o.repeat = 1;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "n:t:g:k:p:d:h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': o.ns = optarg; break;
        case 't': o.topic = optarg; break;
        case 'g': o.group = optarg; break;
        case 'T': o.tags = optarg; break;
        case 'k': o.keys = optarg; break;
        case 'p':
            if (o.nprops == MAX_PROPS) {
                fprintf(stderr, "sprocket: at most %d --property options\n", MAX_PROPS);
                return TOOL_EXIT_USAGE;
            }
            if (parse_kv(optarg, &o.props[o.nprops], "--property"))
                return TOOL_EXIT_USAGE;
            o.nprops++;
            break;
        case 'd':
            if (parse_count(optarg, "--delay", 1, 18, &o.delay))
                return TOOL_EXIT_USAGE;
            break;
        case 'O': o.order_key = optarg; break;
        case 'B':
            if (parse_count(optarg, "--batch", 1, 1024, &o.batch))
                return TOOL_EXIT_USAGE;
            break;
        case 'A': o.async = 1; break;
        case 'W': o.oneway = 1; break;
        case 'R':
            if (parse_count(optarg, "--repeat", 1, 100000000, &o.repeat))
                return TOOL_EXIT_USAGE;
            break;
        case 'X': o.timeout = optarg; break;
        case 'J': o.json = 1; break;
        case 'Q':
            if (parse_count(optarg, "--interval-ms", 0, 3600000, &o.interval_ms))
                return TOOL_EXIT_USAGE;
            break;
        case 'Y': o.tx = optarg; break;
        case 'K': o.check = optarg; break;
        case 'G':
            if (parse_count(optarg, "--linger", 0, 86400, &o.linger))
                return TOOL_EXIT_USAGE;
            break;
        case 'h': produce_usage(stdout); return TOOL_EXIT_OK;
        default:
            fprintf(stderr, "sprocket produce: unknown or incomplete option '%s'; see "
                    "'sprocket produce --help'\n", argv[optind - 1]);
            return TOOL_EXIT_USAGE;
        }
    }
    if (!o.ns || !o.topic) {
        fprintf(stderr, "sprocket produce: -n NAMESRV and -t TOPIC are required "
                "(e.g. -n 127.0.0.1:9876 -t TopicTest)\n");
        return TOOL_EXIT_USAGE;
    }
    if (o.async + o.oneway + (o.batch > 0) + (o.order_key != NULL) > 1) {
        fprintf(stderr, "sprocket produce: --async, --oneway, --batch and --order-key "
                "exclude each other\n");
        return TOOL_EXIT_USAGE;
    }
    if ((o.tx && tx_state(o.tx) < 0) || (o.check && tx_state(o.check) < 0)) {
        fprintf(stderr, "sprocket produce: --tx and --check take commit, rollback or unknown\n");
        return TOOL_EXIT_USAGE;
    }
    if (o.tx && (o.async || o.oneway || o.batch || o.order_key)) {
        fprintf(stderr, "sprocket produce: --tx sends one message at a time, synchronously\n");
        return TOOL_EXIT_USAGE;
    }
    if (o.batch && o.delay) {
        fprintf(stderr, "sprocket produce: batches cannot be delayed\n");
        return TOOL_EXIT_USAGE;
    }
    if (optind < argc) {
        bodies = argv + optind;
        nbodies = (size_t)(argc - optind);
    } else {
        ssize_t n;

        while ((n = getline(&line, &lcap, stdin)) >= 0) {
            char **nb;

            if (n > 0 && line[n - 1] == '\n')
                line[--n] = 0;
            if (nbodies == cap) {
                cap = cap ? cap * 2 : 64;
                nb = realloc(bodies, cap * sizeof(*nb));
                if (!nb) {
                    ret = TOOL_EXIT_FAIL;
                    goto out;
                }
                bodies = nb;
            }
            bodies[nbodies] = strdup(line);
            if (!bodies[nbodies]) {
                ret = TOOL_EXIT_FAIL;
                goto out;
            }
            nbodies++;
        }
    }
    rc = spk_producer_create(o.group, &p);
    if (!rc)
        rc = spk_producer_set_option(p, "namesrvAddr", o.ns);
    if (!rc && o.timeout)
        rc = spk_producer_set_option(p, "sendMsgTimeout", o.timeout);
    if (!rc && o.tx)
        rc = spk_producer_set_transaction_listener(p, tx_execute, tx_check, &o);
    if (rc) {
        fprintf(stderr, "sprocket produce: bad option: %s\n", spk_strerror(rc));
        ret = TOOL_EXIT_USAGE;
        goto out;
    }
    if (probe_namesrv("produce", o.ns, o.topic) < 0) {
        ret = TOOL_EXIT_FAIL;
        goto out;
    }
    rc = spk_producer_start(p);
    if (rc) {
        fprintf(stderr, "sprocket produce: cannot start: %s\n", spk_strerror(rc));
        ret = TOOL_EXIT_FAIL;
        goto out;
    }
    memset(&st, 0, sizeof(st));
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.cond, NULL);
    st.json = o.json;
    for (r = 0; r < o.repeat; r++) {
        for (i = 0; i < nbodies;) {
            spk_send_result res;
            spk_message *batch[1024];
            size_t nb = o.batch ? (size_t)o.batch : 1;

            if (nb > nbodies - i)
                nb = nbodies - i;
            for (k = 0; k < (int)nb; k++) {
                batch[k] = make_message(&o, bodies[i + (size_t)k], strlen(bodies[i + (size_t)k]));
                if (!batch[k]) {
                    while (k-- > 0)
                        spk_message_destroy(batch[k]);
                    ret = TOOL_EXIT_FAIL;
                    goto done;
                }
            }
            if (o.interval_ms && (r > 0 || i > 0))
                usleep((useconds_t)o.interval_ms * 1000);
            if (o.tx) {
                spk_tx_state txs = SPK_TX_UNKNOWN;

                rc = spk_producer_send_transaction(p, batch[0], NULL, NULL, &res, &txs);
            } else if (o.batch) {
                rc = spk_producer_send_batch(p, batch, nb, &res);
            } else if (o.async) {
                pthread_mutex_lock(&st.lock);
                st.pending++;
                pthread_mutex_unlock(&st.lock);
                rc = spk_producer_send_async(p, batch[0], on_async, &st);
                if (rc) {
                    pthread_mutex_lock(&st.lock);
                    st.pending--;
                    pthread_mutex_unlock(&st.lock);
                }
            } else if (o.oneway) {
                rc = spk_producer_send_oneway(p, batch[0]);
            } else if (o.order_key) {
                rc = spk_producer_send_to(p, batch[0], spk_select_by_key, (void *)o.order_key,
                                          &res);
            } else {
                rc = spk_producer_send(p, batch[0], &res);
            }
            if (rc) {
                int code = 0;
                const char *remark = "";

                spk_last_broker_error(&code, &remark);
                if (rc == -1012)
                    fprintf(stderr, "sprocket produce: broker refused: code %d %s\n", code,
                            remark);
                else
                    fprintf(stderr, "sprocket produce: send failed: %s%s\n", spk_strerror(rc),
                            rc == -1011 ? " (does the topic exist? create it with "
                                          "'sprocket updateTopic')"
                                        : "");
                failed += (long)nb;
            } else {
                sent += (long)nb;
                if (!o.async && !o.oneway) {
                    if (o.batch) {
                        for (k = 0; k < (int)nb; k++) {
                            spk_send_result one = res;

                            snprintf(one.msg_id, sizeof(one.msg_id), "%s",
                                     spk_message_id(batch[k]));
                            one.queue_offset = res.queue_offset + k;
                            print_result(&one, o.json, NULL);
                        }
                    } else {
                        print_result(&res, o.json, NULL);
                    }
                }
            }
            for (k = 0; k < (int)nb; k++)
                spk_message_destroy(batch[k]);
            i += nb;
        }
    }
done:
    pthread_mutex_lock(&st.lock);
    while (st.pending > 0)
        pthread_cond_wait(&st.cond, &st.lock);
    pthread_mutex_unlock(&st.lock);
    if (o.linger) {
        int64_t until = spk_mono_ms() + o.linger * 1000;

        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        while (!stop_flag && spk_mono_ms() < until)
            usleep(50000);
    }
    pthread_mutex_lock(&st.lock);
    failed += st.failed;
    pthread_mutex_unlock(&st.lock);
    pthread_mutex_destroy(&st.lock);
    pthread_cond_destroy(&st.cond);
    fflush(stdout);
    fprintf(stderr, "sprocket produce: %ld sent, %ld failed\n", sent - st.failed, failed);
    if (failed)
        ret = TOOL_EXIT_FAIL;
out:
    spk_producer_destroy(p);
    if (optind >= argc && bodies) {
        for (i = 0; i < nbodies; i++)
            free(bodies[i]);
        free(bodies);
    }
    free(line);
    for (k = 0; k < o.nprops; k++)
        free((char *)o.props[k].name);
    return ret;
}

/* ----- consume ---------------------------------------------------------- */
static void
consume_usage(FILE *f)
{
    fputs("usage: sprocket consume -n NAMESRV -t TOPIC [options]\n"
          "\n"
          "Consumes TOPIC and prints every message until --count messages, --duration\n"
          "seconds, --idle seconds without a message, or Ctrl-C.\n"
          "\n"
          "  -n, --namesrv ADDR      name server(s), ip:port[;ip:port]\n"
          "  -t, --topic TOPIC       topic to consume\n"
          "  -g, --group GROUP       consumer group (default sprocket_consume)\n"
          "  -s, --tags EXPR         tag filter: '*' (default) or 'TagA || TagB'\n"
          "  -p, --property N=V      only messages with this property (repeatable)\n"
          "      --broadcast         every member gets every message (offsets kept locally)\n"
          "      --from WHERE        first | last (default) | timestamp, for queues the\n"
          "                          group has no offset for\n"
          "      --timestamp STAMP   yyyyMMddHHmmss for --from timestamp\n"
          "      --orderly           one message at a time per queue, holding queue locks\n"
          "      --lite              a lite pull consumer (poll loop) instead of push\n"
          "      --count N           stop after N messages\n"
          "      --duration SEC      stop after SEC seconds\n"
          "      --idle SEC          stop after SEC seconds without a message\n"
          "      --quiet             only count (print the total at the end)\n"
          "      --json              one JSON object per message\n"
          "      --reconsume N       ask for redelivery (consume later) until a message has\n"
          "                          been redelivered N times (to try retries)\n"
          "      --instance NAME     instance name (part of the client id)\n"
          "      --offset-dir DIR    where a broadcasting consumer keeps offsets\n"
          "      --threads N         callback threads (default 4)\n"
          "      --sleep-ms MS       pause in every callback (to watch flow control)\n"
          "  -h, --help              this text\n",
          f);
}

struct consume_state {
    pthread_mutex_t lock;
    long count, limit;
    int64_t last_ms;
    int json, quiet;
    long reconsume;
    long sleep_ms;
    int stopping;
    pthread_cond_t cond;
    const char *client;
};

static int64_t
wall_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* <t0>: when the listener got the message (wall clock, us), for tests that
 * check delays and that no two members consume one queue at once. */
static void
emit(struct consume_state *st, const spk_message *m, int64_t t0)
{
    if (!st->quiet) {
        struct sbuf sb = SBUF_INIT;

        if (st->json) {
            json_message(&sb, m);
            sb_unput(&sb, '\n');
            sb_unput(&sb, '}');
            sb_printf(&sb, ",\"t0\":%" PRId64 ",\"t1\":%" PRId64 ",\"client\":\"%s\"}\n", t0,
                      wall_us(), st->client ? st->client : "");
        } else {
            const void *b;
            size_t bl;

            b = spk_message_body(m, &bl);
            sb_printf(&sb, "%s %s:%d %" PRId64 " tags=%s keys=%s ", spk_message_id(m),
                      spk_message_broker(m) ? spk_message_broker(m) : "?",
                      spk_message_queue_id(m), spk_message_queue_offset(m),
                      spk_message_tags(m) ? spk_message_tags(m) : "",
                      spk_message_keys(m) ? spk_message_keys(m) : "");
            sb_put(&sb, b, bl);
            sb_putc(&sb, '\n');
        }
        if (!sb.err)
            fwrite(sb.p, 1, sb.len, stdout);
        sb_free(&sb);
    }
    st->count++;
    st->last_ms = spk_mono_ms();
}

static spk_consume_result
on_message(const spk_message *m, void *ud)
{
    struct consume_state *st = ud;
    int64_t t0 = wall_us();

    if (st->sleep_ms)
        usleep((useconds_t)st->sleep_ms * 1000);
    if (spk_message_reconsume_times(m) < st->reconsume)
        return SPK_CONSUME_LATER;
    pthread_mutex_lock(&st->lock);
    if (st->limit && st->count >= st->limit) {
        /* Enough: hold the message until shutdown, then leave it
         * unconsumed, so the group's offset stops right after the last
         * message printed. */
        while (!st->stopping)
            pthread_cond_wait(&st->cond, &st->lock);
        pthread_mutex_unlock(&st->lock);
        return SPK_CONSUME_LATER;
    }
    emit(st, m, t0);
    fflush(stdout);
    pthread_mutex_unlock(&st->lock);
    return SPK_CONSUME_SUCCESS;
}

int
cmd_consume(int argc, char **argv)
{
    static const struct option lo[] = {
        {"namesrv", required_argument, 0, 'n'},  {"topic", required_argument, 0, 't'},
        {"group", required_argument, 0, 'g'},    {"tags", required_argument, 0, 's'},
        {"property", required_argument, 0, 'p'}, {"broadcast", no_argument, 0, 'B'},
        {"from", required_argument, 0, 'F'},     {"timestamp", required_argument, 0, 'S'},
        {"orderly", no_argument, 0, 'O'},        {"lite", no_argument, 0, 'L'},
        {"count", required_argument, 0, 'C'},    {"duration", required_argument, 0, 'D'},
        {"idle", required_argument, 0, 'I'},     {"quiet", no_argument, 0, 'q'},
        {"json", no_argument, 0, 'J'},           {"reconsume", required_argument, 0, 'r'},
        {"instance", required_argument, 0, 'i'}, {"offset-dir", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 'N'},  {"sleep-ms", required_argument, 0, 'Z'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const char *ns = NULL, *topic = NULL, *group = "sprocket_consume", *tags = "*";
    const char *from = NULL, *stamp = NULL, *instance = NULL, *offdir = NULL, *threads = NULL;
    struct kv props[MAX_PROPS];
    struct consume_state st;
    spk_consumer *cons = NULL;
    long duration = 0, idle = 0;
    int nprops = 0, broadcast = 0, orderly = 0, lite = 0, c, rc, i, ret = TOOL_EXIT_OK;
    int64_t start;

    memset(&st, 0, sizeof(st));
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "n:t:g:s:p:h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': ns = optarg; break;
        case 't': topic = optarg; break;
        case 'g': group = optarg; break;
        case 's': tags = optarg; break;
        case 'p':
            if (nprops == MAX_PROPS || parse_kv(optarg, &props[nprops], "--property"))
                return TOOL_EXIT_USAGE;
            nprops++;
            break;
        case 'B': broadcast = 1; break;
        case 'F': from = optarg; break;
        case 'S': stamp = optarg; break;
        case 'O': orderly = 1; break;
        case 'L': lite = 1; break;
        case 'C':
            if (parse_count(optarg, "--count", 1, 1000000000, &st.limit))
                return TOOL_EXIT_USAGE;
            break;
        case 'D':
            if (parse_count(optarg, "--duration", 1, 86400 * 365, &duration))
                return TOOL_EXIT_USAGE;
            break;
        case 'I':
            if (parse_count(optarg, "--idle", 1, 86400, &idle))
                return TOOL_EXIT_USAGE;
            break;
        case 'q': st.quiet = 1; break;
        case 'J': st.json = 1; break;
        case 'r':
            if (parse_count(optarg, "--reconsume", 0, 16, &st.reconsume))
                return TOOL_EXIT_USAGE;
            break;
        case 'i': instance = optarg; break;
        case 'o': offdir = optarg; break;
        case 'N': threads = optarg; break;
        case 'Z':
            if (parse_count(optarg, "--sleep-ms", 0, 60000, &st.sleep_ms))
                return TOOL_EXIT_USAGE;
            break;
        case 'h': consume_usage(stdout); return TOOL_EXIT_OK;
        default:
            fprintf(stderr, "sprocket consume: unknown or incomplete option '%s'; see "
                    "'sprocket consume --help'\n", argv[optind - 1]);
            return TOOL_EXIT_USAGE;
        }
    }
    if (!ns || !topic) {
        fprintf(stderr, "sprocket consume: -n NAMESRV and -t TOPIC are required "
                "(e.g. -n 127.0.0.1:9876 -t TopicTest)\n");
        return TOOL_EXIT_USAGE;
    }
    if (from && strcmp(from, "first") && strcmp(from, "last") && strcmp(from, "timestamp")) {
        fprintf(stderr, "sprocket consume: --from is first, last or timestamp, not '%s'\n", from);
        return TOOL_EXIT_USAGE;
    }
    if (lite && orderly) {
        fprintf(stderr, "sprocket consume: --lite and --orderly exclude each other\n");
        return TOOL_EXIT_USAGE;
    }
    rc = lite ? spk_pull_consumer_create(group, &cons) : spk_push_consumer_create(group, &cons);
    if (!rc)
        rc = spk_consumer_set_option(cons, "namesrvAddr", ns);
    if (!rc && broadcast)
        rc = spk_consumer_set_option(cons, "messageModel", "BROADCASTING");
    if (!rc && from)
        rc = spk_consumer_set_option(cons, "consumeFromWhere",
                                     strcmp(from, "first") == 0  ? "CONSUME_FROM_FIRST_OFFSET"
                                     : strcmp(from, "last") == 0 ? "CONSUME_FROM_LAST_OFFSET"
                                                                 : "CONSUME_FROM_TIMESTAMP");
    if (!rc && stamp && (rc = spk_consumer_set_option(cons, "consumeTimestamp", stamp)) != 0)
        fprintf(stderr, "sprocket consume: --timestamp wants yyyyMMddHHmmss, not '%s'\n", stamp);
    if (!rc && instance)
        rc = spk_consumer_set_option(cons, "instanceName", instance);
    if (!rc && offdir)
        rc = spk_consumer_set_option(cons, "offsetStoreDir", offdir);
    if (!rc && threads)
        rc = spk_consumer_set_option(cons, "consumeThreadNum", threads);
    if (!rc && (rc = spk_consumer_subscribe(cons, topic, tags)) != 0)
        fprintf(stderr, "sprocket consume: bad tag expression '%s'\n", tags);
    for (i = 0; !rc && i < nprops; i++)
        rc = spk_consumer_filter_property(cons, topic, props[i].name, props[i].value);
    pthread_cond_init(&st.cond, NULL);
    if (!rc && !lite) {
        pthread_mutex_init(&st.lock, NULL);
        rc = orderly ? spk_consumer_set_orderly_listener(cons, on_message, &st)
                     : spk_consumer_set_listener(cons, on_message, &st);
    } else if (!rc) {
        pthread_mutex_init(&st.lock, NULL);
    }
    if (rc) {
        fprintf(stderr, "sprocket consume: bad option: %s\n", spk_strerror(rc));
        ret = TOOL_EXIT_USAGE;
        goto out;
    }
    switch (probe_namesrv("consume", ns, topic)) {
    case -1:
        ret = TOOL_EXIT_FAIL;
        goto out;
    case 1:
        fprintf(stderr, "sprocket consume: topic %s does not exist yet; waiting for it "
                "(create it with 'sprocket updateTopic')\n", topic);
        break;
    default:
        break;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    st.last_ms = start = spk_mono_ms();
    rc = spk_consumer_start(cons);
    if (rc) {
        fprintf(stderr, "sprocket consume: cannot start: %s\n", spk_strerror(rc));
        ret = TOOL_EXIT_FAIL;
        pthread_mutex_destroy(&st.lock);
        goto out;
    }
    pthread_mutex_lock(&st.lock);
    st.client = spk_consumer_client_id(cons);
    pthread_mutex_unlock(&st.lock);
    while (!stop_flag) {
        int64_t now = spk_mono_ms();
        long count;
        int64_t last;

        if (lite) {
            spk_message **msgs = NULL;
            size_t n = 0, k;

            size_t want = 32;

            pthread_mutex_lock(&st.lock);
            if (st.limit && (size_t)(st.limit - st.count) < want)
                want = (size_t)(st.limit - st.count); /* never poll what is not printed */
            pthread_mutex_unlock(&st.lock);
            rc = want ? spk_consumer_poll(cons, 200, want, &msgs, &n) : 0;
            pthread_mutex_lock(&st.lock);
            for (k = 0; k < n && (!st.limit || st.count < st.limit); k++)
                emit(&st, msgs[k], wall_us());
            fflush(stdout);
            pthread_mutex_unlock(&st.lock);
            spk_messages_free(msgs, n);
        } else {
            usleep(50000);
        }
        pthread_mutex_lock(&st.lock);
        count = st.count;
        last = st.last_ms;
        pthread_mutex_unlock(&st.lock);
        if (st.limit && count >= st.limit)
            break;
        if (duration && now - start >= duration * 1000)
            break;
        if (idle && now - last >= idle * 1000)
            break;
    }
    /* Held listeners (past --count) may return only once the library
     * stops: their "later" then leaves the message for the next run. */
    spk_consumer_shutdown(cons);
    pthread_mutex_lock(&st.lock);
    st.stopping = 1;
    pthread_cond_broadcast(&st.cond);
    pthread_mutex_unlock(&st.lock);
    spk_consumer_destroy(cons); /* commits offsets */
    cons = NULL;
    fflush(stdout);
    fprintf(stderr, "sprocket consume: %ld messages\n", st.count);
    pthread_mutex_destroy(&st.lock);
out:
    spk_consumer_destroy(cons);
    for (i = 0; i < nprops; i++)
        free((char *)props[i].name);
    return ret;
}
