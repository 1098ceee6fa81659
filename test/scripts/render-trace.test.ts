import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { renderTrace } from '../../scripts/render-trace.js';

test('docs/apdu-protocol.md carries the captured trace of the fixture, up to date', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/render-trace.ts'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('the rendering shows both directions of every exchange', () => {
  const md = renderTrace([{ step: 'RESET-STATE', c: 'a0191000', r: '9000' }]);
  assert.match(md, />> A0 19 10 00\n<< 90 00/);
});
