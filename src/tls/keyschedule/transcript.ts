/**
 * The running transcript hash (RFC 8446 §4.4.1): Transcript-Hash(M1, ..., Mn) = Hash(M1 || ... || Mn),
 * over whole handshake messages including their headers. HelloRetryRequest's message_hash
 * replacement slots in here later.
 * imports node:crypto and tls/ siblings only.
 */
import { createHash, type Hash } from 'node:crypto';
import type { HashName } from '../crypto.js';

export class Transcript {
  private h: Hash;
  constructor(readonly alg: HashName) {
    this.h = createHash(alg);
  }
  add(message: Uint8Array): void {
    this.h.update(message);
  }
  /** Hash of everything added so far (the running state is kept). */
  current(): Uint8Array {
    return new Uint8Array(this.h.copy().digest());
  }
}
