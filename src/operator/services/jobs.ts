/**
 * operator/services/jobs: creating a card job from an API request — the card must exist, be in a
 * state the kind allows, the caller must have the kind's role; params validated per kind
 * (jobs/kinds.ts). A job carries an idempotency key (scoped to the caller) so that a retried
 * request after a crash finds the job it already created. imports jobs/kinds, store/types, errors.
 */
import { randomUUID } from 'node:crypto';
import { toHex } from '../../bytes/index.js';
import { hasRole, type Principal } from '../auth/tokens.js';
import { OpError, OpErrorCode } from '../errors.js';
import { JOB_SPECS, type JobKind } from '../jobs/kinds.js';
import type { JobRow, JsonObject, OperatorStore } from '../store/types.js';

export interface CreateJobRequest {
  readonly uid: Uint8Array;
  readonly kind: JobKind;
  readonly body: JsonObject;
  readonly principal: Principal;
  /** Already scoped (principal/key), or null. */
  readonly idempotencyKey: string | null;
  readonly now?: number;
}

export async function createCardJob(store: OperatorStore, r: CreateJobRequest): Promise<JobRow> {
  const spec = JOB_SPECS[r.kind];
  if (!hasRole(r.principal, spec.role)) throw new OpError(OpErrorCode.forbidden, `'${r.kind}' needs the ${spec.role} role; this token is ${r.principal.role}`);
  const params = spec.params(r.body);
  const now = r.now ?? Date.now();
  return store.tx(async (t) => {
    if (r.idempotencyKey) {
      const existing = await t.jobByIdempotencyKey(r.idempotencyKey);
      if (existing) return existing;
    }
    const card = await t.cardByUid(r.uid);
    if (!card) throw new OpError(OpErrorCode.unknownCard, `no card ${toHex(r.uid)}`);
    if (card.lifecycle === 'terminated') throw new OpError(OpErrorCode.cardTerminated, `card ${toHex(r.uid)} is terminated`);
    if (!spec.states.includes(card.lifecycle)) {
      throw new OpError(OpErrorCode.cardState, `'${r.kind}' is not possible while card ${toHex(r.uid)} is ${card.lifecycle} (allowed: ${spec.states.join(', ')})`);
    }
    const job = await t.insertJob({
      id: randomUUID(),
      cardId: card.id,
      kind: r.kind,
      params,
      maxAttempts: spec.maxAttempts,
      deadlineAt: now + spec.deadlineMs,
      idempotencyKey: r.idempotencyKey,
      createdBy: r.principal.name,
      createdAt: now,
    });
    await t.addEvent({ at: now, actor: r.principal.name, kind: 'job.created', cardId: card.id, subject: job.id, details: { kind: r.kind } });
    return job;
  });
}
