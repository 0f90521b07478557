// The jobcast worker SDK for Node.js, with the C++ SDK's guarantees
// (workers/worker.hpp; worker protocol v1 in DESIGN.md). A Worker connects a
// ZeroMQ DEALER to a broker, says hello with its job types and capacity, runs
// a handler per assigned job (at most `capacity` at once), heart-beats, and
// keeps every message the broker has not acknowledged so that it can re-send
// it after a reconnect or a broker restart. Output is bounded: when
// `maxUnackedBytes` are waiting for acks, the handler's next emit waits until
// acks free room (backpressure, not loss).
//
// Message life: an emit numbers the message (the attempt's next wseq), encodes
// it once and submits it to the Outbox, which holds it back while the worker's
// unacked bytes are over the bound. The ReliableStream buffers it and the pump
// hands it to the socket; an ack frees every frame up to its wseq and lets
// waiting emits in. After a reconnect, a "hello" reject or a "gap" reject the
// stream re-sends from the oldest unacknowledged frame.
//
// The socket's monitor (`socket.events`) reports when the connection to the
// broker closes after its handshake (the broker process died or restarted).
// With other brokers in the list the worker fails over then, without waiting
// for `liveness` silent heartbeats; with one broker ZeroMQ reconnects the
// socket and the worker says hello again as soon as the new connection's
// handshake is done.

import { hostname } from 'node:os';
import { Dealer } from 'zeromq';

import { keyOrFile, publicKeyOf, readKey } from './curve.js';
import { Job, JobFailed, jsonValue } from './job.js';
import * as proto from './protocol.js';
import { ReliableStream, TERMINAL } from './reliable_stream.js';

const RECEIVE_HIGH_WATER_MARK = 100_000;
const PUMP_BATCH = 256;
const BAD_FRAME_LOG_INTERVAL_MS = 10_000;

const now = () => performance.now();
const isPlainObject = (value) => value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
const errorText = (err) => (err instanceof Error ? err.message : String(err));

/** Lines on stderr, info and above (the default logger). */
const stderrLogger = {
  debug() {},
  info: (message) => process.stderr.write(`jobcast-worker info ${message}\n`),
  warn: (message) => process.stderr.write(`jobcast-worker warn ${message}\n`),
  error: (message) => process.stderr.write(`jobcast-worker error ${message}\n`),
};

/**
 * Reconnect delays: exponential from `minMs` to `maxMs`, each drawn uniformly
 * from [0, ceiling] (full jitter) so that workers restarted together do not
 * reconnect in lock-step.
 */
export class Backoff {
  #min;
  #max;
  #current;
  constructor(minMs, maxMs, random = Math.random) {
    this.#min = minMs;
    this.#max = maxMs;
    this.#current = minMs;
    this.random = random;
  }
  next() {
    const ceiling = this.#current;
    this.#current = Math.min(this.#max, this.#current * 2);
    return Math.round(this.random() * ceiling);
  }
  reset() {
    this.#current = this.#min;
  }
}

/**
 * The bound on output waiting for acks, for the whole worker. A message always
 * fits when nothing is waiting, so one bigger than the bound still goes out,
 * alone. Messages wait in submission order, so one attempt's stay in wseq
 * order even when its handler does not await each emit.
 */
class Outbox {
  constructor(maxBytes, deliver) {
    this.maxBytes = maxBytes;
    this.deliver = deliver; // (run, wseq, bytes, kind) => kept
    this.used = 0;
    this.waiting = [];
    this.submitted = 0;
    this.waits = 0;
  }

  fits(size) {
    return this.used === 0 || this.used + size <= this.maxBytes;
  }

  /** Undefined when taken now; a promise that settles once taken (or the run closed) otherwise. */
  submit(run, wseq, bytes, kind) {
    if (run.closed) return undefined;
    if (this.waiting.length === 0 && this.fits(bytes.length)) {
      this.#take(run, wseq, bytes, kind);
      return undefined;
    }
    this.waits++;
    return new Promise((resolve) => this.waiting.push({ run, wseq, bytes, kind, resolve }));
  }

  /** A message made by the worker itself: it counts against the bound. */
  reserve(size) {
    this.used += size;
    this.submitted++;
  }

