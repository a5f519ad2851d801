'use strict';
/*
 * protocol.js - request-by-request checks of a standalone daemon (broker +
 * name server) over the raw remoting protocol (PROTOCOL.md sections 2,
 * 3.2-3.5, 3.8, 4.1, 4.3, 4.7, 4.9, 5.2): sends (codes 10, 310, 320),
 * topic auto-creation, pulls (found, long polling, offsets, tag filter,
 * errors), consumer offsets, heartbeats and NOTIFY_CONSUMER_IDS_CHANGED,
 * send-back to %RETRY% / %DLQ%, delayed messages, message lookup, admin
 * requests, name-server requests, and 2000 pipelined sends.
 *
 * Environment:
 *   BROKER    broker address 127.0.0.1:port (required)
 *   NAMESRV   name server address 127.0.0.1:port (required)
 *   SECTIONS  comma list, default all, in this order: send, batch,
 *             autocreate, pull, offsets, heartbeat, sendback, delay,
 *             lookup, admin, namesrv, pipeline (offsets, sendback and
 *             admin use what pull and heartbeat set up)
 *   PIPELINE  pipelined sends in the last section (2000)
 *
 * The daemon must run with --flushDiskType=SYNC_FLUSH and 1 s delay
 * levels (tests/integration/lib.sh DELAY_LEVELS). Prints one PASS/FAIL
 * line per check (INFO lines for measurements); exit 0 when nothing
 * failed, 1 otherwise.
 */

const zlib = require('zlib');
const { Conn, encode, nextOpaque, parseLenientJson } = require('./lib/remoting');
const { envStr, envInt, sleep } = require('./lib/common');

const broker = envStr('BROKER', '');
const namesrv = envStr('NAMESRV', '');
const sections = envStr('SECTIONS',
  'send,batch,autocreate,pull,offsets,heartbeat,sendback,delay,lookup,admin,namesrv,pipeline').split(',');
const nPipeline = envInt('PIPELINE', 2000);

if (!broker || !namesrv) {
  process.stderr.write('protocol.js: BROKER and NAMESRV are required\n');
  process.exit(2);
}
const brokerPort = Number(broker.split(':')[1]);
const ID_PREFIX = '7F000001' + brokerPort.toString(16).toUpperCase().padStart(8, '0');
const RUN = Date.now().toString(36).toUpperCase();

