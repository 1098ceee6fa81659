/**
 * MaliciousAgent: a device agent that lies, for integrity tests (issue #13 acceptance: "a malicious
 * agent … makes the job fail with `integrity` and changes nothing in the card"; design O2–O4).
 *
 * It speaks setls-remote-admin/1 exactly like the real agent (same OperatorClient, same channel
 * handling, same CLA move) but applies TamperRules between the operator and the card:
 *
 *   rules: [{ script: 2, tamper: { kind: 'flip', apdu: 1, byte: 7, mask: 0x01 } }]
 *
 * `script` is the 1-based number of the script in the order this agent received them (all dialogs),
 * or a predicate on the script; `apdu` is the 0-based index of a C-APDU (R-APDU) in that script.
 * Command tampering (what reaches the card):
 *   flip       XOR byte `byte` (1.. = after CLA; CLA itself is the channel's) of C-APDU `apdu` with `mask`
 *   drop       C-APDU `apdu` never reaches the card; the operator is told `forge` (default 9000)
 *   duplicate  C-APDU `apdu` is sent twice; the operator gets the second answer
 *   swap       C-APDUs `a` and `b` are sent in each other's place (answers reported in sent order)
 *   replay     the C-APDUs recorded from script `from` (or the list `from`, e.g. recorded by another
 *              instance before a restart) are sent instead of this script's
 *   inject     `capdu` (channel-0 form) is sent before C-APDU `apdu`; its answer is hidden
 * Answer tampering (what the operator is told; the card ran the script honestly):
 *   flip-response    XOR byte `byte` of R-APDU `apdu` with `mask`
 *   drop-response    R-APDU `apdu` is left out of the report
 *   forge-response   R-APDU `apdu` is replaced by `rapdu`
 *   withhold         no answer at all: the agent stalls until stopped (the operator's deadline expires)
 * Every script is recorded (`scripts`): what the operator sent, what reached the card, what the card
 * answered and what the operator was told. `replayToCard(scripts)` sends recorded C-APDUs to the card
 * again, outside any dialog (a recorded session replayed later, O2).
 *
 * By default it stops at the first error status word, as the real agent; `continueAfterErrors` sends
 * every command whatever the card answered (the card must refuse each one on its own).
 */
import { AgentCard, OperatorClient, executeScript, isMovableCla, type AdminChannel, type DeliveredScript, type OperatorAnswer } from '../../src/agent/index.js';
import { toHex } from '../../src/bytes/index.js';
import { ScriptStatus, type ScriptStatus as Status } from '../../src/relay/index.js';
import type { CardClient } from '../../src/host/card-client.js';
import type { CardTransport } from '../../src/transport/index.js';

export type Tamper =
  | { readonly kind: 'flip'; readonly apdu: number; readonly byte: number; readonly mask: number }
  | { readonly kind: 'drop'; readonly apdu: number; readonly forge?: Uint8Array }
  | { readonly kind: 'duplicate'; readonly apdu: number }
  | { readonly kind: 'swap'; readonly a: number; readonly b: number }
  | { readonly kind: 'replay'; readonly from: number | readonly Uint8Array[] }
  | { readonly kind: 'inject'; readonly apdu: number; readonly capdu: Uint8Array }
  | { readonly kind: 'flip-response'; readonly apdu: number; readonly byte: number; readonly mask: number }
  | { readonly kind: 'drop-response'; readonly apdu: number }
  | { readonly kind: 'forge-response'; readonly apdu: number; readonly rapdu: Uint8Array }
  | { readonly kind: 'withhold' };

export interface SeenScript {
  /** 1-based, in the order received. */
  readonly index: number;
  readonly uid: string;
  readonly aid: string;
  /** As the operator sent them (channel-0 form). */
  readonly capdus: readonly Uint8Array[];
}

export interface TamperRule {
  readonly script: number | ((s: SeenScript) => boolean);
  readonly tamper: Tamper;
}

export interface RecordedScript extends SeenScript {
  /** What reached the card, in order (channel-0 form; the channel bits are added on the way). */
  readonly sent: Uint8Array[];
  /** The card's answers to `sent`. */
  readonly fromCard: Uint8Array[];
  /** What the operator was told (undefined: withheld). */
  reported?: Uint8Array[];
  status?: Status;
  /** The tampers applied. */
  readonly applied: Tamper[];
}

