/**
 * TlsPool: the card scheduler. Several cards (or one) behind one TCP listener. Each slot is (card,
 * logical channel) — channels 0..channelsPerCard-1 of every card (the pool opens 1..n-1 with MANAGE
 * CHANNEL at start and again when a recovering card lost them) — served by a TlsTandem on that
 * channel (the session code is the tandem's: handshake, record layer, TLS-Tandem export, deadlines;
 * the pool only schedules). The tandems of one card share its transport (which serialises APDUs);
 * their sessions interleave APDU by APDU, each in its own channel's state on the card. The same
 * slots are lent to DTLS associations (acquireChannel: host/dtls via CardDtlsBackends), so TLS and
 * DTLS share the card(s) through this one scheduler.
 *
 * Scheduling (docs/architecture.md, "Sessions under pressure"):
 *  - HELLO stage (hello-stage.ts): a connection holds no card until its COMPLETE ClientHello is in;
 *    bounded by count and bytes with stalest-first eviction, per-IP waiting limit, a deadline from
 *    connect that shrinks when the stage is crowded.
 *  - READY queue (ready-queue.ts): complete ClientHellos wait for a channel while the expected wait
 *    (recent channel hold times, service-estimate.ts) fits in the queue deadline; otherwise — and at
 *    the deadline — they get the overload answer (plaintext internal_error alert), never a silent
 *    refusal.
 *  - Dispatch: a free healthy slot goes to the waiting peer (source IP) that used the card least
 *    recently (usage classes, peer-usage.ts), round-robin between the TLS queue and the DTLS queue
 *    within a class, FIFO within each; a peer holding `maxActivePerPeer` channels waits while another
 *    peer's connection can be served (work-conserving: channels never idle while someone waits). A
 *    TLS resumption's ticket key id (clear in the ticket) is routed to the card known to hold that
 *    key (learned: a TLS 1.2 NewSessionTicket is seen in clear in the card's flight; a resumed TLS
 *    1.3 session pins the key id to its card; a key id that did not resume on a card is excluded
 *    there); while that card is busy the resumption waits for it at most `affinityWaitMs`.
 *  - Pressure: while anything waits for a channel every tandem is told (setOthersWaiting): the idle
 *    and handshake deadlines shrink and a session holding its channel longer than `maxHoldMs` is cut
 *    (exported to the host where the identity's policy allows, else closed with close_notify); DTLS
 *    associations read the same signal (`othersWaiting`).
 *  - Health: a card whose RESET-STATE and SELECT/VERIFY fail after a session (error SW, timeout,
 *    removal) is taken out ('down'); the pool retries SELECT/VERIFY with exponential backoff and puts
 *    it back after a success. A card that refuses SELECT as locked by its security domain (6283) is
 *    down on every channel (`locked`); while no channel is up, each client that arrives has the
 *    locked cards checked again at once (one check at a time): an unlocked card serves that client,
 *    and while every card is locked the clients waiting are answered access_denied at once (as the
 *    card answers a handshake of a locked identity) instead of at their queue deadline. A pool whose
 *    every card is locked at start starts that way (the device's agent can still have it unlocked).
 *
 * Events: as TlsTandem ('listening', 'secureConnection', 'sessionError', 'refused', 'close') plus
 * 'health' ({ slot, health }), 'assigned' ({ slot, kind, ... }), 'cut' ({ slot, how }).
 * imports host/ and transport/.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { SetlsError } from '../bytes/index.js';
import type { CardTransport } from '../transport/index.js';
import type { CardClient } from './card-client.js';
import { LOCKED_IDENTITY_ALERT } from '../protocol/index.js';
import { CardError, hostError, isLockedRefusal } from './errors.js';
import { HelloStage, publishSession, type CompleteHello, type HelloStageOptions } from './hello-stage.js';
import { PeerTable, peerKey } from './peer-table.js';
import { PeerUsage } from './peer-usage.js';
import { ticketKeyIdInFlight } from './pool-hello.js';
import { ReadyQueue, type ReadyEntry } from './ready-queue.js';
import { ServiceEstimate } from './service-estimate.js';
import type { SeTlsSocket } from './socket.js';
import { TlsTandem, type PeerInfo, type TlsTandemOptions } from './tandem.js';

export type SlotHealth = 'up' | 'down';

export interface TlsPoolOptions extends Omit<TlsTandemOptions, 'transport' | 'pin' | 'channel'>, HelloStageOptions {
  /** One transport per card. */
  readonly transports: readonly CardTransport[];
  /** The user PIN of every card, or `pins` (one per card). */
  readonly pin?: string;
  readonly pins?: readonly string[];
  /** Names for the cards (metrics, logs). Default card0, card1… */
  readonly names?: readonly string[];
  /** How long a resumption waits for the busy card that holds its ticket key, ms. Default 250. */
  readonly affinityWaitMs?: number;
  /** First retry of a failed card, ms (doubles up to `maxRecoveryBackoffMs`). Default 500. */
  readonly recoveryBackoffMs?: number;
  readonly maxRecoveryBackoffMs?: number;
  /**
   * Logical channels used on each card (1–20; default 1): slots per card. The card must allow that
   * many (the emulated card: `channels`, default 4; `probeLogicalChannels` finds out).
   */
  readonly channelsPerCard?: number;
  /** Bytes of queued ClientHellos at most (default 16 MiB). */
  readonly maxReadyBytes?: number;
  /** Deadline from accept to getting a channel, ms (default: handshakeTimeoutMs). */
  readonly queueTimeoutMs?: number;
  /**
   * Channels one source IP may hold while another peer's connection waits (default: half the slots,
   * at least 1). Work-conserving: a free channel is never left idle while anyone waits.
   */
  readonly maxActivePerPeer?: number;
  /** DTLS associations waiting for a channel at most (default 64). */
  readonly maxDtlsWaiting?: number;
}

