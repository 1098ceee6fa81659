/**
 * Test helpers for the operator: a software manufacturer (its CA and per-card attestation keys and
 * certificates), software "cards" that generate an identity key, attest it over a nonce in the
 * provisional statement format (SETLS_ATTESTATION_V1) and make a CSR — what integration replaces by
 * real card attestations — plus temp operator folders and an HTTPS JSON client.
 * Certificates here are made with @peculiar/x509 directly (not with the operator's own CA code).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, sign as nodeSign, webcrypto, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SETLS_ATTESTATION_V1, type AttestationEvidence } from '../../src/operator/pki/attestation.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 3600 * 1000;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const pem = (der: ArrayBuffer | Uint8Array, label: string): string =>
  `-----BEGIN ${label}-----\n${Buffer.from(der as Uint8Array).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;

export interface Manufacturer {
  readonly name: string;
  readonly caPem: string;
  readonly caDer: Uint8Array;
  readonly keys: CryptoKeyPair;
  readonly cert: x509.X509Certificate;
}

export async function makeManufacturer(name = 'Test Manufacturer', opts: { notAfter?: Date } = {}): Promise<Manufacturer> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name} attestation CA`,
    keys,
    notBefore: new Date(Date.now() - DAY),
    notAfter: opts.notAfter ?? new Date(Date.now() + 3650 * DAY),
    signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const der = new Uint8Array(cert.rawData);
  return { name, caPem: pem(der, 'CERTIFICATE'), caDer: der, keys, cert };
}

/** A software stand-in for a card's attestation side (factory key + certificate). */
export class SoftCard {
  readonly uid: Uint8Array;
  private counter = 0;
  private constructor(
    uid: Uint8Array,
    readonly attestCertDer: Uint8Array,
    private readonly attestKeyPkcs8: Uint8Array,
  ) {
    this.uid = uid;
  }

  get uidHex(): string {
    return hex(this.uid);
  }

  static async create(m: Manufacturer, uid: Uint8Array = new Uint8Array(randomBytes(16)), opts: { subjectUid?: Uint8Array } = {}): Promise<SoftCard> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: hex(randomBytes(12)),
      subject: `CN=${hex(opts.subjectUid ?? uid)}`,
      issuer: m.cert.subjectName,
      publicKey: keys.publicKey,
      signingKey: m.keys.privateKey,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 3650 * DAY),
      signingAlgorithm: EC,
      extensions: [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)],
    });
    const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    return new SoftCard(uid, new Uint8Array(cert.rawData), pkcs8);
  }

  manifestEntry(extra: Record<string, unknown> = {}): Record<string, unknown> {
    return { uid: this.uidHex, attestationCertificate: pem(this.attestCertDer, 'CERTIFICATE'), kvn: '30', ...extra };
  }

  /** Generates an identity key "in the card"; returns it with its SPKI. */
  static async identityKey(): Promise<{ keys: CryptoKeyPair; spki: Uint8Array }> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    return { keys, spki: new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey)) };
  }

  /** AttestKey: the statement over (uid, slot, SHA-256(spki), nonce, counter), signed by the attestation key. */
  attest(spki: Uint8Array, nonce: Uint8Array, opts: { slot?: number; uid?: Uint8Array; signWith?: Uint8Array; chain?: Uint8Array[] } = {}): AttestationEvidence {
    this.counter++;
    const statement = SETLS_ATTESTATION_V1.encode({
      uid: opts.uid ?? this.uid,
      slot: opts.slot ?? 1,
      spkiSha256: new Uint8Array(createHash('sha256').update(spki).digest()),
      nonce,
      counter: this.counter,
    });
    const key = createPrivateKey({ key: Buffer.from(opts.signWith ?? this.attestKeyPkcs8), format: 'der', type: 'pkcs8' });
    const signature = new Uint8Array(nodeSign('sha256', statement, key));
    return { statement, signature, chain: opts.chain ?? [this.attestCertDer] };
  }

  get attestKey(): Uint8Array {
    return this.attestKeyPkcs8;
  }
}

/** CreateCSR: a PKCS#10 for `keys`, signed by `signer` (default: the same key). */
export async function makeCsr(keys: CryptoKeyPair, signer?: CryptoKeyPair): Promise<Uint8Array> {
  if (!signer || signer === keys) {
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=card', keys, signingAlgorithm: EC });
    return new Uint8Array(csr.rawData);
  }
  // A CSR carrying `keys`' public key but signed by another key (its self-signature is invalid).
  const good = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=card', keys: { publicKey: keys.publicKey, privateKey: signer.privateKey }, signingAlgorithm: EC });
  return new Uint8Array(good.rawData);
}

export function tempDir(prefix = 'setls-op-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json(): any;
}

/** One HTTPS request to the operator under test (trusting its TLS CA). */
export function call(
  url: string,
  caPath: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string>; contentType?: string } = {},
): Promise<HttpResult> {
  const u = new URL(url + path);
  const data = opts.rawBody !== undefined ? Buffer.from(opts.rawBody) : opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        hostname: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method,
        ca: readFileSync(caPath, 'utf8'),
        agent: false,
        timeout: 30_000,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          ...(data ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': String(data.length) } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

import { initOperator } from '../../src/operator/init.js';
import { Operator, type OpenOptions } from '../../src/operator/operator.js';

/** A fresh operator folder (init) trusting `manufacturers`, opened. */
export async function makeOperator(manufacturers: readonly Manufacturer[], opts: Omit<OpenOptions, 'dir'> & { publicUrl?: string } = {}): Promise<{ op: Operator; dir: string; adminToken: string; cleanup: () => Promise<void> }> {
  const t = tempDir();
  const dir = join(t.dir, 'op');
  const r = await initOperator({ dir, publicUrl: opts.publicUrl ?? 'https://operator.test:9443', manufacturerCaPems: manufacturers.map((m) => m.caPem) });
  const op = await Operator.open({ dir, ...opts });
  return {
    op,
    dir,
    adminToken: r.adminToken,
    cleanup: async () => {
      await op.close();
      t.cleanup();
    },
  };
}
