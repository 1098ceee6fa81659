/**
 * The demo device: a connected plug (the paper's smart-grid example) with a relay and a power
 * reading, served over HTTPS whose TLS ends inside the card.
 *   GET  /            HTML page
 *   GET  /status      JSON state (+ the TLS session facts the card reported)
 *   PUT  /relay       JSON {"state":"on"|"off"}; 400 with a clear message otherwise
 *   GET  /bytes/N     N bytes of a fixed pattern (bulk-transfer checks; N ≤ 64 MiB)
 *   GET  /admin       403 unless the client presented a certificate the card verified (mutual TLS);
 *                     200 with the client's identity otherwise
 * imports registry/ (names of TLS code points) only.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { groupName, signatureSchemeName, suiteName, versionName } from '../../registry/tls-names.js';

export interface PlugState {
  relay: 'on' | 'off';
  readonly startedAt: number;
  /** Switch count since start. */
  switches: number;
}

const MAX_BODY = 1024;
const MAX_BLOB = 64 * 1024 * 1024;

/** Byte i of the /bytes/N pattern (tests recompute it independently). */
export function patternByte(i: number): number {
  return (i * 31 + (i >>> 8) + (i >>> 16)) & 0xff;
}

/**
 * The pattern by 64 KiB blocks: with i = 65536·h + 256·m + l, byte i = (31·l + m + h) mod 256, so
 * block h is block 0 shifted by 256·h bytes (mod 64 KiB). BLOCKS holds block 0 twice: any run of a
 * block is one contiguous slice of it. GET /bytes/N writes the body block by block, each chunk a
 * read-only view of BLOCKS (nothing computed, copied or allocated per chunk: what a server of static
 * content does; node:http, node:tls and SeTlsSocket only read what they are given).
 */
const BLOCK = 65536;
const BLOCKS: Buffer = (() => {
  const b = Buffer.alloc(2 * BLOCK);
  for (let i = 0; i < BLOCK; i++) b[i] = b[i + BLOCK] = patternByte(i);
  return b;
})();

/** The first n ≤ 64 KiB bytes of block h (bytes 65536·h …), a read-only view of BLOCKS. */
function patternBlock(h: number, n: number): Buffer {
  const from = (256 * h) % BLOCK;
  return BLOCKS.subarray(from, from + Math.min(n, BLOCK));
}