export interface PoolSlot {
  readonly index: number;
  readonly name: string;
  /** Which card (index into `transports`). */
  readonly card: number;
  /** Logical channel on the card. */
  readonly channel: number;
  readonly tandem: TlsTandem;
  health: SlotHealth;
  /** A session (TLS handshake or card record layer, or a DTLS association) holds this slot. */
  busy: boolean;
  /** What holds it. */
  holder: 'tls' | 'dtls' | undefined;
  /** The peer (IP) that holds it. */
  peer: string | undefined;
  /** A DTLS holder still handshaking can be asked to give the channel back (fair share): true when it will. */
  preempt: (() => boolean) | undefined;
  /** Failed recovery attempts in a row. */
  failures: number;
  /** Down because its card refused SELECT as locked by its security domain (SW 6283). */
  locked: boolean;
  /** A SELECT + VERIFY of the slot is running (recovery, or the check of a locked card). */
  starting: boolean;
  /** Ticket key ids routed here that did not resume (this card cannot open them). */
  readonly notHere: Set<string>;
  /** Sessions (TLS and DTLS), ms of card time used (busy). */
  sessions: number;
  busyMs: number;
  busySince: number;
}

/** A channel lent to a DTLS association: its CardClient (on the slot's channel, applet selected, PIN verified). */
export interface ChannelLease {
  readonly card: CardClient;
  readonly slot: number;
  /** Gives the channel back (idempotent). */
  release(): void;
  /**
   * How the scheduler may ask for the channel back while the association still handshakes: when its
   * peer holds more than its share of channels and another peer waits. `ask` returns true when the
   * association gives up (then release() follows).
   */
  preemptible(ask: () => boolean): void;
}

interface DtlsWaiter {
  readonly ip: string;
  readonly since: number;
  readonly resolve: (lease: ChannelLease | undefined) => void;
  timer: NodeJS.Timeout | undefined;
}

export interface PoolStats {
  /** Overload answers (TLS alert) and DTLS ClientHellos dropped because the DTLS queue was full or its wait expired. */
  readonly overloaded: number;
  readonly dtlsOverloaded: number;
  /** Hello stage: evicted (full), per-peer limit, deadline, not a ClientHello. */
  readonly evicted: number;
  readonly peerLimit: number;
  readonly helloTimedOut: number;
  readonly notHello: number;
  /** Sessions cut by the hold limit: exported to the host / closed with close_notify. */
  readonly cutExported: number;
  readonly cutClosed: number;
  /** Clients (TLS and DTLS) refused at once because every card was locked by its security domain. */
  readonly lockedRefusals: number;
}

function peer(s: net.Socket): PeerInfo {
  return { remoteAddress: s.remoteAddress, remotePort: s.remotePort };
}

export class TlsPool extends EventEmitter {
  readonly slots: readonly PoolSlot[];
  /** Logical channels (slots) per card. */
  readonly channelsPerCard: number;
  /** Source IP → pending / ready / active counts. */
  readonly peers = new PeerTable();
  /** Recent channel hold times (the drain estimate). */
  readonly estimate = new ServiceEstimate();
  /** Source IP → card time used recently: the order among waiting peers (peer-usage.ts). */
  readonly usage = new PeerUsage();
  private readonly cardCount: number;
  private readonly opts: TlsPoolOptions;
  private readonly affinityWaitMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxActivePerPeer: number;
  private readonly maxDtlsWaiting: number;
  private readonly maxHoldMs: number;
  private readonly stage: HelloStage;
  private readonly queue: ReadyQueue;
  private readonly dtlsWaiters: DtlsWaiter[] = [];
  private lastPick: 'tls' | 'dtls' = 'dtls';
  private dtlsOverloaded = 0;
  private cutExported = 0;
  private cutClosed = 0;
  private waitingNow = false;
  /** ticket key id (hex) → the slots that can open it (several when cards share a ticket key, e.g. --pool clones). */
  readonly keyHome = new Map<string, Set<number>>();
  private server: net.Server | undefined;
  private started = false;
  private closed = false;
  private affinityTimer: NodeJS.Timeout | undefined;
  private readonly recoveryTimers = new Set<NodeJS.Timeout>();

