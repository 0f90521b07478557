// A late joiner of a 100,000-token job: time and bytes until it has the
// current text, hydrating from GET /v1/jobs/{id}/snapshot versus replaying
// the log (the JSON events pages, plain SSE, and the AI SDK's UI message
// stream read by readUIMessageStream). Prints a table; asserts nothing but
// that every way gets the same text. Run by hand, on a Release build:
//
//   cmake --build build/release --target jobcast-broker jobcast-worker
//   JOBCAST_BIN=build/release/bin node bench/late_joiner.mjs [--tokens 100000] [--runs 5]

import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from 'ai';

import { startBroker, startWorker, makeTempDir } from '../tests/js/broker_test_helpers.js';

const { values } = parseArgs({
  options: { tokens: { type: 'string', default: '100000' }, runs: { type: 'string', default: '5' } },
});
const TOKENS = Number(values.tokens);
const RUNS = Number(values.runs);
const BIN = process.env.JOBCAST_BIN || 'build/release/bin';

const broker = await startBroker({ bin: BIN, db: join(makeTempDir('jobcast-late-'), 'jobcast.db') });
const worker = await startWorker({ bin: BIN, zmq: broker.zmq, types: ['llm.generate'] });

try {
  const submitted = await fetch(`${broker.url}/v1/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'llm.generate', params: { prompt: 'late joiner', max_tokens: TOKENS, tokens_per_second: 0, seed: 1 } }),
  }).then((r) => r.json());
  let job;
  for (;;) {
    job = await fetch(`${broker.url}/v1/jobs/${submitted.id}`).then((r) => r.json());
    if (job.state === 'succeeded') break;
    if (job.state === 'failed' || job.state === 'cancelled') throw new Error(`job ${job.state}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const expected = job.result.text;
  const base = `${broker.url}/v1/jobs/${job.id}`;

  // Each way: resolves with {text, bytes} once the page could show the text.
  const ways = {
    'snapshot (GET /snapshot)': async () => {
      const body = await fetch(`${base}/snapshot`).then((r) => r.text());
      return { text: JSON.parse(body).text, bytes: Buffer.byteLength(body) };
    },
    'replay: JSON events pages': async () => {
      let after = 0;
      let text = '';
      let bytes = 0;
      for (;;) {
        const body = await fetch(`${base}/events?after=${after}&limit=10000`).then((r) => r.text());
        bytes += Buffer.byteLength(body);
        const page = JSON.parse(body);
        for (const e of page.events) if (e.kind === 'token') text += e.data.text;
        if (page.done || page.events.length === 0) return { text, bytes };
        after = page.events.at(-1).seq;
      }
    },
    'replay: SSE': async () => {
      const response = await fetch(`${base}/events`, { headers: { Accept: 'text/event-stream' } });
      const body = await response.text();
      let text = '';
      for (const line of body.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const e = JSON.parse(line.slice(6));
        if (e.kind === 'token') text += e.data.text;
      }
      return { text, bytes: Buffer.byteLength(body) };
    },
    'replay: ui-message + readUIMessageStream': async () => {
      const response = await fetch(`${base}/events?format=ui-message`, { headers: { Accept: 'text/event-stream' } });
      let bytes = 0;
      const counted = response.body.pipeThrough(new TransformStream({
        transform(chunk, controller) {
          bytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
      }));
      const chunks = parseJsonEventStream({ stream: counted, schema: uiMessageChunkSchema })
        .pipeThrough(new TransformStream({ transform: (r, c) => c.enqueue(r.value) }));
      let message;
      for await (const m of readUIMessageStream({ stream: chunks })) message = m;
      const text = message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');
      return { text, bytes };
    },
  };

  console.log(`late joiner of a ${TOKENS}-token job (${job.last_seq} events, text ${Buffer.byteLength(expected)} bytes); median of ${RUNS} runs`);
  console.log('way'.padEnd(44), 'ms'.padStart(9), 'bytes'.padStart(12));
  for (const [name, run] of Object.entries(ways)) {
    const times = [];
    let bytes = 0;
    for (let i = 0; i < RUNS; i++) {
      const began = performance.now();
      const got = await run();
      times.push(performance.now() - began);
      if (got.text !== expected) throw new Error(`${name}: the text differs from result.text`);
      bytes = got.bytes;
    }
    times.sort((a, b) => a - b);
    console.log(name.padEnd(44), times[Math.floor(times.length / 2)].toFixed(1).padStart(9), String(bytes).padStart(12));
  }
} finally {
  await Promise.all([worker.kill('SIGKILL'), broker.kill('SIGKILL')]);
}
