#!/bin/sh
# bench.sh - the benchmarks at full size (`make bench`).
#
#   sh tests/bench.sh BUILD_DIR [extra `sprocket bench store` options]
#
# 1. The store: BUILD_DIR/sprocket bench store in ./data/bench with the
#    sizes the targets in PERF.md are stated for: 1 KiB messages, one async
#    writer, 4 sync writers x 256 in flight (1024), a 1 GiB recovery tail.
#    Extra arguments are passed on (later options win), e.g.
#    --messages=4000000 or --writeWithoutMmap=true.
# 2. The broker: BUILD_DIR/sprocketd on free loopback ports with a store in
#    ./data, driven by `sprocket bench produce|consume`:
#      a  produce, ASYNC_FLUSH, 1 KiB, 1 msg/request, 64 conns x 16 pipelined
#      b  produce, ASYNC_FLUSH, batches of 32 x 1 KiB
#      c  consume all of a+b back (after a restart), 32 per pull; then large
#         pulls (maxMsgNums 1024, 256 KiB); each with the default transfer,
#         with records always copied and always written from the mapping
#         (the broker runs with
#         maxTransferCountOnMessageInMemory=1024, since RocketMQ's default
#         of 32 messages per pull would cap any pull at 32)
#      d  produce, SYNC_FLUSH (broker restarted on a fresh store), 64 x 16
#    next to Redis 7 XADD of 1 KiB (PERF.md section 3: appendfsync everysec
#    and always, redis-benchmark -c 50 -P 16), installed by
#    scripts/bootstrap_bench.sh; without it the comparison is skipped.
#
# Prints each figure with its peer, the ratio and the PERF.md target (with
# the request latency percentiles of the produce runs: p50, p99, p99.9 and
# p99.99), and ends with one line of JSON holding every figure (the store's
# JSON under "store"). Every process started here is stopped and every directory
# created here is removed, whatever the outcome.
#
# SPK_BENCH_ONLY=store or SPK_BENCH_ONLY=broker runs one part only.
set -u

