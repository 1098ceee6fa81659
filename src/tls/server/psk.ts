/**
 * PSK selection for a ClientHello (RFC 8446 §4.2.9–§4.2.11, §4.6.1): tickets this server sealed
 * (psk_dhe_ke only) and external PSKs from config.findPsk (psk_dhe_ke or psk_ke).
 *
 * The identities are tried in the client's order; the first usable one is selected:
 *   - external: findPsk knows it and its hash is the negotiated suite's;
 *   - ticket: it opens under a ticket key (current or previous), was issued for TLS 1.3 with a suite of
 *     the same hash and the same SNI, is within its lifetime, and the client's ticket age
 *     (obfuscated_ticket_age − ticket_age_add) is within TICKET_AGE_SKEW_MS of ours.
 * An identity that is not usable is skipped (a full handshake may follow). The selected identity's
 * binder must then verify (constant time), else decrypt_error.
 * SECRETS: PskChoice.psk (owned by the caller, which wipes it).
 * imports bytes/ and tls/ siblings only.
 */
import { ctEqual, wipe } from '../../bytes/index.js';
import type { PeerIdentity, TlsServerConfig } from '../api.js';
import { ExtensionType, ProtocolVersion } from '../constants.js';
import { SUITES, type SuiteParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import { EarlySecret } from '../keyschedule/schedule.js';
import { openTicket } from '../tickets.js';
import type { ClientHello } from '../wire/clientHello.js';
import { PskKeyExchangeMode, parseOfferedPsks, parsePskKeyExchangeModes, type OfferedPsks } from '../wire/preSharedKey.js';
import { peerIdentityFromCertificate } from '../x509/index.js';
import { findExtension } from './negotiate.js';
import { decodeTicketState, wipeTicketState } from './ticketState.js';

/** Largest difference accepted between the client's and our view of a ticket's age. */
export const TICKET_AGE_SKEW_MS = 10_000;
export const DEFAULT_TICKET_LIFETIME_SECONDS = 7200;
export const MAX_TICKET_LIFETIME_SECONDS = 604800;

export interface PskOffer {
  readonly offered: OfferedPsks;
  readonly modes: readonly number[];
}

/** The client's pre_shared_key offer, or undefined. pre_shared_key without psk_key_exchange_modes → missing_extension. */
export function pskOffer(ch: ClientHello): PskOffer | undefined {
  const data = findExtension(ch, ExtensionType.preSharedKey);
  if (!data) return undefined;
  const modesData = findExtension(ch, ExtensionType.pskKeyExchangeModes);
  if (!modesData) throw tlsError('ERR_TLS_MISSING_EXTENSION', 'pre_shared_key without psk_key_exchange_modes');
  return { offered: parseOfferedPsks(data), modes: parsePskKeyExchangeModes(modesData) };
}

export interface PskChoice {
  readonly kind: 'ticket' | 'psk';
  /** Index of the selected identity (ServerHello.pre_shared_key.selected_identity). */
  readonly index: number;
  /** SECRET: the PSK (a copy the caller owns). */
  readonly psk: Uint8Array;
  /** psk_dhe_ke (true) or psk_ke (false). */
  readonly dhe: boolean;
  /** The external PSK identity (kind 'psk'). */
  readonly identity?: Uint8Array;
  /** The client identity restored from the ticket (kind 'ticket'). */
  readonly peer?: PeerIdentity;
}

export interface PskSelectParams {
  readonly config: TlsServerConfig;
  readonly offer: PskOffer;
  readonly suite: SuiteParams;
  /** Whether an ECDHE share was negotiated (psk_dhe_ke possible). */
  readonly dheAvailable: boolean;
  readonly serverName: string | undefined;
  /** The whole ClientHello message (header included). */
  readonly clientHelloRaw: Uint8Array;
  /** Transcript-Hash(prefix ‖ truncated ClientHello); prefix = message_hash ‖ HRR after a retry. */
  binderHash(truncatedClientHello: Uint8Array): Uint8Array;
}

/** The selected PSK with a verified binder, or undefined (no usable identity). */
export function selectPsk(p: PskSelectParams): PskChoice | undefined {
  const { offer } = p;
  const prefs = p.config.pskKeyExchangeModes ?? [PskKeyExchangeMode.pskDheKe, PskKeyExchangeMode.pskKe];
  const dheOk = p.dheAvailable && offer.modes.includes(PskKeyExchangeMode.pskDheKe) && prefs.includes(PskKeyExchangeMode.pskDheKe);
  const keOk = offer.modes.includes(PskKeyExchangeMode.pskKe) && prefs.includes(PskKeyExchangeMode.pskKe);
  // The server's preference decides between the two when both are possible.
  const preferKe = keOk && (!dheOk || prefs.indexOf(PskKeyExchangeMode.pskKe) < prefs.indexOf(PskKeyExchangeMode.pskDheKe));
  for (let i = 0; i < offer.offered.identities.length; i++) {
    const choice = usableIdentity(p, i, dheOk, keOk, preferKe);
    if (!choice) continue;
    try {
      checkBinder(p, choice, offer.offered.binders[i]!);
    } catch (e) {
      wipe(choice.psk);
      throw e;
    }
    return choice;
  }
  return undefined;
}

function usableIdentity(p: PskSelectParams, index: number, dheOk: boolean, keOk: boolean, preferKe: boolean): PskChoice | undefined {
  const { identity, obfuscatedTicketAge } = p.offer.offered.identities[index]!;
  const external = p.config.findPsk?.(identity);
  if (external) {
    if ((external.hash ?? 'sha256') !== p.suite.hash || external.key.length === 0) return undefined;
    if (!dheOk && !keOk) return undefined;
    return { kind: 'psk', index, psk: external.key.slice(), dhe: dheOk && !preferKe, identity: identity.slice() };
  }
  const keys = p.config.ticketKeys;
  if (!keys || !dheOk) return undefined; // tickets resume with psk_dhe_ke only
  const opened = openTicket(keys, identity);
  if (!opened) return undefined;
  const state = decodeTicketState(opened);
  wipe(opened);
  if (!state) return undefined;
  const now = p.config.entropy.now();
  const lifetimeMs = Math.min(state.lifetimeSeconds, MAX_TICKET_LIFETIME_SECONDS) * 1000;
  const serverAge = now - state.createdMs;
  const clientAge = (obfuscatedTicketAge - state.ageAdd) >>> 0;
  const usable =
    state.version === ProtocolVersion.tls13 &&
    SUITES.get(state.cipherSuite)?.hash === p.suite.hash &&
    state.psk.length === p.suite.hashLength &&
    state.serverName === p.serverName &&
    serverAge >= -TICKET_AGE_SKEW_MS &&
    serverAge <= lifetimeMs &&
    Math.abs(clientAge - serverAge) <= TICKET_AGE_SKEW_MS;
  if (!usable) {
    wipeTicketState(state);
    return undefined;
  }
  let peer: PeerIdentity | undefined;
  try {
    peer = state.peerCertificate ? peerIdentityFromCertificate(state.peerCertificate) : undefined;
  } catch {
    wipeTicketState(state);
    return undefined;
  }
  return { kind: 'ticket', index, psk: state.psk, dhe: true, ...(peer ? { peer } : {}) };
}

function checkBinder(p: PskSelectParams, choice: PskChoice, offeredBinder: Uint8Array): void {
  const truncated = p.clientHelloRaw.subarray(0, p.clientHelloRaw.length - p.offer.offered.bindersLength);
  const early = EarlySecret.create(p.suite, choice.psk);
  const expected = early.binder(choice.kind === 'psk', p.binderHash(truncated));
  early.wipe();
  const ok = ctEqual(expected, offeredBinder);
  wipe(expected);
  if (!ok) throw tlsError('ERR_TLS_DECRYPT_ERROR', `PSK binder ${choice.index} does not verify`);
}
