// Compiled by tsc --noEmit (types.test.mjs): the API as index.d.ts declares it.
import { JobFailed, Worker, type Job, type WorkerStats } from '@jobcast/worker';

interface ChatParams {
  messages: { role: string; content: string }[];
}

const worker = new Worker({ brokers: ['tcp://127.0.0.1:5555'], types: ['llm.chat'], capacity: 4, name: 'gpu-1' });
worker.handle<ChatParams>('llm.chat', async (job: Job<ChatParams>) => {
  const first: string = job.params.messages[0]?.content ?? '';
  for await (const piece of [first]) {
    if (job.cancelled) break;
    await job.token(piece);
  }
  await job.progress(0.5, { stage: 'writing' });
  await job.log('info', `attempt ${job.attempt} of ${job.id}`);
  await job.saveCheckpoint(job.checkpoint ?? new Uint8Array([1]));
  job.signal.addEventListener('abort', () => {});
  if (first === '') throw new JobFailed('empty', { retryable: true });
  return { text: first };
});
const stats: WorkerStats = worker.stats();
void stats.badMessages;
await worker.run();
await worker.stop({ handBack: false });
