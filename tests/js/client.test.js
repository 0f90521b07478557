// Unit tests of web/client/jobcast.js against an in-memory fake broker
// (tests/js/fake_broker.js, a real WebSocket server from the `ws` package) and,
// where exact frame order matters, an in-memory WebSocket. No C++ broker needed:
// `node --test tests/js/client.test.js`.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { WebSocket } from 'ws';

import {
  JobcastClient,
  JobcastError,
  backoffDelay,
  isTerminalEvent,
} from '../../web/client/jobcast.js';
import { startFakeBroker } from './fake_broker.js';

// ---- fixtures -------------------------------------------------------------------

const cleanups = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()();
});

async function fakeBroker(options) {
  const broker = await startFakeBroker(options);
  cleanups.push(() => broker.stop());
  return broker;
}

/** A client with fast backoff, closed after the test. */
function newClient(options) {
  const client = new JobcastClient({ WebSocket, backoff: { initialMs: 5, maxMs: 40 }, ...options });
  cleanups.push(() => client.close());
  return client;
}

/** Polls `predicate` until truthy; fails the test after `ms`. */
async function until(predicate, what = 'condition', ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A port nothing listens on (bound, then released). */
async function unusedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function assertContiguous(seqs, from, to) {
  const expected = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  assert.deepEqual(seqs, expected, 'every seq exactly once, in order');
}

/**
 * An in-memory WebSocket the test plays the server for, frame by frame. The
 * client only uses onopen/onmessage/onclose/onerror, send, close and readyState.
 */
function memorySockets() {
  const sockets = [];
  class MemorySocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      sockets.push(this);
    }
    send(text) {
      this.sent.push(JSON.parse(text));
    }
    close(code = 1000, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      queueMicrotask(() => this.onclose?.({ code, reason }));
    }
    // ---- the server's side
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    receive(...frames) {
      for (const frame of frames) this.onmessage?.({ data: JSON.stringify(frame) });
    }
    drop(code = 1006) {
      this.readyState = 3;
      this.onclose?.({ code, reason: '' });
    }
  }
  return { MemorySocket, sockets };
}

const ev = (job, seq, kind = 'token', data = { text: `t${seq}` }) => ({ type: 'event', job, seq, kind, ts: seq, data });

// ---- URL and token ----------------------------------------------------------------

test('derives the WebSocket URL from the base URL and puts the token in access_token', async () => {
  const { MemorySocket, sockets } = memorySockets();
  const a = newClient({ url: 'https://jobs.example.test/prefix/', token: 'a.b.c', WebSocket: MemorySocket });
  const b = newClient({ url: 'http://127.0.0.1:8080', WebSocket: MemorySocket });
  await until(() => sockets.length === 2, 'two sockets');
  assert.equal(sockets[0].url, 'wss://jobs.example.test/prefix/v1/ws?access_token=a.b.c');
  assert.equal(sockets[1].url, 'ws://127.0.0.1:8080/v1/ws');
  assert.equal(a.url, 'https://jobs.example.test/prefix');
  assert.equal(b.url, 'http://127.0.0.1:8080');
});

test('without any WebSocket implementation the constructor says what to pass', () => {
  assert.throws(
    () => new JobcastClient({ url: 'http://127.0.0.1:1', WebSocket: undefined }),
    (err) => err instanceof JobcastError && err.code === 'no_websocket',
  );
  // REST-only use needs no WebSocket at all.
  const rest = new JobcastClient({ url: 'http://127.0.0.1:1', autoConnect: false });
  assert.equal(rest.state, 'closed');
});

// ---- connection states --------------------------------------------------------------

test('reports connection states: connecting, open, reconnecting after a restart, open, closed', async () => {
  const broker = await fakeBroker();
  const client = newClient({ url: broker.url });
  assert.equal(client.state, 'connecting');
  const seen = [];
  client.onStateChange((state, info) => seen.push({ state, info }));

  await until(() => client.state === 'open', 'open');
  broker.closeAll(1012, 'restart');
  await until(() => seen.length >= 3, 'reconnect');
  client.close();

  assert.deepEqual(seen.map((s) => s.state), ['open', 'reconnecting', 'open', 'closed']);
  assert.equal(seen[1].info.code, 1012);
  assert.equal(seen[1].info.attempt, 1);
  assert.ok(seen[1].info.delayMs >= 0 && seen[1].info.delayMs < 5);
  assert.equal(broker.connectionCount, 2);
});

