/**
 * The card-protocol module's rule (scripts/check-deps.ts): protocol/ imports bytes/ only; card/,
 * host/ and transport/ may import it; the TLS engine may not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDeps, RULES } from '../../scripts/check-deps.js';

test('protocol/ may import bytes/ only; card, host and transport may import protocol/, tls may not', () => {
  assert.deepEqual(RULES.protocol, ['bytes']);
  for (const f of ['card', 'host', 'transport', 'servers']) assert.ok(RULES[f]!.includes('protocol'), `${f} may import protocol`);
  const { violations } = checkDeps('test/fixtures/deps-violation-protocol/src');
  assert.deepEqual(violations.map((v) => `${v.file} -> ${v.to}`).sort(), ['protocol/bad.ts -> apdu/codec.js', 'tls/engine.ts -> protocol/ins.js']);
});
