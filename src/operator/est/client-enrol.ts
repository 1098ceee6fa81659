/**
 * operator/est/client-enrol: issuing certificates to EST clients that are not cards.
 *
 * enrolWithCredential (/simpleenroll, HTTP Basic): the credential was checked (est/credentials.ts);
 * the CSR is checked (est/client-csr.ts) and bounded by the credential's profile; the certificate
 * is signed, then ONE transaction spends a use of the credential (a guarded UPDATE: uses left, not
 * revoked, not expired) and records the certificate in `est_certificate`; if no use is left by
 * then (a concurrent request took the last one) the signed certificate is dropped unseen:
 * nothing issued (ERR_OP_EST_CREDENTIAL).
 *
 * reenroll (/simplereenroll, TLS client authentication): the client certificate the TLS handshake
 * proved possession of must be issued by the operator's issuing CA (signature checked here),
 * valid now, and a GOOD row of `est_certificate` (not revoked, not superseded); a card's
 * certificate is refused (ERR_OP_EST_CARD_CERTIFICATE: card keys live in the card, which is a TLS
 * server and never a client; its identities are renewed by the SCP03 re-key job). The new CSR's
 * subject and SAN must equal the old certificate's (RFC 7030 §4.2.2); the key may be the same
 * (renew) or new (rekey). The new certificate has the old one's validity length; the old one
 * becomes `superseded` in the same transaction that records the new one (a guarded UPDATE: two
 * concurrent renewals of one certificate cannot both succeed).
 * imports est/client-csr, pki/x509, store/types, errors, bytes/, operator (type only).
 */
import { X509Certificate } from 'node:crypto';
import { toHex } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { Operator } from '../operator.js';
import { crlUrlOf } from '../paths.js';
import { DAY_MS, randomSerial } from '../pki/x509.js';
import type { EstCertificateRow, EstCredentialRow } from '../store/types.js';
import { checkAgainstProfile, checkClientCsr, profileOf, sanOf, type ClientCsr } from './client-csr.js';

export interface ClientEnrolResult {
  readonly certificate: EstCertificateRow;
  /** The issued certificate then the issuing CA. */
  readonly chainDer: readonly Uint8Array[];
}

const BACKDATE_MS = 5 * 60 * 1000;

async function sign(op: Operator, csr: ClientCsr, subject: string, san: { dnsNames: string[]; ipAddresses: string[] }, notBefore: number, notAfter: number): Promise<{ serial: Uint8Array; der: Uint8Array }> {
  const serial = randomSerial();
  const der = await op.ca.issue({
    spkiDer: csr.spkiDer,
    serial,
    subject,
    dnsNames: san.dnsNames,
    ipAddresses: san.ipAddresses,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    crlUrl: crlUrlOf(op.config, op.listeningUrl),
  });
  return { serial, der };
}

/** /simpleenroll with an enrolment credential (see the header). */
export async function enrolWithCredential(op: Operator, credential: EstCredentialRow, csrDer: Uint8Array, actor = 'est'): Promise<ClientEnrolResult> {
  const csr = await checkClientCsr(csrDer);
  const profile = profileOf(credential.profile);
  checkAgainstProfile(csr, profile);
  const now = op.now();
  const days = Math.min(profile.days ?? op.config.certificateDays, op.config.certificateDays);
  const notBefore = now - BACKDATE_MS;
  const notAfter = now + days * DAY_MS;
  const subject = `CN=${csr.cn}`;
  const san = sanOf(csr.dnsNames, csr.ipAddresses);
  const { serial, der } = await sign(op, csr, subject, san, notBefore, notAfter);
  const row: EstCertificateRow = {
    serial,
    caId: op.caId,
    credentialId: credential.id,
    replaces: null,
    subject,
    san,
    spkiSha256: csr.spkiSha256,
    alg: csr.alg,
    notBefore,
    notAfter,
    der,
    status: 'good',
    revokedAt: null,
    reason: null,
    createdAt: now,
  };
  await op.store.tx(async (t) => {
    if (!(await t.spendEstCredential(credential.id, now))) {
      throw new OpError(OpErrorCode.estCredential, `enrolment credential ${credential.id} has no use left (or was revoked or expired meanwhile)`);
    }
    await t.insertEstCertificate(row);
    await t.addEvent({ at: now, actor, kind: 'est.certificate.issued', cardId: null, subject: toHex(serial), details: { credential: credential.id, subject, alg: csr.alg } });
  });
  return { certificate: row, chainDer: [der, op.ca.certDer] };
}