  constructor(opts: TlsPoolOptions) {
    super();
    if (!opts || !Array.isArray(opts.transports) || opts.transports.length === 0) throw new TypeError('TlsPool needs at least one transport');
    this.opts = opts;
    const handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    this.affinityWaitMs = opts.affinityWaitMs ?? 250;
    this.backoffMs = opts.recoveryBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxRecoveryBackoffMs ?? 30_000;
    this.maxHoldMs = opts.maxHoldMs ?? 2_000;
    const {
      transports, names, pins, pin, channelsPerCard, backlog, maxPending, maxPendingBytes, maxPerPeer, crowdedHelloTimeoutMs,
      maxReadyBytes, queueTimeoutMs, maxActivePerPeer, maxDtlsWaiting, affinityWaitMs: _a, recoveryBackoffMs: _r, maxRecoveryBackoffMs: _m, ...rest
    } = opts;
    const perCard = channelsPerCard ?? 1;
    if (!Number.isInteger(perCard) || perCard < 1 || perCard > 20) throw new RangeError('channelsPerCard must be an integer 1..20');
    this.channelsPerCard = perCard;
    this.cardCount = transports.length;
    const pairs = transports.flatMap((transport, card) => Array.from({ length: perCard }, (_, channel) => ({ transport, card, channel })));
    this.maxActivePerPeer = maxActivePerPeer ?? Math.max(1, Math.ceil(pairs.length / 2));
    if (!Number.isInteger(this.maxActivePerPeer) || this.maxActivePerPeer < 1) throw new RangeError('maxActivePerPeer must be a positive integer');
    this.maxDtlsWaiting = maxDtlsWaiting ?? 64;
    this.stage = new HelloStage(
      {
        helloTimeoutMs: handshakeTimeoutMs,
        ...(maxPending !== undefined ? { maxPending } : {}),
        ...(maxPendingBytes !== undefined ? { maxPendingBytes } : {}),
        ...(maxPerPeer !== undefined ? { maxPerPeer } : {}),
        ...(crowdedHelloTimeoutMs !== undefined ? { crowdedHelloTimeoutMs } : {}),
      },
      this.peers,
      { hello: (s, h) => this.onHello(s, h), dropped: (s, e) => this.onDropped(s, e) },
    );
    this.queue = new ReadyQueue(
      {
        maxReady: backlog ?? 1024,
        ...(maxReadyBytes !== undefined ? { maxReadyBytes } : {}),
        queueTimeoutMs: queueTimeoutMs ?? handshakeTimeoutMs,
        aheadOf: (ip, queued) => this.aheadOf(ip, queued),
      },
      this.peers,
      this.estimate,
      {
        overloaded: (s, e) => this.onOverloaded(s, e),
        refused: (s, e) => this.onOverloaded(s, e),
        gone: () => this.updateWaiting(),
      },
    );
    this.slots = pairs.map(({ transport, card, channel }, index) => {
      const cardPin = pins?.[card] ?? pin;
      if (typeof cardPin !== 'string') throw new TypeError(`TlsPool needs the user PIN of card ${card}`);
      const tandem = new TlsTandem({ ...rest, pin: cardPin, transport, backlog: 0, channel });
      const cardName = names?.[card] ?? `card${card}`;
      const slot: PoolSlot = {
        index,
        name: perCard > 1 ? `${cardName}/ch${channel}` : cardName,
        card,
        channel,
        tandem,
        health: 'up',
        busy: false,
        holder: undefined,
        peer: undefined,
        preempt: undefined,
        failures: 0,
        locked: false,
        starting: false,
        notHere: new Set(),
        sessions: 0,
        busyMs: 0,
        busySince: 0,
      };
      tandem.on('secureConnection', (s: SeTlsSocket) => this.emit('secureConnection', s));
      tandem.on('sessionError', (e: Error, p: PeerInfo) => this.emit('sessionError', e, p, slot));
      tandem.on('free', () => this.slotFree(slot));
      tandem.on('cardFault', (e: Error) => this.cardFault(slot, e));
      tandem.on('cut', (how: 'exported' | 'closed') => {
        if (how === 'exported') this.cutExported++;
        else this.cutClosed++;
        this.emit('cut', { slot: slot.index, how });
      });
      tandem.onServerFlight = (bytes) => {
        const id = ticketKeyIdInFlight(bytes);
        if (id) this.learn(id, slot);
      };
      return slot;
    });
  }

