// The `jobcast` package: the client (jobcast.js), the job fold that gives a
// job's text (job_fold.js), cancel with retries (cancel.js) and the AI SDK's
// ChatTransport (chat_transport.js). React: `jobcast/react` (react.js).
export * from './jobcast.js';
export * from './job_fold.js';
export { cancelJob } from './cancel.js';
export { JobcastChatTransport, chatParams } from './chat_transport.js';
