/**
 * The TLS 1.2 server handshake (RFC 5246 §7.3), sans I/O. Phases (named for what they wait for):
 *
 *   ClientHello (shared parse, connection.ts dispatch) ──┬── resumable session (ID or ticket, EMS, same suite)
 *       │ Send ServerHello, [Certificate],                │   Send ServerHello, ChangeCipherSpec, Finished
 *       │ [ServerKeyExchange], [CertificateRequest],      │
 *       │ ServerHelloDone                                 v
 *       v                                          ExpectChangeCipherSpec ─> ExpectFinished ─> Traffic12
 *   [ExpectCertificate] ─> ExpectClientKeyExchange ─> [ExpectCertificateVerify]
 *       ─> ExpectChangeCipherSpec (K_recv = client keys) ─> ExpectFinished
 *       │ Send [NewSessionTicket], ChangeCipherSpec (K_send = server keys), Finished
 *       v
 *   Traffic12: application data; a ClientHello (renegotiation attempt) gets a warning no_renegotiation
 *   and is otherwise ignored (RFC 5746 §4.3 leaves the refusal to the server); anything else is
 *   unexpected_message.
 *
 * SECRETS: the ephemeral key, the premaster (transient), the master secret, the key block parts until
 * handed to the record layer. wipe() zeroes what this object still holds.
 * imports bytes/, node:crypto (hash only, via crypto.ts) and tls/ siblings only.
 */
import { concat, ctEqual, wipe } from '../../bytes/index.js';
import type { PeerIdentity, TlsIdentity, TlsServerConfig, TlsSessionInfo } from '../api.js';
import { AlertDescription } from '../api.js';
import { ExtensionType, HandshakeType, ProtocolVersion } from '../constants.js';
import { hash, type EphemeralKey, type GroupParams } from '../crypto.js';
import { tlsError } from '../errors.js';
import { keyBlock12, masterSecret12, verifyData12 } from '../keyschedule/prf12.js';
import { RecordKey12 } from '../record/protection12.js';
import { openTicket, sealTicket } from '../tickets.js';
import { certificateSubjectDer, verifyClientChain } from '../x509/index.js';
import { clientMaxFragmentLength, clientRecordSizeLimit, clientServerName, negotiateAlpn } from '../server/negotiate.js';
import type { ClientHello, Extension } from '../wire/clientHello.js';
import { buildAlpn, buildMaxFragmentLength, buildRecordSizeLimit, buildServerNameAck } from '../wire/extensions.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { buildServerHello } from '../wire/serverHello.js';
import {
  ClientCertificateType,
  EC_POINT_FORMATS_UNCOMPRESSED,
  EMPTY_RENEGOTIATION_INFO,
  buildCertificate12,
  buildCertificateRequest12,
  buildFinished12,
  buildNewSessionTicket12,
  buildServerHelloDone,
  buildServerKeyExchange,
  ecdheParams,
  parseCertificate12,
  parseClientKeyExchangeEcdhe,
  parseClientKeyExchangePsk,
  parseDigitallySigned,
  parseFinished12,
} from './messages12.js';
import {
  ECDSA_SCHEMES_12,
  RSA_SCHEMES_12,
  checkCompression12,
  checkRenegotiationInfo,
  clientOffersEms,
  clientSessionTicket,
  negotiate12,
  pskPremaster,
} from './negotiate12.js';
import { verifyClientSignature12 } from './clientVerify12.js';
import { decodeSession12, encodeSession12, type SessionState12 } from './session12.js';
import { DEFAULT_CIPHER_SUITES_12, SUITES12, type Suite12 } from './suites12.js';

/** RFC 8446 §4.1.3: last 8 bytes of ServerHello.random when a TLS 1.3 server negotiates TLS 1.2. */
export const DOWNGRADE_SENTINEL_12 = Uint8Array.of(0x44, 0x4f, 0x57, 0x4e, 0x47, 0x52, 0x44, 0x01);
const DEFAULT_TICKET_LIFETIME = 7200;
const MAX_TICKET_LIFETIME = 604800;
/** Client certificate chains longer than this are refused (bounds work on the card). */
const MAX_CLIENT_CHAIN = 10;

