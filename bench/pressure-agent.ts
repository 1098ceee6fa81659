/**
 * The pressure load and attack generator, run as its own process (so its CPU and sockets are not the
 * server's):  node --import tsx bench/pressure-agent.ts '<AgentConfig JSON>'
 * Prints one JSON line when its load is in place ({"ready":true,...}), a JSON status line every
 * `reportMs`, and — for `loop` — a final {"done":true,...} line, then exits. The attacks run until
 * stdin closes (or SIGTERM), then print a final status and exit. Modes:
 *
 *   loop       `clients` TLS 1.3 clients (node:tls, the server certificate verified against `ca`) each
 *              handshaking in a loop — connect, full handshake, close — until `total` connections were
 *              made; reports completed / failed (by error code) / handshakes per second / latency.
 *   idle       `count` TCP connections that never send a byte; one the server closes is reopened.
 *   slowloris  `count` connections each sending a real ClientHello one byte every `byteMs`; reopened.
 *   trickle    `count` TLS connections, each sending a valid HTTP request that never ends one byte
 *              (one TLS record) every `everyMs` (800): request line, then a header value forever —
 *              the HTTP server waits for the end of the headers, the session is never idle. One the
 *              server cuts (close_notify, then FIN: 'end' without an error) is counted and reopened.
 *              An exported session keeps trickling (it no longer holds the card).
 *   dtls-flood `count` lanes, each: a new UDP port, ClientHello, the HelloVerifyRequest's cookie,
 *              ClientHello with the cookie, the server's flight — then silence: a half-open
 *              association holding a card channel until the server's stall deadline; repeated.
 * imports node only.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';

export interface AgentConfig {
  readonly mode: 'loop' | 'idle' | 'slowloris' | 'trickle' | 'dtls-flood';
  readonly port: number;
  readonly host?: string;
  /** PEM of the CA (loop, trickle). */
  readonly ca?: string;
  readonly servername?: string;
  /** loop: concurrent clients, connections in all. */
  readonly clients?: number;
  readonly total?: number;
  /** idle / slowloris / trickle / dtls-flood: connections or lanes. */
  readonly count?: number;
  /** slowloris: ms between bytes (default 1000). trickle: ms between records (default 800). */
  readonly byteMs?: number;
  readonly everyMs?: number;
  /** Local address to connect from (a per-peer limit applies per source IP). */
  readonly localAddress?: string;
  readonly reportMs?: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as AgentConfig;
const host = cfg.host ?? '127.0.0.1';
const out = (o: object): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};
let stopping = false;
const stoppers: (() => void)[] = [];
function onStop(f: () => void): void {
  stoppers.push(f);
}
function stop(final: () => object): void {
  process.stdin.on('end', () => finish(final));
  process.stdin.resume();
  process.on('SIGTERM', () => finish(final));
}
function finish(final: () => object): void {
  if (stopping) return;
  stopping = true;
  for (const f of stoppers) f();
  out({ final: true, ...final() });
  setTimeout(() => process.exit(0), 50).unref();
}

function tlsOpts(): tls.ConnectionOptions {
  return {
    host,
    port: cfg.port,
    servername: cfg.servername ?? 'localhost',
    ca: cfg.ca,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ...(cfg.localAddress ? { localAddress: cfg.localAddress } : {}),
  };
}

// ------------------------------------------------------------------ loop

function loop(): void {
  const clients = cfg.clients ?? 300;
  const total = cfg.total ?? 3000;
  let started = 0;
  let completed = 0;
  let failed = 0;
  const errors: Record<string, number> = {};
  const lat: number[] = [];
  const t0 = performance.now();
  let running = 0;
  const one = (): void => {
    if (started >= total) {
      if (running === 0) done();
      return;
    }
    started++;
    running++;
    const t = performance.now();
    let settled = false;
    const s = tls.connect(tlsOpts(), () => {
      if (settled) return;
      settled = true;
      completed++;
      lat.push(performance.now() - t);
      s.end();
    });
    s.setTimeout(120_000, () => s.destroy(new Error('ETIMEDOUT (client 120 s)')));
    s.on('error', (e: Error & { code?: string }) => {
      if (settled) return;
      settled = true;
      failed++;
      const k = e.code ?? e.message;
      errors[k] = (errors[k] ?? 0) + 1;
    });
    s.on('close', () => {
      if (!settled) {
        settled = true;
        failed++;
        errors['closed before the handshake'] = (errors['closed before the handshake'] ?? 0) + 1;
      }
      running--;
      setImmediate(one);
    });
  };
  const done = (): void => {
    const wallMs = performance.now() - t0;
    lat.sort((a, b) => a - b);
    const pct = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)]! : NaN);
    out({ done: true, clients, total, completed, failed, errors, wallMs, handshakesPerSec: completed / (wallMs / 1000), p50Ms: pct(50), p99Ms: pct(99) });
    process.exit(0);
  };
  out({ ready: true });
  for (let i = 0; i < clients; i++) one();
}