/** /simplereenroll with the TLS client certificate `peerDer` (see the header). */
export async function reenroll(op: Operator, peerDer: Uint8Array | null, csrDer: Uint8Array, actor = 'est'): Promise<ClientEnrolResult> {
  if (!peerDer) throw new OpError(OpErrorCode.estClientCertificate, '/simplereenroll needs TLS client authentication with the certificate being renewed');
  const now = op.now();
  let peer: X509Certificate;
  try {
    peer = new X509Certificate(peerDer);
  } catch {
    throw new OpError(OpErrorCode.estClientCertificate, 'the client certificate does not parse');
  }
  if (!peer.checkIssued(op.ca.nodeCert) || !peer.verify(op.ca.nodeCert.publicKey)) {
    throw new OpError(OpErrorCode.estClientCertificate, 'the client certificate was not issued by this operator');
  }
  if (now < Date.parse(peer.validFrom) || now > Date.parse(peer.validTo)) throw new OpError(OpErrorCode.estClientCertificate, 'the client certificate is expired (or not yet valid)');
  const serial = new Uint8Array(Buffer.from(peer.serialNumber, 'hex'));
  const old = await op.store.estCertificateBySerial(serial);
  if (!old) {
    if (await op.store.certificateBySerial(serial)) {
      throw new OpError(OpErrorCode.estCardCertificate, "a card's certificate is renewed by the card's re-key job (setls operator rekey), not over EST");
    }
    throw new OpError(OpErrorCode.estClientCertificate, `certificate ${toHex(serial)} is not in the registry`);
  }
  if (old.status !== 'good') throw new OpError(OpErrorCode.estClientCertificate, `certificate ${toHex(serial)} is ${old.status}`);
  const csr = await checkClientCsr(csrDer);
  const subject = `CN=${csr.cn}`;
  const san = sanOf(csr.dnsNames, csr.ipAddresses);
  if (subject !== old.subject || JSON.stringify(san) !== JSON.stringify(sanOf(strings(old.san['dnsNames']), strings(old.san['ipAddresses'])))) {
    throw new OpError(OpErrorCode.estName, `the CSR must name exactly what certificate ${toHex(serial)} names (${old.subject}; ${JSON.stringify(old.san)})`);
  }
  const notBefore = now - BACKDATE_MS;
  const notAfter = notBefore + Math.max(DAY_MS, old.notAfter - old.notBefore);
  const issued = await sign(op, csr, subject, san, notBefore, notAfter);
  const row: EstCertificateRow = {
    serial: issued.serial,
    caId: op.caId,
    credentialId: old.credentialId,
    replaces: old.serial,
    subject,
    san,
    spkiSha256: csr.spkiSha256,
    alg: csr.alg,
    notBefore,
    notAfter,
    der: issued.der,
    status: 'good',
    revokedAt: null,
    reason: null,
    createdAt: now,
  };
  await op.store.tx(async (t) => {
    if (!(await t.setEstCertificateStatus(old.serial, 'superseded', 'superseded', now))) {
      throw new OpError(OpErrorCode.estClientCertificate, `certificate ${toHex(serial)} was revoked or renewed meanwhile`);
    }
    await t.insertEstCertificate(row);
    await t.addEvent({ at: now, actor, kind: 'est.certificate.renewed', cardId: null, subject: toHex(issued.serial), details: { replaces: toHex(old.serial), rekey: toHex(csr.spkiSha256) !== toHex(old.spkiSha256) } });
  });
  return { certificate: row, chainDer: [issued.der, op.ca.certDer] };
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
