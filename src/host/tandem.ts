/**
 * TlsTandem (server mode): a TCP listener in tandem with a card that runs the TLS server. The host
 * accepts TCP clients and shuttles their records to and from the card; it holds no keys.
 *
 * Paper semantics (rendezvous / InUse / backlog): ONE session at a time per card; waiting
 * connections sit in a bounded FIFO backlog, unread (the listener pauses on connect, so TCP
 * buffers their bytes); beyond `backlog` they are refused (destroyed at once). When a session
 * ends (close, error, idle deadline) the card gets RESET-STATE and the next waiting connection
 * gets the card. Deadlines: the handshake (a silent or slow client is dropped and the card freed)
 * and idleness (close_notify after `idleTimeoutMs`, or `busyIdleTimeoutMs` when others wait).
 * A client's misbehaviour or a card error never crashes the tandem: the client is closed (with the
 * card's alert when it produced one), the card reset, the next client served.
 *
 * Events: 'listening', 'secureConnection' (SeTlsSocket), 'sessionError' (Error, {remoteAddress,
 * remotePort}), 'refused' ({remoteAddress, remotePort}), 'close'. Diagnostics: `setls:session`.
 * imports apdu/, bytes/, transport/, tls/record/framing.ts (lone bad headers) and host/.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { SetlsError } from '../bytes/index.js';
import type { CardTransport } from '../transport/index.js';
import { CardClient } from './card-client.js';
import { CardError, TlsAlertError } from './errors.js';
import { endAndDrain } from './linger.js';
import { HostSession } from './host-record.js';
import { SW } from '../apdu/index.js';
import { EapDriver, type SessionDriver } from './session-driver.js';
import type { HandshakeStep } from './eap-session.js';
import { TlsSeDriver } from './tls-se-driver.js';
import { hostError } from './errors.js';
import { RecordLayer } from './record-layer.js';
import { SeTlsSocket } from './socket.js';
import { SocketReader } from './socket-reader.js';
import { loneHeaderError } from '../tls/record/framing.js';

/** Answers of a card that lost its applet selection or PIN verification (after a reset): start() again. */
const ACCESS_LOST: ReadonlySet<number> = new Set([SW.securityNotSatisfied, SW.conditionsNotSatisfied, SW.insNotSupported, SW.claNotSupported]);

export interface TlsTandemOptions {
  readonly transport: CardTransport;
  /**
   * How to drive the card: 'eap' (default) — the setls applet, EAP-TLS in APDUs; 'tls-se' — a card
   * running draft-urien-tls-se (RECV 00 D8 / SEND 00 C0), e.g. the emulated card's TLS-SE applet.
   */
  readonly driver?: 'eap' | 'tls-se';
  /** Applet AID. Default F0 73 65 74 6C 73 01 (eap) / 01 02 03 04 05 00 (tls-se). */
  readonly aid?: Uint8Array;
  /** User PIN (4–8 digits). */
  readonly pin: string;
  /** Identity label to SET-IDENTITY at start (default: the card's current identity). */
  readonly identity?: string;
  /** Defaults for listen(). */
  readonly port?: number;
  readonly host?: string;
  /** Connections waiting for the card beyond the active one. Default 50. */
  readonly backlog?: number;
  readonly handshakeTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  readonly busyIdleTimeoutMs?: number;
  /** Extended APDUs. Default: the transport's capability. */
  readonly extendedApdu?: boolean;
  /**
   * The card's logical channel this tandem uses (default 0). A channel other than 0 must be open
   * (CardClient.openChannel()); one tandem per channel may share the transport.
   */
  readonly channel?: number;
  /** Deadline per APDU, ms. Default 30000. */
  readonly apduTimeoutMs?: number;
  /** Deadline for a client to drain our writes, ms. Default 30000. */
  readonly writeTimeoutMs?: number;
  /** Largest host EAP-TLS fragment during the handshake. Default 32768. */
  readonly maxFragment?: number;
  /**
   * TLS-Tandem: where the record layer of established sessions runs. 'card' (default): every record
   * is protected in the card (PROCESS-EAP-ENCRYPT/DECRYPT). 'host': after the handshake the host
   * calls EXPORT-SESSION, protects records itself with the exported traffic keys and frees the card
   * at once for the next client (the identity's card policy must allow export). eap driver only.
   */
  readonly recordLayer?: 'card' | 'host';
  /**
   * recordLayer 'host' when the card refuses the export (policy `41` = 00): 'fail' (default) ends
   * the session (close_notify through the card, `sessionError` ERR_HOST_EXPORT_REFUSED; the card is
   * reset and serves the next client); 'card' keeps that session's record layer in the card.
   */
  readonly onExportRefused?: 'fail' | 'card';
}