if [ $# -lt 1 ]; then
    echo "usage: sh tests/bench.sh BUILD_DIR [options]" >&2
    exit 2
fi
build=$1
shift
bin=$build/sprocket
daemon=$build/sprocketd
only=${SPK_BENCH_ONLY:-}
if [ ! -x "$bin" ]; then
    echo "bench.sh: $bin not found; build it first (make BUILD=$build)" >&2
    exit 2
fi
if [ "$only" != store ] && [ ! -x "$daemon" ]; then
    echo "bench.sh: $daemon not found; build it first (make BUILD=$build)" >&2
    exit 2
fi

dir=./data/bench
work=""     # temp directory of the broker section (stores, logs, Redis)
pids=""     # every server started here, stopped by cleanup()

# Stops <pid> gracefully (TERM, up to 10 s), then for good (KILL).
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

cleanup() {
    for p in $pids; do
        stop_pid "$p"
    done
    pids=""
    rm -rf "$dir"
    [ -n "$work" ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

store_rc=0
store_json=null
if [ "$only" != broker ]; then
    mkdir -p ./data
    store_out=$(mktemp ./data/bench-store-out.XXXXXX)
    # POSIX sh has no pipefail: the exit status travels through a file.
    {
        "$bin" bench store --dir="$dir" --messages=2000000 --size=1024 \
            --async-threads=1 --sync-threads=4 --inflight=256 \
            --segment=1073741824 --recovery=1073741824 "$@"
        echo $? >"$store_out.rc"
    } | tee "$store_out"
    store_rc=$(cat "$store_out.rc" 2>/dev/null || echo 1)
    last=$(tail -n 1 "$store_out")
    rm -f "$store_out" "$store_out.rc"
    case $last in
    "{"*) store_json=$last ;;
    esac
    rm -rf "$dir"
fi
if [ "$only" = store ]; then
    exit "$store_rc"
fi

# The broker section ------------------------------------------------------

mkdir -p ./data
work=$(mktemp -d ./data/bench-broker.XXXXXX) || exit 1

# jget JSON KEY: the value of a top-level number/boolean field of a one-line object.
jget() {
    printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" | head -n 1
}

# A TCP port nobody listens on, with <span> free ports from it.
free_port() {
    span=$1
    while :; do
        p=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
        p=$((20000 + p % 40000))
        busy=0
        k=0
        while [ $k -lt "$span" ]; do
            if ss -Htln "sport = :$((p + k))" 2>/dev/null | grep -q .; then
                busy=1
            fi
            k=$((k + 1))
        done
        [ $busy -eq 0 ] && { echo "$p"; return; }
    done
}

# wait_listen PORT PID: until PORT accepts (5 s) while PID lives.
wait_listen() {
    i=0
    while [ $i -lt 100 ]; do
        kill -0 "$2" 2>/dev/null || return 1
        ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

broker_pid=""
broker_port=""
# start_broker NAME FLUSH_TYPE [ARGS...]: the store under $work/NAME (fresh
# the first time, reopened by a second start with the same NAME).
start_broker() {
    sb_name=$1
    sb_flush=$2
    shift 2
    broker_port=$(free_port 2)        # listenPort and the HA port after it
    ns_port=$(free_port 1)
    "$daemon" standalone --storePathRootDir="$work/$sb_name" --listenPort="$broker_port" \
        --namesrvListenPort="$ns_port" --flushDiskType="$sb_flush" \
        --maxTransferCountOnMessageInMemory=1024 --logLevel=warn "$@" \
        >>"$work/$sb_name.log" 2>&1 &
    broker_pid=$!
    pids="$pids $broker_pid"
    if ! wait_listen "$broker_port" "$broker_pid"; then
        echo "bench.sh: sprocketd ($sb_flush) did not start; its log:" >&2
        cat "$work/$sb_name.log" >&2
        return 1
    fi
}

stop_broker() {
    [ -n "$broker_pid" ] || return 0
    stop_pid "$broker_pid"
    new=""
    for p in $pids; do
        [ "$p" = "$broker_pid" ] || new="$new $p"
    done
    pids=$new
    broker_pid=""
}

# run NAME ARGS...: `sprocket bench ARGS` with a time limit; its JSON line in $NAME.
broker_failed=0
run() {
    name=$1
    shift
    out=$(timeout 120 "$bin" bench "$@" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed '$d' | sed 's/^/    /'
    last=$(printf '%s\n' "$out" | tail -n 1)
    case $last in
    "{"*) eval "$name=\$last" ;;
    *)
        printf '    %s\n' "$last"
        eval "$name=''"
        ;;
    esac
    if [ $rc -ne 0 ]; then
        echo "    (exit status $rc)"
        broker_failed=1
    fi
}

p_async=""; p_batch=""; p_sync=""; p_e2e=""; p_e2e_sync=""
c_warm=""; c_32d=""; c_larged=""; c_32h=""; c_largeh=""; c_32z=""; c_largez=""
topic=BenchTopic
addr=""

echo
echo "== broker: ASYNC_FLUSH =="
if start_broker async ASYNC_FLUSH; then
    addr=127.0.0.1:$broker_port
    echo "  a) produce 1 KiB, 1 msg/request, 64 connections x 16 in flight"
    run p_async produce --addr="$addr" --topic=$topic --create-topic --queues=8 \
        --conns=64 --inflight=16 --size=1024 --batch=1 --messages=1000000 --seconds=10
    echo "  b) produce 1 KiB in batches of 32, 16 connections x 4 in flight"
    run p_batch produce --addr="$addr" --topic=$topic --queues=8 \
        --conns=16 --inflight=4 --size=1024 --batch=32 --messages=4000000 --seconds=8
    echo "  e) end to end (send -> long-polling consumer), 1 KiB at 10,000 msgs/s"
    run p_e2e e2e --addr="$addr" --topic=BenchE2E --create-topic --rate=10000 --duration=5
    stop_broker
    # Reads run on a restarted broker, so none competes with the writeback
    # of what a and b wrote; three ways of sending the records, the
    # measurement behind the default (PERF.md 2.8): the default (copied
    # below zeroCopyMinBytes, written from the mapping above), always
    # copied (transferMsgByHeap=true), always from the mapping.
    for v in d h z; do
        case $v in
        d) vargs=""; vname="default" ;;
        h) vargs="--transferMsgByHeap=true"; vname="always copied" ;;
        z) vargs="--zeroCopyMinBytes=0"; vname="always from the mapping" ;;
        esac
        # shellcheck disable=SC2086 # vargs is empty or one word
        start_broker async ASYNC_FLUSH $vargs || { broker_failed=1; continue; }
        addr=127.0.0.1:$broker_port
        if [ $v = d ]; then
            # The first reads after the produce phases are slower whatever
            # the transfer (a first pass over fresh data); not reported.
            echo "  c) warm-up pass (not reported)"
            run c_warm consume --addr="$addr" --topic=$topic --queues=8 --conns=2 \
                --batch=1024 --max-bytes=262144 --group=BenchWarmUp --seconds=30
        fi
        echo "  c) consume everything back, 32 per pull ($vname)"
        run "c_32$v" consume --addr="$addr" --topic=$topic --queues=8 --conns=2 --batch=32 \
            --group="BenchConsumer32$v" --seconds=30
        echo "  c) consume everything back, large pulls, maxMsgNums 1024, maxMsgBytes 262144 ($vname)"
        run "c_large$v" consume --addr="$addr" --topic=$topic --queues=8 --conns=2 --batch=1024 \
            --max-bytes=262144 --group="BenchConsumerLarge$v" --seconds=30
        stop_broker
    done
