/**
 * card/os/applet: what an applet is to the card OS — the `Applet` interface, the command it
 * receives (raw class byte, decoded class, channel), the channel context it acts on, and the command
 * table a table-driven applet declares, which the OS checks before it calls a handler
 * (docs/architecture.md "The card: an OS and its applets"). Types only; imports apdu/, protocol/.
 */
import type { CommandApdu } from '../../apdu/index.js';
import type { ClaKind, DecodedCla } from '../../protocol/index.js';

/** An applet's answer: response data and status word (the OS applies Ne and 61xx chaining). */
export interface Reply {
  readonly data: Uint8Array;
  readonly sw: number;
}

/** A command as the OS hands it to an applet. */
export interface AppletCommand extends CommandApdu {
  /** The raw class byte (channel bits included) is `cla`; this is its reading (undefined: no channel coding). */
  readonly cls: DecodedCla | undefined;
  /**
   * The command APDU exactly as received (short or extended coding: what a secure-messaging MAC covers).
   * Valid during the call only: the OS wipes it afterwards. For a reassembled chain, the last segment.
   */
  readonly raw: Uint8Array;
}

/**
 * A logical channel as applets see it: its number and the card-level transient state every applet
 * of the channel shares, which the OS clears at reset and channel close.
 */
export interface ChannelContext {
  /** 0–19. */
  readonly number: number;
  /** ISO 7816-4 security status of the channel: which card PINs were verified on it (PinService sets these). */
  readonly verified: { user: boolean; operator: boolean };
  /** The default identity chosen on this channel (SET-IDENTITY), read by every applet that serves TLS. */
  defaultIdentity: string | undefined;
}

/**
 * Who may run a command: no PIN, the user or operator PIN verified on the channel, or a custom rule
 * that throws a CardError (e.g. an open secure channel) and returns otherwise.
 */
export type AccessRule = 'none' | 'user' | 'operator' | ((cmd: AppletCommand, ch: ChannelContext) => void);

/** One command of a command table. */
export interface CommandSpec {
  readonly ins: number;
  /** The class the command belongs to (the channel bits of CLA are the OS's). */
  readonly cla: ClaKind;
  /** For messages: e.g. 'VERIFY-PIN'. */
  readonly name: string;
  readonly access: AccessRule;
  /** Whether P1/P2 are valid for this command (6A86 otherwise). */
  readonly p1p2: (p1: number, p2: number) => boolean;
  /**
   * Command segmentation the OS reassembles before the handler runs: `'p1-more'` = P1 bit 0 is More
   * (setls, S1 §9.2): segments are answered 9000 and the handler gets the whole data once. (ISO
   * CLA-bit-0x10 chaining would be a second value here.)
   */
  readonly chaining?: 'p1-more';
  /**
   * Runs the command: `data` is the (reassembled) command data; the OS wipes it afterwards. Throws
   * CardError for an error status word. Its reply data is the OS's to send and wipe.
   */
  readonly handler: (cmd: AppletCommand, data: Uint8Array, ch: ChannelContext) => Reply;
}

/** A table-driven applet's commands and the classes it accepts (others: 6E00). */
export interface CommandTable {
  /** The classes (with no secure messaging or ISO chaining indicated) this applet's channel accepts. */
  readonly classes: readonly ClaKind[];
  readonly commands: readonly CommandSpec[];
}

/**
 * An applet behind the card OS. The OS handles SELECT by AID, MANAGE CHANNEL, and — for applets
 * with a `table` — command chaining, GET RESPONSE/61xx and the table's checks (class, INS,
 * selection, P1/P2, access) before the handler runs; `process` then is never called. An applet
 * without a table gets every other APDU of a channel where it is selected in `process` and answers
 * it whole (its own output chaining: Urien's TLS-SE applet).
 */
export interface Applet {
  /** 5–16 bytes. */
  readonly aid: Uint8Array;
  /** For messages and diagnostics: 'setls', 'tls-se', 'isd'. */
  readonly name: string;
  readonly table?: CommandTable;
  /**
   * A raw applet (no `table`) whose replies the OS cuts to Ne like a table-driven applet's (`61xx`,
   * GET RESPONSE / FETCH answered by the OS, `6Cxx`): 'os'. Absent: the applet chains its own output
   * (Urien's TLS-SE applet, `9Fxx`) and gets GET RESPONSE in `process`.
   */
  readonly responses?: 'os';
  /**
   * SELECT by this AID on `ch` (P2 00: with answer data, 0C: without). Throws CardError to refuse
   * (e.g. a locked applet): the channel's selection is then unchanged. Also called (answer ignored)
   * when a channel is opened from a channel where this applet is selected.
   */
  select(ch: ChannelContext, p2: number): Reply;
  /** Another applet was selected on `ch`. */
  deselect(ch: ChannelContext): void;
  /** Raw applets (no `table`): every APDU but SELECT / MANAGE CHANNEL of a channel where it is selected. */
  process?(cmd: AppletCommand, ch: ChannelContext): Reply;
  /** Card reset or channel close: wipe this applet's transient state of `ch` (selected or not). */
  reset(ch: ChannelContext): void;
  /**
   * The card was reset (a power cycle for the applet's RAM: `EmulatedCard.reset`, a vpcd reconnect),
   * after every channel's `reset`: card-wide transient state (e.g. the security domain's count of
   * failed authentications) starts again.
   */
  powerOn?(): void;
  /** The card is closed for good: wipe everything the applet holds. */
  close?(): void;
}
