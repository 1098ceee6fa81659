/**
 * operator/admin/session: one SCP03 administration session (security level 33) with a card's
 * security domain, run through the untrusted device agent (`ScriptRelay.runScript`) — the
 * executors' only way to a card. imports bytes/, gp/, gp/admin, admin/ops, admin/relay-port, errors.
 *
 * Round trips. The card answers INITIALIZE UPDATE with a pseudo-random challenge derived from its
 * sequence counter (i = 70). When the registry knows the card's next counter, the whole session is
 * computed here ahead of time — the card's INITIALIZE UPDATE answer, EXTERNAL AUTHENTICATE, every
 * wrapped command — and sent as ONE script: [IU, EA, cmd…]. The prediction is checked byte for byte
 * against the card's real answer. When it is wrong (a stale counter), the card refuses EXTERNAL
 * AUTHENTICATE and nothing ran: the real counter is read from the answer (authenticated by its card
 * cryptogram) and the script is sent again; when the counter is unknown or the card has run out of
 * counters (random challenges, i = 60), INITIALIZE UPDATE goes first, alone, and the rest follows
 * on the same channel (`keepOpen` / `continue`). A session can be kept open between batches (the
 * operator verifies and issues in between); a batch on a held channel is a continuation.
 *
 * Integrity (SCP03 does the work): a response whose R-MAC does not verify, a bare "9000" where a
 * MAC'd answer is due, answers withheld or reordered, a card cryptogram that does not verify, an
 * EXTERNAL AUTHENTICATE refused after a correct prediction, or any status word the executor did not
 * declare acceptable — all throw `JobError(ERR_OP_INTEGRITY)` (no retry). A card never executes a
 * command that does not verify, so a tampering agent changes nothing through it.
 *
 * Flow signals for the executor (`AdminFlowError`): `outcome-unknown` (the agent restarted during
 * a script, or a script was delivered twice and ran: read the card's state and decide again),
 * `key-unknown` (INITIALIZE UPDATE answered 6A88: try the next key set the card may hold).
 * Agent trouble (no answer in time, card absent) is a retryable `JobError(ERR_OP_AGENT_UNAVAILABLE)`.
 *
 * Secrets: a copy of the static keys and the Scp03Host's session keys, wiped by close(); plain
 * commands are built, wrapped and dropped here; nothing is logged but counts and status words.
 */
import { randomBytes } from 'node:crypto';
import { equalBytes, toHex, wipe } from '../../bytes/index.js';
import { ADMIN_LEVEL, ISD_AID } from '../../gp/admin/constants.js';
import { encodeInitializeUpdateResponse, parseInitializeUpdateResponse } from '../../gp/handshake.js';
import { Scp03Host } from '../../gp/host.js';
import { copyStaticKeys, wipeStaticKeys, type StaticKeys } from '../../gp/keys.js';
import { DEFAULT_I, SEQUENCE_COUNTER_MAX } from '../../gp/params.js';
import { cardCryptogram, deriveSessionKeys, pseudoRandomCardChallenge, wipeSessionKeys } from '../../gp/session-keys.js';
import { OpErrorCode } from '../errors.js';
import { JobError } from '../jobs/runner.js';
import { acceptedSws, opLabel, plainApdus, type AdminOp, type OpResult } from './ops.js';
import { RelayCode, relayCodeOf, type RelayScriptResult, type ScriptRelay } from './relay-port.js';

export type AdminFlow = 'outcome-unknown' | 'key-unknown';

/** Not a failure of the job: the executor re-plans (outcome-unknown) or tries another key set. */
export class AdminFlowError extends Error {
  constructor(
    readonly flow: AdminFlow,
    message: string,
  ) {
    super(message);
    this.name = 'AdminFlowError';
  }
}

export function isFlow(e: unknown, flow?: AdminFlow): e is AdminFlowError {
  return e instanceof AdminFlowError && (flow === undefined || e.flow === flow);
}

