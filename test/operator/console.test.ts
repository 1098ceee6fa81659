// The web console in headless Chromium against real processes (as test/operator/e2e.test.ts):
// `setls card init`, `setls operator init` + `serve`, the card behind `setls serve https --operator`
// (its device agent), enrolled through the real job path. Then, in the browser only: sign in with an
// API token, filter the fleet (state, UID prefix) and page through it, open the card, lock it from
// the UI through the confirmation dialog (the typed UID), see the job succeed on the page — and the
// next TLS handshake to the card's device refused (curl exit 35). Screenshots of every page are
// written to test-artifacts/console/ and checked for their content. The page cannot read the
// session cookie, and a request from the page without the CSRF token is refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { fromHex } from '../../src/bytes/index.js';
import { openSqliteStore } from '../../src/operator/store/index.js';
import { tempDir } from './helpers.js';
import { requirePeer } from '../interop/peers.js';
import { waitUntil } from '../wait.js';
import { launch, onPage, openConsole, pageErrors, requireChromium, shot, signIn } from './console-browser.js';
import { exec, freePort, ProcessGroup, setls } from './processes.js';

let tmp: ReturnType<typeof tempDir>;
let D: string;
let C: string;
let opUrl = '';
let httpsPort: number;
let uid = '';
let browser: Browser | undefined;
const procs = new ProcessGroup();
const run = (args: readonly string[]) => setls(args);
const background = (args: readonly string[]) => procs.background(args);

const curl = () => exec('curl', ['-sS', '--max-time', '30', '--cacert', join(D, 'ca.crt'), `https://localhost:${httpsPort}/status`]);

before(async () => {
  tmp = tempDir('setls-console-');
  D = join(tmp.dir, 'op');
  C = join(tmp.dir, 'card');
});
after(async () => {
  await browser?.close().catch(() => undefined);
  await procs.stopAll();
  tmp.cleanup();
});

test('setup: a real card behind its device agent, enrolled by the operator (real processes)', async (t) => {
  if (!requirePeer(t, 'curl') || !requireChromium(t)) return;
  const ci = await run(['card', 'init', '--card-dir', C]);
  assert.equal(ci.code, 0, ci.stderr);
  const mdir = join(tmp.dir, 'manufacturer');
  const init = await run(['operator', 'init', '--dir', D, '--manufacturer-ca', join(mdir, 'ca.crt'), '--manufacturer-keys', join(mdir, 'master.key')]);
  assert.equal(init.code, 0, init.stderr);
  const port = await freePort();
  opUrl = `https://localhost:${port}`;
  const serve = background(['operator', 'serve', '--dir', D, '--port', String(port)]);
  await waitUntil(() => /operator serving at/.test(serve.out) || serve.child.exitCode !== null, () => `operator serve starts: ${serve.out}`);
  assert.equal(serve.child.exitCode, null, serve.out);
  const token = await run(['operator', 'agent-token', '--dir', D, '--host', 'dev-console']);
  assert.equal(token.code, 0, token.stderr);
  writeFileSync(join(tmp.dir, 'agent.token'), token.stdout.trim() + '\n', { mode: 0o600 });
  const manifest = await run(['card', 'manifest', '--card-dir', C]);
  assert.equal(manifest.code, 0, manifest.stderr);
  writeFileSync(join(tmp.dir, 'manifest.json'), manifest.stdout);
  assert.equal((await run(['operator', 'import-manifest', '--dir', D, join(tmp.dir, 'manifest.json')])).code, 0);
  httpsPort = await freePort();
  const device = background(['serve', 'https', '--card-dir', C, '--port', String(httpsPort), '--operator', opUrl, '--operator-ca', join(D, 'tls-ca.crt'), '--operator-token-file', join(tmp.dir, 'agent.token'), '--host-id', 'dev-console']);
  await waitUntil(() => /device agent: polling/.test(device.out) || device.child.exitCode !== null, () => `serve https starts: ${device.out}`);
  const u = JSON.parse(manifest.stdout).uid as string;
  const enrol = await run(['operator', 'enrol', '--dir', D, u, '--wait']);
  assert.equal(enrol.code, 0, enrol.stderr);
  assert.equal((await curl()).code, 0, 'the enrolled card serves');
  // More cards in the registry (rows only: they have no device) so that filters and pages mean something.
  const store = await openSqliteStore(join(D, 'operator.db'));
  try {
    for (let i = 0; i < 24; i++) {
      const hex = `${i < 12 ? 'c0' : 'd0'}${i.toString(16).padStart(2, '0')}${'00'.repeat(14)}`;
      await store.insertCard({
        id: randomUUID(),
        uid: fromHex(hex),
        batchId: null,
        attestCertDer: Uint8Array.of(i),
        attestSpkiSha256: new Uint8Array(32),
        lifecycle: i % 3 === 0 ? 'locked' : 'manifest',
        kvn: 0x30,
        transportKeyId: null,
        labels: { site: i < 12 ? 'lyon' : 'paris', ...(i === 1 ? { note: '<img src=x onerror="document.title=\'owned\'">' } : {}) },
        profile: {},
        createdAt: Date.now(),
      });
    }
  } finally {
    await store.close();
  }
  uid = u;
});

