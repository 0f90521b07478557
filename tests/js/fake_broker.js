// An in-memory stand-in for jobcast-broker's client side (Client API v1: REST
// and the /v1/ws WebSocket), for testing web/client/jobcast.js without the C++
// broker, and for working on the web UI (it can serve web/ui and web/client and
// simulate the shipped job types).
//
// It keeps the broker's promises (per-job seq 1, 2, 3…, `subscribed` before the
// replay, replay then live with nothing lost) and lets a test break the
// connection in the ways a real deployment does: close codes, silence, replays
// that overlap what the client already has, packed `events` frames.
//
// Run it by hand to try the UI:  node tests/js/fake_broker.js [port]

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * @param {object} [options]
 * @param {number} [options.port] 0 (default) picks a free port
 * @param {number} [options.pack] events per frame in replays (1 = `event` frames)
 * @param {number} [options.overlap] replays start this many events before `after`
 * @param {boolean} [options.answerPings] reply to {"op":"ping"} with a pong (true)
 * @param {boolean} [options.simulate] run submitted jobs like the shipped workers do
 * @param {boolean} [options.serveStatic] serve web/ui at / and web/client at /client/
 * @param {Array<{type: string, workers?: number, schema?: object|null}>} [options.types]
 *   what GET /v1/types lists; a submission missing a field its type's schema
 *   requires is answered 422 like the broker does (404 for GET /v1/types without)
 * @param {(request: import('node:http').IncomingMessage) => number|undefined} [options.admit]
 *   return a close code to close each new WebSocket with right after it opens
 */
export async function startFakeBroker(options = {}) {
  const broker = new FakeBroker(options);
  await broker.listen(options.port ?? 0);
  return broker;
}

