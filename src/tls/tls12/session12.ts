/**
 * The resumable TLS 1.2 session state (what a session-ID cache entry or a sealed ticket holds):
 *
 *   struct {
 *       uint8  format = 1;
 *       uint16 version = 0x0303;
 *       uint16 cipher_suite;
 *       uint8  extended_master_secret;         // always 1: non-EMS sessions are never stored
 *       opaque master_secret[48];
 *       uint64 created_ms;                     // entropy.now() at the full handshake
 *       opaque server_name<0..255>;
 *       opaque peer_certificate<0..2^24-1>;    // DER of the verified client leaf, empty = none
 *       opaque peer_subject<0..2^16-1>;        // UTF-8
 *       opaque peer_sans<0..2^16-1>;           // UTF-8, "\n"-separated
 *   } SessionState12;
 *
 * SECRETS: the encoding contains the master secret; callers wipe encodings they built or opened.
 * imports node:crypto, bytes/ and tls/ siblings only.
 */
import { createHash } from 'node:crypto';
import { ByteReader, ByteWriter } from '../../bytes/index.js';
import type { PeerIdentity } from '../api.js';
import { ProtocolVersion } from '../constants.js';
import { MASTER_SECRET_LENGTH } from '../keyschedule/prf12.js';

const FORMAT = 1;

export interface SessionState12 {
  readonly cipherSuite: number;
  readonly ems: boolean;
  readonly masterSecret: Uint8Array;
  readonly createdMs: number;
  readonly serverName: string | undefined;
  readonly peer: PeerIdentity | undefined;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function encodeSession12(s: SessionState12): Uint8Array {
  const w = new ByteWriter(256)
    .u8(FORMAT)
    .u16(ProtocolVersion.tls12)
    .u16(s.cipherSuite)
    .u8(s.ems ? 1 : 0)
    .bytes(s.masterSecret)
    .u32(Math.floor(s.createdMs / 0x100000000))
    .u32(s.createdMs >>> 0)
    .vec(1, utf8.encode(s.serverName ?? ''))
    .vec(3, s.peer?.certificate ?? new Uint8Array(0))
    .vec(2, utf8.encode(s.peer?.subject ?? ''))
    .vec(2, utf8.encode(s.peer?.subjectAltNames.join('\n') ?? ''));
  return w.finish();
}

/** undefined when the bytes are not a TLS 1.2 session state of this format. */
export function decodeSession12(b: Uint8Array): SessionState12 | undefined {
  try {
    const r = new ByteReader(b, 'SessionState12');
    if (r.u8() !== FORMAT || r.u16() !== ProtocolVersion.tls12) return undefined;
    const cipherSuite = r.u16();
    const ems = r.u8() === 1;
    const masterSecret = r.bytes(MASTER_SECRET_LENGTH).slice();
    const createdMs = r.u32() * 0x100000000 + r.u32();
    const sni = fromUtf8.decode(r.vec(1));
    const cert = r.vec(3).slice();
    const subject = fromUtf8.decode(r.vec(2));
    const sans = fromUtf8.decode(r.vec(2));
    r.end();
    const peer: PeerIdentity | undefined =
      cert.length > 0
        ? {
            subject,
            subjectAltNames: sans ? sans.split('\n') : [],
            fingerprint256: new Uint8Array(createHash('sha256').update(cert).digest()),
            certificate: cert,
          }
        : undefined;
    return { cipherSuite, ems, masterSecret, createdMs, serverName: sni || undefined, peer };
  } catch {
    return undefined;
  }
}
