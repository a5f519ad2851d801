# shellcheck shell=sh
# t8_t11_lib.sh - shared by t8_frames.sh, t9_slow.sh, t10_sizes.sh and
# t11_conns.sh (sourced, POSIX sh): a standalone broker on random ports in
# a work directory, its RSS, descriptors and runtime counters, the event
# loop's iteration histogram, and the pass/fail bookkeeping behind the
# contract's last line
#
#   tN: <label>: <cycles> cycles, <violations> violations, <seconds> s
#
# The sourcing script sets TID (t8...) and LABEL, then calls lib_init
# "$@". Every check goes through check(), which counts a violation and
# keeps going; lib_finish prints the last line and exits 0 or 1. A missing
# binary or a broker that does not start exits 2.

build=${1:-build}
sprocketd=$build/sprocketd
sprocket=$build/sprocket
netload=$build/tests/netload
violations=0
broker_pid=""
bg_pids=""
keep=${KEEP:-0}
SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer'

lib_init() {
    for b in "$sprocketd" "$sprocket" "$netload"; do
        if [ ! -x "$b" ]; then
            echo "$TID: $b not found (make $b)" >&2
            exit 2
        fi
    done
    # Under ASan the broker runs several times slower and its allocator
    # keeps freed memory in quarantine, so time and memory figures mean
    # nothing there: perf_check reports them without counting them.
    san_build=0
    if grep -q __asan_init "$sprocketd" 2>/dev/null; then
        san_build=1
        say "sanitizer build: latency, throughput and memory figures are reported, not checked"
    fi
    work=$(mktemp -d "${TMPDIR:-/tmp}/spk-$TID-XXXXXX") || exit 2
    t_start=$(date +%s)
    trap lib_cleanup EXIT
    trap 'exit 130' INT TERM
}

# shellcheck disable=SC2317 # called by the EXIT trap
lib_cleanup() {
    for p in $bg_pids $broker_pid; do
        kill -CONT "$p" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$keep" = 1 ]; then
        echo "$TID: work directory kept in $work" >&2
    else
        rm -rf "$work"
    fi
}

say() {
    echo "$TID: $*"
}

# check CONDITION_STATUS MESSAGE: pass when the status is 0.
check() {
    if [ "$1" -eq 0 ]; then
        say "ok: $2"
    else
        violations=$((violations + 1))
        keep=1
        say "FAIL: $2"
    fi
}

# perf_check STATUS MESSAGE: check() for a time or memory figure, which
# only the optimised build is held to.
perf_check() {
    if [ "$san_build" = 1 ]; then
        say "info: $2 ($([ "$1" -eq 0 ] && echo within || echo OUTSIDE) the limit; not checked in a sanitizer build)"
    else
        check "$1" "$2"
    fi
}

