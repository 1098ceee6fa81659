/**
 * ClientHello codec (RFC 8446 §4.1.2).
 *
 *   uint16 ProtocolVersion;
 *   opaque Random[32];
 *   uint8 CipherSuite[2];
 *
 *   struct {
 *       ProtocolVersion legacy_version = 0x0303;
 *       Random random;
 *       opaque legacy_session_id<0..32>;
 *       CipherSuite cipher_suites<2..2^16-2>;
 *       opaque legacy_compression_methods<1..2^8-1>;
 *       Extension extensions<8..2^16-1>;
 *   } ClientHello;
 *
 *   struct {
 *       ExtensionType extension_type;
 *       opaque extension_data<0..2^16-1>;
 *   } Extension;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteReader } from '../../bytes/index.js';
import { ExtensionType } from '../constants.js';
import { tlsError } from '../errors.js';

export interface Extension {
  readonly type: number;
  readonly data: Uint8Array;
}

export interface ClientHello {
  readonly legacyVersion: number;
  readonly random: Uint8Array;
  readonly legacySessionId: Uint8Array;
  readonly cipherSuites: readonly number[];
  readonly compressionMethods: Uint8Array;
  /** In the order sent; duplicates rejected; pre_shared_key, when present, is last. */
  readonly extensions: readonly Extension[];
}

export function parseExtensions(r: ByteReader): Extension[] {
  const out: Extension[] = [];
  const seen = new Set<number>();
  while (!r.done) {
    const type = r.u16();
    const data = r.vec(2);
    if (seen.has(type)) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `duplicate extension ${type}`);
    seen.add(type);
    out.push({ type, data });
  }
  return out;
}

export function parseClientHello(body: Uint8Array): ClientHello {
  const r = new ByteReader(body, 'ClientHello');
  const legacyVersion = r.u16();
  const random = r.bytes(32).slice();
  const legacySessionId = r.vec(1, 0, 32).slice();
  const cipherSuites = r.block(2, (s) => {
    const list: number[] = [];
    while (!s.done) list.push(s.u16());
    return list;
  });
  if (cipherSuites.length === 0) throw tlsError('ERR_TLS_DECODE', 'empty cipher_suites');
  const compressionMethods = r.vec(1, 1).slice();
  // A TLS 1.2-or-older ClientHello may end here (no extensions): that is not a decode error.
  const extensions = r.done ? [] : r.block(2, parseExtensions, 'ClientHello.extensions');
  r.end();
  const psk = extensions.findIndex((e) => e.type === ExtensionType.preSharedKey);
  if (psk >= 0 && psk !== extensions.length - 1) {
    throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'pre_shared_key is not the last extension');
  }
  return { legacyVersion, random, legacySessionId, cipherSuites, compressionMethods, extensions };
}
