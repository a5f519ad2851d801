'use strict';
/*
 * Message encodings shared by the raw-protocol test clients: properties
 * strings (PROTOCOL.md 4.4), stored records as pulls and broker requests
 * carry them (4.1), offset message ids (4.7).
 */

const zlib = require('zlib');

const MAGIC_V1 = -626843481;

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
const bodyCrc = b => (crc32(b) & 0x7fffffff) >>> 0;

/*
 * Parses concatenated stored records. Returns {recs, error}: each record
 * {totalSize, magic, bodyCrc, queueId, flag, queueOffset, physOffset,
 * sysFlag, bornTs, bornHost, storeTs, storeHost, reconsumeTimes,
 * preparedOffset, body, topic, props, propsText}.
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

/* The CommitLog offset in an IPv4 offset message id (32 hex digits). */
function idOffset(id) {
  return typeof id === 'string' && /^[0-9A-F]{32}$/.test(id) ? parseInt(id.slice(16), 16) : -1;
}

module.exports = { MAGIC_V1, encodeProps, decodeProps, bodyCrc, parseRecords, idOffset };
