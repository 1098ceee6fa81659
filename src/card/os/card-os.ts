/**
 * card/os/card-os: the card OS — the one way into the card (`process`: APDU bytes in, response
 * bytes out, synchronous, never throwing). It reads the logical channel from CLA (protocol/cla.ts),
 * answers MANAGE CHANNEL and SELECT by AID itself, routes every other command to the applet
 * selected on its channel, and gives table-driven applets command chaining and GET RESPONSE
 * (dispatcher.ts). Reset closes every channel but 0 and clears every applet's transient state.
 *
 * Routing: a class byte with a channel coding goes to that channel (6881 if it is not open); one
 * without (20–3F, 88–9F, A4–BF, D0–DF, F0–FF) to channel 0, where the applet refuses it (6E00).
 * The applet selected on the channel gets the command with its raw CLA and decoded class (E0–EF is
 * setls's proprietary class to the setls applet and GlobalPlatform's SM class to a security domain).
 * On a channel where nothing is selected the first registered applet (the default applet) checks
 * commands against its table and answers 6985 "not selected" for its own (6D00 for others).
 * The card's lifecycle (`admit`: the security domain's locks) may refuse SELECT of an applet and the
 * commands of an applet selected before a lock; a raw applet may leave its response chaining to the
 * OS (`Applet.responses`: the security domain).
 *
 * Secrets: each APDU's input copy (wiped after the command), chains and pending responses (channel.ts).
 * imports bytes/, apdu/, protocol/ and card/.
 */
import { SetlsError, equalBytes, freshCopy, wipe } from '../../bytes/index.js';
import { ApduError, SW, encodeResponse, parseCommand } from '../../apdu/index.js';
import { Channels, Ins, SelectP1, SelectP2, decodeCla } from '../../protocol/index.js';
import { CardError, cardErr } from '../errors.js';
import type { Applet, AppletCommand, Reply } from './applet.js';
import { LogicalChannel } from './channel.js';
import { CompiledTable, breakChain, dispatchTable, getResponse, respond } from './dispatcher.js';

/** The last error the card turned into a status word (diagnostics for the host and tests; never secret). */
export interface CardErrorInfo {
  readonly code: string;
  readonly message: string;
  readonly sw: number;
}

export interface CardOsOptions {
  /** Logical channels kept open at most, channel 0 included (1–20). */
  readonly maxChannels: number;
  /** The applets, the default applet first (it answers on channels where nothing is selected). */
  readonly applets: readonly Applet[];
  /** After every APDU, success or not (the card wipes per-APDU secret copies). */
  readonly afterApdu?: () => void;
  /** After a reset, once every channel is cleared (the card wipes its RNG block). */
  readonly afterReset?: () => void;
  /**
   * Whether the card's lifecycle lets `applet` be selected ('select': SELECT, or a channel opened
   * from one where it is selected) or answer a command on a channel where it is selected
   * ('command'); throws a CardError to refuse (the security domain's locks: card/services/
   * security-domain.ts). SELECT, MANAGE CHANNEL and GET RESPONSE are never refused by it.
   */
  readonly admit?: (applet: Applet, what: 'select' | 'command') => void;
}

const EMPTY = new Uint8Array(0);

export class CardOs {
  private readonly channels: (LogicalChannel | undefined)[];
  private readonly applets: readonly Applet[];
  private readonly tables = new Map<Applet, CompiledTable>();
  /** The channel of the APDU being processed (or the last one: a malformed APDU breaks its chain). */
  private current: LogicalChannel;
  private lastErr: CardErrorInfo | undefined;
  private closedFlag = false;

  constructor(private readonly opts: CardOsOptions) {
    if (opts.applets.length === 0) throw new RangeError('a card OS needs at least one applet');
    if (!opts.applets[0]!.table) throw new RangeError('the default applet must have a command table');
    for (const a of opts.applets) {
      if (a.aid.length < 5 || a.aid.length > 16) throw new RangeError(`applet ${a.name}: an AID is 5 to 16 bytes`);
      if (opts.applets.some((b) => b !== a && equalBytes(a.aid, b.aid))) throw new RangeError(`two applets with the AID of ${a.name}`);
      if (a.table) this.tables.set(a, new CompiledTable(a.table));
      else if (!a.process) throw new RangeError(`applet ${a.name} has neither a command table nor process()`);
    }
    this.applets = opts.applets;
    this.channels = new Array<LogicalChannel | undefined>(opts.maxChannels).fill(undefined);
    this.current = this.channels[0] = new LogicalChannel(0);
  }

  /** Logical channels the card keeps open at most (channel 0 included). */
  get maxChannels(): number {
    return this.channels.length;
  }