export interface PeerInfo {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

export interface SessionEvent extends PeerInfo {
  readonly event: 'queued' | 'refused' | 'handshake' | 'established' | 'failed' | 'closed' | 'idle';
  readonly error?: string;
  readonly queued?: number;
}

const sessionChannel = diagnostics_channel.channel('setls:session');

function peer(s: net.Socket): PeerInfo {
  return { remoteAddress: s.remoteAddress, remotePort: s.remotePort };
}

function publish(ev: SessionEvent): void {
  if (sessionChannel.hasSubscribers) sessionChannel.publish(ev);
}

/** A plaintext fatal alert record (sent only before the card said anything to this client). */
function plainAlert(description: number): Uint8Array {
  return Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description);
}

/**
 * The description of `records` when they are exactly one plaintext fatal alert record (type 21,
 * length 2, level 2): the TLS-SE driver's failures, which carry no alert TLV. undefined otherwise
 * (an encrypted alert says nothing readable).
 */
function plainAlertDescription(records: Uint8Array): number | undefined {
  if (records.length !== 7 || records[0] !== 0x15 || records[3] !== 0 || records[4] !== 2 || records[5] !== 2) return undefined;
  return records[6];
}

function checkMs(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`${name} must be a non-negative number of ms`);
  return x;
}

export class TlsTandem extends EventEmitter {
  readonly card: CardClient;
  /** The applet driver (EAP-TLS or TLS-SE). */
  readonly driver: SessionDriver;
  private readonly opts: TlsTandemOptions;
  private readonly backlog: number;
  private readonly handshakeTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly busyIdleTimeoutMs: number;
  private started = false;
  private closed = false;
  private busy = false;
  private idleWaiters: (() => void)[] = [];
  private current: { socket: net.Socket; secure?: SeTlsSocket } | undefined;
  private readonly waiting: net.Socket[] = [];
  private server: net.Server | undefined;
  private readonly recordLayerMode: 'card' | 'host';
  /** Exported sessions still running on the host (they no longer hold the card). */
  private readonly hostLayers = new Set<RecordLayer>();
  private readonly hostSockets = new Set<SeTlsSocket>();
  /** Set by a TlsPool: clients wait for this card elsewhere (busy idle deadline applies). */
  private othersWaiting = false;
  /** Server flights of the current handshake go here too (TlsPool: TLS 1.2 ticket key id learning). */
  onServerFlight: ((bytes: Uint8Array) => void) | undefined;

