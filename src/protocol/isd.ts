/**
 * protocol/isd: the administration protocol of the card's security domain (docs/admin-protocol.md)
 * as card and off-card code it — the ISD AID, GET DATA tags, card and application lifecycle codes,
 * SET/GET STATUS codes, the STORE DATA function tags (BF20–BF2D, factory BF30–BF33), the field
 * tags inside requests and responses, the signed structures' tags, audit event codes, the alert a
 * locked identity answers, and the bounds the card enforces. Written once here: the security domain
 * (card/applets/isd), gp/admin (AdminClient, request builders), factory/, operator/ and relay/ import
 * it. SCP03's own instruction bytes and status words stay in gp/ (gp/admin/constants.ts extends them).
 * Identity key algorithms are the setls applet's key types (`KeyType`), and ResetPin's PIN references
 * its VERIFY references (`PinRef`, setls.ts). Pure data; imports protocol/setls.
 */
import { KeyType } from './setls.js';

/** GlobalPlatform's issuer security domain AID: setls's security domain. */
export const ISD_AID = Uint8Array.of(0xa0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00);

/** GET DATA tags (P1 ‖ P2): public items, answered with or without secure messaging. */
export const GetDataTag = {
  /** GP card recognition data `66 { 73 {…} }`. */
  cardData: 0x0066,
  /** GP key information template `E0 { C0 04 id KVN 88 len }…`. */
  keyInformation: 0x00e0,
  /** The card UID (16 bytes). */
  uid: 0xdf50,
  /** The factory attestation certificate chain, leaf first (DER certificates back to back). */
  attestationChain: 0xdf51,
  /** The next SCP03 sequence counter (4 bytes, 0..01000000; 01000000 = exhausted). */
  sequenceCounter: 0xdf52,
  /** setls lifecycle data ("CPLC-like", not GP's 42-byte CPLC): `9F7F { 9F70 lifecycle, 5A UID }`. */
  lifecycle: 0x9f7f,
} as const;

/** ISD (card) lifecycle states, GP Card Spec 2.3 §5.1.1. */
export const CardLifecycle = {
  opReady: 0x01,
  initialized: 0x07,
  secured: 0x0f,
  cardLocked: 0x7f,
  terminated: 0xff,
} as const;

/** Application lifecycle (GET STATUS `9F70`): selectable, and the locked bits ORed onto it. */
export const AppLifecycle = { selectable: 0x07, lockedBits: 0x83 } as const;

/** SET STATUS P1 (status type). */
export const StatusType = { isd: 0x80, application: 0x40 } as const;
/** SET STATUS P2 for an application: lock / unlock. */
export const AppStatusP2 = { lock: 0x80, unlock: 0x00 } as const;
/** GET STATUS P1 (subset) and the one P2 setls answers (02: TLV `E3` entries). */
export const GetStatusP1 = { isd: 0x80, applications: 0x40, loadFiles: 0x20, loadFilesAndModules: 0x10 } as const;
export const GET_STATUS_P2_TLV = 0x02;

/** STORE DATA function requests (BER-TLV, one per STORE DATA sequence). */
export const Fn = {
  getCardInfo: 0xbf20,
  generateIdentityKey: 0xbf21,
  attestKey: 0xbf22,
  createCsr: 0xbf23,
  installCertificateChain: 0xbf24,
  activateIdentity: 0xbf25,
  deleteKey: 0xbf26,
  setPolicy: 0xbf27,
  putTrustAnchors: 0xbf28,
  putRevocationList: 0xbf29,
  putTimeAnchor: 0xbf2a,
  readAuditLog: 0xbf2b,
  /** setls addition: user/operator PIN reset and unblock. */
  resetPin: 0xbf2c,
  /** setls addition: lock / unlock one identity. */
  lockIdentity: 0xbf2d,
  // factory personalisation (lifecycle OP_READY only, without secure messaging)
  factorySetUid: 0xbf30,
  factoryGenerateAttestationKey: 0xbf31,
  factoryInstallAttestationChain: 0xbf32,
  factoryPutKeys: 0xbf33,
} as const;
export type Fn = (typeof Fn)[keyof typeof Fn];

