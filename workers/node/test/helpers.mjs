// Fixtures for the Node worker SDK's tests against the real broker
// (JOBCAST_BIN, as for tests/js; the broker is started by tests/js's helpers):
// the REST calls the tests make, and the SDK's example workers as processes.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { makeTempDir, startBroker } from '../../../tests/js/broker_test_helpers.js';

export { freePort, makeTempDir, startBroker, waitFor } from '../../../tests/js/broker_test_helpers.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = process.env.JOBCAST_BIN || join(ROOT, 'build/dev/bin');
const haveBroker = existsSync(join(BIN, 'jobcast-broker'));
if (process.env.JOBCAST_BIN && !haveBroker) throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker`);
/** The `skip` option of tests that need the broker binary. */
export const needsBroker = haveBroker ? false : `no jobcast-broker in ${BIN} (build first, or set JOBCAST_BIN)`;

/** Heartbeats of 200 ms: leases lapse after 600 ms of silence. */
export const HEARTBEAT_MS = 200;
export const BROKER_ARGS = ['--heartbeat', `${HEARTBEAT_MS}ms`, '--liveness', '3'];

/** A broker on loopback with fast heartbeats (or `heartbeatMs`) and a fresh database. */
export function startTestBroker({ db = join(makeTempDir('jobcast-node-'), 'jobcast.db'), http, zmq, heartbeatMs } = {}) {
  const args = heartbeatMs ? ['--heartbeat', `${heartbeatMs}ms`, '--liveness', '3'] : BROKER_ARGS;
  return startBroker({ bin: BIN, db, http, zmq, args }).then((broker) => ({ ...broker, db }));
}

/** A quiet logger that keeps what the worker logged, for failure messages. */
export function memoryLogger() {
  const lines = [];
  const add = (level) => (message) => lines.push(`${level} ${message}`);
  return { lines, debug: add('debug'), info: add('info'), warn: add('warn'), error: add('error') };
}

async function request(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export const submit = (broker, type, params, extra = {}) => request(broker.url, 'POST', '/v1/jobs', { type, params, ...extra });
export const getJob = (broker, id) => request(broker.url, 'GET', `/v1/jobs/${id}`);
export const cancelJob = (broker, id) => request(broker.url, 'POST', `/v1/jobs/${id}/cancel`);

/**
 * Every event of a job, read as a client does (long-polling after the last
 * seq seen) until `until(events)` holds or the job is done; fails on a hole or
 * a repeat in the seqs.
 */
export async function readEvents(broker, id, { until = () => false, timeoutMs = 30_000 } = {}) {
  const events = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const after = events.length ? events[events.length - 1].seq : 0;
    const page = await request(broker.url, 'GET', `/v1/jobs/${id}/events?after=${after}&wait=1`);
    for (const event of page.events) {
      const expected = (events.length ? events[events.length - 1].seq : 0) + 1;
      if (event.seq !== expected) throw new Error(`job ${id}: event seq ${event.seq}, expected ${expected}`);
      events.push(event);
    }
    if (page.done || until(events)) return events;
    if (Date.now() > deadline) throw new Error(`job ${id}: not done within ${timeoutMs} ms; last events ${JSON.stringify(events.slice(-3))}`);
  }
}

/** The token texts of `events` (in seq order). */
export const tokens = (events) => events.filter((e) => e.kind === 'token').map((e) => e.data.text);

/** The texts "<i> " for i in [from, to): what the conformance worker emits. */
export const counting = (from, to) => Array.from({ length: to - from }, (_, k) => `${from + k} `);

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Starts one of the SDK's example workers (`node examples/<file> ...args`) and
 * resolves once it printed "ready" (the conformance worker) or immediately.
 */
export async function startNodeWorker(file, args, { env = {}, waitReady = true } = {}) {
  const child = spawn(process.execPath, [join(ROOT, 'workers/node/examples', file), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.add(child);
  const lines = [];
  createInterface({ input: child.stderr }).on('line', (line) => lines.push(line));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    children.delete(child);
    resolve({ code, signal });
  }));
  const stdout = createInterface({ input: child.stdout });
  if (waitReady) {
    await new Promise((resolve, reject) => {
      stdout.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`${file} printed ${line}`))));
      exited.then((status) => reject(new Error(`${file} exited ${JSON.stringify(status)}: ${lines.join('\n')}`)));
    });
  }
  return {
    child,
    exited,
    output: () => lines.join('\n'),
    kill: (signal = 'SIGTERM') => {
      child.kill(signal);
      return exited;
    },
  };
}
