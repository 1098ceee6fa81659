/**
 * The load generator, run as its own process (so its CPU never lands on the servers' account):
 *   node --import tsx bench/client.ts '<ClientConfig JSON>'
 * then reads one Job per line on stdin and answers one JobResult per line on stdout. Jobs may pin
 * TLS 1.2 (`version`), resume (`resume`: a priming connection, then every connection offers the
 * latest session received and must resume), run `concurrency` connections at once (bounded by
 * `maxMs`) and check /bytes/N bodies byte by byte (`checkBody`). Otherwise each
 * connection is a fresh TCP connection and a FULL TLS 1.3 handshake: no session is offered
 * (`session: undefined`, no agent, tickets received are dropped) and each one is checked not
 * resumed, TLS 1.3, TLS_AES_128_GCM_SHA256 and x25519, with the server certificate verified
 * against the local CA.
 *
 * `hold` / `release` jobs (bench/memory.ts, host memory per idle session): `hold` opens n
 * connections (full TLS 1.3 handshake + one keep-alive GET /status each) and keeps them open and
 * idle across jobs; `release` does one more GET /status on each (all must still be open) and closes
 * them.
 */
import net from 'node:net';
import tls from 'node:tls';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { PINNED, PINNED12, percentile, type ClientConfig, type Job, type JobResult, type SessionFacts } from './protocol.js';

const CONN_TIMEOUT_MS = 60_000;

interface ConnResult {
  handshakeMs: number;
  latencyMs: number;
  transferMs: number;
  bodyBytes: number;
  resumed: boolean;
  tickets: number;
  facts: SessionFacts;
}

/** Byte i of the demo plug's /bytes/N pattern, recomputed here independently. */
function patternByte(i: number): number {
  return (i * 31 + (i >>> 8) + (i >>> 16)) & 0xff;
}

interface ConnOpts {
  /** Offer this session (resumption). */
  session?: Buffer;
  /** Keep the connection until a session (ticket / id) arrived, at most 1 s (resumption runs). */
  waitTicket?: boolean;
  /** Called with every session received. */
  onSession?: (s: Buffer) => void;
}

