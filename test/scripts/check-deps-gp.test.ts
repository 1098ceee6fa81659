import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkDeps, RULES } from '../../scripts/check-deps.js';

test('gp/ may import bytes/ and protocol/ only: an import of apdu/ is caught, bytes/ is not', () => {
  assert.deepEqual(RULES.gp, ['bytes', 'protocol']);
  const { violations } = checkDeps('test/fixtures/deps-violation-gp/src');
  assert.deepEqual(
    violations.map((v) => `${v.file} -> ${v.to}`),
    ['gp/bad.ts -> apdu/codec.js'],
  );
});
