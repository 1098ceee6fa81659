/**
 * Test helpers for the card: a temp card folder, APDU building, a host-role transceive over
 * `card.process`, PIN padding, EAP-Response building, and a test CA issuing the card's certificate.
 */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webcrypto, randomBytes, createPublicKey } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { encodeCommand, parseResponse, transceive, type CommandApdu, type ResponseApdu } from '../../src/apdu/index.js';
import { encodeEapTls, EapCode, EapTlsFlag } from '../../src/eap/index.js';
import { concat, encodeTlvs, u32 } from '../../src/bytes/index.js';
import { EmulatedCard } from '../../src/card/index.js';
import type { EmulatedCardCreateOptions } from '../../src/card/index.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const AID = Uint8Array.of(0xf0, 0x73, 0x65, 0x74, 0x6c, 0x73, 0x01);
export const USER_PIN = '1234';
export const OPERATOR_PIN = '87654321';
export const PUK = '11223344';

export function tempDir(): { dir: string; cleanup: () => void } {
  const base = mkdtempSync(join(tmpdir(), 'setls-card-'));
  return { dir: join(base, 'card'), cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

export function newCard(extra: Partial<EmulatedCardCreateOptions> = {}): { card: EmulatedCard; dir: string; masterKey: Uint8Array; cleanup: () => void } {
  const { dir, cleanup } = tempDir();
  const masterKey = new Uint8Array(randomBytes(32));
  const card = EmulatedCard.create({ dir, masterKey, userPin: USER_PIN, operatorPin: OPERATOR_PIN, puk: PUK, ...extra });
  return { card, dir, masterKey, cleanup };
}

export function cmd(cla: number, ins: number, p1: number, p2: number, data: Uint8Array = new Uint8Array(0), ne = 0, extended = false): Uint8Array {
  return encodeCommand({ cla, ins, p1, p2, data, ne, extended });
}

/** One APDU exchange, no chaining. */
export function send(card: EmulatedCard, apdu: Uint8Array): ResponseApdu {
  return parseResponse(card.process(apdu));
}

/** A logical command with segmentation and GET RESPONSE, as the host does it. */
export async function xcv(card: EmulatedCard, c: CommandApdu, extended = false, maxCommandData?: number): Promise<ResponseApdu> {
  return transceive(async (b) => card.process(b), c, { extended, ...(maxCommandData ? { maxCommandData } : {}) });
}

export function a0(ins: number, p1: number, p2: number, data: Uint8Array = new Uint8Array(0), ne = 256): CommandApdu {
  return { cla: 0xa0, ins, p1, p2, data, ne };
}

export function pad(pin: string): Uint8Array {
  const out = new Uint8Array(8).fill(0xff);
  for (let i = 0; i < pin.length; i++) out[i] = pin.charCodeAt(i);
  return out;
}

export const SELECT = cmd(0x00, 0xa4, 0x04, 0x00, AID, 256);
export const verify = (pin: string, ref = 0): Uint8Array => cmd(0xa0, 0x20, 0x00, ref, pad(pin));
export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export function swOf(card: EmulatedCard, apdu: Uint8Array): number {
  return send(card, apdu).sw;
}

export function selectAndVerify(card: EmulatedCard, operator = false): void {
  if (swOf(card, SELECT) !== 0x9000) throw new Error('SELECT failed');
  if (swOf(card, verify(USER_PIN)) !== 0x9000) throw new Error('VERIFY user failed');
  if (operator && swOf(card, verify(OPERATOR_PIN, 1)) !== 0x9000) throw new Error('VERIFY operator failed');
}

export function eapResponse(id: number, tls: Uint8Array, opts: { time?: number; flags?: number; tlsLength?: number } = {}): Uint8Array {
  const flags = opts.flags ?? EapTlsFlag.length;
  return encodeEapTls({
    code: EapCode.response,
    id,
    flags,
    ...(flags & EapTlsFlag.length ? { tlsLength: opts.tlsLength ?? tls.length } : {}),
    data: tls,
    ...(opts.time !== undefined ? { trailing: u32(opts.time) } : {}),
  });
}

export const eapAck = (id: number): Uint8Array => Uint8Array.of(0x02, id, 0x00, 0x06, 0x0d, 0x00);

/** A test CA and an issued leaf for an SPKI. */
export class TestCa {
  private constructor(
    readonly keys: CryptoKeyPair,
    readonly cert: x509.X509Certificate,
  ) {}
  static async create(name = 'CN=setls test CA'): Promise<TestCa> {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 86400_000),
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    });
    return new TestCa(keys, cert);
  }
  get pem(): string {
    return this.cert.toString('pem');
  }
  async issue(spki: Uint8Array, cn = 'localhost', dns = ['localhost']): Promise<Uint8Array> {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const isRsa = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).asymmetricKeyType === 'rsa';
    const keyAlg = isRsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' };
    const publicKey = await webcrypto.subtle.importKey('spki', spki, keyAlg, true, ['verify']);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '0' + Math.floor(Math.random() * 1e9).toString(16),
      subject: `CN=${cn}`,
      issuer: this.cert.subject,
      notBefore: new Date(Date.now() - 3600_000),
      notAfter: new Date(Date.now() + 86400_000),
      publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension(dns.map((d) => ({ type: 'dns' as const, value: d })))],
    });
    return new Uint8Array(leaf.rawData);
  }
}

