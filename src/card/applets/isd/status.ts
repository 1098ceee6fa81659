/**
 * card/applets/isd/status: GET STATUS (lifecycle of the ISD and of the applets it manages) and
 * SET STATUS (lock / unlock an applet or one identity of the TLS applet; lock, unlock or terminate
 * the card; the factory's OP_READY → SECURED). Byte layouts: docs/admin-protocol.md §4.
 * imports bytes/, gp/, gp/admin, isd siblings.
 */
import { concat, encodeBerTlv, encodeBerTlvs, equalBytes, parseBerTlvs } from '../../../bytes/index.js';
import {
  AppLifecycle,
  AppStatusP2,
  AuditEvent,
  CardLifecycle,
  GET_STATUS_P2_TLV,
  GetStatusP1,
  ISD_AID,
  IsdLimits,
  IsdSw,
  StatusType,
} from '../../../gp/admin/constants.js';
import { sha256 } from '../../../gp/admin/attestation.js';
import type { RawCommand } from '../../../gp/command-apdu.js';
import { appendAudit } from './audit-log.js';
import { ok, requireAdmin, type CommandContext, type IsdResponse } from './context.js';
import { refuse } from './errors.js';
import { findSlot, putSlot } from './record.js';

const ISD_PRIVILEGES = Uint8Array.of(0x9e, 0x00, 0x00); // security domain, card lock, card terminate, card reset, CVM management
const APP_PRIVILEGES = Uint8Array.of(0x00, 0x00, 0x00);

function entry(aid: Uint8Array, lifecycle: number, privileges: Uint8Array): Uint8Array {
  return encodeBerTlv(
    0xe3,
    encodeBerTlvs([
      { tag: 0x4f, value: aid },
      { tag: 0x9f70, value: Uint8Array.of(lifecycle) },
      { tag: 0xc5, value: privileges },
    ]),
  );
}

/** GET STATUS `80 F2 P1 02 Lc 4F len [AID] [5C …] 00`: E3 entries for the ISD (P1 80) or the applets (P1 40). */
export function getStatus(ctx: CommandContext, c: RawCommand): IsdResponse {
  requireAdmin(ctx);
  if (c.p2 !== GET_STATUS_P2_TLV) refuse(IsdSw.wrongP1P2, 'GET STATUS: only P2 02 (TLV) is supported');
  let filter: Uint8Array | undefined;
  try {
    const items = parseBerTlvs(c.data, 4);
    const aid = items.find((t) => t.tag === 0x4f);
    if (!aid || items.some((t) => t.tag !== 0x4f && t.tag !== 0x5c)) throw new Error('criteria');
    filter = aid.value.length ? aid.value : undefined;
  } catch {
    return refuse(IsdSw.wrongData, 'GET STATUS: search criteria must be 4F [AID] (5C tag list ignored)');
  }
  const r = ctx.platform.record();
  const match = (aid: Uint8Array): boolean => !filter || equalBytes(filter, aid);
  let out: Uint8Array[] = [];
  if (c.p1 === GetStatusP1.isd) {
    if (match(ISD_AID)) out = [entry(ISD_AID, r.lifecycle, ISD_PRIVILEGES)];
  } else if (c.p1 === GetStatusP1.applications) {
    out = ctx.platform
      .applets()
      .filter((a) => match(a.aid))
      .map((a) => {
        const locked = r.lockedApplets.some((x) => equalBytes(x, a.aid));
        return entry(a.aid, AppLifecycle.selectable | (locked ? AppLifecycle.lockedBits : 0), APP_PRIVILEGES);
      });
  } else if (c.p1 !== GetStatusP1.loadFiles && c.p1 !== GetStatusP1.loadFilesAndModules) {
    refuse(IsdSw.wrongP1P2, `GET STATUS P1 ${c.p1.toString(16)}`);
  }
  if (out.length === 0) refuse(IsdSw.referencedDataNotFound, 'GET STATUS: nothing matches');
  return ok(concat(...out));
}

