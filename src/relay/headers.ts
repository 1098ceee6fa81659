/**
 * relay/headers: format and parse the X-Admin-… header values of setls-remote-admin/1, strictly.
 *
 *   X-Admin-From                  //host/<id>                    id: 1..64 of [A-Za-z0-9._-]
 *   X-Admin-SE-List               //se-id/CUD/<hex>;//se-id/CUD/<hex>…   0..64 distinct cards
 *   X-Admin-Targeted-SE           //se-id/CUD/<hex>              UID 4..32 bytes, hex (upper case sent)
 *   X-Admin-Targeted-Application  //aid/<RID: 10 hex>/<PIX: 0..22 hex>
 *   X-Admin-Next-URI              /admin/v1/s/<43 base64url chars>
 *   X-Admin-Script-Status         ok | unavailable-se | temporarily-unavailable-application |
 *                                 unknown-application | script-format-error | security-error
 *   X-Admin-Resume                true   (absent otherwise)
 *   Retry-After                   delta-seconds 0..3600
 *   Authorization                 Bearer <token: 1..512 visible ASCII>
 *
 * Every parser throws RelayError ERR_RELAY_HEADER naming the header; none echoes more than a short,
 * sanitised prefix of the value. imports bytes/ and relay/.
 */
import { fromHex, toHex } from '../bytes/index.js';
import { RelayError } from './errors.js';
import { NEXT_URI_TOKEN_CHARS, RelayLimits, RelayPath, SCRIPT_STATUSES, type ScriptStatus } from './protocol.js';

const HOST_ID = /^[A-Za-z0-9._-]{1,64}$/;
const HEX_EVEN = /^(?:[0-9A-Fa-f]{2})+$/;
const TOKEN = /^[A-Za-z0-9_-]+$/;
const SE_PREFIX = '//se-id/CUD/';
const HOST_PREFIX = '//host/';
const AID_PREFIX = '//aid/';

function bad(header: string, why: string, value?: string): RelayError {
  const shown = value === undefined ? '' : ` (got '${value.slice(0, 40).replace(/[^\x20-\x7e]/g, '?')}${value.length > 40 ? '…' : ''}')`;
  return new RelayError('ERR_RELAY_HEADER', `${header}: ${why}${shown}`);
}

function hexBytes(header: string, s: string, min: number, max: number, what: string): Uint8Array {
  if (s.length < 2 * min || s.length > 2 * max || !HEX_EVEN.test(s)) throw bad(header, `${what} must be ${min}..${max} bytes of hex`, s);
  return fromHex(s);
}

const hexUpper = (b: Uint8Array): string => toHex(b).toUpperCase();

/** A host id as X-Admin-From carries it. */
export function isHostId(id: string): boolean {
  return typeof id === 'string' && HOST_ID.test(id);
}

export function formatFrom(hostId: string): string {
  if (!isHostId(hostId)) throw bad('X-Admin-From', `a host id is 1..${RelayLimits.maxHostIdChars} of A-Z a-z 0-9 . _ -`, String(hostId));
  return HOST_PREFIX + hostId;
}

export function parseFrom(value: string): string {
  if (!value.startsWith(HOST_PREFIX)) throw bad('X-Admin-From', `expected ${HOST_PREFIX}<host-id>`, value);
  const id = value.slice(HOST_PREFIX.length);
  if (!isHostId(id)) throw bad('X-Admin-From', `a host id is 1..${RelayLimits.maxHostIdChars} of A-Z a-z 0-9 . _ -`, value);
  return id;
}

function checkUid(header: string, uid: Uint8Array): void {
  if (!(uid instanceof Uint8Array) || uid.length < RelayLimits.minUidBytes || uid.length > RelayLimits.maxUidBytes) {
    throw bad(header, `a card UID is ${RelayLimits.minUidBytes}..${RelayLimits.maxUidBytes} bytes`);
  }
}

/** `//se-id/CUD/<UID in upper-case hex>`. */
export function formatSeId(uid: Uint8Array): string {
  checkUid('X-Admin-Targeted-SE', uid);
  return SE_PREFIX + hexUpper(uid);
}

export function parseSeId(value: string, header = 'X-Admin-Targeted-SE'): Uint8Array {
  if (!value.startsWith(SE_PREFIX)) throw bad(header, `expected ${SE_PREFIX}<uid hex>`, value);
  return hexBytes(header, value.slice(SE_PREFIX.length), RelayLimits.minUidBytes, RelayLimits.maxUidBytes, 'a card UID');
}

/** The SE list: distinct UIDs joined by ';' (empty when no card is reachable). */
export function formatSeList(uids: readonly Uint8Array[]): string {
  if (uids.length > RelayLimits.maxCards) throw bad('X-Admin-SE-List', `at most ${RelayLimits.maxCards} cards`);
  const out = uids.map((u) => formatSeId(u));
  if (new Set(out).size !== out.length) throw bad('X-Admin-SE-List', 'a card is listed twice');
  return out.join(';');
}