export type Action12 =
  | {
      readonly kind: 'negotiated';
      readonly info: TlsSessionInfo;
      readonly suite: Suite12;
      /** Largest plaintext we may put in one record (client's record_size_limit / max_fragment_length). */
      readonly maxSend: number;
      /** Largest plaintext we accept (our record_size_limit / the max_fragment_length in force). */
      readonly maxReceive: number;
    }
  | { readonly kind: 'send'; readonly message: Uint8Array }
  /** Send ChangeCipherSpec, then protect everything with `key`. */
  | { readonly kind: 'changeWriteKey'; readonly key: RecordKey12 }
  | { readonly kind: 'warningAlert'; readonly description: number }
  /** Client Finished verified: the exporter inputs (master secret ownership passes) and final facts. */
  | {
      readonly kind: 'complete';
      readonly master: Uint8Array;
      readonly clientRandom: Uint8Array;
      readonly serverRandom: Uint8Array;
      readonly info: TlsSessionInfo;
    };

export type Phase12 = 'ClientHello' | 'Certificate' | 'ClientKeyExchange' | 'CertificateVerify' | 'ChangeCipherSpec' | 'Finished' | 'Traffic';

export class Handshake12 {
  phase: Phase12 = 'ClientHello';
  private suite!: Suite12;
  private info!: TlsSessionInfo;
  private readonly messages: Uint8Array[] = [];
  private clientRandom: Uint8Array = new Uint8Array(0);
  private serverRandom: Uint8Array = new Uint8Array(0);
  private ems = false;
  private identity: TlsIdentity | undefined;
  private eph: EphemeralKey | undefined;
  private group: GroupParams | undefined;
  private master: Uint8Array | undefined;
  private clientKey: RecordKey12 | undefined;
  private serverKey: RecordKey12 | undefined;
  private resumed: 'session-id' | 'ticket' | undefined;
  private sessionId: Uint8Array = new Uint8Array(0);
  private issueTicket = false;
  private peer: PeerIdentity | undefined;
  private peerLeaf: Uint8Array | undefined;
  private requestedSchemes: readonly number[] = [];
  private createdMs = 0;

  /**
   * `frame` (DTLS 1.2, tls/dtls/): rewrites each message this server builds (TLS 4-byte header) into
   * its on-the-wire form before it enters the transcript and is sent — DTLS gives it the 12-byte
   * handshake header with our message_seq (RFC 6347 §4.2.2, §4.2.6). Default: unchanged (TLS).
   */
  constructor(
    private readonly cfg: TlsServerConfig,
    private readonly frame: (message: Uint8Array) => Uint8Array = (m) => m,
  ) {}

  // ------------------------------------------------------------------ ClientHello

