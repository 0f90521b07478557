// The `jobcast` package's declarations against their users: the transport is
// an `ai` ChatTransport, useJob's result is what the README shows.
import type { ChatTransport, UIMessage } from 'ai';
import { JobcastChatTransport, JobcastClient, emptyJobFold, foldJobEvent, retryLabel, type JobFold, type Snapshot } from 'jobcast';
import { useJob } from 'jobcast/react';

const transport: ChatTransport<UIMessage> = new JobcastChatTransport({ url: 'http://127.0.0.1:8080', token: () => 'jwt', storage: null });
void transport;

const client = new JobcastClient({ url: 'http://127.0.0.1:8080', autoConnect: false });
const snapshot: Promise<Snapshot> = client.snapshot('job');
void snapshot;

const fold: JobFold = foldJobEvent(emptyJobFold(), { seq: 1, kind: 'token', data: { text: 'a' } });
const text: string = fold.text;
const label: string | null = retryLabel(fold, 3);
void [text, label];

export function useAnswer(jobId: string): string {
  const { text, state, attempt, retrying, progress, stage, logs, connection, error, cancel, job } = useJob(jobId, { url: 'http://x', token: 'jwt' });
  const shown: string | null = retrying;
  void [state, attempt, shown, progress, stage, logs, connection, error, job];
  void cancel();
  return text;
}
