/**
 * operator/campaigns/engine: campaigns — creation (the selector resolved to targets once, at
 * creation), the rollout driver (releases each target's card job at the campaign's rate), the abort
 * criteria, pause/resume/cancel, and the in-process progress emitter (`on('progress', view)`).
 * imports campaigns/request, campaigns/rollout, campaigns/view, jobs/kinds, auth/tokens, store/types,
 * errors.
 *
 * Safety with several operator nodes and crashes: every decision about a campaign (abort, complete,
 * release) is one transaction that first takes the campaign's row lock (store.lockCampaign) and then
 * re-reads the row, the counters and the release window; a release inserts the job (idempotency key
 * `campaign:<id>:<card>`, unique) and turns its target from pending to released (guarded) in that same
 * transaction. A node killed mid-release leaves either both or neither; two nodes never release the
 * same target, and the bucket (`next_release_at`) and window (the targets' `released_at`) are in the
 * database, so a restart neither re-releases nor bursts. The jobs themselves are run by the job
 * runner (leases, fencing, resume after a crash).
 *
 * Abort: when executed (succeeded + failed/timed out) ≥ minExecuted and failed·100 ≥ failurePercent ·
 * executed (and at least one failed), the campaign becomes aborted in the same transaction that
 * decided it: its queued jobs are canceled, its pending targets skipped, nothing is released after.
 * The decision is taken in the transaction that records each of the campaign's job outcomes that
 * can make the rule hold (`recordOutcome`, under the campaign lock: every failure, and successes up
 * to the minimum), so no runner claims a queued job between that outcome and the abort, however
 * late the timers run; at most the jobs already running then finish after it. Beyond `exactLimit`
 * executed jobs, and for outcomes written without this hook, every driver tick decides, poked
 * pokeDelayMs after an outcome.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { hasRole, type Principal } from '../auth/tokens.js';
import { OpError, OpErrorCode } from '../errors.js';
import { JOB_SPECS, type JobKind } from '../jobs/kinds.js';
import { FINAL_CAMPAIGN_STATES, type CampaignCounters, type CampaignRow, type CampaignState, type JobRow, type JsonObject, type OperatorStore } from '../store/types.js';
import { parseCampaignRequest, selectorJson, type CampaignSelector } from './request.js';
import { allowance, burstOf, nextReleaseAfter, WINDOW_MS } from './rollout.js';
import { campaignView } from './view.js';

/** The campaign's abort rule as created (parseCampaignRequest validated it). */
function abortRuleOf(c: CampaignRow): { readonly minExecuted: number; readonly failurePercent: number } {
  return c.abortRule as { minExecuted: number; failurePercent: number };
}

/** The campaign's abort rule over its executed jobs: at least minExecuted, and failed ≥ failurePercent of them (one at least). */
function ruleHolds(c: CampaignRow, k: { readonly succeeded: number; readonly failed: number }): boolean {
  const executed = k.succeeded + k.failed;
  const rule = abortRuleOf(c);
  return executed >= rule.minExecuted && k.failed > 0 && k.failed * 100 >= rule.failurePercent * executed;
}

export interface CampaignLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CampaignEngineOptions {
  readonly store: OperatorStore;
  readonly now?: () => number;
  /** Driver period (default 1000 ms): releases, abort checks and progress of running campaigns. */
  readonly tickMs?: number;
  /** Delay of a poked tick (coalesces the pokes of many finishing jobs; default 50 ms). */
  readonly pokeDelayMs?: number;
  /**
   * The abort decision taken with each job outcome counts at most this many executed jobs
   * (default 100 000); past it, and for a minimum that reaches it, the driver's tick decides.
   */
  readonly exactLimit?: number;
  /** Called after jobs were released (the job runner's poke). */
  readonly onRelease?: () => void;
  readonly log?: CampaignLog;
}

/** Releases per decision transaction at most (keeps one transaction short). */
const MAX_RELEASES_PER_STEP = 200;
/** Targets of one campaign at most. */
export const MAX_TARGETS = 1_000_000;
/** Campaigns remembered as past their minimum (a shortcut; the set is emptied when full). */
const MAX_REMEMBERED = 10_000;
const SELECT_PAGE = 1000;

export interface CampaignSnapshot {
  readonly row: CampaignRow;
  readonly counters: CampaignCounters;
}

const SILENT: CampaignLog = { info() {}, error() {} };

