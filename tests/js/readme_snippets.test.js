// The README's two React snippets (its "AI apps" section) as a new user
// copies them: taken from README.md as they stand, compiled (JSX), and
// rendered with @testing-library/react in jsdom against the REAL broker, with
// auth on, and an llm worker. The useChat page: Ask streams the answer to the
// job's result.text; a reload mid-stream (the same component on a fresh page
// with the same localStorage) continues the answer with no word twice; Stop
// cancels the job and its partial text stays. The useJob component: the text
// streams to result.text; Stop cancels.
//
//   JOBCAST_BIN=build/test/bin node --test tests/js/readme_snippets.test.js

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JSDOM } from 'jsdom';
import ts from 'typescript';
import { WebSocket } from 'ws';

import { startBroker, startWorker, makeTempDir, waitFor } from './broker_test_helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = haveBinaries ? false : `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`;
const TIMEOUT = { timeout: 120_000 };
const SECRET = 'readme-snippets-secret-of-at-least-32-bytes';

/** An HS256 JWT for `sub`, valid for an hour: what the app's backend hands its page. */
function mintToken(sub) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: now, exp: now + 3600 })}`;
  return `${unsigned}.${createHmac('sha256', SECRET).update(unsigned).digest('base64url')}`;
}

// A browser's globals for the snippets: a DOM, localStorage, WebSocket.
const dom = new JSDOM('<!doctype html><html><body></body></html>', { url: 'http://127.0.0.1/' });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
globalThis.navigator ??= dom.window.navigator;
globalThis.localStorage = dom.window.localStorage;
globalThis.WebSocket = WebSocket;
// Updates come from the network, as in a browser, not from inside act().
globalThis.IS_REACT_ACT_ENVIRONMENT = false;
const { createElement } = await import('react');
const { render, screen, fireEvent, cleanup, waitFor: waitForRender } = await import('@testing-library/react');

/**
 * The README's ```jsx blocks of its "AI apps" section, each compiled to a
 * module that exports its component; BROKER and jwt, which the snippets take
 * from the app around them, are the globals README_BROKER and README_JWT.
 */
function readmeSnippets() {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## AI apps'));
  const blocks = [...section.slice(0, section.indexOf('\n## ')).matchAll(/```jsx\n([\s\S]*?)```/g)].map((m) => m[1]);
  // Under the root's node_modules, so that the snippets' imports resolve as in an app.
  const cache = join(ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'readme-snippets-'));
  const modules = blocks.map((block, i) => {
    const name = block.match(/^function (\w+)\(/m)[1];
    const source = `const BROKER = globalThis.README_BROKER;\nconst jwt = globalThis.README_JWT;\n${block}\nexport { ${name} };\n`;
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { jsx: ts.JsxEmit.ReactJSX, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    const file = join(dir, `snippet-${i}.mjs`);
    writeFileSync(file, outputText);
    return { name, url: pathToFileURL(file).href };
  });
  return { dir, modules };
}

const stack = {};
before(async () => {
  if (skip) return;
  stack.db = join(makeTempDir('jobcast-readme-'), 'jobcast.db');
  stack.broker = await startBroker({ bin: BIN, db: stack.db, args: ['--jwt-secret', SECRET] });
  stack.worker = await startWorker({ bin: BIN, zmq: stack.broker.zmq, types: ['llm.generate'], name: 'readme-worker' });
  stack.token = mintToken('readme-reader');
  globalThis.README_BROKER = stack.broker.url;
  globalThis.README_JWT = stack.token;
  stack.snippets = readmeSnippets();
});
after(async () => {
  cleanup();
  if (stack.snippets) rmSync(stack.snippets.dir, { recursive: true, force: true });
  await Promise.all([stack.worker?.kill('SIGKILL'), stack.broker?.kill('SIGKILL')]);
});

async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(`${stack.broker.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${stack.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

async function finished(id) {
  return waitFor(async () => {
    const { json } = await api(`/v1/jobs/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(json?.state) && json;
  }, { what: `job ${id} to finish`, timeoutMs: 90_000, intervalMs: 50 });
}

/** The component of README snippet `i`, from a fresh module (a fresh page's). */
async function snippet(i, page) {
  const { name, url } = stack.snippets.modules[i];
  return (await import(`${url}?page=${page}`))[name];
}

const waitUntil = (predicate, what, timeout = 60_000) =>
  waitForRender(() => assert.ok(predicate(), `waiting for ${what}`), { timeout, interval: 20 });

/** The only job of the caller's that is running or queued (the one Ask submitted). */
async function askedJob(before) {
  return waitFor(async () => {
    const { json } = await api('/v1/jobs?limit=10');
    return json.jobs.find((j) => !before.has(j.id));
  }, { what: 'the job Ask submitted' });
}

