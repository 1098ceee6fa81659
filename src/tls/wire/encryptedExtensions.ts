/**
 * EncryptedExtensions codec (RFC 8446 §4.3.1).
 *
 *   struct { Extension extensions<0..2^16-1>; } EncryptedExtensions;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import type { Extension } from './clientHello.js';
import { encodeHandshake } from './handshake.js';
import { writeExtensions } from './serverHello.js';

export function buildEncryptedExtensions(extensions: readonly Extension[]): Uint8Array {
  const w = new ByteWriter(64);
  writeExtensions(w, extensions);
  return encodeHandshake(HandshakeType.encryptedExtensions, w.finish());
}
