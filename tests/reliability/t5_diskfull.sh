#!/bin/sh
# t5_diskfull.sh - RELIABILITY.md T5: a broker whose disk fills up.
#
#   sh tests/reliability/t5_diskfull.sh [BUILD_DIR]      (default build)
#
# Needs root: the store lives on a tmpfs of its own (mount -t tmpfs),
# unmounted on exit. A standalone sprocketd with 8 MiB CommitLog files and
# a small index, retention off (cleanFileForciblyEnable=false), and a
# topic of 4 queues. Then T5_ROUNDS times:
#   1. fill: `driver send` (4 producers, 8-60 KiB bodies, history kept;
#      one driver runs through all rounds, retrying refused sends) until
#      the broker refuses sends because the next CommitLog file cannot
#      be preallocated; the broker must not die (no SIGBUS);
#   2. one more send must be refused with code 14 (SERVICE_NOT_AVAILABLE,
#      what Java producers retry elsewhere) and a remark saying "disk
#      full", and the broker must say so in its log;
#   3. a filler file takes every byte left: now metadata writes fail too.
#      An updateSubGroup and a consumer's offset commits must not damage
#      consumerOffset.json or subscriptionGroup.json (`metacrash verify`),
#      and a new consumer group must read existing messages (pulls work
#      while full);
#   4. restart while full (SIGKILL in odd rounds, SIGTERM in even ones,
#      which must exit 0): the broker recovers and serves pulls again;
#   5. space comes back (the filler is removed and the mount grown with
#      `mount -o remount,size=...`): sends must succeed again within 15 s
#      without a restart, and the log must say that space is back.
# After the rounds, `driver drain` reads every queue from offset 0 and
# `qcheck` checks the whole history: nothing acknowledged was lost, no
# message appears twice, none of the refused sends appears. Last, space
# is returned by retention instead: the broker restarts with
# cleanFileForciblyEnable=true (a store setting: not changeable at run
# time), the disk is filled to the last byte, and sends must resume
# (old CommitLog files deleted) without a restart. The broker is
# stopped with SIGTERM (exit 0) and `sprocket store check` verifies the
# store. Any sanitizer report in any log fails the run.
#
# Environment:
#   T5_ROUNDS  fill/full/restart/grow rounds (default 1: the quick tier)
#   T5_MB      initial tmpfs size in MiB (default 40)
#   KEEP=1     keep the work directory even when the run passes
#
# Last line: "t5: T5 disk full: <rounds + 1> cycles (the retention phase
# counts as one), <violations> violations,
# <seconds> s"; exit 0 when everything passed, 1 on a failure, 2 on a
# setup error (not root, no tmpfs, a missing binary).
set -u
export LC_ALL=C

build=${1:-build}
rounds=${T5_ROUNDS:-1}
size_mb=${T5_MB:-40}
label="T5 disk full"
topic=T5Topic
# Single sends from `sprocket produce` go to their own topic: the history
# checker would take them for damaged driver messages.
probe_topic=T5Probe
seg=8388608
index_args="--maxHashSlotNum=1000 --maxIndexNum=4000"

sprocketd=$build/sprocketd
sprocket=$build/sprocket
driver=$build/tests/driver
qcheck=$build/tests/qcheck
metacrash=$build/tests/metacrash

t0=$(date +%s)
violations=0
done_rounds=0
round=0

finish() {
    echo "t5: $label: $done_rounds cycles, $violations violations, $(($(date +%s) - t0)) s"
    exit "$1"
}

for b in "$sprocketd" "$sprocket" "$driver" "$qcheck" "$metacrash"; do
    if [ ! -x "$b" ]; then
        echo "t5: $b not found (make $b)" >&2
        finish 2
    fi
done
if [ "$(id -u)" != 0 ]; then
    echo "t5: needs root (mount -t tmpfs)" >&2
    finish 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/spk-t5-XXXXXX") || finish 2
mnt=$work/mnt
store=$mnt/store
conf=$store/config
hist=$work/history.jsonl
keep=${KEEP:-0}
broker_pid=""
driver_pid=""
mounted=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    for p in $driver_pid $broker_pid; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$mounted" = 1 ]; then
        [ "$keep" = 1 ] && cp -a "$store" "$work/store.kept" 2>/dev/null
        umount "$mnt" || umount -l "$mnt"
    fi
    if [ "$keep" = 1 ]; then
        echo "t5: work directory kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rand() {
    echo $(($(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1))
}

SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer'

fail() {
    echo "t5: FAIL (round $round): $*"
    violations=$((violations + 1))
    if [ -f "$work/broker.log" ]; then
        echo "---- last lines of $work/broker.log"
        tail -n 15 "$work/broker.log"
    fi
    df -k "$mnt" 2>/dev/null | tail -n 1
    keep=1
    finish 1
}

