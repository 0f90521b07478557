// Type declarations for react.js — `jobcast/react`.
import type { ConnectionState, Job, JobState, JobcastClient, TokenSource } from './jobcast.js';

/** `client`, `WebSocket` and `fetch` should stay the same between renders: a new one restarts the subscription. */
export interface UseJobOptions {
  /** The broker's base URL (the page's origin by default). */
  url?: string;
  token?: TokenSource;
  /** A client to share (its connection stays the application's); by default the hook opens and closes its own. */
  client?: JobcastClient;
  /** WebSocket constructor for the hook's own client (Node 20: the `ws` package). */
  WebSocket?: new (url: string) => WebSocket | any;
  fetch?: typeof fetch;
  /** Log lines kept (100, as in snapshots). */
  maxLogs?: number;
}

export interface UseJobResult {
  /** The job as its snapshot gave it (null until the snapshot arrives); the live fields are below. */
  job: Job | null;
  state: JobState | null;
  attempt: number;
  /** "retrying — attempt 2 of 3" while the job retries after a failed attempt; null otherwise. */
  retrying: string | null;
  /** The job's text: every token, once, in order, less what a failed attempt emitted past the checkpoint the next one resumed from (the fold of job_fold.js). */
  text: string;
  /** 0..1, never going back, never from an event applied twice. */
  progress: number;
  stage: string | null;
  logs: Array<Record<string, any>>;
  result: Record<string, any> | null;
  /** The seq of the last event applied. */
  seq: number;
  /** The connection of the client the hook follows the job with. */
  connection: ConnectionState;
  /** The job's error, or why the hook cannot follow the job (not found, not yours); null when none. */
  error: string | null;
  /** Cancels the job (retried while the broker is unreachable). Unmounting never cancels. */
  cancel(): Promise<Job | undefined>;
}

/** Follows one job live: hydrates from its snapshot, then streams the events after it. */
export function useJob(jobId: string | null | undefined, options?: UseJobOptions): UseJobResult;
