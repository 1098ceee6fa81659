/**
 * The TLS 1.2 key schedule (RFC 5246 §5, §6.3, §7.4.9, §8.1; RFC 7627 §4; RFC 5705 §4).
 *
 *   P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) + HMAC_hash(secret, A(2) + seed) + ...
 *     A(0) = seed, A(i) = HMAC_hash(secret, A(i-1))
 *   PRF(secret, label, seed) = P_<hash>(secret, label + seed)     (hash = the suite's PRF hash)
 *
 *   master_secret  = PRF(pre_master_secret, "master secret", ClientHello.random + ServerHello.random)[0..47]
 *   EMS (RFC 7627) = PRF(pre_master_secret, "extended master secret", session_hash)[0..47]
 *   key_block      = PRF(master_secret, "key expansion", server_random + client_random)
 *   verify_data    = PRF(master_secret, finished_label, Hash(handshake_messages))[0..11]
 *   exporter       = PRF(master_secret, label, client_random + server_random + context_length + context)
 *
 * SECRETS: every output here except verify_data is secret; callers wipe them.
 * imports node:crypto, bytes/ and tls/ siblings only.
 */
import { createHmac } from 'node:crypto';
import { ByteWriter, SetlsError, concat, wipe } from '../../bytes/index.js';
import type { HashName } from '../crypto.js';

export const MASTER_SECRET_LENGTH = 48;
export const VERIFY_DATA_LENGTH_12 = 12;

const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

/** PRF(secret, label, seed) truncated to `length` bytes. SECRET. */
export function prf12(alg: HashName, secret: Uint8Array, label: string, seed: Uint8Array, length: number): Uint8Array {
  const labelSeed = concat(latin1(label), seed);
  const out = new Uint8Array(length);
  let a: Uint8Array = labelSeed;
  let o = 0;
  while (o < length) {
    const nextA = new Uint8Array(createHmac(alg, secret).update(a).digest());
    if (a !== labelSeed) wipe(a);
    a = nextA;
    const block = new Uint8Array(createHmac(alg, secret).update(a).update(labelSeed).digest());
    const n = Math.min(block.length, length - o);
    out.set(block.subarray(0, n), o);
    wipe(block);
    o += n;
  }
  wipe(a);
  return out;
}

/** The 48-byte master secret; `sessionHash` set = extended master secret (RFC 7627). SECRET. */
export function masterSecret12(
  alg: HashName,
  preMaster: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
  sessionHash: Uint8Array | undefined,
): Uint8Array {
  return sessionHash
    ? prf12(alg, preMaster, 'extended master secret', sessionHash, MASTER_SECRET_LENGTH)
    : prf12(alg, preMaster, 'master secret', concat(clientRandom, serverRandom), MASTER_SECRET_LENGTH);
}

/** One direction's AEAD key and fixed IV (4 bytes for GCM/CCM, 12 for ChaCha20-Poly1305). SECRET. */
export interface KeyBlockPart {
  readonly key: Uint8Array;
  readonly iv: Uint8Array;
}

/** RFC 5246 §6.3 for AEAD suites (no MAC keys): client key, server key, client IV, server IV. SECRET. */
export function keyBlock12(
  alg: HashName,
  master: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
  keyLength: number,
  fixedIvLength: number,
): { client: KeyBlockPart; server: KeyBlockPart } {
  const total = 2 * (keyLength + fixedIvLength);
  const kb = prf12(alg, master, 'key expansion', concat(serverRandom, clientRandom), total);
  let o = 0;
  const take = (n: number): Uint8Array => kb.slice(o, (o += n));
  const clientKey = take(keyLength);
  const serverKey = take(keyLength);
  const clientIv = take(fixedIvLength);
  const serverIv = take(fixedIvLength);
  wipe(kb);
  return { client: { key: clientKey, iv: clientIv }, server: { key: serverKey, iv: serverIv } };
}

/** Finished.verify_data (12 bytes) for "client finished" / "server finished". */
export function verifyData12(alg: HashName, master: Uint8Array, fromClient: boolean, handshakeHash: Uint8Array): Uint8Array {
  return prf12(alg, master, fromClient ? 'client finished' : 'server finished', handshakeHash, VERIFY_DATA_LENGTH_12);
}

/**
 * RFC 5705 §4: PRF(master_secret, label, client_random + server_random [+ uint16 len + context]).
 * With a context (even an empty one, as node's exportKeyingMaterial sends when given one) the length
 * and context are in the seed; without one (`undefined`, as gnutls --keymatexport asks) they are not.
 */
export function exporter12(
  alg: HashName,
  master: Uint8Array,
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
  label: string,
  context: Uint8Array | undefined,
  length: number,
): Uint8Array {
  const w = new ByteWriter(66 + (context?.length ?? 0)).bytes(clientRandom).bytes(serverRandom);
  if (context !== undefined) w.vec(2, context);
  const seed = w.finish();
  return prf12(alg, master, label, seed, length);
}

/** Labels the TLS 1.2 key schedule uses itself (RFC 5705 §4, RFC 7627): never exported. */
export const RESERVED_EXPORTER_LABELS: readonly string[] = ['client finished', 'server finished', 'master secret', 'extended master secret', 'key expansion'];

/**
 * The RFC 5705 exporter of a TLS 1.2 / DTLS 1.2 session with its argument checks: ERR_TLS_STATE
 * without a master secret, ERR_TLS_ARGUMENT for a reserved label or out-of-range sizes.
 */
export function checkedExporter12(
  s: { readonly master: Uint8Array | undefined; readonly hash: HashName | undefined; readonly failed: boolean; readonly state: string },
  clientRandom: Uint8Array,
  serverRandom: Uint8Array,
  label: string,
  context: Uint8Array | undefined,
  length: number,
): Uint8Array {
  if (!s.master || !s.hash || s.failed) throw new SetlsError('ERR_TLS_STATE', `no exporter in state ${s.state}`);
  if (!Number.isInteger(length) || length < 0 || length > 0xffff || (context?.length ?? 0) > 0xffff || RESERVED_EXPORTER_LABELS.includes(label)) {
    throw new SetlsError('ERR_TLS_ARGUMENT', 'bad exporter label, context or length');
  }
  return exporter12(s.hash, s.master, clientRandom, serverRandom, label, context, length);
}
