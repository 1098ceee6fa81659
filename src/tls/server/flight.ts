/**
 * NEGOTIATED → WAIT_FINISHED: given a ClientHello whose suite and key share are settled, finishes the
 * negotiation and emits the whole server flight (ServerHello, [CCS], EncryptedExtensions, Certificate,
 * CertificateVerify, Finished) as effects. Shared by the first ClientHello and the one after a
 * HelloRetryRequest (the caller seeds the transcript accordingly).
 *
 * Secrets derived here are tracked as they appear; if anything throws midway (a bad key share, a
 * throwing identity.sign(), a short random...), every one of them is wiped before the error propagates
 * — nothing is left for the garbage collector.
 * SECRETS: the ECDHE shared secret, every key-schedule stage, traffic secrets and keys (all transient
 * here; on success their ownership passes to the effects / the next state).
 * imports bytes/ and tls/ siblings only.
 */
import { wipe } from '../../bytes/index.js';
import type { TlsServerConfig } from '../api.js';
import { ExtensionType, OUR_RECORD_SIZE_LIMIT } from '../constants.js';
import type { GroupParams, SuiteParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import {
  EarlySecret,
  finishedVerifyData,
  trafficKeys,
  type HandshakeSecret,
  type MasterSecret,
  type SecretObserver,
  type TrafficKeys,
} from '../keyschedule/schedule.js';
import type { Transcript } from '../keyschedule/transcript.js';
import { buildCertificate } from '../wire/certificate.js';
import { buildCertificateVerify, serverSignedContent } from '../wire/certificateVerify.js';
import type { ClientHello, Extension } from '../wire/clientHello.js';
import { buildEncryptedExtensions } from '../wire/encryptedExtensions.js';
import {
  buildAlpn,
  buildKeyShareServerHello,
  buildRecordSizeLimit,
  buildServerNameAck,
  buildSupportedGroups,
  buildSupportedVersionsServerHello,
  type KeyShareEntry,
} from '../wire/extensions.js';
import { buildFinished } from '../wire/finished.js';
import { buildServerHello } from '../wire/serverHello.js';
import type { Effect, Transition } from './effects.js';
import { ExpectFinished } from './expectFinished.js';
import {
  clientRecordSizeLimit,
  clientServerName,
  findExtension,
  negotiateAlpn,
  negotiateSignatureScheme,
} from './negotiate.js';

export interface FlightParams {
  readonly config: TlsServerConfig;
  readonly observe: SecretObserver | undefined;
  readonly ch: ClientHello;
  readonly version: number;
  readonly suite: SuiteParams;
  readonly group: GroupParams;
  readonly share: KeyShareEntry;
  /** Transcript so far, ending with the ClientHello being answered. */
  readonly transcript: Transcript;
  /** The middlebox-compatibility CCS already went out after a HelloRetryRequest (RFC 8446 §D.4). */
  readonly ccsAlreadySent: boolean;
}

/** Collects the secrets of one flight so a failure midway can wipe them all. */
class Scratch {
  private readonly bufs: Uint8Array[] = [];
  private readonly stages: { wipe(): void }[] = [];
  secret<T extends Uint8Array>(b: T): T {
    this.bufs.push(b);
    return b;
  }
  keys(k: TrafficKeys): TrafficKeys {
    this.bufs.push(k.key, k.iv);
    return k;
  }
  stage<T extends { wipe(): void }>(s: T): T {
    this.stages.push(s);
    return s;
  }
  wipeAll(): void {
    wipe(...this.bufs);
    for (const s of this.stages) s.wipe();
  }
}

export function serverFlight(p: FlightParams): Transition {
  const scratch = new Scratch();
  try {
    return build(p, scratch);
  } catch (e) {
    scratch.wipeAll();
    throw e;
  }
}

function build(p: FlightParams, scratch: Scratch): Transition {
  const { config: cfg, observe, ch, version, suite, group, share, transcript } = p;

  // --- the rest of the negotiation (order decides which alert wins when several things are wrong) ---
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
  const ourRecordSizeLimit = peerRecordSizeLimit !== undefined ? (cfg.recordSizeLimit ?? OUR_RECORD_SIZE_LIMIT) : undefined;

  // --- key exchange ---
  const injected = cfg.entropy.ephemeralPrivateKey?.(group.id);
  const eph = group.generate(injected);
  const shared = scratch.secret(eph.deriveShared(share.keyExchange)); // ERR_TLS_BAD_KEY_SHARE → illegal_parameter

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

  const early = scratch.stage(EarlySecret.create(suite, undefined, observe));
  const hs: HandshakeSecret = scratch.stage(early.toHandshake(shared));
  wipe(shared);
  const hsTrafficRaw = hs.trafficSecrets(transcript.current());
  const hsTraffic = { client: scratch.secret(hsTrafficRaw.client), server: scratch.secret(hsTrafficRaw.server) };
  const serverHsKeys = scratch.keys(trafficKeys(suite, hsTraffic.server));
  const clientHsKeys = scratch.keys(trafficKeys(suite, hsTraffic.client));
  observe?.('s_hs_key', serverHsKeys.key);
  observe?.('s_hs_iv', serverHsKeys.iv);
  observe?.('c_hs_key', clientHsKeys.key);
  observe?.('c_hs_iv', clientHsKeys.iv);

  // EncryptedExtensions, in a fixed order: supported_groups, record_size_limit, server_name, ALPN.
  const ee: Extension[] = [];
  if (cfg.advertisedGroups && cfg.advertisedGroups.length > 0) {
    ee.push({ type: ExtensionType.supportedGroups, data: buildSupportedGroups(cfg.advertisedGroups) });
  }
  if (ourRecordSizeLimit !== undefined) {
    ee.push({ type: ExtensionType.recordSizeLimit, data: buildRecordSizeLimit(ourRecordSizeLimit) });
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

  const master: MasterSecret = scratch.stage(hs.toMaster());
  const appRaw = master.applicationSecrets(transcript.current());
  const app = { client: scratch.secret(appRaw.client), server: scratch.secret(appRaw.server), exporter: scratch.secret(appRaw.exporter) };
  master.wipe();
  const serverApKeys = scratch.keys(trafficKeys(suite, app.server));
  observe?.('s_ap_key', serverApKeys.key);
  observe?.('s_ap_iv', serverApKeys.iv);

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
      ourRecordSizeLimit,
      earlyDataOffered,
    },
    { kind: 'sendHandshake', message: serverHello },
  ];
  if (ch.legacySessionId.length > 0 && !p.ccsAlreadySent) effects.push({ kind: 'sendChangeCipherSpec' });
  effects.push(
    { kind: 'installWriteKeys', keys: serverHsKeys },
    { kind: 'installReadKeys', keys: clientHsKeys },
    { kind: 'sendHandshake', message: encryptedExtensions },
    { kind: 'sendHandshake', message: certificate },
    { kind: 'sendHandshake', message: certificateVerify },
    { kind: 'sendHandshake', message: finished },
    { kind: 'installWriteKeys', keys: serverApKeys, trafficSecret: app.server },
  );
  const next = new ExpectFinished(suite, transcript, hsTraffic.client, app.client, app.exporter, observe);
  return { next, effects };
}
