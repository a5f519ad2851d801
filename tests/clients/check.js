'use strict';
/*
 * check.js - verdicts over the JSON-lines files of produce.js (acks) and
 * consume.js (deliveries). Prints one "PASS ..." or "FAIL ..." line per
 * property and exits 1 when any property fails.
 *
 *   node check.js count FILE[,FILE...]
 *       prints the number of distinct keys delivered (for polling)
 *
 *   node check.js missing --acks F[,F] --deliveries F[,F]
 *       prints how many acknowledged keys were not delivered yet
 *
 *   node check.js verify --acks F[,F] --deliveries F[,F] [options]
 *       every acknowledged key was delivered at least once, plus:
 *       --no-dup            no key delivered twice (stable membership)
 *       --order             per consumer process and (broker, queue topic,
 *                           queueId): queueOffsets strictly increasing in
 *                           delivery order
 *       --exclusive         no queue consumed by two processes
 *       --no-phantom        every delivered key was acknowledged
 *       --body              the key in the body equals the message key
 *       --tags A,B          only these tags delivered, and every acked
 *                           message with one of them delivered (others
 *                           must not be)
 *       --status F[,F]      consume.js STATUS files; with --tags, the
 *                           PULL replies must not have carried other tags
 *                           (the broker filters by tag)
 *       --min-per-process N each delivery file has at least N deliveries
 *       --brokers a,b       acks came from each of these broker names, and
 *                           so did deliveries
 *       --expect N          exactly N distinct keys acknowledged
 *       --acked-after MS    some sends were acknowledged after time MS
 *                           (epoch ms), e.g. after a broker restart
 *
 *   node check.js resume --first F --second F --kill-at MS --window MS
 *       a consumer group stopped by a crash (first) and restarted
 *       (second): every message the second one re-delivers was first
 *       delivered less than --window ms before --kill-at, i.e. the
 *       restart resumed from committed offsets, not from 0.
 *
 *   node check.js retry --acks F --fail F --dlq F --max-reconsume N
 *                       [--min-gap-ms G] [--group G] [--topic T]
 *       every acked key was delivered with reconsumeTimes 0..N (each
 *       exactly once), retries came through %RETRY%<group> with the
 *       original topic restored, successive attempts at least G ms apart,
 *       and the key then reached the DLQ consumer.
 */

const { readJsonl } = require('./lib/common');

let failures = 0;

function pass(what) {
  process.stdout.write(`PASS ${what}\n`);
}

function fail(what, examples) {
  failures++;
  const ex = examples && examples.length ? `: ${examples.slice(0, 5).join('; ')}` +
    (examples.length > 5 ? ` (+${examples.length - 5} more)` : '') : '';
  process.stdout.write(`FAIL ${what}${ex}\n`);
}

function verdict(ok, what, examples) {
  if (ok) pass(what);
  else fail(what, examples);
}

function parseArgs(argv) {
  const o = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) {
        o[a.slice(2, eq)] = a.slice(eq + 1);
      } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
        o[a.slice(2)] = argv[++i];
      } else {
        o[a.slice(2)] = true;
      }
    } else {
      o._.push(a);
    }
  }
  return o;
}

function files(spec) {
  if (!spec || spec === true) return [];
  return String(spec).split(',').filter(Boolean);
}

function loadAll(spec) {
  const out = [];
  for (const f of files(spec)) {
    for (const r of readJsonl(f)) {
      r._file = f;
      out.push(r);
    }
  }
  return out;
}

function acked(recs) {
  return recs.filter(r => !r.status || r.status === 'SEND_OK');
}

function cmdCount(o) {
  const keys = new Set();
  for (const spec of o._.slice(1)) {
    for (const r of loadAll(spec)) keys.add(r.key);
  }
  process.stdout.write(`${keys.size}\n`);
}

