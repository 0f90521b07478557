// Browser tests of the web UI (web/ui) in headless Chromium, driven by
// playwright-core, against the in-memory fake broker (tests/js/fake_broker.js)
// that serves the UI and simulates the shipped job types.
//
// Needs a Chromium binary: Debian's `chromium` package, or JOBCAST_CHROMIUM=/path.
// Without one these tests are skipped (and say so).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

import { waitFor } from './broker_test_helpers.js';
import { startFakeBroker } from './fake_broker.js';

const CHROMIUM =
  process.env.JOBCAST_CHROMIUM ||
  ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p));
const skip = CHROMIUM ? false : 'no Chromium (apt-get install chromium, or set JOBCAST_CHROMIUM)';

let browser;
let broker;

// What GET /v1/types lists: the shipped types (llm.generate with a schema,
// exec without) and one the page does not know yet.
const TYPES = [
  {
    type: 'llm.generate',
    schema: {
      type: 'object',
      properties: {
        prompt: { type: ['string', 'null'], description: 'what to generate from' },
        max_tokens: { type: ['integer', 'null'], minimum: 0, maximum: 100000, default: 64 },
      },
    },
  },
  {
    type: 'research',
    schema: { type: 'object', required: ['topic'], properties: { topic: { type: 'string', minLength: 1 } } },
  },
  { type: 'exec', schema: null },
  {
    type: 'translate',
    schema: {
      type: 'object',
      required: ['text'],
      properties: { text: { type: 'string' }, to: { enum: ['fr', 'de'], default: 'fr' } },
    },
  },
];

before(async () => {
  if (skip) return;
  broker = await startFakeBroker({ simulate: true, serveStatic: true, types: TYPES });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await broker?.stop();
});

/** A fresh page on the UI; fails the test on any page error. */
async function openUi(t, query = '') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  t.after(async () => {
    await context.close();
    assert.deepEqual(errors.map(String), [], 'no uncaught errors in the page');
  });
  await page.goto(`${broker.url}/${query}`);
  await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent === 'open');
  return page;
}

async function submit(page, type, params) {
  await page.selectOption('#submit-type', type);
  await page.fill('#submit-params', JSON.stringify(params));
  const before = await page.locator('#jobs-list [data-job-id]').count();
  await page.click('#submit-btn');
  await page.waitForFunction((n) => document.querySelectorAll('#jobs-list [data-job-id]').length > n, before);
  // New jobs go first in the list and open in the job view.
  return page.locator('#jobs-list [data-job-id]').first().getAttribute('data-job-id');
}

const tokensOf = (jobId) =>
  broker.events(jobId).filter((e) => e.kind === 'token').map((e) => e.data.text).join('');

async function waitForState(page, state, timeout = 15000) {
  await page.waitForFunction((s) => document.querySelector('#job-state').textContent === s, state, { timeout });
}

test('streams an llm.generate job into #job-text and shows it succeeded', { skip }, async (t) => {
  const page = await openUi(t);
  const id = await submit(page, 'llm.generate', { prompt: 'tides', max_tokens: 40, tokens_per_second: 100 });
  await waitForState(page, 'succeeded');
  assert.equal(await page.textContent('#job-text'), tokensOf(id));
  assert.equal(await page.textContent(`[data-job-id="${id}"] .badge`), 'succeeded');
  assert.equal(await page.isVisible('#cancel-btn'), false, 'nothing to cancel once finished');
});

test('the text survives broker restarts with nothing lost or repeated', { skip }, async (t) => {
  const page = await openUi(t);
  await page.evaluate(() => {
    window.__states = [];
    window.jobcast.onStateChange((s) => window.__states.push(s));
  });
  const id = await submit(page, 'llm.generate', { prompt: 'tides', max_tokens: 150, tokens_per_second: 60 });
  for (let i = 0; i < 2; i++) {
    await page.waitForFunction((n) => document.querySelector('#job-text').textContent.length > n, 100 + i * 250);
    broker.closeAll(1012, 'restart');
    await page.waitForFunction((n) => window.__states.filter((s) => s === 'open').length > n, i);
  }
  await waitForState(page, 'succeeded');
  assert.equal(await page.textContent('#job-text'), tokensOf(id));
  assert.deepEqual(await page.evaluate(() => window.__states), ['reconnecting', 'open', 'reconnecting', 'open']);
  assert.equal(await page.textContent('#conn-state'), 'open');
});

