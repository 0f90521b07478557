/**
 * jobcast client — Client API v1 over REST and one WebSocket.
 *
 * One ES module, no dependencies, no build step. Runs in browsers and in
 * Node >= 20 (pass `WebSocket` from the `ws` package there: Node 20 has no
 * global WebSocket).
 *
 * ```js
 * import { JobcastClient } from '/client/jobcast.js';
 *
 * const client = new JobcastClient({ url: 'http://127.0.0.1:8080', token: () => getJwt() });
 * client.onStateChange((state) => console.log('connection', state));
 *
 * const job = await client.submit('llm.generate', { prompt: 'Write about tides', max_tokens: 200 });
 * const sub = client.subscribe(job.id, {
 *   after: 0,                                 // resume point: the last seq you already have
 *   onEvent(ev) { if (ev.kind === 'token') out.append(ev.data.text); },
 *   onDone(ev) { console.log('finished', ev.data.state); },
 *   onError(err) { console.warn(err.code, err.message); },
 * });
 * ```
 *
 * What the client guarantees to its callbacks
 * - Every event of a subscribed job is delivered exactly once, in `seq` order,
 *   across any number of reconnects. The broker numbers each job's events
 *   1, 2, 3, … without holes and replays everything after `after` on
 *   (re)subscribe; the client remembers the last seq it delivered, resubscribes
 *   from there, drops anything at or below it (replay overlap, packed frames
 *   that repeat events) and never skips ahead (a hole makes it resubscribe).
 * - A terminal `state` event (succeeded / failed / cancelled) is delivered to
 *   `onEvent`, then `onDone`, and ends the subscription for good.
 * - After any disconnect (server restart 1012, going away 1001, too slow 4001,
 *   network loss 1006, a silent connection caught by the heartbeat) the client
 *   reconnects with exponential backoff and full jitter, and resubscribes.
 *   With a token function and a JWT that has `exp`, a fresh token is sent
 *   over the open socket ({"op":"auth"}) before the current one expires, so
 *   the stream is not interrupted; should the server still close with
 *   4003 (re-authenticate), the reconnect fetches a fresh token;
 *   4003 with a fixed token and 4008 (policy) are reported through `onError`
 *   and keep backing off instead of hammering the server.
 *
 * What it relies on from the broker (DESIGN "Client API v1")
 * - `{"type":"subscribed","job":ID,…}` answers each subscribe op before any
 *   event of the replay it starts. Until that answer arrives, frames for the
 *   job are taken to belong to an earlier subscription of it and are ignored.
 * - An error frame that answers a subscribe names the `job`; it ends that
 *   subscription (unknown job, not the caller's, limits).
 * - Unsubscribing a job the server already stopped streaming is harmless (the
 *   client unsubscribes after a terminal event, to free server-side limits).
 *
 * Connection states: 'connecting' (first attempt) → 'open' → 'reconnecting'
 * (waiting out a backoff delay or trying again) → 'open' …; 'closed' after
 * close(), or before connect() when `autoConnect: false`.
 *
 * @module jobcast
 */

/** Job states after which a job never changes again. */
export const TERMINAL_STATES = Object.freeze(['succeeded', 'failed', 'cancelled']);

/** WebSocket close codes with a meaning in Client API v1. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  RESTART: 1012,
  TOO_SLOW: 4001,
  REAUTHENTICATE: 4003,
  POLICY: 4008,
});

const DEFAULT_BACKOFF = Object.freeze({ initialMs: 250, maxMs: 10_000 });
const DEFAULT_PING_INTERVAL_MS = 15_000;
/** A connection with no frame at all for this many ping intervals is dead. */
const MISSED_INTERVALS_BEFORE_DEAD = 2;
/** Jobs whose last state seq the jobs feed remembers (for its per-job dedupe). */
const FEED_MEMORY = 10_000;
const SOCKET_OPEN = 1; // WebSocket.OPEN, without relying on the constructor's statics

/**
 * Every failure the client reports: REST errors (with the HTTP `status` and the
 * server's error `code`), WebSocket error frames (`code`, `job`), close codes
 * that need attention (`closeCode`), and client-side problems
 * (`code` 'network', 'protocol', 'gap', 'token', 'already_subscribed', …).
 */
/**
 * The `exp` claim (unix seconds) of a JWT, or undefined when the token is not
 * a JWT with a numeric exp. The token is not verified: the server does that.
 * @param {string | undefined} token
 */
function tokenExpiry(token) {
  if (typeof token !== 'string') return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(globalThis.atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4)));
    return typeof claims?.exp === 'number' && Number.isFinite(claims.exp) ? claims.exp : undefined;
  } catch {
    return undefined;
  }
}

