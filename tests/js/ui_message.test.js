// GET /v1/jobs/{id}/events?format=ui-message read by the REAL `ai` package
// (readUIMessageStream over its own SSE parser and chunk schema) from the
// REAL broker and llm worker, and GET /v1/jobs/{id}/snapshot: the assembled
// text equals the job's result.text however the stream is cut and resumed
// (Last-Event-ID), a cancelled job ends with `abort`, a snapshot plus the
// events after its seq equals the whole log, and both routes answer 401 /
// 403 / 404 like the job routes.
//
//   JOBCAST_BIN=build/test/bin node --test tests/js/ui_message.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from 'ai';

import { startBroker, startWorker, makeTempDir } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = haveBinaries ? false : `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`;
const TIMEOUT = { timeout: 120_000 };
const SECRET = 'js-ui-message-test-secret-0123456789';

const b64url = (data) => Buffer.from(data).toString('base64url');
/** An HS256 JWT made with node's crypto (not the broker's code). */
function mint(sub, ttlSeconds = 600) {
  const now = Math.floor(Date.now() / 1000);
  const signing = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub, iat: now, exp: now + ttlSeconds }))}`;
  return `${signing}.${createHmac('sha256', SECRET).update(signing).digest('base64url')}`;
}
const ALICE = mint('alice');
const BOB = mint('bob');

let broker;
let worker;
before(async () => {
  if (skip) return;
  const db = join(makeTempDir('jobcast-ui-'), 'jobcast.db');
  broker = await startBroker({ bin: BIN, db, args: ['--jwt-secret', SECRET] });
  worker = await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'], name: 'ui-worker' });
});
after(async () => {
  await Promise.all([worker?.kill('SIGKILL'), broker?.kill('SIGKILL')]);
});

// ---- REST -----------------------------------------------------------------------------

async function api(path, { method = 'GET', token = ALICE, body, headers = {} } = {}) {
  const response = await fetch(`${broker.url}${path}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'Content-Type': 'application/json' } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : null };
}

async function submit(params) {
  const { status, json } = await api('/v1/jobs', { method: 'POST', body: { type: 'llm.generate', params } });
  assert.equal(status, 201);
  return json;
}

async function finished(id) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { json } = await api(`/v1/jobs/${id}`);
    if (['succeeded', 'failed', 'cancelled'].includes(json.state)) return json;
    if (Date.now() > deadline) throw new Error(`job ${id} did not finish: ${JSON.stringify(json)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// ---- the UI message stream ------------------------------------------------------------

/** Opens the ui-message stream of `id` after `lastEventId` (none: from the start). */
async function open(id, { lastEventId, token = ALICE, signal } = {}) {
  const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${token}` };
  if (lastEventId !== undefined) headers['Last-Event-ID'] = String(lastEventId);
  return fetch(`${broker.url}/v1/jobs/${id}/events?format=ui-message`, { headers, signal });
}

/**
 * The SSE events of a byte stream, passed through unchanged up to (and
 * including) the `limit`th event: a connection that drops there. `state.id`
 * is the id of the last event passed, what EventSource would resume from.
 */
function cutAfter(body, limit, state) {
  let buffer = '';
  let passed = 0;
  const encoder = new TextEncoder();
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end + 2);
          buffer = buffer.slice(end + 2);
          const id = /^id: (\d+)$/m.exec(block);
          if (!block.includes('data: ')) continue; // retry: and keepalive comments
          assert.ok(id, `every event has an id: ${JSON.stringify(block)}`);
          state.id = Number(id[1]);
          state.events += 1;
          controller.enqueue(encoder.encode(block));
          passed += 1;
          if (passed >= limit) {
            await reader.cancel();
            controller.close();
          }
          return;
        }
        const { value, done } = await reader.read();
        if (done) {
          state.ended = true;
          controller.close();
          return;
        }
        buffer += value;
      }
    },
    cancel: () => reader.cancel(),
  });
}

/**
 * Reads a ui-message response with the AI SDK, stopping after `limit` SSE
 * events: the assembled text of the message, its parts and the chunk types.
 */
