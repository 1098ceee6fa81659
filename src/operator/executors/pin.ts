/**
 * operator/executors/pin: unblock-pin — ResetPin (function BF2C) on the user or operator PIN of
 * the TLS applet: reset its retry counter only, or, with `newPin`, set a new PIN (8 random digits
 * drawn here) and unblock it. One round trip: [IU, EA, ResetPin]. The new PIN travels only inside
 * the level-33 STORE DATA (C-DECRYPTION), is sealed in the job's result (keys/job-secrets.ts) and
 * is handed out only to the token that created the job (`GET /v1/jobs/{id}/secret`).
 * imports executors/common, admin/, gp/admin, keys/job-secrets.
 */
import { randomInt } from 'node:crypto';
import { wipe } from '../../bytes/index.js';
import { Field, Fn, PinRef } from '../../gp/admin/constants.js';
import { req, uint } from '../../gp/admin/fields.js';
import { AdminRequest, parseFunctionResponse } from '../../gp/admin/requests.js';
import { Op } from '../admin/ops.js';
import type { JobExecutor } from '../jobs/runner.js';
import { sealJobSecret } from '../keys/job-secrets.js';
import { FIRST_OPERATOR_KVN } from '../keys/master-keys.js';
import { CardAdmin, integrityError, parsed, withCard, type ExecutorDeps } from './common.js';

/** 8 random decimal digits (the TLS applet takes 4–8). */
function newPinDigits(): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += String(randomInt(10));
  return s;
}

export function unblockPinExecutor(deps: ExecutorDeps): JobExecutor {
  return async (job, ctx) => {
    const admin = new CardAdmin(deps, job, ctx, [FIRST_OPERATOR_KVN]);
    const pin = job.params['pin'] === 'operator' ? 'operator' : 'user';
    const setNew = job.params['newPin'] === true;
    return withCard(admin, async () => {
      const digits = setNew ? newPinDigits() : undefined;
      const padded = digits ? Uint8Array.from(Buffer.from(digits, 'ascii')) : undefined;
      let sealed: string | undefined;
      try {
        if (digits) sealed = sealJobSecret(admin.operator.paths.keysDir, job.id, digits);
        const [r] = await admin.run([Op.call(AdminRequest.resetPin({ pin, ...(padded ? { newPin: padded } : {}) }), { label: 'ResetPin' })]);
        const ref = parsed('ResetPin', () => uint(req(parseFunctionResponse(Fn.resetPin, r!.data), Field.pinRef, 'ResetPin'), 1, 'ResetPin'));
        if (ref !== PinRef[pin]) throw integrityError('ResetPin answered for another PIN');
      } finally {
        wipe(padded);
      }
      const now = admin.operator.now();
      await admin.store.addEvent({ at: now, actor: `job:${job.id}`, kind: 'card.pin-reset', cardId: admin.card.id, subject: pin, details: { newPin: setNew } });
      return admin.result({ pin, unblocked: true, newPin: setNew, ...(sealed ? { sealedPin: sealed } : {}) });
    });
  };
}
