// llm.chat: streams a chat completion from any OpenAI-compatible server
// (OpenAI, vLLM, llama.cpp server, Ollama, ...) into the job, token by token.
// Params: {messages: [{role, content}, ...], model?, max_tokens?, temperature?}.
// Cancelling the job aborts the upstream request (fetch gets the job's signal).
//
//   JOBCAST_OPENAI_BASE_URL=http://127.0.0.1:11434 JOBCAST_OPENAI_MODEL=llama3.2 \
//   node workers/node/examples/llm-chat.mjs --broker tcp://127.0.0.1:5555 --capacity 8
//
// Environment: JOBCAST_OPENAI_BASE_URL (default https://api.openai.com),
// JOBCAST_OPENAI_MODEL (default gpt-4o-mini; params.model overrides),
// JOBCAST_OPENAI_API_KEY (bearer token, optional).
import { parseArgs } from 'node:util';

import { JobFailed, Worker } from '@jobcast/worker';

const { values } = parseArgs({
  options: {
    broker: { type: 'string', default: process.env.JOBCAST_BROKER ?? 'tcp://127.0.0.1:5555' },
    name: { type: 'string' },
    capacity: { type: 'string', default: '4' },
  },
});

const baseUrl = (process.env.JOBCAST_OPENAI_BASE_URL ?? 'https://api.openai.com').replace(/\/+$/, '');
const endpoint = baseUrl.endsWith('/v1') ? `${baseUrl}/chat/completions` : `${baseUrl}/v1/chat/completions`;
const defaultModel = process.env.JOBCAST_OPENAI_MODEL ?? 'gpt-4o-mini';
const apiKey = process.env.JOBCAST_OPENAI_API_KEY ?? '';

// The `data:` payloads of a Server-Sent Events body, as they arrive.
async function* sseData(body) {
  let buffer = '';
  for await (const text of body.pipeThrough(new TextDecoderStream())) {
    buffer += text;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data) yield data;
    }
  }
}

async function chat(job) {
  const { messages, model = defaultModel, max_tokens: maxTokens, temperature } = job.params;
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new JobFailed('params "messages" must be a non-empty array of {role, content}', { retryable: false });
  }
  /** @type {Record<string, unknown>} */
  const request = { model, messages, stream: true };
  if (maxTokens !== undefined) request.max_tokens = maxTokens;
  if (temperature !== undefined) request.temperature = temperature;
  /** @type {Record<string, string>} */
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;

  let text = '';
  let finishReason = null;
  try {
    const response = await fetch(endpoint, { method: 'POST', headers, body: JSON.stringify(request), signal: job.signal });
    if (!response.ok) {
      const detail = (await response.text()).slice(0, 500);
      // Rate limits and server errors may pass; anything else would fail again.
      const retryable = response.status === 429 || response.status >= 500;
      throw new JobFailed(`${endpoint} answered ${response.status}: ${detail}`, { retryable });
    }
    for await (const data of sseData(response.body)) {
      if (data === '[DONE]') break;
      const choice = JSON.parse(data).choices?.[0];
      const piece = choice?.delta?.content;
      if (piece) {
        text += piece;
        await job.token(piece);
      }
      if (choice?.finish_reason) finishReason = choice.finish_reason;
    }
  } catch (err) {
    if (job.cancelled) return { text, cancelled: true }; // the worker reports the cancel
    if (err instanceof JobFailed) throw err;
    throw new JobFailed(`${endpoint}: ${err.message}`, { retryable: true });
  }
  return { text, model, finish_reason: finishReason };
}

/** @type {import('@jobcast/worker').WorkerOptions} */
const options = { brokers: values.broker.split(','), capacity: Number(values.capacity) };
if (values.name) options.name = values.name;
const worker = new Worker(options).handle('llm.chat', chat);
process.once('SIGTERM', () => worker.stop());
process.once('SIGINT', () => worker.stop());
await worker.run();
