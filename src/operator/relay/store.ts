/**
 * operator/relay/store: where the relay hub keeps its scripts and admin sessions — an interface, so
 * that several operator nodes can share it (issue #17: PostgreSQL, events by LISTEN/NOTIFY), and the
 * in-memory implementation used by one process.
 *
 * A script record goes   queued ──deliver──▶ delivered ──answers──▶ done
 *                          ▲                    │  └──timeout / interrupted──▶ failed
 *                          └──agent restarted───┘ (first script of a session, once)
 * A `done` record with `sessionOpen` keeps the agent's logical channel (and the SCP03 session on it)
 * for a continuation script (`continues` = its id) until the hold ends.
 *
 * Every mutation is a compare-and-set on `state` (`transition`), so two nodes never deliver or settle
 * the same script twice; every change is announced to `watch` listeners (all nodes). Records hold
 * APDUs in memory only for as long as the script lives; nothing here is secret (SCP03 protects it).
 * imports relay/ (types only).
 */
import { EventEmitter } from 'node:events';
import type { ScriptStatus } from '../../relay/index.js';

export type ScriptState = 'queued' | 'delivered' | 'done' | 'failed';

export interface ScriptRecord {
  /** 16 random bytes, hex. */
  readonly id: string;
  /** The card UID, upper-case hex. */
  readonly uid: string;
  /** The targeted application, upper-case hex. */
  readonly aid: string;
  readonly capdus: readonly Uint8Array[];
  /** Keep the channel open after this script for a continuation. */
  readonly keepOpen: boolean;
  /** Re-deliver once if the agent restarts before answering (first script of a session only). */
  readonly redeliver: boolean;
  /** The script whose held channel this one continues (never delivered through a poll). */
  readonly continues?: string;
  readonly createdAt: number;
  /** Epoch ms after which the caller has given up. */
  readonly deadline: number;
  readonly state: ScriptState;
  /** The host the script was delivered to (bound at delivery). */
  readonly hostId?: string;
  /** SHA-256 (hex) of the current Next-URI token (bound at delivery). */
  readonly tokenHash?: string;
  readonly deliveries: number;
  readonly deliveredAt?: number;
  readonly settledAt?: number;
  /** done: the agent's answers. */
  readonly result?: { readonly status: ScriptStatus; readonly rapdus: readonly Uint8Array[] };
  /** failed: why (an ERR_RELAY_… code). */
  readonly error?: { readonly code: string; readonly message: string };
  /** done + keepOpen: the agent's channel is held for a continuation. */
  readonly sessionOpen?: boolean;
}

export type RelayEvent =
  | { readonly type: 'queued'; readonly id: string; readonly uid: string; readonly continues?: string }
  | { readonly type: 'delivered'; readonly id: string; readonly uid: string; readonly hostId: string }
  | { readonly type: 'settled'; readonly id: string }
  | { readonly type: 'session-closed'; readonly id: string };

type Patch = Partial<Omit<ScriptRecord, 'id' | 'uid' | 'aid' | 'capdus' | 'keepOpen' | 'continues' | 'createdAt' | 'deadline'>>;

export interface RelayStore {
  /**
   * Adds a queued script (announces `queued`) unless `maxQueued` scripts of its card are already
   * queued (then false, nothing added): the count and the insert are one atomic step.
   */
  insert(r: ScriptRecord, maxQueued?: number): Promise<boolean>;
  get(id: string): Promise<ScriptRecord | undefined>;
  /**
   * Compare-and-set: applies `patch` when the record is in one of the states `from` (and, when given,
   * `when(record)` holds); returns the updated record, or undefined (not there, or another state).
   * Announces `queued` / `delivered` / `settled` when the state becomes one of them, and
   * `session-closed` when `sessionOpen` goes from true to false.
   */
  transition(id: string, from: ScriptState | readonly ScriptState[], patch: Patch, when?: (r: ScriptRecord) => boolean): Promise<ScriptRecord | undefined>;
  findByToken(tokenHash: string): Promise<ScriptRecord | undefined>;
  /** The oldest queued script that is not a continuation, for one of `uids`. */
  nextQueued(uids: readonly string[]): Promise<ScriptRecord | undefined>;
  /** Every record bound to `hostId` that is delivered, or done with its session open. */
  openForHost(hostId: string): Promise<ScriptRecord[]>;
  /** Queued continuations of script `id`. */
  continuationsOf(id: string): Promise<ScriptRecord[]>;
  /** The record of `uid` whose session is open (at most one), if any. */
  openSession(uid: string): Promise<ScriptRecord | undefined>;
  /** Every record that is queued or delivered (the hub fails them when it closes). */
  pending(): Promise<ScriptRecord[]>;
  /** Removes settled records (done/failed, session closed) settled before `before` (epoch ms). */
  purge(before: number): Promise<number>;
  /** Listens to every change (of every node sharing the store); returns the unsubscribe function. */
  watch(listener: (e: RelayEvent) => void): () => void;
}

