/**
 * The vsmartcard **vpcd** protocol, card side: how an emulated card process appears to Debian's
 * `pcscd` (with the `vsmartcard-vpcd` driver) as a card in a reader.
 *
 * Wire format (both directions): a 2-byte big-endian length, then that many bytes.
 *   pcscd → card, length 1: a control byte — 0 power off, 1 power on, 2 reset, 4 get ATR (only 4
 *                           is answered, with the ATR);
 *   pcscd → card, length > 1: a command APDU; the card answers with the response APDU.
 *
 * Two ways to meet: the default ("server mode" of vpcd) — pcscd listens (on 0.0.0.0:35963/35964!)
 * and the card connects to it (`VpcdCardLink`, reconnecting while pcscd is away); or "reversed
 * mode" — the card listens on 127.0.0.1 and pcscd connects (`VpcdCardServer`; both slot ports must
 * answer, or pcscd aborts).
 *
 * Trust model (docs/pcsc.md): vpcd has no authentication — whoever holds the connection IS the
 * reader. So a slot takes ONE peer at a time (a second connection is closed at once, unread, and
 * reported as 'refused'); every new connection is a power-on (the previous peer's PIN verification
 * and sessions are gone, `VpcdCard.reset()`), and so is its end; and only loopback addresses are
 * accepted unless `allowRemote` is set (ERR_VPCD_REMOTE otherwise).
 *
 * Bad input (short frames, oversize lengths, garbage) never crashes the card process: zero-length
 * frames are ignored, one-byte frames other than 0/1/2/4 are ignored, a frame longer than an
 * extended APDU closes that connection, and the card's own exceptions become `6F00`.
 * imports bytes/, apdu/ (status words) and protocol/ (the ATR, SELECT).
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { SetlsError, concat, freshCopy } from '../bytes/index.js';
import { SW, encodeResponse } from '../apdu/index.js';
import { Ins, atrName, buildAtr } from '../protocol/index.js';

export const VPCD_DEFAULT_PORT = 0x8c7b; // 35963; the second slot is port + 1
export const VpcdControl = { powerOff: 0, powerOn: 1, reset: 2, getAtr: 4 } as const;
/** Largest frame accepted: an extended case-4 APDU (4 + 3 + 65535 + 2). */
export const VPCD_MAX_FRAME = 4 + 3 + 65535 + 2;

/** What a vpcd link drives: the emulated card's APDU entry plus its power events. */
export interface VpcdCard {
  /** The Answer-To-Reset sent for control 4. */
  readonly atr: Uint8Array;
  /** One command APDU in, the response APDU out. May throw: the link answers 6F00. */
  process(apdu: Uint8Array): Uint8Array | Promise<Uint8Array>;
  /** Power off / reset / power on: transient state cleared, persistent state kept. */
  reset(): void;
}

/** Frames one payload: 2-byte big-endian length ‖ payload. */
export function encodeVpcdFrame(payload: Uint8Array): Uint8Array {
  if (payload.length > 0xffff) throw new SetlsError('ERR_VPCD_FRAME', `a vpcd frame holds at most 65535 bytes, not ${payload.length}`);
  const out = new Uint8Array(2 + payload.length);
  out[0] = payload.length >> 8;
  out[1] = payload.length & 0xff;
  out.set(payload, 2);
  return out;
}

/** Incremental decoder of the length-prefixed stream; `push()` returns the whole frames received. */
export class VpcdFrameDecoder {
  private buf: Uint8Array = new Uint8Array(0);

  constructor(private readonly maxFrame = VPCD_MAX_FRAME) {}

  /** Bytes received but not yet part of a whole frame. */
  get buffered(): number {
    return this.buf.length;
  }

  /** Throws ERR_VPCD_FRAME on a frame longer than `maxFrame` (the caller drops the connection). */
  push(chunk: Uint8Array): Uint8Array[] {
    this.buf = this.buf.length ? concat(this.buf, chunk) : freshCopy(chunk);
    const frames: Uint8Array[] = [];
    let o = 0;
    while (this.buf.length - o >= 2) {
      const len = (this.buf[o]! << 8) | this.buf[o + 1]!;
      if (len > this.maxFrame) {
        this.buf = new Uint8Array(0);
        throw new SetlsError('ERR_VPCD_FRAME', `vpcd frame of ${len} bytes exceeds ${this.maxFrame}`);
      }
      if (this.buf.length - o - 2 < len) break;
      frames.push(this.buf.slice(o + 2, o + 2 + len));
      o += 2 + len;
    }
    this.buf = o ? this.buf.slice(o) : this.buf;
    return frames;
  }
}

export { buildAtr, atrName };