  release(size) {
    this.used = Math.max(0, this.used - size);
    while (this.waiting.length > 0 && this.fits(this.waiting[0].bytes.length)) {
      const entry = this.waiting.shift();
      if (!entry.run.closed) this.#take(entry.run, entry.wseq, entry.bytes, entry.kind);
      entry.resolve();
    }
  }

  /** The run takes no more output; its waiting emits return. */
  close(run) {
    run.closed = true;
    const kept = [];
    for (const entry of this.waiting) {
      if (entry.run === run) entry.resolve();
      else kept.push(entry);
    }
    this.waiting = kept;
    this.release(0);
  }

  #take(run, wseq, bytes, kind) {
    this.used += bytes.length;
    this.submitted++;
    if (!this.deliver(run, wseq, bytes, kind)) this.used -= bytes.length;
  }
}

/** One assigned job attempt: its stream, its handler, its Job and its cancel state. */
class JobRun {
  constructor(outbox, stream, spec, handler) {
    this.outbox = outbox;
    this.stream = stream;
    this.jobId = spec.id;
    this.attempt = spec.attempt;
    this.type = spec.type;
    this.handler = handler;
    this.encoder = stream.encoder; // the attempt's chunk frames
    this.controller = new AbortController();
    this.closed = false; // takes no more output (abandoned, or the worker stops)
    this.ended = false; // the handler returned: its done or fail is the last message
    this.cancelRequested = false; // the broker sent cancel
    this.job = new Job(this, spec);
  }

  /** Hands message `wseq` to the outbox; a frame over the broker's limit could never be acknowledged. */
  submit(wseq, bytes, kind) {
    if (bytes.length > proto.MAX_FRAME_BYTES) {
      throw new JobFailed(`message of ${bytes.length} bytes exceeds the broker's frame limit`, { retryable: false });
    }
    this.stream.nextWseq = wseq + 1;
    return this.outbox.submit(this, wseq, bytes, kind);
  }
}

function normalizeConfig(options) {
  const config = {
    brokers: options.brokers,
    name: options.name ?? `${hostname().slice(0, 100)}-${process.pid}`,
    types: options.types ?? [],
    capacity: options.capacity ?? 1,
    maxUnackedBytes: options.maxUnackedBytes ?? 8 << 20,
    reconnectMinMs: options.reconnectMinMs ?? 100,
    reconnectMaxMs: options.reconnectMaxMs ?? 5000,
    heartbeatMs: options.heartbeatMs ?? 1000,
    liveness: options.liveness ?? 3,
    shutdownGraceMs: options.shutdownGraceMs ?? 2000,
    logger: options.logger ?? stderrLogger,
    curve: null,
  };
  if (!Array.isArray(config.brokers) || config.brokers.length === 0 || !config.brokers.every((b) => typeof b === 'string' && b !== '')) {
    throw new TypeError('worker: brokers must be a non-empty list of endpoints');
  }
  if (!Number.isInteger(config.capacity) || config.capacity < 1 || config.capacity > proto.MAX_CAPACITY) {
    throw new RangeError('worker: capacity must be between 1 and 1024');
  }
  if (!proto.isPrintableName(config.name)) throw new TypeError('worker: name must be 1 to 128 bytes of UTF-8 without control characters');
  if (!Number.isInteger(config.heartbeatMs) || config.heartbeatMs < 10) throw new RangeError('worker: heartbeatMs must be an integer of at least 10');
  if (!Number.isInteger(config.liveness) || config.liveness < 1) throw new RangeError('worker: liveness must be at least 1');
  if (!(config.maxUnackedBytes > 0)) throw new RangeError('worker: maxUnackedBytes must be positive');
  if (!(config.reconnectMinMs > 0) || !(config.reconnectMaxMs >= config.reconnectMinMs)) {
    throw new RangeError('worker: need 0 < reconnectMinMs <= reconnectMaxMs');
  }
  const { curveServerKey, curveSecretKeyFile } = options;
  if (Boolean(curveServerKey) !== Boolean(curveSecretKeyFile)) {
    throw new TypeError('worker: CURVE needs both curveServerKey and curveSecretKeyFile');
  }
  if (curveServerKey) {
    const secretKey = readKey(curveSecretKeyFile);
    config.curve = { curveServerKey: keyOrFile(curveServerKey), curveSecretKey: secretKey, curvePublicKey: publicKeyOf(secretKey) };
  }
  return config;
}

