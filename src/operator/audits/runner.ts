/**
 * operator/audits/runner: runs the audit checks and keeps their findings — every condition a check
 * sees is recorded (a new finding, or the open one's last_seen_at moved), then the open findings of
 * that check not seen in this run are resolved `auto` (unless the check was truncated or failed).
 * One run at a time across operator nodes: the `audits` lease in the store (audit_lease, one
 * guarded upsert), which also remembers when the last run ended, so periodic runs on several nodes
 * do not repeat each other. `start(intervalMs)` runs periodically (what `operator serve` does).
 * imports audits/*, store/types, errors.
 */
import { randomUUID } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import type { OperatorStore } from '../store/types.js';
import { auditLogBadSignature, auditLogGap } from './audit-log.js';
import { cardNotSeen, lockNotDelivered } from './cards.js';
import { caExpiring, certExpiring, revokedCertServed } from './certificates.js';
import { factoryKeysUnrotated, sharedKey } from './keys.js';
import { CHECK_NAMES, DEFAULT_AUDIT_CONFIG, type AuditCheck, type AuditConfig, type CheckName } from './types.js';

export const ALL_CHECKS: readonly AuditCheck[] = [
  certExpiring,
  revokedCertServed,
  sharedKey,
  factoryKeysUnrotated,
  auditLogGap,
  auditLogBadSignature,
  lockNotDelivered,
  cardNotSeen,
  caExpiring,
];

export interface CheckCounts {
  open: number;
  new: number;
  resolved: number;
  truncated?: boolean;
  error?: string;
}

export interface AuditRunResult {
  readonly checks: Record<string, CheckCounts>;
  readonly startedAt: number;
  readonly finishedAt: number;
}

export interface AuditServiceOptions {
  readonly store: OperatorStore;
  readonly now: () => number;
  readonly config?: AuditConfig;
  /** This node's name in the lease (default a random one). */
  readonly owner?: string;
  /** How long a run may hold the lease before another node may take over (default 10 min). */
  readonly leaseMs?: number;
  readonly log?: { error(obj: object, msg: string): void; info(obj: object, msg: string): void };
  readonly checks?: readonly AuditCheck[];
}

const LEASE = 'audits';

export class AuditService {
  readonly config: AuditConfig;
  private readonly owner: string;
  private lastStart = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | null = null;
  private ticking: Promise<unknown> | null = null;
  private stopped = false;

  constructor(private readonly o: AuditServiceOptions) {
    this.config = o.config ?? DEFAULT_AUDIT_CONFIG;
    this.owner = o.owner ?? `audit-${randomUUID()}`;
  }

  /**
   * One run of every check (or those named). `minIntervalMs` > 0: skipped (null) when another run
   * ended less than that long ago or is in progress anywhere; 0 (a person asked): refused with
   * ERR_OP_AUDIT_RUNNING only while another run holds the lease.
   */
  async run(opts: { minIntervalMs?: number; only?: readonly CheckName[] } = {}): Promise<AuditRunResult | null> {
    const store = this.o.store;
    const acquiredAt = this.o.now();
    const got = await store.acquireAuditLease(LEASE, this.owner, acquiredAt, this.o.leaseMs ?? 600_000, opts.minIntervalMs ?? 0);
    if (!got) {
      if (opts.minIntervalMs) return null;
      throw new OpError(OpErrorCode.auditRunning, 'an audit run is in progress (on this or another operator node); retry when it has ended');
    }
    const p = this.runHeld(opts.only);
    this.running = p;
    try {
      return await p;
    } finally {
      if (this.running === p) this.running = null;
      await store.releaseAuditLease(LEASE, this.owner, this.o.now()).catch(() => undefined);
    }
  }

  private async runHeld(only?: readonly CheckName[]): Promise<AuditRunResult> {
    const store = this.o.store;
    // strictly increasing per process: a finding seen by this run has last_seen_at = started
    const started = Math.max(this.o.now(), this.lastStart + 1);
    this.lastStart = started;
    const checks: Record<string, CheckCounts> = {};
    for (const check of this.o.checks ?? ALL_CHECKS) {
      if (only && !only.includes(check.name)) continue;
      const counts: CheckCounts = { open: 0, new: 0, resolved: 0 };
      checks[check.name] = counts;
      try {
        const outcome = await check.run({ store, now: started, config: this.config });
        for (const r of outcome.reports) if ((await store.recordFinding(r, started)) === 'new') counts.new++;
        if (outcome.truncated) counts.truncated = true;
        else counts.resolved = await store.resolveUnseenFindings(check.name, started, this.o.now());
      } catch (e) {
        // a failing check resolves nothing: its open findings stay as they were
        counts.error = (e as Error).message;
        this.o.log?.error({ err: e, check: check.name }, 'audit check failed');
      }
    }
    const open = await store.countOpenFindingsByCheck();
    for (const [name, c] of Object.entries(checks)) c.open = open[name] ?? 0;
    const finishedAt = this.o.now();
    this.o.log?.info({ checks }, 'audit run');
    return { checks, startedAt: started, finishedAt };
  }

  /** Runs every `intervalMs` (at once first); one node at a time, and not again within the interval on another. */
  start(intervalMs: number): void {
    if (this.timer || intervalMs <= 0) return;
    const tick = (): void => {
      if (this.stopped || this.ticking || this.running) return;
      // a little slack, so that the node whose timer fires right at the interval is not skipped
      const p = this.run({ minIntervalMs: Math.max(1, intervalMs - Math.min(5_000, intervalMs / 10)) }).catch((e: unknown) => this.o.log?.error({ err: e }, 'audit run failed'));
      this.ticking = p;
      void p.finally(() => {
        if (this.ticking === p) this.ticking = null;
      });
    };
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
    tick();
  }

  /** Stops the periodic runs and waits for one in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking?.catch(() => undefined);
    await this.running?.catch(() => undefined);
  }
}

export { CHECK_NAMES };
