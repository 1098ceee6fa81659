/**
 * operator/api/finding-routes: the audits' REST endpoints (CONTRACT-16) — findings (list, one,
 * resolve), a card's findings, and an audit run on demand. imports audits/, api/http,
 * api/pagination, store/types, errors, bytes/.
 */
import { fromHex } from '../../bytes/index.js';
import { findingView, isCheckName, CHECK_NAMES, type CheckName } from '../audits/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { Operator } from '../operator.js';
import type { FindingFilter, FindingResolution, FindingStatus, JsonObject } from '../store/types.js';
import { queryInt } from './http.js';
import { decodeCursor, DEFAULT_LIMIT, encodeCursor, MAX_LIMIT } from './pagination.js';
import type { Route, RouteRequest } from './routes.js';

const RESOLUTIONS: readonly Exclude<FindingResolution, 'auto'>[] = ['fixed', 'accepted', 'false-positive'];
const ID = '([0-9a-f-]{36})';

export function findingRoutes(op: Operator): Route[] {
  const store = op.store;

  const cardIdOf = async (uidText: string): Promise<string> => {
    if (!/^([0-9a-fA-F]{2}){1,32}$/.test(uidText)) throw new OpError(OpErrorCode.badRequest, 'card must be a UID (hex)');
    const card = await store.cardByUid(fromHex(uidText.toLowerCase()));
    if (!card) throw new OpError(OpErrorCode.unknownCard, `no card ${uidText.toLowerCase()}`);
    return card.id;
  };

  const list = async (r: RouteRequest, cardText: string | undefined) => {
    const check = r.query.get('check') ?? undefined;
    if (check !== undefined && !isCheckName(check)) throw new OpError(OpErrorCode.badRequest, `check must be one of ${CHECK_NAMES.join(', ')}`);
    const status = r.query.get('status') ?? undefined;
    if (status !== undefined && status !== 'open' && status !== 'resolved') throw new OpError(OpErrorCode.badRequest, 'status must be open or resolved');
    const filter: FindingFilter = { check, status: status as FindingStatus | undefined, cardId: cardText === undefined ? undefined : await cardIdOf(cardText) };
    const limit = queryInt(r.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
    const print = { check, status, card: cardText?.toLowerCase() };
    const key = decodeCursor(r.query.get('cursor'), print);
    let after: { firstSeenAt: number; id: string } | null = null;
    if (key !== null) {
      const m = typeof key === 'string' ? /^(\d+):([0-9a-f-]{36})$/.exec(key) : null;
      if (!m) throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
      after = { firstSeenAt: Number(m[1]), id: m[2]! };
    }
    const rows = await store.listFindings(filter, after, limit + 1);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    const next = rows.length > limit && last ? encodeCursor(`${last.firstSeenAt}:${last.id}`, print) : null;
    return { status: 200, body: { items: page.map(findingView), next } };
  };

  const one = async (id: string) => {
    const f = await store.findingById(id);
    if (!f) throw new OpError(OpErrorCode.unknownFinding, `no finding ${id}`);
    return f;
  };

  return [
    { method: 'GET', pattern: /^\/v1\/findings$/, name: 'findings.list', role: 'viewer', handler: (r) => list(r, r.query.get('card') ?? undefined) },
    { method: 'GET', pattern: new RegExp(`^/v1/findings/${ID}$`), name: 'findings.get', role: 'viewer', handler: async (r) => ({ status: 200, body: findingView(await one(r.params[0]!)) }) },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/findings/${ID}/resolve$`),
      name: 'findings.resolve',
      role: 'operator',
      handler: async (r) => {
        for (const k of Object.keys(r.body)) if (k !== 'resolution') throw new OpError(OpErrorCode.badRequest, `unknown parameter '${k}' (allowed: resolution)`);
        const resolution = r.body['resolution'];
        if (typeof resolution !== 'string' || !(RESOLUTIONS as readonly string[]).includes(resolution)) {
          throw new OpError(OpErrorCode.badRequest, `resolution must be one of ${RESOLUTIONS.join(', ')}`);
        }
        const before = await one(r.params[0]!);
        const now = op.now();
        if (!(await store.resolveFinding(before.id, resolution as Exclude<FindingResolution, 'auto'>, r.principal!.name, now))) {
          throw new OpError(OpErrorCode.findingResolved, `finding ${before.id} is already resolved (${String((await one(before.id)).resolution)})`);
        }
        await store.addEvent({ at: now, actor: r.principal!.name, kind: 'finding.resolved', cardId: before.cardId, subject: before.id, details: { check: before.check, resolution } });
        return { status: 200, body: findingView(await one(before.id)) };
      },
    },
    { method: 'GET', pattern: /^\/v1\/cards\/([0-9a-fA-F]{2,64})\/findings$/, name: 'cards.findings', role: 'viewer', handler: (r) => list(r, r.params[0]!) },
    {
      method: 'POST',
      pattern: /^\/v1\/audits\/run$/,
      name: 'audits.run',
      role: 'operator',
      handler: async (r) => {
        const checks = r.body['checks'];
        if (checks !== undefined && (!Array.isArray(checks) || !checks.every((c) => typeof c === 'string' && isCheckName(c)))) {
          throw new OpError(OpErrorCode.badRequest, `checks must be a list of ${CHECK_NAMES.join(', ')}`);
        }
        const res = (await op.audits.run(checks ? { only: checks as CheckName[] } : {}))!;
        return { status: 200, body: { checks: res.checks as unknown as JsonObject, startedAt: new Date(res.startedAt).toISOString(), finishedAt: new Date(res.finishedAt).toISOString() } };
      },
    },
  ];
}