export interface MaliciousAgentOptions {
  readonly operatorUrl: string;
  readonly ca?: string;
  readonly token?: string;
  readonly hostId: string;
  readonly transport: CardTransport;
  /** The card UID (default: GET DATA DF50 on the security domain, as the real agent). */
  readonly uid?: Uint8Array;
  readonly rules?: readonly TamperRule[];
  readonly continueAfterErrors?: boolean;
  readonly log?: (line: string) => void;
}

const ok = (sw: number): boolean => sw === 0x9000 || sw >> 8 === 0x62 || sw >> 8 === 0x63;
const swOf = (r: Uint8Array): number => (r.length >= 2 ? (r[r.length - 2]! << 8) | r[r.length - 1]! : 0);
const hex = (b: Uint8Array): string => toHex(b).toUpperCase();

export class MaliciousAgent {
  readonly scripts: RecordedScript[] = [];
  private readonly client: OperatorClient;
  private readonly card: AgentCard;
  private stopping = false;
  private loop?: Promise<void>;
  private onStop!: () => void;
  private readonly stoppedSignal = new Promise<void>((r) => (this.onStop = r));
  /** Rules added after start apply to scripts received afterwards. */
  readonly rules: TamperRule[];

  private constructor(private readonly o: MaliciousAgentOptions) {
    this.rules = [...(o.rules ?? [])];
    this.client = new OperatorClient({ url: o.operatorUrl, hostId: o.hostId, ...(o.ca ? { ca: o.ca } : {}), ...(o.token ? { token: () => o.token } : {}), requestTimeoutMs: 40_000 });
    const uid = o.uid;
    this.card = new AgentCard({ transport: o.transport, ...(uid ? { uidSource: async () => uid } : {}) });
  }

  static async start(o: MaliciousAgentOptions): Promise<MaliciousAgent> {
    const a = new MaliciousAgent(o);
    if (!(await a.card.prepare())) throw new Error(`the malicious agent cannot use the card: ${a.card.lastError}`);
    a.loop = a.run();
    return a;
  }

  private log(l: string): void {
    this.o.log?.(l);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.onStop();
    this.client.close();
    await this.loop;
    await this.card.close();
  }

