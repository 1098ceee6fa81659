/**
 * operator/audits/types: the audit checks' names (the REST contract's), their configuration
 * (windows and thresholds, from operator.json `audits`), and what a check is: a function from the
 * store and the run's time to the conditions it sees now. imports store/types.
 */
import type { FindingReport, OperatorStore } from '../store/types.js';

export const CheckName = {
  certExpiring: 'cert-expiring',
  revokedCertServed: 'revoked-cert-served',
  sharedKey: 'shared-key',
  factoryKeysUnrotated: 'factory-keys-unrotated',
  auditLogGap: 'audit-log-gap',
  auditLogBadSignature: 'audit-log-bad-signature',
  lockNotDelivered: 'lock-not-delivered',
  cardNotSeen: 'card-not-seen',
  caExpiring: 'ca-expiring',
} as const;
export type CheckName = (typeof CheckName)[keyof typeof CheckName];
export const CHECK_NAMES: readonly CheckName[] = Object.values(CheckName);
export function isCheckName(v: string): v is CheckName {
  return (CHECK_NAMES as readonly string[]).includes(v);
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export interface AuditConfig {
  /** cert-expiring: a card's active certificate expires within this (default 7 days). */
  readonly certExpiringWithinMs: number;
  /** ca-expiring: the issuing, TLS or a manufacturer CA expires within this (default 90 days). */
  readonly caExpiringWithinMs: number;
  /** card-not-seen: an enrolled/active card no agent reported for this long (default 24 h). */
  readonly cardNotSeenMs: number;
  /** factory-keys-unrotated: still on the factory KVN this long after its first certificate (default 24 h). */
  readonly factoryKeysGraceMs: number;
  /** lock-not-delivered: a lock job still unfinished this long after it was asked (default 15 min). */
  readonly lockStuckMs: number;
  /** At most this many conditions per check and run; a check that reaches it auto-resolves nothing. */
  readonly maxPerCheck: number;
}

export const DEFAULT_AUDIT_CONFIG: AuditConfig = {
  certExpiringWithinMs: 7 * DAY,
  caExpiringWithinMs: 90 * DAY,
  cardNotSeenMs: DAY,
  factoryKeysGraceMs: DAY,
  lockStuckMs: 15 * MIN,
  maxPerCheck: 10_000,
};

/** operator.json `audits`: { certExpiringDays, caExpiringDays, cardNotSeenHours, factoryKeysGraceHours, lockStuckMinutes, maxPerCheck }. */
export function auditConfigOf(raw: unknown): AuditConfig {
  if (!raw || typeof raw !== 'object') return DEFAULT_AUDIT_CONFIG;
  const o = raw as Record<string, unknown>;
  const pos = (k: string, unit: number, dflt: number): number => {
    const v = o[k];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`operator.json audits.${k} must be a positive number`);
    return v * unit;
  };
  return {
    certExpiringWithinMs: pos('certExpiringDays', DAY, DEFAULT_AUDIT_CONFIG.certExpiringWithinMs),
    caExpiringWithinMs: pos('caExpiringDays', DAY, DEFAULT_AUDIT_CONFIG.caExpiringWithinMs),
    cardNotSeenMs: pos('cardNotSeenHours', HOUR, DEFAULT_AUDIT_CONFIG.cardNotSeenMs),
    factoryKeysGraceMs: pos('factoryKeysGraceHours', HOUR, DEFAULT_AUDIT_CONFIG.factoryKeysGraceMs),
    lockStuckMs: pos('lockStuckMinutes', MIN, DEFAULT_AUDIT_CONFIG.lockStuckMs),
    maxPerCheck: Math.floor(pos('maxPerCheck', 1, DEFAULT_AUDIT_CONFIG.maxPerCheck)),
  };
}

export interface AuditContext {
  readonly store: OperatorStore;
  /** The run's time (epoch ms). */
  readonly now: number;
  readonly config: AuditConfig;
}

export interface CheckOutcome {
  readonly reports: FindingReport[];
  /** The check hit maxPerCheck: what it did not list may still hold, so nothing is auto-resolved. */
  readonly truncated: boolean;
}

export interface AuditCheck {
  readonly name: CheckName;
  run(ctx: AuditContext): Promise<CheckOutcome>;
}

export const iso = (t: number): string => new Date(t).toISOString();