function setCardStatus(ctx: CommandContext, c: RawCommand): IsdResponse {
  if (c.data.length && !equalBytes(c.data, ISD_AID)) refuse(IsdSw.wrongData, 'SET STATUS card: data must be empty or the ISD AID');
  const from = ctx.platform.record().lifecycle;
  const to = c.p2;
  const allowed =
    (to === CardLifecycle.cardLocked && from === CardLifecycle.secured) ||
    (to === CardLifecycle.secured && from === CardLifecycle.cardLocked) ||
    (to === CardLifecycle.terminated && (from === CardLifecycle.secured || from === CardLifecycle.cardLocked));
  if (to !== CardLifecycle.cardLocked && to !== CardLifecycle.secured && to !== CardLifecycle.terminated) refuse(IsdSw.wrongP1P2, `card state ${to.toString(16)}`);
  if (!allowed) refuse(IsdSw.conditionsNotSatisfied, `no transition ${from.toString(16)} → ${to.toString(16)}`);
  ctx.platform.transaction((d) => {
    if (to === CardLifecycle.terminated) {
      d.identities.deleteAll();
      d.record.slots = [];
    }
    d.record.lifecycle = to;
    appendAudit(d.record, ctx.platform.now(), AuditEvent.setStatus, Uint8Array.of(c.p1, c.p2));
  });
  return ok();
}

function setAppStatus(ctx: CommandContext, c: RawCommand): IsdResponse {
  const lock = c.p2 === AppStatusP2.lock;
  if (!lock && c.p2 !== AppStatusP2.unlock) refuse(IsdSw.wrongP1P2, 'SET STATUS application: P2 80 (lock) or 00 (unlock)');
  const applets = ctx.platform.applets();
  const app = applets.find((a) => equalBytes(a.aid, c.data));
  const withSlot = applets.find((a) => a.hasIdentities && c.data.length === a.aid.length + 1 && equalBytes(a.aid, c.data.subarray(0, a.aid.length)));
  if (!app && !withSlot) refuse(IsdSw.referencedDataNotFound, 'SET STATUS: no such applet (or applet ‖ slot)');
  ctx.platform.transaction((d) => {
    const r = d.record;
    if (app) {
      const others = r.lockedApplets.filter((x) => !equalBytes(x, app.aid));
      if (others.length >= 16 && lock) refuse(IsdSw.notEnoughMemory, 'too many locked applets');
      r.lockedApplets = lock ? [...others, app.aid.slice()] : others;
    } else {
      const slot = c.data[c.data.length - 1]!;
      const s = slot >= 1 && slot <= IsdLimits.maxSlot ? findSlot(r, slot) : undefined;
      if (!s) refuse(IsdSw.referencedDataNotFound, `no identity in slot ${slot}`);
      putSlot(r, { ...s, locked: lock });
    }
    appendAudit(r, ctx.platform.now(), AuditEvent.setStatus, concat(Uint8Array.of(c.p1, c.p2), c.data));
  });
  return ok();
}

/** SET STATUS `80 F0 P1 P2 [Lc data]`. */
export function setStatus(ctx: CommandContext, c: RawCommand): IsdResponse {
  const r = ctx.platform.record();
  if (r.lifecycle === CardLifecycle.opReady && !ctx.secured) return factorySeal(ctx, c);
  requireAdmin(ctx);
  if (r.lifecycle === CardLifecycle.terminated) refuse(IsdSw.conditionsNotSatisfied, 'the card is terminated');
  if (c.p1 === StatusType.isd) return setCardStatus(ctx, c);
  if (c.p1 === StatusType.application) return setAppStatus(ctx, c);
  return refuse(IsdSw.wrongP1P2, `SET STATUS P1 ${c.p1.toString(16)}`);
}

/**
 * The end of factory personalisation: `80 F0 80 0F` without secure messaging, in OP_READY only,
 * once the UID, the attestation key with its certificate and a key set are in place. From then on
 * the factory functions are refused for ever (no transition leads back to OP_READY).
 */
function factorySeal(ctx: CommandContext, c: RawCommand): IsdResponse {
  if (c.p1 !== StatusType.isd || c.p2 !== CardLifecycle.secured || (c.data.length && !equalBytes(c.data, ISD_AID))) {
    refuse(IsdSw.conditionsNotSatisfied, 'OP_READY: only SET STATUS 80 0F (seal) is accepted');
  }
  ctx.platform.transaction((d) => {
    const r = d.record;
    if (!r.uid || !r.attestation || r.attestation.chain.length === 0 || r.keySets.length === 0) {
      refuse(IsdSw.conditionsNotSatisfied, 'factory data incomplete: UID, attestation certificate and a key set are needed');
    }
    r.lifecycle = CardLifecycle.secured;
    appendAudit(r, ctx.platform.now(), AuditEvent.factorySealed, sha256(r.attestation.chain[0]!));
  });
  return ok();
}
