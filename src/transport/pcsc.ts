/**
 * PcscTransport: a card in a PC/SC reader (pcsc-lite's pcscd), through the optional npm package
 * `smartcard` (N-API binding of libpcsclite). Only APDU bytes cross, as with every transport.
 *
 * - `listPcscReaders()`: reader names, card presence and ATRs.
 * - `PcscTransport.open({ reader })`: connects T=0/T=1 (T=1 preferred by pcscd when both are
 *   offered), waits for a card up to `waitForCardMs`.
 * - `transmit()` one APDU; `withTransaction(fn)` runs a whole command/response chain (segments +
 *   61xx GET RESPONSEs) without another APDU of THIS process in between, and — when the binding
 *   offers SCardBeginTransaction/EndTransaction — without one of another PC/SC client. smartcard
 *   3.7.0 does not expose them; the transport then connects EXCLUSIVELY by default (share 'auto'),
 *   which keeps every other PC/SC client off the card for as long as it is open. Ask for 'shared'
 *   explicitly to let other clients in (they could then split a 61xx chain).
 * - Card removal: a transmit on a removed card rejects ERR_TRANSPORT_CARD_REMOVED (and 'removed'
 *   is emitted); the next transmit reconnects when a card is back ('inserted'), so a server rides
 *   through a card restart without restarting itself. A reset card (another client reset it)
 *   rejects ERR_TRANSPORT_CARD_RESET once, then works again (the card's transient state is gone).
 * - `extendedLength`: default true for vsmartcard readers ("Virtual PCD …", which pass extended
 *   APDUs), false otherwise; override with the option.
 * - Missing binding or pcscd: ERR_TRANSPORT_PCSC_UNAVAILABLE with the reason.
 * imports bytes/ and transport/.
 */
import { EventEmitter } from 'node:events';
import { SetlsError, freshCopy } from '../bytes/index.js';
import { checkApdu, transportClosed, type CardTransport } from './card-transport.js';

/** The subset of the `smartcard` package used here (typed locally: the package is optional). */
interface ScCard {
  readonly protocol: number;
  readonly connected: boolean;
  readonly atr: Buffer | null;
  transmit(command: Buffer, options?: { maxRecvLength?: number; autoGetResponse?: boolean }): Promise<Buffer>;
  disconnect(disposition?: number): void;
  reconnect(shareMode?: number, protocol?: number, initialization?: number): Promise<number>;
  beginTransaction?(): Promise<void> | void;
  endTransaction?(disposition?: number): Promise<void> | void;
}
interface ScReader {
  readonly name: string;
  readonly state: number;
  readonly atr: Buffer | null;
  connect(shareMode?: number, protocol?: number): Promise<ScCard>;
}
interface ScContext {
  readonly isValid: boolean;
  listReaders(): ScReader[];
  close(): void;
}
interface ScModule {
  Context: new () => ScContext;
  SCARD_SHARE_SHARED: number;
  SCARD_SHARE_EXCLUSIVE: number;
  SCARD_PROTOCOL_T0: number;
  SCARD_PROTOCOL_T1: number;
  SCARD_LEAVE_CARD: number;
  SCARD_RESET_CARD: number;
  SCARD_STATE_PRESENT: number;
}

let loaded: Promise<ScModule> | undefined;

/** Loads the optional `smartcard` binding; ERR_TRANSPORT_PCSC_UNAVAILABLE when it is missing. */
export function loadPcsc(): Promise<ScModule> {
  loaded ??= (async () => {
    const name = 'smartcard';
    try {
      const m = (await import(name)) as { default?: ScModule } & ScModule;
      const mod = (m.default ?? m) as ScModule;
      if (typeof mod.Context !== 'function') throw new Error('the module has no Context');
      return mod;
    } catch (e) {
      loaded = undefined;
      throw new SetlsError(
        'ERR_TRANSPORT_PCSC_UNAVAILABLE',
        `PC/SC needs the optional npm package 'smartcard' (built against libpcsclite-dev): ${(e as Error).message}`,
        { cause: e },
      );
    }
  })();
  return loaded;
}

export interface PcscReaderInfo {
  readonly name: string;
  readonly cardPresent: boolean;
  readonly atr: Uint8Array | undefined;
}

function newContext(mod: ScModule): ScContext {
  try {
    return new mod.Context();
  } catch (e) {
    throw new SetlsError('ERR_TRANSPORT_PCSC_UNAVAILABLE', `cannot reach pcscd (is it running? /run/pcscd/pcscd.comm): ${(e as Error).message}`, { cause: e });
  }
}

/** Lists the PC/SC readers pcscd knows. */
export async function listPcscReaders(): Promise<PcscReaderInfo[]> {
  const mod = await loadPcsc();
  const ctx = newContext(mod);
  try {
    return ctx.listReaders().map((r) => ({
      name: r.name,
      cardPresent: (r.state & mod.SCARD_STATE_PRESENT) !== 0,
      atr: r.atr ? new Uint8Array(r.atr) : undefined,
    }));
  } finally {
    ctx.close();
  }
}