function cmdMissing(o) {
  const got = new Set(loadAll(o.deliveries).map(r => r.key));
  let n = 0;
  for (const a of acked(loadAll(o.acks))) if (!got.has(a.key)) n++;
  process.stdout.write(`${n}\n`);
}

function cmdVerify(o) {
  const acks = acked(loadAll(o.acks));
  const dels = loadAll(o.deliveries).filter(r => r.reconsumeTimes === 0 || r.reconsumeTimes === undefined);
  const allDels = loadAll(o.deliveries);
  const ackKeys = new Map();
  for (const a of acks) ackKeys.set(a.key, a);
  const delCount = new Map();
  for (const d of dels) delCount.set(d.key, (delCount.get(d.key) || 0) + 1);
  const allowTags = o.tags ? String(o.tags).split(',') : null;

  process.stdout.write(`info: ${ackKeys.size} acknowledged keys, ${allDels.length} deliveries ` +
    `(${delCount.size} distinct keys) in ${files(o.deliveries).length} file(s)\n`);

  if (o.expect !== undefined) {
    verdict(ackKeys.size === Number(o.expect), `${o.expect} keys acknowledged`, [ `got ${ackKeys.size}` ]);
  }

  if (o['acked-after'] !== undefined) {
    const after = Number(o['acked-after']);
    const n = acks.filter(a => a.t > after).length;
    verdict(n > 0, `${n} sends acknowledged after ${after}`, [ 'none' ]);
  }

  const wanted = [];
  for (const [ k, a ] of ackKeys) {
    if (!allowTags || allowTags.includes(a.tag)) wanted.push(k);
  }
  const missing = wanted.filter(k => !delCount.has(k));
  verdict(missing.length === 0 && wanted.length > 0,
    `every acknowledged${allowTags ? ' matching' : ''} message delivered (${wanted.length - missing.length}/${wanted.length})`,
    missing.map(k => `missing ${k}`));

  if (o['no-dup']) {
    const dups = [];
    for (const [ k, n ] of delCount) if (n > 1) dups.push(`${k} x${n}`);
    verdict(dups.length === 0, 'no message delivered twice', dups);
  }

  if (o['no-phantom']) {
    const ph = [ ...delCount.keys() ].filter(k => !ackKeys.has(k));
    verdict(ph.length === 0, 'every delivered key was acknowledged', ph.map(k => `unknown ${k}`));
  }

  if (o.body) {
    const bad = allDels.filter(d => d.bk !== d.key).map(d => `${d.key} body says ${d.bk}`);
    verdict(bad.length === 0, 'body matches the key of every delivery', bad);
  }

  if (allowTags) {
    const wrong = allDels.filter(d => !allowTags.includes(d.tag)).map(d => `${d.key} tag ${d.tag}`);
    verdict(wrong.length === 0, `only tags ${allowTags.join('||')} delivered`, wrong);
    const mism = allDels.filter(d => ackKeys.has(d.key) && ackKeys.get(d.key).tag !== d.tag)
      .map(d => `${d.key} sent ${ackKeys.get(d.key).tag} got ${d.tag}`);
    verdict(mism.length === 0, 'delivered tags equal the sent tags', mism);
    if (o.status) {
      const leaked = [];
      let seen = 0;
      for (const f of files(o.status)) {
        let st;
        try {
          st = JSON.parse(require('fs').readFileSync(f, 'utf8'));
        } catch (e) {
          leaked.push(`${f}: unreadable (${e.message})`);
          continue;
        }
        for (const [ t, counts ] of Object.entries(st.pulledTags || {})) {
          for (const [ tag, n ] of Object.entries(counts)) {
            seen += n;
            if (!allowTags.includes(tag)) leaked.push(`${t} ${tag || '(none)'} x${n}`);
          }
        }
      }
      verdict(leaked.length === 0 && seen > 0,
        `broker-side tag filter: PULL replies carried only ${allowTags.join('||')} (${seen} messages pulled)`, leaked);
    }
  }

  if (o.order) {
    const last = new Map();
    const bad = [];
    for (const d of allDels) {
      const q = `${d._file}|${d.pid}|${d.broker || d.store}|${d.qtopic}|${d.queueId}`;
      const prev = last.get(q);
      if (prev !== undefined && !(d.queueOffset > prev)) {
        bad.push(`${d.broker || d.store} ${d.qtopic}:${d.queueId} offset ${d.queueOffset} after ${prev} (pid ${d.pid})`);
      }
      last.set(q, d.queueOffset);
    }
    verdict(bad.length === 0, `queue offsets strictly increasing per consumer and queue (${last.size} queue streams)`, bad);
  }

  if (o.exclusive) {
    const owner = new Map();
    const bad = new Set();
    for (const d of dels) {
      const q = `${d.broker || d.store}|${d.qtopic}|${d.queueId}`;
      const p = owner.get(q);
      if (p === undefined) owner.set(q, d.pid);
      else if (p !== d.pid) bad.add(`${q} consumed by pids ${p} and ${d.pid}`);
    }
    verdict(bad.size === 0, `each queue consumed by one process (${owner.size} queues)`, [ ...bad ]);
  }

  if (o['min-per-process']) {
    const min = Number(o['min-per-process']);
    const short = [];
    for (const f of files(o.deliveries)) {
      const n = readJsonl(f).length;
      if (n < min) short.push(`${f}: ${n}`);
    }
    verdict(short.length === 0, `every consumer process got at least ${min} deliveries (load shared)`, short);
  }

  if (o.brokers) {
    const names = String(o.brokers).split(',');
    const ackB = new Map();
    const delB = new Map();
    for (const a of acks) ackB.set(a.broker, (ackB.get(a.broker) || 0) + 1);
    for (const d of dels) delB.set(d.broker, (delB.get(d.broker) || 0) + 1);
    const desc = m => names.map(n => `${n}=${m.get(n) || 0}`).join(' ');
    verdict(names.every(n => ackB.get(n) > 0), `acknowledged by every broker (${desc(ackB)})`,
      names.filter(n => !ackB.get(n)).map(n => `no ack from ${n}`));
    verdict(names.every(n => delB.get(n) > 0), `delivered from every broker (${desc(delB)})`,
      names.filter(n => !delB.get(n)).map(n => `nothing from ${n}`));
  }
}

