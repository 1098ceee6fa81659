/** docs/admin-protocol.md §10 holds the captured admin session of the current code, byte for byte. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { captureAdminTrace, withTrace } from './trace.js';

test('the captured session is deterministic and every command succeeds', () => {
  const a = captureAdminTrace();
  assert.deepEqual(captureAdminTrace(), a);
  for (const s of a) assert.match(s.plainR ?? s.wire[s.wire.length - 1]!.r, /9000$/, s.step);
});

test('docs/admin-protocol.md carries the captured admin session, up to date', () => {
  const doc = readFileSync('docs/admin-protocol.md', 'utf8');
  assert.equal(withTrace(doc), doc, 'run: node --import tsx scripts/render-admin-trace.ts --write');
});
