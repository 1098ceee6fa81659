/**
 * operator/est/client-csr: what a CSR from an EST client that is not a card may ask for, and the
 * profile of an enrolment credential that bounds it.
 *
 * The CSR: PKCS#10 whose self-signature verifies; key ECDSA P-256 or P-384, Ed25519, or RSA of
 * 2048 to 8192 bits; subject exactly one RDN holding one CN of 1–64 characters from
 * [A-Za-z0-9 ._:@-] (no wildcard; anything else in the subject — O, OU, several CNs — is refused, not
 * dropped); subjectAltName, if requested, only dNSName and iPAddress entries (at most 16). Other
 * requested extensions (key usage, basic constraints …) are ignored: the issuing CA sets those
 * itself (a leaf: digitalSignature, serverAuth + clientAuth, CRL distribution point).
 * The profile (stored with the credential): { cn: [pattern], dns: [pattern], ip: [address],
 * days?: n }. A pattern is a name (case-insensitive) or `*.suffix`, which matches one or more
 * labels before `.suffix`. The CN must match a `cn` or a `dns` pattern; each dNSName a `dns`
 * pattern; each iPAddress one of `ip` exactly. Validity: the profile's days, at most the
 * operator's. imports pki/x509, errors, store/types.
 */
import { createPublicKey } from 'node:crypto';
import { isIP } from 'node:net';
import { OpError, OpErrorCode } from '../errors.js';
import type { JsonObject } from '../store/types.js';
import { sha256, x509 } from '../pki/x509.js';

