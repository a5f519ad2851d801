/*
 * sprocketd.c - the server process: name server, broker, or both.
 *
 *   sprocketd [standalone|namesrv|broker] [-c broker.conf] [--key=value ...]
 *
 * Settings are RocketMQ's keys (broker.conf as is); later sources win:
 * defaults, then -c FILE, then --key=value. One event loop serves every
 * listener of the process; SIGTERM and SIGINT stop it gracefully (stop
 * accepting, answer parked requests, flush, persist, remove the abort
 * file). Exit status: 0 after a clean stop, 1 when start-up fails (the
 * reason is printed), 2 for a usage error.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/errors.h"
#include "common/log.h"
#include "namesrv/namesrv.h"
#include "net/loop.h"
#include "proto/remoting.h"
#include "proto/reply.h"

struct daemon_config {
    int namesrvListenPort;
    char *logLevel;
    int64_t serverFrameReadTimeoutMillis;
    int64_t serverWriteStallTimeoutMillis;
    int64_t serverOutputBufferSoftLimit;
    int64_t serverOutputBufferHardLimit;
};

#define F(field) offsetof(struct daemon_config, field)
static const struct cfg_def daemon_defs[] = {
    {"namesrvListenPort", CFG_INT, F(namesrvListenPort), 1, 65535, "9876", NULL, 0,
     "standalone: the name server's port (namesrv role: use listenPort)"},
    {"logLevel", CFG_STRING, F(logLevel), 0, 0, "info", NULL, 0, "debug, info, warn or error"},
    /* Connection limits (net/loop.h INV-2, INV-5), for every listener of the process. */
    {"serverFrameReadTimeoutMillis", CFG_INT64, F(serverFrameReadTimeoutMillis), 0, 3600000,
     "30000", NULL, 0,
     "close a connection whose frame is not complete this long after its first byte (a "
     "slowloris); 0 = no limit"},
    {"serverWriteStallTimeoutMillis", CFG_INT64, F(serverWriteStallTimeoutMillis), 0, 3600000,
     "60000", NULL, 0,
     "close a connection whose queued replies have not moved for this long (a peer that "
     "stopped reading); 0 = no limit"},
    {"serverOutputBufferSoftLimit", CFG_INT64, F(serverOutputBufferSoftLimit), 65536,
     (int64_t)1 << 40, "33554432", NULL, 0,
     "stop reading a connection's requests while more than this many reply bytes wait"},
    {"serverOutputBufferHardLimit", CFG_INT64, F(serverOutputBufferHardLimit), 65536,
     (int64_t)1 << 40, "536870912", NULL, 0,
     "close a connection with more than this many reply bytes waiting"},
};
#undef F

/* Name server role: listenPort only. */
struct ns_config {
    int listenPort;
};
static const struct cfg_def ns_defs[] = {
    {"listenPort", CFG_INT, offsetof(struct ns_config, listenPort), 1, 65535, "9876", NULL, 0,
     "name server port"},
};

static struct net_loop *the_loop;
static struct net_wakeup *stop_wake;
static struct broker *the_broker;
static int stopping;

static void
on_signal(int sig)
{
    (void)sig;
    if (stop_wake)
        net_wakeup_signal(stop_wake); /* an atomic exchange and an eventfd write */
}

static void
stop_now(void *arg)
{
    net_loop_stop(arg);
}

/* On the loop: stop accepting, then let the broker unregister and stop the loop. */
static void
on_stop(void *arg)
{
    struct net_loop *l = arg;

    if (stopping++)
        return;
    spk_log(SPK_LOG_INFO, "main", "stopping");
    net_loop_close_listeners(l);
    net_timer_add(l, 5000, 0, stop_now, l); /* whatever happens, stop within 5 s */
    if (the_broker)
        broker_begin_stop(the_broker);
    else
        net_loop_stop(l);
}

/* The name server on the loop ------------------------------------------------ */

static void
ns_on_frame(void *ud, struct net_conn *c, const uint8_t *frame, size_t len)
{
    struct namesrv *ns = ud;
    struct proto_cmd req;
    struct proto_reply rep;
    uint8_t *out;
    size_t olen;

    if (proto_decode(frame, len, &req) != 0) {
        spk_log(SPK_LOG_WARN, "namesrv", "undecodable request from %s; closing",
                net_conn_peer(c));
        net_conn_close(c);
        return;
    }
    if (req.flag & PROTO_FLAG_RESPONSE) {
        proto_cmd_free(&req);
        return;
    }
    proto_reply_init(&rep, 0);
    namesrv_handle(ns, &req, net_conn_id(c), spk_wall_ms(), &rep);
    if (!(req.flag & PROTO_FLAG_ONEWAY) && proto_reply_encode(&req, &rep, 0, &out, &olen) == 0)
        net_conn_send(c, out, olen);
    proto_reply_free(&rep);
    proto_cmd_free(&req);
}

