/**
 * operator/services/manifests: importing a manufacturer batch manifest into the registry — all or
 * nothing: every entry must chain to a trusted manufacturer CA and must not conflict with a card
 * already known (same UID, other attestation certificate); an entry identical to a known card is
 * skipped, so importing a file twice is harmless — also at the same instant through two operator
 * nodes: the transaction that loses the race on a card's unique UID runs once more and then finds
 * those cards present. imports pki/manifest, store/types, store/driver, errors.
 */
import { randomUUID } from 'node:crypto';
import { equalBytes, fromHex, toHex } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import { parseManifest, type EntryProblem, type ManifestEntry } from '../pki/manifest.js';
import { fingerprintHex } from '../pki/x509.js';
import type { CardAttestFacts, OperatorStore } from '../store/types.js';
import { isUniqueViolation } from '../store/driver.js';

export interface ImportResult {
  readonly batchId: string | null;
  readonly imported: string[];
  readonly alreadyPresent: string[];
  /** Of alreadyPresent: cards registered before schema 11 that got the verified facts now (enrolment uses them). */
  readonly factsAdded: string[];
}

export async function importManifest(store: OperatorStore, doc: unknown, actor: string, now = Date.now()): Promise<ImportResult> {
  const trusted = await store.listManufacturerCas();
  if (trusted.length === 0) {
    throw new OpError(OpErrorCode.untrustedManufacturer, 'no manufacturer CA is trusted yet: setls operator trust-manufacturer FILE');
  }
  const parsed = parseManifest(
    doc,
    trusted.map((t) => t.certDer),
    now,
  );
  if (typeof parsed === 'string') throw new OpError(OpErrorCode.manifestInvalid, parsed);
  if (parsed.problems.length > 0) throw invalid(parsed.problems);
  const entries = parsed.entries;
  const name = parsed.name;
  try {
    return await registerEntries(store, trusted, entries, name, actor, now);
  } catch (e) {
    // Another node registered some of these cards between our reads and our inserts: once more,
    // the known cards are then read as present (or as a conflict), never a unique-key error.
    if (!isUniqueViolation(e)) throw e;
    return registerEntries(store, trusted, entries, name, actor, now);
  }
}

async function registerEntries(
  store: OperatorStore,
  trusted: readonly { id: string; certDer: Uint8Array }[],
  entries: readonly ManifestEntry[],
  name: string | null,
  actor: string,
  now: number,
): Promise<ImportResult> {
  return store.tx(async (t) => {
    const imported: string[] = [];
    const alreadyPresent: string[] = [];
    const factsAdded: string[] = [];
    const fresh: ManifestEntry[] = [];
    for (const e of entries) {
      const known = await t.cardByUid(e.uid);
      if (!known) fresh.push(e);
      else if (equalBytes(known.attestCertDer, e.attestCertDer)) {
        alreadyPresent.push(toHex(e.uid));
        // a card registered before schema 11: the path was just checked again, keep what it established
        if (!known.attestFacts && (await t.addCardAttestFacts(known.id, factsOf(e)))) factsAdded.push(toHex(e.uid));
      } else throw new OpError(OpErrorCode.manifestConflict, `card ${toHex(e.uid)} is already registered with another attestation certificate`, { details: { uid: toHex(e.uid) } });
    }
    if (fresh.length === 0) return { batchId: null, imported, alreadyPresent, factsAdded };
    const batchId = randomUUID();
    const anchor = trusted.find((m) => fingerprintHex(m.certDer) === fresh[0]!.anchorFingerprint)!;
    await t.addManifestBatch({ id: batchId, manufacturerCaId: anchor.id, name: name ?? `import ${new Date(now).toISOString()}`, count: fresh.length, importedBy: actor, importedAt: now });
    for (const e of fresh) {
      await t.insertCard({
        id: randomUUID(),
        uid: e.uid,
        batchId,
        attestCertDer: e.attestCertDer,
        attestSpkiSha256: e.attestSpkiSha256,
        lifecycle: 'manifest',
        kvn: e.kvn,
        transportKeyId: e.transportKeyId,
        seqCounter: e.sequenceCounter,
        labels: e.labels,
        profile: e.profile,
        createdAt: now,
        attestFacts: factsOf(e),
      });
      imported.push(toHex(e.uid));
    }
    await t.addEvent({ at: now, actor, kind: 'manifest.imported', cardId: null, subject: batchId, details: { count: fresh.length, skipped: alreadyPresent.length } });
    return { batchId, imported, alreadyPresent, factsAdded };
  });
}

/** What the manifest's path check established about an entry's attestation certificate (the card row keeps it). */
function factsOf(e: ManifestEntry): CardAttestFacts {
  return { keySpki: e.attestKeySpki, anchorSha256: fromHex(e.anchorFingerprint), validFrom: e.attestValidFrom, validTo: e.attestValidTo };
}

function invalid(problems: readonly EntryProblem[]): OpError {
  const first = problems[0]!;
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
  return new OpError(OpErrorCode.manifestInvalid, `entry ${first.index}${first.uid ? ` (${first.uid})` : ''}: ${first.code}: ${first.message}${more}; nothing imported`, {
    details: { problems: problems.slice(0, 100) },
  });
}