  private async run(): Promise<void> {
    let resume = true;
    while (!this.stopping) {
      let a: OperatorAnswer;
      try {
        a = await this.client.poll([this.card.uid!], { agent: 'malicious/1', uptimeS: 0, cards: [{ uid: this.card.uid!, state: 'ready' }] }, resume);
        resume = false;
      } catch (e) {
        if (this.stopping) return;
        this.log(`malicious: poll failed: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (a.kind === 'script') await this.dialog(a.script).catch((e: unknown) => this.log(`malicious: dialog failed: ${(e as Error).message}`));
    }
  }

  private async dialog(first: DeliveredScript): Promise<void> {
    let script: DeliveredScript | undefined = first;
    let ch: AdminChannel | undefined;
    try {
      while (script && !this.stopping) {
        const aid = hex(script.aid);
        if (ch && ch.aid !== aid) {
          await this.card.closeAdminChannel(ch);
          ch = undefined;
        }
        if (!ch) {
          const opened = await this.card.openAdminChannel(script.aid, aid);
          if (!('channel' in opened)) {
            const n = await this.client.answer(script.token, script.uid, opened.status, []);
            script = n.kind === 'script' ? n.script : undefined;
            continue;
          }
          ch = opened.channel;
        }
        const rec = await this.runOne(ch.client, script);
        if (rec.reported === undefined) {
          // Withheld: the agent stalls (no answer, no new poll) until it is stopped.
          await this.stoppedSignal;
          return;
        }
        const n = await this.client.answer(script.token, script.uid, rec.status!, rec.reported);
        script = n.kind === 'script' ? n.script : undefined;
      }
    } finally {
      if (ch) await this.card.closeAdminChannel(ch);
    }
  }

  private async runOne(client: CardClient, s: DeliveredScript): Promise<RecordedScript> {
    const seen: SeenScript = { index: this.scripts.length + 1, uid: hex(s.uid), aid: hex(s.aid), capdus: s.capdus.map((c) => c.slice()) };
    const tampers = this.rules.filter((r) => (typeof r.script === 'number' ? r.script === seen.index : r.script(seen))).map((r) => r.tamper);
    const rec: RecordedScript = { ...seen, sent: [], fromCard: [], applied: tampers };
    this.scripts.push(rec);
    // The plan: what to send, and for each C-APDU of the script which answer to report.
    let plan: { capdu?: Uint8Array; hidden?: boolean; forge?: Uint8Array; twice?: boolean }[] = s.capdus.map((c) => ({ capdu: c.slice() }));
    for (const t of tampers) {
      if (t.kind === 'flip') plan[t.apdu]!.capdu![t.byte]! ^= t.mask;
      else if (t.kind === 'drop') plan[t.apdu] = { forge: t.forge ?? Uint8Array.of(0x90, 0x00) };
      else if (t.kind === 'duplicate') plan[t.apdu] = { ...plan[t.apdu]!, twice: true };
      else if (t.kind === 'swap') [plan[t.a], plan[t.b]] = [plan[t.b]!, plan[t.a]!];
      else if (t.kind === 'replay') {
        const from = typeof t.from === 'number' ? this.scripts.find((x) => x.index === t.from)?.capdus : t.from;
        if (!from) throw new Error(`no recorded script ${String(t.from)} to replay`);
        plan = from.map((c) => ({ capdu: c.slice() }));
      } else if (t.kind === 'inject') plan.splice(t.apdu, 0, { capdu: t.capdu.slice(), hidden: true });
    }
    const report: Uint8Array[] = [];
    for (const step of plan) {
      if (this.stopping) break;
      let answer: Uint8Array;
      if (step.forge) answer = step.forge.slice();
      else {
        answer = await this.send(client, step.capdu!, rec);
        if (step.twice) answer = await this.send(client, step.capdu!, rec);
      }
      if (!step.hidden) report.push(answer);
      if (!this.o.continueAfterErrors && !ok(swOf(answer))) break;
    }
    for (const t of tampers) {
      if (t.kind === 'flip-response' && report[t.apdu]) report[t.apdu]![t.byte]! ^= t.mask;
      else if (t.kind === 'drop-response') report.splice(t.apdu, 1);
      else if (t.kind === 'forge-response') report[t.apdu] = t.rapdu.slice();
    }
    if (tampers.some((t) => t.kind === 'withhold')) return rec;
    rec.reported = report.slice(0, s.capdus.length);
    rec.status = ScriptStatus.ok;
    if (rec.reported.length === 0) rec.reported.push(Uint8Array.of(0x6f, 0x00)); // 'ok' needs one R-APDU
    return rec;
  }

  /** One C-APDU (channel-0 form) to the card, 61xx followed, recorded. */
  private async send(client: CardClient, capdu: Uint8Array, rec: RecordedScript): Promise<Uint8Array> {
    rec.sent.push(capdu.slice());
    // A class the honest agent would refuse is sent as it is (no channel move).
    const r = isMovableCla(capdu[0]!) ? (await executeScript(client, [capdu])).rapdus[0]! : await client.runChain((t) => t(capdu));
    rec.fromCard.push(r.slice());
    return r;
  }

  /**
   * Replays recorded C-APDUs of `indices` (in that order) to the card on a fresh channel to `aid`
   * (default: the first replayed script's), outside any dialog. Returns the card's answers; stops at
   * the first error status word unless `continueAfterErrors`.
   */
  async replayToCard(indices: readonly number[], opts: { aid?: Uint8Array; continueAfterErrors?: boolean } = {}): Promise<Uint8Array[]> {
    const recs = indices.map((i) => {
      const r = this.scripts.find((x) => x.index === i);
      if (!r) throw new Error(`no recorded script ${i}`);
      return r;
    });
    const aidHex = opts.aid ? hex(opts.aid) : recs[0]!.aid;
    const aid = opts.aid ?? Uint8Array.from(Buffer.from(aidHex, 'hex'));
    const opened = await this.card.openAdminChannel(aid, aidHex);
    if (!('channel' in opened)) throw new Error(`replay: cannot open a channel: ${opened.status} (${opened.why})`);
    const out: Uint8Array[] = [];
    try {
      for (const r of recs) {
        for (const c of r.capdus) {
          const a = (await executeScript(opened.channel.client, [c])).rapdus[0]!;
          out.push(a);
          if (!(opts.continueAfterErrors ?? this.o.continueAfterErrors) && !ok(swOf(a))) return out;
        }
      }
      return out;
    } finally {
      await this.card.closeAdminChannel(opened.channel);
    }
  }
}
