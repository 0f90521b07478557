// The README's cluster walk-through in Debian's Chromium (playwright-core), with
// the real things: a Redis Cluster in the strict layout (3 primaries with a
// replica each, scripts/redis_cluster.py, node timeout 2 s as in
// scripts/cluster.sh), three brokers on it, and a worker whose --broker list
// names every broker, broker 2 first. The page is broker 1's own UI, opened
// directly as the README says (scripts/cluster.sh has no proxy in front). A long
// llm.generate job is submitted from the page, and mid-stream, as in the
// README's walk-through:
//   1. broker 2, which holds the job's worker, is SIGKILLed: the page goes on
//      without reconnecting once the worker has moved to broker 3; broker 2
//      starts again on its ports;
//   2. broker 1, the page's, is SIGKILLed and started again on its ports: the
//      page shows it is reconnecting, then resumes after the last event it has;
//   3. the Redis primary holding the job's slot is SIGKILLed, found as a user
//      would with redis-cli and killed through its pid file (the script starts
//      it again as a replica once the cluster failed it over).
// The page must never fail, and end with exactly the job's stored result.text,
// its text only ever growing (nothing shown then taken back or repeated), every
// event seen, and the job succeeded.
//
//   JOBCAST_BIN=build/test/bin node --test tests/js/ui_cluster.test.js
//
// Needs /usr/bin/chromium and Debian's redis-tools (scripts/setup.sh installs
// both) or JOBCAST_CHROMIUM; without them the test is skipped and says why.
// Leaves a screenshot in ${JOBCAST_ARTIFACTS:-test-artifacts}/ui-cluster.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { freePort, makeTempDir, startBroker, startRedisCluster, startWorker, waitFor } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const ARTIFACTS = process.env.JOBCAST_ARTIFACTS || 'test-artifacts';
const CHROMIUM = process.env.JOBCAST_CHROMIUM || '/usr/bin/chromium';
const REDIS_CLI = '/usr/bin/redis-cli';
const REDIS_SERVER = '/usr/bin/redis-check-rdb'; // what scripts/redis_cluster.py runs as redis-server

const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}: install Debian's chromium package (scripts/setup.sh does) or set JOBCAST_CHROMIUM`
  : !existsSync(REDIS_CLI) || !existsSync(REDIS_SERVER)
    ? "no Redis: install Debian's redis-tools (scripts/setup.sh does)"
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

// 750 tokens at 25 a second: 30 s of stream, long enough for the three kills.
const TOKENS = 750;
const PARAMS = { prompt: 'Write about tides', max_tokens: TOKENS, tokens_per_second: 25, seed: 19 };

const redisCli = (port, ...args) =>
  execFileSync(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 5000 }).trim();

/** The port of the primary that holds the job's keys, as a user finds it: the
 * primaries by ROLE, then the one whose keyspace has `jc:{…}:job:<id>`. */
function primaryHolding(ports, jobId) {
  const primaries = ports.filter((port) => redisCli(port, 'ROLE').split('\n')[0] === 'master');
  const holders = primaries.filter((port) => redisCli(port, '--scan', '--pattern', `jc:*:job:${jobId}`) !== '');
  assert.equal(holders.length, 1, `one primary holds job ${jobId} (primaries ${primaries.join(', ')})`);
  return holders[0];
}

async function workersOn(broker) {
  const metrics = await (await fetch(`${broker.url}/metrics`)).text();
  return Number(/^jobcast_workers (\S+)$/m.exec(metrics)?.[1] ?? 0);
}

