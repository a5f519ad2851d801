'use strict';
/*
 * produce.js - send COUNT keyed, tagged messages with ali-ons and log every
 * acknowledged send.
 *
 * Environment:
 *   NAMESRV      name server(s), "host:port" or "a:p;b:p" (127.0.0.1:9876)
 *   TOPIC        topic (required; ali-ons cannot auto-create one)
 *   COUNT        messages to send (100); START first index (0)
 *   TAGS         comma list, used round robin over the indexes (TagA)
 *   KEY_PREFIX   message key = KEY_PREFIX + index (k-)
 *   EXTRA_KEY    a second key for every message (none): keys "KEY EXTRA_KEY"
 *   PROPS        user properties of every message, "name=value,name=value"
 *   GROUP        producer group (PG_SPROCKET_TEST)
 *   CONCURRENCY  sends in flight (32)
 *   BODY_SIZE    pad the JSON body to this many bytes (0 = no padding;
 *                ali-ons deflates bodies of 4096 bytes or more)
 *   RATE         at most this many sends started per second (0 = no limit)
 *   OUT          file: one JSON line per acknowledged send
 *                {"i","key","tag","msgId","queueId","queueOffset","broker",
 *                 "status","t"}
 *   MAX_MS       overall deadline (120000)
 *   SEND_TIMEOUT ali-ons sendMsgTimeout (3000)
 *   ALLOW_FAIL=1 a failed send is retried (RETRY_MS apart, 200) until it is
 *                acknowledged or MAX_MS passes, and the exit status is 0
 *                however many failed: for tests that kill the broker.
 *
 * The body is JSON {"i":index,"key":key,"pad":"..."} so a consumer can
 * check that what it got matches the key. Only SEND_OK counts as
 * acknowledged; FLUSH_DISK_TIMEOUT and the other "stored but" statuses are
 * logged with their status and counted as failed (not retried: the message
 * may be stored).
 *
 * Prints "produced N ok M failed" and exits 0 when all were acknowledged
 * (or ALLOW_FAIL=1), 1 otherwise.
 */

const { Producer, Message } = require('ali-ons');
const c = require('./lib/common');

async function main() {
  const topic = c.envStr('TOPIC', '');
  if (!topic) throw new Error('TOPIC is required');
  const count = c.envInt('COUNT', 100);
  const start = c.envInt('START', 0);
  const tags = c.envStr('TAGS', 'TagA').split(',').map(s => s.trim()).filter(Boolean);
  const keyPrefix = c.envStr('KEY_PREFIX', 'k-');
  const extraKey = c.envStr('EXTRA_KEY', '');
  const props = c.envStr('PROPS', '').split(',').filter(Boolean).map(p => {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`PROPS entry '${p}' is not name=value`);
    return [ p.slice(0, eq), p.slice(eq + 1) ];
  });
  const group = c.envStr('GROUP', 'PG_SPROCKET_TEST');
  const concurrency = Math.max(1, c.envInt('CONCURRENCY', 32));
  const bodySize = c.envInt('BODY_SIZE', 0);
  const rate = c.envInt('RATE', 0);
  const maxMs = c.envInt('MAX_MS', 120000);
  const allowFail = c.envBool('ALLOW_FAIL');
  const retryMs = c.envInt('RETRY_MS', 200);
  const out = new c.JsonlWriter(c.envStr('OUT', ''));

  const t0 = Date.now();
  const deadline = t0 + maxMs;
  const logErr = c.rateLimiter();

  const producer = new Producer(Object.assign(c.clientOptions(), {
    producerGroup: group,
    sendMsgTimeout: c.envInt('SEND_TIMEOUT', 3000),
  }));
  producer.on('error', err => logErr(`[producer error event] ${err.name} ${err.message}`));
  await c.withTimeout(producer.ready(), 30000, 'producer.ready()');
  process.stdout.write(`producer ready, clientId=${producer.clientId}\n`);

  let next = 0;
  let ok = 0;
  let notOk = 0;
  let errors = 0;
  let stop = false;

  function body(i, key) {
    const b = { i, key, pad: '' };
    const base = Buffer.byteLength(JSON.stringify(b));
    if (bodySize > base) b.pad = 'x'.repeat(bodySize - base);
    return JSON.stringify(b);
  }

  async function sendOne(i) {
    const key = keyPrefix + i;
    const tag = tags[i % tags.length];
    for (;;) {
      const msg = new Message(topic, tag, body(i, key));
      msg.keys = extraKey ? [ key, extraKey ] : [ key ];
      for (const [ name, value ] of props) msg.properties[name] = value;
      try {
        const r = await producer.send(msg);
        const rec = {
          i, key, tag,
          msgId: r.msgId,
          queueId: Number(r.messageQueue.queueId),
          queueOffset: r.queueOffset,
          broker: r.messageQueue.brokerName,
          status: r.sendStatus,
          t: Date.now(),
        };
        out.write(rec);
        if (r.sendStatus === 'SEND_OK') {
          ok++;
        } else {
          notOk++;
          logErr(`[send ${key}] status ${r.sendStatus}`);
        }
        return;
      } catch (err) {
        errors++;
        logErr(`[send ${key} failed] ${err.name} ${err.code === undefined ? '' : err.code} ${err.message}`);
        if (!allowFail || Date.now() + retryMs >= deadline) {
          notOk++;
          return;
        }
        await c.sleep(retryMs);
      }
    }
  }

  async function worker() {
    while (!stop) {
      const n = next++;
      if (n >= count) return;
      if (rate > 0) {
        const due = t0 + Math.floor(n * 1000 / rate);
        const wait = due - Date.now();
        if (wait > 0) await c.sleep(wait);
      }
      if (Date.now() >= deadline) {
        stop = true;
        return;
      }
      await sendOne(start + n);
    }
  }

  const workers = [];
  for (let w = 0; w < concurrency; w++) workers.push(worker());
  await Promise.all(workers);

  const failed = count - ok;
  const secs = (Date.now() - t0) / 1000;
  process.stdout.write(`produced ${ok} ok ${failed} failed` +
    ` (${notOk} not acknowledged, ${errors} send errors, ${secs.toFixed(1)} s)\n`);
  out.close();
  try {
    await c.withTimeout(producer.close(), 5000, 'producer.close()');
  } catch (err) {
    logErr(`[producer close] ${err.message}`);
  }
  return failed === 0 || allowFail ? 0 : 1;
}

main().then(code => process.exit(code), err => {
  process.stderr.write(`[producer FAILED] ${err.stack || err}\n`);
  process.exit(1);
});
