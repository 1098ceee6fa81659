/**
 * The running transcript hash (RFC 8446 §4.4.1): Transcript-Hash(M1, ..., Mn) = Hash(M1 || ... || Mn),
 * over whole handshake messages including their headers.
 *
 * After a HelloRetryRequest, ClientHello1 is replaced by a synthetic message (RFC 8446 §4.4.1):
 *   Transcript-Hash(ClientHello1, HelloRetryRequest, ... Mn) =
 *       Hash(message_hash ||        // Handshake type 254
 *            00 00 Hash.length  ||  // Handshake message length (bytes)
 *            Hash(ClientHello1) ||  // Hash of ClientHello1
 *            HelloRetryRequest  || ... || Mn)
 * imports node:crypto and tls/ siblings only.
 */
import { createHash, type Hash } from 'node:crypto';
import type { HashName } from '../crypto.js';

/** Handshake type of the synthetic message_hash message (RFC 8446 §4.4.1). */
const MESSAGE_HASH = 254;

/** The synthetic message_hash handshake message standing for ClientHello1 (header included). */
export function messageHashMessage(clientHello1Hash: Uint8Array): Uint8Array {
  const m = new Uint8Array(4 + clientHello1Hash.length);
  m[0] = MESSAGE_HASH;
  m[3] = clientHello1Hash.length;
  m.set(clientHello1Hash, 4);
  return m;
}

export class Transcript {
  private h: Hash;
  constructor(readonly alg: HashName) {
    this.h = createHash(alg);
  }
  add(message: Uint8Array): void {
    this.h.update(message);
  }
  /** A transcript that starts with message_hash(Hash(ClientHello1)) (after a HelloRetryRequest). */
  static afterRetry(alg: HashName, clientHello1Hash: Uint8Array): Transcript {
    const t = new Transcript(alg);
    t.add(messageHashMessage(clientHello1Hash));
    return t;
  }
  /** Hash of everything added so far (the running state is kept). */
  current(): Uint8Array {
    // the digest Buffer owns its ArrayBuffer (not a pool slab): a view of it, not a second copy
    const d = this.h.copy().digest();
    return new Uint8Array(d.buffer, d.byteOffset, d.length);
  }
}
