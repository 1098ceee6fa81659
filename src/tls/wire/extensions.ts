/**
 * Extension bodies the server reads from ClientHello and writes into ServerHello and
 * EncryptedExtensions. Each codec carries its RFC struct. Parsers consume their input exactly.
 * imports bytes/ and tls/ siblings only.
 */
import { ByteReader, ByteWriter } from '../../bytes/index.js';
import { tlsError } from '../errors.js';

function reader(data: Uint8Array, what: string): ByteReader {
  return new ByteReader(data, what);
}

/**
 * RFC 6066 §3:
 *   struct { NameType name_type; select (name_type) { case host_name: HostName; } name; } ServerName;
 *   enum { host_name(0), (255) } NameType;
 *   opaque HostName<1..2^16-1>;
 *   struct { ServerName server_name_list<1..2^16-1> } ServerNameList;
 * Returns the host_name (lower-cased ASCII). Unknown name types are skipped.
 */
export function parseServerName(data: Uint8Array): string {
  const r = reader(data, 'server_name');
  let host: string | undefined;
  r.block(2, (l) => {
    if (l.done) throw tlsError('ERR_TLS_DECODE', 'empty server_name_list');
    while (!l.done) {
      const type = l.u8();
      const name = l.vec(2, 1);
      if (type !== 0) continue;
      if (host !== undefined) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'two host_name entries');
      for (const c of name) {
        // RFC 6066 §3: a DNS host name in ASCII. The vector decoded; a byte no host name holds
        // (control, space, DEL, non-ASCII) is a field with an incorrect value: illegal_parameter
        // (docs/architecture.md, "TLS engine choices").
        if (c <= 0x20 || c >= 0x7f) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'server_name is not a DNS host name');
      }
      host = String.fromCharCode(...name).toLowerCase();
    }
  });
  r.end();
  if (host === undefined) throw tlsError('ERR_TLS_DECODE', 'server_name without host_name');
  return host;
}

/** RFC 6066 §3: the server's empty server_name (ack) in EncryptedExtensions. */
export function buildServerNameAck(): Uint8Array {
  return new Uint8Array(0);
}

/**
 * RFC 8446 §4.2.7: struct { NamedGroup named_group_list<2..2^16-1>; } NamedGroupList;
 */
export function parseSupportedGroups(data: Uint8Array): number[] {
  const r = reader(data, 'supported_groups');
  const out = r.block(2, (l) => {
    const list: number[] = [];
    while (!l.done) list.push(l.u16());
    return list;
  });
  r.end();
  if (out.length === 0) throw tlsError('ERR_TLS_DECODE', 'empty supported_groups');
  return out;
}

export function buildSupportedGroups(groups: readonly number[]): Uint8Array {
  return new ByteWriter().block(2, (w) => groups.forEach((g) => w.u16(g))).finish();
}

/**
 * RFC 8446 §4.2.8:
 *   struct { NamedGroup group; opaque key_exchange<1..2^16-1>; } KeyShareEntry;
 *   struct { KeyShareEntry client_shares<0..2^16-1>; } KeyShareClientHello;
 */
export interface KeyShareEntry {
  readonly group: number;
  readonly keyExchange: Uint8Array;
}

export function parseKeyShareClientHello(data: Uint8Array): KeyShareEntry[] {
  const r = reader(data, 'key_share');
  const out = r.block(2, (l) => {
    const list: KeyShareEntry[] = [];
    const seen = new Set<number>();
    while (!l.done) {
      const group = l.u16();
      const keyExchange = l.vec(2, 1);
      if (seen.has(group)) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `two key shares for group ${group}`);
      seen.add(group);
      list.push({ group, keyExchange });
    }
    return list;
  });
  r.end();
  return out;
}

/** RFC 8446 §4.2.8: struct { KeyShareEntry server_share; } KeyShareServerHello; */
export function buildKeyShareServerHello(group: number, keyExchange: Uint8Array): Uint8Array {
  return new ByteWriter().u16(group).vec(2, keyExchange).finish();
}

/**
 * RFC 8446 §4.2.8: in a HelloRetryRequest, struct { NamedGroup selected_group; } KeyShareHelloRetryRequest;
 */
