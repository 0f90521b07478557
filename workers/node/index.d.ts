// Type declarations of @jobcast/worker (src/index.js), the jobcast worker SDK
// for Node.js: worker protocol v1 with the C++ SDK's guarantees.

/** Where the worker logs (default: info and above to stderr). `console` fits. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface WorkerOptions {
  /** Broker endpoints, e.g. ["tcp://127.0.0.1:5555"]; the worker moves to the next when one goes silent or its connection closes. */
  brokers: string[];
  /** Job types to serve; default: every type with a handler. */
  types?: string[];
  /** Jobs run at once (default 1, at most 1024). */
  capacity?: number;
  /** Shown in job state; default "<hostname>-<pid>". 1..128 bytes, no control characters. */
  name?: string;
  /** Output waiting for acks (all jobs together) before emits wait (default 8 MiB). */
  maxUnackedBytes?: number;
  /** Reconnect backoff bounds (defaults 100 and 5000 ms); each delay is drawn from [0, ceiling]. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Heartbeat interval until the broker's welcome sets it (default 1000 ms). */
  heartbeatMs?: number;
  /** Heartbeat intervals of broker silence before reconnecting (default 3). */
  liveness?: number;
  /** On stop(): how long to wait for acks of what was already emitted (default 2000 ms). */
  shutdownGraceMs?: number;
  /** ZeroMQ CURVE: the broker's public key (Z85) or its .pub file, and this worker's secret key file (`jobcast keygen`). */
  curveServerKey?: string;
  curveSecretKeyFile?: string;
  logger?: Logger;
}

/** A JSON object: job params, results and event data (sent as JSON: undefined members are left out). */
export type JsonObject = Record<string, any>;

export interface Job<Params = JsonObject> {
  readonly id: string;
  /** 1 on the first run; higher when the job was re-queued. */
  readonly attempt: number;
  readonly type: string;
  readonly params: Params;
  /** The last checkpoint saved by an earlier attempt, or null on a first run. */
  readonly checkpoint: Buffer | null;
  /** True once the job was cancelled or is no longer this worker's (lease lost, worker stopping). */
  readonly cancelled: boolean;
  /** Aborts when `cancelled` becomes true: hand it to fetch, timers and streams. */
  readonly signal: AbortSignal;
  /** A `token` event {text}. Resolves at once unless the worker's unacknowledged output is over its bound. */
  token(text: string): Promise<void>;
  /** A `progress` event {fraction (clamped to 0..1), stage?, message?}. */
  progress(fraction: number, details?: { stage?: string; message?: string }): Promise<void>;
  /** A `log` event {level, message}. */
  log(level: string, message: string): Promise<void>;
  /** Any chunk event with a JSON object as its data. */
  emit(kind: 'progress' | 'token' | 'log', data: JsonObject): Promise<void>;
  /** Stored by the broker; the next attempt of this job starts with it. */
  saveCheckpoint(bytes: Uint8Array | string): Promise<void>;
}

/** The result (a JSON object) or nothing (an empty result). */
export type Handler<Params = JsonObject> = (job: Job<Params>) => Promise<JsonObject | void> | JsonObject | void;

/** Thrown from a handler: the job fails with this message, retried only when `retryable`. Any other error is retryable. */
export declare class JobFailed extends Error {
  constructor(message: string, options?: { retryable?: boolean });
  readonly retryable: boolean;
}

export interface WorkerStats {
  eventsEmitted: number;
  messagesSent: number;
  messagesResent: number;
  acksReceived: number;
  unackedMessages: number;
  unackedBytes: number;
  emitWaits: number;
  reconnects: number;
  hellos: number;
  rejectsReceived: number;
  /** Frames from the broker that were not protocol messages (counted and ignored). */
  badMessages: number;
  jobsAssigned: number;
  jobsRunning: number;
  jobsSucceeded: number;
  /** Cancelled jobs included. */
  jobsFailed: number;
  /** Lease lost or reassigned. */
  jobsAbandoned: number;
  connected: boolean;
  broker: string;
}

export declare class Worker {
  constructor(options: WorkerOptions);
  readonly name: string;
  /**
   * Registers the handler for a job type; call before run(). `schema` (an
   * object or JSON text): the JSON Schema its params must meet, announced in
   * hello; the broker answers 422 to a submission that breaks it.
   */
  handle<Params = JsonObject>(
    type: string,
    handler: Handler<Params>,
    options?: { schema?: JsonObject | boolean | string },
  ): this;
  /** Connects and serves until stop(); resolves once stopped. */
  run(): Promise<void>;
  /**
   * Graceful stop. handBack (default true): running handlers are cancelled and
   * left to the broker, which re-queues them from their last checkpoint;
   * false: running jobs finish first. What was emitted is flushed either way.
   */
  stop(options?: { handBack?: boolean }): Promise<void>;
  stats(): WorkerStats;
}
