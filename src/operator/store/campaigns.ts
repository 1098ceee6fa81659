/**
 * operator/store/campaigns: the SQL of campaigns (issue #16) — the campaign row, its targets (one per
 * card, UNIQUE (campaign_id, card_id); job_id set in the transaction that creates the job), the
 * counters derived from targets and their jobs, the release window. Portable SQL (SQLite and
 * PostgreSQL, `?` placeholders), functions over a `SqlConn` that `SqlStore` delegates to.
 * imports store/driver, store/types.
 */
import type { SqlConn, SqlRow, SqlValue } from './driver.js';
import type { CampaignCounters, CampaignOutcomes, CampaignRow, CampaignState, CampaignTargetRow, JsonObject } from './types.js';

const json = (v: JsonObject | null): string | null => (v === null ? null : JSON.stringify(v));
const obj = (v: unknown): JsonObject => (v === null || v === undefined ? {} : (JSON.parse(v as string) as JsonObject));
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function campaignRow(r: SqlRow): CampaignRow {
  return {
    id: r['id'] as string,
    name: r['name'] as string,
    kind: r['kind'] as string,
    jobKind: r['job_kind'] as string,
    selector: obj(r['selector']),
    params: obj(r['params']),
    ratePerMinute: Number(r['rate_per_minute']),
    abortRule: obj(r['abort_rule']),
    state: r['state'] as CampaignState,
    abortReason: (r['abort_reason'] ?? null) as string | null,
    abortStats: r['abort_stats'] === null || r['abort_stats'] === undefined ? null : obj(r['abort_stats']),
    nextReleaseAt: Number(r['next_release_at']),
    createdBy: r['created_by'] as string,
    createdAt: Number(r['created_at']),
    updatedAt: Number(r['updated_at']),
    finishedAt: num(r['finished_at']),
  };
}

function targetRow(r: SqlRow): CampaignTargetRow {
  return {
    campaignId: r['campaign_id'] as string,
    cardId: r['card_id'] as string,
    ord: Number(r['ord']),
    state: r['state'] as CampaignTargetRow['state'],
    jobId: (r['job_id'] ?? null) as string | null,
    releasedAt: num(r['released_at']),
    note: (r['note'] ?? null) as string | null,
  };
}

