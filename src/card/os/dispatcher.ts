/**
 * card/os/dispatcher: the card OS's command services for table-driven applets — the checks of a
 * command table (class, INS, selection, P1/P2, access), command segmentation (P1 More) reassembled
 * before the handler runs, and response chaining (Ne, 61xx, GET RESPONSE / FETCH, 6Cxx), all per
 * logical channel (docs/apdu-protocol.md §1).
 *
 * Check order (unchanged from the one-applet card): chain, class, GET RESPONSE, SELECT, INS,
 * selection, P1/P2, access, chain flags, lengths and data (the handler).
 *
 * Secrets: reassembled command data (wiped once the handler returns) and the response data handed to
 * `respond` (kept as the channel's pending response, wiped when read or dropped).
 * imports bytes/, apdu/, protocol/ and card/.
 */
import { concat, wipe } from '../../bytes/index.js';
import { PendingResponse, SW } from '../../apdu/index.js';
import { Ins, P1_MORE, type ClaKind, type DecodedCla } from '../../protocol/index.js';
import { Limits } from '../constants.js';
import { CardError, cardErr } from '../errors.js';
import type { Applet, AppletCommand, CommandSpec, CommandTable, Reply } from './applet.js';
import type { LogicalChannel } from './channel.js';

const EMPTY = new Uint8Array(0);
const KINDS: readonly ClaKind[] = ['iso', 'proprietary', 'gp'];

/** A command table indexed by class and INS. */
export class CompiledTable {
  private readonly byKind: (CommandSpec | undefined)[][] = KINDS.map(() => new Array<CommandSpec | undefined>(256).fill(undefined));
  private readonly classes: ReadonlySet<ClaKind>;

  constructor(table: CommandTable) {
    this.classes = new Set(table.classes);
    for (const c of table.commands) {
      const row = this.byKind[KINDS.indexOf(c.cla)]!;
      if (row[c.ins]) throw new Error(`two commands with class ${c.cla} and INS ${c.ins.toString(16)}`);
      row[c.ins] = c;
    }
  }

  /** Whether the channel's applet takes this class at all (plain classes: no SM, no ISO chaining). */
  accepts(cls: DecodedCla | undefined): cls is DecodedCla {
    return cls !== undefined && !cls.sm && !cls.chaining && this.classes.has(cls.kind);
  }

  lookup(kind: ClaKind, ins: number): CommandSpec | undefined {
    return this.byKind[KINDS.indexOf(kind)]![ins];
  }
}

function chainBroken(ch: LogicalChannel, why: string): CardError {
  ch.dropChain();
  return new CardError('ERR_CARD_CHAIN', why, SW.lastCommandOfChainExpected);
}

/** Whether `cmd` may continue the channel's chain (same CLA, INS and P2). */
export function continuesChain(ch: LogicalChannel, cmd: AppletCommand): boolean {
  const c = ch.chain!;
  return cmd.cla === c.cla && cmd.ins === c.ins && cmd.p2 === c.p2;
}

/** A chain the command breaks: dropped with the pending response, 6883. */
export function breakChain(ch: LogicalChannel): CardError {
  ch.dropPending();
  return chainBroken(ch, 'command chain broken by a different command');
}

/**
 * Runs `cmd` through a table-driven applet on `ch` (`selected`: the applet was SELECTed there, not
 * just the card's default applet answering on an unselected channel). `select` is the OS's SELECT.
 */