test('close() stops reconnecting and ends subscriptions without onDone', async () => {
  const broker = await fakeBroker();
  const job = broker.createJob();
  const client = newClient({ url: broker.url });
  let done = 0;
  const sub = client.subscribe(job.id, { onDone: () => done++ });
  await until(() => client.state === 'open', 'open');
  client.close();
  assert.equal(client.state, 'closed');
  assert.equal(sub.active, false);
  await sleep(100);
  assert.equal(broker.connectionCount, 1, 'no reconnect after close()');
  assert.equal(done, 0);
});

// ---- resume: the product's promise -----------------------------------------------------

for (const { pack, overlap } of [
  { pack: 1, overlap: 0 },
  { pack: 1, overlap: 5 },
  { pack: 4, overlap: 3 },
  { pack: 16, overlap: 40 },
]) {
  test(`resumes after 1012 mid-stream with no gap and no duplicate (pack=${pack}, overlap=${overlap})`, async () => {
    const broker = await fakeBroker({ pack, overlap });
    const job = broker.createJob();
    for (let i = 0; i < 20; i++) broker.append(job.id, 'token', { text: `w${i} ` });

    const client = newClient({ url: broker.url });
    const seqs = [];
    let text = '';
    let done = null;
    client.subscribe(job.id, {
      onEvent: (e) => {
        seqs.push(e.seq);
        if (e.kind === 'token') text += e.data.text;
      },
      onDone: (e) => (done = e),
    });
    // What the client had when each connection dropped: its resume point.
    const deliveredAtDrop = [];
    client.onStateChange((state) => state === 'reconnecting' && deliveredAtDrop.push(seqs.length));

    // Stream live events while the broker restarts three times mid-stream.
    let produced = 20;
    const producer = setInterval(() => {
      if (produced < 300) broker.append(job.id, 'token', { text: `w${produced++} ` });
    }, 1);
    cleanups.push(() => clearInterval(producer));
    for (let drop = 0; drop < 3; drop++) {
      await until(() => seqs.length > 40 + drop * 60 && client.state === 'open', `events before drop ${drop}`);
      broker.closeAll(1012, 'restart');
      await until(() => deliveredAtDrop.length === drop + 1, 'reconnecting');
    }
    await until(() => produced >= 300, 'producer');
    clearInterval(producer);
    broker.finish(job.id, 'succeeded', { tokens: 300 });
    await until(() => done, 'onDone');

    const total = broker.events(job.id).length;
    assertContiguous(seqs, 1, total);
    assert.equal(text, Array.from({ length: 300 }, (_, i) => `w${i} `).join(''));
    assert.equal(done.data.state, 'succeeded');
    // Each reconnection asked for exactly what followed the last delivered event.
    assert.equal(broker.connectionCount, 4);
    for (let conn = 2; conn <= 4; conn++) {
      const subscribe = broker.opsOn(conn).find((op) => op.op === 'subscribe' && op.job === job.id);
      assert.deepEqual(subscribe, { op: 'subscribe', job: job.id, after: deliveredAtDrop[conn - 2] });
    }
  });
}

