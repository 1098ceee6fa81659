/**
 * The relay endpoint refuses every request that is not setls-remote-admin/1, each with its HTTP status
 * and stable ERR_RELAY_ code, before it reads a body it need not read; Next-URIs are single use and
 * bound to their host and card; and it answers nothing outside /admin/v1/ (the operator's own API).
 * Also a whole poll → script → answers exchange by hand, as docs/agent.md shows it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { decodeErrorBody, ISD_AID, RELAY_PROTOCOL } from '../../src/relay/index.js';
import { fromHex, toHex } from '../../src/bytes/index.js';
import { makePki, raw, startOperator, type TestOperator, type TestPki } from '../agent/operator-fixture.js';
import { waitUntil } from '../wait.js';

let pki: TestPki;
let op: TestOperator;
before(async () => {
  pki = await makePki();
  op = await startOperator(pki, { pollHoldMs: 200, tokens: new Map([['t1', 'host-1'], ['t2', 'host-2']]) });
});
after(() => op.close());

const UID = '00112233445566778899AABBCCDDEEFF';
const base = (token = 't1', host = 'host-1'): Record<string, string> => ({
  'x-admin-protocol': RELAY_PROTOCOL,
  'x-admin-from': `//host/${host}`,
  authorization: `Bearer ${token}`,
  'content-type': 'application/json',
});
const pollHeaders = (extra: Record<string, string> = {}, token?: string, host?: string): Record<string, string> => ({
  ...base(token, host),
  'x-admin-se-list': `//se-id/CUD/${UID}`,
  ...extra,
});
const HB = JSON.stringify({ heartbeat: { agent: 'test', uptimeS: 1, cards: [{ uid: UID, state: 'ready' }] } });

async function expectError(status: number, code: string, p: ReturnType<typeof raw>): Promise<void> {
  const r = await p;
  assert.equal(r.status, status, `${code}: ${r.body}`);
  assert.equal(decodeErrorBody(r.body)?.code, code, r.body);
  assert.equal(r.headers['x-admin-protocol'], RELAY_PROTOCOL);
}

test('polls that are not the protocol are refused with their codes', async () => {
  const P = '/admin/v1/poll';
  await expectError(405, 'ERR_RELAY_METHOD', raw(op, pki, 'GET', P, pollHeaders()));
  await expectError(404, 'ERR_RELAY_NOT_FOUND', raw(op, pki, 'POST', '/admin/v1/other', pollHeaders(), HB));
  await expectError(404, 'ERR_RELAY_NOT_FOUND', raw(op, pki, 'POST', '/admin/v1/poll?x=1', pollHeaders(), HB));
  await expectError(400, 'ERR_RELAY_PROTOCOL', raw(op, pki, 'POST', P, { ...pollHeaders(), 'x-admin-protocol': 'globalplatform-remote-admin/1.0' }, HB));
  const noAuth = pollHeaders();
  delete noAuth.authorization;
  const r401 = await raw(op, pki, 'POST', P, noAuth, HB);
  assert.equal(r401.status, 401);
  assert.match(String(r401.headers['www-authenticate']), /^Bearer/);
  await expectError(401, 'ERR_RELAY_UNAUTHORIZED', raw(op, pki, 'POST', P, pollHeaders({}, 'wrong'), HB));
  await expectError(403, 'ERR_RELAY_FORBIDDEN', raw(op, pki, 'POST', P, pollHeaders({}, 't2', 'host-1'), HB));
  await expectError(400, 'ERR_RELAY_HEADER', raw(op, pki, 'POST', P, { ...pollHeaders(), 'x-admin-from': 'host-1' }, HB));
  await expectError(400, 'ERR_RELAY_HEADER', raw(op, pki, 'POST', P, pollHeaders({ 'x-admin-se-list': '//se-id/CUD/XYZ' }), HB));
  await expectError(400, 'ERR_RELAY_HEADER', raw(op, pki, 'POST', P, pollHeaders({ 'x-admin-resume': 'yes' }), HB));
  const noList = pollHeaders();
  delete noList['x-admin-se-list'];
  await expectError(400, 'ERR_RELAY_HEADER', raw(op, pki, 'POST', P, noList, HB));
  await expectError(415, 'ERR_RELAY_MEDIA_TYPE', raw(op, pki, 'POST', P, { ...pollHeaders(), 'content-type': 'text/plain' }, HB));
  await expectError(400, 'ERR_RELAY_BODY', raw(op, pki, 'POST', P, pollHeaders(), '{"heartbeat":{}}'));
  await expectError(400, 'ERR_RELAY_BODY', raw(op, pki, 'POST', P, pollHeaders(), '\xff'));
  await expectError(413, 'ERR_RELAY_TOO_LARGE', raw(op, pki, 'POST', P, pollHeaders(), ' '.repeat(17 * 1024)));
  // nothing of this reached the operator's own API, and nothing outside /admin/v1/ is the relay's
  assert.deepEqual(op.otherRequests, []);
  const other = await raw(op, pki, 'GET', '/v1/cards', {});
  assert.equal(other.status, 404);
  assert.deepEqual(op.otherRequests, ['/v1/cards']);
});

test('a poll with nothing to do waits pollHoldMs, then 204 + Retry-After', async () => {
  const r = await raw(op, pki, 'POST', '/admin/v1/poll', pollHeaders(), HB);
  assert.equal(r.status, 204);
  assert.equal(r.headers['retry-after'], '0');
  assert.equal(r.headers['x-admin-protocol'], RELAY_PROTOCOL);
  assert.equal(op.hub.hosts().find((x) => x.hostId === 'host-1')?.heartbeat.agent, 'test');
});

test('a whole exchange by hand; Next-URI single use, bound to host and card; answers must fit the script', async () => {
  const capdus = [fromHex('80CADF5000'), fromHex('80500000020102')];
  const result = op.hub.runScript(fromHex(UID), ISD_AID, capdus, { timeoutMs: 20_000 });
  const s = await raw(op, pki, 'POST', '/admin/v1/poll', pollHeaders(), HB);
  assert.equal(s.status, 200, s.body);
  assert.equal(s.headers['x-admin-targeted-se'], `//se-id/CUD/${UID}`);
  assert.equal(s.headers['x-admin-targeted-application'], '//aid/A000000151/000000');
  assert.match(String(s.headers['content-type']), /^application\/json/);
  assert.equal(s.body, '{"delay":0,"ramCommands":[{"ramCommandType":"seRamCommand","listOfCAPDU":["80CADF5000","80500000020102"]}]}');
  const next = String(s.headers['x-admin-next-uri']);
  assert.match(next, /^\/admin\/v1\/s\/[A-Za-z0-9_-]{43}$/);
  const ans = (extra: Record<string, string> = {}, token?: string, host?: string): Record<string, string> => ({
    ...base(token, host),
    'x-admin-targeted-se': `//se-id/CUD/${UID}`,
    'x-admin-script-status': 'ok',
    ...extra,
  });
  const good = JSON.stringify({ listOfRAPDU: ['DF5010' + UID + '9000', '01029000'] });
  await expectError(403, 'ERR_RELAY_FORBIDDEN', raw(op, pki, 'POST', next, ans({}, 't2', 'host-2'), good));
  await expectError(400, 'ERR_RELAY_MISMATCH', raw(op, pki, 'POST', next, ans({ 'x-admin-targeted-se': '//se-id/CUD/FFEEDDCCBBAA99887766554433221100' }), good));
  await expectError(400, 'ERR_RELAY_HEADER', raw(op, pki, 'POST', next, ans({ 'x-admin-script-status': 'fine' }), good));
  await expectError(400, 'ERR_RELAY_MISMATCH', raw(op, pki, 'POST', next, ans(), JSON.stringify({ listOfRAPDU: ['9000', '9000', '9000'] })));
  await expectError(400, 'ERR_RELAY_MISMATCH', raw(op, pki, 'POST', next, ans(), JSON.stringify({ listOfRAPDU: [] })));
  await expectError(404, 'ERR_RELAY_NOT_FOUND', raw(op, pki, 'POST', '/admin/v1/s/' + 'A'.repeat(43), ans(), good));
  const done = await raw(op, pki, 'POST', next, ans(), good);
  assert.equal(done.status, 204, done.body);
  assert.equal(done.headers['x-admin-next-uri'], undefined);
  const r = await result;
  assert.equal(r.status, 'ok');
  assert.deepEqual(r.rapdus.map((x) => toHex(x).toUpperCase()), ['DF5010' + UID + '9000', '01029000']);
  await expectError(410, 'ERR_RELAY_GONE', raw(op, pki, 'POST', next, ans(), good));
});

test('a resumed Next-URI (X-Admin-Resume: true, no answers) gets its first script again under a new Next-URI', async () => {
  const result = op.hub.runScript(fromHex(UID), ISD_AID, [fromHex('80CADF5000')], { timeoutMs: 20_000 });
  const s = await raw(op, pki, 'POST', '/admin/v1/poll', pollHeaders(), HB);
  assert.equal(s.status, 200);
  const next = String(s.headers['x-admin-next-uri']);
  const hdr = { ...base(), 'x-admin-targeted-se': `//se-id/CUD/${UID}`, 'x-admin-script-status': 'ok', 'x-admin-resume': 'true' };
  const again = await raw(op, pki, 'POST', next, hdr, JSON.stringify({ listOfRAPDU: [] }));
  assert.equal(again.status, 200, again.body);
  const next2 = String(again.headers['x-admin-next-uri']);
  assert.notEqual(next2, next);
  assert.equal(again.body, s.body);
  delete (hdr as Record<string, string>)['x-admin-resume'];
  await expectError(404, 'ERR_RELAY_NOT_FOUND', raw(op, pki, 'POST', next, hdr, JSON.stringify({ listOfRAPDU: ['9000'] })));
  const done = await raw(op, pki, 'POST', next2, hdr, JSON.stringify({ listOfRAPDU: ['6A88'] }));
  assert.equal(done.status, 204);
  const r = await result;
  assert.equal(r.deliveries, 2);
  assert.deepEqual(r.rapdus.map((x) => toHex(x).toUpperCase()), ['6A88']);
});

test('one dialog per host: a second poll supersedes the first (204) and ends the dialog of the first', async () => {
  const first = raw(op, pki, 'POST', '/admin/v1/poll', pollHeaders(), HB);
  await waitUntil(() => op.hub.waitingPolls === 1, 'the first poll waits');
  const second = raw(op, pki, 'POST', '/admin/v1/poll', pollHeaders(), HB);
  assert.equal((await first).status, 204);
  assert.equal((await second).status, 204);
});