else
    broker_failed=1
fi
rm -rf "$work/async"

# Redis 7 next to it (PERF.md section 3) ------------------------------------

redis_ok=0
r_everysec=""; r_always=""
# redis_run MODE: sets r_MODE to "rps p50_ms p99_ms" (empty when it failed).
redis_run() {
    mode=$1
    rport=$(free_port 1)
    rdir="$work/redis-$mode"
    mkdir -p "$rdir"
    redis-server --port "$rport" --bind 127.0.0.1 --dir "$rdir" --appendonly yes \
        --appendfsync "$mode" --save '' --auto-aof-rewrite-percentage 0 \
        --daemonize no >"$rdir.log" 2>&1 &
    rpid=$!
    pids="$pids $rpid"
    res=""
    if wait_listen "$rport" "$rpid"; then
        csv=$(timeout 120 redis-benchmark -p "$rport" -c 50 -P 16 -n 200000 --precision 3 --csv \
            -x XADD s '*' f <"$work/v1k" 2>/dev/null | tail -n 1)
        # "test","rps","avg","min","p50","p95","p99","max": the last seven fields.
        res=$(printf '%s\n' "$csv" | tr -d '"' |
            awk -F, 'NF >= 8 { print $(NF-6), $(NF-3), $(NF-1) }')
        echo "  redis-server appendfsync $mode: XADD 1 KiB, 50 clients x P16:" \
            "${res:-failed}" "(rps p50_ms p99_ms)"
    else
        echo "  redis-server ($mode) did not start" >&2
    fi
    stop_pid "$rpid"
    new=""
    for p in $pids; do
        [ "$p" = "$rpid" ] || new="$new $p"
    done
    pids=$new
    rm -rf "$rdir"
    eval "r_$mode=\$res"
}

echo
echo "== Redis 7 XADD (PERF.md section 3) =="
if sh scripts/bootstrap_bench.sh && command -v redis-server >/dev/null 2>&1 &&
    command -v redis-benchmark >/dev/null 2>&1; then
    redis_ok=1
    head -c 1024 /dev/zero | tr '\0' 'v' >"$work/v1k"
    redis-server --version | sed 's/^/  /'
    redis_run everysec
    redis_run always
else
    echo "  redis-server/redis-benchmark not available: comparison skipped"
fi

