/**
 * est/credentials.ts on its own: the password is shown once and only an scrypt hash is kept; the
 * Basic header is parsed strictly; a right password passes, a wrong one or an unknown user does
 * not (the same code); at most MAX_CHECKS_IN_FLIGHT password hashes run at once (the next is
 * ERR_OP_EST_BUSY, before any hashing); the profile checks of est/client-csr.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { OpError } from '../../src/operator/errors.js';
import { checkEstCredential, createEstCredential, MAX_CHECKS_IN_FLIGHT, parseBasic, SCRYPT } from '../../src/operator/est/credentials.js';
import { checkAgainstProfile, makeProfile, type ClientCsr } from '../../src/operator/est/client-csr.js';
import type { EstCredentialRow, OperatorStore } from '../../src/operator/store/types.js';

function memoryStore(): OperatorStore {
  const rows = new Map<string, EstCredentialRow>();
  return {
    insertEstCredential: async (r: EstCredentialRow) => void rows.set(r.id, r),
    estCredentialById: async (id: string) => rows.get(id) ?? null,
  } as unknown as OperatorStore;
}

const basic = (user: string, pw: string): string => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
const code = (e: unknown): string => (e instanceof OpError ? e.code : String(e));

test('a credential keeps only scrypt(password, salt); the right password passes, a wrong one or an unknown user does not', async (t) => {
  const store = memoryStore();
  const now = 1_700_000_000_000;
  const started = process.hrtime.bigint();
  const { row, password } = await createEstCredential(store, { name: 'x', uses: 2, expiresAt: now + 1000, profile: { cn: ['a'] }, createdBy: 't', now });
  t.diagnostic(`scrypt N=2^15 r=8 p=1: ${Number(process.hrtime.bigint() - started) / 1e6} ms for one hash here`);
  assert.match(row.id, /^estc-[0-9a-f]{16}$/);
  assert.match(password, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(row.kdf, `scrypt:${SCRYPT.N}:${SCRYPT.r}:${SCRYPT.p}`);
  const expected = scryptSync(password, row.salt, 32, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: 64 * 1024 * 1024 });
  assert.deepEqual(Buffer.from(row.secretHash), expected);
  assert.ok(!Buffer.from(row.secretHash).includes(Buffer.from(password)));
  assert.equal((await checkEstCredential(store, basic(row.id, password), now)).id, row.id);
  await assert.rejects(checkEstCredential(store, basic(row.id, password.slice(0, -1) + (password.endsWith('A') ? 'B' : 'A')), now), (e) => code(e) === 'ERR_OP_EST_CREDENTIAL');
  await assert.rejects(checkEstCredential(store, basic('estc-0123456789abcdef', password), now), (e) => code(e) === 'ERR_OP_EST_CREDENTIAL');
  await assert.rejects(checkEstCredential(store, undefined, now), (e) => code(e) === 'ERR_OP_EST_CREDENTIAL');
  await assert.rejects(checkEstCredential(store, `Bearer ${password}`, now), (e) => code(e) === 'ERR_OP_EST_CREDENTIAL');
  await assert.rejects(checkEstCredential(store, basic(row.id, password), now + 1000), (e) => code(e) === 'ERR_OP_EST_CREDENTIAL', 'expired');
});

test(`at most ${MAX_CHECKS_IN_FLIGHT} password checks run at once: the next is ERR_OP_EST_BUSY before any hashing`, async () => {
  const store = memoryStore();
  const now = 1_700_000_000_000;
  const { row, password } = await createEstCredential(store, { name: 'x', uses: 9, expiresAt: now + 1000, profile: { cn: ['a'] }, createdBy: 't', now });
  const calls = Array.from({ length: MAX_CHECKS_IN_FLIGHT + 2 }, () => checkEstCredential(store, basic(row.id, password), now).then(
    () => 'ok',
    (e: unknown) => code(e),
  ));
  const results = await Promise.all(calls);
  assert.deepEqual(results, [...Array(MAX_CHECKS_IN_FLIGHT).fill('ok'), 'ERR_OP_EST_BUSY', 'ERR_OP_EST_BUSY']);
  assert.equal(await checkEstCredential(store, basic(row.id, password), now).then(() => 'ok'), 'ok', 'free again afterwards');
});

test('Basic header parsing: user up to the first colon, the password may hold colons; other schemes are not Basic', () => {
  const p = parseBasic(basic('estc-0123456789abcdef', 'a:b:c'))!;
  assert.equal(p.user, 'estc-0123456789abcdef');
  assert.equal(p.password.toString(), 'a:b:c');
  assert.equal(parseBasic('Basic !!!'), null);
  assert.equal(parseBasic(`Basic ${Buffer.from('nocolon').toString('base64')}`), null);
  assert.equal(parseBasic('Digest x'), null);
});

test('profiles: names and *.suffix patterns, exact IPs; the CN may be a cn or a dns pattern', () => {
  const p = makeProfile({ cn: ['svc-a'], dns: ['*.lab.example', 'exact.example'], ip: ['10.0.0.7'] });
  const csr = (cn: string, dnsNames: string[] = [], ipAddresses: string[] = []): ClientCsr => ({ spkiDer: new Uint8Array(), spkiSha256: new Uint8Array(), alg: 'p256', cn, dnsNames, ipAddresses });
  for (const ok of [csr('svc-a'), csr('x.lab.example', ['a.b.lab.example', 'exact.example'], ['10.0.0.7']), csr('SVC-A')]) checkAgainstProfile(ok, p);
  for (const bad of [csr('svc-b'), csr('lab.example'), csr('svc-a', ['lab.example']), csr('svc-a', ['evil-lab.example']), csr('svc-a', [], ['10.0.0.8']), csr('svc-a', ['sub.exact.example'])]) {
    assert.throws(() => checkAgainstProfile(bad, p), (e) => code(e) === 'ERR_OP_EST_NAME', JSON.stringify(bad));
  }
  assert.throws(() => makeProfile({}), (e) => code(e) === 'ERR_OP_BAD_REQUEST');
  assert.throws(() => makeProfile({ dns: ['*'] }), (e) => code(e) === 'ERR_OP_BAD_REQUEST');
  assert.throws(() => makeProfile({ ip: ['10.0.0'] }), (e) => code(e) === 'ERR_OP_BAD_REQUEST');
});
