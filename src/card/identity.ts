/**
 * Identity key material: key generation inside the card (P-256 or RSA-2048), the TLS signer handed
 * to the engine, the PKCS#10 CSR signed inside the card, and certificate chain checks for PUT-CHAIN.
 * Private keys stay KeyObjects here and are never exported except by state.ts into the sealed
 * store (and by signers.ts, in deterministic test mode, as a BigInt). imports bytes/, tls/ (api types
 * and constants) and node built-ins.
 */
import { X509Certificate, constants as cryptoConstants, createPrivateKey, generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { equalBytes } from '../bytes/index.js';
import type { TlsIdentity } from '../tls/api.js';
import { SignatureScheme } from '../tls/constants.js';
import { CsrTag } from '../protocol/index.js';
import { Limits } from './constants.js';
import { bits, oid, seq, set, smallInt, tlv, utf8, octets } from './der.js';
import { cardErr } from './errors.js';
import { leafHostNames } from './names.js';
import { ecdsaP256Sign, rsaPssSign, type PssHash, type RandomSource } from './signers.js';
import type { IdentityRecord, KeyTypeName } from './state.js';
import { DEFAULT_IDENTITY_POLICY, decodeLabel } from './state.js';
import { parseTlvs } from '../bytes/index.js';

/**
 * Generates a key pair with node:crypto (its own RNG, also in deterministic card mode): P-256, or
 * RSA-2048 with e = 65537. The private key never leaves the card.
 */
export function generateIdentity(label: string, keyType: KeyTypeName): IdentityRecord {
  // Encoded by the generation and the private key imported back: a KeyObject made by
  // generateKeyPairSync can deadlock a later JWK export (the ECDSA signer's; tls/crypto.ts JWK_PUBLIC)
  const pair =
    keyType === 'rsa2048'
      ? generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001, publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } })
      : generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pair.privateKey, format: 'der', type: 'pkcs8' });
  } finally {
    pair.privateKey.fill(0); // held the private key
  }
  const spki = new Uint8Array(pair.publicKey);
  return { label, keyType, privateKey, spki, chain: [], hostNames: [], ...DEFAULT_IDENTITY_POLICY };
}

/** RSA-PSS schemes (rsaEncryption keys), salt length = hash length. */
const PSS_HASH: ReadonlyMap<number, PssHash> = new Map([
  [SignatureScheme.rsa_pss_rsae_sha256, 'sha256'],
  [SignatureScheme.rsa_pss_rsae_sha384, 'sha384'],
  [SignatureScheme.rsa_pss_rsae_sha512, 'sha512'],
]);
const PSS_SALT: Record<PssHash, number> = { sha256: 32, sha384: 48, sha512: 64 };

/** TLS SignatureScheme values an identity can produce, in the card's preference order. */
export function identitySchemes(keyType: KeyTypeName): number[] {
  return keyType === 'rsa2048' ? [...PSS_HASH.keys()] : [SignatureScheme.ecdsa_secp256r1_sha256];
}

/**
 * The engine's view of an identity: its chain, a signer, and its client-auth policy and trust anchors
 * (`rules`: the security domain's client CAs and deny-list replace / add to them). P-256: ecdsa_secp256r1_sha256 (DER
 * signatures); RSA-2048: rsa_pss_rsae_sha256/384/512. With `random` (deterministic card mode) the
 * ECDSA nonce and the PSS salt come from it; otherwise from node:crypto.
 */