san_check() {
    for f in "$@"; do
        if [ -f "$f" ] && grep -Eq "$SAN_RE" "$f"; then
            grep -E -A 10 "$SAN_RE" "$f" | head -n 30
            fail "sanitizer report in $f"
        fi
    done
}

# start_broker [ARGS...]: extra sprocketd arguments after the usual ones.
start_broker() {
    # shellcheck disable=SC2086 # index_args is a list of words
    "$sprocketd" standalone --listenPort="$bport" --namesrvListenPort="$nport" \
        --namesrvAddr="$ns" --brokerIP1=127.0.0.1 --storePathRootDir="$store" \
        --mappedFileSizeCommitLog=$seg --maxMessageSize=65536 \
        --mappedFileSizeConsumeQueue=200000 $index_args \
        --cleanResourceInterval=500 --cleanFileForciblyEnable=false \
        --diskMaxUsedSpaceRatio=95 --flushConsumerOffsetInterval=500 "$@" \
        >>"$work/broker.log" 2>&1 &
    broker_pid=$!
    echo "$(date +%T) --- started pid $broker_pid" >>"$work/broker.log"
}

# wait_serving TIMEOUT_S [TOPIC]
wait_serving() {
    ws_end=$(($(date +%s) + $1))
    ws_topic=${2:-}
    while :; do
        kill -0 "$broker_pid" 2>/dev/null || return 1
        if "$sprocket" brokerStatus -b "$baddr" --timeout 1000 >/dev/null 2>&1 &&
            { [ -z "$ws_topic" ] ||
                "$sprocket" topicRoute -n "$ns" -t "$ws_topic" --timeout 1000 >/dev/null 2>&1; }; then
            return 0
        fi
        [ "$(date +%s)" -ge "$ws_end" ] && return 1
        sleep 0.05
    done
}

alive() {
    kill -0 "$broker_pid" 2>/dev/null || {
        wait "$broker_pid"
        fail "the broker died (status $?): $1"
    }
}

# verify_meta WHAT: the metadata files as they are now must be whole.
verify_meta() {
    rm -rf "$work/meta"
    mkdir -p "$work/meta"
    cp "$conf"/*.json "$work/meta/" 2>/dev/null
    "$metacrash" verify "$work/meta" "$store" >"$work/meta.out" 2>>"$work/verify.err" ||
        { cat "$work/meta.out"; fail "metadata files damaged $1"; }
}

# probe GROUP: a new consumer group must read 20 existing messages.
probe() {
    n=$("$sprocket" consume -n "$ns" -t "$topic" -g "$1" --from first --count 20 --idle 10 \
        --duration 30 --quiet 2>&1 | sed -n 's/^sprocket consume: \([0-9]*\) messages.*/\1/p')
    [ "${n:-0}" -ge 20 ] || fail "$1 read ${n:-0} of 20 existing messages $2"
}

# start_driver HISTORY: `driver send` in the background, as fast as it
# can; it retries every refused send (a new attempt) until it is stored.
start_driver() {
    "$driver" send -n "$ns" -t "$topic" --producers 4 --duration 1000000 \
        --min-size 8000 --max-size 60000 --rate 0 --seed "$(rand 1000000000)" \
        --history "$1" >>"$work/driver.log" 2>&1 &
    driver_pid=$!
}

stop_driver() {
    kill -TERM "$driver_pid"
    wait "$driver_pid"
    rc=$?
    driver_pid=""
    [ "$rc" -eq 0 ] || fail "driver send exited with status $rc"
}

# wait_refused HISTORY [N]: until N (default 8) more sends of the running
# driver are refused as disk full.
wait_refused() {
    want=${2:-8}
    before=$(grep -c '"remark":"disk full' "$1")
    end=$(($(date +%s) + 120))
    while :; do
        alive "while filling the disk"
        kill -0 "$driver_pid" 2>/dev/null || fail "the driver died: $(tail -n 3 "$work/driver.log")"
        now=$(grep -c '"remark":"disk full' "$1")
        [ $((now - before)) -ge "$want" ] && break
        [ "$(date +%s)" -ge "$end" ] && fail "no send refused as disk full within 120 s"
        sleep 0.2
    done
}

# The remark and the code of one refused send.
check_refusal() {
    if "$sprocket" produce -n "$ns" -t "$probe_topic" --timeout 3000 "refused?" >"$work/refusal.out" 2>&1; then
        fail "a send was accepted on a full disk: $(cat "$work/refusal.out")"
    fi
    grep -q 'code 14 disk full' "$work/refusal.out" ||
        fail "the refusal is not SERVICE_NOT_AVAILABLE with a disk-full remark: $(cat "$work/refusal.out")"
    grep -q ' E send: disk full' "$work/broker.log" || fail "the broker did not log the full disk"
}

