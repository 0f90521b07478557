// The worker's half of worker protocol v1's reliable stream (DESIGN.md
// guarantees 2 and 5), as in the C++ SDK (workers/reliable_stream.hpp). Each
// job attempt numbers its messages 1, 2, 3... (wseq) and keeps every one,
// encoded exactly as first made, until the broker's cumulative ack covers it;
// after a "gap" reject, a reconnect or a broker restart it re-sends what is
// unacknowledged, oldest first (the broker drops duplicates by wseq). To a
// broker whose welcome announced it, consecutive chunks of an attempt go out
// as one chunks message (their events cut from the chunk frames), so what
// handlers emitted since the last send goes out together; otherwise, and
// every other message, byte for byte as made. Pure: no sockets, no timers;
// time comes in as arguments.

import { ChunkEncoder, MAX_CHUNKS_EVENTS, MAX_FRAME_BYTES } from './protocol.js';

/** What a buffered message is (push's `kind`). */
export const CHUNK = 'chunk'; // a chunk (ChunkEncoder), which may be batched
export const MESSAGE = 'message'; // another message (checkpoint)
export const TERMINAL = 'terminal'; // the attempt's done/fail

/** One job attempt's messages. Created by ReliableStream.open. */
export class AttemptStream {
  constructor(job, attempt) {
    this.job = job;
    this.attempt = attempt;
    /** The wseq the next message gets. */
    this.nextWseq = 1;
    this.acked = 0;
    this.bytes = 0;
    this.encoder = new ChunkEncoder(job, attempt);
    this.frames = []; // {wseq, bytes, chunk}, oldest first from index `head`
    this.head = 0;
    this.nextToSend = 1; // first frame not yet sent on this connection
    this.terminalWseq = 0; // wseq of done/fail once buffered
    this.dropped = false; // no longer ours: takes nothing, sends nothing
    this.sendPending = false; // in the send queue
    this.gapResendActive = false;
    this.gapResendUpto = 0;
    this.gapResentAt = 0;
  }

  get size() {
    return this.frames.length - this.head;
  }

  firstUnacked() {
    return this.size === 0 ? this.acked + 1 : this.frames[this.head].wseq;
  }

  find(wseq) {
    if (this.size === 0) return undefined;
    const index = this.head + (wseq - this.frames[this.head].wseq);
    return index >= this.head && index < this.frames.length ? this.frames[index] : undefined;
  }

  // Forgets every frame up to `wseq`; returns [messages, bytes] freed.
  trim(wseq) {
    if (wseq > this.acked) this.acked = wseq;
    let messages = 0;
    let bytes = 0;
    while (this.head < this.frames.length && this.frames[this.head].wseq <= wseq) {
      bytes += this.frames[this.head].bytes.length;
      this.frames[this.head] = undefined;
      this.head++;
      messages++;
    }
    if (this.head === this.frames.length) {
      this.frames = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
    this.bytes -= bytes;
    return [messages, bytes];
  }

  // Sends again from the oldest unacknowledged frame; returns how many of the
  // frames already sent go out again.
  rewind() {
    const first = this.firstUnacked();
    const again = this.nextToSend > first ? this.nextToSend - first : 0;
    this.nextToSend = first;
    return again;
  }
}

/** Every attempt this worker holds (at most one per job), and what to send next. */
export class ReliableStream {
  constructor() {
    /** @type {Map<string, AttemptStream>} */
    this.attempts = new Map();
    /** @type {AttemptStream[]} attempts with frames to send */
    this.sendQueue = [];
    this.connected = false;
    this.batchChunks = false; // the broker's welcome announced chunks
    this.frameMessages = 0; // messages in the last frame nextFrame() made
  }

  /** Holds a new attempt for `job`; the caller has dropped any earlier one. */
  open(job, attempt) {
    const stream = new AttemptStream(job, attempt);
    this.attempts.set(job, stream);
    return stream;
  }

  find(job) {
    return this.attempts.get(job);
  }

  /**
   * Buffers message `wseq` of `stream` (`kind`: CHUNK, MESSAGE or TERMINAL)
   * and, when connected, queues it for sending. False when it is not kept
   * (the attempt was dropped or that wseq is acknowledged already).
   */
  push(stream, wseq, bytes, kind) {
    if (stream.dropped || wseq <= stream.acked) return false;
    if (kind === TERMINAL) stream.terminalWseq = wseq;
    stream.bytes += bytes.length;
    stream.frames.push({ wseq, bytes, chunk: kind === CHUNK });
    this.schedule(stream);
    return true;
  }

