/**
 * What a TLS 1.3 session ticket carries (sealed by tickets.ts, so only this server can read it):
 *
 *   uint8  format = 1;
 *   uint16 version;                 // 0x0304
 *   uint16 cipher_suite;            // its hash must match the resuming suite's
 *   uint32 created_hi, created_lo;  // entropy.now() at issue, ms since the epoch
 *   uint32 ticket_age_add;
 *   uint32 lifetime_seconds;
 *   opaque psk<32..48>;             // HKDF-Expand-Label(resumption_master_secret, "resumption", nonce, Hash.length)
 *   opaque server_name<0..2^16-1>;  // empty = no SNI
 *   opaque alpn<0..255>;            // empty = none
 *   opaque peer_certificate<0..2^24-1>; // the client's leaf DER (mutual TLS), empty = none
 *
 * SECRETS: psk (and the encoded state as a whole).
 * imports bytes/ and tls/ siblings only.
 */
import { ByteReader, ByteWriter, DecodeError, wipe } from '../../bytes/index.js';

const FORMAT = 1;

export interface TicketState {
  readonly version: number;
  readonly cipherSuite: number;
  readonly createdMs: number;
  readonly ageAdd: number;
  readonly lifetimeSeconds: number;
  readonly psk: Uint8Array;
  readonly serverName: string | undefined;
  readonly alpn: string | undefined;
  readonly peerCertificate: Uint8Array | undefined;
}

const latin1 = (s: string | undefined): Uint8Array => Uint8Array.from(s ?? '', (c) => c.charCodeAt(0) & 0xff);
const str = (b: Uint8Array): string | undefined => (b.length ? String.fromCharCode(...b) : undefined);

export function encodeTicketState(t: TicketState): Uint8Array {
  const w = new ByteWriter(128 + (t.peerCertificate?.length ?? 0))
    .u8(FORMAT)
    .u16(t.version)
    .u16(t.cipherSuite)
    .u32(Math.floor(t.createdMs / 2 ** 32))
    .u32(t.createdMs >>> 0)
    .u32(t.ageAdd)
    .u32(t.lifetimeSeconds)
    .vec(1, t.psk)
    .vec(2, latin1(t.serverName))
    .vec(1, latin1(t.alpn))
    .vec(3, t.peerCertificate ?? new Uint8Array(0));
  return w.finish();
}

/** The state, or undefined when it is not one this engine wrote (the caller falls back to a full handshake). */
export function decodeTicketState(b: Uint8Array): TicketState | undefined {
  try {
    const r = new ByteReader(b, 'ticket state');
    if (r.u8() !== FORMAT) return undefined;
    const version = r.u16();
    const cipherSuite = r.u16();
    const createdMs = r.u32() * 2 ** 32 + r.u32();
    const ageAdd = r.u32();
    const lifetimeSeconds = r.u32();
    const psk = r.vec(1, 32, 48).slice();
    const serverName = str(r.vec(2));
    const alpn = str(r.vec(1));
    const cert = r.vec(3);
    r.end();
    return { version, cipherSuite, createdMs, ageAdd, lifetimeSeconds, psk, serverName, alpn, peerCertificate: cert.length ? cert.slice() : undefined };
  } catch (e) {
    if (e instanceof DecodeError) return undefined;
    throw e;
  }
}

export function wipeTicketState(t: TicketState | undefined): void {
  wipe(t?.psk);
}
