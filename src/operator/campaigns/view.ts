/**
 * operator/campaigns/view: a campaign as the REST API and the progress stream show it
 * (CONTRACT-16 campaign view: ISO times, counters, abort criteria). imports store/types.
 */
import type { CampaignCounters, CampaignRow, JsonObject } from '../store/types.js';

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export function campaignView(c: CampaignRow, counters: CampaignCounters): JsonObject {
  return {
    id: c.id,
    name: c.name,
    kind: c.kind,
    jobKind: c.jobKind,
    selector: c.selector,
    params: c.params,
    ratePerMinute: c.ratePerMinute,
    abort: c.abortRule,
    state: c.state,
    counters: { ...counters },
    abortReason: c.abortReason,
    abortCounters: c.abortStats,
    createdBy: c.createdBy,
    createdAt: iso(c.createdAt),
    updatedAt: iso(c.updatedAt),
    finishedAt: iso(c.finishedAt),
  };
}