echo
echo "== broker: SYNC_FLUSH =="
if start_broker sync SYNC_FLUSH; then
    addr=127.0.0.1:$broker_port
    echo "  d) produce 1 KiB, 1 msg/request, 64 connections x 16 in flight (1024)"
    echo "     and beside it f) end to end at 1,000 msgs/s (the latency under that load)"
    timeout 120 "$bin" bench e2e --addr="$addr" --topic=BenchE2E --create-topic --rate=1000 \
        --duration=6 >"$work/e2e-sync.out" 2>&1 &
    e2e_pid=$!
    run p_sync produce --addr="$addr" --topic=$topic --create-topic --queues=8 \
        --conns=64 --inflight=16 --size=1024 --batch=1 --messages=1000000 --seconds=10
    wait "$e2e_pid" || broker_failed=1
    sed '$d' "$work/e2e-sync.out" | sed 's/^/    /'
    last=$(tail -n 1 "$work/e2e-sync.out")
    case $last in "{"*) p_e2e_sync=$last ;; *) printf '    %s\n' "$last" ;; esac
    stop_broker
else
    broker_failed=1
fi
rm -rf "$work/sync"

# Report ------------------------------------------------------------------

# num JSON KEY: the field or "null".
num() {
    v=$(jget "$1" "$2")
    echo "${v:-null}"
}
rfield() { # rfield "rps p50 p99" N
    [ -n "$1" ] && echo "$1" | awk -v n="$2" '{ print $n }' || echo null
}

a_msgs=$(num "$p_async" msgs_s); a_p50=$(num "$p_async" p50_us); a_p99=$(num "$p_async" p99_us)
a_p999=$(num "$p_async" p999_us); a_p9999=$(num "$p_async" p9999_us); a_err=$(num "$p_async" errors)
b_msgs=$(num "$p_batch" msgs_s); b_p50=$(num "$p_batch" p50_us); b_p99=$(num "$p_batch" p99_us)
b_p999=$(num "$p_batch" p999_us); b_p9999=$(num "$p_batch" p9999_us); b_err=$(num "$p_batch" errors)
c_msgs=$(num "$c_32d" msgs_s); c_n=$(num "$c_32d" messages); c_err=$(num "$c_32d" errors)
l_msgs=$(num "$c_larged" msgs_s); l_n=$(num "$c_larged" messages); l_err=$(num "$c_larged" errors)
ch_msgs=$(num "$c_32h" msgs_s); lh_msgs=$(num "$c_largeh" msgs_s)
cz_msgs=$(num "$c_32z" msgs_s); lz_msgs=$(num "$c_largez" msgs_s)
d_msgs=$(num "$p_sync" msgs_s); d_p50=$(num "$p_sync" p50_us); d_p99=$(num "$p_sync" p99_us)
d_p999=$(num "$p_sync" p999_us); d_p9999=$(num "$p_sync" p9999_us)
d_err=$(num "$p_sync" errors); d_fto=$(num "$p_sync" flush_timeouts)
e_p50=$(num "$p_e2e" p50_us); e_p99=$(num "$p_e2e" p99_us); e_p999=$(num "$p_e2e" p999_us)
f_p50=$(num "$p_e2e_sync" p50_us); f_p99=$(num "$p_e2e_sync" p99_us)
f_p999=$(num "$p_e2e_sync" p999_us)
re_rps=$(rfield "$r_everysec" 1); re_p50=$(rfield "$r_everysec" 2); re_p99=$(rfield "$r_everysec" 3)
ra_rps=$(rfield "$r_always" 1); ra_p50=$(rfield "$r_always" 2); ra_p99=$(rfield "$r_always" 3)

# ratio A B: A/B with 2 decimals, or null.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "null" || b == "null" || b + 0 <= 0) print "null"; else printf "%.2f\n", a / b }'
}
# ge A B: true/false/null for A >= B.
ge() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "null" || b == "null") print "null"; else print (a + 0 >= b + 0) ? "true" : "false" }'
}
# both X Y: true only when both are true, null when either is null.
both() {
    if [ "$1" = null ] || [ "$2" = null ]; then echo null
    elif [ "$1" = true ] && [ "$2" = true ]; then echo true
    else echo false; fi
}
mark() {
    case $1 in true) echo "met" ;; false) echo "NOT MET" ;; *) echo "not evaluated" ;; esac
}
fmt() { # thousands separators
    [ "$1" = null ] && { echo "-"; return; }
    printf '%s\n' "$1" | awk '{ s = sprintf("%.0f", $1); o = "";
        while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }
        print s o }'
}