function cmdResume(o) {
  const killAt = Number(o['kill-at']);
  const win = Number(o.window);
  const first = loadAll(o.first).filter(r => !r.reconsumeTimes);
  const second = loadAll(o.second).filter(r => !r.reconsumeTimes);
  const id = r => `${r.broker}|${r.qtopic}|${r.queueId}|${r.queueOffset}|${r.key}`;
  const firstAt = new Map();
  for (const r of first) if (!firstAt.has(id(r))) firstAt.set(id(r), r.t);
  const before = first.filter(r => r.t < killAt);
  const old = before.filter(r => r.t < killAt - win);
  process.stdout.write(`info: first consumer ${first.length} deliveries (${before.length} before the kill, ` +
    `${old.length} older than ${win} ms), second ${second.length}\n`);
  verdict(old.length > 0, `the first consumer consumed for longer than the ${win} ms window before the kill`,
    [ `only ${before.length} deliveries, none older than the window` ]);
  let redelivered = 0;
  const tooOld = [];
  for (const r of second) {
    const t = firstAt.get(id(r));
    if (t === undefined) continue;
    redelivered++;
    if (t < killAt - win) tooOld.push(`${r.key} (${r.broker}:${r.queueId}@${r.queueOffset}) first seen ${killAt - t} ms before the kill`);
  }
  process.stdout.write(`info: ${redelivered} messages re-delivered after the restart\n`);
  verdict(tooOld.length === 0,
    `restart resumed from committed offsets (${redelivered} re-delivered, all consumed within ${win} ms of the kill)`, tooOld);
}