type ErrorKind = 'removed' | 'reset' | 'service' | 'other';

function classify(e: unknown): ErrorKind {
  const m = e instanceof Error ? e.message : String(e);
  if (/removed|No smart card present|Reader unavailable|Invalid handle|unpowered|unresponsive|Communication error|Unknown reader/i.test(m)) return 'removed';
  if (/Card was reset/i.test(m)) return 'reset';
  if (/service not running|service stopped|Context is not valid/i.test(m)) return 'service';
  return 'other';
}

export interface PcscTransportOptions {
  /** Reader name: exact, else the first reader whose name starts with it. */
  readonly reader: string;
  /**
   * 'auto' (default): shared when the binding has PC/SC transactions, else exclusive (see above).
   */
  readonly share?: 'auto' | 'shared' | 'exclusive';
  /** Extended-length APDUs. Default: true for "Virtual PCD" readers, else false. */
  readonly extendedLength?: boolean;
  /** How long open() waits for a card in the reader, ms. Default 0 (fail at once). */
  readonly waitForCardMs?: number;
  /** How long a transmit after a removal waits for the card to come back, ms. Default 0. */
  readonly reconnectWaitMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class PcscTransport extends EventEmitter implements CardTransport {
  readonly extendedLength: boolean;
  /** Whether chains are protected against other PC/SC clients (native transactions or exclusive mode). */
  readonly chainsProtected: boolean;
  readonly shareMode: 'shared' | 'exclusive';
  private card: ScCard | undefined;
  private ctx: ScContext;
  private closed = false;
  private tail: Promise<unknown> = Promise.resolve();
  private inTransaction = false;
  private readonly nativeTransactions: boolean;
  /** Bumped at every (re)connection: a new value means the card's transient state may be gone. */
  cardEpoch = 0;

  private constructor(
    private readonly mod: ScModule,
    ctx: ScContext,
    card: ScCard,
    readonly readerName: string,
    private readonly opts: PcscTransportOptions,
    share: 'shared' | 'exclusive',
  ) {
    super();
    this.ctx = ctx;
    this.card = card;
    this.shareMode = share;
    this.nativeTransactions = typeof card.beginTransaction === 'function' && typeof card.endTransaction === 'function';
    this.chainsProtected = this.nativeTransactions || share === 'exclusive';
    this.extendedLength = opts.extendedLength ?? /^Virtual PCD/.test(readerName);
    this.cardEpoch = 1;
  }

  /** Connects to the card in `opts.reader`. */
  static async open(opts: PcscTransportOptions): Promise<PcscTransport> {
    if (!opts || typeof opts.reader !== 'string' || opts.reader === '') throw new TypeError('PcscTransport needs a reader name');
    const mod = await loadPcsc();
    const ctx = newContext(mod);
    try {
      const deadline = Date.now() + (opts.waitForCardMs ?? 0);
      const hasTx = 'beginTransaction' in ((mod as unknown as { Card?: { prototype?: object } }).Card?.prototype ?? {});
      const share = opts.share === 'shared' || opts.share === 'exclusive' ? opts.share : hasTx ? 'shared' : 'exclusive';
      for (;;) {
        try {
          const { card, name } = await connectReader(mod, ctx, opts.reader, share);
          return new PcscTransport(mod, ctx, card, name, opts, share);
        } catch (e) {
          if (Date.now() >= deadline || !(e instanceof SetlsError && (e.code === 'ERR_TRANSPORT_NO_CARD' || e.code === 'ERR_TRANSPORT_NO_READER'))) throw e;
          await sleep(200);
        }
      }
    } catch (e) {
      ctx.close();
      throw e;
    }
  }

  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    try {
      checkApdu(apdu);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.closed) return Promise.reject(transportClosed());
    const cmd = Buffer.from(freshCopy(apdu));
    if (this.inTransaction) return this.transmitNow(cmd);
    return this.serialise(() => this.transmitNow(cmd));
  }

