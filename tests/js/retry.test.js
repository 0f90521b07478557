// Retries the stream understands, against the REAL broker and llm worker: the
// worker is killed with SIGKILL mid-job, past a checkpoint, so the job is
// requeued and attempt 2 resumes from the checkpoint on another worker; its
// `running` event says where (resume_seq). Every consumer then shows exactly
// the stored result.text — the JS client's fold, useJob (live, and a late
// joiner hydrated from the snapshot while the job waits for its retry), the
// snapshot, and the UI message stream read by the AI SDK (live, and resumed
// with Last-Event-ID from before the kill) — the retry shows as "retrying —
// attempt 2 of 3", and progress never goes back.
//
//   JOBCAST_BIN=build/test/bin node --test tests/js/retry.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { JSDOM } from 'jsdom';
import { WebSocket } from 'ws';
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from 'ai';
import { JobcastClient, emptyJobFold, foldJobEvent } from 'jobcast';

import { startBroker, startWorker, makeTempDir } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = haveBinaries ? false : `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`;
// The sim worker saves a checkpoint every 16 tokens (workers/jobs/llm.cpp).
const CHECKPOINT_EVERY = 16;

const dom = new JSDOM('<!doctype html><html><body></body></html>', { url: 'http://127.0.0.1/' });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.navigator ??= dom.window.navigator;
globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const { createElement, StrictMode } = await import('react');
const { renderHook, act, cleanup, waitFor: waitForRender } = await import('@testing-library/react');
const { useJob } = await import('jobcast/react');

let broker;
const workers = [];
before(async () => {
  if (skip) return;
  const db = join(makeTempDir('jobcast-retry-'), 'jobcast.db');
  broker = await startBroker({ bin: BIN, db, args: ['--heartbeat', '200ms'] });
});
after(async () => {
  cleanup();
  await Promise.all([...workers.map((w) => w.kill('SIGKILL')), broker?.kill('SIGKILL')]);
});

