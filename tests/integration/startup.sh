#!/bin/sh
# startup.sh - start-up and stop behaviour of sprocketd: clear errors for a
# port in use, a store locked by another process, an unreadable or invalid
# config; -c broker.conf with --key=value overriding it; a clean stop on
# SIGTERM (abort file removed, exit 0) and a restart that sees the data.
. "$(dirname "$0")/lib.sh"
t_init startup

# expect_fail NAME STATUS PATTERN ARGS...: runs the daemon in the
# foreground; it must exit with STATUS within 10 s and print PATTERN.
expect_fail() {
    ef_name=$1
    ef_status=$2
    ef_pat=$3
    shift 3
    timeout 10 "$SPROCKETD" "$@" >"$T_WORK/$ef_name.out" 2>&1
    ef_rc=$?
    if [ "$ef_rc" -eq "$ef_status" ] && grep -qiE "$ef_pat" "$T_WORK/$ef_name.out"; then
        pass "$ef_name: exit $ef_rc, says: $(grep -iE "$ef_pat" "$T_WORK/$ef_name.out" | head -1)"
    else
        fail "$ef_name: exit $ef_rc (want $ef_status), output: $(head -c 400 "$T_WORK/$ef_name.out")"
    fi
}

start_standalone sd
# shellcheck disable=SC2154 # set by start_standalone
ready=$(grep -o 'ready: .*(\([0-9]*\) ms)' "$T_WORK/sd.log" | head -1)
t_log "start-up: $ready"
# The "VIP channel" (listenPort - 2) that Java clients up to 4.5 send to.
SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
if "$SPROCKET" bench produce --addr="127.0.0.1:$((sd_bp - 2))" --topic=VipTopic --create-topic \
    --queues=1 --conns=1 --inflight=4 --size=100 --messages=20 >"$T_WORK/vip.out" 2>&1; then
    pass "sends through the VIP channel (listenPort - 2) succeed"
else
    fail "VIP channel: $(tail -n 2 "$T_WORK/vip.out")"
fi

# shellcheck disable=SC2046
set -- $(ports 2)

expect_fail port_in_use 1 'in use|address already' standalone \
    --listenPort="$sd_bp" --namesrvListenPort="$1" --storePathRootDir="$T_WORK/other"
expect_fail store_locked 1 'lock|another process' standalone \
    --listenPort="$1" --namesrvListenPort="$2" --storePathRootDir="$T_WORK/sd"
expect_fail missing_config 1 'cannot use config file.*nonexistent' broker -c "$T_WORK/nonexistent.conf"
printf 'brokerName=x\nflushDiskType=SOMETIMES\n' >"$T_WORK/bad.conf"
expect_fail bad_config_value 1 'flushDiskType' broker -c "$T_WORK/bad.conf"
printf 'this line has no equals sign\n' >"$T_WORK/noeq.conf"
expect_fail bad_config_line 1 'noeq.conf:1' broker -c "$T_WORK/noeq.conf"
expect_fail bad_arg_value 2 'maxMessageSize' broker --maxMessageSize=abc
expect_fail unknown_role 2 'unknown role' nosuchrole
expect_fail unknown_arg 2 'unknown argument' broker stray-argument

# -c broker.conf, with a command-line override winning over the file.
cat >"$T_WORK/broker.conf" <<CONF
# a RocketMQ-style broker.conf
brokerClusterName = ConfCluster
brokerName = broker-conf
listenPort = 1
flushDiskType = SYNC_FLUSH
CONF
start_namesrv ns
start_broker bc "$ns_addr" broker-conf -c "$T_WORK/broker.conf" --brokerClusterName=ConfCluster
create_topic "$bc_addr" ConfTopic 2
if "$NODE" "$CLIENTS/admin.js" wait-route "$ns_addr" ConfTopic broker-conf 10000; then
    pass "broker.conf read (brokerName broker-conf), --listenPort overrode the file's listenPort"
else
    fail "route of ConfTopic does not show broker-conf"
fi
# GET_BROKER_CONFIG (26) returns the settings in effect as key=value lines.
"$NODE" -e '
const { Conn } = require(process.argv[1] + "/lib/remoting");
(async () => {
  const c = new Conn(process.argv[2]);
  await c.connect(3000);
  const r = await c.request(26, {}, null, 5000);
  process.stdout.write(r.body ? r.body.toString() : "");
  c.close();
})().catch(e => { console.error(e.message); process.exit(1); });
' "$CLIENTS" "$bc_addr" >"$T_WORK/bc.config" 2>&1
if grep -q '^flushDiskType=SYNC_FLUSH$' "$T_WORK/bc.config" &&
    grep -q "^listenPort=${bc_addr#*:}\$" "$T_WORK/bc.config"; then
    pass "flushDiskType from broker.conf is in effect (GET_BROKER_CONFIG)"
else
    fail "GET_BROKER_CONFIG does not show flushDiskType=SYNC_FLUSH from broker.conf"
fi

# A clean stop removes the abort file; the restart is a normal recovery.
create_topic "$sd_addr" StartTopic 2
wait_route "$sd_ns" StartTopic broker-a
NAMESRV=$sd_ns TOPIC=StartTopic COUNT=50 OUT=$T_WORK/p.jsonl run_client produce 60 produce.js ||
    fail "produce before the restart failed"
daemon_stop sd
if [ -e "$T_WORK/sd/abort" ]; then
    fail "abort file left after a clean stop"
else
    pass "abort file removed by the clean stop"
fi
[ -s "$T_WORK/sd/config/consumerOffset.json" ] || [ -s "$T_WORK/sd/config/topics.json" ] &&
    pass "metadata files written at shutdown"
start_standalone sd
if grep -q 'normal recovery' "$T_WORK/sd.log"; then
    pass "restart after a clean stop recovers normally"
else
    fail "restart after a clean stop was not a normal recovery"
fi
NAMESRV=$sd_ns TOPIC=StartTopic GROUP=CG_START EXPECT=50 OUT=$T_WORK/c.jsonl MAX_MS=60000 \
    run_client consume 70 consume.js || fail "consume after the restart failed"
n=$(distinct_keys "$T_WORK/c.jsonl")
if [ "$n" -eq 50 ]; then
    pass "all 50 messages readable after the restart"
else
    fail "$n of 50 messages readable after the restart"
fi
daemon_stop sd
daemon_stop bc
daemon_stop ns
t_finish
