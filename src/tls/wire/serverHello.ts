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
import { ByteWriter, fromHex } from '../../bytes/index.js';
import { ExtensionType, HELLO_RETRY_REQUEST_RANDOM_HEX, HandshakeType, ProtocolVersion } from '../constants.js';
import type { Extension } from './clientHello.js';
import { buildCookie, buildKeyShareHelloRetryRequest, buildSupportedVersionsServerHello } from './extensions.js';
import { encodeHandshake } from './handshake.js';

/** The special ServerHello.random marking a HelloRetryRequest (RFC 8446 §4.1.3). */
export const HELLO_RETRY_REQUEST_RANDOM: Uint8Array = fromHex(HELLO_RETRY_REQUEST_RANDOM_HEX);

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

export interface HelloRetryRequestParams {
  readonly legacySessionIdEcho: Uint8Array;
  readonly cipherSuite: number;
  readonly version: number;
  readonly selectedGroup: number;
  readonly cookie: Uint8Array;
}

/**
 * A HelloRetryRequest (RFC 8446 §4.1.4): a ServerHello with the special random and the extensions
 * supported_versions, key_share (selected_group) and cookie, in that order. Deterministic in its
 * parameters, so the server can rebuild the exact bytes for the transcript from ClientHello2's cookie.
 */
export function buildHelloRetryRequest(p: HelloRetryRequestParams): Uint8Array {
  return buildServerHello({
    random: HELLO_RETRY_REQUEST_RANDOM,
    legacySessionIdEcho: p.legacySessionIdEcho,
    cipherSuite: p.cipherSuite,
    extensions: [
      { type: ExtensionType.supportedVersions, data: buildSupportedVersionsServerHello(p.version) },
      { type: ExtensionType.keyShare, data: buildKeyShareHelloRetryRequest(p.selectedGroup) },
      { type: ExtensionType.cookie, data: buildCookie(p.cookie) },
    ],
  });
}
