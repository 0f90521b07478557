// The Node worker SDK against a scripted broker (a ZeroMQ ROUTER in the test):
// garbage frames are counted and ignored, an unreadable assign is answered
// with a fail, heartbeats carry inflight and assigned, a reject counts only for
// the attempt it names, a "gap" reject and a move to the next broker of the
// list re-send what is unacknowledged byte for byte, and CURVE connects. Plus
// the pure parts: the reliable stream, the backoff, Z85 keys.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { decode, encode } from '@msgpack/msgpack';
import { Router, curveKeyPair } from 'zeromq';

import { JobFailed, Worker } from '@jobcast/worker';

import { isZ85Key, publicKeyOf, z85Decode, z85Encode } from '../src/curve.js';
import { MAX_CHUNKS_EVENTS } from '../src/protocol.js';
import { CHUNK, MESSAGE, ReliableStream, TERMINAL } from '../src/reliable_stream.js';
import { Backoff } from '../src/worker.js';
import { makeTempDir, memoryLogger, waitFor } from './helpers.mjs';

const OPTIONS = { timeout: 20_000 };

// A ROUTER that records what workers send and answers as the test says.
class ScriptedBroker {
  constructor(options = {}) {
    this.router = new Router({ linger: 0, ...options });
    this.received = []; // {peer, message (decoded), bytes}
  }

  async start() {
    await this.router.bind('tcp://127.0.0.1:*');
    this.endpoint = this.router.lastEndpoint;
    (async () => {
      try {
        for await (const [peer, bytes] of this.router) this.received.push({ peer, message: decode(bytes), bytes: Buffer.from(bytes) });
      } catch {
        // closed
      }
    })();
    return this;
  }

  /** The first message (from `from` on) that `match` accepts. */
  next(match, from = 0, what = 'a message') {
    return waitFor(() => this.received.slice(from).find((entry) => match(entry.message)), { what, timeoutMs: 5000 });
  }

  async send(peer, message) {
    await this.router.send([peer, message instanceof Uint8Array ? message : encode({ v: 1, ...message })]);
  }

  close() {
    this.router.close();
  }
}

const welcome = (heartbeatMs = 1000) => ({ t: 'welcome', heartbeat_ms: heartbeatMs });
const assign = (job, attempt = 1, type = 'echo', params = {}) => ({ t: 'assign', job, attempt, type, params });
const isType = (type, extra = () => true) => (message) => message.t === type && extra(message);

function startWorker(t, brokers, handlers, options = {}) {
  const logger = memoryLogger();
  const worker = new Worker({ brokers, name: 'scripted', logger, shutdownGraceMs: 100, ...options });
  for (const [type, handler] of Object.entries(handlers)) worker.handle(type, handler);
  const running = worker.run();
  t.after(() => worker.stop({ handBack: true }));
  return { worker, running, logger };
}

async function startBroker(t, options) {
  const broker = await new ScriptedBroker(options).start();
  t.after(() => broker.close());
  return broker;
}

test('garbage frames from the broker are counted and ignored; an unreadable assign is answered with a fail', OPTIONS, async (t) => {
  const broker = await startBroker(t);
  const { worker } = startWorker(t, [broker.endpoint], {
    echo: async (job) => {
      await job.token(job.params.text);
      return { ok: true };
    },
  });
  const { peer, message: hello } = await broker.next(isType('hello'));
  assert.deepEqual([hello.worker, hello.types, hello.capacity, hello.inflight], ['scripted', ['echo'], 1, []]);
  const garbage = [
    Buffer.from('not msgpack at all \xff\xfe'),
    Buffer.alloc(0),
    encode([1, 2, 3]),
    encode({ v: 2, t: 'welcome', heartbeat_ms: 10 }),
    encode({ v: 1, t: 'launch' }),
    encode({ v: 1, t: 'ack', job: 'j', attempt: 'one', wseq: 1 }),
    encode({ v: 1, t: 'assign', job: 'j-bad', attempt: 1, type: 'echo', params: 'not a map' }),
  ];
  for (const frame of garbage) await broker.send(peer, frame);
  await broker.send(peer, welcome());
  await broker.send(peer, assign('j-1', 1, 'echo', { text: 'hi' }));
  const failed = await broker.next(isType('fail', (m) => m.job === 'j-bad'));
  assert.equal(failed.message.retryable, false);
  assert.match(failed.message.error, /cannot decode the assign/);
  const token = await broker.next(isType('chunk', (m) => m.job === 'j-1'));
  assert.deepEqual([token.message.kind, token.message.data, token.message.wseq, token.message.attempt], ['token', { text: 'hi' }, 1, 1]);
  assert.ok(Number.isSafeInteger(token.message.ts) && token.message.ts > 1.6e15, 'ts in unix microseconds');
  const done = await broker.next(isType('done', (m) => m.job === 'j-1'));
  assert.deepEqual([done.message.wseq, done.message.result], [2, { ok: true }]);
  assert.equal(worker.stats().badMessages, garbage.length);
});

