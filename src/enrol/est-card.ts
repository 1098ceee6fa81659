/**
 * enrol/est-card: the card's side of zero-touch EST enrolment (Mode B), driven by the host over
 * plain STORE DATA on the security domain (AdminClient.callPlain) — the card accepts these only
 * while it holds no operator root anchor, and rate-limits key generations. Three steps:
 *   `cardCsr`: GenerateIdentityKey in the first free slot, then CreateCSR over the challenge's nonce
 *              with the challenge text (challengePassword) and the attestation evidence embedded;
 *   `cardInstall`: InstallCertificateChain then ActivateIdentity for that slot.
 * Plus `challengeNonce`, the 32-byte nonce inside an operator challenge text
 * ("setls-est1.<nonce b64url>.<expiry>.<mac>"; the MAC is the operator's to check).
 * imports bytes/, gp/admin.
 */
import { SetlsError } from '../bytes/index.js';
import { AdminClient, AdminRequest, AdminSwError, Field, Fn, IsdLimits, IsdSw, KeyAlg, parseFunctionResponse, req, type Transmit } from '../gp/admin/index.js';

export const EstCardErrorCode = {
  /** The card has an operator root anchor: it takes enrolment only inside an admin session (Mode A). */
  owned: 'ERR_EST_CARD_OWNED',
  /** Every identity slot holds a key. */
  full: 'ERR_EST_CARD_FULL',
  /** The card's key generations without secure messaging are used up until its next power-on. */
  rateLimited: 'ERR_EST_CARD_RATE_LIMITED',
  /** The challenge text is not an operator challenge. */
  challenge: 'ERR_EST_CHALLENGE',
} as const;

export class EstCardError extends SetlsError {}

/** The nonce of an operator challenge text, or an ERR_EST_CHALLENGE error. */
export function challengeNonce(text: string): Uint8Array {
  const parts = text.split('.');
  if (parts.length !== 4 || parts[0] !== 'setls-est1' || !/^[A-Za-z0-9_-]{43}$/.test(parts[1]!)) {
    throw new EstCardError(EstCardErrorCode.challenge, 'the challenge is not an operator challenge (setls-est1.…)');
  }
  return new Uint8Array(Buffer.from(parts[1]!, 'base64url'));
}

async function plainClient(transmit: Transmit): Promise<AdminClient> {
  const c = new AdminClient(transmit);
  await c.select();
  return c;
}

/** A fresh key in the first free slot and its CSR over `challenge`, evidence embedded. */
export async function cardCsr(transmit: Transmit, challenge: string): Promise<{ slot: number; csrDer: Uint8Array }> {
  const nonce = challengeNonce(challenge);
  const c = await plainClient(transmit);
  for (let slot = 1; slot <= IsdLimits.maxSlot; slot++) {
    try {
      await c.callPlain(AdminRequest.generateIdentityKey({ slot, algorithm: KeyAlg.p256 }));
    } catch (e) {
      if (!(e instanceof AdminSwError)) throw e;
      if (e.sw === IsdSw.dataAlreadyExists) continue;
      if (e.sw === IsdSw.securityStatusNotSatisfied) throw new EstCardError(EstCardErrorCode.owned, 'the card has an operator: zero-touch enrolment is closed (6982)');
      if (e.sw === IsdSw.plainLimitReached) throw new EstCardError(EstCardErrorCode.rateLimited, 'the card allows no more key generations until its next power-on (6983)');
      throw e;
    }
    const r = parseFunctionResponse(Fn.createCsr, await c.callPlain(AdminRequest.createCsr({ slot, nonce, challenge, evidence: true })));
    return { slot, csrDer: req(r, Field.csr, 'CreateCSR') };
  }
  throw new EstCardError(EstCardErrorCode.full, 'every identity slot of the card holds a key');
}

/** Installs the issued chain (leaf first) in `slot` and activates it. */
export async function cardInstall(transmit: Transmit, slot: number, chain: readonly Uint8Array[]): Promise<void> {
  const c = await plainClient(transmit);
  await c.callPlain(AdminRequest.installCertificateChain({ slot, certificates: chain }));
  await c.callPlain(AdminRequest.activateIdentity({ slot }));
}
