'use strict';
/*
 * trans.js - transactional messages over the raw remoting protocol
 * (PROTOCOL.md 3.3, STORE.md 11): half sends, END_TRANSACTION (37) and
 * the broker's CHECK_TRANSACTION_STATE (39) to a producer registered by
 * HEART_BEAT, answered the way a Java producer answers (END oneway with
 * fromTransactionCheck=true and the offsets of the check).
 *
 * Environment:
 *   BROKER             broker address host:port (required)
 *   MODE               main (default), before-restart, after-restart, reject
 *   CHECK_INTERVAL_MS  the daemon's transactionCheckInterval (500)
 *   TIMEOUT_MS         the daemon's transactionTimeOut (1500)
 *   CHECK_MAX          the daemon's transactionCheckMax (3)
 *   STATE              file handed from before-restart to after-restart
 *
 * main: half stored aside (RMQ_SYS_TRANS_HALF_TOPIC, REAL_TOPIC ...), not
 *   visible; END refused for a wrong group, queue offset or CommitLog
 *   offset; commit visible on the real topic with its properties intact
 *   and TRAN_MSG gone, op record written; a second END changes nothing;
 *   rollback never visible and never checked; unknown then check answered
 *   commit -> visible once, answered rollback -> never; a producer that
 *   never answers is checked exactly CHECK_MAX times (TRANSACTION_CHECK_TIMES
 *   1..CHECK_MAX) and rolled back (copy in TRANS_CHECK_MAX_TIME_TOPIC); a
 *   group with no producer connected likewise; late ENDs after that change
 *   nothing; code 10 halves; batches refused; hostile ENDs answered.
 * before-restart: a committed and a rolled-back transaction, and one whose
 *   producer does not answer, left pending after its first check.
 * after-restart: the pending one is checked again with a higher check
 *   count and committed; ENDs repeated for the finished ones change
 *   nothing; nothing else is checked again.
 * reject: the daemon runs with rejectTransactionMessage=true.
 *
 * Prints PASS/FAIL/INFO lines; exit 0 when nothing failed, 1 otherwise.
 */

const fs = require('fs');
const { Conn } = require('./lib/remoting');
const { envStr, envInt, sleep } = require('./lib/common');
const { encodeProps, parseRecords, idOffset } = require('./lib/records');

const broker = envStr('BROKER', '');
const mode = envStr('MODE', 'main');
const INTERVAL = envInt('CHECK_INTERVAL_MS', 500);
const TIMEOUT = envInt('TIMEOUT_MS', 1500);
const CHECK_MAX = envInt('CHECK_MAX', 3);
const STATE = envStr('STATE', '');
const RUN = Date.now().toString(36).toUpperCase();

const HALF = 'RMQ_SYS_TRANS_HALF_TOPIC';
const OP = 'RMQ_SYS_TRANS_OP_HALF_TOPIC';
const MAXTIME = 'TRANS_CHECK_MAX_TIME_TOPIC';
const COMMIT = 8;
const ROLLBACK = 12;
const UNKNOWN = 0;