test('heartbeats carry inflight and assigned; a reject counts only for the attempt it names', OPTIONS, async (t) => {
  const broker = await startBroker(t);
  let signal;
  const { worker } = startWorker(t, [broker.endpoint], {
    echo: async (job) => {
      signal = job.signal;
      await job.token('a');
      await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
      return {};
    },
  });
  const { peer } = await broker.next(isType('hello'));
  await broker.send(peer, welcome(50));
  await broker.send(peer, assign('j-2', 2));
  await broker.next(isType('chunk'));
  const beat = await broker.next(isType('heartbeat', (m) => m.inflight?.length === 1));
  assert.deepEqual(beat.message.inflight, [{ job: 'j-2', attempt: 2, next_wseq: 2 }]);
  assert.equal(beat.message.assigned, 1);

  await broker.send(peer, { t: 'reject', job: 'j-2', reason: 'lease', attempt: 1 });
  await broker.send(peer, { t: 'heartbeat' });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(signal.aborted, false, 'a reject of another attempt was honoured');
  await broker.send(peer, { t: 'reject', job: 'j-2', reason: 'lease', attempt: 2 });
  await waitFor(() => signal.aborted, { what: 'the handler to be cancelled' });
  assert.equal(worker.stats().jobsAbandoned, 1);
  const from = broker.received.length;
  const next = await broker.next(isType('heartbeat', (m) => m.inflight !== undefined), from);
  assert.deepEqual(next.message.inflight, []);
});

test('a gap reject re-sends from the oldest unacknowledged message, byte for byte', OPTIONS, async (t) => {
  const broker = await startBroker(t);
  startWorker(t, [broker.endpoint], {
    echo: async (job) => {
      for (const text of ['a', 'b', 'c']) await job.token(text);
      await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
    },
  });
  const { peer } = await broker.next(isType('hello'));
  await broker.send(peer, welcome());
  await broker.send(peer, assign('j-3'));
  await broker.next(isType('chunk', (m) => m.wseq === 3));
  const first = broker.received.filter((e) => e.message.t === 'chunk');
  await broker.send(peer, { t: 'ack', job: 'j-3', attempt: 1, wseq: 1 });
  const from = broker.received.length;
  await broker.send(peer, { t: 'reject', job: 'j-3', reason: 'gap', attempt: 1 });
  await broker.next(isType('chunk', (m) => m.wseq === 3), from);
  const again = broker.received.slice(from).filter((e) => e.message.t === 'chunk');
  assert.deepEqual(again.map((e) => e.message.wseq), [2, 3]);
  assert.deepEqual(again.map((e) => e.bytes), first.slice(1).map((e) => e.bytes));
});

test('a silent broker: the worker moves to the next of its list and re-sends what is unacknowledged', OPTIONS, async (t) => {
  const silent = await startBroker(t);
  const next = await startBroker(t);
  const { worker } = startWorker(
    t,
    [silent.endpoint, next.endpoint],
    {
      echo: async (job) => {
        await job.token('kept');
        await job.saveCheckpoint('1');
        return { done: true };
      },
    },
    { reconnectMinMs: 10, reconnectMaxMs: 20 },
  );
  const { peer } = await silent.next(isType('hello'));
  await silent.send(peer, welcome(50));
  await silent.send(peer, assign('j-4'));
  await silent.next(isType('done'));
  const sent = silent.received.filter((e) => e.message.job === 'j-4');
  // No acks, no heartbeats: after 3 x 50 ms the worker gives up on it.
  const hello = await next.next(isType('hello'));
  assert.deepEqual(hello.message.inflight, [{ job: 'j-4', attempt: 1, next_wseq: 4 }]);
  await next.next(isType('done'));
  const resent = next.received.filter((e) => e.message.job === 'j-4');
  assert.deepEqual(resent.map((e) => e.bytes), sent.map((e) => e.bytes));
  assert.deepEqual(resent.map((e) => e.message.t), ['chunk', 'checkpoint', 'done']);
  await next.send(hello.peer, welcome());
  await next.send(hello.peer, { t: 'ack', job: 'j-4', attempt: 1, wseq: 3 });
  await waitFor(() => worker.stats().unackedBytes === 0 && worker.stats().connected, { what: 'the acks' });
  assert.equal(worker.stats().reconnects, 1);
  assert.equal(worker.stats().broker, next.endpoint);
});