export class CampaignEngine extends EventEmitter {
  private readonly store: OperatorStore;
  private readonly now: () => number;
  private readonly tickMs: number;
  private readonly pokeDelayMs: number;
  private readonly exactLimit: number;
  private readonly log: CampaignLog;
  private timer: NodeJS.Timeout | undefined;
  private active = false;
  private ticking: Promise<void> | null = null;
  private again = false;
  /** What was last emitted per unfinished campaign (state + counters), to emit changes only. */
  private readonly last = new Map<string, string>();
  /** Campaigns known to have executed more than their abort minimum (see recordOutcome). */
  private readonly pastMinimum = new Set<string>();
  /** Campaigns known to have executed at least `exactLimit` jobs: the driver's tick decides their abort. */
  private readonly pastExact = new Set<string>();

  constructor(private readonly o: CampaignEngineOptions) {
    super();
    this.store = o.store;
    this.now = o.now ?? Date.now;
    this.tickMs = o.tickMs ?? 1000;
    this.pokeDelayMs = o.pokeDelayMs ?? 50;
    this.exactLimit = o.exactLimit ?? 100_000;
    this.log = o.log ?? SILENT;
    this.setMaxListeners(0);
  }

  // ---- API

  /** Validates the request, resolves the selector to targets and stores the campaign (running). */
  async create(body: JsonObject, principal: Principal): Promise<CampaignSnapshot> {
    const req = parseCampaignRequest(body);
    const spec = JOB_SPECS[req.jobKind];
    if (!hasRole(principal, spec.role)) throw new OpError(OpErrorCode.forbidden, `a '${req.kind}' campaign needs the ${spec.role} role; this token is ${principal.role}`);
    let params = req.params;
    if (req.jobKind === 'unblock-pin' && params['newPin'] === true) params = { ...params, requestedBy: principal.tokenId };
    const targets = await this.resolve(req.selector, req.jobKind);
    const now = this.now();
    const row: CampaignRow = {
      id: randomUUID(),
      name: req.name,
      kind: req.kind,
      jobKind: req.jobKind,
      selector: selectorJson(req.selector),
      params,
      ratePerMinute: req.ratePerMinute,
      abortRule: { minExecuted: req.abort.minExecuted, failurePercent: req.abort.failurePercent },
      state: 'running',
      abortReason: null,
      abortStats: null,
      // the first second's burst is available at once
      nextReleaseAt: Math.floor(now - (burstOf(req.ratePerMinute) - 1) * (WINDOW_MS / req.ratePerMinute)),
      createdBy: principal.name,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
    };
    await this.store.tx(async (t) => {
      await t.insertCampaign(row);
      await t.insertCampaignTargets(row.id, targets, 1);
      await t.addEvent({ at: now, actor: principal.name, kind: 'campaign.created', cardId: null, subject: row.id, details: { kind: req.kind, targets: targets.length } });
    });
    this.log.info({ campaign: row.id, kind: row.kind, targets: targets.length }, 'campaign created');
    this.poke();
    return this.snapshot(row.id) as Promise<CampaignSnapshot>;
  }

  async snapshot(id: string): Promise<CampaignSnapshot | null> {
    const row = await this.store.campaignById(id);
    if (!row) return null;
    return { row, counters: await this.store.campaignCounters(id) };
  }

  async view(id: string): Promise<JsonObject> {
    const s = await this.snapshot(id);
    if (!s) throw new OpError(OpErrorCode.unknownCampaign, `no campaign ${id}`);
    return campaignView(s.row, s.counters);
  }

  /** running → paused: nothing more is released; released jobs go on. */
  pause(id: string, actor: string): Promise<CampaignSnapshot> {
    return this.transition(id, actor, 'paused', ['running'], async () => undefined);
  }

  /** paused → running (the bucket starts afresh: no catch-up burst). */
  resume(id: string, actor: string): Promise<CampaignSnapshot> {
    return this.transition(id, actor, 'running', ['paused'], async (t, now) => {
      await t.updateCampaign(id, { nextReleaseAt: now }, now);
    });
  }

  /** running/paused → canceled: pending targets skipped, queued jobs canceled; running jobs finish. */
  cancel(id: string, actor: string): Promise<CampaignSnapshot> {
    return this.transition(id, actor, 'canceled', ['running', 'paused'], async (t, now) => {
      await t.skipPendingCampaignTargets(id, 'campaign canceled');
      await t.cancelQueuedCampaignJobs(id, now);
      await t.updateCampaign(id, { finishedAt: now }, now);
    });
  }

  // ---- driver

  start(): void {
    if (this.active) return;
    this.active = true;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.active = false;
    clearTimeout(this.timer);
    await this.ticking;
  }

  /** Runs a tick soon (a campaign job finished, a campaign was created or resumed). */
  poke(): void {
    if (!this.active) return;
    if (this.ticking) this.again = true;
    else this.schedule(this.pokeDelayMs);
  }

