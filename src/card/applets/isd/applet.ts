/**
 * card/applets/isd/applet: `IsdApplet`, setls's security domain (AID A0 00 00 01 51 00 00 00) as
 * the card OS sees it — APDU in, APDU out, on any logical channel: `select(channel)` (FCI),
 * `process(apdu, channel)`, `reset(channel)` (deselect, channel closed), `powerOn()`.
 * imports bytes/, gp/, gp/admin, isd siblings.
 *
 * One SCP03 session per channel (gp Scp03Card, i = 70, S8). INITIALIZE UPDATE takes the stored
 * sequence counter c, commits c + 1 (one transaction) BEFORE answering — on every INITIALIZE UPDATE
 * that gets past the back-off gate, failed ones included — and derives the card challenge from c
 * and the challenge AID. Once the counter is exhausted the card answers with random card
 * challenges (i = 60) instead of refusing: the admin channel never dies of it.
 *
 * Back-off ("never brick the admin channel"): F counts, in RAM, the INITIALIZE UPDATEs of this
 * power cycle not followed by a successful EXTERNAL AUTHENTICATE on their channel. While F ≥ 16
 * every INITIALIZE UPDATE answers 6985, without a challenge and without touching the counter,
 * until the next power-on (F = 0). Nothing is ever locked for good: after any number of failed
 * attempts, a power cycle and the right keys open a session.
 *
 * Zero-touch enrolment: while SECURED without an operator root anchor, the enrolment functions also
 * run without secure messaging (store-data.ts), at most maxPlainKeyGenerations key generations per
 * power cycle (RAM counter, zeroed at power-on like F).
 *
 * Every command after EXTERNAL AUTHENTICATE is unwrapped by the channel's session (a bad C-MAC,
 * an unprotected or reordered command aborts it: 6982, then 6985 until the next INITIALIZE UPDATE);
 * the handler's answer is wrapped (R-ENC, R-MAC; error SWs go out bare). A handler's refusal is a
 * status word; any other exception (a failed or cut write) ends the channel's session and is
 * rethrown to the card OS.
 */
import { concat, wipe } from '../../../bytes/index.js';
import { AuditEvent, CardLifecycle, COUNTER_EXHAUSTED, ISD_AID, IsdIns, IsdLimits, IsdSw } from '../../../gp/admin/constants.js';
import { Scp03Card, type Scp03CardState } from '../../../gp/card.js';
import { parseCla } from '../../../gp/cla.js';
import { parseCommandApdu, type RawCommand } from '../../../gp/command-apdu.js';
import { StoreDataAssembler } from '../../../gp/store-data.js';
import { encodeSequenceCounter } from '../../../gp/session-keys.js';
import { appendAudit } from './audit-log.js';
import { EMPTY, type CommandContext, type IsdResponse } from './context.js';
import { IsdRefusal, refuse } from './errors.js';
import { fci, getData } from './get-data.js';
import type { IsdPlatform } from './platform.js';
import { putKey } from './put-key.js';
import { getStatus, setStatus } from './status.js';
import { plainAllowed, storeData } from './store-data.js';

export type { IsdResponse } from './context.js';

export interface IsdOptions {
  /**
   * The AID in the pseudo-random card challenge's KDF context (default: the ISD AID). Tests that
   * reproduce pySim's vectors use the eUICC ISD-R AID they were recorded with.
   */
  readonly challengeAid?: Uint8Array;
  /** F, the failed authentications per power cycle before INITIALIZE UPDATE answers 6985 (default 16). */
  readonly maxFailedAuths?: number;
  /** Key generations without secure messaging per power cycle before 6983 (default 4). */
  readonly maxPlainKeyGenerations?: number;
}

/** Pseudo-random challenge, R-MAC, R-ENC, S8; and the fallback once the counter is exhausted. */
const I_PSEUDO = 0x70;
const I_RANDOM = 0x60;

class ChannelState {
  scp: Scp03Card | undefined;
  kvn: number | undefined;
  dek: Uint8Array | undefined;
  counter = 0;
  /** This channel's last INITIALIZE UPDATE is counted in F until its EXTERNAL AUTHENTICATE succeeds. */
  counted = false;
  readonly storeData = new StoreDataAssembler(IsdLimits.maxStoreData);