test('research shows one progress bar per stage', { skip }, async (t) => {
  const page = await openUi(t);
  await submit(page, 'research', { topic: 'tides', stages: ['plan', 'gather', 'read'], stage_ms: 150 });
  await waitForState(page, 'succeeded');
  const stages = await page.$$eval('#job-stages [data-stage]', (items) =>
    items.map((li) => [li.dataset.stage, li.dataset.status, li.querySelector('.pct').textContent]));
  assert.deepEqual(stages, [['plan', 'done', '100%'], ['gather', 'done', '100%'], ['read', 'done', '100%']]);
  assert.equal(await page.textContent('#job-progress-text'), '100%');
});

test('exec output lines appear in #job-log', { skip }, async (t) => {
  const page = await openUi(t);
  await submit(page, 'exec', { command: 'ls', args: ['/'] });
  await waitForState(page, 'succeeded');
  const lines = await page.$$eval('#job-log .log-message', (els) => els.map((e) => e.textContent));
  assert.deepEqual(lines, ['$ ls /', 'line 1', 'line 2', 'line 3']);
  assert.ok(await page.isVisible('#job-log'));
});

test('Cancel stops a running job', { skip }, async (t) => {
  const page = await openUi(t);
  await submit(page, 'llm.generate', { prompt: 'slow', max_tokens: 500, tokens_per_second: 5 });
  await waitForState(page, 'running');
  await page.click('#cancel-btn');
  await waitForState(page, 'cancelled');
  const id = await page.textContent('#job-id');
  await page.waitForFunction((jobId) =>
    document.querySelector(`[data-job-id="${jobId}"] .badge`)?.textContent === 'cancelled', id);
});

