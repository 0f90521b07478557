// index.d.ts against its users: tsc --noEmit compiles test/types/usage.ts (the
// API as the README shows it) and type-checks the examples' JavaScript.
// Skipped when typescript is not installed (npm ci installs it).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  tsc = null;
}

test('the type declarations compile against their users', { skip: tsc ? false : 'typescript is not installed', timeout: 60_000 }, async () => {
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', join(here, 'types', 'tsconfig.json')]).catch((err) => err);
  assert.equal(result.code ?? 0, 0, `${result.stdout}${result.stderr}`);
});