  start(msg: HandshakeMessage, ch: ClientHello): Action12[] {
    const cfg = this.cfg;
    checkCompression12(ch);
    const secureRenegotiation = checkRenegotiationInfo(ch);
    this.ems = clientOffersEms(ch);
    const serverName = clientServerName(ch);
    const identity = cfg.selectIdentity(serverName);
    if (!identity && !cfg.findPsk) throw tlsError('ERR_TLS_UNRECOGNIZED_NAME', `no identity for server name ${serverName ?? '(none)'}`);
    if (identity && identity.certificateChain.length === 0) throw tlsError('ERR_TLS_INTERNAL', 'identity has no certificate');
    this.identity = identity;
    const alpn = negotiateAlpn(ch, cfg.alpnProtocols);
    const rsl = clientRecordSizeLimit(ch);
    const mfl = rsl === undefined ? clientMaxFragmentLength(ch) : undefined; // RFC 8449 §5: RSL wins
    const ticketExt = clientSessionTicket(ch);
    this.clientRandom = ch.random.slice();
    this.createdMs = cfg.entropy.now();

    const resumable = this.findResumable(ch, serverName, ticketExt);
    let choice: ReturnType<typeof negotiate12> | undefined;
    if (resumable) {
      this.suite = SUITES12.get(resumable.state.cipherSuite)!;
    } else {
      try {
        choice = negotiate12(ch, cfg, identity);
      } catch (e) {
        if (!identity) throw tlsError('ERR_TLS_UNRECOGNIZED_NAME', `no identity for server name ${serverName ?? '(none)'}`);
        throw e;
      }
      this.suite = choice.suite;
    }
    const suite = this.suite;

    const random = cfg.entropy.random(32);
    if (random.length !== 32) throw tlsError('ERR_TLS_INTERNAL', 'entropy returned a short random');
    this.serverRandom = random.slice();
    if ((cfg.versions ?? [ProtocolVersion.tls13, ProtocolVersion.tls12]).includes(ProtocolVersion.tls13)) {
      this.serverRandom.set(DOWNGRADE_SENTINEL_12, 24);
    }

    // Session id: echo on resumption; a fresh one when a cache can hold this (EMS) session.
    if (resumable) this.sessionId = ch.legacySessionId.slice();
    else if (cfg.sessionCache && this.ems) this.sessionId = cfg.entropy.random(32).slice();
    this.issueTicket = !resumable && this.ems && ticketExt !== undefined && cfg.ticketKeys !== undefined;

    const ext: Extension[] = [];
    if (secureRenegotiation) ext.push({ type: ExtensionType.renegotiationInfo, data: EMPTY_RENEGOTIATION_INFO });
    if (this.ems) ext.push({ type: ExtensionType.extendedMasterSecret, data: new Uint8Array(0) });
    if (this.issueTicket) ext.push({ type: ExtensionType.sessionTicket, data: new Uint8Array(0) });
    if (choice?.group && ch.extensions.some((e) => e.type === ExtensionType.ecPointFormats)) {
      ext.push({ type: ExtensionType.ecPointFormats, data: EC_POINT_FORMATS_UNCOMPRESSED });
    }
    let maxSend = 16384;
    let maxReceive = 16384;
    if (rsl !== undefined) {
      // RFC 8449 §4: in TLS 1.2 the limit counts plaintext only and is at most 2^14.
      maxSend = Math.min(16384, rsl);
      maxReceive = Math.min(16384, cfg.recordSizeLimit ?? 16384);
      ext.push({ type: ExtensionType.recordSizeLimit, data: buildRecordSizeLimit(maxReceive) });
    } else if (mfl) {
      maxSend = maxReceive = mfl.length;
      ext.push({ type: ExtensionType.maxFragmentLength, data: buildMaxFragmentLength(mfl.code) });
    }
    if (serverName !== undefined && !resumable) ext.push({ type: ExtensionType.serverName, data: buildServerNameAck() });
    if (alpn !== undefined) ext.push({ type: ExtensionType.alpn, data: buildAlpn(alpn) });

    const serverHello = this.frame(buildServerHello({ random: this.serverRandom, legacySessionIdEcho: this.sessionId, cipherSuite: suite.id, extensions: ext }));
    this.messages.push(msg.raw, serverHello);
    this.info = {
      version: ProtocolVersion.tls12,
      cipherSuite: suite.id,
      group: choice?.group?.id ?? 0,
      signatureScheme: choice?.scheme ?? 0,
      ...(serverName !== undefined ? { serverName } : {}),
      ...(alpn !== undefined ? { alpn } : {}),
      ...(resumable?.state.peer ? { peer: resumable.state.peer } : {}),
      resumption: resumable ? resumable.via : suite.kx === 'psk' ? 'psk' : 'full',
    };
    const actions: Action12[] = [
      { kind: 'negotiated', info: this.info, suite, maxSend, maxReceive },
      { kind: 'send', message: serverHello },
    ];

    if (resumable) {
      this.resumed = resumable.via;
      this.master = resumable.state.masterSecret;
      this.createdMs = resumable.state.createdMs;
      this.peer = resumable.state.peer;
      this.deriveKeys();
      actions.push(...this.serverFinishedFlight());
      this.phase = 'ChangeCipherSpec';
      return actions;
    }

    if (suite.kx !== 'psk') {
      const id = identity!;
      const certificate = buildCertificate12(id.certificateChain);
      const group = choice!.group!;
      this.group = group;
      this.eph = group.generate(cfg.entropy.ephemeralPrivateKey?.(group.id));
      const params = ecdheParams(group.id, this.eph.publicKey);
      let signature: Uint8Array;
      try {
        signature = id.sign(choice!.scheme!, concat(this.clientRandom, this.serverRandom, params));
      } catch (e) {
        throw tlsError('ERR_TLS_INTERNAL', `identity could not sign: ${(e as Error).message}`);
      }
      const ske = buildServerKeyExchange(params, choice!.scheme!, signature);
      this.pushSend(actions, certificate, ske);
      const auth = id.clientAuth ?? 'none';
      if (auth !== 'none') {
        this.requestedSchemes = [...ECDSA_SCHEMES_12, ...RSA_SCHEMES_12];
        const cas = (id.trustAnchors ?? []).flatMap((a) => subjectOrNothing(a));
        this.pushSend(actions, buildCertificateRequest12([ClientCertificateType.ecdsaSign, ClientCertificateType.rsaSign], this.requestedSchemes, cas));
      }
      this.phase = auth !== 'none' ? 'Certificate' : 'ClientKeyExchange';
    } else {
      this.phase = 'ClientKeyExchange';
    }
    this.pushSend(actions, buildServerHelloDone());
    return actions;
  }

