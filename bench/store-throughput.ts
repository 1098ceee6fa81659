/**
 * bench/store-throughput: the store's share of an enrolment, on SQLite and on PostgreSQL — the
 * statements `EnrolmentService` runs per enrolment (open the enrolment; then in one transaction: the
 * SPKI binding check, single-use nonce, identity, certificate, card state, event), no X.509 and no
 * card. Serial (one at a time) and with C transactions in flight. Not part of `npm run bench`.
 * imports src/operator/store.
 *
 *   node --import tsx bench/store-throughput.ts [--n 2000] [--conc 16] [--pg postgres://…]
 * The PostgreSQL database must be empty (a throw-away one); without --pg only SQLite runs.
 */
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { openPgStore, openSqliteStore } from '../src/operator/store/index.js';
import type { OperatorStore } from '../src/operator/store/types.js';

interface Result {
  readonly store: string;
  readonly conc: number;
  readonly n: number;
  readonly perSecond: number;
}

async function seed(s: OperatorStore, n: number, tag: string): Promise<{ caId: string; cards: string[] }> {
  const caId = randomUUID();
  await s.putCa({ id: caId, role: `issuing-${tag}`, certDer: Uint8Array.of(0x30), keyRef: 'file:x', notAfter: Date.now() + 1e10, createdAt: Date.now() });
  const cards: string[] = [];
  const chunk = 500;
  for (let i = 0; i < n; i += chunk) {
    await s.tx(async (t) => {
      for (let k = i; k < Math.min(n, i + chunk); k++) {
        const id = randomUUID();
        await t.insertCard({
          id, uid: new Uint8Array(randomBytes(16)), batchId: null, attestCertDer: new Uint8Array(600), attestSpkiSha256: new Uint8Array(randomBytes(32)),
          lifecycle: 'manifest', kvn: 0x30, transportKeyId: null, labels: { site: 'bench' }, profile: {}, createdAt: Date.now(),
        });
        cards.push(id);
      }
    });
  }
  return { caId, cards };
}

/** One enrolment's store work, as pki/enrolment.ts does it. */
async function enrolOne(s: OperatorStore, caId: string, cardId: string): Promise<void> {
  const now = Date.now();
  const enrolmentId = randomUUID();
  await s.insertEnrolment({ id: enrolmentId, cardId, jobId: null, mode: 'admin', nonceHash: new Uint8Array(randomBytes(32)), status: 'open', errorCode: null, expiresAt: now + 60_000, startedAt: now, finishedAt: null });
  const spkiSha256 = new Uint8Array(randomBytes(32));
  await s.tx(async (t) => {
    if (await t.identityBySpkiHash(spkiSha256)) throw new Error('bound');
    if (!(await t.finishEnrolment(enrolmentId, 'succeeded', null, now))) throw new Error('replay');
    const identityId = randomUUID();
    await t.insertIdentity({ id: identityId, cardId, slot: 1, alg: 'p256', spkiDer: new Uint8Array(91), spkiSha256, state: 'generated', attestedAt: now, createdAt: now });
    const serial = new Uint8Array(randomBytes(16));
    serial[0]! &= 0x7f;
    await t.insertCertificate({
      serial, identityId, cardId, caId, jobId: null, enrolmentId, subject: 'CN=bench', san: { dnsNames: ['localhost'] },
      notBefore: now, notAfter: now + 30 * 86_400_000, der: new Uint8Array(520), status: 'good', revokedAt: null, reason: null, createdAt: now,
    });
    await t.updateCard(cardId, { lifecycle: 'enrolled' }, now);
    await t.addEvent({ at: now, actor: 'bench', kind: 'certificate.issued', cardId, subject: 'x', details: { enrolment: enrolmentId } });
  });
}

async function measure(name: string, s: OperatorStore, n: number, conc: number, tag: string): Promise<Result> {
  const { caId, cards } = await seed(s, n, tag);
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      for (let i = next++; i < n; i = next++) await enrolOne(s, caId, cards[i]!);
    }),
  );
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  return { store: name, conc, n, perSecond: Math.round(n / sec) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { n: { type: 'string' }, conc: { type: 'string' }, pg: { type: 'string' } } });
  const n = Number(values.n ?? 2000);
  const conc = Number(values.conc ?? 16);
  const out: Result[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'setls-store-bench-'));
  try {
    const lite = await openSqliteStore(join(dir, 'operator.db'));
    out.push(await measure('sqlite', lite, n, 1, 's1'));
    out.push(await measure('sqlite', lite, n, conc, 'sc'));
    await lite.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (values.pg) {
    const pgs = await openPgStore(values.pg, { max: Math.max(4, conc) });
    out.push(await measure('postgres', pgs, n, 1, 'p1'));
    out.push(await measure('postgres', pgs, n, conc, 'pc'));
    await pgs.close();
  }
  for (const r of out) console.log(`${r.store.padEnd(9)} ${String(r.conc).padStart(3)} in flight: ${r.perSecond} enrolment transactions/s (${r.n})`);
}

await main();
