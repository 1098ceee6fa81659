// The web console's server side over real HTTPS, without a browser (test/operator/console.test.ts
// drives the pages in Chromium): the pages and their security headers (strict CSP, no framing, no
// inline script), sign-in with an API token → an HttpOnly/Secure/SameSite=Strict session cookie,
// the /v1 API accepting that cookie ONLY with the session's X-CSRF-Token (GET included), cross-site
// requests refused, destructive calls refused from a session without their confirmation (bearer
// tokens unchanged), sign-out, idle and absolute expiry, a revoked token ending its sessions, and the
// fleet endpoint (state / label / UID-prefix filters, counts, keyset pagination).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { createApiToken } from '../../src/operator/auth/tokens.js';
import { fromHex } from '../../src/bytes/index.js';
import type { CardLifecycle } from '../../src/operator/store/types.js';
import { call, tempDir } from './helpers.js';

let svc: RunningOperator;
let tmp: ReturnType<typeof tempDir>;
let ca: string;
let admin: string;
let viewer: string;
let clock = Date.UTC(2026, 11, 6, 12);
const IDLE = 10 * 60_000;
const ABSOLUTE = 60 * 60_000;

const api = (method: string, path: string, opts: Parameters<typeof call>[4] = {}) => call(svc.url, ca, method, path, opts);
const origin = () => new URL(svc.url).host;

async function signIn(token: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const r = await api('POST', '/console/session', { body: { token } });
  assert.equal(r.status, 201, r.body.toString());
  const setCookie = String(r.headers['set-cookie']);
  return { cookie: setCookie.split(';')[0]!, csrf: r.json().csrf, setCookie };
}
const withSession = (s: { cookie: string; csrf?: string }, extra: Record<string, string> = {}) => ({ headers: { cookie: s.cookie, ...(s.csrf ? { 'x-csrf-token': s.csrf } : {}), ...extra } });

const UIDS: string[] = [];
async function addCard(uid: string, lifecycle: CardLifecycle, labels: Record<string, string> = {}): Promise<void> {
  await svc.operator.store.insertCard({
    id: randomUUID(),
    uid: fromHex(uid),
    batchId: null,
    attestCertDer: Uint8Array.of(1, 2, 3),
    attestSpkiSha256: new Uint8Array(32),
    lifecycle,
    kvn: 1,
    transportKeyId: null,
    labels,
    profile: {},
    createdAt: clock,
  });
  UIDS.push(uid);
}

before(async () => {
  tmp = tempDir();
  const dir = join(tmp.dir, 'op');
  admin = (await initOperator({ dir, manufacturerCaPems: [] })).adminToken;
  svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false, writeServeInfo: false, console: { now: () => clock, idleMs: IDLE, absoluteMs: ABSOLUTE } });
  ca = svc.operator.paths.tlsCaCert;
  viewer = (await createApiToken(svc.operator.store, 'viewer', 'dashboard')).token;
  await addCard('a1a1a1a1', 'active', { site: 'paris' });
  await addCard('a1a2b3c4', 'locked', { site: 'paris' });
  await addCard('a1f00000', 'active', { site: 'lyon' });
  await addCard('b0000001', 'manifest');
  await addCard('ffff0000', 'active');
  await addCard('ffffffff', 'enrolled');
});
after(async () => {
  await svc.stop();
  tmp.cleanup();
});

test('the console page, its script and style: served under /console/ with a strict CSP, no framing, no referrer, nosniff; no inline script', async () => {
  const r = await api('GET', '/console/');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/html/);
  const csp = String(r.headers['content-security-policy']);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'scripts from the page origin only: no unsafe-inline, no CDN');
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  assert.equal(r.headers['x-frame-options'], 'DENY');
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  const html = r.body.toString();
  for (const tag of html.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, /\ssrc="[^":]+"/, `only same-origin script files: ${tag}`);
  assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=/i, 'no inline style or handler attributes');
  const js = await api('GET', '/console/app.js');
  assert.equal(js.status, 200);
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assert.doesNotThrow(() => new Script(js.body.toString(), { filename: 'app.js' }), 'app.js parses');
  assert.doesNotMatch(js.body.toString(), /innerHTML|insertAdjacentHTML|eval\(/, 'the script never builds markup from strings');
  assert.equal((await api('GET', '/console/style.css')).status, 200);
  assert.equal((await api('GET', '/console')).status, 308);
  assert.equal((await api('GET', '/console/../operator.db')).status, 404);
  assert.equal((await api('GET', '/console/nothing.js')).status, 404);
  // The API's own responses carry the headers too.
  const h = await api('GET', '/v1/cards', { token: viewer });
  assert.equal(h.headers['x-frame-options'], 'DENY');
  assert.equal(h.headers['x-content-type-options'], 'nosniff');
});

