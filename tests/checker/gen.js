'use strict';
/*
 * gen.js - the randomized self-test of qcheck (tests/checker/run.sh).
 *
 *   node gen.js SEED DIR
 *
 * Simulates a correct queue service - several producers retrying under new
 * attempts, timeouts that may or may not have stored the message, rejected
 * sends, pollers that seek and switch queues, and a final drain of every
 * queue from offset 0 - and writes its history to DIR/gen_valid.jsonl. Then
 * writes mutated copies, each breaking one property, with the anomaly that
 * qcheck must report, and a few damaged copies (truncated or bit-flipped
 * lines) that qcheck must survive. Each file's first line is
 * "# expect: ..." in the syntax run.sh reads.
 *
 * Every operation takes effect at its completion, which lies inside its
 * [invoke, completion] interval, so the simulated service is linearizable
 * and every check of qcheck must pass on the unmutated history.
 */
const fs = require('fs');
const path = require('path');

const seed = (parseInt(process.argv[2], 10) >>> 0) || 1;
const dir = process.argv[3];
if (!dir) {
    console.error('usage: node gen.js SEED DIR');
    process.exit(2);
}

let rs = seed;
function rand(n) {
    // xorshift32: deterministic per seed, so a failure can be replayed.
    rs ^= rs << 13; rs >>>= 0;
    rs ^= rs >>> 17;
    rs ^= rs << 5; rs >>>= 0;
    return rs % n;
}

const QUEUES = ['broker-a:0', 'broker-a:1', 'broker-a:2', 'broker-b:0', 'broker-b:1'];
const store = new Map(QUEUES.map((q) => [q, []]));
const ops = [];
let now = 1000;
let phys = 0;
function tick() { now += 1 + rand(500); return now; }
function emit(o) { ops.push(o); return o; }

const producers = [];
for (let p = 0; p < 4; p++)
    producers.push({ id: p, seq: 1, attempt: 0, open: null });
const pollers = [];
for (let c = 0; c < 3; c++)
    pollers.push({ id: 'consumer-' + c, queue: QUEUES[c], cursor: new Map(), open: null });

function append(q, value) {
    const log = store.get(q);
    log.push(value);
    phys += 100 + rand(900);
    return { offset: log.length - 1, phys };
}

function stepProducer(p) {
    const value = { producer: p.id, seq: p.seq, attempt: p.attempt };
    if (!p.open) {
        const q = QUEUES[rand(QUEUES.length)];
        const inv = { process: p.id, type: 'invoke', f: 'send', time: tick(), value };
        // Half the invokes name their queue, as a client with a chosen
        // route would; the rest learn it from the ack.
        if (rand(2)) inv.queue = q;
        p.open = { q, named: 'queue' in inv };
        emit(inv);
        return;
    }
    const q = p.open.q;
    const r = rand(100);
    const done = { process: p.id, f: 'send', time: tick(), value };
    if (r < 82) {
        const at = append(q, value);
        Object.assign(done, { type: 'ok', queue: q, queue_offset: at.offset, phys_off: at.phys,
            msg_id: 'M' + at.phys, status: 'SEND_OK' });
        p.seq++;
        p.attempt = 0;
    } else if (r < 88) {
        Object.assign(done, { type: 'fail', error: 'MESSAGE_ILLEGAL' });
        if (rand(2)) p.attempt++; else { p.seq++; p.attempt = 0; }
    } else {
        // A timeout: stored or not, nobody knows; retried as a new attempt.
        if (rand(2)) append(q, value);
        Object.assign(done, { type: 'info', error: 'timeout' });
        p.attempt++;
    }
    p.open = null;
    emit(done);
}

function stepPoller(c) {
    if (!c.open) {
        if (rand(100) < 8) {
            // Seek (a rebalance or a reset): a new session from anywhere.
            const q = QUEUES[rand(QUEUES.length)];
            const to = rand(store.get(q).length + 1);
            emit({ process: c.id, type: 'invoke', f: 'seek', time: tick(), queue: q, offset: to });
            emit({ process: c.id, type: 'ok', f: 'seek', time: tick(), queue: q, offset: to });
            c.queue = q;
            c.cursor.set(q, to);
            return;
        }
        if (rand(100) < 15) c.queue = QUEUES[rand(QUEUES.length)];
        const from = c.cursor.get(c.queue) || 0;
        c.open = { q: c.queue, from };
        emit({ process: c.id, type: 'invoke', f: 'poll', time: tick(), queue: c.queue, from });
        return;
    }
    const { q, from } = c.open;
    c.open = null;
    if (rand(100) < 5) {
        emit({ process: c.id, type: 'info', f: 'poll', time: tick(), queue: q, error: 'timeout' });
        return;
    }
    emit(pollOk(c.id, q, from, 1 + rand(5)));
    c.cursor.set(q, ops[ops.length - 1].next);
}

function pollOk(proc, q, from, max) {
    const log = store.get(q);
    const msgs = [];
    for (let i = from; i < log.length && msgs.length < max; i++) {
        const v = log[i];
        msgs.push(rand(3) ? [i, v, true] : [i, v, true, { producer: v.producer, seq: v.seq }]);
    }
    const o = { process: proc, type: 'ok', f: 'poll', time: tick(), queue: q, from, msgs,
        next: from + msgs.length };
    if (rand(2)) o.max_offset = log.length;
    return o;
}

