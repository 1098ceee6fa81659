/**
 * operator/executors/keys: rotate-admin-keys — PUT KEY replacing the card's operator key set (KVN
 * k) by a new one (KVN k + 1, 31..3F wrapping to 31), derived from the admin master for that KVN.
 * One round trip: [IU, EA (keys k), PUT KEY(k → k+1), GetCardInfo] (a resumed job reads GetCardInfo
 * first); the card's key check values and
 * GetCardInfo's KVN list confirm it. The KVN it moves to is checkpointed first, so an attempt after a
 * crash opens with k + 1 when the card answers that k is gone. imports executors/common, admin/, gp/.
 */
import { checkPutKeyResponse } from '../../gp/put-key.js';
import { wipeStaticKeys } from '../../gp/keys.js';
import { Op } from '../admin/ops.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { JobExecutor } from '../jobs/runner.js';
import { FACTORY_KVN } from '../keys/master-keys.js';
import { CardAdmin, integrityError, nextOperatorKvn, withCard, type ExecutorDeps } from './common.js';

export function rotateAdminKeysExecutor(deps: ExecutorDeps): JobExecutor {
  return async (job, ctx) => {
    const target = typeof job.progress['rotateTo'] === 'number' ? (job.progress['rotateTo'] as number) : nextOperatorKvn(ctx.card.kvn);
    const from = typeof job.progress['rotateFrom'] === 'number' ? (job.progress['rotateFrom'] as number) : ctx.card.kvn;
    if (from === FACTORY_KVN) throw new OpError(OpErrorCode.cardState, 'the card still has its factory keys: enrol it (taking ownership) before rotating admin keys');
    const admin = new CardAdmin(deps, job, ctx, [target]);
    return withCard(admin, async (replan) => {
      // A first attempt goes straight to PUT KEY; a later one first looks at which key sets the card holds.
      if (replan || 'rotateTo' in job.progress) {
        const info = await admin.info({ keepOpen: true });
        if (admin.kvn === target || (info.kvns.includes(target) && !info.kvns.includes(from))) {
          await admin.session.release();
          return admin.result({ kvn: target.toString(16), from: from.toString(16), alreadyDone: true });
        }
      } else {
        await admin.checkpoint({ rotateFrom: from, rotateTo: target });
      }
      const keys = admin.keysFor(target);
      try {
        const res = await admin.run([Op.putKey(keys, from), Op.getCardInfo()]);
        if (!checkPutKeyResponse(res[0]!.data, keys)) throw integrityError('PUT KEY: the key check values the card answered are not those of the keys sent');
        await admin.adoptKvn(target);
        const after = admin.parseInfo(res[1]!);
        if (!after.kvns.includes(target) || after.kvns.includes(from)) throw integrityError(`the card lists key sets ${after.kvns.map((k) => k.toString(16)).join(',')} after the rotation`);
      } finally {
        wipeStaticKeys(keys);
      }
      await admin.store.addEvent({ at: admin.operator.now(), actor: `job:${job.id}`, kind: 'card.admin-keys-rotated', cardId: admin.card.id, subject: target.toString(16), details: { from: from.toString(16) } });
      return admin.result({ kvn: target.toString(16), from: from.toString(16) });
    });
  };
}
