/**
 * card/applets/isd/errors: the security domain's two kinds of failure — `IsdRefusal`, a command
 * refused with a status word (thrown inside a handler or a transaction, caught by the applet and
 * answered; a transaction that throws commits nothing), and ERR_ISD_STATE for a persistent record
 * that does not decode. imports bytes/.
 */
import { SetlsError } from '../../../bytes/index.js';

export class IsdRefusal extends Error {
  constructor(
    readonly sw: number,
    readonly why: string,
  ) {
    super(`${sw.toString(16).padStart(4, '0')}: ${why}`);
    this.name = 'IsdRefusal';
  }
}

/** Throws a refusal with `sw`. */
export function refuse(sw: number, why: string): never {
  throw new IsdRefusal(sw, why);
}

export function isdStateError(why: string): SetlsError {
  return new SetlsError('ERR_ISD_STATE', `security domain record is invalid: ${why}`);
}
