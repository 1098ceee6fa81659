/**
 * agent/agent: the device agent (`setls agent`, `setls serve https --operator`). An HTTPS client of
 * the operator (works behind NAT): it long-polls POST /admin/v1/poll with the UIDs of its cards, runs
 * the scripts it is given on a logical channel of its own on the targeted card (agent/execute.ts),
 * and posts the R-APDUs to the Next-URI, whose answer is the next script on the same channel (200) or
 * the end of the session (204: the channel is closed). One dialog at a time.
 *
 * Trust: the agent is untrusted for administration. It can delay or drop scripts; it cannot read or
 * forge them — SCP03 (C-MAC, C-DECRYPTION, R-MAC, R-ENC) protects them end to end. It authenticates
 * (bearer token) only so the operator is not spammed.
 *
 * Robustness: network errors and 5xx are retried with exponential back-off and jitter (poll) or
 * re-posted for up to `answerRetryMs` (answers); a card that stops answering is reported
 * `unavailable-se` and tried again at each poll; the first poll after start carries
 * X-Admin-Resume: true (the operator re-delivers or interrupts what this host was running).
 *
 * Logs carry lengths, status words and timing only — never APDU bytes.
 * imports bytes/, apdu/, transport/, host/ (CardClient), relay/ and agent/.
 */
import { EventEmitter } from 'node:events';
import { SetlsError, toHex } from '../bytes/index.js';
import { ScriptStatus, type Heartbeat } from '../relay/index.js';
import { AgentCard, transportFailure, type AdminChannel, type AgentCardOptions } from './card-slot.js';
import { checkScript, executeScript } from './execute.js';
import { OperatorClient, OperatorError, type DeliveredScript, type OperatorAnswer } from './operator-client.js';

export const AGENT_NAME = 'setls-agent/1';

export interface DeviceAgentOptions {
  /** https://host:port of the operator. */
  readonly operatorUrl: string | URL;
  /** PEM of the CA of the operator's certificate. */
  readonly ca?: string | Uint8Array;
  /** The bearer token (a function is called at each request: a token file may be rotated). */
  readonly token?: string | (() => string | undefined);
  /** X-Admin-From: //host/<hostId>. */
  readonly hostId: string;
  readonly cards: readonly AgentCardOptions[];
  /** One line per event; lengths, status words and timing only. */
  readonly log?: (line: string) => void;
  /** Deadline of one HTTP request, ms (default 40000). */
  readonly requestTimeoutMs?: number;
  /** Back-off after a failed poll: first and largest delay, ms (default 1000 and 60000). */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** How long answers are re-posted when the operator cannot be reached, ms (default 300000). */
  readonly answerRetryMs?: number;
  /** Deadline of one APDU, ms (default 30000). */
  readonly apduTimeoutMs?: number;
  /** Randomness for the jitter (default Math.random). */
  readonly random?: () => number;
}

export interface AgentStats {
  readonly polls: number;
  readonly scripts: number;
  readonly pollErrors: number;
}

const swHex = (sw: number): string => sw.toString(16).padStart(4, '0').toUpperCase();
const shortUid = (uid: string): string => (uid.length > 12 ? `${uid.slice(0, 8)}…${uid.slice(-4)}` : uid);

/**
 * Events: 'poll' (each poll sent), 'idle' (a 204 to a poll), 'received' ({ uid, apdus }) when a
 * script arrives, 'script' ({ uid, status, apdus, ran, ms }) after its answers were posted. No
 * 'error' event: failures are logged and retried.
 */
export class DeviceAgent extends EventEmitter {
  readonly cards: AgentCard[];
  private readonly client: OperatorClient;
  private readonly startedAt = Date.now();
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private counters = { polls: 0, scripts: 0, pollErrors: 0 };
  private readonly random: () => number;

  private constructor(private readonly o: DeviceAgentOptions) {
    super();
    if (!o.cards || o.cards.length === 0) throw new SetlsError('ERR_AGENT_OPTION', 'the agent needs at least one card');
    const token = o.token;
    this.client = new OperatorClient({
      url: o.operatorUrl,
      hostId: o.hostId,
      ...(o.ca ? { ca: o.ca } : {}),
      ...(token !== undefined ? { token: typeof token === 'string' ? () => token : token } : {}),
      ...(o.requestTimeoutMs ? { requestTimeoutMs: o.requestTimeoutMs } : {}),
    });
    this.cards = o.cards.map((c) => new AgentCard({ ...c, ...(o.apduTimeoutMs && !c.apduTimeoutMs ? { apduTimeoutMs: o.apduTimeoutMs } : {}) }));
    this.random = o.random ?? Math.random;
  }

