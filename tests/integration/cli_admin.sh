#!/bin/sh
# shellcheck disable=SC2154,SC2086,SC2015
# (NAME_addr, NAME_ns are set by lib.sh with eval; $N is "-n ADDR", two words;
# "[ test ] && pass ... || fail ..." is safe because pass cannot fail)
# cli_admin.sh - the operator commands of `sprocket` (mqadmin's) against a
# standalone daemon: every command with its table output and its --json
# document, and each command's bad input (a missing required flag, a bad
# address, an unknown topic or group, a bad number), checking the exit
# status (2 usage, 1 failure) and that the message says what to do.
#
# Messages come from ali-ons (produce.js: keys ck-0.., tags TagA/TagB) and
# from raw remoting (cli_helper.js: UNIQ_KEY ids, a client that stays
# connected as producer and consumer and records what the broker sends it,
# and a send-back without maxReconsumeTimes).
#
# Environment: SPROCKET (default build/sprocket), SPROCKETD.
set -u
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"
t_init cli_admin

SPROCKET=${SPROCKET:-$(dirname "$SPROCKETD")/sprocket}
if [ ! -x "$SPROCKET" ]; then
    echo "SKIP $T_NAME: $SPROCKET not built"
    exit 77
fi

# cli NAME ARGS...: runs sprocket ARGS, stdout in NAME.out, stderr in
# NAME.err; the status in $cli_rc.
cli() {
    cl_name=$1
    shift
    echo "\$ sprocket $*" >>"$T_WORK/commands.log"
    "$SPROCKET" "$@" >"$T_WORK/$cl_name.out" 2>"$T_WORK/$cl_name.err"
    cli_rc=$?
}

# ok NAME WHAT ARGS...: the command must exit 0.
ok() {
    ok_name=$1
    ok_what=$2
    shift 2
    cli "$ok_name" "$@"
    if [ "$cli_rc" -eq 0 ]; then
        pass "$ok_what"
    else
        fail "$ok_what: exit $cli_rc: $(head -c 400 "$T_WORK/$ok_name.err")"
    fi
}

# refused NAME WHAT CODE REGEX ARGS...: the command must exit CODE and say
# something matching REGEX (grep -E) on stderr, and print nothing on stdout.
refused() {
    rf_name=$1
    rf_what=$2
    rf_code=$3
    rf_re=$4
    shift 4
    cli "$rf_name" "$@"
    if [ "$cli_rc" -ne "$rf_code" ]; then
        fail "$rf_what: exit $cli_rc, expected $rf_code: $(head -c 400 "$T_WORK/$rf_name.err")"
    elif ! grep -Eq -e "$rf_re" "$T_WORK/$rf_name.err"; then
        fail "$rf_what: message does not match /$rf_re/: $(head -c 400 "$T_WORK/$rf_name.err")"
    elif [ "$rf_code" -eq 2 ] && [ -s "$T_WORK/$rf_name.out" ]; then
        fail "$rf_what: a usage error printed on stdout"
    else
        pass "$rf_what (exit $rf_code: $(head -n 1 "$T_WORK/$rf_name.err" | cut -c 1-110))"
    fi
}

# has NAME WHAT REGEX: NAME.out holds a line matching REGEX.
has() {
    if grep -Eq -e "$3" "$T_WORK/$1.out"; then
        pass "$2"
    else
        fail "$2: no line matches /$3/ in $1.out: $(head -c 400 "$T_WORK/$1.out")"
    fi
}

# js NAME WHAT EXPR: NAME.out is one JSON document j for which the
# JavaScript expression EXPR is true.
js() {
    if "$NODE" -e '
        const fs = require("fs");
        let j;
        try {
          j = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
        } catch (e) {
          console.error("not one JSON document: " + e.message);
          process.exit(1);
        }
        process.exit(eval(process.argv[2]) ? 0 : 1);
    ' "$T_WORK/$1.out" "$3" 2>>"$T_WORK/js.err"; then
        pass "$2"
    else
        fail "$2: false: $3 on $1.out: $(head -c 300 "$T_WORK/$1.out")"
    fi
}

# jval NAME EXPR: prints the value of EXPR over the JSON document in NAME.out.
jval() {
    "$NODE" -e '
        const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        process.stdout.write(String(eval(process.argv[2])));
    ' "$T_WORK/$1.out" "$2"
}

# wait_cli_route TOPIC: until `sprocket topicRoute` finds TOPIC (a broker
# registers a change at once, but asynchronously).
wait_cli_route() {
    wr_i=0
    while ! "$SPROCKET" topicRoute -n "$NS" -t "$1" >/dev/null 2>&1; do
        wr_i=$((wr_i + 1))
        [ "$wr_i" -ge 100 ] && die "no route for $1 after 10 s"
        sleep 0.1
    done
}

