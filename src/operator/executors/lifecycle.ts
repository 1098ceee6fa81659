/**
 * operator/executors/lifecycle: lock, unlock and terminate — one round trip each (when the registry
 * knows the card's sequence counter), confirmed by the card's own authenticated answer.
 * imports executors/common, admin/, gp/admin, protocol/ (the TLS applet's AID).
 *
 *   lock       scope applet (default): [IU, EA, SET STATUS 40 80 <TLS AID>, GET STATUS 40 <TLS AID>]
 *              — the TLS applet locked (87): the card serves no TLS until unlocked;
 *              scope card: [IU, EA, SET STATUS 80 7F, GetCardInfo] — CARD_LOCKED, nothing but the
 *              security domain selectable; scope identities: LockIdentity on every active slot.
 *   unlock     [IU, EA, SET STATUS 40 00 <TLS AID>, GetCardInfo] (+ SET STATUS 80 0F and LockIdentity
 *              unlock when the card shows a card lock or locked identities: a second round trip).
 *   terminate  [IU, EA, SET STATUS 80 FF, GetCardInfo]: every identity key wiped, irreversible; the
 *              registry marks the card terminated and revokes its certificates
 *              (cessationOfOperation), publishing a new CRL.
 * SET STATUS is idempotent for the applet lock; a terminate whose outcome was unknown answers 6985
 * the second time (already terminated) and is confirmed by GetCardInfo.
 */
import { toHex } from '../../bytes/index.js';
import { AppLifecycle, CardLifecycle, GetStatusP1, SlotStatus, StatusType, AppStatusP2 } from '../../gp/admin/constants.js';
import { AdminRequest } from '../../gp/admin/requests.js';
import { parseBerTlvs } from '../../bytes/index.js';
import { APPLET_AID } from '../../protocol/setls.js';
import { Op, type AdminOp } from '../admin/ops.js';
import type { JobExecutor } from '../jobs/runner.js';
import { FIRST_OPERATOR_KVN } from '../keys/master-keys.js';
import { OpErrorCode } from '../errors.js';
import { CardAdmin, integrityError, lifecycleName, withCard, type ExecutorDeps } from './common.js';

/** The lifecycle byte GET STATUS shows for the TLS applet (E3 { 4F AID, 9F70 lc, C5 … }). */
function appletLifecycle(data: Uint8Array): number {
  try {
    for (const e of parseBerTlvs(data, 16)) {
      if (e.tag !== 0xe3) continue;
      const f = parseBerTlvs(e.value, 8);
      const aid = f.find((x) => x.tag === 0x4f)?.value;
      const lc = f.find((x) => x.tag === 0x9f70)?.value;
      if (aid && lc && lc.length === 1 && Buffer.from(aid).equals(Buffer.from(APPLET_AID))) return lc[0]!;
    }
  } catch (e) {
    throw integrityError(`GET STATUS answer malformed: ${(e as Error).message}`);
  }
  throw integrityError('GET STATUS does not list the TLS applet');
}

