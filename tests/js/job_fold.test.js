// The JS job fold's retry rules, without a broker: an attempt that resumes
// from a checkpoint cuts the text back to its resume_seq (none: it starts
// over), a fold hydrated from a snapshot (with its `resume`) cuts the same
// way as the whole log folded, progress never goes back, and retryLabel.
//
//   node --test tests/js/job_fold.test.js

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyJobFold, foldFromSnapshot, foldJobEvent, retryLabel } from 'jobcast';

const state = (seq, s, attempt, extra = {}) => ({ seq, kind: 'state', data: { state: s, attempt, ...extra } });
const token = (seq, text) => ({ seq, kind: 'token', data: { text } });
const progress = (seq, fraction) => ({ seq, kind: 'progress', data: { fraction } });
const fold = (events, from = emptyJobFold()) => events.reduce((f, e) => foldJobEvent(f, e), from);
const shown = ({ marks, ...visible }) => visible;

// Attempt 1 checkpoints after seq 4 ("one two "), emits "thr" past it and is
// lost; attempt 2 resumes at seq 4 (surrogate pairs included: lengths are
// UTF-16 code units, as the broker's snapshot gives them).
const LOG = [
  state(1, 'queued', 0),
  state(2, 'running', 1),
  token(3, 'one 😀 '),
  token(4, 'two '),
  progress(5, 0.6),
  token(6, 'thr'),
  state(7, 'queued', 1, { reason: 'lease lost' }),
  state(8, 'running', 2, { resume_seq: 4 }),
  progress(9, 0.5),
  token(10, 'three'),
  state(11, 'succeeded', 2),
];

test('a resumed attempt cuts the text back to its checkpoint; progress never goes back', () => {
  const before = fold(LOG.slice(0, 7));
  assert.equal(before.text, 'one 😀 two thr');
  assert.equal(retryLabel(before, 3), 'retrying — attempt 2 of 3');
  const resumed = fold(LOG.slice(0, 9));
  assert.equal(resumed.text, 'one 😀 two ');
  assert.equal(resumed.progress, 0.6);
  assert.equal(retryLabel(resumed, 3), 'retrying — attempt 2 of 3');
  assert.equal(retryLabel(resumed), 'retrying — attempt 2');
  const whole = fold(LOG);
  assert.equal(whole.text, 'one 😀 two three');
  assert.equal(retryLabel(whole, 3), null);
  assert.equal(retryLabel(fold(LOG.slice(0, 3)), 3), null, 'a first attempt is no retry');

  // With no checkpoint to resume from, the next attempt starts over.
  const over = fold([state(12, 'queued', 2), state(13, 'running', 3), token(14, 'new')], fold(LOG.slice(0, 10)));
  assert.equal(over.text, 'new');
});

test('a fold hydrated from a snapshot with `resume` cuts as the whole log does', () => {
  for (let at = 4; at <= 6; at++) {
    const head = fold(LOG.slice(0, at));
    // What the broker's snapshot of the job at `at` says (checkpoint_seq 4).
    const snapshot = { ...shown(head), resume: { seq: 4, text_length: 'one 😀 two '.length } };
    const hydrated = fold(LOG, foldFromSnapshot(snapshot));
    assert.deepEqual(shown(hydrated), shown(fold(LOG)), `hydrated at seq ${at}`);
  }
});

test('a long attempt folds in linear time (marks are shared, never copied)', () => {
  let f = fold([state(1, 'running', 1)]);
  const started = performance.now();
  for (let seq = 2; seq < 100_002; seq++) f = foldJobEvent(f, token(seq, 'x'));
  f = foldJobEvent(f, state(100_002, 'running', 2, { resume_seq: 50_001 }));
  assert.equal(f.text.length, 50_000);
  assert.ok(performance.now() - started < 5_000);
});
