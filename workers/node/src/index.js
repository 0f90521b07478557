// The jobcast worker SDK for Node.js (worker protocol v1). See README.md,
// "TypeScript worker SDK", and index.d.ts for the API.
export { Worker } from './worker.js';
export { JobFailed } from './job.js';