  /** The numbers of the open logical channels (0 first). */
  get openChannels(): number[] {
    return this.channels.flatMap((c, i) => (c ? [i] : []));
  }

  /** The last error turned into a status word by `process` (undefined after a success). */
  get lastError(): CardErrorInfo | undefined {
    return this.lastErr;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /**
   * Processes one command APDU and returns the response APDU (data ‖ SW1 SW2) as a fresh array
   * (own ArrayBuffer, byteOffset 0). Never throws: errors become status words, unexpected ones 6F00.
   */
  process(apdu: Uint8Array): Uint8Array {
    let reply: Reply;
    const input = apdu instanceof Uint8Array ? freshCopy(apdu) : undefined;
    try {
      if (!input) throw cardErr.length('an APDU is a Uint8Array');
      if (this.closedFlag) throw new CardError('ERR_CARD_CLOSED', 'the card was closed', SW.conditionsNotSatisfied);
      reply = this.processApdu(input);
      this.lastErr = undefined;
    } catch (e) {
      const sw = e instanceof CardError || e instanceof ApduError ? e.sw : SW.internalError;
      this.lastErr = {
        code: e instanceof SetlsError ? e.code : 'ERR_CARD_INTERNAL',
        message: e instanceof Error ? e.message : String(e),
        sw,
      };
      reply = { data: EMPTY, sw };
    } finally {
      wipe(input);
      this.opts.afterApdu?.();
    }
    const out = encodeResponse(reply.data, reply.sw); // a fresh array (own ArrayBuffer, byteOffset 0)
    wipe(reply.data);
    return out;
  }

  /**
   * Card reset: every channel but 0 closed, channel 0 cleared (nothing selected), every applet's
   * transient state wiped, then every applet's `powerOn`.
   */
  reset(): void {
    for (let n = 1; n < this.channels.length; n++) this.closeChannel(n);
    const ch0 = this.channels[0]!;
    this.current = ch0;
    this.clearChannel(ch0);
    for (const a of this.applets) a.powerOn?.();
    this.opts.afterReset?.();
  }

  /** Power off for good: a reset, then every applet's `close()`; `process` answers 6985 afterwards. */
  close(): void {
    if (this.closedFlag) return;
    this.reset();
    for (const a of this.applets) a.close?.();
    this.closedFlag = true;
  }

  private clearChannel(ch: LogicalChannel): void {
    for (const a of this.applets) a.reset(ch);
    ch.clear();
  }

  private closeChannel(n: number): void {
    const ch = this.channels[n];
    if (!ch) return;
    this.clearChannel(ch);
    this.channels[n] = undefined;
  }

  private processApdu(input: Uint8Array): Reply {
    let parsed;
    try {
      parsed = parseCommand(input);
    } catch (e) {
      this.current.dropChain();
      this.current.dropPending();
      throw e;
    }
    const cls = decodeCla(parsed.cla);
    const cmd: AppletCommand = { cla: parsed.cla, ins: parsed.ins, p1: parsed.p1, p2: parsed.p2, data: parsed.data, ne: parsed.ne, extended: parsed.extended === true, cls, raw: input };
    try {
      if (!cls) {
        // No channel coding: answered on the basic channel (as before channels existed).
        this.current = this.channels[0]!;
        return this.dispatch(this.current, cmd);
      }
      const ch = cls.channel < this.channels.length ? this.channels[cls.channel] : undefined;
      if (!ch) throw new CardError('ERR_CARD_CHANNEL', `logical channel ${cls.channel} is not open`, Channels.swChannelNotSupported);
      this.current = ch;
      if (isPlainIso(cmd) && cmd.ins === Channels.insManageChannel) return this.manageChannel(ch, cmd);
      return this.dispatch(ch, cmd);
    } finally {
      wipe(cmd.data);
    }
  }

  /** Routes a command to the applet selected on `ch` (or the default applet, unselected). */
  private dispatch(ch: LogicalChannel, cmd: AppletCommand): Reply {
    const applet = ch.applet ?? this.applets[0]!;
    const plainIso = isPlainIso(cmd);
    if (ch.applet && this.opts.admit && !(plainIso && (cmd.ins === Ins.select || cmd.ins === Ins.getResponse))) {
      try {
        this.opts.admit(ch.applet, 'command');
      } catch (e) {
        ch.dropChain();
        ch.dropPending();
        throw e;
      }
    }
    const table = this.tables.get(applet);
    if (table) return dispatchTable(ch, applet, table, ch.applet === applet, cmd, (c, s) => this.select(c, s));
    // A raw applet (selected): SELECT stays the OS's.
    if (applet.responses !== 'os') {
      // Its own output chaining: no chain or pending response of the OS.
      if (plainIso && cmd.ins === Ins.select) return respond(ch, cmd, this.select(ch, cmd));
      return applet.process!(cmd, ch);
    }
    // The OS cuts its replies to Ne and answers GET RESPONSE from them (61xx).
    if (plainIso && cmd.ins === Ins.getResponse) return getResponse(ch, cmd);
    ch.dropPending();
    if (plainIso && cmd.ins === Ins.select) return respond(ch, cmd, this.select(ch, cmd));
    return respond(ch, cmd, applet.process!(cmd, ch));
  }

  /**
   * SELECT by AID: P1 04 (others, e.g. OpenSC's probes by FID or path → 6A82), P2 00 or 0C. An
   * unknown AID (6A82) or an applet that refuses leaves the channel's selection as it was.
   */
  private select(ch: LogicalChannel, cmd: AppletCommand): Reply {
    if (cmd.p1 !== SelectP1.byAid) throw new CardError('ERR_CARD_NOT_FOUND', 'only SELECT by AID is supported', SW.notFound);
    if (cmd.p2 !== SelectP2.answer && cmd.p2 !== SelectP2.noAnswer) throw cardErr.p1p2('SELECT P2 must be 00 or 0C');
    const applet = this.applets.find((a) => equalBytes(cmd.data, a.aid));
    if (!applet) throw new CardError('ERR_CARD_NOT_FOUND', 'unknown AID', SW.notFound);
    this.opts.admit?.(applet, 'select');
    const reply = applet.select(ch, cmd.p2);
    const prev = ch.applet;
    if (prev && prev !== applet) prev.deselect(ch);
    ch.applet = applet;
    return reply;
  }

  /**
   * MANAGE CHANNEL (interindustry class only). Open: P1 00, P2 00 → the lowest free channel, its
   * number as the one data byte; P2 = n → opens channel n (no data). Close: P1 80, P2 = n (P2 00:
   * the channel in CLA). Like any other command it breaks a chain and drops the pending response of
   * the channel it arrives on. A channel opened from channel 0 starts with nothing selected; one
   * opened from another channel starts with the same applet selected (ISO 7816-4), PIN not verified.
   */
  private manageChannel(ch: LogicalChannel, cmd: AppletCommand): Reply {
    if (ch.chain) throw breakChain(ch);
    ch.dropPending();
    if (cmd.data.length !== 0) throw cardErr.length('MANAGE CHANNEL takes no data');
    if (cmd.p1 === Channels.open) {
      let n = cmd.p2;
      if (n === 0) {
        n = this.channels.findIndex((c) => !c);
        if (n < 0) throw new CardError('ERR_CARD_NO_CHANNEL', `all ${this.channels.length} logical channels are open`, Channels.swNoChannelLeft);
      } else {
        if (n >= Channels.limit) throw cardErr.p1p2(`no logical channel ${n}`);
        if (n >= this.channels.length) throw new CardError('ERR_CARD_NO_CHANNEL', `the card keeps at most ${this.channels.length} logical channels`, Channels.swNoChannelLeft);
        if (this.channels[n]) throw cardErr.p1p2(`logical channel ${n} is already open`);
      }
      const opened = (this.channels[n] = new LogicalChannel(n));
      if (ch.number !== 0 && ch.applet) {
        try {
          this.opts.admit?.(ch.applet, 'select');
          ch.applet.select(opened, SelectP2.noAnswer);
        } catch (e) {
          this.closeChannel(n);
          throw e;
        }
        opened.applet = ch.applet;
      }
      if (cmd.p2 !== 0) return { data: EMPTY, sw: SW.ok };
      return respond(ch, cmd, { data: Uint8Array.of(n), sw: SW.ok });
    }
    if (cmd.p1 === Channels.close) {
      const n = cmd.p2 === 0 ? ch.number : cmd.p2;
      if (n === 0) throw cardErr.p1p2('the basic channel cannot be closed');
      if (n >= this.channels.length) throw cardErr.p1p2(`no logical channel ${n}`);
      if (!this.channels[n]) throw new CardError('ERR_CARD_CHANNEL', `logical channel ${n} is not open`, Channels.swChannelNotSupported);
      this.closeChannel(n);
      this.current = this.channels[0]!;
      return { data: EMPTY, sw: SW.ok };
    }
    throw cardErr.p1p2('MANAGE CHANNEL P1 must be 00 (open) or 80 (close)');
  }
}

/** An interindustry class without secure messaging or ISO chaining (what MANAGE CHANNEL and SELECT use). */
function isPlainIso(cmd: AppletCommand): boolean {
  return cmd.cls !== undefined && cmd.cls.kind === 'iso' && !cmd.cls.sm && !cmd.cls.chaining;
}