  constructor(opts: TlsTandemOptions) {
    super();
    if (!opts || typeof opts !== 'object') throw new TypeError('TlsTandem needs options');
    if (!opts.transport) throw new TypeError('TlsTandem needs a transport');
    if (typeof opts.pin !== 'string') throw new TypeError('TlsTandem needs the user PIN');
    this.opts = opts;
    this.backlog = opts.backlog ?? 50;
    if (!Number.isInteger(this.backlog) || this.backlog < 0) throw new RangeError('backlog must be a non-negative integer');
    this.handshakeTimeoutMs = checkMs('handshakeTimeoutMs', opts.handshakeTimeoutMs, 10_000);
    this.idleTimeoutMs = checkMs('idleTimeoutMs', opts.idleTimeoutMs, 30_000);
    this.busyIdleTimeoutMs = checkMs('busyIdleTimeoutMs', opts.busyIdleTimeoutMs, 1_000);
    this.card = new CardClient(opts.transport, {
      ...(opts.extendedApdu !== undefined ? { extended: opts.extendedApdu } : {}),
      ...(opts.apduTimeoutMs !== undefined ? { apduTimeoutMs: opts.apduTimeoutMs } : {}),
      ...(opts.channel !== undefined ? { channel: opts.channel } : {}),
    });
    if (opts.driver !== undefined && opts.driver !== 'eap' && opts.driver !== 'tls-se') throw new RangeError("driver must be 'eap' or 'tls-se'");
    if (opts.recordLayer !== undefined && opts.recordLayer !== 'card' && opts.recordLayer !== 'host') throw new RangeError("recordLayer must be 'card' or 'host'");
    if (opts.onExportRefused !== undefined && opts.onExportRefused !== 'fail' && opts.onExportRefused !== 'card') throw new RangeError("onExportRefused must be 'fail' or 'card'");
    this.recordLayerMode = opts.recordLayer ?? 'card';
    if (this.recordLayerMode === 'host' && opts.driver === 'tls-se') throw new RangeError("recordLayer 'host' needs the eap driver (EXPORT-SESSION is a setls applet command)");
    this.driver =
      opts.driver === 'tls-se'
        ? new TlsSeDriver(this.card, { pin: opts.pin, ...(opts.aid ? { aid: opts.aid } : {}) })
        : new EapDriver(this.card, {
            pin: opts.pin,
            ...(opts.aid ? { aid: opts.aid } : {}),
            ...(opts.identity !== undefined ? { identity: opts.identity } : {}),
            ...(opts.maxFragment !== undefined ? { session: { maxFragment: opts.maxFragment } } : {}),
          });
  }

  /** SELECT the applet, VERIFY the user PIN (a bad PIN rejects with its CardError), SET-IDENTITY if asked. */
  async start(): Promise<void> {
    if (this.closed) throw hostError('ERR_HOST_CLOSED', 'the tandem is closed');
    await this.driver.start();
    this.started = true;
  }

  /** Connections waiting for the card. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Sessions whose record layer runs on the host (exported; they do not hold the card). */
  get exportedSessions(): number {
    return this.hostLayers.size;
  }

  /** Whether a session holds the card. */
  get inUse(): boolean {
    return this.busy;
  }

  /**
   * Runs the handshake of `socket` through the card (time = now) and returns its RecordLayer.
   * Rejects ERR_HOST_IN_USE when a session holds the card; on any failure the client is closed
   * (with the card's alert when there is one) and the card freed.
   */
  async openSession(socket: net.Socket): Promise<RecordLayer> {
    if (!(socket instanceof net.Socket)) throw new TypeError('openSession needs a net.Socket');
    if (!this.started) throw hostError('ERR_HOST_NOT_STARTED', 'call start() first');
    if (this.closed) throw hostError('ERR_HOST_CLOSED', 'the tandem is closed');
    if (this.busy) throw hostError('ERR_HOST_IN_USE', 'the card is serving another session');
    this.busy = true;
    this.current = { socket };
    return this.handshake(socket);
  }