// ------------------------------------------------------------------ idle / slowloris

/** A real TLS 1.3 ClientHello from node:tls, captured on a local listener. */
function captureHello(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.once('data', (d: Buffer) => {
        resolve(d);
        s.destroy();
        srv.close();
      });
    });
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false });
      c.on('error', () => undefined);
    });
  });
}

async function crowd(slow: boolean): Promise<void> {
  const count = cfg.count ?? 2000;
  const byteMs = cfg.byteMs ?? 1000;
  const hello = slow ? await captureHello() : Buffer.alloc(0);
  const open = new Set<net.Socket>();
  let opened = 0;
  let closedByServer = 0;
  let ready = false;
  const timers = new Set<NodeJS.Timeout>();
  const connect = (): void => {
    if (stopping) return;
    const s = net.connect({ port: cfg.port, host, ...(cfg.localAddress ? { localAddress: cfg.localAddress } : {}) });
    s.on('error', () => undefined);
    s.once('connect', () => {
      opened++;
      open.add(s);
      // in place once `count` were opened (a crowded server sheds them sooner: they are reopened)
      if (!ready && opened >= count) {
        ready = true;
        out({ ready: true, open: open.size });
      }
      if (slow) {
        let i = 0;
        const t = setInterval(() => {
          if (i >= hello.length - 1 || s.destroyed) return; // never the last byte
          s.write(hello.subarray(i, i + 1));
          i++;
        }, byteMs);
        timers.add(t);
        s.once('close', () => {
          clearInterval(t);
          timers.delete(t);
        });
      }
    });
    s.once('close', () => {
      if (open.delete(s) && !stopping) {
        closedByServer++;
        setTimeout(connect, 5);
      } else if (!stopping && !ready) setTimeout(connect, 20);
    });
  };
  // open them in bursts (the kernel's accept queue is finite)
  for (let i = 0; i < count; i++) {
    connect();
    if (i % 200 === 199) await new Promise((r) => setTimeout(r, 20));
  }
  const rep = setInterval(() => out({ open: open.size, opened, closedByServer }), cfg.reportMs ?? 1000);
  onStop(() => {
    clearInterval(rep);
    for (const t of timers) clearInterval(t);
    for (const s of open) s.destroy();
  });
  stop(() => ({ open: open.size, opened, closedByServer }));
}

// ------------------------------------------------------------------ trickle

function trickle(): void {
  const count = cfg.count ?? 1;
  const everyMs = cfg.everyMs ?? 800;
  let established = 0;
  let cut = 0;
  let errors = 0;
  let ready = false;
  let bytes = 0;
  const codes: Record<string, number> = {};
  const live = new Set<tls.TLSSocket>();
  const one = (): void => {
    if (stopping) return;
    const s = tls.connect(tlsOpts(), () => {
      established++;
      live.add(s);
      if (!ready && live.size >= count) {
        ready = true;
        out({ ready: true, established });
      }
      const request = 'GET /status HTTP/1.1\r\nHost: localhost\r\nX-Trickle: ';
      let i = 0;
      const t = setInterval(() => {
        if (s.writable) {
          s.write(i < request.length ? request[i]! : 'a'); // one byte: one TLS record
          i++;
          bytes++;
        }
      }, everyMs);
      s.once('close', () => clearInterval(t));
    });
    let ended = false;
    let failure: string | undefined;
    s.on('end', () => (ended = true)); // the server's close_notify (then FIN)
    s.on('error', (e: Error & { code?: string }) => {
      if (!ended) failure ??= e.code ?? e.message; // after close_notify a late write may meet a reset: not a failure
    });
    s.resume();
    s.once('close', () => {
      live.delete(s);
      if (stopping) return;
      if (ended && failure === undefined) cut++;
      else {
        errors++;
        const k = failure ?? 'closed without close_notify';
        codes[k] = (codes[k] ?? 0) + 1;
      }
      setTimeout(one, 20);
    });
  };
  for (let i = 0; i < count; i++) one();
  const rep = setInterval(() => out({ established, live: live.size, cut, errors, codes, bytes }), cfg.reportMs ?? 1000);
  onStop(() => {
    clearInterval(rep);
    for (const s of live) s.destroy();
  });
  stop(() => ({ established, live: live.size, cut, errors, codes, bytes }));
}

// ------------------------------------------------------------------ DTLS half-open flood