async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(`${broker.url}${path}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

async function allEvents(id) {
  const events = [];
  for (let after = 0; ; ) {
    const { json } = await api(`/v1/jobs/${id}/events?after=${after}&limit=10000`);
    events.push(...json.events);
    if (json.events.length === 0 || json.done) return events;
    after = json.events.at(-1).seq;
  }
}

/** The text parts of the job's UI message stream (after `lastEventId`), as the AI SDK assembles them. */
async function uiMessageParts(id, lastEventId) {
  const headers = { Accept: 'text/event-stream' };
  if (lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId);
  const response = await fetch(`${broker.url}/v1/jobs/${id}/events?format=ui-message`, { headers });
  assert.equal(response.status, 200);
  const chunks = parseJsonEventStream({ stream: response.body, schema: uiMessageChunkSchema }).pipeThrough(
    new TransformStream({
      transform(result, controller) {
        assert.ok(result.success, `a valid UI message chunk: ${result.error}`);
        controller.enqueue(result.value);
      },
    }),
  );
  let message;
  for await (const snapshot of readUIMessageStream({ stream: chunks })) message = snapshot;
  return message.parts.filter((p) => p.type === 'text').map((p) => p.text);
}

/** useJob under StrictMode, with every render's progress, retry label and text recorded. */
function renderRecordedUseJob(jobId) {
  const renders = [];
  const options = { url: broker.url, WebSocket };
  const hook = renderHook(
    () => {
      const view = useJob(jobId, options);
      renders.push({ progress: view.progress, retrying: view.retrying, text: view.text });
      return view;
    },
    { wrapper: ({ children }) => createElement(StrictMode, null, children) },
  );
  return { ...hook, renders };
}

// Testing Library's waitFor lets React render (inside act) between its checks.
const waitUntil = (predicate, what, timeout = 60_000) =>
  waitForRender(() => assert.ok(predicate(), `waiting for ${what}`), { timeout, interval: 10 });

test('a worker killed mid-job: attempt 2 resumes from its checkpoint and every reader shows result.text', { skip, timeout: 120_000 }, async () => {
  workers.push(await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'], name: 'doomed' }));
  const params = { prompt: 'retry me', max_tokens: 160, tokens_per_second: 40, seed: 11 };
  const { status, json: job } = await api('/v1/jobs', { method: 'POST', body: { type: 'llm.generate', params, max_attempts: 3 } });
  assert.equal(status, 201);

  // The JS client, folding every event it gets.
  const client = new JobcastClient({ url: broker.url, WebSocket });
  let fold = emptyJobFold();
  let tokens = 0;
  const subscription = client.subscribe(job.id, {
    after: 0,
    onEvent(event) {
      if (event.kind === 'token' && event.seq > fold.seq) tokens += 1;
      fold = foldJobEvent(fold, event);
    },
  });
  const live = renderRecordedUseJob(job.id);
  const liveMessage = uiMessageParts(job.id);

  // Kill the worker between two checkpoints, so that attempt 1 has emitted
  // tokens its checkpoint does not cover.
  await waitUntil(
    () => tokens >= 2 * CHECKPOINT_EVERY && tokens % CHECKPOINT_EVERY >= 5 && tokens % CHECKPOINT_EVERY <= 11,
    'attempt 1 half way between two checkpoints',
  );
  await act(() => workers[0].kill('SIGKILL'));
  const seqAtKill = fold.seq;
  await waitUntil(() => fold.state === 'queued', 'the lost lease to requeue the job');

  // Late joiners while the job waits for attempt 2: a hook hydrated from the
  // snapshot, and a UI message stream resumed inside attempt 1.
  const waiting = await act(async () => (await api(`/v1/jobs/${job.id}/snapshot`)).json);
  assert.equal(waiting.state, 'queued');
  assert.ok(waiting.resume && waiting.resume.seq > 0 && waiting.resume.seq < seqAtKill, `the snapshot names the checkpoint: ${JSON.stringify(waiting.resume)}`);
  assert.ok(waiting.resume.text_length < waiting.text.length, 'attempt 1 emitted text past its checkpoint');
  const late = renderRecordedUseJob(job.id);
  await waitUntil(() => late.result.current.seq >= waiting.seq, 'the late joiner to hydrate');
  assert.equal(late.result.current.retrying, 'retrying — attempt 2 of 3');
  const resumedMessage = uiMessageParts(job.id, seqAtKill - 1);

  await act(async () => {
    workers.push(await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'], name: 'rescuer' }));
  });
  await waitUntil(() => ['succeeded', 'failed', 'cancelled'].includes(fold.state), 'the job to finish');
  const final = (await api(`/v1/jobs/${job.id}`)).json;
  assert.equal(final.state, 'succeeded');
  assert.equal(final.attempt, 2);
  const expected = final.result.text;

  // The log: attempt 2 resumed at the checkpoint, and attempt 1's tokens
  // after it are there too (what a naive reader would show twice).
  const events = await allEvents(job.id);
  const resumed = events.find((e) => e.kind === 'state' && e.data.state === 'running' && e.data.attempt === 2);
  assert.equal(resumed.data.resume_seq, waiting.resume.seq);
  const repeated = events.filter((e) => e.kind === 'token' && e.seq > resumed.data.resume_seq && e.seq < resumed.seq);
  assert.ok(repeated.length > 0, 'attempt 1 emitted tokens past its checkpoint');
  const naive = events.filter((e) => e.kind === 'token').map((e) => e.data.text).join('');
  assert.notEqual(naive, expected);

  assert.equal(fold.text, expected, 'the JS client');
  await waitUntil(() => live.result.current.state === 'succeeded' && late.result.current.state === 'succeeded', 'both hooks to see the end');
  assert.equal(live.result.current.text, expected, 'useJob, live');
  assert.equal(late.result.current.text, expected, 'useJob, hydrated while the job waited');
  assert.equal((await api(`/v1/jobs/${job.id}/snapshot`)).json.text, expected, 'the snapshot');
  const liveParts = await liveMessage;
  assert.equal(liveParts.at(-1), expected, 'the UI message: its last text part');
  assert.equal(liveParts.length, 2, 'one text part per attempt');
  assert.equal((await resumedMessage).at(-1), expected, 'the UI message resumed inside attempt 1');

  for (const { renders, result } of [live, late]) {
    assert.ok(renders.some((r) => r.retrying === 'retrying — attempt 2 of 3'), 'the retry is visible');
    assert.equal(result.current.retrying, null, 'and gone once the job succeeded');
    renders.reduce((previous, r) => {
      assert.ok(r.progress >= previous, `progress never goes back (${previous} -> ${r.progress})`);
      return r.progress;
    }, 0);
  }
  subscription.unsubscribe();
  client.close();
  live.unmount();
  late.unmount();
});
