import { JobcastError, backoffDelay } from './jobcast.js';

const RETRY = Object.freeze({ initialMs: 100, maxMs: 2_000 });
/** How long a cancel keeps trying while the broker cannot be reached (a restart). */
const CANCEL_TRIES_FOR_MS = 60_000;

/**
 * POST /v1/jobs/{id}/cancel until the broker has it: a person pressed Stop,
 * and a broker that is restarting at that moment must not turn the press into
 * nothing. Network failures, 429 and 5xx are retried (backoff with full
 * jitter) for up to a minute; 409 (the job finished meanwhile) counts as done.
 * Resolves with the job JSON the broker answered (undefined after a 409).
 *
 * @param {import('./jobcast.js').JobcastClient} client
 * @param {string} jobId
 * @param {{random?: () => number}} [options]
 */
export async function cancelJob(client, jobId, { random = Math.random } = {}) {
  const deadline = Date.now() + CANCEL_TRIES_FOR_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      return await client.cancel(jobId);
    } catch (err) {
      if (err instanceof JobcastError && err.status === 409) return undefined;
      const transient = err instanceof JobcastError && (err.code === 'network' || err.status === 429 || err.status >= 500);
      if (!transient || Date.now() >= deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, backoffDelay(attempt, RETRY, random)));
  }
}