export interface ClientCsr {
  readonly spkiDer: Uint8Array;
  readonly spkiSha256: Uint8Array;
  /** 'p256', 'p384', 'ed25519' or 'rsa<bits>'. */
  readonly alg: string;
  readonly cn: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

export interface EstProfile {
  readonly cn: readonly string[];
  readonly dns: readonly string[];
  readonly ip: readonly string[];
  readonly days: number | null;
}

const CN_RE = /^[A-Za-z0-9 ._:@-]{1,64}$/;
const PATTERN_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const DNS_RE = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const SAN_OID = '2.5.29.17';

/** Validates and normalises a profile (credential creation); ERR_OP_BAD_REQUEST when it is not one. */
export function makeProfile(p: { cn?: readonly string[]; dns?: readonly string[]; ip?: readonly string[]; days?: number | null }): EstProfile & JsonObject {
  const cn = (p.cn ?? []).map((v) => v.toLowerCase());
  const dns = (p.dns ?? []).map((v) => v.toLowerCase());
  const ip = [...(p.ip ?? [])];
  for (const v of [...cn, ...dns]) if (v.length > 253 || !PATTERN_RE.test(v)) throw new OpError(OpErrorCode.badRequest, `'${v}' is not a name or *.suffix pattern`);
  for (const v of ip) if (isIP(v) === 0) throw new OpError(OpErrorCode.badRequest, `'${v}' is not an IP address`);
  if (cn.length + dns.length + ip.length === 0) throw new OpError(OpErrorCode.badRequest, 'the profile allows no name: give at least one --cn, --dns or --ip');
  const days = p.days ?? null;
  if (days !== null && (!Number.isSafeInteger(days) || days < 1 || days > 3650)) throw new OpError(OpErrorCode.badRequest, 'days must be an integer from 1 to 3650');
  return { cn, dns, ip, days };
}

export function profileOf(j: JsonObject): EstProfile {
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  return { cn: list(j['cn']), dns: list(j['dns']), ip: list(j['ip']), days: typeof j['days'] === 'number' ? j['days'] : null };
}

function matches(name: string, patterns: readonly string[]): boolean {
  const n = name.toLowerCase();
  return patterns.some((p) => (p.startsWith('*.') ? n.length > p.length - 1 && n.endsWith(p.slice(1)) : n === p));
}

/** Parses and checks a client CSR (see the header): ERR_OP_CSR_INVALID / _CSR_SIGNATURE / _KEY_POLICY / ERR_OP_EST_NAME. */
export async function checkClientCsr(der: Uint8Array): Promise<ClientCsr> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(new Uint8Array(der));
  } catch (e) {
    throw new OpError(OpErrorCode.csrInvalid, `the CSR does not parse: ${(e as Error).message}`);
  }
  const spkiDer = new Uint8Array(csr.publicKey.rawData);
  let alg: string;
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    const d = key.asymmetricKeyDetails ?? {};
    if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'prime256v1') alg = 'p256';
    else if (key.asymmetricKeyType === 'ec' && d.namedCurve === 'secp384r1') alg = 'p384';
    else if (key.asymmetricKeyType === 'ed25519') alg = 'ed25519';
    else if (key.asymmetricKeyType === 'rsa' && (d.modulusLength ?? 0) >= 2048 && (d.modulusLength ?? 0) <= 8192) alg = `rsa${d.modulusLength}`;
    else throw new OpError(OpErrorCode.keyPolicy, `key type ${key.asymmetricKeyType} ${d.namedCurve ?? d.modulusLength ?? ''} is not allowed (ECDSA P-256/P-384, Ed25519, RSA 2048–8192)`);
  } catch (e) {
    if (e instanceof OpError) throw e;
    throw new OpError(OpErrorCode.csrInvalid, `the CSR's public key does not parse: ${(e as Error).message}`);
  }
  let ok = false;
  try {
    ok = await csr.verify();
  } catch {
    ok = false;
  }
  if (!ok) throw new OpError(OpErrorCode.csrSignature, 'the CSR signature does not verify with its own key');
  const rdns = csr.subjectName.toJSON();
  const only = rdns.length === 1 ? Object.entries(rdns[0]!) : [];
  if (only.length !== 1 || only[0]![0] !== 'CN' || only[0]![1].length !== 1) {
    throw new OpError(OpErrorCode.estName, `the subject must be exactly one CN (got '${csr.subject}')`);
  }
  const cn = only[0]![1][0]!;
  if (!CN_RE.test(cn)) throw new OpError(OpErrorCode.estName, `the CN '${cn.slice(0, 80)}' has characters other than [A-Za-z0-9 ._:@-] or is longer than 64`);
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const sanExt = csr.extensions.find((e) => e.type === SAN_OID);
  if (sanExt) {
    let names: { type: string; value: string }[];
    try {
      names = new x509.SubjectAlternativeNameExtension(sanExt.rawData).names.toJSON();
    } catch (e) {
      throw new OpError(OpErrorCode.csrInvalid, `the requested subjectAltName does not parse: ${(e as Error).message}`);
    }
    if (names.length > 16) throw new OpError(OpErrorCode.estName, 'at most 16 subjectAltName entries');
    for (const n of names) {
      if (n.type === 'dns' && DNS_RE.test(n.value.toLowerCase()) && n.value.length <= 253) dnsNames.push(n.value.toLowerCase());
      else if (n.type === 'ip' && isIP(n.value) !== 0) ipAddresses.push(n.value);
      else throw new OpError(OpErrorCode.estName, `subjectAltName ${n.type}:${String(n.value).slice(0, 80)} is not allowed (DNS names and IP addresses only)`);
    }
  }
  return { spkiDer, spkiSha256: sha256(spkiDer), alg, cn, dnsNames, ipAddresses };
}

/** ERR_OP_EST_NAME unless every name of the CSR is allowed by the profile. */
export function checkAgainstProfile(csr: ClientCsr, p: EstProfile): void {
  if (!matches(csr.cn, p.cn) && !matches(csr.cn, p.dns)) throw new OpError(OpErrorCode.estName, `CN=${csr.cn} is not allowed by the credential's profile`);
  for (const d of csr.dnsNames) if (!matches(d, p.dns)) throw new OpError(OpErrorCode.estName, `DNS name ${d} is not allowed by the credential's profile`);
  for (const a of csr.ipAddresses) if (!p.ip.includes(a)) throw new OpError(OpErrorCode.estName, `IP address ${a} is not allowed by the credential's profile`);
}

/** The SAN as stored in the registry (sorted, so that two requests naming the same set compare equal). */
export function sanOf(dnsNames: readonly string[], ipAddresses: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  return { dnsNames: [...dnsNames].sort(), ipAddresses: [...ipAddresses].sort() };
}
