// A job's log read with the Durable Streams client (@durable-streams/client)
// as /v1/streams/jobs/{id}: followed live over SSE while the job runs, the
// broker killed with SIGKILL and restarted on the same port and database,
// the read resumed from the saved offset (long-poll), and what the client
// reassembled is exactly the job's stored log. Also: appends to a job's
// stream are refused, an HTTP producer's retries are stored once, and a
// stream created again under a gone one's name shows a reader nothing old.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { DurableStream, IdempotentProducer, stream } from '@durable-streams/client';
import { freePort, makeTempDir, startBroker, startWorker } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
if (!existsSync(join(BIN, 'jobcast-broker')) || !existsSync(join(BIN, 'jobcast-worker'))) {
  throw new Error(`no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`);
}

const processes = [];
afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.kill('SIGKILL')));
});

async function waitFor(predicate, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function storedLog(url, job) {
  const response = await fetch(`${url}/v1/jobs/${job}/events?after=0&limit=10000`);
  expect(response.status).toBe(200);
  return (await response.json()).events;
}

test('follow a job live, survive a broker SIGKILL, resume from the saved offset', async () => {
  const http = `127.0.0.1:${await freePort()}`;
  const zmq = `tcp://127.0.0.1:${await freePort()}`;
  const db = join(makeTempDir('jobcast-ds-client-'), 'jobcast.db');
  let broker = await startBroker({ bin: BIN, db, http, zmq });
  processes.push(broker);
  const worker = await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'] });
  processes.push(worker);

  // 300 tokens at 50/s: about 6 s of output to follow across the restart.
  const submitted = await fetch(`${broker.url}/v1/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      type: 'llm.generate',
      params: { prompt: 'durable streams', max_tokens: 300, tokens_per_second: 50, seed: 5 },
    }),
  });
  expect(submitted.status).toBe(201);
  const job = (await submitted.json()).id;
  const url = `${broker.url}/v1/streams/jobs/${job}`;

  // Live over SSE until a few dozen events arrived; the offset is saved per batch.
  const received = [];
  let saved = '-1';
  const controller = new AbortController();
  const live = await stream({ url, offset: saved, live: 'sse', signal: controller.signal });
  live.subscribeJson((batch) => {
    received.push(...batch.items);
    saved = batch.offset;
  });
  await waitFor(() => received.length >= 30, '30 events over SSE');
  controller.abort();
  const seenBefore = received.length;
  expect(received.map((e) => e.seq)).toEqual(received.map((_, i) => i + 1));
  expect(Number(saved)).toBe(received.at(-1).seq); // the offset is the seq

  await broker.kill('SIGKILL');
  broker = await startBroker({ bin: BIN, db, http, zmq });
  processes.push(broker);

  // Resume where the saved offset says, until the job's stream is closed.
  const rest = await stream({ url, offset: saved, live: 'long-poll' });
  let closed = false;
  rest.subscribeJson((batch) => {
    received.push(...batch.items);
    if (batch.streamClosed) closed = true;
  });
  await waitFor(() => closed, 'the job to finish and its stream to close', 60_000);
  rest.cancel();

  const log = await storedLog(broker.url, job);
  expect(received.length).toBeGreaterThan(seenBefore);
  expect(received).toEqual(log);
  expect(log.at(-1)).toMatchObject({ kind: 'state', data: { state: 'succeeded' } });
}, 120_000);

test('a job stream refuses appends; an HTTP producer retries exactly once into a stream', async () => {
  const broker = await startBroker({
    bin: BIN,
    db: join(makeTempDir('jobcast-ds-client-'), 'jobcast.db'),
  });
  processes.push(broker);
  const refused = await fetch(`${broker.url}/v1/streams/jobs/any`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: '{"kind":"token"}',
  });
  expect(refused.status).toBe(405);

  const url = `${broker.url}/v1/streams/progress/build-42`;
  const handle = await DurableStream.create({ url, contentType: 'application/json' });
  const producer = new IdempotentProducer(handle, 'builder-1', { epoch: 0 });
  for (let step = 1; step <= 5; step++) producer.append(JSON.stringify({ step }));
  await producer.flush();
  // A retry of seq 0 (as after a lost answer) is a duplicate: nothing stored twice.
  const retry = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'Producer-Id': 'builder-1',
      'Producer-Epoch': '0',
      'Producer-Seq': '0',
    },
    body: '{"step":1}',
  });
  expect(retry.status).toBe(204);
  const read = await stream({ url, offset: '-1', live: false });
  expect(await read.json()).toEqual([1, 2, 3, 4, 5].map((step) => ({ step })));
}, 60_000);

test('a stream created again after a delete or expiry: an old reader never keeps the old data', async () => {
  const broker = await startBroker({
    bin: BIN,
    db: join(makeTempDir('jobcast-ds-client-'), 'jobcast.db'),
  });
  processes.push(broker);
  const url = `${broker.url}/v1/streams/chat/session-1`;
  const create = (headers = {}) =>
    fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/json', ...headers } });
  const append = (messages) =>
    fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(messages),
    });
  const old = [{ old: 1 }, { old: 2 }, { old: 3 }];
  const fresh = [{ new: 1 }, { new: 2 }, { new: 3 }];
  for (const end of ['delete', 'expire']) {
    expect((await create(end === 'expire' ? { 'Stream-TTL': '1' } : {})).status).toBe(201);
    expect((await append(old)).status).toBe(204);
    const first = await fetch(`${url}?offset=-1`);
    expect(await first.json()).toEqual(old);
    const tag = first.headers.get('etag');
    if (end === 'delete') {
      expect((await fetch(url, { method: 'DELETE' })).status).toBe(204);
    } else {
      // A HEAD does not keep it alive: it expires a second after the read.
      const deadline = Date.now() + 10_000;
      while ((await fetch(url, { method: 'HEAD' })).status !== 404) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    // The same name, as many messages: the reader's cached answer is not this
    // stream's, so its ETag is answered with the new messages, never 304.
    expect((await create()).status).toBe(201);
    expect((await append(fresh)).status).toBe(204);
    const again = await fetch(`${url}?offset=-1`, { headers: { 'If-None-Match': tag } });
    expect(again.status).toBe(200);
    expect(again.headers.get('etag')).not.toBe(tag);
    expect(await again.json()).toEqual(fresh);
    expect((await fetch(url, { method: 'DELETE' })).status).toBe(204);
  }
}, 60_000);
