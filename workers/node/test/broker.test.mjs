// The Node worker SDK against the real broker (JOBCAST_BIN) on loopback:
// tokens reach clients exactly once and in order, across a broker killed with
// SIGKILL and restarted; emits wait while the broker is down; cancel reaches
// the handler within one heartbeat; failures keep their message and retry
// flag; bad params fail clearly while the worker keeps serving; a worker
// frozen past its lease cannot write into the job afterwards.
//
//   JOBCAST_BIN=build/test/bin node --test workers/node/test/broker.test.mjs

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decode, encode } from '@msgpack/msgpack';
import { JobFailed, Worker } from '@jobcast/worker';
import { Router } from 'zeromq';

import {
  HEARTBEAT_MS,
  cancelJob,
  counting,
  freePort,
  getJob,
  memoryLogger,
  needsBroker,
  readEvents,
  startNodeWorker,
  startTestBroker,
  submit,
  tokens,
  waitFor,
} from './helpers.mjs';

const OPTIONS = { skip: needsBroker, timeout: 30_000 };
const finalState = (events) => events.at(-1).data.state;
const running = (events, attempt) => events.findIndex((e) => e.kind === 'state' && e.data.state === 'running' && e.data.attempt === attempt);

// Runs `body` with a broker and kills everything after; on failure, the logs.
async function withBroker(t, body, brokerOptions) {
  const broker = await startTestBroker(brokerOptions);
  const logs = [() => `--- broker\n${broker.output()}`];
  t.after(() => broker.kill('SIGKILL'));
  try {
    await body(broker, logs);
  } catch (err) {
    for (const log of logs) for (const line of log().split('\n').slice(-60)) t.diagnostic(line);
    throw err;
  }
}

// An in-process worker serving `handlers`; stopped when the test ends.
function startWorker(t, broker, handlers, options = {}) {
  const logger = memoryLogger();
  const worker = new Worker({ brokers: [broker.zmq], capacity: 2, logger, heartbeatMs: HEARTBEAT_MS, ...options });
  for (const [type, handler] of Object.entries(handlers)) worker.handle(type, handler);
  const done = worker.run();
  t.after(() => worker.stop());
  return { worker, done, logger };
}

test('the ten-line worker streams tokens a client sees in order', OPTIONS, async (t) => {
  await withBroker(t, async (broker, logs) => {
    const worker = await startNodeWorker('hello.mjs', [], { env: { JOBCAST_BROKER: broker.zmq }, waitReady: false });
    logs.push(() => `--- worker\n${worker.output()}`);
    t.after(() => worker.kill('SIGKILL'));
    const job = await submit(broker, 'hello', { name: 'Ada' });
    const events = await readEvents(broker, job.id);
    assert.deepEqual(tokens(events), ['Hello', ',', ' ', 'Ada', '!']);
    assert.equal(finalState(events), 'succeeded');
    assert.deepEqual((await getJob(broker, job.id)).result, { greeted: 'Ada' });
    assert.deepEqual(await worker.kill('SIGTERM'), { code: 0, signal: null });
  });
});

test('a broker killed with SIGKILL and restarted mid-stream: tokens exactly once and in order', OPTIONS, async (t) => {
  const http = `127.0.0.1:${await freePort()}`;
  const zmq = `tcp://127.0.0.1:${await freePort()}`;
  await withBroker(
    t,
    async (first, logs) => {
      const worker = await startNodeWorker('conformance_worker.mjs', ['--broker', zmq, '--name', 'node-restart', '--capacity', '2', '--heartbeat-ms', String(HEARTBEAT_MS)]);
      logs.push(() => `--- worker\n${worker.output()}`);
      t.after(() => worker.kill('SIGKILL'));
      const job = await submit(first, 'conformance.count', { count: 400, every_ms: 4 });
      await readEvents(first, job.id, { until: (events) => tokens(events).length >= 80 });
      await first.kill('SIGKILL');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const second = await startTestBroker({ db: first.db, http, zmq });
      logs.push(() => `--- broker after restart\n${second.output()}`);
      t.after(() => second.kill('SIGKILL'));
      const events = await readEvents(second, job.id);
      assert.equal(finalState(events), 'succeeded');
      assert.deepEqual(tokens(events), counting(0, 400));
    },
    { http, zmq },
  );
});