  /**
   * Opens the agent's home channel on each card (from channel 0: call it before the TLS service
   * takes clients) and reads the UIDs, then starts polling. A card that cannot be prepared now is
   * tried again at each poll (its state is logged).
   */
  static async start(o: DeviceAgentOptions): Promise<DeviceAgent> {
    const a = new DeviceAgent(o);
    for (const c of a.cards) {
      if (await c.prepare()) a.log(`agent: card ${c.uidHex} ready (agent channel ${c.homeChannel})`);
      else a.log(`agent: a card is not ready: ${c.lastError}`);
    }
    a.log(`agent: host ${o.hostId} polling ${a.client.origin}`);
    a.loop = a.run();
    return a;
  }

  get stats(): AgentStats {
    return { ...this.counters };
  }

  private log(line: string): void {
    this.o.log?.(line);
  }

  /** Stops: aborts the request in flight, closes the agent's channels. Scripts in flight are not answered. */
  async stop(): Promise<void> {
    if (this.stopping) {
      await this.loop;
      return;
    }
    this.stopping = true;
    this.client.close();
    this.wake?.();
    await this.loop;
    for (const c of this.cards) await c.close();
    this.log('agent: stopped');
  }

  /** Waits `ms` or until stop(). */
  private pause(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }

  /** Exponential back-off with equal jitter: half fixed, half random. */
  private backoff(failures: number): number {
    const initial = this.o.backoffInitialMs ?? 1000;
    const max = this.o.backoffMaxMs ?? 60_000;
    const d = Math.min(max, initial * 2 ** Math.min(failures - 1, 30));
    return Math.round(d / 2 + (d / 2) * this.random());
  }

  private async refreshCards(): Promise<void> {
    for (const c of this.cards) {
      if (c.ready) continue;
      const before = c.lastError;
      if (await c.prepare()) this.log(`agent: card ${c.uidHex} ready (agent channel ${c.homeChannel})`);
      else if (c.lastError !== before) this.log(`agent: a card is not ready: ${c.lastError}`);
    }
  }

  private heartbeat(): Heartbeat {
    const cards = this.cards.filter((c) => c.uid !== undefined).map((c) => ({ uid: c.uid!, state: c.ready ? ('ready' as const) : ('absent' as const) }));
    return { agent: AGENT_NAME, uptimeS: Math.floor((Date.now() - this.startedAt) / 1000), cards };
  }

  private async run(): Promise<void> {
    let resume = true;
    let failures = 0;
    while (!this.stopping) {
      await this.refreshCards();
      const ready = this.cards.filter((c) => c.ready).map((c) => c.uid!);
      let answer: OperatorAnswer;
      try {
        this.counters.polls++;
        this.emit('poll');
        answer = await this.client.poll(ready, this.heartbeat(), resume);
        resume = false;
        failures = 0;
      } catch (e) {
        if (this.stopping) break;
        failures++;
        this.counters.pollErrors++;
        const wait = this.backoff(failures);
        this.log(`agent: poll failed (${describe(e)}); next try in ${wait} ms`);
        await this.pause(wait);
        continue;
      }
      if (answer.kind === 'script') {
        try {
          await this.dialog(answer.script);
        } catch (e) {
          // A fault of the agent itself: logged; the operator's deadline or the next poll ends the dialog.
          this.log(`agent: dialog failed (${describe(e)})`);
          await this.pause(this.backoff(1));
        }
      }
      else if (answer.kind === 'idle') {
        this.emit('idle');
        await this.pause(answer.retryAfterS * 1000);
      }
    }
  }

