/**
 * CoAP GET requests/s over ONE kept DTLS 1.2 association, with OpenSSL's `s_client -dtls1_2` as the
 * DTLS client (a real peer in its own process; Node has no DTLS client).
 *
 * `openssl s_client -quiet` (which implies -ign_eof) passes raw application data both ways: each
 * read() of its stdin becomes one SSL_write, i.e. one DTLS record in one datagram, and each record
 * it receives is written to its stdout in one write(). No -crlf, so every byte (0x0a, 0x0d, 0x00 …)
 * passes as is. CoAP over UDP (RFC 7252) has no length field, so message boundaries are the
 * datagram boundaries: if two of our writes were read by s_client in one read() they would go out
 * as one (malformed) datagram, and two responses read from its stdout in one read() could not be
 * split. Hence exactly ONE outstanding request at a time — the next request is written only after
 * the previous response came back — and no pipelined window (it could not be kept honest through a
 * byte pipe).
 *
 * Each request is a CON GET /status (ver 1, TKL 4, code 0.01) with a fresh message ID and a fresh
 * 4-byte token; each response must be a piggybacked ACK 2.05 with the same message ID and token, and
 * a JSON payload with the same keys as the first (warm-up) response and `"transport":"coaps"`;
 * anything else is counted as an error. The first warm-up request also waits out the handshake (s_client
 * reads stdin only once connected), so the clock starts on an established association.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomInt } from 'node:crypto';

export interface DtlsKeptOptions {
  readonly host?: string;
  readonly port: number;
  readonly pskIdentity: string;
  /** The PSK as bytes (passed to s_client in hex). */
  readonly psk: Uint8Array;
  /** OpenSSL cipher name; must be one the card's policy allows. Default PSK-AES128-CCM8 (TLS_PSK_WITH_AES_128_CCM_8). */
  readonly cipher?: string;
  /** Timed requests. */
  readonly n: number;
  /** Untimed requests first (the first one includes the handshake). Default min(50, n). */
  readonly warmup?: number;
  /** Bound on the first response (handshake + GET). Default 15 s. */
  readonly handshakeTimeoutMs?: number;
  /** Bound on every later response. Default 5 s. */
  readonly requestTimeoutMs?: number;
}

export interface DtlsKeptResult {
  /** Timed requests sent. */
  readonly requests: number;
  /** Timed requests answered with a matching 2.05 and the expected payload. */
  readonly ok: number;
  /** Timed requests that timed out or got a wrong answer. */
  readonly errors: number;
  readonly errorSamples: string[];
  readonly seconds: number;
  /** ok / seconds. */
  readonly perSecond: number;
  /** The first response's payload (for the report). */
  readonly samplePayload: string;
}

const URI_PATH_STATUS = Buffer.concat([Buffer.from([0xb6]), Buffer.from('status')]); // option 11, length 6

function getRequest(mid: number, token: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x40 | token.length, 0x01, mid >> 8, mid & 0xff]), token, URI_PATH_STATUS]);
}

interface Decoded {
  readonly type: number;
  readonly code: number;
  readonly mid: number;
  readonly token: Buffer;
  readonly payload: Buffer;
}

/** RFC 7252 §3 message of one datagram; throws on a malformed one. */
function decodeUdp(d: Buffer): Decoded {
  if (d.length < 4) throw new Error(`short message (${d.length} B)`);
  if (d[0]! >> 6 !== 1) throw new Error(`version ${d[0]! >> 6}`);
  const tkl = d[0]! & 15;
  if (tkl > 8 || d.length < 4 + tkl) throw new Error(`bad TKL ${tkl}`);
  let o = 4 + tkl;
  while (o < d.length && d[o] !== 0xff) {
    const deltaNibble = d[o]! >> 4;
    const lenNibble = d[o]! & 15;
    o++;
    const ext = (v: number): number => {
      if (v === 13) return d[o++]! + 13;
      if (v === 14) {
        const x = d.readUInt16BE(o) + 269;
        o += 2;
        return x;
      }
      if (v === 15) throw new Error('reserved option nibble');
      return v;
    };
    ext(deltaNibble); // option numbers are not checked, only skipped
    o += ext(lenNibble);
    if (o > d.length) throw new Error('option runs past the end');
  }
  const payload = o < d.length ? d.subarray(o + 1) : Buffer.alloc(0);
  if (o < d.length && payload.length === 0) throw new Error('payload marker without payload');
  return { type: (d[0]! >> 4) & 3, code: d[1]!, mid: d.readUInt16BE(2), token: Buffer.from(d.subarray(4, 4 + tkl)), payload };
}

const codeStr = (c: number): string => `${c >> 5}.${String(c & 31).padStart(2, '0')}`;

/**
 * Ends s_client's stdin, so it sends close_notify and exits (-no_ign_eof) and the server frees the
 * card's session at once; SIGTERM after 2 s, SIGKILL after 4 s, gives up waiting after 6 s.
 */
async function stop(p: ChildProcessWithoutNullStreams, closed: Promise<void>): Promise<void> {
  p.stdin.end();
  const timers = [
    setTimeout(() => p.kill('SIGTERM'), 2000),
    setTimeout(() => p.kill('SIGKILL'), 4000),
  ];
  let give: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise<void>((r) => (give = setTimeout(r, 6000)))]);
  for (const t of timers) clearTimeout(t);
  clearTimeout(give);
}