static void
ns_on_close(void *ud, struct net_conn *c)
{
    namesrv_conn_closed(ud, net_conn_id(c));
}

static void
ns_expire(void *arg)
{
    int n = namesrv_expire(arg, spk_wall_ms());

    if (n > 0)
        spk_log(SPK_LOG_WARN, "namesrv", "%d broker(s) expired (no registration for 120 s)", n);
}

static void
usage(FILE *out)
{
    fputs("usage: sprocketd [standalone|namesrv|broker] [-c FILE] [--key=value ...]\n"
          "\n"
          "roles:\n"
          "  standalone  name server and broker in one process (the default)\n"
          "  namesrv     a name server only (--listenPort, default 9876)\n"
          "  broker      a broker only; registers with --namesrvAddr\n"
          "\n"
          "  -c FILE     read RocketMQ-style key=value settings (broker.conf)\n"
          "  --key=value override any setting; --help-config lists them all\n"
          "\n"
          "common settings: listenPort (broker 10911), namesrvListenPort (standalone, 9876),\n"
          "namesrvAddr, storePathRootDir, brokerName, brokerClusterName, brokerId,\n"
          "brokerIP1, flushDiskType (ASYNC_FLUSH|SYNC_FLUSH), logLevel\n",
          out);
}

static void
help_config(const struct cfg_target *ts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < ts[i].n; k++)
            printf("%-36s default %-14s %s%s\n", ts[i].defs[k].name,
                   ts[i].defs[k].defval ? ts[i].defs[k].defval : "\"\"", ts[i].defs[k].help,
                   (ts[i].defs[k].flags & CFG_RUNTIME) ? " (can change while running)" : "");
}

