/**
 * operator/api/pagination: opaque cursors for keyset pagination. A cursor is base64url JSON
 * `{ v: 1, k: <last sort key>, f: <filter fingerprint> }`; it is refused (ERR_OP_BAD_CURSOR) if it
 * does not decode or was made for other filters. imports errors, pki/x509.
 */
import { OpError, OpErrorCode } from '../errors.js';
import { sha256 } from '../pki/x509.js';

export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 100;

function filterPrint(filter: Record<string, unknown>): string {
  const stable = Object.keys(filter)
    .filter((k) => filter[k] !== undefined && filter[k] !== null)
    .sort()
    .map((k) => `${k}=${String(filter[k])}`)
    .join('&');
  return Buffer.from(sha256(Buffer.from(stable, 'utf8')).subarray(0, 6)).toString('base64url');
}

export function encodeCursor(key: string | number, filter: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ v: 1, k: key, f: filterPrint(filter) }), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | null, filter: Record<string, unknown>): string | number | null {
  if (cursor === null || cursor === '') return null;
  const bad = (why: string): never => {
    throw new OpError(OpErrorCode.badCursor, `invalid cursor: ${why}`);
  };
  if (cursor.length > 512 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return bad('not one of ours');
  let v: { v?: unknown; k?: unknown; f?: unknown };
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as typeof v;
  } catch {
    return bad('not one of ours');
  }
  if (v.v !== 1 || (typeof v.k !== 'string' && typeof v.k !== 'number')) return bad('not one of ours');
  if (v.f !== filterPrint(filter)) return bad('it was made for other filters; start again without a cursor');
  return v.k;
}