test('cancel from the broker: the signal aborts and the attempt ends with fail "cancelled"', OPTIONS, async (t) => {
  const broker = await startBroker(t);
  startWorker(t, [broker.endpoint], {
    echo: async (job) => {
      await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
      return { ignored: true };
    },
  });
  const { peer } = await broker.next(isType('hello'));
  await broker.send(peer, welcome());
  await broker.send(peer, assign('j-5'));
  await broker.next(isType('heartbeat', (m) => m.assigned === 1));
  await broker.send(peer, { t: 'cancel', job: 'j-5' });
  const fail = await broker.next(isType('fail'));
  assert.deepEqual([fail.message.error, fail.message.retryable, fail.message.wseq], ['cancelled', false, 1]);
});

test('what a handler emits after it returned is dropped, not sent after its done', OPTIONS, async (t) => {
  const broker = await startBroker(t);
  let late;
  const { worker } = startWorker(t, [broker.endpoint], {
    echo: async (job) => {
      late = new Promise((resolve) => setTimeout(() => resolve(job.token('late')), 20));
      return {};
    },
  });
  const { peer } = await broker.next(isType('hello'));
  await broker.send(peer, welcome());
  await broker.send(peer, assign('j-late'));
  const done = await broker.next(isType('done'));
  await late;
  await broker.send(peer, { t: 'ack', job: 'j-late', attempt: 1, wseq: done.message.wseq });
  await waitFor(() => worker.stats().unackedBytes === 0, { what: 'the ack' });
  assert.deepEqual(broker.received.filter((e) => e.message.job === 'j-late').map((e) => e.message.t), ['done']);
});

test('output over the bound waits for acks; stop({handBack: false}) lets running jobs finish', OPTIONS, async (t) => {
  const broker = await startBroker(t);
  let emitted = 0;
  const { worker, running } = startWorker(
    t,
    [broker.endpoint],
    {
      echo: async (job) => {
        for (let i = 0; i < 10; i++) {
          await job.token('x'.repeat(100));
          emitted++;
        }
        return {};
      },
    },
    { maxUnackedBytes: 300 },
  );
  const { peer } = await broker.next(isType('hello'));
  await broker.send(peer, welcome());
  await broker.send(peer, assign('j-6'));
  await waitFor(() => worker.stats().emitWaits > 0, { what: 'an emit that waits' });
  assert.ok(emitted < 4, `emitted ${emitted} while nothing was acknowledged`);
  const stopped = worker.stop({ handBack: false });
  for (let wseq = 1; wseq <= 11; wseq++) {
    await broker.next(isType(wseq === 11 ? 'done' : 'chunk', (m) => m.wseq === wseq));
    await broker.send(peer, { t: 'ack', job: 'j-6', attempt: 1, wseq });
  }
  await stopped;
  await running;
  assert.equal(emitted, 10);
  assert.equal(worker.stats().jobsSucceeded, 1);
});

test('a broker that stops reading: frames queue (bounded by maxUnackedBytes, not the socket) and arrive in order', { timeout: 60_000 }, async (t) => {
  const router = new Router({ linger: 0, receiveHighWaterMark: 10, receiveBufferSize: 4096 });
  await router.bind('tcp://127.0.0.1:*');
  t.after(() => router.close());
  const count = 130_000; // more than a socket queues by default (1,000)
  const { worker } = startWorker(t, [router.lastEndpoint], {
    echo: async (job) => {
      for (let i = 0; i < count; i++) await job.token('t');
    },
  }, { maxUnackedBytes: 64 << 20 });
  const [peer] = await router.receive();
  await router.send([peer, encode({ v: 1, ...welcome(60_000) })]);
  await router.send([peer, encode({ v: 1, ...assign('j-full') })]);
  await waitFor(() => worker.stats().jobsSucceeded === 1, { what: 'every token emitted', timeoutMs: 15_000 });
  let expected = 1;
  while (expected <= count) {
    const [, bytes] = await router.receive();
    const message = decode(bytes);
    if (message.t !== 'chunk') continue;
    assert.equal(message.wseq, expected, 'in wseq order, none lost');
    expected++;
  }
  assert.equal(worker.stats().messagesResent, 0);
});

