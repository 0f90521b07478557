// vitest runs the Durable Streams tests (tests/js/*.vitest.mjs): the
// protocol's conformance suite ships as vitest tests. The other JS tests use
// node's own runner (node --test tests/js/*.test.js).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/js/*.vitest.mjs'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // The suite's concurrent tests share one broker: keep it to one file at a time.
    fileParallelism: false,
  },
});
