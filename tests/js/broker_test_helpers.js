// Starts the real jobcast binaries for JavaScript tests against a live broker
// (tests/js/broker.test.js): each on loopback with ephemeral ports, stderr
// collected line by line, and every process killed when the test process
// exits even if a test forgot to.
//
//   const broker = await startBroker({ bin: 'build/test/bin', db: '/tmp/x/jobcast.db' });
//   const worker = await startWorker({ bin, zmq: broker.zmq, types: ['llm.generate'] });
//   const client = new JobcastClient({ url: broker.url, WebSocket });
//   ...
//   await worker.kill(); await broker.kill();

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const LISTENING = /listening http=(\S+) zmq=(\S+)/;
const running = new Set();
const tempDirs = new Set();

// Children run in their own process group (so a worker's exec jobs die with
// it); kill any still alive, and remove the temp dirs, when the test process
// ends — normally, or by a signal (a test runner's timeout, Ctrl-C), which
// would skip 'exit' handlers.
function cleanUp() {
  for (const child of running) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    cleanUp();
    process.kill(process.pid, signal); // the default action, now that our handler is gone
  });
}

/**
 * A fresh directory under the system temp dir (for a broker's db, a browser
 * profile), removed when the test process exits.
 * @param {string} [prefix]
 * @returns {string}
 */
export function makeTempDir(prefix = 'jobcast-js-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/**
 * A started binary: its stderr lines, a way to wait for one, and kill().
 * @typedef {object} ManagedProcess
 * @property {import('node:child_process').ChildProcess} child
 * @property {number} pid
 * @property {() => string} output everything it wrote to stderr (and stdout, when read) so far
 * @property {(pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>} waitForLine
 * @property {Promise<{code: number|null, signal: string|null}>} exited
 * @property {(signal?: NodeJS.Signals) => Promise<{code: number|null, signal: string|null}>} kill
 *   sends `signal` (SIGTERM by default, SIGKILL after 10 s) to the process group; resolves on exit
 */

/**
 * Its lines are what it writes to stderr, and to stdout too with `stdout`.
 * @returns {ManagedProcess}
 */
function launch(file, args, { env = {}, name = file, stdout = false } = {}) {
  const child = spawn(file, args, {
    stdio: ['ignore', stdout ? 'pipe' : 'ignore', 'pipe'],
    env: { ...process.env, ...env },
    detached: true, // own process group: kill(-pid) reaches its children too
  });
  running.add(child);
  const lines = [];
  const waiters = new Set();
  let exitInfo = null;

  const exited = new Promise((resolve) => {
    const done = (code, signal) => {
      if (exitInfo) return;
      exitInfo = { code, signal };
      running.delete(child);
      resolve(exitInfo);
    };
    child.on('exit', done);
    child.on('error', (err) => {
      lines.push(`[${name}: ${err.message}]`);
      // A binary that could not be started never emits 'exit'.
      if (child.pid === undefined) done(null, null);
      for (const w of [...waiters]) w.check(true);
    });
  });
  for (const stream of stdout ? [child.stdout, child.stderr] : [child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      for (const w of [...waiters]) w.check();
    });
  }
  exited.then(() => {
    // Let the last stderr lines arrive before failing the waiters.
    setTimeout(() => {
      for (const w of [...waiters]) w.check(true);
    }, 50);
  });

  const tail = () => lines.slice(-40).join('\n');

  function waitForLine(pattern, timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      let seen = 0;
      const waiter = {
        check(ended = false) {
          for (; seen < lines.length; seen++) {
            const match = pattern.exec(lines[seen]);
            if (match) {
              finish();
              resolve(match);
              return;
            }
          }
          if (ended || (exitInfo && child.stderr.readableEnded)) {
            finish();
            reject(new Error(`${name} exited (${JSON.stringify(exitInfo)}) before logging ${pattern}:\n${tail()}`));
          }
        },
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${name} did not log ${pattern} within ${timeoutMs} ms:\n${tail()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(waiter);
      };
      waiters.add(waiter);
      waiter.check(child.exitCode !== null || child.signalCode !== null);
    });
  }

  function kill(signal = 'SIGTERM') {
    if (exitInfo) return Promise.resolve(exitInfo);
    const send = (sig) => {
      try {
        process.kill(-child.pid, sig);
      } catch {
        try {
          child.kill(sig);
        } catch {
          // already gone
        }
      }
    };
    send(signal);
    const escalate = signal === 'SIGKILL' ? null : setTimeout(() => send('SIGKILL'), 10_000);
    return exited.finally(() => clearTimeout(escalate));
  }

  return { child, pid: child.pid, output: () => lines.join('\n'), waitForLine, exited, kill };
}

