/**
 * operator/relay/hub: the operator's end of setls-remote-admin/1 (docs/agent.md). The job runner
 * calls `runScript(uid, aid, capdus, opts)`; device agents long-poll `POST /admin/v1/poll` and post
 * the answers to the Next-URI the hub gave them; `handleRelay(req, res)` serves both and is mounted
 * into the operator's node:https server.
 *
 * Rules:
 *  - Long poll: a poll waits up to `pollHoldMs` (25 s) and is answered as soon as a script is queued
 *    for one of the cards in its X-Admin-SE-List; otherwise 204 with Retry-After.
 *  - Next-URI tokens: 32 random bytes, single use, bound to (host id, card UID, script id); the store
 *    keeps only their SHA-256.
 *  - Sessions: a script run with `keepOpen` keeps the agent's logical channel (and the SCP03 session
 *    on it): the hub holds the agent's POST up to `sessionHoldMs` for a `continue` script of the same
 *    card and application, delivered as the answer to that POST. Without it, the answer is 204 and
 *    the agent closes its channel. A `continue` script whose channel is not held anymore is refused
 *    at once with ERR_RELAY_SESSION_LOST (it would only meet a card with no session).
 *  - Resume: the agent runs one dialog at a time, so any poll from a host ends that host's open
 *    dialogs (X-Admin-Resume: true says the agent restarted; an agent that lost a response polls
 *    too). A script delivered but not answered is re-delivered once if it opened its session (no
 *    answers of that session reached the operator yet; SCP03 makes a replay of its first commands
 *    harmless), else it rejects with ERR_RELAY_INTERRUPTED: its channel, and the SCP03 session on
 *    it, died with the agent; the caller restarts the session. `redeliver: false` always rejects.
 *    A held session of that host is closed (a later `continue` gets ERR_RELAY_SESSION_LOST).
 *  - Authentication (anti-spam only; trust comes from SCP03): `authenticateAgent(bearer token,
 *    claimed host id)` returns the host id, which must equal X-Admin-From.
 *
 * State lives in a RelayStore (memory by default); waiting HTTP requests and callers are this node's.
 * imports bytes/, apdu/, relay/ and node built-ins.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseCommand } from '../../apdu/index.js';
import { fromHex, toHex } from '../../bytes/index.js';
import {
  RelayError,
  RelayHeader,
  RelayLimits,
  RelayPath,
  decodePollBody,
  decodeResultBody,
  encodeScriptBody,
  formatAid,
  formatNextUri,
  formatSeId,
  isNextUriToken,
  parseBearer,
  parseFrom,
  parseResume,
  parseScriptStatus,
  parseSeId,
  parseSeList,
  type Heartbeat,
  type ScriptStatus,
} from '../../relay/index.js';
import { checkJson, checkProtocol, oneHeader, open, readBody, requiredHeader, sendError, sendNoContent, sendScript } from './http.js';
import { MemoryRelayStore, type RelayEvent, type RelayStore, type ScriptRecord } from './store.js';

export interface RelayHubOptions {
  /**
   * Who is polling: the bearer token of the request and the host id it claims (X-Admin-From) →
   * the host id (must equal the claim), or undefined to refuse (401).
   */
  readonly authenticateAgent: (token: string, claimedHostId: string) => string | undefined | Promise<string | undefined>;
  /** Scripts and sessions (default: in memory, this process only). */
  readonly store?: RelayStore;
  /** How long a poll waits for a script, ms (default 25000; keep it below the agent's request timeout, 40 s). */
  readonly pollHoldMs?: number;
  /** How long a kept-open channel waits for its continuation, ms (default 25000). */
  readonly sessionHoldMs?: number;
  /** Retry-After of a 204 to a poll, s (default 0: long-polling agents poll again at once). */
  readonly retryAfterS?: number;
  /** Times a first script is handed to an agent at most (default 2: once more after a restart). */
  readonly maxDeliveries?: number;
  /** Scripts queued for one card at most (default 16). */
  readonly maxQueuedPerCard?: number;
  /** Polls waiting at once at most (default 10000; more are answered 503). */
  readonly maxWaitingPolls?: number;
  /** Deadline for a request body, ms (default 30000). */
  readonly bodyTimeoutMs?: number;
  /** Every poll's heartbeat (the operator records last-seen times and which host has which card). */
  readonly onHeartbeat?: (hostId: string, heartbeat: Heartbeat, seList: readonly Uint8Array[]) => void;
  /** One line per notable event (never APDU bytes). */
  readonly log?: (line: string) => void;
}