  private async handshake(socket: net.Socket): Promise<RecordLayer> {
    const who = peer(socket);
    publish({ event: 'handshake', ...who });
    socket.on('error', () => undefined); // errors are read through the reader; never crash
    const reader = new SocketReader(socket);
    let spoke = false;
    let layer: RecordLayer | undefined;
    try {
      // setls: PROCESS-EAP START wipes the card's session with the ClientHello (no RESET-STATE exchange).
      const fold = this.driver.freshSessions;
      if (!fold) await this.resetCard();
      let session = this.driver.newSession({ fresh: true });
      const deadline = performance.now() + this.handshakeTimeoutMs;
      let first = true;
      for (;;) {
        const left = this.handshakeTimeoutMs > 0 ? Math.max(1, deadline - performance.now()) : 0;
        const records = await reader.read(true, left, 'ERR_HOST_HANDSHAKE_TIMEOUT');
        if (records === null) throw hostError('ERR_HOST_PEER_CLOSED', 'the client closed the connection during the handshake');
        // A header no record may have, handed on alone by the framing (tls/record/framing.ts): before
        // the card said anything the client has no keys, so the host answers in plaintext as it always
        // did (not TLS at all, a header claiming too much); once the card spoke, the card judges it
        // under its keys (below, like any record).
        const bad = spoke || !socket.writable ? undefined : records.map(loneHeaderError).find((e) => e !== undefined);
        if (bad) {
          // The host's own plaintext alert (the card never saw these bytes): it knows what it sent.
          const alert = bad.code === 'ERR_TLS_RECORD_OVERFLOW' ? 22 : 10;
          socket.end(plainAlert(alert));
          spoke = true;
          throw new TlsAlertError(bad.code, bad.message, alert, true);
        }
        const gmt = first ? Math.floor(Date.now() / 1000) : undefined;
        let step: HandshakeStep;
        try {
          step = await session.handshake(records, gmt);
        } catch (e) {
          // The card lost its selection / PIN (reset, re-inserted): SELECT + VERIFY, then the same
          // first step again (START makes it idempotent). What resetCard() does for other drivers.
          if (!(fold && first && e instanceof CardError && ACCESS_LOST.has(e.sw))) throw e;
          await this.driver.start();
          session = this.driver.newSession({ fresh: true });
          step = await session.handshake(records, gmt);
        }
        first = false;
        if (step.toClient.length && socket.writable) {
          this.onServerFlight?.(step.toClient);
          socket.write(step.toClient);
          spoke = true;
        }
        if (step.failed) {
          if (socket.writable) socket.end();
          await session.acknowledgeFailure().catch(() => undefined);
          // The alert the card reported (TLV 2C with its 7001 answer), else one readable in a
          // plaintext alert record; never a byte of an encrypted record.
          const sent = step.alert ?? plainAlertDescription(step.toClient);
          if (step.toClient.length === 0 && sent === undefined) throw new SetlsError('ERR_TLS_HANDSHAKE_FAILED', 'the card ended the handshake without an alert for the client (the client may have sent one)');
          throw new TlsAlertError('ERR_TLS_HANDSHAKE_FAILED', 'the card rejected the handshake', sent, true);
        }
        if (step.done) {
          reader.unshift(step.remaining);
          const info = step.info ?? (await this.driver.sessionInfo());
          let exported: HostSession | undefined;
          if (this.recordLayerMode === 'host') {
            try {
              exported = new HostSession(await this.card.exportSession());
            } catch (e) {
              if (!(e instanceof CardError && e.sw === SW.conditionsNotSatisfied)) throw e;
              if (this.opts.onExportRefused !== 'card') {
                // The card still holds the session: end it politely through the card.
                try {
                  const cn = await session.encrypt(21, Uint8Array.of(1, 0));
                  if (socket.writable) socket.end(cn);
                  spoke = true;
                } catch {
                  // the refusal below is what matters
                }
                throw hostError('ERR_HOST_EXPORT_REFUSED', `the card refused EXPORT-SESSION for identity '${info?.identity ?? '?'}' (its policy does not allow session export)`, e);
              }
            }
          }
          if (exported) {
            const hostLayer: RecordLayer = new RecordLayer(socket, exported, reader, {
              ...(info ? { info } : {}),
              mode: 'host',
              onRelease: (err) => this.hostSessionEnded(hostLayer, socket, err),
              ...(this.opts.writeTimeoutMs !== undefined ? { writeTimeoutMs: this.opts.writeTimeoutMs } : {}),
              recvTimeoutMs: this.idleTimeoutMs,
            });
            layer = hostLayer;
            this.hostLayers.add(hostLayer);
            publish({ event: 'established', ...who });
            // The card wiped the session at export: it is free for the next client now.
            await this.freeCard(socket);
            return hostLayer;
          }
          layer = new RecordLayer(socket, session, reader, {
            ...(info ? { info } : {}),
            onRelease: (err) => this.release(socket, err),
            ...(this.opts.writeTimeoutMs !== undefined ? { writeTimeoutMs: this.opts.writeTimeoutMs } : {}),
            recvTimeoutMs: this.idleTimeoutMs,
          });
          publish({ event: 'established', ...who });
          return layer;
        }
      }
    } catch (e) {
      reader.detach();
      // After an alert (or close_notify) FIN and a bounded drain, so the client reads it rather
      // than a reset; without one nothing is owed to the client.
      if (spoke && socket.writableEnded) endAndDrain(socket);
      else socket.destroy();
      publish({ event: 'failed', ...who, error: (e as Error).message });
      await this.release(socket, e as Error, true);
      throw e;
    }
  }

