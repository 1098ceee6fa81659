/**
 * operator/pki/x509: the one place the operator sets up @peculiar/x509 (reflect-metadata first,
 * node's WebCrypto as provider), plus small helpers over node:crypto: SHA-256, fingerprints, PEM,
 * SPKI of a certificate, random certificate serials. imports bytes/ and packages.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { toHex } from '../../bytes/index.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
export const DAY_MS = 24 * 3600 * 1000;

export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** Lower-case hex SHA-256 of `der` (the form stored and shown by the operator). */
export function fingerprintHex(der: Uint8Array): string {
  return toHex(sha256(der));
}

/** DER of the certificate's SubjectPublicKeyInfo. */
export function spkiOfCertificate(der: Uint8Array): Uint8Array {
  const c = new X509Certificate(der);
  return new Uint8Array(c.publicKey.export({ type: 'spki', format: 'der' }));
}

export function toPem(der: Uint8Array, label: 'CERTIFICATE' | 'X509 CRL' | 'PRIVATE KEY' | 'CERTIFICATE REQUEST'): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Every PEM block of `label` in `text`, as DER. */
export function fromPemAll(text: string, label = 'CERTIFICATE'): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) out.push(new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')));
  return out;
}

/**
 * A certificate given as PEM or as base64/hex DER → DER. Throws a plain Error on anything else
 * (callers turn it into their own code).
 */
export function certificateDer(value: string): Uint8Array {
  const v = value.trim();
  if (v.startsWith('-----BEGIN')) {
    const all = fromPemAll(v);
    if (all.length !== 1) throw new Error(`expected one PEM certificate, found ${all.length}`);
    return all[0]!;
  }
  const der = /^[0-9a-fA-F]+$/.test(v) && v.length % 2 === 0 ? Buffer.from(v, 'hex') : Buffer.from(v, 'base64');
  if (der.length < 16 || der[0] !== 0x30) throw new Error('not a DER certificate (base64 or hex) nor PEM');
  new X509Certificate(der); // parses, or throws
  return new Uint8Array(der);
}

/**
 * A random positive 16-byte serial (RFC 5280 §4.1.2.2: ≤ 20 octets, positive): top bit clear so
 * the DER INTEGER needs no sign byte, next bit set so it has no leading zero — 126 random bits.
 */
export function randomSerial(): Uint8Array {
  const s = new Uint8Array(randomBytes(16));
  s[0] = (s[0]! & 0x7f) | 0x40;
  return s;
}