  /** SELECT + VERIFY every card. A card that fails starts 'down' (retried); all failing rejects. */
  async start(): Promise<void> {
    if (this.closed) throw hostError('ERR_HOST_CLOSED', 'the pool is closed');
    // Per card: channel 0 first (SELECT + VERIFY), then the other channels (opened as needed).
    const byCard = Array.from({ length: this.cardCount }, (_, c) => this.slots.filter((s) => s.card === c));
    const perCard = await Promise.all(
      byCard.map(async (slots) => {
        const out: PromiseSettledResult<void>[] = [];
        for (const s of slots) out.push(await this.startSlot(s).then(
          () => ({ status: 'fulfilled', value: undefined }) as const,
          (reason: unknown) => ({ status: 'rejected', reason }) as const,
        ));
        return out;
      }),
    );
    const results = perCard.flat();
    const failed = results.filter((r) => r.status === 'rejected');
    // every card failing is an error, unless they are all locked: the pool then refuses clients at
    // once and serves again when a card is unlocked (the unlock comes through the device's agent)
    if (failed.length === results.length && !failed.every((r) => isLockedRefusal((r as PromiseRejectedResult).reason))) throw (failed[0] as PromiseRejectedResult).reason;
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.cardFault(this.slots[i]!, r.reason as Error);
    });
    this.started = true;
  }

  /**
   * SELECT + VERIFY on the slot's channel; a channel other than 0 that the card reports not open
   * (6881: never opened, or closed by a card reset) is opened with MANAGE CHANNEL on channel 0 first.
   */
  private async startSlot(slot: PoolSlot): Promise<void> {
    slot.starting = true;
    try {
      await slot.tandem.start();
    } catch (e) {
      if (slot.channel === 0 || !(e instanceof CardError) || e.sw !== 0x6881) throw e;
      const basic = this.slots.find((s) => s.card === slot.card && s.channel === 0)!;
      await basic.tandem.card.openChannel(slot.channel);
      await slot.tandem.start();
    } finally {
      slot.starting = false;
    }
  }

  /** `slot` answered SELECT + VERIFY: back in service. */
  private slotUp(slot: PoolSlot): void {
    slot.failures = 0;
    slot.locked = false;
    this.setHealth(slot, 'up');
  }

  /** The slots of the card that `slot` is on (its channels). */
  private sameCard(slot: PoolSlot): PoolSlot[] {
    return this.slots.filter((s) => s.card === slot.card);
  }

  /** Connections waiting: still sending their ClientHello, queued for a channel, DTLS associations waiting. */
  get queued(): number {
    return this.stage.size + this.queue.length + this.dtlsWaiters.length;
  }

  /** Connections with a complete ClientHello waiting for a card. */
  get readyCount(): number {
    return this.queue.length;
  }

  /** Connections still sending their ClientHello (hold no card). */
  get pendingCount(): number {
    return this.stage.size;
  }

  /** DTLS associations (after the cookie and a complete ClientHello) waiting for a channel. */
  get dtlsWaiting(): number {
    return this.dtlsWaiters.length;
  }

  /** Whether anything waits for a channel (TLS or DTLS): the deadlines shrink and the hold limit applies. */
  get othersWaiting(): boolean {
    return this.queue.length > 0 || this.dtlsWaiters.length > 0;
  }

  get inUse(): number {
    return this.slots.filter((s) => s.busy).length;
  }

  get exportedSessions(): number {
    return this.slots.reduce((n, s) => n + s.tandem.exportedSessions, 0);
  }

  /** The hold limit (ms) the sessions of this pool get while others wait. */
  get holdLimitMs(): number {
    return this.maxHoldMs;
  }

  get stats(): PoolStats {
    const st = this.stage.stats;
    return {
      overloaded: this.queue.overloaded,
      dtlsOverloaded: this.dtlsOverloaded,
      evicted: st.evicted,
      peerLimit: st.peerLimit,
      helloTimedOut: st.timedOut,
      notHello: st.notHello,
      cutExported: this.cutExported,
      cutClosed: this.cutClosed,
      lockedRefusals: this.lockedRefusals,
    };
  }

  listen(port: number = this.opts.port ?? 0, host: string | undefined = this.opts.host): net.Server {
    if (!this.started) throw hostError('ERR_HOST_NOT_STARTED', 'call start() first');
    if (this.closed) throw hostError('ERR_HOST_CLOSED', 'the pool is closed');
    if (this.server) throw hostError('ERR_HOST_STATE', 'already listening');
    const server = net.createServer({ pauseOnConnect: true }, (s) => this.acceptConnection(s));
    server.on('error', (e) => this.emit('sessionError', e, { remoteAddress: undefined, remotePort: undefined }));
    server.on('listening', () => this.emit('listening', server.address()));
    // The kernel's accept queue only has to cover bursts between two turns of the event loop.
    server.listen({ port, ...(host !== undefined ? { host } : {}), backlog: Math.max(511, Math.min(this.stage.maxPending, 4096)) });
    this.server = server;
    return server;
  }

  address(): net.AddressInfo | string | null {
    return this.server?.address() ?? null;
  }

  /**
   * Takes a connection accepted elsewhere (a second listener, e.g. `serve coap`'s other port; it
   * must be paused, as `pauseOnConnect` leaves it) through the same stages.
   */
  acceptConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.closed || !this.started) {
      socket.destroy();
      return;
    }
    this.stage.admit(socket);
  }

  private onHello(socket: net.Socket, h: CompleteHello): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const free = this.slots.some((s) => s.health === 'up' && !s.busy);
    if (!this.queue.offer(socket, h, free)) return;
    this.dispatch();
    this.checkLocked();
  }

  private onDropped(socket: net.Socket, err: Error): void {
    if ((err as { code?: string }).code === 'ERR_HOST_PEER_CLOSED') return; // the client left: nothing to report
    this.emit('sessionError', err, peer(socket));
  }

  private onOverloaded(socket: net.Socket, err: SetlsError): void {
    this.emit('refused', { ...peer(socket), reason: err.message, code: err.code });
    this.emit('sessionError', err, peer(socket));
    this.updateWaiting();
  }

  /** The card of `slot` can open tickets of key `id`: every channel of that card can. */
  private learn(id: string, slot: PoolSlot): void {
    const set = this.keyHome.get(id) ?? new Set<number>();
    for (const s of this.sameCard(slot)) set.add(s.index);
    this.keyHome.set(id, set);
  }

  /** The slot that holds a ticket key the client offers (known — a free one first — or, by elimination, the last candidate). */
  private home(keyIds: readonly string[]): PoolSlot | undefined {
    for (const id of keyIds) {
      const known = this.keyHome.get(id);
      if (known?.size) {
        const homes = [...known].map((i) => this.slots[i]!).filter((s) => s.health === 'up');
        if (homes.length) return homes.find((s) => !s.busy) ?? homes[0];
      }
      const left = this.slots.filter((s) => s.health === 'up' && !s.notHere.has(id));
      if (this.cardCount > 1 && left.length > 0 && new Set(left.map((s) => s.card)).size === 1) return left.find((s) => !s.busy) ?? left[0];
    }
    return undefined;
  }

  /** A free slot for `r` now; 'later' (with the time to retry) while its ticket's card is busy; undefined: none. */
  private slotFor(r: ReadyEntry, free: PoolSlot[], now: number): PoolSlot | { later: number } | undefined {
    const keyIds = r.peek.keyIds;
    const home = keyIds.length ? this.home(keyIds) : undefined;
    if (home && home.health === 'up') {
      if (!home.busy) return home;
      if (now - r.readyAt >= this.affinityWaitMs) return free[0];
      return { later: r.readyAt + this.affinityWaitMs - now };
    }
    // unknown key id: prefer a card not known to fail it, least used first
    const cands = keyIds.length ? free.filter((s) => !keyIds.some((id) => s.notHere.has(id))) : free;
    return (cands.length ? cands : free).reduce((a, b) => (b.sessions < a.sessions ? b : a));
  }

  /**
   * The queued TLS connection that can have a free slot now, of the lowest usage class, first come
   * first served within it (`fair`: of a peer under its active limit).
   */
  private pickTls(free: PoolSlot[], now: number, later: (ms: number) => void, fair: boolean, classOf: (ip: string) => number, floor: number): { entry: ReadyEntry; slot: PoolSlot; cls: number } | undefined {
    let best: { entry: ReadyEntry; slot: PoolSlot; cls: number } | undefined;
    for (const r of this.queue.entries) {
      const cls = classOf(r.ip);
      if (best && cls >= best.cls) continue;
      if (r.socket.destroyed) continue;
      if (fair && this.peers.active(r.ip) >= this.maxActivePerPeer) continue;
      const s = this.slotFor(r, free, now);
      if (!s) continue;
      if ('later' in s) {
        later(s.later);
        continue;
      }
      best = { entry: r, slot: s, cls };
      if (cls <= floor) break; // no waiting peer is lighter: the rest of the queue cannot do better
    }
    return best;
  }

  /** Each peer's usage class at `now`, computed once per peer (for one dispatch or admission). */
  private classesAt(now: number): (ip: string) => number {
    const classes = new Map<string, number>();
    return (ip) => {
      let c = classes.get(ip);
      if (c === undefined) classes.set(ip, (c = this.usage.classOf(ip, now)));
      return c;
    };
  }

  /** Queued connections a newcomer from `ip` would wait for: those of its usage class or lighter (dispatch overtakes the others). */
  private aheadOf(ip: string, queued: readonly ReadyEntry[]): number {
    const classOf = this.classesAt(performance.now());
    const mine = classOf(ip);
    let n = 0;
    for (const e of queued) if (classOf(e.ip) <= mine) n++;
    return n;
  }

  /** The DTLS waiter of the lowest usage class, first come first served within it (`fair`: of a peer under its active limit); i = -1: none. */
  private pickDtls(fair: boolean, classOf: (ip: string) => number, floor: number): { i: number; cls: number } {
    let best = { i: -1, cls: Infinity };
    for (let i = 0; i < this.dtlsWaiters.length && best.cls > floor; i++) {
      const ip = this.dtlsWaiters[i]!.ip;
      if (fair && this.peers.active(ip) >= this.maxActivePerPeer) continue;
      const cls = classOf(ip);
      if (cls < best.cls) best = { i, cls };
    }
    return best;
  }

  private dispatch(): void {
    if (this.closed) return;
    const now = performance.now();
    let soonest = Infinity;
    const classOf = this.classesAt(now);
    // the lightest class among the waiting peers: a candidate of that class ends a queue's scan
    // (computed once a channel is free: a dispatch with every channel busy is the common case under load)
    let floor: number | undefined;
    for (;;) {
      const free = this.slots.filter((s) => s.health === 'up' && !s.busy);
      if (free.length === 0) break;
      if (floor === undefined) {
        floor = Infinity;
        for (const ip of this.peers.readyPeers()) floor = Math.min(floor, classOf(ip));
      }
      const later = (ms: number): number => (soonest = Math.min(soonest, ms));
      // peers under their active limit first; among them the lowest usage class (the card time each
      // peer used recently, peer-usage.ts), TLS and DTLS taking turns within a class; only when none
      // waits, anyone (a free channel is never left idle while someone waits)
      let tls = this.pickTls(free, now, later, true, classOf, floor);
      let d = this.pickDtls(true, classOf, floor);
      if (!tls && d.i < 0) {
        tls = this.pickTls(free, now, later, false, classOf, floor);
        d = this.pickDtls(false, classOf, floor);
      }
      let kind: 'tls' | 'dtls';
      if (tls && d.i >= 0) kind = tls.cls !== d.cls ? (tls.cls < d.cls ? 'tls' : 'dtls') : this.lastPick === 'tls' ? 'dtls' : 'tls';
      else if (tls) kind = 'tls';
      else if (d.i >= 0) kind = 'dtls';
      else break;
      this.lastPick = kind;
      if (kind === 'tls') {
        this.queue.take(tls!.entry);
        this.assign(tls!.slot, tls!.entry);
      } else {
        const [w] = this.dtlsWaiters.splice(d.i, 1);
        this.lend(free.reduce((a, b) => (b.sessions < a.sessions ? b : a)), w!);
      }
    }
    this.preemptForFairness();
    if (Number.isFinite(soonest) && !this.affinityTimer) {
      this.affinityTimer = setTimeout(() => {
        this.affinityTimer = undefined;
        this.dispatch();
      }, Math.max(1, soonest));
      this.affinityTimer.unref();
    }
    this.updateWaiting();
  }

  /**
   * No channel free, and a peer under its active limit waits: a DTLS handshake of a peer holding more
   * than its share gives its channel back (one at a time; its release dispatches again). Handshakes
   * are cheap to redo and an established session is never preempted (the hold limit handles those).
   */
  private preemptForFairness(): void {
    if (this.slots.some((s) => s.health === 'up' && !s.busy)) return;
    const fair = (ip: string): boolean => this.peers.active(ip) < this.maxActivePerPeer;
    if (!this.queue.entries.some((r) => fair(r.ip)) && !this.dtlsWaiters.some((w) => fair(w.ip))) return;
    for (const slot of this.slots) {
      if (slot.holder !== 'dtls' || !slot.preempt || slot.peer === undefined || this.peers.active(slot.peer) <= this.maxActivePerPeer) continue;
      const ask = slot.preempt;
      slot.preempt = undefined;
      if (ask()) return;
    }
  }

  private take(slot: PoolSlot, holder: 'tls' | 'dtls', ip: string): void {
    slot.busy = true;
    slot.holder = holder;
    slot.peer = ip;
    slot.sessions++;
    slot.busySince = performance.now();
    this.peers.add(ip, 'active');
  }

  private assign(slot: PoolSlot, r: ReadyEntry): void {
    this.take(slot, 'tls', r.ip);
    const keyIds = r.peek.keyIds;
    this.emit('assigned', { slot: slot.index, kind: 'tls', keyIds, remotePort: r.socket.remotePort });
    void slot.tandem.serveConnection(r.socket).then((secure) => {
      if (!secure && slot.busy && slot.holder === 'tls' && !slot.tandem.inUse) this.slotFree(slot); // refused before taking the card
      if (!secure || !keyIds.length) return;
      const info = secure.getSessionInfo();
      if (info?.resumption === 'ticket') {
        for (const id of keyIds) this.learn(id, slot);
      } else
        for (const id of keyIds) {
          for (const s of this.sameCard(slot)) {
            this.keyHome.get(id)?.delete(s.index);
            s.notHere.add(id);
          }
        }
    });
  }

  /**
   * A channel for a DTLS association (called once its cookie checked out and its ClientHello is
   * whole): resolves with a lease at once when a channel is free and nobody is ahead, else when the
   * scheduler's turn comes (round-robin with TLS); undefined when `waitMs` passes first, when the
   * DTLS queue is full, or the pool closes (the client's retransmission will try again).
   */
  acquireChannel(from: { address: string }, waitMs: number = this.queue.queueTimeoutMs || 10_000): Promise<ChannelLease | undefined> {
    if (this.closed || !this.started) return Promise.resolve(undefined);
    const ip = peerKey(from.address);
    if (this.dtlsWaiters.length >= this.maxDtlsWaiting) {
      this.dtlsOverloaded++;
      publishSession({ event: 'overloaded', remoteAddress: from.address, remotePort: undefined, error: `${this.maxDtlsWaiting} DTLS associations already wait for a card channel` });
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => {
      const w: DtlsWaiter = { ip, since: performance.now(), resolve, timer: undefined };
      w.timer = setTimeout(() => {
        const i = this.dtlsWaiters.indexOf(w);
        if (i < 0) return;
        this.dtlsWaiters.splice(i, 1);
        this.peers.add(ip, 'ready', -1);
        this.dtlsOverloaded++;
        publishSession({ event: 'overloaded', remoteAddress: from.address, remotePort: undefined, error: `no card channel for a DTLS association within ${waitMs} ms` });
        this.updateWaiting();
        resolve(undefined);
      }, Math.max(1, waitMs));
      w.timer.unref();
      this.dtlsWaiters.push(w);
      this.peers.add(ip, 'ready');
      this.dispatch();
      this.checkLocked();
    });
  }

  private lend(slot: PoolSlot, w: DtlsWaiter): void {
    if (w.timer) clearTimeout(w.timer);
    this.peers.add(w.ip, 'ready', -1);
    this.take(slot, 'dtls', w.ip);
    this.emit('assigned', { slot: slot.index, kind: 'dtls' });
    let released = false;
    w.resolve({
      card: slot.tandem.card,
      slot: slot.index,
      release: () => {
        if (released) return;
        released = true;
        this.slotFree(slot);
      },
      preemptible: (ask) => {
        if (released || slot.holder !== 'dtls') return;
        slot.preempt = ask;
        this.preemptForFairness(); // someone may be waiting already
      },
    });
  }

  private slotFree(slot: PoolSlot): void {
    if (!slot.busy) return;
    const now = performance.now();
    const held = now - slot.busySince;
    slot.busyMs += held;
    if (slot.peer !== undefined) this.usage.charge(slot.peer, held, now);
    this.estimate.released(now, held, this.othersWaiting);
    if (slot.peer !== undefined) this.peers.add(slot.peer, 'active', -1);
    slot.busy = false;
    slot.holder = undefined;
    slot.peer = undefined;
    slot.preempt = undefined;
    setImmediate(() => this.dispatch());
  }

  private updateWaiting(): void {
    const waiting = this.othersWaiting;
    if (waiting === this.waitingNow) return;
    this.waitingNow = waiting;
    for (const s of this.slots) s.tandem.setOthersWaiting(waiting);
  }

  private setHealth(slot: PoolSlot, h: SlotHealth): void {
    if (slot.health === h) return;
    slot.health = h;
    this.emit('health', { slot: slot.index, name: slot.name, health: h });
  }

  private cardFault(slot: PoolSlot, err: Error): void {
    slot.locked = isLockedRefusal(err);
    this.setHealth(slot, 'down');
    // what was learned about its ticket keys stays (the key is persistent); home() skips cards that are down
    this.scheduleRecovery(slot, err);
    if (slot.locked) {
      // the lock is the card's: its idle channels are out too (busy ones learn it when their session ends)
      for (const s of this.sameCard(slot)) {
        if (s === slot || s.busy || s.health !== 'up') continue;
        s.locked = true;
        this.setHealth(s, 'down');
        this.scheduleRecovery(s, err);
      }
    }
    this.checkLocked();
  }

  private scheduleRecovery(slot: PoolSlot, err: Error): void {
    if (this.closed) return;
    const wait = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** slot.failures);
    const t = setTimeout(() => {
      this.recoveryTimers.delete(t);
      if (this.closed || slot.health === 'up') return; // back already (a locked card checked on demand)
      if (slot.starting) return this.scheduleRecovery(slot, err);
      this.startSlot(slot).then(
        () => {
          this.slotUp(slot);
          this.dispatch();
        },
        (e: Error) => {
          slot.failures++;
          slot.locked = isLockedRefusal(e);
          this.emit('sessionError', e, { remoteAddress: undefined, remotePort: undefined }, slot);
          this.scheduleRecovery(slot, e);
          this.checkLocked();
        },
      );
    }, wait);
    t.unref();
    this.recoveryTimers.add(t);
  }

  /**
   * While no channel is up and a card is down as locked: SELECT + VERIFY its channels now rather than
   * at their backoff (one check at a time; each client that arrives meanwhile waits for it), so that
   * a card unlocked since serves at once; when every channel is still locked, the clients waiting
   * (TLS and DTLS) are refused at once: access_denied, the alert a locked identity's handshake gets
   * from the card, rather than the overload answer at their queue deadline.
   */
  private checkLocked(): void {
    if (this.lockCheck || this.closed || !this.started || this.slots.some((s) => s.health === 'up')) return;
    if (this.queue.length === 0 && this.dtlsWaiters.length === 0) return;
    const locked = this.slots.filter((s) => s.health === 'down' && s.locked && !s.starting);
    if (locked.length === 0) return;
    this.lockCheck = (async () => {
      for (const card of new Set(locked.map((s) => s.card))) {
        for (const s of locked.filter((x) => x.card === card)) {
          if (this.closed || s.health === 'up' || s.starting) continue;
          try {
            await this.startSlot(s);
            this.slotUp(s);
          } catch (e) {
            s.locked = isLockedRefusal(e);
            break; // still locked (or failing): so are the card's other channels
          }
        }
      }
    })().finally(() => {
      this.lockCheck = undefined;
      if (this.closed) return;
      if (this.slots.some((s) => s.health === 'up')) this.dispatch();
      else if (this.slots.every((s) => s.health === 'down' && s.locked && !s.starting)) this.refuseLocked();
    });
  }

  private lockCheck: Promise<void> | undefined;

  /** Every card is locked: the clients waiting for a channel are refused now. */
  private refuseLocked(): void {
    const err = hostError('ERR_HOST_CARD_LOCKED', 'refused: every card is locked by its security domain');
    this.lockedRefusals += this.queue.refuseAll(err, LOCKED_IDENTITY_ALERT) + this.dropDtlsWaiters();
    this.updateWaiting();
  }

  /** Every DTLS association waiting for a channel gets none (undefined); returns how many. */
  private dropDtlsWaiters(): number {
    const dropped = this.dtlsWaiters.splice(0);
    for (const w of dropped) {
      if (w.timer) clearTimeout(w.timer);
      this.peers.add(w.ip, 'ready', -1);
      w.resolve(undefined);
    }
    return dropped.length;
  }

  /** Clients refused because every card was locked. */
  lockedRefusals = 0;

  /** Stops listening, drops waiting clients, ends sessions, waits for every card to be free. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.recoveryTimers) clearTimeout(t);
    if (this.affinityTimer) clearTimeout(this.affinityTimer);
    const server = this.server;
    const serverClosed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    this.stage.close();
    this.queue.close();
    this.dropDtlsWaiters();
    await Promise.all(this.slots.map((s) => s.tandem.close()));
    await serverClosed;
    this.emit('close');
  }
}

/**
 * How many logical channels the card behind `transport` can open besides channel 0 (MANAGE CHANNEL
 * open until it answers "no channel left"); every channel opened here is closed again. Channel 0
 * counts: the result is at least 1. Nothing else may use the card meanwhile.
 */
export async function probeLogicalChannels(card: CardClient, limit = 20): Promise<number> {
  const opened: number[] = [];
  try {
    for (let i = 1; i < limit; i++) {
      try {
        opened.push(await card.openChannel());
      } catch {
        break; // 6A81 no channel left, or channels not supported (6881 / 6E00 ...)
      }
    }
  } finally {
    for (const n of opened.reverse()) await card.closeChannel(n).catch(() => undefined);
  }
  return 1 + opened.length;
}
