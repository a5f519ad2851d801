#!/bin/sh
# run_fuzz.sh - libFuzzer over every target in tests/fuzz (`make fuzz`).
#
#   sh tests/fuzz/run_fuzz.sh SECONDS        (FUZZ_TARGETS="a b" for a subset)
#
# Each target is built with clang, -fsanitize=fuzzer,address,undefined,
# together with the sources it exercises (so they are instrumented), and
# run for SECONDS on its committed corpus, which grows in place. A crash
# leaves its input in build/fuzz/ and fails the run. The store targets
# (segment, cq) write temporary stores under $FUZZ_DIR (default /dev/shm)
# and run at tens of inputs per second, not thousands.
set -u
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/build/fuzz
mkdir -p "$out"
command -v clang >/dev/null 2>&1 || { echo "run_fuzz: clang is needed" >&2; exit 2; }

# srcs_for TARGET: the sources a target exercises (relative to the top).
srcs_for() {
    case $1 in
    remoting) echo "src/proto/remoting.c src/common/errors.c" ;;
    record) echo "src/store/record.c src/common/crc.c src/common/errors.c" ;;
    message) echo "src/proto/message.c src/common/errors.c" ;;
    namesrv) echo "src/namesrv/namesrv.c src/proto/remoting.c src/proto/reply.c src/common/fjson.c \
        src/common/sbuf.c src/common/log.c src/common/errors.c" ;;
    fjson) echo "src/common/fjson.c src/common/sbuf.c src/common/log.c src/common/errors.c" ;;
    client) echo "src/client/message.c src/client/instance.c src/client/conn.c src/net/client.c \
        src/proto/remoting.c src/proto/reply.c src/proto/message.c src/store/record.c \
        src/common/crc.c src/common/fjson.c src/common/sbuf.c src/common/log.c src/common/errors.c" ;;
    roundtrip) echo "src/store/record.c src/proto/message.c src/common/crc.c src/common/errors.c" ;;
    # The whole store: these two open real stores in a temporary directory.
    segment | cq) (cd "$top" && echo src/store/*.c src/common/*.c) ;;
    esac
}
# FUZZ_TARGETS picks a subset (default: every target).
targets=${FUZZ_TARGETS:-remoting record message namesrv fjson client roundtrip segment cq}
fail=0
for t in $targets; do
    srcs=$(srcs_for "$t")
    [ -n "$srcs" ] || { echo "run_fuzz: unknown target $t" >&2; exit 2; }
    # shellcheck disable=SC2086 # srcs is a list of words
    (cd "$top" && clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -Iinclude \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        "tests/fuzz/fuzz_$t.c" $srcs -lcjson -ldeflate -lz -pthread -o "$out/fuzz_$t") || exit 2
    echo "=== fuzz_$t for ${secs}s"
    if ! (cd "$out" && ./"fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
        "$top/tests/fuzz/corpus/$t"); then
        echo "run_fuzz: fuzz_$t found a crash (input saved in $out)"
        fail=1
    fi
done
exit $fail
