/**
 * NEGOTIATED → WAIT_CERT / WAIT_FINISHED: given a ClientHello whose suite, key share and PSK (if any)
 * are settled, finishes the negotiation and emits the whole server flight as effects:
 *   certificate:  ServerHello, [CCS], EncryptedExtensions, [CertificateRequest], Certificate, CertificateVerify, Finished
 *   PSK (ticket or external): ServerHello(+pre_shared_key, key_share unless psk_ke), [CCS], EncryptedExtensions, Finished
 * Shared by the first ClientHello and the one after a HelloRetryRequest (the caller seeds the
 * transcript accordingly). A CertificateRequest (identity.clientAuth 'optional' | 'required') carries
 * an empty context, signature_algorithms and certificate_authorities (the trust anchors' subjects);
 * it is never sent in a PSK handshake (RFC 8446 §4.3.2).
 *
 * Secrets derived here are tracked as they appear; if anything throws midway (a bad key share, a
 * throwing identity.sign(), a short random...), every one of them is wiped before the error propagates
 * — nothing is left for the garbage collector.
 * SECRETS: the PSK, the ECDHE shared secret, every key-schedule stage, traffic secrets and keys (all
 * transient here; on success their ownership passes to the effects / the next state).
 * imports bytes/ and tls/ siblings only.
 */
import { wipe } from '../../bytes/index.js';
import type { TlsIdentity, TlsServerConfig } from '../api.js';
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
import { buildCertificateRequest } from '../wire/certificateRequest.js';
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
  buildMaxFragmentLength,
} from '../wire/extensions.js';
import { buildFinished } from '../wire/finished.js';
import { buildPreSharedKeyServerHello } from '../wire/preSharedKey.js';
import { buildServerHello } from '../wire/serverHello.js';
import { CLIENT_SIGNATURE_SCHEMES, certificateSubjectDer } from '../x509/index.js';
import type { Effect, ServerState, Transition } from './effects.js';
import { ExpectCertificate } from './expectCertificate.js';
import { ExpectFinished } from './expectFinished.js';
import type { HandshakeContext } from './handshakeContext.js';
import {
  clientRecordSizeLimit,
  clientServerName,
  findExtension,
  negotiateAlpn,
  negotiateSignatureScheme,
  clientMaxFragmentLength,
} from './negotiate.js';
import type { PskChoice } from './psk.js';

export interface FlightParams {
  readonly config: TlsServerConfig;
  readonly observe: SecretObserver | undefined;
  readonly ch: ClientHello;
  readonly version: number;
  readonly suite: SuiteParams;
  /** The ECDHE group and the client's share; absent for psk_ke. */
  readonly group: GroupParams | undefined;
  readonly share: KeyShareEntry | undefined;
  /** The selected PSK (binder verified); its secret is wiped here. Absent = certificate handshake. */
  readonly psk?: PskChoice | undefined;
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
  if (p.psk) scratch.secret(p.psk.psk);
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
  // A PSK handshake sends no certificate: no identity or signature scheme is needed.
  const serverName = clientServerName(ch);
  const psk = p.psk;
  let identity: TlsIdentity | undefined;
  let scheme = 0;
  if (!psk) {
    identity = cfg.selectIdentity(serverName);
    if (!identity) throw tlsError('ERR_TLS_UNRECOGNIZED_NAME', `no identity for server name ${serverName ?? '(none)'}`);
    if (identity.certificateChain.length === 0) throw tlsError('ERR_TLS_INTERNAL', 'identity has no certificate');
    scheme = negotiateSignatureScheme(ch, identity.signatureSchemes);
  }
  const clientAuth = identity?.clientAuth ?? 'none';
  const alpn = negotiateAlpn(ch, cfg.alpnProtocols);
  const peerRecordSizeLimit = clientRecordSizeLimit(ch);
  // early_data is never accepted: its records are skipped (the client learns it from EncryptedExtensions).
  const earlyDataOffered = findExtension(ch, ExtensionType.earlyData) !== undefined;
  const ourRecordSizeLimit = peerRecordSizeLimit !== undefined ? (cfg.recordSizeLimit ?? OUR_RECORD_SIZE_LIMIT) : undefined;
  // max_fragment_length (RFC 6066 §4; ignored next to record_size_limit, RFC 8449 §5): echoed, bounds records both ways.
  const mfl = peerRecordSizeLimit === undefined ? clientMaxFragmentLength(ch) : undefined;

  // --- key exchange (psk_ke: none, the handshake secret is extracted from zeros) ---
  let shared: Uint8Array;
  let serverShare: Uint8Array | undefined;
  if (group && share) {
    const injected = cfg.entropy.ephemeralPrivateKey?.(group.id);
    const eph = group.generate(injected);
    shared = scratch.secret(eph.deriveShared(share.keyExchange)); // ERR_TLS_BAD_KEY_SHARE → illegal_parameter
    serverShare = eph.publicKey;
  } else {
    if (!psk || psk.dhe) throw tlsError('ERR_TLS_INTERNAL', 'no key share for an ECDHE handshake');
    shared = new Uint8Array(suite.hashLength);
  }