  /** The session of `socket` ended: reset the card, serve the next waiting client. */
  private async release(socket: net.Socket, err: Error | undefined, handshakeFailed = false): Promise<void> {
    if (!this.current || this.current.socket !== socket) return;
    if (!handshakeFailed) publish({ event: 'closed', ...peer(socket), ...(err ? { error: err.message } : {}) });
    await this.freeCard(socket);
  }

  /** An exported session ended on the host (its keys are wiped by the RecordLayer); the card is not involved. */
  private hostSessionEnded(layer: RecordLayer, socket: net.Socket, err: Error | undefined): void {
    if (!this.hostLayers.delete(layer)) return;
    publish({ event: 'closed', ...peer(socket), ...(err ? { error: err.message } : {}) });
    const w = this.hostIdleWaiters;
    if (this.hostLayers.size === 0) {
      this.hostIdleWaiters = [];
      for (const f of w) f();
    }
  }

  private hostIdleWaiters: (() => void)[] = [];

  /** RESET-STATE and hand the card to the next waiting client. */
  private async freeCard(socket: net.Socket): Promise<void> {
    if (!this.current || this.current.socket !== socket) return;
    let fault: Error | undefined;
    try {
      await this.driver.resetState();
    } catch (e) {
      this.emit('sessionError', e, peer(socket));
      fault = await this.recover();
    }
    this.current = undefined;
    this.busy = false;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
    // 'cardFault': RESET-STATE failed and SELECT + VERIFY too (a TlsPool takes the card out).
    if (fault) this.emit('cardFault', fault);
    this.emit('free');
    setImmediate(() => this.next());
  }

  /** After a card error on RESET-STATE: SELECT + VERIFY again (the card may have been reset). Returns the error when that fails too. */
  private async recover(): Promise<Error | undefined> {
    try {
      await this.driver.start();
      return undefined;
    } catch (e) {
      this.emit('sessionError', e, { remoteAddress: undefined, remotePort: undefined });
      return e as Error;
    }
  }

  /** TlsPool: whether clients wait for a card elsewhere (the busy idle deadline then applies to this card's session). */
  setOthersWaiting(waiting: boolean): void {
    if (this.othersWaiting === waiting) return;
    this.othersWaiting = waiting;
    this.updateIdle();
  }

  /**
   * RESET-STATE before a session. When it fails (the card was removed and is back, or another PC/SC
   * client reset it: selection and PIN are gone), SELECT + VERIFY again and retry once, so a card
   * restart costs no client.
   */
  private async resetCard(): Promise<void> {
    try {
      await this.driver.resetState();
    } catch {
      await this.driver.start();
      await this.driver.resetState();
    }
  }

