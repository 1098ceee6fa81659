/**
 * operator/keys/master-keys: the operator's SCP03 master keys, kept in files (mode 0600) outside the
 * database, and the per-card key sets derived from them with gp/'s diversification
 * (docs/gp-scp03.md §11) — never stored per card. imports gp/, bytes/, protocol/, keys/secret-files, errors.
 *
 * - admin master, version v: `D/keys/admin-master-v<v>.key` (hex). The operator's key set for a
 *   card is deriveCardKeys(admin master, UID, KVN) with KVN 31 and up.
 * - transport (factory) master of a manufacturer: `D/keys/transport-<id>.key` (hex), the one the
 *   card's factory key set (KVN 30) was derived from, when the manufacturer hands it over.
 * The store keeps only each master's KCV (to spot a wrong file), never the key.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fromHex, toHex, wipe } from '../../bytes/index.js';
import { aesKcv, deriveCardKeys, type StaticKeys } from '../../gp/index.js';
import { FACTORY_KVN } from '../../protocol/index.js';
import { OpError, OpErrorCode } from '../errors.js';
import { readSecretFile, writeSecretFile } from './secret-files.js';

/** The factory key set's KVN (the admin protocol's, protocol/isd.ts). */
export { FACTORY_KVN };
export const FIRST_OPERATOR_KVN = 0x31;

export function adminMasterPath(keysDir: string, version: number): string {
  return join(keysDir, `admin-master-v${version}.key`);
}

export function transportMasterPath(keysDir: string, id: string): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw new OpError(OpErrorCode.badRequest, `transport key id '${id}' must be 1–64 of A–Z a–z 0–9 _ . -`);
  return join(keysDir, `transport-${id}.key`);
}

/** Creates a new random AES master key file (16, 24 or 32 bytes); returns its KCV (hex). */
export function createMasterKeyFile(path: string, length: 16 | 24 | 32 = 16): string {
  const key = new Uint8Array(randomBytes(length));
  try {
    writeSecretFile(path, toHex(key) + '\n');
    return toHex(aesKcv(key));
  } finally {
    wipe(key);
  }
}

/** Reads a master key file (hex); the caller wipes the result. */
export function readMasterKeyFile(path: string): Uint8Array {
  const text = readSecretFile(path).toString('utf8').trim();
  if (!/^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$/.test(text)) {
    throw new OpError(OpErrorCode.keyFile, `${path}: expected 32, 48 or 64 hex digits (an AES key)`);
  }
  return fromHex(text);
}

/** The operator's key set of one card: derived, used, wiped by the caller (wipeStaticKeys). */
export function adminKeysForCard(keysDir: string, masterVersion: number, uid: Uint8Array, kvn: number): StaticKeys {
  const master = readMasterKeyFile(adminMasterPath(keysDir, masterVersion));
  try {
    return deriveCardKeys(master, uid, kvn);
  } finally {
    wipe(master);
  }
}

/** The card's factory key set (KVN 30 by default) from a manufacturer's transport master. */
export function transportKeysForCard(keysDir: string, transportKeyId: string, uid: Uint8Array, kvn = FACTORY_KVN): StaticKeys {
  const master = readMasterKeyFile(transportMasterPath(keysDir, transportKeyId));
  try {
    return deriveCardKeys(master, uid, kvn);
  } finally {
    wipe(master);
  }
}