function cmdRetry(o) {
  const max = Number(o['max-reconsume']);
  const minGap = Number(o['min-gap-ms'] || 0);
  const group = o.group;
  const origTopic = o.topic;
  const acks = acked(loadAll(o.acks));
  const fails = loadAll(o.fail);
  const dlq = loadAll(o.dlq);
  const byKey = new Map();
  for (const d of fails) {
    if (!byKey.has(d.key)) byKey.set(d.key, []);
    byKey.get(d.key).push(d);
  }
  process.stdout.write(`info: ${acks.length} acked, ${fails.length} deliveries to the failing consumer, ` +
    `${dlq.length} to the DLQ consumer\n`);
  const missingLevel = [];
  const dupLevel = [];
  const over = [];
  const badRetry = [];
  const shortGap = [];
  for (const a of acks) {
    const ds = byKey.get(a.key) || [];
    for (let r = 0; r <= max; r++) {
      const n = ds.filter(d => d.reconsumeTimes === r).length;
      if (n === 0) missingLevel.push(`${a.key} never delivered with reconsumeTimes ${r}`);
      if (n > 1) dupLevel.push(`${a.key} delivered ${n} times with reconsumeTimes ${r}`);
    }
    for (const d of ds) {
      if (d.reconsumeTimes > max) over.push(`${a.key} reconsumeTimes ${d.reconsumeTimes}`);
      if (d.reconsumeTimes > 0) {
        if (group && d.qtopic !== `%RETRY%${group}`) badRetry.push(`${a.key} came from ${d.qtopic}`);
        if (origTopic && d.topic !== origTopic) badRetry.push(`${a.key} has topic ${d.topic}, not ${origTopic}`);
      }
    }
    for (let r = 1; r <= max; r++) {
      const p = ds.filter(d => d.reconsumeTimes === r - 1).map(d => d.t);
      const q = ds.filter(d => d.reconsumeTimes === r).map(d => d.t);
      if (p.length && q.length) {
        const gap = Math.min(...q) - Math.min(...p);
        if (gap < minGap) shortGap.push(`${a.key} attempt ${r} only ${gap} ms after attempt ${r - 1}`);
      }
    }
  }
  verdict(missingLevel.length === 0, `every message delivered with reconsumeTimes 0..${max}`, missingLevel);
  verdict(dupLevel.length === 0, 'each attempt delivered once', dupLevel);
  verdict(over.length === 0, `no delivery beyond maxReconsumeTimes ${max}`, over);
  verdict(badRetry.length === 0, 'retries came through %RETRY%<group> with the original topic restored', badRetry);
  if (minGap > 0) verdict(shortGap.length === 0, `retries delayed by the server (>= ${minGap} ms apart)`, shortGap);
  const dlqKeys = new Map();
  for (const d of dlq) dlqKeys.set(d.key, (dlqKeys.get(d.key) || 0) + 1);
  const notDead = acks.filter(a => !dlqKeys.has(a.key)).map(a => `${a.key} not in the DLQ`);
  verdict(notDead.length === 0 && acks.length > 0, `every message reached %DLQ% (${dlqKeys.size}/${acks.length})`, notDead);
  const dlqDup = [ ...dlqKeys ].filter(([ , n ]) => n > 1).map(([ k, n ]) => `${k} x${n}`);
  verdict(dlqDup.length === 0, 'each message in the DLQ once', dlqDup);
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  switch (o._[0]) {
    case 'count': cmdCount(o); return 0;
    case 'missing': cmdMissing(o); return 0;
    case 'verify': cmdVerify(o); break;
    case 'resume': cmdResume(o); break;
    case 'retry': cmdRetry(o); break;
    default:
      process.stderr.write('usage: node check.js count|missing|verify|resume|retry ... (see the header)\n');
      return 2;
  }
  return failures ? 1 : 0;
}

process.exitCode = main();