test('in Chromium: sign in, filter and page the fleet, open the card, lock it through the confirmation → the next TLS handshake is refused; screenshots of every page', async (t) => {
  if (!uid) return t.skip('no enrolled card (setup skipped or failed)');
  browser = await launch();
  const page: Page = await openConsole(browser, opUrl);
  const admin = readFileSync(join(D, 'admin.token'), 'utf8').trim();

  // Sign-in: a wrong token is refused on the page; the right one opens the fleet.
  await onPage(page, 'sign-in');
  await shot(page, 'sign-in', ['Sign in', 'API token']);
  await page.fill('#token', `sop_0000000000000000_${'A'.repeat(43)}`);
  await page.click('#signin');
  await page.waitForFunction(() => /Sign-in refused/.test(document.getElementById('signin-error')?.textContent ?? ''));
  await shot(page, 'sign-in-refused', ['Sign-in refused', 'valid bearer token']);
  await signIn(page, admin);
  assert.equal(await page.evaluate(() => document.cookie), '', 'the session cookie is HttpOnly: the page cannot read it');

  // The fleet: 25 cards, counts by state, the real card active.
  await page.waitForSelector(`tr[data-uid="${uid}"]`);
  const fleet = await shot(page, 'fleet', ['Fleet', uid, 'UID prefix', 'active', 'locked', 'manifest']);
  assert.match(fleet.text, /all\s*25/);
  assert.match(fleet.text, /active\s*1/);
  assert.match(fleet.text, /locked\s*8/);
  // Registry data is text, never markup: a label holding an <img onerror> shows as text.
  assert.ok(fleet.text.includes('note=<img src=x onerror='), 'the label is shown as text');
  assert.equal(await page.$$eval('main img', (xs) => xs.length), 0);
  assert.notEqual(await page.title(), 'owned');

  // Filters: state, then UID prefix + label — the table shows what the filters select.
  await page.selectOption('#f-state', 'active');
  await page.click('#f-apply');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-uid]').length === 1);
  assert.deepEqual(await page.$$eval('tbody tr[data-uid]', (rs) => rs.map((r) => (r as HTMLElement).dataset['uid'])), [uid]);
  await page.selectOption('#f-state', '');
  await page.fill('#f-uid', 'c00');
  await page.fill('#f-label', 'site=lyon');
  await page.click('#f-apply');
  await page.waitForFunction(() => [...document.querySelectorAll('tbody tr[data-uid]')].every((r) => (r as HTMLElement).dataset['uid']!.startsWith('c00')) && document.querySelectorAll('tbody tr[data-uid]').length === 12);
  await shot(page, 'fleet-filtered', ['c00000', 'c00b00', 'lyon', '12 card(s) on this page']);
  // Keyset pages of 10 over the 25 cards.
  await page.goto(`${opUrl}/console/#/fleet?limit=10`);
  await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-uid]').length === 10);
  const first = await page.$$eval('tbody tr[data-uid]', (rs) => rs.map((r) => (r as HTMLElement).dataset['uid']!));
  await page.click('#page-next');
  await page.waitForFunction((f) => document.querySelector('tbody tr[data-uid]')?.getAttribute('data-uid') !== f, first[0]);
  const second = await page.$$eval('tbody tr[data-uid]', (rs) => rs.map((r) => (r as HTMLElement).dataset['uid']!));
  assert.equal(second.length, 10);
  assert.ok(second[0]! > first[9]!, 'the next page continues after the last UID');
  await page.click('#page-next');
  await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-uid]').length === 5);
  assert.equal(await page.isDisabled('#page-next'), true, 'no page after the last');

  // The card page: identities, certificate history, jobs (the enrolment), audit log, findings.
  await page.goto(`${opUrl}/console/#/fleet?uid=${uid.slice(0, 6)}`);
  await page.click(`tr[data-uid="${uid}"] a`);
  await onPage(page, 'card');
  await shot(page, 'card', [uid, 'Identities', 'Certificate history', 'Jobs', 'enrol', 'succeeded', 'Audit log', 'Findings', 'dev-console', 'active', 'good']);

  // Lock from the UI: the dialog wants the UID typed before it confirms.
  await page.click('#action-lock');
  await page.waitForSelector('#confirm-dialog[open]');
  assert.equal(await page.isDisabled('#confirm-ok'), true, 'nothing typed: cannot confirm');
  await page.fill('#confirm-typed', uid.slice(0, -1));
  assert.equal(await page.isDisabled('#confirm-ok'), true, 'a wrong UID: cannot confirm');
  await shot(page, 'confirm-lock', ['Lock card', 'This sends a lock job', new RegExp(`Type\\s+${uid}\\s+to confirm`)]);
  await page.fill('#confirm-typed', uid);
  assert.equal(await page.isDisabled('#confirm-ok'), false);
  await page.click('#confirm-ok');
  await page.waitForFunction(() => /job lock [0-9a-f-]{36}/.test(document.getElementById('flash')?.textContent ?? ''));
  // The page follows the job (real path: runner → relay → agent → SCP03 script → card) to its end.
  await page.waitForFunction(() => document.getElementById('card-state')?.textContent === 'locked', undefined, { timeout: 120_000 });
  await shot(page, 'card-locked', [uid, 'locked', 'lock', 'succeeded']);
  const refused = await curl();
  assert.equal(refused.code, 35, `the next TLS handshake is refused while locked (curl: SSL connect error): ${refused.stderr}`);

  // From the page itself: a call with the cookie but without (or with a wrong) CSRF token is refused.
  const statuses = await page.evaluate(async () => {
    const a = await fetch('/v1/cards', { credentials: 'same-origin' });
    const b = await fetch('/v1/cards', { credentials: 'same-origin', headers: { 'x-csrf-token': 'wrong' } });
    return [a.status, b.status];
  });
  assert.deepEqual(statuses, [403, 403]);

  // Campaigns and findings pages (their endpoints come with other parts of issue #16).
  await page.click('a[data-nav="campaigns"]');
  await onPage(page, 'campaigns');
  await shot(page, 'campaigns', ['Campaigns']);
  await page.click('a[data-nav="findings"]');
  await onPage(page, 'findings');
  await shot(page, 'findings', ['Findings']);

  // Sign out: back to the sign-in page, and the old session is gone.
  await page.click('#signout');
  await onPage(page, 'sign-in');
  const after = await page.evaluate(async () => (await fetch('/console/session', { headers: { 'x-requested-with': 'setls-console' } })).status);
  assert.equal(after, 401);
  assert.deepEqual(pageErrors(page), [], 'no script error and no CSP violation on any page');
});
