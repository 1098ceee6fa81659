/**
 * operator/store/rows: reading typed values out of a result row the same way on both back ends
 * (PostgreSQL's pg returns BIGINT columns as strings, SQLite numbers: `n`/`nn` make them numbers),
 * and the row mappers more than one store file needs. imports store/driver, store/types (types).
 */
import type { SqlRow } from './driver.js';
import type { IdentityRow, JsonObject } from './types.js';

export const s = (r: SqlRow, k: string): string => r[k] as string;
export const sn = (r: SqlRow, k: string): string | null => (r[k] ?? null) as string | null;
export const n = (r: SqlRow, k: string): number => Number(r[k]);
export const nn = (r: SqlRow, k: string): number | null => (r[k] === null || r[k] === undefined ? null : Number(r[k]));
export const b = (r: SqlRow, k: string): Uint8Array => r[k] as Uint8Array;
export const bn = (r: SqlRow, k: string): Uint8Array | null => (r[k] ?? null) as Uint8Array | null;
export const j = (r: SqlRow, k: string): JsonObject => (r[k] === null || r[k] === undefined ? {} : (JSON.parse(r[k] as string) as JsonObject));
export const jn = (r: SqlRow, k: string): JsonObject | null => (r[k] === null || r[k] === undefined ? null : (JSON.parse(r[k] as string) as JsonObject));

export function identityRow(r: SqlRow): IdentityRow {
  return {
    id: s(r, 'id'),
    cardId: s(r, 'card_id'),
    slot: n(r, 'slot'),
    alg: s(r, 'alg'),
    spkiDer: b(r, 'spki_der'),
    spkiSha256: b(r, 'spki_sha256'),
    state: s(r, 'state'),
    attestedAt: nn(r, 'attested_at'),
    createdAt: n(r, 'created_at'),
    deleteAfter: nn(r, 'delete_after'),
    updatedAt: nn(r, 'updated_at'),
  };
}