test('the UI on a cluster streams a job through a broker SIGKILL and a Redis primary SIGKILL, with no gap', {
  skip,
  timeout: 180_000,
}, async (t) => {
  const started = Date.now();
  const dir = makeTempDir('jobcast-ui-cluster-');
  const processes = [];
  let redis;
  let worker;
  let context;
  let page;
  let failed = true;
  t.after(async () => {
    await context?.close().catch(() => {});
    const signal = failed ? 'SIGKILL' : 'SIGTERM';
    await Promise.all([worker?.kill(signal), ...processes.map((p) => p.kill(signal))]);
    await redis?.kill(signal);
  });
  const logs = () =>
    [...processes, worker, redis]
      .filter(Boolean)
      .flatMap((p, i) => [`--- #${i + 1}`, ...p.output().split('\n').slice(-40)]);
  const pageErrors = [];
  const consoleLines = [];
  const timeline = [];
  const mark = (what) => timeline.push(`${((Date.now() - started) / 1000).toFixed(1)} s ${what}`);

  try {
    // ---- the cluster: Redis, three brokers on fixed ports (to come back there), a worker
    redis = await startRedisCluster({ dir: join(dir, 'redis'), nodeTimeoutMs: 2000 });
    mark('redis cluster up');
    const addresses = [];
    for (let i = 0; i < 3; i++) {
      addresses.push({ http: `127.0.0.1:${await freePort()}`, zmq: `tcp://127.0.0.1:${await freePort()}` });
    }
    const start = (i) => startBroker({ bin: BIN, store: redis.store, args: ['--retention', '1d'], ...addresses[i] });
    const brokers = await Promise.all([0, 1, 2].map(start));
    processes.push(...brokers);
    worker = await startWorker({
      bin: BIN,
      zmq: [1, 2, 0].map((i) => addresses[i].zmq).join(','),
      types: ['llm.generate'],
      name: 'cluster-llm',
    });
    await waitFor(async () => (await workersOn(brokers[1])) === 1, { what: 'the worker on broker 2' });
    mark('brokers and worker up');

    // ---- open broker 1's UI and submit the job from the form
    context = await chromium.launchPersistentContext(makeTempDir('jobcast-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 860 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
    await page.goto(`${brokers[0].url}/`);
    await page.waitForFunction(() => document.querySelector('#conn-state')?.textContent === 'open');
    // What the reader sees: every change of the connection indicator, and any
    // change of the job's text that is not an append.
    await page.evaluate(() => {
      window.__indicator = [];
      const conn = document.querySelector('#conn-state');
      new MutationObserver(() => {
        if (window.__indicator.at(-1) !== conn.textContent) window.__indicator.push(conn.textContent);
      }).observe(conn, { childList: true, characterData: true, subtree: true });
      window.__rewrites = [];
      const text = document.querySelector('#job-text');
      let shown = text.textContent;
      new MutationObserver(() => {
        if (!text.textContent.startsWith(shown)) window.__rewrites.push({ was: shown, now: text.textContent });
        shown = text.textContent;
      }).observe(text, { childList: true, characterData: true, subtree: true });
    });
    await page.selectOption('#submit-type', 'llm.generate');
    await page.fill('#submit-params', JSON.stringify(PARAMS, null, 2));
    await page.click('#submit-btn');
    await page.waitForFunction(() => (document.querySelector('#job-id')?.textContent ?? '') !== '');
    const jobId = await page.textContent('#job-id');
    mark(`job ${jobId} submitted`);

    const seqShown = () => page.evaluate(() => Number(document.querySelector('#job-seq').textContent));
    const waitForSeq = (n, timeout = 30_000) =>
      page.waitForFunction((min) => Number(document.querySelector('#job-seq').textContent) >= min, n, { timeout });
    const assertRunning = async (before) =>
      assert.equal(await page.textContent('#job-state'), 'running', `the job still runs before ${before}`);

    // ---- 1. kill broker 2, the worker's: the page goes on once the worker moved to broker 3
    await waitForSeq(40);
    await assertRunning("the worker's broker kill");
    const seqAtWorkerBrokerKill = await seqShown();
    await brokers[1].kill('SIGKILL');
    mark(`broker 2 killed at seq ${seqAtWorkerBrokerKill}`);
    await waitFor(async () => (await workersOn(brokers[2])) === 1, { what: 'the worker to move to broker 3' });
    mark('the worker moved to broker 3');
    await waitForSeq(seqAtWorkerBrokerKill + 40);
    mark('the page streams again');
    assert.deepEqual(await page.evaluate(() => window.__indicator), [], "the page's connection was not touched");
    processes.push(await start(1));
    mark('broker 2 started again');

    // ---- 2. kill broker 1, the page's: it reconnects when broker 1 is back, and resumes
    await assertRunning("the page's broker kill");
    const seqAtPageBrokerKill = await seqShown();
    await brokers[0].kill('SIGKILL');
    mark(`broker 1 killed at seq ${seqAtPageBrokerKill}`);
    await page.waitForFunction(() => document.querySelector('#conn-state').textContent === 'reconnecting');
    processes.push(await start(0));
    mark('broker 1 started again');
    await page.waitForFunction(() => document.querySelector('#conn-state').textContent === 'open', null, {
      timeout: 30_000,
    });
    mark('the page reconnected');
    await waitForSeq(seqAtPageBrokerKill + 40);
    mark('the page streams again');

    // ---- 3. kill the Redis primary that holds the job's slot
    await assertRunning('the primary kill');
    const port = primaryHolding(redis.ports, jobId);
    const pid = Number(readFileSync(join(dir, 'redis', `node-${port}`, 'redis.pid'), 'utf8'));
    const seqAtPrimaryKill = await seqShown();
    process.kill(pid, 'SIGKILL');
    mark(`primary 127.0.0.1:${port} killed at seq ${seqAtPrimaryKill}`);
    await redis.waitForLine(new RegExp(`^redis 127\\.0\\.0\\.1:${port} started again`), 30_000);
    mark('the killed primary started again');
    await waitForSeq(seqAtPrimaryKill + 40);
    mark('the page streams again');

    // ---- the end: the page's text is the stored result, every event seen once
    await page.waitForFunction(() => document.querySelector('#job-state').textContent === 'succeeded', null, {
      timeout: 60_000,
    });
    mark('succeeded');
    const job = await (await fetch(`${brokers[2].url}/v1/jobs/${jobId}`)).json();
    assert.equal(job.state, 'succeeded');
    assert.equal(job.attempt, 1, 'the job ran once: its lease went with its worker');
    assert.equal(job.result.tokens, TOKENS);
    const shown = await page.textContent('#job-text');
    if (shown !== job.result.text) {
      let at = 0;
      while (at < shown.length && shown[at] === job.result.text[at]) at++;
      assert.fail(`#job-text differs from result.text at char ${at} (lengths ${shown.length} vs ` +
        `${job.result.text.length}):\n  page: …${shown.slice(Math.max(0, at - 40), at + 40)}\n` +
        `  result: …${job.result.text.slice(Math.max(0, at - 40), at + 40)}`);
    }
    assert.deepEqual(await page.evaluate(() => window.__rewrites), [], 'the text only ever grew');
    assert.equal(await seqShown(), job.last_seq, 'the page saw every event up to the last');
    assert.equal(await page.textContent(`[data-job-id="${jobId}"] .badge`), 'succeeded', 'the list row too');

    // ---- it showed it was reconnecting, once, and never failed
    assert.deepEqual(await page.evaluate(() => window.__indicator), ['reconnecting', 'open']);
    assert.equal(await page.getAttribute('#conn', 'data-state'), 'open');
    assert.equal(await page.isVisible('#job-error'), false, 'no job error shown');
    assert.equal(await page.isVisible('#notice'), false, 'no client error notice');
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
    assert.deepEqual(consoleLines.filter((line) => line.includes('jobcast:')), [], 'no stream hole repaired');

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'ui-cluster.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`${timeline.join('; ')}; ${job.last_seq} events; screenshot ${shot}`);
    failed = false;
  } catch (err) {
    if (page) {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'ui-cluster-failure.png'), fullPage: true }).catch(() => {});
    }
    t.diagnostic(`timeline: ${timeline.join('; ')}`);
    t.diagnostic('page errors / console:');
    for (const line of [...pageErrors, ...consoleLines.slice(-30)]) t.diagnostic(line);
    t.diagnostic('process logs:');
    for (const line of logs()) t.diagnostic(line);
    throw err;
  }
});
