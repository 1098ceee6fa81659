/**
 * Handshake message framing (RFC 8446 §4) and reassembly across records.
 *
 *   struct {
 *       HandshakeType msg_type;    // handshake type
 *       uint24 length;             // remaining bytes in message
 *       select (Handshake.msg_type) { ... } body;
 *   } Handshake;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter, concat } from '../../bytes/index.js';
import { MAX_HANDSHAKE_MESSAGE } from '../constants.js';
import { tlsError } from '../errors.js';

export interface HandshakeMessage {
  readonly type: number;
  readonly body: Uint8Array;
  /** The whole message including its 4-byte header (what goes into the transcript). */
  readonly raw: Uint8Array;
}

export function encodeHandshake(type: number, body: Uint8Array): Uint8Array {
  return new ByteWriter(body.length + 4).u8(type).vec(3, body).finish();
}

/**
 * Collects handshake record payloads and cuts whole messages out of them. Buffers at most one
 * message (≤ MAX_HANDSHAKE_MESSAGE + header) plus one record.
 */
export class HandshakeReassembler {
  private buf: Uint8Array = new Uint8Array(0);

  /** True when part of a message is buffered (a key change or another record type must not come now). */
  get pending(): boolean {
    return this.buf.length > 0;
  }

  push(fragment: Uint8Array): void {
    this.buf = this.buf.length ? concat(this.buf, fragment) : fragment.slice();
    if (this.buf.length >= 4) {
      const len = (this.buf[1]! << 16) | (this.buf[2]! << 8) | this.buf[3]!;
      if (len > MAX_HANDSHAKE_MESSAGE) throw tlsError('ERR_TLS_DECODE', `handshake message of ${len} bytes is too large`);
    }
  }

  /** The next whole message, or undefined when more bytes are needed. */
  next(): HandshakeMessage | undefined {
    if (this.buf.length < 4) return undefined;
    const len = (this.buf[1]! << 16) | (this.buf[2]! << 8) | this.buf[3]!;
    if (len > MAX_HANDSHAKE_MESSAGE) throw tlsError('ERR_TLS_DECODE', `handshake message of ${len} bytes is too large`);
    if (this.buf.length < 4 + len) return undefined;
    const raw = this.buf.slice(0, 4 + len);
    this.buf = this.buf.slice(4 + len);
    return { type: raw[0]!, body: raw.subarray(4), raw };
  }
}
