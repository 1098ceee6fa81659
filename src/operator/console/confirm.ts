/**
 * operator/console/confirm: which API calls are destructive and what confirmation a console
 * session must send for them in the JSON body — `confirm: "<the card's UID>"` (typed by the user
 * in the dialog) for card actions that stop, replace or reset something on the card, `confirm: true`
 * for the rest (revoke a certificate, cancel a job or a campaign, start a campaign). Bearer-token
 * clients are not asked (scripts and the CLI). The `confirm` member is removed before the route
 * sees the body (routes refuse unknown parameters). imports errors, store/types.
 */
import { OpError, OpErrorCode } from '../errors.js';
import type { JsonObject } from '../store/types.js';

/** Card actions (POST /v1/cards/{uid}/{kind}) that need the UID typed. */
export const UID_CONFIRMED_KINDS: ReadonlySet<string> = new Set(['lock', 'terminate', 'rekey', 'unblock-pin', 'rotate-admin-keys', 'push-deny-list', 'push-client-cas']);

const TRUE_CONFIRMED: readonly RegExp[] = [
  /^\/v1\/certificates\/[0-9a-fA-F:]+\/revoke$/,
  /^\/v1\/jobs\/[^/]+\/cancel$/,
  /^\/v1\/campaigns$/,
  /^\/v1\/campaigns\/[^/]+\/cancel$/,
];

export type ConfirmRule = { readonly kind: 'uid'; readonly uid: string } | { readonly kind: 'true' } | null;

export function confirmRule(method: string, path: string): ConfirmRule {
  if (method !== 'POST') return null;
  const card = /^\/v1\/cards\/([0-9a-fA-F]{2,64})\/([a-z-]+)$/.exec(path);
  if (card) return UID_CONFIRMED_KINDS.has(card[2]!) ? { kind: 'uid', uid: card[1]!.toLowerCase() } : null;
  return TRUE_CONFIRMED.some((re) => re.test(path)) ? { kind: 'true' } : null;
}

/** Checks the confirmation a console request carries; returns the body without `confirm`. */
export function checkConfirmation(method: string, path: string, body: JsonObject): JsonObject {
  const { confirm, ...rest } = body;
  const rule = confirmRule(method, path);
  if (rule?.kind === 'uid' && !(typeof confirm === 'string' && confirm.trim().toLowerCase() === rule.uid)) {
    throw new OpError(OpErrorCode.confirmationRequired, `this action needs confirmation: send "confirm": "<the card's UID>" (${rule.uid})`);
  }
  if (rule?.kind === 'true' && confirm !== true) throw new OpError(OpErrorCode.confirmationRequired, 'this action needs confirmation: send "confirm": true');
  return rest;
}
