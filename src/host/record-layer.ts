/**
 * RecordLayer (the paper's SE-TLS API): TLS records between a TCP client and the card. The host
 * frames records and moves them; every encryption and decryption happens in the card — or, for a
 * TLS-Tandem exported session (`HostSession`, recordLayer 'host'), on the host with the traffic
 * keys the card exported (wiped when the session ends). Same methods in both modes.
 *
 *   recv()          next whole TLS record from the client (null at EOF), with a deadline
 *   decrypt(rec)    PROCESS-EAP-DECRYPT
 *   encrypt(pt,ct)  PROCESS-EAP-ENCRYPT, split in records of ≤ 16384 plaintext bytes
 *   send(records)   socket write with backpressure and a deadline
 *   close()         close_notify through the card, end the socket, free the card
 *   abort(err, rec) the session failed: its last records (the alert), end the socket, free the card
 *
 * Both ends end the TCP connection the same way (linger.ts): last records, FIN, then the client's
 * reads are drained with a deadline before the socket is destroyed, so a client that had sent more
 * still reads our alert or close_notify instead of a TCP reset.
 *
 * imports bytes/ and host/ (which reaches the card only through transport/).
 */
import type { Socket } from 'node:net';
import { SetlsError } from '../bytes/index.js';
import type { SessionInfo } from './card-codec.js';
import { HostSession } from './host-record.js';
import { CONTENT_TYPE_ALERT, CONTENT_TYPE_APPLICATION_DATA, MAX_PLAINTEXT, type DecryptResult } from './eap-session.js';
import type { SeSession } from './session-driver.js';
import { SocketReader } from './socket-reader.js';
import { endAndDrain, LINGER_MS } from './linger.js';
import { peerClosed } from './errors.js';

export interface RecordLayerOptions {
  /** Deadline of recv() when none is given, ms (0 = none). Default 30000. */
  readonly recvTimeoutMs?: number;
  /** Deadline for the client to drain a blocked write, ms. Default 30000. */
  readonly writeTimeoutMs?: number;
  /** After end(), the client's reads are drained and the socket destroyed if it has not closed within this time, ms. Default 2000. */
  readonly lingerMs?: number;
  /** Called once when the session ends (the card may serve someone else). */
  readonly onRelease?: (err?: Error) => void | Promise<void>;
  /** What the handshake negotiated (GET-EXPORTED-PARAMETER), when known. */
  readonly info?: SessionInfo;
  /** Where the records are protected: in the card, or on the host after EXPORT-SESSION. Default 'card'. */
  readonly mode?: 'card' | 'host';
}

const CLOSE_NOTIFY = Uint8Array.of(1, 0);

export class RecordLayer {
  readonly info: SessionInfo | undefined;
  /** 'card' (PROCESS-EAP-ENCRYPT/DECRYPT) or 'host' (exported session, TLS-Tandem; also after migrate()). */
  mode: 'card' | 'host';
  private readonly recvTimeoutMs: number;
  private readonly writeTimeoutMs: number;
  private readonly lingerMs: number;
  private closeNotifySent = false;
  private released = false;
  private closing: Promise<void> | undefined;
  /** Set by hurry(): send() no longer waits for the client to drain (the connection is ending). */
  private noWait = false;
  private readonly drainWaiters = new Set<() => void>();
  private onRelease: ((err?: Error) => void | Promise<void>) | undefined;
  private releaseDone!: () => void;
  /** Resolves when the session has ended and the card was released. */
  readonly finished: Promise<void>;
  /** performance.now() of the last record sent. */
  lastSend = performance.now();

  constructor(
    readonly socket: Socket,
    public session: SeSession,
    readonly reader: SocketReader = new SocketReader(socket),
    opts: RecordLayerOptions = {},
  ) {
    this.recvTimeoutMs = opts.recvTimeoutMs ?? 30_000;
    this.writeTimeoutMs = opts.writeTimeoutMs ?? 30_000;
    this.lingerMs = opts.lingerMs ?? LINGER_MS;
    this.onRelease = opts.onRelease;
    this.info = opts.info;
    this.mode = opts.mode ?? 'card';
    this.finished = new Promise((r) => (this.releaseDone = r));
  }

  /**
   * TLS-Tandem mid-session: the card exported this session (EXPORT-SESSION: its keys and sequence
   * numbers, the card's copy wiped), the host protects the records from now on and `onRelease`
   * replaces the card's release. The caller must hold the socket's output lock (no card call of
   * this session in flight).
   */
  migrate(session: HostSession, onRelease: (err?: Error) => void | Promise<void>): void {
    if (this.released) throw new SetlsError('ERR_HOST_STATE', 'the session already ended');
    this.session = session;
    this.mode = 'host';
    this.onRelease = onRelease;
  }

  /** performance.now() of the last traffic either way. */
  get lastActivity(): number {
    return Math.max(this.lastSend, this.reader.lastActivity);
  }

  get isClosed(): boolean {
    return this.released;
  }

  /** Whether our close_notify went out (the card produced it in OutRecords or close() sent it). */
  get sentCloseNotify(): boolean {
    return this.closeNotifySent;
  }

  /** The next whole TLS record from the client, or null at EOF. Rejects ERR_HOST_TIMEOUT after the deadline. */
  recv(timeoutMs: number = this.recvTimeoutMs): Promise<Uint8Array | null> {
    if (this.released) return Promise.resolve(null);
    return this.reader.recv(timeoutMs);
  }

  /**
   * Decrypts one record in the card. Refused once the session ended: the card channel may already
   * serve the next client, whose session a late DECRYPT would disturb.
   */
  async decrypt(record: Uint8Array): Promise<DecryptResult> {
    if (this.released) throw new SetlsError('ERR_HOST_SESSION_CLOSED', 'the TLS session ended (the card may serve another client)');
    const r = await this.session.decrypt(record);
    if (r.peerClosed && r.outRecords.length) this.closeNotifySent = true;
    return r;
  }

