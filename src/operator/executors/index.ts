/**
 * operator/executors/: the job executors — each kind an SCP03 administration script at security
 * level 33 relayed by the card's device agent (docs/operator.md §5) — and `registerExecutors`, which
 * `startOperator` calls with the relay hub. imports the executors beside it.
 */
import { JobKind } from '../jobs/kinds.js';
import type { JobRunner } from '../jobs/runner.js';
import type { ExecutorDeps } from './common.js';
import { deleteRetiredExecutor, enrolExecutor, rekeyExecutor } from './identity.js';
import { lockExecutor, terminateExecutor } from './lifecycle.js';
import { pushClientCasExecutor, pushDenyListExecutor } from './trust.js';
import { unblockPinExecutor } from './pin.js';
import { readAuditExecutor } from './audit.js';
import { rotateAdminKeysExecutor } from './keys.js';

export { type ExecutorDeps, type ExecutorOptions, CardAdmin, withCard } from './common.js';

/** The internal job kind that deletes re-keyed keys after their grace period (queued by the sweeper). */
export const DELETE_RETIRED_KIND = 'delete-retired';

export function registerExecutors(runner: JobRunner, deps: ExecutorDeps): void {
  runner
    .register(JobKind.enrol, enrolExecutor(deps))
    .register(JobKind.rekey, rekeyExecutor(deps))
    .register(JobKind.lock, lockExecutor(deps, true))
    .register(JobKind.unlock, lockExecutor(deps, false))
    .register(JobKind.terminate, terminateExecutor(deps))
    .register(JobKind.pushClientCas, pushClientCasExecutor(deps))
    .register(JobKind.pushDenyList, pushDenyListExecutor(deps))
    .register(JobKind.unblockPin, unblockPinExecutor(deps))
    .register(JobKind.readAudit, readAuditExecutor(deps))
    .register(JobKind.rotateAdminKeys, rotateAdminKeysExecutor(deps))
    .register(DELETE_RETIRED_KIND, deleteRetiredExecutor(deps));
}