async function jobIds() {
  return new Set((await api('/v1/jobs?limit=100')).json.jobs.map((j) => j.id));
}

test('README useChat snippet: Ask streams the answer, a reload continues it, Stop cancels', { skip, ...TIMEOUT }, async () => {
  assert.equal(stack.snippets.modules.length, 2, 'two jsx snippets in the AI apps section');
  const paragraphs = (container) => [...container.querySelectorAll('p')].map((p) => p.textContent);

  // Ask: the answer streams to the job's text.
  let ChatPage = await snippet(0, 1);
  let before = await jobIds();
  const first = render(createElement(ChatPage, { chatId: 'readme-chat-1' }));
  fireEvent.click(screen.getByText('Ask'));
  let job = await askedJob(before);
  assert.equal(job.params.max_tokens, 200, "the snippet's body reaches the job's params");
  await waitUntil(() => screen.queryByText('Stop') !== null, 'Stop while it streams');
  job = await finished(job.id);
  assert.equal(job.state, 'succeeded');
  await waitUntil(() => paragraphs(first.container).at(-1) === job.result.text, 'the whole answer on the page');
  assert.equal(screen.queryByText('Stop'), null, 'no Stop once it is done');
  first.unmount();

  // A reload mid-stream: a fresh page (module, transport, component) with the
  // same localStorage and chat id; the old page's connection just goes.
  before = await jobIds();
  ChatPage = await snippet(0, 2);
  const old = render(createElement(ChatPage, { chatId: 'readme-chat-2' }));
  fireEvent.click(old.getByText('Ask'));
  job = await askedJob(before);
  await waitUntil(() => (paragraphs(old.container).at(-1) ?? '').length > 100, 'text on the first page');
  const reloaded = render(createElement(await snippet(0, 3), { chatId: 'readme-chat-2' }));
  job = await finished(job.id);
  assert.equal(job.state, 'succeeded', 'the reload did not cancel the job');
  await waitUntil(() => paragraphs(reloaded.container).at(-1) === job.result.text, 'the answer continued on the reloaded page');
  assert.equal(paragraphs(reloaded.container).filter((t) => t).length, 1, 'one assistant message');
  old.unmount();
  reloaded.unmount();

  // Stop: the job is cancelled, its partial text kept.
  before = await jobIds();
  const stopping = render(createElement(await snippet(0, 4), { chatId: 'readme-chat-3' }));
  fireEvent.click(stopping.getByText('Ask'));
  job = await askedJob(before);
  await waitUntil(() => (paragraphs(stopping.container).at(-1) ?? '').length > 20, 'some text before Stop');
  fireEvent.click(stopping.getByText('Stop'));
  job = await finished(job.id);
  assert.equal(job.state, 'cancelled', 'Stop cancels the job');
  const { json: snapshot } = await api(`/v1/jobs/${job.id}/snapshot`);
  const shown = paragraphs(stopping.container).at(-1);
  assert.ok(snapshot.text.length > 0 && snapshot.text.startsWith(shown), 'the partial text stays, and the page showed a prefix of it');
  stopping.unmount();
});

test('README useJob snippet: the text streams to result.text, Stop cancels', { skip, ...TIMEOUT }, async () => {
  const Answer = await snippet(1, 1);
  const submit = async (params) => (await api('/v1/jobs', { method: 'POST', body: { type: 'llm.generate', params } })).json;

  let job = await submit({ prompt: 'readme use job', max_tokens: 150, tokens_per_second: 100 });
  const streaming = render(createElement(Answer, { jobId: job.id }));
  job = await finished(job.id);
  assert.equal(job.state, 'succeeded');
  await waitUntil(() => streaming.container.querySelector('p').textContent === job.result.text, 'the whole text');
  await waitUntil(() => streaming.container.querySelector('small').textContent.startsWith('succeeded · 100%'), 'the state line');
  streaming.unmount();

  job = await submit({ prompt: 'readme stop', max_tokens: 5000, tokens_per_second: 50 });
  const stopping = render(createElement(Answer, { jobId: job.id }));
  await waitUntil(() => stopping.container.querySelector('p').textContent.length > 20, 'some text before Stop');
  fireEvent.click(stopping.getByText('Stop'));
  job = await finished(job.id);
  assert.equal(job.state, 'cancelled');
  const { json: snapshot } = await api(`/v1/jobs/${job.id}/snapshot`);
  await waitUntil(() => stopping.container.querySelector('p').textContent === snapshot.text, 'the partial text stays on the page');
  stopping.unmount();
});
