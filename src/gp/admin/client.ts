/**
 * gp/admin/client: `AdminClient`, the off-card side of an administration session with a setls
 * security domain, over any transmit function (in-process card, PC/SC, a device host relaying
 * bytes): SELECT, public GET DATA, INITIALIZE UPDATE / EXTERNAL AUTHENTICATE (Scp03Host), then
 * PUT KEY, SET STATUS, GET STATUS and STORE DATA function requests wrapped at the session's level,
 * every response unwrapped and its R-MAC checked. Transmit must return the whole response
 * (data ‖ SW), 61xx already followed. imports bytes/ and gp/.
 *
 * Secrets: the static keys live in the Scp03Host until `close()`; request plaintexts stay the
 * caller's.
 */
import { SetlsError, concat, toHex } from '../../bytes/index.js';
import { claFor } from '../cla.js';
import { Scp03Host } from '../host.js';
import type { StaticKeys } from '../keys.js';
import { buildPutKey, checkPutKeyResponse } from '../put-key.js';
import { buildStoreData } from '../store-data.js';
import { ADMIN_LEVEL, GET_STATUS_P2_TLV, ISD_AID, IsdIns } from './constants.js';

export type Transmit = (apdu: Uint8Array) => Uint8Array | Promise<Uint8Array>;

export class AdminSwError extends SetlsError {
  constructor(
    readonly sw: number,
    what: string,
  ) {
    super('ERR_ADMIN_SW', `${what} answered ${sw.toString(16).padStart(4, '0')}`);
    this.name = 'AdminSwError';
  }
}

export interface AdminClientOptions {
  /** Logical channel the security domain is (or will be) selected on (default 0). */
  readonly channel?: number;
  /** The SD's AID (default ISD_AID). */
  readonly sdAid?: Uint8Array;
  /** The AID in the pseudo-random challenge's KDF context (default sdAid). */
  readonly challengeAid?: Uint8Array;
  /** Host challenge source (tests: a fixed one). */
  readonly random?: (n: number) => Uint8Array;
}

function split(r: Uint8Array): { data: Uint8Array; sw: number } {
  if (r.length < 2) throw new SetlsError('ERR_ADMIN_SW', 'response without a status word');
  return { data: r.slice(0, r.length - 2), sw: (r[r.length - 2]! << 8) | r[r.length - 1]! };
}

export class AdminClient {
  private host: Scp03Host | undefined;
  readonly channel: number;
  readonly sdAid: Uint8Array;

  constructor(
    private readonly transmit: Transmit,
    private readonly opts: AdminClientOptions = {},
  ) {
    this.channel = opts.channel ?? 0;
    this.sdAid = opts.sdAid ?? ISD_AID;
  }

  /** The open session's host object (undefined before `open`). */
  get session(): Scp03Host | undefined {
    return this.host;
  }

  private async plain(apdu: Uint8Array, what: string): Promise<Uint8Array> {
    const { data, sw } = split(await this.transmit(apdu));
    if (sw !== 0x9000) throw new AdminSwError(sw, what);
    return data;
  }

  /** SELECT the security domain on this channel; returns the FCI. */
  async select(): Promise<Uint8Array> {
    const cmd = concat(Uint8Array.of(claFor(this.channel, { proprietary: false }), IsdIns.select, 0x04, 0x00, this.sdAid.length), this.sdAid, Uint8Array.of(0));
    return this.plain(cmd, 'SELECT');
  }

  /** GET DATA of a public item, without secure messaging (before or outside a session). */
  async getData(tag: number): Promise<Uint8Array> {
    return this.plain(Uint8Array.of(claFor(this.channel), IsdIns.getData, tag >> 8, tag & 0xff, 0x00), `GET DATA ${tag.toString(16)}`);
  }

