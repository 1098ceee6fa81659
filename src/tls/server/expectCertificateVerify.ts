/**
 * WAIT_CV (client auth, RFC 8446 §4.4.3): the client's CertificateVerify over
 *   64 x 0x20 ‖ "TLS 1.3, client CertificateVerify" ‖ 0x00 ‖ Transcript-Hash(ClientHello..client Certificate)
 * with a scheme we offered in CertificateRequest (else illegal_parameter) that fits the leaf key;
 * a signature that does not verify is decrypt_error.
 * SECRETS: the HandshakeContext's (handed to the next state, or wiped).
 * imports bytes/ and tls/ siblings only.
 */
import type { PeerIdentity } from '../api.js';
import { HandshakeType } from '../constants.js';
import { tlsError } from '../errors.js';
import { clientSignedContent, parseCertificateVerify } from '../wire/certificateVerify.js';
import type { HandshakeMessage } from '../wire/handshake.js';
import { CLIENT_SIGNATURE_SCHEMES, verifyLeafSignature } from '../x509/index.js';
import type { ServerState, Transition } from './effects.js';
import { ExpectFinished } from './expectFinished.js';
import { wipeContext, type HandshakeContext } from './handshakeContext.js';

export class ExpectCertificateVerify implements ServerState {
  readonly name = 'ExpectCertificateVerify';
  readonly publicState = 'handshaking' as const;
  readonly acceptsChangeCipherSpec = true;
  private handedOver = false;

  constructor(
    private readonly ctx: HandshakeContext,
    private readonly peer: PeerIdentity,
  ) {}

  handleApplicationData(): Transition {
    throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', 'application data before client CertificateVerify');
  }

  handleHandshake(msg: HandshakeMessage): Transition {
    if (msg.type !== HandshakeType.certificateVerify) {
      throw tlsError('ERR_TLS_UNEXPECTED_MESSAGE', `expected client CertificateVerify, got handshake type ${msg.type}`);
    }
    const { scheme, signature } = parseCertificateVerify(msg.body);
    if (!CLIENT_SIGNATURE_SCHEMES.includes(scheme)) {
      throw tlsError('ERR_TLS_ILLEGAL_PARAMETER', `client CertificateVerify with unoffered scheme 0x${scheme.toString(16)}`);
    }
    const signed = clientSignedContent(this.ctx.transcript.current());
    if (!verifyLeafSignature(scheme, this.peer.certificate, signed, signature)) {
      throw tlsError('ERR_TLS_DECRYPT_ERROR', 'client CertificateVerify does not verify');
    }
    this.ctx.transcript.add(msg.raw);
    this.handedOver = true;
    return { next: new ExpectFinished({ ...this.ctx, peer: this.peer }), effects: [] };
  }

  wipe(): void {
    if (!this.handedOver) wipeContext(this.ctx, false);
  }
}