test('CURVE: the worker connects with the broker key and its secret key file', OPTIONS, async (t) => {
  const server = curveKeyPair();
  const client = curveKeyPair();
  const broker = await startBroker(t, { curveServer: true, curveSecretKey: server.secretKey });
  const dir = makeTempDir('jobcast-node-curve-');
  const keyFile = join(dir, 'worker.key');
  writeFileSync(keyFile, `# jobcast CURVE secret key: keep it private\n${client.secretKey}\n`);
  writeFileSync(join(dir, 'broker.pub'), `# jobcast CURVE public key\n${server.publicKey}\n`);
  startWorker(t, [broker.endpoint], { echo: async () => ({}) }, { curveServerKey: join(dir, 'broker.pub'), curveSecretKeyFile: keyFile });
  const hello = await broker.next(isType('hello'));
  assert.equal(hello.message.worker, 'scripted');
  assert.throws(() => new Worker({ brokers: [broker.endpoint], curveServerKey: server.publicKey }), /both/);
});

test('config errors are thrown at construction or by run()', async () => {
  assert.throws(() => new Worker({ brokers: [] }), /brokers/);
  assert.throws(() => new Worker({ brokers: ['tcp://127.0.0.1:1'], capacity: 0 }), /capacity/);
  assert.throws(() => new Worker({ brokers: ['tcp://127.0.0.1:1'], name: 'a\nb' }), /name/);
  await assert.rejects(new Worker({ brokers: ['tcp://127.0.0.1:1'] }).run(), /no job types/);
  await assert.rejects(new Worker({ brokers: ['tcp://127.0.0.1:1'], types: ['x'] }).handle('y', () => ({})).run(), /no handler for job type 'x'/);
  await assert.rejects(new Worker({ brokers: ['nonsense'] }).handle('y', () => ({})).run(), /cannot connect to 'nonsense'/);
  assert.equal(new JobFailed('m').retryable, false);
  assert.equal(new JobFailed('m', { retryable: true }).retryable, true);
});

test('ReliableStream: cumulative acks settle an attempt; drops and old acks free nothing twice', () => {
  const stream = new ReliableStream();
  stream.reconnected();
  const attempt = stream.open('j', 1);
  for (let wseq = 1; wseq <= 3; wseq++) stream.push(attempt, wseq, new Uint8Array(10), wseq === 3 ? TERMINAL : MESSAGE);
  const sent = [];
  for (let frame = stream.nextFrame(); frame; frame = stream.nextFrame()) {
    sent.push(frame);
    stream.sent();
  }
  assert.equal(sent.length, 3);
  assert.deepEqual(stream.ack('j', 2, 3), { known: false, messages: 0, bytes: 0, settled: false });
  assert.deepEqual(stream.ack('j', 1, 1), { known: true, messages: 1, bytes: 10, settled: false });
  assert.deepEqual(stream.ack('j', 1, 1), { known: true, messages: 0, bytes: 0, settled: false });
  assert.equal(stream.reconnected(), 2, 'two sent frames go out again');
  assert.deepEqual(stream.inflight(), [{ job: 'j', attempt: 1, next_wseq: 1 }]);
  assert.deepEqual(stream.ack('j', 1, 3), { known: true, messages: 2, bytes: 20, settled: true });
  assert.equal(stream.find('j'), undefined);
  const other = stream.open('k', 1);
  stream.push(other, 1, new Uint8Array(5), MESSAGE);
  assert.deepEqual(stream.drop('k'), { messages: 1, bytes: 5 });
  assert.equal(stream.push(other, 2, new Uint8Array(5), MESSAGE), false);
  assert.deepEqual(stream.reject('k', 0, 'lease', 0, 100), { answer: 'not_ours' });
});