export function tlsIdentity(
  rec: IdentityRecord,
  random?: RandomSource,
  rules?: { readonly trustAnchors?: readonly Uint8Array[]; readonly isRevoked?: (chain: readonly Uint8Array[]) => boolean },
): TlsIdentity {
  const key = rec.privateKey;
  const schemes = identitySchemes(rec.keyType);
  return {
    certificateChain: rec.chain.map((c) => c.slice()),
    signatureSchemes: schemes,
    clientAuth: rec.clientAuth,
    trustAnchors: (rules?.trustAnchors ?? rec.trustAnchors).map((c) => c.slice()),
    isRevoked: rules?.isRevoked,
    sign(scheme: number, data: Uint8Array): Uint8Array {
      if (!schemes.includes(scheme)) {
        throw cardErr.data(`identity ${rec.label} cannot sign with scheme 0x${scheme.toString(16)}`);
      }
      const pss = PSS_HASH.get(scheme);
      if (pss) {
        if (random) return rsaPssSign(key, pss, data, random);
        return new Uint8Array(nodeSign(pss, data, { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT[pss] }));
      }
      if (random) return ecdsaP256Sign(key, data, random);
      return new Uint8Array(nodeSign('sha256', data, { key, dsaEncoding: 'der' }));
    },
  };
}

export interface CsrRequest {
  readonly label: string;
  readonly commonName: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly Uint8Array[];
}

const DNS_RE = /^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Parses the GET-CSR TLV (`80` label, `81` CN, `82` DNS*, `83` IP*); throws 6A80 on anything else. */
export function parseCsrRequest(data: Uint8Array): CsrRequest {
  let items;
  try {
    items = parseTlvs(data);
  } catch (e) {
    throw cardErr.data('GET-CSR data is not a TLV sequence', e);
  }
  let label: string | undefined;
  let commonName: string | undefined;
  const dnsNames: string[] = [];
  const ipAddresses: Uint8Array[] = [];
  const text = (v: Uint8Array, what: string): string => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(v);
    } catch (e) {
      throw cardErr.data(`${what} is not UTF-8`, e);
    }
  };
  for (const t of items) {
    switch (t.tag) {
      case CsrTag.label:
        if (label !== undefined) throw cardErr.data('GET-CSR: label given twice');
        label = decodeLabel(t.value);
        break;
      case CsrTag.commonName: {
        if (commonName !== undefined) throw cardErr.data('GET-CSR: common name given twice');
        const cn = text(t.value, 'common name');
        // eslint-disable-next-line no-control-regex
        if (t.value.length < 1 || t.value.length > Limits.maxCommonName || /[\u0000-\u001f\u007f]/.test(cn)) {
          throw cardErr.data('GET-CSR: common name must be 1–64 bytes without control characters');
        }
        commonName = cn;
        break;
      }
      case CsrTag.dnsName: {
        const dns = text(t.value, 'DNS name');
        if (dns.length > Limits.maxDnsName || !DNS_RE.test(dns)) throw cardErr.data('GET-CSR: invalid DNS name');
        dnsNames.push(dns);
        break;
      }
      case CsrTag.ipAddress:
        if (t.value.length !== 4 && t.value.length !== 16) throw cardErr.data('GET-CSR: an IP address is 4 or 16 bytes');
        ipAddresses.push(t.value);
        break;
      default:
        throw cardErr.data(`GET-CSR: unknown tag 0x${t.tag.toString(16)}`);
    }
  }
  if (label === undefined) throw cardErr.data('GET-CSR: label (tag 80) missing');
  if (commonName === undefined) throw cardErr.data('GET-CSR: subject common name (tag 81) missing');
  if (dnsNames.length + ipAddresses.length > Limits.maxSans) throw cardErr.data('GET-CSR: too many subject alternative names');
  return { label, commonName, dnsNames, ipAddresses };
}

const OID_CN = '2.5.4.3';
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SAN = '2.5.29.17';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_SHA256_WITH_RSA = '1.2.840.113549.1.1.11';
const DER_NULL = Uint8Array.of(0x05, 0x00);

/**
 * A PKCS#10 CertificationRequest (RFC 2986) for the identity's key, signed inside the card:
 * ecdsa-with-SHA256 for P-256 (nonce from `random` in deterministic mode), sha256WithRSAEncryption
 * (PKCS#1 v1.5, deterministic) for RSA.
 */
