'use strict';
/*
 * Shared helpers for the ali-ons test clients: environment parsing, the
 * client options every script uses, a JSON-lines writer, and a
 * rate-limited stderr logger (ali-ons repeats the same error every few
 * seconds while a server is down).
 */

const fs = require('fs');

function envStr(name, def) {
  const v = process.env[name];
  return v === undefined || v === '' ? def : v;
}

function envInt(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isFinite(n)) {
    throw new Error(`${name}=${v} is not a number`);
  }
  return Math.trunc(n);
}

function envBool(name) {
  const v = process.env[name];
  return v === '1' || v === 'true' || v === 'yes';
}

/* nameSrv may be "a:1;b:2" or "a:1,b:2": ali-ons wants an array then. */
function nameSrvOption(s) {
  const list = s.split(/[;,]/).map(x => x.trim()).filter(Boolean);
  return list.length === 1 ? list[0] : list;
}

/*
 * Options for Producer and Consumer: an open-source name server, no
 * access keys (so no signature extFields), 127.0.0.1 in the clientId.
 * httpclient is asserted non-null by ali-ons but unused with nameSrv.
 * The scheduling intervals can be shortened by the tests.
 */
function clientOptions() {
  const o = {
    nameSrv: nameSrvOption(envStr('NAMESRV', '127.0.0.1:9876')),
    httpclient: {},
    clientIP: envStr('CLIENT_IP', '127.0.0.1'),
    logger: quietLogger(),
  };
  const map = {
    ROUTE_POLL_MS: 'pollNameServerInteval',
    HEARTBEAT_MS: 'heartbeatBrokerInterval',
    PERSIST_MS: 'persistConsumerOffsetInterval',
    REBALANCE_MS: 'rebalanceInterval',
  };
  for (const k of Object.keys(map)) {
    const v = envInt(k, 0);
    if (v > 0) o[map[k]] = v;
  }
  return o;
}

/* ali-ons logs warn/error through this; keep it from flooding stderr. */
function quietLogger() {
  const rl = rateLimiter();
  const out = (lvl, args) => {
    const msg = args.map(a => (a instanceof Error ? `${a.name}: ${a.message}` :
      typeof a === 'object' ? safeJson(a) : String(a))).join(' ');
    rl(`[ali-ons ${lvl}] ${msg.slice(0, 400)}`);
  };
  return {
    info() {},
    debug() {},
    warn(...a) { out('warn', a); },
    error(...a) { out('error', a); },
  };
}

function safeJson(o) {
  try {
    return JSON.stringify(o);
  } catch (e) {
    return String(o);
  }
}

/* Prints the first 20 lines, then one in 100, with a running count. */
function rateLimiter(limit = 20, every = 100) {
  let n = 0;
  return line => {
    n++;
    if (n <= limit || n % every === 0) {
      process.stderr.write(`${line}${n > limit ? ` (message #${n})` : ''}\n`);
    }
  };
}

/* Append-only JSON lines, one write(2) per line so a kill never splits one. */
class JsonlWriter {
  constructor(path) {
    this.fd = path ? fs.openSync(path, 'a') : -1;
  }

  write(obj) {
    if (this.fd >= 0) fs.writeSync(this.fd, JSON.stringify(obj) + '\n');
  }

  close() {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

function readJsonl(path) {
  const out = [];
  let text;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return out;
    throw e;
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      /* a torn last line of a killed writer */
    }
  }
  return out;
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

/* Resolves with p's value, or rejects after ms. */
function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

module.exports = {
  envStr, envInt, envBool, clientOptions, rateLimiter, JsonlWriter, readJsonl,
  sleep, withTimeout,
};
