/**
 * operator/executors/trust: what the card trusts for mutual TLS — push-client-cas (the client-auth
 * CAs, PutTrustAnchors role 02; optionally the identities' client-authentication policy) and
 * push-deny-list (client-certificate serials, PutRevocationList under a number the registry
 * allocates per card and never reuses). imports executors/common, admin/, gp/admin, pki/x509.
 *
 *   push-client-cas  [IU, EA, PutTrustAnchors(02, CAs), GetCardInfo] — the card's answer digest and
 *                    GetCardInfo's 9C must equal SHA-256 of the CAs back to back; with clientAuth,
 *                    + [SetPolicy(slot)…, GetCardInfo] for the active identities (a second round trip).
 *   push-deny-list   [IU, EA, PutRevocationList(n, serials), GetCardInfo] — n allocated in the
 *                    registry before the script (a crash skips a number, never repeats one); a
 *                    card that already holds a newer list (6985) gets n above its own, once.
 */
import { concat, fromHex, toHex } from '../../bytes/index.js';
import { sha256 } from '../../gp/admin/attestation.js';
import { Field, Fn, SlotStatus } from '../../gp/admin/constants.js';
import { req, uint } from '../../gp/admin/fields.js';
import { AdminRequest, parseFunctionResponse, type ClientAuth } from '../../gp/admin/requests.js';
import { Op } from '../admin/ops.js';
import type { JobExecutor } from '../jobs/runner.js';
import { FIRST_OPERATOR_KVN } from '../keys/master-keys.js';
import { certificateDer } from '../pki/x509.js';
import { CardAdmin, integrityError, parsed, withCard, type ExecutorDeps } from './common.js';

const CLIENT_AUTH_BITS: Readonly<Record<ClientAuth, number>> = { none: 0, optional: 1, required: 2 };

export function pushClientCasExecutor(deps: ExecutorDeps): JobExecutor {
  return async (job, ctx) => {
    const admin = new CardAdmin(deps, job, ctx, [FIRST_OPERATOR_KVN]);
    const certs = (job.params['certificates'] as string[]).map((pem) => certificateDer(pem));
    const clientAuth = job.params['clientAuth'] as ClientAuth | undefined;
    return withCard(admin, async () => {
      const res = await admin.run([Op.call(AdminRequest.putTrustAnchors({ role: 'client-ca', certificates: certs }), { label: 'PutTrustAnchors' }), Op.getCardInfo()]);
      const want = sha256(concat(...certs));
      const digest = parsed('PutTrustAnchors', () => req(parseFunctionResponse(Fn.putTrustAnchors, res[0]!.data), Field.digest, 'PutTrustAnchors'));
      let info = admin.parseInfo(res[1]!);
      if (!Buffer.from(digest).equals(Buffer.from(want)) || (certs.length > 0 && !Buffer.from(info.clientCaSha256 ?? []).equals(Buffer.from(want)))) {
        throw integrityError('the card reports other client CAs than those sent');
      }
      const slots: number[] = [];
      if (clientAuth !== undefined) {
        const ops = info.slots
          .filter((s) => s.status === SlotStatus.active)
          .map((s) => {
            slots.push(s.slot);
            const bits = (s.policy & ~0x06) | (CLIENT_AUTH_BITS[clientAuth] << 1);
            return Op.call(AdminRequest.setPolicy({ slot: s.slot, policy: { exportAllowed: (bits & 1) === 1, clientAuth } }), { label: 'SetPolicy' });
          });
        if (ops.length) info = admin.parseInfo((await admin.run([...ops, Op.getCardInfo()])).at(-1)!);
        for (const s of info.slots) if (slots.includes(s.slot) && ((s.policy & 0x06) >> 1) !== CLIENT_AUTH_BITS[clientAuth]) throw integrityError(`slot ${s.slot} policy not set`);
      }
      const now = admin.operator.now();
      await admin.store.addEvent({ at: now, actor: `job:${job.id}`, kind: 'card.client-cas', cardId: admin.card.id, subject: job.id, details: { count: certs.length, sha256: toHex(want), clientAuth: clientAuth ?? null, slots } });
      return admin.result({ clientCas: certs.length, clientCasSha256: toHex(want), ...(clientAuth ? { clientAuth, slots } : {}) });
    });
  };
}

/** SHA-256 over len(1) ‖ serial per serial (the card's revocation-list digest), serials canonical. */
function serialsDigest(serials: readonly Uint8Array[]): Uint8Array {
  return sha256(concat(...serials.map((s) => concat(Uint8Array.of(s.length), s))));
}

function canonical(s: Uint8Array): Uint8Array {
  let i = 0;
  while (i < s.length - 1 && s[i] === 0) i++;
  return s.slice(i);
}

export function pushDenyListExecutor(deps: ExecutorDeps): JobExecutor {
  return async (job, ctx) => {
    const admin = new CardAdmin(deps, job, ctx, [FIRST_OPERATOR_KVN]);
    const serials: Uint8Array[] = [];
    for (const h of job.params['serials'] as string[]) {
      const s = canonical(fromHex(h));
      if (!serials.some((x) => Buffer.from(x).equals(Buffer.from(s)))) serials.push(s);
    }
    return withCard(admin, async () => {
      let atLeast = 0;
      for (let tries = 0; ; tries++) {
        const number = await admin.store.allocateCardCounter(admin.card.id, 'denyListNumber', atLeast);
        const res = await admin.run([Op.call(AdminRequest.putRevocationList({ number, serials }), { accept: tries === 0 ? [0x6985] : [], label: 'PutRevocationList' }), Op.getCardInfo()]);
        if (res[0]!.sw === 0x6985) {
          // The card holds a list numbered n or more (the registry was restored, say): go above it, once.
          const info = await admin.info();
          atLeast = info.revocationNumber + 1;
          admin.log(`the card already holds deny-list ${info.revocationNumber}; numbering from ${atLeast}`);
          continue;
        }
        const f = parsed('PutRevocationList', () => parseFunctionResponse(Fn.putRevocationList, res[0]!.data));
        const info = admin.parseInfo(res[1]!);
        if (uint(req(f, Field.number, 'n'), 4, 'n') !== number || info.revocationNumber !== number || !Buffer.from(req(f, Field.digest, 'd')).equals(Buffer.from(serialsDigest(serials)))) {
          throw integrityError('the card reports another deny-list than the one sent');
        }
        const now = admin.operator.now();
        await admin.store.addEvent({ at: now, actor: `job:${job.id}`, kind: 'card.deny-list', cardId: admin.card.id, subject: String(number), details: { count: serials.length } });
        return admin.result({ number, serials: serials.map((s) => toHex(s)) });
      }
    });
  };
}
