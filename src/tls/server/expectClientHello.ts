/**
 * START / RECVD_CH: waits for the ClientHello, negotiates, and emits the whole server flight
 * (ServerHello, [CCS], EncryptedExtensions, Certificate, CertificateVerify, Finished) as effects.
 * imports bytes/ and tls/ siblings only.
 */
import { wipe } from '../../bytes/index.js';
import type { TlsServerConfig } from '../api.js';
import { ExtensionType, HandshakeType, OUR_RECORD_SIZE_LIMIT } from '../constants.js';
import { tlsError } from '../errors.js';
import { Transcript } from '../keyschedule/transcript.js';
import { EarlySecret, finishedVerifyData, trafficKeys, type SecretObserver } from '../keyschedule/schedule.js';
import { buildCertificate } from '../wire/certificate.js';
import { buildCertificateVerify, serverSignedContent } from '../wire/certificateVerify.js';
import { parseClientHello, type Extension } from '../wire/clientHello.js';
import { buildEncryptedExtensions } from '../wire/encryptedExtensions.js';
import {
  buildAlpn,
  buildKeyShareServerHello,
  buildRecordSizeLimit,
  buildServerNameAck,
  buildSupportedGroups,
  buildSupportedVersionsServerHello,
} from '../wire/extensions.js';
import { buildFinished } from '../wire/finished.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { buildServerHello } from '../wire/serverHello.js';
import type { Effect, ServerState, Transition } from './effects.js';
import { ExpectFinished } from './expectFinished.js';
import {
  checkCompression,
  clientRecordSizeLimit,
  clientServerName,
  findExtension,
  negotiateAlpn,
  negotiateGroup,
  negotiateSignatureScheme,
  negotiateSuite,
  negotiateVersion,
} from './negotiate.js';

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
    const observe = this.options.onSecret;
    const ch = parseClientHello(msg.body);

    // --- negotiation (order decides which alert wins when several things are wrong) ---
    const version = negotiateVersion(ch);
    checkCompression(ch);
    const suite = negotiateSuite(ch, cfg.cipherSuites);
    const { group, share } = negotiateGroup(ch, cfg.groups);
    const serverName = clientServerName(ch);
    const identity = cfg.selectIdentity(serverName);
    if (!identity) throw tlsError('ERR_TLS_UNRECOGNIZED_NAME', `no identity for server name ${serverName ?? '(none)'}`);
    if (identity.certificateChain.length === 0) throw tlsError('ERR_TLS_INTERNAL', 'identity has no certificate');
    const scheme = negotiateSignatureScheme(ch, identity.signatureSchemes);
    const alpn = negotiateAlpn(ch, cfg.alpnProtocols);
    const peerRecordSizeLimit = clientRecordSizeLimit(ch);
    // pre_shared_key / psk_key_exchange_modes / early_data: no PSK is accepted yet, so a full
    // handshake follows. TODO(PSK): resumption slots in here (binder check, early secret from PSK).
    const earlyDataOffered = findExtension(ch, ExtensionType.earlyData) !== undefined;

    // --- key exchange ---
    const injected = cfg.entropy.ephemeralPrivateKey?.(group.id);
    const eph = group.generate(injected);
    const shared = eph.deriveShared(share.keyExchange); // SECRET

    const transcript = new Transcript(suite.hash);
    transcript.add(msg.raw);

    const random = cfg.entropy.random(32);
    if (random.length !== 32) throw tlsError('ERR_TLS_INTERNAL', 'entropy returned a short random');
    const serverHello = buildServerHello({
      random,
      legacySessionIdEcho: ch.legacySessionId,
      cipherSuite: suite.id,
      extensions: [
        { type: ExtensionType.keyShare, data: buildKeyShareServerHello(group.id, eph.publicKey) },
        { type: ExtensionType.supportedVersions, data: buildSupportedVersionsServerHello(version) },
      ],
    });
    transcript.add(serverHello);

    const hs = EarlySecret.create(suite, undefined, observe).toHandshake(shared);
    wipe(shared);
    const hsTraffic = hs.trafficSecrets(transcript.current()); // SECRETS
    const serverHsKeys = trafficKeys(suite, hsTraffic.server);
    const clientHsKeys = trafficKeys(suite, hsTraffic.client);
    observe?.('s_hs_key', serverHsKeys.key);
    observe?.('s_hs_iv', serverHsKeys.iv);
    observe?.('c_hs_key', clientHsKeys.key);
    observe?.('c_hs_iv', clientHsKeys.iv);

    // EncryptedExtensions, in a fixed order: supported_groups, record_size_limit, server_name, ALPN.
    const ee: Extension[] = [];
    if (cfg.advertisedGroups && cfg.advertisedGroups.length > 0) {
      ee.push({ type: ExtensionType.supportedGroups, data: buildSupportedGroups(cfg.advertisedGroups) });
    }
    if (peerRecordSizeLimit !== undefined) {
      ee.push({ type: ExtensionType.recordSizeLimit, data: buildRecordSizeLimit(OUR_RECORD_SIZE_LIMIT) });
    }
    if (serverName !== undefined) ee.push({ type: ExtensionType.serverName, data: buildServerNameAck() });
    if (alpn !== undefined) ee.push({ type: ExtensionType.alpn, data: buildAlpn(alpn) });
    const encryptedExtensions = buildEncryptedExtensions(ee);
    transcript.add(encryptedExtensions);

    const certificate = buildCertificate(identity.certificateChain);
    transcript.add(certificate);

    let signature: Uint8Array;
    try {
      signature = identity.sign(scheme, serverSignedContent(transcript.current()));
    } catch (e) {
      throw tlsError('ERR_TLS_INTERNAL', `identity could not sign: ${(e as Error).message}`);
    }
    const certificateVerify = buildCertificateVerify(scheme, signature);
    transcript.add(certificateVerify);

    const serverVerifyData = finishedVerifyData(suite, hsTraffic.server, transcript.current());
    observe?.('server_verify_data', serverVerifyData);
    const finished = buildFinished(serverVerifyData);
    transcript.add(finished);
    wipe(hsTraffic.server);

    const master = hs.toMaster();
    const app = master.applicationSecrets(transcript.current()); // SECRETS
    master.wipe();
    const serverApKeys = trafficKeys(suite, app.server);
    observe?.('s_ap_key', serverApKeys.key);
    observe?.('s_ap_iv', serverApKeys.iv);
    wipe(app.server);

    const effects: Effect[] = [
      {
        kind: 'negotiated',
        info: {
          version,
          cipherSuite: suite.id,
          group: group.id,
          signatureScheme: scheme,
          ...(serverName !== undefined ? { serverName } : {}),
          ...(alpn !== undefined ? { alpn } : {}),
        },
        suite,
        peerRecordSizeLimit,
        earlyDataOffered,
      },
      { kind: 'sendHandshake', message: serverHello },
    ];
    if (ch.legacySessionId.length > 0) effects.push({ kind: 'sendChangeCipherSpec' });
    effects.push(
      { kind: 'installWriteKeys', keys: serverHsKeys },
      { kind: 'installReadKeys', keys: clientHsKeys },
      { kind: 'sendHandshake', message: encryptedExtensions },
      { kind: 'sendHandshake', message: certificate },
      { kind: 'sendHandshake', message: certificateVerify },
      { kind: 'sendHandshake', message: finished },
      { kind: 'installWriteKeys', keys: serverApKeys },
    );
    const next = new ExpectFinished(suite, transcript, hsTraffic.client, app.client, app.exporter, observe);
    return { next, effects };
  }
}
