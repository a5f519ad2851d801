#!/bin/sh
# t11_conns.sh - RELIABILITY.md T11: many connections.
#
#   sh tests/reliability/t11_conns.sh [BUILD_DIR]      (default build)
#
# With `ulimit -n` raised (65,536, or the hard limit), one cycle is:
#   1. idle:   T11_CONNS connections (default 1000; the long tier 10,000)
#              each send one request, get its reply and then stay open.
#              The broker's RssAnon growth divided by their number must be
#              <= 16 KiB per connection;
#   2. load:   with those held, one client that never reads its pull
#              replies (stalled) and T11_ACTIVE (default 20) producers
#              with one request in flight each: their p99 must stay within
#              2x the baseline (plus T11_P99_SLACK_US, default 5000 us, for
#              the shared 2-core box) and the event loop's iteration time
#              (GET_BROKER_RUNTIME_INFO histogram over the phase) p99 <=
#              50 ms, max <= 500 ms;
#   3. storm:  T11_STORM (default 2000) connections opened at once, each
#              answered, within T11_STORM_MS (default 5000 ms);
#   4. leave:  every client closes; the broker's socket descriptors return
#              to the baseline.
# Then EMFILE: a second broker started under `ulimit -n 256` gets 400
# connections. It must shed the excess (accept and close: connectionsShed
# > 0), log it at most twice, keep serving, and its sockets must return
# to the baseline after the clients leave.
#
# Environment: T11_CYCLES (default 1), T11_CONNS, T11_ACTIVE, T11_STORM,
# T11_STORM_MS, T11_P99_SLACK_US.
set -u
TID=t11
LABEL="T11 connections"
# shellcheck source=SCRIPTDIR/t8_t11_lib.sh
. "$(dirname "$0")/t8_t11_lib.sh"
lib_init "$@"
cycles=${T11_CYCLES:-1}
conns=${T11_CONNS:-1000}
active=${T11_ACTIVE:-20}
storm=${T11_STORM:-2000}
storm_ms=${T11_STORM_MS:-5000}
slack=${T11_P99_SLACK_US:-5000}

# ulimit -n and -H are not in POSIX, but dash, bash and busybox sh have them.
# shellcheck disable=SC3045
{
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    say "ulimit -n $(ulimit -n)"
}

# bench_active SECONDS OUT: T11_ACTIVE producers, one request in flight each.
bench_active() {
    "$sprocket" bench produce --addr="$baddr" --topic=HealthyTopic --queues=4 --conns="$active" \
        --inflight=1 --size=256 --duration="$1" >"$2" 2>&1
}