export class JobcastError extends Error {
  /**
   * @param {string} message
   * @param {{code?: string|number, status?: number, job?: string, closeCode?: number, cause?: unknown}} [details]
   */
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'JobcastError';
    this.code = details.code ?? 'error';
    if (details.status !== undefined) this.status = details.status;
    if (details.job !== undefined) this.job = details.job;
    if (details.closeCode !== undefined) this.closeCode = details.closeCode;
  }
}

/**
 * The reconnect delay before retry number `attempt` (0-based): "full jitter",
 * a uniformly random wait in [0, min(maxMs, initialMs * 2^attempt)).
 *
 * Why full jitter: when a broker restarts, every client it had drops at the
 * same instant. A plain exponential schedule (or one with a little jitter)
 * brings them all back in synchronized waves that hit the restarted broker
 * together; spreading each wait over the whole window de-synchronizes them
 * while the cap keeps the worst case bounded.
 *
 * @param {number} attempt retries already made since the last successful open
 * @param {{initialMs: number, maxMs: number}} backoff
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, backoff, random = Math.random) {
  const ceiling = Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt);
  return Math.floor(random() * ceiling);
}

/**
 * True for the event that ends a job: a `state` event with a terminal state.
 * @param {{kind: string, data?: any}} event
 */
export function isTerminalEvent(event) {
  return event.kind === 'state' && TERMINAL_STATES.includes(event.data?.state);
}

/**
 * A live subscription to one job's event log, as returned by
 * {@link JobcastClient#subscribe}.
 */
export class Subscription {
  #record;
  #end;

  /** @param {object} record the client's bookkeeping  @param {() => void} end */
  constructor(record, end) {
    this.#record = record;
    this.#end = end;
  }

  /** The job id. */
  get job() {
    return this.#record.job;
  }

  /** The seq of the last event delivered to onEvent (or the `after` it started from). */
  get lastSeq() {
    return this.#record.lastSeq;
  }

  /** False once the job finished, the server rejected it, or unsubscribe()/close() ran. */
  get active() {
    return !this.#record.ended;
  }

  /** Stops delivery now and tells the server (when connected). Idempotent. */
  unsubscribe() {
    this.#end();
  }
}

/**
 * A jobcast connection: REST calls plus one WebSocket carrying any number of
 * job subscriptions and the caller's jobs feed.
 */
export class JobcastClient {
  // ---- configuration
  #baseUrl;
  #wsUrl;
  #token;
  #WebSocket;
  #Socket = null; // the constructor in use: options.WebSocket or the global one
  #fetch;
  #backoff;
  #pingIntervalMs;
  #setTimeout;
  #clearTimeout;
  #now;
  #random;

  // ---- connection
  #state = 'closed';
  #ws = null;
  #connected = false; // #ws is open and has been told about every subscription
  #generation = 0; // bumped by close(): stale async work compares and bails out
  #attempt = 0; // retries since the last successful open (drives the backoff)
  #attemptAtOpen = 0;
  #reconnectTimer = null;
  #heartbeatTimer = null;
  #refreshTimer = null;
  #socketToken;
  #heartbeatDueAt = 0; // when the armed heartbeat timer was asked to run
  #lastFrameAt = 0;
  #nextPingAt = 0;
  #graceUntil = 0; // the connection is not judged dead before this (after a late wake-up)
  #suspectSince = 0; // found silent too long at this time; confirmed after one yield to I/O
  #onlineListener = null;

  // ---- subscriptions
  /** @type {Map<string, object>} job id → subscription record */
  #subs = new Map();
  #feedListeners = new Set();
  /** @type {Map<string, number>} job id → last state seq given to feed listeners */
  #feedSeq = new Map();

  // ---- listeners
  #stateListeners = new Set();
  #errorListeners = new Set();