export const FACTORY_FUNCTIONS: ReadonlySet<number> = new Set([
  Fn.factorySetUid,
  Fn.factoryGenerateAttestationKey,
  Fn.factoryInstallAttestationChain,
  Fn.factoryPutKeys,
]);

/** Functions a TERMINATED card still answers (reads only). */
export const READ_ONLY_FUNCTIONS: ReadonlySet<number> = new Set([Fn.getCardInfo, Fn.readAuditLog]);

/** Field tags inside function requests and responses (one table for all functions). */
export const Field = {
  uid: 0x5a,
  slot: 0x80,
  algorithm: 0x81,
  policy: 0x82,
  pinRef: 0x83,
  slotStatus: 0x84,
  nonce: 0x85,
  spki: 0x86,
  subject: 0x87,
  certificate: 0x88,
  locked: 0x89,
  anchorRole: 0x8a,
  number: 0x8b,
  serial: 0x8c,
  action: 0x8d,
  time: 0x8e,
  signature: 0x8f,
  newPin: 0x90,
  fromSeq: 0x91,
  maxEntries: 0x92,
  digest: 0x93,
  sequenceCounter: 0x94,
  kvnList: 0x95,
  lifecycle: 0x96,
  retireSlot: 0x97,
  failedAuths: 0x98,
  auditSeq: 0x99,
  auditHead: 0x9a,
  operatorRootDigest: 0x9b,
  clientCaDigest: 0x9c,
  generatedInCard: 0x9d,
  csr: 0x9e,
  slotSummary: 0xa0,
  timeAnchorSummary: 0xa1,
  factoryKeySet: 0xc0,
  keyCheckValues: 0xc1,
  auditEvent: 0xc2,
  auditDetail: 0xc3,
  hashBefore: 0xc4,
  hashAfter: 0xc5,
  /** CreateCSR: the challenge text for challengePassword (EST Mode B; UTF-8, 1..127 bytes). */
  challenge: 0xc6,
  /** CreateCSR: 01 = embed the attestation evidence over the nonce (csr-attestation attribute). */
  evidence: 0xc7,
} as const;

/** Outer tags of the structures the card or the operator signs, and of an audit entry. */
export const SignedTag = {
  /** Attestation statement (AttestKey), signed by the factory attestation key. */
  attestation: 0xe0,
  /** Audit head statement (ReadAuditLog), signed by the factory attestation key. */
  auditHead: 0xe1,
  /** One audit log entry (hash-chained, not signed by itself). */
  auditEntry: 0xe2,
  /** Time anchor content (PutTimeAnchor), signed by the operator root key. */
  timeAnchor: 0xe3,
} as const;

/** Identity key algorithms (`81`). */
export const KeyAlg = KeyType;
export type KeyAlg = (typeof KeyType)[keyof typeof KeyType];

/** Identity slot status (`84`). */
export const SlotStatus = { generated: 0x01, staged: 0x02, active: 0x03, retired: 0x04 } as const;
export type SlotStatus = (typeof SlotStatus)[keyof typeof SlotStatus];

/** Identity policy bits (`82`): b1 export (TLS-Tandem) allowed, b3..b2 client authentication. */
export const PolicyBits = { exportAllowed: 0x01, clientAuthMask: 0x06, clientAuthShift: 1 } as const;
export const ClientAuthMode = { none: 0, optional: 1, required: 2 } as const;

