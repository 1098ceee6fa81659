/**
 * Session ticket sealing, shared by the TLS 1.3 (NewSessionTicket) and TLS 1.2 (RFC 5077) engines.
 *   ticket = key_id(4) ‖ nonce(12) ‖ AES-256-GCM(key, nonce, aad = key_id, state) ‖ tag(16)
 * The key id is in clear so a host can route a resumption without parsing TLS; what `state` holds is
 * the engine's business (it is a secret: wipe it after use).
 * imports bytes/ and tls/ siblings only.
 */
import { SetlsError, equalBytes } from '../bytes/index.js';
import type { TicketKey, TlsEntropy } from './api.js';
import { aeadOpen, aeadSeal } from './crypto.js';

export const TICKET_KEY_ID_LENGTH = 4;
export const TICKET_NONCE_LENGTH = 12;
export const TICKET_TAG_LENGTH = 16;
/** Bytes a ticket adds to its state. */
export const TICKET_OVERHEAD = TICKET_KEY_ID_LENGTH + TICKET_NONCE_LENGTH + TICKET_TAG_LENGTH;

function checkKey(k: TicketKey): void {
  if (k.id.length !== TICKET_KEY_ID_LENGTH || k.key.length !== 32) {
    throw new SetlsError('ERR_TLS_ARGUMENT', 'a ticket key has a 4-byte id and a 32-byte key');
  }
}

/** Seals `state` under the current ticket key with a fresh nonce from `entropy`. */
export function sealTicket(current: TicketKey, state: Uint8Array, entropy: Pick<TlsEntropy, 'random'>): Uint8Array {
  checkKey(current);
  const nonce = entropy.random(TICKET_NONCE_LENGTH);
  if (nonce.length !== TICKET_NONCE_LENGTH) throw new SetlsError('ERR_TLS_INTERNAL', 'entropy returned a short nonce');
  const sealed = aeadSeal('aes-256-gcm', current.key, nonce, current.id, state, TICKET_TAG_LENGTH);
  const out = new Uint8Array(TICKET_KEY_ID_LENGTH + TICKET_NONCE_LENGTH + sealed.length);
  out.set(current.id, 0);
  out.set(nonce, TICKET_KEY_ID_LENGTH);
  out.set(sealed, TICKET_KEY_ID_LENGTH + TICKET_NONCE_LENGTH);
  return out;
}

/**
 * Opens a ticket with the key its id names (current, else one of previous). Returns the state, or
 * undefined for an unknown key id, a short or tampered ticket: the caller then does a full handshake.
 */
export function openTicket(
  keys: { readonly current: TicketKey; readonly previous?: readonly TicketKey[] },
  ticket: Uint8Array,
): Uint8Array | undefined {
  if (ticket.length < TICKET_OVERHEAD) return undefined;
  const id = ticket.subarray(0, TICKET_KEY_ID_LENGTH);
  const key = [keys.current, ...(keys.previous ?? [])].find((k) => k.id.length === TICKET_KEY_ID_LENGTH && equalBytes(k.id, id));
  if (!key || key.key.length !== 32) return undefined;
  const nonce = ticket.subarray(TICKET_KEY_ID_LENGTH, TICKET_KEY_ID_LENGTH + TICKET_NONCE_LENGTH);
  return aeadOpen('aes-256-gcm', key.key, nonce, id, ticket.subarray(TICKET_KEY_ID_LENGTH + TICKET_NONCE_LENGTH), TICKET_TAG_LENGTH);
}