  /**
   * @param {object} [options]
   * @param {string} [options.url] the broker's base URL ('http://host:port', may carry a path
   *   prefix); defaults to the page's origin in a browser
   * @param {string} [options.wsUrl] overrides the derived WebSocket URL (base with http→ws,
   *   https→wss, path + '/v1/ws')
   * @param {string | (() => string | Promise<string>)} [options.token] a JWT, or a function
   *   called before every connection and request (so it can refresh)
   * @param {typeof WebSocket} [options.WebSocket] defaults to globalThis.WebSocket
   * @param {typeof fetch} [options.fetch] defaults to globalThis.fetch
   * @param {{initialMs?: number, maxMs?: number}} [options.backoff] reconnect backoff
   * @param {number} [options.pingIntervalMs] heartbeat interval (15 s)
   * @param {boolean} [options.autoConnect] open the WebSocket now (true) or on the first
   *   subscribe / connect() (false)
   * @param {{setTimeout?: Function, clearTimeout?: Function, now?: () => number}} [options.timers]
   *   clock hooks for tests
   * @param {() => number} [options.random] uniform in [0, 1), for tests of the jitter
   */
  constructor(options = {}) {
    const base = options.url ?? globalThis.location?.origin;
    if (!base) throw new TypeError('JobcastClient: options.url is required outside a browser page');
    const parsed = new URL(base, globalThis.location?.href);
    this.#baseUrl = parsed.origin + parsed.pathname.replace(/\/+$/, '');
    this.#wsUrl = options.wsUrl ?? deriveWebSocketUrl(parsed);
    this.#token = options.token;
    this.#WebSocket = options.WebSocket;
    this.#fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));

    const backoff = {
      initialMs: options.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs,
      maxMs: options.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs,
    };
    if (!(backoff.initialMs > 0) || !(backoff.maxMs >= backoff.initialMs)) {
      throw new RangeError('JobcastClient: backoff needs 0 < initialMs <= maxMs');
    }
    this.#backoff = backoff;
    this.#pingIntervalMs = options.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    if (!(this.#pingIntervalMs > 0)) throw new RangeError('JobcastClient: pingIntervalMs must be > 0');

    const timers = options.timers ?? {};
    this.#setTimeout = timers.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this.#clearTimeout = timers.clearTimeout ?? ((id) => globalThis.clearTimeout(id));
    this.#now = timers.now ?? (() => Date.now());
    this.#random = options.random ?? Math.random;

    if (options.autoConnect ?? true) this.connect();
  }

  // ===========================================================================
  // Connection

  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get state() {
    return this.#state;
  }

  /** The base URL REST calls go to (no trailing slash). */
  get url() {
    return this.#baseUrl;
  }