  /**
   * Runs `fn` (a whole command/response chain) with no other APDU of this transport in between;
   * with native PC/SC transactions, inside SCardBeginTransaction/SCardEndTransaction.
   */
  withTransaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(transportClosed());
    if (this.inTransaction) return fn();
    return this.serialise(async () => {
      this.inTransaction = true;
      let begun = false;
      try {
        if (this.nativeTransactions && this.card) {
          await this.card.beginTransaction!();
          begun = true;
        }
        return await fn();
      } finally {
        this.inTransaction = false;
        if (begun && this.card?.connected) {
          try {
            await this.card.endTransaction!(this.mod.SCARD_LEAVE_CARD);
          } catch {
            // the card went away: nothing to end
          }
        }
      }
    });
  }

  private serialise<T>(run: () => Promise<T>): Promise<T> {
    const p = this.tail.then(run, run);
    this.tail = p.catch(() => undefined);
    return p;
  }

  private async transmitNow(cmd: Buffer): Promise<Uint8Array> {
    if (this.closed) throw transportClosed();
    const card = this.card ?? (await this.reconnect());
    let res: Buffer;
    try {
      res = await card.transmit(cmd, { maxRecvLength: this.extendedLength ? 65538 : 258 });
    } catch (e) {
      const kind = classify(e);
      if (kind === 'reset') {
        // Another client (or pcscd) reset the card: reattach; the card's transient state is gone.
        try {
          await card.reconnect(this.shareMode === 'exclusive' ? this.mod.SCARD_SHARE_EXCLUSIVE : this.mod.SCARD_SHARE_SHARED, this.mod.SCARD_PROTOCOL_T0 | this.mod.SCARD_PROTOCOL_T1, this.mod.SCARD_LEAVE_CARD);
          this.cardEpoch++;
        } catch {
          this.dropCard();
        }
        throw new SetlsError('ERR_TRANSPORT_CARD_RESET', `the card in ${this.readerName} was reset; its transient state (selection, PIN) is lost`, { cause: e });
      }
      if (kind === 'removed' || kind === 'service') {
        this.dropCard();
        if (kind === 'service') this.renewContext();
        this.emit('removed', this.readerName);
        throw new SetlsError('ERR_TRANSPORT_CARD_REMOVED', `the card was removed from ${this.readerName}: ${(e as Error).message}`, { cause: e });
      }
      throw new SetlsError('ERR_TRANSPORT_PCSC', `PC/SC transmit failed on ${this.readerName}: ${(e as Error).message}`, { cause: e });
    }
    const out = new Uint8Array(res);
    if (out.length < 2) throw new SetlsError('ERR_APDU_RESPONSE', `response APDU of ${out.length} bytes has no status word`);
    return out;
  }

  private dropCard(): void {
    const c = this.card;
    this.card = undefined;
    try {
      c?.disconnect(this.mod.SCARD_LEAVE_CARD);
    } catch {
      // already gone
    }
  }

  private renewContext(): void {
    try {
      this.ctx.close();
    } catch {
      // ignore
    }
    try {
      this.ctx = new this.mod.Context();
    } catch {
      // pcscd is down; the next reconnect tries again
    }
  }

  /** After a removal: connect again when a card is back (within reconnectWaitMs), else CARD_REMOVED. */
  private async reconnect(): Promise<ScCard> {
    const deadline = Date.now() + (this.opts.reconnectWaitMs ?? 0);
    for (;;) {
      try {
        if (!this.ctx.isValid) this.renewContext();
        const { card } = await connectReader(this.mod, this.ctx, this.readerName, this.shareMode);
        this.card = card;
        this.cardEpoch++;
        this.emit('inserted', this.readerName);
        return card;
      } catch (e) {
        if (classify(e) === 'service') this.renewContext();
        if (Date.now() >= deadline) {
          throw new SetlsError('ERR_TRANSPORT_CARD_REMOVED', `no card in ${this.readerName}: ${(e as Error).message}`, { cause: e });
        }
        await sleep(200);
      }
    }
  }

  /** Disconnects with SCARD_RESET_CARD (the card forgets the PIN verification) and frees the context. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail;
    try {
      this.card?.disconnect(this.mod.SCARD_RESET_CARD);
    } catch {
      // already gone
    }
    this.card = undefined;
    try {
      this.ctx.close();
    } catch {
      // ignore
    }
  }
}

async function connectReader(mod: ScModule, ctx: ScContext, want: string, share: 'shared' | 'exclusive'): Promise<{ card: ScCard; name: string }> {
  let readers: ScReader[];
  try {
    readers = ctx.listReaders();
  } catch (e) {
    throw new SetlsError('ERR_TRANSPORT_PCSC_UNAVAILABLE', `cannot list PC/SC readers: ${(e as Error).message}`, { cause: e });
  }
  const reader = readers.find((r) => r.name === want) ?? readers.find((r) => r.name.startsWith(want));
  if (!reader) {
    throw new SetlsError('ERR_TRANSPORT_NO_READER', `no PC/SC reader '${want}' (readers: ${readers.map((r) => `'${r.name}'`).join(', ') || 'none'})`);
  }
  try {
    const card = await reader.connect(share === 'exclusive' ? mod.SCARD_SHARE_EXCLUSIVE : mod.SCARD_SHARE_SHARED, mod.SCARD_PROTOCOL_T0 | mod.SCARD_PROTOCOL_T1);
    return { card, name: reader.name };
  } catch (e) {
    const m = (e as Error).message;
    if (/No smart card present|removed|unpowered|unresponsive/i.test(m)) {
      throw new SetlsError('ERR_TRANSPORT_NO_CARD', `no card in reader '${reader.name}'`, { cause: e });
    }
    if (/Sharing violation/i.test(m)) {
      throw new SetlsError('ERR_TRANSPORT_SHARING', `reader '${reader.name}' is in exclusive use by another PC/SC client`, { cause: e });
    }
    throw new SetlsError('ERR_TRANSPORT_PCSC', `cannot connect to '${reader.name}': ${m}`, { cause: e });
  }
}
