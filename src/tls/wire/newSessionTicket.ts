/**
 * NewSessionTicket codec (RFC 8446 §4.6.1).
 *
 *   struct {
 *       uint32 ticket_lifetime;
 *       uint32 ticket_age_add;
 *       opaque ticket_nonce<0..255>;
 *       opaque ticket<1..2^16-1>;
 *       Extension extensions<0..2^16-2>;
 *   } NewSessionTicket;
 *
 * No extensions are sent (no early_data: this server never accepts 0-RTT).
 * imports bytes/ and tls/ siblings only.
 */
import { ByteWriter } from '../../bytes/index.js';
import { HandshakeType } from '../constants.js';
import { encodeHandshake } from './handshake.js';

export interface NewSessionTicketParams {
  readonly lifetimeSeconds: number;
  readonly ageAdd: number;
  readonly nonce: Uint8Array;
  readonly ticket: Uint8Array;
}

export function buildNewSessionTicket(p: NewSessionTicketParams): Uint8Array {
  const w = new ByteWriter(p.ticket.length + 32).u32(p.lifetimeSeconds).u32(p.ageAdd).vec(1, p.nonce).vec(2, p.ticket).u16(0);
  return encodeHandshake(HandshakeType.newSessionTicket, w.finish());
}
