import type { Job, JobcastClient } from './jobcast.js';

/**
 * POST /v1/jobs/{id}/cancel, retried on network errors, 429 and 5xx for up to
 * a minute (a broker restart); resolves undefined when the job had finished (409).
 */
export function cancelJob(client: JobcastClient, jobId: string, options?: { random?: () => number }): Promise<Job | undefined>;