  /**
   * Calls `listener(state, info)` on every state change; `info` tells why
   * (`code`/`reason` of the close, and for 'reconnecting' the `attempt` and
   * `delayMs` of the first retry). Returns a function that removes the listener.
   */
  onStateChange(listener) {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /**
   * Calls `listener(error)` for errors that belong to no subscription: error
   * frames without a job, policy closes (4008), re-authentication requests the
   * client cannot satisfy (4003 with a fixed token), protocol violations.
   * Without any listener they go to console.warn rather than vanish.
   * Returns a function that removes the listener.
   */
  onError(listener) {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /** Opens the WebSocket if it is not open or opening. Subscriptions resume on open. */
  connect() {
    if (this.#state !== 'closed') return;
    this.#Socket = this.#WebSocket ?? globalThis.WebSocket;
    if (typeof this.#Socket !== 'function') {
      throw new JobcastError(
        "no WebSocket implementation: pass { WebSocket } (in Node 20: import { WebSocket } from 'ws')",
        { code: 'no_websocket' },
      );
    }
    this.#attempt = 0;
    this.#setState('connecting', {});
    this.#watchBrowserOnline(true);
    this.#openSocket();
  }

  /**
   * Closes the WebSocket and stops reconnecting. Every subscription and the
   * jobs feed end (without onDone). REST calls keep working; connect() or a new
   * subscribe() opens a fresh connection.
   */
  close() {
    if (this.#state === 'closed') return;
    this.#generation += 1;
    this.#cancelTimer('reconnect');
    this.#stopHeartbeat();
    this.#watchBrowserOnline(false);
    const ws = this.#ws;
    this.#ws = null;
    this.#connected = false;
    if (ws) closeQuietly(ws, 'client closed');
    for (const record of this.#subs.values()) record.ended = true;
    this.#subs.clear();
    this.#feedListeners.clear();
    this.#feedSeq.clear();
    this.#setState('closed', { code: CloseCode.NORMAL, reason: 'client closed' });
  }

  // ===========================================================================
  // Subscriptions

  /**
   * Streams a job's events: everything after `after` from the log, then live.
   *
   * @param {string} jobId
   * @param {object} [options]
   * @param {number} [options.after] deliver events with seq > after (0 = from the start)
   * @param {(event: object) => void} [options.onEvent] each event, once, in seq order
   * @param {(event: object) => void} [options.onDone] the terminal state event, after onEvent
   * @param {(error: JobcastError) => void} [options.onError] error frames about this job;
   *   a rejected subscribe (e.g. unknown job) also ends the subscription
   * @param {(info: {job: string, lastSeq: number}) => void} [options.onSubscribed] each time
   *   the server confirms the (re)subscription, with the log's newest seq at that moment
   * @returns {Subscription}
   */
  subscribe(jobId, options = {}) {
    if (typeof jobId !== 'string' || jobId === '') throw new TypeError('subscribe: jobId must be a non-empty string');
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0) throw new RangeError('subscribe: after must be an integer >= 0');
    if (this.#subs.has(jobId)) {
      // One server-side subscription per job and connection: a second one could
      // only be served from a different resume point, so refuse it plainly.
      throw new JobcastError(`already subscribed to job ${jobId}; unsubscribe first`, {
        code: 'already_subscribed',
        job: jobId,
      });
    }
    if (this.#state === 'closed') this.connect(); // may throw (no WebSocket): before any bookkeeping
    const record = {
      job: jobId,
      lastSeq: after,
      // Subscribe ops sent on the current connection and not yet confirmed. Frames
      // for this job that arrive while this is > 0 belong to an earlier
      // subscription of the same job (still in flight when it was replaced) and
      // are ignored: the server sends `subscribed` before the replay it starts.
      pendingAcks: 0,
      resyncedAt: -1, // lastSeq at the last gap-triggered resubscribe
      ended: false,
      onEvent: options.onEvent,
      onDone: options.onDone,
      onError: options.onError,
      onSubscribed: options.onSubscribed,
    };
    this.#subs.set(jobId, record);
    const subscription = new Subscription(record, () => this.#endSubscription(record, true));
    if (this.#connected) this.#sendSubscribe(record);
    return subscription;
  }

  /**
   * Follows state changes of all the caller's jobs (`{"op":"subscribe","feed":"jobs"}`).
   * `listener` receives `state` events ({job, seq, kind: 'state', ts, data: {state, attempt, …}});
   * per job they arrive in seq order and at most once. The feed is live only:
   * after a reconnect it is resubscribed, but changes made while disconnected
   * are not replayed — reload the list (listJobs) when the state returns to 'open'.
   * State events of jobs you also subscribe() to can reach the listener as that
   * subscription replays their history (still in order, ending at the latest).
   *
   * @param {(event: object) => void} listener
   * @returns {{unsubscribe(): void}}
   */
  subscribeJobs(listener) {
    if (typeof listener !== 'function') throw new TypeError('subscribeJobs: listener must be a function');
    if (this.#state === 'closed') this.connect();
    const first = this.#feedListeners.size === 0;
    const entry = (event) => listener(event); // distinct per call, so the same function may subscribe twice
    this.#feedListeners.add(entry);
    if (first && this.#connected) this.#send({ op: 'subscribe', feed: 'jobs' });
    return {
      unsubscribe: () => {
        if (!this.#feedListeners.delete(entry)) return;
        if (this.#feedListeners.size === 0 && this.#connected) this.#send({ op: 'unsubscribe', feed: 'jobs' });
      },
    };
  }

  // ===========================================================================
  // REST

  /**
   * POST /v1/jobs. Returns the job JSON (201, or 200 when an Idempotency-Key replays).
   * @param {string} type e.g. 'llm.generate', 'research', 'exec'
   * @param {object} [params]
   * @param {{priority?: number, maxAttempts?: number, idempotencyKey?: string, signal?: AbortSignal}} [options]
   */
  submit(type, params = {}, options = {}) {
    const body = { type, params };
    if (options.priority !== undefined) body.priority = options.priority;
    if (options.maxAttempts !== undefined) body.max_attempts = options.maxAttempts;
    const headers = options.idempotencyKey ? { 'Idempotency-Key': options.idempotencyKey } : {};
    return this.#request('POST', '/v1/jobs', { body, headers, signal: options.signal });
  }

  /**
   * GET /v1/types → {types: [{type, workers, schema}]}: the job types the
   * connected workers serve, each with the JSON Schema of its params (null
   * when its workers announced none). A submit whose params break the schema
   * fails with a JobcastError of status 422, code 'invalid_params'.
   */
  types(options = {}) {
    return this.#request('GET', '/v1/types', { signal: options.signal });
  }

  /** GET /v1/jobs/{id} → job JSON. */
  getJob(jobId, options = {}) {
    return this.#request('GET', `/v1/jobs/${encodeURIComponent(jobId)}`, { signal: options.signal });
  }

  /**
   * GET /v1/jobs → {jobs, next}; pass `next` back as `cursor` for the following page.
   * @param {{state?: string, type?: string, limit?: number, cursor?: string, signal?: AbortSignal}} [query]
   */
  listJobs(query = {}) {
    const { signal, ...params } = query;
    return this.#request('GET', '/v1/jobs', { query: params, signal });
  }

  /** POST /v1/jobs/{id}/cancel (202) → the job JSON (cancel_requested while the worker stops). */
  cancel(jobId, options = {}) {
    return this.#request('POST', `/v1/jobs/${encodeURIComponent(jobId)}/cancel`, { signal: options.signal });
  }

  /**
   * GET /v1/jobs/{id}/events → {events, last_seq, done}. With `wait` (seconds)
   * the server long-polls until an event arrives or the time runs out.
   * @param {string} jobId
   * @param {{after?: number, limit?: number, wait?: number, signal?: AbortSignal}} [query]
   */
  events(jobId, query = {}) {
    const { signal, ...params } = query;
    return this.#request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/events`, { query: params, signal });
  }

  /**
   * GET /v1/jobs/{id}/snapshot → {job, seq, state, attempt, text, progress,
   * stage, logs, result?, error?}: the job's log folded at `seq` (the fold of
   * job_fold.js); subscribe with `after: seq` to go on from it.
   */
  snapshot(jobId, options = {}) {
    return this.#request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/snapshot`, { signal: options.signal });
  }

  /**
   * One REST call: JSON in and out, the token as a Bearer header, and the
   * broker's error body turned into a JobcastError.
   * @param {string} method
   * @param {string} path
   * @param {{query?: object, body?: unknown, headers?: Record<string, string>, signal?: AbortSignal}} [request]
   */
  async #request(method, path, { query, body, headers, signal } = {}) {
    const url = new URL(this.#baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
    }
    /** @type {Record<string, string>} */
    const allHeaders = { Accept: 'application/json', ...headers };
    if (body !== undefined) allHeaders['Content-Type'] = 'application/json';
    const token = await this.#resolveToken();
    if (token) allHeaders.Authorization = `Bearer ${token}`;

    let response;
    try {
      response = await this.#fetch(url.toString(), {
        method,
        headers: allHeaders,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (err) {
      if (err?.name === 'AbortError') throw err;
      throw new JobcastError(`${method} ${path} failed: ${err?.message ?? err}`, { code: 'network', cause: err });
    }
    const text = await response.text();
    let payload = null;
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch {
        payload = null;
      }
    }
    if (!response.ok) {
      // The broker answers errors as {"error": {"code", "message"}}.
      const error = payload?.error;
      throw new JobcastError(error?.message ?? `${method} ${path}: HTTP ${response.status}`, {
        status: response.status,
        code: error?.code ?? 'http_error',
      });
    }
    return payload;
  }

  // ===========================================================================
  // Socket lifecycle (private)

  async #openSocket() {
    const generation = this.#generation;
    let token;
    try {
      token = await this.#resolveToken();
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#reportError(new JobcastError(`token provider failed: ${err?.message ?? err}`, { code: 'token', cause: err }));
      this.#scheduleReconnect({ reason: 'token provider failed' });
      return;
    }
    if (generation !== this.#generation) return; // close() ran while the token was fetched
    this.#socketToken = token;

    let ws;
    try {
      ws = new this.#Socket(this.#socketUrl(token));
    } catch (err) {
      this.#reportError(new JobcastError(`cannot open WebSocket: ${err?.message ?? err}`, { code: 'network', cause: err }));
      this.#scheduleReconnect({ reason: 'cannot open WebSocket' });
      return;
    }
    this.#ws = ws;
    // Every handler checks that its socket is still the current one: after a
    // heartbeat timeout we abandon a socket without waiting for its close.
    ws.onopen = () => ws === this.#ws && this.#handleOpen();
    ws.onmessage = (event) => ws === this.#ws && this.#handleFrame(event.data);
    ws.onerror = () => {}; // a close event follows and carries what we need
    ws.onclose = (event) => ws === this.#ws && this.#handleClose(event.code, event.reason);
  }

  #socketUrl(token) {
    if (!token) return this.#wsUrl;
    const url = new URL(this.#wsUrl);
    url.searchParams.set('access_token', token);
    return url.toString();
  }

  async #resolveToken() {
    const token = typeof this.#token === 'function' ? await this.#token() : this.#token;
    return token || undefined;
  }

  #handleOpen() {
    // A successful open resets the backoff, except that a 4003/4008 close right
    // after it puts the count back (see #handleClose): those opens prove nothing.
    this.#attemptAtOpen = this.#attempt;
    this.#attempt = 0;
    this.#connected = true;
    this.#lastFrameAt = this.#now();
    this.#nextPingAt = this.#lastFrameAt + this.#pingIntervalMs;
    this.#graceUntil = 0;
    this.#suspectSince = 0;
    this.#armHeartbeat();
    // Resubscribe before announcing 'open', so a state listener that subscribes
    // in response does not get its subscription sent twice.
    for (const record of this.#subs.values()) {
      record.pendingAcks = 0; // acks owed on the old connection will never come
      this.#sendSubscribe(record);
    }
    if (this.#feedListeners.size > 0) this.#send({ op: 'subscribe', feed: 'jobs' });
    this.#scheduleTokenRefresh();
    this.#setState('open', {});
  }

  /**
   * With a token function, sends a fresh token over the open socket
   * ({"op":"auth"}) before the current one expires, so the server does not
   * close with 4003 and no reconnect is needed. Tokens without a readable
   * `exp` are left alone (4003 then reconnects with a fresh one).
   */
  #scheduleTokenRefresh() {
    this.#cancelTimer('refresh');
    if (typeof this.#token !== 'function') return;
    const exp = tokenExpiry(this.#socketToken);
    if (exp === undefined) return;
    const left = exp * 1000 - Date.now(); // exp is wall-clock time
    // Long tokens: 30 s ahead; short ones: after 80 % of what is left.
    const delayMs = Math.max(0, left > 150_000 ? left - 30_000 : left * 0.8);
    const ws = this.#ws;
    this.#refreshTimer = this.#setTimeout(async () => {
      this.#refreshTimer = null;
      if (ws !== this.#ws || !this.#connected) return;
      let token;
      try {
        token = await this.#resolveToken();
      } catch (err) {
        // The server closes with 4003 at expiry; the reconnect asks again.
        this.#reportError(new JobcastError(`token provider failed: ${err?.message ?? err}`, { code: 'token', cause: err }));
        return;
      }
      if (ws !== this.#ws || !this.#connected || !token) return;
      this.#socketToken = token;
      this.#send({ op: 'auth', token });
      this.#scheduleTokenRefresh();
    }, delayMs);
  }

  #handleClose(code, reason) {
    const wasOpen = this.#connected;
    this.#ws = null;
    this.#connected = false;
    this.#stopHeartbeat();
    if (code === CloseCode.REAUTHENTICATE) {
      // With a token function the next connect fetches a fresh token: routine.
      // A fixed token will be refused again, which the application must hear.
      if (typeof this.#token !== 'function') {
        this.#reportError(new JobcastError('the server asked to re-authenticate (4003) and the token is fixed', {
          code: 'reauthenticate',
          closeCode: code,
        }));
      }
      if (wasOpen) this.#attempt = this.#attemptAtOpen;
    } else if (code === CloseCode.POLICY) {
      this.#reportError(new JobcastError(`connection closed by policy (4008)${reason ? `: ${reason}` : ''}`, {
        code: 'policy',
        closeCode: code,
      }));
      // The same usage will meet the same limit: let the backoff keep growing.
      if (wasOpen) this.#attempt = this.#attemptAtOpen;
    }
    this.#scheduleReconnect({ code, reason });
  }

  /** Gives up on the current socket without waiting for its close handshake. */
  #abandonSocket(reason) {
    const ws = this.#ws;
    this.#ws = null;
    this.#connected = false;
    this.#stopHeartbeat();
    if (ws) {
      // The peer is not answering, so a close handshake would only wait for
      // its timeout; the `ws` package can drop the TCP connection at once.
      if (typeof ws.terminate === 'function') ws.terminate();
      else closeQuietly(ws, reason);
    }
    this.#scheduleReconnect({ code: CloseCode.ABNORMAL, reason });
  }

  #scheduleReconnect(info) {
    const delayMs = backoffDelay(this.#attempt, this.#backoff, this.#random);
    this.#attempt += 1;
    this.#setState('reconnecting', { ...info, attempt: this.#attempt, delayMs });
    this.#cancelTimer('reconnect');
    this.#reconnectTimer = this.#setTimeout(() => {
      this.#reconnectTimer = null;
      this.#openSocket();
    }, delayMs);
  }

