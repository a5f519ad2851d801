'use strict';
/*
 * locks.js - LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42) of orderly
 * consumers over the raw remoting protocol (PROTOCOL.md 3.4).
 *
 * Environment:
 *   BROKER        broker address host:port (required)
 *   LOCK_LIVE_MS  the daemon's rebalanceLockMaxLiveTime (2000)
 *
 * Checks: A locks, B cannot; A renews (and keeps the lock past the live
 * time by renewing); A unlocks, then B can; B's lock expires after the
 * live time and A takes it; unlocking another client's queue does
 * nothing; locks are per group; oneway unlock; UNREGISTER_CLIENT releases
 * the client's locks in that group; queues listed twice are reported
 * once, brokerName echoed; malformed bodies get an error reply and
 * nothing changes. Prints PASS/FAIL/INFO lines; exit 0 when nothing
 * failed, 1 otherwise.
 */

const { Conn } = require('./lib/remoting');
const { envStr, envInt, sleep } = require('./lib/common');

const broker = envStr('BROKER', '');
const LIVE = envInt('LOCK_LIVE_MS', 2000);
const RUN = Date.now().toString(36).toUpperCase();

if (!broker) {
  process.stderr.write('locks.js: BROKER is required\n');
  process.exit(2);
}

let failures = 0;
const out = s => process.stdout.write(s + '\n');
function verdict(ok, what, detail) {
  if (ok) {
    out(`PASS ${what}${detail ? ` (${detail})` : ''}`);
  } else {
    failures++;
    out(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}
const short = (x, n = 300) => {
  const s = typeof x === 'string' ? x : JSON.stringify(x);
  return s && s.length > n ? s.slice(0, n) + '...' : s;
};
const repStr = r => `code ${r.code}${r.remark ? ` remark "${short(r.remark, 160)}"` : ''}${r.body && r.body.length ? ` body ${short(r.body.toString(), 200)}` : ''}`;

const T = `LockTopic_${RUN}`;
const G = `CG_LOCK_${RUN}`;
const A = `127.0.0.1@lockA#${RUN}`;
const B = `127.0.0.1@lockB#${RUN}`;
const mq = (q, topic = T, brokerName = 'broker-a') => ({ brokerName, queueId: q, topic });

let c;

/* LOCK_BATCH_MQ; returns {r, queues: sorted "topic:qid" of lockOKMQSet, set}. */
async function lock(client, queues, group = G) {
  const r = await c.request(41, {}, JSON.stringify({ clientId: client, consumerGroup: group, mqSet: queues, onlyThisBroker: false }), 5000);
  let set = null;
  if (r.code === 0) {
    try {
      set = JSON.parse(r.body.toString()).lockOKMQSet;
    } catch (e) {
      set = null;
    }
  }
  const qs = Array.isArray(set) ? set.map(x => `${x.topic}:${x.queueId}`).sort() : null;
  return { r, set, queues: qs };
}

async function unlock(client, queues, group = G, oneway = false) {
  const body = JSON.stringify({ clientId: client, consumerGroup: group, mqSet: queues, onlyThisBroker: false });
  if (oneway) {
    c.oneway(42, {}, body);
    return null;
  }
  return c.request(42, {}, body, 5000);
}

const names = (...qs) => qs.map(q => `${T}:${q}`).sort().join(',');
const got = l => (l.queues ? l.queues.join(',') : `(${repStr(l.r)})`);

async function main() {
  c = new Conn(broker);
  await c.connect(3000);

  const a1 = await lock(A, [ mq(0), mq(1) ]);
  const e = a1.set && a1.set[0];
  verdict(a1.r.code === 0 && got(a1) === names(0, 1) && e && e.brokerName === 'broker-a' && typeof e.queueId === 'number',
    'A locks two free queues: both in lockOKMQSet ({brokerName, queueId, topic})', repStr(a1.r));
  const b1 = await lock(B, [ mq(0), mq(2) ]);
  verdict(b1.r.code === 0 && got(b1) === names(2), 'B cannot lock A\'s queue, gets the free one', got(b1));
  const a2 = await lock(A, [ mq(0), mq(1) ]);
  verdict(got(a2) === names(0, 1), 'A renews its locks', got(a2));

  /* renewing keeps a lock past the live time */
  const t0 = Date.now();
  while (Date.now() - t0 < LIVE + 700) {
    await sleep(Math.floor(LIVE / 4));
    await lock(A, [ mq(0) ]);
  }
  const b2 = await lock(B, [ mq(0) ]);
  verdict(got(b2) === '', `a lock renewed every ${Math.floor(LIVE / 4)} ms is still A's after ${Date.now() - t0} ms`, got(b2));

  /* unlock by another client does nothing; by the holder frees it */
  const ub = await unlock(B, [ mq(0) ]);
  const b3 = await lock(B, [ mq(0) ]);
  verdict(ub.code === 0 && got(b3) === '', 'B unlocking A\'s queue replies 0 and changes nothing', `${repStr(ub)}; ${got(b3)}`);
  const ua = await unlock(A, [ mq(0) ]);
  const b4 = await lock(B, [ mq(0), mq(2) ]);
  verdict(ua.code === 0 && got(b4) === names(0, 2), 'after A unlocks, B can lock the queue (and renews its other one)',
    `${repStr(ua)}; ${got(b4)}`);

  /* expiry: B stops renewing queue 0 and 2; A takes them after the live time */
  const a3 = await lock(A, [ mq(0), mq(2) ]);
  verdict(got(a3) === '', 'A cannot take B\'s fresh locks', got(a3));
  await sleep(LIVE + 600);
  const a4 = await lock(A, [ mq(0), mq(2) ]);
  verdict(got(a4) === names(0, 2), `after ${LIVE + 600} ms without renewal B's locks have expired and A takes them`, got(a4));
  const b5 = await lock(B, [ mq(0), mq(2) ]);
  verdict(got(b5) === '', 'and B cannot lock them back', got(b5));

  /* groups are separate; oneway unlock */
  const o1 = await lock(B, [ mq(0) ], `${G}_OTHER`);
  verdict(got(o1) === names(0), 'the same queue is locked separately per consumer group', got(o1));
  await unlock(A, [ mq(0), mq(2) ], G, true);
  await sleep(200);
  const b6 = await lock(B, [ mq(0), mq(2) ]);
  verdict(got(b6) === names(0, 2), 'a oneway UNLOCK_BATCH_MQ releases the queues', got(b6));

  /* duplicates and brokerName echo */
  const d = await lock(B, [ mq(0), mq(0), mq(3, T, 'other-name') ]);
  const d3 = d.set ? d.set.find(x => x.queueId === 3) : null;
  verdict(d.set && d.set.length === 2 && d3 && d3.brokerName === 'other-name', 'a queue listed twice is reported once; brokerName is echoed',
    repStr(d.r));

  /* UNREGISTER_CLIENT releases that client's locks in the group */
  const u = await c.request(35, { clientID: B, consumerGroup: G }, null, 3000);
  const a5 = await lock(A, [ mq(0), mq(2), mq(3) ]);
  const o2 = await lock(A, [ mq(0) ], `${G}_OTHER`);
  verdict(u.code === 0 && got(a5) === names(0, 2, 3) && got(o2) === '',
    'UNREGISTER_CLIENT with a consumerGroup releases the client\'s locks in that group only', `${got(a5)}; other group ${got(o2)}`);

  /* malformed bodies: B holds queue 1 first, and a bad request must not release it */
  const b7 = await lock(B, [ mq(1) ]);
  verdict(got(b7) === names(1), 'B locks queue 1 (A\'s lock on it has expired)', got(b7));
  const bad = [
    [ 'no body', null ],
    [ 'a body that is not JSON', 'lock me' ],
    [ 'a JSON array', '[1,2]' ],
    [ 'no clientId', JSON.stringify({ consumerGroup: G, mqSet: [ mq(1) ] }) ],
    [ 'no consumerGroup', JSON.stringify({ clientId: B, mqSet: [ mq(1) ] }) ],
    [ 'mqSet not an array', JSON.stringify({ clientId: B, consumerGroup: G, mqSet: { topic: T } }) ],
    [ 'an mqSet element that is not an object', JSON.stringify({ clientId: B, consumerGroup: G, mqSet: [ mq(1), 7 ] }) ],
    [ 'a queueId that is a string', JSON.stringify({ clientId: B, consumerGroup: G, mqSet: [ { topic: T, queueId: '1' } ] }) ],
    [ 'a negative queueId', JSON.stringify({ clientId: B, consumerGroup: G, mqSet: [ mq(-1) ] }) ],
    [ 'a fractional queueId', JSON.stringify({ clientId: B, consumerGroup: G, mqSet: [ mq(1.5) ] }) ],
    [ 'a 300-byte topic', JSON.stringify({ clientId: B, consumerGroup: G, mqSet: [ mq(1, 'x'.repeat(300)) ] }) ],
    [ 'a clientId that is a number', JSON.stringify({ clientId: 5, consumerGroup: G, mqSet: [ mq(1) ] }) ],
    [ 'deep nesting', '{"clientId":"x","consumerGroup":"g","mqSet":' + '['.repeat(5000) + ']'.repeat(5000) + '}' ],
    [ 'a truncated body', '{"clientId":"x","consumerGroup":"g","mqSet":[{"topic":"t","queueId":1' ],
  ];
  for (const [ what, body ] of bad) {
    for (const code of [ 41, 42 ]) {
      const r = await c.request(code, {}, body, 5000);
      verdict(r.code !== 0 && r.remark, `${code === 41 ? 'LOCK' : 'UNLOCK'}_BATCH_MQ with ${what} gets an error reply`, repStr(r));
    }
  }
  const a6 = await lock(A, [ mq(1) ]);
  verdict(got(a6) === '', 'malformed requests changed nothing (queue 1 is still B\'s)', got(a6));
  const empty = await lock(A, []);
  verdict(empty.r.code === 0 && got(empty) === '', 'an empty mqSet gets an empty lockOKMQSet', repStr(empty.r));
  c.close();
  out(`INFO ${failures} failed`);
  return failures ? 1 : 0;
}

main().then(code => process.exit(code), e => {
  out(`FAIL locks.js: ${e.stack || e.message}`);
  process.exit(1);
});
