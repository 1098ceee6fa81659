/**
 * protocol/setls: the setls applet's commands as both ends code them (docs/apdu-protocol.md §2–§4):
 * AID, INS codes, P1/P2 values and flags, PIN references, key types, state codes and the flags
 * byte of a DECRYPT answer. Pure data; imports nothing.
 */

/** Applet AID: `F0` proprietary category, "setls", version 1. */
export const APPLET_AID = Uint8Array.of(0xf0, 0x73, 0x65, 0x74, 0x6c, 0x73, 0x01);
/** The applet version the SELECT answer names (TLV `01`). */
export const APPLET_VERSION = 'setls/1';

/** INS codes: SELECT, MANAGE CHANNEL and GET RESPONSE/FETCH (interindustry / any class), then the setls commands (class A0). */
export const Ins = {
  select: 0xa4,
  manageChannel: 0x70,
  getResponse: 0xc0,
  /** draft-urien-eap-smartcard's FETCH: the card treats it as GET RESPONSE. */
  fetch: 0x12,
  verifyPin: 0x20,
  changePin: 0x24,
  unblockPin: 0x2c,
  setIdentity: 0x16,
  /** GET-STATE (P1 00) and RESET-STATE (P1 10). */
  state: 0x19,
  /** PROCESS-EAP, -ENCRYPT, -DECRYPT. */
  processEap: 0x80,
  getSessionKey: 0xa6,
  getExportedParameter: 0x86,
  getData: 0xca,
  generateKey: 0x46,
  getCsr: 0x4a,
  putChain: 0xda,
  putPolicy: 0xdc,
  putIdentityPolicy: 0xde,
  putTrustAnchor: 0xd2,
  putPsk: 0xd4,
  exportSession: 0xa8,
  exporter: 0xaa,
  /** SET-CLOCK (operator PIN): the card's time floor (docs/apdu-protocol.md §2.4). */
  setClock: 0xd6,
} as const;

/** SELECT P1: by DF name (the AID); P2: first occurrence with the answer, or no answer data (0C). */
export const SelectP1 = { byAid: 0x04 } as const;
export const SelectP2 = { answer: 0x00, noAnswer: 0x0c } as const;

/** The setls commands whose P1 bit 0 is the "More" bit of command segmentation (S1 §9.2). */
export const CHAINABLE_INS: ReadonlySet<number> = new Set([Ins.processEap, Ins.getCsr, Ins.putChain, Ins.putTrustAnchor]);

/** The most command data one chain of segments may carry (a longer chain is discarded with 6700). */
export const MAX_COMMAND_CHAIN = 70_000;

/** P1 bit 0 of a chainable command: more segments follow. */
export const P1_MORE = 0x01;

/**
 * P1 flags of PROCESS-EAP (P2 `00`) besides More: START (`02`) wipes the TLS session before the
 * Response is processed, as RESET-STATE does; INFO (`04`) asks for the session info TLV after an
 * EAP-Success and the alert TLV after a `7001` answer (docs/apdu-protocol.md §3); END (`08`), on a
 * DECRYPT, wipes the session after answering when that answer ends it (peer closed, or failed), as
 * RESET-STATE would (§4); FOLD (`10`), on a handshake Response, lets the card end the handshake in the
 * answer that carries its last records (SW `9001`): the EAP-Success follows the EAP-Request beyond its
 * Length, as if the host had already ACKed them (§3).
 */
export const EapP1 = { more: P1_MORE, start: 0x02, info: 0x04, end: 0x08, fold: 0x10 } as const;

/** P2 of PROCESS-EAP: `00` handshake / DECRYPT; `80 | content type` ENCRYPT. */
export const EapP2 = { handshakeOrDecrypt: 0x00, encrypt: 0x80 } as const;
/** ENCRYPT content types the card accepts (P2 `80|CT`): application data and the close_notify alert. */
export const EncryptP2 = { applicationData: 0x80 | 23, alert: 0x80 | 21 } as const;

/** GET-STATE / RESET-STATE (INS 19): P1 `00` GET-STATE, P1 `10` RESET-STATE with P2 `00` TLS or `01` DTLS (§8). */
export const StateP1 = { get: 0x00, reset: 0x10 } as const;
export const ResetStateP2 = { tls: 0x00, dtls: 0x01 } as const;

/** VERIFY / CHANGE / UNBLOCK P2. */
export const PinRef = { user: 0x00, operator: 0x01 } as const;

/** SET-IDENTITY P2. */
export const SET_IDENTITY_P2 = 0x80;

/** GET-DATA P1: card info / one identity. */
export const GetDataP1 = { cardInfo: 0x00, identity: 0x01 } as const;

/** GET-EXPORTED-PARAMETER data: the one parameter, the session info. */
export const EXPORTED_PARAMETER_SESSION_INFO = 0x10;

/** GET-SESSION-KEY Le: MSK (64) or MSK ‖ EMSK (128). */
export const SessionKeyLength = { msk: 64, mskEmsk: 128 } as const;

/** GENERATE-KEY P1 and identity TLV `10` values. */
export const KeyType = { p256: 0x01, rsa2048: 0x02 } as const;

/** PUT-TRUST-ANCHOR P2. */
export const TrustAnchorOp = { add: 0x00, clear: 0x01 } as const;

/** PUT-PSK P2. */
export const PskOp = { put: 0x00, remove: 0x01 } as const;

/** GET-STATE values. */
export const CardStateCode = {
  identityNotSet: 0x01,
  authenticating: 0x02,
  authenticated: 0x03,
  notAuthenticated: 0x04,
  closed: 0x05,
} as const;

/**
 * The flags byte of a DECRYPT answer (docs/apdu-protocol.md §4): the client closed (close_notify),
 * the session failed (a fatal alert); DTLS: the record was dropped (§8).
 */
export const DecryptFlag = { peerClosed: 0x01, failed: 0x02, dtlsDropped: 0x04 } as const;