  /** In a browser, coming back online cuts a pending backoff short. */
  #watchBrowserOnline(on) {
    const target = globalThis.window;
    if (typeof target?.addEventListener !== 'function') return;
    if (on && !this.#onlineListener) {
      this.#onlineListener = () => {
        if (this.#state === 'reconnecting' && this.#reconnectTimer !== null) {
          this.#cancelTimer('reconnect');
          this.#openSocket();
        }
      };
      target.addEventListener('online', this.#onlineListener);
    } else if (!on && this.#onlineListener) {
      target.removeEventListener('online', this.#onlineListener);
      this.#onlineListener = null;
    }
  }

  // ---- heartbeat: a ping every interval; no frame of any kind for two
  // intervals means the path is dead even if TCP has not noticed (sleeping
  // laptops, NAT timeouts, half-open connections), so reconnect.
  //
  // Silence only counts while this client was awake to hear. A timer that runs
  // far later than asked (a background tab's throttled timers, a machine that
  // slept, an event loop busy elsewhere) first pings and waits one interval;
  // and "dead" is confirmed after yielding once, so that frames that arrived
  // while the timer waited its turn are read before the verdict.

  #armHeartbeat(delayMs) {
    const now = this.#now();
    let wakeAt = now + (delayMs ?? 0);
    if (delayMs === undefined) {
      const deadline = Math.max(
        this.#lastFrameAt + MISSED_INTERVALS_BEFORE_DEAD * this.#pingIntervalMs,
        this.#graceUntil,
      );
      wakeAt = Math.min(this.#nextPingAt, deadline);
    }
    this.#heartbeatDueAt = wakeAt;
    this.#heartbeatTimer = this.#setTimeout(() => this.#heartbeat(), Math.max(0, wakeAt - now));
  }

