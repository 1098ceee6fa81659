/**
 * protocol/export-blob: the EXPORT-SESSION answer (TLS-Tandem, docs/apdu-protocol.md §2.3): one
 * session's traffic keys and sequence numbers, which the card encodes and the host parses.
 *
 *   version(2) ‖ suite(2) ‖ readSeq(8) ‖ writeSeq(8) ‖ len(1) clientTrafficSecret
 *   ‖ len(1) serverTrafficSecret ‖ len(1) clientKey ‖ len(1) clientIv ‖ len(1) serverKey ‖ len(1) serverIv
 *
 * Secrets: every byte array of a blob and of an ExportedSessionBlob; `wipeExportedSession()` zeroes
 * them, the parser zeroes its input. imports bytes/ and protocol/.
 */
import { u16 } from '../bytes/index.js';
import { badAnswer } from './answer-reader.js';

/** One session's traffic keys, handed to the host (TLS-Tandem). SECRET: every byte array. */
export interface ExportedSessionBlob {
  readonly version: number;
  readonly cipherSuite: number;
  /** Sequence number of the next record read from the client / written to it. */
  readonly readSequence: bigint;
  readonly writeSequence: bigint;
  /** TLS 1.3: application traffic secrets; TLS 1.2: empty. */
  readonly clientTrafficSecret: Uint8Array;
  readonly serverTrafficSecret: Uint8Array;
  readonly clientKey: Uint8Array;
  /** GCM/CCM: 4-byte implicit salt (TLS 1.2) or 12-byte IV (TLS 1.3); ChaCha20: 12 bytes. */
  readonly clientIv: Uint8Array;
  readonly serverKey: Uint8Array;
  readonly serverIv: Uint8Array;
}

/** Fixed part: version, suite, two sequence numbers. */
const FIXED = 20;

function u64(n: bigint): Uint8Array {
  if (n < 0n || n > 0xffffffffffffffffn) throw new RangeError('sequence number out of range');
  const out = new Uint8Array(8);
  for (let i = 7; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function secretsOf(s: ExportedSessionBlob): Uint8Array[] {
  return [s.clientTrafficSecret, s.serverTrafficSecret, s.clientKey, s.clientIv, s.serverKey, s.serverIv];
}

/** The blob (card side). Secret: the caller wipes it (and `s`'s arrays) once sent. */
export function encodeExportBlob(s: ExportedSessionBlob): Uint8Array {
  const parts = secretsOf(s);
  for (const p of parts) if (p.length > 255) throw new RangeError('exported secret longer than 255 bytes');
  const out = new Uint8Array(FIXED + parts.reduce((a, p) => a + 1 + p.length, 0));
  out.set(u16(s.version), 0);
  out.set(u16(s.cipherSuite), 2);
  out.set(u64(s.readSequence), 4);
  out.set(u64(s.writeSequence), 12);
  let o = FIXED;
  for (const p of parts) {
    out[o++] = p.length;
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Parses a blob (host side) and zeroes `b`; ERR_CARD_RESPONSE (input zeroed too) when malformed. */
export function parseExportedSession(b: Uint8Array): ExportedSessionBlob {
  const fail = (m: string): never => {
    b.fill(0);
    return badAnswer(`EXPORT-SESSION blob: ${m}`);
  };
  if (b.length < FIXED + 6) fail(`${b.length} bytes is too short`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = FIXED;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 6; i++) {
    if (o >= b.length) fail('truncated');
    const n = b[o]!;
    if (o + 1 + n > b.length) fail('truncated');
    parts.push(b.slice(o + 1, o + 1 + n));
    o += 1 + n;
  }
  if (o !== b.length) fail(`${b.length - o} trailing bytes`);
  const out: ExportedSessionBlob = {
    version: dv.getUint16(0),
    cipherSuite: dv.getUint16(2),
    readSequence: dv.getBigUint64(4),
    writeSequence: dv.getBigUint64(12),
    clientTrafficSecret: parts[0]!,
    serverTrafficSecret: parts[1]!,
    clientKey: parts[2]!,
    clientIv: parts[3]!,
    serverKey: parts[4]!,
    serverIv: parts[5]!,
  };
  b.fill(0);
  return out;
}

/** Zeroes every secret array of an exported session. */
export function wipeExportedSession(s: ExportedSessionBlob): void {
  for (const k of secretsOf(s)) k.fill(0);
}
