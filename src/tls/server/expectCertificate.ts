/**
 * WAIT_CERT (client auth, RFC 8446 §4.4.2): the client's Certificate answering our CertificateRequest
 * (empty certificate_request_context). An empty list: accepted under 'optional' (no peer), else
 * certificate_required. Otherwise the chain must verify against the identity's trust anchors at
 * entropy.now() (x509/: unknown_ca, certificate_expired, bad_certificate, unsupported_certificate),
 * then the identity's deny-list (certificate_revoked).
 * SECRETS: the HandshakeContext's (handed to the next state, or wiped).
 * imports bytes/ and tls/ siblings only.
 */
import { HandshakeType } from '../constants.js';
import { tlsError } from '../errors.js';
import { parseCertificate } from '../wire/certificate.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { verifyClientChain } from '../x509/index.js';
import type { ServerState, Transition } from './effects.js';
import { ExpectCertificateVerify } from './expectCertificateVerify.js';
import { ExpectFinished } from './expectFinished.js';
import { wipeContext, type HandshakeContext } from './handshakeContext.js';

export class ExpectCertificate implements ServerState {
  readonly name = 'ExpectCertificate';
  readonly publicState = 'handshaking' as const;
  readonly acceptsChangeCipherSpec = true;
  private handedOver = false;

  constructor(private readonly ctx: HandshakeContext) {}

  handleApplicationData(): Transition {
    throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before client Certificate');
  }

  handleHandshake(msg: HandshakeMessage): Transition {
    if (msg.type !== HandshakeType.certificate) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `expected client Certificate, got handshake type ${msg.type}`);
    }
    const cert = parseCertificate(msg.body);
    if (cert.requestContext.length !== 0) throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', 'certificate_request_context must be empty');
    if (cert.certificates.length === 0) {
      if (this.ctx.clientAuth === 'required') throw tlsError('ERR_TLS_CERTIFICATE_REQUIRED', 'client sent no certificate');
      this.ctx.transcript.add(msg.raw);
      this.handedOver = true;
      return { next: new ExpectFinished(this.ctx), effects: [] };
    }
    const peer = verifyClientChain(cert.certificates, this.ctx.trustAnchors, this.ctx.config.entropy.now());
    if (this.ctx.isRevoked?.(cert.certificates)) throw tlsError('ERR_TLS_CERTIFICATE_REVOKED', 'the client certificate is on the deny-list');
    this.ctx.transcript.add(msg.raw);
    this.handedOver = true;
    return { next: new ExpectCertificateVerify(this.ctx, peer), effects: [] };
  }

  wipe(): void {
    if (!this.handedOver) wipeContext(this.ctx, false);
  }
}