  #heartbeat() {
    this.#heartbeatTimer = null;
    if (!this.#connected) return;
    const now = this.#now();
    const interval = this.#pingIntervalMs;
    if (now - this.#heartbeatDueAt > interval / 2) {
      // Woken late: the silence spans our own absence and proves nothing.
      this.#suspectSince = 0;
      this.#send({ op: 'ping' });
      this.#nextPingAt = now + interval;
      this.#graceUntil = now + interval;
      this.#armHeartbeat();
      return;
    }
    if (now - this.#lastFrameAt >= MISSED_INTERVALS_BEFORE_DEAD * interval && now >= this.#graceUntil) {
      if (this.#suspectSince === 0) {
        this.#suspectSince = now;
        this.#armHeartbeat(0); // let queued frames be read, then look again
        return;
      }
      this.#abandonSocket('heartbeat timeout');
      return;
    }
    this.#suspectSince = 0;
    if (now >= this.#nextPingAt) {
      this.#send({ op: 'ping' });
      this.#nextPingAt = now + interval;
    }
    this.#armHeartbeat();
  }

  #stopHeartbeat() {
    this.#cancelTimer('heartbeat');
    this.#cancelTimer('refresh');
  }

  #cancelTimer(which) {
    if (which === 'reconnect' && this.#reconnectTimer !== null) {
      this.#clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    } else if (which === 'heartbeat' && this.#heartbeatTimer !== null) {
      this.#clearTimeout(this.#heartbeatTimer);
      this.#heartbeatTimer = null;
    } else if (which === 'refresh' && this.#refreshTimer !== null) {
      this.#clearTimeout(this.#refreshTimer);
      this.#refreshTimer = null;
    }
  }

  #send(message) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== SOCKET_OPEN) return;
    try {
      ws.send(JSON.stringify(message));
    } catch {
      // The socket is going away; its close event schedules the reconnect.
    }
  }

  #setState(state, info) {
    if (state === this.#state) return;
    this.#state = state;
    for (const listener of [...this.#stateListeners]) safeCall(listener, state, info);
  }

  #reportError(error) {
    if (this.#errorListeners.size === 0) {
      console.warn('jobcast:', error.message);
      return;
    }
    for (const listener of [...this.#errorListeners]) safeCall(listener, error);
  }

  // ===========================================================================
  // Frames (private)

  #handleFrame(data) {
    this.#lastFrameAt = this.#now();
    let frame;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
    } catch {
      this.#reportError(new JobcastError('the server sent a frame that is not JSON', { code: 'protocol' }));
      return;
    }
    if (frame === null || typeof frame !== 'object') return;
    switch (frame.type) {
      case 'event':
        this.#routeEvent(frame.job, frame);
        break;
      case 'events':
        // Packed frame: several consecutive events of one job.
        if (Array.isArray(frame.events)) {
          for (const event of frame.events) this.#routeEvent(frame.job, event);
        }
        break;
      case 'subscribed':
        this.#handleSubscribed(frame);
        break;
      case 'error':
        this.#handleErrorFrame(frame);
        break;
      default:
        // 'pong', and frame types a newer server may add: liveness is all we need.
        break;
    }
  }

  #routeEvent(job, raw) {
    if (typeof job !== 'string' || raw === null || typeof raw !== 'object') return;
    if (!Number.isSafeInteger(raw.seq) || raw.seq < 1) {
      this.#reportError(new JobcastError(`event for job ${job} has no valid seq`, { code: 'protocol', job }));
      return;
    }
    const event = { job, seq: raw.seq, kind: raw.kind, ts: raw.ts, data: raw.data ?? {} };
    const record = this.#subs.get(job);
    if (record) this.#deliverToSubscription(record, event);
    if (event.kind === 'state') this.#deliverToFeed(event);
  }

  /**
   * The exactly-once, in-order gate of a subscription. The server's stream for
   * one subscription is lastSeq+1, lastSeq+2, …; anything else is explained:
   * - seq <= lastSeq: a repeat (the replay overlapping what we already had, or a
   *   packed frame repeating events) — dropped;
   * - a `state` event beyond lastSeq+1: the jobs feed (same connection) runs
   *   ahead of this job's replay — dropped, the replay will bring it in order;
   * - any other event beyond lastSeq+1: a hole, which the broker promises never
   *   to make. Rather than deliver past it, resubscribe from lastSeq once; if
   *   the same hole comes back, report it and go on.
   */
  #deliverToSubscription(record, event) {
    if (record.ended || record.pendingAcks > 0) return;
    if (event.seq <= record.lastSeq) return;
    if (event.seq !== record.lastSeq + 1) {
      if (event.kind === 'state') return;
      if (record.resyncedAt !== record.lastSeq) {
        record.resyncedAt = record.lastSeq;
        this.#notifySubscription(record, new JobcastError(
          `job ${record.job}: expected seq ${record.lastSeq + 1}, got ${event.seq}; resubscribing`,
          { code: 'gap', job: record.job },
        ));
        this.#send({ op: 'unsubscribe', job: record.job });
        this.#sendSubscribe(record);
        return;
      }
      this.#notifySubscription(record, new JobcastError(
        `job ${record.job}: events ${record.lastSeq + 1}..${event.seq - 1} are missing from the server's stream`,
        { code: 'gap', job: record.job },
      ));
    }
    record.lastSeq = event.seq;
    if (record.onEvent) safeCall(record.onEvent, event);
    if (isTerminalEvent(event) && !record.ended) {
      // The job will never produce another event: end here and free the
      // server-side subscription (it counts against per-connection limits).
      this.#endSubscription(record, true);
      if (record.onDone) safeCall(record.onDone, event);
    }
  }

  #deliverToFeed(event) {
    if (this.#feedListeners.size === 0) return;
    const seen = this.#feedSeq.get(event.job) ?? 0;
    if (event.seq <= seen) return; // the same state change via the job's own subscription
    // Re-insert so the Map's order is least-recently-updated first, then trim.
    this.#feedSeq.delete(event.job);
    this.#feedSeq.set(event.job, event.seq);
    if (this.#feedSeq.size > FEED_MEMORY) this.#feedSeq.delete(this.#feedSeq.keys().next().value);
    for (const listener of [...this.#feedListeners]) safeCall(listener, event);
  }

  #handleSubscribed(frame) {
    const record = typeof frame.job === 'string' ? this.#subs.get(frame.job) : undefined;
    if (!record || record.pendingAcks === 0) return; // the feed's confirmation, or a stale one
    record.pendingAcks -= 1;
    if (record.pendingAcks === 0 && record.onSubscribed) {
      safeCall(record.onSubscribed, { job: record.job, lastSeq: frame.last_seq });
    }
  }

  #handleErrorFrame(frame) {
    const message = typeof frame.message === 'string' ? frame.message : 'server error';
    const error = new JobcastError(message, { code: frame.code ?? 'error', job: frame.job });
    const record = typeof frame.job === 'string' ? this.#subs.get(frame.job) : undefined;
    if (!record) {
      this.#reportError(error);
      return;
    }
    // An error while a subscribe is unconfirmed is the answer to it (no such
    // job, not yours, limits): the server is not streaming this job, so the
    // subscription ends rather than being retried on every reconnect.
    if (record.pendingAcks > 0) this.#endSubscription(record, false);
    this.#notifySubscription(record, error);
  }

  #notifySubscription(record, error) {
    if (record.onError) safeCall(record.onError, error);
    else this.#reportError(error);
  }

  #sendSubscribe(record) {
    record.pendingAcks += 1;
    this.#send({ op: 'subscribe', job: record.job, after: record.lastSeq });
  }

  #endSubscription(record, tellServer) {
    if (record.ended) return;
    record.ended = true;
    if (this.#subs.get(record.job) === record) this.#subs.delete(record.job);
    if (tellServer && this.#connected) this.#send({ op: 'unsubscribe', job: record.job });
  }
}

/** http://h/p → ws://h/p/v1/ws, https → wss; keeps a path prefix (reverse proxies). */
function deriveWebSocketUrl(base) {
  const url = new URL(base.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : url.protocol === 'http:' ? 'ws:' : url.protocol;
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/ws`;
  url.search = '';
  url.hash = '';
  return url.toString();
}

function closeQuietly(ws, reason) {
  try {
    ws.close(CloseCode.NORMAL, reason);
  } catch {
    // Already closing or closed.
  }
}

/**
 * Runs an application callback so that its exception can neither break the
 * client's bookkeeping nor vanish: it is rethrown on its own task, where the
 * browser's console or Node's uncaught-exception handling sees it.
 */
function safeCall(fn, ...args) {
  try {
    fn(...args);
  } catch (err) {
    if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
    else setTimeout(() => { throw err; }, 0);
  }
}
