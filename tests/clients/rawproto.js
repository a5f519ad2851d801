'use strict';
/*
 * rawproto.js - hostile input against a broker over raw sockets, while a
 * well-behaved client keeps sending SEND_MESSAGE_V2 (310) and must keep
 * getting replies.
 *
 * Environment:
 *   BROKER      broker address host:port (required)
 *   TOPIC       an existing topic that already holds messages (for pulls
 *               and the normal sends) (required)
 *   DAEMON_PID  the broker's pid: checked alive after every scenario, and
 *               its VmRSS sampled (peak reported; MAX_RSS_MB, 1024, fails)
 *   SCENARIOS   comma list, default all, in this order:
 *     malformed  framing/JSON errors; the server must close the connection
 *                (Java's decoder does) or, where the framing is intact,
 *                answer with a non-zero code
 *     oversized  length word > 16 MiB: the server must close without
 *                waiting for the bytes
 *     unknown    unknown request code -> code 3 REQUEST_CODE_NOT_SUPPORTED,
 *                opaque echoed, flag bit 0 set, JSON header; a oneway
 *                unknown request gets no reply; odd extFields value types
 *     partial    half a frame left open, and half a frame then FIN
 *     slow       a client pipelines PULLS (2000) pull requests and never
 *                reads; for HOLD_MS (6000) other clients must still be
 *                served within LAT_MS
 *     conns      CONNS (200) connections at once, one request each
 *   CLOSE_MS    how long to wait for a close or a reply (3000)
 *   LAT_MS      the normal client's worst acceptable reply time (3000)
 *
 * Prints PASS/FAIL/INFO lines; exit 0 when nothing failed, 1 otherwise.
 */

const fs = require('fs');
const net = require('net');
const { Conn, encode, encodeBinary, FrameReader } = require('./lib/remoting');
const { envStr, envInt, sleep } = require('./lib/common');

const broker = envStr('BROKER', '');
const topic = envStr('TOPIC', '');
const daemonPid = envInt('DAEMON_PID', 0);
const scenarios = envStr('SCENARIOS', 'malformed,oversized,unknown,partial,slow,conns').split(',');
const closeMs = envInt('CLOSE_MS', 3000);
const latMs = envInt('LAT_MS', 3000);
const maxRssMb = envInt('MAX_RSS_MB', 1024);
const pulls = envInt('PULLS', 2000);
const holdMs = envInt('HOLD_MS', 6000);
const nConns = envInt('CONNS', 200);

