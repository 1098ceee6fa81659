/**
 * ServerHello codec (RFC 8446 §4.1.3).
 *
 *   struct {
 *       ProtocolVersion legacy_version = 0x0303;
 *       Random random;
 *       opaque legacy_session_id_echo<0..32>;
 *       CipherSuite cipher_suite;
 *       uint8 legacy_compression_method = 0;
 *       Extension extensions<6..2^16-1>;
 *   } ServerHello;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter } from '../../bytes/index.js';
import { HandshakeType, ProtocolVersion } from '../constants.js';
import type { Extension } from './clientHello.js';
import { encodeHandshake } from './handshake.js';

export interface ServerHelloParams {
  readonly random: Uint8Array;
  readonly legacySessionIdEcho: Uint8Array;
  readonly cipherSuite: number;
  readonly extensions: readonly Extension[];
}

export function writeExtensions(w: ByteWriter, extensions: readonly Extension[]): void {
  w.block(2, (l) => {
    for (const e of extensions) l.u16(e.type).vec(2, e.data);
  });
}

/** The whole handshake message (header included). */
export function buildServerHello(p: ServerHelloParams): Uint8Array {
  const w = new ByteWriter(128)
    .u16(ProtocolVersion.tls12)
    .bytes(p.random)
    .vec(1, p.legacySessionIdEcho)
    .u16(p.cipherSuite)
    .u8(0);
  writeExtensions(w, p.extensions);
  return encodeHandshake(HandshakeType.serverHello, w.finish());
}