  /**
   * A cached / ticketed session we may resume: EMS on both sides, suite offered and enabled, same SNI,
   * not expired. One we would resume, offered by a ClientHello without EMS, is handshake_failure
   * (RFC 7627 §5.3: abort, not a silent full handshake).
   */
  private findResumable(
    ch: ClientHello,
    serverName: string | undefined,
    ticket: Uint8Array | undefined,
  ): { state: SessionState12; via: 'session-id' | 'ticket' } | undefined {
    let state: SessionState12 | undefined;
    let via: 'session-id' | 'ticket' = 'ticket';
    if (ticket && ticket.length > 0 && this.cfg.ticketKeys) {
      const plain = openTicket(this.cfg.ticketKeys, ticket);
      if (plain) {
        state = decodeSession12(plain);
        wipe(plain);
      }
      // RFC 5077 §3.4: resuming from a ticket echoes the client's session id, which must be non-empty
      if (state && ch.legacySessionId.length === 0) {
        wipe(state.masterSecret);
        state = undefined;
      }
    }
    if (!state && this.cfg.sessionCache && ch.legacySessionId.length > 0) {
      const cached = this.cfg.sessionCache.get(ch.legacySessionId);
      if (cached) {
        state = decodeSession12(cached);
        via = 'session-id';
      }
    }
    if (!state) return undefined;
    const lifetime = Math.min(this.cfg.ticketLifetimeSeconds ?? DEFAULT_TICKET_LIFETIME, MAX_TICKET_LIFETIME) * 1000;
    const prefs = this.cfg.cipherSuites12 ?? DEFAULT_CIPHER_SUITES_12;
    const suite = SUITES12.get(state.cipherSuite);
    const now = this.cfg.entropy.now();
    const ok =
      state.ems &&
      suite !== undefined &&
      prefs.includes(state.cipherSuite) &&
      ch.cipherSuites.includes(state.cipherSuite) &&
      state.serverName === serverName &&
      now >= state.createdMs - 60_000 &&
      now - state.createdMs <= lifetime &&
      (suite.kx === 'psk' || this.identity !== undefined);
    if (!ok) {
      wipe(state.masterSecret);
      if (via === 'session-id') this.cfg.sessionCache?.delete(ch.legacySessionId);
      return undefined;
    }
    if (!this.ems) {
      // RFC 7627 §5.3: the original session used extended_master_secret (every session we keep did)
      // and this ClientHello does not offer it: the server MUST abort (no silent full handshake).
      wipe(state.masterSecret);
      throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', `resumption (${via}) of an extended_master_secret session offered without the extension`);
    }
    return { state, via };
  }

  // ------------------------------------------------------------------ later messages


