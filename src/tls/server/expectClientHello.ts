/**
 * START / RECVD_CH: waits for the ClientHello and negotiates version, suite and group. With a usable
 * key share it emits the whole server flight (flight.ts); when the client supports one of our groups
 * but sent no share for it, it answers with a HelloRetryRequest carrying a sealed cookie (cookie.ts)
 * and waits for ClientHello2 (expectSecondClientHello.ts) keeping no other state.
 * imports bytes/ and tls/ siblings only.
 */
import type { TlsServerConfig } from '../api.js';
import { ExtensionType, HandshakeType } from '../constants.js';
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
import { checkCompression, findExtension, negotiateGroup, negotiateSuite, negotiateVersion } from './negotiate.js';

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
    const choice = negotiateGroup(ch, cfg.groups);

    if (choice.kind === 'retry') {
      // HelloRetryRequest (RFC 8446 §4.1.4): the transcript restarts from message_hash(Hash(ClientHello1)),
      // which travels in the cookie together with the suite and group; no other state is kept.
      const cookie = this.cookies.seal({
        cipherSuite: suite.id,
        group: choice.group.id,
        legacySessionId: ch.legacySessionId,
        clientHello1Hash: hash(suite.hash, msg.raw),
      });
      const hrr = buildHelloRetryRequest({
        legacySessionIdEcho: ch.legacySessionId,
        cipherSuite: suite.id,
        version,
        selectedGroup: choice.group.id,
        cookie,
      });
      const effects: Effect[] = [{ kind: 'sendHandshake', message: hrr }];
      // Middlebox compatibility (RFC 8446 §D.4): the CCS follows our first handshake message, here the HRR.
      if (ch.legacySessionId.length > 0) effects.push({ kind: 'sendChangeCipherSpec' });
      if (findExtension(ch, ExtensionType.earlyData) !== undefined) effects.push({ kind: 'skipEarlyData' });
      return { next: new ExpectSecondClientHello(cfg, this.options, this.cookies), effects };
    }

    const transcript = new Transcript(suite.hash);
    transcript.add(msg.raw);
    return serverFlight({
      config: cfg,
      observe: this.options.onSecret,
      ch,
      version,
      suite,
      group: choice.group,
      share: choice.share,
      transcript,
      ccsAlreadySent: false,
    });
  }
}
