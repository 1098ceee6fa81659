/**
 * What the states between the server flight and CONNECTED (WAIT_CERT, WAIT_CV, WAIT_FINISHED) share:
 * the transcript, the client-side secrets of the handshake, and what tickets need. Ownership of the
 * secrets moves from state to state (each state's `handedOver` flag keeps it from wiping what the
 * next state now owns).
 * SECRETS: clientHsTraffic, clientApTraffic, exporter, master (kept only when tickets are issued).
 * imports bytes/ and tls/ siblings only.
 */
import { wipe } from '../../bytes/index.js';
import type { PeerIdentity, TlsServerConfig } from '../api.js';
import type { SuiteParams } from '../crypto.js';
import type { MasterSecret, SecretObserver } from '../keyschedule/schedule.js';
import type { Transcript } from '../keyschedule/transcript.js';

export interface HandshakeContext {
  readonly config: TlsServerConfig;
  readonly suite: SuiteParams;
  readonly version: number;
  readonly transcript: Transcript;
  readonly clientHsTraffic: Uint8Array;
  readonly clientApTraffic: Uint8Array;
  readonly exporter: Uint8Array;
  /** Kept until the client Finished to derive resumption_master_secret (only when tickets are issued). */
  readonly master: MasterSecret | undefined;
  readonly observe: SecretObserver | undefined;
  readonly serverName: string | undefined;
  readonly alpn: string | undefined;
  /** 'none' when no CertificateRequest was sent (PSK handshakes included). */
  readonly clientAuth: 'none' | 'optional' | 'required';
  readonly trustAnchors: readonly Uint8Array[];
  /** The identity's deny-list check of a verified client chain (certificate_revoked). */
  readonly isRevoked: ((chain: readonly Uint8Array[]) => boolean) | undefined;
  /** The authenticated client (verified chain, or restored from a ticket). */
  readonly peer: PeerIdentity | undefined;
}

/** Wipes the context's secrets (the exporter unless it was handed to the connection). */
export function wipeContext(ctx: HandshakeContext, exporterHandedOver: boolean): void {
  wipe(ctx.clientHsTraffic, ctx.clientApTraffic);
  if (!exporterHandedOver) wipe(ctx.exporter);
  ctx.master?.wipe();
}
