'use strict';
/*
 * consume.js - an ali-ons push consumer (CLUSTERING) that logs every
 * delivery.
 *
 * Environment:
 *   NAMESRV       name server(s) (127.0.0.1:9876)
 *   TOPIC         topic to subscribe to (required; may be %DLQ%<group>)
 *   GROUP         consumer group (CG_SPROCKET_TEST)
 *   SUB           subscription expression ('*'), e.g. 'TagA||TagC'
 *   CFW           consumeFromWhere (CONSUME_FROM_FIRST_OFFSET)
 *   EXPECT        stop once this many distinct keys were delivered
 *   MIN_RECONSUME count a key towards EXPECT only when it was delivered
 *                 with reconsumeTimes >= this (0)
 *   LINGER_MS     after EXPECT is met keep consuming this long (0), so
 *                 that late duplicates or wrong tags get recorded
 *   DURATION_MS   without EXPECT: stop after this long
 *   FAIL_MODE     none | always (the handler always throws: retry, then
 *                 DLQ) | first (throws on reconsumeTimes 0 only)
 *   MAX_RECONSUME the consumer's maxReconsumeTimes (ali-ons default 16)
 *   OUT           file: one JSON line per delivery
 *                 {"key","tag","topic","qtopic","msgId","queueId",
 *                  "queueOffset","broker","store","reconsumeTimes","pid",
 *                  "t","bk","bi","len"}
 *                 qtopic is the queue's topic (%RETRY%<group> for retried
 *                 messages, whose "topic" ali-ons resets to the original);
 *                 bk/bi are the key and index found in the body.
 *   STATUS        file rewritten whenever something changes:
 *                 {"pid","clientId","queues":[...],"delivered","distinct",
 *                  "pulledTags":{"topic":{"tag":n}}}
 *                 "queues" are the queues of TOPIC this process owns now;
 *                 pulledTags counts messages in PULL replies before
 *                 ali-ons' own tag filter (to see the broker's filter).
 *   FULL=1        OUT records also carry "body" (the body as a string) and
 *                 "props" (every property, system ones included)
 *   MAX_MS        own deadline (120000): exit 2 if EXPECT was not met
 *   ROUTE_POLL_MS, HEARTBEAT_MS, PERSIST_MS, REBALANCE_MS: ali-ons intervals
 *
 * SIGTERM/SIGINT: close cleanly (offsets committed, UNREGISTER_CLIENT) and
 * exit 0, or 2 when EXPECT was set and not met.
 * Exit: 0 expectation met, 1 error, 2 own timeout.
 */

const fs = require('fs');
const { Consumer } = require('ali-ons');
const c = require('./lib/common');

const topic = c.envStr('TOPIC', '');
const group = c.envStr('GROUP', 'CG_SPROCKET_TEST');
const sub = c.envStr('SUB', '*');
const expect = c.envInt('EXPECT', 0);
const minReconsume = c.envInt('MIN_RECONSUME', 0);
const lingerMs = c.envInt('LINGER_MS', 0);
const durationMs = c.envInt('DURATION_MS', 0);
const failMode = c.envStr('FAIL_MODE', 'none');
const maxMs = c.envInt('MAX_MS', 120000);
const statusPath = c.envStr('STATUS', '');
const full = c.envBool('FULL');
const out = new c.JsonlWriter(c.envStr('OUT', ''));
const logErr = c.rateLimiter();

const retryTopic = '%RETRY%' + group;
const counted = new Set();
const seen = new Set();
const pulledTags = {};
let delivered = 0;
let consumer;
let finishing = false;
let lastStatus = '';

function parseBody(msg) {
  try {
    const b = JSON.parse(msg.body.toString());
    return { bk: b.key, bi: b.i };
  } catch (e) {
    return { bk: null, bi: null };
  }
}

function ownedQueues() {
  const qs = [];
  if (!consumer) return qs;
  for (const v of consumer.processQueueTable.values()) {
    const mq = v.messageQueue;
    if (mq.topic === topic) qs.push(`${mq.brokerName}:${mq.queueId}`);
  }
  return qs.sort();
}

function writeStatus(force) {
  const st = {
    pid: process.pid,
    clientId: consumer ? consumer.clientId : null,
    queues: ownedQueues(),
    delivered,
    distinct: counted.size,
    pulledTags,
  };
  const s = JSON.stringify(st);
  if (!force && s === lastStatus) return;
  const prevQueues = lastStatus ? JSON.stringify(JSON.parse(lastStatus).queues) : '';
  lastStatus = s;
  if (JSON.stringify(st.queues) !== prevQueues) {
    process.stdout.write(`ALLOC ${JSON.stringify(st.queues)}\n`);
  }
  if (statusPath) {
    const tmp = `${statusPath}.tmp`;
    fs.writeFileSync(tmp, s + '\n');
    fs.renameSync(tmp, statusPath);
  }
}

