/** Builds ClientHello records for tests (independent of the engine's codecs). */
import { generateKeyPairSync } from 'node:crypto';

export interface ChOptions {
  sessionId?: Uint8Array;
  suites?: number[];
  compression?: number[];
  /** null = no supported_versions extension (a TLS 1.2-only client). */
  versions?: number[] | null;
  groups?: number[] | null;
  /** null = no key_share extension. Default: one fresh x25519 share. */
  shares?: { group: number; key: Uint8Array }[] | null;
  sni?: string;
  alpn?: string[];
  sigalgs?: number[] | null;
  recordSizeLimit?: number;
  extra?: { type: number; data: Uint8Array }[];
  recordVersion?: number;
}

const u16 = (n: number) => [n >> 8, n & 255];
const u24 = (n: number) => [n >> 16, (n >> 8) & 255, n & 255];
const vec16 = (b: number[]) => [...u16(b.length), ...b];
const vec8 = (b: number[]) => [b.length, ...b];

export function x25519Public(): Uint8Array {
  const spki = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' });
  return new Uint8Array(spki.subarray(spki.length - 32));
}

/** The ClientHello handshake message (with its 4-byte header). */
export function clientHelloMessage(o: ChOptions = {}): Uint8Array {
  const exts: number[] = [];
  const ext = (type: number, data: number[]) => exts.push(...u16(type), ...vec16(data));
  if (o.sni !== undefined) {
    const name = [...Buffer.from(o.sni, 'latin1')];
    ext(0, vec16([0, ...vec16(name)]));
  }
  if (o.groups !== null) ext(10, vec16((o.groups ?? [0x001d, 0x0017]).flatMap(u16)));
  if (o.sigalgs !== null) ext(13, vec16((o.sigalgs ?? [0x0403, 0x0804]).flatMap(u16)));
  if (o.alpn) ext(16, vec16(o.alpn.flatMap((p) => vec8([...Buffer.from(p, 'latin1')]))));
  if (o.recordSizeLimit !== undefined) ext(28, u16(o.recordSizeLimit));
  if (o.versions !== null) ext(43, vec8((o.versions ?? [0x0304, 0x0303]).flatMap(u16)));
  if (o.shares !== null) {
    const shares = o.shares ?? [{ group: 0x001d, key: x25519Public() }];
    ext(51, vec16(shares.flatMap((s) => [...u16(s.group), ...vec16([...s.key])])));
  }
  for (const e of o.extra ?? []) ext(e.type, [...e.data]);
  const body = [
    3, 3,
    ...new Array(32).fill(7),
    ...vec8([...(o.sessionId ?? new Uint8Array(0))]),
    ...vec16((o.suites ?? [0x1301]).flatMap(u16)),
    ...vec8(o.compression ?? [0]),
    ...vec16(exts),
  ];
  return Uint8Array.from([1, ...u24(body.length), ...body]);
}

export function record(type: number, body: Uint8Array, version = 0x0301): Uint8Array {
  return Uint8Array.from([type, ...u16(version), ...u16(body.length), ...body]);
}

export function clientHelloRecord(o: ChOptions = {}): Uint8Array {
  return record(22, clientHelloMessage(o), o.recordVersion ?? 0x0301);
}