  /** One dialog: scripts chained by Next-URIs, on one channel while they target the same card and AID. */
  private async dialog(first: DeliveredScript): Promise<void> {
    let script: DeliveredScript | undefined = first;
    let session: { card: AgentCard; channel: AdminChannel } | undefined;
    try {
      while (script && !this.stopping) {
        if (script.delayS > 0) await this.pause(script.delayS * 1000);
        if (this.stopping) return;
        const uidHex = toHex(script.uid).toUpperCase();
        const aidHex = toHex(script.aid).toUpperCase();
        this.emit('received', { uid: uidHex, apdus: script.capdus.length });
        const t0 = performance.now();
        const card = this.cards.find((c) => c.uidHex === uidHex);
        let status: ScriptStatus = ScriptStatus.ok;
        let rapdus: Uint8Array[] = [];
        let detail = '';
        const bytesIn = script.capdus.reduce((n, c) => n + c.length, 0);
        if (session && (session.card !== card || session.channel.aid !== aidHex)) {
          await session.card.closeAdminChannel(session.channel);
          session = undefined;
        }
        const refused = script.formatError ?? (card ? checkScript(script.capdus, card.transport.extendedLength) : undefined);
        if (script.formatError) {
          status = ScriptStatus.scriptFormatError;
          detail = refused!;
        } else if (!card || !card.ready) {
          status = ScriptStatus.unavailableSe;
          detail = card ? 'card not ready' : 'no such card here';
        } else if (refused) {
          status = ScriptStatus.scriptFormatError;
          detail = refused;
        } else {
          if (!session) {
            const opened = await card.openAdminChannel(script.aid, aidHex);
            if ('channel' in opened) session = { card, channel: opened.channel };
            else {
              status = opened.status;
              detail = opened.why;
            }
          }
          if (session) {
            try {
              const r = await executeScript(session.channel.client, script.capdus, { stopped: () => this.stopping });
              if (r.stop === 'stopped') return; // stopping: no answer (the operator resumes)
              rapdus = r.rapdus;
              detail = `channel ${session.channel.client.channel}: ${r.rapdus.length}/${script.capdus.length} APDUs, ${r.bytesOut} bytes to the card, ${r.bytesIn} from it, SW ${r.sws.map(swHex).join(' ')}${r.stop === 'size' ? ' (stopped: size bound)' : ''}`;
            } catch (e) {
              const kind = transportFailure(e);
              if (!kind) throw e;
              const partial = (e as { partial?: { rapdus: Uint8Array[] } }).partial;
              rapdus = partial?.rapdus ?? [];
              detail = `the card stopped answering after ${rapdus.length} APDUs (${(e as { code?: string }).code})`;
              if (kind === 'gone') {
                status = ScriptStatus.unavailableSe;
                card.markAbsent((e as Error).message);
                session = undefined;
              } else status = ScriptStatus.temporarilyUnavailableApplication;
            }
          }
        }
        const ms = Math.round(performance.now() - t0);
        this.log(`agent: script for card ${shortUid(uidHex)} (${script.capdus.length} C-APDUs, ${bytesIn} bytes): ${status}; ${detail}; ${ms} ms`);
        const next = await this.postAnswers(script, status, rapdus);
        this.counters.scripts++;
        this.emit('script', { uid: uidHex, status, apdus: script.capdus.length, ran: rapdus.length, ms });
        if (status !== ScriptStatus.ok && session) {
          await session.card.closeAdminChannel(session.channel);
          session = undefined;
        }
        script = next?.kind === 'script' ? next.script : undefined;
      }
    } finally {
      if (session) await session.card.closeAdminChannel(session.channel);
    }
  }

  /** Posts answers; retried on network errors and 5xx for answerRetryMs. undefined: the dialog is over. */
  private async postAnswers(script: DeliveredScript, status: ScriptStatus, rapdus: Uint8Array[]): Promise<OperatorAnswer | undefined> {
    const deadline = Date.now() + (this.o.answerRetryMs ?? 300_000);
    for (let failures = 1; !this.stopping; failures++) {
      try {
        const a = await this.client.answer(script.token, script.uid, status, rapdus);
        return a;
      } catch (e) {
        if (this.stopping) return undefined;
        const retry = e instanceof OperatorError && (e.status === 0 || e.status >= 500);
        if (!retry || Date.now() >= deadline) {
          this.log(`agent: answers not accepted (${describe(e)}); dialog ended`);
          return undefined;
        }
        const wait = this.backoff(failures);
        this.log(`agent: posting answers failed (${describe(e)}); again in ${wait} ms`);
        await this.pause(wait);
      }
    }
    return undefined;
  }
}

function describe(e: unknown): string {
  const code = (e as { code?: string })?.code;
  return `${code ? `${code}: ` : ''}${(e as Error)?.message ?? String(e)}`;
}
