// Type declarations for the `jobcast` package (index.js).
export * from './jobcast.js';
export * from './job_fold.js';
export { cancelJob } from './cancel.js';
export { JobcastChatTransport, chatParams } from './chat_transport.js';
