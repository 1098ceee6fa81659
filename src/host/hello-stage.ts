/**
 * HelloStage: where an accepted TCP connection waits, holding no card, until a COMPLETE ClientHello
 * has arrived (pool-hello.ts). The host reads its bytes (up to MAX_HELLO_BYTES plus record headers),
 * hands them to the SocketReader that takes the socket on (socket-reader.ts handOn), pauses the
 * socket and hands it on; a connection that sends
 * something else gets a plaintext alert. Memory and sockets are bounded:
 *
 *  - at most `maxPending` connections and `maxPendingBytes` buffered bytes: beyond either, the
 *    STALEST connection (the one whose bytes arrived longest ago) is evicted — closed with FIN — so
 *    idle or slowloris crowds cannot lock out a client that sends its ClientHello at once;
 *  - per source IP at most `maxPerPeer` waiting connections (here and queued for a channel,
 *    PeerTable): a new connection from a peer at its limit evicts that peer's stalest connection
 *    here, or is closed at once when all of them already wait for a channel;
 *  - a deadline from connect: `helloTimeoutMs`, and `crowdedHelloTimeoutMs` while more than half of
 *    `maxPending` is used (checked every 250 ms).
 *
 * Also: the overload answer (a plaintext fatal internal_error alert, then FIN and a bounded drain).
 * Events go to the `setls:session` diagnostics channel: queued, failed, evicted, peer_limit.
 * imports host/ (pool-hello, linger, errors, peer-table, socket-reader).
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type net from 'node:net';
import { hostError, peerClosed, TlsAlertError } from './errors.js';
import { endAndDrain } from './linger.js';
import { peerKey, type PeerTable } from './peer-table.js';
import { MAX_HELLO_BYTES, peekClientHello, type HelloPeek } from './pool-hello.js';
import { handOn } from './socket-reader.js';
import type { SessionEvent } from './tandem.js';

/** TLS alert descriptions the host sends in plaintext before any card spoke. */
export const HOST_ALERT = { unexpectedMessage: 10, recordOverflow: 22, internalError: 80 } as const;

/** A plaintext fatal alert record (TLS 1.2 record version, as every ClientHello accepts). */
export function plaintextAlert(description: number): Uint8Array {
  return Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description);
}

/**
 * The overload answer to a client whose complete ClientHello was read: a plaintext fatal
 * internal_error alert (RFC 8446 §6.2: "an internal error unrelated to the peer or the correctness
 * of the protocol"), FIN, and a bounded drain so the client reads the alert rather than a reset.
 */
export function answerOverloaded(socket: net.Socket): void {
  endAndDrain(socket, plaintextAlert(HOST_ALERT.internalError));
}

const sessionChannel = diagnostics_channel.channel('setls:session');
export function publishSession(ev: SessionEvent): void {
  if (sessionChannel.hasSubscribers) sessionChannel.publish(ev);
}

export interface HelloStageOptions {
  /** Connections in the stage at most (default 4096); beyond, the stalest is evicted. */
  readonly maxPending?: number;
  /** Bytes buffered in the stage at most (default 16 MiB); beyond, the stalest are evicted. */
  readonly maxPendingBytes?: number;
  /** Waiting connections per source IP (this stage + queued for a channel), default half of maxPending (2048). */
  readonly maxPerPeer?: number;
  /** Deadline for a complete ClientHello, from connect, ms (default 10000; 0 = none). */
  readonly helloTimeoutMs?: number;
  /** The same while the stage is more than half full, ms (default 2000). */
  readonly crowdedHelloTimeoutMs?: number;
}

export interface CompleteHello {
  readonly peek: HelloPeek;
  /** Bytes of the buffered records (handed on to the socket's SocketReader). */
  readonly bytes: number;
  /** performance.now() at accept. */
  readonly since: number;
  readonly ip: string;
}

export interface HelloStageSink {
  /** A complete ClientHello (socket paused, bytes handed on to its SocketReader). The peer's `pending` count is already released. */
  hello(socket: net.Socket, h: CompleteHello): void;
  /** A connection left without a ClientHello: deadline, not TLS (alert sent), evicted, peer limit. */
  dropped(socket: net.Socket, err: Error): void;
}

interface Pending {
  readonly socket: net.Socket;
  readonly ip: string;
  readonly since: number;
  chunks: Buffer[];
  size: number;
  onData: (chunk: Buffer) => void;
  onClose: () => void;
}

