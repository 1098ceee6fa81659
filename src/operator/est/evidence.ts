/**
 * operator/est/evidence: what a zero-touch (Mode B) PKCS#10 request carries besides its key — the
 * challengePassword text (the operator's /csrattrs challenge) and the card's attestation evidence
 * in the id-aa-evidence attribute of draft-ietf-lamps-csr-attestation — read out of the request
 * without trusting any of it (the enrolment checks verify). imports bytes/, gp/admin, pki/der,
 * pki/x509, errors.
 *
 *   attribute id-aa-evidence (1.2.840.113549.1.9.16.2.59), exactly one value:
 *   EvidenceBundles ::= SEQUENCE SIZE (1) OF EvidenceBundle ::= SEQUENCE {
 *     evidence SEQUENCE OF EvidenceStatement ::= SEQUENCE { type OID, stmt, hint UTF8String OPTIONAL },
 *     certs SEQUENCE OF Certificate }
 *   setls's statement: type OID_SETLS_EVIDENCE_STATEMENT, stmt OCTET STRING { E0 statement ‖ 8F
 *   signature } (AttestKey's answer); certs = the attestation chain, leaf first.
 */
import { parseAttestKeyResponse } from '../../gp/admin/requests.js';
import { encodeBerTlv } from '../../bytes/index.js';
import { Fn, OID_AA_EVIDENCE, OID_SETLS_EVIDENCE_STATEMENT } from '../../gp/admin/constants.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { AttestationEvidence } from '../pki/attestation.js';
import { derChildren } from '../pki/der.js';
import { x509 } from '../pki/x509.js';

export const OID_CHALLENGE_PASSWORD = '1.2.840.113549.1.9.7';

export interface CsrExtras {
  /** The challengePassword text, when present (exactly one value, UTF8String or PrintableString). */
  readonly challenge: string | undefined;
  /** The card's evidence, when the request carries an id-aa-evidence attribute. */
  readonly evidence: AttestationEvidence | undefined;
}

/** The dotted form of a DER OBJECT IDENTIFIER element (06 L …). */
function oidText(el: Uint8Array): string {
  if (el[0] !== 0x06 || el.length < 3 || el[1]! >= 0x80 || el[1] !== el.length - 2) throw new RangeError('not an OID');
  const arcs: bigint[] = [];
  let v = 0n;
  for (const b of el.subarray(2)) {
    v = (v << 7n) | BigInt(b & 0x7f);
    if ((b & 0x80) === 0) {
      arcs.push(v);
      v = 0n;
    }
  }
  const first = arcs.shift()!;
  const a = first < 40n ? 0n : first < 80n ? 1n : 2n;
  return [a, first - 40n * a, ...arcs].join('.');
}

/** The content of a primitive DER element with tag `tag` (short or long length). */
function content(el: Uint8Array, tag: number): Uint8Array {
  if (el[0] !== tag) throw new RangeError(`tag ${tag.toString(16)} expected`);
  const n = el[1]!;
  return el.subarray(n & 0x80 ? 2 + (n & 0x7f) : 2);
}

function decodeEvidence(value: Uint8Array): AttestationEvidence {
  const bundles = derChildren(value);
  if (bundles.length !== 1) throw new RangeError('exactly one EvidenceBundle expected');
  const [statements, certs, ...rest] = derChildren(bundles[0]!);
  if (!statements || !certs || rest.length > 0 || certs[0] !== 0x30) throw new RangeError('EvidenceBundle { evidence, certs } expected');
  const ours = derChildren(statements).filter((s) => oidText(derChildren(s)[0]!) === OID_SETLS_EVIDENCE_STATEMENT);
  if (ours.length !== 1) throw new RangeError('exactly one setls evidence statement expected');
  const stmt = content(derChildren(ours[0]!)[1]!, 0x04);
  const { statement, signature } = parseAttestKeyResponse(encodeBerTlv(Fn.attestKey, stmt));
  return { statement, signature, chain: derChildren(certs).map((c) => c.slice()) };
}

/** Reads the challenge and the evidence of `csrDer` (ERR_OP_CSR_INVALID, ERR_OP_ATTESTATION_FORMAT). */
export function readCsrExtras(csrDer: Uint8Array): CsrExtras {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(new Uint8Array(csrDer));
  } catch (e) {
    throw new OpError(OpErrorCode.csrInvalid, `the CSR does not parse: ${(e as Error).message}`);
  }
  let challenge: string | undefined;
  let evidence: AttestationEvidence | undefined;
  for (const a of csr.attributes) {
    if (a.type === OID_CHALLENGE_PASSWORD) {
      if (challenge !== undefined || a.values.length !== 1) throw new OpError(OpErrorCode.csrInvalid, 'challengePassword must appear once with one value');
      const v = new Uint8Array(a.values[0]!);
      if (v[0] !== 0x0c && v[0] !== 0x13) throw new OpError(OpErrorCode.csrInvalid, 'challengePassword must be a UTF8String or PrintableString');
      try {
        challenge = new TextDecoder('utf-8', { fatal: true }).decode(content(v, v[0]!));
      } catch {
        throw new OpError(OpErrorCode.csrInvalid, 'challengePassword is not valid UTF-8');
      }
    } else if (a.type === OID_AA_EVIDENCE) {
      if (evidence !== undefined || a.values.length !== 1) throw new OpError(OpErrorCode.attestationFormat, 'id-aa-evidence must appear once with one value');
      try {
        evidence = decodeEvidence(new Uint8Array(a.values[0]!));
      } catch (e) {
        throw new OpError(OpErrorCode.attestationFormat, `the evidence attribute does not decode: ${(e as Error).message}`);
      }
    }
  }
  return { challenge, evidence };
}