test('sign-in: a wrong or malformed token is refused without a cookie; a good one sets an HttpOnly, Secure, SameSite=Strict, host-only session cookie', async () => {
  for (const token of ['sop_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'nonsense', admin.slice(0, -1) + (admin.endsWith('A') ? 'B' : 'A')]) {
    const r = await api('POST', '/console/session', { body: { token } });
    assert.equal(r.status, 401, r.body.toString());
    assert.equal(r.json().error.code, 'ERR_OP_UNAUTHENTICATED');
    assert.equal(r.headers['set-cookie'], undefined);
  }
  const form = await api('POST', '/console/session', { rawBody: `token=${admin}`, contentType: 'application/x-www-form-urlencoded' });
  assert.equal(form.status, 415, 'a cross-site HTML form cannot sign anyone in');
  const cross = await api('POST', '/console/session', { body: { token: admin }, headers: { origin: 'https://evil.example' } });
  assert.equal(cross.status, 403);
  assert.equal(cross.json().error.code, 'ERR_OP_CSRF');
  const s = await signIn(admin);
  assert.match(s.setCookie, /^__Host-setls-console=[A-Za-z0-9_-]{43}; /);
  for (const attr of ['Path=/', 'Secure', 'HttpOnly', 'SameSite=Strict']) assert.ok(s.setCookie.split('; ').includes(attr), `${attr} in ${s.setCookie}`);
  assert.doesNotMatch(s.setCookie, /Domain=/i);
  assert.match(s.csrf, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(!s.setCookie.includes(s.csrf), 'the CSRF token is not the cookie');
});

test('the API accepts the session cookie only with its X-CSRF-Token, for GET as for POST; another session’s token, a cross-site Origin or Sec-Fetch-Site are refused', async () => {
  const s = await signIn(viewer);
  const other = await signIn(viewer);
  const none = await api('GET', '/v1/cards', withSession({ cookie: s.cookie }));
  assert.equal(none.status, 403);
  assert.equal(none.json().error.code, 'ERR_OP_CSRF');
  for (const bad of ['x', other.csrf, s.csrf.slice(0, -1), s.csrf + 'A']) {
    const r = await api('GET', '/v1/cards', withSession({ cookie: s.cookie, csrf: bad }));
    assert.equal(r.status, 403, `token ${bad}`);
    assert.equal(r.json().error.code, 'ERR_OP_CSRF');
  }
  const post = await api('POST', `/v1/cards/${UIDS[0]}/read-audit`, { ...withSession({ cookie: s.cookie }), body: {} });
  assert.equal(post.status, 403, 'POST without the CSRF header');
  const ok = await api('GET', '/v1/cards', withSession(s));
  assert.equal(ok.status, 200, ok.body.toString());
  assert.equal(ok.json().items.length, UIDS.length);
  assert.equal((await api('GET', '/v1/cards', withSession(s, { origin: `https://${origin()}`, 'sec-fetch-site': 'same-origin' }))).status, 200);
  assert.equal((await api('GET', '/v1/cards', withSession(s, { origin: 'https://evil.example' }))).status, 403);
  assert.equal((await api('GET', '/v1/cards', withSession(s, { 'sec-fetch-site': 'cross-site' }))).status, 403);
  assert.equal((await api('GET', '/v1/cards', withSession(s, { 'sec-fetch-site': 'same-site' }))).status, 403);
  // Roles are the token's: a viewer's session cannot lock.
  const lock = await api('POST', `/v1/cards/${UIDS[0]}/lock`, { ...withSession(s), body: { confirm: UIDS[0] } });
  assert.equal(lock.status, 403);
  assert.equal(lock.json().error.code, 'ERR_OP_FORBIDDEN');
  // A bearer token still works as before, with or without a cookie.
  assert.equal((await api('GET', '/v1/cards', { token: viewer })).status, 200);
  assert.equal((await api('GET', '/v1/cards', { token: viewer, headers: { cookie: s.cookie } })).status, 200);
  // An unknown session cookie is 401 (sign in again).
  const gone = await api('GET', '/v1/cards', withSession({ cookie: '__Host-setls-console=' + 'A'.repeat(43), csrf: s.csrf }));
  assert.equal(gone.status, 401);
  // An EventSource cannot send headers: the token may come in ?csrf= for text/event-stream GETs only.
  const q = await api('GET', `/v1/cards?csrf=${s.csrf}`, withSession({ cookie: s.cookie }));
  assert.equal(q.status, 403, 'not for JSON GETs');
  const sse = await api('GET', `/v1/cards?csrf=${s.csrf}`, withSession({ cookie: s.cookie }, { accept: 'text/event-stream' }));
  assert.equal(sse.status, 200, sse.body.toString());
});

test('GET /console/session gives the page its CSRF token back after a reload, only with the console’s own header', async () => {
  const s = await signIn(viewer);
  const plain = await api('GET', '/console/session', withSession({ cookie: s.cookie }));
  assert.equal(plain.status, 403);
  const r = await api('GET', '/console/session', withSession({ cookie: s.cookie }, { 'x-requested-with': 'setls-console' }));
  assert.equal(r.status, 200);
  assert.equal(r.json().csrf, s.csrf);
  assert.equal(r.json().role, 'viewer');
  assert.equal((await api('GET', '/console/session', { headers: { 'x-requested-with': 'setls-console' } })).status, 401);
});

test('destructive calls from a console session need their confirmation (the typed UID, or true); bearer clients are not asked', async () => {
  const s = await signIn(admin);
  const uid = UIDS[0]!;
  for (const body of [{}, { confirm: true }, { confirm: UIDS[1] }, { confirm: 'yes' }]) {
    const r = await api('POST', `/v1/cards/${uid}/lock`, { ...withSession(s), body });
    assert.equal(r.status, 428, `${JSON.stringify(body)}: ${r.body.toString()}`);
    assert.equal(r.json().error.code, 'ERR_OP_CONFIRMATION_REQUIRED');
  }
  const ok = await api('POST', `/v1/cards/${uid}/lock`, { ...withSession(s), body: { reason: 'console test', confirm: uid.toUpperCase() } });
  assert.equal(ok.status, 202, ok.body.toString());
  assert.equal(ok.json().job.kind, 'lock');
  assert.equal(ok.json().job.params.reason, 'console test');
  const job = ok.json().job.id;
  const cancel = await api('POST', `/v1/jobs/${job}/cancel`, { ...withSession(s), body: {} });
  assert.equal(cancel.status, 428);
  assert.equal((await api('POST', `/v1/jobs/${job}/cancel`, { ...withSession(s), body: { confirm: true } })).status, 200);
  // Non-destructive actions need none (and a stray confirm is not passed on to the route).
  assert.equal((await api('POST', `/v1/cards/${UIDS[2]}/read-audit`, { ...withSession(s), body: {} })).status, 202);
  const unlock = await api('POST', `/v1/cards/${UIDS[2]}/unlock`, { ...withSession(s), body: { confirm: true } });
  assert.equal(unlock.status, 202, `the route (which refuses unknown parameters) ran without confirm: ${unlock.body.toString()}`);
  // Bearer: as before.
  const b = await api('POST', `/v1/cards/${UIDS[2]}/lock`, { token: admin, body: {} });
  assert.equal(b.status, 202, b.body.toString());
  const bc = await api('POST', `/v1/cards/${UIDS[2]}/lock`, { token: admin, body: { confirm: UIDS[2] } });
  assert.equal(bc.status, 400, 'bearer clients get the routes unchanged (confirm is an unknown parameter there)');
});

test('sign-out ends the session (it needs the CSRF token); idle and absolute expiry; a revoked token ends its sessions', async () => {
  const s = await signIn(viewer);
  assert.equal((await api('DELETE', '/console/session', withSession({ cookie: s.cookie }))).status, 403, 'sign-out without the CSRF token');
  assert.equal((await api('GET', '/v1/cards', withSession(s))).status, 200);
  const out = await api('DELETE', '/console/session', withSession(s));
  assert.equal(out.status, 204);
  assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
  assert.equal((await api('GET', '/v1/cards', withSession(s))).status, 401, 'after sign-out');

  const idle = await signIn(viewer);
  clock += IDLE - 1000;
  assert.equal((await api('GET', '/v1/cards', withSession(idle))).status, 200, 'used just before the idle limit');
  clock += IDLE - 1000;
  assert.equal((await api('GET', '/v1/cards', withSession(idle))).status, 200, 'each use restarts the idle time');
  clock += IDLE + 1;
  const expired = await api('GET', '/v1/cards', withSession(idle));
  assert.equal(expired.status, 401, 'idle too long');
  assert.equal(expired.json().error.code, 'ERR_OP_UNAUTHENTICATED');

  const abs = await signIn(viewer);
  for (let used = 0; used < ABSOLUTE; used += IDLE / 2) {
    clock += IDLE / 2;
    const r = await api('GET', '/v1/cards', withSession(abs));
    assert.equal(r.status, used + IDLE / 2 <= ABSOLUTE ? 200 : 401);
  }
  clock += IDLE / 2;
  assert.equal((await api('GET', '/v1/cards', withSession(abs))).status, 401, 'past the absolute lifetime, however active');

  const t = await createApiToken(svc.operator.store, 'viewer', 'short-lived');
  const r = await signIn(t.token);
  assert.equal((await api('GET', '/v1/cards', withSession(r))).status, 200);
  await svc.operator.store.revokeApiToken(t.row.id, clock);
  assert.equal((await api('GET', '/v1/cards', withSession(r))).status, 401, 'the token was revoked');
});

test('GET /v1/fleet: state, label and UID-prefix filters, counts by state on the first page, keyset pagination with filter-bound cursors', async () => {
  const list = async (q: string) => {
    const r = await api('GET', `/v1/fleet?${q}`, { token: viewer });
    assert.equal(r.status, 200, r.body.toString());
    return r.json();
  };
  const all = await list('');
  assert.deepEqual(all.items.map((c: any) => c.uid), [...UIDS].sort());
  assert.equal(all.total, UIDS.length);
  assert.equal(all.counts.active, 3);
  assert.equal(typeof all.serverMs, 'number');
  assert.deepEqual((await list('uid_prefix=a1')).items.map((c: any) => c.uid), ['a1a1a1a1', 'a1a2b3c4', 'a1f00000']);
  assert.deepEqual((await list('uid_prefix=A1A')).items.map((c: any) => c.uid), ['a1a1a1a1', 'a1a2b3c4'], 'odd length, upper case');
  assert.deepEqual((await list('uid_prefix=ffff')).items.map((c: any) => c.uid), ['ffff0000', 'ffffffff'], 'a prefix of all f has no upper bound');
  assert.deepEqual((await list('uid_prefix=fffff')).items.map((c: any) => c.uid), ['ffffffff']);
  assert.deepEqual((await list('uid_prefix=a1&state=active')).items.map((c: any) => c.uid), ['a1a1a1a1', 'a1f00000']);
  assert.deepEqual((await list('label=site=paris')).items.map((c: any) => c.uid), ['a1a1a1a1', 'a1a2b3c4']);
  assert.deepEqual((await list('label=site&uid_prefix=a1f')).items.map((c: any) => c.uid), ['a1f00000']);
  const p1 = await list('limit=2&uid_prefix=a1');
  assert.equal(p1.items.length, 2);
  assert.ok(p1.nextCursor);
  const p2 = await list(`limit=2&uid_prefix=a1&cursor=${p1.nextCursor}`);
  assert.deepEqual(p2.items.map((c: any) => c.uid), ['a1f00000']);
  assert.equal(p2.nextCursor, null);
  assert.equal(p2.counts, undefined, 'counts on the first page only');
  const wrong = await api('GET', `/v1/fleet?limit=2&uid_prefix=b&cursor=${p1.nextCursor}`, { token: viewer });
  assert.equal(wrong.json().error.code, 'ERR_OP_BAD_CURSOR');
  assert.equal((await api('GET', '/v1/fleet?uid_prefix=xyz', { token: viewer })).status, 400);
  assert.equal((await api('GET', '/v1/fleet?state=sleeping', { token: viewer })).status, 400);
  assert.equal((await api('GET', '/v1/fleet')).status, 401);
  const audit = await api('GET', `/v1/cards/${UIDS[0]}/audit-log`, { token: viewer });
  assert.equal(audit.status, 200);
  assert.deepEqual(audit.json(), { items: [], next: null, head: null });
  assert.equal((await api('GET', '/v1/cards/0badcafe/audit-log', { token: viewer })).status, 404);
});
