/**
 * operator/api/campaign-routes: the campaign endpoints of CONTRACT-16 — create (Idempotency-Key
 * honoured), list, show, the campaign's jobs, pause/resume/cancel, and the progress stream
 * (text/event-stream: `event: progress` with the campaign view at once, then on every change,
 * coalesced to at most 4 per second; `: keep-alive` every 15 s; ends after a final state).
 * imports campaigns/engine, campaigns/view, api/http, api/pagination, api/views, store/types, errors.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OpError, OpErrorCode } from '../errors.js';
import type { Operator } from '../operator.js';
import { CampaignState, FINAL_CAMPAIGN_STATES, type JsonObject } from '../store/types.js';
import { campaignView } from '../campaigns/view.js';
import { queryInt } from './http.js';
import { decodeCursor, DEFAULT_LIMIT, encodeCursor, MAX_LIMIT } from './pagination.js';
import type { Route } from './routes.js';
import { jobView } from './views.js';

const ID = '([0-9a-fA-F-]{36})';
/** At most 4 progress events per second per stream. */
export const SSE_MIN_INTERVAL_MS = 250;
export const SSE_KEEPALIVE_MS = 15_000;

export function campaignRoutes(op: Operator): Route[] {
  const store = op.store;
  const engine = op.campaigns;
  const exists = async (id: string): Promise<void> => {
    if (!(await store.campaignById(id.toLowerCase()))) throw new OpError(OpErrorCode.unknownCampaign, `no campaign ${id}`);
  };
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/campaigns$/,
      name: 'campaigns.create',
      role: 'operator',
      createsWork: true,
      bodyLimit: 256 * 1024,
      handler: async (r) => {
        const s = await engine.create(r.body, r.principal!);
        return { status: 201, body: campaignView(s.row, s.counters), headers: { location: `/v1/campaigns/${s.row.id}` } };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/campaigns$/,
      name: 'campaigns.list',
      role: 'viewer',
      handler: async (r) => {
        const state = r.query.get('state') ?? undefined;
        if (state !== undefined && !(Object.values(CampaignState) as string[]).includes(state)) {
          throw new OpError(OpErrorCode.badRequest, `state must be one of ${Object.values(CampaignState).join(', ')}`);
        }
        const limit = queryInt(r.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
        const filter = { state };
        const k = decodeCursor(r.query.get('cursor'), filter);
        let after: { createdAt: number; id: string } | null = null;
        if (k !== null) {
          const m = typeof k === 'string' ? /^(\d+):([0-9a-f-]{36})$/.exec(k) : null;
          if (!m) throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
          after = { createdAt: Number(m[1]), id: m[2]! };
        }
        const rows = await store.listCampaigns(state as CampaignState | undefined, after, limit + 1);
        const page = rows.slice(0, limit);
        const items: JsonObject[] = [];
        for (const c of page) items.push(campaignView(c, await store.campaignCounters(c.id)));
        const last = page[page.length - 1];
        const next = rows.length > limit && last ? encodeCursor(`${last.createdAt}:${last.id}`, filter) : null;
        return { status: 200, body: { items, next, nextCursor: next } };
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/campaigns/${ID}$`),
      name: 'campaigns.get',
      role: 'viewer',
      handler: async (r) => {
        const s = await engine.snapshot(r.params[0]!.toLowerCase());
        if (!s) throw new OpError(OpErrorCode.unknownCampaign, `no campaign ${r.params[0]}`);
        return { status: 200, body: campaignView(s.row, s.counters) };
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/campaigns/${ID}/jobs$`),
      name: 'campaigns.jobs',
      role: 'viewer',
      handler: async (r) => {
        const id = r.params[0]!.toLowerCase();
        await exists(id);
        const limit = queryInt(r.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
        const filter = { campaign: id };
        const after = decodeCursor(r.query.get('cursor'), filter);
        if (after !== null && typeof after !== 'number') throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
        const rows = await store.campaignJobs(id, after, limit + 1);
        const page = rows.slice(0, limit);
        const uids = new Map<string, Uint8Array>();
        for (const j of page) {
          if (uids.has(j.cardId)) continue;
          const c = await store.cardById(j.cardId);
          if (c) uids.set(j.cardId, c.uid);
        }
        const next = rows.length > limit ? encodeCursor(page[page.length - 1]!.seq, filter) : null;
        return { status: 200, body: { items: page.map((j) => jobView(j, uids.get(j.cardId) ?? null)), next, nextCursor: next } };
      },
    },
    ...(['pause', 'resume', 'cancel'] as const).map(
      (action): Route => ({
        method: 'POST',
        pattern: new RegExp(`^/v1/campaigns/${ID}/${action}$`),
        name: `campaigns.${action}`,
        role: 'operator',
        handler: async (r) => {
          if (Object.keys(r.body).length > 0) throw new OpError(OpErrorCode.badRequest, `${action} takes no parameters`);
          const id = r.params[0]!.toLowerCase();
          const s = await engine[action](id, r.principal!.name);
          return { status: 200, body: campaignView(s.row, s.counters) };
        },
      }),
    ),
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/campaigns/${ID}/events$`),
      name: 'campaigns.events',
      role: 'viewer',
      handler: async (r) => {
        const id = r.params[0]!.toLowerCase();
        const first = await engine.view(id);
        return { status: 200, stream: (req, res) => progressStream(op, id, first, req, res) };
      },
    },
  ];
}

/** The server-sent events of one campaign until it reaches a final state or the client leaves. */
function progressStream(op: Operator, id: string, first: JsonObject, _req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  let lastSent = 0;
  let pending: JsonObject | null = null;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const isFinal = (v: JsonObject): boolean => FINAL_CAMPAIGN_STATES.includes(v['state'] as CampaignState);
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    clearInterval(keepAlive);
    op.campaigns.off('progress', onProgress);
    res.end();
  };
  const write = (v: JsonObject): void => {
    if (closed) return;
    lastSent = Date.now();
    res.write(`event: progress\ndata: ${JSON.stringify(v)}\n\n`);
    if (isFinal(v)) close();
  };
  const flush = (): void => {
    timer = undefined;
    const v = pending;
    pending = null;
    if (v) write(v);
  };
  const onProgress = (v: JsonObject): void => {
    if (v['id'] !== id || closed) return;
    pending = v;
    // a final state goes out at once; other changes at most every SSE_MIN_INTERVAL_MS (latest wins)
    const wait = isFinal(v) ? 0 : SSE_MIN_INTERVAL_MS - (Date.now() - lastSent);
    if (wait <= 0) {
      clearTimeout(timer);
      flush();
    } else if (!timer) timer = setTimeout(flush, wait);
  };
  const keepAlive = setInterval(() => {
    if (!closed) res.write(': keep-alive\n\n');
  }, SSE_KEEPALIVE_MS);
  keepAlive.unref();
  op.campaigns.on('progress', onProgress);
  // (not req 'close': it fires once the request was read, not when the client leaves)
  res.on('close', close);
  write(first);
  // a change between the first read and the subscription (even the final state) is not missed
  void op.campaigns.view(id).then(
    (v) => {
      if (JSON.stringify([v['state'], v['counters']]) !== JSON.stringify([first['state'], first['counters']])) onProgress(v);
    },
    () => undefined,
  );
}