/** A DTLS 1.2 ClientHello datagram offering the PSK and ECDHE-PSK suites (with a cookie when given). */
function dtlsHello(random: Buffer, cookie: Buffer, messageSeq: number, recordSeq: number): Buffer {
  const suites = [0xc0a8, 0xc0ae, 0x00a8, 0xc0ac];
  const suiteBytes = Buffer.alloc(2 + 2 * suites.length);
  suiteBytes.writeUInt16BE(2 * suites.length, 0);
  suites.forEach((x, i) => suiteBytes.writeUInt16BE(x, 2 + 2 * i));
  const ext = (type: number, body: Buffer): Buffer => Buffer.concat([Buffer.from([type >> 8, type & 0xff, body.length >> 8, body.length & 0xff]), body]);
  const exts = Buffer.concat([
    ext(0x0017, Buffer.alloc(0)), // extended_master_secret
    ext(0x000a, Buffer.from([0, 2, 0, 0x17])), // supported_groups: secp256r1
    ext(0x000b, Buffer.from([1, 0])), // ec_point_formats: uncompressed
    ext(0x000d, Buffer.from([0, 2, 4, 3])), // signature_algorithms: ecdsa_secp256r1_sha256
  ]);
  const body = Buffer.concat([
    Buffer.from([0xfe, 0xfd]),
    random,
    Buffer.from([0]), // session id
    Buffer.from([cookie.length]),
    cookie,
    suiteBytes,
    Buffer.from([1, 0]), // null compression
    Buffer.from([exts.length >> 8, exts.length & 0xff]),
    exts,
  ]);
  const len = body.length;
  const hs = Buffer.concat([Buffer.from([1, 0, len >> 8, len & 0xff, messageSeq >> 8, messageSeq & 0xff, 0, 0, 0, 0, len >> 8, len & 0xff]), body]);
  return Buffer.concat([Buffer.from([22, 0xfe, 0xfd, 0, 0, 0, 0, recordSeq >> 24, (recordSeq >> 16) & 0xff, (recordSeq >> 8) & 0xff, recordSeq & 0xff, hs.length >> 8, hs.length & 0xff]), hs]);
}

function dtlsFlood(): void {
  const lanes = cfg.count ?? 16;
  let halfOpen = 0;
  let attempts = 0;
  let cookied = 0;
  let ready = false;
  const sockets = new Set<UdpSocket>();
  const lane = (): void => {
    if (stopping) return;
    attempts++;
    const s = createSocket('udp4');
    sockets.add(s);
    const random = randomBytes(32);
    let stage: 'hvr' | 'flight' | 'silent' = 'hvr';
    const again = (ms: number): void => {
      clearTimeout(giveUp);
      setTimeout(() => {
        sockets.delete(s);
        s.close();
        lane();
      }, ms);
    };
    // no answer (dropped by the server's per-peer limit, or still queued for a channel): a new lane
    // after a while — the association, if it gets a channel later, is half-open all the same
    const giveUp = setTimeout(() => again(0), 10_000);
    s.on('error', () => again(100));
    s.on('message', (m: Buffer) => {
      if (stage === 'hvr' && m.length > 27 && m[0] === 22 && m[13] === 3) {
        const cookieLen = m[13 + 12 + 2]!;
        const cookie = m.subarray(13 + 12 + 3, 13 + 12 + 3 + cookieLen);
        stage = 'flight';
        s.send(dtlsHello(random, Buffer.from(cookie), 1, 1), cfg.port, host);
        cookied++;
        // in place once every lane has passed the cookie exchange (a valid ClientHello the server must schedule)
        if (!ready && cookied >= lanes) {
          ready = true;
          out({ ready: true, cookied, halfOpen });
        }
      } else if (stage === 'flight' && m[0] === 22) {
        stage = 'silent';
        halfOpen++;
        // silent from now on: the association holds its channel until the server gives up; a new
        // lane (new port) replaces this one a little later
        again(1500);
      }
    });
    s.bind(0, cfg.localAddress ?? '127.0.0.1', () => s.send(dtlsHello(random, Buffer.alloc(0), 0, 0), cfg.port, host));
  };
  for (let i = 0; i < lanes; i++) lane();
  const rep = setInterval(() => out({ halfOpen, cookied, attempts }), cfg.reportMs ?? 1000);
  onStop(() => {
    clearInterval(rep);
    for (const s of sockets) s.close();
  });
  stop(() => ({ halfOpen, cookied, attempts }));
}

switch (cfg.mode) {
  case 'loop':
    loop();
    break;
  case 'idle':
    void crowd(false);
    break;
  case 'slowloris':
    void crowd(true);
    break;
  case 'trickle':
    trickle();
    break;
  case 'dtls-flood':
    dtlsFlood();
    break;
  default:
    process.stderr.write(`unknown mode ${String(cfg.mode)}\n`);
    process.exit(2);
}