test('drops repeated events inside and across packed frames and delivers in order', async () => {
  const { MemorySocket, sockets } = memorySockets();
  const client = newClient({ url: 'http://127.0.0.1:1', WebSocket: MemorySocket });
  const seqs = [];
  client.subscribe('j', { after: 1, onEvent: (e) => seqs.push(e.seq) });
  await until(() => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  assert.deepEqual(ws.sent, [{ op: 'subscribe', job: 'j', after: 1 }]);
  const packed = (...list) => ({ type: 'events', job: 'j', events: list.map((s) => ({ seq: s, kind: 'token', ts: s, data: {} })) });
  ws.receive(
    { type: 'subscribed', job: 'j', last_seq: 7 },
    packed(1, 2, 3, 4),
    ev('j', 3),
    packed(3, 4, 5, 6),
    ev('j', 2),
    packed(6, 7),
  );
  assert.deepEqual(seqs, [2, 3, 4, 5, 6, 7]);
});

test('ignores frames of an earlier subscription of the same job until the new one is confirmed', async () => {
  const { MemorySocket, sockets } = memorySockets();
  const client = newClient({ url: 'http://127.0.0.1:1', WebSocket: MemorySocket });
  const first = [];
  const sub = client.subscribe('j', { onEvent: (e) => first.push(e.seq) });
  await until(() => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  ws.receive({ type: 'subscribed', job: 'j', last_seq: 3 }, ev('j', 1), ev('j', 2), ev('j', 3));
  sub.unsubscribe();
  const second = [];
  client.subscribe('j', { after: 0, onEvent: (e) => second.push(e.seq) });
  // Event 4 was in flight for the first subscription when it was replaced.
  ws.receive(ev('j', 4), { type: 'subscribed', job: 'j', last_seq: 4 });
  ws.receive(ev('j', 1), ev('j', 2), ev('j', 3), ev('j', 4));
  assert.deepEqual(first, [1, 2, 3]);
  assert.deepEqual(second, [1, 2, 3, 4]);
  assert.deepEqual(ws.sent.map((op) => op.op), ['subscribe', 'unsubscribe', 'subscribe']);
});

test('a hole in the stream makes the client resubscribe from its last seq instead of skipping', async () => {
  const { MemorySocket, sockets } = memorySockets();
  const client = newClient({ url: 'http://127.0.0.1:1', WebSocket: MemorySocket });
  const seqs = [];
  const errors = [];
  client.subscribe('j', { onEvent: (e) => seqs.push(e.seq), onError: (e) => errors.push(e) });
  await until(() => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  ws.receive({ type: 'subscribed', job: 'j', last_seq: 4 }, ev('j', 1), ev('j', 2), ev('j', 4));
  assert.deepEqual(seqs, [1, 2]);
  assert.deepEqual(ws.sent.slice(1), [{ op: 'unsubscribe', job: 'j' }, { op: 'subscribe', job: 'j', after: 2 }]);
  assert.equal(errors[0].code, 'gap');
  ws.receive(ev('j', 5), { type: 'subscribed', job: 'j', last_seq: 5 }, ev('j', 3), ev('j', 4), ev('j', 5));
  assert.deepEqual(seqs, [1, 2, 3, 4, 5]);

  // The same hole twice in a row is reported and passed, not retried forever.
  ws.receive(ev('j', 7));
  ws.receive({ type: 'subscribed', job: 'j', last_seq: 7 }, ev('j', 7), ev('j', 8));
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 7, 8]);
  assert.equal(errors.length, 3);
  assert.equal(ws.sent.filter((op) => op.op === 'subscribe').length, 3);
});

// ---- terminal state ----------------------------------------------------------------------

test('a terminal state event ends the subscription and it is not resumed after a reconnect', async () => {
  const broker = await fakeBroker();
  const finished = broker.createJob();
  const running = broker.createJob();
  broker.append(running.id, 'state', { state: 'running', attempt: 1 });
  const client = newClient({ url: broker.url });

  const events = [];
  const done = [];
  const sub = client.subscribe(finished.id, { onEvent: (e) => events.push(e), onDone: (e) => done.push(e) });
  const other = client.subscribe(running.id, {});
  await until(() => client.state === 'open', 'open');
  broker.append(finished.id, 'token', { text: 'hi' });
  broker.finish(finished.id, 'failed');
  broker.append(finished.id, 'log', { level: 'info', message: 'never delivered: after the end' });

  await until(() => done.length === 1, 'onDone');
  await sleep(20);
  assert.equal(done.length, 1);
  assert.deepEqual(done[0], events.at(-1), 'the terminal event goes to onEvent, then onDone');
  assert.equal(done[0].data.state, 'failed');
  assert.ok(isTerminalEvent(done[0]));
  assert.equal(sub.active, false);
  assert.equal(sub.lastSeq, 3);
  await until(() => broker.opsOn(1).some((op) => op.op === 'unsubscribe'), 'unsubscribe');
  assert.deepEqual(broker.opsOn(1).filter((op) => op.op === 'unsubscribe'), [{ op: 'unsubscribe', job: finished.id }]);

  broker.closeAll(1012);
  await until(() => broker.opsOn(2).length > 0, 'resubscribe');
  assert.deepEqual(broker.opsOn(2), [{ op: 'subscribe', job: running.id, after: 2 }]);
  assert.equal(other.active, true);
});

test('subscribing twice to one job is refused; after unsubscribe it is allowed', async () => {
  const { MemorySocket } = memorySockets();
  const client = newClient({ url: 'http://127.0.0.1:1', WebSocket: MemorySocket });
  const sub = client.subscribe('j');
  assert.throws(() => client.subscribe('j'), (err) => err.code === 'already_subscribed');
  sub.unsubscribe();
  assert.equal(client.subscribe('j').active, true);
});

// ---- backoff ------------------------------------------------------------------------------

test('backoffDelay: full jitter in [0, min(max, initial * 2^attempt))', () => {
  const b = { initialMs: 250, maxMs: 10_000 };
  const ceilings = [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000];
  ceilings.forEach((ceiling, attempt) => {
    assert.equal(backoffDelay(attempt, b, () => 0), 0);
    assert.equal(backoffDelay(attempt, b, () => 0.5), ceiling / 2);
    assert.equal(backoffDelay(attempt, b, () => 0.999999), ceiling - 1);
  });
  assert.equal(backoffDelay(5000, b, () => 0.5), 5000, '2^5000 overflows to Infinity; the cap holds');
  for (let i = 0; i < 2000; i++) {
    const attempt = i % 10;
    const d = backoffDelay(attempt, b);
    assert.ok(d >= 0 && d < Math.min(10_000, 250 * 2 ** attempt), `delay ${d} for attempt ${attempt}`);
  }
});

/** Records reconnect delays: timers shorter than the (long) ping interval. */
function recordingTimers(delays) {
  return {
    setTimeout: (fn, ms) => {
      if (ms < 60_000) delays.push(ms);
      return setTimeout(fn, Math.min(ms, 2)); // don't actually wait out the backoff
    },
    clearTimeout: (id) => clearTimeout(id),
  };
}

test('backoff grows with jitter while the broker is down and resets after a successful open', async () => {
  const port = await unusedPort();
  const randoms = [0.5, 0.25, 0.75, 0.1, 0.9, 0.5, 0.5, 0.5];
  let r = 0;
  const delays = [];
  const client = newClient({
    url: `http://127.0.0.1:${port}`,
    backoff: { initialMs: 100, maxMs: 1000 },
    pingIntervalMs: 600_000,
    random: () => randoms[r++ % randoms.length],
    timers: recordingTimers(delays),
  });
  const states = [];
  client.onStateChange((s) => states.push(s));

  await until(() => delays.length >= 6, 'six failed attempts');
  const broker = await fakeBroker({ port });
  await until(() => client.state === 'open', 'open');
  const failed = delays.length;
  const ceilings = [100, 200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000];
  for (let i = 0; i < failed; i++) {
    assert.equal(delays[i], Math.floor(randoms[i % randoms.length] * ceilings[i]), `delay ${i}`);
  }
  assert.deepEqual(states.slice(0, 2), ['reconnecting', 'open'], 'one state change for many retries');

  broker.closeAll(1012);
  await until(() => delays.length > failed, 'reconnect after the drop');
  assert.ok(delays[failed] < 100, `after an open the backoff starts over (got ${delays[failed]})`);
});

/** A client of `broker` with jitter fixed at one half, its reconnect delays recorded in `delays`. */
function halfJitterClient(broker, delays) {
  return newClient({
    url: broker.url,
    backoff: { initialMs: 100, maxMs: 10_000 },
    pingIntervalMs: 600_000,
    random: () => 0.5,
    timers: recordingTimers(delays),
  });
}

test('4008 (policy) is reported and keeps growing the backoff even though each connection opened', async () => {
  const broker = await fakeBroker({ admit: () => 4008 });
  const delays = [];
  const client = halfJitterClient(broker, delays);
  const errors = [];
  client.onError((e) => errors.push(e));
  await until(() => delays.length >= 4, 'four policy closes');
  client.close();
  assert.deepEqual(delays.slice(0, 4), [50, 100, 200, 400]);
  assert.ok(errors.length >= 4);
  assert.equal(errors[0].code, 'policy');
  assert.equal(errors[0].closeCode, 4008);
});

test('1012 after an open resets the backoff every time (contrast with 4008)', async () => {
  const broker = await fakeBroker({ admit: () => 1012 });
  const delays = [];
  const client = halfJitterClient(broker, delays);
  await until(() => delays.length >= 4, 'four restarts');
  client.close();
  assert.deepEqual(delays.slice(0, 4), [50, 50, 50, 50]);
});

// ---- authentication ----------------------------------------------------------------------

test('4003 with a token function fetches a fresh token and reconnects quietly', async () => {
  const broker = await fakeBroker({
    admit: (req) => (new URL(req.url, 'http://x').searchParams.get('access_token') === 'expired' ? 4003 : undefined),
  });
  const tokens = ['expired', 'fresh', 'fresher'];
  let calls = 0;
  const client = newClient({ url: broker.url, token: async () => tokens[Math.min(calls++, 2)] });
  const errors = [];
  client.onError((e) => errors.push(e));
  await until(() => client.state === 'open' && broker.connectionCount === 2, 'open with a fresh token');
  assert.deepEqual(broker.upgradeUrls, ['/v1/ws?access_token=expired', '/v1/ws?access_token=fresh']);
  assert.deepEqual(errors, []);

  await client.listJobs();
  assert.equal(broker.requests.at(-1).headers.authorization, 'Bearer fresher');
});

test('4003 with a fixed token is reported to onError', async () => {
  const broker = await fakeBroker({ admit: () => 4003 });
  const client = newClient({ url: broker.url, token: 'static' });
  const errors = [];
  client.onError((e) => errors.push(e));
  await until(() => errors.length >= 2, 'two reports');
  client.close();
  assert.equal(errors[0].code, 'reauthenticate');
  assert.equal(errors[0].closeCode, 4003);
});

// ---- heartbeat -------------------------------------------------------------------------------

test('a connection that stays silent for two ping intervals is replaced, and subscriptions resume', async () => {
  const broker = await fakeBroker({ answerPings: false });
  const job = broker.createJob();
  const client = newClient({ url: broker.url, pingIntervalMs: 40 });
  const seqs = [];
  client.subscribe(job.id, { onEvent: (e) => seqs.push(e.seq) });
  const reasons = [];
  client.onStateChange((state, info) => state === 'reconnecting' && reasons.push(info.reason));
  await until(() => seqs.length === 1, 'replay');

  await until(() => broker.connectionCount >= 2, 'heartbeat reconnect', 2000);
  assert.equal(reasons[0], 'heartbeat timeout');
  assert.ok(broker.opsOn(1).some((op) => op.op === 'ping'), 'pinged before giving up');
  await until(() => broker.opsOn(2).some((op) => op.op === 'subscribe'), 'resubscribe');
  assert.deepEqual(broker.opsOn(2)[0], { op: 'subscribe', job: job.id, after: 1 });
});

test('a connection that answers pings is kept', async () => {
  const broker = await fakeBroker();
  const client = newClient({ url: broker.url, pingIntervalMs: 30 });
  await until(() => client.state === 'open', 'open');
  // Counted, not timed: on a loaded machine 250 ms of wall clock may hold fewer ticks.
  await until(() => broker.opsOn(1).filter((op) => op.op === 'ping').length >= 6, 'six pings');
  assert.equal(broker.connectionCount, 1);
  assert.equal(client.state, 'open');
});

/**
 * A clock the test can jump forward, as a background tab, a sleeping laptop
 * or a busy event loop experiences time: the client's heartbeat timer then
 * runs far later than it asked to.
 */
function jumpingClock() {
  let skew = 0;
  return {
    timers: { now: () => Date.now() + skew },
    jump(ms) {
      skew += ms;
    },
  };
}

test('a heartbeat that wakes up late pings before judging, and keeps a live connection', async () => {
  const broker = await fakeBroker();
  const clock = jumpingClock();
  const client = newClient({ url: broker.url, pingIntervalMs: 100, timers: clock.timers });
  await until(() => client.state === 'open', 'open');
  const states = [];
  client.onStateChange((state) => states.push(state));
  // The next heartbeat runs "10 s" after the last frame: silence that only
  // measures the client's own absence.
  clock.jump(10_000);
  await until(() => broker.opsOn(1).filter((op) => op.op === 'ping').length >= 3, 'pings after the jump');
  assert.equal(broker.connectionCount, 1, 'the answering connection was kept');
  assert.deepEqual(states, []);
});

test('a heartbeat that wakes up late still replaces a dead connection, one interval later', async () => {
  const broker = await fakeBroker({ answerPings: false });
  const clock = jumpingClock();
  const client = newClient({ url: broker.url, pingIntervalMs: 100, timers: clock.timers });
  const reasons = [];
  client.onStateChange((state, info) => state === 'reconnecting' && reasons.push(info.reason));
  await until(() => client.state === 'open', 'open');
  clock.jump(10_000);
  await until(() => broker.connectionCount >= 2, 'heartbeat reconnect', 3000);
  assert.equal(reasons[0], 'heartbeat timeout');
  assert.ok(broker.opsOn(1).some((op) => op.op === 'ping'), 'pinged after waking, before giving up');
});

// ---- errors -------------------------------------------------------------------------------------

test('error frames reach the subscription they name, or the client', async () => {
  const broker = await fakeBroker();
  const client = newClient({ url: broker.url });
  const subErrors = [];
  const clientErrors = [];
  client.onError((e) => clientErrors.push(e));
  const sub = client.subscribe('no-such-job', { onError: (e) => subErrors.push(e) });
  await until(() => subErrors.length === 1, 'subscription error');
  assert.equal(subErrors[0].code, 'not_found');
  assert.equal(subErrors[0].job, 'no-such-job');
  assert.equal(sub.active, false, 'a rejected subscribe ends the subscription');

  broker.broadcast({ type: 'error', code: 'rate_limited', message: 'slow down' });
  await until(() => clientErrors.length === 1, 'client error');
  assert.equal(clientErrors[0].message, 'slow down');
  assert.ok(clientErrors[0] instanceof JobcastError);

  broker.closeAll(1012);
  await until(() => broker.connectionCount === 2 && client.state === 'open', 'reconnect');
  await sleep(20);
  assert.deepEqual(broker.opsOn(2), [], 'the rejected subscription is not retried');
});

// ---- jobs feed -------------------------------------------------------------------------------------

test('the jobs feed delivers state changes once per job and seq, and is resubscribed after a reconnect', async () => {
  const broker = await fakeBroker();
  const client = newClient({ url: broker.url });
  const feed = [];
  client.subscribeJobs((e) => feed.push(`${e.job}#${e.seq}:${e.data.state}`));
  await until(() => broker.opsOn(1).length === 1, 'feed subscribe');
  assert.deepEqual(broker.opsOn(1), [{ op: 'subscribe', feed: 'jobs' }]);

  const a = broker.createJob();
  // Subscribing to the job too: its state events arrive twice on the socket.
  client.subscribe(a.id, {});
  broker.append(a.id, 'state', { state: 'running', attempt: 1 });
  broker.append(a.id, 'token', { text: 'x' });
  await until(() => feed.length === 2, 'two states');

  broker.closeAll(1001, 'going away');
  await until(() => broker.opsOn(2).some((op) => op.feed === 'jobs'), 'feed resubscribed');
  const b = broker.createJob();
  broker.finish(a.id, 'succeeded');
  await until(() => feed.length === 4, 'states after reconnect');
  assert.deepEqual(feed, [`${a.id}#1:queued`, `${a.id}#2:running`, `${b.id}#1:queued`, `${a.id}#5:succeeded`]);
});

test('a state event of the feed running ahead of a job replay is neither a hole nor a duplicate', async () => {
  const { MemorySocket, sockets } = memorySockets();
  const client = newClient({ url: 'http://127.0.0.1:1', WebSocket: MemorySocket });
  const feed = [];
  const seqs = [];
  const errors = [];
  client.subscribeJobs((e) => feed.push(e.seq));
  client.subscribe('j', { onEvent: (e) => seqs.push(e.seq), onError: (e) => errors.push(e) });
  await until(() => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  ws.receive(
    { type: 'subscribed', feed: 'jobs' },
    { type: 'subscribed', job: 'j', last_seq: 3 },
    ev('j', 1, 'state', { state: 'queued' }),
    ev('j', 5, 'state', { state: 'running' }), // the feed, live
    ev('j', 2), ev('j', 3), ev('j', 4),
    ev('j', 5, 'state', { state: 'running' }), // the subscription, in order
  );
  assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
  assert.deepEqual(feed, [1, 5]);
  assert.deepEqual(errors, []);
});

// ---- REST ------------------------------------------------------------------------------------------

test('REST calls use the documented paths, methods, auth header and error shape', async () => {
  const broker = await fakeBroker();
  const client = newClient({ url: broker.url + '/', token: 'tok', autoConnect: false });

  const job = await client.submit('llm.generate', { prompt: 'hi' }, { priority: 5, maxAttempts: 2, idempotencyKey: 'k-1' });
  let req = broker.requests.at(-1);
  assert.equal(req.method, 'POST');
  assert.equal(req.url, '/v1/jobs');
  assert.equal(req.headers.authorization, 'Bearer tok');
  assert.equal(req.headers['idempotency-key'], 'k-1');
  assert.equal(req.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(req.body), { type: 'llm.generate', params: { prompt: 'hi' }, priority: 5, max_attempts: 2 });
  assert.equal(job.state, 'queued');

  assert.equal((await client.getJob(job.id)).id, job.id);
  assert.equal(broker.requests.at(-1).url, `/v1/jobs/${job.id}`);

  const page = await client.listJobs({ state: 'queued', type: 'llm.generate', limit: 2, cursor: undefined });
  assert.equal(broker.requests.at(-1).url, '/v1/jobs?state=queued&type=llm.generate&limit=2');
  assert.deepEqual(page.jobs.map((j) => j.id), [job.id]);
  assert.equal(page.next, null);

  const log = await client.events(job.id, { after: 0, limit: 10 });
  assert.equal(broker.requests.at(-1).url, `/v1/jobs/${job.id}/events?after=0&limit=10`);
  assert.deepEqual(log, { events: broker.events(job.id), last_seq: 1, done: false });

  const cancelled = await client.cancel(job.id);
  req = broker.requests.at(-1);
  assert.equal(req.method, 'POST');
  assert.equal(req.url, `/v1/jobs/${job.id}/cancel`);
  assert.equal(cancelled.state, 'cancelled');

  await assert.rejects(client.cancel(job.id), (err) => err instanceof JobcastError && err.status === 409 && err.code === 'conflict');
  await assert.rejects(client.getJob('nope/../x'), (err) => err.status === 404 && err.code === 'not_found');
  assert.equal(broker.requests.at(-1).url, '/v1/jobs/nope%2F..%2Fx', 'ids are escaped into one path segment');
  assert.equal(client.state, 'closed', 'REST alone opens no WebSocket');
  assert.equal(broker.connectionCount, 0);
});

test('a REST call to an unreachable broker fails with code "network"', async () => {
  const port = await unusedPort();
  const client = newClient({ url: `http://127.0.0.1:${port}`, autoConnect: false });
  await assert.rejects(client.getJob('x'), (err) => err instanceof JobcastError && err.code === 'network');
});
