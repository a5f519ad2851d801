'use strict';
/*
 * ports.js - print N distinct free TCP ports, chosen at random in
 * [20000, 60000), separated by spaces.
 *
 *   node ports.js N
 *
 * A port counts as free when a listener can bind it on 0.0.0.0 (which the
 * daemons use) and nothing answers on 127.0.0.1. The two ports on either
 * side must be free too (RocketMQ brokers conventionally also use
 * listenPort+1 for HA and listenPort-2 for the VIP channel), and chosen
 * ports are at least 5 apart.
 */

const net = require('net');

function canBind(port) {
  return new Promise(resolve => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

function nobodyAnswers(port) {
  return new Promise(resolve => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

async function main() {
  const n = Number(process.argv[2] || 1);
  const got = new Set();
  for (let tries = 0; got.size < n && tries < 1000; tries++) {
    const p = 20000 + Math.floor(Math.random() * 40000);
    if ([ ...got ].some(q => Math.abs(q - p) < 5)) continue;
    let free = true;
    for (let q = p - 2; free && q <= p + 2; q++) {
      free = await canBind(q) && await nobodyAnswers(q);
    }
    if (free) got.add(p);
  }
  if (got.size < n) {
    process.stderr.write('ports: could not find enough free ports\n');
    process.exit(1);
  }
  process.stdout.write([ ...got ].join(' ') + '\n');
}

main();