# lines NAME REGEX: how many lines of NAME.out match.
lines() {
    grep -Ec -e "$2" "$T_WORK/$1.out"
}

start_standalone sd
NS=$sd_ns
BR=$sd_addr
N="-n $NS"
# shellcheck disable=SC2046
set -- $(ports 1)
DEAD=127.0.0.1:$1 # nothing listens there
T=CliTopic

# ------------------------------------------------------------------ help
cli help --help
for c in updateTopic deleteTopic topicList topicRoute topicStatus clusterList brokerStatus \
    getBrokerConfig updateBrokerConfig updateSubGroup consumerProgress consumerConnection \
    producerConnection queryMsgById queryMsgByKey queryMsgByOffset resetOffsetByTime printMsg; do
    grep -q "^  $c " "$T_WORK/help.out" || fail "'sprocket --help' does not list $c"
    cli "help_$c" "$c" --help
    if [ "$cli_rc" -ne 0 ] || ! grep -q "^usage: sprocket $c " "$T_WORK/help_$c.out" ||
        ! grep -q -- "--json" "$T_WORK/help_$c.out"; then
        fail "'sprocket $c --help' (exit $cli_rc)"
    fi
done
pass "sprocket --help lists the 18 commands; each has --help (with --json)"
refused unknown_opt "unknown option" 2 "unknown option '--bogus'.*--help" topicList $N --bogus

# ------------------------------------------------------------------ clusterList
ok cl "clusterList" clusterList $N
has cl "clusterList table header" '^#Cluster Name +#Broker Name +#BID +#Addr +#Version'
has cl "clusterList row of broker-a" "^DefaultCluster +broker-a +0 +$BR +V5_3_3 .* true\$"
ok cl_json "clusterList --json" clusterList $N --json
js cl_json "clusterList --json: the broker, active" \
    "j.brokers.length === 1 && j.brokers[0].addr === '$BR' && j.brokers[0].activated === true"
ok cl_more "clusterList -m" clusterList $N -m -c DefaultCluster
has cl_more "clusterList -m columns" '^#Cluster Name +#Broker Name +#InTotalYest +#OutTotalYest +#InTotalToday +#OutTotalToday$'
refused cl_nons "clusterList: no name server" 1 \
    "cannot reach name server $DEAD.*is sprocketd running\? pass -n ADDR" clusterList -n "$DEAD"
refused cl_badns "clusterList: bad -n" 2 "-n 'nowhere'.*not an ip:port" clusterList -n nowhere
refused cl_nocl "clusterList: unknown cluster" 1 "cluster 'NoSuchCluster' is not known.*clusterList" \
    clusterList $N -c NoSuchCluster
refused cl_badi "clusterList: bad -i" 2 "-i 'soon' is not a number" clusterList $N -i soon

# ------------------------------------------------------------------ updateTopic
ok ut "updateTopic -b" updateTopic $N -b "$BR" -t $T -r 4 -w 4
has ut "updateTopic says success" "^create topic to $BR success\.\$"
has ut "updateTopic prints the TopicConfig" "^TopicConfig \[topicName=$T, readQueueNums=4, writeQueueNums=4, perm=RW-"
ok ut_json "updateTopic -c --json" updateTopic $N -c DefaultCluster -t CliTopic2 -p 4 --json
js ut_json "updateTopic --json: config and one ok result" \
    "j.topicConfig.topicName === 'CliTopic2' && j.topicConfig.perm === 4 && j.results.length === 1 && j.results[0].ok && j.results[0].broker === '$BR'"
refused ut_nob "updateTopic without -b/-c" 2 "give the broker with -b ADDR or the cluster with -c" \
    updateTopic $N -t X
refused ut_not "updateTopic without -t" 2 "give -t TOPIC" updateTopic $N -b "$BR"
refused ut_badb "updateTopic: bad -b" 2 "-b '10.0.0' is not a broker address ip:port" \
    updateTopic $N -b 10.0.0 -t X
refused ut_badr "updateTopic: bad -r" 2 "-r 'many' is not a number from 1 to 65535" \
    updateTopic $N -b "$BR" -t X -r many
refused ut_badp "updateTopic: bad -p" 2 "-p 5 is not a permission" updateTopic $N -b "$BR" -t X -p 5
refused ut_badt "updateTopic: bad topic name" 2 "topic 'a b' contains ' '" updateTopic $N -b "$BR" -t "a b"
refused ut_sys "updateTopic: a system topic" 1 "INVALID_PARAMETER.*TBW102" updateTopic $N -b "$BR" -t TBW102
refused ut_dead "updateTopic: unreachable broker" 1 "cannot reach broker $DEAD.*is that broker running" \
    updateTopic $N -b "$DEAD" -t X