# wait_sockets N: until the broker has at most N sockets (10 s at most).
wait_sockets() {
    i=0
    while [ "$(sock_count)" -gt "$1" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    sock_count
}

# shellcheck disable=SC2119 # no extra settings
start_broker
for t in HealthyTopic SlowTopic; do
    "$sprocket" updateTopic -b "$baddr" -t $t -r 4 -w 4 >/dev/null 2>&1
done
"$sprocket" bench produce --addr="$baddr" --topic=SlowTopic --queues=4 --conns=2 --inflight=16 \
    --size=4096 --messages=300 >"$work/preload.out" 2>&1
"$netload" conns "$baddr" 200 --request >/dev/null 2>&1
socks0=$(sock_count)
bench_active 1 "$work/base.out"
p99_base=$(json_num "$work/base.out" p99_us)
say "baseline: $active producers p99 ${p99_base} us, $(json_num "$work/base.out" msgs_s) msgs/s; broker sockets $socks0"

c=0
while [ $c -lt "$cycles" ]; do
    c=$((c + 1))
    d=$work/c$c
    mkdir -p "$d"
    sleep 0.5
    rss0=$(rss_kb)
    hold=$d/hold
    "$netload" conns "$baddr" "$conns" --request --hold-file "$hold" >"$d/idle.out" 2>&1 &
    idle_pid=$!
    bg_pids=$idle_pid
    i=0
    until [ -f "$hold" ] || ! kill -0 "$idle_pid" 2>/dev/null || [ $i -ge 1200 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -f "$hold" ]
    check $? "cycle $c: $(grep 'conns:' "$d/idle.out" | head -n 1)"
    sleep 0.5
    rss1=$(rss_kb)
    per=$(((rss1 - rss0) * 1024 / conns))
    [ "$per" -le 16384 ]
    perf_check $? "cycle $c: $conns idle connections: RssAnon ${rss0} -> ${rss1} kB, $per bytes per connection (limit 16384)"

    "$netload" noread "$baddr" SlowTopic 200 >"$d/noread.out" 2>&1 &
    noread_pid=$!
    bg_pids="$idle_pid $noread_pid"
    sleep 0.5
    status "$d/s0"
    bench_active 2 "$d/active.out"
    bench_rc=$?
    status "$d/s1"
    p99=$(json_num "$d/active.out" p99_us)
    limit=$(awk -v b="$p99_base" -v s="$slack" 'BEGIN { printf "%d", 2 * b + s }')
    ok=$(awk -v a="$p99" -v l="$limit" 'BEGIN { print (a != "" && a <= l) ? 0 : 1 }')
    check "$bench_rc" "cycle $c: the active producers got no error (exit $bench_rc)"
    [ "$ok" -eq 0 ]
    perf_check $? "cycle $c: $active active producers beside $conns idle and 1 stalled: p99 ${p99} us (baseline ${p99_base}, limit $limit), $(json_num "$d/active.out" msgs_s) msgs/s, $(json_num "$d/active.out" errors) errors"
    lp50=$(hist_q "$d/s0" "$d/s1" 0.5)
    lp99=$(hist_q "$d/s0" "$d/s1" 0.99)
    lmax=$(hist_q "$d/s0" "$d/s1" max)
    [ "$lp99" -le 50000 ] && [ "$lmax" -le 500000 ]
    perf_check $? "cycle $c: event-loop iteration with 1 stalled + $conns idle: p50 <= $lp50 us, p99 <= $lp99 us, max <= $lmax us (limits 50 ms, 500 ms); connections $(key "$d/s1" connectionCount)"

    "$netload" conns "$baddr" "$storm" --request --within-ms "$storm_ms" >"$d/storm.out" 2>&1
    check $? "cycle $c: accept storm: $(grep 'conns:' "$d/storm.out" | head -n 1)"

    rm -f "$hold"
    wait "$idle_pid"
    kill -KILL "$noread_pid" 2>/dev/null
    wait "$noread_pid" 2>/dev/null
    bg_pids=""
    socks1=$(wait_sockets "$socks0")
    [ "$socks1" -le "$socks0" ]
    check $? "cycle $c: broker sockets back to the baseline after the clients left: $socks1 (baseline $socks0; all descriptors $(fd_count))"
done
broker_alive
check $? "the broker is alive"
stop_broker
san_check "$blog" "$work"/c*/*.out

# EMFILE: a broker with 256 descriptors.
work_main=$work
work=$work/emfile
mkdir -p "$work"
# shellcheck disable=SC2119 # no extra settings
broker_nofile=256 start_broker
blog=$work/broker.log
socks0=$(sock_count)
"$netload" conns "$baddr" 400 --request --hold-file "$work/hold" >"$work/emfile.out" 2>&1 &
em_pid=$!
i=0
until [ -f "$work/hold" ] || [ $i -ge 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
say "emfile: $(grep 'conns:' "$work/emfile.out" | head -n 1)"
rm -f "$work/hold"
wait "$em_pid"
status "$work/s1"
shed=$(key "$work/s1" connectionsShed)
[ "${shed:-0}" -gt 0 ]
check $? "emfile: the broker under ulimit -n 256 shed ${shed:-0} of 400 connections (closed at once)"
lines=$(grep -Ec ' W net: (closing new connections|accept: )' "$blog")
[ "$lines" -ge 1 ] && [ "$lines" -le 2 ]
check $? "emfile: logged $lines line(s) about it (1..2, not one per connection)"
"$netload" conns "$baddr" 20 --request >"$work/after.out" 2>&1
check $? "emfile: served again after the clients left: $(grep 'conns:' "$work/after.out")"
socks1=$(wait_sockets "$socks0")
[ "$socks1" -le "$socks0" ]
check $? "emfile: broker sockets back to the baseline: $socks1 (baseline $socks0)"
stop_broker
san_check "$blog" "$work"/*.out
work=$work_main
lib_finish "$cycles"
