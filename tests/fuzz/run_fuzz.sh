#!/bin/sh
# run_fuzz.sh - libFuzzer over every target in tests/fuzz (`make fuzz`).
#
#   sh tests/fuzz/run_fuzz.sh SECONDS
#
# Each target is built with clang, -fsanitize=fuzzer,address,undefined,
# together with the sources it exercises (so they are instrumented), and
# run for SECONDS on its committed corpus, which grows in place. A crash
# leaves its input in build/fuzz/ and fails the run.
set -u
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/build/fuzz
mkdir -p "$out"
command -v clang >/dev/null 2>&1 || { echo "run_fuzz: clang is needed" >&2; exit 2; }

srcs_remoting="src/proto/remoting.c src/common/errors.c"
srcs_record="src/store/record.c src/common/crc.c src/common/errors.c"
srcs_message="src/proto/message.c src/common/errors.c"
srcs_namesrv="src/namesrv/namesrv.c src/proto/remoting.c src/proto/reply.c src/common/fjson.c \
    src/common/sbuf.c src/common/log.c src/common/errors.c"
srcs_fjson="src/common/fjson.c src/common/sbuf.c src/common/log.c src/common/errors.c"
srcs_client="src/client/message.c src/client/instance.c src/client/conn.c src/net/client.c \
    src/proto/remoting.c src/proto/reply.c src/proto/message.c src/store/record.c src/common/crc.c \
    src/common/fjson.c src/common/sbuf.c src/common/log.c src/common/errors.c"
fail=0
for t in remoting record message namesrv fjson client; do
    eval srcs=\$srcs_$t
    (cd "$top" && clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -Iinclude \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        "tests/fuzz/fuzz_$t.c" $srcs -lcjson -ldeflate -lz -o "$out/fuzz_$t") || exit 2
    echo "=== fuzz_$t for ${secs}s"
    if ! (cd "$out" && ./fuzz_$t -max_total_time="$secs" -print_final_stats=1 \
        "$top/tests/fuzz/corpus/$t"); then
        echo "run_fuzz: fuzz_$t found a crash (input saved in $out)"
        fail=1
    fi
done
exit $fail