  end(): void {
    this.scp?.reset();
    this.scp = undefined;
    this.kvn = undefined;
    wipe(this.dek);
    this.dek = undefined;
    this.counted = false;
    this.storeData.reset();
  }
}

function answer(wire: Uint8Array): IsdResponse {
  return { data: wire.slice(0, wire.length - 2), sw: (wire[wire.length - 2]! << 8) | wire[wire.length - 1]! };
}

const swOnly = (sw: number): IsdResponse => ({ data: EMPTY, sw });

export class IsdApplet {
  readonly aid = ISD_AID;
  private readonly channels = new Map<number, ChannelState>();
  private failed = 0;
  /** Key generations without secure messaging in this power cycle (zero-touch enrolment). */
  private plainKeyGenerations = 0;
  private readonly maxPlainKeyGenerations: number;
  private readonly challengeAid: Uint8Array;
  private readonly maxFailed: number;

  constructor(
    private readonly platform: IsdPlatform,
    opts: IsdOptions = {},
  ) {
    this.challengeAid = opts.challengeAid ?? ISD_AID;
    this.maxFailed = opts.maxFailedAuths ?? IsdLimits.failedAuthsPerPowerCycle;
    this.maxPlainKeyGenerations = opts.maxPlainKeyGenerations ?? IsdLimits.plainKeyGenerationsPerPowerCycle;
  }

  /** Failed authentications counted in this power cycle (F). */
  get failedAuths(): number {
    return this.failed;
  }

  /** The SCP03 session state of a channel ('idle' when none). */
  sessionState(channel: number): Scp03CardState {
    return this.channels.get(channel)?.scp?.state ?? 'idle';
  }

  /** Power-on (and cold or warm reset): every session gone, F = 0. */
  powerOn(): void {
    for (const ch of this.channels.values()) ch.end();
    this.channels.clear();
    this.failed = 0;
    this.plainKeyGenerations = 0;
  }

  /** The channel's session and STORE DATA sequence end (deselect, MANAGE CHANNEL close). */
  reset(channel: number): void {
    this.channels.get(channel)?.end();
    this.channels.delete(channel);
  }

  /** SELECT by AID on `channel`: a fresh start there, and the FCI. */
  select(channel: number): IsdResponse {
    this.reset(channel);
    return { data: fci(this.aid), sw: IsdSw.ok };
  }

  private channel(n: number): ChannelState {
    let ch = this.channels.get(n);
    if (!ch) {
      ch = new ChannelState();
      this.channels.set(n, ch);
    }
    return ch;
  }

  /** One command APDU for this applet on `channel` (SELECT, MANAGE CHANNEL, GET RESPONSE are the OS's). */
  process(apdu: Uint8Array, channel: number): IsdResponse {
    if (apdu.length < 4) return swOnly(IsdSw.wrongLength);
    const ch = this.channel(channel);
    const ins = apdu[1]!;
    if (ins === IsdIns.initializeUpdate) return this.initializeUpdate(ch, apdu);
    if (ins === IsdIns.externalAuthenticate) return this.externalAuthenticate(ch, apdu, channel);
    if (!ch.scp) ch.scp = this.newScp(I_PSEUDO, ch); // idle: plain commands pass, SM ones are refused
    const u = ch.scp.unwrapCommand(apdu);
    if (!u.ok) {
      ch.storeData.reset();
      return swOnly(u.sw);
    }
    const scp = ch.scp;
    const ctx: CommandContext = {
      platform: this.platform,
      channel,
      secured: u.secured,
      level: u.secured ? scp.securityLevel : 0,
      plain: plainAllowed({ platform: this.platform, secured: u.secured }),
      kvn: ch.kvn,
      dek: ch.dek,
      failedAuths: this.failed,
      endSessionsOfKvn: (kvn) => {
        for (const [n, other] of this.channels) if (n !== channel && other.kvn === kvn) other.end();
      },
    };
    let r: IsdResponse;
    try {
      r = this.dispatch(ctx, u.command, ch);
    } catch (e) {
      if (!(e instanceof IsdRefusal)) {
        ch.end();
        throw e;
      }
      r = swOnly(e.sw);
    }
    if (r.sw !== IsdSw.ok && u.command.ins === IsdIns.storeData) ch.storeData.reset();
    const wire = scp.wrapResponse(r.data, r.sw);
    return answer(wire);
  }

