// The dependency rule for src/operator (scripts/check-deps.ts): it may import bytes, gp, pki,
// registry and protocol, never card/, host/ or tls/ — the operator reaches cards only through SCP03
// scripts relayed as bytes. Checked on a throwaway tree and on the real src/operator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkDeps } from '../../scripts/check-deps.js';
import { tempDir } from './helpers.js';

test('src/operator may import gp/ and bytes/ but not card/, host/ or tls/', () => {
  const t = tempDir('setls-deps-');
  try {
    const src = join(t.dir, 'src');
    for (const d of ['operator/pki', 'card', 'host', 'tls', 'gp', 'bytes']) mkdirSync(join(src, d), { recursive: true });
    writeFileSync(join(src, 'operator/pki/ok.ts'), "import { x } from '../../gp/index.js';\nimport { y } from '../../bytes/index.js';\nimport { z } from '../jobs.js';\n");
    writeFileSync(join(src, 'operator/bad.ts'), "import { a } from '../card/applet.js';\nimport { b } from '../host/index.js';\nimport { c } from '../tls/server/handshake.js';\n");
    const found = checkDeps(src).violations.map((v) => `${v.file} -> ${v.to}`).sort();
    assert.deepEqual(found, ['operator/bad.ts -> card/applet.js', 'operator/bad.ts -> host/index.js', 'operator/bad.ts -> tls/server/handshake.js']);
  } finally {
    t.cleanup();
  }
  assert.deepEqual(checkDeps('src').violations.filter((v) => v.from === 'operator'), []);
});