  /** One pass over the unfinished campaigns: decisions for each, then progress. */
  async tick(): Promise<void> {
    const ids = await this.store.campaignIdsInState(['running', 'paused']);
    const seen = new Set(ids);
    for (const id of ids) {
      // a rate above one step's cap: more steps now, each still bounded by the bucket and window
      while ((await this.step(id)) === MAX_RELEASES_PER_STEP && this.active);
    }
    // Campaigns that ended elsewhere (another node, or between two ticks): their final view.
    for (const id of [...this.last.keys()]) if (!seen.has(id)) await this.publish(id);
  }

  /**
   * One decision about one campaign, in one transaction under its row lock: abort, complete, or
   * release what the rate allows. Returns how many jobs it released.
   */
  async step(id: string): Promise<number> {
    const now = this.now();
    const released = await this.store.tx(async (t) => {
      const c = await t.lockCampaign(id);
      if (!c || (c.state !== 'running' && c.state !== 'paused')) return 0;
      const k = await t.campaignCounters(id);
      if (await this.abortIfDue(t, c, k, now)) return 0;
      if (c.state !== 'running') return 0;
      if (k.pending === 0) {
        if (k.queued === 0 && k.running === 0) {
          await t.updateCampaign(id, { state: 'completed', finishedAt: now }, now);
          await t.addEvent({ at: now, actor: 'campaigns', kind: 'campaign.completed', cardId: null, subject: id, details: { ...k } });
        }
        return 0;
      }
      const inWindow = await t.campaignReleasesSince(id, now - WINDOW_MS + 1);
      const may = Math.min(allowance(c.ratePerMinute, c.nextReleaseAt, now, inWindow), MAX_RELEASES_PER_STEP);
      if (may <= 0) return 0;
      const spec = JOB_SPECS[c.jobKind as JobKind];
      let n = 0;
      for (const target of await t.pendingCampaignTargets(id, may)) {
        const card = await t.cardById(target.cardId);
        if (!card || !spec.states.includes(card.lifecycle)) {
          await t.settleCampaignTarget(id, target.cardId, { state: 'skipped', at: now, note: card ? `card is ${card.lifecycle}` : 'card gone' });
          continue;
        }
        const key = `campaign:${id}:${target.cardId}`;
        const job =
          (await t.jobByIdempotencyKey(key)) ??
          (await t.insertJob({
            id: randomUUID(),
            cardId: card.id,
            campaignId: id,
            kind: c.jobKind,
            params: c.params,
            maxAttempts: spec.maxAttempts,
            deadlineAt: now + spec.deadlineMs,
            idempotencyKey: key,
            createdBy: c.createdBy,
            createdAt: now,
          }));
        if (!(await t.settleCampaignTarget(id, target.cardId, { state: 'released', jobId: job.id, at: now }))) {
          throw new OpError(OpErrorCode.internal, `campaign ${id}: target ${target.cardId} was settled by someone else under the campaign lock`);
        }
        n++;
      }
      await t.updateCampaign(id, { nextReleaseAt: nextReleaseAfter(c.ratePerMinute, c.nextReleaseAt, now, n) }, now);
      return n;
    });
    if (released > 0) this.o.onRelease?.();
    await this.publish(id);
    return released;
  }

  /**
   * Writes a campaign job's outcome (`write`, the runner's guarded finish or expiry; `failed` for a
   * failure or time-out) in one transaction with the abort decision, under the campaign's row lock
   * (taken first, the order every campaign transaction uses): the outcome that makes the rule hold
   * aborts the campaign before any runner can claim another of its queued jobs. The count it reads
   * is bounded (`exactLimit` executed jobs); beyond it the driver's tick decides, and the campaign's
   * outcomes, failures too, are written without the lock or the count. A success after
   * the minimum cannot make the rule hold (it only lowers the failure share), so once a campaign is
   * past its minimum (a monotonic fact, remembered here) its successes are written as they are,
   * without the lock. Jobs of no campaign are written as they are.
   */
  async recordOutcome(job: JobRow, write: (t: OperatorStore) => Promise<boolean>, failed: boolean): Promise<boolean> {
    const id = job.campaignId;
    if (!id || this.pastExact.has(id) || (!failed && this.pastMinimum.has(id))) return write(this.store);
    const now = this.now();
    return this.store.tx(async (t) => {
      const c = await t.lockCampaign(id);
      const ok = await write(t);
      if (!ok || !c || (c.state !== 'running' && c.state !== 'paused')) return ok;
      const k = await t.campaignOutcomes(id, this.exactLimit);
      if (!k.exact) this.remember(this.pastExact, id);
      if (!k.exact || k.succeeded + k.failed > abortRuleOf(c).minExecuted) this.remember(this.pastMinimum, id);
      // the full counters are read only when the rule holds (abortStats)
      if (k.exact && ruleHolds(c, k)) await this.abortIfDue(t, c, await t.campaignCounters(id), now);
      return ok;
    });
  }

