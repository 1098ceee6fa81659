/**
 * A stand-in operator for the agent tests: a RelayHub mounted into a real node:https server on
 * 127.0.0.1 (port 0 unless given), with a fresh test CA and a server certificate for localhost /
 * 127.0.0.1 (ECDSA P-256, @peculiar/x509). Tokens map to host ids through a Map.
 * Also `raw()`: one HTTPS request with chosen headers and body (protocol refusal tests).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { RelayHub, type RelayHubOptions } from '../../src/operator/relay/index.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestPki {
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/** A CA and a localhost server certificate it issued. */
export async function makePki(): Promise<TestPki> {
  const now = Date.now();
  const caKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=setls test operator CA',
    keys: caKeys,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: EC,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const leaf = await x509.X509CertificateGenerator.create({
    subject: 'CN=localhost',
    issuer: ca.subject,
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
      ]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { caPem: ca.toString('pem'), certPem: leaf.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

export interface TestOperator {
  readonly hub: RelayHub;
  readonly url: string;
  readonly port: number;
  /** token → host id */
  readonly tokens: Map<string, string>;
  /** Requests not under /admin/v1/ (the operator's own API would serve them). */
  readonly otherRequests: string[];
  close(): Promise<void>;
}

export async function startOperator(pki: TestPki, opts: Partial<RelayHubOptions> & { port?: number; tokens?: Map<string, string> } = {}): Promise<TestOperator> {
  const tokens = opts.tokens ?? new Map<string, string>([['agent-token-1', 'host-1']]);
  const hub = new RelayHub({ authenticateAgent: (t) => tokens.get(t), ...opts });
  const otherRequests: string[] = [];
  const server = https.createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
    if (hub.handleRelay(req, res)) return;
    otherRequests.push(req.url ?? '');
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    hub,
    url: `https://localhost:${port}`,
    port,
    tokens,
    otherRequests,
    async close() {
      await hub.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface RawAnswer {
  readonly status: number;
  readonly headers: import('node:http').IncomingHttpHeaders;
  readonly body: string;
}

/** One request to the operator, exactly as given. */
export function raw(op: { port: number }, pki: TestPki, method: string, path: string, headers: Record<string, string>, body = ''): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', servername: 'localhost', port: op.port, method, path, headers, ca: pki.caPem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('raw request timed out')));
    req.end(body);
  });
}

/** Percentile of sorted numbers. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
