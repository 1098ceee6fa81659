/**
 * The TLS 1.3 key schedule (RFC 8446 §7.1), one type per stage so a stage's secrets cannot be used
 * out of order: EarlySecret → HandshakeSecret → MasterSecret.
 *
 *              0
 *              |
 *              v
 *    PSK ->  HKDF-Extract = Early Secret
 *              |
 *              +-----> Derive-Secret(., "ext binder" | "res binder", "") = binder_key
 *              |
 *              v
 *        Derive-Secret(., "derived", "")
 *              |
 *              v
 *    (EC)DHE -> HKDF-Extract = Handshake Secret
 *              |
 *              +-----> Derive-Secret(., "c hs traffic", ClientHello...ServerHello)
 *              +-----> Derive-Secret(., "s hs traffic", ClientHello...ServerHello)
 *              v
 *        Derive-Secret(., "derived", "")
 *              |
 *              v
 *    0 -> HKDF-Extract = Master Secret
 *              +-----> Derive-Secret(., "c ap traffic", ClientHello...server Finished)
 *              +-----> Derive-Secret(., "s ap traffic", ClientHello...server Finished)
 *              +-----> Derive-Secret(., "exp master", ClientHello...server Finished)
 *              +-----> Derive-Secret(., "res master", ClientHello...client Finished)
 *
 * SECRETS: every Uint8Array field in this file holds key material; wipe() zeroes them.
 * imports bytes/ and tls/ siblings only.
 */
import { wipe } from '../../bytes/index.js';
import { emptyHash, hash, hkdfExpandLabel, hkdfExtract, hmac, type SuiteParams } from '../crypto.js';

const EMPTY = new Uint8Array(0);

/** Test-only observer of derived secrets (RFC 8448 checks); never reachable from the public API. */
export type SecretObserver = (label: string, value: Uint8Array) => void;

/** Derive-Secret(Secret, Label, Messages) given Transcript-Hash(Messages). */
export function deriveSecret(suite: SuiteParams, secret: Uint8Array, label: string, transcriptHash: Uint8Array): Uint8Array {
  return hkdfExpandLabel(suite.hash, secret, label, transcriptHash, suite.hashLength);
}

/** Traffic key and IV for one direction (RFC 8446 §7.3). SECRET. */
export interface TrafficKeys {
  readonly key: Uint8Array;
  readonly iv: Uint8Array;
}

export function trafficKeys(suite: SuiteParams, trafficSecret: Uint8Array): TrafficKeys {
  return {
    key: hkdfExpandLabel(suite.hash, trafficSecret, 'key', EMPTY, suite.keyLength),
    iv: hkdfExpandLabel(suite.hash, trafficSecret, 'iv', EMPTY, suite.ivLength),
  };
}

/**
 * The next generation of an application traffic secret (RFC 8446 §7.2, KeyUpdate):
 *   application_traffic_secret_N+1 = HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length)
 * Returns a new secret; the caller wipes the old one.
 */
export function nextTrafficSecret(suite: SuiteParams, trafficSecret: Uint8Array): Uint8Array {
  return hkdfExpandLabel(suite.hash, trafficSecret, 'traffic upd', EMPTY, suite.hashLength);
}

/** verify_data for a Finished message under base key `trafficSecret` (RFC 8446 §4.4.4). */
export function finishedVerifyData(suite: SuiteParams, trafficSecret: Uint8Array, transcriptHash: Uint8Array): Uint8Array {
  const finishedKey = hkdfExpandLabel(suite.hash, trafficSecret, 'finished', EMPTY, suite.hashLength);
  const v = hmac(suite.hash, finishedKey, transcriptHash);
  wipe(finishedKey);
  return v;
}

/**
 * Without a PSK the early stage is the same in every handshake of a hash: Early Secret =
 * HKDF-Extract(0, 0) and Derive-Secret(Early Secret, "derived", "") are public constants (RFC 8448
 * §3: 33ad0a1c… and 6f2615a1… for SHA-256), made once per hash instead of two HMACs per handshake.
 * Callers get copies (a stage wipes what it holds).
 */
const NO_PSK = new Map<string, { readonly early: Uint8Array; readonly derived: Uint8Array }>();

function noPskConstants(suite: SuiteParams): { readonly early: Uint8Array; readonly derived: Uint8Array } {
  let c = NO_PSK.get(suite.hash);
  if (!c) {
    const zeros = new Uint8Array(suite.hashLength);
    const early = hkdfExtract(suite.hash, zeros, zeros);
    c = { early, derived: deriveSecret(suite, early, 'derived', emptyHash(suite.hash)) };
    NO_PSK.set(suite.hash, c);
  }
  return c;
}

export class EarlySecret {
  private constructor(
    readonly suite: SuiteParams,
    private readonly secret: Uint8Array,
    private readonly observe: SecretObserver | undefined,
    /** No PSK: `secret` is the public constant, and so is the "derived" secret after it. */
    private readonly noPsk: boolean,
  ) {}

  /** Without a PSK the IKM is Hash.length zeros; with one (ticket or external), the PSK. */
  static create(suite: SuiteParams, psk: Uint8Array | undefined, observe?: SecretObserver): EarlySecret {
    if (!psk) {
      const secret = noPskConstants(suite).early.slice();
      observe?.('early_secret', secret);
      return new EarlySecret(suite, secret, observe, true);
    }
    const secret = hkdfExtract(suite.hash, new Uint8Array(suite.hashLength), psk);
    observe?.('early_secret', secret);
    return new EarlySecret(suite, secret, observe, false);
  }