  const random = cfg.entropy.random(32);
  if (random.length !== 32) throw tlsError('ERR_TLS_INTERNAL', 'entropy returned a short random');
  const serverHello = buildServerHello({
    random,
    legacySessionIdEcho: ch.legacySessionId,
    cipherSuite: suite.id,
    extensions: [
      ...(group && serverShare ? [{ type: ExtensionType.keyShare, data: buildKeyShareServerHello(group.id, serverShare) }] : []),
      { type: ExtensionType.supportedVersions, data: buildSupportedVersionsServerHello(version) },
      ...(psk ? [{ type: ExtensionType.preSharedKey, data: buildPreSharedKeyServerHello(psk.index) }] : []),
    ],
  });
  transcript.add(serverHello);

  const early = scratch.stage(EarlySecret.create(suite, psk?.psk, observe));
  if (psk) wipe(psk.psk);
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
  if (mfl) ee.push({ type: ExtensionType.maxFragmentLength, data: buildMaxFragmentLength(mfl.code) });
  if (serverName !== undefined) ee.push({ type: ExtensionType.serverName, data: buildServerNameAck() });
  if (alpn !== undefined) ee.push({ type: ExtensionType.alpn, data: buildAlpn(alpn) });
  const encryptedExtensions = buildEncryptedExtensions(ee);
  transcript.add(encryptedExtensions);

  const authMessages: Uint8Array[] = [];
  if (identity) {
    if (clientAuth !== 'none') {
      const certificateRequest = buildCertificateRequest(new Uint8Array(0), CLIENT_SIGNATURE_SCHEMES, anchorSubjects(identity));
      transcript.add(certificateRequest);
      authMessages.push(certificateRequest);
    }
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
    authMessages.push(certificate, certificateVerify);
  }

  const serverVerifyData = finishedVerifyData(suite, hsTraffic.server, transcript.current());
  observe?.('server_verify_data', serverVerifyData);
  const finished = buildFinished(serverVerifyData);
  transcript.add(finished);
  wipe(hsTraffic.server);

  const master: MasterSecret = scratch.stage(hs.toMaster());
  const appRaw = master.applicationSecrets(transcript.current());
  const app = { client: scratch.secret(appRaw.client), server: scratch.secret(appRaw.server), exporter: scratch.secret(appRaw.exporter) };
  // Tickets need resumption_master_secret, derived after the client Finished: keep the stage until then.
  const keepMaster = cfg.ticketKeys !== undefined && (cfg.ticketCount ?? 1) > 0;
  if (!keepMaster) master.wipe();
  const serverApKeys = scratch.keys(trafficKeys(suite, app.server));
  observe?.('s_ap_key', serverApKeys.key);
  observe?.('s_ap_iv', serverApKeys.iv);

  const effects: Effect[] = [
    {
      kind: 'negotiated',
      info: {
        version,
        cipherSuite: suite.id,
        group: group?.id ?? 0,
        signatureScheme: scheme,
        ...(serverName !== undefined ? { serverName } : {}),
        ...(alpn !== undefined ? { alpn } : {}),
        ...(psk ? { resumption: psk.kind } : {}),
        ...(psk?.identity ? { pskIdentity: psk.identity } : {}),
      },
      suite,
      peerRecordSizeLimit: mfl ? mfl.length + 1 : peerRecordSizeLimit,
      ourRecordSizeLimit: mfl ? mfl.length + 1 : ourRecordSizeLimit,
      earlyDataOffered,
    },
    { kind: 'sendHandshake', message: serverHello },
  ];
  if (ch.legacySessionId.length > 0 && !p.ccsAlreadySent) effects.push({ kind: 'sendChangeCipherSpec' });
  effects.push(
    { kind: 'installWriteKeys', keys: serverHsKeys },
    { kind: 'installReadKeys', keys: clientHsKeys },
    { kind: 'sendHandshake', message: encryptedExtensions },
    ...authMessages.map((message) => ({ kind: 'sendHandshake' as const, message })),
    { kind: 'sendHandshake', message: finished },
    { kind: 'installWriteKeys', keys: serverApKeys, trafficSecret: app.server },
  );
  const ctx: HandshakeContext = {
    config: cfg,
    suite,
    version,
    transcript,
    clientHsTraffic: hsTraffic.client,
    clientApTraffic: app.client,
    exporter: app.exporter,
    master: keepMaster ? master : undefined,
    observe,
    serverName,
    alpn,
    clientAuth,
    trustAnchors: identity?.trustAnchors ?? [],
    isRevoked: identity?.isRevoked,
    peer: psk?.peer,
  };
  const next: ServerState = clientAuth !== 'none' ? new ExpectCertificate(ctx) : new ExpectFinished(ctx);
  return { next, effects };
}

/** The subject DNs (DER) of the identity's trust anchors, for certificate_authorities. */
function anchorSubjects(identity: TlsIdentity): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const der of identity.trustAnchors ?? []) {
    try {
      out.push(certificateSubjectDer(der));
    } catch {
      // a malformed anchor is simply not announced (it can never match either)
    }
  }
  return out;
}