# ---------------------------------------------------------------- setup
mkdir -p "$mnt"
if ! mount -t tmpfs -o "size=${size_mb}m" tmpfs "$mnt" 2>"$work/mount.err"; then
    echo "t5: cannot mount a tmpfs: $(cat "$work/mount.err")" >&2
    finish 2
fi
mounted=1
: >"$hist"
tries=0
while :; do
    tries=$((tries + 1))
    nport=$((20000 + $(rand 40000)))
    bport=$((nport + 1))
    ns=127.0.0.1:$nport
    baddr=127.0.0.1:$bport
    start_broker
    wait_serving 30 && break
    kill -KILL "$broker_pid" 2>/dev/null
    wait "$broker_pid" 2>/dev/null
    broker_pid=""
    rm -rf "$store"
    [ "$tries" -ge 3 ] && { echo "t5: the broker did not start (3 tries)"; keep=1; finish 2; }
done
"$sprocket" updateTopic -n "$ns" -b "$baddr" -t "$topic" -r 4 -w 4 >"$work/topic.out" 2>&1 ||
    { echo "t5: updateTopic: $(cat "$work/topic.out")"; keep=1; finish 2; }
"$sprocket" updateTopic -n "$ns" -b "$baddr" -t "$probe_topic" -r 1 -w 1 >"$work/topic.out" 2>&1 ||
    { echo "t5: updateTopic: $(cat "$work/topic.out")"; keep=1; finish 2; }
wait_serving 30 "$topic" || { echo "t5: no route for $topic"; keep=1; finish 2; }
wait_serving 30 "$probe_topic" || { echo "t5: no route for $probe_topic"; keep=1; finish 2; }
"$sprocket" updateSubGroup -n "$ns" -b "$baddr" -g G5Seed -r 3 >/dev/null 2>&1

# ---------------------------------------------------------------- rounds
# One driver for all rounds (a second one would send the same values
# again): it keeps sending, and retrying, through every full disk and
# restart.
start_driver "$hist"
while [ "$round" -lt "$rounds" ]; do
    round=$((round + 1))
    wait_refused "$hist"
    check_refusal
    echo "t5: round $round: full at $(df -k "$mnt" | awk 'NR == 2 { print $3 }') KiB used; sends refused with code 14 (disk full)"

    # Every byte left goes to a filler: metadata writes fail from now on.
    dd if=/dev/zero of="$mnt/filler" bs=65536 >/dev/null 2>&1
    cp "$conf/subscriptionGroup.json" "$work/sg.before"
    if "$sprocket" updateSubGroup -n "$ns" -b "$baddr" -g "G5R$round" -r 5 >"$work/sg.out" 2>&1; then
        # It may fit in what a deleted .tmp freed; the file must be whole then.
        :
    elif ! cmp -s "$conf/subscriptionGroup.json" "$work/sg.before"; then
        fail "a refused updateSubGroup changed subscriptionGroup.json"
    fi
    probe "P5R${round}a" "while the disk is full"
    sleep 1 # a consumerOffset.json write or two fail meanwhile
    alive "with the disk full"
    verify_meta "while the disk is full"

    # Restart while full.
    if [ $((round % 2)) = 1 ]; then
        kill -KILL "$broker_pid"
        wait "$broker_pid" 2>/dev/null
        how=SIGKILL
    else
        kill -TERM "$broker_pid"
        wait "$broker_pid"
        rc=$?
        [ "$rc" -eq 0 ] || { broker_pid=""; fail "the broker exited with status $rc on SIGTERM while full"; }
        how=SIGTERM
    fi
    echo "$(date +%T) --- $how while full (round $round)" >>"$work/broker.log"
    san_check "$work/broker.log"
    start_broker
    wait_serving 60 "$topic" || fail "the broker did not recover while full (after $how)"
    probe "P5R${round}b" "after a restart on a full disk"
    verify_meta "after a restart on a full disk"

    # Space comes back: no restart allowed from here.
    pid_before=$broker_pid
    ok_before=$(grep -c '"type":"ok","f":"send"' "$hist")
    rm -f "$mnt/filler"
    size_mb=$((size_mb + 24))
    mount -o "remount,size=${size_mb}m" "$mnt" || fail "cannot grow the tmpfs"
    # The driver competes for the new space and may fill it again at once:
    # a send of its own acknowledged, or one of ours, both show that
    # writing resumed.
    end=$(($(date +%s) + 15))
    until [ "$(grep -c '"type":"ok","f":"send"' "$hist")" -gt "$ok_before" ] ||
        "$sprocket" produce -n "$ns" -t "$probe_topic" --timeout 3000 "space is back $round" >"$work/resume.out" 2>&1; do
        [ "$(date +%s)" -ge "$end" ] && fail "sends still refused 15 s after space came back: $(cat "$work/resume.out")"
        sleep 0.2
    done
    if [ "$broker_pid" != "$pid_before" ] || ! kill -0 "$broker_pid" 2>/dev/null; then
        fail "the broker was restarted to resume"
    fi
    echo "t5: round $round: metadata whole, pulls served while full, recovered after $how while full, sends resumed ${size_mb} MiB later without a restart"
    done_rounds=$((done_rounds + 1))