export function buildCsr(rec: IdentityRecord, req: CsrRequest, random?: RandomSource): Uint8Array {
  const name = seq(set(seq(oid(OID_CN), utf8(req.commonName))));
  const sans = [
    ...req.dnsNames.map((d) => tlv(0x82, new TextEncoder().encode(d))), // [2] dNSName IA5String
    ...req.ipAddresses.map((ip) => tlv(0x87, ip)), // [7] iPAddress
  ];
  const attributes = sans.length
    ? tlv(0xa0, seq(oid(OID_EXTENSION_REQUEST), set(seq(seq(oid(OID_SAN), octets(seq(...sans)))))))
    : tlv(0xa0);
  const info = seq(smallInt(0), name, rec.spki, attributes);
  if (rec.keyType === 'rsa2048') {
    const sig = new Uint8Array(nodeSign('sha256', info, { key: rec.privateKey, padding: cryptoConstants.RSA_PKCS1_PADDING }));
    return seq(info, seq(oid(OID_SHA256_WITH_RSA), DER_NULL), bits(sig));
  }
  const sig = random ? ecdsaP256Sign(rec.privateKey, info, random) : new Uint8Array(nodeSign('sha256', info, { key: rec.privateKey, dsaEncoding: 'der' }));
  return seq(info, seq(oid(OID_ECDSA_SHA256)), bits(sig));
}

/** Parses PUT-CHAIN data: labelLen(1) label ‖ (certLen(3) certDER)+, leaf first. */
export function parseChainData(data: Uint8Array): { label: string; certs: Uint8Array[] } {
  if (data.length < 1) throw cardErr.data('PUT-CHAIN: empty data');
  const n = data[0]!;
  if (data.length < 1 + n) throw cardErr.data('PUT-CHAIN: label longer than the data');
  const label = decodeLabel(data.subarray(1, 1 + n));
  const certs: Uint8Array[] = [];
  let o = 1 + n;
  while (o < data.length) {
    if (o + 3 > data.length) throw cardErr.data('PUT-CHAIN: truncated certificate length');
    const len = (data[o]! << 16) | (data[o + 1]! << 8) | data[o + 2]!;
    o += 3;
    if (len < 1 || o + len > data.length) throw cardErr.data('PUT-CHAIN: certificate length exceeds the data');
    certs.push(data.slice(o, o + len));
    o += len;
  }
  if (certs.length < 1) throw cardErr.data('PUT-CHAIN: no certificate');
  if (certs.length > Limits.maxChainCerts) throw cardErr.data(`PUT-CHAIN: more than ${Limits.maxChainCerts} certificates`);
  if (certs.reduce((a, c) => a + c.length, 0) > Limits.maxChainBytes) throw cardErr.data('PUT-CHAIN: chain too large');
  return { label, certs };
}

/**
 * Checks a chain for an identity: every certificate parses, the leaf's public key is the
 * identity's key, and each certificate is issued by the next one. Throws 6A80. Returns the leaf's
 * host names (SAN DNS names, for SNI selection).
 */
export function checkChain(rec: IdentityRecord, certs: readonly Uint8Array[]): string[] {
  let parsed: X509Certificate[];
  try {
    parsed = certs.map((c) => new X509Certificate(c));
  } catch (e) {
    throw cardErr.data('PUT-CHAIN: a certificate does not parse', e);
  }
  const leafSpki = new Uint8Array(parsed[0]!.publicKey.export({ format: 'der', type: 'spki' }));
  if (!equalBytes(leafSpki, rec.spki)) throw cardErr.data(`PUT-CHAIN: the leaf certificate is not for the key of identity ${rec.label}`);
  for (let i = 0; i + 1 < parsed.length; i++) {
    if (!parsed[i]!.checkIssued(parsed[i + 1]!)) throw cardErr.data(`PUT-CHAIN: certificate ${i} is not issued by certificate ${i + 1}`);
  }
  return leafHostNames(certs[0]!);
}
