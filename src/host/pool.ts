/**
 * TlsPool: several cards behind one TCP listener. Each slot is (card, logical channel) — channels
 * 0..channelsPerCard-1 of every card (the pool opens 1..n-1 with MANAGE CHANNEL at start and again
 * when a recovering card lost them) — served by a TlsTandem on that channel (the session code is the
 * tandem's: handshake, record layer, TLS-Tandem export, deadlines; the pool only schedules). The
 * tandems of one card share its transport (which serialises APDUs); their sessions interleave
 * APDU by APDU, each in its own channel's state on the card.
 *
 * Scheduling:
 *  - A connection first sits in the PEEK stage: the host reads its bytes (no card involved) until a
 *    COMPLETE ClientHello is buffered (pool-hello.ts), then puts the bytes back (socket.unshift) and
 *    queues it READY. A silent or slow client (slowloris) never holds a card; the handshake deadline
 *    runs from connect and drops it.
 *  - Bounded backlog (the paper's): connections waiting (peek + ready) beyond `backlog` are refused.
 *  - A ready connection gets the first free healthy slot, FIFO — except a resumption: its ticket key
 *    id (clear in the ticket) is routed to the card known to hold that key (learned: a TLS 1.2
 *    NewSessionTicket is seen in clear in the card's flight; a resumed TLS 1.3 session pins the key
 *    id to its card; a key id that did not resume on a card is excluded there, and when one healthy
 *    card is left it is pinned). While the known card is busy, the resumption waits for it at most
 *    `affinityWaitMs`, then goes to any free card (full handshake: correct, just slower).
 *  - Health: a card whose RESET-STATE and SELECT/VERIFY fail after a session (error SW, timeout,
 *    removal) is taken out ('down'); the pool retries SELECT/VERIFY with exponential backoff and puts
 *    it back after a success. Its session already ended cleanly (the tandem closes the client);
 *    sessions on other cards are not involved.
 *
 * Events: as TlsTandem ('listening', 'secureConnection', 'sessionError', 'refused', 'close') plus
 * 'health' ({ slot, health }). imports host/ and transport/.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { CardTransport } from '../transport/index.js';
import { CardError, hostError, TlsAlertError } from './errors.js';
import { endAndDrain } from './linger.js';
import { MAX_HELLO_BYTES, peekClientHello, ticketKeyIdInFlight } from './pool-hello.js';
import type { SeTlsSocket } from './socket.js';
import { TlsTandem, type PeerInfo, type SessionEvent, type TlsTandemOptions } from './tandem.js';

export type SlotHealth = 'up' | 'down';

export interface TlsPoolOptions extends Omit<TlsTandemOptions, 'transport' | 'pin'> {
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
   * many (the emulated card: `channels`, default 4).
   */
  readonly channelsPerCard?: number;
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
  /** A session (handshake or card record layer) holds this slot. */
  busy: boolean;
  /** Failed recovery attempts in a row. */
  failures: number;
  /** Ticket key ids routed here that did not resume (this card cannot open them). */
  readonly notHere: Set<string>;
  /** Handshakes, ms of card time used (busy). */
  sessions: number;
  busyMs: number;
  busySince: number;
}

interface Ready {
  readonly socket: net.Socket;
  readonly keyIds: readonly string[];
  readonly tls13: boolean;
  readonly since: number;
  readonly deadline: NodeJS.Timeout | undefined;
}

const sessionChannel = diagnostics_channel.channel('setls:session');
function publish(ev: SessionEvent): void {
  if (sessionChannel.hasSubscribers) sessionChannel.publish(ev);
}
function peer(s: net.Socket): PeerInfo {
  return { remoteAddress: s.remoteAddress, remotePort: s.remotePort };
}

