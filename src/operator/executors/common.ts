/**
 * operator/executors/common: what every job executor shares — its dependencies (the operator, the
 * relay), `CardAdmin` (one job's SCP03 session with one card: which key set to open it with, the
 * card's sequence counter kept in the registry, GetCardInfo read and checked), the re-planning loop
 * after an unknown outcome, and small helpers. imports gp/, gp/admin, admin/, store, keys, errors.
 *
 * Key sets: the card's KVN in the registry first; when the card answers "no such key set" (6A88,
 * e.g. after a crash between the card's PUT KEY and the registry's update) the other candidates the
 * job names (the KVN it was moving to, the operator's first, the factory's). KVN 30 is the factory
 * set, derived from the manufacturer's transport master (keys/transport-<id>.key); 31 and up are
 * the operator's, derived from its admin master. Keys are derived per use and wiped.
 */
import { equalBytes, toHex } from '../../bytes/index.js';
import { CardLifecycle as IsdLifecycle } from '../../gp/admin/constants.js';
import { parseCardInfo, type CardInfo } from '../../gp/admin/requests.js';
import { wipeStaticKeys, type StaticKeys } from '../../gp/keys.js';
import { Op, type AdminOp, type OpResult } from '../admin/ops.js';
import type { ScriptRelay } from '../admin/relay-port.js';
import { AdminSession, isFlow } from '../admin/session.js';
import { OpError, OpErrorCode } from '../errors.js';
import { JobError, type JobContext } from '../jobs/runner.js';
import { adminKeysForCard, FACTORY_KVN, FIRST_OPERATOR_KVN, transportKeysForCard } from '../keys/master-keys.js';
import type { Operator } from '../operator.js';
import type { CardRow, JobRow, JsonObject } from '../store/types.js';

export interface ExecutorOptions {
  /** Deadline of one script through the agent (queued, delivered, answered), ms (default 120 000). */
  readonly scriptTimeoutMs?: number;
  /** One line per notable step (never key, PIN or certificate bytes). */
  readonly log?: (line: string) => void;
}

export interface ExecutorDeps extends ExecutorOptions {
  readonly operator: Operator;
  readonly relay: ScriptRelay;
}

/** The admin master key version the operator's key sets derive from. */
export const ADMIN_MASTER_VERSION = 1;
/** Times a job re-reads the card and plans again after an unknown outcome, within one attempt. */
const MAX_REPLANS = 4;

const integrity = (m: string): JobError => new JobError(OpErrorCode.integrity, m);

/** The operator KVN after `kvn` (31..3F, wrapping to 31; 30 stays the factory's). */
export function nextOperatorKvn(kvn: number): number {
  return kvn >= 0x3f || kvn < FIRST_OPERATOR_KVN ? FIRST_OPERATOR_KVN : kvn + 1;
}

/** One job's administration of its card. */
export class CardAdmin {
  readonly session: AdminSession;
  card: CardRow;
  private kvnInUse: number | undefined;

  constructor(
    private readonly deps: ExecutorDeps,
    readonly job: JobRow,
    readonly ctx: JobContext,
    /** KVNs to try after the registry's, in order (duplicates and the registry's own are skipped). */
    private readonly alternates: readonly number[] = [],
  ) {
    this.card = ctx.card;
    const store = deps.operator.store;
    const id = ctx.card.id;
    this.session = new AdminSession({
      relay: deps.relay,
      uid: ctx.card.uid,
      timeoutMs: deps.scriptTimeoutMs ?? 120_000,
      signal: ctx.signal,
      counterHint: ctx.card.seqCounter,
      onCounter: (next) => store.updateCard(id, { seqCounter: next }, deps.operator.now()),
      ...(deps.log ? { log: deps.log } : {}),
    });
  }

  get store(): Operator['store'] {
    return this.deps.operator.store;
  }

  get operator(): Operator {
    return this.deps.operator;
  }

  log(line: string): void {
    this.deps.log?.(`job ${this.job.id.slice(0, 8)} ${this.job.kind} ${toHex(this.card.uid).slice(0, 8)}…: ${line}`);
  }

  /** The card's key set `kvn`: the factory's (transport master) or the operator's (admin master). */
  keysFor(kvn: number): StaticKeys {
    const keysDir = this.deps.operator.paths.keysDir;
    if (kvn === FACTORY_KVN) {
      if (!this.card.transportKeyId) {
        throw new JobError(OpErrorCode.transportKey, `card ${toHex(this.card.uid)} still has its factory keys (KVN 30) and its manifest names no transport key: put the manufacturer's transport master in ${keysDir}/transport-<id>.key and set transportKeyId in the manifest`);
      }
      try {
        return transportKeysForCard(keysDir, this.card.transportKeyId, this.card.uid, kvn);
      } catch (e) {
        throw new JobError(OpErrorCode.transportKey, `the transport master '${this.card.transportKeyId}' cannot be read: ${(e as Error).message}`);
      }
    }
    return adminKeysForCard(keysDir, ADMIN_MASTER_VERSION, this.card.uid, kvn);
  }

  /** The KVN the session was opened with (undefined before the first run). */
  get kvn(): number | undefined {
    return this.kvnInUse;
  }

  private candidates(): number[] {
    const out: number[] = [];
    for (const k of [this.card.kvn, ...this.alternates]) if (!out.includes(k)) out.push(k);
    return out;
  }

