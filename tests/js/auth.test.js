// web/client/jobcast.js against a REAL broker with auth on (--jwt-secret):
// the token rides as a Bearer header on REST and as access_token on the
// WebSocket; with a token function the client sends fresh tokens over the
// open socket ({"op":"auth"}) so a stream outlives short tokens without a
// reconnect; a fixed token that expires gets 4003 (reported to the app); a
// client without a token is refused with 401.
//
//   JOBCAST_BIN=build/test/bin node --test tests/js/auth.test.js

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';

import { JobcastClient } from '../../web/client/jobcast.js';
import { startBroker, startWorker, makeTempDir } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const haveBinaries = existsSync(join(BIN, 'jobcast-broker')) && existsSync(join(BIN, 'jobcast-worker'));
if (process.env.JOBCAST_BIN && !haveBinaries) {
  throw new Error(`JOBCAST_BIN=${BIN} has no jobcast-broker / jobcast-worker`);
}
const skip = haveBinaries ? false : `no jobcast binaries in ${BIN} (build first, or set JOBCAST_BIN)`;
const SECRET = 'js-auth-test-secret-0123456789abcdef';

const b64url = (data) => Buffer.from(data).toString('base64url');

/** An HS256 JWT, made here with node's crypto (not the broker's code). */
function mint(sub, ttlSeconds) {
  const now = Math.floor(Date.now() / 1000);
  const signing = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify({ sub, iat: now, exp: now + ttlSeconds }))}`;
  return `${signing}.${createHmac('sha256', SECRET).update(signing).digest('base64url')}`;
}

const withDeadline = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms).unref()),
  ]);

const processes = [];
after(async () => {
  await Promise.all(processes.map((p) => p.kill('SIGKILL')));
});

test('a stream outlives short tokens: fresh tokens over the open socket, no gap, no reconnect', { skip, timeout: 90_000 }, async (t) => {
  const db = join(makeTempDir('jobcast-js-auth-'), 'jobcast.db');
  const broker = await startBroker({ bin: BIN, db, args: ['--jwt-secret', SECRET, '--jwt-leeway', '0'] });
  processes.push(broker);
  processes.push(await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'], name: 'js-auth-worker' }));

  let tokensMinted = 0;
  const client = new JobcastClient({
    url: broker.url,
    WebSocket,
    backoff: { initialMs: 50, maxMs: 400 },
    token: () => {
      tokensMinted += 1;
      return mint('alice', 2); // expires while the job still streams
    },
  });
  t.after(() => client.close());
  const states = [];
  client.onStateChange((state) => states.push(state));

  // 200 tokens at 40/s: about 5 s of stream, so at least two tokens expire.
  const job = await client.submit('llm.generate', { prompt: 'auth', max_tokens: 200, tokens_per_second: 40, seed: 3 });
  assert.equal(job.owner, 'alice');
  const events = [];
  const done = new Promise((resolve, reject) => {
    client.subscribe(job.id, {
      after: 0,
      onEvent: (ev) => events.push(ev),
      onDone: resolve,
      onError: (err) => {
        if (err.code !== 'network') reject(err);
      },
    });
  });
  await withDeadline(done, 60_000, 'the job to finish');
  assert.deepEqual(events.map((e) => e.seq), Array.from({ length: events.length }, (_, i) => i + 1), 'seqs 1..N, no gap');
  const final = await client.getJob(job.id);
  assert.equal(events.filter((e) => e.kind === 'token').map((e) => e.data.text).join(''), final.result.text);
  assert.ok(tokensMinted >= 3, `the client fetched fresh tokens (${tokensMinted})`);
  assert.equal(states.filter((s) => s === 'open').length, 1, `one connection throughout: ${states}`);
  assert.doesNotMatch(broker.output(), /event=token_expired/);
});

test('a fixed token that expires on an open socket is closed with 4003 and reported', { skip, timeout: 60_000 }, async (t) => {
  const db = join(makeTempDir('jobcast-js-auth-'), 'jobcast.db');
  const broker = await startBroker({ bin: BIN, db, args: ['--jwt-secret', SECRET, '--jwt-leeway', '0'] });
  processes.push(broker);
  const client = new JobcastClient({ url: broker.url, WebSocket, token: mint('carol', 2), backoff: { initialMs: 50, maxMs: 400 } });
  t.after(() => client.close());
  const reported = new Promise((resolve) => client.onError((err) => err.code === 'reauthenticate' && resolve(err)));
  client.subscribeJobs(() => {});
  const err = await withDeadline(reported, 20_000, 'the 4003 to be reported');
  assert.equal(err.closeCode, 4003);
});

test('without a token the broker answers 401', { skip, timeout: 60_000 }, async (t) => {
  const db = join(makeTempDir('jobcast-js-auth-'), 'jobcast.db');
  const broker = await startBroker({ bin: BIN, db, args: ['--jwt-secret', SECRET] });
  processes.push(broker);
  const client = new JobcastClient({ url: broker.url, WebSocket });
  t.after(() => client.close());
  await assert.rejects(client.submit('llm.generate', {}), (err) => err.status === 401);
  const other = new JobcastClient({ url: broker.url, WebSocket, token: mint('bob', 60) });
  t.after(() => other.close());
  const jobs = await other.listJobs();
  assert.deepEqual(jobs.jobs, []);
});
