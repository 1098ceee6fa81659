/**
 * operator/pki/isd-attestation: the attestation statement format of the card's security domain
 * (AttestKey, function BF22: docs/admin-protocol.md §7.1) as an `AttestationFormat` for the
 * operator's verifier — the one `Operator.open` uses by default. imports gp/admin, pki/attestation.
 *
 *   E0 L { 5A 10 UID, 80 01 slot, 81 01 algorithm, 93 20 SHA-256(SPKI), 82 01 policy,
 *          9D 01 generated in card, 85 L nonce, 99 04 counter }
 *
 * The decoder is strict (gp/admin parseAttestationStatement: each field once, in order, canonical
 * lengths) and refuses a key the card did not generate itself (9D ≠ 01): the operator certifies
 * only keys that were born in the secure element.
 */
import { parseAttestationStatement } from '../../gp/admin/attestation.js';
import type { AttestationClaims, AttestationFormat } from './attestation.js';

export const ISD_ATTESTATION_FORMAT: AttestationFormat = {
  name: 'setls-isd-attestation (E0)',
  decode(statement: Uint8Array): AttestationClaims {
    const s = parseAttestationStatement(statement);
    if (!s.generatedInCard) throw new Error('the attested key was not generated in the card');
    return { uid: s.uid, slot: s.slot, spkiSha256: s.spkiSha256, nonce: s.nonce, counter: s.counter };
  },
};