if (!broker) {
  process.stderr.write('trans.js: BROKER is required\n');
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
const info = s => out(`INFO ${s}`);
const short = (x, n = 300) => {
  const s = typeof x === 'string' ? x : JSON.stringify(x);
  return s && s.length > n ? s.slice(0, n) + '...' : s;
};
const repStr = r => `code ${r.code}${r.remark ? ` remark "${short(r.remark, 160)}"` : ''} ext ${short(r.extFields, 200)}`;

async function connect() {
  const c = new Conn(broker);
  await c.connect(3000);
  return c;
}

/* ------------------------------------------------------------ requests */

const V2 = { producerGroup: 'a', topic: 'b', defaultTopic: 'c', defaultTopicQueueNums: 'd', queueId: 'e',
  sysFlag: 'f', bornTimestamp: 'g', flag: 'h', properties: 'i', reconsumeTimes: 'j', unitMode: 'k' };

function sendExt(code, topic, queueId, group, props, sysFlag) {
  const h = {
    producerGroup: group, topic, defaultTopic: 'TBW102', defaultTopicQueueNums: '4',
    queueId: String(queueId), sysFlag: String(sysFlag), bornTimestamp: String(Date.now()), flag: '3',
    properties: encodeProps(props), reconsumeTimes: '0', unitMode: 'false',
  };
  if (code === 10) return h;
  const v = {};
  for (const [ k, val ] of Object.entries(h)) v[V2[k]] = val;
  if (code === 320) v.m = 'true';
  return v;
}

/*
 * A transactional send, as a Java producer makes it: TRAN_MSG=true,
 * PGROUP, sysFlag PREPARED (4). Returns {r, key, group, qoff, phys}.
 */
async function sendHalf(c, o) {
  const props = Object.assign({ TRAN_MSG: 'true', PGROUP: o.group, UNIQ_KEY: o.key, TAGS: 'TagTx', KEYS: `k-${o.key}`,
    WAIT: 'true' }, o.props || {});
  const r = await c.request(o.code || 310, sendExt(o.code || 310, o.topic, o.queueId, o.group, props, 4),
    Buffer.from(`body-${o.key}`), 5000);
  return { r, key: o.key, group: o.group, topic: o.topic, queueId: o.queueId,
    qoff: r.code === 0 ? Number(r.extFields.queueOffset) : -1, phys: r.code === 0 ? idOffset(r.extFields.msgId) : -1 };
}

async function sendPlain(c, topic, queueId, key) {
  const r = await c.request(310, sendExt(310, topic, queueId, 'PG_TX_PLAIN', { UNIQ_KEY: key, TAGS: 'TagPlain' }, 0),
    Buffer.from(`body-${key}`), 5000);
  return { r, phys: r.code === 0 ? idOffset(r.extFields.msgId) : -1 };
}

function endExt(tx, kind, o = {}) {
  const e = {
    producerGroup: o.group !== undefined ? o.group : tx.group,
    tranStateTableOffset: String(o.qoff !== undefined ? o.qoff : tx.qoff),
    commitLogOffset: String(o.phys !== undefined ? o.phys : tx.phys),
    commitOrRollback: String(kind),
    fromTransactionCheck: o.fromCheck ? 'true' : 'false',
    msgId: tx.key,
    transactionId: tx.key,
  };
  for (const k of o.drop || []) delete e[k];
  return e;
}

/* END_TRANSACTION; oneway (no reply) when o.oneway, as producers send it. */
function endTx(c, tx, kind, o = {}) {
  const e = endExt(tx, kind, o);
  if (o.oneway) {
    c.oneway(37, e);
    return Promise.resolve(null);
  }
  return c.request(37, e, null, 5000);
}

async function createTopic(c, topic, queues) {
  const r = await c.request(17, {
    topic, defaultTopic: 'TBW102', readQueueNums: String(queues), writeQueueNums: String(queues),
    perm: '6', topicFilterType: 'SINGLE_TAG', topicSysFlag: '0', order: 'false',
  }, null, 5000);
  if (r.code !== 0) throw new Error(`UPDATE_AND_CREATE_TOPIC ${topic}: ${repStr(r)}`);
}

async function maxOffset(c, topic, queueId) {
  const r = await c.request(30, { topic, queueId: String(queueId) }, null, 3000);
  return r.code === 0 ? Number(r.extFields.offset) : -1;
}

/* Every record of a queue from <from> on (pulls of 32). */
async function pullAll(c, topic, queueId, from = 0) {
  const recs = [];
  let off = from;
  for (let i = 0; i < 1000; i++) {
    const r = await c.request(11, {
      consumerGroup: 'CG_TX_CHECKER', topic, queueId: String(queueId), queueOffset: String(off), maxMsgNums: '32',
      sysFlag: '4', commitOffset: '0', suspendTimeoutMillis: '0', subscription: '*', subVersion: '0',
      expressionType: 'TAG',
    }, null, 5000);
    if (r.code !== 0) break;
    const p = parseRecords(r.body);
    if (p.error) throw new Error(`pull ${topic}/${queueId}@${off}: ${p.error}`);
    if (!p.recs.length) break;
    recs.push(...p.recs);
    off = Number(r.extFields.nextBeginOffset);
  }
  return recs;
}

/* UNIQ_KEY -> records of <topic> (all <queues> queues). */
async function byKey(c, topic, queues) {
  const m = new Map();
  for (let q = 0; q < queues; q++) {
    for (const rec of await pullAll(c, topic, q)) {
      const k = rec.props.UNIQ_KEY;
      if (!m.has(k)) m.set(k, []);
      m.get(k).push(rec);
    }
  }
  return m;
}
const count = (m, k) => (m.get(k) || []).length;

async function waitFor(fn, ms, step = 100) {
  const t0 = Date.now();
  for (;;) {
    if (await fn()) return true;
    if (Date.now() - t0 > ms) return false;
    await sleep(step);
  }
}

/* ------------------------------------------------------------ producer */

/*
 * A producer connection registered for <groups> by HEART_BEAT. Every
 * CHECK_TRANSACTION_STATE it receives is recorded; policy(key, check)
 * returns the answer (8, 12, 0) or null for none.
 */
class TxProducer {
  constructor(groups, policy) {
    this.id = `127.0.0.1@tx${Math.floor(Math.random() * 1e6)}#${RUN}`;
    this.groups = groups;
    this.policy = policy;
    this.checks = [];
    this.other = [];
  }

  async start() {
    this.c = await connect();
    this.c.onRequest = (h, body) => this.onRequest(h, body);
    const r = await this.c.request(34, {}, JSON.stringify({
      clientID: this.id, consumerDataSet: [], heartbeatFingerprint: 0,
      producerDataSet: this.groups.map(g => ({ groupName: g })), withoutSub: false,
    }), 3000);
    if (r.code !== 0) throw new Error(`HEART_BEAT: ${repStr(r)}`);
  }

  onRequest(h, body) {
    if (h.code !== 39) {
      this.other.push(h.code);
      return;
    }
    const e = h.extFields || {};
    const p = parseRecords(body);
    const rec = p.recs.length === 1 ? p.recs[0] : null;
    const chk = { at: Date.now(), header: h, ext: e, rec, key: e.msgId,
      problem: p.error || (p.recs.length !== 1 ? `${p.recs.length} records in the body` : null),
      times: rec ? Number(rec.props.TRANSACTION_CHECK_TIMES) : NaN };
    this.checks.push(chk);
    const kind = this.policy(chk.key, chk);
    if (kind !== null && kind !== undefined) {
      this.c.oneway(37, {
        producerGroup: rec ? rec.props.PGROUP : '', tranStateTableOffset: e.tranStateTableOffset,
        commitLogOffset: e.commitLogOffset, commitOrRollback: String(kind), fromTransactionCheck: 'true',
        msgId: e.msgId, transactionId: e.transactionId,
      });
      chk.answer = kind;
    }
  }

  checksOf(key) {
    return this.checks.filter(x => x.key === key);
  }

  close() {
    if (this.c) this.c.close();
  }
}

/* Problems of a check request for transaction <tx> (PROTOCOL.md 3.3). */
function checkProblems(chk, tx, topic) {
  const bad = [];
  const e = chk.ext;
  const h = chk.header;
  if ((h.flag & 2) !== 2) bad.push(`flag ${h.flag} is not oneway`);
  if (chk.problem) bad.push(chk.problem);
  if (e.msgId !== tx.key || e.transactionId !== tx.key) bad.push(`msgId ${e.msgId} transactionId ${e.transactionId}`);
  const qoff = Number(e.tranStateTableOffset);
  const phys = Number(e.commitLogOffset);
  if (!(qoff > tx.qoff)) bad.push(`tranStateTableOffset ${e.tranStateTableOffset} not past the half's ${tx.qoff} (a renewed copy)`);
  if (idOffset(e.offsetMsgId) !== phys) bad.push(`offsetMsgId ${e.offsetMsgId} does not name commitLogOffset ${e.commitLogOffset}`);
  if (e.topic === undefined) bad.push('no topic');
  const r = chk.rec;
  if (r) {
    if (r.topic !== topic) bad.push(`body topic ${r.topic}`);
    if (r.queueId !== tx.queueId) bad.push(`body queueId ${r.queueId} (want REAL_QID ${tx.queueId})`);
    if (r.queueOffset !== qoff || r.physOffset !== phys) bad.push(`body offsets ${r.queueOffset}/${r.physOffset}`);
    if (r.body.toString() !== `body-${tx.key}`) bad.push(`body "${short(r.body.toString(), 40)}"`);
    if (r.props.UNIQ_KEY !== tx.key || r.props.PGROUP !== tx.group || r.props.REAL_TOPIC !== topic) {
      bad.push(`properties ${short(r.props, 200)}`);
    }
  }
  return bad.join(', ');
}

/* ------------------------------------------------------------ main */

async function modeMain() {
  const c = await connect();
  const T = `TxTopic_${RUN}`;
  const key = n => `TX${RUN}${n}`;
  await createTopic(c, T, 4);
  const policies = new Map();
  const P = new TxProducer([ 'PG_TX' ], k => policies.get(k));
  await P.start();

  /* ---- a half is stored aside, not visible */
  const t1 = await sendHalf(c, { topic: T, queueId: 2, group: 'PG_TX', key: key('K1'), props: { biz: 'v1' } });
  const e1 = t1.r.extFields;
  verdict(t1.r.code === 0 && e1.queueId === '2' && t1.phys >= 0 && e1.transactionId === t1.key && t1.qoff >= 0,
    'half send replies 0 with the producer\'s queueId, the half\'s queueOffset and offset msgId, transactionId = UNIQ_KEY',
    repStr(t1.r));
  const hv = await c.request(33, { offset: String(t1.phys) }, null, 3000);
  const hp = hv.code === 0 ? parseRecords(hv.body) : { recs: [] };
  const h = hp.recs[0];
  verdict(h && h.topic === HALF && h.queueId === 0 && h.queueOffset === t1.qoff && (h.sysFlag & 0xc) === 0 &&
    h.props.REAL_TOPIC === T && h.props.REAL_QID === '2' && h.props.__transactionId__ === t1.key &&
    h.props.TRAN_MSG === 'true' && h.props.PGROUP === 'PG_TX' && h.props.biz === 'v1',
  'the half is stored in RMQ_SYS_TRANS_HALF_TOPIC queue 0 with REAL_TOPIC, REAL_QID, __transactionId__, transaction bits NOT',
  h ? `${h.topic}/${h.queueId}@${h.queueOffset} sysFlag ${h.sysFlag} ${short(h.props, 200)}` : repStr(hv));
  verdict(await maxOffset(c, T, 2) === 0, 'the half is not visible on the real topic');

  /* ---- END validation */
  const plain = await sendPlain(c, T, 3, key('P1'));
  const refusals = [
    [ 'a wrong producerGroup', { group: 'PG_OTHER' } ],
    [ 'a wrong tranStateTableOffset', { qoff: t1.qoff + 1000 } ],
    [ 'a commitLogOffset of an ordinary message', { phys: plain.phys, qoff: 0 } ],
    [ 'a commitLogOffset inside a record', { phys: t1.phys + 1 } ],
    [ 'a commitLogOffset past the end', { phys: 1e15 } ],
    [ 'a negative commitLogOffset', { phys: -5 } ],
    [ 'no commitLogOffset', { drop: [ 'commitLogOffset' ] } ],
    [ 'no producerGroup', { drop: [ 'producerGroup' ] } ],
    [ 'a tranStateTableOffset that is not a number', { qoff: 'abc' } ],
  ];
  for (const [ what, o ] of refusals) {
    const r = await endTx(c, t1, COMMIT, o);
    verdict(r.code !== 0 && r.remark, `END_TRANSACTION with ${what} is refused with a remark`, repStr(r));
  }
  const bogus = await c.request(37, endExt(t1, 5), null, 5000);
  verdict(bogus.code !== 0, 'END_TRANSACTION with commitOrRollback 5 is refused', repStr(bogus));
  verdict(await maxOffset(c, T, 2) === 0, 'refused ENDs commit nothing');

  /* ---- commit */
  const cr = await endTx(c, t1, COMMIT);
  verdict(cr.code === 0, 'END_TRANSACTION commit (not oneway) replies 0', repStr(cr));
  await waitFor(async () => await maxOffset(c, T, 2) >= 1, 3000);
  const got = await pullAll(c, T, 2);
  const m = got[0];
  verdict(got.length === 1 && m.topic === T && m.queueId === 2 && m.body.toString() === `body-${t1.key}` &&
    m.flag === 3 && m.props.biz === 'v1' && m.props.UNIQ_KEY === t1.key && m.props.TAGS === 'TagTx' &&
    m.props.KEYS === `k-${t1.key}` && m.props.PGROUP === 'PG_TX' && m.props.TRAN_MSG === undefined &&
    m.props.REAL_TOPIC === undefined && m.props.REAL_QID === undefined && (m.sysFlag & 0xc) === COMMIT &&
    m.preparedOffset === t1.phys,
  'the committed message is pulled from the real topic and queue: body, flag and properties kept, TRAN_MSG/REAL_TOPIC/REAL_QID gone, sysFlag COMMIT, PREPARED TX OFFSET = the half',
  m ? `${got.length} records; sysFlag ${m.sysFlag} prepared ${m.preparedOffset} ${short(m.props, 250)}` : 'nothing pulled');
  const ops = await pullAll(c, OP, 0);
  const op = ops.find(r => r.body.toString().split(',').includes(String(t1.qoff)));
  verdict(op && op.props.TAGS === 'd' && /^(\d+,)+$/.test(op.body.toString()),
    'an op record (RMQ_SYS_TRANS_OP_HALF_TOPIC, tag d, body "offset,") names the half',
    op ? `body "${op.body}"` : `${ops.length} op records`);

  /* ---- a second END changes nothing */
  const again = await endTx(c, t1, COMMIT);
  verdict(again.code === 0, 'a second commit END is answered 0', repStr(again));
  await endTx(c, t1, COMMIT, { oneway: true });
  await endTx(c, t1, ROLLBACK, { oneway: true });
  await sleep(300);
  verdict(await maxOffset(c, T, 2) === 1, 'repeated ENDs (commit, oneway commit, rollback) do not commit again');

  /* ---- rollback: never visible, never checked */
  const t2 = await sendHalf(c, { topic: T, queueId: 1, group: 'PG_TX', key: key('K2') });
  policies.set(t2.key, COMMIT); /* a check would wrongly commit it */
  const rr = await endTx(c, t2, ROLLBACK);
  const rc = await endTx(c, t2, COMMIT);
  verdict(t2.r.code === 0 && rr.code === 0 && rc.code === 0, 'rollback END replies 0 (and a commit after it too)',
    `${repStr(rr)}; ${repStr(rc)}`);

  /* ---- check-back: commit, rollback, no answer, no producer */
  const t3 = await sendHalf(c, { topic: T, queueId: 0, group: 'PG_TX', key: key('K3'), props: { biz: 'v3' } });
  const t4 = await sendHalf(c, { topic: T, queueId: 1, group: 'PG_TX', key: key('K4') });
  const t5 = await sendHalf(c, { topic: T, queueId: 3, group: 'PG_TX', key: key('K5') });
  const t6 = await sendHalf(c, { topic: T, queueId: 0, group: 'PG_TX_NOBODY', key: key('K6') });
  const t8 = await sendHalf(c, { topic: T, queueId: 1, group: 'PG_TX', key: key('K8'), code: 10 });
  const sentAt = Date.now();
  policies.set(t3.key, COMMIT);
  policies.set(t4.key, ROLLBACK);
  verdict([ t3, t4, t5, t6, t8 ].every(t => t.r.code === 0), 'halves sent with codes 310 and 10',
    [ t3, t4, t5, t6, t8 ].map(t => t.r.code).join(','));
  const unk = await endTx(c, t3, UNKNOWN);
  await endTx(c, t4, UNKNOWN, { oneway: true });
  verdict(unk.code === 0, 'END with commitOrRollback 0 (unknown) replies 0 and leaves the half pending', repStr(unk));
  const c8 = await endTx(c, t8, COMMIT);
  verdict(c8.code === 0, 'a half sent with code 10 (long header names) commits', repStr(c8));

  const deadline = TIMEOUT + (CHECK_MAX + 4) * INTERVAL + 8000;
  let maxTimeRecs = new Map();
  const settled = await waitFor(async () => {
    if (P.checksOf(t3.key).length < 1 || P.checksOf(t4.key).length < 1 || P.checksOf(t5.key).length < CHECK_MAX) {
      return false;
    }
    maxTimeRecs = await byKey(c, MAXTIME, 1);
    return count(maxTimeRecs, t5.key) > 0 && count(maxTimeRecs, t6.key) > 0;
  }, deadline, 200);
  verdict(settled, 'checks arrive and unanswered halves are discarded in time',
    `${Date.now() - sentAt} ms; checks K3 ${P.checksOf(t3.key).length} K4 ${P.checksOf(t4.key).length} K5 ${P.checksOf(t5.key).length}`);
  await sleep(3 * INTERVAL + 500); /* anything more would show now */

  const k3 = P.checksOf(t3.key);
  /* A second check can only come from a round that ran before the answer
   * was processed (INTERVAL apart): allowed, the commit happens once anyway. */
  verdict(k3.length >= 1 && k3.length <= 2 && !checkProblems(k3[0], t3, T) && k3[0].times === 1,
    'unknown, then CHECK_TRANSACTION_STATE (oneway; msgId, transactionId, offsets of the renewed half, offsetMsgId; body = the message on its real topic and queue, TRANSACTION_CHECK_TIMES 1) answered commit: no more checks',
    k3.length ? `${k3.length} checks; ${checkProblems(k3[0], t3, T) || short(k3[0].ext, 250)}` : 'no check');
  if (k3.length) {
    verdict(k3[0].at - sentAt >= TIMEOUT - 300,
      'the first check waits for transactionTimeOut', `${k3[0].at - sentAt} ms after the send`);
  }
  const k4 = P.checksOf(t4.key);
  verdict(k4.length >= 1 && k4.length <= 2 && !checkProblems(k4[0], t4, T), 'check answered rollback: no more checks',
    k4.length ? `${k4.length} checks ${checkProblems(k4[0], t4, T)}` : 'no check');
  const k5 = P.checksOf(t5.key);
  const times = k5.map(x => x.times).join(',');
  const want = Array.from({ length: CHECK_MAX }, (_, i) => i + 1).join(',');
  verdict(k5.length === CHECK_MAX && times === want && k5.every(x => !checkProblems(x, t5, T)),
    `a producer that never answers is checked exactly transactionCheckMax (${CHECK_MAX}) times, TRANSACTION_CHECK_TIMES counting up`,
    `times ${times}${k5.length ? `; ${checkProblems(k5[k5.length - 1], t5, T)}` : ''}`);
  verdict(P.checksOf(t2.key).length === 0 && P.checksOf(t1.key).length === 0 && P.checksOf(t8.key).length === 0,
    'finished transactions are never checked',
    `K1 ${P.checksOf(t1.key).length} K2 ${P.checksOf(t2.key).length} K8 ${P.checksOf(t8.key).length}`);
  const m5 = (maxTimeRecs.get(t5.key) || [])[0];
  const m6 = (maxTimeRecs.get(t6.key) || [])[0];
  verdict(m5 && m5.props.TRANSACTION_CHECK_TIMES === String(CHECK_MAX) && m6 &&
    m6.props.TRANSACTION_CHECK_TIMES === String(CHECK_MAX) && count(maxTimeRecs, t5.key) === 1,
  'discarded halves (no answer; no producer connected, checks still counted) are copied once to TRANS_CHECK_MAX_TIME_TOPIC',
  `K5 ${m5 ? short(m5.props) : 'missing'}; K6 ${m6 ? short(m6.props) : 'missing'}`);

  /* ---- late ENDs after the fact */
  const last5 = k5[k5.length - 1];
  if (last5) {
    const late = await endTx(c, t5, COMMIT, { qoff: last5.ext.tranStateTableOffset, phys: last5.ext.commitLogOffset, fromCheck: true });
    verdict(late.code === 0, 'a commit for a discarded transaction is answered 0 (and ignored)', repStr(late));
  }
  const late3 = await endTx(c, t3, COMMIT); /* the original half of a transaction committed by its check */
  verdict(late3.code === 0, 'a commit END with the original offsets after the check was answered is answered 0', repStr(late3));
  if (k3.length) {
    await endTx(c, t3, COMMIT, { qoff: k3[0].ext.tranStateTableOffset, phys: k3[0].ext.commitLogOffset, fromCheck: true, oneway: true });
  }
  await endTx(c, t2, COMMIT, { oneway: true });

  /* ---- batches may not be transactional */
  const bbody = Buffer.alloc(0);
  const batch = await c.request(320, sendExt(320, T, 0, 'PG_TX', { TRAN_MSG: 'true' }, 4), bbody, 5000);
  verdict(batch.code === 13, 'a transactional batch is refused with 13 MESSAGE_ILLEGAL', repStr(batch));

  /* ---- hostile ENDs */
  c.oneway(37, { producerGroup: 'x', commitOrRollback: '8' });
  c.oneway(37, { tranStateTableOffset: '-1', commitLogOffset: '99999999999999999999', commitOrRollback: '12', producerGroup: 'x' });
  const hz = await c.request(37, { producerGroup: 'PG_TX', tranStateTableOffset: '99', commitLogOffset: String(t1.phys),
    commitOrRollback: '8' }, Buffer.from('junk'), 5000);
  verdict(hz.code !== 0, 'END with a body and a wrong tranStateTableOffset is refused', repStr(hz));

  await sleep(500);
  const vis = await byKey(c, T, 4);
  const counts = [ t1, t2, t3, t4, t5, t6, t8 ].map(t => `${t.key.slice(-2)}:${count(vis, t.key)}`).join(' ');
  verdict(count(vis, t1.key) === 1 && count(vis, t2.key) === 0 && count(vis, t3.key) === 1 && count(vis, t4.key) === 0 &&
    count(vis, t5.key) === 0 && count(vis, t6.key) === 0 && count(vis, t8.key) === 1 && count(vis, key('P1')) === 1,
  'visible on the real topic exactly once: commits (direct, by check, code 10); never: rollbacks (direct, by check, discarded)',
  counts);
  const m3 = (vis.get(t3.key) || [])[0];
  verdict(m3 && m3.props.biz === 'v3' && m3.props.TRAN_MSG === undefined && m3.queueId === 0 && (m3.sysFlag & 0xc) === COMMIT &&
    k3.length && m3.preparedOffset === Number(k3[0].ext.commitLogOffset),
  'the message committed by a check keeps its properties and queue', m3 ? short(m3.props) : 'missing');
  verdict(P.other.length === 0, 'the producer received nothing but checks', P.other.join(','));
  P.close();
  c.close();
}

/* ------------------------------------------------------------ restart */

async function modeBefore() {
  const c = await connect();
  const T = `TxRestart_${RUN}`;
  await createTopic(c, T, 2);
  const P = new TxProducer([ 'PG_RS' ], () => null);
  await P.start();
  const r2 = await sendHalf(c, { topic: T, queueId: 0, group: 'PG_RS', key: `RS${RUN}R2` });
  const r3 = await sendHalf(c, { topic: T, queueId: 1, group: 'PG_RS', key: `RS${RUN}R3` });
  const e2 = await endTx(c, r2, COMMIT);
  const e3 = await endTx(c, r3, ROLLBACK);
  verdict(r2.r.code === 0 && r3.r.code === 0 && e2.code === 0 && e3.code === 0, 'before the restart: one committed, one rolled back',
    `${repStr(e2)}; ${repStr(e3)}`);
  await waitFor(async () => await maxOffset(c, T, 0) >= 1, 3000);
  const r1 = await sendHalf(c, { topic: T, queueId: 1, group: 'PG_RS', key: `RS${RUN}R1` });
  const ok = await waitFor(() => P.checksOf(r1.key).length > 0, TIMEOUT + 3 * INTERVAL + 5000, 20);
  const seen = Math.max(0, ...P.checksOf(r1.key).map(x => x.times));
  verdict(r1.r.code === 0 && ok && seen >= 1, 'before the restart: an unanswered transaction is checked',
    `TRANSACTION_CHECK_TIMES ${seen}`);
  fs.writeFileSync(STATE, JSON.stringify({ topic: T, r1, r2, r3, seen }));
  P.close();
  c.close();
}

async function modeAfter() {
  const st = JSON.parse(fs.readFileSync(STATE, 'utf8'));
  const T = st.topic;
  const c = await connect();
  const P = new TxProducer([ 'PG_RS', 'PG_TX', 'PG_TX_NOBODY' ], k => (k === st.r1.key ? COMMIT : null));
  await P.start();
  const ok = await waitFor(() => P.checksOf(st.r1.key).length > 0, TIMEOUT + 3 * INTERVAL + 8000, 50);
  const k1 = P.checksOf(st.r1.key);
  verdict(ok && k1[0].times > st.seen && !checkProblems(k1[0], st.r1, T),
    'after the restart the pending transaction is checked again, its check count carried on',
    k1.length ? `TRANSACTION_CHECK_TIMES ${k1[0].times} (${st.seen} before the restart) ${checkProblems(k1[0], st.r1, T)}` : 'no check');
  await waitFor(async () => count(await byKey(c, T, 2), st.r1.key) > 0, 3000);
  const a2 = await endTx(c, st.r2, COMMIT);
  const a3 = await endTx(c, st.r3, COMMIT);
  verdict(a2.code === 0 && a3.code === 0, 'ENDs repeated after the restart are answered 0', `${repStr(a2)}; ${repStr(a3)}`);
  await sleep(2 * INTERVAL + 1000);
  const vis = await byKey(c, T, 2);
  verdict(count(vis, st.r1.key) === 1 && count(vis, st.r2.key) === 1 && count(vis, st.r3.key) === 0,
    'after the restart: the pending one committed once by its check; the one committed before is not committed again; the one rolled back stays invisible',
    `R1 ${count(vis, st.r1.key)} R2 ${count(vis, st.r2.key)} R3 ${count(vis, st.r3.key)}`);
  const others = P.checks.filter(x => x.key !== st.r1.key).map(x => x.key);
  verdict(others.length === 0 && k1.length === 1, 'after the restart nothing finished is checked again (and the answered one once)',
    `${k1.length} checks of R1; others: ${others.join(',')}`);
  P.close();
  c.close();
}

async function modeReject() {
  const c = await connect();
  const T = `TxReject_${RUN}`;
  await createTopic(c, T, 1);
  const t = await sendHalf(c, { topic: T, queueId: 0, group: 'PG_RJ', key: `RJ${RUN}` });
  verdict(t.r.code === 16 && /transaction/.test(t.r.remark || ''), 'rejectTransactionMessage=true: a half is refused with 16 and a remark',
    repStr(t.r));
  const p = await sendPlain(c, T, 0, `RJP${RUN}`);
  verdict(p.r.code === 0, 'rejectTransactionMessage=true: ordinary sends still succeed', repStr(p.r));
  await waitFor(async () => await maxOffset(c, T, 0) >= 1, 3000);
  await sleep(200);
  const recs = await pullAll(c, T, 0);
  verdict(recs.length === 1 && recs[0].props.UNIQ_KEY === `RJP${RUN}`, 'only the ordinary message is stored',
    `${recs.length} records`);
  c.close();
}

const MODES = { main: modeMain, 'before-restart': modeBefore, 'after-restart': modeAfter, reject: modeReject };

async function main() {
  const fn = MODES[mode];
  if (!fn) throw new Error(`unknown MODE ${mode}`);
  const t0 = Date.now();
  await fn();
  info(`mode ${mode}: ${Date.now() - t0} ms, ${failures} failed`);
  return failures ? 1 : 0;
}

main().then(code => process.exit(code), e => {
  out(`FAIL trans.js ${mode}: ${e.stack || e.message}`);
  process.exit(1);
});
