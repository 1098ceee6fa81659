/**
 * A small fleet for the expiring-cards tests: cards named a, b, …, each with an identity and
 * certificates given as [days after T0, status]; under a new issuing CA, or the given one. imports src/operator/store (types).
 */
import { randomUUID } from 'node:crypto';
import type { CardLifecycle, CertificateStatus, OperatorStore } from '../../src/operator/store/index.js';

export const T0 = 1_800_000_000_000;
export const DAY = 86_400_000;

export interface Fleet {
  /** card name → card id */
  readonly id: Map<string, string>;
  /** card id → card name */
  readonly name: Map<string, string>;
  /** card name → its certificates' serials, in the order given */
  readonly serials: Map<string, Uint8Array[]>;
}

/** Cards named a, b, …, each with certificates [days after T0, status]. */
export async function fill(s: OperatorStore, spec: Record<string, { certs: [number, CertificateStatus][]; lifecycle?: CardLifecycle; labels?: Record<string, string> }>, existingCaId?: string): Promise<Fleet> {
  const caId = existingCaId ?? randomUUID();
  if (!existingCaId) await s.putCa({ id: caId, role: 'issuing', certDer: Uint8Array.of(0x30, 1), keyRef: 'file:ca.key', notAfter: T0 + 1e11, createdAt: T0 });
  const id = new Map<string, string>();
  const name = new Map<string, string>();
  const serials = new Map<string, Uint8Array[]>();
  let n = 0;
  let k = 0;
  for (const [nm, c] of Object.entries(spec)) {
    n++;
    const uid = new Uint8Array(16);
    uid[15] = 200 - n; // UID order is the reverse of the names' order: not what the expiring order follows
    const card = { id: randomUUID(), uid, batchId: null, attestCertDer: Uint8Array.of(0x30), attestSpkiSha256: new Uint8Array(32).fill(n), lifecycle: c.lifecycle ?? ('active' as const), kvn: 0x30, transportKeyId: null, labels: c.labels ?? {}, profile: {}, createdAt: T0 };
    await s.insertCard(card);
    id.set(nm, card.id);
    name.set(card.id, nm);
    const idn = { id: randomUUID(), cardId: card.id, slot: 1, alg: 'p256', spkiDer: Uint8Array.of(1), spkiSha256: new Uint8Array(32).fill(n), state: 'active' as const, attestedAt: T0, createdAt: T0 };
    await s.insertIdentity(idn);
    serials.set(nm, []);
    for (const [d, status] of c.certs) {
      k++;
      const serial = Uint8Array.of(0x40, 250 - k);
      serials.get(nm)!.push(serial);
      await s.insertCertificate({
        serial, identityId: idn.id, cardId: card.id, caId, jobId: null, enrolmentId: null, subject: 'CN=x', san: {},
        notBefore: T0 - DAY, notAfter: T0 + d * DAY, der: Uint8Array.of(0x30, k), status, revokedAt: status === 'revoked' ? T0 : null, reason: null, createdAt: T0,
      });
    }
  }
  return { id, name, serials };
}