export function parseSeList(value: string): Uint8Array[] {
  if (value === '') return [];
  const parts = value.split(';');
  if (parts.length > RelayLimits.maxCards) throw bad('X-Admin-SE-List', `at most ${RelayLimits.maxCards} cards`);
  const uids = parts.map((p) => parseSeId(p, 'X-Admin-SE-List'));
  const seen = new Set(uids.map(hexUpper));
  if (seen.size !== uids.length) throw bad('X-Admin-SE-List', 'a card is listed twice');
  return uids;
}

/** `//aid/<RID>/<PIX>`, e.g. `//aid/A000000151/000000` for the ISD. */
export function formatAid(aid: Uint8Array): string {
  if (!(aid instanceof Uint8Array) || aid.length < RelayLimits.minAidBytes || aid.length > RelayLimits.maxAidBytes) {
    throw bad('X-Admin-Targeted-Application', `an AID is ${RelayLimits.minAidBytes}..${RelayLimits.maxAidBytes} bytes`);
  }
  return `${AID_PREFIX}${hexUpper(aid.subarray(0, 5))}/${hexUpper(aid.subarray(5))}`;
}

export function parseAid(value: string): Uint8Array {
  const h = 'X-Admin-Targeted-Application';
  if (!value.startsWith(AID_PREFIX)) throw bad(h, `expected ${AID_PREFIX}<RID>/<PIX>`, value);
  const rest = value.slice(AID_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash < 0 || rest.indexOf('/', slash + 1) >= 0) throw bad(h, `expected ${AID_PREFIX}<RID>/<PIX>`, value);
  const rid = rest.slice(0, slash);
  const pix = rest.slice(slash + 1);
  if (rid.length !== 10 || !HEX_EVEN.test(rid)) throw bad(h, 'the RID is 5 bytes of hex', value);
  if (pix.length > 22 || (pix.length > 0 && !HEX_EVEN.test(pix))) throw bad(h, 'the PIX is 0..11 bytes of hex', value);
  return fromHex(rid + pix);
}

export function isNextUriToken(token: string): boolean {
  return typeof token === 'string' && token.length === NEXT_URI_TOKEN_CHARS && TOKEN.test(token);
}

export function formatNextUri(token: string): string {
  if (!isNextUriToken(token)) throw bad('X-Admin-Next-URI', `a token is ${NEXT_URI_TOKEN_CHARS} base64url characters`);
  return RelayPath.script + token;
}

/**
 * The token of a Next-URI. Only the operator's own relative path is accepted: an absolute URL (another
 * host, where the agent would send its bearer token) or any other path is refused.
 */
export function parseNextUri(value: string): string {
  if (!value.startsWith(RelayPath.script)) throw bad('X-Admin-Next-URI', `expected ${RelayPath.script}<token>`, value);
  const token = value.slice(RelayPath.script.length);
  if (!isNextUriToken(token)) throw bad('X-Admin-Next-URI', `a token is ${NEXT_URI_TOKEN_CHARS} base64url characters`, value);
  return token;
}

export function parseScriptStatus(value: string): ScriptStatus {
  if (!(SCRIPT_STATUSES as readonly string[]).includes(value)) throw bad('X-Admin-Script-Status', `expected one of ${SCRIPT_STATUSES.join(', ')}`, value);
  return value as ScriptStatus;
}

/** X-Admin-Resume: absent → false; `true` → true; anything else is refused. */
export function parseResume(value: string | undefined): boolean {
  if (value === undefined) return false;
  if (value === 'true') return true;
  throw bad('X-Admin-Resume', "the only value is 'true'", value);
}

/** Retry-After as delta-seconds 0..3600 (the operator never sends an HTTP-date). */
export function parseRetryAfter(value: string): number {
  if (!/^[0-9]{1,4}$/.test(value)) throw bad('Retry-After', 'expected delta-seconds', value);
  const n = Number(value);
  if (n > RelayLimits.maxRetryAfterS) throw bad('Retry-After', `at most ${RelayLimits.maxRetryAfterS} s`, value);
  return n;
}

export function isBearerToken(token: string): boolean {
  return typeof token === 'string' && token.length >= 1 && token.length <= RelayLimits.maxTokenChars && /^[\x21-\x7e]+$/.test(token);
}

export function formatBearer(token: string): string {
  if (!isBearerToken(token)) throw bad('Authorization', `a token is 1..${RelayLimits.maxTokenChars} visible ASCII characters`);
  return `Bearer ${token}`;
}

/** The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1). */
export function parseBearer(value: string): string {
  const m = /^Bearer +(\S+)$/i.exec(value);
  if (!m || !isBearerToken(m[1]!)) throw new RelayError('ERR_RELAY_UNAUTHORIZED', 'Authorization: expected Bearer <token>');
  return m[1]!;
}
