/*
 * tool.h - what the files of the `sprocket` command-line tool share.
 *
 * Every .c file in tools/ is linked into one binary; sprocket.c owns main() and
 * hands each command its own argv, with argv[0] the command's name
 * ("store", "bench"), so a command parses exactly what follows its name.
 *
 * Exit codes, the same for every command (scripts rely on them):
 *   0  success, nothing wrong found
 *   1  the command ran and found problems, or the work it does failed
 *   2  usage error: the command line was wrong; nothing was done
 */
#ifndef SPK_TOOLS_TOOL_H
#define SPK_TOOLS_TOOL_H

#include <stdio.h>

#define TOOL_EXIT_OK 0
#define TOOL_EXIT_FAIL 1
#define TOOL_EXIT_USAGE 2

/* 1 when <arg> asks for help ("--help", "-h", "help"). */
int tool_is_help(const char *arg);

/* `sprocket store ...` (cmd_store.c). */
int cmd_store(int argc, char **argv);

/* `sprocket bench ...` (bench_store.c). */
int cmd_bench(int argc, char **argv);

/*
 * `sprocket bench produce` and `sprocket bench consume` (bench_broker.c):
 * load against a running broker. argv[0] is "produce" or "consume".
 */
int cmd_bench_produce(int argc, char **argv);
int cmd_bench_consume(int argc, char **argv);
/* `sprocket bench e2e` (bench_e2e.c): producer -> broker -> consumer latency. */
int cmd_bench_e2e(int argc, char **argv);

/* `sprocket produce` and `sprocket consume` (cmd_client.c), over libsprocket. */
int cmd_produce(int argc, char **argv);
int cmd_consume(int argc, char **argv);

/*
 * The operator commands (cmd_admin.c), mqadmin's names and flags:
 * `sprocket updateTopic ...`, `sprocket consumerProgress ...`. argv[0] is
 * the command's name; cmd_admin_has() says whether <name> is one of them,
 * cmd_admin_list() prints one line per command for `sprocket --help`.
 */
int cmd_admin_has(const char *name);
int cmd_admin(int argc, char **argv);
void cmd_admin_list(FILE *out);

#endif /* SPK_TOOLS_TOOL_H */
