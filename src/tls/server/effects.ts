/**
 * What a server state returns: the next state and its effects as data (mint-style). The connection
 * applies effects in order; states never touch the record layer themselves.
 * imports tls/ siblings only.
 */
import type { PeerIdentity, TlsSessionInfo, TlsState } from '../api.js';
import type { TrafficKeys } from '../keyschedule/schedule.js';
import type { SuiteParams } from '../crypto.js';
import type { HandshakeMessage } from '../wire/handshake.js';

export type Effect =
  /** Negotiation settled: session facts, the suite, and the client's record_size_limit (if any). */
  | {
      readonly kind: 'negotiated';
      readonly info: TlsSessionInfo;
      readonly suite: SuiteParams;
      readonly peerRecordSizeLimit: number | undefined;
      /** The record_size_limit we announced in EncryptedExtensions (undefined = not announced: 2^14 + 1). */
      readonly ourRecordSizeLimit?: number | undefined;
      readonly earlyDataOffered: boolean;
    }
  /** A whole handshake message to send under the current write protection. */
  | { readonly kind: 'sendHandshake'; readonly message: Uint8Array }
  /** The middlebox-compatibility change_cipher_spec record (RFC 8446 §D.4). */
  | { readonly kind: 'sendChangeCipherSpec' }
  /**
   * Protect what we send from now on with these keys (ownership passes to the record layer). With
   * `trafficSecret` (application keys) the connection keeps the secret to ratchet it on KeyUpdate.
   */
  | { readonly kind: 'installWriteKeys'; readonly keys: TrafficKeys; readonly trafficSecret?: Uint8Array }
  /** Expect the client's records under these keys from now on. */
  | { readonly kind: 'installReadKeys'; readonly keys: TrafficKeys }
  /** The exporter master secret (ownership passes to the connection). */
  | { readonly kind: 'exporterSecret'; readonly secret: Uint8Array }
  /** Application data for the caller. */
  | { readonly kind: 'deliver'; readonly data: Uint8Array }
  /** The client authenticated (verified certificate chain, or restored from a resumed ticket): info.peer. */
  | { readonly kind: 'peerAuthenticated'; readonly peer: PeerIdentity }
  /** The client's Finished verified. */
  | { readonly kind: 'handshakeComplete' }
  /** The client sent KeyUpdate(update_requested): answer with one KeyUpdate before more data (RFC 8446 §4.6.3). */
  | { readonly kind: 'keyUpdateRequested' }
  /** ClientHello1 offered 0-RTT and we sent a HelloRetryRequest: skip its early data (RFC 8446 §4.2.10). */
  | { readonly kind: 'skipEarlyData' };

export interface Transition {
  readonly next: ServerState;
  readonly effects: readonly Effect[];
}

/** A state of the server handshake machine, named for what it waits for. */
export interface ServerState {
  readonly name: string;
  readonly publicState: TlsState;
  /** Whether a plaintext change_cipher_spec record (exactly 0x01) may be dropped now (RFC 8446 §5). */
  readonly acceptsChangeCipherSpec: boolean;
  handleHandshake(msg: HandshakeMessage): Transition;
  handleApplicationData(data: Uint8Array): Transition;
  /** Wipes secrets the state holds. */
  wipe(): void;
}
