/**
 * After our HelloRetryRequest: waits for ClientHello2 (RFC 8446 §4.1.2, §4.1.4). The only state is
 * the cookie key (cookie.ts): suite, group, session id and Hash(ClientHello1) come back in the cookie.
 *
 * ClientHello2 must carry our cookie (absent → missing_extension; altered/forged → illegal_parameter),
 * still offer TLS 1.3 and the suite the HRR named, repeat ClientHello1's legacy_session_id, carry
 * exactly one key share, for the selected group, and not offer early_data; otherwise illegal_parameter.
 * A second HelloRetryRequest is never sent. A plaintext CCS before ClientHello2 is dropped (§D.4).
 * A PSK offer is judged here (psk.ts), its binders covering message_hash ‖ HelloRetryRequest ‖
 * truncated ClientHello2; with no usable PSK the handshake goes on with the certificate.
 * imports bytes/ and tls/ siblings only.
 */
import { equalBytes } from '../../bytes/index.js';
import type { TlsServerConfig } from '../api.js';
import { ExtensionType, HandshakeType } from '../constants.js';
import { SUITES } from '../crypto.js';
import { tlsError } from '../errors.js';
import { Transcript } from '../keyschedule/transcript.js';
import { parseClientHello } from '../wire/clientHello.js';
import { parseCookie } from '../wire/extensions.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { buildHelloRetryRequest } from '../wire/serverHello.js';
import type { CookieSealer } from './cookie.js';
import type { ServerState, Transition } from './effects.js';
import type { InternalOptions } from './expectClientHello.js';
import { serverFlight } from './flight.js';
import { checkCompression, clientServerName, findExtension, negotiateVersion, retriedKeyShare } from './negotiate.js';
import { pskOffer, selectPsk } from './psk.js';

export class ExpectSecondClientHello implements ServerState {
  readonly name = 'ExpectSecondClientHello';
  readonly publicState = 'handshaking' as const;
  readonly acceptsChangeCipherSpec = true;

  constructor(
    private readonly config: TlsServerConfig,
    private readonly options: InternalOptions,
    private readonly cookies: CookieSealer,
  ) {}

  handleApplicationData(): Transition {
    throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before ClientHello2');
  }

  wipe(): void {}

  handleHandshake(msg: HandshakeMessage): Transition {
    if (msg.type !== HandshakeType.clientHello) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `expected ClientHello2, got handshake type ${msg.type}`);
    }
    const ch = parseClientHello(msg.body);
    const cookieExt = findExtension(ch, ExtensionType.cookie);
    if (!cookieExt) throw tlsError('ERR_TLS_MISSING_EXTENSION', 'ClientHello2 lacks the HelloRetryRequest cookie');
    const cookie = parseCookie(cookieExt);
    const c = this.cookies.open(cookie); // illegal_parameter unless we sealed it

    const version = negotiateVersion(ch);
    checkCompression(ch);
    const suite = SUITES.get(c.cipherSuite);
    if (!suite || c.clientHello1Hash.length !== suite.hashLength) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'cookie names an unknown suite');
    if (!ch.cipherSuites.includes(suite.id)) {
      throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'ClientHello2 no longer offers the suite of the HelloRetryRequest');
    }
    if (!equalBytes(ch.legacySessionId, c.legacySessionId)) {
      throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'ClientHello2 changed legacy_session_id');
    }
    if (findExtension(ch, ExtensionType.earlyData) !== undefined) {
      throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'early_data in ClientHello2');
    }
    const offer = pskOffer(ch); // missing_extension without psk_key_exchange_modes
    const { group, share } = retriedKeyShare(ch, c.group);

    // Transcript = message_hash(Hash(ClientHello1)) || HelloRetryRequest (rebuilt byte for byte) || ClientHello2.
    const hrr = buildHelloRetryRequest({
      legacySessionIdEcho: c.legacySessionId,
      cipherSuite: suite.id,
      version,
      selectedGroup: group.id,
      cookie,
    });
    const psk = offer
      ? selectPsk({
          config: this.config,
          offer,
          suite,
          dheAvailable: true,
          serverName: clientServerName(ch),
          clientHelloRaw: msg.raw,
          binderHash: (truncated) => {
            const t = Transcript.afterRetry(suite.hash, c.clientHello1Hash);
            t.add(hrr);
            t.add(truncated);
            return t.current();
          },
        })
      : undefined;
    const transcript = Transcript.afterRetry(suite.hash, c.clientHello1Hash);
    transcript.add(hrr);
    transcript.add(msg.raw);
    return serverFlight({
      config: this.config,
      observe: this.options.onSecret,
      ch,
      version,
      suite,
      group: psk && !psk.dhe ? undefined : group,
      share: psk && !psk.dhe ? undefined : share,
      psk,
      transcript,
      ccsAlreadySent: c.legacySessionId.length > 0,
    });
  }
}
