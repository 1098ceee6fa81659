/**
 * The host's DTLS listener: one UDP socket, a bounded table of associations keyed by address:port.
 *
 *   datagram from an unknown peer ─► must start with an epoch-0 ClientHello in one record
 *     no / wrong cookie ─► HelloVerifyRequest from the host (stateless; no backend, no card time)
 *     valid cookie      ─► a new association, if the table has room and `openBackend` gives a key
 *                          holder (a busy card answers undefined: the datagram is dropped and the
 *                          client's retransmission tries again)
 *   datagram from a known peer ─► its association; a ClientHello with a valid cookie and a new random
 *     replaces the association (the client restarted, RFC 6347 §4.2.8)
 *
 * A key holder is a card channel, so deadlines (checked every 100 ms) keep any one association from
 * holding it: a handshake that makes no progress — no new flight from the key holder, e.g. a client
 * that went silent after its cookie, or one whose Finished fails (wrong PSK: DTLS drops records that
 * do not authenticate) — is abandoned after `stallTimeoutMs` (`busyStallTimeoutMs` while others wait
 * for a channel, `pressure()`), a handshake never longer than `handshakeTimeoutMs`; an idle
 * association is closed with close_notify after `idleTimeoutMs` (`busyIdleTimeoutMs` while others
 * wait), and an established one that has held its channel `maxHoldMs` while others wait too. At most
 * `maxHandshakesPerPeer` associations of one source IP are being opened or handshaking at once (more
 * ClientHellos from it are dropped: its retransmission tries again).
 * Events: 'session' (DtlsAssociation, once connected), 'association' (created), 'error', 'stalled'
 * and 'cut' (DtlsAssociation).
 * Diagnostics (`setls:session`): stalled, cut. imports node:dgram, tls/record (framing) and host/.
 */
