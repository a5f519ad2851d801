'use strict';
/*
 * admin.js - the few admin requests the integration tests need, over the
 * raw remoting protocol (ali-ons cannot create topics).
 *
 *   node admin.js wait-tcp ADDR [timeout_ms]
 *       exit 0 once ADDR accepts a TCP connection
 *   node admin.js wait-namesrv ADDR [timeout_ms]
 *       exit 0 once ADDR answers GET_ROUTEINFO_BY_TOPIC (105) with any code
 *   node admin.js create-topic BROKER TOPIC [queues=4] [perm=6] [timeout_ms=15000]
 *       UPDATE_AND_CREATE_TOPIC (17) with defaultTopic TBW102,
 *       topicFilterType SINGLE_TAG, topicSysFlag 0, order false; retried
 *       until code 0 or the timeout
 *   node admin.js route NAMESRV TOPIC
 *       prints the route body (TopicRouteData JSON); exit 1 if none
 *   node admin.js wait-route NAMESRV TOPIC BROKERNAME[,BROKERNAME...] [timeout_ms=20000]
 *       exit 0 once the route lists every named broker with a master
 *       address and readable, writable queues
 *
 * ADDR/BROKER/NAMESRV are host:port. Diagnostics go to stderr.
 */

const net = require('net');
const { Conn, parseLenientJson } = require('./lib/remoting');
const { sleep } = require('./lib/common');

function tcpOnce(addr, ms) {
  const [ host, port ] = addr.split(':');
  return new Promise(resolve => {
    const s = net.connect({ host, port: Number(port) });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, ms);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

async function withConn(addr, fn) {
  const c = new Conn(addr);
  try {
    await c.connect(2000);
    return await fn(c);
  } finally {
    c.close();
  }
}

async function until(timeoutMs, what, fn) {
  const end = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const r = await fn();
      if (r === true) return;
      if (r) last = String(r);
    } catch (e) {
      last = e.message;
    }
    if (Date.now() >= end) {
      throw new Error(`${what}: gave up after ${timeoutMs} ms (last: ${last || 'nothing'})`);
    }
    await sleep(200);
  }
}

async function getRoute(ns, topic) {
  return withConn(ns, async c => {
    const r = await c.request(105, { topic }, null, 3000);
    if (r.code !== 0) return { code: r.code, remark: r.remark };
    if (!r.body || !r.body.length) return { code: r.code, remark: 'empty body' };
    return { code: 0, text: r.body.toString('utf8'), route: parseLenientJson(r.body.toString('utf8')) };
  });
}

async function main(argv) {
  const cmd = argv[0];
  switch (cmd) {
    case 'wait-tcp': {
      const ms = Number(argv[2] || 10000);
      await until(ms, `wait-tcp ${argv[1]}`, async () => (await tcpOnce(argv[1], 1000)) || 'refused');
      return 0;
    }
    case 'wait-namesrv': {
      const ms = Number(argv[2] || 10000);
      await until(ms, `wait-namesrv ${argv[1]}`, async () => {
        await getRoute(argv[1], 'TBW102');
        return true;
      });
      return 0;
    }
    case 'create-topic': {
      const [ , broker, topic ] = argv;
      const queues = Number(argv[3] || 4);
      const perm = Number(argv[4] || 6);
      const ms = Number(argv[5] || 15000);
      await until(ms, `create-topic ${topic} on ${broker}`, () => withConn(broker, async c => {
        /* Values as strings, as Java's admin tools send them. */
        const r = await c.request(17, {
          topic,
          defaultTopic: 'TBW102',
          readQueueNums: String(queues),
          writeQueueNums: String(queues),
          perm: String(perm),
          topicFilterType: 'SINGLE_TAG',
          topicSysFlag: '0',
          order: 'false',
        }, null, 5000);
        return r.code === 0 ? true : `code ${r.code} ${r.remark || ''}`;
      }));
      process.stderr.write(`admin: topic ${topic} created on ${broker} (${queues} queues, perm ${perm})\n`);
      return 0;
    }
    case 'route': {
      const r = await getRoute(argv[1], argv[2]);
      if (r.code !== 0) {
        process.stderr.write(`admin: no route for ${argv[2]}: code ${r.code} ${r.remark || ''}\n`);
        return 1;
      }
      process.stdout.write(r.text + '\n');
      return 0;
    }
    case 'wait-route': {
      const [ , ns, topic, names ] = argv;
      const ms = Number(argv[4] || 20000);
      const want = names.split(',').filter(Boolean);
      await until(ms, `wait-route ${topic} on ${ns} for ${names}`, async () => {
        const r = await getRoute(ns, topic);
        if (r.code !== 0) return `code ${r.code} ${r.remark || ''}`;
        const rt = r.route;
        for (const n of want) {
          const bd = (rt.brokerDatas || []).find(b => b.brokerName === n);
          if (!bd || !bd.brokerAddrs || !(bd.brokerAddrs[0] || bd.brokerAddrs['0'])) return `no master for ${n}: ${r.text}`;
          const qd = (rt.queueDatas || []).find(q => q.brokerName === n);
          if (!qd || !(qd.perm & 4) || !(qd.perm & 2) || !(qd.readQueueNums > 0)) return `no queues for ${n}: ${r.text}`;
        }
        return true;
      });
      return 0;
    }
    default:
      process.stderr.write('usage: node admin.js wait-tcp|wait-namesrv|create-topic|route|wait-route ... (see the header)\n');
      return 2;
  }
}

main(process.argv.slice(2)).then(code => process.exit(code), err => {
  process.stderr.write(`admin: ${err.message}\n`);
  process.exit(1);
});
