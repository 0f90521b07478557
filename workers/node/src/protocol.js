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

export function hello({ worker, types, capacity, inflight, session }) {
  const message = { v: VERSION, t: 'hello', worker, types, capacity, inflight };
  if (session) message.session = session;
  return encode(message);
}

export const PLAIN_HEARTBEAT = encode({ v: VERSION, t: 'heartbeat' });

export function heartbeat(inflight, assigned) {
  return encode({ v: VERSION, t: 'heartbeat', inflight, assigned });
}

export function chunk(job, attempt, wseq, kind, data) {
  return encode({ v: VERSION, t: 'chunk', job, attempt, wseq, kind, data, ts: unixMicros() });
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
