/**
 * The TLV codec under the binary card state (state format v4, docs/apdu-protocol.md §6): a version
 * byte, then TLVs with one-byte tags and BER definite lengths in their shortest form (`xx` < 0x80,
 * `81 xx`, `82 xx xx`, `83 xx xx xx`); a value is either bytes or a sequence of TLVs.
 *
 * The tree writer and strict reader are bytes/tlv-tree's (shared with the ISD record): the state
 * holds secrets (PKCS#8 keys, PIN hashes, PSK keys, the ticket key), which go from their arrays into
 * one exact-size output, never through a JS string or an unwiped intermediate; a PIN record
 * (tries ‖ max ‖ salt ‖ hash) is one leaf of several parts. The reader returns views into its input
 * (no copies): the schema reader in state.ts copies what it keeps, and the caller wipes the input.
 *
 * Also the decoding helpers both state readers (v4, and the JSON of versions 1–3) use: labels,
 * private keys checked against their type and SPKI, host names of a chain's leaf.
 *
 * Every failure is ERR_CARD_STATE. imports bytes/, card/names and node built-ins.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { SetlsError, equalBytes } from '../bytes/index.js';
import {
  encodeTlvTree,
  hexTag,
  parseStrictTlvs,
  readTlvFields,
  TLV_TREE_MAX_VALUE,
  type TlvBranch,
  type TlvField,
  type TlvItem,
  type TlvLeaf,
  type TlvNode,
} from '../bytes/tlv-tree.js';
import { leafHostNames } from './names.js';
import type { KeyTypeName } from './state.js';

export type Leaf = TlvLeaf;
export type Branch = TlvBranch;
export type Node = TlvNode;
export type Item = TlvItem;
/** One field of a TLV sequence's schema (the state's fields always carry a name). */
export interface Field extends TlvField {
  readonly name: string;
}

/** The largest TLV value (3 length bytes). */
export const MAX_VALUE = TLV_TREE_MAX_VALUE;

export function stateError(why: string, cause?: unknown): SetlsError {
  return new SetlsError('ERR_CARD_STATE', `card state is invalid: ${why}`, cause === undefined ? undefined : { cause });
}

export { hexTag };

const fail = (why: string): Error => stateError(why);

/** `version ‖ TLV(nodes)…` as one exact-size array. The caller owns (and wipes) the result. */
export function encodeTree(version: number, nodes: readonly Node[]): Uint8Array {
  return encodeTlvTree(nodes, fail, Uint8Array.of(version));
}

/** Parses a TLV sequence that must cover `b` exactly (shortest-form lengths); values are views into `b`. */
export function parseItems(b: Uint8Array, what: string): Item[] {
  return parseStrictTlvs(b, what, fail);
}

/** Matches `items` against `schema` in order (bytes/tlv-tree readTlvFields); values by tag, views into the input. */
export function readFields(items: readonly Item[], schema: readonly Field[], what: string): Map<number, Uint8Array[]> {
  return readTlvFields(items, schema, what, fail);
}

function stateBad(why: string): never {
  throw stateError(why);
}

/** Non-secret UTF-8 (labels) only. */
export function utf8Text(b: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return stateBad(`${what} is not UTF-8`);
  }
}

/** The private key from PKCS#8 DER, checked against its key type and SPKI. Does not wipe `pkcs8`. */
export function loadPrivateKey(pkcs8: Uint8Array, keyType: KeyTypeName, spki: Uint8Array, what: string): KeyObject {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pkcs8 as Buffer, format: 'der', type: 'pkcs8' });
  } catch {
    return stateBad(`${what} private key does not parse`);
  }
  if (!keyMatchesType(privateKey, keyType)) stateBad(`${what} private key is not of type ${keyType}`);
  const derived = new Uint8Array(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
  if (!equalBytes(derived, spki)) stateBad(`${what} public key does not match its private key`);
  return privateKey;
}

/** The host names of a chain's leaf (none without a chain). */
export function hostNamesOf(chain: readonly Uint8Array[], what: string): string[] {
  try {
    return chain.length > 0 ? leafHostNames(chain[0]!) : [];
  } catch {
    return stateBad(`${what} leaf certificate does not parse`);
  }
}

/** Whether a private key is of the identity key type. */
export function keyMatchesType(k: KeyObject, t: KeyTypeName): boolean {
  const d = k.asymmetricKeyDetails;
  if (t === 'rsa2048') return k.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048 && d.publicExponent === 0x10001n;
  return k.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1';
}