let failures = 0;
const out = s => process.stdout.write(s + '\n');
function verdict(ok, what, detail) {
  if (ok) {
    out(`PASS ${what}${detail ? ` (${detail})` : ''}`);
  } else {
    failures++;
    out(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
  }
}

const [ host, portStr ] = broker.split(':');
const port = Number(portStr);

/* ---- daemon watch: alive + peak RSS ---- */
let peakRssKb = 0;
function sampleRss() {
  if (!daemonPid) return;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${daemonPid}/status`, 'utf8'));
    if (m) peakRssKb = Math.max(peakRssKb, Number(m[1]));
  } catch (e) {
    /* gone: reported by alive() */
  }
}
function alive() {
  if (!daemonPid) return true;
  try {
    process.kill(daemonPid, 0);
    return true;
  } catch (e) {
    return false;
  }
}

/* ---- the well-behaved client ---- */
const normal = { sent: 0, ok: 0, bad: [], maxLat: 0, stop: false, phase: 'start', worst: '' };
async function normalClient() {
  let c = null;
  let i = 0;
  while (!normal.stop) {
    if (!c || c.closed) {
      c = new Conn(broker);
      try {
        await c.connect(3000);
      } catch (e) {
        normal.bad.push(`[${normal.phase}] connect: ${e.message}`);
        c = null;
        await sleep(200);
        continue;
      }
    }
    const n = i++;
    /* ali-ons sends numbers and booleans unquoted; Java sends strings. */
    const numeric = n % 2 === 0;
    const v = x => (numeric ? x : String(x));
    const props = `TAGS\u0001Raw\u0002KEYS\u0001raw-${n}\u0002`;
    const ext = {
      a: 'PG_RAW', b: topic, c: 'TBW102', d: v(4), e: v(n % 4), f: v(0),
      g: v(Date.now()), h: v(0), i: props, j: v(0), k: numeric ? false : 'false',
    };
    const t = Date.now();
    normal.sent++;
    try {
      const r = await c.request(310, ext, Buffer.from(JSON.stringify({ i: n, key: `raw-${n}` })), 10000);
      const lat = Date.now() - t;
      if (lat > normal.maxLat) {
        normal.maxLat = lat;
        normal.worst = normal.phase;
      }
      const e = r.extFields;
      if (r.code === 0 && e.msgId !== undefined && e.queueId !== undefined && e.queueOffset !== undefined) {
        normal.ok++;
      } else {
        normal.bad.push(`[${normal.phase}] send ${n}: code ${r.code} ${r.remark || ''} ext ${JSON.stringify(e)}`);
      }
    } catch (err) {
      normal.bad.push(`[${normal.phase}] send ${n}: ${err.message}`);
    }
    await sleep(20);
  }
  if (c) c.close();
}

/* ---- helpers ---- */

/*
 * Connects, writes <bytes> (a Buffer, or an array of Buffers written
 * DELAY apart), and reports what the server did within closeMs:
 * {closed, replies:[{code,opaque,flag,type}], bad}
 */
function probe(bytes, opts = {}) {
  return new Promise(resolve => {
    const res = { closed: false, replies: [], bad: null, connected: false };
    const reader = new FrameReader();
    const s = net.connect({ host, port });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(res);
    };
    const timer = setTimeout(finish, opts.waitMs || closeMs);
    s.on('connect', async () => {
      res.connected = true;
      const parts = Array.isArray(bytes) ? bytes : [ bytes ];
      for (const p of parts) {
        if (s.destroyed) break;
        s.write(p);
        if (opts.gapMs) await sleep(opts.gapMs);
      }
    });
    s.on('data', chunk => {
      try {
        for (const f of reader.push(chunk)) {
          const h = f.header || {};
          res.replies.push({ code: h.code, opaque: h.opaque, flag: h.flag, type: f.type, error: f.error });
          if (opts.untilReplies && res.replies.length >= opts.untilReplies) finish();
        }
      } catch (e) {
        res.bad = e.message;
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      res.closed = true;
      finish();
    });
  });
}

function rawFrame(totalLen, headerWord, rest) {
  const b = Buffer.alloc(8);
  b.writeInt32BE(totalLen | 0, 0);
  b.writeInt32BE(headerWord | 0, 4);
  return Buffer.concat([ b, rest || Buffer.alloc(0) ]);
}

function jsonFrame(headerText, body) {
  const h = Buffer.from(headerText, 'utf8');
  const bd = body || Buffer.alloc(0);
  return rawFrame(4 + h.length + bd.length, h.length, Buffer.concat([ h, bd ]));
}

function describe(r) {
  const reps = r.replies.map(x => `code ${x.code}`).join(',');
  return `${r.closed ? 'closed' : 'left open'}${reps ? `, replies: ${reps}` : ''}`;
}

/* ---- scenarios ---- */

async function scMalformed() {
  const mustClose = [
    [ 'header length larger than the frame', rawFrame(20, 100, Buffer.from('0123456789abcdef')) ],
    [ 'length word 0', rawFrame(0, 0) ],
    [ 'length word 3 (< 4)', Buffer.from([ 0, 0, 0, 3, 0, 0, 0 ]) ],
    [ 'negative length word', rawFrame(-1, 10, Buffer.from('garbage')) ],
    [ 'negative header length', rawFrame(12, -8, Buffer.from('abcdefgh')) ],
    [ 'unknown serialize type 7', rawFrame(12, (7 << 24) | 8, Buffer.from('abcdefgh')) ],
    [ 'binary header shorter than its fixed part', rawFrame(9, (1 << 24) | 5, Buffer.from('abcde')) ],
  ];
  for (const [ what, bytes ] of mustClose) {
    const r = await probe(bytes);
    verdict(r.closed, `malformed frame (${what}) -> connection closed`, describe(r));
  }
  const closeOrError = [
    [ 'garbage JSON header', jsonFrame('{"code":310,"opaque":5,"flag":0,"extFields":{"a":') ],
    [ 'non-JSON header bytes', jsonFrame('\u0000\u00ff\u00fe garbage \u0001') ],
    [ 'JSON header that is an array', jsonFrame('[1,2,3]') ],
    [ 'JSON header that is a string', jsonFrame('"hello"') ],
    [ 'header nested 100000 deep', jsonFrame(`{"code":9999,"opaque":6,"flag":0,"extFields":{"x":${'['.repeat(100000)}${']'.repeat(100000)}}}`) ],
    [ 'invalid UTF-8 and bad escapes in the header', jsonFrame('{"code":9999,"opaque":7,"flag":0,"remark":"\\ud800\\uZZZZ\u00c3\u0028"}') ],
    [ 'code of the wrong type', jsonFrame('{"code":"ten","opaque":8,"flag":0}') ],
    [ 'header with no code', jsonFrame('{"opaque":9,"flag":0}') ],
    [ 'SEND_MESSAGE_V2 with nonsense extFields',
      jsonFrame(JSON.stringify({ code: 310, opaque: 10, flag: 0, language: 'JAVA', version: 121,
        extFields: { a: [], b: { x: 1 }, c: null, d: 'x', e: -1e300, f: true, g: 'nan', h: '', i: 12 } }), Buffer.from('body')) ],
    [ 'SEND_MESSAGE_V2 to queue 2^31-1 of a bad topic name',
      jsonFrame(JSON.stringify({ code: 310, opaque: 11, flag: 0, language: 'JAVA', version: 121,
        extFields: { a: 'G', b: '../../etc/passwd', c: 'TBW102', d: '4', e: '2147483647', f: '0', g: '0', h: '0', i: '' } }), Buffer.from('body')) ],
    [ 'PULL_MESSAGE with a huge maxMsgNums and negative offset',
      jsonFrame(JSON.stringify({ code: 11, opaque: 12, flag: 0, language: 'JAVA', version: 121,
        extFields: { consumerGroup: 'G', topic, queueId: '0', queueOffset: '-5', maxMsgNums: '2147483647',
          sysFlag: '4', commitOffset: '0', suspendTimeoutMillis: '0', subscription: '*', subVersion: '0' } })) ],
    [ 'HEART_BEAT with a garbage body', jsonFrame('{"code":34,"opaque":13,"flag":0,"extFields":{}}', Buffer.from('{"clientID":[')) ],
  ];
  for (const [ what, bytes ] of closeOrError) {
    const r = await probe(bytes, { untilReplies: 1 });
    const ok = r.closed || (r.replies.length > 0 && r.replies.every(x => x.code !== 0 || what.startsWith('PULL')));
    verdict(ok, `malformed request (${what}) -> closed or error reply`, describe(r));
  }
}

async function scOversized() {
  const cases = [
    [ '16 MiB + 1', 16 * 1024 * 1024 + 1 ],
    [ '2^31 - 1', 0x7fffffff ],
  ];
  for (const [ what, len ] of cases) {
    const t = Date.now();
    const r = await probe([ rawFrame(len, 64, Buffer.alloc(64, 0x41)), Buffer.alloc(4096, 0x41), Buffer.alloc(4096, 0x42) ],
      { gapMs: 50 });
    verdict(r.closed, `length word ${what} -> connection closed without reading the body`,
      `${describe(r)} after ${Date.now() - t} ms`);
  }
}

async function scUnknown() {
  const c = new Conn(broker);
  await c.connect(3000);
  try {
    const op = 424242;
    const r = await c.request(9999, { foo: 'bar' }, null, closeMs, { opaque: op });
    verdict(r.code === 3 && r.opaque === op && (r.flag & 1) === 1 && r.type === 0,
      'unknown request code 9999 -> code 3, opaque echoed, response flag, JSON header',
      `code ${r.code} opaque ${r.opaque} flag ${r.flag} type ${r.type} remark ${JSON.stringify(r.remark)}`);

    const r2 = await c.request(9998, { n: 1, b: true, z: null, o: { x: [ 1 ] }, big: 12345678901234 }, Buffer.from('xyz'), closeMs);
    verdict(r2.code === 3, 'unknown code with number/bool/null/object extFields and a body -> code 3', `code ${r2.code}`);

    const r3 = await c.request(9997, {}, null, closeMs, { opaque: -7 });
    verdict(r3.opaque === -7 && r3.code === 3, 'negative opaque echoed', `opaque ${r3.opaque} code ${r3.code}`);

    const before = c.stray.length;
    const one = c.oneway(9996, { x: '1' });
    const r4 = await c.request(9995, {}, null, closeMs);
    await sleep(300);
    const strayOneway = c.stray.slice(before).filter(f => f.header && f.header.opaque === one);
    verdict(r4.code === 3 && strayOneway.length === 0, 'oneway unknown request gets no reply',
      strayOneway.length ? 'a reply to the oneway request arrived' : `next request answered with code ${r4.code}`);
  } catch (err) {
    verdict(false, 'unknown request code -> code 3', err.message);
  } finally {
    c.close();
  }

  /* ROCKETMQ binary headers are not used by ali-ons: informational. */
  const rb = await probe(encodeBinary({ code: 9994, opaque: 77, extFields: { a: 'b' } }), { untilReplies: 1 });
  const rep = rb.replies[0];
  out(`INFO binary (ROCKETMQ) header request: ${rep ? `reply code ${rep.code} opaque ${rep.opaque} type ${rep.type}` : describe(rb)}`);
}

let partialSocks = [];
async function scPartial() {
  /* Half a frame left open for the rest of the run. */
  const s = net.connect({ host, port });
  s.on('error', () => {});
  s.on('connect', () => s.write(encode({ code: 9999, opaque: 1, extFields: {} }).subarray(0, 6)));
  partialSocks.push(s);
  /* Half a frame, then silence. */
  const r = await probe(encode({ code: 9999, opaque: 2, extFields: {} }).subarray(0, 10));
  out(`INFO half frame, then silence for ${closeMs} ms: ${describe(r)}`);
  /* Half a frame then FIN. */
  const s2 = net.connect({ host, port });
  s2.on('error', () => {});
  s2.on('connect', () => s2.end(encode({ code: 9999, opaque: 3, extFields: {} }).subarray(0, 12)));
  await sleep(300);
  const c = new Conn(broker);
  try {
    await c.connect(3000);
    const r2 = await c.request(9999, {}, null, latMs);
    verdict(r2.code === 3, 'served another client while half frames are pending', `code ${r2.code}`);
  } catch (err) {
    verdict(false, 'served another client while half frames are pending', err.message);
  } finally {
    c.close();
  }
}

async function scSlow() {
  const s = net.connect({ host, port });
  s.on('error', () => {});
  let closedBy = null;
  s.on('close', () => {
    closedBy = closedBy || 'server';
  });
  await new Promise((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  s.pause(); /* never read: the replies pile up in the kernel, then in the server */
  let written = 0;
  const queues = 4;
  for (let i = 0; i < pulls; i++) {
    const f = encode({ code: 11, opaque: 1000000 + i, extFields: {
      consumerGroup: 'CG_SLOW_READER', topic, queueId: i % queues, queueOffset: 0, maxMsgNums: 32,
      sysFlag: 4, commitOffset: 0, suspendTimeoutMillis: 0, subscription: '*', subVersion: 0,
    } });
    s.write(f);
    written += f.length;
  }
  out(`INFO slow reader: ${pulls} pull requests written (${written} bytes), not reading`);
  const end = Date.now() + holdMs;
  let probes = 0;
  let probeFail = '';
  let worst = 0;
  while (Date.now() < end) {
    const c = new Conn(broker);
    const t = Date.now();
    try {
      await c.connect(latMs);
      const r = await c.request(9999, {}, null, latMs);
      worst = Math.max(worst, Date.now() - t);
      if (r.code !== 3) probeFail = `code ${r.code}`;
    } catch (err) {
      probeFail = err.message;
    } finally {
      c.close();
    }
    probes++;
    sampleRss();
    await sleep(250);
  }
  verdict(!probeFail, `other clients served while a client does not read (${probes} probes, worst ${worst} ms)`, probeFail);
  out(`INFO slow reader connection ${closedBy ? 'was closed by the server' : 'still open'} after ${holdMs} ms`);
  closedBy = closedBy || 'client';
  s.destroy();
}

async function scConns() {
  const all = [];
  for (let i = 0; i < nConns; i++) {
    all.push((async () => {
      const c = new Conn(broker);
      try {
        await c.connect(5000);
        const r = await c.request(9999, { i }, null, 10000);
        return r.code === 3 ? null : `code ${r.code}`;
      } catch (err) {
        return err.message;
      } finally {
        c.close();
      }
    })());
  }
  const res = await Promise.all(all);
  const bad = res.filter(Boolean);
  verdict(bad.length === 0, `${nConns} simultaneous connections each answered`, bad.length ? `${bad.length} failed, e.g. ${bad[0]}` : '');
}

async function main() {
  if (!broker || !topic) throw new Error('BROKER and TOPIC are required');
  const rssTimer = setInterval(sampleRss, 200);
  sampleRss();
  const normalDone = normalClient();
  await sleep(300);
  const table = { malformed: scMalformed, oversized: scOversized, unknown: scUnknown,
    partial: scPartial, slow: scSlow, conns: scConns };
  for (const name of scenarios) {
    const fn = table[name.trim()];
    if (!fn) throw new Error(`unknown scenario ${name}`);
    normal.phase = name;
    try {
      await fn();
    } catch (err) {
      verdict(false, `scenario ${name} ran`, err.stack);
    }
    verdict(alive(), `daemon alive after scenario ${name}`);
    if (!alive()) break;
  }
  normal.phase = 'end';
  await sleep(500);
  normal.stop = true;
  await normalDone;
  for (const s of partialSocks) s.destroy();
  clearInterval(rssTimer);
  verdict(normal.sent > 0 && normal.bad.length === 0,
    `normal client: ${normal.ok}/${normal.sent} SEND_MESSAGE_V2 answered with code 0 throughout`,
    normal.bad.slice(0, 5).join('; '));
  verdict(normal.maxLat <= latMs, `normal client worst reply time ${normal.maxLat} ms <= ${latMs} ms`,
    normal.maxLat > latMs ? `during ${normal.worst}` : '');
  if (daemonPid) {
    const mb = Math.round(peakRssKb / 1024);
    verdict(mb <= maxRssMb, `daemon peak RSS ${mb} MB <= ${maxRssMb} MB`);
  }
  out(failures ? `rawproto: ${failures} failed` : 'rawproto: all passed');
  return failures ? 1 : 0;
}

main().then(code => process.exit(code), err => {
  process.stderr.write(`rawproto: ${err.stack || err}\n`);
  process.exit(1);
});
