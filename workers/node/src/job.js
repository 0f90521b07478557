// What a handler sees: its job's params and checkpoint, the calls that stream
// events (token, progress, log) and save checkpoints, and cancellation (the
// `cancelled` flag and an AbortSignal to hand to fetch, timers and streams).

import * as proto from './protocol.js';
import { CHUNK, MESSAGE } from './reliable_stream.js';

/**
 * A failed job attempt. Thrown from a handler it becomes a `fail` message with
 * this message and retryable flag; any other error thrown is a retryable
 * failure with its message.
 */
export class JobFailed extends Error {
  /** @param {string} message @param {{retryable?: boolean}} [options] */
  constructor(message, { retryable = false } = {}) {
    super(message);
    this.name = 'JobFailed';
    this.retryable = retryable;
  }
}

const RESOLVED = Promise.resolve();

// Only JSON values go on the wire: the broker refuses msgpack types that have
// no JSON form (binary, extensions), and undefined means "leave out" as in JSON.
export function jsonValue(value) {
  return JSON.parse(JSON.stringify(value));
}

export class Job {
  #run;

  /** @param {object} run the worker's record of this attempt (its stream, encoder and state) */
  constructor(run, { id, attempt, type, params, checkpoint }) {
    this.#run = run;
    this.id = id;
    this.attempt = attempt;
    this.type = type;
    this.params = params;
    this.checkpoint = checkpoint;
    this.signal = run.controller.signal;
  }

  /** True once the job was cancelled or is no longer this worker's (lease lost, worker stopping). */
  get cancelled() {
    return this.signal.aborted;
  }

  /** A `token` event {text}. Waits while the worker's unacknowledged output is over its bound. */
  token(text) {
    const run = this.#run;
    if (run.closed || run.ended) return RESOLVED;
    const wseq = run.stream.nextWseq;
    return run.submit(wseq, run.encoder.token(wseq, String(text)), CHUNK) ?? RESOLVED;
  }

  /** A `progress` event {fraction (clamped to 0..1), stage?, message?}. */
  progress(fraction, { stage, message } = {}) {
    const value = Number(fraction);
    const data = { fraction: Number.isNaN(value) ? 0 : Math.min(1, Math.max(0, value)) };
    if (stage !== undefined) data.stage = String(stage);
    if (message !== undefined) data.message = String(message);
    return this.#emit('progress', data);
  }

  /** A `log` event {level, message}. */
  log(level, message) {
    return this.#emit('log', { level: String(level), message: String(message) });
  }

  /** Any chunk event (progress, token or log) with a caller-built JSON object. */
  emit(kind, data) {
    if (kind !== 'progress' && kind !== 'token' && kind !== 'log') {
      throw new TypeError(`emit: kind must be progress, token or log, not ${JSON.stringify(kind)}`);
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new TypeError('emit: data must be an object');
    return this.#emit(kind, jsonValue(data));
  }

  /** Stored by the broker; the next attempt of this job starts with it (job.checkpoint). */
  saveCheckpoint(bytes) {
    const run = this.#run;
    if (run.closed || run.ended) return RESOLVED;
    const buffer = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    if (!ArrayBuffer.isView(buffer)) throw new TypeError('saveCheckpoint: bytes must be a string or a Uint8Array');
    const wseq = run.stream.nextWseq;
    return run.submit(wseq, proto.checkpoint(run.jobId, run.attempt, wseq, buffer), MESSAGE) ?? RESOLVED;
  }

  #emit(kind, data) {
    const run = this.#run;
    if (run.closed || run.ended) return RESOLVED;
    const wseq = run.stream.nextWseq;
    return run.submit(wseq, run.encoder.chunk(wseq, kind, data), CHUNK) ?? RESOLVED;
  }
}