let failures = 0;
let checks = 0;
const out = s => process.stdout.write(s + '\n');
function verdict(ok, what, detail) {
  checks++;
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
const repStr = r => `code ${r.code}${r.remark ? ` remark "${short(r.remark, 120)}"` : ''} ext ${short(r.extFields, 200)}`;

/* ------------------------------------------------------------ connection */

/*
 * Conn plus: requests with a chosen header version, and a record of the
 * server-initiated requests (NOTIFY_CONSUMER_IDS_CHANGED ...).
 */
class PConn extends Conn {
  constructor(addr) {
    super(addr);
    this.serverReqs = [];
  }

  _onFrame(f) {
    if (f.header && (f.header.flag & 1) === 0) {
      this.serverReqs.push({ at: Date.now(), header: f.header });
    }
    super._onFrame(f);
  }

  requestV(code, extFields, body, timeoutMs, version) {
    const opaque = nextOpaque();
    const frame = encode({ code, opaque, flag: 0, extFields, body, version });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(opaque);
        reject(new Error(`no reply to code ${code} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(opaque, { resolve, reject, timer });
      this.sock.write(frame);
    });
  }
}

async function connect(addr) {
  const c = new PConn(addr);
  await c.connect(3000);
  return c;
}

/* ------------------------------------------------------------ encodings */

function encodeProps(p) {
  let s = '';
  for (const [ k, v ] of Object.entries(p || {})) s += `${k}\u0001${v}\u0002`;
  return s;
}

function decodeProps(s) {
  const p = {};
  for (const e of s.split('\u0002')) {
    const i = e.indexOf('\u0001');
    if (i > 0 && i < e.length - 1) p[e.slice(0, i)] = e.slice(i + 1);
  }
  return p;
}

/* Java String.hashCode() (ASCII). */
function javaHash(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/* CRC32 & 0x7FFFFFFF (zlib.crc32 needs node >= 20.15). */
let crcTable = null;
function crc32(b) {
  if (zlib.crc32) return zlib.crc32(b);
  if (!crcTable) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c;
    }
  }
  let c = -1;
  for (let i = 0; i < b.length; i++) c = crcTable[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
const crc = b => (crc32(b) & 0x7fffffff) >>> 0;

const MAGIC_V1 = -626843481;

/*
 * Parses a pull/query/view body (PROTOCOL 4.1). Returns {recs, error}:
 * each record {totalSize, magic, bodyCrc, queueId, flag, queueOffset,
 * physOffset, sysFlag, bornTs, bornHost, storeTs, storeHost,
 * reconsumeTimes, preparedOffset, body, topic, props, propsText}.
 */
function parseRecords(buf) {
  const recs = [];
  let p = 0;
  try {
    while (p < buf.length) {
      const start = p;
      const r = {};
      r.totalSize = buf.readInt32BE(p);
      if (r.totalSize < 91 || start + r.totalSize > buf.length) {
        return { recs, error: `record at ${start}: TOTALSIZE ${r.totalSize}, ${buf.length - start} bytes left` };
      }
      r.magic = buf.readInt32BE(p + 4);
      r.bodyCrc = buf.readInt32BE(p + 8);
      r.queueId = buf.readInt32BE(p + 12);
      r.flag = buf.readInt32BE(p + 16);
      r.queueOffset = Number(buf.readBigInt64BE(p + 20));
      r.physOffset = Number(buf.readBigInt64BE(p + 28));
      r.sysFlag = buf.readInt32BE(p + 36);
      r.bornTs = Number(buf.readBigInt64BE(p + 40));
      p += 48;
      const bornLen = (r.sysFlag & 0x10) ? 20 : 8;
      const storeLen = (r.sysFlag & 0x20) ? 20 : 8;
      r.bornHost = bornLen === 8 ? `${[ ...buf.subarray(p, p + 4) ].join('.')}:${buf.readInt32BE(p + 4)}` : 'v6';
      p += bornLen;
      r.storeTs = Number(buf.readBigInt64BE(p));
      p += 8;
      r.storeHost = storeLen === 8 ? `${[ ...buf.subarray(p, p + 4) ].join('.')}:${buf.readInt32BE(p + 4)}` : 'v6';
      p += storeLen;
      r.reconsumeTimes = buf.readInt32BE(p);
      r.preparedOffset = Number(buf.readBigInt64BE(p + 4));
      p += 12;
      const bl = buf.readInt32BE(p);
      p += 4;
      r.body = buf.subarray(p, p + bl);
      p += bl;
      const tl = r.magic === MAGIC_V1 ? buf.readUInt8(p) : buf.readInt16BE(p);
      p += r.magic === MAGIC_V1 ? 1 : 2;
      r.topic = buf.subarray(p, p + tl).toString('utf8');
      p += tl;
      const pl = buf.readInt16BE(p);
      p += 2;
      r.propsText = buf.subarray(p, p + pl).toString('utf8');
      r.props = decodeProps(r.propsText);
      p += pl;
      if (p - start !== r.totalSize) {
        return { recs, error: `record at ${start}: fields end at ${p - start}, TOTALSIZE ${r.totalSize}` };
      }
      recs.push(r);
    }
  } catch (e) {
    return { recs, error: `record at ${p}: ${e.message}` };
  }
  return { recs, error: null };
}

/* Checks one record's fixed layout; returns a problem string or ''. */
function recordProblem(r, want = {}) {
  const bad = [];
  if (r.magic !== MAGIC_V1) bad.push(`magic ${r.magic}`);
  if (r.sysFlag & 0x30) bad.push(`IPv6 host flags in sysFlag ${r.sysFlag}`);
  if (r.totalSize !== 91 + r.body.length + Buffer.byteLength(r.topic) + Buffer.byteLength(r.propsText)) {
    bad.push(`TOTALSIZE ${r.totalSize} != 91+body+topic+props`);
  }
  if (r.bodyCrc !== crc(r.body)) bad.push(`BODYCRC ${r.bodyCrc} != ${crc(r.body)}`);
  if (r.storeHost !== broker) bad.push(`store host ${r.storeHost}`);
  if (!/^\d+\.\d+\.\d+\.\d+:\d+$/.test(r.bornHost)) bad.push(`born host ${r.bornHost}`);
  if (r.storeTs < Date.now() - 600000 || r.storeTs > Date.now() + 60000) bad.push(`store time ${r.storeTs}`);
  for (const [ k, v ] of Object.entries(want)) {
    if (k === 'body') {
      if (r.body.toString() !== v) bad.push(`body "${short(r.body.toString(), 60)}" != "${v}"`);
    } else if (k === 'props') {
      for (const [ pk, pv ] of Object.entries(v)) {
        if (r.props[pk] !== pv) bad.push(`property ${pk}=${r.props[pk]} (want ${pv})`);
      }
    } else if (r[k] !== v) {
      bad.push(`${k} ${r[k]} (want ${v})`);
    }
  }
  return bad.join(', ');
}

function idOffset(id) {
  return parseInt(id.slice(16), 16);
}

function idOk(id) {
  return typeof id === 'string' && /^[0-9A-F]{32}$/.test(id) && id.startsWith(ID_PREFIX);
}

/*
 * fastjson's Map<MessageQueue, X> form: {{"brokerName":..,"queueId":N,
 * "topic":..}:{...},...}. Returns [{brokerName, queueId, topic, value}].
 */
function parseMqMap(text) {
  const re = /\{\s*"brokerName"\s*:\s*"([^"]*)"\s*,\s*"queueId"\s*:\s*(\d+)\s*,\s*"topic"\s*:\s*"([^"]*)"\s*\}\s*:\s*(\{[^{}]*\})/g;
  const res = [];
  let m;
  while ((m = re.exec(text)) !== null) {
    res.push({ brokerName: m[1], queueId: Number(m[2]), topic: m[3], value: parseLenientJson(m[4]) });
  }
  return res;
}

/* ------------------------------------------------------------ requests */

let sendCount = 0;
let sendBad = [];

const V2 = { producerGroup: 'a', topic: 'b', defaultTopic: 'c', defaultTopicQueueNums: 'd', queueId: 'e',
  sysFlag: 'f', bornTimestamp: 'g', flag: 'h', properties: 'i', reconsumeTimes: 'j', unitMode: 'k',
  maxReconsumeTimes: 'l', batch: 'm' };

function sendHeader(topic, o) {
  const h = {
    producerGroup: o.group || 'PG_PROTO',
    topic,
    defaultTopic: o.defaultTopic || 'TBW102',
    defaultTopicQueueNums: '4',
    queueId: String(o.queueId !== undefined ? o.queueId : 0),
    sysFlag: String(o.sysFlag || 0),
    bornTimestamp: String(Date.now()),
    flag: String(o.flag || 0),
    properties: encodeProps(Object.assign({ WAIT: 'true' }, o.props || {})),
    reconsumeTimes: '0',
    unitMode: 'false',
  };
  if (o.batch) h.batch = 'true';
  const code = o.code || 310;
  if (code === 10) return h;
  const v = {};
  for (const [ k, val ] of Object.entries(h)) v[V2[k]] = val;
  return v;
}

/*
 * One send; o: code (310), queueId (0), props, group, expect (0, or
 * null for "any"). Replies that were expected to succeed and did not are
 * collected for the SYNC_FLUSH summary.
 */
async function send(c, topic, body, o = {}) {
  const code = o.code || 310;
  const r = await c.request(code, sendHeader(topic, o), Buffer.from(body), o.timeout || 5000);
  if (o.expect === undefined || o.expect === 0) {
    sendCount++;
    if (r.code !== 0) sendBad.push(`${topic}: ${repStr(r)}`);
  }
  return r;
}

function batchBody(msgs) {
  const parts = [];
  for (const m of msgs) {
    const body = Buffer.from(m.body);
    const props = Buffer.from(encodeProps(m.props));
    const b = Buffer.alloc(22 + body.length + props.length);
    let p = 0;
    b.writeInt32BE(b.length, p); p += 4;
    b.writeInt32BE(0, p); p += 4;
    b.writeInt32BE(0, p); p += 4;
    b.writeInt32BE(m.flag || 0, p); p += 4;
    b.writeInt32BE(body.length, p); p += 4;
    body.copy(b, p); p += body.length;
    b.writeInt16BE(props.length, p); p += 2;
    props.copy(b, p);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

function pullExt(o) {
  return {
    consumerGroup: o.group || 'CG_PROTO',
    topic: o.topic,
    queueId: String(o.queueId || 0),
    queueOffset: String(o.offset || 0),
    maxMsgNums: String(o.max || 32),
    sysFlag: String(o.sysFlag !== undefined ? o.sysFlag : 4),
    commitOffset: '0',
    suspendTimeoutMillis: String(o.suspend !== undefined ? o.suspend : 0),
    subscription: o.sub || '*',
    subVersion: String(o.subVersion || 0),
    expressionType: 'TAG',
  };
}

/* A pull; the reply gains .recs/.parseError when the body is non-empty. */
async function pull(c, o) {
  const r = await c.request(11, pullExt(o), null, o.timeout || 5000);
  if (r.code === 0) {
    const p = parseRecords(r.body);
    r.recs = p.recs;
    r.parseError = p.error;
  } else {
    r.recs = [];
  }
  return r;
}

/* Pull until found (code 0) or the deadline; returns [reply, ms]. */
async function pullUntilFound(c, o, ms) {
  const t0 = Date.now();
  let r;
  for (;;) {
    r = await pull(c, o);
    if (r.code === 0 && r.recs.length) return [ r, Date.now() - t0 ];
    if (Date.now() - t0 > ms) return [ r, Date.now() - t0 ];
    await sleep(100);
  }
}

async function createTopic(c, topic, queues = 4, perm = 6) {
  const r = await c.request(17, {
    topic, defaultTopic: 'TBW102', readQueueNums: String(queues), writeQueueNums: String(queues),
    perm: String(perm), topicFilterType: 'SINGLE_TAG', topicSysFlag: '0', order: 'false',
  }, null, 5000);
  if (r.code !== 0) throw new Error(`UPDATE_AND_CREATE_TOPIC ${topic}: ${repStr(r)}`);
}

/*
 * Waits until GET_MAX_OFFSET of the queue reaches n (a SYNC_FLUSH send is
 * acknowledged when durable; it becomes pullable when dispatched, which
 * the read-after-ack check measures separately). Returns the ms waited.
 */
async function waitMax(topic, queueId, n, ms = 2000) {
  const t0 = Date.now();
  for (;;) {
    const r = await bc.request(30, { topic, queueId: String(queueId) }, null, 3000);
    if (r.code === 0 && Number(r.extFields.offset) >= n) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`GET_MAX_OFFSET ${topic}/${queueId} did not reach ${n} in ${ms} ms: ${repStr(r)}`);
    await sleep(2);
  }
}

async function route(ns, topic, version) {
  return version ? ns.requestV(105, { topic }, null, 3000, version) : ns.request(105, { topic }, null, 3000);
}

/* Polls 105 until code 0 or ms; returns [reply, elapsed]. */
async function waitRoute(ns, topic, ms) {
  const t0 = Date.now();
  let r;
  for (;;) {
    r = await route(ns, topic);
    if (r.code === 0) return [ r, Date.now() - t0 ];
    if (Date.now() - t0 > ms) return [ r, Date.now() - t0 ];
    await sleep(100);
  }
}

function heartbeatBody(clientID, groups, producerGroups = []) {
  return JSON.stringify({
    clientID,
    consumerDataSet: groups.map(g => ({
      consumeFromWhere: 'CONSUME_FROM_LAST_OFFSET',
      consumeType: 'CONSUME_PASSIVELY',
      groupName: g.group,
      messageModel: 'CLUSTERING',
      subscriptionDataSet: g.topics.map(t => ({
        classFilterMode: false,
        codeSet: [],
        expressionType: 'TAG',
        subString: '*',
        subVersion: g.subVersion || 1733112233000,
        tagsSet: [],
        topic: t,
      })),
      unitMode: false,
    })),
    heartbeatFingerprint: 0,
    producerDataSet: producerGroups.map(g => ({ groupName: g })),
    withoutSub: false,
  });
}

function jsonBody(r) {
  return parseLenientJson(r.body.toString('utf8'));
}

/* ------------------------------------------------------------ state */

let bc; /* broker connection */
let ns; /* name server connection */
const T_SEND = `ProtoSend_${RUN}`;
const T_BATCH = `ProtoBatch_${RUN}`;
const T_PULL = `ProtoPull_${RUN}`;
const T_TAGS = `ProtoTags_${RUN}`;
const T_SEARCH = `ProtoSearch_${RUN}`;
const T_DELAY = `ProtoDelay_${RUN}`;
const T_ADM = `ProtoAdmin_${RUN}`;
const T_PIPE = `ProtoPipe_${RUN}`;
const CG_OFF = 'CG_PROTO_OFF';
const CG_HB = 'CG_PROTO_HB';
let pullMax0 = 0; /* messages in T_PULL queue 0 */
let firstPull = null; /* first record of T_PULL queue 0 */
let keyedMsg = null; /* {key, id, phys} of a message sent with KEYS */

/* ------------------------------------------------------------ sections */

async function secSend() {
  await createTopic(bc, T_SEND, 4);
  const results = [];
  for (let i = 0; i < 8; i++) {
    const code = i % 2 ? 310 : 10;
    const queueId = i % 4 < 2 ? 0 : 1;
    const r = await send(bc, T_SEND, `send-${i}`, { code, queueId, props: { TAGS: 'TagS' } });
    results.push({ i, code, queueId, r });
  }
  for (const code of [ 10, 310 ]) {
    const mine = results.filter(x => x.code === code);
    const bad = mine.filter(x => x.r.code !== 0).map(x => repStr(x.r));
    verdict(!bad.length, `SEND_MESSAGE code ${code} (${code === 10 ? 'long field names' : 'a..k'}) replies 0`, bad.join('; '));
    const badId = mine.filter(x => !idOk(x.r.extFields.msgId)).map(x => x.r.extFields.msgId);
    verdict(!badId.length, `code ${code}: msgId = 7F000001 + port + commit-log offset, 32 uppercase hex`,
      badId.length ? `got ${badId.join(',')} (want prefix ${ID_PREFIX})` : `e.g. ${mine[0].r.extFields.msgId}`);
    const badF = mine.filter(x => x.r.extFields.queueId !== String(x.queueId) ||
      x.r.extFields.queueOffset === undefined || x.r.extFields.MSG_REGION === undefined ||
      x.r.extFields.TRACE_ON === undefined).map(x => short(x.r.extFields));
    verdict(!badF.length, `code ${code}: reply has queueId (as requested), queueOffset, MSG_REGION, TRACE_ON`, badF.join('; '));
  }
  const perQ = {};
  for (const x of results) (perQ[x.queueId] = perQ[x.queueId] || []).push(Number(x.r.extFields.queueOffset));
  const consecutive = Object.values(perQ).every(l => l.every((v, k) => v === k));
  verdict(consecutive, 'queueOffset consecutive per queue from 0 across codes 10 and 310', JSON.stringify(perQ));
  const offs = results.map(x => idOffset(x.r.extFields.msgId || '0'.repeat(32)));
  verdict(offs.every((v, k) => k === 0 || v > offs[k - 1]), 'msgId commit-log offsets increase with each send', offs.join(','));

  /* The msgId offset is the record's physical offset. */
  const v = await bc.request(33, { offset: String(offs[2]) }, null, 3000);
  const p = v.code === 0 ? parseRecords(v.body) : { recs: [] };
  const rec = p.recs[0];
  verdict(v.code === 0 && rec && p.recs.length === 1 && rec.physOffset === offs[2] &&
    !recordProblem(rec, { body: 'send-2', topic: T_SEND, queueId: 1, queueOffset: 0 }),
  'msgId offset of a code-10 send points at its record (VIEW_MESSAGE_BY_ID)',
  rec ? recordProblem(rec, { body: 'send-2', topic: T_SEND, queueId: 1, queueOffset: 0 }) || `phys ${rec.physOffset}` : repStr(v));

  /*
   * Read after ack: once a SYNC_FLUSH send is answered, its message should
   * be visible (GET_MAX_OFFSET, PULL), as with RocketMQ, whose dispatcher
   * does not wait for the flush. The first message of a new queue is the
   * slow case (the consume queue file is created by the dispatcher).
   */
  const t = `ProtoAck_${RUN}`;
  await createTopic(bc, t, 8);
  const lagged = [];
  for (let q = 0; q < 8; q++) {
    const s = await send(bc, t, `ack-${q}`, { queueId: q });
    const [ mx, pr ] = await Promise.all([
      bc.request(30, { topic: t, queueId: String(q) }, null, 3000),
      pull(bc, { topic: t, queueId: q, offset: 0 }),
    ]);
    if (s.code === 0 && (mx.extFields.offset !== '1' || pr.code !== 0)) {
      lagged.push(`q${q}: max ${mx.extFields.offset}, pull ${pr.code}`);
    }
  }
  verdict(!lagged.length, 'read after ack: a message is visible to GET_MAX_OFFSET and PULL once its SYNC_FLUSH send is answered',
    lagged.length ? `${lagged.length}/8 first messages of a queue not yet visible: ${lagged.slice(0, 3).join('; ')}` : '8/8');
}

async function secBatch() {
  await createTopic(bc, T_BATCH, 2);
  const msgs = [ 0, 1, 2 ].map(i => ({
    body: `batch-${i}-${'x'.repeat(i * 10)}`,
    props: { TAGS: `Tag${i}`, KEYS: `bk${i}`, UNIQ_KEY: `UK${RUN}${i}` },
  }));
  /* queue 1 gets one plain message first, so the batch starts at offset 1 */
  await send(bc, T_BATCH, 'before-batch', { queueId: 1 });
  await waitMax(T_BATCH, 1, 1);
  const r = await bc.request(320, sendHeader(T_BATCH, { queueId: 1, batch: true, code: 320 }), batchBody(msgs), 5000);
  sendCount++;
  if (r.code !== 0) sendBad.push(`batch: ${repStr(r)}`);
  verdict(r.code === 0, 'SEND_BATCH_MESSAGE (320, m=true) replies 0', repStr(r));
  const ids = (r.extFields.msgId || '').split(',');
  verdict(ids.length === 3 && ids.every(idOk), 'batch msgId is a comma-separated list of 3 offset ids', r.extFields.msgId);
  verdict(r.extFields.queueOffset === '1' && r.extFields.queueId === '1', 'batch queueOffset is the first message\'s (1), queueId 1',
    `queueId ${r.extFields.queueId} queueOffset ${r.extFields.queueOffset}`);
  await waitMax(T_BATCH, 1, 4);
  const pr = await pull(bc, { topic: T_BATCH, queueId: 1, offset: 1 });
  const probs = [];
  if (pr.code !== 0) probs.push(repStr(pr));
  if (pr.parseError) probs.push(pr.parseError);
  if (pr.recs.length !== 3) probs.push(`${pr.recs.length} records`);
  pr.recs.forEach((rec, i) => {
    const pb = recordProblem(rec, { body: msgs[i].body, topic: T_BATCH, queueId: 1, queueOffset: 1 + i, props: msgs[i].props });
    if (pb) probs.push(`#${i}: ${pb}`);
    if (ids[i] && idOffset(ids[i]) !== rec.physOffset) probs.push(`#${i}: msgId offset ${idOffset(ids[i])} != phys ${rec.physOffset}`);
  });
  verdict(!probs.length, 'batch pulled back in order, each with its own properties and msgId offset', probs.join('; '));
}

async function secAutocreate() {
  const t = `ProtoAuto_${RUN}`;
  const r = await send(bc, t, 'auto', { code: 10, queueId: 0 });
  verdict(r.code === 0, 'send to a new topic with defaultTopic TBW102 auto-creates it', repStr(r));
  const [ rr, ms ] = await waitRoute(ns, t, 5000);
  let qd = null;
  if (rr.code === 0) {
    try {
      qd = (jsonBody(rr).queueDatas || []).find(q => q.brokerName === 'broker-a');
    } catch (e) { /* reported below */ }
  }
  verdict(rr.code === 0 && qd && ms <= 2500, 'auto-created topic appears in the name-server route within ~2 s',
    rr.code === 0 ? `${ms} ms, queueDatas ${short(qd)}` : `after ${ms} ms: ${repStr(rr)}`);
  const tc = await bc.request(351, { topic: t }, null, 3000);
  if (tc.code === 0) info(`auto-created topic config: ${tc.body.toString()}`);

  const bad = await send(bc, 'bad topic!', 'x', { expect: null });
  verdict(bad.code !== 0, 'send to a topic with invalid characters is refused', repStr(bad));
  const long = await send(bc, 'T'.repeat(128), 'x', { expect: null });
  verdict(long.code !== 0, 'send to a 128-character topic is refused', repStr(long));
  const sched = await send(bc, 'SCHEDULE_TOPIC_XXXX', 'x', { expect: null });
  verdict(sched.code === 16, 'send to SCHEDULE_TOPIC_XXXX -> 16 NO_PERMISSION', repStr(sched));
  const q = await send(bc, T_SEND, 'x', { queueId: 99, expect: null });
  verdict(q.code !== 0 && !!q.remark, 'send with queueId 99 on a 4-queue topic -> non-zero with a remark', repStr(q));
  const noInherit = await send(bc, `ProtoAuto2_${RUN}`, 'x', { defaultTopic: T_SEND, expect: null });
  verdict(noInherit.code === 17, 'send to a new topic with a non-inheritable defaultTopic -> 17 TOPIC_NOT_EXIST', repStr(noInherit));
}

async function secPull() {
  await createTopic(bc, T_PULL, 4);
  await createTopic(bc, T_TAGS, 2);
  for (let i = 0; i < 3; i++) await send(bc, T_PULL, `pull-${i}`, { queueId: 0, props: { TAGS: 'TagP', KEYS: `pk${i}` }, flag: 7 });
  pullMax0 = 3;
  await waitMax(T_PULL, 0, 3);
  const r = await pull(bc, { topic: T_PULL, queueId: 0, offset: 0 });
  const probs = [];
  if (r.code !== 0) probs.push(repStr(r));
  if (r.parseError) probs.push(r.parseError);
  if (r.recs.length !== 3) probs.push(`${r.recs.length} records`);
  r.recs.forEach((rec, i) => {
    const pb = recordProblem(rec, { body: `pull-${i}`, topic: T_PULL, queueId: 0, queueOffset: i, flag: 7,
      reconsumeTimes: 0, props: { TAGS: 'TagP', KEYS: `pk${i}` } });
    if (pb) probs.push(`#${i}: ${pb}`);
  });
  verdict(!probs.length, 'PULL_MESSAGE found: records parse (V1, IPv4 hosts, TOTALSIZE, CRC, offsets, topic, properties)',
    probs.join('; ') || `${r.recs.length} records, ${r.body.length} bytes`);
  firstPull = r.recs[0] || null;
  const e = r.extFields;
  verdict(e.nextBeginOffset === '3' && e.minOffset === '0' && e.maxOffset === '3' && e.suggestWhichBrokerId !== undefined,
    'pull reply has nextBeginOffset 3, minOffset 0, maxOffset 3, suggestWhichBrokerId', short(e));
  const r2 = await pull(bc, { topic: T_PULL, queueId: 0, offset: 1, max: 1 });
  verdict(r2.code === 0 && r2.recs.length === 1 && r2.recs[0].queueOffset === 1 && r2.extFields.nextBeginOffset === '2',
    'pull with maxMsgNums 1 from offset 1 returns one record, nextBeginOffset 2', `${repStr(r2)} recs ${r2.recs.length}`);

  /* long polling: held at offset == max, woken by a send */
  const c2 = await connect(broker);
  try {
    const t0 = Date.now();
    const held = pull(c2, { topic: T_PULL, queueId: 0, offset: 3, sysFlag: 6, suspend: 15000, timeout: 20000 });
    let done = false;
    held.then(() => { done = true; }, () => { done = true; });
    await sleep(700);
    verdict(!done, 'pull at offset == max with the suspend bit is held (no reply after 700 ms)');
    const tSend = Date.now();
    const s = await send(bc, T_PULL, 'wake-3', { queueId: 0, props: { TAGS: 'TagP' } });
    pullMax0 = 4;
    const hr = await held;
    const tReply = Date.now();
    verdict(hr.code === 0 && hr.recs.length === 1 && hr.recs[0].body.toString() === 'wake-3' && hr.recs[0].queueOffset === 3,
      'held pull answered with the message sent meanwhile', `${repStr(hr)} recs ${hr.recs.length} send ${s.code}`);
    verdict(tReply - tSend < 1000, 'long-polling wake: reply comes soon after the send',
      `${tReply - tSend} ms after the send, ${tReply - t0} ms after the pull, suspendTimeoutMillis 15000`);

    /* hold timeout with nothing sent */
    const t1 = Date.now();
    const to = await pull(c2, { topic: T_PULL, queueId: 0, offset: 4, sysFlag: 6, suspend: 1000, timeout: 10000 });
    const ms = Date.now() - t1;
    verdict(to.code === 19 && ms >= 900 && ms <= 2500, 'held pull with suspendTimeoutMillis 1000 and nothing sent -> 19 after ~1 s',
      `${repStr(to)} after ${ms} ms`);
    const t2 = Date.now();
    const nohold = await pull(c2, { topic: T_PULL, queueId: 0, offset: 4, sysFlag: 4 });
    verdict(nohold.code === 19 && Date.now() - t2 < 500 && nohold.extFields.nextBeginOffset === '4',
      'pull at offset == max without the suspend bit -> 19 at once, nextBeginOffset = offset', `${repStr(nohold)} after ${Date.now() - t2} ms`);
  } finally {
    c2.close();
  }

  const over = await pull(bc, { topic: T_PULL, queueId: 0, offset: 14, sysFlag: 6, suspend: 5000 });
  verdict(over.code === 21 && over.extFields.nextBeginOffset === '4', 'pull with offset > max -> 21, nextBeginOffset = max (4)', repStr(over));
  const emptyQ = await pull(bc, { topic: T_PULL, queueId: 3, offset: 5 });
  verdict(emptyQ.code === 21 && emptyQ.extFields.nextBeginOffset === '0', 'pull on an empty queue with offset 5 -> 21, nextBeginOffset 0', repStr(emptyQ));

  /* tag filter */
  const tags = [ 'TagC', 'TagA', 'TagC', 'TagB', 'TagC', 'TagC' ];
  for (let i = 0; i < tags.length; i++) await send(bc, T_TAGS, `tag-${i}-${tags[i]}`, { queueId: 0, props: { TAGS: tags[i] } });
  await waitMax(T_TAGS, 0, tags.length);
  const f = await pull(bc, { topic: T_TAGS, queueId: 0, offset: 0, sub: 'TagA||TagB' });
  const got = f.recs.map(x => `${x.queueOffset}:${x.props.TAGS}`);
  verdict(f.code === 0 && got.join(',') === '1:TagA,3:TagB', 'tag filter "TagA||TagB" (sysFlag 4) returns only those tags',
    `${repStr(f)} records ${got.join(',')}`);
  const f2 = await pull(bc, { topic: T_TAGS, queueId: 0, offset: 4, sub: 'TagA||TagB' });
  verdict(f2.code === 20 && f2.extFields.nextBeginOffset === '6', 'range with no matching tag -> 20 PULL_RETRY_IMMEDIATELY, nextBeginOffset past it (6)',
    repStr(f2));
  const f3 = await pull(bc, { topic: T_TAGS, queueId: 0, offset: 0, sub: 'TagA || TagB' });
  verdict(f3.code === 0 && f3.recs.map(x => x.props.TAGS).join(',') === 'TagA,TagB', 'tag expression with spaces "TagA || TagB" is trimmed',
    `${repStr(f3)} tags ${f3.recs.map(x => x.props.TAGS).join(',')}`);

  const unk = await pull(bc, { topic: `NoSuchTopic_${RUN}`, queueId: 0, offset: 0 });
  verdict(unk.code === 17, 'pull on an unknown topic -> 17 TOPIC_NOT_EXIST', repStr(unk));
  const nosub = await pull(bc, { topic: T_PULL, group: 'CG_PROTO_NOHB', queueId: 0, offset: 0, sysFlag: 0 });
  verdict(nosub.code === 24, 'pull without sysFlag 4 and without a heartbeat -> 24 SUBSCRIPTION_NOT_EXIST', repStr(nosub));
  const badq = await pull(bc, { topic: T_PULL, queueId: 9, offset: 0 });
  verdict(badq.code !== 0 && badq.code !== 19, 'pull with queueId 9 on a 4-queue topic -> error', repStr(badq));
}

async function secOffsets() {
  const u = await bc.request(15, { consumerGroup: CG_OFF, topic: T_PULL, queueId: '0', commitOffset: '2' }, null, 3000);
  verdict(u.code === 0, 'UPDATE_CONSUMER_OFFSET replies 0', repStr(u));
  const q = await bc.request(14, { consumerGroup: CG_OFF, topic: T_PULL, queueId: '0' }, null, 3000);
  verdict(q.code === 0 && q.extFields.offset === '2', 'QUERY_CONSUMER_OFFSET returns the committed offset (2)', repStr(q));
  const qf = await bc.request(14, { consumerGroup: 'CG_PROTO_FRESH', topic: T_PULL, queueId: '0' }, null, 3000);
  verdict(qf.code === 0 && qf.extFields.offset === '0', 'fresh group on a queue with messages at min 0 -> offset 0', repStr(qf));
  const ow = bc.oneway(15, { consumerGroup: CG_OFF, topic: T_PULL, queueId: '1', commitOffset: '0' });
  await sleep(100);
  const q1 = await bc.request(14, { consumerGroup: CG_OFF, topic: T_PULL, queueId: '1' }, null, 3000);
  verdict(q1.code === 0 && q1.extFields.offset === '0' && !bc.stray.length, 'oneway UPDATE_CONSUMER_OFFSET is applied and not answered',
    `${repStr(q1)} stray replies ${bc.stray.length} (opaque ${ow})`);

  const mx = await bc.request(30, { topic: T_PULL, queueId: '0' }, null, 3000);
  verdict(mx.code === 0 && mx.extFields.offset === String(pullMax0), `GET_MAX_OFFSET -> ${pullMax0}`, repStr(mx));
  const mn = await bc.request(31, { topic: T_PULL, queueId: '0' }, null, 3000);
  verdict(mn.code === 0 && mn.extFields.offset === '0', 'GET_MIN_OFFSET -> 0', repStr(mn));
  const mx3 = await bc.request(30, { topic: T_PULL, queueId: '3' }, null, 3000);
  verdict(mx3.code === 0 && mx3.extFields.offset === '0', 'GET_MAX_OFFSET of an empty queue -> 0', repStr(mx3));
  const ea = await bc.request(32, { topic: T_PULL, queueId: '0' }, null, 3000);
  verdict(ea.code === 0 && firstPull && ea.extFields.timestamp === String(firstPull.storeTs),
    'GET_EARLIEST_MSG_STORETIME = store time of the first message', `${repStr(ea)} first store time ${firstPull && firstPull.storeTs}`);

  await createTopic(bc, T_SEARCH, 1);
  await send(bc, T_SEARCH, 's0', { queueId: 0 });
  await sleep(40);
  await send(bc, T_SEARCH, 's1', { queueId: 0 });
  await sleep(40);
  const between = Date.now();
  await sleep(40);
  await send(bc, T_SEARCH, 's2', { queueId: 0 });
  await waitMax(T_SEARCH, 0, 3);
  const sr = await bc.request(29, { topic: T_SEARCH, queueId: '0', timestamp: String(between) }, null, 3000);
  verdict(sr.code === 0 && sr.extFields.offset === '2', 'SEARCH_OFFSET_BY_TIMESTAMP between two sends -> the later one\'s offset (2)', repStr(sr));
  const s0 = await bc.request(29, { topic: T_SEARCH, queueId: '0', timestamp: '0' }, null, 3000);
  const sf = await bc.request(29, { topic: T_SEARCH, queueId: '0', timestamp: String(Date.now() + 100000) }, null, 3000);
  verdict(s0.extFields.offset === '0' && sf.extFields.offset === '3', 'SEARCH_OFFSET_BY_TIMESTAMP clamps: 0 -> 0, future -> max (3)',
    `${repStr(s0)}; ${repStr(sf)}`);
}

let hbConn1 = null;
async function secHeartbeat() {
  const id1 = `127.0.0.1@proto1#${RUN}`;
  const id2 = `127.0.0.1@proto2#${RUN}`;
  const retry = `%RETRY%${CG_HB}`;
  hbConn1 = await connect(broker);
  const h1 = await hbConn1.request(34, {}, heartbeatBody(id1, [ { group: CG_HB, topics: [ T_PULL, retry ] } ], [ 'PG_PROTO' ]), 3000);
  verdict(h1.code === 0 && h1.header.version >= 401, 'HEART_BEAT replies 0 with the broker version (>= 401)', `${repStr(h1)} version ${h1.header.version}`);
  const l1 = await bc.request(38, { consumerGroup: CG_HB }, null, 3000);
  let ids = l1.code === 0 ? jsonBody(l1).consumerIdList : null;
  verdict(l1.code === 0 && ids && ids.length === 1 && ids[0] === id1, 'GET_CONSUMER_LIST_BY_GROUP lists the clientID', `${repStr(l1)} ${short(ids)}`);

  const before = hbConn1.serverReqs.length;
  const c2 = await connect(broker);
  try {
    const h2 = await c2.request(34, {}, heartbeatBody(id2, [ { group: CG_HB, topics: [ T_PULL, retry ] } ]), 3000);
    const t0 = Date.now();
    while (hbConn1.serverReqs.length === before && Date.now() - t0 < 3000) await sleep(20);
    const n = hbConn1.serverReqs.slice(before).find(x => x.header.code === 40);
    verdict(h2.code === 0 && n && (n.header.flag & 2) === 2 && n.header.extFields && n.header.extFields.consumerGroup === CG_HB,
      'second member\'s heartbeat sends NOTIFY_CONSUMER_IDS_CHANGED (40, oneway) on the first connection',
      n ? `${short(n.header)} after ${n.at - t0} ms` : `nothing in 3 s (${hbConn1.serverReqs.length - before} server requests)`);
    const l2 = await bc.request(38, { consumerGroup: CG_HB }, null, 3000);
    ids = l2.code === 0 ? jsonBody(l2).consumerIdList : [];
    verdict(ids.length === 2 && ids.includes(id1) && ids.includes(id2), 'consumer list has both members', short(ids));
    const beforeU = hbConn1.serverReqs.length;
    const u = await c2.request(35, { clientID: id2, consumerGroup: CG_HB }, null, 3000);
    const l3 = await bc.request(38, { consumerGroup: CG_HB }, null, 3000);
    ids = l3.code === 0 ? jsonBody(l3).consumerIdList : [];
    verdict(u.code === 0 && ids.length === 1 && ids[0] === id1, 'UNREGISTER_CLIENT removes the member', `${repStr(u)} list ${short(ids)}`);
    const t1 = Date.now();
    while (hbConn1.serverReqs.length === beforeU && Date.now() - t1 < 2000) await sleep(20);
    verdict(hbConn1.serverReqs.slice(beforeU).some(x => x.header.code === 40), 'UNREGISTER_CLIENT notifies the remaining member (40)');
  } finally {
    c2.close();
  }
  const [ rr, ms ] = await waitRoute(ns, retry, 3000);
  verdict(rr.code === 0, `${retry} topic appears in the name-server route`, `${repStr(rr)} after ${ms} ms`);
  const unk = await bc.request(38, { consumerGroup: 'CG_PROTO_NOBODY' }, null, 3000);
  verdict(unk.code !== 0, 'GET_CONSUMER_LIST_BY_GROUP of a group without clients -> error', repStr(unk));
  /* the heartbeat subscription serves pulls without sysFlag 4 */
  const p = await pull(bc, { topic: T_PULL, group: CG_HB, queueId: 0, offset: 0, sysFlag: 0, sub: '' });
  verdict(p.code === 0 && p.recs.length === pullMax0, 'pull without sysFlag 4 uses the heartbeat subscription', `${repStr(p)} recs ${p.recs.length}`);
}

async function secSendback() {
  if (!firstPull) throw new Error('no pulled message (pull section failed)');
  const cg = 'CG_PROTO_RETRY';
  const origId = ID_PREFIX + firstPull.physOffset.toString(16).toUpperCase().padStart(16, '0');
  const t0 = Date.now();
  const r = await bc.request(36, { offset: String(firstPull.physOffset), group: cg, delayLevel: '1', originMsgId: origId,
    originTopic: T_PULL, unitMode: 'false', maxReconsumeTimes: '16' }, null, 3000);
  verdict(r.code === 0, 'CONSUMER_SEND_MSG_BACK (delayLevel 1) replies 0', repStr(r));
  const early = await pull(bc, { topic: `%RETRY%${cg}`, group: cg, queueId: 0, offset: 0 });
  const [ pr, ms ] = await pullUntilFound(bc, { topic: `%RETRY%${cg}`, group: cg, queueId: 0, offset: 0 }, 6000);
  const rec = pr.recs[0];
  const total = Date.now() - t0;
  verdict(early.code !== 0 && rec && total >= 700, 'sent-back message reaches %RETRY%<group> after the level-1 delay',
    `immediately: ${repStr(early)}; found after ${total} ms (polled ${ms} ms): ${rec ? 'yes' : repStr(pr)}`);
  if (rec) {
    const pb = recordProblem(rec, { body: 'pull-0', topic: `%RETRY%${cg}`, reconsumeTimes: 1,
      props: { RETRY_TOPIC: T_PULL, ORIGIN_MESSAGE_ID: origId } });
    verdict(!pb, 'retry record: RETRY_TOPIC = original topic, ORIGIN_MESSAGE_ID, RECONSUMETIMES 1, body kept',
      pb || short(rec.propsText.replace(/[\u0001\u0002]/g, m => (m === '\u0001' ? '=' : ';'))));
  }

  const dg = 'CG_PROTO_DLQ';
  const d = await bc.request(36, { offset: String(firstPull.physOffset), group: dg, delayLevel: '1', originMsgId: origId,
    originTopic: T_PULL, unitMode: 'false', maxReconsumeTimes: '0' }, null, 3000);
  verdict(d.code === 0, 'CONSUMER_SEND_MSG_BACK with maxReconsumeTimes 0 replies 0', repStr(d));
  const [ dr, dms ] = await pullUntilFound(bc, { topic: `%DLQ%${dg}`, group: dg, queueId: 0, offset: 0 }, 3000);
  const drec = dr.recs[0];
  verdict(!!drec && !recordProblem(drec, { body: 'pull-0', topic: `%DLQ%${dg}` }), 'with maxReconsumeTimes 0 the message lands in %DLQ%<group>',
    drec ? `${recordProblem(drec, { body: 'pull-0', topic: `%DLQ%${dg}` }) || 'ok'} after ${dms} ms` : repStr(dr));
  const rq = await pull(bc, { topic: `%RETRY%${dg}`, group: dg, queueId: 0, offset: 0 });
  verdict(rq.code !== 0 || !rq.recs.length, 'DLQ-bound message is not in %RETRY%<group>', repStr(rq));
  const bad = await bc.request(36, { offset: '999999999999', group: dg, delayLevel: '1', maxReconsumeTimes: '16' }, null, 3000);
  verdict(bad.code !== 0, 'CONSUMER_SEND_MSG_BACK with an offset past the commit log -> error', repStr(bad));
}

async function secDelay() {
  await createTopic(bc, T_DELAY, 1);
  const t0 = Date.now();
  const s = await send(bc, T_DELAY, 'delayed-2', { queueId: 0, props: { DELAY: '2', TAGS: 'TagD' } });
  verdict(s.code === 0 && idOk(s.extFields.msgId), 'send with DELAY=2 replies 0', repStr(s));
  const now = await pull(bc, { topic: T_DELAY, queueId: 0, offset: 0 });
  verdict(now.code === 19, 'delayed message is not pullable from its topic immediately', repStr(now));
  const [ pr, ms ] = await pullUntilFound(bc, { topic: T_DELAY, queueId: 0, offset: 0 }, 6000);
  const total = Date.now() - t0;
  const rec = pr.recs[0];
  const pb = rec ? recordProblem(rec, { body: 'delayed-2', topic: T_DELAY, queueId: 0, queueOffset: 0, props: { TAGS: 'TagD' } }) : 'not found';
  verdict(rec && total >= 800 && !pb, 'delayed message is pullable after the level\'s delay (1 s)', `${pb || 'ok'}, ${total} ms (polled ${ms})`);
  if (rec) info(`redelivered delayed message properties: ${rec.propsText.replace(/[\u0001\u0002]/g, m => (m === '\u0001' ? '=' : ';'))}`);
}

async function secLookup() {
  const key = `key-${RUN}`;
  const s = await send(bc, T_SEND, 'keyed', { queueId: 2, props: { KEYS: `${key} other-${RUN}`, TAGS: 'TagK' } });
  const phys = idOffset(s.extFields.msgId || '0'.repeat(32));
  keyedMsg = { key, phys };
  const v = await bc.request(33, { offset: String(phys) }, null, 3000);
  const p = v.code === 0 ? parseRecords(v.body) : { recs: [] };
  const pb = p.recs[0] ? recordProblem(p.recs[0], { body: 'keyed', topic: T_SEND, physOffset: phys }) : 'no record';
  verdict(v.code === 0 && p.recs.length === 1 && !pb, 'VIEW_MESSAGE_BY_ID by offset returns the record', `${repStr(v)} ${pb}`);
  const vb = await bc.request(33, { offset: String(phys + 3) }, null, 3000);
  verdict(vb.code !== 0, 'VIEW_MESSAGE_BY_ID at an offset inside a record -> error', repStr(vb));

  const ext = k => ({ topic: T_SEND, key: k, maxNum: '32', beginTimestamp: '0', endTimestamp: String(Date.now() + 1e6) });
  let q;
  const t0 = Date.now();
  do {
    q = await bc.request(12, ext(key), null, 3000);
    if (q.code === 0) break;
    await sleep(100);
  } while (Date.now() - t0 < 2000);
  const qp = q.code === 0 ? parseRecords(q.body) : { recs: [] };
  const qr = qp.recs.filter(x => x.physOffset === phys);
  verdict(q.code === 0 && qr.length === 1 && qp.recs.length === 1 && !recordProblem(qr[0], { body: 'keyed', topic: T_SEND }),
    'QUERY_MESSAGE by key returns the message', `${repStr(q)} ${qp.recs.length} records ${qp.error || ''}`);
  verdict(q.extFields.indexLastUpdateTimestamp !== undefined && q.extFields.indexLastUpdatePhyoffset !== undefined,
    'QUERY_MESSAGE reply has indexLastUpdateTimestamp and indexLastUpdatePhyoffset', short(q.extFields));
  const q2 = await bc.request(12, ext(`other-${RUN}`), null, 3000);
  verdict(q2.code === 0 && parseRecords(q2.body).recs.some(x => x.physOffset === phys), 'QUERY_MESSAGE by the second KEYS token finds it', repStr(q2));
  const q3 = await bc.request(12, ext(`nokey-${RUN}`), null, 3000);
  verdict(q3.code === 22 && q3.extFields.indexLastUpdateTimestamp !== undefined, 'QUERY_MESSAGE with an unknown key -> 22 QUERY_NOT_FOUND (index fields present)', repStr(q3));
}

async function secAdmin() {
  const c = await bc.request(17, { topic: T_ADM, defaultTopic: 'TBW102', readQueueNums: '3', writeQueueNums: '3', perm: '6',
    topicFilterType: 'SINGLE_TAG', topicSysFlag: '0', order: 'false' }, null, 3000);
  verdict(c.code === 0, 'UPDATE_AND_CREATE_TOPIC replies 0', repStr(c));
  const g = await bc.request(351, { topic: T_ADM, lo: 'true' }, null, 3000);
  let tc = null;
  try {
    tc = jsonBody(g);
  } catch (e) { /* reported */ }
  verdict(g.code === 0 && tc && tc.topicName === T_ADM && tc.readQueueNums === 3 && tc.writeQueueNums === 3 && tc.perm === 6 &&
    tc.topicFilterType === 'SINGLE_TAG', 'GET_TOPIC_CONFIG body is the TopicConfig', `${repStr(g)} ${g.body.toString()}`);
  const gu = await bc.request(351, { topic: `NoSuchTopic_${RUN}` }, null, 3000);
  verdict(gu.code === 17, 'GET_TOPIC_CONFIG of an unknown topic -> 17', repStr(gu));
  const bad = await bc.request(17, { topic: 'bad topic', defaultTopic: 'TBW102', readQueueNums: '3', writeQueueNums: '3', perm: '6',
    topicFilterType: 'SINGLE_TAG', topicSysFlag: '0', order: 'false' }, null, 3000);
  verdict(bad.code !== 0, 'UPDATE_AND_CREATE_TOPIC with an invalid name is refused', repStr(bad));

  const all = await bc.request(21, {}, null, 3000);
  let table = null;
  try {
    table = jsonBody(all).topicConfigTable;
  } catch (e) { /* reported */ }
  verdict(all.code === 0 && table && table[T_ADM] && table[T_ADM].readQueueNums === 3 && table.TBW102,
    'GET_ALL_TOPIC_CONFIG contains the new topic (and TBW102)', `${repStr(all)} ${table ? Object.keys(table).length + ' topics' : short(all.body.toString())}`);

  const ts = await bc.request(202, { topic: T_PULL }, null, 3000);
  const tsText = ts.body.toString();
  const ents = parseMqMap(tsText);
  const q0 = ents.find(x => x.queueId === 0);
  verdict(ts.code === 0 && ents.length === 4 && [ 0, 1, 2, 3 ].every(i => ents.some(x => x.queueId === i)) &&
    ents.every(x => x.brokerName === 'broker-a' && x.topic === T_PULL) &&
    /^\{\s*"offsetTable"\s*:\s*\{\s*\{/.test(tsText),
  'GET_TOPIC_STATS_INFO: one entry per queue, MessageQueue object keys', `${repStr(ts)} ${short(tsText, 400)}`);
  verdict(q0 && q0.value.maxOffset === pullMax0 && q0.value.minOffset === 0 && q0.value.lastUpdateTimestamp > 0,
    'topic stats of queue 0: minOffset 0, maxOffset, lastUpdateTimestamp', short(q0));
  const tsu = await bc.request(202, { topic: `NoSuchTopic_${RUN}` }, null, 3000);
  verdict(tsu.code === 17, 'GET_TOPIC_STATS_INFO of an unknown topic -> 17', repStr(tsu));

  const cs = await bc.request(208, { consumerGroup: CG_OFF, topic: T_PULL }, null, 3000);
  const csText = cs.body.toString();
  const cents = parseMqMap(csText);
  const c0 = cents.find(x => x.queueId === 0);
  verdict(cs.code === 0 && c0 && c0.value.consumerOffset === 2 && c0.value.brokerOffset === pullMax0 && /"consumeTps"/.test(csText),
    'GET_CONSUME_STATS: committed offset 2 and brokerOffset of queue 0', `${repStr(cs)} ${short(csText, 400)}`);

  const cc = await bc.request(203, { consumerGroup: CG_HB }, null, 3000);
  let conn = null;
  try {
    conn = jsonBody(cc);
  } catch (e) { /* reported */ }
  verdict(cc.code === 0 && conn && (conn.connectionSet || []).some(x => x.clientId === `127.0.0.1@proto1#${RUN}` && x.clientAddr && x.language) &&
    conn.subscriptionTable && conn.subscriptionTable[T_PULL] && conn.messageModel === 'CLUSTERING',
  'GET_CONSUMER_CONNECTION_LIST lists the connected member and its subscriptions', `${repStr(cc)} ${short(cc.body.toString(), 400)}`);
  const ccu = await bc.request(203, { consumerGroup: 'CG_PROTO_NOBODY' }, null, 3000);
  verdict(ccu.code === 206, 'GET_CONSUMER_CONNECTION_LIST of a group without clients -> 206 CONSUMER_NOT_ONLINE', repStr(ccu));

  const who = await bc.request(300, { topic: T_PULL }, null, 3000);
  let gl = [];
  try {
    gl = jsonBody(who).groupList || [];
  } catch (e) { /* reported */ }
  verdict(who.code === 0 && gl.includes(CG_HB) && gl.includes(CG_OFF), 'QUERY_TOPIC_CONSUME_BY_WHO lists the subscribed group and the group with offsets',
    `${repStr(who)} ${short(gl)}`);

  const ri = await bc.request(28, {}, null, 3000);
  let kv = {};
  try {
    kv = jsonBody(ri).table || {};
  } catch (e) { /* reported */ }
  const longKeys = [ 'msgPutTotalYesterdayMorning', 'msgPutTotalTodayMorning', 'msgPutTotalTodayNow', 'msgGetTotalYesterdayMorning',
    'msgGetTotalTodayMorning', 'msgGetTotalTodayNow', 'sendThreadPoolQueueSize', 'pullThreadPoolQueueSize', 'earliestMessageTimeStamp' ];
  const missing = longKeys.filter(k => typeof kv[k] !== 'string' || !/^-?\d+$/.test(kv[k]));
  for (const k of [ 'brokerVersionDesc', 'putTps', 'getTransferredTps', 'commitLogDiskRatio', 'brokerActive' ]) {
    if (typeof kv[k] !== 'string') missing.push(k);
  }
  verdict(ri.code === 0 && !missing.length && Number(kv.msgPutTotalTodayNow) >= sendCount,
    'GET_BROKER_RUNTIME_INFO table has the keys mqadmin parses (string values), msgPutTotalTodayNow counts the sends',
    `${missing.length ? 'missing/bad: ' + missing.join(',') + '; ' : ''}msgPutTotalTodayNow ${kv.msgPutTotalTodayNow} (>= ${sendCount})`);
  if (kv.earliestMessageTimeStamp === '0') info('runtime info earliestMessageTimeStamp is 0 although the store holds messages');

  const cfg = await bc.request(26, {}, null, 3000);
  const ctext = cfg.body.toString();
  verdict(cfg.code === 0 && new RegExp(`(^|\\n)listenPort=${brokerPort}(\\r?\\n|$)`).test(ctext),
    'GET_BROKER_CONFIG body has listenPort=<port>', `code ${cfg.code}, ${(ctext.match(/listenPort=\S*/) || [ 'no listenPort line' ])[0]}, ${ctext.split('\n').length} lines`);
  verdict(/(^|\n)flushDiskType=SYNC_FLUSH(\r?\n|$)/.test(ctext), 'GET_BROKER_CONFIG shows flushDiskType=SYNC_FLUSH');

  const ro = await bc.request(25, {}, 'brokerPermission=4\n', 3000);
  const sRo = await send(bc, T_SEND, 'readonly', { queueId: 0, expect: null });
  const pRo = await pull(bc, { topic: T_PULL, queueId: 0, offset: 0, max: 1 });
  verdict(ro.code === 0 && sRo.code === 16 && pRo.code === 0, 'UPDATE_BROKER_CONFIG brokerPermission=4: sends -> 16, pulls still served',
    `update ${repStr(ro)}; send ${repStr(sRo)}; pull ${pRo.code}`);
  const rw = await bc.request(25, {}, 'brokerPermission=6\n', 3000);
  const sRw = await send(bc, T_SEND, 'readwrite', { queueId: 0 });
  verdict(rw.code === 0 && sRw.code === 0, 'brokerPermission=6 restores sends', `update ${repStr(rw)}; send ${repStr(sRw)}`);
  const lp = await bc.request(25, {}, 'listenPort=1\n', 3000);
  verdict(lp.code !== 0, 'UPDATE_BROKER_CONFIG listenPort=1 (not a runtime setting) is refused', repStr(lp));
  const uk = await bc.request(25, {}, 'noSuchSetting=1\n', 3000);
  verdict(uk.code !== 0, 'UPDATE_BROKER_CONFIG with an unknown key is refused', repStr(uk));
  const mix = await bc.request(25, {}, 'brokerPermission=2\nlistenPort=1\n', 3000);
  const cfg2 = await bc.request(26, {}, null, 3000);
  const ctext2 = cfg2.body.toString();
  verdict(mix.code !== 0 && /(^|\n)brokerPermission=6(\r?\n|$)/.test(ctext2) && new RegExp(`(^|\\n)listenPort=${brokerPort}(\\r?\\n|$)`).test(ctext2),
    'a refused UPDATE_BROKER_CONFIG changes nothing (all or nothing)', `${repStr(mix)}; brokerPermission line ${(ctext2.match(/brokerPermission=\S*/) || [])[0]}`);
  /* a bad value after a good line: the good line must not be applied either */
  const badv = await bc.request(25, {}, 'brokerPermission=2\nmaxPulledBytes=lots\n', 3000);
  const cfg3 = await bc.request(26, {}, null, 3000);
  const ctext3 = cfg3.body.toString();
  verdict(badv.code !== 0 && /maxPulledBytes/.test(badv.remark || '') && /(^|\n)brokerPermission=6(\r?\n|$)/.test(ctext3),
    'UPDATE_BROKER_CONFIG with a bad value on a later line changes nothing', `${repStr(badv)}; brokerPermission line ${(ctext3.match(/brokerPermission=\S*/) || [])[0]}`);

  const del = await bc.request(215, { topic: T_ADM }, null, 3000);
  const g2 = await bc.request(351, { topic: T_ADM }, null, 3000);
  const sDel = await send(bc, T_ADM, 'after-delete', { queueId: 0, defaultTopic: 'NoTemplate', expect: null });
  verdict(del.code === 0 && g2.code === 17, 'DELETE_TOPIC_IN_BROKER removes the topic (GET_TOPIC_CONFIG -> 17)', `${repStr(del)}; ${repStr(g2)}`);
  verdict(sDel.code === 17, 'send to the deleted topic (no template) -> 17', repStr(sDel));
}

async function secNamesrv() {
  const ci = await ns.request(106, {}, null, 3000);
  const text = ci.body.toString();
  let cl = null;
  try {
    cl = parseLenientJson(text);
  } catch (e) { /* reported */ }
  const bd = cl && cl.brokerAddrTable && cl.brokerAddrTable['broker-a'];
  verdict(ci.code === 0 && bd && bd.brokerAddrs && bd.brokerAddrs[0] === broker && bd.cluster === 'DefaultCluster' &&
    cl.clusterAddrTable && (cl.clusterAddrTable.DefaultCluster || []).includes('broker-a') && /"brokerAddrs":\{0:"/.test(text),
  'GET_BROKER_CLUSTER_INFO: brokerAddrTable (unquoted id keys) and clusterAddrTable', `${repStr(ci)} ${short(text, 400)}`);

  const tl = await ns.request(206, {}, null, 3000);
  let list = [];
  try {
    list = jsonBody(tl).topicList || [];
  } catch (e) { /* reported */ }
  verdict(tl.code === 0 && list.includes(T_PULL) && list.includes('TBW102'), 'GET_ALL_TOPIC_LIST_FROM_NAMESERVER lists the topics',
    `${repStr(tl)} ${list.length} topics`);

  const r121 = await route(ns, T_PULL, 121);
  const t121 = r121.body.toString();
  verdict(r121.code === 0 && t121.includes(`{0:"${broker}"`) && !t121.includes('"0":'), 'route for version 121 has unquoted int keys {0:',
    short(t121, 300));
  const r401 = await route(ns, T_PULL, 401);
  const t401 = r401.body.toString();
  let rd = null;
  try {
    rd = JSON.parse(t401);
  } catch (e) { /* reported */ }
  const qd = rd && (rd.queueDatas || []).find(q => q.brokerName === 'broker-a');
  verdict(r401.code === 0 && t401.includes(`{"0":"${broker}"`) && rd && qd && qd.readQueueNums === 4 && qd.writeQueueNums === 4 && qd.perm === 6,
    'route for version 401 is standard JSON with quoted keys {"0": and the queue data', short(t401, 300));
  const std = await ns.request(105, { topic: T_PULL, acceptStandardJsonOnly: 'true' }, null, 3000);
  verdict(std.code === 0 && std.body.toString().includes('{"0":'), 'route with acceptStandardJsonOnly=true (version 121) has quoted keys', short(std.body.toString(), 200));

  /* T_ADM was deleted in the broker (admin section); drop it here too */
  const tDel = sections.includes('admin') ? T_ADM : T_SEARCH;
  const before = await route(ns, tDel);
  const d = await ns.request(216, { topic: tDel, clusterName: 'DefaultCluster' }, null, 3000);
  const after = await route(ns, tDel);
  verdict(d.code === 0 && after.code === 17, 'DELETE_TOPIC_IN_NAMESRV removes the route (then 105 -> 17)',
    `before ${before.code}, delete ${repStr(d)}, after ${repStr(after)}`);
  const unk = await route(ns, `NoSuchTopic_${RUN}`);
  verdict(unk.code === 17 && !!unk.remark, 'route of an unknown topic -> 17 with a remark', repStr(unk));
}

async function secPipeline() {
  await createTopic(bc, T_PIPE, 4);
  const c = await connect(broker);
  try {
    const base = 1000000 + Math.floor(Math.random() * 1000000);
    const order = [];
    const t0 = Date.now();
    const ps = [];
    for (let i = 0; i < nPipeline; i++) {
      const opaque = base + i;
      ps.push(c.request(310, sendHeader(T_PIPE, { queueId: i % 4 }), Buffer.from(`pipe-${i}`), 30000, { opaque })
        .then(r => {
          order.push(r.opaque);
          return { i, opaque, r };
        }, e => ({ i, opaque, err: e.message })));
    }
    const res = await Promise.all(ps);
    const ms = Date.now() - t0;
    const errs = res.filter(x => x.err).map(x => `#${x.i}: ${x.err}`);
    const bad = res.filter(x => x.r && (x.r.code !== 0 || x.r.opaque !== x.opaque)).map(x => `#${x.i}: ${repStr(x.r)}`);
    sendCount += nPipeline;
    verdict(!errs.length && !bad.length && !c.stray.length, `${nPipeline} pipelined sends on one connection: all replies arrive with code 0, opaques matched`,
      errs.length || bad.length ? `${errs.length} missing, ${bad.length} bad: ${errs.concat(bad).slice(0, 3).join('; ')}` : `${ms} ms`);
    let inv = 0;
    for (let k = 1; k < order.length; k++) if (order[k] < order[k - 1]) inv++;
    info(`pipelined replies out of order: ${inv}, stray frames ${c.stray.length}`);
    const perQ = [ [], [], [], [] ];
    for (const x of res) if (x.r && x.r.code === 0) perQ[x.i % 4].push(Number(x.r.extFields.queueOffset));
    const okQ = perQ.every(l => l.length === nPipeline / 4 && l.slice().sort((a, b) => a - b).every((v, k) => v === k));
    const ids = new Set(res.filter(x => x.r).map(x => x.r.extFields.msgId));
    verdict(okQ && ids.size === nPipeline, 'pipelined sends: distinct msgIds, each queue\'s offsets are exactly 0..n-1',
      `per-queue counts ${perQ.map(l => l.length).join(',')}, distinct ids ${ids.size}`);
    await waitMax(T_PIPE, 3, nPipeline / 4).catch(() => {});
    const mx = await bc.request(30, { topic: T_PIPE, queueId: '3' }, null, 3000);
    verdict(mx.extFields.offset === String(nPipeline / 4), `GET_MAX_OFFSET after the pipeline = ${nPipeline / 4}`, repStr(mx));
  } finally {
    c.close();
  }
}

/* ------------------------------------------------------------ main */

const SECTIONS = {
  send: secSend, batch: secBatch, autocreate: secAutocreate, pull: secPull, offsets: secOffsets,
  heartbeat: secHeartbeat, sendback: secSendback, delay: secDelay, lookup: secLookup, admin: secAdmin,
  namesrv: secNamesrv, pipeline: secPipeline,
};

async function main() {
  bc = await connect(broker);
  ns = await connect(namesrv);
  for (const name of sections) {
    const fn = SECTIONS[name];
    if (!fn) {
      verdict(false, `unknown section ${name}`);
      continue;
    }
    const t0 = Date.now();
    try {
      await fn();
    } catch (e) {
      verdict(false, `section ${name} aborted`, e.stack || e.message);
    }
    info(`section ${name}: ${Date.now() - t0} ms`);
    if (bc.closed) {
      verdict(false, `broker closed the connection during section ${name}`);
      bc = await connect(broker);
    }
  }
  verdict(!sendBad.length, `SYNC_FLUSH: every send expected to succeed replied 0 (${sendCount} sends)`, sendBad.slice(0, 5).join('; '));
  if (hbConn1) hbConn1.close();
  bc.close();
  ns.close();
  out(`INFO ${checks} checks, ${failures} failed`);
  return failures ? 1 : 0;
}

main().then(code => process.exit(code), e => {
  out(`FAIL protocol.js: ${e.stack || e.message}`);
  process.exit(1);
});
