'use strict';
/*
 * A minimal RocketMQ remoting client over a raw socket, independent of
 * ali-ons, for admin requests and hostile-input tests.
 *
 * Frame: int32 BE length (= 4 + headerLen + bodyLen), int32 BE
 * headerLenAndType (high byte = serialize type, 0 JSON), header, body.
 * A response has flag bit 0 set and echoes the request's opaque.
 */

const net = require('net');

let opaqueSeq = 1;

function nextOpaque() {
  opaqueSeq = opaqueSeq >= 0x7ffffff0 ? 1 : opaqueSeq + 1;
  return opaqueSeq;
}

/* Encodes a JSON-header frame. extFields values go out as given. */
function encode({ code, opaque, flag = 0, extFields, remark, body, language = 'JAVA', version = 121 }) {
  const h = { code, language, opaque, flag, version };
  if (remark !== undefined) h.remark = remark;
  if (extFields !== undefined) h.extFields = extFields;
  const header = Buffer.from(JSON.stringify(h), 'utf8');
  const b = body ? Buffer.from(body) : Buffer.alloc(0);
  const f = Buffer.alloc(8 + header.length + b.length);
  f.writeInt32BE(4 + header.length + b.length, 0);
  f.writeInt32BE(header.length, 4);
  header.copy(f, 8);
  b.copy(f, 8 + header.length);
  return f;
}

/* Encodes a ROCKETMQ (binary, type 1) header frame; extFields as strings. */
function encodeBinary({ code, opaque, flag = 0, extFields = {}, remark, body, version = 121 }) {
  const parts = [];
  const fixed = Buffer.alloc(13);
  fixed.writeInt16BE(code, 0);
  fixed.writeUInt8(0, 2); /* JAVA */
  fixed.writeInt16BE(version, 3);
  fixed.writeInt32BE(opaque, 5);
  fixed.writeInt32BE(flag, 9);
  parts.push(fixed);
  const r = remark ? Buffer.from(remark) : Buffer.alloc(0);
  const rl = Buffer.alloc(4);
  rl.writeInt32BE(r.length, 0);
  parts.push(rl, r);
  const ext = [];
  for (const [ k, v ] of Object.entries(extFields)) {
    const kb = Buffer.from(k);
    const vb = Buffer.from(String(v));
    const kl = Buffer.alloc(2);
    kl.writeInt16BE(kb.length, 0);
    const vl = Buffer.alloc(4);
    vl.writeInt32BE(vb.length, 0);
    ext.push(kl, kb, vl, vb);
  }
  const extBuf = Buffer.concat(ext);
  const el = Buffer.alloc(4);
  el.writeInt32BE(extBuf.length, 0);
  parts.push(el, extBuf);
  const header = Buffer.concat(parts);
  const b = body ? Buffer.from(body) : Buffer.alloc(0);
  const f = Buffer.alloc(8 + header.length + b.length);
  f.writeInt32BE(4 + header.length + b.length, 0);
  f.writeInt32BE((1 << 24) | header.length, 4);
  header.copy(f, 8);
  b.copy(f, 8 + header.length);
  return f;
}

/*
 * Splits a byte stream into frames. Each decoded frame:
 * {type, header (object or null), headerText, body, error}.
 */
class FrameReader {
  constructor(maxFrame = 64 * 1024 * 1024) {
    this.buf = Buffer.alloc(0);
    this.maxFrame = maxFrame;
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([ this.buf, chunk ]) : chunk;
    const frames = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readInt32BE(0);
      if (len < 4 || len > this.maxFrame) {
        throw new Error(`bad frame length ${len} from server`);
      }
      if (this.buf.length < 4 + len) break;
      const frame = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      const word = frame.readInt32BE(0);
      const type = (word >>> 24) & 0xff;
      const hlen = word & 0xffffff;
      const f = { type, header: null, headerText: null, body: frame.subarray(4 + hlen), error: null };
      if (hlen > len - 4) {
        f.error = `header length ${hlen} exceeds frame ${len}`;
      } else if (type === 0) {
        f.headerText = frame.subarray(4, 4 + hlen).toString('utf8');
        try {
          f.header = JSON.parse(f.headerText);
        } catch (e) {
          f.error = `bad JSON header: ${e.message}`;
        }
      } else {
        f.error = `serialize type ${type} (only JSON replies are understood by ali-ons)`;
      }
      frames.push(f);
    }
    return frames;
  }
}

/*
 * One connection with request/response matching by opaque. Responses may
 * come in any order. Server-initiated requests are counted and handed to
 * onRequest(header, body) when it is set (else ignored).
 */
class Conn {
  constructor(addr) {
    const [ host, port ] = addr.split(':');
    this.host = host;
    this.port = Number(port);
    this.pending = new Map();
    this.reader = new FrameReader();
    this.closed = false;
    this.serverRequests = 0;
    this.stray = [];
    this.onRequest = null;
  }

  connect(timeoutMs = 3000) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.host, port: this.port });
      this.sock = s;
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect ${this.host}:${this.port} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        s.setNoDelay(true);
        resolve(this);
      });
      s.on('error', err => {
        clearTimeout(t);
        this.lastError = err;
        reject(err);
        this._failAll(err);
      });
      s.on('close', () => {
        this.closed = true;
        this._failAll(new Error('connection closed'));
      });
      s.on('data', chunk => {
        let frames;
        try {
          frames = this.reader.push(chunk);
        } catch (e) {
          this.protocolError = e.message;
          s.destroy();
          return;
        }
        for (const f of frames) this._onFrame(f);
      });
    });
  }

  _onFrame(f) {
    if (!f.header) {
      this.protocolError = f.error;
      this.stray.push(f);
      return;
    }
    const h = f.header;
    if ((h.flag & 1) === 0) {
      this.serverRequests++;
      if (this.onRequest) this.onRequest(h, f.body);
      return;
    }
    const p = this.pending.get(h.opaque);
    if (!p) {
      this.stray.push(f);
      return;
    }
    this.pending.delete(h.opaque);
    clearTimeout(p.timer);
    p.resolve({ code: h.code, opaque: h.opaque, flag: h.flag, remark: h.remark,
      extFields: h.extFields || {}, header: h, body: f.body, type: f.type });
  }

  _failAll(err) {
    for (const [ op, p ] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(op);
      p.reject(err);
    }
  }

  /* Sends a request and resolves with the response (or rejects). */
  request(code, extFields, body, timeoutMs = 5000, opts = {}) {
    const opaque = opts.opaque !== undefined ? opts.opaque : nextOpaque();
    const frame = (opts.binary ? encodeBinary : encode)({ code, opaque, flag: 0, extFields, body });
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('connection closed'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(opaque);
        reject(new Error(`no reply to code ${code} (opaque ${opaque}) in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(opaque, { resolve, reject, timer });
      this.sock.write(frame);
    });
  }

  /* A oneway request (flag bit 1): no reply is expected. */
  oneway(code, extFields, body) {
    const opaque = nextOpaque();
    this.sock.write(encode({ code, opaque, flag: 2, extFields, body }));
    return opaque;
  }

  writeRaw(buf) {
    this.sock.write(buf);
  }

  close() {
    if (this.sock) this.sock.destroy();
  }
}

/* Fastjson writes integer map keys unquoted; JSON2 (eval-based) accepts them. */
function parseLenientJson(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return require('JSON2').parse(text);
  }
}

module.exports = { encode, encodeBinary, FrameReader, Conn, nextOpaque, parseLenientJson };
