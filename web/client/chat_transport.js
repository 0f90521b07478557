/**
 * JobcastChatTransport — the AI SDK's ChatTransport (`useChat`, `Chat`) over
 * jobcast: each request to the model is an `llm.generate` job, its answer the
 * job's log read as the AI SDK's UI message stream
 * (GET /v1/jobs/{id}/events?format=ui-message).
 *
 * ```js
 * import { useChat } from '@ai-sdk/react';
 * import { JobcastChatTransport } from 'jobcast';
 * const transport = new JobcastChatTransport({ url: 'https://jobs.example', token: () => jwt });
 * const { messages, sendMessage, stop } = useChat({ id: chatId, transport, resume: true });
 * ```
 *
 * What it guarantees
 * - The stream survives a dropped connection and a broker restart: it
 *   reconnects with `Last-Event-ID` = the seq of the last event it delivered,
 *   and the broker resumes exactly after it. A resumed stream re-opens its
 *   text part (`text-start`); the transport passes each part's opening once,
 *   so the message keeps one text part and no span of text twice or never.
 * - Stop is not disconnect. The AI SDK's `stop()` aborts the request's
 *   `abortSignal`; once the stream has been handed over, that abort cancels
 *   the job (POST /v1/jobs/{id}/cancel, retried while the broker is
 *   unreachable) and the job ends `cancelled` with its partial text kept. A
 *   page unload runs no abort, a lost connection is reconnected, and a reader
 *   that cancels the stream only stops reading: none of them cancels the job.
 *   An abort before the stream is handed over (a resume superseded by another,
 *   React StrictMode's trial unmount) cancels nothing either.
 *   Note that `useChat` calls `stop()` when its component unmounts: unmounting
 *   the component that owns a streaming `useChat` cancels its job, so keep that
 *   component mounted for the conversation's lifetime or pass `useChat` a
 *   `chat` you create (and keep) yourself.
 * - The job of each chat is remembered (`storage`, localStorage by default)
 *   until its stream has been delivered to the end, so `reconnectToStream`
 *   (useChat's `resume: true`) finds it after a page reload too. The AI SDK
 *   rebuilds a resumed message from the stream alone
 *   (`resumeStreamIsReplay`), so the transport sends the whole message again:
 *   the job's snapshot as chunks (its text so far in one delta, one small
 *   document however long the job), then the events after the snapshot's seq,
 *   live. The message, named by the job id, replaces the one on screen, and the
 *   reloaded page shows every word once whatever it had saved.
 * - A retried job (its worker died) shows as the broker's stream says: the
 *   failed attempt's text part ends, the next attempt's part restates the
 *   text up to its checkpoint and goes on; the message's last text part is
 *   the job's text (and what the next request sends as the assistant's turn).
 *
 * @module jobcast/chat_transport
 */

import { JobcastClient, JobcastError, TERMINAL_STATES, backoffDelay } from './jobcast.js';
import { cancelJob } from './cancel.js';

const RECONNECT = Object.freeze({ initialMs: 100, maxMs: 5_000 });
const STORAGE_PREFIX = 'jobcast.chat.';

/**
 * The text of a UI message: its text parts, joined — but an assistant's is its
 * last text part (a retried job's message has one per attempt, and the last
 * one is the job's text).
 * @param {{role?: string, parts?: Array<{type: string, text?: string}>}} message
 */
function messageText(message) {
  const texts = (message.parts ?? [])
    .filter((part) => part.type === 'text' && typeof part.text === 'string')
    .map((part) => part.text);
  return message.role === 'assistant' ? (texts.at(-1) ?? '') : texts.join('');
}

/**
 * The params of the `llm.generate` job for a conversation: `messages`, the
 * conversation as an OpenAI chat completions request takes it
 * ([{role, content}], messages without text left out; the shipped
 * llm.generate's openai backend sends them to the model), and `prompt`, the
 * text of the last user message (what its sim backend generates from).
 * @param {Array<{role: string, parts?: Array<{type: string, text?: string}>}>} messages UI messages
 */
export function chatParams(messages) {
  const chat = messages
    .map((message) => ({ role: message.role, content: messageText(message) }))
    .filter((message) => message.content !== '');
  const lastUser = chat.findLast((message) => message.role === 'user');
  return { prompt: lastUser?.content ?? '', messages: chat };
}

/** The Web Storage the transport remembers chats' jobs in, by default: localStorage when there is one. */
function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // a sandboxed frame that may not use storage
  }
}