export async function insertCampaign(c: SqlConn, row: CampaignRow): Promise<void> {
  await c.run(
    `INSERT INTO campaign (id, name, kind, job_kind, selector, params, rate_per_minute, abort_rule, state, abort_reason, abort_stats, next_release_at, created_by, created_at, updated_at, finished_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      row.id,
      row.name,
      row.kind,
      row.jobKind,
      json(row.selector),
      json(row.params),
      row.ratePerMinute,
      json(row.abortRule),
      row.state,
      row.abortReason,
      json(row.abortStats),
      row.nextReleaseAt,
      row.createdBy,
      row.createdAt,
      row.updatedAt,
      row.finishedAt,
    ],
  );
}

const TARGET_BATCH = 500;

export async function insertCampaignTargets(c: SqlConn, campaignId: string, cardIds: readonly string[], firstOrd: number): Promise<void> {
  for (let i = 0; i < cardIds.length; i += TARGET_BATCH) {
    const part = cardIds.slice(i, i + TARGET_BATCH);
    const params: SqlValue[] = [];
    part.forEach((id, k) => params.push(campaignId, id, firstOrd + i + k));
    await c.run(
      `INSERT INTO campaign_target (campaign_id, card_id, ord, state) VALUES ${part.map(() => `(?, ?, ?, 'pending')`).join(', ')}
       ON CONFLICT (campaign_id, card_id) DO NOTHING`,
      params,
    );
  }
}

export async function campaignById(c: SqlConn, id: string): Promise<CampaignRow | null> {
  const r = await c.get('SELECT * FROM campaign WHERE id = ?', [id]);
  return r ? campaignRow(r) : null;
}

export async function listCampaigns(c: SqlConn, state: CampaignState | undefined, after: { createdAt: number; id: string } | null, limit: number): Promise<CampaignRow[]> {
  const where: string[] = [];
  const params: SqlValue[] = [];
  if (state) {
    where.push('state = ?');
    params.push(state);
  }
  if (after) {
    where.push('(created_at < ? OR (created_at = ? AND id < ?))');
    params.push(after.createdAt, after.createdAt, after.id);
  }
  params.push(limit);
  const rows = await c.all(`SELECT * FROM campaign ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`, params);
  return rows.map(campaignRow);
}

export async function campaignIdsInState(c: SqlConn, states: readonly CampaignState[]): Promise<string[]> {
  if (states.length === 0) return [];
  const rows = await c.all(`SELECT id FROM campaign WHERE state IN (${states.map(() => '?').join(', ')}) ORDER BY created_at`, [...states]);
  return rows.map((r) => r['id'] as string);
}

export async function lockCampaign(c: SqlConn, id: string): Promise<CampaignRow | null> {
  // A write to the row takes its lock until commit on PostgreSQL (a second node waits here, then
  // reads what the first committed); on SQLite the transaction already is the only writer.
  await c.run('UPDATE campaign SET next_release_at = next_release_at WHERE id = ?', [id]);
  return campaignById(c, id);
}

const COLUMN: Record<string, string> = {
  state: 'state',
  abortReason: 'abort_reason',
  abortStats: 'abort_stats',
  nextReleaseAt: 'next_release_at',
  finishedAt: 'finished_at',
};

export async function updateCampaign(
  c: SqlConn,
  id: string,
  patch: Partial<Pick<CampaignRow, 'state' | 'abortReason' | 'abortStats' | 'nextReleaseAt' | 'finishedAt'>>,
  now: number,
): Promise<void> {
  const sets: string[] = [];
  const params: SqlValue[] = [];
  for (const [k, v] of Object.entries(patch)) {
    const col = COLUMN[k];
    if (!col || v === undefined) continue;
    sets.push(`${col} = ?`);
    params.push(k === 'abortStats' ? json(v as JsonObject | null) : (v as SqlValue));
  }
  sets.push('updated_at = ?');
  params.push(now, id);
  await c.run(`UPDATE campaign SET ${sets.join(', ')} WHERE id = ?`, params);
}

export async function campaignCounters(c: SqlConn, id: string): Promise<CampaignCounters> {
  // Two index-only counts (campaign_target_state_ord, job_campaign_status), no join: every released
  // target has exactly one job of the campaign (released with it in one transaction, under the
  // campaign lock) and no other job carries the campaign's id. A join target → job looked up one job
  // row per target at every decision (10 000 targets: tens of ms, several times a second).
  // test/operator/store-plans.test.ts.
  const targets = await c.all(`SELECT state, COUNT(*) AS n FROM campaign_target WHERE campaign_id = ? GROUP BY state`, [id]);
  const jobs = await c.all(`SELECT status, COUNT(*) AS n FROM job WHERE campaign_id = ? GROUP BY status`, [id]);
  const k = { targeted: 0, pending: 0, queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
  for (const r of targets) {
    const n = Number(r['n']);
    k.targeted += n;
    if (r['state'] === 'pending') k.pending += n;
    else if (r['state'] === 'skipped') k.canceled += n;
  }
  for (const r of jobs) {
    const n = Number(r['n']);
    const j = r['status'] as string;
    if (j === 'queued') k.queued += n;
    else if (j === 'in_progress') k.running += n;
    else if (j === 'succeeded') k.succeeded += n;
    else if (j === 'failed' || j === 'timed_out') k.failed += n;
    else if (j === 'canceled') k.canceled += n;
  }
  return k;
}

/**
 * The campaign's executed jobs (succeeded; failed or timed out), counted over at most `limit` of
 * them: `exact` when there are fewer than `limit`. Bounded work (an index range of
 * job_campaign_status cut at `limit`), read under the campaign lock with every outcome that can make
 * the abort rule hold: each failure, and the successes up to the minimum (campaigns/engine.ts).
 */
export async function campaignOutcomes(c: SqlConn, id: string, limit: number): Promise<CampaignOutcomes> {
  const rows = await c.all(
    `SELECT status, COUNT(*) AS n FROM (SELECT status FROM job WHERE campaign_id = ? AND status IN ('succeeded', 'failed', 'timed_out') LIMIT ?) AS executed GROUP BY status`,
    [id, limit],
  );
  let succeeded = 0;
  let failed = 0;
  for (const r of rows) {
    if (r['status'] === 'succeeded') succeeded += Number(r['n']);
    else failed += Number(r['n']);
  }
  return { succeeded, failed, exact: succeeded + failed < limit };
}

export async function campaignReleasesSince(c: SqlConn, id: string, since: number): Promise<number> {
  const r = await c.get(`SELECT COUNT(*) AS n FROM campaign_target WHERE campaign_id = ? AND released_at >= ?`, [id, since]);
  return Number(r?.['n'] ?? 0);
}

export async function pendingCampaignTargets(c: SqlConn, id: string, limit: number): Promise<CampaignTargetRow[]> {
  const rows = await c.all(`SELECT * FROM campaign_target WHERE campaign_id = ? AND state = 'pending' ORDER BY ord LIMIT ?`, [id, limit]);
  return rows.map(targetRow);
}

export async function settleCampaignTarget(
  c: SqlConn,
  id: string,
  cardId: string,
  s: { state: 'released' | 'skipped'; jobId?: string | null; at: number; note?: string | null },
): Promise<boolean> {
  const { changes } = await c.run(
    `UPDATE campaign_target SET state = ?, job_id = ?, released_at = ?, note = ? WHERE campaign_id = ? AND card_id = ? AND state = 'pending'`,
    [s.state, s.jobId ?? null, s.state === 'released' ? s.at : null, s.note ?? null, id, cardId],
  );
  return changes === 1;
}

export async function skipPendingCampaignTargets(c: SqlConn, id: string, note: string): Promise<number> {
  const { changes } = await c.run(`UPDATE campaign_target SET state = 'skipped', note = ? WHERE campaign_id = ? AND state = 'pending'`, [note, id]);
  return changes;
}

export async function cancelQueuedCampaignJobs(c: SqlConn, id: string, now: number): Promise<number> {
  const { changes } = await c.run(
    `UPDATE job SET status = 'canceled', finished_at = ?, updated_at = ?, lease_owner = NULL, lease_until = NULL WHERE campaign_id = ? AND status = 'queued'`,
    [now, now, id],
  );
  return changes;
}

export async function campaignTargets(c: SqlConn, id: string, afterOrd: number, limit: number): Promise<CampaignTargetRow[]> {
  const rows = await c.all(`SELECT * FROM campaign_target WHERE campaign_id = ? AND ord > ? ORDER BY ord LIMIT ?`, [id, afterOrd, limit]);
  return rows.map(targetRow);
}

/** The campaign's job rows (raw: SqlStore maps them with its job mapper), newest first. */
export async function campaignJobRows(c: SqlConn, id: string, afterSeq: number | null, limit: number): Promise<SqlRow[]> {
  return afterSeq === null
    ? c.all('SELECT * FROM job WHERE campaign_id = ? ORDER BY seq DESC LIMIT ?', [id, limit])
    : c.all('SELECT * FROM job WHERE campaign_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?', [id, afterSeq, limit]);
}
