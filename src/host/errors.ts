/**
 * Host-side errors: card status words mapped to stable ERR_CARD_… codes, and ERR_HOST_… helpers.
 * imports apdu/, bytes/, protocol/ and registry/.
 */
import { describeSw, swHex, SW } from '../apdu/index.js';
import { SETLS_SW_NAMES, SetlsSw } from '../protocol/index.js';
import { SetlsError } from '../bytes/index.js';
import { alertName } from '../registry/tls-names.js';

/** A command the card answered with a status word other than success. */
export class CardError extends SetlsError {
  constructor(
    code: string,
    message: string,
    /** The status word the card answered. */
    readonly sw: number,
    /** For PIN errors: tries left (0 when blocked). */
    readonly triesLeft?: number,
  ) {
    super(code, message);
    this.name = 'CardError';
  }
}

/** The card refused SELECT as locked by its security domain (SW 6283): a state the operator set, not a fault. */
export function isLockedRefusal(e: unknown): boolean {
  return e instanceof CardError && e.sw === SetlsSw.locked;
}

/**
 * A TLS session that ended with a fatal alert: the one we sent (reported by the card — its DECRYPT
 * answer, or the alert TLV `2C` of a failed handshake step — or produced by the host record layer of
 * an exported session, or a plaintext alert the host sent before the card spoke) or the client's.
 * `alert` is undefined when the alert is not known (a TLS-SE card that does not report it, an
 * encrypted alert record): the host never guesses it from ciphertext.
 */
export class TlsAlertError extends SetlsError {
  constructor(
    code: string,
    what: string,
    /** The alert description, when known. */
    readonly alert: number | undefined,
    /** true: we sent it; false: the client did. */
    readonly alertSent: boolean,
  ) {
    super(code, `${what}: ${alert === undefined ? 'alert (not reported by the card)' : `alert ${alertName(alert)} (${alert})`} ${alertSent ? 'sent' : 'received'}`);
    this.name = 'TlsAlertError';
  }
}

const CODES: Record<number, string> = {
  [SW.wrongLength]: 'ERR_CARD_WRONG_LENGTH',
  [SW.lastCommandOfChainExpected]: 'ERR_CARD_CHAIN_BROKEN',
  [SW.securityNotSatisfied]: 'ERR_CARD_SECURITY_NOT_SATISFIED',
  [SW.authMethodBlocked]: 'ERR_CARD_PIN_BLOCKED',
  [SW.conditionsNotSatisfied]: 'ERR_CARD_CONDITIONS_NOT_SATISFIED',
  [SW.wrongData]: 'ERR_CARD_WRONG_DATA',
  [SW.notFound]: 'ERR_CARD_APPLET_NOT_FOUND',
  [SW.notEnoughMemory]: 'ERR_CARD_NOT_ENOUGH_MEMORY',
  [SW.wrongP1P2]: 'ERR_CARD_WRONG_P1P2',
  [SW.dataNotFound]: 'ERR_CARD_DATA_NOT_FOUND',
  [SW.insNotSupported]: 'ERR_CARD_INS_NOT_SUPPORTED',
  [SW.claNotSupported]: 'ERR_CARD_CLA_NOT_SUPPORTED',
  [SW.internalError]: 'ERR_CARD_INTERNAL',
  [SetlsSw.eapDiscarded]: 'ERR_CARD_EAP_DISCARDED',
  [SetlsSw.authFailure]: 'ERR_CARD_TLS_FAILURE',
};

/** The stable error code for a card status word. */
export function cardErrorCode(sw: number): string {
  if (sw >= 0x63c0 && sw <= 0x63cf) return 'ERR_CARD_PIN_WRONG';
  return CODES[sw] ?? 'ERR_CARD_STATUS';
}

/** The CardError for a command `what` answered with `sw`. */
export function cardError(what: string, sw: number): CardError {
  const code = cardErrorCode(sw);
  const tries = sw >= 0x63c0 && sw <= 0x63cf ? sw & 0x0f : sw === SW.authMethodBlocked ? 0 : undefined;
  return new CardError(code, `${what} failed: SW ${swHex(sw)} (${describeSw(sw, SETLS_SW_NAMES)})`, sw, tries);
}

export function hostError(code: `ERR_HOST_${string}`, message: string, cause?: unknown): SetlsError {
  return new SetlsError(code, message, cause === undefined ? undefined : { cause });
}

/**
 * The client left (FIN or reset before the session ended): a normal end, not a fault. Built without a
 * stack trace — capturing one per closed connection was a measurable share of a busy server's CPU —
 * and never logged or reported as 'sessionError' by the tandem (counted as the session event
 * `peer_closed` instead).
 */
export function peerClosed(message: string): SetlsError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new SetlsError('ERR_HOST_PEER_CLOSED', message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Whether `e` is the client leaving (ERR_HOST_PEER_CLOSED). */
export function isPeerClosed(e: unknown): boolean {
  return (e as { code?: unknown } | undefined)?.code === 'ERR_HOST_PEER_CLOSED';
}

/**
 * Runs `p` with a deadline; rejects with `code` when it passes. The timer is cleared as soon as `p`
 * settles. `what` may be a function: the name is then built only when the deadline passes (per APDU,
 * building it every time was wasted work).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, code: string, what: string | (() => string)): Promise<T> {
  if (!Number.isFinite(ms) || ms <= 0) return p;
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new SetlsError(code, `${typeof what === 'function' ? what() : what}: no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}
