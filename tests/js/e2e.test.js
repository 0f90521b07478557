// End to end: Debian's Chromium (driven by playwright-core) opens the web UI
// served by the REAL broker, submits an llm.generate job from the page, watches
// the tokens stream into #job-text, and keeps watching while the broker is
// killed with SIGKILL and restarted on the same port and database: the page must
// reconnect by itself and resume, ending with exactly the job's result.text.
//
//   JOBCAST_BIN=build/dev/bin JOBCAST_ARTIFACTS=build/dev/test-artifacts node --test tests/js/e2e.test.js
//
// Needs /usr/bin/chromium (scripts/setup.sh installs it) or JOBCAST_CHROMIUM;
// without one the test is skipped and says why. Leaves a screenshot in
// ${JOBCAST_ARTIFACTS:-test-artifacts}/e2e-llm.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { startBroker, startWorker, freePort, makeTempDir } from './broker_test_helpers.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const ARTIFACTS = process.env.JOBCAST_ARTIFACTS || 'test-artifacts';
const CHROMIUM = process.env.JOBCAST_CHROMIUM || '/usr/bin/chromium';

const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}: install Debian's chromium package (scripts/setup.sh does) or set JOBCAST_CHROMIUM`
  : !haveBinaries
    ? `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`
    : false;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The files the broker embeds at build time, and where they live in the tree. */
const ASSETS = {
  '/': 'web/ui/index.html',
  '/app.js': 'web/ui/app.js',
  '/style.css': 'web/ui/style.css',
  '/client/jobcast.js': 'web/client/jobcast.js',
};

/**
 * Checks that the broker serves the UI and client with usable content types,
 * and returns the paths whose served bytes differ from the source tree (a
 * build that predates the last edit of web/): the test then serves those from
 * the tree, so it always tests the code under review, and says so.
 */
async function staleAssets(baseUrl) {
  const stale = [];
  for (const [path, file] of Object.entries(ASSETS)) {
    const response = await fetch(baseUrl + path);
    assert.equal(response.status, 200, `GET ${path}`);
    const type = response.headers.get('content-type') ?? '';
    const expected = path.endsWith('.js') ? 'text/javascript' : path.endsWith('.css') ? 'text/css' : 'text/html';
    assert.ok(type.startsWith(expected), `GET ${path} is ${expected} (got ${type})`);
    if ((await response.text()) !== readFileSync(join(REPO, file), 'utf8')) stale.push(path);
  }
  return stale;
}

