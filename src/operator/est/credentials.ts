/**
 * operator/est/credentials: EST enrolment credentials (RFC 7030 §3.2.3: HTTP Basic inside TLS) for
 * clients that are not cards — creation (a user name `estc-<16 hex>` and a random password shown
 * once), the slow hash kept instead (scrypt from node:crypto, N=2^15 r=8 p=1, 16-byte salt,
 * 32-byte output; parameters stored with the row), and the check of an `Authorization: Basic`
 * header: the hash compared with timingSafeEqual, an unknown user name costing the same scrypt as a
 * known one (a dummy salt), at most MAX_CHECKS_IN_FLIGHT hashes at once per process (an
 * unauthenticated client must not tie up the thread pool: ERR_OP_EST_BUSY beyond). Spending a use
 * is not done here: it is the guarded UPDATE in the issuing transaction (est/client-enrol.ts).
 * imports store/types, errors, bytes/.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { OpError, OpErrorCode } from '../errors.js';
import type { EstCredentialRow, JsonObject, OperatorStore } from '../store/types.js';

export const SCRYPT = { N: 1 << 15, r: 8, p: 1, keyLen: 32 } as const;
const KDF = `scrypt:${SCRYPT.N}:${SCRYPT.r}:${SCRYPT.p}`;
/** 128·N·r bytes per hash (32 MiB) plus slack. */
const MAXMEM = 64 * 1024 * 1024;
export const MAX_CHECKS_IN_FLIGHT = 4;
export const BASIC_REALM = 'setls-est';
const USER_RE = /^estc-[0-9a-f]{16}$/;

function parseKdf(kdf: string): { N: number; r: number; p: number } {
  const m = /^scrypt:(\d+):(\d+):(\d+)$/.exec(kdf);
  if (!m) throw new OpError(OpErrorCode.internal, `unknown credential hash ${kdf}`);
  return { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
}

function hash(password: Buffer, salt: Uint8Array, kdf: string): Promise<Buffer> {
  const { N, r, p } = parseKdf(kdf);
  return new Promise((resolve, reject) => scrypt(password, salt, SCRYPT.keyLen, { N, r, p, maxmem: MAXMEM }, (e, k) => (e ? reject(e) : resolve(k))));
}

export interface CreatedCredential {
  readonly row: EstCredentialRow;
  /** Shown once to the operator; only its scrypt hash is stored. */
  readonly password: string;
}

export interface NewCredential {
  readonly name: string;
  readonly uses: number;
  readonly expiresAt: number;
  readonly profile: JsonObject;
  readonly createdBy: string;
  readonly now: number;
}

/** Creates and stores a credential; the password (32 random bytes, base64url) is returned once. */
export async function createEstCredential(store: OperatorStore, c: NewCredential): Promise<CreatedCredential> {
  if (!Number.isSafeInteger(c.uses) || c.uses < 1 || c.uses > 1_000_000) throw new OpError(OpErrorCode.badRequest, 'uses must be an integer from 1 to 1000000');
  if (!(c.expiresAt > c.now)) throw new OpError(OpErrorCode.badRequest, 'the expiry must be in the future');
  const secret = randomBytes(32);
  const password = secret.toString('base64url');
  const salt = new Uint8Array(randomBytes(16));
  const pw = Buffer.from(password, 'utf8');
  const digest = await hash(pw, salt, KDF);
  pw.fill(0);
  secret.fill(0);
  const row: EstCredentialRow = {
    id: `estc-${randomBytes(8).toString('hex')}`,
    name: c.name,
    secretHash: new Uint8Array(digest),
    salt,
    kdf: KDF,
    usesLeft: c.uses,
    expiresAt: c.expiresAt,
    profile: c.profile,
    createdBy: c.createdBy,
    createdAt: c.now,
    lastUsedAt: null,
    revokedAt: null,
  };
  digest.fill(0);
  await store.insertEstCredential(row);
  return { row, password };
}

/** `Authorization: Basic …` → user and password bytes, or null (absent or not Basic). */
export function parseBasic(header: string | undefined): { user: string; password: Buffer } | null {
  if (typeof header !== 'string') return null;
  const m = /^Basic[ ]+([A-Za-z0-9+/]{1,512}={0,2})\s*$/i.exec(header);
  if (!m) return null;
  const raw = Buffer.from(m[1]!, 'base64');
  const colon = raw.indexOf(0x3a);
  if (colon < 0) {
    raw.fill(0);
    return null;
  }
  const user = raw.subarray(0, colon).toString('utf8');
  const password = Buffer.from(raw.subarray(colon + 1));
  raw.fill(0);
  return { user, password };
}

let inFlight = 0;
const DUMMY_SALT = new Uint8Array(randomBytes(16));

/**
 * The credential named by the Basic header if its password is right and it may be used now (not
 * revoked, not expired, a use left — spent later, in the issuing transaction); else
 * ERR_OP_EST_CREDENTIAL (401). Wrong user and wrong password read the same.
 */
export async function checkEstCredential(store: OperatorStore, header: string | undefined, now: number): Promise<EstCredentialRow> {
  const basic = parseBasic(header);
  if (!basic) throw new OpError(OpErrorCode.estCredential, 'a CSR without card attestation needs an enrolment credential (HTTP Basic)');
  if (inFlight >= MAX_CHECKS_IN_FLIGHT) {
    basic.password.fill(0);
    throw new OpError(OpErrorCode.estBusy, 'too many enrolments at once; retry shortly');
  }
  inFlight++;
  let row: EstCredentialRow | null = null;
  let ok = false;
  try {
    row = USER_RE.test(basic.user) ? await store.estCredentialById(basic.user) : null;
    const digest = await hash(basic.password, row?.salt ?? DUMMY_SALT, row?.kdf ?? KDF);
    const expected = row?.secretHash ?? new Uint8Array(SCRYPT.keyLen);
    ok = expected.length === digest.length && timingSafeEqual(digest, expected) && row !== null;
    digest.fill(0);
  } finally {
    inFlight--;
    basic.password.fill(0);
  }
  if (!ok || !row) throw new OpError(OpErrorCode.estCredential, 'the enrolment credential is not valid');
  if (row.revokedAt !== null) throw new OpError(OpErrorCode.estCredential, `enrolment credential ${row.id} is revoked`);
  if (now >= row.expiresAt) throw new OpError(OpErrorCode.estCredential, `enrolment credential ${row.id} expired`);
  if (row.usesLeft <= 0) throw new OpError(OpErrorCode.estCredential, `enrolment credential ${row.id} has no use left`);
  return row;
}
