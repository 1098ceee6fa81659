/**
 * START / RECVD_CH: waits for the ClientHello and negotiates version, suite, PSK and group. With a usable
 * key share (or a psk_ke PSK) it emits the whole server flight (flight.ts); when the client supports one
 * of our groups but sent no share for it, it answers with a HelloRetryRequest carrying a sealed cookie
 * (cookie.ts) and waits for ClientHello2 (expectSecondClientHello.ts) keeping no other state (the PSK
 * offer is then judged on ClientHello2, whose binders cover the HelloRetryRequest).
 * PSK (psk.ts): the first usable identity wins (its binder must verify, else decrypt_error); with none,
 * a full handshake follows if the client can do one (key_share + signature_algorithms), else
 * handshake_failure.
 * imports bytes/ and tls/ siblings only.
 */
import { SetlsError } from '../../bytes/index.js';
import type { TlsServerConfig } from '../api.js';
import { ExtensionType, HandshakeType } from '../constants.js';
import type { SuiteParams } from '../crypto.js';
import { hash } from '../crypto.js';
import { tlsError } from '../errors.js';
import type { SecretObserver } from '../keyschedule/schedule.js';
import { Transcript } from '../keyschedule/transcript.js';
import { parseClientHello } from '../wire/clientHello.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { buildHelloRetryRequest } from '../wire/serverHello.js';
import type { CookieSealer } from './cookie.js';
import type { Effect, ServerState, Transition } from './effects.js';
import { ExpectSecondClientHello } from './expectSecondClientHello.js';
import { serverFlight } from './flight.js';
import {
  checkCompression,
  clientServerName,
  findExtension,
  negotiateGroup,
  negotiateSuite,
  negotiateVersion,
  type GroupChoice,
} from './negotiate.js';
import { PskKeyExchangeMode } from '../wire/preSharedKey.js';
import type { ClientHello } from '../wire/clientHello.js';
import { pskOffer, selectPsk } from './psk.js';

/** Engine options that are not part of the card's API (tests only). */
export interface InternalOptions {
  /** Observer of key-schedule secrets and traffic keys (RFC 8448 tests). */
  readonly onSecret?: SecretObserver;
}

export class ExpectClientHello implements ServerState {
  readonly name = 'ExpectClientHello';
  readonly publicState = 'handshaking' as const;
  readonly acceptsChangeCipherSpec = false;

  constructor(
    private readonly config: TlsServerConfig,
    private readonly options: InternalOptions,
    private readonly cookies: CookieSealer,
  ) {}

  handleApplicationData(): Transition {
    throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before ClientHello');
  }

  wipe(): void {}

  handleHandshake(msg: HandshakeMessage): Transition {
    if (msg.type !== HandshakeType.clientHello) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `expected ClientHello, got handshake type ${msg.type}`);
    }
    const cfg = this.config;
    const ch = parseClientHello(msg.body);

    // --- negotiation (order decides which alert wins when several things are wrong) ---
    const version = negotiateVersion(ch);
    checkCompression(ch);
    const suite = negotiateSuite(ch, cfg.cipherSuites);
    const offer = pskOffer(ch); // missing_extension without psk_key_exchange_modes
    const hasShares = findExtension(ch, ExtensionType.keyShare) !== undefined && findExtension(ch, ExtensionType.supportedGroups) !== undefined;
    let choice: GroupChoice | undefined;
    if (!offer || (hasShares && offer.modes.includes(PskKeyExchangeMode.pskDheKe))) {
      try {
        choice = negotiateGroup(ch, cfg.groups);
      } catch (e) {
        // No group in common, but the client also allows psk_ke: a PSK without ECDHE may still work.
        if (!offer?.modes.includes(PskKeyExchangeMode.pskKe) || !(e instanceof SetlsError) || e.code !== 'ERR_TLS_HANDSHAKE_FAILURE') throw e;
      }
      if (choice?.kind === 'retry') return this.helloRetry(msg, ch, version, suite, choice.group.id);
    }
    const psk = offer
      ? selectPsk({
          config: cfg,
          offer,
          suite,
          dheAvailable: choice?.kind === 'share',
          serverName: clientServerName(ch),
          clientHelloRaw: msg.raw,
          binderHash: (truncated) => hash(suite.hash, truncated),
        })
      : undefined;
    if (offer && !psk) {
      // No usable PSK: a full handshake if the client offered the certificate path.
      if (!hasShares || findExtension(ch, ExtensionType.signatureAlgorithms) === undefined) {
        throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'no usable PSK and no certificate-based key exchange offered');
      }
      choice ??= negotiateGroup(ch, cfg.groups);
      if (choice.kind === 'retry') return this.helloRetry(msg, ch, version, suite, choice.group.id);
    }
    const dhe = choice?.kind === 'share' && (!psk || psk.dhe) ? choice : undefined;

    const transcript = new Transcript(suite.hash);
    transcript.add(msg.raw);
    return serverFlight({
      config: cfg,
      observe: this.options.onSecret,
      ch,
      version,
      suite,
      group: dhe?.group,
      share: dhe?.share,
      psk,
      transcript,
      ccsAlreadySent: false,
    });
  }

  /**
   * HelloRetryRequest (RFC 8446 §4.1.4): the transcript restarts from message_hash(Hash(ClientHello1)),
   * which travels in the cookie together with the suite and group; no other state is kept.
   */
  private helloRetry(msg: HandshakeMessage, ch: ClientHello, version: number, suite: SuiteParams, group: number): Transition {
    const cookie = this.cookies.seal({
      cipherSuite: suite.id,
      group,
      legacySessionId: ch.legacySessionId,
      clientHello1Hash: hash(suite.hash, msg.raw),
    });
    const hrr = buildHelloRetryRequest({
      legacySessionIdEcho: ch.legacySessionId,
      cipherSuite: suite.id,
      version,
      selectedGroup: group,
      cookie,
    });
    const effects: Effect[] = [{ kind: 'sendHandshake', message: hrr }];
    // Middlebox compatibility (RFC 8446 §D.4): the CCS follows our first handshake message, here the HRR.
    if (ch.legacySessionId.length > 0) effects.push({ kind: 'sendChangeCipherSpec' });
    if (findExtension(ch, ExtensionType.earlyData) !== undefined) effects.push({ kind: 'skipEarlyData' });
    return { next: new ExpectSecondClientHello(this.config, this.options, this.cookies), effects };
  }
}