/**
 * Whether `host` is a loopback address: `localhost`, IPv4 127.0.0.0/8, `::1`, or IPv4-mapped
 * 127.x. Other names are not resolved (a name is not proof of where it points): they count as remote.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  const v4 = (a: string): boolean => net.isIPv4(a) && a.split('.')[0] === '127';
  if (v4(h)) return true;
  if (!net.isIPv6(h)) return false;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const m = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return m ? v4(m[1]!) : false;
}

/** Throws ERR_VPCD_REMOTE for a non-loopback vpcd address unless `allowRemote`. */
export function checkVpcdHost(host: string, allowRemote: boolean | undefined, what: string): void {
  if (allowRemote || isLoopbackHost(host)) return;
  throw new SetlsError(
    'ERR_VPCD_REMOTE',
    `refusing to ${what} ${host}: vpcd has no authentication, so any peer that reaches the port drives the card; use 127.0.0.1 ` +
      `(and a private network namespace, docs/pcsc.md), or force it with --allow-remote-vpcd`,
  );
}

/** Statistics of one link, for logs and tests. */
export interface VpcdStats {
  apdus: number;
  controls: number;
  ignored: number;
  badFrames: number;
  /** Connections closed at once because the slot already had its peer (reversed mode). */
  refused: number;
}

/** A served vpcd stream: `idle()` resolves once the APDU in progress (if any) has been answered or dropped. */
export interface VpcdServing {
  idle(): Promise<void>;
}

/**
 * Serves one connected vpcd stream: decodes frames, runs controls and APDUs strictly in order
 * (one at a time), writes answers as ONE write (length and data together).
 */
export function serveVpcdSocket(socket: net.Socket, card: VpcdCard, stats: VpcdStats, onEvent?: (ev: string) => void): VpcdServing {
  const dec = new VpcdFrameDecoder();
  let tail: Promise<void> = Promise.resolve();
  socket.setNoDelay(true);
  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    let frames: Uint8Array[];
    try {
      frames = dec.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    } catch {
      stats.badFrames++;
      onEvent?.('bad-frame');
      socket.destroy();
      return;
    }
    for (const f of frames) tail = tail.then(() => handle(f)).catch(() => undefined);
  });
  const serving: VpcdServing = { idle: () => tail };

  async function handle(f: Uint8Array): Promise<void> {
    if (socket.destroyed) return;
    if (f.length === 0) {
      stats.ignored++;
      return;
    }
    if (f.length === 1) {
      stats.controls++;
      switch (f[0]) {
        case VpcdControl.getAtr:
          socket.write(encodeVpcdFrame(card.atr));
          return;
        case VpcdControl.powerOff:
        case VpcdControl.powerOn:
        case VpcdControl.reset:
          safeReset(card);
          onEvent?.(f[0] === VpcdControl.powerOff ? 'power-off' : f[0] === VpcdControl.powerOn ? 'power-on' : 'reset');
          return;
        default:
          stats.ignored++;
          return;
      }
    }
    stats.apdus++;
    let res: Uint8Array;
    try {
      res = await card.process(f);
      if (!(res instanceof Uint8Array) || res.length < 2 || res.length > 0xffff) res = encodeResponse(new Uint8Array(0), SW.internalError);
    } catch {
      res = encodeResponse(new Uint8Array(0), SW.internalError);
    }
    if (!socket.destroyed) socket.write(encodeVpcdFrame(res));
  }
  return serving;
}

function safeReset(card: VpcdCard): void {
  try {
    card.reset();
  } catch {
    // a failing reset must not take the card process down
  }
}

export interface VpcdLinkOptions {
  readonly host?: string;
  readonly port?: number;
  /** Delay between connection attempts while pcscd/vpcd is not there, ms. Default 500. */
  readonly retryMs?: number;
  /** Allow a non-loopback `host` (vpcd has no authentication). Default false: ERR_VPCD_REMOTE. */
  readonly allowRemote?: boolean;
}

/**
 * Default vpcd mode: the card connects to pcscd's vpcd slot (127.0.0.1:35963 unless told otherwise)
 * and keeps reconnecting when the connection fails or drops. Events: 'connected', 'disconnected',
 * 'control' (name), 'error'.
 */
export class VpcdCardLink extends EventEmitter {
  readonly stats: VpcdStats = { apdus: 0, controls: 0, ignored: 0, badFrames: 0, refused: 0 };
  private socket: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly host: string;
  private readonly port: number;
  private readonly retryMs: number;

  constructor(
    private readonly card: VpcdCard,
    opts: VpcdLinkOptions = {},
  ) {
    super();
    this.host = opts.host ?? '127.0.0.1';
    checkVpcdHost(this.host, opts.allowRemote, 'connect the card to vpcd at');
    this.port = opts.port ?? VPCD_DEFAULT_PORT;
    this.retryMs = opts.retryMs ?? 500;
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed && !this.socket.connecting;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const s = net.connect({ host: this.host, port: this.port });
    this.socket = s;
    s.once('connect', () => {
      safeReset(this.card); // inserted: a power-on, nothing of an earlier connection survives
      this.emit('connected', `${this.host}:${this.port}`);
      serveVpcdSocket(s, this.card, this.stats, (ev) => this.emit('control', ev));
    });
    s.on('error', () => undefined);
    s.once('close', () => {
      const was = !s.connecting;
      if (this.socket === s) this.socket = undefined;
      safeReset(this.card); // the reader lost the card: power is gone
      if (was) this.emit('disconnected');
      if (!this.stopped) {
        this.timer = setTimeout(() => this.connect(), this.retryMs);
        this.timer.unref?.();
      }
    });
  }

