/**
 * CONNECTED: application data flows; post-handshake messages are not supported yet.
 * imports tls/ siblings only.
 */
import { tlsError } from '../errors.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import type { ServerState, Transition } from './effects.js';

export class ExpectTraffic implements ServerState {
  readonly name = 'ExpectTraffic';
  readonly publicState = 'connected' as const;
  readonly acceptsChangeCipherSpec = false;

  handleHandshake(msg: HandshakeMessage): Transition {
    // TODO(KeyUpdate): handle key_update (RFC 8446 §4.6.3) here; until then it is unexpected.
    throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `post-handshake message type ${msg.type} not supported`);
  }

  handleApplicationData(data: Uint8Array): Transition {
    return { next: this, effects: [{ kind: 'deliver', data }] };
  }

  wipe(): void {}
}