export function lockExecutor(deps: ExecutorDeps, lock: boolean): JobExecutor {
  return async (job, ctx) => {
    const admin = new CardAdmin(deps, job, ctx, [FIRST_OPERATOR_KVN]);
    const scope = (job.params['scope'] as string | undefined) ?? 'applet';
    return withCard(admin, async () => {
      const store = admin.store;
      const now = () => admin.operator.now();
      let detail: Record<string, string | number | boolean | number[]>;
      if (lock) {
        if (scope === 'card') {
          const res = await admin.run([Op.setStatus(StatusType.isd, CardLifecycle.cardLocked), Op.getCardInfo()]);
          const info = admin.parseInfo(res[1]!);
          if (info.lifecycle !== CardLifecycle.cardLocked) throw integrityError(`the card is ${lifecycleName(info.lifecycle)} after SET STATUS 7F`);
          detail = { scope, lifecycle: lifecycleName(info.lifecycle) };
        } else if (scope === 'identities') {
          const info = await admin.info({ keepOpen: true });
          const slots = info.slots.filter((s) => s.status === SlotStatus.active).map((s) => s.slot);
          const ops: AdminOp[] = slots.map((slot) => Op.call(AdminRequest.lockIdentity({ slot, lock: true }), { label: 'LockIdentity' }));
          const after = admin.parseInfo((await admin.run([...ops, Op.getCardInfo()])).at(-1)!);
          if (after.slots.some((s) => slots.includes(s.slot) && !s.locked)) throw integrityError('an identity is still unlocked after LockIdentity');
          detail = { scope, slots };
        } else {
          const res = await admin.run([Op.setStatus(StatusType.application, AppStatusP2.lock, APPLET_AID), Op.getStatus(GetStatusP1.applications, APPLET_AID)]);
          const lc = appletLifecycle(res[1]!.data);
          if ((lc & AppLifecycle.lockedBits) !== AppLifecycle.lockedBits) throw integrityError(`GET STATUS shows the TLS applet in state ${lc.toString(16)} after the lock`);
          detail = { scope, applet: toHex(APPLET_AID).toUpperCase(), state: lc };
        }
        await store.updateCard(admin.card.id, { lifecycle: 'locked' }, now());
      } else {
        const res = await admin.run([Op.setStatus(StatusType.application, AppStatusP2.unlock, APPLET_AID), Op.getCardInfo()]);
        let info = admin.parseInfo(res[1]!);
        const more: AdminOp[] = [];
        if (info.lifecycle === CardLifecycle.cardLocked) more.push(Op.setStatus(StatusType.isd, CardLifecycle.secured));
        for (const s of info.slots) if (s.locked) more.push(Op.call(AdminRequest.lockIdentity({ slot: s.slot, lock: false }), { label: 'LockIdentity' }));
        if (more.length) info = admin.parseInfo((await admin.run([...more, Op.getCardInfo()])).at(-1)!);
        if (info.lifecycle !== CardLifecycle.secured || info.slots.some((s) => s.locked)) throw integrityError('the card still shows a lock after unlocking');
        detail = { unlocked: true, lifecycle: lifecycleName(info.lifecycle) };
        const hasActive = (await store.identitiesOfCard(admin.card.id)).some((i) => i.state === 'active');
        await store.updateCard(admin.card.id, { lifecycle: hasActive ? 'active' : 'enrolled' }, now());
      }
      await store.addEvent({ at: now(), actor: `job:${job.id}`, kind: lock ? 'card.locked' : 'card.unlocked', cardId: admin.card.id, subject: job.id, details: detail });
      return admin.result(detail);
    });
  };
}

export function terminateExecutor(deps: ExecutorDeps): JobExecutor {
  return async (job, ctx) => {
    const admin = new CardAdmin(deps, job, ctx, [FIRST_OPERATOR_KVN, 0x30]);
    return withCard(admin, async () => {
      const res = await admin.run([Op.setStatus(StatusType.isd, CardLifecycle.terminated, undefined, [0x6985]), Op.getCardInfo()]);
      const info = res[0]!.sw === 0x6985 ? await admin.info() : admin.parseInfo(res[1]!);
      if (info.lifecycle !== CardLifecycle.terminated) throw integrityError(`the card is ${lifecycleName(info.lifecycle)}, not TERMINATED`);
      const op = admin.operator;
      const now = op.now();
      const certs = (await admin.store.certificatesOfCard(admin.card.id)).filter((c) => c.status === 'good');
      await admin.store.tx(async (t) => {
        await t.updateCard(admin.card.id, { lifecycle: 'terminated' }, now);
        for (const i of await t.identitiesOfCard(admin.card.id)) if (i.state !== 'deleted') await t.updateIdentity(i.id, { state: 'deleted', deleteAfter: null }, now);
        await t.addEvent({ at: now, actor: `job:${job.id}`, kind: 'card.terminated', cardId: admin.card.id, subject: job.id, details: { certificates: certs.length } });
      });
      let crl: number | null = null;
      for (const c of certs) {
        try {
          crl = (await op.revocation.revoke(c.serial, 'cessationOfOperation', `job:${job.id}`)).crl.number;
        } catch (e) {
          if ((e as { code?: string }).code !== OpErrorCode.alreadyRevoked) throw e;
        }
      }
      return admin.result({ lifecycle: 'TERMINATED', revoked: certs.map((c) => toHex(c.serial)), crlNumber: crl });
    });
  };
}