  /** Opens an SCP03 session with `keys` at `level` (default 33). Throws on any failure (never retry blindly). */
  async open(keys: StaticKeys, level: number = ADMIN_LEVEL, requestKvn?: number): Promise<void> {
    this.host?.close();
    const host = new Scp03Host({
      keys,
      channel: this.channel,
      sdAid: this.opts.challengeAid ?? this.sdAid,
      ...(requestKvn !== undefined ? { requestKvn } : {}),
      ...(this.opts.random ? { random: this.opts.random } : {}),
    });
    this.host = host;
    host.processInitializeUpdateResponse(await this.transmit(host.initializeUpdate()));
    host.processExternalAuthenticateResponse(await this.transmit(host.externalAuthenticate(level)));
  }

  private need(): Scp03Host {
    if (!this.host || this.host.state !== 'open') throw new SetlsError('ERR_ADMIN_STATE', 'no open admin session');
    return this.host;
  }

  /** Wraps a plain command, sends it, verifies and removes the response protection. */
  async send(plain: Uint8Array): Promise<{ data: Uint8Array; sw: number }> {
    const host = this.need();
    return host.unwrap(await this.transmit(host.wrap(plain)));
  }

  private async ok(plain: Uint8Array, what: string): Promise<Uint8Array> {
    const { data, sw } = await this.send(plain);
    if (sw !== 0x9000) throw new AdminSwError(sw, what);
    return data;
  }

  /** Runs one STORE DATA function request (split into blocks); returns the response TLV. */
  async call(request: Uint8Array): Promise<Uint8Array> {
    const blocks = buildStoreData(request, { channel: this.channel });
    let out: Uint8Array = new Uint8Array(0);
    for (const b of blocks) out = await this.ok(b, `STORE DATA ${toHex(request.subarray(0, 2)).toUpperCase()} block ${b[3]}`);
    return out;
  }

  /**
   * Runs one STORE DATA function request WITHOUT secure messaging (zero-touch enrolment: the card
   * accepts the enrolment functions plain while it has no operator root anchor); returns the
   * response TLV. Refused (6982) once the card has an anchor.
   */
  async callPlain(request: Uint8Array): Promise<Uint8Array> {
    const blocks = buildStoreData(request, { channel: this.channel });
    let out: Uint8Array = new Uint8Array(0);
    for (const b of blocks) out = await this.plain(b, `STORE DATA ${toHex(request.subarray(0, 2)).toUpperCase()} block ${b[3]} (plain)`);
    return out;
  }

  /** PUT KEY: adds `newKeys` (or replaces `replaceKvn`), checking the card's key check values. */
  async putKey(newKeys: StaticKeys, replaceKvn?: number): Promise<void> {
    const host = this.need();
    const cmd = buildPutKey(host.dek!, newKeys, { channel: this.channel, ...(replaceKvn !== undefined ? { replaceKvn } : {}) });
    const data = await this.ok(cmd, 'PUT KEY');
    if (!checkPutKeyResponse(data, newKeys)) throw new SetlsError('ERR_ADMIN_PUT_KEY', 'PUT KEY: the key check values do not match');
  }

  /** SET STATUS P1 P2 [data]. */
  async setStatus(p1: number, p2: number, data: Uint8Array = new Uint8Array(0)): Promise<void> {
    const head = Uint8Array.of(claFor(this.channel), IsdIns.setStatus, p1, p2);
    await this.ok(data.length ? concat(head, Uint8Array.of(data.length), data) : head, 'SET STATUS');
  }

  /** GET STATUS P1 with search criteria `4F <aid>` (all when empty); the E3 entries. */
  async getStatus(p1: number, aid: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    const crit = concat(Uint8Array.of(0x4f, aid.length), aid);
    return this.ok(concat(Uint8Array.of(claFor(this.channel), IsdIns.getStatus, p1, GET_STATUS_P2_TLV, crit.length), crit, Uint8Array.of(0)), 'GET STATUS');
  }

  /** Ends the session on this side (the card's ends with the next IU, a deselect or a reset). */
  close(): void {
    this.host?.close();
    this.host = undefined;
  }
}