  private remember(set: Set<string>, id: string): void {
    if (set.size >= MAX_REMEMBERED) set.clear(); // only a shortcut: forgetting costs a count
    set.add(id);
  }

  /**
   * Inside a transaction holding the campaign's row lock: aborts the campaign when its rule holds
   * (its pending targets skipped, its queued jobs canceled); returns whether it did.
   */
  private async abortIfDue(t: OperatorStore, c: CampaignRow, k: CampaignCounters, now: number): Promise<boolean> {
    if (!ruleHolds(c, k)) return false;
    const executed = k.succeeded + k.failed;
    const rule = abortRuleOf(c);
    const id = c.id;
    const reason = `${k.failed} of ${executed} executed jobs failed (${((k.failed * 100) / executed).toFixed(1)} % ≥ ${rule.failurePercent} % after at least ${rule.minExecuted})`;
    const skipped = await t.skipPendingCampaignTargets(id, 'campaign aborted');
    const canceled = await t.cancelQueuedCampaignJobs(id, now);
    await t.updateCampaign(id, { state: 'aborted', abortReason: reason, abortStats: { ...k }, finishedAt: now }, now);
    await t.addEvent({ at: now, actor: 'campaigns', kind: 'campaign.aborted', cardId: null, subject: id, details: { reason, executed, failed: k.failed, skipped, canceled } });
    this.log.info({ campaign: id, executed, failed: k.failed, skipped, canceled }, 'campaign aborted');
    return true;
  }

  /** Emits the campaign's view when its state or counters changed since the last emission. */
  private async publish(id: string): Promise<void> {
    const s = await this.snapshot(id);
    if (!s) return;
    const key = JSON.stringify([s.row.state, s.counters]);
    const final = FINAL_CAMPAIGN_STATES.includes(s.row.state);
    if (final) this.last.delete(id);
    else if (this.last.get(id) === key) return;
    else this.last.set(id, key);
    this.emit('progress', campaignView(s.row, s.counters));
  }

  private async transition(
    id: string,
    actor: string,
    to: CampaignState,
    from: readonly CampaignState[],
    extra: (t: OperatorStore, now: number) => Promise<void>,
  ): Promise<CampaignSnapshot> {
    const now = this.now();
    await this.store.tx(async (t) => {
      const c = await t.lockCampaign(id);
      if (!c) throw new OpError(OpErrorCode.unknownCampaign, `no campaign ${id}`);
      if (!from.includes(c.state)) throw new OpError(OpErrorCode.campaignState, `campaign ${id} is ${c.state}: cannot go to ${to} (only from ${from.join(' or ')})`);
      await t.updateCampaign(id, { state: to }, now);
      await extra(t, now);
      await t.addEvent({ at: now, actor, kind: `campaign.${to}`, cardId: null, subject: id, details: {} });
    });
    this.log.info({ campaign: id, state: to, actor }, 'campaign state changed');
    await this.publish(id);
    if (to === 'running') this.poke();
    return (await this.snapshot(id))!;
  }

  /** The selector's cards (in UID order) in which the job kind is allowed. */
  private async resolve(sel: CampaignSelector, jobKind: JobKind): Promise<string[]> {
    const states = JOB_SPECS[jobKind].states;
    const labels = Object.entries(sel.labels ?? {});
    const [first] = labels;
    const filter = {
      ...(sel.state ? { lifecycle: sel.state } : {}),
      ...(first ? { label: `${first[0]}=${first[1]}` } : {}),
      ...(sel.expiringBefore !== undefined ? { expiringBefore: sel.expiringBefore } : {}),
    };
    const ids: string[] = [];
    let after: Uint8Array | null = null;
    for (;;) {
      const page = await this.store.listCards(filter, after, SELECT_PAGE);
      for (const card of page) {
        if (!states.includes(card.lifecycle)) continue;
        if (!labels.every(([k, v]) => card.labels[k] === v)) continue;
        ids.push(card.id);
        if (ids.length > MAX_TARGETS) throw new OpError(OpErrorCode.badRequest, `the selector matches more than ${MAX_TARGETS} cards: narrow it`);
      }
      if (page.length < SELECT_PAGE) break;
      after = page[page.length - 1]!.uid;
    }
    return ids;
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.loop(), ms);
    this.timer.unref?.();
  }

  private async loop(): Promise<void> {
    if (!this.active || this.ticking) return;
    this.again = false;
    this.ticking = this.tick().catch((e: unknown) => this.log.error({ err: e }, 'campaign tick failed'));
    await this.ticking;
    this.ticking = null;
    if (this.active) this.schedule(this.again ? this.pokeDelayMs : this.tickMs);
  }
}