test('the UI streams an llm job, reconnects by itself after a broker SIGKILL + restart, and ends with result.text', {
  skip,
  timeout: 180_000,
}, async (t) => {
  const started = Date.now();
  const db = join(makeTempDir('jobcast-e2e-'), 'jobcast.db');
  const http = `127.0.0.1:${await freePort()}`;
  const zmq = `tcp://127.0.0.1:${await freePort()}`;
  const brokers = [];
  let worker;
  let context;
  let failed = true;
  t.after(async () => {
    await context?.close().catch(() => {});
    const signal = failed ? 'SIGKILL' : 'SIGTERM';
    await Promise.all([worker?.kill(signal), ...brokers.map((b) => b.kill(signal))]);
  });
  const logs = () =>
    [...brokers.map((b, i) => `--- broker #${i + 1}\n${b.output()}`), `--- worker\n${worker?.output() ?? ''}`]
      .join('\n').split('\n').slice(-100);

  const pageErrors = [];
  const consoleLines = [];
  let page;
  try {
    brokers.push(await startBroker({ bin: BIN, db, http, zmq }));
    worker = await startWorker({ bin: BIN, zmq, types: ['llm.generate'], name: 'e2e-worker' });
    const baseUrl = brokers[0].url;

    const stale = await staleAssets(baseUrl);
    if (stale.length > 0) {
      t.diagnostic(`the broker's embedded web assets predate the source tree (${stale.join(', ')}): ` +
        'serving those from web/ instead (rebuild the broker to test the embedded copies)');
    }

    context = await chromium.launchPersistentContext(makeTempDir('jobcast-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 860 },
    });
    for (const path of stale) {
      await context.route(`${baseUrl}${path === '/' ? '/' : path}`, (route) =>
        route.fulfill({
          status: 200,
          contentType: path.endsWith('.js') ? 'text/javascript' : path.endsWith('.css') ? 'text/css' : 'text/html',
          body: readFileSync(join(REPO, ASSETS[path]), 'utf8'),
        }));
    }
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));

    // ---- open the UI
    await page.goto(`${baseUrl}/`);
    await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent === 'open');
    // What the connection indicator shows, as the reader sees it (every change).
    await page.evaluate(() => {
      window.__indicator = [];
      new MutationObserver(() => {
        const shown = document.querySelector('#conn-state').textContent;
        if (window.__indicator.at(-1) !== shown) window.__indicator.push(shown);
      }).observe(document.querySelector('#conn-state'), { childList: true, characterData: true, subtree: true });
      window.__states = [];
      window.jobcast.onStateChange((state) => window.__states.push(state));
    });

    // ---- submit an llm job from the form: 400 tokens at 100/s, about 4 s of stream
    await page.selectOption('#submit-type', 'llm.generate');
    await page.fill('#submit-params', JSON.stringify({
      prompt: 'Write about tides',
      max_tokens: 400,
      tokens_per_second: 100,
      seed: 2024,
    }, null, 2));
    await page.click('#submit-btn');
    await page.waitForFunction(() => (document.querySelector('#job-id')?.textContent ?? '') !== '');
    const jobId = await page.textContent('#job-id');
    await page.waitForSelector(`#jobs-list [data-job-id="${jobId}"]`);

    // ---- tokens stream in
    const seqShown = () => page.evaluate(() => Number(document.querySelector('#job-seq').textContent));
    await page.waitForFunction(() => Number(document.querySelector('#job-seq').textContent) >= 60);
    assert.ok((await page.textContent('#job-text')).length > 0, 'tokens are in #job-text');
    assert.equal(await page.textContent('#job-state'), 'running');

    // ---- mid-stream: kill the broker (SIGKILL) and bring it back on the same port and db
    const restarts = [];
    for (let i = 0; i < 2; i++) {
      const threshold = i === 0 ? 60 : restarts[0].resumedSeq + 60;
      await page.waitForFunction((n) => Number(document.querySelector('#job-seq').textContent) >= n ||
        document.querySelector('#job-state').textContent !== 'running', threshold);
      if ((await page.textContent('#job-state')) !== 'running') break;
      const killedSeq = await seqShown();
      const killedText = await page.textContent('#job-text');
      const killedAt = Date.now();
      await brokers.at(-1).kill('SIGKILL');
      await page.waitForFunction(() => document.querySelector('#conn-state').textContent === 'reconnecting');
      brokers.push(await startBroker({ bin: BIN, db, http, zmq }));
      await page.waitForFunction(() => document.querySelector('#conn-state').textContent === 'open', null, {
        timeout: 30_000,
      });
      const reopenedAfterMs = Date.now() - killedAt;
      // The stream resumes: new events beyond what was on screen at the kill.
      await page.waitForFunction((n) => Number(document.querySelector('#job-seq').textContent) > n + 5, killedSeq, {
        timeout: 30_000,
      });
      restarts.push({ killedSeq, killedText, reopenedAfterMs, resumedSeq: await seqShown() });
    }
    assert.ok(restarts.length >= 1, 'the broker was restarted while the job streamed');

    // ---- the end: the page's text is the job's result, nothing lost or repeated
    await page.waitForFunction(() => document.querySelector('#job-state').textContent === 'succeeded', null, {
      timeout: 60_000,
    });
    const job = await (await fetch(`${baseUrl}/v1/jobs/${jobId}`)).json();
    assert.equal(job.state, 'succeeded');
    assert.equal(job.result.tokens, 400);
    const shown = await page.textContent('#job-text');
    if (shown !== job.result.text) {
      // Say where they part, rather than dumping two 2 KB strings.
      let at = 0;
      while (at < shown.length && shown[at] === job.result.text[at]) at++;
      assert.fail(`#job-text differs from result.text at char ${at} (lengths ${shown.length} vs ` +
        `${job.result.text.length}):\n  page: …${shown.slice(Math.max(0, at - 40), at + 40)}\n` +
        `  rest: …${job.result.text.slice(Math.max(0, at - 40), at + 40)}`);
    }
    assert.equal(await seqShown(), job.last_seq, 'the page saw every event up to the last');
    for (const { killedSeq, killedText } of restarts) {
      assert.ok(killedText.length > 0 && killedText.length < shown.length, `partial text on screen at seq ${killedSeq}`);
      assert.ok(shown.startsWith(killedText), `what was on screen at seq ${killedSeq} is a prefix of the result`);
    }
    assert.equal(await page.textContent(`[data-job-id="${jobId}"] .badge`), 'succeeded', 'the list row too');
    assert.equal(await page.isVisible('#cancel-btn'), false);
    assert.equal(await page.isVisible('#job-error'), false, 'no error shown');

    // ---- the indicator went reconnecting → open for each restart, and ends open
    const cycles = restarts.flatMap(() => ['reconnecting', 'open']);
    assert.deepEqual(await page.evaluate(() => window.__indicator), cycles, 'the indicator the reader sees');
    assert.deepEqual(await page.evaluate(() => window.__states), cycles, 'the client states');
    assert.equal(await page.getAttribute('#conn', 'data-state'), 'open');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    // The UI logs stream holes the client repaired as `jobcast: …` warnings,
    // and shows other client errors in #notice: neither happened.
    assert.deepEqual(consoleLines.filter((line) => line.includes('jobcast:')), []);
    assert.equal(await page.isVisible('#notice'), false, 'no client error notice');

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'e2e-llm.png');
    await page.screenshot({ path: shot, fullPage: true });
    const summary = restarts.map(({ killedText, ...r }) => ({ ...r, charsShown: killedText.length }));
    t.diagnostic(`restarts: ${JSON.stringify(summary)}; ${job.last_seq} events; screenshot ${shot}; ` +
      `${Date.now() - started} ms`);
    failed = false;
  } catch (err) {
    if (page) {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'e2e-llm-failure.png'), fullPage: true }).catch(() => {});
    }
    t.diagnostic('page errors / console:');
    for (const line of [...pageErrors, ...consoleLines.slice(-30)]) t.diagnostic(line);
    t.diagnostic('process logs:');
    for (const line of logs()) t.diagnostic(line);
    throw err;
  }
});

