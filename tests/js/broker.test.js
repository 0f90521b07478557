// Tests of web/client/jobcast.js against the REAL broker and llm worker
// (build/<preset>/bin), not the fake: token text reassembled from the stream,
// resume across dropped connections and across a broker killed with SIGKILL
// and restarted on the same port and database, the jobs feed, errors, and
// long-polling.
//
//   JOBCAST_BIN=build/dev/bin node --test tests/js/broker.test.js
//
// Without JOBCAST_BIN the binaries are looked for in build/dev/bin; if they
// are not there the tests are skipped (with JOBCAST_BIN set they must exist).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';

import { JobcastClient, JobcastError } from '../../web/client/jobcast.js';
import { startBroker, startWorker, freePort, makeTempDir, waitFor } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = haveBinaries ? false : `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`;
const TIMEOUT = { timeout: 90_000 };

// ---- fixtures ---------------------------------------------------------------------

const tempDb = () => join(makeTempDir('jobcast-js-'), 'jobcast.db'); // removed at exit

/**
 * A broker and an llm.generate worker (sim backend). Stopped with SIGTERM by
 * stop(), or with SIGKILL when the test failed (no point in a clean shutdown).
 */
async function startStack({ http, zmq } = {}) {
  const db = tempDb();
  const broker = await startBroker({ bin: BIN, db, http, zmq });
  const worker = await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'], name: 'js-worker' });
  const stack = {
    db,
    broker,
    worker,
    brokers: [broker],
    /** Everything the processes logged, for failure messages. */
    logs: () =>
      [...stack.brokers.map((b, i) => `--- broker #${i + 1}\n${b.output()}`), `--- worker\n${worker.output()}`]
        .join('\n')
        .split('\n')
        .slice(-120)
        .join('\n'),
    failed: false,
    async stop(failed) {
      const signal = failed ? 'SIGKILL' : 'SIGTERM';
      await Promise.all([stack.worker.kill(signal), ...stack.brokers.map((b) => b.kill(signal))]);
    },
  };
  return stack;
}

/**
 * Runs a test's `body` on `stack`; on failure attaches the processes' logs to
 * the test's output and marks the stack failed (it is then killed with
 * SIGKILL). A stack the test owns is stopped when the test ends, the shared
 * one after the file.
 */
async function withStack(t, stack, body, { owned = false } = {}) {
  if (owned) t.after(() => stack.stop(stack.failed));
  try {
    await body();
  } catch (err) {
    stack.failed = true;
    // One diagnostic per line: the TAP reporter escapes newlines inside one.
    t.diagnostic('process logs:');
    for (const line of stack.logs().split('\n')) t.diagnostic(line);
    throw err;
  }
}

/**
 * A client whose every WebSocket is remembered in `sockets`, so a test can
 * break the current connection at the transport level (`terminate()` drops
 * TCP without a close handshake: the client sees 1006, as on a network loss).
 */
function newClient(t, url, options = {}) {
  const sockets = [];
  class TrackedWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  }
  const client = new JobcastClient({
    url,
    WebSocket: TrackedWebSocket,
    backoff: { initialMs: 50, maxMs: 400 },
    ...options,
  });
  const states = [];
  client.onStateChange((state) => states.push(state));
  const errors = [];
  client.onError((err) => errors.push(err));
  t.after(() => client.close());
  return { client, sockets, states, errors };
}

/** Subscribes from seq 0 and records everything the subscription delivers. */
function record(client, jobId, hooks = {}) {
  const rec = { events: [], errors: [], subscribed: [], done: null };
  rec.finished = new Promise((resolve) => {
    rec.subscription = client.subscribe(jobId, {
      after: 0,
      onEvent: (ev) => {
        rec.events.push(ev);
        hooks.onEvent?.(ev);
      },
      onDone: (ev) => {
        rec.done = ev;
        resolve(ev);
      },
      onError: (err) => rec.errors.push(err),
      onSubscribed: (info) => {
        rec.subscribed.push(info);
        hooks.onSubscribed?.(info);
      },
    });
  });
  rec.text = () => rec.events.filter((e) => e.kind === 'token').map((e) => e.data.text).join('');
  rec.lastSeq = () => rec.events.at(-1)?.seq ?? 0;
  return rec;
}

