/**
 * The load generator, run as its own process (so its CPU never lands on the servers' account):
 *   node --import tsx bench/client.ts '<ClientConfig JSON>'
 * then reads one Job per line on stdin and answers one JobResult per line on stdout. Each
 * connection is a fresh TCP connection and a FULL TLS 1.3 handshake: no session is offered
 * (`session: undefined`, no agent, tickets received are dropped) and each one is checked not
 * resumed, TLS 1.3, TLS_AES_128_GCM_SHA256 and x25519, with the server certificate verified
 * against the local CA.
 */
import tls from 'node:tls';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { PINNED, percentile, type ClientConfig, type Job, type JobResult, type SessionFacts } from './protocol.js';

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

function oneConnection(cfg: ClientConfig, job: Job): Promise<ConnResult> {
  return new Promise((resolve, reject) => {
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
      minVersion: PINNED.minVersion,
      maxVersion: PINNED.maxVersion,
      ciphers: PINNED.ciphers,
      ecdhCurve: PINNED.ecdhCurve,
      sigalgs: PINNED.sigalgs,
      ALPNProtocols: [PINNED.alpn],
      session: undefined, // never offer a session: every handshake is a full one
    });
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error(`connection did not finish within ${CONN_TIMEOUT_MS} ms`)), CONN_TIMEOUT_MS);
    s.on('session', () => tickets++); // counted, never reused
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
        s.end(); // close_notify + FIN; wait for the server's close below
        s.resume();
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
        head = Buffer.alloc(0);
      } else bodyBytes += chunk.length;
      if (contentLength >= 0 && bodyBytes >= contentLength && Number.isNaN(doneMs)) doneMs = performance.now() - t0;
    });
    s.on('close', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (Number.isNaN(handshakeMs) || !facts) return reject(new Error('closed before the handshake completed'));
      if (job.kind !== 'handshake') {
        if (!/^HTTP\/1\.1 200 /.test(status)) return reject(new Error(`unexpected response status: ${JSON.stringify(status)}`));
        if (bodyBytes !== contentLength) return reject(new Error(`body of ${bodyBytes} bytes, content-length ${contentLength}`));
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

function checkFacts(f: SessionFacts): string | undefined {
  if (f.protocol !== 'TLSv1.3') return `protocol ${f.protocol}`;
  if (f.cipher !== PINNED.ciphers) return `cipher ${f.cipher}`;
  if (f.group !== PINNED.ecdhCurve) return `group ${f.group}`;
  if (f.peerCurve !== 'P-256') return `server key curve ${f.peerCurve}`;
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
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < job.n; i++) {
    try {
      const r = await oneConnection(cfg, job);
      const bad = checkFacts(r.facts);
      if (bad) throw new Error(`negotiated ${bad}, not the pinned parameters`);
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
    }
  }
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = [...latencyMs].sort((a, b) => a - b);
  return {
    id: job.id,
    kind: job.kind,
    n: job.n,
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

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg) throw new Error('usage: client.ts <ClientConfig JSON>  (jobs on stdin, one JSON per line)');
  const cfg = JSON.parse(arg) as ClientConfig;
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const job = JSON.parse(line) as Job;
    const res = await runJob(cfg, job);
    process.stdout.write(JSON.stringify(res) + '\n');
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench client: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
