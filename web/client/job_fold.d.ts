// Type declarations for job_fold.js — a job's log folded into what a page
// shows, the client's copy of the broker's snapshot fold.
import type { JobState, Snapshot } from './jobcast.js';

/** How many log lines a fold keeps, as the broker's snapshots do (100). */
export const SNAPSHOT_LOGS: number;

export interface JobFold {
  /** The last event folded in. */
  seq: number;
  state: JobState | null;
  attempt: number;
  /** The job's text: the tokens in order, less what a failed attempt emitted past the checkpoint the next one resumed from. */
  text: string;
  /** 0..1, never going back. */
  progress: number;
  stage: string | null;
  /** The newest log events' data. */
  logs: Array<Record<string, any>>;
  result: Record<string, any> | null;
  error: string | null;
  /** Internal: where the current attempt's tokens left the text (newest first). */
  marks: JobFoldMark | null;
}

export interface JobFoldMark {
  seq: number;
  length: number;
  prev: JobFoldMark | null;
}

/** The fold of an empty log. */
export function emptyJobFold(): JobFold;
/** The fold a snapshot describes. */
export function foldFromSnapshot(snapshot: Snapshot): JobFold;
/** The fold with `event` applied (a new object); `fold` itself when event.seq <= fold.seq. */
export function foldJobEvent(
  fold: JobFold,
  event: { seq: number; kind: string; data?: any },
  maxLogs?: number,
): JobFold;
/** "retrying — attempt 2 of 3" while a job retries after a failed attempt; null otherwise. */
export function retryLabel(fold: JobFold, maxAttempts?: number): string | null;
