/**
 * pre_shared_key and psk_key_exchange_modes (RFC 8446 §4.2.9, §4.2.11).
 *
 *   struct { opaque identity<1..2^16-1>; uint32 obfuscated_ticket_age; } PskIdentity;
 *   opaque PskBinderEntry<32..255>;
 *   struct {
 *       PskIdentity identities<7..2^16-1>;
 *       PskBinderEntry binders<33..2^16-1>;
 *   } OfferedPsks;
 *   struct { select (Handshake.msg_type) {
 *       case client_hello: OfferedPsks;
 *       case server_hello: uint16 selected_identity; }; } PreSharedKeyExtension;
 *
 *   enum { psk_ke(0), psk_dhe_ke(1), (255) } PskKeyExchangeMode;
 *   struct { PskKeyExchangeMode ke_modes<1..255>; } PskKeyExchangeModes;
 *
 * imports bytes/ and tls/ siblings only.
 */
import { ByteReader, ByteWriter } from '../../bytes/index.js';
import { tlsError } from '../errors.js';

export const PskKeyExchangeMode = {
  pskKe: 0,
  pskDheKe: 1,
} as const;

export interface PskIdentity {
  readonly identity: Uint8Array;
  readonly obfuscatedTicketAge: number;
}

export interface OfferedPsks {
  readonly identities: readonly PskIdentity[];
  readonly binders: readonly Uint8Array[];
  /** Length of the binders vector including its 2-byte length prefix (it ends the ClientHello). */
  readonly bindersLength: number;
}

export function parseOfferedPsks(data: Uint8Array): OfferedPsks {
  const r = new ByteReader(data, 'pre_shared_key');
  const identities = r.block(2, (l) => {
    const list: PskIdentity[] = [];
    while (!l.done) list.push({ identity: l.vec(2, 1).slice(), obfuscatedTicketAge: l.u32() });
    return list;
  });
  const bindersStart = r.offset;
  const binders = r.block(2, (l) => {
    const list: Uint8Array[] = [];
    while (!l.done) list.push(l.vec(1, 32).slice());
    return list;
  });
  r.end();
  if (identities.length === 0 || binders.length === 0) throw tlsError('ERR_TLS_DECODE', 'empty pre_shared_key lists');
  if (identities.length !== binders.length) {
    throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `${identities.length} PSK identities but ${binders.length} binders`);
  }
  return { identities, binders, bindersLength: data.length - bindersStart };
}

export function parsePskKeyExchangeModes(data: Uint8Array): number[] {
  const r = new ByteReader(data, 'psk_key_exchange_modes');
  const modes = Array.from(r.vec(1, 1));
  r.end();
  return modes;
}

export function buildPreSharedKeyServerHello(selectedIdentity: number): Uint8Array {
  return new ByteWriter(2).u16(selectedIdentity).finish();
}