async function readMessage(response, limit = Infinity) {
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-vercel-ai-ui-message-stream'), 'v1');
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  const state = { id: undefined, events: 0, ended: false };
  const types = [];
  const errors = [];
  const chunks = parseJsonEventStream({ stream: cutAfter(response.body, limit, state), schema: uiMessageChunkSchema })
    .pipeThrough(new TransformStream({
      transform(result, controller) {
        assert.ok(result.success, `a valid UI message chunk: ${result.error}`);
        types.push(result.value.type);
        controller.enqueue(result.value);
      },
    }));
  let message;
  for await (const snapshot of readUIMessageStream({ stream: chunks, onError: (e) => errors.push(e) })) message = snapshot;
  const text = (message?.parts ?? []).filter((p) => p.type === 'text').map((p) => p.text).join('');
  const unknownPart = errors.find((e) => /missing text part/.test(String(e)));
  assert.equal(unknownPart, undefined, 'every text-delta and text-end is inside a text part');
  return { text, message, types, errors, ...state };
}

// A deterministic random sequence (the cut points are reproducible).
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const llm = (seed, extra = {}) => ({ prompt: `ui message ${seed}`, max_tokens: 300, tokens_per_second: 300, seed, ...extra });

test('a streaming job read with readUIMessageStream assembles to result.text', { skip, ...TIMEOUT }, async () => {
  const job = await submit(llm(1, { tokens_per_second: 150 }));
  const live = await readMessage(await open(job.id));
  const final = await finished(job.id);
  assert.equal(final.state, 'succeeded');
  assert.equal(live.text, final.result.text);
  assert.equal(live.message.id, job.id, 'start names the job as the message');
  assert.deepEqual(live.types.slice(0, 2), ['start', 'data-state']);
  assert.deepEqual(live.types.slice(-2), ['data-state', 'finish']);
  assert.equal(live.types.filter((t) => t === 'text-start').length, 1);
  assert.equal(live.types.filter((t) => t === 'text-end').length, 1);
  assert.equal(live.types.filter((t) => t === 'text-delta').length, final.result.tokens);
  assert.deepEqual(live.errors, []);
  assert.equal(live.id, final.last_seq, 'the last event carries the last seq');
  // data-* parts are transient: the message holds the text only.
  assert.deepEqual(live.message.parts.map((p) => p.type), ['text']);

  // After the terminal event there is nothing more: 204, as for plain SSE.
  const again = await open(job.id, { lastEventId: final.last_seq });
  assert.equal(again.status, 204);
});

test('resume with Last-Event-ID at random cut points: no repeated or missing span', { skip, ...TIMEOUT }, async () => {
  const next = random(42);
  // Live: one job, its stream cut and resumed 25 times while it runs.
  const job = await submit(llm(2, { max_tokens: 400, tokens_per_second: 100 }));
  let text = '';
  let lastEventId;
  let connections = 0;
  for (;;) {
    const limit = connections < 25 ? 1 + Math.floor(next() * 12) : Infinity;
    const response = await open(job.id, { lastEventId });
    if (response.status === 204) break; // the cut fell right after the last event
    const part = await readMessage(response, limit);
    text += part.text;
    connections += 1;
    if (part.ended) break;
    lastEventId = part.id;
  }
  const final = await finished(job.id);
  assert.ok(connections > 25, `${connections} connections`);
  assert.equal(text, final.result.text, 'the live stream, cut 25 times, assembles to result.text');

  // Replay: the finished job's whole stream, cut at 30 random events, each
  // resumed from the cut's Last-Event-ID.
  const whole = await readMessage(await open(job.id));
  assert.equal(whole.text, final.result.text);
  for (let i = 0; i < 30; i++) {
    const cut = 1 + Math.floor(next() * (whole.events - 1));
    const head = await readMessage(await open(job.id), cut);
    assert.equal(head.events, cut);
    const tail = await readMessage(await open(job.id, { lastEventId: head.id }));
    assert.equal(head.text + tail.text, final.result.text, `cut after event ${cut} (id ${head.id})`);
    assert.ok(!tail.types.includes('start'), 'a resumed stream does not start the message again');
  }
});