  /** Starts accepting TCP clients. `listening` is emitted (and the server's) when bound. */
  listen(port: number = this.opts.port ?? 0, host: string | undefined = this.opts.host): net.Server {
    if (!this.started) throw hostError('ERR_HOST_NOT_STARTED', 'call start() first');
    if (this.closed) throw hostError('ERR_HOST_CLOSED', 'the tandem is closed');
    if (this.server) throw hostError('ERR_HOST_STATE', 'already listening');
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError('port must be 0..65535');
    const server = net.createServer({ pauseOnConnect: true }, (s) => this.onConnection(s));
    server.on('error', (e) => this.emit('sessionError', e, { remoteAddress: undefined, remotePort: undefined }));
    server.on('listening', () => this.emit('listening', server.address()));
    server.listen({ port, ...(host !== undefined ? { host } : {}), backlog: Math.max(this.backlog + 1, 16) });
    this.server = server;
    return server;
  }

  address(): net.AddressInfo | string | null {
    return this.server?.address() ?? null;
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (!this.busy && this.waiting.length === 0) {
      this.serve(socket);
      return;
    }
    if (this.waiting.length >= this.backlog) {
      publish({ event: 'refused', ...peer(socket) });
      this.emit('refused', peer(socket));
      socket.destroy();
      return;
    }
    this.waiting.push(socket);
    publish({ event: 'queued', ...peer(socket), queued: this.waiting.length });
    this.updateIdle();
  }

  private updateIdle(): void {
    this.current?.secure?.setIdleDeadline(this.waiting.length > 0 || this.othersWaiting ? this.busyIdleTimeoutMs : this.idleTimeoutMs);
  }

  private next(): void {
    if (this.busy || this.closed) return;
    while (this.waiting.length) {
      const s = this.waiting.shift()!;
      if (s.destroyed) continue;
      this.serve(s);
      return;
    }
  }

  private serve(socket: net.Socket): void {
    void this.serveConnection(socket);
  }

  /**
   * Serves one accepted connection now (the card must be free: a TlsPool calls this once it has
   * chosen the card). Resolves with the SeTlsSocket also emitted as 'secureConnection', or undefined
   * when the handshake failed ('sessionError' emitted, client closed, card freed).
   */
  serveConnection(socket: net.Socket): Promise<SeTlsSocket | undefined> {
    return this.openSession(socket).then(
      (layer) => {
        const secure = new SeTlsSocket(layer);
        if (this.current?.socket === socket) this.current.secure = secure;
        secure.on('error', (e: Error) => this.emit('sessionError', e, peer(socket)));
        secure.on('idle', () => publish({ event: 'idle', ...peer(socket) }));
        if (layer.mode === 'host') {
          // Exported: holds no card, so the relaxed idle deadline applies whoever waits.
          this.hostSockets.add(secure);
          secure.once('close', () => this.hostSockets.delete(secure));
          secure.setIdleDeadline(this.idleTimeoutMs);
        }
        this.updateIdle();
        if (this.closed) {
          secure.destroy();
          return undefined;
        }
        this.emit('secureConnection', secure);
        return secure;
      },
      (e: Error) => {
        this.emit('sessionError', e, peer(socket));
        return undefined;
      },
    );
  }

  /** Stops listening, drops waiting clients, ends the active session and waits for the card to be free. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const server = this.server;
    const serverClosed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const s of this.waiting.splice(0)) s.destroy();
    if (this.current) {
      const idle = new Promise<void>((r) => this.idleWaiters.push(r));
      if (this.current.secure) this.current.secure.destroy();
      else this.current.socket.destroy();
      await idle;
    }
    if (this.hostLayers.size) {
      const hostIdle = new Promise<void>((r) => this.hostIdleWaiters.push(r));
      // A server shutdown is not a failure: close_notify (from the host record layer), FIN, drain.
      for (const s of this.hostSockets) s.destroy();
      for (const l of this.hostLayers) void l.close();
      await hostIdle;
    }
    await serverClosed;
    this.emit('close');
  }
}
