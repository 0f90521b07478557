// Worker protocol v1 (DESIGN.md): every message is one msgpack map with v = 1
// and t = its type. This file encodes what a worker sends and checks what the
// broker sends, field by field, as the broker's codec does: a frame that is not
// a well-formed broker message is refused (decodeBrokerMessage returns an error
// string) so the worker counts and ignores it instead of acting on it.

import { Decoder, Encoder } from '@msgpack/msgpack';

export const VERSION = 1;
/** The broker drops frames over 1 MiB, so the worker refuses to make them. */
export const MAX_FRAME_BYTES = 1 << 20;
export const MAX_NAME_BYTES = 128;
export const MAX_TYPES = 64;
export const MAX_CAPACITY = 1024;

const encoder = new Encoder();
const decoder = new Decoder();

/** @param {object} message @returns {Uint8Array} a copy the caller may keep */
export function encode(message) {
  return encoder.encode(message);
}

/** Microseconds since the Unix epoch (chunk.ts). */
export function unixMicros() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

// A name that is logged and shown: 1..max bytes of UTF-8, no control characters.
export function isPrintableName(text, max = MAX_NAME_BYTES) {
  if (typeof text !== 'string' || text.length === 0) return false;
  if (Buffer.byteLength(text) > max) return false;
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u001f\u007f]/.test(text) && text.isWellFormed();
}

export function hello({ worker, types, capacity, inflight, session, schemas }) {
  const message = { v: VERSION, t: 'hello', worker, types, capacity, inflight };
  if (session) message.session = session;
  // job type -> JSON Schema text (optional)
  if (schemas && Object.keys(schemas).length > 0) message.schemas = schemas;
  return encode(message);
}

export const PLAIN_HEARTBEAT = encode({ v: VERSION, t: 'heartbeat' });

export function heartbeat(inflight, assigned) {
  return encode({ v: VERSION, t: 'heartbeat', inflight, assigned });
}

const concat = (...parts) => Buffer.concat(parts.map((part) => (typeof part === 'string' ? Buffer.from(encode(part)) : Buffer.from(part))));
// After an attempt's prefix and the wseq: the kind, then the data key.
const KIND_AND_DATA = Object.fromEntries(['progress', 'token', 'log'].map((kind) => [kind, concat('kind', kind, 'data')]));
const TOKEN_DATA = concat([0x81], 'text'); // {text: ...}
const TS_KEY = concat('ts', [0xcf]); // ts: uint64
const EVENTS_KEY = concat('events');
const EVENT_HEADER = Buffer.from([0x83]); // a chunks event: a map of kind, data, ts

/** The events in one chunks message, at most (protocol/limits.hpp). */
export const MAX_CHUNKS_EVENTS = 1024;
/** welcome.features: the broker takes chunks messages. */
export const FEATURE_CHUNKS = 'chunks';

function uintSize(value) {
  return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : value < 0x100000000 ? 5 : 9;
}

function writeUint(buffer, offset, value) {
  if (value < 0x80) {
    buffer[offset] = value;
    return offset + 1;
  }
  if (value < 0x100) {
    buffer[offset] = 0xcc;
    buffer[offset + 1] = value;
    return offset + 2;
  }
  if (value < 0x10000) {
    buffer[offset] = 0xcd;
    buffer.writeUInt16BE(value, offset + 1);
    return offset + 3;
  }
  if (value < 0x100000000) {
    buffer[offset] = 0xce;
    buffer.writeUInt32BE(value, offset + 1);
    return offset + 5;
  }
  buffer[offset] = 0xcf;
  return writeUint64(buffer, offset + 1, value);
}

function writeUint64(buffer, offset, value) {
  const high = Math.floor(value / 0x100000000);
  buffer.writeUInt32BE(high, offset);
  buffer.writeUInt32BE(value - high * 0x100000000, offset + 4);
  return offset + 8;
}

/**
 * The chunk messages of one attempt, the hot path (one per token): the map's
 * first fields (v, t, job, attempt) are encoded once, a token's data {text}
 * is written in place, and other data goes through the msgpack encoder.
 */
export class ChunkEncoder {
  constructor(job, attempt) {
    // A map of 8 entries: v, t, job, attempt, wseq, kind, data, ts.
    this.prefix = concat([0x88], 'v', [VERSION], 't', 'chunk', 'job', job, 'attempt', encode(attempt), 'wseq');
    // A chunks is a map of 6: v, t, job, attempt, wseq, events.
    this.chunksPrefix = concat([0x86], 'v', [VERSION], 't', 'chunks', 'job', job, 'attempt', encode(attempt), 'wseq');
  }

