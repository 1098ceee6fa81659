/**
 * Card errors: a stable `ERR_CARD_…` code plus the status word the dispatcher answers with.
 * `EmulatedCard.process` never throws: these become status words there. imports bytes/, apdu/, protocol/.
 */
import { SetlsError } from '../bytes/index.js';
import { SW } from '../apdu/index.js';
import { SetlsSw } from '../protocol/index.js';

export class CardError extends SetlsError {
  constructor(
    code: string,
    message: string,
    readonly sw: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'CardError';
  }
}

export const cardErr = {
  length: (m: string) => new CardError('ERR_CARD_LENGTH', m, SW.wrongLength),
  p1p2: (m: string) => new CardError('ERR_CARD_P1P2', m, SW.wrongP1P2),
  data: (m: string, cause?: unknown) => new CardError('ERR_CARD_DATA', m, SW.wrongData, { cause }),
  security: (m: string) => new CardError('ERR_CARD_SECURITY', m, SW.securityNotSatisfied),
  blocked: (m: string) => new CardError('ERR_CARD_BLOCKED', m, SW.authMethodBlocked),
  conditions: (m: string) => new CardError('ERR_CARD_CONDITIONS', m, SW.conditionsNotSatisfied),
  notFound: (m: string) => new CardError('ERR_CARD_NOT_FOUND', m, SW.dataNotFound),
  full: (m: string) => new CardError('ERR_CARD_FULL', m, SW.notEnoughMemory),
  eapDiscarded: (m: string) => new CardError('ERR_CARD_EAP_DISCARDED', m, SetlsSw.eapDiscarded),
  timeRollback: (m: string) => new CardError('ERR_CARD_TIME_ROLLBACK', m, SW.wrongData),
} as const;