int
main(int argc, char **argv)
{
    enum { ROLE_STANDALONE, ROLE_NAMESRV, ROLE_BROKER } role = ROLE_STANDALONE;
    struct broker_config bcfg;
    struct store_config scfg;
    struct daemon_config dcfg;
    struct ns_config ncfg;
    struct cfg_target ts[4];
    size_t nts = 0;
    struct namesrv *ns = NULL;
    struct broker *br = NULL;
    struct net_loop *loop = NULL;
    char err[512];
    const char *conf = NULL;
    int64_t t0 = spk_mono_ms();
    int rc, status = 1, i, out = 1;
    enum spk_log_level lvl;
    struct sigaction sa;

    memset(&bcfg, 0, sizeof(bcfg));
    memset(&scfg, 0, sizeof(scfg));
    memset(&dcfg, 0, sizeof(dcfg));
    memset(&ncfg, 0, sizeof(ncfg));
    spk_log_init('D', SPK_LOG_INFO, 2);

    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "standalone") == 0)
            role = ROLE_STANDALONE;
        else if (strcmp(argv[1], "namesrv") == 0)
            role = ROLE_NAMESRV;
        else if (strcmp(argv[1], "broker") == 0)
            role = ROLE_BROKER;
        else {
            fprintf(stderr, "sprocketd: unknown role '%s'\n", argv[1]);
            usage(stderr);
            return 2;
        }
        argv[1] = argv[0];
        argv++;
        argc--;
    }
    ts[nts++] = (struct cfg_target){daemon_defs, sizeof(daemon_defs) / sizeof(daemon_defs[0]),
                                    &dcfg};
    if (role == ROLE_NAMESRV) {
        ts[nts++] = (struct cfg_target){ns_defs, 1, &ncfg};
    } else {
        ts[nts].defs = broker_config_table(&ts[nts].n);
        ts[nts++].obj = &bcfg;
        ts[nts].defs = store_config_table(&ts[nts].n);
        ts[nts++].obj = &scfg;
    }
    for (size_t k = 0; k < nts; k++)
        if (cfg_set_defaults(&ts[k]) != 0) {
            fprintf(stderr, "sprocketd: bad built-in defaults\n");
            goto out;
        }
    /* standalone registers with its own name server unless told otherwise */
    if (role == ROLE_STANDALONE)
        cfg_set(ts, nts, "namesrvAddr", "", NULL, 0);
    /* -c FILE first, so that --key=value overrides it */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            status = 0;
            goto out;
        }
        if (strcmp(argv[i], "--help-config") == 0) {
            help_config(ts, nts);
            status = 0;
            goto out;
        }
        if (strcmp(argv[i], "-c") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sprocketd: -c needs a file name\n");
                status = 2;
                goto out;
            }
            conf = argv[i + 1];
            i++;
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    argv[argc] = NULL;
    if (conf) {
        rc = cfg_load_file(ts, nts, conf, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "sprocketd: cannot use config file: %s\n", err);
            goto out;
        }
    }
    rc = cfg_parse_args(ts, nts, &argc, argv, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "sprocketd: %s\n", err);
        status = 2;
        goto out;
    }
    if (argc > 1) {
        fprintf(stderr, "sprocketd: unknown argument '%s' (settings are --key=value; "
                        "--help-config lists them)\n",
                argv[1]);
        status = 2;
        goto out;
    }
    if (role == ROLE_STANDALONE && (!bcfg.namesrvAddr || !*bcfg.namesrvAddr)) {
        char a[64];
        snprintf(a, sizeof(a), "127.0.0.1:%d", dcfg.namesrvListenPort);
        cfg_set(ts, nts, "namesrvAddr", a, NULL, 0);
    }
    if (spk_log_parse_level(dcfg.logLevel, &lvl) != 0) {
        fprintf(stderr, "sprocketd: logLevel '%s' is not debug, info, warn or error\n",
                dcfg.logLevel);
        status = 2;
        goto out;
    }
    /* STYLE.md: M master, S replica (slave), N name server */
    spk_log_init(role == ROLE_NAMESRV ? 'N' : bcfg.brokerId > 0 ? 'S' : 'M', lvl, 2);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    /* A file-size limit (ulimit -f) must make a write fail with EFBIG, a
     * refused send or save, not kill the broker. */
    sigaction(SIGXFSZ, &sa, NULL);

    rc = net_loop_create(&loop);
    if (rc) {
        fprintf(stderr, "sprocketd: cannot create the event loop: %s\n", spk_strerror(rc));
        goto out;
    }
    {
        struct net_limits lim = {
            .out_soft = (size_t)dcfg.serverOutputBufferSoftLimit,
            .out_hard = (size_t)dcfg.serverOutputBufferHardLimit,
            /* the name server keeps the loop's own idle default */
            .idle_ms = role != ROLE_NAMESRV ? (int64_t)bcfg.serverChannelMaxIdleTimeSeconds * 1000
                                            : 120000,
            .frame_max = PROTO_FRAME_MAX,
            .read_timeout_ms = dcfg.serverFrameReadTimeoutMillis,
            .stall_ms = dcfg.serverWriteStallTimeoutMillis,
        };
        if (lim.out_hard < lim.out_soft)
            lim.out_hard = lim.out_soft;
        net_loop_set_limits(loop, &lim);
    }
    if (role != ROLE_BROKER) {
        static const struct net_handler nh = {ns_on_frame, ns_on_close};
        int port = role == ROLE_NAMESRV ? ncfg.listenPort : dcfg.namesrvListenPort;
        rc = namesrv_create(&ns);
        if (rc == 0)
            rc = net_listen(loop, "0.0.0.0", port, &nh, ns, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "sprocketd: name server: %s\n", ns ? err : spk_strerror(rc));
            goto out;
        }
        net_timer_add(loop, 5000, 5000, ns_expire, ns);
    }
    if (role != ROLE_NAMESRV) {
        rc = broker_create(&bcfg, &scfg, loop, &br, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "sprocketd: broker: %s\n", err);
            goto out;
        }
        /* the broker owns the settings now */
        memset(&bcfg, 0, sizeof(bcfg));
        memset(&scfg, 0, sizeof(scfg));
        nts = 1;
        rc = broker_start(br);
        if (rc) {
            fprintf(stderr, "sprocketd: broker: cannot start: %s\n", spk_strerror(rc));
            goto out;
        }
    }
    the_loop = loop;
    the_broker = br;
    stop_wake = net_wakeup_add(loop, on_stop, loop);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (role == ROLE_NAMESRV)
        spk_log(SPK_LOG_INFO, "main", "ready: name server on port %d (%lld ms)", ncfg.listenPort,
                (long long)(spk_mono_ms() - t0));
    else
        spk_log(SPK_LOG_INFO, "main", "ready: %s%s (%lld ms)",
                role == ROLE_STANDALONE ? "standalone, name server and " : "", "broker",
                (long long)(spk_mono_ms() - t0));
    rc = net_loop_run(loop);
    if (rc)
        spk_log(SPK_LOG_ERROR, "main", "event loop failed: %s", spk_strerror(rc));
    net_loop_close_listeners(loop);
    if (br)
        broker_stop(br);
    net_loop_drain(loop, 2000);
    net_loop_close_all(loop);
    status = 0;
    if (br && broker_destroy(br) != 0)
        status = 1;
    br = NULL;
    spk_log(SPK_LOG_INFO, "main", "stopped%s", status ? " (the store did not close cleanly)" : "");
out:
    stop_wake = NULL;
    the_broker = NULL;
    the_loop = NULL;
    if (br) {
        net_loop_close_all(loop);
        broker_destroy(br);
    }
    if (loop)
        net_loop_destroy(loop);
    if (ns)
        namesrv_destroy(ns);
    for (size_t k = 0; k < nts; k++)
        cfg_free(&ts[k]);
    return status;
}