  /** Closes the connection (pcscd sees the card removed) and stops reconnecting. */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const s = this.socket;
    if (!s || s.destroyed) return Promise.resolve();
    return new Promise((r) => {
      s.once('close', () => r());
      s.destroy();
    });
  }
}

export interface VpcdServerOptions {
  /** Address to listen on. Default 127.0.0.1; a non-loopback address needs `allowRemote`. */
  readonly host?: string;
  /** First slot port; the second slot is port + 1. Default 35963. */
  readonly port?: number;
  /**
   * What the second slot holds: another card, or undefined for an empty-card stand-in that
   * answers its ATR and 6A82/6D00 to everything (pcscd aborts when a slot port does not answer).
   */
  readonly secondCard?: VpcdCard;
  /** Allow listening on a non-loopback address (vpcd has no authentication). Default false: ERR_VPCD_REMOTE. */
  readonly allowRemote?: boolean;
}

/** An "empty" card for the second slot in reversed mode: SELECT → 6A82, anything else → 6D00. */
export function emptyVpcdCard(name = 'setls-empty'): VpcdCard {
  return {
    atr: buildAtr(name.slice(0, 13)),
    process: (apdu) => encodeResponse(new Uint8Array(0), apdu[1] === Ins.select ? SW.notFound : SW.insNotSupported),
    reset: () => undefined,
  };
}

/** Where a socket's peer is, for logs. */
function peerOf(s: net.Socket): string {
  return s.remoteAddress ? `${s.remoteAddress}:${s.remotePort}` : 'unknown peer';
}

/**
 * Reversed vpcd mode: the card listens (127.0.0.1 by default) on BOTH slot ports and pcscd
 * (reader.conf `DEVICENAME 127.0.0.1:0x8C7B`) connects.
 *
 * One peer per slot: while a slot's connection is open — and until the last APDU it sent has been
 * answered or dropped — another connection to that slot is destroyed at once, its bytes never read
 * ('refused'). Each accepted connection starts with a card reset (power-on) and its end resets the
 * card again, so no PIN verification, session or pending response passes from one peer to the next.
 *
 * Events: 'listening' (host, port), 'connected' (slot, peer), 'disconnected' (slot, peer),
 * 'refused' (slot, peer), 'control' (name, slot), 'error'.
 */
export class VpcdCardServer extends EventEmitter {
  readonly stats: VpcdStats = { apdus: 0, controls: 0, ignored: 0, badFrames: 0, refused: 0 };
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** Per slot: whether a peer holds it (from accept until its close has been handled). */
  private readonly held = [false, false];

  constructor(
    private readonly card: VpcdCard,
    private readonly opts: VpcdServerOptions = {},
  ) {
    super();
    checkVpcdHost(opts.host ?? '127.0.0.1', opts.allowRemote, 'listen for vpcd on');
  }

  /** Whether the slot currently has its one peer. */
  slotHeld(slot: number): boolean {
    return this.held[slot] === true;
  }

  async listen(): Promise<void> {
    const host = this.opts.host ?? '127.0.0.1';
    const port = this.opts.port ?? VPCD_DEFAULT_PORT;
    const cards = [this.card, this.opts.secondCard ?? emptyVpcdCard()];
    for (let slot = 0; slot < 2; slot++) {
      const card = cards[slot]!;
      const srv = net.createServer({ pauseOnConnect: true }, (s) => this.accept(s, slot, card));
      // A failed listen (EADDRINUSE…) rejects listen() only: it is not also an 'error' event.
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen({ host, port: port + slot }, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      srv.on('error', (e) => this.emit('error', e));
      this.servers.push(srv);
    }
    this.emit('listening', host, port);
  }

  private accept(s: net.Socket, slot: number, card: VpcdCard): void {
    const peer = peerOf(s);
    s.on('error', () => undefined);
    if (this.held[slot]) {
      // Paused since accept: nothing it sent is read. Closed at once.
      this.stats.refused++;
      s.destroy();
      this.emit('refused', slot, peer);
      return;
    }
    this.held[slot] = true;
    this.sockets.add(s);
    safeReset(card); // a new reader connection is a power-on: nothing of the previous peer survives
    const serving = serveVpcdSocket(s, card, this.stats, (ev) => this.emit('control', ev, slot));
    s.once('close', () => {
      this.sockets.delete(s);
      // The slot stays held until the last APDU of this peer is done, then the card is reset.
      void serving.idle().then(() => {
        safeReset(card);
        this.held[slot] = false;
        this.emit('disconnected', slot, peer);
      });
    });
    this.emit('connected', slot, peer);
    s.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
    this.servers.length = 0;
  }
}