async function finish(code, why) {
  if (finishing) return;
  finishing = true;
  process.stdout.write(`consumer stopping (${why}): delivered ${delivered}, distinct keys ${counted.size}` +
    `${expect ? `/${expect}` : ''}\n`);
  writeStatus(true);
  try {
    if (consumer) await c.withTimeout(consumer.close(), 15000, 'consumer.close()');
  } catch (err) {
    logErr(`[consumer close] ${err.message}`);
  }
  out.close();
  process.stdout.write('consumer closed\n');
  process.exit(code);
}

function expectationMet() {
  return expect > 0 && counted.size >= expect;
}

async function handler(msg, mq) {
  const now = Date.now();
  const b = parseBody(msg);
  const key = msg.keys || null;
  const rec = {
    key,
    tag: msg.tags || null,
    topic: msg.topic,
    qtopic: mq ? mq.topic : retryTopic,
    msgId: msg.msgId,
    queueId: msg.queueId,
    queueOffset: msg.queueOffset,
    broker: mq ? mq.brokerName : null,
    store: msg.storeHost,
    reconsumeTimes: msg.reconsumeTimes,
    pid: process.pid,
    t: now,
    bk: b.bk,
    bi: b.bi,
    len: msg.body ? msg.body.length : 0,
  };
  if (full) {
    rec.body = msg.body ? msg.body.toString() : null;
    rec.props = Object.assign({}, msg.properties);
  }
  if (finishing) return; /* closing: do not log what will be redelivered */
  out.write(rec);
  delivered++;
  seen.add(key);
  if (msg.reconsumeTimes >= minReconsume) counted.add(key);

  if (expect > 0 && counted.size >= expect && !finishing && !handler.met) {
    handler.met = true;
    process.stdout.write(`expectation met: ${counted.size} distinct keys\n`);
    setTimeout(() => finish(0, 'expectation met'), lingerMs);
  }
  if (failMode === 'always' || (failMode === 'first' && msg.reconsumeTimes === 0)) {
    throw new Error(`FAIL_MODE=${failMode}: refusing ${key} (reconsumeTimes ${msg.reconsumeTimes})`);
  }
}

/* Count what PULL replies carry before ali-ons filters tags itself. */
function tapPulls(client) {
  const orig = client.pullMessage;
  client.pullMessage = async function(...args) {
    const r = await orig.apply(this, args);
    for (const m of r.msgFoundList || []) {
      const t = pulledTags[m.topic] || (pulledTags[m.topic] = {});
      const tag = m.tags || '';
      t[tag] = (t[tag] || 0) + 1;
    }
    return r;
  };
}

async function main() {
  if (!topic) throw new Error('TOPIC is required');
  consumer = new Consumer(Object.assign(c.clientOptions(), {
    consumerGroup: group,
    consumeFromWhere: c.envStr('CFW', 'CONSUME_FROM_FIRST_OFFSET'),
    maxReconsumeTimes: c.envInt('MAX_RECONSUME', 16),
  }));
  consumer.on('error', err => logErr(`[consumer error event] ${err.name} ${err.message}`));
  tapPulls(consumer._mqClient);
  consumer.subscribe(topic, sub, async (msg, mq) => handler(msg, mq));
  await c.withTimeout(consumer.ready(), 30000, 'consumer.ready()');
  process.stdout.write(`consumer ready, clientId=${consumer.clientId} group=${group} topic=${topic} sub=${sub}\n`);

  setInterval(() => writeStatus(false), 250).unref();
  writeStatus(true);

  if (!expect && durationMs > 0) {
    setTimeout(() => finish(0, 'duration elapsed'), durationMs);
  }
  setTimeout(() => {
    if (expect && !expectationMet()) {
      process.stdout.write(`[consumer] giving up, received ${counted.size}/${expect}\n`);
      finish(2, 'MAX_MS');
    } else {
      finish(expect ? 0 : 2, 'MAX_MS');
    }
  }, maxMs);
}

for (const sig of [ 'SIGTERM', 'SIGINT' ]) {
  process.on(sig, () => finish(expect && !expectationMet() ? 2 : 0, sig));
}

main().catch(err => {
  process.stderr.write(`[consumer FAILED] ${err.stack || err}\n`);
  process.exit(1);
});