export function dispatchTable(
  ch: LogicalChannel,
  applet: Applet,
  table: CompiledTable,
  selected: boolean,
  cmd: AppletCommand,
  select: (ch: LogicalChannel, cmd: AppletCommand) => Reply,
): Reply {
  if (ch.chain && !continuesChain(ch, cmd)) throw breakChain(ch);
  const cls = cmd.cls;
  if (!table.accepts(cls)) {
    ch.dropPending();
    throw new CardError('ERR_CARD_CLA', `CLA 0x${cmd.cla.toString(16)} not supported`, SW.claNotSupported);
  }
  if (cmd.ins === Ins.getResponse || cmd.ins === Ins.fetch) return getResponse(ch, cmd);
  ch.dropPending();
  if (cls.kind === 'iso' && cmd.ins === Ins.select) return respond(ch, cmd, select(ch, cmd));
  const spec = table.lookup(cls.kind, cmd.ins);
  try {
    if (!spec) throw new CardError('ERR_CARD_INS', `INS 0x${cmd.ins.toString(16)} not supported${cls.kind === 'iso' ? ' with CLA 00' : ''}`, SW.insNotSupported);
    if (!selected) throw cardErr.conditions(`the ${applet.name} applet is not selected`);
    if (!spec.p1p2(cmd.p1, cmd.p2)) throw cardErr.p1p2(`P1/P2 ${cmd.p1.toString(16)}/${cmd.p2.toString(16)} invalid for INS 0x${cmd.ins.toString(16)}`);
    const access = spec.access;
    if (typeof access === 'function') access(cmd, ch);
    else if (access !== 'none' && !ch.verified[access]) throw cardErr.security(`${access} PIN not verified`);
  } catch (e) {
    ch.dropChain();
    throw e;
  }
  const segmented = spec.chaining === 'p1-more';
  if (ch.chain && (cmd.p1 & ~P1_MORE) !== ch.chain.p1) {
    // Same command, other flags (PROCESS-EAP START/INFO): a different command breaks the chain.
    throw chainBroken(ch, 'command chain broken by different P1 flags');
  }
  let data = cmd.data;
  if (segmented && (cmd.p1 & P1_MORE) !== 0) {
    const c = ch.chain ?? { cla: cmd.cla, ins: cmd.ins, p1: cmd.p1 & ~P1_MORE, p2: cmd.p2, parts: [], total: 0 };
    c.total += data.length;
    ch.chain = c;
    if (c.total > Limits.maxChain) {
      ch.dropChain();
      throw cardErr.length(`command chain longer than ${Limits.maxChain} bytes`);
    }
    c.parts.push(data.slice());
    return { data: EMPTY, sw: SW.ok };
  }
  if (ch.chain) {
    if (ch.chain.total + data.length > Limits.maxChain) {
      ch.dropChain();
      throw cardErr.length(`command chain longer than ${Limits.maxChain} bytes`);
    }
    data = concat(...ch.chain.parts, data);
    ch.dropChain();
  }
  try {
    return respond(ch, cmd, spec.handler(cmd, data, ch));
  } finally {
    if (data !== cmd.data) wipe(data);
  }
}

/** Applies Ne: the whole reply when it fits, else Ne bytes and 61xx, the rest pending (Ne = 0: no data, 61xx). */
export function respond(ch: LogicalChannel, cmd: AppletCommand, r: Reply): Reply {
  if (r.data.length === 0) return r;
  if (r.data.length <= cmd.ne) return r;
  const p = new PendingResponse(r.data.slice(), r.sw);
  wipe(r.data);
  const first = p.take(cmd.ne);
  if (p.remaining > 0) ch.pending = p;
  return first;
}

/** GET RESPONSE / FETCH: the next Ne bytes of the channel's pending response; no Le: 6Cxx. */
export function getResponse(ch: LogicalChannel, cmd: AppletCommand): Reply {
  if (cmd.p1 !== 0 || cmd.p2 !== 0) throw cardErr.p1p2('GET RESPONSE takes P1 = P2 = 00');
  if (cmd.data.length !== 0) throw cardErr.length('GET RESPONSE takes no data');
  const p = ch.pending;
  if (!p) throw cardErr.conditions('no response data pending');
  if (cmd.ne === 0) {
    // No Le: tell the host how many bytes to ask for (the data stays pending).
    return { data: EMPTY, sw: SW.wrongLe | (p.remaining >= 256 ? 0 : p.remaining) };
  }
  const r = p.take(cmd.ne);
  if (p.remaining === 0) ch.dropPending();
  return r;
}
