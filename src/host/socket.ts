/**
 * SeTlsSocket: a Node Duplex of plaintext over a RecordLayer, close enough to a tls.TLSSocket for
 * `http.Server.emit('connection', socket)`.
 *
 * Reads: records from the client → card DECRYPT → push; the client's close_notify ends the
 *   readable side (the card's close_notify, in OutRecords, goes out first); a fatal alert destroys
 *   the socket with ERR_TLS_ALERT_SENT / ERR_TLS_ALERT_RECEIVED (a TlsAlertError).
 * Closes: every close that is not a fatal alert sends close_notify (RFC 8446 §6.1): end(), the idle
 *   deadline, and destroy() — by node:http or application code, with or without an error — unless
 *   the error says the TLS session or the card itself failed (then nothing can be encrypted any
 *   more). Either way the TCP connection ends with FIN and a bounded drain (linger.ts).
 * Writes: small writes are coalesced into one record (≤ 16384 bytes) to save card round trips;
 *   order is kept; a writer waits once a full record is pending (backpressure). With an exported
 *   session (TLS-Tandem, records on the host) records are sealed synchronously from the pending
 *   chunks and written up to 4 at a time (HostSession.sealApplicationData).
 * tls.TLSSocket's introspection, from what the card reported (IANA names, src/registry):
 *   getProtocol(), getCipher(), getEphemeralKeyInfo(), isSessionReused(), getPeerCertificate().
 * imports bytes/, registry/ and host/.
 */
import { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { SetlsError } from '../bytes/index.js';
import { ActivityTimer } from './activity-timer.js';
import type { PeerIdentityInfo, SessionInfo } from './card-codec.js';
import { TlsAlertError } from './errors.js';
import { MAX_PLAINTEXT } from './eap-session.js';
import type { HostSession } from './host-record.js';
import type { RecordLayer } from './record-layer.js';
import { Mutex } from './mutex.js';
import { giveSlab, takeSlab } from './seal-slabs.js';
import { groupName, suiteName, versionName } from '../registry/tls-names.js';

/** Records sealed and written in one batch (one socket write) by the host record layer: 64 KiB of plaintext. */
const HOST_BATCH_RECORDS = 4;

/**
 * Errors after which the session cannot send close_notify: the TLS session failed (an alert either
 * way), or the card, its transport or the EAP/TLS-SE exchange broke. Any other error (node:http's
 * parse errors, a write deadline, application code's destroy(err)) still closes with close_notify.
 */
function sessionBroken(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  return /^ERR_(TLS|CARD|APDU|TRANSPORT|VPCD)_/.test(code) || code === 'ERR_HOST_EAP_PROTOCOL' || code === 'ERR_HOST_TLS_SE_PROTOCOL' || code === 'ERR_HOST_STATE';
}

export class SeTlsSocket extends Duplex {
  readonly encrypted = true;
  /** The negotiated ALPN protocol, or false (as tls.TLSSocket). */
  readonly alpnProtocol: string | false;
  /** The SNI host name the client sent, or false. */
  readonly servername: string | false;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;

  private pumping = false;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private flushChain: Promise<void> = Promise.resolve();
  /**
   * Card output order: each card call that produces records for the client and the write of those
   * records happen under this lock, so records reach the client in the order the card produced them
   * (a KeyUpdate the card answers with precedes the data it then encrypts under its new key; our
   * close_notify comes last), whichever of reading, writing or closing asked for them.
   */
  private readonly output = new Mutex();
  private flushScheduled = false;
  private readonly userTimer: ActivityTimer;
  private readonly idleTimer: ActivityTimer;

  constructor(readonly layer: RecordLayer) {
    super({ allowHalfOpen: false });
    const s = layer.socket;
    this.remoteAddress = s.remoteAddress;
    this.remotePort = s.remotePort;
    this.remoteFamily = s.remoteFamily;
    this.localAddress = s.localAddress;
    this.localPort = s.localPort;
    this.alpnProtocol = layer.info?.alpn ?? false;
    this.servername = layer.info?.serverName ?? false;
    const last = (): number => layer.lastActivity;
    this.userTimer = new ActivityTimer(last, () => this.emit('timeout'));
    this.idleTimer = new ActivityTimer(last, () => this.closeIdle());
  }

  /**
   * Keying material for this connection (RFC 5705 / RFC 8446 §7.5), computed inside the card; the
   * label must be allowed by the identity's policy. Like tls.TLSSocket's, but asynchronous.
   */
  exportKeyingMaterial(length: number, label: string, context?: Uint8Array): Promise<Uint8Array> {
    const s = this.layer.session;
    if (!s.exportKeyingMaterial) {
      return Promise.reject(new SetlsError('ERR_HOST_EXPORTER_UNAVAILABLE', 'this session has no card exporter (TLS-SE applet, or the keys were exported)'));
    }
    return s.exportKeyingMaterial(label, context, length);
  }

  getSessionInfo(): SessionInfo | undefined {
    return this.layer.info;
  }

  /**
   * The client certificate the card verified (mutual TLS) — subject, subjectAltNames and SHA-256
   * fingerprint — or undefined when the client did not authenticate. Authorise by this.
   */
  getPeerIdentity(): PeerIdentityInfo | undefined {
    return this.layer.info?.peer;
  }

  /** As tls.TLSSocket.authorized: true when the client presented a certificate the card verified. */
  get authorized(): boolean {
    return this.layer.info?.peer !== undefined;
  }

  /** As tls.TLSSocket.authorizationError (only set when no verified client certificate). */
  get authorizationError(): Error | undefined {
    return this.authorized ? undefined : new Error('no client certificate verified by the card');
  }

  /**
   * tls.TLSSocket.getPeerCertificate() as far as the card tells: `{}` without a verified client
   * certificate, else `{ subject, subjectaltname, fingerprint256 }` in node's shapes (subject as an
   * object of RDNs). The card checks the client's chain itself and reports only these facts, so
   * `raw`, `issuer`, validity and the public key are not available here.
   */
  getPeerCertificate(): { subject?: Record<string, string>; subjectaltname?: string; fingerprint256?: string } {
    const p = this.layer.info?.peer;
    if (!p) return {};
    const subject: Record<string, string> = {};
    for (const line of p.subject.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) subject[line.slice(0, i)] = line.slice(i + 1);
    }
    return { subject, subjectaltname: p.subjectAltNames.join(', '), fingerprint256: p.fingerprint256 };
  }

  /** As tls.TLSSocket.getProtocol(): 'TLSv1.3' or 'TLSv1.2' (null when the card reported nothing). */
  getProtocol(): string | null {
    const v = this.layer.info?.version;
    return v === undefined ? null : versionName(v);
  }

  /**
   * As tls.TLSSocket.getCipher(): `name` and `standardName` are the suite's IANA name (e.g.
   * TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256), `version` the protocol.
   */
  getCipher(): { name: string; standardName: string; version: string } | undefined {
    const i = this.layer.info;
    if (!i) return undefined;
    const name = suiteName(i.cipherSuite);
    return { name, standardName: name, version: versionName(i.version) };
  }

  /**
   * The (EC)DHE group in tls.TLSSocket.getEphemeralKeyInfo()'s shape (node fills it on clients only;
   * the card reports it on the server): `{}` for a PSK session without (EC)DHE.
   */
  getEphemeralKeyInfo(): { type: 'ECDH'; name: string; size: number } | Record<string, never> | null {
    const g = this.layer.info?.group;
    if (g === undefined) return null;
    if (g === 0) return {};
    const name = groupName(g);
    return { type: 'ECDH', name: name === 'x25519' ? 'X25519' : name === 'secp256r1' ? 'prime256v1' : name, size: name === 'x25519' ? 253 : 256 };
  }

  /** As tls.TLSSocket.isSessionReused(): true for a ticket, session-ID or external-PSK session. */
  isSessionReused(): boolean {
    const r = this.layer.info?.resumption;
    return r !== undefined && r !== 'full';
  }

  /**
   * TLS-Tandem under pressure: moves the record layer of this card session to the host. Under the
   * output lock (no DECRYPT / ENCRYPT of this session in flight, records stay in order)
   * `exportSession` runs EXPORT-SESSION and returns the host session; the RecordLayer then
   * protects records itself and `onRelease` replaces the card's release. Resolves true when moved,
   * false when the session already ended; rejects with the card's error (e.g. 6985: the identity's
   * policy forbids export — the session is then untouched and still in the card).
   */
  async moveToHost(exportSession: () => Promise<HostSession>, onRelease: (layer: RecordLayer, err?: Error) => void): Promise<boolean> {
    return this.output.run(async () => {
      if (this.destroyed || this.layer.isClosed || this.layer.mode !== 'card' || this.layer.session.phase !== 'connected') return false;
      const host = await exportSession();
      if (this.layer.isClosed) {
        host.dispose?.();
        return false;
      }
      const layer = this.layer;
      layer.migrate(host, (err) => onRelease(layer, err));
      return true;
    });
  }

  /** Where the records of this session are protected: 'card', or 'host' after a TLS-Tandem export. */
  get recordLayer(): 'card' | 'host' {
    return this.layer.mode;
  }

  address(): AddressInfo | object {
    return this.layer.socket.address();
  }

  /** As net.Socket.setTimeout: emits 'timeout' after `ms` without traffic (0 disables). */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback) {
      if (ms === 0) this.off('timeout', callback);
      else this.once('timeout', callback);
    }
    this.userTimer.set(ms);
    return this;
  }

  /**
   * The card holder's idle deadline: after `ms` without traffic the session is closed with
   * close_notify so the card can serve someone else. 0 disables.
   */
  setIdleDeadline(ms: number): void {
    if (this.idleTimer.period !== ms) this.idleTimer.set(ms);
  }

  setNoDelay(noDelay?: boolean): this {
    this.layer.socket.setNoDelay(noDelay);
    return this;
  }

  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.layer.socket.setKeepAlive(enable, initialDelay);
    return this;
  }

  ref(): this {
    this.layer.socket.ref();
    return this;
  }

  unref(): this {
    this.layer.socket.unref();
    return this;
  }

  /** Gracefully closes after pending writes: our close_notify, then FIN. */
  destroySoon(): void {
    if (this.writable) this.end();
    else this.destroy();
  }

  private closeIdle(): void {
    this.closeForCard('idle');
  }

  /**
   * Closes the session so the card can serve someone else ('idle': the idle deadline; 'cut': the
   * hold limit): close_notify after what is being written, FIN and a bounded drain. Emits `event`.
   */
  closeForCard(event: 'idle' | 'cut'): void {
    if (this.destroyed) return;
    this.emit(event);
    this.layer.hurry(); // a write blocked on a client that does not read must not hold the close
    void this.output.run(() => this.layer.close()).finally(() => {
      this.push(null);
      this.destroy();
    });
  }

  override _read(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const rec = await this.layer.recv(0);
        if (this.destroyed) return;
        if (rec === null) {
          this.push(null);
          return;
        }
        const r = await this.output.run(async () => {
          const d = await this.layer.decrypt(rec);
          if (d.failed) {
            // The alert goes out with FIN and a drain of the client's reads (not a reset).
            const sent = d.outRecords.length > 0;
            const e = new TlsAlertError(sent ? 'ERR_TLS_ALERT_SENT' : 'ERR_TLS_ALERT_RECEIVED', 'TLS connection failed', d.alert, sent);
            void this.layer.abort(e, d.outRecords);
            this.destroy(e);
          } else if (d.outRecords.length && this.layer.canSend) {
            // the card's answer (its close_notify to the client's): a client already gone gets nothing
            await this.layer.send(d.outRecords).catch(() => undefined);
          }
          return d;
        });
        if (r.failed) return;
        const more = r.plaintext.length ? this.push(Buffer.from(r.plaintext.buffer, r.plaintext.byteOffset, r.plaintext.length)) : true;
        if (r.peerClosed) {
          this.push(null);
          return;
        }
        if (!more) {
          this.pumping = false;
          return;
        }
      }
    } catch (e) {
      this.destroy(e as Error);
    }
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    if (b.length === 0) {
      cb();
      return;
    }
    this.pending.push(b);
    this.pendingBytes += b.length;
    if (this.pendingBytes >= MAX_PLAINTEXT) {
      this.flush().then(() => cb(), (e: Error) => cb(e));
    } else {
      this.scheduleFlush();
      cb();
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush().catch((e: Error) => this.destroy(e));
    });
  }

  private flush(): Promise<void> {
    const p = this.flushChain.then(() => this.doFlush());
    this.flushChain = p.catch(() => undefined);
    return p;
  }

  /** Encrypts and sends everything pending, in records of ≤ 16384 bytes. */
  private async doFlush(): Promise<void> {
    const host = this.layer.hostSession;
    if (host) return this.doFlushHost(host);
    while (this.pendingBytes > 0) {
      if (this.layer.isClosed || this.layer.session.phase !== 'connected') {
        this.pending = [];
        this.pendingBytes = 0;
        throw new SetlsError('ERR_HOST_SESSION_CLOSED', 'write after the TLS session ended');
      }
      const n = Math.min(MAX_PLAINTEXT, this.pendingBytes);
      const pt = new Uint8Array(n);
      let o = 0;
      while (o < n) {
        const head = this.pending[0]!;
        const take = Math.min(head.length, n - o);
        pt.set(head.subarray(0, take), o);
        o += take;
        if (take === head.length) this.pending.shift();
        else this.pending[0] = head.subarray(take);
      }
      this.pendingBytes -= n;
      await this.output.run(async () => this.layer.send(await this.layer.encrypt(pt)));
    }
  }

  /**
   * doFlush() for a session exported to the host: each record sealed straight from the pending
   * chunks (no plaintext copy), up to HOST_BATCH_RECORDS records written in one socket write, then
   * the socket's backpressure is honoured before the next batch (so a large write is never
   * encrypted ahead of the client by more than one batch).
   */
  private async doFlushHost(host: HostSession): Promise<void> {
    while (this.pendingBytes > 0) {
      // Sealing happens under the output lock too: a KeyUpdate answered by decrypt() switches the
      // write key, and what is sealed after it must go out after it.
      await this.output.run(() => {
        if (this.layer.isClosed || host.phase !== 'connected') {
          this.pending = [];
          this.pendingBytes = 0;
          throw new SetlsError('ERR_HOST_SESSION_CLOSED', 'write after the TLS session ended');
        }
        const out: Uint8Array[] = [];
        // the batch's records are sealed into a recycled slab where the native sealer serves the
        // suite (seal-slabs.ts); the slab goes back once the socket has written them
        const slab = takeSlab();
        for (let r = 0; r < HOST_BATCH_RECORDS && this.pendingBytes > 0; r++) {
          const n = Math.min(MAX_PLAINTEXT, this.pendingBytes);
          const pieces: Uint8Array[] = [];
          let o = 0;
          while (o < n) {
            const head = this.pending[0]!;
            const take = Math.min(head.length, n - o);
            if (take === head.length) {
              pieces.push(head);
              this.pending.shift();
            } else {
              pieces.push(head.subarray(0, take));
              this.pending[0] = head.subarray(take);
            }
            o += take;
          }
          this.pendingBytes -= n;
          host.sealApplicationData(pieces, n, out, slab);
        }
        if (slab.used === 0) {
          giveSlab(slab); // nothing sealed into it (node:crypto sealed the records)
          return this.layer.send(out);
        }
        return this.layer.send(out, () => giveSlab(slab));
      });
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.flush().then(
      () => this.output.run(() => this.layer.close()).then(() => cb()),
      (e: Error) => {
        void this.output.run(() => (sessionBroken(e) ? this.layer.abort(e) : this.layer.close()));
        cb(e);
      },
    );
  }

  /**
   * destroy(): what is pending is dropped, the record being written (if any) still goes out whole,
   * then close_notify — unless the session or the card broke (sessionBroken) — then FIN and a
   * bounded drain. Nothing waits for the client to read.
   */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.userTimer.clear();
    this.idleTimer.clear();
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.layer.isClosed) {
      this.layer.hurry();
      const layer = this.layer;
      // After the record in flight (encrypted by the card, so it must precede the close_notify).
      void this.flushChain.then(() => this.output.run(() => (err && sessionBroken(err) ? layer.abort(err) : layer.close())));
    }
    cb(err);
  }
}