test('closing the tab does not cancel; Cancel does and the partial text stays', { skip }, async (t) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${broker.url}/`);
  await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent === 'open');
  const left = await submit(page, 'llm.generate', { prompt: 'left', max_tokens: 30, tokens_per_second: 60 });
  await page.waitForFunction(() => document.querySelector('#job-text').textContent.length > 10);
  const posts = () => broker.requests.filter((r) => r.method === 'POST' && r.url.endsWith('/cancel')).length;
  const cancelsBefore = posts();
  await context.close(); // the tab goes, mid-stream
  await broker.waitFor(() => broker.jobs.get(left).job.state === 'succeeded', 15_000, 'the left job to finish');
  assert.equal(posts(), cancelsBefore, 'no cancel was sent');

  const again = await openUi(t);
  const stopped = await submit(again, 'llm.generate', { prompt: 'stop me', max_tokens: 500, tokens_per_second: 20 });
  await again.waitForFunction(() => document.querySelector('#job-text').textContent.length > 10);
  await again.click('#cancel-btn');
  await waitForState(again, 'cancelled');
  const partial = await again.textContent('#job-text');
  assert.equal(partial, tokensOf(stopped), 'the partial text is shown, as stored');
  await again.reload();
  await again.waitForFunction((id) => document.querySelector('#job-id')?.textContent === id, stopped);
  await waitForState(again, 'cancelled');
  assert.equal(await again.textContent('#job-text'), partial, 'and is there again after a reload');
});

test('Cancel while the broker cannot be reached is tried again until it lands', { skip }, async (t) => {
  const page = await openUi(t);
  const id = await submit(page, 'llm.generate', { prompt: 'slow', max_tokens: 500, tokens_per_second: 5 });
  await waitForState(page, 'running');
  // The broker restarting: the first tries meet a refused connection, then a 503.
  let tries = 0;
  await page.route('**/cancel', (route) => {
    tries += 1;
    if (tries <= 2) return route.abort('connectionrefused');
    if (tries === 3) return route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"busy","message":"restarting"}}' });
    return route.continue();
  });
  await page.click('#cancel-btn');
  await waitForState(page, 'cancelled');
  assert.equal(tries, 4);
  assert.equal(broker.jobs.get(id).job.state, 'cancelled');
  assert.equal(await page.isVisible('#job-error'), false, 'no error shown');
});

test('a retried job: the text goes on from the checkpoint and the head says so', { skip }, async (t) => {
  const job = broker.createJob({ type: 'llm.generate', params: { prompt: 'retry' }, maxAttempts: 3 });
  const page = await openUi(t, `#job=${job.id}`);
  await page.waitForFunction((id) => document.querySelector('#job-id')?.textContent === id, job.id);
  broker.append(job.id, 'state', { state: 'running', attempt: 1, worker: 'w-1' });
  broker.append(job.id, 'token', { text: 'one ' });
  const checkpoint = broker.append(job.id, 'token', { text: 'two ' });
  broker.append(job.id, 'progress', { fraction: 0.6 });
  broker.append(job.id, 'token', { text: 'thr' }); // past the checkpoint: lost with its worker
  await page.waitForFunction(() => document.querySelector('#job-text').textContent === 'one two thr');
  broker.append(job.id, 'state', { state: 'queued', attempt: 1, reason: 'lease lost' });
  await page.waitForFunction(() => document.querySelector('#job-attempt').textContent === 'retrying — attempt 2 of 3');
  broker.append(job.id, 'state', { state: 'running', attempt: 2, worker: 'w-2', resume_seq: checkpoint.seq });
  broker.append(job.id, 'progress', { fraction: 0.5 });
  await page.waitForFunction(() => document.querySelector('#job-text').textContent === 'one two ');
  assert.equal(await page.textContent('#job-attempt'), 'retrying — attempt 2 of 3');
  assert.equal(await page.textContent('#job-progress-text'), '60%', 'progress does not go back');
  broker.append(job.id, 'token', { text: 'three' });
  broker.finish(job.id, 'succeeded', { text: 'one two three' });
  await waitForState(page, 'succeeded');
  assert.equal(await page.textContent('#job-text'), 'one two three');
  assert.equal(await page.textContent('#job-attempt'), '2 of 3');
});

test('jobs submitted elsewhere appear in the list through the jobs feed', { skip }, async (t) => {
  const page = await openUi(t);
  const job = broker.createJob({ type: 'exec', params: { command: 'date' } });
  await page.waitForSelector(`#jobs-list [data-job-id="${job.id}"]`);
  broker.append(job.id, 'state', { state: 'running', attempt: 1 });
  await page.waitForFunction((id) =>
    document.querySelector(`[data-job-id="${id}"] .badge`)?.textContent === 'running', job.id);
  // Clicking a job opens it.
  await page.click(`[data-job-id="${job.id}"]`);
  await page.waitForFunction((id) => document.querySelector('#job-id').textContent === id, job.id);
  assert.equal(await page.textContent('#job-state'), 'running');
});

test('invalid JSON parameters are explained, not sent', { skip }, async (t) => {
  const page = await openUi(t);
  const posts = () => broker.requests.filter((r) => r.method === 'POST').length;
  const before = posts();
  await page.fill('#submit-params', '{"prompt": ');
  await page.click('#submit-btn');
  assert.match(await page.textContent('#submit-error'), /not valid JSON/);
  assert.equal(await page.getAttribute('#submit-params', 'aria-invalid'), 'true');
  await page.fill('#submit-params', '[1, 2]');
  await page.click('#submit-btn');
  assert.equal(await page.textContent('#submit-error'), 'Parameters must be a JSON object.');
  assert.equal(posts(), before, 'nothing was submitted');
});

