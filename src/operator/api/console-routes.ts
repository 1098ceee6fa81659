/**
 * operator/api/console-routes: the REST endpoints the web console needs beyond the others (issue
 * #16), usable by any API client —
 *   GET /v1/fleet?state=&label=&uid_prefix=&limit=&cursor= (viewer): cards in UID order, keyset
 *     pagination (`nextCursor`), and on the first page (no cursor) `counts`: cards by state over the
 *     whole registry, plus `total`. Both walk indexes (store/fleet-sql.ts), so they stay fast on a
 *     large registry; `serverMs` is the time the handler took.
 *   GET /v1/cards/{uid}/audit-log?after=&limit= (viewer): the card's audit-log entries the operator
 *     verified (read-audit), oldest first, and the last verified signed head.
 * imports api/http, api/pagination, api/views, store/types, errors, operator.
 */
import { fromHex, toHex } from '../../bytes/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import type { Operator } from '../operator.js';
import { CardLifecycle, type CardRow } from '../store/types.js';
import { queryInt } from './http.js';
import { decodeCursor, DEFAULT_LIMIT, encodeCursor, MAX_LIMIT } from './pagination.js';
import type { Route } from './routes.js';
import { cardView } from './views.js';

export function consoleRoutes(op: Operator): Route[] {
  const store = op.store;
  return [
    {
      method: 'GET',
      pattern: /^\/v1\/fleet$/,
      name: 'fleet.list',
      role: 'viewer',
      handler: async (r) => {
        const started = process.hrtime.bigint();
        const state = r.query.get('state') || undefined;
        if (state !== undefined && !(Object.values(CardLifecycle) as string[]).includes(state)) {
          throw new OpError(OpErrorCode.badRequest, `state must be one of ${Object.values(CardLifecycle).join(', ')}`);
        }
        const label = r.query.get('label') || undefined;
        if (label !== undefined && !/^[A-Za-z0-9_.-]{1,64}(=.{0,256})?$/.test(label)) throw new OpError(OpErrorCode.badRequest, 'label must be key or key=value');
        const prefixText = r.query.get('uid_prefix') || undefined;
        if (prefixText !== undefined && !/^[0-9a-fA-F]{1,64}$/.test(prefixText)) throw new OpError(OpErrorCode.badRequest, 'uid_prefix must be 1–64 hex digits');
        const uidPrefix = prefixText?.toLowerCase();
        const limit = queryInt(r.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
        const filter = { state, label, uidPrefix };
        const cursor = r.query.get('cursor');
        const after = decodeCursor(cursor, filter);
        if (after !== null && (typeof after !== 'string' || !/^([0-9a-f]{2})+$/.test(after))) throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
        const [rows, counts] = await Promise.all([
          store.fleetPage({ lifecycle: state as CardRow['lifecycle'] | undefined, label, uidPrefix }, after === null ? null : fromHex(after as string), limit + 1),
          after === null ? store.countCardsByLifecycle() : Promise.resolve(null),
        ]);
        const page = rows.slice(0, limit);
        const next = rows.length > limit ? encodeCursor(toHex(page[page.length - 1]!.uid), filter) : null;
        const body = {
          items: page.map(cardView),
          nextCursor: next,
          ...(counts ? { counts, total: Object.values(counts).reduce((a, b) => a + b, 0) } : {}),
          serverMs: Number(process.hrtime.bigint() - started) / 1e6,
        };
        return { status: 200, body };
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/cards\/([0-9a-fA-F]{2,64})\/audit-log$/,
      name: 'cards.auditLog',
      role: 'viewer',
      handler: async (r) => {
        const uidText = r.params[0]!;
        if (uidText.length % 2 !== 0) throw new OpError(OpErrorCode.badRequest, `'${uidText}' is not a card UID (hex)`);
        const card = await store.cardByUid(fromHex(uidText.toLowerCase()));
        if (!card) throw new OpError(OpErrorCode.unknownCard, `no card ${uidText.toLowerCase()}`);
        const after = queryInt(r.query, 'after', -1, Number.MAX_SAFE_INTEGER, -1);
        const limit = queryInt(r.query, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT);
        const [entries, head] = await Promise.all([store.auditEntriesOf(card.id, after, limit + 1), store.auditHeadOf(card.id)]);
        const page = entries.slice(0, limit);
        return {
          status: 200,
          body: {
            items: page.map((e) => ({ seq: e.seq, type: e.type, body: toHex(e.body), receivedAt: new Date(e.receivedAt).toISOString() })),
            next: entries.length > limit ? String(page[page.length - 1]!.seq) : null,
            head: head ? { seq: head.seq, verified: head.verified, cardTime: head.time === 0 ? null : new Date(head.time * 1000).toISOString(), receivedAt: new Date(head.receivedAt).toISOString() } : null,
          },
        };
      },
    },
  ];
}