test('a cancelled job ends its stream with abort, and keeps its partial text', { skip, ...TIMEOUT }, async () => {
  const job = await submit(llm(3, { max_tokens: 5000, tokens_per_second: 50 }));
  const response = await open(job.id);
  const reading = readMessage(response);
  await new Promise((resolve) => setTimeout(resolve, 600));
  const { status } = await api(`/v1/jobs/${job.id}/cancel`, { method: 'POST' });
  assert.equal(status, 202);
  const read = await reading;
  const final = await finished(job.id);
  assert.equal(final.state, 'cancelled');
  assert.equal(read.types.at(-1), 'abort');
  assert.ok(!read.types.includes('finish'));
  assert.equal(read.types.filter((t) => t === 'text-start').length, read.types.filter((t) => t === 'text-end').length);
  assert.ok(read.text.length > 0, 'some text streamed before the cancel');
  const snapshot = await api(`/v1/jobs/${job.id}/snapshot`);
  assert.equal(snapshot.json.text, read.text, 'the snapshot keeps the partial text');
  assert.equal(snapshot.json.state, 'cancelled');
  assert.equal((await open(job.id, { lastEventId: final.last_seq })).status, 204);
});

/** The whole log as the JSON events pages give it. */
async function allEvents(id, after = 0) {
  const events = [];
  for (;;) {
    const { json } = await api(`/v1/jobs/${id}/events?after=${after}&limit=10000`);
    events.push(...json.events);
    if (json.events.length === 0 || json.done) return events;
    after = json.events.at(-1).seq;
  }
}

test('snapshot + the events after its seq == the whole log folded', { skip, ...TIMEOUT }, async () => {
  const job = await submit(llm(4, { max_tokens: 400, tokens_per_second: 100 }));
  // Mid-stream: a late joiner hydrates from the snapshot, then streams after=seq.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const mid = (await api(`/v1/jobs/${job.id}/snapshot`)).json;
  assert.ok(mid.seq > 0 && mid.text.length > 0, `a snapshot mid-stream (seq ${mid.seq})`);
  assert.equal(mid.state, 'running');
  assert.equal(mid.job.id, job.id);
  assert.equal(mid.job.last_seq, mid.seq, 'the job and the fold agree on seq');
  const rest = await readMessage(await open(job.id, { lastEventId: mid.seq }));
  const final = await finished(job.id);
  assert.equal(mid.text + rest.text, final.result.text);

  // The same through the JSON log: the snapshot's text plus the tokens after it.
  const after = await allEvents(job.id, mid.seq);
  assert.equal(after[0].seq, mid.seq + 1);
  const tokens = (events) => events.filter((e) => e.kind === 'token').map((e) => e.data.text).join('');
  assert.equal(mid.text + tokens(after), final.result.text);

  const end = (await api(`/v1/jobs/${job.id}/snapshot`)).json;
  assert.equal(end.seq, final.last_seq);
  assert.equal(end.text, tokens(await allEvents(job.id)));
  assert.equal(end.text, final.result.text);
  assert.equal(end.state, 'succeeded');
  assert.equal(end.progress, 1);
  assert.deepEqual(end.result, final.result);
  assert.equal(end.job.result, null, 'the result is given once, at the top');
  assert.ok(Array.isArray(end.logs));
});

test('401, 403 and 404 as on the job routes', { skip, ...TIMEOUT }, async () => {
  const job = await submit(llm(5, { max_tokens: 20 }));
  await finished(job.id);
  for (const path of [`/v1/jobs/${job.id}/snapshot`, `/v1/jobs/${job.id}/events?format=ui-message`]) {
    const headers = { Accept: 'text/event-stream' };
    assert.equal((await api(path, { token: null, headers })).status, 401, `${path} without a token`);
    assert.equal((await api(path, { token: BOB, headers })).status, 404, `${path}: another owner's job`);
    assert.equal((await api(path, { headers: { ...headers, Origin: 'https://evil.example' } })).status, 403, `${path} from a foreign origin`);
    assert.equal((await api(path.replace(job.id, 'NOSUCHJOB'), { headers })).status, 404, `${path}: no such job`);
  }
  assert.equal((await api(`/v1/jobs/${job.id}/events?format=nope`, { headers: { Accept: 'text/event-stream' } })).status, 400);
});