test('?token= in the page URL authenticates the WebSocket and REST calls', { skip }, async (t) => {
  const seen = broker.upgradeUrls.length;
  const page = await openUi(t, '?token=page-token#job=none');
  assert.ok(broker.upgradeUrls.slice(seen).includes('/v1/ws?access_token=page-token'));
  const list = broker.requests.filter((r) => r.url.startsWith('/v1/jobs?')).at(-1);
  assert.equal(list.headers.authorization, 'Bearer page-token');
  // The token leaves the address bar (safe to copy) but survives a reload of the tab.
  assert.equal(new URL(page.url()).search, '');
  const requests = broker.requests.length;
  await page.reload();
  await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent === 'open');
  assert.equal(broker.upgradeUrls.at(-1), '/v1/ws?access_token=page-token');
  // The page's REST calls (the list, the job) may still be on their way when
  // the socket opens: wait for them, then check every one.
  const api = await waitFor(() => {
    const calls = broker.requests.slice(requests).filter((r) => r.url.startsWith('/v1/'));
    return calls.length >= 2 && calls;
  }, { what: "the reloaded page's REST calls", timeoutMs: 10_000 });
  assert.ok(api.every((r) => r.headers.authorization === 'Bearer page-token'));
});

test('a finished job names the worker that ran it, though its JSON no longer does', { skip }, async (t) => {
  // The broker's job JSON has worker: null once the job finished; only the
  // replayed `running` state event knows it. Hold the job's REST snapshot back
  // until the replay has been shown, so that the snapshot lands last.
  const job = broker.createJob({ type: 'exec', params: { command: 'date' } });
  broker.append(job.id, 'state', { state: 'running', attempt: 1, worker: 'w-7' });
  broker.finish(job.id, 'succeeded', { exit_code: 0 });
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.route(`${broker.url}/v1/jobs/${job.id}`, async (route) => {
    await page.waitForFunction(() => document.querySelector('#job-state')?.textContent === 'succeeded');
    await route.continue();
  });
  const snapshot = page.waitForResponse(`${broker.url}/v1/jobs/${job.id}`);
  await page.goto(`${broker.url}/#job=${job.id}`);
  assert.equal((await (await snapshot).json()).worker, null);
  await page.waitForFunction(() => document.querySelector('#job-created').textContent !== '–');
  assert.equal(await page.textContent('#job-worker'), 'w-7');
  assert.equal(await page.textContent('#job-state'), 'succeeded');
});

test('the schema fields of the type are listed and its template replaces untouched params', { skip }, async (t) => {
  const page = await openUi(t);
  await page.waitForSelector('#submit-type option[value="translate"]', { state: 'attached' });
  const fields = () => page.$$eval('#schema-fields [data-field]', (items) => items.map((li) => li.textContent));
  const params = async () => JSON.parse(await page.inputValue('#submit-params'));

  // The shipped type keeps its example params; its schema's fields are listed.
  assert.equal((await params()).prompt, 'Write about tides');
  assert.deepEqual(await fields(), [
    'prompt string what to generate from',
    'max_tokens integer 0…100000; default 64',
  ]);

  // A type only the workers know: the template comes from its schema.
  await page.selectOption('#submit-type', 'translate');
  assert.deepEqual(await params(), { to: 'fr', text: '' });
  assert.deepEqual(await fields(), ['text string required', 'to enum one of "fr", "de"; default "fr"']);

  // No schema: no field list.
  await page.selectOption('#submit-type', 'exec');
  assert.deepEqual(await params(), { command: 'ls', args: ['-l', '/'] });
  assert.equal(await page.isVisible('#submit-schema'), false);

  // What the user typed is kept across a switch.
  await page.fill('#submit-params', '{"command": "echo"}');
  await page.selectOption('#submit-type', 'research');
  assert.deepEqual(await params(), { command: 'echo' });
  assert.deepEqual(await fields(), ['topic string required at least 1 character']);
});

test('params the schema of the type refuses are explained next to the form', { skip }, async (t) => {
  const page = await openUi(t);
  await page.waitForSelector('#submit-type option[value="translate"]', { state: 'attached' });
  const jobs = broker.jobs.size;
  await page.selectOption('#submit-type', 'translate');
  await page.fill('#submit-params', '{"to": "de"}');
  await page.click('#submit-btn');
  await page.waitForSelector('#submit-error:not([hidden])');
  assert.match(await page.textContent('#submit-error'), /params\/text/);
  assert.equal(broker.jobs.size, jobs, 'nothing was queued');
});
