/**
 * Shared set-up for interop tests: a personalised emulated card in a temp folder (made through the
 * same code path as `setls card init`), and an HTTPS server through it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { DEFAULT_IDENTITY, initCard, openCard, personalise, readOperatorPin, type IdentitySpec, type InitResult } from '../../src/cli/card-setup.js';
import { CardClient, type CardPolicy, type KeyTypeName } from '../../src/host/index.js';
import { openLocalCa } from '../../src/pki/local-ca.js';
import { startHttps, type RunningHttps } from '../../src/cli/serve.js';

export interface TestCard {
  readonly root: string;
  readonly cardDir: string;
  readonly init: InitResult;
  readonly ca: string;
  cleanup(): void;
}

export interface CardOptions {
  /** Key type of the default identity (default p256, as `setls card init`). */
  readonly keyType?: KeyTypeName;
}

export async function makeTestCard(opts: CardOptions = {}): Promise<TestCard> {
  const root = mkdtempSync(join(tmpdir(), 'setls-interop-'));
  const cardDir = join(root, 'card');
  const init = await initCard({ cardDir, keyType: opts.keyType ?? 'p256' });
  return {
    root,
    cardDir,
    init,
    ca: readFileSync(init.caCertPath, 'utf8'),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** TLS-Tandem needs it: the operator allows the export of the default identity's sessions (through the card's admin path, as `setls card policy`). */
export async function allowExport(card: TestCard): Promise<void> {
  const admin = openCard({ cardDir: card.cardDir });
  try {
    const c = new CardClient(admin.transport);
    await c.select();
    await c.verifyPin(readOperatorPin(card.init.paths), 'operator');
    await c.putIdentityPolicy({ label: DEFAULT_IDENTITY, exportAllowed: true });
  } finally {
    await admin.transport.close();
    admin.card.close();
  }
}

export async function startTestHttps(card: TestCard, trace?: (line: string) => void, opts: { recordLayer?: 'card' | 'host' } = {}): Promise<RunningHttps> {
  const silent = (await import('pino')).default({ level: 'silent' });
  return startHttps(
    { cardDir: card.cardDir, port: 0, host: '127.0.0.1', backlog: 8, trace: trace !== undefined, traceSink: trace, ...(opts.recordLayer ? { recordLayer: opts.recordLayer } : {}) },
    silent,
  );
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a peer program with a deadline; never rejects (the test inspects the result). */
export function run(cmd: string, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
  });
}

// ---- Additions for the peer-matrix tests (key types, card policy, extra identities, interactive peers).

/**
 * Administers a card that no server has open (the way `setls card add-identity` / `card policy`
 * do): operator PIN from the admin file, extra identities personalised through APDUs, then the
 * policy. Returns the SPKI (DER) of each identity added, by label.
 */
export async function administerCard(
  card: TestCard,
  cfg: { identities?: readonly IdentitySpec[]; policy?: CardPolicy },
): Promise<Map<string, Uint8Array>> {
  const { transport, card: emulated } = openCard({ cardDir: card.cardDir });
  const spkis = new Map<string, Uint8Array>();
  try {
    const client = new CardClient(transport);
    await client.select();
    await client.verifyPin(readOperatorPin(card.init.paths), 'operator');
    if (cfg.identities && cfg.identities.length > 0) {
      const ca = await openLocalCa(card.init.paths.caDir);
      for (const id of cfg.identities) spkis.set(id.label, (await personalise(client, ca, id)).spki);
    }
    if (cfg.policy) await client.putPolicy(cfg.policy);
  } finally {
    await transport.close();
    emulated.close();
  }
  return spkis;
}

/** The TLS 1.3 cipher suites (RFC 8446 B.4) by IANA name, as card policies list them. */
export const SUITE = {
  TLS_AES_128_GCM_SHA256: 0x1301,
  TLS_AES_256_GCM_SHA384: 0x1302,
  TLS_CHACHA20_POLY1305_SHA256: 0x1303,
  TLS_AES_128_CCM_SHA256: 0x1304,
  TLS_AES_128_CCM_8_SHA256: 0x1305,
} as const;
export type SuiteName = keyof typeof SUITE;
export const ALL_SUITES: readonly SuiteName[] = Object.keys(SUITE) as SuiteName[];

/** SHA-256 of `der` in base64: Chromium's --ignore-certificate-errors-spki-list / HPKP pin format. */
export function spkiPin(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('base64');
}

/** SHA-256 (lower-case hex) of a certificate's DER, from its PEM. */
export function certSha256(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

/** Counts the matches of `re` (made global) in `s`. */
export function countMatches(s: string, re: RegExp): number {
  const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
  return (s.match(g) ?? []).length;
}

/** One step of a scripted conversation with a peer program over its stdin/stdout/stderr. */
export type Step =
  /** Writes to the program's stdin. */
  | { readonly write: string }
  /** Waits until stdout+stderr holds at least `count` (default 1) matches of `waitFor`. */
  | { readonly waitFor: RegExp; readonly count?: number };

export interface InteractiveResult extends RunResult {
  /** Every step ran (each awaited output showed up before the program exited or the deadline). */
  readonly completed: boolean;
  /** The step the script stopped at, when not completed. */
  readonly stuckAt?: string;
}

/**
 * Runs a peer program and talks to it: each write goes to its stdin only once the outputs awaited
 * before it have appeared (so line-oriented programs see one command per read). Once every step
 * ran, stdin is closed; the program is killed at the deadline. Never rejects.
 */
export function runInteractive(cmd: string, args: readonly string[], steps: readonly Step[], opts: { timeoutMs?: number } = {}): Promise<InteractiveResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let i = 0;
    let exited = false;
    const advance = (): void => {
      while (i < steps.length && !exited) {
        const s = steps[i]!;
        if ('write' in s) {
          p.stdin.write(s.write);
          i++;
          continue;
        }
        if (countMatches(stdout + '\n' + stderr, s.waitFor) >= (s.count ?? 1)) {
          i++;
          continue;
        }
        return; // wait for more output
      }
      if (i === steps.length && !p.stdin.writableEnded) p.stdin.end();
    };
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      advance();
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      advance();
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 20000);
    p.stdin.on('error', () => undefined);
    p.on('close', (code) => {
      exited = true;
      clearTimeout(timer);
      const completed = i === steps.length;
      const st = steps[i];
      resolve({ code, stdout, stderr, completed, stuckAt: completed || st === undefined ? undefined : 'write' in st ? `write ${JSON.stringify(st.write)}` : `waitFor ${st.waitFor} x${st.count ?? 1}` });
    });
    advance();
  });
}

