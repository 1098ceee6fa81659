/**
 * The per-call accumulator a connection returns as TlsOutput: records for the peer, plaintext,
 * handshake completion, peer close and the alert. Shared by the TLS 1.3 server, the TLS 1.2 core
 * and DTLS. imports bytes/ and tls/api only.
 */
import { concat } from '../bytes/index.js';
import type { TlsOutput } from './api.js';

export class CallOutput {
  readonly records: Uint8Array[] = [];
  readonly plaintext: Uint8Array[] = [];
  handshakeComplete = false;
  peerClosed = false;
  alert: { description: number; sentByUs: boolean } | undefined;

  result(): TlsOutput {
    return {
      records: concat(...this.records),
      plaintext: this.plaintext,
      handshakeComplete: this.handshakeComplete,
      peerClosed: this.peerClosed,
      ...(this.alert ? { alert: this.alert } : {}),
    };
  }
}
