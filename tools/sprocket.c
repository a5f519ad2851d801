/*
 * sprocket.c - main() of the `sprocket` command-line tool: picks the
 * command and hands it the rest of the command line (see tool.h for the
 * conventions every command follows).
 */
#include "tool.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

static void
usage(FILE *out)
{
    fputs("usage: sprocket <command> [arguments]\n"
          "\n"
          "commands:\n"
          "  store dump DIR    print the records, queue units, index and checkpoint of a\n"
          "                    stopped store (or of a copy of one)\n"
          "  store check DIR   verify every record, queue unit and index entry of a stopped\n"
          "                    store; exit 1 when anything is inconsistent\n"
          "  bench store       measure the message store against same-run baselines\n"
          "  bench produce     send messages to a running broker (raw remoting, pipelined)\n"
          "  bench consume     pull a topic back from a running broker\n"
          "  bench e2e         producer -> broker -> consumer latency at a fixed rate\n"
          "  produce           send messages (arguments or stdin lines) to a topic\n"
          "  consume           consume a topic and print its messages\n"
          "\n"
          "operator commands (RocketMQ mqadmin's, against running name servers and brokers):\n",
          out);
    cmd_admin_list(out);
    fputs("\n"
          "'sprocket <command> --help' describes a command.\n"
          "exit codes: 0 ok, 1 problems found (or the work failed), 2 usage error\n",
          out);
}

int
tool_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

/*
 * `sprocket bench ...`: the broker load generators live in bench_broker.c;
 * everything else (store, help, errors) stays with cmd_bench().
 */
static int
bench(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "produce") == 0)
        return cmd_bench_produce(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "consume") == 0)
        return cmd_bench_consume(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "e2e") == 0)
        return cmd_bench_e2e(argc - 1, argv + 1);
    return cmd_bench(argc, argv);
}

int
main(int argc, char **argv)
{
    /* The store and tools log little; warnings (config) go to stderr. */
    spk_log_init('T', SPK_LOG_WARN, 2);

    if (argc < 2) {
        usage(stderr);
        return TOOL_EXIT_USAGE;
    }
    if (tool_is_help(argv[1])) {
        usage(stdout);
        return TOOL_EXIT_OK;
    }
    if (strcmp(argv[1], "store") == 0)
        return cmd_store(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0)
        return bench(argc - 1, argv + 1);
    if (strcmp(argv[1], "produce") == 0)
        return cmd_produce(argc - 1, argv + 1);
    if (strcmp(argv[1], "consume") == 0)
        return cmd_consume(argc - 1, argv + 1);
    if (cmd_admin_has(argv[1]))
        return cmd_admin(argc - 1, argv + 1);
    fprintf(stderr, "sprocket: unknown command '%s'; 'sprocket --help' lists the commands\n",
            argv[1]);
    return TOOL_EXIT_USAGE;
}
