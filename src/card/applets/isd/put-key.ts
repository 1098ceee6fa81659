/**
 * card/applets/isd/put-key: PUT KEY `84 D8 P1 81 Lc <KVN> <3 key blocks>` at level 33 — add a key
 * set (P1 00) or replace the set P1 — decoded with the K-DEK of the session's key set and checked
 * by key check values (gp/put-key.ts; the K-DEK is the one of the key set the session was opened
 * with, as it was then), then committed in one transaction with its audit entry:
 * after a power cut the card has the old key sets or the new ones. A replaced KVN is gone at once
 * (INITIALIZE UPDATE with it answers 6A88) and sessions of other channels opened with it end
 * (a KVN replaced by new values of the same KVN too).
 * Answer: new KVN ‖ its three KCVs. imports gp/, gp/admin, isd siblings.
 */
import { AuditEvent, CardLifecycle, IsdLimits, IsdSw } from '../../../gp/admin/constants.js';
import type { RawCommand } from '../../../gp/command-apdu.js';
import { parsePutKey, putKeyResponseData } from '../../../gp/put-key.js';
import { appendAudit } from './audit-log.js';
import { ok, requireAdmin, type CommandContext, type IsdResponse } from './context.js';
import { refuse } from './errors.js';

export function putKey(ctx: CommandContext, c: RawCommand): IsdResponse {
  requireAdmin(ctx);
  const r = ctx.platform.record();
  if (r.lifecycle === CardLifecycle.terminated) refuse(IsdSw.conditionsNotSatisfied, 'the card is terminated');
  if (!ctx.dek) refuse(IsdSw.conditionsNotSatisfied, 'no session key set');
  const p = parsePutKey(ctx.dek, c.p1, c.p2, c.data);
  if (!p.ok) refuse(p.sw, `PUT KEY: ${p.why}`);
  const keys = p.keys;
  const replaced = p.replaceKvn;
  ctx.platform.transaction((d) => {
    const sets = d.record.keySets;
    if (replaced !== 0 && !sets.some((k) => k.kvn === replaced)) refuse(IsdSw.referencedDataNotFound, `no key set ${replaced.toString(16)} to replace`);
    const rest = sets.filter((k) => k.kvn !== replaced);
    if (rest.some((k) => k.kvn === keys.kvn)) refuse(IsdSw.wrongData, `key set ${keys.kvn.toString(16)} exists already`);
    if (rest.length >= IsdLimits.maxKeySets) refuse(IsdSw.notEnoughMemory, `at most ${IsdLimits.maxKeySets} key sets`);
    d.record.keySets = [...rest, keys].sort((a, b) => a.kvn - b.kvn);
    appendAudit(d.record, ctx.platform.now(), AuditEvent.putKey, Uint8Array.of(replaced, keys.kvn));
  });
  if (replaced !== 0) ctx.endSessionsOfKvn(replaced);
  return ok(putKeyResponseData(keys));
}