export async function dtlsKeptGets(o: DtlsKeptOptions): Promise<DtlsKeptResult> {
  const warmup = o.warmup ?? Math.min(50, o.n);
  const args = [
    's_client', '-dtls1_2', '-connect', `${o.host ?? '127.0.0.1'}:${o.port}`,
    '-psk', Buffer.from(o.psk).toString('hex'), '-psk_identity', o.pskIdentity, '-cipher', o.cipher ?? 'PSK-AES128-CCM8',
    '-quiet', '-no_ign_eof', '-nocommands', '-noservername',
  ];
  const p = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const closed = new Promise<void>((r) => p.once('close', () => r()));
  p.stdin.on('error', () => undefined); // EPIPE if s_client is gone; reported through 'exit'/'error'
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  let exited: string | undefined;
  // Waiters for the next stdout chunk (one record = one write() by s_client = one chunk here, as
  // only one response is ever outstanding).
  let waiter: ((d: Buffer | Error) => void) | undefined;
  const early: Buffer[] = [];
  p.stdout.on('data', (d: Buffer) => {
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(d);
    } else early.push(d);
  });
  const spawnFailed = new Promise<never>((_, reject) => {
    p.once('error', (e) => reject(new Error(`openssl s_client: ${e.message}`)));
  });
  spawnFailed.catch(() => undefined);
  p.once('exit', (code, sig) => {
    exited = `openssl s_client exited (${code ?? sig}): ${stderr.trim().slice(-500)}`;
    waiter?.(new Error(exited));
    waiter = undefined;
  });
  const next = (ms: number): Promise<Buffer> => {
    if (early.length > 0) return Promise.resolve(early.shift()!);
    if (exited) return Promise.reject(new Error(exited));
    return new Promise<Buffer>((resolve, reject) => {
      const t = setTimeout(() => {
        waiter = undefined;
        reject(new Error(`no response within ${ms} ms`));
      }, ms);
      waiter = (d) => {
        clearTimeout(t);
        if (d instanceof Error) reject(d);
        else resolve(d);
      };
    });
  };

  let mid = randomInt(0x10000);
  let tok = randomInt(0x100000000);
  const sent = new Set<string>(); // tokens of earlier requests, to skip a late answer to one of them
  let shape: string | undefined;
  let samplePayload = '';
  /** One GET; resolves to undefined when OK, else the error text. */
  const get = async (timeoutMs: number): Promise<string | undefined> => {
    mid = (mid + 1) & 0xffff;
    tok = (tok + 1) >>> 0;
    const token = Buffer.alloc(4);
    token.writeUInt32BE(tok);
    const key = token.toString('hex');
    sent.add(key);
    if (sent.size > 1024) sent.delete(sent.values().next().value!);
    p.stdin.write(getRequest(mid, token));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let d: Buffer;
      try {
        d = await Promise.race([next(Math.max(1, deadline - Date.now())), spawnFailed]);
      } catch (e) {
        if (exited) throw new Error(exited);
        return (e as Error).message;
      }
      let m: Decoded;
      try {
        m = decodeUdp(d);
      } catch (e) {
        return `undecodable response (${(e as Error).message}): ${d.toString('hex').slice(0, 80)}`;
      }
      const mt = m.token.toString('hex');
      if (mt !== key && sent.has(mt)) continue; // late answer to a request that already timed out
      if (mt !== key) return `token ${mt}, expected ${key}`;
      if (m.type !== 2) return `message type ${m.type}, expected ACK (2)`;
      if (m.mid !== mid) return `message ID ${m.mid}, expected ${mid}`;
      if (m.code !== 0x45) return `response code ${codeStr(m.code)}`;
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(m.payload.toString('utf8')) as Record<string, unknown>;
      } catch {
        return `payload is not JSON: ${m.payload.toString('hex').slice(0, 80)}`;
      }
      const keys = Object.keys(body).join(',');
      if (shape === undefined) {
        shape = keys;
        samplePayload = m.payload.toString('utf8');
      }
      if (keys !== shape) return `payload keys ${keys}, expected ${shape}`;
      if (body['transport'] !== 'coaps') return `payload transport ${String(body['transport'])}`;
      return undefined;
    }
  };

  try {
    // Warm-up: the first GET waits for the handshake (s_client reads stdin only once connected).
    for (let i = 0; i < Math.max(1, warmup); i++) {
      const err = await get(i === 0 ? o.handshakeTimeoutMs ?? 15_000 : o.requestTimeoutMs ?? 5000);
      if (err) throw new Error(`warm-up GET ${i + 1}: ${err}${i === 0 ? ` (s_client stderr: ${stderr.trim().slice(-500)})` : ''}`);
    }
    const errorSamples: string[] = [];
    let errors = 0;
    let timeoutsInARow = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < o.n; i++) {
      const err = await get(o.requestTimeoutMs ?? 5000);
      if (err) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(`#${i}: ${err}`);
        timeoutsInARow = err.startsWith('no response') ? timeoutsInARow + 1 : 0;
        if (timeoutsInARow >= 3) throw new Error(`3 timeouts in a row, giving up after ${i + 1} requests: ${errorSamples.join('; ')}`);
      } else timeoutsInARow = 0;
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const ok = o.n - errors;
    return { requests: o.n, ok, errors, errorSamples, seconds, perSecond: ok / seconds, samplePayload };
  } finally {
    await stop(p, closed);
  }
}