  /**
   * One chunks message of consecutive chunk frames of this attempt (made
   * here, the first with `wseq`; 1..MAX_CHUNKS_EVENTS of them), for a broker
   * whose welcome announced it. Each event is cut from its frame as it is:
   * its kind, data and ts, after the prefix and the wseq.
   */
  chunks(wseq, frames) {
    const head = Buffer.allocUnsafe(9 + EVENTS_KEY.length + 3);
    let offset = writeUint(head, 0, wseq);
    offset += EVENTS_KEY.copy(head, offset);
    if (frames.length < 16) {
      head[offset++] = 0x90 | frames.length;
    } else {
      head[offset++] = 0xdc;
      offset = head.writeUInt16BE(frames.length, offset);
    }
    const parts = [this.chunksPrefix, head.subarray(0, offset)];
    const at = this.prefix.length;
    for (const frame of frames) {
      const first = frame[at];
      const wseqBytes = first < 0x80 ? 1 : first === 0xcc ? 2 : first === 0xcd ? 3 : first === 0xce ? 5 : 9;
      parts.push(EVENT_HEADER, frame.subarray(at + wseqBytes));
    }
    return Buffer.concat(parts);
  }

  token(wseq, text) {
    const textBytes = Buffer.byteLength(text);
    const header = textBytes < 32 ? 1 : textBytes < 0x100 ? 2 : textBytes < 0x10000 ? 3 : 5;
    const kind = KIND_AND_DATA.token;
    const frame = Buffer.allocUnsafe(this.prefix.length + uintSize(wseq) + kind.length + TOKEN_DATA.length + header + textBytes + TS_KEY.length + 8);
    let offset = this.prefix.copy(frame, 0);
    offset = writeUint(frame, offset, wseq);
    offset += kind.copy(frame, offset);
    offset += TOKEN_DATA.copy(frame, offset);
    if (header === 1) {
      frame[offset++] = 0xa0 | textBytes;
    } else if (header === 2) {
      frame[offset++] = 0xd9;
      frame[offset++] = textBytes;
    } else if (header === 3) {
      frame[offset++] = 0xda;
      offset = frame.writeUInt16BE(textBytes, offset);
    } else {
      frame[offset++] = 0xdb;
      offset = frame.writeUInt32BE(textBytes, offset);
    }
    offset += frame.write(text, offset, 'utf8');
    offset += TS_KEY.copy(frame, offset);
    writeUint64(frame, offset, unixMicros());
    return frame;
  }

  chunk(wseq, kind, data) {
    const ts = Buffer.allocUnsafe(8);
    writeUint64(ts, 0, unixMicros());
    return Buffer.concat([this.prefix, encode(wseq), KIND_AND_DATA[kind], encode(data), TS_KEY, ts]);
  }
}

export function checkpoint(job, attempt, wseq, bytes) {
  return encode({ v: VERSION, t: 'checkpoint', job, attempt, wseq, bytes });
}

export function done(job, attempt, wseq, result) {
  return encode({ v: VERSION, t: 'done', job, attempt, wseq, result });
}

export function fail(job, attempt, wseq, error, retryable) {
  return encode({ v: VERSION, t: 'fail', job, attempt, wseq, error, retryable });
}

const isInt = (value, min = 0) => Number.isSafeInteger(value) && value >= min;
const isMap = (value) => value !== null && typeof value === 'object' && !Array.isArray(value) && !ArrayBuffer.isView(value);
const isString = (value) => typeof value === 'string';

// The required fields of each broker message and their checks; optional ones
// are checked in decodeBrokerMessage.
const BROKER_FIELDS = {
  welcome: { heartbeat_ms: isInt },
  assign: { job: isString, attempt: isInt, type: isString, params: isMap },
  ack: { job: isString, attempt: isInt, wseq: isInt },
  cancel: { job: isString },
  heartbeat: {},
  reject: { job: isString, reason: isString },
};

/**
 * Decodes one frame from the broker.
 * @param {Uint8Array} frame
 * @returns {{message: object} | {error: string, message?: object}} on error,
 *   `message` is the decoded map when there was one (so an unreadable assign's
 *   job and attempt can still be answered)
 */
export function decodeBrokerMessage(frame) {
  let message;
  try {
    message = decoder.decode(frame);
  } catch (err) {
    return { error: `not msgpack: ${err.message}` };
  }
  if (!isMap(message)) return { error: 'not a map' };
  if (message.v !== VERSION) return { error: `unsupported version ${JSON.stringify(message.v)}`, message };
  const fields = BROKER_FIELDS[message.t];
  if (!fields || !Object.hasOwn(BROKER_FIELDS, message.t)) return { error: `unknown type ${JSON.stringify(message.t)}`, message };
  for (const [field, check] of Object.entries(fields)) {
    if (!check(message[field])) return { error: `field '${field}' missing or of the wrong type`, message };
  }
  const optional = {
    session: isString,
    features: (value) => Array.isArray(value) && value.every(isString),
    checkpoint: (value) => ArrayBuffer.isView(value),
    attempt: isInt,
    detail: isString,
  };
  for (const [field, check] of Object.entries(optional)) {
    if (message[field] !== undefined && message[field] !== null && !check(message[field])) {
      return { error: `field '${field}' of the wrong type`, message };
    }
  }
  return { message };
}