  private dispatch(ctx: CommandContext, c: RawCommand, ch: ChannelState): IsdResponse {
    if (c.ins !== IsdIns.storeData) ch.storeData.reset(); // another command breaks a STORE DATA sequence
    const gp = (c.cla & 0x80) !== 0;
    switch (c.ins) {
      case IsdIns.getData:
        return getData(ctx, c);
      case IsdIns.getStatus:
        if (!gp) break;
        return getStatus(ctx, c);
      case IsdIns.setStatus:
        if (!gp) break;
        return setStatus(ctx, c);
      case IsdIns.putKey:
        if (!gp) break;
        return putKey(ctx, c);
      case IsdIns.storeData:
        if (!gp) break;
        return storeData(ctx, c, ch.storeData, {
          left: () => this.plainKeyGenerations < this.maxPlainKeyGenerations,
          spend: () => {
            this.plainKeyGenerations++;
          },
        });
      default:
        return refuse(IsdSw.insNotSupported, `INS ${c.ins.toString(16)}`);
    }
    return refuse(IsdSw.claNotSupported, 'GlobalPlatform class (80–83, C0–CF) expected');
  }

  private newScp(i: number, ch: ChannelState): Scp03Card {
    const r = this.platform.record();
    return new Scp03Card({
      sdAid: this.challengeAid,
      i,
      keyDiversificationData: r.uid ? r.uid.subarray(0, 10) : new Uint8Array(10),
      random: (n) => this.platform.random(n),
      lookupKeys: (kvn) => {
        const sets = this.platform.record().keySets;
        const k = kvn === 0 ? sets[0] : sets.find((s) => s.kvn === kvn);
        ch.kvn = k?.kvn;
        wipe(ch.dek);
        ch.dek = k?.dek.slice();
        return k;
      },
    });
  }

  private initializeUpdate(ch: ChannelState, apdu: Uint8Array): IsdResponse {
    ch.end();
    // Not an INITIALIZE UPDATE at all (malformed, SM class, P2, S8 challenge length): refused like
    // any malformed command — the counter and F stay as they are.
    const cmd = parseCommandApdu(apdu);
    const info = cmd && parseCla(cmd.cla);
    if (!cmd) return swOnly(IsdSw.wrongLength);
    if (!info || info.sm || !info.proprietary) return swOnly(IsdSw.claNotSupported);
    if (cmd.p2 !== 0x00) return swOnly(IsdSw.wrongP1P2);
    if (cmd.data.length !== 8) return swOnly(IsdSw.wrongLength);
    const r = this.platform.record();
    if (r.lifecycle === CardLifecycle.opReady) return swOnly(IsdSw.conditionsNotSatisfied);
    if (this.failed >= this.maxFailed) return swOnly(IsdSw.conditionsNotSatisfied);
    this.failed++;
    ch.counted = true;
    const c = r.sequenceCounter;
    if (c < COUNTER_EXHAUSTED) {
      this.platform.transaction((d) => {
        d.record.sequenceCounter = c + 1;
      });
      ch.scp = this.newScp(I_PSEUDO, ch);
      ch.counter = c;
    } else {
      ch.scp = this.newScp(I_RANDOM, ch);
      ch.counter = COUNTER_EXHAUSTED - 1;
    }
    const a = ch.scp.initializeUpdate(apdu, ch.counter);
    if (a.sw !== IsdSw.ok) {
      ch.kvn = undefined;
      wipe(ch.dek);
      ch.dek = undefined;
    }
    return answer(a.response);
  }

  private externalAuthenticate(ch: ChannelState, apdu: Uint8Array, channel: number): IsdResponse {
    ch.storeData.reset();
    if (!ch.scp) return swOnly(IsdSw.conditionsNotSatisfied);
    const a = ch.scp.externalAuthenticate(apdu);
    if (a.sw !== IsdSw.ok) {
      ch.counted = false; // stays counted in F
      return answer(a.response);
    }
    if (ch.counted) {
      this.failed--;
      ch.counted = false;
    }
    const level = ch.scp.securityLevel;
    try {
      this.platform.transaction((d) => {
        appendAudit(d.record, this.platform.now(), AuditEvent.adminSessionOpened, concat(Uint8Array.of(ch.kvn ?? 0, level), encodeSequenceCounter(ch.counter), Uint8Array.of(channel)));
      });
    } catch (e) {
      ch.end();
      throw e;
    }
    return answer(a.response);
  }
}
