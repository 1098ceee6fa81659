/**
 * x509/: client certificate chains for mutual TLS (TLS 1.3 and TLS 1.2 engines share it).
 * imports node:crypto, bytes/ and tls/ siblings only.
 */
export { verifyClientChain, peerIdentityFromCertificate, splitSubjectAltNames, MAX_CHAIN_LENGTH, MAX_CERTIFICATE_SIZE } from './verify.js';
export { certificateSubjectDer } from './der.js';
export { verifyLeafSignature, CLIENT_SIGNATURE_SCHEMES } from './signature.js';
