// useJob (jobcast/react) rendered with @testing-library/react in jsdom under
// React 19 StrictMode (effects run, clean up and run again), against the
// REAL broker and llm worker: it hydrates from the snapshot and subscribes
// after its seq, streams to the job's result.text with no event applied
// twice, survives the broker killed with SIGKILL and restarted, unmounting
// does not cancel, cancel() does. Also: the JS fold of the whole log equals
// the broker's snapshot, and a snapshot plus the events after it equals it too.
//
//   JOBCAST_BIN=build/test/bin node --test tests/js/use_job.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { JSDOM } from 'jsdom';
import { WebSocket } from 'ws';
import { emptyJobFold, foldFromSnapshot, foldJobEvent } from 'jobcast';

import { startBroker, startWorker, freePort, makeTempDir, waitFor } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = haveBinaries ? false : `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`;
const TIMEOUT = { timeout: 120_000 };

// A DOM for React before react-dom loads; React's act() environment flag on.
const dom = new JSDOM('<!doctype html><html><body></body></html>', { url: 'http://127.0.0.1/' });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.navigator ??= dom.window.navigator;
globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const { createElement, StrictMode } = await import('react');
const { renderHook, act, cleanup, waitFor: waitForRender } = await import('@testing-library/react');
const { useJob } = await import('jobcast/react');

const stack = {};
before(async () => {
  if (skip) return;
  stack.http = `127.0.0.1:${await freePort()}`;
  stack.zmq = `tcp://127.0.0.1:${await freePort()}`;
  stack.db = join(makeTempDir('jobcast-usejob-'), 'jobcast.db');
  stack.broker = await startBroker({ bin: BIN, db: stack.db, http: stack.http, zmq: stack.zmq });
  stack.url = stack.broker.url;
  stack.worker = await startWorker({ bin: BIN, zmq: stack.zmq, types: ['llm.generate', 'research'], name: 'hook-worker' });
});
after(async () => {
  cleanup();
  await Promise.all([stack.worker?.kill('SIGKILL'), stack.broker?.kill('SIGKILL')]);
});

async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

async function submit(type, params) {
  const { status, json } = await api('/v1/jobs', { method: 'POST', body: { type, params } });
  assert.equal(status, 201);
  return json;
}

async function finished(id) {
  return waitFor(async () => {
    try {
      const { json } = await api(`/v1/jobs/${id}`);
      return ['succeeded', 'failed', 'cancelled'].includes(json?.state) && json;
    } catch {
      return false; // restarting
    }
  }, { what: `job ${id} to finish`, timeoutMs: 90_000, intervalMs: 50 });
}

async function allEvents(id, after = 0) {
  const events = [];
  for (;;) {
    const { json } = await api(`/v1/jobs/${id}/events?after=${after}&limit=10000`);
    events.push(...json.events);
    if (json.events.length === 0 || json.done) return events;
    after = json.events.at(-1).seq;
  }
}

/**
 * A WebSocket that records what the hook's client sends and how many events
 * reach it, and a fetch that counts snapshot requests.
 */
function instruments() {
  const sent = [];
  const sockets = [];
  class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  const snapshots = [];
  const countingFetch = async (url, init) => {
    const response = await fetch(url, init);
    if (String(url).endsWith('/snapshot')) snapshots.push(response.status);
    return response;
  };
  return { sent, sockets, snapshots, WebSocket: RecordingWebSocket, fetch: countingFetch };
}

function renderUseJob(jobId, tools) {
  const options = { url: stack.url, WebSocket: tools.WebSocket, fetch: tools.fetch };
  return renderHook(() => useJob(jobId, options), {
    wrapper: ({ children }) => createElement(StrictMode, null, children),
  });
}

// Testing Library's waitFor lets React render between its checks (an act()
// around a poll would hold every update back until it ends).
const waitUntil = (predicate, what, timeout = 60_000) =>
  waitForRender(() => assert.ok(predicate(), `waiting for ${what}`), { timeout, interval: 20 });

const llm = (seed, extra = {}) => ({ prompt: `use job ${seed}`, max_tokens: 300, tokens_per_second: 150, seed, ...extra });

/** A fold without its internal resume marks: what a page shows. */
const shown = ({ marks, ...fold }) => fold;

test('the JS fold of a log equals the broker snapshot, whole and split at any seq', { skip, ...TIMEOUT }, async () => {
  const research = await submit('research', { topic: 'Tides', stages: ['plan', 'read', 'write'], stage_ms: 100 });
  const text = await submit('llm.generate', llm(1, { max_tokens: 120, tokens_per_second: 0 }));
  for (const job of [research, text]) {
    await finished(job.id);
    const events = await allEvents(job.id);
    const snapshot = (await api(`/v1/jobs/${job.id}/snapshot`)).json;
    const whole = events.reduce((fold, event) => foldJobEvent(fold, event), emptyJobFold());
    assert.deepEqual(shown(whole), shown(foldFromSnapshot(snapshot)), `${job.id}: the whole log folded is the snapshot`);
    for (const cut of [1, Math.floor(events.length / 2), events.length - 1]) {
      const head = events.slice(0, cut).reduce((fold, event) => foldJobEvent(fold, event), emptyJobFold());
      const resumed = events.reduce((fold, event) => foldJobEvent(fold, event), head); // overlaps the head
      assert.deepEqual(shown(resumed), shown(whole), `split at ${cut}, the overlap applied twice`);
    }
  }
});

