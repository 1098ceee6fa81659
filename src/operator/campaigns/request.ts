/**
 * operator/campaigns/request: a campaign creation request (POST /v1/campaigns body, CONTRACT-16) —
 * name, kind (mapped to a card job kind of jobs/kinds.ts, whose params validation, role and card
 * states apply), selector (card lifecycle state, labels, certificate expiring before), rollout rate
 * and abort criteria — validated into what the store keeps. imports jobs/kinds, store/types, errors.
 */
import { OpError, OpErrorCode } from '../errors.js';
import { JOB_SPECS, type JobKind } from '../jobs/kinds.js';
import { CardLifecycle, type JsonObject } from '../store/types.js';

/** Campaign kinds (the API's names) → the card job each target gets. */
export const CAMPAIGN_KINDS = {
  rekey: 'rekey',
  lock: 'lock',
  'push-anchors': 'push-client-cas',
  'push-deny-list': 'push-deny-list',
  'pin-reset': 'unblock-pin',
} as const satisfies Record<string, JobKind>;
export type CampaignKind = keyof typeof CAMPAIGN_KINDS;

export function isCampaignKind(v: unknown): v is CampaignKind {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(CAMPAIGN_KINDS, v);
}

export interface CampaignSelector {
  readonly state?: CardLifecycle;
  readonly labels?: Readonly<Record<string, string>>;
  /** Cards whose current good certificate expires before this time (epoch ms). */
  readonly expiringBefore?: number;
}

export interface CampaignRequest {
  readonly name: string;
  readonly kind: CampaignKind;
  readonly jobKind: JobKind;
  readonly selector: CampaignSelector;
  /** Validated by the job kind. */
  readonly params: JsonObject;
  readonly ratePerMinute: number;
  readonly abort: { readonly minExecuted: number; readonly failurePercent: number };
}

/** Upper bounds that keep one request's work bounded. */
export const MAX_RATE_PER_MINUTE = 600_000;
const MAX_LABELS = 16;

function bad(message: string): never {
  throw new OpError(OpErrorCode.badRequest, message);
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseSelector(v: unknown): CampaignSelector {
  if (v === undefined) return {};
  if (!isObject(v)) bad('selector must be an object');
  for (const k of Object.keys(v)) if (!['state', 'labels', 'expiringBefore'].includes(k)) bad(`unknown selector field '${k}' (allowed: state, labels, expiringBefore)`);
  const out: { state?: CardLifecycle; labels?: Record<string, string>; expiringBefore?: number } = {};
  if (v['state'] !== undefined) {
    if (typeof v['state'] !== 'string' || !(Object.values(CardLifecycle) as string[]).includes(v['state'])) bad(`selector.state must be one of ${Object.values(CardLifecycle).join(', ')}`);
    out.state = v['state'] as CardLifecycle;
  }
  if (v['labels'] !== undefined) {
    const l = v['labels'];
    if (!isObject(l) || Object.keys(l).length > MAX_LABELS) bad(`selector.labels must be an object of at most ${MAX_LABELS} labels`);
    for (const [k, val] of Object.entries(l)) {
      if (!/^[A-Za-z0-9_.\-/]{1,63}$/.test(k) || typeof val !== 'string' || val.length > 256) bad('selector.labels: keys [A-Za-z0-9_.-/]{1,63}, string values of at most 256 characters');
    }
    out.labels = l as Record<string, string>;
  }
  if (v['expiringBefore'] !== undefined) {
    const t = typeof v['expiringBefore'] === 'string' ? Date.parse(v['expiringBefore']) : NaN;
    if (!Number.isFinite(t)) bad('selector.expiringBefore must be an ISO 8601 time');
    out.expiringBefore = t;
  }
  return out;
}

/** The selector as stored and shown (times as ISO strings). */
export function selectorJson(s: CampaignSelector): JsonObject {
  return {
    ...(s.state ? { state: s.state } : {}),
    ...(s.labels ? { labels: { ...s.labels } } : {}),
    ...(s.expiringBefore !== undefined ? { expiringBefore: new Date(s.expiringBefore).toISOString() } : {}),
  };
}

export function parseCampaignRequest(body: JsonObject): CampaignRequest {
  for (const k of Object.keys(body)) if (!['name', 'kind', 'selector', 'params', 'ratePerMinute', 'abort'].includes(k)) bad(`unknown field '${k}' (allowed: name, kind, selector, params, ratePerMinute, abort)`);
  const name = body['name'];
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200) bad('name must be a non-empty string of at most 200 characters');
  const kind = body['kind'];
  if (!isCampaignKind(kind)) bad(`kind must be one of ${Object.keys(CAMPAIGN_KINDS).join(', ')}`);
  const jobKind = CAMPAIGN_KINDS[kind];
  const selector = parseSelector(body['selector']);
  const p = body['params'] ?? {};
  if (!isObject(p)) bad('params must be an object');
  const params = JOB_SPECS[jobKind].params(p);
  const rate = body['ratePerMinute'];
  if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < 1 || rate > MAX_RATE_PER_MINUTE) bad(`ratePerMinute must be an integer 1..${MAX_RATE_PER_MINUTE}`);
  const a = body['abort'];
  if (!isObject(a)) bad('abort must be { minExecuted, failurePercent }');
  for (const k of Object.keys(a)) if (k !== 'minExecuted' && k !== 'failurePercent') bad(`unknown abort field '${k}' (allowed: minExecuted, failurePercent)`);
  const minExecuted = a['minExecuted'];
  const failurePercent = a['failurePercent'];
  if (typeof minExecuted !== 'number' || !Number.isInteger(minExecuted) || minExecuted < 1 || minExecuted > 10_000_000) bad('abort.minExecuted must be an integer >= 1');
  if (typeof failurePercent !== 'number' || !Number.isFinite(failurePercent) || failurePercent < 0 || failurePercent > 100) bad('abort.failurePercent must be a number 0..100');
  return { name: name.trim(), kind, jobKind, selector, params, ratePerMinute: rate, abort: { minExecuted, failurePercent } };
}