export interface RunScriptOptions {
  /** Reject with ERR_RELAY_TIMEOUT when no answer came within this many ms. */
  readonly timeoutMs: number;
  /** Keep the agent's channel open after this script for a `continue` script (same card and AID). */
  readonly keepOpen?: boolean;
  /** Run on the channel the previous `keepOpen` script of this card left open, or reject ERR_RELAY_SESSION_LOST. */
  readonly continue?: boolean;
  /** Re-deliver once when the agent restarts before answering (default true; only for a first script). */
  readonly redeliver?: boolean;
}

export interface ScriptResult {
  /** The R-APDUs, one per C-APDU that ran (61xx already followed by the agent). */
  readonly rapdus: Uint8Array[];
  /**
   * X-Admin-Script-Status. `ok`: the script ran; fewer R-APDUs than C-APDUs when it stopped at an
   * error status word (the last R-APDU carries it). Other values: see ScriptStatus.
   */
  readonly status: ScriptStatus;
  /** The host whose agent ran it. */
  readonly hostId: string;
  /** Times the script was handed to an agent (2 after a re-delivery). */
  readonly deliveries: number;
}

export interface HostInfo {
  readonly hostId: string;
  readonly lastPollAt: number;
  readonly heartbeat: Heartbeat;
  /** Upper-case hex UIDs of the cards the agent reaches. */
  readonly cards: readonly string[];
}

interface Waiter {
  readonly hostId: string;
  readonly uids: ReadonlySet<string>;
  readonly res: ServerResponse;
  timer?: NodeJS.Timeout;
  done: boolean;
  claiming: boolean;
  again: boolean;
}

interface Hold {
  readonly scriptId: string;
  readonly hostId: string;
  readonly res: ServerResponse;
  timer?: NodeJS.Timeout;
  done: boolean;
}

interface Caller {
  resolve(r: ScriptResult): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');
const upperHex = (b: Uint8Array): string => toHex(b).toUpperCase();
const short = (uid: string): string => (uid.length > 12 ? `${uid.slice(0, 8)}…${uid.slice(-4)}` : uid);

export class RelayHub extends EventEmitter {
  readonly store: RelayStore;
  private readonly pollHoldMs: number;
  private readonly sessionHoldMs: number;
  private readonly retryAfterS: number;
  private readonly maxDeliveries: number;
  private readonly maxQueuedPerCard: number;
  private readonly maxWaitingPolls: number;
  private readonly bodyTimeoutMs: number;
  private readonly waiters = new Map<string, Waiter>();
  private readonly holds = new Map<string, Hold>();
  private readonly callers = new Map<string, Caller>();
  private readonly hostInfo = new Map<string, HostInfo>();
  private readonly unwatch: () => void;
  private readonly purgeTimer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: RelayHubOptions) {
    super();
    if (typeof o.authenticateAgent !== 'function') throw new TypeError('RelayHub needs authenticateAgent');
    this.store = o.store ?? new MemoryRelayStore();
    this.pollHoldMs = o.pollHoldMs ?? 25_000;
    this.sessionHoldMs = o.sessionHoldMs ?? 25_000;
    this.retryAfterS = o.retryAfterS ?? 0;
    this.maxDeliveries = o.maxDeliveries ?? 2;
    this.maxQueuedPerCard = o.maxQueuedPerCard ?? 16;
    this.maxWaitingPolls = o.maxWaitingPolls ?? 10_000;
    this.bodyTimeoutMs = o.bodyTimeoutMs ?? 30_000;
    for (const [k, v] of Object.entries({ pollHoldMs: this.pollHoldMs, sessionHoldMs: this.sessionHoldMs, bodyTimeoutMs: this.bodyTimeoutMs })) {
      if (!Number.isInteger(v) || v < 0 || v > 600_000) throw new RangeError(`${k} must be 0..600000 ms`);
    }
    if (!Number.isInteger(this.retryAfterS) || this.retryAfterS < 0 || this.retryAfterS > RelayLimits.maxRetryAfterS) throw new RangeError('retryAfterS must be 0..3600');
    this.unwatch = this.store.watch((e) => this.onEvent(e));
    this.purgeTimer = setInterval(() => void this.store.purge(Date.now() - 60_000).catch(() => undefined), 30_000);
    this.purgeTimer.unref();
  }

