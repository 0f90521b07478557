// The `jobcast` package's type declarations (web/client/*.d.ts) against their
// users: tsc --noEmit compiles tests/js/types/usage.ts, which assigns the
// transport to the real `ai` package's ChatTransport type.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('the jobcast package declarations compile against their users', { timeout: 60_000 }, async () => {
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', join(here, 'types', 'tsconfig.json')]).catch((err) => err);
  assert.equal(result.code ?? 0, 0, `${result.stdout}${result.stderr}`);
});
