/**
 * protocol/names: names of the setls and TLS-SE commands (docs/apdu-protocol.md §2, docs/tls-se.md)
 * for traces and error messages, and which commands carry secrets (never printed).
 * imports protocol/.
 */
import { Channels } from './cla.js';
import { CHAINABLE_INS, EapP1, EncryptP2, Ins, PinRef, PskOp, StateP1, TrustAnchorOp, GetDataP1 } from './setls.js';
import { TlsSeIns, TlsSeMode } from './tls-se.js';

function pinName(what: string, p2: number): string {
  return p2 === PinRef.operator ? `${what}(operator)` : `${what}(user)`;
}

function recvName(p1: number, p2: number): string {
  if (p2 === 0 && p1 === TlsSeMode.handshake) return 'TLS-SE RECV/RESET';
  const mode = p1 === TlsSeMode.decrypt ? 'decrypt' : p1 === TlsSeMode.encrypt ? 'encrypt' : p1 === TlsSeMode.handshake ? 'handshake' : 'P1 ' + p1;
  return `TLS-SE RECV(${mode})`;
}

const SIMPLE: ReadonlyMap<number, string> = new Map([
  [Ins.setIdentity, 'SET-IDENTITY'],
  [Ins.getSessionKey, 'GET-SESSION-KEY'],
  [Ins.getExportedParameter, 'GET-EXPORTED-PARAMETER'],
  [Ins.generateKey, 'GENERATE-KEY'],
  [Ins.getCsr, 'GET-CSR'],
  [Ins.putChain, 'PUT-CHAIN'],
  [Ins.putPolicy, 'PUT-POLICY'],
  [Ins.putIdentityPolicy, 'PUT-IDENTITY-POLICY'],
  [Ins.setClock, 'SET-CLOCK'],
  [Ins.exportSession, 'EXPORT-SESSION'],
  [Ins.exporter, 'EXPORTER'],
  [Ins.getResponse, 'GET-RESPONSE'],
  [TlsSeIns.setKey, 'TLS-SE SET-KEY'],
  [Ins.fetch, 'FETCH'],
]);

/** A short name for a command APDU header, e.g. `PROCESS-EAP-ENCRYPT`. */
export function commandName(cla: number, ins: number, p1: number, p2: number): string {
  // Interindustry classes 00–03 / 40–4F carry SELECT and MANAGE CHANNEL on any logical channel.
  const interindustry = (cla & 0xfc) === 0x00 || (cla & 0xf0) === 0x40;
  if (interindustry && ins === Ins.select) return 'SELECT';
  if (interindustry && ins === Ins.manageChannel) return p1 === Channels.close ? 'MANAGE-CHANNEL(close)' : 'MANAGE-CHANNEL(open)';
  switch (ins) {
    case Ins.verifyPin:
      return pinName('VERIFY-PIN', p2);
    case Ins.changePin:
      return pinName('CHANGE-PIN', p2);
    case Ins.unblockPin:
      return pinName('UNBLOCK-PIN', p2);
    case Ins.state:
      return p1 === StateP1.reset ? 'RESET-STATE' : 'GET-STATE';
    case Ins.processEap:
      if (p2 & 0x80) return p2 === EncryptP2.alert ? 'PROCESS-EAP-ENCRYPT(alert)' : 'PROCESS-EAP-ENCRYPT';
      return p1 & EapP1.start ? 'PROCESS-EAP(START)' : p1 & EapP1.end ? 'PROCESS-EAP(END)' : 'PROCESS-EAP';
    case Ins.getData:
      return p1 === GetDataP1.identity ? 'GET-DATA(identity)' : 'GET-DATA(card info)';
    case Ins.putTrustAnchor:
      return p2 === TrustAnchorOp.clear ? 'PUT-TRUST-ANCHOR(clear)' : 'PUT-TRUST-ANCHOR';
    case Ins.putPsk:
      return p2 === PskOp.remove ? 'PUT-PSK(delete)' : 'PUT-PSK';
    case TlsSeIns.recv:
      return recvName(p1, p2);
    default:
      return SIMPLE.get(ins) ?? `INS ${ins.toString(16).padStart(2, '0').toUpperCase()}`;
  }
}

/** Commands whose P1 bit 0 is the segmentation "More" bit (the others use P1 as a parameter). */
export function isChainable(ins: number): boolean {
  return CHAINABLE_INS.has(ins);
}

const SECRET_DATA: ReadonlySet<number> = new Set([Ins.verifyPin, Ins.changePin, Ins.unblockPin, Ins.putPsk]);
const SECRET_RESPONSE: ReadonlySet<number> = new Set([Ins.getSessionKey, Ins.exportSession, Ins.exporter]);

/** Commands whose data is a secret (PINs, PUKs, PUT-PSK keys): never printed. */
export function hasSecretData(ins: number): boolean {
  return SECRET_DATA.has(ins);
}

/**
 * Commands whose response is a secret (session keys, the EXPORT-SESSION blob, EXPORTER keying
 * material): never printed, nor the GET RESPONSE / FETCH blocks that continue them.
 */
export function hasSecretResponse(ins: number): boolean {
  return SECRET_RESPONSE.has(ins);
}