/** The demo plug's /status bodies found in a peer's output, parsed, in order. */
export interface StatusBody {
  readonly device: string;
  readonly relay: string;
  /** The card's own view of the session, by IANA name (e.g. 'TLSv1.3', 'TLS_AES_128_GCM_SHA256', 'x25519'). */
  readonly tls: {
    readonly version: string;
    readonly cipherSuite: string;
    readonly group: string;
    readonly signatureScheme: string;
    readonly serverName?: string;
    readonly alpn?: string;
    readonly cardIdentity: string;
    readonly terminatedIn: string;
  };
}
export function statusBodies(output: string): StatusBody[] {
  return (output.match(/^\{"device":.*\}\s*$/gm) ?? []).map((l) => JSON.parse(l) as StatusBody);
}

/** An HTTP/1.1 request for the demo plug (Connection: close unless keepAlive). */
export function httpGet(path: string, opts: { host?: string; keepAlive?: boolean } = {}): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${opts.host ?? 'localhost'}\r\n${opts.keepAlive ? '' : 'Connection: close\r\n'}\r\n`;
}

export interface NodeTlsResult {
  readonly authorized: boolean;
  readonly protocol: string | null;
  readonly cipher: string;
  readonly ephemeral: { type?: string; name?: string; size?: number };
  readonly alpn: string | false;
  readonly peer: import('node:tls').DetailedPeerCertificate;
  /** The whole HTTP response (headers and body) as latin1 text. */
  readonly response: Buffer;
}

/** Node's own `tls.connect` (bundled OpenSSL) → one HTTP/1.1 exchange (Connection: close). */
export async function nodeTlsGet(port: number, path: string, opts: import('node:tls').ConnectionOptions = {}): Promise<NodeTlsResult> {
  const tls = await import('node:tls');
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
    const chunks: Buffer[] = [];
    let facts: Omit<NodeTlsResult, 'response'> | undefined;
    const timer = setTimeout(() => s.destroy(new Error('nodeTlsGet: deadline')), 20000);
    s.on('secureConnect', () => {
      facts = {
        authorized: s.authorized,
        protocol: s.getProtocol(),
        cipher: s.getCipher().standardName,
        ephemeral: s.getEphemeralKeyInfo() as NodeTlsResult['ephemeral'],
        alpn: s.alpnProtocol ?? false,
        peer: s.getPeerCertificate(true),
      };
      s.write(httpGet(path, { host: opts.servername ?? 'localhost' }));
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('end', () => {
      clearTimeout(timer);
      if (!facts) return reject(new Error('nodeTlsGet: closed before the handshake completed'));
      resolve({ ...facts, response: Buffer.concat(chunks) });
    });
  });
}

export const PYTHON = '/usr/bin/python3';

/**
 * Python's `ssl` (the system OpenSSL through CPython's own bindings): a default context trusting
 * only `cafile` (certificate and host name checked), one GET; prints one JSON line with what the
 * client saw, or {"error": ...} when the handshake or verification fails.
 */
const PY_CLIENT = `
import hashlib, json, socket, ssl, sys
cafile, port, host, path, alpn = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
if alpn:
    ctx.set_alpn_protocols(alpn.split(','))
try:
    with socket.create_connection(('127.0.0.1', port), timeout=15) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(('GET %s HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' % (path, host)).encode())
            data = b''
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            cert = s.getpeercert()
            print(json.dumps({
                'version': s.version(),
                'cipher': s.cipher(),
                'alpn': s.selected_alpn_protocol(),
                'subject': dict(x[0] for x in cert['subject']),
                'san': cert.get('subjectAltName'),
                'leafSha256': hashlib.sha256(s.getpeercert(True)).hexdigest(),
                'response': data.decode('latin1'),
            }))
except (ssl.SSLError, OSError) as e:
    print(json.dumps({'error': '%s: %s' % (type(e).__name__, e), 'reason': getattr(e, 'reason', None), 'verify': getattr(e, 'verify_message', None)}))
`;

export interface PythonTlsResult {
  readonly version?: string;
  readonly cipher?: [string, string, number];
  readonly alpn?: string | null;
  readonly subject?: Record<string, string>;
  readonly san?: [string, string][];
  readonly leafSha256?: string;
  readonly response?: string;
  readonly error?: string;
  readonly reason?: string | null;
  readonly verify?: string | null;
}

export async function pythonTlsGet(cafile: string, port: number, opts: { host?: string; path?: string; alpn?: readonly string[] } = {}): Promise<{ run: RunResult; result: PythonTlsResult }> {
  const r = await run(PYTHON, ['-c', PY_CLIENT, cafile, String(port), opts.host ?? 'localhost', opts.path ?? '/status', (opts.alpn ?? []).join(',')]);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let result: PythonTlsResult;
  try {
    result = JSON.parse(line) as PythonTlsResult;
  } catch {
    result = { error: `python printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}` };
  }
  return { run: r, result };
}
