/**
 * The dependency rules of the relay code: the device agent reaches the card through CardClient only
 * (never card/, gp/, operator/ or the rest of host/), the relay protocol imports bytes only, and the
 * operator's relay end (a subfolder rule) imports bytes, apdu and relay only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDeps } from '../../scripts/check-deps.js';

test('agent/, relay/ and operator/relay/ imports outside their rules are caught; allowed ones are not', () => {
  const { violations } = checkDeps('test/fixtures/deps-violation-agent/src');
  const found = violations.map((v) => `${v.file} -> ${v.to}`).sort();
  assert.deepEqual(found, [
    'agent/bad.ts -> card/card.js',
    'agent/bad.ts -> gp/host.js',
    'agent/bad.ts -> host/tandem.js',
    'agent/bad.ts -> operator/relay/hub.js',
    'operator/relay/bad.ts -> host/card-client.js',
    'relay/bad.ts -> apdu/index.js',
  ]);
});

test('the real src/ tree keeps the agent rules', () => {
  assert.deepEqual(checkDeps('src').violations, []);
});