/** Simulated instantaneous power draw in watts (0 when the relay is off). */
function powerW(state: PlugState, now: number): number {
  if (state.relay === 'off') return 0;
  return Math.round((1840 + 60 * Math.sin(now / 7000)) * 10) / 10;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

interface CardSessionFacts {
  readonly version: number;
  readonly cipherSuite: number;
  readonly group: number;
  readonly signatureScheme: number;
  readonly serverName?: string;
  readonly alpn?: string;
  readonly identity?: string;
  readonly resumption?: string;
}

/** The verified client certificate (mutual TLS) as the host socket reports it. */
interface ClientFacts {
  readonly subject: string;
  readonly subjectAltNames: readonly string[];
  readonly fingerprint256: string;
}

/** The client identity the card verified for this connection, or undefined. */
function clientFacts(req: IncomingMessage): { subject: string; san: readonly string[]; fingerprint: string } | undefined {
  const s = req.socket as unknown as { getPeerIdentity?: () => ClientFacts | undefined };
  const p = typeof s.getPeerIdentity === 'function' ? s.getPeerIdentity() : undefined;
  if (!p) return undefined;
  return { subject: p.subject, san: p.subjectAltNames, fingerprint: p.fingerprint256 };
}

/** The TLS facts the card reported for this connection, with IANA names. */
function tlsFacts(req: IncomingMessage): unknown {
  const s = req.socket as unknown as { getSessionInfo?: () => CardSessionFacts | undefined };
  const i = typeof s.getSessionInfo === 'function' ? s.getSessionInfo() : undefined;
  if (!i) return undefined;
  return {
    version: versionName(i.version),
    cipherSuite: suiteName(i.cipherSuite),
    group: groupName(i.group),
    signatureScheme: signatureSchemeName(i.signatureScheme),
    serverName: i.serverName,
    alpn: i.alpn,
    cardIdentity: i.identity,
    resumption: i.resumption,
    recordLayer: (req.socket as unknown as { recordLayer?: string }).recordLayer,
    terminatedIn: 'secure element',
  };
}

const PAGE = (state: PlugState, now: number): string => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>setls demo plug</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;line-height:1.5}code{background:#eee;padding:0 .3em}</style>
</head><body>
<h1>setls demo plug</h1>
<p>This page was served over TLS that terminates inside a secure element.</p>
<p id="relay">Relay: <strong>${state.relay}</strong></p>
<p id="power">Power: ${powerW(state, now)} W</p>
<p>API: <code>GET /status</code>, <code>PUT /relay {"state":"on"|"off"}</code></p>
</body></html>
`;

export function createPlugState(): PlugState {
  return { relay: 'off', startedAt: Date.now(), switches: 0 };
}

function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The plug's request handler, for node:http. */
export function createPlugHandler(state: PlugState = createPlugState()): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(state, req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error', detail: String((err as Error)?.message ?? err) });
      else res.destroy();
    });
  };
}

async function handle(state: PlugState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://device.invalid');
  const now = Date.now();
  if (url.pathname === '/') {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: 'use GET' });
    const html = PAGE(state, now);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html) });
    res.end(req.method === 'HEAD' ? undefined : html);
    return;
  }
  if (url.pathname === '/status') {
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'use GET' });
    return sendJson(res, 200, {
      device: 'setls demo plug',
      relay: state.relay,
      powerW: powerW(state, now),
      switches: state.switches,
      uptimeS: Math.round((now - state.startedAt) / 1000),
      tls: tlsFacts(req),
      client: clientFacts(req),
    });
  }
  if (url.pathname === '/admin') {
    if (req.method !== 'GET') return sendJson(res, 405, { error: 'use GET' });
    const client = clientFacts(req);
    if (!client) return sendJson(res, 403, { error: 'a client certificate verified by the card is required' });
    return sendJson(res, 200, { admin: true, client });
  }
  if (url.pathname === '/relay') {
    if (req.method !== 'PUT') return sendJson(res, 405, { error: 'use PUT with {"state":"on"|"off"}' });
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\b/i.test(type)) {
      return sendJson(res, 415, { error: 'content-type must be application/json' });
    }
    const text = await readBody(req, MAX_BODY);
    if (text === undefined) return sendJson(res, 413, { error: `body larger than ${MAX_BODY} bytes` });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      return sendJson(res, 400, { error: `body is not valid JSON: ${(e as Error).message}` });
    }
    const st = (body as { state?: unknown } | null)?.state;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || (st !== 'on' && st !== 'off')) {
      return sendJson(res, 400, { error: 'expected {"state":"on"} or {"state":"off"}' });
    }
    const extra = Object.keys(body).filter((k) => k !== 'state');
    if (extra.length) return sendJson(res, 400, { error: `unknown field(s): ${extra.join(', ')}` });
    if (state.relay !== st) state.switches++;
    state.relay = st;
    return sendJson(res, 200, { relay: state.relay, powerW: powerW(state, now) });
  }
  const m = /^\/bytes\/(\d{1,9})$/.exec(url.pathname);
  if (m) {
    const n = Number(m[1]);
    if (n > MAX_BLOB) return sendJson(res, 400, { error: `at most ${MAX_BLOB} bytes` });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
    let off = 0;
    const pump = (): void => {
      while (off < n) {
        const k = Math.min(BLOCK, n - off);
        const ok = res.write(patternBlock(off / BLOCK, k));
        off += k;
        if (!ok) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
    return;
  }
  sendJson(res, 404, { error: `no resource ${url.pathname}` });
}