/** One process's store: Maps, and events delivered on the next microtask (never re-entrantly). */
export class MemoryRelayStore implements RelayStore {
  private readonly records = new Map<string, ScriptRecord>();
  private readonly byToken = new Map<string, string>();
  private readonly events = new EventEmitter();

  constructor() {
    this.events.setMaxListeners(0);
  }

  private emit(e: RelayEvent): void {
    queueMicrotask(() => this.events.emit('event', e));
  }

  async insert(r: ScriptRecord, maxQueued = Infinity): Promise<boolean> {
    if (this.records.has(r.id)) throw new Error(`script ${r.id} exists`);
    let queued = 0;
    for (const x of this.records.values()) if (x.uid === r.uid && x.state === 'queued') queued++;
    if (queued >= maxQueued) return false;
    this.records.set(r.id, { ...r });
    if (r.tokenHash) this.byToken.set(r.tokenHash, r.id);
    if (r.state === 'queued') this.emit({ type: 'queued', id: r.id, uid: r.uid, ...(r.continues ? { continues: r.continues } : {}) });
    return true;
  }

  async get(id: string): Promise<ScriptRecord | undefined> {
    const r = this.records.get(id);
    return r && { ...r };
  }

  async transition(id: string, from: ScriptState | readonly ScriptState[], patch: Patch, when?: (r: ScriptRecord) => boolean): Promise<ScriptRecord | undefined> {
    const r = this.records.get(id);
    const states: readonly ScriptState[] = typeof from === 'string' ? [from] : from;
    if (!r || !states.includes(r.state) || (when && !when(r))) return undefined;
    const next: ScriptRecord = { ...r, ...patch };
    this.records.set(id, next);
    if (r.tokenHash !== next.tokenHash) {
      if (r.tokenHash) this.byToken.delete(r.tokenHash);
      if (next.tokenHash) this.byToken.set(next.tokenHash, id);
    }
    if (next.state !== r.state) {
      if (next.state === 'queued') this.emit({ type: 'queued', id, uid: next.uid, ...(next.continues ? { continues: next.continues } : {}) });
      else if (next.state === 'delivered') this.emit({ type: 'delivered', id, uid: next.uid, hostId: next.hostId ?? '' });
      else this.emit({ type: 'settled', id });
    }
    if (r.sessionOpen === true && next.sessionOpen !== true) this.emit({ type: 'session-closed', id });
    return { ...next };
  }

  async findByToken(tokenHash: string): Promise<ScriptRecord | undefined> {
    const id = this.byToken.get(tokenHash);
    return id === undefined ? undefined : this.get(id);
  }

  async nextQueued(uids: readonly string[]): Promise<ScriptRecord | undefined> {
    const want = new Set(uids);
    let best: ScriptRecord | undefined;
    for (const r of this.records.values()) {
      if (r.state !== 'queued' || r.continues !== undefined || !want.has(r.uid)) continue;
      if (!best || r.createdAt < best.createdAt) best = r;
    }
    return best && { ...best };
  }

  async openForHost(hostId: string): Promise<ScriptRecord[]> {
    const out: ScriptRecord[] = [];
    for (const r of this.records.values()) {
      if (r.hostId === hostId && (r.state === 'delivered' || (r.state === 'done' && r.sessionOpen === true))) out.push({ ...r });
    }
    return out;
  }

  async continuationsOf(id: string): Promise<ScriptRecord[]> {
    const out: ScriptRecord[] = [];
    for (const r of this.records.values()) if (r.continues === id && r.state === 'queued') out.push({ ...r });
    return out;
  }

  async openSession(uid: string): Promise<ScriptRecord | undefined> {
    for (const r of this.records.values()) if (r.uid === uid && r.sessionOpen === true) return { ...r };
    return undefined;
  }

  async pending(): Promise<ScriptRecord[]> {
    return [...this.records.values()].filter((r) => r.state === 'queued' || r.state === 'delivered').map((r) => ({ ...r }));
  }

  async purge(before: number): Promise<number> {
    let n = 0;
    for (const [id, r] of this.records) {
      if ((r.state === 'done' || r.state === 'failed') && r.sessionOpen !== true && (r.settledAt ?? 0) < before) {
        this.records.delete(id);
        if (r.tokenHash) this.byToken.delete(r.tokenHash);
        n++;
      }
    }
    return n;
  }

  /** Records held now (tests check that nothing leaks). */
  get size(): number {
    return this.records.size;
  }

  watch(listener: (e: RelayEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }
}
