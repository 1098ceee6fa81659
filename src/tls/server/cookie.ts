/**
 * The HelloRetryRequest cookie (RFC 8446 §4.2.2, §4.4.1): how the server stays stateless across the retry.
 *
 * DESIGN (chosen: stateless cookie; the server's state across the retry is bounded to the cookie):
 * after sending a HelloRetryRequest the engine keeps NOTHING about ClientHello1 except the cookie key.
 * Everything needed to continue travels to the client and back, sealed so it cannot be forged:
 *
 *   struct {
 *       uint8 format = 1;
 *       CipherSuite cipher_suite;             // chosen for ClientHello1; ClientHello2 must still offer it
 *       NamedGroup selected_group;            // the group asked for; ClientHello2's only key share
 *       opaque legacy_session_id<0..32>;      // ClientHello1's, echoed in the HRR; ClientHello2 repeats it
 *       opaque client_hello1_hash<32..48>;    // Hash(ClientHello1) for the message_hash construction
 *   } CookiePlaintext;
 *
 *   cookie = nonce[12] || AES-256-GCM(cookie_key, nonce, aad = "setls tls13 hrr cookie", CookiePlaintext) || tag[16]
 *
 * On ClientHello2 the server opens the cookie, rebuilds message_hash(Hash(ClientHello1)) and the exact
 * HelloRetryRequest bytes (buildHelloRetryRequest is deterministic), and continues the transcript.
 * cookie_key: `config.cookieKey` (32 bytes, copied) or 32 bytes from the engine's entropy, drawn on the
 * first HRR and held by this engine instance (which lives for one card session); wiped by dispose().
 * A cookie only proves that this server issued it for some ClientHello1; replaying it merely replays
 * that ClientHello1 (the client random of ClientHello2 is still fresh), so no anti-replay state is kept.
 *
 * SECRETS: the cookie key.
 * imports bytes/ and tls/ siblings only.
 */
import { ByteReader, ByteWriter, concat, wipe } from '../../bytes/index.js';
import type { TlsEntropy } from '../api.js';
import { aeadOpen, aeadSeal } from '../crypto.js';
import { tlsError } from '../errors.js';

const COOKIE_FORMAT = 1;
const COOKIE_AAD = new TextEncoder().encode('setls tls13 hrr cookie');
const NONCE_LENGTH = 12;
const TAG_LENGTH = 16;
export const COOKIE_KEY_LENGTH = 32;

export interface CookieContent {
  readonly cipherSuite: number;
  readonly group: number;
  readonly legacySessionId: Uint8Array;
  readonly clientHello1Hash: Uint8Array;
}

export class CookieSealer {
  private key: Uint8Array | undefined;

  constructor(
    private readonly entropy: TlsEntropy,
    configKey: Uint8Array | undefined,
  ) {
    if (configKey !== undefined) {
      if (configKey.length !== COOKIE_KEY_LENGTH) throw tlsError('ERR_TLS_ARGUMENT', `cookieKey must be ${COOKIE_KEY_LENGTH} bytes`);
      this.key = configKey.slice();
    }
  }

  private cookieKey(): Uint8Array {
    if (!this.key) {
      const k = this.entropy.random(COOKIE_KEY_LENGTH);
      if (k.length !== COOKIE_KEY_LENGTH) throw tlsError('ERR_TLS_INTERNAL', 'entropy returned a short cookie key');
      this.key = k.slice();
      wipe(k);
    }
    return this.key;
  }

  seal(c: CookieContent): Uint8Array {
    const plain = new ByteWriter(128)
      .u8(COOKIE_FORMAT)
      .u16(c.cipherSuite)
      .u16(c.group)
      .vec(1, c.legacySessionId)
      .vec(1, c.clientHello1Hash)
      .finish();
    const nonce = this.entropy.random(NONCE_LENGTH);
    if (nonce.length !== NONCE_LENGTH) throw tlsError('ERR_TLS_INTERNAL', 'entropy returned a short nonce');
    return concat(nonce, aeadSeal('aes-256-gcm', this.cookieKey(), nonce, COOKIE_AAD, plain, TAG_LENGTH));
  }

  /** Opens a cookie from ClientHello2; a forged, altered or foreign cookie is illegal_parameter. */
  open(cookie: Uint8Array): CookieContent {
    const plain =
      cookie.length > NONCE_LENGTH + TAG_LENGTH && this.key
        ? aeadOpen('aes-256-gcm', this.key, cookie.subarray(0, NONCE_LENGTH), COOKIE_AAD, cookie.subarray(NONCE_LENGTH), TAG_LENGTH)
        : undefined;
    if (!plain) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'HelloRetryRequest cookie does not verify');
    try {
      const r = new ByteReader(plain, 'cookie');
      if (r.u8() !== COOKIE_FORMAT) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'unknown cookie format');
      const cipherSuite = r.u16();
      const group = r.u16();
      const legacySessionId = r.vec(1, 0, 32).slice();
      const clientHello1Hash = r.vec(1, 32, 48).slice();
      r.end();
      return { cipherSuite, group, legacySessionId, clientHello1Hash };
    } catch (e) {
      // Authentic but unparsable means our own bug; still the client's cookie is what failed.
      throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `bad cookie content: ${(e as Error).message}`);
    }
  }

  wipe(): void {
    wipe(this.key);
    this.key = undefined;
  }
}
