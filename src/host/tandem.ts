/**
 * TlsTandem (server mode): a TCP listener in tandem with a card that runs the TLS server. The host
 * accepts TCP clients and shuttles their records to and from the card; it holds no keys.
 *
 * Paper semantics (rendezvous / InUse / backlog): ONE session at a time per card (channel). The
 * tandem's own listener gives the card only to a COMPLETE ClientHello (hello-stage.ts: silent and
 * slowloris clients never hold it); complete ClientHellos wait in a bounded FIFO (ready-queue.ts),
 * their further data unread, while the expected wait fits the deadline, else they get the overload
 * answer (a plaintext internal_error alert). When a session ends (close, error, a deadline, the
 * hold limit) the card gets RESET-STATE and the next waiting connection gets the card. (A TlsPool
 * drives tandems through serveConnection() with its own stages.) Deadlines: the handshake
 * (`handshakeTimeoutMs`, shortened to `busyHandshakeTimeoutMs` when others wait), idleness
 * (close_notify after `idleTimeoutMs`, or `busyIdleTimeoutMs` when others wait), and the HOLD LIMIT:
 * while others wait, a session that has held the card `maxHoldMs` — card time, however busy it is —
 * is cut: exported to the host where the identity's policy allows (TLS-Tandem: the host takes the
 * record layer, the card is free), else closed with close_notify.
 * A client's misbehaviour or a card error never crashes the tandem: the client is closed (with the
 * card's alert when it produced one), the card reset, the next client served.
 *
 * Events: 'listening', 'secureConnection' (SeTlsSocket), 'sessionError' (Error, {remoteAddress,
 * remotePort}), 'refused' ({remoteAddress, remotePort}: the overload answer), 'cut' ('exported' |
 * 'closed'), 'close'. Diagnostics: `setls:session`.
 * imports apdu/, bytes/, transport/, tls/record/framing.ts (lone bad headers) and host/.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { SetlsError } from '../bytes/index.js';
import type { CardTransport } from '../transport/index.js';
import { CardClient } from './card-client.js';
import { CardError, isLockedRefusal, TlsAlertError } from './errors.js';
import { endAndDrain } from './linger.js';
import { HostSession } from './host-record.js';
import { SW } from '../apdu/index.js';
import { LOCKED_IDENTITY_ALERT } from '../protocol/index.js';
import { EapDriver, type SeSession, type SessionDriver } from './session-driver.js';
import type { HandshakeStep } from './eap-session.js';
import { TlsSeDriver } from './tls-se-driver.js';
import { hostError, isPeerClosed, peerClosed } from './errors.js';
import { RecordLayer } from './record-layer.js';
import { SeTlsSocket } from './socket.js';
import { SocketReader } from './socket-reader.js';
import { loneHeaderError } from '../tls/record/framing.js';
import { HelloStage, plaintextAlert, publishSession, type HelloStageOptions } from './hello-stage.js';
import { PeerTable } from './peer-table.js';
import { ReadyQueue, type ReadyQueueOptions } from './ready-queue.js';
import { ServiceEstimate } from './service-estimate.js';

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
  /** Complete ClientHellos waiting for the card beyond the active session (the tandem's own listener). Default 1024. */
  readonly backlog?: number;
  /** Handshake deadline, ms (default 10000); `busyHandshakeTimeoutMs` (default 3000) from when others wait. */
  readonly handshakeTimeoutMs?: number;
  readonly busyHandshakeTimeoutMs?: number;
  /** Idle deadline of a session holding the card, ms (default 30000); `busyIdleTimeoutMs` (default 1000) when others wait. */
  readonly idleTimeoutMs?: number;
  readonly busyIdleTimeoutMs?: number;
  /**
   * Hold limit, ms (default 2000; 0 = none): while others wait, a session that has held the card
   * this long (card time, from the moment it got the card, however active it is) is exported to
   * the host (recordLayer 'card' sessions whose identity policy allows EXPORT-SESSION) or closed
   * with close_notify.
   */
  readonly maxHoldMs?: number;
  /** The tandem's own listener: hello stage and queue bounds (hello-stage.ts, ready-queue.ts). */
  readonly listener?: HelloStageOptions & Omit<ReadyQueueOptions, 'maxReady'>;
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
  /**
   * queued (accepted, waiting for its ClientHello), handshake, established, failed, peer_closed (the
   * client left during the handshake: a normal end, no 'sessionError'), closed, idle
   * (idle deadline), and under pressure: overloaded (the overload answer), evicted / peer_limit
   * (hello stage bounds), cut / exported (hold limit: closed with close_notify / record layer moved
   * to the host), stalled (a DTLS handshake without progress), refused (a TlsPool whose every card
   * is locked by its security domain answers access_denied at once).
   */
  readonly event: 'queued' | 'refused' | 'handshake' | 'established' | 'failed' | 'peer_closed' | 'closed' | 'idle' | 'overloaded' | 'evicted' | 'peer_limit' | 'cut' | 'exported' | 'stalled';
  readonly error?: string;
  readonly queued?: number;
}

