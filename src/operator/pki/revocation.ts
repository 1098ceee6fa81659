/**
 * operator/pki/revocation: revoking a card certificate (or an EST client's, est_certificate) and
 * (re)building the issuing CA's CRL, which lists both.
 * imports pki/issuing-ca, store/types, errors, bytes/.
 *
 * cRLNumber is allocated in the same transaction that revokes (and reads the revoked list), so a
 * CRL numbered n lists every revocation committed before n was allocated; the CRL is then signed
 * and stored only if no higher-numbered CRL is stored already — numbers only go up, and
 * `revoke` returns after the new CRL is served (well within 1 s here; see docs/operator.md).
 */
import { toHex } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { CertificateRow, EstCertificateRow, OperatorStore } from '../store/types.js';
import { isCrlReason, type CrlReasonName, type OperatorCa } from './issuing-ca.js';

export interface CrlInfo {
  readonly number: number;
  readonly der: Uint8Array;
  readonly thisUpdate: number;
  readonly nextUpdate: number;
}

export interface RevocationOptions {
  readonly store: OperatorStore;
  readonly ca: OperatorCa;
  readonly caId: string;
  /** nextUpdate − thisUpdate, ms (≤ 24 h). */
  readonly crlValidityMs: number;
  readonly now?: () => number;
  readonly onCrl?: (info: CrlInfo) => void;
}

export class RevocationService {
  private readonly now: () => number;
  constructor(private readonly o: RevocationOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Revokes a good certificate and publishes a new CRL before returning. */
  async revoke(serial: Uint8Array, reason: string = 'unspecified', actor = 'operator'): Promise<{ certificate: CertificateRow; crl: CrlInfo }> {
    if (!isCrlReason(reason)) throw new OpError(OpErrorCode.badRequest, `unknown revocation reason '${reason}'`);
    const now = this.now();
    const { number, entries } = await this.o.store.tx(async (t) => {
      const cert = await t.certificateBySerial(serial);
      if (!cert || cert.caId !== this.o.caId) throw new OpError(OpErrorCode.unknownCertificate, `no certificate with serial ${toHex(serial)}`);
      if (!(await t.revokeCertificate(serial, reason as CrlReasonName, now))) {
        throw new OpError(OpErrorCode.alreadyRevoked, `certificate ${toHex(serial)} is already ${cert.status}`);
      }
      await t.addEvent({ at: now, actor, kind: 'certificate.revoked', cardId: cert.cardId, subject: toHex(serial), details: { reason } });
      const n = await t.nextCrlNumber(this.o.caId);
      return { number: n, entries: await revokedEntries(t, this.o.caId, now) };
    });
    const crl = await this.publish(number, entries, now);
    return { certificate: (await this.o.store.certificateBySerial(serial))!, crl };
  }

  /**
   * Revokes a good certificate of an EST client that is not a card (est_certificate) and publishes
   * a new CRL before returning, the same way as `revoke`.
   */
  async revokeEst(serial: Uint8Array, reason: string = 'unspecified', actor = 'operator'): Promise<{ certificate: EstCertificateRow; crl: CrlInfo }> {
    if (!isCrlReason(reason)) throw new OpError(OpErrorCode.badRequest, `unknown revocation reason '${reason}'`);
    const now = this.now();
    const { number, entries } = await this.o.store.tx(async (t) => {
      const cert = await t.estCertificateBySerial(serial);
      if (!cert || cert.caId !== this.o.caId) throw new OpError(OpErrorCode.unknownCertificate, `no EST certificate with serial ${toHex(serial)}`);
      if (!(await t.setEstCertificateStatus(serial, 'revoked', reason, now))) {
        throw new OpError(OpErrorCode.alreadyRevoked, `certificate ${toHex(serial)} is already ${cert.status}`);
      }
      await t.addEvent({ at: now, actor, kind: 'est.certificate.revoked', cardId: null, subject: toHex(serial), details: { reason } });
      const n = await t.nextCrlNumber(this.o.caId);
      return { number: n, entries: await revokedEntries(t, this.o.caId, now) };
    });
    const crl = await this.publish(number, entries, now);
    return { certificate: (await this.o.store.estCertificateBySerial(serial))!, crl };
  }

  /** A new CRL with the next number (start-up, periodic refresh before nextUpdate). */
  async regenerate(): Promise<CrlInfo> {
    const now = this.now();
    const { number, entries } = await this.o.store.tx(async (t) => {
      const n = await t.nextCrlNumber(this.o.caId);
      return { number: n, entries: await revokedEntries(t, this.o.caId, now) };
    });
    return this.publish(number, entries, now);
  }

  /** The CRL currently served (null before the first). */
  async current(): Promise<CrlInfo | null> {
    const ca = await this.o.store.getCa(this.o.caId);
    if (!ca?.crlDer || ca.crlThisUpdate === null || ca.crlNextUpdate === null) return null;
    return { number: ca.crlBuiltNumber, der: ca.crlDer, thisUpdate: ca.crlThisUpdate, nextUpdate: ca.crlNextUpdate };
  }

  /** Encodes the current revoked entries once (the CA caches them), so the next revocation is fast. */
  async warm(): Promise<void> {
    const now = this.now();
    const entries = await revokedEntries(this.o.store, this.o.caId, now);
    if (entries.length === 0) return;
    await this.o.ca.buildCrl(0, entries.map((e) => ({ serial: e.serial, revokedAt: e.revokedAt ?? now, reason: e.reason })), new Date(now), new Date(now + 1000));
  }

  /** Regenerates when there is no CRL or less than half its validity is left. */
  async refreshIfDue(): Promise<CrlInfo | null> {
    const cur = await this.current();
    if (cur && cur.nextUpdate - this.now() > this.o.crlValidityMs / 2) return null;
    return this.regenerate();
  }

  private async publish(number: number, entries: Awaited<ReturnType<OperatorStore['revokedCertificates']>>, now: number): Promise<CrlInfo> {
    const thisUpdate = now;
    const nextUpdate = now + this.o.crlValidityMs;
    const der = await this.o.ca.buildCrl(
      number,
      entries.map((e) => ({ serial: e.serial, revokedAt: e.revokedAt ?? now, reason: e.reason })),
      new Date(thisUpdate),
      new Date(nextUpdate),
    );
    const info = { number, der, thisUpdate, nextUpdate };
    // Stored unless a higher-numbered CRL (built by a later revocation, listing this one too) is.
    if (await this.o.store.storeCrl(this.o.caId, number, der, thisUpdate, nextUpdate)) this.o.onCrl?.(info);
    return info;
  }
}

/** The CRL's entries: revoked card certificates and revoked certificates of other EST clients. */
async function revokedEntries(s: OperatorStore, caId: string, now: number): Promise<Pick<CertificateRow, 'serial' | 'revokedAt' | 'reason'>[]> {
  return [...(await s.revokedCertificates(caId, now)), ...(await s.revokedEstCertificates(caId, now))];
}