  /**
   * Runs `ops` in this job's session: a continuation when one is open, else a new session opened
   * with the registry's KVN (then the alternates, on 6A88). The registry learns the KVN that worked.
   */
  async run(ops: readonly AdminOp[], opts: { keepOpen?: boolean } = {}): Promise<OpResult[]> {
    if (this.kvnInUse !== undefined) return this.session.run(ops, opts);
    const cands = this.candidates();
    let last: unknown;
    for (const kvn of cands) {
      let keys: StaticKeys;
      try {
        keys = this.keysFor(kvn);
      } catch (e) {
        last = e;
        if (kvn === cands[0] && cands.length === 1) throw e;
        continue;
      }
      try {
        this.session.useKeys(keys);
        this.session.endSession();
      } finally {
        wipeStaticKeys(keys);
      }
      try {
        const r = await this.session.run(ops, opts);
        this.kvnInUse = kvn;
        if (kvn !== this.card.kvn) await this.setKvn(kvn);
        return r;
      } catch (e) {
        if (!isFlow(e, 'key-unknown')) throw e;
        last = e;
        this.log(`the card has no key set ${kvn.toString(16)}`);
      }
    }
    if (last instanceof OpError) throw last;
    throw integrity(`the card accepts none of the key sets ${cands.map((k) => k.toString(16)).join(', ')} (it answered 6A88 to each)`);
  }

  /** Records the card's KVN (when another candidate than the registry's opened the session). */
  private async setKvn(kvn: number): Promise<void> {
    await this.store.updateCard(this.card.id, { kvn }, this.operator.now());
    this.card = { ...this.card, kvn };
  }

  /**
   * The card now holds key set `kvn` instead of the one in use (PUT KEY answered with matching
   * KCVs): the registry records it at once, later sessions open with it; the open one goes on.
   */
  async adoptKvn(kvn: number): Promise<void> {
    await this.setKvn(kvn);
    const keys = this.keysFor(kvn);
    try {
      this.session.useKeys(keys);
    } finally {
      wipeStaticKeys(keys);
    }
    this.kvnInUse = kvn;
  }

  /** Ends the session: the next `run` opens a new one, choosing its key set again (after an unknown outcome). */
  reset(): void {
    this.kvnInUse = undefined;
    this.session.endSession();
  }

  /** Reads GetCardInfo (in a session, R-MAC'd) and checks it is this card. */
  async info(opts: { keepOpen?: boolean } = {}): Promise<CardInfo> {
    const [r] = await this.run([Op.getCardInfo()], opts);
    return this.parseInfo(r!);
  }

  parseInfo(r: OpResult): CardInfo {
    let info: CardInfo;
    try {
      info = parseCardInfo(r.data);
    } catch (e) {
      throw integrity(`GetCardInfo answer malformed: ${(e as Error).message}`);
    }
    if (!equalBytes(info.uid, this.card.uid)) throw integrity(`the card answered GetCardInfo for UID ${toHex(info.uid)}, not ${toHex(this.card.uid)}`);
    return info;
  }

  /** Saves resumable progress (merged into what the job already had). */
  async checkpoint(patch: JsonObject): Promise<void> {
    const progress = { ...this.job.progress, ...patch };
    await this.ctx.checkpoint(progress);
    (this as { job: JobRow }).job = { ...this.job, progress };
  }

  /** Lets a held channel go and wipes the keys. */
  async close(): Promise<void> {
    await this.session.release().catch(() => undefined);
    this.session.close();
  }

  result(extra: JsonObject): JsonObject {
    const s = this.session.stats;
    return { ...extra, roundTrips: s.roundTrips, apdus: s.apdus, sessions: s.sessions, predictedSessions: s.predicted };
  }
}

/**
 * Runs `plan` (which must start from what the card says now) and runs it again after an unknown
 * outcome — the agent restarted during a script, or a script was delivered twice — at most a few
 * times within one attempt; the session is reset between runs. Closes the admin in the end.
 */
export async function withCard<T>(admin: CardAdmin, plan: (replan: boolean) => Promise<T>): Promise<T> {
  try {
    for (let n = 0; ; n++) {
      try {
        return await plan(n > 0);
      } catch (e) {
        if (!isFlow(e, 'outcome-unknown') || n >= MAX_REPLANS) {
          if (isFlow(e, 'outcome-unknown')) throw new JobError(OpErrorCode.agentUnavailable, `${e.message} (${n + 1} times)`, { retryable: true });
          throw e;
        }
        admin.log(`${e.message}: reading the card again`);
        admin.reset();
      }
    }
  } finally {
    await admin.close();
  }
}

/** The operator's name for an ISD lifecycle byte. */
export function lifecycleName(b: number): string {
  switch (b) {
    case IsdLifecycle.opReady:
      return 'OP_READY';
    case IsdLifecycle.secured:
      return 'SECURED';
    case IsdLifecycle.cardLocked:
      return 'CARD_LOCKED';
    case IsdLifecycle.terminated:
      return 'TERMINATED';
    default:
      return `0x${b.toString(16)}`;
  }
}

/** Parses one function response or reports tampering (the data passed the R-MAC, so a bad shape is the card's or ours). */
export function parsed<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw integrity(`${what}: ${(e as Error).message}`);
  }
}

export const integrityError = integrity;