function oneConnection(cfg: ClientConfig, job: Job, co: ConnOpts = {}): Promise<ConnResult> {
  return new Promise((resolve, reject) => {
    const v12 = job.version === 'TLSv1.2';
    let gotTicket = false;
    let endWhenTicket: (() => void) | undefined;
    let bodyBad = '';
    const t0 = performance.now();
    let handshakeMs = NaN;
    let doneMs = NaN;
    let tSent = NaN;
    let tickets = 0;
    let facts: SessionFacts | undefined;
    let resumed = false;
    let head = Buffer.alloc(0);
    let headerDone = false;
    let status = '';
    let contentLength = -1;
    let bodyBytes = 0;
    let settled = false;
    const s = tls.connect({
      host: cfg.host,
      port: job.port,
      servername: cfg.servername,
      ca: cfg.ca,
      rejectUnauthorized: true,
      minVersion: v12 ? 'TLSv1.2' : PINNED.minVersion,
      maxVersion: v12 ? 'TLSv1.2' : PINNED.maxVersion,
      ciphers: v12 ? PINNED12.ciphers : PINNED.ciphers,
      // TLS 1.2: an ECDSA P-256 certificate needs P-256 among the client's groups; ECDHE stays x25519
      ecdhCurve: v12 ? `${PINNED.ecdhCurve}:P-256` : PINNED.ecdhCurve,
      sigalgs: PINNED.sigalgs,
      ALPNProtocols: [PINNED.alpn],
      session: co.session, // undefined unless resuming: every other handshake is a full one
    });
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`connection did not finish within ${CONN_TIMEOUT_MS} ms`)), CONN_TIMEOUT_MS);
    s.on('session', (sess: Buffer) => {
      tickets++; // counted; reused only by resumption jobs
      gotTicket = true;
      co.onSession?.(sess);
      endWhenTicket?.();
      endWhenTicket = undefined;
    });
    s.on('error', fail);
    s.once('secureConnect', () => {
      handshakeMs = performance.now() - t0;
      resumed = s.isSessionReused();
      const eph = s.getEphemeralKeyInfo();
      const peer = s.getPeerCertificate();
      facts = {
        protocol: s.getProtocol(),
        cipher: s.getCipher().standardName,
        group: eph && 'name' in eph ? (eph.name as string) : undefined,
        alpn: s.alpnProtocol,
        peerCurve: (peer as { nistCurve?: string }).nistCurve,
      };
      if (job.kind === 'handshake') {
        doneMs = handshakeMs;
        s.resume();
        if (co.waitTicket && !gotTicket) {
          const t = setTimeout(() => endWhenTicket?.(), 1000);
          endWhenTicket = () => {
            clearTimeout(t);
            s.end();
          };
          return;
        }
        s.end(); // close_notify + FIN; wait for the server's close below
        return;
      }
      const path = job.kind === 'bulk' ? `/bytes/${job.bytes ?? 0}` : '/status';
      tSent = performance.now();
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${cfg.servername}\r\nConnection: close\r\n\r\n`);
    });
    s.on('data', (chunk: Buffer) => {
      if (job.kind === 'handshake') return;
      if (!headerDone) {
        head = Buffer.concat([head, chunk]);
        const i = head.indexOf('\r\n\r\n');
        if (i < 0) return;
        headerDone = true;
        const lines = head.subarray(0, i).toString('latin1').split('\r\n');
        status = lines[0] ?? '';
        const cl = lines.find((l) => /^content-length:/i.test(l));
        contentLength = cl ? Number(cl.split(':')[1]) : -1;
        bodyBytes = head.length - i - 4;
        if (job.checkBody) checkBody(head.subarray(i + 4), 0);
        head = Buffer.alloc(0);
      } else {
        if (job.checkBody) checkBody(chunk, bodyBytes);
        bodyBytes += chunk.length;
      }
      if (contentLength >= 0 && bodyBytes >= contentLength && Number.isNaN(doneMs)) doneMs = performance.now() - t0;
    });
    function checkBody(b: Buffer, offset: number): void {
      if (bodyBad) return;
      for (let k = 0; k < b.length; k++) {
        if (b[k] !== patternByte(offset + k)) {
          bodyBad = `body byte ${offset + k} is ${b[k]}, not ${patternByte(offset + k)}`;
          return;
        }
      }
    }
    s.on('close', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (Number.isNaN(handshakeMs) || !facts) return reject(new Error('closed before the handshake completed'));
      if (job.kind !== 'handshake') {
        if (!/^HTTP\/1\.1 200 /.test(status)) return reject(new Error(`unexpected response status: ${JSON.stringify(status)}`));
        if (bodyBytes !== contentLength) return reject(new Error(`body of ${bodyBytes} bytes, content-length ${contentLength}`));
        if (job.kind === 'bulk' && bodyBytes !== (job.bytes ?? 0)) return reject(new Error(`body of ${bodyBytes} bytes, asked for ${job.bytes}`));
        if (bodyBad) return reject(new Error(bodyBad));
      }
      const end = Number.isNaN(doneMs) ? performance.now() - t0 : doneMs;
      resolve({
        handshakeMs,
        latencyMs: end,
        transferMs: Number.isNaN(tSent) ? 0 : t0 + end - tSent,
        bodyBytes,
        resumed,
        tickets,
        facts,
      });
    });
  });
}

function checkFacts(f: SessionFacts, job: Job): string | undefined {
  const v12 = job.version === 'TLSv1.2';
  if (f.protocol !== (v12 ? 'TLSv1.2' : 'TLSv1.3')) return `protocol ${f.protocol}`;
  if (f.cipher !== (v12 ? PINNED12.standardName : PINNED.ciphers)) return `cipher ${f.cipher}`;
  // a resumed TLS 1.2 session has no ephemeral key exchange to report
  if (f.group !== PINNED.ecdhCurve && !(job.resume && v12)) return `group ${f.group}`;
  if (f.peerCurve !== 'P-256' && !job.resume) return `server key curve ${f.peerCurve}`;
  return undefined;
}

async function runJob(cfg: ClientConfig, job: Job): Promise<JobResult> {
  const handshakeMs: number[] = [];
  const latencyMs: number[] = [];
  const errors: string[] = [];
  let resumed = 0;
  let tickets = 0;
  let bodyBytes = 0;
  let transferMs = 0;
  let facts: SessionFacts | undefined;
  let failed = 0;
  const cpu0 = process.cpuUsage();
  let session: Buffer | undefined;
  const onSession = (x: Buffer): void => {
    session = x;
  };
  if (job.resume) {
    // priming connection (not counted): a first full handshake to get a ticket / session id
    try {
      await oneConnection(cfg, { ...job, kind: 'handshake' }, { waitTicket: true, onSession });
    } catch (e) {
      errors.push(`priming connection: ${(e as Error).message}`);
    }
    if (!session && errors.length === 0) errors.push('priming connection: no session received');
  }
  const t0 = performance.now();
  const c = Math.max(1, Math.min(job.concurrency ?? 1, job.n));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < job.n && (job.maxMs === undefined || performance.now() - t0 < job.maxMs)) {
      next++;
      try {
        if (job.resume && !session) throw new Error('no session to resume');
        // measured resumptions do not wait for a new ticket: the latest session received is offered
        const r = await oneConnection(cfg, job, job.resume ? { session, onSession } : {});
        const bad = checkFacts(r.facts, job);
        if (bad) throw new Error(`negotiated ${bad}, not the pinned parameters`);
        if (job.resume && !r.resumed) throw new Error('offered a session but the handshake was a full one');
        if (r.resumed) resumed++;
        facts ??= r.facts;
        handshakeMs.push(r.handshakeMs);
        latencyMs.push(r.latencyMs);
        tickets += r.tickets;
        bodyBytes += r.bodyBytes;
        transferMs += r.transferMs;
      } catch (e) {
        if (errors.length < 20) errors.push((e as Error).message);
        else if (errors.length === 20) errors.push('…');
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: c }, worker));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = [...latencyMs].sort((a, b) => a - b);
  return {
    id: job.id,
    kind: job.kind,
    n: latencyMs.length + failed, // attempted (maxMs may stop a job early)
    ok: latencyMs.length,
    errors,
    wallMs,
    handshakeMs,
    latencyMs,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    clientCpuUs: cpu.user + cpu.system,
    resumed,
    ticketsReceived: tickets,
    bodyBytes,
    transferMs,
    facts,
  };
}

// ------------------------------------------------------------------ held (idle) connections

/** A keep-alive connection that stays open between jobs; GET /status on demand. */
class HeldConn {
  closed = false;
  facts: SessionFacts | undefined;
  private buf = Buffer.alloc(0);
  private waiter: { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | undefined;
  /** Bytes the server sent while no request was pending (must stay empty: idle means idle). */
  unsolicited = 0;

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => {
      if (!this.waiter) {
        this.unsolicited += d.length;
        return;
      }
      this.buf = Buffer.concat([this.buf, d]);
      this.tryComplete();
    });
    socket.on('error', (e) => this.settle(e));
    socket.on('close', () => {
      this.closed = true;
      this.settle(new Error('connection closed'));
    });
  }

  static open(cfg: ClientConfig, port: number): Promise<{ conn: HeldConn; handshakeMs: number }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const s = tls.connect({
        host: cfg.host,
        port,
        servername: cfg.servername,
        ca: cfg.ca,
        rejectUnauthorized: true,
        minVersion: PINNED.minVersion,
        maxVersion: PINNED.maxVersion,
        ciphers: PINNED.ciphers,
        ecdhCurve: PINNED.ecdhCurve,
        sigalgs: PINNED.sigalgs,
        ALPNProtocols: [PINNED.alpn],
      });
      const conn = new HeldConn(s);
      let done = false;
      const early = (e: Error): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        s.destroy();
        reject(e);
      };
      const timer = setTimeout(() => early(new Error(`handshake did not finish within ${CONN_TIMEOUT_MS} ms`)), CONN_TIMEOUT_MS);
      s.once('error', early);
      s.once('close', () => early(new Error('closed before the handshake completed')));
      s.once('secureConnect', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        const eph = s.getEphemeralKeyInfo();
        const peer = s.getPeerCertificate();
        conn.facts = {
          protocol: s.getProtocol(),
          cipher: s.getCipher().standardName,
          group: eph && 'name' in eph ? (eph.name as string) : undefined,
          alpn: s.alpnProtocol,
          peerCurve: (peer as { nistCurve?: string }).nistCurve,
        };
        if (s.isSessionReused()) {
          s.destroy();
          return reject(new Error('resumed: the hold connections must be full handshakes'));
        }
        resolve({ conn, handshakeMs: performance.now() - t0 });
      });
    });
  }

  /** One keep-alive GET /status; resolves when the whole response (content-length) arrived. */
  get(servername: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('connection closed'));
    if (this.waiter) return Promise.reject(new Error('a request is already pending'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(new Error(`no response within ${CONN_TIMEOUT_MS} ms`)), CONN_TIMEOUT_MS);
      this.waiter = { resolve, reject, timer };
      this.buf = Buffer.alloc(0);
      this.socket.write(`GET /status HTTP/1.1\r\nHost: ${servername}\r\nConnection: keep-alive\r\n\r\n`);
    });
  }

  private tryComplete(): void {
    const i = this.buf.indexOf('\r\n\r\n');
    if (i < 0) return;
    const lines = this.buf.subarray(0, i).toString('latin1').split('\r\n');
    const status = lines[0] ?? '';
    const cl = lines.find((l) => /^content-length:/i.test(l));
    const len = cl ? Number(cl.split(':')[1]) : NaN;
    if (!/^HTTP\/1\.1 200 /.test(status)) return this.settle(new Error(`unexpected response status: ${JSON.stringify(status)}`));
    if (!Number.isInteger(len)) return this.settle(new Error('response without content-length'));
    if (lines.some((l) => /^connection:\s*close/i.test(l))) return this.settle(new Error('server answered Connection: close'));
    const have = this.buf.length - i - 4;
    if (have < len) return;
    if (have > len) return this.settle(new Error(`${have - len} bytes beyond the response`));
    this.settle();
  }

  private settle(e?: Error): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = undefined;
    clearTimeout(w.timer);
    if (e) w.reject(e);
    else w.resolve();
  }

  /** close_notify + FIN; resolves once the socket closed (destroyed after 5 s). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => this.socket.destroy(), 5000);
      this.socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.socket.end();
    });
  }
}

let held: HeldConn[] = [];

async function pooled(n: number, c: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(c, n)) }, worker));
}

function baseResult(job: Job, t0: number, cpu0: NodeJS.CpuUsage): Omit<JobResult, 'n' | 'ok' | 'errors' | 'handshakeMs' | 'latencyMs' | 'p50Ms' | 'p99Ms' | 'facts'> {
  const cpu = process.cpuUsage(cpu0);
  return { id: job.id, kind: job.kind, wallMs: performance.now() - t0, clientCpuUs: cpu.user + cpu.system, resumed: 0, ticketsReceived: 0, bodyBytes: 0, transferMs: 0 };
}

/** hold: n keep-alive connections, each a full handshake + GET /status, left open and idle. */
async function runHold(cfg: ClientConfig, job: Job): Promise<JobResult> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const errors: string[] = [];
  const handshakeMs: number[] = [];
  const latencyMs: number[] = [];
  let facts: SessionFacts | undefined;
  let failed = 0;
  await pooled(job.n, job.concurrency ?? 1, async () => {
    const ts = performance.now();
    let conn: HeldConn | undefined;
    try {
      const o = await HeldConn.open(cfg, job.port);
      conn = o.conn;
      const bad = checkFacts(o.conn.facts!, job);
      if (bad) throw new Error(`negotiated ${bad}, not the pinned parameters`);
      await o.conn.get(cfg.servername);
      handshakeMs.push(o.handshakeMs);
      latencyMs.push(performance.now() - ts);
      facts ??= o.conn.facts;
      held.push(o.conn);
    } catch (e) {
      conn?.socket.destroy();
      failed++;
      if (errors.length < 20) errors.push((e as Error).message);
    }
  });
  const sorted = [...latencyMs].sort((a, b) => a - b);
  return {
    ...baseResult(job, t0, cpu0),
    n: job.n,
    ok: job.n - failed,
    errors,
    handshakeMs,
    latencyMs,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    facts,
    held: held.filter((h) => !h.closed).length,
  };
}

/** release: every held connection must still be open and answer one more GET /status; then all closed. */
async function runRelease(cfg: ClientConfig, job: Job): Promise<JobResult> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const errors: string[] = [];
  const latencyMs: number[] = [];
  const list = held;
  held = [];
  const closedEarly = list.filter((h) => h.closed).length;
  if (closedEarly) errors.push(`${closedEarly} of ${list.length} held connections closed while idle`);
  const noisy = list.filter((h) => h.unsolicited > 0).length;
  if (noisy) errors.push(`${noisy} held connections received data while idle`);
  let ok = 0;
  await pooled(list.length, job.concurrency ?? 1, async (i) => {
    const h = list[i]!;
    if (h.closed) return;
    const ts = performance.now();
    try {
      await h.get(cfg.servername);
      latencyMs.push(performance.now() - ts);
      ok++;
    } catch (e) {
      if (errors.length < 20) errors.push(`final GET: ${(e as Error).message}`);
    }
  });
  await Promise.all(list.map((h) => h.close()));
  const sorted = [...latencyMs].sort((a, b) => a - b);
  return {
    ...baseResult(job, t0, cpu0),
    n: list.length,
    ok: noisy ? 0 : ok,
    errors,
    handshakeMs: [],
    latencyMs,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    facts: undefined,
    held: 0,
    closedEarly,
  };
}

/**
 * One replay connection: for each pair of `flights`, writes the client's bytes and waits for the
 * server's; FIN after the last client flight; resolves when the server closed.
 */
function replayConnection(cfg: ClientConfig, port: number, flights: readonly number[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const s = net.connect({ host: cfg.host, port });
    let step = 0;
    let got = 0;
    let settled = false;
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`replay did not finish within ${CONN_TIMEOUT_MS} ms`)), CONN_TIMEOUT_MS);
    const send = (): void => {
      s.write(Buffer.alloc(flights[step]!, 0x16));
      if (step === flights.length - 2) s.end();
    };
    s.on('connect', send);
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got > flights[step + 1]!) return fail(new Error(`server sent ${got} bytes in flight ${step / 2}, expected ${flights[step + 1]}`));
      if (got < flights[step + 1]!) return;
      got = 0;
      step += 2;
      if (step < flights.length) send();
    });
    s.on('error', fail);
    s.on('close', () => {
      if (settled) return;
      if (step < flights.length) return fail(new Error(`server closed at flight ${step / 2} of ${flights.length / 2}`));
      settled = true;
      clearTimeout(timer);
      resolve(performance.now() - t0);
    });
  });
}

/** replay: n sequential plain-TCP connections with the byte pattern of `flights`. */
async function runReplay(cfg: ClientConfig, job: Job): Promise<JobResult> {
  const flights = job.flights ?? [];
  if (flights.length < 2 || flights.length % 2 !== 0 || flights.some((f) => !Number.isInteger(f) || f < 1)) throw new Error('replay needs an even number of positive byte counts');
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const errors: string[] = [];
  const latencyMs: number[] = [];
  let failed = 0;
  for (let i = 0; i < job.n; i++) {
    try {
      latencyMs.push(await replayConnection(cfg, job.port, flights));
    } catch (e) {
      failed++;
      if (errors.length < 20) errors.push((e as Error).message);
    }
  }
  const sorted = [...latencyMs].sort((a, b) => a - b);
  return { ...baseResult(job, t0, cpu0), n: job.n, ok: job.n - failed, errors, handshakeMs: [], latencyMs, p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), facts: undefined };
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: client.ts <ClientConfig JSON>  (jobs on stdin, one JSON per line)');
  const cfg = JSON.parse(arg) as ClientConfig;
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const job = JSON.parse(line) as Job;
    const res = job.kind === 'hold' ? await runHold(cfg, job) : job.kind === 'release' ? await runRelease(cfg, job) : job.kind === 'replay' ? await runReplay(cfg, job) : await runJob(cfg, job);
    process.stdout.write(JSON.stringify(res) + '\n');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench client: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
