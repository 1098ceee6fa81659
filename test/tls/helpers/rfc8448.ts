/** RFC 8448 §3 fixture loader and an engine wired to reproduce the trace. */
import { readFileSync } from 'node:fs';
import { fromHex } from '../../../src/bytes/index.js';
import type { TlsIdentity, TlsServerConfig, TlsServerConnection } from '../../../src/tls/api.js';
import { createTlsServerWithOptions } from '../../../src/tls/server/connection.js';

interface Raw {
  [k: string]: string | Record<string, string>;
}
const raw = JSON.parse(readFileSync(new URL('../../fixtures/rfc8448/simple-1rtt.json', import.meta.url), 'utf8')) as Raw;

export function trace(name: string): Uint8Array {
  const v = raw[name];
  if (typeof v !== 'string') throw new Error(`no trace field ${name}`);
  return fromHex(v);
}
export function traceGroup(group: 'secrets' | 'keys'): Record<string, Uint8Array> {
  const g = raw[group] as Record<string, string>;
  return Object.fromEntries(Object.entries(g).map(([k, v]) => [k, fromHex(v)]));
}

/** The server flight split into its handshake messages (4-byte headers read from the trace). */
export function flightMessages(): Uint8Array[] {
  const f = trace('serverFlightPlaintext');
  const out: Uint8Array[] = [];
  for (let o = 0; o < f.length; ) {
    const len = (f[o + 1]! << 16) | (f[o + 2]! << 8) | f[o + 3]!;
    out.push(f.slice(o, o + 4 + len));
    o += 4 + len;
  }
  return out;
}

/** The certificate and CertificateVerify signature from the trace's server flight. */
export function traceIdentity(): TlsIdentity & { signedData: Uint8Array[] } {
  const [, cert, cv] = flightMessages();
  // Certificate: hdr(4) ctx_len(1)=0 list_len(3) cert_len(3) cert...
  const certLen = (cert![8]! << 16) | (cert![9]! << 8) | cert![10]!;
  const der = cert!.slice(11, 11 + certLen);
  const sig = cv!.slice(4 + 2 + 2);
  const signedData: Uint8Array[] = [];
  return {
    certificateChain: [der],
    signatureSchemes: [0x0804],
    signedData,
    sign(scheme, data) {
      if (scheme !== 0x0804) throw new Error(`unexpected scheme ${scheme}`);
      signedData.push(data.slice());
      return sig;
    },
  };
}

export interface TraceServer {
  readonly conn: TlsServerConnection;
  readonly secrets: Map<string, Uint8Array>;
  readonly identity: ReturnType<typeof traceIdentity>;
  readonly names: (string | undefined)[];
}

export function traceServer(overrides: Partial<TlsServerConfig> = {}): TraceServer {
  const secrets = new Map<string, Uint8Array>();
  const identity = traceIdentity();
  const names: (string | undefined)[] = [];
  const config: TlsServerConfig = {
    entropy: {
      random: (n) => {
        if (n !== 32) throw new Error(`unexpected random(${n})`);
        return trace('serverRandom');
      },
      now: () => Date.UTC(2018, 0, 1),
      ephemeralPrivateKey: (group) => {
        if (group !== 0x001d) throw new Error(`unexpected group ${group}`);
        return trace('serverPrivateKey');
      },
    },
    selectIdentity: (name) => {
      names.push(name);
      return identity;
    },
    // The trace's server (NSS) announces these groups in EncryptedExtensions.
    advertisedGroups: [0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101, 0x0102, 0x0103, 0x0104],
    ...overrides,
  };
  const conn = createTlsServerWithOptions(config, { onSecret: (label, v) => secrets.set(label, v.slice()) });
  return { conn, secrets, identity, names };
}