function peer(s: net.Socket): PeerInfo {
  return { remoteAddress: s.remoteAddress, remotePort: s.remotePort };
}

const publish = (ev: SessionEvent): void => publishSession(ev);

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
  private readonly busyHandshakeTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly busyIdleTimeoutMs: number;
  private readonly maxHoldMs: number;
  private started = false;
  private closed = false;
  private busy = false;
  private idleWaiters: (() => void)[] = [];
  /** The session holding the card: its client socket, its SeTlsSocket, its card session (whether the card wiped it). */
  private current: { socket: net.Socket; secure?: SeTlsSocket; session?: SeSession } | undefined;
  /** performance.now() when the current session got the card. */
  private heldSince = 0;
  private holdTimer: NodeJS.Timeout | undefined;
  /** The handshake in progress: its deadline (shortened when others wait) and reader. */
  private hs: { deadline: number; reader: SocketReader; timer?: NodeJS.Timeout } | undefined;
  /** The tandem's own listener: hello stage and queue (created by listen()). */
  private stage: HelloStage | undefined;
  private queue: ReadyQueue | undefined;
  /** Source IPs of the own listener's connections; recent hold times. */
  readonly peers = new PeerTable();
  readonly estimate = new ServiceEstimate();
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
    this.backlog = opts.backlog ?? 1024;
    if (!Number.isInteger(this.backlog) || this.backlog < 0) throw new RangeError('backlog must be a non-negative integer');
    this.handshakeTimeoutMs = checkMs('handshakeTimeoutMs', opts.handshakeTimeoutMs, 10_000);
    this.busyHandshakeTimeoutMs = checkMs('busyHandshakeTimeoutMs', opts.busyHandshakeTimeoutMs, 3_000);
    this.idleTimeoutMs = checkMs('idleTimeoutMs', opts.idleTimeoutMs, 30_000);
    this.busyIdleTimeoutMs = checkMs('busyIdleTimeoutMs', opts.busyIdleTimeoutMs, 1_000);
    this.maxHoldMs = checkMs('maxHoldMs', opts.maxHoldMs, 2_000);
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

  /** Connections waiting for the card (own listener): still sending the ClientHello, or queued. */
  get queued(): number {
    return (this.stage?.size ?? 0) + (this.queue?.length ?? 0);
  }

  /** Own listener: complete ClientHellos waiting for the card. */
  get readyCount(): number {
    return this.queue?.length ?? 0;
  }

  /** Whether someone waits for the card (own queue, or elsewhere as a TlsPool says). */
  private get pressure(): boolean {
    return (this.queue?.length ?? 0) > 0 || this.othersWaiting;
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
    this.heldSince = performance.now();
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
      if (this.current?.socket === socket) this.current.session = session;
      const hs = { deadline: this.handshakeTimeoutMs > 0 ? performance.now() + this.handshakeTimeoutMs : Infinity, reader };
      this.hs = hs;
      this.updateIdle(); // others may already wait: the shorter deadline applies at once
      let first = true;
      for (;;) {
        const left = Number.isFinite(hs.deadline) ? Math.max(1, hs.deadline - performance.now()) : 0;
        const records = await reader.read(true, left, 'ERR_HOST_HANDSHAKE_TIMEOUT');
        if (records === null) throw peerClosed('the client closed the connection during the handshake');
        // A header no record may have, handed on alone by the framing (tls/record/framing.ts): before
        // the card said anything the client has no keys, so the host answers in plaintext as it always
        // did (not TLS at all, a header claiming too much); once the card spoke, the card judges it
        // under its keys (below, like any record).
        const bad = spoke || !socket.writable ? undefined : records.map(loneHeaderError).find((e) => e !== undefined);
        if (bad) {
          // The host's own plaintext alert (the card never saw these bytes): it knows what it sent.
          const alert = bad.code === 'ERR_TLS_RECORD_OVERFLOW' ? 22 : 10;
          socket.end(plaintextAlert(alert));
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
          if (this.current?.socket === socket) this.current.session = session;
          step = await session.handshake(records, gmt);
        }
        first = false;
        if (step.toClient.length && socket.writable) {
          this.onServerFlight?.(step.toClient);
          // The last flight while more of the client's records are in hand (a close_notify or a
          // request sent with its Finished): corked until this turn's microtasks have run, so what
          // the card answers to them (in-process: within the turn) leaves in the same write.
          if (step.done && step.remaining.length > 0) {
            socket.cork();
            setImmediate(() => socket.uncork());
          }
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
          this.endHandshakeDeadline();
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
              mode: 'host',
              ...(info ? { info } : {}),
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
          // properties first, conditional spreads after: a spread first then properties is a V8 slow path
          layer = new RecordLayer(socket, session, reader, {
            onRelease: (err) => this.release(socket, err),
            recvTimeoutMs: this.idleTimeoutMs,
            ...(info ? { info } : {}),
            ...(this.opts.writeTimeoutMs !== undefined ? { writeTimeoutMs: this.opts.writeTimeoutMs } : {}),
          });
          publish({ event: 'established', ...who });
          return layer;
        }
      }
    } catch (e) {
      this.endHandshakeDeadline();
      reader.detach();
      // After an alert (or close_notify) FIN and a bounded drain, so the client reads it rather
      // than a reset; without one nothing is owed to the client — except when the card refused
      // SELECT as locked by its security domain before it spoke: the client gets access_denied, the
      // alert the card gives a handshake of a locked identity, not a reset.
      if (spoke && socket.writableEnded) endAndDrain(socket);
      else if (!spoke && isLockedRefusal(e) && socket.writable) endAndDrain(socket, plaintextAlert(LOCKED_IDENTITY_ALERT));
      else socket.destroy();
      // The client leaving mid-handshake is a normal end (counted, not reported as an error).
      publish({ event: isPeerClosed(e) ? 'peer_closed' : 'failed', ...who, error: (e as Error).message });
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
    this.clearHold();
    const now = performance.now();
    this.estimate.released(now, now - this.heldSince, (this.queue?.length ?? 0) > 0);
    let fault: Error | undefined;
    try {
      // The card wiped the session with its last answer (END on the DECRYPT of the client's
      // close_notify): nothing to reset. Otherwise RESET-STATE now, so no secret outlives the session.
      if (this.current.session?.cardWiped !== true) await this.driver.resetState();
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

  /** The handshake is over (done or failed): its deadline no longer applies. */
  private endHandshakeDeadline(): void {
    const hs = this.hs;
    if (!hs) return;
    if (hs.timer) clearTimeout(hs.timer);
    this.hs = undefined;
  }

  private clearHold(): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
  }

  /**
   * The hold limit fired (others wait and the current session has held the card `maxHoldMs`): the
   * session's record layer moves to the host when the card lets it export the session (identity
   * policy), else the session is closed with close_notify. Either way the card is freed.
   */
  private async cut(): Promise<void> {
    this.holdTimer = undefined;
    const cur = this.current;
    const secure = cur?.secure;
    if (!cur || !secure || secure.destroyed || secure.recordLayer !== 'card' || !this.pressure || this.closed) return;
    const socket = cur.socket;
    if (this.driver instanceof EapDriver) {
      try {
        const moved = await secure.moveToHost(
          async () => new HostSession(await this.card.exportSession()),
          (layer, err) => this.hostSessionEnded(layer, socket, err),
        );
        if (moved) {
          this.hostLayers.add(secure.layer);
          this.hostSockets.add(secure);
          secure.once('close', () => this.hostSockets.delete(secure));
          secure.setIdleDeadline(this.idleTimeoutMs);
          publish({ event: 'exported', ...peer(socket) });
          this.emit('cut', 'exported');
          await this.freeCard(socket);
          return;
        }
        return; // the session ended meanwhile: its own release frees the card
      } catch (e) {
        if (!(e instanceof CardError)) {
          // the transport failed: nothing more can be encrypted
          publish({ event: 'cut', ...peer(socket), error: (e as Error).message });
          this.emit('cut', 'closed');
          secure.destroy(e as Error);
          return;
        }
        // the card answered (6985: the identity's policy does not allow export; 6D00: no EXPORT-SESSION): close it
      }
    }
    if (secure.destroyed) return;
    publish({ event: 'cut', ...peer(socket) });
    this.emit('cut', 'closed');
    secure.closeForCard('cut');
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
    const lo = this.opts.listener ?? {};
    const { maxReadyBytes, queueTimeoutMs, ...stageOpts } = lo;
    const stage = new HelloStage({ helloTimeoutMs: this.handshakeTimeoutMs, ...stageOpts }, this.peers, {
      hello: (s, h) => {
        if (this.closed) {
          s.destroy();
          return;
        }
        if (!this.queue!.offer(s, h, !this.busy)) return;
        this.updateIdle();
        this.next();
      },
      dropped: (s, e) => {
        if (!isPeerClosed(e)) this.emit('sessionError', e, peer(s));
      },
    });
    this.queue = new ReadyQueue(
      { maxReady: this.backlog, ...(maxReadyBytes !== undefined ? { maxReadyBytes } : {}), queueTimeoutMs: queueTimeoutMs ?? this.handshakeTimeoutMs },
      this.peers,
      this.estimate,
      {
        overloaded: (s) => {
          this.emit('refused', peer(s));
          this.updateIdle();
        },
        gone: () => this.updateIdle(),
      },
    );
    this.stage = stage;
    const server = net.createServer({ pauseOnConnect: true }, (s) => this.onConnection(s));
    server.on('error', (e) => this.emit('sessionError', e, { remoteAddress: undefined, remotePort: undefined }));
    server.on('listening', () => this.emit('listening', server.address()));
    server.listen({ port, ...(host !== undefined ? { host } : {}), backlog: Math.max(511, Math.min(stage.maxPending, 4096)) });
    this.server = server;
    return server;
  }

  address(): net.AddressInfo | string | null {
    return this.server?.address() ?? null;
  }

  /** A connection of the own listener (or of another listener feeding it: paused, as `pauseOnConnect` leaves it). */
  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.closed || !this.stage) {
      socket.destroy();
      return;
    }
    this.stage.admit(socket);
  }

  /** Applies the deadlines of the moment: shorter idle and handshake deadlines and the hold limit while others wait. */
  private updateIdle(): void {
    const pressure = this.pressure;
    const secure = this.current?.secure;
    if (secure && secure.recordLayer === 'card') secure.setIdleDeadline(pressure ? this.busyIdleTimeoutMs : this.idleTimeoutMs);
    const hs = this.hs;
    if (pressure && hs) {
      const d = performance.now() + this.busyHandshakeTimeoutMs;
      if (d < hs.deadline) {
        hs.deadline = d;
        if (hs.timer) clearTimeout(hs.timer);
        // a read already waiting has the old deadline: interrupt it when the new one passes
        hs.timer = setTimeout(() => {
          if (this.hs === hs) hs.reader.interrupt(hostError('ERR_HOST_HANDSHAKE_TIMEOUT', `handshake deadline: ${this.busyHandshakeTimeoutMs} ms once others waited`));
        }, Math.max(1, d - performance.now()));
        hs.timer.unref();
      }
    }
    if (pressure && secure && secure.recordLayer === 'card' && this.maxHoldMs > 0) {
      if (!this.holdTimer) {
        this.holdTimer = setTimeout(() => void this.cut(), Math.max(0, this.heldSince + this.maxHoldMs - performance.now()));
        this.holdTimer.unref();
      }
    } else this.clearHold();
  }

  private next(): void {
    if (this.busy || this.closed || !this.queue) return;
    while (this.queue.length) {
      const e = this.queue.entries[0]!;
      this.queue.take(e);
      if (e.socket.destroyed) continue;
      this.serve(e.socket);
      break;
    }
    this.updateIdle();
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
        if (!isPeerClosed(e)) this.emit('sessionError', e, peer(socket));
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
    this.stage?.close();
    this.queue?.close();
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
