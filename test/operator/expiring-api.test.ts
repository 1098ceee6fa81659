/**
 * `GET /v1/cards?expiring_before=` over HTTPS (api/expiring-routes.ts): the cards whose earliest
 * good certificate ends before the time, soonest first, each with `certificateNotAfter`; pages of
 * `limit` followed by `nextCursor` give the same items (ties on not_after included); state and label
 * combine; a cursor of the UID-order listing, one made for other filters, or a forged key is
 * refused with ERR_OP_BAD_CURSOR. imports operator init/service, auth/tokens, api/pagination.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { initOperator } from '../../src/operator/init.js';
import { startOperator, type RunningOperator } from '../../src/operator/service.js';
import { DefaultAttestationVerifier, SETLS_ATTESTATION_V1 } from '../../src/operator/pki/attestation.js';
import { createApiToken } from '../../src/operator/auth/tokens.js';
import { encodeCursor } from '../../src/operator/api/pagination.js';
import { call, makeManufacturer, tempDir } from './helpers.js';
import { fill, T0, DAY, type Fleet } from './expiring-cards-fill.js';

let svc: RunningOperator;
let tmp: ReturnType<typeof tempDir>;
let ca: string;
let viewer: string;
let fleet: Fleet;

const api = (path: string) => call(svc.url, ca, 'GET', path, { token: viewer });
const BEFORE = new Date(T0 + 7 * DAY).toISOString();

before(async () => {
  const m = await makeManufacturer();
  tmp = tempDir();
  const dir = join(tmp.dir, 'op');
  await initOperator({ dir, manufacturerCaPems: [m.caPem] });
  svc = await startOperator({ dir, port: 0, quiet: true, runJobs: false, writeServeInfo: false, verifier: new DefaultAttestationVerifier(SETLS_ATTESTATION_V1) });
  ca = svc.operator.paths.tlsCaCert;
  viewer = (await createApiToken(svc.operator.store, 'viewer', 'dashboard')).token;
  fleet = await fill(svc.operator.store, {
    a: { certs: [[6, 'good']], labels: { site: 'x' } },
    b: { certs: [[2, 'good'], [4, 'good']], labels: { site: 'x' } },
    c: { certs: [[1, 'revoked'], [3, 'good']], lifecycle: 'locked', labels: { site: 'x' } },
    d: { certs: [[3, 'good']] },
    e: { certs: [[3, 'good']], labels: { site: 'y' } },
    f: { certs: [[9, 'good']] },
  }, svc.operator.caId);
});
after(async () => {
  await svc.stop();
  tmp.cleanup();
});

type Item = { id: string; uid: string; certificateNotAfter: string };
const names = (xs: Item[]): string[] => xs.map((x) => `${fleet.name.get(x.id)}@${(Date.parse(x.certificateNotAfter) - T0) / DAY}`);

async function pages(query: string, limit: number): Promise<Item[]> {
  const out: Item[] = [];
  let cursor: string | null = null;
  for (let n = 0; n < 50; n++) {
    const r = await api(`/v1/cards?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.body.toString());
    const page = r.json() as { items: Item[]; nextCursor: string | null };
    assert.ok(page.items.length <= limit);
    out.push(...page.items);
    if (!page.nextCursor) return out;
    cursor = page.nextCursor;
  }
  throw new Error('the pages do not end');
}

test('GET /v1/cards?expiring_before=: soonest first, each card once, certificateNotAfter, pages across ties', async () => {
  const q = `expiring_before=${encodeURIComponent(BEFORE)}`;
  const one = (await api(`/v1/cards?${q}`)).json() as { items: Item[]; nextCursor: string | null };
  assert.equal(one.nextCursor, null);
  const got = names(one.items);
  assert.deepEqual(got.slice(0, 1), ['b@2']);
  assert.deepEqual(got.slice(1, 4).sort(), ['c@3', 'd@3', 'e@3'], 'the tie on day 3');
  assert.deepEqual(got.slice(4), ['a@6']);
  assert.match(one.items[0]!.uid, /^[0-9a-f]{32}$/);
  for (const limit of [1, 2, 3]) assert.deepEqual(names(await pages(q, limit)), got, `pages of ${limit}`);
});

test('GET /v1/cards?expiring_before=&state=&label=: filters combine, pages follow them', async () => {
  const q = `expiring_before=${encodeURIComponent(BEFORE)}`;
  assert.deepEqual(names(await pages(`${q}&label=site%3Dx`, 1)), ['b@2', 'c@3', 'a@6']);
  assert.deepEqual(names(await pages(`${q}&label=site%3Dx&state=active`, 1)), ['b@2', 'a@6']);
  assert.deepEqual(names(await pages(`${q}&state=locked`, 1)), ['c@3']);
});

test('GET /v1/cards?expiring_before=: foreign, stale or forged cursors are refused', async () => {
  const before = Date.parse(BEFORE);
  const q = `expiring_before=${encodeURIComponent(BEFORE)}`;
  const bad = async (cursor: string): Promise<void> => {
    const r = await api(`/v1/cards?${q}&cursor=${cursor}`);
    assert.equal(r.status, 400, r.body.toString());
    assert.equal(r.json().error.code, 'ERR_OP_BAD_CURSOR');
  };
  // a cursor of the UID-order listing (no expiring_before) was made for other filters
  const uidPage = (await api('/v1/cards?limit=1')).json() as { nextCursor: string };
  await bad(uidPage.nextCursor);
  // one of this listing but for another time bound
  const other = (await api(`/v1/cards?expiring_before=${encodeURIComponent(new Date(T0 + 5 * DAY).toISOString())}&limit=1`)).json() as { nextCursor: string };
  await bad(other.nextCursor);
  // the right filters, a key that is not <notAfter>.<card id>
  const filter = { state: undefined, label: undefined, expiringBefore: before };
  await bad(encodeCursor('00ff', filter));
  await bad(encodeCursor(12345, filter));
  await bad(encodeCursor(`${T0}.x'--`, filter));
  // and a well-formed one continues after that position
  const r = await api(`/v1/cards?${q}&cursor=${encodeCursor(`${T0 + 3 * DAY}.${fleet.id.get('e')}`, filter)}`);
  assert.equal(r.status, 200);
  const rest = names((r.json() as { items: Item[] }).items);
  assert.ok(rest.includes('a@6') && !rest.includes('b@2'), rest.join(','));
});
