/**
 * operator/audits/views: a finding as the REST API shows it (CONTRACT-16: hex UID, ISO times).
 * imports store/types, bytes/.
 */
import { toHex } from '../../bytes/index.js';
import type { FindingRow, JsonObject } from '../store/types.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function findingView(f: FindingRow): JsonObject {
  return {
    id: f.id,
    check: f.check,
    card: f.cardUid ? toHex(f.cardUid) : null,
    subject: f.subject,
    severity: f.severity,
    status: f.status,
    detail: f.detail,
    firstSeenAt: iso(f.firstSeenAt),
    lastSeenAt: iso(f.lastSeenAt),
    resolvedAt: iso(f.resolvedAt),
    resolution: f.resolution,
    resolvedBy: f.resolvedBy,
  };
}