# rand N: an integer in [0, N).
rand() {
    echo $(($(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1))
}

# start_broker [--key=value ...]: a standalone sprocketd on random ports,
# store and log in $work; sets broker_pid, baddr, blog. Exits 2 if it
# does not answer within 30 s (three tries on fresh ports).
start_broker() {
    tries=0
    while :; do
        tries=$((tries + 1))
        nport=$((20000 + $(rand 39000)))
        bport=$((nport + 1))
        baddr=127.0.0.1:$bport
        blog=$work/broker.log
        rm -rf "$work/store"
        # With broker_nofile set, the broker runs under that `ulimit -n`
        # (exec keeps the pid a child of this shell). Not POSIX, but in
        # dash, bash and busybox sh.
        # shellcheck disable=SC3045
        sh -c 'ulimit -n "$1" && shift && exec "$@"' sh "${broker_nofile:-$(ulimit -n)}" \
            "$sprocketd" standalone --listenPort="$bport" --namesrvListenPort="$nport" \
            --brokerIP1=127.0.0.1 --storePathRootDir="$work/store" "$@" >>"$blog" 2>&1 &
        broker_pid=$!
        i=0
        while [ $i -lt 300 ]; do
            kill -0 "$broker_pid" 2>/dev/null || break
            if "$sprocket" brokerStatus -b "$baddr" --timeout 1000 >/dev/null 2>&1; then
                return 0
            fi
            i=$((i + 1))
            sleep 0.1
        done
        kill -KILL "$broker_pid" 2>/dev/null
        wait "$broker_pid" 2>/dev/null
        broker_pid=""
        if [ "$tries" -ge 3 ]; then
            echo "$TID: the broker did not start:" >&2
            tail -n 20 "$blog" >&2
            exit 2
        fi
    done
}

# stop_broker: SIGTERM, which must end in exit status 0.
stop_broker() {
    kill -TERM "$broker_pid"
    wait "$broker_pid"
    rc=$?
    broker_pid=""
    check "$rc" "the broker exits 0 on SIGTERM (status $rc)"
}

broker_alive() {
    kill -0 "$broker_pid" 2>/dev/null
}

# rss_kb: the broker's anonymous resident memory (RssAnon): heap and
# stacks, what clients can make it allocate. The file-backed part (the
# mapped CommitLog and queues) grows with every message stored and is the
# page cache's, not a leak.
rss_kb() {
    sed -n 's/^RssAnon:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$broker_pid/status"
}

fd_count() {
    find "/proc/$broker_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# sock_count: the broker's socket descriptors (clients, listeners, the
# name-server client); the store's files may come and go on their own.
sock_count() {
    find "/proc/$broker_pid/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' 2>/dev/null | wc -l
}

# status FILE: brokerStatus into FILE ("key : value" lines).
status() {
    "$sprocket" brokerStatus -b "$baddr" --timeout 5000 >"$1" 2>&1
}

# key FILE KEY: one value from a status file.
key() {
    sed -n "s/^$2[[:space:]]*: *//p" "$1" | head -n 1
}

# hist_q BEFORE AFTER Q: the Q quantile (0..1) of the event-loop iteration
# times between two status snapshots, in microseconds (the bucket's upper
# bound), from the difference of their eventLoopIterationHistogram. Also
# "max" for Q: the upper bound of the highest bucket that grew.
hist_q() {
    {
        key "$1" eventLoopIterationHistogram | tr ' ' '\n' | sed 's/^/a /'
        key "$2" eventLoopIterationHistogram | tr ' ' '\n' | sed 's/^/b /'
    } | awk -v q="$3" '
        NF == 2 && index($2, ":") > 0 {
            split($2, kv, ":")
            if ($1 == "a") a[kv[1]] = kv[2]; else b[kv[1]] = kv[2]
        }
        END {
            n = 0
            for (k in b) { d[k] = b[k] - a[k]; n += d[k] }
            if (n == 0) { print 0; exit }
            m = 0
            for (k in d) if (d[k] > 0) { keys[m++] = k + 0 }
            # sort the bucket bounds (insertion sort: a few dozen keys)
            for (i = 1; i < m; i++) { v = keys[i]; j = i - 1
                while (j >= 0 && keys[j] > v) { keys[j + 1] = keys[j]; j-- }
                keys[j + 1] = v }
            if (q == "max") { print keys[m - 1]; exit }
            want = q * n; seen = 0
            for (i = 0; i < m; i++) { seen += d[keys[i] ""]; if (seen >= want) { print keys[i]; exit } }
            print keys[m - 1]
        }'
}

# json_num FILE KEY: a number from the last line (JSON) of a bench run.
json_num() {
    tail -n 1 "$1" | sed -n "s/.*\"$2\":\\([0-9.]*\\).*/\\1/p"
}

# bench SECONDS OUT [TOPIC]: the healthy producer, one request in flight,
# for SECONDS; its JSON report ends OUT.
bench() {
    "$sprocket" bench produce --addr="$baddr" --topic="${3:-HealthyTopic}" --queues=4 --conns=1 \
        --inflight=1 --size=256 --duration="$1" >"$2" 2>&1
}

# san_check FILE...: fails the run on any sanitizer report.
san_check() {
    for f in "$@"; do
        [ -f "$f" ] || continue
        if grep -Eq "$SAN_RE" "$f"; then
            grep -E -A 10 "$SAN_RE" "$f" | head -n 40
            check 1 "sanitizer report in $(basename "$f")"
        fi
    done
}

# lib_finish CYCLES: the contract's last line; exit 0 only without violations.
lib_finish() {
    secs=$(($(date +%s) - t_start))
    echo "$TID: $LABEL: $1 cycles, $violations violations, $secs s"
    [ "$violations" -eq 0 ] && exit 0
    exit 1
}
