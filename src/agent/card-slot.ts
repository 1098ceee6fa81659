/**
 * agent/card-slot: one card as the device agent sees it — the CardTransport it shares with the TLS
 * service, a "home" logical channel of the agent's own, the card UID, and the admin channels opened
 * for scripts.
 *
 *  - The home channel is opened from channel 0 once, when the agent starts (call it before the TLS
 *    service takes clients, as the admin socket does) and again only after the card came back from a
 *    removal or reset. Script channels are opened FROM the home channel, so the TLS service's channel
 *    0 is never touched while it serves.
 *  - The UID comes from the security domain: SELECT A000000151000000 then GET DATA `80 CA DF 50 00`
 *    (public, no secure messaging) on the home channel; the answer is `DF50 len UID` (or the bare
 *    16-byte UID). A `uidSource` replaces that (cards without a security domain yet, tests).
 *  - A script channel: MANAGE CHANNEL open from home, SELECT of the targeted AID on it; closed by
 *    MANAGE CHANNEL close when the agent's session ends. No free channel (6A81) is reported as
 *    temporarily-unavailable-application; a transport failure marks the card absent.
 * imports bytes/, apdu/, transport/, host/ (CardClient), relay/ and agent/.
 */
import { toHex } from '../bytes/index.js';
import { CardClient } from '../host/card-client.js';
import type { CardTransport } from '../transport/card-transport.js';
import { ISD_AID, ScriptStatus } from '../relay/index.js';
import { isoCla, moveCla } from './cla.js';

/** Reads the card UID through a client on the agent's home channel. */
export type UidSource = (home: CardClient) => Promise<Uint8Array>;

export interface AgentCardOptions {
  readonly transport: CardTransport;
  /** Where the UID comes from (default: GET DATA DF50 on the security domain). */
  readonly uidSource?: UidSource;
  /** Deadline of each APDU, ms (default 30000). */
  readonly apduTimeoutMs?: number;
}

/** An open admin channel, SELECTed to `aid`. */
export interface AdminChannel {
  readonly client: CardClient;
  readonly aid: string;
}

export type OpenResult = { readonly channel: AdminChannel } | { readonly status: ScriptStatus; readonly why: string };

/**
 * Failures below the card's answers: 'gone' (removed, reset, transport closed or broken: the agent's
 * channels went with it), 'timeout' (no answer within the APDU deadline: the card may be busy), or
 * undefined (not a transport failure).
 */
export function transportFailure(e: unknown): 'gone' | 'timeout' | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'ERR_CARD_TIMEOUT') return 'timeout';
  if (code.startsWith('ERR_TRANSPORT_') || code === 'ERR_APDU_TRANSPORT_CLOSED' || code === 'ERR_APDU_RESPONSE') return 'gone';
  return undefined;
}

export function isTransportFailure(e: unknown): boolean {
  return transportFailure(e) !== undefined;
}

const swOf = (e: unknown): number | undefined => {
  const sw = (e as { sw?: unknown })?.sw;
  return typeof sw === 'number' ? sw : undefined;
};

/** GET DATA DF50 on the security domain, SELECTed on the home channel. */
export const readIsdUid: UidSource = async (home) => {
  const ch = home.channel;
  const sel = await home.transceive({ cla: isoCla(ch), ins: 0xa4, p1: 0x04, p2: 0x00, data: ISD_AID, ne: 256 });
  if (sel.sw !== 0x9000) throw Object.assign(new Error(`the card has no security domain (SELECT A000000151000000 answered ${sel.sw.toString(16).padStart(4, '0').toUpperCase()})`), { code: 'ERR_AGENT_NO_ISD', sw: sel.sw });
  const r = await home.transceive({ cla: moveCla(0x80, ch), ins: 0xca, p1: 0xdf, p2: 0x50, data: new Uint8Array(0), ne: 256 });
  if (r.sw !== 0x9000) throw Object.assign(new Error(`GET DATA DF50 (card UID) answered ${r.sw.toString(16).padStart(4, '0').toUpperCase()}`), { code: 'ERR_AGENT_UID', sw: r.sw });
  return parseUidData(r.data);
};

/** The UID in a GET DATA DF50 answer: `DF 50 len UID`, or a bare 16-byte UID. */
export function parseUidData(d: Uint8Array): Uint8Array {
  if (d.length >= 3 && d[0] === 0xdf && d[1] === 0x50 && d[2]! + 3 === d.length && d[2]! >= 4 && d[2]! <= 32) return d.slice(3);
  if (d.length === 16) return d.slice();
  throw Object.assign(new Error(`GET DATA DF50 answered ${d.length} bytes that are not a card UID`), { code: 'ERR_AGENT_UID' });
}

export class AgentCard {
  private home: CardClient | undefined;
  private uidValue: Uint8Array | undefined;
  /** The last reason the card is not ready (for logs). */
  lastError = '';

