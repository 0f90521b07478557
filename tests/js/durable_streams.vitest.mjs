// The Durable Streams protocol's own server conformance suite
// (@durable-streams/server-conformance-tests) against the real broker: base
// URL /v1/streams, a fresh database, auth off on loopback. Every test runs,
// forks included; any failure fails the run.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { makeTempDir, startBroker } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
if (!existsSync(join(BIN, 'jobcast-broker'))) {
  throw new Error(`no jobcast-broker in ${BIN} (build first, or set JOBCAST_BIN)`);
}

// How long a caught-up long-poll waits (the broker's --stream-long-poll and
// the suite's expectation of it): short, so the suite runs in about a minute.
const LONG_POLL_MS = 2_000;

// runConformanceTests reads baseUrl when each test runs: set once the broker is up.
const options = { baseUrl: '', longPollTimeoutMs: LONG_POLL_MS };
let broker;

beforeAll(async () => {
  broker = await startBroker({
    bin: BIN,
    db: join(makeTempDir('jobcast-ds-'), 'jobcast.db'),
    // The suite sends cross-origin requests (Origin: https://example.com).
    args: ['--stream-long-poll', `${LONG_POLL_MS}ms`, '--allowed-origin', '*'],
  });
  options.baseUrl = `${broker.url}/v1/streams`;
});

afterAll(async () => {
  await broker?.kill();
});

runConformanceTests(options);