a_vs_r=$(ratio "$a_msgs" "$re_rps")
d_vs_r=$(ratio "$d_msgs" "$ra_rps")
t_async=$(both "$(ge "$a_msgs" 200000)" "$(ge "$a_vs_r" 1.5)")
[ "$a_vs_r" = null ] && [ "$a_msgs" != null ] && t_async=$(ge "$a_msgs" 200000)
t_batch=$(ge "$b_msgs" 700000)
t_sync=$(both "$(ge "$d_msgs" 250000)" "$(ge "$d_vs_r" 3)")
[ "$d_vs_r" = null ] && [ "$d_msgs" != null ] && t_sync=$(ge "$d_msgs" 250000)
t_consume=$(ge "$c_msgs" 600000)
t_large=$(ge "$l_msgs" 2000000)
le() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "null" || b == "null") print "null"; else print (a + 0 <= b + 0) ? "true" : "false" }'
}
t_e2e=$(both "$(le "$e_p50" 60)" "$(le "$e_p99" 200)")
t_e2e_sync=$(le "$f_p50" 1500)

echo
echo "== broker figures (1 KiB messages; server and load share the 2 vCPUs) =="
# row LABEL MSGS_S P50 P99 P99.9 P99.99 REDIS RATIO: a produce row, with its
# request latency (queued -> reply) percentiles in ms.
row() {
    printf '%-46s %12s %9s %9s %9s %9s %12s %7s\n' "$@"
}
row "" "msgs/s" "p50 ms" "p99 ms" "p99.9 ms" "p99.99 ms" "Redis /s" "ratio"
ms() { [ "$1" = null ] && echo "-" || awk -v v="$1" 'BEGIN { printf "%.2f\n", v / 1000 }'; }
row "a async, 1/request, 64 x 16" "$(fmt "$a_msgs")" "$(ms "$a_p50")" "$(ms "$a_p99")" \
    "$(ms "$a_p999")" "$(ms "$a_p9999")" "$(fmt "$re_rps")" "${a_vs_r#null}"
row "b async, batch 32, 16 x 4" "$(fmt "$b_msgs")" "$(ms "$b_p50")" "$(ms "$b_p99")" \
    "$(ms "$b_p999")" "$(ms "$b_p9999")" "" ""
printf '%-46s %12s\n' "c consume, 32 per pull ($(fmt "$c_n") msgs)" "$(fmt "$c_msgs")"
printf '%-46s %12s\n' "c consume, large pulls ($(fmt "$l_n") msgs)" "$(fmt "$l_msgs")"
printf '%-46s %12s   mapping / copied: %s\n' "c' consume 32/pull: copied | from the mapping" \
    "$(fmt "$ch_msgs") | $(fmt "$cz_msgs")" "$(ratio "$cz_msgs" "$ch_msgs")"
printf '%-46s %12s   mapping / copied: %s\n' "c' large pulls: copied | from the mapping" \
    "$(fmt "$lh_msgs") | $(fmt "$lz_msgs")" "$(ratio "$lz_msgs" "$lh_msgs")"
row "d sync, 1/request, 64 x 16" "$(fmt "$d_msgs")" "$(ms "$d_p50")" "$(ms "$d_p99")" \
    "$(ms "$d_p999")" "$(ms "$d_p9999")" "$(fmt "$ra_rps")" "${d_vs_r#null}"
row "e end to end, async, 10,000 msgs/s" "" "$(ms "$e_p50")" "$(ms "$e_p99")" \
    "$(ms "$e_p999")" "" "" ""
row "f end to end, sync, 1,000/s beside d" "" "$(ms "$f_p50")" "$(ms "$f_p99")" \
    "$(ms "$f_p999")" "" "" ""
if [ $redis_ok -eq 1 ]; then
    echo "Redis: XADD s * f <1 KiB>, redis-benchmark -c 50 -P 16 -n 200000; everysec for a," \
        "always for d (p50/p99 ms: everysec $re_p50/$re_p99, always $ra_p50/$ra_p99)"