refused ut_nocl "updateTopic: unknown cluster" 1 "cluster 'Nope' is not known" updateTopic $N -c Nope -t X

# The brokers register at once; wait until the name server has both routes.
wait_cli_route $T
wait_cli_route CliTopic2

# ------------------------------------------------------------------ topicList / topicRoute
ok tl "topicList" topicList $N
has tl "topicList lists the topic" "^$T\$"
ok tl_json "topicList --json" topicList $N --json
js tl_json "topicList --json holds both topics" "j.topics.includes('$T') && j.topics.includes('CliTopic2')"
ok tl_c "topicList -c" topicList $N -c
has tl_c "topicList -c table" "^DefaultCluster +$T\$"
refused tl_dead "topicList: no name server" 1 "is sprocketd running\? pass -n ADDR" topicList -n "$DEAD"

ok tr "topicRoute" topicRoute $N -t $T
js tr "topicRoute prints the route as JSON" "j.brokerDatas[0].brokerAddrs['0'] === '$BR' && j.queueDatas[0].readQueueNums === 4"
ok tr_l "topicRoute -l" topicRoute $N -t $T -l
has tr_l "topicRoute -l header" '^#ClusterName +#BrokerName +#BrokerAddrs +#ReadQueue +#WriteQueue +#Perm$'
has tr_l "topicRoute -l row" "^DefaultCluster +broker-a +\{0=$BR\} +4 +4 +6\$"
ok tr_json "topicRoute --json" topicRoute $N -t CliTopic2 --json
js tr_json "topicRoute --json: perm 4" "j.queueDatas[0].perm === 4 && j.brokerDatas[0].cluster === 'DefaultCluster'"
refused tr_unknown "topicRoute: unknown topic" 1 "topic 'NoSuchTopic' is not known.*sprocket topicList" \
    topicRoute $N -t NoSuchTopic
refused tr_not "topicRoute without -t" 2 "give -t TOPIC" topicRoute $N

# ------------------------------------------------------------------ messages
NAMESRV=$NS TOPIC=$T COUNT=20 TAGS=TagA,TagB KEY_PREFIX=ck- OUT="$T_WORK/produced.jsonl" \
    run_client produce 60 produce.js || die "produce.js failed"
"$NODE" "$CLIENTS/cli_helper.js" send-uniq "$BR" $T 3 UNIQCLI >"$T_WORK/uniq.jsonl" ||
    die "cli_helper send-uniq failed"
