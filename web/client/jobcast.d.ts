// Type declarations for jobcast.js — the jobcast client (Client API v1).
// See the header comment of jobcast.js for the delivery guarantees.

/** Job lifecycle states. */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** Connection states of a {@link JobcastClient}. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Job states after which a job never changes again. */
export const TERMINAL_STATES: readonly ['succeeded', 'failed', 'cancelled'];

/** WebSocket close codes with a meaning in Client API v1. */
export const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  ABNORMAL: 1006;
  RESTART: 1012;
  TOO_SLOW: 4001;
  REAUTHENTICATE: 4003;
  POLICY: 4008;
}>;

/** A job as the REST API returns it. */
export interface Job {
  id: string;
  type: string;
  owner: string;
  params: Record<string, unknown>;
  priority: number;
  state: JobState;
  attempt: number;
  max_attempts: number;
  worker: string | null;
  progress: number | null;
  last_seq: number;
  result: unknown;
  error: string | null;
  /** Unix milliseconds. */
  created_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  cancel_requested: boolean;
  has_checkpoint: boolean;
}

export interface StateData {
  state: JobState;
  attempt: number;
  worker?: string;
  /** running: the seq the checkpoint it resumes from covers (absent: it starts over). */
  resume_seq?: number;
  reason?: string;
}
export interface ProgressData {
  fraction: number;
  stage?: string;
  message?: string;
}
export interface TokenData {
  text: string;
}
export interface LogData {
  level: string;
  message: string;
}
export interface ErrorData {
  message: string;
}

/** One entry of a job's log, as the REST API returns it. */
export interface LogEntry {
  seq: number;
  kind: 'state' | 'progress' | 'token' | 'log' | 'result' | 'error' | (string & {});
  /** Timestamp set by the worker or broker (unix ms or µs). */
  ts: number;
  data: Record<string, any>;
}

/** An event delivered by a subscription or the jobs feed: a log entry plus its job id. */
export interface JobEvent extends LogEntry {
  job: string;
}

/** A `state` event (what the jobs feed delivers and what ends a subscription). */
export interface StateEvent extends JobEvent {
  kind: 'state';
  data: StateData & Record<string, any>;
}

/** One entry of GET /v1/types. */
export interface JobType {
  type: string;
  /** Connected workers serving the type. */
  workers: number;
  /** The params' JSON Schema (draft 7); null when the workers announced none. */
  schema: Record<string, any> | boolean | null;
}

export interface JobPage {
  jobs: Job[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next: string | null;
}

export interface EventsPage {
  events: LogEntry[];
  /** The newest seq in the log when it was read. */
  last_seq: number;
  /** The job is finished and this page reaches its last event. */
  done: boolean;
}

/** GET /v1/jobs/{id}/snapshot: the job's log folded at `seq` (see job_fold.d.ts). */
export interface Snapshot {
  /** The job as read with its log up to `seq`; its result is the snapshot's own `result`. */
  job: Job;
  seq: number;
  state: JobState | null;
  attempt: number;
  text: string;
  progress: number;
  stage: string | null;
  /** The newest log events' data (at most 100). */
  logs: Array<Record<string, any>>;
  result?: Record<string, any>;
  error?: string;
  /** An unfinished job's checkpoint: its seq and the length of `text` there (UTF-16 code units). */
  resume?: { seq: number; text_length: number };
}

/** Details of a state change. */
export interface StateChangeInfo {
  /** Close code of the connection that ended (1006 for a heartbeat timeout). */
  code?: number;
  reason?: string;
  /** For 'reconnecting': retries since the last successful open, including this one. */
  attempt?: number;
  /** For 'reconnecting': how long the client waits before this retry. */
  delayMs?: number;
}

export interface Backoff {
  /** First retry waits up to this long (250). */
  initialMs?: number;
  /** No retry waits longer than this (10000). */
  maxMs?: number;
}

export interface TimerHooks {
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: any) => void;
  /** Milliseconds, monotonic enough for the heartbeat (Date.now). */
  now?: () => number;
}

export type TokenSource = string | (() => string | undefined | Promise<string | undefined>);

export interface ClientOptions {
  /** The broker's base URL ('http://host:port', a path prefix is kept); the page's origin by default. */
  url?: string;
  /** Overrides the derived WebSocket URL (url with http→ws, https→wss, path + '/v1/ws'). */
  wsUrl?: string;
  /**
   * A JWT, or a function returning one (sync or async). A function is called
   * before every connection and every REST call, so a 4003 close fetches a fresh token.
   * Sent as `?access_token=` on the WebSocket URL and `Authorization: Bearer` on REST.
   */
  token?: TokenSource;
  /** WebSocket constructor; globalThis.WebSocket by default (Node 20: `import { WebSocket } from 'ws'`). */
  WebSocket?: new (url: string) => WebSocket | any;
  /** fetch implementation; globalThis.fetch by default. */
  fetch?: typeof fetch;
  backoff?: Backoff;
  /** Heartbeat interval (15000). Two silent intervals mean the connection is dead. */
  pingIntervalMs?: number;
  /** Open the WebSocket in the constructor (true) or on the first subscribe / connect(). */
  autoConnect?: boolean;
  /** Clock hooks, for tests. */
  timers?: TimerHooks;
  /** Uniform random in [0, 1) used for the backoff jitter (Math.random), for tests. */
  random?: () => number;
}

