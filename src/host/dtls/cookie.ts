/**
 * Stateless HelloVerifyRequest cookies (RFC 6347 §4.2.1), computed by the host before any card time
 * is spent:
 *
 *   cookie = HMAC-SHA256(secret, address ‖ port ‖ client_version ‖ random ‖ session_id ‖
 *                                 cipher_suites ‖ compression_methods ‖ extensions)[0..16)
 *
 * The secret is drawn at start and rotated every `rotateMs`; a cookie made under the previous secret
 * is still accepted (a client that got its HelloVerifyRequest just before a rotation). The host keeps
 * no per-client state for a ClientHello that has no valid cookie.
 * imports node:crypto and tls/record (framing) only.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  DTLS10_VERSION,
  HELLO_VERIFY_REQUEST,
  encodeDtlsHandshake,
  encodeDtlsRecord,
  type DtlsClientHelloParts,
} from '../../tls/record/dtls-framing.js';

export const COOKIE_LENGTH = 16;

export class CookieJar {
  private secret: Buffer;
  private previous: Buffer | undefined;
  private rotatedAt: number;

  constructor(
    private readonly rotateMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {
    this.secret = randomBytes(32);
    this.rotatedAt = now();
  }

  private rotate(): void {
    if (this.now() - this.rotatedAt < this.rotateMs) return;
    this.previous?.fill(0);
    this.previous = this.secret;
    this.secret = randomBytes(32);
    this.rotatedAt = this.now();
  }

  private mac(secret: Buffer, address: string, port: number, ch: DtlsClientHelloParts): Buffer {
    const h = createHmac('sha256', secret);
    h.update(`${address}|${port}|`);
    h.update(Uint8Array.of(ch.clientVersion >>> 8, ch.clientVersion & 0xff));
    h.update(ch.random);
    h.update(Uint8Array.of(ch.sessionId.length));
    h.update(ch.sessionId);
    h.update(ch.rest);
    return h.digest().subarray(0, COOKIE_LENGTH);
  }

  make(address: string, port: number, ch: DtlsClientHelloParts): Uint8Array {
    this.rotate();
    return new Uint8Array(this.mac(this.secret, address, port, ch));
  }

  verify(address: string, port: number, ch: DtlsClientHelloParts): boolean {
    this.rotate();
    if (ch.cookie.length !== COOKIE_LENGTH) return false;
    for (const s of [this.secret, this.previous]) {
      if (s && timingSafeEqual(this.mac(s, address, port, ch), ch.cookie)) return true;
    }
    return false;
  }
}

/**
 * The HelloVerifyRequest datagram: server_version DTLS 1.0 (RFC 6347 §4.2.1 recommends FE FF whatever
 * is negotiated later), the cookie; message_seq = the ClientHello's, record sequence number = the
 * ClientHello record's (so retries never reuse a number).
 */
export function helloVerifyRequest(cookie: Uint8Array, messageSeq: number, recordSeq: number): Uint8Array {
  const body = new Uint8Array(3 + cookie.length);
  body[0] = DTLS10_VERSION >>> 8;
  body[1] = DTLS10_VERSION & 0xff;
  body[2] = cookie.length;
  body.set(cookie, 3);
  return encodeDtlsRecord(22, 0, recordSeq, encodeDtlsHandshake(HELLO_VERIFY_REQUEST, messageSeq, body.length, 0, body), DTLS10_VERSION);
}
