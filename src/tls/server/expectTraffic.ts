/**
 * CONNECTED: application data flows; the only post-handshake message accepted from a client is
 * KeyUpdate (RFC 8446 §4.6.3). On KeyUpdate the client application traffic secret is ratcheted
 * ("traffic upd", §7.2) and the read keys replaced; update_requested additionally asks the connection
 * to send one KeyUpdate(update_not_requested) of its own (the write side lives in connection.ts).
 * Anything else (e.g. a client NewSessionTicket, a second Finished) is unexpected_message.
 * SECRETS: the current client application traffic secret (wiped on ratchet and wipe()).
 * imports bytes/ and tls/ siblings only.
 */
import { wipe } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import type { SuiteParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import { nextTrafficSecret, trafficKeys } from '../keyschedule/schedule.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { parseKeyUpdate } from '../wire/keyUpdate.js';
import type { Effect, ServerState, Transition } from './effects.js';

export class ExpectTraffic implements ServerState {
  readonly name = 'ExpectTraffic';
  readonly publicState = 'connected' as const;
  readonly acceptsChangeCipherSpec = false;

  constructor(
    private readonly suite: SuiteParams,
    private clientApTraffic: Uint8Array,
  ) {}

  handleHandshake(msg: HandshakeMessage): Transition {
    if (msg.type !== HandshakeType.keyUpdate) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `post-handshake message type ${msg.type} not supported`);
    }
    const updateRequested = parseKeyUpdate(msg.body); // decode_error / illegal_parameter
    const next = nextTrafficSecret(this.suite, this.clientApTraffic);
    wipe(this.clientApTraffic);
    this.clientApTraffic = next;
    const effects: Effect[] = [{ kind: 'installReadKeys', keys: trafficKeys(this.suite, next) }];
    if (updateRequested) effects.push({ kind: 'keyUpdateRequested' });
    return { next: this, effects };
  }

  handleApplicationData(data: Uint8Array): Transition {
    return { next: this, effects: [{ kind: 'deliver', data }] };
  }

  /** A copy of the current client application traffic secret (session export only). SECRET. */
  clientTrafficSecret(): Uint8Array {
    return this.clientApTraffic.slice();
  }

  wipe(): void {
    wipe(this.clientApTraffic);
  }
}