export class FakeBroker {
  constructor(options) {
    this.pack = options.pack ?? 1;
    this.overlap = options.overlap ?? 0;
    this.answerPings = options.answerPings ?? true;
    this.simulate = options.simulate ?? false;
    this.serveStatic = options.serveStatic ?? false;
    this.types = options.types;
    this.admit = options.admit ?? (() => undefined);
    /** @type {Map<string, {job: object, events: object[], timers: Set<any>}>} */
    this.jobs = new Map();
    /** Every op received: {conn, op} where conn numbers connections from 1. */
    this.received = [];
    /** The URL of every WebSocket upgrade request (to check access_token). */
    this.upgradeUrls = [];
    /** Every REST request: {method, url, headers, body}. */
    this.requests = [];
    this.connections = new Set();
    this.connectionCount = 0;
    this.nextId = 1;
    this.http = createServer((req, res) => this.#handleHttp(req, res));
    this.wss = new WebSocketServer({ noServer: true });
    this.http.on('upgrade', (req, socket, head) => {
      if (new URL(req.url, 'http://x').pathname !== '/v1/ws') {
        socket.destroy();
        return;
      }
      this.upgradeUrls.push(req.url);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req));
    });
  }

  listen(port) {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, '127.0.0.1', () => {
        this.port = this.http.address().port;
        this.url = `http://127.0.0.1:${this.port}`;
        resolve();
      });
    });
  }

  /** Closes every connection and the listener. */
  async stop() {
    for (const entry of this.jobs.values()) for (const t of entry.timers) clearTimeout(t);
    for (const conn of this.connections) conn.ws.terminate();
    this.wss.close();
    this.http.closeAllConnections?.();
    await new Promise((resolve) => this.http.close(() => resolve()));
  }

  // ---- jobs and their logs ---------------------------------------------------

  /** Creates a job the way POST /v1/jobs does (first event: state queued). */
  createJob({ type = 'llm.generate', params = {}, owner = 'anonymous', priority = 0, maxAttempts = 3 } = {}) {
    const now = Date.now();
    const id = `job-${String(this.nextId++).padStart(4, '0')}-${now.toString(36)}`;
    const job = {
      id, type, owner, params, priority, state: 'queued', attempt: 0, max_attempts: maxAttempts,
      worker: null, progress: 0, last_seq: 0, result: null, error: null,
      created_at: now, started_at: null, finished_at: null, cancel_requested: false, has_checkpoint: false,
    };
    this.jobs.set(id, { job, events: [], timers: new Set() });
    this.append(id, 'state', { state: 'queued', attempt: 0 });
    return job;
  }

  /**
   * Commits one event to a job's log and fans it out to live subscribers, as
   * the broker does after COMMIT. Returns the event ({seq, kind, ts, data}).
   */
  append(jobId, kind, data = {}) {
    const entry = this.#entry(jobId);
    const event = { seq: entry.events.length + 1, kind, ts: Date.now() * 1000, data };
    entry.events.push(event);
    const { job } = entry;
    job.last_seq = event.seq;
    if (kind === 'state') {
      job.state = data.state;
      job.attempt = data.attempt ?? job.attempt;
      if (data.state === 'running') {
        job.started_at ??= Date.now();
        if (data.worker) job.worker = data.worker;
      }
      if (TERMINAL.has(data.state)) {
        job.finished_at = Date.now();
        job.worker = null; // as the real broker does: the job JSON names a worker only while it runs
      }
    } else if (kind === 'progress' && typeof data.fraction === 'number') {
      job.progress = data.fraction;
    }
    for (const conn of this.connections) {
      if (conn.subs.has(jobId)) this.#sendEvents(conn, jobId, [event]);
      if (kind === 'state' && conn.feed) this.#sendEvents(conn, jobId, [event]);
    }
    return event;
  }

  /** Appends a terminal state event (and a result event first for success). */
  finish(jobId, state = 'succeeded', result = {}) {
    const entry = this.#entry(jobId);
    if (state === 'succeeded') {
      entry.job.result = result;
      this.append(jobId, 'result', result);
    }
    entry.job.progress = state === 'succeeded' ? 1 : entry.job.progress;
    return this.append(jobId, 'state', { state, attempt: entry.job.attempt });
  }

  events(jobId) {
    return this.#entry(jobId).events;
  }

  #entry(jobId) {
    const entry = this.jobs.get(jobId);
    if (!entry) throw new Error(`fake broker: no job ${jobId}`);
    return entry;
  }

  // ---- WebSocket ---------------------------------------------------------------

  /** Closes every open WebSocket with `code` (e.g. 1012, as a restarting broker does). */
  closeAll(code = 1012, reason = 'restart') {
    for (const conn of this.connections) conn.ws.close(code, reason);
  }

  /** Resolves when `predicate()` holds, polling every few ms (rejects after `ms`). */
  waitFor(predicate, ms = 5000, what = 'condition') {
    const deadline = Date.now() + ms;
    return new Promise((resolve, reject) => {
      const poll = () => {
        let value;
        try {
          value = predicate();
        } catch (err) {
          reject(err);
          return;
        }
        if (value) resolve(value);
        else if (Date.now() > deadline) reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        else setTimeout(poll, 5);
      };
      poll();
    });
  }

  /** The ops received on connection number `conn` (1-based). */
  opsOn(conn) {
    return this.received.filter((r) => r.conn === conn).map((r) => r.op);
  }

  #accept(ws, req) {
    const conn = { ws, id: ++this.connectionCount, subs: new Set(), feed: false };
    this.connections.add(conn);
    ws.on('close', () => this.connections.delete(conn));
    ws.on('error', () => {});
    const closeCode = this.admit(req);
    if (closeCode !== undefined) {
      ws.close(closeCode, 'refused by test');
      return;
    }
    ws.on('message', (data) => {
      let op;
      try {
        op = JSON.parse(String(data));
      } catch {
        this.#send(conn, { type: 'error', code: 'invalid_request', message: 'not JSON' });
        return;
      }
      this.received.push({ conn: conn.id, op });
      this.#handleOp(conn, op);
    });
  }

  #handleOp(conn, op) {
    switch (op.op) {
      case 'ping':
        if (this.answerPings) this.#send(conn, { type: 'pong' });
        return;
      case 'subscribe':
        if (op.feed === 'jobs') {
          conn.feed = true;
          this.#send(conn, { type: 'subscribed', feed: 'jobs' });
          return;
        }
        return this.#subscribe(conn, op.job, op.after ?? 0);
      case 'unsubscribe':
        if (op.feed === 'jobs') conn.feed = false;
        else conn.subs.delete(op.job);
        return;
      case 'cancel':
        return this.#cancel(op.job);
      default:
        this.#send(conn, { type: 'error', code: 'invalid_request', message: `unknown op ${op.op}` });
    }
  }

  #subscribe(conn, jobId, after) {
    const entry = this.jobs.get(jobId);
    if (!entry) {
      this.#send(conn, { type: 'error', code: 'not_found', message: 'no such job', job: jobId });
      return;
    }
    this.#send(conn, { type: 'subscribed', job: jobId, last_seq: entry.job.last_seq });
    // Replay (optionally re-sending `overlap` events the client already has),
    // then live: everything here is synchronous, so nothing slips in between.
    const from = Math.max(0, after - this.overlap);
    this.#sendEvents(conn, jobId, entry.events.slice(from));
    conn.subs.add(jobId);
  }

  #sendEvents(conn, jobId, events) {
    if (this.pack <= 1) {
      for (const e of events) this.#send(conn, { type: 'event', job: jobId, ...e });
      return;
    }
    for (let i = 0; i < events.length; i += this.pack) {
      const chunk = events.slice(i, i + this.pack);
      if (chunk.length === 1) this.#send(conn, { type: 'event', job: jobId, ...chunk[0] });
      else this.#send(conn, { type: 'events', job: jobId, events: chunk });
    }
  }

  /** Sends a raw frame on every connection (for tests of odd server behaviour). */
  broadcast(frame) {
    for (const conn of this.connections) this.#send(conn, frame);
  }

  #send(conn, frame) {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(JSON.stringify(frame));
  }

  // ---- REST ----------------------------------------------------------------------

  async #handleHttp(req, res) {
    const body = await readBody(req);
    const url = new URL(req.url, 'http://x');
    this.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
    const reply = (status, payload) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    const fail = (status, code, message) => reply(status, { error: { code, message } });

    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== 'v1') {
      if (this.serveStatic && req.method === 'GET') return this.#serveStatic(url.pathname, res);
      return fail(404, 'not_found', 'no such route');
    }
    if (parts[1] === 'types' && parts.length === 2 && req.method === 'GET' && this.types) {
      return reply(200, {
        types: this.types.map((t) => ({ type: t.type, workers: t.workers ?? 1, schema: t.schema ?? null })),
      });
    }
    if (parts[1] !== 'jobs') return fail(404, 'not_found', 'no such route');

    if (parts.length === 2 && req.method === 'POST') {
      let request;
      try {
        request = JSON.parse(body);
      } catch {
        return fail(400, 'invalid_request', 'body is not valid JSON');
      }
      if (typeof request?.type !== 'string' || request.type === '') {
        return fail(400, 'invalid_request', 'type is required');
      }
      const schema = this.types?.find((t) => t.type === request.type)?.schema;
      const missing = (schema?.required ?? []).find((name) => !(name in (request.params ?? {})));
      if (missing !== undefined) {
        const message = `params/${missing}: Missing required property '${missing}'. (required)`;
        return reply(422, { error: { code: 'invalid_params', message, field: `/${missing}`, rule: 'required' } });
      }
      const job = this.createJob({
        type: request.type,
        params: request.params ?? {},
        priority: request.priority ?? 0,
        maxAttempts: request.max_attempts ?? 3,
      });
      if (this.simulate) this.#run(job.id);
      return reply(201, job);
    }
    if (parts.length === 2 && req.method === 'GET') {
      let jobs = [...this.jobs.values()].map((e) => e.job).reverse();
      const state = url.searchParams.get('state');
      const type = url.searchParams.get('type');
      if (state) jobs = jobs.filter((j) => j.state === state);
      if (type) jobs = jobs.filter((j) => j.type === type);
      const limit = Number(url.searchParams.get('limit') ?? 50);
      const start = Number(url.searchParams.get('cursor') ?? 0);
      const page = jobs.slice(start, start + limit);
      const next = start + limit < jobs.length ? String(start + limit) : null;
      return reply(200, { jobs: page, next });
    }
    const entry = this.jobs.get(parts[2]);
    if (!entry) return fail(404, 'not_found', 'no such job');
    if (parts.length === 3 && req.method === 'GET') return reply(200, entry.job);
    if (parts.length === 4 && parts[3] === 'cancel' && req.method === 'POST') {
      if (TERMINAL.has(entry.job.state)) return fail(409, 'conflict', 'job already finished');
      this.#cancel(entry.job.id);
      return reply(202, entry.job);
    }
    if (parts.length === 4 && parts[3] === 'events' && req.method === 'GET') {
      const after = Number(url.searchParams.get('after') ?? 0);
      const limit = Number(url.searchParams.get('limit') ?? 1000);
      const events = entry.events.filter((e) => e.seq > after).slice(0, limit);
      const reached = events.length ? events.at(-1).seq : after;
      return reply(200, {
        events,
        last_seq: entry.job.last_seq,
        done: TERMINAL.has(entry.job.state) && reached >= entry.job.last_seq,
      });
    }
    return fail(405, 'method_not_allowed', 'method not allowed');
  }

  async #serveStatic(pathname, res) {
    let root = join(REPO, 'web', 'ui');
    let rel = pathname === '/' ? 'index.html' : pathname.slice(1);
    if (rel.startsWith('client/')) {
      root = join(REPO, 'web', 'client');
      rel = rel.slice('client/'.length);
    }
    const file = normalize(join(root, rel));
    if (!file.startsWith(root)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const content = await readFile(file);
      res.writeHead(200, { 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream' });
      res.end(content);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  }

  // ---- simulated workers (for the UI) -----------------------------------------------

  #cancel(jobId) {
    const entry = this.jobs.get(jobId);
    if (!entry || TERMINAL.has(entry.job.state)) return;
    for (const t of entry.timers) clearTimeout(t);
    entry.timers.clear();
    entry.job.cancel_requested = true;
    this.append(jobId, 'state', { state: 'cancelled', attempt: entry.job.attempt, reason: 'cancelled by client' });
  }

  /** Plays a job the way the shipped workers would, on timers. */
  #run(jobId) {
    const entry = this.#entry(jobId);
    const { job } = entry;
    const steps = [];
    let at = 300;
    const step = (delay, fn) => steps.push([(at += delay), fn]);
    step(0, () => {
      job.worker = 'fake-worker-1';
      this.append(jobId, 'state', { state: 'running', attempt: 1, worker: job.worker });
    });
    if (job.type === 'llm.generate') {
      const words = LOREM.split(' ');
      const count = Math.min(Number(job.params.max_tokens) || 60, 2000);
      const gap = 1000 / (Number(job.params.tokens_per_second) || 20);
      for (let i = 0; i < count; i += 1) {
        step(gap, () => this.append(jobId, 'token', { text: (i ? ' ' : '') + words[i % words.length] }));
      }
      step(gap, () => this.finish(jobId, 'succeeded', { text: '…', tokens: count }));
    } else if (job.type === 'research') {
      // Like workers/jobs/research.cpp: progress at each stage's start and end
      // (the job's overall fraction), two log lines per stage.
      const stages = job.params.stages ?? ['plan', 'gather', 'read', 'write'];
      const stageMs = Number(job.params.stage_ms) || 300;
      const n = stages.length;
      stages.forEach((stage, i) => {
        step(0, () => {
          this.append(jobId, 'progress', { fraction: i / n, stage, message: `stage ${i + 1} of ${n}: ${stage}` });
          this.append(jobId, 'log', { level: 'info', message: `working on ${stage} for ${job.params.topic}` });
        });
        step(stageMs / 2, () => this.append(jobId, 'log', { level: 'info', message: `${stage} complete` }));
        step(stageMs / 2, () => this.append(jobId, 'progress', { fraction: (i + 1) / n, stage, message: `finished ${stage}` }));
      });
      step(200, () => this.finish(jobId, 'succeeded', { summary: `A summary of ${job.params.topic ?? 'the topic'}.` }));
    } else if (job.type === 'exec') {
      const lines = [`$ ${job.params.command ?? ''} ${(job.params.args ?? []).join(' ')}`.trim(), 'line 1', 'line 2', 'line 3'];
      lines.forEach((message, i) => step(300, () => this.append(jobId, 'log', { level: i === 0 ? 'debug' : 'info', message })));
      step(100, () => this.finish(jobId, 'succeeded', { exit_code: 0 }));
    } else {
      step(500, () => {
        job.error = `no worker for type ${job.type}`;
        this.append(jobId, 'error', { message: job.error });
        this.append(jobId, 'state', { state: 'failed', attempt: 1, reason: job.error });
      });
    }
    for (const [when, fn] of steps) {
      const timer = setTimeout(() => {
        entry.timers.delete(timer);
        fn();
      }, when);
      entry.timers.add(timer);
    }
  }
}

const LOREM =
  'Tides are the rise and fall of sea levels caused by the combined effects of the gravitational forces ' +
  'exerted by the Moon and the Sun and the rotation of the Earth. Most places in the ocean usually ' +
  'experience two high tides and two low tides each day, and the timing and amplitude depend on the ' +
  'shape of the coastline and the near-shore bathymetry.';

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

// `node tests/js/fake_broker.js [port]`: a simulated broker serving the UI.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const broker = await startFakeBroker({ port: Number(process.argv[2] ?? 8080), simulate: true, serveStatic: true });
  console.log(`fake broker with the web UI on ${broker.url}/`);
}
