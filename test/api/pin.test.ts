// Where the user PIN comes from (src/api/pin.ts, shared by createServer and `setls serve`): the pin
// option, an explicit PIN file (wins over a different SETLS_PIN, with a warning), the default
// <cardDir>.pin and SETLS_PIN (both and different: an error), neither: an error naming both.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolvePin } from 'setls';

const root = mkdtempSync(join(tmpdir(), 'setls-pin-'));
after(() => rmSync(root, { recursive: true, force: true }));
const cardDir = join(root, 'card');
writeFileSync(`${cardDir}.pin`, '123456\n', { mode: 0o600 });
const other = join(root, 'other.pin');
writeFileSync(other, '654321\n', { mode: 0o600 });

test('the pin option wins over everything', () => {
  assert.deepEqual(resolvePin({ pin: '1111', cardDir, pinFile: other }, { env: { SETLS_PIN: '2222' } }), { pin: '1111', from: 'option' });
});

test('the default PIN file alone, SETLS_PIN alone, or both when equal', () => {
  assert.equal(resolvePin({ cardDir }, { env: {} }).pin, '123456');
  assert.equal(resolvePin({ cardDir: join(root, 'nofile') }, { env: { SETLS_PIN: '2222' } }).pin, '2222');
  assert.deepEqual(resolvePin({ cardDir }, { env: { SETLS_PIN: '123456' } }), { pin: '123456', from: `${cardDir}.pin` });
});

test('the default PIN file and a different SETLS_PIN: ERR_API_PIN_CONFLICT, naming the way out', () => {
  assert.throws(
    () => resolvePin({ cardDir }, { env: { SETLS_PIN: '999999' } }),
    (e: Error & { code?: string }) => e.code === 'ERR_API_PIN_CONFLICT' && /unset SETLS_PIN/.test(e.message) && /explicit file wins/.test(e.message),
  );
});

test('an explicit PIN file wins over a different SETLS_PIN, with a warning', () => {
  const warnings: string[] = [];
  const r = resolvePin({ cardDir, pinFile: other }, { env: { SETLS_PIN: '999999' }, warn: (m) => warnings.push(m) });
  assert.deepEqual(r, { pin: '654321', from: other });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /SETLS_PIN differs .* using the file/);
  // Same value: no warning.
  resolvePin({ pinFile: other }, { env: { SETLS_PIN: '654321' }, warn: (m) => warnings.push(m) });
  assert.equal(warnings.length, 1);
});

test('nothing: ERR_API_PIN_MISSING naming the file looked for and SETLS_PIN', () => {
  assert.throws(
    () => resolvePin({ cardDir: join(root, 'nocard') }, { env: {} }),
    (e: Error & { code?: string }) => e.code === 'ERR_API_PIN_MISSING' && e.message.includes(join(root, 'nocard.pin')) && /SETLS_PIN is not set/.test(e.message),
  );
  assert.throws(() => resolvePin({}, { env: { SETLS_PIN: '' } }), /ERR_API_PIN_MISSING|SETLS_PIN is not set/);
});