  /** The hosts seen (last poll), by host id. */
  hosts(): HostInfo[] {
    return [...this.hostInfo.values()];
  }

  /** Polls waiting now on this node (tests wait for one before queueing, to measure wake-up). */
  get waitingPolls(): number {
    return this.waiters.size;
  }

  /** Sessions held now on this node. */
  get heldSessions(): number {
    return this.holds.size;
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  // ---- the job runner's side ------------------------------------------------------------------

  /**
   * Queues `capdus` for the card `uid`, to run on a logical channel of its own opened to `aid` (the
   * C-APDUs are written for the basic channel; the agent changes only the channel bits of CLA).
   * Resolves with the agent's answers (any X-Admin-Script-Status); rejects with RelayError
   * ERR_RELAY_TIMEOUT, ERR_RELAY_INTERRUPTED, ERR_RELAY_SESSION_LOST, ERR_RELAY_QUEUE_FULL,
   * ERR_RELAY_ARGUMENT or ERR_RELAY_CLOSED.
   */
  async runScript(uid: Uint8Array, aid: Uint8Array, capdus: readonly Uint8Array[], opts: RunScriptOptions): Promise<ScriptResult> {
    if (this.closed) throw new RelayError('ERR_RELAY_CLOSED', 'the relay hub is closed');
    const uidHex = this.checkArgs(uid, aid, capdus, opts);
    const aidHex = upperHex(aid);
    let continues: string | undefined;
    if (opts.continue) {
      const prev = await this.store.openSession(uidHex);
      if (!prev || prev.aid !== aidHex) throw new RelayError('ERR_RELAY_SESSION_LOST', `no channel to ${aidHex} is held open for card ${uidHex}`);
      continues = prev.id;
    }
    const now = Date.now();
    const rec: ScriptRecord = {
      id: toHex(new Uint8Array(randomBytes(16))),
      uid: uidHex,
      aid: aidHex,
      capdus: capdus.map((c) => c.slice()),
      keepOpen: opts.keepOpen === true,
      redeliver: opts.redeliver !== false,
      ...(continues ? { continues } : {}),
      createdAt: now,
      deadline: now + opts.timeoutMs,
      state: 'queued',
      deliveries: 0,
    };
    const settled = new Promise<ScriptResult>((resolve, reject) => {
      const timer = setTimeout(() => void this.expire(rec.id, opts.timeoutMs), opts.timeoutMs);
      this.callers.set(rec.id, { resolve, reject, timer });
    });
    if (!(await this.store.insert(rec, continues ? undefined : this.maxQueuedPerCard))) {
      const c = this.callers.get(rec.id)!;
      this.callers.delete(rec.id);
      clearTimeout(c.timer);
      throw new RelayError('ERR_RELAY_QUEUE_FULL', `${this.maxQueuedPerCard} scripts already wait for card ${uidHex}`);
    }
    if (continues) {
      // The hold may have ended between the check and the insert: then this script can never run.
      const prev = await this.store.get(continues);
      if (prev?.sessionOpen !== true) await this.fail(rec.id, ['queued'], 'ERR_RELAY_SESSION_LOST', `the channel of card ${uidHex} closed before the script was queued`);
    }
    return settled;
  }

  private checkArgs(uid: Uint8Array, aid: Uint8Array, capdus: readonly Uint8Array[], opts: RunScriptOptions): string {
    const arg = (m: string): RelayError => new RelayError('ERR_RELAY_ARGUMENT', m);
    if (!(uid instanceof Uint8Array) || uid.length < RelayLimits.minUidBytes || uid.length > RelayLimits.maxUidBytes) throw arg(`a card UID is ${RelayLimits.minUidBytes}..${RelayLimits.maxUidBytes} bytes`);
    if (!(aid instanceof Uint8Array) || aid.length < RelayLimits.minAidBytes || aid.length > RelayLimits.maxAidBytes) throw arg(`an AID is ${RelayLimits.minAidBytes}..${RelayLimits.maxAidBytes} bytes`);
    if (!opts || !Number.isInteger(opts.timeoutMs) || opts.timeoutMs < 1 || opts.timeoutMs > 86_400_000) throw arg('timeoutMs must be an integer 1..86400000');
    if (!Array.isArray(capdus)) throw arg('capdus must be an array');
    capdus.forEach((c, i) => {
      if (!(c instanceof Uint8Array)) throw arg(`C-APDU ${i} is not a Uint8Array`);
      try {
        parseCommand(c);
      } catch (e) {
        throw arg(`C-APDU ${i}: ${(e as Error).message}`);
      }
    });
    try {
      const body = encodeScriptBody({ delayS: 0, capdus });
      if (body.length > RelayLimits.maxBody) throw arg('the script is too large');
    } catch (e) {
      throw e instanceof RelayError && e.code !== 'ERR_RELAY_ARGUMENT' ? arg(e.message) : e;
    }
    return upperHex(uid);
  }

  private async expire(id: string, timeoutMs: number): Promise<void> {
    await this.fail(id, ['queued', 'delivered'], 'ERR_RELAY_TIMEOUT', `no answer from the agent within ${timeoutMs} ms`);
  }

  private async fail(id: string, from: readonly ('queued' | 'delivered')[], code: string, message: string): Promise<void> {
    await this.store.transition(id, from, { state: 'failed', error: { code, message }, settledAt: Date.now(), tokenHash: undefined });
  }

  private async settleCaller(id: string): Promise<void> {
    const c = this.callers.get(id);
    if (!c) return;
    const r = await this.store.get(id);
    if (!r || (r.state !== 'done' && r.state !== 'failed')) return;
    if (!this.callers.delete(id)) return;
    clearTimeout(c.timer);
    if (r.state === 'done' && r.result) {
      c.resolve({ rapdus: r.result.rapdus.map((x) => x.slice()), status: r.result.status, hostId: r.hostId ?? '', deliveries: r.deliveries });
    } else {
      c.reject(new RelayError((r.error?.code ?? 'ERR_RELAY_INTERRUPTED') as never, r.error?.message ?? 'the script failed'));
    }
  }

  // ---- store events ---------------------------------------------------------------------------

  private onEvent(e: RelayEvent): void {
    if (e.type === 'settled') void this.settleCaller(e.id);
    else if (e.type === 'queued') {
      if (e.continues !== undefined) {
        const h = this.holds.get(e.continues);
        if (h) void this.deliverContinuation(h);
      } else {
        for (const w of this.waiters.values()) if (w.uids.has(e.uid)) void this.claimFor(w);
      }
    } else if (e.type === 'session-closed') {
      const h = this.holds.get(e.id);
      if (h) this.endHold(h);
    } else if (e.type === 'delivered') {
      this.emit('delivered', e);
    }
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  /**
   * The relay endpoint for the operator's node:https server: handles (and returns true for) every
   * request whose path is under /admin/v1/, answers are sent asynchronously; returns false for any
   * other path, which the caller serves.
   */
  handleRelay = (req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url ?? '';
    if (!url.startsWith(RelayPath.prefix)) return false;
    void this.serve(req, res, url).catch((e: unknown) => {
      const err = e instanceof RelayError ? e : new RelayError('ERR_RELAY_UNAVAILABLE', 'internal error');
      if (!(e instanceof RelayError)) this.log(`relay: internal error: ${(e as Error).message}`);
      sendError(res, err, true);
    });
    return true;
  };

  private async serve(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    let bodyRead = false;
    try {
      if (this.closed) throw new RelayError('ERR_RELAY_UNAVAILABLE', 'the operator is shutting down');
      let token: string | undefined;
      if (url === RelayPath.poll) token = undefined;
      else if (url.startsWith(RelayPath.script) && isNextUriToken(url.slice(RelayPath.script.length))) token = url.slice(RelayPath.script.length);
      else throw new RelayError('ERR_RELAY_NOT_FOUND', 'no such relay path');
      if (req.method !== 'POST') throw new RelayError('ERR_RELAY_METHOD', 'the relay endpoint takes POST');
      checkProtocol(req);
      const hostId = await this.authenticate(req);
      checkJson(req);
      if (token === undefined) {
        await this.servePoll(req, res, hostId);
      } else {
        await this.serveAnswers(req, res, hostId, token, () => (bodyRead = true));
      }
      bodyRead = true;
    } catch (e) {
      if (e instanceof RelayError) {
        if (e.code !== 'ERR_RELAY_NOT_FOUND' && e.code !== 'ERR_RELAY_GONE') this.log(`relay: refused ${req.method} ${url.startsWith(RelayPath.script) ? RelayPath.script + '…' : url.slice(0, 40)}: ${e.code}`);
        sendError(res, e, !bodyRead);
        return;
      }
      throw e;
    }
  }

  private async authenticate(req: IncomingMessage): Promise<string> {
    const claimed = parseFrom(requiredHeader(req, RelayHeader.from));
    const auth = oneHeader(req, RelayHeader.authorization);
    if (auth === undefined) throw new RelayError('ERR_RELAY_UNAUTHORIZED', 'a bearer token is required');
    const token = parseBearer(auth);
    let hostId: string | undefined;
    try {
      hostId = await this.o.authenticateAgent(token, claimed);
    } catch (e) {
      this.log(`relay: authenticateAgent failed: ${(e as Error).message}`);
      throw new RelayError('ERR_RELAY_UNAVAILABLE', 'cannot check the token now');
    }
    if (hostId === undefined) throw new RelayError('ERR_RELAY_UNAUTHORIZED', 'unknown bearer token');
    if (hostId !== claimed) throw new RelayError('ERR_RELAY_FORBIDDEN', 'the token belongs to another host');
    return hostId;
  }

  private async servePoll(req: IncomingMessage, res: ServerResponse, hostId: string): Promise<void> {
    const uids = parseSeList(requiredHeader(req, RelayHeader.seList)).map(upperHex);
    const resume = parseResume(oneHeader(req, RelayHeader.resume));
    const heartbeat = decodePollBody(await readBody(req, RelayLimits.maxPollBody, this.bodyTimeoutMs));
    this.hostInfo.set(hostId, { hostId, lastPollAt: Date.now(), heartbeat, cards: uids });
    try {
      this.o.onHeartbeat?.(hostId, heartbeat, uids.map((u) => fromHex(u)));
    } catch (e) {
      this.log(`relay: onHeartbeat failed: ${(e as Error).message}`);
    }
    if (resume) this.log(`relay: host ${hostId} resumes (agent restarted)`);
    // One dialog per agent: a poll ends this host's open dialogs (and supersedes its older poll).
    const older = this.waiters.get(hostId);
    if (older) this.endWaiter(older);
    await this.endDialogs(hostId);
    if (this.waiters.size >= this.maxWaitingPolls) throw new RelayError('ERR_RELAY_UNAVAILABLE', 'too many agents waiting');
    const w: Waiter = { hostId, uids: new Set(uids), res, done: false, claiming: false, again: false };
    this.waiters.set(hostId, w);
    res.on('close', () => this.endWaiter(w, false));
    w.timer = setTimeout(() => this.endWaiter(w), this.pollHoldMs);
    this.emit('polling', hostId);
    await this.claimFor(w);
  }

  /** Ends `hostId`'s dialogs: re-queues or interrupts its delivered scripts, closes its held sessions. */
  private async endDialogs(hostId: string): Promise<void> {
    for (const r of await this.store.openForHost(hostId)) {
      if (r.state === 'delivered') {
        if (r.continues === undefined && r.redeliver && r.deliveries < this.maxDeliveries) {
          const back = await this.store.transition(r.id, 'delivered', { state: 'queued', tokenHash: undefined, hostId: undefined });
          if (back) this.log(`relay: script ${r.id.slice(0, 8)} for card ${short(r.uid)} re-queued (host ${hostId} restarted before answering)`);
        } else {
          await this.fail(r.id, ['delivered'], 'ERR_RELAY_INTERRUPTED', `the agent of host ${hostId} restarted before answering; restart the session`);
        }
      } else {
        await this.closeSession(r.id);
      }
    }
  }

  private endWaiter(w: Waiter, answer = true): void {
    if (w.done) return;
    w.done = true;
    clearTimeout(w.timer);
    if (this.waiters.get(w.hostId) === w) this.waiters.delete(w.hostId);
    if (answer) sendNoContent(w.res, this.retryAfterS);
  }

  /** Delivers the oldest queued script for one of `w`'s cards, if any. */
  private async claimFor(w: Waiter): Promise<void> {
    if (w.claiming) {
      w.again = true;
      return;
    }
    w.claiming = true;
    try {
      do {
        w.again = false;
        for (let attempt = 0; attempt < 8 && !w.done; attempt++) {
          const next = await this.store.nextQueued([...w.uids]);
          if (!next || w.done) break;
          const token = randomBytes(32).toString('base64url');
          const got = await this.store.transition(next.id, 'queued', {
            state: 'delivered',
            hostId: w.hostId,
            tokenHash: hashToken(token),
            deliveries: next.deliveries + 1,
            deliveredAt: Date.now(),
          });
          if (!got) continue; // another poll (or node) took it
          if (w.done || !open(w.res)) {
            await this.store.transition(got.id, 'delivered', { state: 'queued', hostId: undefined, tokenHash: undefined, deliveries: next.deliveries });
            break;
          }
          this.endWaiter(w, false);
          this.sendScriptTo(w.res, got, token);
          return;
        }
      } while (w.again && !w.done);
    } finally {
      w.claiming = false;
    }
  }

  private sendScriptTo(res: ServerResponse, r: ScriptRecord, token: string): void {
    const body = encodeScriptBody({ delayS: 0, capdus: r.capdus });
    sendScript(
      res,
      {
        [RelayHeader.nextUri]: formatNextUri(token),
        [RelayHeader.targetedSe]: formatSeId(fromHex(r.uid)),
        [RelayHeader.targetedApplication]: formatAid(fromHex(r.aid)),
      },
      body,
    );
    this.log(`relay: script ${r.id.slice(0, 8)} (${r.capdus.length} C-APDUs) to host ${r.hostId} for card ${short(r.uid)}${r.deliveries > 1 ? `, delivery ${r.deliveries}` : ''}${r.continues ? ', same channel' : ''}`);
  }

  private async serveAnswers(req: IncomingMessage, res: ServerResponse, hostId: string, token: string, bodyConsumed: () => void): Promise<void> {
    const r = await this.store.findByToken(hashToken(token));
    if (!r) throw new RelayError('ERR_RELAY_NOT_FOUND', 'unknown or expired Next-URI');
    if (r.hostId !== hostId) throw new RelayError('ERR_RELAY_FORBIDDEN', 'this Next-URI belongs to another host');
    if (r.state !== 'delivered') throw new RelayError('ERR_RELAY_GONE', 'this Next-URI was already used');
    const se = upperHex(parseSeId(requiredHeader(req, RelayHeader.targetedSe)));
    if (se !== r.uid) throw new RelayError('ERR_RELAY_MISMATCH', 'X-Admin-Targeted-SE is not the card of this script');
    const status = parseScriptStatus(requiredHeader(req, RelayHeader.scriptStatus));
    const resume = parseResume(oneHeader(req, RelayHeader.resume));
    const rapdus = decodeResultBody(await readBody(req, RelayLimits.maxBody, this.bodyTimeoutMs));
    bodyConsumed();
    if (resume) {
      // The agent restarted and re-navigates its last Next-URI: it has no answers.
      if (rapdus.length !== 0) throw new RelayError('ERR_RELAY_MISMATCH', 'a resumed Next-URI carries no R-APDUs');
      await this.endDialogs(hostId);
      const again = await this.store.get(r.id);
      if (again?.state === 'queued') {
        const w: Waiter = { hostId, uids: new Set([r.uid]), res, done: false, claiming: false, again: false };
        await this.claimFor(w);
        if (!w.done) sendNoContent(res);
      } else sendNoContent(res);
      return;
    }
    if (rapdus.length > r.capdus.length) throw new RelayError('ERR_RELAY_MISMATCH', `${rapdus.length} R-APDUs for ${r.capdus.length} C-APDUs`);
    if (status === 'ok' && rapdus.length === 0) throw new RelayError('ERR_RELAY_MISMATCH', "status 'ok' with no R-APDU");
    const keep = r.keepOpen && status === 'ok';
    const done = await this.store.transition(
      r.id,
      'delivered',
      { state: 'done', result: { status, rapdus }, settledAt: Date.now(), sessionOpen: keep },
      (cur) => cur.tokenHash === r.tokenHash,
    );
    if (!done) throw new RelayError('ERR_RELAY_GONE', 'this Next-URI was already used');
    const bytes = rapdus.reduce((n, x) => n + x.length, 0);
    this.log(`relay: answers to script ${r.id.slice(0, 8)} from host ${hostId}: ${status}, ${rapdus.length}/${r.capdus.length} R-APDUs, ${bytes} bytes`);
    if (!keep) {
      sendNoContent(res);
      return;
    }
    const h: Hold = { scriptId: r.id, hostId, res, done: false };
    this.holds.set(r.id, h);
    res.on('close', () => {
      if (!h.done) void this.closeSession(r.id);
    });
    h.timer = setTimeout(() => void this.closeSession(r.id), this.sessionHoldMs);
    await this.deliverContinuation(h);
  }

  /** Answers a held POST with the queued continuation of its script, if there is one. */
  private async deliverContinuation(h: Hold): Promise<void> {
    for (const c of await this.store.continuationsOf(h.scriptId)) {
      if (h.done) return;
      const token = randomBytes(32).toString('base64url');
      const got = await this.store.transition(c.id, 'queued', {
        state: 'delivered',
        hostId: h.hostId,
        tokenHash: hashToken(token),
        deliveries: c.deliveries + 1,
        deliveredAt: Date.now(),
      });
      if (!got) continue;
      h.done = true;
      clearTimeout(h.timer);
      this.holds.delete(h.scriptId);
      // The channel now belongs to the continuation (it may keep it open in turn).
      await this.store.transition(h.scriptId, 'done', { sessionOpen: false }, (cur) => cur.sessionOpen === true);
      this.sendScriptTo(h.res, got, token);
      return;
    }
  }

  /** Closes the session held after script `id`: its continuations fail, the held POST gets 204. */
  private async closeSession(id: string): Promise<void> {
    await this.store.transition(id, 'done', { sessionOpen: false }, (cur) => cur.sessionOpen === true);
    for (const c of await this.store.continuationsOf(id)) {
      await this.fail(c.id, ['queued'], 'ERR_RELAY_SESSION_LOST', 'the channel of the previous script was closed');
    }
    const h = this.holds.get(id);
    if (h) this.endHold(h);
  }

  private endHold(h: Hold): void {
    if (h.done) return;
    h.done = true;
    clearTimeout(h.timer);
    this.holds.delete(h.scriptId);
    sendNoContent(h.res);
  }

  /** Stops serving: waiting polls and held sessions get 204, waiting callers ERR_RELAY_CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.purgeTimer);
    for (const w of [...this.waiters.values()]) this.endWaiter(w);
    for (const h of [...this.holds.values()]) await this.closeSession(h.scriptId);
    for (const r of await this.store.pending()) {
      if (this.callers.has(r.id)) await this.fail(r.id, ['queued', 'delivered'], 'ERR_RELAY_CLOSED', 'the relay hub was closed');
    }
    // Let the settle events run, then drop whatever is left.
    await new Promise<void>((r) => setImmediate(r));
    for (const [id, c] of this.callers) {
      clearTimeout(c.timer);
      c.reject(new RelayError('ERR_RELAY_CLOSED', 'the relay hub was closed'));
      this.callers.delete(id);
    }
    this.unwatch();
  }
}