export interface HelloStageStats {
  /** Evicted to make room (stage full or bytes bound). */
  evicted: number;
  /** Closed by the per-peer limit (a peer's own stalest connection, or the new one). */
  peerLimit: number;
  /** No complete ClientHello before the deadline. */
  timedOut: number;
  /** Not a ClientHello (alert sent). */
  notHello: number;
}

const SWEEP_MS = 250;

export class HelloStage {
  readonly maxPending: number;
  readonly maxPendingBytes: number;
  readonly maxPerPeer: number;
  readonly helloTimeoutMs: number;
  readonly crowdedHelloTimeoutMs: number;
  /** Insertion order = staleness order: an entry is moved to the end whenever its bytes arrive. */
  private readonly all = new Map<net.Socket, Pending>();
  private readonly byPeer = new Map<string, Map<net.Socket, Pending>>();
  private bytesHeld = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  readonly stats: HelloStageStats = { evicted: 0, peerLimit: 0, timedOut: 0, notHello: 0 };

  constructor(
    opts: HelloStageOptions,
    private readonly peers: PeerTable,
    private readonly sink: HelloStageSink,
  ) {
    const int = (name: string, v: number | undefined, d: number, min: number): number => {
      const x = v ?? d;
      if (!Number.isInteger(x) || x < min) throw new RangeError(`${name} must be an integer ≥ ${min}`);
      return x;
    };
    this.maxPending = int('maxPending', opts.maxPending, 4096, 1);
    this.maxPendingBytes = int('maxPendingBytes', opts.maxPendingBytes, 16 * 1024 * 1024, MAX_HELLO_BYTES + 64);
    this.maxPerPeer = int('maxPerPeer', opts.maxPerPeer, Math.max(1, Math.floor(this.maxPending / 2)), 1);
    this.helloTimeoutMs = int('helloTimeoutMs', opts.helloTimeoutMs, 10_000, 0);
    this.crowdedHelloTimeoutMs = Math.min(int('crowdedHelloTimeoutMs', opts.crowdedHelloTimeoutMs, 2_000, 1), this.helloTimeoutMs || Infinity);
  }

  /** Connections in the stage. */
  get size(): number {
    return this.all.size;
  }

  /** Bytes buffered in the stage. */
  get bytes(): number {
    return this.bytesHeld;
  }

  /** More than half full: the crowded deadline applies. */
  get crowded(): boolean {
    return this.all.size * 2 > this.maxPending;
  }

