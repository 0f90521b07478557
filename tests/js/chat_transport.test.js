// JobcastChatTransport driving the REAL AI SDK `Chat` (from @ai-sdk/react,
// the class behind useChat) against the REAL broker and llm worker (the sim
// backend of llm.generate): the assistant message equals the job's
// result.text — live, across dropped connections, across the broker killed
// with SIGKILL and restarted on the same port and db at random points, and
// after a page reload (reconnectToStream). stop() cancels the job, also while
// the broker is down; a reader that stops reading or a dropped connection
// does not.
//
//   JOBCAST_BIN=build/test/bin node --test tests/js/chat_transport.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Chat } from '@ai-sdk/react';
import { JobcastChatTransport, chatParams } from 'jobcast';

import { startBroker, startWorker, freePort, makeTempDir, waitFor } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = haveBinaries ? false : `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`;
const TIMEOUT = { timeout: 150_000 };

// One broker on a fixed address (so a restart comes back where clients and
// the worker look for it) and one llm.generate worker.
const stack = {};
before(async () => {
  if (skip) return;
  stack.http = `127.0.0.1:${await freePort()}`;
  stack.zmq = `tcp://127.0.0.1:${await freePort()}`;
  stack.db = join(makeTempDir('jobcast-chat-'), 'jobcast.db');
  stack.broker = await startBroker({ bin: BIN, db: stack.db, http: stack.http, zmq: stack.zmq });
  stack.url = stack.broker.url;
  stack.worker = await startWorker({ bin: BIN, zmq: stack.zmq, types: ['llm.generate'], name: 'chat-worker' });
});
after(async () => {
  await Promise.all([stack.worker?.kill('SIGKILL'), stack.broker?.kill('SIGKILL')]);
});

async function restartBroker() {
  await stack.broker.kill('SIGKILL');
  stack.broker = await startBroker({ bin: BIN, db: stack.db, http: stack.http, zmq: stack.zmq });
}

async function getJob(id) {
  const response = await fetch(`${stack.url}/v1/jobs/${id}`);
  assert.equal(response.status, 200);
  return response.json();
}

async function finished(id, timeoutMs = 90_000) {
  return waitFor(async () => {
    try {
      const job = await getJob(id);
      return ['succeeded', 'failed', 'cancelled'].includes(job.state) && job;
    } catch {
      return false; // the broker is restarting
    }
  }, { what: `job ${id} to finish`, timeoutMs, intervalMs: 50 });
}

/** Web Storage over a Map: what localStorage keeps across a page reload. */
function memoryStorage() {
  const map = new Map();
  return {
    map,
    getItem: (key) => (map.has(key) ? map.get(key) : null),
    setItem: (key, value) => map.set(key, String(value)),
    removeItem: (key) => map.delete(key),
  };
}

const textOf = (message) => (message?.parts ?? []).filter((p) => p.type === 'text').map((p) => p.text).join('');
const assistants = (chat) => chat.messages.filter((m) => m.role === 'assistant');
const lastText = (chat) => textOf(assistants(chat).at(-1));

/** A chat whose llm.generate params come from `extra` (the sim backend's knobs). */
function newChat({ id = crypto.randomUUID(), transport, messages } = {}) {
  return new Chat({ id, transport, messages });
}

const sim = (seed, extra = {}) => ({ max_tokens: 200, tokens_per_second: 200, seed, ...extra });

test('chatParams: the conversation as OpenAI messages (an assistant\'s last text part), the last user text as prompt', () => {
  const params = chatParams([
    { id: '1', role: 'system', parts: [{ type: 'text', text: 'Be brief.' }] },
    { id: '2', role: 'user', parts: [{ type: 'text', text: 'Hello' }, { type: 'text', text: ' there' }] },
    // A retried job's message: the failed attempt's part, then the job's text.
    { id: '3', role: 'assistant', parts: [{ type: 'step-start' }, { type: 'text', text: 'Hi th' }, { type: 'text', text: 'Hi!' }] },
    { id: '4', role: 'user', parts: [{ type: 'file', url: 'data:,x', mediaType: 'text/plain' }] },
    { id: '5', role: 'user', parts: [{ type: 'text', text: 'Tides?' }] },
  ]);
  assert.deepEqual(params, {
    prompt: 'Tides?',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello there' },
      { role: 'assistant', content: 'Hi!' },
      { role: 'user', content: 'Tides?' },
    ],
  });
});