  constructor(private readonly o: AgentCardOptions) {
    if (!o.transport || typeof o.transport.transmit !== 'function') throw new TypeError('AgentCard needs a CardTransport');
  }

  get transport(): CardTransport {
    return this.o.transport;
  }

  get ready(): boolean {
    return this.home !== undefined && this.uidValue !== undefined;
  }

  /** The UID (known once the card was ready once; kept while absent, for the heartbeat). */
  get uid(): Uint8Array | undefined {
    return this.uidValue;
  }

  get uidHex(): string | undefined {
    return this.uidValue && toHex(this.uidValue).toUpperCase();
  }

  get homeChannel(): number | undefined {
    return this.home?.channel;
  }

  private client(channel: number): CardClient {
    return new CardClient(this.o.transport, { channel, ...(this.o.apduTimeoutMs ? { apduTimeoutMs: this.o.apduTimeoutMs } : {}) });
  }

  /**
   * Opens the home channel (from channel 0) and reads the UID, unless ready. False (and
   * `lastError`) when the card cannot be reached or answers no UID.
   */
  async prepare(): Promise<boolean> {
    if (this.ready) return true;
    try {
      if (!this.home) {
        const n = await this.client(0).openChannel();
        this.home = this.client(n);
      }
      const uid = await (this.o.uidSource ?? readIsdUid)(this.home);
      if (!(uid instanceof Uint8Array) || uid.length < 4 || uid.length > 32) throw Object.assign(new Error('the UID source gave no 4..32-byte UID'), { code: 'ERR_AGENT_UID' });
      this.uidValue = uid.slice();
      this.lastError = '';
      return true;
    } catch (e) {
      this.lastError = `${(e as { code?: string }).code ?? 'ERR_AGENT_CARD'}: ${(e as Error).message}`;
      if (transportFailure(e) === 'gone' || swOf(e) === 0x6881) this.home = undefined;
      return false;
    }
  }

  /** The card stopped answering (removed, reset): the home channel is gone with it. */
  markAbsent(why: string): void {
    this.home = undefined;
    this.lastError = why;
  }

  /** Opens an admin channel from the home channel and SELECTs `aid` (hex) on it. */
  async openAdminChannel(aid: Uint8Array, aidHex: string): Promise<OpenResult> {
    if (!this.home) return { status: ScriptStatus.unavailableSe, why: 'the card is not ready' };
    let n: number;
    try {
      n = await this.home.openChannel();
    } catch (e) {
      const sw = swOf(e);
      if (sw === 0x6a81) return { status: ScriptStatus.temporarilyUnavailableApplication, why: 'no free logical channel (6A81)' };
      if (sw === 0x6881 || transportFailure(e) === 'gone') {
        this.markAbsent(`the home channel is gone: ${(e as Error).message}`);
        return { status: ScriptStatus.unavailableSe, why: 'the card lost the agent\'s channel (reset or removed)' };
      }
      return { status: ScriptStatus.temporarilyUnavailableApplication, why: `MANAGE CHANNEL answered ${sw?.toString(16) ?? (e as Error).message}` };
    }
    const client = this.client(n);
    let sw: number;
    try {
      sw = (await client.transceive({ cla: isoCla(n), ins: 0xa4, p1: 0x04, p2: 0x00, data: aid, ne: 256 })).sw;
    } catch (e) {
      if (transportFailure(e) === 'gone') {
        this.markAbsent((e as Error).message);
        return { status: ScriptStatus.unavailableSe, why: 'the card stopped answering' };
      }
      await this.closeAdminChannel({ client, aid: aidHex });
      return { status: ScriptStatus.temporarilyUnavailableApplication, why: (e as Error).message };
    }
    if (sw === 0x9000) return { channel: { client, aid: aidHex } };
    await this.closeAdminChannel({ client, aid: aidHex });
    const hex = sw.toString(16).padStart(4, '0').toUpperCase();
    if (sw === 0x6a82) return { status: ScriptStatus.unknownApplication, why: `SELECT answered ${hex}` };
    if (sw === 0x6982 || sw === 0x6985 || sw === 0x6999 || sw === 0x6283) return { status: ScriptStatus.securityError, why: `SELECT answered ${hex}` };
    return { status: ScriptStatus.temporarilyUnavailableApplication, why: `SELECT answered ${hex}` };
  }

  /** Closes an admin channel (errors ignored: a removed card has no channels left anyway). */
  async closeAdminChannel(ch: AdminChannel): Promise<void> {
    try {
      await ch.client.closeChannel();
    } catch (e) {
      if (transportFailure(e) === 'gone') this.markAbsent((e as Error).message);
    }
  }

  /** Closes the home channel (agent stopping). */
  async close(): Promise<void> {
    const h = this.home;
    this.home = undefined;
    if (!h) return;
    try {
      await h.closeChannel();
    } catch {
      // the card or transport is already gone
    }
  }
}