done

# ---------------------------------------------------------------- check
stop_driver
"$driver" drain -n "$ns" -t "$topic" --history "$hist" --process drain --idle 3 \
    --max-time 300 >>"$work/driver.log" 2>&1 || fail "driver drain failed: $(tail -n 3 "$work/driver.log")"
"$sprocket" topicStatus -n "$ns" -t "$topic" --json >"$work/status.json" 2>&1 ||
    fail "topicStatus: $(cat "$work/status.json")"
awk -F: '
    /"brokerName"/ { gsub(/[" \t,]/, "", $2); b = $2 }
    /"queueId"/ { gsub(/[^0-9]/, "", $2); q = $2 }
    /"maxOffset"/ { gsub(/[^0-9]/, "", $2); if ($2 + 0 > 0) print b ":" q, $2 }
' "$work/status.json" | sort >"$work/status.max"
sed -n 's/^driver: drain: \([^ ]*\): [0-9]* messages, next offset \([0-9]*\)$/\1 \2/p' \
    "$work/driver.log" | sort >"$work/drain.max"
cmp -s "$work/status.max" "$work/drain.max" || fail "the drain did not read every queue to its end"
if "$qcheck" "$hist" -o "$work/results.json" >"$work/qcheck.out" 2>&1; then
    acked=$(grep -c '"type":"ok","f":"send"' "$hist")
    refused=$(grep -c '"remark":"disk full' "$hist")
    echo "t5: qcheck: $(tail -n 1 "$work/qcheck.out") ($acked acked, $refused refused as disk full)"
else
    cat "$work/qcheck.out"
    fail "qcheck found violations (results in $work/results.json)"
fi

# ---------------------------------------------------------------- retention
# Space returned by deleting old CommitLog files instead of growing. Store
# settings cannot change at run time, so the broker restarts (space still
# free) with forced clean-up on; then the disk is filled to the last byte.
round=$((round + 1))
kill -TERM "$broker_pid"
wait "$broker_pid"
rc=$?
[ "$rc" -eq 0 ] || { broker_pid=""; fail "the broker exited with status $rc on SIGTERM"; }
start_broker --cleanFileForciblyEnable=true
wait_serving 60 "$topic" || fail "the broker did not start again"
pid_before=$broker_pid
first_seg=$(find "$store/commitlog" -type f | sort | head -n 1)
dd if=/dev/zero of="$mnt/filler" bs=65536 >/dev/null 2>&1
: >"$work/retention.jsonl"
start_driver "$work/retention.jsonl"
wait_refused "$work/retention.jsonl" 1
ok_before=$(grep -c '"type":"ok","f":"send"' "$work/retention.jsonl")
end=$(($(date +%s) + 20))
until [ "$(grep -c '"type":"ok","f":"send"' "$work/retention.jsonl")" -gt "$ok_before" ] ||
    "$sprocket" produce -n "$ns" -t "$probe_topic" --timeout 3000 "after retention" >"$work/resume.out" 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && fail "sends still refused 20 s after the disk filled with clean-up on: $(cat "$work/resume.out")"
    sleep 0.2
done
if [ "$broker_pid" != "$pid_before" ] || ! kill -0 "$broker_pid" 2>/dev/null; then
    fail "the broker was restarted to resume"
fi
[ -e "$first_seg" ] && fail "no CommitLog file was deleted, yet sends resumed"
echo "t5: retention: disk filled, $(grep -c '"remark":"disk full' "$work/retention.jsonl") sends refused, old CommitLog files deleted, sends resumed without a restart"
rm -f "$mnt/filler"
stop_driver
done_rounds=$((done_rounds + 1))

kill -TERM "$broker_pid"
wait "$broker_pid"
rc=$?
broker_pid=""
[ "$rc" -eq 0 ] || fail "the broker exited with status $rc on SIGTERM"
san_check "$work/broker.log" "$work/driver.log" "$work/verify.err"
if grep -q "SIGBUS\|Bus error" "$work/broker.log"; then
    fail "SIGBUS in the broker log"
fi
# shellcheck disable=SC2086 # index_args is a list of words
"$sprocket" store check "$store" $index_args >"$work/storecheck.out" 2>&1 ||
    { tail -n 20 "$work/storecheck.out"; fail "sprocket store check found problems"; }
verify_meta "after the run"
finish 0