test('useJob under StrictMode hydrates from the snapshot and streams to result.text', { skip, ...TIMEOUT }, async () => {
  const job = await submit('llm.generate', llm(2));
  await waitFor(async () => (await api(`/v1/jobs/${job.id}`)).json.last_seq > 40, { what: 'a job well under way' });
  const tools = instruments();
  const { result, unmount } = renderUseJob(job.id, tools);
  await waitUntil(() => result.current.state === 'succeeded', 'the job to succeed in the hook');
  const final = await finished(job.id);
  assert.equal(result.current.text, final.result.text, 'every token once, in order');
  assert.equal(result.current.seq, final.last_seq);
  assert.equal(result.current.progress, 1);
  assert.deepEqual(result.current.result, final.result);
  assert.equal(result.current.error, null);
  assert.equal(result.current.job.id, job.id);
  assert.ok(tools.snapshots.includes(200), 'hydrated from the snapshot');
  const subscribes = tools.sent.filter((m) => m.op === 'subscribe');
  assert.ok(subscribes.length >= 1 && subscribes.every((m) => m.after > 40), `subscribed after the snapshot's seq: ${JSON.stringify(subscribes)}`);
  unmount();
  await waitFor(() => tools.sockets.every((s) => s.readyState === WebSocket.CLOSED), { what: 'the hook to close its sockets' });
});

test('useJob survives the broker killed with SIGKILL and restarted', { skip, ...TIMEOUT }, async () => {
  const job = await submit('llm.generate', llm(3, { max_tokens: 600, tokens_per_second: 100 }));
  const tools = instruments();
  const { result, unmount } = renderUseJob(job.id, tools);
  for (let i = 0; i < 3; i++) {
    const seen = result.current.seq;
    await waitUntil(() => result.current.seq > seen + 20, `events before kill ${i + 1}`);
    await act(() => stack.broker.kill('SIGKILL'));
    await waitUntil(() => result.current.connection === 'reconnecting', 'the hook to see the connection drop');
    await act(async () => {
      stack.broker = await startBroker({ bin: BIN, db: stack.db, http: stack.http, zmq: stack.zmq });
    });
  }
  await waitUntil(() => result.current.state === 'succeeded', 'the job to succeed in the hook');
  const final = await finished(job.id);
  assert.equal(result.current.connection, 'open');
  assert.equal(result.current.text, final.result.text, 'no event applied twice, none missed');
  assert.equal(result.current.seq, final.last_seq);
  unmount();
});

test('unmounting does not cancel; cancel() does, also while the broker restarts, and the partial text stays', { skip, ...TIMEOUT }, async () => {
  const left = await submit('llm.generate', llm(4, { max_tokens: 200, tokens_per_second: 100 }));
  const first = renderUseJob(left.id, instruments());
  await waitUntil(() => first.result.current.text.length > 20, 'some text');
  first.unmount();
  assert.equal((await finished(left.id)).state, 'succeeded', 'the unmounted job ran to the end');

  const stopped = await submit('llm.generate', llm(5, { max_tokens: 5000, tokens_per_second: 100 }));
  const { result, unmount } = renderUseJob(stopped.id, instruments());
  await waitUntil(() => result.current.text.length > 20, 'some text');
  // Stop pressed while the broker is being restarted: cancel() retries until it lands.
  await act(() => stack.broker.kill('SIGKILL'));
  let cancelled;
  await act(async () => {
    cancelled = result.current.cancel();
    await new Promise((resolve) => setTimeout(resolve, 700));
    stack.broker = await startBroker({ bin: BIN, db: stack.db, http: stack.http, zmq: stack.zmq });
  });
  await act(() => cancelled);
  await waitUntil(() => result.current.state === 'cancelled', 'the job to be cancelled in the hook');
  const final = await finished(stopped.id);
  assert.equal(final.state, 'cancelled');
  const snapshot = (await api(`/v1/jobs/${stopped.id}/snapshot`)).json;
  assert.equal(result.current.text, snapshot.text, 'the hook and the snapshot keep the same partial text');
  assert.ok(snapshot.text.length > 20);
  unmount();
});

test('useJob of a job that is not there says so and subscribes to nothing', { skip, ...TIMEOUT }, async () => {
  const tools = instruments();
  const { result, unmount } = renderUseJob('NOSUCHJOB', tools);
  await waitUntil(() => result.current.error !== null, 'an error');
  assert.match(result.current.error, /not found|no such/i);
  assert.equal(result.current.state, null);
  assert.deepEqual(tools.sent.filter((m) => m.op === 'subscribe'), []);
  unmount();
});
