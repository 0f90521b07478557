/**
 * A job's log folded into what a page shows — the client's copy of the
 * broker's fold behind GET /v1/jobs/{id}/snapshot (protocol/job_fold.hpp), so
 * that a snapshot followed by the events after its seq gives the same state as
 * the whole log folded. The web UI, useJob (jobcast/react) and applications
 * all take "the text of a job" from here.
 *
 * The rules, per event kind (the same as the broker's):
 *   state    state and attempt; a new attempt (`running`) clears the error and
 *            cuts `text` back to what the log held at its `resume_seq` (the
 *            seq its checkpoint covers; none or 0: it starts over, text ''),
 *            so what a failed attempt emitted past its checkpoint is not shown
 *            twice; `failed` sets the error to its reason; `succeeded` sets
 *            progress 1
 *   token    its text is appended to `text`
 *   progress fraction (clamped to 0..1) -> progress when it is higher (progress
 *            never goes back, not even on a retry), stage -> stage (when present)
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

// `marks`: where each token of the current attempt left the text, newest
// first, as an immutable list {seq, length, prev} that starts at the point the
// attempt resumed from: a next attempt's resume_seq cuts the text back to the
// mark at or below it. Pushing is O(1) and a cut walks back only from the
// newest token to the checkpoint.
function mark(seq, length, prev = null) {
  return { seq, length, prev };
}

/** The text length at `seq`: the last mark at or below it (none: the whole text). */
function lengthAt(fold, seq) {
  for (let m = fold.marks; m !== null; m = m.prev) if (m.seq <= seq) return m.length;
  return fold.text.length;
}

/** The fold of an empty log. */
export function emptyJobFold() {
  return {
    seq: 0, state: null, attempt: 0, text: '', progress: 0, stage: null, logs: [], result: null, error: null,
    marks: mark(0, 0),
  };
}

/**
 * The fold a GET /v1/jobs/{id}/snapshot body describes (its `job` is not part
 * of the fold). Its `resume` (an unfinished job's checkpoint: its seq and the
 * text's length there) is where a next attempt may cut the text back to.
 * @param {{seq: number, state: string|null, attempt: number, text: string, progress: number,
 *   stage: string|null, logs: object[], result?: object, error?: string,
 *   resume?: {seq: number, text_length: number}}} snapshot
 */
export function foldFromSnapshot(snapshot) {
  const text = snapshot.text ?? '';
  const resume = snapshot.resume ? mark(snapshot.resume.seq, Math.min(snapshot.resume.text_length, text.length)) : null;
  return {
    marks: mark(snapshot.seq, text.length, resume),
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
      if (typeof data.text === 'string') {
        next.text = fold.text + data.text;
        next.marks = mark(event.seq, next.text.length, fold.marks);
      }
      break;
    case 'state': {
      if (!STATES.includes(data.state)) break;
      next.state = data.state;
      next.attempt = Number.isInteger(data.attempt) ? Math.min(Math.max(data.attempt, 0), MAX_ATTEMPT) : 0;
      const reason = typeof data.reason === 'string' ? data.reason : '';
      if (data.state === 'running') {
        next.error = null;
        const resumeSeq = Number.isInteger(data.resume_seq) && data.resume_seq > 0 ? data.resume_seq : 0;
        next.text = fold.text.slice(0, resumeSeq === 0 ? 0 : lengthAt(fold, resumeSeq));
        next.marks = mark(resumeSeq, next.text.length);
      }
      if (data.state === 'failed') next.error = reason || null;
      if (data.state === 'succeeded') next.progress = 1;
      break;
    }
    case 'progress':
      if (typeof data.fraction === 'number' && !Number.isNaN(data.fraction)) {
        next.progress = Math.max(fold.progress, Math.min(Math.max(data.fraction, 0), 1));
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

/**
 * What a retry looks like to a person: "retrying — attempt 2 of 3" while a
 * job runs (or waits) for another attempt after a failed one; null otherwise.
 * @param {ReturnType<typeof emptyJobFold>} fold
 * @param {number} [maxAttempts] the job's max_attempts (left out when unknown)
 */
export function retryLabel(fold, maxAttempts) {
  const attempt = fold.state === 'queued' && fold.attempt >= 1 ? fold.attempt + 1
    : fold.state === 'running' && fold.attempt >= 2 ? fold.attempt : 0;
  if (attempt === 0) return null;
  return maxAttempts ? `retrying — attempt ${attempt} of ${maxAttempts}` : `retrying — attempt ${attempt}`;
}
