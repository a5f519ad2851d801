'use strict';
/*
 * cli_helper.js - raw remoting clients for tests/integration/cli_admin.sh,
 * for what ali-ons cannot do: messages with a UNIQ_KEY, a client that stays
 * connected as producer and consumer and records what the broker sends it,
 * and a send-back without maxReconsumeTimes.
 *
 *   node cli_helper.js send-uniq BROKER TOPIC COUNT PREFIX
 *       SEND_MESSAGE (10) COUNT messages to queue 0 with UNIQ_KEY = PREFIX + i,
 *       KEYS = PREFIX-key-i, TAGS = TagU; prints one JSON line per message
 *       {"uniq","msgId","queueOffset"}; exit 1 unless all succeed
 *   node cli_helper.js hold BROKER CLIENTID PGROUP CGROUP TOPIC OUT
 *       HEART_BEAT (34) as producer of PGROUP and consumer of CGROUP
 *       (subscribed to TOPIC, CLUSTERING), again every second, until SIGTERM;
 *       every request the broker sends (NOTIFY_CONSUMER_IDS_CHANGED 40,
 *       RESET_CONSUMER_CLIENT_OFFSET 220, ...) is appended to OUT as a JSON
 *       line {"code","extFields","body"}; prints "ready" after the first
 *       heartbeat was answered
 *   node cli_helper.js send-back BROKER GROUP OFFSET
 *       CONSUMER_SEND_MSG_BACK (36) of the message at CommitLog OFFSET with
 *       delayLevel 0 and no maxReconsumeTimes; prints the reply code
 *   node cli_helper.js request BROKER CODE [KEY=VALUE...]
 *       any request with those extFields; prints {"code","remark","body"}
 *
 * BROKER is host:port. Diagnostics go to stderr.
 */

const fs = require('fs');
const { Conn } = require('./lib/remoting');
const { sleep } = require('./lib/common');

function props(o) {
  return Object.entries(o).map(([ k, v ]) => `${k}\u0001${v}\u0002`).join('');
}

async function sendUniq(broker, topic, count, prefix) {
  const c = new Conn(broker);
  await c.connect(3000);
  try {
    for (let i = 0; i < count; i++) {
      const uniq = `${prefix}${i}`;
      const r = await c.request(10, {
        producerGroup: 'PG_CLI_HELPER',
        topic,
        defaultTopic: 'TBW102',
        defaultTopicQueueNums: '4',
        queueId: '0',
        sysFlag: '0',
        bornTimestamp: String(Date.now()),
        flag: '0',
        properties: props({ UNIQ_KEY: uniq, KEYS: `${prefix}-key-${i}`, TAGS: 'TagU', WAIT: 'true' }),
        reconsumeTimes: '0',
        unitMode: 'false',
      }, Buffer.from(`uniq body ${i}`), 5000);
      if (r.code !== 0) throw new Error(`send ${uniq}: code ${r.code} ${r.remark || ''}`);
      process.stdout.write(JSON.stringify({ uniq, msgId: r.extFields.msgId,
        queueOffset: Number(r.extFields.queueOffset) }) + '\n');
    }
  } finally {
    c.close();
  }
  return 0;
}

async function hold(broker, clientID, pgroup, cgroup, topic, out) {
  const c = new Conn(broker);
  await c.connect(3000);
  const orig = c._onFrame.bind(c);
  c._onFrame = f => {
    if (f.header && (f.header.flag & 1) === 0) {
      fs.appendFileSync(out, JSON.stringify({ code: f.header.code, extFields: f.header.extFields || {},
        body: f.body.toString('utf8') }) + '\n');
    }
    orig(f);
  };
  const body = JSON.stringify({
    clientID,
    consumerDataSet: [ {
      consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
      consumeType: 'CONSUME_PASSIVELY',
      groupName: cgroup,
      messageModel: 'CLUSTERING',
      subscriptionDataSet: [ { classFilterMode: false, codeSet: [], expressionType: 'TAG',
        subString: '*', subVersion: Date.now(), tagsSet: [], topic } ],
      unitMode: false,
    } ],
    producerDataSet: [ { groupName: pgroup } ],
  });
  let stop = false;
  process.on('SIGTERM', () => { stop = true; });
  let first = true;
  while (!stop && !c.closed) {
    const r = await c.request(34, {}, Buffer.from(body), 5000);
    if (r.code !== 0) throw new Error(`heartbeat: code ${r.code} ${r.remark || ''}`);
    if (first) {
      process.stdout.write('ready\n');
      first = false;
    }
    for (let i = 0; i < 10 && !stop; i++) await sleep(100);
  }
  c.close();
  return 0;
}

async function sendBack(broker, group, offset) {
  const c = new Conn(broker);
  await c.connect(3000);
  try {
    const r = await c.request(36, { offset: String(offset), group, delayLevel: '0' }, null, 5000);
    process.stdout.write(`${r.code}\n`);
    return r.code === 0 ? 0 : 1;
  } finally {
    c.close();
  }
}

async function request(broker, code, kvs) {
  const c = new Conn(broker);
  await c.connect(3000);
  try {
    const ext = {};
    for (const kv of kvs) {
      const i = kv.indexOf('=');
      ext[kv.slice(0, i)] = kv.slice(i + 1);
    }
    const r = await c.request(Number(code), ext, null, 5000);
    process.stdout.write(JSON.stringify({ code: r.code, remark: r.remark || '',
      body: r.body.toString('utf8') }) + '\n');
    return 0;
  } finally {
    c.close();
  }
}

async function main(argv) {
  switch (argv[0]) {
    case 'send-uniq':
      return sendUniq(argv[1], argv[2], Number(argv[3]), argv[4]);
    case 'hold':
      return hold(argv[1], argv[2], argv[3], argv[4], argv[5], argv[6]);
    case 'send-back':
      return sendBack(argv[1], argv[2], argv[3]);
    case 'request':
      return request(argv[1], argv[2], argv.slice(3));
    default:
      process.stderr.write('usage: node cli_helper.js send-uniq|hold|send-back|request ... (see the header)\n');
      return 2;
  }
}

main(process.argv.slice(2)).then(code => process.exit(code), err => {
  process.stderr.write(`cli_helper: ${err.message}\n`);
  process.exit(1);
});
