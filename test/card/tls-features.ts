/**
 * Helpers for the card's TLS 1.2 / mutual TLS / resumption / PSK / export commands
 * (docs/apdu-protocol.md §2.3): command builders, client certificates, and one record round trip
 * through DECRYPT/ENCRYPT.
 */
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import type * as tls from 'node:tls';
import { concat, encodeTlvs, readU16, type Tlv } from '../../src/bytes/index.js';
import { parseEapTls } from '../../src/eap/index.js';
import type { EmulatedCard } from '../../src/card/index.js';
import { type TestCa, a0, cmd, eapResponse, utf8, xcv } from './helpers.js';
import { once, type ClientSession } from './tls-host.js';

export const putPolicy = (hex: string): Uint8Array => cmd(0xa0, 0xdc, 0x00, 0x00, Uint8Array.from(Buffer.from(hex, 'hex')));
export const putIdentityPolicy = (items: Tlv[]): Uint8Array => cmd(0xa0, 0xde, 0x00, 0x00, encodeTlvs(items));
export const labelTlv = (label: string): Tlv => ({ tag: 0x80, value: utf8(label) });

/** PUT-TRUST-ANCHOR (P2 00 add / 01 clear) as a logical command (the host segments it). */
export function putTrustAnchor(card: EmulatedCard, label: string, cert: Uint8Array | undefined, extended = false) {
  const l = utf8(label);
  const data = concat(Uint8Array.of(l.length), l, cert ?? new Uint8Array(0));
  return xcv(card, a0(0xd2, 0x00, cert ? 0x00 : 0x01, data, 0), extended);
}

export const putPsk = (identity: Uint8Array, key?: Uint8Array, hash?: number): Uint8Array =>
  cmd(
    0xa0,
    0xd4,
    0x00,
    key ? 0x00 : 0x01,
    encodeTlvs([{ tag: 0x50, value: identity }, ...(key ? [{ tag: 0x51, value: key }] : []), ...(hash !== undefined ? [{ tag: 0x52, value: Uint8Array.of(hash) }] : [])]),
  );

export const exportSessionCmd = (): Uint8Array => cmd(0xa0, 0xa8, 0x00, 0x00, new Uint8Array(0), 256);

export function exporterCmd(label: string, length: number, context?: Uint8Array): Uint8Array {
  return cmd(
    0xa0,
    0xaa,
    0x00,
    0x00,
    encodeTlvs([
      { tag: 0x60, value: utf8(label) },
      ...(context ? [{ tag: 0x61, value: context }] : []),
      { tag: 0x62, value: Uint8Array.of(length >> 8, length & 0xff) },
    ]),
    65536,
    true,
  );
}

/** A client key pair and a certificate from `ca` (P-256), as PEM for Node's client. */
export async function clientCredentials(ca: TestCa, cn: string, dns: string[]): Promise<{ key: string; cert: string; der: Uint8Array }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = await ca.issue(new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })), cn, dns);
  return { key: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), cert: new X509Certificate(der).toString(), der };
}

/**
 * One request/response through the card's record layer: the client writes `ping`, DECRYPT gives it
 * back; ENCRYPT `pong`, the client reads it. Returns the EAP Identifier to use next.
 */
export async function roundTrip(card: EmulatedCard, s: ClientSession, id = s.hs.lastId, ping = 'ping', pong = 'pong'): Promise<number> {
  s.client.write(ping);
  let r = await xcv(card, a0(0x80, 0x00, 0x00, eapResponse(id, await s.pipe.nextRecord()), 65536), true);
  assert.equal(r.sw, 0x9000, 'DECRYPT');
  let p = parseEapTls(r.data);
  assert.equal(new TextDecoder().decode(p.data.subarray(4, 4 + readU16(p.data, 2))), ping);
  const got = once<Buffer>(s.client, 'data');
  r = await xcv(card, a0(0x80, 0x00, 0x97, eapResponse(p.id, utf8(pong)), 65536), true);
  assert.equal(r.sw, 0x9000, 'ENCRYPT');
  p = parseEapTls(r.data);
  s.pipe.deliver(p.data);
  assert.equal((await got).toString(), pong);
  return p.id;
}

/** Resolves with the first session (ticket / session ID) Node's client reports. */
export function nextSession(client: tls.TLSSocket, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no session from the client')), timeoutMs);
    client.once('session', (b: Buffer) => {
      clearTimeout(t);
      resolve(b);
    });
  });
}