const actors = [...producers.map((p) => () => stepProducer(p)),
    ...pollers.map((c) => () => stepPoller(c))];
for (let i = 0; i < 2000; i++)
    actors[rand(actors.length)]();
// Close what is open, then drain every queue from 0 in a new session.
for (const p of producers) if (p.open) stepProducer(p);
for (const c of pollers) if (c.open) stepPoller(c);
const drainStart = ops.length;
for (const q of QUEUES) {
    let from = 0;
    for (;;) {
        emit({ process: 'drain', type: 'invoke', f: 'poll', time: tick(), queue: q, from });
        const o = emit(pollOk('drain', q, from, 16));
        if (!o.msgs.length) break;
        from = o.next;
    }
}

function write(name, expect, list) {
    const lines = ['# expect: ' + expect, ...list.map((o) => JSON.stringify(o))];
    fs.writeFileSync(path.join(dir, name), lines.join('\n') + '\n');
}
const copy = () => JSON.parse(JSON.stringify(ops));
const drainPolls = (h) => h.slice(drainStart).filter((o) => o.type === 'ok');
const same = (a, b) => a.producer === b.producer && a.seq === b.seq && a.attempt === b.attempt;

write('gen_valid.jsonl', 'exit=0 loose retry-duplicate>=0', ops);

// 1. One poll loses a message that other reads show exists: poll-skip.
{
    const h = copy();
    const p = drainPolls(h).filter((o) => o.msgs.length >= 3)[0];
    p.msgs.splice(1, 1);
    write('gen_mut_skip.jsonl', 'exit=1 loose poll-skip>=1', h);
}
// 2. An acked message that no poll ever returns: lost-write.
{
    const h = copy();
    const acked = h.filter((o) => o.f === 'send' && o.type === 'ok' &&
        o.queue_offset < store.get(o.queue).length - 1);
    const a = acked[rand(acked.length)];
    for (const o of h)
        if (o.f === 'poll' && o.type === 'ok')
            o.msgs = o.msgs.filter((m) => !same(m[1], a.value));
    write('gen_mut_lost.jsonl', 'exit=1 loose lost-write>=1', h);
}
// 3. Two offsets swapped in one poll: inconsistent-offsets.
{
    const h = copy();
    const p = drainPolls(h).filter((o) => o.msgs.length >= 2)[0];
    [p.msgs[0][0], p.msgs[1][0]] = [p.msgs[1][0], p.msgs[0][0]];
    write('gen_mut_swap.jsonl', 'exit=1 loose inconsistent-offsets>=1 nonmonotonic-poll>=1', h);
}
// 4. A value stored a second time at a new offset: duplicate.
{
    const h = copy();
    const polls = drainPolls(h).filter((o) => o.msgs.length);
    const last = polls[polls.length - 1];
    const victim = polls[0].msgs[0][1];
    const end = last.msgs[last.msgs.length - 1][0];
    last.msgs.push([end + 1, victim, true]);
    last.next = end + 2;
    write('gen_mut_dup.jsonl', 'exit=1 loose duplicate>=1', h);
}
// 5. A payload whose checksum failed: corrupt.
{
    const h = copy();
    const all = h.filter((o) => o.f === 'poll' && o.type === 'ok' && o.msgs.length);
    const p = all[rand(all.length)];
    p.msgs[rand(p.msgs.length)][2] = false;
    write('gen_mut_crc.jsonl', 'exit=1 corrupt=1 retry-duplicate>=0', h);
}
// 6. A polled send reported as rejected: G1a.
{
    const h = copy();
    const s = h.filter((o) => o.f === 'send' && o.type === 'ok');
    const a = s[rand(s.length)];
    a.type = 'fail';
    delete a.queue_offset;
    write('gen_mut_g1a.jsonl', 'exit=1 loose G1a>=1', h);
}
// 7. Two acks on one queue, one after the other, with offsets swapped:
//    realtime-order (and inconsistent offsets against the polls).
{
    const h = copy();
    const acks = h.filter((o) => o.f === 'send' && o.type === 'ok');
    const inv = new Map();
    for (const o of h)
        if (o.f === 'send' && o.type === 'invoke') inv.set(JSON.stringify(o.value), o.time);
    let done = false;
    for (let i = 0; i < acks.length && !done; i++)
        for (let j = i + 1; j < acks.length && !done; j++)
            if (acks[j].queue === acks[i].queue &&
                inv.get(JSON.stringify(acks[j].value)) > acks[i].time) {
                [acks[i].queue_offset, acks[j].queue_offset] = [acks[j].queue_offset, acks[i].queue_offset];
                done = true;
            }
    write('gen_mut_order.jsonl', 'exit=1 loose realtime-order>=1', h);
}
// 8. Damaged input: qcheck must answer 0, 1 or 2 and never crash.
for (let k = 0; k < 4; k++) {
    const lines = ops.slice(0, 400).map((o) => JSON.stringify(o));
    const i = rand(lines.length);
    const l = lines[i];
    if (k % 2 === 0)
        lines[i] = l.slice(0, rand(l.length));
    else
        lines[i] = l.slice(0, rand(l.length)) + String.fromCharCode(rand(128)) + l.slice(rand(l.length));
    fs.writeFileSync(path.join(dir, `gen_damaged_${k}.jsonl`),
        ['# expect: exit=any', ...lines].join('\n') + '\n');
}