test('the UI over native TLS: https:// page, wss:// stream, the whole job text', {
  skip,
  timeout: 120_000,
}, async (t) => {
  const dir = makeTempDir('jobcast-e2e-tls-');
  const [cert, key] = [join(dir, 'broker.crt'), join(dir, 'broker.key')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  const broker = await startBroker({ bin: BIN, db: join(dir, 'jobcast.db'), args: ['--tls-cert', cert, '--tls-key', key] });
  let worker;
  let context;
  t.after(async () => {
    await context?.close().catch(() => {});
    await Promise.all([worker?.kill('SIGTERM'), broker.kill('SIGTERM')]);
  });
  try {
    worker = await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'], name: 'e2e-tls-worker' });
    const baseUrl = `https://${broker.http}`;
    context = await chromium.launchPersistentContext(makeTempDir('jobcast-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      ignoreHTTPSErrors: true, // the test's self-signed certificate
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(String(err)));

    await page.goto(`${baseUrl}/`);
    await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent === 'open');
    assert.deepEqual(sockets, [`wss://${broker.http}/v1/ws`], 'the page chose wss:// by itself');

    await page.selectOption('#submit-type', 'llm.generate');
    await page.fill('#submit-params', JSON.stringify({ prompt: 'tls', max_tokens: 120, tokens_per_second: 200, seed: 7 }));
    await page.click('#submit-btn');
    await page.waitForFunction(() => (document.querySelector('#job-id')?.textContent ?? '') !== '');
    const jobId = await page.textContent('#job-id');
    await page.waitForFunction(() => document.querySelector('#job-state').textContent === 'succeeded', null, {
      timeout: 60_000,
    });
    const job = await page.evaluate(async (id) => (await fetch(`/v1/jobs/${id}`)).json(), jobId);
    assert.equal(job.result.tokens, 120);
    assert.equal(await page.textContent('#job-text'), job.result.text);
    assert.deepEqual(pageErrors, []);
    // Plain http:// on the same port is refused, with the reason.
    const plain = await fetch(`http://${broker.http}/`);
    assert.equal(plain.status, 400);
    assert.equal((await plain.json()).error.code, 'tls_required');
  } catch (err) {
    for (const line of [broker.output(), worker?.output() ?? ''].join('\n').split('\n').slice(-60)) t.diagnostic(line);
    throw err;
  }
});
