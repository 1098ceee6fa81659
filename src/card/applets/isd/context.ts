/**
 * card/applets/isd/context: what a command handler of the security domain sees — the platform,
 * the channel, whether the command came under secure messaging and at which level, the KVN of the
 * session's key set — plus the answer type and the access checks shared by the handlers.
 * imports gp/admin, isd siblings.
 */
import { ADMIN_LEVEL, CardLifecycle, IsdSw } from '../../../gp/admin/constants.js';
import { refuse } from './errors.js';
import type { IsdPlatform } from './platform.js';

export interface IsdResponse {
  readonly data: Uint8Array;
  readonly sw: number;
}

export const EMPTY = new Uint8Array(0);
export const ok = (data: Uint8Array = EMPTY): IsdResponse => ({ data, sw: IsdSw.ok });

export interface CommandContext {
  readonly platform: IsdPlatform;
  readonly channel: number;
  /** The command arrived protected by an open SCP03 session (and was unwrapped). */
  readonly secured: boolean;
  /** The session's security level (0 without a session). */
  readonly level: number;
  /** KVN of the key set the session was opened with. */
  readonly kvn: number | undefined;
  /** K-DEK of that key set as it was when the session opened (PUT KEY). */
  readonly dek: Uint8Array | undefined;
  /**
   * The command came without secure messaging on a SECURED card without an operator root anchor
   * (zero-touch enrolment): only PLAIN_ENROLMENT_FUNCTIONS run, audited as such.
   */
  readonly plain: boolean;
  /** Failed authentications in this power cycle (GetCardInfo). */
  readonly failedAuths: number;
  /** Ends the sessions of other channels opened with `kvn` (after PUT KEY removed it). */
  readonly endSessionsOfKvn: (kvn: number) => void;
}

/** Operator functions: an open session at level 33 (else 6982). */
export function requireAdmin(ctx: CommandContext): void {
  if (!ctx.secured || ctx.level !== ADMIN_LEVEL) refuse(IsdSw.securityStatusNotSatisfied, 'needs an SCP03 session at security level 33');
}

/** State-changing operator functions: not on a TERMINATED card (6985). */
export function requireNotTerminated(ctx: CommandContext): void {
  if (ctx.platform.record().lifecycle === CardLifecycle.terminated) refuse(IsdSw.conditionsNotSatisfied, 'the card is terminated');
}