export function buildKeyShareHelloRetryRequest(group: number): Uint8Array {
  return new ByteWriter(2).u16(group).finish();
}

/**
 * RFC 8446 §4.2.2: struct { opaque cookie<1..2^16-1>; } Cookie;
 */
export function parseCookie(data: Uint8Array): Uint8Array {
  const r = reader(data, 'cookie');
  const cookie = r.vec(2, 1);
  r.end();
  return cookie;
}

export function buildCookie(cookie: Uint8Array): Uint8Array {
  return new ByteWriter(cookie.length + 2).vec(2, cookie).finish();
}

/**
 * RFC 8446 §4.2.1:
 *   struct { select (Handshake.msg_type) {
 *       case client_hello: ProtocolVersion versions<2..254>;
 *       case server_hello: ProtocolVersion selected_version; }; } SupportedVersions;
 */
export function parseSupportedVersionsClientHello(data: Uint8Array): number[] {
  const r = reader(data, 'supported_versions');
  const out = r.block(1, (l) => {
    const list: number[] = [];
    while (!l.done) list.push(l.u16());
    return list;
  });
  r.end();
  if (out.length === 0) throw tlsError('ERR_TLS_DECODE', 'empty supported_versions');
  return out;
}

export function buildSupportedVersionsServerHello(version: number): Uint8Array {
  return new ByteWriter(2).u16(version).finish();
}

/**
 * RFC 8446 §4.2.3: struct { SignatureScheme supported_signature_algorithms<2..2^16-2>; } SignatureSchemeList;
 */
export function parseSignatureAlgorithms(data: Uint8Array): number[] {
  const r = reader(data, 'signature_algorithms');
  const out = r.block(2, (l) => {
    const list: number[] = [];
    while (!l.done) list.push(l.u16());
    return list;
  });
  r.end();
  if (out.length === 0) throw tlsError('ERR_TLS_DECODE', 'empty signature_algorithms');
  return out;
}

/**
 * RFC 7301 §3.1:
 *   opaque ProtocolName<1..2^8-1>;
 *   struct { ProtocolName protocol_name_list<2..2^16-1> } ProtocolNameList;
 * Names are returned as latin1 strings (byte-for-byte).
 */
export function parseAlpn(data: Uint8Array): string[] {
  const r = reader(data, 'application_layer_protocol_negotiation');
  const out = r.block(2, (l) => {
    const list: string[] = [];
    while (!l.done) list.push(String.fromCharCode(...l.vec(1, 1)));
    return list;
  });
  r.end();
  if (out.length === 0) throw tlsError('ERR_TLS_DECODE', 'empty ALPN list');
  return out;
}

/** The server's ALPN answer: a ProtocolNameList with exactly one name. */
export function buildAlpn(protocol: string): Uint8Array {
  const name = Uint8Array.from(protocol, (c) => c.charCodeAt(0) & 0xff);
  return new ByteWriter().block(2, (w) => w.vec(1, name)).finish();
}

/** RFC 8449 §4: uint16 RecordSizeLimit; values below 64 are illegal_parameter. */
export function parseRecordSizeLimit(data: Uint8Array): number {
  const r = reader(data, 'record_size_limit');
  const v = r.u16();
  r.end();
  if (v < 64) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `record_size_limit ${v} < 64`);
  return v;
}

export function buildRecordSizeLimit(limit: number): Uint8Array {
  return new ByteWriter(2).u16(limit).finish();
}

/**
 * RFC 6066 §4: enum { 2^9(1), 2^10(2), 2^11(3), 2^12(4), (255) } MaxFragmentLength;
 * Returns the maximum plaintext fragment length in bytes; any other value is illegal_parameter.
 */
export function parseMaxFragmentLength(data: Uint8Array): { code: number; length: number } {
  const r = reader(data, 'max_fragment_length');
  const code = r.u8();
  r.end();
  if (code < 1 || code > 4) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `max_fragment_length code ${code}`);
  return { code, length: 1 << (8 + code) };
}

/** The server's echo of the client's max_fragment_length code (RFC 6066 §4). */
export function buildMaxFragmentLength(code: number): Uint8Array {
  return Uint8Array.of(code);
}