test('token() waits while the broker is down and everything arrives after it returns', OPTIONS, async (t) => {
  const http = `127.0.0.1:${await freePort()}`;
  const zmq = `tcp://127.0.0.1:${await freePort()}`;
  await withBroker(
    t,
    async (first, logs) => {
      let emitted = 0;
      const { worker, logger } = startWorker(
        t,
        first,
        {
          burst: async (job) => {
            for (let i = 0; i < 2000; i++) {
              await job.token(`${i} `);
              emitted = i + 1;
            }
            return { emitted };
          },
        },
        { brokers: [zmq], maxUnackedBytes: 16 * 1024 },
      );
      logs.push(() => `--- worker\n${logger.lines.join('\n')}`);
      const job = await submit(first, 'burst', {});
      await readEvents(first, job.id, { until: (events) => tokens(events).length >= 10 });
      await first.kill('SIGKILL');
      // Acks stop: the handler fills the bound and waits, nothing is dropped.
      await waitFor(() => worker.stats().emitWaits > 0, { what: 'an emit that waits' });
      const stalled = emitted;
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(emitted, stalled, 'the handler went on while nothing was acknowledged');
      assert.ok(emitted < 2000);
      assert.ok(worker.stats().unackedBytes <= 16 * 1024 + 200);

      const second = await startTestBroker({ db: first.db, http, zmq });
      logs.push(() => `--- broker after restart\n${second.output()}`);
      t.after(() => second.kill('SIGKILL'));
      const events = await readEvents(second, job.id);
      assert.equal(finalState(events), 'succeeded');
      assert.deepEqual(tokens(events), counting(0, 2000));
    },
    { http, zmq },
  );
});

// The next message of one of `types` that satisfies `want`, from a ROUTER
// posing as a broker, by `deadline` (performance.now()).
async function nextFrom(router, types, deadline, want = () => true) {
  for (;;) {
    router.receiveTimeout = Math.max(1, Math.round(deadline - performance.now()));
    const [peer, frame] = await router.receive(); // rejects (EAGAIN) after the deadline
    const message = decode(frame);
    if (types.includes(message.t) && want(message)) return [peer, message];
  }
}

test("a killed broker's closed connection is left at once for the next broker of the list", OPTIONS, async (t) => {
  const next = new Router({ linger: 0 }); // the list's next broker
  await next.bind('tcp://127.0.0.1:*');
  t.after(() => next.close());
  await withBroker(
    t,
    async (broker, logs) => {
      const { logger } = startWorker(
        t,
        broker,
        {
          ticks: async (job) => {
            for (let i = 0; !job.cancelled; i++) {
              await job.token(`${i} `);
              await new Promise((resolve) => setTimeout(resolve, 10));
            }
            return {};
          },
        },
        { brokers: [broker.zmq, next.lastEndpoint], capacity: 1, heartbeatMs: 1000 },
      );
      logs.push(() => `--- worker\n${logger.lines.join('\n')}`);
      const job = await submit(broker, 'ticks', {});
      await readEvents(broker, job.id, { until: (events) => tokens(events).length >= 5 });

      await broker.kill('SIGKILL'); // its kernel closes the worker's connection
      const deadline = performance.now() + 1500; // well within 3 heartbeats of 1 s
      // (A hello from a failover before the job, on a slow start, lists nothing.)
      const [peer, hello] = await nextFrom(next, ['hello'], deadline, (m) => m.inflight.length > 0);
      assert.deepEqual(hello.inflight.map(({ job: id, attempt }) => [id, attempt]), [[job.id, 1]]);
      await next.send([peer, encode({ v: 1, t: 'welcome', heartbeat_ms: 1000 })]);
      const [, chunk] = await nextFrom(next, ['chunk', 'chunks'], deadline);
      assert.deepEqual([chunk.job, chunk.attempt], [job.id, 1]);
    },
    { heartbeatMs: 1000 }, // 3 s of silence before a worker leaves its broker
  );
});