test('ReliableStream: chunks go out one by one, or together as one chunks once the broker announced it', () => {
  const stream = new ReliableStream();
  stream.reconnected();
  const attempt = stream.open('j', 2);
  const drain = () => {
    const out = [];
    for (let frame = stream.nextFrame(); frame; frame = stream.nextFrame()) {
      out.push(Buffer.from(frame));
      stream.sent();
    }
    return out;
  };
  const token = (text) => {
    const wseq = attempt.nextWseq++;
    stream.push(attempt, wseq, attempt.encoder.token(wseq, text), CHUNK);
  };
  token('a');
  stream.push(attempt, attempt.nextWseq, attempt.encoder.chunk(attempt.nextWseq++, 'log', { level: 'info', message: 'm' }), CHUNK);
  const single = drain().map((frame) => decode(frame));
  assert.deepEqual(
    single.map((m) => [m.t, m.job, m.attempt, m.wseq, m.kind, m.data]),
    [
      ['chunk', 'j', 2, 1, 'token', { text: 'a' }],
      ['chunk', 'j', 2, 2, 'log', { level: 'info', message: 'm' }],
    ],
  );
  assert.ok(single[0].ts > 1_600_000_000_000_000n || single[0].ts > 1_600_000_000_000_000);

  stream.batchChunks = true;
  for (const text of ['b', 'c', 'd']) token(text);
  stream.push(attempt, attempt.nextWseq++, Buffer.from('checkpoint'), MESSAGE);
  token('e');
  const frames = drain();
  assert.equal(frames.length, 3);
  const batch = decode(frames[0]);
  assert.deepEqual([batch.t, batch.wseq, batch.events.map((e) => e.data.text)], ['chunks', 3, ['b', 'c', 'd']]);
  assert.equal(frames[1].toString(), 'checkpoint');
  assert.equal(decode(frames[2]).t, 'chunk'); // alone: a plain chunk

  // A reconnect re-sends what is unacked, one chunk each until welcomed again;
  // then batched, each wseq once.
  stream.ack('j', 2, 3);
  assert.equal(stream.reconnected(), 4);
  assert.equal(stream.batchChunks, false);
  stream.batchChunks = true;
  const again = drain().filter((frame) => frame.toString() !== 'checkpoint').map((frame) => decode(frame));
  assert.deepEqual(again.map((m) => [m.t, m.wseq]), [['chunks', 4], ['chunk', 7]]);

  for (let i = 0; i < MAX_CHUNKS_EVENTS + 2; i++) token('t');
  const big = drain().map((frame) => decode(frame));
  assert.deepEqual(big.map((m) => m.events.length), [MAX_CHUNKS_EVENTS, 2]);
  assert.equal(big[1].wseq, 8 + MAX_CHUNKS_EVENTS);

  // Each event is cut from its frame whatever the size of its wseq.
  for (const wseq of [1, 200, 70_000, 2 ** 33]) {
    const frames = [0, 1, 2].map((i) => attempt.encoder.chunk(wseq + i, 'log', { level: 'info', message: `${i}` }));
    const m = decode(attempt.encoder.chunks(wseq, frames));
    assert.deepEqual([m.t, m.job, m.attempt, Number(m.wseq)], ['chunks', 'j', 2, wseq]);
    assert.deepEqual(
      m.events,
      frames.map((frame) => {
        const c = decode(frame);
        return { kind: c.kind, data: c.data, ts: c.ts };
      }),
    );
  }
});

test('Backoff draws each delay from [0, ceiling] with the ceiling doubling up to the max', () => {
  const highest = new Backoff(100, 1000, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5].map(() => highest.next()), [100, 200, 400, 800, 1000]);
  highest.reset();
  assert.equal(highest.next(), 100);
  assert.equal(new Backoff(100, 1000, () => 0).next(), 0);
});

test('Z85 keys: encode and decode round-trip, and the public key derives from the secret', () => {
  const pair = curveKeyPair();
  assert.ok(isZ85Key(pair.secretKey));
  assert.equal(z85Encode(z85Decode(pair.secretKey)), pair.secretKey);
  assert.equal(publicKeyOf(pair.secretKey), pair.publicKey);
  // The ZeroMQ RFC 32 test vector.
  assert.equal(z85Encode(Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b])), 'HelloWorld');
  assert.equal(isZ85Key('too short'), false);
});