  /** Encrypts plaintext in the card: records of ≤ 16384 bytes each. An empty plaintext gives one empty record. */
  async encrypt(plaintext: Uint8Array, contentType: number = CONTENT_TYPE_APPLICATION_DATA): Promise<Uint8Array[]> {
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
    if (this.released) throw new SetlsError('ERR_HOST_SESSION_CLOSED', 'the TLS session ended (the card may serve another client)');
    const out: Uint8Array[] = [];
    let o = 0;
    do {
      const n = Math.min(MAX_PLAINTEXT, plaintext.length - o);
      out.push(await this.session.encrypt(contentType, plaintext.subarray(o, o + n)));
      o += n;
    } while (o < plaintext.length);
    return out;
  }

  /**
   * The exported session when the records are protected on the host (mode 'host'): its
   * synchronous sealApplicationData() is the fast path of encrypt() (SeTlsSocket's writes).
   */
  get hostSession(): HostSession | undefined {
    return this.session instanceof HostSession ? this.session : undefined;
  }

  /** The client's socket still takes writes (send() of anything non-empty would not throw ERR_HOST_PEER_CLOSED). */
  get canSend(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  /**
   * Writes records (or chunks of records, in order) to the client in one gathered write (the
   * chunks corked, then one writev: no copy of the records into one buffer, one system call);
   * waits (with a deadline) while the socket buffer is full.
   *
   * `written`, when given, is called once the socket is done with every chunk (written to the
   * kernel, or dropped because the connection ended: node then reports no error either): only then
   * may the memory of the chunks be reused (the slabs of seal-slabs.ts). It is not called when
   * send() throws before writing anything.
   */
  async send(records: Uint8Array | readonly Uint8Array[], written?: (err?: Error | null) => void): Promise<void> {
    const list = records instanceof Uint8Array ? [records] : records;
    const s = this.socket;
    if (list.length !== 0 && !this.canSend) throw peerClosed('the client connection is closed');
    let last = -1;
    for (let i = list.length - 1; i >= 0 && last < 0; i--) if (list[i]!.length !== 0) last = i;
    if (last < 0) {
      written?.();
      return;
    }
    this.lastSend = performance.now();
    let ok = true;
    if (last === 0) {
      // the chunks after the last non-empty one are empty: one write
      ok = s.write(list[0]!, written);
    } else {
      s.cork();
      try {
        for (let i = 0; i <= last; i++) {
          const c = list[i]!;
          if (c.length === 0) continue;
          // a stream reports its writes in order: the last one's callback comes after the others'
          ok = i === last ? s.write(c, written) : s.write(c);
        }
      } finally {
        s.uncork();
      }
    }
    // Everything already went to the kernel (a write that completed synchronously): nothing to wait for.
    if (ok || s.writableLength === 0 || this.noWait) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(t);
        s.off('drain', onDrain);
        s.off('close', onClose);
        this.drainWaiters.delete(release);
        if (err) reject(err);
        else resolve();
      };
      const release = (): void => done();
      this.drainWaiters.add(release);
      const onDrain = (): void => done();
      const onClose = (): void => done(peerClosed('the client closed while we were writing'));
      const t = setTimeout(() => done(new SetlsError('ERR_HOST_WRITE_TIMEOUT', `the client did not read for ${this.writeTimeoutMs} ms`)), this.writeTimeoutMs);
      s.on('drain', onDrain);
      s.on('close', onClose);
    });
    this.lastSend = performance.now();
  }

  /**
   * The connection is ending: pending and later send()s stop waiting for the client to read (their
   * bytes stay queued, in order, ahead of the close_notify or alert), so a client that does not
   * read cannot hold the close for the write deadline. The socket's end deadline bounds the rest.
   */
  hurry(): void {
    this.noWait = true;
    for (const f of [...this.drainWaiters]) f();
  }

  /**
   * Graceful close (RFC 8446 §6.1): our close_notify (encrypted by the card, or on the host for an
   * exported session) unless already sent or the session cannot send any more, then FIN and a
   * drain of the client's reads with a deadline; the card is freed at once. The close_notify does
   * not wait for the client to read what is queued before it. Idempotent; never throws (errors go
   * to onRelease).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      let err: Error | undefined;
      let last: Uint8Array | undefined;
      try {
        if (!this.closeNotifySent && this.session.phase === 'connected' && !this.socket.destroyed && this.socket.writable) {
          last = await this.session.encrypt(CONTENT_TYPE_ALERT, CLOSE_NOTIFY);
          this.closeNotifySent = true;
          this.lastSend = performance.now();
        }
      } catch (e) {
        err = e as Error;
      }
      this.endSocket(last);
      await this.release(err);
    })();
    return this.closing;
  }

  /**
   * The session failed: its last records (the fatal alert the card or the host record layer
   * produced), if any, then FIN and a drain of the client's reads with a deadline, so the alert is
   * not lost to a TCP reset; the card is freed at once. Idempotent.
   */
  abort(err?: Error, lastRecords?: Uint8Array): Promise<void> {
    this.closing ??= (async () => {
      this.endSocket(lastRecords);
      await this.release(err);
    })();
    return this.closing;
  }

  private endSocket(last?: Uint8Array): void {
    this.noWait = true;
    this.reader.detach();
    endAndDrain(this.socket, last, { ms: this.lingerMs });
  }

  private async release(err?: Error): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.reader.detach();
    this.session.dispose?.();
    try {
      await this.onRelease?.(err);
    } finally {
      this.releaseDone();
    }
  }
}