test('cancel reaches the handler within one heartbeat and ends the job cancelled', OPTIONS, async (t) => {
  await withBroker(t, async (broker, logs) => {
    let abortedAt = 0;
    const { logger } = startWorker(t, broker, {
      forever: async (job) => {
        job.signal.addEventListener('abort', () => {
          abortedAt = performance.now();
        });
        for (let i = 0; !job.cancelled; i++) {
          await job.token(`${i} `);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        return {};
      },
    });
    logs.push(() => `--- worker\n${logger.lines.join('\n')}`);
    const job = await submit(broker, 'forever', {});
    await readEvents(broker, job.id, { until: (events) => tokens(events).length >= 5 });
    const cancelledAt = performance.now();
    await cancelJob(broker, job.id);
    const events = await readEvents(broker, job.id);
    assert.equal(finalState(events), 'cancelled');
    assert.ok(abortedAt > 0, 'the handler saw the cancel');
    assert.ok(abortedAt - cancelledAt <= HEARTBEAT_MS, `cancel took ${abortedAt - cancelledAt} ms`);
  });
});

test('JobFailed: a retryable failure is retried, a non-retryable one is final, both with their message', OPTIONS, async (t) => {
  await withBroker(t, async (broker, logs) => {
    const { logger } = startWorker(t, broker, {
      flaky: async (job) => {
        await job.token(`attempt ${job.attempt}`);
        throw new JobFailed(`flaky ${job.attempt}`, { retryable: job.params.retryable });
      },
      broken: async () => {
        throw new Error('a bug');
      },
    });
    logs.push(() => `--- worker\n${logger.lines.join('\n')}`);
    const retried = await submit(broker, 'flaky', { retryable: true }, { max_attempts: 2 });
    const final = await submit(broker, 'flaky', { retryable: false }, { max_attempts: 3 });
    const bug = await submit(broker, 'broken', {}, { max_attempts: 2 });
    for (const job of [retried, final, bug]) await readEvents(broker, job.id);
    const [a, b, c] = await Promise.all([retried, final, bug].map((job) => getJob(broker, job.id)));
    assert.deepEqual([a.state, a.attempt, a.error], ['failed', 2, 'flaky 2']);
    assert.deepEqual([b.state, b.attempt, b.error], ['failed', 1, 'flaky 1']);
    // Any other error is retryable, like the C++ SDK's exceptions.
    assert.deepEqual([c.state, c.attempt, c.error], ['failed', 2, 'a bug']);
  });
});

test('bad params fail the job clearly and the worker keeps serving', OPTIONS, async (t) => {
  await withBroker(t, async (broker, logs) => {
    const worker = await startNodeWorker('conformance_worker.mjs', ['--broker', broker.zmq, '--name', 'node-params', '--capacity', '1']);
    logs.push(() => `--- worker\n${worker.output()}`);
    t.after(() => worker.kill('SIGKILL'));
    const bad = await submit(broker, 'conformance.count', { count: 'ten' });
    await readEvents(broker, bad.id);
    const failed = await getJob(broker, bad.id);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.attempt, 1, 'not retried: the same params cannot succeed');
    assert.match(failed.error, /"count"/);
    const good = await submit(broker, 'conformance.count', { count: 5, progress_every: 5, checkpoint_every: 2 });
    const events = await readEvents(broker, good.id);
    assert.equal(finalState(events), 'succeeded');
    assert.deepEqual(tokens(events), counting(0, 5));
    assert.deepEqual((await getJob(broker, good.id)).result, { count: 5, start: 0 });
  });
});

test("a worker frozen (SIGSTOP) past its lease: the job resumes elsewhere and the zombie's later writes are rejected", OPTIONS, async (t) => {
  await withBroker(t, async (broker, logs) => {
    const zombie = await startNodeWorker('conformance_worker.mjs', ['--broker', broker.zmq, '--name', 'node-zombie', '--capacity', '1', '--heartbeat-ms', String(HEARTBEAT_MS)]);
    logs.push(() => `--- zombie\n${zombie.output()}`);
    t.after(() => zombie.kill('SIGKILL'));
    const job = await submit(broker, 'conformance.count', { count: 60, every_ms: 40, checkpoint_every: 10 }, { max_attempts: 3 });
    await readEvents(broker, job.id, { until: (events) => tokens(events).length >= 15 });
    zombie.child.kill('SIGSTOP');

    const heir = await startNodeWorker('conformance_worker.mjs', ['--broker', broker.zmq, '--name', 'node-heir', '--capacity', '1', '--heartbeat-ms', String(HEARTBEAT_MS)]);
    logs.push(() => `--- heir\n${heir.output()}`);
    t.after(() => heir.kill('SIGKILL'));
    await readEvents(broker, job.id, { until: (events) => running(events, 2) >= 0 });
    zombie.child.kill('SIGCONT');

    const events = await readEvents(broker, job.id);
    assert.equal(finalState(events), 'succeeded');
    const resumed = await getJob(broker, job.id);
    assert.equal(resumed.attempt, 2);
    // After the heir took over, only its tokens: from its checkpoint, once each, in order.
    const { start } = resumed.result;
    assert.ok(start >= 10, `resumed from checkpoint ${start}`);
    assert.deepEqual(tokens(events.slice(running(events, 2))), counting(start, 60));
    await waitFor(() => /job is no longer ours/.test(zombie.output()), { what: 'the zombie to learn it lost the job' });
  });
});

test('a handler schema is announced in hello: the broker refuses params that break it with 422', OPTIONS, async (t) => {
  await withBroker(t, async (broker) => {
    const schema = { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } };
    const greeter = new Worker({ brokers: [broker.zmq], capacity: 1, logger: memoryLogger(), heartbeatMs: HEARTBEAT_MS });
    greeter.handle('greet', async (job) => ({ greeted: job.params.name }), { schema });
    greeter.run();
    t.after(() => greeter.stop());
    await waitFor(async () => {
      const { types } = await (await fetch(`${broker.url}/v1/types`)).json();
      return types.some((entry) => entry.type === 'greet' && entry.schema);
    }, { what: 'the broker to know the schema of greet' });
    const refused = await fetch(`${broker.url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'greet', params: { name: 7 } }),
    });
    assert.equal(refused.status, 422);
    const body = await refused.json();
    assert.equal(body.error.code, 'invalid_params');
    assert.equal(body.error.field, '/name');
    const job = await submit(broker, 'greet', { name: 'Ada' });
    await readEvents(broker, job.id);
    assert.deepEqual((await getJob(broker, job.id)).result, { greeted: 'Ada' });
  });
});