  /**
   * The PSK binder for Transcript-Hash(truncated ClientHello) (RFC 8446 §4.2.11.2):
   *   binder_key = Derive-Secret(Early Secret, "ext binder" | "res binder", "")
   *   binder = HMAC(finished_key(binder_key), Transcript-Hash(Truncate(ClientHello)))
   */
  binder(external: boolean, truncatedHelloHash: Uint8Array): Uint8Array {
    const s = this.suite;
    const binderKey = deriveSecret(s, this.secret, external ? 'ext binder' : 'res binder', emptyHash(s.hash));
    this.observe?.('binder_key', binderKey);
    const v = finishedVerifyData(s, binderKey, truncatedHelloHash);
    wipe(binderKey);
    return v;
  }

  /** Consumes this stage (it is wiped) and returns the handshake stage. */
  toHandshake(ecdhe: Uint8Array): HandshakeSecret {
    const s = this.suite;
    const derived = this.noPsk ? noPskConstants(s).derived.slice() : deriveSecret(s, this.secret, 'derived', emptyHash(s.hash));
    this.observe?.('derived_for_handshake', derived);
    const hs = hkdfExtract(s.hash, derived, ecdhe);
    this.observe?.('handshake_secret', hs);
    wipe(derived, this.secret);
    return new HandshakeSecret(s, hs, this.observe);
  }

  wipe(): void {
    wipe(this.secret);
  }
}

export class HandshakeSecret {
  constructor(
    readonly suite: SuiteParams,
    private readonly secret: Uint8Array,
    private readonly observe?: SecretObserver,
  ) {}

  /** Client and server handshake traffic secrets for Transcript-Hash(ClientHello..ServerHello). SECRET. */
  trafficSecrets(helloHash: Uint8Array): { client: Uint8Array; server: Uint8Array } {
    const client = deriveSecret(this.suite, this.secret, 'c hs traffic', helloHash);
    const server = deriveSecret(this.suite, this.secret, 's hs traffic', helloHash);
    this.observe?.('c_hs_traffic', client);
    this.observe?.('s_hs_traffic', server);
    return { client, server };
  }

  /** Consumes this stage (it is wiped) and returns the master stage. */
  toMaster(): MasterSecret {
    const s = this.suite;
    const derived = deriveSecret(s, this.secret, 'derived', emptyHash(s.hash));
    const ms = hkdfExtract(s.hash, derived, new Uint8Array(s.hashLength));
    this.observe?.('master_secret', ms);
    wipe(derived, this.secret);
    return new MasterSecret(s, ms, this.observe);
  }

  wipe(): void {
    wipe(this.secret);
  }
}

export class MasterSecret {
  constructor(
    readonly suite: SuiteParams,
    private readonly secret: Uint8Array,
    private readonly observe?: SecretObserver,
  ) {}

  /** Application traffic secrets and exporter master secret for Transcript-Hash(ClientHello..server Finished). SECRET. */
  applicationSecrets(hashToServerFinished: Uint8Array): { client: Uint8Array; server: Uint8Array; exporter: Uint8Array } {
    const client = deriveSecret(this.suite, this.secret, 'c ap traffic', hashToServerFinished);
    const server = deriveSecret(this.suite, this.secret, 's ap traffic', hashToServerFinished);
    const exporter = deriveSecret(this.suite, this.secret, 'exp master', hashToServerFinished);
    this.observe?.('c_ap_traffic', client);
    this.observe?.('s_ap_traffic', server);
    this.observe?.('exp_master', exporter);
    return { client, server, exporter };
  }

  /** resumption_master_secret = Derive-Secret(., "res master", ClientHello..client Finished). SECRET. */
  resumptionMasterSecret(hashToClientFinished: Uint8Array): Uint8Array {
    const rms = deriveSecret(this.suite, this.secret, 'res master', hashToClientFinished);
    this.observe?.('res_master', rms);
    return rms;
  }

  wipe(): void {
    wipe(this.secret);
  }
}

/** The PSK of one ticket (RFC 8446 §4.6.1): HKDF-Expand-Label(resumption_master_secret, "resumption", ticket_nonce, Hash.length). */
export function resumptionPsk(suite: SuiteParams, resumptionMasterSecret: Uint8Array, ticketNonce: Uint8Array): Uint8Array {
  return hkdfExpandLabel(suite.hash, resumptionMasterSecret, 'resumption', ticketNonce, suite.hashLength);
}

/**
 * RFC 8446 §7.5:
 *   TLS-Exporter(label, context_value, key_length) =
 *       HKDF-Expand-Label(Derive-Secret(Secret, label, ""), "exporter", Hash(context_value), key_length)
 */
export function exportKeyingMaterial(
  suite: SuiteParams,
  exporterMasterSecret: Uint8Array,
  label: string,
  context: Uint8Array,
  length: number,
): Uint8Array {
  const empty = emptyHash(suite.hash);
  const inner = hkdfExpandLabel(suite.hash, exporterMasterSecret, label, empty, suite.hashLength);
  const out = hkdfExpandLabel(suite.hash, inner, 'exporter', hash(suite.hash, context), length);
  wipe(inner);
  return out;
}