export interface AdminSessionOptions {
  readonly relay: ScriptRelay;
  readonly uid: Uint8Array;
  /** The security domain's AID (default the ISD's); also the pseudo-random challenge's KDF context. */
  readonly sdAid?: Uint8Array;
  /** Deadline of each script (queued, delivered, answered), ms. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** The next sequence counter the registry expects (null: unknown). */
  readonly counterHint?: number | null;
  /** Called with the card's next counter whenever it is learnt (or null when it became unknown). */
  readonly onCounter?: (next: number | null) => void | Promise<void>;
  /** Precomputed sessions whose prediction failed before IU goes first (default 2). */
  readonly maxPredictions?: number;
  readonly random?: (n: number) => Uint8Array;
  readonly log?: (line: string) => void;
}

export interface SessionStats {
  /** Scripts sent (each one round trip to the agent). */
  readonly roundTrips: number;
  /** Command APDUs sent in all. */
  readonly apdus: number;
  /** Sessions opened (INITIALIZE UPDATE sent). */
  readonly sessions: number;
  /** Sessions precomputed in one round trip whose prediction held. */
  readonly predicted: number;
}

const swOf = (r: Uint8Array): number => (r.length >= 2 ? (r[r.length - 2]! << 8) | r[r.length - 1]! : -1);
const swHex = (sw: number): string => (sw < 0 ? 'none' : sw.toString(16).padStart(4, '0').toUpperCase());
const integrity = (message: string): JobError => new JobError(OpErrorCode.integrity, message);
const OK = 0x9000;

/** Plain GET DATA DF52 (the next sequence counter): public, no secure messaging. */
const GET_COUNTER = Uint8Array.of(0x80, 0xca, 0xdf, 0x52, 0x00);

export class AdminSession {
  private keys: StaticKeys | undefined;
  private host: Scp03Host | undefined;
  /** The relay holds the agent's channel open after the last script (a continuation may follow). */
  private held = false;
  private hint: number | null;
  private predictions = 0;
  private readonly sdAid: Uint8Array;
  private readonly random: (n: number) => Uint8Array;
  private st = { roundTrips: 0, apdus: 0, sessions: 0, predicted: 0 };

  constructor(private readonly o: AdminSessionOptions) {
    this.sdAid = o.sdAid ?? ISD_AID;
    this.hint = o.counterHint ?? null;
    this.random = o.random ?? ((n) => new Uint8Array(randomBytes(n)));
  }

  get stats(): SessionStats {
    return { ...this.st };
  }

  /** Whether an SCP03 session is open and in step with the card. */
  get isOpen(): boolean {
    return this.host?.state === 'open';
  }

  /** The KVN of the key set in use (undefined before `useKeys`). */
  get kvn(): number | undefined {
    return this.keys?.kvn;
  }

  /**
   * The key set for the sessions opened from now on (a copy is kept until close). An open session
   * goes on with the keys it was opened with (after PUT KEY replaced them on the card, say).
   */
  useKeys(keys: StaticKeys): void {
    wipeStaticKeys(this.keys);
    this.keys = copyStaticKeys(keys);
  }

  /**
   * Runs `ops` at security level 33: in the open session if there is one (a continuation on the
   * held channel), else in a new session. `keepOpen` keeps the channel for a later `run`.
   * Resolves with one result per operation, in order, up to the first that answered an accepted
   * error status word (the later ones did not run).
   */
  async run(ops: readonly AdminOp[], opts: { keepOpen?: boolean } = {}): Promise<OpResult[]> {
    if (!this.keys) throw new Error('AdminSession.run before useKeys');
    if (this.isOpen && this.held) {
      const wrapped = this.wrapAll(ops);
      const r = await this.send(wrapped.apdus, { keepOpen: opts.keepOpen === true, continue: true });
      if (r !== 'lost') return this.results(ops, wrapped.counts, r.rapdus);
      // Never delivered: the session died with the channel. Open a new one for the same operations.
      this.endSession();
    } else if (this.isOpen) {
      this.endSession(); // the channel went; so did the session on the card
    }
    return this.open(ops, opts.keepOpen === true);
  }

  /** Lets a held channel go (one harmless continuation); the session ends. */
  async release(): Promise<void> {
    const wasHeld = this.held;
    this.endSession();
    if (!wasHeld) return;
    try {
      await this.send([GET_COUNTER], { keepOpen: false, continue: true });
    } catch {
      // the channel is gone anyway
    }
  }

  /** Ends the session and wipes every key held. */
  close(): void {
    this.endSession();
    wipeStaticKeys(this.keys);
    this.keys = undefined;
  }