export interface SubscribeOptions {
  /** Deliver events with seq > after (0, the default, replays the whole log). */
  after?: number;
  /** Each event exactly once, in seq order, across reconnects. */
  onEvent?: (event: JobEvent) => void;
  /** The terminal state event, right after its onEvent; the subscription has ended. */
  onDone?: (event: StateEvent) => void;
  /**
   * Error frames about this job, and holes in the server's stream (code 'gap').
   * An error answering the subscribe itself (e.g. code 'not_found') also ends the subscription.
   */
  onError?: (error: JobcastError) => void;
  /** Each time the server confirms the (re)subscription; lastSeq is the log's newest seq then. */
  onSubscribed?: (info: { job: string; lastSeq: number }) => void;
}

export interface SubmitOptions {
  priority?: number;
  maxAttempts?: number;
  /** Makes retrying the same submit safe: the server answers with the job it created first. */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface ListJobsQuery {
  state?: JobState;
  type?: string;
  limit?: number;
  cursor?: string;
  signal?: AbortSignal;
}

export interface EventsQuery {
  after?: number;
  limit?: number;
  /** Long-poll for up to this many seconds when no event is available yet. */
  wait?: number;
  signal?: AbortSignal;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** Every failure the client reports. */
export class JobcastError extends Error {
  constructor(
    message: string,
    details?: { code?: string | number; status?: number; job?: string; closeCode?: number; cause?: unknown },
  );
  name: 'JobcastError';
  /**
   * The server's error code (REST body or error frame), or one of the client's:
   * 'network', 'protocol', 'gap', 'token', 'policy', 'reauthenticate',
   * 'already_subscribed', 'no_websocket', 'http_error'.
   */
  code: string | number;
  /** HTTP status, for REST errors. */
  status?: number;
  /** The job the error is about, when there is one. */
  job?: string;
  /** The WebSocket close code that caused the error (4003, 4008). */
  closeCode?: number;
}

/** A subscription to one job's events. */
export class Subscription {
  private constructor();
  readonly job: string;
  /** Seq of the last event delivered (or the `after` it started from). */
  readonly lastSeq: number;
  /** False once the job finished, the server rejected the subscription, or it was unsubscribed. */
  readonly active: boolean;
  /** Stops delivery now and sends `{"op":"unsubscribe"}` when connected. Idempotent. */
  unsubscribe(): void;
}

export class JobcastClient {
  /** @throws JobcastError code 'no_websocket' when autoConnect is on and no WebSocket exists. */
  constructor(options?: ClientOptions);

  readonly state: ConnectionState;
  /** The base URL REST calls go to (no trailing slash). */
  readonly url: string;

  /** Listens to connection state changes; returns a function that removes the listener. */
  onStateChange(listener: (state: ConnectionState, info: StateChangeInfo) => void): () => void;
  /**
   * Listens to errors that belong to no subscription (error frames without a
   * job, 4008, 4003 with a fixed token, protocol violations). Without listeners
   * they go to console.warn. Returns a function that removes the listener.
   */
  onError(listener: (error: JobcastError) => void): () => void;

  /** Opens the WebSocket if it is closed. @throws JobcastError code 'no_websocket'. */
  connect(): void;
  /** Closes the WebSocket, stops reconnecting and ends every subscription (no onDone). */
  close(): void;

  /**
   * Streams a job's events after `after`, then live; resumes across reconnects.
   * @throws JobcastError code 'already_subscribed' if this job already has an active subscription.
   */
  subscribe(jobId: string, options?: SubscribeOptions): Subscription;
  /**
   * Follows state changes of all the caller's jobs. Live only: reload with
   * listJobs() when the connection returns to 'open'.
   */
  subscribeJobs(listener: (event: StateEvent) => void): { unsubscribe(): void };

  /** POST /v1/jobs. */
  submit(type: string, params?: Record<string, unknown>, options?: SubmitOptions): Promise<Job>;
  /** GET /v1/types: the connected workers' job types and their params schemas. */
  types(options?: RequestOptions): Promise<{ types: JobType[] }>;
  /** GET /v1/jobs/{id}. */
  getJob(jobId: string, options?: RequestOptions): Promise<Job>;
  /** GET /v1/jobs?state=&type=&limit=&cursor= (newest first). */
  listJobs(query?: ListJobsQuery): Promise<JobPage>;
  /** POST /v1/jobs/{id}/cancel. */
  cancel(jobId: string, options?: RequestOptions): Promise<Job>;
  /** GET /v1/jobs/{id}/events?after=&limit=&wait=. */
  events(jobId: string, query?: EventsQuery): Promise<EventsPage>;
  /** GET /v1/jobs/{id}/snapshot: subscribe with `after: snapshot.seq` to go on from it. */
  snapshot(jobId: string, options?: RequestOptions): Promise<Snapshot>;
}

/** The full-jitter reconnect delay: random() * min(maxMs, initialMs * 2^attempt), floored. */
export function backoffDelay(
  attempt: number,
  backoff: { initialMs: number; maxMs: number },
  random?: () => number,
): number;

/** True for a `state` event whose state is terminal. */
export function isTerminalEvent(event: { kind: string; data?: any }): boolean;
