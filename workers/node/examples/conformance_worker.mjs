// The SDK conformance worker (the same behaviour in every SDK, so the suite in
// tests/conformance/ compares their output byte for byte). Serves
// `conformance.count`: emits tokens "<i> " from its checkpoint up to `count`,
// with optional pauses, checkpoints, progress and a failure at a given token.
//
//   node workers/node/examples/conformance_worker.mjs --broker tcp://127.0.0.1:P1[,tcp://...]
//        --name NAME --capacity K [--heartbeat-ms MS] [--max-unacked N]
//
// Prints "ready" once started; exits 0 on SIGTERM after a graceful stop
// (running jobs are handed back).
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import { JobFailed, Worker } from '@jobcast/worker';

const { values } = parseArgs({
  options: {
    broker: { type: 'string' },
    name: { type: 'string' },
    capacity: { type: 'string', default: '1' },
    'heartbeat-ms': { type: 'string' },
    'max-unacked': { type: 'string' },
  },
});
if (!values.broker) {
  process.stderr.write('conformance_worker: --broker is required\n');
  process.exit(2);
}

const isInt = (value) => Number.isSafeInteger(value);
const optionalInt = (params, field, fallback) => {
  const value = params[field] ?? fallback;
  if (!isInt(value)) throw new JobFailed(`params.${field} must be an integer`, { retryable: false });
  return value;
};

async function count(job) {
  const params = job.params;
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw new JobFailed('params must be an object with an integer "count"', { retryable: false });
  }
  const total = params.count;
  if (!isInt(total) || total < 0 || total > 1_000_000) {
    throw new JobFailed('params "count" must be an integer from 0 to 1000000', { retryable: false });
  }
  const everyMs = optionalInt(params, 'every_ms', 0);
  const checkpointEvery = optionalInt(params, 'checkpoint_every', 0);
  const progressEvery = optionalInt(params, 'progress_every', 0);
  const failAt = params.fail_at ?? null;
  const start = job.checkpoint ? Number.parseInt(job.checkpoint.toString('ascii'), 10) || 0 : 0;

  for (let i = start; i < total; i++) {
    if (job.cancelled) break;
    if (failAt === i) {
      throw new JobFailed(params.message ?? `failed at ${failAt}`, { retryable: params.retryable === true });
    }
    await job.token(`${i} `);
    if (progressEvery > 0 && (i + 1) % progressEvery === 0) await job.progress((i + 1) / total);
    if (checkpointEvery > 0 && (i + 1) % checkpointEvery === 0) await job.saveCheckpoint(String(i + 1));
    if (everyMs > 0) await sleep(everyMs, undefined, { signal: job.signal }).catch(() => {});
  }
  return { count: total, start };
}

/** @type {import('@jobcast/worker').WorkerOptions} */
const options = {
  brokers: values.broker.split(','),
  capacity: Number(values.capacity),
  types: ['conformance.count'],
};
if (values.name) options.name = values.name;
if (values['max-unacked']) options.maxUnackedBytes = Number(values['max-unacked']);
if (values['heartbeat-ms']) options.heartbeatMs = Number(values['heartbeat-ms']);

const worker = new Worker(options).handle('conformance.count', count);
process.once('SIGTERM', () => worker.stop({ handBack: true }));
process.once('SIGINT', () => worker.stop({ handBack: true }));
const running = worker.run();
process.stdout.write('ready\n');
await running;
process.exit(0);