function withDeadline(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function assertSeqs(events, last) {
  const seqs = events.map((e) => e.seq);
  const expected = Array.from({ length: last }, (_, i) => i + 1);
  // Compare compactly first: a 300-element deepEqual diff is unreadable.
  const gaps = expected.filter((s) => !seqs.includes(s));
  const dups = seqs.filter((s, i) => seqs.indexOf(s) !== i);
  assert.deepEqual({ gaps, dups }, { gaps: [], dups: [] }, 'no seq missing, none twice');
  assert.deepEqual(seqs, expected, 'seqs are exactly 1..last_seq, in order');
}

/**
 * The stream is complete and consistent with the job as REST reports it:
 * seqs 1..last_seq, the reassembled tokens are result.text, the last event is
 * the terminal state.
 */
async function assertCompleteStream(client, rec, jobId) {
  const job = await client.getJob(jobId);
  assert.equal(job.state, 'succeeded', `job ended ${job.state}: ${job.error ?? ''}`);
  assertSeqs(rec.events, job.last_seq);
  assert.equal(typeof job.result?.text, 'string');
  assert.equal(rec.text(), job.result.text, 'reassembled tokens equal result.text');
  assert.equal(rec.events.filter((e) => e.kind === 'token').length, job.result.tokens, 'one token event per token');
  assert.deepEqual(rec.done, rec.events.at(-1), 'onDone got the last event');
  assert.equal(rec.done.data.state, 'succeeded');
  assert.equal(rec.subscription.active, false, 'a finished job ends its subscription');
  assert.deepEqual(rec.errors.map(String), [], 'no subscription errors (a gap would be one)');
  return job;
}

const llmParams = (seed, extra = {}) => ({
  prompt: `jobcast js test ${seed}`,
  max_tokens: 300,
  tokens_per_second: 200,
  seed,
  ...extra,
});

// ---- one broker + worker for the tests that do not restart it ------------------------------

let shared;
before(async () => {
  if (skip) return;
  shared = await startStack();
});
after(async () => {
  await shared?.stop(shared.failed);
});

test('(a) an llm job streams tokens that reassemble to result.text', { skip, ...TIMEOUT }, async (t) => {
  await withStack(t, shared, async () => {
    const { client } = newClient(t, shared.broker.url);
    const job = await client.submit('llm.generate', llmParams(7));
    assert.equal(job.type, 'llm.generate');
    assert.equal(typeof job.id, 'string');
    const rec = record(client, job.id);
    await withDeadline(rec.finished, 30_000, 'the job to finish');
    const final = await assertCompleteStream(client, rec, job.id);
    assert.equal(final.result.tokens, 300);
    assert.ok(rec.text().length > 300, 'real text, not empty tokens');
    // The log starts with the broker's lifecycle: queued, then running.
    assert.deepEqual(rec.events.slice(0, 2).map((e) => [e.kind, e.data.state]), [
      ['state', 'queued'],
      ['state', 'running'],
    ]);
    assert.equal(rec.subscribed.length, 1);

    // The same job again, finished: replayed whole from the store, same text.
    const replay = record(client, job.id);
    await withDeadline(replay.finished, 10_000, 'the replay of a finished job');
    assert.deepEqual(replay.events, rec.events, 'a replay is identical to the live stream');

    // A resume point in the middle replays only what comes after it.
    const tail = [];
    await withDeadline(
      new Promise((resolve) =>
        client.subscribe(job.id, { after: 100, onEvent: (e) => tail.push(e.seq), onDone: resolve })),
      10_000,
      'the replay after seq 100',
    );
    assert.deepEqual(tail, rec.events.slice(100).map((e) => e.seq));
  });
});

test('(b.i) resume after the transport drops several times mid-stream', { skip, ...TIMEOUT }, async (t) => {
  await withStack(t, shared, async () => {
    const { client, sockets, states } = newClient(t, shared.broker.url);
    await waitFor(() => client.state === 'open', { what: 'the first connection' });
    // 300 tokens at 100/s: about 3 s of stream to break in.
    const job = await client.submit('llm.generate', llmParams(11, { tokens_per_second: 100 }));
    const drops = [];
    // One drop right when a resubscription is confirmed, i.e. while its replay
    // is on the wire (the client must not take the next connection's replay
    // as duplicates or holes).
    let dropOnNextSubscribed = false;
    const drop = (why) => {
      drops.push({ why, afterSeq: rec.lastSeq(), socket: sockets.length });
      sockets.at(-1).terminate();
    };
    const rec = record(client, job.id, {
      onSubscribed: () => {
        if (dropOnNextSubscribed) {
          dropOnNextSubscribed = false;
          drop('during replay');
        }
      },
    });

    for (let i = 0; i < 4; i++) {
      const from = rec.lastSeq();
      await waitFor(() => rec.lastSeq() >= from + 25 || rec.done, { what: `25 more events (drop ${i + 1})` });
      if (rec.done) break;
      const socketsBefore = sockets.length;
      if (i === 2) dropOnNextSubscribed = true;
      drop('mid-stream');
      // Wait for the client to be back and resubscribed on a new socket.
      await waitFor(
        () => client.state === 'open' && sockets.length > socketsBefore && !dropOnNextSubscribed &&
          rec.subscribed.length >= drops.length + 1,
        { what: `reconnect after drop ${i + 1}` },
      );
    }
    await withDeadline(rec.finished, 30_000, 'the job to finish');
    await assertCompleteStream(client, rec, job.id);

    const midStream = drops.filter((d) => d.afterSeq < rec.events.length - 1);
    assert.ok(midStream.length >= 3, `at least 3 drops while the job streamed: ${JSON.stringify(drops)}`);
    // Each drop was a reconnect that resumed from where the stream stood.
    assert.ok(rec.subscribed.length >= drops.length + 1);
    assert.deepEqual(
      states,
      ['open', ...drops.flatMap(() => ['reconnecting', 'open'])],
      'every drop: reconnecting, then open again',
    );
  });
});

test('(b.ii) resume across broker SIGKILL + restart on the same port and db', { skip, ...TIMEOUT }, async (t) => {
  const http = `127.0.0.1:${await freePort()}`;
  const zmq = `tcp://127.0.0.1:${await freePort()}`;
  const stack = await startStack({ http, zmq });
  await withStack(t, stack, async () => {
    const { client, states } = newClient(t, stack.broker.url);
    // 300 tokens at 50/s: about 6 s, room for three restarts of a Debug+ASan broker.
    const job = await client.submit('llm.generate', llmParams(23, { tokens_per_second: 50 }));
    const rec = record(client, job.id);
    const restarts = [];
    for (let i = 0; i < 3; i++) {
      const from = rec.lastSeq();
      await waitFor(() => rec.lastSeq() >= from + 20 || rec.done, { what: `20 more events (restart ${i + 1})` });
      if (rec.done) break;
      const subscribedBefore = rec.subscribed.length;
      const seenBefore = rec.lastSeq();
      const killedAt = Date.now();
      await stack.broker.kill('SIGKILL');
      await waitFor(() => client.state === 'reconnecting', { what: 'the client to notice the broker died' });
      stack.broker = await startBroker({ bin: BIN, db: stack.db, http, zmq });
      stack.brokers.push(stack.broker);
      assert.equal(stack.broker.http, http, 'the restarted broker listens where the old one did');
      await waitFor(() => client.state === 'open' && rec.subscribed.length > subscribedBefore, {
        what: `the client to reconnect and resubscribe (restart ${i + 1})`,
      });
      // And the stream moves again (the worker found the new broker too).
      await waitFor(() => rec.lastSeq() > seenBefore + 5 || rec.done, {
        what: `events after restart ${i + 1}`,
      });
      restarts.push({ atSeq: seenBefore, resumedAfterMs: Date.now() - killedAt });
    }
    await withDeadline(rec.finished, 60_000, 'the job to finish');
    const final = await assertCompleteStream(client, rec, job.id);
    t.diagnostic(`restarts: ${JSON.stringify(restarts)}; final attempt ${final.attempt}`);
    assert.equal(restarts.length, 3, 'three restarts while the job streamed');
    // The worker lived through it: same process, same attempt (it reconnected
    // and reconciled its in-flight job with the restarted broker).
    assert.equal(stack.worker.child.exitCode, null, 'the worker is still running');
    assert.equal(final.attempt, 1, 'the job was not re-run');
    assert.deepEqual(states, ['open', ...restarts.flatMap(() => ['reconnecting', 'open'])]);
  }, { owned: true });
});

test('(c) the jobs feed reports the state changes of submitted jobs', { skip, ...TIMEOUT }, async (t) => {
  await withStack(t, shared, async () => {
    const { client } = newClient(t, shared.broker.url);
    const feed = new Map(); // job id → state events, in arrival order
    client.subscribeJobs((ev) => {
      if (!feed.has(ev.job)) feed.set(ev.job, []);
      feed.get(ev.job).push(ev);
    });
    // The server handles one connection's ops in order: once a later subscribe
    // is answered, the feed subscription is in place (else the first `queued`
    // could be published before it and, the feed being live only, missed).
    await withDeadline(
      new Promise((resolve) => client.subscribe('feed-barrier', { onError: resolve })),
      10_000,
      'the barrier subscribe to be answered',
    );
    const states = (id) => (feed.get(id) ?? []).map((e) => e.data.state);

    // Succeeds: queued → running → succeeded.
    const quick = await client.submit('llm.generate', llmParams(31, { max_tokens: 20 }));
    // No worker serves `research` here: it stays queued until cancelled.
    const parked = await client.submit('research', { topic: 'tides' });
    // Cancelled while running.
    const slow = await client.submit('llm.generate', llmParams(32, { max_tokens: 1000, tokens_per_second: 20 }));

    await waitFor(() => states(quick.id).at(-1) === 'succeeded', { what: 'quick job succeeded in the feed' });
    await waitFor(() => states(slow.id).includes('running'), { what: 'slow job running in the feed' });
    assert.deepEqual(states(parked.id), ['queued']);
    await client.cancel(parked.id);
    await client.cancel(slow.id);
    await waitFor(() => states(parked.id).at(-1) === 'cancelled' && states(slow.id).at(-1) === 'cancelled', {
      what: 'both cancellations in the feed',
    });

    assert.deepEqual(states(quick.id), ['queued', 'running', 'succeeded']);
    assert.deepEqual(states(parked.id), ['queued', 'cancelled']);
    assert.deepEqual(states(slow.id), ['queued', 'running', 'cancelled']);
    for (const job of [quick, parked, slow]) {
      const events = feed.get(job.id);
      const seqs = events.map((e) => e.seq);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in seq order');
      assert.equal(new Set(seqs).size, seqs.length, 'each state change once');
      assert.ok(events.every((e) => e.kind === 'state' && e.job === job.id));
      const rest = await client.getJob(job.id);
      assert.equal(rest.state, events.at(-1).data.state, 'the feed ends where REST is');
      assert.equal(rest.last_seq, events.at(-1).seq, 'the terminal state event is the last event');
    }
    assert.equal(feed.get(slow.id)[1].data.worker, 'js-worker', 'running names the worker');
    assert.ok(!feed.has('feed-barrier'), 'an unknown job never shows up in the feed');
  });
});

test('(d) subscribing to an unknown job fails with code not_found', { skip, ...TIMEOUT }, async (t) => {
  await withStack(t, shared, async () => {
    const { client, errors } = newClient(t, shared.broker.url);
    const events = [];
    let subscription;
    const error = await withDeadline(
      new Promise((resolve) => {
        subscription = client.subscribe('01NOSUCHJOB0000000000000000', {
          onEvent: (e) => events.push(e),
          onError: resolve,
        });
      }),
      10_000,
      'the error frame',
    );
    assert.ok(error instanceof JobcastError);
    assert.equal(error.code, 'not_found');
    assert.equal(error.job, '01NOSUCHJOB0000000000000000');
    assert.equal(subscription.active, false, 'a rejected subscribe ends the subscription');
    assert.deepEqual(events, []);
    assert.deepEqual(errors, [], 'reported to the subscription, not the client');

    // The connection stays usable, and REST says the same.
    const job = await client.submit('llm.generate', llmParams(41, { max_tokens: 5 }));
    const rec = record(client, job.id);
    await withDeadline(rec.finished, 20_000, 'a job after the error');
    await assert.rejects(client.getJob('01NOSUCHJOB0000000000000000'), { status: 404, code: 'not_found' });
    await assert.rejects(client.events('01NOSUCHJOB0000000000000000'), { status: 404, code: 'not_found' });
    await assert.rejects(client.cancel('01NOSUCHJOB0000000000000000'), { status: 404, code: 'not_found' });
  });
});

test('(e) long-poll events(id, {after, wait}) returns as soon as an event arrives', { skip, ...TIMEOUT }, async (t) => {
  await withStack(t, shared, async () => {
    const { client } = newClient(t, shared.broker.url, { autoConnect: false });
    const WAIT_S = 10;

    // A running job: every poll from the newest seq is answered by the next token.
    const job = await client.submit('llm.generate', llmParams(51, { max_tokens: 2000, tokens_per_second: 20 }));
    t.after(() => client.cancel(job.id).catch(() => {}));
    await waitFor(async () => (await client.getJob(job.id)).state === 'running', { what: 'the job to run' });
    const seen = [];
    let after = (await client.getJob(job.id)).last_seq;
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      const page = await client.events(job.id, { after, wait: WAIT_S });
      const elapsed = Date.now() - started;
      assert.ok(page.events.length > 0, `poll ${i + 1} returned events`);
      assert.equal(page.events[0].seq, after + 1, 'starts right after `after`');
      assert.equal(page.done, false);
      assert.ok(elapsed < 2_000, `poll ${i + 1} took ${elapsed} ms; the next token is due within 50 ms`);
      seen.push(...page.events.map((e) => e.seq));
      after = page.events.at(-1).seq;
    }
    assert.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => seen[0] + i), 'polls chain without gaps');

    // A quiet job (no worker serves `research` here): the poll is held, and
    // answered by the first event that arrives — the cancellation.
    const parked = await client.submit('research', { topic: 'tides' });
    const started = Date.now();
    const poll = client.events(parked.id, { after: parked.last_seq, wait: WAIT_S });
    const early = await Promise.race([poll.then(() => 'answered'), new Promise((r) => setTimeout(r, 700, 'held'))]);
    assert.equal(early, 'held', 'with nothing new the broker holds the poll');
    const cancelledAt = Date.now();
    await client.cancel(parked.id);
    const page = await poll;
    const answeredAfterCancel = Date.now() - cancelledAt;
    assert.ok(answeredAfterCancel < 2_000, `answered ${answeredAfterCancel} ms after the event (wait was ${WAIT_S} s)`);
    assert.ok(Date.now() - started < WAIT_S * 1000 - 2_000);
    assert.equal(page.events[0]?.seq, parked.last_seq + 1);
    assert.equal(page.events.at(-1).data.state, 'cancelled');

    // With nothing at all to report, the poll ends with its timeout, empty.
    const quiet = await client.submit('research', { topic: 'still' });
    t.after(() => client.cancel(quiet.id).catch(() => {}));
    const t0 = Date.now();
    const empty = await client.events(quiet.id, { after: quiet.last_seq, wait: 1 });
    const waited = Date.now() - t0;
    assert.deepEqual(empty.events, []);
    assert.equal(empty.done, false);
    assert.ok(waited >= 900 && waited < 5_000, `a 1 s poll of a quiet job took ${waited} ms`);
  });
});
