/**
 * A job's log folded into what a page shows — the client's copy of the
 * broker's fold behind GET /v1/jobs/{id}/snapshot (protocol/job_fold.hpp), so
 * that a snapshot followed by the events after its seq gives the same state as
 * the whole log folded. The web UI, useJob (jobcast/react) and applications
 * all take "the text of a job" from here.
 *
 * The rules, per event kind (the same as the broker's):
 *   state    state and attempt; a new attempt (`running`) clears the error;
 *            `failed` sets the error to its reason; `succeeded` sets progress 1
 *   token    its text is appended to `text` (every attempt's tokens, in order)
 *   progress fraction (clamped to 0..1) -> progress, stage -> stage (each only when present)
 *   log      its data joins `logs`, of which only the last `maxLogs` are kept
 *   result   its data becomes `result`
 *   error    its message becomes `error`
 * An event at or below the fold's seq is ignored, so applying an event twice,
 * or a replay that overlaps what was folded, changes nothing.
 *
 * Pure and immutable: foldJobEvent returns a new fold and never changes its
 * argument (React state can hold folds as they are).
 *
 * @module jobcast/job_fold
 */

/** How many log lines a fold keeps, as the broker's snapshots do. */
export const SNAPSHOT_LOGS = 100;

const STATES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const MAX_ATTEMPT = 1 << 20;

/** The fold of an empty log. */
export function emptyJobFold() {
  return { seq: 0, state: null, attempt: 0, text: '', progress: 0, stage: null, logs: [], result: null, error: null };
}

/**
 * The fold a GET /v1/jobs/{id}/snapshot body describes (its `job` is not part of the fold).
 * @param {{seq: number, state: string|null, attempt: number, text: string, progress: number,
 *   stage: string|null, logs: object[], result?: object, error?: string}} snapshot
 */
export function foldFromSnapshot(snapshot) {
  return {
    seq: snapshot.seq,
    state: snapshot.state ?? null,
    attempt: snapshot.attempt ?? 0,
    text: snapshot.text ?? '',
    progress: snapshot.progress ?? 0,
    stage: snapshot.stage ?? null,
    logs: snapshot.logs ?? [],
    result: snapshot.result ?? null,
    error: snapshot.error || null,
  };
}

/**
 * The fold with `event` applied; the same fold when the event's seq is not
 * above the fold's.
 * @param {ReturnType<typeof emptyJobFold>} fold
 * @param {{seq: number, kind: string, data?: any}} event
 * @param {number} [maxLogs]
 */
export function foldJobEvent(fold, event, maxLogs = SNAPSHOT_LOGS) {
  if (!(event.seq > fold.seq)) return fold;
  const next = { ...fold, seq: event.seq };
  const data = event.data !== null && typeof event.data === 'object' && !Array.isArray(event.data) ? event.data : {};
  switch (event.kind) {
    case 'token':
      if (typeof data.text === 'string') next.text = fold.text + data.text;
      break;
    case 'state': {
      if (!STATES.includes(data.state)) break;
      next.state = data.state;
      next.attempt = Number.isInteger(data.attempt) ? Math.min(Math.max(data.attempt, 0), MAX_ATTEMPT) : 0;
      const reason = typeof data.reason === 'string' ? data.reason : '';
      if (data.state === 'running') next.error = null;
      if (data.state === 'failed') next.error = reason || null;
      if (data.state === 'succeeded') next.progress = 1;
      break;
    }
    case 'progress':
      if (typeof data.fraction === 'number' && !Number.isNaN(data.fraction)) {
        next.progress = Math.min(Math.max(data.fraction, 0), 1);
      }
      if (typeof data.stage === 'string') next.stage = data.stage;
      break;
    case 'log':
      if (maxLogs > 0) next.logs = [...fold.logs.slice(fold.logs.length - maxLogs + 1), data];
      break;
    case 'result':
      next.result = data;
      break;
    case 'error':
      next.error = (typeof data.message === 'string' ? data.message : '') || null;
      break;
    default:
      break; // kinds a newer broker may add: only the seq moves
  }
  return next;
}