/**
 * Starts `${bin}/jobcast-broker --http 127.0.0.1:0 --zmq tcp://127.0.0.1:0 --db <db>`
 * (or `--store <store>`) and resolves once it logs `listening http=… zmq=…`.
 *
 * @param {object} options
 * @param {string} options.bin folder with the binaries (e.g. build/test/bin)
 * @param {string} [options.db] SQLite database path (a fresh temp file per test)
 * @param {string} [options.store] a --store URL instead of `db` (e.g. startRedisCluster's `store`)
 * @param {string} [options.http] listen address HOST:PORT (default 127.0.0.1:0); a fixed
 *   one lets a test restart the broker where its clients and workers will look for it
 * @param {string} [options.zmq] worker endpoint (default tcp://127.0.0.1:0)
 * @param {string[]} [options.args] extra flags (e.g. ['--jwt-secret', 's', '--heartbeat', '200ms'])
 * @param {Record<string, string>} [options.env]
 * @param {number} [options.timeoutMs] how long to wait for the listening line
 * @returns {Promise<ManagedProcess & {http: string, zmq: string, url: string}>}
 *   `http` is 'host:port', `url` is 'http://host:port', `zmq` the worker endpoint
 */
export async function startBroker({
  bin,
  db,
  store,
  http = '127.0.0.1:0',
  zmq = 'tcp://127.0.0.1:0',
  args = [],
  env,
  timeoutMs = 30_000,
}) {
  if (!bin || !(db || store)) throw new TypeError('startBroker: bin and db (or store) are required');
  const proc = launch(
    join(bin, 'jobcast-broker'),
    ['--http', http, '--zmq', zmq, ...(store ? ['--store', store] : ['--db', db]), ...args],
    { env, name: 'jobcast-broker' },
  );
  try {
    const [, actualHttp, actualZmq] = await proc.waitForLine(LISTENING, timeoutMs);
    return { ...proc, http: actualHttp, zmq: actualZmq, url: `http://${actualHttp}` };
  } catch (err) {
    await proc.kill('SIGKILL');
    throw err;
  }
}

/**
 * Starts `${bin}/jobcast-worker --broker <zmq> --types <types> --capacity <n> [--name <name>]`.
 * Resolves once the process is running (not once the broker has accepted it:
 * poll the broker, e.g. GET /metrics jobcast_workers, or just submit — queued
 * jobs wait for a worker).
 *
 * @param {object} options
 * @param {string} options.bin folder with the binaries
 * @param {string} options.zmq the broker's ZeroMQ endpoint (startBroker's `zmq`)
 * @param {string[]|string} [options.types] job types (array or comma list)
 * @param {string} [options.name] worker name (shown in job JSON and state events)
 * @param {number} [options.capacity] concurrent jobs
 * @param {string[]} [options.args] extra flags (e.g. ['--exec-allow', 'echo,seq'])
 * @param {Record<string, string>} [options.env]
 * @returns {Promise<ManagedProcess>}
 */
export async function startWorker({
  bin,
  zmq,
  types = ['llm.generate', 'research', 'exec'],
  name,
  capacity = 4,
  args = [],
  env,
}) {
  if (!bin || !zmq) throw new TypeError('startWorker: bin and zmq are required');
  const typeList = Array.isArray(types) ? types.join(',') : types;
  const argv = ['--broker', zmq, '--types', typeList, '--capacity', String(capacity)];
  if (name) argv.push('--name', name);
  const proc = launch(join(bin, 'jobcast-worker'), [...argv, ...args], { env, name: name ?? 'jobcast-worker' });
  await new Promise((resolve, reject) => {
    proc.child.once('spawn', resolve);
    proc.child.once('error', reject);
  });
  return proc;
}

/**
 * Starts a Redis Cluster on loopback with scripts/redis_cluster.py (Debian's
 * redis-tools; the strict layout by default: 3 primaries with a replica each)
 * and resolves once it prints its --store URL. As in scripts/cluster.sh, a node
 * killed by hand starts again once the cluster has marked it failed; the
 * script logs `redis HOST:PORT started again`.
 *
 * @param {object} options
 * @param {string} options.dir where the nodes keep their data; node-PORT/redis.pid holds each pid
 * @param {number} [options.nodeTimeoutMs] cluster-node-timeout
 * @param {number} [options.timeoutMs] how long to wait for the cluster
 * @returns {Promise<ManagedProcess & {store: string, ports: number[]}>}
 *   `store` is the redis-cluster:// URL, `ports` every node's port
 */
export async function startRedisCluster({ dir, nodeTimeoutMs = 2000, timeoutMs = 120_000 }) {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'redis_cluster.py');
  const proc = launch('/usr/bin/python3', ['-u', script, '--dir', dir, '--node-timeout-ms', String(nodeTimeoutMs)], {
    name: 'redis_cluster.py',
    stdout: true,
  });
  try {
    const [store, seeds] = await proc.waitForLine(/^redis-cluster:\/\/(\S+)$/, timeoutMs);
    return { ...proc, store, ports: seeds.split(',').map((address) => Number(address.split(':').at(-1))) };
  } catch (err) {
    await proc.kill('SIGKILL');
    throw err;
  }
}

/**
 * A loopback TCP port that was free a moment ago (bound to port 0, then
 * released), for a broker that must come back on the same address after a
 * restart. Another process could take it in between; on loopback in a test
 * run that does not happen in practice.
 * @returns {Promise<number>}
 */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Polls `predicate` (sync or async) every `intervalMs` until it returns a truthy
 * value, which it resolves with; rejects with `what` after `timeoutMs`.
 * @template T
 * @param {() => T | Promise<T>} predicate
 * @param {{what?: string, timeoutMs?: number, intervalMs?: number}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(predicate, { what = 'condition', timeoutMs = 20_000, intervalMs = 10 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
