// A ten-line worker: streams a greeting word by word. Submit with
//   curl -s localhost:8080/v1/jobs -d '{"type":"hello","params":{"name":"Ada"}}'
import { Worker } from '@jobcast/worker';

const worker = new Worker({ brokers: [process.env.JOBCAST_BROKER ?? 'tcp://127.0.0.1:5555'], capacity: 4 });
worker.handle('hello', async (job) => {
  for (const word of ['Hello', ',', ' ', job.params.name ?? 'world', '!']) await job.token(word);
  return { greeted: job.params.name ?? 'world' };
});
process.once('SIGTERM', () => worker.stop());
await worker.run();