/** PutTrustAnchors roles (`8A`). */
export const AnchorRole = { operatorRoot: 0x01, clientCa: 0x02 } as const;
/** ActivateIdentity actions (`8D`). */
export const ActivateAction = { activate: 0x01, retire: 0x02 } as const;
/** LockIdentity actions (`8D`). */
export const LockAction = { lock: 0x01, unlock: 0x02 } as const;
/** ResetPin actions (`8D`): new PIN and unblock, or reset the retry counter only. */
export const PinAction = { setAndUnblock: 0x01, unblockOnly: 0x02 } as const;
/** Audit event codes (`C2`); the detail (`C3`) of each is in docs/admin-protocol.md §7. */
export const AuditEvent = {
  adminSessionOpened: 0x01,
  functionExecuted: 0x02,
  putKey: 0x03,
  setStatus: 0x04,
  tlsSession: 0x05,
  factorySealed: 0x06,
  /**
   * A function executed WITHOUT secure messaging (zero-touch enrolment while the card has no
   * operator root anchor); detail as functionExecuted's.
   */
  plainFunctionExecuted: 0x07,
} as const;

/**
 * Functions the card also accepts without secure messaging while it is SECURED and holds no
 * operator root anchor (zero-touch EST enrolment, docs/admin-protocol.md §5.10): the five enrolment
 * functions, and GetCardInfo (read only) so that the device learns whether the card has an operator
 * and which slots are active.
 */
export const PLAIN_ENROLMENT_FUNCTIONS: ReadonlySet<number> = new Set([
  Fn.getCardInfo,
  Fn.generateIdentityKey,
  Fn.attestKey,
  Fn.createCsr,
  Fn.installCertificateChain,
  Fn.activateIdentity,
]);

/** id-aa-evidence (draft-ietf-lamps-csr-attestation: { id-aa 59 }): the CSR attribute carrying EvidenceBundles. */
export const OID_AA_EVIDENCE = '1.2.840.113549.1.9.16.2.59';
/**
 * The EvidenceStatement type of setls's attestation (stmt = OCTET STRING { E0 statement ‖ 8F
 * signature }, exactly AttestKey's answer). No registered OID exists for it: a private OID under
 * the UUID arc 2.25 (X.667), uuid c3802b2c-b765-442e-8b63-67dc4379e91e.
 */
export const OID_SETLS_EVIDENCE_STATEMENT = '2.25.259864948862361341086755637572029507870';

/** TLS alert a locked identity answers a new handshake with: access_denied (RFC 8446 §6.2). */
export const LOCKED_IDENTITY_ALERT = 49;

/** The security level every operator function requires (C-DEC, C-MAC, R-MAC, R-ENC). */
export const ADMIN_LEVEL = 0x33;

/** Bounds the card enforces. */
export const IsdLimits = {
  /** Identity slots 1..maxSlot. */
  maxSlot: 8,
  /** Failed authentications per power cycle before INITIALIZE UPDATE answers 6985 until power-on. */
  failedAuthsPerPowerCycle: 16,
  /** Key sets held at once. */
  maxKeySets: 4,
  /** Operator nonce length. */
  minNonce: 8,
  maxNonce: 64,
  /** Certificates per chain (identity, attestation) and per anchor list, and their total size. */
  maxChainCerts: 8,
  maxChainBytes: 24_576,
  maxCertBytes: 8_192,
  maxClientCas: 8,
  /** Revocation list: serials and their size (INTEGER content bytes). */
  maxRevokedSerials: 512,
  maxSerialBytes: 20,
  /** Audit entries kept on the card (older ones drop off; the hash chain continues). */
  auditEntriesKept: 64,
  /** Entries one ReadAuditLog returns at most. */
  maxAuditRead: 16,
  /** Largest reassembled STORE DATA request. */
  maxStoreData: 32_768,
  /** Largest subject (DER Name) for CreateCSR. */
  maxSubject: 512,
  /** Audit event detail. */
  maxAuditDetail: 96,
  /** Key generations WITHOUT secure messaging per power cycle (zero-touch enrolment); beyond: 6983. */
  plainKeyGenerationsPerPowerCycle: 4,
  /** CreateCSR challenge text (`C6`). */
  maxChallenge: 127,
} as const;

/** The UID length of setls cards. */
export const UID_LENGTH = 16;
/** The factory SCP03 key set's KVN. */
export const FACTORY_KVN = 0x30;
/** The next-counter value that means "exhausted": the card then uses random card challenges. */
export const COUNTER_EXHAUSTED = 0x1000000;
