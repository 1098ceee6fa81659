/**
 * gp/admin/time-anchor: the operator-signed time anchor of PutTimeAnchor (function BF2A).
 * imports bytes/ and node:crypto.
 *
 *   content   = E3 L { 5A 10 UID, 8E 04 time (Unix seconds), 8B 04 anchor counter }
 *   signature = by the operator root key (the certificate installed with PutTrustAnchors role 01),
 *               SHA-256 with ECDSA (DER) for an EC key, RSASSA-PKCS1-v1_5 for an RSA key, over
 *               the E3 TLV
 *
 * The UID binds an anchor to one card; the counter, which the card never lets go backwards or
 * repeat, makes every anchor single-use. The time is a lower bound for the card's clock, and a
 * time below the card's current floor moves the clock back — the only way to do so.
 */
import { sign, type KeyObject } from 'node:crypto';
import { ctEqual } from '../../bytes/index.js';
import { Field, SignedTag, UID_LENGTH } from './constants.js';
import { AdminFormatError, be, readFields, req, tlv, uint, unwrapOne } from './fields.js';

export interface TimeAnchor {
  readonly uid: Uint8Array;
  readonly time: number;
  readonly counter: number;
}

export function encodeTimeAnchor(a: TimeAnchor): Uint8Array {
  return tlv(SignedTag.timeAnchor, [
    [Field.uid, a.uid],
    [Field.time, be(a.time, 4)],
    [Field.number, be(a.counter, 4)],
  ]);
}

export function parseTimeAnchor(b: Uint8Array): TimeAnchor {
  const what = 'time anchor';
  const f = readFields(unwrapOne(b, SignedTag.timeAnchor, what), { [Field.uid]: 1, [Field.time]: 1, [Field.number]: 1 }, what);
  const uid = req(f, Field.uid, what);
  if (uid.length !== UID_LENGTH) throw new AdminFormatError(`${what}: UID of ${uid.length} bytes`);
  const a = { uid, time: uint(req(f, Field.time, what), 4, what), counter: uint(req(f, Field.number, what), 4, what) };
  if (!ctEqual(encodeTimeAnchor(a), b)) throw new AdminFormatError(`${what}: not in its canonical form`);
  return a;
}

/** Off card (operator): the E3 content and its signature by the operator root's private key. */
export function signTimeAnchor(a: TimeAnchor, operatorRootKey: KeyObject): { content: Uint8Array; signature: Uint8Array } {
  const content = encodeTimeAnchor(a);
  return { content, signature: new Uint8Array(sign('sha256', content, operatorRootKey)) };
}
