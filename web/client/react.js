/**
 * jobcast/react — React bindings of the jobcast client.
 *
 * ```jsx
 * import { useJob } from 'jobcast/react';
 * function Answer({ jobId }) {
 *   const { text, state, progress, connection, error, cancel } = useJob(jobId, { url, token });
 *   return <p>{text}{state === 'running' && <button onClick={cancel}>Stop</button>}</p>;
 * }
 * ```
 *
 * useJob hydrates from the job's snapshot (one small document however long
 * the job is), then subscribes `after` its seq over the client's WebSocket,
 * which resumes by itself after any disconnect or broker restart. A retry
 * shows: `retrying` says "retrying — attempt 2 of 3", and the text of an
 * attempt resuming from a checkpoint continues from there (what the failed
 * attempt emitted past it is cut, never shown twice). Events are
 * folded by job_fold.js — the same fold as the broker's snapshots and the web
 * UI — and a fold ignores every event at or below its seq, so no event is
 * applied twice (replays, reconnects, React StrictMode's double effects).
 * Unmounting stops following the job and never cancels it; cancel() does.
 *
 * @module jobcast/react
 */

import { useCallback, useEffect, useRef, useState } from 'react';

import { JobcastClient, JobcastError } from './jobcast.js';
import { SNAPSHOT_LOGS, emptyJobFold, foldFromSnapshot, foldJobEvent, retryLabel } from './job_fold.js';
import { cancelJob } from './cancel.js';

function freshView(jobId) {
  return { jobId, job: null, fold: emptyJobFold(), connection: 'closed', problem: null };
}

/** True for an answer that will not change by asking again (the job is not there for us). */
function isFinalRefusal(err) {
  return err instanceof JobcastError && err.status !== undefined && err.status < 500 && err.status !== 429;
}

/**
 * Follows one job: its state, text, progress, stage and logs, live.
 *
 * @param {string | null | undefined} jobId nothing is followed while it is empty
 * @param {object} [options]
 * @param {string} [options.url] the broker's base URL (the page's origin by default)
 * @param {string | (() => string | undefined | Promise<string | undefined>)} [options.token]
 * @param {import('./jobcast.js').JobcastClient} [options.client] a client to share
 *   (its connection is then the application's to close); by default the hook
 *   opens its own and closes it on unmount
 * @param {typeof WebSocket} [options.WebSocket] for the hook's own client (Node: the `ws` package)
 * @param {typeof fetch} [options.fetch]
 * @param {number} [options.maxLogs] log lines kept (100, as in snapshots)
 * `client`, `WebSocket` and `fetch` should stay the same between renders (a
 * new one restarts the subscription); `token` may change freely.
 */
export function useJob(jobId, options = {}) {
  const { url, client: shared, WebSocket, fetch, maxLogs = SNAPSHOT_LOGS } = options;
  const [stored, setView] = useState(() => freshView(jobId));
  const view = stored.jobId === jobId ? stored : freshView(jobId);
  const tokenRef = useRef(options.token);
  tokenRef.current = options.token;

  useEffect(() => {
    if (!jobId) return undefined;
    const token = () => (typeof tokenRef.current === 'function' ? tokenRef.current() : tokenRef.current);
    const client = shared ?? new JobcastClient({ url, token, WebSocket, fetch, autoConnect: false });
    let active = true;
    let subscription = null;
    const reading = new AbortController();
    const update = (change) => {
      if (active) setView((current) => change(current.jobId === jobId ? current : freshView(jobId)));
    };
    const offState = client.onStateChange((connection) => update((v) => ({ ...v, connection })));
    const onEvent = (event) =>
      update((v) => {
        const fold = foldJobEvent(v.fold, event, maxLogs);
        return fold === v.fold ? v : { ...v, fold };
      });

    (async () => {
      let after = 0;
      try {
        const snapshot = await client.snapshot(jobId, { signal: reading.signal });
        after = snapshot.seq;
        update((v) => ({
          ...v,
          job: snapshot.job,
          fold: snapshot.seq > v.fold.seq ? foldFromSnapshot(snapshot) : v.fold,
          problem: null,
        }));
      } catch (err) {
        if (!active) return;
        if (isFinalRefusal(err)) {
          update((v) => ({ ...v, problem: err }));
          return;
        }
        // The broker cannot be reached now: follow the whole log instead, the
        // client connects as soon as it can (a fold skips what it already has).
      }
      if (!active) return;
      subscription = client.subscribe(jobId, {
        after,
        onEvent,
        onSubscribed: () => update((v) => (v.problem ? { ...v, problem: null } : v)),
        // A hole is repaired by the client itself (it resubscribes).
        onError: (err) => err.code !== 'gap' && update((v) => ({ ...v, problem: err })),
      });
      update((v) => ({ ...v, connection: client.state }));
    })();

    return () => {
      active = false;
      reading.abort();
      subscription?.unsubscribe();
      offState();
      if (!shared) client.close();
    };
  }, [jobId, url, shared, WebSocket, fetch, maxLogs]);

  const cancel = useCallback(() => {
    if (!jobId) return Promise.resolve(undefined);
    // A REST-only client of its own: cancel() works whatever the effect's state.
    const rest = shared ?? new JobcastClient({ url, token: tokenRef.current, fetch, autoConnect: false });
    return cancelJob(rest, jobId);
  }, [jobId, url, shared, fetch]);

  const { fold } = view;
  return {
    job: view.job,
    state: fold.state,
    attempt: fold.attempt,
    retrying: retryLabel(fold, view.job?.max_attempts),
    text: fold.text,
    progress: fold.progress,
    stage: fold.stage,
    logs: fold.logs,
    result: fold.result,
    seq: fold.seq,
    connection: view.connection,
    error: view.problem?.message ?? fold.error,
    cancel,
  };
}
