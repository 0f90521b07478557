// The Durable Streams conformance suite (@durable-streams/server-conformance-tests,
// as durable_streams.vitest.mjs runs it on SQLite) against a broker in cluster
// mode: a real Redis Cluster of 3 primaries and 3 replicas on loopback
// (scripts/redis_cluster.py), created streams kept by the Redis stream log,
// forks included. Skipped as a whole where redis-tools is not installed.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe } from 'vitest';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { makeTempDir, startBroker } from './broker_test_helpers.js';

const BIN = process.env.JOBCAST_BIN || 'build/dev/bin';
const REDIS = '/usr/bin/redis-check-rdb'; // redis-tools' server binary (scripts/redis_cluster.py)
const LONG_POLL_MS = 2_000;

// Starts scripts/redis_cluster.py; resolves with its --store URL (its first line).
function startRedisCluster(dir) {
  const child = spawn('python3', ['scripts/redis_cluster.py', '--dir', dir, '--node-timeout-ms', '1500'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true, // own process group: the nodes go with it
  });
  const url = new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => resolve(line.trim()));
    child.once('exit', (code) => reject(new Error(`scripts/redis_cluster.py exited with ${code}`)));
  });
  const stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, 'SIGTERM'); // it stops its nodes on the way out
    await exited;
  };
  return { url, stop };
}

describe.skipIf(!existsSync(REDIS))('Durable Streams on Redis Cluster', () => {
  const options = { baseUrl: '', longPollTimeoutMs: LONG_POLL_MS };
  let cluster;
  let broker;

  beforeAll(async () => {
    if (!existsSync(join(BIN, 'jobcast-broker'))) {
      throw new Error(`no jobcast-broker in ${BIN} (build first, or set JOBCAST_BIN)`);
    }
    cluster = startRedisCluster(makeTempDir('jobcast-ds-redis-'));
    const store = `${await cluster.url}?partitions=16`;
    broker = await startBroker({
      bin: BIN,
      db: join(makeTempDir('jobcast-ds-'), 'unused.db'),
      args: ['--store', store, '--retention', '1h', '--stream-long-poll', `${LONG_POLL_MS}ms`,
        '--allowed-origin', '*'],
    });
    options.baseUrl = `${broker.url}/v1/streams`;
  }, 120_000);

  afterAll(async () => {
    await broker?.kill();
    await cluster?.stop();
  });

  runConformanceTests(options);
});