  /** Ends the SCP03 session on this side (the next `run` opens a new one; a held channel is reused). */
  endSession(): void {
    this.host?.close();
    this.host = undefined;
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  private async learnCounter(next: number | null): Promise<void> {
    this.hint = next;
    await this.o.onCounter?.(next);
  }

  // ---- opening a session ------------------------------------------------------------------------

  private async open(ops: readonly AdminOp[], keepOpen: boolean): Promise<OpResult[]> {
    for (;;) {
      const predictable = this.hint !== null && this.hint <= SEQUENCE_COUNTER_MAX && this.predictions < (this.o.maxPredictions ?? 2);
      if (!predictable) return this.openIuFirst(ops, keepOpen);
      const out = await this.openPredicted(ops, keepOpen);
      if (out !== 'mispredicted') return out;
    }
  }

  private newHost(): { host: Scp03Host; hc: Uint8Array } {
    const hc = this.random(8);
    const host = new Scp03Host({ keys: this.keys!, sdAid: this.sdAid, random: () => hc.slice() });
    return { host, hc };
  }

  /** The card's INITIALIZE UPDATE answer for counter `c` (what a genuine card with these keys sends). */
  private predictIu(hc: Uint8Array, c: number): Uint8Array {
    const keys = this.keys!;
    const cc = pseudoRandomCardChallenge(keys.enc, c, this.sdAid, 8);
    const sk = deriveSessionKeys(keys, hc, cc);
    const crypto = cardCryptogram(sk.sMac, hc, cc);
    wipeSessionKeys(sk);
    const data = encodeInitializeUpdateResponse({
      keyDiversificationData: this.o.uid.subarray(0, 10),
      kvn: keys.kvn,
      i: DEFAULT_I,
      cardChallenge: cc,
      cardCryptogram: crypto,
      sequenceCounter: c,
    });
    const out = new Uint8Array(data.length + 2);
    out.set(data);
    out[data.length] = 0x90;
    return out;
  }

  private async openPredicted(ops: readonly AdminOp[], keepOpen: boolean): Promise<OpResult[] | 'mispredicted'> {
    const c = this.hint!;
    this.predictions++;
    const { host, hc } = this.newHost();
    this.host = host;
    const iu = host.initializeUpdate();
    const predicted = this.predictIu(hc, c);
    host.processInitializeUpdateResponse(predicted);
    const ea = host.externalAuthenticate(ADMIN_LEVEL);
    const wrapped = this.wrapAll(ops);
    // The card commits c + 1 when it answers this IU, whatever follows: remember it first.
    await this.learnCounter(c + 1);
    this.st.sessions++;
    const r = await this.sendFirst([iu, ea, ...wrapped.apdus], keepOpen);
    const got = r.rapdus[0]!;
    if (equalBytes(got, predicted)) {
      this.predictions = 0;
      if (r.rapdus.length < 2 || !equalBytes(r.rapdus[1]!, Uint8Array.of(0x90, 0x00))) {
        this.endSession();
        throw integrity(`EXTERNAL AUTHENTICATE answered ${swHex(r.rapdus[1] ? swOf(r.rapdus[1]) : -1)} to a session the card itself opened (INITIALIZE UPDATE as predicted)`);
      }
      this.st.predicted++;
      this.log(`admin: precomputed session (counter ${c}) accepted`);
      return this.results(ops, wrapped.counts, r.rapdus.slice(2));
    }
    // Not the answer we computed: see what the card said (nothing after IU ran if it is genuine).
    this.endSession();
    const next = await this.checkIuAnswer(got, hc);
    if (r.rapdus.length > 2 || (r.rapdus.length === 2 && !isErrorSw(swOf(r.rapdus[1]!)))) {
      throw integrity('the card accepted EXTERNAL AUTHENTICATE of a session it did not open with our challenge');
    }
    this.log(`admin: counter ${c} was stale; the card is at ${next === null ? 'random challenges' : next - 1}`);
    await this.learnCounter(next);
    if (r.deliveries > 1) throw new AdminFlowError('outcome-unknown', 'the script was delivered twice (the agent restarted): its first delivery may have run');
    return 'mispredicted';
  }

  /**
   * A real INITIALIZE UPDATE answer that is not the predicted one: an error status word (6A88 an
   * unknown KVN, 6985 the back-off), or the card's counter — checked by a throw-away host with the
   * same host challenge (card challenge and card cryptogram), so an agent cannot make us believe
   * another counter. Returns the card's next counter (null: random challenges).
   */
  private async checkIuAnswer(got: Uint8Array, hc: Uint8Array): Promise<number | null> {
    const sw = swOf(got);
    if (sw === 0x6a88 && got.length === 2) throw new AdminFlowError('key-unknown', `the card holds no key set ${this.keys!.kvn.toString(16)}`);
    if (sw === 0x6985 && got.length === 2) {
      throw new JobError(OpErrorCode.cardBusy, 'the security domain refuses new sessions for now (back-off after failed authentications, until its next power-on)', { retryable: true });
    }
    if (sw !== OK) throw integrity(`INITIALIZE UPDATE answered ${swHex(sw)}`);
    const probe = new Scp03Host({ keys: this.keys!, sdAid: this.sdAid, random: () => hc.slice() });
    try {
      probe.initializeUpdate();
      const parsed = probe.processInitializeUpdateResponse(got);
      return parsed.sequenceCounter === undefined ? null : parsed.sequenceCounter + 1;
    } catch (e) {
      throw integrity(`INITIALIZE UPDATE answer does not verify: ${(e as Error).message}`);
    } finally {
      probe.close();
    }
  }

  private async openIuFirst(ops: readonly AdminOp[], keepOpen: boolean): Promise<OpResult[]> {
    const { host, hc } = this.newHost();
    this.host = host;
    this.st.sessions++;
    const r = await this.sendFirst([host.initializeUpdate()], true);
    const got = r.rapdus[0]!;
    if (swOf(got) !== OK) {
      this.endSession();
      await this.checkIuAnswer(got, hc); // throws the right thing
      throw integrity('INITIALIZE UPDATE failed');
    }
    let parsed;
    try {
      parsed = host.processInitializeUpdateResponse(got);
    } catch (e) {
      this.endSession();
      throw integrity(`INITIALIZE UPDATE answer does not verify: ${(e as Error).message}`);
    }
    this.predictions = 0;
    await this.learnCounter(parsed.sequenceCounter === undefined ? null : parsed.sequenceCounter + 1);
    const ea = host.externalAuthenticate(ADMIN_LEVEL);
    const wrapped = this.wrapAll(ops);
    const c = await this.send([ea, ...wrapped.apdus], { keepOpen, continue: true });
    if (c === 'lost') {
      this.endSession();
      throw new AdminFlowError('outcome-unknown', 'the channel was lost between INITIALIZE UPDATE and EXTERNAL AUTHENTICATE');
    }
    if (!equalBytes(c.rapdus[0]!, Uint8Array.of(0x90, 0x00))) {
      this.endSession();
      throw integrity(`EXTERNAL AUTHENTICATE answered ${swHex(swOf(c.rapdus[0]!))} after a verified card cryptogram`);
    }
    return this.results(ops, wrapped.counts, c.rapdus.slice(1));
  }

  // ---- wrapping and unwrapping -----------------------------------------------------------------

  private wrapAll(ops: readonly AdminOp[]): { apdus: Uint8Array[]; counts: number[] } {
    const host = this.host!;
    const apdus: Uint8Array[] = [];
    const counts: number[] = [];
    for (const op of ops) {
      const plain = plainApdus(op, host.dek);
      counts.push(plain.length);
      for (const p of plain) {
        apdus.push(host.wrap(p));
        wipe(p);
      }
    }
    return { apdus, counts };
  }

  /**
   * Unwraps the answers to `ops` (whose APDU counts are `counts`): every one must verify, in order;
   * an op that ends in an error SW must be one the executor accepts and nothing may follow it.
   */
  private results(ops: readonly AdminOp[], counts: readonly number[], rapdus: readonly Uint8Array[]): OpResult[] {
    const host = this.host!;
    const total = counts.reduce((a, b) => a + b, 0);
    const out: OpResult[] = [];
    let i = 0;
    try {
      for (let k = 0; k < ops.length; k++) {
        const op = ops[k]!;
        let last: OpResult | undefined;
        for (let b = 0; b < counts[k]!; b++) {
          const raw = rapdus[i++];
          if (raw === undefined) throw integrity(`the agent reported no answer to ${opLabel(op)} (${rapdus.length} of ${total} answers, the last a success)`);
          let u;
          try {
            u = host.unwrap(raw);
          } catch (e) {
            throw integrity(`answer to ${opLabel(op)} does not verify (${(e as { code?: string }).code ?? 'ERR_GP'}): altered, dropped, reordered or forged`);
          }
          last = { sw: u.sw, data: u.data };
          if (isErrorSw(u.sw)) break;
        }
        if (!isErrorSw(last!.sw)) {
          out.push(last!);
          continue;
        }
        // An error status word: not authenticated (no R-MAC exists for it), so only an answer the
        // executor expects may pass; anything else is treated as tampering.
        if (!acceptedSws(op).includes(last!.sw)) throw integrity(`${opLabel(op)} answered ${swHex(last!.sw)}`);
        if (i !== rapdus.length) throw integrity(`answers after an error status word (${rapdus.length} for ${i})`);
        out.push(last!);
        if (i !== total) this.endSession(); // later commands were wrapped but never ran: out of step
        return out;
      }
      if (i !== rapdus.length) throw integrity(`${rapdus.length} answers for ${total} commands`);
      return out;
    } catch (e) {
      this.endSession();
      throw e;
    }
  }

  // ---- the relay -------------------------------------------------------------------------------

  /** The first script of a session (a continuation when the relay holds our channel). */
  private async sendFirst(capdus: Uint8Array[], keepOpen: boolean): Promise<RelayScriptResult> {
    if (this.held) {
      const r = await this.send(capdus, { keepOpen, continue: true });
      if (r !== 'lost') return r;
    }
    const r = await this.send(capdus, { keepOpen, continue: false });
    if (r === 'lost') throw new AdminFlowError('outcome-unknown', 'the relay lost the session');
    return r;
  }

  /** One script; 'lost' when a continuation found no held channel (it was never delivered). */
  private async send(capdus: Uint8Array[], opts: { keepOpen: boolean; continue: boolean }): Promise<RelayScriptResult | 'lost'> {
    const signal = this.o.signal;
    if (signal?.aborted) throw signal.reason;
    this.st.roundTrips++;
    this.st.apdus += capdus.length;
    this.held = false;
    let r: RelayScriptResult;
    try {
      const p = this.o.relay.runScript(this.o.uid, this.sdAid, capdus, { timeoutMs: this.o.timeoutMs, keepOpen: opts.keepOpen, continue: opts.continue });
      r = signal ? await abortable(p, signal) : await p;
    } catch (e) {
      const code = relayCodeOf(e);
      if (code === RelayCode.sessionLost && opts.continue) return 'lost';
      this.endSession();
      if (code === RelayCode.interrupted || code === RelayCode.sessionLost) {
        throw new AdminFlowError('outcome-unknown', `the agent restarted while the script ran (${code})`);
      }
      if (code === RelayCode.timeout || code === RelayCode.queueFull || code === RelayCode.closed) {
        throw new JobError(OpErrorCode.agentUnavailable, `the card's agent did not answer (${code}: ${(e as Error).message})`, { retryable: true, cause: e });
      }
      throw e;
    }
    if (r.status !== 'ok') {
      this.endSession();
      if (r.status === 'unknown-application') throw new JobError(OpErrorCode.noSecurityDomain, `card ${toHex(this.o.uid)} has no security domain ${toHex(this.sdAid).toUpperCase()} (the agent: ${r.status})`);
      if (r.status === 'security-error') throw new JobError(OpErrorCode.cardRefused, `the card refused to select its security domain (${r.status})`);
      if (r.status === 'script-format-error') throw new JobError(OpErrorCode.internal, 'the agent refused the script as malformed (script-format-error)');
      throw new JobError(OpErrorCode.agentUnavailable, `the agent could not run the script (${r.status}; ${r.rapdus.length} of ${capdus.length} ran)`, { retryable: true });
    }
    if (r.rapdus.length === 0) {
      this.endSession();
      throw integrity('the agent reported success with no answer');
    }
    this.held = opts.keepOpen;
    return r;
  }
}

function isErrorSw(sw: number): boolean {
  const sw1 = sw >> 8;
  return !(sw === 0x9000 || sw1 === 0x62 || sw1 === 0x63);
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