/** The SSE events of a response body: {id?: number, data?: string}, as they complete. */
async function* sseEvents(body) {
  let buffer = '';
  for await (const text of body.pipeThrough(new TextDecoderStream())) {
    buffer += text.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = {};
      const data = [];
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':');
        if (colon === 0) continue; // a comment (keepalive)
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id' && /^\d+$/.test(value)) event.id = Number(value);
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0) event.data = data.join('\n');
      if (event.id !== undefined || event.data !== undefined) yield event;
    }
  }
}

/**
 * The UI message chunks that stand for a job's log up to its snapshot's seq,
 * as the broker's stream would have written them less its transient data-*
 * parts: the message named by the job, the text so far in the part of the
 * snapshot's attempt, and for a finished job its end.
 * @returns {{seq: number, chunks: object[], ended: boolean}}
 */
function snapshotChunks(jobId, snapshot) {
  const chunks = [{ type: 'start', messageId: jobId }];
  const part = `${jobId}-${snapshot.attempt}`;
  const ended = TERMINAL_STATES.includes(snapshot.state);
  if (snapshot.text) {
    chunks.push({ type: 'text-start', id: part }, { type: 'text-delta', id: part, delta: snapshot.text });
    if (ended || snapshot.result) chunks.push({ type: 'text-end', id: part });
  }
  if (snapshot.state === 'succeeded') {
    chunks.push({ type: 'finish', finishReason: 'stop' });
  } else if (snapshot.state === 'failed') {
    chunks.push({ type: 'error', errorText: snapshot.error || 'failed' }, { type: 'finish', finishReason: 'error' });
  } else if (snapshot.state === 'cancelled') {
    chunks.push({ type: 'abort', reason: 'cancelled' });
  }
  return { seq: snapshot.seq, chunks, ended };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

export class JobcastChatTransport {
  /** reconnectToStream sends the job's whole message: its snapshot, then the events after it (see the module comment). */
  resumeStreamIsReplay = true;

  #client;
  #url;
  #token;
  #fetch;
  #storage;
  #type;
  #params;
  #random;
  #onError;
  /** chat id → job id: the copy this page keeps beside `storage` (and its only one without). */
  #memory = new Map();

  /**
   * @param {object} [options]
   * @param {string} [options.url] the broker's base URL; the page's origin by default
   * @param {string | (() => string | undefined | Promise<string | undefined>)} [options.token]
   *   a JWT, or a function called before every request
   * @param {typeof fetch} [options.fetch]
   * @param {Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null} [options.storage]
   *   where each chat's job id is kept (localStorage when present; null: memory only)
   * @param {string} [options.type] the job type ('llm.generate')
   * @param {(messages: object[]) => object} [options.params] the job's params for a
   *   conversation ({@link chatParams}); a request's `body` is merged over them
   * @param {(error: Error) => void} [options.onError] a cancel that could not be
   *   delivered (console.warn without it)
   * @param {() => number} [options.random] uniform in [0, 1), for the backoff jitter
   */
  constructor(options = {}) {
    this.#fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.#client = new JobcastClient({ url: options.url, token: options.token, fetch: this.#fetch, autoConnect: false });
    this.#url = this.#client.url;
    this.#token = options.token;
    this.#storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.#type = options.type ?? 'llm.generate';
    this.#params = options.params ?? chatParams;
    this.#random = options.random ?? Math.random;
    this.#onError = options.onError ?? ((error) => console.warn('jobcast:', error.message));
  }

  /**
   * Submits the conversation as a job and returns its UI message chunks.
   * @param {{chatId: string, messages: object[], abortSignal?: AbortSignal, body?: object}} options
   */
  async sendMessages({ chatId, messages, abortSignal, body }) {
    abortSignal?.throwIfAborted();
    const params = { ...this.#params(messages), ...body };
    const job = await this.#client.submit(this.#type, params, { signal: abortSignal });
    this.#remember(chatId, job.id);
    if (abortSignal?.aborted) {
      // Stopped while the job was being created: it must not run on.
      this.#forget(chatId);
      this.#cancel(job.id);
      throw abortSignal.reason;
    }
    return this.#stream(chatId, job.id, abortSignal);
  }

  /**
   * The chat's unfinished job's whole message — its snapshot, then the events
   * after it — or null when the chat has no job whose stream was not
   * delivered to the end.
   * @param {{chatId: string, abortSignal?: AbortSignal}} options
   */
  async reconnectToStream({ chatId, abortSignal }) {
    const jobId = this.#recall(chatId);
    if (!jobId) return null;
    let snapshot = null;
    try {
      snapshot = await this.#client.snapshot(jobId, { signal: abortSignal });
    } catch (err) {
      if (err instanceof JobcastError && err.status === 404) {
        this.#forget(chatId); // expired, or another user's
        return null;
      }
      // A broker that cannot be reached now: replay the log from its first
      // event, reconnecting until the broker answers.
      if (!(err instanceof JobcastError && (err.code === 'network' || err.status >= 500))) throw err;
    }
    abortSignal?.throwIfAborted();
    return this.#stream(chatId, jobId, abortSignal, snapshot?.seq > 0 ? snapshotChunks(jobId, snapshot) : null);
  }

  /**
   * The job's UI message chunks from its first event (or from `head`, the
   * chunks of a snapshot) to `[DONE]`, across any number of reconnects.
   * @param {{seq: number, chunks: object[], ended: boolean} | null} [head]
   */
  #stream(chatId, jobId, abortSignal, head = null) {
    const reading = new AbortController();
    let delivered = head?.ended ?? false; // [DONE] (or 204) reached: nothing left to stop
    let seq = head?.seq ?? 0; // the last event delivered: where a reconnect resumes
    const openParts = new Set();
    const deliver = (controller, chunk) => {
      if (chunk.type === 'text-start') {
        if (openParts.has(chunk.id)) return; // re-opened by a resume: already open here
        openParts.add(chunk.id);
      } else if (chunk.type === 'text-end') {
        openParts.delete(chunk.id);
      }
      controller.enqueue(chunk);
    };

    const onAbort = () => {
      if (!delivered) {
        this.#forget(chatId);
        this.#cancel(jobId);
      }
      reading.abort();
    };
    abortSignal?.addEventListener('abort', onAbort, { once: true });
    const finish = () => abortSignal?.removeEventListener('abort', onAbort);

    const run = async (controller) => {
      for (const chunk of head?.chunks ?? []) deliver(controller, chunk);
      for (let attempt = 0; !reading.signal.aborted && !delivered; attempt++) {
        if (attempt > 0) await sleep(backoffDelay(attempt - 1, RECONNECT, this.#random), reading.signal);
        if (reading.signal.aborted) break;
        let response;
        try {
          response = await this.#open(jobId, seq, reading.signal);
        } catch {
          continue; // the broker is unreachable (restarting): try again
        }
        if (response.status === 204) {
          delivered = true; // the log ended at the seq we resumed from
          break;
        }
        if (!response.ok) {
          await response.body?.cancel().catch(() => {});
          if (response.status === 429 || response.status >= 500) continue;
          throw new JobcastError(`the job's stream answered HTTP ${response.status}`, { status: response.status, job: jobId });
        }
        try {
          for await (const event of sseEvents(response.body)) {
            if (event.data === '[DONE]') {
              delivered = true;
              break;
            }
            if (event.data !== undefined) deliver(controller, JSON.parse(event.data));
            if (event.id !== undefined) {
              if (event.id > seq) attempt = 0; // progress: the next drop retries at once
              seq = event.id;
            }
          }
        } catch (err) {
          if (err instanceof SyntaxError) throw new JobcastError(`the job's stream sent a chunk that is not JSON`, { code: 'protocol', job: jobId });
          // The connection dropped: resume after `seq`.
        }
        if (delivered) break;
      }
      if (delivered) this.#forget(chatId);
    };

    let readerGone = false;
    return new ReadableStream({
      start: (controller) => {
        run(controller).then(
          () => {
            finish();
            if (readerGone) return;
            if (delivered) controller.close();
            else controller.error(abortSignal?.reason ?? new DOMException('aborted', 'AbortError'));
          },
          (err) => {
            finish();
            if (!readerGone) controller.error(err);
          },
        );
      },
      // The reader went away: stop reading, leave the job alone.
      cancel: () => {
        readerGone = true;
        finish();
        reading.abort();
      },
    });
  }

  async #open(jobId, after, signal) {
    const headers = { Accept: 'text/event-stream' };
    const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (after > 0) headers['Last-Event-ID'] = String(after);
    return this.#fetch(`${this.#url}/v1/jobs/${encodeURIComponent(jobId)}/events?format=ui-message`, { headers, signal });
  }

  #cancel(jobId) {
    cancelJob(this.#client, jobId, { random: this.#random }).catch((err) => this.#onError(err));
  }

  #remember(chatId, jobId) {
    this.#memory.set(chatId, jobId);
    try {
      this.#storage?.setItem(STORAGE_PREFIX + chatId, jobId);
    } catch {
      // Storage full or refused: the memory copy still serves this page.
    }
  }

  #recall(chatId) {
    try {
      const stored = this.#storage?.getItem(STORAGE_PREFIX + chatId);
      if (stored) return stored;
    } catch {
      // Storage refused: fall back to memory.
    }
    return this.#memory.get(chatId) ?? null;
  }

  #forget(chatId) {
    this.#memory.delete(chatId);
    try {
      this.#storage?.removeItem(STORAGE_PREFIX + chatId);
    } catch {
      // Nothing to do.
    }
  }
}