  onHandshake(msg: HandshakeMessage): Action12[] {
    switch (this.phase) {
      case 'Certificate':
        this.expect(msg, HandshakeType.certificate);
        this.onCertificate(msg);
        return [];
      case 'ClientKeyExchange':
        this.expect(msg, HandshakeType.clientKeyExchange);
        this.onClientKeyExchange(msg);
        return [];
      case 'CertificateVerify':
        this.expect(msg, HandshakeType.certificateVerify);
        this.onCertificateVerify(msg);
        return [];
      case 'Finished':
        this.expect(msg, HandshakeType.finished);
        return this.onFinished(msg);
      case 'Traffic':
        if (msg.type === HandshakeType.clientHello) {
          // Renegotiation is not supported: refuse with a warning and carry on (RFC 5246 §7.2.2).
          return [{ kind: 'warningAlert', description: AlertDescription.noRenegotiation }];
        }
        throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `post-handshake message type ${msg.type} in TLS 1.2`);
      default:
        throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `handshake type ${msg.type} while expecting ${this.phase}`);
    }
  }

  /** The client's ChangeCipherSpec: returns the key the client protects its records with from now on. */
  onChangeCipherSpec(): RecordKey12 {
    if (this.phase !== 'ChangeCipherSpec' || !this.clientKey) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'unexpected change_cipher_spec');
    const key = this.clientKey;
    this.clientKey = undefined;
    this.phase = 'Finished';
    return key;
  }

  get acceptsApplicationData(): boolean {
    return this.phase === 'Traffic';
  }

  private expect(msg: HandshakeMessage, type: number): void {
    if (msg.type !== type) throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `expected handshake type ${type}, got ${msg.type}`);
  }

  private onCertificate(msg: HandshakeMessage): void {
    const chain = parseCertificate12(msg.body);
    this.messages.push(msg.raw);
    const id = this.identity!;
    this.phase = 'ClientKeyExchange';
    if (chain.length === 0) {
      if (id.clientAuth === 'required') throw tlsError('ERR_TLS_HANDSHAKE_FAILURE', 'client sent no certificate');
      return;
    }
    if (chain.length > MAX_CLIENT_CHAIN) throw tlsError('ERR_TLS_BAD_CERTIFICATE', 'client chain too long');
    this.peer = verifyClientChain(chain, id.trustAnchors ?? [], this.cfg.entropy.now()); // unknown_ca, certificate_expired...
    if (id.isRevoked?.(chain)) throw tlsError('ERR_TLS_CERTIFICATE_REVOKED', 'the client certificate is on the deny-list');
    this.peerLeaf = chain[0]!;
  }

  private onClientKeyExchange(msg: HandshakeMessage): void {
    let premaster: Uint8Array;
    if (this.suite.kx === 'psk') {
      const identity = parseClientKeyExchangePsk(msg.body);
      const psk = this.cfg.findPsk?.(identity);
      if (!psk) throw tlsError('ERR_TLS_UNKNOWN_PSK_IDENTITY', 'unknown PSK identity');
      premaster = pskPremaster(psk.key);
      this.info = { ...this.info, pskIdentity: identity.slice() };
    } else {
      const point = parseClientKeyExchangeEcdhe(msg.body);
      if (point.length !== this.group!.keyExchangeLength) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'ClientKeyExchange point of bad length');
      premaster = this.eph!.deriveShared(point); // ERR_TLS_BAD_KEY_SHARE → illegal_parameter
      this.eph = undefined;
    }
    this.messages.push(msg.raw);
    try {
      // RFC 7627 §3: session_hash = Hash(handshake messages up to and including ClientKeyExchange).
      const sessionHash = this.ems ? this.transcriptHash() : undefined;
      this.master = masterSecret12(this.suite.hash, premaster, this.clientRandom, this.serverRandom, sessionHash);
    } finally {
      wipe(premaster);
    }
    this.deriveKeys();
    this.phase = this.peer ? 'CertificateVerify' : 'ChangeCipherSpec';
  }

  private onCertificateVerify(msg: HandshakeMessage): void {
    const { scheme, signature } = parseDigitallySigned(msg.body);
    if (!this.requestedSchemes.includes(scheme)) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `CertificateVerify scheme 0x${scheme.toString(16)}`);
    const signed = concat(...this.messages);
    if (!verifyClientSignature12(scheme, this.peerLeaf!, signed, signature)) {
      throw tlsError('ERR_TLS_DECRYPT_ERROR', 'client CertificateVerify does not verify');
    }
    this.messages.push(msg.raw);
    this.phase = 'ChangeCipherSpec';
  }

  private onFinished(msg: HandshakeMessage): Action12[] {
    const received = parseFinished12(msg.body);
    const expected = verifyData12(this.suite.hash, this.master!, true, this.transcriptHash());
    if (!ctEqual(received, expected)) throw tlsError('ERR_TLS_DECRYPT_ERROR', 'client Finished does not verify');
    this.messages.push(msg.raw);
    const actions: Action12[] = [];
    if (!this.resumed) {
      this.storeSession(actions);
      actions.push(...this.serverFinishedFlight());
    }
    this.phase = 'Traffic';
    this.info = { ...this.info, ...(this.peer ? { peer: this.peer } : {}) };
    const master = this.master!;
    this.master = undefined;
    this.messages.length = 0;
    actions.push({ kind: 'complete', master, clientRandom: this.clientRandom, serverRandom: this.serverRandom, info: this.info });
    return actions;
  }

  /** Cache entry (session id) and/or ticket for an EMS session; non-EMS sessions are never stored. */
  private storeSession(actions: Action12[]): void {
    if (!this.ems) return;
    const enc = encodeSession12({
      cipherSuite: this.suite.id,
      ems: true,
      masterSecret: this.master!,
      createdMs: this.createdMs,
      serverName: this.info.serverName,
      peer: this.peer,
    });
    try {
      if (this.sessionId.length > 0) this.cfg.sessionCache?.set(this.sessionId.slice(), enc.slice());
      if (this.issueTicket) {
        const lifetime = Math.min(this.cfg.ticketLifetimeSeconds ?? DEFAULT_TICKET_LIFETIME, MAX_TICKET_LIFETIME);
        this.pushSend(actions, buildNewSessionTicket12(lifetime, sealTicket(this.cfg.ticketKeys!.current, enc, this.cfg.entropy)));
      }
    } finally {
      wipe(enc);
    }
  }

  /** ChangeCipherSpec + server Finished (after NewSessionTicket, if any). */
  private serverFinishedFlight(): Action12[] {
    const verify = verifyData12(this.suite.hash, this.master!, false, this.transcriptHash());
    const finished = this.frame(buildFinished12(verify));
    this.messages.push(finished);
    const key = this.serverKey!;
    this.serverKey = undefined;
    return [
      { kind: 'changeWriteKey', key },
      { kind: 'send', message: finished },
    ];
  }

  private deriveKeys(): void {
    const s = this.suite;
    const kb = keyBlock12(s.hash, this.master!, this.clientRandom, this.serverRandom, s.keyLength, s.fixedIvLength);
    this.clientKey = new RecordKey12(s, kb.client.key, kb.client.iv);
    this.serverKey = new RecordKey12(s, kb.server.key, kb.server.iv);
  }

  private pushSend(actions: Action12[], ...messages: Uint8Array[]): void {
    for (const message of messages) {
      const m = this.frame(message);
      this.messages.push(m);
      actions.push({ kind: 'send', message: m });
    }
  }

  private transcriptHash(): Uint8Array {
    return hash(this.suite.hash, concat(...this.messages));
  }

  wipe(): void {
    wipe(this.master);
    this.master = undefined;
    this.clientKey?.wipe();
    this.serverKey?.wipe();
    this.clientKey = this.serverKey = undefined;
    this.eph = undefined;
    this.messages.length = 0;
  }
}


/** The subject Name of a trust anchor for certificate_authorities; a malformed anchor is skipped. */
function subjectOrNothing(der: Uint8Array): Uint8Array[] {
  try {
    return [certificateSubjectDer(der)];
  } catch {
    return [];
  }
}