export function chainData(label: string, certs: Uint8Array[]): Uint8Array {
  const l = utf8(label);
  return concat(Uint8Array.of(l.length), l, ...certs.map((c) => concat(Uint8Array.of(c.length >> 16, (c.length >> 8) & 0xff, c.length & 0xff), c)));
}

export function csrRequest(label: string, cn: string, dns: string[] = [], ips: Uint8Array[] = []): Uint8Array {
  return encodeTlvs([
    { tag: 0x80, value: utf8(label) },
    { tag: 0x81, value: utf8(cn) },
    ...dns.map((d) => ({ tag: 0x82, value: utf8(d) })),
    ...ips.map((ip) => ({ tag: 0x83, value: ip })),
  ]);
}

/**
 * Personalises a card as the operator would: GENERATE-KEY, GET-CSR, certificate from the CA,
 * PUT-CHAIN (with chaining). Returns the SPKI and every response seen.
 */
export async function personalise(
  card: EmulatedCard,
  ca: TestCa,
  label = 'web',
  opts: { keyType?: 1 | 2; cn?: string; dns?: string[] } = {},
): Promise<{ spki: Uint8Array; csr: Uint8Array; leaf: Uint8Array; responses: Uint8Array[] }> {
  const responses: Uint8Array[] = [];
  const run = async (c: CommandApdu): Promise<ResponseApdu> => {
    const r = await transceive(
      async (b) => {
        const out = card.process(b);
        responses.push(out);
        return out;
      },
      c,
    );
    return r;
  };
  selectAndVerify(card, true);
  const gen = await run(a0(0x46, opts.keyType ?? 0x01, 0x00, utf8(label)));
  if (gen.sw !== 0x9000) throw new Error(`GENERATE-KEY ${gen.sw.toString(16)}`);
  const cn = opts.cn ?? 'localhost';
  const dns = opts.dns ?? ['localhost'];
  const csr = await run(a0(0x4a, 0x00, 0x00, csrRequest(label, cn, dns, [Uint8Array.of(127, 0, 0, 1)])));
  if (csr.sw !== 0x9000) throw new Error(`GET-CSR ${csr.sw.toString(16)}`);
  const leaf = await ca.issue(gen.data, cn, dns);
  const put = await run(a0(0xda, 0x00, 0x00, chainData(label, [leaf, new Uint8Array(ca.cert.rawData)]), 0));
  if (put.sw !== 0x9000) throw new Error(`PUT-CHAIN ${put.sw.toString(16)}`);
  return { spki: gen.data, csr: csr.data, leaf, responses };
}
