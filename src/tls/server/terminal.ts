/**
 * Terminal states: Closed (close_notify exchanged or disposed) and Failed (a fatal alert was sent or
 * received). Nothing is processed in them.
 * imports tls/ siblings only.
 */
import type { TlsState } from '../api.js';
import { tlsError } from '../errors.js';
import type { ServerState, Transition } from './effects.js';

class Terminal implements ServerState {
  readonly acceptsChangeCipherSpec = false;
  constructor(
    readonly name: string,
    readonly publicState: TlsState,
  ) {}
  handleHandshake(): Transition {
    throw tlsError('ERR_TLS_STATE', `connection is ${this.publicState}`);
  }
  handleApplicationData(): Transition {
    throw tlsError('ERR_TLS_STATE', `connection is ${this.publicState}`);
  }
  wipe(): void {}
}

export const CLOSED: ServerState = new Terminal('Closed', 'closed');
export const FAILED: ServerState = new Terminal('Failed', 'failed');