ID0=$("$NODE" -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
  process.stdout.write(l.find(x => x.key === "ck-0").msgId)' "$T_WORK/produced.jsonl")
ID5=$("$NODE" -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
  process.stdout.write(l.find(x => x.key === "ck-5").msgId)' "$T_WORK/produced.jsonl")
# shellcheck disable=SC2046 # two words on purpose
set -- $("$NODE" -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
  const m=l.find(x => x.key === "ck-3"); process.stdout.write(m.queueId + " " + m.queueOffset)' "$T_WORK/produced.jsonl")
Q3=$1
O3=$2
Q0=$("$NODE" -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
  process.stdout.write(String(l.find(x => x.key === "ck-0").queueId))' "$T_WORK/produced.jsonl")
t_log "ck-0 is $ID0, ck-5 is $ID5, ck-3 is queue $Q3 offset $O3"

# ------------------------------------------------------------------ topicStatus
ok ts "topicStatus" topicStatus $N -t $T
has ts "topicStatus header" '^#Broker Name +#QID +#Min Offset +#Max Offset +#Last Updated$'
[ "$(lines ts '^broker-a +[0-3] +0 +[0-9]+ ')" -eq 4 ] && pass "topicStatus: 4 queue rows" ||
    fail "topicStatus: not 4 queue rows"
has ts "topicStatus TPS line" '^Topic Put TPS: '
ok ts_json "topicStatus --json" topicStatus $N -t $T --json
js ts_json "topicStatus --json: 23 messages over 4 queues" \
    "j.queues.length === 4 && j.queues.reduce((s, q) => s + q.maxOffset, 0) === 23 && j.queues.every(q => q.lastUpdateTimestamp > 0)"
refused ts_unknown "topicStatus: unknown topic" 1 "topic 'Nope' is not known" topicStatus $N -t Nope
refused ts_not "topicStatus without -t" 2 "give -t TOPIC" topicStatus $N

# ------------------------------------------------------------------ queryMsgById
ok qi "queryMsgById (offset id)" queryMsgById $N -i "$ID0"
has qi "queryMsgById: the offset id" "^OffsetID: +$ID0\$"
has qi "queryMsgById: keys and tag" '^Keys: +\[ck-0\]$'
has qi "queryMsgById: the body" '^Message Body: +.*"key":"ck-0"'
ok qi_json "queryMsgById --json (two ids)" queryMsgById $N -i "$ID0,$ID5" --json
js qi_json "queryMsgById --json: both messages" \
    "j.messages.length === 2 && j.messages[0].keys === 'ck-0' && j.messages[1].keys === 'ck-5' && JSON.parse(j.messages[0].body).key === 'ck-0' && j.messages[0].storeHost === '$BR'"
PHYS0=$(jval qi_json "j.messages[0].commitLogOffset")
ok qi_u "queryMsgById (UNIQ_KEY id, -t)" queryMsgById $N -i UNIQCLI1 -t $T
has qi_u "queryMsgById UNIQ_KEY: the message id" '^MsgId: +UNIQCLI1$'
has qi_u "queryMsgById UNIQ_KEY: the body" '^Message Body: +uniq body 1$'
ok qi_ujson "queryMsgById UNIQ_KEY --json" queryMsgById $N -i UNIQCLI2 -t $T --json
js qi_ujson "queryMsgById UNIQ_KEY --json" "j.messages.length === 1 && j.messages[0].msgId === 'UNIQCLI2' && j.messages[0].tags === 'TagU'"
refused qi_not "queryMsgById UNIQ_KEY without -t" 1 "give its topic with -t TOPIC" queryMsgById $N -i UNIQCLI1
refused qi_none "queryMsgById: unknown id" 1 "message 'UNIQNOPE' not found.*no broker of topic" \
    queryMsgById $N -i UNIQNOPE -t $T
refused qi_noi "queryMsgById without -i" 2 "give -i" queryMsgById $N -t $T
refused qi_badt "queryMsgById: unknown topic" 1 "topic 'Nope' is not known" queryMsgById $N -i UNIQCLI1 -t Nope

# ------------------------------------------------------------------ queryMsgByKey
ok qk "queryMsgByKey" queryMsgByKey $N -t $T -k ck-5
has qk "queryMsgByKey header" '^#Message ID +#QID +#Offset$'
has qk "queryMsgByKey finds ck-5" "^$ID5 +[0-9]+ +[0-9]+\$"
ok qk_json "queryMsgByKey --json" queryMsgByKey $N -t $T -k UNIQCLI-key-0 --json
js qk_json "queryMsgByKey --json" "j.messages.length === 1 && j.messages[0].msgId === 'UNIQCLI0' && j.messages[0].brokerName === 'broker-a'"
refused qk_none "queryMsgByKey: no such key" 1 "no message of topic '$T' has the key 'nokey'" \
    queryMsgByKey $N -t $T -k nokey
refused qk_badm "queryMsgByKey: bad -m" 2 "-m '100' is not a number from 1 to 64" queryMsgByKey $N -t $T -k x -m 100
refused qk_nok "queryMsgByKey without -k" 2 "give -k KEY" queryMsgByKey $N -t $T

# ------------------------------------------------------------------ queryMsgByOffset
ok qo "queryMsgByOffset" queryMsgByOffset $N -t $T -b broker-a -i "$Q3" -o "$O3"
has qo "queryMsgByOffset: the message at that offset" '^Keys: +\[ck-3\]$'
ok qo_json "queryMsgByOffset --json" queryMsgByOffset $N -t $T -b broker-a -i "$Q3" -o "$O3" --json
js qo_json "queryMsgByOffset --json" "j.messages.length === 1 && j.messages[0].keys === 'ck-3' && j.messages[0].queueOffset === $O3"
refused qo_far "queryMsgByOffset: no message there" 1 "no message at offset 9999 .*the queue holds offsets" \
    queryMsgByOffset $N -t $T -b broker-a -i 0 -o 9999
refused qo_bad "queryMsgByOffset: bad -o" 2 "-o 'last' is not a number" queryMsgByOffset $N -t $T -b broker-a -i 0 -o last
refused qo_noo "queryMsgByOffset without -o" 2 "give -o OFFSET" queryMsgByOffset $N -t $T -b broker-a -i 0
refused qo_nob "queryMsgByOffset: unknown broker" 1 "broker 'broker-z' has no master serving" \
    queryMsgByOffset $N -t $T -b broker-z -i 0 -o 0
refused qo_noq "queryMsgByOffset: no such queue" 1 "queue 7 does not exist" queryMsgByOffset $N -t $T -b broker-a -i 7 -o 0

# ------------------------------------------------------------------ printMsg
ok pm "printMsg" printMsg $N -t $T
[ "$(lines pm '^MSGID: ')" -eq 23 ] && pass "printMsg prints the 23 messages" ||
    fail "printMsg printed $(lines pm '^MSGID: ') messages, not 23"
[ "$(lines pm '^minOffset=0, maxOffset=[0-9]+, MessageQueue \[topic=CliTopic, brokerName=broker-a, queueId=[0-3]\]$')" -eq 4 ] &&
    pass "printMsg: one header per queue" || fail "printMsg: queue headers"
has pm "printMsg prints bodies" '^MSGID: .* BODY: \{"i":[0-9]+,"key":"ck-'
# ck-0 has TagA; its queue holds at least that one
ok pm_q "printMsg -q -s TagA" printMsg $N -t $T -q "$Q0" -s TagA -d false
[ "$(lines pm_q '^MSGID: ')" -ge 1 ] && [ "$(lines pm_q 'tags=TagB|tags=TagU')" -eq 0 ] &&
    [ "$(lines pm_q "queueId=$Q0,")" -eq "$(lines pm_q '^MSGID: ')" ] &&
    [ "$(lines pm_q 'BODY: NOT PRINT BODY$')" -eq "$(lines pm_q '^MSGID: ')" ] &&
    pass "printMsg -q $Q0 -s TagA -d false: that queue, TagA only, no bodies" ||
    fail "printMsg -q -s -d: $(cat "$T_WORK/pm_q.out")"
ok pm_json "printMsg --json" printMsg $N -t $T --json
js pm_json "printMsg --json: 23 messages, 10 with TagA" \
    "j.queues.flatMap(q => q.messages).length === 23 && j.queues.flatMap(q => q.messages).filter(m => m.tags === 'TagA').length === 10"
ok pm_off "printMsg --beginOffset/--endOffset" printMsg $N -t $T -q 0 --beginOffset 1 --endOffset 3 --json
js pm_off "printMsg offsets 1..3 of queue 0" "j.queues.length === 1 && j.queues[0].messages.map(m => m.queueOffset).join() === '1,2'"
ok pm_now "printMsg -b now" printMsg $N -t $T -b now --json
js pm_now "printMsg -b now: nothing stored after now" "j.queues.length === 4 && j.queues.every(q => q.messages.length === 0)"
refused pm_badb "printMsg: bad -b" 2 "-b 'yesterday' is not a time" printMsg $N -t $T -b yesterday
refused pm_badq "printMsg: no such queue" 1 "no broker has a queue 9 of topic" printMsg $N -t $T -q 9
refused pm_unknown "printMsg: unknown topic" 1 "topic 'Nope' is not known" printMsg $N -t Nope
refused pm_not "printMsg without -t" 2 "give -t TOPIC" printMsg $N

# ------------------------------------------------------------------ connections
: >"$T_WORK/requests.jsonl"
"$NODE" "$CLIENTS/cli_helper.js" hold "$BR" cli-helper@1 PG_CLI CG_CLI $T "$T_WORK/requests.jsonl" \
    >"$T_WORK/hold.out" 2>&1 &
hold_pid=$!
t_track "$hold_pid"
i=0
while ! grep -q '^ready$' "$T_WORK/hold.out" 2>/dev/null && [ "$i" -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
grep -q '^ready$' "$T_WORK/hold.out" || die "cli_helper hold did not connect: $(cat "$T_WORK/hold.out")"
# the broker registers %RETRY%CG_CLI with the name server after the heartbeat
wait_cli_route "%RETRY%CG_CLI"

ok cc "consumerConnection" consumerConnection $N -g CG_CLI
has cc "consumerConnection header" '^#ClientId +#ClientAddr +#Language +#Version$'
has cc "consumerConnection row" '^cli-helper@1 +127\.0\.0\.1:[0-9]+ +JAVA +V3_4_9$'
has cc "consumerConnection subscription" "^$T +\\*\$"
has cc "consumerConnection model" '^MessageModel: CLUSTERING$'
ok cc_json "consumerConnection -b --json" consumerConnection $N -g CG_CLI -b "$BR" --json
js cc_json "consumerConnection --json" \
    "j.connections.length === 1 && j.connections[0].clientId === 'cli-helper@1' && j.subscriptions['$T'] === '*' && j.consumeFromWhere === 'CONSUME_FROM_FIRST_OFFSET'"
refused cc_none "consumerConnection: unknown group" 1 "consumer group 'NoGroup' is not known.*consumerProgress" \
    consumerConnection $N -g NoGroup
refused cc_offline "consumerConnection -b: group not online" 1 "has no consumer online" \
    consumerConnection $N -g NoGroup -b "$BR"
refused cc_nog "consumerConnection without -g" 2 "give -g GROUP" consumerConnection $N

ok pc "producerConnection" producerConnection $N -g PG_CLI -t $T
has pc "producerConnection row" '^0001 +cli-helper@1 +127\.0\.0\.1:[0-9]+ +JAVA +V3_4_9$'
ok pc_json "producerConnection --json" producerConnection $N -g PG_CLI -t $T --json
js pc_json "producerConnection --json" "j.connections.length === 1 && j.connections[0].language === 'JAVA'"
refused pc_none "producerConnection: unknown group" 1 "producer group 'NoGroup' has no producer" \
    producerConnection $N -g NoGroup -t $T
refused pc_not "producerConnection without -t" 2 "give -t TOPIC" producerConnection $N -g PG_CLI

# ------------------------------------------------------------------ resetOffsetByTime / consumerProgress
ok ro "resetOffsetByTime -s 0" resetOffsetByTime $N -g CG_CLI -t $T -s 0
has ro "resetOffsetByTime summary line" '^start reset consumer offset by specified, group\[CG_CLI\], topic\[CliTopic\], force\[true\]'
[ "$(lines ro '^broker-a +[0-3] +0$')" -eq 4 ] && pass "resetOffsetByTime -s 0: every queue to 0" ||
    fail "resetOffsetByTime -s 0: $(cat "$T_WORK/ro.out")"
has ro "resetOffsetByTime: the online consumer was notified" '^online consumers notified: 1$'
i=0
while ! grep -q '"code":220' "$T_WORK/requests.jsonl" && [ "$i" -lt 30 ]; do
    sleep 0.1
    i=$((i + 1))
done
if grep -q '"code":220,"extFields":{[^}]*"group":"CG_CLI"' "$T_WORK/requests.jsonl" &&
    grep '"code":220' "$T_WORK/requests.jsonl" | grep -q '{\\"brokerName\\":\\"broker-a\\",\\"queueId\\":0,\\"topic\\":\\"CliTopic\\"}:0'; then
    pass "the consumer got RESET_CONSUMER_CLIENT_OFFSET (220) with MessageQueue-keyed offsets"
else
    fail "no RESET_CONSUMER_CLIENT_OFFSET seen: $(cat "$T_WORK/requests.jsonl")"
fi
ok cp "consumerProgress -g" consumerProgress $N -g CG_CLI
has cp "consumerProgress header" '^#Topic +#Broker Name +#QID +#Broker Offset +#Consumer Offset +#Diff +#Inflight +#LastTime$'
has cp "consumerProgress total lag after the reset to 0" '^Consume Diff Total: 23$'
ok ro_json "resetOffsetByTime -s now --json" resetOffsetByTime $N -g CG_CLI -t $T -s now --json
js ro_json "resetOffsetByTime --json: offsets at the end of each queue" \
    "j.offsets.length === 4 && j.offsets.reduce((s, o) => s + o.offset, 0) === 23 && j.notifiedConsumers === 1 && j.results[0].ok"
ok cp_json "consumerProgress -g -t --json" consumerProgress $N -g CG_CLI -t $T --json
js cp_json "consumerProgress --json: no lag after the reset to now" \
    "j.queues.length === 4 && j.diffTotal === 0 && j.queues.every(q => q.brokerOffset === q.consumerOffset)"
ok ro_q "resetOffsetByTime -q -o (one queue, explicit offset)" resetOffsetByTime $N -g CG_CLI -t $T -s now -q "$Q3" -o 1 -b "$BR"
has ro_q "resetOffsetByTime -q: one row" "^broker-a +$Q3 +1\$"
ok cp_all "consumerProgress (every group)" consumerProgress $N
has cp_all "consumerProgress: the online group" '^CG_CLI +1 +V3_4_9 +PUSH +CLUSTERING +0 +[0-9]+$'
ok cp_alljson "consumerProgress --json (every group)" consumerProgress $N --json
js cp_alljson "consumerProgress --json (every group)" "j.groups.some(g => g.group === 'CG_CLI' && g.count === 1)"
refused ro_nog "resetOffsetByTime: unknown group" 1 "SUBSCRIPTION_GROUP_NOT_EXIST.*updateSubGroup" \
    resetOffsetByTime $N -g NoGroup -t $T -s now
refused ro_badts "resetOffsetByTime: bad time" 2 "-s 'noon' is not a time" resetOffsetByTime $N -g CG_CLI -t $T -s noon
refused ro_oq "resetOffsetByTime: -o without -q" 2 "-o OFFSET needs -q QID" resetOffsetByTime $N -g CG_CLI -t $T -s now -o 3
refused ro_range "resetOffsetByTime: offset outside the queue" 1 "offset 999 is outside queue" \
    resetOffsetByTime $N -g CG_CLI -t $T -s now -q 0 -o 999
refused ro_unknown "resetOffsetByTime: unknown topic" 1 "topic 'Nope' is not known" resetOffsetByTime $N -g CG_CLI -t Nope -s now
refused ro_nos "resetOffsetByTime without -s" 2 "give -s TIME" resetOffsetByTime $N -g CG_CLI -t $T
refused cp_none "consumerProgress: unknown group" 1 "consumer group 'NoGroup' is not known" consumerProgress $N -g NoGroup
refused cp_tnog "consumerProgress: -t without -g" 2 "-t needs -g GROUP" consumerProgress $N -t $T
kill -TERM "$hold_pid" 2>/dev/null
wait "$hold_pid" 2>/dev/null

# ------------------------------------------------------------------ updateSubGroup
ok sg "updateSubGroup -b" updateSubGroup $N -g CG_DLQ -b "$BR" -r 0
has sg "updateSubGroup says success" "^create subscription group to $BR success\.\$"
has sg "updateSubGroup prints the config" '^SubscriptionGroupConfig\{groupName=CG_DLQ, .*retryMaxTimes=0,'
cp "$T_WORK/sd/config/subscriptionGroup.json" "$T_WORK/sgfile.out" 2>/dev/null
js sgfile "subscriptionGroup.json holds the group (RocketMQ's format)" \
    "j.subscriptionGroupTable.CG_DLQ.retryMaxTimes === 0 && j.subscriptionGroupTable.CG_DLQ.groupName === 'CG_DLQ' && j.dataVersion.counter >= 1"
ok sg_json "updateSubGroup -c --json" updateSubGroup $N -g CG_OTHER -c DefaultCluster -q 2 -s false --json
js sg_json "updateSubGroup --json" \
    "j.groupConfig.groupName === 'CG_OTHER' && j.groupConfig.retryQueueNums === 2 && j.groupConfig.consumeEnable === false && j.results[0].ok"
# retryMaxTimes 0: a send-back without maxReconsumeTimes goes straight to %DLQ%CG_DLQ.
rc=$("$NODE" "$CLIENTS/cli_helper.js" send-back "$BR" CG_DLQ "$PHYS0")
[ "$rc" = 0 ] || fail "send-back answered $rc"
ok dlq "printMsg of the dead-letter topic" printMsg $N -t "%DLQ%CG_DLQ" --json
js dlq "the group's retryMaxTimes sent the message to %DLQ%CG_DLQ" \
    "j.queues.flatMap(q => q.messages).length === 1 && j.queues[0].messages[0].keys === 'ck-0' && j.queues[0].messages[0].reconsumeTimes === 1"
# GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201) and DELETE_SUBSCRIPTIONGROUP (207), raw
"$NODE" "$CLIENTS/cli_helper.js" request "$BR" 201 >"$T_WORK/sg201.out"
js sg201 "GET_ALL_SUBSCRIPTIONGROUP_CONFIG lists both groups" \
    "j.code === 0 && Object.keys(JSON.parse(j.body).subscriptionGroupTable).join() === 'CG_DLQ,CG_OTHER'"
"$NODE" "$CLIENTS/cli_helper.js" request "$BR" 207 groupName=CG_OTHER cleanOffset=true >"$T_WORK/sg207.out"
"$NODE" "$CLIENTS/cli_helper.js" request "$BR" 201 >"$T_WORK/sg201b.out"
js sg201b "DELETE_SUBSCRIPTIONGROUP removed CG_OTHER" \
    "j.code === 0 && Object.keys(JSON.parse(j.body).subscriptionGroupTable).join() === 'CG_DLQ'"
refused sg_nog "updateSubGroup without -g" 2 "give -g GROUP" updateSubGroup $N -b "$BR"
refused sg_badr "updateSubGroup: bad -r" 2 "-r 'lots' is not a number" updateSubGroup $N -g G -b "$BR" -r lots
refused sg_both "updateSubGroup: -b and -c" 2 "give -b or -c, not both" updateSubGroup $N -g G -b "$BR" -c DefaultCluster
refused sg_bads "updateSubGroup: bad -s" 2 "-s 'yes' is not true or false" updateSubGroup $N -g G -b "$BR" -s yes
refused sg_dead "updateSubGroup: unreachable broker" 1 "cannot reach broker $DEAD" updateSubGroup $N -g G -b "$DEAD"

# ------------------------------------------------------------------ brokerStatus / getBrokerConfig / updateBrokerConfig
ok bs "brokerStatus -b" brokerStatus $N -b "$BR"
has bs "brokerStatus: version line" '^brokerVersionDesc +: V5_3_3$'
ok bs_json "brokerStatus -c --json" brokerStatus $N -c DefaultCluster --json
js bs_json "brokerStatus --json" "j.brokers.length === 1 && j.brokers[0].addr === '$BR' && j.brokers[0].table.brokerActive === 'true'"
refused bs_none "brokerStatus without -b/-c" 2 "give the broker with -b ADDR" brokerStatus $N
refused bs_dead "brokerStatus: unreachable broker" 1 "cannot reach broker $DEAD.*clusterList" brokerStatus -b "$DEAD"

ok gc "getBrokerConfig -b" getBrokerConfig $N -b "$BR"
has gc "getBrokerConfig: banner" "^============$BR============\$"
has gc "getBrokerConfig: a setting" '^brokerName +=  broker-a$'
ok ub "updateBrokerConfig" updateBrokerConfig $N -b "$BR" -k maxPulledBytes -v 524288
has ub "updateBrokerConfig says success" "^update broker config success, $BR\$"
ok gc_json "getBrokerConfig -c --json" getBrokerConfig $N -c DefaultCluster --json
js gc_json "getBrokerConfig --json shows the change" \
    "j.brokers[0].config.maxPulledBytes === '524288' && j.brokers[0].brokerId === 0"
ok ub_json "updateBrokerConfig -c --json" updateBrokerConfig $N -c DefaultCluster -k maxPulledBytes -v 262144 --json
js ub_json "updateBrokerConfig --json" "j.key === 'maxPulledBytes' && j.results.length === 1 && j.results[0].ok"
refused ub_ro "updateBrokerConfig: a start-up setting" 1 "listenPort: cannot change while running" \
    updateBrokerConfig $N -b "$BR" -k listenPort -v 1
refused ub_bad "updateBrokerConfig: bad value" 1 "maxPulledBytes" updateBrokerConfig $N -b "$BR" -k maxPulledBytes -v lots
refused ub_nov "updateBrokerConfig without -v" 2 "give -v VALUE" updateBrokerConfig $N -b "$BR" -k maxPulledBytes
refused gc_badb "getBrokerConfig: bad -b" 2 "-b 'broker-a' is not a broker address" getBrokerConfig -b broker-a

# ------------------------------------------------------------------ deleteTopic
ok dt "deleteTopic" deleteTopic $N -t CliTopic2 -c DefaultCluster
has dt "deleteTopic: from the cluster" '^delete topic \[CliTopic2\] from cluster \[DefaultCluster\] success\.$'
has dt "deleteTopic: from the name server" '^delete topic \[CliTopic2\] from NameServer success\.$'
refused dt_gone "topicRoute after deleteTopic" 1 "topic 'CliTopic2' is not known" topicRoute $N -t CliTopic2
cli dt_list topicList $N
grep -q '^CliTopic2$' "$T_WORK/dt_list.out" && fail "topicList still lists CliTopic2" ||
    pass "topicList no longer lists CliTopic2"
ok ut3 "updateTopic for a --json delete" updateTopic $N -b "$BR" -t CliTopic3
wait_cli_route CliTopic3
ok dt_json "deleteTopic --json" deleteTopic $N -t CliTopic3 -c DefaultCluster --json
js dt_json "deleteTopic --json" "j.topic === 'CliTopic3' && j.results[0].ok && j.namesrvDeleted === true"
refused dt_unknown "deleteTopic: unknown topic" 1 "topic 'Nope' is not known" deleteTopic $N -t Nope -c DefaultCluster
refused dt_noc "deleteTopic without -c" 2 "give -c CLUSTER" deleteTopic $N -t $T
refused dt_nocl "deleteTopic: unknown cluster" 1 "cluster 'Nope' is not known" deleteTopic $N -t $T -c Nope

# The tool itself must not trip a sanitizer (a leak report changes its
# exit status too, but a report on an error path must not go unseen).
if grep -lE "$T_SAN_RE" "$T_WORK"/*.err >"$T_WORK/san.list" 2>/dev/null; then
    fail "sanitizer report from sprocket in: $(tr '\n' ' ' <"$T_WORK/san.list")"
else
    pass "no sanitizer report from sprocket"
fi

daemon_alive sd || die "the daemon died during the commands"
daemon_stop sd
t_finish