import { createSocket, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { parseDtlsHandshakeFragments, parseDtlsRecords, splitDtlsClientHello } from '../../tls/record/dtls-framing.js';
import { DtlsAssociation, type DtlsAssociationOptions, type DtlsBackend } from './association.js';
import { CookieJar, helloVerifyRequest } from './cookie.js';
import { publishSession } from '../hello-stage.js';

export interface DtlsPeer {
  readonly address: string;
  readonly port: number;
}

export interface DtlsServerOptions extends DtlsAssociationOptions {
  /** Opens a key holder for a new association; undefined = busy (the ClientHello is dropped). */
  openBackend(peer: DtlsPeer): Promise<DtlsBackend | undefined>;
  /** Largest number of associations at once (default 64). */
  readonly maxAssociations?: number;
  /** An association without traffic for this long is closed (default 5 min). */
  readonly idleTimeoutMs?: number;
  /** A handshake not complete after this long is abandoned (default 30 s). */
  readonly handshakeTimeoutMs?: number;
  /** A handshake without progress (no new flight from the key holder) this long is abandoned (default 4000 ms). */
  readonly stallTimeoutMs?: number;
  /** The same while others wait for a channel (default 500 ms). */
  readonly busyStallTimeoutMs?: number;
  /** The idle deadline while others wait for a channel (default 1000 ms). */
  readonly busyIdleTimeoutMs?: number;
  /** While others wait, an established association that has held its channel this long is closed with close_notify (default 2000 ms; 0 = never). */
  readonly maxHoldMs?: number;
  /** Whether anyone waits for a channel (the scheduler's signal; default: never). */
  readonly pressure?: () => boolean;
  /** Associations being opened or handshaking per source IP (default 8). */
  readonly maxHandshakesPerPeer?: number;
  /** Cookie secret rotation (default 5 min). */
  readonly cookieRotateMs?: number;
}

export interface DtlsServerStats {
  helloVerifyRequests: number;
  associationsOpened: number;
  droppedDatagrams: number;
  busy: number;
  /** Handshakes abandoned for lack of progress (stall deadline). */
  stalled: number;
  /** Established associations closed by the hold limit or the busy idle deadline. */
  cut: number;
  /** ClientHellos dropped by the per-peer limit. */
  peerLimit: number;
  /** Handshakes that gave their key holder back to another peer (fair share, the scheduler asked). */
  preempted: number;
}

export class DtlsServer extends EventEmitter {
  private socket: Socket | undefined;
  private readonly associations = new Map<string, DtlsAssociation>();
  private readonly pendingOpen = new Set<string>();
  private readonly cookies: CookieJar;
  private sweep: NodeJS.Timeout | undefined;
  readonly stats: DtlsServerStats = { helloVerifyRequests: 0, associationsOpened: 0, droppedDatagrams: 0, busy: 0, stalled: 0, cut: 0, peerLimit: 0, preempted: 0 };

  constructor(private readonly opts: DtlsServerOptions) {
    super();
    this.cookies = new CookieJar(opts.cookieRotateMs);
  }

  get size(): number {
    return this.associations.size;
  }

  association(address: string, port: number): DtlsAssociation | undefined {
    return this.associations.get(`${address}:${port}`);
  }

  async listen(port: number, host = '127.0.0.1', type: 'udp4' | 'udp6' = host.includes(':') ? 'udp6' : 'udp4'): Promise<{ address: string; port: number }> {
    const socket = createSocket(type);
    this.socket = socket;
    socket.on('message', (msg, rinfo) => this.onDatagram(new Uint8Array(msg), rinfo.address, rinfo.port));
    socket.on('error', (e) => this.emit('error', e));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.sweep = setInterval(() => this.expire(), 100);
    this.sweep.unref();
    const a = socket.address();
    return { address: a.address, port: a.port };
  }

  /** Feeds a datagram (the socket does this; tests may call it directly with `send` replaced). */
  onDatagram(datagram: Uint8Array, address: string, port: number): void {
    const key = `${address}:${port}`;
    const existing = this.associations.get(key);
    const hello = this.clientHelloOf(datagram);
    if (existing && !(hello && !sameBytes(hello.parts.random, existing.clientRandom))) {
      existing.receive(datagram);
      return;
    }
    if (!hello) {
      this.stats.droppedDatagrams++;
      return;
    }
    if (!this.cookies.verify(address, port, hello.parts)) {
      this.stats.helloVerifyRequests++;
      this.send(helloVerifyRequest(this.cookies.make(address, port, hello.parts), hello.messageSeq, hello.recordSeq), address, port);
      return;
    }
    if (existing) existing.close('replaced by a new ClientHello');
    if (this.pendingOpen.has(key)) return; // the backend for this peer is being opened
    if (this.associations.size + this.pendingOpen.size >= (this.opts.maxAssociations ?? 64)) {
      this.stats.droppedDatagrams++;
      return;
    }
    if (this.handshakesOf(address) >= (this.opts.maxHandshakesPerPeer ?? 8)) {
      this.stats.peerLimit++;
      this.stats.droppedDatagrams++;
      return;
    }
    this.pendingOpen.add(key);
    const copy = new Uint8Array(datagram);
    void this.opts
      .openBackend({ address, port })
      .then((backend) => {
        this.pendingOpen.delete(key);
        if (!backend) {
          this.stats.busy++;
          return;
        }
        if (!this.socket && !this.listenerCount('datagram')) {
          void backend.close();
          return;
        }
        this.open(backend, copy, hello, address, port);
      })
      .catch((e: unknown) => {
        this.pendingOpen.delete(key);
        this.emit('error', e);
      });
  }

  private open(backend: DtlsBackend, datagram: Uint8Array, hello: NonNullable<ReturnType<DtlsServer['clientHelloOf']>>, address: string, port: number): void {
    const a = new DtlsAssociation(address, port, hello.parts.random.slice(), hello.messageSeq, hello.recordSeq, backend, this.opts);
    const key = a.key;
    this.associations.set(key, a);
    this.stats.associationsOpened++;
    a.on('datagram', (d: Uint8Array) => this.send(d, address, port));
    a.once('connected', () => this.emit('session', a));
    a.once('close', () => {
      if (this.associations.get(key) === a) this.associations.delete(key);
    });
    this.emit('association', a);
    a.receive(datagram);
    // fair share: while it handshakes, its scheduler may take the key holder back for another peer
    backend.preemptible?.(() => {
      if (a.state !== 'handshaking') return false;
      this.stats.preempted++;
      publishSession({ event: 'stalled', remoteAddress: address, remotePort: port, error: 'preempted: its peer holds more than its share while another waits' });
      a.close('preempted: its peer holds more than its share of channels while another peer waits');
      return true;
    });
  }

  /** The ClientHello (epoch 0, first record, whole message in one fragment), or undefined. */
  private clientHelloOf(datagram: Uint8Array): { parts: NonNullable<ReturnType<typeof splitDtlsClientHello>>; messageSeq: number; recordSeq: number } | undefined {
    const [r] = parseDtlsRecords(datagram);
    if (!r || r.epoch !== 0 || r.type !== 22) return undefined;
    const frags = parseDtlsHandshakeFragments(r.fragment);
    const f = frags?.[0];
    if (!f || f.msgType !== 1 || f.fragmentOffset !== 0 || f.fragmentLength !== f.length) return undefined;
    const parts = splitDtlsClientHello(f.fragment);
    if (!parts) return undefined;
    return { parts, messageSeq: f.messageSeq, recordSeq: r.seq };
  }

  /** Associations of `address` being opened or handshaking. */
  private handshakesOf(address: string): number {
    let n = 0;
    const prefix = `${address}:`;
    for (const k of this.pendingOpen) if (k.startsWith(prefix) && k.lastIndexOf(':') === prefix.length - 1) n++;
    for (const a of this.associations.values()) if (a.address === address && a.state === 'handshaking') n++;
    return n;
  }

  private send(d: Uint8Array, address: string, port: number): void {
    if (this.listenerCount('datagram') > 0) this.emit('datagram', d, address, port);
    this.socket?.send(d, port, address);
  }

  private expire(): void {
    const now = Date.now();
    const pressure = this.opts.pressure?.() ?? false;
    const idle = pressure ? Math.min(this.opts.busyIdleTimeoutMs ?? 1000, this.opts.idleTimeoutMs ?? Infinity) : (this.opts.idleTimeoutMs ?? 5 * 60_000);
    const hs = this.opts.handshakeTimeoutMs ?? 30_000;
    const stall = pressure ? (this.opts.busyStallTimeoutMs ?? 500) : (this.opts.stallTimeoutMs ?? 4000);
    const hold = this.opts.maxHoldMs ?? 2000;
    for (const a of [...this.associations.values()]) {
      if (a.state === 'handshaking') {
        if (now - a.createdAt > hs) a.close('handshake deadline');
        else if (now - a.lastProgress > stall) {
          this.stats.stalled++;
          publishSession({ event: 'stalled', remoteAddress: a.address, remotePort: a.port });
          this.emit('stalled', a);
          a.close(`handshake stalled: no progress for ${stall} ms`);
        }
      } else if (a.state === 'connected') {
        if (now - a.lastActivity > idle) {
          if (pressure) this.stats.cut++;
          void a.end();
        } else if (pressure && hold > 0 && now - a.createdAt > hold) {
          this.stats.cut++;
          publishSession({ event: 'cut', remoteAddress: a.address, remotePort: a.port });
          this.emit('cut', a);
          void a.end();
        }
      }
    }
  }

  async close(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    await Promise.all([...this.associations.values()].map((a) => a.end()));
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