fi
echo "errors: a $a_err, b $b_err, c $c_err / $l_err, d $d_err (FLUSH_DISK_TIMEOUT $d_fto)"
echo
echo "targets (PERF.md):"
echo "  async 1/request: >= 200,000 msgs/s and >= 1.5x Redis everysec   $(mark "$t_async")"
echo "  batch 32:        >= 700,000 msgs/s                              $(mark "$t_batch")"
echo "  sync:            >= 250,000 msgs/s and >= 3x Redis always       $(mark "$t_sync")"
echo "  consume 32/pull: >= 600,000 msgs/s                              $(mark "$t_consume")"
echo "  large pulls:     >= 2,000,000 msgs/s                            $(mark "$t_large")"
echo "  end to end async, 10 k/s: p50 <= 60 us, p99 <= 200 us           $(mark "$t_e2e")"
echo "  end to end sync, under load: p50 <= 1.5 ms                      $(mark "$t_e2e_sync")"

echo
printf '{"bench":"all","store":%s,"broker":{"async_msgs_s":%s,"async_p50_us":%s,"async_p99_us":%s,' \
    "$store_json" "$a_msgs" "$a_p50" "$a_p99"
printf '"async_p999_us":%s,"async_p9999_us":%s,' "$a_p999" "$a_p9999"
printf '"async_errors":%s,"batch_msgs_s":%s,"batch_p50_us":%s,"batch_p99_us":%s,"batch_errors":%s,' \
    "$a_err" "$b_msgs" "$b_p50" "$b_p99" "$b_err"
printf '"batch_p999_us":%s,"batch_p9999_us":%s,' "$b_p999" "$b_p9999"
printf '"consume_msgs_s":%s,"consume_messages":%s,"consume_errors":%s,' "$c_msgs" "$c_n" "$c_err"
printf '"consume_copy_msgs_s":%s,"large_pull_copy_msgs_s":%s,' "$ch_msgs" "$lh_msgs"
printf '"consume_mapping_msgs_s":%s,"large_pull_mapping_msgs_s":%s,' "$cz_msgs" "$lz_msgs"
printf '"large_pull_msgs_s":%s,"large_pull_messages":%s,"large_pull_errors":%s,' \
    "$l_msgs" "$l_n" "$l_err"
printf '"sync_msgs_s":%s,"sync_p50_us":%s,"sync_p99_us":%s,"sync_errors":%s,"sync_flush_timeouts":%s,' \
    "$d_msgs" "$d_p50" "$d_p99" "$d_err" "$d_fto"
printf '"sync_p999_us":%s,"sync_p9999_us":%s,' "$d_p999" "$d_p9999"
printf '"redis_everysec_rps":%s,"redis_everysec_p50_ms":%s,"redis_everysec_p99_ms":%s,' \
    "$re_rps" "$re_p50" "$re_p99"
printf '"redis_always_rps":%s,"redis_always_p50_ms":%s,"redis_always_p99_ms":%s,' \
    "$ra_rps" "$ra_p50" "$ra_p99"
printf '"async_vs_redis":%s,"sync_vs_redis":%s,' "$a_vs_r" "$d_vs_r"
printf '"async_target_met":%s,"batch_target_met":%s,"sync_target_met":%s,' \
    "$t_async" "$t_batch" "$t_sync"
printf '"e2e_async_p50_us":%s,"e2e_async_p99_us":%s,"e2e_async_p999_us":%s,' \
    "$e_p50" "$e_p99" "$e_p999"
printf '"e2e_sync_p50_us":%s,"e2e_sync_p99_us":%s,"e2e_sync_p999_us":%s,' \
    "$f_p50" "$f_p99" "$f_p999"
printf '"e2e_async_target_met":%s,"e2e_sync_target_met":%s,' "$t_e2e" "$t_e2e_sync"
printf '"consume_target_met":%s,"large_pull_target_met":%s}}\n' "$t_consume" "$t_large"

[ $store_rc -ne 0 ] && exit $store_rc
[ $broker_failed -ne 0 ] && exit 1
exit 0