  /**
   * A cumulative ack. One naming another attempt than the one held for the job
   * (or an unknown job) changes nothing.
   * @returns {{known: boolean, messages: number, bytes: number, settled: boolean}}
   */
  ack(job, attempt, wseq) {
    const stream = this.attempts.get(job);
    if (!stream || stream.attempt !== attempt) return { known: false, messages: 0, bytes: 0, settled: false };
    const [messages, bytes] = stream.trim(wseq);
    if (stream.gapResendActive && wseq >= stream.gapResendUpto) stream.gapResendActive = false;
    let settled = false;
    if (stream.terminalWseq !== 0 && stream.acked >= stream.terminalWseq) {
      settled = true; // done/fail committed: the job is the broker's business now
      this.attempts.delete(job);
    }
    return { known: true, messages, bytes, settled };
  }

  /**
   * A reject about a job. Attempt 0 means the attempt held. "gap" re-sends from
   * the oldest unacknowledged message, once per `resendWindowMs` until an ack
   * covers what was re-sent; any other reason ends the attempt.
   * @returns {{answer: 'not_ours'|'already_resending'|'resent'|'drop', resent?: number}}
   */
  reject(job, attempt, reason, nowMs, resendWindowMs) {
    const stream = this.attempts.get(job);
    // A reject about another attempt was caused by frames of one given up.
    if (!stream || (attempt !== 0 && attempt !== stream.attempt)) return { answer: 'not_ours' };
    if (reason !== 'gap') return { answer: 'drop' };
    if (stream.gapResendActive && nowMs - stream.gapResentAt < resendWindowMs) return { answer: 'already_resending' };
    stream.gapResendActive = true;
    stream.gapResendUpto = Math.max(stream.firstUnacked(), stream.nextToSend - 1);
    stream.gapResentAt = nowMs;
    const resent = stream.rewind();
    this.schedule(stream);
    return { answer: 'resent', resent };
  }

  /** Forgets the attempt held for `job`; returns what was waiting for an ack. */
  drop(job) {
    const stream = this.attempts.get(job);
    if (!stream) return { messages: 0, bytes: 0 };
    const freed = { messages: stream.size, bytes: stream.bytes };
    stream.dropped = true;
    stream.frames = [];
    stream.head = 0;
    stream.bytes = 0;
    this.attempts.delete(job);
    return freed;
  }

  /**
   * The connection went away: nothing is sent until reconnected(), and chunks
   * go out one by one until the next welcome sets batchChunks.
   */
  disconnected() {
    this.connected = false;
    this.batchChunks = false;
    for (const stream of this.sendQueue) stream.sendPending = false;
    this.sendQueue = [];
  }

  /**
   * A new connection, or a broker that no longer knows this worker: every
   * attempt sends again from its oldest unacknowledged message, in order.
   * Returns how many messages already sent go out again.
   */
  reconnected() {
    this.disconnected();
    this.connected = true;
    let again = 0;
    for (const stream of this.attempts.values()) {
      again += stream.rewind();
      this.schedule(stream);
    }
    return again;
  }

  /** The next frame to hand to the socket, or undefined; sent() once it took it. */
  nextFrame() {
    while (this.sendQueue.length > 0) {
      const stream = this.sendQueue[0];
      if (!stream.dropped) {
        stream.nextToSend = Math.max(stream.nextToSend, stream.firstUnacked());
        const frame = stream.find(stream.nextToSend);
        if (frame) {
          if (frame.chunk && this.batchChunks) return this.#chunksFrom(stream, frame);
          this.frameMessages = 1;
          return frame.bytes;
        }
      }
      stream.sendPending = false;
      this.sendQueue.shift();
    }
    return undefined;
  }

  // `first` and the chunks after it as one chunks, or `first` alone.
  #chunksFrom(stream, first) {
    const frames = [first.bytes];
    let size = first.bytes.length + 8; // a chunks is smaller than its chunks, but for the array header
    while (frames.length < MAX_CHUNKS_EVENTS) {
      const next = stream.find(first.wseq + frames.length);
      if (!next || !next.chunk) break;
      size += next.bytes.length;
      if (size > MAX_FRAME_BYTES) break;
      frames.push(next.bytes);
    }
    this.frameMessages = frames.length;
    return frames.length === 1 ? first.bytes : stream.encoder.chunks(first.wseq, frames);
  }

  sent() {
    if (this.sendQueue.length > 0) this.sendQueue[0].nextToSend += this.frameMessages;
  }

  get sending() {
    return this.sendQueue.length > 0;
  }

  /** hello.inflight and the heartbeat's list. */
  inflight() {
    const out = [];
    for (const stream of this.attempts.values()) {
      out.push({ job: stream.job, attempt: stream.attempt, next_wseq: stream.nextWseq });
    }
    return out;
  }

  schedule(stream) {
    if (!this.connected || stream.sendPending) return;
    stream.sendPending = true;
    this.sendQueue.push(stream);
  }
}
