// The llm.chat example worker (examples/llm-chat.mjs) against the project's
// fake OpenAI-compatible server (tests/integration/fake_openai.py) and the
// real broker: the reply streams into the job token by token, the request is
// an OpenAI chat completion, upstream errors fail the job, and a cancel closes
// the upstream request.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';

import {
  ROOT,
  cancelJob,
  getJob,
  needsBroker,
  readEvents,
  startNodeWorker,
  startTestBroker,
  submit,
  tokens,
  waitFor,
} from './helpers.mjs';

const OPTIONS = { skip: needsBroker, timeout: 30_000 };
const REPLY = ['Hello', '!', ' I', ' am', ' a', ' fake', ' model', ',', ' streaming', ' for', ' jobcast', ' \u2014', ' caf\u00e9', ' \u{1F600}', '.'];

// fake_openai.py on an ephemeral port; resolves with its base URL and port.
async function startFakeOpenAI(t, args = []) {
  const child = spawn('python3', [join(ROOT, 'tests/integration/fake_openai.py'), '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const [line] = await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (l) => resolve([l]));
    child.once('exit', (code) => reject(new Error(`fake_openai.py exited ${code}`)));
  });
  const url = /listening (http:\/\/\S+)/.exec(line)[1];
  return { url, port: Number(new URL(url).port) };
}

// The local ports of this host's established TCP connections to `port` (client side).
function connectionsTo(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6']
    .flatMap((file) => readFileSync(file, 'utf8').split('\n').slice(1))
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length > 3 && fields[2].endsWith(`:${hex}`) && fields[3] === '01')
    .map((fields) => fields[1].split(':')[1]);
}

async function stack(t, fakeArgs, workerEnv = {}) {
  const fake = await startFakeOpenAI(t, fakeArgs);
  const broker = await startTestBroker();
  t.after(() => broker.kill('SIGKILL'));
  const worker = await startNodeWorker('llm-chat.mjs', ['--broker', broker.zmq, '--name', 'node-llm'], {
    env: { JOBCAST_OPENAI_BASE_URL: fake.url, JOBCAST_OPENAI_MODEL: 'fake-model', JOBCAST_OPENAI_API_KEY: 'sk-test', ...workerEnv },
    waitReady: false,
  });
  t.after(() => worker.kill('SIGKILL'));
  return { fake, broker, worker };
}

test('llm.chat streams the completion into the job, token by token', OPTIONS, async (t) => {
  const { fake, broker, worker } = await stack(t, ['--api-key', 'sk-test']);
  const messages = [{ role: 'user', content: 'Say hello' }];
  const job = await submit(broker, 'llm.chat', { messages, temperature: 0.5 });
  const events = await readEvents(broker, job.id);
  assert.equal(events.at(-1).data.state, 'succeeded', worker.output());
  assert.deepEqual(tokens(events), REPLY);
  assert.deepEqual((await getJob(broker, job.id)).result, { text: REPLY.join(''), model: 'fake-model', finish_reason: 'stop' });
  const last = await (await fetch(`${fake.url}/last-request`)).json();
  assert.deepEqual(last.body, { model: 'fake-model', messages, stream: true, temperature: 0.5 });
  assert.equal(last.headers.authorization, 'Bearer sk-test');
});

test('llm.chat: an upstream 4xx fails the job for good, missing messages fail clearly', OPTIONS, async (t) => {
  const { broker } = await stack(t, ['--status', '400']);
  const rejected = await submit(broker, 'llm.chat', { messages: [{ role: 'user', content: 'x' }] }, { max_attempts: 3 });
  const empty = await submit(broker, 'llm.chat', {}, { max_attempts: 3 });
  for (const job of [rejected, empty]) await readEvents(broker, job.id);
  const [a, b] = await Promise.all([getJob(broker, rejected.id), getJob(broker, empty.id)]);
  assert.deepEqual([a.state, a.attempt], ['failed', 1]);
  assert.match(a.error, /answered 400: .*fake error 400/);
  assert.deepEqual([b.state, b.attempt], ['failed', 1]);
  assert.match(b.error, /"messages"/);
});

test('cancelling an llm.chat job closes the upstream request', OPTIONS, async (t) => {
  const { fake, broker } = await stack(t, ['--delay-ms', '150']);
  const job = await submit(broker, 'llm.chat', { messages: [{ role: 'user', content: 'a long answer' }] });
  await readEvents(broker, job.id, { until: (events) => tokens(events).length >= 2 });
  const streaming = connectionsTo(fake.port);
  assert.equal(streaming.length, 1, 'the completion streams over one connection');
  await cancelJob(broker, job.id);
  const events = await readEvents(broker, job.id);
  assert.equal(events.at(-1).data.state, 'cancelled');
  assert.ok(tokens(events).length < REPLY.length, 'the stream stopped early');
  await waitFor(() => !connectionsTo(fake.port).includes(streaming[0]), { what: 'the upstream request to close', timeoutMs: 2000 });
});
