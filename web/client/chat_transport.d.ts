// Type declarations for chat_transport.js — the AI SDK's ChatTransport over
// jobcast. Structurally an `ai` ChatTransport<UIMessage>; declared without
// importing `ai`, which the package does not depend on.
import type { TokenSource } from './jobcast.js';

/** The parts of an AI SDK UIMessage the transport reads. */
export interface ChatMessageLike {
  id: string;
  role: 'system' | 'user' | 'assistant';
  parts: Array<{ type: string; text?: string; [key: string]: unknown }>;
}

/** A Web Storage, or anything with its three methods. */
export type ChatStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export interface JobcastChatTransportOptions {
  /** The broker's base URL; the page's origin by default. */
  url?: string;
  token?: TokenSource;
  fetch?: typeof fetch;
  /** Where each chat's job id is kept until its stream is delivered (localStorage when present; null: memory only). */
  storage?: ChatStorage | null;
  /** The job type ('llm.generate'). */
  type?: string;
  /** The job's params for a conversation ({@link chatParams} by default); a request's `body` is merged over them. */
  params?: (messages: ChatMessageLike[]) => Record<string, unknown>;
  /** A cancel (Stop) that could not be delivered; console.warn without it. */
  onError?: (error: Error) => void;
  /** Uniform random in [0, 1) for the reconnect jitter, for tests. */
  random?: () => number;
}

/**
 * `{prompt, messages}`: the conversation as OpenAI chat messages
 * ([{role, content}], text parts joined; an assistant's last text part) and
 * the last user message's text.
 */
export function chatParams(messages: ChatMessageLike[]): {
  prompt: string;
  messages: Array<{ role: string; content: string }>;
};

export class JobcastChatTransport {
  constructor(options?: JobcastChatTransportOptions);
  /** true: reconnectToStream sends the job's whole message (its snapshot, then the events after it). */
  readonly resumeStreamIsReplay: true;
  // `headers` and `metadata` of the AI SDK's request options are not used:
  // the token goes with every request, and `body` is merged into the params.
  /**
   * Submits the conversation as a job and streams its UI message chunks;
   * `abortSignal` firing after this resolved cancels the job (the AI SDK's stop()).
   */
  sendMessages(options: {
    trigger: 'submit-message' | 'regenerate-message';
    chatId: string;
    messageId: string | undefined;
    messages: ChatMessageLike[];
    abortSignal: AbortSignal | undefined;
    headers?: Record<string, string> | Headers;
    body?: object;
    metadata?: unknown;
  }): Promise<ReadableStream<any>>;
  /** The chat's undelivered job's whole message (snapshot, then live), or null when there is none. */
  reconnectToStream(options: {
    chatId: string;
    abortSignal?: AbortSignal;
    headers?: Record<string, string> | Headers;
    body?: object;
    metadata?: unknown;
  }): Promise<ReadableStream<any> | null>;
}