test('a Chat streams an llm.generate job: the assistant message is result.text', { skip, ...TIMEOUT }, async () => {
  const storage = memoryStorage();
  const transport = new JobcastChatTransport({ url: stack.url, storage });
  const chat = newChat({ transport });
  await chat.sendMessage({ text: 'Write about tides' }, { body: sim(1) });
  assert.equal(chat.status, 'ready');
  const [message] = assistants(chat);
  const job = await getJob(message.id); // the message is named by its job
  assert.equal(job.type, 'llm.generate');
  assert.equal(job.state, 'succeeded');
  assert.equal(job.params.prompt, 'Write about tides');
  assert.deepEqual(job.params.messages, [{ role: 'user', content: 'Write about tides' }]);
  assert.equal(job.params.max_tokens, 200, 'the request body is merged into the params');
  assert.equal(textOf(message), job.result.text);
  assert.deepEqual(message.parts.map((p) => p.type), ['text'], 'one text part');
  assert.equal(storage.map.size, 0, 'a stream delivered to the end is forgotten');
  assert.equal(await transport.reconnectToStream({ chatId: chat.id }), null, 'nothing to resume');

  // A second turn: the whole conversation goes to the job.
  await chat.sendMessage({ text: 'And waves?' }, { body: sim(2, { max_tokens: 20 }) });
  const second = await getJob(assistants(chat)[1].id);
  assert.deepEqual(second.params.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.equal(second.params.messages[1].content, job.result.text);
  assert.equal(lastText(chat), second.result.text);
});

test('dropped connections at random points: every word once', { skip, ...TIMEOUT }, async () => {
  // A fetch whose event streams break (an error mid-body, as a lost network
  // does) after a random number of reads; the transport resumes with Last-Event-ID.
  let drops = 0;
  let seed = 7;
  const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const lastEventIds = [];
  const flaky = async (url, init) => {
    const response = await fetch(url, init);
    if (!String(url).includes('format=ui-message') || !response.body) return response;
    lastEventIds.push(init.headers['Last-Event-ID'] ?? null);
    let reads = 1 + Math.floor(random() * 4);
    const reader = response.body.getReader();
    const body = new ReadableStream({
      async pull(controller) {
        if (reads-- === 0) {
          drops += 1;
          await reader.cancel();
          controller.error(new TypeError('network connection lost'));
          return;
        }
        const { value, done } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  const transport = new JobcastChatTransport({ url: stack.url, storage: null, fetch: flaky });
  const chat = newChat({ transport });
  await chat.sendMessage({ text: 'drops' }, { body: sim(3, { max_tokens: 300, tokens_per_second: 100 }) });
  const [message] = assistants(chat);
  const job = await finished(message.id);
  assert.equal(job.state, 'succeeded');
  assert.ok(drops >= 20, `${drops} dropped connections`);
  // A connection dropped before its first event reconnects from the start;
  // once an event was delivered, every reconnect resumes after the last one.
  const resumes = lastEventIds.slice(lastEventIds.findIndex((id) => id !== null)).map(Number);
  assert.ok(resumes.length > 10 && resumes.every((id, i) => id > 0 && id >= (resumes[i - 1] ?? 0)),
    `reconnects resume with Last-Event-ID: ${lastEventIds.join(' ')}`);
  assert.equal(textOf(message), job.result.text);
  assert.deepEqual(message.parts.map((p) => p.type), ['text'], 'a resumed part is not opened twice');
});

test('broker killed with SIGKILL at random points and restarted: the message is result.text', { skip, ...TIMEOUT }, async (t) => {
  const transport = new JobcastChatTransport({ url: stack.url, storage: null });
  const chat = newChat({ transport });
  // Long enough for the kills below (the sim keeps its rate across the outages).
  const sending = chat.sendMessage({ text: 'restarts' }, { body: sim(4, { max_tokens: 4000, tokens_per_second: 100 }) });
  let seed = 11;
  const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  await waitFor(() => lastText(chat).length > 0, { what: 'the first text' });
  const began = Date.now();
  const kills = [];
  while (kills.length < 50 && Date.now() - began < 55_000 && chat.status !== 'ready') {
    // A random point of the stream: some new text since the last restart, then 0-300 ms more.
    const seen = lastText(chat).length;
    await waitFor(() => lastText(chat).length > seen || chat.status === 'ready', { what: 'text after the restart', timeoutMs: 30_000 });
    await new Promise((resolve) => setTimeout(resolve, random() * 300));
    if (chat.status === 'ready') break;
    kills.push(lastText(chat).length);
    await restartBroker();
  }
  t.diagnostic(`${kills.length} kills in ${Date.now() - began} ms, at text lengths ${kills.join(' ')}`);
  await sending;
  const [message] = assistants(chat);
  const job = await finished(message.id);
  assert.equal(job.state, 'succeeded');
  assert.ok(kills.length >= 20, `${kills.length} kills mid-stream`);
  assert.equal(job.attempt, 1, 'the worker kept its job through the restarts');
  assert.equal(chat.status, 'ready');
  assert.equal(textOf(message), job.result.text, 'no duplicated or missing span');
  assert.deepEqual(message.parts.map((p) => p.type), ['text']);
});

test('reconnectToStream after a page reload: the message continues, no word twice', { skip, ...TIMEOUT }, async () => {
  const storage = memoryStorage(); // localStorage survives the reload
  const cases = [
    { keepsPartialMessage: true, finishesDuringReload: false },
    { keepsPartialMessage: false, finishesDuringReload: false },
    { keepsPartialMessage: true, finishesDuringReload: true },
  ];
  for (const [n, { keepsPartialMessage, finishesDuringReload }] of cases.entries()) {
    // The first page: its connections die with the page, and its abort
    // signals never fire (an unload runs no abort).
    const page = new AbortController();
    let unloaded = false;
    const pageFetch = (url, init) =>
      unloaded ? new Promise(() => {}) : fetch(url, { ...init, signal: AbortSignal.any([init.signal, page.signal].filter(Boolean)) });
    const chatId = crypto.randomUUID();
    const first = newChat({ id: chatId, transport: new JobcastChatTransport({ url: stack.url, storage, fetch: pageFetch }) });
    first.sendMessage({ text: 'reload' }, { body: sim(5 + n, { max_tokens: 300, tokens_per_second: 100 }) });
    await waitFor(() => lastText(first).length > 50, { what: 'some text on the first page' });
    unloaded = true;
    page.abort();
    const saved = structuredClone(keepsPartialMessage ? first.messages : first.messages.filter((m) => m.role === 'user'));
    const jobId = assistants(first)[0].id;
    assert.equal(storage.map.get(`jobcast.chat.${chatId}`), jobId, 'the chat remembers its job');
    if (finishesDuringReload) await finished(jobId);

    // The reloaded page: a new transport on the same storage, the messages the app saved.
    const requests = [];
    const recording = (url, init) => {
      requests.push({ url: String(url), lastEventId: init?.headers?.['Last-Event-ID'] });
      return fetch(url, init);
    };
    const transport = new JobcastChatTransport({ url: stack.url, storage, fetch: recording });
    const chat = newChat({ id: chatId, transport, messages: saved });
    await chat.resumeStream();
    const job = await finished(jobId);
    const what = `partial message saved: ${keepsPartialMessage}, finished during the reload: ${finishesDuringReload}`;
    assert.equal(job.state, 'succeeded', 'the reload did not cancel the job');
    assert.equal(chat.status, 'ready');
    assert.ok(requests[0].url.endsWith(`/v1/jobs/${jobId}/snapshot`), 'hydrated from the snapshot');
    const streams = requests.filter((r) => r.url.includes('format=ui-message'));
    if (finishesDuringReload) assert.deepEqual(streams, [], 'a finished job is its snapshot');
    else assert.ok(streams.length > 0 && streams.every((r) => Number(r.lastEventId) > 0), 'then the events after its seq');
    assert.equal(assistants(chat).length, 1, `one assistant message (${what})`);
    assert.equal(assistants(chat)[0].id, jobId);
    assert.equal(lastText(chat), job.result.text, 'the whole text, every word once');
    assert.equal(storage.map.has(`jobcast.chat.${chatId}`), false, 'delivered: forgotten');
    assert.equal(await transport.reconnectToStream({ chatId }), null);
  }
});

test('stop() cancels the job and keeps its partial text, also while the broker restarts', { skip, ...TIMEOUT }, async () => {
  for (const brokerDown of [false, true]) {
    const storage = memoryStorage();
    const transport = new JobcastChatTransport({ url: stack.url, storage });
    const chat = newChat({ transport });
    const sending = chat.sendMessage({ text: 'stop' }, { body: sim(brokerDown ? 9 : 8, { max_tokens: 5000, tokens_per_second: 100 }) });
    await waitFor(() => lastText(chat).length > 30, { what: 'some text before Stop' });
    const jobId = assistants(chat)[0].id;
    let restarted;
    if (brokerDown) {
      await stack.broker.kill('SIGKILL');
      restarted = new Promise((resolve) => setTimeout(resolve, 700)).then(() =>
        startBroker({ bin: BIN, db: stack.db, http: stack.http, zmq: stack.zmq }).then((b) => (stack.broker = b)));
    }
    await chat.stop();
    await sending;
    await restarted;
    const job = await finished(jobId);
    assert.equal(job.state, 'cancelled', `Stop cancels the job (broker down at Stop: ${brokerDown})`);
    assert.equal(storage.map.size, 0, 'a stopped chat has nothing to resume');
    assert.equal(await transport.reconnectToStream({ chatId: chat.id }), null);
    const snapshot = await (await fetch(`${stack.url}/v1/jobs/${jobId}/snapshot`)).json();
    assert.equal(snapshot.state, 'cancelled');
    assert.ok(snapshot.text.length >= lastText(chat).length && snapshot.text.startsWith(lastText(chat)),
      'the snapshot keeps the partial text, of which the chat showed a prefix');
    assert.ok(snapshot.text.length < job.params.max_tokens, 'stopped well before the end');
  }
});

test('a reader that stops reading, or an aborted resume, does not cancel', { skip, ...TIMEOUT }, async () => {
  const transport = new JobcastChatTransport({ url: stack.url, storage: null });
  const messages = [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'reader' }] }];
  const stream = await transport.sendMessages({
    chatId: 'reader-chat',
    messages,
    abortSignal: new AbortController().signal,
    trigger: 'submit-message',
    messageId: undefined,
    body: sim(10, { max_tokens: 150, tokens_per_second: 150 }),
  });
  const reader = stream.getReader();
  const chunks = [];
  while (chunks.filter((c) => c.type === 'text-delta').length < 5) chunks.push((await reader.read()).value);
  await reader.cancel();
  const jobId = chunks.find((c) => c.type === 'start').messageId;

  // A resume whose request is aborted before its stream is handed over (a
  // resume superseded by another, StrictMode's trial unmount): no cancel either.
  const superseded = new AbortController();
  superseded.abort();
  await assert.rejects(transport.reconnectToStream({ chatId: 'reader-chat', abortSignal: superseded.signal }), { name: 'AbortError' });

  const job = await finished(jobId);
  assert.equal(job.state, 'succeeded', 'the job ran to the end');
  const resumed = await transport.reconnectToStream({ chatId: 'reader-chat' });
  assert.ok(resumed, 'the job the reader left is still the chat’s to resume');
  let text = '';
  for await (const chunk of resumed) if (chunk.type === 'text-delta') text += chunk.delta;
  assert.equal(text, job.result.text);
});