export class Worker {
  #config;
  #log;
  #handlers = new Map();
  #schemas = new Map(); // job type -> JSON Schema text, announced in hello
  #stream = new ReliableStream();
  #outbox;
  #runs = new Map(); // job id -> JobRun held (running, queued, or waiting for its terminal ack)
  #queue = []; // runs waiting for a free slot
  #running = 0;
  #backoff;
  #stats = {
    messagesSent: 0,
    messagesResent: 0,
    acksReceived: 0,
    unackedMessages: 0,
    reconnects: 0,
    hellos: 0,
    rejectsReceived: 0,
    badMessages: 0,
    jobsAssigned: 0,
    jobsSucceeded: 0,
    jobsFailed: 0,
    jobsAbandoned: 0,
  };

  // Connection state.
  #socket = null;
  #control = []; // hello and heartbeat frames, sent before stream frames
  #unpumped = 0; // messages delivered since the last pump
  #pumpScheduled = false;
  #brokerIndex = 0;
  #heartbeatMs;
  #lastSend = 0;
  #lastReceive = 0;
  #lastReport = 0;
  #helloSentAt = 0;
  #reconnectAt = 0;
  #badLoggedAt = -Infinity;
  #assignsReceived = 0; // since our last hello
  #session = ''; // the broker's session for our name (welcome.session)
  #awaitingWelcome = false;
  #welcomedOnce = false;
  #connected = false;
  // The socket's connection completed its handshake, and it closed since then
  // (one broker: ZeroMQ is reconnecting it).
  #handshakeDone = false;
  #connectionLost = false;

  // Life.
  #started = false;
  #stopping = false;
  #handBack = true;
  #stopDeadline = Infinity;
  #timer = null;
  #done = null; // {promise, resolve} of run()

  /**
   * @param {object} options see index.d.ts (WorkerOptions)
   */
  constructor(options) {
    this.#config = normalizeConfig(options ?? {});
    this.#log = this.#config.logger;
    this.#heartbeatMs = this.#config.heartbeatMs;
    this.#outbox = new Outbox(this.#config.maxUnackedBytes, (run, wseq, bytes, kind) => this.#deliver(run, wseq, bytes, kind));
    this.#backoff = new Backoff(this.#config.reconnectMinMs, this.#config.reconnectMaxMs);
  }

  get name() {
    return this.#config.name;
  }

  /**
   * Registers the handler for a job type; call before run(). `options.schema`
   * (an object or JSON text): the JSON Schema its params must meet, announced
   * in hello; the broker answers 422 to a submission that breaks it. Returns
   * the worker.
   */
  handle(type, handler, options = {}) {
    if (this.#started) throw new Error('worker: handle() after run()');
    if (typeof handler !== 'function') throw new TypeError('worker: a handler must be a function');
    let schema;
    if (options.schema != null) {
      schema = typeof options.schema === 'string' ? options.schema : JSON.stringify(options.schema);
      // A schema that is not JSON would make the broker refuse the whole hello.
      if (typeof schema !== 'string') throw new TypeError('worker: a schema must be JSON');
      JSON.parse(schema);
    }
    this.#handlers.set(type, handler);
    if (schema === undefined) this.#schemas.delete(type);
    else this.#schemas.set(type, schema);
    return this;
  }

  /** Connects and serves until stop(); resolves once stopped. */
  run() {
    if (this.#started) return Promise.reject(new Error('worker: run() called twice'));
    const config = this.#config;
    if (config.types.length === 0) config.types = [...this.#handlers.keys()].sort();
    if (config.types.length === 0) return Promise.reject(new Error('worker: no job types to serve'));
    if (config.types.length > proto.MAX_TYPES) return Promise.reject(new Error('worker: at most 64 job types per worker'));
    for (const type of config.types) {
      if (!proto.isPrintableName(type)) return Promise.reject(new Error(`worker: job type '${type}' is not 1 to 128 bytes without control characters`));
      if (!this.#handlers.has(type)) return Promise.reject(new Error(`worker: no handler for job type '${type}'`));
    }
    this.#started = true;
    let resolve;
    const promise = new Promise((res) => {
      resolve = res;
    });
    this.#done = { promise, resolve };
    this.#log.info(`connecting brokers=${config.brokers.join(',')} worker=${JSON.stringify(config.name)} types=${config.types.join(',')} capacity=${config.capacity}`);
    try {
      this.#openSocket(true);
    } catch (err) {
      this.#done = null;
      return Promise.reject(err);
    }
    this.#arm();
    return promise;
  }

  /**
   * Graceful stop. handBack (default true): running handlers are cancelled
   * (their signal aborts, their further output is dropped) and left to the
   * broker, which re-queues them from their last checkpoint when the lease
   * lapses. handBack false: running jobs finish first; queued ones are handed
   * back. Either way, what was emitted is flushed (up to shutdownGraceMs for
   * the acks) before the socket closes. Resolves when run() does.
   */
  stop({ handBack = true } = {}) {
    if (!this.#done) return Promise.resolve();
    const { promise } = this.#done;
    if (!this.#stopping) {
      this.#beginStop(handBack);
      this.#tick();
    }
    return promise;
  }

  /** Counters for logs and metrics. */
  stats() {
    return {
      ...this.#stats,
      eventsEmitted: this.#outbox.submitted,
      unackedBytes: this.#outbox.used,
      emitWaits: this.#outbox.waits,
      jobsRunning: this.#running,
      connected: this.#connected,
      broker: this.#config.brokers[this.#brokerIndex],
    };
  }

  // ---------------------------------------------------------------- timers

  #arm() {
    const interval = Math.max(5, Math.min(100, this.#heartbeatMs / 10));
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#tick();
      if (this.#done) this.#arm();
    }, interval);
  }

  #livenessWindow() {
    return this.#heartbeatMs * this.#config.liveness;
  }

  #tick() {
    const t = now();
    if (this.#stopping) {
      const handlersDone = this.#handBack || (this.#running === 0 && this.#queue.length === 0);
      if (handlersDone && this.#stopDeadline === Infinity) this.#stopDeadline = t + this.#config.shutdownGraceMs;
      if (handlersDone && this.#outbox.used === 0) return this.#finish();
      if (t >= this.#stopDeadline) {
        this.#log.warn(`stopping with unacknowledged messages=${this.#stats.unackedMessages} (broker did not ack in time)`);
        return this.#finish();
      }
    }
    if (!this.#socket && t >= this.#reconnectAt) this.#openSocket(false);
    if (this.#socket && t - this.#lastReceive >= this.#livenessWindow()) {
      this.#log.warn(`broker silent for ${Math.round(t - this.#lastReceive)} ms; reconnecting broker=${this.#endpoint()}`);
      this.#reconnect();
    }
    // A heartbeat when idle, and one listing what we hold at least once per
    // heartbeat interval while busy (the broker reconciles leases with it).
    if (this.#socket && (t - this.#lastSend >= this.#heartbeatMs || t - this.#lastReport >= this.#heartbeatMs)) this.#sendHeartbeat();
    return undefined;
  }

  #finish() {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#closeSocket();
    for (const run of this.#runs.values()) {
      this.#outbox.close(run);
      run.controller.abort();
    }
    const done = this.#done;
    this.#done = null;
    this.#log.info(`stopped worker=${JSON.stringify(this.#config.name)}`);
    done.resolve();
  }

  #beginStop(handBack) {
    this.#stopping = true;
    this.#handBack = handBack;
    this.#log.info(`stopping worker=${JSON.stringify(this.#config.name)} running_jobs=${this.#running} hand_back=${handBack}`);
    // Queued jobs never start: the broker gets them back (at once from our
    // next heartbeat when we keep reporting, else when the lease lapses).
    for (const run of this.#queue) this.#forgetRun(run);
    this.#queue = [];
    if (!handBack) return;
    for (const run of this.#runs.values()) this.#outbox.close(run);
    for (const run of this.#runs.values()) run.controller.abort();
  }

  // ---------------------------------------------------------------- socket

  #endpoint() {
    return this.#config.brokers[this.#brokerIndex];
  }

  #openSocket(first) {
    const endpoint = this.#endpoint();
    let socket;
    try {
      socket = new Dealer({
        linger: 0,
        sendHighWaterMark: 0,
        receiveHighWaterMark: RECEIVE_HIGH_WATER_MARK,
        reconnectInterval: this.#config.reconnectMinMs,
        reconnectMaxInterval: this.#config.reconnectMaxMs,
        sendTimeout: 0,
        ...(this.#config.curve ?? {}),
      });
      socket.events.on('handshake', () => this.#onHandshake(socket));
      socket.events.on('disconnect', () => this.#onDisconnect(socket));
      socket.connect(endpoint);
    } catch (err) {
      socket?.close();
      if (first) throw new Error(`worker: cannot connect to '${endpoint}': ${errorText(err)}`);
      this.#log.error(`cannot open socket broker=${endpoint} error=${errorText(err)}`);
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    this.#handshakeDone = false;
    this.#connectionLost = false;
    const t = now();
    this.#lastReceive = t;
    this.#lastSend = t;
    this.#heartbeatMs = this.#config.heartbeatMs; // until the broker's welcome says otherwise
    this.#receive(socket);
    this.#sendHello();
    this.#resendAll();
  }

  #closeSocket() {
    if (this.#socket) {
      this.#socket.close();
      this.#socket = null;
    }
    this.#control = [];
    this.#stream.disconnected();
    this.#awaitingWelcome = false;
    this.#connected = false;
  }

  // Closes the socket and tries the next broker after a backoff delay.
  #reconnect() {
    this.#closeSocket();
    this.#stats.reconnects++;
    this.#brokerIndex = (this.#brokerIndex + 1) % this.#config.brokers.length;
    this.#scheduleReconnect();
  }

  #scheduleReconnect() {
    const delay = this.#backoff.next();
    this.#reconnectAt = now() + delay;
    this.#log.debug(`reconnecting in ${delay} ms broker=${this.#endpoint()}`);
  }

  // The broker's end closed an established connection: its process is gone (or
  // restarting). Another broker of the list takes over at once; a closed
  // connection to the one broker is ZeroMQ's to reconnect.
  #onDisconnect(socket) {
    if (socket !== this.#socket || !this.#handshakeDone) return;
    this.#handshakeDone = false;
    this.#connected = false;
    if (this.#config.brokers.length > 1) {
      this.#log.warn(`broker closed the connection; failing over broker=${this.#endpoint()} inflight=${this.#stream.attempts.size}`);
      this.#reconnect();
      return;
    }
    this.#log.warn(`broker closed the connection; waiting for it broker=${this.#endpoint()} inflight=${this.#stream.attempts.size}`);
    this.#stream.disconnected(); // nothing queued for a broker that will not know us
    this.#connectionLost = true;
  }

  #onHandshake(socket) {
    if (socket !== this.#socket) return;
    this.#handshakeDone = true;
    if (!this.#connectionLost) return; // the socket's first connection: hello is on its way
    this.#connectionLost = false;
    this.#log.info(`broker is back; saying hello broker=${this.#endpoint()} inflight=${this.#stream.attempts.size}`);
    this.#lastReceive = now();
    this.#sendHello();
    this.#resendAll();
  }

  async #receive(socket) {
    try {
      for await (const parts of socket) {
        if (socket !== this.#socket) break;
        this.#lastReceive = now();
        // One frame per message; tolerate an envelope by using the last part.
        this.#onFrame(parts[parts.length - 1]);
      }
    } catch (err) {
      if (socket === this.#socket) this.#log.warn(`receive failed error=${errorText(err)}`);
    }
  }

  // Hands control frames, then the stream's, to this socket. Its queue has no
  // high-water mark (what it holds is bounded by maxUnackedBytes, since every
  // frame stays in the stream until acknowledged) and it sends without waiting
  // (sendTimeout 0), so a frame costs one call and no promise round trip.
  #pump() {
    this.#unpumped = 0;
    const socket = this.#socket;
    while (socket && this.#socket === socket) {
      let frame;
      if (this.#control.length > 0) {
        frame = this.#control.shift();
      } else {
        frame = this.#stream.nextFrame();
        if (frame === undefined) return;
        this.#stream.sent();
      }
      socket.send(frame).catch((err) => this.#sendFailed(socket, err));
      this.#lastSend = now();
      this.#stats.messagesSent++;
    }
  }

  // A frame the socket refused: everything unacknowledged goes out again (the
  // broker drops what it has), so nothing after it is left behind a hole.
  #sendFailed(socket, err) {
    if (this.#socket !== socket) return;
    this.#log.warn(`send failed; re-sending what is unacknowledged error=${errorText(err)}`);
    this.#resendAll();
  }

  #sendHello() {
    this.#control.push(
      proto.hello({
        worker: this.#config.name,
        types: this.#config.types,
        capacity: this.#config.capacity,
        inflight: this.#stream.inflight(),
        session: this.#session,
        schemas: Object.fromEntries(
          [...this.#schemas].filter(([type]) => this.#config.types.includes(type)),
        ),
      }),
    );
    this.#helloSentAt = now();
    this.#awaitingWelcome = true;
    this.#assignsReceived = 0; // the broker numbers its assigns from each hello
    this.#stats.hellos++;
    this.#pump();
  }

  #sendHeartbeat() {
    // A worker handing its jobs back leaves them to lease expiry; before the
    // welcome, the hello said it all.
    const plain = (this.#stopping && this.#handBack) || this.#awaitingWelcome;
    this.#control.push(plain ? proto.PLAIN_HEARTBEAT : proto.heartbeat(this.#stream.inflight(), this.#assignsReceived));
    this.#lastSend = this.#lastReport = now(); // also when it waits: not worth repeating early
    this.#pump();
  }

  #resendAll() {
    this.#stats.messagesResent += this.#stream.reconnected();
    this.#pump();
  }

  // A handler's message, buffered in the stream. The socket gets it when the
  // handlers yield to the event loop or PUMP_BATCH messages are waiting, so
  // that a burst of tokens wakes ZeroMQ's I/O thread once, not once each.
  #deliver(run, wseq, bytes, kind) {
    if (!this.#stream.push(run.stream, wseq, bytes, kind)) return false;
    this.#stats.unackedMessages++;
    if (++this.#unpumped >= PUMP_BATCH) {
      this.#pump();
    } else if (!this.#pumpScheduled) {
      this.#pumpScheduled = true;
      setImmediate(() => {
        this.#pumpScheduled = false;
        this.#pump();
      });
    }
    return true;
  }

  // ---------------------------------------------------------------- broker messages

  #onFrame(frame) {
    const decoded = proto.decodeBrokerMessage(frame);
    if (decoded.error) {
      this.#onUndecodable(decoded);
      return;
    }
    const message = decoded.message;
    try {
      switch (message.t) {
        case 'welcome':
          return this.#onWelcome(message);
        case 'assign':
          return this.#onAssign(message);
        case 'ack':
          return this.#onAck(message);
        case 'cancel':
          return this.#onCancel(message);
        case 'reject':
          return this.#onReject(message);
        default:
          return undefined; // heartbeat: its arrival is what counts
      }
    } catch (err) {
      this.#log.error(`cannot handle broker message type=${message.t} error=${errorText(err)}`);
      return undefined;
    }
  }

  // A frame that is not a broker message: counted and ignored. An assign among
  // them still ends its attempt, answered with a fail (not retryable: every
  // worker decodes alike) instead of dropped, which would leave the job leased
  // to us while we run nothing; and it counts among the assigns received.
  #onUndecodable({ error, message }) {
    this.#stats.badMessages++;
    const isAssign = message?.t === 'assign';
    if (isAssign) this.#assignsReceived++;
    const job = isAssign && typeof message.job === 'string' && message.job !== '' ? message.job : null;
    const attempt = isAssign && Number.isSafeInteger(message.attempt) && message.attempt > 0 ? message.attempt : null;
    const answer = job !== null && attempt !== null && !this.#stopping;
    const t = now();
    if (answer || t - this.#badLoggedAt >= BAD_FRAME_LOG_INTERVAL_MS) {
      if (!answer) this.#badLoggedAt = t;
      this.#log.warn(`undecodable broker message type=${isAssign ? 'assign' : 'unknown'} job=${job ?? 'none'} error=${JSON.stringify(error)} total=${this.#stats.badMessages}`);
    }
    if (!answer) return;
    const held = this.#stream.find(job);
    if (held) {
      if (held.attempt === attempt) return; // answered (or running) already
      this.#dropJob(job, held.attempt, 'reassigned');
    }
    const stream = this.#stream.open(job, attempt);
    const run = new JobRun(this.#outbox, stream, { id: job, attempt, type: '', params: {}, checkpoint: null }, null);
    run.closed = true; // no handler output
    const frame = proto.fail(job, attempt, 1, `worker ${this.#config.name} cannot decode the assign: ${error}`, false);
    stream.nextWseq = 2;
    this.#outbox.reserve(frame.length);
    this.#runs.set(job, run);
    this.#stats.jobsAssigned++;
    this.#stats.jobsFailed++;
    this.#deliver(run, 1, frame, TERMINAL);
  }

  #onWelcome(message) {
    this.#heartbeatMs = Math.min(60_000, Math.max(10, message.heartbeat_ms));
    if (message.session) this.#session = message.session;
    this.#stream.batchChunks = (message.features ?? []).includes(proto.FEATURE_CHUNKS);
    this.#awaitingWelcome = false;
    this.#backoff.reset();
    this.#connected = true;
    if (!this.#welcomedOnce) {
      this.#log.info(`connected broker=${this.#endpoint()} heartbeat_ms=${this.#heartbeatMs}`);
      this.#welcomedOnce = true;
    } else {
      this.#log.info(`reconnected broker=${this.#endpoint()} inflight=${this.#stream.attempts.size}`);
    }
  }

  #onAssign(message) {
    this.#assignsReceived++;
    if (this.#stopping) {
      // Not ours to start: the broker re-queues it.
      this.#log.debug(`ignoring assign while stopping job=${message.job}`);
      return;
    }
    const held = this.#stream.find(message.job);
    if (held) {
      if (held.attempt === message.attempt) return; // a repeated assign
      this.#dropJob(message.job, held.attempt, 'reassigned');
    }
    const checkpoint = message.checkpoint?.length ? Buffer.from(message.checkpoint) : null;
    const spec = { id: message.job, attempt: message.attempt, type: message.type, params: message.params, checkpoint };
    const run = new JobRun(this.#outbox, this.#stream.open(message.job, message.attempt), spec, this.#handlers.get(message.type) ?? null);
    this.#stats.jobsAssigned++;
    this.#log.debug(`assigned job=${run.jobId} attempt=${run.attempt} type=${run.type}`);
    this.#runs.set(run.jobId, run);
    this.#queue.push(run);
    if (this.#queue.length > this.#config.capacity) {
      this.#log.warn(`more jobs assigned than capacity; queued=${this.#queue.length} capacity=${this.#config.capacity}`);
    }
    this.#startQueued();
  }

  #onAck(message) {
    this.#stats.acksReceived++;
    const acked = this.#stream.ack(message.job, message.attempt, message.wseq);
    if (!acked.known) {
      this.#log.debug(`ack for unknown job=${message.job} attempt=${message.attempt}`);
      return;
    }
    this.#stats.unackedMessages -= acked.messages;
    if (acked.bytes > 0) this.#outbox.release(acked.bytes);
    if (acked.settled) this.#runs.delete(message.job);
    if (this.#stopping) this.#tick();
  }

  #onCancel(message) {
    const run = this.#runs.get(message.job);
    if (!run || run.closed) return;
    this.#log.info(`cancel requested job=${run.jobId} attempt=${run.attempt}`);
    run.cancelRequested = true;
    run.controller.abort();
  }

  #onReject(message) {
    this.#stats.rejectsReceived++;
    const detail = message.detail ? ` detail=${JSON.stringify(message.detail)}` : '';
    if (message.job === '') {
      if (message.reason === 'shutdown') {
        // The broker is stopping gracefully and has acknowledged all it
        // committed: reconnect (with backoff) without waiting for silence.
        this.#log.info(`broker is shutting down; reconnecting broker=${this.#endpoint()} inflight=${this.#stream.attempts.size}`);
        this.#reconnect();
        return;
      }
      if (message.reason === 'identity' || message.reason === 'invalid_hello') {
        // Our hello was refused (the name is held by another worker, or by our
        // previous connection until its lease runs out): try again later.
        this.#log.error(`broker refused this worker's hello reason=${message.reason}${detail} worker=${JSON.stringify(this.#config.name)}`);
        this.#reconnect();
        return;
      }
      if (message.reason !== 'hello') {
        this.#log.warn(`broker rejected worker reason=${JSON.stringify(message.reason)}${detail}`);
        return;
      }
      // The broker does not know this peer (it restarted). Rejects of what we
      // sent before our last hello are expected until its welcome arrives.
      if (this.#awaitingWelcome && now() - this.#helloSentAt < this.#livenessWindow()) return;
      this.#log.info(`broker does not know this worker; saying hello again broker=${this.#endpoint()} inflight=${this.#stream.attempts.size}`);
      this.#connected = false;
      this.#sendHello();
      this.#resendAll();
      return;
    }
    const held = this.#stream.find(message.job);
    if (!held) return;
    const attempt = held.attempt;
    const rejected = this.#stream.reject(message.job, message.attempt ?? 0, message.reason, now(), this.#livenessWindow());
    switch (rejected.answer) {
      case 'not_ours':
        this.#log.debug(`ignoring reject for another attempt job=${message.job} attempt=${message.attempt} ours=${attempt} reason=${message.reason}`);
        return;
      case 'resent':
        this.#log.debug(`re-sending after gap job=${message.job} attempt=${attempt}`);
        this.#stats.messagesResent += rejected.resent;
        this.#pump();
        return;
      case 'drop':
        this.#dropJob(message.job, attempt, message.reason);
        return;
      default:
        return; // already re-sending
    }
  }

  // ---------------------------------------------------------------- jobs

  // The attempt is no longer ours: its handler is cancelled and its output dropped.
  #dropJob(job, attempt, reason) {
    this.#log.warn(`job is no longer ours job=${job} attempt=${attempt} reason=${JSON.stringify(reason)}`);
    const run = this.#runs.get(job);
    if (run) {
      this.#forgetRun(run);
    } else {
      const freed = this.#stream.drop(job);
      this.#stats.unackedMessages -= freed.messages;
      this.#outbox.release(freed.bytes);
    }
    this.#stats.jobsAbandoned++;
  }

  #forgetRun(run) {
    this.#outbox.close(run);
    run.controller.abort();
    if (this.#runs.get(run.jobId) === run) this.#runs.delete(run.jobId);
    if (this.#stream.find(run.jobId) === run.stream) {
      const freed = this.#stream.drop(run.jobId);
      this.#stats.unackedMessages -= freed.messages;
      this.#outbox.release(freed.bytes);
    }
  }

  #startQueued() {
    while (this.#running < this.#config.capacity && this.#queue.length > 0) {
      const run = this.#queue.shift();
      if (!run.closed) this.#execute(run);
    }
  }

  async #execute(run) {
    this.#running++;
    const started = now();
    this.#log.info(`job started job=${run.jobId} attempt=${run.attempt} type=${run.type} resume=${run.job.checkpoint !== null}`);
    let outcome;
    try {
      if (!run.handler) throw new JobFailed(`no handler for job type '${run.type}' on worker ${this.#config.name}`, { retryable: true });
      outcome = { result: await run.handler(run.job) };
    } catch (err) {
      outcome = { error: err };
    }
    run.ended = true;
    this.#running--;
    const ms = Math.round(now() - started);
    if (run.closed) {
      this.#log.info(`job abandoned job=${run.jobId} attempt=${run.attempt} ms=${ms}`);
      this.#startQueued();
      return;
    }
    const [frame, result] = this.#terminal(run, outcome);
    this.#stats[result === 'succeeded' ? 'jobsSucceeded' : 'jobsFailed']++;
    this.#log.info(`job finished job=${run.jobId} attempt=${run.attempt} outcome=${result} ms=${ms}`);
    const taken = run.submit(run.stream.nextWseq, frame, TERMINAL);
    this.#startQueued();
    await taken;
  }

  // The attempt's done or fail frame for a handler's outcome, and its name.
  #terminal(run, outcome) {
    const wseq = run.stream.nextWseq;
    const fail = (error, retryable) => proto.fail(run.jobId, run.attempt, wseq, error, retryable);
    let frame;
    let result = 'failed';
    if (run.cancelRequested) {
      frame = fail('cancelled', false);
      result = 'cancelled';
    } else if ('result' in outcome) {
      const value = outcome.result ?? {};
      if (!isPlainObject(value)) {
        frame = fail('handler returned a result that is not a JSON object', false);
      } else {
        try {
          frame = proto.done(run.jobId, run.attempt, wseq, jsonValue(value));
          result = 'succeeded';
        } catch (err) {
          frame = fail(`handler returned a result that is not JSON: ${errorText(err)}`, false);
        }
      }
    } else {
      const err = outcome.error;
      const retryable = err instanceof JobFailed ? err.retryable : true;
      frame = fail(errorText(err), retryable);
      this.#log.info(`job failed job=${run.jobId} attempt=${run.attempt} retryable=${retryable} error=${JSON.stringify(errorText(err))}`);
    }
    if (frame.length > proto.MAX_FRAME_BYTES) {
      frame = fail("result is larger than the broker's frame limit", false);
      result = 'failed';
    }
    return [frame, result];
  }
}