  /** Takes an accepted connection (paused, as `pauseOnConnect` leaves it). */
  admit(socket: net.Socket): void {
    socket.on('error', () => undefined);
    const ip = peerKey(socket.remoteAddress);
    if (this.peers.waiting(ip) >= this.maxPerPeer) {
      const mine = this.byPeer.get(ip);
      const victim = mine?.values().next().value as Pending | undefined;
      this.stats.peerLimit++;
      if (!victim) {
        // every waiting connection of this peer already has its ClientHello in: the new one goes
        publishSession({ event: 'peer_limit', remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
        this.sink.dropped(socket, hostError('ERR_HOST_PEER_LIMIT', `${this.maxPerPeer} connections of ${ip} already wait for the card`));
        endAndDrain(socket);
        return;
      }
      this.drop(victim, 'peer_limit', hostError('ERR_HOST_PEER_LIMIT', `evicted: ${ip} opened more than ${this.maxPerPeer} waiting connections`));
    }
    while (this.all.size >= this.maxPending) {
      const stalest = this.all.values().next().value as Pending;
      this.stats.evicted++;
      this.drop(stalest, 'evicted', hostError('ERR_HOST_EVICTED', `evicted: ${this.maxPending} connections were waiting for their ClientHello`));
    }
    const p: Pending = { socket, ip, since: performance.now(), chunks: [], size: 0, onData: () => undefined, onClose: () => undefined };
    p.onData = (chunk: Buffer) => this.onData(p, chunk);
    p.onClose = () => {
      if (this.remove(p)) this.sink.dropped(socket, peerClosed('the client closed before its ClientHello was complete'));
    };
    this.all.set(socket, p);
    let mine = this.byPeer.get(ip);
    if (!mine) this.byPeer.set(ip, (mine = new Map()));
    mine.set(socket, p);
    this.peers.add(ip, 'pending');
    publishSession({ event: 'queued', remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, queued: this.all.size });
    socket.on('data', p.onData);
    socket.on('close', p.onClose);
    socket.resume();
    this.armSweep();
  }

  private onData(p: Pending, chunk: Buffer): void {
    p.chunks.push(chunk);
    p.size += chunk.length;
    this.bytesHeld += chunk.length;
    // fresh bytes: this connection is now the least stale
    this.all.delete(p.socket);
    this.all.set(p.socket, p);
    const mine = this.byPeer.get(p.ip);
    mine?.delete(p.socket);
    mine?.set(p.socket, p);
    const peek = peekClientHello(p.chunks.length > 1 ? Buffer.concat(p.chunks) : chunk);
    if (peek.state === 'need' && p.size <= MAX_HELLO_BYTES + 5 * 8) {
      while (this.bytesHeld > this.maxPendingBytes) {
        const stalest = this.all.values().next().value as Pending;
        if (stalest === p) break;
        this.stats.evicted++;
        this.drop(stalest, 'evicted', hostError('ERR_HOST_EVICTED', `evicted: waiting ClientHellos held more than ${this.maxPendingBytes} bytes`));
      }
      return;
    }
    const bytes = p.chunks.length === 1 ? p.chunks[0]! : Buffer.concat(p.chunks);
    this.remove(p);
    p.socket.pause();
    if (peek.state !== 'complete') {
      this.stats.notHello++;
      const desc = peek.state === 'bad' ? HOST_ALERT.unexpectedMessage : HOST_ALERT.recordOverflow; // 'overflow', or more bytes than a hello may take
      const why = peek.reason ?? 'too big';
      publishSession({ event: 'failed', remoteAddress: p.socket.remoteAddress, remotePort: p.socket.remotePort, error: `not a ClientHello: ${why}` });
      this.sink.dropped(p.socket, new TlsAlertError('ERR_HOST_NOT_CLIENT_HELLO', `the client did not send a ClientHello (${why})`, desc, true));
      // The host's own plaintext alert, then FIN and a bounded drain (not a reset that could eat it).
      endAndDrain(p.socket, plaintextAlert(desc));
      return;
    }
    handOn(p.socket, bytes); // framed by the SocketReader that takes the socket on
    this.sink.hello(p.socket, { peek, bytes: bytes.length, since: p.since, ip: p.ip });
  }

  /** Removes `p` from the stage (listeners, counts); false when it was already gone. */
  private remove(p: Pending): boolean {
    if (this.all.get(p.socket) !== p) return false;
    this.all.delete(p.socket);
    const mine = this.byPeer.get(p.ip);
    mine?.delete(p.socket);
    if (mine && mine.size === 0) this.byPeer.delete(p.ip);
    this.bytesHeld -= p.size;
    p.chunks = [];
    p.socket.off('data', p.onData);
    p.socket.off('close', p.onClose);
    this.peers.add(p.ip, 'pending', -1);
    if (this.all.size === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
    }
    return true;
  }

  private drop(p: Pending, event: 'evicted' | 'peer_limit' | 'failed', err: Error): void {
    if (!this.remove(p)) return;
    publishSession({ event, remoteAddress: p.socket.remoteAddress, remotePort: p.socket.remotePort, error: err.message });
    this.sink.dropped(p.socket, err);
    // FIN (no alert: nothing TLS was received whole), drain what it still sends, then close
    endAndDrain(p.socket);
  }

  private armSweep(): void {
    if (this.sweepTimer || this.helloTimeoutMs === 0) return;
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    const now = performance.now();
    const limit = this.crowded ? this.crowdedHelloTimeoutMs : this.helloTimeoutMs;
    for (const p of [...this.all.values()]) {
      if (now - p.since < limit) continue;
      this.stats.timedOut++;
      if (!this.remove(p)) continue;
      publishSession({ event: 'failed', remoteAddress: p.socket.remoteAddress, remotePort: p.socket.remotePort, error: 'no complete ClientHello before the handshake deadline' });
      this.sink.dropped(p.socket, hostError('ERR_HOST_HANDSHAKE_TIMEOUT', `no complete ClientHello within ${Math.round(limit)} ms`));
      p.socket.destroy();
    }
  }

  /** Closes every connection in the stage. */
  close(): void {
    for (const p of [...this.all.values()]) {
      this.remove(p);
      p.socket.destroy();
    }
  }
}
