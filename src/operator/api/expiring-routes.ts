/**
 * operator/api/expiring-routes: `GET /v1/cards?expiring_before=T` — the cards whose earliest good
 * certificate ends before T, soonest first (store listExpiringCards: one index range, a page costs
 * its own rows at any fleet size). Each item is the card view plus `certificateNotAfter` (the end of
 * that certificate); the cursor's key is `<notAfter ms>.<card id>` of the page's last item, bound to
 * the filters like every cursor (api/pagination). imports api/pagination, api/views, errors,
 * store/types.
 */
import { OpError, OpErrorCode } from '../errors.js';
import type { CardLifecycle, JsonObject, OperatorStore } from '../store/types.js';
import type { ExpiringCardsCursor } from '../store/expiring-cards.js';
import { decodeCursor, encodeCursor } from './pagination.js';
import { cardView } from './views.js';

export interface ExpiringCardsQuery {
  readonly state: string | undefined;
  readonly label: string | undefined;
  readonly expiringBefore: number;
}

const CURSOR_KEY = /^(-?\d{1,16})\.([A-Za-z0-9_-]{1,64})$/;

/** One page of the expiring listing: `{ items, nextCursor }`. */
export async function expiringCardsPage(store: OperatorStore, q: ExpiringCardsQuery, cursor: string | null, limit: number): Promise<JsonObject> {
  const filter = { state: q.state, label: q.label, expiringBefore: q.expiringBefore };
  const key = decodeCursor(cursor, filter);
  let after: ExpiringCardsCursor | null = null;
  if (key !== null) {
    const m = typeof key === 'string' ? CURSOR_KEY.exec(key) : null;
    if (!m || !Number.isSafeInteger(Number(m[1]))) throw new OpError(OpErrorCode.badCursor, 'invalid cursor');
    after = { notAfter: Number(m[1]), cardId: m[2]! };
  }
  const rows = await store.listExpiringCards(
    { before: q.expiringBefore, ...(q.state !== undefined ? { lifecycle: q.state as CardLifecycle } : {}), ...(q.label !== undefined ? { label: q.label } : {}) },
    after,
    limit + 1,
  );
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const next = rows.length > limit && last ? encodeCursor(`${last.notAfter}.${last.card.id}`, filter) : null;
  return { items: page.map((r) => ({ ...cardView(r.card), certificateNotAfter: new Date(r.notAfter).toISOString() })), nextCursor: next };
}
