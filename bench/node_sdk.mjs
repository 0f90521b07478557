// How many events one Node worker process emits through the Node worker SDK
// (workers/node), counted once the broker has committed and acknowledged them,
// and the worker's CPU per event. By hand, not in CI:
//
//   cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release
//   cmake --build build/release --target jobcast-broker
//   node bench/node_sdk.mjs [--bin build/release/bin] [--events 300000] [--jobs 4]
//
// Starts a broker (its own temp database) and one worker process that serves
// `bench.tokens`: each job emits `events / jobs` tokens of 64 bytes as fast as
// job.token() lets it. The worker measures from its first assign until the
// broker has acknowledged every job's done, and its CPU time (user + system)
// over the same span; and the broker's CPU share (cores) while it ran. Prints
// one line of JSON.
//
// With --cpu-prof the worker runs under `node --cpu-prof` and leaves its
// profile in the current directory (open it in Chrome DevTools).

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { makeTempDir, startBroker } from '../tests/js/broker_test_helpers.js';

const { values } = parseArgs({
  options: {
    bin: { type: 'string', default: 'build/release/bin' },
    events: { type: 'string', default: '300000' },
    jobs: { type: 'string', default: '4' },
    'cpu-prof': { type: 'boolean', default: false },
    worker: { type: 'string' }, // internal: run as the worker, connected to this endpoint
  },
});
const events = Number(values.events);
const jobs = Number(values.jobs);
const TOKEN = 'x'.repeat(64);

async function runWorker(endpoint) {
  const { Worker } = await import('@jobcast/worker');
  const worker = new Worker({ brokers: [endpoint], capacity: jobs, name: 'bench-node', logger: { debug() {}, info() {}, warn: console.error, error: console.error } });
  let started = null;
  let cpu = null;
  worker.handle('bench.tokens', async (job) => {
    if (started === null) {
      started = performance.now();
      cpu = process.cpuUsage();
    }
    for (let i = 0; i < job.params.count; i++) await job.token(TOKEN);
    return { count: job.params.count };
  });
  const running = worker.run();
  process.stdout.write('ready\n');
  // Settled: every job's done acknowledged, nothing left waiting for an ack.
  await new Promise((resolve) => {
    const poll = setInterval(() => {
      const s = worker.stats();
      if (s.jobsSucceeded === jobs && s.unackedBytes === 0) {
        clearInterval(poll);
        resolve();
      }
    }, 1);
  });
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const stats = worker.stats();
  await worker.stop();
  await running;
  process.stdout.write(`${JSON.stringify({ seconds, cpu_us: used.user + used.system, stats })}\n`);
}

// A process's CPU time so far (user + system), from /proc (Linux; 100 ticks a second).
function brokerCpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function main() {
  const broker = await startBroker({ bin: values.bin, db: join(makeTempDir('jobcast-bench-node-'), 'jobcast.db') });
  try {
    const self = fileURLToPath(import.meta.url);
    const flags = values['cpu-prof'] ? ['--cpu-prof'] : [];
    const child = spawn(process.execPath, [...flags, self, '--worker', broker.zmq, '--events', String(events), '--jobs', String(jobs)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    if ((await lines.next()).value !== 'ready') throw new Error('the worker did not start');
    const brokerCpu = brokerCpuSeconds(broker.pid);
    const submitted = performance.now();
    const perJob = Math.ceil(events / jobs);
    for (let i = 0; i < jobs; i++) {
      const response = await fetch(`${broker.url}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'bench.tokens', params: { count: perJob } }),
      });
      if (!response.ok) throw new Error(`submit: ${response.status} ${await response.text()}`);
    }
    const result = JSON.parse((await lines.next()).value);
    const brokerShare = (brokerCpuSeconds(broker.pid) - brokerCpu) / ((performance.now() - submitted) / 1000);
    const total = perJob * jobs;
    console.log(
      JSON.stringify({
        sdk: 'node',
        node: process.version,
        events: total,
        jobs,
        token_bytes: TOKEN.length,
        seconds: Number(result.seconds.toFixed(3)),
        events_per_second: Math.round(total / result.seconds),
        worker_cpu_us_per_event: Number((result.cpu_us / total).toFixed(2)),
        worker_cpu_share: Number((result.cpu_us / 1e6 / result.seconds).toFixed(2)),
        broker_cpu_share: Number(brokerShare.toFixed(2)),
        messages_sent: result.stats.messagesSent,
        emit_waits: result.stats.emitWaits,
      }),
    );
  } finally {
    await broker.kill();
  }
}

if (values.worker) await runWorker(values.worker);
else await main();