export class TlsPool extends EventEmitter {
  readonly slots: readonly PoolSlot[];
  /** Logical channels (slots) per card. */
  readonly channelsPerCard: number;
  private readonly cardCount: number;
  private readonly opts: TlsPoolOptions;
  private readonly backlog: number;
  private readonly handshakeTimeoutMs: number;
  private readonly affinityWaitMs: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly peeking = new Set<net.Socket>();
  private readonly ready: Ready[] = [];
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
    this.backlog = opts.backlog ?? 50;
    if (!Number.isInteger(this.backlog) || this.backlog < 0) throw new RangeError('backlog must be a non-negative integer');
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 10_000;
    this.affinityWaitMs = opts.affinityWaitMs ?? 250;
    this.backoffMs = opts.recoveryBackoffMs ?? 500;
    this.maxBackoffMs = opts.maxRecoveryBackoffMs ?? 30_000;
    const { transports, names, pins, pin, channelsPerCard, ...rest } = opts;
    const perCard = channelsPerCard ?? 1;
    if (!Number.isInteger(perCard) || perCard < 1 || perCard > 20) throw new RangeError('channelsPerCard must be an integer 1..20');
    this.channelsPerCard = perCard;
    this.cardCount = transports.length;
    const pairs = transports.flatMap((transport, card) => Array.from({ length: perCard }, (_, channel) => ({ transport, card, channel })));
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
        failures: 0,
        notHere: new Set(),
        sessions: 0,
        busyMs: 0,
        busySince: 0,
      };
      tandem.on('secureConnection', (s: SeTlsSocket) => this.emit('secureConnection', s));
      tandem.on('sessionError', (e: Error, p: PeerInfo) => this.emit('sessionError', e, p, slot));
      tandem.on('free', () => this.slotFree(slot));
      tandem.on('cardFault', (e: Error) => this.cardFault(slot, e));
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
    if (failed.length === results.length) throw (failed[0] as PromiseRejectedResult).reason;
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
    try {
      await slot.tandem.start();
    } catch (e) {
      if (slot.channel === 0 || !(e instanceof CardError) || e.sw !== 0x6881) throw e;
      const basic = this.slots.find((s) => s.card === slot.card && s.channel === 0)!;
      await basic.tandem.card.openChannel(slot.channel);
      await slot.tandem.start();
    }
  }

  /** The slots of the card that `slot` is on (its channels). */
  private sameCard(slot: PoolSlot): PoolSlot[] {
    return this.slots.filter((s) => s.card === slot.card);
  }

  /** Connections waiting (peek + ready). */
  get queued(): number {
    return this.peeking.size + this.ready.length;
  }

  /** Connections with a complete ClientHello waiting for a card. */
  get readyCount(): number {
    return this.ready.length;
  }

  get inUse(): number {
    return this.slots.filter((s) => s.busy).length;
  }

  get exportedSessions(): number {
    return this.slots.reduce((n, s) => n + s.tandem.exportedSessions, 0);
  }

  listen(port: number = this.opts.port ?? 0, host: string | undefined = this.opts.host): net.Server {
    if (!this.started) throw hostError('ERR_HOST_NOT_STARTED', 'call start() first');
    if (this.closed) throw hostError('ERR_HOST_CLOSED', 'the pool is closed');
    if (this.server) throw hostError('ERR_HOST_STATE', 'already listening');
    const server = net.createServer({ pauseOnConnect: true }, (s) => this.onConnection(s));
    server.on('error', (e) => this.emit('sessionError', e, { remoteAddress: undefined, remotePort: undefined }));
    server.on('listening', () => this.emit('listening', server.address()));
    server.listen({ port, ...(host !== undefined ? { host } : {}), backlog: Math.max(this.backlog + this.slots.length, 511) });
    this.server = server;
    return server;
  }

  address(): net.AddressInfo | string | null {
    return this.server?.address() ?? null;
  }

  private refuse(socket: net.Socket): void {
    publish({ event: 'refused', ...peer(socket) });
    this.emit('refused', peer(socket));
    socket.destroy();
  }

  private onConnection(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.queued >= this.backlog) {
      this.refuse(socket);
      return;
    }
    this.peek(socket);
  }

  /** Reads (host-side only) until a whole ClientHello is buffered; then READY. */
  private peek(socket: net.Socket): void {
    this.peeking.add(socket);
    publish({ event: 'queued', ...peer(socket), queued: this.queued });
    const chunks: Buffer[] = [];
    let size = 0;
    const since = performance.now();
    const cleanup = (): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
      this.peeking.delete(socket);
    };
    const deadline =
      this.handshakeTimeoutMs > 0
        ? setTimeout(() => {
            cleanup();
            publish({ event: 'failed', ...peer(socket), error: 'no complete ClientHello before the handshake deadline' });
            this.emit('sessionError', hostError('ERR_HOST_HANDSHAKE_TIMEOUT', `no complete ClientHello within ${this.handshakeTimeoutMs} ms`), peer(socket));
            socket.destroy();
            this.updateWaiting();
          }, this.handshakeTimeoutMs)
        : undefined;
    deadline?.unref();
    const onClose = (): void => {
      cleanup();
      if (deadline) clearTimeout(deadline);
      this.updateWaiting();
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      const p = peekClientHello(size > chunk.length ? Buffer.concat(chunks) : chunk);
      if (p.state === 'need' && size <= MAX_HELLO_BYTES + 5 * 8) return;
      cleanup();
      socket.pause();
      if (p.state !== 'complete') {
        if (deadline) clearTimeout(deadline);
        const desc = p.state === 'bad' ? 10 : 22; // unexpected_message / record_overflow
        publish({ event: 'failed', ...peer(socket), error: `not a ClientHello: ${p.reason ?? 'too big'}` });
        this.emit('sessionError', new TlsAlertError('ERR_HOST_NOT_CLIENT_HELLO', `the client did not send a ClientHello (${p.reason ?? 'too big'})`, desc, true), peer(socket));
        // The host's own plaintext alert, then FIN and a bounded drain (not a reset that could eat it).
        endAndDrain(socket, Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, desc));
        this.updateWaiting();
        return;
      }
      socket.unshift(Buffer.concat(chunks));
      // The tandem applies its own handshake deadline once a card is assigned; until then this one runs.
      this.ready.push({ socket, keyIds: p.keyIds, tls13: p.tls13, since, deadline });
      socket.once('close', () => this.dropReady(socket));
      this.dispatch();
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.resume();
  }

  private dropReady(socket: net.Socket): void {
    const i = this.ready.findIndex((r) => r.socket === socket);
    if (i < 0) return;
    const [r] = this.ready.splice(i, 1);
    if (r?.deadline) clearTimeout(r.deadline);
    this.updateWaiting();
  }

  /** The card of `slot` can open tickets of key `id`: every channel of that card can. */
  private learn(id: string, slot: PoolSlot): void {
    const set = this.keyHome.get(id) ?? new Set<number>();
    for (const s of this.sameCard(slot)) set.add(s.index);
    this.keyHome.set(id, set);
  }

  /** The slot that holds a ticket key the client offers (known — a free one first — or, by elimination, the last candidate). */
  private home(r: Ready): PoolSlot | undefined {
    for (const id of r.keyIds) {
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

  private dispatch(): void {
    if (this.closed) return;
    const now = performance.now();
    let soonest = Infinity;
    for (let i = 0; i < this.ready.length; ) {
      const free = this.slots.filter((s) => s.health === 'up' && !s.busy);
      if (free.length === 0) break;
      const r = this.ready[i]!;
      if (r.socket.destroyed) {
        this.ready.splice(i, 1);
        continue;
      }
      let slot: PoolSlot | undefined;
      const home = this.home(r);
      if (home && home.health === 'up') {
        if (!home.busy) slot = home;
        else if (now - r.since >= this.affinityWaitMs) slot = free[0];
        else soonest = Math.min(soonest, r.since + this.affinityWaitMs - now);
      } else {
        // unknown key id: prefer a card not known to fail it, least used first
        const cands = r.keyIds.length ? free.filter((s) => !r.keyIds.some((id) => s.notHere.has(id))) : free;
        slot = (cands.length ? cands : free).sort((a, b) => a.sessions - b.sessions)[0];
      }
      if (!slot) {
        i++;
        continue;
      }
      this.ready.splice(i, 1);
      this.assign(slot, r);
    }
    if (Number.isFinite(soonest) && !this.affinityTimer) {
      this.affinityTimer = setTimeout(() => {
        this.affinityTimer = undefined;
        this.dispatch();
      }, Math.max(1, soonest));
      this.affinityTimer.unref();
    }
    this.updateWaiting();
  }

  private assign(slot: PoolSlot, r: Ready): void {
    if (r.deadline) clearTimeout(r.deadline);
    slot.busy = true;
    slot.sessions++;
    slot.busySince = performance.now();
    this.emit('assigned', { slot: slot.index, keyIds: r.keyIds, remotePort: r.socket.remotePort });
    void slot.tandem.serveConnection(r.socket).then((secure) => {
      if (!secure && slot.busy && !slot.tandem.inUse) this.slotFree(slot); // refused before taking the card
      if (!secure || !r.keyIds.length) return;
      const info = secure.getSessionInfo();
      if (info?.resumption === 'ticket') {
        for (const id of r.keyIds) this.learn(id, slot);
      } else
        for (const id of r.keyIds) {
          for (const s of this.sameCard(slot)) {
            this.keyHome.get(id)?.delete(s.index);
            s.notHere.add(id);
          }
        }
    });
  }

  private slotFree(slot: PoolSlot): void {
    if (slot.busy) slot.busyMs += performance.now() - slot.busySince;
    slot.busy = false;
    setImmediate(() => this.dispatch());
  }

  private updateWaiting(): void {
    const waiting = this.ready.length > 0;
    for (const s of this.slots) s.tandem.setOthersWaiting(waiting);
  }

  private setHealth(slot: PoolSlot, h: SlotHealth): void {
    if (slot.health === h) return;
    slot.health = h;
    this.emit('health', { slot: slot.index, name: slot.name, health: h });
  }

  private cardFault(slot: PoolSlot, err: Error): void {
    this.setHealth(slot, 'down');
    // what was learned about its ticket keys stays (the key is persistent); home() skips cards that are down
    this.scheduleRecovery(slot, err);
  }

  private scheduleRecovery(slot: PoolSlot, _err: Error): void {
    if (this.closed) return;
    const wait = Math.min(this.maxBackoffMs, this.backoffMs * 2 ** slot.failures);
    const t = setTimeout(() => {
      this.recoveryTimers.delete(t);
      if (this.closed) return;
      this.startSlot(slot).then(
        () => {
          slot.failures = 0;
          this.setHealth(slot, 'up');
          this.dispatch();
        },
        (e: Error) => {
          slot.failures++;
          this.emit('sessionError', e, { remoteAddress: undefined, remotePort: undefined }, slot);
          this.scheduleRecovery(slot, e);
        },
      );
    }, wait);
    t.unref();
    this.recoveryTimers.add(t);
  }

  /** Stops listening, drops waiting clients, ends sessions, waits for every card to be free. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.recoveryTimers) clearTimeout(t);
    if (this.affinityTimer) clearTimeout(this.affinityTimer);
    const server = this.server;
    const serverClosed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const s of this.peeking) s.destroy();
    for (const r of this.ready.splice(0)) {
      if (r.deadline) clearTimeout(r.deadline);
      r.socket.destroy();
    }
    await Promise.all(this.slots.map((s) => s.tandem.close()));
    await serverClosed;
    this.emit('close');
  }
}
