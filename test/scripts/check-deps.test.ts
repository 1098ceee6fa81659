import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { checkDeps } from '../../scripts/check-deps.js';

test('the real src/ tree respects the boundaries', () => {
  const { violations, files } = checkDeps('src');
  assert.ok(files > 10);
  assert.deepEqual(violations, []);
});

test('a host import of card code and a server import of TLS handshake code are caught', () => {
  const { violations } = checkDeps('test/fixtures/deps-violation/src');
  const found = violations.map((v) => `${v.file} -> ${v.to}`).sort();
  assert.deepEqual(found, ['host/bad.ts -> card/applet.js', 'servers/worse.ts -> tls/server/handshake.js']);
});

test('the CLI entry exits non-zero on the violating fixture', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/check-deps.ts', 'test/fixtures/deps-violation/src'], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /host\/bad\.ts: '\.\.\/card\/applet\.js'/);
});
